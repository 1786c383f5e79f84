//! Meridian: a global server load balancing authoritative DNS server.
//!
//! Bird's-eye view (see ARCHITECTURE.md for the whole map):
//!
//! - [`admin`]: operator overrides, drills and their reports.
//! - [`balancer`]: the embedded L7 balancer's pure balancing algorithms.
//! - [`config`]: the operator's TOML file, validated into typed values with `file:line` errors.
//! - [`zone`]: master files parsed, checked and pre-rendered into wire-ready record sets.
//! - [`snapshot`]: the immutable bundle the query path reads, built whole or not at all.
//! - [`dns`]: wire parsing, the answer engine, and the UDP and TCP serving loops.
//! - [`geo`]: geo sources and compiled maps for steering by client location.
//! - [`health`]: probes of each region's load balancer and the rise/fall state machine.
//! - [`policy`]: the pure choice of which region answers a GSLB name.
//! - [`telemetry`]: pre-registered counters and their Prometheus rendering.
//! - [`server`]: binding, starting, reloading and stopping the serving loops.
//! - [`cli`]: the `meridian` command.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod balancer;
pub mod cli;
pub mod config;
pub mod demo;
pub mod dns;
pub mod geo;
pub mod health;
pub mod notify;
pub mod policy;
pub mod server;
pub mod snapshot;
pub mod telemetry;
pub mod zone;
