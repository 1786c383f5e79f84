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
    /// `[dns]`.
    pub dns: RawDns,
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
}

/// `[services."NAME"]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    /// `map = "world"`.
    pub map: Spanned<String>,
    /// `ttl = 30`.
    pub ttl: Option<Spanned<u64>>,
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
