//! The `[geo]`, `[regions.*]`, `[maps.*]` and `[services.*]` sections: where clients are, which
//! regions may serve them, and what each GSLB name answers per region.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::health::{HealthConfig, MonitorConfig};
use super::raw::{RawGeo, RawRegion, RawService};
use super::service::ServiceConfig;
use super::{ConfigError, Source};

/// Default ECS SOURCE cap for IPv4: a /24 is what resolvers send and what geo data resolves.
const DEFAULT_ECS_MAX_SOURCE_V4: u8 = 24;
/// Default ECS SOURCE cap for IPv6 (RFC 7871 section 11.1 recommends /56).
const DEFAULT_ECS_MAX_SOURCE_V6: u8 = 56;
/// Continent codes as MaxMind writes them.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// Index of a region in [`super::Config::regions`].
pub type RegionId = u16;

/// The `[geo]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoConfig {
    /// MaxMind DB files: City or Country, and optionally ASN.
    pub databases: Vec<PathBuf>,
    /// CSV of network -> region list overrides, highest precedence.
    pub nets: Option<PathBuf>,
    /// Whether to use EDNS Client Subnet when a query carries it.
    pub ecs: bool,
    /// Longest IPv4 ECS source prefix used; longer ones are truncated before lookup.
    pub ecs_max_source_v4: u8,
    /// Longest IPv6 ECS source prefix used.
    pub ecs_max_source_v6: u8,
}

impl Default for GeoConfig {
    fn default() -> GeoConfig {
        GeoConfig {
            databases: Vec::new(),
            nets: None,
            ecs: true,
            ecs_max_source_v4: DEFAULT_ECS_MAX_SOURCE_V4,
            ecs_max_source_v6: DEFAULT_ECS_MAX_SOURCE_V6,
        }
    }
}

/// A region: a place that can serve traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Its name, as written in the config.
    pub name: String,
    /// Latitude and longitude in degrees, for distance ordering.
    pub location: Option<(f64, f64)>,
    /// Relative capacity, for spilling a lost region's clients in proportion.
    pub capacity: Option<u32>,
    /// Probes of the region's load balancer.
    pub monitors: Vec<MonitorConfig>,
    /// How the monitors combine into the region's health.
    pub health: HealthConfig,
}

/// A location pattern in a map: continent, then optionally country, subdivision and city.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocationPath {
    /// Continent code (`EU`).
    pub continent: String,
    /// ISO 3166-1 country code (`GB`), uppercase.
    pub country: Option<String>,
    /// ISO 3166-2 subdivision code without the country (`ENG`), uppercase.
    pub subdivision: Option<String>,
    /// City name, lowercase.
    pub city: Option<String>,
}

impl fmt::Display for LocationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.continent)?;
        for part in [&self.country, &self.subdivision, &self.city]
            .into_iter()
            .flatten()
        {
            write!(f, "/{part}")?;
        }
        Ok(())
    }
}

/// A map: how client locations turn into ordered region lists.
#[derive(Debug, Clone, PartialEq)]
pub struct MapConfig {
    /// Its name.
    pub name: String,
    /// Regions for clients whose location is unknown or matches nothing.
    pub default: Vec<RegionId>,
    /// Regions per location pattern; the most specific match wins.
    pub locations: BTreeMap<LocationPath, Vec<RegionId>>,
    /// Regions per autonomous system number; above location rules.
    pub asn: BTreeMap<u32, Vec<RegionId>>,
    /// Order regions by great-circle distance for located clients that no pattern matches.
    pub auto: bool,
    /// Ignore ECS for this map: steer by the resolver's address only.
    pub ignore_ecs: bool,
}

/// The validated geo sections: `[geo]`, regions, maps and services.
pub(super) type GeoSections = (GeoConfig, Vec<Region>, Vec<MapConfig>, Vec<ServiceConfig>);

/// Checks the geo sections against each other.
pub(super) fn geo_sections(
    source: &Source<'_>,
    base: &Path,
    geo: Option<RawGeo>,
    regions: BTreeMap<String, Spanned<RawRegion>>,
    maps: BTreeMap<String, Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    services: BTreeMap<String, Spanned<RawService>>,
) -> Result<GeoSections, ConfigError> {
    let geo = geo_config(source, base, geo)?;
    let mut region_list = Vec::with_capacity(regions.len());
    for (name, raw) in &regions {
        region_list.push(region(source, base, name, raw)?);
    }
    let names: Vec<&str> = region_list
        .iter()
        .map(|region| region.name.as_str())
        .collect();
    let mut map_list = Vec::with_capacity(maps.len());
    for (name, raw) in &maps {
        map_list.push(map(source, name, raw, &names, &region_list)?);
    }
    let mut service_list = Vec::with_capacity(services.len());
    for (name, raw) in &services {
        service_list.push(super::service::service(
            source,
            name,
            raw,
            &names,
            &region_list,
            &map_list,
        )?);
    }
    Ok((geo, region_list, map_list, service_list))
}

/// Checks `[geo]`.
fn geo_config(
    source: &Source<'_>,
    base: &Path,
    raw: Option<RawGeo>,
) -> Result<GeoConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(GeoConfig::default());
    };
    let cap = |value: &Option<Spanned<u64>>, key: &str, max: u8, default: u8| match value {
        None => Ok(default),
        Some(spanned) => match *spanned.as_ref() {
            n @ 0..=128 if n <= u64::from(max) => Ok(n as u8),
            n => Err(source.invalid(
                spanned,
                format_args!("geo.{key} = {n} is out of range: use 0 to {max}"),
            )),
        },
    };
    Ok(GeoConfig {
        databases: raw
            .databases
            .iter()
            .map(|path| base.join(path.as_ref()))
            .collect(),
        nets: raw.nets.as_ref().map(|path| base.join(path.as_ref())),
        ecs: raw.ecs.unwrap_or(true),
        ecs_max_source_v4: cap(
            &raw.ecs_max_source_v4,
            "ecs_max_source_v4",
            32,
            DEFAULT_ECS_MAX_SOURCE_V4,
        )?,
        ecs_max_source_v6: cap(
            &raw.ecs_max_source_v6,
            "ecs_max_source_v6",
            128,
            DEFAULT_ECS_MAX_SOURCE_V6,
        )?,
    })
}

/// Checks one `[regions.NAME]`.
fn region(
    source: &Source<'_>,
    base: &Path,
    name: &str,
    raw: &Spanned<RawRegion>,
) -> Result<Region, ConfigError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(source.invalid(
            raw,
            format_args!(
                "region name {name:?}: use lowercase letters, digits and '-' (e.g. \"eu-west\")"
            ),
        ));
    }
    if name == crate::telemetry::NO_REGION {
        return Err(source.invalid(
            raw,
            format_args!(
                "region name {name:?} is reserved (metrics count answers without a region under it)"
            ),
        ));
    }
    let location = match &raw.as_ref().location {
        None => None,
        Some(spanned) => match spanned.as_ref()[..] {
            [lat, lon] if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) => {
                Some((lat, lon))
            }
            _ => {
                return Err(source.invalid(
                    spanned,
                    format_args!(
                        "regions.{name}.location must be [latitude, longitude] with latitude -90..90 and longitude -180..180"
                    ),
                ));
            }
        },
    };
    let capacity = match &raw.as_ref().capacity {
        None => None,
        Some(spanned) => match *spanned.as_ref() {
            n @ 1..=1_000_000_000 => Some(n as u32),
            n => {
                return Err(source.invalid(
                    spanned,
                    format_args!(
                        "regions.{name}.capacity = {n} is out of range: use 1 to 1000000000"
                    ),
                ));
            }
        },
    };
    let monitors = super::health::monitors(source, base, name, &raw.as_ref().monitor)?;
    let health =
        super::health::region_health(source, name, raw.as_ref().health.as_ref(), monitors.len())?;
    Ok(Region {
        name: name.to_string(),
        location,
        capacity,
        monitors,
        health,
    })
}

/// Resolves a list of region names from a TOML value.
pub(super) fn region_ids(
    source: &Source<'_>,
    value: &Spanned<toml::Value>,
    what: &str,
    names: &[&str],
) -> Result<Vec<RegionId>, ConfigError> {
    let toml::Value::Array(items) = value.as_ref() else {
        return Err(source.invalid(value, format_args!("{what} must be a list of region names")));
    };
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let Some(name) = item.as_str() else {
            return Err(
                source.invalid(value, format_args!("{what} must be a list of region names"))
            );
        };
        let Some(id) = names.iter().position(|known| *known == name) else {
            return Err(source.invalid(
                value,
                format_args!(
                    "{what}: unknown region {name:?} (known regions: {})",
                    names.join(", ")
                ),
            ));
        };
        let id = id as RegionId;
        if ids.contains(&id) {
            return Err(source.invalid(
                value,
                format_args!("{what}: region {name:?} is listed twice"),
            ));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Checks one `[maps.NAME]`.
fn map(
    source: &Source<'_>,
    name: &str,
    raw: &Spanned<BTreeMap<String, Spanned<toml::Value>>>,
    names: &[&str],
    regions: &[Region],
) -> Result<MapConfig, ConfigError> {
    let mut default = None;
    let mut config = MapConfig {
        name: name.to_string(),
        default: Vec::new(),
        locations: BTreeMap::new(),
        asn: BTreeMap::new(),
        auto: false,
        ignore_ecs: false,
    };
    let flag = |value: &Spanned<toml::Value>, key: &str| {
        value.as_ref().as_bool().ok_or_else(|| {
            source.invalid(
                value,
                format_args!("maps.{name}.{key} must be true or false"),
            )
        })
    };
    for (key, value) in raw.as_ref() {
        match key.as_str() {
            "default" => {
                default = Some(region_ids(
                    source,
                    value,
                    &format!("maps.{name}.default"),
                    names,
                )?)
            }
            "auto" => config.auto = flag(value, "auto")?,
            "ignore_ecs" => config.ignore_ecs = flag(value, "ignore_ecs")?,
            "asn" => {
                let toml::Value::Table(rules) = value.as_ref() else {
                    return Err(source.invalid(
                        value,
                        format_args!("maps.{name}.asn must be a table: asn.64500 = [\"region\"]"),
                    ));
                };
                for (number, regions) in rules {
                    let asn: u32 = number.parse().map_err(|_| {
                        source.invalid(
                            value,
                            format_args!("maps.{name}.asn: {number:?} is not an AS number"),
                        )
                    })?;
                    let spanned = Spanned::new(value.span(), regions.clone());
                    let ids =
                        region_ids(source, &spanned, &format!("maps.{name}.asn.{asn}"), names)?;
                    config.asn.insert(asn, ids);
                }
            }
            path => {
                let path = location_path(path).map_err(|why| {
                    source.invalid(
                        value,
                        format_args!("maps.{name}: {path:?} is not a location path: {why}"),
                    )
                })?;
                let ids = region_ids(source, value, &format!("maps.{name}.\"{path}\""), names)?;
                config.locations.insert(path, ids);
            }
        }
    }
    config.default = default.ok_or_else(|| {
        source.invalid(
            raw,
            format_args!("maps.{name} has no default: add default = [\"region\", ...]"),
        )
    })?;
    if config.default.is_empty() {
        return Err(source.invalid(
            raw,
            format_args!("maps.{name}.default must name at least one region"),
        ));
    }
    if config.auto
        && let Some(region) = regions.iter().find(|region| region.location.is_none())
    {
        let region = &region.name;
        return Err(source.invalid(
            raw,
            format_args!(
                "maps.{name}.auto orders regions by distance, but region {region} has no \
                 location: add regions.{region}.location = [lat, lon]"
            ),
        ));
    }
    Ok(config)
}

/// Parses `EU`, `EU/GB`, `NA/US/WA` or `NA/US/WA/Seattle`.
pub fn location_path(text: &str) -> Result<LocationPath, &'static str> {
    let mut parts = text.split('/');
    let continent = parts.next().unwrap_or_default().to_ascii_uppercase();
    if !CONTINENTS.contains(&continent.as_str()) {
        return Err("it must start with a continent code: AF, AN, AS, EU, NA, OC or SA");
    }
    let country = parts.next().map(str::to_ascii_uppercase);
    if country
        .as_ref()
        .is_some_and(|code| code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err("the country must be a two-letter ISO 3166-1 code");
    }
    let subdivision = parts.next().map(str::to_ascii_uppercase);
    if subdivision.as_ref().is_some_and(|code| {
        code.is_empty() || code.len() > 3 || !code.bytes().all(|b| b.is_ascii_alphanumeric())
    }) {
        return Err("the subdivision must be an ISO 3166-2 code without the country, e.g. WA");
    }
    let city = parts.next().map(str::to_lowercase);
    if city.as_ref().is_some_and(String::is_empty) || parts.next().is_some() {
        return Err("use continent/country/subdivision/city at most");
    }
    Ok(LocationPath {
        continent,
        country,
        subdivision,
        city,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hickory_proto::rr::Name;

    use super::*;
    use crate::config::{Config, ServiceAnswer};

    /// The `[dns]` section every test config starts with.
    const DNS: &str = "[dns]\nlisten = [\"127.0.0.1:53\"]\nzones_dir = \"zones\"\n";

    /// A full geo config as the README documents it.
    const FULL: &str = r#"
[geo]
databases = ["geodata/City.mmdb", "geodata/ASN.mmdb"]
nets = "geodata/nets.csv"
ecs = true
ecs_max_source_v4 = 22
ecs_max_source_v6 = 48

[regions.us-east]
location = [39.0, -77.5]
[regions.eu-west]
location = [53.35, -6.26]
[regions.ap-south]
location = [19.07, 72.88]

[maps.world]
default = ["us-east", "eu-west", "ap-south"]
"EU" = ["eu-west", "us-east"]
"NA/US/WA" = ["us-east", "eu-west"]
"eu/gb/eng/London" = ["eu-west"]
auto = true
asn.64500 = ["eu-west"]

[services."WWW.example.com"]
map = "world"
ttl = 30
answers.us-east = ["192.0.2.10", "2001:db8::10"]
answers.eu-west = ["192.0.2.20"]
answers.ap-south = { cname = "ap.lb.example.net." }
"#;

    /// Parses `DNS` + `text` as `dir/meridian.toml`.
    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{DNS}{text}"), Path::new("dir/meridian.toml"))
    }

    /// Asserts that `DNS` + `text` fails with exactly `expect`.
    fn check_err(text: &str, expect: &str) {
        let err = parse(text).expect_err("config should be rejected");
        assert_eq!(err.to_string(), expect);
    }

    #[test]
    fn full_geo_config_is_read() {
        let config = parse(FULL).unwrap();
        assert_eq!(
            config.geo.databases,
            [
                Path::new("dir/geodata/City.mmdb"),
                Path::new("dir/geodata/ASN.mmdb")
            ]
        );
        assert_eq!(
            config.geo.nets.as_deref(),
            Some(Path::new("dir/geodata/nets.csv"))
        );
        assert_eq!(
            (
                config.geo.ecs,
                config.geo.ecs_max_source_v4,
                config.geo.ecs_max_source_v6
            ),
            (true, 22, 48)
        );
        let names: Vec<&str> = config
            .regions
            .iter()
            .map(|region| region.name.as_str())
            .collect();
        assert_eq!(names, ["ap-south", "eu-west", "us-east"]);
        let map = &config.maps[0];
        assert_eq!(map.default, [2, 1, 0]);
        assert!(map.auto && !map.ignore_ecs);
        assert_eq!(map.asn[&64500], [1]);
        let paths: Vec<String> = map.locations.keys().map(ToString::to_string).collect();
        assert_eq!(paths, ["EU", "EU/GB/ENG/london", "NA/US/WA"]);
        let service = &config.services[0];
        assert_eq!(service.name.to_string(), "www.example.com.");
        assert_eq!(service.ttl, 30);
        assert_eq!(
            service.answers[&2],
            ServiceAnswer::Addresses(vec![
                "192.0.2.10".parse().unwrap(),
                "2001:db8::10".parse().unwrap()
            ])
        );
        assert_eq!(
            service.answers[&0],
            ServiceAnswer::Cname(Name::from_ascii("ap.lb.example.net.").unwrap())
        );
    }

    #[test]
    fn geo_sections_are_optional() {
        let config = parse("").unwrap();
        assert_eq!(config.geo, GeoConfig::default());
        assert!(config.regions.is_empty() && config.maps.is_empty() && config.services.is_empty());
    }

    #[test]
    fn unknown_keys_in_geo_sections_are_errors() {
        let err = parse("[geo]\ndatabase = []\n").unwrap_err().to_string();
        assert!(
            err.starts_with("dir/meridian.toml:5: unknown field `database`"),
            "{err}"
        );
        let err = parse("[regions.a]\nlocaton = [1.0, 2.0]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("dir/meridian.toml:5: unknown field `locaton`"),
            "{err}"
        );
        check_err(
            "[regions.a]\n[maps.m]\ndefault = [\"a\"]\nEurope = [\"a\"]\n",
            "dir/meridian.toml:7: maps.m: \"Europe\" is not a location path: it must start with a continent \
             code: AF, AN, AS, EU, NA, OC or SA",
        );
    }

    #[test]
    fn bad_values_name_their_line() {
        check_err(
            "[regions.EU]\n",
            "dir/meridian.toml:4: region name \"EU\": use lowercase letters, digits and '-' (e.g. \"eu-west\")",
        );
        check_err(
            "[regions.a]\nlocation = [91.0, 0.0]\n",
            "dir/meridian.toml:5: regions.a.location must be [latitude, longitude] with latitude -90..90 and \
             longitude -180..180",
        );
        check_err(
            "[regions.a]\n[maps.m]\ndefault = [\"a\", \"b\"]\n",
            "dir/meridian.toml:6: maps.m.default: unknown region \"b\" (known regions: a)",
        );
        check_err(
            "[regions.a]\n[maps.m]\n\"EU/GBR\" = [\"a\"]\ndefault = [\"a\"]\n",
            "dir/meridian.toml:6: maps.m: \"EU/GBR\" is not a location path: the country must be a two-letter \
             ISO 3166-1 code",
        );
        check_err(
            "[regions.a]\n[maps.m]\n\"EU\" = [\"a\"]\n",
            "dir/meridian.toml:5: maps.m has no default: add default = [\"region\", ...]",
        );
        check_err(
            "[regions.a]\n[maps.m]\ndefault = [\"a\"]\nauto = true\n",
            "dir/meridian.toml:5: maps.m.auto orders regions by distance, but region a has no location: add \
             regions.a.location = [lat, lon]",
        );
        check_err(
            "[regions.a]\n[maps.m]\ndefault = [\"a\"]\n[services.\"x.example.com\"]\nmap = \"n\"\nanswers.a = [\"192.0.2.1\"]\n",
            "dir/meridian.toml:8: services.\"x.example.com\".map: unknown map \"n\" (known maps: m)",
        );
        check_err(
            "[regions.a]\n[maps.m]\ndefault = [\"a\"]\n[services.\"x.example.com\"]\nmap = \"m\"\nanswers.a = [\"192.0.2.300\"]\n",
            "dir/meridian.toml:9: services.\"x.example.com\".answers.a: \"192.0.2.300\" is not an IP address",
        );
        check_err(
            "[regions.a]\n[maps.m]\ndefault = [\"a\"]\n[services.\"x.example.com\"]\nmap = \"m\"\nanswers.a = { cname = \"relative\" }\n",
            "dir/meridian.toml:9: services.\"x.example.com\".answers.a: cname relative must be absolute (end with '.')",
        );
        check_err(
            "[regions.a]\n[maps.m]\ndefault = [\"a\"]\n[services.\"x.example.com\"]\nmap = \"m\"\nanswers.b = [\"192.0.2.1\"]\n",
            "dir/meridian.toml:9: services.\"x.example.com\".answers.b: unknown region (known regions: a)",
        );
        check_err(
            "[geo]\necs_max_source_v4 = 33\n",
            "dir/meridian.toml:5: geo.ecs_max_source_v4 = 33 is out of range: use 0 to 32",
        );
    }

    #[test]
    fn location_paths() {
        let path = location_path("na/us/wa/Seattle").unwrap();
        assert_eq!(path.to_string(), "NA/US/WA/seattle");
        assert!(location_path("EU/GB/ENG/London/x").is_err());
        assert!(location_path("EU//ENG").is_err());
        assert!(location_path("").is_err());
    }
}
