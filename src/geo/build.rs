//! `meridian geo build`: a MaxMind DB file from a locations CSV or an RFC 8805 geofeed.
//!
//! The output has the shape of a GeoIP2 City database (continent, country, subdivisions, city,
//! location, and the AS number where given), so Meridian and any MaxMind-compatible reader can
//! use it. The project's own tests build their databases this way.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::build_input::{InputError, LocationRecord, read_geofeed, read_nets_csv, to_value};
use super::mmdb_write::{WriteError, Writer};

/// The database type written into the metadata; it contains "City", which marks a location
/// database for Meridian and other readers.
pub const DATABASE_TYPE: &str = "Meridian-City";

/// Which input format to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Meridian's CSV: `network,continent,country,subdivision,city,latitude,longitude,asn`.
    Locations,
    /// RFC 8805: `prefix,country,region,city,postal`.
    Geofeed,
}

/// A database that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The input could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The input file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The input has a bad line.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The database could not be encoded.
    #[error("{}: {source}", path.display())]
    Write {
        /// The output file.
        path: PathBuf,
        /// What the writer said.
        #[source]
        source: WriteError,
    },
    /// The output could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Save {
        /// The output file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// What a build wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildSummary {
    /// Networks written.
    pub networks: usize,
    /// Bytes of the output file.
    pub bytes: usize,
}

/// Guesses the format of `text`: a `network,...` header marks a locations CSV; RFC 8805
/// geofeeds have no header.
pub fn detect(text: &str) -> Format {
    let first = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'));
    match first {
        Some(line) if line.to_ascii_lowercase().starts_with("network,") => Format::Locations,
        _ => Format::Geofeed,
    }
}

/// Reads `input` (in `format`, or detected when `None`) and writes a database to `output`.
///
/// The output is written to a temporary file beside it and renamed into place, so a reader
/// never sees a half-written database.
pub fn build(
    input: &Path,
    output: &Path,
    format: Option<Format>,
) -> Result<BuildSummary, BuildError> {
    let text = std::fs::read_to_string(input).map_err(|source| BuildError::Read {
        path: input.to_path_buf(),
        source,
    })?;
    let records = match format.unwrap_or_else(|| detect(&text)) {
        Format::Locations => read_nets_csv(&text, input)?,
        Format::Geofeed => read_geofeed(&text, input)?,
    };
    let bytes = encode(&records, input).map_err(|source| BuildError::Write {
        path: output.to_path_buf(),
        source,
    })?;
    let temporary = output.with_extension("mmdb.tmp");
    std::fs::write(&temporary, &bytes)
        .and_then(|()| std::fs::rename(&temporary, output))
        .map_err(|source| {
            let _ = std::fs::remove_file(&temporary);
            BuildError::Save {
                path: output.to_path_buf(),
                source,
            }
        })?;
    Ok(BuildSummary {
        networks: records.len(),
        bytes: bytes.len(),
    })
}

/// Encodes `records` as a database; more specific networks win over less specific ones.
pub fn encode(records: &[LocationRecord], source: &Path) -> Result<Vec<u8>, WriteError> {
    let mut writer = Writer::new(DATABASE_TYPE);
    writer.description(&format!(
        "Built by meridian geo build from {}",
        source.display()
    ));
    let mut ordered: Vec<&LocationRecord> = records.iter().collect();
    // The writer lets later inserts override earlier ones inside their network: insert in order
    // of specificity, counting IPv4 as the ::/96 subtree it is stored in.
    ordered.sort_by_key(|record| (specificity(record.network), network_key(record.network)));
    for record in ordered {
        writer.insert(record.network, to_value(record))?;
    }
    writer.to_bytes()
}

/// Prefix length in the writer's IPv6 tree.
fn specificity(network: IpNet) -> u8 {
    match network {
        IpNet::V4(v4) => 96 + v4.prefix_len(),
        IpNet::V6(v6) => v6.prefix_len(),
    }
}

/// A total order on networks of equal specificity.
fn network_key(network: IpNet) -> (u8, u128) {
    match network.network() {
        IpAddr::V4(v4) => (4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (6, u128::from(v6)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::source::{Database, DatabaseKind};

    #[test]
    fn formats_are_detected() {
        assert_eq!(
            detect("# comment\nnetwork,continent,country\n"),
            Format::Locations
        );
        assert_eq!(detect("NETWORK,country\n"), Format::Locations);
        assert_eq!(detect("192.0.2.0/24,US,US-WA,Seattle,\n"), Format::Geofeed);
        assert_eq!(detect(""), Format::Geofeed);
    }

    #[test]
    fn built_database_reads_back_through_meridian() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("locations.csv");
        std::fs::write(
            &input,
            "network,continent,country,subdivision,city,latitude,longitude,asn\n\
             81.2.69.0/24,EU,GB,ENG,London,51.5,-0.09,64500\n\
             81.2.69.128/25,,SE,,,59.3,18.1,\n\
             2a02:d180::/29,,DE,,,51.5,10.5,\n",
        )
        .unwrap();
        let output = dir.path().join("world.mmdb");
        let summary = build(&input, &output, None).unwrap();
        assert_eq!(summary.networks, 3);
        assert_eq!(
            summary.bytes,
            std::fs::metadata(&output).unwrap().len() as usize
        );
        let db = Database::open(&output).unwrap();
        assert_eq!(db.kind(), DatabaseKind::Location);
        let (london, network) = db.locate("81.2.69.1".parse().unwrap()).unwrap().unwrap();
        assert_eq!(network.to_string(), "81.2.69.0/25");
        assert_eq!(
            (
                london.continent.as_deref(),
                london.country.as_deref(),
                london.subdivision.as_deref()
            ),
            (Some("EU"), Some("GB"), Some("ENG"))
        );
        assert_eq!(london.city.as_deref(), Some("london"));
        // The more specific network wins; its continent is derived from the country.
        let (sweden, _) = db.locate("81.2.69.200".parse().unwrap()).unwrap().unwrap();
        assert_eq!(
            (sweden.continent.as_deref(), sweden.country.as_deref()),
            (Some("EU"), Some("SE"))
        );
        assert!(db.locate("8.8.8.8".parse().unwrap()).unwrap().is_none());
        let (germany, _) = db.locate("2a02:d180::1".parse().unwrap()).unwrap().unwrap();
        assert_eq!(germany.country.as_deref(), Some("DE"));
    }

    #[test]
    fn geofeed_builds_too() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("geofeed.csv");
        std::fs::write(
            &input,
            "# RFC 8805\n192.0.2.0/24,US,US-WA,Seattle,\n2001:db8::/32,JP,,,\n",
        )
        .unwrap();
        let output = dir.path().join("feed.mmdb");
        build(&input, &output, Some(Format::Geofeed)).unwrap();
        let db = Database::open(&output).unwrap();
        let (seattle, _) = db.locate("192.0.2.7".parse().unwrap()).unwrap().unwrap();
        assert_eq!(
            (
                seattle.continent.as_deref(),
                seattle.subdivision.as_deref(),
                seattle.city.as_deref()
            ),
            (Some("NA"), Some("WA"), Some("seattle"))
        );
    }

    #[test]
    fn bad_input_names_the_line_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("locations.csv");
        std::fs::write(
            &input,
            "network,continent,country,subdivision,city,latitude,longitude,asn\n\
             81.2.69.0/24,,GB,,,,,\n81.2.69.1/24,,GB,,,,,\n",
        )
        .unwrap();
        let output = dir.path().join("out.mmdb");
        let err = build(&input, &output, None).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:3:", input.display())), "{err}");
        assert!(!output.exists());
        let missing = build(&dir.path().join("missing.csv"), &output, None)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("missing.csv: cannot read"), "{missing}");
    }
}
