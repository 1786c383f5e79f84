//! `least_response_time`: power of two choices on a peak-EWMA latency cost, as in Finagle's
//! and Linkerd's balancers.
//!
//! Each backend carries a [`PeakEwma`] latency estimate, which the proxy updates with the
//! round-trip time of every response. A backend's cost is `estimate * (outstanding + 1) /
//! weight`: its latency, scaled by the queue a new request would join, per unit of weight (the
//! weight term is ours; with equal weights it changes nothing). Two distinct eligible backends
//! are drawn at random and the cheaper one wins.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use super::eligible::{self, Candidates};
use super::least_request::pick_lighter;

/// A peak-sensitive, time-decayed moving average of a backend's round-trip time.
///
/// - A sample above the estimate replaces it at once (the peak): a backend that turns slow
///   sheds load on its next response, not after many.
/// - A sample below it is mixed in with weight `1 - exp(-elapsed / decay)`, `elapsed` being the
///   time since the previous sample: the estimate moves towards the new level with time
///   constant `decay` (about 63 % of the way per `decay`), however many samples arrive.
/// - [`Self::cost`] decays the estimate towards zero with the same time constant while no
///   sample arrives, so an idle (or once slow) backend is tried again and re-measured.
///
/// Unlike Finagle's, reading the cost does not write the decay back: the estimate is a
/// function of the samples and `now` alone, and a read never changes the next pick.
///
/// Time is an [`Instant`] passed in; a `now` earlier than the last sample counts as no time
/// elapsed. Units: nanoseconds as `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakEwma {
    /// The estimate at `stamp`, in nanoseconds.
    estimate_ns: f64,
    /// When the estimate was last set (by construction or a sample).
    stamp: Instant,
    /// The decay time constant, in nanoseconds (at least 1).
    decay_ns: f64,
}

impl PeakEwma {
    /// The default decay time constant: Linkerd's and Finagle's 10 s, long enough to ride out a
    /// single slow response, short enough to follow a backend that stays slow.
    pub const DEFAULT_DECAY: Duration = Duration::from_secs(10);

    /// The default estimate before the first sample: 30 ms, a plausible HTTP round trip, so a
    /// new backend looks neither free (all traffic would rush to it before its first response)
    /// nor expensive (it would never be tried).
    pub const DEFAULT_RTT: Duration = Duration::from_millis(30);

    /// An estimate of `initial` at `now`, decaying with time constant `decay` (a zero decay is
    /// taken as 1 ns).
    pub fn new(initial: Duration, decay: Duration, now: Instant) -> Self {
        Self {
            estimate_ns: nanos(initial),
            stamp: now,
            decay_ns: nanos(decay).max(1.0),
        }
    }

    /// An estimate with [`Self::DEFAULT_RTT`] and [`Self::DEFAULT_DECAY`].
    pub fn with_defaults(now: Instant) -> Self {
        Self::new(Self::DEFAULT_RTT, Self::DEFAULT_DECAY, now)
    }

    /// Records a response that took `rtt`, received at `now`.
    pub fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt = nanos(rtt);
        if rtt >= self.estimate_ns {
            self.estimate_ns = rtt;
        } else {
            let kept = self.kept(now);
            self.estimate_ns = self.estimate_ns * kept + rtt * (1.0 - kept);
        }
        self.stamp = self.stamp.max(now);
    }

    /// The latency estimate at `now`, in nanoseconds: the last estimate decayed towards zero for
    /// the time since the last sample.
    pub fn cost(&self, now: Instant) -> f64 {
        self.estimate_ns * self.kept(now)
    }

    /// The fraction of the estimate that survives from `stamp` to `now`.
    fn kept(&self, now: Instant) -> f64 {
        let elapsed = nanos(now.saturating_duration_since(self.stamp));
        (-elapsed / self.decay_ns).exp()
    }
}

/// `duration` in nanoseconds, as `f64`.
fn nanos(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e9
}

/// The cheaper of two random distinct eligible backends by `estimate * (outstanding + 1) /
/// weight` (or the only eligible one).
///
/// `latency[i]` is backend `i`'s estimate (a missing entry counts as
/// [`PeakEwma::DEFAULT_RTT`]); `outstanding[i]` its outstanding requests (missing: 0).
pub fn select(
    eligible: &[bool],
    outstanding: &[u32],
    latency: &[PeakEwma],
    weights: &[NonZeroU32],
    now: Instant,
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let eligible = &eligible[..eligible.len().min(weights.len())];
    let cost = |index: usize| {
        let estimate = latency
            .get(index)
            .map_or(nanos(PeakEwma::DEFAULT_RTT), |ewma| ewma.cost(now));
        let in_flight = outstanding.get(index).copied().unwrap_or(0);
        load(estimate, in_flight, weights[index])
    };
    Some(match eligible::candidates(eligible, rng)? {
        Candidates::One(only) => only,
        Candidates::Two(a, b) => {
            let order = cost(a).total_cmp(&cost(b));
            let (weight_a, weight_b) = (weights[a].get(), weights[b].get());
            pick_lighter(a, b, order, weight_a.into(), weight_b.into(), rng)
        }
    })
}

/// A backend's cost: `estimate_ns * (outstanding + 1) / weight`.
pub fn load(estimate_ns: f64, outstanding: u32, weight: NonZeroU32) -> f64 {
    estimate_ns * (f64::from(outstanding) + 1.0) / f64::from(weight.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Milliseconds.
    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    /// An estimate in milliseconds.
    fn in_ms(ns: f64) -> f64 {
        ns / 1e6
    }

    #[test]
    fn a_peak_is_taken_at_once_and_decays_after() {
        let start = Instant::now();
        let mut ewma = PeakEwma::new(ms(10), PeakEwma::DEFAULT_DECAY, start);
        ewma.observe(ms(500), start + ms(1));
        assert_eq!(
            in_ms(ewma.cost(start + ms(1))),
            500.0,
            "peak taken immediately"
        );
        // Steady 10 ms responses, one every 10 ms, for 30 s (three time constants).
        let mut now = start + ms(1);
        for _ in 0..3_000 {
            now += ms(10);
            ewma.observe(ms(10), now);
        }
        let after = in_ms(ewma.cost(now));
        let expected = 10.0 + 490.0 * (-3.0f64).exp();
        assert!(
            (after - expected).abs() < 0.5,
            "after 3 tau: {after} ms, expected {expected}"
        );
    }

    #[test]
    fn converges_to_a_steady_latency() {
        let start = Instant::now();
        let mut ewma = PeakEwma::with_defaults(start);
        let mut now = start;
        for _ in 0..1_200 {
            now += ms(100);
            ewma.observe(ms(20), now);
        }
        assert!((in_ms(ewma.cost(now)) - 20.0).abs() < 0.01);
        // And downwards from a higher level, at the decay rate whatever the sample rate.
        let mut fast = PeakEwma::new(ms(100), ms(1_000), start);
        let mut slow = fast;
        for step in 1..=1_000 {
            fast.observe(ms(50), start + ms(step));
        }
        slow.observe(ms(50), start + ms(1_000));
        let (fast, slow) = (
            in_ms(fast.cost(start + ms(1_000))),
            in_ms(slow.cost(start + ms(1_000))),
        );
        let expected = 50.0 + 50.0 * (-1.0f64).exp();
        assert!(
            (fast - expected).abs() < 0.01 && (slow - expected).abs() < 0.01,
            "{fast} {slow} {expected}"
        );
    }

    #[test]
    fn idle_estimates_decay_towards_zero_without_being_written() {
        let start = Instant::now();
        let ewma = PeakEwma::new(ms(100), ms(1_000), start);
        assert_eq!(in_ms(ewma.cost(start)), 100.0);
        let later = in_ms(ewma.cost(start + ms(1_000)));
        assert!((later - 100.0 * (-1.0f64).exp()).abs() < 1e-9);
        assert_eq!(in_ms(ewma.cost(start)), 100.0, "reading is pure");
        let stamped_later = PeakEwma::new(ms(100), ms(1_000), start + ms(5));
        assert_eq!(
            in_ms(stamped_later.cost(start)),
            100.0,
            "a `now` before the stamp"
        );
    }

    #[test]
    fn the_cheaper_backend_wins() {
        let now = Instant::now();
        let pool = [NonZeroU32::MIN; 2];
        let fast = PeakEwma::new(ms(5), PeakEwma::DEFAULT_DECAY, now);
        let slow = PeakEwma::new(ms(50), PeakEwma::DEFAULT_DECAY, now);
        let mut rng = fastrand::Rng::with_seed(9);
        assert_eq!(
            select(&[true; 2], &[0, 0], &[slow, fast], &pool, now, &mut rng),
            Some(1)
        );
        // 5 ms behind 10 queued costs 55 ms; 50 ms with nothing queued costs 50 ms.
        assert_eq!(
            select(&[true; 2], &[0, 10], &[slow, fast], &pool, now, &mut rng),
            Some(0)
        );
        assert_eq!(load(5e6, 1, NonZeroU32::MIN), 1e7);
        assert_eq!(
            load(6e6, 1, NonZeroU32::MIN.saturating_add(2)),
            4e6,
            "per unit of weight"
        );
        assert_eq!(
            select(
                &[false, true],
                &[0, 99],
                &[fast, slow],
                &pool,
                now,
                &mut rng
            ),
            Some(1)
        );
        assert_eq!(select(&[false; 2], &[], &[], &pool, now, &mut rng), None);
        assert_eq!(select(&[], &[], &[], &[], now, &mut rng), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the samples, the estimate stays between the smallest and the largest of the
        /// initial value and the samples, and right after a sample above it equals the sample.
        #[test]
        fn estimate_stays_within_the_samples(
            samples in prop::collection::vec((1u64..1_000, 0u64..5_000), 1..50),
        ) {
            let start = Instant::now();
            let mut ewma = PeakEwma::new(ms(100), ms(2_000), start);
            let (mut low, mut high) = (100.0f64, 100.0f64);
            let mut now = start;
            for (rtt, gap) in samples {
                now += ms(gap);
                let before = in_ms(ewma.estimate_ns);
                ewma.observe(ms(rtt), now);
                let rtt = rtt as f64;
                low = low.min(rtt);
                high = high.max(rtt);
                let after = in_ms(ewma.cost(now));
                prop_assert!(after >= low - 1e-6 && after <= high + 1e-6);
                if rtt >= before {
                    prop_assert!((after - rtt).abs() < 1e-9);
                }
            }
        }

        /// Never an ineligible backend; `None` exactly when none is eligible.
        #[test]
        fn picks_are_eligible(
            eligible in prop::collection::vec(any::<bool>(), 0..12),
            seed in any::<u64>(),
        ) {
            let now = Instant::now();
            let pool = vec![NonZeroU32::MIN; eligible.len()];
            let latency: Vec<_> = (0..eligible.len() as u64)
                .map(|i| PeakEwma::new(ms(i + 1), PeakEwma::DEFAULT_DECAY, now))
                .collect();
            let mut rng = fastrand::Rng::with_seed(seed);
            for _ in 0..30 {
                match select(&eligible, &[], &latency, &pool, now, &mut rng) {
                    Some(backend) => prop_assert!(eligible[backend]),
                    None => prop_assert!(!eligible.contains(&true)),
                }
            }
        }
    }
}
