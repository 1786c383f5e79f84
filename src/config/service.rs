//! `[services."NAME"]`: the GSLB names, what each answers per region, and how a region is
//! chosen.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;
use toml::Spanned;

use super::geo::{MapConfig, RegionId};
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
    /// Index of its map in [`super::Config::maps`].
    pub map: usize,
    /// TTL of its answers.
    pub ttl: u32,
    /// Answers per region.
    pub answers: BTreeMap<RegionId, ServiceAnswer>,
    /// Config file line of the `[services."NAME"]` table, for errors found later.
    pub line: usize,
}

/// Checks one `[services."NAME"]`.
pub(super) fn service(
    source: &Source<'_>,
    name: &str,
    raw: &Spanned<RawService>,
    names: &[&str],
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
    let map = maps
        .iter()
        .position(|map| map.name == *service.map.as_ref())
        .ok_or_else(|| {
            let known: Vec<&str> = maps.iter().map(|map| map.name.as_str()).collect();
            source.invalid(
                &service.map,
                format_args!(
                    "services.\"{name}\".map: unknown map {:?} (known maps: {})",
                    service.map.as_ref(),
                    known.join(", ")
                ),
            )
        })?;
    let ttl = match &service.ttl {
        None => DEFAULT_SERVICE_TTL,
        Some(ttl) => u32::try_from(*ttl.as_ref())
            .ok()
            .filter(|ttl| *ttl <= i32::MAX as u32)
            .ok_or_else(|| {
                source.invalid(
                    ttl,
                    format_args!("services.\"{name}\".ttl must be 0 to {}", i32::MAX),
                )
            })?,
    };
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
    Ok(ServiceConfig {
        name: fqdn,
        map,
        ttl,
        answers,
        line: source.line(raw.span().start),
    })
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
