//! The integration test binary: real servers on loopback port 0, spoken to over real sockets.

mod admin;
mod balancer;
mod cli;
mod conformance;
mod dashboard;
mod demo;
mod deploy;
mod docs;
mod geo;
mod geodata;
mod harness;
mod health;
mod http1;
mod interop;
mod reload;
