//! The `meridian` binary itself: `check`, `version`, and `serve` with its signals.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{EXAMPLE_COM, Query, Reply, qtype, udp_exchange};

/// The binary under test.
fn meridian() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
}

/// `meridian check --config CONFIG`, run to its end.
fn check(config: impl AsRef<std::ffi::OsStr>) -> std::process::Output {
    meridian()
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// Writes a config (with `listen`) and the example.com zone into `dir`.
fn write_setup(dir: &Path, listen: &str, zone: &str) {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(dir.join("zones/example.com.zone"), zone).unwrap();
    std::fs::write(
        dir.join("meridian.toml"),
        format!("[dns]\nlisten = [\"{listen}\"]\nzones_dir = \"zones\"\nudp_workers = 1\n"),
    )
    .unwrap();
}

#[test]
fn version_prints_the_package_version() {
    let output = meridian().arg("version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("meridian {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_accepts_the_shipped_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = check(root.join("examples/basic/meridian.toml"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ok: 1 zone,"), "{stdout}");

    // The top-level zones/ directory loads too.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        format!(
            "[dns]\nlisten = [\"127.0.0.1:53\"]\nzones_dir = {:?}\n",
            root.join("zones")
        ),
    )
    .unwrap();
    let output = check(&config);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "no warnings: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn check_reports_file_and_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let zone = format!("{EXAMPLE_COM}www CNAME alias\n");
    write_setup(dir.path(), "127.0.0.1:0", &zone);
    let output = check(dir.path().join("meridian.toml"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = zone.lines().count();
    let expect = format!(
        "{}:{line}: CNAME record at www.example.com.",
        dir.path().join("zones/example.com.zone").display()
    );
    assert!(stderr.starts_with(&expect), "{stderr}");
}

#[test]
fn check_reports_every_broken_zone() {
    let dir = tempfile::tempdir().unwrap();
    write_setup(dir.path(), "127.0.0.1:0", "$TTL 60\n@ A 192.0.2.1\n");
    std::fs::write(
        dir.path().join("zones/example.org.zone"),
        "$TTL 60\n@ SOA ns hm 1 2 3 4 5\n",
    )
    .unwrap();
    let output = check(dir.path().join("meridian.toml"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("example.com.zone: zone example.com. has no SOA record"),
        "{stderr}"
    );
    assert!(
        stderr.contains("example.org.zone:2: zone example.org. has no NS records"),
        "{stderr}"
    );
}

#[test]
fn check_rejects_a_missing_config() {
    let output = meridian()
        .args(["check", "--config", "/nonexistent/meridian.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .starts_with("/nonexistent/meridian.toml: cannot read config file")
    );
}

/// Sends `signal` to process `pid` with kill(1).
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Queries `www.example.com A` until an answer arrives or `wait` passes.
async fn wait_for_answer(addr: std::net::SocketAddr, wait: Duration) -> Option<Reply> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Some(raw) = udp_exchange(
            addr,
            &Query::new("www.example.com", qtype::A).build(),
            Duration::from_millis(200),
        )
        .await
        {
            return Some(Reply::decode(raw));
        }
    }
    None
}

/// A running `meridian serve` whose stderr is read line by line.
struct Served {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Served {
    /// Starts `serve` on `config` (which listens on port 0) and reads the
    /// bound address from the "serving" log line.
    fn start(config: &Path) -> Served {
        Served::start_reading(config, " udp=[")
    }

    /// Starts `serve` on `config` and reads the first address logged after `key`.
    fn start_reading(config: &Path, key: &str) -> Served {
        use std::io::BufRead;
        let child = meridian()
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut served = Served {
            child,
            addr: ([0, 0, 0, 0], 0).into(),
            lines: std::sync::mpsc::channel().1,
        };
        let stderr = std::io::BufReader::new(served.child.stderr.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        served.lines = lines;
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = served
                .lines
                .recv_timeout(left)
                .expect("a log line with the address");
            if let Some(rest) = line.split(key).nth(1) {
                served.addr = rest.split([']', ',', ' ']).next().unwrap().parse().unwrap();
                return served;
            }
        }
    }

    /// Sends `signal` to the server.
    fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// Waits for the exit; returns its code and everything logged since start.
    fn wait(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        let log: Vec<String> = self.lines.iter().collect();
        (status.code(), log.join("\n"))
    }
}

impl Drop for Served {
    /// A failed test leaves no server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn serve_reloads_on_sighup_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    write_setup(dir.path(), "127.0.0.1:0", EXAMPLE_COM);
    let served = Served::start(&dir.path().join("meridian.toml"));
    let addr = served.addr;
    let reply = wait_for_answer(addr, Duration::from_secs(10))
        .await
        .expect("server answers");
    assert_eq!(reply.answers(), ["www.example.com. 3600 IN A 192.0.2.80"]);

    // A broken zone: SIGHUP keeps the old data.
    std::fs::write(
        dir.path().join("zones/example.com.zone"),
        format!("{EXAMPLE_COM}oops IN BOGUS x\n"),
    )
    .unwrap();
    served.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = wait_for_answer(addr, Duration::from_secs(5))
        .await
        .expect("still answering");
    assert_eq!(reply.answers(), ["www.example.com. 3600 IN A 192.0.2.80"]);

    // A good change: SIGHUP swaps it in.
    std::fs::write(
        dir.path().join("zones/example.com.zone"),
        EXAMPLE_COM.replace("192.0.2.80", "192.0.2.99"),
    )
    .unwrap();
    served.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = wait_for_answer(addr, Duration::from_secs(2))
            .await
            .expect("answering");
        if reply.answers() == ["www.example.com. 3600 IN A 192.0.2.99"] {
            break;
        }
        assert!(Instant::now() < deadline, "reload not applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    served.signal("TERM");
    let (code, log) = tokio::task::spawn_blocking(move || served.wait())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{log}");
    let zone_path = dir.path().join("zones/example.com.zone");
    assert!(
        log.contains(&format!("{}:", zone_path.display())),
        "reload error logged with file: {log}"
    );
    assert!(log.contains("reload failed"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes off a terminal: {log}"
    );
}

#[test]
fn serve_answers_a_sighup_sent_at_once() {
    // The handlers are installed before the sockets open, so a SIGHUP sent
    // the moment the address is logged reloads rather than kills.
    let dir = tempfile::tempdir().unwrap();
    write_setup(dir.path(), "127.0.0.1:0", EXAMPLE_COM);
    let served = Served::start(&dir.path().join("meridian.toml"));
    served.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let line = served
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a \"reloaded\" log line");
        if line.contains("reloaded") {
            break;
        }
    }
    served.signal("TERM");
    let (code, log) = served.wait();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn geo_lookup_shows_each_map_and_scope() {
    use crate::geo::{GEO_TEST, NETS, sections};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    std::fs::write(dir.path().join("zones/geo.test.zone"), GEO_TEST).unwrap();
    std::fs::write(dir.path().join("nets.csv"), NETS).unwrap();
    let config = dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        format!(
            "[dns]\nlisten = [\"127.0.0.1:0\"]\nzones_dir = \"zones\"\n{}",
            sections("")
        ),
    )
    .unwrap();
    let lookup = |address: &str| {
        let output = meridian()
            .args(["geo", "lookup", address, "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(
        lookup("81.2.69.142"),
        "81.2.69.142\n  map world: [eu-west, us-east]; scope /24\n"
    );
    assert_eq!(
        lookup("8.8.8.8"),
        "8.8.8.8\n  map world: [us-east, eu-west, ap-south]; scope /2\n"
    );
    assert_eq!(
        lookup("2a02:d180::1"),
        "2a02:d180::1\n  map world: [eu-west]; scope /29\n"
    );
    let output = check(&config);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ok: 1 zone, 5 records, 2 services, 0 warnings"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(from 0 located networks, 0 ASN networks, 3 nets rules)"),
        "{stdout}"
    );
    let output = meridian()
        .args(["geo", "lookup", "not-an-ip", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "clap rejects a bad address");
}

#[tokio::test]
async fn serve_without_dns_runs_only_the_balancers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A backend answering every request on its connection with "ok".
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = backend.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        format!(
            "[balancers.web]\nlisten = \"127.0.0.1:0\"\nbackends = [{{ addr = \"{backend_addr}\" }}]\n"
        ),
    )
    .unwrap();
    let output = check(&config);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok: no DNS ([dns] left out), 1 balancer, 0 warnings"),
        "{stdout}"
    );

    let served = Served::start_reading(&config, " listen=");
    let mut stream = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: pool.test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nok"), "{response}");

    served.signal("TERM");
    let (code, log) = tokio::task::spawn_blocking(move || served.wait())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("serving the L7 pools only"), "{log}");
}
