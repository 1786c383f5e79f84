//! The answer engine: one query packet in, one response packet out.
//!
//! [`respond`] is a pure function of the snapshot and the packet: no I/O, no clock, no locks, and
//! no allocation (it writes into the caller's reused buffer). UDP and TCP both call it, so both
//! give the same answers; they differ only in the size limit.

use std::net::IpAddr;

use super::message::{Owner, Rcode, Response, Section, header_only};
use super::wire::ClientSubnet;
use super::wire::{self, HEADER_LEN, MAX_NAME_LEN, Malformed, Query};
use crate::config::RegionId;
use crate::policy::{self, Choice};
use crate::snapshot::{Service, Snapshot};
use crate::zone::{Node, RRset, Referral, Zone, ZoneSet, rtype};

/// Class IN.
const CLASS_IN: u16 = 1;
/// Class ANY (QCLASS only).
const CLASS_ANY: u16 = 255;
/// Longest CNAME chain followed inside our zones before giving the partial chain.
const MAX_CHAIN: usize = 8;
/// Largest DNS message over TCP.
const TCP_LIMIT: usize = 65_535;
/// Largest UDP response to a query without EDNS (RFC 1035 section 4.2.1).
const PLAIN_UDP_LIMIT: usize = 512;

/// TYPE..RDATA of the RFC 8482 section 4.2 answer to ANY: HINFO "RFC8482" "", TTL 3600.
const RFC8482_HINFO: [u8; 19] = [
    0, 13, 0, 1, 0, 0, 0x0e, 0x10, 0, 9, 7, b'R', b'F', b'C', b'8', b'4', b'8', b'2', 0,
];

/// How a query arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: replies are limited to 512 bytes, or the EDNS payload size, and may be truncated.
    Udp,
    /// TCP: replies up to 65535 bytes.
    Tcp,
}

/// What [`respond`] did, for counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The response code sent.
    pub rcode: Rcode,
    /// Whether TC was set.
    pub truncated: bool,
    /// The query type asked (0 when the question could not be read).
    pub qtype: u16,
}

/// Answers `packet`, received from `client`, from `snapshot` into `out`. `None`: send nothing
/// (RFC 1035 section 4.1.1: responses and runt packets are dropped).
///
/// `client` is the address the packet came from (the resolver): geo answers use it when the
/// query carries no usable Client Subnet.
pub fn respond(
    snapshot: &Snapshot,
    packet: &[u8],
    client: IpAddr,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Option<Outcome> {
    let query = match wire::parse_query(packet) {
        Ok(query) => query,
        Err(Malformed::Drop) => return None,
        Err(Malformed::FormErr) => {
            header_only(packet, Rcode::FormErr, out);
            return Some(Outcome {
                rcode: Rcode::FormErr,
                truncated: false,
                qtype: 0,
            });
        }
        Err(Malformed::NotImp) => {
            header_only(packet, Rcode::NotImp, out);
            return Some(Outcome {
                rcode: Rcode::NotImp,
                truncated: false,
                qtype: 0,
            });
        }
    };
    let limit = match (transport, query.edns) {
        (Transport::Tcp, _) => TCP_LIMIT,
        (Transport::Udp, None) => PLAIN_UDP_LIMIT,
        (Transport::Udp, Some(edns)) => {
            usize::from(edns.payload).clamp(PLAIN_UDP_LIMIT, usize::from(snapshot.max_udp_payload))
        }
    };
    let mut response = Response::new(packet, &query, out);
    let (rcode, additional_required) = decide(snapshot, &query, client, transport, &mut response);
    response.rcode(rcode);
    let truncated = response.finish(limit, snapshot.max_udp_payload, additional_required);
    Some(Outcome {
        rcode,
        truncated,
        qtype: query.qtype,
    })
}

/// Fills `response` for a well-formed query; returns the rcode and whether the additional section
/// must not be dropped to fit.
fn decide(
    snapshot: &Snapshot,
    query: &Query,
    client: IpAddr,
    transport: Transport,
    response: &mut Response<'_>,
) -> (Rcode, bool) {
    if query.edns.is_some_and(|edns| edns.version > 0) {
        return (Rcode::BadVers, false);
    }
    if !matches!(query.qclass, CLASS_IN | CLASS_ANY) {
        return (Rcode::Refused, false);
    }
    match query.qtype {
        rtype::MAILA | rtype::MAILB => return (Rcode::NotImp, false),
        rtype::AXFR | rtype::IXFR if transport == Transport::Udp => return (Rcode::NotImp, false),
        rtype::AXFR | rtype::IXFR => return (Rcode::Refused, false),
        rtype::OPT => return (Rcode::FormErr, false),
        _ => {}
    }
    let client = Client {
        resolver: client,
        ecs: query.edns.and_then(|edns| edns.ecs),
    };
    lookup(
        snapshot,
        query.qname.as_wire(),
        query.qtype,
        &client,
        response,
    )
}

/// Who asked: what geo answers steer by.
struct Client {
    /// The address the query came from (the resolver, usually).
    resolver: IpAddr,
    /// The query's Client Subnet option, if it had a valid one.
    ecs: Option<ClientSubnet>,
}

/// The outcome of answering one name of a (possibly CNAME-chained) lookup.
enum Step<'s> {
    /// The response is complete: its rcode, and whether the additional section is required.
    Done(Rcode, bool),
    /// A CNAME was written; continue at its target (lowercase wire).
    Follow(&'s [u8]),
}

/// Where a name lands in our data.
enum Resolution<'s> {
    /// No zone of ours holds the name.
    NotOurs,
    /// The name is at or below a zone cut.
    Referral {
        /// The cut's referral data.
        referral: &'s Referral,
        /// Offset of the cut's name inside the looked-up name.
        cut_offset: usize,
    },
    /// The name exists (maybe as an empty non-terminal), or a wildcard synthesises it.
    Node {
        /// Its zone.
        zone: &'s Zone,
        /// Offset of the zone apex inside the looked-up name.
        apex_offset: usize,
        /// The node, or the wildcard node that stands in for it.
        node: &'s Node,
    },
    /// The name does not exist.
    NxDomain {
        /// Its zone.
        zone: &'s Zone,
        /// Offset of the zone apex inside the looked-up name.
        apex_offset: usize,
    },
}

/// Finds where lowercase wire `name` lands (RFC 1034 section 4.3.2 steps 2 and 3, RFC 4592).
fn resolve<'s>(zones: &'s ZoneSet, name: &[u8], qtype: u16) -> Resolution<'s> {
    let Some((zone, apex_offset)) = zones.find(name) else {
        return Resolution::NotOurs;
    };
    // Without zone cuts, an existing name needs no walk: every ancestor exists too, so the walk
    // would end at the name itself.
    if !zone.has_cuts()
        && let Some(node) = zone.node(name)
    {
        return Resolution::Node {
            zone,
            apex_offset,
            node,
        };
    }
    // Label start offsets of `name`, from the name itself up to (not including) the apex.
    let mut starts = [0u8; MAX_NAME_LEN / 2 + 1];
    let mut count = 0;
    let mut offset = 0;
    while offset < apex_offset {
        starts[count] = offset as u8;
        count += 1;
        offset += 1 + usize::from(name[offset]);
    }
    // Walk down from the apex: the first cut wins; the last existing node is the closest encloser.
    let mut encloser = apex_offset;
    for &start in starts[..count].iter().rev() {
        let start = usize::from(start);
        let Some(node) = zone.node(&name[start..]) else {
            break;
        };
        if let Some(referral) = &node.cut {
            // DS lives on the parent side of the cut (RFC 4035 section 3.1.4.1).
            if !(start == 0 && qtype == rtype::DS) {
                return Resolution::Referral {
                    referral,
                    cut_offset: start,
                };
            }
        }
        encloser = start;
    }
    if encloser == 0 {
        return match zone.node(name) {
            Some(node) => Resolution::Node {
                zone,
                apex_offset,
                node,
            },
            None => Resolution::NxDomain { zone, apex_offset },
        };
    }
    // Source of synthesis: "*." + closest encloser (RFC 4592 section 3.3.1).
    let suffix = &name[encloser..];
    let mut wildcard = [0u8; MAX_NAME_LEN + 2];
    wildcard[..2].copy_from_slice(b"\x01*");
    wildcard[2..2 + suffix.len()].copy_from_slice(suffix);
    match zone.node(&wildcard[..2 + suffix.len()]) {
        Some(node) => Resolution::Node {
            zone,
            apex_offset,
            node,
        },
        None => Resolution::NxDomain { zone, apex_offset },
    }
}

/// Answers `qname`/`qtype` from our services and zones, following CNAMEs inside them.
fn lookup(
    snapshot: &Snapshot,
    qname: &[u8],
    qtype: u16,
    client: &Client,
    response: &mut Response<'_>,
) -> (Rcode, bool) {
    let mut name = qname;
    let mut visited: [&[u8]; MAX_CHAIN] = [&[]; MAX_CHAIN];
    for step in 0..=MAX_CHAIN {
        let next = match answer_name(snapshot, name, step, qtype, client, response) {
            Step::Done(rcode, additional_required) => return (rcode, additional_required),
            Step::Follow(target) => target,
        };
        // CNAME queries and ANY stop at the CNAME; loops stop at the first repeated name.
        if matches!(qtype, rtype::CNAME | rtype::ANY)
            || step == MAX_CHAIN
            || next == name
            || visited[..step].contains(&next)
        {
            break;
        }
        visited[step] = name;
        name = next;
    }
    (Rcode::NoError, false)
}

/// Answers one name of a lookup: `step` 0 is the query name, later steps are CNAME targets.
fn answer_name<'s>(
    snapshot: &'s Snapshot,
    name: &'s [u8],
    step: usize,
    qtype: u16,
    client: &Client,
    response: &mut Response<'_>,
) -> Step<'s> {
    // The query name is echoed at offset 12; later names in a chain are written in full.
    let owner_at = |offset: usize| match step {
        0 => Owner::Pointer((HEADER_LEN + offset) as u16),
        _ => Owner::Name(&name[offset..]),
    };
    if !snapshot.services.is_empty()
        && policy::handles(qtype)
        && let Some(service) = snapshot.services.get(name)
    {
        return answer_service(snapshot, service, name, qtype, client, owner_at, response);
    }
    match resolve(&snapshot.zones, name, qtype) {
        Resolution::NotOurs if step == 0 => Step::Done(Rcode::Refused, false),
        Resolution::NotOurs => Step::Done(Rcode::NoError, false),
        Resolution::Referral {
            referral,
            cut_offset,
        } if step == 0 => {
            response.rrset(Section::Authority, owner_at(cut_offset), &referral.ns);
            for (glue_name, rrset) in &referral.glue {
                response.rrset(Section::Additional, Owner::Name(glue_name), rrset);
            }
            Step::Done(Rcode::NoError, true)
        }
        // A chain that runs into delegated space ends there; the resolver follows it.
        Resolution::Referral { .. } => Step::Done(Rcode::NoError, false),
        // A service name exists even when no static record does: other types are NODATA.
        Resolution::NxDomain { zone, apex_offset } if snapshot.services.contains_key(name) => {
            response.authoritative();
            negative(response, zone, owner_at(apex_offset));
            Step::Done(Rcode::NoError, false)
        }
        Resolution::NxDomain { zone, apex_offset } => {
            response.authoritative();
            negative(response, zone, owner_at(apex_offset));
            Step::Done(Rcode::NxDomain, false)
        }
        Resolution::Node {
            zone,
            apex_offset,
            node,
        } => {
            response.authoritative();
            let owner = owner_at(0);
            if qtype == rtype::ANY {
                match &node.rrsets[..] {
                    [] => negative(response, zone, owner_at(apex_offset)),
                    [only] => response.rrset(Section::Answer, owner, only),
                    _ => response.record(Section::Answer, owner, &RFC8482_HINFO),
                }
                return Step::Done(Rcode::NoError, false);
            }
            if let Some(rrset) = node.rrset(qtype) {
                response.rrset(Section::Answer, owner, rrset);
                return Step::Done(Rcode::NoError, false);
            }
            let (Some(target), Some(cname)) = (&node.cname, node.rrset(rtype::CNAME)) else {
                negative(response, zone, owner_at(apex_offset));
                return Step::Done(Rcode::NoError, false);
            };
            response.rrset(Section::Answer, owner, cname);
            Step::Follow(target)
        }
    }
}

/// Answers a GSLB name: the client's ordered regions from the service's map, the policy's
/// decision under the published health, and the ECS scope the decision depends on.
fn answer_service<'s>(
    snapshot: &'s Snapshot,
    service: &'s Service,
    name: &[u8],
    qtype: u16,
    client: &Client,
    owner_at: impl Fn(usize) -> Owner<'s>,
    response: &mut Response<'_>,
) -> Step<'s> {
    let (candidates, geo_scope) = match service.map {
        Some(map) => snapshot
            .geo
            .locate(map, client.resolver, client.ecs.as_ref()),
        None => (&[][..], 0),
    };
    let (key, key_scope) =
        snapshot
            .geo
            .client_key(service.map, client.resolver, client.ecs.as_ref());
    let health = snapshot.health.load();
    let decision = policy::decide(
        &service.plan,
        &service.records,
        &health,
        qtype,
        candidates,
        key,
    );
    response.ecs_scope(if decision.hashed {
        geo_scope.max(key_scope)
    } else {
        geo_scope
    });
    let counted = match decision.outcome {
        policy::Outcome::Regions(picks) => picks.as_slice().first().copied(),
        _ => None,
    };
    let counter = counted.map_or(service.counters.len().wrapping_sub(1), usize::from);
    if let Some(counters) = service.counters.get(counter) {
        counters.count(decision.reason.index());
    }
    let records = service.records(decision.degraded);
    let chosen = |region: RegionId| {
        records
            .get(usize::from(region))
            .and_then(Option::as_ref)
            .and_then(|records| records.answer(qtype))
    };
    let mut follow = None;
    let mut wrote = false;
    match decision.outcome {
        policy::Outcome::Regions(picks) => {
            for &region in picks.as_slice() {
                match chosen(region) {
                    Some(Choice::Records(rrset)) => {
                        response.rrset(Section::Answer, owner_at(0), rrset);
                        wrote = true;
                    }
                    Some(Choice::Cname(rrset, target)) if !wrote => {
                        response.rrset(Section::Answer, owner_at(0), rrset);
                        follow = Some(target);
                        break;
                    }
                    Some(Choice::Cname(..)) | None => {}
                }
            }
        }
        policy::Outcome::Fallback => {
            match service.fallback.as_ref().and_then(|r| r.answer(qtype)) {
                Some(Choice::Records(rrset)) => {
                    response.rrset(Section::Answer, owner_at(0), rrset);
                    wrote = true;
                }
                Some(Choice::Cname(rrset, target)) => {
                    response.rrset(Section::Answer, owner_at(0), rrset);
                    follow = Some(target);
                }
                None => {}
            }
        }
        policy::Outcome::NoData => {}
        policy::Outcome::ServFail => return Step::Done(Rcode::ServFail, false),
    }
    response.authoritative();
    if let Some(target) = follow {
        return Step::Follow(target);
    }
    if !wrote && let Some((zone, apex_offset)) = snapshot.zones.find(name) {
        negative(response, zone, owner_at(apex_offset));
    }
    Step::Done(Rcode::NoError, false)
}

/// Writes the SOA of `zone` into the authority section of a negative answer (RFC 2308).
fn negative(response: &mut Response<'_>, zone: &Zone, apex: Owner<'_>) {
    let soa: &RRset = zone.negative_soa();
    response.rrset(Section::Authority, apex, soa);
}
