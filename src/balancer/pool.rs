//! One balancer's backends and their state: the backend sets with their selectors, the routes,
//! the per-backend admin intent (`enabled`), observation (`healthy`, outlier ejection) and load
//! (outstanding requests, peak-EWMA latency), and the active health-check tasks.
//!
//! A [`Topology`] is built from the config and swapped in whole (`ArcSwap`); the request path
//! only loads it. A backend's state lives in an [`Arc<Backend>`] keyed by address, so a reload
//! that keeps a backend keeps its health, its load and its outstanding requests. A set's
//! [`Selector`] is rebuilt only when the set's backends or weights (or the algorithm, or
//! whether slow start is on) change.
//!
//! Slow start: each backend keeps the moment its ramp started (`ramp_from_ms`, an atomic):
//! when its active checks rise, when its ejection ends, when it is undrained, when a reload
//! adds it. A pick reads it, with the other per-backend atomics, and hands the weights in
//! effect to the selector; the backends a pool starts with do not ramp.
//!
//! Draining: a drained backend takes no new requests; the ones in flight get the balancer's
//! `drain_timeout` to finish (`drain_until_ms`), after which the proxy cuts off what is left
//! (see [`super::proxy`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderValue;
use http::uri::Authority;

use super::slow_start;
use super::{Algorithm, Padded, PeakEwma, SelectInput, Selector};
use crate::config::{BalancerConfig, HashKey, OutlierConfig, RouteConfig};
use crate::health::probe::Prober;
use crate::health::state::{TargetState, Thresholds};

/// An ejection lasts at most this many times `eject_for`, however often it repeats.
const MAX_EJECTION_FACTOR: u32 = 10;

/// Milliseconds since the first call in this process: the clock of ejection deadlines, kept in
/// an atomic so the request path reads it without a lock.
fn now_ms() -> u64 {
    ms_since_epoch(Instant::now())
}

/// `now` in [`now_ms`] milliseconds (at least 1).
fn ms_since_epoch(now: Instant) -> u64 {
    /// The process's time origin for [`now_ms`].
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| now);
    u64::try_from(now.saturating_duration_since(epoch).as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// `duration` in whole milliseconds (saturating).
fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Locks `mutex`, ignoring poisoning (the data are counters and estimates, always consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One backend of a balancer, shared by every set that lists its address and kept across
/// reloads while its address stays configured.
#[derive(Debug)]
pub struct Backend {
    /// Where it listens.
    addr: SocketAddr,
    /// `addr` as a URI authority, for upstream request URIs.
    authority: Authority,
    /// The `Host` of a request that comes without one: `addr`, without the port when it is 80.
    host_header: HeaderValue,
    /// Admin intent: `false` while drained (no new requests; in-flight ones finish).
    enabled: AtomicBool,
    /// Observation of the active checks; always `true` without checks.
    healthy: AtomicBool,
    /// Passive ejection deadline in [`now_ms`] milliseconds; 0: not ejected.
    ejected_until: AtomicU64,
    /// When the backend last became eligible again, in [`now_ms`] milliseconds (the end of its
    /// last ejection may lie ahead); 0: never (it started eligible). Slow start ramps its
    /// weight from here.
    ramp_from_ms: AtomicU64,
    /// While drained: when its requests in flight are cut off, in [`now_ms`] milliseconds;
    /// 0: not drained.
    drain_until_ms: AtomicU64,
    /// Requests sent and not yet finished, and requests sent: written by every worker on every
    /// request, so kept off the lines of the fields above.
    traffic: Padded<Traffic>,
    /// Response-header latency estimate.
    latency: Mutex<PeakEwma>,
    /// Passive outlier detection state.
    outlier: Mutex<OutlierState>,
    /// The active checks' rise/fall state.
    check: Mutex<TargetState>,
    /// Requests that failed at this backend (transport errors, timeouts, 502/503/504).
    failures: AtomicU64,
}

impl Backend {
    /// A new, enabled, healthy backend at `addr`, whose slow start ramp starts at
    /// `ramp_from_ms` ([`now_ms`] milliseconds; 0: no ramp).
    fn new(addr: SocketAddr, ramp_from_ms: u64) -> Self {
        let authority = Authority::try_from(addr.to_string().as_str())
            .unwrap_or_else(|_| Authority::from_static("invalid"));
        let host = if addr.port() == 80 {
            authority.host()
        } else {
            authority.as_str()
        };
        let host_header =
            HeaderValue::from_str(host).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
        Self {
            addr,
            authority,
            host_header,
            enabled: AtomicBool::new(true),
            healthy: AtomicBool::new(true),
            ejected_until: AtomicU64::new(0),
            ramp_from_ms: AtomicU64::new(ramp_from_ms),
            drain_until_ms: AtomicU64::new(0),
            traffic: Padded::default(),
            latency: Mutex::new(PeakEwma::with_defaults(Instant::now())),
            outlier: Mutex::new(OutlierState::default()),
            check: Mutex::new(TargetState::new(true)),
            failures: AtomicU64::new(0),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `addr` as a URI authority.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The `Host` header for a request that has none.
    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    /// Whether the operator lets it take new requests.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Whether the active checks see it up (always without checks).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether passive outlier detection has it ejected at `now_ms`.
    fn is_ejected(&self, now_ms: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now_ms
    }

    /// Whether it is ejected now.
    pub fn is_ejected_now(&self) -> bool {
        self.is_ejected(now_ms())
    }

    /// Whether slow start, with a ramp of `window`, still holds its weight down now.
    pub fn is_ramping(&self, window: Duration) -> bool {
        slow_start::is_ramping(
            self.ramp_from_ms.load(Ordering::Relaxed),
            now_ms(),
            duration_ms(window),
        )
    }

    /// It became eligible again at `at_ms` (or will, at the end of an ejection): slow start
    /// ramps from there, unless a later ramp start is already recorded.
    fn ramp_from(&self, at_ms: u64) {
        self.ramp_from_ms.fetch_max(at_ms, Ordering::Relaxed);
    }

    /// Stops new requests (admin intent) with the requests in flight to be cut off at
    /// `deadline_ms`; returns whether it was enabled. Draining a drained backend keeps the
    /// first deadline.
    fn drain(&self, deadline_ms: u64) -> bool {
        let was_enabled = self.enabled.swap(false, Ordering::Relaxed);
        if was_enabled {
            self.drain_until_ms.store(deadline_ms, Ordering::Relaxed);
        }
        was_enabled
    }

    /// Lets it take new requests again at `now_ms`; a drained backend ramps up from there.
    /// Returns whether it was drained.
    fn undrain(&self, now_ms: u64) -> bool {
        let was_drained = !self.enabled.swap(true, Ordering::Relaxed);
        if was_drained {
            self.drain_until_ms.store(0, Ordering::Relaxed);
            self.ramp_from(now_ms);
        }
        was_drained
    }

    /// Whether it is drained and its drain timeout has passed at `now`: what is still in flight
    /// there is to be cut off.
    pub fn drain_expired(&self, now: Instant) -> bool {
        let until = self.drain_until_ms.load(Ordering::Relaxed);
        until != 0 && ms_since_epoch(now) >= until && !self.is_enabled()
    }

    /// Requests in flight.
    pub fn outstanding(&self) -> u32 {
        self.traffic.outstanding.load(Ordering::Relaxed)
    }

    /// Requests sent, and requests that failed.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.traffic.requests.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Marks a request as sent: counted as outstanding until the guard drops.
    pub fn begin(self: &Arc<Self>) -> Outstanding {
        Self::start(Arc::clone(self))
    }

    /// [`Backend::begin`], keeping this reference in the guard (no further reference count).
    pub fn start(self: Arc<Self>) -> Outstanding {
        self.traffic.outstanding.fetch_add(1, Ordering::Relaxed);
        self.traffic.requests.fetch_add(1, Ordering::Relaxed);
        Outstanding { backend: self }
    }

    /// Feeds a response-header latency into the estimate.
    pub fn observe_latency(&self, rtt: Duration) {
        self.observe_latency_at(rtt, Instant::now());
    }

    /// Feeds a response-header latency, measured at `now`, into the estimate.
    pub fn observe_latency_at(&self, rtt: Duration, now: Instant) {
        lock(&self.latency).observe(rtt, now);
    }

    /// Records a request's outcome for passive outlier detection (`None`: detection off).
    pub fn record(&self, ok: bool, outlier: Option<&OutlierConfig>) {
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        let Some(config) = outlier else { return };
        let now = Instant::now();
        let ejection = lock(&self.outlier).record(ok, config, now);
        if let Some(length) = ejection {
            let until = now_ms().saturating_add(duration_ms(length));
            self.ramp_from(until);
            self.ejected_until.store(until, Ordering::Relaxed);
            tracing::warn!(
                backend = %self.addr,
                eject_ms = length.as_millis() as u64,
                "backend ejected after consecutive errors"
            );
        }
    }
}

/// A request counted in its backend's outstanding requests until dropped.
#[derive(Debug)]
pub struct Outstanding {
    /// The backend.
    backend: Arc<Backend>,
}

impl Outstanding {
    /// The backend the request went to.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for Outstanding {
    /// The request finished: one fewer outstanding.
    fn drop(&mut self) {
        self.backend
            .traffic
            .outstanding
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Passive outlier detection of one backend (pure: time is an argument).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutlierState {
    /// Failed requests in a row.
    consecutive: u32,
    /// Ejections in the current series; the next one lasts `eject_for * 2^ejections` (capped).
    ejections: u32,
    /// When the last ejection ends.
    ejected_until: Option<Instant>,
}

impl OutlierState {
    /// Records one request's outcome at `now`; returns the ejection's length when this failure
    /// ejects the backend.
    ///
    /// A backend is ejected after `consecutive_errors` failures in a row (failures while it is
    /// ejected, from requests already in flight, do not count). Each repeated ejection doubles
    /// the length, up to [`MAX_EJECTION_FACTOR`] times `eject_for`; the series starts over once
    /// the backend has served that long since its last ejection ended.
    pub fn record(&mut self, ok: bool, config: &OutlierConfig, now: Instant) -> Option<Duration> {
        if ok {
            self.consecutive = 0;
            return None;
        }
        if self.ejected_until.is_some_and(|until| now < until) {
            return None;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        if self.consecutive < config.consecutive_errors {
            return None;
        }
        let longest = config.eject_for * MAX_EJECTION_FACTOR;
        if self
            .ejected_until
            .is_some_and(|until| now.saturating_duration_since(until) >= longest)
        {
            self.ejections = 0;
        }
        let factor = 1u32
            .checked_shl(self.ejections)
            .unwrap_or(u32::MAX)
            .min(MAX_EJECTION_FACTOR);
        let length = config.eject_for * factor;
        self.ejections = self.ejections.saturating_add(1);
        self.consecutive = 0;
        self.ejected_until = Some(now + length);
        Some(length)
    }
}

/// One backend set of a topology.
#[derive(Debug)]
pub struct BackendSet {
    /// The set's name.
    name: String,
    /// Its backends, indexed like the selector.
    members: Box<[Arc<Backend>]>,
    /// Their configured weights: the base of slow start's ramps, and how a reload tells
    /// whether the set changed.
    weights: Box<[NonZeroU32]>,
    /// The balancing over `members`.
    selector: Arc<Selector>,
    /// Slow start's ramp, in milliseconds; 0: off.
    slow_start_ms: u64,
}

impl BackendSet {
    /// The set's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its backends.
    pub fn members(&self) -> &[Arc<Backend>] {
        &self.members
    }

    /// Their configured weights, indexed like [`BackendSet::members`].
    pub fn weights(&self) -> &[NonZeroU32] {
        &self.weights
    }
}

/// What a request offers the selector besides load and health.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestKey<'a> {
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// The request's hash key bytes (`ring_hash`, `maglev`).
    pub hash_key: Option<&'a [u8]>,
    /// The stickiness cookie's value (`cookie`).
    pub cookie: Option<&'a str>,
}

/// A pick: the backend, and for `cookie` the cookie value to set.
#[derive(Debug)]
pub struct Chosen {
    /// Index of the backend in its set.
    pub index: usize,
    /// The backend.
    pub backend: Arc<Backend>,
    /// For `cookie`: the token the response must set.
    pub set_cookie: Option<HeaderValue>,
}

/// Per-thread buffers for the selector's inputs, so a pick allocates nothing once warm.
#[derive(Debug)]
struct Scratch {
    /// Eligibility per member.
    eligible: Vec<bool>,
    /// Outstanding requests per member.
    outstanding: Vec<u32>,
    /// Latency estimates per member.
    latency: Vec<PeakEwma>,
    /// Weights in effect per member, under slow start.
    weights: Vec<NonZeroU32>,
    /// The thread's random source.
    rng: fastrand::Rng,
}

thread_local! {
    /// This thread's [`Scratch`].
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        eligible: Vec::new(),
        outstanding: Vec::new(),
        latency: Vec::new(),
        weights: Vec::new(),
        rng: fastrand::Rng::new(),
    });
}

impl BackendSet {
    /// Picks a backend for a request, skipping the members at `skip` (tried already).
    ///
    /// Eligible: enabled, healthy and not ejected. If every enabled, healthy member is ejected
    /// (or skipped by ejection), ejections are ignored rather than failing every request.
    /// Under slow start, members that became eligible again weigh less until their ramp ends.
    pub fn pick(
        &self,
        algorithm: Algorithm,
        key: &RequestKey<'_>,
        skip: &[usize],
    ) -> Option<Chosen> {
        self.pick_at(algorithm, key, skip, Instant::now())
    }

    /// [`BackendSet::pick`] with the clock read by the caller (`at`: now).
    pub fn pick_at(
        &self,
        algorithm: Algorithm,
        key: &RequestKey<'_>,
        skip: &[usize],
        at: Instant,
    ) -> Option<Chosen> {
        let now = ms_since_epoch(at);
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let Scratch {
                eligible,
                outstanding,
                latency,
                weights,
                rng,
            } = &mut *scratch;
            eligible.clear();
            eligible.extend(self.members.iter().map(|backend| {
                backend.is_enabled() && backend.is_healthy() && !backend.is_ejected(now)
            }));
            for &index in skip {
                if let Some(slot) = eligible.get_mut(index) {
                    *slot = false;
                }
            }
            if !eligible.iter().any(|&ok| ok) {
                for (index, backend) in self.members.iter().enumerate() {
                    eligible[index] =
                        backend.is_enabled() && backend.is_healthy() && !skip.contains(&index);
                }
            }
            outstanding.clear();
            latency.clear();
            let needs_load = matches!(
                algorithm,
                Algorithm::LeastConnections
                    | Algorithm::LeastRequest
                    | Algorithm::LeastResponseTime
            );
            if needs_load {
                outstanding.extend(self.members.iter().map(|backend| backend.outstanding()));
            }
            if algorithm == Algorithm::LeastResponseTime {
                latency.extend(self.members.iter().map(|backend| *lock(&backend.latency)));
            }
            weights.clear();
            if self.slow_start_ms != 0 {
                weights.extend(self.members.iter().zip(self.weights.iter()).map(
                    |(backend, &weight)| {
                        let ramp_from = backend.ramp_from_ms.load(Ordering::Relaxed);
                        slow_start::effective_weight(weight, ramp_from, now, self.slow_start_ms)
                    },
                ));
            }
            let input = SelectInput {
                eligible,
                outstanding,
                latency,
                client_ip: key.client_ip,
                hash_key: key.hash_key,
                cookie: key.cookie,
                now: at,
                weights,
            };
            let pick = self.selector.select(&input, rng)?;
            Some(Chosen {
                index: pick.backend,
                backend: Arc::clone(&self.members[pick.backend]),
                set_cookie: pick
                    .set_cookie
                    .and_then(|token| HeaderValue::from_str(token).ok()),
            })
        })
    }
}

/// One configuration generation of a balancer: its settings, sets and routes.
#[derive(Debug)]
pub struct Topology {
    /// The balancer's validated config.
    pub config: Arc<BalancerConfig>,
    /// The sets, indexed like `config.sets`.
    pub sets: Box<[BackendSet]>,
}

impl Topology {
    /// The first route matching a request; `None`: the default set serves it, with the
    /// balancer's timeouts.
    pub fn route(
        &self,
        path: &str,
        host: Option<&str>,
        headers: &http::HeaderMap,
    ) -> Option<&RouteConfig> {
        self.config.routes.iter().find(|route| {
            path.starts_with(route.path_prefix.as_str())
                && route
                    .host
                    .as_deref()
                    .is_none_or(|want| host.is_some_and(|host| host.eq_ignore_ascii_case(want)))
                && route.header.as_ref().is_none_or(|want| {
                    headers
                        .get_all(want.name.as_str())
                        .iter()
                        .any(|value| value.as_bytes() == want.value.as_bytes())
                })
        })
    }

    /// Whether a request's hash key is needed, and which.
    pub fn hash_key(&self) -> Option<&HashKey> {
        self.config.hash_key.as_ref()
    }
}

/// A pool's health, as its `/health` endpoint reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolHealth {
    /// Default-set backends that are healthy, enabled and not ejected.
    pub healthy: usize,
    /// Default-set backends.
    pub total: usize,
    /// Requests in flight through the pool.
    pub in_flight: u64,
    /// Requests that entered the pool since it started.
    pub requests: u64,
    /// Smoothed response-header latency, in milliseconds.
    pub latency_ms: f64,
    /// Whether `healthy` reaches `min_healthy`.
    pub ok: bool,
}

/// One balancer's backends, sets and health checks.
#[derive(Debug)]
pub struct Pool {
    /// The current generation.
    topology: ArcSwap<Topology>,
    /// Every configured backend by address (the union of all sets).
    backends: Mutex<HashMap<SocketAddr, Arc<Backend>>>,
    /// The running active-check task of each backend.
    checks: Mutex<HashMap<SocketAddr, tokio::task::JoinHandle<()>>>,
    /// What every request updates, on cache lines of its own.
    counters: Padded<PoolCounters>,
}

/// A pool's per-request counters.
#[derive(Debug, Default)]
struct PoolCounters {
    /// Requests in flight through the pool.
    in_flight: AtomicU64,
    /// Requests that entered the pool since it started.
    requests: AtomicU64,
    /// Smoothed response-header latency, in microseconds (EWMA, 1/8 per sample).
    latency_us: AtomicU64,
}

/// A backend's per-request counters.
#[derive(Debug, Default)]
struct Traffic {
    /// Requests sent and not yet finished.
    outstanding: AtomicU32,
    /// Requests sent to this backend.
    requests: AtomicU64,
}

impl Pool {
    /// A pool for `config`, with its active checks started (inside a Tokio runtime).
    pub fn start(config: &BalancerConfig) -> Arc<Self> {
        let mut backends = HashMap::new();
        let topology = build(config, None, &mut backends, 0);
        let pool = Arc::new(Self {
            topology: ArcSwap::from_pointee(topology),
            backends: Mutex::new(backends),
            checks: Mutex::new(HashMap::new()),
            counters: Padded::default(),
        });
        pool.reconcile_checks(None);
        pool
    }

    /// The current generation.
    pub fn topology(&self) -> Arc<Topology> {
        self.topology.load_full()
    }

    /// Installs `config`: backends that stay keep their state and outstanding requests; sets
    /// whose backends and weights are unchanged keep their selector.
    pub fn reload(&self, config: &BalancerConfig) {
        let old = self.topology.load_full();
        let mut backends = lock(&self.backends);
        let mut next = HashMap::new();
        let topology = build(config, Some((&old, &backends)), &mut next, now_ms());
        *backends = next;
        drop(backends);
        self.topology.store(Arc::new(topology));
        self.reconcile_checks(old.config.health.as_ref());
    }

    /// The backend at `addr`, if configured.
    pub fn backend(&self, addr: SocketAddr) -> Option<Arc<Backend>> {
        lock(&self.backends).get(&addr).cloned()
    }

    /// Stops new requests to the backend at `addr`; in-flight ones get the balancer's
    /// `drain_timeout` to finish, then the proxy cuts them off (within a second). Returns
    /// whether it is configured. The state lasts until [`Pool::undrain`] (across reloads that
    /// keep it); draining it again keeps the first deadline.
    pub fn drain(&self, addr: SocketAddr) -> bool {
        let Some(backend) = self.backend(addr) else {
            return false;
        };
        let drain_timeout = self.topology.load().config.drain_timeout;
        let deadline = now_ms().saturating_add(duration_ms(drain_timeout));
        if backend.drain(deadline) {
            tracing::info!(
                backend = %addr,
                drain_timeout_ms = duration_ms(drain_timeout),
                "backend drained"
            );
        }
        true
    }

    /// Lets the backend at `addr` take new requests again (under slow start, ramping up).
    /// Returns whether it is configured.
    pub fn undrain(&self, addr: SocketAddr) -> bool {
        let Some(backend) = self.backend(addr) else {
            return false;
        };
        if backend.undrain(now_ms()) {
            tracing::info!(backend = %addr, "backend undrained");
        }
        true
    }

    /// Counts a request entering the pool until the guard drops.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        InFlight {
            pool: Arc::clone(self),
        }
    }

    /// Feeds a response-header latency into the pool's smoothed latency.
    pub fn observe_latency(&self, rtt: Duration) {
        let sample = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        let _ =
            self.counters
                .latency_us
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                    Some(if old == 0 {
                        sample
                    } else {
                        old - old / 8 + sample / 8
                    })
                });
    }

    /// The pool's health: the default set's eligible backends against `min_healthy`.
    pub fn health(&self) -> PoolHealth {
        let topology = self.topology.load();
        let now = now_ms();
        let members = topology.sets[0].members();
        let healthy = members
            .iter()
            .filter(|b| b.is_enabled() && b.is_healthy() && !b.is_ejected(now))
            .count();
        PoolHealth {
            healthy,
            total: members.len(),
            in_flight: self.counters.in_flight.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            latency_ms: self.counters.latency_us.load(Ordering::Relaxed) as f64 / 1000.0,
            ok: healthy >= topology.config.min_healthy,
        }
    }

    /// Starts, restarts or stops active-check tasks to match the current topology; `previous`
    /// is the health config the running tasks were started with.
    fn reconcile_checks(&self, previous: Option<&crate::config::BackendHealthConfig>) {
        let topology = self.topology.load_full();
        let backends = lock(&self.backends).clone();
        let mut checks = lock(&self.checks);
        let health = topology.config.health.as_ref();
        if health != previous {
            for (_, task) in checks.drain() {
                task.abort();
            }
        }
        checks.retain(|addr, task| {
            let keep = backends.contains_key(addr);
            if !keep {
                task.abort();
            }
            keep
        });
        let Some(health) = health else {
            let now = now_ms();
            for backend in backends.values() {
                if !backend.healthy.load(Ordering::Relaxed) {
                    backend.ramp_from(now);
                    backend.healthy.store(true, Ordering::Relaxed);
                }
            }
            return;
        };
        for (addr, backend) in backends {
            if checks.contains_key(&addr) {
                continue;
            }
            let Some(monitor) = health.monitor(addr) else {
                continue;
            };
            let prober = match Prober::new(&monitor) {
                Ok(prober) => prober,
                Err(err) => {
                    tracing::error!(backend = %addr, %err, "cannot set up the backend's health check");
                    continue;
                }
            };
            let thresholds = Thresholds {
                rise: health.rise,
                fall: health.fall,
            };
            let interval = health.interval;
            checks.insert(
                addr,
                tokio::spawn(run_checks(backend, prober, thresholds, interval)),
            );
        }
    }

    /// Stops every active-check task.
    pub fn stop_checks(&self) {
        for (_, task) in lock(&self.checks).drain() {
            task.abort();
        }
    }
}

impl Drop for Pool {
    /// The pool is gone (its balancer stopped or was dropped): its checks stop too.
    fn drop(&mut self) {
        self.stop_checks();
    }
}

/// Probes one backend every `interval` and feeds its rise/fall state.
async fn run_checks(
    backend: Arc<Backend>,
    prober: Prober,
    thresholds: Thresholds,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let report = prober.probe().await;
        let transition = lock(&backend.check).observe(&report, thresholds);
        if let Some(transition) = transition {
            if transition.up {
                backend.ramp_from(now_ms());
            }
            backend.healthy.store(transition.up, Ordering::Relaxed);
            tracing::warn!(
                backend = %backend.addr,
                up = transition.up,
                reason = %transition.reason,
                "backend health changed"
            );
        }
    }
}

/// A request counted in the pool's in-flight requests until dropped.
#[derive(Debug)]
pub struct InFlight {
    /// The pool.
    pool: Arc<Pool>,
}

impl Drop for InFlight {
    /// The request finished.
    fn drop(&mut self) {
        self.pool.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Builds a topology for `config`, reusing the backends and selectors of `previous` (the old
/// topology and backend table) where unchanged; fills `backends` with every backend used.
/// Backends it creates ramp up from `added_at_ms` under slow start (0: no ramp, for the
/// backends a pool starts with).
fn build(
    config: &BalancerConfig,
    previous: Option<(&Topology, &HashMap<SocketAddr, Arc<Backend>>)>,
    backends: &mut HashMap<SocketAddr, Arc<Backend>>,
    added_at_ms: u64,
) -> Topology {
    let slow_start_ms = config.slow_start.map_or(0, duration_ms);
    let mut sets = Vec::with_capacity(config.sets.len());
    for set in &config.sets {
        let members: Box<[Arc<Backend>]> = set
            .backends
            .iter()
            .map(|entry| {
                let backend = backends
                    .get(&entry.addr)
                    .cloned()
                    .or_else(|| previous.and_then(|(_, old)| old.get(&entry.addr).cloned()))
                    .unwrap_or_else(|| Arc::new(Backend::new(entry.addr, added_at_ms)));
                backends.insert(entry.addr, Arc::clone(&backend));
                backend
            })
            .collect();
        let weights: Box<[NonZeroU32]> = set.backends.iter().map(|entry| entry.weight).collect();
        let reused = previous.and_then(|(old, _)| {
            let old_set = old.sets.iter().find(|old_set| old_set.name == set.name)?;
            // The selector's state (smooth weighted round robin's current weights) is in the
            // units of the weights it was fed: configured ones, or slow start's scaled ones.
            let same = old.config.algorithm == config.algorithm
                && old.config.slow_start.is_some() == config.slow_start.is_some()
                && old_set.weights == weights
                && old_set.members.len() == members.len()
                && old_set
                    .members
                    .iter()
                    .zip(members.iter())
                    .all(|(a, b)| a.addr == b.addr);
            same.then(|| Arc::clone(&old_set.selector))
        });
        let selector = reused.unwrap_or_else(|| {
            // The config validation built this very selector, so it cannot fail here; should it
            // anyway, an empty selector answers 503 rather than misrouting.
            Arc::new(
                Selector::new(config.algorithm, &set.specs()).unwrap_or_else(|err| {
                    tracing::error!(balancer = %config.name, set = %set.name, %err, "cannot build the selector");
                    empty_selector()
                }),
            )
        });
        sets.push(BackendSet {
            name: set.name.clone(),
            members,
            weights,
            selector,
            slow_start_ms,
        });
    }
    Topology {
        config: Arc::new(config.clone()),
        sets: sets.into_boxed_slice(),
    }
}

/// A selector over no backends: it never picks.
fn empty_selector() -> Selector {
    match Selector::new(Algorithm::Random, &[]) {
        Ok(selector) => selector,
        Err(_) => unreachable!("an empty random selector always builds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    /// The outlier settings the tests use.
    const OUTLIER: OutlierConfig = OutlierConfig {
        consecutive_errors: 3,
        eject_for: Duration::from_secs(10),
    };

    /// Fails `state` `count` times at `now`; the last result.
    fn fail(state: &mut OutlierState, count: u32, now: Instant) -> Option<Duration> {
        (0..count)
            .map(|_| state.record(false, &OUTLIER, now))
            .last()
            .flatten()
    }

    #[test]
    fn ejection_after_consecutive_errors_with_backoff() {
        let start = Instant::now();
        let mut state = OutlierState::default();
        assert_eq!(fail(&mut state, 2, start), None);
        assert_eq!(
            state.record(true, &OUTLIER, start),
            None,
            "a success resets"
        );
        assert_eq!(fail(&mut state, 2, start), None);
        assert_eq!(fail(&mut state, 1, start), Some(Duration::from_secs(10)));
        assert_eq!(fail(&mut state, 5, start), None, "no count while ejected");
        let mut now = start + Duration::from_secs(10);
        let mut lengths = Vec::new();
        for _ in 0..6 {
            let length = fail(&mut state, 3, now).unwrap();
            lengths.push(length.as_secs());
            now += length;
        }
        assert_eq!(lengths, [20, 40, 80, 100, 100, 100]);
        now += Duration::from_secs(100);
        assert_eq!(
            fail(&mut state, 3, now),
            Some(Duration::from_secs(10)),
            "the series starts over after a long healthy run"
        );
    }

    /// A balancer config from the lines of its table.
    fn balancer(lines: &str) -> BalancerConfig {
        let text = format!(
            "[dns]\nlisten = [\"127.0.0.1:53\"]\nzones_dir = \"z\"\n[balancers.web]\nlisten = \"127.0.0.1:0\"\n{lines}"
        );
        Config::parse(&text, Path::new("m.toml"))
            .unwrap()
            .balancers
            .remove(0)
    }

    #[test]
    fn routes_pick_sets_and_reload_keeps_state() {
        let config = balancer(
            "algorithm = \"weighted_round_robin\"\n\
             backends = [{ addr = \"127.0.0.1:1\", weight = 2 }, { addr = \"127.0.0.1:2\" }]\n\
             [balancers.web.backend_sets.api]\nbackends = [{ addr = \"127.0.0.1:3\" }, { addr = \"127.0.0.1:1\" }]\n\
             [[balancers.web.routes]]\npath_prefix = \"/api/\"\nheader = { name = \"x-canary\", value = \"1\" }\nbackends = \"api\"\n",
        );
        let mut backends = HashMap::new();
        let topology = build(&config, None, &mut backends, 0);
        assert_eq!(backends.len(), 3, "a shared address is one backend");
        let mut headers = http::HeaderMap::new();
        let set = |path: &str, headers: &http::HeaderMap| {
            topology.route(path, None, headers).map(|route| route.set)
        };
        assert_eq!(set("/api/x", &headers), None);
        headers.insert("x-canary", HeaderValue::from_static("1"));
        assert_eq!(set("/api/x", &headers), Some(1));
        assert_eq!(set("/web", &headers), None);

        let key = RequestKey::default();
        let set = &topology.sets[0];
        let picks: Vec<u16> = (0..3)
            .filter_map(|_| set.pick(Algorithm::WeightedRoundRobin, &key, &[]))
            .map(|chosen| chosen.backend.addr().port())
            .collect();
        assert_eq!(picks, [1, 2, 1]);
        let skipped = set.pick(Algorithm::WeightedRoundRobin, &key, &[0]).unwrap();
        assert_eq!(skipped.backend.addr().port(), 2);

        let shared = Arc::clone(&set.members[0]);
        shared.enabled.store(false, Ordering::Relaxed);
        for _ in 0..4 {
            let chosen = set.pick(Algorithm::WeightedRoundRobin, &key, &[]).unwrap();
            assert_eq!(
                chosen.backend.addr().port(),
                2,
                "a drained backend takes nothing"
            );
        }
        assert!(
            set.pick(Algorithm::WeightedRoundRobin, &key, &[1])
                .is_none()
        );

        let same = balancer(
            "algorithm = \"weighted_round_robin\"\n\
             backends = [{ addr = \"127.0.0.1:1\", weight = 2 }, { addr = \"127.0.0.1:2\" }]\n",
        );
        let mut next = HashMap::new();
        let reloaded = build(&same, Some((&topology, &backends)), &mut next, 5);
        assert!(Arc::ptr_eq(
            &reloaded.sets[0].selector,
            &topology.sets[0].selector
        ));
        assert!(Arc::ptr_eq(&reloaded.sets[0].members[0], &shared));
        assert!(
            !reloaded.sets[0].members[0].is_enabled(),
            "admin state survives"
        );
        assert_eq!(next.len(), 2);
        let reweighted = balancer(
            "algorithm = \"weighted_round_robin\"\n\
             backends = [{ addr = \"127.0.0.1:1\", weight = 3 }, { addr = \"127.0.0.1:2\" }]\n",
        );
        let changed = build(
            &reweighted,
            Some((&reloaded, &next)),
            &mut HashMap::new(),
            5,
        );
        assert!(!Arc::ptr_eq(
            &changed.sets[0].selector,
            &reloaded.sets[0].selector
        ));
    }

    #[test]
    fn ejected_backends_are_skipped_unless_all_are() {
        let config =
            balancer("backends = [{ addr = \"127.0.0.1:1\" }, { addr = \"127.0.0.1:2\" }]\n");
        let topology = build(&config, None, &mut HashMap::new(), 0);
        let set = &topology.sets[0];
        let key = RequestKey::default();
        set.members[0]
            .ejected_until
            .store(u64::MAX, Ordering::Relaxed);
        for _ in 0..4 {
            let chosen = set.pick(Algorithm::RoundRobin, &key, &[]).unwrap();
            assert_eq!(chosen.index, 1);
        }
        set.members[1]
            .ejected_until
            .store(u64::MAX, Ordering::Relaxed);
        assert!(
            set.pick(Algorithm::RoundRobin, &key, &[]).is_some(),
            "panic mode"
        );
        set.members[0].healthy.store(false, Ordering::Relaxed);
        set.members[1].healthy.store(false, Ordering::Relaxed);
        assert!(set.pick(Algorithm::RoundRobin, &key, &[]).is_none());
    }

    /// How many of `count` picks of `set` (weighted round robin) go to member 1, at `at`.
    fn picks_of_second(set: &BackendSet, count: usize, at: Instant) -> usize {
        let key = RequestKey::default();
        (0..count)
            .filter_map(|_| set.pick_at(Algorithm::WeightedRoundRobin, &key, &[], at))
            .filter(|chosen| chosen.index == 1)
            .count()
    }

    #[test]
    fn slow_start_holds_a_recovered_backend_down_until_its_ramp_ends() {
        let config = balancer(
            "algorithm = \"weighted_round_robin\"\nslow_start = \"10s\"\n\
             backends = [{ addr = \"127.0.0.1:1\" }, { addr = \"127.0.0.1:2\" }]\n",
        );
        let mut backends = HashMap::new();
        let topology = build(&config, None, &mut backends, 0);
        let set = &topology.sets[0];
        let window = Duration::from_secs(10);
        let _ = now_ms();
        let at = Instant::now();
        assert!(
            set.members.iter().all(|b| !b.is_ramping(window)),
            "the backends a pool starts with do not ramp"
        );
        assert_eq!(picks_of_second(set, 100, at), 50);

        set.members[1].ramp_from(ms_since_epoch(at));
        assert!(set.members[1].is_ramping(window));
        // 10 % of the weight: 100 against 1000, so 10 of 110 picks.
        assert_eq!(picks_of_second(set, 110, at), 10);
        // Half way, 55 %: 55 of 155.
        assert_eq!(picks_of_second(set, 155, at + window / 2), 55);
        assert_eq!(
            picks_of_second(set, 100, at + window),
            50,
            "full weight at the end"
        );

        let off = balancer(
            "algorithm = \"weighted_round_robin\"\n\
             backends = [{ addr = \"127.0.0.1:1\" }, { addr = \"127.0.0.1:2\" }]\n",
        );
        let mut next = HashMap::new();
        let without = build(&off, Some((&topology, &backends)), &mut next, 0);
        assert!(
            !Arc::ptr_eq(&without.sets[0].selector, &set.selector),
            "turning slow start off rebuilds the selector"
        );
        assert_eq!(
            picks_of_second(&without.sets[0], 100, at),
            50,
            "no ramp without slow start"
        );
    }

    #[test]
    fn every_return_to_eligibility_starts_a_ramp() {
        let config = balancer(
            "algorithm = \"random\"\nslow_start = \"1m\"\ndrain_timeout = \"2s\"\n\
             backends = [{ addr = \"127.0.0.1:1\" }]\n",
        );
        let mut backends = HashMap::new();
        let topology = build(&config, None, &mut backends, 0);
        let first = Arc::clone(&topology.sets[0].members[0]);
        assert_eq!(first.ramp_from_ms.load(Ordering::Relaxed), 0);

        // A reload that adds a backend: it ramps from the reload.
        let grown = balancer(
            "algorithm = \"random\"\nslow_start = \"1m\"\n\
             backends = [{ addr = \"127.0.0.1:1\" }, { addr = \"127.0.0.1:2\" }]\n",
        );
        let mut next = HashMap::new();
        let reloaded = build(&grown, Some((&topology, &backends)), &mut next, 1234);
        assert!(Arc::ptr_eq(&reloaded.sets[0].members[0], &first));
        assert_eq!(
            first.ramp_from_ms.load(Ordering::Relaxed),
            0,
            "kept, no ramp"
        );
        let added = &reloaded.sets[0].members[1];
        assert_eq!(added.ramp_from_ms.load(Ordering::Relaxed), 1234);

        // An ejection: the ramp starts when it ends.
        let outlier = OutlierConfig {
            consecutive_errors: 2,
            eject_for: Duration::from_secs(30),
        };
        let before = now_ms();
        first.record(false, Some(&outlier));
        first.record(false, Some(&outlier));
        let ejected_until = first.ejected_until.load(Ordering::Relaxed);
        assert!(ejected_until >= before + 30_000);
        assert_eq!(first.ramp_from_ms.load(Ordering::Relaxed), ejected_until);

        // Undrain: the ramp starts again, later than the ejection's end never moves back.
        let pool_backend = Backend::new("127.0.0.1:3".parse().unwrap(), 0);
        assert!(pool_backend.drain(100));
        assert_eq!(
            pool_backend.ramp_from_ms.load(Ordering::Relaxed),
            0,
            "draining is no ramp"
        );
        assert!(pool_backend.undrain(500));
        assert_eq!(pool_backend.ramp_from_ms.load(Ordering::Relaxed), 500);
        assert!(
            !pool_backend.undrain(900),
            "undraining an enabled backend changes nothing"
        );
        assert_eq!(pool_backend.ramp_from_ms.load(Ordering::Relaxed), 500);
        pool_backend.ramp_from(200);
        assert_eq!(
            pool_backend.ramp_from_ms.load(Ordering::Relaxed),
            500,
            "never moves back"
        );
    }

    #[test]
    fn a_drained_backend_expires_after_the_drain_timeout() {
        let backend = Backend::new("127.0.0.1:1".parse().unwrap(), 0);
        // The clock's origin lies before `now`, so `now` is not clamped to its 1 ms minimum.
        let _ = now_ms();
        let now = Instant::now() + Duration::from_secs(1);
        let at = ms_since_epoch(now);
        assert!(
            !backend.drain_expired(now + Duration::from_secs(3600)),
            "not drained"
        );
        assert!(backend.drain(at + 2_000));
        assert!(!backend.is_enabled());
        assert!(!backend.drain_expired(now + Duration::from_millis(1_999)));
        assert!(backend.drain_expired(now + Duration::from_millis(2_000)));
        assert!(
            !backend.drain(at + 60_000),
            "draining again keeps the first deadline"
        );
        assert!(backend.drain_expired(now + Duration::from_millis(2_000)));
        assert!(backend.undrain(at + 1_000));
        assert!(backend.is_enabled());
        assert!(
            !backend.drain_expired(now + Duration::from_secs(3600)),
            "undrained"
        );
    }

    #[test]
    fn pool_drain_takes_the_balancer_drain_timeout() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let config =
                balancer("drain_timeout = \"3s\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n");
            let pool = Pool::start(&config);
            let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
            let now = Instant::now();
            assert!(pool.drain(addr));
            let backend = pool.backend(addr).unwrap();
            assert!(!backend.drain_expired(now + Duration::from_millis(2_000)));
            assert!(backend.drain_expired(now + Duration::from_secs(5)));
            assert!(!pool.drain("127.0.0.1:2".parse().unwrap()));
            assert!(pool.undrain(addr));
            assert!(!backend.drain_expired(now + Duration::from_secs(10)));
            assert!(!pool.undrain("127.0.0.1:2".parse().unwrap()));
        });
    }
}
