//! The embedded L7 balancer through a real `RunningServer`: in-process backends on loopback
//! port 0 that answer, refuse, reset, hang, answer slowly or with garbage, echo headers or
//! upgrade; a hyper client speaking HTTP/1.1 or h2c to the pool.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{TestServer, default_zones};

/// How an in-process backend behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// 200 with its own name as the body; `/health` answers 200 while healthy, else 503.
    Name,
    /// 200 with `METHOD TARGET` on a line, then the request body.
    EchoRequest,
    /// 200 with the request's headers, one `name: value` line each.
    EchoHeaders,
    /// Answers after this long.
    SlowHeaders(Duration),
    /// 101 to an `Upgrade: echo` request, then echoes bytes.
    UpgradeEcho,
}

/// A running in-process backend.
pub(crate) struct TestBackend {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Whether `/health` answers 200.
    healthy: Arc<AtomicBool>,
    /// Requests it answered (outside `/health`).
    pub(crate) served: Arc<AtomicUsize>,
}

/// Starts a hyper backend named `name`.
pub(crate) async fn backend(name: &'static str, behaviour: Behaviour) -> TestBackend {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("backend addr");
    let healthy = Arc::new(AtomicBool::new(true));
    let served = Arc::new(AtomicUsize::new(0));
    let (healthy_task, served_task) = (Arc::clone(&healthy), Arc::clone(&served));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (healthy, served) = (Arc::clone(&healthy_task), Arc::clone(&served_task));
            let service = service_fn(move |request: Request<Incoming>| {
                let (healthy, served) = (Arc::clone(&healthy), Arc::clone(&served));
                async move {
                    Ok::<_, Infallible>(answer(name, behaviour, &healthy, &served, request).await)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    TestBackend {
        addr,
        healthy,
        served,
    }
}

/// One backend answer.
async fn answer(
    name: &'static str,
    behaviour: Behaviour,
    healthy: &AtomicBool,
    served: &AtomicUsize,
    mut request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if request.uri().path() == "/health" {
        let status = if healthy.load(Ordering::SeqCst) {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut response = Response::new(Full::new(Bytes::from_static(b"health")));
        *response.status_mut() = status;
        return response;
    }
    served.fetch_add(1, Ordering::SeqCst);
    match behaviour {
        Behaviour::Name => {
            let _ = request.body_mut().collect().await;
            Response::new(Full::new(Bytes::from_static(name.as_bytes())))
        }
        Behaviour::EchoRequest => {
            let line = format!("{} {}\n", request.method(), request.uri());
            let body = request
                .body_mut()
                .collect()
                .await
                .map(|body| body.to_bytes())
                .unwrap_or_default();
            let mut text = line.into_bytes();
            text.extend_from_slice(&body);
            Response::new(Full::new(Bytes::from(text)))
        }
        Behaviour::EchoHeaders => {
            let mut text = String::new();
            for (key, value) in request.headers() {
                text.push_str(&format!("{key}: {}\n", value.to_str().unwrap_or("?")));
            }
            Response::new(Full::new(Bytes::from(text)))
        }
        Behaviour::SlowHeaders(delay) => {
            tokio::time::sleep(delay).await;
            Response::new(Full::new(Bytes::from_static(name.as_bytes())))
        }
        Behaviour::UpgradeEcho => {
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buffer).await {
                        if n == 0 || io.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("upgrade", "echo")
                .header("connection", "upgrade")
                .body(Full::new(Bytes::new()))
                .expect("101 response")
        }
    }
}

/// A raw backend that reads a request head and then runs `then` on the socket.
pub(crate) async fn raw_backend<F, Fut>(then: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind raw");
    let addr = listener.local_addr().expect("raw addr");
    let then = Arc::new(then);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let then = Arc::clone(&then);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                then(stream).await;
            });
        }
    });
    addr
}

/// An address nothing listens on (connections are refused).
async fn refusing() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

/// The `backends = [...]` list for `(addr, weight)` pairs.
fn backend_list(backends: &[(SocketAddr, u32)]) -> String {
    let entries: Vec<String> = backends
        .iter()
        .map(|(addr, weight)| format!("{{ addr = \"{addr}\", weight = {weight} }}"))
        .collect();
    format!("[{}]", entries.join(", "))
}

/// A backend set of one backend per `(path prefix, set name, backend)`, each with a route from
/// its prefix, for appending after [`web`].
fn routed_sets(sets: &[(&str, &str, SocketAddr)]) -> String {
    let mut text = String::new();
    for (_, name, addr) in sets {
        text.push_str(&format!(
            "[balancers.web.backend_sets.{name}]\nbackends = {}\n",
            backend_list(&[(*addr, 1)])
        ));
    }
    for (prefix, name, _) in sets {
        text.push_str(&format!(
            "[[balancers.web.routes]]\npath_prefix = \"{prefix}\"\nbackends = \"{name}\"\n"
        ));
    }
    text
}

/// A `[balancers.web]` section with these backends and extra lines.
pub(crate) fn web(backends: &[(SocketAddr, u32)], extra: &str) -> String {
    format!(
        "[balancers.web]\nlisten = \"127.0.0.1:0\"\nbackends = {}\n{extra}\n",
        backend_list(backends)
    )
}

/// Starts a server with `sections` appended to its config.
pub(crate) async fn server(sections: &str) -> TestServer {
    TestServer::custom(&default_zones(), "", sections, &[]).await
}

/// Rewrites the server's config with new `sections` (as `TestServer::custom` writes it).
fn rewrite(server: &TestServer, sections: &str) {
    std::fs::write(
        server.dir.path().join("meridian.toml"),
        format!(
            "[dns]\nlisten = [\"127.0.0.1:0\"]\nzones_dir = \"zones\"\nudp_workers = 2\n\n{sections}\n"
        ),
    )
    .expect("rewrite config");
}

/// The pool's address.
pub(crate) fn pool_addr(server: &TestServer) -> SocketAddr {
    server
        .server
        .balancer("web")
        .expect("balancer web")
        .local_addr()
}

/// An HTTP/1.1 client.
fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `request` and returns the status, the headers and the body (or `None` if the body
/// failed).
async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, Option<String>) {
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .expect("an answer in time")
        .expect("a response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("a body in time")
        .ok()
        .map(|body| String::from_utf8_lossy(&body.to_bytes()).into_owned());
    (status, headers, body)
}

/// `GET path` through the pool at `addr`.
async fn get(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    path: &str,
) -> (StatusCode, http::HeaderMap, Option<String>) {
    let request = Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    send(client, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_follows_nginx_sequence_through_the_proxy() {
    let a = backend("a", Behaviour::Name).await;
    let b = backend("b", Behaviour::Name).await;
    let c = backend("c", Behaviour::Name).await;
    let server = server(&web(
        &[(a.addr, 5), (b.addr, 1), (c.addr, 1)],
        "algorithm = \"weighted_round_robin\"",
    ))
    .await;
    let client = client();
    let mut sequence = String::new();
    for _ in 0..14 {
        let (status, headers, body) = get(&client, pool_addr(&server), "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["via"], "1.1 meridian");
        sequence.push_str(&body.expect("body"));
    }
    assert_eq!(sequence, "aabacaaaabacaa");
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_added_and_hop_by_hop_headers_stripped() {
    let echo = backend("echo", Behaviour::EchoHeaders).await;
    let server = server(&web(&[(echo.addr, 1)], "")).await;
    let request = Request::get(format!("http://{}/x", pool_addr(&server)))
        .header("x-forwarded-for", "192.0.2.7")
        .header("connection", "x-secret")
        .header("x-secret", "hop")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "basic abc")
        .header("te", "trailers")
        .header("x-end-to-end", "kept")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let (status, headers, body) = send(&client(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["via"], "1.1 meridian");
    let body = body.expect("body");
    assert!(
        body.contains("x-forwarded-for: 192.0.2.7, 127.0.0.1\n"),
        "{body}"
    );
    assert!(body.contains("x-forwarded-proto: http\n"), "{body}");
    assert!(
        body.contains("forwarded: for=127.0.0.1;proto=http;host="),
        "{body}"
    );
    assert!(body.contains("via: 1.1 meridian\n"), "{body}");
    assert!(body.contains("x-end-to-end: kept\n"), "{body}");
    for gone in ["x-secret", "keep-alive", "proxy-authorization", "te:"] {
        assert!(!body.contains(gone), "{gone} reached the backend: {body}");
    }
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_has_its_status() {
    let refused = refusing().await;
    let garbage = raw_backend(|mut stream| async move {
        let _ = stream.write_all(b"this is not http\r\n\r\n").await;
    })
    .await;
    let reset_before = raw_backend(|stream| async move {
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        drop(stream);
    })
    .await;
    let hang = raw_backend(|stream| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    })
    .await;
    let reset_mid_body = raw_backend(|mut stream| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial")
            .await;
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        drop(stream);
    })
    .await;
    let ok = backend("ok", Behaviour::Name).await;
    let sections = format!(
        "{}{}",
        web(
            &[(ok.addr, 1)],
            "response_timeout = \"300ms\"\nmax_body_bytes = 16",
        ),
        routed_sets(&[
            ("/refused", "refused", refused),
            ("/garbage", "garbage", garbage),
            ("/reset", "reset", reset_before),
            ("/hang", "hang", hang),
            ("/midbody", "midbody", reset_mid_body),
        ]),
    );
    let server = server(&sections).await;
    let addr = pool_addr(&server);
    let client = client();
    for (path, expect) in [
        ("/refused", StatusCode::BAD_GATEWAY),
        ("/garbage", StatusCode::BAD_GATEWAY),
        ("/reset", StatusCode::BAD_GATEWAY),
        ("/hang", StatusCode::GATEWAY_TIMEOUT),
        ("/ok", StatusCode::OK),
    ] {
        let (status, headers, body) = get(&client, addr, path).await;
        assert_eq!(status, expect, "{path}: {body:?}");
        if expect != StatusCode::OK {
            assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
            assert!(body.expect("body").starts_with(expect.as_str()));
        }
    }
    let (status, _, body) = get(&client, addr, "/midbody").await;
    assert_eq!(status, StatusCode::OK, "headers were already forwarded");
    assert_eq!(body, None, "the truncated body fails at the client");

    let post = |body: &'static [u8]| {
        Request::post(format!("http://{addr}/upload"))
            .body(Full::new(Bytes::from_static(body)))
            .expect("request")
    };
    let (status, _, _) = send(&client, post(b"0123456789abcdefXYZ")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, body) = send(&client, post(b"small")).await;
    assert_eq!((status, body.as_deref()), (StatusCode::OK, Some("ok")));

    // A chunked body (no length) over the limit is cut off and answered 413 too.
    let chunks = Chunks(vec![Bytes::from_static(b"0123456789"); 3].into_iter());
    let chunked = Client::builder(TokioExecutor::new())
        .build_http::<Chunks>()
        .request(
            Request::post(format!("http://{addr}/upload"))
                .body(chunks)
                .expect("request"),
        );
    let response = tokio::time::timeout(Duration::from_secs(10), chunked)
        .await
        .expect("in time")
        .expect("a response");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let balancer = server.server.balancer("web").expect("web");
    let (bad_gateway, _, timeouts, too_large, _) = balancer.error_counts();
    assert!(bad_gateway >= 3, "{bad_gateway}");
    assert_eq!(timeouts, 1);
    assert_eq!(too_large, 2);

    // No eligible backend: 503.
    assert!(balancer.drain(ok.addr));
    let (status, _, body) = get(&client, addr, "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
    assert_eq!(balancer.error_counts().1, 1);
    server.server.shutdown().await;
}

/// A backend speaking HTTP/1.1 by hand, to answer with every framing of RFC 9112 §6.3: it
/// reads each request (its body by `Content-Length` or chunked) and answers by path, on the
/// same connection until an answer ends it; returns its address and how many connections it
/// accepted.
async fn framing_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                loop {
                    let Some((method, path, body)) = read_request(&mut stream, &mut buffer).await
                    else {
                        return;
                    };
                    let (answer, close): (Vec<u8>, bool) = match path.as_str() {
                        "/chunked" => (
                            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                              5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-sum: 11\r\n\r\n"
                                .to_vec(),
                            false,
                        ),
                        "/until-close" => (b"HTTP/1.1 200 OK\r\n\r\nuntil close".to_vec(), true),
                        "/http10" => (
                            b"HTTP/1.0 200 OK\r\ncontent-length: 6\r\n\r\nhttp10".to_vec(),
                            false,
                        ),
                        "/continue" => (
                            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone"
                                .to_vec(),
                            false,
                        ),
                        "/no-content" => (
                            b"HTTP/1.1 204 No Content\r\nx-kind: none\r\n\r\n".to_vec(),
                            false,
                        ),
                        "/both" => (
                            b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\ntransfer-encoding: chunked\r\n\r\n\
                              4\r\nboth\r\n0\r\n\r\n"
                                .to_vec(),
                            false,
                        ),
                        _ if method == "HEAD" => (
                            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n".to_vec(),
                            false,
                        ),
                        _ => {
                            let text = format!("{method} {} bytes: {}", body.len(), String::from_utf8_lossy(&body));
                            (
                                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}", text.len())
                                    .into_bytes(),
                                false,
                            )
                        }
                    };
                    if stream.write_all(&answer).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// Reads one request from `stream` (with what `buffer` already holds): its method, path and
/// body; `None` when the connection ends first.
async fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<(String, String, Vec<u8>)> {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
    let mut words = head.split_whitespace();
    let method = words.next()?.to_ascii_uppercase();
    let path = words.next()?.to_string();
    buffer.drain(..end);
    let field = |name: &str| {
        head.lines().find_map(|line| {
            line.strip_prefix(name)
                .map(|value| value.trim().to_string())
        })
    };
    let mut body = Vec::new();
    if let Some(length) = field("content-length:") {
        let length: usize = length.parse().ok()?;
        while buffer.len() < length {
            let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
            buffer.extend_from_slice(&chunk[..n]);
        }
        body = buffer.drain(..length).collect();
    } else if field("transfer-encoding:").is_some_and(|value| value.ends_with("chunked")) {
        loop {
            let Some(line_end) = buffer.windows(2).position(|window| window == b"\r\n") else {
                let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
                buffer.extend_from_slice(&chunk[..n]);
                continue;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buffer[..line_end]).ok()?, 16).ok()?;
            while buffer.len() < line_end + 2 + size + 2 {
                let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
                buffer.extend_from_slice(&chunk[..n]);
            }
            body.extend_from_slice(&buffer[line_end + 2..line_end + 2 + size]);
            buffer.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break;
            }
        }
    }
    Some((method, path, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_framing_passes_through_and_connections_are_reused_only_when_safe() {
    let (backend, accepted) = framing_backend().await;
    let server = server(&web(&[(backend, 1)], "")).await;
    let addr = pool_addr(&server);
    // One client connection, so that every request takes the same worker and its idle
    // backend connections.
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Chunks>(TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let mut exchange = async |method: &str, path: &str, body: Vec<Bytes>, length: bool| {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "framing.test");
        if length {
            let total: usize = body.iter().map(Bytes::len).sum();
            request = request.header("content-length", total);
        }
        sender.ready().await.expect("client connection open");
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            sender.send_request(request.body(Chunks(body.into_iter())).expect("request")),
        )
        .await
        .expect("an answer in time")
        .expect("a response");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("a whole body");
        (
            status,
            headers,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        )
    };

    // Kept-alive framings: one backend connection for all of them.
    let (status, _, body) = exchange("GET", "/chunked", vec![], false).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello world"));
    let (status, _, body) = exchange("GET", "/continue", vec![], false).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "done"),
        "interim 100 skipped"
    );
    let (status, headers, body) = exchange("GET", "/no-content", vec![], false).await;
    assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_eq!(headers["x-kind"], "none");
    let (status, headers, body) = exchange("HEAD", "/head", vec![], false).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    assert_eq!(
        headers["content-length"], "9",
        "a HEAD answer keeps its length"
    );
    let parts = vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")];
    let (_, _, body) = exchange("POST", "/echo", parts.clone(), true).await;
    assert_eq!(body, "POST 7 bytes: abcdefg", "a body with a length");
    let (_, _, body) = exchange("PUT", "/echo", parts, false).await;
    assert_eq!(
        body, "PUT 7 bytes: abcdefg",
        "a body without a length goes chunked"
    );
    let (_, _, body) = exchange("POST", "/echo", vec![], false).await;
    assert_eq!(body, "POST 0 bytes: ", "an empty body says so");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "all on one backend connection"
    );

    // Framings after which the backend connection cannot be used again.
    let (status, _, body) = exchange("GET", "/until-close", vec![], false).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "until close"));
    let (_, _, body) = exchange("GET", "/echo", vec![], false).await;
    assert_eq!(body, "GET 0 bytes: ");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "a new connection after a close-delimited body"
    );
    let (_, _, body) = exchange("GET", "/http10", vec![], false).await;
    assert_eq!(body, "http10");
    let (_, _, body) = exchange("GET", "/echo", vec![], false).await;
    assert_eq!(body, "GET 0 bytes: ");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "HTTP/1.0 without keep-alive is not reused"
    );
    let (status, headers, body) = exchange("GET", "/both", vec![], false).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "both"),
        "chunked wins"
    );
    assert!(!headers.contains_key("content-length"), "{headers:?}");
    let (_, _, body) = exchange("GET", "/echo", vec![], false).await;
    assert_eq!(body, "GET 0 bytes: ");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        4,
        "a response with both lengths is not trusted with another request"
    );
    server.server.shutdown().await;
}

/// A request body sent in chunks, with no length (so HTTP/1.1 sends it chunked).
struct Chunks(std::vec::IntoIter<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    /// The next chunk.
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.next().map(|chunk| Ok(Frame::data(chunk))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_retry_on_connect_failure_posts_do_not() {
    let refused = refusing().await;
    let ok = backend("ok", Behaviour::Name).await;
    let server = server(&web(
        &[(refused, 1), (ok.addr, 1)],
        "algorithm = \"round_robin\"",
    ))
    .await;
    let addr = pool_addr(&server);
    let client = client();
    for _ in 0..6 {
        let (status, _, body) = get(&client, addr, "/").await;
        assert_eq!((status, body.as_deref()), (StatusCode::OK, Some("ok")));
    }
    let balancer = server.server.balancer("web").expect("web");
    // Each retry advances the rotation too, so every GET meets the refusing backend first.
    assert_eq!(balancer.error_counts().4, 6, "every GET was retried once");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let request = Request::post(format!("http://{addr}/"))
            .body(Full::new(Bytes::from_static(b"data")))
            .expect("request");
        statuses.push(send(&client, request).await.0);
    }
    assert!(statuses.contains(&StatusCode::BAD_GATEWAY), "{statuses:?}");
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
    assert_eq!(balancer.error_counts().4, 6, "POST is never retried");
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_proxied() {
    let a = backend("a", Behaviour::Name).await;
    let server = server(&web(&[(a.addr, 1)], "")).await;
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = Request::get(format!("http://{}/h2", pool_addr(&server)))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = client.request(request).await.expect("h2 response");
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["via"], "2.0 meridian");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"a");
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_pass_through() {
    let echo = backend("echo", Behaviour::UpgradeEcho).await;
    let server = server(&web(&[(echo.addr, 1)], "")).await;
    let mut stream = TcpStream::connect(pool_addr(&server))
        .await
        .expect("connect");
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nhost: pool\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
        )
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(
            n,
            1,
            "connection closed early: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    stream
        .write_all(b"ping through the tunnel")
        .await
        .expect("write");
    let mut echoed = [0u8; 23];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
        .await
        .expect("in time")
        .expect("echo");
    assert_eq!(&echoed, b"ping through the tunnel");
    drop(stream);
    server.server.shutdown().await;
}

/// Runs `count` GETs of `/` through `addr`, `parallel` at a time; returns the failures.
async fn load(addr: SocketAddr, count: usize, parallel: usize) -> Vec<String> {
    let client = client();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (client, next) = (client.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while next.fetch_add(1, Ordering::SeqCst) < count {
                let request = Request::get(format!("http://{addr}/"))
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
                    Ok(Ok(response)) if response.status() == StatusCode::OK => {
                        if response.into_body().collect().await.is_err() {
                            failures.push("body failed".to_owned());
                        }
                    }
                    Ok(Ok(response)) => failures.push(format!("status {}", response.status())),
                    Ok(Err(error)) => failures.push(format!("{error:?}")),
                    Err(_) => failures.push("timeout".to_owned()),
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        failures.extend(task.await.expect("load task"));
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn draining_a_backend_under_load_fails_nothing() {
    let a = backend("a", Behaviour::SlowHeaders(Duration::from_millis(5))).await;
    let b = backend("b", Behaviour::SlowHeaders(Duration::from_millis(5))).await;
    let server = server(&web(
        &[(a.addr, 1), (b.addr, 1)],
        "algorithm = \"least_request\"",
    ))
    .await;
    let addr = pool_addr(&server);
    let load = tokio::spawn(load(addr, 400, 8));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let balancer = server.server.balancer("web").expect("web");
    assert!(balancer.drain(a.addr));
    let served_at_drain = a.served.load(Ordering::SeqCst);
    let failures = load.await.expect("load");
    assert!(failures.is_empty(), "{failures:?}");
    let after = a.served.load(Ordering::SeqCst);
    assert!(
        after <= served_at_drain + 8,
        "a drained backend only finishes what it had: {served_at_drain} -> {after}"
    );
    assert!(b.served.load(Ordering::SeqCst) > 0);
    let pool = balancer.pool();
    let drained = pool.backend(a.addr).expect("a");
    assert!(
        !drained.is_enabled() && drained.is_healthy(),
        "intent kept apart from health"
    );
    assert_eq!(drained.outstanding(), 0);
    assert!(!balancer.drain("127.0.0.1:1".parse().expect("addr")));
    assert!(balancer.undrain(a.addr));
    server.server.shutdown().await;
}

/// Sends `method path` to the admin API over `server`: the status and the JSON body.
async fn admin_call(
    router: &axum::Router,
    method: &str,
    path: &str,
) -> (StatusCode, serde_json::Value) {
    use tower::ServiceExt;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "127.0.0.1")
        .body(axum::body::Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("answer");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_are_listed_drained_and_undrained_through_the_admin_api() {
    use meridian::admin::api::{self, ApiState, Control};
    let a = backend("a", Behaviour::Name).await;
    let b = backend("b", Behaviour::Name).await;
    let server = Arc::new(server(&web(&[(a.addr, 3), (b.addr, 1)], "")).await);
    let addr = pool_addr(&server);
    let router = api::router(ApiState {
        control: Arc::clone(&server) as Arc<dyn Control>,
        token: None,
    });
    let client = client();

    let (status, list) = admin_call(&router, "GET", "/v1/balancers").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let web = &list["balancers"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["listen"], addr.to_string());
    assert_eq!(
        (web["healthy"].as_u64(), web["total"].as_u64()),
        (Some(2), Some(2))
    );
    let backends = &web["sets"][0]["backends"];
    assert_eq!(web["sets"][0]["name"], "default");
    assert_eq!(backends[0]["addr"], a.addr.to_string());
    assert_eq!(backends[0]["weight"], 3);
    assert_eq!(backends[1]["state"], "up");

    let drain = format!("/v1/balancers/web/backends/{}/drain", b.addr);
    let (status, changed) = admin_call(&router, "POST", &drain).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["changed"], true);
    assert_eq!(changed["backend"]["state"], "draining");
    assert_eq!(
        answered_by(&client, addr, "a", 20).await,
        20,
        "b takes nothing new"
    );
    let (_, again) = admin_call(&router, "POST", &drain).await;
    assert_eq!(again["changed"], false, "draining twice changes nothing");
    let (_, list) = admin_call(&router, "GET", "/v1/balancers").await;
    assert_eq!(list["balancers"][0]["healthy"], 1);
    assert_eq!(
        list["balancers"][0]["sets"][0]["backends"][1]["state"],
        "draining"
    );

    let undrain = format!("/v1/balancers/web/backends/{}/undrain", b.addr);
    let (status, changed) = admin_call(&router, "POST", &undrain).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["changed"], true);
    assert_eq!(changed["backend"]["state"], "up");
    assert!(
        answered_by(&client, addr, "b", 40).await > 0,
        "b takes requests again"
    );

    for (method, path, want, code) in [
        (
            "POST",
            "/v1/balancers/nope/backends/127.0.0.1:1/drain".to_string(),
            StatusCode::NOT_FOUND,
            "unknown_balancer",
        ),
        (
            "POST",
            "/v1/balancers/web/backends/127.0.0.1:1/drain".to_string(),
            StatusCode::NOT_FOUND,
            "unknown_backend",
        ),
        (
            "POST",
            "/v1/balancers/web/backends/not-an-address/undrain".to_string(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            drain.clone(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ] {
        let (status, error) = admin_call(&router, method, &path).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (want, Some(code)),
            "{method} {path}: {error}"
        );
    }
    let pool = Arc::clone(server.server.balancer("web").expect("web").pool());
    assert!(
        pool.backend(b.addr).expect("b").is_enabled(),
        "errors changed nothing"
    );
    drop(router);
    let server = Arc::into_inner(server).expect("the API's reference is gone");
    server.server.shutdown().await;
}

/// Waits up to five seconds for the file at `path` to satisfy `done`.
async fn until_file(path: &std::path::Path, done: impl Fn(&str) -> bool) {
    let ok = until(Duration::from_secs(5), || {
        std::fs::read_to_string(path).is_ok_and(|text| done(&text))
    })
    .await;
    assert!(
        ok,
        "{}: {:?}",
        path.display(),
        std::fs::read_to_string(path)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_drains_outlast_restarts_and_end_with_their_backend() {
    use meridian::admin::api::{self, ApiState, Control};
    let a = backend("a", Behaviour::Name).await;
    let b = backend("b", Behaviour::Name).await;
    let state_dir = tempfile::tempdir().expect("state dir");
    let state = state_dir.path().join("admin.json");
    let admin = format!("[admin]\nstate_file = \"{}\"\n", state.display());
    let sections = format!("{admin}{}", web(&[(a.addr, 1), (b.addr, 1)], ""));
    let first = Arc::new(server(&sections).await);
    let router = api::router(ApiState {
        control: Arc::clone(&first) as Arc<dyn Control>,
        token: None,
    });
    let drain = format!("/v1/balancers/web/backends/{}/drain", b.addr);
    let (status, _) = admin_call(&router, "POST", &drain).await;
    assert_eq!(status, StatusCode::OK);
    let b_text = b.addr.to_string();
    until_file(&state, |text| text.contains(&b_text)).await;
    drop(router);
    Arc::into_inner(first)
        .expect("one reference")
        .server
        .shutdown()
        .await;

    // A new process on the same files: b is still out, from the first request on.
    let second = server(&sections).await;
    let addr = pool_addr(&second);
    let pool = Arc::clone(second.server.balancer("web").expect("web").pool());
    assert!(
        !pool.backend(b.addr).expect("b").is_enabled(),
        "b kept drained"
    );
    assert!(pool.backend(a.addr).expect("a").is_enabled());
    assert_eq!(answered_by(&client(), addr, "a", 10).await, 10);

    // A reload that drops b forgets its drain; adding b back brings it back in service.
    rewrite(&second, &format!("{admin}{}", web(&[(a.addr, 1)], "")));
    second.server.reload().expect("reload without b");
    until_file(&state, |text| !text.contains(&b_text)).await;
    rewrite(&second, &sections);
    second.server.reload().expect("reload with b");
    assert!(
        pool.backend(b.addr).expect("b").is_enabled(),
        "b is new again"
    );
    second.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloading_backends_under_load_fails_nothing() {
    let a = backend("a", Behaviour::SlowHeaders(Duration::from_millis(5))).await;
    let b = backend("b", Behaviour::SlowHeaders(Duration::from_millis(5))).await;
    let c = backend("c", Behaviour::SlowHeaders(Duration::from_millis(5))).await;
    let first = web(&[(a.addr, 1), (b.addr, 1)], "");
    let server = server(&first).await;
    let addr = pool_addr(&server);
    let kept = server
        .server
        .balancer("web")
        .and_then(|balancer| balancer.pool().backend(a.addr))
        .expect("a");
    let load = tokio::spawn(load(addr, 600, 8));
    for sections in [
        web(&[(a.addr, 3), (c.addr, 1)], ""),
        web(
            &[(a.addr, 1), (b.addr, 2), (c.addr, 1)],
            "algorithm = \"least_request\"",
        ),
        web(&[(a.addr, 1), (c.addr, 1)], ""),
    ] {
        tokio::time::sleep(Duration::from_millis(80)).await;
        rewrite(&server, &sections);
        server.server.reload().expect("reload");
    }
    let failures = load.await.expect("load");
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        c.served.load(Ordering::SeqCst) > 0,
        "the added backend takes traffic"
    );
    let balancer = server.server.balancer("web").expect("web");
    let now = balancer.pool().backend(a.addr).expect("a still configured");
    assert!(
        Arc::ptr_eq(&kept, &now),
        "an unchanged backend keeps its state"
    );
    assert!(balancer.pool().backend(b.addr).is_none());
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_health_flips_below_min_healthy() {
    let a = backend("a", Behaviour::Name).await;
    let b = backend("b", Behaviour::Name).await;
    let server = server(&web(
        &[(a.addr, 1), (b.addr, 1)],
        "min_healthy = 2\n[balancers.web.health]\npath = \"/health\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1",
    ))
    .await;
    let addr = pool_addr(&server);
    let client = client();
    let (status, headers, body) = get(&client, addr, "/health").await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(&body.expect("body")).expect("json");
    assert_eq!(json["healthy"], 2);
    assert_eq!(json["total"], 2);
    assert_eq!(json["capacity"], 1.0);
    assert!(
        json["in_flight"].is_u64() && json["latency_ms"].is_number(),
        "{json}"
    );
    assert_eq!(
        a.served.load(Ordering::SeqCst),
        0,
        "the pool answers /health itself"
    );

    b.healthy.store(false, Ordering::SeqCst);
    let mut flipped = None;
    for _ in 0..100 {
        let (status, _, body) = get(&client, addr, "/health").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            flipped = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let json: serde_json::Value =
        serde_json::from_str(&flipped.expect("503 within 5 s")).expect("json");
    assert_eq!(json["healthy"], 1);
    assert_eq!(json["capacity"], 0.5);
    for _ in 0..4 {
        let (status, _, body) = get(&client, addr, "/").await;
        assert_eq!((status, body.as_deref()), (StatusCode::OK, Some("a")));
    }
    b.healthy.store(true, Ordering::SeqCst);
    let mut back = false;
    for _ in 0..100 {
        if get(&client, addr, "/health").await.0 == StatusCode::OK {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "200 again after rise");
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_backends_are_ejected_by_outlier_detection() {
    let garbage = raw_backend(|mut stream| async move {
        let _ = stream.write_all(b"not http at all\r\n\r\n").await;
    })
    .await;
    let ok = backend("ok", Behaviour::Name).await;
    let server = server(&web(
        &[(garbage, 1), (ok.addr, 1)],
        "algorithm = \"round_robin\"\n[balancers.web.outlier]\nconsecutive_errors = 2\neject_for = \"1m\"",
    ))
    .await;
    let addr = pool_addr(&server);
    let client = client();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(get(&client, addr, "/").await.0.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|&&status| status == 502).count(),
        2,
        "two failures eject the backend: {statuses:?}"
    );
    assert!(
        statuses[4..].iter().all(|&status| status == 200),
        "{statuses:?}"
    );
    let balancer = server.server.balancer("web").expect("web");
    let ejected = balancer.pool().backend(garbage).expect("garbage");
    assert!(ejected.is_ejected_now() && ejected.is_healthy() && ejected.is_enabled());
    let (status, _, body) = get(&client, addr, "/health").await;
    assert_eq!(status, StatusCode::OK, "1 of 2 healthy meets min_healthy 1");
    let json: serde_json::Value = serde_json::from_str(&body.expect("body")).expect("json");
    assert_eq!(json["healthy"], 1);
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish_and_stops_accepting() {
    let slow = backend("slow", Behaviour::SlowHeaders(Duration::from_millis(400))).await;
    let server = server(&web(&[(slow.addr, 1)], "drain_timeout = \"5s\"")).await;
    let addr = pool_addr(&server);
    let client = client();
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { get(&client, addr, "/").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    server.server.shutdown().await;
    let (status, _, body) = in_flight.await.expect("request task");
    assert_eq!((status, body.as_deref()), (StatusCode::OK, Some("slow")));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited only for the request"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing accepts after shutdown"
    );
}

/// Waits until `done` holds, checking every 20 ms for up to `limit`; whether it did.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// How many of `count` sequential GETs of `/` through `addr` the backend named `name` answered
/// (every answer must be a 200).
async fn answered_by(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    name: &str,
    count: usize,
) -> usize {
    let mut hits = 0;
    for _ in 0..count {
        let (status, _, body) = get(client, addr, "/").await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        if body.as_deref() == Some(name) {
            hits += 1;
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_backend_whose_checks_rise() {
    let a = backend("a", Behaviour::Name).await;
    let b = backend("b", Behaviour::Name).await;
    let window = Duration::from_secs(6);
    let server = server(&web(
        &[(a.addr, 1), (b.addr, 1)],
        "algorithm = \"weighted_round_robin\"\nslow_start = \"6s\"\n\
         [balancers.web.health]\npath = \"/health\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1",
    ))
    .await;
    let addr = pool_addr(&server);
    let client = client();
    let balancer = server.server.balancer("web").expect("web");
    let b_state = balancer.pool().backend(b.addr).expect("b");
    assert!(
        !b_state.is_ramping(window),
        "the backends a pool starts with do not ramp"
    );
    assert_eq!(
        answered_by(&client, addr, "b", 20).await,
        10,
        "equal shares from the start"
    );

    b.healthy.store(false, Ordering::SeqCst);
    assert!(
        until(Duration::from_secs(5), || balancer.health().healthy == 1).await,
        "b goes down"
    );
    b.healthy.store(true, Ordering::SeqCst);
    assert!(
        until(Duration::from_secs(5), || balancer.health().healthy == 2).await,
        "b comes back"
    );
    let recovered = std::time::Instant::now();
    assert!(b_state.is_ramping(window));
    // The first second of a 6 s ramp: b weighs at most 25 % of its weight, so it takes at most
    // a fifth of the requests where its steady share is a half.
    let (mut total, mut to_b) = (0, 0);
    while total < 60 && recovered.elapsed() < Duration::from_secs(1) {
        to_b += answered_by(&client, addr, "b", 1).await;
        total += 1;
    }
    assert!(total >= 10, "only {total} requests in the first second");
    assert!(to_b > 0, "a ramping backend still takes some traffic");
    assert!(
        to_b * 100 < total * 35,
        "b took {to_b} of {total} requests at the start of its ramp"
    );
    // After the ramp, the shares are equal again.
    assert!(
        until(Duration::from_secs(15), || !b_state.is_ramping(window)).await,
        "the ramp ends"
    );
    let after = answered_by(&client, addr, "b", 40).await;
    assert!(
        (19..=21).contains(&after),
        "b took {after} of 40 after its ramp"
    );
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_have_their_own_timeouts() {
    let slow = backend("slow", Behaviour::SlowHeaders(Duration::from_millis(600))).await;
    // Sends its head and a first chunk, pauses 600 ms, then finishes the body.
    let pausing = raw_backend(|mut stream| async move {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfirst";
        if stream.write_all(head).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        let _ = stream.write_all(b"-last").await;
        let _ = stream.shutdown().await;
    })
    .await;
    let sections = format!(
        "{}\
         [balancers.web.backend_sets.pausing]\nbackends = {}\n\
         [[balancers.web.routes]]\npath_prefix = \"/impatient/\"\nbackends = \"default\"\nresponse_timeout = \"150ms\"\n\
         [[balancers.web.routes]]\npath_prefix = \"/patient/\"\nbackends = \"default\"\nresponse_timeout = \"10s\"\n\
         [[balancers.web.routes]]\npath_prefix = \"/brief/\"\nbackends = \"pausing\"\nidle_timeout = \"150ms\"\n\
         [[balancers.web.routes]]\npath_prefix = \"/\"\nbackends = \"pausing\"\n",
        web(
            &[(slow.addr, 1)],
            "response_timeout = \"300ms\"\nidle_timeout = \"5s\"",
        ),
        backend_list(&[(pausing, 1)]),
    );
    let server = server(&sections).await;
    let addr = pool_addr(&server);
    let client = client();
    let (status, _, body) = get(&client, addr, "/impatient/x").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body:?}");
    let (status, _, body) = get(&client, addr, "/patient/x").await;
    assert_eq!(
        (status, body.as_deref()),
        (StatusCode::OK, Some("slow")),
        "the route's longer timeout beats the balancer's 300 ms"
    );
    let (status, _, body) = get(&client, addr, "/brief/x").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body, None,
        "a 600 ms pause in the body is over the route's 150 ms"
    );
    let (status, _, body) = get(&client, addr, "/other").await;
    assert_eq!(
        (status, body.as_deref()),
        (StatusCode::OK, Some("first-last")),
        "the balancer's idle timeout of 5 s lets the pause pass"
    );
    let balancer = server.server.balancer("web").expect("web");
    assert_eq!(balancer.error_counts().2, 1, "one 504");
    server.server.shutdown().await;
}

/// A backend whose `/health` answers 200 with `status: ready` or `status: warming`, and which
/// records the `Host` of the last check.
struct CheckedBackend {
    /// Where it listens.
    addr: SocketAddr,
    /// Whether the health body says ready.
    ready: Arc<AtomicBool>,
    /// The `Host` header of the last health check.
    host: Arc<std::sync::Mutex<Option<String>>>,
}

/// Starts a [`CheckedBackend`].
async fn checked_backend() -> CheckedBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let ready = Arc::new(AtomicBool::new(true));
    let host = Arc::new(std::sync::Mutex::new(None));
    let (ready_task, host_task) = (Arc::clone(&ready), Arc::clone(&host));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (ready, host) = (Arc::clone(&ready_task), Arc::clone(&host_task));
            let service = service_fn(move |request: Request<Incoming>| {
                let seen = request
                    .headers()
                    .get("host")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                *host.lock().expect("host lock") = seen;
                let body = if ready.load(Ordering::SeqCst) {
                    "status: ready"
                } else {
                    "status: warming"
                };
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    CheckedBackend { addr, ready, host }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_checks_send_their_host_and_look_for_their_body() {
    let checked = checked_backend().await;
    // Answers 200 with the body "health": never what the checks look for.
    let other = backend("other", Behaviour::Name).await;
    let server = server(&web(
        &[(checked.addr, 1), (other.addr, 1)],
        "[balancers.web.health]\npath = \"/health\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n\
         host = \"Check.Example.com\"\nexpect_body = \"ready\"",
    ))
    .await;
    let balancer = server.server.balancer("web").expect("web");
    let pool = balancer.pool();
    let (checked_state, other_state) = (
        pool.backend(checked.addr).expect("checked"),
        pool.backend(other.addr).expect("other"),
    );
    assert!(
        until(Duration::from_secs(5), || !other_state.is_healthy()).await,
        "a 200 without the expected body fails the check"
    );
    assert!(checked_state.is_healthy(), "the expected body passes");
    assert_eq!(
        checked.host.lock().expect("host lock").as_deref(),
        Some("check.example.com"),
        "the check's Host header"
    );
    checked.ready.store(false, Ordering::SeqCst);
    assert!(
        until(Duration::from_secs(5), || !checked_state.is_healthy()).await,
        "the body changed: down"
    );
    assert_eq!(balancer.health().healthy, 0);
    checked.ready.store(true, Ordering::SeqCst);
    assert!(
        until(Duration::from_secs(5), || checked_state.is_healthy()).await,
        "the body is back: up"
    );
    assert!(!other_state.is_healthy());
    assert_eq!(balancer.health().healthy, 1);
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_cuts_off_what_is_left_after_the_drain_timeout() {
    let hang = raw_backend(|stream| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    })
    .await;
    let streaming = raw_backend(|mut stream| async move {
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        if stream.write_all(head).await.is_err() {
            return;
        }
        while stream.write_all(b"1\r\nx\r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let quick = backend("quick", Behaviour::SlowHeaders(Duration::from_millis(300))).await;
    let echo = backend("echo", Behaviour::UpgradeEcho).await;
    let sections = format!(
        "{}{}",
        web(
            &[(quick.addr, 1)],
            "drain_timeout = \"1s\"\nresponse_timeout = \"30s\"\nidle_timeout = \"30s\"",
        ),
        routed_sets(&[
            ("/hang", "hang", hang),
            ("/stream", "streaming", streaming),
            ("/ws", "echo", echo.addr),
        ]),
    );
    let server = server(&sections).await;
    let addr = pool_addr(&server);
    let client = client();
    let balancer = server.server.balancer("web").expect("web");
    let pool = balancer.pool();

    // A request waiting for its response head, a response body streaming forever, and a
    // tunnel, all in flight.
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move {
            let answer = get(&client, addr, "/hang").await;
            (answer.0, std::time::Instant::now())
        })
    };
    let request = Request::get(format!("http://{addr}/stream"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = client.request(request).await.expect("stream response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut streamed = response.into_body();
    let mut tunnel = TcpStream::connect(addr).await.expect("connect");
    tunnel
        .write_all(
            b"GET /ws HTTP/1.1\r\nhost: pool\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
        )
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tunnel.read(&mut byte).await.expect("read head");
        assert_eq!(n, 1, "tunnel closed early");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let backends = [hang, streaming, echo.addr].map(|addr| pool.backend(addr).expect("backend"));
    assert!(
        until(Duration::from_secs(5), || backends
            .iter()
            .all(|b| b.outstanding() == 1))
        .await,
        "all three in flight"
    );

    // A request that finishes within the drain timeout is not disturbed.
    let finishing = {
        let client = client.clone();
        tokio::spawn(async move { get(&client, addr, "/").await })
    };
    let quick_state = pool.backend(quick.addr).expect("quick");
    assert!(until(Duration::from_secs(5), || quick_state.outstanding() == 1).await);

    let drained_at = std::time::Instant::now();
    for backend in [hang, streaming, echo.addr, quick.addr] {
        assert!(balancer.drain(backend));
    }
    let (status, _, body) = finishing.await.expect("finishing");
    assert_eq!((status, body.as_deref()), (StatusCode::OK, Some("quick")));

    // The body streams on until the drain timeout, then fails.
    let cut = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match streamed.frame().await {
                Some(Ok(_)) => continue,
                Some(Err(_)) => return true,
                None => return false,
            }
        }
    })
    .await
    .expect("the stream is cut within 10 s");
    assert!(cut, "the stream ended cleanly: it must fail");
    let body_end = drained_at.elapsed();
    let (status, answered_at) = waiting.await.expect("waiting");
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let answered = answered_at.duration_since(drained_at);
    let mut rest = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), tunnel.read(&mut rest))
        .await
        .expect("the tunnel is closed within 10 s");
    let tunnel_end = drained_at.elapsed();
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    for (what, elapsed) in [
        ("response head", answered),
        ("body", body_end),
        ("tunnel", tunnel_end),
    ] {
        assert!(
            elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(5),
            "{what} cut after {elapsed:?}, drain_timeout 1s"
        );
    }
    assert!(
        until(Duration::from_secs(5), || backends
            .iter()
            .all(|b| b.outstanding() == 0))
        .await,
        "nothing left in flight"
    );
    let (_, unavailable, _, _, _) = balancer.error_counts();
    assert_eq!(unavailable, 0);
    server.server.shutdown().await;
}
