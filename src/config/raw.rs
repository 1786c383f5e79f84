//! Serde mirrors of the configuration file: exactly the keys an operator may write.
//!
//! Every struct denies unknown fields, so a misspelt key is an error rather than a silently
//! ignored setting. Values that need a line number in a later validation error are `Spanned`.

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// `[dns]`.
    pub dns: RawDns,
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
