//! The HTTP server: Prometheus metrics, liveness and readiness, and the JSON API.
//!
//! Bound to loopback by default. On any other address a bearer token is required for
//! everything except `/metrics` and the health endpoints, and without one configured
//! medic refuses to start. Errors are JSON with a stable `code`.

pub mod board;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

pub use board::Board;

use crate::event::Incident;
use crate::pipeline::tickets::Tickets;
use crate::pipeline::{LiveStats, TemplateStat};
use crate::source::LagTable;
use crate::telemetry::PrometheusHandle;

/// The `api:` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the API at all.
    pub enabled: bool,
    /// Address and port.
    pub listen: SocketAddr,
    /// Environment variable holding the bearer token.
    pub token_env: String,
    /// File holding the bearer token (read at start; surrounding whitespace ignored).
    pub token_file: Option<std::path::PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            token_env: "MEDIC_API_TOKEN".into(),
            token_file: None,
        }
    }
}

/// API errors at start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A public bind without a token.
    #[error(
        "refusing to serve the API on {0} without a token: set ${1} or api.token_file, or listen on a loopback address"
    )]
    NoToken(SocketAddr, String),
    /// The token file could not be read.
    #[error("cannot read the API token file {path}: {error}")]
    TokenFile {
        /// The path.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        error: std::io::Error,
    },
}

/// What the health endpoints look at.
#[derive(Debug, Default)]
pub struct Health {
    /// Whether the Docker source is configured (if not, it does not gate readiness).
    pub docker_enabled: bool,
    /// Whether the Docker source is connected to the engine now.
    pub docker_connected: Arc<AtomicBool>,
    /// Whether the last checkpoint write succeeded.
    pub store_writable: AtomicBool,
}

/// The rules in force: (id, severity, description).
pub type RuleList = Arc<dyn Fn() -> Vec<(String, &'static str, String)> + Send + Sync>;

/// What the handlers read.
#[derive(Clone)]
pub struct ApiParts {
    /// Metrics.
    pub prometheus: PrometheusHandle,
    /// Readiness inputs.
    pub health: Arc<Health>,
    /// Lag per source.
    pub lag: LagTable,
    /// Recent incidents and live notifications.
    pub board: Arc<Board>,
    /// The rules in force.
    pub rules: RuleList,
    /// Rule hits so far, by rule id.
    pub rule_hits: Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
    /// The busiest templates per window worker.
    pub templates: Arc<std::sync::Mutex<HashMap<usize, Vec<TemplateStat>>>>,
    /// Pipeline counters.
    pub stats: Arc<LiveStats>,
    /// The ticket path, when enabled.
    pub tickets: Option<Arc<Tickets>>,
    /// The QA module, when flows are configured.
    pub qa: Option<Arc<crate::qa::QaStatus>>,
    /// Where QA runs keep their artifacts (`<flow>/<run>/<file>`).
    pub qa_artifacts: std::path::PathBuf,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct ApiState {
    parts: ApiParts,
    token: Option<Arc<str>>,
}

impl ApiState {
    /// State for the handlers; the token comes from the configuration.
    pub fn new(cfg: &ApiConfig, parts: ApiParts) -> Result<ApiState, ApiError> {
        let token = match &cfg.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|error| ApiError::TokenFile {
                        path: path.display().to_string(),
                        error,
                    })?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var(&cfg.token_env).ok(),
        }
        .filter(|t| !t.is_empty());
        if token.is_none() && !cfg.listen.ip().is_loopback() {
            return Err(ApiError::NoToken(cfg.listen, cfg.token_env.clone()));
        }
        Ok(ApiState {
            parts,
            token: token.map(Arc::from),
        })
    }
}

/// A JSON error with a stable code.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Stable, machine-readable.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            code,
            message: message.into(),
        }),
    )
        .into_response()
}

/// The routes.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/sources", get(sources))
        .route("/incidents", get(incidents))
        .route("/incidents/{id}", get(incident))
        .route("/rules", get(rules))
        .route("/templates", get(templates))
        .route("/status", get(status))
        .route("/tickets", get(tickets))
        .route("/tickets/{key}", get(ticket))
        .route("/qa/artifacts/{flow}/{run}/{file}", get(qa_artifact))
        .route("/events", get(events))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(middleware::from_fn_with_state(state.clone(), auth));
    let dashboard = Router::new()
        .route("/", get(dashboard))
        .layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .merge(dashboard)
        .route("/metrics", get(metrics))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .nest("/api", api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such page") })
        .with_state(state)
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    cfg: &ApiConfig,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, ApiError> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|error| ApiError::Bind {
            addr: cfg.listen,
            error,
        })?;
    let app = router(state);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "the API server stopped");
        }
    }))
}

async fn auth(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let header_token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Browsers cannot set headers on EventSource or a page load: `?token=` also works.
        let query_token = req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .map(str::to_string)
        });
        let ok =
            header_token == Some(token.as_ref()) || query_token.as_deref() == Some(token.as_ref());
        if !ok {
            return error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required",
            );
        }
    }
    next.run(req).await
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.parts.prometheus.render(),
    )
        .into_response()
}

async fn readyz(State(state): State<ApiState>) -> Response {
    let h = &state.parts.health;
    let docker = !h.docker_enabled || h.docker_connected.load(Ordering::Relaxed);
    let store = h.store_writable.load(Ordering::Relaxed)
        && state
            .parts
            .tickets
            .as_ref()
            .is_none_or(|t| t.store().writable());
    let body = serde_json::json!({
        "ready": docker && store,
        "checks": { "sources_attached": docker, "store_writable": store },
    });
    let status = if docker && store {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn sources(State(state): State<ApiState>) -> Response {
    let lag = state
        .parts
        .lag
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    let list: Vec<serde_json::Value> = lag
        .into_iter()
        .map(|(key, l)| {
            serde_json::json!({
                "key": key,
                "kind": l.kind,
                "lines": l.lines,
                "bytes": l.bytes,
                "lag_seconds": l.lag_ms.map(|ms| ms as f64 / 1000.0),
            })
        })
        .collect();
    Json(serde_json::json!({ "sources": list })).into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// The list view of an incident: everything but the samples, plus its recent counts as
/// `[[last_seen_ms, count], ...]`.
fn summary(i: &Incident, board: &Board) -> serde_json::Value {
    let mut v = serde_json::to_value(i).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("samples");
        o.insert("counts".into(), serde_json::json!(board.history(&i.id)));
    }
    v
}

async fn incidents(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    const STATES: [&str; 4] = ["open", "updated", "resolved", "reopened"];
    const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];
    let mut limit = 100usize;
    let mut since_ms = 0u64;
    for (k, v) in &q {
        match k.as_str() {
            "state" if !STATES.contains(&v.as_str()) => {
                return bad_request(format!("state must be one of {STATES:?}, not {v:?}"));
            }
            "severity" if !SEVERITIES.contains(&v.as_str()) => {
                return bad_request(format!("severity must be one of {SEVERITIES:?}, not {v:?}"));
            }
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=10_000).contains(&n) => limit = n,
                _ => return bad_request(format!("limit must be 1 to 10000, not {v:?}")),
            },
            "since" => match v.parse::<u64>() {
                Ok(n) => since_ms = n,
                Err(_) => {
                    return bad_request(format!(
                        "since is milliseconds since the Unix epoch, not {v:?}"
                    ));
                }
            },
            "state" | "severity" | "service" | "token" => {}
            other => return bad_request(format!("unknown query parameter {other:?}")),
        }
    }
    let list: Vec<serde_json::Value> = state
        .parts
        .board
        .list()
        .iter()
        .filter(|i| q.get("state").is_none_or(|s| i.state.as_str() == s))
        .filter(|i| q.get("severity").is_none_or(|s| i.severity.as_str() == s))
        .filter(|i| q.get("service").is_none_or(|s| *i.key.service == **s))
        .filter(|i| i.last_seen_ms >= since_ms)
        .take(limit)
        .map(|i| summary(i, &state.parts.board))
        .collect();
    Json(serde_json::json!({ "incidents": list })).into_response()
}

async fn incident(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match state.parts.board.get(&id) {
        Some(i) => Json(i).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no incident {id}"),
        ),
    }
}

async fn rules(State(state): State<ApiState>) -> Response {
    let hits = state
        .parts
        .rule_hits
        .lock()
        .map(|h| h.clone())
        .unwrap_or_default();
    let list: Vec<serde_json::Value> = (state.parts.rules)()
        .into_iter()
        .map(|(id, severity, description)| {
            serde_json::json!({
                "hits": hits.get(&id).copied().unwrap_or(0),
                "id": id,
                "severity": severity,
                "description": description,
            })
        })
        .collect();
    Json(serde_json::json!({ "rules": list })).into_response()
}

/// Server-sent events: `incident` with each notification as it goes out.
async fn events(
    State(state): State<ApiState>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    use tokio::sync::broadcast::error::RecvError;
    let rx = state.parts.board.subscribe();
    let board = Arc::clone(&state.parts.board);
    let news = state.parts.tickets.as_ref().map(|t| t.subscribe());
    let qa = state.parts.qa.as_ref().map(|q| q.subscribe());
    let stream = futures_util::stream::unfold(
        (rx, news, board, qa),
        |(mut rx, mut news, board, mut qa)| async move {
            let ticket = async {
                match news.as_mut() {
                    Some(n) => n.recv().await,
                    None => std::future::pending().await,
                }
            };
            let qa_run = async {
                match qa.as_mut() {
                    Some(q) => q.recv().await,
                    None => std::future::pending().await,
                }
            };
            let ev = tokio::select! {
                r = rx.recv() => match r {
                    Ok(inc) => SseEvent::default()
                        .event("incident")
                        .data(serde_json::to_string(&summary(&inc, &board)).unwrap_or_default()),
                    // A slow client missed some; it reloads the list on `lagged`.
                    Err(RecvError::Lagged(_)) => SseEvent::default().event("lagged").data("{}"),
                    Err(RecvError::Closed) => return None,
                },
                r = ticket => match r {
                    Ok(n) => SseEvent::default()
                        .event("ticket")
                        .data(serde_json::to_string(&n).unwrap_or_default()),
                    Err(RecvError::Lagged(_)) => SseEvent::default().event("lagged").data("{}"),
                    Err(RecvError::Closed) => return None,
                },
                r = qa_run => match r {
                    Ok(run) => SseEvent::default().event("qa").data(
                        serde_json::json!({
                            "flow": run.flow, "passed": run.passed, "failed_step": run.failed_step,
                            "error": run.error, "duration_ms": run.duration_ms, "run": run.run_dir,
                        })
                        .to_string(),
                    ),
                    Err(RecvError::Lagged(_)) => SseEvent::default().event("lagged").data("{}"),
                    Err(RecvError::Closed) => return None,
                },
            };
            Some((Ok(ev), (rx, news, board, qa)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn dashboard() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("dashboard.html"),
    )
        .into_response()
}

async fn templates(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut by_rate = false;
    let mut limit = 20usize;
    for (k, v) in &q {
        match (k.as_str(), v.as_str()) {
            ("by", "count") => by_rate = false,
            ("by", "rate") => by_rate = true,
            ("by", other) => {
                return bad_request(format!("by must be count or rate, not {other:?}"));
            }
            ("limit", v) => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => limit = n,
                _ => return bad_request(format!("limit must be 1 to 1000, not {v:?}")),
            },
            ("token", _) => {}
            (other, _) => return bad_request(format!("unknown query parameter {other:?}")),
        }
    }
    let mut all: Vec<TemplateStat> = state
        .parts
        .templates
        .lock()
        .map(|t| t.values().flatten().cloned().collect())
        .unwrap_or_default();
    if by_rate {
        all.sort_by(|a, b| b.rate_per_sec.total_cmp(&a.rate_per_sec));
    } else {
        all.sort_by_key(|t| std::cmp::Reverse(t.count));
    }
    all.truncate(limit);
    Json(serde_json::json!({ "templates": all })).into_response()
}

/// Each module's state: the log monitor from its sources and counters, the classifier and
/// ticket path from its outbox; QA reports `disabled` (not part of this build yet).
async fn status(State(state): State<ApiState>) -> Response {
    let s = &state.parts.stats;
    let h = &state.parts.health;
    let last = s.last_record_ms.load(Ordering::Relaxed);
    let now = (crate::source::now_ns() / 1_000_000).max(0) as u64;
    let docker_down = h.docker_enabled && !h.docker_connected.load(Ordering::Relaxed);
    let store_down = !h.store_writable.load(Ordering::Relaxed);
    let (monitor, detail) = if docker_down {
        ("error", "the Docker engine is not reachable; reconnecting")
    } else if store_down {
        ("error", "read positions cannot be written")
    } else if last > 0 && now.saturating_sub(last) < 60_000 {
        ("active", "reading")
    } else {
        ("idle", "no records in the last minute")
    };
    let classifier = match &state.parts.tickets {
        None => serde_json::json!({
            "name": "classifier", "state": "disabled", "detail": "tickets are disabled"
        }),
        Some(t) => {
            let depths = t.store().depths().unwrap_or_default();
            let dead: u64 = depths.iter().map(|(_, d)| d.dead).sum();
            let pending: u64 = depths.iter().map(|(_, d)| d.pending).sum();
            let (st, detail) = if dead > 0 {
                (
                    "error",
                    format!("{dead} ticket action(s) rejected; see the outbox"),
                )
            } else if pending > 0 {
                (
                    "active",
                    format!("{pending} notification(s) or action(s) waiting"),
                )
            } else {
                ("idle", "nothing waiting".to_string())
            };
            serde_json::json!({
                "name": "classifier",
                "state": st,
                "detail": detail,
                "classifier": t.classifier(),
                "sinks": t.sink_names(),
                "outbox": depths.into_iter().collect::<BTreeMap<_, _>>(),
            })
        }
    };
    let qa = match &state.parts.qa {
        None => {
            serde_json::json!({"name": "qa", "state": "disabled", "detail": "no QA flows configured"})
        }
        Some(q) => {
            let v = q.view();
            let (st, detail) = if let Some(e) = &v.last_infrastructure_error {
                ("error", format!("cannot run flows: {e}"))
            } else if let Some(f) = &v.running {
                ("active", format!("running {f}"))
            } else if let Some((f, busy)) = &v.deferring {
                (
                    "active",
                    format!(
                        "{f} is due; waiting while the host CPUs are {:.0}% busy",
                        busy * 100.0
                    ),
                )
            } else if !v.failing.is_empty() {
                (
                    "active",
                    format!(
                        "{} flow(s) failing: {}",
                        v.failing.len(),
                        v.failing.join(", ")
                    ),
                )
            } else {
                (
                    "idle",
                    format!("{} flow(s) scheduled, all passing", v.flows.len()),
                )
            };
            serde_json::json!({
                "name": "qa", "state": st, "detail": detail, "flows": v.flows,
                "runs": v.runs, "failures": v.failures, "last_run_ms": v.last_run_ms,
                "failing": v.failing, "deferred": v.deferred,
            })
        }
    };
    Json(serde_json::json!({
        "modules": [
            {
                "name": "log_monitor",
                "state": monitor,
                "detail": detail,
                "last_record_ms": (last > 0).then_some(last),
                "records": s.records.load(Ordering::Relaxed),
                "events": s.events.load(Ordering::Relaxed),
                "hits": s.hits.load(Ordering::Relaxed),
                "incidents": state.parts.board.list().len(),
            },
            classifier,
            qa,
        ]
    }))
    .into_response()
}

fn tickets_disabled() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "tickets_disabled",
        "the ticket path is disabled (tickets.enabled: false)",
    )
}

async fn tickets(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(t) = &state.parts.tickets else {
        return tickets_disabled();
    };
    let mut limit = 100usize;
    let mut status = None;
    for (k, v) in &q {
        match k.as_str() {
            "status" if v == "open" || v == "resolved" => status = Some(v.as_str()),
            "status" => {
                return bad_request(format!("status must be open or resolved, not {v:?}"));
            }
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=10_000).contains(&n) => limit = n,
                _ => return bad_request(format!("limit must be 1 to 10000, not {v:?}")),
            },
            "token" => {}
            other => return bad_request(format!("unknown query parameter {other:?}")),
        }
    }
    match t.store().tickets(status, limit) {
        Ok(list) => Json(serde_json::json!({ "tickets": list })).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            e.to_string(),
        ),
    }
}

async fn ticket(State(state): State<ApiState>, Path(key): Path<String>) -> Response {
    let Some(t) = &state.parts.tickets else {
        return tickets_disabled();
    };
    match t.store().ticket(&key) {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no ticket {key}"),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            e.to_string(),
        ),
    }
}

/// A QA artifact: `screenshot.png`, `dom.html`, `report.json` or a named screenshot.
/// Each path part is a plain name, so nothing outside the artifacts directory is served.
async fn qa_artifact(
    State(state): State<ApiState>,
    Path((flow, run, file)): Path<(String, String, String)>,
) -> Response {
    let plain = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !(plain(&flow) && plain(&run) && plain(&file)) {
        return bad_request("artifact paths are plain names");
    }
    let path = state.parts.qa_artifacts.join(&flow).join(&run).join(&file);
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("png") => "image/png",
        Some("html") => "text/plain; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
        Err(_) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no artifact {flow}/{run}/{file}"),
        ),
    }
}
