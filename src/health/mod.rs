//! Regional health: probes of each region's load balancer, the pure rise/fall state machine,
//! and the monitor that runs probes and publishes what it sees to the data plane.
//!
//! - [`probe`]: one HTTP, HTTPS or TCP probe of a target, with its outcome and reason (I/O).
//! - [`state`]: per-target rise/fall hysteresis and the per-region `require` rule (pure; time
//!   is an input).
//! - [`monitor`]: the probe tasks, the state they feed, the health view it publishes into the
//!   served snapshot, and the state file that carries it across restarts.

pub mod monitor;
pub mod probe;
pub mod state;

use std::fmt;
use std::time::{Duration, SystemTime};

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// When the probe started.
    pub at: SystemTime,
    /// How long it took, up to the answer or the failure.
    pub latency: Duration,
    /// Pass, with what was seen, or the reason it failed.
    pub result: Result<Pass, Failure>,
}

/// A passed probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// The HTTP status, for HTTP and HTTPS probes.
    pub status: Option<u16>,
    /// The share of its capacity the target reports (0 to 1), for monitors with
    /// `capacity_from = "pool"`.
    pub capacity: Option<Capacity>,
    /// The requests the pool has served since it started, when its health body says
    /// (`capacity_from = "pool"`); drills measure the pool's request rate from it.
    pub requests: Option<u64>,
}

/// A capacity share from 0 to 1, as a pool's health endpoint reports it.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Capacity(f64);

impl Capacity {
    /// `share` clamped to 0..=1; `None` when it is not a number.
    pub fn new(share: f64) -> Option<Capacity> {
        (!share.is_nan()).then(|| Capacity(share.clamp(0.0, 1.0)))
    }

    /// The share.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Eq for Capacity {}

/// Why a probe failed. Each variant is a reason an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The target answered with a status outside `expect_status`.
    Status(u16),
    /// The body did not contain `expect_body`.
    BodyMismatch,
    /// No complete answer within the probe timeout.
    Timeout,
    /// The connection was refused.
    Refused,
    /// The connection was closed or reset before a complete answer.
    Closed,
    /// The TLS handshake failed (certificate, protocol, name).
    Tls(String),
    /// The target's host name did not resolve.
    Resolve(String),
    /// Anything else: unreachable network, invalid HTTP, ...
    Other(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(status) => write!(f, "unexpected status {status}"),
            Failure::BodyMismatch => f.write_str("body does not contain the expected text"),
            Failure::Timeout => f.write_str("timed out"),
            Failure::Refused => f.write_str("connection refused"),
            Failure::Closed => f.write_str("connection closed before a complete answer"),
            Failure::Tls(detail) => write!(f, "TLS error: {detail}"),
            Failure::Resolve(detail) => write!(f, "cannot resolve host: {detail}"),
            Failure::Other(detail) => f.write_str(detail),
        }
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Ok(Pass {
                status: Some(status),
                capacity: Some(capacity),
                ..
            }) => write!(
                f,
                "ok: status {status}, capacity {:.0}% in {} ms",
                capacity.get() * 100.0,
                self.latency.as_millis()
            ),
            Ok(Pass {
                status: Some(status),
                ..
            }) => {
                write!(f, "ok: status {status} in {} ms", self.latency.as_millis())
            }
            Ok(Pass { status: None, .. }) => {
                write!(f, "ok: connected in {} ms", self.latency.as_millis())
            }
            Err(failure) => write!(f, "failed after {} ms: {failure}", self.latency.as_millis()),
        }
    }
}
