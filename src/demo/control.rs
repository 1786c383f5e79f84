//! The demo's controls: stop and start sample backends and whole regions, from standard input
//! or from a small HTTP API on loopback, and the text the demo prints.
//!
//! | stdin | HTTP | what |
//! |---|---|---|
//! | `status` | `GET /v1/status` | backends, pools (their `/health`), regions as the admin API sees them |
//! | `stop NAME` / `start NAME` | `POST /v1/backends/NAME/stop` / `start` | one backend |
//! | `stop-region R` / `start-region R` | `POST /v1/regions/R/stop` / `start` | every backend of region R: its pool answers 503 |
//! | `help` | | the commands |
//!
//! `GET /healthz` answers `ok`. Errors are `{"code", "message"}` like the admin API's. Like
//! the admin API without a token, the control API refuses what a web page of another site could
//! make a browser send: a request whose `Host` is not a loopback address (403 `bad_host`) and a
//! `POST` whose `Origin` is not the API's own (403 `cross_origin`).
//!
//! Standard input is read only while the demo may read its terminal: when it runs in the
//! background (`meridian demo &`), reading waits until `fg` brings it back, instead of the
//! terminal stopping the whole process. When standard input ends, a terminal's end (Ctrl-D)
//! stops the demo; any other (`</dev/null`, a closed pipe) only ends the commands, once logged.

use std::fmt::Write as _;
use std::io::{BufRead as _, IsTerminal as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use nix::sys::signal::{SigSet, Signal};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::CONTROL_PORT;
use super::backend::SampleBackend;
use super::setup::Topology;
use super::traffic::{self, CLIENTS};
use crate::admin::site;

/// The running demo: its shape, its backends and what the traffic saw.
#[derive(Debug)]
pub struct Demo {
    /// Where everything listens.
    topology: Topology,
    /// Every sample backend, region by region.
    backends: Vec<SampleBackend>,
    /// Visits the background traffic sent to each region (by region index).
    visits: Vec<AtomicU64>,
    /// Visits whose DNS answer named no pool.
    unanswered: AtomicU64,
}

/// A control command that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No backend or region of that name.
    #[error("{0}")]
    Unknown(String),
    /// The command is not one the demo knows, or lacks its argument.
    #[error("{0}")]
    Usage(String),
    /// Starting a backend failed.
    #[error("{0}")]
    Failed(String),
}

impl Demo {
    /// A demo for `topology`, with its backends not yet started.
    pub fn new(topology: Topology) -> Demo {
        let backends = topology
            .regions
            .iter()
            .flat_map(|region| {
                region
                    .backends
                    .iter()
                    .map(|(name, addr)| SampleBackend::new(&region.name, name, *addr))
            })
            .collect();
        let visits = topology.regions.iter().map(|_| AtomicU64::new(0)).collect();
        Demo {
            topology,
            backends,
            visits,
            unanswered: AtomicU64::new(0),
        }
    }

    /// Where everything listens.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Counts one visit of the background traffic, to `region` or (`None`) to no pool.
    pub fn count_visit(&self, region: Option<&str>) {
        match region.and_then(|name| self.topology.regions.iter().position(|r| r.name == name)) {
            Some(index) => self.visits[index].fetch_add(1, Ordering::Relaxed),
            None => self.unanswered.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Starts every backend; the error names the first that cannot listen.
    pub async fn start_all_backends(&self) -> Result<(), String> {
        for backend in &self.backends {
            backend.start().await.map_err(|err| {
                super::setup::port_error(
                    backend.addr(),
                    &format!("sample backend {}", backend.name()),
                    &err,
                )
            })?;
        }
        Ok(())
    }

    /// Stops every backend.
    pub async fn stop_all_backends(&self) {
        for backend in &self.backends {
            backend.stop().await;
        }
    }

    /// The backend named `name`.
    fn backend(&self, name: &str) -> Result<&SampleBackend, CommandError> {
        self.backends
            .iter()
            .find(|backend| backend.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.backends.iter().map(|b| b.name()).collect();
                CommandError::Unknown(format!(
                    "no backend {name:?}; the backends are {}",
                    names.join(", ")
                ))
            })
    }

    /// The backends of region `name`.
    fn region_backends(&self, name: &str) -> Result<Vec<&SampleBackend>, CommandError> {
        if !self
            .topology
            .regions
            .iter()
            .any(|region| region.name == name)
        {
            let names: Vec<&str> = self
                .topology
                .regions
                .iter()
                .map(|r| r.name.as_str())
                .collect();
            return Err(CommandError::Unknown(format!(
                "no region {name:?}; the regions are {}",
                names.join(", ")
            )));
        }
        Ok(self
            .backends
            .iter()
            .filter(|b| b.region() == name)
            .collect())
    }

    /// Stops backend `name`.
    pub async fn stop_backend(&self, name: &str) -> Result<String, CommandError> {
        let backend = self.backend(name)?;
        Ok(if backend.stop().await {
            format!(
                "stopped {name} ({}); its pool's health checks see it down within about 2 s",
                backend.addr()
            )
        } else {
            format!("{name} was already stopped")
        })
    }

    /// Starts backend `name`.
    pub async fn start_backend(&self, name: &str) -> Result<String, CommandError> {
        let backend = self.backend(name)?;
        match backend.start().await {
            Ok(true) => Ok(format!(
                "started {name} ({}); its pool's health checks see it up within about 2 s",
                backend.addr()
            )),
            Ok(false) => Ok(format!("{name} was already running")),
            Err(err) => Err(CommandError::Failed(super::setup::port_error(
                backend.addr(),
                &format!("sample backend {name}"),
                &err,
            ))),
        }
    }

    /// Stops every backend of region `name`: its pool answers 503 and the region goes down.
    pub async fn stop_region(&self, name: &str) -> Result<String, CommandError> {
        let backends = self.region_backends(name)?;
        for backend in &backends {
            backend.stop().await;
        }
        Ok(format!(
            "stopped every backend of {name} ({}); its pool answers 503 within about 2 s, and \
             within about 3 s its clients are answered with their next region",
            names(&backends)
        ))
    }

    /// Starts every backend of region `name`.
    pub async fn start_region(&self, name: &str) -> Result<String, CommandError> {
        let backends = self.region_backends(name)?;
        for backend in &backends {
            backend.start().await.map_err(|err| {
                CommandError::Failed(super::setup::port_error(
                    backend.addr(),
                    &format!("sample backend {}", backend.name()),
                    &err,
                ))
            })?;
        }
        Ok(format!(
            "started every backend of {name} ({}); its clients are answered with it again \
             within about 3 s",
            names(&backends)
        ))
    }

    /// The demo's state: backends, each pool's `/health`, and the regions as the admin API
    /// reports them.
    pub async fn status(&self) -> Value {
        let admin = match traffic::http_get(self.topology.admin, "/v1/status", &[]).await {
            Ok((200, body)) => serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let mut regions = Vec::new();
        for (index, region) in self.topology.regions.iter().enumerate() {
            let pool = match traffic::http_get(region.pool, &region.health_path, &[]).await {
                Ok((status, body)) => {
                    let mut health = serde_json::from_str::<Value>(&body).unwrap_or(Value::Null);
                    if let Some(object) = health.as_object_mut() {
                        object.insert("status".into(), json!(status));
                    }
                    health
                }
                Err(err) => json!({ "error": err.to_string() }),
            };
            let mut backends = Vec::new();
            for backend in self.backends.iter().filter(|b| b.region() == region.name) {
                backends.push(json!({
                    "name": backend.name(),
                    "address": backend.addr().to_string(),
                    "running": backend.is_running().await,
                    "served": backend.served(),
                }));
            }
            let seen = admin["regions"]
                .as_array()
                .and_then(|all| all.iter().find(|r| r["name"] == region.name.as_str()))
                .cloned()
                .unwrap_or(Value::Null);
            regions.push(json!({
                "name": region.name,
                "pool": region.pool.to_string(),
                "pool_health": pool,
                "state": seen["state"],
                "factor": seen["factor"],
                "backends": backends,
                "visits": self.visits[index].load(Ordering::Relaxed),
            }));
        }
        json!({
            "address": self.topology.address.to_string(),
            "dns": self.topology.dns.to_string(),
            "admin": format!("http://{}", self.topology.admin),
            "dashboard": format!("http://{}/dashboard", self.topology.admin),
            "control": format!("http://{}", self.control_addr()),
            "regions": regions,
            "unanswered_visits": self.unanswered.load(Ordering::Relaxed),
        })
    }

    /// The control API's address.
    pub fn control_addr(&self) -> SocketAddr {
        SocketAddr::from((self.topology.address, CONTROL_PORT))
    }

    /// Runs one line typed on standard input; the text to print.
    pub async fn command(&self, line: &str) -> Result<String, CommandError> {
        let mut words = line.split_whitespace();
        let Some(verb) = words.next() else {
            return Ok(String::new());
        };
        let argument = words.next();
        let need = |what: &str| {
            argument.ok_or_else(|| CommandError::Usage(format!("{verb} needs a {what} name")))
        };
        match verb {
            "help" | "?" => Ok(HELP.to_string()),
            "status" => Ok(render_status(&self.status().await)),
            "stop" => self.stop_backend(need("backend")?).await,
            "start" => self.start_backend(need("backend")?).await,
            "stop-region" => self.stop_region(need("region")?).await,
            "start-region" => self.start_region(need("region")?).await,
            _ => Err(CommandError::Usage(format!(
                "unknown command {verb:?}; type `help` for the list"
            ))),
        }
    }
}

/// The names of `backends`, comma-separated.
fn names(backends: &[&SampleBackend]) -> String {
    backends
        .iter()
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `help` prints.
const HELP: &str = "\
commands:
  status                 backends, pools and regions
  stop BACKEND           stop one sample backend (e.g. stop eu-west-2)
  start BACKEND          start it again
  stop-region REGION     stop every backend of a region: its pool answers 503, the region goes down
  start-region REGION    start them again
  help                   this list
Ctrl-C, or Ctrl-D at this terminal, stops the demo.";

/// `status` for people.
pub fn render_status(status: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    for region in status["regions"].as_array().unwrap_or(&empty) {
        let health = &region["pool_health"];
        let pool = match health["status"].as_u64() {
            Some(code) => format!(
                "pool {} {}: {}/{} backends healthy, capacity {}, {} requests",
                region["pool"].as_str().unwrap_or("?"),
                code,
                health["healthy"],
                health["total"],
                health["capacity"],
                health["requests"],
            ),
            None => format!(
                "pool {}: {}",
                region["pool"].as_str().unwrap_or("?"),
                health["error"].as_str().unwrap_or("no answer")
            ),
        };
        let state = region["state"].as_str().unwrap_or("?");
        let factor = region["factor"]
            .as_f64()
            .map_or_else(|| "?".to_string(), |factor| format!("{factor:.2}"));
        let _ = writeln!(
            out,
            "{}: {state} (traffic factor {factor}); {pool}",
            region["name"].as_str().unwrap_or("?")
        );
        for backend in region["backends"].as_array().unwrap_or(&empty) {
            let _ = writeln!(
                out,
                "  {:<16} {:<21} {:<8} served {}",
                backend["name"].as_str().unwrap_or("?"),
                backend["address"].as_str().unwrap_or("?"),
                if backend["running"].as_bool().unwrap_or(false) {
                    "running"
                } else {
                    "STOPPED"
                },
                backend["served"],
            );
        }
    }
    let visits: Vec<String> = status["regions"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|region| {
            format!(
                "{} {}",
                region["name"].as_str().unwrap_or("?"),
                region["visits"]
            )
        })
        .collect();
    let _ = write!(
        out,
        "background visits by region: {}; unanswered {}",
        visits.join(", "),
        status["unanswered_visits"]
    );
    out
}

/// The text printed once the demo is ready: addresses, then what to try.
pub async fn instructions(demo: &Demo, config: &str, load: bool) -> String {
    let topology = demo.topology();
    let dns = topology.dns;
    let admin = format!("http://{}", topology.admin);
    let control = format!("http://{}", demo.control_addr());
    let program = program();
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(out, "Meridian demo: three regions on {}", topology.address);
    let _ = writeln!(out, "  config      {config}");
    let _ = writeln!(out, "  DNS         {dns} (UDP and TCP), zone example.test");
    let _ = writeln!(out, "  admin API   {admin}");
    let _ = writeln!(out, "  dashboard   {admin}/dashboard");
    let _ = writeln!(
        out,
        "  control     {control}  (or type commands here; `help` lists them)"
    );
    for region in &topology.regions {
        let backends: Vec<String> = region
            .backends
            .iter()
            .map(|(name, addr)| format!("{name} {}", addr.port()))
            .collect();
        let _ = writeln!(
            out,
            "  {:<13} pool http://{}/  backends {}",
            region.name,
            region.pool,
            backends.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "  background traffic: {}",
        if load {
            format!(
                "{} visits a second (DNS query with ECS, then GET through the pool) from {} \
                 simulated clients",
                traffic::VISITS_PER_SECOND,
                CLIENTS.len()
            )
        } else {
            "off (--no-load)".to_string()
        }
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Ask as clients in different countries (EDNS Client Subnet); the CNAME names the region:"
    );
    let www = topology
        .services
        .iter()
        .find(|name| name.starts_with("www."))
        .or(topology.services.first())
        .map_or("www.example.test", |name| name.trim_end_matches('.'))
        .to_string();
    for (index, client) in CLIENTS.iter().take(7).enumerate() {
        let now = match traffic::resolve(dns, &www, client.subnet, 24, 0x6400 + index as u16).await
        {
            Ok(Some(target)) => topology
                .region_of_target(&target)
                .map_or(target.clone(), |region| region.name.clone()),
            Ok(None) => "no CNAME".to_string(),
            Err(err) => err.to_string(),
        };
        let command = format!(
            "dig @{} -p {} {www} +subnet={}/24",
            dns.ip(),
            dns.port(),
            client.subnet
        );
        let _ = writeln!(out, "  {command:<66} # {} -> {now}", client.country);
    }
    for name in topology.services.iter().map(|n| n.trim_end_matches('.')) {
        if name != www {
            let _ = writeln!(
                out,
                "  dig @{} -p {} {name} +subnet={}/24",
                dns.ip(),
                dns.port(),
                CLIENTS[1].subnet
            );
        }
    }
    let _ = writeln!(
        out,
        "  {program} explain {www} --ecs {}/24 --admin {admin}",
        CLIENTS[1].subnet
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Fetch through a region's pool (the answer says which backend served):"
    );
    if let Some(region) = topology
        .regions
        .iter()
        .find(|r| r.name == "eu-west")
        .or(topology.regions.first())
    {
        let _ = writeln!(out, "  curl http://{}/", region.pool);
        let _ = writeln!(
            out,
            "  curl http://{}{}      # the pool's capacity, as the monitor reads it",
            region.pool, region.health_path
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Break things (type here, or call the control API):");
    if let Some(region) = topology
        .regions
        .iter()
        .find(|r| r.name == "eu-west")
        .or(topology.regions.first())
    {
        let mut pair = |typed: String, curl: String| {
            let _ = writeln!(out, "  {typed:<26} {curl}");
        };
        if let Some((backend, _)) = region.backends.last() {
            pair(
                format!("stop {backend}"),
                format!("curl -X POST {control}/v1/backends/{backend}/stop"),
            );
            pair(
                format!("start {backend}"),
                format!("curl -X POST {control}/v1/backends/{backend}/start"),
            );
        }
        pair(
            format!("stop-region {}", region.name),
            format!("curl -X POST {control}/v1/regions/{}/stop", region.name),
        );
        pair(
            format!("start-region {}", region.name),
            format!("curl -X POST {control}/v1/regions/{}/start", region.name),
        );
        pair("status".to_string(), format!("curl {control}/v1/status"));
        let _ = writeln!(
            out,
            "  Stopping one backend lowers the pool's capacity, and {name} keeps only that share of \
             its clients;\n  stopping the region makes its pool answer 503, and within seconds its \
             clients' answers\n  move to their next region (dig again, or watch the dashboard).",
            name = region.name
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "Operate it as in production:");
        let _ = writeln!(out, "  {program} status --admin {admin}");
        let _ = writeln!(
            out,
            "  {program} drill start --admin {admin} --region {} --mode fail --duration 2m --reason \"demo drill\"",
            region.name
        );
        let _ = writeln!(out, "  {program} drill report 1 --admin {admin}");
        let _ = writeln!(out, "  {program} drill abort 1 --admin {admin}");
        let _ = writeln!(
            out,
            "  {program} drain {} --reason \"demo\" --for 5m --admin {admin}",
            region.name
        );
        let _ = writeln!(out, "  {program} clear {} --admin {admin}", region.name);
    }
    let _ = write!(
        out,
        "\nCtrl-C, or Ctrl-D at the terminal it reads, stops the demo."
    );
    out
}

/// How to run this binary from the current directory: a relative path when it lies below it.
fn program() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "meridian".to_string();
    };
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(|path| path.to_path_buf()));
    match relative {
        Some(path) if path.components().count() > 1 => path.display().to_string(),
        Some(path) => format!("./{}", path.display()),
        None => exe.display().to_string(),
    }
}

/// What the thread that reads standard input reports.
#[derive(Debug)]
enum Input {
    /// A line, with its line end.
    Line(String),
    /// A read was refused because the demo runs in the background of its terminal; reading
    /// is tried again on SIGCONT (`fg`) and every [`BACKGROUND_RETRY`].
    Background,
    /// Standard input ended.
    Closed,
    /// Reading failed otherwise; nothing more is read.
    Failed(std::io::Error),
}

/// How often standard input is tried again while the demo runs in the background of its
/// terminal, besides on SIGCONT (which `fg` sends): a try costs one failed system call.
const BACKGROUND_RETRY: Duration = Duration::from_secs(2);

/// Reads commands from standard input until it closes or the demo stops; prints each answer.
///
/// When standard input is a terminal, its end (Ctrl-D) stops the demo (with SIGTERM, as
/// `kill` would); otherwise its end is logged once and the demo goes on.
pub async fn read_stdin(demo: Arc<Demo>, mut stopped: watch::Receiver<bool>) {
    let terminal = std::io::stdin().is_terminal();
    let control = format!("http://{}/", demo.control_addr());
    let (send, mut receive) = mpsc::channel::<Input>(16);
    let (wake, woken) = std::sync::mpsc::channel::<()>();
    // Standard input blocks; a plain thread reads it. It ends with the process if the demo
    // stops first.
    if let Err(err) = std::thread::Builder::new()
        .name("demo-stdin".to_string())
        .spawn(move || read_lines(&send, &woken))
    {
        tracing::warn!(%err, "cannot read standard input; use the control API at {control}");
        return;
    }
    let mut continued = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(
        Signal::SIGCONT as i32,
    ))
    .map_err(|err| tracing::debug!(%err, "no SIGCONT handler; background reads retry on a timer"))
    .ok();
    loop {
        let input = tokio::select! {
            _ = stopped.changed() => return,
            _ = next_signal(&mut continued) => {
                let _ = wake.send(());
                continue;
            }
            input = receive.recv() => match input {
                Some(input) => input,
                None => return,
            },
        };
        match input {
            Input::Line(line) => match demo.command(&line).await {
                Ok(text) if text.is_empty() => {}
                Ok(text) => println!("{text}"),
                Err(err) => println!("error: {err}"),
            },
            Input::Background => tracing::info!(
                "the demo runs in the background of its terminal: commands typed there are read \
                 once `fg` brings it back; meanwhile use the control API at {control}"
            ),
            Input::Closed if terminal => {
                tracing::info!("standard input closed (Ctrl-D): stopping the demo");
                if let Err(err) = nix::sys::signal::raise(Signal::SIGTERM) {
                    tracing::error!(%err, "cannot stop the demo; use Ctrl-C");
                }
                return;
            }
            Input::Closed => {
                tracing::info!(
                    "standard input closed; use the control API at {control} or Ctrl-C \
                     (SIGINT or SIGTERM stops the demo)"
                );
                return;
            }
            Input::Failed(err) => {
                tracing::warn!(%err, "cannot read standard input; use the control API at {control}");
                return;
            }
        }
    }
}

/// The next delivery of `signal`; never, without one.
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Reads standard input line by line into `send` until it ends, fails or nobody listens.
///
/// A process that reads its terminal from the background is stopped by the kernel
/// (SIGTTIN), which would freeze the whole demo. This thread blocks SIGTTIN, so such a read
/// fails with `EIO` instead (this also covers a read already waiting when the demo was moved
/// to the background, which the kernel restarts after Ctrl-Z and `bg`): the thread then waits
/// for a `woken` (sent on SIGCONT) or [`BACKGROUND_RETRY`], and reads again.
fn read_lines(send: &mpsc::Sender<Input>, woken: &std::sync::mpsc::Receiver<()>) {
    if let Err(err) = SigSet::from(Signal::SIGTTIN).thread_block() {
        tracing::warn!(%err, "cannot block SIGTTIN: the demo stops if it reads its terminal from the background");
    }
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut line = String::new();
    let mut background = false;
    loop {
        let input = match stdin.read_line(&mut line) {
            Ok(0) => Input::Closed,
            Ok(_) => {
                background = false;
                Input::Line(std::mem::take(&mut line))
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) if err.raw_os_error() == Some(nix::errno::Errno::EIO as i32) => {
                if !background {
                    background = true;
                    if send.blocking_send(Input::Background).is_err() {
                        return;
                    }
                }
                match woken.recv_timeout(BACKGROUND_RETRY) {
                    Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            Err(err) => Input::Failed(err),
        };
        let last = matches!(input, Input::Closed | Input::Failed(_));
        if send.blocking_send(input).is_err() || last {
            return;
        }
    }
}

/// Serves the control API on `listener` until `stopped` changes.
pub async fn serve_api(
    listener: tokio::net::TcpListener,
    demo: Arc<Demo>,
    mut stopped: watch::Receiver<bool>,
) {
    let shutdown = async move {
        let _ = stopped.changed().await;
    };
    if let Err(err) = axum::serve(listener, router(demo))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(%err, "demo control API failed");
    }
}

/// The control API's routes, behind [`same_site`].
pub fn router(demo: Arc<Demo>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/status", get(api_status))
        .route("/v1/backends/{name}/{action}", post(api_backend))
        .route("/v1/regions/{name}/{action}", post(api_region))
        .layer(axum::middleware::from_fn(same_site))
        .with_state(demo)
}

/// Lets a request go on only if [`check_site`] accepts it.
async fn same_site(request: Request, next: Next) -> Response {
    match check_site(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(Refusal { code, message }) => (
            StatusCode::FORBIDDEN,
            axum::Json(json!({ "code": code, "message": message })),
        )
            .into_response(),
    }
}

/// Why [`check_site`] refused a request (answered with 403).
#[derive(Debug)]
struct Refusal {
    /// `bad_host` or `cross_origin`, as the admin API says.
    code: &'static str,
    /// What was refused and why.
    message: String,
}

/// Refuses what a web page of another site could make a browser send, as the admin API does
/// without a token ([`site::check`]): a request that names a host other than a loopback one,
/// and a change (`POST`) whose `Origin` is not this API's own address.
fn check_site(method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
    match site::check(method, headers, true) {
        Ok(()) => Ok(()),
        Err(site::Refusal::BadHost(host)) => Err(Refusal {
            code: "bad_host",
            message: format!(
                "Host {host:?} is not a loopback address: the demo's control API answers only \
                 requests to 127.0.0.0/8, [::1] or localhost"
            ),
        }),
        Err(site::Refusal::CrossOrigin(origin)) => Err(Refusal {
            code: "cross_origin",
            message: format!(
                "a {method} from the web page at {origin:?} is refused: the demo's control API \
                 accepts changes only from clients that send no Origin header (curl) or its own"
            ),
        }),
    }
}

/// `GET /v1/status`.
async fn api_status(State(demo): State<Arc<Demo>>) -> Response {
    (StatusCode::OK, axum::Json(demo.status().await)).into_response()
}

/// `POST /v1/backends/NAME/{stop,start}`.
async fn api_backend(
    State(demo): State<Arc<Demo>>,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    let result = match action.as_str() {
        "stop" => demo.stop_backend(&name).await,
        "start" => demo.start_backend(&name).await,
        _ => Err(CommandError::Usage(format!(
            "unknown action {action:?}: use stop or start"
        ))),
    };
    answer(result)
}

/// `POST /v1/regions/NAME/{stop,start}`.
async fn api_region(
    State(demo): State<Arc<Demo>>,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    let result = match action.as_str() {
        "stop" => demo.stop_region(&name).await,
        "start" => demo.start_region(&name).await,
        _ => Err(CommandError::Usage(format!(
            "unknown action {action:?}: use stop or start"
        ))),
    };
    answer(result)
}

/// `{"ok": true, "message"}`, or `{"code", "message"}` with 404, 400 or 500.
fn answer(result: Result<String, CommandError>) -> Response {
    match result {
        Ok(message) => (
            StatusCode::OK,
            axum::Json(json!({ "ok": true, "message": message })),
        )
            .into_response(),
        Err(err) => {
            let (status, code) = match &err {
                CommandError::Unknown(_) => (StatusCode::NOT_FOUND, "not_found"),
                CommandError::Usage(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                CommandError::Failed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "failed"),
            };
            (
                status,
                axum::Json(json!({ "code": code, "message": err.to_string() })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// A demo over the embedded config at `address`, backends not started.
    fn demo(address: Ipv4Addr) -> (super::super::setup::DemoFiles, Demo) {
        let files = super::super::setup::DemoFiles::write(address).unwrap();
        let loaded = crate::snapshot::load(&files.config).unwrap();
        let topology = Topology::from_config(&loaded.config, address).unwrap();
        (files, Demo::new(topology))
    }

    /// `method path` with `headers` through the control API's router: status and body.
    async fn call(
        demo: &Arc<Demo>,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String) {
        use tower::ServiceExt as _;
        let mut request = axum::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router(Arc::clone(demo))
            .oneshot(request.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_control_api_refuses_other_sites_as_the_admin_api_does() {
        let (_files, demo) = demo(Ipv4Addr::new(127, 0, 0, 1));
        let demo = Arc::new(demo);
        let stop = "/v1/backends/nowhere-1/stop";
        // curl: no Origin; a loopback Host. The unknown backend shows the request got through.
        let (status, body) = call(&demo, Method::POST, stop, &[("host", "127.0.0.1:18054")]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _) = call(&demo, Method::POST, stop, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The API's own origin may write.
        let (status, body) = call(
            &demo,
            Method::POST,
            stop,
            &[
                ("host", "localhost:18054"),
                ("origin", "http://localhost:18054"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        // Another site's page may not.
        for origin in ["http://evil.example", "null", "http://127.0.0.1:8080"] {
            let (status, body) = call(
                &demo,
                Method::POST,
                stop,
                &[("host", "127.0.0.1:18054"), ("origin", origin)],
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{origin}: {body}");
            assert!(body.contains("\"cross_origin\""), "{body}");
        }
        // Reading is allowed from anywhere that names a loopback host.
        let (status, body) = call(
            &demo,
            Method::GET,
            "/healthz",
            &[("host", "[::1]:18054"), ("origin", "http://evil.example")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // A name that only resolves to loopback (DNS rebinding) is refused, read or write.
        for method in [Method::GET, Method::POST] {
            let path = if method == Method::GET {
                "/healthz"
            } else {
                stop
            };
            let (status, body) = call(
                &demo,
                method.clone(),
                path,
                &[("host", "rebind.example:18054")],
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method}: {body}");
            assert!(body.contains("\"bad_host\""), "{body}");
        }
    }

    #[tokio::test]
    async fn the_printed_operator_commands_end_the_drill_before_the_drain() {
        let (_files, demo) = demo(Ipv4Addr::new(127, 0, 0, 1));
        let text = instructions(&demo, "CONFIG", false).await;
        let operate: Vec<&str> = text
            .lines()
            .skip_while(|line| !line.starts_with("Operate it as in production:"))
            .skip(1)
            .take_while(|line| !line.trim().is_empty())
            .collect();
        let position = |what: &str| {
            operate
                .iter()
                .position(|line| line.contains(what))
                .unwrap_or_else(|| panic!("no {what:?} in {operate:#?}"))
        };
        assert!(position("drill start") < position("drill report 1"));
        assert!(position("drill report 1") < position("drill abort 1"));
        assert!(position("drill abort 1") < position(" drain eu-west"));
        assert!(position(" drain eu-west") < position(" clear eu-west"));
    }

    #[tokio::test]
    async fn commands_name_what_is_unknown() {
        let (_files, demo) = demo(Ipv4Addr::new(127, 0, 0, 1));
        let err = demo.command("stop nowhere-1").await.unwrap_err();
        assert!(err.to_string().contains("us-east-1"), "{err}");
        let err = demo.command("stop-region mars").await.unwrap_err();
        assert!(err.to_string().contains("eu-west"), "{err}");
        let err = demo.command("stop").await.unwrap_err();
        assert!(err.to_string().contains("needs a backend name"), "{err}");
        let err = demo.command("jump").await.unwrap_err();
        assert!(err.to_string().contains("help"), "{err}");
        assert!(demo.command("help").await.unwrap().contains("stop-region"));
        assert_eq!(demo.command("  ").await.unwrap(), "");
    }
}
