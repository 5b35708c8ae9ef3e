//! The HTTP bodies of one snapshot, encoded once when it is published.
//!
//! Every `/gate`, `/gate/{phase}` and `/signals` request between two evaluations gets the same
//! bytes, so they are serialised once per evaluation instead of once per request: a request only
//! clones a reference-counted buffer, and a pipeline polling hard costs the gate next to nothing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::json;

use crate::engine::decide::Decision;
use crate::engine::snapshot::Snapshot;

/// A snapshot with its HTTP bodies already encoded as JSON.
pub struct Bodies {
    pub snapshot: Arc<Snapshot>,
    /// Per phase (including `all`): the status a pipeline reads (200 go, 503 no-go or unknown)
    /// and the verdict.
    gate: HashMap<String, (StatusCode, Bytes)>,
    /// The body of `/signals`.
    signals: Bytes,
}

impl Bodies {
    pub fn encode(snapshot: Arc<Snapshot>) -> Bodies {
        let gate = snapshot
            .phases
            .iter()
            .map(|v| {
                let status = match v.decision {
                    Decision::Go => StatusCode::OK,
                    Decision::NoGo | Decision::Unknown => StatusCode::SERVICE_UNAVAILABLE,
                };
                let body = serde_json::to_vec(v).expect("a verdict serializes");
                (v.phase.clone(), (status, Bytes::from(body)))
            })
            .collect();
        let signals = serde_json::to_vec(&json!({
            "evaluated_at": snapshot.evaluated_at,
            "signals": snapshot.signals,
        }))
        .expect("signal reports serialize");
        Bodies {
            snapshot,
            gate,
            signals: Bytes::from(signals),
        }
    }

    /// The status and body of `/gate/{phase}`, if the snapshot judged that phase.
    pub fn gate(&self, phase: &str) -> Option<(StatusCode, Bytes)> {
        self.gate.get(phase).cloned()
    }

    pub fn signals(&self) -> Bytes {
        self.signals.clone()
    }
}
