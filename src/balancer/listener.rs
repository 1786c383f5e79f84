//! A running balancer: its listener, the accept loop with the connection limit, HTTP/1.x
//! connections (served by [`downstream`]) and h2c ones (hyper's HTTP/2 server) handed to the
//! proxy, reload, drain and graceful shutdown.
//!
//! Connections are served on the balancer workers: one thread per core, each with its own
//! single-threaded Tokio runtime, shared by every balancer of the process (as nginx runs one
//! event loop per worker process). The accept loop hands each new connection to the worker
//! serving the fewest; the connection, its requests, and the upstream connections they use
//! then stay on that thread, so a request never waits for another thread to wake up.
//!
//! When the process may run on exactly as many CPUs as it has workers (no CPU quota below its
//! affinity mask), worker N is pinned to the N-th of those CPUs, as nginx's
//! `worker_cpu_affinity auto` does. Two workers then never share a core while another core runs
//! the rest of the machine's work, which on small machines shows as a tail of requests waiting a
//! scheduler tick for the CPU.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, watch};

use super::downstream::{self, Ending};
use super::pool::{Pool, PoolHealth};
use super::proxy::{self, ClientConnection, Peer, Shared};
use crate::config::BalancerConfig;

/// Backlog of the listening socket: connections beyond `max_connections` wait here.
const LISTEN_BACKLOG: i32 = 1024;

/// What the connection tasks are told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
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
        let Some(worker) = workers().and_then(Workers::least_loaded) else {
            tokio::spawn(async move {
                serve_connection(stream, peer, shared, phase).await;
                drop(permit);
            });
            continue;
        };
        // The socket moves to the worker's runtime: out of this one's I/O driver, into that one's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, %peer, "cannot hand the connection to a worker");
                continue;
            }
        };
        worker.connections.fetch_add(1, Ordering::Relaxed);
        worker.handle.spawn(async move {
            let _count = Assigned(worker);
            match TcpStream::from_std(stream) {
                Ok(stream) => serve_connection(stream, peer, shared, phase).await,
                Err(error) => tracing::warn!(%error, %peer, "cannot register the connection"),
            }
            drop(permit);
        });
    }
}

/// The balancer workers of the process: one thread per core, each running a single-threaded
/// runtime that serves whole connections.
#[derive(Debug)]
struct Workers {
    /// The workers; never empty.
    workers: Box<[Worker]>,
}

/// One balancer worker thread.
#[derive(Debug)]
struct Worker {
    /// Its runtime.
    handle: Handle,
    /// Client connections it is serving.
    connections: AtomicUsize,
}

/// A connection counted on its worker until dropped.
struct Assigned(&'static Worker);

impl Drop for Assigned {
    /// The connection ended.
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    /// Starts one worker per available core, each pinned to its own CPU when the process has
    /// exactly that many (see the module documentation).
    fn start() -> io::Result<Self> {
        let count = std::thread::available_parallelism().map_or(1, usize::from);
        let cpus = worker_cpus(count);
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let cpu = cpus.as_ref().map(|cpus| cpus[index]);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            handle.spawn(expire_idle_connections());
            std::thread::Builder::new()
                .name(format!("meridian-l7-{index}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        pin_to(cpu);
                    }
                    runtime.block_on(std::future::pending::<()>());
                })?;
            workers.push(Worker {
                handle,
                connections: AtomicUsize::new(0),
            });
        }
        Ok(Self {
            workers: workers.into_boxed_slice(),
        })
    }

    /// The worker serving the fewest connections.
    fn least_loaded(&'static self) -> Option<&'static Worker> {
        self.workers
            .iter()
            .min_by_key(|worker| worker.connections.load(Ordering::Relaxed))
    }
}

/// The CPUs to pin `count` workers to, one each: the CPUs of the process's affinity mask, if
/// there are exactly `count` of them. `None` (no pinning) when the mask is wider than the
/// workers (a CPU quota leaves fewer cores than the mask names, so the scheduler should place
/// them) or cannot be read.
fn worker_cpus(count: usize) -> Option<Vec<usize>> {
    let mask = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let cpus: Vec<usize> = (0..nix::sched::CpuSet::count())
        .filter(|&cpu| mask.is_set(cpu).unwrap_or(false))
        .collect();
    pinnable(cpus, count)
}

/// `cpus` if it names exactly one CPU per worker and there is more than one worker.
fn pinnable(cpus: Vec<usize>, count: usize) -> Option<Vec<usize>> {
    (count > 1 && cpus.len() == count).then_some(cpus)
}

/// Pins the calling thread to `cpu`; a failure is logged and leaves the thread unpinned.
fn pin_to(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    let result = set
        .set(cpu)
        .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set));
    if let Err(error) = result {
        tracing::warn!(cpu, %error, "cannot pin a balancer worker to its CPU; it runs unpinned");
    }
}

/// The process's balancer workers, started on first use; `None` if they could not be started
/// (connections are then served on the caller's runtime).
fn workers() -> Option<&'static Workers> {
    /// The workers, once started.
    static WORKERS: OnceLock<Option<Workers>> = OnceLock::new();
    WORKERS
        .get_or_init(|| {
            Workers::start()
                .inspect_err(|error| {
                    tracing::error!(%error, "cannot start the balancer worker threads; serving on the main runtime");
                })
                .ok()
        })
        .as_ref()
}

/// Drops the worker's expired idle upstream connections, periodically.
async fn expire_idle_connections() {
    let mut ticks = tokio::time::interval(proxy::IDLE_SWEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        proxy::expire_idle_connections();
    }
}

/// Serves one client connection (HTTP/1.x with upgrades, or h2c) until it ends, draining it
/// gracefully when told.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) {
    let _ = stream.set_nodelay(true);
    let client = Arc::new(ClientConnection {
        shared,
        peer: Peer::new(peer),
    });
    let ending = tokio::select! {
        ending = downstream::serve(stream, &client, phase.clone()) => ending,
        () = until(&mut phase, |phase| phase == Phase::Close) => return,
    };
    if let Ending::Http2(stream, read) = ending {
        serve_http2(Rewind { read, stream }, client, phase).await;
    }
}

/// Serves an h2c connection (prior knowledge) with hyper's HTTP/2 server, draining it
/// gracefully when told.
async fn serve_http2(io: Rewind, client: Arc<ClientConnection>, mut phase: watch::Receiver<Phase>) {
    let config = Arc::clone(&client.shared.pool.topology().config);
    let peer = client.peer.addr();
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(config.idle_timeout)
        .keep_alive_timeout(config.connect_timeout.max(Duration::from_secs(1)));
    let service = service_fn(move |request| proxy::handle(Arc::clone(&client), request));
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    if *phase.borrow() != Phase::Run {
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

/// A socket with bytes already read from it, which are read again first.
#[derive(Debug)]
struct Rewind {
    /// Read before, not yet read again.
    read: Bytes,
    /// The socket.
    stream: TcpStream,
}

impl AsyncRead for Rewind {
    /// What was read before, then the socket.
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let take = self.read.len().min(buf.remaining());
            let bytes = self.read.split_to(take);
            buf.put_slice(&bytes);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    /// Writes to the socket.
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    /// Writes to the socket, vectored.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    /// Whether vectored writes are efficient: they are for sockets.
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    /// Nothing is buffered.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// Shuts the writing side down.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
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

#[cfg(test)]
mod tests {
    use super::pinnable;

    #[test]
    fn workers_are_pinned_only_with_one_cpu_each() {
        assert_eq!(pinnable(vec![0, 1], 2), Some(vec![0, 1]));
        assert_eq!(pinnable(vec![2, 5, 7], 3), Some(vec![2, 5, 7]));
        // A CPU quota below the mask: the scheduler places the workers.
        assert_eq!(pinnable(vec![0, 1, 2, 3], 2), None);
        // A single worker has nothing to be kept apart from.
        assert_eq!(pinnable(vec![3], 1), None);
        assert_eq!(pinnable(Vec::new(), 2), None);
    }
}
