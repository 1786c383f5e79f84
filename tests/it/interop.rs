//! Interoperability with real DNS clients: `kdig` (Knot's dig).
//!
//! These tests need `kdig` (Debian package `knot-dnsutils`). Without it they print a notice and
//! pass, unless `MERIDIAN_REQUIRE_TOOLS=1` is set (CI sets it), in which case they fail.

use std::process::Command;

use crate::harness::TestServer;

/// Whether external tools and data are required (CI sets `MERIDIAN_REQUIRE_TOOLS=1`).
pub fn required() -> bool {
    std::env::var("MERIDIAN_REQUIRE_TOOLS").is_ok_and(|value| value == "1")
}

/// Whether `tool` can be run; panics if it cannot and tools are required.
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        if required() {
            panic!(
                "{tool} is required (MERIDIAN_REQUIRE_TOOLS=1) but not installed: apt-get install knot-dnsutils"
            );
        }
        eprintln!("skipping: {tool} not installed (apt-get install knot-dnsutils)");
    }
    found
}

/// Runs kdig with `args` and returns its stdout.
fn kdig(args: &[String]) -> String {
    let output = Command::new("kdig").args(args).output().expect("kdig runs");
    assert!(
        output.status.success(),
        "kdig {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// kdig arguments to query `server` for `name` `rtype`, plus `extra`.
fn args(server: std::net::SocketAddr, name: &str, rtype: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        format!("@{}", server.ip()),
        "-p".into(),
        server.port().to_string(),
        name.into(),
        rtype.into(),
    ];
    args.extend(extra.iter().map(|arg| arg.to_string()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_udp_and_tcp_answers() {
    if !have("kdig") {
        return;
    }
    let server = TestServer::start().await;
    let udp = server.udp_addr();
    let tcp = server.tcp_addr();
    let out = tokio::task::spawn_blocking(move || {
        (
            kdig(&args(udp, "www.example.com", "A", &["+noall", "+answer"])),
            kdig(&args(
                tcp,
                "www.example.com",
                "AAAA",
                &["+tcp", "+noall", "+answer"],
            )),
            kdig(&args(udp, "nope.example.com", "A", &[])),
            kdig(&args(
                udp,
                "chain1.example.com",
                "A",
                &["+noall", "+answer"],
            )),
        )
    })
    .await
    .unwrap();
    assert!(
        out.0.contains("www.example.com.") && out.0.contains("192.0.2.80"),
        "{}",
        out.0
    );
    assert!(out.1.contains("2001:db8::80"), "{}", out.1);
    assert!(
        out.2.contains("status: NXDOMAIN") && out.2.contains("Flags: qr aa"),
        "{}",
        out.2
    );
    assert_eq!(
        out.3.lines().filter(|line| line.contains("CNAME")).count(),
        3,
        "{}",
        out.3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_falls_back_to_tcp_on_truncation() {
    if !have("kdig") {
        return;
    }
    let server = TestServer::start().await;
    let udp = server.udp_addr();
    // kdig retries over TCP when TC is set (unless +ignore); with UDP and TCP on one port it gets all.
    let out = tokio::task::spawn_blocking(move || {
        kdig(&args(
            udp,
            "txt.big.test",
            "TXT",
            &["+noall", "+answer", "+bufsize=1232"],
        ))
    })
    .await
    .unwrap();
    assert_eq!(
        out.lines().filter(|line| line.contains("TXT")).count(),
        40,
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_edns_nsid_and_badvers() {
    if !have("kdig") {
        return;
    }
    let server = TestServer::start().await;
    let udp = server.udp_addr();
    let out = tokio::task::spawn_blocking(move || {
        (
            kdig(&args(udp, "www.example.com", "A", &["+edns=1", "+noidn"])),
            kdig(&args(udp, "www.example.com", "A", &["+dnssec", "+nsid"])),
        )
    })
    .await
    .unwrap();
    assert!(out.0.contains("BADVERS"), "{}", out.0);
    assert!(out.1.contains("flags: do"), "DO echoed: {}", out.1);
    assert!(
        !out.1.contains("NSID"),
        "unknown options are not echoed: {}",
        out.1
    );
}
