//! Operator control: overrides of regions, failover drills, and the errors the admin API
//! reports for them.
//!
//! - [`overrides`]: drain, maintenance, force up/down, and how they combine with observation.
//! - [`drill`]: drills and their measured timelines.
//! - [`explain`]: what a client gets for a name and why, through the data plane's own functions.
//! - [`api`]: the admin HTTP API over all of the above, plus status, metrics and reload.
//! - [`client`]: the API's client, which the `meridian` operator commands use.
//!
//! The book of overrides and drills lives inside the health monitor, which combines it with
//! observed health into the published view; see `health::monitor`.

pub mod api;
pub mod client;
pub mod drill;
pub mod explain;
pub mod overrides;
pub mod site;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use self::drill::Drill;
use self::overrides::Override;

/// Every operator decision in force, with a revision for compare-and-set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Book {
    /// Format version of the state file.
    pub version: u32,
    /// Bumped by every change; a request may name the revision it expects.
    pub revision: u64,
    /// Override per region name.
    pub overrides: BTreeMap<String, Override>,
    /// Drills, oldest first (the most recent [`KEEP_DRILLS`] are kept).
    pub drills: Vec<Drill>,
    /// The id the next drill gets.
    pub next_drill: u64,
    /// Backends of the L7 balancers drained by hand, per balancer: they stay drained across
    /// restarts and reloads until undrained.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backend_drains: BTreeMap<String, BTreeSet<SocketAddr>>,
}

/// Current state file format.
pub const BOOK_VERSION: u32 = 1;

/// How many finished drills are kept for their reports.
pub const KEEP_DRILLS: usize = 50;

/// Why an operator request was refused. Each has a stable [`AdminError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// No region has that name.
    #[error("unknown region {name:?} (known regions: {})", known.join(", "))]
    UnknownRegion {
        /// The name asked for.
        name: String,
        /// The regions that exist.
        known: Vec<String>,
    },
    /// No drill has that id.
    #[error("unknown drill {0}")]
    UnknownDrill(u64),
    /// No service has that name.
    #[error("unknown service {0:?}")]
    UnknownService(String),
    /// The request named a revision that is no longer current.
    #[error("revision {expected} is stale: the current revision is {actual}; re-read and retry")]
    Conflict {
        /// The revision the request expected.
        expected: u64,
        /// The current one.
        actual: u64,
    },
    /// The region already has a drill running.
    #[error("region {region} already has drill {id} running; abort it first")]
    DrillRunning {
        /// The region.
        region: String,
        /// The running drill.
        id: u64,
    },
    /// The other regions cannot take the drilled region's load.
    #[error(
        "the other up regions have capacity {remaining}, less than {region}'s {needed}: the drill could \
         overload them (pass force to run it anyway)"
    )]
    Capacity {
        /// The region.
        region: String,
        /// Its capacity.
        needed: u64,
        /// The capacity of the other regions that are up.
        remaining: u64,
    },
    /// The region carries an operator override; a drill's rollback would lift it.
    #[error(
        "{region} has a {action} override (set by {who}: {reason}); clear it before drilling the \
         region, or the drill's rollback would lift it"
    )]
    OverrideInForce {
        /// The region.
        region: String,
        /// The override's action.
        action: &'static str,
        /// Who set it.
        who: String,
        /// Why.
        reason: String,
    },
    /// The drill is not running any more.
    #[error("drill {0} is not running")]
    DrillOver(u64),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The service does not use manual failback.
    #[error("service {0:?} does not use failback = \"manual\"")]
    NotManual(String),
    /// No balancer has that name.
    #[error("unknown balancer {name:?} (known balancers: {})", known.join(", "))]
    UnknownBalancer {
        /// The name asked for.
        name: String,
        /// The balancers that exist.
        known: Vec<String>,
    },
    /// The balancer has no backend at that address.
    #[error("balancer {balancer} has no backend {backend}")]
    UnknownBackend {
        /// The balancer.
        balancer: String,
        /// The address asked for.
        backend: String,
    },
}

impl AdminError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::UnknownRegion { .. } => "unknown_region",
            AdminError::UnknownDrill(_) => "unknown_drill",
            AdminError::UnknownService(_) => "unknown_service",
            AdminError::Conflict { .. } => "conflict",
            AdminError::DrillRunning { .. } => "drill_running",
            AdminError::Capacity { .. } => "capacity",
            AdminError::DrillOver(_) => "drill_over",
            AdminError::OverrideInForce { .. } => "override_in_force",
            AdminError::BadRequest(_) => "bad_request",
            AdminError::NotManual(_) => "not_manual",
            AdminError::UnknownBalancer { .. } => "unknown_balancer",
            AdminError::UnknownBackend { .. } => "unknown_backend",
        }
    }

    /// The HTTP status that goes with it.
    pub fn status(&self) -> u16 {
        match self {
            AdminError::UnknownRegion { .. }
            | AdminError::UnknownDrill(_)
            | AdminError::UnknownService(_)
            | AdminError::UnknownBalancer { .. }
            | AdminError::UnknownBackend { .. } => 404,
            AdminError::Conflict { .. }
            | AdminError::DrillRunning { .. }
            | AdminError::Capacity { .. }
            | AdminError::DrillOver(_)
            | AdminError::OverrideInForce { .. }
            | AdminError::NotManual(_) => 409,
            AdminError::BadRequest(_) => 400,
        }
    }
}
