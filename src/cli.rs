//! The `meridian` command line: `serve`, `check` and `version`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Require;
use crate::server::RunningServer;
use crate::snapshot::{self, Loaded};

/// Meridian: a GSLB authoritative DNS server.
#[derive(Debug, Parser)]
#[command(name = "meridian", version, about)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve DNS until SIGTERM or SIGINT; SIGHUP reloads config and zones.
    Serve {
        /// The configuration file.
        #[arg(long, short, default_value = "meridian.toml")]
        config: PathBuf,
    },
    /// Check the configuration and everything it references, exactly as `serve` loads it.
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "meridian.toml")]
        config: PathBuf,
    },
    /// Print the version.
    Version,
    /// Geo data tools.
    Geo {
        /// What to do.
        #[command(subcommand)]
        command: GeoCommand,
    },
}

/// `meridian geo ...`.
#[derive(Debug, Subcommand)]
enum GeoCommand {
    /// Show where an address is and what every map gives it, exactly as queries see it.
    Lookup {
        /// The client address (as a resolver's address, or an ECS address).
        address: std::net::IpAddr,
        /// The configuration file.
        #[arg(long, short, default_value = "meridian.toml")]
        config: PathBuf,
    },
    /// Write a MaxMind DB (City shape) from a locations CSV or an RFC 8805 geofeed.
    Build {
        /// The input: a locations CSV with the header
        /// `network,continent,country,subdivision,city,latitude,longitude,asn`, or a geofeed.
        #[arg(long)]
        from: PathBuf,
        /// The database to write (replaced atomically).
        #[arg(long)]
        out: PathBuf,
        /// The input format; detected from the header when absent.
        #[arg(long, value_enum)]
        format: Option<InputFormat>,
    },
}

/// `--format` of `geo build`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum InputFormat {
    /// Meridian's locations CSV.
    Locations,
    /// RFC 8805 geofeed.
    Geofeed,
}

/// Runs the command line; the process exit code is the result.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Check { config } => check(&config),
        Command::Version => {
            println!("meridian {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Geo {
            command: GeoCommand::Lookup { address, config },
        } => geo_lookup(address, &config),
        Command::Geo {
            command: GeoCommand::Build { from, out, format },
        } => geo_build(&from, &out, format),
    }
}

/// `meridian geo build`.
fn geo_build(from: &Path, out: &Path, format: Option<InputFormat>) -> ExitCode {
    use crate::geo::build::{Format, build};
    let format = format.map(|format| match format {
        InputFormat::Locations => Format::Locations,
        InputFormat::Geofeed => Format::Geofeed,
    });
    match build(from, out, format) {
        Ok(summary) => {
            println!(
                "{}: {} networks, {} bytes",
                out.display(),
                summary.networks,
                summary.bytes
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// `meridian geo lookup`: the location databases' view of `address` and each map's answer.
fn geo_lookup(address: std::net::IpAddr, path: &Path) -> ExitCode {
    let loaded = match snapshot::load(path) {
        Ok(loaded) => loaded,
        Err(err) => {
            for line in err.lines() {
                eprintln!("{line}");
            }
            return ExitCode::FAILURE;
        }
    };
    match describe_address(&loaded, address) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// What `geo lookup` prints for `address`.
pub fn describe_address(
    loaded: &Loaded,
    address: std::net::IpAddr,
) -> Result<String, crate::geo::source::GeoError> {
    use std::fmt::Write;

    use crate::geo::source::{Database, DatabaseKind};

    let mut text = format!("{address}\n");
    for path in &loaded.config.geo.databases {
        let db = Database::open(path)?;
        let file = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        match db.kind() {
            DatabaseKind::Location => match db.locate(address)? {
                Some((location, network)) => {
                    let parts: Vec<&str> = [
                        &location.continent,
                        &location.country,
                        &location.subdivision,
                        &location.city,
                    ]
                    .into_iter()
                    .flatten()
                    .map(|part| &**part)
                    .collect();
                    let coordinates = location
                        .coordinates
                        .map_or_else(String::new, |(lat, lon)| format!(", {lat:.2},{lon:.2}"));
                    let _ = writeln!(
                        text,
                        "  location: {}{coordinates} ({file}, network {network})",
                        parts.join(" / ")
                    );
                }
                None => {
                    let _ = writeln!(text, "  location: unknown ({file} has no data for it)");
                }
            },
            DatabaseKind::Asn => match db.asn(address)? {
                Some((asn, network)) => {
                    let _ = writeln!(text, "  asn: AS{asn} ({file}, network {network})");
                }
                None => {
                    let _ = writeln!(text, "  asn: unknown ({file} has no data for it)");
                }
            },
        }
    }
    let geo = &loaded.snapshot.geo;
    for map in geo.maps.iter() {
        let (index, scope) = map.table.lookup(address);
        let regions: Vec<&str> = map.lists[index as usize]
            .iter()
            .map(|&region| loaded.config.regions[usize::from(region)].name.as_str())
            .collect();
        let _ = writeln!(
            text,
            "  map {}: [{}]; scope /{scope}",
            map.name,
            regions.join(", ")
        );
    }
    if geo.maps.is_empty() {
        let _ = writeln!(text, "  no maps configured");
    }
    Ok(text)
}

/// `meridian check`: loads like `serve`, prints warnings and errors as `file:line: message`.
fn check(path: &Path) -> ExitCode {
    match snapshot::load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("{warning}");
            }
            let zones = &loaded.snapshot.zones;
            let records: usize = zones.iter().map(|zone| zone.record_count()).sum();
            println!(
                "{}: ok: {} zone{}, {records} records, {} service{}, {} warning{}",
                path.display(),
                zones.len(),
                plural(zones.len()),
                loaded.snapshot.services.len(),
                plural(loaded.snapshot.services.len()),
                loaded.warnings.len(),
                plural(loaded.warnings.len()),
            );
            for region in &loaded.config.regions {
                let monitors = region.monitors.len();
                let mut line = format!(
                    "region {}: {monitors} monitor{}",
                    region.name,
                    plural(monitors)
                );
                if monitors > 0 {
                    let require = match region.health.require {
                        Require::All => "all".to_string(),
                        Require::Any => "any".to_string(),
                        Require::AtLeast(n) => format!("at least {n}"),
                    };
                    let initial = if region.health.initial_up {
                        "up"
                    } else {
                        "down"
                    };
                    line.push_str(&format!(" (require {require}, initial {initial})"));
                }
                if let Some(capacity) = region.capacity {
                    line.push_str(&format!(", capacity {capacity}"));
                }
                println!("{line}");
            }
            let report = &loaded.geo_report;
            for (name, leaves, bytes) in &report.maps {
                println!(
                    "map {name}: {leaves} prefixes, {} KiB (from {} located networks, {} ASN networks, {} nets rules)",
                    bytes.div_ceil(1024),
                    report.location_networks,
                    report.asn_networks,
                    report.nets_rules
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            for line in err.lines() {
                eprintln!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// "s" unless there is exactly one.
fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// `meridian serve`.
fn serve(path: &Path) -> ExitCode {
    init_logging();
    let loaded = match snapshot::load(path) {
        Ok(loaded) => loaded,
        Err(err) => {
            for line in err.lines() {
                tracing::error!("{line}");
            }
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(?err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until a stop signal, reloading on SIGHUP.
async fn run(loaded: Loaded) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    // Handlers go in before the sockets open: a SIGHUP sent as soon as the
    // server answers must reload it, not kill it with the default action.
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let zones = loaded.snapshot.zones.len();
    let server = RunningServer::start(loaded)
        .map_err(|err| std::io::Error::new(err.kind(), format!("cannot bind dns.listen: {err}")))?;
    tracing::info!(udp = ?server.udp_addrs(), tcp = ?server.tcp_addrs(), zones, "serving");
    loop {
        tokio::select! {
            _ = hangup.recv() => match server.reload() {
                Ok(summary) => {
                    for warning in &summary.warnings {
                        tracing::warn!("{warning}");
                    }
                    tracing::info!(zones = summary.zones, "reloaded");
                }
                Err(err) => {
                    for line in err.lines() {
                        tracing::error!("{line}");
                    }
                    tracing::error!("reload failed; still serving the previous data");
                }
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("stopping: finishing TCP queries in flight");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Logs to stderr; `RUST_LOG` filters (default `info`). Colours only on a
/// terminal, so journald and log files get plain text.
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
