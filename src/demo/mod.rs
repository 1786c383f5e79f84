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
//! the regional monitors and the admin API. SIGINT (Ctrl-C) or SIGTERM stops everything.

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
    init_logging();
    let files = match DemoFiles::write(args.address) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = start(&files, &args);
    drop(files);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            for line in err.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Loads the written config, starts the runtime and runs everything in it.
fn start(files: &DemoFiles, args: &DemoArgs) -> Result<(), String> {
    let loaded = crate::snapshot::load(&files.config).map_err(|err| err.to_string())?;
    let topology = Topology::from_config(&loaded.config, args.address)?;
    setup::check_ports(&topology)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    runtime.block_on(serve(loaded, topology, files, args))
}

/// Starts the backends, the control API, standard input and the traffic, then serves with
/// [`crate::cli::run`] until a stop signal; stops everything after it.
async fn serve(
    loaded: crate::snapshot::Loaded,
    topology: Topology,
    files: &DemoFiles,
    args: &DemoArgs,
) -> Result<(), String> {
    let demo = Arc::new(Demo::new(topology));
    demo.start_all_backends().await?;
    let control_addr = SocketAddr::from((args.address, CONTROL_PORT));
    let control_listener = tokio::net::TcpListener::bind(control_addr)
        .await
        .map_err(|err| setup::port_error(control_addr, "the demo's control API", &err))?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(control::serve_api(
        control_listener,
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
    let result = crate::cli::run(loaded).await.map_err(|err| err.to_string());
    let _ = stop.send(true);
    let shutdown = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .is_err()
    {
        tracing::warn!("demo tasks did not stop within 5 s; stopping them");
    }
    demo.stop_all_backends().await;
    if result.is_ok() {
        println!("demo stopped");
    }
    result
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

/// Logs to stderr as `serve` does; `RUST_LOG` filters (default `info`).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
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
