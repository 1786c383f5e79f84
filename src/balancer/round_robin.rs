//! `round_robin` (plain rotation, weights ignored) and `weighted_round_robin` (nginx's smooth
//! weighted round robin).
//!
//! Both keep a little state between picks, behind `&self` so one selector serves every worker:
//! the rotation is a single atomic cursor; the smooth weighted state is one `i64` per backend
//! behind a `Mutex`, held for one O(n) pass and never across an allocation or a call out.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::eligible::{self, DRAWS};

/// Plain rotation over the eligible backends.
///
/// While the mask holds still, consecutive picks visit the eligible backends in index order,
/// each once per turn (an ineligible backend's turn goes to the next eligible one, without
/// giving that one two turns). Concurrent pickers share the rotation.
///
/// It sits on cache lines of its own: every worker advances the cursor on every pick.
#[derive(Debug)]
#[repr(align(128))]
pub struct RoundRobin {
    /// How many picks have been made (wrapping); turn `t` belongs to backend `t % backends`.
    cursor: AtomicUsize,
    /// The pool size.
    backends: usize,
}

impl RoundRobin {
    /// A rotation over `backends` backends, starting at backend 0.
    pub fn new(backends: usize) -> Self {
        Self {
            cursor: AtomicUsize::new(0),
            backends,
        }
    }

    /// The next eligible backend in the rotation.
    ///
    /// Takes turns until one belongs to an eligible backend (O(1) atomic increments while the
    /// pool is mostly healthy); after [`DRAWS`] ineligible turns in a row it picks by rank among
    /// the eligible backends (O(n)), so a mostly-down pool costs no more than a scan.
    pub fn select(&self, eligible: &[bool]) -> Option<usize> {
        if self.backends == 0 {
            return None;
        }
        let mut turn = 0;
        for _ in 0..DRAWS.min(self.backends) {
            turn = self.cursor.fetch_add(1, Ordering::Relaxed);
            let backend = turn % self.backends;
            if eligible::is_eligible(eligible, backend) {
                return Some(backend);
            }
        }
        let eligible = &eligible[..eligible.len().min(self.backends)];
        let count = eligible::count(eligible);
        if count == 0 {
            return None;
        }
        eligible::nth(eligible, turn % count, None)
    }
}

/// nginx's smooth weighted round robin (`ngx_http_upstream_get_peer`).
///
/// Each pick adds every eligible backend's weight to its current weight, takes the backend with
/// the largest current weight (the first in index order on a tie) and subtracts the total
/// eligible weight from it. Starting from zero with a fixed mask, every run of `total` picks
/// gives each eligible backend exactly `weight` picks, spread out: weights 5, 1, 1 give
/// `a a b a c a a`. Ineligible backends sit out the arithmetic, as nginx's down peers do.
///
/// Why a `Mutex` rather than atomics: the pick reads and writes every current weight at once.
/// The lock-free alternative (precompute one cycle, share an atomic cursor) needs a cap on the
/// cycle length (the sum of the weights) and stops being nginx's sequence as soon as a backend
/// is ineligible; the lock is held for one pass over `n` integers, with nothing allocated.
#[derive(Debug)]
pub struct SmoothWeighted {
    /// Each backend's configured weight.
    weights: Box<[NonZeroU32]>,
    /// Each backend's current weight (nginx's `current_weight`), zero at build.
    current: Mutex<Box<[i64]>>,
}

impl SmoothWeighted {
    /// The schedule for these weights, with every current weight at zero.
    pub fn new(weights: &[NonZeroU32]) -> Self {
        Self {
            weights: weights.into(),
            current: Mutex::new(vec![0; weights.len()].into_boxed_slice()),
        }
    }

    /// The next backend of the smooth schedule among the eligible ones.
    pub fn select(&self, eligible: &[bool]) -> Option<usize> {
        self.select_weighted(eligible, &self.weights)
    }

    /// The next backend of the smooth schedule among the eligible ones, with `weights` (indexed
    /// like the configured ones, at least as long) in place of the configured weights: nginx's
    /// `effective_weight`, which slow start lowers while a backend ramps. Changing the weights
    /// between picks keeps the schedule smooth; the current weights carry over.
    pub fn select_weighted(&self, eligible: &[bool], weights: &[NonZeroU32]) -> Option<usize> {
        // A poisoned lock only means another picker panicked mid-pass; the weights are still
        // integers, and any values are a valid (if briefly unsmooth) schedule state.
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (index, weight) in weights.iter().take(current.len()).enumerate() {
            if !eligible::is_eligible(eligible, index) {
                continue;
            }
            let weight = i64::from(weight.get());
            current[index] += weight;
            total += weight;
            if best.is_none_or(|best| current[index] > current[best]) {
                best = Some(index);
            }
        }
        let best = best?;
        current[best] -= total;
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::tests::weights_strategy;
    use proptest::prelude::*;

    /// Weights from plain numbers.
    fn weights(raw: &[u32]) -> Vec<NonZeroU32> {
        raw.iter().filter_map(|&w| NonZeroU32::new(w)).collect()
    }

    /// The first `picks` picks of a fresh smooth schedule, as letters (`-` for none).
    fn sequence(raw: &[u32], eligible: &[bool], picks: usize) -> String {
        let schedule = SmoothWeighted::new(&weights(raw));
        (0..picks)
            .map(|_| {
                schedule
                    .select(eligible)
                    .map_or('-', |backend| char::from(b'a' + backend as u8))
            })
            .collect()
    }

    #[test]
    fn smooth_weights_5_1_1_give_nginx_sequence() {
        let all = [true; 3];
        assert_eq!(sequence(&[5, 1, 1], &all, 7), "aabacaa");
        assert_eq!(sequence(&[5, 1, 1], &all, 14), "aabacaaaabacaa");
    }

    #[test]
    fn smooth_edge_cases() {
        assert_eq!(
            sequence(&[3], &[true], 4),
            "aaaa",
            "one backend takes everything"
        );
        assert_eq!(
            sequence(&[3, 1], &[false, false], 3),
            "---",
            "all ineligible"
        );
        assert_eq!(sequence(&[], &[], 2), "--", "empty pool");
        assert_eq!(sequence(&[5, 1, 1], &[true, false, true], 6), "aaacaa");
        assert_eq!(
            sequence(&[1, 1, 1], &[true; 3], 6),
            "abcabc",
            "equal weights rotate"
        );
        assert_eq!(
            sequence(&[2, 1], &[true], 3),
            "aaa",
            "short mask: missing is ineligible"
        );
    }

    #[test]
    fn smooth_weight_change_starts_a_new_schedule() {
        let all = [true; 3];
        assert_eq!(sequence(&[1, 1, 1], &all, 3), "abc");
        assert_eq!(sequence(&[1, 3, 1], &all, 5), "babcb");
        assert_eq!(sequence(&[4, 2, 1], &all, 7), "abacaba");
    }

    #[test]
    fn smooth_recovers_when_a_backend_comes_back() {
        let schedule = SmoothWeighted::new(&weights(&[2, 1]));
        let both = [true, true];
        let picks: Vec<_> = (0..3)
            .filter_map(|_| schedule.select(&[true, false]))
            .collect();
        assert_eq!(picks, [0, 0, 0]);
        let mut counts = [0; 2];
        for _ in 0..300 {
            counts[schedule.select(&both).unwrap_or(9)] += 1;
        }
        assert_eq!(counts, [200, 100]);
    }

    #[test]
    fn rotation_visits_each_eligible_backend_once_per_turn() {
        let rotation = RoundRobin::new(4);
        let picks: Vec<_> = (0..8).filter_map(|_| rotation.select(&[true; 4])).collect();
        assert_eq!(picks, [0, 1, 2, 3, 0, 1, 2, 3]);
        let rotation = RoundRobin::new(4);
        let mask = [true, false, true, true];
        let picks: Vec<_> = (0..6).filter_map(|_| rotation.select(&mask)).collect();
        assert_eq!(picks, [0, 2, 3, 0, 2, 3]);
    }

    #[test]
    fn rotation_edge_cases() {
        assert_eq!(RoundRobin::new(0).select(&[]), None);
        assert_eq!(RoundRobin::new(1).select(&[true]), Some(0));
        assert_eq!(RoundRobin::new(3).select(&[false; 3]), None);
        assert_eq!(RoundRobin::new(3).select(&[]), None);
        let rotation = RoundRobin::new(20);
        let mut mask = [false; 20];
        mask[17] = true;
        assert!(
            (0..30).all(|_| rotation.select(&mask) == Some(17)),
            "long ineligible run"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// From a fresh schedule with a fixed mask, every run of (sum of eligible weights)
        /// picks gives each eligible backend exactly its weight, and never an ineligible one.
        #[test]
        fn smooth_full_cycle_is_exact(
            (raw, eligible) in weights_strategy(1..10, 1..8),
            cycles in 1usize..4,
        ) {
            let schedule = SmoothWeighted::new(&weights(&raw));
            let total: u32 = raw.iter().zip(&eligible).filter(|(_, ok)| **ok).map(|(w, _)| w).sum();
            for _ in 0..cycles {
                let mut picks = vec![0u32; raw.len()];
                for _ in 0..total {
                    let backend = schedule.select(&eligible);
                    prop_assert!(backend.is_some());
                    picks[backend.unwrap_or(0)] += 1;
                }
                for (index, &count) in picks.iter().enumerate() {
                    let expected = if eligible[index] { raw[index] } else { 0 };
                    prop_assert_eq!(count, expected, "backend {}", index);
                }
            }
            prop_assert_eq!(schedule.select(&eligible).is_some(), total > 0);
        }

        /// The schedule is smooth: no backend ever runs more than its fair share ahead.
        #[test]
        fn smooth_never_runs_far_ahead(raw in prop::collection::vec(1u32..8, 1..8)) {
            let schedule = SmoothWeighted::new(&weights(&raw));
            let total: u32 = raw.iter().sum();
            let eligible = vec![true; raw.len()];
            let mut picks = vec![0f64; raw.len()];
            for step in 1..=total {
                let backend = schedule.select(&eligible).unwrap_or(0);
                picks[backend] += 1.0;
                for (index, &weight) in raw.iter().enumerate() {
                    let fair = f64::from(step) * f64::from(weight) / f64::from(total);
                    prop_assert!((picks[index] - fair).abs() < f64::from(raw.len() as u32));
                }
            }
        }

        /// Rotation: never an ineligible backend, `None` only when none is eligible, and with
        /// a fixed mask each eligible backend once per turn.
        #[test]
        fn rotation_is_fair_and_eligible(eligible in prop::collection::vec(any::<bool>(), 1..12)) {
            let rotation = RoundRobin::new(eligible.len());
            let count = eligible.iter().filter(|&&ok| ok).count();
            let mut picks = vec![0usize; eligible.len()];
            for _ in 0..count * 3 {
                match rotation.select(&eligible) {
                    Some(backend) => picks[backend] += 1,
                    None => prop_assert_eq!(count, 0),
                }
            }
            if count == 0 {
                prop_assert_eq!(rotation.select(&eligible), None);
            }
            // The longest run of ineligible backends, counting the one that wraps around.
            let runs: Vec<usize> = eligible.split(|&ok| ok).map(<[bool]>::len).collect();
            let wrapping = runs.first().unwrap_or(&0) + runs.last().unwrap_or(&0);
            let longest_gap = runs.iter().copied().max().unwrap_or(0).max(wrapping);
            for (index, &ok) in eligible.iter().enumerate() {
                if !ok {
                    prop_assert_eq!(picks[index], 0);
                } else if longest_gap < DRAWS {
                    prop_assert_eq!(picks[index], 3);
                }
            }
        }
    }
}
