//! The HTTP bodies of one snapshot, encoded once when it is published.
//!
//! Every `/gate`, `/gate/{phase}` and `/signals` request between two evaluations gets the same
//! bytes, so they are serialised once per evaluation instead of once per request: a request only
//! clones a reference-counted buffer, and a pipeline polling hard costs the gate next to nothing.
//! In fleet mode the same holds per cluster and per wave, and for `/waves/{name}` and `/fleet`;
//! only what a route serves is kept (the snapshot itself is not), so that 200 clusters cost
//! their bodies and nothing more.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::scope::Target;
use crate::engine::decide::{Decision, SignalReport};
use crate::engine::fleet::{ClusterSnapshot, FleetSnapshot, WaveState};
use crate::engine::snapshot::Snapshot;

/// A body with the status a pipeline reads for it (200 go, 503 no-go or unknown).
type Answer = (StatusCode, Bytes);

/// A snapshot with its HTTP bodies already encoded as JSON.
pub struct Bodies {
    pub evaluated_at: DateTime<Utc>,
    content: Content,
}

enum Content {
    Single(Encoded),
    Fleet(FleetBodies),
}

/// One cluster's bodies: the verdict per phase (including `all`) and `/signals`.
struct Encoded {
    gate: HashMap<String, Answer>,
    signals: Bytes,
}

struct FleetBodies {
    clusters: HashMap<String, Encoded>,
    waves: HashMap<String, WaveBodies>,
    /// The body of `/fleet`.
    fleet: Bytes,
}

/// A wave's bodies: `/waves/{name}`, and `/gate/{phase}?wave=` per phase (including `all`).
struct WaveBodies {
    state: Answer,
    gate: HashMap<String, Answer>,
}

/// 200 only for go: no-go and unknown both hold a pipeline.
fn status(decision: Decision) -> StatusCode {
    match decision {
        Decision::Go => StatusCode::OK,
        Decision::NoGo | Decision::Unknown => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn encode<T: Serialize + ?Sized>(body: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(body).expect("a verdict serializes"))
}

/// `/signals` of one fleet cluster.
#[derive(Serialize)]
struct ClusterSignals<'a> {
    evaluated_at: DateTime<Utc>,
    cluster: &'a str,
    wave: &'a str,
    signals: &'a [SignalReport],
}

/// `/fleet`: every cluster × phase in a line each, without signals, and every wave's state.
#[derive(Serialize)]
struct FleetBody<'a> {
    evaluated_at: DateTime<Utc>,
    clusters: Vec<ClusterLine<'a>>,
    waves: &'a [WaveState],
    unlisted_series: usize,
}

#[derive(Serialize)]
struct ClusterLine<'a> {
    cluster: &'a str,
    wave: &'a str,
    go_since: Option<DateTime<Utc>>,
    phases: Vec<PhaseLine<'a>>,
}

#[derive(Serialize)]
struct PhaseLine<'a> {
    phase: &'a str,
    decision: Decision,
    score: f64,
    stable_since: Option<DateTime<Utc>>,
}

impl Encoded {
    fn cluster(c: &ClusterSnapshot) -> Encoded {
        let gate = c
            .snapshot
            .phases
            .iter()
            .filter_map(|v| {
                let verdict = c.verdict(&v.phase)?;
                Some((v.phase.clone(), (status(v.decision), encode(&verdict))))
            })
            .collect();
        let signals = encode(&ClusterSignals {
            evaluated_at: c.snapshot.evaluated_at,
            cluster: &c.cluster,
            wave: &c.wave,
            signals: &c.snapshot.signals,
        });
        Encoded { gate, signals }
    }
}

impl Bodies {
    pub fn encode(snapshot: Arc<Snapshot>) -> Bodies {
        let gate = snapshot
            .phases
            .iter()
            .map(|v| (v.phase.clone(), (status(v.decision), encode(v))))
            .collect();
        let signals = encode(&json!({
            "evaluated_at": snapshot.evaluated_at,
            "signals": snapshot.signals,
        }));
        Bodies {
            evaluated_at: snapshot.evaluated_at,
            content: Content::Single(Encoded { gate, signals }),
        }
    }

    /// Every body fleet mode serves: each cluster's verdicts and signals, each wave's state and
    /// verdict per phase, and `/fleet`.
    pub fn encode_fleet(fleet: &FleetSnapshot) -> Bodies {
        let clusters = fleet
            .clusters
            .iter()
            .map(|c| (c.cluster.clone(), Encoded::cluster(c)))
            .collect();
        let phases: Vec<&str> = fleet.clusters.first().map_or_else(Vec::new, |c| {
            c.snapshot.phases.iter().map(|v| v.phase.as_str()).collect()
        });
        let waves = fleet
            .waves
            .iter()
            .map(|w| {
                let gate = phases
                    .iter()
                    .filter_map(|p| {
                        let v = fleet.wave_verdict(&w.wave, p)?;
                        Some((p.to_string(), (status(v.decision), encode(&v))))
                    })
                    .collect();
                let state = (status(w.decision), encode(w));
                (w.wave.clone(), WaveBodies { state, gate })
            })
            .collect();
        let body = FleetBody {
            evaluated_at: fleet.evaluated_at,
            clusters: fleet
                .clusters
                .iter()
                .map(|c| ClusterLine {
                    cluster: &c.cluster,
                    wave: &c.wave,
                    go_since: c.go_since,
                    phases: c
                        .phases()
                        .map(|v| PhaseLine {
                            phase: &v.phase,
                            decision: v.decision,
                            score: v.score,
                            stable_since: v.stable_since,
                        })
                        .collect(),
                })
                .collect(),
            waves: &fleet.waves,
            unlisted_series: fleet.unlisted_series,
        };
        Bodies {
            evaluated_at: fleet.evaluated_at,
            content: Content::Fleet(FleetBodies {
                clusters,
                waves,
                fleet: encode(&body),
            }),
        }
    }

    /// The status and body of `/gate/{phase}` for `target`, if the snapshot judged it (a
    /// snapshot of the other mode judged none).
    pub fn gate(&self, phase: &str, target: Target<'_>) -> Option<Answer> {
        match (&self.content, target) {
            (Content::Single(gate), Target::Gate) => gate.gate.get(phase),
            (Content::Fleet(f), Target::Cluster(c)) => f.clusters.get(c)?.gate.get(phase),
            (Content::Fleet(f), Target::Wave(w)) => f.waves.get(w)?.gate.get(phase),
            _ => None,
        }
        .cloned()
    }

    /// The body of `/signals` for `target` (the gate's, or a fleet cluster's).
    pub fn signals(&self, target: Target<'_>) -> Option<Bytes> {
        match (&self.content, target) {
            (Content::Single(gate), Target::Gate) => Some(&gate.signals),
            (Content::Fleet(f), Target::Cluster(c)) => Some(&f.clusters.get(c)?.signals),
            _ => None,
        }
        .cloned()
    }

    /// The status and body of `/waves/{name}`, in fleet mode.
    pub fn wave(&self, name: &str) -> Option<Answer> {
        match &self.content {
            Content::Fleet(f) => Some(f.waves.get(name)?.state.clone()),
            Content::Single(_) => None,
        }
    }

    /// The body of `/fleet`, in fleet mode.
    pub fn fleet(&self) -> Option<Bytes> {
        match &self.content {
            Content::Fleet(f) => Some(f.fleet.clone()),
            Content::Single(_) => None,
        }
    }

    /// How many bytes the encoded bodies take, for the memory budget.
    pub fn encoded_bytes(&self) -> usize {
        let encoded =
            |e: &Encoded| e.signals.len() + e.gate.values().map(|a| a.1.len()).sum::<usize>();
        match &self.content {
            Content::Single(e) => encoded(e),
            Content::Fleet(f) => {
                f.fleet.len()
                    + f.clusters.values().map(encoded).sum::<usize>()
                    + f.waves
                        .values()
                        .map(|w| {
                            w.state.1.len() + w.gate.values().map(|a| a.1.len()).sum::<usize>()
                        })
                        .sum::<usize>()
            }
        }
    }
}
