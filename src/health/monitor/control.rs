//! Operator control inside the monitor: overrides and drills, and the tick that expires
//! overrides, ramps drains, ends drills and measures their timelines from the answer counters.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Weak;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Inner, Monitor, Shared};
use crate::admin::drill::{Drill, DrillMode, DrillState, rate, shares};
use crate::admin::overrides::{Action, Override};
use crate::admin::{AdminError, BOOK_VERSION, Book, KEEP_DRILLS};
use crate::snapshot::Snapshot;

/// How often overrides are re-evaluated and answers sampled: the resolution of drill timelines
/// and the step of drain ramps.
pub const TICK: Duration = Duration::from_millis(200);

/// How far back answer samples go: the "before" window of a drill's answer shares.
const SAMPLE_WINDOW: Duration = Duration::from_secs(60);

/// How long after its rollback a drill still watches for the region's first answer.
const WATCH_AFTER_ROLLBACK: Duration = Duration::from_secs(600);

/// An override to set.
#[derive(Debug, Clone)]
pub struct OverrideRequest {
    /// What to do.
    pub action: Action,
    /// Why.
    pub reason: String,
    /// Who asks.
    pub who: String,
    /// How long it lasts; `None` until cleared.
    pub duration: Option<Duration>,
    /// For drains: the ramp; `None` for one TTL of the region's answers.
    pub drain_period: Option<Duration>,
    /// The book revision the operator saw; a different current revision is a conflict.
    pub revision: Option<u64>,
}

/// A region as the operator sees it: observation, intent and what the data plane uses.
#[derive(Debug, Clone, Serialize)]
pub struct RegionControl {
    /// Region name.
    pub name: String,
    /// What the monitors say.
    pub observed_up: bool,
    /// The operator's override, if any.
    #[serde(rename = "override")]
    pub active: Option<Override>,
    /// Whether the data plane may answer with it.
    pub up: bool,
    /// Its traffic share now (a drain ramps it down).
    pub factor: f64,
    /// Whether its answers use the degraded TTL.
    pub degraded: bool,
    /// For a finished drain: when the last answer that pointed at it expires from caches.
    pub drained_at: Option<SystemTime>,
    /// When it last got an answer.
    pub last_answer: Option<SystemTime>,
    /// GSLB answers it got since start.
    pub answers: u64,
    /// The longest TTL of its answers.
    pub max_ttl: u32,
    /// Its configured capacity.
    pub capacity: Option<u32>,
}

impl Monitor {
    /// A copy of the operator book.
    pub fn book(&self) -> Book {
        self.shared.lock().book.clone()
    }

    /// Every region with its observation, override and effective status.
    pub fn regions(&self) -> Vec<RegionControl> {
        let inner = self.shared.lock();
        let totals = answer_totals(&self.shared.cell.load());
        let now = SystemTime::now();
        inner
            .regions
            .iter()
            .map(|region| {
                let active = inner
                    .book
                    .overrides
                    .get(&region.name)
                    .filter(|active| !active.expired(now));
                let status = region.status(active, now);
                let info = inner
                    .region_info
                    .get(&region.name)
                    .copied()
                    .unwrap_or_default();
                let last_answer = inner.last_answer.get(&region.name).copied();
                let drained_at = active
                    .filter(|active| active.action == Action::Drain && status.factor == 0.0)
                    .map(|active| {
                        let last = last_answer.map_or(active.drained_by(), |last| {
                            last.max(active.since).min(active.drained_by())
                        });
                        last + Duration::from_secs(u64::from(info.max_ttl))
                    });
                RegionControl {
                    name: region.name.clone(),
                    observed_up: region.state.is_up(),
                    active: active.cloned(),
                    up: status.up,
                    factor: status.factor,
                    degraded: status.degraded,
                    drained_at,
                    last_answer,
                    answers: totals.get(&region.name).copied().unwrap_or(0),
                    max_ttl: info.max_ttl,
                    capacity: info.capacity,
                }
            })
            .collect()
    }

    /// Records that the backend `addr` of the balancer `balancer` is drained by hand
    /// (`drained`) or not any more, so that the drain outlasts restarts; whether that changed
    /// the book (which is then saved, with a new revision).
    pub fn record_backend_drain(&self, balancer: &str, addr: SocketAddr, drained: bool) -> bool {
        let mut inner = self.shared.lock();
        let drains = &mut inner.book.backend_drains;
        let changed = if drained {
            drains.entry(balancer.to_string()).or_default().insert(addr)
        } else {
            let removed = drains
                .get_mut(balancer)
                .is_some_and(|addrs| addrs.remove(&addr));
            if drains.get(balancer).is_some_and(BTreeSet::is_empty) {
                drains.remove(balancer);
            }
            removed
        };
        if changed {
            self.shared.changed(&mut inner);
        }
        changed
    }

    /// The backends drained by hand, per balancer.
    pub fn backend_drains(&self) -> BTreeMap<String, BTreeSet<SocketAddr>> {
        self.shared.lock().book.backend_drains.clone()
    }

    /// Sets an override on `region`; returns the new revision.
    pub fn set_override(&self, region: &str, request: OverrideRequest) -> Result<u64, AdminError> {
        let mut inner = self.shared.lock();
        check_revision(&inner, request.revision)?;
        check_region(&inner, region)?;
        if let Some(id) = running_drill(&inner, region) {
            return Err(AdminError::DrillRunning {
                region: region.to_string(),
                id,
            });
        }
        let now = SystemTime::now();
        let info = inner.region_info.get(region).copied().unwrap_or_default();
        let drain_period = request
            .drain_period
            .unwrap_or(Duration::from_secs(u64::from(info.max_ttl)));
        let active = Override {
            action: request.action,
            reason: request.reason.clone(),
            who: request.who.clone(),
            since: now,
            until: request.duration.map(|duration| now + duration),
            drain_period,
            drill: None,
        };
        tracing::info!(
            target: "meridian::audit",
            who = %request.who,
            action = request.action.name(),
            %region,
            reason = %request.reason,
            until = ?active.until,
            drain_period_s = drain_period.as_secs_f64(),
            "override set"
        );
        inner.book.overrides.insert(region.to_string(), active);
        Ok(self.shared.changed(&mut inner))
    }

    /// Clears the override of `region`; returns the new revision.
    pub fn clear_override(
        &self,
        region: &str,
        who: &str,
        revision: Option<u64>,
    ) -> Result<u64, AdminError> {
        let mut inner = self.shared.lock();
        check_revision(&inner, revision)?;
        check_region(&inner, region)?;
        if let Some(id) = running_drill(&inner, region) {
            return Err(AdminError::DrillRunning {
                region: region.to_string(),
                id,
            });
        }
        let removed = inner.book.overrides.remove(region);
        tracing::info!(
            target: "meridian::audit",
            %who,
            %region,
            had = removed.as_ref().map(|active| active.action.name()),
            "override cleared"
        );
        Ok(self.shared.changed(&mut inner))
    }

    /// Starts a drill of `region`. Refused when the region has a drill running, or (unless
    /// `force`) when the capacity of the other up regions is less than the region's.
    #[allow(clippy::too_many_arguments)]
    pub fn start_drill(
        &self,
        region: &str,
        mode: DrillMode,
        duration: Duration,
        reason: &str,
        who: &str,
        force: bool,
        revision: Option<u64>,
    ) -> Result<Drill, AdminError> {
        let mut inner = self.shared.lock();
        check_revision(&inner, revision)?;
        check_region(&inner, region)?;
        if duration.is_zero() {
            return Err(AdminError::BadRequest(
                "a drill needs a duration above zero".into(),
            ));
        }
        if let Some(id) = running_drill(&inner, region) {
            return Err(AdminError::DrillRunning {
                region: region.to_string(),
                id,
            });
        }
        let now = SystemTime::now();
        // A drill's rollback removes the region's override, so an operator's override in force
        // would be lost without a word: refuse instead.
        if let Some(active) = inner
            .book
            .overrides
            .get(region)
            .filter(|active| active.drill.is_none() && !active.expired(now))
        {
            return Err(AdminError::OverrideInForce {
                region: region.to_string(),
                action: active.action.name(),
                who: active.who.clone(),
                reason: active.reason.clone(),
            });
        }
        if !force {
            preflight(&inner, region, now)?;
        }
        let info = inner.region_info.get(region).copied().unwrap_or_default();
        let totals = answer_totals(&self.shared.cell.load());
        let before = inner
            .samples
            .front()
            .map_or_else(|| totals.clone(), |(_, sample)| sample.clone());
        let id = inner.book.next_drill.max(1);
        inner.book.next_drill = id + 1;
        let mut drill = Drill {
            id,
            region: region.to_string(),
            mode,
            reason: reason.to_string(),
            who: who.to_string(),
            started: now,
            ends: now + duration,
            state: DrillState::Running,
            timeline: Vec::new(),
            region_out: None,
            ttl_horizon: None,
            rolled_back: None,
            share_before: BTreeMap::new(),
            share_during: BTreeMap::new(),
            answers_at_start: BTreeMap::new(),
            answers_at_end: BTreeMap::new(),
            max_ttl: info.max_ttl,
            forced: force,
            pool_rate_before: None,
            pool_rate_during: None,
            pool_at_start: None,
        };
        drill.start(shares(&before, &totals), totals);
        let pools = pool_totals(&inner);
        if let Some(&requests) = pools.get(region) {
            drill.pool_at_start = Some((now, requests));
            // The oldest reading in the window (the first ticks may predate the first probe).
            drill.pool_rate_before = inner
                .pool_samples
                .iter()
                .find_map(|(at, sample)| Some((*at, *sample.get(region)?)))
                .and_then(|oldest| rate(oldest, (now, requests)));
        }
        let (action, drain_period) = match mode {
            DrillMode::Fail => (Action::ForceDown, Duration::ZERO),
            DrillMode::Drain => (Action::Drain, Duration::from_secs(u64::from(info.max_ttl))),
        };
        if mode == DrillMode::Fail || drain_period.is_zero() {
            drill.region_out(now);
        }
        let active = Override {
            action,
            reason: format!("drill {id}: {reason}"),
            who: who.to_string(),
            since: now,
            until: Some(now + duration),
            drain_period,
            drill: Some(id),
        };
        tracing::info!(
            target: "meridian::audit",
            %who,
            %region,
            drill = id,
            mode = ?mode,
            duration_s = duration.as_secs_f64(),
            %reason,
            forced = force,
            "drill started"
        );
        inner.book.overrides.insert(region.to_string(), active);
        inner.book.drills.push(drill.clone());
        // Keep the most recent finished drills; running ones are never dropped.
        let mut excess = inner.book.drills.len().saturating_sub(KEEP_DRILLS);
        inner.book.drills.retain(|kept| {
            let drop = excess > 0 && kept.state != DrillState::Running;
            excess -= usize::from(drop);
            !drop
        });
        self.shared.changed(&mut inner);
        Ok(drill)
    }

    /// Stops drill `id` early and rolls it back.
    pub fn abort_drill(&self, id: u64, who: &str) -> Result<Drill, AdminError> {
        let mut inner = self.shared.lock();
        let totals = answer_totals(&self.shared.cell.load());
        let now = SystemTime::now();
        let drill = inner
            .book
            .drills
            .iter_mut()
            .find(|drill| drill.id == id)
            .ok_or(AdminError::UnknownDrill(id))?;
        if drill.state != DrillState::Running {
            return Err(AdminError::DrillOver(id));
        }
        drill.roll_back(now, false, who, &totals);
        let drill = drill.clone();
        remove_drill_override(&mut inner, &drill);
        tracing::info!(target: "meridian::audit", %who, region = %drill.region, drill = id, "drill aborted");
        self.shared.changed(&mut inner);
        Ok(drill)
    }

    /// Drill `id` and its report.
    pub fn drill(&self, id: u64) -> Result<Drill, AdminError> {
        self.shared
            .lock()
            .book
            .drills
            .iter()
            .find(|drill| drill.id == id)
            .cloned()
            .ok_or(AdminError::UnknownDrill(id))
    }
}

/// Refuses a request made against an old revision.
fn check_revision(inner: &Inner, revision: Option<u64>) -> Result<(), AdminError> {
    match revision {
        Some(expected) if expected != inner.book.revision => Err(AdminError::Conflict {
            expected,
            actual: inner.book.revision,
        }),
        _ => Ok(()),
    }
}

/// Refuses an unknown region, naming the known ones.
fn check_region(inner: &Inner, region: &str) -> Result<(), AdminError> {
    if inner.regions.iter().any(|entry| entry.name == region) {
        return Ok(());
    }
    Err(AdminError::UnknownRegion {
        name: region.to_string(),
        known: inner
            .regions
            .iter()
            .map(|entry| entry.name.clone())
            .collect(),
    })
}

/// The id of the drill running on `region`, if any.
fn running_drill(inner: &Inner, region: &str) -> Option<u64> {
    inner
        .book
        .drills
        .iter()
        .find(|drill| drill.region == region && drill.state == DrillState::Running)
        .map(|drill| drill.id)
}

/// The capacity pre-flight check: the other regions that are up must together have at least
/// the drilled region's capacity. Skipped when a region involved has no configured capacity.
fn preflight(inner: &Inner, region: &str, now: SystemTime) -> Result<(), AdminError> {
    let Some(needed) = inner.region_info.get(region).and_then(|info| info.capacity) else {
        return Ok(());
    };
    let mut remaining = 0u64;
    for entry in inner.regions.iter().filter(|entry| entry.name != region) {
        let status = entry.status(inner.book.overrides.get(&entry.name), now);
        if !status.up || status.factor <= 0.0 {
            continue;
        }
        let Some(capacity) = inner
            .region_info
            .get(&entry.name)
            .and_then(|info| info.capacity)
        else {
            return Ok(());
        };
        remaining += (f64::from(capacity) * status.factor) as u64;
    }
    if remaining < u64::from(needed) {
        return Err(AdminError::Capacity {
            region: region.to_string(),
            needed: u64::from(needed),
            remaining,
        });
    }
    Ok(())
}

/// Removes the override a drill put in place.
fn remove_drill_override(inner: &mut Inner, drill: &Drill) {
    if inner
        .book
        .overrides
        .get(&drill.region)
        .is_some_and(|active| active.drill == Some(drill.id))
    {
        inner.book.overrides.remove(&drill.region);
    }
}

/// Requests served by each region's embedded pools, for the regions whose monitors read one.
fn pool_totals(inner: &Inner) -> BTreeMap<String, u64> {
    inner
        .regions
        .iter()
        .filter_map(|region| Some((region.name.clone(), region.pool_requests()?)))
        .collect()
}

/// Cumulative GSLB answers per region name, over every service of `snapshot`.
pub(super) fn answer_totals(snapshot: &Snapshot) -> BTreeMap<String, u64> {
    let mut totals: BTreeMap<String, u64> = snapshot
        .regions
        .iter()
        .map(|region| (region.clone(), 0))
        .collect();
    for service in snapshot.services.values() {
        for (region, counters) in snapshot.regions.iter().zip(service.counters.iter()) {
            *totals.entry(region.clone()).or_default() += counters.total();
        }
    }
    totals
}

/// Runs [`Shared::tick`] every [`TICK`] until the monitor is gone.
pub(super) async fn tick(weak: Weak<Shared>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        shared.tick(SystemTime::now());
    }
}

impl Shared {
    /// Bumps the revision, publishes the view and saves the book; returns the new revision.
    fn changed(&self, inner: &mut Inner) -> u64 {
        inner.book.revision += 1;
        inner.book.version = BOOK_VERSION;
        let snapshot = self.cell.load_full();
        self.publish(inner, &snapshot);
        self.save_book(inner);
        inner.book.revision
    }

    /// Hands the book to its writer task (when there is a state file).
    fn save_book(&self, inner: &Inner) {
        if self.persist_book.is_closed() {
            return;
        }
        match serde_json::to_string_pretty(&inner.book) {
            Ok(text) => {
                let _ = self.persist_book.send(Some(text));
            }
            Err(err) => tracing::error!(%err, "cannot encode the admin state"),
        }
    }

    /// One tick at `now`: samples the answer counters, ends drills whose time is up, lapses
    /// expired overrides, advances drill timelines, and republishes when the view changed.
    fn tick(&self, now: SystemTime) {
        let mut inner = self.lock();
        let snapshot = self.cell.load_full();
        let totals = answer_totals(&snapshot);
        let previous = inner
            .samples
            .back()
            .map_or_else(|| totals.clone(), |(_, sample)| sample.clone());
        for (region, &count) in &totals {
            if count > previous.get(region).copied().unwrap_or(0) {
                inner.last_answer.insert(region.clone(), now);
            }
        }
        let mut changed = false;
        let mut timeline_changed = false;

        let due: Vec<Drill> = inner
            .book
            .drills
            .iter_mut()
            .filter(|drill| drill.state == DrillState::Running && now >= drill.ends)
            .map(|drill| {
                drill.roll_back(drill.ends, true, "timer", &totals);
                drill.clone()
            })
            .collect();
        for drill in &due {
            remove_drill_override(&mut inner, drill);
            tracing::info!(target: "meridian::audit", who = "timer", region = %drill.region, drill = drill.id, "drill finished and rolled back");
            changed = true;
        }

        let expired: Vec<String> = inner
            .book
            .overrides
            .iter()
            .filter(|(_, active)| active.drill.is_none() && active.expired(now))
            .map(|(region, _)| region.clone())
            .collect();
        for region in expired {
            if let Some(active) = inner.book.overrides.remove(&region) {
                tracing::info!(target: "meridian::audit", who = "timer", %region, action = active.action.name(), "override expired");
                changed = true;
            }
        }

        let overrides = inner.book.overrides.clone();
        for drill in inner.book.drills.iter_mut() {
            let events = drill.timeline.len();
            if drill.state == DrillState::Running
                && drill.mode == DrillMode::Drain
                && let Some(active) = overrides.get(&drill.region)
                && active.drill == Some(drill.id)
                && active.drain_factor(now) == 0.0
            {
                drill.region_out(active.drained_by());
            }
            let watching = drill.state == DrillState::Running
                || drill.rolled_back.is_some_and(|at| {
                    now.duration_since(at).unwrap_or_default() < WATCH_AFTER_ROLLBACK
                        && !drill.has("first_answer_with_region")
                });
            if watching {
                drill.observe(now, &previous, &totals);
            }
            timeline_changed |= drill.timeline.len() != events;
        }

        let pools = pool_totals(&inner);
        for drill in inner
            .book
            .drills
            .iter_mut()
            .filter(|drill| drill.state == DrillState::Running)
        {
            if let (Some(start), Some(&requests)) = (drill.pool_at_start, pools.get(&drill.region))
            {
                drill.pool_rate_during = rate(start, (now, requests));
            }
        }
        inner.pool_samples.push_back((now, pools));
        while inner
            .pool_samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at).unwrap_or_default() > SAMPLE_WINDOW)
        {
            inner.pool_samples.pop_front();
        }
        inner.samples.push_back((now, totals));
        while inner
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at).unwrap_or_default() > SAMPLE_WINDOW)
        {
            inner.samples.pop_front();
        }

        if changed {
            self.changed(&mut inner);
            return;
        }
        let current = snapshot.health.load();
        let stale = inner.regions.iter().enumerate().any(|(id, region)| {
            let status = region.status(inner.book.overrides.get(&region.name), now);
            current.regions.get(id) != Some(&status)
        });
        if stale {
            self.publish(&inner, &snapshot);
        }
        if timeline_changed {
            self.save_book(&inner);
        }
    }
}
