//! Wire conformance, one test per line of the behaviour checklist, named by RFC section.

use std::time::Duration;

use crate::harness::{Query, Reply, TestServer, qtype, rcode};

/// `query` answered over UDP by a fresh default server.
async fn udp(query: &Query) -> Reply {
    TestServer::start().await.udp(query).await
}

// ---- Header and opcodes (RFC 1035 4.1.1, RFC 6895) ----

#[tokio::test]
async fn rfc1035_4_1_1_runt_packet_gets_no_response() {
    let server = TestServer::start().await;
    assert_eq!(
        server
            .udp_exchange(&[0x12, 0x34, 0, 0, 0, 1], Duration::from_millis(300))
            .await,
        None
    );
    // And the server is still up.
    assert_eq!(
        server
            .udp(&Query::new("www.example.com", qtype::A))
            .await
            .rcode(),
        rcode::NOERROR
    );
}

#[tokio::test]
async fn rfc1035_4_1_1_response_packet_gets_no_response() {
    let server = TestServer::start().await;
    let mut query = Query::new("www.example.com", qtype::A);
    query.flags |= 0x8000;
    assert_eq!(
        server
            .udp_exchange(&query.build(), Duration::from_millis(300))
            .await,
        None
    );
}

#[tokio::test]
async fn rfc1035_4_1_1_unknown_opcode_is_notimp_header_only() {
    let server = TestServer::start().await;
    let mut query = Query::new("www.example.com", qtype::A).edns(1232);
    query.flags = 0x0100 | (15 << 11);
    let raw = server.udp_raw(&query.build()).await;
    assert_eq!(raw.len(), 12, "header only: {raw:02x?}");
    let flags = u16::from_be_bytes([raw[2], raw[3]]);
    assert_eq!(
        flags,
        0x8000 | (15 << 11) | 0x0100 | 4,
        "QR, opcode and RD echoed, NOTIMP, no AA/RA/AD"
    );
    assert_eq!(&raw[..2], &query.id.to_be_bytes());
}

#[tokio::test]
async fn rfc1035_4_1_2_qdcount_zero_or_two_is_formerr() {
    let server = TestServer::start().await;
    for qdcount in [0u8, 2] {
        let mut packet = Query::new("www.example.com", qtype::A).build();
        packet[5] = qdcount;
        let raw = server.udp_raw(&packet).await;
        assert_eq!(
            u16::from(raw[3] & 0xf),
            rcode::FORMERR,
            "FORMERR for QDCOUNT {qdcount}"
        );
        assert_eq!(raw[2] & 0x80, 0x80);
    }
}

#[tokio::test]
async fn rfc1035_4_1_1_id_rd_preserved_ra_ad_cd_z_never_set() {
    let server = TestServer::start().await;
    for flags in [0x0000u16, 0x0100, 0x0130, 0x0170] {
        let mut query = Query::new("www.example.com", qtype::A);
        query.flags = flags;
        query.id = 0xbeef ^ flags;
        let reply = server.udp(&query).await;
        assert_eq!(reply.message.metadata.id, query.id);
        let got = reply.flags();
        assert_eq!(got & 0x0100, flags & 0x0100, "RD echoed");
        assert_eq!(got & 0x00f0, 0, "RA, Z, AD, CD never set: {got:04x}");
        assert_eq!(got & 0x8000, 0x8000);
    }
}

#[tokio::test]
async fn rfc1035_2_3_3_question_case_echoed_byte_for_byte() {
    let server = TestServer::start().await;
    let query = Query::new("WwW.ExAmPlE.cOm", qtype::A);
    let packet = query.build();
    for raw in [server.udp_raw(&packet).await, server.tcp_raw(&packet).await] {
        assert_eq!(
            &raw[12..packet.len()],
            &packet[12..],
            "question echoed verbatim"
        );
        // The owner points at the question, so it carries the query's case too.
        let reply = Reply::decode(raw);
        assert_eq!(reply.answers(), ["WwW.ExAmPlE.cOm. 3600 IN A 192.0.2.80"]);
    }
}

#[tokio::test]
async fn rfc1035_4_1_1_query_with_tc_set_is_answered() {
    let mut query = Query::new("www.example.com", qtype::A);
    query.flags |= 0x0200;
    let reply = udp(&query).await;
    assert_eq!(reply.rcode(), rcode::NOERROR);
    assert!(!reply.tc());
    assert_eq!(reply.answers().len(), 1);
}

#[tokio::test]
async fn rfc1035_3_2_4_class_in_and_any_answered_others_refused() {
    let server = TestServer::start().await;
    for (class, expect) in [
        (1u16, rcode::NOERROR),
        (255, rcode::NOERROR),
        (3, rcode::REFUSED),
        (4, rcode::REFUSED),
        (254, rcode::REFUSED),
    ] {
        let mut query = Query::new("www.example.com", qtype::A);
        query.qclass = class;
        let reply = server.udp(&query).await;
        assert_eq!(reply.rcode(), expect, "class {class}");
        assert_eq!(reply.aa(), expect == rcode::NOERROR, "class {class}");
    }
    // CH TXT version.bind is off by default.
    let mut query = Query::new("version.bind", qtype::TXT);
    query.qclass = 3;
    assert_eq!(server.udp(&query).await.rcode(), rcode::REFUSED);
}

#[tokio::test]
async fn rfc1035_3_2_3_maila_mailb_notimp_and_xfr_rules() {
    let server = TestServer::start().await;
    for qtype in [qtype::MAILA, qtype::MAILB] {
        assert_eq!(
            server.udp(&Query::new("example.com", qtype)).await.rcode(),
            rcode::NOTIMP
        );
        assert_eq!(
            server.tcp(&Query::new("example.com", qtype)).await.rcode(),
            rcode::NOTIMP
        );
    }
    for qtype in [qtype::AXFR, qtype::IXFR] {
        assert_eq!(
            server.udp(&Query::new("example.com", qtype)).await.rcode(),
            rcode::NOTIMP,
            "{qtype} over UDP"
        );
        assert_eq!(
            server.tcp(&Query::new("example.com", qtype)).await.rcode(),
            rcode::REFUSED,
            "{qtype} over TCP"
        );
    }
}

// ---- Answers (RFC 1034 4.3.2, RFC 2308, RFC 4592, RFC 8482) ----

#[tokio::test]
async fn rfc1034_4_3_2_names_outside_our_zones_are_refused_without_aa() {
    let server = TestServer::start().await;
    for name in ["www.example.org", "com", ".", "example.co", "xexample.com"] {
        let reply = server.udp(&Query::new(name, qtype::A)).await;
        assert_eq!(reply.rcode(), rcode::REFUSED, "{name}");
        assert!(!reply.aa(), "{name}");
        assert!(reply.answers().is_empty());
    }
}

#[tokio::test]
async fn rfc1034_4_3_2_authoritative_answer_has_aa() {
    let reply = udp(&Query::new("www.example.com", qtype::AAAA)).await;
    assert!(reply.aa());
    assert_eq!(
        reply.answers(),
        ["www.example.com. 3600 IN AAAA 2001:db8::80"]
    );
    assert!(reply.authority().is_empty());
}

#[tokio::test]
async fn rfc2308_3_nxdomain_carries_soa_with_negative_ttl() {
    let reply = udp(&Query::new("nope.example.com", qtype::A)).await;
    assert_eq!(reply.rcode(), rcode::NXDOMAIN);
    assert!(reply.aa());
    assert!(reply.answers().is_empty());
    // min(SOA TTL 3600, MINIMUM 300) = 300.
    assert_eq!(
        reply.authority(),
        [
            "example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. 2026112101 7200 900 1209600 300"
        ]
    );
}

#[tokio::test]
async fn rfc2308_2_2_nodata_carries_soa() {
    let reply = udp(&Query::new("www.example.com", qtype::MX)).await;
    assert_eq!(reply.rcode(), rcode::NOERROR);
    assert!(reply.aa());
    assert!(reply.answers().is_empty());
    assert_eq!(reply.authority().len(), 1);
    assert!(reply.authority()[0].starts_with("example.com. 300 IN SOA"));
}

#[tokio::test]
async fn rfc8020_empty_non_terminals_are_nodata_not_nxdomain() {
    let server = TestServer::start().await;
    for name in [
        "c.ent.example.com",
        "b.c.ent.example.com",
        "ent.example.com",
    ] {
        let reply = server.udp(&Query::new(name, qtype::A)).await;
        assert_eq!(reply.rcode(), rcode::NOERROR, "{name}");
        assert!(reply.answers().is_empty(), "{name}");
        assert!(reply.authority()[0].contains("SOA"), "{name}");
    }
}

#[tokio::test]
async fn rfc1034_3_6_2_cname_followed_inside_zone() {
    let reply = udp(&Query::new("chain1.example.com", qtype::A)).await;
    assert!(reply.aa());
    assert_eq!(
        reply.answers(),
        [
            "chain1.example.com. 3600 IN CNAME chain2.example.com.",
            "chain2.example.com. 3600 IN CNAME alias.example.com.",
            "alias.example.com. 3600 IN CNAME www.example.com.",
            "www.example.com. 3600 IN A 192.0.2.80",
        ]
    );
}

#[tokio::test]
async fn rfc1034_3_6_2_cname_query_returns_only_the_cname() {
    let reply = udp(&Query::new("alias.example.com", qtype::CNAME)).await;
    assert_eq!(
        reply.answers(),
        ["alias.example.com. 3600 IN CNAME www.example.com."]
    );
}

#[tokio::test]
async fn rfc1034_3_6_2_cname_chain_crosses_served_zones() {
    let reply = udp(&Query::new("xzone.example.com", qtype::A)).await;
    assert_eq!(
        reply.answers(),
        [
            "xzone.example.com. 3600 IN CNAME www.example.net.",
            "www.example.net. 600 IN A 198.51.100.80"
        ]
    );
}

#[tokio::test]
async fn rfc1034_3_6_2_cname_out_of_our_zones_stops_with_noerror() {
    let reply = udp(&Query::new("out.example.com", qtype::A)).await;
    assert_eq!(reply.rcode(), rcode::NOERROR);
    assert_eq!(
        reply.answers(),
        ["out.example.com. 3600 IN CNAME www.example.org."]
    );
    assert!(reply.authority().is_empty());
}

#[tokio::test]
async fn rfc6604_2_dangling_cname_is_nxdomain_with_chain() {
    let reply = udp(&Query::new("dangling.example.com", qtype::A)).await;
    assert_eq!(reply.rcode(), rcode::NXDOMAIN);
    assert_eq!(
        reply.answers(),
        ["dangling.example.com. 3600 IN CNAME nothing.example.com."]
    );
    assert!(reply.authority()[0].contains("SOA"));
}

#[tokio::test]
async fn rfc1034_3_6_2_cname_loops_stop() {
    let server = TestServer::start().await;
    let reply = server.udp(&Query::new("loop1.example.com", qtype::A)).await;
    assert_eq!(reply.rcode(), rcode::NOERROR);
    assert_eq!(
        reply.answers(),
        [
            "loop1.example.com. 3600 IN CNAME loop2.example.com.",
            "loop2.example.com. 3600 IN CNAME loop1.example.com."
        ]
    );
    let reply = server.udp(&Query::new("self.example.com", qtype::A)).await;
    assert_eq!(
        reply.answers(),
        ["self.example.com. 3600 IN CNAME self.example.com."]
    );
}

#[tokio::test]
async fn rfc4592_3_3_wildcard_synthesises_the_query_name() {
    let server = TestServer::start().await;
    let reply = server
        .udp(&Query::new("Foo.Wild.example.com", qtype::A))
        .await;
    assert!(reply.aa());
    assert_eq!(
        reply.answers(),
        ["Foo.Wild.example.com. 3600 IN A 192.0.2.99"]
    );
    // Several labels below the closest encloser match too (RFC 4592 2.2.1).
    let reply = server
        .udp(&Query::new("a.b.wild.example.com", qtype::TXT))
        .await;
    assert_eq!(reply.answers(), ["a.b.wild.example.com. 3600 IN TXT wild"]);
    // The wildcard owns no MX: NODATA, not NXDOMAIN.
    let reply = server
        .udp(&Query::new("foo.wild.example.com", qtype::MX))
        .await;
    assert_eq!(reply.rcode(), rcode::NOERROR);
    assert!(reply.answers().is_empty());
}

#[tokio::test]
async fn rfc4592_2_2_wildcard_not_applied_to_existing_names() {
    let server = TestServer::start().await;
    let reply = server
        .udp(&Query::new("exists.wild.example.com", qtype::TXT))
        .await;
    assert_eq!(reply.rcode(), rcode::NOERROR);
    assert!(
        reply.answers().is_empty(),
        "exists.wild owns no TXT: {:?}",
        reply.answers()
    );
    // The wildcard name itself answers as itself.
    let reply = server
        .udp(&Query::new("*.wild.example.com", qtype::A))
        .await;
    assert_eq!(
        reply.answers(),
        ["*.wild.example.com. 3600 IN A 192.0.2.99"]
    );
}

#[tokio::test]
async fn rfc4592_2_2_2_wildcard_not_applied_below_existing_empty_non_terminal() {
    let server = TestServer::start().await;
    // *.ent exists, but c.ent is an empty non-terminal: x.c.ent's closest encloser is c.ent.
    let reply = server
        .udp(&Query::new("x.c.ent.example.com", qtype::A))
        .await;
    assert_eq!(reply.rcode(), rcode::NXDOMAIN);
    let reply = server.udp(&Query::new("x.ent.example.com", qtype::A)).await;
    assert_eq!(reply.answers(), ["x.ent.example.com. 3600 IN A 192.0.2.8"]);
}

#[tokio::test]
async fn rfc4592_4_4_wildcard_cname_is_followed() {
    let reply = udp(&Query::new("any.cwild.example.com", qtype::A)).await;
    assert_eq!(
        reply.answers(),
        [
            "any.cwild.example.com. 3600 IN CNAME www.example.com.",
            "www.example.com. 3600 IN A 192.0.2.80"
        ]
    );
}

#[tokio::test]
async fn rfc1034_4_3_2_referral_below_a_cut_has_ns_and_glue_without_aa() {
    let server = TestServer::start().await;
    for name in [
        "child.example.com",
        "host.deep.child.example.com",
        "ns.child.example.com",
    ] {
        let reply = server.udp(&Query::new(name, qtype::A)).await;
        assert_eq!(reply.rcode(), rcode::NOERROR, "{name}");
        assert!(!reply.aa(), "{name}: referrals are not authoritative");
        assert!(reply.answers().is_empty(), "{name}");
        let mut authority = reply.authority();
        authority.sort();
        assert_eq!(
            authority,
            [
                "child.example.com. 3600 IN NS ns.child.example.com.",
                "child.example.com. 3600 IN NS ns.elsewhere.net."
            ]
        );
        let mut additional = reply.additional();
        additional.sort();
        assert_eq!(
            additional,
            [
                "ns.child.example.com. 3600 IN A 192.0.2.53",
                "ns.child.example.com. 3600 IN AAAA 2001:db8::53"
            ]
        );
    }
}

#[tokio::test]
async fn rfc4035_3_1_4_1_ds_at_a_cut_is_answered_from_the_parent_side() {
    let reply = udp(&Query::new("child.example.com", qtype::DS)).await;
    assert!(reply.aa());
    assert_eq!(reply.rcode(), rcode::NOERROR);
    assert!(reply.answers().is_empty());
    assert!(reply.authority()[0].starts_with("example.com. 300 IN SOA"));
}

#[tokio::test]
async fn rfc8482_4_any_never_returns_the_whole_node() {
    let server = TestServer::start().await;
    for transport_tcp in [false, true] {
        let query = Query::new("www.example.com", qtype::ANY);
        let reply = if transport_tcp {
            server.tcp(&query).await
        } else {
            server.udp(&query).await
        };
        assert_eq!(
            reply.answers(),
            ["www.example.com. 3600 IN HINFO RFC8482 "],
            "tcp={transport_tcp}"
        );
        assert!(reply.aa());
    }
    // A name with one RRset gets that RRset.
    let reply = server
        .udp(&Query::new("alias.example.com", qtype::ANY))
        .await;
    assert_eq!(
        reply.answers(),
        ["alias.example.com. 3600 IN CNAME www.example.com."]
    );
    // Empty non-terminal and missing name behave as for any other type.
    assert_eq!(
        server
            .udp(&Query::new("ent.example.com", qtype::ANY))
            .await
            .answers()
            .len(),
        0
    );
    assert_eq!(
        server
            .udp(&Query::new("nope.example.com", qtype::ANY))
            .await
            .rcode(),
        rcode::NXDOMAIN
    );
}

#[tokio::test]
async fn rfc3597_unknown_types_are_nodata_with_aa() {
    let reply = udp(&Query::new("www.example.com", 666)).await;
    assert_eq!(reply.rcode(), rcode::NOERROR);
    assert!(reply.aa());
    assert!(reply.answers().is_empty());
    assert!(reply.authority()[0].contains("SOA"));
}

// ---- EDNS(0) (RFC 6891, RFC 8906) ----

#[tokio::test]
async fn rfc6891_7_opt_in_opt_out_and_none_without() {
    let server = TestServer::start().await;
    let reply = server
        .udp(&Query::new("www.example.com", qtype::A).edns(1232))
        .await;
    let edns = reply.message.edns.as_ref().expect("OPT in the reply");
    assert_eq!(edns.version(), 0);
    let reply = server.udp(&Query::new("www.example.com", qtype::A)).await;
    assert!(reply.message.edns.is_none());
    assert_eq!(reply.raw[10..12], [0, 0], "ARCOUNT 0");
    // Also on error replies to parsed queries.
    let reply = server
        .udp(&Query::new("www.example.org", qtype::A).edns(1232))
        .await;
    assert!(reply.message.edns.is_some());
}

#[tokio::test]
async fn rfc6891_6_1_3_version_above_zero_is_badvers() {
    let mut query = Query::new("www.example.com", qtype::A);
    query.edns = Some((1232, 1, 0, Vec::new()));
    let reply = udp(&query).await;
    assert_eq!(reply.rcode(), rcode::BADVERS);
    assert_eq!(
        reply.flags() & 0xf,
        0,
        "header RCODE 0, extended bits in OPT"
    );
    let edns = reply.message.edns.as_ref().expect("OPT in BADVERS reply");
    assert_eq!(edns.version(), 0);
    assert!(reply.answers().is_empty() && reply.authority().is_empty());
    assert_eq!(reply.message.queries.len(), 1);
}

#[tokio::test]
async fn rfc6891_6_1_2_unknown_options_and_flags_are_not_echoed() {
    let mut query = Query::new("www.example.com", qtype::A);
    // Option 65001 with 3 bytes, and an unknown flag bit (0x4000) besides DO=0.
    query.edns = Some((1232, 0, 0x4000, vec![0xfd, 0xe9, 0, 3, 1, 2, 3]));
    let reply = udp(&query).await;
    let opt = &reply.raw[reply.raw.len() - 11..];
    assert_eq!(opt[0..3], [0, 0, 41], "OPT is the last record");
    assert_eq!(opt[7..9], [0, 0], "no flags echoed");
    assert_eq!(opt[9..11], [0, 0], "no options echoed");
}

#[tokio::test]
async fn rfc3225_3_do_bit_copied_from_the_query() {
    let server = TestServer::start().await;
    for flags in [0x8000u16, 0] {
        let mut query = Query::new("www.example.com", qtype::A);
        query.edns = Some((1232, 0, flags, Vec::new()));
        let reply = server.udp(&query).await;
        let edns = reply.message.edns.as_ref().expect("OPT");
        assert_eq!(edns.flags().dnssec_ok, flags != 0);
    }
}

#[tokio::test]
async fn rfc6891_6_2_5_advertised_payload_is_our_own() {
    let server = TestServer::start().await;
    for client in [512u16, 1232, 4096, 65_000] {
        let reply = server
            .udp(&Query::new("www.example.com", qtype::A).edns(client))
            .await;
        assert_eq!(
            reply.message.edns.as_ref().expect("OPT").max_payload(),
            1232,
            "client said {client}"
        );
    }
}

#[tokio::test]
async fn rfc1035_4_2_1_udp_without_edns_is_capped_at_512_with_tc() {
    let server = TestServer::start().await;
    let query = Query::new("mid.big.test", qtype::TXT);
    let raw = server.udp_raw(&query.build()).await;
    assert!(raw.len() <= 512);
    let reply = Reply::decode(raw);
    assert!(reply.tc());
    assert!(reply.answers().is_empty());
    assert_eq!(reply.message.queries.len(), 1, "question kept");
    // The same query over TCP gets everything.
    let reply = server.tcp(&query).await;
    assert!(!reply.tc());
    assert_eq!(reply.answers().len(), 8);
}

#[tokio::test]
async fn rfc6891_7_udp_with_edns_is_capped_at_min_of_client_and_ours() {
    let server = TestServer::start().await;
    // ~900 bytes: fits a 1232 (our cap) payload even when the client offers 4096.
    let reply = server
        .udp(&Query::new("mid.big.test", qtype::TXT).edns(4096))
        .await;
    assert!(!reply.tc());
    assert_eq!(reply.answers().len(), 8);
    // The client's smaller payload wins.
    let raw = server
        .udp_raw(&Query::new("mid.big.test", qtype::TXT).edns(800).build())
        .await;
    assert!(raw.len() <= 800);
    let reply = Reply::decode(raw);
    assert!(reply.tc());
    assert!(reply.message.edns.is_some(), "OPT kept when truncating");
    // Below 512 counts as 512.
    let raw = server
        .udp_raw(&Query::new("www.example.com", qtype::A).edns(100).build())
        .await;
    assert!(!Reply::decode(raw).tc());
    // ~3500 bytes: above our cap whatever the client says; whole over TCP.
    let raw = server
        .udp_raw(&Query::new("txt.big.test", qtype::TXT).edns(65_000).build())
        .await;
    assert!(raw.len() <= 1232);
    assert!(Reply::decode(raw).tc());
    let reply = server
        .tcp(&Query::new("txt.big.test", qtype::TXT).edns(65_000))
        .await;
    assert!(!reply.tc());
    assert_eq!(reply.answers().len(), 40);
}

#[tokio::test]
async fn rfc9471_3_referral_that_cannot_carry_its_glue_is_truncated() {
    let server = TestServer::start().await;
    let query = Query::new("www.deleg.big.test", qtype::A);
    let raw = server.udp_raw(&query.build()).await;
    assert!(raw.len() <= 512);
    let reply = Reply::decode(raw);
    assert!(reply.tc(), "in-domain glue must not be dropped silently");
    assert!(!reply.aa());
    let reply = server.tcp(&query).await;
    assert!(!reply.tc());
    assert_eq!(reply.authority().len(), 10);
    assert_eq!(reply.additional().len(), 20);
    // With EDNS 1232 the whole referral fits over UDP.
    let reply = server.udp(&query.clone().edns(1232)).await;
    assert!(!reply.tc());
    assert_eq!(reply.additional().len(), 20);
}

#[tokio::test]
async fn rfc6891_6_1_1_two_opt_records_are_formerr() {
    let server = TestServer::start().await;
    let mut packet = Query::new("www.example.com", qtype::A).edns(1232).build();
    packet[11] = 2;
    packet.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
    let raw = server.udp_raw(&packet).await;
    assert_eq!(raw[3] & 0xf, 1);
}

#[tokio::test]
async fn rfc8906_every_parsable_query_gets_an_answer() {
    let server = TestServer::start().await;
    let cases = [
        Query::new("www.example.com", 0),
        Query::new("www.example.com", 65_535),
        Query::new("www.example.com", qtype::A).edns(0),
        Query {
            qclass: 0,
            ..Query::new("www.example.com", qtype::A)
        },
        Query {
            flags: 0x07ff, // every flag bit except QR and the opcode
            ..Query::new("www.example.com", qtype::A)
        },
    ];
    for query in cases {
        assert!(
            server
                .udp_exchange(&query.build(), Duration::from_secs(2))
                .await
                .is_some(),
            "{query:?}"
        );
    }
}

// ---- EDNS Client Subnet (RFC 7871) ----

/// `name` A with EDNS and an ECS option carrying `ecs` (FAMILY, SOURCE, SCOPE, ADDRESS...).
pub fn ecs_query(name: &str, ecs: &[u8]) -> Query {
    let mut rdata = vec![0, 8];
    rdata.extend_from_slice(&(ecs.len() as u16).to_be_bytes());
    rdata.extend_from_slice(ecs);
    Query {
        edns: Some((1232, 0, 0, rdata)),
        ..Query::new(name, qtype::A)
    }
}

/// The ECS option of `reply` as (address, SOURCE, SCOPE), if its OPT record has one.
pub fn ecs_of(reply: &Reply) -> Option<(std::net::IpAddr, u8, u8)> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    match reply
        .message
        .edns
        .as_ref()?
        .options()
        .get(EdnsCode::Subnet)?
    {
        EdnsOption::Subnet(subnet) => {
            Some((subnet.addr(), subnet.source_prefix(), subnet.scope_prefix()))
        }
        _ => None,
    }
}

#[tokio::test]
async fn rfc7871_7_2_1_ecs_echoed_with_scope_zero_for_static_answers() {
    let server = TestServer::start().await;
    let cases: [(&str, &[u8], &str, u8); 4] = [
        (
            "www.example.com",
            &[0, 1, 24, 0, 81, 2, 69],
            "81.2.69.0",
            24,
        ),
        (
            "nope.example.com",
            &[0, 2, 48, 0, 0x2a, 0x02, 0xd1, 0x80, 0, 0],
            "2a02:d180::",
            48,
        ),
        ("child.example.com", &[0, 1, 0, 0], "0.0.0.0", 0),
        (
            "www.example.com",
            &[0, 1, 25, 0, 10, 1, 2, 0x80],
            "10.1.2.128",
            25,
        ),
    ];
    for (name, option, address, source) in cases {
        for reply in [
            server.udp(&ecs_query(name, option)).await,
            server.tcp(&ecs_query(name, option)).await,
        ] {
            let echoed = ecs_of(&reply).unwrap_or_else(|| panic!("{name}: ECS echoed"));
            assert_eq!(echoed, (address.parse().unwrap(), source, 0), "{name}");
        }
    }
    // Exact bytes: FAMILY, SOURCE and ADDRESS unchanged, SCOPE 0, OPT last.
    let raw = server
        .udp_raw(&ecs_query("www.example.com", &[0, 1, 20, 0, 81, 2, 64]).build())
        .await;
    assert_eq!(raw[raw.len() - 11..], [0, 8, 0, 7, 0, 1, 20, 0, 81, 2, 64]);
}

#[tokio::test]
async fn rfc7871_7_2_1_no_ecs_in_reply_without_ecs_in_query() {
    let reply = udp(&Query::new("www.example.com", qtype::A).edns(1232)).await;
    assert!(reply.message.edns.is_some());
    assert_eq!(ecs_of(&reply), None);
}

#[tokio::test]
async fn rfc7871_7_1_malformed_ecs_is_formerr() {
    let server = TestServer::start().await;
    let bad: [&[u8]; 6] = [
        &[0, 1, 24],                   // shorter than 4 bytes
        &[0, 1, 24, 16, 81, 2, 69],    // SCOPE non-zero in a query
        &[0, 5, 8, 0, 81],             // family neither 1 nor 2
        &[0, 1, 40, 0, 1, 2, 3, 4, 5], // SOURCE above 32
        &[0, 1, 24, 0, 81, 2],         // ADDRESS shorter than ceil(SOURCE/8)
        &[0, 1, 23, 0, 81, 2, 69],     // bits set beyond SOURCE
    ];
    for option in bad {
        let raw = server
            .udp_raw(&ecs_query("www.example.com", option).build())
            .await;
        assert_eq!(u16::from(raw[3] & 0xf), rcode::FORMERR, "{option:?}");
    }
}

// ---- TCP (RFC 7766) ----

#[tokio::test]
async fn rfc7766_6_2_1_1_pipelined_queries_are_all_answered() {
    use crate::harness::{read_framed, write_framed};
    let server = TestServer::start().await;
    let mut stream = tokio::net::TcpStream::connect(server.tcp_addr())
        .await
        .unwrap();
    let names = [
        "www.example.com",
        "nope.example.com",
        "alias.example.com",
        "www.example.net",
    ];
    for (index, name) in names.iter().enumerate() {
        let query = Query {
            id: index as u16 + 1,
            ..Query::new(name, qtype::A)
        };
        write_framed(&mut stream, &query.build()).await;
    }
    let mut ids = Vec::new();
    for _ in names {
        let reply = Reply::decode(read_framed(&mut stream).await.expect("reply"));
        ids.push(reply.message.metadata.id);
    }
    ids.sort();
    assert_eq!(ids, [1, 2, 3, 4]);
}

#[tokio::test]
async fn rfc7766_6_2_3_idle_connections_are_closed() {
    use crate::harness::{default_zones, read_framed};
    let server = TestServer::with(&default_zones(), "tcp_idle_timeout = \"200ms\"").await;
    let mut stream = tokio::net::TcpStream::connect(server.tcp_addr())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(
        read_framed(&mut stream).await.is_none(),
        "server closes the idle connection"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn rfc7766_6_2_slow_client_does_not_block_others() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let mut slow = tokio::net::TcpStream::connect(server.tcp_addr())
        .await
        .unwrap();
    slow.write_all(&[0, 40, 0x12]).await.unwrap();
    let reply = server.tcp(&Query::new("www.example.com", qtype::A)).await;
    assert_eq!(reply.answers().len(), 1);
    let reply = server.udp(&Query::new("www.example.com", qtype::A)).await;
    assert_eq!(reply.answers().len(), 1);
}

#[tokio::test]
async fn rfc7766_6_2_2_connection_limit_queues_extra_clients() {
    use crate::harness::{default_zones, read_framed, write_framed};
    let server = TestServer::with(&default_zones(), "tcp_max_connections = 1").await;
    let mut first = tokio::net::TcpStream::connect(server.tcp_addr())
        .await
        .unwrap();
    write_framed(&mut first, &Query::new("www.example.com", qtype::A).build()).await;
    assert!(read_framed(&mut first).await.is_some());
    // A second client is accepted by the kernel but not served while the first holds the slot.
    let mut second = tokio::net::TcpStream::connect(server.tcp_addr())
        .await
        .unwrap();
    write_framed(
        &mut second,
        &Query::new("www.example.com", qtype::A).build(),
    )
    .await;
    let waited = tokio::time::timeout(Duration::from_millis(300), read_framed(&mut second)).await;
    assert!(waited.is_err(), "second client waits for a slot");
    drop(first);
    assert!(
        read_framed(&mut second).await.is_some(),
        "served once the slot frees"
    );
}

// ---- Both transports give identical answers ----

#[tokio::test]
async fn udp_and_tcp_answers_are_identical() {
    let server = TestServer::start().await;
    let names = [
        "www.example.com",
        "WWW.EXAMPLE.COM",
        "nope.example.com",
        "alias.example.com",
        "chain1.example.com",
        "child.example.com",
        "x.wild.example.com",
        "c.ent.example.com",
        "example.com",
        "www.example.org",
        "xzone.example.com",
        "mid.big.test",
    ];
    let types = [
        qtype::A,
        qtype::AAAA,
        qtype::MX,
        qtype::NS,
        qtype::SOA,
        qtype::TXT,
        qtype::ANY,
        qtype::CNAME,
        666,
    ];
    for name in names {
        for qtype in types {
            for edns in [None, Some(4096)] {
                let mut query = Query::new(name, qtype);
                if let Some(payload) = edns {
                    query = query.edns(payload);
                }
                let packet = query.build();
                let udp = server.udp_raw(&packet).await;
                if udp[2] & 0x02 != 0 {
                    continue; // truncated over UDP: TCP rightly carries more
                }
                assert_eq!(
                    udp,
                    server.tcp_raw(&packet).await,
                    "{name} type {qtype} edns {edns:?}"
                );
            }
        }
    }
}
