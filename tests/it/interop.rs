//! Interoperability with real DNS software: `kdig` (Knot's dig) as a client, and `unbound` as a
//! recursive resolver in front of Meridian.
//!
//! These tests need `kdig` (Debian package `knot-dnsutils`) and `unbound` (package `unbound`).
//! Without them they print a notice and pass, unless `MERIDIAN_REQUIRE_TOOLS=1` is set (CI sets
//! it), in which case they fail.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

use crate::conformance::{ecs_of, ecs_query};
use crate::geo::{GEO_TEST, NETS, sections};
use crate::harness::{Query, Reply, TestServer, qtype, rcode, udp_exchange};

/// Whether external tools and data are required (CI sets `MERIDIAN_REQUIRE_TOOLS=1`).
pub fn required() -> bool {
    std::env::var("MERIDIAN_REQUIRE_TOOLS").is_ok_and(|value| value == "1")
}

/// Whether `tool` (from Debian package `knot-dnsutils`) can be run; panics if it cannot and tools
/// are required.
fn have(tool: &str) -> bool {
    find_tool(&[tool], "--version", "knot-dnsutils").is_some()
}

/// The first of `candidates` that runs with `version_arg` and exits successfully. If none does,
/// panics when tools are required, and otherwise prints a notice naming Debian `package`.
fn find_tool(candidates: &[&str], version_arg: &str, package: &str) -> Option<String> {
    let found = candidates.iter().find(|tool| {
        Command::new(tool)
            .arg(version_arg)
            .output()
            .is_ok_and(|output| output.status.success())
    });
    let tool = candidates[0];
    if found.is_none() {
        if required() {
            panic!(
                "{tool} is required (MERIDIAN_REQUIRE_TOOLS=1) but not installed: apt-get install {package}"
            );
        }
        eprintln!("skipping: {tool} not installed (apt-get install {package})");
    }
    found.map(|tool| tool.to_string())
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

/// ECS (address, SOURCE, SCOPE) of one query.
type Ecs = Option<(IpAddr, u8, u8)>;

/// A UDP relay in front of Meridian that records the ECS option of every `www.geo.test` query it
/// passes on, so a test can tell which client queries a resolver answered from its cache.
struct Relay {
    /// Where the relay listens.
    addr: SocketAddr,
    /// ECS of each `www.geo.test` query relayed so far.
    seen: Arc<Mutex<Vec<Ecs>>>,
    /// The receive loop, aborted on drop.
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts a relay to `upstream` on a loopback port.
    async fn start(upstream: SocketAddr) -> Relay {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind relay"));
        let addr = socket.local_addr().expect("relay address");
        let seen: Arc<Mutex<Vec<Ecs>>> = Arc::default();
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            loop {
                let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let packet = buf[..len].to_vec();
                if let Ok(message) = Message::from_vec(&packet)
                    && message.queries.first().is_some_and(|query| {
                        query.query_type() == RecordType::A
                            && query
                                .name()
                                .to_string()
                                .eq_ignore_ascii_case("www.geo.test.")
                    })
                {
                    let ecs = ecs_of(&Reply {
                        raw: packet.clone(),
                        message,
                    });
                    log.lock().unwrap().push(ecs);
                }
                let socket = Arc::clone(&socket);
                tokio::spawn(async move {
                    if let Some(reply) =
                        udp_exchange(upstream, &packet, Duration::from_secs(5)).await
                    {
                        let _ = socket.send_to(&reply, from).await;
                    }
                });
            }
        });
        Relay { addr, seen, task }
    }

    /// ECS of each `www.geo.test` query relayed so far.
    fn seen(&self) -> Vec<Ecs> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running `unbound -d`, killed (and its log printed if the test is failing) on drop.
struct Unbound {
    /// The process.
    child: Child,
    /// Where it answers (UDP).
    addr: SocketAddr,
    /// Holds its config, pidfile and logs.
    dir: tempfile::TempDir,
}

impl Unbound {
    /// Starts `program` as a resolver on a free loopback port, with the subnetcache module and
    /// `geo.test` stubbed to `upstream`; waits until it answers.
    async fn start(program: &str, upstream: SocketAddr) -> Unbound {
        const ATTEMPTS: u32 = 3;
        for attempt in 1..=ATTEMPTS {
            let dir = tempfile::tempdir().expect("temp dir");
            // A port that was free a moment ago; if another process takes it first, unbound
            // fails to bind and we retry with a new one.
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|socket| socket.local_addr())
                .expect("free port")
                .port();
            let path = dir.path().display().to_string();
            let conf = dir.path().join("unbound.conf");
            std::fs::write(&conf, unbound_conf(&path, port, upstream)).expect("write conf");
            let stderr = std::fs::File::create(dir.path().join("stderr.txt")).expect("stderr");
            let child = Command::new(program)
                .arg("-d")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("unbound starts");
            let mut unbound = Unbound {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                dir,
            };
            if unbound.wait_ready(attempt < ATTEMPTS).await {
                return unbound;
            }
            eprintln!(
                "unbound could not bind port {port}, retrying:\n{}",
                unbound.log()
            );
        }
        unreachable!("the last attempt panics instead of returning false")
    }

    /// Polls until unbound answers a local name: true when it does, false if it exited because
    /// its port was taken and `may_retry`; panics on any other failure or after 30 s.
    async fn wait_ready(&mut self, may_retry: bool) -> bool {
        let probe = Query::new("ready.test", qtype::A).build();
        for _ in 0..60 {
            if let Some(reply) = udp_exchange(self.addr, &probe, Duration::from_millis(500)).await {
                let reply = Reply::decode(reply);
                assert_eq!(reply.answers(), ["ready.test. 60 IN A 127.0.0.9"]);
                return true;
            }
            if self.child.try_wait().expect("unbound status").is_some() {
                let log = self.log();
                if may_retry && log.contains("could not open ports") {
                    return false;
                }
                panic!("unbound exited early");
            }
        }
        panic!("unbound did not answer within 30 s");
    }

    /// unbound's stderr and log file.
    fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        format!(
            "--- stderr\n{}--- unbound.log\n{}",
            read("stderr.txt").unwrap_or_default(),
            read("unbound.log").unwrap_or_default()
        )
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("unbound at {} logged:\n{}", self.addr, self.log());
        }
    }
}

/// unbound's config: resolver on 127.0.0.1:`port`, files in `dir`, `geo.test` stubbed to
/// `upstream`, client subnets (RFC 7871) forwarded and cached per scope by subnetcache.
fn unbound_conf(dir: &str, port: u16, upstream: SocketAddr) -> String {
    format!(
        r#"server:
    verbosity: 1
    interface: 127.0.0.1
    port: {port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: no
    so-reuseport: no
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    chroot: ""
    username: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    logfile: "{dir}/unbound.log"
    use-syslog: no
    log-time-ascii: yes
    # No validator module: DNSSEC validation off.
    module-config: "subnetcache iterator"
    do-not-query-localhost: no
    qname-minimisation: no
    # Send ECS to the stub's address and for geo.test, and forward the client's own ECS option.
    send-client-subnet: {ip}
    client-subnet-zone: "geo.test."
    client-subnet-always-forward: yes
    max-client-subnet-ipv4: 24
    max-client-subnet-ipv6: 56
    # unbound answers the special-use test. (RFC 6761) itself by default; let geo.test through.
    local-zone: "test." nodefault
    # Answered locally, to poll for readiness without querying Meridian.
    local-zone: "ready.test." static
    local-data: "ready.test. 60 IN A 127.0.0.9"

stub-zone:
    name: "geo.test."
    stub-addr: {ip}@{upstream_port}

remote-control:
    control-enable: no
"#,
        ip = upstream.ip(),
        upstream_port = upstream.port(),
    )
}

/// Asks `resolver` for `www.geo.test A` with ECS data `ecs`: the answer lines' addresses and
/// the ECS (address, SOURCE, SCOPE) of the reply.
async fn ask_with_subnet(resolver: SocketAddr, ecs: &[u8]) -> (Vec<String>, Ecs) {
    let query = ecs_query("www.geo.test", ecs).build();
    // Generous for a loaded machine: unbound may wait on Meridian, and UDP may be retried.
    let mut raw = None;
    for _ in 0..3 {
        raw = udp_exchange(resolver, &query, Duration::from_secs(10)).await;
        if raw.is_some() {
            break;
        }
    }
    let reply = Reply::decode(raw.expect("a reply from unbound"));
    assert_eq!(reply.rcode(), rcode::NOERROR, "{:?}", reply.message);
    let addresses = reply
        .message
        .answers
        .iter()
        .filter(|record| record.record_type() == RecordType::A)
        .map(|record| record.data.to_string())
        .collect();
    (addresses, ecs_of(&reply))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_forwards_client_subnets_and_caches_by_scope() {
    let Some(program) = find_tool(&["unbound", "/usr/sbin/unbound"], "-V", "unbound") else {
        return;
    };
    let server = TestServer::custom(
        &[("geo.test".to_string(), GEO_TEST.to_string())],
        "",
        &sections(""),
        &[("nets.csv", NETS.as_bytes())],
    )
    .await;
    let relay = Relay::start(server.udp_addr()).await;
    let unbound = Unbound::start(&program, relay.addr).await;
    let resolver = unbound.addr;
    let v4 = |ip: &str| -> IpAddr { ip.parse().unwrap() };

    // A London client subnet: Europe, and unbound passed the client's subnet on to Meridian.
    let (answers, ecs) = ask_with_subnet(resolver, &[0, 1, 24, 0, 81, 2, 69]).await;
    assert_eq!(answers, ["192.0.2.20"]);
    assert_eq!(ecs, Some((v4("81.2.69.0"), 24, 24)), "scope passed back");
    assert_eq!(relay.seen(), [Some((v4("81.2.69.0"), 24, 0))]);

    // The same subnet again, and a /25 inside it: answered from unbound's cache (scope /24).
    let (answers, _) = ask_with_subnet(resolver, &[0, 1, 24, 0, 81, 2, 69]).await;
    assert_eq!(answers, ["192.0.2.20"]);
    let (answers, _) = ask_with_subnet(resolver, &[0, 1, 25, 0, 81, 2, 69, 128]).await;
    assert_eq!(answers, ["192.0.2.20"]);
    assert_eq!(relay.seen().len(), 1, "cache hits: {:?}", relay.seen());

    // The neighbouring /24 is outside the cached scope: asked anew, and not sent to Europe.
    let (answers, _) = ask_with_subnet(resolver, &[0, 1, 24, 0, 81, 2, 70]).await;
    assert_eq!(answers, ["192.0.2.10"]);
    assert_eq!(relay.seen()[1..], [Some((v4("81.2.70.0"), 24, 0))]);

    // Asia and the default region.
    let (answers, _) = ask_with_subnet(resolver, &[0, 1, 24, 0, 175, 16, 199]).await;
    assert_eq!(answers, ["192.0.2.30"]);
    let (answers, ecs) = ask_with_subnet(resolver, &[0, 1, 24, 0, 8, 8, 8]).await;
    assert_eq!(answers, ["192.0.2.10"]);
    assert_eq!(ecs.map(|(_, source, scope)| (source, scope)), Some((24, 2)));
    assert_eq!(
        relay.seen()[2..],
        [
            Some((v4("175.16.199.0"), 24, 0)),
            Some((v4("8.8.8.0"), 24, 0))
        ]
    );

    // 8.8.4.0/24 lies in the /2 Meridian scoped 8.8.8.0/24's answer to: a cache hit.
    let (answers, _) = ask_with_subnet(resolver, &[0, 1, 24, 0, 8, 8, 4]).await;
    assert_eq!(answers, ["192.0.2.10"]);
    assert_eq!(relay.seen().len(), 4, "cache hit: {:?}", relay.seen());

    // Every region was answered afresh after its own subnet: nothing cached for everyone.
    let (answers, _) = ask_with_subnet(resolver, &[0, 1, 24, 0, 81, 2, 69]).await;
    assert_eq!(answers, ["192.0.2.20"]);
    let (answers, _) = ask_with_subnet(resolver, &[0, 1, 24, 0, 175, 16, 199]).await;
    assert_eq!(answers, ["192.0.2.30"]);
    drop(unbound);
}
