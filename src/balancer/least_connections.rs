//! `least_connections`: the eligible backend with the fewest in-flight requests per unit of
//! weight, as nginx's `least_conn` and HAProxy's `leastconn` do.
//!
//! Ordering: first by `in_flight / weight` (compared exactly, by cross-multiplying), then by the
//! raw `in_flight` count (fewer wins), then a weighted random draw among the backends still
//! tied. The draw matters when the pool is idle: every backend has 0 in flight, and drawing by
//! weight (as nginx falls back to weighted round robin among tied peers) keeps the weights
//! meaningful then. Stateless; two O(n) passes, nothing allocated.

use std::cmp::Ordering;
use std::num::NonZeroU32;

use super::eligible;
use super::random::weighted_choice;

/// The eligible backend with the least in-flight work per unit of weight.
///
/// `outstanding[i]` is backend `i`'s in-flight request count (missing entries count as 0);
/// `weights` defines the pool.
pub fn select(
    eligible: &[bool],
    outstanding: &[u32],
    weights: &[NonZeroU32],
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let load = |index: usize| Load {
        in_flight: outstanding.get(index).copied().unwrap_or(0),
        weight: weights[index].get(),
    };
    let candidates = (0..weights.len()).filter(|&index| eligible::is_eligible(eligible, index));
    let best = candidates
        .clone()
        .min_by(|&a, &b| load(a).cmp(&load(b)))
        .map(load)?;
    let tied = candidates
        .filter(|&index| load(index).cmp(&best) == Ordering::Equal)
        .map(|index| (index, u64::from(weights[index].get())));
    weighted_choice(tied, rng.u64(..))
}

/// A backend's load as least-connections orders it.
#[derive(Debug, Clone, Copy)]
struct Load {
    /// Requests in flight.
    in_flight: u32,
    /// The backend's weight (at least 1).
    weight: u32,
}

impl Load {
    /// Compares by `in_flight / weight` (exactly), then by `in_flight`.
    fn cmp(&self, other: &Self) -> Ordering {
        let mine = u64::from(self.in_flight) * u64::from(other.weight);
        let theirs = u64::from(other.in_flight) * u64::from(self.weight);
        mine.cmp(&theirs).then(self.in_flight.cmp(&other.in_flight))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::tests::{assert_shares, weights_strategy};
    use proptest::prelude::*;

    /// Weights from plain numbers.
    fn weights(raw: &[u32]) -> Vec<NonZeroU32> {
        raw.iter().filter_map(|&w| NonZeroU32::new(w)).collect()
    }

    /// The pick for this mask, load and weights, with a fixed seed.
    fn check(eligible: &[bool], outstanding: &[u32], raw: &[u32]) -> Option<usize> {
        select(
            eligible,
            outstanding,
            &weights(raw),
            &mut fastrand::Rng::with_seed(3),
        )
    }

    #[test]
    fn fewest_in_flight_per_weight_wins() {
        assert_eq!(check(&[true; 3], &[3, 1, 2], &[1, 1, 1]), Some(1));
        assert_eq!(
            check(&[true; 3], &[3, 1, 2], &[4, 1, 1]),
            Some(0),
            "3/4 < 1/1"
        );
        assert_eq!(check(&[true, false, true], &[3, 0, 2], &[1, 1, 1]), Some(2));
        assert_eq!(
            check(&[true; 2], &[2, 1], &[2, 1]),
            Some(1),
            "2/2 = 1/1: fewer raw wins"
        );
        assert_eq!(
            check(&[true; 2], &[], &[1, 1]).map(|b| b < 2),
            Some(true),
            "no counts: idle"
        );
    }

    #[test]
    fn edge_cases() {
        assert_eq!(check(&[], &[], &[]), None);
        assert_eq!(check(&[false, false], &[0, 0], &[1, 1]), None);
        assert_eq!(check(&[true], &[1_000], &[1]), Some(0));
        assert_eq!(check(&[true], &[u32::MAX], &[u32::MAX]), Some(0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// An idle pool (all ties) is shared by weight.
        #[test]
        fn idle_pool_is_shared_by_weight(
            (raw, eligible) in weights_strategy(1..8, 1..6),
            seed in any::<u64>(),
        ) {
            let weights = weights(&raw);
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut picks = vec![0u64; raw.len()];
            for _ in 0..3_000 {
                match select(&eligible, &[], &weights, &mut rng) {
                    Some(backend) => picks[backend] += 1,
                    None => prop_assert!(!eligible.contains(&true)),
                }
            }
            assert_shares(&picks, &raw, &eligible, 5.0)?;
        }

        /// The pick is eligible and no eligible backend is less loaded.
        #[test]
        fn pick_is_a_least_loaded_eligible_backend(
            (raw, eligible) in weights_strategy(1..10, 1..5),
            outstanding in prop::collection::vec(0u32..6, 10),
            seed in any::<u64>(),
        ) {
            let weights = weights(&raw);
            let pick = select(&eligible, &outstanding, &weights, &mut fastrand::Rng::with_seed(seed));
            prop_assert_eq!(pick.is_some(), eligible.contains(&true));
            if let Some(pick) = pick {
                prop_assert!(eligible[pick]);
                let load = |i: usize| Load { in_flight: outstanding[i], weight: raw[i] };
                for other in (0..raw.len()).filter(|&i| eligible[i]) {
                    prop_assert_ne!(load(other).cmp(&load(pick)), Ordering::Less);
                }
            }
        }
    }
}
