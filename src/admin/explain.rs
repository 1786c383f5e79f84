//! `explain`: what a client gets for a name and why, computed by the very functions the data
//! plane calls (`GeoSnapshot::locate`, `GeoSnapshot::client_key`, `policy::decide`) on the same
//! snapshot and health view.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::overrides::Override;
use crate::config::{Config, Policy, ServiceAnswer};
use crate::dns::wire::{ClientSubnet, family};
use crate::geo::source::{Database, DatabaseKind, read_nets};
use crate::policy::{self, Outcome};
use crate::snapshot::Snapshot;
use crate::zone::wire_name;

/// The question.
#[derive(Debug, Clone)]
pub struct Question {
    /// The name asked, e.g. `www.example.com`.
    pub name: String,
    /// The query type (A = 1, AAAA = 28, ...).
    pub qtype: u16,
    /// The resolver's address.
    pub resolver: IpAddr,
    /// The client subnet the query carries, if any.
    pub ecs: Option<IpNet>,
}

/// Why a name gets its answer.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The name, absolute and lowercase.
    pub name: String,
    /// The query type.
    pub qtype: String,
    /// The service answering the name, or `None` for zone data.
    pub service: Option<String>,
    /// The address that steered the answer and where it came from.
    pub client: ClientExplain,
    /// What the geo sources know of that address.
    pub sources: Vec<String>,
    /// The map's region list for the client, when the service uses a map.
    pub map: Option<MapExplain>,
    /// The policy, as configured.
    pub policy: String,
    /// Each region the service can answer from, with its state.
    pub candidates: Vec<CandidateExplain>,
    /// The decision.
    pub decision: Option<DecisionExplain>,
    /// The records answered, in presentation format.
    pub answer: Vec<String>,
    /// The TTL of the answer.
    pub ttl: Option<u32>,
    /// The ECS scope of the reply (0 when the answer does not depend on the subnet).
    pub scope: u8,
}

/// The address used for steering.
#[derive(Debug, Clone, Serialize)]
pub struct ClientExplain {
    /// The resolver's address.
    pub resolver: IpAddr,
    /// The client subnet, as sent.
    pub ecs: Option<String>,
    /// `ecs` or `resolver`: which one steered.
    pub used: &'static str,
    /// Why a subnet that was sent was not used.
    pub ecs_ignored: Option<String>,
}

/// The map's view of the client.
#[derive(Debug, Clone, Serialize)]
pub struct MapExplain {
    /// The map.
    pub name: String,
    /// The client's ordered regions.
    pub regions: Vec<String>,
    /// The prefix length over which that list holds.
    pub scope: u8,
}

/// One region as the decision saw it.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateExplain {
    /// Region name.
    pub region: String,
    /// Whether it has records answering the query type.
    pub has_records: bool,
    /// Whether the data plane may answer with it.
    pub up: bool,
    /// Its traffic share.
    pub factor: f64,
    /// Whether it is degraded (down, draining, drilled).
    pub degraded: bool,
    /// Its weight (weighted services).
    pub weight: Option<f64>,
    /// Its tier (failover services, 0 = primaries).
    pub tier: Option<usize>,
    /// What the monitors say, when known.
    pub observed_up: Option<bool>,
    /// The operator override in force, if any.
    #[serde(rename = "override")]
    pub active: Option<Override>,
}

/// The policy's decision.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionExplain {
    /// `regions`, `fallback`, `nodata` or `servfail`.
    pub outcome: &'static str,
    /// The answering regions, best first.
    pub regions: Vec<String>,
    /// Why, as `policy::Reason::label` names it.
    pub reason: &'static str,
    /// Whether the client hash decided among regions.
    pub hashed: bool,
    /// Whether the degraded TTL applies.
    pub degraded: bool,
    /// Whether the service is held on standby (manual failback).
    pub held: bool,
}

/// Observed state and override of a region, from the monitor.
#[derive(Debug, Clone)]
pub struct RegionFacts {
    /// What the monitors say.
    pub observed_up: bool,
    /// The override in force.
    pub active: Option<Override>,
}

/// Explains `question` against `snapshot`; `facts` gives each region's observation and
/// override by region id (missing entries are left out of the explanation).
pub fn explain(snapshot: &Snapshot, facts: &[RegionFacts], question: &Question) -> Explanation {
    let mut name = question.name.trim_end_matches('.').to_ascii_lowercase();
    name.push('.');
    let wire = wire_name_of(&name);
    let ecs = question.ecs.map(subnet);
    let service_entry = snapshot.services.get(wire.as_slice());
    let config = snapshot.config.as_deref();
    let mut explanation = Explanation {
        name: name.clone(),
        qtype: hickory_proto::rr::RecordType::from(question.qtype).to_string(),
        service: None,
        client: client_explain(
            snapshot,
            question,
            ecs.as_ref(),
            service_entry.and_then(|s| s.map),
        ),
        sources: Vec::new(),
        map: None,
        policy: String::new(),
        candidates: Vec::new(),
        decision: None,
        answer: Vec::new(),
        ttl: None,
        scope: 0,
    };
    let (Some(service), Some(config)) = (service_entry, config) else {
        explanation.policy = "not a GSLB name: answered from zone data".to_string();
        return explanation;
    };
    if !policy::handles(question.qtype) {
        explanation.service = Some(config.services[service.plan.index].name.to_string());
        explanation.policy = format!(
            "a GSLB name answers A, AAAA, CNAME and ANY itself; {} comes from zone data",
            explanation.qtype
        );
        return explanation;
    }
    let service_config = &config.services[service.plan.index];
    explanation.service = Some(service_config.name.to_string());
    let steering = match explanation.client.used {
        "ecs" => question.ecs.map_or(question.resolver, |net| net.addr()),
        _ => question.resolver,
    };
    explanation.sources = sources(config, steering);
    let (candidates, geo_scope) = match service.map {
        Some(map) => snapshot.geo.locate(map, question.resolver, ecs.as_ref()),
        None => (&[][..], 0),
    };
    if let Some(map) = service.map {
        explanation.map = Some(MapExplain {
            name: config.maps[map].name.clone(),
            regions: candidates
                .iter()
                .map(|&region| snapshot.regions[usize::from(region)].clone())
                .collect(),
            scope: geo_scope,
        });
    }
    let (key, key_scope) = snapshot
        .geo
        .client_key(service.map, question.resolver, ecs.as_ref());
    let health = snapshot.health.load();
    let decision = policy::decide(
        &service.plan,
        &service.records,
        &health,
        question.qtype,
        candidates,
        key,
    );
    explanation.policy = policy_text(&service_config.policy);
    for &region in service_config.answers.keys() {
        let status = health.region(region);
        let fact = facts.get(usize::from(region));
        explanation.candidates.push(CandidateExplain {
            region: snapshot.regions[usize::from(region)].clone(),
            has_records: service.records[usize::from(region)]
                .as_ref()
                .is_some_and(|records| records.answer(question.qtype).is_some()),
            up: status.up,
            factor: status.factor,
            degraded: status.degraded,
            weight: match &service_config.policy {
                Policy::Weighted { weights, .. } => weights.get(&region).map(|&w| f64::from(w)),
                _ => None,
            },
            tier: match &service_config.policy {
                Policy::Failover { tiers, .. } => {
                    tiers.iter().position(|tier| tier.contains(&region))
                }
                _ => None,
            },
            observed_up: fact.map(|fact| fact.observed_up),
            active: fact.and_then(|fact| fact.active.clone()),
        });
    }
    let ttl = if decision.degraded {
        service_config.ttl_degraded
    } else {
        service_config.ttl
    };
    let (outcome, regions) = match decision.outcome {
        Outcome::Regions(picks) => ("regions", picks.as_slice().to_vec()),
        Outcome::Fallback => ("fallback", Vec::new()),
        Outcome::NoData => ("nodata", Vec::new()),
        Outcome::ServFail => ("servfail", Vec::new()),
    };
    explanation.decision = Some(DecisionExplain {
        outcome,
        regions: regions
            .iter()
            .map(|&region| snapshot.regions[usize::from(region)].clone())
            .collect(),
        reason: decision.reason.label(),
        hashed: decision.hashed,
        degraded: decision.degraded,
        held: health.held(service.plan.index),
    });
    explanation.scope = if ecs.is_some() {
        if decision.hashed {
            geo_scope.max(key_scope)
        } else {
            geo_scope
        }
    } else {
        0
    };
    let answers: Vec<&ServiceAnswer> = match decision.outcome {
        Outcome::Regions(_) => regions
            .iter()
            .filter_map(|region| service_config.answers.get(region))
            .collect(),
        Outcome::Fallback => service_config.fallback.iter().collect(),
        Outcome::NoData | Outcome::ServFail => Vec::new(),
    };
    explanation.answer = records(&name, question.qtype, ttl, &answers);
    if !explanation.answer.is_empty() {
        explanation.ttl = Some(ttl);
    }
    explanation
}

/// The records `answers` give for `qtype`, as the data plane writes them: a CNAME only as the
/// first answer (and then alone); otherwise each region's addresses of the type in order (for
/// ANY, its A records, or its AAAA records when it has no A).
fn records(name: &str, qtype: u16, ttl: u32, answers: &[&ServiceAnswer]) -> Vec<String> {
    let mut lines = Vec::new();
    for answer in answers {
        match answer {
            ServiceAnswer::Cname(target) => {
                if lines.is_empty() {
                    lines.push(format!("{name} {ttl} IN CNAME {target}"));
                    break;
                }
            }
            ServiceAnswer::Addresses(addresses) => {
                let has_v4 = addresses.iter().any(IpAddr::is_ipv4);
                for address in addresses {
                    let line = match (address, qtype) {
                        (IpAddr::V4(v4), 1) => format!("{name} {ttl} IN A {v4}"),
                        (IpAddr::V4(v4), 255) => format!("{name} {ttl} IN A {v4}"),
                        (IpAddr::V6(v6), 28) => format!("{name} {ttl} IN AAAA {v6}"),
                        (IpAddr::V6(v6), 255) if !has_v4 => format!("{name} {ttl} IN AAAA {v6}"),
                        _ => continue,
                    };
                    lines.push(line);
                }
            }
        }
    }
    lines
}

/// The policy in words.
fn policy_text(policy: &Policy) -> String {
    match policy {
        Policy::Geo { spread, spill } => format!(
            "geo: first healthy region of the client's list (spread {spread}, spill {})",
            match spill {
                crate::config::Spill::Next => "next",
                crate::config::Spill::Capacity => "capacity",
            }
        ),
        Policy::Weighted { max_answers, .. } => {
            format!("weighted: rendezvous hashing of the client subnet (max_answers {max_answers})")
        }
        Policy::Failover { tiers, failback } => format!(
            "failover: {} tiers, failback {}",
            tiers.len(),
            match failback {
                crate::config::Failback::Auto => "auto",
                crate::config::Failback::Manual => "manual",
            }
        ),
    }
}

/// Which address steers, and why a subnet was ignored.
fn client_explain(
    snapshot: &Snapshot,
    question: &Question,
    ecs: Option<&ClientSubnet>,
    map: Option<usize>,
) -> ClientExplain {
    let ignored = match (question.ecs, ecs) {
        (None, _) | (_, None) => None,
        (Some(_), Some(subnet)) => {
            if !snapshot.geo.ecs {
                Some("geo.ecs = false".to_string())
            } else if map
                .and_then(|map| snapshot.geo.maps.get(map))
                .is_some_and(|map| map.ignore_ecs)
            {
                Some("the map has ignore_ecs = true".to_string())
            } else if subnet.source == 0 {
                Some("source prefix 0".to_string())
            } else if !crate::geo::is_global(subnet.ip()) {
                Some(format!("{} is not globally routable", subnet.ip()))
            } else {
                None
            }
        }
    };
    let used = if question.ecs.is_some() && ignored.is_none() {
        "ecs"
    } else {
        "resolver"
    };
    ClientExplain {
        resolver: question.resolver,
        ecs: question.ecs.map(|net| net.to_string()),
        used,
        ecs_ignored: ignored,
    }
}

/// What the configured sources say of `address`: location, ASN, nets rule.
fn sources(config: &Config, address: IpAddr) -> Vec<String> {
    let mut lines = Vec::new();
    for path in &config.geo.databases {
        let file = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let db = match Database::open(path) {
            Ok(db) => db,
            Err(err) => {
                lines.push(format!("{file}: {err}"));
                continue;
            }
        };
        match db.kind() {
            DatabaseKind::Location => match db.locate(address) {
                Ok(Some((location, network))) => {
                    let parts: Vec<&str> = [
                        &location.continent,
                        &location.country,
                        &location.subdivision,
                        &location.city,
                    ]
                    .into_iter()
                    .flatten()
                    .map(|part| &**part)
                    .collect();
                    lines.push(format!(
                        "location {} ({file}, network {network})",
                        parts.join("/")
                    ));
                }
                Ok(None) => lines.push(format!("location unknown ({file} has no data)")),
                Err(err) => lines.push(format!("{file}: {err}")),
            },
            DatabaseKind::Asn => match db.asn(address) {
                Ok(Some((asn, network))) => {
                    lines.push(format!("AS{asn} ({file}, network {network})"));
                }
                Ok(None) => lines.push(format!("asn unknown ({file} has no data)")),
                Err(err) => lines.push(format!("{file}: {err}")),
            },
        }
    }
    if let Some(path) = &config.geo.nets {
        match read_nets(path) {
            Ok(rules) => {
                let best = rules
                    .iter()
                    .filter(|rule| rule.network.contains(&address))
                    .max_by_key(|rule| rule.network.prefix_len());
                if let Some(rule) = best {
                    lines.push(format!(
                        "nets rule {} -> {} ({}:{})",
                        rule.network,
                        rule.regions.join(" "),
                        path.display(),
                        rule.line
                    ));
                }
            }
            Err(err) => lines.push(err.to_string()),
        }
    }
    lines
}

/// The wire form of a dotted name (lowercase, absolute).
fn wire_name_of(name: &str) -> Vec<u8> {
    match hickory_proto::rr::Name::from_ascii(name) {
        Ok(parsed) => wire_name(&parsed),
        Err(_) => Vec::new(),
    }
}

/// A client subnet as an ECS option would carry it.
fn subnet(net: IpNet) -> ClientSubnet {
    let mut address = [0u8; 16];
    let (family, source) = match net.trunc() {
        IpNet::V4(v4) => {
            address[..4].copy_from_slice(&v4.addr().octets());
            (family::IPV4, v4.prefix_len())
        }
        IpNet::V6(v6) => {
            address.copy_from_slice(&v6.addr().octets());
            (family::IPV6, v6.prefix_len())
        }
    };
    ClientSubnet {
        family,
        source,
        address,
    }
}
