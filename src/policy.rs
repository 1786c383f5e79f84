//! Answer policy: which region's records answer a GSLB name for a client.
//!
//! Architecture invariant: this module is pure. It sees the service's plan and pre-rendered
//! records, the client's ordered candidate regions and hash key, and the published health view;
//! it does no I/O, reads no clock, draws no randomness and allocates nothing, so the data plane
//! and `explain` call the very same code and get the very same answer.

use crate::config::{AllDown, RegionId};
use crate::zone::{RRset, rtype};

/// What one region answers for a service, pre-rendered for the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionRecords {
    /// A records, when the region has IPv4 addresses.
    pub a: Option<RRset>,
    /// AAAA records, when the region has IPv6 addresses.
    pub aaaa: Option<RRset>,
    /// A CNAME record and its target (lowercase wire), when the region answers with a CNAME.
    pub cname: Option<(RRset, Box<[u8]>)>,
}

/// What a service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice<'s> {
    /// These records.
    Records(&'s RRset),
    /// This CNAME; the chain continues at the target (lowercase wire).
    Cname(&'s RRset, &'s [u8]),
}

impl RegionRecords {
    /// What this region answers for `qtype`, if it has anything of that type. A CNAME answers
    /// every type; ANY gets one RRset (RFC 8482).
    pub fn answer(&self, qtype: u16) -> Option<Choice<'_>> {
        if let Some((cname, target)) = &self.cname {
            return Some(Choice::Cname(cname, target));
        }
        match qtype {
            rtype::A => self.a.as_ref().map(Choice::Records),
            rtype::AAAA => self.aaaa.as_ref().map(Choice::Records),
            rtype::ANY => self.a.as_ref().or(self.aaaa.as_ref()).map(Choice::Records),
            _ => None,
        }
    }
}

/// Most regions one answer combines.
pub const MAX_PICKS: usize = crate::config::MAX_ANSWER_REGIONS as usize;

/// What the data plane knows of one region right now: observed health and operator intent,
/// already combined by the control plane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionStatus {
    /// Whether the region may serve at all.
    pub up: bool,
    /// Share of its normal traffic it should get, 0.0 to 1.0 (a drain ramps this to zero; a
    /// pool reporting half its backends healthy lowers it).
    pub factor: f64,
    /// Whether it is down, draining or in a drill: answers that involve it use the degraded TTL.
    pub degraded: bool,
}

impl RegionStatus {
    /// Up, at full share, nothing unusual.
    pub const NOMINAL: RegionStatus = RegionStatus {
        up: true,
        factor: 1.0,
        degraded: false,
    };

    /// Down.
    pub const DOWN: RegionStatus = RegionStatus {
        up: false,
        factor: 0.0,
        degraded: true,
    };

    /// Whether the region can take any traffic.
    fn alive(self) -> bool {
        self.up && self.factor > 0.0
    }
}

/// The health input of every decision: one status per region id, and per service whether a
/// manual-failback service is held on its standby tiers. Published whole by the control plane.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthView {
    /// Status by region id; regions past the end are nominal.
    pub regions: Box<[RegionStatus]>,
    /// By service index: held on standby until an operator clears it.
    pub held: Box<[bool]>,
}

impl HealthView {
    /// The status of `region`.
    pub fn region(&self, region: RegionId) -> RegionStatus {
        self.regions
            .get(usize::from(region))
            .copied()
            .unwrap_or(RegionStatus::NOMINAL)
    }

    /// Whether service `index` is held on standby.
    pub fn held(&self, index: usize) -> bool {
        self.held.get(index).copied().unwrap_or(false)
    }
}

/// How a service chooses, in the form the decision needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The client's map order; `spread` regions answer; `spill` spreads a lost region's clients
    /// by capacity.
    Geo {
        /// Regions that answer together.
        spread: u8,
        /// Spill by capacity instead of to the next region.
        spill_capacity: bool,
    },
    /// Weighted rendezvous hashing of the client over the regions.
    Weighted {
        /// Region and weight.
        weights: Box<[(RegionId, f64)]>,
        /// Regions that answer together.
        max_answers: u8,
    },
    /// Tiers, first healthy tier wins.
    Failover {
        /// Region ids per tier, primaries first.
        tiers: Box<[Box<[RegionId]>]>,
    },
}

/// Everything about a service that the decision reads, fixed at load.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    /// The policy.
    pub plan: Plan,
    /// What to do when no region is up.
    pub all_down: AllDown,
    /// Capacity by region id (1.0 where not configured), for spill.
    pub capacity: Box<[f64]>,
    /// Every region the service answers from, for the degraded TTL.
    pub regions: Box<[RegionId]>,
    /// Mixed into client hashes so services spread independently.
    pub salt: u64,
    /// The service's index, for [`HealthView::held`].
    pub index: usize,
}

/// Up to [`MAX_PICKS`] regions, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Picks {
    /// The regions; only the first `len` are meaningful.
    ids: [RegionId; MAX_PICKS],
    /// How many there are.
    len: u8,
}

impl Picks {
    /// Adds `region` at the end (ignored when full).
    fn push(&mut self, region: RegionId) {
        if usize::from(self.len) < MAX_PICKS {
            self.ids[usize::from(self.len)] = region;
            self.len += 1;
        }
    }

    /// The regions, best first.
    pub fn as_slice(&self) -> &[RegionId] {
        &self.ids[..usize::from(self.len)]
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What the service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// These regions' records, in this order.
    Regions(Picks),
    /// The service's fallback answer.
    Fallback,
    /// NOERROR with no records (the SOA in authority).
    NoData,
    /// SERVFAIL.
    ServFail,
}

/// Why the decision came out as it did; `explain` shows it and metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The client's first choice (or, for failover, the primary tier) answers.
    Preferred,
    /// The first choice is down or draining; a later region of the client's list answers.
    FailedOver,
    /// The first choice is down; its clients are spread over the rest by capacity.
    Spilled,
    /// Chosen by weight.
    Weighted,
    /// Every primary is down (or the service is held); standby tier `n` answers.
    Standby(u8),
    /// No region is up: answering as if all were (fail open).
    AllDownServeAll,
    /// No region is up: the fallback answers.
    AllDownFallback,
    /// No region is up: NODATA.
    AllDownNoData,
    /// No region is up: SERVFAIL.
    AllDownServFail,
    /// No region has records of the queried type.
    NoRecords,
}

impl Reason {
    /// The position of [`Reason::label`] in `telemetry::REASONS`.
    pub fn index(self) -> usize {
        match self {
            Reason::Preferred => 0,
            Reason::FailedOver => 1,
            Reason::Spilled => 2,
            Reason::Weighted => 3,
            Reason::Standby(_) => 4,
            Reason::AllDownServeAll => 5,
            Reason::AllDownFallback => 6,
            Reason::AllDownNoData => 7,
            Reason::AllDownServFail => 8,
            Reason::NoRecords => 9,
        }
    }

    /// A stable lowercase label, for metrics and JSON.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Preferred => "preferred",
            Reason::FailedOver => "failed_over",
            Reason::Spilled => "spilled",
            Reason::Weighted => "weighted",
            Reason::Standby(_) => "standby",
            Reason::AllDownServeAll => "all_down_serve_all",
            Reason::AllDownFallback => "all_down_fallback",
            Reason::AllDownNoData => "all_down_nodata",
            Reason::AllDownServFail => "all_down_servfail",
            Reason::NoRecords => "no_records",
        }
    }
}

/// The decision for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to answer.
    pub outcome: Outcome,
    /// Why.
    pub reason: Reason,
    /// Answer with the degraded TTL: a region of the service is down, draining or in a drill.
    pub degraded: bool,
    /// The choice depends on the hash of the client address, so the ECS scope must cover the
    /// address bits that were hashed.
    pub hashed: bool,
}

/// Decides what service `plan` answers to a `qtype` query from a client whose map gives
/// `candidates` (empty for services without a map), given `health`. `key` identifies the
/// client for weighted and spill choices (its address cut to the ECS scope), so one client
/// subnet always gets the same answer while nothing changes.
///
/// `records` is indexed by region id; a region answers a query only if its records have the
/// type (or a CNAME).
pub fn decide(
    plan: &ServicePlan,
    records: &[Option<RegionRecords>],
    health: &HealthView,
    qtype: u16,
    candidates: &[RegionId],
    key: u64,
) -> Decision {
    let usable = |region: RegionId| {
        records
            .get(usize::from(region))
            .and_then(Option::as_ref)
            .is_some_and(|records| records.answer(qtype).is_some())
    };
    let degraded = plan
        .regions
        .iter()
        .any(|&region| health.region(region).degraded || !health.region(region).up);
    let chooser = Chooser {
        plan,
        usable: &usable,
        key,
    };
    let live = |region: RegionId| health.region(region);
    let pick = match &plan.plan {
        Plan::Geo {
            spread,
            spill_capacity,
        } => chooser.geo(candidates, *spread, *spill_capacity, &live),
        Plan::Weighted {
            weights,
            max_answers,
        } => chooser.weighted(weights, *max_answers, &live),
        Plan::Failover { tiers } => {
            chooser.failover(tiers, candidates, health.held(plan.index), &live)
        }
    };
    let decision = |outcome, reason, hashed| Decision {
        outcome,
        reason,
        degraded,
        hashed,
    };
    match pick {
        Pick::Chosen(picks, reason, hashed) => decision(Outcome::Regions(picks), reason, hashed),
        Pick::NoRecords => decision(Outcome::NoData, Reason::NoRecords, false),
        Pick::AllDown => match plan.all_down {
            AllDown::ServeAll => {
                let nominal = |_: RegionId| RegionStatus::NOMINAL;
                let pick = match &plan.plan {
                    Plan::Geo { spread, .. } => chooser.geo(candidates, *spread, false, &nominal),
                    Plan::Weighted {
                        weights,
                        max_answers,
                    } => chooser.weighted(weights, *max_answers, &nominal),
                    Plan::Failover { tiers } => {
                        chooser.failover(tiers, candidates, false, &nominal)
                    }
                };
                match pick {
                    Pick::Chosen(picks, _, hashed) => Decision {
                        outcome: Outcome::Regions(picks),
                        reason: Reason::AllDownServeAll,
                        degraded: true,
                        hashed,
                    },
                    Pick::NoRecords | Pick::AllDown => Decision {
                        outcome: Outcome::NoData,
                        reason: Reason::NoRecords,
                        degraded: true,
                        hashed: false,
                    },
                }
            }
            AllDown::Fallback => decision(Outcome::Fallback, Reason::AllDownFallback, false),
            AllDown::NoData => decision(Outcome::NoData, Reason::AllDownNoData, false),
            AllDown::ServFail => decision(Outcome::ServFail, Reason::AllDownServFail, false),
        },
    }
}

/// The result of one policy's choice, before all-down handling.
enum Pick {
    /// These regions, why, and whether the client hash decided.
    Chosen(Picks, Reason, bool),
    /// No region has records of the type.
    NoRecords,
    /// Regions have records, but none is up.
    AllDown,
}

/// The per-policy choices, sharing the client key and the record filter.
struct Chooser<'a> {
    /// The service.
    plan: &'a ServicePlan,
    /// Whether a region has records answering the query type.
    usable: &'a dyn Fn(RegionId) -> bool,
    /// The client's hash key.
    key: u64,
}

impl Chooser<'_> {
    /// A uniform number in (0, 1] for this client and `region`, fixed while the key is.
    fn unit(&self, region: RegionId) -> f64 {
        let mixed = mix(self.key ^ self.plan.salt ^ mix(u64::from(region) + 1));
        ((mixed >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Whether a region with traffic share `factor` keeps this client (a drain ramps the share
    /// down; the clients it sheds are those with the highest unit values).
    fn keeps(&self, region: RegionId, factor: f64) -> bool {
        factor >= 1.0 || self.unit(region) <= factor
    }

    /// The `count` regions of `regions` with the best weighted rendezvous scores (weighted
    /// rendezvous hashing: each region gets the client with probability proportional to its
    /// weight, and removing a region moves only its own clients).
    fn rendezvous(&self, regions: impl Iterator<Item = (RegionId, f64)>, count: u8) -> Picks {
        let mut best: [(f64, RegionId); MAX_PICKS] = [(f64::INFINITY, 0); MAX_PICKS];
        let count = usize::from(count).clamp(1, MAX_PICKS);
        let mut len = 0;
        for (region, weight) in regions {
            if weight <= 0.0 {
                continue;
            }
            let score = -self.unit(region).ln() / weight;
            if len == count && score >= best[count - 1].0 {
                continue;
            }
            let mut at = len.min(count - 1);
            if len < count {
                len += 1;
            }
            while at > 0 && best[at - 1].0 > score {
                best[at] = best[at - 1];
                at -= 1;
            }
            best[at] = (score, region);
        }
        let mut picks = Picks::default();
        for &(_, region) in &best[..len] {
            picks.push(region);
        }
        picks
    }

    /// The first `count` live regions of `regions` in order, skipping the clients a draining
    /// region sheds; and whether a drain's hash decided anything.
    fn in_order(
        &self,
        regions: impl Iterator<Item = RegionId>,
        count: u8,
        alive: &dyn Fn(RegionId) -> bool,
        status: &dyn Fn(RegionId) -> RegionStatus,
    ) -> (Picks, bool) {
        let mut picks = Picks::default();
        let mut hashed = false;
        for region in regions {
            if usize::from(picks.len) == usize::from(count) {
                break;
            }
            if !alive(region) {
                continue;
            }
            let factor = status(region).factor;
            if factor < 1.0 {
                hashed = true;
                if !self.keeps(region, factor) {
                    continue;
                }
            }
            picks.push(region);
        }
        (picks, hashed)
    }

    /// `geo`: the client's list in order, skipping regions that are down (and the clients a
    /// draining region sheds); with `spill_capacity`, the clients of a lost first choice are
    /// spread over the rest of the list by capacity.
    fn geo(
        &self,
        candidates: &[RegionId],
        spread: u8,
        spill_capacity: bool,
        status: &dyn Fn(RegionId) -> RegionStatus,
    ) -> Pick {
        let Some(first) = candidates.iter().copied().find(|&r| (self.usable)(r)) else {
            return Pick::NoRecords;
        };
        let alive = |region: RegionId| (self.usable)(region) && status(region).alive();
        if !candidates.iter().any(|&region| alive(region)) {
            return Pick::AllDown;
        }
        if spill_capacity && !alive(first) {
            let weights = candidates.iter().filter(|&&r| alive(r)).map(|&region| {
                let capacity = self.plan.capacity.get(usize::from(region)).copied();
                (region, capacity.unwrap_or(1.0) * status(region).factor)
            });
            let picks = self.rendezvous(weights, spread);
            return Pick::Chosen(picks, Reason::Spilled, true);
        }
        let (picks, hashed) = self.in_order(candidates.iter().copied(), spread, &alive, status);
        if picks.is_empty() {
            // Every live region is draining and shed this client: the least drained keeps it.
            let weights = candidates
                .iter()
                .filter(|&&r| alive(r))
                .map(|&region| (region, status(region).factor));
            return Pick::Chosen(self.rendezvous(weights, spread), Reason::FailedOver, true);
        }
        let reason = if picks.as_slice()[0] == first {
            Reason::Preferred
        } else {
            Reason::FailedOver
        };
        Pick::Chosen(picks, reason, hashed)
    }

    /// `weighted`: rendezvous hashing over the live regions, weight times share.
    fn weighted(
        &self,
        weights: &[(RegionId, f64)],
        max_answers: u8,
        status: &dyn Fn(RegionId) -> RegionStatus,
    ) -> Pick {
        if !weights.iter().any(|&(region, _)| (self.usable)(region)) {
            return Pick::NoRecords;
        }
        let live = || {
            weights
                .iter()
                .filter(|&&(region, _)| (self.usable)(region) && status(region).alive())
                .map(|&(region, weight)| (region, weight * status(region).factor))
        };
        let alive = live().count();
        if alive == 0 {
            return Pick::AllDown;
        }
        let picks = self.rendezvous(live(), max_answers);
        if alive > usize::from(max_answers) {
            return Pick::Chosen(picks, Reason::Weighted, true);
        }
        // Every live region answers, so weights alone would never take a draining region out:
        // it sheds its share of clients instead (always keeping one region in the answer).
        let mut kept = Picks::default();
        let mut hashed = false;
        for (index, &region) in picks.as_slice().iter().enumerate() {
            let factor = status(region).factor;
            if factor < 1.0 {
                hashed = true;
                let last_chance = index + 1 == picks.as_slice().len() && kept.is_empty();
                if !self.keeps(region, factor) && !last_chance {
                    continue;
                }
            }
            kept.push(region);
        }
        Pick::Chosen(kept, Reason::Weighted, hashed)
    }

    /// `failover`: the first tier with a live region answers, in the client's map order when
    /// the service has a map, else spread evenly by the client hash. A held service skips its
    /// primaries while any standby is up.
    fn failover(
        &self,
        tiers: &[Box<[RegionId]>],
        candidates: &[RegionId],
        held: bool,
        status: &dyn Fn(RegionId) -> RegionStatus,
    ) -> Pick {
        if !tiers.iter().flatten().any(|&region| (self.usable)(region)) {
            return Pick::NoRecords;
        }
        let alive = |region: RegionId| (self.usable)(region) && status(region).alive();
        let order = (0..tiers.len())
            .skip(usize::from(held))
            .chain((held).then_some(0));
        // The first tier with a live region, kept for the clients every live region sheds.
        let mut shed: Option<(usize, Reason)> = None;
        let mut hashed = false;
        for index in order {
            let tier = &tiers[index];
            let live = tier.iter().filter(|&&region| alive(region)).count();
            if live == 0 {
                continue;
            }
            let reason = if index == 0 {
                Reason::Preferred
            } else {
                Reason::Standby(index.min(usize::from(u8::MAX)) as u8)
            };
            shed.get_or_insert((index, reason));
            if !candidates.is_empty() {
                // In map order: the client's list first, then the tier's own order.
                let in_map = candidates
                    .iter()
                    .copied()
                    .filter(|region| tier.contains(region));
                let rest = tier
                    .iter()
                    .copied()
                    .filter(|region| !candidates.contains(region));
                let (picks, drained) = self.in_order(in_map.chain(rest), 1, &alive, status);
                hashed |= drained;
                if !picks.is_empty() {
                    return Pick::Chosen(picks, reason, hashed);
                }
                continue;
            }
            // Without a map the client hash orders the tier (spreading clients evenly), and the
            // walk is the same.
            let ranked = self.rendezvous(
                tier.iter()
                    .filter(|&&region| alive(region))
                    .map(|&region| (region, 1.0)),
                MAX_PICKS as u8,
            );
            let (picks, drained) =
                self.in_order(ranked.as_slice().iter().copied(), 1, &alive, status);
            hashed |= drained;
            if !picks.is_empty() {
                return Pick::Chosen(picks, reason, hashed || live > 1);
            }
        }
        // Every live region shed this client (all are draining): the first live tier answers,
        // in proportion to what is left of each region's share.
        let Some((index, reason)) = shed else {
            return Pick::AllDown;
        };
        let weights = tiers[index]
            .iter()
            .filter(|&&region| alive(region))
            .map(|&region| (region, status(region).factor));
        Pick::Chosen(self.rendezvous(weights, 1), reason, true)
    }
}

/// SplitMix64's finaliser: a fast, well-distributed 64-bit mix, the same on every platform.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether a service answers queries of `qtype` itself (other types fall through to the zone).
pub fn handles(qtype: u16) -> bool {
    matches!(qtype, rtype::A | rtype::AAAA | rtype::CNAME | rtype::ANY)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RRset whose only content is a marker byte, to tell RRsets apart.
    fn marker(rtype: u16, byte: u8) -> RRset {
        RRset {
            rtype,
            count: 1,
            wire: Box::new([byte]),
        }
    }

    /// Regions 0..4: 0 has A only, 1 has A and AAAA, 2 has a CNAME, 3 has nothing configured.
    fn records() -> Vec<Option<RegionRecords>> {
        vec![
            Some(RegionRecords {
                a: Some(marker(rtype::A, 0)),
                ..RegionRecords::default()
            }),
            Some(RegionRecords {
                a: Some(marker(rtype::A, 1)),
                aaaa: Some(marker(rtype::AAAA, 1)),
                ..RegionRecords::default()
            }),
            Some(RegionRecords {
                cname: Some((marker(rtype::CNAME, 2), b"\x02lb\x00".to_vec().into())),
                ..RegionRecords::default()
            }),
            None,
        ]
    }

    /// `n` regions that all answer A.
    fn a_records(n: usize) -> Vec<Option<RegionRecords>> {
        (0..n)
            .map(|region| {
                Some(RegionRecords {
                    a: Some(marker(rtype::A, region as u8)),
                    ..RegionRecords::default()
                })
            })
            .collect()
    }

    /// A plan over regions `0..n` with `plan` and `all_down`.
    fn service(plan: Plan, all_down: AllDown, n: usize) -> ServicePlan {
        ServicePlan {
            plan,
            all_down,
            capacity: vec![1.0; n].into_boxed_slice(),
            regions: (0..n as RegionId).collect(),
            salt: 0x5eed,
            index: 0,
        }
    }

    /// A geo plan answering from one region.
    fn geo(n: usize) -> ServicePlan {
        service(
            Plan::Geo {
                spread: 1,
                spill_capacity: false,
            },
            AllDown::ServeAll,
            n,
        )
    }

    /// Health with the regions in `down` (a bit mask) down.
    fn health(n: usize, down: u32) -> HealthView {
        HealthView {
            regions: (0..n)
                .map(|region| {
                    if down & (1 << region) != 0 {
                        RegionStatus::DOWN
                    } else {
                        RegionStatus::NOMINAL
                    }
                })
                .collect(),
            held: Box::new([false]),
        }
    }

    /// The regions a decision answers with.
    fn regions(decision: &Decision) -> Vec<RegionId> {
        match decision.outcome {
            Outcome::Regions(picks) => picks.as_slice().to_vec(),
            _ => Vec::new(),
        }
    }

    /// Client keys spread like addresses: a mixed sequence.
    fn keys(count: u64) -> impl Iterator<Item = u64> {
        (0..count).map(|n| mix(n ^ 0xabcdef))
    }

    /// How often each of `n` regions is the first pick over `count` clients.
    fn shares(
        plan: &ServicePlan,
        records: &[Option<RegionRecords>],
        health: &HealthView,
        candidates: &[RegionId],
        count: u64,
    ) -> Vec<f64> {
        let mut hits = vec![0u64; records.len()];
        for key in keys(count) {
            let decision = decide(plan, records, health, rtype::A, candidates, key);
            if let Some(&first) = regions(&decision).first() {
                hits[usize::from(first)] += 1;
            }
        }
        hits.iter().map(|&h| h as f64 / count as f64).collect()
    }

    #[test]
    fn exhaustive_geo_choice_is_the_first_live_candidate() {
        // Every ordering of every subset of four regions, every set of down regions, every
        // handled type: the answer is the first candidate that is up and has the type; with
        // none up, serve_all answers as if all were up; degraded TTL iff a region is down.
        let regions_all: [RegionId; 4] = [0, 1, 2, 3];
        let records = records();
        let plan = geo(4);
        for mask in 0u8..16 {
            let subset: Vec<RegionId> = regions_all
                .iter()
                .copied()
                .filter(|r| mask & (1 << r) != 0)
                .collect();
            for order in permutations(&subset) {
                for down in 0u32..16 {
                    let health = health(4, down);
                    for qtype in [rtype::A, rtype::AAAA, rtype::CNAME, rtype::ANY] {
                        let usable = |region: RegionId| {
                            records[usize::from(region)]
                                .as_ref()
                                .is_some_and(|r| r.answer(qtype).is_some())
                        };
                        let live = order
                            .iter()
                            .copied()
                            .find(|&r| usable(r) && down & (1 << r) == 0);
                        let any_usable = order.iter().copied().find(|&r| usable(r));
                        let decision = decide(&plan, &records, &health, qtype, &order, 7);
                        let expected = live.or(any_usable);
                        assert_eq!(
                            regions(&decision).first().copied(),
                            expected,
                            "order {order:?} down {down:04b} qtype {qtype}"
                        );
                        let reason = match (live, any_usable) {
                            (Some(r), Some(first)) if r == first => Reason::Preferred,
                            (Some(_), _) => Reason::FailedOver,
                            (None, Some(_)) => Reason::AllDownServeAll,
                            (None, None) => Reason::NoRecords,
                        };
                        assert_eq!(decision.reason, reason);
                        assert_eq!(decision.degraded, down != 0, "any of the four down");
                        assert!(!decision.hashed, "geo without drains never hashes");
                    }
                }
            }
        }
    }

    #[test]
    fn cname_answers_every_type_and_addresses_own_no_cname() {
        let records = records();
        let nominal = health(4, 0);
        for qtype in [rtype::A, rtype::AAAA, rtype::CNAME, rtype::ANY] {
            let decision = decide(&geo(4), &records, &nominal, qtype, &[2, 0], 0);
            assert_eq!(regions(&decision), [2], "qtype {qtype}");
        }
        let decision = decide(&geo(4), &records, &nominal, rtype::CNAME, &[0, 1], 0);
        assert_eq!(decision.outcome, Outcome::NoData);
        assert_eq!(decision.reason, Reason::NoRecords);
    }

    #[test]
    fn spread_answers_with_the_best_live_regions() {
        let records = a_records(5);
        let plan = service(
            Plan::Geo {
                spread: 3,
                spill_capacity: false,
            },
            AllDown::ServeAll,
            5,
        );
        let order = [4, 3, 2, 1, 0];
        let decide_with = |down| decide(&plan, &records, &health(5, down), rtype::A, &order, 1);
        assert_eq!(regions(&decide_with(0)), [4, 3, 2]);
        assert_eq!(regions(&decide_with(0b01000)), [4, 2, 1]);
        assert_eq!(regions(&decide_with(0b11110)), [0]);
        assert_eq!(decide_with(0b11110).reason, Reason::FailedOver);
        assert_eq!(regions(&decide_with(0b11111)), [4, 3, 2], "serve_all");
    }

    #[test]
    fn spill_spreads_a_lost_regions_clients_by_capacity() {
        let records = a_records(4);
        let mut plan = service(
            Plan::Geo {
                spread: 1,
                spill_capacity: true,
            },
            AllDown::ServeAll,
            4,
        );
        plan.capacity = vec![1000.0, 100.0, 300.0, 600.0].into_boxed_slice();
        let order = [0, 1, 2, 3];
        // Region 0 up: everyone stays, nothing hashed.
        let up = decide(&plan, &records, &health(4, 0), rtype::A, &order, 3);
        assert_eq!((regions(&up), up.hashed), (vec![0], false));
        // Region 0 down: its clients go to 1, 2 and 3 in proportion 1 : 3 : 6.
        let lost = health(4, 0b0001);
        let share = shares(&plan, &records, &lost, &order, 40_000);
        for (region, expected) in [(1, 0.1), (2, 0.3), (3, 0.6)] {
            assert!(
                (share[region] - expected).abs() < 0.015,
                "region {region}: {} against {expected}",
                share[region]
            );
        }
        let decision = decide(&plan, &records, &lost, rtype::A, &order, 3);
        assert_eq!((decision.reason, decision.hashed), (Reason::Spilled, true));
        // Without spill, all of them land on the next region.
        let next = geo(4);
        assert_eq!(shares(&next, &records, &lost, &order, 1000)[1], 1.0);
        // Losing a second region moves only that region's clients.
        let both = health(4, 0b1001);
        for key in keys(5000) {
            let before = regions(&decide(&plan, &records, &lost, rtype::A, &order, key));
            let after = regions(&decide(&plan, &records, &both, rtype::A, &order, key));
            if before != [3] {
                assert_eq!(before, after, "key {key}: only region 3's clients move");
            }
        }
    }

    #[test]
    fn weighted_follows_weights_and_health() {
        let records = a_records(3);
        let plan = service(
            Plan::Weighted {
                weights: vec![(0, 3.0), (1, 1.0), (2, 4.0)].into_boxed_slice(),
                max_answers: 1,
            },
            AllDown::ServeAll,
            3,
        );
        let share = shares(&plan, &records, &health(3, 0), &[], 80_000);
        for (region, expected) in [(0, 0.375), (1, 0.125), (2, 0.5)] {
            assert!(
                (share[region] - expected).abs() < 0.01,
                "region {region}: {} against {expected}",
                share[region]
            );
        }
        // Region 2 down: its half goes to 0 and 1 as 3 : 1; the others' clients stay.
        let down = health(3, 0b100);
        let share = shares(&plan, &records, &down, &[], 80_000);
        assert!((share[0] - 0.75).abs() < 0.01, "{share:?}");
        assert_eq!(share[2], 0.0);
        for key in keys(5000) {
            let before = regions(&decide(&plan, &records, &health(3, 0), rtype::A, &[], key));
            let after = regions(&decide(&plan, &records, &down, rtype::A, &[], key));
            if before != [2] {
                assert_eq!(before, after);
            }
        }
        // A half-drained region gets about half its share.
        let mut half = health(3, 0);
        half.regions[2].factor = 0.5;
        let share = shares(&plan, &records, &half, &[], 80_000);
        let expected = 2.0 / 6.0;
        assert!((share[2] - expected).abs() < 0.01, "{share:?}");
        let decision = decide(&plan, &records, &health(3, 0), rtype::A, &[], 1);
        assert_eq!((decision.reason, decision.hashed), (Reason::Weighted, true));
    }

    #[test]
    fn weighted_is_stable_per_key_and_max_answers_are_distinct() {
        let records = a_records(4);
        let plan = service(
            Plan::Weighted {
                weights: vec![(0, 1.0), (1, 1.0), (2, 2.0), (3, 1.0)].into_boxed_slice(),
                max_answers: 2,
            },
            AllDown::ServeAll,
            4,
        );
        let nominal = health(4, 0);
        for key in keys(2000) {
            let first = decide(&plan, &records, &nominal, rtype::A, &[], key);
            let again = decide(&plan, &records, &nominal, rtype::A, &[], key);
            assert_eq!(first, again);
            let picked = regions(&first);
            assert_eq!(picked.len(), 2);
            assert_ne!(picked[0], picked[1]);
        }
        // Only two left: both answer and the hash no longer matters.
        let two = health(4, 0b1010);
        let decision = decide(&plan, &records, &two, rtype::A, &[], 9);
        let mut picked = regions(&decision);
        picked.sort_unstable();
        assert_eq!((picked, decision.hashed), (vec![0, 2], false));
    }

    /// A failover plan: tiers [[0, 1], [2], [3]].
    fn failover(all_down: AllDown) -> ServicePlan {
        service(
            Plan::Failover {
                tiers: vec![vec![0, 1].into(), vec![2].into(), vec![3].into()].into_boxed_slice(),
            },
            all_down,
            4,
        )
    }

    #[test]
    fn failover_uses_standby_only_when_every_primary_is_down() {
        let records = a_records(4);
        let plan = failover(AllDown::ServeAll);
        // Active-active primaries share clients evenly.
        let share = shares(&plan, &records, &health(4, 0), &[], 20_000);
        assert!((share[0] - 0.5).abs() < 0.02 && (share[1] - 0.5).abs() < 0.02);
        assert_eq!(share[2] + share[3], 0.0);
        // One primary down: the other takes all, not the standby.
        let share = shares(&plan, &records, &health(4, 0b0001), &[], 1000);
        assert_eq!(share[1], 1.0);
        // Both down: tier 1; then tier 2.
        let decision = decide(&plan, &records, &health(4, 0b0011), rtype::A, &[], 0);
        assert_eq!(
            (regions(&decision), decision.reason),
            (vec![2], Reason::Standby(1))
        );
        let decision = decide(&plan, &records, &health(4, 0b0111), rtype::A, &[], 0);
        assert_eq!(
            (regions(&decision), decision.reason),
            (vec![3], Reason::Standby(2))
        );
        // With a map, the client's order picks within the tier.
        let decision = decide(&plan, &records, &health(4, 0), rtype::A, &[1, 0], 0);
        assert_eq!((regions(&decision), decision.hashed), (vec![1], false));
    }

    #[test]
    fn held_service_stays_on_standby() {
        let records = a_records(4);
        let plan = failover(AllDown::ServeAll);
        let mut view = health(4, 0);
        view.held = Box::new([true]);
        let decision = decide(&plan, &records, &view, rtype::A, &[], 0);
        assert_eq!(
            (regions(&decision), decision.reason),
            (vec![2], Reason::Standby(1))
        );
        // Held, but every standby down: the primaries are better than nothing.
        let mut view = health(4, 0b1100);
        view.held = Box::new([true]);
        let decision = decide(&plan, &records, &view, rtype::A, &[0, 1], 0);
        assert_eq!(
            (regions(&decision), decision.reason),
            (vec![0], Reason::Preferred)
        );
    }

    #[test]
    fn each_all_down_mode() {
        let records = a_records(4);
        let everything_down = health(4, 0b1111);
        let cases = [
            (AllDown::ServeAll, Reason::AllDownServeAll),
            (AllDown::Fallback, Reason::AllDownFallback),
            (AllDown::NoData, Reason::AllDownNoData),
            (AllDown::ServFail, Reason::AllDownServFail),
        ];
        for (mode, reason) in cases {
            let decision = decide(
                &failover(mode),
                &records,
                &everything_down,
                rtype::A,
                &[],
                5,
            );
            assert_eq!(decision.reason, reason);
            assert!(decision.degraded);
            let outcome = match mode {
                AllDown::ServeAll => {
                    assert!(matches!(regions(&decision)[..], [0] | [1]), "a primary");
                    continue;
                }
                AllDown::Fallback => Outcome::Fallback,
                AllDown::NoData => Outcome::NoData,
                AllDown::ServFail => Outcome::ServFail,
            };
            assert_eq!(decision.outcome, outcome);
        }
    }

    #[test]
    fn draining_region_sheds_its_share_of_clients() {
        let records = a_records(2);
        let plan = geo(2);
        for factor in [0.0, 0.25, 0.5, 0.9, 1.0] {
            let mut view = health(2, 0);
            view.regions[0].factor = factor;
            let share = shares(&plan, &records, &view, &[0, 1], 20_000);
            assert!(
                (share[0] - factor).abs() < 0.015,
                "factor {factor}: share {}",
                share[0]
            );
            let decision = decide(&plan, &records, &view, rtype::A, &[0, 1], 1);
            assert_eq!(decision.hashed, factor > 0.0 && factor < 1.0);
        }
        // A client shed at share 0.5 is also shed at 0.25: the ramp only ever moves clients out.
        for key in keys(2000) {
            let at = |factor| {
                let mut view = health(2, 0);
                view.regions[0].factor = factor;
                regions(&decide(&plan, &records, &view, rtype::A, &[0, 1], key))
            };
            if at(0.5) == [1] {
                assert_eq!(at(0.25), [1]);
            }
        }
    }

    #[test]
    fn drains_shed_clients_in_failover_and_weighted_services_too() {
        let records = a_records(4);
        // Failover [[0, 1], [2], [3]]: 0 and 1 each keep a quarter of the clients that reach
        // them, and the rest move on to their next region (the other primary, then the
        // standby): the standby gets 0.75 x 0.75 of the clients, with or without a map.
        let plan = failover(AllDown::ServeAll);
        let mut view = health(4, 0);
        view.regions[0].factor = 0.25;
        view.regions[1].factor = 0.25;
        for candidates in [&[][..], &[1, 0][..]] {
            let share = shares(&plan, &records, &view, candidates, 20_000);
            let primaries = share[0] + share[1];
            assert!(
                (primaries - 0.4375).abs() < 0.03,
                "map {candidates:?}: primaries keep {primaries}"
            );
            assert!((share[2] - 0.5625).abs() < 0.03, "{share:?}");
        }
        // Weighted with every live region answering: the draining one leaves that many answers.
        let weighted = service(
            Plan::Weighted {
                weights: vec![(0, 1.0), (1, 1.0)].into_boxed_slice(),
                max_answers: 2,
            },
            AllDown::ServeAll,
            2,
        );
        let two = a_records(2);
        let mut view = health(2, 0);
        view.regions[0].factor = 0.25;
        let mut with_zero = 0;
        for key in keys(20_000) {
            let decision = decide(&weighted, &two, &view, rtype::A, &[], key);
            assert!(decision.hashed);
            let picked = regions(&decision);
            assert!(!picked.is_empty());
            with_zero += u32::from(picked.contains(&0));
        }
        let share = f64::from(with_zero) / 20_000.0;
        assert!(
            (share - 0.25).abs() < 0.02,
            "region 0 in {share} of answers"
        );
        // Fully drained regions never answer while another is live.
        view.regions[0].factor = 0.0;
        for key in keys(1000) {
            assert_eq!(
                regions(&decide(&weighted, &two, &view, rtype::A, &[], key)),
                [1]
            );
        }
    }

    #[test]
    fn unknown_regions_in_health_are_nominal() {
        let view = HealthView::default();
        assert_eq!(view.region(7), RegionStatus::NOMINAL);
        assert!(!view.held(3));
    }

    /// All orderings of `items`.
    fn permutations(items: &[RegionId]) -> Vec<Vec<RegionId>> {
        if items.is_empty() {
            return vec![Vec::new()];
        }
        let mut all = Vec::new();
        for (index, &first) in items.iter().enumerate() {
            let mut rest = items.to_vec();
            rest.remove(index);
            for mut tail in permutations(&rest) {
                tail.insert(0, first);
                all.push(tail);
            }
        }
        all
    }
}
