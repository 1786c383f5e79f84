//! The running server: binds sockets, starts the UDP workers and TCP tasks, reloads, and stops.
//!
//! `serve` in the CLI and the integration tests drive the same [`RunningServer`].

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{Semaphore, watch};

use crate::admin::api::read_token;
use crate::balancer::listener::RunningBalancer;
use crate::config::{AdminConfig, Config, DnsConfig};
use crate::dns::{tcp, udp};
use crate::health::monitor::Monitor;
use crate::snapshot::{self, LoadError, Loaded, Snapshot};

/// Longest time shutdown waits for TCP connections to finish their current query.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Longest time a stop waits for admin API requests in flight, before the DNS and balancer
/// shutdown starts.
pub const ADMIN_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The longest a stop (SIGTERM) of a server running `config` can take: admin API requests get
/// [`ADMIN_SHUTDOWN_GRACE`], then TCP queries get [`SHUTDOWN_GRACE`] while every balancer
/// drains for up to its `drain_timeout`, side by side. A service manager's stop timeout must
/// be longer than this, or it kills the process while requests are still being finished.
pub fn longest_stop(config: &Config) -> Duration {
    let longest_drain = config
        .balancers
        .iter()
        .map(|balancer| balancer.drain_timeout)
        .max()
        .unwrap_or_default();
    ADMIN_SHUTDOWN_GRACE + SHUTDOWN_GRACE.max(longest_drain)
}

/// A server with its sockets bound and its workers running.
pub struct RunningServer {
    /// The data being served; swapped whole on reload.
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// The config file reloads read.
    config_path: PathBuf,
    /// The `[dns]` section the sockets were bound with.
    dns: DnsConfig,
    /// The `[admin]` settings as the admin API was started with them.
    admin: AdminAtStart,
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

/// The `[admin]` settings that are read once, at start: the API's listener and its token. A
/// reload compares the new config with them, to warn that their changes need a restart.
struct AdminAtStart {
    /// `[admin] listen`.
    listen: Option<SocketAddr>,
    /// `[admin] token_file`.
    token_file: Option<PathBuf>,
    /// The token that file held at start (`None` without a file, or when it could not be
    /// read: the start fails then anyway).
    token: Option<String>,
}

impl AdminAtStart {
    /// The settings of `admin`, with the token its file holds now.
    fn read(admin: &AdminConfig) -> AdminAtStart {
        AdminAtStart {
            listen: admin.listen,
            token_file: admin.token_file.clone(),
            token: admin
                .token_file
                .as_deref()
                .and_then(|path| read_token(path).ok()),
        }
    }

    /// What a reload to `admin` cannot apply, as one warning each: a new listen address, a
    /// new token file, or a token file whose token changed or cannot be read any more.
    fn changes(&self, admin: &AdminConfig) -> Vec<String> {
        let mut warnings = Vec::new();
        if admin.listen != self.listen {
            warnings.push(format!(
                "admin.listen changed ({} to {}): it takes effect on restart only",
                listen_text(self.listen),
                listen_text(admin.listen)
            ));
        }
        match (&self.token_file, &admin.token_file) {
            (old, new) if old != new => warnings.push(format!(
                "admin.token_file changed ({} to {}): it takes effect on restart only; the \
                 admin API keeps the token it read at start",
                path_text(old.as_deref()),
                path_text(new.as_deref())
            )),
            (_, Some(path)) => match read_token(path) {
                Ok(token) if Some(&token) == self.token.as_ref() => {}
                Ok(_) => warnings.push(format!(
                    "{}: the admin token changed: it takes effect on restart only; the admin \
                     API keeps the token it read at start",
                    path.display()
                )),
                Err(err) => warnings.push(format!(
                    "{err}; the admin API keeps the token it read at start"
                )),
            },
            (_, None) => {}
        }
        warnings
    }
}

/// An optional listen address as a warning shows it.
fn listen_text(listen: Option<SocketAddr>) -> String {
    listen.map_or_else(|| "none".to_string(), |addr| addr.to_string())
}

/// An optional path as a warning shows it.
fn path_text(path: Option<&Path>) -> String {
    path.map_or_else(|| "none".to_string(), |path| path.display().to_string())
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
        // Every socket is bound before anything starts, so a taken or forbidden address fails
        // the start with nothing left running.
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
        let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
        let monitor = Monitor::start(&config, Arc::clone(&snapshot)).map_err(io::Error::other)?;
        let (tcp_stop, tcp_stop_rx) = watch::channel(false);
        let tcp_slots = Arc::new(Semaphore::new(dns.tcp_max_connections));
        let settings = tcp::TcpSettings {
            idle_timeout: dns.tcp_idle_timeout,
        };
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
        restore_backend_drains(&monitor, &balancers);
        Ok(RunningServer {
            snapshot,
            admin: AdminAtStart::read(&config.admin),
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
        for warning in self.admin.changes(&loaded.config.admin) {
            tracing::warn!("{warning}");
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
        restore_backend_drains(&self.monitor, &self.balancers);
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

/// Drains the backends the operator drained by hand (kept in the admin state file): after a
/// restart, and after a reload that dropped one and added it back. The drain of a backend that
/// is no longer configured is forgotten.
fn restore_backend_drains(monitor: &Monitor, balancers: &[RunningBalancer]) {
    for (name, addrs) in monitor.backend_drains() {
        let balancer = balancers.iter().find(|balancer| balancer.name() == name);
        for addr in addrs {
            let backend =
                balancer.and_then(|balancer| Some((balancer, balancer.pool().backend(addr)?)));
            match backend {
                Some((balancer, backend)) => {
                    if backend.is_enabled() {
                        balancer.drain(addr);
                        tracing::info!(balancer = %name, backend = %addr, "backend kept drained, as the operator left it");
                    }
                }
                None => {
                    monitor.record_backend_drain(&name, addr, false);
                    tracing::info!(balancer = %name, backend = %addr, "forgetting the drain of a backend that is no longer configured");
                }
            }
        }
    }
}

/// Binds the UDP sockets and the TCP listener of one address on the same port. With port 0 the
/// UDP port is chosen first and TCP follows it, retrying if that TCP port happens to be taken.
/// An error names the address and the protocol that failed (see [`bind_error`]).
fn bind_pair(
    addr: SocketAddr,
    workers: usize,
) -> io::Result<(Vec<std::net::UdpSocket>, tokio::net::TcpListener)> {
    let attempts = if addr.port() == 0 { 16 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let sockets = udp::bind(addr, workers).map_err(|err| bind_error(addr, "UDP", err))?;
        let mut tcp_addr = addr;
        tcp_addr.set_port(sockets[0].local_addr()?.port());
        match bind_tcp(tcp_addr) {
            Ok(listener) => return Ok((sockets, listener)),
            Err(err) => last_error = Some(bind_error(tcp_addr, "TCP", err)),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no free port")))
}

/// The error of binding `addr` over `protocol` (`UDP` or `TCP`): it names both, keeps the
/// system's reason and kind, and says what to do about the usual causes.
fn bind_error(addr: SocketAddr, protocol: &str, err: io::Error) -> io::Error {
    let hint = match err.kind() {
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            "; port {} needs the capability CAP_NET_BIND_SERVICE (see deploy/README.md), or \
             use a port above 1023",
            addr.port()
        ),
        io::ErrorKind::AddrInUse => {
            let mut hint = "; another process already listens there".to_string();
            if addr.port() == 53 {
                hint.push_str(
                    ", often another DNS server: systemd-resolved's stub listener holds \
                     127.0.0.53:53 (set DNSStubListener=no in /etc/systemd/resolved.conf)",
                );
            }
            if addr.ip().is_unspecified() {
                hint.push_str(&format!(
                    "; listing this host's own addresses in dns.listen instead of {} avoids \
                     the ones others hold",
                    addr.ip()
                ));
            }
            hint
        }
        io::ErrorKind::AddrNotAvailable => "; no interface of this host has that address".into(),
        _ => String::new(),
    };
    io::Error::new(
        err.kind(),
        format!("cannot bind dns.listen {addr} over {protocol}: {err}{hint}"),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback address whose TCP port is held by the returned listener while its UDP port
    /// is free.
    fn tcp_port_taken() -> (std::net::TcpListener, SocketAddr) {
        for _ in 0..64 {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            if std::net::UdpSocket::bind(addr).is_ok() {
                return (listener, addr);
            }
        }
        panic!("no loopback port with TCP free and UDP free");
    }

    #[tokio::test]
    async fn a_taken_udp_port_is_an_error_naming_the_address_and_protocol() {
        let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = holder.local_addr().unwrap();
        let err = bind_pair(addr, 2).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot bind dns.listen {addr} over UDP: ")),
            "{text}"
        );
        assert!(
            text.contains("another process already listens there"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_taken_tcp_port_is_an_error_naming_the_address_and_protocol() {
        let (_holder, addr) = tcp_port_taken();
        let err = bind_pair(addr, 1).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot bind dns.listen {addr} over TCP: ")),
            "{text}"
        );
        // The UDP sockets bound before were closed again: the port is free for UDP.
        assert!(std::net::UdpSocket::bind(addr).is_ok());
    }

    #[test]
    fn permission_denied_on_a_low_port_points_at_the_capability() {
        let denied = || io::Error::from_raw_os_error(13);
        let err = bind_error("0.0.0.0:53".parse().unwrap(), "UDP", denied());
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let text = err.to_string();
        assert!(
            text.starts_with("cannot bind dns.listen 0.0.0.0:53 over UDP: "),
            "{text}"
        );
        assert!(text.contains("CAP_NET_BIND_SERVICE"), "{text}");
        assert!(text.contains("a port above 1023"), "{text}");
        let text = bind_error("127.0.0.1:5353".parse().unwrap(), "TCP", denied()).to_string();
        assert!(
            !text.contains("CAP_NET_BIND_SERVICE"),
            "no capability governs 5353: {text}"
        );
    }

    #[test]
    fn a_taken_port_53_points_at_the_resolved_stub_listener() {
        let in_use = || io::Error::from_raw_os_error(98);
        let text = bind_error("0.0.0.0:53".parse().unwrap(), "TCP", in_use()).to_string();
        assert!(text.contains("127.0.0.53:53"), "{text}");
        assert!(text.contains("DNSStubListener=no"), "{text}");
        assert!(text.contains("instead of 0.0.0.0"), "{text}");
        let text = bind_error("[::1]:53".parse().unwrap(), "UDP", in_use()).to_string();
        assert!(
            text.contains("cannot bind dns.listen [::1]:53 over UDP"),
            "{text}"
        );
        assert!(text.contains("DNSStubListener=no"), "{text}");
        assert!(
            !text.contains("instead of"),
            "an explicit address already: {text}"
        );
        let text = bind_error("127.0.0.1:5353".parse().unwrap(), "UDP", in_use()).to_string();
        assert!(!text.contains("resolved"), "only port 53: {text}");
    }

    /// An `[admin]` section listening on `listen` with `token_file`.
    fn admin(listen: &str, token_file: Option<&Path>) -> AdminConfig {
        AdminConfig {
            listen: Some(listen.parse().unwrap()),
            token_file: token_file.map(Path::to_path_buf),
            state_file: None,
        }
    }

    #[test]
    fn a_reload_warns_of_admin_changes_it_cannot_apply() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("admin.token");
        std::fs::write(&token, "first-token\n").unwrap();
        let at_start = AdminAtStart::read(&admin("127.0.0.1:8053", Some(&token)));
        assert_eq!(at_start.token.as_deref(), Some("first-token"));

        // Nothing changed; a new trailing newline is not a new token.
        std::fs::write(&token, "first-token").unwrap();
        assert!(
            at_start
                .changes(&admin("127.0.0.1:8053", Some(&token)))
                .is_empty()
        );

        let warnings = at_start.changes(&admin("127.0.0.1:9053", Some(&token)));
        assert_eq!(
            warnings,
            [
                "admin.listen changed (127.0.0.1:8053 to 127.0.0.1:9053): it takes effect on \
              restart only"
            ]
        );

        let other = dir.path().join("other.token");
        std::fs::write(&other, "first-token").unwrap();
        let warnings = at_start.changes(&admin("127.0.0.1:8053", Some(&other)));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("admin.token_file changed (")
                && warnings[0].contains("other.token"),
            "{warnings:?}"
        );

        std::fs::write(&token, "second-token\n").unwrap();
        let warnings = at_start.changes(&admin("127.0.0.1:8053", Some(&token)));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!("{}: the admin token changed", token.display())),
            "{warnings:?}"
        );
        assert!(
            !warnings[0].contains("second-token"),
            "never the token: {warnings:?}"
        );

        std::fs::remove_file(&token).unwrap();
        let warnings = at_start.changes(&admin("127.0.0.1:8053", Some(&token)));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("cannot read the admin token file")
                && warnings[0].ends_with("the admin API keeps the token it read at start"),
            "{warnings:?}"
        );
    }
}
