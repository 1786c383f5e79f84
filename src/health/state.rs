//! The pure health state machine: rise/fall hysteresis for each probed target, and the `require`
//! rule that combines a region's monitors into the region's state.
//!
//! Nothing here does I/O or reads the clock. A probe's time arrives inside its [`ProbeReport`], a
//! region's re-evaluation time as an argument, so the monitor task, the admin API and the tests
//! drive the same code and see the same transitions.

use std::collections::VecDeque;
use std::fmt;
use std::time::SystemTime;

use super::ProbeReport;
use crate::config::Require;

/// How many transitions a target or a region keeps: enough to show a flapping target's recent
/// pattern on the dashboard, small enough (a few kilobytes) to keep for every monitor.
pub const HISTORY: usize = 32;

/// A change of a target's or region's state, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// When the change happened: for a target, when the deciding probe finished (its start plus
    /// its latency); for a region, the time given to [`RegionState::update`].
    pub at: SystemTime,
    /// The new state.
    pub up: bool,
    /// Why, for operators: the streak and the last result, or the monitors that are down.
    pub reason: String,
}

/// Rise/fall thresholds of one monitor.
///
/// Both are at least 1 (the config guarantees it); a 0 behaves like 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive passes that make a down target up.
    pub rise: u32,
    /// Consecutive failures that make an up target down.
    pub fall: u32,
}

/// An up/down state with its recent transitions; what targets and regions have in common.
#[derive(Debug, Clone)]
struct Timeline {
    /// The current state.
    up: bool,
    /// The most recent transitions, oldest first, at most [`HISTORY`]; the last one entered `up`.
    history: VecDeque<Transition>,
}

impl Timeline {
    /// A state that has never changed.
    fn new(up: bool) -> Timeline {
        Timeline {
            up,
            history: VecDeque::new(),
        }
    }

    /// Flips the state at `at`, records the transition (forgetting the oldest beyond
    /// [`HISTORY`]) and returns it.
    fn flip(&mut self, at: SystemTime, reason: String) -> Transition {
        self.up = !self.up;
        let transition = Transition {
            at,
            up: self.up,
            reason,
        };
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(transition.clone());
        transition
    }

    /// When the current state was entered; `None` if it never changed.
    fn since(&self) -> Option<SystemTime> {
        self.history.back().map(|transition| transition.at)
    }
}

/// One probed target (one monitor of a region).
///
/// Invariant: at most one of `passes` and `failures` is non-zero.
#[derive(Debug, Clone)]
pub struct TargetState {
    /// Up or down, and how it got there.
    timeline: Timeline,
    /// Consecutive passes ending with the last result (0 if the last result failed).
    passes: u32,
    /// Consecutive failures ending with the last result (0 if the last result passed).
    failures: u32,
    /// The last probe result.
    last: Option<ProbeReport>,
}

impl TargetState {
    /// A target not yet probed, assumed `up` (the configured initial state or the persisted last
    /// state).
    pub fn new(up: bool) -> TargetState {
        TargetState {
            timeline: Timeline::new(up),
            passes: 0,
            failures: 0,
            last: None,
        }
    }

    /// Feeds one probe result; returns the transition when the state flips.
    ///
    /// Hysteresis: an up target goes down after `fall` consecutive failures; a down target goes
    /// up after `rise` consecutive passes; a pass resets the failure streak and vice versa. The
    /// streak is not reset by a flip: it keeps counting while the results keep agreeing.
    ///
    /// The reason of a down transition names the streak and the last failure, e.g.
    /// "2 consecutive failures; last: unexpected status 503"; of an up transition the streak and
    /// the last report, e.g. "2 consecutive passes; last: ok: status 200 in 3 ms".
    pub fn observe(&mut self, report: &ProbeReport, thresholds: Thresholds) -> Option<Transition> {
        let reason = match &report.result {
            Ok(_) => {
                self.passes = self.passes.saturating_add(1);
                self.failures = 0;
                (!self.timeline.up && self.passes >= thresholds.rise)
                    .then(|| format!("{}; last: {report}", Streak(self.passes, "pass", "passes")))
            }
            Err(failure) => {
                self.failures = self.failures.saturating_add(1);
                self.passes = 0;
                (self.timeline.up && self.failures >= thresholds.fall).then(|| {
                    let streak = Streak(self.failures, "failure", "failures");
                    format!("{streak}; last: {failure}")
                })
            }
        };
        match &mut self.last {
            Some(last) => last.clone_from(report),
            None => self.last = Some(report.clone()),
        }
        let reason = reason?;
        let at = report.at.checked_add(report.latency).unwrap_or(report.at);
        Some(self.timeline.flip(at, reason))
    }

    /// Whether the target is up.
    pub fn is_up(&self) -> bool {
        self.timeline.up
    }

    /// Whether at least one probe result has been observed.
    pub fn probed(&self) -> bool {
        self.last.is_some()
    }

    /// The last probe result, if any.
    pub fn last(&self) -> Option<&ProbeReport> {
        self.last.as_ref()
    }

    /// Current streaks: (consecutive passes, consecutive failures); one of them is 0.
    pub fn streak(&self) -> (u32, u32) {
        (self.passes, self.failures)
    }

    /// When the target entered its current state (`None`: since start, never flipped).
    pub fn since(&self) -> Option<SystemTime> {
        self.timeline.since()
    }

    /// The most recent transitions, oldest first, at most [`HISTORY`] kept.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &Transition> + ExactSizeIterator {
        self.timeline.history.iter()
    }
}

/// A streak for a reason: its length and the singular or plural noun, "1 consecutive pass".
struct Streak(u32, &'static str, &'static str);

impl fmt::Display for Streak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Streak(count, one, many) = *self;
        write!(
            f,
            "{count} consecutive {}",
            if count == 1 { one } else { many }
        )
    }
}

/// Whether a region is up under `require`, given the up/down state of each of its monitors.
///
/// A region with no monitors is up, whatever `require` says. `AtLeast(n)` with `n` greater than
/// the number of monitors can never be satisfied (the config rejects that; here it simply means
/// down). Does not allocate.
pub fn region_up(require: Require, monitors: impl IntoIterator<Item = bool>) -> bool {
    let (total, up) = monitors
        .into_iter()
        .fold((0u64, 0u64), |(total, up), monitor| {
            (total + 1, up + u64::from(monitor))
        });
    total == 0
        || match require {
            Require::All => up == total,
            Require::Any => up > 0,
            Require::AtLeast(needed) => up >= u64::from(needed),
        }
}

/// A region's aggregate state, tracking its own transitions.
#[derive(Debug, Clone)]
pub struct RegionState {
    /// Up or down, and how it got there.
    timeline: Timeline,
}

impl RegionState {
    /// A region not yet evaluated, assumed `up` (the configured initial state or the persisted
    /// last state).
    pub fn new(up: bool) -> RegionState {
        RegionState {
            timeline: Timeline::new(up),
        }
    }

    /// Re-evaluates the region from its monitors' states at time `at`; returns the transition
    /// when it flips.
    ///
    /// `monitors` are (name, up) pairs; they are walked a second time, to write the reason, only
    /// when the region flips. The reason counts and names the monitors that are down, e.g.
    /// "1 of 2 monitors down (require all): https://lb/health", or "0 of 2 monitors down
    /// (require all)" when all are up.
    pub fn update<'a>(
        &mut self,
        require: Require,
        monitors: impl IntoIterator<Item = (&'a str, bool)> + Clone,
        at: SystemTime,
    ) -> Option<Transition> {
        let up = region_up(require, monitors.clone().into_iter().map(|(_, up)| up));
        if up == self.timeline.up {
            return None;
        }
        Some(self.timeline.flip(at, region_reason(require, monitors)))
    }

    /// Whether the region is up.
    pub fn is_up(&self) -> bool {
        self.timeline.up
    }

    /// When the region entered its current state (`None`: since start, never flipped).
    pub fn since(&self) -> Option<SystemTime> {
        self.timeline.since()
    }

    /// The most recent transitions, oldest first, at most [`HISTORY`] kept.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &Transition> + ExactSizeIterator {
        self.timeline.history.iter()
    }
}

/// The reason of a region's transition: how many monitors are down, under which rule, and
/// their names.
fn region_reason<'a>(
    require: Require,
    monitors: impl IntoIterator<Item = (&'a str, bool)>,
) -> String {
    let mut total = 0u64;
    let mut down = 0u64;
    let mut names = String::new();
    for (name, up) in monitors {
        total += 1;
        if !up {
            down += 1;
            if !names.is_empty() {
                names.push_str(", ");
            }
            names.push_str(name);
        }
    }
    let noun = if total == 1 { "monitor" } else { "monitors" };
    let mut reason = format!("{down} of {total} {noun} down (require {})", Rule(require));
    if !names.is_empty() {
        reason.push_str(": ");
        reason.push_str(&names);
    }
    reason
}

/// A `require` rule as operators write it: "all", "any", "at least 2".
struct Rule(Require);

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Require::All => f.write_str("all"),
            Require::Any => f.write_str("any"),
            Require::AtLeast(needed) => write!(f, "at least {needed}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use proptest::prelude::*;

    use super::*;
    use crate::health::{Failure, Pass};

    /// Time of test step `step`: ten seconds apart, far from the epoch.
    fn time(step: usize) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_secs(10) * step as u32
    }

    /// The probe report of test step `step`: a pass with status 200, or a failure whose status
    /// (500 + step) tells which step it came from; latency 1 to 7 ms, varying with the step.
    fn report(step: usize, pass: bool) -> ProbeReport {
        ProbeReport {
            at: time(step),
            latency: Duration::from_millis(step as u64 % 7 + 1),
            result: if pass {
                Ok(Pass {
                    status: Some(200),
                    capacity: None,
                    requests: None,
                })
            } else {
                Err(Failure::Status(500 + step as u16))
            },
        }
    }

    /// What the reference model expects after one result.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Expected {
        /// The state after the result.
        up: bool,
        /// (consecutive passes, consecutive failures) ending with this result.
        streak: (u32, u32),
        /// Whether this result flipped the state.
        flipped: bool,
    }

    /// The reference model, written to be obviously right rather than fast: after each result,
    /// the streak is the run of equal results counted backwards through the sequence itself, and
    /// the state flips when the run against the current state reaches the threshold.
    fn reference(initial: bool, thresholds: Thresholds, results: &[bool]) -> Vec<Expected> {
        let mut up = initial;
        let mut expected = Vec::with_capacity(results.len());
        for end in 0..results.len() {
            let seen = &results[..=end];
            let pass = seen[end];
            let run = seen
                .iter()
                .rev()
                .take_while(|&&result| result == pass)
                .count() as u32;
            let flipped = if pass {
                !up && run >= thresholds.rise
            } else {
                up && run >= thresholds.fall
            };
            if flipped {
                up = !up;
            }
            let streak = if pass { (run, 0) } else { (0, run) };
            expected.push(Expected {
                up,
                streak,
                flipped,
            });
        }
        expected
    }

    /// The exact reason of the transition made by step `step` after a streak of `run`.
    fn expected_reason(step: usize, pass: bool, run: u32) -> String {
        let report = report(step, pass);
        match (&report.result, run) {
            (Ok(_), 1) => format!("1 consecutive pass; last: {report}"),
            (Ok(_), _) => format!("{run} consecutive passes; last: {report}"),
            (Err(failure), 1) => format!("1 consecutive failure; last: {failure}"),
            (Err(failure), _) => format!("{run} consecutive failures; last: {failure}"),
        }
    }

    /// Runs `results` through a fresh `TargetState` and checks it against the reference after
    /// every result: state, streaks, last report, since, history, and every returned transition
    /// (where, direction, time, exact reason). Returns the first mismatch.
    fn check_target(initial: bool, thresholds: Thresholds, results: &[bool]) -> Result<(), String> {
        let expected = reference(initial, thresholds, results);
        let mut target = TargetState::new(initial);
        let mut flips: Vec<Transition> = Vec::new();
        for (step, (&pass, expected)) in results.iter().zip(&expected).enumerate() {
            let report = report(step, pass);
            let context = || format!("initial {initial}, {thresholds:?}, {results:?}, step {step}");
            let transition = target.observe(&report, thresholds);
            if transition.is_some() != expected.flipped {
                return Err(format!(
                    "{}: transition {transition:?}, want flip {}",
                    context(),
                    expected.flipped
                ));
            }
            if let Some(transition) = transition {
                let run = expected.streak.0.max(expected.streak.1);
                let want = Transition {
                    at: report.at + report.latency,
                    up: expected.up,
                    reason: expected_reason(step, pass, run),
                };
                if transition != want {
                    return Err(format!(
                        "{}: transition {transition:?}, want {want:?}",
                        context()
                    ));
                }
                flips.push(transition);
            }
            let got = (
                target.is_up(),
                target.streak(),
                target.probed(),
                target.last(),
            );
            let want = (expected.up, expected.streak, true, Some(&report));
            if got != want {
                return Err(format!(
                    "{}: (up, streak, probed, last) {got:?}, want {want:?}",
                    context()
                ));
            }
            let since = flips.last().map(|flip| flip.at);
            if target.since() != since {
                return Err(format!(
                    "{}: since {:?}, want {since:?}",
                    context(),
                    target.since()
                ));
            }
            let keep = flips.len().saturating_sub(HISTORY);
            if !target.history().eq(&flips[keep..]) {
                return Err(format!(
                    "{}: history {:?}, want {:?}",
                    context(),
                    target.history().collect::<Vec<_>>(),
                    &flips[keep..]
                ));
            }
        }
        Ok(())
    }

    /// Every rise and fall in 1..=5, both initial states, every pass/fail sequence of length 12
    /// (and so every shorter one, as its prefix): the state machine matches the reference after
    /// every single result.
    #[test]
    fn target_matches_reference_on_every_sequence() {
        const LENGTH: usize = 12;
        let mut results = [false; LENGTH];
        for rise in 1..=5 {
            for fall in 1..=5 {
                let thresholds = Thresholds { rise, fall };
                for initial in [false, true] {
                    for bits in 0u32..1 << LENGTH {
                        for (index, result) in results.iter_mut().enumerate() {
                            *result = bits >> index & 1 == 1;
                        }
                        if let Err(mismatch) = check_target(initial, thresholds, &results) {
                            panic!("{mismatch}");
                        }
                    }
                }
            }
        }
    }

    /// The reference itself, on hand-checked cases, so that a wrong model cannot hide a wrong
    /// state machine.
    #[test]
    fn reference_on_known_cases() {
        let flips = |initial, rise, fall, results: &[bool]| -> Vec<usize> {
            reference(initial, Thresholds { rise, fall }, results)
                .iter()
                .enumerate()
                .filter_map(|(step, expected)| expected.flipped.then_some(step))
                .collect()
        };
        const P: bool = true;
        const F: bool = false;
        // Up, fall 2: the second failure in a row flips; a pass in between resets.
        assert_eq!(flips(true, 2, 2, &[F, P, F, F, F]), [3]);
        // Down, rise 3: the third pass in a row flips up, then fall 1 flips down at once.
        assert_eq!(flips(false, 3, 1, &[P, P, F, P, P, P, P, F]), [5, 7]);
        // Rise 1 and fall 1 follow every change of result.
        assert_eq!(flips(true, 1, 1, &[P, F, F, P, F]), [1, 3, 4]);
        // Results that agree with the state never flip it.
        assert_eq!(flips(true, 1, 1, &[P, P, P]), [] as [usize; 0]);
        assert_eq!(flips(false, 1, 1, &[F, F, F]), [] as [usize; 0]);
        let last = reference(false, Thresholds { rise: 2, fall: 2 }, &[F, P, P, P]);
        assert_eq!(
            last.last(),
            Some(&Expected {
                up: true,
                streak: (3, 0),
                flipped: false
            })
        );
    }

    /// A target that was never probed: assumed state, no streak, no history.
    #[test]
    fn new_target_is_unprobed() {
        for up in [false, true] {
            let target = TargetState::new(up);
            assert_eq!(target.is_up(), up);
            assert!(!target.probed());
            assert_eq!(target.last(), None);
            assert_eq!(target.streak(), (0, 0));
            assert_eq!(target.since(), None);
            assert_eq!(target.history().len(), 0);
        }
    }

    /// The reasons read as the documentation promises.
    #[test]
    fn target_reasons_name_streak_and_last_result() {
        let thresholds = Thresholds { rise: 2, fall: 2 };
        let at = time(0);
        let failed = |status| ProbeReport {
            at,
            latency: Duration::from_millis(1000),
            result: Err(Failure::Status(status)),
        };
        let passed = ProbeReport {
            at,
            latency: Duration::from_millis(3),
            result: Ok(Pass {
                status: Some(200),
                capacity: None,
                requests: None,
            }),
        };
        let mut target = TargetState::new(true);
        assert_eq!(target.observe(&failed(500), thresholds), None);
        let down = target
            .observe(&failed(503), thresholds)
            .expect("second failure flips");
        assert_eq!(
            down.reason,
            "2 consecutive failures; last: unexpected status 503"
        );
        assert!(!down.up);
        assert_eq!(target.observe(&passed, thresholds), None);
        let up = target
            .observe(&passed, thresholds)
            .expect("second pass flips");
        assert_eq!(
            up.reason,
            "2 consecutive passes; last: ok: status 200 in 3 ms"
        );
        assert!(up.up);

        let ones = Thresholds { rise: 1, fall: 1 };
        let timeout = ProbeReport {
            at,
            latency: Duration::from_millis(1000),
            result: Err(Failure::Timeout),
        };
        let connected = ProbeReport {
            at,
            latency: Duration::from_millis(4),
            result: Ok(Pass {
                status: None,
                capacity: None,
                requests: None,
            }),
        };
        let down = target.observe(&timeout, ones).expect("fall 1 flips");
        assert_eq!(down.reason, "1 consecutive failure; last: timed out");
        let up = target.observe(&connected, ones).expect("rise 1 flips");
        assert_eq!(up.reason, "1 consecutive pass; last: ok: connected in 4 ms");
    }

    /// A target's transition is dated when the deciding probe finished, and `since` follows.
    #[test]
    fn target_transition_is_dated_at_probe_end() {
        let mut target = TargetState::new(true);
        let probe = ProbeReport {
            at: time(3),
            latency: Duration::from_millis(1500),
            result: Err(Failure::Refused),
        };
        let down = target
            .observe(&probe, Thresholds { rise: 1, fall: 1 })
            .expect("flips");
        assert_eq!(down.at, time(3) + Duration::from_millis(1500));
        assert_eq!(target.since(), Some(down.at));
    }

    /// Rise 0 and fall 0 (which the config rejects) behave like 1 instead of misbehaving.
    #[test]
    fn zero_thresholds_behave_like_one() {
        let zero = Thresholds { rise: 0, fall: 0 };
        let one = Thresholds { rise: 1, fall: 1 };
        for bits in 0u32..1 << 8 {
            let results: Vec<bool> = (0..8).map(|index| bits >> index & 1 == 1).collect();
            for initial in [false, true] {
                let mut with_zero = TargetState::new(initial);
                let mut with_one = TargetState::new(initial);
                for (step, &pass) in results.iter().enumerate() {
                    let report = report(step, pass);
                    assert_eq!(
                        with_zero.observe(&report, zero),
                        with_one.observe(&report, one)
                    );
                }
            }
        }
    }

    /// Streaks saturate instead of overflowing, and the state stays put.
    #[test]
    fn streaks_saturate() {
        let thresholds = Thresholds { rise: 3, fall: 3 };
        let mut target = TargetState::new(false);
        target.failures = u32::MAX;
        assert_eq!(target.observe(&report(0, false), thresholds), None);
        assert_eq!(target.streak(), (0, u32::MAX));
        let mut target = TargetState::new(true);
        target.passes = u32::MAX;
        assert_eq!(target.observe(&report(1, true), thresholds), None);
        assert_eq!(target.streak(), (u32::MAX, 0));
    }

    /// A flapping target keeps only its last `HISTORY` transitions, oldest first, alternating,
    /// and `since` is the newest one.
    #[test]
    fn target_history_is_capped_and_ordered() {
        let thresholds = Thresholds { rise: 1, fall: 1 };
        let mut target = TargetState::new(true);
        let mut all = Vec::new();
        for step in 0..100 {
            let transition = target
                .observe(&report(step, step % 2 == 1), thresholds)
                .expect("flips every step");
            all.push(transition);
            assert_eq!(target.history().len(), all.len().min(HISTORY));
        }
        assert!(target.history().eq(&all[all.len() - HISTORY..]));
        let history: Vec<&Transition> = target.history().collect();
        for pair in history.windows(2) {
            assert!(pair[0].at < pair[1].at);
            assert_ne!(pair[0].up, pair[1].up);
        }
        assert_eq!(target.history().next_back(), all.last());
        assert_eq!(target.since(), all.last().map(|transition| transition.at));
    }

    /// Every `require` rule that could matter, over every combination of up to 5 monitors.
    #[test]
    fn region_up_on_every_combination() {
        let mut requires = vec![Require::All, Require::Any];
        requires.extend((0..=7).map(Require::AtLeast));
        for count in 0..=5u32 {
            for bits in 0u32..1 << count {
                let monitors: Vec<bool> = (0..count).map(|index| bits >> index & 1 == 1).collect();
                let up = bits.count_ones();
                for &require in &requires {
                    let want = count == 0
                        || match require {
                            Require::All => up == count,
                            Require::Any => up >= 1,
                            Require::AtLeast(needed) => up >= needed,
                        };
                    assert_eq!(
                        region_up(require, monitors.iter().copied()),
                        want,
                        "{require:?} over {monitors:?}"
                    );
                }
            }
        }
    }

    /// The documented edge cases of `region_up`, spelled out.
    #[test]
    fn region_up_edge_cases() {
        for require in [
            Require::All,
            Require::Any,
            Require::AtLeast(0),
            Require::AtLeast(3),
        ] {
            assert!(
                region_up(require, []),
                "no monitors is up under {require:?}"
            );
        }
        assert!(!region_up(Require::AtLeast(3), [true, true]));
        assert!(region_up(Require::AtLeast(0), [false, false]));
        assert!(!region_up(Require::AtLeast(u32::MAX), [true]));
    }

    /// Names of the test monitors.
    const NAMES: [&str; 3] = ["https://a/health", "https://b/health", "tcp://c:443"];

    /// Every rule, both initial states, 0 to 3 monitors and every sequence of three monitor
    /// states: `update` reports exactly the flips, with the right reason and time, and the state,
    /// `since` and history follow.
    #[test]
    fn region_update_reports_exactly_the_flips() {
        let mut requires = vec![Require::All, Require::Any];
        requires.extend((0..=4).map(Require::AtLeast));
        for count in 0..=3usize {
            let combinations = 1usize << count;
            let monitors = |bits: usize| -> Vec<(&'static str, bool)> {
                NAMES[..count]
                    .iter()
                    .enumerate()
                    .map(|(index, &name)| (name, bits >> index & 1 == 1))
                    .collect()
            };
            for &require in &requires {
                for initial in [false, true] {
                    for sequence in 0..combinations.pow(3) {
                        let mut region = RegionState::new(initial);
                        let mut up = initial;
                        let mut flips = Vec::new();
                        for step in 0..3 {
                            let bits = sequence / combinations.pow(step as u32) % combinations;
                            let monitors = monitors(bits);
                            let want_up = region_up(require, monitors.iter().map(|&(_, up)| up));
                            let transition =
                                region.update(require, monitors.iter().copied(), time(step));
                            let context = format!(
                                "{require:?}, initial {initial}, step {step}, {monitors:?}"
                            );
                            if want_up == up {
                                assert_eq!(transition, None, "{context}");
                            } else {
                                up = want_up;
                                let transition = transition
                                    .unwrap_or_else(|| panic!("{context}: no transition"));
                                assert_eq!(transition.at, time(step), "{context}");
                                assert_eq!(transition.up, up, "{context}");
                                assert_eq!(
                                    transition.reason,
                                    region_reason(require, monitors.iter().copied())
                                );
                                let down: Vec<&str> = monitors
                                    .iter()
                                    .filter(|(_, up)| !up)
                                    .map(|&(name, _)| name)
                                    .collect();
                                let head = format!("{} of {count} ", down.len());
                                assert!(
                                    transition.reason.starts_with(&head),
                                    "{context}: {}",
                                    transition.reason
                                );
                                for name in NAMES[..count].iter() {
                                    assert_eq!(
                                        transition.reason.contains(name),
                                        down.contains(name),
                                        "{context}: {}",
                                        transition.reason
                                    );
                                }
                                flips.push(transition);
                            }
                            assert_eq!(region.is_up(), up, "{context}");
                            assert_eq!(
                                region.since(),
                                flips.last().map(|flip| flip.at),
                                "{context}"
                            );
                            assert!(region.history().eq(&flips), "{context}");
                        }
                    }
                }
            }
        }
    }

    /// The region reasons read as the documentation promises.
    #[test]
    fn region_reasons_name_the_monitors_down() {
        let at = time(1);
        let mut region = RegionState::new(true);
        let down = region
            .update(
                Require::All,
                [("https://lb/health", false), ("tcp://lb:443", true)],
                at,
            )
            .expect("flips down");
        assert_eq!(
            down.reason,
            "1 of 2 monitors down (require all): https://lb/health"
        );
        let up = region
            .update(
                Require::AtLeast(1),
                [("https://lb/health", false), ("tcp://lb:443", true)],
                at,
            )
            .expect("flips up");
        assert_eq!(
            up.reason,
            "1 of 2 monitors down (require at least 1): https://lb/health"
        );
        let down = region
            .update(Require::Any, [("a", false), ("b", false)], at)
            .expect("flips down");
        assert_eq!(down.reason, "2 of 2 monitors down (require any): a, b");
        let up = region
            .update(Require::All, [("a", true)], at)
            .expect("flips up");
        assert_eq!(up.reason, "0 of 1 monitor down (require all)");
        let mut region = RegionState::new(false);
        let up = region
            .update(Require::All, [], at)
            .expect("no monitors is up");
        assert_eq!(up.reason, "0 of 0 monitors down (require all)");
    }

    /// A region's input may be any cloneable iterator of (name, up), such as a map over the
    /// targets' states.
    #[test]
    fn region_update_takes_target_states() {
        let thresholds = Thresholds { rise: 1, fall: 1 };
        let mut targets = [
            ("https://a/health".to_owned(), TargetState::new(true)),
            ("https://b/health".to_owned(), TargetState::new(true)),
        ];
        targets[1].1.observe(&report(0, false), thresholds);
        let mut region = RegionState::new(true);
        let monitors = targets
            .iter()
            .map(|(name, target)| (name.as_str(), target.is_up()));
        let down = region
            .update(Require::All, monitors, time(0))
            .expect("flips down");
        assert_eq!(
            down.reason,
            "1 of 2 monitors down (require all): https://b/health"
        );
        assert_eq!(
            region.update(
                Require::All,
                targets
                    .iter()
                    .map(|(name, target)| (name.as_str(), target.is_up())),
                time(1)
            ),
            None
        );
    }

    /// A flapping region keeps only its last `HISTORY` transitions, oldest first.
    #[test]
    fn region_history_is_capped_and_ordered() {
        let mut region = RegionState::new(true);
        let mut all = Vec::new();
        for step in 0..(3 * HISTORY) {
            let transition = region
                .update(Require::All, [("a", step % 2 == 1)], time(step))
                .expect("flips every step");
            all.push(transition);
        }
        assert_eq!(region.history().len(), HISTORY);
        assert!(region.history().eq(&all[all.len() - HISTORY..]));
        assert_eq!(region.since(), Some(time(3 * HISTORY - 1)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Long random runs with thresholds up to 10: the state machine matches the reference,
        /// history included once it overflows.
        #[test]
        fn target_matches_reference_on_long_runs(
            initial in any::<bool>(),
            rise in 1u32..=10,
            fall in 1u32..=10,
            results in prop::collection::vec(prop::bool::weighted(0.6), 0..300),
        ) {
            let checked = check_target(initial, Thresholds { rise, fall }, &results);
            prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
        }
    }
}
