//! A fleet's past window, step by step, as `report` reads it: per store one range query per
//! signal over the whole window (rewritten for the store's clusters) and one presence query,
//! dealt out per cluster and each cluster judged with the pack as written, exactly as
//! [`crate::evaluation::each_step`] judges one cluster. A signal too large for one query is
//! asked in halves of the cluster list, as `serve` asks it.

use futures::future::join_all;
use futures::stream::{self, StreamExt};

use super::Dealt;
use super::FleetEvaluator;
use super::Part;
use super::Store;
use crate::config::Config;
use crate::engine::baseline::Baselines;
use crate::engine::decide::{Decision, Verdict};
use crate::engine::grid::{value, Grid};
use crate::engine::pack::{Phase, Signal};
use crate::engine::series::Window;
use crate::evaluation::{fetch_steps, judge_steps, judged_in, FetchedSteps, StepsError};
use crate::prometheus::error::SourceError;

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
            let parts = store
                .split_steps(config, &judged, &answers, phases, (from, to))
                .await?;
            let dealt: Vec<Dealt> = answers
                .iter()
                .zip(&baselines)
                .enumerate()
                .map(|(i, (answer, baselines))| {
                    let mut parts = parts.iter().filter(|p| p.signal == i).peekable();
                    let (dealt, _) = match parts.peek() {
                        None => Dealt::whole(answer.as_ref(), baselines, fleet, &store.clusters),
                        Some(_) => Dealt::parts(
                            parts.map(|p| (p.clusters.as_slice(), p.answer.as_ref(), &p.baselines)),
                            fleet,
                        ),
                    };
                    dealt
                })
                .collect();
            for cluster in &store.clusters {
                let seen = present(&presence, &fleet.label, cluster, steps);
                let answers: Vec<Result<&Grid, &str>> = dealt
                    .iter()
                    .map(|d| d.answers[cluster].as_ref().map_err(String::as_str))
                    .collect();
                let baselines: Vec<&Baselines> =
                    dealt.iter().map(|d| d.baselines.of(cluster)).collect();
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

/// A judged signal's answer over the window for some of a store's clusters, asked because the
/// answer for all of them was too large.
struct PartSteps {
    /// The signal's index among those judged.
    signal: usize,
    clusters: Vec<String>,
    answer: Result<Grid, SourceError>,
    baselines: Baselines,
}

impl Store {
    /// Every judged signal whose answer was too large for one query over the store's clusters,
    /// asked again for halves of them (and halves of those, down to one cluster) as `serve`
    /// splits it, so that a report judges each cluster as `serve` did rather than none; at most
    /// `concurrency` parts at a time.
    async fn split_steps(
        &self,
        config: &Config,
        judged: &[(&Signal, Window)],
        answers: &[Result<Grid, SourceError>],
        phases: &[Phase],
        (from, to): (i64, i64),
    ) -> Result<Vec<PartSteps>, StepsError> {
        let fleet = config.fleet.as_ref().expect("a fleet store has a fleet");
        let too_large = |answer: &Result<Grid, SourceError>, clusters: &[String]| {
            clusters.len() > 1 && answer.as_ref().is_err_and(SourceError::is_too_large)
        };
        let halves = |i: usize, clusters: &[String]| {
            Part::halves(config, fleet, judged[i].0, clusters).map(|part| (i, part))
        };
        let mut pending: Vec<(usize, Part)> = (0..answers.len())
            .filter(|&i| too_large(&answers[i], &self.clusters))
            .flat_map(|i| halves(i, &self.clusters))
            .collect();
        let mut done = Vec::new();
        while !pending.is_empty() {
            let fetched: Vec<_> = stream::iter(std::mem::take(&mut pending))
                .map(async |(i, part)| {
                    let fetched = fetch_steps(&part.config, &self.source, phases, from, to)
                        .await
                        .map(|f| (f.answers, f.baselines));
                    (i, part, fetched)
                })
                .buffer_unordered(config.evaluation.concurrency)
                .collect()
                .await;
            for (i, part, fetched) in fetched {
                let (mut answers, mut baselines) = fetched?;
                let answer = answers.pop().expect("a part asks for its one signal");
                if too_large(&answer, &part.clusters) {
                    pending.extend(halves(i, &part.clusters));
                } else {
                    done.push(PartSteps {
                        signal: i,
                        clusters: part.clusters,
                        answer,
                        baselines: baselines.pop().expect("one baseline per signal"),
                    });
                }
            }
        }
        Ok(done)
    }

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
