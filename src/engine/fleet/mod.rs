//! A fleet: many clusters behind one or a few central stores, judged one by one, upgraded in
//! waves.
//!
//! Packs stay written for one cluster. Each query is [`rewrite`]n to answer for every cluster of
//! a store at once, its answer is [`split`] per cluster, and each cluster is judged alone by the
//! same [`crate::engine::snapshot::Snapshot`] a single gate takes; then [`waves`] says, from those verdicts, whether each
//! wave may start. Pure, like the rest of the engine: the evaluation fetches, this judges.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use cluster::{ClusterSnapshot, ClusterVerdict};
pub use rewrite::{rewrite, rewrite_query, Refusal, Scope};
pub use waves::{GoSince, Wave, WaveState, WaveVerdict};

pub mod cluster;
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
