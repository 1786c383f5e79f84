//! `random`: each request goes to an eligible backend drawn with probability proportional to its
//! weight. Also home of the cumulative-weight table that IP hash reuses.

use std::num::NonZeroU32;

use super::eligible::{self, DRAWS};
use super::hash::reduce;
use super::slow_start::Admission;

/// Backends laid end to end on the line `0..total`, each covering a stretch as long as its
/// weight, so a point on the line names a backend. Built once per backend set.
#[derive(Debug, Clone)]
pub struct WeightedLine {
    /// `ends[i]` is where backend `i`'s stretch ends: the sum of the weights of `0..=i`.
    ends: Box<[u64]>,
}

impl WeightedLine {
    /// The line for these weights (in backend order).
    pub fn new(weights: &[NonZeroU32]) -> Self {
        let ends = weights
            .iter()
            .scan(0u64, |end, weight| {
                *end += u64::from(weight.get());
                Some(*end)
            })
            .collect();
        Self { ends }
    }

    /// The sum of all weights (0 for an empty pool).
    pub fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// How many backends the line covers.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The backend whose stretch holds `point` (which must be below [`Self::total`]).
    pub fn locate(&self, point: u64) -> usize {
        self.ends.partition_point(|&end| end <= point)
    }

    /// Backend `index`'s weight.
    pub fn weight(&self, index: usize) -> u64 {
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        self.ends[index] - start
    }

    /// The eligible backend taking the key of `admission` (every backend outside slow start)
    /// that `draw` (uniform over `u64`) picks by weight among those, by a walk over the pool
    /// (O(n)); `None` if there is none.
    pub fn among_eligible(
        &self,
        eligible: &[bool],
        admission: &Admission<'_>,
        draw: u64,
    ) -> Option<usize> {
        let candidates = (0..self.len())
            .filter(|&index| admission.takes(eligible, index))
            .map(|index| (index, self.weight(index)));
        weighted_choice(candidates, draw)
    }

    /// A backend drawn with probability proportional to its weight among the eligible ones.
    ///
    /// First a few draws over the whole line, keeping the first that lands on an eligible
    /// backend (O(log n) each); if they all miss, one exact weighted draw over the eligible
    /// backends (O(n)). Both are exact, so the mixture is too.
    pub fn select(&self, eligible: &[bool], rng: &mut fastrand::Rng) -> Option<usize> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        for _ in 0..DRAWS {
            let backend = self.locate(rng.u64(..total));
            if eligible::is_eligible(eligible, backend) {
                return Some(backend);
            }
        }
        self.among_eligible(eligible, &Admission::ALL, rng.u64(..))
    }

    /// A backend drawn with probability proportional to `weights` (the weights in effect under
    /// slow start, indexed like the line) among the eligible ones, by a walk over the pool
    /// (O(n)): the line's table holds the configured weights only.
    pub fn select_weighted(
        &self,
        eligible: &[bool],
        weights: &[NonZeroU32],
        rng: &mut fastrand::Rng,
    ) -> Option<usize> {
        let candidates = (0..self.len().min(weights.len()))
            .filter(|&index| eligible::is_eligible(eligible, index))
            .map(|index| (index, u64::from(weights[index].get())));
        weighted_choice(candidates, rng.u64(..))
    }
}

/// One of `items` (`(backend, weight)` pairs) with probability proportional to its weight
/// when `draw` is uniform over `u64` (a random number, or a hash for a stable choice); `None`
/// if there are none. Walks the iterator twice and allocates nothing.
pub fn weighted_choice(
    items: impl Iterator<Item = (usize, u64)> + Clone,
    draw: u64,
) -> Option<usize> {
    let total: u64 = items.clone().map(|(_, weight)| weight).sum();
    if total == 0 {
        return None;
    }
    let mut point = reduce(draw, total);
    for (index, weight) in items {
        if point < weight {
            return Some(index);
        }
        point -= weight;
    }
    None
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

    #[test]
    fn the_line_lays_backends_end_to_end() {
        let line = WeightedLine::new(&weights(&[2, 1, 3]));
        assert_eq!(line.total(), 6);
        let owners: Vec<usize> = (0..6).map(|point| line.locate(point)).collect();
        assert_eq!(owners, [0, 0, 1, 2, 2, 2]);
        assert_eq!(
            (0..3).map(|i| line.weight(i)).collect::<Vec<_>>(),
            [2, 1, 3]
        );
    }

    #[test]
    fn an_empty_pool_or_mask_selects_nothing() {
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(WeightedLine::new(&[]).select(&[], &mut rng), None);
        let line = WeightedLine::new(&weights(&[1, 1]));
        assert_eq!(line.select(&[false, false], &mut rng), None);
        assert_eq!(line.select(&[], &mut rng), None);
        assert_eq!(line.select(&[false, true], &mut rng), Some(1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Picks follow the weights of the eligible backends (within 5 standard deviations).
        #[test]
        fn picks_follow_the_weights(
            (raw, eligible) in weights_strategy(1..8, 1..6),
            seed in any::<u64>(),
        ) {
            let line = WeightedLine::new(&weights(&raw));
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut picks = vec![0u64; raw.len()];
            for _ in 0..4_000 {
                match line.select(&eligible, &mut rng) {
                    Some(backend) => picks[backend] += 1,
                    None => prop_assert!(!eligible.contains(&true)),
                }
            }
            assert_shares(&picks, &raw, &eligible, 5.0)?;
        }
    }
}
