//! The set of zones served, loaded from a zones directory, and the zone-finding step of a query.

use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;
use rustc_hash::FxHashMap;

use super::{Warning, Zone, ZoneError, parent_of, parse};

/// File name suffix that marks a zone file; the rest of the file name is the origin.
const ZONE_SUFFIX: &str = ".zone";

/// All zones served, by lowercase wire apex.
#[derive(Debug, Default)]
pub struct ZoneSet {
    /// Zones by apex.
    zones: FxHashMap<Box<[u8]>, Zone>,
    /// Shortest apex in labels, so lookups skip suffixes that cannot match.
    min_labels: usize,
}

impl ZoneSet {
    /// Builds a set from zones with distinct apexes.
    pub fn new(zones: Vec<Zone>) -> ZoneSet {
        let min_labels = zones
            .iter()
            .map(|zone| zone.origin().num_labels() as usize)
            .min()
            .unwrap_or(0);
        let zones = zones
            .into_iter()
            .map(|zone| (zone.apex().into(), zone))
            .collect();
        ZoneSet { zones, min_labels }
    }

    /// The zone with the longest apex that `name` (lowercase wire) is at or below, and the byte
    /// offset in `name` where that apex starts.
    pub fn find(&self, name: &[u8]) -> Option<(&Zone, usize)> {
        let mut labels = count_labels(name);
        let mut offset = 0;
        let mut current = Some(name);
        while let Some(suffix) = current {
            if labels < self.min_labels {
                return None;
            }
            if let Some(zone) = self.zones.get(suffix) {
                return Some((zone, offset));
            }
            let next = parent_of(suffix)?;
            offset += suffix.len() - next.len();
            labels = labels.saturating_sub(1);
            current = Some(next);
        }
        None
    }

    /// The zones, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.zones.values()
    }

    /// Number of zones.
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// Whether no zone is served.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }
}

/// Number of labels in a wire name, not counting the root.
fn count_labels(name: &[u8]) -> usize {
    let mut count = 0;
    let mut current = name;
    while let Some(next) = parent_of(current) {
        count += 1;
        current = next;
    }
    count
}

/// Loads every `*.zone` file in `dir`: origin = file name minus `.zone`.
///
/// Subdirectories and other files are ignored (keep `$INCLUDE` files there). Errors of all zones
/// are collected, so `meridian check` can report them in one run.
pub fn load_zones(dir: &Path) -> Result<(ZoneSet, Vec<Warning>), Vec<ZoneError>> {
    let dir_error = |message: String| {
        vec![ZoneError::File {
            path: dir.to_path_buf(),
            message,
        }]
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|err| dir_error(format!("cannot read zones directory: {err}")))?;
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|err| dir_error(format!("cannot read zones directory: {err}")))?;
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        let Some(origin) = file_name.strip_suffix(ZONE_SUFFIX) else {
            continue;
        };
        if origin.is_empty() || !path.is_file() {
            continue;
        }
        files.push((path.clone(), origin.to_string()));
    }
    files.sort();
    if files.is_empty() {
        return Err(dir_error(format!(
            "no zone files: add one file per zone named after its origin, e.g. example.com{ZONE_SUFFIX}"
        )));
    }

    let mut zones: Vec<Zone> = Vec::new();
    let mut sources: FxHashMap<Box<[u8]>, PathBuf> = FxHashMap::default();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for (path, origin_text) in files {
        let origin = match Name::from_ascii(&origin_text).map(|name| name.to_lowercase()) {
            Ok(mut name) => {
                name.set_fqdn(true);
                name
            }
            Err(err) => {
                errors.push(ZoneError::File {
                    path,
                    message: format!("{origin_text:?} is not a valid zone name: {err}"),
                });
                continue;
            }
        };
        let apex: Box<[u8]> = super::wire_name(&origin).into();
        if let Some(previous) = sources.get(&apex) {
            errors.push(ZoneError::File {
                path,
                message: format!("zone {origin} is also defined by {}", previous.display()),
            });
            continue;
        }
        sources.insert(apex, path.clone());
        let built = parse::parse_zone_file(&path, &origin, dir)
            .map_err(ZoneError::from)
            .and_then(|records| Zone::build(&origin, &path, records));
        match built {
            Ok((zone, zone_warnings)) => {
                zones.push(zone);
                warnings.extend(zone_warnings);
            }
            Err(err) => errors.push(err),
        }
    }
    if errors.is_empty() {
        Ok((ZoneSet::new(zones), warnings))
    } else {
        Err(errors)
    }
}
