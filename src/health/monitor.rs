//! The regional health monitor: one probe task per target, the state machines they feed, and
//! the health view published to the data plane on every change.
//!
//! Architecture invariant: the monitor is the only writer of [`Snapshot::health`]. It holds its
//! lock while it publishes and while a reload swaps in a new snapshot, so a view is always
//! computed for the region and service numbering of the snapshot it is stored in.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::AbortHandle;

mod control;

pub use control::{OverrideRequest, RegionControl};

use super::probe::Prober;
use super::state::{RegionState, TargetState, Thresholds, Transition};
use super::{Pass, ProbeReport};
use crate::admin::overrides::{Override, effective_with_capacity};
use crate::admin::{BOOK_VERSION, Book};
use crate::config::{Config, Failback, HealthConfig, MonitorConfig, Policy, RegionId};
use crate::policy::{HealthView, RegionStatus};
use crate::snapshot::Snapshot;

/// The regional health monitor of a running server.
pub struct Monitor {
    /// State shared with the probe tasks.
    shared: Arc<Shared>,
}

/// What the probe tasks and the monitor handle share.
struct Shared {
    /// Targets, regions and holds.
    inner: Mutex<Inner>,
    /// The served snapshot, whose health view this monitor publishes.
    cell: Arc<ArcSwap<Snapshot>>,
    /// The latest state to persist; a writer task saves it.
    persist: watch::Sender<Option<String>>,
    /// The latest operator book to persist.
    persist_book: watch::Sender<Option<String>>,
}

/// The monitor's mutable state.
struct Inner {
    /// Regions in region-id order of the served snapshot.
    regions: Vec<RegionEntry>,
    /// Services in service-index order of the served snapshot.
    services: Vec<ServiceEntry>,
    /// Next target id.
    next_id: u64,
    /// Whether every target has been probed at least once.
    ready: bool,
    /// Operator overrides and drills.
    book: Book,
    /// Per region name: what drills and drains need to know.
    region_info: BTreeMap<String, RegionInfo>,
    /// Cumulative GSLB answers per region, sampled every tick, for the last minute.
    samples: VecDeque<(SystemTime, BTreeMap<String, u64>)>,
    /// Requests served per region's embedded pool, as its monitors last read them, sampled
    /// every tick for the last minute.
    pool_samples: VecDeque<(SystemTime, BTreeMap<String, u64>)>,
    /// When each region last got an answer, as seen by the ticks.
    last_answer: BTreeMap<String, SystemTime>,
}

/// Per-region facts from the config.
#[derive(Debug, Clone, Copy, Default)]
struct RegionInfo {
    /// The longest TTL (normal or degraded) of any answer pointing at the region.
    max_ttl: u32,
    /// Its configured capacity.
    capacity: Option<u32>,
}

/// One region: its rule, state and targets.
struct RegionEntry {
    /// Region name.
    name: String,
    /// How its monitors combine.
    health: HealthConfig,
    /// Aggregate state.
    state: RegionState,
    /// Its probed targets.
    targets: Vec<TargetEntry>,
}

impl RegionEntry {
    /// The capacity share its pools report: the lowest of the up monitors that read one
    /// (`capacity_from = "pool"`), or 1.
    fn capacity(&self) -> f64 {
        self.targets
            .iter()
            .filter(|target| target.state.is_up())
            .filter_map(|target| match target.state.last()?.result {
                Ok(Pass {
                    capacity: Some(capacity),
                    ..
                }) => Some(capacity.get()),
                _ => None,
            })
            .fold(1.0, f64::min)
    }

    /// The requests its pools have served, as their monitors last read them; `None` when no
    /// monitor reads a pool.
    fn pool_requests(&self) -> Option<u64> {
        self.targets
            .iter()
            .filter_map(|target| match target.state.last()?.result {
                Ok(Pass {
                    requests: Some(requests),
                    ..
                }) => Some(requests),
                _ => None,
            })
            .reduce(u64::saturating_add)
    }

    /// What the data plane should see for this region under `active` at `now`.
    fn status(&self, active: Option<&Override>, now: SystemTime) -> RegionStatus {
        effective_with_capacity(self.state.is_up(), self.capacity(), active, now)
    }
}

/// One probed target.
struct TargetEntry {
    /// Identifies the target to its probe task across reloads.
    id: u64,
    /// Its monitor config; an equal config after a reload keeps the target and its state.
    config: MonitorConfig,
    /// Its state machine.
    state: TargetState,
    /// Its probe task.
    task: AbortHandle,
}

/// One service, for manual failback holds.
struct ServiceEntry {
    /// Its name, as the snapshot lists it.
    name: String,
    /// Primary regions of a manual-failback failover service; empty otherwise.
    manual_primaries: Vec<RegionId>,
    /// Held on standby until cleared.
    held: bool,
}

/// A monitor that could not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The state file could not be written (its directory is missing or not writable).
    #[error("{}: cannot write the health state file: {source}", path.display())]
    StateFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// Why a manual failback could not be cleared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailbackError {
    /// No service has that name.
    #[error("unknown service {0:?}")]
    UnknownService(String),
    /// The service is not a `failover` service with `failback = "manual"`.
    #[error("service {0:?} does not use failback = \"manual\"")]
    NotManual(String),
}

/// What the monitor reports about a region.
#[derive(Debug, Clone, Serialize)]
pub struct RegionReport {
    /// Region name.
    pub name: String,
    /// Whether it is up.
    pub up: bool,
    /// When it entered that state (absent: since start).
    pub since: Option<SystemTime>,
    /// Its recent transitions, oldest first.
    pub history: Vec<TransitionReport>,
    /// Its monitors.
    pub monitors: Vec<TargetReport>,
}

/// What the monitor reports about one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// The probed URL.
    pub url: String,
    /// Whether it is up.
    pub up: bool,
    /// When it entered that state (absent: since start).
    pub since: Option<SystemTime>,
    /// The last probe result, as text.
    pub last: Option<String>,
    /// When the last probe ran.
    pub last_at: Option<SystemTime>,
    /// Consecutive passes and failures.
    pub streak: (u32, u32),
    /// Recent transitions, oldest first.
    pub history: Vec<TransitionReport>,
}

/// A state change with its reason.
#[derive(Debug, Clone, Serialize)]
pub struct TransitionReport {
    /// When.
    pub at: SystemTime,
    /// The new state.
    pub up: bool,
    /// Why.
    pub reason: String,
}

impl From<&Transition> for TransitionReport {
    fn from(transition: &Transition) -> TransitionReport {
        TransitionReport {
            at: transition.at,
            up: transition.up,
            reason: transition.reason.clone(),
        }
    }
}

/// The persisted state: last known up/down per region target, and the holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    /// Format version.
    version: u32,
    /// Region name to target key to up.
    regions: BTreeMap<String, BTreeMap<String, bool>>,
    /// Services held on standby.
    held: Vec<String>,
}

/// Current format of the state file.
const STATE_VERSION: u32 = 1;

impl Monitor {
    /// Starts monitoring the regions of `config`, publishing into the snapshots of `cell` (which
    /// must hold the snapshot built from `config`). Restores the last known state from
    /// `[health] state_file` when there is one. Must be called inside a Tokio runtime.
    pub fn start(config: &Config, cell: Arc<ArcSwap<Snapshot>>) -> Result<Monitor, MonitorError> {
        let persisted = config
            .health
            .state_file
            .as_deref()
            .map(read_state)
            .unwrap_or_default();
        let (persist, persist_rx) = watch::channel(None);
        if let Some(path) = &config.health.state_file {
            check_writable(path)?;
            tokio::spawn(write_states(path.clone(), persist_rx));
        }
        let book = config
            .admin
            .state_file
            .as_deref()
            .and_then(read_book)
            .unwrap_or_default();
        let (persist_book, book_rx) = watch::channel(None);
        if let Some(path) = &config.admin.state_file {
            check_writable(path)?;
            tokio::spawn(write_states(path.clone(), book_rx));
        }
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                regions: Vec::new(),
                services: Vec::new(),
                next_id: 0,
                ready: false,
                book,
                region_info: BTreeMap::new(),
                samples: VecDeque::new(),
                pool_samples: VecDeque::new(),
                last_answer: BTreeMap::new(),
            }),
            cell,
            persist,
            persist_book,
        });
        {
            let mut inner = shared.lock();
            let snapshot = shared.cell.load_full();
            shared.reconcile(&mut inner, config, &persisted);
            shared.publish(&inner, &snapshot);
        }
        tokio::spawn(control::tick(Arc::downgrade(&shared)));
        Ok(Monitor { shared })
    }

    /// Swaps `snapshot` (built from `config`) in as the served one: targets whose monitor config
    /// is unchanged keep their state and probe task, removed ones stop, new ones start; the
    /// health view for the new snapshot is stored before the swap, so no query sees the new
    /// data with stale health.
    pub fn install(&self, config: &Config, snapshot: Snapshot) {
        let mut inner = self.shared.lock();
        self.shared
            .reconcile(&mut inner, config, &Persisted::default());
        let snapshot = Arc::new(snapshot);
        self.shared.publish(&inner, &snapshot);
        self.shared.cell.store(snapshot);
        self.shared.save(&inner);
    }

    /// Whether every target has been probed at least once since start.
    pub fn ready(&self) -> bool {
        self.shared.lock().ready
    }

    /// Regions, their monitors and their histories, in region-id order.
    pub fn status(&self) -> Vec<RegionReport> {
        let inner = self.shared.lock();
        inner
            .regions
            .iter()
            .map(|region| RegionReport {
                name: region.name.clone(),
                up: region.state.is_up(),
                since: region.state.since(),
                history: region.state.history().map(Into::into).collect(),
                monitors: region
                    .targets
                    .iter()
                    .map(|target| TargetReport {
                        url: target_key(&target.config),
                        up: target.state.is_up(),
                        since: target.state.since(),
                        last: target.state.last().map(ToString::to_string),
                        last_at: target.state.last().map(|report| report.at),
                        streak: target.state.streak(),
                        history: target.state.history().map(Into::into).collect(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Names of the services held on standby.
    pub fn held(&self) -> Vec<String> {
        let inner = self.shared.lock();
        inner
            .services
            .iter()
            .filter(|service| service.held)
            .map(|service| service.name.clone())
            .collect()
    }

    /// Lets a manual-failback service return to its primaries. Returns whether it was held.
    pub fn clear_failover(&self, service: &str) -> Result<bool, FailbackError> {
        let wanted = service.trim_end_matches('.').to_ascii_lowercase();
        let mut inner = self.shared.lock();
        let entry = inner
            .services
            .iter_mut()
            .find(|entry| entry.name.trim_end_matches('.') == wanted)
            .ok_or_else(|| FailbackError::UnknownService(service.to_string()))?;
        if entry.manual_primaries.is_empty() {
            return Err(FailbackError::NotManual(service.to_string()));
        }
        let was = std::mem::replace(&mut entry.held, false);
        if was {
            tracing::info!(service = %entry.name, "manual failback cleared: primaries may answer again");
            let snapshot = self.shared.cell.load_full();
            self.shared.publish(&inner, &snapshot);
            self.shared.save(&inner);
        }
        Ok(was)
    }
}

impl Drop for Monitor {
    /// Stops every probe task.
    fn drop(&mut self) {
        let inner = self.shared.lock();
        for target in inner.regions.iter().flat_map(|region| &region.targets) {
            target.task.abort();
        }
    }
}

impl Shared {
    /// Locks the state; a panic elsewhere while holding it leaves data that is still usable.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Rebuilds the region and service entries for `config`, keeping the state and task of every
    /// target whose region and monitor config are unchanged.
    fn reconcile(self: &Arc<Self>, inner: &mut Inner, config: &Config, persisted: &Persisted) {
        let mut old: Vec<RegionEntry> = std::mem::take(&mut inner.regions);
        let mut regions = Vec::with_capacity(config.regions.len());
        for region in &config.regions {
            let previous = old
                .iter()
                .position(|entry| entry.name == region.name)
                .map(|index| old.swap_remove(index));
            let (mut state, mut old_targets) = match previous {
                Some(entry) => (Some(entry.state), entry.targets),
                None => (None, Vec::new()),
            };
            let saved = persisted.regions.get(&region.name);
            let mut targets = Vec::with_capacity(region.monitors.len());
            for monitor in &region.monitors {
                if let Some(index) = old_targets
                    .iter()
                    .position(|target| target.config == *monitor)
                {
                    targets.push(old_targets.swap_remove(index));
                    continue;
                }
                let up = saved
                    .and_then(|saved| saved.get(&target_key(monitor)).copied())
                    .unwrap_or(region.health.initial_up);
                let id = inner.next_id;
                inner.next_id += 1;
                targets.push(TargetEntry {
                    id,
                    config: monitor.clone(),
                    state: TargetState::new(up),
                    task: self.spawn_probe(id, &region.name, monitor),
                });
            }
            for removed in old_targets {
                removed.task.abort();
            }
            let up_now = crate::health::state::region_up(
                region.health.require,
                targets.iter().map(|target| target.state.is_up()),
            );
            let state = state.get_or_insert_with(|| RegionState::new(up_now));
            let names: Vec<(String, bool)> = targets
                .iter()
                .map(|target| (target_key(&target.config), target.state.is_up()))
                .collect();
            if let Some(transition) = state.update(
                region.health.require,
                names.iter().map(|(name, up)| (name.as_str(), *up)),
                SystemTime::now(),
            ) {
                log_region(&region.name, &transition);
            }
            regions.push(RegionEntry {
                name: region.name.clone(),
                health: region.health.clone(),
                state: state.clone(),
                targets,
            });
        }
        for removed in old {
            for target in removed.targets {
                target.task.abort();
            }
        }
        inner.regions = regions;

        let old_services = std::mem::take(&mut inner.services);
        inner.services = config
            .services
            .iter()
            .map(|service| {
                let name = service.name.to_string();
                let manual_primaries = match &service.policy {
                    Policy::Failover {
                        tiers,
                        failback: Failback::Manual,
                    } => tiers[0].clone(),
                    _ => Vec::new(),
                };
                let held = !manual_primaries.is_empty()
                    && (old_services.iter().any(|old| old.name == name && old.held)
                        || persisted.held.contains(&name));
                ServiceEntry {
                    name,
                    manual_primaries,
                    held,
                }
            })
            .collect();
        inner.ready = all_probed(inner);
        inner.region_info = config
            .regions
            .iter()
            .enumerate()
            .map(|(id, region)| {
                let max_ttl = config
                    .services
                    .iter()
                    .filter(|service| service.answers.contains_key(&(id as RegionId)))
                    .map(|service| service.ttl.max(service.ttl_degraded))
                    .max()
                    .unwrap_or(0);
                let info = RegionInfo {
                    max_ttl,
                    capacity: region.capacity,
                };
                (region.name.clone(), info)
            })
            .collect();
    }

    /// Starts the probe task of target `id`.
    fn spawn_probe(self: &Arc<Self>, id: u64, region: &str, config: &MonitorConfig) -> AbortHandle {
        let weak = Arc::downgrade(self);
        let prober = Prober::new(config);
        let interval = config.interval;
        let region = region.to_string();
        let url = target_key(config);
        tokio::spawn(async move {
            let prober = match prober {
                Ok(prober) => prober,
                Err(err) => {
                    tracing::error!(%region, %url, %err, "monitor cannot probe; it stays down");
                    let report = ProbeReport {
                        at: SystemTime::now(),
                        latency: Duration::ZERO,
                        result: Err(super::Failure::Other(format!("probe set-up failed: {err}"))),
                    };
                    probe_forever_failing(weak, id, report, interval).await;
                    return;
                }
            };
            // A random offset within the first interval, so probes of many targets (and of
            // several servers probing one target) do not run in step.
            let offset = interval.mul_f64(fastrand::f64());
            tokio::time::sleep(offset).await;
            let mut next = tokio::time::Instant::now();
            loop {
                let report = prober.probe().await;
                let Some(shared) = weak.upgrade() else { return };
                shared.record(id, report);
                drop(shared);
                next += interval;
                let now = tokio::time::Instant::now();
                if next < now {
                    next = now;
                }
                tokio::time::sleep_until(next).await;
            }
        })
        .abort_handle()
    }

    /// Feeds one probe result of target `id` through the state machines, and publishes and
    /// persists when a state flips.
    fn record(&self, id: u64, report: ProbeReport) {
        let mut inner = self.lock();
        let Some((region_index, target_index)) =
            inner.regions.iter().enumerate().find_map(|(r, region)| {
                region
                    .targets
                    .iter()
                    .position(|target| target.id == id)
                    .map(|t| (r, t))
            })
        else {
            return;
        };
        let at = report.at;
        let region = &mut inner.regions[region_index];
        let target = &mut region.targets[target_index];
        let thresholds = Thresholds {
            rise: target.config.rise,
            fall: target.config.fall,
        };
        let target_flip = target.state.observe(&report, thresholds);
        if let Some(transition) = &target_flip {
            let url = target_key(&target.config);
            if transition.up {
                tracing::info!(region = %region.name, %url, reason = %transition.reason, "monitor up");
            } else {
                tracing::warn!(region = %region.name, %url, reason = %transition.reason, "monitor down");
            }
        } else {
            tracing::debug!(region = %region.name, url = %target_key(&target.config), %report, "probe");
        }
        let names: Vec<(String, bool)> = region
            .targets
            .iter()
            .map(|target| (target_key(&target.config), target.state.is_up()))
            .collect();
        let region_flip = region.state.update(
            region.health.require,
            names.iter().map(|(name, up)| (name.as_str(), *up)),
            at,
        );
        if let Some(transition) = &region_flip {
            log_region(&region.name, transition);
            if !transition.up {
                hold_failed_services(&mut inner);
            }
        }
        let was_ready = inner.ready;
        inner.ready = all_probed(&inner);
        if inner.ready && !was_ready {
            tracing::info!("health: first probe round complete");
        }
        if target_flip.is_some() || region_flip.is_some() {
            let snapshot = self.cell.load();
            for _ in target_flip.iter().chain(region_flip.iter()) {
                snapshot.telemetry.health_transition();
            }
        }
        let snapshot = self.cell.load_full();
        let now = SystemTime::now();
        let published = snapshot.health.load();
        let current = inner.regions[region_index].status(
            inner.book.overrides.get(&inner.regions[region_index].name),
            now,
        );
        if region_flip.is_some() || published.regions.get(region_index) != Some(&current) {
            self.publish(&inner, &snapshot);
        }
        if target_flip.is_some() || region_flip.is_some() {
            self.save(&inner);
        }
    }

    /// Stores the health view of `inner` into `snapshot`.
    fn publish(&self, inner: &Inner, snapshot: &Snapshot) {
        let now = SystemTime::now();
        let view = HealthView {
            regions: inner
                .regions
                .iter()
                .map(|region| region.status(inner.book.overrides.get(&region.name), now))
                .collect(),
            held: inner.services.iter().map(|service| service.held).collect(),
        };
        snapshot.health.store(Arc::new(view));
    }

    /// Hands the current state to the writer task (when there is a state file).
    fn save(&self, inner: &Inner) {
        if self.persist.is_closed() {
            return;
        }
        let state = Persisted {
            version: STATE_VERSION,
            regions: inner
                .regions
                .iter()
                .map(|region| {
                    let targets = region
                        .targets
                        .iter()
                        .map(|target| (target_key(&target.config), target.state.is_up()))
                        .collect();
                    (region.name.clone(), targets)
                })
                .collect(),
            held: inner
                .services
                .iter()
                .filter(|service| service.held)
                .map(|service| service.name.clone())
                .collect(),
        };
        match serde_json::to_string_pretty(&state) {
            Ok(text) => {
                let _ = self.persist.send(Some(text));
            }
            Err(err) => tracing::error!(%err, "cannot encode the health state"),
        }
    }
}

/// Keeps failing a target whose probe could not be set up, at its interval, so it shows down
/// with the reason.
async fn probe_forever_failing(
    weak: Weak<Shared>,
    id: u64,
    report: ProbeReport,
    interval: Duration,
) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        shared.record(
            id,
            ProbeReport {
                at: SystemTime::now(),
                ..report.clone()
            },
        );
        drop(shared);
        tokio::time::sleep(interval).await;
    }
}

/// Marks held every manual-failback service whose primaries are all down.
fn hold_failed_services(inner: &mut Inner) {
    let down = |region: RegionId| {
        inner
            .regions
            .get(usize::from(region))
            .is_some_and(|entry| !entry.state.is_up())
    };
    let newly: Vec<usize> = inner
        .services
        .iter()
        .enumerate()
        .filter(|(_, service)| {
            !service.held
                && !service.manual_primaries.is_empty()
                && service.manual_primaries.iter().all(|&region| down(region))
        })
        .map(|(index, _)| index)
        .collect();
    for index in newly {
        let service = &mut inner.services[index];
        service.held = true;
        tracing::warn!(service = %service.name, "every primary is down: failed over to standby; failback is manual");
    }
}

/// Whether every target has at least one probe result.
fn all_probed(inner: &Inner) -> bool {
    inner
        .regions
        .iter()
        .flat_map(|region| &region.targets)
        .all(|target| target.state.probed())
}

/// Logs a region transition.
fn log_region(region: &str, transition: &Transition) {
    if transition.up {
        tracing::info!(%region, reason = %transition.reason, "region up");
    } else {
        tracing::warn!(%region, reason = %transition.reason, "region down");
    }
}

/// How a target is named in status and in the state file: its URL, with the Host when set.
fn target_key(config: &MonitorConfig) -> String {
    match &config.host {
        Some(host) => format!("{} (host {host})", config.url),
        None => config.url.to_string(),
    }
}

/// Reads the state file. A missing file is an empty state; an unreadable or corrupt one is
/// moved aside and reported, never silently dropped.
fn read_state(path: &Path) -> Persisted {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Persisted::default(),
        Err(err) => {
            tracing::error!(path = %path.display(), %err, "cannot read the health state file; starting from the configured initial states");
            return Persisted::default();
        }
    };
    match serde_json::from_str::<Persisted>(&text) {
        Ok(state) if state.version == STATE_VERSION => state,
        Ok(state) => {
            move_aside(path, &format!("unknown version {}", state.version));
            Persisted::default()
        }
        Err(err) => {
            move_aside(path, &err.to_string());
            Persisted::default()
        }
    }
}

/// Reads the operator book. A missing file is `None`; a corrupt one is moved aside and
/// reported.
fn read_book(path: &Path) -> Option<Book> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            tracing::error!(path = %path.display(), %err, "cannot read the admin state file; starting without overrides");
            return None;
        }
    };
    match serde_json::from_str::<Book>(&text) {
        Ok(book) if book.version == BOOK_VERSION => Some(book),
        Ok(book) => {
            move_aside(path, &format!("unknown version {}", book.version));
            None
        }
        Err(err) => {
            move_aside(path, &err.to_string());
            None
        }
    }
}

/// Renames a corrupt state file to `NAME.corrupt-UNIXTIME` and logs why.
fn move_aside(path: &Path, why: &str) {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{stamp}"));
    let aside = PathBuf::from(aside);
    match std::fs::rename(path, &aside) {
        Ok(()) => tracing::error!(
            path = %path.display(), moved_to = %aside.display(), %why,
            "health state file is corrupt; moved aside, starting from the configured initial states"
        ),
        Err(err) => tracing::error!(
            path = %path.display(), %why, %err,
            "health state file is corrupt and could not be moved aside; ignoring it"
        ),
    }
}

/// Fails early when the state file's directory cannot take the file.
fn check_writable(path: &Path) -> Result<(), MonitorError> {
    let probe = temp_path(path);
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|source| MonitorError::StateFile {
            path: path.to_path_buf(),
            source,
        })
}

/// The temporary file a state is written to before the rename.
fn temp_path(path: &Path) -> PathBuf {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    PathBuf::from(temp)
}

/// Saves each new state atomically (write a temporary file, fsync, rename), latest first:
/// states that arrive while a write is running are coalesced.
async fn write_states(path: PathBuf, mut states: watch::Receiver<Option<String>>) {
    while states.changed().await.is_ok() {
        let Some(text) = states.borrow_and_update().clone() else {
            continue;
        };
        let target = path.clone();
        let result =
            tokio::task::spawn_blocking(move || write_atomically(&target, text.as_bytes()))
                .await
                .unwrap_or_else(|err| Err(std::io::Error::other(err)));
        if let Err(err) = result {
            tracing::error!(path = %path.display(), %err, "cannot save the health state");
        }
    }
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temp = temp_path(path);
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
