//! Zones: master files turned into immutable, lowercased, wire-ready record sets.
//!
//! [`parse`] reads master files into [`SourceRecord`]s with their file and line. [`Zone::build`]
//! checks the zone's semantics (one SOA at the apex, NS at the apex, CNAME exclusivity, no
//! out-of-zone data) and then pre-renders every RRset into DNS wire format, so the query path
//! only copies bytes: see [`RRset`].
//!
//! Architecture invariant: every name stored here is lowercase wire format, and every ancestor
//! of a stored name up to the apex is stored too (as an empty non-terminal if it owns no data),
//! so "does this name exist" is one hash lookup.

pub mod parse;
mod set;

pub use parse::{Location, ParseError, SourceRecord};
pub use set::{ZoneSet, load_zones};

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use hickory_proto::rr::{Name, RData};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use rustc_hash::FxHashMap;

/// Record type codes the zone and answer code refer to.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Name server.
    pub const NS: u16 = 2;
    /// Canonical name.
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Host information (RFC 8482 synthesised answers to ANY).
    pub const HINFO: u16 = 13;
    /// Subtree redirection (RFC 6672); not supported.
    pub const DNAME: u16 = 39;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// EDNS(0) pseudo-record.
    pub const OPT: u16 = 41;
    /// Delegation signer: lives on the parent side of a zone cut.
    pub const DS: u16 = 43;
    /// Incremental zone transfer.
    pub const IXFR: u16 = 251;
    /// Full zone transfer.
    pub const AXFR: u16 = 252;
    /// Obsolete mailbox meta-query.
    pub const MAILB: u16 = 253;
    /// Obsolete mail agent meta-query.
    pub const MAILA: u16 = 254;
    /// Any type.
    pub const ANY: u16 = 255;
}

/// The class every stored record has.
const CLASS_IN: u16 = 1;

/// Records grouped by lowercase wire owner, then by type, in file order within each RRset.
type Owners = BTreeMap<Box<[u8]>, BTreeMap<u16, Vec<SourceRecord>>>;

/// A zone that cannot be served as written.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The master file could not be read or parsed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A record breaks a rule about what a zone may contain.
    #[error("{location}: {message}")]
    Invalid {
        /// The offending record.
        location: Location,
        /// What is wrong and what to do.
        message: String,
    },
    /// The zone as a whole lacks something, or the zones directory is unusable.
    #[error("{}: {message}", path.display())]
    File {
        /// The zone file or directory.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Something in a zone that is served, but probably not what the operator meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The record the warning is about.
    pub location: Location,
    /// What looks wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.location, self.message)
    }
}

/// The records of one type at one name, pre-rendered for the wire.
///
/// `wire` holds each record without its owner name: TYPE, CLASS, TTL, RDLENGTH and RDATA, with
/// names inside RDATA uncompressed so the bytes are valid at any position in any message. The
/// writer prefixes each record with an owner (a compression pointer or a full name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RRset {
    /// Record type code.
    pub rtype: u16,
    /// Number of records.
    pub count: u16,
    /// The owner-less records, back to back.
    pub wire: Box<[u8]>,
}

impl RRset {
    /// Pre-renders `records` (all of one type; duplicates already removed) with TTL `ttl`.
    pub fn render(rtype: u16, ttl: u32, records: &[&RData]) -> RRset {
        let mut wire = Vec::new();
        for rdata in records {
            wire.extend_from_slice(&rtype.to_be_bytes());
            wire.extend_from_slice(&CLASS_IN.to_be_bytes());
            wire.extend_from_slice(&ttl.to_be_bytes());
            let rdata = encode_rdata(rdata);
            wire.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            wire.extend_from_slice(&rdata);
        }
        RRset {
            rtype,
            count: records.len() as u16,
            wire: wire.into_boxed_slice(),
        }
    }

    /// Each record's owner-less wire bytes.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.wire[..];
        std::iter::from_fn(move || {
            if rest.len() < 10 {
                return None;
            }
            let len = 10 + usize::from(u16::from_be_bytes([rest[8], rest[9]]));
            let (record, tail) = rest.split_at(len.min(rest.len()));
            rest = tail;
            Some(record)
        })
    }

    /// The TTL shared by the records.
    pub fn ttl(&self) -> u32 {
        match self.wire.get(4..8) {
            Some(ttl) => u32::from_be_bytes([ttl[0], ttl[1], ttl[2], ttl[3]]),
            None => 0,
        }
    }
}

/// Encodes RDATA with no name compression, so it can be copied anywhere.
fn encode_rdata(rdata: &RData) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    // Encoding into a Vec fails only for values the parser never produces (e.g. oversized
    // strings); the parser already rejected those, so an error here is a bug worth crashing on.
    rdata
        .emit(&mut encoder)
        .expect("parsed RDATA always encodes");
    bytes
}

/// Everything needed to answer a query at or below a zone cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    /// The NS RRset at the cut (owner: the cut).
    pub ns: RRset,
    /// Address records of the name servers that this zone holds, as (owner, RRset).
    pub glue: Box<[(Box<[u8]>, RRset)]>,
    /// Whether some name server below the cut has no address here (its glue is missing).
    pub missing_glue: bool,
}

/// One name in a zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// RRsets at this name, sorted by type. Empty for an empty non-terminal.
    pub rrsets: Box<[RRset]>,
    /// Set when this name is a zone cut (NS below the apex).
    pub cut: Option<Box<Referral>>,
    /// The CNAME target (lowercase wire) when this name owns a CNAME.
    pub cname: Option<Box<[u8]>>,
}

impl Node {
    /// The RRset of type `rtype` at this name.
    pub fn rrset(&self, rtype: u16) -> Option<&RRset> {
        self.rrsets.iter().find(|rrset| rrset.rtype == rtype)
    }
}

/// A zone ready to answer from.
#[derive(Debug)]
pub struct Zone {
    /// The apex, lowercase, for display.
    origin: Name,
    /// The apex in lowercase wire format.
    apex: Box<[u8]>,
    /// Every name in the zone (and every ancestor up to the apex), by lowercase wire name.
    nodes: FxHashMap<Box<[u8]>, Node>,
    /// The SOA for negative answers, TTL = min(SOA TTL, SOA MINIMUM) (RFC 2308 section 3).
    negative_soa: RRset,
    /// SOA serial, for logs and status.
    serial: u32,
    /// Whether the zone has any cut below its apex (lets queries skip the cut walk).
    has_cuts: bool,
    /// Number of records served.
    records: usize,
    /// The master file it was read from, for errors found after loading.
    file: std::path::PathBuf,
}

impl Zone {
    /// Checks `records` as the contents of zone `origin` and pre-renders them.
    ///
    /// `file` names the zone's master file for errors about the zone as a whole.
    pub fn build(
        origin: &Name,
        file: &std::path::Path,
        records: Vec<SourceRecord>,
    ) -> Result<(Zone, Vec<Warning>), ZoneError> {
        let origin = origin.to_lowercase();
        let apex = wire_name(&origin);
        let mut warnings = Vec::new();

        // Group by lowercase owner, then by type, keeping file order inside each RRset.
        let mut owners: Owners = BTreeMap::new();
        for record in records {
            if !origin.zone_of(&record.name.to_lowercase()) {
                return Err(ZoneError::Invalid {
                    location: record.location.clone(),
                    message: format!(
                        "{} is outside zone {origin}: a zone file holds only names at or below its origin",
                        record.name
                    ),
                });
            }
            let rtype = u16::from(record.rdata.record_type());
            let owner = wire_name(&record.name.to_lowercase());
            let set = owners
                .entry(owner.into())
                .or_default()
                .entry(rtype)
                .or_default();
            if set.iter().any(|seen| seen.rdata == record.rdata) {
                warnings.push(Warning {
                    location: record.location.clone(),
                    message: format!(
                        "duplicate {} record at {} ignored",
                        record.rdata.record_type(),
                        record.name
                    ),
                });
                continue;
            }
            set.push(record);
        }

        let soa = check_apex(&origin, &apex, file, &owners)?;
        for (owner, types) in &owners {
            check_node(&origin, owner, types, &apex)?;
        }

        let mut nodes: FxHashMap<Box<[u8]>, Node> = FxHashMap::default();
        let mut count = 0;
        for (owner, types) in &owners {
            let mut rrsets = Vec::with_capacity(types.len());
            for (&rtype, set) in types {
                let ttl = set[0].ttl;
                for record in &set[1..] {
                    if record.ttl != ttl {
                        warnings.push(Warning {
                            location: record.location.clone(),
                            message: format!(
                                "TTL {} differs from {} of the first {} record at {} (RFC 2181 5.2); serving {ttl}",
                                record.ttl,
                                ttl,
                                record.rdata.record_type(),
                                record.name
                            ),
                        });
                    }
                }
                let rdatas: Vec<&RData> = set.iter().map(|record| &record.rdata).collect();
                count += rdatas.len();
                rrsets.push(RRset::render(rtype, ttl, &rdatas));
            }
            let cname = types
                .get(&rtype::CNAME)
                .and_then(|set| match &set[0].rdata {
                    RData::CNAME(target) => Some(wire_name(&target.0.to_lowercase()).into()),
                    _ => None,
                });
            nodes.insert(
                owner.clone(),
                Node {
                    rrsets: rrsets.into_boxed_slice(),
                    cut: None,
                    cname,
                },
            );
            // Empty non-terminals: every ancestor up to the apex exists.
            let mut parent = parent_of(owner);
            while let Some(name) = parent {
                if name.len() < apex.len() {
                    break;
                }
                nodes.entry(name.into()).or_default();
                parent = parent_of(name);
            }
        }

        let mut has_cuts = false;
        for (owner, types) in &owners {
            if owner[..] == apex[..] || !types.contains_key(&rtype::NS) {
                continue;
            }
            if is_below_cut(owner, &apex, &owners) {
                continue;
            }
            has_cuts = true;
            let referral = build_referral(owner, types, &apex, &nodes, &mut warnings);
            if let Some(node) = nodes.get_mut(owner) {
                node.cut = Some(Box::new(referral));
            }
        }
        warn_occluded(&apex, &owners, &mut warnings);
        warn_missing_apex_glue(&origin, &apex, &owners, &mut warnings);

        let (soa_record, soa_minimum, serial) = soa;
        let negative_ttl = soa_record.ttl.min(soa_minimum);
        let negative_soa = RRset::render(rtype::SOA, negative_ttl, &[&soa_record.rdata]);
        Ok((
            Zone {
                origin,
                apex: apex.into(),
                nodes,
                negative_soa,
                serial,
                has_cuts,
                records: count,
                file: file.to_path_buf(),
            },
            warnings,
        ))
    }

    /// The zone's apex name (lowercase).
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The apex in lowercase wire format.
    pub fn apex(&self) -> &[u8] {
        &self.apex
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The master file the zone was read from.
    pub fn file(&self) -> &std::path::Path {
        &self.file
    }

    /// How many records the zone serves.
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// Whether any zone cut lies below the apex.
    pub fn has_cuts(&self) -> bool {
        self.has_cuts
    }

    /// The node at lowercase wire name `name`, if it exists (data or empty non-terminal).
    pub fn node(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// The SOA RRset to put in the authority section of negative answers.
    pub fn negative_soa(&self) -> &RRset {
        &self.negative_soa
    }
}

/// The SOA record, its MINIMUM and its serial, after checking the apex has one SOA and NS.
fn check_apex<'a>(
    origin: &Name,
    apex: &[u8],
    file: &std::path::Path,
    owners: &'a Owners,
) -> Result<(&'a SourceRecord, u32, u32), ZoneError> {
    let at_apex = owners.get(apex);
    let soas = at_apex.and_then(|types| types.get(&rtype::SOA));
    let soa = match soas.map(Vec::as_slice) {
        None | Some([]) => {
            return Err(ZoneError::File {
                path: file.to_path_buf(),
                message: format!(
                    "zone {origin} has no SOA record at its apex: add one (\"@ SOA ...\")"
                ),
            });
        }
        Some([soa]) => soa,
        Some([first, second, ..]) => {
            return Err(ZoneError::Invalid {
                location: second.location.clone(),
                message: format!(
                    "second SOA record at the apex of {origin} (the first is at {}): a zone has exactly one",
                    first.location
                ),
            });
        }
    };
    if !at_apex.is_some_and(|types| types.contains_key(&rtype::NS)) {
        return Err(ZoneError::Invalid {
            location: soa.location.clone(),
            message: format!(
                "zone {origin} has no NS records at its apex: add at least one (\"@ NS ns1...\")"
            ),
        });
    }
    let RData::SOA(fields) = &soa.rdata else {
        unreachable!("records are grouped by their own type");
    };
    Ok((soa, fields.minimum, fields.serial))
}

/// Checks the rules about what one name may own.
fn check_node(
    origin: &Name,
    owner: &[u8],
    types: &BTreeMap<u16, Vec<SourceRecord>>,
    apex: &[u8],
) -> Result<(), ZoneError> {
    let first = |rtype: u16| types.get(&rtype).and_then(|set| set.first());
    if owner != apex
        && let Some(soa) = first(rtype::SOA)
    {
        return Err(ZoneError::Invalid {
            location: soa.location.clone(),
            message: format!(
                "SOA record at {} is not at the apex of zone {origin}",
                soa.name
            ),
        });
    }
    if let Some(dname) = first(rtype::DNAME) {
        return Err(ZoneError::Invalid {
            location: dname.location.clone(),
            message: format!(
                "DNAME record at {}: DNAME redirection is not supported; use CNAME records",
                dname.name
            ),
        });
    }
    if let Some(cnames) = types.get(&rtype::CNAME) {
        let cname = &cnames[0];
        if let Some(second) = cnames.get(1) {
            return Err(ZoneError::Invalid {
                location: second.location.clone(),
                message: format!(
                    "second CNAME at {} (the first is at {}): a name has at most one CNAME (RFC 2181 10.1)",
                    cname.name, cname.location
                ),
            });
        }
        if let Some((_, other)) = types.iter().find(|(rtype, _)| **rtype != rtype::CNAME) {
            let other = &other[0];
            let (earlier, later) = if other.location.line < cname.location.line
                && other.location.file == cname.location.file
            {
                (other, cname)
            } else {
                (cname, other)
            };
            return Err(ZoneError::Invalid {
                location: later.location.clone(),
                message: format!(
                    "{} record at {} conflicts with the {} record at {}: a name with a CNAME may own no other data (RFC 1034 3.6.2)",
                    later.rdata.record_type(),
                    later.name,
                    earlier.rdata.record_type(),
                    earlier.location
                ),
            });
        }
    }
    if owner.starts_with(b"\x01*")
        && let Some(ns) = first(rtype::NS)
    {
        return Err(ZoneError::Invalid {
            location: ns.location.clone(),
            message: format!(
                "NS records at wildcard name {} are not allowed (RFC 4592 4.2)",
                ns.name
            ),
        });
    }
    Ok(())
}

/// Whether `owner` lies strictly below some other zone cut of the zone.
fn is_below_cut(owner: &[u8], apex: &[u8], owners: &Owners) -> bool {
    let mut parent = parent_of(owner);
    while let Some(name) = parent {
        if name.len() <= apex.len() {
            return false;
        }
        if owners
            .get(name)
            .is_some_and(|types| types.contains_key(&rtype::NS))
        {
            return true;
        }
        parent = parent_of(name);
    }
    false
}

/// Builds the referral for the cut at `owner`: its NS RRset and the glue this zone holds.
fn build_referral(
    owner: &[u8],
    types: &BTreeMap<u16, Vec<SourceRecord>>,
    apex: &[u8],
    nodes: &FxHashMap<Box<[u8]>, Node>,
    warnings: &mut Vec<Warning>,
) -> Referral {
    let ns = nodes
        .get(owner)
        .and_then(|node| node.rrset(rtype::NS))
        .cloned()
        .unwrap_or_else(|| unreachable!("a cut owns NS records"));
    let mut glue = Vec::new();
    let mut missing_glue = false;
    for record in &types[&rtype::NS] {
        let RData::NS(target) = &record.rdata else {
            continue;
        };
        let target = wire_name(&target.0.to_lowercase());
        if !is_subdomain(&target, apex) {
            continue;
        }
        let addresses: Vec<&RRset> = nodes
            .get(&target[..])
            .map(|node| {
                node.rrsets
                    .iter()
                    .filter(|set| matches!(set.rtype, rtype::A | rtype::AAAA))
                    .collect()
            })
            .unwrap_or_default();
        if addresses.is_empty() {
            if is_subdomain(&target, owner) {
                missing_glue = true;
                warnings.push(Warning {
                    location: record.location.clone(),
                    message: format!(
                        "missing glue: name server {} is below the delegation {} but has no A or AAAA record here",
                        record.rdata, display_name(owner)
                    ),
                });
            }
            continue;
        }
        if glue
            .iter()
            .any(|(name, _): &(Box<[u8]>, RRset)| name[..] == target[..])
        {
            continue;
        }
        for set in addresses {
            glue.push((target.clone().into_boxed_slice(), set.clone()));
        }
    }
    Referral {
        ns,
        glue: glue.into_boxed_slice(),
        missing_glue,
    }
}

/// Warns about data below a zone cut other than glue addresses: it is never served.
fn warn_occluded(apex: &[u8], owners: &Owners, warnings: &mut Vec<Warning>) {
    for (owner, types) in owners {
        if !is_below_cut(owner, apex, owners) {
            continue;
        }
        for (rtype, set) in types {
            if !matches!(*rtype, rtype::A | rtype::AAAA) {
                warnings.push(Warning {
                    location: set[0].location.clone(),
                    message: format!(
                        "{} record at {} is below a zone cut and will not be served (only glue belongs there)",
                        set[0].rdata.record_type(),
                        set[0].name
                    ),
                });
            }
        }
    }
}

/// Warns about apex name servers inside the zone that have no address record.
fn warn_missing_apex_glue(
    origin: &Name,
    apex: &[u8],
    owners: &Owners,
    warnings: &mut Vec<Warning>,
) {
    let Some(apex_ns) = owners.get(apex).and_then(|types| types.get(&rtype::NS)) else {
        return;
    };
    for record in apex_ns {
        let RData::NS(target) = &record.rdata else {
            continue;
        };
        let target = wire_name(&target.0.to_lowercase());
        if !is_subdomain(&target, apex) {
            continue;
        }
        let has_address = owners
            .get(&target[..])
            .is_some_and(|types| types.contains_key(&rtype::A) || types.contains_key(&rtype::AAAA));
        if !has_address {
            warnings.push(Warning {
                location: record.location.clone(),
                message: format!(
                    "missing glue: name server {} is inside zone {origin} but has no A or AAAA record",
                    record.rdata
                ),
            });
        }
    }
}

/// `name` in lowercase-preserving wire format (labels as given, no compression).
pub fn wire_name(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
    }
    wire.push(0);
    wire
}

/// The wire name one label up from `name`, or `None` at the root.
pub fn parent_of(name: &[u8]) -> Option<&[u8]> {
    let first = usize::from(*name.first()?);
    if first == 0 {
        return None;
    }
    name.get(first + 1..)
}

/// Whether wire name `name` is `ancestor` or below it (both lowercase).
pub fn is_subdomain(name: &[u8], ancestor: &[u8]) -> bool {
    let mut current = Some(name);
    while let Some(candidate) = current {
        if candidate.len() < ancestor.len() {
            return false;
        }
        if candidate == ancestor {
            return true;
        }
        current = parent_of(candidate);
    }
    false
}

/// A wire name in presentation format, for messages.
pub fn display_name(wire: &[u8]) -> String {
    let mut text = String::new();
    let mut rest = wire;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0 {
            break;
        }
        let Some(label) = tail.get(..usize::from(len)) else {
            break;
        };
        for &byte in label {
            match byte {
                b'.' | b'\\' => {
                    text.push('\\');
                    text.push(char::from(byte));
                }
                0x21..=0x7e => text.push(char::from(byte)),
                _ => text.push_str(&format!("\\{byte:03}")),
            }
        }
        text.push('.');
        rest = &tail[usize::from(len)..];
    }
    if text.is_empty() {
        text.push('.');
    }
    text
}

#[cfg(test)]
mod tests;
