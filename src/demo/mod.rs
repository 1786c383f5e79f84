//! `meridian demo`: a complete three-region set-up on loopback, in one process.
//!
//! The demo is the production server with a few extras around it:
//!
//! - [`setup`] writes the shipped example (`examples/three-regions/`: config, zone) and the
//!   small world geo database (`geodata/`), embedded in the binary, into a temporary directory,
//!   moved to the `--address` asked for, and loads it with [`crate::snapshot::load`], exactly as
//!   `meridian serve --config` does;
//! - [`backend`] runs the sample backends behind the three L7 pools: tiny HTTP/1.1 servers that
//!   say which region and backend answered;
//! - [`traffic`] sends a small, bounded background load: simulated clients in different
//!   countries resolve the GSLB names with EDNS Client Subnet and then fetch from the pool the
//!   answer points at;
//! - [`control`] stops and starts backends and whole regions, from standard input or from a
//!   small HTTP API on loopback;
//!
//! and then runs [`crate::cli::run`], the same function as `meridian serve`: DNS, the pools,
//! the regional monitors and the admin API. SIGINT (Ctrl-C) or SIGTERM stops everything, at
//! any time: the demo handles them before it writes its temporary directory, and removes the
//! directory on every way out (a stop signal, an error, a panic).

pub mod backend;
pub mod control;
pub mod setup;
pub mod traffic;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use self::control::Demo;
use self::setup::{DemoFiles, Topology};

/// The port of the demo's control API (on the demo's address); the other ports come from
/// `examples/three-regions/meridian.toml`.
pub const CONTROL_PORT: u16 = 18054;

/// How long the demo waits for every monitor's first probes before it prints what to try.
const READY_WAIT: Duration = Duration::from_secs(20);

/// Options of `meridian demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The loopback address every listener of the demo uses (DNS, admin API, pools, backends,
    /// control API), so several demos can run side by side.
    #[arg(long, value_name = "127.X.Y.Z", default_value = "127.0.0.1", value_parser = parse_loopback)]
    pub address: Ipv4Addr,
    /// Send no background traffic (the simulated clients' DNS queries and HTTP requests).
    #[arg(long)]
    pub no_load: bool,
}

/// Accepts an IPv4 address in 127.0.0.0/8.
fn parse_loopback(text: &str) -> Result<Ipv4Addr, String> {
    let address: Ipv4Addr = text
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 address; use one in 127.0.0.0/8"))?;
    if !address.is_loopback() {
        return Err(format!(
            "{address} is not a loopback address: the demo listens on 127.0.0.0/8 only \
             (e.g. 127.0.0.2)"
        ));
    }
    Ok(address)
}

/// Runs the demo until SIGINT or SIGTERM; the exit code says whether it started and stopped
/// cleanly.
pub fn run(args: DemoArgs) -> ExitCode {
    crate::cli::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            for line in err.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What is running once the demo has started, before it serves.
struct Started {
    /// The loaded config, for [`crate::cli::run`].
    loaded: crate::snapshot::Loaded,
    /// The demo's state, its backends already listening.
    demo: Arc<Demo>,
    /// The control API's bound listener.
    control: tokio::net::TcpListener,
}

/// Writes the files, starts and serves; a stop signal at any point stops it, and the files
/// are removed on the way out.
async fn demo(args: DemoArgs) -> Result<(), String> {
    // Before anything is written: from here on SIGINT and SIGTERM no longer kill the process
    // (which would leave the temporary directory behind) but reach `signals`.
    let mut signals = StopSignals::install()?;
    let files = DemoFiles::write(args.address)?;
    remove_on_panic(&files.root);
    let started = tokio::select! {
        biased;
        signal = signals.recv() => {
            tracing::info!(%signal, "stopping before the demo started");
            None
        }
        started = start(&files, &args) => Some(started?),
    };
    let result = match started {
        Some(started) => serve(started, &mut signals, &files, &args).await,
        None => Ok(()),
    };
    drop(files);
    if result.is_ok() {
        println!("demo stopped");
    }
    result
}

/// Loads the written config, checks every port, starts the sample backends and binds the
/// control API.
async fn start(files: &DemoFiles, args: &DemoArgs) -> Result<Started, String> {
    let path = files.config.clone();
    let loaded = tokio::task::spawn_blocking(move || crate::snapshot::load(&path))
        .await
        .map_err(|err| format!("loading the demo's config failed: {err}"))?
        .map_err(|err| err.to_string())?;
    let topology = Topology::from_config(&loaded.config, args.address)?;
    setup::check_ports(&topology)?;
    let demo = Arc::new(Demo::new(topology));
    demo.start_all_backends().await?;
    let control_addr = SocketAddr::from((args.address, CONTROL_PORT));
    let control = tokio::net::TcpListener::bind(control_addr)
        .await
        .map_err(|err| setup::port_error(control_addr, "the demo's control API", &err))?;
    Ok(Started {
        loaded,
        demo,
        control,
    })
}

/// Starts the control API, standard input and the traffic, then serves with
/// [`crate::cli::run`] until a stop signal; stops everything after it.
async fn serve(
    started: Started,
    signals: &mut StopSignals,
    files: &DemoFiles,
    args: &DemoArgs,
) -> Result<(), String> {
    let Started {
        loaded,
        demo,
        control,
    } = started;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(control::serve_api(
        control,
        Arc::clone(&demo),
        stopped.clone(),
    ));
    tasks.spawn(control::read_stdin(Arc::clone(&demo), stopped.clone()));
    tasks.spawn(announce(
        Arc::clone(&demo),
        files.config.display().to_string(),
        !args.no_load,
        stopped.clone(),
    ));
    let run = crate::cli::run(loaded);
    tokio::pin!(run);
    let mut relayed = false;
    let result = loop {
        tokio::select! {
            biased;
            result = &mut run => break result.map_err(|err| err.to_string()),
            signal = signals.recv(), if !relayed => {
                // `cli::run` installs its own handlers when first polled (above, before this
                // branch). A signal that came just before may have reached only `signals`:
                // sending it again reaches the server for sure; a second one does no harm.
                relayed = true;
                if let Err(err) = nix::sys::signal::raise(signal) {
                    tracing::error!(%err, %signal, "cannot pass the stop signal on");
                }
            }
        }
    };
    let _ = stop.send(true);
    let shutdown = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .is_err()
    {
        tracing::warn!("demo tasks did not stop within 5 s; stopping them");
    }
    demo.stop_all_backends().await;
    result
}

/// The stop signals, handled from the demo's first moment.
struct StopSignals {
    /// SIGTERM.
    terminate: tokio::signal::unix::Signal,
    /// SIGINT (Ctrl-C).
    interrupt: tokio::signal::unix::Signal,
    /// SIGHUP: [`crate::cli::run`] reloads on it; until then it is ignored rather than
    /// fatal.
    hangup: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers.
    fn install() -> Result<StopSignals, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|err| format!("cannot handle {name}: {err}"))
        };
        Ok(StopSignals {
            terminate: install(SignalKind::terminate(), "SIGTERM")?,
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
            hangup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// The next stop signal (SIGHUP is taken and ignored).
    async fn recv(&mut self) -> nix::sys::signal::Signal {
        use nix::sys::signal::Signal;
        loop {
            tokio::select! {
                _ = self.terminate.recv() => return Signal::SIGTERM,
                _ = self.interrupt.recv() => return Signal::SIGINT,
                _ = self.hangup.recv() => {}
            }
        }
    }
}

/// Removes the demo's temporary directory when the process panics: release builds abort on
/// a panic, so no destructor would.
fn remove_on_panic(root: &std::path::Path) {
    if !cfg!(panic = "abort") {
        return;
    }
    let root = root.to_path_buf();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let _ = std::fs::remove_dir_all(&root);
    }));
}

/// Waits until the admin API reports every monitor probed, prints what to try, and starts
/// the background traffic.
async fn announce(demo: Arc<Demo>, config: String, load: bool, mut stopped: watch::Receiver<bool>) {
    let ready = async {
        let deadline = Instant::now() + READY_WAIT;
        let admin = demo.topology().admin;
        loop {
            if let Ok((200, _)) = traffic::http_get(admin, "/readyz", &[]).await {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let ready = tokio::select! {
        ready = ready => ready,
        _ = stopped.changed() => return,
    };
    if !ready {
        tracing::warn!(
            "the admin API did not report every monitor probed within {} s",
            READY_WAIT.as_secs()
        );
    }
    let text = control::instructions(&demo, &config, load).await;
    println!("{text}");
    let topology = demo.topology();
    println!(
        "demo ready: dns={} admin=http://{} control=http://{}",
        topology.dns,
        topology.admin,
        SocketAddr::from((topology.address, CONTROL_PORT))
    );
    if load {
        traffic::run(demo, stopped).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert_eq!(parse_loopback("127.3.4.5"), Ok(Ipv4Addr::new(127, 3, 4, 5)));
        let err = parse_loopback("10.0.0.1").unwrap_err();
        assert!(err.contains("not a loopback address"), "{err}");
        let err = parse_loopback("localhost").unwrap_err();
        assert!(err.contains("not an IPv4 address"), "{err}");
    }
}
