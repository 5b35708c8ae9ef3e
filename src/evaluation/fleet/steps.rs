//! A fleet's past window, step by step, as `report` reads it: per store one range query per
//! signal over the whole window (rewritten for the store's clusters) and one presence query,
//! dealt out per cluster and each cluster judged with the pack as written, exactly as
//! [`crate::evaluation::each_step`] judges one cluster.

use std::collections::HashMap;

use futures::future::join_all;

use super::FleetEvaluator;
use super::Store;
use crate::config::Config;
use crate::engine::decide::{Decision, Verdict};
use crate::engine::fleet::split::deal;
use crate::engine::grid::{value, Grid};
use crate::engine::pack::Phase;
use crate::engine::series::Window;
use crate::evaluation::{fetch_steps, judge_steps, judged_in, FetchedSteps, StepsError};

impl FleetEvaluator {
    /// Judges every step of `phases` from `from` to `to` for every cluster of the fleet:
    /// `visit(cluster, i, verdict)` for every step of `phases[i]`, cluster after cluster (store by
    /// store), then phase after phase, oldest step first. A store that fails makes its clusters'
    /// signals errors (so their steps unknown unless something known blocks), no other; a step at
    /// which a listed cluster has no presence series is unknown ("no data from cluster X at T").
    /// Only a window too long for one range query fails the whole.
    pub async fn each_step(
        &self,
        config: &Config,
        phases: &[Phase],
        from: i64,
        to: i64,
        mut visit: impl FnMut(&str, usize, Verdict),
    ) -> Result<(), StepsError> {
        let fleet = config
            .fleet
            .as_ref()
            .expect("a fleet evaluator has a fleet");
        let step = config.evaluation.step_secs();
        let steps = ((to - from).max(0) / step) as usize;
        let window = Window {
            start: from,
            end: from + steps as i64 * step,
            step,
        };
        let fetched = join_all(
            self.stores
                .iter()
                .map(|store| store.window_steps(phases, from, to, window)),
        )
        .await;
        // The pack as written, judged on the signals the store's rewritten pack fetched.
        let judged = judged_in(config, phases, from, to);
        for (store, (answers, presence)) in self.stores.iter().zip(fetched) {
            let FetchedSteps {
                answers, baselines, ..
            } = answers?;
            let dealt: Vec<Result<HashMap<String, Grid>, String>> = answers
                .iter()
                .map(|a| match a {
                    Ok(grid) => Ok(deal(grid, &fleet.label, &store.clusters).by_cluster),
                    Err(e) => Err(format!("{}: {e}", store.name)),
                })
                .collect();
            for cluster in &store.clusters {
                let seen = present(&presence, &fleet.label, cluster, steps);
                let answers: Vec<Result<&Grid, &str>> = dealt
                    .iter()
                    .map(|d| match d {
                        Ok(by_cluster) => Ok(&by_cluster[cluster]),
                        Err(e) => Err(e.as_str()),
                    })
                    .collect();
                judge_steps(
                    &judged,
                    &answers,
                    &baselines,
                    phases,
                    (step, steps),
                    &mut |i, mut verdict: Verdict| {
                        let index = ((verdict.evaluated_at.timestamp() - from) / step) as usize;
                        let absent = match &seen {
                            Ok(seen) => (!seen.get(index).copied().unwrap_or(false)).then(|| {
                                format!(
                                    "no data from cluster {cluster} at {} (no series of {} for it)",
                                    verdict.evaluated_at.to_rfc3339(),
                                    fleet.presence
                                )
                            }),
                            Err(e) => Some(e.clone()),
                        };
                        if let Some(why) = absent {
                            verdict.decision = Decision::Unknown;
                            verdict.stable_since = None;
                            verdict.reasons.insert(0, why);
                        }
                        visit(cluster, i, verdict)
                    },
                );
            }
        }
        Ok(())
    }
}

/// Per step of the window, whether `cluster` had a presence series; or why that is not known.
fn present(
    presence: &Result<Grid, String>,
    label: &str,
    cluster: &str,
    steps: usize,
) -> Result<Vec<bool>, String> {
    let grid = presence.as_ref().map_err(Clone::clone)?;
    let mut seen = vec![false; steps + 1];
    for (labels, values) in grid.series() {
        if labels.get(label).is_some_and(|c| c == cluster) {
            for (s, v) in seen.iter_mut().zip(values) {
                *s |= value(*v).is_some();
            }
        }
    }
    Ok(seen)
}

impl Store {
    /// The store's answers over the window (its rewritten queries) and its presence series.
    async fn window_steps(
        &self,
        phases: &[Phase],
        from: i64,
        to: i64,
        window: Window,
    ) -> (Result<FetchedSteps<'_>, StepsError>, Result<Grid, String>) {
        let presence = async {
            self.source
                .range(&self.presence, window, usize::MAX)
                .await
                .map_err(|e| format!("{}: presence query failed: {e}", self.name))
        };
        tokio::join!(
            fetch_steps(&self.config, &self.source, phases, from, to),
            presence
        )
    }
}
