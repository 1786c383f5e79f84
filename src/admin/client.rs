//! The admin API's client, and how the `meridian` operator commands print its answers for
//! people.
//!
//! The commands are thin: [`Target::resolve`] finds the server (from `[admin]` in the config,
//! or `--admin URL`), [`Client::call`] sends one request, and the `render_*` functions turn the
//! server's JSON into lines. Rendering is pure (the time is an argument), so it is tested
//! without a server.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::Method;
use serde_json::Value;

use super::api::{ACTOR_HEADER, TokenError, parse_time, read_token};
use crate::config::Config;

/// How long a request may take in all (a reload of large geo databases takes a while).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long connecting may take: the API is normally on loopback.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a command could not get its answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The config could not be read, or does not enable the API.
    #[error("{0}")]
    Setup(String),
    /// The token file is unusable.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Nothing answered at the address.
    #[error(
        "cannot reach the admin API at {url}: {detail} (is `meridian serve` running, with \
         [admin] listen set to this address?)"
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The server refused the request; `message` is its explanation.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's error code.
        code: String,
        /// The server's message.
        message: String,
        /// The whole error body (a failed reload lists its errors under `errors`).
        body: Value,
    },
    /// The server's answer was not what the API sends.
    #[error("the admin API at {url} sent an answer that is not JSON: {detail}")]
    BadResponse {
        /// The URL asked.
        url: String,
        /// What was wrong.
        detail: String,
    },
}

/// Where the API is and the token to show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Base URL, without a trailing slash (`http://127.0.0.1:8053`).
    pub url: String,
    /// The bearer token, if one is needed.
    pub token: Option<String>,
}

impl Target {
    /// Finds the API: `admin` (a URL) when given, else `[admin] listen` of the config at
    /// `config` (default `meridian.toml`). The token comes from `token_file` when given, else
    /// from the config's `[admin] token_file` (when a config is at hand).
    pub fn resolve(
        admin: Option<&str>,
        config: Option<&Path>,
        token_file: Option<&Path>,
    ) -> Result<Target, ClientError> {
        let loaded = match (admin, config) {
            (Some(_), None) => None,
            (_, config) => {
                let path = config.unwrap_or(Path::new("meridian.toml"));
                Some(Config::load(path).map_err(|err| ClientError::Setup(format!("{err}")))?)
            }
        };
        let url = match admin {
            Some(url) => checked_url(url)?,
            None => {
                let config = loaded.as_ref().expect("loaded without --admin");
                let listen = config.admin.listen.ok_or_else(|| {
                    ClientError::Setup(format!(
                        "{}: [admin] listen is not set, so the admin API is off; set it and \
                         restart the server, or pass --admin URL",
                        config.path.display()
                    ))
                })?;
                format!("http://{}", connect_address(listen))
            }
        };
        let token_path: Option<PathBuf> = match token_file {
            Some(path) => Some(path.to_path_buf()),
            None => loaded.and_then(|config| config.admin.token_file),
        };
        let token = token_path.as_deref().map(read_token).transpose()?;
        Ok(Target { url, token })
    }
}

/// Checks an `--admin` URL: plain `http://` (the API does not speak TLS itself).
fn checked_url(url: &str) -> Result<String, ClientError> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|err| ClientError::Setup(format!("--admin {url:?} is not a URL: {err}")))?;
    if parsed.scheme() != "http" || parsed.host().is_none() {
        return Err(ClientError::Setup(format!(
            "--admin {url:?}: write http://HOST:PORT (the admin API speaks plain HTTP)"
        )));
    }
    Ok(trimmed.to_string())
}

/// The address to connect to for a listen address: a wildcard listen is reached on loopback.
fn connect_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// A client of one server's admin API.
#[derive(Debug, Clone)]
pub struct Client {
    /// Where and with which token.
    target: Target,
    /// Who we say we are (`X-Meridian-Actor`).
    actor: String,
    /// The HTTP client.
    http: reqwest::Client,
}

impl Client {
    /// A client for `target`, acting as `actor`.
    pub fn new(target: Target, actor: &str) -> Result<Client, ClientError> {
        // Plain HTTP only, but reqwest is built without a default TLS provider and wants one.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| ClientError::Setup(format!("cannot set up the HTTP client: {err}")))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("meridian-cli/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .no_hickory_dns()
            .http1_only()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|err| ClientError::Setup(format!("cannot set up the HTTP client: {err}")))?;
        Ok(Client {
            target,
            actor: actor.to_string(),
            http,
        })
    }

    /// Sends `method path?query` with an optional JSON `body`; the server's JSON answer, or its
    /// error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.target.url))
            .map_err(|err| ClientError::Setup(format!("bad URL: {err}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let shown = url.to_string();
        let mut request = self
            .http
            .request(method, url)
            .header(ACTOR_HEADER, &self.actor);
        if let Some(token) = &self.target.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|err| {
            if err.is_connect() || err.is_timeout() || err.is_request() {
                ClientError::Unreachable {
                    url: self.target.url.clone(),
                    detail: error_chain(&err),
                }
            } else {
                ClientError::BadResponse {
                    url: shown.clone(),
                    detail: error_chain(&err),
                }
            }
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| ClientError::BadResponse {
                url: shown.clone(),
                detail: error_chain(&err),
            })?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|err| ClientError::BadResponse {
                url: shown.clone(),
                detail: format!(
                    "HTTP {status}: {err}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ),
            })?;
        if status.is_success() {
            return Ok(value);
        }
        Err(ClientError::Api {
            status: status.as_u16(),
            code: text(&value["code"]).to_string(),
            message: value["message"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}"), str::to_string),
            body: value,
        })
    }
}

/// An error with its causes, `a: b: c`.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A JSON string, or `""`.
fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// A JSON time as `RFC3339 (3m ago)`, or `-`.
pub fn when(value: &Value, now: SystemTime) -> String {
    match value.as_str() {
        Some(stamp) => match parse_time(stamp) {
            Some(time) => format!("{} ({})", trim_millis(stamp), relative(time, now)),
            None => stamp.to_string(),
        },
        None => "-".to_string(),
    }
}

/// An RFC 3339 stamp without its milliseconds, for tables.
fn trim_millis(stamp: &str) -> String {
    match stamp.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => stamp.to_string(),
    }
}

/// `time` relative to `now`: `in 5m`, `3m ago`, `now`.
pub fn relative(time: SystemTime, now: SystemTime) -> String {
    match time.duration_since(now) {
        Ok(ahead) if ahead >= Duration::from_secs(1) => format!("in {}", span(ahead)),
        Ok(_) => "now".to_string(),
        Err(behind) if behind.duration() >= Duration::from_secs(1) => {
            format!("{} ago", span(behind.duration()))
        }
        Err(_) => "now".to_string(),
    }
}

/// A span in at most two units: `45s`, `3m20s`, `1h59m`, `2d3h`.
pub fn span(duration: Duration) -> String {
    let secs = duration.as_secs();
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let Some(first) = units.iter().position(|&(size, _)| secs >= size) else {
        return "0s".to_string();
    };
    let (size, unit) = units[first];
    let mut text = format!("{}{unit}", secs / size);
    if let Some(&(next_size, next_unit)) = units.get(first + 1) {
        let rest = secs % size / next_size;
        if rest > 0 {
            let _ = write!(text, "{rest}{next_unit}");
        }
    }
    text
}

/// Seconds as `0.412s` (figures of a drill).
fn seconds(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "-".to_string(), |secs| format!("{secs:.3}s"))
}

/// Lays out rows in columns separated by two spaces; the first row is the header.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[column]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// An override as one phrase: `drain by alice since ... until ...: CHG-1`.
fn override_text(active: &Value, now: SystemTime) -> String {
    if active.is_null() {
        return "-".to_string();
    }
    let mut out = format!("{} by {}", text(&active["action"]), text(&active["who"]));
    if let Some(drill) = active["drill"].as_u64() {
        let _ = write!(out, " (drill {drill})");
    }
    if let Some(until) = active["until"].as_str().and_then(parse_time) {
        let _ = write!(out, ", ends {}", relative(until, now));
    }
    if text(&active["action"]) == "drain" {
        let _ = write!(out, ", ramp {}", text(&active["drain_period"]));
    }
    let _ = write!(out, ": {}", text(&active["reason"]));
    out
}

/// "yes" or "no".
fn yes_no(value: &Value) -> &'static str {
    if value.as_bool().unwrap_or(false) {
        "yes"
    } else {
        "no"
    }
}

/// `meridian status`: regions, monitors, services and drills.
pub fn render_status(status: &Value, now: SystemTime) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let regions = status["regions"].as_array().unwrap_or(&empty);
    let _ = writeln!(
        out,
        "revision {}, {}",
        status["revision"],
        if status["ready"].as_bool().unwrap_or(false) {
            "ready (every monitor probed)"
        } else {
            "not ready (first probe round in progress)"
        }
    );
    out.push('\n');
    let mut rows = vec![
        [
            "REGION",
            "STATE",
            "OBSERVED",
            "FACTOR",
            "ANSWERS",
            "LAST ANSWER",
            "OVERRIDE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for region in regions {
        let mut state = text(&region["state"]).to_string();
        if let Some(drill) = region["drill"].as_u64() {
            let _ = write!(state, " (drill {drill})");
        }
        rows.push(vec![
            text(&region["name"]).to_string(),
            state,
            if region["observed_up"].as_bool().unwrap_or(false) {
                "up".to_string()
            } else {
                "down".to_string()
            },
            region["factor"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |factor| format!("{factor:.2}")),
            region["answers"].to_string(),
            region["last_answer"]
                .as_str()
                .and_then(parse_time)
                .map_or_else(|| "-".to_string(), |time| relative(time, now)),
            override_text(&region["override"], now),
        ]);
    }
    out.push_str(&table(&rows));
    for region in regions {
        if let Some(drained) = region["drained_at"].as_str().and_then(parse_time) {
            let _ = writeln!(
                out,
                "{}: drained; the last cached answer pointing at it expires {}",
                text(&region["name"]),
                relative(drained, now)
            );
        }
    }

    let mut monitors = vec![
        [
            "REGION",
            "MONITOR",
            "STATE",
            "SINCE",
            "LAST RESULT",
            "PROBED",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for region in regions {
        for target in region["monitors"].as_array().unwrap_or(&empty) {
            monitors.push(vec![
                text(&region["name"]).to_string(),
                text(&target["url"]).to_string(),
                if target["up"].as_bool().unwrap_or(false) {
                    "up".to_string()
                } else {
                    "down".to_string()
                },
                target["since"]
                    .as_str()
                    .and_then(parse_time)
                    .map_or_else(|| "start".to_string(), |time| relative(time, now)),
                target["last"].as_str().unwrap_or("-").to_string(),
                target["last_at"]
                    .as_str()
                    .and_then(parse_time)
                    .map_or_else(|| "never".to_string(), |time| relative(time, now)),
            ]);
        }
    }
    if monitors.len() > 1 {
        out.push('\n');
        out.push_str(&table(&monitors));
    }

    let transitions: Vec<(String, &Value)> = regions
        .iter()
        .flat_map(|region| {
            region["history"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(|transition| (text(&region["name"]).to_string(), transition))
        })
        .collect();
    if !transitions.is_empty() {
        out.push_str("\nrecent region transitions\n");
        for (name, transition) in transitions.iter().rev().take(10) {
            let _ = writeln!(
                out,
                "  {}  {name} {}: {}",
                when(&transition["at"], now),
                if transition["up"].as_bool().unwrap_or(false) {
                    "up"
                } else {
                    "down"
                },
                text(&transition["reason"])
            );
        }
    }

    let services = status["services"].as_array().unwrap_or(&empty);
    if !services.is_empty() {
        out.push('\n');
        let mut rows = vec![
            ["SERVICE", "POLICY", "MAP", "TTL", "REGIONS", "HELD"]
                .map(String::from)
                .to_vec(),
        ];
        for service in services {
            let names: Vec<&str> = service["regions"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(text)
                .collect();
            rows.push(vec![
                text(&service["name"]).to_string(),
                text(&service["policy"]).to_string(),
                service["map"].as_str().unwrap_or("-").to_string(),
                format!("{}/{}", service["ttl"], service["ttl_degraded"]),
                names.join(","),
                if service["held"].as_bool().unwrap_or(false) {
                    "held on standby".to_string()
                } else {
                    "no".to_string()
                },
            ]);
        }
        out.push_str(&table(&rows));
    }
    let running = status["drills_running"].as_array().unwrap_or(&empty);
    if !running.is_empty() {
        let ids: Vec<String> = running.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "\ndrills running: {} (see `meridian drill report ID`)",
            ids.join(", ")
        );
    }
    out
}

/// The answer to an override change: the region's new state and the revision.
pub fn render_change(change: &Value, now: SystemTime) -> String {
    let region = &change["region"];
    let mut out = format!(
        "{}: {} (observed {}, factor {})",
        text(&region["name"]),
        text(&region["state"]),
        if region["observed_up"].as_bool().unwrap_or(false) {
            "up"
        } else {
            "down"
        },
        region["factor"]
            .as_f64()
            .map_or_else(|| "-".to_string(), |factor| format!("{factor:.2}")),
    );
    if !region["override"].is_null() {
        let _ = write!(out, "; {}", override_text(&region["override"], now));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "revision {}", change["revision"]);
    out
}

/// `meridian drill list`.
pub fn render_drills(list: &Value, now: SystemTime) -> String {
    let empty = Vec::new();
    let drills = list["drills"].as_array().unwrap_or(&empty);
    if drills.is_empty() {
        return "no drills\n".to_string();
    }
    let mut rows = vec![
        [
            "ID", "REGION", "MODE", "STATE", "STARTED", "ENDS", "BY", "REASON",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for drill in drills {
        rows.push(vec![
            drill["id"].to_string(),
            text(&drill["region"]).to_string(),
            text(&drill["mode"]).to_string(),
            text(&drill["state"]).to_string(),
            drill["started"]
                .as_str()
                .and_then(parse_time)
                .map_or_else(|| "-".to_string(), |time| relative(time, now)),
            drill["ends"]
                .as_str()
                .and_then(parse_time)
                .map_or_else(|| "-".to_string(), |time| relative(time, now)),
            text(&drill["who"]).to_string(),
            text(&drill["reason"]).to_string(),
        ]);
    }
    table(&rows)
}

/// `meridian drill report`: the timeline, the measured figures and the answer shares.
pub fn render_drill(drill: &Value, now: SystemTime) -> String {
    let mut out = String::new();
    let region = text(&drill["region"]);
    let _ = writeln!(
        out,
        "drill {}: {} of {region}, {}",
        drill["id"],
        text(&drill["mode"]),
        text(&drill["state"])
    );
    let _ = writeln!(
        out,
        "reason: {} (started by {}{})",
        text(&drill["reason"]),
        text(&drill["who"]),
        if drill["forced"].as_bool().unwrap_or(false) {
            ", capacity check overridden"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "started: {}", when(&drill["started"], now));
    let _ = writeln!(
        out,
        "{}: {}",
        if text(&drill["state"]) == "running" {
            "ends"
        } else {
            "was to end"
        },
        when(&drill["ends"], now)
    );
    let _ = writeln!(
        out,
        "longest TTL of {region}'s answers: {}s",
        drill["max_ttl"]
    );

    out.push_str("\ntimeline\n");
    let started = drill["started"].as_str().and_then(parse_time);
    let empty = Vec::new();
    let mut rows = Vec::new();
    for event in drill["timeline"].as_array().unwrap_or(&empty) {
        let at = event["at"].as_str().and_then(parse_time);
        let offset = match (started, at) {
            (Some(started), Some(at)) => match at.duration_since(started) {
                Ok(after) => format!("+{:.3}s", after.as_secs_f64()),
                Err(before) => format!("-{:.3}s", before.duration().as_secs_f64()),
            },
            _ => "-".to_string(),
        };
        rows.push(vec![
            format!("  {offset}"),
            event["at"]
                .as_str()
                .map_or_else(String::new, str::to_string),
            text(&event["kind"]).to_string(),
            text(&event["detail"]).to_string(),
        ]);
    }
    out.push_str(&table(&rows));

    let measured = &drill["measured"];
    out.push_str("\nmeasured\n");
    let _ = writeln!(
        out,
        "  start to first answer without {region}:  {}",
        seconds(&measured["first_answer_without_region_s"])
    );
    let _ = writeln!(
        out,
        "  start to TTL horizon (every cache moved): {}{}",
        seconds(&measured["ttl_horizon_s"]),
        drill["ttl_horizon"]
            .as_str()
            .map_or_else(String::new, |at| format!(" at {at}"))
    );
    let _ = writeln!(
        out,
        "  rollback to first answer with {region}:   {}",
        seconds(&measured["first_answer_with_region_s"])
    );

    let before = drill["share_before"].as_object();
    let during = drill["share_during"].as_object();
    let mut names: Vec<&String> = before
        .into_iter()
        .chain(during)
        .flat_map(|shares| shares.keys())
        .collect();
    names.sort();
    names.dedup();
    if !names.is_empty() {
        out.push_str("\nanswer shares\n");
        /// Shares of no answers at all are all zero: shown as unknown, not as 0%.
        fn counted(
            shares: Option<&serde_json::Map<String, Value>>,
        ) -> Option<&serde_json::Map<String, Value>> {
            shares.filter(|shares| shares.values().filter_map(Value::as_f64).sum::<f64>() > 0.0)
        }
        let (before, during) = (counted(before), counted(during));
        let share = |shares: Option<&serde_json::Map<String, Value>>, name: &str| {
            shares
                .and_then(|shares| shares.get(name))
                .and_then(Value::as_f64)
                .map_or_else(|| "-".to_string(), |share| format!("{:.1}%", share * 100.0))
        };
        let mut rows = vec![["  REGION", "BEFORE", "DURING"].map(String::from).to_vec()];
        for name in names {
            rows.push(vec![
                format!("  {name}"),
                share(before, name),
                share(during, name),
            ]);
        }
        out.push_str(&table(&rows));
    }
    out
}

/// `meridian drill start`: what was started and how to follow it.
pub fn render_drill_started(drill: &Value, now: SystemTime) -> String {
    format!(
        "drill {id} started: {} of {} until {}\nfollow it with `meridian drill report {id}`; stop it \
         early with `meridian drill abort {id}`\n",
        text(&drill["mode"]),
        text(&drill["region"]),
        when(&drill["ends"], now),
        id = drill["id"],
    )
}

/// `meridian explain`: why a client gets its answer.
pub fn render_explain(explanation: &Value, now: SystemTime) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let _ = writeln!(
        out,
        "{} {}",
        text(&explanation["name"]),
        text(&explanation["qtype"])
    );
    let client = &explanation["client"];
    let mut steering = format!("resolver {}", client["resolver"].as_str().unwrap_or("-"));
    if let Some(ecs) = client["ecs"].as_str() {
        let _ = write!(steering, ", client subnet {ecs}");
    }
    let _ = write!(steering, "; steered by the {}", text(&client["used"]));
    if let Some(why) = client["ecs_ignored"].as_str() {
        let _ = write!(steering, " (subnet ignored: {why})");
    }
    let _ = writeln!(out, "client: {steering}");
    if explanation["service"].is_null() {
        let _ = writeln!(out, "{}", text(&explanation["policy"]));
        return out;
    }
    let _ = writeln!(out, "service: {}", text(&explanation["service"]));
    for source in explanation["sources"].as_array().unwrap_or(&empty) {
        let _ = writeln!(out, "source: {}", text(source));
    }
    if let Some(map) = explanation["map"].as_object() {
        let regions: Vec<&str> = map["regions"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(text)
            .collect();
        let _ = writeln!(
            out,
            "map {}: [{}], scope /{}",
            text(&map["name"]),
            regions.join(", "),
            map["scope"]
        );
    }
    let _ = writeln!(out, "policy: {}", text(&explanation["policy"]));
    let mut rows = vec![
        [
            "  REGION", "RECORDS", "UP", "FACTOR", "DEGRADED", "OBSERVED", "TIER", "WEIGHT",
            "OVERRIDE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for candidate in explanation["candidates"].as_array().unwrap_or(&empty) {
        rows.push(vec![
            format!("  {}", text(&candidate["region"])),
            yes_no(&candidate["has_records"]).to_string(),
            yes_no(&candidate["up"]).to_string(),
            candidate["factor"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |factor| format!("{factor:.2}")),
            yes_no(&candidate["degraded"]).to_string(),
            match candidate["observed_up"].as_bool() {
                Some(true) => "up".to_string(),
                Some(false) => "down".to_string(),
                None => "-".to_string(),
            },
            candidate["tier"]
                .as_u64()
                .map_or_else(|| "-".to_string(), |tier| tier.to_string()),
            candidate["weight"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |weight| weight.to_string()),
            override_text(&candidate["override"], now),
        ]);
    }
    out.push_str("candidates\n");
    out.push_str(&table(&rows));
    let decision = &explanation["decision"];
    if decision.is_object() {
        let regions: Vec<&str> = decision["regions"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(text)
            .collect();
        let _ = writeln!(
            out,
            "decision: {} [{}], reason {}; client hash decided: {}; degraded TTL: {}; held on \
             standby: {}",
            text(&decision["outcome"]),
            regions.join(", "),
            text(&decision["reason"]),
            yes_no(&decision["hashed"]),
            yes_no(&decision["degraded"]),
            yes_no(&decision["held"]),
        );
    }
    let answers = explanation["answer"].as_array().unwrap_or(&empty);
    let _ = writeln!(out, "answer (ECS scope /{}):", explanation["scope"]);
    if answers.is_empty() {
        out.push_str("  (no records)\n");
    }
    for line in answers {
        let _ = writeln!(out, "  {}", text(line));
    }
    out
}

/// `meridian reload`.
pub fn render_reload(summary: &Value) -> String {
    let mut out = format!("reloaded: {} zones\n", summary["zones"]);
    for warning in summary["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "{}", text(warning));
    }
    out
}

/// `meridian backend list`: each balancer, then one line per backend of each set.
pub fn render_balancers(list: &Value) -> String {
    let balancers = list["balancers"].as_array().map_or(&[][..], Vec::as_slice);
    if balancers.is_empty() {
        return "no balancers configured\n".to_string();
    }
    let mut out = String::new();
    for balancer in balancers {
        let _ = writeln!(
            out,
            "balancer {} on {}: {}, {}/{} backends eligible, {} in flight, {} requests, {:.1} ms",
            text(&balancer["name"]),
            text(&balancer["listen"]),
            if balancer["ok"].as_bool().unwrap_or(false) {
                "ok"
            } else {
                "BELOW min_healthy"
            },
            balancer["healthy"],
            balancer["total"],
            balancer["in_flight"],
            balancer["requests"],
            balancer["latency_ms"].as_f64().unwrap_or(0.0),
        );
        for set in balancer["sets"].as_array().into_iter().flatten() {
            for backend in set["backends"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "  {:<10} {:<24} {:<9} weight {:<6} {} in flight, {} requests, {} failed",
                    text(&set["name"]),
                    text(&backend["addr"]),
                    text(&backend["state"]),
                    backend["weight"],
                    backend["in_flight"],
                    backend["requests"],
                    backend["failures"],
                );
            }
        }
    }
    out
}

/// `meridian backend drain` and `undrain`.
pub fn render_backend_change(result: &Value) -> String {
    let backend = &result["backend"];
    let state = text(&backend["state"]);
    let draining = state == "draining";
    let what = match (result["changed"].as_bool().unwrap_or(false), draining) {
        (true, true) => "drained: no new requests; those in flight finish within drain_timeout",
        (true, false) => "undrained: takes new requests again (under slow start if set)",
        (false, true) => "was already draining; nothing to do",
        (false, false) => "was not draining; nothing to do",
    };
    format!(
        "{} {}: {what} (now {state}, {} in flight)\n",
        text(&result["balancer"]),
        text(&backend["addr"]),
        backend["in_flight"],
    )
}

/// `meridian failback`.
pub fn render_failback(result: &Value) -> String {
    if result["was_held"].as_bool().unwrap_or(false) {
        format!(
            "{}: failback cleared; its primaries answer again\n",
            text(&result["service"])
        )
    } else {
        format!(
            "{}: was not held on standby; nothing to do\n",
            text(&result["service"])
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::admin::api::format_time;

    /// A fixed "now".
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    /// `now` plus `secs` (negative: before), as the API writes it.
    fn at(secs: i64) -> String {
        let time = if secs >= 0 {
            now() + Duration::from_secs(secs as u64)
        } else {
            now() - Duration::from_secs((-secs) as u64)
        };
        format_time(time)
    }

    #[test]
    fn spans_and_relative_times() {
        assert_eq!(span(Duration::from_secs(45)), "45s");
        assert_eq!(span(Duration::from_secs(200)), "3m20s");
        assert_eq!(span(Duration::from_secs(7140)), "1h59m");
        assert_eq!(span(Duration::from_secs(3600)), "1h");
        assert_eq!(span(Duration::from_secs(183_600)), "2d3h");
        assert_eq!(relative(now() + Duration::from_secs(300), now()), "in 5m");
        assert_eq!(relative(now() - Duration::from_secs(180), now()), "3m ago");
        assert_eq!(relative(now(), now()), "now");
    }

    #[test]
    fn status_shows_regions_overrides_monitors_and_services() {
        let status = json!({
            "revision": 4, "ready": true, "drills_running": [],
            "regions": [{
                "name": "eu-west", "state": "draining", "observed_up": true, "factor": 0.5,
                "answers": 12, "last_answer": at(-2), "drained_at": null, "drill": null,
                "override": {"action": "drain", "who": "alice", "reason": "CHG-1",
                             "until": at(7140), "drain_period": "30s", "drill": null},
                "monitors": [{"url": "http://192.0.2.1/health", "up": true, "since": null,
                              "last": "200 in 3ms", "last_at": at(-1)}],
                "history": [],
            }],
            "services": [{"name": "www.example.com.", "policy": "geo", "map": "world",
                          "ttl": 30, "ttl_degraded": 5, "regions": ["eu-west"], "held": false}],
        });
        let text = render_status(&status, now());
        assert!(text.contains("revision 4, ready"), "{text}");
        assert!(
            text.contains("drain by alice, ends in 1h59m, ramp 30s: CHG-1"),
            "{text}"
        );
        assert!(text.contains("0.50"), "{text}");
        assert!(text.contains("http://192.0.2.1/health"), "{text}");
        assert!(text.contains("www.example.com.  geo"), "{text}");
    }

    #[test]
    fn drill_report_is_a_timeline_with_figures() {
        let drill = json!({
            "id": 3, "region": "eu-west", "mode": "fail", "state": "finished",
            "reason": "quarterly", "who": "ops", "forced": false, "max_ttl": 30,
            "started": at(-100), "ends": at(-10), "ttl_horizon": at(-70),
            "timeline": [
                {"at": at(-100), "kind": "started", "detail": "fail drill"},
                {"at": at(-100), "kind": "region_out", "detail": "out"},
                {"at": at(-99), "kind": "first_answer_without_region", "detail": "moved"},
            ],
            "measured": {"first_answer_without_region_s": 0.4, "ttl_horizon_s": 30.0,
                         "first_answer_with_region_s": null},
            "share_before": {"eu-west": 0.5, "us-east": 0.5},
            "share_during": {"eu-west": 0.0, "us-east": 1.0},
        });
        let text = render_drill(&drill, now());
        assert!(
            text.contains("drill 3: fail of eu-west, finished"),
            "{text}"
        );
        assert!(text.contains("+1.000s"), "{text}");
        assert!(text.contains("first_answer_without_region"), "{text}");
        assert!(text.contains("0.400s"), "{text}");
        assert!(text.contains("50.0%"), "{text}");
        assert!(text.contains("100.0%"), "{text}");
    }

    #[test]
    fn backends_print_one_line_each_under_their_balancer() {
        let list = json!({"balancers": [{
            "name": "web", "listen": "127.0.0.1:8081", "ok": false, "healthy": 1, "total": 2,
            "in_flight": 3, "requests": 40, "latency_ms": 1.25,
            "sets": [{"name": "default", "backends": [
                {"addr": "10.1.0.11:8080", "weight": 2, "state": "up", "in_flight": 3,
                 "requests": 30, "failures": 0},
                {"addr": "10.1.0.12:8080", "weight": 1, "state": "draining", "in_flight": 0,
                 "requests": 10, "failures": 1},
            ]}],
        }]});
        let text = render_balancers(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("balancer web on 127.0.0.1:8081: BELOW min_healthy, 1/2"),
            "{text}"
        );
        assert!(lines[2].contains("10.1.0.12:8080") && lines[2].contains("draining"));
        assert!(lines[2].ends_with("10 requests, 1 failed"), "{text}");
        assert_eq!(
            render_balancers(&json!({"balancers": []})),
            "no balancers configured\n"
        );

        let change = json!({"balancer": "web", "changed": false,
            "backend": {"addr": "10.1.0.12:8080", "state": "draining", "in_flight": 0}});
        assert_eq!(
            render_backend_change(&change),
            "web 10.1.0.12:8080: was already draining; nothing to do (now draining, 0 in flight)\n"
        );
    }

    #[test]
    fn admin_urls_are_plain_http() {
        assert_eq!(
            checked_url("http://127.0.0.1:8053/").unwrap(),
            "http://127.0.0.1:8053"
        );
        assert!(checked_url("https://127.0.0.1:8053").is_err());
        assert!(checked_url("127.0.0.1:8053").is_err());
        assert_eq!(
            connect_address("0.0.0.0:8053".parse().unwrap()),
            "127.0.0.1:8053".parse().unwrap()
        );
        assert_eq!(
            connect_address("[::]:8053".parse().unwrap()),
            "[::1]:8053".parse().unwrap()
        );
    }
}
