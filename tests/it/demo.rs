//! `meridian demo` and what it ships: the three-region example passes `check`, the world geo
//! database is exactly what `geo build` makes from its CSV and places real addresses, and the
//! demo itself, run as a user runs it, steers, balances, fails over and recovers.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RData;
use meridian::geo::source::Database;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conformance::ecs_query;
use crate::harness::{Reply, udp_exchange};

/// The binary under test.
fn meridian() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
}

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A loopback address of its own for one demo, away from 127.0.0.1 and from other tests.
fn random_loopback() -> Ipv4Addr {
    Ipv4Addr::new(
        127,
        fastrand::u8(1..=254),
        fastrand::u8(1..=254),
        fastrand::u8(1..=254),
    )
}

#[test]
fn three_region_example_passes_check() {
    let output = meridian()
        .args(["check", "--config"])
        .arg(root().join("examples/three-regions/meridian.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ok: 1 zone,"), "{stdout}");
    assert!(stdout.contains("3 services, 0 warnings"), "{stdout}");
    for region in ["us-east", "eu-west", "ap-southeast"] {
        assert!(
            stdout.contains(&format!("region {region}: 1 monitor")),
            "{stdout}"
        );
    }
}

/// Real networks and where the full data they were aggregated from places them:
/// (address, country, continent).
const PLACES: [(&str, &str, &str); 24] = [
    ("8.8.8.8", "US", "NA"),
    ("151.101.0.1", "US", "NA"),
    ("24.114.0.1", "CA", "NA"),
    ("200.147.0.1", "BR", "SA"),
    ("200.45.0.1", "AR", "SA"),
    ("190.0.0.1", "CO", "SA"),
    ("81.2.69.1", "GB", "EU"),
    ("193.99.144.80", "DE", "EU"),
    ("90.0.0.1", "FR", "EU"),
    ("79.0.0.1", "IT", "EU"),
    ("31.13.64.1", "IE", "EU"),
    ("105.112.0.1", "NG", "AF"),
    ("196.25.1.1", "ZA", "AF"),
    ("41.32.0.1", "EG", "AF"),
    ("102.0.0.1", "KE", "AF"),
    ("133.0.0.1", "JP", "AS"),
    ("49.44.0.1", "IN", "AS"),
    ("165.21.0.1", "SG", "AS"),
    ("114.114.114.114", "CN", "AS"),
    ("168.126.63.1", "KR", "AS"),
    ("94.200.0.1", "AE", "AS"),
    ("139.130.4.5", "AU", "OC"),
    ("2001:4860:4860::8888", "US", "NA"),
    ("2804:14c::1", "BR", "SA"),
];

/// The bytes of a MaxMind DB before its metadata marker: the search tree and the data.
fn tree_and_data(bytes: &[u8]) -> &[u8] {
    const MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
    let at = bytes
        .windows(MARKER.len())
        .rposition(|window| window == MARKER)
        .expect("a metadata marker");
    &bytes[..at]
}

#[test]
fn shipped_geo_database_is_what_geo_build_makes_from_its_csv() {
    let shipped = root().join("geodata/world-sample.mmdb");
    let dir = tempfile::tempdir().unwrap();
    let rebuilt = dir.path().join("world-sample.mmdb");
    let output = meridian()
        .args(["geo", "build", "--from"])
        .arg(root().join("geodata/world-sample.csv"))
        .arg("--out")
        .arg(&rebuilt)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The metadata holds the build time and the input's path; everything before it must be
    // the same, byte for byte.
    let shipped_bytes = std::fs::read(&shipped).unwrap();
    let rebuilt_bytes = std::fs::read(&rebuilt).unwrap();
    assert!(
        tree_and_data(&shipped_bytes) == tree_and_data(&rebuilt_bytes),
        "geodata/world-sample.mmdb is not what `meridian geo build` makes from \
         geodata/world-sample.csv: rebuild it (see geodata/README.md)"
    );
    let csv_bytes = std::fs::metadata(root().join("geodata/world-sample.csv"))
        .unwrap()
        .len();
    assert!(
        shipped_bytes.len() as u64 + csv_bytes < 1_000_000,
        "geodata/ should stay well under 1 MB"
    );
    let shipped = Database::open(&shipped).unwrap();
    let rebuilt = Database::open(&rebuilt).unwrap();
    for (address, country, continent) in PLACES {
        let address: IpAddr = address.parse().unwrap();
        let (location, _) = shipped
            .locate(address)
            .unwrap()
            .unwrap_or_else(|| panic!("{address}: not in the shipped database"));
        assert_eq!(
            (location.country.as_deref(), location.continent.as_deref()),
            (Some(country), Some(continent)),
            "{address}"
        );
        assert_eq!(
            rebuilt
                .locate(address)
                .unwrap()
                .map(|(l, n)| (l.country, n)),
            shipped
                .locate(address)
                .unwrap()
                .map(|(l, n)| (l.country, n)),
            "{address}"
        );
    }
    // Special-purpose space stays unknown.
    for address in [
        "10.1.2.3",
        "127.0.0.1",
        "172.16.5.4",
        "100.64.0.1",
        "192.168.1.1",
        "224.0.0.1",
    ] {
        assert!(
            shipped.locate(address.parse().unwrap()).unwrap().is_none(),
            "{address} should be unknown"
        );
    }
}

/// A running `meridian demo` whose output is read line by line; killed on drop.
struct DemoProcess {
    /// The process.
    child: Child,
    /// Its standard input, for commands.
    stdin: ChildStdin,
    /// Its standard output, line by line.
    lines: Receiver<String>,
    /// Everything it logged so far.
    stderr: Arc<Mutex<String>>,
    /// Its DNS address.
    dns: SocketAddr,
    /// Its control API.
    control: SocketAddr,
}

impl DemoProcess {
    /// Starts `meridian demo --address address` and waits (at most a minute) for its
    /// "demo ready" line.
    fn start(address: Ipv4Addr) -> DemoProcess {
        let mut child = meridian()
            .args(["demo", "--address", &address.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let log = Arc::clone(&stderr);
        let mut errors = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            let mut line = String::new();
            while errors.read_line(&mut line).unwrap_or(0) > 0 {
                log.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut demo = DemoProcess {
            child,
            stdin,
            lines,
            stderr,
            dns: ([0, 0, 0, 0], 0).into(),
            control: ([0, 0, 0, 0], 0).into(),
        };
        let ready = demo
            .next_line(Duration::from_secs(60), |line| {
                line.starts_with("demo ready:")
            })
            .unwrap_or_else(|| panic!("no \"demo ready\" line; log:\n{}", demo.log()));
        let field = |name: &str| {
            ready
                .split_whitespace()
                .find_map(|word| word.strip_prefix(name))
                .map(|value| value.trim_start_matches("http://").to_string())
                .unwrap_or_else(|| panic!("{name} missing from {ready:?}"))
        };
        demo.dns = field("dns=").parse().unwrap();
        demo.control = field("control=").parse().unwrap();
        assert_eq!(demo.dns.ip(), IpAddr::V4(address), "{ready}");
        demo
    }

    /// The next output line that `wanted` accepts within `wait`; the lines before it are
    /// skipped.
    fn next_line(&self, wait: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            if wanted(&line) {
                return Some(line);
            }
        }
    }

    /// What it logged so far.
    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Types `line` on its standard input.
    fn type_line(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The address at `port` on the demo's address.
    fn at(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.dns.ip(), port)
    }
}

impl Drop for DemoProcess {
    /// A failed test leaves no demo behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `method path` on `addr` over a fresh connection: the status and the body.
async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or((0, String::new()))
}

/// The region `www.example.test` answers for a client in `subnet`/24: the first label of
/// the CNAME target (`eu-west` for `eu-west.pool.example.test.`).
async fn region_for(dns: SocketAddr, subnet: [u8; 3]) -> Option<String> {
    let query = ecs_query(
        "www.example.test",
        &[0, 1, 24, 0, subnet[0], subnet[1], subnet[2]],
    );
    let raw = udp_exchange(dns, &query.build(), Duration::from_secs(2)).await?;
    let reply = Reply::decode(raw);
    reply
        .message
        .answers
        .iter()
        .find_map(|record| match &record.data {
            RData::CNAME(target) => Some(target.0.to_ascii()),
            _ => None,
        })
        .and_then(|target| target.split('.').next().map(str::to_string))
}

/// Polls `check` every 200 ms until it returns `Some` or `wait` passes.
async fn poll<T, F, Fut>(wait: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + wait;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `capacity` a pool's `/health` reports.
async fn pool_capacity(pool: SocketAddr) -> Option<f64> {
    let (_, body) = http(pool, "GET", "/health").await;
    serde_json::from_str::<Value>(&body).ok()?["capacity"].as_f64()
}

/// Waits until the pool's capacity is `expected`.
async fn wait_capacity(demo: &DemoProcess, pool: SocketAddr, expected: f64, why: &str) {
    let reached = poll(Duration::from_secs(30), || async {
        (pool_capacity(pool).await == Some(expected)).then_some(())
    })
    .await;
    assert!(
        reached.is_some(),
        "{why}: the pool at {pool} never reported capacity {expected} (last: {:?}); log:\n{}",
        pool_capacity(pool).await,
        demo.log()
    );
}

/// Waits until clients in `subnet` are answered with `region`.
async fn wait_region(demo: &DemoProcess, subnet: [u8; 3], region: &str, why: &str) {
    let reached = poll(Duration::from_secs(30), || async {
        (region_for(demo.dns, subnet).await.as_deref() == Some(region)).then_some(())
    })
    .await;
    assert!(
        reached.is_some(),
        "{why}: clients in {subnet:?} never got {region} (last: {:?}); log:\n{}",
        region_for(demo.dns, subnet).await,
        demo.log()
    );
}

/// us-east's pool (examples/three-regions/meridian.toml).
const US_EAST_POOL: u16 = 18101;
/// eu-west's pool.
const EU_WEST_POOL: u16 = 18102;
/// ap-southeast's pool.
const AP_SOUTHEAST_POOL: u16 = 18103;
/// A United States network.
const US: [u8; 3] = [8, 8, 8];
/// A United Kingdom network.
const GB: [u8; 3] = [81, 2, 69];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_steers_balances_fails_over_and_recovers() {
    let mut demo = tokio::task::block_in_place(|| DemoProcess::start(random_loopback()));

    // Clients in two countries get different regions.
    assert_eq!(region_for(demo.dns, US).await.as_deref(), Some("us-east"));
    assert_eq!(region_for(demo.dns, GB).await.as_deref(), Some("eu-west"));

    // Requests through a pool say which region and backend served them.
    for (port, region) in [(US_EAST_POOL, "us-east"), (EU_WEST_POOL, "eu-west")] {
        let (status, body) = http(demo.at(port), "GET", "/").await;
        assert_eq!(status, 200, "{body}");
        let served: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(served["region"], region, "{body}");
        assert!(
            served["backend"]
                .as_str()
                .is_some_and(|name| name.starts_with(&format!("{region}-"))),
            "{body}"
        );
    }

    // One of eu-west's two backends stops: its pool's capacity halves; back when it restarts.
    let eu_west = demo.at(EU_WEST_POOL);
    wait_capacity(&demo, eu_west, 1.0, "at start").await;
    let (status, body) = http(demo.control, "POST", "/v1/backends/eu-west-2/stop").await;
    assert_eq!(status, 200, "{body}");
    wait_capacity(&demo, eu_west, 0.5, "eu-west-2 stopped").await;
    let (status, body) = http(demo.control, "POST", "/v1/backends/eu-west-2/start").await;
    assert_eq!(status, 200, "{body}");
    wait_capacity(&demo, eu_west, 1.0, "eu-west-2 started").await;

    // The same from standard input.
    let ap_southeast = demo.at(AP_SOUTHEAST_POOL);
    tokio::task::block_in_place(|| demo.type_line("stop ap-southeast-1"));
    wait_capacity(&demo, ap_southeast, 0.5, "typed stop ap-southeast-1").await;
    tokio::task::block_in_place(|| demo.type_line("start ap-southeast-1"));
    wait_capacity(&demo, ap_southeast, 1.0, "typed start ap-southeast-1").await;

    // Unknown names are refused with the known ones.
    let (status, body) = http(demo.control, "POST", "/v1/backends/eu-west-9/stop").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("eu-west-1"), "{body}");

    // A whole region stops: its pool answers 503, and its clients move to their next region
    // (Europe: eu-west, then us-east); they come back when it restarts.
    let (status, body) = http(demo.control, "POST", "/v1/regions/eu-west/stop").await;
    assert_eq!(status, 200, "{body}");
    wait_region(&demo, GB, "us-east", "eu-west stopped").await;
    assert_eq!(http(eu_west, "GET", "/health").await.0, 503);
    assert_eq!(region_for(demo.dns, US).await.as_deref(), Some("us-east"));
    let (status, body) = http(demo.control, "POST", "/v1/regions/eu-west/start").await;
    assert_eq!(status, 200, "{body}");
    wait_region(&demo, GB, "eu-west", "eu-west started").await;

    // The control API's status lists every backend running again.
    let (status, body) = http(demo.control, "GET", "/v1/status").await;
    assert_eq!(status, 200, "{body}");
    let state: Value = serde_json::from_str(&body).unwrap();
    let backends: Vec<&Value> = state["regions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|region| region["backends"].as_array().unwrap())
        .collect();
    assert_eq!(backends.len(), 7, "{body}");
    assert!(backends.iter().all(|b| b["running"] == true), "{body}");

    // SIGTERM stops it cleanly.
    let pid = demo.child.id();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopped = tokio::task::block_in_place(|| {
        demo.next_line(Duration::from_secs(20), |line| line == "demo stopped")
    });
    assert!(
        stopped.is_some(),
        "no \"demo stopped\"; log:\n{}",
        demo.log()
    );
    let exit = tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = demo.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    assert!(
        exit.is_some_and(|status| status.success()),
        "{exit:?}; log:\n{}",
        demo.log()
    );
}

#[test]
fn demo_names_a_taken_port_and_what_to_do() {
    let address = random_loopback();
    let _taken = std::net::TcpListener::bind((address, 18053)).unwrap();
    let mut child = meridian()
        .args(["demo", "--no-load", "--address", &address.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the demo did not stop although its admin port is taken");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains(&format!("{address}:18053")), "{stderr}");
    assert!(stderr.contains("the admin API"), "{stderr}");
    assert!(stderr.contains("--address"), "{stderr}");
}

#[test]
fn demo_refuses_an_address_outside_loopback() {
    let output = meridian()
        .args(["demo", "--address", "192.0.2.1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
