//! Zone semantics: what `Zone::build` accepts, rejects and warns about, and what it stores.

use std::path::Path;

use hickory_proto::rr::Name;

use super::*;

/// Origin used by every test.
const ORIGIN: &str = "example.com.";

/// The apex records every valid test zone starts with.
const APEX: &str =
    "$TTL 3600\n@ SOA ns1 hostmaster 1 7200 900 1209600 300\n@ NS ns1\nns1 A 192.0.2.1\n";

/// Builds a zone from `text` as `example.com.zone`.
fn build(text: &str) -> Result<(Zone, Vec<Warning>), ZoneError> {
    let origin = Name::from_ascii(ORIGIN).unwrap();
    let file = Path::new("zones/example.com.zone");
    let records = parse::parse_zone_str(text, file, &origin, Path::new("zones"))?;
    Zone::build(&origin, file, records)
}

/// Asserts that `text` is rejected with exactly `expect`.
fn check_err(text: &str, expect: &str) {
    let err = build(text).expect_err("zone should be rejected");
    assert_eq!(err.to_string(), expect);
}

/// Builds `text`, which must be valid, and returns its warnings as strings.
fn warnings(text: &str) -> Vec<String> {
    let (_, warnings) = build(text).expect("zone should load");
    warnings.iter().map(ToString::to_string).collect()
}

/// Lowercase wire name of presentation `name`.
fn wire(name: &str) -> Vec<u8> {
    wire_name(&Name::from_ascii(name).unwrap().to_lowercase())
}

#[test]
fn minimal_zone_loads() {
    let (zone, warnings) = build(APEX).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(zone.origin().to_string(), ORIGIN);
    assert_eq!(zone.serial(), 1);
    assert_eq!(zone.record_count(), 3);
    assert!(!zone.has_cuts());
    // Negative TTL = min(SOA TTL, MINIMUM).
    assert_eq!(zone.negative_soa().ttl(), 300);
}

#[test]
fn zone_without_soa_is_rejected() {
    check_err(
        "$TTL 60\n@ NS ns1\n",
        "zones/example.com.zone: zone example.com. has no SOA record at its apex: add one (\"@ SOA ...\")",
    );
}

#[test]
fn second_soa_is_rejected_at_its_line() {
    check_err(
        &format!("{APEX}@ SOA ns2 hm 2 1 1 1 1\n"),
        "zones/example.com.zone:5: second SOA record at the apex of example.com. (the first is at \
         zones/example.com.zone:2): a zone has exactly one",
    );
}

#[test]
fn soa_below_apex_is_rejected() {
    check_err(
        &format!("{APEX}sub SOA ns1 hm 1 1 1 1 1\n"),
        "zones/example.com.zone:5: SOA record at sub.example.com. is not at the apex of zone example.com.",
    );
}

#[test]
fn zone_without_apex_ns_is_rejected() {
    check_err(
        "$TTL 60\n@ SOA ns1 hm 1 1 1 1 1\nwww A 192.0.2.1\n",
        "zones/example.com.zone:2: zone example.com. has no NS records at its apex: add at least one (\"@ NS ns1...\")",
    );
}

#[test]
fn out_of_zone_data_is_rejected() {
    check_err(
        &format!("{APEX}www.example.org. A 192.0.2.1\n"),
        "zones/example.com.zone:5: www.example.org. is outside zone example.com.: a zone file holds only \
         names at or below its origin",
    );
    check_err(
        &format!("{APEX}$ORIGIN com.\nfoo A 192.0.2.1\n"),
        "zones/example.com.zone:6: foo.com. is outside zone example.com.: a zone file holds only names at or below its origin",
    );
}

#[test]
fn cname_and_other_data_conflict_names_both_lines() {
    check_err(
        &format!("{APEX}www A 192.0.2.1\nwww CNAME other\n"),
        "zones/example.com.zone:6: CNAME record at www.example.com. conflicts with the A record at \
         zones/example.com.zone:5: a name with a CNAME may own no other data (RFC 1034 3.6.2)",
    );
    check_err(
        &format!("{APEX}www CNAME other\nwww TXT \"x\"\n"),
        "zones/example.com.zone:6: TXT record at www.example.com. conflicts with the CNAME record at \
         zones/example.com.zone:5: a name with a CNAME may own no other data (RFC 1034 3.6.2)",
    );
}

#[test]
fn two_cnames_are_rejected() {
    check_err(
        &format!("{APEX}www CNAME a\nWWW CNAME b\n"),
        "zones/example.com.zone:6: second CNAME at www.example.com. (the first is at zones/example.com.zone:5): \
         a name has at most one CNAME (RFC 2181 10.1)",
    );
}

#[test]
fn cname_at_apex_conflicts_with_soa() {
    let err = build(&format!("{APEX}@ CNAME elsewhere.net.\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("zones/example.com.zone:5: CNAME record at example.com. conflicts"),
        "{err}"
    );
}

#[test]
fn wildcard_ns_and_dname_are_rejected() {
    check_err(
        &format!("{APEX}*.dyn NS ns1\n"),
        "zones/example.com.zone:5: NS records at wildcard name *.dyn.example.com. are not allowed (RFC 4592 4.2)",
    );
    check_err(
        &format!("{APEX}old TYPE39 \\# 13 076578616d706c65036e657400\n"),
        "zones/example.com.zone:5: DNAME record at old.example.com.: DNAME redirection is not supported; use \
         CNAME records",
    );
}

#[test]
fn duplicates_are_dropped_with_a_warning() {
    let text = format!("{APEX}www A 192.0.2.5\nWWW A 192.0.2.5\n");
    assert_eq!(
        warnings(&text),
        ["zones/example.com.zone:6: warning: duplicate A record at WWW.example.com. ignored"]
    );
    let (zone, _) = build(&text).unwrap();
    assert_eq!(
        zone.node(&wire("www.example.com."))
            .unwrap()
            .rrset(rtype::A)
            .unwrap()
            .count,
        1
    );
}

#[test]
fn ttl_mismatch_in_an_rrset_warns_and_serves_the_first() {
    let text = format!("{APEX}www 60 A 192.0.2.5\nwww 120 A 192.0.2.6\n");
    assert_eq!(
        warnings(&text),
        [
            "zones/example.com.zone:6: warning: TTL 120 differs from 60 of the first A record at www.example.com. \
          (RFC 2181 5.2); serving 60"
        ]
    );
    let (zone, _) = build(&text).unwrap();
    let rrset = zone
        .node(&wire("www.example.com."))
        .unwrap()
        .rrset(rtype::A)
        .unwrap()
        .clone();
    assert!(
        rrset
            .records()
            .all(|record| record[4..8] == 60u32.to_be_bytes())
    );
}

#[test]
fn missing_glue_is_warned() {
    assert_eq!(
        warnings(&format!("{APEX}sub NS ns.sub\n")),
        [
            "zones/example.com.zone:5: warning: missing glue: name server ns.sub.example.com. is below the \
          delegation sub.example.com. but has no A or AAAA record here"
        ]
    );
    assert_eq!(
        warnings("$TTL 60\n@ SOA ns1 hm 1 1 1 1 1\n@ NS ns1\n@ NS ns.other.net.\n"),
        [
            "zones/example.com.zone:3: warning: missing glue: name server ns1.example.com. is inside zone \
          example.com. but has no A or AAAA record"
        ]
    );
    // Out-of-zone name servers need no glue.
    assert!(warnings(&format!("{APEX}sub NS ns.other.net.\n")).is_empty());
}

#[test]
fn occluded_data_below_a_cut_is_warned() {
    assert_eq!(
        warnings(&format!(
            "{APEX}sub NS ns.sub\nns.sub A 192.0.2.9\nwww.sub TXT \"hidden\"\n"
        )),
        [
            "zones/example.com.zone:7: warning: TXT record at www.sub.example.com. is below a zone cut and will \
          not be served (only glue belongs there)"
        ]
    );
}

#[test]
fn empty_non_terminals_exist_up_to_the_apex() {
    let (zone, _) = build(&format!("{APEX}a.b.c A 192.0.2.7\n")).unwrap();
    for name in ["a.b.c.example.com.", "b.c.example.com.", "c.example.com."] {
        assert!(zone.node(&wire(name)).is_some(), "{name} exists");
    }
    assert!(
        zone.node(&wire("b.c.example.com."))
            .unwrap()
            .rrsets
            .is_empty()
    );
    assert!(zone.node(&wire("x.example.com.")).is_none());
}

#[test]
fn cuts_carry_their_referral_with_glue() {
    let (zone, _) = build(&format!(
        "{APEX}sub NS ns.sub\nsub NS ns1\nsub NS ns.other.net.\nns.sub A 192.0.2.9\nns.sub AAAA 2001:db8::9\n\
         deep.sub NS ns.deep.sub\n"
    ))
    .unwrap();
    assert!(zone.has_cuts());
    let node = zone.node(&wire("sub.example.com.")).unwrap();
    let referral = node.cut.as_ref().expect("sub is a cut");
    assert_eq!(referral.ns.count, 3);
    let glue: Vec<(String, u16)> = referral
        .glue
        .iter()
        .map(|(name, rrset)| (display_name(name), rrset.rtype))
        .collect();
    assert_eq!(
        glue,
        [
            ("ns.sub.example.com.".to_string(), rtype::A),
            ("ns.sub.example.com.".to_string(), rtype::AAAA),
            ("ns1.example.com.".to_string(), rtype::A),
        ]
    );
    // A cut below a cut is just occluded data of the upper cut.
    assert!(
        zone.node(&wire("deep.sub.example.com."))
            .unwrap()
            .cut
            .is_none()
    );
}

#[test]
fn cname_target_is_stored_lowercase() {
    let (zone, _) = build(&format!("{APEX}Alias CNAME WWW.Example.COM.\n")).unwrap();
    let node = zone.node(&wire("alias.example.com.")).unwrap();
    assert_eq!(node.cname.as_deref(), Some(&wire("www.example.com.")[..]));
}

#[test]
fn rrsets_render_owner_less_wire_records() {
    let (zone, _) = build(&format!(
        "{APEX}www 300 A 192.0.2.80\nwww 300 A 192.0.2.81\nmx MX 10 mail.other.net.\n"
    ))
    .unwrap();
    let a = zone
        .node(&wire("www.example.com."))
        .unwrap()
        .rrset(rtype::A)
        .unwrap();
    let records: Vec<&[u8]> = a.records().collect();
    assert_eq!(
        records,
        [
            &[0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 80][..],
            &[0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 81][..],
        ]
    );
    // Names inside RDATA are written in full, never compressed.
    let mx = zone
        .node(&wire("mx.example.com."))
        .unwrap()
        .rrset(15)
        .unwrap();
    let record = mx.records().next().unwrap();
    assert_eq!(&record[10..], b"\x00\x0a\x04mail\x05other\x03net\x00");
}

#[test]
fn wire_name_helpers() {
    let name = wire("a.b.example.com.");
    assert_eq!(parent_of(&name), Some(&wire("b.example.com.")[..]));
    assert_eq!(parent_of(b"\x00"), None);
    assert!(is_subdomain(&name, &wire("example.com.")));
    assert!(is_subdomain(&name, &name));
    assert!(is_subdomain(&name, b"\x00"));
    assert!(!is_subdomain(&wire("example.com."), &name));
    assert!(!is_subdomain(&wire("xexample.com."), &wire("example.com.")));
    assert_eq!(display_name(b"\x00"), ".");
    assert_eq!(display_name(b"\x03a.b\x02\x01c\x00"), "a\\.b.\\001c.");
}

#[test]
fn zone_set_finds_the_longest_matching_apex() {
    let child_origin = Name::from_ascii("sub.example.com.").unwrap();
    let child_records = parse::parse_zone_str(
        "$TTL 60\n@ SOA ns hm 1 1 1 1 1\n@ NS ns.example.com.\n",
        Path::new("sub.zone"),
        &child_origin,
        Path::new("zones"),
    )
    .unwrap();
    let (child, _) = Zone::build(&child_origin, Path::new("sub.zone"), child_records).unwrap();
    let (parent, _) = build(APEX).unwrap();
    let set = ZoneSet::new(vec![parent, child]);
    let find = |name: &str| {
        set.find(&wire(name))
            .map(|(zone, offset)| (zone.origin().to_string(), offset))
    };
    assert_eq!(
        find("www.sub.example.com."),
        Some(("sub.example.com.".into(), 4))
    );
    assert_eq!(
        find("sub.example.com."),
        Some(("sub.example.com.".into(), 0))
    );
    assert_eq!(find("www.example.com."), Some(("example.com.".into(), 4)));
    assert_eq!(find("example.org."), None);
    assert_eq!(find("com."), None);
}

#[test]
fn load_zones_reports_directory_problems() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_zones(dir.path()).unwrap_err();
    assert!(err[0].to_string().ends_with(
        "no zone files: add one file per zone named after its origin, e.g. example.com.zone"
    ));
    std::fs::write(dir.path().join("example.com.zone"), APEX).unwrap();
    std::fs::write(dir.path().join("EXAMPLE.COM.zone"), APEX).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a zone").unwrap();
    let err = load_zones(dir.path()).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(
        err[0]
            .to_string()
            .contains("zone example.com. is also defined by"),
        "{}",
        err[0]
    );
    let missing = load_zones(&dir.path().join("missing")).unwrap_err();
    assert!(
        missing[0]
            .to_string()
            .contains("cannot read zones directory"),
        "{}",
        missing[0]
    );
}

#[test]
fn load_zones_loads_every_zone_and_ignores_other_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("example.com.zone"), APEX).unwrap();
    std::fs::write(
        dir.path().join("example.net.zone"),
        "$TTL 60\n@ SOA ns1.example.com. hm 1 1 1 1 1\n@ NS ns1.example.com.\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("includes")).unwrap();
    std::fs::write(dir.path().join("README"), "notes").unwrap();
    let (set, warnings) = load_zones(dir.path()).unwrap();
    assert_eq!(set.len(), 2);
    assert!(warnings.is_empty());
}
