//! One evaluation: ask Prometheus for every signal's window (and the baselines of its relative
//! conditions), then let the engine judge.
//!
//! The one place where the Prometheus source meets the engine, so that the daemon's loop,
//! `check` and a local `wait` all judge exactly what the same fetch returned.

use std::time::Instant;

use super::baselines::{KeptBaselines, Plan};
use crate::config::Config;
use crate::engine::snapshot::{windows, Snapshot};
use crate::prometheus::source::PrometheusSource;

/// Queries every signal once over the window its phases need, then judges every phase at `at`.
pub async fn evaluate(config: &Config, source: &PrometheusSource, at: i64) -> Snapshot {
    evaluate_keeping(config, source, at, &mut KeptBaselines::default()).await
}

/// [`evaluate`], reusing the fixed baselines in `kept` and keeping those it fetches (`serve`).
pub async fn evaluate_keeping(
    config: &Config,
    source: &PrometheusSource,
    at: i64,
    kept: &mut KeptBaselines,
) -> Snapshot {
    let started = Instant::now();
    let step = config.evaluation.step_secs();
    let pack = &config.pack;
    let windows = windows(pack, step, at, at);
    let judged = || pack.signals.iter().zip(windows.iter().copied());
    // The baselines' range queries go in the same batch, under the same bound.
    let plan = Plan::new(judged(), kept);
    let mut answers = source
        .range_all(
            judged()
                .map(|(s, w)| (s.query.as_str(), w))
                .chain(plan.queries()),
            config.evaluation.concurrency,
        )
        .await;
    let fetched = answers.split_off(pack.signals.len());
    let baselines = plan.baselines(judged(), fetched, kept, at);
    let mut snapshot = Snapshot::judge_against(pack, step, at, &answers, &baselines);
    snapshot.took = started.elapsed();
    snapshot
}
