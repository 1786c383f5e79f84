//! Slow start: a backend that becomes eligible again (its active checks rise, its ejection ends,
//! it is undrained, a reload adds it) takes a growing share of the traffic over a window,
//! rather than its full share at once, so that cold caches, JIT warm-up and connection pools
//! have time to fill (Envoy's `slow_start_config`, HAProxy's `slowstart`).
//!
//! The ramp is linear: the backend's weight in effect starts at [`FLOOR`] (10 %) of its weight
//! and grows evenly to 100 % at the end of the window. The floor keeps a trickle of traffic on
//! the backend from the start, so it is proven (by outlier detection) before it carries much.
//!
//! How the algorithms see it ([`super::SelectInput::weights`]):
//!
//! - the weighted ones (`weighted_round_robin`, `least_connections`, `least_request`,
//!   `least_response_time`, `random`, and `cookie`'s placement of new clients) use the weights
//!   in effect instead of the configured ones, in units of 1/[`SCALE`] of a configured unit so
//!   that a weight-1 backend ramps in fine steps too;
//! - the hashing ones (`ip_hash`, `ring_hash`, `maglev`) keep their tables and *admit* keys:
//!   each key gets a fixed point in `0..SCALE` from its hash, and a ramping backend takes a key
//!   only while the point lies below its ramp's fraction (weight in effect over full weight);
//!   other keys go where they went while the backend was out (the next eligible backend of
//!   the ring, the Maglev probe sequence, the IP hash re-hash chain). So the share grows with
//!   the ramp, a key that moved back stays back, and the keys of other backends never move.
//!   If no eligible backend admits a key (all of them ramping), admission is ignored;
//! - `round_robin` ignores weights, so there is nothing to ramp (the configuration refuses
//!   `slow_start` with it). Sticky `cookie` clients keep their backend.
//!
//! Every function here is pure: the clock arrives as milliseconds.

use std::num::NonZeroU32;

use super::eligible;
use super::hash::{reduce, seed, xxh64};

/// Weights in effect are in thousandths of a configured weight unit: a backend of weight `w`
/// at full weight weighs `w * SCALE`. The largest configured weight (10⁶) then still fits a
/// `u32`, and sums over the largest pool fit the algorithms' `u64`/`i64` arithmetic.
pub const SCALE: u32 = 1000;

/// Where a ramp starts, in thousandths of the full weight: Envoy's default minimum weight
/// (10 %), enough traffic to tell a broken backend from a working one, little enough that a
/// cold one is not swamped.
pub const FLOOR: u32 = 100;

/// The weight in effect, in units of 1/[`SCALE`], of a backend configured with `weight`, at
/// `now_ms`, whose ramp started at `ramp_from_ms` (the moment it became eligible again; 0: it
/// never did, as for the backends a process starts with) over `window_ms` (0: slow start off).
///
/// `weight * SCALE` outside a ramp; inside, `weight * SCALE * (FLOOR + (SCALE - FLOOR) *
/// elapsed / window) / SCALE` rounded up: at least `weight * FLOOR` at the start, growing with
/// `now_ms`, reaching `weight * SCALE` at `ramp_from_ms + window_ms`. A `now_ms` before
/// `ramp_from_ms` (an ejection that has not ended yet) counts as the start.
pub fn effective_weight(
    weight: NonZeroU32,
    ramp_from_ms: u64,
    now_ms: u64,
    window_ms: u64,
) -> NonZeroU32 {
    let full = u64::from(weight.get()) * u64::from(SCALE);
    let elapsed = now_ms.saturating_sub(ramp_from_ms);
    if ramp_from_ms == 0 || window_ms == 0 || elapsed >= window_ms {
        return to_weight(full);
    }
    let numerator = u128::from(full)
        * (u128::from(FLOOR) * u128::from(window_ms)
            + u128::from(SCALE - FLOOR) * u128::from(elapsed));
    let denominator = u128::from(SCALE) * u128::from(window_ms);
    to_weight(u64::try_from(numerator.div_ceil(denominator)).unwrap_or(full))
}

/// Whether a backend whose ramp started at `ramp_from_ms` is still ramping at `now_ms`.
pub fn is_ramping(ramp_from_ms: u64, now_ms: u64, window_ms: u64) -> bool {
    ramp_from_ms != 0 && window_ms != 0 && now_ms.saturating_sub(ramp_from_ms) < window_ms
}

/// A weight in effect as a `NonZeroU32` (it is at least `FLOOR` and at most `10⁶ * SCALE`).
fn to_weight(value: u64) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(value).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

/// Slow start as the hashing algorithms see it: each backend's configured weight and its
/// weight in effect. [`Ramp::NONE`] when slow start is off.
#[derive(Debug, Clone, Copy)]
pub struct Ramp<'a> {
    /// Configured weights, indexed by backend.
    configured: &'a [NonZeroU32],
    /// Weights in effect (units of 1/[`SCALE`]), indexed like `configured`; empty: no ramp.
    effective: &'a [NonZeroU32],
}

impl<'a> Ramp<'a> {
    /// No backend is ramping.
    pub const NONE: Ramp<'static> = Ramp {
        configured: &[],
        effective: &[],
    };

    /// The ramp of backends with these configured weights and weights in effect (the two
    /// slices indexed alike; entries missing from `effective` are at full weight).
    pub fn new(configured: &'a [NonZeroU32], effective: &'a [NonZeroU32]) -> Self {
        Self {
            configured,
            effective,
        }
    }

    /// Which backends take the key hashing to `key_hash`, among `eligible`: a backend at full
    /// weight takes every key; a ramping one the keys whose point lies below its fraction. If
    /// no eligible backend takes the key, every backend does (admission is ignored).
    pub fn admission(&self, key_hash: u64, eligible: &[bool]) -> Admission<'a> {
        if self.effective.is_empty() {
            return Admission::ALL;
        }
        let admission = Admission {
            ramp: *self,
            point: reduce(
                xxh64(&key_hash.to_le_bytes(), seed::SLOW_START),
                u64::from(SCALE),
            ),
        };
        let anyone = eligible
            .iter()
            .enumerate()
            .any(|(index, &ok)| ok && admission.admits(index));
        if anyone { admission } else { Admission::ALL }
    }
}

/// Which backends take one key: see [`Ramp::admission`].
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    /// The ramp.
    ramp: Ramp<'a>,
    /// The key's point, in `0..SCALE`.
    point: u64,
}

impl Admission<'_> {
    /// Every backend takes the key.
    pub const ALL: Admission<'static> = Admission {
        ramp: Ramp::NONE,
        point: 0,
    };

    /// Whether backend `index` takes the key: `point / SCALE < effective / full`.
    pub fn admits(&self, index: usize) -> bool {
        let (Some(effective), Some(configured)) = (
            self.ramp.effective.get(index),
            self.ramp.configured.get(index),
        ) else {
            return true;
        };
        let full = u64::from(configured.get()) * u64::from(SCALE);
        self.point * full < u64::from(effective.get()) * u64::from(SCALE)
    }

    /// Whether backend `index` is eligible in `eligible` and takes the key.
    pub fn takes(&self, eligible: &[bool], index: usize) -> bool {
        eligible::is_eligible(eligible, index) && self.admits(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `weight` as a `NonZeroU32`.
    fn w(weight: u32) -> NonZeroU32 {
        NonZeroU32::new(weight).unwrap()
    }

    #[test]
    fn no_ramp_means_full_weight() {
        for weight in [1, 2, 7, 1_000_000] {
            let full = weight * SCALE;
            assert_eq!(effective_weight(w(weight), 0, 5_000, 10_000).get(), full);
            assert_eq!(effective_weight(w(weight), 1, 5_000, 0).get(), full);
            assert_eq!(effective_weight(w(weight), 100, 10_100, 10_000).get(), full);
            assert_eq!(
                effective_weight(w(weight), 100, u64::MAX, 10_000).get(),
                full
            );
            assert!(!is_ramping(0, 5, 10));
            assert!(!is_ramping(1, 5, 0));
            assert!(!is_ramping(100, 110, 10));
        }
    }

    #[test]
    fn ramp_end_points_and_middle() {
        assert_eq!(effective_weight(w(1), 1_000, 1_000, 30_000).get(), FLOOR);
        assert_eq!(
            effective_weight(w(3), 1_000, 1_000, 30_000).get(),
            3 * FLOOR
        );
        assert_eq!(
            effective_weight(w(1), 1_000, 500, 30_000).get(),
            FLOOR,
            "before the start (an ejection still running) counts as the start"
        );
        // Half way: 10 % + 90 % / 2 = 55 %.
        assert_eq!(effective_weight(w(2), 1_000, 16_000, 30_000).get(), 1_100);
        assert_eq!(effective_weight(w(1), 1_000, 30_999, 30_000).get(), 1_000);
        assert!(is_ramping(1_000, 30_999, 30_000));
        assert!(!is_ramping(1_000, 31_000, 30_000));
        assert_eq!(
            effective_weight(w(1_000_000), 1, 1, 3_600_000).get(),
            100_000_000
        );
    }

    /// Every weight, window and instant of a small range: the ramp starts at the floor, never
    /// falls, stays within the floor and the full weight, grows with the configured weight,
    /// ends at full weight exactly at the end of the window, and is exactly the linear ramp
    /// rounded up.
    #[test]
    fn ramp_is_monotone_bounded_and_linear_exhaustively() {
        let from = 7u64;
        for window in 1..=120u64 {
            for weight in 1..=24u32 {
                let full = u64::from(weight) * u64::from(SCALE);
                let mut previous = 0u64;
                for now in 0..=from + window + 2 {
                    let value = u64::from(effective_weight(w(weight), from, now, window).get());
                    let elapsed = now.saturating_sub(from);
                    assert!(value >= previous, "falls at {now} ({weight}, {window})");
                    assert!(value >= u64::from(weight * FLOOR), "below the floor");
                    assert!(value <= full, "above full");
                    if elapsed >= window {
                        assert_eq!(value, full, "not full at the end");
                    } else {
                        // value = ceil(full * (FLOOR * window + (SCALE - FLOOR) * elapsed) /
                        // (SCALE * window)), checked as the two inequalities of the ceiling.
                        let exact =
                            full * (u64::from(FLOOR) * window + u64::from(SCALE - FLOOR) * elapsed);
                        let unit = u64::from(SCALE) * window;
                        assert!(value * unit >= exact && (value - 1) * unit < exact);
                    }
                    if weight > 1 {
                        let lighter = effective_weight(w(weight - 1), from, now, window).get();
                        assert!(u64::from(lighter) < value, "a heavier backend weighs less");
                    }
                    assert_eq!(is_ramping(from, now, window), elapsed < window);
                    previous = value;
                }
            }
        }
    }

    #[test]
    fn admission_follows_the_fraction_and_is_monotone() {
        let configured = [w(1), w(4), w(2)];
        let all = [true; 3];
        // Backend 1 at 25 % of its full weight, the others full.
        let effective = [w(SCALE), w(4 * SCALE / 4), w(2 * SCALE)];
        let ramp = Ramp::new(&configured, &effective);
        let keys = 20_000u64;
        let admitted = (0..keys)
            .filter(|&key| ramp.admission(key, &all).admits(1))
            .count();
        let share = admitted as f64 / keys as f64;
        assert!((share - 0.25).abs() < 0.02, "{share}");
        for key in 0..keys {
            let admission = ramp.admission(key, &all);
            assert!(admission.admits(0) && admission.admits(2));
            assert!(admission.takes(&all, 0) && !admission.takes(&[false; 3], 0));
        }
        // A key admitted at one fraction stays admitted at every larger one.
        for key in 0..2_000u64 {
            let mut was = false;
            for quarter in 1..=4 {
                let effective = [w(SCALE), w(quarter * SCALE), w(2 * SCALE)];
                let now = Ramp::new(&configured, &effective)
                    .admission(key, &all)
                    .admits(1);
                assert!(now || !was, "key {key} left at {quarter}/4");
                was = now;
            }
            assert!(was, "everyone is admitted at full weight");
        }
    }

    #[test]
    fn admission_is_ignored_when_nobody_would_take_the_key() {
        let configured = [w(1), w(1)];
        let effective = [w(FLOOR), w(SCALE)];
        let ramp = Ramp::new(&configured, &effective);
        let mut refused = 0;
        for key in 0..1_000u64 {
            let both = ramp.admission(key, &[true, true]);
            assert!(both.admits(1), "a backend at full weight takes every key");
            if !both.admits(0) {
                refused += 1;
                assert!(
                    ramp.admission(key, &[true, false]).admits(0),
                    "the only eligible backend takes every key, ramping or not"
                );
            }
        }
        assert!(
            (850..950).contains(&refused),
            "{refused} of 1000 refused at 10 %"
        );
        assert!(Ramp::NONE.admission(7, &[true]).admits(0));
        assert!(Admission::ALL.admits(12), "indices past the ramp are full");
    }
}
