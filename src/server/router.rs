//! The HTTP API. Handlers only read the latest snapshot (or the report page kept beside it), so no
//! request waits on Prometheus; `/report`, which builds a past window's page on demand, is the one
//! exception, bounded in size, one at a time and under the request timeout.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tower_http::timeout::TimeoutLayer;

use super::bodies::Bodies;
use super::metrics::Metrics;
use super::page::{on_demand, OnDemandError, Pages};
use super::scheduler::Reload;
use super::scope::{self, ScopeError, Serves};
use super::webhook::{Answer, Asked, FlaggerWebhook};
use crate::config::{Config, ConfigError};
use crate::engine::decide::Decision;
use crate::engine::pack::ALL_PHASES;

/// Everything a handler may read. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The latest snapshot, with its HTTP bodies already encoded.
    pub bodies: watch::Receiver<Option<Arc<Bodies>>>,
    pub metrics: Arc<Metrics>,
    /// The running configuration (replaced on reload): phase names are known from it before the
    /// first evaluation, so that a typo is a 404 rather than a 503 a pipeline would retry forever.
    pub config: watch::Receiver<Arc<Config>>,
    /// Where `POST /-/reload` sends its request; the evaluation loop applies it.
    pub reload: mpsc::Sender<Reload>,
    /// The report page of `/`, kept up to date in the background, and `/report`'s turn.
    pub pages: Pages,
}

impl AppState {
    fn latest(&self) -> Option<Arc<Bodies>> {
        self.bodies.borrow().clone()
    }

    /// The verdict on `phase` for the cluster or wave asked (none without a `fleet` section) as
    /// encoded when the snapshot was published. Every pipeline's poll comes here, so it reads
    /// the configuration once and allocates only for an error.
    fn gate(
        &self,
        phase: &str,
        cluster: Option<&str>,
        wave: Option<&str>,
    ) -> Result<Response, ApiError> {
        let (max_age, target) = {
            let config = self.config.borrow();
            let known = phase == ALL_PHASES || config.pack.phases.iter().any(|p| p.name == phase);
            if !known {
                return Err(ApiError::UnknownPhase {
                    phase: phase.to_string(),
                    known: config.pack.phase_names(),
                });
            }
            let fleet = config.fleet.is_some();
            let target = scope::shape(fleet, cluster, wave, Serves::Verdict)?;
            (stale_after(&config), target)
        };
        // The name is looked up in the bodies first: scanning 200 clusters on every poll would
        // cost more than the rest of the answer. Until the next evaluation, a cluster a reload
        // removed keeps its last verdict; one it added is 503 until judged.
        self.fresh(max_age, |bodies| bodies.gate(phase, target))
            .or_else(|refused| {
                scope::known(self.config.borrow().fleet.as_ref(), target)?;
                Err(refused)
            })
    }

    /// The answer `pick` takes from the latest bodies, if they are younger than `max_age`.
    fn fresh(
        &self,
        max_age: Duration,
        pick: impl FnOnce(&Bodies) -> Option<(StatusCode, Bytes)>,
    ) -> Result<Response, ApiError> {
        // Read under the lock rather than cloned out: the body is only a reference to clone.
        let latest = self.bodies.borrow();
        let bodies = latest.as_ref().ok_or(ApiError::NotReady)?;
        let age = SystemTime::now()
            .duration_since(bodies.evaluated_at.into())
            .unwrap_or_default();
        if age > max_age {
            return Err(ApiError::Stale {
                evaluated_at: bodies.evaluated_at.to_rfc3339(),
                max_age: humantime::format_duration(max_age).to_string(),
            });
        }
        // Named but not in the snapshot: a reload has just added it, and the next evaluation
        // judges it.
        let (status, body) = pick(bodies).ok_or(ApiError::NotReady)?;
        Ok(json_bytes(status, body))
    }

    /// `/waves/{name}`: may the wave start (200 go, 503 otherwise).
    fn wave(&self, name: &str) -> Result<Response, ApiError> {
        let max_age = {
            let config = self.config.borrow();
            let fleet = config.fleet.as_ref().ok_or(ScopeError::NotAFleet {
                route: "/waves/{name}",
            })?;
            scope::wave_named(fleet, name)?;
            stale_after(&config)
        };
        self.fresh(max_age, |bodies| bodies.wave(name))
    }

    /// `/fleet`: every cluster × phase and every wave, 200 while fresh.
    fn fleet(&self) -> Result<Response, ApiError> {
        let max_age = {
            let config = self.config.borrow();
            if config.fleet.is_none() {
                return Err(ScopeError::NotAFleet { route: "/fleet" }.into());
            }
            stale_after(&config)
        };
        self.fresh(max_age, |bodies| Some((StatusCode::OK, bodies.fleet()?)))
    }

    /// The verdict with the status `answer` reads, a refusal included (a verdict too old is
    /// unknown to every tool).
    fn answer(
        &self,
        phase: &str,
        cluster: Option<&str>,
        wave: Option<&str>,
        answer: Answer,
    ) -> Response {
        let verdict = self.gate(phase, cluster, wave);
        answer.apply(verdict.unwrap_or_else(IntoResponse::into_response))
    }

    /// `GET`: 200/503, or 200 whatever the decision with `?status=always-200`; in fleet mode
    /// for the `?cluster=` or `?wave=` asked.
    fn get(&self, phase: &str, query: Option<String>) -> Response {
        match Asked::from_query(query.as_deref()) {
            Ok(asked) => self.answer(
                phase,
                asked.cluster.as_deref(),
                asked.wave.as_deref(),
                asked.get(),
            ),
            Err(refused) => refused.into_response(),
        }
    }

    /// A Flagger webhook: the phase from the path, else from the body's `metadata.phase`, else
    /// all phases; the cluster and wave from the query string, else from `metadata`; no-go and
    /// unknown are a 403 that Flagger does not retry.
    fn webhook(&self, phase: Option<&str>, query: Option<String>, body: &[u8]) -> Response {
        let asked = match Asked::from_query(query.as_deref()) {
            Ok(asked) => asked,
            Err(refused) => return refused.into_response(),
        };
        match FlaggerWebhook::parse(body) {
            Ok(hook) => {
                let phase = phase.or(hook.phase()).unwrap_or(ALL_PHASES);
                let cluster = asked.cluster.as_deref().or(hook.cluster());
                let wave = asked.wave.as_deref().or(hook.wave());
                self.answer(phase, cluster, wave, asked.webhook())
            }
            Err(refused) => refused.into_response(),
        }
    }
}

/// How old a verdict may get before `/gate` stops serving it: three missed evaluations, plus the
/// query timeout that the last one may have spent waiting (the longest of a fleet's stores), plus
/// the `query_offset` it is judged behind now. If evaluation stalls, the gate fails closed
/// instead of repeating an old answer.
fn stale_after(config: &Config) -> Duration {
    let timeout = config
        .fleet
        .iter()
        .flat_map(|f| &f.backends)
        .map(|b| b.prometheus.timeout)
        .fold(config.prometheus.timeout, Duration::max);
    config.evaluation.interval * 3 + timeout + config.evaluation.query_offset
}

/// The routes. Every answer but a reload's is made from memory at once, so only the reload,
/// which waits for the evaluation loop, carries `server.request_timeout` (408 when it passes): a
/// timer per request would cost `/gate` more than all its own work. A handler that comes to wait
/// on anything must carry it too.
///
/// Each phase known at start has a route of its own, `/gate/istio` beside `/gate/{phase}`: a
/// literal route spares every poll the captured parameter and its extraction (a fifth of what
/// the router spends on a `/gate` request). Phases that a reload adds are served by the
/// parameter; one it removes is refused by either (the handler asks the running configuration).
pub fn router(state: AppState) -> Router {
    let (request_timeout, phases) = {
        let config = state.config.borrow();
        (
            config.server.limits.request_timeout,
            config.pack.phase_names(),
        )
    };
    let mut router = Router::new()
        .route("/gate", get(gate_all).post(webhook_all))
        .route("/gate/{phase}", get(gate).post(webhook))
        .route("/signals", get(signals))
        .route("/waves/{name}", get(wave))
        .route("/fleet", get(fleet))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/", get(page))
        .route(
            "/report",
            get(report).layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                request_timeout,
            )),
        )
        .route(
            "/-/reload",
            post(reload).layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                request_timeout,
            )),
        );
    for phase in phases {
        let path = format!("/gate/{phase}");
        let phase: Arc<str> = phase.into();
        let posted = phase.clone();
        router = router.route(
            &path,
            get(
                |State(state): State<Arc<AppState>>, RawQuery(query): RawQuery| async move {
                    state.get(&phase, query)
                },
            )
            .post(
                |State(state): State<Arc<AppState>>, RawQuery(query): RawQuery, body: Bytes| async move {
                    state.webhook(Some(&posted), query, &body)
                },
            ),
        );
    }
    router.with_state(Arc::new(state))
}

/// Errors a client can get, each with a JSON body `{error, ...}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unknown phase {phase:?}")]
    UnknownPhase { phase: String, known: Vec<String> },
    /// A cluster or wave unknown, missing, or asked of a gate without a `fleet` section.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error("no evaluation has finished yet")]
    NotReady,
    #[error("the reload endpoint is disabled; set server.enable_reload_endpoint, or send SIGHUP")]
    ReloadDisabled,
    #[error("the new configuration was rejected; the running one stays")]
    ReloadRejected(ConfigError),
    #[error("the last evaluation ({evaluated_at}) is older than {max_age}; failing closed until a new one finishes")]
    Stale {
        evaluated_at: String,
        max_age: String,
    },
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            ApiError::UnknownPhase { known, .. } => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": message, "phases": known})),
            )
                .into_response(),
            ApiError::Scope(e) => e.into_response(),
            ApiError::ReloadDisabled => {
                (StatusCode::NOT_FOUND, Json(json!({"error": message}))).into_response()
            }
            ApiError::ReloadRejected(e) => {
                let problems: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": message, "problems": problems})),
                )
                    .into_response()
            }
            // Without a fresh verdict the gate does not know: unknown, which a pipeline reads as
            // 503 like no-go, the safe answer.
            ApiError::NotReady | ApiError::Stale { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": message, "decision": Decision::Unknown})),
            )
                .into_response(),
        }
    }
}

async fn gate_all(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    state.get(ALL_PHASES, query)
}

async fn gate(
    State(state): State<Arc<AppState>>,
    Path(phase): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    state.get(&phase, query)
}

async fn webhook_all(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    state.webhook(None, query, &body)
}

async fn webhook(
    State(state): State<Arc<AppState>>,
    Path(phase): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    state.webhook(Some(&phase), query, &body)
}

/// Every signal's latest result: the gate's, or in fleet mode the `?cluster=` asked's.
async fn signals(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let asked = match Asked::from_query(query.as_deref()) {
        Ok(asked) => asked,
        Err(refused) => return refused.into_response(),
    };
    let target = {
        let config = state.config.borrow();
        let (cluster, wave) = (asked.cluster.as_deref(), asked.wave.as_deref());
        scope::resolve(config.fleet.as_ref(), cluster, wave, Serves::Signals)
    };
    let answer = target.map_err(ApiError::from).and_then(|target| {
        let bodies = state.latest().ok_or(ApiError::NotReady)?;
        bodies.signals(target).ok_or(ApiError::NotReady)
    });
    match answer {
        Ok(body) => json_bytes(StatusCode::OK, body),
        Err(e) => e.into_response(),
    }
}

/// `GET /waves/{name}`: 200 when the wave may start, 503 otherwise (200 whatever the decision
/// with `?status=always-200`).
async fn wave(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    match Asked::from_query(query.as_deref()) {
        Ok(asked) => asked.get().apply(
            state
                .wave(&name)
                .unwrap_or_else(IntoResponse::into_response),
        ),
        Err(refused) => refused.into_response(),
    }
}

async fn fleet(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    state.fleet()
}

/// A body encoded at snapshot time, sent as `Json` would send it.
fn json_bytes(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn reload(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    if !state.config.borrow().reload_endpoint {
        return Err(ApiError::ReloadDisabled);
    }
    let (reply, answer) = oneshot::channel();
    // The loop is gone only during shutdown; then there is nothing left to reload.
    let _ = state.reload.send(Reload { reply: Some(reply) }).await;
    match answer.await {
        Ok(Ok(())) => Ok(Json(json!({"status": "reloaded"})).into_response()),
        Ok(Err(e)) => Err(ApiError::ReloadRejected(e)),
        Err(_) => Err(ApiError::NotReady),
    }
}

/// The report of the last `report.window`, as last rebuilt; 503 before the first.
async fn page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let latest = state.pages.latest.borrow().clone();
    Ok(latest.ok_or(ApiError::NotReady)?.answer(&headers))
}

/// A past window's report, built on demand: it waits on Prometheus, so it has a timeout.
async fn report(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, OnDemandError> {
    let config = state.config.borrow().clone();
    on_demand(&state.pages, config, query.as_deref()).await
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.latest() {
        Some(s) => (
            StatusCode::OK,
            format!(
                "ready: last evaluation at {}\n",
                s.evaluated_at.to_rfc3339()
            ),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no evaluation has finished yet\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::decide::Verdict;
    use crate::engine::snapshot::Snapshot;
    use axum::body::Body;
    use axum::http::Request;
    use chrono::Utc;
    use tower::ServiceExt;

    /// Interval 30s and timeout 10s: a verdict goes stale after 1m40s.
    const CONFIG: &str = "evaluation: {interval: 30s}\nprometheus: {timeout: 10s}\nphases: [{name: istio}]\nsignals: [{name: s, query: up, fail: \"> 1\"}]\n";

    fn app(age_secs: i64) -> Router {
        app_with(age_secs, CONFIG)
    }

    fn app_with(age_secs: i64, yaml: &str) -> Router {
        app_deciding(age_secs, yaml, Decision::Go)
    }

    /// The router with a snapshot evaluated `age_secs` ago, under the configuration `yaml`, whose
    /// verdicts say `decision`.
    fn app_deciding(age_secs: i64, yaml: &str, decision: Decision) -> Router {
        let evaluated_at = Utc::now() - chrono::Duration::seconds(age_secs);
        let verdict = Verdict {
            phase: "istio".into(),
            decision,
            score: 100.0,
            min_score: 90.0,
            evaluated_at,
            stable_since: Some(evaluated_at),
            stable_for: Duration::ZERO,
            reasons: vec![],
            signals: vec![],
        };
        let snapshot = Snapshot {
            evaluated_at,
            took: Duration::ZERO,
            phases: vec![verdict],
            signals: vec![],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.yaml");
        std::fs::write(&path, yaml).unwrap();
        let config = crate::config::load(Some(&path)).unwrap();
        let (_tx, rx) = watch::channel(Some(Arc::new(Bodies::encode(Arc::new(snapshot)))));
        let (_config_tx, config) = watch::channel(Arc::new(config));
        let (reload, _) = mpsc::channel(1);
        let (_page_tx, page) = watch::channel(None);
        router(AppState {
            bodies: rx,
            metrics: Arc::new(Metrics::new()),
            config,
            reload,
            pages: Pages::with(page),
        })
    }

    async fn get(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_fresh_go_is_200() {
        let (status, body) = get(app(10), "/gate/istio").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    #[tokio::test]
    async fn a_stale_go_fails_closed() {
        let (status, body) = get(app(500), "/gate/istio").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["decision"], "unknown");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("is older than 1m 40s"),
            "{body}"
        );
    }

    /// A verdict is judged `query_offset` behind the clock, so it may be that much older before
    /// it is stale: with a 60s offset, a 15s interval and a 10s timeout, a verdict 1m30s old is
    /// current (without the offset every answer would be a 503 from 55s on), and one 2m old is
    /// past the limit of 3 x 15s + 10s + 60s.
    #[tokio::test]
    async fn the_query_offset_counts_toward_the_staleness_limit() {
        let config = CONFIG.replace("{interval: 30s}", "{interval: 15s, query_offset: 60s}");
        let (status, body) = get(app_with(90, &config), "/gate/istio").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = get(app_with(120, &config), "/gate/istio").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("is older than 1m 55s"), "{body}");
    }

    async fn post(app: Router, path: &str, body: &str) -> (StatusCode, String) {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    const FLAGGER: &str = r#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"1","metadata":{"phase":"istio","owner":"x"}}"#;

    /// Every way of asking reaches the same verdict; a stale one is unknown to each tool with the
    /// status that tool reads as "hold" (Flagger 403, Argo 200 with `decision: unknown`).
    #[tokio::test]
    async fn flagger_and_argo_get_the_verdict_with_their_status() {
        for path in ["/gate", "/gate/istio"] {
            let (status, body) = post(app(10), path, FLAGGER).await;
            assert_eq!(status, StatusCode::OK, "{path} {body}");
            assert!(body.contains(r#""decision":"go""#), "{body}");
            let (status, body) = post(app(500), path, FLAGGER).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path} {body}");
            let (status, body) = get(app(500), &format!("{path}?status=always-200")).await;
            assert_eq!(status, StatusCode::OK, "{path} {body}");
            assert!(body.contains(r#""decision":"unknown""#), "{body}");
            let (status, _) = get(app(500), &format!("{path}?status=200")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
        // The phase of the path (known at start or added by a reload) wins over the metadata's.
        let (status, body) = post(app(10), "/gate/nope", FLAGGER).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let unknown = FLAGGER.replace(r#""phase":"istio""#, r#""phase":"nope""#);
        let (status, _) = post(app(10), "/gate", &unknown).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    /// A fresh unknown verdict holds every tool as no-go does, and says unknown.
    #[tokio::test]
    async fn an_unknown_verdict_holds_every_tool() {
        let app = || app_deciding(10, CONFIG, Decision::Unknown);
        let (status, body) = get(app(), "/gate/istio").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains(r#""decision":"unknown""#), "{body}");
        let (status, body) = post(app(), "/gate/istio", FLAGGER).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains(r#""decision":"unknown""#), "{body}");
        let (status, body) = get(app(), "/gate/istio?status=always-200").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains(r#""decision":"unknown""#), "{body}");
    }

    #[tokio::test]
    async fn a_body_not_shaped_like_flaggers_is_a_400_naming_the_problem() {
        let (status, body) = post(app(10), "/gate/istio", r#"{"name":"a","phase":"p"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("missing field `namespace`"), "{body}");
    }
}
