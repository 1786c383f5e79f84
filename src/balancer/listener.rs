//! A running balancer: its listener, the accept loop with the connection limit, HTTP/1.1 and
//! h2c connections served by the proxy, reload, drain and graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::pool::{Pool, PoolHealth};
use super::proxy::{self, Shared};
use crate::config::BalancerConfig;

/// Backlog of the listening socket: connections beyond `max_connections` wait here.
const LISTEN_BACKLOG: i32 = 1024;

/// What the connection tasks are told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Serve.
    Run,
    /// Finish the requests in flight, take no new ones, close.
    Drain,
    /// Close now (the drain timeout passed).
    Close,
}

/// One `[balancers.NAME]`, listening and proxying.
#[derive(Debug)]
pub struct RunningBalancer {
    /// The balancer's name.
    name: String,
    /// The configured listen address (port 0 unresolved), to tell a reload's change.
    configured_listen: SocketAddr,
    /// The address bound.
    local_addr: SocketAddr,
    /// The connection limit the slots were made with.
    max_connections: usize,
    /// Pool, client and counters.
    shared: Arc<Shared>,
    /// Tells the accept loop and the connections what to do.
    phase: watch::Sender<Phase>,
    /// Connection slots; all free again once every connection has ended.
    slots: Arc<Semaphore>,
}

impl RunningBalancer {
    /// Binds `config.listen` and starts serving (inside a Tokio runtime).
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub fn start(config: &BalancerConfig) -> io::Result<Self> {
        let listener = bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        let pool = Pool::start(config);
        let shared = Arc::new(Shared::new(pool));
        let (phase, phase_rx) = watch::channel(Phase::Run);
        let slots = Arc::new(Semaphore::new(config.max_connections));
        tokio::spawn(accept_loop(
            listener,
            Arc::clone(&shared),
            Arc::clone(&slots),
            phase_rx,
        ));
        tracing::info!(balancer = %config.name, listen = %local_addr, "balancer listening");
        Ok(Self {
            name: config.name.clone(),
            configured_listen: config.listen,
            local_addr,
            max_connections: config.max_connections,
            shared,
            phase,
            slots,
        })
    }

    /// The balancer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address served, with the port resolved.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The backends, sets and their state.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.shared.pool
    }

    /// The pool's health, as its health endpoint reports it.
    pub fn health(&self) -> PoolHealth {
        self.shared.pool.health()
    }

    /// Error responses so far: (502, 503, 504, 413, retries).
    pub fn error_counts(&self) -> (u64, u64, u64, u64, u64) {
        let counters = &self.shared.counters;
        (
            counters.bad_gateway.load(Ordering::Relaxed),
            counters.unavailable.load(Ordering::Relaxed),
            counters.gateway_timeout.load(Ordering::Relaxed),
            counters.too_large.load(Ordering::Relaxed),
            counters.retries.load(Ordering::Relaxed),
        )
    }

    /// Stops new requests to the backend at `addr` (in-flight ones finish); whether it is
    /// configured.
    pub fn drain(&self, addr: SocketAddr) -> bool {
        self.shared.pool.drain(addr)
    }

    /// Lets the backend at `addr` take new requests again; whether it is configured.
    pub fn undrain(&self, addr: SocketAddr) -> bool {
        self.shared.pool.undrain(addr)
    }

    /// Installs a reloaded config of this balancer. Backends, weights, routes, timeouts, limits
    /// and checks change at once, without dropping requests in flight or resetting the state
    /// of backends that stay. `listen` and `max_connections` need a restart (warned).
    pub fn reload(&self, config: &BalancerConfig) {
        if config.listen != self.configured_listen || config.max_connections != self.max_connections
        {
            tracing::warn!(
                balancer = %self.name,
                "balancers.{}.listen and max_connections changes take effect on restart only",
                self.name
            );
        }
        self.shared.pool.reload(config);
        self.shared.refresh_client();
    }

    /// Stops accepting, lets requests in flight finish for up to the drain timeout, then closes
    /// what is left and stops the health checks.
    pub async fn shutdown(self) {
        let drain_timeout = self.shared.pool.topology().config.drain_timeout;
        let _ = self.phase.send(Phase::Drain);
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(drain_timeout, self.slots.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(balancer = %self.name, "some connections did not finish within the drain timeout");
            let _ = self.phase.send(Phase::Close);
        }
        self.shared.pool.stop_checks();
    }
}

/// A TCP listener with `SO_REUSEADDR`, IPv6-only for IPv6 addresses.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections while slots are free, until told to drain.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    mut phase: watch::Receiver<Phase>,
) {
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = until(&mut phase, |phase| phase != Phase::Run) => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = until(&mut phase, |phase| phase != Phase::Run) => return,
        };
        let shared = Arc::clone(&shared);
        let phase = phase.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, shared, phase).await;
            drop(permit);
        });
    }
}

/// Serves one client connection (HTTP/1.1 with upgrades, or h2c) until it ends, draining it
/// gracefully when told.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) {
    let _ = stream.set_nodelay(true);
    let config = Arc::clone(&shared.pool.topology().config);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.idle_timeout)
        .max_buf_size(config.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(config.idle_timeout)
        .keep_alive_timeout(config.connect_timeout.max(Duration::from_secs(1)));
    let service = service_fn(move |request| proxy::handle(Arc::clone(&shared), peer, request));
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let draining = *phase.borrow() != Phase::Run;
    if draining {
        connection.as_mut().graceful_shutdown();
    }
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "client connection ended with an error");
            }
            return;
        }
        () = until(&mut phase, |phase| phase != Phase::Run) => {
            connection.as_mut().graceful_shutdown();
        }
    }
    tokio::select! {
        _ = connection.as_mut() => {}
        () = until(&mut phase, |phase| phase == Phase::Close) => {}
    }
}

/// Waits until the phase satisfies `done` (or the sender is gone, which counts as done).
async fn until(phase: &mut watch::Receiver<Phase>, done: impl Fn(Phase) -> bool) {
    loop {
        if done(*phase.borrow_and_update()) {
            return;
        }
        if phase.changed().await.is_err() {
            return;
        }
    }
}
