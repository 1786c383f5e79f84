//! Every command the documentation shows, run: `README.md` and `docs/*.md`.
//!
//! The convention the documents follow:
//!
//! - Commands are written in ```` ```console ```` blocks, one per `$ ` line (a line ending in
//!   `\` continues on the next). No other block may hold a `$ ` line.
//! - The lines after a command, up to the next `$ `, are what it prints. Each must appear in
//!   the real output, in that order, with runs of spaces counted as one; other lines may come
//!   between them, so a document shows only the lines that matter (a line that is only `…`
//!   marks such a gap). A line with `…` inside matches a line holding the pieces between the
//!   `…`s, in order.
//! - Words are split as a shell would split them (quotes, backslashes), but there are no pipes,
//!   redirections or variables: the only substitution is `$(cat FILE)`.
//!
//! Each document is run, in order, against a server this test starts from the set-up the
//! document describes: the README against the three-region example the demo runs
//! (`examples/three-regions/`), the guides against the example set-up of
//! `docs/operator-guide.md` (its first ```` ```toml ```` block and its ```` ```zone ```` blocks).
//! The set-up is moved to loopback port 0: `listen` addresses get port 0, regional monitors
//! probe a health endpoint of the test, pools forward to backends of the test, and files the
//! set-up names but the repository does not hold (a GeoLite2 database) are replaced by ones
//! the test builds. The commands are then rewritten to match: addresses and ports in `dig`
//! and `curl` arguments and in `--admin` become the test server's, `--config` its
//! configuration (written with the ports really bound), `--token-file` its token.
//!
//! What runs:
//!
//! - `meridian ...` (also as `cargo run --release -- ...` or `target/release/meridian ...`):
//!   run for real, from the set-up's directory. `meridian serve` starts a second server on
//!   the set-up (port 0, state files of its own), which must answer a query and stop cleanly
//!   on SIGTERM; `meridian demo` is checked to parse (`--help`), and `tests/it/demo.rs` runs
//!   the demo. `drill report ID` and `drill abort ID` use the id the last `drill start`
//!   printed.
//! - `dig` and `kdig`: run for real (dig from Debian package `bind9-dnsutils`, kdig from
//!   `knot-dnsutils`). Without dig, a dig command runs as kdig, which takes the same options,
//!   and its output is not compared. Without either, the test prints a notice and skips the
//!   command, unless `MERIDIAN_REQUIRE_TOOLS=1`.
//! - `curl [-s] [-S] [-f] [-H HEADER] URL`: a GET, made by this test.
//! - `cargo test`: must be the test command of `.ci/run`. `cargo bench --bench NAME`: the bench
//!   must exist.
//!
//! A command that is only checked (`demo`, `cargo`) may not show output, since nothing
//! compares it.
//!
//! Any other command fails the test: a command the documents show must be one a test runs.
//! The ```` ```toml ```` blocks are checked too: each, laid over the set-up of its document,
//! must pass the configuration checks, and each ```` ```zone ```` block must load as a zone.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Query, qtype, udp_exchange};
use crate::interop::required;

/// The repository's root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The documents whose commands are run, with the set-up each runs against.
const DOCUMENTS: [(&str, SetUp); 3] = [
    ("README.md", SetUp::ThreeRegions),
    ("docs/operator-guide.md", SetUp::Guide),
    ("docs/configuration.md", SetUp::Guide),
];

/// The document whose first ```toml block and ```zone blocks are the guides' set-up.
const GUIDE: &str = "docs/operator-guide.md";

/// How long one command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The user the commands run as (`$USER` names the actor in the audit log).
const USER: &str = "operator";

/// The set-up a document's commands run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetUp {
    /// `examples/three-regions/`: what `meridian demo` runs.
    ThreeRegions,
    /// The example set-up of the operator guide.
    Guide,
}

// ------------------------------------------------------------------------------------------
// Reading the documents.

/// A fenced block of a document.
#[derive(Debug, Clone)]
struct Block {
    /// Its info string (`console`, `toml`, ...).
    info: String,
    /// The 1-based line of its first content line.
    line: usize,
    /// Its lines.
    lines: Vec<String>,
}

/// The fenced blocks of `text`. Fences may be indented (inside list items); the indentation
/// of the opening fence is removed from the block's lines.
fn blocks(text: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut open: Option<(Block, usize)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match open.take() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let block = Block {
                        info: info.trim().to_owned(),
                        line: index + 2,
                        lines: Vec::new(),
                    };
                    open = Some((block, indent));
                }
            }
            Some((block, _)) if trimmed == "```" => found.push(block),
            Some((mut block, indent)) => {
                let cut = line
                    .char_indices()
                    .take_while(|(at, c)| *at < indent && c.is_whitespace())
                    .count();
                block.lines.push(line[cut..].to_owned());
                open = Some((block, indent));
            }
        }
    }
    found
}

/// A command a document shows, and what it shows it printing.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    /// The 1-based line of the `$ `.
    line: usize,
    /// The command, continuation lines joined.
    command: String,
    /// The lines shown after it.
    output: Vec<String>,
}

/// The commands of `text` (named `name` in messages), in order.
fn commands(name: &str, text: &str) -> Result<Vec<Shown>, String> {
    let mut found: Vec<Shown> = Vec::new();
    for block in blocks(text) {
        let console = block.info == "console";
        let mut continued = false;
        for (offset, line) in block.lines.iter().enumerate() {
            let number = block.line + offset;
            if continued {
                let last = found.last_mut().expect("a command to continue");
                let part = line.trim();
                continued = part.ends_with('\\');
                last.command.push(' ');
                last.command.push_str(part.trim_end_matches('\\').trim());
                continue;
            }
            if let Some(command) = line.strip_prefix("$ ") {
                if !console {
                    return Err(format!(
                        "{name}:{number}: a `$ ` command in a ```{} block: write commands in \
                         ```console blocks",
                        block.info
                    ));
                }
                continued = command.trim_end().ends_with('\\');
                found.push(Shown {
                    line: number,
                    command: command.trim_end().trim_end_matches('\\').trim().to_owned(),
                    output: Vec::new(),
                });
            } else if console {
                match found.last_mut() {
                    Some(last) if last.line >= block.line => last.output.push(line.clone()),
                    _ => {
                        return Err(format!(
                            "{name}:{number}: a ```console block must start with a `$ ` command"
                        ));
                    }
                }
            }
        }
    }
    Ok(found)
}

/// Splits `command` into words as a shell does, refusing what the runner does not do: pipes,
/// redirections, command lists, variables and substitutions other than `$(cat FILE)`.
fn words(command: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = command.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(open), c) if c == open => quote = None,
            (Some('\''), c) => word.get_or_insert_with(String::new).push(c),
            (Some(_), '\\') => {
                let next = chars.next().ok_or("a `\\` at the end")?;
                let word = word.get_or_insert_with(String::new);
                if !matches!(next, '"' | '\\' | '$' | '`') {
                    word.push('\\');
                }
                word.push(next);
            }
            (_, '$') => {
                let rest: String = chars.clone().collect();
                let Some(file) = rest
                    .strip_prefix("(cat ")
                    .and_then(|rest| rest.split_once(')'))
                    .map(|(file, _)| file.trim().to_owned())
                else {
                    return Err(format!(
                        "`${rest}`: the only substitution the docs may use is $(cat FILE)"
                    ));
                };
                for _ in 0.."(cat ".len() + file.len() + 1 {
                    chars.next();
                }
                word.get_or_insert_with(String::new)
                    .push_str(&format!("$(cat {file})"));
            }
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, '\\') => {
                let next = chars.next().ok_or("a `\\` at the end")?;
                word.get_or_insert_with(String::new).push(next);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, '|' | '>' | '<' | ';' | '&' | '`' | '*' | '?') => {
                return Err(format!(
                    "`{c}`: pipes, redirections, lists and globs are not run; show one \
                     command per `$ ` line"
                ));
            }
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err("an unclosed quote".to_owned());
    }
    words.extend(word);
    Ok(words)
}

/// Whether a document shows output lines for a command (blank lines do not count).
fn shows_output(shown: &[String]) -> bool {
    shown.iter().any(|line| !line.trim().is_empty())
}

/// Checks `actual` against the lines a document shows (see the module documentation).
fn check_output(shown: &[String], actual: &str) -> Result<(), String> {
    let normal = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: Vec<String> = actual.lines().map(normal).collect();
    let mut next = 0;
    for expected in shown {
        let expected = normal(expected);
        if expected.is_empty() || expected == "…" {
            continue;
        }
        let matches = |line: &String| {
            if !expected.contains('…') {
                return *line == expected;
            }
            let mut rest = line.as_str();
            for piece in expected.split('…').filter(|piece| !piece.is_empty()) {
                match rest.find(piece) {
                    Some(at) => rest = &rest[at + piece.len()..],
                    None => return false,
                }
            }
            true
        };
        match lines[next..].iter().position(matches) {
            Some(at) => next += at + 1,
            None => {
                return Err(format!(
                    "the output does not show {expected:?} (after the lines already matched)"
                ));
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// The set-ups.

/// A set-up as the documents describe it, before it is moved to port 0.
struct Spec {
    /// The configuration text.
    config: String,
    /// The directory the configuration's relative paths start from, if it is in the
    /// repository.
    base: Option<PathBuf>,
    /// The zone files: (file name, text).
    zones: Vec<(String, String)>,
}

/// The origin a zone text declares with `$ORIGIN`, without the final dot.
fn zone_origin(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.trim().strip_prefix("$ORIGIN"))
        .map(|origin| origin.trim().trim_end_matches('.').to_owned())
}

/// Reads a repository file, saying which one is missing.
fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path))
        .unwrap_or_else(|err| panic!("cannot read {path}: {err}"))
}

impl Spec {
    /// The set-up a document's commands run against.
    fn of(setup: SetUp) -> Spec {
        match setup {
            SetUp::ThreeRegions => {
                let base = root().join("examples/three-regions");
                let mut zones = Vec::new();
                let zone_dir = base.join("zones");
                let entries = std::fs::read_dir(&zone_dir)
                    .unwrap_or_else(|err| panic!("{}: {err}", zone_dir.display()));
                for entry in entries {
                    let path = entry.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    zones.push((name, std::fs::read_to_string(&path).unwrap()));
                }
                Spec {
                    config: read("examples/three-regions/meridian.toml"),
                    base: Some(base),
                    zones,
                }
            }
            SetUp::Guide => {
                let text = read(GUIDE);
                let all = blocks(&text);
                let config = all
                    .iter()
                    .find(|block| block.info == "toml")
                    .unwrap_or_else(|| panic!("{GUIDE} has no ```toml block"));
                let zones = all
                    .iter()
                    .filter(|block| block.info == "zone")
                    .map(|block| {
                        let text = block.lines.join("\n") + "\n";
                        let origin = zone_origin(&text).unwrap_or_else(|| {
                            panic!("{GUIDE}:{}: a ```zone block without $ORIGIN", block.line)
                        });
                        (format!("{origin}.zone"), text)
                    })
                    .collect();
                Spec {
                    config: config.lines.join("\n") + "\n",
                    base: None,
                    zones,
                }
            }
        }
    }
}

/// The port of a `listen` value: `"ip:port"`.
fn port_of(listen: &str) -> u16 {
    listen
        .parse::<SocketAddr>()
        .unwrap_or_else(|err| panic!("listen {listen:?}: {err}"))
        .port()
}

/// A running server for one document, with the test's own health endpoint and backends.
struct Env {
    /// Config, zones, geo database, token, state.
    dir: tempfile::TempDir,
    /// Runs the health endpoint and the backends.
    runtime: tokio::runtime::Runtime,
    /// `meridian serve`.
    child: Child,
    /// The ports the document uses, mapped to the ports the server bound.
    ports: BTreeMap<u16, u16>,
    /// The DNS port bound.
    dns_port: u16,
    /// The admin API's token, if the set-up has one.
    token: Option<String>,
    /// The id of the last drill a command started.
    drill: Option<String>,
}

impl Drop for Env {
    /// Stops the server (SIGTERM, then SIGKILL if it lingers).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Answers every HTTP request on `listener` with `200` and `body`, closing the connection.
async fn answer_forever(listener: tokio::net::TcpListener, body: &'static str) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 2048];
            while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// The body of the test's health endpoint: a Meridian pool's health JSON at full capacity,
/// holding "ok" for monitors with `expect_body = "ok"`.
const HEALTH_BODY: &str = r#"{"status":"ok","healthy":1,"total":1,"in_flight":0,"requests":0,"latency_ms":0.0,"capacity":1.0}"#;

/// A `key=value` word of a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

/// Binds a loopback listener on port 0 for a server of the test.
fn loopback(runtime: &tokio::runtime::Runtime) -> tokio::net::TcpListener {
    runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a loopback port")
}

/// The mutable table at `key` of `table`, if there is one.
fn table_mut<'a>(table: &'a mut toml::Table, key: &str) -> Option<&'a mut toml::Table> {
    table.get_mut(key).and_then(toml::Value::as_table_mut)
}

/// Moves `[dns]` to port 0 and the set-up's zones directory; records its ports.
fn move_dns(config: &mut toml::Table, original: &mut Original) {
    let dns = table_mut(config, "dns").expect("the set-up has [dns]");
    for listen in dns["listen"].as_array().expect("dns.listen is a list") {
        original
            .dns
            .push(port_of(listen.as_str().expect("an address")));
    }
    dns.insert("listen".into(), vec!["127.0.0.1:0"].into());
    dns.insert("zones_dir".into(), "zones".into());
    dns.insert("udp_workers".into(), 1.into());
}

/// Points `[geo]` at files that exist: the repository's, relative to `base`, or a database
/// the test builds into `dir` for one the repository does not hold (a GeoLite2 file).
fn move_geo(config: &mut toml::Table, base: Option<&Path>, dir: &Path) {
    let Some(geo) = table_mut(config, "geo") else {
        return;
    };
    let in_repository = |path: &str| {
        base.map(|base| base.join(path))
            .filter(|path| path.exists())
    };
    if let Some(databases) = geo.get_mut("databases").and_then(toml::Value::as_array_mut) {
        for database in databases.iter_mut() {
            let path = in_repository(database.as_str().expect("a path"))
                .unwrap_or_else(|| built_database(dir));
            *database = path.display().to_string().into();
        }
    }
    if let Some(nets) = geo.get("nets").and_then(toml::Value::as_str) {
        match in_repository(nets) {
            Some(path) => geo.insert("nets".into(), path.display().to_string().into()),
            None => geo.remove("nets"),
        };
    }
}

/// Moves the state files into the set-up's directory, and `[admin]` to port 0 with a token
/// file of the test (when the set-up has a token); records the admin port and returns the
/// token.
fn move_admin(config: &mut toml::Table, original: &mut Original, dir: &Path) -> Option<String> {
    if let Some(health) = table_mut(config, "health")
        && health.contains_key("state_file")
    {
        health.insert("state_file".into(), "state/health.json".into());
    }
    let admin = table_mut(config, "admin")?;
    original.admin = admin
        .get("listen")
        .and_then(toml::Value::as_str)
        .map(port_of);
    admin.insert("listen".into(), "127.0.0.1:0".into());
    if admin.contains_key("state_file") {
        admin.insert("state_file".into(), "state/admin.json".into());
    }
    if !admin.contains_key("token_file") {
        return None;
    }
    let token = "docs-test-token".to_owned();
    std::fs::write(dir.join("admin.token"), format!("{token}\n")).unwrap();
    admin.insert("token_file".into(), "admin.token".into());
    Some(token)
}

/// Points every regional monitor at the test's health endpoint (plain HTTP).
fn point_monitors(config: &mut toml::Table, health_url: &str) {
    let regions = table_mut(config, "regions");
    for (_, region) in regions.into_iter().flat_map(|regions| regions.iter_mut()) {
        let monitors = region
            .get_mut("monitor")
            .and_then(toml::Value::as_array_mut);
        for monitor in monitors.into_iter().flatten() {
            let monitor = monitor.as_table_mut().expect("a monitor is a table");
            monitor.insert("url".into(), health_url.into());
            monitor.remove("ca_file");
            monitor.remove("insecure");
        }
    }
}

/// Moves every pool to port 0 and its backends to backends of the test; records the pools'
/// ports.
fn move_balancers(
    config: &mut toml::Table,
    original: &mut Original,
    runtime: &tokio::runtime::Runtime,
) {
    let retarget = |list: &mut toml::Value| {
        for backend in list.as_array_mut().expect("a list of backends") {
            let listener = loopback(runtime);
            let addr = listener.local_addr().unwrap();
            runtime.spawn(answer_forever(listener, "ok"));
            backend
                .as_table_mut()
                .expect("a backend is a table")
                .insert("addr".into(), addr.to_string().into());
        }
    };
    let balancers = table_mut(config, "balancers");
    for (name, balancer) in balancers.into_iter().flat_map(|all| all.iter_mut()) {
        let balancer = balancer.as_table_mut().expect("a balancer is a table");
        let port = port_of(balancer["listen"].as_str().expect("an address"));
        original.balancers.insert(name.clone(), port);
        balancer.insert("listen".into(), "127.0.0.1:0".into());
        retarget(balancer.get_mut("backends").expect("backends"));
        let sets = table_mut(balancer, "backend_sets");
        for (_, set) in sets.into_iter().flat_map(|sets| sets.iter_mut()) {
            retarget(set.get_mut("backends").expect("a set's backends"));
        }
    }
}

/// The set-up for a second server beside the first (for a documented `meridian serve`): the
/// same, with state files of its own.
fn second_server(config: &toml::Table) -> toml::Table {
    let mut second = config.clone();
    for section in ["health", "admin"] {
        if let Some(table) = table_mut(&mut second, section)
            && table.contains_key("state_file")
        {
            let file = format!("state/second-{section}.json");
            table.insert("state_file".into(), file.into());
        }
    }
    second
}

impl Env {
    /// Starts `meridian serve` for `setup`, moved to port 0 (see the module documentation),
    /// and waits until every monitor has been probed.
    fn start(setup: SetUp) -> Env {
        let spec = Spec::of(setup);
        let dir = tempfile::tempdir().unwrap();
        for sub in ["zones", "state"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        for (name, text) in &spec.zones {
            std::fs::write(dir.path().join("zones").join(name), text).unwrap();
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let health = loopback(&runtime);
        let health_url = format!("http://{}/health", health.local_addr().unwrap());
        runtime.spawn(answer_forever(health, HEALTH_BODY));

        let mut config: toml::Table = toml::from_str(&spec.config)
            .unwrap_or_else(|err| panic!("the set-up's configuration: {err}"));
        let mut original = Original::default();
        move_dns(&mut config, &mut original);
        move_geo(&mut config, spec.base.as_deref(), dir.path());
        let token = move_admin(&mut config, &mut original, dir.path());
        point_monitors(&mut config, &health_url);
        move_balancers(&mut config, &mut original, &runtime);
        let path = dir.path().join("meridian.toml");
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        std::fs::write(
            dir.path().join("meridian.port0.toml"),
            toml::to_string(&second_server(&config)).unwrap(),
        )
        .unwrap();

        let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = log_lines(&mut child);
        let mut env = Env {
            dir,
            runtime,
            child,
            ports: BTreeMap::new(),
            dns_port: 0,
            token,
            drill: None,
        };
        let bound = wait_for_listeners(&lines, &original);
        env.bind(&original, &bound, &mut config);
        if let Some(port) = original.admin {
            env.wait_ready(env.ports[&port]);
        }
        env
    }

    /// Maps the set-up's ports to the ones `bound`, and rewrites the configuration the
    /// commands read with them.
    fn bind(&mut self, original: &Original, bound: &Bound, config: &mut toml::Table) {
        self.dns_port = bound.dns.port();
        for port in &original.dns {
            self.ports.insert(*port, bound.dns.port());
        }
        let dns = table_mut(config, "dns").expect("[dns]");
        dns.insert("listen".into(), vec![bound.dns.to_string()].into());
        if let (Some(port), Some(addr)) = (original.admin, bound.admin) {
            self.ports.insert(port, addr.port());
            let admin = table_mut(config, "admin").expect("[admin]");
            admin.insert("listen".into(), addr.to_string().into());
        }
        for (name, port) in &original.balancers {
            let addr = bound.balancers[name];
            self.ports.insert(*port, addr.port());
            let balancers = table_mut(config, "balancers").expect("[balancers]");
            let balancer = table_mut(balancers, name).expect("the balancer");
            balancer.insert("listen".into(), addr.to_string().into());
        }
        std::fs::write(self.config(), toml::to_string(config).unwrap()).unwrap();
    }

    /// Polls `/readyz` until every monitor has been probed.
    fn wait_ready(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://127.0.0.1:{port}/readyz");
        loop {
            let headers = self
                .token
                .iter()
                .map(|token| format!("Authorization: Bearer {token}"))
                .collect::<Vec<_>>();
            match self.runtime.block_on(http_get(&url, &headers)) {
                Ok((200, _)) => return,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                other => panic!("the set-up never became ready: {other:?}"),
            }
        }
    }

    /// The configuration the commands use.
    fn config(&self) -> PathBuf {
        self.dir.path().join("meridian.toml")
    }

    /// The local file standing for `path` in a command: the set-up's token, or a file of the
    /// same name in the set-up's directory.
    fn file(&self, path: &str) -> PathBuf {
        let name = Path::new(path)
            .file_name()
            .unwrap_or_else(|| panic!("{path:?} names no file"));
        self.dir.path().join(name)
    }

    /// `url` with its host and port replaced by the test server's (`http://HOST[:PORT]/...`).
    fn url(&self, url: &str) -> Result<String, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not a URL"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let port = match authority.rsplit_once(':') {
            Some((_, port)) if !port.ends_with(']') => port
                .parse::<u16>()
                .map_err(|_| format!("{url:?}: bad port"))?,
            _ if scheme == "https" => 443,
            _ => 80,
        };
        let mapped = self.ports.get(&port).ok_or_else(|| {
            format!("{url:?}: port {port} is not one the documented set-up listens on")
        })?;
        Ok(format!("http://127.0.0.1:{mapped}{path}"))
    }

    /// Replaces every `$(cat FILE)` in `word` by the file's contents, trimmed.
    fn substitute(&self, word: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = word;
        while let Some(at) = rest.find("$(cat ") {
            out.push_str(&rest[..at]);
            let (file, after) = rest[at + "$(cat ".len()..]
                .split_once(')')
                .ok_or("an unclosed $(cat")?;
            let local = self.file(file);
            let text = std::fs::read_to_string(&local)
                .map_err(|err| format!("$(cat {file}): {}: {err}", local.display()))?;
            out.push_str(text.trim());
            rest = after;
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The ports a set-up's configuration names.
#[derive(Debug, Default)]
struct Original {
    /// `dns.listen`.
    dns: Vec<u16>,
    /// `admin.listen`.
    admin: Option<u16>,
    /// `balancers.NAME.listen`.
    balancers: BTreeMap<String, u16>,
}

/// What the server bound.
struct Bound {
    /// DNS (UDP and TCP).
    dns: SocketAddr,
    /// The admin API.
    admin: Option<SocketAddr>,
    /// Each pool.
    balancers: BTreeMap<String, SocketAddr>,
}

/// The log lines of `child`'s stderr, as they come.
fn log_lines(child: &mut Child) -> Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (sender, lines) = channel();
    std::thread::spawn(move || {
        // Read to the end even when nobody listens any more: a server whose stderr is closed
        // fails to log.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    lines
}

/// Reads the addresses the server logs as it binds them, until it has logged every one of
/// `original`.
fn wait_for_listeners(lines: &Receiver<String>, original: &Original) -> Bound {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    let mut bound = Bound {
        dns: SocketAddr::from(([0, 0, 0, 0], 0)),
        admin: None,
        balancers: BTreeMap::new(),
    };
    loop {
        let done = bound.dns.port() != 0
            && bound.admin.is_some() == original.admin.is_some()
            && bound.balancers.len() == original.balancers.len();
        if done {
            return bound;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(wait).unwrap_or_else(|err| {
            panic!(
                "the documented set-up did not start ({err}); its log:\n{}",
                log.join("\n")
            )
        });
        if let Some(rest) = line.split(" udp=[").nth(1) {
            bound.dns = rest.split([']', ',']).next().unwrap().parse().unwrap();
        } else if line.contains("admin API listening") {
            bound.admin = field(&line, "addr").map(|addr| addr.parse().unwrap());
        } else if line.contains("balancer listening")
            && let (Some(name), Some(addr)) = (field(&line, "balancer"), field(&line, "listen"))
        {
            bound
                .balancers
                .insert(name.to_owned(), addr.parse().unwrap());
        }
        log.push(line);
    }
}

/// Builds a City database from the tests' locations into `dir` (once) and returns its path.
fn built_database(dir: &Path) -> PathBuf {
    let path = dir.join("GeoLite2-City.mmdb");
    if !path.exists() {
        meridian::geo::build::build(&root().join("tests/data/geo-locations.csv"), &path, None)
            .expect("the test database builds");
    }
    path
}

/// A GET of `url` with `headers` (`Name: value`): the status and the body.
async fn http_get(url: &str, headers: &[String]) -> Result<(u16, String), String> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let mut request = http::Request::get(url);
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("header {header:?} has no `:`"))?;
        request = request.header(name.trim(), value.trim());
    }
    let request = request
        .body(http_body_util::Empty::new())
        .map_err(|err| format!("{url}: {err}"))?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| format!("{url}: no answer in 10 s"))?
        .map_err(|err| format!("{url}: {err}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| format!("{url}: {err}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

// ------------------------------------------------------------------------------------------
// Running commands.

/// What became of a command.
enum Outcome {
    /// It ran; its standard output, and whether the output is the documented tool's (and so
    /// comparable with what the document shows).
    Ran {
        /// Standard output.
        stdout: String,
        /// Whether to compare it.
        compare: bool,
    },
    /// It was checked without running it as written (why).
    Checked(String),
    /// A tool is missing (the notice).
    Skipped(String),
}

/// Runs `program` with `args` in `dir`, with a time limit.
fn run_program(program: &Path, args: &[String], dir: &Path) -> Result<Output, String> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("USER", USER)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run {}: {err}", program.display()))?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        if child.try_wait().map_err(|err| err.to_string())?.is_some() {
            return child.wait_with_output().map_err(|err| err.to_string());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {COMMAND_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The output of a finished program, or an error with its exit status and both streams.
fn succeeded(output: Output) -> Result<String, String> {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    Err(format!(
        "exited with {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// The `meridian` binary under test.
fn meridian_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_meridian"))
}

/// Whether `tool` runs (`-v` for dig, `--version` for the others).
fn tool_runs(tool: &str) -> bool {
    let flag = if tool == "dig" { "-v" } else { "--version" };
    Command::new(tool)
        .arg(flag)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Runs one documented command against `env`.
fn run(env: &mut Env, words: &[String]) -> Result<Outcome, String> {
    let (program, args) = words.split_first().ok_or("an empty command")?;
    match program.as_str() {
        "meridian" | "target/release/meridian" | "./target/release/meridian" => {
            run_meridian(env, args)
        }
        "cargo" => run_cargo(env, args),
        "dig" | "kdig" => run_dig(env, program, args),
        "curl" => run_curl(env, args),
        other => Err(format!(
            "no runner for `{other}`: the documents may show meridian, cargo, dig, kdig and curl \
             commands (see tests/it/docs.rs)"
        )),
    }
}

/// `meridian ...`.
fn run_meridian(env: &mut Env, args: &[String]) -> Result<Outcome, String> {
    let subcommand = args.first().map(String::as_str).unwrap_or_default();
    match subcommand {
        "demo" => {
            let mut parse = args.to_vec();
            parse.push("--help".into());
            succeeded(run_program(&meridian_binary(), &parse, env.dir.path())?)?;
            let demo_tests = read("tests/it/demo.rs");
            if !demo_tests.contains("#[test]") && !demo_tests.contains("#[tokio::test") {
                return Err("tests/it/demo.rs has no test that runs the demo".into());
            }
            return Ok(Outcome::Checked(
                "it parses; tests/it/demo.rs runs the demo".into(),
            ));
        }
        "serve" => return serve(env, args),
        _ => {}
    }
    let mut rewritten = Vec::with_capacity(args.len());
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--config" | "-c" => {
                iter.next().ok_or("--config without a file")?;
                rewritten.push("--config".into());
                rewritten.push(env.config().display().to_string());
            }
            "--admin" => {
                let url = iter.next().ok_or("--admin without a URL")?;
                rewritten.push("--admin".into());
                rewritten.push(env.url(url)?);
            }
            "--token-file" => {
                let file = iter.next().ok_or("--token-file without a file")?;
                rewritten.push("--token-file".into());
                rewritten.push(env.file(file).display().to_string());
            }
            "--from" if subcommand == "geo" => {
                let input = iter.next().ok_or("--from without a file")?;
                let in_repo = root().join(input);
                let local = if in_repo.exists() {
                    in_repo
                } else {
                    env.file(input)
                };
                rewritten.push("--from".into());
                rewritten.push(local.display().to_string());
            }
            "--out" if subcommand == "geo" => {
                let output = iter.next().ok_or("--out without a file")?;
                rewritten.push("--out".into());
                rewritten.push(env.file(output).display().to_string());
            }
            _ => rewritten.push(env.substitute(arg)?),
        }
    }
    let drill_by_id = subcommand == "drill"
        && matches!(args.get(1).map(String::as_str), Some("report" | "abort"));
    if drill_by_id && let Some(id) = &env.drill {
        // The id the document shows is the one its `drill start` printed.
        rewritten[2] = id.clone();
    }
    let stdout = succeeded(run_program(&meridian_binary(), &rewritten, env.dir.path())?)?;
    if subcommand == "drill" && args.get(1).map(String::as_str) == Some("start") {
        env.drill = stdout
            .strip_prefix("drill ")
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned);
    }
    Ok(Outcome::Ran {
        stdout,
        compare: true,
    })
}

/// `meridian serve`: started on the set-up (on port 0) and stopped with SIGTERM.
fn serve(env: &Env, args: &[String]) -> Result<Outcome, String> {
    let mut rewritten = vec!["serve".to_owned()];
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--config" | "-c" => {
                iter.next().ok_or("--config without a file")?;
                rewritten.push("--config".into());
                rewritten.push(
                    env.dir
                        .path()
                        .join("meridian.port0.toml")
                        .display()
                        .to_string(),
                );
            }
            other => return Err(format!("serve: no rewrite for {other:?}")),
        }
    }
    if rewritten.len() == 1 {
        // Without --config, serve reads ./meridian.toml, whose ports are taken.
        rewritten.push("--config".into());
        rewritten.push("meridian.port0.toml".into());
    }
    let mut child = Command::new(meridian_binary())
        .args(&rewritten)
        .current_dir(env.dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| err.to_string())?;
    let lines = log_lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    let serving = loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(" serving ") => break Some(line),
            Ok(line) => log.push(line),
            Err(_) => break None,
        }
    };
    // It answers: any reply to a query (REFUSED for a name it does not serve) will do.
    let answered = serving
        .as_deref()
        .and_then(|line| line.split(" udp=[").nth(1))
        .and_then(|rest| rest.split([']', ',']).next())
        .and_then(|addr| addr.parse::<SocketAddr>().ok())
        .and_then(|addr| {
            let query = Query::new("example.com", qtype::SOA).build();
            env.runtime
                .block_on(udp_exchange(addr, &query, Duration::from_secs(5)))
        })
        .is_some();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let stop = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|err| err.to_string())? {
            break Some(status);
        }
        if Instant::now() > stop {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    match (answered, status) {
        (true, Some(status)) if status.success() => Ok(Outcome::Checked(
            "started on the set-up, answered, and stopped cleanly on SIGTERM".into(),
        )),
        _ => Err(format!(
            "serve did not start, answer and stop cleanly (answered: {answered}, exit: \
             {status:?}); its log:\n{}",
            log.join("\n")
        )),
    }
}

/// The test command `.ci/run` runs.
fn ci_test_command() -> String {
    let script = read(".ci/run");
    let mut lines = script.lines().skip_while(|line| !line.contains("== tests"));
    lines
        .find(|line| line.trim_start().starts_with("cargo test"))
        .map(|line| line.trim().to_owned())
        .expect(".ci/run runs `cargo test` after its `== tests` line")
}

/// `cargo ...`.
fn run_cargo(env: &mut Env, args: &[String]) -> Result<Outcome, String> {
    match args.first().map(String::as_str) {
        Some("test") => {
            let shown = format!("cargo {}", args.join(" "));
            let ci = ci_test_command();
            if shown != ci {
                return Err(format!(
                    "`{shown}` is not the test command CI runs (`{ci}` in .ci/run)"
                ));
            }
            Ok(Outcome::Checked("it is the test command of .ci/run".into()))
        }
        Some("run") => {
            let rest = args
                .iter()
                .position(|arg| arg == "--")
                .ok_or("cargo run without `--`")?;
            let options = &args[1..rest];
            if options.iter().any(|option| option != "--release") {
                return Err(format!("cargo run: no runner for {options:?}"));
            }
            run_meridian(env, &args[rest + 1..])
        }
        Some("bench") => {
            let [_, flag, name] = args else {
                return Err("write `cargo bench --bench NAME`".into());
            };
            let manifest = read("Cargo.toml");
            if flag != "--bench" || !manifest.contains(&format!("name = \"{name}\"")) {
                return Err(format!("Cargo.toml has no bench {name:?}"));
            }
            Ok(Outcome::Checked(format!("bench {name} exists")))
        }
        _ => Err(format!("cargo {}: no runner", args.join(" "))),
    }
}

/// `dig` or `kdig`, at the test server.
fn run_dig(env: &Env, program: &str, args: &[String]) -> Result<Outcome, String> {
    let mut rewritten = Vec::new();
    let mut port = 53;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg.starts_with('@') {
            rewritten.push("@127.0.0.1".to_owned());
        } else if arg == "-p" {
            let value = iter.next().ok_or("-p without a port")?;
            port = value
                .parse()
                .map_err(|_| format!("-p {value}: not a port"))?;
        } else {
            rewritten.push(arg.clone());
        }
    }
    if !args.iter().any(|arg| arg.starts_with('@')) {
        return Err(format!(
            "{program} without @SERVER asks the system resolver: name the server"
        ));
    }
    let mapped = env
        .ports
        .get(&port)
        .ok_or_else(|| format!("port {port} is not one the documented set-up serves DNS on"))?;
    if *mapped != env.dns_port {
        return Err(format!("port {port} is not a DNS port of the set-up"));
    }
    rewritten.extend(["-p".to_owned(), mapped.to_string()]);
    let (tool, compare) = if tool_runs(program) {
        (program, true)
    } else if program == "dig" && tool_runs("kdig") {
        eprintln!("dig not installed (apt-get install bind9-dnsutils): running kdig instead");
        ("kdig", false)
    } else if required() {
        return Err(format!(
            "{program} is required (MERIDIAN_REQUIRE_TOOLS=1) but not installed: apt-get \
             install bind9-dnsutils knot-dnsutils"
        ));
    } else {
        return Ok(Outcome::Skipped(format!(
            "{program} not installed (apt-get install bind9-dnsutils knot-dnsutils)"
        )));
    };
    let stdout = succeeded(run_program(Path::new(tool), &rewritten, env.dir.path())?)?;
    Ok(Outcome::Ran { stdout, compare })
}

/// `curl [-s] [-S] [-f] [-H HEADER] URL`: a GET made by the test.
fn run_curl(env: &Env, args: &[String]) -> Result<Outcome, String> {
    let mut headers = Vec::new();
    let mut url = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "-H" {
            let header = iter.next().ok_or("-H without a header")?;
            headers.push(env.substitute(header)?);
        } else if arg.starts_with("-")
            && arg.len() > 1
            && arg[1..].chars().all(|c| "sSf".contains(c))
        {
        } else if !arg.starts_with('-') && url.is_none() {
            url = Some(env.url(arg)?);
        } else {
            return Err(format!(
                "curl {arg:?}: the runner knows -s, -S, -f, -H and one URL"
            ));
        }
    }
    let url = url.ok_or("curl without a URL")?;
    let (status, body) = env.runtime.block_on(http_get(&url, &headers))?;
    if !(200..300).contains(&status) {
        return Err(format!("GET {url}: status {status}: {body}"));
    }
    Ok(Outcome::Ran {
        stdout: body,
        compare: true,
    })
}

/// Runs every command of `document` against a fresh set-up, in order; panics with every
/// failure, each naming its line.
fn run_document(document: &str) {
    let setup = DOCUMENTS
        .iter()
        .find(|(name, _)| *name == document)
        .map(|(_, setup)| *setup)
        .unwrap_or_else(|| panic!("{document} is not in DOCUMENTS"));
    let text = read(document);
    let shown = commands(document, &text).unwrap_or_else(|err| panic!("{err}"));
    if shown.is_empty() {
        return;
    }
    let mut env = Env::start(setup);
    let mut failures = Vec::new();
    for command in &shown {
        let place = format!("{document}:{}: `{}`", command.line, command.command);
        let outcome = words(&command.command).and_then(|words| run(&mut env, &words));
        match outcome {
            Ok(Outcome::Ran { stdout, compare }) => {
                if compare && let Err(err) = check_output(&command.output, &stdout) {
                    failures.push(format!("{place}: {err}\nits output:\n{stdout}"));
                } else {
                    eprintln!("ran {place}");
                }
            }
            Ok(Outcome::Checked(why)) if shows_output(&command.output) => failures.push(format!(
                "{place}: {why}, but it is not run as written, so it cannot show output: \
                 describe what it prints in the text instead"
            )),
            Ok(Outcome::Checked(why)) => eprintln!("checked {place}: {why}"),
            Ok(Outcome::Skipped(why)) => eprintln!("skipped {place}: {why}"),
            Err(err) => failures.push(format!("{place}: {err}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} documented commands failed:\n\n{}",
        failures.len(),
        shown.len(),
        failures.join("\n\n")
    );
}

// ------------------------------------------------------------------------------------------
// Tests.

#[test]
fn readme_commands_run() {
    run_document("README.md");
}

#[test]
fn operator_guide_commands_run() {
    run_document("docs/operator-guide.md");
}

#[test]
fn configuration_reference_commands_run() {
    run_document("docs/configuration.md");
}

#[test]
fn every_document_is_run() {
    let mut found = vec!["README.md".to_owned()];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            found.push(format!("docs/{name}"));
        }
    }
    for document in found {
        assert!(
            DOCUMENTS.iter().any(|(name, _)| *name == document),
            "{document} is not in DOCUMENTS of tests/it/docs.rs, so its commands are not run: \
             add it, with the set-up its commands run against, and a test that runs it"
        );
    }
}

/// Lays `snippet` over `base`: `[dns]`, `[geo]`, `[health]` and `[admin]` keys replace the
/// base's keys one by one, a region's keys replace that region's, and a map, service or
/// balancer replaces the base's of that name whole.
fn lay_over(base: &mut toml::Table, snippet: toml::Table) {
    for (section, value) in snippet {
        let toml::Value::Table(entries) = value else {
            base.insert(section, value);
            continue;
        };
        let target = base
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("a section is a table");
        for (key, value) in entries {
            match (section.as_str(), value) {
                ("regions", toml::Value::Table(region)) => {
                    let existing = target
                        .entry(key)
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                        .as_table_mut()
                        .expect("a region is a table");
                    existing.extend(region);
                }
                (_, value) => {
                    target.insert(key, value);
                }
            }
        }
    }
}

#[test]
fn every_toml_block_is_a_valid_configuration() {
    let mut checked = 0;
    for (document, setup) in DOCUMENTS {
        let text = read(document);
        let base_text = Spec::of(setup).config;
        for block in blocks(&text)
            .into_iter()
            .filter(|block| block.info == "toml")
        {
            let snippet_text = block.lines.join("\n") + "\n";
            if snippet_text == base_text {
                continue; // The set-up itself: served by the commands' test.
            }
            let place = format!("{document}:{}", block.line);
            let snippet: toml::Table = toml::from_str(&snippet_text)
                .unwrap_or_else(|err| panic!("{place}: not TOML: {err}"));
            if snippet.contains_key("dns") && snippet.contains_key("regions") {
                // A whole configuration (the reference's complete example is loaded by
                // src/config/reference.rs, with the files it names).
                if document == "docs/configuration.md" {
                    continue;
                }
            }
            let mut config: toml::Table = toml::from_str(&base_text).unwrap();
            lay_over(&mut config, snippet);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("meridian.toml");
            let merged = toml::to_string(&config).unwrap();
            if let Err(err) = meridian::config::Config::parse(&merged, &path) {
                panic!(
                    "{place}: the block, laid over the set-up of {document}, is not a valid \
                     configuration: {err}\nthe merged configuration:\n{merged}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no ```toml block was checked");
}

#[test]
fn every_zone_block_loads() {
    let mut checked = 0;
    for (document, _) in DOCUMENTS {
        let text = read(document);
        for block in blocks(&text)
            .into_iter()
            .filter(|block| block.info == "zone")
        {
            let place = format!("{document}:{}", block.line);
            let zone = block.lines.join("\n") + "\n";
            let origin = zone_origin(&zone)
                .unwrap_or_else(|| panic!("{place}: a ```zone block without $ORIGIN"));
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("zones")).unwrap();
            std::fs::write(dir.path().join(format!("zones/{origin}.zone")), &zone).unwrap();
            let config = dir.path().join("meridian.toml");
            std::fs::write(
                &config,
                "[dns]\nlisten = [\"127.0.0.1:0\"]\nzones_dir = \"zones\"\n",
            )
            .unwrap();
            let output = Command::new(meridian_binary())
                .arg("check")
                .arg("--config")
                .arg(&config)
                .output()
                .unwrap();
            assert!(
                output.status.success() && output.stderr.is_empty(),
                "{place}: the zone does not load cleanly:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no ```zone block was checked");
}

#[test]
fn commands_are_read_from_console_blocks_only() {
    let text = "Intro.\n\n```console\n$ meridian status \\\n    --json\n{\n$ dig @ns1 a.test +short\n\
                192.0.2.1\n```\n\n- item\n\n  ```console\n  $ meridian version\n  meridian 0.1.0\n  ```\n";
    let found = commands("doc.md", text).unwrap();
    assert_eq!(
        found,
        vec![
            Shown {
                line: 4,
                command: "meridian status --json".into(),
                output: vec!["{".into()],
            },
            Shown {
                line: 7,
                command: "dig @ns1 a.test +short".into(),
                output: vec!["192.0.2.1".into()],
            },
            Shown {
                line: 14,
                command: "meridian version".into(),
                output: vec!["meridian 0.1.0".into()],
            },
        ]
    );
    let err = commands("doc.md", "```sh\n$ rm -rf /\n```\n").unwrap_err();
    assert!(
        err.starts_with("doc.md:2: a `$ ` command in a ```sh block"),
        "{err}"
    );
    let err = commands("doc.md", "```console\nno command\n```\n").unwrap_err();
    assert!(err.contains("must start with a `$ ` command"), "{err}");
}

#[test]
fn words_split_as_a_shell_does_and_refuse_what_is_not_run() {
    assert_eq!(
        words(r#"meridian drain eu-west --reason "CHG-1 kernel" --for 2h"#).unwrap(),
        [
            "meridian",
            "drain",
            "eu-west",
            "--reason",
            "CHG-1 kernel",
            "--for",
            "2h"
        ]
    );
    assert_eq!(
        words(r#"curl -H "Authorization: Bearer $(cat /etc/meridian/admin.token)" 'http://a/b c'"#)
            .unwrap(),
        [
            "curl",
            "-H",
            "Authorization: Bearer $(cat /etc/meridian/admin.token)",
            "http://a/b c"
        ]
    );
    assert_eq!(words(r"a\ b").unwrap(), ["a b"]);
    for refused in [
        "meridian status | grep eu",
        "meridian status > out",
        "a; b",
        "a && b",
        "echo $HOME",
        "ls *.zone",
        "echo \"open",
    ] {
        assert!(words(refused).is_err(), "{refused}");
    }
}

#[test]
fn shown_output_is_matched_in_order_with_elisions() {
    let actual = "revision 3, ready\n\nREGION   STATE\neu-west  draining   up\nus-east  up  up\n";
    let shown = |lines: &[&str]| {
        lines
            .iter()
            .map(|line| line.to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        check_output(
            &shown(&["revision 3, ready", "…", "eu-west draining up"]),
            actual
        )
        .is_ok()
    );
    assert!(check_output(&shown(&["…draining…", "us-east…"]), actual).is_ok());
    assert!(check_output(&shown(&["us-east up up", "eu-west draining up"]), actual).is_err());
    assert!(check_output(&shown(&["eu-west down"]), actual).is_err());
    assert!(
        check_output(&shown(&["revision 3"]), actual).is_err(),
        "whole lines"
    );
}
