//! The operator dashboard in a real browser: headless Chromium, driven over the W3C WebDriver
//! protocol through chromedriver, against a server with three regions whose monitors probe
//! in-process HTTP endpoints. The tests click the page's own controls and check what changes on
//! the page, in the API and in real DNS answers.
//!
//! These tests need `chromium` and `chromedriver` (Debian packages `chromium` and
//! `chromium-driver`). Without them they print a notice and pass, unless
//! `MERIDIAN_REQUIRE_TOOLS=1` is set (CI sets it), in which case they fail.
//!
//! Screenshots of each step and chromedriver's log go to a temporary directory, removed when
//! the test passes and kept, with its path printed, when it fails. With
//! `MERIDIAN_SCREENSHOTS=DIR` they go to `DIR/<test>` instead and are always kept, to look at.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian::admin::api::{self, ApiState, Control};
use serde_json::{Value, json};

use crate::geo::GEO_TEST;
use crate::harness::{Query, TestServer, qtype};
use crate::health::{Endpoint, Mode};
use crate::interop::required;

/// us-east's answer.
const US: &str = "192.0.2.10";
/// eu-west's answer.
const EU: &str = "192.0.2.20";
/// ap-southeast's answer.
const AP: &str = "192.0.2.30";

/// How long any one thing the page should show may take to show.
const WAIT: Duration = Duration::from_secs(20);

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Flags chromium runs with: headless, no sandbox (tests may run as root), no shared-memory
/// files (containers give /dev/shm little room), and none of its own network traffic
/// (outbound connections are refused on test machines).
const CHROMIUM_ARGS: [&str; 10] = [
    "--headless",
    "--disable-dev-shm-usage",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,1300",
];

/// The first of `candidates` that runs with `--version`, or `None`.
fn find(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|tool| {
            Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
        .map(|tool| tool.to_string())
}

/// The browser and its driver; panics when they are missing and tools are required, and
/// otherwise prints a notice and returns `None`.
fn tools() -> Option<(String, String)> {
    let browser = find(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find(&["chromedriver"]);
    match (browser, driver) {
        (Some(browser), Some(driver)) => Some((resolve(&browser), driver)),
        (browser, driver) => {
            let missing = [
                ("chromium", browser.is_none()),
                ("chromedriver", driver.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, missing)| missing.then_some(name))
            .collect::<Vec<_>>()
            .join(" and ");
            if required() {
                panic!(
                    "{missing} required (MERIDIAN_REQUIRE_TOOLS=1) but not installed: \
                     apt-get install chromium chromium-driver"
                );
            }
            eprintln!(
                "skipping: {missing} not installed (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

/// The full path of `tool` on `PATH` (chromedriver wants a path for the browser binary).
fn resolve(tool: &str) -> String {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
        .map_or_else(|| tool.to_string(), |path| path.display().to_string())
}

/// Where a test's screenshots and chromedriver's log go (see the module documentation).
#[derive(Debug)]
struct Shots {
    /// The directory.
    path: PathBuf,
    /// Whether it is removed when the test passes.
    temporary: bool,
}

impl Shots {
    /// The directory for `test`: under `$MERIDIAN_SCREENSHOTS`, or a temporary one.
    fn for_test(test: &str) -> Self {
        let shots = match std::env::var_os("MERIDIAN_SCREENSHOTS") {
            Some(root) => {
                let path = PathBuf::from(root).join(test);
                std::fs::create_dir_all(&path)
                    .unwrap_or_else(|err| panic!("create {}: {err}", path.display()));
                Shots {
                    path,
                    temporary: false,
                }
            }
            None => Shots {
                path: tempfile::Builder::new()
                    .prefix(&format!("meridian-dashboard-{test}-"))
                    .tempdir()
                    .expect("screenshot dir")
                    .keep(),
                temporary: true,
            },
        };
        eprintln!("{test}: screenshots in {}", shots.path.display());
        shots
    }
}

impl Drop for Shots {
    /// Removes a temporary directory unless the test is failing.
    fn drop(&mut self) {
        if !self.temporary {
            return;
        }
        if std::thread::panicking() {
            eprintln!(
                "screenshots and chromedriver.log kept in {}",
                self.path.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A plain-HTTP client for loopback (reqwest is built without a default TLS provider, so it
/// gets one it will never use), bypassing any proxy the environment names.
fn http_client() -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS set-up")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// A WebDriver error or an unexpected answer, as text.
#[derive(Debug)]
struct DriverError(String);

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A headless Chromium session through a chromedriver process of our own.
struct Browser {
    /// The chromedriver process.
    driver: Child,
    /// Where chromedriver listens.
    addr: SocketAddr,
    /// The WebDriver session.
    session: String,
    /// HTTP client for the WebDriver protocol.
    http: reqwest::Client,
    /// Chromium's profile: fresh for every browser.
    _profile: tempfile::TempDir,
    /// Where screenshots go; dropped after chromedriver has stopped.
    shots: Shots,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session with a fresh profile.
    async fn start(browser: &str, driver: &str, shots: Shots) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let http = http_client();
        let profile = tempfile::tempdir().expect("profile dir");
        let log = shots.path.join("chromedriver.log");
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut browser_session = Browser {
            driver: child,
            addr,
            session: String::new(),
            http,
            _profile: profile,
            shots,
        };
        let start = Instant::now();
        while browser_session.raw("GET", "/status", None).await.is_err() {
            assert!(
                start.elapsed() < WAIT,
                "chromedriver did not answer on {addr}; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|arg| arg.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            browser_session._profile.path().display()
        ));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": browser, "args": args },
                }
            }
        });
        let created = browser_session
            .raw("POST", "/session", Some(capabilities))
            .await
            .unwrap_or_else(|err| panic!("no browser session: {err}; see {}", log.display()));
        browser_session.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser_session
    }

    /// One WebDriver request; its `value`.
    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, DriverError> {
        let url = format!("http://{}{path}", self.addr);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|err| DriverError(format!("{url}: {err}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| DriverError(format!("{url}: {err}")))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|err| DriverError(format!("{url}: not JSON ({err}): {text}")))?;
        if !status.is_success() {
            return Err(DriverError(format!("{url}: {status}: {}", value["value"])));
        }
        Ok(value["value"].clone())
    }

    /// A request within the session.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, DriverError> {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// Opens `url`.
    async fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })))
            .await
            .expect("navigate");
    }

    /// Runs `script` (a function body) with `args`; its return value.
    async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
        .unwrap_or_else(|err| panic!("script {script:?}: {err}"))
    }

    /// Runs an asynchronous `script` whose last argument is the callback; its result.
    async fn script_async(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
        .unwrap_or_else(|err| panic!("script {script:?}: {err}"))
    }

    /// Polls the JavaScript expression `expression` until it is truthy; its value. Panics
    /// after [`WAIT`] with `what` and a screenshot.
    async fn until(&self, what: &str, expression: &str) -> Value {
        let start = Instant::now();
        let script = format!("return ({expression});");
        loop {
            let value = self.script(&script, json!([])).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if start.elapsed() > WAIT {
                let shot = self.screenshot("timeout").await;
                panic!(
                    "the page did not show {what} within {WAIT:?} (`{expression}` is {value}); \
                     screenshot {}",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element `css` selects, once it exists.
    async fn element(&self, css: &str) -> String {
        self.until(
            &format!("an element {css}"),
            &format!("document.querySelector({})", json!(css)),
        )
        .await;
        let found = self
            .call(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .unwrap_or_else(|err| panic!("{css}: {err}"));
        found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: no element reference in {found}"))
            .to_string()
    }

    /// Clicks the element `css` selects as a user would (it must be visible and not covered);
    /// retries while the page is re-rendering it.
    async fn click(&self, css: &str) {
        let start = Instant::now();
        loop {
            let element = self.element(css).await;
            match self
                .call(
                    "POST",
                    &format!("/element/{element}/click"),
                    Some(json!({})),
                )
                .await
            {
                Ok(_) => return,
                // Re-rendered or briefly covered (a dialog closing): try again.
                Err(_) if start.elapsed() < WAIT => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("cannot click {css}: {err}"),
            }
        }
    }

    /// Replaces the text of the input `css` selects with `text`, typed as keys.
    async fn fill(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await
        .unwrap_or_else(|err| panic!("clear {css}: {err}"));
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .unwrap_or_else(|err| panic!("type into {css}: {err}"));
    }

    /// Saves a screenshot of the whole page as `name`.png; its path.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let height = self
            .script(
                "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight;",
                json!([]),
            )
            .await
            .as_u64()
            .unwrap_or(1300);
        let _ = self
            .call(
                "POST",
                "/window/rect",
                Some(json!({ "width": 1440, "height": height.clamp(600, 4000) })),
            )
            .await;
        let path = self.shots.path.join(format!("{name}.png"));
        match self.call("GET", "/screenshot", None).await {
            Ok(Value::String(data)) => {
                std::fs::write(&path, base64_decode(&data)).expect("write screenshot");
            }
            other => eprintln!("no screenshot {name}: {other:?}"),
        }
        path
    }
}

impl Drop for Browser {
    /// Ends the session (which closes chromium) with a plain blocking request, so it happens
    /// on panics too, then stops chromedriver.
    fn drop(&mut self) {
        if !self.session.is_empty()
            && let Ok(mut stream) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session, self.addr
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Decodes standard base64 (WebDriver screenshots).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut word = 0u32;
        for (index, digit) in chunk.iter().enumerate() {
            word |= digit << (18 - 6 * index);
        }
        let bytes = word.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// A server with three regions, its admin API on a loopback socket, and DNS traffic.
struct Site {
    /// The server.
    server: Arc<TestServer>,
    /// The monitored endpoints: us-east, eu-west, ap-southeast.
    endpoints: [Endpoint; 3],
    /// The admin API's URL.
    url: String,
    /// Stops the API.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Asks www.geo.test over and over, so answer shares and drill timelines have data.
    traffic: tokio::task::JoinHandle<()>,
}

impl Site {
    /// Starts the site; `token` protects the API.
    async fn start(token: Option<&str>) -> Site {
        let endpoints = [
            Endpoint::start().await,
            Endpoint::start().await,
            Endpoint::start().await,
        ];
        let monitor = |region: &str, endpoint: &Endpoint| {
            format!(
                "[[regions.{region}.monitor]]\nurl = \"http://{}/health\"\ninterval = \"200ms\"\n\
                 timeout = \"150ms\"\nrise = 2\nfall = 2\nexpect_body = \"ok\"\n",
                endpoint.addr
            )
        };
        let sections = format!(
            r#"
[regions.us-east]
location = [39.04, -77.49]
capacity = 300
{}
[regions.eu-west]
location = [53.35, -6.26]
capacity = 200
{}
[regions.ap-southeast]
location = [1.29, 103.85]
capacity = 200
{}
[maps.world]
default = ["eu-west", "us-east", "ap-southeast"]

[services."www.geo.test"]
map = "world"
ttl = 2
ttl_degraded = 1
answers.us-east = ["{US}"]
answers.eu-west = ["{EU}"]
answers.ap-southeast = ["{AP}"]
"#,
            monitor("us-east", &endpoints[0]),
            monitor("eu-west", &endpoints[1]),
            monitor("ap-southeast", &endpoints[2]),
        );
        let server = Arc::new(
            TestServer::custom(
                &[("geo.test".to_string(), GEO_TEST.to_string())],
                "",
                &sections,
                &[],
            )
            .await,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = ApiState {
            control: Arc::clone(&server) as Arc<dyn Control>,
            token: token.map(str::to_string),
        };
        tokio::spawn(api::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        let dns = server.udp_addr();
        // Bounded: at most 3000 queries, 25 ms apart (75 s), stopped with the site.
        let traffic = tokio::spawn(async move {
            let query = Query::new("www.geo.test", qtype::A).build();
            for _ in 0..3000 {
                let _ = crate::harness::udp_exchange(dns, &query, Duration::from_millis(500)).await;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
        Site {
            server,
            endpoints,
            url,
            stop: Some(stop),
            traffic,
        }
    }

    /// The address www.geo.test answers with now.
    async fn answer(&self) -> String {
        let lines = self
            .server
            .udp(&Query::new("www.geo.test", qtype::A))
            .await
            .answers();
        lines
            .iter()
            .find_map(|line| line.split_whitespace().last().map(str::to_string))
            .unwrap_or_else(|| format!("no answer: {lines:?}"))
    }

    /// Polls DNS until www.geo.test answers with `address`.
    async fn until_answer(&self, address: &str) {
        let start = Instant::now();
        loop {
            let now = self.answer().await;
            if now == address {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "www.geo.test still answers {now}, not {address}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A JSON document of the API, read with `token`.
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = http_client().get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.expect("API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Stops the traffic and the API.
    fn stop(&mut self) {
        self.traffic.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A JavaScript expression: the `data-category` of region `name`'s card.
fn card_category(name: &str) -> String {
    format!("document.querySelector('.region[data-region=\"{name}\"]')?.dataset.category")
}

/// A JavaScript expression: whether the drill timeline shows a (non-pending) event `kind`.
fn timeline_has(kind: &str) -> String {
    format!(
        "document.querySelector('#drill-timeline .event[data-kind=\"{kind}\"]:not(.pending)') !== null"
    )
}

/// Waits until the page shows the three regions up, on the map and in the side panel.
async fn until_three_regions_up(browser: &Browser) {
    browser
        .until(
            "three region cards",
            "document.querySelectorAll('#regions .region').length === 3",
        )
        .await;
    for region in ["us-east", "eu-west", "ap-southeast"] {
        browser
            .until(
                &format!("{region} up"),
                &format!("{} === 'up'", card_category(region)),
            )
            .await;
        browser
            .until(
                &format!("{region} on the map"),
                &format!(
                    "document.querySelector('#map .marker[data-region=\"{region}\"]')?.dataset.category === 'up'"
                ),
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_started_from_the_page_moves_dns_answers_and_shows_its_timeline() {
    let Some((chromium, chromedriver)) = tools() else {
        return;
    };
    let mut site = Site::start(None).await;
    let browser = Browser::start(&chromium, &chromedriver, Shots::for_test("drill")).await;

    // `/` leads to the dashboard, which finds the three regions with their monitors' verdicts.
    browser.open(&format!("{}/", site.url)).await;
    let path = browser.script("return location.pathname;", json!([])).await;
    assert_eq!(path, "/dashboard");
    until_three_regions_up(&browser).await;
    let placed = browser
        .script(
            "return [...document.querySelectorAll('#map .marker')].map(m => m.dataset.region).sort();",
            json!([]),
        )
        .await;
    assert_eq!(placed, json!(["ap-southeast", "eu-west", "us-east"]));
    browser
        .until(
            "eu-west's share of www.geo.test",
            "Number(document.querySelector('.share-bar[data-service=\"www.geo.test.\"] .share-seg[data-region=\"eu-west\"]')?.dataset.share) > 0.9",
        )
        .await;
    site.until_answer(EU).await;
    browser.screenshot("01-loaded").await;

    // A monitor failing turns its region red on the map and in the panel.
    site.endpoints[2].set(Mode::Unavailable);
    browser
        .until(
            "ap-southeast down",
            &format!("{} === 'down'", card_category("ap-southeast")),
        )
        .await;
    browser
        .until(
            "ap-southeast down on the map",
            "document.querySelector('#map .marker[data-region=\"ap-southeast\"]')?.dataset.category === 'down'",
        )
        .await;
    site.endpoints[2].set(Mode::Ok);
    browser
        .until(
            "ap-southeast up again",
            &format!("{} === 'up'", card_category("ap-southeast")),
        )
        .await;

    // A drill, from the region's own button and the drill dialog.
    browser
        .click(".region[data-region=\"eu-west\"] button[data-action=\"drill\"]")
        .await;
    browser
        .until(
            "the drill dialog",
            "document.querySelector('#drill-dialog').open",
        )
        .await;
    let chosen = browser
        .script(
            "return document.querySelector('#drill-region').value;",
            json!([]),
        )
        .await;
    assert_eq!(chosen, "eu-west");
    browser.fill("#drill-duration", "60s").await;
    browser
        .fill("#drill-reason", "rehearsal from the dashboard")
        .await;
    browser.screenshot("02-drill-dialog").await;
    browser.click("#drill-submit").await;

    browser
        .until(
            "eu-west drilled",
            &format!("{} === 'degraded'", card_category("eu-west")),
        )
        .await;
    let badge = browser
        .until(
            "the drill badge",
            "document.querySelector('.region[data-region=\"eu-west\"] .badge')?.textContent",
        )
        .await;
    assert!(
        badge
            .as_str()
            .is_some_and(|text| text.starts_with("Drill #")),
        "{badge}"
    );
    site.until_answer(US).await;
    browser
        .until("the drill's timeline", &timeline_has("started"))
        .await;
    browser
        .until("the region out", &timeline_has("region_out"))
        .await;
    browser
        .until(
            "the first answer without the region",
            &timeline_has("first_answer_without_region"),
        )
        .await;
    browser.screenshot("03-drill-running").await;

    // The API agrees, and names the dashboard as the actor.
    let (status, drills) = site.get("/v1/drills", None).await;
    assert_eq!(status, 200);
    let drill = &drills["drills"][0];
    assert_eq!(drill["region"], "eu-west");
    assert_eq!(drill["state"], "running");
    assert_eq!(drill["who"], "dashboard");
    assert_eq!(drill["reason"], "rehearsal from the dashboard");

    // Explain, from the page: the drilled region is passed over.
    browser.fill("#explain-name", "www.geo.test").await;
    browser.fill("#explain-client", "192.0.2.99").await;
    browser.click("#explain-submit").await;
    let verdict = browser
        .until(
            "the explanation",
            "document.querySelector('#explain-result .verdict')?.textContent",
        )
        .await;
    assert!(
        verdict
            .as_str()
            .is_some_and(|text| text.contains("us-east")),
        "{verdict}"
    );

    // Abort: the region comes back, in DNS and on the page, and the timeline closes.
    browser.click("#drill-abort").await;
    browser
        .until("the rollback", &timeline_has("rolled_back"))
        .await;
    browser
        .until(
            "eu-west up again",
            &format!("{} === 'up'", card_category("eu-west")),
        )
        .await;
    site.until_answer(EU).await;
    browser
        .until(
            "the first answer with the region",
            &timeline_has("first_answer_with_region"),
        )
        .await;
    let (_, drill) = site.get("/v1/drills/1", None).await;
    assert_eq!(drill["state"], "aborted");
    browser.screenshot("04-rolled-back").await;
    site.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_page_asks_for_it_and_keeps_it_out_of_urls() {
    let Some((chromium, chromedriver)) = tools() else {
        return;
    };
    const TOKEN: &str = "t0ken-for-the-dashboard";
    let mut site = Site::start(Some(TOKEN)).await;
    let browser = Browser::start(&chromium, &chromedriver, Shots::for_test("token")).await;

    // The page itself needs no token; its data calls do, and get 401 without one.
    browser.open(&format!("{}/dashboard", site.url)).await;
    browser
        .until(
            "the token dialog",
            "document.querySelector('#token-dialog').open",
        )
        .await;
    let regions = browser
        .script(
            "return document.querySelectorAll('.region').length;",
            json!([]),
        )
        .await;
    assert_eq!(regions, 0, "no data without the token");
    let statuses = browser
        .script_async(
            "const done = arguments[arguments.length - 1];\
             Promise.all(['/v1/status', '/v1/answers', '/v1/drills'].map(p => fetch(p).then(r => r.status)))\
             .then(done, e => done(String(e)));",
        )
        .await;
    assert_eq!(statuses, json!([401, 401, 401]));
    assert_eq!(site.get("/v1/status", None).await.0, 401);
    browser.screenshot("01-asks-for-token").await;

    // A wrong token is refused and the page says so.
    browser.fill("#token-input", "not-the-token").await;
    browser.click("#token-submit").await;
    let refused = browser
        .until(
            "the refusal",
            "document.querySelector('#token-dialog').open && !document.querySelector('#token-error').hidden && document.querySelector('#token-error').textContent",
        )
        .await;
    assert!(
        refused
            .as_str()
            .is_some_and(|text| text.contains("refused")),
        "{refused}"
    );

    // The right one works; it stays in the tab's session storage, never in the URL.
    browser.fill("#token-input", TOKEN).await;
    browser.fill("#token-actor", "carol").await;
    browser.click("#token-submit").await;
    until_three_regions_up(&browser).await;
    let open = browser
        .script(
            "return document.querySelector('#token-dialog').open;",
            json!([]),
        )
        .await;
    assert_eq!(open, false);
    let kept = browser
        .script(
            "return [sessionStorage.getItem('meridian.admin.token'), location.href, document.cookie];",
            json!([]),
        )
        .await;
    assert_eq!(kept[0], TOKEN);
    assert!(!kept[1].as_str().unwrap_or("").contains(TOKEN), "{kept}");
    assert_eq!(kept[2], "");

    // Drain and undrain from the page, attributed to the name given.
    browser
        .click(".region[data-region=\"us-east\"] button[data-action=\"drain\"]")
        .await;
    browser
        .until(
            "the override dialog",
            "document.querySelector('#override-dialog').open",
        )
        .await;
    browser
        .fill("#override-reason", "CHG-7 kernel upgrade")
        .await;
    browser.fill("#override-period", "2s").await;
    browser.click("#override-submit").await;
    browser
        .until(
            "us-east draining",
            &format!("{} === 'degraded'", card_category("us-east")),
        )
        .await;
    let (status, region) = site.get("/v1/regions/us-east", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(region["region"]["override"]["action"], "drain");
    assert_eq!(region["region"]["override"]["who"], "carol");
    browser
        .until(
            "the drain finished",
            "document.querySelector('.region[data-region=\"us-east\"] .badge')?.textContent === 'Drained'",
        )
        .await;
    browser.screenshot("02-drained").await;
    browser
        .click(".region[data-region=\"us-east\"] button[data-action=\"undrain\"]")
        .await;
    browser
        .until(
            "us-east back",
            &format!("{} === 'up'", card_category("us-east")),
        )
        .await;
    let (_, region) = site.get("/v1/regions/us-east", Some(TOKEN)).await;
    assert_eq!(region["region"]["override"], Value::Null);

    // Forgetting the token asks for it again.
    browser.click("#forget-token").await;
    browser
        .until(
            "the token dialog again",
            "document.querySelector('#token-dialog')?.open",
        )
        .await;
    site.stop();
}

#[test]
fn base64_decodes_what_webdriver_sends() {
    assert_eq!(base64_decode("TWVyaWRpYW4="), b"Meridian");
    assert_eq!(base64_decode("TWVy\naWRp"), b"Meridi");
    assert_eq!(base64_decode(""), b"");
}
