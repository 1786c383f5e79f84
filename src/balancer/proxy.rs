//! The HTTP proxy of one balancer: one request in, routed to a backend set, balanced to a
//! backend, forwarded with streaming bodies, and its answer (or a 502, 503, 504 or 413) back.
//!
//! Errors say where they came from: 503 when no backend is eligible, 502 when the backend
//! refused, reset or answered invalid HTTP, 504 on a timeout, 413 when the request body is over
//! `max_body_bytes`. Idempotent requests are retried on another backend after a connect
//! failure, at most [`MAX_RETRIES`] times, and only while none of the request body was sent.
//!
//! Upstream connections are HTTP/1.1 with keep-alive, spoken by the proxy itself (the
//! protocol, without I/O, is [`super::upstream`]): the request that uses a connection writes
//! the request head and body and reads the response head, and the response body then reads
//! the socket as the client takes the body, handing on slices of the buffer it read into. An
//! exchange needs no channel, no task of its own and no wake-up of another task or thread.
//! Each thread keeps its own idle connections per backend address (as nginx keeps one
//! keep-alive cache per worker), so taking one is a pop from a thread-local list, without a
//! lock. A request goes out only once its connection is established, so a connect failure
//! never consumes the body. A request on an idle connection that the backend closed meanwhile
//! goes once more on a new connection to the same backend, when the backend cannot have acted
//! on it: none of its body was taken from the client, and it is idempotent.
//!
//! A request's timeouts (connect, response headers, pauses between body chunks) are those of
//! the route it matched, which default to the balancer's.
//!
//! Draining a backend: once its drain timeout has passed, what is still in flight there is cut
//! off. Each thread registers the upstream connections and tunnels it opens (a weak reference
//! to the connection's [`Relay`], pushed on a thread-local list when the connection is made,
//! not per request), and the thread's periodic sweep ([`expire_idle_connections`], every
//! [`IDLE_SWEEP_INTERVAL`]) stops those of expired drains: a request still waiting for its
//! response head gets a 504, a response body or a tunnel is cut. No request pays for it.

use std::cell::RefCell;
use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use rustc_hash::FxHashMap;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::pool::{Backend, BackendSet, Chosen, InFlight, Outstanding, Pool, RequestKey, Topology};
use super::upstream::{self, Chunked, Decoded, Framing, RequestBody};
use crate::config::{HashKey, OutlierConfig, RouteConfig};

/// At most this many retries after the first attempt (each on another backend).
pub const MAX_RETRIES: usize = 2;

/// How often each worker drops the idle upstream connections whose idle timeout passed.
pub const IDLE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A boxed error, as hyper's bodies and services carry them.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Error responses by kind, for the pool's counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// 502: a backend failed (refused, reset, invalid answer).
    pub bad_gateway: AtomicU64,
    /// 503: no eligible backend.
    pub unavailable: AtomicU64,
    /// 504: a backend timed out.
    pub gateway_timeout: AtomicU64,
    /// 413: the request body was too large.
    pub too_large: AtomicU64,
    /// Retries after a connect failure.
    pub retries: AtomicU64,
}

/// What a proxy's requests share: the pool and the error counters.
#[derive(Debug)]
pub struct Shared {
    /// Backends, sets, routes and settings.
    pub pool: Arc<Pool>,
    /// Error responses by kind.
    pub counters: Counters,
}

impl Shared {
    /// Shared state for `pool`.
    pub fn new(pool: Arc<Pool>) -> Self {
        Self {
            pool,
            counters: Counters::default(),
        }
    }
}

/// One client connection: the proxy's shared state and the client's address, with the
/// forwarding header values that depend on the address only, made once per connection.
#[derive(Debug)]
pub struct ClientConnection {
    /// The proxy's shared state.
    pub shared: Arc<Shared>,
    /// The client's address and forwarding values.
    pub peer: Peer,
}

/// A client address and the parts of the forwarding headers made from it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    addr: SocketAddr,
    /// The IP as text: the `X-Forwarded-For` value when the request brings none.
    forwarded_for: HeaderValue,
    /// `for=IP;proto=http` (IPv6 as `for="[IP]"`), the start of the `Forwarded` value.
    forwarded: Bytes,
}

impl Peer {
    /// The client's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The forwarding values for a client at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let ip = addr.ip();
        let forwarded_for = HeaderValue::from_str(&ip.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        let forwarded = match ip {
            IpAddr::V4(v4) => format!("for={v4};proto=http"),
            IpAddr::V6(v6) => format!("for=\"[{v6}]\";proto=http"),
        };
        Self {
            addr,
            forwarded_for,
            forwarded: Bytes::from(forwarded),
        }
    }
}

/// Serves one HTTP/2 request from `client` (HTTP/2 has no upgrades).
pub async fn handle(
    client: Arc<ClientConnection>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    Ok(respond(&client, request).await.0)
}

/// Answers one request from `client`: the pool's health, or the proxied response. After a
/// `101 Switching Protocols` the tunnel to the backend comes with it, for the caller to join
/// to the client's connection.
pub async fn respond<B>(
    client: &ClientConnection,
    request: Request<B>,
) -> (Response<ProxyBody>, Option<Tunnel>)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let shared = &client.shared;
    let topology = shared.pool.topology();
    let via = via_value(request.version());
    let (mut response, tunnel) = if request.uri().path() == topology.config.health_path
        && matches!(*request.method(), Method::GET | Method::HEAD)
    {
        (health_response(&shared.pool), None)
    } else {
        let guard = shared.pool.enter();
        proxy(shared, &topology, &client.peer, request, guard).await
    };
    response
        .headers_mut()
        .append(header::VIA, HeaderValue::from_static(via));
    (response, tunnel)
}

/// The `Via` entry for a request received over `version`.
fn via_value(version: Version) -> &'static str {
    match version {
        Version::HTTP_10 => "1.0 meridian",
        Version::HTTP_2 => "2.0 meridian",
        _ => "1.1 meridian",
    }
}

/// The pool's own health: 200 or 503 with a JSON summary.
fn health_response(pool: &Pool) -> Response<ProxyBody> {
    let health = pool.health();
    let capacity = if health.total == 0 {
        0.0
    } else {
        health.healthy as f64 / health.total as f64
    };
    let body = serde_json::json!({
        "healthy": health.healthy,
        "total": health.total,
        "in_flight": health.in_flight,
        "requests": health.requests,
        "latency_ms": (health.latency_ms * 1000.0).round() / 1000.0,
        "capacity": capacity,
    })
    .to_string();
    let status = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = Response::new(ProxyBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A short text error response.
pub fn error_response(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Why a request could not be answered by a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No backend is eligible: 503.
    NoBackend,
    /// Connect refused, reset, or an invalid answer: 502.
    BadGateway,
    /// Connect or response timeout: 504.
    Timeout,
    /// The request body is over the limit: 413.
    TooLarge,
    /// The client stopped sending the body for the idle timeout: 408.
    ClientIdle,
}

impl Failure {
    /// The response for this failure, counted.
    fn respond(self, counters: &Counters) -> Response<ProxyBody> {
        let (counter, status, text) = match self {
            Failure::NoBackend => (
                Some(&counters.unavailable),
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable: no healthy backend\n",
            ),
            Failure::BadGateway => (
                Some(&counters.bad_gateway),
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: the backend failed\n",
            ),
            Failure::Timeout => (
                Some(&counters.gateway_timeout),
                StatusCode::GATEWAY_TIMEOUT,
                "504 Gateway Timeout: the backend did not answer in time\n",
            ),
            Failure::TooLarge => (
                Some(&counters.too_large),
                StatusCode::PAYLOAD_TOO_LARGE,
                "413 Content Too Large: the request body is over the limit\n",
            ),
            Failure::ClientIdle => (
                None,
                StatusCode::REQUEST_TIMEOUT,
                "408 Request Timeout: the request body stalled\n",
            ),
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        error_response(status, text)
    }
}

/// A backend picked for a request, with the request counted as outstanding there.
struct Attempt {
    /// For `cookie`: the token the response must set.
    set_cookie: Option<HeaderValue>,
    /// The backend, with the request counted in its outstanding requests.
    outstanding: Outstanding,
    /// When the attempt started (connect included): the start of the response-header latency.
    sent: Instant,
    /// When the response headers are due (`response_timeout` after `sent`).
    deadline: tokio::time::Instant,
}

/// Routes, balances and forwards one request, retrying connect failures when safe.
async fn proxy<B>(
    shared: &Shared,
    topology: &Topology,
    peer: &Peer,
    request: Request<B>,
    guard: InFlight,
) -> (Response<ProxyBody>, Option<Tunnel>)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let response = |failure: Failure| (failure.respond(&shared.counters), None);
    let config = &topology.config;
    if let Some(limit) = config.max_body_bytes
        && request
            .body()
            .size_hint()
            .exact()
            .or_else(|| content_length(request.headers()))
            .is_some_and(|length| length > limit)
    {
        return response(Failure::TooLarge);
    }
    let route = if config.routes.is_empty() {
        None
    } else {
        topology.route(
            request.uri().path(),
            request_host(&request),
            request.headers(),
        )
    };
    let set = &topology.sets[route.map_or(0, |route| route.set)];
    let (connect_timeout, response_timeout, idle_timeout) = route.map_or(
        (
            config.connect_timeout,
            config.response_timeout,
            config.idle_timeout,
        ),
        |route: &RouteConfig| {
            (
                route.connect_timeout,
                route.response_timeout,
                route.idle_timeout,
            )
        },
    );
    let upgrade = is_upgrade(&request);
    let (mut parts, body) = request.into_parts();
    prepare_headers(&mut parts.headers, &parts.uri, parts.version, peer, upgrade);
    origin_form(&mut parts);
    parts.version = Version::HTTP_11;
    let mut body = Limited::new(body, config.max_body_bytes, idle_timeout);
    let retryable = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    );
    let mut tried: [usize; MAX_RETRIES + 1] = [usize::MAX; MAX_RETRIES + 1];
    let mut attempt_count = 0;
    let mut last_failure = None;
    // Set when an idle connection turned out closed before it took the request: the same
    // backend gets the request once more, on a new connection.
    let mut again: Option<Attempt> = None;
    loop {
        let (current, pooled) = match again.take() {
            Some(current) => (current, None),
            None => {
                let sent = Instant::now();
                let Some(Chosen {
                    index,
                    backend,
                    set_cookie,
                }) = pick(set, topology, peer, &parts, &tried[..attempt_count], sent)
                else {
                    return response(last_failure.unwrap_or(Failure::NoBackend));
                };
                tried[attempt_count] = index;
                let pooled = checkout(backend.addr(), sent);
                let current = Attempt {
                    set_cookie,
                    outstanding: backend.start(),
                    sent,
                    deadline: tokio::time::Instant::from_std(sent + response_timeout),
                };
                (current, pooled)
            }
        };
        let backend = current.outstanding.backend();
        let reused = pooled.is_some();
        let mut connection = match pooled {
            Some(connection) => connection,
            None => match connect(backend, connect_timeout, current.deadline).await {
                Ok(connection) => connection,
                Err(ConnectError::Deadline) => {
                    backend.record(false, config.outlier.as_ref());
                    tracing::debug!(backend = %backend.addr(), "backend response timed out");
                    return response(Failure::Timeout);
                }
                Err(ConnectError::Failed(failure)) => {
                    backend.record(false, config.outlier.as_ref());
                    if retryable && attempt_count < MAX_RETRIES {
                        tracing::debug!(backend = %backend.addr(), ?failure, "connect failed; retrying on another backend");
                        shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                        last_failure = Some(failure);
                        attempt_count += 1;
                        continue;
                    }
                    tracing::debug!(backend = %backend.addr(), ?failure, "connect failed");
                    return response(failure);
                }
            },
        };
        if parts.method == Method::CONNECT {
            parts.uri = Uri::from(backend.authority().clone());
        }
        if !parts.headers.contains_key(header::HOST) {
            parts
                .headers
                .insert(header::HOST, backend.host_header().clone());
        }
        let result = tokio::time::timeout_at(
            current.deadline,
            connection.exchange(&parts, &mut body, retryable),
        )
        .await;
        let head = match result {
            Ok(Ok(head)) => head,
            Ok(Err(_)) if connection.is_stopped() => {
                // Not the backend's fault: the operator drained it and its time ran out.
                tracing::debug!(backend = %backend.addr(), "request cut off: the backend's drain timeout passed");
                return response(Failure::Timeout);
            }
            Ok(Err(ExchangeError::Closed { resendable: true })) if reused => {
                tracing::debug!(backend = %backend.addr(), "idle connection closed; sending on a new one");
                again = Some(current);
                continue;
            }
            Ok(Err(error)) => {
                backend.record(false, config.outlier.as_ref());
                tracing::debug!(backend = %backend.addr(), %error, "upstream request failed");
                return response(error.failure());
            }
            Err(_elapsed) => {
                backend.record(false, config.outlier.as_ref());
                tracing::debug!(backend = %backend.addr(), "backend response timed out");
                return response(Failure::Timeout);
            }
        };
        let Attempt {
            set_cookie,
            outstanding,
            sent,
            ..
        } = current;
        let backend = outstanding.backend();
        let now = Instant::now();
        let rtt = now.saturating_duration_since(sent);
        // Only least_response_time reads a backend's estimate; other algorithms skip its lock,
        // which every worker would otherwise take for the same backend on every request.
        if config.algorithm == super::Algorithm::LeastResponseTime {
            backend.observe_latency_at(rtt, now);
        }
        shared.pool.observe_latency(rtt);
        let gateway_error = matches!(
            head.status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        );
        backend.record(!gateway_error, config.outlier.as_ref());
        // The client hears the proxy's own HTTP version, whatever the backend's was.
        let upstream::Head {
            status,
            mut headers,
            framing,
            ..
        } = head;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            if !upgrade {
                return response(Failure::BadGateway);
            }
            let Some((stream, early)) = connection.upgraded() else {
                tracing::debug!(backend = %backend.addr(), "upstream upgrade failed");
                return response(Failure::BadGateway);
            };
            strip_hop_by_hop(&mut headers, true);
            let mut switching = Response::new(ProxyBody::empty());
            *switching.status_mut() = status;
            *switching.headers_mut() = headers;
            let tunnel = Tunnel {
                stream,
                early,
                outstanding,
                _in_flight: guard,
            };
            return (switching, Some(tunnel));
        }
        strip_hop_by_hop(&mut headers, false);
        if let Some(value) = set_cookie
            && let Some(name) = &config.cookie_name
            && let Ok(cookie) = HeaderValue::from_str(&format!(
                "{name}={}; Path=/; HttpOnly",
                value.to_str().unwrap_or_default()
            ))
        {
            headers.append(header::SET_COOKIE, cookie);
        }
        // The request's fields are sent: their map holds the connection's next response head,
        // and this response's map the client connection's next request, without allocating.
        connection.scratch.recycle(parts.headers);
        let body = ResponseBody {
            state: BodyState::from(framing),
            idle: IdleTimer::new(idle_timeout),
            outlier: config.outlier,
            outstanding: Some(outstanding),
            connection: Some(connection),
            idle_timeout: config.idle_timeout,
            failure: None,
            _in_flight: guard,
        };
        let mut proxied = Response::new(ProxyBody::Upstream(body));
        *proxied.status_mut() = status;
        *proxied.headers_mut() = headers;
        return (proxied, None);
    }
}

/// Picks a backend of `set` for the request `parts` from `peer` at `now`, skipping `tried`.
fn pick(
    set: &BackendSet,
    topology: &Topology,
    peer: &Peer,
    parts: &Parts,
    tried: &[usize],
    now: Instant,
) -> Option<Chosen> {
    let key_buffer;
    let mut key = RequestKey {
        client_ip: Some(peer.addr.ip()),
        ..RequestKey::default()
    };
    let mut hash_owned = None;
    match topology.hash_key() {
        Some(HashKey::ClientIp) => {
            key_buffer = ip_bytes(peer.addr.ip());
            key.hash_key = Some(&key_buffer.0[..key_buffer.1]);
        }
        Some(HashKey::Header(name)) => {
            key.hash_key = parts.headers.get(name.as_str()).map(HeaderValue::as_bytes);
        }
        Some(HashKey::Cookie(name)) => {
            hash_owned = cookie(&parts.headers, name);
        }
        None => {}
    }
    if let Some(value) = &hash_owned {
        key.hash_key = Some(value.as_bytes());
    }
    let sticky = topology
        .config
        .cookie_name
        .as_deref()
        .and_then(|name| cookie(&parts.headers, name));
    key.cookie = sticky.as_deref();
    set.pick_at(topology.config.algorithm, &key, tried, now)
}

/// Makes the request target origin-form (`/path?query`), as a backend expects it: HTTP/2 and
/// absolute-form HTTP/1.1 requests carry the scheme and authority in the URI.
fn origin_form(parts: &mut Parts) {
    if parts.uri.scheme().is_none() && parts.uri.authority().is_none() {
        return;
    }
    let path = parts
        .uri
        .path_and_query()
        .filter(|pq| !pq.as_str().is_empty())
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::from(path);
}

/// Why no connection to a backend could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectError {
    /// Refused, unreachable or timed out (`connect_timeout`): worth trying another backend.
    Failed(Failure),
    /// The attempt's `response_timeout` passed while connecting: 504, no retry.
    Deadline,
}

/// Opens a new HTTP/1.1 connection to `backend`, watched for the backend's drain deadline.
async fn connect(
    backend: &Arc<Backend>,
    connect_timeout: Duration,
    deadline: tokio::time::Instant,
) -> Result<Upstream, ConnectError> {
    let connect_deadline = tokio::time::Instant::now() + connect_timeout;
    let stream = match tokio::time::timeout_at(
        connect_deadline.min(deadline),
        TcpStream::connect(backend.addr()),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(backend = %backend.addr(), %error, "connect failed");
            return Err(ConnectError::Failed(Failure::BadGateway));
        }
        Err(_elapsed) if connect_deadline <= deadline => {
            return Err(ConnectError::Failed(Failure::Timeout));
        }
        Err(_elapsed) => return Err(ConnectError::Deadline),
    };
    let _ = stream.set_nodelay(true);
    let relay = Arc::new(Relay::default());
    watch(&relay, backend);
    Ok(Upstream {
        addr: backend.addr(),
        stream: Some(stream),
        buf: BytesMut::new(),
        out: BytesMut::new(),
        keep_alive: true,
        drained: false,
        relay,
        scratch: upstream::HeadScratch::default(),
    })
}

/// Bytes read from a backend at a time (at least).
const READ_SIZE: usize = 8 * 1024;

/// Largest write buffer an idle upstream connection keeps.
const MAX_IDLE_BUFFER: usize = 64 * 1024;

/// An HTTP/1.1 connection to a backend (see [`upstream`] for the protocol). It has no task of
/// its own: the request that uses it writes the request and reads the response head, then
/// the response body reads the body straight from the socket into the client's response.
struct Upstream {
    /// The backend's address.
    addr: SocketAddr,
    /// The socket; `None` once taken for an upgrade.
    stream: Option<TcpStream>,
    /// Bytes read and not yet used.
    buf: BytesMut,
    /// Bytes to write (the request head, body data), reused from request to request.
    out: BytesMut,
    /// Whether the connection can take another request once the current response is read.
    keep_alive: bool,
    /// Whether the last read took everything the socket had then.
    drained: bool,
    /// The drain stop, and who to wake for it.
    relay: Arc<Relay>,
    /// Memory for parsing response heads, kept from response to response.
    scratch: upstream::HeadScratch,
}

/// Why an exchange with a backend failed.
#[derive(Debug)]
enum ExchangeError {
    /// The backend closed or reset the connection before any of the response arrived;
    /// `resendable`: the request can go again, because the backend cannot have acted on it
    /// (it is idempotent, and none of its body was taken from the client).
    Closed { resendable: bool },
    /// Reading or writing failed.
    Io(std::io::Error),
    /// The backend's response is not valid HTTP/1.1.
    Invalid(&'static str),
    /// The client's request body failed (over the limit, or stalled).
    Body(BoxError),
}

impl fmt::Display for ExchangeError {
    /// One line saying what failed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::Closed { .. } => {
                f.write_str("the backend closed the connection before answering")
            }
            ExchangeError::Io(error) => write!(f, "{error}"),
            ExchangeError::Invalid(what) => write!(f, "invalid response: {what}"),
            ExchangeError::Body(error) => write!(f, "request body: {error}"),
        }
    }
}

impl ExchangeError {
    /// The response the failure deserves.
    fn failure(&self) -> Failure {
        match self {
            ExchangeError::Body(error) => match error.downcast_ref::<BodyError>() {
                Some(BodyError::TooLarge) => Failure::TooLarge,
                Some(BodyError::Idle) => Failure::ClientIdle,
                None => Failure::BadGateway,
            },
            ExchangeError::Io(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                Failure::Timeout
            }
            _ => Failure::BadGateway,
        }
    }
}

impl Upstream {
    /// Whether the connection was cut off because its backend's drain timeout passed.
    fn is_stopped(&self) -> bool {
        self.relay.is_stopped()
    }

    /// Whether the socket shows nothing new: no data and no close since the last response
    /// was read. Costs no system call unless the socket became readable.
    fn is_quiet(&self) -> bool {
        let Some(stream) = &self.stream else {
            return false;
        };
        match stream.poll_read_ready(&mut quiet()) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readable: a close, stray bytes, or a readiness from before: look.
            Poll::Ready(Ok(())) => matches!(
                stream.try_read(&mut [0u8; 1]),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Whether the connection can take a request now, as far as is known without waiting (a
    /// close that races with the request is seen when it is sent, and the request then goes
    /// on a new connection).
    fn is_usable(&self) -> bool {
        self.keep_alive && !self.relay.is_stopped() && self.buf.is_empty() && self.is_quiet()
    }

    /// Readies an idle connection: nobody waits for it any more, and what the socket said while
    /// the last response was read is forgotten when that read emptied the socket, so the next
    /// check needs no system call.
    fn rest(&mut self) {
        self.relay.disarm();
        if self.out.capacity() > MAX_IDLE_BUFFER {
            // A large request body passed: an idle connection keeps no large buffer.
            self.out = BytesMut::new();
        }
        if self.drained
            && let Some(stream) = &self.stream
        {
            let _ = stream.try_io(tokio::io::Interest::READABLE, || {
                Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
            });
        }
    }

    /// Reads what the socket has into `buf`: the count, 0 at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let Some(stream) = &self.stream else {
            return Poll::Ready(Ok(0));
        };
        loop {
            ready!(stream.poll_read_ready(cx))?;
            if self.buf.capacity() - self.buf.len() < READ_SIZE / 2 {
                self.buf.reserve(READ_SIZE);
            }
            let spare = self.buf.capacity() - self.buf.len();
            match stream.try_read_buf(&mut self.buf) {
                Ok(count) => {
                    self.drained = count < spare;
                    return Poll::Ready(Ok(count));
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    /// Writes out what `out` holds.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        use bytes::Buf;
        use tokio::io::AsyncWrite;
        let Some(stream) = &mut self.stream else {
            return Poll::Ready(Err(std::io::ErrorKind::NotConnected.into()));
        };
        while !self.out.is_empty() {
            let written = ready!(Pin::new(&mut *stream).poll_write(cx, &self.out))?;
            if written == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(written);
        }
        Poll::Ready(Ok(()))
    }

    /// Sends the request `parts` with `body` and reads until its response head, skipping
    /// interim (1xx) responses other than 101. The body goes out while the response is
    /// awaited; a backend answering before it has all of it gets the connection closed after
    /// the response. `idempotent`: the request may be sent again after a close.
    async fn exchange<B>(
        &mut self,
        parts: &Parts,
        body: &mut B,
        idempotent: bool,
    ) -> Result<upstream::Head, ExchangeError>
    where
        B: Body<Data = Bytes, Error = BoxError> + Unpin,
    {
        let target = parts.uri.path_and_query().map_or_else(
            || {
                parts
                    .uri
                    .authority()
                    .map_or("/", |authority| authority.as_str())
            },
            PathAndQuery::as_str,
        );
        let size = body.size_hint();
        self.out.clear();
        let framing = upstream::encode_request(
            &parts.method,
            target,
            &parts.headers,
            size.exact(),
            body.is_end_stream(),
            &mut self.out,
        );
        let mut body_done = framing == RequestBody::None;
        let mut body_started = false;
        let mut received = false;
        // A failed write ends the sending, not the exchange: a backend that answers early and
        // closes may have sent its answer, which is read before the failure counts.
        let mut write_failed: Option<std::io::Error> = None;
        std::future::poll_fn(|cx| {
            if self.relay.is_stopped() {
                return Poll::Ready(Err(ExchangeError::Io(
                    std::io::ErrorKind::ConnectionAborted.into(),
                )));
            }
            // The request: what is queued, then the body's frames as they come.
            while write_failed.is_none() {
                match self.poll_write_out(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(error)) => {
                        write_failed = Some(error);
                        break;
                    }
                    Poll::Pending => break,
                }
                if body_done {
                    break;
                }
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        body_started = true;
                        if let Ok(data) = frame.into_data()
                            && !data.is_empty()
                        {
                            if framing == RequestBody::Chunked {
                                upstream::encode_chunk(&data, &mut self.out);
                            } else {
                                self.out.extend_from_slice(&data);
                            }
                        }
                    }
                    Poll::Ready(None) => {
                        body_done = true;
                        if framing == RequestBody::Chunked {
                            self.out.extend_from_slice(upstream::LAST_CHUNK);
                        }
                    }
                    Poll::Ready(Some(Err(error))) => {
                        return Poll::Ready(Err(ExchangeError::Body(error)));
                    }
                    Poll::Pending => break,
                }
            }
            // The response head.
            loop {
                match upstream::parse_head(&mut self.buf, &parts.method, &mut self.scratch) {
                    Ok(Some(head))
                        if head.status.is_informational()
                            && head.status != StatusCode::SWITCHING_PROTOCOLS =>
                    {
                        continue;
                    }
                    Ok(Some(mut head)) => {
                        if !body_done || !self.out.is_empty() {
                            // Answered early: the rest of the request is not sent, so the
                            // connection cannot carry another one.
                            head.keep_alive = false;
                        }
                        self.keep_alive = head.keep_alive;
                        return Poll::Ready(Ok(head));
                    }
                    Ok(None) => {}
                    Err(what) => return Poll::Ready(Err(ExchangeError::Invalid(what))),
                }
                match self.poll_fill(cx) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(if received {
                            ExchangeError::Invalid("connection closed inside the response head")
                        } else {
                            ExchangeError::Closed {
                                resendable: !body_started && idempotent,
                            }
                        }));
                    }
                    Poll::Ready(Ok(_)) => received = true,
                    Poll::Ready(Err(error)) => {
                        return Poll::Ready(Err(if received {
                            ExchangeError::Io(error)
                        } else {
                            ExchangeError::Closed {
                                resendable: !body_started && idempotent,
                            }
                        }));
                    }
                    Poll::Pending => break,
                }
            }
            if let Some(error) = write_failed.take() {
                // Nothing more will come: the backend's side is gone too.
                return Poll::Ready(Err(if received {
                    ExchangeError::Io(error)
                } else {
                    ExchangeError::Closed {
                        resendable: !body_started && idempotent,
                    }
                }));
            }
            self.relay.arm(cx.waker());
            // A stop between the check above and the arming woke nobody: look again.
            if self.relay.is_stopped() {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await
    }

    /// After a 101 response: the socket, with any bytes the backend sent after the response
    /// head.
    fn upgraded(&mut self) -> Option<(TcpStream, BytesMut)> {
        self.keep_alive = false;
        let stream = self.stream.take()?;
        Some((stream, std::mem::take(&mut self.buf)))
    }
}

/// Carries the stop of a connection (or tunnel) whose backend's drain timeout passed: the sweep
/// sets it and wakes the task waiting for the connection, if any, which then finds the
/// connection stopped.
#[derive(Debug, Default)]
struct Relay {
    /// The task to wake; `None`: nobody waits.
    target: Mutex<Option<Waker>>,
    /// Set when the connection (or tunnel) is to be cut off.
    stopped: AtomicBool,
}

impl Relay {
    /// Cuts the connection off: marks it stopped and wakes whoever waits for it.
    fn stop(self: &Arc<Self>) {
        self.stopped.store(true, Ordering::Relaxed);
        self.wake_by_ref();
    }

    /// Whether the connection was cut off.
    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Waits until the connection is cut off.
    async fn stopped(&self) {
        std::future::poll_fn(|cx| {
            if self.is_stopped() {
                return Poll::Ready(());
            }
            self.arm(cx.waker());
            // A stop between the check and the arming woke nobody: look again.
            if self.is_stopped() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// The task of `waker` waits for the connection from now on. It must poll the connection
    /// afterwards (what happened before is only seen by polling).
    fn arm(&self, waker: &Waker) {
        let mut target = self.target.lock().unwrap_or_else(PoisonError::into_inner);
        if !target
            .as_ref()
            .is_some_and(|current| current.will_wake(waker))
        {
            *target = Some(waker.clone());
        }
    }

    /// Nobody waits for the connection.
    fn disarm(&self) {
        let previous = self
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(previous);
    }
}

impl Wake for Relay {
    /// Wakes the waiting task, if any.
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    /// Wakes the waiting task, if any.
    fn wake_by_ref(self: &Arc<Self>) {
        let target = self
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(target) = target {
            target.wake();
        }
    }
}

/// A context whose waker does nothing, for checks that wait for nothing.
fn quiet() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

/// An idle upstream connection.
struct IdleConnection {
    /// The connection.
    upstream: Upstream,
    /// When it has been idle for the idle timeout.
    expires: Instant,
}

thread_local! {
    /// This thread's idle upstream connections by backend address, the most recently used last.
    static IDLE: RefCell<FxHashMap<SocketAddr, Vec<IdleConnection>>> =
        RefCell::new(FxHashMap::default());
}

/// Takes this thread's most recently used idle connection to `addr` that is still open,
/// unexpired at `now` and ready for a request.
fn checkout(addr: SocketAddr, now: Instant) -> Option<Upstream> {
    IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(&addr)?;
        while let Some(connection) = list.pop() {
            if connection.expires > now && connection.upstream.is_usable() {
                return Some(connection.upstream);
            }
        }
        None
    })
    .ok()
    .flatten()
}

/// Keeps a connection whose response was read completely among this thread's idle ones, if
/// it can take another request.
fn checkin(mut upstream: Upstream, idle_timeout: Duration) {
    upstream.rest();
    if !upstream.is_usable() {
        return;
    }
    let expires = Instant::now() + idle_timeout;
    let _ = IDLE.try_with(|idle| {
        idle.borrow_mut()
            .entry(upstream.addr)
            .or_default()
            .push(IdleConnection { upstream, expires });
    });
}

/// A connection or tunnel to a backend, watched for the backend's drain deadline.
struct Watched {
    /// The connection's relay; gone once the connection is.
    relay: Weak<Relay>,
    /// The backend it goes to.
    backend: Arc<Backend>,
}

thread_local! {
    /// This thread's upstream connections and tunnels, for the sweep to stop those of drained
    /// backends whose drain timeout passed. Entries of closed connections are dropped by the
    /// sweep, or when the list would grow.
    static WATCHED: RefCell<Vec<Watched>> = const { RefCell::new(Vec::new()) };
}

/// Watches a new connection (or tunnel) to `backend` through its `relay`.
fn watch(relay: &Arc<Relay>, backend: &Arc<Backend>) {
    let _ = WATCHED.try_with(|watched| {
        let mut watched = watched.borrow_mut();
        if watched.len() == watched.capacity() {
            // Before growing, forget the closed ones: the list stays about as long as the
            // thread's open connections even where no sweep runs.
            watched.retain(|entry| entry.relay.strong_count() > 0);
        }
        watched.push(Watched {
            relay: Arc::downgrade(relay),
            backend: Arc::clone(backend),
        });
    });
}

/// Stops this thread's connections and tunnels to drained backends whose drain timeout passed
/// at `now`, and forgets closed ones.
fn stop_expired_drains(now: Instant) {
    let _ = WATCHED.try_with(|watched| {
        watched.borrow_mut().retain(|entry| {
            let Some(relay) = entry.relay.upgrade() else {
                return false;
            };
            if entry.backend.drain_expired(now) {
                tracing::debug!(backend = %entry.backend.addr(), "drain timeout passed: cutting a connection off");
                relay.stop();
                return false;
            }
            true
        });
    });
}

/// Stops the connections of drained backends whose drain timeout passed, and drops this
/// thread's idle connections that expired, were stopped or were closed by their backend.
pub fn expire_idle_connections() {
    let now = Instant::now();
    stop_expired_drains(now);
    let _ = IDLE.try_with(|idle| {
        idle.borrow_mut().retain(|_, list| {
            list.retain(|connection| connection.expires > now && connection.upstream.is_usable());
            !list.is_empty()
        });
    });
}

/// A backend connection after its `101 Switching Protocols`, to be joined to the client's.
/// The request stays counted (outstanding at the backend, in flight in the pool) while the
/// tunnel lasts.
pub struct Tunnel {
    /// The backend's socket.
    stream: TcpStream,
    /// What the backend sent after its response head.
    early: BytesMut,
    /// The request, outstanding at the backend.
    outstanding: Outstanding,
    /// The request, in flight in the pool.
    _in_flight: InFlight,
}

impl fmt::Debug for Tunnel {
    /// The backend's address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnel")
            .field("backend", &self.outstanding.backend().addr())
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// Relays bytes both ways between `client` and the backend until either side closes, or
    /// until the backend's drain timeout passes. `client_early` is what the client sent after
    /// its request head.
    pub async fn join(self, mut client: TcpStream, client_early: &[u8]) {
        let Tunnel {
            stream: mut backend,
            early,
            outstanding,
            _in_flight,
        } = self;
        let relay = Arc::new(Relay::default());
        watch(&relay, outstanding.backend());
        let relay_bytes = async {
            if !early.is_empty() {
                client.write_all(&early).await?;
            }
            if !client_early.is_empty() {
                backend.write_all(client_early).await?;
            }
            tokio::io::copy_bidirectional(&mut client, &mut backend).await?;
            Ok::<(), std::io::Error>(())
        };
        tokio::select! {
            result = relay_bytes => {
                if let Err(error) = result {
                    tracing::debug!(?error, "upgraded connection ended with an error");
                }
            }
            () = relay.stopped() => {
                tracing::debug!(backend = %outstanding.backend().addr(), "drain timeout passed: closing a tunnel");
            }
        }
    }
}

/// The request's host without port: the `Host` header, else the URI's authority (HTTP/2).
fn request_host<B>(request: &Request<B>) -> Option<&str> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))?;
    Some(match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.split(':').next().unwrap_or(host),
    })
}

/// The declared `Content-Length`, if one valid value is given.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether the request asks for a protocol upgrade (HTTP/1.1 `Connection: upgrade` and an
/// `Upgrade` header).
fn is_upgrade<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_11
        && request.headers().contains_key(header::UPGRADE)
        && connection_tokens(request.headers()).any(|token| token.eq_ignore_ascii_case("upgrade"))
}

/// The tokens listed in every `Connection` header.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    tokens(headers.get_all(header::CONNECTION))
}

/// The comma-separated tokens of `values`.
fn tokens<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> impl Iterator<Item = &'a str> {
    values
        .into_iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// `Keep-Alive`, a hop-by-hop header without a constant in `http`.
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The hop-by-hop headers present in a header map.
#[derive(Debug, Default, Clone, Copy)]
struct HopByHop {
    /// `Connection`.
    connection: bool,
    /// `Keep-Alive`.
    keep_alive: bool,
    /// `TE`.
    te: bool,
    /// `Trailer`.
    trailer: bool,
    /// `Transfer-Encoding`.
    transfer_encoding: bool,
    /// `Upgrade`.
    upgrade: bool,
    /// Any `Proxy-*`.
    proxy: bool,
}

impl HopByHop {
    /// Which hop-by-hop headers `headers` has, in one pass over its names.
    fn find(headers: &HeaderMap) -> Self {
        let mut found = Self::default();
        for name in headers.keys() {
            match name.as_str() {
                "connection" => found.connection = true,
                "keep-alive" => found.keep_alive = true,
                "te" => found.te = true,
                "trailer" => found.trailer = true,
                "transfer-encoding" => found.transfer_encoding = true,
                "upgrade" => found.upgrade = true,
                other => found.proxy |= other.starts_with("proxy-"),
            }
        }
        found
    }
}

/// Removes hop-by-hop headers: `Connection` and the headers it names, `Keep-Alive`,
/// `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding` and `Upgrade`. With `upgrade`, `Upgrade`
/// stays and `Connection: upgrade` is set again.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One pass finds what is there; only that is removed (most requests have none of these,
    // most responses only `Connection`).
    let found = HopByHop::find(headers);
    if found.connection {
        // Usually one value: only further ones are collected (no allocation for one).
        let (first, rest): (Option<HeaderValue>, Vec<HeaderValue>) =
            match headers.entry(header::CONNECTION) {
                http::header::Entry::Occupied(entry) => {
                    let mut values = entry.remove_entry_mult().1;
                    (values.next(), values.collect())
                }
                http::header::Entry::Vacant(_) => (None, Vec::new()),
            };
        for token in tokens(first.iter().chain(&rest)) {
            // The fixed hop-by-hop names are removed below, `Upgrade` at the end.
            let fixed = [
                "keep-alive",
                "te",
                "trailer",
                "transfer-encoding",
                "upgrade",
            ]
            .iter()
            .any(|name| token.eq_ignore_ascii_case(name));
            if !fixed {
                headers.remove(token);
            }
        }
    }
    if found.proxy {
        let proxy: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for name in proxy {
            headers.remove(&name);
        }
    }
    if found.keep_alive {
        headers.remove(KEEP_ALIVE);
    }
    if found.te {
        headers.remove(header::TE);
    }
    if found.trailer {
        headers.remove(header::TRAILER);
    }
    if found.transfer_encoding {
        headers.remove(header::TRANSFER_ENCODING);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if found.upgrade {
        headers.remove(header::UPGRADE);
    }
}

/// Readies a request's headers for the backend: hop-by-hop headers out; `Host` from an
/// HTTP/2 request's authority; `X-Forwarded-For` appended, `X-Forwarded-Proto` set,
/// `Forwarded` and `Via` appended.
fn prepare_headers(
    headers: &mut HeaderMap,
    uri: &Uri,
    version: Version,
    peer: &Peer,
    upgrade: bool,
) {
    strip_hop_by_hop(headers, upgrade);
    if let Some(authority) = uri.authority()
        && !headers.contains_key(header::HOST)
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(header::HOST, value);
    }
    match headers.entry(X_FORWARDED_FOR) {
        http::header::Entry::Vacant(entry) => {
            entry.insert(peer.forwarded_for.clone());
        }
        http::header::Entry::Occupied(mut entry) => {
            let previous: Vec<&str> = entry
                .iter()
                .filter_map(|value| value.to_str().ok())
                .collect();
            let value = if previous.is_empty() {
                peer.forwarded_for.clone()
            } else {
                let joined = format!(
                    "{}, {}",
                    previous.join(", "),
                    peer.forwarded_for.to_str().unwrap_or_default()
                );
                HeaderValue::from_str(&joined).unwrap_or_else(|_| peer.forwarded_for.clone())
            };
            entry.insert(value);
        }
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    let host = headers
        .get(header::HOST)
        .map(HeaderValue::as_bytes)
        .filter(|host| host.iter().all(|&b| b.is_ascii_graphic() && b != b'"'));
    let forwarded = match host {
        Some(host) => {
            let mut value = Vec::with_capacity(peer.forwarded.len() + host.len() + 8);
            value.extend_from_slice(&peer.forwarded);
            value.extend_from_slice(b";host=\"");
            value.extend_from_slice(host);
            value.push(b'"');
            HeaderValue::from_maybe_shared(Bytes::from(value))
        }
        None => HeaderValue::from_maybe_shared(peer.forwarded.clone()),
    };
    if let Ok(value) = forwarded {
        headers.append(header::FORWARDED, value);
    }
    headers.append(header::VIA, HeaderValue::from_static(via_value(version)));
}

/// A client IP as hash key bytes: the address and how many of its bytes count.
fn ip_bytes(ip: IpAddr) -> ([u8; 16], usize) {
    let mut bytes = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            bytes[..4].copy_from_slice(&v4.octets());
            (bytes, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// The idle timeout of a streaming body: armed when a poll finds no data, disarmed when data
/// arrives. The timer is allocated on the first wait and then only reset, never reallocated.
#[derive(Debug)]
struct IdleTimer {
    /// How long a wait may last.
    limit: Duration,
    /// The timer, once a wait has happened.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether the current wait's deadline is set.
    armed: bool,
}

impl IdleTimer {
    /// A timer for waits of at most `limit`.
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            sleep: None,
            armed: false,
        }
    }

    /// Data arrived: the next wait starts afresh.
    fn disarm(&mut self) {
        self.armed = false;
    }

    /// Called when the body is pending: arms the deadline if needed; ready once it passed.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if !self.armed {
                    sleep
                        .as_mut()
                        .reset(tokio::time::Instant::now() + self.limit);
                }
                sleep
            }
            None => self.sleep.insert(Box::pin(tokio::time::sleep_until(
                tokio::time::Instant::now() + self.limit,
            ))),
        };
        self.armed = true;
        ready!(sleep.as_mut().poll(cx));
        self.armed = false;
        Poll::Ready(())
    }
}

/// Why the proxy ended a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More than `max_body_bytes` arrived.
    TooLarge,
    /// No data arrived for the idle timeout.
    Idle,
}

impl fmt::Display for BodyError {
    /// One line saying why.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyError::TooLarge => "request body over the size limit",
            BodyError::Idle => "request body idle for too long",
        })
    }
}

impl StdError for BodyError {}

/// The client's request body with the size limit and the idle timeout applied: the body of
/// every upstream request.
#[derive(Debug)]
pub struct Limited<B> {
    /// The body as it arrives.
    inner: B,
    /// Bytes still allowed; `None`: unlimited.
    remaining: Option<u64>,
    /// The wait for the next frame.
    idle: IdleTimer,
}

impl<B> Limited<B> {
    /// `inner` limited to `limit` bytes, with `idle` between frames.
    fn new(inner: B, limit: Option<u64>, idle: Duration) -> Self {
        Self {
            inner,
            remaining: limit,
            idle: IdleTimer::new(idle),
        }
    }
}

impl<B> Body for Limited<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    /// The next frame, or the limit or idle error.
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.idle.disarm();
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                    None => return Poll::Ready(None),
                };
                if let (Some(remaining), Some(data)) = (&mut this.remaining, frame.data_ref()) {
                    let length = data.len() as u64;
                    if length > *remaining {
                        return Poll::Ready(Some(Err(BodyError::TooLarge.into())));
                    }
                    *remaining -= length;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(this.idle.poll_expired(cx));
                Poll::Ready(Some(Err(BodyError::Idle.into())))
            }
        }
    }

    /// Whether the client's body is over.
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    /// The client's body's size.
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The body of every response the proxy sends: its own short answers, or a backend's body.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "the large variant is the common one; boxing it would allocate for every response"
)]
pub enum ProxyBody {
    /// A complete body (`None`: empty, or already sent).
    Full(Option<Bytes>),
    /// A backend's body on its way through.
    Upstream(ResponseBody),
}

impl ProxyBody {
    /// A complete body.
    fn full(bytes: Bytes) -> Self {
        ProxyBody::Full((!bytes.is_empty()).then_some(bytes))
    }

    /// No body.
    fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    /// The next frame.
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut *self {
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            ProxyBody::Upstream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    /// Whether the body is over.
    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(bytes) => bytes.is_none(),
            ProxyBody::Upstream(body) => body.is_end_stream(),
        }
    }

    /// The body's size.
    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |bytes| bytes.len() as u64))
            }
            ProxyBody::Upstream(body) => body.size_hint(),
        }
    }
}

/// Where a response body is: how much of it is left to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// This many bytes left (`Content-Length`).
    Length(u64),
    /// Chunked, decoding.
    Chunked(Chunked),
    /// Everything until the backend closes.
    UntilClose,
    /// Complete.
    Done,
}

impl From<Framing> for BodyState {
    /// The start of a body framed as `framing`.
    fn from(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => BodyState::Done,
            Framing::Length(length) => BodyState::Length(length),
            Framing::Chunked => BodyState::Chunked(Chunked::Size),
            Framing::UntilClose => BodyState::UntilClose,
        }
    }
}

/// A backend's response body on its way to the client, read straight from the backend's
/// socket: the idle timeout applied, the request counted as outstanding until the body ends,
/// a mid-body failure reported to outlier detection, and the connection kept for the next
/// request once the body has been read.
pub struct ResponseBody {
    /// How much is left.
    state: BodyState,
    /// The wait for the next frame.
    idle: IdleTimer,
    /// Outlier detection settings.
    outlier: Option<OutlierConfig>,
    /// The backend's outstanding count, released when the body ends.
    outstanding: Option<Outstanding>,
    /// The connection the body comes over; `None` once the body failed.
    connection: Option<Upstream>,
    /// How long the connection may stay idle afterwards.
    idle_timeout: Duration,
    /// A failure held back for one poll, so that what came before it is flushed to the client
    /// (the response head at least) before the failure aborts the client connection.
    failure: Option<BoxError>,
    /// The pool's in-flight count, released when the body is dropped.
    _in_flight: InFlight,
}

impl fmt::Debug for ResponseBody {
    /// The state, without the connection.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// The backend this body comes from, while the request is outstanding.
    fn backend(&self) -> Option<&Arc<Backend>> {
        self.outstanding.as_ref().map(Outstanding::backend)
    }

    /// The body failed: counted against the backend (unless a drain cut it off), its
    /// connection is not reused, and the error is reported on the next poll (this one says
    /// pending and asks for that poll).
    fn fail(
        &mut self,
        error: BoxError,
        cx: &Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let stopped = self.connection.as_ref().is_some_and(Upstream::is_stopped);
        if !stopped && let Some(backend) = self.backend() {
            backend.record(false, self.outlier.as_ref());
        }
        self.outstanding = None;
        self.connection = None;
        self.failure = Some(error);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// The body is complete.
    fn finish(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.idle.disarm();
        self.outstanding = None;
        self.state = BodyState::Done;
        Poll::Ready(None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    /// The next frame, or the idle error.
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(error) = this.failure.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if this.state == BodyState::Done {
            return this.finish();
        }
        let Some(connection) = &mut this.connection else {
            return Poll::Ready(None);
        };
        if connection.is_stopped() {
            return this.fail(
                "backend drained: its drain timeout passed mid-body".into(),
                cx,
            );
        }
        loop {
            // First what is already read (usually the whole body, with the response head).
            let data = match &mut this.state {
                BodyState::Done | BodyState::Length(0) => return this.finish(),
                BodyState::Length(left) => {
                    if connection.buf.is_empty() {
                        None
                    } else {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(connection.buf.len());
                        *left -= take as u64;
                        Some(connection.buf.split_to(take).freeze())
                    }
                }
                BodyState::Chunked(chunked) => match chunked.decode(&mut connection.buf) {
                    Ok(Decoded::Data(data)) => Some(data),
                    Ok(Decoded::End) => return this.finish(),
                    Ok(Decoded::NeedMore) => None,
                    Err(what) => {
                        connection.keep_alive = false;
                        return this.fail(what.into(), cx);
                    }
                },
                BodyState::UntilClose => {
                    (!connection.buf.is_empty()).then(|| connection.buf.split().freeze())
                }
            };
            if let Some(data) = data {
                this.idle.disarm();
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            match connection.poll_fill(cx) {
                Poll::Ready(Ok(0)) if this.state == BodyState::UntilClose => {
                    connection.keep_alive = false;
                    return this.finish();
                }
                Poll::Ready(Ok(0)) => {
                    return this.fail("backend closed the connection mid-body".into(), cx);
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => return this.fail(error.into(), cx),
                Poll::Pending => {
                    connection.relay.arm(cx.waker());
                    ready!(this.idle.poll_expired(cx));
                    return this.fail("backend response body idle for too long".into(), cx);
                }
            }
        }
    }

    /// Whether the backend's body is over (not while a failure waits to be reported).
    fn is_end_stream(&self) -> bool {
        self.failure.is_none() && matches!(self.state, BodyState::Done | BodyState::Length(0))
    }

    /// The backend's body's size, when known.
    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Done => SizeHint::with_exact(0),
            BodyState::Length(left) => SizeHint::with_exact(left),
            BodyState::Chunked(_) | BodyState::UntilClose => SizeHint::default(),
        }
    }
}

impl Drop for ResponseBody {
    /// Keeps the connection when the whole body was read.
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take()
            && matches!(self.state, BodyState::Done | BodyState::Length(0))
        {
            checkin(connection, self.idle_timeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers from `(name, value)` pairs.
    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "basic"),
            ("proxy-connection", "close"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut map, false);
        let names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);

        let mut map = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        strip_hop_by_hop(&mut map, true);
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["connection"], "upgrade");
        assert_eq!(map["sec-websocket-key"], "k");
    }

    #[test]
    fn hop_by_hop_names_in_several_connection_headers_are_removed() {
        let mut map = headers(&[
            ("connection", "Keep-Alive, x-one"),
            ("connection", "close, X-Two"),
            ("x-one", "1"),
            ("x-two", "2"),
            ("close", "named by a token"),
            ("keep-alive", "timeout=5"),
            ("proxy-foo", "bar"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut map, false);
        let names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
        let mut map = headers(&[("host", "h"), ("x-kept", "yes")]);
        strip_hop_by_hop(&mut map, false);
        assert_eq!(map.len(), 2, "nothing to strip");
    }

    /// A waker counting its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        /// One more.
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_relay_wakes_only_an_armed_target_once() {
        let count = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        let target = Waker::from(Arc::clone(&count));
        let relay = Arc::new(Relay::default());
        let waker = Waker::from(Arc::clone(&relay));
        waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "nobody armed");
        relay.arm(&target);
        relay.arm(&target);
        waker.wake_by_ref();
        waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "a wake-up disarms");
        relay.arm(&target);
        relay.disarm();
        waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "disarmed");
    }

    /// A backend on loopback that answers every request with `ok` on a kept-alive
    /// connection and then, if `close_idle`, closes the connection 50 ms later without saying
    /// so; returns its address and how many connections it accepted.
    async fn counting_backend(
        close_idle: bool,
    ) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        while !buffer.windows(4).any(|window| window == b"\r\n\r\n") {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buffer.clear();
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                        if close_idle {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    /// `count` sequential GETs on one client connection through a balancer in front of
    /// `backend`, `pause` apart; the statuses and bodies.
    async fn through_balancer(backend: SocketAddr, count: usize, pause: Duration) -> Vec<String> {
        use http_body_util::BodyExt;
        let text = format!(
            "[dns]\nlisten = [\"127.0.0.1:53\"]\nzones_dir = \"z\"\n[balancers.web]\n\
             listen = \"127.0.0.1:0\"\nbackends = [{{ addr = \"{backend}\" }}]\n"
        );
        let config = crate::config::Config::parse(&text, std::path::Path::new("m.toml"))
            .unwrap()
            .balancers
            .remove(0);
        let balancer = super::super::listener::RunningBalancer::start(&config).unwrap();
        // One client connection, so that every request reaches the same worker (a pooled
        // client may open a second one, which may go to the other worker and its own idle
        // upstream connections).
        let stream = tokio::net::TcpStream::connect(balancer.local_addr())
            .await
            .unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake::<
            _,
            http_body_util::Empty<Bytes>,
        >(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
        tokio::spawn(connection);
        let mut answers = Vec::new();
        for _ in 0..count {
            sender
                .ready()
                .await
                .expect("the client connection stays open");
            let request = Request::get("/x")
                .header(header::HOST, balancer.local_addr().to_string())
                .body(http_body_util::Empty::new())
                .unwrap();
            let response = sender.send_request(request).await.expect("an answer");
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            answers.push(format!(
                "{} {}",
                status.as_u16(),
                String::from_utf8_lossy(&body)
            ));
            tokio::time::sleep(pause).await;
        }
        balancer.shutdown().await;
        answers
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upstream_connections_are_kept_alive_and_reused() {
        let (backend, accepted) = counting_backend(false).await;
        let answers = through_balancer(backend, 20, Duration::ZERO).await;
        assert!(
            answers.iter().all(|answer| answer == "200 ok"),
            "{answers:?}"
        );
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one upstream connection"
        );
    }

    /// A connection to a fresh loopback listener, and the backend's side of it.
    async fn connected() -> (Upstream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        let (backend, _) = listener.accept().await.unwrap();
        let upstream = Upstream {
            addr,
            stream: Some(stream),
            buf: BytesMut::new(),
            out: BytesMut::new(),
            keep_alive: true,
            drained: false,
            relay: Arc::new(Relay::default()),
            scratch: upstream::HeadScratch::default(),
        };
        (upstream, backend)
    }

    /// A request head for `method` on `/`.
    fn request_parts(method: Method) -> Parts {
        Request::builder()
            .method(method)
            .uri("/")
            .header(header::HOST, "backend.test")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    /// A request body of `text` (empty: none).
    fn body_of(text: &'static str) -> http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError> {
        use http_body_util::BodyExt;
        http_body_util::Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    /// A request body of unknown length, fed through a channel.
    struct Feed(tokio::sync::mpsc::Receiver<Bytes>);

    impl Body for Feed {
        type Data = Bytes;
        type Error = BoxError;

        /// The next piece sent, or the end once the sender is gone.
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0
                .poll_recv(cx)
                .map(|piece| piece.map(|bytes| Ok(Frame::data(bytes))))
        }
    }

    #[tokio::test]
    async fn a_close_before_the_answer_allows_a_resend_only_when_nothing_could_have_been_done() {
        use tokio::io::AsyncReadExt;
        for (method, text, resendable) in [
            (Method::GET, "", true),
            (Method::DELETE, "", true),
            (Method::POST, "", false),
            (Method::PUT, "payload", false),
        ] {
            let (mut upstream, backend) = connected().await;
            drop(backend);
            let idempotent = method != Method::POST;
            let error = upstream
                .exchange(
                    &request_parts(method.clone()),
                    &mut body_of(text),
                    idempotent,
                )
                .await
                .expect_err("the backend closed");
            assert!(
                matches!(error, ExchangeError::Closed { resendable: r } if r == resendable),
                "{method} {text:?}: {error:?}"
            );
        }

        // A backend that answers halfway through the body: the answer counts, and the
        // connection is not used again.
        let (mut upstream, mut backend) = connected().await;
        let answer = tokio::spawn(async move {
            let mut head = [0u8; 256];
            let _ = backend.read(&mut head).await.unwrap();
            backend
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            backend
        });
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let mut body = Feed(receiver);
        sender.send(Bytes::from_static(b"part")).await.unwrap();
        let mut parts = request_parts(Method::POST);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("1000"));
        let head = upstream.exchange(&parts, &mut body, false).await.unwrap();
        assert_eq!(head.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!upstream.keep_alive, "the rest of the body was never sent");
        drop(answer.await.unwrap());
        drop(sender);
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_and_a_body_goes_chunked_without_a_length() {
        use tokio::io::AsyncReadExt;
        let (mut upstream, mut backend) = connected().await;
        let seen = tokio::spawn(async move {
            let mut request = Vec::new();
            let mut chunk = [0u8; 256];
            while !request.ends_with(b"0\r\n\r\n") {
                let n = backend.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the whole request arrives");
                request.extend_from_slice(&chunk[..n]);
            }
            backend
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            (String::from_utf8(request).unwrap(), backend)
        });
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        let mut body = Feed(receiver);
        let send = async move {
            sender.send(Bytes::from_static(b"abc")).await.unwrap();
            sender.send(Bytes::from_static(b"de")).await.unwrap();
        };
        let parts = request_parts(Method::PUT);
        let (head, ()) = tokio::join!(upstream.exchange(&parts, &mut body, true), send);
        let head = head.unwrap();
        assert_eq!(head.status, StatusCode::CREATED);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(upstream.keep_alive);
        assert_eq!(
            &upstream.buf[..],
            b"ok",
            "the body stays for the response body"
        );
        let (request, _backend) = seen.await.unwrap();
        assert!(
            request.ends_with("transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
            "{request:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_on_a_connection_the_backend_closed_goes_on_a_new_one() {
        let (backend, accepted) = counting_backend(true).await;
        let answers = through_balancer(backend, 5, Duration::from_millis(100)).await;
        assert!(
            answers.iter().all(|answer| answer == "200 ok"),
            "{answers:?}"
        );
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            5,
            "a new connection each time"
        );
    }

    #[test]
    fn forwarding_headers_are_added() {
        let mut map = headers(&[
            ("x-forwarded-for", "192.0.2.1"),
            ("host", "www.example.com"),
        ]);
        let uri = Uri::from_static("/x");
        prepare_headers(
            &mut map,
            &uri,
            Version::HTTP_11,
            &Peer::new("127.0.0.1:5000".parse().unwrap()),
            false,
        );
        assert_eq!(map["x-forwarded-for"], "192.0.2.1, 127.0.0.1");
        assert_eq!(map["x-forwarded-proto"], "http");
        assert_eq!(
            map["forwarded"],
            "for=127.0.0.1;proto=http;host=\"www.example.com\""
        );
        assert_eq!(map["via"], "1.1 meridian");

        let mut map = HeaderMap::new();
        let uri = Uri::from_static("http://h2.example:8080/x");
        prepare_headers(
            &mut map,
            &uri,
            Version::HTTP_2,
            &Peer::new("[::1]:5000".parse().unwrap()),
            false,
        );
        assert_eq!(map["host"], "h2.example:8080");
        assert_eq!(map["x-forwarded-for"], "::1");
        assert!(
            map["forwarded"]
                .to_str()
                .unwrap()
                .starts_with("for=\"[::1]\"")
        );
        assert_eq!(map["via"], "2.0 meridian");
    }

    #[test]
    fn cookies_hosts_and_lengths() {
        let map = headers(&[("cookie", "a=1; session=\"abc\""), ("cookie", "b=2")]);
        assert_eq!(cookie(&map, "session").as_deref(), Some("abc"));
        assert_eq!(cookie(&map, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&map, "c"), None);
        let request = Request::builder()
            .uri("/")
            .header("host", "API.example.com:8080")
            .body(())
            .unwrap();
        assert_eq!(request_host(&request), Some("API.example.com"));
        let request = Request::builder()
            .uri("/")
            .header("host", "[::1]:80")
            .body(())
            .unwrap();
        assert_eq!(request_host(&request), Some("::1"));
        assert_eq!(
            content_length(&headers(&[("content-length", "12")])),
            Some(12)
        );
        assert_eq!(content_length(&headers(&[("content-length", "x")])), None);
        assert_eq!(ip_bytes("10.1.2.3".parse().unwrap()).1, 4);
    }
}
