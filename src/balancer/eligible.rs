//! The eligibility mask every algorithm reads: which backends may take traffic right now.
//!
//! The caller passes `eligible[i] == true` for each backend `i` that is healthy and enabled. An
//! index past the end of the slice counts as ineligible, so a short (or empty) mask can never
//! make an algorithm return a backend the caller did not vouch for. Nothing here allocates.

use super::slow_start::Admission;

/// How many uniform draws the sampling helpers try before falling back to an exact count: with
/// at least half the pool eligible, 8 draws all miss with probability below 0.4 %, so the O(n)
/// fallback is rare while the pool is mostly healthy, and the draws stay cheap when it is not.
pub const DRAWS: usize = 8;

/// Whether backend `index` may take traffic (`false` past the end of the mask).
pub fn is_eligible(eligible: &[bool], index: usize) -> bool {
    eligible.get(index).copied().unwrap_or(false)
}

/// Whether any backend may take traffic.
pub fn any_eligible(eligible: &[bool]) -> bool {
    eligible.contains(&true)
}

/// How many backends may take traffic.
pub fn count(eligible: &[bool]) -> usize {
    eligible.iter().filter(|&&ok| ok).count()
}

/// The index of the eligible backend of rank `rank` (0-based, in index order), skipping
/// `except` if given.
pub fn nth(eligible: &[bool], rank: usize, except: Option<usize>) -> Option<usize> {
    eligible
        .iter()
        .enumerate()
        .filter(|&(index, &ok)| ok && Some(index) != except)
        .nth(rank)
        .map(|(index, _)| index)
}

/// How many entries a ring-hash or Maglev lookup walks before it checks whether any backend is
/// eligible at all: long enough that a healthy-enough pool never pays for the O(n) check, short
/// enough that an all-down pool does not walk a whole table (65 537 entries for Maglev).
pub const SHORT_WALK: usize = 64;

/// The owner of the first entry of `owners` at or after `start` (wrapping around) that is an
/// eligible backend taking the key of `admission` (slow start): the "walk on" fallback of ring
/// hash and Maglev. `start` must be below `owners.len()`, or the walk starts at 0.
pub fn walk(
    owners: &[u32],
    start: usize,
    eligible: &[bool],
    admission: &Admission<'_>,
) -> Option<usize> {
    let start = if start < owners.len() { start } else { 0 };
    let (before, after) = owners.split_at(start);
    for (step, &owner) in after.iter().chain(before).enumerate() {
        if step == SHORT_WALK && !any_eligible(eligible) {
            return None;
        }
        let owner = owner as usize;
        if admission.takes(eligible, owner) {
            return Some(owner);
        }
    }
    None
}

/// The candidates of a power-of-two-choices pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidates {
    /// Only this backend is eligible: no comparison to make.
    One(usize),
    /// Two distinct eligible backends, each pair equally likely.
    Two(usize, usize),
}

/// Two distinct eligible backends drawn uniformly at random, or the only one, or `None` when no
/// backend is eligible.
///
/// Each draw is rejection sampling over all indices (O(1) expected while most backends are
/// eligible); after [`DRAWS`] misses it picks by rank among the eligible ones instead (O(n)).
/// Both routes are uniform, so their mixture is too.
pub fn candidates(eligible: &[bool], rng: &mut fastrand::Rng) -> Option<Candidates> {
    let first = draw(eligible, None, rng)?;
    Some(match draw(eligible, Some(first), rng) {
        Some(second) => Candidates::Two(first, second),
        None => Candidates::One(first),
    })
}

/// One eligible backend other than `except`, uniformly at random; `None` if there is none.
fn draw(eligible: &[bool], except: Option<usize>, rng: &mut fastrand::Rng) -> Option<usize> {
    let len = eligible.len();
    if len == 0 {
        return None;
    }
    for _ in 0..DRAWS {
        let index = rng.usize(..len);
        if eligible[index] && Some(index) != except {
            return Some(index);
        }
    }
    let left =
        count(eligible) - usize::from(except.is_some_and(|index| is_eligible(eligible, index)));
    if left == 0 {
        return None;
    }
    nth(eligible, rng.usize(..left), except)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_masks_make_missing_backends_ineligible() {
        assert!(!is_eligible(&[true], 1));
        assert!(!is_eligible(&[], 0));
        assert_eq!(nth(&[false, true, true], 1, None), Some(2));
        assert_eq!(nth(&[false, true, true], 0, Some(1)), Some(2));
        assert_eq!(nth(&[false, true, true], 1, Some(1)), None);
        assert_eq!(
            walk(&[0, 1, 2], 1, &[true, false, false], &Admission::ALL),
            Some(0),
            "wraps around"
        );
        assert_eq!(
            walk(&[0, 1, 2], 1, &[true, false, true], &Admission::ALL),
            Some(2)
        );
        assert_eq!(walk(&[], 0, &[true], &Admission::ALL), None);
        assert_eq!(
            walk(&[2, 2, 1], 7, &[false, true], &Admission::ALL),
            Some(1),
            "owner 2 is past the mask"
        );
        let long: Vec<u32> = (0..1_000).map(|i| i % 10).collect();
        assert_eq!(walk(&long, 0, &[false; 10], &Admission::ALL), None);
        let mut mask = [false; 10];
        mask[9] = true;
        assert_eq!(walk(&long, 0, &mask, &Admission::ALL), Some(9));
    }

    #[test]
    fn candidates_cover_every_pair_evenly() {
        let eligible = [true, false, true, true, false];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut pairs = [[0u32; 5]; 5];
        for _ in 0..30_000 {
            match candidates(&eligible, &mut rng) {
                Some(Candidates::Two(a, b)) => pairs[a.min(b)][a.max(b)] += 1,
                other => panic!("expected two candidates, got {other:?}"),
            }
        }
        for (a, b) in [(0, 2), (0, 3), (2, 3)] {
            let share = f64::from(pairs[a][b]) / 30_000.0;
            assert!((share - 1.0 / 3.0).abs() < 0.02, "pair {a},{b}: {share}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// P2C never compares a backend with itself and never offers an ineligible one; it
        /// offers one candidate only when exactly one is eligible, none only when none is.
        #[test]
        fn candidates_are_distinct_and_eligible(
            eligible in prop::collection::vec(any::<bool>(), 0..40),
            seed in any::<u64>(),
        ) {
            let mut rng = fastrand::Rng::with_seed(seed);
            for _ in 0..20 {
                match candidates(&eligible, &mut rng) {
                    None => prop_assert_eq!(count(&eligible), 0),
                    Some(Candidates::One(a)) => {
                        prop_assert_eq!(count(&eligible), 1);
                        prop_assert!(eligible[a]);
                    }
                    Some(Candidates::Two(a, b)) => {
                        prop_assert!(count(&eligible) >= 2);
                        prop_assert_ne!(a, b);
                        prop_assert!(eligible[a] && eligible[b]);
                    }
                }
            }
        }
    }
}
