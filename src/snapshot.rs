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

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, ConfigError, Policy, ServiceAnswer, ServiceConfig, Spill};
use crate::geo::compile::compile;
use crate::geo::source::GeoError;
use crate::geo::{CompileReport, GeoSnapshot};
use crate::policy::{self, HealthView, Plan, RegionRecords, RegionStatus, ServicePlan};
use crate::telemetry::{AnswerCounters, NO_REGION, Telemetry};
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
    /// Region names by id, as in the config.
    pub regions: Box<[String]>,
    /// Service names by service index (the order of `[services.*]`, sorted).
    pub service_names: Box<[String]>,
    /// The health the services answer by: published whole by the monitor (and the operator's
    /// overrides), read by every GSLB query. Starts from the configured initial states.
    pub health: ArcSwap<HealthView>,
    /// The process's counters; a running server hands the same ones to every reloaded snapshot.
    pub telemetry: Arc<Telemetry>,
    /// The config this was built from (absent for static-only snapshots built directly).
    pub config: Option<Arc<Config>>,
}

/// A GSLB name, ready to answer.
#[derive(Debug)]
pub struct Service {
    /// Index of its compiled map in [`GeoSnapshot::maps`], if it uses one.
    pub map: Option<usize>,
    /// How it chooses.
    pub plan: ServicePlan,
    /// Pre-rendered answers with the normal TTL, indexed by region id; `None` where the region
    /// has no answers.
    pub records: Box<[Option<RegionRecords>]>,
    /// The same with the degraded TTL.
    pub records_degraded: Box<[Option<RegionRecords>]>,
    /// The all-down fallback answer, with the degraded TTL.
    pub fallback: Option<RegionRecords>,
    /// Answer counters by region id, then one for answers without a region.
    pub counters: Box<[Arc<AnswerCounters>]>,
}

impl Snapshot {
    /// Counts into `telemetry` from now on: the answer counters of every service are those it
    /// registers for the (service, region) names, so counts carry on across reloads.
    pub fn adopt_telemetry(&mut self, telemetry: Arc<Telemetry>) {
        for service in self.services.values_mut() {
            let name = &self.service_names[service.plan.index];
            service.counters = self
                .regions
                .iter()
                .map(String::as_str)
                .chain([NO_REGION])
                .map(|region| telemetry.answers(name, region))
                .collect();
        }
        self.telemetry = telemetry;
    }

    /// The (service, region) pairs the current services can count, for rendering.
    pub fn answer_series(&self) -> Vec<(String, String)> {
        let mut series = Vec::new();
        for name in self.service_names.iter() {
            for region in self.regions.iter().map(String::as_str).chain([NO_REGION]) {
                series.push((name.clone(), region.to_string()));
            }
        }
        series
    }
}

impl Service {
    /// The records to answer with: degraded TTL or not.
    pub fn records(&self, degraded: bool) -> &[Option<RegionRecords>] {
        if degraded {
            &self.records_degraded
        } else {
            &self.records
        }
    }
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
            regions: Box::new([]),
            service_names: Box::new([]),
            health: ArcSwap::from_pointee(HealthView::default()),
            telemetry: Arc::default(),
            config: None,
        }
    }

    /// Builds the snapshot a validated config describes.
    pub fn build(config: &Config) -> Result<(Snapshot, Vec<Warning>, CompileReport), LoadError> {
        let (zones, warnings) = match &config.dns.zones_dir {
            Some(dir) => load_zones(dir).map_err(LoadError::Zones)?,
            None => (ZoneSet::default(), Vec::new()),
        };
        let (geo, report) = compile(config)?;
        let mut services = FxHashMap::default();
        for (index, service) in config.services.iter().enumerate() {
            let built = build_service(config, index, service, &zones)?;
            services.insert(wire_name(&service.name).into_boxed_slice(), built);
        }
        let snapshot = Snapshot {
            zones,
            services,
            geo,
            max_udp_payload: config.dns.max_udp_payload,
            regions: config
                .regions
                .iter()
                .map(|region| region.name.clone())
                .collect(),
            service_names: config
                .services
                .iter()
                .map(|service| service.name.to_string())
                .collect(),
            health: ArcSwap::from_pointee(initial_health(config)),
            telemetry: Arc::default(),
            config: Some(Arc::new(config.clone())),
        };
        let mut snapshot = snapshot;
        snapshot.adopt_telemetry(Arc::clone(&snapshot.telemetry));
        Ok((snapshot, warnings, report))
    }
}

/// Checks that `service` lives in a served zone without clashing with its static records, and
/// pre-renders its answers.
fn build_service(
    config: &Config,
    index: usize,
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
    let render_all = |ttl: u32| {
        let mut records = vec![None; config.regions.len()];
        for (&region, answer) in &service.answers {
            records[usize::from(region)] = Some(render_answer(answer, ttl));
        }
        records.into_boxed_slice()
    };
    Ok(Service {
        map: service.map,
        plan: service_plan(config, index, service),
        records: render_all(service.ttl),
        records_degraded: render_all(service.ttl_degraded),
        fallback: service
            .fallback
            .as_ref()
            .map(|answer| render_answer(answer, service.ttl_degraded)),
        counters: Box::new([]),
    })
}

/// The decision inputs of `service` (the `index`th), fixed at load.
fn service_plan(config: &Config, index: usize, service: &ServiceConfig) -> ServicePlan {
    let plan = match &service.policy {
        Policy::Geo { spread, spill } => Plan::Geo {
            spread: *spread,
            spill_capacity: *spill == Spill::Capacity,
        },
        Policy::Weighted {
            weights,
            max_answers,
        } => Plan::Weighted {
            weights: weights
                .iter()
                .map(|(&region, &weight)| (region, f64::from(weight)))
                .collect(),
            max_answers: *max_answers,
        },
        Policy::Failover { tiers, .. } => Plan::Failover {
            tiers: tiers
                .iter()
                .map(|tier| tier.clone().into_boxed_slice())
                .collect(),
        },
    };
    ServicePlan {
        plan,
        all_down: service.all_down,
        capacity: config
            .regions
            .iter()
            .map(|region| region.capacity.map_or(1.0, f64::from))
            .collect(),
        regions: service.answers.keys().copied().collect(),
        salt: policy::mix(
            service
                .name
                .to_ascii()
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
                    (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
                }),
        ),
        index,
    }
}

/// The health view before any probe has run: each region in its configured initial state
/// (regions without monitors are up).
pub fn initial_health(config: &Config) -> HealthView {
    HealthView {
        regions: config
            .regions
            .iter()
            .map(|region| {
                if region.monitors.is_empty() || region.health.initial_up {
                    RegionStatus::NOMINAL
                } else {
                    RegionStatus::DOWN
                }
            })
            .collect(),
        held: vec![false; config.services.len()].into_boxed_slice(),
    }
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
