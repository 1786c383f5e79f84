//! The running server: binds sockets, starts the UDP workers and TCP tasks, reloads, and stops.
//!
//! `serve` in the CLI and the integration tests drive the same [`RunningServer`].

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{Semaphore, watch};

use crate::balancer::listener::RunningBalancer;
use crate::config::DnsConfig;
use crate::dns::{tcp, udp};
use crate::health::monitor::Monitor;
use crate::snapshot::{self, LoadError, Loaded, Snapshot};

/// Longest time shutdown waits for TCP connections to finish their current query.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A server with its sockets bound and its workers running.
pub struct RunningServer {
    /// The data being served; swapped whole on reload.
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// The config file reloads read.
    config_path: PathBuf,
    /// The `[dns]` section the sockets were bound with.
    dns: DnsConfig,
    /// UDP addresses actually bound (port 0 resolved).
    udp_addrs: Vec<SocketAddr>,
    /// TCP addresses actually bound.
    tcp_addrs: Vec<SocketAddr>,
    /// UDP worker threads.
    udp_workers: udp::Workers,
    /// Tells TCP accept loops and connections to stop.
    tcp_stop: watch::Sender<bool>,
    /// TCP connection slots; all free again once every connection has ended.
    tcp_slots: Arc<Semaphore>,
    /// Reloads that failed and changed nothing.
    reload_failures: AtomicU64,
    /// Serialises reloads (SIGHUP and the admin API), so an older load is never installed
    /// after a newer one.
    reloading: std::sync::Mutex<()>,
    /// The regional health monitor; it publishes health into the served snapshot and swaps
    /// reloaded snapshots in.
    monitor: Monitor,
    /// The embedded L7 balancers (`[balancers.*]`), sorted by name.
    balancers: Vec<RunningBalancer>,
}

/// What a successful reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Zones now served.
    pub zones: usize,
    /// Warnings about the new data, one `file:line: warning: ...` each.
    pub warnings: Vec<String>,
}

impl RunningServer {
    /// Binds every `[dns] listen` address (UDP and TCP on the same port) and starts serving
    /// `loaded`. Must be called inside a Tokio runtime.
    pub fn start(loaded: Loaded) -> io::Result<RunningServer> {
        let Loaded {
            config, snapshot, ..
        } = loaded;
        let dns = config.dns.clone();
        let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
        let monitor = Monitor::start(&config, Arc::clone(&snapshot)).map_err(io::Error::other)?;
        let (tcp_stop, tcp_stop_rx) = watch::channel(false);
        let tcp_slots = Arc::new(Semaphore::new(dns.tcp_max_connections));
        let settings = tcp::TcpSettings {
            idle_timeout: dns.tcp_idle_timeout,
        };

        let mut udp_sockets = Vec::new();
        let mut udp_addrs = Vec::new();
        let mut tcp_listeners = Vec::new();
        let mut tcp_addrs = Vec::new();
        for &addr in &dns.listen {
            let (sockets, listener) = bind_pair(addr, dns.udp_workers)?;
            udp_addrs.push(sockets[0].local_addr()?);
            tcp_addrs.push(listener.local_addr()?);
            udp_sockets.extend(sockets);
            tcp_listeners.push(listener);
        }
        for listener in tcp_listeners {
            tokio::spawn(tcp::serve(
                listener,
                Arc::clone(&snapshot),
                settings,
                Arc::clone(&tcp_slots),
                tcp_stop_rx.clone(),
            ));
        }
        let udp_workers = udp::spawn_workers(udp_sockets, Arc::clone(&snapshot))?;
        let mut balancers = Vec::with_capacity(config.balancers.len());
        for balancer in &config.balancers {
            match RunningBalancer::start(balancer) {
                Ok(running) => balancers.push(running),
                Err(err) => {
                    let _ = tcp_stop.send(true);
                    udp_workers.stop();
                    return Err(io::Error::new(
                        err.kind(),
                        format!(
                            "balancers.{}: cannot listen on {}: {err}",
                            balancer.name, balancer.listen
                        ),
                    ));
                }
            }
        }
        Ok(RunningServer {
            snapshot,
            config_path: config.path,
            dns,
            udp_addrs,
            tcp_addrs,
            udp_workers,
            tcp_stop,
            tcp_slots,
            reload_failures: AtomicU64::new(0),
            reloading: std::sync::Mutex::new(()),
            monitor,
            balancers,
        })
    }

    /// The UDP addresses served, with ports resolved.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The TCP addresses served, with ports resolved.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }

    /// The snapshot being served now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The regional health monitor.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The embedded L7 balancers, sorted by name.
    pub fn balancers(&self) -> &[RunningBalancer] {
        &self.balancers
    }

    /// The balancer named `name`.
    pub fn balancer(&self, name: &str) -> Option<&RunningBalancer> {
        self.balancers
            .iter()
            .find(|balancer| balancer.name() == name)
    }

    /// Number of reloads that failed since start.
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    /// Re-reads the config and every zone; swaps the new snapshot in only if all of it is valid.
    /// On failure the old data keeps being served and the error says which file and line.
    pub fn reload(&self) -> Result<ReloadSummary, LoadError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let telemetry = Arc::clone(&self.snapshot.load().telemetry);
        let mut loaded = snapshot::load(&self.config_path).inspect_err(|_| {
            self.reload_failures.fetch_add(1, Ordering::Relaxed);
            telemetry.reload_failed();
        })?;
        loaded.snapshot.adopt_telemetry(telemetry);
        if loaded.config.dns.listen != self.dns.listen
            || loaded.config.dns.udp_workers != self.dns.udp_workers
        {
            tracing::warn!("dns.listen and dns.udp_workers changes take effect on restart only");
        }
        let summary = ReloadSummary {
            zones: loaded.snapshot.zones.len(),
            warnings: loaded.warnings.iter().map(ToString::to_string).collect(),
        };
        self.monitor.install(&loaded.config, loaded.snapshot);
        for balancer in &self.balancers {
            match loaded
                .config
                .balancers
                .iter()
                .find(|config| config.name == balancer.name())
            {
                Some(config) => balancer.reload(config),
                None => tracing::warn!(
                    balancer = balancer.name(),
                    "removing a balancer takes effect on restart only"
                ),
            }
        }
        for config in &loaded.config.balancers {
            if self.balancer(&config.name).is_none() {
                tracing::warn!(
                    balancer = %config.name,
                    "adding a balancer takes effect on restart only"
                );
            }
        }
        Ok(summary)
    }

    /// Stops accepting, lets TCP connections finish the query they are on (up to a grace
    /// period), then stops the UDP workers.
    ///
    /// Balancers stop accepting at the same time and let their requests in flight finish, each
    /// for up to its `drain_timeout`.
    pub async fn shutdown(self) {
        let _ = self.tcp_stop.send(true);
        let balancers: Vec<_> = self
            .balancers
            .into_iter()
            .map(|balancer| tokio::spawn(balancer.shutdown()))
            .collect();
        let all = u32::try_from(self.dns.tcp_max_connections).unwrap_or(u32::MAX);
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tcp_slots.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("some TCP connections did not finish within the shutdown grace period");
        }
        let workers = self.udp_workers;
        let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
        for balancer in balancers {
            let _ = balancer.await;
        }
    }
}

/// Binds the UDP sockets and the TCP listener of one address on the same port. With port 0 the
/// UDP port is chosen first and TCP follows it, retrying if that TCP port happens to be taken.
fn bind_pair(
    addr: SocketAddr,
    workers: usize,
) -> io::Result<(Vec<std::net::UdpSocket>, tokio::net::TcpListener)> {
    let attempts = if addr.port() == 0 { 16 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let sockets = udp::bind(addr, workers)?;
        let mut tcp_addr = addr;
        tcp_addr.set_port(sockets[0].local_addr()?.port());
        match bind_tcp(tcp_addr) {
            Ok(listener) => return Ok((sockets, listener)),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no free port")))
}

/// A TCP listener with `SO_REUSEADDR`, IPv6-only for IPv6 addresses.
fn bind_tcp(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
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
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}
