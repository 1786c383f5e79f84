//! Readers for the two CSV inputs of `meridian geo build`.
//!
//! * **nets CSV**, Meridian's own format, one network per line:
//!   `network,continent,country,subdivision,city,latitude,longitude,asn`.
//!   An optional header line with exactly those names may come first; `#`
//!   comment lines and blank lines are ignored; trailing fields may be left
//!   out and any field but `network` may be empty. The continent is derived
//!   from the country when empty; the subdivision is an ISO 3166-2
//!   subdivision code with or without its country prefix (`ENG` or
//!   `GB-ENG`); latitude and longitude come together; the ASN may carry an
//!   `AS` prefix.
//! * **geofeed** ([RFC 8805]): `prefix,country,region,city,postal`. The
//!   region is an ISO 3166-2 code such as `US-WA`, which must start with the
//!   country code; the subdivision is the part after the dash. The postal
//!   code (deprecated by the RFC) and any further fields are ignored; a line
//!   may hold only a prefix (a network with no location).
//!
//! Both formats share the CSV rules: fields are separated by commas, a field
//! may be double-quoted to hold commas (`"Washington, D.C."`, with `""` for a
//! quote), whitespace around fields is ignored, and a UTF-8 byte order mark
//! at the start is skipped. Networks must have their host bits clear; a bare
//! address counts as a host network (`/32` or `/128`). IPv4-mapped IPv6
//! prefixes (`::ffff:0:0/96` and inside) are refused in favour of their IPv4
//! form. Overlapping networks are fine (the database builder lets the more
//! specific one win), but the very same network twice is an error naming
//! both lines.
//!
//! [RFC 8805]: https://www.rfc-editor.org/rfc/rfc8805

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::mmdb_write::Value;

/// One network's location as the build inputs describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationRecord {
    /// The network (host bits clear).
    pub network: IpNet,
    /// Continent code: one of `AF AN AS EU NA OC SA`.
    pub continent: Option<String>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Option<String>,
    /// ISO 3166-2 subdivision code without the country prefix (`ENG`, `WA`).
    pub subdivision: Option<String>,
    /// City name.
    pub city: Option<String>,
    /// Latitude in degrees, -90 to 90.
    pub latitude: Option<f64>,
    /// Longitude in degrees, -180 to 180.
    pub longitude: Option<f64>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// 1-based line of the input this record came from.
    pub line: u32,
}

/// Errors from reading a build input; each names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A line that is not valid input.
    #[error("{}:{line}: {message}", file.display())]
    Invalid {
        /// The input file.
        file: PathBuf,
        /// 1-based line number.
        line: u32,
        /// What is wrong.
        message: String,
    },
    /// The same network appears on two lines.
    #[error(
        "{}:{line}: network {network} is already given on line {first_line}",
        file.display()
    )]
    DuplicateNetwork {
        /// The input file.
        file: PathBuf,
        /// 1-based line number of the repeat.
        line: u32,
        /// 1-based line number of the first occurrence.
        first_line: u32,
        /// The repeated network.
        network: IpNet,
    },
}

impl InputError {
    /// The 1-based line number the error is about.
    pub fn line(&self) -> u32 {
        match self {
            InputError::Invalid { line, .. } | InputError::DuplicateNetwork { line, .. } => *line,
        }
    }

    /// The input file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            InputError::Invalid { file, .. } | InputError::DuplicateNetwork { file, .. } => file,
        }
    }
}

/// Column names of the nets CSV, in order (also its optional header line).
const NETS_COLUMNS: [&str; 8] = [
    "network",
    "continent",
    "country",
    "subdivision",
    "city",
    "latitude",
    "longitude",
    "asn",
];

/// Valid continent codes.
const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// Reads Meridian's nets CSV (see the module docs for the format).
pub fn read_nets_csv(text: &str, file: &Path) -> Result<Vec<LocationRecord>, InputError> {
    let mut records = Vec::new();
    let mut seen = SeenNetworks::default();
    let mut first = true;
    for (line, content) in data_lines(text) {
        let invalid = |message: String| InputError::Invalid {
            file: file.to_owned(),
            line,
            message,
        };
        let fields = split_csv(content).map_err(invalid)?;
        let is_first = std::mem::replace(&mut first, false);
        if is_first
            && fields
                .first()
                .is_some_and(|f| f.eq_ignore_ascii_case(NETS_COLUMNS[0]))
        {
            let matches = fields.len() == NETS_COLUMNS.len()
                && fields
                    .iter()
                    .zip(NETS_COLUMNS)
                    .all(|(f, c)| f.eq_ignore_ascii_case(c));
            if !matches {
                return Err(invalid(format!(
                    "unexpected header; expected {}",
                    NETS_COLUMNS.join(",")
                )));
            }
            continue;
        }
        if fields.len() > NETS_COLUMNS.len() {
            return Err(invalid(format!(
                "{} fields, expected at most {} ({})",
                fields.len(),
                NETS_COLUMNS.len(),
                NETS_COLUMNS.join(",")
            )));
        }
        let field = |i: usize| fields.get(i).map_or("", String::as_str);
        let record = parse_nets_fields(field, line).map_err(invalid)?;
        seen.check(record.network, line, file)?;
        records.push(record);
    }
    Ok(records)
}

/// Builds a record from the nets CSV fields of one line.
fn parse_nets_fields<'a>(
    field: impl Fn(usize) -> &'a str,
    line: u32,
) -> Result<LocationRecord, String> {
    let network = parse_network(field(0))?;
    let country = parse_country(field(2))?;
    let continent = match parse_continent(field(1))? {
        Some(c) => Some(c),
        None => derived_continent(country.as_deref()),
    };
    let subdivision = match field(3) {
        "" => None,
        s => {
            let Some(country) = country.as_deref() else {
                return Err(format!("subdivision {s:?} given without a country"));
            };
            let code = match s.split_once('-') {
                Some((prefix, code)) if prefix.eq_ignore_ascii_case(country) => code,
                Some(_) => {
                    return Err(format!(
                        "subdivision {s:?} does not belong to country {country}"
                    ));
                }
                None => s,
            };
            Some(parse_subdivision_code(code).ok_or_else(|| {
                format!("invalid subdivision {s:?}: expected an ISO 3166-2 code like ENG or GB-ENG")
            })?)
        }
    };
    let city = non_empty(field(4));
    let (latitude, longitude) = parse_coordinates(field(5), field(6))?;
    let asn = parse_asn(field(7))?;
    Ok(LocationRecord {
        network,
        continent,
        country,
        subdivision,
        city,
        latitude,
        longitude,
        asn,
        line,
    })
}

/// Reads an RFC 8805 geofeed (see the module docs for the format).
pub fn read_geofeed(text: &str, file: &Path) -> Result<Vec<LocationRecord>, InputError> {
    let mut records = Vec::new();
    let mut seen = SeenNetworks::default();
    for (line, content) in data_lines(text) {
        let invalid = |message: String| InputError::Invalid {
            file: file.to_owned(),
            line,
            message,
        };
        let fields = split_csv(content).map_err(invalid)?;
        let field = |i: usize| fields.get(i).map_or("", String::as_str);
        let record = parse_geofeed_fields(field, line).map_err(invalid)?;
        seen.check(record.network, line, file)?;
        records.push(record);
    }
    Ok(records)
}

/// Builds a record from the geofeed fields of one line.
fn parse_geofeed_fields<'a>(
    field: impl Fn(usize) -> &'a str,
    line: u32,
) -> Result<LocationRecord, String> {
    let network = parse_network(field(0))?;
    let country = parse_country(field(1))?;
    let subdivision = match field(2) {
        "" => None,
        region => {
            let Some(country) = country.as_deref() else {
                return Err(format!("region {region:?} given without a country"));
            };
            let Some((prefix, code)) = region.split_once('-') else {
                return Err(format!(
                    "invalid region {region:?}: expected an ISO 3166-2 code like {country}-XX"
                ));
            };
            if !prefix.eq_ignore_ascii_case(country) {
                return Err(format!(
                    "region {region:?} does not start with the country code {country}"
                ));
            }
            Some(parse_subdivision_code(code).ok_or_else(|| {
                format!("invalid region {region:?}: expected an ISO 3166-2 code like {country}-XX")
            })?)
        }
    };
    Ok(LocationRecord {
        network,
        continent: derived_continent(country.as_deref()),
        country,
        subdivision,
        city: non_empty(field(3)),
        latitude: None,
        longitude: None,
        asn: None,
        line,
    })
}

/// The GeoIP2-City-shaped value for a record; absent parts are omitted:
/// `{"continent": {"code"}, "country": {"iso_code"}, "subdivisions":
/// [{"iso_code"}], "city": {"names": {"en"}}, "location": {"latitude",
/// "longitude"}, "autonomous_system_number"}`.
pub fn to_value(record: &LocationRecord) -> Value {
    /// A one-entry map.
    fn map1(key: &str, value: Value) -> Value {
        Value::Map(vec![(key.to_owned(), value)])
    }
    let mut entries: Vec<(String, Value)> = Vec::new();
    if let Some(continent) = &record.continent {
        entries.push((
            "continent".into(),
            map1("code", Value::String(continent.clone())),
        ));
    }
    if let Some(country) = &record.country {
        entries.push((
            "country".into(),
            map1("iso_code", Value::String(country.clone())),
        ));
    }
    if let Some(subdivision) = &record.subdivision {
        entries.push((
            "subdivisions".into(),
            Value::Array(vec![map1("iso_code", Value::String(subdivision.clone()))]),
        ));
    }
    if let Some(city) = &record.city {
        entries.push((
            "city".into(),
            map1("names", map1("en", Value::String(city.clone()))),
        ));
    }
    let mut location = Vec::new();
    if let Some(latitude) = record.latitude {
        location.push(("latitude".to_owned(), Value::Double(latitude)));
    }
    if let Some(longitude) = record.longitude {
        location.push(("longitude".to_owned(), Value::Double(longitude)));
    }
    if !location.is_empty() {
        entries.push(("location".into(), Value::Map(location)));
    }
    if let Some(asn) = record.asn {
        entries.push(("autonomous_system_number".into(), Value::U32(asn)));
    }
    Value::Map(entries)
}

/// Continent code of an ISO 3166-1 alpha-2 country code (either case), as
/// GeoNames and MaxMind assign them; also knows `XK` (Kosovo).
pub fn continent_of(country: &str) -> Option<&'static str> {
    let code = country.to_ascii_uppercase();
    COUNTRY_CONTINENTS
        .binary_search_by(|(c, _)| (*c).cmp(code.as_str()))
        .ok()
        .map(|i| COUNTRY_CONTINENTS[i].1)
}

/// Every ISO 3166-1 alpha-2 code (plus `XK`), sorted, with its continent.
const COUNTRY_CONTINENTS: [(&str, &str); 250] = [
    ("AD", "EU"),
    ("AE", "AS"),
    ("AF", "AS"),
    ("AG", "NA"),
    ("AI", "NA"),
    ("AL", "EU"),
    ("AM", "AS"),
    ("AO", "AF"),
    ("AQ", "AN"),
    ("AR", "SA"),
    ("AS", "OC"),
    ("AT", "EU"),
    ("AU", "OC"),
    ("AW", "NA"),
    ("AX", "EU"),
    ("AZ", "AS"),
    ("BA", "EU"),
    ("BB", "NA"),
    ("BD", "AS"),
    ("BE", "EU"),
    ("BF", "AF"),
    ("BG", "EU"),
    ("BH", "AS"),
    ("BI", "AF"),
    ("BJ", "AF"),
    ("BL", "NA"),
    ("BM", "NA"),
    ("BN", "AS"),
    ("BO", "SA"),
    ("BQ", "NA"),
    ("BR", "SA"),
    ("BS", "NA"),
    ("BT", "AS"),
    ("BV", "AN"),
    ("BW", "AF"),
    ("BY", "EU"),
    ("BZ", "NA"),
    ("CA", "NA"),
    ("CC", "AS"),
    ("CD", "AF"),
    ("CF", "AF"),
    ("CG", "AF"),
    ("CH", "EU"),
    ("CI", "AF"),
    ("CK", "OC"),
    ("CL", "SA"),
    ("CM", "AF"),
    ("CN", "AS"),
    ("CO", "SA"),
    ("CR", "NA"),
    ("CU", "NA"),
    ("CV", "AF"),
    ("CW", "NA"),
    ("CX", "AS"),
    ("CY", "EU"),
    ("CZ", "EU"),
    ("DE", "EU"),
    ("DJ", "AF"),
    ("DK", "EU"),
    ("DM", "NA"),
    ("DO", "NA"),
    ("DZ", "AF"),
    ("EC", "SA"),
    ("EE", "EU"),
    ("EG", "AF"),
    ("EH", "AF"),
    ("ER", "AF"),
    ("ES", "EU"),
    ("ET", "AF"),
    ("FI", "EU"),
    ("FJ", "OC"),
    ("FK", "SA"),
    ("FM", "OC"),
    ("FO", "EU"),
    ("FR", "EU"),
    ("GA", "AF"),
    ("GB", "EU"),
    ("GD", "NA"),
    ("GE", "AS"),
    ("GF", "SA"),
    ("GG", "EU"),
    ("GH", "AF"),
    ("GI", "EU"),
    ("GL", "NA"),
    ("GM", "AF"),
    ("GN", "AF"),
    ("GP", "NA"),
    ("GQ", "AF"),
    ("GR", "EU"),
    ("GS", "AN"),
    ("GT", "NA"),
    ("GU", "OC"),
    ("GW", "AF"),
    ("GY", "SA"),
    ("HK", "AS"),
    ("HM", "AN"),
    ("HN", "NA"),
    ("HR", "EU"),
    ("HT", "NA"),
    ("HU", "EU"),
    ("ID", "AS"),
    ("IE", "EU"),
    ("IL", "AS"),
    ("IM", "EU"),
    ("IN", "AS"),
    ("IO", "AS"),
    ("IQ", "AS"),
    ("IR", "AS"),
    ("IS", "EU"),
    ("IT", "EU"),
    ("JE", "EU"),
    ("JM", "NA"),
    ("JO", "AS"),
    ("JP", "AS"),
    ("KE", "AF"),
    ("KG", "AS"),
    ("KH", "AS"),
    ("KI", "OC"),
    ("KM", "AF"),
    ("KN", "NA"),
    ("KP", "AS"),
    ("KR", "AS"),
    ("KW", "AS"),
    ("KY", "NA"),
    ("KZ", "AS"),
    ("LA", "AS"),
    ("LB", "AS"),
    ("LC", "NA"),
    ("LI", "EU"),
    ("LK", "AS"),
    ("LR", "AF"),
    ("LS", "AF"),
    ("LT", "EU"),
    ("LU", "EU"),
    ("LV", "EU"),
    ("LY", "AF"),
    ("MA", "AF"),
    ("MC", "EU"),
    ("MD", "EU"),
    ("ME", "EU"),
    ("MF", "NA"),
    ("MG", "AF"),
    ("MH", "OC"),
    ("MK", "EU"),
    ("ML", "AF"),
    ("MM", "AS"),
    ("MN", "AS"),
    ("MO", "AS"),
    ("MP", "OC"),
    ("MQ", "NA"),
    ("MR", "AF"),
    ("MS", "NA"),
    ("MT", "EU"),
    ("MU", "AF"),
    ("MV", "AS"),
    ("MW", "AF"),
    ("MX", "NA"),
    ("MY", "AS"),
    ("MZ", "AF"),
    ("NA", "AF"),
    ("NC", "OC"),
    ("NE", "AF"),
    ("NF", "OC"),
    ("NG", "AF"),
    ("NI", "NA"),
    ("NL", "EU"),
    ("NO", "EU"),
    ("NP", "AS"),
    ("NR", "OC"),
    ("NU", "OC"),
    ("NZ", "OC"),
    ("OM", "AS"),
    ("PA", "NA"),
    ("PE", "SA"),
    ("PF", "OC"),
    ("PG", "OC"),
    ("PH", "AS"),
    ("PK", "AS"),
    ("PL", "EU"),
    ("PM", "NA"),
    ("PN", "OC"),
    ("PR", "NA"),
    ("PS", "AS"),
    ("PT", "EU"),
    ("PW", "OC"),
    ("PY", "SA"),
    ("QA", "AS"),
    ("RE", "AF"),
    ("RO", "EU"),
    ("RS", "EU"),
    ("RU", "EU"),
    ("RW", "AF"),
    ("SA", "AS"),
    ("SB", "OC"),
    ("SC", "AF"),
    ("SD", "AF"),
    ("SE", "EU"),
    ("SG", "AS"),
    ("SH", "AF"),
    ("SI", "EU"),
    ("SJ", "EU"),
    ("SK", "EU"),
    ("SL", "AF"),
    ("SM", "EU"),
    ("SN", "AF"),
    ("SO", "AF"),
    ("SR", "SA"),
    ("SS", "AF"),
    ("ST", "AF"),
    ("SV", "NA"),
    ("SX", "NA"),
    ("SY", "AS"),
    ("SZ", "AF"),
    ("TC", "NA"),
    ("TD", "AF"),
    ("TF", "AN"),
    ("TG", "AF"),
    ("TH", "AS"),
    ("TJ", "AS"),
    ("TK", "OC"),
    ("TL", "OC"),
    ("TM", "AS"),
    ("TN", "AF"),
    ("TO", "OC"),
    ("TR", "AS"),
    ("TT", "NA"),
    ("TV", "OC"),
    ("TW", "AS"),
    ("TZ", "AF"),
    ("UA", "EU"),
    ("UG", "AF"),
    ("UM", "OC"),
    ("US", "NA"),
    ("UY", "SA"),
    ("UZ", "AS"),
    ("VA", "EU"),
    ("VC", "NA"),
    ("VE", "SA"),
    ("VG", "NA"),
    ("VI", "NA"),
    ("VN", "AS"),
    ("VU", "OC"),
    ("WF", "OC"),
    ("WS", "OC"),
    ("XK", "EU"),
    ("YE", "AS"),
    ("YT", "AF"),
    ("ZA", "AF"),
    ("ZM", "AF"),
    ("ZW", "AF"),
];

/// Networks seen so far in one file, with the line of each.
#[derive(Debug, Default)]
struct SeenNetworks(HashMap<IpNet, u32>);

impl SeenNetworks {
    /// Records `network` from `line`, failing if an earlier line had it.
    fn check(&mut self, network: IpNet, line: u32, file: &Path) -> Result<(), InputError> {
        match self.0.entry(network) {
            Entry::Occupied(e) => Err(InputError::DuplicateNetwork {
                file: file.to_owned(),
                line,
                first_line: *e.get(),
                network,
            }),
            Entry::Vacant(e) => {
                e.insert(line);
                Ok(())
            }
        }
    }
}

/// The lines that carry data (not blank, not `#` comments), with their
/// 1-based numbers; a leading byte order mark is dropped.
fn data_lines(text: &str) -> impl Iterator<Item = (u32, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines().enumerate().filter_map(|(i, line)| {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            None
        } else {
            Some((u32::try_from(i + 1).unwrap_or(u32::MAX), line))
        }
    })
}

/// Splits one CSV line into trimmed fields; `"` quotes a field, `""` inside
/// quotes is a literal quote.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut field = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".to_owned()),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => {
                    return Err(format!(
                        "unexpected {c:?} after a quoted field (expected a comma)"
                    ));
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim_end().to_owned());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim_end().to_owned());
        }
    }
}

/// `Some` of the field unless it is empty.
fn non_empty(field: &str) -> Option<String> {
    (!field.is_empty()).then(|| field.to_owned())
}

/// Parses a network in CIDR notation (or a bare address as a host network),
/// requiring clear host bits and refusing IPv4-mapped IPv6 prefixes.
fn parse_network(field: &str) -> Result<IpNet, String> {
    if field.is_empty() {
        return Err("missing network".to_owned());
    }
    let network = if field.contains('/') {
        field.parse::<IpNet>().map_err(|_| {
            format!("invalid network {field:?}: expected CIDR notation like 192.0.2.0/24")
        })?
    } else {
        field.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            format!("invalid network {field:?}: expected CIDR notation like 192.0.2.0/24")
        })?
    };
    if network.trunc() != network {
        return Err(format!(
            "network {field} has host bits set (did you mean {}?)",
            network.trunc()
        ));
    }
    if let IpNet::V6(v6) = network
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.addr().to_ipv4_mapped()
    {
        let as_v4 = IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96)
            .map_or_else(|_| v4.to_string(), |n| n.to_string());
        return Err(format!(
            "network {field} is IPv4-mapped IPv6; write it as {as_v4}"
        ));
    }
    Ok(network)
}

/// Parses an optional ISO 3166-1 alpha-2 country code into upper case.
fn parse_country(field: &str) -> Result<Option<String>, String> {
    if field.is_empty() {
        return Ok(None);
    }
    if field.len() == 2 && field.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(Some(field.to_ascii_uppercase()))
    } else {
        Err(format!(
            "invalid country {field:?}: expected an ISO 3166-1 alpha-2 code like GB"
        ))
    }
}

/// Parses an optional continent code into upper case.
fn parse_continent(field: &str) -> Result<Option<String>, String> {
    if field.is_empty() {
        return Ok(None);
    }
    let code = field.to_ascii_uppercase();
    if CONTINENTS.contains(&code.as_str()) {
        Ok(Some(code))
    } else {
        Err(format!(
            "invalid continent {field:?}: expected one of {}",
            CONTINENTS.join(", ")
        ))
    }
}

/// The continent of `country`, when known.
fn derived_continent(country: Option<&str>) -> Option<String> {
    country.and_then(continent_of).map(str::to_owned)
}

/// Validates the code part of an ISO 3166-2 subdivision (1 to 3 letters or
/// digits) and returns it in upper case.
fn parse_subdivision_code(code: &str) -> Option<String> {
    ((1..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| code.to_ascii_uppercase())
}

/// Parses an optional latitude/longitude pair; both or neither must be given.
fn parse_coordinates(lat: &str, lon: &str) -> Result<(Option<f64>, Option<f64>), String> {
    /// Parses one coordinate within `-limit..=limit`.
    fn coordinate(field: &str, what: &str, limit: f64) -> Result<f64, String> {
        field
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && (-limit..=limit).contains(v))
            .ok_or_else(|| {
                format!("invalid {what} {field:?}: expected a number from -{limit} to {limit}")
            })
    }
    match (lat.is_empty(), lon.is_empty()) {
        (true, true) => Ok((None, None)),
        (false, true) => Err("latitude given without longitude".to_owned()),
        (true, false) => Err("longitude given without latitude".to_owned()),
        (false, false) => Ok((
            Some(coordinate(lat, "latitude", 90.0)?),
            Some(coordinate(lon, "longitude", 180.0)?),
        )),
    }
}

/// Parses an optional ASN, with or without an `AS` prefix.
fn parse_asn(field: &str) -> Result<Option<u32>, String> {
    if field.is_empty() {
        return Ok(None);
    }
    let digits = field
        .strip_prefix("AS")
        .or_else(|| field.strip_prefix("as"))
        .unwrap_or(field);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(asn) = digits.parse::<u32>()
    {
        return Ok(Some(asn));
    }
    Err(format!(
        "invalid ASN {field:?}: expected a number from 0 to 4294967295"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::mmdb_write::Writer;

    /// The path used in test errors.
    fn path() -> &'static Path {
        Path::new("nets.csv")
    }

    /// Parses a network literal.
    fn net(s: &str) -> IpNet {
        s.parse().expect("test network literal")
    }

    /// A record with only a network and a line.
    fn bare(network: &str, line: u32) -> LocationRecord {
        LocationRecord {
            network: net(network),
            continent: None,
            country: None,
            subdivision: None,
            city: None,
            latitude: None,
            longitude: None,
            asn: None,
            line,
        }
    }

    /// The error (as text) for a one-line nets CSV after a header and a comment.
    fn nets_error(line: &str) -> String {
        let text = format!(
            "network,continent,country,subdivision,city,latitude,longitude,asn\n# c\n{line}\n"
        );
        let err = read_nets_csv(&text, path()).expect_err(line);
        assert_eq!(err.line(), 3, "{err}");
        assert_eq!(err.file(), path());
        err.to_string()
    }

    /// The error (as text) for a one-line geofeed after a comment.
    fn geofeed_error(line: &str) -> String {
        let text = format!("# geofeed\n{line}\n");
        let err = read_geofeed(&text, Path::new("feed.csv")).expect_err(line);
        assert_eq!(err.line(), 2, "{err}");
        err.to_string()
    }

    #[test]
    fn nets_csv_full_example() {
        let text = "\u{feff}# Meridian networks\r\n\
            network,continent,country,subdivision,city,latitude,longitude,asn\r\n\
            \r\n\
            81.2.69.0/24,EU,GB,ENG,London,51.5142,-0.0931,AS64500\r\n\
            2001:db8::/32,,us,us-wa,\"Seattle\",47.6,-122.3,64501\n\
            \t# indented comment\n\
            192.0.2.0/24 , , DE , , \"Frankfurt am Main\" , 50.1 , 8.7 , \n\
            198.51.100.0/24,,US,DC,\"Washington, D.C.\",38.9,-77.0\n\
            203.0.113.7\n\
            2001:db8:1::/48,,,,\"He said \"\"hi\"\"\"\n\
            10.0.0.0/8,OC,TR\n";
        let got = read_nets_csv(text, path()).expect("valid nets csv");
        let expected = vec![
            LocationRecord {
                network: net("81.2.69.0/24"),
                continent: Some("EU".into()),
                country: Some("GB".into()),
                subdivision: Some("ENG".into()),
                city: Some("London".into()),
                latitude: Some(51.5142),
                longitude: Some(-0.0931),
                asn: Some(64500),
                line: 4,
            },
            LocationRecord {
                network: net("2001:db8::/32"),
                continent: Some("NA".into()),
                country: Some("US".into()),
                subdivision: Some("WA".into()),
                city: Some("Seattle".into()),
                latitude: Some(47.6),
                longitude: Some(-122.3),
                asn: Some(64501),
                line: 5,
            },
            LocationRecord {
                network: net("192.0.2.0/24"),
                continent: Some("EU".into()),
                country: Some("DE".into()),
                city: Some("Frankfurt am Main".into()),
                latitude: Some(50.1),
                longitude: Some(8.7),
                ..bare("192.0.2.0/24", 7)
            },
            LocationRecord {
                continent: Some("NA".into()),
                country: Some("US".into()),
                subdivision: Some("DC".into()),
                city: Some("Washington, D.C.".into()),
                latitude: Some(38.9),
                longitude: Some(-77.0),
                ..bare("198.51.100.0/24", 8)
            },
            bare("203.0.113.7/32", 9),
            LocationRecord {
                city: Some("He said \"hi\"".into()),
                ..bare("2001:db8:1::/48", 10)
            },
            // An explicit continent wins over the derived one.
            LocationRecord {
                continent: Some("OC".into()),
                country: Some("TR".into()),
                ..bare("10.0.0.0/8", 11)
            },
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn nets_csv_without_header_and_empty_input() {
        let got = read_nets_csv("10.0.0.0/8,,GB\n", path()).expect("valid");
        assert_eq!(got[0].continent.as_deref(), Some("EU"));
        assert_eq!(got[0].line, 1);
        assert!(read_nets_csv("", path()).expect("empty").is_empty());
        assert!(
            read_nets_csv("# only comments\n\n   \n", path())
                .expect("comments")
                .is_empty()
        );
        // The header alone is fine too, and its case does not matter.
        let header = "Network,Continent,Country,Subdivision,City,Latitude,Longitude,ASN\n";
        assert!(read_nets_csv(header, path()).expect("header").is_empty());
        // Overlapping (but not identical) networks are allowed.
        let text = "10.0.0.0/8\n10.0.0.0/16\n10.0.0.0/24\n::/0\n0.0.0.0/0\n";
        assert_eq!(read_nets_csv(text, path()).expect("overlap").len(), 5);
    }

    #[test]
    fn nets_csv_errors_name_the_line() {
        let cases = [
            (" ,", "missing network"),
            (",EU,GB", "missing network"),
            ("10.0.0.0/33", "invalid network \"10.0.0.0/33\""),
            ("10.0.0/8", "invalid network"),
            ("bogus", "invalid network \"bogus\""),
            ("10.0.0.1/8", "host bits set (did you mean 10.0.0.0/8?)"),
            (
                "2001:db8::1/32",
                "host bits set (did you mean 2001:db8::/32?)",
            ),
            (
                "::ffff:1.2.3.0/120",
                "IPv4-mapped IPv6; write it as 1.2.3.0/24",
            ),
            ("10.0.0.0/8,XX", "invalid continent \"XX\""),
            ("10.0.0.0/8,Europe", "invalid continent"),
            ("10.0.0.0/8,,GBR", "invalid country \"GBR\""),
            ("10.0.0.0/8,,G1", "invalid country"),
            (
                "10.0.0.0/8,,,ENG",
                "subdivision \"ENG\" given without a country",
            ),
            ("10.0.0.0/8,,GB,US-WA", "does not belong to country GB"),
            ("10.0.0.0/8,,GB,ENGLAND", "invalid subdivision \"ENGLAND\""),
            ("10.0.0.0/8,,GB,GB-", "invalid subdivision"),
            ("10.0.0.0/8,,,,,91,0", "invalid latitude \"91\""),
            ("10.0.0.0/8,,,,,-90.5,0", "invalid latitude"),
            ("10.0.0.0/8,,,,,0,180.01", "invalid longitude \"180.01\""),
            ("10.0.0.0/8,,,,,NaN,0", "invalid latitude \"NaN\""),
            ("10.0.0.0/8,,,,,north,0", "invalid latitude"),
            ("10.0.0.0/8,,,,,51.5", "latitude given without longitude"),
            ("10.0.0.0/8,,,,,,-0.1", "longitude given without latitude"),
            ("10.0.0.0/8,,,,,,,-1", "invalid ASN \"-1\""),
            ("10.0.0.0/8,,,,,,,4294967296", "invalid ASN"),
            ("10.0.0.0/8,,,,,,,AS", "invalid ASN"),
            ("10.0.0.0/8,,,,,,,12a", "invalid ASN"),
            ("10.0.0.0/8,,,,,,,1,extra", "9 fields, expected at most 8"),
            ("10.0.0.0/8,,,,\"London", "unterminated quoted field"),
            (
                "10.0.0.0/8,,,,\"London\" UK",
                "unexpected 'U' after a quoted field",
            ),
        ];
        for (line, message) in cases {
            let err = nets_error(line);
            assert!(err.starts_with("nets.csv:3: "), "{line}: {err}");
            assert!(err.contains(message), "{line}: {err}");
        }
        // Exact display format.
        assert_eq!(
            nets_error("10.0.0.1/8"),
            "nets.csv:3: network 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)"
        );
    }

    #[test]
    fn nets_csv_header_errors() {
        let err = read_nets_csv("network,country\n", path()).expect_err("bad header");
        assert_eq!(err.line(), 1);
        assert!(
            err.to_string()
                .contains("unexpected header; expected network,continent"),
            "{err}"
        );
        // A header after data is just an invalid network.
        let text =
            "10.0.0.0/8\nnetwork,continent,country,subdivision,city,latitude,longitude,asn\n";
        let err = read_nets_csv(text, path()).expect_err("late header");
        assert_eq!(err.line(), 2);
        assert!(
            err.to_string().contains("invalid network \"network\""),
            "{err}"
        );
    }

    #[test]
    fn identical_networks_are_an_error_naming_both_lines() {
        let text = "# x\n10.0.0.0/8,,GB\n10.0.0.0/16\n\n10.0.0.0/8,,DE\n";
        let err = read_nets_csv(text, path()).expect_err("duplicate");
        assert!(matches!(
            err,
            InputError::DuplicateNetwork {
                line: 5,
                first_line: 2,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "nets.csv:5: network 10.0.0.0/8 is already given on line 2"
        );
        // A bare address and its /32 are the same network.
        let err = read_nets_csv("192.0.2.1\n192.0.2.1/32\n", path()).expect_err("dup");
        assert_eq!(err.line(), 2);
        let err =
            read_geofeed("2001:db8::/32,US\n2001:db8::/32,CA\n", Path::new("f")).expect_err("dup");
        assert_eq!(
            err.to_string(),
            "f:2: network 2001:db8::/32 is already given on line 1"
        );
    }

    #[test]
    fn geofeed_rfc8805_examples() {
        let text = "# RFC 8805 geofeed\n\
            192.0.2.0/25,US,US-AL,,\n\
            192.0.2.5,US,US-AL,Alabaster,\n\
            192.0.2.128/25,PL,PL-MZ,,02-784\n\
            2001:db8::/32,PL,,,\n\
            2001:db8:cafe::/48,PL,PL-MZ,,02-784\n\
            198.51.100.0/24,us,us-ca,\"San Francisco, CA\",94107,extra,fields\n\
            203.0.113.0/24\n\
            203.0.114.0/24,,,,\n\
            2001:db8:1::/48,GB,GB-ENG,London\n";
        let got = read_geofeed(text, Path::new("feed.csv")).expect("valid geofeed");
        let expected = vec![
            LocationRecord {
                continent: Some("NA".into()),
                country: Some("US".into()),
                subdivision: Some("AL".into()),
                ..bare("192.0.2.0/25", 2)
            },
            LocationRecord {
                continent: Some("NA".into()),
                country: Some("US".into()),
                subdivision: Some("AL".into()),
                city: Some("Alabaster".into()),
                ..bare("192.0.2.5/32", 3)
            },
            LocationRecord {
                continent: Some("EU".into()),
                country: Some("PL".into()),
                subdivision: Some("MZ".into()),
                ..bare("192.0.2.128/25", 4)
            },
            LocationRecord {
                continent: Some("EU".into()),
                country: Some("PL".into()),
                ..bare("2001:db8::/32", 5)
            },
            LocationRecord {
                continent: Some("EU".into()),
                country: Some("PL".into()),
                subdivision: Some("MZ".into()),
                ..bare("2001:db8:cafe::/48", 6)
            },
            LocationRecord {
                continent: Some("NA".into()),
                country: Some("US".into()),
                subdivision: Some("CA".into()),
                city: Some("San Francisco, CA".into()),
                ..bare("198.51.100.0/24", 7)
            },
            bare("203.0.113.0/24", 8),
            bare("203.0.114.0/24", 9),
            LocationRecord {
                continent: Some("EU".into()),
                country: Some("GB".into()),
                subdivision: Some("ENG".into()),
                city: Some("London".into()),
                ..bare("2001:db8:1::/48", 10)
            },
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn geofeed_errors_name_the_line() {
        let cases = [
            (",US", "missing network"),
            ("192.0.2.0/33,US", "invalid network"),
            (
                "192.0.2.1/24,US",
                "host bits set (did you mean 192.0.2.0/24?)",
            ),
            ("192.0.2.0/24,USA", "invalid country \"USA\""),
            (
                "192.0.2.0/24,,US-WA",
                "region \"US-WA\" given without a country",
            ),
            (
                "192.0.2.0/24,US,WA",
                "invalid region \"WA\": expected an ISO 3166-2 code like US-XX",
            ),
            (
                "192.0.2.0/24,US,CA-ON",
                "region \"CA-ON\" does not start with the country code US",
            ),
            ("192.0.2.0/24,US,US-WASH", "invalid region \"US-WASH\""),
            ("192.0.2.0/24,US,US-", "invalid region"),
            (
                "192.0.2.0/24,US,US-WA,\"Seattle",
                "unterminated quoted field",
            ),
            ("::ffff:192.0.2.0/120,US", "write it as 192.0.2.0/24"),
        ];
        for (line, message) in cases {
            let err = geofeed_error(line);
            assert!(err.starts_with("feed.csv:2: "), "{line}: {err}");
            assert!(err.contains(message), "{line}: {err}");
        }
    }

    #[test]
    fn csv_splitting() {
        let split = |s: &str| split_csv(s).expect(s);
        assert_eq!(split("a,b,c"), ["a", "b", "c"]);
        assert_eq!(split(" a , b ,c "), ["a", "b", "c"]);
        assert_eq!(split("a,,"), ["a", "", ""]);
        assert_eq!(split(""), [""]);
        assert_eq!(split("\"a,b\",c"), ["a,b", "c"]);
        assert_eq!(split("\" a \" , \"\""), [" a ", ""]);
        assert_eq!(split("\"x\"\"y\""), ["x\"y"]);
        assert_eq!(split("a\"b"), ["a\"b"]);
        assert_eq!(split("Zürich,São Paulo"), ["Zürich", "São Paulo"]);
        assert!(split_csv("\"a").is_err());
        assert!(split_csv("\"a\"b").is_err());
    }

    #[test]
    fn continent_table_is_complete_and_sorted() {
        assert_eq!(COUNTRY_CONTINENTS.len(), 250);
        for pair in COUNTRY_CONTINENTS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{pair:?}");
        }
        for (country, continent) in COUNTRY_CONTINENTS {
            assert_eq!(country.len(), 2);
            assert!(country.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(CONTINENTS.contains(&continent), "{country} {continent}");
            assert_eq!(continent_of(country), Some(continent));
        }
        for continent in CONTINENTS {
            assert!(
                COUNTRY_CONTINENTS.iter().any(|(_, c)| *c == continent),
                "{continent}"
            );
        }
        for (country, continent) in [
            ("GB", "EU"),
            ("us", "NA"),
            ("Br", "SA"),
            ("JP", "AS"),
            ("AU", "OC"),
            ("ZA", "AF"),
            ("AQ", "AN"),
            ("RU", "EU"),
            ("TR", "AS"),
            ("EG", "AF"),
            ("XK", "EU"),
        ] {
            assert_eq!(continent_of(country), Some(continent), "{country}");
        }
        for unknown in ["ZZ", "EU", "", "G", "GBR", "UK"] {
            assert_eq!(continent_of(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn to_value_shape() {
        let full = LocationRecord {
            continent: Some("EU".into()),
            country: Some("GB".into()),
            subdivision: Some("ENG".into()),
            city: Some("London".into()),
            latitude: Some(51.5),
            longitude: Some(-0.1),
            asn: Some(64500),
            ..bare("81.2.69.0/24", 1)
        };
        let string = |s: &str| Value::String(s.into());
        let map = |entries: Vec<(&str, Value)>| {
            Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            )
        };
        assert_eq!(
            to_value(&full),
            map(vec![
                ("continent", map(vec![("code", string("EU"))])),
                ("country", map(vec![("iso_code", string("GB"))])),
                (
                    "subdivisions",
                    Value::Array(vec![map(vec![("iso_code", string("ENG"))])])
                ),
                (
                    "city",
                    map(vec![("names", map(vec![("en", string("London"))]))])
                ),
                (
                    "location",
                    map(vec![
                        ("latitude", Value::Double(51.5)),
                        ("longitude", Value::Double(-0.1)),
                    ])
                ),
                ("autonomous_system_number", Value::U32(64500)),
            ])
        );
        assert_eq!(to_value(&bare("10.0.0.0/8", 1)), Value::Map(vec![]));
        let partial = LocationRecord {
            country: Some("SE".into()),
            asn: Some(1),
            ..bare("10.0.0.0/8", 1)
        };
        assert_eq!(
            to_value(&partial),
            map(vec![
                ("country", map(vec![("iso_code", string("SE"))])),
                ("autonomous_system_number", Value::U32(1)),
            ])
        );
    }

    /// Reader-side ASN field.
    #[derive(Debug, serde::Deserialize)]
    struct Asn {
        /// The ASN, when present.
        autonomous_system_number: Option<u32>,
    }

    #[test]
    fn records_round_trip_through_the_writer_and_reader() {
        let text = "network,continent,country,subdivision,city,latitude,longitude,asn\n\
            81.2.69.0/24,,GB,ENG,London,51.5142,-0.0931,64500\n\
            81.2.69.128/25,,GB,ENG,Westminster,51.5,-0.13,\n\
            0.0.0.0/0,,,,,,,\n\
            2001:db8::/32,,SE,E,Linköping,58.4167,15.6167,64501\n";
        let mut records = read_nets_csv(text, path()).expect("valid");
        // Ascending prefix length (IPv4 counted under ::/96): most specific wins.
        records.sort_by_key(|r| match r.network {
            IpNet::V4(n) => 96 + n.prefix_len(),
            IpNet::V6(n) => n.prefix_len(),
        });
        let mut w = Writer::new("Meridian-City");
        for r in &records {
            w.insert(r.network, to_value(r)).expect("insert");
        }
        let reader = maxminddb::Reader::from_source(w.to_bytes().expect("write")).expect("open");
        reader.verify().expect("verify");
        let city = |addr: &str| -> (Option<String>, Option<String>, Option<String>, Option<u32>) {
            let ip: IpAddr = addr.parse().expect("addr");
            let result = reader.lookup(ip).expect("lookup");
            let c: maxminddb::geoip2::City = result.decode().expect("decode").expect("data");
            let asn: Asn = result.decode().expect("decode").expect("data");
            (
                c.city.names.english.map(str::to_owned),
                c.continent.code.map(str::to_owned),
                c.subdivisions
                    .first()
                    .and_then(|s| s.iso_code)
                    .map(str::to_owned),
                asn.autonomous_system_number,
            )
        };
        assert_eq!(
            city("81.2.69.1"),
            (
                Some("London".into()),
                Some("EU".into()),
                Some("ENG".into()),
                Some(64500)
            )
        );
        assert_eq!(
            city("81.2.69.200"),
            (
                Some("Westminster".into()),
                Some("EU".into()),
                Some("ENG".into()),
                None
            )
        );
        assert_eq!(city("8.8.8.8"), (None, None, None, None));
        assert_eq!(
            city("2001:db8::1"),
            (
                Some("Linköping".into()),
                Some("EU".into()),
                Some("E".into()),
                Some(64501)
            )
        );
        let result = reader
            .lookup("2001:db8::1".parse().expect("addr"))
            .expect("lookup");
        let c: maxminddb::geoip2::City = result.decode().expect("decode").expect("data");
        assert_eq!(c.location.latitude, Some(58.4167));
        assert_eq!(c.location.longitude, Some(15.6167));
        assert_eq!(c.country.iso_code, Some("SE"));
        assert!(
            !reader
                .lookup("2001:db9::1".parse().expect("addr"))
                .expect("lookup")
                .has_data()
        );
    }
}
