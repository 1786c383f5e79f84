//! Configuration: the TOML file an operator writes, checked once into typed values.
//!
//! The file is read into serde mirrors ([`raw`]) that reject unknown keys, then converted into
//! the validated types below. Past that point nothing re-checks: a [`Config`] is always usable.
//! Every error names the file and line, so `meridian check` can print `file:line: message`.
//!
//! Later sections (`[geo]`, `[regions.*]`, `[services.*]`, ...) slot in as new fields of
//! [`raw::RawConfig`] and [`Config`], each with its own validation function.

mod admin;
mod balancer;
mod duration;
mod geo;
mod health;
mod raw;
#[cfg(test)]
mod reference;
mod service;

pub use admin::AdminConfig;
pub use balancer::{
    BackendConfig, BackendHealthConfig, BackendSetConfig, BalancerConfig, DEFAULT_SET, HashKey,
    HeaderMatch, OutlierConfig, RouteConfig,
};
pub use duration::{DurationError, MAX_DURATION, parse_duration};
pub use geo::{CONTINENTS, GeoConfig, LocationPath, MapConfig, Region, RegionId, location_path};
pub use health::{HealthConfig, MonitorConfig, ProbeUrl, Require, StatusRange};
pub use service::{
    AllDown, Failback, MAX_ANSWER_REGIONS, Policy, ServiceAnswer, ServiceConfig, Spill,
};

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// Smallest EDNS payload we may advertise (RFC 6891 section 6.2.5: below 512 means 512).
const MIN_UDP_PAYLOAD: u16 = 512;
/// Largest EDNS payload we accept as our cap; anything above invites IP fragmentation.
const MAX_UDP_PAYLOAD: u16 = 4096;
/// Default EDNS payload cap: the DNS Flag Day 2020 value that avoids fragmentation.
pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;
/// Default time an idle TCP connection is kept open (RFC 7766 section 6.2.3 suggests seconds).
const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit on simultaneous TCP connections.
const DEFAULT_TCP_MAX_CONNECTIONS: usize = 1024;

/// A validated configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from.
    pub path: PathBuf,
    /// The `[dns]` section.
    pub dns: DnsConfig,
    /// The `[geo]` section (defaults when absent).
    pub geo: GeoConfig,
    /// `[regions.*]`, sorted by name; a [`RegionId`] indexes this.
    pub regions: Vec<Region>,
    /// `[maps.*]`, sorted by name.
    pub maps: Vec<MapConfig>,
    /// `[services.*]`, sorted by name.
    pub services: Vec<ServiceConfig>,
    /// The `[health]` section.
    pub health: HealthSettings,
    /// The `[admin]` section.
    pub admin: AdminConfig,
    /// `[balancers.*]`, sorted by name: the embedded L7 balancer pools.
    pub balancers: Vec<BalancerConfig>,
}

/// The `[health]` section: process-wide health monitor settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthSettings {
    /// Where the last known state of every monitor is kept, so a restart does not flap.
    pub state_file: Option<PathBuf>,
}

/// The `[dns]` section: where and how the authoritative server listens.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsConfig {
    /// Addresses served over both UDP and TCP; none without a `[dns]` section.
    pub listen: Vec<SocketAddr>,
    /// Directory of zone files, absolute or relative to the working directory of the process
    /// (already resolved against the config file's directory); `None` without a `[dns]`
    /// section: no zones, no DNS.
    pub zones_dir: Option<PathBuf>,
    /// Our EDNS UDP payload cap, in bytes.
    pub max_udp_payload: u16,
    /// UDP worker threads per listen address; each owns one `SO_REUSEPORT` socket.
    pub udp_workers: usize,
    /// How long a TCP connection may stay idle before we close it.
    pub tcp_idle_timeout: Duration,
    /// Most TCP connections served at once; further ones wait in the accept queue.
    pub tcp_max_connections: usize,
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending text.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A value is well-formed but not acceptable.
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending value.
        line: usize,
        /// What is wrong and what to do.
        message: String,
    },
}

impl ConfigError {
    /// The file and line this error points at, when it points at a line.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Syntax { line, .. } | ConfigError::Invalid { line, .. } => Some(*line),
        }
    }
}

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates configuration `text` as if read from `path` (used for locations and to resolve
    /// relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let source = Source { path, text };
        let raw =
            raw::RawConfig::deserialize(toml::de::Deserializer::parse(text).map_err(|err| {
                source.syntax(err.span().map_or(0, |span| span.start), err.message())
            })?)
            .map_err(|err| source.syntax(err.span().map_or(0, |span| span.start), err.message()))?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        let dns = match raw.dns {
            Some(dns) => dns_config(&source, base, dns)?,
            None => without_dns(&source, &raw.services, &raw.balancers)?,
        };
        let (geo, regions, maps, services) =
            geo::geo_sections(&source, base, raw.geo, raw.regions, raw.maps, raw.services)?;
        let health = HealthSettings {
            state_file: raw
                .health
                .and_then(|health| health.state_file)
                .map(|file| base.join(file.as_ref())),
        };
        let balancers = balancer::balancers(&source, &raw.balancers, &dns.listen)?;
        let admin = admin::admin(
            &source,
            base,
            raw.admin.as_ref(),
            health.state_file.as_deref(),
        )?;
        Ok(Config {
            admin,
            path: path.to_path_buf(),
            dns,
            geo,
            regions,
            maps,
            services,
            health,
            balancers,
        })
    }
}

/// The text of a config file, for turning byte offsets into line numbers.
struct Source<'a> {
    /// The file.
    path: &'a Path,
    /// Its contents.
    text: &'a str,
}

impl Source<'_> {
    /// 1-based line number of byte `offset`.
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// A syntax error at byte `offset`.
    fn syntax(&self, offset: usize, message: &str) -> ConfigError {
        ConfigError::Syntax {
            path: self.path.to_path_buf(),
            line: self.line(offset),
            message: message.trim().to_string(),
        }
    }

    /// A validation error about the value spanned by `value`.
    fn invalid<T>(&self, value: &Spanned<T>, message: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: self.line(value.span().start),
            message: message.to_string(),
        }
    }
}

/// The DNS settings of a file with no `[dns]` section: no listeners and no zones, which only
/// makes sense for a process that runs L7 pools and serves no GSLB name.
fn without_dns<S, B>(
    source: &Source<'_>,
    services: &BTreeMap<String, Spanned<S>>,
    balancers: &BTreeMap<String, B>,
) -> Result<DnsConfig, ConfigError> {
    if let Some((name, service)) = services.iter().next() {
        return Err(source.invalid(
            service,
            format_args!(
                "services.\"{name}\" needs a [dns] section (listen, zones_dir) to be served"
            ),
        ));
    }
    if balancers.is_empty() {
        return Err(source.syntax(
            0,
            "nothing to serve: add a [dns] section (listen, zones_dir) for DNS, \
             [balancers.NAME] sections for L7 pools, or both",
        ));
    }
    Ok(DnsConfig {
        listen: Vec::new(),
        zones_dir: None,
        max_udp_payload: DEFAULT_UDP_PAYLOAD,
        udp_workers: 1,
        tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
        tcp_max_connections: DEFAULT_TCP_MAX_CONNECTIONS,
    })
}

/// Checks the `[dns]` section.
fn dns_config(
    source: &Source<'_>,
    base: &Path,
    raw: raw::RawDns,
) -> Result<DnsConfig, ConfigError> {
    if raw.listen.as_ref().is_empty() {
        return Err(source.invalid(
            &raw.listen,
            "dns.listen is empty: give at least one address, e.g. [\"127.0.0.1:53\"]",
        ));
    }
    let mut listen = Vec::with_capacity(raw.listen.as_ref().len());
    for entry in raw.listen.as_ref() {
        let addr: SocketAddr = entry.as_ref().parse().map_err(|_| {
            source.invalid(
                entry,
                format_args!(
                    "dns.listen: {:?} is not an IP address with a port \
                     (write \"127.0.0.1:53\" or \"[::1]:53\")",
                    entry.as_ref()
                ),
            )
        })?;
        if listen.contains(&addr) {
            return Err(source.invalid(entry, format_args!("dns.listen: {addr} is listed twice")));
        }
        listen.push(addr);
    }

    let max_udp_payload = match &raw.max_udp_payload {
        None => DEFAULT_UDP_PAYLOAD,
        Some(value) => {
            let payload = *value.as_ref();
            if !(u64::from(MIN_UDP_PAYLOAD)..=u64::from(MAX_UDP_PAYLOAD)).contains(&payload) {
                return Err(source.invalid(
                    value,
                    format_args!(
                        "dns.max_udp_payload = {payload} is out of range: \
                         use {MIN_UDP_PAYLOAD} to {MAX_UDP_PAYLOAD} (1232 avoids fragmentation)"
                    ),
                ));
            }
            payload as u16
        }
    };

    let udp_workers = match &raw.udp_workers {
        None => default_workers(),
        Some(value) => {
            match *value.as_ref() {
                0 => default_workers(),
                n @ 1..=256 => n as usize,
                n => {
                    return Err(source.invalid(
                    value,
                    format_args!("dns.udp_workers = {n} is out of range: use 1 to 256, or 0 for one per CPU"),
                ));
                }
            }
        }
    };

    let tcp_idle_timeout = match &raw.tcp_idle_timeout {
        None => DEFAULT_TCP_IDLE_TIMEOUT,
        Some(value) => {
            let timeout = parse_duration(value.as_ref()).map_err(|err| {
                source.invalid(value, format_args!("dns.tcp_idle_timeout: {err}"))
            })?;
            if timeout.is_zero() {
                return Err(source.invalid(value, "dns.tcp_idle_timeout must be above zero"));
            }
            timeout
        }
    };

    let tcp_max_connections = match &raw.tcp_max_connections {
        None => DEFAULT_TCP_MAX_CONNECTIONS,
        Some(value) => match *value.as_ref() {
            n @ 1..=1_000_000 => n as usize,
            n => {
                return Err(source.invalid(
                    value,
                    format_args!("dns.tcp_max_connections = {n} is out of range: use 1 to 1000000"),
                ));
            }
        },
    };

    Ok(DnsConfig {
        listen,
        zones_dir: Some(base.join(raw.zones_dir.as_ref())),
        max_udp_payload,
        udp_workers,
        tcp_idle_timeout,
        tcp_max_connections,
    })
}

/// One UDP worker per CPU the process may run on.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` as `dir/meridian.toml`.
    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("dir/meridian.toml"))
    }

    /// Asserts that `text` fails with exactly `expect`.
    fn check_err(text: &str, expect: &str) {
        let err = parse(text).expect_err("config should be rejected");
        assert_eq!(err.to_string(), expect);
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config =
            parse("[dns]\nlisten = [\"127.0.0.1:5353\"]\nzones_dir = \"zones\"\n").unwrap();
        assert_eq!(config.dns.listen, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(
            config.dns.zones_dir.as_deref(),
            Some(Path::new("dir/zones"))
        );
        assert_eq!(config.dns.max_udp_payload, 1232);
        assert_eq!(config.dns.tcp_idle_timeout, Duration::from_secs(10));
        assert_eq!(config.dns.tcp_max_connections, 1024);
        assert!(config.dns.udp_workers >= 1);
    }

    #[test]
    fn dns_may_be_left_out_by_a_file_that_only_runs_balancers() {
        let config = parse(
            "[balancers.web]\nlisten = \"127.0.0.1:8081\"\n\
             backends = [{ addr = \"127.0.0.1:9001\" }]\n",
        )
        .unwrap();
        assert!(config.dns.listen.is_empty());
        assert_eq!(config.dns.zones_dir, None);
        assert_eq!(config.balancers.len(), 1);

        check_err(
            "[admin]\nlisten = \"127.0.0.1:0\"\n",
            "dir/meridian.toml:1: nothing to serve: add a [dns] section (listen, zones_dir) for \
             DNS, [balancers.NAME] sections for L7 pools, or both",
        );
        check_err(
            "[balancers.web]\nlisten = \"127.0.0.1:8081\"\n\
             backends = [{ addr = \"127.0.0.1:9001\" }]\n\
             [regions.eu]\n\
             [services.\"www.example.com\"]\npolicy = \"failover\"\ntiers = [[\"eu\"]]\n\
             answers.eu = [\"192.0.2.1\"]\n",
            "dir/meridian.toml:5: services.\"www.example.com\" needs a [dns] section \
             (listen, zones_dir) to be served",
        );
    }

    #[test]
    fn every_key_is_read() {
        let config = parse(
            "[dns]\nlisten = [\"127.0.0.1:53\", \"[::1]:53\"]\nzones_dir = \"/srv/zones\"\n\
             max_udp_payload = 1400\nudp_workers = 3\ntcp_idle_timeout = \"2500ms\"\n\
             tcp_max_connections = 10\n",
        )
        .unwrap();
        assert_eq!(config.dns.listen.len(), 2);
        assert_eq!(
            config.dns.zones_dir.as_deref(),
            Some(Path::new("/srv/zones"))
        );
        assert_eq!(config.dns.max_udp_payload, 1400);
        assert_eq!(config.dns.udp_workers, 3);
        assert_eq!(config.dns.tcp_idle_timeout, Duration::from_millis(2500));
        assert_eq!(config.dns.tcp_max_connections, 10);
    }

    #[test]
    fn unknown_keys_are_errors_with_line() {
        check_err(
            "[dns]\nlisten = [\"127.0.0.1:53\"]\nzones_dir = \"z\"\nlisen = 1\n",
            "dir/meridian.toml:4: unknown field `lisen`, expected one of `listen`, `zones_dir`, \
             `max_udp_payload`, `udp_workers`, `tcp_idle_timeout`, `tcp_max_connections`",
        );
        let err = parse("[dns]\nlisten = []\nzones_dir = \"z\"\n[dnss]\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("dir/meridian.toml:4: unknown field `dnss`"),
            "{err}"
        );
    }

    #[test]
    fn missing_section_and_keys() {
        let err = parse("").unwrap_err();
        assert!(err.to_string().contains("nothing to serve"), "{err}");
        let err = parse("[dns]\nlisten = [\"127.0.0.1:53\"]\n").unwrap_err();
        assert!(
            err.to_string().contains("missing field `zones_dir`"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_point_at_their_line() {
        check_err(
            "[dns]\nzones_dir = \"z\"\nlisten = [\n  \"127.0.0.1:53\",\n  \"localhost\",\n]\n",
            "dir/meridian.toml:5: dns.listen: \"localhost\" is not an IP address with a port \
             (write \"127.0.0.1:53\" or \"[::1]:53\")",
        );
        check_err(
            "[dns]\nzones_dir = \"z\"\nlisten = []\n",
            "dir/meridian.toml:3: dns.listen is empty: give at least one address, e.g. [\"127.0.0.1:53\"]",
        );
        check_err(
            "[dns]\nzones_dir = \"z\"\nlisten = [\"127.0.0.1:53\", \"127.0.0.1:53\"]\n",
            "dir/meridian.toml:3: dns.listen: 127.0.0.1:53 is listed twice",
        );
        check_err(
            "[dns]\nzones_dir = \"z\"\nlisten = [\"127.0.0.1:53\"]\nmax_udp_payload = 100\n",
            "dir/meridian.toml:4: dns.max_udp_payload = 100 is out of range: use 512 to 4096 \
             (1232 avoids fragmentation)",
        );
        check_err(
            "[dns]\nzones_dir = \"z\"\nlisten = [\"127.0.0.1:53\"]\ntcp_idle_timeout = \"soon\"\n",
            "dir/meridian.toml:4: dns.tcp_idle_timeout: \"soon\" is not a duration of at most 10 years \
             (write e.g. \"500ms\", \"10s\", \"2m\", \"1h\")",
        );
        check_err(
            "[dns]\nzones_dir = \"z\"\nlisten = [\"127.0.0.1:53\"]\nudp_workers = 1000\n",
            "dir/meridian.toml:4: dns.udp_workers = 1000 is out of range: use 1 to 256, or 0 for one per CPU",
        );
    }

    #[test]
    fn wrong_types_are_syntax_errors() {
        let err = parse("[dns]\nzones_dir = \"z\"\nlisten = \"127.0.0.1:53\"\n").unwrap_err();
        assert_eq!(err.line(), Some(3), "{err}");
        let err = parse("[dns]\nzones_dir = 3\n").unwrap_err();
        assert_eq!(err.line(), Some(2), "{err}");
        let err = parse("[dns\n").unwrap_err();
        assert_eq!(err.line(), Some(1), "{err}");
    }
}
