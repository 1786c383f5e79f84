//! The HTTP proxy of one balancer: one request in, routed to a backend set, balanced to a
//! backend, forwarded with streaming bodies, and its answer (or a 502, 503, 504 or 413) back.
//!
//! Errors say where they came from: 503 when no backend is eligible, 502 when the backend
//! refused, reset or answered invalid HTTP, 504 on a timeout, 413 when the request body is over
//! `max_body_bytes`. Idempotent requests are retried on another backend after a connect
//! failure, at most [`MAX_RETRIES`] times, and only while none of the request body was sent.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::pool::{Backend, Chosen, InFlight, Outstanding, Pool, RequestKey, Topology};
use crate::config::{BalancerConfig, HashKey};

/// At most this many retries after the first attempt (each on another backend).
pub const MAX_RETRIES: usize = 2;

/// A boxed error, as hyper's bodies and services carry them.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// The body of every response the proxy sends.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// The upstream HTTP client: a keep-alive pool shared by every client connection.
pub type UpstreamClient = Client<HttpConnector, RequestBody>;

/// Builds the upstream client for a balancer's connect and idle timeouts.
pub fn client(config: &BalancerConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.idle_timeout)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

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

/// What a proxy's requests share: the pool and the upstream client for its settings.
#[derive(Debug)]
pub struct Shared {
    /// Backends, sets, routes and settings.
    pub pool: Arc<Pool>,
    /// The upstream client and the (connect, idle) timeouts it was built for.
    client: arc_swap::ArcSwap<(UpstreamClient, Duration, Duration)>,
    /// Error responses by kind.
    pub counters: Counters,
}

impl Shared {
    /// Shared state for `pool`, with a client for its current settings.
    pub fn new(pool: Arc<Pool>) -> Self {
        let config = Arc::clone(&pool.topology().config);
        Self {
            pool,
            client: arc_swap::ArcSwap::from_pointee((
                client(&config),
                config.connect_timeout,
                config.idle_timeout,
            )),
            counters: Counters::default(),
        }
    }

    /// Rebuilds the upstream client when a reload changed its timeouts (the old client's
    /// connections finish their requests and close).
    pub fn refresh_client(&self) {
        let config = Arc::clone(&self.pool.topology().config);
        let current = self.client.load();
        if current.1 != config.connect_timeout || current.2 != config.idle_timeout {
            self.client.store(Arc::new((
                client(&config),
                config.connect_timeout,
                config.idle_timeout,
            )));
        }
    }
}

/// Serves one request from client `peer`.
pub async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let topology = shared.pool.topology();
    let via = via_value(request.version());
    let mut response = if request.uri().path() == topology.config.health_path
        && matches!(*request.method(), Method::GET | Method::HEAD)
    {
        health_response(&shared.pool)
    } else {
        let guard = shared.pool.enter();
        proxy(&shared, &topology, peer, request, guard).await
    };
    response
        .headers_mut()
        .append(header::VIA, HeaderValue::from_static(via));
    Ok(response)
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
        "latency_ms": (health.latency_ms * 1000.0).round() / 1000.0,
        "capacity": capacity,
    })
    .to_string();
    let status = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = Response::new(full(Bytes::from(body)));
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

/// A complete body.
fn full(bytes: Bytes) -> ProxyBody {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A short text error response.
fn error_response(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::from_static(text.as_bytes())));
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

/// Routes, balances and forwards one request, retrying connect failures when safe.
async fn proxy(
    shared: &Shared,
    topology: &Topology,
    peer: SocketAddr,
    mut request: Request<Incoming>,
    guard: InFlight,
) -> Response<ProxyBody> {
    let config = &topology.config;
    if let Some(limit) = config.max_body_bytes
        && request
            .body()
            .size_hint()
            .exact()
            .or_else(|| content_length(request.headers()))
            .is_some_and(|length| length > limit)
    {
        return Failure::TooLarge.respond(&shared.counters);
    }
    let set_index = {
        let host = request_host(&request);
        topology.route(request.uri().path(), host.as_deref(), request.headers())
    };
    let set = &topology.sets[set_index];
    let upgrade = is_upgrade(&request);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    prepare_headers(&mut parts.headers, &parts.uri, parts.version, peer, upgrade);
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
    let slot = Arc::new(Mutex::new(Some(Limited::new(
        body,
        config.max_body_bytes,
        config.idle_timeout,
    ))));
    let retryable = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    );
    let client = shared.client.load_full();
    let mut tried: [usize; MAX_RETRIES + 1] = [usize::MAX; MAX_RETRIES + 1];
    let mut attempt = 0;
    let mut last_failure = None;
    loop {
        let key_buffer;
        let chosen = {
            let mut key = RequestKey {
                client_ip: Some(peer.ip()),
                ..RequestKey::default()
            };
            let mut hash_owned = None;
            match topology.hash_key() {
                Some(HashKey::ClientIp) => {
                    key_buffer = ip_bytes(peer.ip());
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
            let sticky = config
                .cookie_name
                .as_deref()
                .and_then(|name| cookie(&parts.headers, name));
            key.cookie = sticky.as_deref();
            set.pick(config.algorithm, &key, &tried[..attempt])
        };
        let Some(Chosen {
            index,
            backend,
            set_cookie,
        }) = chosen
        else {
            return last_failure
                .unwrap_or(Failure::NoBackend)
                .respond(&shared.counters);
        };
        tried[attempt] = index;
        let uri = match Uri::builder()
            .scheme("http")
            .authority(backend.authority().clone())
            .path_and_query(path_and_query.as_str())
            .build()
        {
            Ok(uri) => uri,
            Err(_) => return Failure::BadGateway.respond(&shared.counters),
        };
        let mut upstream = Request::new(RequestBody::new(Arc::clone(&slot)));
        *upstream.method_mut() = parts.method.clone();
        *upstream.uri_mut() = uri;
        *upstream.version_mut() = Version::HTTP_11;
        *upstream.headers_mut() = if retryable && attempt < MAX_RETRIES {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        let outstanding = backend.begin();
        let sent = Instant::now();
        let result =
            tokio::time::timeout(config.response_timeout, client.0.request(upstream)).await;
        match result {
            Ok(Ok(mut response)) => {
                let rtt = sent.elapsed();
                backend.observe_latency(rtt);
                shared.pool.observe_latency(rtt);
                let gateway_error = matches!(
                    response.status(),
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                );
                backend.record(!gateway_error, config.outlier.as_ref());
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    let Some(client_upgrade) = client_upgrade else {
                        return Failure::BadGateway.respond(&shared.counters);
                    };
                    let upstream_upgrade = hyper::upgrade::on(&mut response);
                    tokio::spawn(tunnel(client_upgrade, upstream_upgrade, outstanding, guard));
                    let (mut head, _) = response.into_parts();
                    strip_hop_by_hop(&mut head.headers, true);
                    return Response::from_parts(head, full(Bytes::new()));
                }
                let (mut head, body) = response.into_parts();
                strip_hop_by_hop(&mut head.headers, false);
                if let Some(value) = set_cookie
                    && let Some(name) = &config.cookie_name
                    && let Ok(cookie) = HeaderValue::from_str(&format!(
                        "{name}={}; Path=/; HttpOnly",
                        value.to_str().unwrap_or_default()
                    ))
                {
                    head.headers.append(header::SET_COOKIE, cookie);
                }
                let body = ResponseBody {
                    inner: body,
                    idle: IdleTimer::new(config.idle_timeout),
                    outlier: config.outlier,
                    outstanding: Some(outstanding),
                    _in_flight: guard,
                };
                return Response::from_parts(head, body.boxed_unsync());
            }
            Ok(Err(error)) => {
                backend.record(false, config.outlier.as_ref());
                let failure = classify(&error);
                let unsent = lock_slot(&slot).is_some();
                if error.is_connect() && retryable && unsent && attempt < MAX_RETRIES {
                    tracing::debug!(backend = %backend.addr(), ?error, "connect failed; retrying on another backend");
                    shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                    last_failure = Some(failure);
                    attempt += 1;
                    continue;
                }
                tracing::debug!(backend = %backend.addr(), ?error, "upstream request failed");
                return failure.respond(&shared.counters);
            }
            Err(_elapsed) => {
                backend.record(false, config.outlier.as_ref());
                tracing::debug!(backend = %backend.addr(), "backend response timed out");
                return Failure::Timeout.respond(&shared.counters);
            }
        }
    }
}

/// Locks the request body slot.
fn lock_slot(slot: &Mutex<Option<Limited>>) -> std::sync::MutexGuard<'_, Option<Limited>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Maps an upstream client error to the response it deserves.
fn classify(error: &hyper_util::client::legacy::Error) -> Failure {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        if let Some(body) = cause.downcast_ref::<BodyError>() {
            return match body {
                BodyError::TooLarge => Failure::TooLarge,
                BodyError::Idle => Failure::ClientIdle,
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return Failure::Timeout;
        }
        source = cause.source();
    }
    Failure::BadGateway
}

/// Bridges an upgraded client connection and an upgraded backend connection until either
/// side closes; the request stays counted while the tunnel lasts.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    _outstanding: Outstanding,
    _in_flight: InFlight,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(?error, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(?error, "upgraded connection ended with an error");
    }
}

/// The request's host without port: the `Host` header, else the URI's authority (HTTP/2).
fn request_host<B>(request: &Request<B>) -> Option<String> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))?;
    let host = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.split(':').next().unwrap_or(host),
    };
    Some(host.to_owned())
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
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Removes hop-by-hop headers: `Connection` and the headers it names, `Keep-Alive`,
/// `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding` and `Upgrade`. With `upgrade`, `Upgrade`
/// stays and `Connection: upgrade` is set again.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    for name in named {
        if !(upgrade && name == header::UPGRADE) {
            headers.remove(&name);
        }
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(&name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
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
    peer: SocketAddr,
    upgrade: bool,
) {
    strip_hop_by_hop(headers, upgrade);
    if !headers.contains_key(header::HOST)
        && let Some(authority) = uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(header::HOST, value);
    }
    let ip = peer.ip();
    let forwarded_for = {
        let previous: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        if previous.is_empty() {
            ip.to_string()
        } else {
            format!("{}, {ip}", previous.join(", "))
        }
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let node = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let mut forwarded = format!("for={node};proto=http");
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok())
        && host.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
    {
        forwarded.push_str(";host=\"");
        forwarded.push_str(host);
        forwarded.push('"');
    }
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
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
        let deadline = tokio::time::Instant::now() + self.limit;
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if !self.armed {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
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

/// The client's request body with the size limit and the idle timeout applied.
#[derive(Debug)]
pub struct Limited {
    /// The body as it arrives.
    inner: Incoming,
    /// Bytes still allowed; `None`: unlimited.
    remaining: Option<u64>,
    /// The wait for the next frame.
    idle: IdleTimer,
}

impl Limited {
    /// `inner` limited to `limit` bytes, with `idle` between frames.
    fn new(inner: Incoming, limit: Option<u64>, idle: Duration) -> Self {
        Self {
            inner,
            remaining: limit,
            idle: IdleTimer::new(idle),
        }
    }
}

impl Body for Limited {
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

/// The request body handed to the upstream client. It takes the client's body out of a shared
/// slot on its first poll, so after a connect failure (when nothing was polled) the body is
/// still in the slot and a retry can send it elsewhere.
#[derive(Debug)]
pub struct RequestBody {
    /// The slot, until the first poll.
    slot: Option<Arc<Mutex<Option<Limited>>>>,
    /// The body, once taken.
    taken: Option<Limited>,
}

impl RequestBody {
    /// A body that will take its data from `slot`.
    fn new(slot: Arc<Mutex<Option<Limited>>>) -> Self {
        Self {
            slot: Some(slot),
            taken: None,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    /// Takes the body from the slot on the first call, then forwards its frames.
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(slot) = this.slot.take() {
            this.taken = lock_slot(&slot).take();
        }
        match &mut this.taken {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    /// Whether the body is over.
    fn is_end_stream(&self) -> bool {
        match (&self.slot, &self.taken) {
            (Some(slot), _) => lock_slot(slot).as_ref().is_none_or(Limited::is_end_stream),
            (None, Some(body)) => body.is_end_stream(),
            (None, None) => true,
        }
    }

    /// The body's size.
    fn size_hint(&self) -> SizeHint {
        match (&self.slot, &self.taken) {
            (Some(slot), _) => lock_slot(slot)
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), Limited::size_hint),
            (None, Some(body)) => body.size_hint(),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}

/// A backend's response body on its way to the client: the idle timeout applied, the request
/// counted as outstanding until the body ends, and a mid-body failure reported to outlier
/// detection.
struct ResponseBody {
    /// The backend's body.
    inner: Incoming,
    /// The wait for the next frame.
    idle: IdleTimer,
    /// Outlier detection settings.
    outlier: Option<crate::config::OutlierConfig>,
    /// The backend's outstanding count, released when the body ends.
    outstanding: Option<Outstanding>,
    /// The pool's in-flight count, released when the body is dropped.
    _in_flight: InFlight,
}

impl ResponseBody {
    /// The backend this body comes from, while the request is outstanding.
    fn backend(&self) -> Option<&Arc<Backend>> {
        self.outstanding.as_ref().map(Outstanding::backend)
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
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.idle.disarm();
                this.outstanding = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.disarm();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                if let Some(backend) = this.backend() {
                    backend.record(false, this.outlier.as_ref());
                }
                this.outstanding = None;
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Pending => {
                ready!(this.idle.poll_expired(cx));
                if let Some(backend) = this.backend() {
                    backend.record(false, this.outlier.as_ref());
                }
                this.outstanding = None;
                Poll::Ready(Some(Err("backend response body idle for too long".into())))
            }
        }
    }

    /// Whether the backend's body is over.
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    /// The backend's body's size.
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
            "127.0.0.1:5000".parse().unwrap(),
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
            "[::1]:5000".parse().unwrap(),
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
        assert_eq!(request_host(&request).as_deref(), Some("API.example.com"));
        let request = Request::builder()
            .uri("/")
            .header("host", "[::1]:80")
            .body(())
            .unwrap();
        assert_eq!(request_host(&request).as_deref(), Some("::1"));
        assert_eq!(
            content_length(&headers(&[("content-length", "12")])),
            Some(12)
        );
        assert_eq!(content_length(&headers(&[("content-length", "x")])), None);
        assert_eq!(ip_bytes("10.1.2.3".parse().unwrap()).1, 4);
    }
}
