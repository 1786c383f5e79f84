//! `meridian demo` and what it ships: the three-region example passes `check`, the world geo
//! database is exactly what `geo build` makes from its CSV and places real addresses, and the
//! demo itself, run as a user runs it, steers, balances, fails over and recovers; the commands
//! it prints run; it stops cleanly on SIGTERM and SIGINT at any moment, leaving no temporary
//! directory; and it neither freezes in the background of a terminal nor ignores the end of
//! its standard input.

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
        "::1",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:2::1",
        "2001:db8::1",
        "2001:db8:ffff::1",
        "2002::1",
        "2002:c000:204::1",
        "3fff::1",
        "64:ff9b::808:808",
        "100::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
    ] {
        assert!(
            shipped.locate(address.parse().unwrap()).unwrap().is_none(),
            "{address} should be unknown"
        );
    }
}

/// How a test runs `meridian demo`.
struct DemoOptions {
    /// `--no-load`.
    no_load: bool,
    /// A pipe to type commands into; otherwise standard input is `/dev/null`.
    stdin: bool,
}

/// A running `meridian demo` whose output is read line by line; killed on drop.
struct DemoProcess {
    /// The process.
    child: Child,
    /// Its standard input, for commands (while piped).
    stdin: Option<ChildStdin>,
    /// Its standard output, line by line.
    lines: Receiver<String>,
    /// Everything it logged so far.
    stderr: Arc<Mutex<String>>,
    /// Its `TMPDIR`, where it writes its files; removed on drop.
    tmp: tempfile::TempDir,
    /// The lines it printed up to its "demo ready" line.
    printed: Vec<String>,
    /// Its DNS address.
    dns: SocketAddr,
    /// Its control API.
    control: SocketAddr,
}

impl DemoProcess {
    /// Starts `meridian demo --address address` with a pipe on standard input and waits (at
    /// most a minute) for its "demo ready" line.
    fn start(address: Ipv4Addr) -> DemoProcess {
        DemoProcess::start_with(
            address,
            DemoOptions {
                no_load: false,
                stdin: true,
            },
        )
    }

    /// Starts `meridian demo --address address` as `options` say, with a `TMPDIR` of its own,
    /// and waits (at most a minute) for its "demo ready" line.
    fn start_with(address: Ipv4Addr, options: DemoOptions) -> DemoProcess {
        let tmp = tempfile::tempdir().unwrap();
        let mut command = meridian();
        command.args(["demo", "--address", &address.to_string()]);
        if options.no_load {
            command.arg("--no-load");
        }
        let mut child = command
            .env("TMPDIR", tmp.path())
            .stdin(if options.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let lines = line_reader(child.stdout.take().unwrap());
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
            tmp,
            printed: Vec::new(),
            dns: ([0, 0, 0, 0], 0).into(),
            control: ([0, 0, 0, 0], 0).into(),
        };
        let mut printed = Vec::new();
        let ready = demo
            .next_line(Duration::from_secs(60), |line| {
                printed.push(line.to_string());
                line.starts_with("demo ready:")
            })
            .unwrap_or_else(|| panic!("no \"demo ready\" line; log:\n{}", demo.log()));
        demo.printed = printed;
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
    fn next_line(&self, wait: Duration, mut wanted: impl FnMut(&str) -> bool) -> Option<String> {
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
        let stdin = self
            .stdin
            .as_mut()
            .expect("a demo started with a pipe on stdin");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The address at `port` on the demo's address.
    fn at(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.dns.ip(), port)
    }

    /// The temporary directory the demo wrote its files into, from the `config` line it
    /// printed; it lies in the demo's `TMPDIR`.
    fn files(&self) -> PathBuf {
        let config = self
            .printed
            .iter()
            .find_map(|line| line.trim_start().strip_prefix("config "))
            .unwrap_or_else(|| panic!("no config line in {:#?}", self.printed))
            .trim();
        let config = PathBuf::from(config);
        let files = config
            .ancestors()
            .nth(3)
            .unwrap_or_else(|| {
                panic!(
                    "{} is not DIR/examples/three-regions/FILE",
                    config.display()
                )
            })
            .to_path_buf();
        assert_eq!(
            files.parent(),
            Some(self.tmp.path()),
            "{}",
            config.display()
        );
        files
    }

    /// Sends `signal` (`TERM`, `INT`) and waits for "demo stopped", a successful exit, and no
    /// file left in its `TMPDIR`.
    fn stop_with(&mut self, signal: &str) {
        let files = self.files();
        assert!(
            files.is_dir(),
            "{} missing while the demo runs",
            files.display()
        );
        send_signal(self.child.id(), signal);
        let stopped = self.next_line(Duration::from_secs(20), |line| line == "demo stopped");
        assert!(
            stopped.is_some(),
            "SIG{signal}: no \"demo stopped\"; log:\n{}",
            self.log()
        );
        let exit = wait_exit(&mut self.child, Duration::from_secs(10));
        assert!(
            exit.is_some_and(|status| status.success()),
            "SIG{signal}: {exit:?}; log:\n{}",
            self.log()
        );
        assert!(
            !files.exists(),
            "SIG{signal}: {} left behind",
            files.display()
        );
        assert_eq!(
            left_in(self.tmp.path()),
            Vec::<String>::new(),
            "SIG{signal}"
        );
    }
}

impl Drop for DemoProcess {
    /// A failed test leaves no demo behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A thread that reads `output` line by line into the returned channel.
fn line_reader(output: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (send, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Sends `kill -SIGNAL pid`.
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// The exit status of `child` within `wait`, or `None`.
fn wait_exit(child: &mut Child, wait: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The names in `dir`.
fn left_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
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

    // SIGTERM stops it cleanly, and its files are gone.
    tokio::task::block_in_place(|| demo.stop_with("TERM"));
}

#[test]
fn demo_names_a_taken_port_and_what_to_do() {
    let address = random_loopback();
    let _taken = std::net::TcpListener::bind((address, 18053)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut child = meridian()
        .args(["demo", "--no-load", "--address", &address.to_string()])
        .env("TMPDIR", tmp.path())
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
    // A failed start leaves no files behind either.
    assert_eq!(left_in(tmp.path()), Vec::<String>::new());
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

/// The lines the demo printed under "Operate it as in production:", split into words as a
/// shell would (double quotes only, which is all they use).
fn operator_commands(printed: &[String]) -> Vec<Vec<String>> {
    printed
        .iter()
        .skip_while(|line| !line.starts_with("Operate it as in production:"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .map(|line| {
            let mut words = Vec::new();
            let mut word: Option<String> = None;
            let mut quoted = false;
            for c in line.trim().chars() {
                match c {
                    '"' => {
                        quoted = !quoted;
                        word.get_or_insert_with(String::new);
                    }
                    c if c.is_whitespace() && !quoted => words.extend(word.take()),
                    c => word.get_or_insert_with(String::new).push(c),
                }
            }
            assert!(!quoted, "unbalanced quotes in {line:?}");
            words.extend(word);
            words
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_operator_commands_that_run_in_order() {
    let mut demo = tokio::task::block_in_place(|| {
        DemoProcess::start_with(
            random_loopback(),
            DemoOptions {
                no_load: true,
                stdin: false,
            },
        )
    });
    assert!(
        demo.printed
            .iter()
            .any(|line| line.contains("background traffic: off (--no-load)")),
        "{:#?}",
        demo.printed
    );

    // Standard input is /dev/null: its end is said once, and the demo goes on.
    let closed = format!(
        "standard input closed; use the control API at http://{}/ or Ctrl-C",
        demo.control
    );
    let said = poll(Duration::from_secs(20), || async {
        demo.log().contains(&closed).then_some(())
    })
    .await;
    assert!(said.is_some(), "no {closed:?}; log:\n{}", demo.log());
    assert_eq!(demo.log().matches(&closed).count(), 1, "{}", demo.log());
    assert_eq!(http(demo.control, "GET", "/healthz").await.0, 200);

    // The printed operator commands, run in order exactly as printed, all succeed.
    let commands = operator_commands(&demo.printed);
    let verbs: Vec<String> = commands.iter().map(|words| words[1..3].join(" ")).collect();
    assert_eq!(
        verbs,
        [
            "status --admin",
            "drill start",
            "drill report",
            "drill abort",
            "drain eu-west",
            "clear eu-west",
        ],
        "{:#?}",
        demo.printed
    );
    for words in &commands {
        let output = tokio::task::block_in_place(|| {
            Command::new(&words[0])
                .args(&words[1..])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        });
        assert!(
            output.status.success(),
            "{words:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    wait_region(
        &demo,
        GB,
        "eu-west",
        "after the drill and the drain were cleared",
    )
    .await;

    // SIGINT (Ctrl-C) stops it cleanly, and its files are gone.
    tokio::task::block_in_place(|| demo.stop_with("INT"));
}

/// A child process killed (and reaped) on drop, so a failed test leaves none behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    /// Kills and reaps the process.
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn demo_stops_cleanly_on_a_signal_at_any_moment_of_its_start() {
    for signal in ["TERM", "INT"] {
        for delay in [0, 20, 100, 400].map(Duration::from_millis) {
            let tmp = tempfile::tempdir().unwrap();
            let mut child = KillOnDrop(
                meridian()
                    .args(["demo", "--no-load", "--address"])
                    .arg(random_loopback().to_string())
                    .env("TMPDIR", tmp.path())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
            // The directory appears once the demo handles signals; the signal then comes
            // `delay` later, at some point of the start.
            let deadline = Instant::now() + Duration::from_secs(30);
            while left_in(tmp.path()).is_empty() {
                assert!(
                    child.0.try_wait().unwrap().is_none(),
                    "the demo exited before writing its files"
                );
                assert!(Instant::now() < deadline, "the demo wrote no files");
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(delay);
            send_signal(child.0.id(), signal);
            let exit = wait_exit(&mut child.0, Duration::from_secs(30));
            let mut stderr = String::new();
            if exit.is_some() {
                std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr)
                    .unwrap();
            }
            assert!(
                exit.is_some_and(|status| status.success()),
                "SIG{signal} {delay:?} after the files: {exit:?}; log:\n{stderr}"
            );
            assert_eq!(
                left_in(tmp.path()),
                Vec::<String>::new(),
                "SIG{signal} {delay:?} after the files; log:\n{stderr}"
            );
        }
    }
}

/// Whether `script` (util-linux, Debian package `bsdutils`) runs; panics if it does not and
/// tools are required.
fn have_script() -> bool {
    let found = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        if crate::interop::required() {
            panic!(
                "script is required (MERIDIAN_REQUIRE_TOOLS=1) but not installed: apt-get install bsdutils"
            );
        }
        eprintln!("skipping: script not installed (apt-get install bsdutils)");
    }
    found
}

/// A demo run by a job-control shell on a terminal of its own (`script`): killed on drop,
/// the demo (found by the process id in its directory's name) with it.
struct TerminalDemo {
    /// `script`.
    script: KillOnDrop,
    /// What the test types on the terminal.
    keys: ChildStdin,
    /// The terminal's output, line by line (the demo's standard output and log).
    lines: Receiver<String>,
    /// Every line seen so far.
    seen: Vec<String>,
    /// The demo's `TMPDIR`.
    tmp: tempfile::TempDir,
}

impl TerminalDemo {
    /// Reads lines until `count` lines seen so far contain `text`, at most `wait`.
    fn wait_for_nth(&mut self, text: &str, count: usize, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            if self.seen.iter().filter(|line| line.contains(text)).count() >= count {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            let Ok(line) = self.lines.recv_timeout(left) else {
                return false;
            };
            self.seen.push(line.replace('\r', ""));
        }
    }

    /// Reads lines until one contains `text`, at most `wait`.
    fn wait_for(&mut self, text: &str, wait: Duration) -> bool {
        self.wait_for_nth(text, 1, wait)
    }

    /// Types `keys` on the terminal.
    fn type_keys(&mut self, keys: &[u8]) {
        self.keys.write_all(keys).unwrap();
        self.keys.flush().unwrap();
    }

    /// Everything seen so far, for failure messages.
    fn transcript(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for TerminalDemo {
    /// Kills the demo (a grandchild) too.
    fn drop(&mut self) {
        for name in left_in(self.tmp.path()) {
            let pid = name
                .strip_prefix("meridian-demo-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            if let Some(pid) = pid {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Whether `GET /healthz` on `addr` answers 200 within a second.
fn healthz(addr: SocketAddr) -> bool {
    let exchange = || -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer)?;
        Ok(answer)
    };
    exchange().is_ok_and(|answer| answer.starts_with("HTTP/1.1 200"))
}

#[test]
fn demo_in_the_background_of_a_terminal_runs_and_takes_commands_after_fg() {
    if !have_script() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let address = random_loopback();
    let control = SocketAddr::from((address, 18054));
    // A job-control shell on a terminal of its own starts the demo as a background job, then
    // moves it as a user would, one step per line the test types: `fg`; after Ctrl-Z, `bg`;
    // `fg` again.
    let shell = format!(
        "set -m; '{}' demo --no-load --address {address} & read go; fg; \
         echo \"job stopped: $?\"; read again; bg; read more; fg",
        env!("CARGO_BIN_EXE_meridian"),
    );
    let mut script = KillOnDrop(
        Command::new("script")
            .args(["-qfec", &shell, "/dev/null"])
            .env("SHELL", "/bin/sh")
            .env("TMPDIR", tmp.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let keys = script.0.stdin.take().unwrap();
    let lines = line_reader(script.0.stdout.take().unwrap());
    let mut demo = TerminalDemo {
        script,
        keys,
        lines,
        seen: Vec::new(),
        tmp,
    };
    let background = "runs in the background of its terminal";

    // Started in the background, it is not stopped by reading the terminal: it gets ready,
    // and says that typed commands wait for `fg`.
    assert!(
        demo.wait_for("demo ready:", Duration::from_secs(60)),
        "not ready in the background (stopped reading its terminal?):\n{}",
        demo.transcript()
    );
    assert!(
        demo.wait_for(background, Duration::from_secs(10)),
        "{}",
        demo.transcript()
    );

    // `fg`, then a command typed at the demo.
    demo.type_keys(b"go\nstatus\n");
    assert!(
        demo.wait_for("background visits by region", Duration::from_secs(20)),
        "no answer to `status` typed after fg:\n{}",
        demo.transcript()
    );

    // Ctrl-Z stops it while it waits for a line; `bg` lets it run on in the background, where
    // the read it was in is restarted: it must not stop again.
    demo.type_keys(b"\x1a");
    assert!(
        demo.wait_for("job stopped: ", Duration::from_secs(20)),
        "Ctrl-Z did not stop the job:\n{}",
        demo.transcript()
    );
    demo.type_keys(b"again\n");
    assert!(
        demo.wait_for_nth(background, 2, Duration::from_secs(20)),
        "no second note of running in the background after bg:\n{}",
        demo.transcript()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !healthz(control) {
        assert!(
            Instant::now() < deadline,
            "the control API does not answer after bg:\n{}",
            demo.transcript()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // `fg` again: commands are read again.
    demo.type_keys(b"more\nstatus\n");
    assert!(
        demo.wait_for_nth("background visits by region", 2, Duration::from_secs(20)),
        "no answer to `status` typed after the second fg:\n{}",
        demo.transcript()
    );

    // Ctrl-D on the terminal stops it cleanly, and its files are gone.
    demo.type_keys(b"\x04");
    assert!(
        demo.wait_for("demo stopped", Duration::from_secs(20)),
        "Ctrl-D did not stop the demo:\n{}",
        demo.transcript()
    );
    let exit = wait_exit(&mut demo.script.0, Duration::from_secs(20));
    assert!(
        exit.is_some_and(|status| status.success()),
        "{exit:?}:\n{}",
        demo.transcript()
    );
    assert_eq!(left_in(demo.tmp.path()), Vec::<String>::new());
}
