//! `ring_hash`: a consistent-hash ring with virtual nodes (Karger et al.; ketama; Envoy's
//! `RING_HASH`).
//!
//! Each backend owns `weight * vnodes_per_weight` points on a 64-bit ring, point `j` of a
//! backend being `xxh64(name, seed = j)`. A request key hashes (`xxh64(key, 0)`) to a position
//! and goes to the owner of the first point at or after it, wrapping around. Removing a backend
//! moves only the keys that were on its points, about `weight / total weight` of them, and
//! moves each to the owner of the next point, which spreads them over the other backends.
//!
//! Ineligible backends are skipped by walking on to the next point: a key then lands exactly
//! where it would if the backend were removed from the ring, and the ring is reused while
//! health flips. Lookups are a binary search plus a short walk; nothing is allocated.

use std::num::NonZeroU32;

use super::BackendSpec;
use super::eligible;
use super::hash::xxh64;
use super::slow_start::Ramp;

/// Points per unit of weight unless configured: ketama's 160 (40 MD5 digests of 4 points
/// each). A backend's share then varies by about `1 / sqrt(160 * weight)`, under 8 %.
pub const DEFAULT_VNODES_PER_WEIGHT: NonZeroU32 = match NonZeroU32::new(160) {
    Some(vnodes) => vnodes,
    None => NonZeroU32::MIN,
};

/// The most points a ring holds (12 MiB of table): beyond it every backend's point count is
/// scaled down in proportion (keeping at least one), as Envoy caps its ring at a maximum size.
pub const MAX_POINTS: u64 = 1 << 20;

/// The ring of one backend set: points sorted by position.
#[derive(Debug, Clone)]
pub struct Ring {
    /// Point positions, ascending.
    positions: Box<[u64]>,
    /// `owners[i]` is the backend that owns point `i`.
    owners: Box<[u32]>,
}

impl Ring {
    /// The ring of `backends`, with `vnodes_per_weight` points per unit of weight (capped in
    /// total at [`MAX_POINTS`]). The pool must have at most `u32::MAX` backends (the selector
    /// caps it far lower).
    pub fn new(backends: &[BackendSpec], vnodes_per_weight: NonZeroU32) -> Self {
        let wanted = |backend: &BackendSpec| {
            u64::from(backend.weight.get()) * u64::from(vnodes_per_weight.get())
        };
        let total: u64 = backends.iter().map(wanted).sum();
        let mut ring: Vec<(u64, u32)> = Vec::with_capacity(total.min(MAX_POINTS) as usize);
        for (index, backend) in backends.iter().enumerate() {
            let owner = index as u32;
            let name = backend.name.as_bytes();
            let points = point_count(wanted(backend), total);
            ring.extend((0..points).map(|vnode| (xxh64(name, vnode), owner)));
        }
        ring.sort_unstable();
        Self {
            positions: ring.iter().map(|&(position, _)| position).collect(),
            owners: ring.iter().map(|&(_, owner)| owner).collect(),
        }
    }

    /// The eligible backend for a key whose hash is `key_hash`: the owner of the first point
    /// at or after it that belongs to an eligible backend taking the key (see
    /// [`Ramp::admission`]: every backend outside slow start).
    pub fn select(&self, key_hash: u64, eligible: &[bool], ramp: &Ramp<'_>) -> Option<usize> {
        let start = self
            .positions
            .partition_point(|&position| position < key_hash);
        let admission = ramp.admission(key_hash, eligible);
        eligible::walk(&self.owners, start, eligible, &admission)
    }
}

/// How many points a backend that wants `wanted` gets when all backends want `total`: all of
/// them while `total` fits [`MAX_POINTS`], else a proportional share of it (at least one).
fn point_count(wanted: u64, total: u64) -> u64 {
    if total <= MAX_POINTS {
        return wanted;
    }
    let scaled = u128::from(wanted) * u128::from(MAX_POINTS) / u128::from(total);
    u64::try_from(scaled).unwrap_or(MAX_POINTS).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::hash::seed;
    use crate::balancer::tests::{assert_shares_within, backends, random_keys, weights_strategy};
    use proptest::prelude::*;

    /// The ring's pick for `key`.
    fn pick(ring: &Ring, key: &[u8], eligible: &[bool]) -> Option<usize> {
        ring.select(xxh64(key, seed::KEY), eligible, &Ramp::NONE)
    }

    #[test]
    fn points_follow_weights_and_the_cap() {
        let ring = Ring::new(&backends(&[1, 3]), DEFAULT_VNODES_PER_WEIGHT);
        assert_eq!(ring.positions.len(), 4 * 160);
        assert_eq!(
            ring.owners.iter().filter(|&&owner| owner == 1).count(),
            3 * 160
        );
        assert!(ring.positions.is_sorted());
        assert_eq!(point_count(160, 4 * 160), 160, "under the cap: as wanted");
        assert_eq!(
            point_count(1 << 19, 8 << 19),
            1 << 17,
            "over it: scaled to fit"
        );
        assert_eq!(point_count(1, u64::MAX), 1, "at least one point each");
    }

    #[test]
    fn edge_cases() {
        let empty = Ring::new(&[], DEFAULT_VNODES_PER_WEIGHT);
        assert_eq!(pick(&empty, b"k", &[]), None);
        let ring = Ring::new(&backends(&[1, 1]), DEFAULT_VNODES_PER_WEIGHT);
        assert_eq!(pick(&ring, b"k", &[false, false]), None);
        assert_eq!(pick(&ring, b"k", &[]), None);
        assert_eq!(pick(&ring, b"k", &[false, true]), Some(1));
        assert_eq!(
            ring.select(u64::MAX, &[true, true], &Ramp::NONE),
            ring.select(0, &[true, true], &Ramp::NONE),
            "wraps"
        );
        let one = Ring::new(&backends(&[5]), DEFAULT_VNODES_PER_WEIGHT);
        assert_eq!(pick(&one, b"anything", &[true]), Some(0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Over many keys, shares follow the weights of the eligible backends within 40 % of
        /// each backend's share: the ring's own spread is about `1 / sqrt(160 * weight)`, under
        /// 8 %, and 40 % leaves room for key sampling without flaky failures.
        #[test]
        fn shares_follow_the_weights(
            (raw, eligible) in weights_strategy(1..8, 1..5),
            seed in any::<u64>(),
        ) {
            let ring = Ring::new(&backends(&raw), DEFAULT_VNODES_PER_WEIGHT);
            let mut picks = vec![0u64; raw.len()];
            for key in random_keys(seed, 20_000) {
                match pick(&ring, &key, &eligible) {
                    Some(backend) => picks[backend] += 1,
                    None => prop_assert!(!eligible.contains(&true)),
                }
            }
            assert_shares_within(&picks, &raw, &eligible, 0.4)?;
        }

        /// Removing one backend of N moves only its own keys (about 1/N of them), and a key
        /// walks past an ineligible backend to exactly where removal would send it.
        #[test]
        fn removing_a_backend_moves_only_its_keys(
            count in 3usize..12,
            removed in 0usize..12,
            seed in any::<u64>(),
        ) {
            let removed = removed % count;
            let all = backends(&vec![1; count]);
            let kept: Vec<BackendSpec> =
                all.iter().enumerate().filter(|&(i, _)| i != removed).map(|(_, b)| b.clone()).collect();
            let before = Ring::new(&all, DEFAULT_VNODES_PER_WEIGHT);
            let after = Ring::new(&kept, DEFAULT_VNODES_PER_WEIGHT);
            let mut mask = vec![true; count];
            mask[removed] = false;
            let keys = random_keys(seed, 6_000);
            let mut moved = 0usize;
            for key in &keys {
                let old = pick(&before, key, &vec![true; count]).map(|b| &all[b].name);
                let new = pick(&after, key, &vec![true; count - 1]).map(|b| &kept[b].name);
                let walked = pick(&before, key, &mask).map(|b| &all[b].name);
                prop_assert_eq!(new, walked);
                if old != new {
                    moved += 1;
                    prop_assert_eq!(old, Some(&all[removed].name));
                }
            }
            let fraction = moved as f64 / keys.len() as f64;
            let ideal = 1.0 / count as f64;
            prop_assert!((fraction - ideal).abs() <= 0.35 * ideal, "moved {} ideal {}", fraction, ideal);
        }
    }
}
