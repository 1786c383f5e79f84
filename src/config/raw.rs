//! Serde mirrors of the configuration file: exactly the keys an operator may write.
//!
//! Every struct denies unknown fields, so a misspelt key is an error rather than a silently
//! ignored setting. Values that need a line number in a later validation error are `Spanned`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// `[dns]`; may be left out when the file has `[balancers.*]` and no services.
    pub dns: Option<RawDns>,
    /// `[geo]`.
    pub geo: Option<RawGeo>,
    /// `[regions.NAME]`.
    #[serde(default)]
    pub regions: BTreeMap<String, Spanned<RawRegion>>,
    /// `[maps.NAME]`: reserved keys and location paths, checked by hand (see `geo.rs`).
    #[serde(default)]
    pub maps: BTreeMap<String, Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    /// `[services."NAME"]`.
    #[serde(default)]
    pub services: BTreeMap<String, Spanned<RawService>>,
    /// `[health]`.
    pub health: Option<RawHealth>,
    /// `[admin]`.
    pub admin: Option<super::admin::RawAdmin>,
    /// `[balancers.NAME]`: the embedded L7 balancer pools.
    #[serde(default)]
    pub balancers: BTreeMap<String, Spanned<RawBalancer>>,
}

/// `[geo]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGeo {
    /// `databases = ["City.mmdb", "ASN.mmdb"]`.
    #[serde(default)]
    pub databases: Vec<Spanned<String>>,
    /// `nets = "nets.csv"`.
    pub nets: Option<Spanned<String>>,
    /// `ecs = true`.
    pub ecs: Option<bool>,
    /// `ecs_max_source_v4 = 24`.
    pub ecs_max_source_v4: Option<Spanned<u64>>,
    /// `ecs_max_source_v6 = 56`.
    pub ecs_max_source_v6: Option<Spanned<u64>>,
}

/// `[regions.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    /// `location = [lat, lon]`.
    pub location: Option<Spanned<Vec<f64>>>,
    /// `capacity = 1000`: relative capacity, for spill.
    pub capacity: Option<Spanned<u64>>,
    /// `[[regions.NAME.monitor]]`.
    #[serde(default)]
    pub monitor: Vec<Spanned<RawMonitor>>,
    /// `[regions.NAME.health]`.
    pub health: Option<Spanned<RawRegionHealth>>,
}

/// `[[regions.NAME.monitor]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitor {
    /// `url = "https://lb/health"` or `"tcp://host:port"`.
    pub url: Spanned<String>,
    /// `host = "www.example.com"`.
    pub host: Option<Spanned<String>>,
    /// `interval = "2s"`.
    pub interval: Option<Spanned<String>>,
    /// `timeout = "1s"`.
    pub timeout: Option<Spanned<String>>,
    /// `rise = 2`.
    pub rise: Option<Spanned<u64>>,
    /// `fall = 2`.
    pub fall: Option<Spanned<u64>>,
    /// `expect_status = ["2xx", 301]`.
    pub expect_status: Option<Spanned<Vec<toml::Value>>>,
    /// `expect_body = "ok"`.
    pub expect_body: Option<Spanned<String>>,
    /// `ca_file = "ca.pem"`.
    pub ca_file: Option<Spanned<String>>,
    /// `insecure = false`.
    pub insecure: Option<bool>,
    /// `capacity_from = "pool"`.
    pub capacity_from: Option<Spanned<String>>,
}

/// `[regions.NAME.health]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegionHealth {
    /// `require = "all"`, `"any"` or a number.
    pub require: Option<Spanned<toml::Value>>,
    /// `initial = "up"` or `"down"`.
    pub initial: Option<Spanned<String>>,
}

/// `[health]`: process-wide health settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    /// `state_file = "state/health.json"`.
    pub state_file: Option<Spanned<String>>,
}

/// `[services."NAME"]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    /// `map = "world"`.
    pub map: Option<Spanned<String>>,
    /// `policy = "geo"`, `"weighted"` or `"failover"`.
    pub policy: Option<Spanned<String>>,
    /// `spread = 2` (geo).
    pub spread: Option<Spanned<u64>>,
    /// `spill = "next"` or `"capacity"` (geo).
    pub spill: Option<Spanned<String>>,
    /// `weights = { us-east = 3 }` (weighted).
    pub weights: Option<Spanned<BTreeMap<String, Spanned<u64>>>>,
    /// `max_answers = 2` (weighted).
    pub max_answers: Option<Spanned<u64>>,
    /// `tiers = [["a", "b"], ["dr"]]` (failover).
    pub tiers: Option<Spanned<Vec<Vec<String>>>>,
    /// `failback = "auto"` or `"manual"` (failover).
    pub failback: Option<Spanned<String>>,
    /// `ttl = 30`.
    pub ttl: Option<Spanned<u64>>,
    /// `ttl_degraded = 10`.
    pub ttl_degraded: Option<Spanned<u64>>,
    /// `all_down = "serve_all"`.
    pub all_down: Option<Spanned<String>>,
    /// `fallback = { cname = "sorry.example.net." }` or `["192.0.2.1"]`.
    pub fallback: Option<Spanned<toml::Value>>,
    /// `answers.REGION = ["addr", ...]` or `{ cname = "name." }`.
    pub answers: Spanned<BTreeMap<String, Spanned<toml::Value>>>,
}

/// `[dns]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    /// `listen = ["addr:port", ...]`.
    pub listen: Spanned<Vec<Spanned<String>>>,
    /// `zones_dir = "zones"`.
    pub zones_dir: Spanned<String>,
    /// `max_udp_payload = 1232`.
    pub max_udp_payload: Option<Spanned<u64>>,
    /// `udp_workers = 0` (0 or absent: one per CPU).
    pub udp_workers: Option<Spanned<u64>>,
    /// `tcp_idle_timeout = "10s"`.
    pub tcp_idle_timeout: Option<Spanned<String>>,
    /// `tcp_max_connections = 1024`.
    pub tcp_max_connections: Option<Spanned<u64>>,
}

/// `[balancers.NAME]`: one embedded L7 balancer pool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBalancer {
    /// `listen = "127.0.0.1:8081"`.
    pub listen: Spanned<String>,
    /// `algorithm = "least_request"`.
    pub algorithm: Option<Spanned<String>>,
    /// `hash_key = "header:x-user-id"` (ring_hash, maglev).
    pub hash_key: Option<Spanned<String>>,
    /// `cookie_name = "meridian_backend"` (cookie).
    pub cookie_name: Option<Spanned<String>>,
    /// `min_healthy = 2`.
    pub min_healthy: Option<Spanned<u64>>,
    /// `health_path = "/health"`.
    pub health_path: Option<Spanned<String>>,
    /// `backends = [{ addr = "127.0.0.1:9001", weight = 1 }]`: the default backend set.
    pub backends: Spanned<Vec<Spanned<RawBackend>>>,
    /// `connect_timeout = "1s"`.
    pub connect_timeout: Option<Spanned<String>>,
    /// `response_timeout = "30s"`.
    pub response_timeout: Option<Spanned<String>>,
    /// `idle_timeout = "60s"`.
    pub idle_timeout: Option<Spanned<String>>,
    /// `drain_timeout = "30s"`.
    pub drain_timeout: Option<Spanned<String>>,
    /// `slow_start = "30s"`: the weight ramp of a backend that becomes eligible again.
    pub slow_start: Option<Spanned<String>>,
    /// `max_connections = 10000`.
    pub max_connections: Option<Spanned<u64>>,
    /// `max_header_bytes = 65536`.
    pub max_header_bytes: Option<Spanned<u64>>,
    /// `max_body_bytes = 0` (0: unlimited).
    pub max_body_bytes: Option<Spanned<u64>>,
    /// `[balancers.NAME.health]`: active checks of each backend.
    pub health: Option<Spanned<RawBackendHealth>>,
    /// `[balancers.NAME.outlier]`: passive checks on real traffic.
    pub outlier: Option<Spanned<RawOutlier>>,
    /// `[balancers.NAME.backend_sets.SET]`: further named backend sets.
    #[serde(default)]
    pub backend_sets: BTreeMap<String, Spanned<RawBackendSet>>,
    /// `[[balancers.NAME.routes]]`.
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
}

/// One `{ addr = "127.0.0.1:9001", weight = 1 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    /// `addr = "127.0.0.1:9001"`.
    pub addr: Spanned<String>,
    /// `weight = 1`.
    pub weight: Option<Spanned<u64>>,
}

/// `[balancers.NAME.backend_sets.SET]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackendSet {
    /// `backends = [...]`.
    pub backends: Spanned<Vec<Spanned<RawBackend>>>,
}

/// `[balancers.NAME.health]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackendHealth {
    /// `path = "/health"`.
    pub path: Option<Spanned<String>>,
    /// `interval = "2s"`.
    pub interval: Option<Spanned<String>>,
    /// `timeout = "1s"`.
    pub timeout: Option<Spanned<String>>,
    /// `rise = 2`.
    pub rise: Option<Spanned<u64>>,
    /// `fall = 3`.
    pub fall: Option<Spanned<u64>>,
    /// `expect_status = ["2xx"]`.
    pub expect_status: Option<Spanned<Vec<toml::Value>>>,
    /// `host = "www.example.com"`: the check's `Host` header.
    pub host: Option<Spanned<String>>,
    /// `expect_body = "ok"`: text the check's response body must contain.
    pub expect_body: Option<Spanned<String>>,
}

/// `[balancers.NAME.outlier]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutlier {
    /// `consecutive_errors = 5`.
    pub consecutive_errors: Option<Spanned<u64>>,
    /// `eject_for = "30s"`.
    pub eject_for: Option<Spanned<String>>,
}

/// `[[balancers.NAME.routes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    /// `path_prefix = "/api/"`.
    pub path_prefix: Option<Spanned<String>>,
    /// `host = "api.example.com"`.
    pub host: Option<Spanned<String>>,
    /// `header = { name = "x-canary", value = "1" }`.
    pub header: Option<Spanned<RawHeaderMatch>>,
    /// `backends = "api"`: a backend set's name.
    pub backends: Spanned<String>,
    /// `connect_timeout = "500ms"`: overrides the balancer's for this route's requests.
    pub connect_timeout: Option<Spanned<String>>,
    /// `response_timeout = "5s"`: overrides the balancer's for this route's requests.
    pub response_timeout: Option<Spanned<String>>,
    /// `idle_timeout = "10s"`: overrides the balancer's for this route's request and response
    /// bodies.
    pub idle_timeout: Option<Spanned<String>>,
}

/// `{ name = "x-canary", value = "1" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeaderMatch {
    /// The header's name.
    pub name: Spanned<String>,
    /// The exact value it must have.
    pub value: Spanned<String>,
}
