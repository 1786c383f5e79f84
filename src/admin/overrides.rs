//! Operator overrides of a region, and how they combine with observed health (pure: time is an
//! argument).
//!
//! Admin intent is kept apart from observation: the monitor keeps both and the published status
//! of a region is [`effective`] of the two.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::policy::RegionStatus;

/// What an operator asked for a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Ramp the region's traffic share to zero over the drain period, then keep it out.
    Drain,
    /// Out at once, for maintenance.
    Maintenance,
    /// Treat as up whatever the monitors say.
    ForceUp,
    /// Treat as down whatever the monitors say.
    ForceDown,
}

impl Action {
    /// The action's name as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Action::Drain => "drain",
            Action::Maintenance => "maintenance",
            Action::ForceUp => "force_up",
            Action::ForceDown => "force_down",
        }
    }

    /// Parses the API spelling.
    pub fn parse(text: &str) -> Option<Action> {
        match text {
            "drain" => Some(Action::Drain),
            "maintenance" => Some(Action::Maintenance),
            "force_up" => Some(Action::ForceUp),
            "force_down" => Some(Action::ForceDown),
            _ => None,
        }
    }
}

/// An override in force on a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// What it does.
    pub action: Action,
    /// Why (a change ticket, a sentence).
    pub reason: String,
    /// Who set it.
    pub who: String,
    /// When it was set.
    pub since: SystemTime,
    /// When it lapses by itself, if ever.
    pub until: Option<SystemTime>,
    /// For `drain`: how long the ramp to zero takes.
    pub drain_period: Duration,
    /// The drill this override belongs to, if any.
    pub drill: Option<u64>,
}

impl Override {
    /// Whether it has lapsed at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.until.is_some_and(|until| now >= until)
    }

    /// For a drain: the traffic share left at `now`, from 1 down to 0.
    pub fn drain_factor(&self, now: SystemTime) -> f64 {
        if self.drain_period.is_zero() {
            return 0.0;
        }
        let elapsed = now.duration_since(self.since).unwrap_or(Duration::ZERO);
        (1.0 - elapsed.as_secs_f64() / self.drain_period.as_secs_f64()).clamp(0.0, 1.0)
    }

    /// When a drain's share reaches zero.
    pub fn drained_by(&self) -> SystemTime {
        self.since
            .checked_add(self.drain_period)
            .unwrap_or(self.since)
    }
}

/// The status the data plane sees for a region observed `observed_up`, under `active` at `now`.
pub fn effective(observed_up: bool, active: Option<&Override>, now: SystemTime) -> RegionStatus {
    let observed = if observed_up {
        RegionStatus::NOMINAL
    } else {
        RegionStatus::DOWN
    };
    let Some(active) = active.filter(|active| !active.expired(now)) else {
        return observed;
    };
    match active.action {
        Action::ForceUp => RegionStatus {
            up: true,
            factor: 1.0,
            degraded: active.drill.is_some(),
        },
        Action::ForceDown | Action::Maintenance => RegionStatus::DOWN,
        Action::Drain => RegionStatus {
            up: observed_up,
            factor: if observed_up {
                active.drain_factor(now)
            } else {
                0.0
            },
            degraded: true,
        },
    }
}

/// [`effective`] for a region whose pool reports `capacity` (0 to 1) of its normal capacity:
/// the traffic share shrinks with it, except under `force_up`, which asserts full service.
pub fn effective_with_capacity(
    observed_up: bool,
    capacity: f64,
    active: Option<&Override>,
    now: SystemTime,
) -> RegionStatus {
    let mut status = effective(observed_up, active, now);
    let forced_up =
        active.is_some_and(|active| !active.expired(now) && active.action == Action::ForceUp);
    if !forced_up {
        status.factor *= capacity.clamp(0.0, 1.0);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An override of `action` set at time 1000 s, lasting `until` seconds, draining over 60 s.
    fn set(action: Action, until: Option<u64>) -> Override {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        Override {
            action,
            reason: "CHG-1".into(),
            who: "ops".into(),
            since: at(1000),
            until: until.map(|secs| at(1000 + secs)),
            drain_period: Duration::from_secs(60),
            drill: None,
        }
    }

    /// The time `secs` seconds after the override was set.
    fn after(secs: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1000) + Duration::from_secs_f64(secs)
    }

    #[test]
    fn every_action_over_both_observations() {
        for observed in [true, false] {
            let none = effective(observed, None, after(0.0));
            assert_eq!(none.up, observed);
            let down = effective(observed, Some(&set(Action::ForceDown, None)), after(5.0));
            assert_eq!(down, RegionStatus::DOWN);
            let maintenance =
                effective(observed, Some(&set(Action::Maintenance, None)), after(5.0));
            assert_eq!(maintenance, RegionStatus::DOWN);
            let up = effective(observed, Some(&set(Action::ForceUp, None)), after(5.0));
            assert_eq!(up, RegionStatus::NOMINAL);
        }
    }

    #[test]
    fn drain_ramps_to_zero_over_its_period_and_stays_out() {
        let drain = set(Action::Drain, None);
        for (secs, factor) in [(0.0, 1.0), (15.0, 0.75), (30.0, 0.5), (59.0, 1.0 / 60.0)] {
            let status = effective(true, Some(&drain), after(secs));
            assert!(
                (status.factor - factor).abs() < 1e-9,
                "{secs}: {}",
                status.factor
            );
            assert!(status.up && status.degraded);
        }
        for secs in [60.0, 3600.0] {
            assert_eq!(effective(true, Some(&drain), after(secs)).factor, 0.0);
        }
        assert_eq!(drain.drained_by(), after(60.0));
        assert_eq!(effective(false, Some(&drain), after(1.0)).factor, 0.0);
        let instant = Override {
            drain_period: Duration::ZERO,
            ..drain
        };
        assert_eq!(instant.drain_factor(after(0.0)), 0.0);
    }

    #[test]
    fn pool_capacity_scales_the_share() {
        let status = effective_with_capacity(true, 0.5, None, after(0.0));
        assert_eq!(
            (status.up, status.factor, status.degraded),
            (true, 0.5, false)
        );
        let drain = set(Action::Drain, None);
        let status = effective_with_capacity(true, 0.5, Some(&drain), after(30.0));
        assert!((status.factor - 0.25).abs() < 1e-9);
        let forced = set(Action::ForceUp, None);
        assert_eq!(
            effective_with_capacity(true, 0.5, Some(&forced), after(1.0)).factor,
            1.0
        );
    }

    #[test]
    fn expiry_reverts_to_observation() {
        let down = set(Action::ForceDown, Some(120));
        assert_eq!(
            effective(true, Some(&down), after(119.9)),
            RegionStatus::DOWN
        );
        assert_eq!(
            effective(true, Some(&down), after(120.0)),
            RegionStatus::NOMINAL
        );
        assert!(down.expired(after(120.0)) && !down.expired(after(1.0)));
    }

    #[test]
    fn action_names_round_trip() {
        for action in [
            Action::Drain,
            Action::Maintenance,
            Action::ForceUp,
            Action::ForceDown,
        ] {
            assert_eq!(Action::parse(action.name()), Some(action));
        }
        assert_eq!(Action::parse("undrain"), None);
    }
}
