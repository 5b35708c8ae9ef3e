//! One evaluation: ask Prometheus for every signal's window, then let the engine judge.
//!
//! The one place where the Prometheus source meets the engine, so that the daemon's loop,
//! `check` and a local `wait` all judge exactly what the same fetch returned.

use std::time::Instant;

use crate::config::Config;
use crate::engine::snapshot::{windows, Snapshot};
use crate::prometheus::source::PrometheusSource;

/// Queries every signal once over the window its phases need, then judges every phase at `at`.
pub async fn evaluate(config: &Config, source: &PrometheusSource, at: i64) -> Snapshot {
    let started = Instant::now();
    let step = config.evaluation.step_secs();
    let pack = &config.pack;
    let answers = source
        .range_all(
            pack.signals
                .iter()
                .map(|s| s.query.as_str())
                .zip(windows(pack, step, at, at)),
            config.evaluation.concurrency,
        )
        .await;
    let mut snapshot = Snapshot::judge(pack, step, at, &answers);
    snapshot.took = started.elapsed();
    snapshot
}
