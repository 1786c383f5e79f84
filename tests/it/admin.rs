//! The admin API end to end: a real server with regions and services, driven through the API
//! (in process with `oneshot`, and over a real socket), real DNS answers that follow the
//! operator's overrides and drills, explain checked against the data plane, metrics, restarts
//! with the state file, and the `meridian` operator commands against a running server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use meridian::admin::api::{self, ApiState, Control};
use meridian::admin::client::{Client, ClientError, Target};
use meridian::balancer::listener::RunningBalancer;
use meridian::health::monitor::Monitor;
use meridian::server::ReloadSummary;
use meridian::snapshot::{LoadError, Snapshot};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::conformance::{ecs_of, ecs_query};
use crate::geo::GEO_TEST;
use crate::harness::{Query, Reply, TestServer, qtype};
use crate::health::{Endpoint, Mode};

impl Control for TestServer {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.server.snapshot()
    }

    fn monitor(&self) -> &Monitor {
        self.server.monitor()
    }

    fn reload(&self) -> Result<ReloadSummary, LoadError> {
        self.server.reload()
    }

    fn balancers(&self) -> &[RunningBalancer] {
        self.server.balancers()
    }
}

/// eu-west's answer.
const EU: &str = "192.0.2.20";
/// us-east's answer.
const US: &str = "192.0.2.10";

/// Two regions (eu-west preferred by the map), `monitor` added to eu-west, a geo service and a
/// manual-failback service with TTLs of 2 s, 1 s degraded (so drills run fast); `extra` goes
/// first.
fn sections(monitor: &str, extra: &str) -> String {
    format!(
        r#"{extra}
[regions.eu-west]
{monitor}
[regions.us-east]

[maps.world]
default = ["eu-west", "us-east"]

[services."www.geo.test"]
map = "world"
ttl = 2
ttl_degraded = 1
answers.eu-west = ["{EU}"]
answers.us-east = ["{US}"]

[services."api.geo.test"]
policy = "failover"
tiers = [["eu-west"], ["us-east"]]
failback = "manual"
ttl = 2
ttl_degraded = 1
answers.eu-west = ["{EU}"]
answers.us-east = ["{US}"]
"#
    )
}

/// A `[[regions.eu-west.monitor]]` table probing `endpoint` every 200 ms, flipping after 2.
fn eu_monitor(endpoint: &Endpoint) -> String {
    format!(
        "[[regions.eu-west.monitor]]\nurl = \"http://{}/health\"\ninterval = \"200ms\"\n\
         timeout = \"150ms\"\nrise = 2\nfall = 2\nexpect_body = \"ok\"\n",
        endpoint.addr
    )
}

/// A server with its admin API, driven in process.
struct Admin {
    /// The server (shared with the API's state).
    server: Arc<TestServer>,
    /// The API.
    router: Router,
    /// The token requests carry, if any.
    token: Option<String>,
}

/// A response: status, content type and body.
struct Answer {
    /// The status.
    status: StatusCode,
    /// The Content-Type.
    content_type: String,
    /// The body as text.
    text: String,
}

impl Answer {
    /// The body as JSON.
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.text))
    }
}

impl Admin {
    /// Starts a server for geo.test with `sections` (and `files` beside the config).
    async fn start(sections: &str, files: &[(&str, &[u8])], token: Option<&str>) -> Admin {
        let server = Arc::new(
            TestServer::custom(
                &[("geo.test".to_string(), GEO_TEST.to_string())],
                "",
                sections,
                files,
            )
            .await,
        );
        let router = api::router(ApiState {
            control: Arc::clone(&server) as Arc<dyn Control>,
            token: token.map(str::to_string),
        });
        Admin {
            server,
            router,
            token: token.map(str::to_string),
        }
    }

    /// Sends a request with the configured token, as `alice`.
    async fn send(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        let token = self.token.clone();
        self.send_with(method, path, body, token.as_deref()).await
    }

    /// Sends a request with `token` (none: no Authorization header).
    async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(api::ACTOR_HEADER, "alice");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Body::from(body.unwrap_or("").to_string()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            content_type,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// A request that must succeed with `status`; its JSON.
    async fn expect(&self, status: StatusCode, method: &str, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then(|| body.to_string());
        let answer = self.send(method, path, body.as_deref()).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.text);
        answer.json()
    }

    /// A request that must fail with `status` and `code`; its message.
    async fn refuse(
        &self,
        status: StatusCode,
        code: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> String {
        let answer = self
            .send(method, path, (!body.is_empty()).then_some(body))
            .await;
        assert_eq!(
            answer.status, status,
            "{method} {path} {body}: {}",
            answer.text
        );
        assert_eq!(answer.content_type, "application/json", "{method} {path}");
        let value = answer.json();
        assert_eq!(value["code"], code, "{method} {path} {body}: {value}");
        value["message"].as_str().unwrap().to_string()
    }

    /// The region's view.
    async fn region(&self, name: &str) -> Value {
        let path = format!("/v1/regions/{name}");
        self.expect(StatusCode::OK, "GET", &path, Value::Null).await["region"].clone()
    }

    /// Sets an override.
    async fn set(&self, region: &str, body: Value) -> Value {
        let path = format!("/v1/regions/{region}/override");
        self.expect(StatusCode::OK, "PUT", &path, body).await
    }

    /// Clears the override.
    async fn clear(&self, region: &str) -> Value {
        let path = format!("/v1/regions/{region}/override");
        self.expect(StatusCode::OK, "DELETE", &path, Value::Null)
            .await
    }

    /// The A answer lines of `name`, asked without ECS.
    async fn answers(&self, name: &str) -> Vec<String> {
        self.server.udp(&Query::new(name, qtype::A)).await.answers()
    }

    /// Polls until `name` answers with `address` (bounded by `limit`).
    async fn until_answer(&self, name: &str, address: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let now = self.answers(name).await;
            if now.iter().any(|line| line.ends_with(address)) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{name} still answers {now:?} after {:?}, expected {address}",
                start.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every monitor has been probed once.
    async fn ready(&self) {
        let start = Instant::now();
        while self.send("GET", "/readyz", None).await.status != StatusCode::OK {
            assert!(start.elapsed() < Duration::from_secs(10), "never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Drops the API and stops the server.
    async fn stop(self) {
        drop(self.router);
        let server =
            Arc::try_unwrap(self.server).unwrap_or_else(|_| panic!("the server is still shared"));
        server.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_but_healthz_needs_the_token() {
    let admin = Admin::start(&sections("", ""), &[], Some("s3cret-token")).await;
    let health = admin.send_with("GET", "/healthz", None, None).await;
    assert_eq!(
        (health.status, health.json()["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );

    for (method, path) in [
        ("GET", "/v1/status"),
        ("GET", "/metrics"),
        ("GET", "/readyz"),
        ("GET", "/v1/regions/eu-west"),
        ("DELETE", "/v1/regions/eu-west/override"),
        ("POST", "/v1/reload"),
        ("GET", "/v1/no-such-endpoint"),
    ] {
        let missing = admin.send_with(method, path, None, None).await;
        let wrong = admin
            .send_with(method, path, None, Some("s3cret-tokeN"))
            .await;
        let short = admin.send_with(method, path, None, Some("s3cret")).await;
        for answer in [&missing, &wrong, &short] {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(answer.json()["code"], "unauthorized");
        }
        assert_eq!(missing.text, wrong.text, "no hint which was wrong");
    }
    let right = admin.send("GET", "/v1/status", None).await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.text);
    let status = right.json();
    let names: Vec<&str> = status["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|region| region["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eu-west", "us-east"]);
    assert_eq!(status["services"][0]["name"], "api.geo.test.");
    assert_eq!(status["services"][0]["policy"], "failover");
    assert_eq!(status["services"][0]["held"], false);
    assert_eq!(status["services"][1]["map"], "world");
    assert_eq!(status["regions"][0]["state"], "up");
    let lost = admin.send("GET", "/v1/no-such-endpoint", None).await;
    assert_eq!(lost.status, StatusCode::NOT_FOUND);
    assert_eq!(lost.json()["code"], "not_found");
    let method = admin.send("PATCH", "/v1/status", None).await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(method.json()["code"], "method_not_allowed");
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_override_kind_steers_real_answers_and_expires() {
    let endpoint = Endpoint::start().await;
    let admin = Admin::start(&sections(&eu_monitor(&endpoint), ""), &[], None).await;
    admin.ready().await;
    let limit = Duration::from_secs(10);
    assert_eq!(
        admin.answers("www.geo.test").await,
        [format!("www.geo.test. 2 IN A {EU}")]
    );
    let start_revision = admin
        .expect(StatusCode::OK, "GET", "/v1/status", Value::Null)
        .await["revision"]
        .as_u64()
        .unwrap();

    // force_down and maintenance: out at once, whatever the monitors say.
    for (action, state) in [
        ("force_down", "forced_down"),
        ("maintenance", "maintenance"),
    ] {
        let changed = admin
            .set("eu-west", json!({"action": action, "reason": "CHG-7"}))
            .await;
        assert!(changed["revision"].as_u64().unwrap() > start_revision);
        assert_eq!(changed["region"]["state"], state);
        assert_eq!(changed["region"]["up"], false);
        assert_eq!(changed["region"]["observed_up"], true);
        assert_eq!(changed["region"]["override"]["who"], "alice");
        assert_eq!(changed["region"]["override"]["reason"], "CHG-7");
        assert!(
            changed["region"]["override"]["since"]
                .as_str()
                .unwrap()
                .ends_with('Z'),
            "times are RFC 3339: {changed}"
        );
        assert_eq!(
            admin.answers("www.geo.test").await,
            [format!("www.geo.test. 1 IN A {US}")],
            "{action}: the next query already avoids eu-west, with the degraded TTL"
        );
        let status = admin
            .expect(StatusCode::OK, "GET", "/v1/status", Value::Null)
            .await;
        let www = status["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|service| service["name"] == "www.geo.test.")
            .unwrap()
            .clone();
        assert_eq!(
            www["answers"],
            json!([{"location": "default", "regions": ["us-east"], "reason": "failed_over",
                    "varies_by_client": false}]),
            "status shows the current answer per map entry"
        );
        let cleared = admin.clear("eu-west").await;
        assert_eq!(cleared["region"]["state"], "up");
        assert!(cleared["region"]["override"].is_null());
        assert_eq!(
            admin.answers("www.geo.test").await,
            [format!("www.geo.test. 2 IN A {EU}")]
        );
    }

    // force_up: answers while the monitors say down.
    endpoint.set(Mode::Unavailable);
    admin.until_answer("www.geo.test", US, limit).await;
    assert_eq!(admin.region("eu-west").await["state"], "down");
    let forced = admin
        .set(
            "eu-west",
            json!({"action": "force_up", "reason": "monitor is wrong"}),
        )
        .await;
    assert_eq!(forced["region"]["state"], "forced_up");
    assert_eq!(forced["region"]["observed_up"], false);
    assert_eq!(forced["region"]["up"], true);
    assert!(admin.answers("www.geo.test").await[0].ends_with(EU));
    admin.clear("eu-west").await;
    assert!(admin.answers("www.geo.test").await[0].ends_with(US));
    endpoint.set(Mode::Ok);
    admin.until_answer("www.geo.test", EU, limit).await;

    // An override with "for" lapses by itself.
    let set_at = Instant::now();
    let expiring = admin
        .set(
            "eu-west",
            json!({"action": "force_down", "reason": "short", "for": "1s"}),
        )
        .await;
    assert!(expiring["region"]["override"]["until"].is_string());
    assert!(admin.answers("www.geo.test").await[0].ends_with(US));
    admin.until_answer("www.geo.test", EU, limit).await;
    assert!(
        set_at.elapsed() >= Duration::from_millis(900),
        "lapsed after {:?}",
        set_at.elapsed()
    );
    let region = admin.region("eu-west").await;
    assert!(region["override"].is_null(), "{region}");
    assert_eq!(region["state"], "up");
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_ramps_the_share_down_then_keeps_the_region_out() {
    let admin = Admin::start(&sections("", ""), &[], None).await;
    let changed = admin
        .set(
            "eu-west",
            json!({"action": "drain", "reason": "move traffic", "drain_period": "3s"}),
        )
        .await;
    assert_eq!(changed["region"]["state"], "draining");
    assert_eq!(changed["region"]["override"]["drain_period"], "3s");

    // The factor falls from 1 to 0 over the drain period, and stays there.
    let start = Instant::now();
    let mut factors = Vec::new();
    loop {
        let factor = admin.region("eu-west").await["factor"].as_f64().unwrap();
        factors.push(factor);
        if factor == 0.0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never drained: {factors:?}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        factors.windows(2).all(|pair| pair[1] <= pair[0]),
        "never rises: {factors:?}"
    );
    assert!(
        factors.iter().any(|&factor| factor > 0.0 && factor < 1.0),
        "ramps through the middle: {factors:?}"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(2500),
        "{factors:?}"
    );

    // Out: no client subnet gets eu-west any more (once the monitor's next tick has published
    // the zero share); the cache horizon is reported.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let region = admin.region("eu-west").await;
    assert!(region["drained_at"].is_string(), "{region}");
    for n in 0..60u8 {
        let reply = admin
            .server
            .udp(&ecs_query("www.geo.test", &[0, 1, 24, 0, 8, n, 7]))
            .await;
        assert_eq!(
            reply.answers(),
            [format!("www.geo.test. 1 IN A {US}")],
            "8.{n}.7.0/24"
        );
    }
    let status = admin
        .expect(StatusCode::OK, "GET", "/v1/status", Value::Null)
        .await;
    assert_eq!(status["regions"][0]["state"], "draining");
    admin.clear("eu-west").await;
    assert!(admin.answers("www.geo.test").await[0].ends_with(EU));
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_and_where_with_the_right_status() {
    let admin = Admin::start(&sections("", ""), &[], None).await;
    use StatusCode as S;
    let message = admin
        .refuse(
            S::NOT_FOUND,
            "unknown_region",
            "GET",
            "/v1/regions/mars",
            "",
        )
        .await;
    assert!(
        message.contains("\"mars\"") && message.contains("eu-west, us-east"),
        "{message}"
    );
    let message = admin
        .refuse(
            S::NOT_FOUND,
            "unknown_region",
            "PUT",
            "/v1/regions/mars/override",
            r#"{"action": "drain", "reason": "x"}"#,
        )
        .await;
    assert!(message.contains("eu-west, us-east"), "{message}");

    let put = "/v1/regions/eu-west/override";
    for (body, expect) in [
        (
            r#"{"action": "drain", "reason": "x", "for": "soon"}"#,
            r#""for": "soon" is not a duration"#,
        ),
        (
            r#"{"action": "drain", "reason": "x", "drain_period": "1 fortnight"}"#,
            r#""drain_period": "1 fortnight" is not a duration"#,
        ),
        (
            r#"{"action": "undrain", "reason": "x"}"#,
            r#""action": "undrain" is not an action"#,
        ),
        (r#"{"action": "drain"}"#, r#""reason" is required"#),
        (
            r#"{"action": "drain", "reason": "  "}"#,
            r#""reason" is required"#,
        ),
        (
            r#"{"action": "force_down", "reason": "x", "drain_period": "1s"}"#,
            "applies to action drain only",
        ),
        (
            r#"{"action": "drain", "reason": "x", "for": "0s"}"#,
            "above zero",
        ),
        (
            r#"{"action": "drain", "reason": "x""#,
            "the JSON body is not valid",
        ),
        ("{not json", "the JSON body is not valid"),
        (r#"{"action": 7, "reason": "x"}"#, "invalid type"),
        (
            r#"{"action": "drain", "reason": "x", "duraton": "1h"}"#,
            "unknown field `duraton`",
        ),
        ("", "needs a JSON body"),
    ] {
        let message = admin
            .refuse(S::BAD_REQUEST, "bad_request", "PUT", put, body)
            .await;
        assert!(message.contains(expect), "{body}: {message}");
    }

    for (body, expect) in [
        (
            r#"{"region": "eu-west", "mode": "explode", "duration": "1m", "reason": "x"}"#,
            r#""mode": "explode" is not a drill mode"#,
        ),
        (
            r#"{"region": "eu-west", "mode": "fail", "duration": "a while", "reason": "x"}"#,
            r#""duration": "a while" is not a duration"#,
        ),
        (
            r#"{"region": "eu-west", "mode": "fail", "duration": "0s", "reason": "x"}"#,
            "above zero",
        ),
    ] {
        let message = admin
            .refuse(S::BAD_REQUEST, "bad_request", "POST", "/v1/drills", body)
            .await;
        assert!(message.contains(expect), "{body}: {message}");
    }
    // A drill would lift an operator's override on rollback: refused.
    admin
        .set(
            "eu-west",
            json!({"action": "force_up", "reason": "keep me"}),
        )
        .await;
    let drill = r#"{"region": "eu-west", "mode": "fail", "duration": "1m", "reason": "x"}"#;
    let message = admin
        .refuse(
            S::CONFLICT,
            "override_in_force",
            "POST",
            "/v1/drills",
            drill,
        )
        .await;
    assert!(
        message.contains("force_up override (set by alice: keep me)"),
        "{message}"
    );
    assert_eq!(admin.clear("eu-west").await["region"]["state"], "up");
    let message = admin
        .refuse(S::BAD_REQUEST, "bad_request", "GET", "/v1/drills/abc", "")
        .await;
    assert!(message.contains("\"abc\" is not a number"), "{message}");
    admin
        .refuse(S::NOT_FOUND, "unknown_drill", "GET", "/v1/drills/99", "")
        .await;
    admin
        .refuse(
            S::NOT_FOUND,
            "unknown_drill",
            "POST",
            "/v1/drills/99/abort",
            "",
        )
        .await;

    for (query, expect) in [
        (
            "name=www.geo.test&type=BOGUS&client=192.0.2.1",
            r#""type": "BOGUS" is not a record type"#,
        ),
        (
            "name=www.geo.test&type=A&client=nope",
            r#""client": "nope" is not an IP address"#,
        ),
        (
            "name=www.geo.test&type=A&ecs=81.2.69.0",
            r#""ecs": "81.2.69.0" is not a subnet"#,
        ),
        ("name=www.geo.test&type=A", "give \"client\""),
        ("type=A&client=192.0.2.1", "\"name\" is required"),
        (
            "name=www.geo.test&client=192.0.2.1&colour=blue",
            "unknown field `colour`",
        ),
    ] {
        let message = admin
            .refuse(
                S::BAD_REQUEST,
                "bad_request",
                "GET",
                &format!("/v1/explain?{query}"),
                "",
            )
            .await;
        assert!(message.contains(expect), "{query}: {message}");
    }

    // A stale revision is a conflict; the current one goes through.
    let current = admin.expect(S::OK, "GET", "/v1/status", Value::Null).await["revision"]
        .as_u64()
        .unwrap();
    let stale = json!({"action": "maintenance", "reason": "x", "revision": current + 5});
    let message = admin
        .refuse(S::CONFLICT, "conflict", "PUT", put, &stale.to_string())
        .await;
    assert!(message.contains("is stale"), "{message}");
    let fresh = json!({"action": "maintenance", "reason": "x", "revision": current});
    let changed = admin.set("eu-west", fresh).await;
    assert_eq!(changed["revision"].as_u64(), Some(current + 1));
    let message = admin
        .refuse(
            S::CONFLICT,
            "conflict",
            "DELETE",
            put,
            &json!({"revision": current}).to_string(),
        )
        .await;
    assert!(
        message.contains(&format!("current revision is {}", current + 1)),
        "{message}"
    );
    admin
        .expect(S::OK, "DELETE", put, json!({"revision": current + 1}))
        .await;

    // Failback: unknown service, a service without manual failback, one that is not held.
    admin
        .refuse(
            S::NOT_FOUND,
            "unknown_service",
            "POST",
            "/v1/services/nope.geo.test/failback",
            "",
        )
        .await;
    admin
        .refuse(
            S::CONFLICT,
            "not_manual",
            "POST",
            "/v1/services/www.geo.test/failback",
            "",
        )
        .await;
    let failback = admin
        .expect(
            S::OK,
            "POST",
            "/v1/services/api.geo.test/failback",
            Value::Null,
        )
        .await;
    assert_eq!(failback["was_held"], false);
    admin.stop().await;
}

/// Sends A queries for `name` from a few client subnets, back to back, until `stop` is set
/// (bounded by `limit`); returns how many were answered.
fn query_continuously(
    server: Arc<TestServer>,
    name: &'static str,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut answered = 0;
        let mut n = 0u8;
        while !stop.load(Ordering::SeqCst) && start.elapsed() < limit {
            n = n.wrapping_add(1);
            let query = ecs_query(name, &[0, 1, 24, 0, 8, n, 7]).build();
            if server
                .udp_exchange(&query, Duration::from_secs(1))
                .await
                .is_some()
            {
                answered += 1;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        answered
    })
}

/// The kinds of a drill's timeline, in order.
fn kinds(drill: &Value) -> Vec<String> {
    drill["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The value of the Prometheus series `series` (the whole name with labels).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_drill_measures_its_timeline_from_real_answers_and_rolls_back() {
    let admin = Admin::start(&sections("", ""), &[], None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = query_continuously(
        Arc::clone(&admin.server),
        "www.geo.test",
        Arc::clone(&stop),
        Duration::from_secs(60),
    );
    // Some answers before the drill, for the "before" shares.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let started = admin
        .expect(
            StatusCode::CREATED,
            "POST",
            "/v1/drills",
            json!({"region": "eu-west", "mode": "fail", "duration": "4s", "reason": "quarterly"}),
        )
        .await;
    let id = started["id"].as_u64().unwrap();
    assert_eq!(started["state"], "running");
    assert_eq!(started["who"], "alice");
    assert_eq!(started["max_ttl"], 2);
    assert_eq!(kinds(&started), ["started", "region_out"]);
    assert_eq!(admin.region("eu-west").await["drill"], id);
    assert_eq!(admin.region("eu-west").await["state"], "forced_down");
    let metrics = admin.send("GET", "/metrics", None).await.text;
    assert_eq!(
        metric(&metrics, "meridian_drill_active{region=\"eu-west\"}"),
        Some(1.0)
    );
    // A second drill of the region, or an override, is refused while it runs.
    let body = json!({"region": "eu-west", "mode": "drain", "duration": "1m", "reason": "x"});
    admin
        .refuse(
            StatusCode::CONFLICT,
            "drill_running",
            "POST",
            "/v1/drills",
            &body.to_string(),
        )
        .await;
    admin
        .refuse(
            StatusCode::CONFLICT,
            "drill_running",
            "PUT",
            "/v1/regions/eu-west/override",
            r#"{"action": "drain", "reason": "x"}"#,
        )
        .await;

    // It rolls back by itself and watches for the region's first answer after that.
    let path = format!("/v1/drills/{id}");
    let start = Instant::now();
    let report = loop {
        let report = admin
            .expect(StatusCode::OK, "GET", &path, Value::Null)
            .await;
        if kinds(&report)
            .iter()
            .any(|kind| kind == "first_answer_with_region")
        {
            break report;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "drill never completed: {report:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.store(true, Ordering::SeqCst);
    let answered = traffic.await.unwrap();
    assert!(answered > 50, "only {answered} queries answered");

    assert_eq!(
        kinds(&report),
        [
            "started",
            "region_out",
            "first_answer_without_region",
            "ttl_horizon",
            "rolled_back",
            "first_answer_with_region"
        ],
        "{report:#}"
    );
    assert_eq!(report["state"], "finished");
    let rolled_back = report["timeline"][4]["detail"].as_str().unwrap();
    assert!(rolled_back.contains("the drill ended"), "{rolled_back}");
    let measured = &report["measured"];
    let out = measured["first_answer_without_region_s"].as_f64().unwrap();
    assert!((0.0..2.0).contains(&out), "{measured}");
    assert!(
        (measured["ttl_horizon_s"].as_f64().unwrap() - 2.0).abs() < 0.01,
        "{measured}"
    );
    let back = measured["first_answer_with_region_s"].as_f64().unwrap();
    assert!((0.0..3.0).contains(&back), "{measured}");
    assert!(
        report["share_before"]["eu-west"].as_f64().unwrap() > 0.9,
        "{report:#}"
    );
    assert!(
        report["share_during"]["us-east"].as_f64().unwrap() > 0.8,
        "{report:#}"
    );
    assert!(report["rolled_back"].is_string());
    assert!(admin.answers("www.geo.test").await[0].ends_with(EU));
    let metrics = admin.send("GET", "/metrics", None).await.text;
    assert_eq!(
        metric(&metrics, "meridian_drill_active{region=\"eu-west\"}"),
        Some(0.0)
    );

    // An aborted drill: rolled back at once, once.
    let aborted = admin
        .expect(
            StatusCode::CREATED,
            "POST",
            "/v1/drills",
            json!({"region": "eu-west", "mode": "drain", "duration": "1h", "reason": "short"}),
        )
        .await;
    let abort = format!("/v1/drills/{}/abort", aborted["id"]);
    let report = admin
        .expect(StatusCode::OK, "POST", &abort, Value::Null)
        .await;
    assert_eq!(report["state"], "aborted");
    assert!(kinds(&report).contains(&"rolled_back".to_string()));
    admin
        .refuse(StatusCode::CONFLICT, "drill_over", "POST", &abort, "")
        .await;
    let list = admin
        .expect(StatusCode::OK, "GET", "/v1/drills", Value::Null)
        .await;
    let states: Vec<&str> = list["drills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|drill| drill["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["finished", "aborted"]);
    assert!(admin.region("eu-west").await["override"].is_null());
    admin.stop().await;
}

/// Regions, nets overrides and services of every policy, for explain.
const EXPLAIN_NETS: &str = "81.2.69.0/24,eu-west us-east\n175.16.199.0/24,ap-south us-east\n\
2a02:d180::/29,eu-west\n100.64.0.0/10,ap-south\n198.51.0.0/16,us-east ap-south eu-west\n";

/// The sections of the explain test.
fn explain_sections() -> String {
    r#"
[geo]
nets = "nets.csv"

[regions.us-east]
capacity = 300
[regions.eu-west]
capacity = 100
[regions.ap-south]
capacity = 200

[maps.world]
default = ["us-east", "eu-west", "ap-south"]

[services."www.geo.test"]
map = "world"
ttl = 30
ttl_degraded = 7
answers.us-east = ["192.0.2.10", "2001:db8::10"]
answers.eu-west = ["192.0.2.20"]
answers.ap-south = ["192.0.2.30"]

[services."edge.geo.test"]
map = "world"
answers.us-east = ["192.0.2.11"]
answers.ap-south = { cname = "ap.lb.example.net." }

[services."cdn.geo.test"]
policy = "weighted"
weights = { us-east = 3, eu-west = 1, ap-south = 2 }
max_answers = 2
answers.us-east = ["192.0.2.12"]
answers.eu-west = ["192.0.2.22"]
answers.ap-south = ["192.0.2.32"]

[services."api.geo.test"]
policy = "failover"
tiers = [["eu-west", "us-east"], ["ap-south"]]
answers.us-east = ["192.0.2.13"]
answers.eu-west = ["192.0.2.23"]
answers.ap-south = ["192.0.2.33"]

[services."spill.geo.test"]
map = "world"
spill = "capacity"
spread = 2
answers.us-east = ["192.0.2.14"]
answers.eu-west = ["192.0.2.24"]
answers.ap-south = ["192.0.2.34", "2001:db8::34"]
"#
    .to_string()
}

/// A random client subnet: (ECS option data, the subnet as text).
fn random_subnet(rng: &mut fastrand::Rng) -> (Vec<u8>, String) {
    if rng.u8(..) < 50 {
        // IPv6: the overridden German /29 or anywhere global.
        let mut octets = [0u8; 16];
        rng.fill(&mut octets);
        if rng.bool() {
            let low = octets[3] & 0x07;
            octets[..4].copy_from_slice(&[0x2a, 0x02, 0xd1, 0x80 | low]);
        } else {
            octets[0] = 0x20 | (octets[0] & 0x0f);
        }
        let source = [32u8, 48, 56, 64][rng.usize(..4)];
        let net = ipnet::Ipv6Net::new(octets.into(), source).unwrap().trunc();
        let bytes = usize::from(source).div_ceil(8);
        let mut data = vec![0, 2, source, 0];
        data.extend_from_slice(&net.addr().octets()[..bytes]);
        return (data, net.to_string());
    }
    let bases: [[u8; 4]; 6] = [
        [81, 2, 69, 0],
        [175, 16, 199, 0],
        [100, 64 + rng.u8(..64), 0, 0],
        [198, 51, 0, 0],
        [10, 0, 0, 0],
        [0, 0, 0, 0],
    ];
    let mut octets = bases[rng.usize(..bases.len())];
    for octet in octets.iter_mut() {
        if *octet == 0 {
            *octet = rng.u8(..);
        }
    }
    let source = [8u8, 16, 20, 24, 25, 32][rng.usize(..6)];
    let net = ipnet::Ipv4Net::new(octets.into(), source).unwrap().trunc();
    let bytes = usize::from(source).div_ceil(8);
    let mut data = vec![0, 1, source, 0];
    data.extend_from_slice(&net.addr().octets()[..bytes]);
    (data, net.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_gives_the_real_answer_for_random_clients() {
    let admin = Admin::start(
        &explain_sections(),
        &[("nets.csv", EXPLAIN_NETS.as_bytes())],
        None,
    )
    .await;
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let names = ["www", "edge", "cdn", "api", "spill"];
    let mut reasons = std::collections::BTreeSet::new();
    let mut scopes = std::collections::BTreeSet::new();
    for round in 0..200 {
        // Half the clients with every region up, half with us-east (first by default) down.
        if round == 100 {
            admin
                .set(
                    "us-east",
                    json!({"action": "force_down", "reason": "explain test"}),
                )
                .await;
        }
        let (data, subnet) = random_subnet(&mut rng);
        let name = format!("{}.geo.test", names[rng.usize(..names.len())]);
        let (qtype, type_name) = match rng.u8(..) {
            0..64 => (qtype::AAAA, "AAAA"),
            64..96 => (255, "ANY"),
            _ => (qtype::A, "A"),
        };
        let path =
            format!("/v1/explain?name={name}&type={type_name}&client=127.0.0.1&ecs={subnet}");
        let explanation = admin
            .expect(StatusCode::OK, "GET", &path, Value::Null)
            .await;
        let reply: Reply = admin
            .server
            .udp(&Query {
                qtype,
                ..ecs_query(&name, &data)
            })
            .await;
        let context = format!("seed {seed}, round {round}: {name} {type_name} ecs {subnet}");
        let explained: Vec<String> = explanation["answer"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line.as_str().unwrap().to_string())
            .collect();
        let real: Vec<String> = reply
            .answers()
            .into_iter()
            .filter(|line| line.starts_with(&name))
            .collect();
        assert_eq!(explained, real, "{context}: {explanation:#}");
        let scope = ecs_of(&reply).map(|(_, _, scope)| scope);
        assert_eq!(
            Some(explanation["scope"].as_u64().unwrap() as u8),
            scope,
            "{context}: {explanation:#}"
        );
        if let Some(reason) = explanation["decision"]["reason"].as_str() {
            reasons.insert(reason.to_string());
        }
        scopes.insert(scope);
        if let Some(first) = real.first() {
            let ttl: u64 = first.split(' ').nth(1).unwrap().parse().unwrap();
            assert_eq!(explanation["ttl"].as_u64(), Some(ttl), "{context}");
        }
    }
    // Other types at a GSLB name come from the zone, and explain says so.
    let txt = admin
        .expect(
            StatusCode::OK,
            "GET",
            "/v1/explain?name=www.geo.test&type=TXT&client=81.2.69.142",
            Value::Null,
        )
        .await;
    assert_eq!(txt["answer"], json!([]));
    assert!(txt["decision"].is_null(), "{txt:#}");
    assert!(
        txt["policy"].as_str().unwrap().contains("zone data"),
        "{txt:#}"
    );
    // The clients reached many decisions, and scopes of many widths.
    eprintln!("explain: reasons {reasons:?}, scopes {scopes:?}");
    for reason in ["preferred", "failed_over", "weighted", "spilled"] {
        assert!(
            reasons.contains(reason),
            "seed {seed}: {reason} never seen: {reasons:?}"
        );
    }
    assert!(scopes.len() >= 5, "seed {seed}: scopes {scopes:?}");
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_queries_and_follow_monitors_and_overrides() {
    let endpoint = Endpoint::start().await;
    let admin = Admin::start(&sections(&eu_monitor(&endpoint), ""), &[], None).await;
    admin.ready().await;
    let scrape = || async {
        let answer = admin.send("GET", "/metrics", None).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.content_type, "text/plain; version=0.0.4");
        answer.text
    };
    let requests = "meridian_dns_requests_total{proto=\"udp\",type=\"A\"}";
    let answers = "meridian_gslb_answers_total{service=\"www.geo.test.\",region=\"eu-west\",reason=\"preferred\"}";
    let target = format!(
        "meridian_monitor_up{{region=\"eu-west\",target=\"http://{}/health\"}}",
        endpoint.addr
    );
    let state =
        |state: &str| format!("meridian_region_state{{region=\"eu-west\",state=\"{state}\"}}");
    let before = scrape().await;
    for _ in 0..5 {
        admin.answers("www.geo.test").await;
    }
    let after = scrape().await;
    assert!(
        metric(&after, requests).unwrap() >= metric(&before, requests).unwrap() + 5.0,
        "{after}"
    );
    assert!(metric(&after, answers).unwrap() >= metric(&before, answers).unwrap() + 5.0);
    assert_eq!(metric(&after, &target), Some(1.0), "{after}");
    assert_eq!(metric(&after, &state("up")), Some(1.0));
    assert_eq!(metric(&after, &state("down")), Some(0.0));
    assert_eq!(
        metric(&after, "meridian_drill_active{region=\"us-east\"}"),
        Some(0.0)
    );

    endpoint.set(Mode::Unavailable);
    let start = Instant::now();
    let down = loop {
        let text = scrape().await;
        if metric(&text, &target) == Some(0.0) && metric(&text, &state("down")) == Some(1.0) {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "monitor never went down: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(metric(&down, &state("up")), Some(0.0));
    assert!(metric(&down, "meridian_health_transitions_total").unwrap() >= 2.0);

    admin
        .set(
            "eu-west",
            json!({"action": "maintenance", "reason": "patching"}),
        )
        .await;
    let text = scrape().await;
    assert_eq!(metric(&text, &state("maintenance")), Some(1.0));
    assert_eq!(metric(&text, &state("down")), Some(0.0));
    assert_eq!(
        metric(&text, "meridian_region_traffic_factor{region=\"eu-west\"}"),
        Some(0.0)
    );
    endpoint.set(Mode::Ok);
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_survive_a_restart_with_the_state_file() {
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("admin.json");
    let config = sections(
        "",
        &format!("[admin]\nstate_file = \"{}\"\n", state.display()),
    );
    let admin = Admin::start(&config, &[], None).await;
    let changed = admin
        .set(
            "eu-west",
            json!({"action": "maintenance", "reason": "CHG-42", "for": "1h"}),
        )
        .await;
    let revision = changed["revision"].as_u64().unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(&state).is_ok_and(|text| text.contains("CHG-42")) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "state never saved"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    admin.stop().await;

    // A new process on the same config: still in maintenance, from the first query on.
    let admin = Admin::start(&config, &[], None).await;
    assert_eq!(
        admin.answers("www.geo.test").await,
        [format!("www.geo.test. 1 IN A {US}")]
    );
    let region = admin.region("eu-west").await;
    assert_eq!(region["state"], "maintenance");
    assert_eq!(region["override"]["reason"], "CHG-42");
    assert_eq!(region["override"]["who"], "alice");
    assert!(region["override"]["until"].is_string());
    let status = admin
        .expect(StatusCode::OK, "GET", "/v1/status", Value::Null)
        .await;
    assert_eq!(status["revision"].as_u64(), Some(revision));
    admin.clear("eu-west").await;
    admin.stop().await;
}

/// Serves `admin`'s API on a real loopback socket; the URL, and the sender that stops it.
async fn serve_socket(
    admin: &Admin,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = ApiState {
        control: Arc::clone(&admin.server) as Arc<dyn Control>,
        token: admin.token.clone(),
    };
    let task = tokio::spawn(api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    (url, stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_over_a_socket_reports_readiness_and_reloads() {
    // A monitor that hangs: nothing is probed for the first two seconds at least.
    let endpoint = Endpoint::start().await;
    endpoint.set(Mode::Hang);
    let monitor = format!(
        "[[regions.eu-west.monitor]]\nurl = \"http://{}/health\"\ninterval = \"5s\"\ntimeout = \"2s\"\n",
        endpoint.addr
    );
    let admin = Admin::start(&sections(&monitor, ""), &[], Some("tok")).await;
    let (url, stop, task) = serve_socket(&admin).await;
    let target = |token: Option<&str>| Target {
        url: url.clone(),
        token: token.map(str::to_string),
    };
    let client = Client::new(target(Some("tok")), "bob").unwrap();
    let health = client
        .call(http::Method::GET, "/healthz", &[], None)
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    match client.call(http::Method::GET, "/readyz", &[], None).await {
        Err(ClientError::Api {
            status: 503,
            code,
            message,
            ..
        }) => {
            assert_eq!(code, "not_ready");
            assert!(message.contains(&endpoint.addr.to_string()), "{message}");
        }
        other => panic!("ready before any probe: {other:?}"),
    }
    let anonymous = Client::new(target(None), "bob").unwrap();
    match anonymous
        .call(http::Method::GET, "/v1/status", &[], None)
        .await
    {
        Err(ClientError::Api {
            status: 401, code, ..
        }) => assert_eq!(code, "unauthorized"),
        other => panic!("no token, yet: {other:?}"),
    }

    // The actor header reaches the override.
    let body = json!({"action": "drain", "reason": "socket", "drain_period": "1s"});
    let changed = client
        .call(
            http::Method::PUT,
            "/v1/regions/us-east/override",
            &[],
            Some(&body),
        )
        .await
        .unwrap();
    assert_eq!(changed["region"]["override"]["who"], "bob");
    let explained = client
        .call(
            http::Method::GET,
            "/v1/explain",
            &[
                ("name", "www.geo.test"),
                ("type", "A"),
                ("ecs", "81.2.69.0/24"),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(explained["client"]["resolver"], "127.0.0.1");
    assert_eq!(explained["client"]["used"], "ecs");
    assert_eq!(
        explained["answer"][0],
        format!("www.geo.test. 1 IN A {EU}"),
        "us-east drains: the degraded TTL"
    );

    // Reload: fine, then a broken zone (422 with file:line), still serving.
    let reloaded = client
        .call(http::Method::POST, "/v1/reload", &[], None)
        .await
        .unwrap();
    assert_eq!(reloaded["zones"], 1);
    let zone = admin.server.zone_path("geo.test");
    let good = std::fs::read_to_string(&zone).unwrap();
    std::fs::write(&zone, format!("{good}broken IN A not-an-address\n")).unwrap();
    match client
        .call(http::Method::POST, "/v1/reload", &[], None)
        .await
    {
        Err(ClientError::Api {
            status: 422,
            code,
            body,
            ..
        }) => {
            assert_eq!(code, "reload_failed");
            let first = body["errors"][0].as_str().unwrap();
            assert!(first.contains("geo.test.zone:"), "{body:#}");
        }
        other => panic!("a broken zone reloaded: {other:?}"),
    }
    std::fs::write(&zone, good).unwrap();
    assert!(admin.answers("www.geo.test").await[0].contains("IN A"));

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the API stops")
        .unwrap()
        .unwrap();
    match client.call(http::Method::GET, "/healthz", &[], None).await {
        Err(ClientError::Unreachable { .. }) => {}
        other => panic!("still answering after shutdown: {other:?}"),
    }
    endpoint.set(Mode::Ok);
    admin.stop().await;
}

/// Runs the `meridian` binary with `args`; (exit code, stdout, stderr).
async fn meridian(args: Vec<String>) -> (i32, String, String) {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(&args)
            .env("USER", "carol")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_a_running_server() {
    let admin = Admin::start(&sections("", ""), &[], Some("cli-token")).await;
    let (url, stop, task) = serve_socket(&admin).await;
    let token_file = admin.server.dir.path().join("admin.token");
    std::fs::write(&token_file, "cli-token\n").unwrap();
    let with = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        all.extend([
            "--admin".to_string(),
            url.clone(),
            "--token-file".to_string(),
            token_file.display().to_string(),
        ]);
        all
    };

    let (code, out, err) = meridian(with(&["status"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("eu-west") && out.contains("us-east"), "{out}");
    assert!(out.contains("www.geo.test."), "{out}");

    let (code, out, err) = meridian(with(&[
        "drain",
        "eu-west",
        "--for",
        "1h",
        "--drain-period",
        "30s",
        "--reason",
        "CHG-9",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("eu-west: draining"), "{out}");
    assert!(out.contains("drain by carol"), "{out}");
    let region = admin.region("eu-west").await;
    assert_eq!(region["override"]["reason"], "CHG-9");
    assert_eq!(region["override"]["drain_period"], "30s");

    let (code, out, err) = meridian(with(&["status", "--json"])).await;
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["regions"][0]["state"], "draining");

    let (code, out, err) = meridian(with(&["undrain", "eu-west"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("eu-west: up"), "{out}");
    assert!(admin.region("eu-west").await["override"].is_null());

    // undrain does not lift another kind of override; clear does.
    let (code, _, err) = meridian(with(&["maintenance", "eu-west", "--reason", "patch"])).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = meridian(with(&["undrain", "eu-west"])).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("not draining") && err.contains("meridian clear"),
        "{err}"
    );
    let (code, _, err) = meridian(with(&["clear", "eu-west"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(admin.region("eu-west").await["override"].is_null());

    let (code, out, err) = meridian(with(&[
        "explain",
        "www.geo.test",
        "A",
        "--ecs",
        "81.2.69.0/24",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("www.geo.test. 2 IN A {EU}")), "{out}");
    assert!(out.contains("decision: regions [eu-west]"), "{out}");

    let (code, out, err) = meridian(with(&["drill", "list"])).await;
    assert_eq!((code, out.as_str()), (0, "no drills\n"), "{err}");

    // Failures: the server's message, exit code 1.
    let (code, out, err) = meridian(with(&["drain", "nowhere", "--reason", "x"])).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("unknown region \"nowhere\"") && err.contains("eu-west, us-east"),
        "{err}"
    );
    let (code, _, err) = meridian(with(&[
        "force-down",
        "eu-west",
        "--reason",
        "x",
        "--for",
        "soon",
    ]))
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("\"for\": \"soon\" is not a duration"), "{err}");
    let (code, _, err) = meridian(vec!["status".into(), "--admin".into(), url.clone()]).await;
    assert_eq!(code, 1);
    assert!(err.contains("Authorization: Bearer"), "{err}");
    let (code, _, err) = meridian(vec![
        "status".into(),
        "--admin".into(),
        "http://127.0.0.1:1".into(),
    ])
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach the admin API at http://127.0.0.1:1"),
        "{err}"
    );

    // --config: the address and token from [admin].
    let client_config = admin.server.dir.path().join("client.toml");
    std::fs::write(
        &client_config,
        format!(
            "[dns]\nlisten = [\"127.0.0.1:0\"]\nzones_dir = \"zones\"\n[admin]\nlisten = \"{}\"\n\
             token_file = \"admin.token\"\n",
            url.trim_start_matches("http://")
        ),
    )
    .unwrap();
    let (code, out, err) = meridian(vec![
        "force-up".into(),
        "us-east".into(),
        "--reason".into(),
        "via config".into(),
        "--config".into(),
        client_config.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("us-east: forced_up"), "{out}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the API stops")
        .unwrap()
        .unwrap();
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_the_admin_api_from_the_config_and_stops_cleanly() {
    use std::io::BufRead;

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    std::fs::write(dir.path().join("zones/geo.test.zone"), GEO_TEST).unwrap();
    std::fs::write(dir.path().join("admin.token"), "served-token\n").unwrap();
    let config = dir.path().join("meridian.toml");
    let admin = "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n";
    std::fs::write(
        &config,
        format!(
            "[dns]\nlisten = [\"127.0.0.1:0\"]\nzones_dir = \"zones\"\nudp_workers = 1\n{}",
            sections("", admin)
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(wait) {
            Ok(line) => line,
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no \"admin API listening\" line: {err}");
            }
        };
        if line.contains("admin API listening")
            && let Some(addr) = line
                .split_whitespace()
                .find_map(|word| word.strip_prefix("addr="))
        {
            break format!("http://{addr}");
        }
    };
    let token_file = dir.path().join("admin.token").display().to_string();
    let (code, out, err) = meridian(vec![
        "maintenance".into(),
        "eu-west".into(),
        "--reason".into(),
        "served".into(),
        "--admin".into(),
        url.clone(),
        "--token-file".into(),
        token_file.clone(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("eu-west: maintenance"), "{out}");
    let (code, _, err) = meridian(vec!["status".into(), "--admin".into(), url.clone()]).await;
    assert_eq!(code, 1, "no token: refused");
    assert!(err.contains("Authorization: Bearer"), "{err}");

    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve did not stop within 20 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.code(), Some(0));
    let (code, _, err) = meridian(vec![
        "status".into(),
        "--admin".into(),
        url,
        "--token-file".into(),
        token_file,
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the admin API"), "{err}");
}
