//! HTTP/1.1 towards backends, without I/O: the request head as bytes, the response head
//! parsed (with `httparse`) into `http` types, how the response body is framed
//! (RFC 9112 §6.3), and the chunked body decoder (RFC 9112 §7.1).
//!
//! The proxy writes and reads the backend's socket itself (see `proxy::Upstream`), so an
//! exchange needs no channel, no second task and no copy of the body: the response body's
//! bytes go to the client as slices of the buffer they were read into.

use std::mem::MaybeUninit;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

/// Most header lines a backend's response head may have.
const MAX_HEADERS: usize = 128;

/// Longest response head a backend may send.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Longest chunk-size line (with extensions) or trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// How the request body goes to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body.
    None,
    /// As is: `Content-Length` says how long it is.
    Length,
    /// With chunked transfer coding.
    Chunked,
}

/// Writes a request head for `method`, `target` (origin form, or authority form for
/// CONNECT) and `headers` into `out`, with the framing header `body` needs; hop-by-hop
/// headers must be gone already. `length` is the body's exact length when known.
pub fn encode_request(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    length: Option<u64>,
    body_ended: bool,
    out: &mut BytesMut,
) -> RequestBody {
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    out.reserve(method.as_str().len() + target.len() + size + 48);
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    let has_length = headers.contains_key(header::CONTENT_LENGTH);
    let body = if body_ended && !has_length {
        // A body-carrying method says its body is empty; others send nothing.
        if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
            out.put_slice(b"content-length: 0\r\n");
        }
        RequestBody::None
    } else if has_length {
        if body_ended && length == Some(0) {
            RequestBody::None
        } else {
            RequestBody::Length
        }
    } else if let Some(length) = length {
        out.put_slice(b"content-length: ");
        out.put_slice(itoa(length, &mut [0u8; 20]));
        out.put_slice(b"\r\n");
        if length == 0 {
            RequestBody::None
        } else {
            RequestBody::Length
        }
    } else {
        out.put_slice(b"transfer-encoding: chunked\r\n");
        RequestBody::Chunked
    };
    out.put_slice(b"\r\n");
    body
}

/// `n` in decimal, written at the end of `buf`.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Writes one chunk of the chunked transfer coding around `data` into `out`.
pub fn encode_chunk(data: &[u8], out: &mut BytesMut) {
    out.reserve(data.len() + 20);
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = data.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n % 16];
        n /= 16;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[at..]);
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// The last chunk, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a HEAD response, 1xx, 204, 304, a successful CONNECT).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the backend closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    /// Status code.
    pub status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields.
    pub headers: HeaderMap,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection can take another request once the body is read.
    pub keep_alive: bool,
}

/// Where a field's name and value are in a head: name offset and length, value offset and
/// length.
type FieldSpan = (usize, usize, usize, usize);

/// A header map with room for more fields than this is not kept for reuse.
const MAX_RECYCLED_FIELDS: usize = 64;

/// Memory kept from head to head, so that parsing a response head allocates nothing once a
/// connection is warm: where the fields are, and an empty header map to fill.
#[derive(Debug, Default)]
pub struct HeadScratch {
    /// The fields' places in the head being parsed.
    spans: Vec<FieldSpan>,
    /// An empty map, with room, for the next head's fields.
    headers: Option<HeaderMap>,
}

impl HeadScratch {
    /// Keeps `headers`, emptied, to hold the next head's fields (a request's map, done with,
    /// becomes the response's). A map with room for more than a few dozen fields is dropped.
    pub fn recycle(&mut self, mut headers: HeaderMap) {
        if headers.capacity() <= MAX_RECYCLED_FIELDS {
            headers.clear();
            self.headers = Some(headers);
        }
    }
}

/// Parses a complete response head at the start of `buf` and takes it out of `buf`;
/// `Ok(None)` when more bytes are needed. Interim (1xx) responses other than 101 are parsed
/// like any other: the caller skips them. `method` is the request's; `scratch` lends memory.
///
/// # Errors
///
/// What is wrong with the head, when it is not a valid HTTP/1.x response head or its length
/// headers contradict each other.
pub fn parse_head(
    buf: &mut BytesMut,
    method: &Method,
    scratch: &mut HeadScratch,
) -> Result<Option<Head>, &'static str> {
    // Left uninitialised: httparse writes the fields it finds (zeroing all of them would cost
    // more than the parse).
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut fields,
    );
    let length = match parsed {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            return Err("response head too large");
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err("too many response header fields"),
        Err(_) => return Err("invalid response head"),
    };
    let code = response.code.ok_or("invalid response head")?;
    let status = StatusCode::from_u16(code).map_err(|_| "invalid status code")?;
    let version = if response.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Where each field's name and value are in the head, so that the values can be slices of
    // the frozen head: no copies.
    let start = buf.as_ptr() as usize;
    let spans = &mut scratch.spans;
    spans.clear();
    spans.extend(response.headers.iter().map(|field| {
        (
            field.name.as_ptr() as usize - start,
            field.name.len(),
            field.value.as_ptr() as usize - start,
            field.value.len(),
        )
    }));
    let bytes = buf.split_to(length).freeze();
    let mut headers = scratch.headers.take().unwrap_or_default();
    headers.reserve(spans.len());
    let mut lengths: Option<u64> = None;
    let mut chunked = None;
    let mut close = version == Version::HTTP_10;
    for &(name_at, name_len, value_at, value_len) in spans.iter() {
        let raw_name = &bytes[name_at..name_at + name_len];
        let raw_value = &bytes[value_at..value_at + value_len];
        let name = HeaderName::from_bytes(raw_name).map_err(|_| "invalid response header name")?;
        let value = HeaderValue::from_maybe_shared(bytes.slice(value_at..value_at + value_len))
            .map_err(|_| "invalid response header value")?;
        if name == header::CONTENT_LENGTH {
            let text = std::str::from_utf8(raw_value).map_err(|_| "invalid Content-Length")?;
            for part in text.split(',') {
                let part = part.trim();
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("invalid Content-Length");
                }
                let n: u64 = part.parse().map_err(|_| "invalid Content-Length")?;
                if lengths.is_some_and(|previous| previous != n) {
                    return Err("conflicting Content-Length values");
                }
                lengths = Some(n);
            }
        } else if name == header::TRANSFER_ENCODING {
            // Only the last coding decides whether the body is chunked.
            if let Some(last) = raw_value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .rfind(|coding| !coding.is_empty())
            {
                chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            }
        } else if name == header::CONNECTION {
            for token in raw_value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == Version::HTTP_10 {
                    close = false;
                }
            }
        }
        headers.append(name, value);
    }
    let no_body = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || (*method == Method::CONNECT && status.is_success());
    let framing = if no_body {
        Framing::Empty
    } else if let Some(chunked) = chunked {
        // Transfer-Encoding wins over Content-Length, and such a message may be an attempt at
        // smuggling: the connection is not used again (RFC 9112 §6.3, item 3).
        if lengths.is_some() {
            headers.remove(header::CONTENT_LENGTH);
            close = true;
        }
        if chunked {
            Framing::Chunked
        } else {
            close = true;
            Framing::UntilClose
        }
    } else if let Some(length) = lengths {
        Framing::Length(length)
    } else {
        close = true;
        Framing::UntilClose
    };
    // After a 101 or a successful CONNECT the connection carries something else.
    let tunnel = status == StatusCode::SWITCHING_PROTOCOLS
        || (*method == Method::CONNECT && status.is_success());
    Ok(Some(Head {
        status,
        version,
        headers,
        framing,
        keep_alive: !close && !tunnel,
    }))
}

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data: this many bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: the trailer section up to its empty line.
    Trailers,
    /// The body is complete.
    Done,
}

/// What the chunked decoder found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body data.
    Data(Bytes),
    /// More bytes are needed.
    NeedMore,
    /// The body is complete (trailers, if any, are dropped).
    End,
}

impl Chunked {
    /// Decodes what it can from the start of `buf`, taking what it used out of `buf`.
    ///
    /// # Errors
    ///
    /// When the bytes are not a valid chunked body.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, &'static str> {
        loop {
            match *self {
                Chunked::Done => return Ok(Decoded::End),
                Chunked::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        let _ = buf.split_to(used);
                        *self = if size == 0 {
                            Chunked::Trailers
                        } else {
                            Chunked::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                        return Err("chunk-size line too long");
                    }
                    Ok(httparse::Status::Partial) => return Ok(Decoded::NeedMore),
                    Err(_) => return Err("invalid chunk-size line"),
                },
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    *self = if left == 0 {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF");
                    }
                    let _ = buf.split_to(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers => {
                    // Trailer fields, then an empty line; with no trailers just the empty line.
                    if buf.starts_with(b"\r\n") {
                        let _ = buf.split_to(2);
                        *self = Chunked::Done;
                        continue;
                    }
                    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(buf, &mut fields) {
                        Ok(httparse::Status::Complete((used, _))) => {
                            let _ = buf.split_to(used);
                            *self = Chunked::Done;
                        }
                        Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                            return Err("trailer section too long");
                        }
                        Ok(httparse::Status::Partial) => return Ok(Decoded::NeedMore),
                        Err(_) => return Err("invalid trailer section"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head parsed from `text` for a GET.
    fn head(text: &str) -> Result<Option<Head>, &'static str> {
        parse_head(
            &mut BytesMut::from(text),
            &Method::GET,
            &mut HeadScratch::default(),
        )
    }

    #[test]
    fn request_heads_carry_the_framing_their_body_needs() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("b.example"));
        let mut out = BytesMut::new();
        let body = encode_request(&Method::GET, "/x?y=1", &headers, Some(0), true, &mut out);
        assert_eq!(body, RequestBody::None);
        assert_eq!(&out[..], b"GET /x?y=1 HTTP/1.1\r\nhost: b.example\r\n\r\n");

        out.clear();
        let body = encode_request(&Method::POST, "/", &headers, Some(0), true, &mut out);
        assert_eq!(body, RequestBody::None);
        assert!(out.ends_with(b"content-length: 0\r\n\r\n"));

        out.clear();
        let body = encode_request(&Method::POST, "/", &headers, Some(1234), false, &mut out);
        assert_eq!(body, RequestBody::Length);
        assert!(out.ends_with(b"content-length: 1234\r\n\r\n"));

        out.clear();
        let body = encode_request(&Method::PUT, "/", &headers, None, false, &mut out);
        assert_eq!(body, RequestBody::Chunked);
        assert!(out.ends_with(b"transfer-encoding: chunked\r\n\r\n"));

        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        out.clear();
        let body = encode_request(&Method::POST, "/", &headers, None, false, &mut out);
        assert_eq!(body, RequestBody::Length);
        assert_eq!(
            out.windows(14).filter(|w| w == b"content-length").count(),
            1,
            "the client's length is kept, not doubled"
        );

        let mut chunk = BytesMut::new();
        encode_chunk(&[7u8; 300], &mut chunk);
        assert!(chunk.starts_with(b"12c\r\n"));
        assert!(chunk.ends_with(b"\r\n"));
        assert_eq!(chunk.len(), 5 + 300 + 2);
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0, 7, 10, 99, 100, 65_536, u64::MAX] {
            assert_eq!(itoa(n, &mut [0u8; 20]), n.to_string().as_bytes());
        }
    }

    #[test]
    fn response_framing_follows_rfc_9112_section_6_3() {
        let cases: &[(&str, Framing, bool)] = &[
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n",
                Framing::Length(2),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n",
                Framing::Length(2),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                Framing::Chunked,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n",
                Framing::Chunked,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
                Framing::UntilClose,
                false,
            ),
            // Both: chunked wins and the connection is not reused.
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 9\r\ntransfer-encoding: chunked\r\n\r\n",
                Framing::Chunked,
                false,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", Framing::UntilClose, false),
            (
                "HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n",
                Framing::Empty,
                true,
            ),
            ("HTTP/1.1 304 Not Modified\r\n\r\n", Framing::Empty, true),
            ("HTTP/1.1 100 Continue\r\n\r\n", Framing::Empty, true),
            (
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
                Framing::Empty,
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n",
                Framing::Length(2),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n",
                Framing::Length(2),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n",
                Framing::Length(2),
                true,
            ),
        ];
        for (text, framing, keep_alive) in cases {
            let head = head(text).unwrap().unwrap();
            assert_eq!(head.framing, *framing, "{text:?}");
            assert_eq!(head.keep_alive, *keep_alive, "{text:?}");
        }
        let head =
            head("HTTP/1.1 200 OK\r\ncontent-length: 9\r\ntransfer-encoding: chunked\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(!head.headers.contains_key(header::CONTENT_LENGTH));

        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n");
        let head = parse_head(&mut buf, &Method::HEAD, &mut HeadScratch::default())
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, Framing::Empty, "a HEAD response has no body");
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\n\r\n");
        let head = parse_head(&mut buf, &Method::CONNECT, &mut HeadScratch::default())
            .unwrap()
            .unwrap();
        assert_eq!((head.framing, head.keep_alive), (Framing::Empty, false));
    }

    #[test]
    fn a_recycled_map_holds_only_the_next_heads_fields() {
        let mut scratch = HeadScratch::default();
        let mut request = HeaderMap::new();
        request.insert(header::HOST, HeaderValue::from_static("b.example"));
        request.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        scratch.recycle(request);
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 0\r\n\r\n");
        let head = parse_head(&mut buf, &Method::GET, &mut scratch)
            .unwrap()
            .unwrap();
        let names: Vec<_> = head.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-a", "content-length"]);
        scratch.recycle(head.headers);
        let mut buf = BytesMut::from("HTTP/1.1 204 No Content\r\nx-b: 2\r\n\r\n");
        let head = parse_head(&mut buf, &Method::GET, &mut scratch)
            .unwrap()
            .unwrap();
        let names: Vec<_> = head.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-b"]);

        let mut large = HeaderMap::with_capacity(MAX_RECYCLED_FIELDS * 2);
        large.insert(header::HOST, HeaderValue::from_static("b.example"));
        scratch.recycle(large);
        assert!(scratch.headers.is_none(), "a large map is not kept");
    }

    #[test]
    fn response_heads_are_taken_out_of_the_buffer_with_their_fields() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 404 Not Found\r\nX-A: 1\r\nx-a: 2\r\ncontent-length: 3\r\n\r\nabcHTTP",
        );
        let head = parse_head(&mut buf, &Method::GET, &mut HeadScratch::default())
            .unwrap()
            .unwrap();
        assert_eq!(head.status, StatusCode::NOT_FOUND);
        assert_eq!(head.version, Version::HTTP_11);
        let values: Vec<_> = head.headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(&buf[..], b"abcHTTP", "the body and what follows stay");
    }

    #[test]
    fn partial_and_invalid_heads() {
        assert!(head("HTTP/1.1 200 OK\r\ncontent-le").unwrap().is_none());
        assert!(head("").unwrap().is_none());
        for bad in [
            "HTTX/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: +1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
        ] {
            assert!(head(bad).is_err(), "{bad:?}");
        }
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "x: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(head(&many).unwrap_err(), "too many response header fields");
        let long = format!("HTTP/1.1 200 OK\r\nx: {}", "y".repeat(MAX_HEAD_BYTES));
        assert_eq!(head(&long).unwrap_err(), "response head too large");
    }

    /// Decodes `input` fed `step` bytes at a time; the data, or the first error.
    fn dechunk(input: &[u8], step: usize) -> Result<Vec<u8>, &'static str> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match state.decode(&mut buf)? {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::End => return Ok(body),
                Decoded::NeedMore if fed >= input.len() => return Err("incomplete"),
                Decoded::NeedMore => {
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_at_any_split() {
        let input = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nx-sum: 1\r\n\r\n";
        for step in 1..=input.len() {
            assert_eq!(
                dechunk(input, step).unwrap(),
                b"hello0123456789",
                "step {step}"
            );
        }
        assert_eq!(dechunk(b"0\r\n\r\n", 1).unwrap(), b"");
        for bad in [
            &b"z\r\n"[..],
            b"5\r\nhelloXY0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
            b"ffffffffffffffffff\r\n",
        ] {
            assert!(dechunk(bad, 1).is_err(), "{bad:?}");
        }
        assert_eq!(dechunk(b"5\r\nhel", 3).unwrap_err(), "incomplete");
        let long = [b"1;".as_slice(), &[b'a'; MAX_CHUNK_LINE + 1]].concat();
        assert!(dechunk(&long, 64).is_err());
    }

    #[test]
    fn what_follows_a_chunked_body_stays_in_the_buffer() {
        let mut buf = BytesMut::from("2\r\nok\r\n0\r\n\r\nHTTP/1.1");
        let mut state = Chunked::Size;
        assert_eq!(
            state.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from_static(b"ok"))
        );
        assert_eq!(state.decode(&mut buf).unwrap(), Decoded::End);
        assert_eq!(&buf[..], b"HTTP/1.1");
    }
}
