//! Geo data sources: MaxMind DB files (City/Country and ASN models) and the nets override CSV.
//!
//! Sources are read once per load, to compile maps; the query path never touches them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use maxminddb::{MaxMindDbError, Reader, WithinOptions};
use rustc_hash::FxHashMap;
use serde::Deserialize;

/// A geo source that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file is missing, unreadable or not a MaxMind DB.
    #[error("{}: cannot open GeoIP database: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What the reader said.
        #[source]
        source: MaxMindDbError,
    },
    /// The file opened but its contents could not be read.
    #[error("{}: corrupt GeoIP database: {message}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The database is of a model Meridian cannot use.
    #[error(
        "{}: database type {database_type:?} is neither a City/Country nor an ASN database",
        path.display()
    )]
    UnknownType {
        /// The database file.
        path: PathBuf,
        /// The `database_type` from its metadata.
        database_type: String,
    },
    /// A line of a CSV location source is wrong.
    #[error(transparent)]
    Csv(#[from] super::build_input::InputError),
    /// A line of the nets CSV is wrong.
    #[error("{}:{line}: {message}", path.display())]
    Nets {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Where a client is, as far as a City or Country database says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    /// Continent code, e.g. `EU`.
    pub continent: Option<Box<str>>,
    /// ISO 3166-1 country code, e.g. `GB`.
    pub country: Option<Box<str>>,
    /// First-level ISO 3166-2 subdivision code without the country, e.g. `ENG`.
    pub subdivision: Option<Box<str>>,
    /// City name in English, lowercase.
    pub city: Option<Box<str>>,
    /// Latitude and longitude in degrees.
    pub coordinates: Option<(f64, f64)>,
}

/// Which kind of records a database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// City or Country model: where networks are.
    Location,
    /// ASN model: who routes networks.
    Asn,
}

/// An open geo database: a MaxMind DB file, or a CSV of locations (RFC 8805 geofeed or
/// Meridian's locations CSV, see [`super::build_input`]).
pub struct Database {
    /// Where it was read from.
    path: PathBuf,
    /// What holds the data.
    backend: Backend,
    /// Its model.
    kind: DatabaseKind,
}

/// Where a database's data lives.
enum Backend {
    /// A MaxMind DB reader over the file's bytes.
    Mmdb(Reader<Vec<u8>>),
    /// CSV records, least specific first, with their locations.
    Csv(Vec<(IpNet, Location)>),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .finish()
    }
}

/// The parts of a City or Country record that maps use.
#[derive(Deserialize)]
struct LocationRecord<'a> {
    /// `continent.code`.
    #[serde(borrow)]
    continent: Option<Code<'a>>,
    /// `country.iso_code`.
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    /// `subdivisions[].iso_code`.
    #[serde(borrow)]
    subdivisions: Option<Vec<IsoCode<'a>>>,
    /// `city.names.en`.
    #[serde(borrow)]
    city: Option<Names<'a>>,
    /// `location.latitude`, `location.longitude`.
    location: Option<Coordinates>,
}

/// `{ "code": "EU" }`.
#[derive(Deserialize)]
struct Code<'a> {
    /// The code.
    code: Option<&'a str>,
}

/// `{ "iso_code": "GB" }`.
#[derive(Deserialize)]
struct IsoCode<'a> {
    /// The code.
    iso_code: Option<&'a str>,
}

/// `{ "names": { "en": "London" } }`.
#[derive(Deserialize)]
struct Names<'a> {
    /// Names by language.
    #[serde(borrow)]
    names: Option<EnglishName<'a>>,
}

/// `{ "en": "London" }`.
#[derive(Deserialize)]
struct EnglishName<'a> {
    /// The English name.
    en: Option<&'a str>,
}

/// `{ "latitude": 51.5, "longitude": -0.1 }`.
#[derive(Deserialize)]
struct Coordinates {
    /// Degrees north.
    latitude: Option<f64>,
    /// Degrees east.
    longitude: Option<f64>,
}

/// The part of an ASN record that maps use.
#[derive(Deserialize)]
struct AsnRecord {
    /// `autonomous_system_number`.
    autonomous_system_number: Option<u32>,
}

impl LocationRecord<'_> {
    /// The owned location this record describes.
    fn to_location(&self) -> Location {
        let text = |value: Option<&str>| value.filter(|text| !text.is_empty()).map(Box::from);
        Location {
            continent: text(self.continent.as_ref().and_then(|code| code.code)),
            country: text(self.country.as_ref().and_then(|code| code.iso_code)),
            subdivision: text(
                self.subdivisions
                    .as_ref()
                    .and_then(|list| list.first())
                    .and_then(|code| code.iso_code),
            ),
            city: self
                .city
                .as_ref()
                .and_then(|city| city.names.as_ref())
                .and_then(|names| names.en)
                .filter(|name| !name.is_empty())
                .map(|name| name.to_lowercase().into_boxed_str()),
            coordinates: self
                .location
                .as_ref()
                .and_then(|location| Some((location.latitude?, location.longitude?))),
        }
    }
}

impl Database {
    /// Opens `path` and works out its model from the metadata's `database_type`.
    pub fn open(path: &Path) -> Result<Database, GeoError> {
        if path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("csv"))
        {
            return Database::open_csv(path);
        }
        let reader = Reader::open_readfile(path).map_err(|source| GeoError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let database_type = reader.metadata().database_type.clone();
        let kind = if database_type.contains("ASN") {
            DatabaseKind::Asn
        } else if database_type.contains("City") || database_type.contains("Country") {
            DatabaseKind::Location
        } else {
            return Err(GeoError::UnknownType {
                path: path.to_path_buf(),
                database_type,
            });
        };
        Ok(Database {
            path: path.to_path_buf(),
            backend: Backend::Mmdb(reader),
            kind,
        })
    }

    /// Reads a geofeed or locations CSV as a location source.
    fn open_csv(path: &Path) -> Result<Database, GeoError> {
        use super::build::{Format, detect};
        use super::build_input::{read_geofeed, read_nets_csv};
        let text = std::fs::read_to_string(path).map_err(|err| GeoError::Corrupt {
            path: path.to_path_buf(),
            message: format!("cannot read location CSV: {err}"),
        })?;
        let records = match detect(&text) {
            Format::Locations => read_nets_csv(&text, path)?,
            Format::Geofeed => read_geofeed(&text, path)?,
        };
        let mut located: Vec<(IpNet, Location)> = records
            .into_iter()
            .map(|record| {
                let location = Location {
                    continent: record.continent.map(String::into_boxed_str),
                    country: record.country.map(String::into_boxed_str),
                    subdivision: record.subdivision.map(String::into_boxed_str),
                    city: record.city.map(|city| city.to_lowercase().into_boxed_str()),
                    coordinates: record.latitude.zip(record.longitude),
                };
                (record.network, location)
            })
            .collect();
        located.sort_by_key(|(network, _)| network.prefix_len());
        Ok(Database {
            path: path.to_path_buf(),
            backend: Backend::Csv(located),
            kind: DatabaseKind::Location,
        })
    }

    /// Whether its networks never overlap (true of MaxMind DB files, not of CSV sources).
    pub fn disjoint(&self) -> bool {
        matches!(self.backend, Backend::Mmdb(_))
    }

    /// The MaxMind DB reader, for operations only MMDB files support.
    fn reader(&self) -> Result<&Reader<Vec<u8>>, GeoError> {
        match &self.backend {
            Backend::Mmdb(reader) => Ok(reader),
            Backend::Csv(_) => Err(self.corrupt("a CSV location source holds no AS numbers")),
        }
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its model.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// A corrupt-database error with `message`.
    fn corrupt(&self, message: impl std::fmt::Display) -> GeoError {
        GeoError::Corrupt {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    /// Calls `visit` with every network that has a location, the location's index among the
    /// distinct locations, and the location. Each distinct record is decoded once, however many
    /// networks share it, and indices count up from 0 in order of first appearance. Returns the
    /// number of distinct locations.
    pub fn locations(
        &self,
        mut visit: impl FnMut(IpNet, u32, &Location),
    ) -> Result<usize, GeoError> {
        if let Backend::Csv(records) = &self.backend {
            // Least specific first: a caller painting in this order gets most-specific-wins.
            for (index, (network, location)) in records.iter().enumerate() {
                visit(*network, index as u32, location);
            }
            return Ok(records.len());
        }
        let reader = self.reader()?;
        let mut locations: Vec<Location> = Vec::new();
        let mut by_offset: FxHashMap<usize, u32> = FxHashMap::default();
        for result in reader
            .networks(WithinOptions::default())
            .map_err(|err| self.corrupt(err))?
        {
            let lookup = result.map_err(|err| self.corrupt(err))?;
            let network = convert(lookup.network().map_err(|err| self.corrupt(err))?);
            let cached = lookup
                .offset()
                .and_then(|offset| by_offset.get(&offset).copied());
            let index = match cached {
                Some(index) => index,
                None => {
                    let Some(record) = lookup
                        .decode::<LocationRecord<'_>>()
                        .map_err(|err| self.corrupt(err))?
                    else {
                        continue;
                    };
                    let index = locations.len() as u32;
                    locations.push(record.to_location());
                    if let Some(offset) = lookup.offset() {
                        by_offset.insert(offset, index);
                    }
                    index
                }
            };
            visit(network, index, &locations[index as usize]);
        }
        Ok(locations.len())
    }

    /// Calls `visit` with every network that has an AS number.
    pub fn asns(&self, mut visit: impl FnMut(IpNet, u32)) -> Result<(), GeoError> {
        let mut by_offset: FxHashMap<usize, Option<u32>> = FxHashMap::default();
        for result in self
            .reader()?
            .networks(WithinOptions::default())
            .map_err(|err| self.corrupt(err))?
        {
            let lookup = result.map_err(|err| self.corrupt(err))?;
            let network = convert(lookup.network().map_err(|err| self.corrupt(err))?);
            let cached = lookup
                .offset()
                .and_then(|offset| by_offset.get(&offset).copied());
            let asn = match cached {
                Some(asn) => asn,
                None => {
                    let asn = lookup
                        .decode::<AsnRecord>()
                        .map_err(|err| self.corrupt(err))?
                        .and_then(|record| record.autonomous_system_number);
                    if let Some(offset) = lookup.offset() {
                        by_offset.insert(offset, asn);
                    }
                    asn
                }
            };
            if let Some(asn) = asn {
                visit(network, asn);
            }
        }
        Ok(())
    }

    /// The location of `addr` and the network it was found in, if the database has one.
    pub fn locate(&self, addr: IpAddr) -> Result<Option<(Location, IpNet)>, GeoError> {
        if let Backend::Csv(records) = &self.backend {
            let found = records
                .iter()
                .rev()
                .find(|(network, _)| network.contains(&addr));
            return Ok(found.map(|(network, location)| (location.clone(), *network)));
        }
        let lookup = self
            .reader()?
            .lookup(addr)
            .map_err(|err| self.corrupt(err))?;
        let network = convert(lookup.network().map_err(|err| self.corrupt(err))?);
        let record = lookup
            .decode::<LocationRecord<'_>>()
            .map_err(|err| self.corrupt(err))?;
        Ok(record.map(|record| (record.to_location(), network)))
    }

    /// The AS number of `addr` and the network it was found in, if the database has one.
    pub fn asn(&self, addr: IpAddr) -> Result<Option<(u32, IpNet)>, GeoError> {
        let lookup = self
            .reader()?
            .lookup(addr)
            .map_err(|err| self.corrupt(err))?;
        let network = convert(lookup.network().map_err(|err| self.corrupt(err))?);
        let record = lookup
            .decode::<AsnRecord>()
            .map_err(|err| self.corrupt(err))?;
        Ok(record
            .and_then(|record| record.autonomous_system_number)
            .map(|asn| (asn, network)))
    }
}

/// Converts the reader's network type, mapping IPv4 networks stored under `::/96` back to IPv4.
fn convert(network: ipnetwork::IpNetwork) -> IpNet {
    match network {
        ipnetwork::IpNetwork::V4(net) => {
            IpNet::V4(ipnet::Ipv4Net::new(net.network(), net.prefix()).unwrap_or_default())
        }
        ipnetwork::IpNetwork::V6(net) => {
            let bits = u128::from(net.network());
            if net.prefix() >= 96 && bits >> 32 == 0 {
                let v4 = std::net::Ipv4Addr::from(bits as u32);
                return IpNet::V4(ipnet::Ipv4Net::new(v4, net.prefix() - 96).unwrap_or_default());
            }
            IpNet::V6(ipnet::Ipv6Net::new(net.network(), net.prefix()).unwrap_or_default())
        }
    }
}

/// One line of the nets CSV: a network and the regions its clients go to, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetsRule {
    /// The network.
    pub network: IpNet,
    /// Region names, as written.
    pub regions: Vec<String>,
    /// 1-based line, for errors found later (unknown region names).
    pub line: usize,
}

/// Reads the nets CSV: `network,region region ...` per line; `#` comments and blank lines allowed.
pub fn read_nets(path: &Path) -> Result<Vec<NetsRule>, GeoError> {
    let text = std::fs::read_to_string(path).map_err(|err| GeoError::Nets {
        path: path.to_path_buf(),
        line: 0,
        message: format!("cannot read nets file: {err}"),
    })?;
    parse_nets(&text, path)
}

/// Parses nets CSV `text` as if read from `path`.
pub fn parse_nets(text: &str, path: &Path) -> Result<Vec<NetsRule>, GeoError> {
    let mut rules: Vec<NetsRule> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let error = |message: String| GeoError::Nets {
            path: path.to_path_buf(),
            line,
            message,
        };
        let content = raw.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let Some((network, regions)) = content.split_once(',') else {
            return Err(error(
                "expected network,region [region ...], e.g. 192.0.2.0/24,eu-west us-east".into(),
            ));
        };
        let network: IpNet = network.trim().parse().map_err(|_| {
            error(format!(
                "{:?} is not a network in CIDR notation",
                network.trim()
            ))
        })?;
        if network.trunc() != network {
            return Err(error(format!(
                "{network} has host bits set: write {}",
                network.trunc()
            )));
        }
        let regions: Vec<String> = regions.split_whitespace().map(str::to_string).collect();
        if regions.is_empty() {
            return Err(error(format!("{network} names no region")));
        }
        if let Some(previous) = rules.iter().find(|rule| rule.network == network) {
            return Err(error(format!(
                "{network} is already listed on line {}",
                previous.line
            )));
        }
        rules.push(NetsRule {
            network,
            regions,
            line,
        });
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets_csv_is_read_with_comments() {
        let rules = parse_nets(
            "# overrides\n192.0.2.0/24, eu-west us-east  # office\n\n2001:db8::/32,ap-south\n",
            Path::new("nets.csv"),
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].network.to_string(), "192.0.2.0/24");
        assert_eq!(rules[0].regions, ["eu-west", "us-east"]);
        assert_eq!(rules[0].line, 2);
        assert_eq!(rules[1].regions, ["ap-south"]);
    }

    #[test]
    fn nets_csv_errors_name_the_line() {
        let check = |text: &str, expect: &str| {
            assert_eq!(
                parse_nets(text, Path::new("nets.csv"))
                    .unwrap_err()
                    .to_string(),
                expect
            );
        };
        check(
            "\n192.0.2.0/24\n",
            "nets.csv:2: expected network,region [region ...], e.g. 192.0.2.0/24,eu-west us-east",
        );
        check(
            "192.0.2/24,a\n",
            "nets.csv:1: \"192.0.2/24\" is not a network in CIDR notation",
        );
        check(
            "192.0.2.1/24,a\n",
            "nets.csv:1: 192.0.2.1/24 has host bits set: write 192.0.2.0/24",
        );
        check(
            "192.0.2.0/24,\n",
            "nets.csv:1: 192.0.2.0/24 names no region",
        );
        check(
            "10.0.0.0/8,a\n10.0.0.0/8,b\n",
            "nets.csv:2: 10.0.0.0/8 is already listed on line 1",
        );
    }

    #[test]
    fn ipv4_networks_inside_ipv6_are_mapped_back() {
        let net = ipnetwork::IpNetwork::V6("::5102:4500/120".parse().unwrap());
        assert_eq!(convert(net).to_string(), "81.2.69.0/24");
        let net = ipnetwork::IpNetwork::V6("2a02:d180::/29".parse().unwrap());
        assert_eq!(convert(net).to_string(), "2a02:d180::/29");
        let net = ipnetwork::IpNetwork::V6("::/64".parse().unwrap());
        assert_eq!(convert(net).to_string(), "::/64");
    }

    #[test]
    fn missing_database_is_a_clear_error() {
        let err = Database::open(Path::new("/nonexistent/City.mmdb"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/nonexistent/City.mmdb: cannot open GeoIP database:"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.mmdb");
        std::fs::write(&path, b"not a database at all").unwrap();
        let err = Database::open(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: cannot open GeoIP database:", path.display())),
            "{err}"
        );
    }
}
