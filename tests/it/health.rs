//! Regional health end to end: in-process health endpoints that can be switched to fail, real
//! probes, and real DNS answers that follow them (failover, recovery, active-passive with manual
//! failback, every all-down mode, reloads and restarts that keep the state).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::conformance::ecs_query;
use crate::geo::GEO_TEST;
use crate::harness::{Query, TestServer, qtype, rcode};

/// How a health endpoint behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// `200 OK` with body `ok`.
    Ok = 0,
    /// `503 Service Unavailable`.
    Unavailable = 1,
    /// Accepts and never answers.
    Hang = 2,
    /// Accepts and closes at once.
    Close = 3,
    /// `200` with a pool health body: capacity 1 and 100 more requests per request received.
    Pool = 4,
}

/// An HTTP health endpoint on loopback whose behaviour a test switches.
#[derive(Clone)]
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The current [`Mode`].
    mode: Arc<AtomicU8>,
    /// Requests received.
    hits: Arc<AtomicUsize>,
}

impl Endpoint {
    /// Starts an endpoint answering `200 ok`.
    pub async fn start() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint {
            addr: listener.local_addr().unwrap(),
            mode: Arc::new(AtomicU8::new(Mode::Ok as u8)),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let mode = Arc::clone(&endpoint.mode);
        let hits = Arc::clone(&endpoint.hits);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mode = Arc::clone(&mode);
                let hits = Arc::clone(&hits);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let hit = hits.fetch_add(1, Ordering::SeqCst) + 1;
                    let pool;
                    let reply: &[u8] = match mode.load(Ordering::SeqCst) {
                        0 => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        1 => b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndown",
                        2 => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        4 => {
                            let body = format!("{{\"capacity\":1.0,\"requests\":{}}}", hit * 100);
                            pool = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            pool.as_bytes()
                        }
                        _ => return,
                    };
                    let _ = stream.write_all(reply).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        endpoint
    }

    /// Switches the behaviour.
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Probe interval of the timed tests.
const INTERVAL: Duration = Duration::from_millis(500);
/// Consecutive results needed to flip, both ways.
const THRESHOLD: u32 = 2;

/// A `[[regions.NAME.monitor]]` table probing `endpoint`.
fn monitor(region: &str, endpoint: &Endpoint) -> String {
    format!(
        "[[regions.{region}.monitor]]\nurl = \"http://{}/health\"\ninterval = \"{}ms\"\ntimeout = \"200ms\"\n\
         rise = {THRESHOLD}\nfall = {THRESHOLD}\nexpect_body = \"ok\"\n",
        endpoint.addr,
        INTERVAL.as_millis()
    )
}

/// Three regions (eu-west, us-east, dr-central), each probing its own endpoint, a map that
/// prefers eu-west, and `services`.
fn sections(endpoints: &[Endpoint; 3], services: &str, extra: &str) -> String {
    format!(
        "{extra}\n[regions.eu-west]\ncapacity = 100\n{}\n[regions.us-east]\ncapacity = 100\n{}\n\
         [regions.dr-central]\ncapacity = 50\n{}\n\
         [maps.world]\ndefault = [\"eu-west\", \"us-east\", \"dr-central\"]\n{services}",
        monitor("eu-west", &endpoints[0]),
        monitor("us-east", &endpoints[1]),
        monitor("dr-central", &endpoints[2]),
    )
}

/// The geo service: eu-west first, then us-east.
const GEO_SERVICE: &str = r#"
[services."www.geo.test"]
map = "world"
ttl = 60
ttl_degraded = 5
answers.eu-west = ["192.0.2.20"]
answers.us-east = ["192.0.2.10"]
answers.dr-central = ["192.0.2.30"]
"#;

/// Three fresh endpoints, all answering 200.
async fn endpoints() -> [Endpoint; 3] {
    [
        Endpoint::start().await,
        Endpoint::start().await,
        Endpoint::start().await,
    ]
}

/// A server for geo.test with `sections`.
async fn server(sections: &str) -> TestServer {
    TestServer::custom(
        &[("geo.test".to_string(), GEO_TEST.to_string())],
        "",
        sections,
        &[],
    )
    .await
}

/// The A answer lines for `name`.
async fn answers(server: &TestServer, name: &str) -> Vec<String> {
    server.udp(&Query::new(name, qtype::A)).await.answers()
}

/// Polls `name` every 10 ms until its A answer is `expect`; the time that took.
async fn time_until(server: &TestServer, name: &str, expect: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let now = answers(server, name).await;
        if now.iter().any(|line| line.ends_with(expect)) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{name} still answers {now:?} after {:?}, expected {expect}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until every target has been probed once.
async fn ready(server: &TestServer) {
    let start = Instant::now();
    while !server.server.monitor().ready() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "monitor never ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_fails_over_within_fall_intervals_and_returns_after_rise() {
    let endpoints = endpoints().await;
    let server = server(&sections(&endpoints, GEO_SERVICE, "")).await;
    ready(&server).await;
    assert_eq!(
        answers(&server, "www.geo.test").await,
        ["www.geo.test. 60 IN A 192.0.2.20"]
    );

    // interval x fall, plus one interval for the probe already scheduled when it broke.
    let bound = INTERVAL * (THRESHOLD + 1);
    for mode in [Mode::Unavailable, Mode::Hang, Mode::Close] {
        endpoints[0].set(mode);
        let failover = time_until(&server, "www.geo.test", "192.0.2.10", bound * 3).await;
        assert!(
            failover <= bound,
            "{mode:?}: failed over after {failover:?}, bound {bound:?}"
        );
        assert_eq!(
            answers(&server, "www.geo.test").await,
            ["www.geo.test. 5 IN A 192.0.2.10"],
            "degraded TTL while eu-west is down"
        );
        let status = server.server.monitor().status();
        let reason = status[1].monitors[0].history.last().unwrap().reason.clone();
        assert_eq!(status[1].name, "eu-west");
        let expect = match mode {
            Mode::Unavailable => "unexpected status 503",
            Mode::Hang => "timed out",
            _ => "closed",
        };
        assert!(reason.contains(expect), "{mode:?}: reason {reason:?}");

        endpoints[0].set(Mode::Ok);
        let recovery = time_until(&server, "www.geo.test", "192.0.2.20", bound * 3).await;
        assert!(
            recovery <= bound,
            "{mode:?}: recovered after {recovery:?}, bound {bound:?}"
        );
        assert_eq!(
            answers(&server, "www.geo.test").await,
            ["www.geo.test. 60 IN A 192.0.2.20"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_answers_only_while_every_primary_is_down_and_manual_failback_holds() {
    let endpoints = endpoints().await;
    let services = r#"
[services."api.geo.test"]
policy = "failover"
tiers = [["eu-west", "us-east"], ["dr-central"]]
failback = "manual"
ttl = 60
ttl_degraded = 10
answers.eu-west = ["192.0.2.20"]
answers.us-east = ["192.0.2.10"]
answers.dr-central = ["192.0.2.30"]
"#;
    let server = server(&sections(&endpoints, services, "")).await;
    ready(&server).await;
    let limit = Duration::from_secs(5);
    let primary = |lines: &[String]| {
        lines
            .iter()
            .all(|l| l.ends_with("192.0.2.20") || l.ends_with("192.0.2.10"))
    };
    assert!(primary(&answers(&server, "api.geo.test").await));

    // One primary down: the other primary answers, never the standby.
    endpoints[0].set(Mode::Unavailable);
    time_until(&server, "api.geo.test", "192.0.2.10", limit).await;
    // Both down: the standby is promoted.
    endpoints[1].set(Mode::Unavailable);
    time_until(&server, "api.geo.test", "192.0.2.30", limit).await;
    assert_eq!(server.server.monitor().held(), ["api.geo.test."]);

    // The primaries recover, but failback is manual: the standby keeps answering.
    endpoints[0].set(Mode::Ok);
    endpoints[1].set(Mode::Ok);
    let start = Instant::now();
    while server.server.monitor().status()[1..]
        .iter()
        .any(|region| !region.up)
    {
        assert!(start.elapsed() < limit, "primaries never came back up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(INTERVAL).await;
    assert_eq!(
        answers(&server, "api.geo.test").await,
        ["api.geo.test. 60 IN A 192.0.2.30"],
        "held on standby; nothing is degraded any more, so the normal TTL"
    );

    // The operator clears it: primaries answer again on the next query.
    assert_eq!(
        server.server.monitor().clear_failover("api.geo.test"),
        Ok(true)
    );
    assert!(primary(&answers(&server, "api.geo.test").await));
    assert!(server.server.monitor().held().is_empty());
    assert!(
        server
            .server
            .monitor()
            .clear_failover("www.geo.test")
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_all_down_mode_answers_as_configured() {
    let endpoints = endpoints().await;
    let mut services = String::new();
    for (label, mode, extra) in [
        ("open", "serve_all", ""),
        (
            "sorry",
            "fallback",
            "fallback = { cname = \"sorry.geo.test.\" }\n",
        ),
        ("addr", "fallback", "fallback = [\"192.0.2.99\"]\n"),
        ("empty", "nodata", ""),
        ("fail", "servfail", ""),
    ] {
        services.push_str(&format!(
            "[services.\"{label}.geo.test\"]\nmap = \"world\"\nttl_degraded = 7\nall_down = \"{mode}\"\n{extra}\
             answers.eu-west = [\"192.0.2.20\"]\nanswers.us-east = [\"192.0.2.10\"]\n"
        ));
    }
    let server = server(&sections(&endpoints, &services, "")).await;
    ready(&server).await;
    for endpoint in &endpoints {
        endpoint.set(Mode::Unavailable);
    }
    let start = Instant::now();
    while server.server.monitor().status().iter().any(|r| r.up) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "regions never went down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(
        answers(&server, "open.geo.test").await,
        ["open.geo.test. 7 IN A 192.0.2.20"],
        "fail open: the client's first region, degraded TTL"
    );
    let sorry = server.udp(&Query::new("sorry.geo.test", qtype::A)).await;
    assert_eq!(
        sorry.answers()[0],
        "sorry.geo.test. 7 IN CNAME sorry.geo.test."
    );
    assert_eq!(
        answers(&server, "addr.geo.test").await,
        ["addr.geo.test. 7 IN A 192.0.2.99"]
    );
    let empty = server.udp(&Query::new("empty.geo.test", qtype::A)).await;
    assert_eq!(
        (
            empty.rcode(),
            empty.answers().len(),
            empty.authority().len()
        ),
        (rcode::NOERROR, 0, 1),
        "NODATA with the SOA"
    );
    let fail = server.udp(&Query::new("fail.geo.test", qtype::A)).await;
    assert_eq!((fail.rcode(), fail.answers().len()), (rcode::SERVFAIL, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_the_state_of_unchanged_monitors_and_stops_removed_ones() {
    let endpoints = endpoints().await;
    let server = server(&sections(&endpoints, GEO_SERVICE, "")).await;
    ready(&server).await;
    endpoints[0].set(Mode::Unavailable);
    time_until(
        &server,
        "www.geo.test",
        "192.0.2.10",
        Duration::from_secs(5),
    )
    .await;

    // Same monitors, a changed TTL: eu-west is still down the instant the reload lands.
    let config = server.dir.path().join("meridian.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("ttl_degraded = 5", "ttl_degraded = 6"),
    )
    .unwrap();
    server.server.reload().expect("reload");
    assert_eq!(
        answers(&server, "www.geo.test").await,
        ["www.geo.test. 6 IN A 192.0.2.10"]
    );

    // dr-central's monitor removed: its probes stop.
    let text = std::fs::read_to_string(&config).unwrap();
    let dr_monitor = monitor("dr-central", &endpoints[2]);
    assert!(text.contains(&dr_monitor));
    std::fs::write(&config, text.replace(&dr_monitor, "")).unwrap();
    server.server.reload().expect("reload");
    tokio::time::sleep(INTERVAL).await;
    let hits = endpoints[2].hits();
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(endpoints[2].hits(), hits, "no probes of a removed monitor");
    assert!(endpoints[1].hits() > 0);
    assert_eq!(
        answers(&server, "www.geo.test").await,
        ["www.geo.test. 6 IN A 192.0.2.10"],
        "eu-west still down across both reloads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_the_last_known_state() {
    let endpoints = endpoints().await;
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("health.json");
    let extra = format!("[health]\nstate_file = \"{}\"\n", state.display());
    let config = sections(&endpoints, GEO_SERVICE, &extra);
    {
        let server = server(&config).await;
        ready(&server).await;
        endpoints[0].set(Mode::Unavailable);
        time_until(
            &server,
            "www.geo.test",
            "192.0.2.10",
            Duration::from_secs(5),
        )
        .await;
        // The writer task saves shortly after the transition.
        let start = Instant::now();
        while !std::fs::read_to_string(&state).is_ok_and(|text| text.contains("false")) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "state never saved"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.server.shutdown().await;
    }
    // A new process: before any probe has run, eu-west is already down.
    let server = server(&config).await;
    assert!(!server.server.monitor().ready());
    assert_eq!(
        answers(&server, "www.geo.test").await,
        ["www.geo.test. 5 IN A 192.0.2.10"]
    );

    // A corrupt state file is moved aside, not silently dropped.
    drop(server);
    std::fs::write(&state, "{ not json").unwrap();
    let server = server_with(&config).await;
    let aside: Vec<_> = std::fs::read_dir(state_dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "corrupt file moved aside");
    assert_eq!(
        answers(&server, "www.geo.test").await,
        ["www.geo.test. 60 IN A 192.0.2.20"],
        "configured initial state (up) until probed"
    );
}

/// [`server`] again, under another name so the shadowing above stays readable.
async fn server_with(sections: &str) -> TestServer {
    server(sections).await
}

#[tokio::test]
async fn weighted_answers_carry_the_hashed_scope() {
    let endpoints = endpoints().await;
    let services = r#"
[services."cdn.geo.test"]
policy = "weighted"
weights = { eu-west = 3, us-east = 1 }
answers.eu-west = ["192.0.2.20"]
answers.us-east = ["192.0.2.10"]
"#;
    let server = server(&sections(&endpoints, services, "")).await;
    let mut eu = 0;
    for n in 0..400u32 {
        let ecs = [0, 1, 24, 0, 81, (n / 256) as u8 + 2, (n % 256) as u8];
        let reply = server.udp(&ecs_query("cdn.geo.test", &ecs)).await;
        let answer = &reply.answers()[0];
        if answer.ends_with("192.0.2.20") {
            eu += 1;
        }
        let (_, source, scope) = crate::conformance::ecs_of(&reply).expect("ECS echoed");
        assert_eq!((source, scope), (24, 24), "scope covers the hashed /24");
    }
    // 3 : 1 over 400 subnets: 300 expected, binomial sd ~8.7.
    assert!((260..=340).contains(&eu), "{eu} of 400 to eu-west");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_half_of_a_pools_backends_shifts_dns_weight() {
    // Region eu-west is fronted by an embedded pool of four backends; the regional monitor
    // reads the pool's capacity from its health endpoint.
    let backends = [
        Endpoint::start().await,
        Endpoint::start().await,
        Endpoint::start().await,
        Endpoint::start().await,
    ];
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ addr = \"{}\" }}", b.addr))
        .collect();
    let pool = TestServer::custom(
        &[("geo.test".to_string(), GEO_TEST.to_string())],
        "",
        &format!(
            "[balancers.eu-west-web]\nlisten = \"127.0.0.1:0\"\nmin_healthy = 1\nbackends = [{}]\n\
             [balancers.eu-west-web.health]\npath = \"/health\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
             rise = 1\nfall = 1\n",
            list.join(", ")
        ),
        &[],
    )
    .await;
    let pool_addr = pool.server.balancers()[0].local_addr();
    let services = r#"
[services."cdn.geo.test"]
policy = "weighted"
weights = { eu-west = 1, us-east = 1 }
answers.eu-west = ["192.0.2.20"]
answers.us-east = ["192.0.2.10"]
"#;
    let server = server(&format!(
        "[regions.eu-west]\n[[regions.eu-west.monitor]]\nurl = \"http://{pool_addr}/health\"\n\
         interval = \"300ms\"\ntimeout = \"200ms\"\nrise = 1\nfall = 1\ncapacity_from = \"pool\"\n\
         [regions.us-east]\n{services}"
    ))
    .await;
    ready(&server).await;

    /// Share of 600 client subnets answered by eu-west.
    async fn eu_share(server: &TestServer) -> f64 {
        let mut eu = 0;
        for n in 0..600u32 {
            let ecs = [0, 1, 24, 0, 81, (n / 256) as u8 + 2, (n % 256) as u8];
            let reply = server.udp(&ecs_query("cdn.geo.test", &ecs)).await;
            if reply.answers()[0].ends_with("192.0.2.20") {
                eu += 1;
            }
        }
        f64::from(eu) / 600.0
    }

    let before = eu_share(&server).await;
    assert!(
        (0.42..=0.58).contains(&before),
        "eu-west share {before} at full capacity"
    );

    // Half the pool's backends fail their checks: the pool reports capacity 0.5, and
    // eu-west's weight halves: 0.5 / (0.5 + 1) = 1/3 of the subnets.
    backends[0].set(Mode::Unavailable);
    backends[1].set(Mode::Unavailable);
    let start = Instant::now();
    loop {
        let status = server.server.monitor().regions();
        if status[0].factor < 0.75 {
            assert_eq!(status[0].name, "eu-west");
            assert!((status[0].factor - 0.5).abs() < 1e-9, "{:?}", status[0]);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "capacity never dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = eu_share(&server).await;
    assert!(
        (0.25..=0.42).contains(&after),
        "eu-west share {after} at half capacity"
    );
    let last = server.server.monitor().status()[0].monitors[0].last.clone();
    assert!(last.unwrap().contains("capacity 50%"));
    // The pool also reports its request count, which drills turn into a request rate.
    let drill = server
        .server
        .monitor()
        .start_drill(
            "eu-west",
            meridian::admin::drill::DrillMode::Fail,
            Duration::from_millis(300),
            "pool counter",
            "test",
            true,
            None,
        )
        .expect("drill starts");
    assert!(drill.pool_at_start.is_some(), "{drill:?}");
}

#[tokio::test]
async fn a_chain_through_two_services_keeps_the_longest_scope() {
    // `split` hashes the client /24 to one of two CNAMEs, both at `one`, a weighted service
    // with a single region whose answer depends on nothing: the reply still depends on the
    // /24, and its scope must say so.
    let endpoints = endpoints().await;
    let services = r#"
[services."split.geo.test"]
policy = "weighted"
weights = { eu-west = 1, us-east = 1 }
answers.eu-west = { cname = "one.geo.test." }
answers.us-east = { cname = "one.geo.test." }

[services."one.geo.test"]
policy = "weighted"
weights = { eu-west = 1 }
answers.eu-west = ["192.0.2.20"]
"#;
    let server = server(&sections(&endpoints, services, "")).await;
    let ecs = [0, 1, 24, 0, 81, 2, 69];
    let reply = server.udp(&ecs_query("split.geo.test", &ecs)).await;
    assert_eq!(reply.answers().len(), 2, "{:?}", reply.answers());
    let (_, source, scope) = crate::conformance::ecs_of(&reply).expect("ECS echoed");
    assert_eq!((source, scope), (24, 24));
    let direct = server.udp(&ecs_query("one.geo.test", &ecs)).await;
    let (_, _, scope) = crate::conformance::ecs_of(&direct).expect("ECS echoed");
    assert_eq!(
        scope, 0,
        "alone, the single-region service depends on nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_report_the_pool_request_rate() {
    use meridian::admin::drill::DrillMode;
    let pool = Endpoint::start().await;
    pool.set(Mode::Pool);
    let services = r#"
[services."www.geo.test"]
map = "world"
answers.eu-west = ["192.0.2.20"]
answers.us-east = ["192.0.2.10"]
"#;
    let server = server(&format!(
        "[regions.eu-west]\n[[regions.eu-west.monitor]]\nurl = \"http://{}/health\"\n\
         interval = \"100ms\"\ntimeout = \"90ms\"\nrise = 1\nfall = 1\ncapacity_from = \"pool\"\n\
         [regions.us-east]\n[maps.world]\ndefault = [\"eu-west\", \"us-east\"]\n{services}",
        pool.addr
    ))
    .await;
    ready(&server).await;
    // Let the tick collect pool readings for a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let monitor = server.server.monitor();
    let drill = monitor
        .start_drill(
            "eu-west",
            DrillMode::Fail,
            Duration::from_millis(800),
            "pool rate",
            "test",
            true,
            None,
        )
        .expect("drill starts");
    // 100 requests per probe, a probe every 100 ms: about 1000 requests per second.
    let before = drill.pool_rate_before.expect("rate before");
    assert!((300.0..3000.0).contains(&before), "rate before {before}");
    let start = Instant::now();
    let report = loop {
        let report = monitor.drill(drill.id).unwrap();
        if report.rolled_back.is_some() {
            break report;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never rolled back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let during = report.pool_rate_during.expect("rate during");
    assert!((300.0..3000.0).contains(&during), "rate during {during}");
}
