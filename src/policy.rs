//! Answer policy: which region's records answer a GSLB name for a client.
//!
//! Architecture invariant: this module is pure. It sees the service's pre-rendered records and
//! the client's ordered candidate regions; it does no I/O, reads no clock and allocates nothing,
//! so the data plane and `explain` call the very same code.

use crate::config::RegionId;
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
    fn answer(&self, qtype: u16) -> Option<Choice<'_>> {
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

/// The first region of `candidates` whose records answer `qtype`, and what it answers.
///
/// `records` is indexed by region id; regions the service has no answers for are skipped.
/// `None` means no candidate has records of the type: the caller answers NODATA.
pub fn select<'s>(
    records: &'s [Option<RegionRecords>],
    candidates: &[RegionId],
    qtype: u16,
) -> Option<(RegionId, Choice<'s>)> {
    candidates.iter().find_map(|&region| {
        let answer = records.get(usize::from(region))?.as_ref()?.answer(qtype)?;
        Some((region, answer))
    })
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

    /// The region `select` picks and a short description of the choice.
    fn pick(candidates: &[RegionId], qtype: u16) -> Option<(RegionId, u8)> {
        let records = records();
        select(&records, candidates, qtype).map(|(region, choice)| match choice {
            Choice::Records(rrset) => (region, rrset.wire[0]),
            Choice::Cname(rrset, _) => (region, 100 + rrset.wire[0]),
        })
    }

    #[test]
    fn first_candidate_with_the_type_wins() {
        assert_eq!(pick(&[0, 1, 2], rtype::A), Some((0, 0)));
        assert_eq!(pick(&[1, 0, 2], rtype::A), Some((1, 1)));
        assert_eq!(
            pick(&[0, 1, 2], rtype::AAAA),
            Some((1, 1)),
            "region 0 has no AAAA: skipped"
        );
        assert_eq!(
            pick(&[0], rtype::AAAA),
            None,
            "NODATA when no candidate has the type"
        );
    }

    #[test]
    fn cname_answers_every_type() {
        for qtype in [rtype::A, rtype::AAAA, rtype::CNAME, rtype::ANY] {
            assert_eq!(pick(&[2, 0], qtype), Some((2, 102)), "qtype {qtype}");
        }
        assert_eq!(
            pick(&[0, 1], rtype::CNAME),
            None,
            "address regions own no CNAME"
        );
    }

    #[test]
    fn regions_without_answers_are_skipped() {
        assert_eq!(pick(&[3, 1], rtype::A), Some((1, 1)));
        assert_eq!(pick(&[3], rtype::A), None);
        assert_eq!(
            pick(&[9, 0], rtype::A),
            Some((0, 0)),
            "unknown ids are skipped"
        );
        assert_eq!(pick(&[], rtype::A), None);
    }

    #[test]
    fn any_gets_one_rrset() {
        assert_eq!(pick(&[1], rtype::ANY), Some((1, 1)));
    }

    #[test]
    fn exhaustive_choice_is_the_first_eligible_candidate() {
        // Every ordering of every subset of the four regions, for every handled type.
        let regions: [RegionId; 4] = [0, 1, 2, 3];
        for mask in 0u8..16 {
            let subset: Vec<RegionId> = regions
                .iter()
                .copied()
                .filter(|r| mask & (1 << r) != 0)
                .collect();
            for order in permutations(&subset) {
                for qtype in [rtype::A, rtype::AAAA, rtype::CNAME, rtype::ANY] {
                    let records = records();
                    let expected = order.iter().copied().find(|&region| {
                        records[usize::from(region)]
                            .as_ref()
                            .is_some_and(|r| r.answer(qtype).is_some())
                    });
                    assert_eq!(
                        select(&records, &order, qtype).map(|(region, _)| region),
                        expected
                    );
                }
            }
        }
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
