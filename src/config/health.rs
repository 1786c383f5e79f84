//! `[[regions.NAME.monitor]]` and `[regions.NAME.health]`: how a region's load balancer is
//! probed and how probe results combine into the region's health.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawMonitor, RawRegionHealth};
use super::{ConfigError, Source, parse_duration};

/// What a monitor probes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProbeUrl {
    /// An `http://` or `https://` URL; the probe sends `GET` and reads the status and body.
    Http(reqwest::Url),
    /// `tcp://host:port`; the probe passes when a connection opens.
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
    },
}

impl fmt::Display for ProbeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeUrl::Http(url) => f.write_str(url.as_str()),
            ProbeUrl::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            ProbeUrl::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// An inclusive range of HTTP status codes: `"2xx"` is 200..=299, `301` is 301..=301.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusRange {
    /// Lowest status accepted.
    pub low: u16,
    /// Highest status accepted.
    pub high: u16,
}

impl StatusRange {
    /// Whether `status` is in the range.
    pub fn contains(self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}xx", self.low / 100)
        }
    }
}

/// One `[[regions.NAME.monitor]]`: a probe of the region's load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MonitorConfig {
    /// What to probe.
    pub url: ProbeUrl,
    /// Host header and TLS SNI, when they differ from the URL's host.
    pub host: Option<String>,
    /// Time between probe starts.
    pub interval: Duration,
    /// Longest a probe may take; always below `interval`.
    pub timeout: Duration,
    /// Consecutive passes that make a down target up.
    pub rise: u32,
    /// Consecutive failures that make an up target down.
    pub fall: u32,
    /// Statuses that pass (HTTP only).
    pub expect_status: Vec<StatusRange>,
    /// Text the body must contain (HTTP only).
    pub expect_body: Option<String>,
    /// PEM file of CA certificates trusted instead of the system roots (HTTPS only).
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification (HTTPS only).
    pub insecure: bool,
    /// Read the target's capacity share from its JSON body (`capacity_from = "pool"`): the
    /// health endpoint of a Meridian pool, `{"capacity": 0.5, ...}`.
    pub capacity_from_pool: bool,
}

/// How many of a region's monitors must pass for the region to be up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Require {
    /// Every monitor.
    All,
    /// At least one.
    Any,
    /// At least this many.
    AtLeast(u32),
}

/// `[regions.NAME.health]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthConfig {
    /// The rule combining monitors.
    pub require: Require,
    /// State assumed before the first probe round has finished.
    pub initial_up: bool,
}

impl Default for HealthConfig {
    fn default() -> HealthConfig {
        HealthConfig {
            require: Require::All,
            initial_up: true,
        }
    }
}

/// Default time between probes.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// Default probe timeout (capped at the interval).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Shortest interval accepted: faster probing buys little and loads the target.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest interval accepted.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// Default rise and fall: two results in a row, so one lost packet does not flap a region.
const DEFAULT_THRESHOLD: u32 = 2;
/// Largest rise or fall accepted.
const MAX_THRESHOLD: u64 = 100;

/// Checks the `[[regions.NAME.monitor]]` list of region `region`.
pub(super) fn monitors(
    source: &Source<'_>,
    base: &Path,
    region: &str,
    raw: &[Spanned<RawMonitor>],
) -> Result<Vec<MonitorConfig>, ConfigError> {
    let mut list: Vec<MonitorConfig> = Vec::with_capacity(raw.len());
    for (index, spanned) in raw.iter().enumerate() {
        let what = format!("regions.{region}.monitor[{index}]");
        let config = monitor(source, base, &what, spanned.as_ref())?;
        if list
            .iter()
            .any(|other| other.url == config.url && other.host == config.host)
        {
            return Err(source.invalid(
                &spanned.as_ref().url,
                format_args!("{what}: {} is monitored twice in this region", config.url),
            ));
        }
        list.push(config);
    }
    Ok(list)
}

/// Checks one monitor table.
fn monitor(
    source: &Source<'_>,
    base: &Path,
    what: &str,
    raw: &RawMonitor,
) -> Result<MonitorConfig, ConfigError> {
    let url = probe_url(raw.url.as_ref())
        .map_err(|why| source.invalid(&raw.url, format_args!("{what}.url: {why}")))?;
    let http_only = |key: &str, present: bool, line: &dyn Fn(&str) -> ConfigError| {
        if present && matches!(url, ProbeUrl::Tcp { .. }) {
            Err(line(&format!(
                "{what}.{key} applies to http:// and https:// monitors only"
            )))
        } else {
            Ok(())
        }
    };
    let at_url = |message: &str| source.invalid(&raw.url, message);
    http_only("host", raw.host.is_some(), &at_url)?;
    http_only("expect_status", raw.expect_status.is_some(), &at_url)?;
    http_only("expect_body", raw.expect_body.is_some(), &at_url)?;
    let https = matches!(&url, ProbeUrl::Http(url) if url.scheme() == "https");
    if !https && (raw.ca_file.is_some() || raw.insecure == Some(true)) {
        return Err(at_url(&format!(
            "{what}: ca_file and insecure apply to https:// monitors only"
        )));
    }
    if raw.ca_file.is_some() && raw.insecure == Some(true) {
        return Err(at_url(&format!(
            "{what}: ca_file and insecure = true contradict each other; keep one"
        )));
    }
    let host = match &raw.host {
        None => None,
        Some(host) => {
            let text = host.as_ref().trim_end_matches('.').to_ascii_lowercase();
            let valid = !text.is_empty()
                && text.len() <= 253
                && text.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if !valid {
                return Err(source.invalid(
                    host,
                    format_args!("{what}.host: {:?} is not a host name", host.as_ref()),
                ));
            }
            Some(text)
        }
    };
    let duration = |value: &Spanned<String>, key: &str| -> Result<Duration, ConfigError> {
        parse_duration(value.as_ref())
            .map_err(|err| source.invalid(value, format_args!("{what}.{key}: {err}")))
    };
    let interval = match raw
        .interval
        .as_ref()
        .map(|spanned| duration(spanned, "interval").map(|value| (value, spanned)))
        .transpose()?
    {
        None => DEFAULT_INTERVAL,
        Some((interval, spanned)) => {
            if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
                return Err(
                    source.invalid(spanned, format_args!("{what}.interval must be 100ms to 1h"))
                );
            }
            interval
        }
    };
    let timeout = match raw
        .timeout
        .as_ref()
        .map(|spanned| duration(spanned, "timeout").map(|value| (value, spanned)))
        .transpose()?
    {
        None => DEFAULT_TIMEOUT.min(interval),
        Some((timeout, spanned)) => {
            if timeout.is_zero() || timeout > interval {
                return Err(source.invalid(
                    spanned,
                    format_args!(
                        "{what}.timeout must be above zero and at most the interval ({} ms)",
                        interval.as_millis()
                    ),
                ));
            }
            timeout
        }
    };
    let threshold = |value: &Option<Spanned<u64>>, key: &str| match value {
        None => Ok(DEFAULT_THRESHOLD),
        Some(spanned) => match *spanned.as_ref() {
            n @ 1..=MAX_THRESHOLD => Ok(n as u32),
            n => Err(source.invalid(
                spanned,
                format_args!("{what}.{key} = {n} is out of range: use 1 to {MAX_THRESHOLD}"),
            )),
        },
    };
    let expect_status = expect_status(source, what, raw.expect_status.as_ref())?;
    let capacity_from_pool = match &raw.capacity_from {
        None => false,
        Some(spanned) if spanned.as_ref() == "pool" => {
            if matches!(url, ProbeUrl::Tcp { .. }) {
                return Err(source.invalid(
                    spanned,
                    format_args!(
                        "{what}.capacity_from applies to http:// and https:// monitors only"
                    ),
                ));
            }
            true
        }
        Some(spanned) => {
            return Err(source.invalid(
                spanned,
                format_args!(
                    "{what}.capacity_from = {:?}: the only source is \"pool\" (a Meridian pool's health endpoint)",
                    spanned.as_ref()
                ),
            ));
        }
    };
    let expect_body = match &raw.expect_body {
        Some(body) if body.as_ref().is_empty() => {
            return Err(source.invalid(
                body,
                format_args!("{what}.expect_body is empty: leave it out to ignore the body"),
            ));
        }
        body => body.as_ref().map(|body| body.as_ref().clone()),
    };
    Ok(MonitorConfig {
        url,
        host,
        interval,
        timeout,
        rise: threshold(&raw.rise, "rise")?,
        fall: threshold(&raw.fall, "fall")?,
        expect_status,
        expect_body,
        ca_file: match &raw.ca_file {
            None => None,
            Some(spanned) => {
                let path = base.join(spanned.as_ref());
                let text = std::fs::read_to_string(&path).map_err(|err| {
                    source.invalid(
                        spanned,
                        format_args!("{what}.ca_file: cannot read {}: {err}", path.display()),
                    )
                })?;
                if !text.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(source.invalid(
                        spanned,
                        format_args!(
                            "{what}.ca_file: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                            path.display()
                        ),
                    ));
                }
                Some(path)
            }
        },
        insecure: raw.insecure.unwrap_or(false),
        capacity_from_pool,
    })
}

/// Reads `http://...`, `https://...` or `tcp://host:port`.
fn probe_url(text: &str) -> Result<ProbeUrl, String> {
    if let Some(rest) = text.strip_prefix("tcp://") {
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} needs a port: tcp://host:port"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port
            .parse()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| format!("{text:?} has no valid port"))?;
        if host.is_empty() || host.contains(['/', ' ']) {
            return Err(format!("{text:?} has no valid host"));
        }
        return Ok(ProbeUrl::Tcp {
            host: host.to_string(),
            port,
        });
    }
    let url = reqwest::Url::parse(text).map_err(|err| format!("{text:?} is not a URL: {err}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(ProbeUrl::Http(url)),
        "http" | "https" => Err(format!("{text:?} has no host")),
        scheme => Err(format!(
            "scheme {scheme:?} is not supported: use http://, https:// or tcp://host:port"
        )),
    }
}

/// Checks `expect_status` of the check `what`: codes and classes; absent means `["2xx"]`.
pub(super) fn expect_status(
    source: &Source<'_>,
    what: &str,
    raw: Option<&Spanned<Vec<toml::Value>>>,
) -> Result<Vec<StatusRange>, ConfigError> {
    let Some(spanned) = raw else {
        return Ok(vec![StatusRange {
            low: 200,
            high: 299,
        }]);
    };
    if spanned.as_ref().is_empty() {
        return Err(source.invalid(
            spanned,
            format_args!("{what}.expect_status is empty: leave it out for 2xx"),
        ));
    }
    spanned
        .as_ref()
        .iter()
        .map(|value| {
            status_range(value).ok_or_else(|| {
                source.invalid(
                    spanned,
                    format_args!(
                        "{what}.expect_status: {value} is not a status: write a code such as 301 \
                         or a class such as \"2xx\""
                    ),
                )
            })
        })
        .collect()
}

/// Reads `"2xx"` or `301`.
fn status_range(value: &toml::Value) -> Option<StatusRange> {
    match value {
        toml::Value::Integer(code @ 100..=599) => Some(StatusRange {
            low: *code as u16,
            high: *code as u16,
        }),
        toml::Value::String(class) => match class.to_ascii_lowercase().as_bytes() {
            [digit @ b'1'..=b'5', b'x', b'x'] => {
                let low = u16::from(digit - b'0') * 100;
                Some(StatusRange {
                    low,
                    high: low + 99,
                })
            }
            _ => class
                .parse::<u16>()
                .ok()
                .filter(|code| (100..=599).contains(code))
                .map(|code| StatusRange {
                    low: code,
                    high: code,
                }),
        },
        _ => None,
    }
}

/// Checks `[regions.NAME.health]` for a region with `monitors` monitors.
pub(super) fn region_health(
    source: &Source<'_>,
    region: &str,
    raw: Option<&Spanned<RawRegionHealth>>,
    monitors: usize,
) -> Result<HealthConfig, ConfigError> {
    let mut config = HealthConfig::default();
    let Some(raw) = raw else {
        return Ok(config);
    };
    if let Some(require) = &raw.as_ref().require {
        config.require = match require.as_ref() {
            toml::Value::String(word) if word == "all" => Require::All,
            toml::Value::String(word) if word == "any" => Require::Any,
            toml::Value::Integer(n) if *n >= 1 && (*n as u64) <= monitors as u64 => {
                Require::AtLeast(*n as u32)
            }
            toml::Value::Integer(n) => {
                return Err(source.invalid(
                    require,
                    format_args!(
                        "regions.{region}.health.require = {n}, but the region has {monitors} \
                         monitor(s): use 1 to {monitors}, \"all\" or \"any\""
                    ),
                ));
            }
            _ => {
                return Err(source.invalid(
                    require,
                    format_args!(
                        "regions.{region}.health.require must be \"all\", \"any\" or a number of monitors"
                    ),
                ));
            }
        };
    }
    if let Some(initial) = &raw.as_ref().initial {
        config.initial_up = match initial.as_ref().as_str() {
            "up" => true,
            "down" => false,
            other => {
                return Err(source.invalid(
                    initial,
                    format_args!(
                        "regions.{region}.health.initial = {other:?}: use \"up\" or \"down\""
                    ),
                ));
            }
        };
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, ConfigError};

    /// The `[dns]` section every test config starts with.
    const DNS: &str = "[dns]\nlisten = [\"127.0.0.1:53\"]\nzones_dir = \"zones\"\n";

    /// Parses `DNS` + `text` as `dir/meridian.toml`.
    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{DNS}{text}"), Path::new("dir/meridian.toml"))
    }

    /// Asserts that `text` fails with exactly `expect`.
    fn check_err(text: &str, expect: &str) {
        let err = parse(text).expect_err("config should be rejected");
        assert_eq!(err.to_string(), expect);
    }

    #[test]
    fn monitors_and_health_are_read() {
        let config = parse(
            r#"
[regions.eu-west]
location = [53.35, -6.26]
capacity = 1000
[[regions.eu-west.monitor]]
url = "https://lb.eu-west.example.net/health"
host = "WWW.example.com."
interval = "2s"
timeout = "1s"
rise = 3
fall = 4
expect_status = ["2xx", 301]
expect_body = "ok"
[[regions.eu-west.monitor]]
url = "tcp://[2001:db8::1]:443"
interval = "500ms"
[regions.eu-west.health]
require = 1
initial = "down"
"#,
        )
        .unwrap();
        let region = &config.regions[0];
        assert_eq!(region.capacity, Some(1000));
        assert_eq!(
            region.health,
            HealthConfig {
                require: Require::AtLeast(1),
                initial_up: false
            }
        );
        let http = &region.monitors[0];
        assert_eq!(
            http.url.to_string(),
            "https://lb.eu-west.example.net/health"
        );
        assert_eq!(http.host.as_deref(), Some("www.example.com"));
        assert_eq!(
            (http.interval, http.timeout, http.rise, http.fall),
            (Duration::from_secs(2), Duration::from_secs(1), 3, 4)
        );
        assert_eq!(
            http.expect_status,
            [
                StatusRange {
                    low: 200,
                    high: 299
                },
                StatusRange {
                    low: 301,
                    high: 301
                }
            ]
        );
        assert_eq!(http.expect_body.as_deref(), Some("ok"));
        let tcp = &region.monitors[1];
        assert_eq!(
            tcp.url,
            ProbeUrl::Tcp {
                host: "2001:db8::1".into(),
                port: 443
            }
        );
        assert_eq!(tcp.url.to_string(), "tcp://[2001:db8::1]:443");
        assert_eq!(
            (tcp.interval, tcp.timeout, tcp.rise, tcp.fall),
            (Duration::from_millis(500), Duration::from_millis(500), 2, 2),
            "defaults: timeout capped at the interval, rise and fall 2"
        );
        assert_eq!(
            tcp.expect_status,
            [StatusRange {
                low: 200,
                high: 299
            }]
        );
    }

    #[test]
    fn regions_without_monitors_get_defaults() {
        let config = parse("[regions.a]\n").unwrap();
        assert!(config.regions[0].monitors.is_empty());
        assert_eq!(config.regions[0].health, HealthConfig::default());
        assert_eq!(config.regions[0].capacity, None);
    }

    #[test]
    fn bad_monitors_name_their_line() {
        let cases = [
            (
                "[[regions.a.monitor]]\nurl = \"ftp://x/\"\n",
                "dir/meridian.toml:6: regions.a.monitor[0].url: scheme \"ftp\" is not supported: use http://, \
                 https:// or tcp://host:port",
            ),
            (
                "[[regions.a.monitor]]\nurl = \"tcp://lb\"\n",
                "dir/meridian.toml:6: regions.a.monitor[0].url: \"tcp://lb\" needs a port: tcp://host:port",
            ),
            (
                "[[regions.a.monitor]]\nurl = \"tcp://lb:80\"\nexpect_body = \"ok\"\n",
                "dir/meridian.toml:6: regions.a.monitor[0].expect_body applies to http:// and https:// monitors only",
            ),
            (
                "[[regions.a.monitor]]\nurl = \"http://lb/\"\ninterval = \"1s\"\ntimeout = \"2s\"\n",
                "dir/meridian.toml:8: regions.a.monitor[0].timeout must be above zero and at most the interval (1000 ms)",
            ),
            (
                "[[regions.a.monitor]]\nurl = \"http://lb/\"\ninterval = \"10ms\"\n",
                "dir/meridian.toml:7: regions.a.monitor[0].interval must be 100ms to 1h",
            ),
            (
                "[[regions.a.monitor]]\nurl = \"http://lb/\"\nfall = 0\n",
                "dir/meridian.toml:7: regions.a.monitor[0].fall = 0 is out of range: use 1 to 100",
            ),
            (
                "[[regions.a.monitor]]\nurl = \"http://lb/\"\nexpect_status = [\"2xy\"]\n",
                "dir/meridian.toml:7: regions.a.monitor[0].expect_status: \"2xy\" is not a status: write a code \
                 such as 301 or a class such as \"2xx\"",
            ),
            (
                "[[regions.a.monitor]]\nurl = \"http://lb/\"\ninsecure = true\n",
                "dir/meridian.toml:6: regions.a.monitor[0]: ca_file and insecure apply to https:// monitors only",
            ),
            (
                "[[regions.a.monitor]]\nurl = \"https://lb/\"\nca_file = \"missing.pem\"\n",
                "dir/meridian.toml:7: regions.a.monitor[0].ca_file: cannot read dir/missing.pem: No such file \
                 or directory (os error 2)",
            ),
            (
                "[[regions.a.monitor]]\nurl = \"http://lb/\"\n[[regions.a.monitor]]\nurl = \"http://lb/\"\n",
                "dir/meridian.toml:8: regions.a.monitor[1]: http://lb/ is monitored twice in this region",
            ),
            (
                "[[regions.a.monitor]]\nurl = \"http://lb/\"\n[regions.a.health]\nrequire = 2\n",
                "dir/meridian.toml:8: regions.a.health.require = 2, but the region has 1 monitor(s): use 1 to 1, \
                 \"all\" or \"any\"",
            ),
            (
                "[regions.a.health]\ninitial = \"maybe\"\n",
                "dir/meridian.toml:6: regions.a.health.initial = \"maybe\": use \"up\" or \"down\"",
            ),
            (
                "[[regions.a.monitor]]\nurl = \"tcp://lb:80\"\ncapacity_from = \"pool\"\n",
                "dir/meridian.toml:7: regions.a.monitor[0].capacity_from applies to http:// and https:// monitors only",
            ),
            (
                "[[regions.a.monitor]]\nurl = \"http://lb/\"\ncapacity_from = \"backends\"\n",
                "dir/meridian.toml:7: regions.a.monitor[0].capacity_from = \"backends\": the only source is \"pool\" \
                 (a Meridian pool's health endpoint)",
            ),
            (
                "capacity = 0\n",
                "dir/meridian.toml:5: regions.a.capacity = 0 is out of range: use 1 to 1000000000",
            ),
        ];
        for (text, expect) in cases {
            check_err(&format!("[regions.a]\n{text}"), expect);
        }
        let err =
            parse("[regions.a]\n[[regions.a.monitor]]\nurl = \"http://lb/\"\nintreval = \"1s\"\n")
                .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `intreval`"),
            "{err}"
        );
    }

    #[test]
    fn ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
        let text = format!(
            "{DNS}[regions.a]\n[[regions.a.monitor]]\nurl = \"https://lb/\"\nca_file = \"ca.pem\"\n"
        );
        let err = Config::parse(&text, &dir.path().join("meridian.toml")).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
            "{err}"
        );
    }

    #[test]
    fn status_ranges() {
        let range = |value: toml::Value| status_range(&value);
        assert_eq!(
            range(toml::Value::String("5XX".into())),
            Some(StatusRange {
                low: 500,
                high: 599
            })
        );
        assert_eq!(
            range(toml::Value::String("204".into())),
            Some(StatusRange {
                low: 204,
                high: 204
            })
        );
        assert_eq!(range(toml::Value::Integer(99)), None);
        assert_eq!(range(toml::Value::Integer(600)), None);
        assert_eq!(range(toml::Value::String("6xx".into())), None);
        assert!(
            StatusRange {
                low: 200,
                high: 299
            }
            .contains(204)
        );
        assert_eq!(
            StatusRange {
                low: 200,
                high: 299
            }
            .to_string(),
            "2xx"
        );
    }
}
