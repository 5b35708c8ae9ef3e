//! The HTTP API. Handlers only read the latest snapshot, so no request ever waits on Prometheus.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::watch;

use crate::decide::{Decision, Verdict};
use crate::metrics::Metrics;
use crate::pack::ALL_PHASES;
use crate::snapshot::Snapshot;

/// Everything a handler may read. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub snapshot: watch::Receiver<Option<Arc<Snapshot>>>,
    pub metrics: Arc<Metrics>,
    /// Phase names a request may use, known before the first evaluation so that a typo is a 404
    /// rather than a 503 that a pipeline would retry forever.
    pub phases: Arc<Vec<String>>,
}

impl AppState {
    fn latest(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.borrow().clone()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/gate", get(gate_all))
        .route("/gate/{phase}", get(gate))
        .route("/signals", get(signals))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Errors a client can get, each with a JSON body `{error, ...}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unknown phase {phase:?}")]
    UnknownPhase { phase: String, known: Vec<String> },
    #[error("no evaluation has finished yet")]
    NotReady,
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
            // A pipeline reads 503 as no-go, which is the safe answer before the first evaluation.
            ApiError::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": message, "decision": Decision::NoGo})),
            )
                .into_response(),
        }
    }
}

fn verdict_response(verdict: &Verdict) -> Response {
    let status = match verdict.decision {
        Decision::Go => StatusCode::OK,
        Decision::NoGo => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(verdict)).into_response()
}

async fn gate_all(state: State<AppState>) -> Result<Response, ApiError> {
    gate(state, Path(ALL_PHASES.to_string())).await
}

async fn gate(
    State(state): State<AppState>,
    Path(phase): Path<String>,
) -> Result<Response, ApiError> {
    if !state.phases.contains(&phase) {
        return Err(ApiError::UnknownPhase {
            phase,
            known: state.phases.to_vec(),
        });
    }
    let snapshot = state.latest().ok_or(ApiError::NotReady)?;
    let verdict = snapshot.verdict(&phase).ok_or(ApiError::NotReady)?;
    Ok(verdict_response(verdict))
}

async fn signals(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = state.latest().ok_or(ApiError::NotReady)?;
    Ok(Json(json!({
        "evaluated_at": snapshot.evaluated_at,
        "signals": snapshot.signals,
    }))
    .into_response())
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
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
