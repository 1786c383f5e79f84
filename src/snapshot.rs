//! The immutable snapshot the query path reads, and how it is built from disk.
//!
//! Architecture invariant: a snapshot is only ever built whole, from a config and zones that all
//! validated; the server swaps it in atomically, so a query sees either the old data or the new,
//! never a mix and never a half-loaded zone.

use std::fmt;
use std::path::Path;

use crate::config::{Config, ConfigError};
use crate::zone::{Warning, ZoneError, ZoneSet, load_zones};

/// Everything a query needs to be answered.
#[derive(Debug)]
pub struct Snapshot {
    /// The zones served.
    pub zones: ZoneSet,
    /// Our EDNS UDP payload cap.
    pub max_udp_payload: u16,
}

/// A config and the snapshot built from it.
#[derive(Debug)]
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// The data to serve.
    pub snapshot: Snapshot,
    /// Things that load but look wrong.
    pub warnings: Vec<Warning>,
}

/// Why a config and its zones could not be loaded. Displays one `file:line: message` per line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// One or more zones are unusable.
    #[error("{}", ErrorLines(.0))]
    Zones(Vec<ZoneError>),
}

/// Formats errors one per line.
struct ErrorLines<'a>(&'a [ZoneError]);

impl fmt::Display for ErrorLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl LoadError {
    /// Each error as its own line of text.
    pub fn lines(&self) -> Vec<String> {
        self.to_string().lines().map(str::to_string).collect()
    }
}

/// Reads the config at `path` and everything it references. `serve`, `check` and reload all
/// call this, so they accept and reject exactly the same inputs.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let config = Config::load(path)?;
    let (snapshot, warnings) = Snapshot::build(&config)?;
    Ok(Loaded {
        config,
        snapshot,
        warnings,
    })
}

impl Snapshot {
    /// A snapshot serving `zones` with EDNS payload cap `max_udp_payload`.
    pub fn new(zones: ZoneSet, max_udp_payload: u16) -> Snapshot {
        Snapshot {
            zones,
            max_udp_payload,
        }
    }

    /// Builds the snapshot a validated config describes.
    pub fn build(config: &Config) -> Result<(Snapshot, Vec<Warning>), LoadError> {
        let (zones, warnings) = load_zones(&config.dns.zones_dir).map_err(LoadError::Zones)?;
        Ok((
            Snapshot {
                zones,
                max_udp_payload: config.dns.max_udp_payload,
            },
            warnings,
        ))
    }
}
