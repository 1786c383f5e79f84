//! The balancer's client side of HTTP/1.x, byte for byte: raw requests over a socket to a pool
//! in front of in-process backends, checked against RFC 9112 (message syntax, framing,
//! persistence) and RFC 9110 (semantics), by section.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::balancer::{Behaviour, backend, pool_addr, raw_backend, server, web};
use crate::harness::TestServer;

/// A response as the client read it.
#[derive(Debug)]
struct Answer {
    /// The status code.
    status: u16,
    /// The fields, names lowercased, in order.
    fields: Vec<(String, String)>,
    /// The body, de-chunked.
    body: Vec<u8>,
}

impl Answer {
    /// The value of field `name`, if present.
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as text.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw client connection with what it has read and not yet used.
struct Raw {
    /// The socket.
    stream: TcpStream,
    /// Read, not yet used.
    buf: Vec<u8>,
}

impl Raw {
    /// Connects to `addr`.
    async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("connect to the pool"),
            buf: Vec::new(),
        }
    }

    /// Sends `bytes`.
    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .write_all(bytes.as_ref())
            .await
            .expect("send to the pool");
    }

    /// Reads more into the buffer; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .expect("the pool answers in time");
        match read {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads one response; `head_only`: it answers a HEAD (no body whatever its fields say).
    async fn answer(&mut self, head_only: bool) -> Answer {
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(
                self.fill().await,
                "the connection ended before a response head"
            );
        };
        let head = String::from_utf8(self.buf.drain(..end).collect()).expect("a text head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("a status line");
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().expect("a status code");
        let fields: Vec<(String, String)> = lines
            .filter(|line| !line.is_empty())
            .map(|line| {
                let (name, value) = line.split_once(':').expect("name: value");
                (name.to_ascii_lowercase(), value.trim().to_string())
            })
            .collect();
        let mut answer = Answer {
            status,
            fields,
            body: Vec::new(),
        };
        if head_only || status == 204 || status == 304 || status < 200 {
            return answer;
        }
        if let Some(length) = answer.field("content-length") {
            let length: usize = length.parse().expect("a length");
            while self.buf.len() < length {
                assert!(self.fill().await, "the body was cut short");
            }
            answer.body = self.buf.drain(..length).collect();
        } else if answer.field("transfer-encoding") == Some("chunked") {
            loop {
                let line_end = loop {
                    if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break at;
                    }
                    assert!(self.fill().await, "the chunked body was cut short");
                };
                let size = usize::from_str_radix(
                    std::str::from_utf8(&self.buf[..line_end]).expect("a size line"),
                    16,
                )
                .expect("a hex size");
                while self.buf.len() < line_end + 2 + size + 2 {
                    assert!(self.fill().await, "a chunk was cut short");
                }
                answer
                    .body
                    .extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        } else {
            while self.fill().await {}
            answer.body = std::mem::take(&mut self.buf);
        }
        answer
    }

    /// Whether the pool closed the connection (with nothing more sent).
    async fn closed(&mut self) -> bool {
        !self.fill().await && self.buf.is_empty()
    }
}

/// A pool in front of one backend answering with the request it got, with `extra` config.
async fn echo_pool(extra: &str) -> (TestServer, SocketAddr, crate::balancer::TestBackend) {
    let echo = backend("echo", Behaviour::EchoRequest).await;
    let server = server(&web(&[(echo.addr, 1)], extra)).await;
    let addr = pool_addr(&server);
    (server, addr, echo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_9_3_2_pipelined_requests_are_answered_in_order() {
    let (_server, addr, _echo) = echo_pool("").await;
    let mut client = Raw::connect(addr).await;
    client
        .send(
            "GET /one HTTP/1.1\r\nHost: a\r\n\r\n\
             POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
             HEAD /three HTTP/1.1\r\nHost: a\r\n\r\n\
             GET /four HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await;
    let one = client.answer(false).await;
    assert_eq!((one.status, one.text().as_str()), (200, "GET /one\n"));
    assert!(one.field("date").is_some(), "{one:?}");
    assert!(one.field("via").is_some_and(|via| via.contains("meridian")));
    let two = client.answer(false).await;
    assert_eq!(two.text(), "POST /two\nhello");
    // RFC 9110 §9.3.2: a HEAD answer has the GET answer's fields and no body.
    let three = client.answer(true).await;
    assert_eq!(three.status, 200);
    assert_eq!(three.field("content-length"), Some("12"));
    let four = client.answer(false).await;
    assert_eq!(four.text(), "GET /four\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_7_1_chunked_request_bodies_reach_the_backend_whole() {
    let (_server, addr, _echo) = echo_pool("").await;
    let mut client = Raw::connect(addr).await;
    client
        .send(
            "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    client
        .send("1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n")
        .await;
    let answer = client.answer(false).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "POST /c\nhello world");
    // The connection goes on.
    client.send("GET /after HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(client.answer(false).await.text(), "GET /after\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_10_1_1_expect_100_continue_gets_an_interim_answer_before_the_body() {
    let (_server, addr, _echo) = echo_pool("").await;
    let mut client = Raw::connect(addr).await;
    client
        .send("PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .await;
    let interim = client.answer(false).await;
    assert_eq!(interim.status, 100, "{interim:?}");
    client.send("body").await;
    let answer = client.answer(false).await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "PUT /e\nbody")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_6_ambiguous_framing_is_refused_before_any_backend_sees_it() {
    let (_server, addr, echo) = echo_pool("").await;
    for smuggling in [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nbody",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nbody",
        "GET / HTTP/1.1\r\nHost: a\r\nBad Field: x\r\n\r\n",
    ] {
        let mut client = Raw::connect(addr).await;
        client.send(smuggling).await;
        let answer = client.answer(false).await;
        assert_eq!(answer.status, 400, "{smuggling:?}: {answer:?}");
        assert_eq!(answer.field("connection"), Some("close"));
        assert!(client.closed().await, "{smuggling:?}: the connection ends");
    }
    assert_eq!(echo.served.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431_and_other_versions_505() {
    let (_server, addr, echo) = echo_pool("max_header_bytes = 8192").await;
    let mut client = Raw::connect(addr).await;
    client
        .send(format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
            "b".repeat(9000)
        ))
        .await;
    let answer = client.answer(false).await;
    assert_eq!(answer.status, 431, "{answer:?}");
    assert!(client.closed().await);
    let mut client = Raw::connect(addr).await;
    client.send("GET / HTTP/3.0\r\nHost: a\r\n\r\n").await;
    assert_eq!(client.answer(false).await.status, 505);
    assert!(client.closed().await);
    assert_eq!(echo.served.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_9_3_persistence_follows_the_clients_version_and_wishes() {
    let (_server, addr, _echo) = echo_pool("").await;
    // HTTP/1.0 without keep-alive: one answer, then the close.
    let mut client = Raw::connect(addr).await;
    client.send("GET /a HTTP/1.0\r\n\r\n").await;
    let answer = client.answer(false).await;
    assert_eq!(answer.text(), "GET /a\n");
    assert!(client.closed().await);
    // HTTP/1.0 with keep-alive: said back, and the connection serves another request.
    let mut client = Raw::connect(addr).await;
    client
        .send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let answer = client.answer(false).await;
    assert_eq!(answer.field("connection"), Some("keep-alive"));
    client
        .send("GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    assert_eq!(client.answer(false).await.text(), "GET /c\n");
    // HTTP/1.1 with close (RFC 9112 §9.6): said back, then the close.
    let mut client = Raw::connect(addr).await;
    client
        .send("GET /d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await;
    let answer = client.answer(false).await;
    assert_eq!(answer.field("connection"), Some("close"));
    assert!(client.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_6_3_unknown_length_answers_are_chunked_for_1_1_and_closed_for_1_0() {
    let chunked = raw_backend(|mut stream| async move {
        let _ = stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  4\r\nchun\r\n3\r\nked\r\n0\r\n\r\n",
            )
            .await;
    })
    .await;
    let server = server(&web(&[(chunked, 1)], "")).await;
    let addr = pool_addr(&server);
    let mut client = Raw::connect(addr).await;
    client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let answer = client.answer(false).await;
    assert_eq!(answer.field("transfer-encoding"), Some("chunked"));
    assert_eq!(answer.text(), "chunked");
    let mut client = Raw::connect(addr).await;
    client
        .send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let answer = client.answer(false).await;
    assert_eq!(answer.field("transfer-encoding"), None, "{answer:?}");
    assert_eq!(answer.field("content-length"), None, "{answer:?}");
    assert_eq!(answer.text(), "chunked", "the close ends the body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_heads_get_408_and_idle_connections_close_quietly() {
    let (_server, addr, echo) = echo_pool("idle_timeout = \"300ms\"").await;
    let mut client = Raw::connect(addr).await;
    client.send("GET /slow HTTP/1.1\r\nHost:").await;
    let answer = client.answer(false).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(client.closed().await);
    // A kept-alive connection with no next request ends without a word.
    let mut client = Raw::connect(addr).await;
    client.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(client.answer(false).await.status, 200);
    let started = tokio::time::Instant::now();
    assert!(client.closed().await, "nothing is sent to an idle client");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(echo.served.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_request_body_is_skipped_when_here_else_the_connection_ends() {
    // No backend can take the requests: the pool answers 503 without reading the bodies.
    let down = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let server = server(&web(&[(down, 1)], "")).await;
    let addr = pool_addr(&server);
    let mut client = Raw::connect(addr).await;
    client
        .send(
            "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
             GET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await;
    let first = client.answer(false).await;
    assert_eq!(first.status, 502, "{first:?}");
    assert_eq!(
        first.field("connection"),
        None,
        "the body was here: the connection goes on"
    );
    let second = client.answer(false).await;
    assert_eq!(second.status, 502);
    // A body still on its way cannot be skipped: the answer closes the connection.
    client
        .send("POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
        .await;
    let third = client.answer(false).await;
    assert_eq!(third.field("connection"), Some("close"), "{third:?}");
    assert!(client.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_intact() {
    let (_server, addr, _echo) = echo_pool("").await;
    let body: Vec<u8> = (0..1_200_000u32).map(|n| b'a' + (n % 26) as u8).collect();
    let mut client = Raw::connect(addr).await;
    let mut request = format!(
        "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    // Sent while the answer is read: neither side may wait for the other to finish.
    let (mut read, mut write) = client.stream.into_split();
    let sender = tokio::spawn(async move {
        write.write_all(&request).await.expect("send the body");
        write
    });
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let expected_body = [b"POST /big\n".as_slice(), &body].concat();
    let head_end = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), read.read(&mut chunk))
            .await
            .expect("the answer in time")
            .expect("read");
        assert!(n > 0, "the connection ended early");
        received.extend_from_slice(&chunk[..n]);
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", expected_body.len())),
        "{head}"
    );
    while received.len() < head_end + expected_body.len() {
        let n = tokio::time::timeout(Duration::from_secs(10), read.read(&mut chunk))
            .await
            .expect("the body in time")
            .expect("read");
        assert!(n > 0, "the body was cut short");
        received.extend_from_slice(&chunk[..n]);
    }
    assert!(
        received[head_end..] == expected_body[..],
        "the body changed on the way"
    );
    let write = sender.await.expect("sender");
    client.stream = read.reunite(write).expect("one socket");
    client.buf.clear();
    client.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(client.answer(false).await.text(), "GET /next\n");
}
