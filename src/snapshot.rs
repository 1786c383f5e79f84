//! The immutable snapshot the query path reads, and how it is built from disk.
//!
//! Architecture invariant: a snapshot is only ever built whole, from a config and zones that all
//! validated; the server swaps it in atomically, so a query sees either the old data or the new,
//! never a mix and never a half-loaded zone.

use std::fmt;
use std::path::Path;

use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData};
use rustc_hash::FxHashMap;

use crate::config::{Config, ConfigError, ServiceAnswer, ServiceConfig};
use crate::geo::compile::compile;
use crate::geo::source::GeoError;
use crate::geo::{CompileReport, GeoSnapshot};
use crate::policy::RegionRecords;
use crate::zone::{RRset, Warning, ZoneError, ZoneSet, load_zones, parse, rtype, wire_name};

/// Everything a query needs to be answered.
#[derive(Debug)]
pub struct Snapshot {
    /// The zones served.
    pub zones: ZoneSet,
    /// GSLB names, by lowercase wire name.
    pub services: FxHashMap<Box<[u8]>, Service>,
    /// Compiled geo maps.
    pub geo: GeoSnapshot,
    /// Our EDNS UDP payload cap.
    pub max_udp_payload: u16,
}

/// A GSLB name, ready to answer.
#[derive(Debug)]
pub struct Service {
    /// Index of its compiled map in [`GeoSnapshot::maps`].
    pub map: usize,
    /// Pre-rendered answers, indexed by region id; `None` where the region has no answers.
    pub records: Box<[Option<RegionRecords>]>,
}

/// A config and the snapshot built from it.
#[derive(Debug)]
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// The data to serve.
    pub snapshot: Snapshot,
    /// Things that load but look wrong.
    pub warnings: Vec<Warning>,
    /// What compiling the geo maps found.
    pub geo_report: CompileReport,
}

/// Why a config and its zones could not be loaded. Displays one `file:line: message` per line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// One or more zones are unusable.
    #[error("{}", ErrorLines(.0))]
    Zones(Vec<ZoneError>),
    /// A GeoIP database or the nets file is unusable.
    #[error(transparent)]
    Geo(#[from] GeoError),
    /// A service does not fit the zones served.
    #[error("{}:{line}: {message}", path.display())]
    Service {
        /// The config file.
        path: std::path::PathBuf,
        /// Line of the service's table.
        line: usize,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Formats errors one per line.
struct ErrorLines<'a>(&'a [ZoneError]);

impl fmt::Display for ErrorLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl LoadError {
    /// Each error as its own line of text.
    pub fn lines(&self) -> Vec<String> {
        self.to_string().lines().map(str::to_string).collect()
    }
}

/// Reads the config at `path` and everything it references. `serve`, `check` and reload all
/// call this, so they accept and reject exactly the same inputs.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let config = Config::load(path)?;
    let (snapshot, warnings, geo_report) = Snapshot::build(&config)?;
    Ok(Loaded {
        config,
        snapshot,
        warnings,
        geo_report,
    })
}

impl Snapshot {
    /// A snapshot serving static `zones` only, with EDNS payload cap `max_udp_payload`.
    pub fn new(zones: ZoneSet, max_udp_payload: u16) -> Snapshot {
        Snapshot {
            zones,
            services: FxHashMap::default(),
            geo: GeoSnapshot::empty(),
            max_udp_payload,
        }
    }

    /// Builds the snapshot a validated config describes.
    pub fn build(config: &Config) -> Result<(Snapshot, Vec<Warning>, CompileReport), LoadError> {
        let (zones, warnings) = load_zones(&config.dns.zones_dir).map_err(LoadError::Zones)?;
        let (geo, report) = compile(config)?;
        let mut services = FxHashMap::default();
        for service in &config.services {
            let built = build_service(config, service, &zones)?;
            services.insert(wire_name(&service.name).into_boxed_slice(), built);
        }
        let snapshot = Snapshot {
            zones,
            services,
            geo,
            max_udp_payload: config.dns.max_udp_payload,
        };
        Ok((snapshot, warnings, report))
    }
}

/// Checks that `service` lives in a served zone without clashing with its static records, and
/// pre-renders its answers.
fn build_service(
    config: &Config,
    service: &ServiceConfig,
    zones: &ZoneSet,
) -> Result<Service, LoadError> {
    let error = |message: String| LoadError::Service {
        path: config.path.clone(),
        line: service.line,
        message,
    };
    let name = wire_name(&service.name);
    let Some((zone, _)) = zones.find(&name) else {
        return Err(error(format!(
            "service {} is not inside any served zone: add its zone to dns.zones_dir or rename the service",
            service.name
        )));
    };
    let has_cname = service
        .answers
        .values()
        .any(|answer| matches!(answer, ServiceAnswer::Cname(_)));
    if let Some(node) = zone.node(&name) {
        let clash = node.rrsets.iter().find(|rrset| {
            has_cname || matches!(rrset.rtype, rtype::A | rtype::AAAA | rtype::CNAME)
        });
        if let Some(rrset) = clash {
            let location = static_record_location(zone, &service.name, rrset.rtype).map_or_else(
                || zone.file().display().to_string(),
                |location| location.to_string(),
            );
            return Err(error(format!(
                "service {} clashes with the static {} record at {location}: a GSLB name owns its A, AAAA and \
                 CNAME records (and, when it answers with a CNAME, the whole name); remove one of the two",
                service.name,
                hickory_proto::rr::RecordType::from(rrset.rtype)
            )));
        }
    }
    let mut records = vec![None; config.regions.len()];
    for (&region, answer) in &service.answers {
        records[usize::from(region)] = Some(render_answer(answer, service.ttl));
    }
    Ok(Service {
        map: service.map,
        records: records.into_boxed_slice(),
    })
}

/// Where the zone file defines a record of `rtype` at `name`, found by reading the file again
/// (only on this error path, so loaded zones need not keep locations).
fn static_record_location(
    zone: &crate::zone::Zone,
    name: &Name,
    rtype: u16,
) -> Option<crate::zone::Location> {
    let root = zone.file().parent()?;
    let records = parse::parse_zone_file(zone.file(), zone.origin(), root).ok()?;
    records
        .into_iter()
        .find(|record| {
            record.name.to_lowercase() == *name && u16::from(record.rdata.record_type()) == rtype
        })
        .map(|record| record.location)
}

/// Pre-renders one region's answer with `ttl`.
fn render_answer(answer: &ServiceAnswer, ttl: u32) -> RegionRecords {
    match answer {
        ServiceAnswer::Addresses(addresses) => {
            let v4: Vec<RData> = addresses
                .iter()
                .filter_map(|address| match address {
                    std::net::IpAddr::V4(v4) => Some(RData::A(A(*v4))),
                    std::net::IpAddr::V6(_) => None,
                })
                .collect();
            let v6: Vec<RData> = addresses
                .iter()
                .filter_map(|address| match address {
                    std::net::IpAddr::V6(v6) => Some(RData::AAAA(AAAA(*v6))),
                    std::net::IpAddr::V4(_) => None,
                })
                .collect();
            let render = |rtype: u16, rdata: &[RData]| {
                (!rdata.is_empty())
                    .then(|| RRset::render(rtype, ttl, &rdata.iter().collect::<Vec<_>>()))
            };
            RegionRecords {
                a: render(rtype::A, &v4),
                aaaa: render(rtype::AAAA, &v6),
                cname: None,
            }
        }
        ServiceAnswer::Cname(target) => {
            let rrset = RRset::render(rtype::CNAME, ttl, &[&RData::CNAME(CNAME(target.clone()))]);
            let target = wire_name(&target.to_lowercase()).into_boxed_slice();
            RegionRecords {
                a: None,
                aaaa: None,
                cname: Some((rrset, target)),
            }
        }
    }
}
