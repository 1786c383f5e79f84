//! Reading MaxMind's own test databases (`../shared/geodata/`), so we know we read what
//! MaxMind's writer produces. Skipped with a notice when the files are absent, unless
//! `MERIDIAN_REQUIRE_TOOLS=1` (CI), where their absence fails.

use std::net::IpAddr;
use std::path::PathBuf;

use meridian::geo::source::{Database, DatabaseKind};

use crate::interop::required;

/// Path of MaxMind test database `name`, or `None` (after a notice) when it is not there.
fn geodata(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/geodata")
        .join(name);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        !required(),
        "{} is required (MERIDIAN_REQUIRE_TOOLS=1) but missing",
        path.display()
    );
    eprintln!("skipping: {} not present", path.display());
    None
}

/// One documented row: address, continent, country, subdivision, latitude, longitude.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    f64,
    f64,
);

/// The table from `shared/geodata/README.md`.
const CITY_TABLE: [Row; 14] = [
    ("81.2.69.142", "EU", "GB", Some("ENG"), 51.5142, -0.0931),
    ("81.2.69.160", "EU", "GB", Some("ENG"), 51.5142, -0.0931),
    ("2.125.160.216", "EU", "GB", Some("ENG"), 51.75, -1.25),
    ("89.160.20.112", "EU", "SE", Some("E"), 58.4167, 15.6167),
    ("216.160.83.56", "NA", "US", Some("WA"), 47.2513, -122.3149),
    ("214.78.120.1", "NA", "US", Some("CA"), 32.7405, -117.0935),
    ("149.101.100.1", "NA", "US", None, 37.751, -97.822),
    ("175.16.199.1", "AS", "CN", Some("22"), 43.88, 125.3228),
    ("67.43.156.1", "AS", "BT", None, 27.5, 90.5),
    ("202.196.224.1", "AS", "PH", None, 13.0, 122.0),
    ("214.0.0.1", "AS", "SG", None, 1.336, 103.7716),
    ("214.0.1.1", "OC", "AU", Some("VIC"), -37.8159, 144.9669),
    ("2001:218::1", "AS", "JP", None, 35.68536, 139.75309),
    ("2a02:d180::1", "EU", "DE", None, 51.5, 10.5),
];

/// Checks `name` against the table; returns how many rows it had. Every row must be present
/// when `complete`; otherwise rows it has must agree.
fn check_city_table(name: &str, complete: bool) -> Option<usize> {
    let path = geodata(name)?;
    let db = Database::open(&path).expect("MaxMind's database opens");
    assert_eq!(db.kind(), DatabaseKind::Location);
    let mut found = 0;
    for (address, continent, country, subdivision, lat, lon) in CITY_TABLE {
        let addr: IpAddr = address.parse().unwrap();
        let Some((location, network)) = db.locate(addr).unwrap() else {
            assert!(!complete, "{name}: {address} not located");
            continue;
        };
        found += 1;
        assert!(network.contains(&addr), "{network} contains {address}");
        assert_eq!(
            location.continent.as_deref(),
            Some(continent),
            "{name} {address}"
        );
        assert_eq!(
            location.country.as_deref(),
            Some(country),
            "{name} {address}"
        );
        assert_eq!(
            location.subdivision.as_deref(),
            subdivision,
            "{name} {address}"
        );
        let (got_lat, got_lon) = location.coordinates.expect("City has coordinates");
        assert!(
            (got_lat - lat).abs() < 1e-3 && (got_lon - lon).abs() < 1e-3,
            "{name} {address}: {got_lat},{got_lon}"
        );
    }
    for address in ["1.1.1.1", "8.8.8.8"] {
        assert!(
            db.locate(address.parse().unwrap()).unwrap().is_none(),
            "{address} is not in the test data"
        );
    }
    Some(found)
}

#[test]
fn maxmind_city_test_database_matches_its_table() {
    check_city_table("GeoIP2-City-Test.mmdb", true);
}

#[test]
fn maxmind_geolite_city_agrees_where_it_has_data() {
    if let Some(found) = check_city_table("GeoLite2-City-Test.mmdb", false) {
        assert!(
            found >= CITY_TABLE.len() / 2,
            "GeoLite2 has only {found} of the documented networks"
        );
    }
}

#[test]
fn maxmind_country_test_database_has_no_coordinates() {
    let Some(path) = geodata("GeoIP2-Country-Test.mmdb") else {
        return;
    };
    let db = Database::open(&path).unwrap();
    assert_eq!(db.kind(), DatabaseKind::Location);
    let (location, _) = db.locate("81.2.69.142".parse().unwrap()).unwrap().unwrap();
    assert_eq!(
        (location.continent.as_deref(), location.country.as_deref()),
        (Some("EU"), Some("GB"))
    );
    assert_eq!(location.coordinates, None);
}

#[test]
fn maxmind_networks_iterate_with_ipv4_mapped_back() {
    let Some(path) = geodata("GeoIP2-City-Test.mmdb") else {
        return;
    };
    let db = Database::open(&path).unwrap();
    let mut networks = Vec::new();
    let mut locations = Vec::new();
    let distinct = db
        .locations(|network, index, location| {
            networks.push((network, index));
            if locations.len() == index as usize {
                locations.push(location.clone());
            }
        })
        .unwrap();
    assert_eq!(
        distinct,
        locations.len(),
        "indices count up in order of first appearance"
    );
    // Every documented network is visited, IPv4 ones as IPv4, with the documented country.
    for (network, country) in [
        ("81.2.69.160/27", "GB"),
        ("89.160.20.128/25", "SE"),
        ("2001:218::/32", "JP"),
    ] {
        let network: ipnet::IpNet = network.parse().unwrap();
        let (_, index) = networks
            .iter()
            .find(|(seen, _)| *seen == network)
            .unwrap_or_else(|| panic!("{network} visited"));
        assert_eq!(
            locations[*index as usize].country.as_deref(),
            Some(country),
            "{network}"
        );
    }
    // Distinct records are decoded once: far fewer locations than networks.
    assert!(
        locations.len() < networks.len(),
        "{} locations for {} networks",
        locations.len(),
        networks.len()
    );
    assert!(
        !networks
            .iter()
            .any(|(network, _)| network.to_string().starts_with("::ffff:")),
        "aliases skipped"
    );
}

#[test]
fn maxmind_asn_test_database() {
    let Some(path) = geodata("GeoLite2-ASN-Test.mmdb") else {
        return;
    };
    let db = Database::open(&path).unwrap();
    assert_eq!(db.kind(), DatabaseKind::Asn);
    let mut count = 0;
    db.asns(|_, asn| {
        assert!(asn > 0);
        count += 1;
    })
    .unwrap();
    assert!(count > 0);
    let found = db.asn("1.128.0.1".parse().unwrap()).unwrap();
    assert_eq!(
        found.map(|(asn, _)| asn),
        Some(1221),
        "1.128.0.0/11 is AS1221 in MaxMind's test data"
    );
}

#[test]
fn maps_compiled_from_maxmind_city_data() {
    use meridian::snapshot::load;
    let Some(city) = geodata("GeoIP2-City-Test.mmdb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    std::fs::write(dir.path().join("zones/geo.test.zone"), crate::geo::GEO_TEST).unwrap();
    let config = dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        format!(
            r#"[dns]
listen = ["127.0.0.1:0"]
zones_dir = "zones"
[geo]
databases = [{city:?}]
[regions.us-east]
location = [39.0, -77.5]
[regions.us-west]
location = [45.6, -121.2]
[regions.eu-west]
location = [53.35, -6.26]
[regions.ap-south]
location = [19.07, 72.88]
[maps.world]
default = ["us-east", "eu-west", "ap-south", "us-west"]
"EU" = ["eu-west", "us-east"]
"EU/SE" = ["eu-west"]
"NA/US/WA" = ["us-west", "us-east"]
auto = true
"#
        ),
    )
    .unwrap();
    let loaded = load(&config).expect("config with MaxMind's City database loads");
    let map = &loaded.snapshot.geo.maps[0];
    let regions = |address: &str| -> Vec<&str> {
        let (index, _) = map.table.lookup(address.parse().unwrap());
        map.lists[index as usize]
            .iter()
            .map(|&id| loaded.config.regions[usize::from(id)].name.as_str())
            .collect()
    };
    // Location paths: the most specific match wins.
    assert_eq!(regions("81.2.69.142"), ["eu-west", "us-east"], "EU (GB)");
    assert_eq!(regions("89.160.20.112"), ["eu-west"], "EU/SE");
    assert_eq!(regions("216.160.83.56"), ["us-west", "us-east"], "NA/US/WA");
    // No path matches: regions by distance from Changchun, Bhutan and California.
    // (Haversine distances checked independently: Changchun 5569, 8104, 8262, 10518 km;
    // Bhutan 2026, 8012, 11278, 12516 km; San Diego 1473, 3606, 8363, 14157 km.)
    assert_eq!(
        regions("175.16.199.1"),
        ["ap-south", "us-west", "eu-west", "us-east"]
    );
    assert_eq!(
        regions("67.43.156.1"),
        ["ap-south", "eu-west", "us-west", "us-east"]
    );
    assert_eq!(
        regions("214.78.120.1"),
        ["us-west", "us-east", "eu-west", "ap-south"]
    );
    // Not in the database: the default.
    assert_eq!(
        regions("1.1.1.1"),
        ["us-east", "eu-west", "ap-south", "us-west"]
    );
    // IPv6 networks too.
    assert_eq!(regions("2a02:d180::1"), ["eu-west", "us-east"]);
    // The scope never covers an address that gets another answer.
    for address in [
        "81.2.69.142",
        "89.160.20.112",
        "216.160.83.56",
        "175.16.199.1",
    ] {
        let ip: IpAddr = address.parse().unwrap();
        let (index, scope) = map.table.lookup(ip);
        let network = ipnet::IpNet::new(ip, scope).unwrap().trunc();
        for probe in [network.network(), network.broadcast()] {
            assert_eq!(
                map.table.lookup(probe).0,
                index,
                "{probe} shares {address}'s answer within /{scope}"
            );
        }
    }
    assert!(loaded.geo_report.location_networks > 0);
}

#[test]
fn precedence_is_nets_then_asn_then_location() {
    use meridian::snapshot::load;
    let (Some(city), Some(asn)) = (
        geodata("GeoIP2-City-Test.mmdb"),
        geodata("GeoLite2-ASN-Test.mmdb"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    std::fs::write(dir.path().join("zones/geo.test.zone"), crate::geo::GEO_TEST).unwrap();
    // 89.160.20.0/24 is EU/SE in the City data and inside AS29518's 89.160.0.0/17.
    let asn_db = Database::open(&asn).unwrap();
    let (sweden_asn, _) = asn_db
        .asn("89.160.20.200".parse().unwrap())
        .unwrap()
        .expect("89.160.20.200 has an AS");
    assert_eq!(sweden_asn, 29518);
    std::fs::write(dir.path().join("nets.csv"), "89.160.20.112/28,c\n").unwrap();
    let config = dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        format!(
            "[dns]\nlisten = [\"127.0.0.1:0\"]\nzones_dir = \"zones\"\n[geo]\ndatabases = [{city:?}, {asn:?}]\n\
             nets = \"nets.csv\"\n[regions.a]\n[regions.b]\n[regions.c]\n[regions.d]\n\
             [maps.m]\ndefault = [\"d\"]\n\"EU\" = [\"a\"]\nasn.{sweden_asn} = [\"b\"]\n"
        ),
    )
    .unwrap();
    let loaded = load(&config).expect("loads");
    assert!(loaded.geo_report.asn_networks > 0);
    let map = &loaded.snapshot.geo.maps[0];
    let first = |address: &str| {
        let (index, _) = map.table.lookup(address.parse().unwrap());
        loaded.config.regions[usize::from(map.lists[index as usize][0])]
            .name
            .clone()
    };
    assert_eq!(first("89.160.20.113"), "c", "nets beat everything");
    assert_eq!(
        first("89.160.20.200"),
        "b",
        "the ASN rule beats the EU path"
    );
    assert_eq!(
        first("81.2.69.142"),
        "a",
        "EU path where no ASN rule applies"
    );
    assert_eq!(first("1.1.1.1"), "d", "default");
}
