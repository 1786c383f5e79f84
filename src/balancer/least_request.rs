//! `least_request`: power of two choices (P2C). Draw two distinct eligible backends uniformly at
//! random and send the request to the one with fewer outstanding requests per unit of weight.
//!
//! P2C gets most of the benefit of "least loaded" without a scan and without herding: a
//! backend that just became the least loaded is only offered to a fraction of the pickers.
//! Ties (an idle pool) are broken by a coin weighted by the two weights, so weights still count
//! when there is no load to compare. Stateless; O(1) expected while most backends are eligible.

use std::cmp::Ordering;
use std::num::NonZeroU32;

use super::eligible::{self, Candidates};

/// The less loaded of two random distinct eligible backends (or the only eligible one).
///
/// `outstanding[i]` is backend `i`'s outstanding request count (missing entries count as 0);
/// `weights` defines the pool.
pub fn select(
    eligible: &[bool],
    outstanding: &[u32],
    weights: &[NonZeroU32],
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let eligible = &eligible[..eligible.len().min(weights.len())];
    let load = |index: usize| {
        let in_flight = outstanding.get(index).copied().unwrap_or(0);
        (u64::from(in_flight), u64::from(weights[index].get()))
    };
    Some(match eligible::candidates(eligible, rng)? {
        Candidates::One(only) => only,
        Candidates::Two(a, b) => {
            let ((load_a, weight_a), (load_b, weight_b)) = (load(a), load(b));
            // load_a / weight_a against load_b / weight_b, exactly.
            let order = (load_a * weight_b).cmp(&(load_b * weight_a));
            pick_lighter(a, b, order, weight_a, weight_b, rng)
        }
    })
}

/// `a` if `order` says it is lighter, `b` if heavier; on a tie, `a` with probability
/// `weight_a / (weight_a + weight_b)`.
pub fn pick_lighter(
    a: usize,
    b: usize,
    order: Ordering,
    weight_a: u64,
    weight_b: u64,
    rng: &mut fastrand::Rng,
) -> usize {
    match order {
        Ordering::Less => a,
        Ordering::Greater => b,
        Ordering::Equal if rng.u64(..weight_a + weight_b) < weight_a => a,
        Ordering::Equal => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Weights from plain numbers.
    fn weights(raw: &[u32]) -> Vec<NonZeroU32> {
        raw.iter().filter_map(|&w| NonZeroU32::new(w)).collect()
    }

    #[test]
    fn edge_cases() {
        let mut rng = fastrand::Rng::with_seed(5);
        assert_eq!(select(&[], &[], &[], &mut rng), None);
        assert_eq!(
            select(&[false; 3], &[0; 3], &weights(&[1, 1, 1]), &mut rng),
            None
        );
        assert_eq!(
            select(&[false, true], &[0, 99], &weights(&[1, 1]), &mut rng),
            Some(1),
            "the only eligible one, however loaded"
        );
        assert_eq!(
            select(&[true; 4], &[0; 4], &weights(&[1, 1]), &mut rng).map(|b| b < 2),
            Some(true),
            "a long mask cannot name missing backends"
        );
    }

    #[test]
    fn two_backends_prefer_the_lighter_by_weight() {
        let mut rng = fastrand::Rng::with_seed(5);
        let pool = weights(&[3, 1]);
        assert_eq!(
            select(&[true; 2], &[5, 2], &pool, &mut rng),
            Some(0),
            "5/3 < 2/1"
        );
        assert_eq!(
            select(&[true; 2], &[7, 2], &pool, &mut rng),
            Some(1),
            "7/3 > 2/1"
        );
        let mut picks = [0u32; 2];
        for _ in 0..4_000 {
            picks[select(&[true; 2], &[0, 0], &pool, &mut rng).unwrap_or(0)] += 1;
        }
        let share = f64::from(picks[0]) / 4_000.0;
        assert!(
            (share - 0.75).abs() < 0.04,
            "idle ties follow the weights: {share}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Never an ineligible backend; `None` exactly when none is eligible.
        #[test]
        fn picks_are_eligible(
            eligible in prop::collection::vec(any::<bool>(), 0..20),
            outstanding in prop::collection::vec(0u32..100, 0..20),
            seed in any::<u64>(),
        ) {
            let pool = vec![NonZeroU32::MIN; eligible.len()];
            let mut rng = fastrand::Rng::with_seed(seed);
            for _ in 0..50 {
                match select(&eligible, &outstanding, &pool, &mut rng) {
                    Some(backend) => prop_assert!(eligible[backend]),
                    None => prop_assert!(!eligible.contains(&true)),
                }
            }
        }

        /// With one backend far more loaded than the rest, it is never chosen (it is always
        /// compared with a distinct, lighter one), and the lightest gets well over its share.
        #[test]
        fn very_unequal_load_prefers_the_less_loaded(
            backends in 2usize..12,
            heavy in 0usize..12,
            seed in any::<u64>(),
        ) {
            let heavy = heavy % backends;
            let light = (heavy + 1) % backends;
            let mut outstanding = vec![50u32; backends];
            outstanding[heavy] = 10_000;
            outstanding[light] = 0;
            let pool = vec![NonZeroU32::MIN; backends];
            let eligible = vec![true; backends];
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut picks = vec![0u32; backends];
            for _ in 0..2_000 {
                picks[select(&eligible, &outstanding, &pool, &mut rng).unwrap_or(heavy)] += 1;
            }
            prop_assert_eq!(picks[heavy], 0);
            // The lightest wins whenever it is drawn: probability 2/n, against 1/n for fair.
            let share = f64::from(picks[light]) / 2_000.0;
            let expected = 2.0 / backends as f64;
            prop_assert!((share - expected).abs() < 0.06, "share {} expected {}", share, expected);
        }
    }
}
