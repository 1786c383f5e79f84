//! The admin HTTP API: status, overrides, drills, explain, reload and metrics, as JSON over
//! HTTP/1.1 (axum), versioned under `/v1/`, and the operator dashboard at `/dashboard`.
//!
//! The API reaches the server through the [`Control`] trait, so [`router`] can be driven by
//! `tower::ServiceExt::oneshot` in tests without a socket, and [`serve`] takes an already-bound
//! listener and a shutdown signal.
//!
//! Conventions:
//!
//! - Every error is `{"code": "...", "message": "..."}` with the status of
//!   [`AdminError::status`] (400 for malformed requests, 401 without the right token, 404 for
//!   unknown names, 409 for conflicts, 422 for a reload that failed).
//! - A drill is refused (409 `override_in_force`) on a region with an operator override (see
//!   `Monitor::start_drill`).
//! - Times in responses are RFC 3339 UTC strings with milliseconds; durations are strings such
//!   as `"30s"` or `"1500ms"`.
//! - When a token is configured, every endpoint but `GET /healthz` needs
//!   `Authorization: Bearer TOKEN`.
//! - The header `X-Meridian-Actor` names who asks (default `api`); the monitor writes it into
//!   its audit log lines (target `meridian::audit`).
//! - A browser may not change anything from another site: a write whose `Origin` is not the
//!   API's own is refused (403 `cross_origin`). Without a token, a request must also name a
//!   loopback host (`Host: 127.0.0.1:8053`, `localhost`, `[::1]`), so a web page cannot reach
//!   the API through a name of its own that resolves to loopback (403 `bad_host`).
//! - The dashboard (`/dashboard` and its assets under `/dashboard/`) is static and holds no
//!   data, so it is served without a token; the page asks for the token when the API answers
//!   401 and sends it as `Authorization: Bearer` on every call it makes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AdminError;
use super::drill::{Drill, DrillMode, DrillState};
use super::explain::{Question, RegionFacts, explain};
use super::overrides::Action;
use super::site;
use crate::balancer::listener::RunningBalancer;
use crate::balancer::pool::Backend;
use crate::config::{Policy, parse_duration};
use crate::health::monitor::{
    FailbackError, Monitor, OverrideRequest, RegionControl, RegionReport, TargetReport,
    TransitionReport,
};
use crate::server::{ReloadSummary, RunningServer};
use crate::snapshot::{LoadError, Snapshot};
use crate::telemetry::{NO_REGION, escape};

/// What the API needs from a running server.
pub trait Control: Send + Sync + 'static {
    /// The snapshot being served now.
    fn snapshot(&self) -> Arc<Snapshot>;
    /// The health monitor, which holds the operator's overrides and drills.
    fn monitor(&self) -> &Monitor;
    /// Re-reads the config and every zone (blocking: call it off the async threads).
    fn reload(&self) -> Result<ReloadSummary, LoadError>;
    /// The running L7 balancers.
    fn balancers(&self) -> &[RunningBalancer] {
        &[]
    }
}

impl Control for RunningServer {
    fn snapshot(&self) -> Arc<Snapshot> {
        RunningServer::snapshot(self)
    }

    fn monitor(&self) -> &Monitor {
        RunningServer::monitor(self)
    }

    fn reload(&self) -> Result<ReloadSummary, LoadError> {
        RunningServer::reload(self)
    }

    fn balancers(&self) -> &[RunningBalancer] {
        RunningServer::balancers(self)
    }
}

/// The API's state: the server and the token requests must carry.
#[derive(Clone)]
pub struct ApiState {
    /// The server.
    pub control: Arc<dyn Control>,
    /// The bearer token; `None` lets every request through (loopback-only set-ups).
    pub token: Option<String>,
}

/// The header naming who makes a request.
pub const ACTOR_HEADER: &str = "x-meridian-actor";

/// Who a request is from when it does not say.
const DEFAULT_ACTOR: &str = "api";

/// Longest accepted actor name: it goes into every audit line.
const MAX_ACTOR_LEN: usize = 64;

/// The Prometheus text exposition format version we write.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The region states `meridian_region_state` has a series for.
pub const REGION_STATES: [&str; 6] = [
    "up",
    "down",
    "draining",
    "maintenance",
    "forced_up",
    "forced_down",
];

/// A token file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("{}: cannot read the admin token file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file holds nothing but white space.
    #[error("{}: the admin token file is empty; put a long random token in it", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads the bearer token from `path`: the file's content without surrounding white space.
pub fn read_token(path: &FsPath) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(token.to_string())
}

/// The API's routes over `state`.
pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/regions/{region}", get(region))
        .route(
            "/v1/regions/{region}/override",
            put(set_override).delete(clear_override),
        )
        .route("/v1/drills", post(start_drill).get(list_drills))
        .route("/v1/drills/{id}", get(drill))
        .route("/v1/drills/{id}/abort", post(abort_drill))
        .route("/v1/explain", get(explain_name))
        .route("/v1/reload", post(reload))
        .route("/v1/services/{name}/failback", post(failback))
        .route("/v1/answers", get(answers))
        .route("/v1/balancers", get(balancers))
        .route(
            "/v1/balancers/{balancer}/backends/{backend}/drain",
            post(drain_backend),
        )
        .route(
            "/v1/balancers/{balancer}/backends/{backend}/undrain",
            post(undrain_backend),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authorize));
    // Added after the layer, so they are not wrapped by it: liveness needs no token, and the
    // dashboard's static files hold no data (the page asks for the token itself).
    protected
        .route("/healthz", get(healthz))
        .route("/", get(to_dashboard))
        .route("/dashboard", get(dashboard_page))
        .route("/dashboard/", get(to_dashboard))
        .route("/dashboard/{asset}", get(dashboard_asset))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then lets requests in flight
/// finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// An error response: `{"code", "message"}` (plus `errors` for a failed reload).
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    status: StatusCode,
    /// A stable machine-readable code.
    code: &'static str,
    /// What went wrong, for people.
    message: String,
    /// Individual error lines (`file:line: message`), when there are several.
    errors: Vec<String>,
}

impl ApiError {
    /// An error with no detail lines.
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// A 400 `bad_request`.
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> ApiError {
        let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, err.code(), err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        /// The body as sent.
        #[derive(Serialize)]
        struct Body<'a> {
            /// Stable code.
            code: &'a str,
            /// For people.
            message: &'a str,
            /// Detail lines.
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            errors: &'a [String],
        }
        let mut response = json(
            self.status,
            &Body {
                code: self.code,
                message: &self.message,
                errors: &self.errors,
            },
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"meridian\""),
            );
        }
        response
    }
}

/// `value` as a JSON response with `status`, times and durations in human form.
fn json(status: StatusCode, value: &impl Serialize) -> Response {
    let mut value = match serde_json::to_value(value) {
        Ok(value) => value,
        Err(err) => {
            tracing::error!(%err, "cannot encode an admin API response");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"code\":\"internal\",\"message\":\"cannot encode the response\"}\n",
            )
                .into_response();
        }
    };
    humanize(&mut value);
    let mut body = serde_json::to_vec_pretty(&value).unwrap_or_default();
    body.push(b'\n');
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Rewrites what serde makes of `SystemTime` (`{"secs_since_epoch", "nanos_since_epoch"}`) into
/// RFC 3339 strings and of `Duration` (`{"secs", "nanos"}`) into `"30s"`-style strings,
/// everywhere in `value`. No other object of the API has exactly these keys.
pub fn humanize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.len() == 2 {
                let pair = |secs: &str, nanos: &str| {
                    let secs = map.get(secs)?.as_u64()?;
                    let nanos = u32::try_from(map.get(nanos)?.as_u64()?).ok()?;
                    Some(Duration::new(secs, nanos))
                };
                if let Some(since) = pair("secs_since_epoch", "nanos_since_epoch") {
                    *value = Value::String(format_time(UNIX_EPOCH + since));
                    return;
                }
                if let Some(duration) = pair("secs", "nanos") {
                    *value = Value::String(format_duration(duration));
                    return;
                }
            }
            map.values_mut().for_each(humanize);
        }
        Value::Array(items) => items.iter_mut().for_each(humanize),
        _ => {}
    }
}

/// `time` as RFC 3339 UTC with milliseconds, e.g. `2025-03-01T12:00:05.250Z`. Times before
/// 1970 show as the epoch.
pub fn format_time(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let (year, month, day) = civil_from_days(days);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Reads what [`format_time`] writes (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock = clock.splitn(3, ':').map(str::parse::<u64>);
    let (hour, minute, second) = (
        clock.next()?.ok()?,
        clock.next()?.ok()?,
        clock.next()?.ok()?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let nanos = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().take(9).collect();
        let scale = 10u32.pow(9 - u32::try_from(digits.len()).ok()?);
        digits.parse::<u32>().ok()? * scale
    };
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// `duration` as the config writes durations: `"2h30m"`, `"45s"`, `"1500ms"`.
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_string();
    }
    if duration.subsec_nanos() != 0 {
        return format!("{}ms", duration.as_millis());
    }
    let mut secs = duration.as_secs();
    let mut text = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            let _ = write!(text, "{}{unit}", secs / size);
            secs %= size;
        }
    }
    text
}

/// The (year, month, day) of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day count since 1970-01-01 of a civil date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Checks where the request comes from and the bearer token (when one is configured) before
/// the request goes on.
async fn authorize(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Err(refused) = check_origin(request.method(), request.headers(), state.token.is_none()) {
        return refused.into_response();
    }
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer);
        if !given.is_some_and(|given| same_token(given.as_bytes(), token.as_bytes())) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this endpoint needs the header Authorization: Bearer TOKEN, with the token \
                 from admin.token_file",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Refuses what a web page of another site could make a browser send (see [`site::check`]):
/// a write whose `Origin` is not this API's own address, and, when the API is `open` (no
/// token), any request that names a host other than a loopback one.
fn check_origin(method: &Method, headers: &HeaderMap, open: bool) -> Result<(), ApiError> {
    match site::check(method, headers, open) {
        Ok(()) => Ok(()),
        Err(site::Refusal::BadHost(host)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_host",
            format!(
                "Host {host:?} is not a loopback address: without admin.token_file the API \
                 answers only requests to 127.0.0.1, [::1] or localhost"
            ),
        )),
        Err(site::Refusal::CrossOrigin(origin)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            format!(
                "a {method} from the web page at {origin:?} is refused: changes are accepted only from \
                 the API's own origin (the dashboard) or from clients that send no Origin header"
            ),
        )),
    }
}

/// The token of an `Authorization: Bearer TOKEN` value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares two tokens in time that depends only on their lengths, not on where they differ.
/// The length is not secret enough to hide: it leaks through the comparison time (and is
/// acceptable to leak), while the content does not.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    let difference = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}

/// Who makes a request: the `X-Meridian-Actor` header, or `api`.
struct Actor(String);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Actor, ApiError> {
        let Some(value) = parts.headers.get(ACTOR_HEADER) else {
            return Ok(Actor(DEFAULT_ACTOR.to_string()));
        };
        let text = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|text| {
                !text.is_empty()
                    && text.len() <= MAX_ACTOR_LEN
                    && !text.chars().any(char::is_control)
            })
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{ACTOR_HEADER}: give a printable name of 1 to {MAX_ACTOR_LEN} characters"
                ))
            })?;
        Ok(Actor(text.to_string()))
    }
}

/// A JSON request body; malformed bodies are 400 in our error shape. The content type is not
/// checked, so `curl -d` works as is.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<JsonBody<T>, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("the request needs a JSON body"));
        }
        parse_body(&bytes).map(JsonBody)
    }
}

/// An optional JSON request body: an empty body is `T::default()`.
struct OptionalJsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<OptionalJsonBody<T>, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse_body(&bytes).map(OptionalJsonBody)
    }
}

/// Decodes a JSON body, saying where it is wrong.
fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request(format!("the JSON body is not valid: {err}")))
}

/// A path parameter; a malformed one is 400 in our error shape.
struct Param<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Param<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Param<T>, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Param(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Query parameters; malformed ones are 400 in our error shape.
struct QueryArgs<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<QueryArgs<T>, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryArgs(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// `GET /healthz`: the process is alive.
async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

/// The dashboard's page: markup only; its script fetches every figure from the API.
const DASHBOARD_HTML: &str = include_str!("dashboard/index.html");

/// The dashboard's other files, served under `/dashboard/`: name, content type, content.
const DASHBOARD_ASSETS: [(&str, &str, &str); 4] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/app.js"),
    ),
    (
        "world.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/world.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/style.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("dashboard/icon.svg"),
    ),
];

/// What the dashboard may load: its own files and its own API, nothing from elsewhere, no
/// inline script, and no framing by other sites.
const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// `GET /` and `GET /dashboard/`: to the dashboard.
async fn to_dashboard() -> Redirect {
    Redirect::to("/dashboard")
}

/// `GET /dashboard`: the operator dashboard's page.
async fn dashboard_page() -> Response {
    static_file("text/html; charset=utf-8", DASHBOARD_HTML)
}

/// `GET /dashboard/{asset}`: one of its scripts, its style sheet or its icon.
async fn dashboard_asset(Param(name): Param<String>) -> Result<Response, ApiError> {
    DASHBOARD_ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .map(|(_, content_type, body)| static_file(content_type, body))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("the dashboard has no file {name:?}"),
            )
        })
}

/// A static file of the dashboard, with headers that keep browsers from guessing its type,
/// sending referrers, caching a stale copy, or letting another site frame it.
fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

/// `GET /readyz`: every monitor has been probed once.
async fn readyz(State(state): State<ApiState>) -> Response {
    let monitor = state.control.monitor();
    if monitor.ready() {
        return json(StatusCode::OK, &serde_json::json!({ "ready": true }));
    }
    let waiting: Vec<String> = monitor
        .status()
        .into_iter()
        .flat_map(|region| {
            region
                .monitors
                .into_iter()
                .filter(|target| target.last_at.is_none())
                .map(move |target| format!("{} {}", region.name, target.url))
        })
        .collect();
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        format!(
            "the first probe round is not complete; waiting for: {}",
            if waiting.is_empty() {
                "a reload in progress".to_string()
            } else {
                waiting.join(", ")
            }
        ),
    )
    .into_response()
}

/// `GET /metrics`: the DNS counters and the control plane's gauges, Prometheus text format.
async fn metrics(State(state): State<ApiState>) -> Response {
    let snapshot = state.control.snapshot();
    let mut text = String::new();
    snapshot
        .telemetry
        .render(&snapshot.answer_series(), &mut text);
    render_gauges(state.control.monitor(), &mut text);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        text,
    )
        .into_response()
}

/// Renders the monitor's gauges: target up, region state, traffic share and drills.
fn render_gauges(monitor: &Monitor, out: &mut String) {
    let reports = monitor.status();
    let regions = monitor.regions();
    let book = monitor.book();
    let _ = writeln!(
        out,
        "# HELP meridian_monitor_up Whether a monitor target is up (1) or down (0)."
    );
    let _ = writeln!(out, "# TYPE meridian_monitor_up gauge");
    for region in &reports {
        for target in &region.monitors {
            let _ = writeln!(
                out,
                "meridian_monitor_up{{region=\"{}\",target=\"{}\"}} {}",
                escape(&region.name),
                escape(&target.url),
                u8::from(target.up)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP meridian_region_state The state of each region as the data plane uses it: 1 for \
         the current state, 0 for the others."
    );
    let _ = writeln!(out, "# TYPE meridian_region_state gauge");
    for region in &regions {
        let current = state_name(region);
        for state in REGION_STATES {
            let _ = writeln!(
                out,
                "meridian_region_state{{region=\"{}\",state=\"{state}\"}} {}",
                escape(&region.name),
                u8::from(state == current)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP meridian_region_traffic_factor The share of its normal traffic a region gets (a \
         drain ramps it to 0)."
    );
    let _ = writeln!(out, "# TYPE meridian_region_traffic_factor gauge");
    for region in &regions {
        let factor = if region.up { region.factor } else { 0.0 };
        let _ = writeln!(
            out,
            "meridian_region_traffic_factor{{region=\"{}\"}} {factor}",
            escape(&region.name)
        );
    }
    let _ = writeln!(
        out,
        "# HELP meridian_drill_active Whether a failover drill is running on the region."
    );
    let _ = writeln!(out, "# TYPE meridian_drill_active gauge");
    for region in &regions {
        let active = book
            .drills
            .iter()
            .any(|drill| drill.region == region.name && drill.state == DrillState::Running);
        let _ = writeln!(
            out,
            "meridian_drill_active{{region=\"{}\"}} {}",
            escape(&region.name),
            u8::from(active)
        );
    }
    let _ = writeln!(
        out,
        "# HELP meridian_admin_revision The revision of the operator's overrides and drills."
    );
    let _ = writeln!(out, "# TYPE meridian_admin_revision gauge");
    let _ = writeln!(out, "meridian_admin_revision {}", book.revision);
}

/// The state of a region as one word (one of [`REGION_STATES`]).
fn state_name(region: &RegionControl) -> &'static str {
    match region.active.as_ref().map(|active| active.action) {
        Some(Action::Drain) => "draining",
        Some(Action::Maintenance) => "maintenance",
        Some(Action::ForceUp) => "forced_up",
        Some(Action::ForceDown) => "forced_down",
        None if region.observed_up => "up",
        None => "down",
    }
}

/// A region as the API shows it: observation, override, effective status, monitors.
#[derive(Debug, Serialize)]
struct RegionView {
    /// Observation, override and effective status.
    #[serde(flatten)]
    control: RegionControl,
    /// One of [`REGION_STATES`].
    state: &'static str,
    /// When the monitors last changed their verdict on the region (absent: since start).
    observed_since: Option<SystemTime>,
    /// The region's recent transitions, oldest first.
    history: Vec<TransitionReport>,
    /// Its monitors, with their last results and histories.
    monitors: Vec<TargetReport>,
    /// The drill running on it, if any.
    drill: Option<u64>,
    /// Where it is, `[latitude, longitude]` in degrees, as configured.
    location: Option<(f64, f64)>,
}

/// Every region in region-id order, merged from the monitor's three views (each taken under
/// its own lock, so a change between them can show in one and not yet in another), with the
/// configured locations of `snapshot`.
fn region_views(monitor: &Monitor, snapshot: &Snapshot) -> (u64, Vec<RegionView>) {
    let reports = monitor.status();
    let book = monitor.book();
    let config = snapshot.config.as_deref();
    let views = monitor
        .regions()
        .into_iter()
        .map(|control| {
            let location = config
                .and_then(|config| config.regions.iter().find(|r| r.name == control.name))
                .and_then(|region| region.location);
            view_of(control, &reports, &book.drills, location)
        })
        .collect();
    (book.revision, views)
}

/// One region's view.
fn view_of(
    control: RegionControl,
    reports: &[RegionReport],
    drills: &[Drill],
    location: Option<(f64, f64)>,
) -> RegionView {
    let report = reports.iter().find(|report| report.name == control.name);
    let drill = drills
        .iter()
        .find(|drill| drill.region == control.name && drill.state == DrillState::Running)
        .map(|drill| drill.id);
    RegionView {
        location,
        state: state_name(&control),
        observed_since: report.and_then(|report| report.since),
        history: report
            .map(|report| report.history.clone())
            .unwrap_or_default(),
        monitors: report
            .map(|report| report.monitors.clone())
            .unwrap_or_default(),
        drill,
        control,
    }
}

/// The view of `name`, or 404 naming the known regions.
fn one_region(control: &dyn Control, name: &str) -> Result<(u64, RegionView), ApiError> {
    let (revision, views) = region_views(control.monitor(), &control.snapshot());
    let known: Vec<String> = views.iter().map(|view| view.control.name.clone()).collect();
    views
        .into_iter()
        .find(|view| view.control.name == name)
        .map(|view| (revision, view))
        .ok_or_else(|| {
            AdminError::UnknownRegion {
                name: name.to_string(),
                known,
            }
            .into()
        })
}

/// A service as the status shows it.
#[derive(Debug, Serialize)]
struct ServiceView {
    /// The name, absolute.
    name: String,
    /// `geo`, `weighted` or `failover`.
    policy: &'static str,
    /// The map ordering its regions, if any.
    map: Option<String>,
    /// The regions it answers from.
    regions: Vec<String>,
    /// TTL of its answers.
    ttl: u32,
    /// TTL while degraded.
    ttl_degraded: u32,
    /// Held on standby until an operator clears it (manual failback).
    held: bool,
    /// Weight per region (weighted services only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    weights: BTreeMap<String, u32>,
    /// Tiers of regions, primaries first (failover services only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tiers: Vec<Vec<String>>,
    /// What it answers now (type A) for each entry of its map (or, without a map, for any
    /// client), decided by the data plane's own policy code.
    answers: Vec<LocationAnswer>,
}

/// A service's current answer for the clients of one map entry.
#[derive(Debug, Serialize)]
struct LocationAnswer {
    /// `default`, a location path such as `EU/GB`, `AS64500`, or `any` for services without a
    /// map.
    location: String,
    /// The regions answering, best first.
    regions: Vec<String>,
    /// Why, as the policy names it.
    reason: &'static str,
    /// Whether the answer differs between clients of the entry (weighted, spill, drains): the
    /// regions shown are those of one client.
    varies_by_client: bool,
}

/// What `service` answers now for each entry of its map.
fn location_answers(
    snapshot: &Snapshot,
    config: &crate::config::Config,
    index: usize,
) -> Vec<LocationAnswer> {
    let Some(service) = snapshot.services.values().find(|s| s.plan.index == index) else {
        return Vec::new();
    };
    let service_config = &config.services[index];
    let mut entries: Vec<(String, Vec<crate::config::RegionId>)> = Vec::new();
    match service_config.map.and_then(|map| config.maps.get(map)) {
        Some(map) => {
            entries.push(("default".to_string(), map.default.clone()));
            for (path, regions) in &map.locations {
                entries.push((path.to_string(), regions.clone()));
            }
            for (asn, regions) in &map.asn {
                entries.push((format!("AS{asn}"), regions.clone()));
            }
        }
        None => entries.push(("any".to_string(), Vec::new())),
    }
    let health = snapshot.health.load();
    entries
        .into_iter()
        .map(|(location, candidates)| {
            let decision =
                crate::policy::decide(&service.plan, &service.records, &health, 1, &candidates, 0);
            let regions = match decision.outcome {
                crate::policy::Outcome::Regions(picks) => picks
                    .as_slice()
                    .iter()
                    .filter_map(|&region| snapshot.regions.get(usize::from(region)).cloned())
                    .collect(),
                _ => Vec::new(),
            };
            LocationAnswer {
                location,
                regions,
                reason: decision.reason.label(),
                varies_by_client: decision.hashed,
            }
        })
        .collect()
}

/// The services of `snapshot`, with their holds.
fn service_views(snapshot: &Snapshot, held: &[String]) -> Vec<ServiceView> {
    let Some(config) = snapshot.config.as_deref() else {
        return Vec::new();
    };
    config
        .services
        .iter()
        .enumerate()
        .map(|(index, service)| {
            let name = service.name.to_string();
            ServiceView {
                answers: location_answers(snapshot, config, index),
                policy: match service.policy {
                    Policy::Geo { .. } => "geo",
                    Policy::Weighted { .. } => "weighted",
                    Policy::Failover { .. } => "failover",
                },
                map: service
                    .map
                    .and_then(|map| config.maps.get(map))
                    .map(|map| map.name.clone()),
                regions: service
                    .answers
                    .keys()
                    .filter_map(|&region| snapshot.regions.get(usize::from(region)).cloned())
                    .collect(),
                ttl: service.ttl,
                ttl_degraded: service.ttl_degraded,
                held: held.contains(&name),
                weights: match &service.policy {
                    Policy::Weighted { weights, .. } => weights
                        .iter()
                        .filter_map(|(&region, &weight)| {
                            Some((snapshot.regions.get(usize::from(region))?.clone(), weight))
                        })
                        .collect(),
                    _ => BTreeMap::new(),
                },
                tiers: match &service.policy {
                    Policy::Failover { tiers, .. } => tiers
                        .iter()
                        .map(|tier| {
                            tier.iter()
                                .filter_map(|&region| {
                                    snapshot.regions.get(usize::from(region)).cloned()
                                })
                                .collect()
                        })
                        .collect(),
                    _ => Vec::new(),
                },
                name,
            }
        })
        .collect()
}

/// `GET /v1/status`.
async fn status(State(state): State<ApiState>) -> Response {
    /// The body.
    #[derive(Serialize)]
    struct Status {
        /// The revision to send back with a change.
        revision: u64,
        /// Whether every monitor has been probed once.
        ready: bool,
        /// Every region.
        regions: Vec<RegionView>,
        /// Every service.
        services: Vec<ServiceView>,
        /// Ids of the drills running.
        drills_running: Vec<u64>,
    }
    let monitor = state.control.monitor();
    let snapshot = state.control.snapshot();
    let (revision, regions) = region_views(monitor, &snapshot);
    let held = monitor.held();
    let drills_running = regions.iter().filter_map(|view| view.drill).collect();
    json(
        StatusCode::OK,
        &Status {
            revision,
            ready: monitor.ready(),
            regions,
            services: service_views(&snapshot, &held),
            drills_running,
        },
    )
}

/// The body of `GET /v1/answers`.
#[derive(Debug, Serialize)]
struct AnswerCounts {
    /// When the counters were read.
    at: SystemTime,
    /// Every service, in config order.
    services: Vec<ServiceAnswers>,
}

/// The GSLB answers one service has given since the server started.
#[derive(Debug, Serialize)]
struct ServiceAnswers {
    /// The name, absolute.
    name: String,
    /// Answers over every region, and those without one.
    total: u64,
    /// Per region in region-id order, then `none` (fallback, NODATA and SERVFAIL answers).
    regions: Vec<RegionAnswers>,
}

/// Answers that named one region.
#[derive(Debug, Serialize)]
struct RegionAnswers {
    /// The region, or `none`.
    region: String,
    /// Answers since start (they carry on across reloads).
    answers: u64,
}

/// The cumulative answer counters of every service of `snapshot`; a client takes the
/// difference of two readings for the current shares.
fn answer_counts(snapshot: &Snapshot) -> Vec<ServiceAnswers> {
    let mut services: Vec<_> = snapshot.services.values().collect();
    services.sort_by_key(|service| service.plan.index);
    services
        .into_iter()
        .map(|service| {
            let regions: Vec<RegionAnswers> = service
                .counters
                .iter()
                .enumerate()
                .map(|(index, counters)| RegionAnswers {
                    region: snapshot
                        .regions
                        .get(index)
                        .cloned()
                        .unwrap_or_else(|| NO_REGION.to_string()),
                    answers: counters.total(),
                })
                .collect();
            ServiceAnswers {
                name: snapshot
                    .service_names
                    .get(service.plan.index)
                    .cloned()
                    .unwrap_or_default(),
                total: regions.iter().map(|region| region.answers).sum(),
                regions,
            }
        })
        .collect()
}

/// `GET /v1/answers`: GSLB answers per service and region since start.
async fn answers(State(state): State<ApiState>) -> Response {
    let snapshot = state.control.snapshot();
    json(
        StatusCode::OK,
        &AnswerCounts {
            at: SystemTime::now(),
            services: answer_counts(&snapshot),
        },
    )
}

/// `GET /v1/regions/{region}`.
async fn region(
    State(state): State<ApiState>,
    Param(name): Param<String>,
) -> Result<Response, ApiError> {
    let (revision, view) = one_region(state.control.as_ref(), &name)?;
    Ok(json(
        StatusCode::OK,
        &Changed {
            revision,
            region: view,
        },
    ))
}

/// A change's result: the new revision and the region as it now is.
#[derive(Serialize)]
struct Changed {
    /// The book revision after the change.
    revision: u64,
    /// The region.
    region: RegionView,
}

/// The body of `PUT /v1/regions/{region}/override`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    /// `drain`, `maintenance`, `force_up` or `force_down`.
    action: String,
    /// Why; required.
    reason: Option<String>,
    /// How long it lasts (`"2h"`); absent until cleared.
    #[serde(rename = "for")]
    duration: Option<String>,
    /// For drains: how long the ramp to zero takes.
    drain_period: Option<String>,
    /// The revision the caller saw.
    revision: Option<u64>,
}

/// The body of `DELETE /v1/regions/{region}/override` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearBody {
    /// The revision the caller saw.
    revision: Option<u64>,
}

/// Reads the duration in field `field`.
fn duration_field(field: &str, text: &str) -> Result<Duration, ApiError> {
    parse_duration(text).map_err(|err| ApiError::bad_request(format!("\"{field}\": {err}")))
}

/// The non-blank reason of a request.
fn reason_field(reason: Option<String>) -> Result<String, ApiError> {
    reason
        .map(|reason| reason.trim().to_string())
        .filter(|reason| !reason.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "\"reason\" is required: say why (a change ticket, a sentence); it goes into the \
                 audit log",
            )
        })
}

/// `PUT /v1/regions/{region}/override`.
async fn set_override(
    State(state): State<ApiState>,
    Actor(who): Actor,
    Param(name): Param<String>,
    JsonBody(body): JsonBody<OverrideBody>,
) -> Result<Response, ApiError> {
    let action = Action::parse(&body.action).ok_or_else(|| {
        ApiError::bad_request(format!(
            "\"action\": {:?} is not an action (use drain, maintenance, force_up or force_down)",
            body.action
        ))
    })?;
    let duration = body
        .duration
        .as_deref()
        .map(|text| duration_field("for", text))
        .transpose()?;
    if duration.is_some_and(|duration| duration.is_zero()) {
        return Err(ApiError::bad_request(
            "\"for\": an override needs a duration above zero (leave it out to keep the \
             override until cleared)",
        ));
    }
    let drain_period = body
        .drain_period
        .as_deref()
        .map(|text| duration_field("drain_period", text))
        .transpose()?;
    if drain_period.is_some() && action != Action::Drain {
        return Err(ApiError::bad_request(format!(
            "\"drain_period\" applies to action drain only, not {}",
            action.name()
        )));
    }
    let request = OverrideRequest {
        action,
        reason: reason_field(body.reason)?,
        who,
        duration,
        drain_period,
        revision: body.revision,
    };
    let monitor = state.control.monitor();
    let revision = monitor.set_override(&name, request)?;
    let (_, view) = one_region(state.control.as_ref(), &name)?;
    Ok(json(
        StatusCode::OK,
        &Changed {
            revision,
            region: view,
        },
    ))
}

/// `DELETE /v1/regions/{region}/override`.
async fn clear_override(
    State(state): State<ApiState>,
    Actor(who): Actor,
    Param(name): Param<String>,
    OptionalJsonBody(body): OptionalJsonBody<ClearBody>,
) -> Result<Response, ApiError> {
    let monitor = state.control.monitor();
    let revision = monitor.clear_override(&name, &who, body.revision)?;
    let (_, view) = one_region(state.control.as_ref(), &name)?;
    Ok(json(
        StatusCode::OK,
        &Changed {
            revision,
            region: view,
        },
    ))
}

/// The body of `POST /v1/drills`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillBody {
    /// The region to drill.
    region: String,
    /// `fail` or `drain`.
    mode: String,
    /// How long it runs (`"15m"`).
    duration: String,
    /// Why; required.
    reason: Option<String>,
    /// Run even when the other regions' capacity looks too small.
    #[serde(default)]
    force: bool,
    /// The revision the caller saw.
    revision: Option<u64>,
}

/// A drill with the figures measured from its timeline.
#[derive(Debug, Serialize)]
struct DrillView {
    /// The drill and its timeline.
    #[serde(flatten)]
    drill: Drill,
    /// What was measured.
    measured: Measured,
}

/// A drill's figures, in seconds.
#[derive(Debug, Serialize)]
struct Measured {
    /// From the start to the first sample in which only other regions answered.
    first_answer_without_region_s: Option<f64>,
    /// From the start to the TTL horizon (the region out, plus its longest TTL).
    ttl_horizon_s: Option<f64>,
    /// From the rollback to the first sample in which the region answered again.
    first_answer_with_region_s: Option<f64>,
}

impl From<Drill> for DrillView {
    fn from(drill: Drill) -> DrillView {
        let between = |from: Option<SystemTime>, to: Option<SystemTime>| {
            Some(to?.duration_since(from?).unwrap_or_default().as_secs_f64())
        };
        let measured = Measured {
            first_answer_without_region_s: between(
                Some(drill.started),
                drill.at("first_answer_without_region"),
            ),
            ttl_horizon_s: between(Some(drill.started), drill.ttl_horizon),
            first_answer_with_region_s: between(
                drill.rolled_back,
                drill.at("first_answer_with_region"),
            ),
        };
        DrillView { drill, measured }
    }
}

/// `POST /v1/drills`.
async fn start_drill(
    State(state): State<ApiState>,
    Actor(who): Actor,
    JsonBody(body): JsonBody<DrillBody>,
) -> Result<Response, ApiError> {
    let mode = DrillMode::parse(&body.mode).ok_or_else(|| {
        ApiError::bad_request(format!(
            "\"mode\": {:?} is not a drill mode (use fail or drain)",
            body.mode
        ))
    })?;
    let duration = duration_field("duration", &body.duration)?;
    let reason = reason_field(body.reason)?;
    let monitor = state.control.monitor();
    let drill = monitor.start_drill(
        &body.region,
        mode,
        duration,
        &reason,
        &who,
        body.force,
        body.revision,
    )?;
    Ok(json(StatusCode::CREATED, &DrillView::from(drill)))
}

/// `GET /v1/drills`: every kept drill, oldest first.
async fn list_drills(State(state): State<ApiState>) -> Response {
    /// The body.
    #[derive(Serialize)]
    struct Drills {
        /// The book revision.
        revision: u64,
        /// The drills.
        drills: Vec<DrillView>,
    }
    let book = state.control.monitor().book();
    json(
        StatusCode::OK,
        &Drills {
            revision: book.revision,
            drills: book.drills.into_iter().map(DrillView::from).collect(),
        },
    )
}

/// Reads a drill id from the path.
fn drill_id(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("drill id {text:?} is not a number")))
}

/// `GET /v1/drills/{id}`: the report.
async fn drill(
    State(state): State<ApiState>,
    Param(id): Param<String>,
) -> Result<Response, ApiError> {
    let drill = state.control.monitor().drill(drill_id(&id)?)?;
    Ok(json(StatusCode::OK, &DrillView::from(drill)))
}

/// `POST /v1/drills/{id}/abort`.
async fn abort_drill(
    State(state): State<ApiState>,
    Actor(who): Actor,
    Param(id): Param<String>,
) -> Result<Response, ApiError> {
    let drill = state.control.monitor().abort_drill(drill_id(&id)?, &who)?;
    Ok(json(StatusCode::OK, &DrillView::from(drill)))
}

/// The query of `GET /v1/explain`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainArgs {
    /// The name asked.
    name: Option<String>,
    /// The query type: a mnemonic (`A`), `TYPE65`, or a number.
    #[serde(rename = "type")]
    qtype: Option<String>,
    /// The resolver's address.
    client: Option<String>,
    /// The client subnet (`81.2.69.0/24`).
    ecs: Option<String>,
}

/// Reads a query type: `A`, `aaaa`, `TYPE65` or `65`.
fn parse_qtype(text: &str) -> Option<u16> {
    use std::str::FromStr;
    if let Ok(number) = text.parse::<u16>() {
        return Some(number);
    }
    let upper = text.to_ascii_uppercase();
    if let Some(number) = upper.strip_prefix("TYPE") {
        return number.parse().ok();
    }
    match hickory_proto::rr::RecordType::from_str(&upper) {
        Ok(hickory_proto::rr::RecordType::Unknown(_)) | Err(_) => None,
        Ok(known) => Some(u16::from(known)),
    }
}

/// `GET /v1/explain?name=...&type=...&client=...&ecs=...`.
async fn explain_name(
    State(state): State<ApiState>,
    QueryArgs(args): QueryArgs<ExplainArgs>,
) -> Result<Response, ApiError> {
    let name = args
        .name
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("\"name\" is required (e.g. name=www.example.com)"))?;
    if hickory_proto::rr::Name::from_ascii(name.trim()).is_err() {
        return Err(ApiError::bad_request(format!(
            "\"name\": {name:?} is not a domain name"
        )));
    }
    let qtype_text = args.qtype.as_deref().unwrap_or("A");
    let qtype = parse_qtype(qtype_text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "\"type\": {qtype_text:?} is not a record type (write e.g. A, AAAA, TXT or TYPE65)"
        ))
    })?;
    let ecs = args
        .ecs
        .as_deref()
        .map(|text| {
            text.trim().parse::<IpNet>().map_err(|_| {
                ApiError::bad_request(format!(
                    "\"ecs\": {text:?} is not a subnet (write e.g. 81.2.69.0/24)"
                ))
            })
        })
        .transpose()?;
    let resolver = match (args.client.as_deref(), ecs) {
        (Some(text), _) => text.trim().parse::<IpAddr>().map_err(|_| {
            ApiError::bad_request(format!(
                "\"client\": {text:?} is not an IP address (write e.g. 81.2.69.142)"
            ))
        })?,
        (None, Some(_)) => IpAddr::from([127, 0, 0, 1]),
        (None, None) => {
            return Err(ApiError::bad_request(
                "give \"client\" (the resolver's address), \"ecs\" (a client subnet), or both",
            ));
        }
    };
    let monitor = state.control.monitor();
    let snapshot = state.control.snapshot();
    let facts: Vec<RegionFacts> = monitor
        .regions()
        .into_iter()
        .map(|region| RegionFacts {
            observed_up: region.observed_up,
            active: region.active,
        })
        .collect();
    let question = Question {
        name: name.trim().to_string(),
        qtype,
        resolver,
        ecs,
    };
    let explanation = explain(&snapshot, &facts, &question);
    Ok(json(StatusCode::OK, &explanation))
}

/// `POST /v1/reload`: re-reads the config and zones on a blocking thread.
async fn reload(State(state): State<ApiState>, Actor(who): Actor) -> Result<Response, ApiError> {
    /// The body.
    #[derive(Serialize)]
    struct Reloaded {
        /// Zones now served.
        zones: usize,
        /// Warnings about the new data.
        warnings: Vec<String>,
    }
    let control = Arc::clone(&state.control);
    let result = tokio::task::spawn_blocking(move || control.reload())
        .await
        .map_err(|err| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the reload did not finish: {err}"),
            )
        })?;
    match result {
        Ok(summary) => {
            tracing::info!(target: "meridian::audit", %who, zones = summary.zones, "reloaded");
            Ok(json(
                StatusCode::OK,
                &Reloaded {
                    zones: summary.zones,
                    warnings: summary.warnings,
                },
            ))
        }
        Err(err) => {
            let lines = err.lines();
            tracing::warn!(target: "meridian::audit", %who, errors = lines.len(), "reload failed; still serving the previous data");
            Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "reload_failed",
                message: format!(
                    "reload failed; still serving the previous data: {}",
                    lines.join("; ")
                ),
                errors: lines,
            })
        }
    }
}

/// `POST /v1/services/{name}/failback`: lets a manual-failback service return to its primaries.
async fn failback(
    State(state): State<ApiState>,
    Actor(who): Actor,
    Param(name): Param<String>,
) -> Result<Response, ApiError> {
    /// The body.
    #[derive(Serialize)]
    struct FailedBack {
        /// The service.
        service: String,
        /// Whether it was held on standby.
        was_held: bool,
    }
    let was_held = state
        .control
        .monitor()
        .clear_failover(&name)
        .map_err(|err| match err {
            FailbackError::UnknownService(name) => AdminError::UnknownService(name),
            FailbackError::NotManual(name) => AdminError::NotManual(name),
        })?;
    tracing::info!(target: "meridian::audit", %who, service = %name, was_held, "manual failback cleared");
    Ok(json(
        StatusCode::OK,
        &FailedBack {
            service: name,
            was_held,
        },
    ))
}

/// One backend as `GET /v1/balancers` shows it.
#[derive(Serialize)]
struct BackendView {
    /// Its address.
    addr: String,
    /// Its configured weight in this set.
    weight: u32,
    /// `up`, `down` (active checks), `ejected` (outlier detection) or `draining` (operator).
    state: &'static str,
    /// Whether the operator lets it take new requests (not drained).
    enabled: bool,
    /// Whether the active checks see it up.
    healthy: bool,
    /// Whether outlier detection has it ejected now.
    ejected: bool,
    /// Requests in flight to it.
    in_flight: u32,
    /// Requests sent to it since it was configured.
    requests: u64,
    /// Requests that failed at it.
    failures: u64,
}

/// `GET /v1/balancers`: every L7 balancer, its health and its backends by set.
async fn balancers(State(state): State<ApiState>) -> Response {
    /// One backend set.
    #[derive(Serialize)]
    struct SetView {
        /// The set's name (`default`: the balancer's own `backends`).
        name: String,
        /// Its backends.
        backends: Vec<BackendView>,
    }
    /// One balancer.
    #[derive(Serialize)]
    struct BalancerView {
        /// Its name.
        name: String,
        /// The address it serves.
        listen: String,
        /// Whether its pool has `min_healthy` backends eligible.
        ok: bool,
        /// Default-set backends eligible, and in all.
        healthy: usize,
        /// Default-set backends.
        total: usize,
        /// Requests in flight through it.
        in_flight: u64,
        /// Requests since start.
        requests: u64,
        /// Smoothed response-header latency.
        latency_ms: f64,
        /// Its backend sets.
        sets: Vec<SetView>,
    }
    /// The body.
    #[derive(Serialize)]
    struct Balancers {
        /// Every balancer.
        balancers: Vec<BalancerView>,
    }
    let views = state
        .control
        .balancers()
        .iter()
        .map(|balancer| {
            let health = balancer.health();
            let topology = balancer.pool().topology();
            let sets = topology
                .sets
                .iter()
                .map(|set| SetView {
                    name: set.name().to_string(),
                    backends: set
                        .members()
                        .iter()
                        .zip(set.weights())
                        .map(|(backend, weight)| backend_view(backend, weight.get()))
                        .collect(),
                })
                .collect();
            BalancerView {
                name: balancer.name().to_string(),
                listen: balancer.local_addr().to_string(),
                ok: health.ok,
                healthy: health.healthy,
                total: health.total,
                in_flight: health.in_flight,
                requests: health.requests,
                latency_ms: health.latency_ms,
                sets,
            }
        })
        .collect();
    json(StatusCode::OK, &Balancers { balancers: views })
}

/// How `GET /v1/balancers` shows `backend`, of `weight` in its set.
fn backend_view(backend: &Backend, weight: u32) -> BackendView {
    let enabled = backend.is_enabled();
    let healthy = backend.is_healthy();
    let ejected = backend.is_ejected_now();
    let (requests, failures) = backend.counts();
    BackendView {
        addr: backend.addr().to_string(),
        weight,
        state: if !enabled {
            "draining"
        } else if ejected {
            "ejected"
        } else if !healthy {
            "down"
        } else {
            "up"
        },
        enabled,
        healthy,
        ejected,
        in_flight: backend.outstanding(),
        requests,
        failures,
    }
}

/// `POST /v1/balancers/{balancer}/backends/{backend}/drain`: no new requests to the backend;
/// those in flight get the balancer's `drain_timeout`.
async fn drain_backend(
    State(state): State<ApiState>,
    Actor(who): Actor,
    Param((balancer, backend)): Param<(String, String)>,
) -> Result<Response, ApiError> {
    set_backend_drain(&state, &who, &balancer, &backend, true)
}

/// `POST /v1/balancers/{balancer}/backends/{backend}/undrain`: the backend takes new requests
/// again, under slow start.
async fn undrain_backend(
    State(state): State<ApiState>,
    Actor(who): Actor,
    Param((balancer, backend)): Param<(String, String)>,
) -> Result<Response, ApiError> {
    set_backend_drain(&state, &who, &balancer, &backend, false)
}

/// Drains (`drain`) or undrains the backend at `addr` of the balancer `name`, for `who`.
fn set_backend_drain(
    state: &ApiState,
    who: &str,
    name: &str,
    addr: &str,
    drain: bool,
) -> Result<Response, ApiError> {
    /// The body.
    #[derive(Serialize)]
    struct Changed {
        /// The balancer.
        balancer: String,
        /// The backend, as it is now.
        backend: BackendView,
        /// Whether this request changed it (`false`: it already was so).
        changed: bool,
    }
    let balancers = state.control.balancers();
    let Some(balancer) = balancers.iter().find(|balancer| balancer.name() == name) else {
        return Err(AdminError::UnknownBalancer {
            name: name.to_string(),
            known: balancers
                .iter()
                .map(|balancer| balancer.name().to_string())
                .collect(),
        }
        .into());
    };
    let parsed: std::net::SocketAddr = addr.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{addr:?} is not a backend address: write IP:PORT, e.g. 10.1.0.11:8080 or [2001:db8::11]:8080"
        ))
    })?;
    let unknown = || AdminError::UnknownBackend {
        balancer: name.to_string(),
        backend: parsed.to_string(),
    };
    let backend = balancer.pool().backend(parsed).ok_or_else(unknown)?;
    let changed = backend.is_enabled() == drain;
    let known = if drain {
        balancer.drain(parsed)
    } else {
        balancer.undrain(parsed)
    };
    if !known {
        return Err(unknown().into());
    }
    state
        .control
        .monitor()
        .record_backend_drain(name, parsed, drain);
    let action = if drain { "drained" } else { "undrained" };
    tracing::info!(target: "meridian::audit", %who, balancer = %name, backend = %parsed, changed, "backend {action}");
    let weight = balancer
        .pool()
        .topology()
        .sets
        .iter()
        .find_map(|set| {
            set.members()
                .iter()
                .position(|member| member.addr() == parsed)
                .map(|at| set.weights()[at].get())
        })
        .unwrap_or(1);
    Ok(json(
        StatusCode::OK,
        &Changed {
            balancer: name.to_string(),
            backend: backend_view(&backend, weight),
            changed,
        },
    ))
}

/// Any other path.
async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no endpoint {method} {}", uri.path()),
    )
}

/// A known path with another method.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_content_and_length() {
        assert!(same_token(b"s3cret", b"s3cret"));
        assert!(!same_token(b"s3cres", b"s3cret"));
        assert!(!same_token(b"s3cre", b"s3cret"));
        assert!(!same_token(b"", b"s3cret"));
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }

    #[test]
    fn token_files_are_trimmed_and_must_hold_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, "  s3cret\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), "s3cret");
        std::fs::write(&path, " \n").unwrap();
        let empty = read_token(&path).unwrap_err().to_string();
        assert!(
            empty.starts_with(&format!("{}: ", path.display())) && empty.contains("is empty"),
            "{empty}"
        );
        let missing = read_token(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("nope: cannot read the admin token file"),
            "{missing}"
        );
    }

    #[test]
    fn times_round_trip_through_rfc3339() {
        let at = UNIX_EPOCH + Duration::from_millis(1_709_294_405_250);
        assert_eq!(format_time(at), "2024-03-01T12:00:05.250Z");
        assert_eq!(parse_time("2024-03-01T12:00:05.250Z"), Some(at));
        assert_eq!(
            parse_time("2024-03-01T12:00:05Z"),
            Some(at - Duration::from_millis(250))
        );
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_time(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        for secs in [0u64, 59, 86_399, 86_400, 951_868_799, 4_102_444_800] {
            let time = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_time(&format_time(time)), Some(time), "{secs}");
        }
        assert_eq!(parse_time("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn durations_print_as_the_config_writes_them() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        for text in ["30s", "1h30m", "1500ms", "1d2h"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn serde_times_and_durations_become_strings() {
        let mut value = serde_json::json!({
            "since": UNIX_EPOCH + Duration::from_secs(86_400),
            "period": Duration::from_secs(30),
            "list": [{"secs": 1, "nanos": 500_000_000}],
            "other": {"secs": 1, "nanos": 2, "more": 3},
        });
        humanize(&mut value);
        assert_eq!(value["since"], "1970-01-02T00:00:00.000Z");
        assert_eq!(value["period"], "30s");
        assert_eq!(value["list"][0], "1500ms");
        assert_eq!(value["other"]["more"], 3, "other objects are left alone");
    }

    /// A server's control side without sockets: a loaded snapshot and its monitor.
    struct Fixture {
        /// The served snapshot.
        cell: Arc<arc_swap::ArcSwap<Snapshot>>,
        /// The monitor publishing into it.
        monitor: Monitor,
        /// Holds the config and zone.
        _dir: tempfile::TempDir,
    }

    impl Control for Fixture {
        fn snapshot(&self) -> Arc<Snapshot> {
            self.cell.load_full()
        }

        fn monitor(&self) -> &Monitor {
            &self.monitor
        }

        fn reload(&self) -> Result<ReloadSummary, LoadError> {
            let path = self._dir.path().join("meridian.toml");
            crate::snapshot::load(&path).map(|_| ReloadSummary {
                zones: 1,
                warnings: Vec::new(),
            })
        }
    }

    /// Three regions (two with a location), a geo, a weighted and a failover service; no
    /// monitors, so every region is up from the start. Must run inside a Tokio runtime.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("zones")).unwrap();
        std::fs::write(
            dir.path().join("zones/example.test.zone"),
            "$ORIGIN example.test.\n$TTL 300\n@ SOA ns hostmaster 1 7200 900 1209600 60\n\
             @ NS ns\nns A 192.0.2.1\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("meridian.toml"),
            r#"
[dns]
listen = ["127.0.0.1:0"]
zones_dir = "zones"

[regions.ap-southeast]
[regions.eu-west]
location = [53.35, -6.26]
[regions.us-east]
location = [39.04, -77.49]

[maps.world]
default = ["eu-west", "us-east", "ap-southeast"]

[services."www.example.test"]
map = "world"
answers.us-east = ["192.0.2.10"]
answers.eu-west = ["192.0.2.20"]
answers.ap-southeast = ["192.0.2.30"]

[services."api.example.test"]
policy = "weighted"
weights = { us-east = 3, eu-west = 1 }
answers.us-east = ["192.0.2.11"]
answers.eu-west = ["192.0.2.21"]

[services."db.example.test"]
policy = "failover"
tiers = [["eu-west", "us-east"], ["ap-southeast"]]
answers.us-east = ["192.0.2.12"]
answers.eu-west = ["192.0.2.22"]
answers.ap-southeast = ["192.0.2.32"]
"#,
        )
        .unwrap();
        let loaded = crate::snapshot::load(&dir.path().join("meridian.toml")).unwrap();
        let cell = Arc::new(arc_swap::ArcSwap::from_pointee(loaded.snapshot));
        let monitor = Monitor::start(&loaded.config, Arc::clone(&cell)).unwrap();
        Fixture {
            cell,
            monitor,
            _dir: dir,
        }
    }

    /// Sends `method path` with `headers` to a router over `fixture`, protected by `token`;
    /// the status, the headers and the body.
    async fn send(
        fixture: &Arc<Fixture>,
        token: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let router = router(ApiState {
            control: Arc::clone(fixture) as Arc<dyn Control>,
            token: token.map(str::to_string),
        });
        let mut request = axum::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router
            .oneshot(request.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    /// The JSON of a 200 answer to `GET path`.
    async fn get_json(fixture: &Arc<Fixture>, path: &str) -> Value {
        let (status, _, body) = send(fixture, None, "GET", path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    #[tokio::test]
    async fn status_shows_locations_weights_and_tiers() {
        let fixture = Arc::new(fixture());
        let status = get_json(&fixture, "/v1/status").await;
        let locations: Vec<(&str, &Value)> = status["regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|region| (region["name"].as_str().unwrap(), &region["location"]))
            .collect();
        assert_eq!(
            locations,
            [
                ("ap-southeast", &Value::Null),
                ("eu-west", &serde_json::json!([53.35, -6.26])),
                ("us-east", &serde_json::json!([39.04, -77.49])),
            ]
        );
        let service = |name: &str| {
            status["services"]
                .as_array()
                .unwrap()
                .iter()
                .find(|service| service["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no service {name} in {status}"))
        };
        let weighted = service("api.example.test.");
        assert_eq!(
            weighted["weights"],
            serde_json::json!({"eu-west": 1, "us-east": 3})
        );
        assert!(weighted.get("tiers").is_none(), "{weighted}");
        let failover = service("db.example.test.");
        assert_eq!(
            failover["tiers"],
            serde_json::json!([["eu-west", "us-east"], ["ap-southeast"]])
        );
        assert!(failover.get("weights").is_none(), "{failover}");
        let geo = service("www.example.test.");
        assert!(
            geo.get("weights").is_none() && geo.get("tiers").is_none(),
            "{geo}"
        );
        let region = get_json(&fixture, "/v1/regions/us-east").await;
        assert_eq!(
            region["region"]["location"],
            serde_json::json!([39.04, -77.49])
        );
    }

    #[tokio::test]
    async fn answers_count_per_service_and_region() {
        let fixture = Arc::new(fixture());
        let snapshot = fixture.snapshot();
        let counters = |service: &str, region: &str| snapshot.telemetry.answers(service, region);
        for _ in 0..3 {
            counters("www.example.test.", "eu-west").count(0);
        }
        counters("www.example.test.", "us-east").count(1);
        counters("api.example.test.", NO_REGION).count(6);
        let answers = get_json(&fixture, "/v1/answers").await;
        assert!(
            answers["at"]
                .as_str()
                .and_then(parse_time)
                .is_some_and(|at| at <= SystemTime::now()),
            "{answers}"
        );
        let names: Vec<&str> = answers["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|service| service["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["api.example.test.", "db.example.test.", "www.example.test."]
        );
        let www = &answers["services"][2];
        assert_eq!(www["total"], 4);
        assert_eq!(
            www["regions"],
            serde_json::json!([
                {"region": "ap-southeast", "answers": 0},
                {"region": "eu-west", "answers": 3},
                {"region": "us-east", "answers": 1},
                {"region": "none", "answers": 0},
            ])
        );
        let api = &answers["services"][0];
        assert_eq!(api["total"], 1);
        assert_eq!(
            api["regions"][3],
            serde_json::json!({"region": "none", "answers": 1})
        );
        assert_eq!(answers["services"][1]["total"], 0);
    }

    #[tokio::test]
    async fn the_dashboard_is_served_without_a_token_and_its_data_is_not() {
        let fixture = Arc::new(fixture());
        let token = Some("s3cret");
        let (status, headers, body) = send(&fixture, token, "GET", "/dashboard", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            policy.contains("default-src 'none'") && policy.contains("script-src 'self'"),
            "{policy}"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(body.contains("<script type=\"module\" src=\"/dashboard/app.js\">"));
        assert!(!body.contains("eu-west"), "the page itself holds no data");
        for (asset, content_type) in [
            ("app.js", "text/javascript; charset=utf-8"),
            ("world.js", "text/javascript; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
            ("icon.svg", "image/svg+xml"),
        ] {
            let path = format!("/dashboard/{asset}");
            let (status, headers, body) = send(&fixture, token, "GET", &path, &[]).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert!(!body.is_empty(), "{path}");
        }
        let (status, _, body) = send(&fixture, token, "GET", "/dashboard/secrets.txt", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body.contains(r#"the dashboard has no file \"secrets.txt\""#),
            "{body}"
        );
        for path in ["/", "/dashboard/"] {
            let (status, headers, _) = send(&fixture, token, "GET", path, &[]).await;
            assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(headers[header::LOCATION], "/dashboard", "{path}");
        }
        for path in ["/v1/status", "/v1/answers", "/v1/drills"] {
            let (status, _, _) = send(&fixture, token, "GET", path, &[]).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
            let bearer = [("authorization", "Bearer s3cret")];
            let (status, _, _) = send(&fixture, token, "GET", path, &bearer).await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
    }

    #[tokio::test]
    async fn browsers_cannot_change_anything_from_another_site() {
        let fixture = Arc::new(fixture());
        let path = "/v1/regions/eu-west/override";
        // A page elsewhere posting to the API: refused before the token is even looked at.
        let foreign = [
            ("host", "127.0.0.1:8053"),
            ("origin", "https://evil.example"),
        ];
        for token in [None, Some("s3cret")] {
            let (status, _, body) = send(&fixture, token, "DELETE", path, &foreign).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
            assert!(body.contains("\"cross_origin\""), "{body}");
        }
        // A sandboxed page sends Origin: null.
        let null = [("host", "127.0.0.1:8053"), ("origin", "null")];
        let (status, _, _) = send(&fixture, None, "POST", "/v1/reload", &null).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // The dashboard itself (same origin), and clients that send no Origin, may.
        let own = [
            ("host", "127.0.0.1:8053"),
            ("origin", "http://127.0.0.1:8053"),
        ];
        let (status, _, body) = send(&fixture, None, "DELETE", path, &own).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _, body) = send(&fixture, None, "DELETE", path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Reading from elsewhere is left to the browser's same-origin rule.
        let (status, _, _) = send(&fixture, None, "GET", "/v1/status", &foreign).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn an_open_api_answers_only_loopback_host_names() {
        let fixture = Arc::new(fixture());
        for host in [
            "127.0.0.1:8053",
            "localhost:8053",
            "LOCALHOST",
            "[::1]:8053",
            "127.1.2.3",
        ] {
            let (status, _, body) =
                send(&fixture, None, "GET", "/v1/status", &[("host", host)]).await;
            assert_eq!(status, StatusCode::OK, "{host}: {body}");
        }
        // A name of the attacker's that resolves to 127.0.0.1 (DNS rebinding).
        let rebound = [("host", "rebind.evil.example:8053")];
        let (status, _, body) = send(&fixture, None, "GET", "/v1/status", &rebound).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("\"bad_host\""), "{body}");
        // With a token, the token is the protection and any name may be used.
        let (status, _, _) = send(&fixture, Some("s3cret"), "GET", "/v1/status", &rebound).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn query_types_by_name_and_number() {
        assert_eq!(parse_qtype("A"), Some(1));
        assert_eq!(parse_qtype("aaaa"), Some(28));
        assert_eq!(parse_qtype("TYPE65"), Some(65));
        assert_eq!(parse_qtype("257"), Some(257));
        assert_eq!(parse_qtype("BOGUS"), None);
    }
}
