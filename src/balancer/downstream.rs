//! The client side of HTTP/1.x connections, spoken by the proxy itself.
//!
//! A connection is served by one task that owns its socket, its read buffer and its write
//! buffer, and reuses all three for every request: request heads are parsed out of the read
//! buffer (the field values stay slices of it), request bodies (length-delimited or chunked) are
//! read from the socket as the proxy sends them on, and responses are encoded into the write
//! buffer with the framing the client's version allows, the body's first data beside the head,
//! so that a small response leaves in one write. Keep-alive, pipelining, `Expect:
//! 100-continue` and upgrades (the connection joined to the backend's after a 101) are handled
//! here; a connection that opens with the HTTP/2 preface is handed to hyper's HTTP/2 server
//! with what was read of it.
//!
//! Waits are bounded by the balancer's `idle_timeout`: for the next request head on a kept-alive
//! connection (closed silently), for the rest of a started head (408), and for the client to
//! take response data. Malformed heads get 400, heads over `max_header_bytes` 431, and
//! versions other than HTTP/1.0 and 1.1 505; each closes the connection.

use std::fmt::Write as _;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, SizeHint};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::listener::Phase;
use super::proxy::{self, BoxError, ClientConnection, ProxyBody};
use super::upstream::{Chunked, Decoded};

/// The first bytes of every HTTP/2 connection (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The most header fields a request head may have.
const MAX_HEADERS: usize = 100;

/// Free space the read buffer is given before each read.
const READ_SPACE: usize = 8 * 1024;

/// Body data up to this size is copied into the write buffer, to leave in one write with what
/// precedes it; larger data is written from where it is.
const COPY_LIMIT: usize = 16 * 1024;

/// The interim response to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How a client connection ended.
#[derive(Debug)]
pub enum Ending {
    /// Closed (by either side, or after an error).
    Closed,
    /// It opened with the HTTP/2 preface: the socket and what was read from it.
    Http2(TcpStream, Bytes),
}

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not a valid HTTP/1.x request head, or invalid framing: 400.
    Malformed(&'static str),
    /// Over `max_header_bytes` or [`MAX_HEADERS`] fields: 431.
    TooLarge,
    /// Not HTTP/1.0 or HTTP/1.1: 505.
    Version,
}

impl HeadError {
    /// The status and body of the answer.
    fn answer(self) -> (StatusCode, &'static str) {
        match self {
            HeadError::Malformed(_) => (
                StatusCode::BAD_REQUEST,
                "400 Bad Request: the request head is not valid HTTP/1.1\n",
            ),
            HeadError::TooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "431 Request Header Fields Too Large\n",
            ),
            HeadError::Version => (
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "505 HTTP Version Not Supported\n",
            ),
        }
    }
}

/// How much of a request body is still to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    /// This many bytes (`Content-Length`).
    Length(u64),
    /// Chunked, decoding.
    Chunked(Chunked),
    /// Read to its end (or there is none).
    Done,
    /// The client closed or sent invalid chunked framing: the connection cannot go on.
    Broken,
}

/// A parsed request head, apart from the request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// The body.
    pub body: BodyState,
    /// Whether the client keeps the connection open after this request.
    pub keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
}

/// Where a field of the head lies in the read buffer.
#[derive(Debug, Clone, Copy, Default)]
struct Field {
    /// The name's start and end.
    name: (usize, usize),
    /// The value's start and end.
    value: (usize, usize),
}

/// The offset range of `part` inside `whole` (`part` borrows from `whole`).
fn range(whole: &[u8], part: &[u8]) -> (usize, usize) {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    (start, start + part.len())
}

/// Parses the request head at the start of `buf`. `Ok(None)`: incomplete. A complete head is
/// taken out of `buf`; its fields go into the map taken from `headers` (emptied first), their
/// values slices of the head's bytes.
///
/// # Errors
///
/// When the head is malformed, too large, of another HTTP version, or frames its body in a way
/// that cannot be trusted (RFC 9112 §6).
pub fn parse_head(
    buf: &mut BytesMut,
    max_bytes: usize,
    headers: &mut HeaderMap,
) -> Result<Option<(Request<()>, Framing)>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let length = match request.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buf.len() >= max_bytes => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(HeadError::Version),
        Err(error) => return Err(HeadError::Malformed(what_is_wrong(error))),
    };
    if length > max_bytes {
        return Err(HeadError::TooLarge);
    }
    let method = request.method.unwrap_or_default();
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;
    let target = range(buf, request.path.unwrap_or_default().as_bytes());
    let version = if request.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut fields = [Field::default(); MAX_HEADERS];
    let count = request.headers.len();
    let mut framing = Framing {
        body: BodyState::Done,
        keep_alive: version == Version::HTTP_11,
        expect_continue: false,
    };
    let mut length_seen: Option<u64> = None;
    let mut chunked = None;
    for (field, slot) in fields.iter_mut().zip(request.headers.iter()) {
        field.name = range(buf, slot.name.as_bytes());
        field.value = range(buf, slot.value);
        let name = slot.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let value =
                parse_length(slot.value).ok_or(HeadError::Malformed("invalid Content-Length"))?;
            if length_seen.is_some_and(|seen| seen != value) {
                return Err(HeadError::Malformed("conflicting Content-Length values"));
            }
            length_seen = Some(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // The last coding of the last field is the one that frames the body.
            chunked = Some(
                last_token(slot.value).is_some_and(|token| token.eq_ignore_ascii_case(b"chunked")),
            );
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in slot.value.split(|&byte| byte == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    framing.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == Version::HTTP_10 {
                    framing.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            framing.expect_continue = slot
                .value
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue");
        }
    }
    // An HTTP/1.0 client cannot keep the connection once it has said close, whatever order.
    if version == Version::HTTP_10 && framing.keep_alive {
        framing.keep_alive = !request
            .headers
            .iter()
            .filter(|slot| slot.name.eq_ignore_ascii_case("connection"))
            .flat_map(|slot| slot.value.split(|&byte| byte == b','))
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
    }
    framing.body = match (chunked, length_seen) {
        // RFC 9112 §6.1: both at once is how requests are smuggled; refused, as nginx does.
        (Some(_), Some(_)) => {
            return Err(HeadError::Malformed(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        (Some(_), None) if version == Version::HTTP_10 => {
            return Err(HeadError::Malformed(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        (Some(true), None) => BodyState::Chunked(Chunked::Size),
        // RFC 9112 §6.3: a request whose final coding is not chunked has no knowable length.
        (Some(false), None) => {
            return Err(HeadError::Malformed(
                "Transfer-Encoding does not end with chunked",
            ));
        }
        (None, Some(0) | None) => BodyState::Done,
        (None, Some(length)) => BodyState::Length(length),
    };
    if !framing.body_follows() {
        framing.expect_continue = false;
    }
    let head = buf.split_to(length).freeze();
    let mut headers = std::mem::take(headers);
    let uri = Uri::from_maybe_shared(head.slice(target.0..target.1))
        .map_err(|_| HeadError::Malformed("invalid request target"))?;
    headers.clear();
    headers.reserve(count);
    for field in &fields[..count] {
        let name = HeaderName::from_bytes(&head[field.name.0..field.name.1])
            .map_err(|_| HeadError::Malformed("invalid field name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(field.value.0..field.value.1))
            .map_err(|_| HeadError::Malformed("invalid field value"))?;
        headers.append(name, value);
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(Some((request, framing)))
}

impl Framing {
    /// Whether body bytes follow the head.
    pub fn body_follows(&self) -> bool {
        !matches!(self.body, BodyState::Done)
    }
}

/// What a parse error says about the head.
fn what_is_wrong(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid field name",
        httparse::Error::HeaderValue => "invalid field value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid method or request target",
        _ => "invalid request line",
    }
}

/// A `Content-Length` value: digits only, as RFC 9110 §8.6 has it.
fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The last comma-separated token of `value`, if it has one.
fn last_token(value: &[u8]) -> Option<&[u8]> {
    value
        .rsplit(|&byte| byte == b',')
        .map(<[u8]>::trim_ascii)
        .find(|token| !token.is_empty())
}

/// A request's body, read from the client's connection as the proxy asks for it.
struct RequestBody<'a> {
    /// The client's socket.
    stream: &'a TcpStream,
    /// The connection's read buffer: the body's first bytes may already be there.
    buf: &'a mut BytesMut,
    /// What is left to read.
    state: &'a mut BodyState,
    /// The part of `100 Continue` still to be written before the body is read.
    continue_left: &'static [u8],
}

impl RequestBody<'_> {
    /// Writes what is left of `100 Continue`.
    fn poll_continue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.continue_left.is_empty() {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(self.continue_left) {
                Ok(written) => self.continue_left = &self.continue_left[written..],
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The body cannot be read on: the connection ends after the response.
    fn broken(&mut self, error: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        *self.state = BodyState::Broken;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for RequestBody<'_> {
    type Data = Bytes;
    type Error = BoxError;

    /// The next data the client sent.
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Err(error) = ready!(this.poll_continue(cx)) {
            return this.broken(error.into());
        }
        loop {
            let data = match this.state {
                BodyState::Done | BodyState::Broken => return Poll::Ready(None),
                BodyState::Length(0) => {
                    *this.state = BodyState::Done;
                    return Poll::Ready(None);
                }
                BodyState::Length(left) => (!this.buf.is_empty()).then(|| {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(this.buf.len());
                    *left -= take as u64;
                    this.buf.split_to(take).freeze()
                }),
                BodyState::Chunked(chunked) => match chunked.decode(this.buf) {
                    Ok(Decoded::Data(data)) => Some(data),
                    Ok(Decoded::End) => {
                        *this.state = BodyState::Done;
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::NeedMore) => None,
                    Err(what) => return this.broken(what.into()),
                },
            };
            if let Some(data) = data {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            match ready!(poll_fill(this.stream, this.buf, cx)) {
                Ok(0) => return this.broken("the client closed the connection mid-body".into()),
                Ok(_) => {}
                Err(error) => return this.broken(error.into()),
            }
        }
    }

    /// Whether the body is over.
    fn is_end_stream(&self) -> bool {
        matches!(
            self.state,
            BodyState::Done | BodyState::Broken | BodyState::Length(0)
        )
    }

    /// The body's length, when declared.
    fn size_hint(&self) -> SizeHint {
        match *self.state {
            BodyState::Length(left) => SizeHint::with_exact(left),
            BodyState::Chunked(_) => SizeHint::default(),
            BodyState::Done | BodyState::Broken => SizeHint::with_exact(0),
        }
    }
}

/// Reads what the socket has into `buf`; the count (0: the client closed).
fn poll_fill(
    stream: &TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    loop {
        buf.reserve(READ_SPACE);
        match stream.try_read_buf(buf) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            result => return Poll::Ready(result),
        }
        ready!(stream.poll_read_ready(cx))?;
    }
}

/// How a response's body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    /// No body (HEAD, 1xx, 204, 304, a successful CONNECT).
    Nothing,
    /// `Content-Length`.
    Length,
    /// Chunked (HTTP/1.1, length unknown).
    Chunked,
    /// Until the connection closes (HTTP/1.0, length unknown).
    UntilClose,
}

/// One client connection being served.
struct Connection {
    /// The socket.
    stream: TcpStream,
    /// Read, not yet parsed.
    buf: BytesMut,
    /// Encoded, not yet written.
    out: Vec<u8>,
    /// The balancer's idle timeout (from the config the connection started with).
    idle_timeout: Duration,
    /// The balancer's `max_header_bytes`.
    max_header_bytes: usize,
}

/// Serves the HTTP/1.x client connection `stream` until it ends; a connection that opens with
/// the HTTP/2 preface is handed back. A change of `phase` away from [`Phase::Run`] makes the
/// connection finish the request in hand (its response says `connection: close`) and close.
pub async fn serve(
    stream: TcpStream,
    client: &ClientConnection,
    mut phase: watch::Receiver<Phase>,
) -> Ending {
    let (idle_timeout, max_header_bytes) = {
        let topology = client.shared.pool.topology();
        (
            topology.config.idle_timeout,
            topology.config.max_header_bytes,
        )
    };
    let mut connection = Connection {
        stream,
        buf: BytesMut::with_capacity(READ_SPACE),
        out: Vec::with_capacity(READ_SPACE),
        idle_timeout,
        max_header_bytes,
    };
    let mut draining = *phase.borrow_and_update() != Phase::Run;
    let mut first = true;
    let mut headers = HeaderMap::new();
    loop {
        let parsed = match connection
            .next_head(&mut phase, &mut draining, first, &mut headers)
            .await
        {
            Ok(Next::Request(request, framing)) => (request, framing),
            Ok(Next::Http2) => {
                let Connection { stream, buf, .. } = connection;
                return Ending::Http2(stream, buf.freeze());
            }
            Ok(Next::Closed) => return Ending::Closed,
            Err(status) => {
                let (status, text) = status.answer();
                connection.answer_error(status, text).await;
                return Ending::Closed;
            }
        };
        first = false;
        let (request, mut framing) = parsed;
        let method_head = request.method() == Method::HEAD;
        let connect = request.method() == Method::CONNECT;
        let version = request.version();
        let (response, tunnel) = {
            let (parts, ()) = request.into_parts();
            let body = RequestBody {
                stream: &connection.stream,
                buf: &mut connection.buf,
                state: &mut framing.body,
                continue_left: if framing.expect_continue {
                    CONTINUE
                } else {
                    &[]
                },
            };
            proxy::respond(client, Request::from_parts(parts, body)).await
        };
        // A body the proxy did not read is skipped when it is already here; else the
        // connection cannot find the next request and ends after this response.
        match framing.body {
            BodyState::Done => {}
            BodyState::Length(left) if left <= connection.buf.len() as u64 => {
                let _ = connection
                    .buf
                    .split_to(usize::try_from(left).unwrap_or(usize::MAX));
            }
            BodyState::Length(_) | BodyState::Chunked(_) | BodyState::Broken => {
                framing.keep_alive = false;
            }
        }
        if !draining && phase.has_changed().unwrap_or(true) {
            draining = *phase.borrow_and_update() != Phase::Run;
        }
        if draining {
            framing.keep_alive = false;
        }
        if let Some(tunnel) = tunnel {
            let (parts, _) = response.into_parts();
            connection.encode_head(&parts, version, Sending::Nothing, 0, true);
            if let Err(error) = connection.flush().await {
                tracing::debug!(%error, "client went away before the upgrade");
                return Ending::Closed;
            }
            let Connection { stream, buf, .. } = connection;
            tunnel.join(stream, &buf).await;
            return Ending::Closed;
        }
        let no_body = method_head
            || response.status().is_informational()
            || response.status() == StatusCode::NO_CONTENT
            || response.status() == StatusCode::NOT_MODIFIED
            || (connect && response.status().is_success());
        if connect && response.status().is_success() {
            // The backend took the connection for a tunnel, which is not relayed.
            framing.keep_alive = false;
        }
        match connection
            .send(response, version, no_body, &mut framing.keep_alive)
            .await
        {
            Ok(recycled) => headers = recycled,
            Err(error) => {
                tracing::debug!(peer = %client.peer.addr(), %error, "client connection ended with an error");
                return Ending::Closed;
            }
        }
        if !framing.keep_alive {
            return Ending::Closed;
        }
    }
}

/// What the connection found next.
#[expect(
    clippy::large_enum_variant,
    reason = "the large variant is the common one; boxing it would allocate for every request"
)]
enum Next {
    /// A request.
    Request(Request<()>, Framing),
    /// The HTTP/2 preface.
    Http2,
    /// The client closed, or the connection stayed idle for the idle timeout, or it was idle
    /// when the balancer began draining.
    Closed,
}

impl Connection {
    /// Reads until a whole request head is in the buffer, and parses it.
    async fn next_head(
        &mut self,
        phase: &mut watch::Receiver<Phase>,
        draining: &mut bool,
        first: bool,
        headers: &mut HeaderMap,
    ) -> Result<Next, HeadError> {
        let mut deadline = None;
        loop {
            if first && self.buf.len() < PREFACE.len() && PREFACE.starts_with(&self.buf) {
                // Maybe the preface: wait for more before parsing.
            } else if first && self.buf.starts_with(PREFACE) {
                return Ok(Next::Http2);
            } else if !self.buf.is_empty()
                && let Some((request, framing)) =
                    parse_head(&mut self.buf, self.max_header_bytes, headers)?
            {
                return Ok(Next::Request(request, framing));
            }
            if *draining && self.buf.is_empty() {
                return Ok(Next::Closed);
            }
            self.buf.reserve(READ_SPACE);
            match self.stream.try_read_buf(&mut self.buf) {
                Ok(0) => return Ok(Next::Closed),
                Ok(_) => continue,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => {
                    tracing::debug!(%error, "client connection read failed");
                    return Ok(Next::Closed);
                }
            }
            let deadline =
                *deadline.get_or_insert_with(|| tokio::time::Instant::now() + self.idle_timeout);
            tokio::select! {
                biased;
                ready = self.stream.readable() => {
                    if let Err(error) = ready {
                        tracing::debug!(%error, "client connection failed");
                        return Ok(Next::Closed);
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    if self.buf.is_empty() {
                        return Ok(Next::Closed);
                    }
                    self.answer_error(
                        StatusCode::REQUEST_TIMEOUT,
                        "408 Request Timeout: the request head did not arrive in time\n",
                    )
                    .await;
                    return Ok(Next::Closed);
                }
                changed = phase.changed(), if !*draining => {
                    *draining = changed.is_err() || *phase.borrow_and_update() != Phase::Run;
                }
            }
        }
    }

    /// Answers a refused head or a timeout with `status` and `text`, and ends the connection.
    async fn answer_error(&mut self, status: StatusCode, text: &'static str) {
        let response = proxy::error_response(status, text);
        let mut keep_alive = false;
        if let Err(error) = self
            .send(response, Version::HTTP_11, false, &mut keep_alive)
            .await
        {
            tracing::debug!(%error, "cannot send an error answer to the client");
        }
    }

    /// Sends `response` to a client speaking `version`; `no_body`: the response has none
    /// whatever its headers say. `keep_alive` is cleared when the framing needs a close.
    /// Hands back the response's emptied header map.
    async fn send(
        &mut self,
        response: Response<ProxyBody>,
        version: Version,
        no_body: bool,
        keep_alive: &mut bool,
    ) -> io::Result<HeaderMap> {
        let (parts, mut body) = response.into_parts();
        let sending = if no_body {
            Sending::Nothing
        } else if body.size_hint().exact().is_some() {
            Sending::Length
        } else if version == Version::HTTP_11 {
            Sending::Chunked
        } else {
            *keep_alive = false;
            Sending::UntilClose
        };
        let length = body.size_hint().exact().unwrap_or(0);
        self.encode_head(&parts, version, sending, length, *keep_alive);
        let mut headers = parts.headers;
        headers.clear();
        if sending == Sending::Nothing {
            self.flush().await?;
            return Ok(headers);
        }
        loop {
            // What the body has at once goes with what is buffered; only a wait flushes.
            let frame = match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    self.flush().await?;
                    poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                }
            };
            let data = match frame {
                None => break,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    // Trailers: not relayed.
                    Err(_) => continue,
                },
                Some(Err(error)) => {
                    // What came before the failure goes out; the connection then ends, so
                    // that the client sees the response cut short.
                    let _ = self.flush().await;
                    return Err(io::Error::other(error));
                }
            };
            if data.is_empty() {
                continue;
            }
            if sending == Sending::Chunked {
                let _ = write!(Text(&mut self.out), "{:x}\r\n", data.len());
            }
            if data.len() <= COPY_LIMIT {
                self.out.extend_from_slice(&data);
            } else {
                self.flush().await?;
                write_all(&self.stream, &data, self.idle_timeout).await?;
            }
            if sending == Sending::Chunked {
                self.out.extend_from_slice(b"\r\n");
            }
            // Data that keeps coming at once leaves in writes of about this size, not whole.
            if self.out.len() >= COPY_LIMIT {
                self.flush().await?;
            }
        }
        if sending == Sending::Chunked {
            self.out.extend_from_slice(b"0\r\n\r\n");
        }
        self.flush().await?;
        Ok(headers)
    }

    /// Encodes the status line and fields of `parts` into the write buffer, with the framing
    /// fields of `sending` (`length` for [`Sending::Length`]), `Date` unless the response has
    /// one, and the `Connection` field the client's `version` and `keep_alive` call for.
    fn encode_head(
        &mut self,
        parts: &http::response::Parts,
        version: Version,
        sending: Sending,
        length: u64,
        keep_alive: bool,
    ) {
        let out = &mut self.out;
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(parts.status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(
            parts
                .status
                .canonical_reason()
                .unwrap_or("Unknown")
                .as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
        let status = parts.status;
        let switching = status == StatusCode::SWITCHING_PROTOCOLS;
        // Framing fields are the proxy's to write, except where the response has no body but
        // its fields describe the one it would have had (HEAD, 304).
        let own_framing = matches!(
            sending,
            Sending::Length | Sending::Chunked | Sending::UntilClose
        ) || status.is_informational()
            || status == StatusCode::NO_CONTENT;
        for (name, value) in &parts.headers {
            if own_framing && (name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING)
            {
                continue;
            }
            if name == header::CONNECTION && !switching {
                continue;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !parts.headers.contains_key(header::DATE) {
            out.extend_from_slice(b"date: ");
            date::append(out);
            out.extend_from_slice(b"\r\n");
        }
        match sending {
            Sending::Length => {
                out.extend_from_slice(b"content-length: ");
                let _ = write!(Text(out), "{length}");
                out.extend_from_slice(b"\r\n");
            }
            Sending::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            Sending::Nothing | Sending::UntilClose => {}
        }
        if !switching {
            if !keep_alive && version == Version::HTTP_11 {
                out.extend_from_slice(b"connection: close\r\n");
            } else if keep_alive && version == Version::HTTP_10 {
                out.extend_from_slice(b"connection: keep-alive\r\n");
            }
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Writes the write buffer out.
    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = write_all(&self.stream, &self.out, self.idle_timeout).await;
        self.out.clear();
        result
    }
}

/// Writes all of `data`, waiting at most `idle` each time the client takes nothing.
async fn write_all(stream: &TcpStream, mut data: &[u8], idle: Duration) -> io::Result<()> {
    while !data.is_empty() {
        match stream.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => data = &data[written..],
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::timeout(idle, stream.writable())
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")
                    })??;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Formats into a byte vector (`fmt::Write` for `Vec<u8>`).
struct Text<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Text<'_> {
    /// Appends `s`.
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The `Date` field value, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// The second last formatted, and its text.
    struct Cached {
        /// Seconds since the epoch.
        second: u64,
        /// `Sun, 06 Nov 1994 08:49:37 GMT`.
        text: String,
    }

    thread_local! {
        /// This thread's cached date.
        static CACHED: RefCell<Cached> = const {
            RefCell::new(Cached { second: u64::MAX, text: String::new() })
        };
    }

    /// Appends the current date, as an HTTP date, to `out`.
    pub fn append(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let second = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        CACHED.with_borrow_mut(|cached| {
            if cached.second != second {
                cached.second = second;
                cached.text = httpdate::fmt_http_date(now);
            }
            out.extend_from_slice(cached.text.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` with a limit of 8 KiB.
    fn parse(text: &str) -> Result<Option<(Request<()>, Framing)>, HeadError> {
        parse_head(&mut BytesMut::from(text), 8192, &mut HeaderMap::new())
    }

    /// The framing of the complete head `text`.
    fn framing(text: &str) -> Framing {
        parse(text).expect("valid").expect("complete").1
    }

    #[test]
    fn a_head_is_taken_out_of_the_buffer_with_its_fields() {
        let mut buf = BytesMut::from(
            "GET /a?b=1 HTTP/1.1\r\nHost: x.example\r\nX-Two: 1\r\nX-Two: 2\r\n\r\nNEXT",
        );
        let mut map = HeaderMap::new();
        map.insert("x-stale", HeaderValue::from_static("old"));
        let (request, framing) = parse_head(&mut buf, 8192, &mut map).unwrap().unwrap();
        assert_eq!(&buf[..], b"NEXT", "only the head is taken");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/a?b=1");
        assert_eq!(request.version(), Version::HTTP_11);
        assert_eq!(request.headers()["host"], "x.example");
        assert_eq!(request.headers().get_all("x-two").iter().count(), 2);
        assert!(
            !request.headers().contains_key("x-stale"),
            "a reused map is emptied"
        );
        assert_eq!(
            framing,
            Framing {
                body: BodyState::Done,
                keep_alive: true,
                expect_continue: false
            }
        );
    }

    #[test]
    fn an_incomplete_head_takes_nothing_until_it_is_over_the_limit() {
        let partial = "GET / HTTP/1.1\r\nHost: x\r\n";
        let mut buf = BytesMut::from(partial);
        assert!(matches!(
            parse_head(&mut buf, 8192, &mut HeaderMap::new()),
            Ok(None)
        ));
        assert_eq!(&buf[..], partial.as_bytes());
        let long = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n", "a".repeat(9000));
        assert_eq!(parse(&long).err(), Some(HeadError::TooLarge));
        let complete = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(9000));
        assert_eq!(parse(&complete).err(), Some(HeadError::TooLarge));
        let many: String = (0..=MAX_HEADERS).map(|n| format!("X-{n}: 1\r\n")).collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).err(),
            Some(HeadError::TooLarge)
        );
    }

    #[test]
    fn rfc9112_6_body_framing() {
        assert_eq!(
            framing("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").body,
            BodyState::Length(12)
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").body,
            BodyState::Done
        );
        // Repeated identical lengths are one length (RFC 9110 §8.6).
        assert_eq!(
            framing("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").body,
            BodyState::Length(5)
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").body,
            BodyState::Chunked(Chunked::Size)
        );
        for refused in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                matches!(parse(refused), Err(HeadError::Malformed(_))),
                "{refused:?} must be refused"
            );
        }
    }

    #[test]
    fn rfc9112_9_3_persistence_follows_version_and_connection() {
        assert!(framing("GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!framing("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!framing("GET / HTTP/1.1\r\nConnection: te, close\r\n\r\n").keep_alive);
        assert!(!framing("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(framing("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(
            !framing("GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n")
                .keep_alive
        );
    }

    #[test]
    fn expect_continue_counts_only_with_a_body() {
        let with_body = "PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
        assert!(framing(with_body).expect_continue);
        assert!(!framing("GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expect_continue);
        assert!(
            !framing("PUT / HTTP/1.1\r\nExpect: other\r\nContent-Length: 3\r\n\r\n")
                .expect_continue
        );
    }

    #[test]
    fn malformed_heads_and_other_versions_are_refused() {
        assert_eq!(
            parse("GET / HTTP/3.0\r\n\r\n").err(),
            Some(HeadError::Version)
        );
        for malformed in [
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
        ] {
            assert!(
                matches!(parse(malformed), Err(HeadError::Malformed(_))),
                "{malformed:?} must be refused"
            );
        }
        assert_eq!(
            HeadError::Version.answer().0,
            StatusCode::HTTP_VERSION_NOT_SUPPORTED
        );
        assert_eq!(
            HeadError::TooLarge.answer().0,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert_eq!(
            HeadError::Malformed("x").answer().0,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn absolute_and_authority_form_targets_are_kept() {
        let (request, _) = parse("GET http://x.example/p HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(request.uri().host(), Some("x.example"));
        assert_eq!(request.uri().path(), "/p");
        let (request, _) = parse("CONNECT x.example:443 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            request.uri().authority().map(|a| a.as_str()),
            Some("x.example:443")
        );
    }
}
