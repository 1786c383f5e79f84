//! Failover drills: a time-boxed override flagged as a drill, and the timeline of what really
//! happened, measured from the answer counters (pure: samples and time are arguments).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// What a drill does to its region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillMode {
    /// The region is treated as down.
    Fail,
    /// The region is drained over the drain period.
    Drain,
}

impl DrillMode {
    /// Parses the API spelling.
    pub fn parse(text: &str) -> Option<DrillMode> {
        match text {
            "fail" => Some(DrillMode::Fail),
            "drain" => Some(DrillMode::Drain),
            _ => None,
        }
    }
}

/// Where a drill is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillState {
    /// The override is in force.
    Running,
    /// It ran its course and was rolled back.
    Finished,
    /// An operator stopped it early; rolled back.
    Aborted,
}

/// One entry of a drill's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When.
    pub at: SystemTime,
    /// A stable name: `started`, `region_out`, `first_answer_without_region`, `ttl_horizon`,
    /// `rolled_back`, `first_answer_with_region`.
    pub kind: String,
    /// What happened, for people.
    pub detail: String,
}

/// A drill and its report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drill {
    /// Its id.
    pub id: u64,
    /// The region drilled.
    pub region: String,
    /// Fail or drain.
    pub mode: DrillMode,
    /// Why.
    pub reason: String,
    /// Who started it.
    pub who: String,
    /// When it started.
    pub started: SystemTime,
    /// When it rolls back by itself.
    pub ends: SystemTime,
    /// Where it is.
    pub state: DrillState,
    /// What happened, in order.
    pub timeline: Vec<Event>,
    /// When the region stopped getting new answers by policy (fail: at once; drain: at the end
    /// of the ramp).
    pub region_out: Option<SystemTime>,
    /// When every cached answer that pointed at the region has expired: `region_out` plus the
    /// longest TTL the region answered with.
    pub ttl_horizon: Option<SystemTime>,
    /// When the override was lifted.
    pub rolled_back: Option<SystemTime>,
    /// Share of GSLB answers per region over the minute before the drill.
    pub share_before: BTreeMap<String, f64>,
    /// Share of GSLB answers per region while the drill ran.
    pub share_during: BTreeMap<String, f64>,
    /// Answers per region at the start, to compute `share_during`.
    pub answers_at_start: BTreeMap<String, u64>,
    /// Answers per region at rollback.
    pub answers_at_end: BTreeMap<String, u64>,
    /// The longest TTL of the region's answers, in seconds.
    pub max_ttl: u32,
    /// Whether the capacity pre-flight check was overridden.
    pub forced: bool,
    /// Requests per second the region's embedded pool served in the minute before the drill,
    /// when a monitor reads it (`capacity_from = "pool"`).
    #[serde(default)]
    pub pool_rate_before: Option<f64>,
    /// Requests per second the pool served while the drill ran.
    #[serde(default)]
    pub pool_rate_during: Option<f64>,
    /// The pool's request count when the drill started, and when that was read.
    #[serde(default)]
    pub pool_at_start: Option<(SystemTime, u64)>,
}

/// Requests per second between two readings of a cumulative counter.
pub fn rate(from: (SystemTime, u64), to: (SystemTime, u64)) -> Option<f64> {
    let seconds = to.0.duration_since(from.0).ok()?.as_secs_f64();
    (seconds > 0.0).then(|| to.1.saturating_sub(from.1) as f64 / seconds)
}

impl Drill {
    /// Records an event.
    fn event(&mut self, at: SystemTime, kind: &str, detail: String) {
        self.timeline.push(Event {
            at,
            kind: kind.to_string(),
            detail,
        });
    }

    /// Starts the timeline.
    pub fn start(&mut self, share_before: BTreeMap<String, f64>, answers: BTreeMap<String, u64>) {
        let detail = format!(
            "{} drill of {} for {} s: {}",
            match self.mode {
                DrillMode::Fail => "fail",
                DrillMode::Drain => "drain",
            },
            self.region,
            self.ends
                .duration_since(self.started)
                .map_or(0, |d| d.as_secs()),
            self.reason
        );
        self.event(self.started, "started", detail);
        self.share_before = share_before;
        self.answers_at_start = answers;
    }

    /// Notes that the region is out of new answers from `at`.
    pub fn region_out(&mut self, at: SystemTime) {
        if self.region_out.is_some() {
            return;
        }
        self.region_out = Some(at);
        let horizon = at + std::time::Duration::from_secs(u64::from(self.max_ttl));
        self.ttl_horizon = Some(horizon);
        let detail = format!("{} gets no new answers", self.region);
        self.event(at, "region_out", detail);
    }

    /// Advances the timeline with one sample of cumulative answers per region taken at `now`,
    /// given the previous sample.
    pub fn observe(
        &mut self,
        now: SystemTime,
        previous: &BTreeMap<String, u64>,
        current: &BTreeMap<String, u64>,
    ) {
        let delta = |region: &str| {
            current
                .get(region)
                .copied()
                .unwrap_or(0)
                .saturating_sub(previous.get(region).copied().unwrap_or(0))
        };
        let own = delta(&self.region);
        let others: u64 = current
            .keys()
            .filter(|region| **region != self.region)
            .map(|region| delta(region))
            .sum();
        if self.region_out.is_some()
            && self.rolled_back.is_none()
            && !self.has("first_answer_without_region")
            && own == 0
            && others > 0
        {
            let detail = format!("answers go to other regions, none to {}", self.region);
            self.event(now, "first_answer_without_region", detail);
        }
        if let Some(horizon) = self.ttl_horizon
            && now >= horizon
            && !self.has("ttl_horizon")
        {
            let detail = format!(
                "{} s after the region went out: every resolver cache has moved",
                self.max_ttl
            );
            self.event(horizon, "ttl_horizon", detail);
        }
        // Only answers counted after the rollback sample show the region back.
        let after_rollback = current.get(&self.region).copied().unwrap_or(0)
            > self.answers_at_end.get(&self.region).copied().unwrap_or(0);
        if self.rolled_back.is_some() && !self.has("first_answer_with_region") && after_rollback {
            let detail = format!("{} answers again", self.region);
            self.event(now, "first_answer_with_region", detail);
        }
        if self.rolled_back.is_none() {
            self.share_during = shares(&self.answers_at_start, current);
        }
    }

    /// Rolls the drill back at `at`: `finished` when it ran its course, else aborted.
    pub fn roll_back(
        &mut self,
        at: SystemTime,
        finished: bool,
        who: &str,
        answers: &BTreeMap<String, u64>,
    ) {
        if self.rolled_back.is_some() {
            return;
        }
        self.rolled_back = Some(at);
        self.state = if finished {
            DrillState::Finished
        } else {
            DrillState::Aborted
        };
        self.share_during = shares(&self.answers_at_start, answers);
        self.answers_at_end = answers.clone();
        let detail = if finished {
            "the drill ended; the region is back under its monitors".to_string()
        } else {
            format!("aborted by {who}; the region is back under its monitors")
        };
        self.event(at, "rolled_back", detail);
    }

    /// Whether the timeline has an event of `kind`.
    pub fn has(&self, kind: &str) -> bool {
        self.timeline.iter().any(|event| event.kind == kind)
    }

    /// The time of the first event of `kind`.
    pub fn at(&self, kind: &str) -> Option<SystemTime> {
        self.timeline
            .iter()
            .find(|event| event.kind == kind)
            .map(|event| event.at)
    }
}

/// Each region's share of the answers counted between `from` and `to`.
pub fn shares(from: &BTreeMap<String, u64>, to: &BTreeMap<String, u64>) -> BTreeMap<String, f64> {
    let deltas: BTreeMap<String, u64> = to
        .iter()
        .map(|(region, &count)| {
            let before = from.get(region).copied().unwrap_or(0);
            (region.clone(), count.saturating_sub(before))
        })
        .collect();
    let total: u64 = deltas.values().sum();
    deltas
        .into_iter()
        .map(|(region, count)| {
            let share = if total == 0 {
                0.0
            } else {
                count as f64 / total as f64
            };
            (region, share)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Time `secs` after the epoch.
    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Cumulative answers for eu-west and us-east.
    fn counts(eu: u64, us: u64) -> BTreeMap<String, u64> {
        [("eu-west".to_string(), eu), ("us-east".to_string(), us)]
            .into_iter()
            .collect()
    }

    /// A fail drill of eu-west from 100 s to 400 s with a 60 s TTL.
    fn drill() -> Drill {
        Drill {
            id: 1,
            region: "eu-west".into(),
            mode: DrillMode::Fail,
            reason: "quarterly".into(),
            who: "ops".into(),
            started: at(100),
            ends: at(400),
            state: DrillState::Running,
            timeline: Vec::new(),
            region_out: None,
            ttl_horizon: None,
            rolled_back: None,
            share_before: BTreeMap::new(),
            share_during: BTreeMap::new(),
            answers_at_start: BTreeMap::new(),
            answers_at_end: BTreeMap::new(),
            max_ttl: 60,
            forced: false,
            pool_rate_before: None,
            pool_rate_during: None,
            pool_at_start: None,
        }
    }

    #[test]
    fn timeline_follows_the_answers() {
        let mut drill = drill();
        drill.start(shares(&counts(0, 0), &counts(50, 50)), counts(50, 50));
        drill.region_out(at(100));
        assert_eq!(drill.ttl_horizon, Some(at(160)));
        // A straggler answer for eu-west (an in-flight query): not yet "without".
        drill.observe(at(101), &counts(50, 50), &counts(51, 60));
        assert!(!drill.has("first_answer_without_region"));
        drill.observe(at(102), &counts(51, 60), &counts(51, 70));
        assert_eq!(drill.at("first_answer_without_region"), Some(at(102)));
        drill.observe(at(170), &counts(51, 70), &counts(51, 90));
        assert_eq!(
            drill.at("ttl_horizon"),
            Some(at(160)),
            "dated at the horizon itself"
        );
        assert_eq!(drill.share_during["us-east"], 40.0 / 41.0);
        drill.roll_back(at(400), true, "timer", &counts(51, 100));
        assert_eq!(drill.state, DrillState::Finished);
        // Answers counted before the rollback sample do not count as the region back.
        drill.observe(at(400), &counts(50, 95), &counts(51, 100));
        assert!(!drill.has("first_answer_with_region"));
        drill.observe(at(401), &counts(51, 100), &counts(51, 110));
        assert!(!drill.has("first_answer_with_region"));
        drill.observe(at(402), &counts(51, 110), &counts(52, 111));
        assert_eq!(drill.at("first_answer_with_region"), Some(at(402)));
        let kinds: Vec<&str> = drill.timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "started",
                "region_out",
                "first_answer_without_region",
                "ttl_horizon",
                "rolled_back",
                "first_answer_with_region"
            ]
        );
        // Shares during stop at the rollback.
        assert_eq!(drill.share_during["eu-west"], 1.0 / 51.0);
        assert_eq!(drill.share_before["eu-west"], 0.5);
    }

    #[test]
    fn abort_is_recorded_once() {
        let mut drill = drill();
        drill.start(BTreeMap::new(), counts(0, 0));
        drill.roll_back(at(150), false, "alice", &counts(0, 10));
        drill.roll_back(at(160), true, "timer", &counts(0, 20));
        assert_eq!(drill.state, DrillState::Aborted);
        assert_eq!(drill.rolled_back, Some(at(150)));
        assert!(drill.timeline.last().unwrap().detail.contains("alice"));
    }

    #[test]
    fn rates_between_readings() {
        assert_eq!(rate((at(10), 100), (at(20), 600)), Some(50.0));
        assert_eq!(rate((at(10), 100), (at(10), 600)), None);
        assert_eq!(rate((at(20), 100), (at(10), 600)), None);
        assert_eq!(
            rate((at(10), 600), (at(20), 100)),
            Some(0.0),
            "a restarted pool"
        );
    }

    #[test]
    fn shares_of_nothing_are_zero() {
        assert_eq!(shares(&counts(5, 5), &counts(5, 5))["eu-west"], 0.0);
    }
}
