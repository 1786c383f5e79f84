//! The `meridian` command line: `serve`, `check`, `version`, `geo`, and the operator commands
//! (`status`, `drain`, `drill`, `explain`, ...) that talk to a running server's admin API.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use clap::{Args, Parser, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::api::{self, ApiState, read_token};
use crate::admin::client::{self, Client, ClientError, Target};
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
    /// Run a complete three-region demo on loopback: DNS, pools, sample backends, dashboard.
    Demo(crate::demo::DemoArgs),
    /// Geo data tools.
    Geo {
        /// What to do.
        #[command(subcommand)]
        command: GeoCommand,
    },
    /// Show regions (observed, override, effective), monitors, services and drills.
    Status {
        /// Where the server is.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Drain a region: ramp its share of answers to zero over the drain period, then keep it
    /// out.
    Drain {
        /// The override.
        #[command(flatten)]
        change: OverrideArgs,
        /// How long the ramp to zero takes (default: the longest TTL of the region's answers).
        #[arg(long, value_name = "DURATION")]
        drain_period: Option<String>,
    },
    /// Lift a drain (refuses to lift another kind of override; see `clear`).
    Undrain {
        /// The region.
        region: String,
        /// Where the server is.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Take a region out at once, for maintenance.
    Maintenance {
        /// The override.
        #[command(flatten)]
        change: OverrideArgs,
    },
    /// Treat a region as down whatever its monitors say.
    ForceDown {
        /// The override.
        #[command(flatten)]
        change: OverrideArgs,
    },
    /// Treat a region as up whatever its monitors say.
    ForceUp {
        /// The override.
        #[command(flatten)]
        change: OverrideArgs,
    },
    /// Clear any override of a region: its monitors decide again.
    Clear {
        /// The region.
        region: String,
        /// Refuse if the server's revision is no longer this one.
        #[arg(long)]
        revision: Option<u64>,
        /// Where the server is.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Failover drills: take a region out for a while and measure what happens.
    Drill {
        /// What to do.
        #[command(subcommand)]
        command: DrillCommand,
    },
    /// Explain what a client gets for a name and why, as the server would answer now.
    #[command(group(clap::ArgGroup::new("asker").required(true).multiple(true).args(["client", "ecs"])))]
    Explain {
        /// The name asked.
        name: String,
        /// The query type (A, AAAA, TXT, TYPE65...).
        #[arg(value_name = "TYPE", default_value = "A")]
        qtype: String,
        /// The resolver's address.
        #[arg(long, value_name = "ADDRESS")]
        client: Option<IpAddr>,
        /// The client subnet the query carries (e.g. 81.2.69.0/24).
        #[arg(long, value_name = "NETWORK")]
        ecs: Option<String>,
        /// Where the server is.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Reload the config and every zone (as SIGHUP does), and report errors.
    Reload {
        /// Where the server is.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// L7 balancer backends: list them, drain one for maintenance, undrain it.
    Backend {
        /// What to do.
        #[command(subcommand)]
        command: BackendCommand,
    },
    /// Let a manual-failback service return to its primaries.
    Failback {
        /// The service name.
        service: String,
        /// Where the server is.
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `meridian backend ...`.
#[derive(Debug, Subcommand)]
enum BackendCommand {
    /// Show every L7 balancer's backends: state, weight, requests in flight.
    List {
        /// Where the server is.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Stop new requests to a backend; those in flight get the balancer's drain_timeout.
    Drain(BackendArgs),
    /// Let a drained backend take new requests again (under slow start).
    Undrain(BackendArgs),
}

/// One backend of one balancer, on a server.
#[derive(Debug, Clone, Args)]
struct BackendArgs {
    /// The balancer (its [balancers.NAME]).
    balancer: String,
    /// The backend's address, IP:PORT.
    addr: String,
    /// Where the server is.
    #[command(flatten)]
    api: ApiArgs,
}

/// `meridian drill ...`.
#[derive(Debug, Subcommand)]
enum DrillCommand {
    /// Start a drill: the region is failed or drained, and rolls back by itself at the end.
    Start {
        /// The region.
        #[arg(long)]
        region: String,
        /// `fail` (out at once) or `drain` (ramped over one TTL).
        #[arg(long, value_parser = ["fail", "drain"])]
        mode: String,
        /// How long it runs (e.g. 15m).
        #[arg(long, value_name = "DURATION")]
        duration: String,
        /// Why; goes into the audit log and the report.
        #[arg(long)]
        reason: String,
        /// Run even when the other regions' capacity looks too small for the load.
        #[arg(long)]
        force: bool,
        /// Refuse if the server's revision is no longer this one.
        #[arg(long)]
        revision: Option<u64>,
        /// Where the server is.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a drill's report: its timeline, measured times and answer shares.
    Report {
        /// The drill id.
        id: u64,
        /// Where the server is.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Stop a drill early and roll it back.
    Abort {
        /// The drill id.
        id: u64,
        /// Where the server is.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the drills the server keeps.
    List {
        /// Where the server is.
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// How an operator command finds the server, and how it prints.
#[derive(Debug, Clone, Args)]
struct ApiArgs {
    /// The server's configuration file: the API address and token come from its `[admin]`
    /// section (default: meridian.toml, unless --admin is given).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The admin API's URL, e.g. http://127.0.0.1:8053 (instead of the config's admin.listen).
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// File holding the bearer token (default: the config's admin.token_file).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Print the server's JSON instead of text for people.
    #[arg(long)]
    json: bool,
    /// Who you are, for the audit log (default: $USER).
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
}

/// An override to set.
#[derive(Debug, Clone, Args)]
struct OverrideArgs {
    /// The region.
    region: String,
    /// Why (a change ticket, a sentence); goes into the audit log.
    #[arg(long)]
    reason: String,
    /// How long the override lasts (e.g. 2h); until cleared when absent.
    #[arg(long = "for", value_name = "DURATION")]
    duration: Option<String>,
    /// Refuse if the server's revision is no longer this one.
    #[arg(long)]
    revision: Option<u64>,
    /// Where the server is.
    #[command(flatten)]
    api: ApiArgs,
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
        Command::Demo(args) => crate::demo::run(args),
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
        Command::Status { api } => remote(&api, Remote::Status),
        Command::Drain {
            change,
            drain_period,
        } => override_command(change, "drain", drain_period),
        Command::Maintenance { change } => override_command(change, "maintenance", None),
        Command::ForceDown { change } => override_command(change, "force_down", None),
        Command::ForceUp { change } => override_command(change, "force_up", None),
        Command::Undrain { region, api } => remote(&api, Remote::Undrain { region }),
        Command::Clear {
            region,
            revision,
            api,
        } => remote(&api, Remote::Clear { region, revision }),
        Command::Drill { command } => match command {
            DrillCommand::Start {
                region,
                mode,
                duration,
                reason,
                force,
                revision,
                api,
            } => {
                let body = json!({
                    "region": region,
                    "mode": mode,
                    "duration": duration,
                    "reason": reason,
                    "force": force,
                    "revision": revision,
                });
                remote(&api, Remote::DrillStart { body })
            }
            DrillCommand::Report { id, api } => remote(&api, Remote::DrillReport { id }),
            DrillCommand::Abort { id, api } => remote(&api, Remote::DrillAbort { id }),
            DrillCommand::List { api } => remote(&api, Remote::DrillList),
        },
        Command::Explain {
            name,
            qtype,
            client,
            ecs,
            api,
        } => remote(
            &api,
            Remote::Explain {
                name,
                qtype,
                client,
                ecs,
            },
        ),
        Command::Reload { api } => remote(&api, Remote::Reload),
        Command::Failback { service, api } => remote(&api, Remote::Failback { service }),
        Command::Backend { command } => match command {
            BackendCommand::List { api } => remote(&api, Remote::Balancers),
            BackendCommand::Drain(backend) => backend_drain(backend, true),
            BackendCommand::Undrain(backend) => backend_drain(backend, false),
        },
    }
}

/// `backend drain` (`drain`) and `backend undrain`.
fn backend_drain(backend: BackendArgs, drain: bool) -> ExitCode {
    let BackendArgs {
        balancer,
        addr,
        api,
    } = backend;
    remote(
        &api,
        Remote::BackendDrain {
            balancer,
            addr,
            drain,
        },
    )
}

/// `drain`, `maintenance`, `force-down`, `force-up`: one `PUT .../override`.
fn override_command(change: OverrideArgs, action: &str, drain_period: Option<String>) -> ExitCode {
    let OverrideArgs {
        region,
        reason,
        duration,
        revision,
        api,
    } = change;
    let mut body = json!({ "action": action, "reason": reason });
    if let Some(duration) = duration {
        body["for"] = json!(duration);
    }
    if let Some(period) = drain_period {
        body["drain_period"] = json!(period);
    }
    if let Some(revision) = revision {
        body["revision"] = json!(revision);
    }
    remote(&api, Remote::Override { region, body })
}

/// An operator command, as requests to the admin API.
#[derive(Debug)]
enum Remote {
    /// `GET /v1/status`.
    Status,
    /// `GET /v1/balancers`.
    Balancers,
    /// `POST /v1/balancers/{balancer}/backends/{addr}/drain` (or `undrain`).
    BackendDrain {
        /// The balancer.
        balancer: String,
        /// The backend.
        addr: String,
        /// Drain (or undrain).
        drain: bool,
    },
    /// `PUT /v1/regions/{region}/override`.
    Override {
        /// The region.
        region: String,
        /// The request body.
        body: Value,
    },
    /// `GET /v1/regions/{region}`, then `DELETE .../override` if it is draining.
    Undrain {
        /// The region.
        region: String,
    },
    /// `DELETE /v1/regions/{region}/override`.
    Clear {
        /// The region.
        region: String,
        /// The revision expected.
        revision: Option<u64>,
    },
    /// `POST /v1/drills`.
    DrillStart {
        /// The request body.
        body: Value,
    },
    /// `GET /v1/drills/{id}`.
    DrillReport {
        /// The drill.
        id: u64,
    },
    /// `POST /v1/drills/{id}/abort`.
    DrillAbort {
        /// The drill.
        id: u64,
    },
    /// `GET /v1/drills`.
    DrillList,
    /// `GET /v1/explain`.
    Explain {
        /// The name.
        name: String,
        /// The type.
        qtype: String,
        /// The resolver's address.
        client: Option<IpAddr>,
        /// The client subnet.
        ecs: Option<String>,
    },
    /// `POST /v1/reload`.
    Reload,
    /// `POST /v1/services/{service}/failback`.
    Failback {
        /// The service.
        service: String,
    },
}

/// How an answer is printed for people.
type Render = fn(&Value, SystemTime) -> String;

/// Runs `command` against the server `api` names; prints the answer, or the error and exits 1.
fn remote(api: &ApiArgs, command: Remote) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = Target::resolve(
        api.admin.as_deref(),
        api.config.as_deref(),
        api.token_file.as_deref(),
    )
    .and_then(|target| {
        let actor = api
            .actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|actor| !actor.trim().is_empty())
            .unwrap_or_else(|| "cli".to_string());
        Client::new(target, &actor)
    })
    .and_then(|client| runtime.block_on(perform(&client, command)));
    match result {
        Ok((value, render)) => {
            if api.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
            } else {
                print!("{}", render(&value, SystemTime::now()));
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            if let ClientError::Api { body, .. } = &err {
                for line in body["errors"].as_array().into_iter().flatten() {
                    eprintln!("{}", line.as_str().unwrap_or_default());
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// A path segment, percent-encoded.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Sends the requests of `command`; the answer to print and how.
async fn perform(client: &Client, command: Remote) -> Result<(Value, Render), ClientError> {
    match command {
        Remote::Status => Ok((
            client.call(Method::GET, "/v1/status", &[], None).await?,
            client::render_status,
        )),
        Remote::Override { region, body } => {
            let path = format!("/v1/regions/{}/override", segment(&region));
            Ok((
                client.call(Method::PUT, &path, &[], Some(&body)).await?,
                client::render_change,
            ))
        }
        Remote::Undrain { region } => {
            let path = format!("/v1/regions/{}", segment(&region));
            let current = client.call(Method::GET, &path, &[], None).await?;
            let active = &current["region"]["override"];
            match active["action"].as_str() {
                None => Ok((current, not_draining)),
                Some("drain") => {
                    let body = json!({ "revision": current["revision"] });
                    let path = format!("{path}/override");
                    Ok((
                        client.call(Method::DELETE, &path, &[], Some(&body)).await?,
                        client::render_change,
                    ))
                }
                Some(action) => Err(ClientError::Setup(format!(
                    "{region} is not draining: its override is {action} (set by {}); use                      `meridian clear {region}` to lift it",
                    active["who"].as_str().unwrap_or("?")
                ))),
            }
        }
        Remote::Clear { region, revision } => {
            let path = format!("/v1/regions/{}/override", segment(&region));
            let body = revision.map(|revision| json!({ "revision": revision }));
            Ok((
                client
                    .call(Method::DELETE, &path, &[], body.as_ref())
                    .await?,
                client::render_change,
            ))
        }
        Remote::DrillStart { body } => Ok((
            client
                .call(Method::POST, "/v1/drills", &[], Some(&body))
                .await?,
            client::render_drill_started,
        )),
        Remote::DrillReport { id } => Ok((
            client
                .call(Method::GET, &format!("/v1/drills/{id}"), &[], None)
                .await?,
            client::render_drill,
        )),
        Remote::DrillAbort { id } => Ok((
            client
                .call(Method::POST, &format!("/v1/drills/{id}/abort"), &[], None)
                .await?,
            client::render_drill,
        )),
        Remote::DrillList => Ok((
            client.call(Method::GET, "/v1/drills", &[], None).await?,
            client::render_drills,
        )),
        Remote::Explain {
            name,
            qtype,
            client: resolver,
            ecs,
        } => {
            let resolver = resolver.map(|address| address.to_string());
            let mut query = vec![("name", name.as_str()), ("type", qtype.as_str())];
            if let Some(resolver) = &resolver {
                query.push(("client", resolver));
            }
            if let Some(ecs) = &ecs {
                query.push(("ecs", ecs));
            }
            Ok((
                client
                    .call(Method::GET, "/v1/explain", &query, None)
                    .await?,
                client::render_explain,
            ))
        }
        Remote::Reload => Ok((
            client.call(Method::POST, "/v1/reload", &[], None).await?,
            |value, _| client::render_reload(value),
        )),
        Remote::Balancers => Ok((
            client.call(Method::GET, "/v1/balancers", &[], None).await?,
            |value, _| client::render_balancers(value),
        )),
        Remote::BackendDrain {
            balancer,
            addr,
            drain,
        } => {
            let path = format!(
                "/v1/balancers/{}/backends/{}/{}",
                segment(&balancer),
                segment(&addr),
                if drain { "drain" } else { "undrain" }
            );
            Ok((
                client.call(Method::POST, &path, &[], None).await?,
                |value, _| client::render_backend_change(value),
            ))
        }
        Remote::Failback { service } => {
            let path = format!("/v1/services/{}/failback", segment(&service));
            Ok((
                client.call(Method::POST, &path, &[], None).await?,
                |value, _| client::render_failback(value),
            ))
        }
    }
}

/// `undrain` of a region without an override.
fn not_draining(region: &Value, _: SystemTime) -> String {
    format!(
        "{} is not draining; nothing to do\n",
        region["region"]["name"].as_str().unwrap_or("?")
    )
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
            if loaded.config.dns.zones_dir.is_none() {
                let balancers = loaded.config.balancers.len();
                println!(
                    "{}: ok: no DNS ([dns] left out), {balancers} balancer{}, {} warning{}",
                    path.display(),
                    plural(balancers),
                    loaded.warnings.len(),
                    plural(loaded.warnings.len()),
                );
            } else {
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
            }
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

/// Serves until a stop signal, reloading on SIGHUP; serves the admin API when `[admin] listen`
/// is set.
pub(crate) async fn run(loaded: Loaded) -> std::io::Result<()> {
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
    let admin = loaded.config.admin.clone();
    let token = admin
        .token_file
        .as_deref()
        .map(read_token)
        .transpose()
        .map_err(std::io::Error::other)?;
    // Bound before the DNS sockets, so a taken admin port fails the start cleanly.
    let admin_listener = match admin.listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|err| {
            std::io::Error::new(
                err.kind(),
                format!("cannot bind admin.listen {addr}: {err}"),
            )
        })?),
        None => None,
    };
    // The error names the address and protocol that could not be bound.
    let server = Arc::new(RunningServer::start(loaded)?);
    if server.udp_addrs().is_empty() {
        tracing::info!("serving the L7 pools only: no [dns] section");
    } else {
        tracing::info!(udp = ?server.udp_addrs(), tcp = ?server.tcp_addrs(), zones, "serving");
    }
    crate::notify::ready();
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = admin_listener.map(|listener| {
        match listener.local_addr() {
            Ok(addr) => tracing::info!(%addr, token = token.is_some(), "admin API listening"),
            Err(err) => tracing::info!(%err, token = token.is_some(), "admin API listening"),
        }
        let state = ApiState {
            control: Arc::clone(&server) as Arc<dyn api::Control>,
            token,
        };
        tokio::spawn(api::serve(listener, state, async move {
            let _ = admin_stopped.await;
        }))
    });
    loop {
        tokio::select! {
            _ = hangup.recv() => match tokio::task::block_in_place(|| {
                crate::notify::reloading();
                let result = server.reload();
                // Ready again either way: a failed reload changed nothing, and the status
                // line says it failed.
                match &result {
                    Ok(_) => crate::notify::ready(),
                    Err(err) => crate::notify::ready_after_failed_reload(
                        err.lines().first().map_or("", String::as_str),
                    ),
                }
                result
            }) {
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
    crate::notify::stopping();
    let _ = admin_stop.send(());
    if let Some(mut task) = admin_task {
        match tokio::time::timeout(crate::server::ADMIN_SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::error!(%err, "admin API failed"),
            Ok(Err(err)) => tracing::error!(%err, "admin API task failed"),
            Err(_) => {
                tracing::warn!("admin API requests did not finish within the grace period");
                task.abort();
                let _ = task.await;
            }
        }
    }
    match Arc::try_unwrap(server) {
        Ok(server) => server.shutdown().await,
        Err(_) => tracing::warn!(
            "an admin request still holds the server; stopping without the grace period"
        ),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Logs to stderr; `RUST_LOG` filters (default `info`). Colours only on a
/// terminal, so journald and log files get plain text.
pub(crate) fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
