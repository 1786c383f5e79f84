//! The demo's sample backends: tiny HTTP/1.1 servers that say which region and backend served.
//!
//! `GET /health` answers `200 ok`; any other request answers a one-line JSON document
//! `{"region", "backend", "address", "path", "served"}` (and an `X-Demo-Backend` header).
//! Stopping a backend closes its listener and every open connection, so the pool sees
//! refused connections, as it would from a crashed server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use tokio::task::{JoinHandle, JoinSet};

/// Who a backend is.
#[derive(Debug)]
struct Identity {
    /// Its region.
    region: String,
    /// Its name (`eu-west-1`).
    name: String,
    /// Its listening address.
    addr: SocketAddr,
    /// Requests served since the demo started (health checks excluded).
    served: AtomicU64,
}

/// A running backend's stop switch and accept task.
#[derive(Debug)]
struct Running {
    /// Set to `true` to stop.
    stop: watch::Sender<bool>,
    /// The accept loop; it ends once every connection is closed.
    task: JoinHandle<()>,
}

/// One sample backend, started and stopped by the demo's controls.
#[derive(Debug)]
pub struct SampleBackend {
    /// Who it is, shared with its connections.
    identity: Arc<Identity>,
    /// Its accept loop while it runs.
    running: Mutex<Option<Running>>,
}

impl SampleBackend {
    /// A stopped backend `name` of `region` at `addr`.
    pub fn new(region: &str, name: &str, addr: SocketAddr) -> SampleBackend {
        SampleBackend {
            identity: Arc::new(Identity {
                region: region.to_string(),
                name: name.to_string(),
                addr,
                served: AtomicU64::new(0),
            }),
            running: Mutex::new(None),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// Its region.
    pub fn region(&self) -> &str {
        &self.identity.region
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.identity.addr
    }

    /// Requests served (health checks excluded).
    pub fn served(&self) -> u64 {
        self.identity.served.load(Ordering::Relaxed)
    }

    /// Whether it is listening.
    pub async fn is_running(&self) -> bool {
        self.running.lock().await.is_some()
    }

    /// Starts listening; `Ok(false)` if it already was.
    pub async fn start(&self) -> std::io::Result<bool> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Ok(false);
        }
        let listener = TcpListener::bind(self.identity.addr).await?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept(listener, Arc::clone(&self.identity), stopped));
        *running = Some(Running { stop, task });
        tracing::info!(backend = %self.identity.name, addr = %self.identity.addr, "sample backend started");
        Ok(true)
    }

    /// Stops listening and closes every connection; `false` if it was not running.
    ///
    /// The lock is held until the listener is closed, so a [`SampleBackend::start`] that
    /// comes in meanwhile waits for the port to be free instead of failing to bind it.
    pub async fn stop(&self) -> bool {
        let mut running = self.running.lock().await;
        let Some(Running { stop, task }) = running.take() else {
            return false;
        };
        let _ = stop.send(true);
        let _ = task.await;
        drop(running);
        tracing::info!(backend = %self.identity.name, addr = %self.identity.addr, "sample backend stopped");
        true
    }
}

/// Accepts connections until told to stop, then closes them all.
async fn accept(
    listener: TcpListener,
    identity: Arc<Identity>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, Arc::clone(&identity)));
                }
                Err(err) => {
                    tracing::warn!(backend = %identity.name, %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// Serves one connection until the client closes it (or the task is aborted).
async fn connection(stream: TcpStream, identity: Arc<Identity>) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let identity = Arc::clone(&identity);
        async move { Ok::<_, Infallible>(respond(&identity, &request)) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The answer to `request`.
fn respond(identity: &Identity, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let (content_type, body) = if path == "/health" {
        ("text/plain; charset=utf-8", "ok\n".to_string())
    } else {
        let served = identity.served.fetch_add(1, Ordering::Relaxed) + 1;
        let body = serde_json::json!({
            "region": identity.region,
            "backend": identity.name,
            "address": identity.addr.to_string(),
            "path": path,
            "served": served,
        });
        ("application/json", format!("{body}\n"))
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    if let Ok(value) = header::HeaderValue::from_str(&identity.name) {
        headers.insert("x-demo-backend", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback address with a port that was free a moment ago.
    fn free_addr() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    #[tokio::test]
    async fn a_start_during_a_stop_waits_for_the_port() {
        let backend = SampleBackend::new("eu-west", "eu-west-1", free_addr());
        assert!(backend.start().await.unwrap());
        for round in 0..20 {
            // The stop is polled first: it takes the lock, then waits for the accept loop to
            // close the listener; the start comes in while it waits.
            let (stopped, started) = tokio::join!(backend.stop(), backend.start());
            assert!(stopped, "round {round}");
            assert!(
                started.as_ref().is_ok_and(|started| *started),
                "round {round}: {started:?}"
            );
            assert!(backend.is_running().await);
        }
        assert!(backend.stop().await);
        assert!(!backend.stop().await);
        assert!(!backend.is_running().await);
        let again = tokio::net::TcpListener::bind(backend.addr()).await;
        assert!(again.is_ok(), "the port stays taken after stop: {again:?}");
    }
}
