//! One cluster of a fleet, judged alone as a gate pointed at its own Prometheus would judge it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::decide::{Decision, Verdict};
use crate::engine::pack::ALL_PHASES;
use crate::engine::snapshot::Snapshot;

/// One cluster judged alone, as a gate pointed at its own Prometheus would judge it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterSnapshot {
    pub cluster: String,
    pub wave: String,
    /// Since when every phase has been go without a break, as far as the gate has seen it;
    /// `None` while any phase is not go.
    pub go_since: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub snapshot: Snapshot,
}

/// A phase's verdict for one cluster: today's `/gate` body, naming the cluster and its wave.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterVerdict<'a> {
    pub cluster: &'a str,
    pub wave: &'a str,
    #[serde(flatten)]
    pub verdict: &'a Verdict,
}

impl ClusterSnapshot {
    /// The cluster's verdicts for the configured phases (without the `all` pseudo-phase), which
    /// are what a wave waits on.
    pub fn phases(&self) -> impl Iterator<Item = &Verdict> {
        self.snapshot
            .phases
            .iter()
            .filter(|v| v.phase != ALL_PHASES)
    }

    pub fn verdict(&self, phase: &str) -> Option<ClusterVerdict<'_>> {
        Some(ClusterVerdict {
            cluster: &self.cluster,
            wave: &self.wave,
            verdict: self.snapshot.verdict(phase)?,
        })
    }

    /// Go for every configured phase now.
    pub fn all_go(&self) -> bool {
        self.phases().all(|v| v.decision == Decision::Go)
    }
}
