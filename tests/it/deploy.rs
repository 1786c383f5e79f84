//! The deployment files under `deploy/`, checked against the server they deploy.
//!
//! - Every JSON and YAML file parses (YAML through python3's `yaml` module, Debian package
//!   `python3-yaml`).
//! - Every `meridian_*` series the alert rules, their unit tests and the Grafana dashboard name is
//!   one the admin API's `/metrics` renders, with label names and fixed label values it really
//!   uses; so a renamed metric cannot leave a silent alert behind.
//! - The shipped configs pass `meridian check`, and the unit, the image and the Kubernetes
//!   manifests agree with them on paths, ports, users and probes.
//! - `systemd-analyze verify` accepts the unit (Debian package `systemd`); `promtool` (Debian
//!   package `prometheus`) accepts the rules, passes their unit tests and parses every dashboard
//!   query.
//! - The Kubernetes pod binds port 53 through its unprivileged port range (no_new_privs keeps
//!   the file capability from working); every stop timeout outlasts the longest stop with a
//!   default balancer; the Grafana dashboard asks for its data source on import, and its answer
//!   shares are of a service's whole traffic.
//! - The real binary speaks the service manager protocol: READY=1 (after which DNS answers at
//!   once, over UDP and TCP), RELOADING=1 with MONOTONIC_USEC, READY=1 again (with a failed
//!   reload's reason in STATUS=), STOPPING=1, and never MAINPID=; a taken DNS port fails the
//!   start naming the address, before READY=1; a reload warns of `[admin]` changes it cannot
//!   apply; and the image's probe script reads `/healthz` and `/readyz` from a real server.
//!
//! Tests that need a tool print a notice and pass without it, unless `MERIDIAN_REQUIRE_TOOLS=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use meridian::admin::api::{self, ApiState, Control};
use serde_json::Value;
use tower::ServiceExt;

use crate::geo::GEO_TEST;
use crate::harness::{EXAMPLE_COM, Query, Reply, TestServer, qtype, rcode};
use crate::interop::required;

/// The repository's root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `deploy/PATH`.
fn deploy(path: &str) -> PathBuf {
    root().join("deploy").join(path)
}

/// The text of `deploy/PATH`.
fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|err| panic!("deploy/{path}: {err}"))
}

/// Every file under `deploy/` whose name ends with one of `suffixes`, sorted.
fn files_ending(suffixes: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root().join("deploy")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{dir:?}: {err}")) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if suffixes
                .iter()
                .any(|suffix| path.to_string_lossy().ends_with(suffix))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The binary under test.
fn meridian() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
}

/// Whether `program` runs with `args` and exits 0. If not: panics when tools are required,
/// otherwise prints a notice naming Debian `package` and returns false.
fn have(program: &str, args: &[&str], package: &str) -> bool {
    let runs = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !runs {
        assert!(
            !required(),
            "{program} is required (MERIDIAN_REQUIRE_TOOLS=1) but cannot run: apt-get install {package}"
        );
        eprintln!("skipping: {program} cannot run (apt-get install {package})");
    }
    runs
}

/// A python3 that has the `yaml` module, or `None` (after the notice, or the panic when tools
/// are required).
fn python_with_yaml() -> Option<&'static str> {
    let found = ["python3", "/usr/bin/python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import yaml"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    if found.is_none() {
        assert!(
            !required(),
            "python3 with its yaml module is required (MERIDIAN_REQUIRE_TOOLS=1): apt-get install python3-yaml"
        );
        eprintln!("skipping: no python3 with the yaml module (apt-get install python3-yaml)");
    }
    found
}

/// The YAML documents of `path`, as JSON values, read by `python`'s safe loader.
fn yaml_documents(python: &str, path: &Path) -> Vec<Value> {
    let output = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml\n\
             with open(sys.argv[1]) as file:\n\
             \x20   json.dump(list(yaml.safe_load_all(file)), sys.stdout, default=str)",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}: not valid YAML: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The documents of YAML file `deploy/PATH`, without empty ones.
fn manifests(python: &str, path: &str) -> Vec<Value> {
    yaml_documents(python, &deploy(path))
        .into_iter()
        .filter(|document| !document.is_null())
        .collect()
}

/// `deploy/PATH` parsed as a TOML table.
fn toml_file(path: &str) -> toml::Table {
    read(path)
        .parse()
        .unwrap_or_else(|err| panic!("deploy/{path}: {err}"))
}

/// The string at `pointer` (a JSON pointer) in `value`; panics naming what is missing.
fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}

#[test]
fn every_json_and_yaml_file_parses() {
    let json = files_ending(&[".json"]);
    assert!(!json.is_empty(), "the Grafana dashboard is JSON");
    for path in &json {
        let text = std::fs::read_to_string(path).unwrap();
        if let Err(err) = serde_json::from_str::<Value>(&text) {
            panic!("{}:{}: {err}", path.display(), err.line());
        }
    }
    let yaml = files_ending(&[".yml", ".yaml"]);
    assert!(yaml.len() >= 6, "rules, rule tests and manifests: {yaml:?}");
    let Some(python) = python_with_yaml() else {
        return;
    };
    for path in &yaml {
        let documents = yaml_documents(python, path);
        assert!(
            documents.iter().any(|document| document.is_object()),
            "{}: no YAML mapping in it",
            path.display()
        );
    }
}

/// The series the admin API's `/metrics` serves: each series name with every label name and
/// value it carries.
type Served = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Renders `/metrics` of a server with two regions (one monitored) and a GSLB service, through
/// the real admin router.
async fn served_series() -> Served {
    let sections = r#"
[regions.eu-west]
[[regions.eu-west.monitor]]
url = "tcp://127.0.0.1:9"
interval = "1s"
timeout = "200ms"
[regions.us-east]

[services."www.geo.test"]
policy = "weighted"
weights = { eu-west = 1, us-east = 1 }
answers.eu-west = ["192.0.2.20"]
answers.us-east = ["192.0.2.10"]
"#;
    let server = Arc::new(
        TestServer::custom(
            &[
                ("geo.test".to_string(), GEO_TEST.to_string()),
                ("example.com".to_string(), EXAMPLE_COM.to_string()),
            ],
            "",
            sections,
            &[],
        )
        .await,
    );
    let router = api::router(ApiState {
        control: Arc::clone(&server) as Arc<dyn Control>,
        token: None,
    });
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    exposition_series(&String::from_utf8_lossy(&body))
}

/// The series of a Prometheus text exposition: the names of its samples (histograms by their
/// `_bucket`, `_sum` and `_count` series), and every family from `# TYPE`, even one without a
/// sample yet.
fn exposition_series(text: &str) -> Served {
    let mut served = Served::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                panic!("malformed TYPE line: {line}");
            };
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    served.entry(format!("{name}{suffix}")).or_default();
                }
            } else {
                served.entry(name.to_string()).or_default();
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = served.entry(line[..name_end].to_string()).or_default();
            if line[name_end..].starts_with('{') {
                let selector = &line[name_end + 1..line.rfind('}').expect("closing brace")];
                for (label, _, value) in matchers(selector) {
                    labels.entry(label).or_default().insert(value);
                }
            }
        }
    }
    served
}

/// The matchers of a PromQL selector body (`a="x",b=~"y|z"`): label, operator and value.
fn matchers(selector: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut rest = selector.trim();
    while !rest.is_empty() {
        let op_start = rest
            .find(['=', '!'])
            .unwrap_or_else(|| panic!("no operator in {{{selector}}}"));
        let label = rest[..op_start].trim().to_string();
        let quote = rest[op_start..]
            .find('"')
            .unwrap_or_else(|| panic!("no value in {{{selector}}}"))
            + op_start;
        let operator = rest[op_start..quote].trim().to_string();
        let mut value = String::new();
        let mut chars = rest[quote + 1..].char_indices();
        let mut end = None;
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => {
                    end = Some(quote + 1 + index + 1);
                    break;
                }
                _ => value.push(c),
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated value in {{{selector}}}"));
        found.push((label, operator, value));
        rest = rest[end..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    found
}

/// Every `meridian_*` series named in `text`, with the selector body that follows it (if any).
fn referenced_series(text: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut index = 0;
    while let Some(offset) = text[index..].find("meridian_") {
        let start = index + offset;
        index = start + 1;
        if start > 0 && word(bytes[start - 1]) {
            continue;
        }
        let end = start
            + text[start..]
                .bytes()
                .take_while(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                .count();
        let selector = text[end..].strip_prefix('{').map(|rest| {
            let close = rest.find('}').expect("selector closes");
            rest[..close].to_string()
        });
        found.push((text[start..end].to_string(), selector));
        index = end;
    }
    found
}

/// Labels whose every value is fixed by the server, so a value outside them never matches.
const FIXED_LABELS: [&str; 5] = ["proto", "type", "rcode", "reason", "state"];

/// Labels Prometheus adds to every series it scrapes.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// What is wrong with the references in `text` (of `file`), given the `served` series.
fn reference_errors(file: &str, text: &str, served: &Served) -> Vec<String> {
    let mut errors = Vec::new();
    for (name, selector) in referenced_series(text) {
        let Some(labels) = served.get(&name) else {
            errors.push(format!("{file}: {name} is not a series /metrics serves"));
            continue;
        };
        let Some(selector) = selector else { continue };
        // Grafana's variables are not label values.
        for (label, operator, value) in matchers(&selector) {
            if TARGET_LABELS.contains(&label.as_str()) {
                continue;
            }
            let Some(values) = labels.get(&label) else {
                errors.push(format!("{file}: {name} has no label {label}"));
                continue;
            };
            if !FIXED_LABELS.contains(&label.as_str()) || value.contains('$') {
                continue;
            }
            let alternatives: Vec<&str> = match operator.as_str() {
                "=" | "!=" => vec![value.as_str()],
                _ if value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '|') =>
                {
                    value.split('|').collect()
                }
                _ => continue,
            };
            for alternative in alternatives {
                if !values.contains(alternative) {
                    errors.push(format!(
                        "{file}: {name}{{{label}{operator}\"{value}\"}}: {label} is never \
                         {alternative:?} (it is one of {values:?})"
                    ));
                }
            }
        }
    }
    errors
}

/// Every string in `value`, collected into `found`.
fn json_strings(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) => found.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| json_strings(item, found)),
        Value::Object(map) => map.values().for_each(|item| json_strings(item, found)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_dashboard_name_only_series_the_server_serves() {
    let served = served_series().await;
    assert!(
        served.contains_key("meridian_dns_request_duration_seconds_bucket")
            && served.contains_key("meridian_region_state"),
        "the rendering was read: {:?}",
        served.keys().collect::<Vec<_>>()
    );
    let mut errors = Vec::new();
    let mut used = BTreeSet::new();
    for file in [
        "prometheus/meridian-alerts.yml",
        "prometheus/meridian-alerts.test.yml",
        "grafana/meridian.json",
    ] {
        let mut text = read(file);
        if file.ends_with(".json") {
            // The queries are JSON strings: read them unescaped.
            let mut strings = Vec::new();
            json_strings(&serde_json::from_str(&text).unwrap(), &mut strings);
            text = strings.join("\n");
        }
        let references = referenced_series(&text);
        assert!(
            references.len() >= 5,
            "{file} names meridian series: {references:?}"
        );
        used.extend(references.into_iter().map(|(name, _)| name));
        errors.extend(reference_errors(file, &text, &served));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let unused: Vec<&String> = served.keys().filter(|name| !used.contains(*name)).collect();
    if !unused.is_empty() {
        eprintln!("notice: no alert or dashboard panel uses {unused:?}");
    }
}

#[test]
fn drifted_names_and_values_are_caught() {
    let served = exposition_series(
        "# TYPE meridian_region_state gauge\n\
         meridian_region_state{region=\"a\",state=\"up\"} 1\n\
         meridian_region_state{region=\"a\",state=\"down\"} 0\n\
         # TYPE meridian_dns_request_duration_seconds histogram\n",
    );
    let check = |text: &str| reference_errors("f", text, &served);
    assert!(check("meridian_region_state{state=\"down\",instance=\"x\"} == 1").is_empty());
    assert!(check("rate(meridian_dns_request_duration_seconds_bucket[5m])").is_empty());
    assert!(check("max(meridian_region_state{region=~\"$region\"})").is_empty());
    assert_eq!(
        check("meridian_region_states == 1"),
        ["f: meridian_region_states is not a series /metrics serves"]
    );
    assert_eq!(
        check("meridian_dns_request_duration_seconds > 1"),
        ["f: meridian_dns_request_duration_seconds is not a series /metrics serves"]
    );
    assert_eq!(
        check("meridian_region_state{zone=\"a\"}"),
        ["f: meridian_region_state has no label zone"]
    );
    let errors = check("meridian_region_state{state=~\"up|drained\"}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("never \"drained\""), "{errors:?}");
}

/// Runs `meridian check` on `config`; panics with its output unless it passes without warnings.
fn check_passes(config: &Path) -> String {
    let output = meridian()
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "{}: {stdout}{stderr}",
        config.display()
    );
    assert!(stdout.contains(": ok: "), "{stdout}");
    stdout
}

/// Copies `config` into a temporary directory with the zone files of `zones`, as an image or a
/// pod lays them out; returns the directory and the copied config.
fn lay_out(config: &str, zones: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    for entry in std::fs::read_dir(deploy(zones)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            dir.path().join("zones").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    let copied = dir.path().join("meridian.toml");
    std::fs::copy(deploy(config), &copied).unwrap();
    (dir, copied)
}

#[test]
fn shipped_configs_pass_check() {
    let stdout = check_passes(&deploy("config/meridian.toml"));
    assert!(stdout.contains("2 services"), "{stdout}");
    // The image bakes deploy/config/zones beside its config; the pods mount their own copy.
    let (_image, config) = lay_out("docker/meridian.toml", "config/zones");
    check_passes(&config);
    let (_pod, config) = lay_out("kubernetes/meridian.toml", "kubernetes/zones");
    check_passes(&config);
    assert_eq!(
        read("docker/meridian.toml"),
        read("kubernetes/meridian.toml"),
        "the image's config and the ConfigMap's are the same file"
    );
    assert_eq!(
        read("config/zones/example.com.zone"),
        read("kubernetes/zones/example.com.zone")
    );
}

/// The `[section] key` string of a config.
fn setting<'a>(config: &'a toml::Table, section: &str, key: &str) -> &'a str {
    config[section][key]
        .as_str()
        .unwrap_or_else(|| panic!("[{section}] {key} is a string"))
}

/// The ports of a config's `[dns] listen` addresses.
fn dns_ports(config: &toml::Table) -> BTreeSet<u16> {
    config["dns"]["listen"]
        .as_array()
        .expect("dns.listen")
        .iter()
        .map(|addr| {
            addr.as_str()
                .and_then(|addr| addr.parse::<SocketAddr>().ok())
                .expect("an ip:port")
                .port()
        })
        .collect()
}

/// The port of a config's `[admin] listen`.
fn admin_port(config: &toml::Table) -> u16 {
    setting(config, "admin", "listen")
        .parse::<SocketAddr>()
        .expect("admin.listen is ip:port")
        .port()
}

/// The value of `Key=` lines of a unit file, in order.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_unit_matches_the_config_and_the_binary() {
    let unit = read("systemd/meridian.service");
    let config = toml_file("config/meridian.toml");
    let serve = unit_values(&unit, "ExecStart");
    assert_eq!(
        serve,
        ["/usr/bin/meridian serve --config /etc/meridian/meridian.toml"]
    );
    assert_eq!(
        unit_values(&unit, "ExecStartPre"),
        ["/usr/bin/meridian check --config /etc/meridian/meridian.toml"]
    );
    assert!(unit_values(&unit, "ExecReload").contains(&"/bin/kill -HUP $MAINPID"));
    assert_eq!(unit_values(&unit, "Type"), ["notify"]);
    assert_eq!(
        unit_values(&unit, "CapabilityBoundingSet"),
        ["CAP_NET_BIND_SERVICE"]
    );
    assert_eq!(
        unit_values(&unit, "AmbientCapabilities"),
        ["CAP_NET_BIND_SERVICE"]
    );
    // The state files live in the StateDirectory, the only place the sandbox lets it write.
    let state = format!("/var/lib/{}/", unit_values(&unit, "StateDirectory")[0]);
    for section in ["health", "admin"] {
        let file = setting(&config, section, "state_file");
        assert!(file.starts_with(&state), "[{section}] state_file {file}");
    }
    let sysusers = read("systemd/meridian.sysusers");
    let user = unit_values(&unit, "User")[0];
    assert!(
        sysusers
            .lines()
            .any(|line| line.starts_with(&format!("u {user} "))),
        "sysusers creates {user}: {sysusers}"
    );

    if !have("systemd-analyze", &["--version"], "systemd") {
        return;
    }
    // verify insists that the binaries exist: point the unit at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("meridian.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/meridian", env!("CARGO_BIN_EXE_meridian")),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    // verify exits 0 on unknown keys and bad values, and only says so: any remark fails.
    let remarks = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && remarks.trim().is_empty(),
        "systemd-analyze verify: {remarks}"
    );
    // The sandbox keeps its strength: exposure at most 2.5 of 10.
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=25"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "systemd-analyze security: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The instructions of a Dockerfile (continuation lines joined), as (instruction, arguments).
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .map(|line| {
            let (instruction, arguments) = line.split_once(' ').unwrap_or((&line, ""));
            (instruction.to_uppercase(), arguments.trim().to_string())
        })
        .collect()
}

/// The default of `NAME=${VAR:-DEFAULT}` in the probe script.
fn probe_default(script: &str, name: &str) -> String {
    let line = script
        .lines()
        .find(|line| line.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("meridian-probe sets {name}"));
    let default = line.split(":-").nth(1).expect("a default");
    default.trim_end_matches('}').to_string()
}

#[test]
fn the_image_matches_its_config() {
    let config = toml_file("docker/meridian.toml");
    let instructions = dockerfile_instructions(&read("docker/Dockerfile"));
    let all = |name: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(instruction, _)| instruction == name)
            .map(|(_, arguments)| arguments.as_str())
            .collect()
    };
    // Ports: DNS over UDP and TCP, and the admin API.
    let exposed: BTreeSet<&str> = all("EXPOSE")
        .iter()
        .flat_map(|ports| ports.split_whitespace())
        .collect();
    let mut expected = BTreeSet::new();
    for port in dns_ports(&config) {
        expected.insert(format!("{port}/udp"));
        expected.insert(format!("{port}/tcp"));
    }
    expected.insert(format!("{}/tcp", admin_port(&config)));
    assert_eq!(
        exposed,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    // The config it runs is the one it copies in, with the zones beside it.
    let command: Vec<String> = serde_json::from_str(all("CMD")[0]).expect("CMD is a JSON array");
    assert_eq!(
        command,
        ["serve", "--config", "/etc/meridian/meridian.toml"]
    );
    let copies = all("COPY");
    assert!(copies.contains(&"deploy/docker/meridian.toml /etc/meridian/meridian.toml"));
    let zones = format!("/etc/meridian/{}/", setting(&config, "dns", "zones_dir"));
    assert!(copies.contains(&format!("deploy/config/zones/ {zones}").as_str()));
    for copy in &copies {
        let source = copy.split_whitespace().next().unwrap();
        if !source.starts_with("--") && source != "." {
            assert!(root().join(source).exists(), "COPY {copy}: no {source}");
        }
    }
    // The volume holds the state files; the user is numeric (for runAsNonRoot).
    let volume: Vec<String> = serde_json::from_str(all("VOLUME")[0]).unwrap();
    for section in ["health", "admin"] {
        let file = Path::new(setting(&config, section, "state_file"));
        assert_eq!(file.parent().unwrap(), Path::new(&volume[0]), "{section}");
    }
    assert_eq!(all("USER"), ["10053:10053"]);
    // The health check probes the configured admin port with the configured token.
    assert!(all("HEALTHCHECK")[0].ends_with(r#"CMD ["meridian-probe", "/healthz"]"#));
    let script = read("docker/meridian-probe");
    assert_eq!(
        probe_default(&script, "port"),
        admin_port(&config).to_string()
    );
    assert_eq!(
        probe_default(&script, "token_file"),
        setting(&config, "admin", "token_file")
    );
}

/// The document of `kind` among `documents`.
fn of_kind<'a>(documents: &'a [Value], kind: &str, name: &str) -> &'a Value {
    documents
        .iter()
        .find(|document| document["kind"] == kind && document["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_kubernetes_manifests_match_the_config_and_the_image() {
    let Some(python) = python_with_yaml() else {
        return;
    };
    let config = toml_file("kubernetes/meridian.toml");
    let kustomization = &manifests(python, "kubernetes/kustomization.yaml")[0];
    let mut documents = Vec::new();
    for resource in kustomization["resources"].as_array().unwrap() {
        documents.extend(manifests(
            python,
            &format!("kubernetes/{}", resource.as_str().unwrap()),
        ));
    }
    let mut generated = BTreeMap::new();
    for generator in kustomization["configMapGenerator"].as_array().unwrap() {
        let files: Vec<String> = generator["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|file| file.as_str().unwrap().to_string())
            .collect();
        for file in &files {
            assert!(deploy(&format!("kubernetes/{file}")).is_file(), "{file}");
        }
        generated.insert(text(generator, "/name").to_string(), files);
    }

    let deployment = of_kind(&documents, "Deployment", "meridian");
    let pod = &deployment["spec"]["template"]["spec"];
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], *labels);
    let container = &pod["containers"][0];

    // Security: non-root, read-only, no privilege escalation, RuntimeDefault seccomp, and
    // no capability but NET_BIND_SERVICE in the bounding set (the binary's file capability
    // must lie within it, or the kernel refuses to run it).
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 10053);
    assert_eq!(
        text(pod, "/securityContext/seccompProfile/type"),
        "RuntimeDefault"
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        security["capabilities"]["add"],
        serde_json::json!(["NET_BIND_SERVICE"])
    );
    // Port 53: no_new_privs (allowPrivilegeEscalation: false) keeps the file capability from
    // taking effect and a non-root container has no ambient capabilities, so only the pod's
    // unprivileged port range lets it bind. The sysctl's value is a string, and it needs the
    // pod's own network namespace.
    let sysctls = pod["securityContext"]["sysctls"]
        .as_array()
        .expect("the pod sets sysctls");
    let start = sysctls
        .iter()
        .find(|sysctl| sysctl["name"] == "net.ipv4.ip_unprivileged_port_start")
        .expect("the pod sets net.ipv4.ip_unprivileged_port_start");
    let start: u16 = text(start, "/value")
        .parse()
        .expect("the sysctl's value is a port number, as a string");
    assert_ne!(
        pod["hostNetwork"], true,
        "the sysctl is per network namespace"
    );
    assert!(container["resources"]["requests"].is_object());
    assert!(container["resources"]["limits"]["memory"].is_string());

    // Ports: the config's, by name.
    let mut ports = BTreeMap::new();
    for port in container["ports"].as_array().unwrap() {
        ports.insert(
            text(port, "/name").to_string(),
            (
                port["containerPort"].as_u64().unwrap() as u16,
                text(port, "/protocol").to_string(),
            ),
        );
    }
    let dns = dns_ports(&config);
    assert_eq!(dns.len(), 1, "one DNS port");
    let dns = *dns.first().unwrap();
    assert!(
        start <= dns,
        "ip_unprivileged_port_start {start} lets port {dns} bind"
    );
    assert_eq!(ports["dns-udp"], (dns, "UDP".to_string()));
    assert_eq!(ports["dns-tcp"], (dns, "TCP".to_string()));
    assert_eq!(ports["admin"], (admin_port(&config), "TCP".to_string()));

    // Probes: liveness on /healthz, readiness on /readyz through the image's probe script.
    assert_eq!(text(container, "/livenessProbe/httpGet/path"), "/healthz");
    assert_eq!(text(container, "/livenessProbe/httpGet/port"), "admin");
    assert_eq!(
        container["readinessProbe"]["exec"]["command"],
        serde_json::json!(["meridian-probe", "/readyz"])
    );

    // Mounts: the config where --config reads it, the zones beside it, the token where
    // token_file points, the state directory where the state files go.
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arg| arg.as_str().unwrap())
        .collect();
    assert_eq!(args[..2], ["serve", "--config"]);
    let config_path = Path::new(args[2]);
    let mounts: BTreeMap<&str, &Value> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|mount| (text(mount, "/name"), mount))
        .collect();
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|volume| (text(volume, "/name"), volume))
        .collect();
    let mount_of = |name: &str| Path::new(text(mounts[name], "/mountPath"));
    assert_eq!(mount_of("config"), config_path);
    assert_eq!(text(mounts["config"], "/subPath"), "meridian.toml");
    assert_eq!(
        mount_of("zones"),
        config_path
            .parent()
            .unwrap()
            .join(setting(&config, "dns", "zones_dir"))
    );
    let token = Path::new(setting(&config, "admin", "token_file"));
    assert_eq!(mount_of("admin-token"), token.parent().unwrap());
    let secret = &volumes["admin-token"]["secret"];
    assert_eq!(text(secret, "/secretName"), "meridian-admin-token");
    for section in ["health", "admin"] {
        let file = Path::new(setting(&config, section, "state_file"));
        assert_eq!(file.parent().unwrap(), mount_of("state"), "{section}");
    }
    assert!(volumes["state"]["emptyDir"].is_object());
    let config_map = text(volumes["config"], "/configMap/name");
    assert_eq!(generated[config_map], ["meridian.toml"]);
    let zones_map = text(volumes["zones"], "/configMap/name");
    assert!(
        generated[zones_map]
            .iter()
            .all(|file| file.starts_with("zones/") && file.ends_with(".zone")),
        "{:?}",
        generated[zones_map]
    );

    // Services: DNS over UDP and TCP; the admin API apart, inside the cluster.
    let dns_service = of_kind(&documents, "Service", "meridian-dns");
    let admin_service = of_kind(&documents, "Service", "meridian-admin");
    for service in [dns_service, admin_service] {
        assert_eq!(service["spec"]["selector"], *labels);
        for port in service["spec"]["ports"].as_array().unwrap() {
            let target = text(port, "/targetPort");
            let (_, protocol) = ports
                .get(target)
                .unwrap_or_else(|| panic!("targetPort {target} is a container port"));
            assert_eq!(text(port, "/protocol"), protocol);
        }
    }
    let protocols: BTreeSet<&str> = dns_service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|port| {
            assert_eq!(port["port"], 53);
            text(port, "/protocol")
        })
        .collect();
    assert_eq!(protocols, BTreeSet::from(["TCP", "UDP"]));
    assert_eq!(text(admin_service, "/spec/type"), "ClusterIP");

    // The disruption budget covers these pods and leaves one serving.
    let budget = of_kind(&documents, "PodDisruptionBudget", "meridian");
    assert_eq!(budget["spec"]["selector"]["matchLabels"], *labels);
    assert!(budget["spec"]["minAvailable"].as_u64().unwrap() >= 1);
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() > 1);
}

/// The value of the first `key: value` line of `text` (YAML written one key per line).
fn yaml_line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key}: line"))
        .trim()
}

/// The number after `flag` in `text` (`--stop-timeout 45`).
fn flag_value(text: &str, flag: &str) -> u64 {
    let at = text
        .find(&format!("{flag} "))
        .unwrap_or_else(|| panic!("no {flag}"));
    let value = text[at + flag.len()..].split_whitespace().next().unwrap();
    value
        .parse()
        .unwrap_or_else(|_| panic!("{flag} {value}: not a number"))
}

#[test]
fn stop_timeouts_outlast_the_longest_stop_with_a_default_balancer() {
    // The longest stop of a server with one pool left at the default drain_timeout.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[balancers.web]\nlisten = \"127.0.0.1:0\"\nbackends = [{ addr = \"127.0.0.1:9\" }]\n",
    );
    let loaded = meridian::snapshot::load(&config).unwrap();
    let longest = meridian::server::longest_stop(&loaded.config);
    assert!(
        longest > meridian::server::ADMIN_SHUTDOWN_GRACE + meridian::server::SHUTDOWN_GRACE,
        "a default drain_timeout is longer than the TCP grace: {longest:?}"
    );
    // Each manager waits longer, with at least 5 s to spare, before it kills the process.
    let unit = read("systemd/meridian.service");
    let systemd = meridian::config::parse_duration(unit_values(&unit, "TimeoutStopSec")[0])
        .expect("TimeoutStopSec is a plain duration");
    let kubernetes = Duration::from_secs(
        yaml_line(
            &read("kubernetes/deployment.yaml"),
            "terminationGracePeriodSeconds",
        )
        .parse()
        .unwrap(),
    );
    let docker = Duration::from_secs(flag_value(&read("README.md"), "--stop-timeout"));
    for (manager, timeout) in [
        ("systemd TimeoutStopSec", systemd),
        ("Kubernetes terminationGracePeriodSeconds", kubernetes),
        ("docker run --stop-timeout", docker),
    ] {
        assert!(
            timeout >= longest + Duration::from_secs(5),
            "{manager} {timeout:?}: a stop can take {longest:?}"
        );
    }
}

/// The rule file that records every query of the Grafana dashboard, with its variables filled
/// in, so promtool parses them.
fn dashboard_queries_as_rules(dashboard: &Value) -> (usize, String) {
    fn collect<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    match (key.as_str(), item) {
                        ("expr", Value::String(expr)) => found.push(expr),
                        _ => collect(item, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect(item, found)),
            _ => {}
        }
    }
    let mut queries = Vec::new();
    collect(dashboard, &mut queries);
    let mut rules = Vec::new();
    for (index, query) in queries.iter().enumerate() {
        let mut expr = query.replace("$__rate_interval", "5m");
        for variable in ["instance", "region", "service"] {
            expr = expr.replace(&format!("${variable}"), ".*");
        }
        assert!(!expr.contains('$'), "unfilled variable in {query}");
        rules.push(serde_json::json!({"record": format!("dashboard:query{index}"), "expr": expr}));
    }
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    (queries.len(), file.to_string())
}

/// Runs promtool with `args`; panics with its output unless it succeeds.
fn promtool(args: &[&str], dir: &Path) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules_their_tests_and_the_dashboard_queries() {
    if !have("promtool", &["--version"], "prometheus") {
        return;
    }
    let rules_dir = deploy("prometheus");
    promtool(&["check", "rules", "meridian-alerts.yml"], &rules_dir);
    promtool(&["test", "rules", "meridian-alerts.test.yml"], &rules_dir);
    let dashboard: Value = serde_json::from_str(&read("grafana/meridian.json")).unwrap();
    let (count, rules) = dashboard_queries_as_rules(&dashboard);
    assert!(count >= 10, "{count} dashboard queries");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.rules.json"), rules).unwrap();
    promtool(&["check", "rules", "dashboard.rules.json"], dir.path());
}

/// The strings of `value` that hold `${NAME}`, with each `NAME`.
fn placeholders(value: &Value) -> Vec<String> {
    let mut strings = Vec::new();
    json_strings(value, &mut strings);
    let mut names = Vec::new();
    for string in strings {
        let mut rest = string.as_str();
        while let Some(start) = rest.find("${") {
            let end = rest[start..].find('}').expect("placeholder closes") + start;
            names.push(rest[start + 2..end].to_string());
            rest = &rest[end..];
        }
    }
    names
}

#[test]
fn the_dashboard_asks_for_its_data_source_on_import() {
    let dashboard: Value = serde_json::from_str(&read("grafana/meridian.json")).unwrap();
    // The import dialog offers one data source picker per input of type datasource.
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    let input = inputs
        .iter()
        .find(|input| input["name"] == "DS_PROMETHEUS")
        .expect("an input DS_PROMETHEUS");
    assert_eq!(input["type"], "datasource");
    assert_eq!(input["pluginId"], "prometheus");
    // The choice becomes the data source variable's value, which every query uses.
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let source = variables
        .iter()
        .find(|variable| variable["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(source["query"], "prometheus");
    assert_eq!(source["current"]["value"], "${DS_PROMETHEUS}");
    let variable = format!("${{{}}}", text(source, "/name"));
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["targets"].is_array() {
            assert_eq!(
                text(panel, "/datasource/uid"),
                variable,
                "panel {}",
                panel["title"]
            );
            queried += 1;
        }
    }
    assert!(queried >= 10, "{queried} panels query");
    // Every placeholder names an input or a variable: the import leaves none unresolved.
    let mut known: BTreeSet<String> = inputs
        .iter()
        .map(|input| text(input, "/name").to_string())
        .collect();
    known.extend(
        variables
            .iter()
            .map(|variable| text(variable, "/name").to_string()),
    );
    for name in placeholders(&dashboard) {
        assert!(known.contains(&name), "${{{name}}} is no input or variable");
    }
}

#[test]
fn answer_shares_are_of_all_of_a_services_answers() {
    let dashboard: Value = serde_json::from_str(&read("grafana/meridian.json")).unwrap();
    let panel = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|panel| panel["title"] == "Share of answers by region")
        .expect("the share panel");
    let expr = text(&panel["targets"][0], "/expr");
    let (numerator, denominator) = expr.split_once(" / ").expect("a ratio");
    let selector = |side: &str| -> Vec<String> {
        let (_, selector) = referenced_series(side)
            .into_iter()
            .find(|(name, _)| name == "meridian_gslb_answers_total")
            .expect("the answer counter");
        matchers(&selector.expect("a selector"))
            .into_iter()
            .map(|(label, _, _)| label)
            .collect()
    };
    // The selected regions pick the lines; the total is the service's, whatever is selected.
    assert!(
        selector(numerator).contains(&"region".to_string()),
        "{expr}"
    );
    assert!(
        !selector(denominator).contains(&"region".to_string()),
        "{expr}"
    );
    assert!(
        selector(denominator).contains(&"service".to_string()),
        "{expr}"
    );
}

/// A `meridian serve` child whose log lines arrive on a channel.
struct Server {
    /// The process.
    child: Child,
    /// Its stderr, line by line.
    lines: Receiver<String>,
    /// Every line read so far.
    log: Vec<String>,
}

impl Server {
    /// Starts `serve --config CONFIG` with `env` added to its environment.
    fn start(config: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Server {
        use std::io::BufRead;
        let mut command = meridian();
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// The first log line (from now on) that contains `needle`, within 10 s.
    fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {needle:?}; log:\n{}", self.log.join("\n")),
            }
        }
    }

    /// Sends signal `name` (HUP, TERM) with kill(1).
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to 30 s for the exit; its code and the whole log. A server still running then
    /// is killed, and the test fails with its log.
    fn wait(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.drain_log(Instant::now() + Duration::from_secs(1));
                panic!(
                    "the server did not exit within 30 s; log:\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.drain_log(Instant::now() + Duration::from_secs(5));
        (status.code(), self.log.join("\n"))
    }

    /// Reads the rest of the log, until stderr closes or `deadline`.
    fn drain_log(&mut self, deadline: Instant) {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(_) => return,
            }
        }
    }
}

impl Drop for Server {
    /// A failed test leaves no server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a port-0 config (with `admin` appended) and the example zone into `dir`.
fn write_config(dir: &Path, admin: &str) -> PathBuf {
    write_config_on(dir, "127.0.0.1:0", admin)
}

/// Writes a config listening on `listen` (with `admin` appended) and the example zone into
/// `dir`.
fn write_config_on(dir: &Path, listen: &str, admin: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(dir.join("zones/example.com.zone"), EXAMPLE_COM).unwrap();
    let config = dir.join("meridian.toml");
    std::fs::write(
        &config,
        format!("[dns]\nlisten = [\"{listen}\"]\nzones_dir = \"zones\"\nudp_workers = 1\n{admin}"),
    )
    .unwrap();
    config
}

/// The addresses a `key=[ADDR, ...]` field of log line `line` lists (the "serving" line's
/// `udp` and `tcp`).
fn logged_addrs(line: &str, key: &str) -> Vec<SocketAddr> {
    let start = line
        .find(&format!("{key}=["))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        + key.len()
        + 2;
    let end = line[start..].find(']').expect("the list closes") + start;
    line[start..end]
        .split(", ")
        .map(|addr| addr.parse().expect("an address"))
        .collect()
}

/// Asks `udp` and `tcp` for `www.example.com A`, each once, and checks the authoritative
/// answer of the example zone; `when` says at what point, for the failure message.
fn answers_www(udp: SocketAddr, tcp: SocketAddr, when: &str) {
    use std::io::{Read, Write};
    let query = Query::new("www.example.com", qtype::A).build();
    let check = |raw: Vec<u8>, transport: &str| {
        let reply = Reply::decode(raw);
        assert_eq!(reply.rcode(), rcode::NOERROR, "{transport} {when}");
        assert!(reply.aa(), "{transport} {when}: authoritative");
        assert!(
            reply
                .answers()
                .iter()
                .any(|answer| answer.contains("192.0.2.80")),
            "{transport} {when}: {:?}",
            reply.answers()
        );
    };

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(&query, udp).unwrap();
    let mut buffer = [0u8; 4096];
    let len = socket
        .recv(&mut buffer)
        .unwrap_or_else(|err| panic!("no UDP answer {when}: {err}"));
    check(buffer[..len].to_vec(), "UDP");

    let mut stream = std::net::TcpStream::connect_timeout(&tcp, Duration::from_secs(5))
        .unwrap_or_else(|err| panic!("no TCP connection {when}: {err}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    stream.write_all(&framed).unwrap();
    let mut length = [0u8; 2];
    stream
        .read_exact(&mut length)
        .unwrap_or_else(|err| panic!("no TCP answer {when}: {err}"));
    let mut raw = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut raw).unwrap();
    check(raw, "TCP");
}

/// The next notification on `socket`, as its `KEY=VALUE` lines.
fn notification(socket: &UnixDatagram) -> BTreeMap<String, String> {
    let mut buffer = [0u8; 4096];
    let len = socket
        .recv(&mut buffer)
        .expect("a notification within the timeout");
    let text = std::str::from_utf8(&buffer[..len]).expect("UTF-8");
    assert!(text.ends_with('\n'), "{text:?}");
    text.lines()
        .map(|line| {
            let (key, value) = line.split_once('=').expect("KEY=VALUE");
            (key.to_string(), value.to_string())
        })
        .collect()
}

/// A notification socket in `dir`, as a service manager binds it, and its path; reads give up
/// after 10 s so a missing notification fails the test instead of hanging it.
fn notify_socket(dir: &std::path::Path) -> (std::path::PathBuf, UnixDatagram) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (path, socket)
}

#[test]
fn serve_notifies_the_service_manager_of_ready_reload_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let (path, socket) = notify_socket(dir.path());
    let mut server = Server::start(&config, &[("NOTIFY_SOCKET", path.as_os_str())]);

    let ready = notification(&socket);
    assert_eq!(
        ready.get("READY").map(String::as_str),
        Some("1"),
        "{ready:?}"
    );
    assert_eq!(ready["STATUS"], "Serving", "{ready:?}");
    // No MAINPID=: in a PID namespace of its own the process would name a PID the manager
    // cannot see, and the manager knows the process it started anyway.
    assert!(!ready.contains_key("MAINPID"), "{ready:?}");
    // READY=1 comes once the sockets serve: the log already says where, and both answer at
    // once.
    let line = server.wait_for_line("serving");
    answers_www(
        logged_addrs(&line, "udp")[0],
        logged_addrs(&line, "tcp")[0],
        "right after READY=1",
    );

    let before = meridian::notify::monotonic_usec().unwrap();
    server.signal("HUP");
    let reloading = notification(&socket);
    let after = meridian::notify::monotonic_usec().unwrap();
    assert_eq!(reloading["RELOADING"], "1", "{reloading:?}");
    let stamp: u64 = reloading["MONOTONIC_USEC"].parse().unwrap();
    assert!(
        before <= stamp && stamp <= after,
        "MONOTONIC_USEC {stamp} is between the signal ({before}) and its arrival ({after})"
    );
    let ready = notification(&socket);
    assert_eq!(ready["READY"], "1", "{ready:?}");
    assert_eq!(ready["STATUS"], "Serving", "{ready:?}");
    server.wait_for_line("reloaded");

    server.signal("TERM");
    let stopping = notification(&socket);
    assert_eq!(stopping["STOPPING"], "1", "{stopping:?}");
    let (code, log) = server.wait();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("cannot notify"), "no warning: {log}");
}

#[test]
fn a_failed_reload_is_ready_on_the_previous_data_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let (path, socket) = notify_socket(dir.path());
    let mut server = Server::start(&config, &[("NOTIFY_SOCKET", path.as_os_str())]);
    assert_eq!(notification(&socket)["STATUS"], "Serving");
    let line = server.wait_for_line("serving");
    let (udp, tcp) = (logged_addrs(&line, "udp")[0], logged_addrs(&line, "tcp")[0]);

    let zone = dir.path().join("zones/example.com.zone");
    std::fs::write(&zone, format!("{EXAMPLE_COM}\nbroken IN NOSUCHTYPE 1\n")).unwrap();
    server.signal("HUP");
    assert_eq!(notification(&socket)["RELOADING"], "1");
    let ready = notification(&socket);
    assert_eq!(ready["READY"], "1", "still serving: {ready:?}");
    let status = &ready["STATUS"];
    let error = status
        .strip_prefix("Serving the previous data; reload failed: ")
        .unwrap_or_else(|| panic!("the status says the reload failed: {status:?}"));
    assert!(
        error.contains("example.com.zone:"),
        "the error names the file and line: {status:?}"
    );
    server.wait_for_line("reload failed");
    answers_www(udp, tcp, "after the failed reload");

    // The next reload that works says Serving again.
    std::fs::write(&zone, EXAMPLE_COM).unwrap();
    server.signal("HUP");
    assert_eq!(notification(&socket)["RELOADING"], "1");
    assert_eq!(notification(&socket)["STATUS"], "Serving");
    server.wait_for_line("reloaded");
    server.signal("TERM");
    assert_eq!(notification(&socket)["STOPPING"], "1");
    let (code, log) = server.wait();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn a_taken_dns_port_fails_the_start_naming_it_before_ready() {
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_on(dir.path(), &taken.to_string(), "");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let server = Server::start(&config, &[("NOTIFY_SOCKET", path.as_os_str())]);
    let (code, log) = server.wait();
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "cannot bind dns.listen {taken} over UDP: Address already in use"
        )),
        "the error names the address and the protocol: {log}"
    );
    assert!(
        log.contains("another process already listens there"),
        "{log}"
    );
    // The process has exited: anything it sent is queued already.
    socket.set_nonblocking(true).unwrap();
    let mut buffer = [0u8; 4096];
    match socket.recv(&mut buffer) {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok(len) => panic!(
            "no notification from a failed start, got {:?}",
            String::from_utf8_lossy(&buffer[..len])
        ),
        Err(err) => panic!("{err}"),
    }
}

#[cfg(target_os = "linux")]
#[test]
fn serve_notifies_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let name = format!("meridian-deploy-test-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let value = format!("@{name}");
    let server = Server::start(&config, &[("NOTIFY_SOCKET", std::ffi::OsStr::new(&value))]);
    assert_eq!(notification(&socket)["READY"], "1");
    server.signal("TERM");
    assert_eq!(notification(&socket)["STOPPING"], "1");
    let (code, log) = server.wait();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn serve_without_a_listening_manager_warns_once_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let missing = dir.path().join("nobody.sock");
    let mut server = Server::start(&config, &[("NOTIFY_SOCKET", missing.as_os_str())]);
    server.wait_for_line("serving");
    for _ in 0..2 {
        server.signal("HUP");
        server.wait_for_line("reloaded");
    }
    server.signal("TERM");
    let (code, log) = server.wait();
    assert_eq!(code, Some(0), "{log}");
    let warnings = log
        .lines()
        .filter(|line| line.contains("cannot notify the service manager"))
        .count();
    assert_eq!(
        warnings, 1,
        "one warning for six failed notifications: {log}"
    );
    assert!(
        log.contains("nobody.sock"),
        "the warning names the socket: {log}"
    );
}

/// Runs the image's probe script for `path` against the admin API on `port`, with `token_file`.
fn probe(port: u16, path: &str, token_file: &Path) -> (bool, String) {
    let output = Command::new("bash")
        .arg(deploy("docker/meridian-probe"))
        .arg(path)
        .env("MERIDIAN_ADMIN_PORT", port.to_string())
        .env("MERIDIAN_TOKEN_FILE", token_file)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_probe_script_reads_liveness_and_readiness_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    // Written as operators do: with a trailing newline.
    std::fs::write(&token, "probe-token-1234\n").unwrap();
    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let config = write_config(
        dir.path(),
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n\
         [regions.eu-west]\n[[regions.eu-west.monitor]]\nurl = \"tcp://127.0.0.1:9\"\n\
         interval = \"200ms\"\ntimeout = \"100ms\"\n",
    );
    let mut server = Server::start(&config, &[]);
    let port = logged_admin_port(&server.wait_for_line("admin API listening"));

    assert!(probe(port, "/healthz", &wrong).0, "liveness needs no token");
    // Ready once the monitor's first probe is in: poll until then.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, stderr) = probe(port, "/readyz", &token);
        if ok {
            break;
        }
        assert!(stderr.contains("503"), "not ready yet, or wrong: {stderr}");
        assert!(Instant::now() < deadline, "never ready: {stderr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, stderr) = probe(port, "/readyz", &wrong);
    assert!(
        !ok && stderr.contains("401"),
        "a wrong token is refused: {stderr}"
    );
    let (ok, stderr) = probe(port, "/readyz", &dir.path().join("absent"));
    assert!(
        !ok && stderr.contains("401"),
        "no token is refused: {stderr}"
    );
    server.signal("TERM");
    let (code, log) = server.wait();
    assert_eq!(code, Some(0), "{log}");
    // A stopped server fails the probe.
    let (ok, stderr) = probe(port, "/healthz", &token);
    assert!(
        !ok && stderr.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{stderr}"
    );
}

/// The port of the address the "admin API listening" log line names.
fn logged_admin_port(line: &str) -> u16 {
    line.split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("an address in {line:?}"))
        .port()
}

#[test]
fn a_reload_warns_that_admin_listen_and_token_need_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "first-token-1234\n").unwrap();
    let first = dir.path().join("first.token");
    std::fs::copy(&token, &first).unwrap();
    let admin = "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n";
    let config = write_config(dir.path(), admin);
    let mut server = Server::start(&config, &[]);
    let port = logged_admin_port(&server.wait_for_line("admin API listening"));

    // A new token: the reload says it needs a restart, and the API keeps the old one.
    std::fs::write(&token, "second-token-5678\n").unwrap();
    server.signal("HUP");
    let warning = server.wait_for_line("the admin token changed");
    assert!(warning.contains("admin.token"), "names the file: {warning}");
    assert!(
        !warning.contains("second-token"),
        "never the token: {warning}"
    );
    server.wait_for_line("reloaded");
    assert!(
        probe(port, "/v1/status", &first).0,
        "the token read at start"
    );
    let (ok, stderr) = probe(port, "/v1/status", &token);
    assert!(!ok && stderr.contains("401"), "the new token: {stderr}");

    // A new listen address: the same.
    let moved = std::fs::read_to_string(&config).unwrap().replace(
        "listen = \"127.0.0.1:0\"\ntoken",
        "listen = \"127.0.0.1:1\"\ntoken",
    );
    std::fs::write(&config, moved).unwrap();
    server.signal("HUP");
    let warning = server.wait_for_line("admin.listen changed");
    assert!(warning.contains("127.0.0.1:1"), "{warning}");
    assert!(warning.contains("restart"), "{warning}");
    server.wait_for_line("reloaded");
    assert!(
        probe(port, "/healthz", &first).0,
        "still on its first address"
    );

    server.signal("TERM");
    let (code, log) = server.wait();
    assert_eq!(code, Some(0), "{log}");
}
