//! `maglev`: Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software
//! Network Load Balancer", NSDI 2016, section 3.4), with Envoy's weighted fill.
//!
//! Each backend has a permutation of the `M` table slots (`M` prime): it starts at
//! `offset = xxh64(name, s1) % M` and steps by `skip = xxh64(name, s2) % (M - 1) + 1`, two
//! independent hashes of its name. The backends take turns claiming their next unclaimed
//! preference until the table is full; a backend of weight `w` takes a turn in `w` of every
//! `max weight` rounds, so its share of the table is `w / total` to within a slot or two. A
//! key goes to `table[xxh64(key, 0) % M]`: one array read.
//!
//! Ineligible backends: the same table keeps serving while health flips. A key whose slot
//! belongs to an ineligible backend is re-hashed to a fresh slot, again and again (up to
//! [`PROBES`] times, then a walk to the following slots), until the owner is eligible. Keys of
//! eligible backends never move; a down backend's keys land on random slots, so they spread
//! over the others exactly in proportion to their table shares, that is their weights.
//! Walking to the *adjacent* slot would be simpler, but the permutations are arithmetic
//! progressions, so neighbouring slots' owners are correlated: at M = 65 537 with two of six
//! equal backends down, one survivor got 22 % of the keys instead of 25 %. Rebuilding the table
//! without the down backend would also work, but costs a fill per health flip and moves a few
//! extra keys.
//! A change of the backend *set* does rebuild: that moves the removed backend's keys plus a
//! small excess, measured in the tests.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::BackendSpec;
use super::eligible;
use super::hash::{seed, xxh64};
use super::slow_start::Ramp;

/// The table size unless configured: the paper's 65 537, a prime above 100 times any sensible
/// pool (the paper's rule, so that one slot more or less is at most 1 % of a share). A larger
/// table also moves fewer extra keys on a rebuild (see the tests).
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;

/// How many times a key is re-hashed past ineligible owners before walking the following
/// slots: with 10 % of the weight eligible, all 64 miss for 0.1 % of the down backends' keys.
pub const PROBES: u64 = 64;

/// A slot not claimed yet during the fill.
const EMPTY: u32 = u32::MAX;

/// The lookup table of one backend set.
#[derive(Debug, Clone)]
pub struct Maglev {
    /// `table[slot]` is the backend owning the slot; empty for an empty pool.
    table: Box<[u32]>,
}

/// A backend's walk through its permutation during the fill.
#[derive(Debug, Clone, Copy)]
struct Preference {
    /// The next slot to try.
    slot: u64,
    /// The step between preferences (1..M).
    skip: u64,
    /// The backend's weight.
    weight: u64,
    /// `max weight * turns taken`: the backend's next turn is in the first round `r` with
    /// `r * weight >= next_turn`.
    next_turn: u64,
}

impl Maglev {
    /// The table of `backends` with `size` slots. `size` must be a prime at least as large as
    /// the pool (see [`fits`]), and the pool at most `u32::MAX - 1` backends; the selector
    /// checks both.
    pub fn new(backends: &[BackendSpec], size: u32) -> Self {
        if backends.is_empty() || !fits(size, backends.len()) {
            return Self {
                table: Box::new([]),
            };
        }
        let modulus = u64::from(size);
        let mut preferences: Vec<Preference> = backends
            .iter()
            .map(|backend| {
                let name = backend.name.as_bytes();
                Preference {
                    slot: xxh64(name, seed::MAGLEV_OFFSET) % modulus,
                    skip: xxh64(name, seed::MAGLEV_SKIP) % (modulus - 1) + 1,
                    weight: u64::from(backend.weight.get()),
                    next_turn: 0,
                }
            })
            .collect();
        let max_weight = preferences.iter().map(|p| p.weight).max().unwrap_or(1);
        // Turns in (round, backend) order; a heap rather than a loop over rounds, so a pool
        // with one heavy backend and many light ones does not spin through empty rounds.
        let mut turns: BinaryHeap<Reverse<(u64, usize)>> = (0..preferences.len())
            .map(|owner| Reverse((0, owner)))
            .collect();
        let mut table = vec![EMPTY; size as usize];
        for _ in 0..table.len() {
            let Some(Reverse((_, owner))) = turns.pop() else {
                break;
            };
            let preference = &mut preferences[owner];
            // The permutation visits every slot, so this finds a free one while any is.
            loop {
                let slot = preference.slot as usize;
                preference.slot = (preference.slot + preference.skip) % modulus;
                if table[slot] == EMPTY {
                    table[slot] = owner as u32;
                    break;
                }
            }
            // Envoy's rule: a backend takes a turn in round `r` once `r * weight` reaches its
            // `next_turn`, which grows by the max weight per turn; so `w` turns per `max` rounds.
            preference.next_turn += max_weight;
            let round = preference.next_turn.div_ceil(preference.weight);
            turns.push(Reverse((round, owner)));
        }
        Self {
            table: table.into_boxed_slice(),
        }
    }

    /// The eligible backend for a key whose hash is `key_hash`: the owner of slot
    /// `key_hash % M` if eligible, else of the first eligible-owned slot of the key's re-hashes.
    /// Under slow start, "eligible" also means taking the key (see [`Ramp::admission`]).
    pub fn select(&self, key_hash: u64, eligible: &[bool], ramp: &Ramp<'_>) -> Option<usize> {
        let size = self.table.len() as u64;
        if size == 0 {
            return None;
        }
        let admission = ramp.admission(key_hash, eligible);
        let mut slot = key_hash % size;
        for probe in 0..PROBES {
            let owner = self.table[slot as usize] as usize;
            if admission.takes(eligible, owner) {
                return Some(owner);
            }
            slot = xxh64(
                &key_hash.to_le_bytes(),
                seed::MAGLEV_PROBE.wrapping_add(probe),
            ) % size;
        }
        eligible::walk(&self.table, slot as usize, eligible, &admission)
    }
}

/// Whether a table of `size` slots can hold `backends` backends: `size` is prime (so every
/// skip visits every slot) and at least the pool size (so every backend gets a slot).
pub fn fits(size: u32, backends: usize) -> bool {
    is_prime(size) && size as usize >= backends
}

/// Whether `n` is prime, by trial division (at most 2^16 divisions; run once per build).
pub fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let n = u64::from(n);
    (3u64..)
        .step_by(2)
        .take_while(|divisor| divisor * divisor <= n)
        .all(|divisor| !n.is_multiple_of(divisor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::tests::{
        assert_shares, assert_shares_within, backends, random_keys, weights_strategy,
    };
    use proptest::prelude::*;
    use std::num::NonZeroU32;

    /// A smaller prime table for the share tests, still above 100 times their pools.
    const TEST_SIZE: u32 = 5_003;

    /// The table's pick for `key`.
    fn pick(maglev: &Maglev, key: &[u8], eligible: &[bool]) -> Option<usize> {
        maglev.select(xxh64(key, seed::KEY), eligible, &Ramp::NONE)
    }

    /// How many slots each backend owns.
    fn slot_counts(maglev: &Maglev, backends: usize) -> Vec<u64> {
        let mut counts = vec![0u64; backends];
        for &owner in &maglev.table {
            counts[owner as usize] += 1;
        }
        counts
    }

    #[test]
    fn primes() {
        let primes: Vec<u32> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(DEFAULT_TABLE_SIZE) && is_prime(TEST_SIZE) && is_prime(4_294_967_291));
        assert!(!is_prime(65_535) && !is_prime(4_294_967_295) && !is_prime(25));
        assert!(fits(7, 7) && !fits(7, 8) && !fits(8, 2));
    }

    #[test]
    fn the_default_table_is_full_and_weighted() {
        let maglev = Maglev::new(&backends(&[1, 2, 3, 2]), DEFAULT_TABLE_SIZE);
        assert!(!maglev.table.contains(&EMPTY));
        assert_eq!(maglev.table.len(), DEFAULT_TABLE_SIZE as usize);
        let counts = slot_counts(&maglev, 4);
        for (count, weight) in counts.iter().zip([1u64, 2, 3, 2]) {
            let ideal = 65_537 * weight / 8;
            assert!(count.abs_diff(ideal) <= 2, "{counts:?}");
        }
    }

    #[test]
    fn skewed_weights_fill_quickly_and_in_proportion() {
        let mut pool = backends(&[1; 2_000]);
        pool[0].weight = NonZeroU32::MAX;
        let maglev = Maglev::new(&pool, DEFAULT_TABLE_SIZE);
        let counts = slot_counts(&maglev, pool.len());
        assert!(
            counts.iter().all(|&count| count >= 1),
            "every backend keeps a slot"
        );
        assert_eq!(counts[0], u64::from(DEFAULT_TABLE_SIZE) - 1_999);
    }

    #[test]
    fn edge_cases() {
        let empty = Maglev::new(&[], TEST_SIZE);
        assert_eq!(pick(&empty, b"k", &[]), None);
        let maglev = Maglev::new(&backends(&[1, 1, 1]), TEST_SIZE);
        assert_eq!(pick(&maglev, b"k", &[false; 3]), None);
        assert_eq!(pick(&maglev, b"k", &[]), None);
        assert_eq!(pick(&maglev, b"k", &[false, false, true]), Some(2));
        let one = Maglev::new(&backends(&[9]), 2);
        assert_eq!(pick(&one, b"k", &[true]), Some(0));
        let tiny = Maglev::new(&backends(&[1, 1, 1]), 3);
        assert_eq!(
            slot_counts(&tiny, 3),
            [1, 1, 1],
            "every backend gets a slot"
        );
        let unusable = Maglev::new(&backends(&[1, 1, 1]), 4);
        assert_eq!(
            pick(&unusable, b"k", &[true; 3]),
            None,
            "not prime: no table"
        );
    }

    #[test]
    fn a_down_backends_keys_spread_in_proportion() {
        // Six equal backends, two down: the four survivors should get a quarter each. Walking
        // to the adjacent slot gave one of them 22 % instead (correlated neighbours).
        let maglev = Maglev::new(&backends(&[1; 6]), DEFAULT_TABLE_SIZE);
        let mask = [true, false, true, true, false, true];
        let mut rng = fastrand::Rng::with_seed(11);
        let mut picks = [0u64; 6];
        for _ in 0..40_000 {
            picks[maglev.select(rng.u64(..), &mask, &Ramp::NONE).unwrap_or(1)] += 1;
        }
        for backend in [0, 2, 3, 5] {
            let share = picks[backend] as f64 / 40_000.0;
            assert!((share - 0.25).abs() < 0.012, "{picks:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// The table's shares follow the weights within 5 % (in fact a slot or two), and over
        /// many keys the picks follow the weights of the eligible backends as a random sample
        /// would (within 5 standard deviations): re-hashing past ineligible owners spreads their
        /// keys in proportion.
        #[test]
        fn shares_follow_the_weights(
            (raw, eligible) in weights_strategy(1..8, 1..5),
            seed in any::<u64>(),
        ) {
            let maglev = Maglev::new(&backends(&raw), TEST_SIZE);
            let counts = slot_counts(&maglev, raw.len());
            let all = vec![true; raw.len()];
            assert_shares_within(&counts, &raw, &all, 0.05)?;
            let mut picks = vec![0u64; raw.len()];
            for key in random_keys(seed, 8_000) {
                match pick(&maglev, &key, &eligible) {
                    Some(backend) => picks[backend] += 1,
                    None => prop_assert!(!eligible.contains(&true)),
                }
            }
            assert_shares(&picks, &raw, &eligible, 5.0)?;
        }

    }

    proptest! {
        // Two 65 537-slot fills per case: few cases, many keys each.
        #![proptest_config(ProptestConfig::with_cases(8))]

        /// With the default table, rebuilding without one backend of N moves at most 1.3/N of
        /// the keys, and at most 0.2/N are keys of surviving backends; an ineligible backend
        /// (same table, re-hashed) moves exactly its own keys, about 1/N, and no others.
        #[test]
        fn removing_a_backend_moves_about_one_nth(
            count in 3usize..12,
            removed in 0usize..12,
            seed in any::<u64>(),
        ) {
            let removed = removed % count;
            let all = backends(&vec![1; count]);
            let kept: Vec<BackendSpec> =
                all.iter().enumerate().filter(|&(i, _)| i != removed).map(|(_, b)| b.clone()).collect();
            let before = Maglev::new(&all, DEFAULT_TABLE_SIZE);
            let after = Maglev::new(&kept, DEFAULT_TABLE_SIZE);
            let mut mask = vec![true; count];
            mask[removed] = false;
            let keys = random_keys(seed, 6_000);
            let (mut moved, mut survivors_moved, mut on_removed_keys) = (0usize, 0usize, 0usize);
            for key in &keys {
                let old = pick(&before, key, &vec![true; count]).map(|b| &all[b].name);
                let new = pick(&after, key, &vec![true; count - 1]).map(|b| &kept[b].name);
                let probed = pick(&before, key, &mask).map(|b| &all[b].name);
                let on_removed = old == Some(&all[removed].name);
                moved += usize::from(old != new);
                survivors_moved += usize::from(old != new && !on_removed);
                on_removed_keys += usize::from(on_removed);
                prop_assert_eq!(on_removed, old != probed, "re-hashing moves exactly the removed backend's keys");
            }
            let total = keys.len() as f64;
            let ideal = 1.0 / count as f64;
            let fraction = moved as f64 / total;
            prop_assert!(fraction <= 1.3 * ideal, "moved {} ideal {}", fraction, ideal);
            prop_assert!((survivors_moved as f64 / total) <= 0.2 * ideal);
            prop_assert!((on_removed_keys as f64 / total - ideal).abs() <= 0.3 * ideal);
        }
    }
}
