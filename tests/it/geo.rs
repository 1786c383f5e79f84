//! Geo answers end to end: maps compiled from nets overrides (no database needed), ECS rules
//! (RFC 7871) with scopes from merged prefixes, and the policy's choice of region.

use crate::conformance::{ecs_of, ecs_query};
use crate::harness::{Query, Reply, TestServer, qtype, rcode};

/// The zone the GSLB names live in.
pub const GEO_TEST: &str = "$ORIGIN geo.test.\n$TTL 300\n@ SOA ns hostmaster 1 7200 900 1209600 60\n@ NS ns\n\
ns A 192.0.2.1\nwww TXT \"static text beside the service\"\nalias CNAME www\n";

/// Regions, one map and one service; `extra` is added to `[geo]`.
pub fn sections(extra: &str) -> String {
    format!(
        r#"
[geo]
nets = "nets.csv"
{extra}

[regions.us-east]
location = [39.0, -77.5]
[regions.eu-west]
location = [53.35, -6.26]
[regions.ap-south]
location = [19.07, 72.88]

[maps.world]
default = ["us-east", "eu-west", "ap-south"]

[services."www.geo.test"]
map = "world"
ttl = 30
answers.us-east = ["192.0.2.10", "2001:db8::10"]
answers.eu-west = ["192.0.2.20"]
answers.ap-south = ["192.0.2.30"]

[services."edge.geo.test"]
map = "world"
answers.us-east = ["192.0.2.11"]
answers.ap-south = {{ cname = "ap.lb.example.net." }}
"#
    )
}

/// Overrides: a London /24 to Europe, a Chinese /24 to Asia, a German IPv6 /29 to Europe.
pub const NETS: &str =
    "81.2.69.0/24,eu-west us-east\n175.16.199.0/24,ap-south us-east\n2a02:d180::/29,eu-west\n";

/// A server for geo.test with the geo sections; `extra` goes into `[geo]`.
async fn server(extra: &str) -> TestServer {
    TestServer::custom(
        &[("geo.test".to_string(), GEO_TEST.to_string())],
        "",
        &sections(extra),
        &[("nets.csv", NETS.as_bytes())],
    )
    .await
}

/// The answer lines and ECS (address, source, scope) of `name` `qtype` with ECS data `ecs`.
async fn ask(
    server: &TestServer,
    name: &str,
    qtype: u16,
    ecs: &[u8],
) -> (Vec<String>, Option<(std::net::IpAddr, u8, u8)>) {
    let query = Query {
        qtype,
        ..ecs_query(name, ecs)
    };
    let reply = server.udp(&query).await;
    assert_eq!(reply.rcode(), rcode::NOERROR, "{name}");
    assert!(reply.aa(), "{name}");
    (reply.answers(), ecs_of(&reply))
}

#[tokio::test]
async fn rfc7871_ecs_steers_to_the_mapped_region_with_the_merged_scope() {
    let server = server("").await;
    let (answers, ecs) = ask(&server, "www.geo.test", qtype::A, &[0, 1, 24, 0, 81, 2, 69]).await;
    assert_eq!(answers, ["www.geo.test. 30 IN A 192.0.2.20"]);
    assert_eq!(ecs, Some(("81.2.69.0".parse().unwrap(), 24, 24)));
    // A longer source inside the same /24: the answer depends on the /24 only.
    let (answers, ecs) = ask(
        &server,
        "www.geo.test",
        qtype::A,
        &[0, 1, 25, 0, 81, 2, 69, 128],
    )
    .await;
    assert_eq!(answers, ["www.geo.test. 30 IN A 192.0.2.20"]);
    assert_eq!(
        ecs.map(|(_, source, scope)| (source, scope)),
        Some((25, 24))
    );
    // Outside every override: the default region, and the widest prefix that shares it.
    let (answers, ecs) = ask(&server, "www.geo.test", qtype::A, &[0, 1, 24, 0, 8, 8, 8]).await;
    assert_eq!(answers, ["www.geo.test. 30 IN A 192.0.2.10"]);
    assert_eq!(
        ecs.map(|(_, _, scope)| scope),
        Some(2),
        "0.0.0.0/2 holds no override"
    );
    // IPv6.
    let ecs6 = [0, 2, 48, 0, 0x2a, 0x02, 0xd1, 0x80, 0, 0];
    let (answers, ecs) = ask(&server, "www.geo.test", qtype::A, &ecs6).await;
    assert_eq!(answers, ["www.geo.test. 30 IN A 192.0.2.20"]);
    assert_eq!(
        ecs.map(|(_, source, scope)| (source, scope)),
        Some((48, 29))
    );
}

#[tokio::test]
async fn first_region_with_the_type_answers() {
    let server = server("").await;
    // eu-west has no IPv6 address: its clients get us-east's AAAA, next in their list.
    let (answers, ecs) = ask(
        &server,
        "www.geo.test",
        qtype::AAAA,
        &[0, 1, 24, 0, 81, 2, 69],
    )
    .await;
    assert_eq!(answers, ["www.geo.test. 30 IN AAAA 2001:db8::10"]);
    assert_eq!(ecs.map(|(_, _, scope)| scope), Some(24));
    // ap-south answers edge.geo.test with a CNAME, for every type.
    for qtype in [qtype::A, qtype::AAAA, qtype::CNAME] {
        let (answers, _) = ask(
            &server,
            "edge.geo.test",
            qtype,
            &[0, 1, 24, 0, 175, 16, 199],
        )
        .await;
        assert_eq!(
            answers,
            ["edge.geo.test. 30 IN CNAME ap.lb.example.net."],
            "qtype {qtype}"
        );
    }
    // Regions without answers are skipped: eu-west's clients get us-east for edge.geo.test.
    let (answers, _) = ask(
        &server,
        "edge.geo.test",
        qtype::A,
        &[0, 1, 24, 0, 81, 2, 69],
    )
    .await;
    assert_eq!(answers, ["edge.geo.test. 30 IN A 192.0.2.11"]);
    // A service name with no record of the type: NODATA, not NXDOMAIN.
    let (answers, _) = ask(
        &server,
        "edge.geo.test",
        qtype::TXT,
        &[0, 1, 24, 0, 81, 2, 69],
    )
    .await;
    assert!(answers.is_empty());
}

#[tokio::test]
async fn other_types_come_from_the_zone_with_scope_zero() {
    let server = server("").await;
    let (answers, ecs) = ask(
        &server,
        "www.geo.test",
        qtype::TXT,
        &[0, 1, 24, 0, 81, 2, 69],
    )
    .await;
    assert_eq!(
        answers,
        ["www.geo.test. 300 IN TXT static text beside the service"]
    );
    assert_eq!(
        ecs.map(|(_, _, scope)| scope),
        Some(0),
        "static data does not depend on the client"
    );
    let (answers, _) = ask(
        &server,
        "www.geo.test",
        qtype::MX,
        &[0, 1, 24, 0, 81, 2, 69],
    )
    .await;
    assert!(answers.is_empty(), "NODATA");
}

#[tokio::test]
async fn cname_chain_into_a_service_is_steered() {
    let server = server("").await;
    let (answers, ecs) = ask(
        &server,
        "alias.geo.test",
        qtype::A,
        &[0, 1, 24, 0, 81, 2, 69],
    )
    .await;
    assert_eq!(
        answers,
        [
            "alias.geo.test. 300 IN CNAME www.geo.test.",
            "www.geo.test. 30 IN A 192.0.2.20"
        ]
    );
    assert_eq!(ecs.map(|(_, _, scope)| scope), Some(24));
}

#[tokio::test]
async fn rfc7871_7_1_2_unusable_ecs_falls_back_to_the_resolver_address() {
    let server = server("").await;
    // The resolver is 127.0.0.1, which no override covers: default region, scope 0.
    for ecs in [
        &[0u8, 1, 0, 0][..],
        &[0, 1, 8, 0, 10],
        &[0, 1, 16, 0, 192, 168],
        &[0, 2, 7, 0, 0xfc],
    ] {
        let (answers, echoed) = ask(&server, "www.geo.test", qtype::A, ecs).await;
        assert_eq!(answers, ["www.geo.test. 30 IN A 192.0.2.10"], "{ecs:?}");
        assert_eq!(echoed.map(|(_, _, scope)| scope), Some(0), "{ecs:?}");
    }
    // No ECS in the query: none in the reply.
    let reply = server
        .udp(&Query::new("www.geo.test", qtype::A).edns(1232))
        .await;
    assert_eq!(reply.answers(), ["www.geo.test. 30 IN A 192.0.2.10"]);
    assert_eq!(ecs_of(&reply), None);
    let reply: Reply = server.udp(&Query::new("www.geo.test", qtype::A)).await;
    assert_eq!(reply.answers().len(), 1);
}

#[tokio::test]
async fn ecs_can_be_turned_off() {
    let server = server("ecs = false").await;
    let (answers, ecs) = ask(&server, "www.geo.test", qtype::A, &[0, 1, 24, 0, 81, 2, 69]).await;
    assert_eq!(
        answers,
        ["www.geo.test. 30 IN A 192.0.2.10"],
        "steered by the resolver address"
    );
    assert_eq!(ecs.map(|(_, _, scope)| scope), Some(0));
}

#[tokio::test]
async fn ecs_sources_longer_than_the_cap_are_truncated() {
    let server = server("ecs_max_source_v4 = 16").await;
    // 81.2.69.0/24 is looked up as 81.2.0.0/16: not in the override, and the answer holds for
    // 81.2.0.0/18, the widest prefix around 81.2.0.0 without an override.
    let (answers, ecs) = ask(&server, "www.geo.test", qtype::A, &[0, 1, 24, 0, 81, 2, 69]).await;
    assert_eq!(answers, ["www.geo.test. 30 IN A 192.0.2.10"]);
    assert_eq!(ecs.map(|(_, _, scope)| scope), Some(18));
}

#[test]
fn services_must_fit_the_zones() {
    use meridian::snapshot::load;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    let zone = format!("{GEO_TEST}api A 192.0.2.99\n");
    std::fs::write(dir.path().join("zones/geo.test.zone"), &zone).unwrap();
    std::fs::write(dir.path().join("nets.csv"), NETS).unwrap();
    let config = dir.path().join("meridian.toml");
    let write = |service: &str| {
        let text = format!(
            "[dns]\nlisten = [\"127.0.0.1:0\"]\nzones_dir = \"zones\"\n{}\n[services.\"{service}\"]\nmap = \"world\"\nanswers.us-east = [\"192.0.2.1\"]\n",
            sections("")
        );
        std::fs::write(&config, &text).unwrap();
        text.lines()
            .position(|line| line.contains(&format!("[services.\"{service}\"]")))
            .unwrap()
            + 1
    };
    let line = write("api.geo.test");
    let err = load(&config).unwrap_err().to_string();
    let zone_line = zone.lines().count();
    assert_eq!(
        err,
        format!(
            "{}:{line}: service api.geo.test. clashes with the static A record at {}:{zone_line}: a GSLB name owns \
             its A, AAAA and CNAME records (and, when it answers with a CNAME, the whole name); remove one of the two",
            config.display(),
            dir.path().join("zones/geo.test.zone").display()
        )
    );
    let line = write("www.elsewhere.test");
    let err = load(&config).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:{line}: service www.elsewhere.test. is not inside any served zone: add its zone to dns.zones_dir or \
             rename the service",
            config.display()
        )
    );
}

/// Builds `tests/data/geo-locations.csv` into `dir/geo.mmdb` with `meridian geo build`.
pub fn build_test_database(dir: &std::path::Path) -> std::path::PathBuf {
    let input =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/geo-locations.csv");
    let output = dir.join("geo.mmdb");
    let result = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["geo", "build", "--from"])
        .arg(&input)
        .arg("--out")
        .arg(&output)
        .output()
        .expect("meridian runs");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&result.stdout),
        format!(
            "{}: 9 networks, {} bytes\n",
            output.display(),
            std::fs::metadata(&output).unwrap().len()
        )
    );
    output
}

/// A server steering www.geo.test by a database the test built itself.
async fn located_server() -> TestServer {
    let scratch = tempfile::tempdir().unwrap();
    let database = std::fs::read(build_test_database(scratch.path())).unwrap();
    let sections = r#"
[geo]
databases = ["geo.mmdb"]

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
"NA/US/WA" = ["us-west", "us-east"]
auto = true

[services."www.geo.test"]
map = "world"
answers.us-east = ["192.0.2.10"]
answers.us-west = ["192.0.2.40"]
answers.eu-west = ["192.0.2.20"]
answers.ap-south = ["192.0.2.30"]
"#;
    TestServer::custom(
        &[("geo.test".to_string(), GEO_TEST.to_string())],
        "",
        sections,
        &[("geo.mmdb", &database)],
    )
    .await
}

#[tokio::test]
async fn clients_are_steered_by_a_database_built_with_geo_build() {
    let server = located_server().await;
    // (ECS option, expected address, expected scope)
    let cases: [(&[u8], &str, u8); 7] = [
        (&[0, 1, 24, 0, 81, 2, 69], "192.0.2.20", 24), // London: "EU"
        (&[0, 1, 24, 0, 89, 160, 20], "192.0.2.20", 24), // Sweden: "EU"
        (&[0, 1, 24, 0, 216, 160, 83], "192.0.2.40", 24), // Washington: "NA/US/WA"
        (&[0, 1, 24, 0, 214, 78, 120], "192.0.2.40", 22), // San Diego: auto, nearest us-west
        (&[0, 1, 24, 0, 175, 16, 199], "192.0.2.30", 24), // Changchun: auto, nearest ap-south
        (&[0, 2, 32, 0, 0x20, 0x01, 0x02, 0x18], "192.0.2.30", 32), // Tokyo over IPv6: ap-south
        (&[0, 1, 24, 0, 8, 8, 8], "192.0.2.10", 2),    // default; 0.0.0.0/1 holds Bhutan
    ];
    for (ecs, address, scope) in cases {
        let reply = server.udp(&ecs_query("www.geo.test", ecs)).await;
        assert_eq!(
            reply.answers(),
            [format!("www.geo.test. 30 IN A {address}")],
            "{ecs:?}"
        );
        assert_eq!(
            ecs_of(&reply).map(|(_, _, got)| got),
            Some(scope),
            "{ecs:?}"
        );
    }
}

#[test]
fn geo_lookup_explains_a_database_answer() {
    let dir = tempfile::tempdir().unwrap();
    build_test_database(dir.path());
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    std::fs::write(dir.path().join("zones/geo.test.zone"), GEO_TEST).unwrap();
    let config = dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        "[dns]\nlisten = [\"127.0.0.1:0\"]\nzones_dir = \"zones\"\n[geo]\ndatabases = [\"geo.mmdb\"]\n\
         [regions.us-east]\n[regions.eu-west]\n[regions.ap-south]\n\
         [maps.world]\ndefault = [\"us-east\", \"eu-west\", \"ap-south\"]\n\"EU\" = [\"eu-west\", \"us-east\", \"ap-south\"]\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["geo", "lookup", "81.2.69.142", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "81.2.69.142\n  location: EU / GB / ENG / london, 51.51,-0.09 (geo.mmdb, network 81.2.69.0/24)\n  \
         map world: [eu-west, us-east, ap-south]; scope /24\n"
    );
}

#[tokio::test]
async fn corrupt_or_missing_database_on_reload_keeps_the_old_data() {
    let server = located_server().await;
    let london = || ecs_query("www.geo.test", &[0, 1, 24, 0, 81, 2, 69]);
    assert_eq!(
        server.udp(&london()).await.answers(),
        ["www.geo.test. 30 IN A 192.0.2.20"]
    );
    let database = server.dir.path().join("geo.mmdb");
    std::fs::write(&database, b"this is not a MaxMind DB").unwrap();
    let err = server
        .server
        .reload()
        .expect_err("corrupt database rejected")
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}: cannot open GeoIP database",
            database.display()
        )),
        "{err}"
    );
    std::fs::remove_file(&database).unwrap();
    let err = server
        .server
        .reload()
        .expect_err("missing database rejected")
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{}: cannot open GeoIP database",
            database.display()
        )),
        "{err}"
    );
    assert_eq!(server.server.reload_failures(), 2);
    let reply = server.udp(&london()).await;
    assert_eq!(
        reply.answers(),
        ["www.geo.test. 30 IN A 192.0.2.20"],
        "still steered by the old maps"
    );
    assert_eq!(ecs_of(&reply).map(|(_, _, scope)| scope), Some(24));
}

#[tokio::test]
async fn a_geofeed_serves_as_the_location_source() {
    // RFC 8805 lines; networks overlap, and the more specific one wins even when it maps to the
    // default region list.
    let feed = "# prefix,country,region,city,postal\n81.2.0.0/16,GB,GB-ENG,London,\n81.2.69.0/24,SE,,,\n\
                81.2.99.0/24,US,,,\n";
    let sections = r#"
[geo]
databases = ["feed.csv"]
[regions.us-east]
[regions.eu-west]
[regions.ap-south]
[maps.world]
default = ["us-east", "eu-west", "ap-south"]
"EU/GB" = ["eu-west"]
"EU/SE" = ["ap-south"]
[services."www.geo.test"]
map = "world"
answers.us-east = ["192.0.2.10"]
answers.eu-west = ["192.0.2.20"]
answers.ap-south = ["192.0.2.30"]
"#;
    let server = TestServer::custom(
        &[("geo.test".to_string(), GEO_TEST.to_string())],
        "",
        sections,
        &[("feed.csv", feed.as_bytes())],
    )
    .await;
    let cases: [(&[u8], &str, u8); 4] = [
        (&[0, 1, 24, 0, 81, 2, 69], "192.0.2.30", 24), // SE inside the GB /16
        (&[0, 1, 24, 0, 81, 2, 70], "192.0.2.20", 23), // GB; 81.2.70.0/23 avoids both /24s
        (&[0, 1, 24, 0, 81, 2, 99], "192.0.2.10", 24), // US: the default, still overriding GB
        (&[0, 1, 24, 0, 81, 3, 0], "192.0.2.10", 16),  // outside the feed
    ];
    for (ecs, address, scope) in cases {
        let reply = server.udp(&ecs_query("www.geo.test", ecs)).await;
        assert_eq!(
            reply.answers(),
            [format!("www.geo.test. 30 IN A {address}")],
            "{ecs:?}"
        );
        assert_eq!(
            ecs_of(&reply).map(|(_, _, got)| got),
            Some(scope),
            "{ecs:?}"
        );
    }
}
