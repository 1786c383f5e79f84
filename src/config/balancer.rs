//! `[balancers.NAME]`: the embedded L7 balancer pools, their backend sets, routes, timeouts,
//! limits, active health checks and passive outlier detection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use toml::Spanned;

use super::health::{MonitorConfig, ProbeUrl, StatusRange};
use super::raw::{RawBackend, RawBackendHealth, RawBalancer, RawOutlier, RawRoute};
use super::{ConfigError, Source, parse_duration};
use crate::balancer::{Algorithm, BackendSpec, MAX_BACKENDS, Selector};

/// The name of the backend set written as the balancer's own `backends`.
pub const DEFAULT_SET: &str = "default";
/// Default algorithm: plain rotation, predictable and what most operators expect first.
const DEFAULT_ALGORITHM: Algorithm = Algorithm::RoundRobin;
/// Default path of the pool's own health endpoint.
const DEFAULT_HEALTH_PATH: &str = "/health";
/// Default cookie of the `cookie` algorithm.
const DEFAULT_COOKIE_NAME: &str = "meridian_backend";
/// Default TCP connect timeout to a backend: a healthy backend on a LAN connects in well under
/// a millisecond, so a second means it is gone, and a retry elsewhere is still quick.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default wait for a backend's response headers after the request was sent.
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default idle time: of a kept-alive connection, and between body chunks.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time in-flight requests get to finish on shutdown.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default limit on client connections served at once.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default limit on a request's header block.
const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Smallest header limit: hyper's HTTP/1 read buffer cannot be smaller than 8 KiB.
const MIN_HEADER_BYTES: u64 = 8 * 1024;
/// Largest header limit: beyond this a header block is an attack, not a request.
const MAX_HEADER_BYTES: u64 = 1024 * 1024;
/// Largest weight: far above any sensible ratio, and small enough that weight sums of a full
/// pool stay far from overflowing the algorithms' `u64`/`i64` arithmetic.
const MAX_WEIGHT: u64 = 1_000_000;
/// Largest timeout of any kind.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Default active check interval.
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Default active check timeout (capped at the interval).
const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// Shortest active check interval: faster probing buys little and loads the backends.
const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Longest active check interval.
const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(3600);
/// Default passes that make a down backend up.
const DEFAULT_RISE: u32 = 2;
/// Default failures that make an up backend down.
const DEFAULT_FALL: u32 = 3;
/// Largest rise or fall.
const MAX_THRESHOLD: u64 = 100;
/// Longest slow start: a ramp past an hour is no longer a warm-up, and an operator who wants
/// one that slow is better served by changing the weight.
const MAX_SLOW_START: Duration = Duration::from_secs(3600);
/// Longest `expect_body`: a marker in a health page, not a page (the check reads at most
/// 64 KiB of the body anyway).
const MAX_EXPECT_BODY: usize = 1024;
/// Default consecutive errors that eject a backend.
const DEFAULT_CONSECUTIVE_ERRORS: u32 = 5;
/// Default first ejection time.
const DEFAULT_EJECT_FOR: Duration = Duration::from_secs(30);

/// One validated `[balancers.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BalancerConfig {
    /// The table's name.
    pub name: String,
    /// Where the pool listens (HTTP/1.1 and h2c).
    pub listen: SocketAddr,
    /// How a backend is picked within a set.
    pub algorithm: Algorithm,
    /// What `ring_hash` and `maglev` hash; `None` for other algorithms (and then a random key).
    pub hash_key: Option<HashKey>,
    /// The stickiness cookie's name (`cookie` only).
    pub cookie_name: Option<String>,
    /// The pool's `/health` answers 503 below this many healthy, enabled default backends.
    pub min_healthy: usize,
    /// Path of the pool's own health endpoint, answered by the proxy itself.
    pub health_path: String,
    /// The backend sets; `sets[0]` is the balancer's own `backends` (named [`DEFAULT_SET`]),
    /// the rest are the `backend_sets` sorted by name. Never empty; no set is empty.
    pub sets: Vec<BackendSetConfig>,
    /// Routes, first match wins; requests no route matches go to `sets[0]`.
    pub routes: Vec<RouteConfig>,
    /// TCP connect timeout to a backend.
    pub connect_timeout: Duration,
    /// Wait for a backend's response headers after sending the request.
    pub response_timeout: Duration,
    /// Longest pause between body chunks in either direction, and how long an idle kept-alive
    /// connection (client side or backend side) is kept.
    pub idle_timeout: Duration,
    /// How long in-flight requests may take to finish on shutdown, and at a drained backend
    /// before they are cut off.
    pub drain_timeout: Duration,
    /// The ramp of a backend that becomes eligible again (active check rise, end of an
    /// ejection, undrain, added by a reload): its weight grows from 10 % to 100 % over this
    /// long. `None`: off, a backend is back at full weight at once.
    pub slow_start: Option<Duration>,
    /// Client connections served at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// Largest request header block, in bytes.
    pub max_header_bytes: usize,
    /// Largest request body, in bytes; `None`: unlimited.
    pub max_body_bytes: Option<u64>,
    /// Active health checks of each backend; `None`: none (backends count as healthy).
    pub health: Option<BackendHealthConfig>,
    /// Passive outlier detection; `None`: none.
    pub outlier: Option<OutlierConfig>,
}

/// What `ring_hash` and `maglev` hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashKey {
    /// The client's IP address.
    ClientIp,
    /// A request header's value (name lowercased).
    Header(String),
    /// A request cookie's value.
    Cookie(String),
}

/// A named set of backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSetConfig {
    /// The set's name ([`DEFAULT_SET`] for the balancer's own `backends`).
    pub name: String,
    /// Its backends, in configuration order, with distinct addresses.
    pub backends: Vec<BackendConfig>,
}

impl BackendSetConfig {
    /// The selector's view of the set: names are the addresses.
    pub fn specs(&self) -> Vec<BackendSpec> {
        self.backends
            .iter()
            .map(|backend| BackendSpec {
                name: backend.addr.to_string(),
                weight: backend.weight,
            })
            .collect()
    }
}

/// One backend of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendConfig {
    /// Where it listens (plain HTTP/1.1).
    pub addr: SocketAddr,
    /// Its share relative to the set's other backends, 1 to 1000000.
    pub weight: NonZeroU32,
}

/// One `[[balancers.NAME.routes]]`: every condition given must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// The path must start with this (`/` when not given).
    pub path_prefix: String,
    /// The request's host (without port, lowercase) must be exactly this.
    pub host: Option<String>,
    /// The request must carry this header with exactly this value.
    pub header: Option<HeaderMatch>,
    /// Index into [`BalancerConfig::sets`] of the set that serves matching requests.
    pub set: usize,
    /// The TCP connect timeout of matching requests (the balancer's unless the route sets
    /// one).
    pub connect_timeout: Duration,
    /// The wait for response headers of matching requests (the balancer's unless set).
    pub response_timeout: Duration,
    /// The longest pause between body chunks of matching requests, either way (the
    /// balancer's unless set). Kept-alive connections keep the balancer's idle timeout.
    pub idle_timeout: Duration,
}

/// A header a route requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// The header's name, lowercase.
    pub name: String,
    /// Its exact value.
    pub value: String,
}

/// `[balancers.NAME.health]`: active checks of each backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendHealthConfig {
    /// The path probed on each backend, with `GET`.
    pub path: String,
    /// Time between probe starts.
    pub interval: Duration,
    /// Longest a probe may take; at most the interval.
    pub timeout: Duration,
    /// Consecutive passes that make a down backend up.
    pub rise: u32,
    /// Consecutive failures that make an up backend down.
    pub fall: u32,
    /// Statuses that pass.
    pub expect_status: Vec<StatusRange>,
    /// The `Host` header of the check (lowercase); `None`: the backend's address.
    pub host: Option<String>,
    /// Text the response body must contain (the first 64 KiB are searched, within the
    /// timeout); `None`: the body is not read.
    pub expect_body: Option<String>,
}

impl BackendHealthConfig {
    /// The monitor that probes the backend at `addr`.
    ///
    /// `None` when `addr` and the path do not form a URL (the config rules that out).
    pub fn monitor(&self, addr: SocketAddr) -> Option<MonitorConfig> {
        let url = reqwest::Url::parse(&format!("http://{addr}{}", self.path)).ok()?;
        Some(MonitorConfig {
            url: ProbeUrl::Http(url),
            host: self.host.clone(),
            interval: self.interval,
            timeout: self.timeout,
            rise: self.rise,
            fall: self.fall,
            expect_status: self.expect_status.clone(),
            expect_body: self.expect_body.clone(),
            ca_file: None,
            insecure: false,
            capacity_from_pool: false,
        })
    }
}

/// `[balancers.NAME.outlier]`: passive ejection of backends failing real requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Consecutive failed requests (connect errors, resets, invalid responses, timeouts, 502,
    /// 503 and 504 answers) that eject a backend.
    pub consecutive_errors: u32,
    /// The first ejection's length; each repeated ejection doubles it, up to 10 times this.
    pub eject_for: Duration,
}

/// Checks every `[balancers.NAME]`; `dns_listen` are the DNS addresses (TCP is bound there too).
pub(super) fn balancers(
    source: &Source<'_>,
    raw: &BTreeMap<String, Spanned<RawBalancer>>,
    dns_listen: &[SocketAddr],
) -> Result<Vec<BalancerConfig>, ConfigError> {
    let mut list: Vec<BalancerConfig> = Vec::with_capacity(raw.len());
    for (name, spanned) in raw {
        let config = balancer(source, name, spanned)?;
        let listen = &spanned.as_ref().listen;
        if config.listen.port() != 0 {
            if let Some(other) = list.iter().find(|other| other.listen == config.listen) {
                return Err(source.invalid(
                    listen,
                    format_args!(
                        "balancers.{name}.listen: {} is already the listen address of balancer \
                         {}",
                        config.listen, other.name
                    ),
                ));
            }
            if dns_listen.contains(&config.listen) {
                return Err(source.invalid(
                    listen,
                    format_args!(
                        "balancers.{name}.listen: {} is also in dns.listen (DNS serves TCP there)",
                        config.listen
                    ),
                ));
            }
        }
        list.push(config);
    }
    Ok(list)
}

/// Checks one `[balancers.NAME]`.
fn balancer(
    source: &Source<'_>,
    name: &str,
    spanned: &Spanned<RawBalancer>,
) -> Result<BalancerConfig, ConfigError> {
    let raw = spanned.as_ref();
    let what = format!("balancers.{name}");
    if !valid_name(name) {
        return Err(source.invalid(
            spanned,
            format_args!(
                "balancer name {name:?}: use lowercase letters, digits and '-' (e.g. \
                 \"eu-west-web\")"
            ),
        ));
    }
    let listen: SocketAddr = raw.listen.as_ref().parse().map_err(|_| {
        source.invalid(
            &raw.listen,
            format_args!(
                "{what}.listen: {:?} is not an IP address with a port (write \"127.0.0.1:8080\" \
                 or \"[::1]:8080\")",
                raw.listen.as_ref()
            ),
        )
    })?;
    let algorithm = match &raw.algorithm {
        None => DEFAULT_ALGORITHM,
        Some(value) => value
            .as_ref()
            .parse::<Algorithm>()
            .map_err(|err| source.invalid(value, format_args!("{what}.algorithm: {err}")))?,
    };
    let hash_key = match &raw.hash_key {
        None => None,
        Some(value) => {
            if !matches!(algorithm, Algorithm::RingHash | Algorithm::Maglev) {
                return Err(source.invalid(
                    value,
                    format_args!(
                        "{what}.hash_key applies to algorithm ring_hash or maglev only (this \
                         balancer uses {algorithm})"
                    ),
                ));
            }
            Some(
                hash_key(value.as_ref())
                    .map_err(|why| source.invalid(value, format_args!("{what}.hash_key: {why}")))?,
            )
        }
    };
    let cookie_name = match (&raw.cookie_name, algorithm) {
        (None, Algorithm::Cookie) => Some(DEFAULT_COOKIE_NAME.to_owned()),
        (None, _) => None,
        (Some(value), Algorithm::Cookie) => {
            if !is_token(value.as_ref()) {
                return Err(source.invalid(
                    value,
                    format_args!(
                        "{what}.cookie_name: {:?} is not a cookie name",
                        value.as_ref()
                    ),
                ));
            }
            Some(value.as_ref().clone())
        }
        (Some(value), _) => {
            return Err(source.invalid(
                value,
                format_args!(
                    "{what}.cookie_name applies to algorithm cookie only (this balancer uses \
                     {algorithm})"
                ),
            ));
        }
    };
    let health_path = match &raw.health_path {
        None => DEFAULT_HEALTH_PATH.to_owned(),
        Some(value) => {
            check_path(value.as_ref())
                .map_err(|why| source.invalid(value, format_args!("{what}.health_path: {why}")))?;
            value.as_ref().clone()
        }
    };

    let mut sets = vec![backend_set(
        source,
        &format!("{what}.backends"),
        DEFAULT_SET,
        &raw.backends,
        algorithm,
    )?];
    for (set_name, set) in &raw.backend_sets {
        if !valid_name(set_name) || set_name == DEFAULT_SET {
            return Err(source.invalid(
                set,
                format_args!(
                    "{what}.backend_sets: set name {set_name:?}: use lowercase letters, digits \
                     and '-', and not \"{DEFAULT_SET}\" (that is the balancer's own backends)"
                ),
            ));
        }
        sets.push(backend_set(
            source,
            &format!("{what}.backend_sets.{set_name}.backends"),
            set_name,
            &set.as_ref().backends,
            algorithm,
        )?);
    }

    let min_healthy = match &raw.min_healthy {
        None => 1.min(sets[0].backends.len()),
        Some(value) => {
            let count = *value.as_ref();
            let total = sets[0].backends.len();
            if count > total as u64 {
                return Err(source.invalid(
                    value,
                    format_args!(
                        "{what}.min_healthy = {count} is more than the {total} backends of the \
                         balancer's own backends"
                    ),
                ));
            }
            count as usize
        }
    };

    let duration = |value: &Option<Spanned<String>>, key: &str, default: Duration| {
        check_timeout(source, &what, key, value.as_ref(), default)
    };
    let connect_timeout = duration(
        &raw.connect_timeout,
        "connect_timeout",
        DEFAULT_CONNECT_TIMEOUT,
    )?;
    let response_timeout = duration(
        &raw.response_timeout,
        "response_timeout",
        DEFAULT_RESPONSE_TIMEOUT,
    )?;
    let idle_timeout = duration(&raw.idle_timeout, "idle_timeout", DEFAULT_IDLE_TIMEOUT)?;
    let drain_timeout = duration(&raw.drain_timeout, "drain_timeout", DEFAULT_DRAIN_TIMEOUT)?;
    let slow_start = raw
        .slow_start
        .as_ref()
        .map(|value| slow_start(source, &what, value, algorithm))
        .transpose()?;

    let inherited = RouteTimeouts {
        connect: connect_timeout,
        response: response_timeout,
        idle: idle_timeout,
    };
    let mut routes = Vec::with_capacity(raw.routes.len());
    for (index, route_raw) in raw.routes.iter().enumerate() {
        routes.push(route(
            source,
            &format!("{what}.routes[{index}]"),
            route_raw.as_ref(),
            &sets,
            inherited,
        )?);
    }

    let max_connections = match &raw.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(value) => match *value.as_ref() {
            n @ 1..=1_000_000 => n as usize,
            n => {
                return Err(source.invalid(
                    value,
                    format_args!("{what}.max_connections = {n} is out of range: use 1 to 1000000"),
                ));
            }
        },
    };
    let max_header_bytes = match &raw.max_header_bytes {
        None => DEFAULT_MAX_HEADER_BYTES,
        Some(value) => match *value.as_ref() {
            n @ MIN_HEADER_BYTES..=MAX_HEADER_BYTES => n as usize,
            n => {
                return Err(source.invalid(
                    value,
                    format_args!(
                        "{what}.max_header_bytes = {n} is out of range: use {MIN_HEADER_BYTES} \
                         to {MAX_HEADER_BYTES}"
                    ),
                ));
            }
        },
    };
    let max_body_bytes = raw
        .max_body_bytes
        .as_ref()
        .map(|value| *value.as_ref())
        .filter(|&limit| limit > 0);

    Ok(BalancerConfig {
        name: name.to_owned(),
        listen,
        algorithm,
        hash_key,
        cookie_name,
        min_healthy,
        health_path,
        sets,
        routes,
        connect_timeout,
        response_timeout,
        idle_timeout,
        drain_timeout,
        slow_start,
        max_connections,
        max_header_bytes,
        max_body_bytes,
        health: raw
            .health
            .as_ref()
            .map(|health| backend_health(source, &what, health))
            .transpose()?,
        outlier: raw
            .outlier
            .as_ref()
            .map(|outlier| outlier_config(source, &what, outlier))
            .transpose()?,
    })
}

/// Checks a timeout key (`what.key`): above zero and at most [`MAX_TIMEOUT`]; `default` when
/// not given.
fn check_timeout(
    source: &Source<'_>,
    what: &str,
    key: &str,
    value: Option<&Spanned<String>>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(spanned) = value else {
        return Ok(default);
    };
    let parsed = parse_duration(spanned.as_ref())
        .map_err(|err| source.invalid(spanned, format_args!("{what}.{key}: {err}")))?;
    if parsed.is_zero() || parsed > MAX_TIMEOUT {
        return Err(source.invalid(
            spanned,
            format_args!("{what}.{key} must be above zero and at most 1d"),
        ));
    }
    Ok(parsed)
}

/// Checks `slow_start` of a balancer using `algorithm`.
fn slow_start(
    source: &Source<'_>,
    what: &str,
    value: &Spanned<String>,
    algorithm: Algorithm,
) -> Result<Duration, ConfigError> {
    let window = parse_duration(value.as_ref())
        .map_err(|err| source.invalid(value, format_args!("{what}.slow_start: {err}")))?;
    if window.is_zero() || window > MAX_SLOW_START {
        return Err(source.invalid(
            value,
            format_args!(
                "{what}.slow_start must be above zero and at most 1h (leave it out for no slow \
                 start)"
            ),
        ));
    }
    if algorithm == Algorithm::RoundRobin {
        return Err(source.invalid(
            value,
            format_args!(
                "{what}.slow_start ramps weights, and round_robin ignores weights: use \
                 weighted_round_robin (or another weighted algorithm)"
            ),
        ));
    }
    Ok(window)
}

/// The timeouts a route inherits from its balancer unless it sets its own.
#[derive(Debug, Clone, Copy)]
struct RouteTimeouts {
    /// `connect_timeout`.
    connect: Duration,
    /// `response_timeout`.
    response: Duration,
    /// `idle_timeout`.
    idle: Duration,
}

/// Checks one backend list (`what` names it in errors) and that `algorithm` can balance it.
fn backend_set(
    source: &Source<'_>,
    what: &str,
    name: &str,
    raw: &Spanned<Vec<Spanned<RawBackend>>>,
    algorithm: Algorithm,
) -> Result<BackendSetConfig, ConfigError> {
    if raw.as_ref().is_empty() {
        return Err(source.invalid(
            raw,
            format_args!("{what} is empty: give at least one {{ addr = \"ip:port\" }}"),
        ));
    }
    if raw.as_ref().len() > MAX_BACKENDS {
        return Err(source.invalid(
            raw,
            format_args!("{what} has more than {MAX_BACKENDS} backends"),
        ));
    }
    let mut backends: Vec<BackendConfig> = Vec::with_capacity(raw.as_ref().len());
    for entry in raw.as_ref() {
        let entry = entry.as_ref();
        let addr: SocketAddr = entry.addr.as_ref().parse().map_err(|_| {
            source.invalid(
                &entry.addr,
                format_args!(
                    "{what}: addr {:?} is not an IP address with a port (write \
                     \"127.0.0.1:9001\" or \"[::1]:9001\")",
                    entry.addr.as_ref()
                ),
            )
        })?;
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(source.invalid(
                &entry.addr,
                format_args!("{what}: addr {addr} cannot be connected to"),
            ));
        }
        if backends.iter().any(|backend| backend.addr == addr) {
            return Err(source.invalid(&entry.addr, format_args!("{what}: {addr} is listed twice")));
        }
        let weight = match &entry.weight {
            None => NonZeroU32::MIN,
            Some(value) => match *value.as_ref() {
                n @ 1..=MAX_WEIGHT => NonZeroU32::new(n as u32).unwrap_or(NonZeroU32::MIN),
                n => {
                    return Err(source.invalid(
                        value,
                        format_args!(
                            "{what}: weight {n} of {addr} is out of range: use 1 to {MAX_WEIGHT}"
                        ),
                    ));
                }
            },
        };
        backends.push(BackendConfig { addr, weight });
    }
    let set = BackendSetConfig {
        name: name.to_owned(),
        backends,
    };
    Selector::new(algorithm, &set.specs())
        .map_err(|err| source.invalid(raw, format_args!("{what}: {err}")))?;
    Ok(set)
}

/// Checks one route against the known `sets`; its timeouts default to `inherited`.
fn route(
    source: &Source<'_>,
    what: &str,
    raw: &RawRoute,
    sets: &[BackendSetConfig],
    inherited: RouteTimeouts,
) -> Result<RouteConfig, ConfigError> {
    let path_prefix = match &raw.path_prefix {
        None => "/".to_owned(),
        Some(value) => {
            check_path(value.as_ref())
                .map_err(|why| source.invalid(value, format_args!("{what}.path_prefix: {why}")))?;
            value.as_ref().clone()
        }
    };
    let host = host_key(source, what, raw.host.as_ref())?;
    let header = match &raw.header {
        None => None,
        Some(value) => {
            let header = value.as_ref();
            let name = header.name.as_ref().to_ascii_lowercase();
            if !is_token(&name) || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(source.invalid(
                    &header.name,
                    format_args!(
                        "{what}.header: {:?} is not a header name",
                        header.name.as_ref()
                    ),
                ));
            }
            if http::HeaderValue::from_str(header.value.as_ref()).is_err() {
                return Err(source.invalid(
                    &header.value,
                    format_args!(
                        "{what}.header: {:?} is not a valid header value",
                        header.value.as_ref()
                    ),
                ));
            }
            Some(HeaderMatch {
                name,
                value: header.value.as_ref().clone(),
            })
        }
    };
    let set = sets
        .iter()
        .position(|set| set.name == *raw.backends.as_ref())
        .ok_or_else(|| {
            let known: Vec<&str> = sets.iter().map(|set| set.name.as_str()).collect();
            source.invalid(
                &raw.backends,
                format_args!(
                    "{what}.backends: no backend set named {:?} (known: {})",
                    raw.backends.as_ref(),
                    known.join(", ")
                ),
            )
        })?;
    let duration = |value: &Option<Spanned<String>>, key: &str, default: Duration| {
        check_timeout(source, what, key, value.as_ref(), default)
    };
    Ok(RouteConfig {
        path_prefix,
        host,
        header,
        set,
        connect_timeout: duration(&raw.connect_timeout, "connect_timeout", inherited.connect)?,
        response_timeout: duration(
            &raw.response_timeout,
            "response_timeout",
            inherited.response,
        )?,
        idle_timeout: duration(&raw.idle_timeout, "idle_timeout", inherited.idle)?,
    })
}

/// Checks `[balancers.NAME.health]`.
fn backend_health(
    source: &Source<'_>,
    what: &str,
    spanned: &Spanned<RawBackendHealth>,
) -> Result<BackendHealthConfig, ConfigError> {
    let raw = spanned.as_ref();
    let what = format!("{what}.health");
    let path = match &raw.path {
        None => DEFAULT_HEALTH_PATH.to_owned(),
        Some(value) => {
            check_path(value.as_ref())
                .map_err(|why| source.invalid(value, format_args!("{what}.path: {why}")))?;
            value.as_ref().clone()
        }
    };
    let duration = |value: &Spanned<String>, key: &str| {
        parse_duration(value.as_ref())
            .map_err(|err| source.invalid(value, format_args!("{what}.{key}: {err}")))
    };
    let interval = match &raw.interval {
        None => DEFAULT_CHECK_INTERVAL,
        Some(value) => {
            let interval = duration(value, "interval")?;
            if !(MIN_CHECK_INTERVAL..=MAX_CHECK_INTERVAL).contains(&interval) {
                return Err(
                    source.invalid(value, format_args!("{what}.interval must be 100ms to 1h"))
                );
            }
            interval
        }
    };
    let timeout = match &raw.timeout {
        None => DEFAULT_CHECK_TIMEOUT.min(interval),
        Some(value) => {
            let timeout = duration(value, "timeout")?;
            if timeout.is_zero() || timeout > interval {
                return Err(source.invalid(
                    value,
                    format_args!(
                        "{what}.timeout must be above zero and at most the interval ({} ms)",
                        interval.as_millis()
                    ),
                ));
            }
            timeout
        }
    };
    let threshold = |value: &Option<Spanned<u64>>, key: &str, default: u32| match value {
        None => Ok(default),
        Some(spanned) => match *spanned.as_ref() {
            n @ 1..=MAX_THRESHOLD => Ok(n as u32),
            n => Err(source.invalid(
                spanned,
                format_args!("{what}.{key} = {n} is out of range: use 1 to {MAX_THRESHOLD}"),
            )),
        },
    };
    let expect_status = super::health::expect_status(source, &what, raw.expect_status.as_ref())?;
    let host = host_key(source, &what, raw.host.as_ref())?;
    let expect_body = match &raw.expect_body {
        None => None,
        Some(value) if value.as_ref().is_empty() => {
            return Err(source.invalid(
                value,
                format_args!("{what}.expect_body is empty: leave it out to ignore the body"),
            ));
        }
        Some(value) if value.as_ref().len() > MAX_EXPECT_BODY => {
            return Err(source.invalid(
                value,
                format_args!(
                    "{what}.expect_body is {} bytes long: at most {MAX_EXPECT_BODY} (a marker \
                     in the page, not the page)",
                    value.as_ref().len()
                ),
            ));
        }
        Some(value) => Some(value.as_ref().clone()),
    };
    Ok(BackendHealthConfig {
        path,
        interval,
        timeout,
        rise: threshold(&raw.rise, "rise", DEFAULT_RISE)?,
        fall: threshold(&raw.fall, "fall", DEFAULT_FALL)?,
        expect_status,
        host,
        expect_body,
    })
}

/// Checks `[balancers.NAME.outlier]`.
fn outlier_config(
    source: &Source<'_>,
    what: &str,
    spanned: &Spanned<RawOutlier>,
) -> Result<OutlierConfig, ConfigError> {
    let raw = spanned.as_ref();
    let consecutive_errors = match &raw.consecutive_errors {
        None => DEFAULT_CONSECUTIVE_ERRORS,
        Some(value) => match *value.as_ref() {
            n @ 1..=1000 => n as u32,
            n => {
                return Err(source.invalid(
                    value,
                    format_args!(
                        "{what}.outlier.consecutive_errors = {n} is out of range: use 1 to 1000"
                    ),
                ));
            }
        },
    };
    let eject_for = match &raw.eject_for {
        None => DEFAULT_EJECT_FOR,
        Some(value) => {
            let eject_for = parse_duration(value.as_ref()).map_err(|err| {
                source.invalid(value, format_args!("{what}.outlier.eject_for: {err}"))
            })?;
            if eject_for.is_zero() || eject_for > Duration::from_secs(3600) {
                return Err(source.invalid(
                    value,
                    format_args!("{what}.outlier.eject_for must be above zero and at most 1h"),
                ));
            }
            eject_for
        }
    };
    Ok(OutlierConfig {
        consecutive_errors,
        eject_for,
    })
}

/// Reads `client_ip`, `header:NAME` or `cookie:NAME`.
fn hash_key(text: &str) -> Result<HashKey, String> {
    if text == "client_ip" {
        return Ok(HashKey::ClientIp);
    }
    if let Some(name) = text.strip_prefix("header:") {
        let name = name.to_ascii_lowercase();
        if is_token(&name) && http::HeaderName::from_bytes(name.as_bytes()).is_ok() {
            return Ok(HashKey::Header(name));
        }
        return Err(format!("{text:?}: the header name is not valid"));
    }
    if let Some(name) = text.strip_prefix("cookie:") {
        if is_token(name) {
            return Ok(HashKey::Cookie(name.to_owned()));
        }
        return Err(format!("{text:?}: the cookie name is not valid"));
    }
    Err(format!(
        "{text:?} is not a hash key: write client_ip, header:NAME or cookie:NAME"
    ))
}

/// `{what}.host`, if set: a host name (see [`host_name`]), or an error at its line.
fn host_key(
    source: &Source<'_>,
    what: &str,
    value: Option<&Spanned<String>>,
) -> Result<Option<String>, ConfigError> {
    value
        .map(|value| {
            host_name(value.as_ref()).ok_or_else(|| {
                source.invalid(
                    value,
                    format_args!(
                        "{what}.host: {:?} is not a host name (write it without port)",
                        value.as_ref()
                    ),
                )
            })
        })
        .transpose()
}

/// `text` as a host name for a `Host` header: lowercase, without a trailing dot; `None` unless
/// it is dot-separated labels of letters, digits, `-` and `_` (an IPv4 address passes), at most
/// 63 bytes each and 253 in all. The same rule as a monitor's `host`.
fn host_name(text: &str) -> Option<String> {
    let host = text.trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then_some(host)
}

/// Checks an absolute request path: starts with `/`, visible ASCII, no query.
fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with '/'"));
    }
    if path.contains(['?', '#']) || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{path:?} must be a plain path: visible ASCII, no query or fragment"
        ));
    }
    Ok(())
}

/// Whether `name` is lowercase letters, digits and `-`, like region names.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `text` is a non-empty RFC 9110 token (header and cookie names).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use std::path::Path;

    /// The `[dns]` section every test config starts with.
    const BASE: &str = "[dns]\nlisten = [\"127.0.0.1:53\"]\nzones_dir = \"zones\"\n";

    /// Parses `BASE` + `text`.
    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{BASE}{text}"), Path::new("dir/meridian.toml"))
    }

    /// Asserts that `text` fails on line `line` (of `text`, 1-based) with a message ending in
    /// `expect`.
    fn check_err(text: &str, line: usize, expect: &str) {
        let err = parse(text).expect_err("config should be rejected");
        assert_eq!(err.line(), Some(line + 3), "{err}");
        assert!(
            err.to_string().ends_with(expect),
            "{err}\nexpected: {expect}"
        );
    }

    /// A balancer with one backend, followed by `extra` lines in its table.
    fn one(extra: &str) -> String {
        format!(
            "[balancers.web]\nlisten = \"127.0.0.1:8081\"\nbackends = [{{ addr = \"127.0.0.1:9001\" }}]\n{extra}"
        )
    }

    #[test]
    fn full_balancer_is_read() {
        let config = parse(
            "[balancers.eu-west-web]\n\
             listen = \"127.0.0.1:8081\"\n\
             algorithm = \"ring_hash\"\n\
             hash_key = \"header:X-User-Id\"\n\
             min_healthy = 2\n\
             health_path = \"/lb-health\"\n\
             backends = [\n  { addr = \"127.0.0.1:9001\", weight = 1 },\n  { addr = \"127.0.0.1:9002\", weight = 2 },\n]\n\
             connect_timeout = \"1s\"\nresponse_timeout = \"30s\"\nidle_timeout = \"60s\"\ndrain_timeout = \"30s\"\n\
             max_connections = 100\nmax_header_bytes = 16384\nmax_body_bytes = 1000\n\
             [balancers.eu-west-web.health]\npath = \"/ok\"\ninterval = \"2s\"\ntimeout = \"1s\"\nrise = 2\nfall = 3\nexpect_status = [\"2xx\", 301]\n\
             [balancers.eu-west-web.outlier]\nconsecutive_errors = 4\neject_for = \"10s\"\n\
             [balancers.eu-west-web.backend_sets.api]\nbackends = [ { addr = \"127.0.0.1:9101\" } ]\n\
             [[balancers.eu-west-web.routes]]\npath_prefix = \"/api/\"\nhost = \"API.example.com\"\nheader = { name = \"X-Canary\", value = \"1\" }\nbackends = \"api\"\n",
        )
        .unwrap();
        let [balancer] = &config.balancers[..] else {
            panic!("one balancer expected")
        };
        assert_eq!(balancer.name, "eu-west-web");
        assert_eq!(balancer.listen, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(balancer.algorithm, Algorithm::RingHash);
        assert_eq!(balancer.hash_key, Some(HashKey::Header("x-user-id".into())));
        assert_eq!(balancer.min_healthy, 2);
        assert_eq!(balancer.health_path, "/lb-health");
        assert_eq!(balancer.sets.len(), 2);
        assert_eq!(balancer.sets[0].name, DEFAULT_SET);
        assert_eq!(balancer.sets[0].backends[1].weight.get(), 2);
        assert_eq!(balancer.sets[1].name, "api");
        assert_eq!(
            balancer.routes,
            vec![RouteConfig {
                path_prefix: "/api/".into(),
                host: Some("api.example.com".into()),
                header: Some(HeaderMatch {
                    name: "x-canary".into(),
                    value: "1".into()
                }),
                set: 1,
                connect_timeout: Duration::from_secs(1),
                response_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(60),
            }]
        );
        assert_eq!(balancer.connect_timeout, Duration::from_secs(1));
        assert_eq!(balancer.max_connections, 100);
        assert_eq!(balancer.max_header_bytes, 16384);
        assert_eq!(balancer.max_body_bytes, Some(1000));
        let health = balancer.health.as_ref().unwrap();
        assert_eq!((health.rise, health.fall), (2, 3));
        assert_eq!(health.expect_status.len(), 2);
        let monitor = health.monitor("127.0.0.1:9001".parse().unwrap()).unwrap();
        assert_eq!(monitor.url.to_string(), "http://127.0.0.1:9001/ok");
        assert_eq!(
            balancer.outlier,
            Some(OutlierConfig {
                consecutive_errors: 4,
                eject_for: Duration::from_secs(10)
            })
        );
    }

    #[test]
    fn defaults() {
        let config = parse(&one("")).unwrap();
        let balancer = &config.balancers[0];
        assert_eq!(balancer.algorithm, Algorithm::RoundRobin);
        assert_eq!(balancer.hash_key, None);
        assert_eq!(balancer.cookie_name, None);
        assert_eq!(balancer.min_healthy, 1);
        assert_eq!(balancer.health_path, "/health");
        assert_eq!(balancer.sets[0].backends[0].weight.get(), 1);
        assert_eq!(balancer.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(balancer.response_timeout, DEFAULT_RESPONSE_TIMEOUT);
        assert_eq!(balancer.idle_timeout, DEFAULT_IDLE_TIMEOUT);
        assert_eq!(balancer.drain_timeout, DEFAULT_DRAIN_TIMEOUT);
        assert_eq!(balancer.slow_start, None);
        assert_eq!(balancer.max_connections, 10_000);
        assert_eq!(balancer.max_header_bytes, 65_536);
        assert_eq!(balancer.max_body_bytes, None);
        assert_eq!(balancer.health, None);
        assert_eq!(balancer.outlier, None);
        let config = parse(&one(
            "algorithm = \"cookie\"\nmax_body_bytes = 0\n[balancers.web.health]\n[balancers.web.outlier]\n",
        ))
        .unwrap();
        let balancer = &config.balancers[0];
        assert_eq!(balancer.cookie_name.as_deref(), Some(DEFAULT_COOKIE_NAME));
        assert_eq!(balancer.max_body_bytes, None);
        let health = balancer.health.as_ref().unwrap();
        assert_eq!(
            (
                health.path.as_str(),
                health.interval,
                health.rise,
                health.fall
            ),
            ("/health", Duration::from_secs(2), 2, 3)
        );
        assert_eq!((&health.host, &health.expect_body), (&None, &None));
        let monitor = health.monitor("127.0.0.1:9001".parse().unwrap()).unwrap();
        assert_eq!((monitor.host, monitor.expect_body), (None, None));
        assert_eq!(
            balancer.outlier,
            Some(OutlierConfig {
                consecutive_errors: 5,
                eject_for: Duration::from_secs(30)
            })
        );
        assert!(parse("").unwrap().balancers.is_empty());
    }

    #[test]
    fn unknown_algorithm_lists_the_valid_ones() {
        check_err(
            &one("algorithm = \"fastest\"\n"),
            4,
            "balancers.web.algorithm: unknown balancing algorithm `fastest`: expected one of \
             round_robin, weighted_round_robin, least_connections, least_request, \
             least_response_time, random, ip_hash, ring_hash, maglev, cookie",
        );
    }

    #[test]
    fn hash_key_rules() {
        check_err(
            &one("hash_key = \"client_ip\"\n"),
            4,
            "balancers.web.hash_key applies to algorithm ring_hash or maglev only (this \
             balancer uses round_robin)",
        );
        check_err(
            &one("algorithm = \"maglev\"\nhash_key = \"path\"\n"),
            5,
            "balancers.web.hash_key: \"path\" is not a hash key: write client_ip, header:NAME \
             or cookie:NAME",
        );
        check_err(
            &one("algorithm = \"maglev\"\nhash_key = \"header:bad name\"\n"),
            5,
            "balancers.web.hash_key: \"header:bad name\": the header name is not valid",
        );
        for (text, key) in [
            ("client_ip", HashKey::ClientIp),
            ("cookie:session", HashKey::Cookie("session".into())),
        ] {
            let config = parse(&one(&format!(
                "algorithm = \"maglev\"\nhash_key = \"{text}\"\n"
            )))
            .unwrap();
            assert_eq!(config.balancers[0].hash_key, Some(key));
        }
        check_err(
            &one("cookie_name = \"x\"\n"),
            4,
            "balancers.web.cookie_name applies to algorithm cookie only (this balancer uses \
             round_robin)",
        );
    }

    #[test]
    fn backends_are_checked() {
        check_err(
            "[balancers.web]\nlisten = \"127.0.0.1:8081\"\nbackends = [\n{ addr = \"localhost:80\" },\n]\n",
            4,
            "balancers.web.backends: addr \"localhost:80\" is not an IP address with a port \
             (write \"127.0.0.1:9001\" or \"[::1]:9001\")",
        );
        check_err(
            "[balancers.web]\nlisten = \"127.0.0.1:8081\"\nbackends = [\n{ addr = \"127.0.0.1:1\" },\n{ addr = \"127.0.0.1:1\" },\n]\n",
            5,
            "balancers.web.backends: 127.0.0.1:1 is listed twice",
        );
        check_err(
            "[balancers.web]\nlisten = \"127.0.0.1:8081\"\nbackends = [\n{ addr = \"127.0.0.1:1\", weight = 0 },\n]\n",
            4,
            "balancers.web.backends: weight 0 of 127.0.0.1:1 is out of range: use 1 to 1000000",
        );
        check_err(
            "[balancers.web]\nlisten = \"127.0.0.1:8081\"\nbackends = [\n{ addr = \"127.0.0.1:1\", weight = 1000001 },\n]\n",
            4,
            "balancers.web.backends: weight 1000001 of 127.0.0.1:1 is out of range: use 1 to \
             1000000",
        );
        check_err(
            "[balancers.web]\nlisten = \"127.0.0.1:8081\"\nbackends = []\n",
            3,
            "balancers.web.backends is empty: give at least one { addr = \"ip:port\" }",
        );
        check_err(
            "[balancers.web]\nlisten = \"127.0.0.1:8081\"\nbackends = [{ addr = \"127.0.0.1:0\" }]\n",
            3,
            "balancers.web.backends: addr 127.0.0.1:0 cannot be connected to",
        );
        check_err(
            "[balancers.web]\nlisten = \"127.0.0.1:8081\"\nbackends = [{ addr = \"127.0.0.1:1\", wieght = 2 }]\n",
            3,
            "unknown field `wieght`, expected `addr` or `weight`",
        );
    }

    #[test]
    fn listen_is_checked() {
        check_err(
            "[balancers.web]\nlisten = \"8081\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n",
            2,
            "balancers.web.listen: \"8081\" is not an IP address with a port (write \
             \"127.0.0.1:8080\" or \"[::1]:8080\")",
        );
        check_err(
            "[balancers.a]\nlisten = \"127.0.0.1:8081\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n\
             [balancers.b]\nlisten = \"127.0.0.1:8081\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n",
            5,
            "balancers.b.listen: 127.0.0.1:8081 is already the listen address of balancer a",
        );
        check_err(
            "[balancers.a]\nlisten = \"127.0.0.1:53\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n",
            2,
            "balancers.a.listen: 127.0.0.1:53 is also in dns.listen (DNS serves TCP there)",
        );
        let config = parse(
            "[balancers.a]\nlisten = \"127.0.0.1:0\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n\
             [balancers.b]\nlisten = \"127.0.0.1:0\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n",
        )
        .unwrap();
        assert_eq!(config.balancers.len(), 2, "port 0 may repeat");
        check_err(
            "[balancers.Web]\nlisten = \"127.0.0.1:8081\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n",
            1,
            "balancer name \"Web\": use lowercase letters, digits and '-' (e.g. \"eu-west-web\")",
        );
    }

    #[test]
    fn routes_are_checked() {
        check_err(
            &one("[[balancers.web.routes]]\npath_prefix = \"/api/\"\nbackends = \"api\"\n"),
            6,
            "balancers.web.routes[0].backends: no backend set named \"api\" (known: default)",
        );
        check_err(
            &one("[[balancers.web.routes]]\npath_prefix = \"api\"\nbackends = \"default\"\n"),
            5,
            "balancers.web.routes[0].path_prefix: \"api\" must start with '/'",
        );
        check_err(
            &one("[[balancers.web.routes]]\nhost = \"a.example:80\"\nbackends = \"default\"\n"),
            5,
            "balancers.web.routes[0].host: \"a.example:80\" is not a host name (write it \
             without port)",
        );
        check_err(
            &one(
                "[[balancers.web.routes]]\nheader = { name = \"a b\", value = \"1\" }\nbackends = \"default\"\n",
            ),
            5,
            "balancers.web.routes[0].header: \"a b\" is not a header name",
        );
        check_err(
            &one("[balancers.web.backend_sets.default]\nbackends = [{ addr = \"127.0.0.1:2\" }]\n"),
            4,
            "balancers.web.backend_sets: set name \"default\": use lowercase letters, digits \
             and '-', and not \"default\" (that is the balancer's own backends)",
        );
        let config = parse(&one("[[balancers.web.routes]]\nbackends = \"default\"\n")).unwrap();
        assert_eq!(config.balancers[0].routes[0].path_prefix, "/");
    }

    #[test]
    fn numbers_and_durations_are_checked() {
        check_err(
            &one("min_healthy = 2\n"),
            4,
            "balancers.web.min_healthy = 2 is more than the 1 backends of the balancer's own \
             backends",
        );
        check_err(
            &one("connect_timeout = \"0s\"\n"),
            4,
            "balancers.web.connect_timeout must be above zero and at most 1d",
        );
        check_err(
            &one("idle_timeout = \"soon\"\n"),
            4,
            "balancers.web.idle_timeout: \"soon\" is not a duration of at most 10 years (write e.g. \"500ms\", \
             \"10s\", \"2m\", \"1h\")",
        );
        check_err(
            &one("max_connections = 0\n"),
            4,
            "balancers.web.max_connections = 0 is out of range: use 1 to 1000000",
        );
        check_err(
            &one("max_header_bytes = 100\n"),
            4,
            "balancers.web.max_header_bytes = 100 is out of range: use 8192 to 1048576",
        );
        check_err(
            &one("health_path = \"health\"\n"),
            4,
            "balancers.web.health_path: \"health\" must start with '/'",
        );
        check_err(
            &one("[balancers.web.health]\ninterval = \"1s\"\ntimeout = \"2s\"\n"),
            6,
            "balancers.web.health.timeout must be above zero and at most the interval (1000 ms)",
        );
        check_err(
            &one("[balancers.web.health]\nrise = 0\n"),
            5,
            "balancers.web.health.rise = 0 is out of range: use 1 to 100",
        );
        check_err(
            &one("[balancers.web.health]\nexpect_status = [\"6xx\"]\n"),
            5,
            "balancers.web.health.expect_status: \"6xx\" is not a status: write a code such as \
             301 or a class such as \"2xx\"",
        );
        check_err(
            &one("[balancers.web.outlier]\nconsecutive_errors = 0\n"),
            5,
            "balancers.web.outlier.consecutive_errors = 0 is out of range: use 1 to 1000",
        );
        check_err(
            &one("[balancers.web.outlier]\neject_for = \"2h\"\n"),
            5,
            "balancers.web.outlier.eject_for must be above zero and at most 1h",
        );
    }

    #[test]
    fn slow_start_is_read_and_checked() {
        let config = parse(&one(
            "algorithm = \"least_request\"\nslow_start = \"30s\"\n",
        ))
        .unwrap();
        assert_eq!(
            config.balancers[0].slow_start,
            Some(Duration::from_secs(30))
        );
        let config = parse(&one("algorithm = \"maglev\"\nslow_start = \"1h\"\n")).unwrap();
        assert_eq!(
            config.balancers[0].slow_start,
            Some(Duration::from_secs(3600))
        );
        for algorithm in Algorithm::ALL {
            let result = parse(&one(&format!(
                "algorithm = \"{algorithm}\"\nslow_start = \"10s\"\n"
            )));
            assert_eq!(
                result.is_ok(),
                algorithm != Algorithm::RoundRobin,
                "{algorithm}: {result:?}"
            );
        }
        check_err(
            &one("slow_start = \"10s\"\n"),
            4,
            "balancers.web.slow_start ramps weights, and round_robin ignores weights: use \
             weighted_round_robin (or another weighted algorithm)",
        );
        for bad in ["0s", "61m", "2h"] {
            check_err(
                &one(&format!("algorithm = \"random\"\nslow_start = \"{bad}\"\n")),
                5,
                "balancers.web.slow_start must be above zero and at most 1h (leave it out for \
                 no slow start)",
            );
        }
        check_err(
            &one("algorithm = \"random\"\nslow_start = 30\n"),
            5,
            "invalid type: integer `30`, expected a string",
        );
        check_err(
            &one("algorithm = \"random\"\nslow_start = \"warm\"\n"),
            5,
            "balancers.web.slow_start: \"warm\" is not a duration of at most 10 years (write \
             e.g. \"500ms\", \"10s\", \"2m\", \"1h\")",
        );
    }

    #[test]
    fn routes_override_timeouts() {
        let config = parse(&one(
            "connect_timeout = \"2s\"\nresponse_timeout = \"20s\"\nidle_timeout = \"40s\"\n\
             [[balancers.web.routes]]\npath_prefix = \"/slow/\"\nbackends = \"default\"\n\
             response_timeout = \"2m\"\n\
             [[balancers.web.routes]]\npath_prefix = \"/fast/\"\nbackends = \"default\"\n\
             connect_timeout = \"100ms\"\nresponse_timeout = \"250ms\"\nidle_timeout = \"1s\"\n\
             [[balancers.web.routes]]\nbackends = \"default\"\n",
        ))
        .unwrap();
        let timeouts: Vec<(u128, u128, u128)> = config.balancers[0]
            .routes
            .iter()
            .map(|route| {
                (
                    route.connect_timeout.as_millis(),
                    route.response_timeout.as_millis(),
                    route.idle_timeout.as_millis(),
                )
            })
            .collect();
        assert_eq!(
            timeouts,
            [
                (2000, 120_000, 40_000),
                (100, 250, 1000),
                (2000, 20_000, 40_000)
            ],
            "a route inherits what it does not set"
        );
        let route = |line: &str| {
            one(&format!(
                "[[balancers.web.routes]]\npath_prefix = \"/a/\"\nbackends = \"default\"\n{line}\n"
            ))
        };
        for key in ["connect_timeout", "response_timeout", "idle_timeout"] {
            check_err(
                &route(&format!("{key} = \"0ms\"")),
                7,
                &format!("balancers.web.routes[0].{key} must be above zero and at most 1d"),
            );
            check_err(
                &route(&format!("{key} = \"25h\"")),
                7,
                &format!("balancers.web.routes[0].{key} must be above zero and at most 1d"),
            );
            check_err(
                &route(&format!("{key} = \"soon\"")),
                7,
                &format!(
                    "balancers.web.routes[0].{key}: \"soon\" is not a duration of at most 10 \
                     years (write e.g. \"500ms\", \"10s\", \"2m\", \"1h\")"
                ),
            );
        }
        check_err(
            &route("drain_timeout = \"1s\""),
            7,
            "unknown field `drain_timeout`, expected one of `path_prefix`, `host`, `header`, \
             `backends`, `connect_timeout`, `response_timeout`, `idle_timeout`",
        );
    }

    #[test]
    fn health_host_and_expect_body() {
        let config = parse(&one(
            "[balancers.web.health]\nhost = \"WWW.Example.com.\"\nexpect_body = \"ready\"\n",
        ))
        .unwrap();
        let health = config.balancers[0].health.as_ref().unwrap();
        assert_eq!(health.host.as_deref(), Some("www.example.com"));
        assert_eq!(health.expect_body.as_deref(), Some("ready"));
        let monitor = health.monitor("127.0.0.1:9001".parse().unwrap()).unwrap();
        assert_eq!(monitor.host.as_deref(), Some("www.example.com"));
        assert_eq!(monitor.expect_body.as_deref(), Some("ready"));
        assert_eq!(monitor.url.to_string(), "http://127.0.0.1:9001/health");
        check_err(
            &one("[balancers.web.health]\nhost = \"www.example.com:8080\"\n"),
            5,
            "balancers.web.health.host: \"www.example.com:8080\" is not a host name (write it \
             without port)",
        );
        check_err(
            &one("[balancers.web.health]\nhost = \"\"\n"),
            5,
            "balancers.web.health.host: \"\" is not a host name (write it without port)",
        );
        check_err(
            &one("[balancers.web.health]\nhost = \"a..b\"\n"),
            5,
            "balancers.web.health.host: \"a..b\" is not a host name (write it without port)",
        );
        check_err(
            &one("[balancers.web.health]\nexpect_body = \"\"\n"),
            5,
            "balancers.web.health.expect_body is empty: leave it out to ignore the body",
        );
        let long = "x".repeat(MAX_EXPECT_BODY + 1);
        check_err(
            &one(&format!(
                "[balancers.web.health]\nexpect_body = \"{long}\"\n"
            )),
            5,
            "balancers.web.health.expect_body is 1025 bytes long: at most 1024 (a marker in the \
             page, not the page)",
        );
        let exact = "x".repeat(MAX_EXPECT_BODY);
        assert!(
            parse(&one(&format!(
                "[balancers.web.health]\nexpect_body = \"{exact}\"\n"
            )))
            .is_ok()
        );
        check_err(
            &one("[balancers.web.health]\nexpect_body = [\"ok\"]\n"),
            5,
            "invalid type: sequence, expected a string",
        );
    }
}
