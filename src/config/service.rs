//! `[services."NAME"]`: the GSLB names, what each answers per region, and how a region is
//! chosen.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;
use toml::Spanned;

use super::geo::{MapConfig, Region, RegionId};
use super::raw::RawService;
use super::{ConfigError, Source};

/// Default TTL of GSLB answers: short, so failover reaches clients quickly.
const DEFAULT_SERVICE_TTL: u32 = 30;

/// What a GSLB name answers when a region is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAnswer {
    /// A and AAAA records.
    Addresses(Vec<IpAddr>),
    /// A CNAME to another name.
    Cname(Name),
}

/// A GSLB name.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// The name, absolute and lowercase.
    pub name: Name,
    /// Index of its map in [`super::Config::maps`]; required by `geo`, optional for `failover`
    /// (it orders the regions of a tier), absent for `weighted`.
    pub map: Option<usize>,
    /// How a region is chosen.
    pub policy: Policy,
    /// TTL of its answers.
    pub ttl: u32,
    /// TTL while any of its regions is down, draining or in a drill.
    pub ttl_degraded: u32,
    /// What to answer when every region is down.
    pub all_down: AllDown,
    /// The answer of `all_down = "fallback"`.
    pub fallback: Option<ServiceAnswer>,
    /// Answers per region.
    pub answers: BTreeMap<RegionId, ServiceAnswer>,
    /// Config file line of the `[services."NAME"]` table, for errors found later.
    pub line: usize,
}

/// How a service chooses among its regions.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// The first healthy region of the client's map list.
    Geo {
        /// How many of the best healthy regions answer together.
        spread: u8,
        /// Where the clients of a lost region go.
        spill: Spill,
    },
    /// Regions in proportion to their weights, stable per client subnet.
    Weighted {
        /// Weight per region.
        weights: BTreeMap<RegionId, u32>,
        /// How many regions answer together.
        max_answers: u8,
    },
    /// Tiers: the first tier with a healthy region answers.
    Failover {
        /// Active-active primaries first, then standby tiers.
        tiers: Vec<Vec<RegionId>>,
        /// Whether traffic returns to the primaries by itself.
        failback: Failback,
    },
}

/// Where a geo service sends the clients of a region that is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spill {
    /// All to the next healthy region of their list.
    Next,
    /// Over the healthy regions of their list, in proportion to capacity.
    Capacity,
}

/// Whether a failover service returns to its primaries on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failback {
    /// As soon as a primary is healthy again.
    Auto,
    /// Only when an operator clears the failover.
    Manual,
}

/// What a service answers when none of its regions is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllDown {
    /// Answer as if every region were healthy (fail open).
    ServeAll,
    /// Answer with the service's `fallback`.
    Fallback,
    /// NOERROR with no records.
    NoData,
    /// SERVFAIL.
    ServFail,
}

/// Most regions one answer may combine (`spread`, `max_answers`).
pub const MAX_ANSWER_REGIONS: u8 = 8;

/// Checks one `[services."NAME"]`.
pub(super) fn service(
    source: &Source<'_>,
    name: &str,
    raw: &Spanned<RawService>,
    names: &[&str],
    regions: &[Region],
    maps: &[MapConfig],
) -> Result<ServiceConfig, ConfigError> {
    let service = raw.as_ref();
    let mut fqdn = Name::from_ascii(name)
        .map_err(|err| {
            source.invalid(
                raw,
                format_args!("service name {name:?} is not a domain name: {err}"),
            )
        })?
        .to_lowercase();
    fqdn.set_fqdn(true);
    let key = |key: &str| format!("services.\"{name}\".{key}");
    let map = match &service.map {
        None => None,
        Some(spanned) => Some(
            maps.iter()
                .position(|map| map.name == *spanned.as_ref())
                .ok_or_else(|| {
                    let known: Vec<&str> = maps.iter().map(|map| map.name.as_str()).collect();
                    source.invalid(
                        spanned,
                        format_args!(
                            "{}: unknown map {:?} (known maps: {})",
                            key("map"),
                            spanned.as_ref(),
                            known.join(", ")
                        ),
                    )
                })?,
        ),
    };
    let ttl_value = |value: &Option<Spanned<u64>>, what: &str| -> Result<Option<u32>, _> {
        value
            .as_ref()
            .map(|spanned| {
                u32::try_from(*spanned.as_ref())
                    .ok()
                    .filter(|ttl| *ttl <= i32::MAX as u32)
                    .ok_or_else(|| {
                        source.invalid(
                            spanned,
                            format_args!("{} must be 0 to {}", key(what), i32::MAX),
                        )
                    })
            })
            .transpose()
    };
    let ttl = ttl_value(&service.ttl, "ttl")?.unwrap_or(DEFAULT_SERVICE_TTL);
    let ttl_degraded = ttl_value(&service.ttl_degraded, "ttl_degraded")?.unwrap_or(ttl);
    let mut answers = BTreeMap::new();
    for (region, value) in service.answers.as_ref() {
        let what = format!("services.\"{name}\".answers.{region}");
        let Some(id) = names.iter().position(|known| known == region) else {
            return Err(source.invalid(
                value,
                format_args!(
                    "{what}: unknown region (known regions: {})",
                    names.join(", ")
                ),
            ));
        };
        answers.insert(id as RegionId, service_answer(source, value, &what)?);
    }
    if answers.is_empty() {
        return Err(source.invalid(
            &service.answers,
            format_args!("services.\"{name}\" has no answers"),
        ));
    }
    let policy = policy(source, name, service, map, names, regions, &answers)?;
    let (all_down, fallback) = all_down(source, name, raw)?;
    Ok(ServiceConfig {
        name: fqdn,
        map,
        policy,
        ttl,
        ttl_degraded,
        all_down,
        fallback,
        answers,
        line: source.line(raw.span().start),
    })
}

/// Checks the policy keys of a service against its answers and map.
fn policy(
    source: &Source<'_>,
    name: &str,
    service: &RawService,
    map: Option<usize>,
    names: &[&str],
    regions: &[Region],
    answers: &BTreeMap<RegionId, ServiceAnswer>,
) -> Result<Policy, ConfigError> {
    let key = |key: &str| format!("services.\"{name}\".{key}");
    let word = service
        .policy
        .as_ref()
        .map_or("geo", |policy| policy.as_ref().as_str());
    // Keys that belong to another policy are mistakes, not settings to ignore.
    let foreign: [(&str, bool, &[&str]); 6] = [
        ("spread", service.spread.is_some(), &["geo"]),
        ("spill", service.spill.is_some(), &["geo"]),
        ("weights", service.weights.is_some(), &["weighted"]),
        ("max_answers", service.max_answers.is_some(), &["weighted"]),
        ("tiers", service.tiers.is_some(), &["failover"]),
        ("failback", service.failback.is_some(), &["failover"]),
    ];
    let at_policy = |message: String| match &service.policy {
        Some(policy) => source.invalid(policy, message),
        None => source.invalid(&service.answers, message),
    };
    for (field, present, owners) in foreign {
        if present && !owners.contains(&word) {
            return Err(at_policy(format!(
                "{} applies to policy = \"{}\" only (this service's policy is \"{word}\")",
                key(field),
                owners[0]
            )));
        }
    }
    let region_id = |region: &str, spanned_line: &dyn Fn(String) -> ConfigError| {
        names
            .iter()
            .position(|known| *known == region)
            .map(|id| id as RegionId)
            .ok_or_else(|| {
                spanned_line(format!(
                    "unknown region {region:?} (known regions: {})",
                    names.join(", ")
                ))
            })
    };
    let has_cname = answers
        .values()
        .any(|answer| matches!(answer, ServiceAnswer::Cname(_)));
    let count = |value: &Option<Spanned<u64>>, what: &str| -> Result<u8, ConfigError> {
        match value {
            None => Ok(1),
            Some(spanned) => {
                let n = *spanned.as_ref();
                if !(1..=u64::from(MAX_ANSWER_REGIONS)).contains(&n) {
                    return Err(source.invalid(
                        spanned,
                        format_args!(
                            "{} = {n} is out of range: use 1 to {MAX_ANSWER_REGIONS}",
                            key(what)
                        ),
                    ));
                }
                if n > 1 && has_cname {
                    return Err(source.invalid(
                        spanned,
                        format_args!(
                            "{} = {n} combines regions, but a CNAME answer cannot be combined: \
                             use addresses in every region or {} = 1",
                            key(what),
                            what
                        ),
                    ));
                }
                Ok(n as u8)
            }
        }
    };
    let unused = |used: &[RegionId], spanned_line: &dyn Fn(String) -> ConfigError| match answers
        .keys()
        .find(|region| !used.contains(region))
    {
        Some(&region) => Err(spanned_line(format!(
            "services.\"{name}\".answers.{} is never used by the policy: add the region to it or \
                 remove its answers",
            names[usize::from(region)]
        ))),
        None => Ok(()),
    };
    match word {
        "geo" => {
            if map.is_none() {
                return Err(at_policy(format!(
                    "services.\"{name}\" uses policy \"geo\" but has no map: add map = \"NAME\""
                )));
            }
            let spill = match &service.spill {
                None => Spill::Next,
                Some(spanned) => match spanned.as_ref().as_str() {
                    "next" => Spill::Next,
                    "capacity" => Spill::Capacity,
                    other => {
                        return Err(source.invalid(
                            spanned,
                            format_args!(
                                "{} = {other:?}: use \"next\" or \"capacity\"",
                                key("spill")
                            ),
                        ));
                    }
                },
            };
            if spill == Spill::Capacity
                && let Some(&region) = answers
                    .keys()
                    .find(|&&region| regions[usize::from(region)].capacity.is_none())
            {
                let region = &names[usize::from(region)];
                return Err(source.invalid(
                    service.spill.as_ref().expect("spill was given"),
                    format_args!(
                        "{} = \"capacity\" needs the capacity of every region it answers from: \
                         add regions.{region}.capacity",
                        key("spill")
                    ),
                ));
            }
            Ok(Policy::Geo {
                spread: count(&service.spread, "spread")?,
                spill,
            })
        }
        "weighted" => {
            let Some(raw_weights) = &service.weights else {
                return Err(at_policy(format!(
                    "services.\"{name}\" uses policy \"weighted\" but has no weights: add weights = {{ REGION = 1, ... }}"
                )));
            };
            if let Some(spanned) = &service.map {
                return Err(source.invalid(
                    spanned,
                    format_args!(
                        "{}: a weighted service does not use a map; remove it (or use policy \"geo\")",
                        key("map")
                    ),
                ));
            }
            let mut weights = BTreeMap::new();
            for (region, weight) in raw_weights.as_ref() {
                let id = region_id(region, &|message| {
                    source.invalid(weight, format!("{}: {message}", key("weights")))
                })?;
                let value = *weight.as_ref();
                if !(1..=1_000_000).contains(&value) {
                    return Err(source.invalid(
                        weight,
                        format_args!(
                            "{}.{region} = {value} is out of range: use 1 to 1000000 (drain a region to take it out)",
                            key("weights")
                        ),
                    ));
                }
                if !answers.contains_key(&id) {
                    return Err(source.invalid(
                        weight,
                        format_args!(
                            "{}.{region}: the service has no answers for region {region}",
                            key("weights")
                        ),
                    ));
                }
                weights.insert(id, value as u32);
            }
            if weights.is_empty() {
                return Err(
                    source.invalid(raw_weights, format_args!("{} is empty", key("weights")))
                );
            }
            let used: Vec<RegionId> = weights.keys().copied().collect();
            unused(&used, &|message| source.invalid(raw_weights, message))?;
            let max_answers = count(&service.max_answers, "max_answers")?;
            if usize::from(max_answers) > weights.len() {
                return Err(source.invalid(
                    service
                        .max_answers
                        .as_ref()
                        .expect("max_answers above 1 was given"),
                    format_args!(
                        "{} = {max_answers}, but only {} regions have weights",
                        key("max_answers"),
                        weights.len()
                    ),
                ));
            }
            Ok(Policy::Weighted {
                weights,
                max_answers,
            })
        }
        "failover" => {
            let Some(raw_tiers) = &service.tiers else {
                return Err(at_policy(format!(
                    "services.\"{name}\" uses policy \"failover\" but has no tiers: add tiers = [[\"primary\"], [\"standby\"]]"
                )));
            };
            let at_tiers = |message: String| source.invalid(raw_tiers, message);
            let mut tiers = Vec::with_capacity(raw_tiers.as_ref().len());
            let mut used = Vec::new();
            for (index, tier) in raw_tiers.as_ref().iter().enumerate() {
                if tier.is_empty() {
                    return Err(at_tiers(format!("{}[{index}] is empty", key("tiers"))));
                }
                let mut ids = Vec::with_capacity(tier.len());
                for region in tier {
                    let id = region_id(region, &|message| {
                        at_tiers(format!("{}: {message}", key("tiers")))
                    })?;
                    if used.contains(&id) {
                        return Err(at_tiers(format!(
                            "{}: region {region:?} is listed twice",
                            key("tiers")
                        )));
                    }
                    if !answers.contains_key(&id) {
                        return Err(at_tiers(format!(
                            "{}: the service has no answers for region {region}",
                            key("tiers")
                        )));
                    }
                    used.push(id);
                    ids.push(id);
                }
                tiers.push(ids);
            }
            if tiers.is_empty() {
                return Err(at_tiers(format!("{} is empty", key("tiers"))));
            }
            unused(&used, &at_tiers)?;
            let failback = match &service.failback {
                None => Failback::Auto,
                Some(spanned) => match spanned.as_ref().as_str() {
                    "auto" => Failback::Auto,
                    "manual" => Failback::Manual,
                    other => {
                        return Err(source.invalid(
                            spanned,
                            format_args!(
                                "{} = {other:?}: use \"auto\" or \"manual\"",
                                key("failback")
                            ),
                        ));
                    }
                },
            };
            Ok(Policy::Failover { tiers, failback })
        }
        other => Err(at_policy(format!(
            "{} = {other:?}: use \"geo\", \"weighted\" or \"failover\"",
            key("policy")
        ))),
    }
}

/// Checks `all_down` and `fallback`.
fn all_down(
    source: &Source<'_>,
    name: &str,
    raw: &Spanned<RawService>,
) -> Result<(AllDown, Option<ServiceAnswer>), ConfigError> {
    let service = raw.as_ref();
    let mode = match &service.all_down {
        None => AllDown::ServeAll,
        Some(spanned) => match spanned.as_ref().as_str() {
            "serve_all" => AllDown::ServeAll,
            "fallback" => AllDown::Fallback,
            "nodata" => AllDown::NoData,
            "servfail" => AllDown::ServFail,
            other => {
                return Err(source.invalid(
                    spanned,
                    format_args!(
                        "services.\"{name}\".all_down = {other:?}: use \"serve_all\", \"fallback\", \
                         \"nodata\" or \"servfail\""
                    ),
                ));
            }
        },
    };
    let fallback = service
        .fallback
        .as_ref()
        .map(|value| service_answer(source, value, &format!("services.\"{name}\".fallback")))
        .transpose()?;
    match (mode, &fallback) {
        (AllDown::Fallback, None) => Err(source.invalid(
            service.all_down.as_ref().expect("all_down was given"),
            format_args!(
                "services.\"{name}\".all_down = \"fallback\" needs a fallback: add \
                 fallback = {{ cname = \"sorry.example.net.\" }} or a list of addresses"
            ),
        )),
        (AllDown::Fallback, Some(_)) | (_, None) => Ok((mode, fallback)),
        (_, Some(_)) => Err(source.invalid(
            service.fallback.as_ref().expect("fallback was given"),
            format_args!(
                "services.\"{name}\".fallback is only used with all_down = \"fallback\": set that or remove it"
            ),
        )),
    }
}

/// Reads `["192.0.2.1", "2001:db8::1"]` or `{ cname = "target." }`.
fn service_answer(
    source: &Source<'_>,
    value: &Spanned<toml::Value>,
    what: &str,
) -> Result<ServiceAnswer, ConfigError> {
    let expected = || {
        source.invalid(
            value,
            format_args!(
                "{what} must be a list of addresses or {{ cname = \"target.example.net.\" }}"
            ),
        )
    };
    match value.as_ref() {
        toml::Value::Array(items) => {
            let mut addresses = Vec::with_capacity(items.len());
            for item in items {
                let text = item.as_str().ok_or_else(expected)?;
                let address: IpAddr = text.parse().map_err(|_| {
                    source.invalid(value, format_args!("{what}: {text:?} is not an IP address"))
                })?;
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
            if addresses.is_empty() {
                return Err(source.invalid(value, format_args!("{what} is empty")));
            }
            Ok(ServiceAnswer::Addresses(addresses))
        }
        toml::Value::Table(table) => {
            let (Some(target), 1) = (
                table.get("cname").and_then(toml::Value::as_str),
                table.len(),
            ) else {
                return Err(expected());
            };
            let mut target = Name::from_ascii(target).map_err(|err| {
                source.invalid(
                    value,
                    format_args!("{what}: cname {target:?} is not a domain name: {err}"),
                )
            })?;
            if !target.is_fqdn() {
                return Err(source.invalid(
                    value,
                    format_args!("{what}: cname {target} must be absolute (end with '.')"),
                ));
            }
            target.set_fqdn(true);
            Ok(ServiceAnswer::Cname(target))
        }
        _ => Err(expected()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    /// `[dns]`, four regions and one map.
    const BASE: &str = "[dns]\nlisten = [\"127.0.0.1:53\"]\nzones_dir = \"zones\"\n\
        [regions.us-east]\ncapacity = 100\n[regions.eu-west]\ncapacity = 50\n[regions.dr-central]\n[regions.ap-south]\n\
        [maps.world]\ndefault = [\"us-east\", \"eu-west\"]\n";

    /// Parses `BASE` + `text`.
    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{BASE}{text}"), Path::new("dir/meridian.toml"))
    }

    /// Asserts that `text` fails with a message ending in `expect` on line `line`.
    fn check_err(text: &str, line: usize, expect: &str) {
        let err = parse(text).expect_err("config should be rejected");
        assert_eq!(err.line(), Some(line), "{err}");
        assert!(
            err.to_string().ends_with(expect),
            "{err}\nexpected: {expect}"
        );
    }

    /// Region ids (sorted by name: ap-south is 0).
    const DR: RegionId = 1;
    const EU: RegionId = 2;
    const US: RegionId = 3;

    #[test]
    fn the_documented_shapes_are_read() {
        let config = parse(
            r#"
[services."api.example.com"]
policy = "failover"
tiers = [["us-east", "eu-west"], ["dr-central"]]
failback = "manual"
ttl = 60
ttl_degraded = 10
all_down = "fallback"
fallback = { cname = "sorry.example.net." }
answers.us-east = ["192.0.2.1"]
answers.eu-west = ["192.0.2.2"]
answers.dr-central = ["192.0.2.3"]

[services."cdn.example.com"]
policy = "weighted"
weights = { us-east = 3, eu-west = 1 }
max_answers = 2
answers.us-east = ["192.0.2.1"]
answers.eu-west = ["192.0.2.2"]

[services."www.example.com"]
map = "world"
spread = 2
spill = "capacity"
answers.us-east = ["192.0.2.1"]
answers.eu-west = ["192.0.2.2"]
"#,
        )
        .unwrap();
        let api = &config.services[0];
        assert_eq!(
            api.policy,
            Policy::Failover {
                tiers: vec![vec![US, EU], vec![DR]],
                failback: Failback::Manual
            }
        );
        assert_eq!((api.ttl, api.ttl_degraded), (60, 10));
        assert_eq!(api.all_down, AllDown::Fallback);
        assert!(matches!(api.fallback, Some(ServiceAnswer::Cname(_))));
        assert_eq!(api.map, None);
        let cdn = &config.services[1];
        assert_eq!(
            cdn.policy,
            Policy::Weighted {
                weights: [(US, 3), (EU, 1)].into_iter().collect(),
                max_answers: 2
            }
        );
        assert_eq!(
            (cdn.ttl, cdn.ttl_degraded),
            (30, 30),
            "degraded TTL defaults to the TTL"
        );
        assert_eq!(cdn.all_down, AllDown::ServeAll);
        let www = &config.services[2];
        assert_eq!(
            www.policy,
            Policy::Geo {
                spread: 2,
                spill: Spill::Capacity
            }
        );
        assert_eq!(www.map, Some(0));
    }

    #[test]
    fn policy_mistakes_name_their_line() {
        let head = "[services.\"x.example.com\"]\n";
        let line = BASE.lines().count() + 2;
        let cases = [
            (
                "policy = \"random\"\nanswers.us-east = [\"192.0.2.1\"]\n",
                line,
                "services.\"x.example.com\".policy = \"random\": use \"geo\", \"weighted\" or \"failover\"",
            ),
            (
                "answers.us-east = [\"192.0.2.1\"]\n",
                line,
                "services.\"x.example.com\" uses policy \"geo\" but has no map: add map = \"NAME\"",
            ),
            (
                "policy = \"weighted\"\nweights = { us-east = 1 }\nspread = 2\nanswers.us-east = [\"192.0.2.1\"]\n",
                line,
                "services.\"x.example.com\".spread applies to policy = \"geo\" only (this service's policy is \"weighted\")",
            ),
            (
                "policy = \"weighted\"\nweights = { us-east = 1 }\nanswers.us-east = [\"192.0.2.1\"]\nanswers.eu-west = [\"192.0.2.2\"]\n",
                line + 1,
                "services.\"x.example.com\".answers.eu-west is never used by the policy: add the region to it or remove its answers",
            ),
            (
                "policy = \"weighted\"\nweights = { us-east = 0 }\nanswers.us-east = [\"192.0.2.1\"]\n",
                line + 1,
                "weights.us-east = 0 is out of range: use 1 to 1000000 (drain a region to take it out)",
            ),
            (
                "policy = \"weighted\"\nweights = { us-east = 1 }\nmax_answers = 2\nanswers.us-east = [\"192.0.2.1\"]\n",
                line + 2,
                "max_answers = 2, but only 1 regions have weights",
            ),
            (
                "policy = \"failover\"\ntiers = [[\"us-east\"], [\"us-east\"]]\nanswers.us-east = [\"192.0.2.1\"]\n",
                line + 1,
                "tiers: region \"us-east\" is listed twice",
            ),
            (
                "policy = \"failover\"\ntiers = [[\"us-east\"], []]\nanswers.us-east = [\"192.0.2.1\"]\n",
                line + 1,
                "services.\"x.example.com\".tiers[1] is empty",
            ),
            (
                "policy = \"failover\"\ntiers = [[\"us-east\", \"mars\"]]\nanswers.us-east = [\"192.0.2.1\"]\n",
                line + 1,
                "tiers: unknown region \"mars\" (known regions: ap-south, dr-central, eu-west, us-east)",
            ),
            (
                "policy = \"failover\"\ntiers = [[\"us-east\", \"eu-west\"]]\nanswers.us-east = [\"192.0.2.1\"]\n",
                line + 1,
                "tiers: the service has no answers for region eu-west",
            ),
            (
                "map = \"world\"\nspread = 2\nanswers.us-east = { cname = \"lb.example.net.\" }\n",
                line + 1,
                "spread = 2 combines regions, but a CNAME answer cannot be combined: use addresses in every region or spread = 1",
            ),
            (
                "map = \"world\"\nspill = \"capacity\"\nanswers.us-east = [\"192.0.2.1\"]\nanswers.dr-central = [\"192.0.2.3\"]\n",
                line + 1,
                "spill = \"capacity\" needs the capacity of every region it answers from: add regions.dr-central.capacity",
            ),
            (
                "map = \"world\"\nall_down = \"fallback\"\nanswers.us-east = [\"192.0.2.1\"]\n",
                line + 1,
                "all_down = \"fallback\" needs a fallback: add fallback = { cname = \"sorry.example.net.\" } or a list of addresses",
            ),
            (
                "map = \"world\"\nfallback = [\"192.0.2.9\"]\nanswers.us-east = [\"192.0.2.1\"]\n",
                line + 1,
                "fallback is only used with all_down = \"fallback\": set that or remove it",
            ),
            (
                "map = \"world\"\nall_down = \"panic\"\nanswers.us-east = [\"192.0.2.1\"]\n",
                line + 1,
                "all_down = \"panic\": use \"serve_all\", \"fallback\", \"nodata\" or \"servfail\"",
            ),
            (
                "policy = \"weighted\"\nmap = \"world\"\nweights = { us-east = 1 }\nanswers.us-east = [\"192.0.2.1\"]\n",
                line + 1,
                "map: a weighted service does not use a map; remove it (or use policy \"geo\")",
            ),
            (
                "map = \"world\"\nttl_degraded = -1\nanswers.us-east = [\"192.0.2.1\"]\n",
                line + 1,
                "",
            ),
        ];
        for (text, line, expect) in cases {
            check_err(&format!("{head}{text}"), line, expect);
        }
    }
}
