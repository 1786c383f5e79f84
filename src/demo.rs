//! `meridian demo`: a complete three-region set-up on loopback.

use std::process::ExitCode;

/// Options of `meridian demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

/// Runs the demo until interrupted.
pub fn run(_args: DemoArgs) -> ExitCode {
    eprintln!("meridian demo: not available yet");
    ExitCode::FAILURE
}
