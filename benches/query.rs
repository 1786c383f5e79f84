//! Benchmarks of the per-query path: `respond` into a reused buffer for representative queries,
//! and `parse_query` alone.
//!
//! Run with `cargo bench --bench query`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::rr::Name;
use meridian::dns::wire::parse_query;
use meridian::dns::{Rcode, Transport, respond};
use meridian::snapshot::Snapshot;
use meridian::zone::parse::parse_zone_str;
use meridian::zone::{Zone, ZoneSet};

/// The main zone: apex data, CNAME chains, wildcards and a delegation with glue.
const EXAMPLE_COM: &str = include_str!("../tests/data/example.com.zone");

/// A second zone, for CNAME chains that cross zones.
const EXAMPLE_NET: &str = include_str!("../tests/data/example.net.zone");

/// The resolver address queries come from.
const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 53));

/// Record type A.
const A: u16 = 1;
/// Record type AAAA.
const AAAA: u16 = 28;

/// Parses and builds zone `origin` from fixed `text`.
fn zone(origin: &str, text: &str) -> Zone {
    let name = Name::from_ascii(origin).expect("fixed origin is a valid name");
    let file = Path::new(origin).with_extension("zone");
    let records =
        parse_zone_str(text, &file, &name, &std::env::temp_dir()).expect("fixed zone parses");
    Zone::build(&name, &file, records)
        .expect("fixed zone builds")
        .0
}

/// The snapshot the benchmarks answer from: example.com and example.net, 1232-byte EDNS cap.
fn snapshot() -> Snapshot {
    let zones = vec![
        zone("example.com.", EXAMPLE_COM),
        zone("example.net.", EXAMPLE_NET),
    ];
    Snapshot::new(ZoneSet::new(zones), 1232)
}

/// A class IN query for `name` (dotted, no escapes) with RD set; with an OPT record advertising
/// `edns` bytes and DO set when given.
fn query(name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut packet = vec![0x4d, 0x52, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    packet[11] = u8::from(edns.is_some());
    for label in name.split('.').filter(|label| !label.is_empty()) {
        let len = u8::try_from(label.len()).expect("fixed label fits a length byte");
        packet.push(len);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    if let Some(payload) = edns {
        // Root owner, TYPE OPT, CLASS = payload, TTL = ext-rcode 0, version 0, DO; no options.
        packet.extend_from_slice(&[0, 0, 41]);
        packet.extend_from_slice(&payload.to_be_bytes());
        packet.extend_from_slice(&[0, 0, 0x80, 0, 0, 0]);
    }
    packet
}

/// The benchmarked queries: (name, packet, expected rcode).
fn cases() -> Vec<(&'static str, Vec<u8>, Rcode)> {
    // QDCOUNT 2 with a single question: FORMERR, header-only reply.
    let mut formerr = query("www.example.com", A, None);
    formerr[5] = 2;
    vec![
        (
            "positive_a",
            query("www.example.com", A, None),
            Rcode::NoError,
        ),
        (
            "nxdomain",
            query("nope.example.com", A, None),
            Rcode::NxDomain,
        ),
        (
            "cname_chain",
            query("chain1.example.com", A, None),
            Rcode::NoError,
        ),
        (
            "wildcard",
            query("host.wild.example.com", A, None),
            Rcode::NoError,
        ),
        (
            "referral",
            query("host.child.example.com", A, None),
            Rcode::NoError,
        ),
        (
            "edns_aaaa",
            query("www.example.com", AAAA, Some(1232)),
            Rcode::NoError,
        ),
        ("formerr", formerr, Rcode::FormErr),
    ]
}

/// `respond` over UDP for each case, into one reused output buffer.
fn bench_respond(c: &mut Criterion) {
    let snapshot = snapshot();
    let mut out = Vec::with_capacity(65_535);
    let mut group = c.benchmark_group("respond");
    for (name, packet, rcode) in cases() {
        let outcome = respond(&snapshot, &packet, CLIENT, Transport::Udp, &mut out)
            .expect("every benchmarked query gets a reply");
        assert_eq!(outcome.rcode, rcode, "case {name} answers as intended");
        group.bench_function(name, |b| {
            b.iter(|| {
                respond(
                    black_box(&snapshot),
                    black_box(&packet),
                    CLIENT,
                    Transport::Udp,
                    &mut out,
                )
            });
        });
    }
    group.finish();
}

/// A config with three regions, a nets-override map and one service per policy.
const GSLB_CONFIG: &str = r#"
[dns]
listen = ["127.0.0.1:0"]
zones_dir = "zones"
[geo]
nets = "nets.csv"
[regions.us-east]
capacity = 100
[regions.eu-west]
capacity = 60
[regions.ap-south]
capacity = 40
[maps.world]
default = ["us-east", "eu-west", "ap-south"]
[services."geo.example.com"]
map = "world"
spill = "capacity"
answers.us-east = ["192.0.2.10"]
answers.eu-west = ["192.0.2.20"]
answers.ap-south = ["192.0.2.30"]
[services."weighted.example.com"]
policy = "weighted"
weights = { us-east = 3, eu-west = 2, ap-south = 1 }
answers.us-east = ["192.0.2.10"]
answers.eu-west = ["192.0.2.20"]
answers.ap-south = ["192.0.2.30"]
[services."failover.example.com"]
policy = "failover"
tiers = [["us-east", "eu-west"], ["ap-south"]]
answers.us-east = ["192.0.2.10"]
answers.eu-west = ["192.0.2.20"]
answers.ap-south = ["192.0.2.30"]
"#;

/// A query for `name` A with EDNS and an ECS option for 81.2.69.0/24.
fn ecs_query(name: &str) -> Vec<u8> {
    let mut packet = query(name, A, Some(1232));
    // Extend the OPT record (last 11 bytes, RDLENGTH 0) with the ECS option.
    let len = packet.len();
    packet[len - 2..].copy_from_slice(&11u16.to_be_bytes());
    packet.extend_from_slice(&[0, 8, 0, 7, 0, 1, 24, 0, 81, 2, 69]);
    packet
}

/// GSLB answers through `respond` with ECS: per policy, with every region up and with the
/// client's first region down (health in the loop).
fn bench_gslb(c: &mut Criterion) {
    use meridian::policy::{HealthView, RegionStatus};
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("zones")).expect("zones dir");
    std::fs::write(dir.path().join("zones/example.com.zone"), EXAMPLE_COM).expect("zone");
    std::fs::write(
        dir.path().join("nets.csv"),
        "81.2.69.0/24,eu-west us-east\n",
    )
    .expect("nets");
    std::fs::write(dir.path().join("meridian.toml"), GSLB_CONFIG).expect("config");
    let loaded = meridian::snapshot::load(&dir.path().join("meridian.toml")).expect("loads");
    let snapshot = loaded.snapshot;
    let mut out = Vec::with_capacity(65_535);
    let mut group = c.benchmark_group("gslb");
    for (health, label) in [(None, "up"), (Some(1usize), "first_down")] {
        let mut view = HealthView {
            regions: vec![RegionStatus::NOMINAL; 3].into_boxed_slice(),
            held: vec![false; 3].into_boxed_slice(),
        };
        if let Some(down) = health {
            // Regions sorted by name: ap-south 0, eu-west 1, us-east 2.
            view.regions[down] = RegionStatus::DOWN;
        }
        snapshot.health.store(std::sync::Arc::new(view));
        for service in ["geo", "weighted", "failover"] {
            let packet = ecs_query(&format!("{service}.example.com"));
            let outcome =
                respond(&snapshot, &packet, CLIENT, Transport::Udp, &mut out).expect("a reply");
            assert_eq!(outcome.rcode, Rcode::NoError, "{service} answers");
            group.bench_function(format!("{service}_{label}"), |b| {
                b.iter(|| {
                    respond(
                        black_box(&snapshot),
                        black_box(&packet),
                        CLIENT,
                        Transport::Udp,
                        &mut out,
                    )
                });
            });
        }
    }
    group.finish();
}

/// `parse_query` alone, without and with an OPT record.
fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_query");
    for (name, packet) in [
        ("plain", query("www.example.com", A, None)),
        ("edns", query("www.example.com", AAAA, Some(1232))),
    ] {
        parse_query(&packet).expect("benchmarked query parses");
        group.bench_function(name, |b| b.iter(|| parse_query(black_box(&packet))));
    }
    group.finish();
}

criterion_group!(benches, bench_respond, bench_parse, bench_gslb);
criterion_main!(benches);
