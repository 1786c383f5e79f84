//! Fuzzes the per-query path: arbitrary bytes through `respond` over UDP and TCP.
//!
//! Invariants checked for every input:
//! - nothing panics (for either transport);
//! - a reply, when there is one, is a header or more, has QR set and echoes the query ID;
//! - a runt packet (< 12 bytes) or a response (QR=1) gets no reply;
//! - the outcome's rcode and TC flag match the header;
//! - over UDP a reply to a query without EDNS fits in 512 bytes, and one with EDNS fits in the
//!   requestor's payload size (at least 512, at most our 1232 cap);
//! - when `parse_query` accepts the packet, the reply echoes the question verbatim, decodes with
//!   hickory-proto, and hickory re-encoding and re-decoding it gives the same question and
//!   records (parse, re-emit, re-parse).

#![no_main]

use std::sync::LazyLock;

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use meridian::dns::wire::{self, FLAG_QR, FLAG_TC, HEADER_LEN};
use meridian::dns::{Outcome, Transport, respond};
use meridian::snapshot::Snapshot;

/// Our EDNS UDP payload cap, as in the default config.
const MAX_UDP_PAYLOAD: u16 = 1232;
/// Largest UDP reply to a query without EDNS (RFC 1035 section 4.2.1).
const PLAIN_UDP_LIMIT: usize = 512;

/// The main zone: apex data, CNAME chains and loops, wildcards, empty non-terminals, a
/// delegation with glue.
const EXAMPLE_COM: &str = include_str!("../../tests/data/example.com.zone");

/// A second zone, for CNAME chains that cross zones.
const EXAMPLE_NET: &str = include_str!("../../tests/data/example.net.zone");

/// Large answers: RRsets too big for 512 or 1232 bytes, and a referral with ~1 KB of glue.
const BIG_TEST: &str = include_str!("../../tests/data/big.test.zone");

/// The resolver address every input comes from.
const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 53));

/// Geo sections: three regions, a map with nets overrides, and one GSLB name answering with
/// addresses or a CNAME, so ECS options drive `locate` and `policy` too.
const GEO: &str = r#"
[geo]
nets = "nets.csv"
[regions.a]
[regions.b]
[regions.c]
[maps.world]
default = ["a", "b", "c"]
[services."gslb.example.com"]
map = "world"
answers.a = ["192.0.2.10", "2001:db8::10"]
answers.b = ["192.0.2.20"]
answers.c = { cname = "www.example.net." }
"#;

/// Nets overrides for the map above.
const NETS: &str = "81.2.69.0/24,b a\n175.16.199.0/24,c\n2a02:d180::/29,b\n";

/// The snapshot every input is answered from, built once through the same `load` as `serve`.
static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("meridian-fuzz-query-{}", std::process::id()));
    let zones = dir.join("zones");
    std::fs::create_dir_all(&zones).expect("temp dir");
    for (origin, text) in [
        ("example.com", EXAMPLE_COM),
        ("example.net", EXAMPLE_NET),
        ("big.test", BIG_TEST),
    ] {
        std::fs::write(zones.join(format!("{origin}.zone")), text).expect("write zone");
    }
    std::fs::write(dir.join("nets.csv"), NETS).expect("write nets");
    let config = dir.join("meridian.toml");
    let dns = format!(
        "[dns]\nlisten = [\"127.0.0.1:0\"]\nzones_dir = \"zones\"\nmax_udp_payload = {MAX_UDP_PAYLOAD}\n"
    );
    std::fs::write(&config, format!("{dns}{GEO}")).expect("write config");
    let loaded = meridian::snapshot::load(&config).expect("fixed config loads");
    // The snapshot holds everything it read: the files are not needed again.
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(loaded.snapshot.services.len(), 1);
    loaded.snapshot
});

fuzz_target!(|packet: &[u8]| {
    let mut out = Vec::new();
    for transport in [Transport::Udp, Transport::Tcp] {
        let outcome = respond(&SNAPSHOT, packet, CLIENT, transport, &mut out);
        check(packet, transport, outcome, &out);
    }
});

/// Asserts the invariants of one reply (`outcome` and the bytes in `reply`).
fn check(packet: &[u8], transport: Transport, outcome: Option<Outcome>, reply: &[u8]) {
    let parsed = wire::parse_query(packet);
    let Some(outcome) = outcome else {
        assert!(
            packet.len() < HEADER_LEN || u16::from_be_bytes([packet[2], packet[3]]) & FLAG_QR != 0,
            "dropped a packet that is neither a runt nor a response"
        );
        return;
    };
    assert!(
        reply.len() >= HEADER_LEN,
        "reply shorter than a header: {reply:02x?}"
    );
    assert_eq!(reply[..2], packet[..2], "reply does not echo the ID");
    let flags = u16::from_be_bytes([reply[2], reply[3]]);
    assert!(flags & FLAG_QR != 0, "reply without QR");
    assert_eq!(
        flags & 0xf,
        outcome.rcode as u16 & 0xf,
        "header rcode differs from the outcome"
    );
    assert_eq!(
        flags & FLAG_TC != 0,
        outcome.truncated,
        "TC differs from the outcome"
    );

    let Ok(query) = parsed else {
        assert_eq!(reply.len(), HEADER_LEN, "error reply is not header-only");
        return;
    };
    if transport == Transport::Udp {
        let limit = match query.edns {
            None => PLAIN_UDP_LIMIT,
            Some(edns) => {
                usize::from(edns.payload).clamp(PLAIN_UDP_LIMIT, usize::from(MAX_UDP_PAYLOAD))
            }
        };
        assert!(
            reply.len() <= limit,
            "UDP reply of {} bytes exceeds {limit} (edns: {:?})",
            reply.len(),
            query.edns
        );
    } else {
        assert!(!outcome.truncated, "TCP reply truncated");
    }
    assert!(
        reply.len() >= query.question_end
            && reply[HEADER_LEN..query.question_end] == packet[HEADER_LEN..query.question_end],
        "reply does not echo the question"
    );

    let decoded = Message::from_vec(reply)
        .unwrap_or_else(|err| panic!("reply does not decode: {err}: {reply:02x?}"));
    assert_eq!(decoded.metadata.id, query.id, "decoded ID differs");
    assert_eq!(
        decoded.edns.is_some(),
        query.edns.is_some(),
        "OPT in reply iff OPT in query"
    );
    let emitted = decoded
        .to_vec()
        .unwrap_or_else(|err| panic!("decoded reply does not re-encode: {err}: {decoded:?}"));
    let reparsed = Message::from_vec(&emitted)
        .unwrap_or_else(|err| panic!("re-encoded reply does not decode: {err}: {emitted:02x?}"));
    assert_eq!(
        reparsed.queries, decoded.queries,
        "question changed on re-parse"
    );
    assert_eq!(
        reparsed.answers, decoded.answers,
        "answers changed on re-parse"
    );
    assert_eq!(
        reparsed.authorities, decoded.authorities,
        "authority changed on re-parse"
    );
    assert_eq!(
        reparsed.additionals, decoded.additionals,
        "additional changed on re-parse"
    );
}
