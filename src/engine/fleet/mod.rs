//! A fleet: many clusters behind one or a few central stores, judged one by one, upgraded in
//! waves.
//!
//! Packs stay written for one cluster. Each query is [`rewrite`]n to answer for every cluster of
//! a store at once, its answer is [`split`] per cluster, and each cluster is judged alone by the
//! same [`Snapshot`] a single gate takes; then [`waves`] says, from those verdicts, whether each
//! wave may start. Pure, like the rest of the engine: the evaluation fetches, this judges.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::decide::{Decision, Verdict};
use super::pack::ALL_PHASES;
use super::snapshot::Snapshot;
pub use rewrite::{rewrite, rewrite_query, Refusal, Scope};
pub use waves::{GoSince, Wave, WaveState, WaveVerdict};

pub mod rewrite;
pub mod split;
pub mod waves;

/// Every cluster's snapshot at one evaluation time, and every wave's state.
#[derive(Debug, Clone, Serialize)]
pub struct FleetSnapshot {
    pub evaluated_at: DateTime<Utc>,
    #[serde(skip)]
    pub took: Duration,
    /// In wave order, then in the order each wave lists them.
    pub clusters: Vec<ClusterSnapshot>,
    /// In upgrade order.
    pub waves: Vec<WaveState>,
    /// Series that named no listed cluster in this evaluation's answers (ignored).
    pub unlisted_series: usize,
}

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

impl FleetSnapshot {
    /// Assembles the clusters' snapshots (each judged alone) with the waves' states, updating
    /// how long each cluster has been go.
    pub fn new(
        at: DateTime<Utc>,
        mut clusters: Vec<ClusterSnapshot>,
        waves: &[Wave],
        go_since: &mut GoSince,
        unlisted_series: usize,
    ) -> FleetSnapshot {
        for c in &mut clusters {
            c.go_since = go_since.update(c);
        }
        let order = |name: &str| {
            waves
                .iter()
                .flat_map(|w| &w.clusters)
                .position(|c| c == name)
        };
        clusters.sort_by_key(|c| order(&c.cluster));
        let waves = waves::states(at, waves, &clusters);
        FleetSnapshot {
            evaluated_at: at,
            took: Duration::ZERO,
            clusters,
            waves,
            unlisted_series,
        }
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterSnapshot> {
        self.clusters.iter().find(|c| c.cluster == name)
    }

    pub fn wave(&self, name: &str) -> Option<&WaveState> {
        self.waves.iter().find(|w| w.wave == name)
    }

    /// `phase` for every cluster of `wave`: go only when each of them is.
    pub fn wave_verdict(&self, wave: &str, phase: &str) -> Option<WaveVerdict> {
        let members: Vec<&ClusterSnapshot> =
            self.clusters.iter().filter(|c| c.wave == wave).collect();
        WaveVerdict::new(wave, phase, &members)
    }
}
