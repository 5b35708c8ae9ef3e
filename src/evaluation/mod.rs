//! Fetch, then judge: ask Prometheus for every signal's window (and the baselines of its relative
//! conditions), then let the engine judge what came back.
//!
//! The one place where the Prometheus source meets the engine, so that `check`, a local `wait`,
//! `replay` and the daemon's loop all judge exactly what the same fetch returned. `check` and
//! `wait` judge one time over whole windows ([`evaluate`]); `replay` judges every step of a past
//! window from one range query per signal ([`evaluate_steps`]; a report, every phase's at once
//! with [`each_step`]); the daemon keeps its windows between evaluations and asks only for the
//! steps it has not seen ([`Incremental`]), with the baselines it may keep ([`baselines`]). It sits between the source and the engine: it knows
//! neither the HTTP server nor the command line.

use std::borrow::Borrow;
use std::time::Instant;

use crate::config::Config;
use crate::engine::baseline::Baselines;
use crate::engine::decide::{verdict, Member, Verdict};
use crate::engine::evaluate::judge_against;
use crate::engine::grid::Grid;
use crate::engine::pack::{Phase, Signal};
use crate::engine::series::Window;
use crate::engine::snapshot::{windows, Snapshot};
use crate::prometheus::error::SourceError;
use crate::prometheus::source::PrometheusSource;
use baselines::{KeptBaselines, Plan};
pub use incremental::{Incremental, Refreshed};

pub mod baselines;
pub mod fleet;
mod incremental;

/// Prometheus refuses range queries of more points than this per series.
pub const MAX_POINTS: i64 = 11_000;

/// Why the steps of a window could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum StepsError {
    #[error("{points} steps is more than Prometheus answers in one range query ({MAX_POINTS})")]
    TooManyPoints { points: i64 },
    #[error("signal {signal:?} could not be queried: {error}")]
    Query { signal: String, error: String },
}

/// Queries every signal once over the window its phases need, then judges every phase at `at`.
pub async fn evaluate(config: &Config, source: &PrometheusSource, at: i64) -> Snapshot {
    let started = Instant::now();
    let step = config.evaluation.step_secs();
    let pack = &config.pack;
    let judged: Vec<_> = pack
        .signals
        .iter()
        .zip(windows(pack, step, at, at))
        .collect();
    let (answers, baselines) = fetch_whole(config, source, &judged, at).await;
    let mut snapshot = Snapshot::judge_against(pack, step, at, &answers, &baselines);
    snapshot.took = started.elapsed();
    snapshot
}

/// The verdict of `phase` at every step from `from` to `to`, oldest first, from one range query
/// per signal of the phase (and one per baseline) covering the whole window plus the history its
/// `for` and the phase's `stable_for` need at the first step. A moving baseline is judged step by
/// step, as [`evaluate`] at each step would: its range query covers the whole window, moved back
/// by the offset. Unlike a snapshot, a failed query fails the whole timeline.
pub async fn evaluate_steps(
    config: &Config,
    source: &PrometheusSource,
    phase: &Phase,
    from: i64,
    to: i64,
) -> Result<Vec<Verdict>, StepsError> {
    let mut verdicts = Vec::new();
    each_step(
        config,
        source,
        std::slice::from_ref(phase),
        from,
        to,
        |_, v| verdicts.push(v),
    )
    .await?;
    Ok(verdicts)
}

/// [`evaluate_steps`] for several phases at once, each signal fetched once however many of the
/// phases judge it: `visit(i, verdict)` is called for every step of `phases[i]`, phase after
/// phase, oldest step first. A report reads every phase of a window this way, keeping only what
/// it needs of each verdict rather than every step's signal reports at once.
pub async fn each_step(
    config: &Config,
    source: &PrometheusSource,
    phases: &[Phase],
    from: i64,
    to: i64,
    mut visit: impl FnMut(usize, Verdict),
) -> Result<(), StepsError> {
    let step = config.evaluation.step_secs();
    let fetched = fetch_steps(config, source, phases, from, to).await?;
    let failed = fetched
        .judged
        .iter()
        .zip(&fetched.answers)
        .zip(&fetched.baselines)
        .find_map(|(((s, _), a), b)| match (a, b) {
            (Err(e), _) => Some((s, e.to_string())),
            (_, Baselines::Failed(e)) => Some((s, format!("baseline query failed: {e}"))),
            _ => None,
        });
    if let Some((s, error)) = failed {
        return Err(StepsError::Query {
            signal: s.name.clone(),
            error,
        });
    }
    let answers: Vec<Result<&Grid, &SourceError>> =
        fetched.answers.iter().map(Result::as_ref).collect();
    judge_steps(
        &fetched.judged,
        &answers,
        &fetched.baselines,
        phases,
        (step, ((to - from) / step) as usize),
        &mut visit,
    );
    Ok(())
}

/// What [`fetch_steps`] brought back: the signals the phases judge with their windows, and each
/// one's answer and baselines, in that order. Errors are kept, for the caller to decide what
/// they fail: the whole timeline (`replay`), or one store's clusters (a fleet).
pub struct FetchedSteps<'a> {
    pub judged: Vec<(&'a Signal, Window)>,
    pub answers: Vec<Result<Grid, SourceError>>,
    pub baselines: Vec<Baselines>,
}

/// The fetch of [`each_step`]: one range query per signal `phases` judge (and one per baseline)
/// over the window plus the history the first step needs, refused before anything is asked when
/// a query would exceed Prometheus' points per series.
pub async fn fetch_steps<'a>(
    config: &'a Config,
    source: &PrometheusSource,
    phases: &[Phase],
    from: i64,
    to: i64,
) -> Result<FetchedSteps<'a>, StepsError> {
    let judged = judged_in(config, phases, from, to);
    if let Some(points) = judged
        .iter()
        .flat_map(|(s, w)| {
            [
                Some(*w),
                s.is_relative().then(|| s.baseline.query_window(*w)),
            ]
        })
        .flatten()
        .map(|w| w.len() as i64)
        .max()
        .filter(|&p| p > MAX_POINTS)
    {
        return Err(StepsError::TooManyPoints { points });
    }
    let (answers, baselines) = fetch_whole(config, source, &judged, to).await;
    Ok(FetchedSteps {
        judged,
        answers,
        baselines,
    })
}

/// The judge of [`each_step`]: every step of every phase from answers already fetched, one per
/// judged signal (each on its own window, all ending at the same step), `steps` steps of `step`
/// seconds back from that end and the end itself, `visit(i, verdict)` called phase after phase,
/// oldest step first.
pub fn judge_steps<E: std::fmt::Display, B: Borrow<Baselines>>(
    judged: &[(&Signal, Window)],
    answers: &[Result<&Grid, E>],
    baselines: &[B],
    phases: &[Phase],
    (step, steps): (i64, usize),
    visit: &mut impl FnMut(usize, Verdict),
) {
    let timelines: Vec<_> = judged
        .iter()
        .zip(answers)
        .zip(baselines)
        .map(|(((s, w), a), b)| judge_against(s, a.as_ref().copied(), b.borrow(), *w))
        .collect();
    for (i, phase) in phases.iter().enumerate() {
        let members: Vec<Member> = judged
            .iter()
            .zip(&timelines)
            .filter(|((signal, _), _)| signal.in_phase(&phase.name))
            .map(|((signal, _), timeline)| Member { signal, timeline })
            .collect();
        for offset in (0..=steps).rev() {
            visit(i, verdict(phase, &members, step, offset));
        }
    }
}

/// The signals any of `phases` judges, each with the window its steps from `from` to `to` need.
fn judged_in<'a>(
    config: &'a Config,
    phases: &[Phase],
    from: i64,
    to: i64,
) -> Vec<(&'a Signal, Window)> {
    let step = config.evaluation.step_secs();
    config
        .pack
        .signals
        .iter()
        .zip(windows(&config.pack, step, from, to))
        .filter(|(s, _)| phases.iter().any(|p| s.in_phase(&p.name)))
        .collect()
}

/// Each judged signal's answer over its whole window, and its baselines: one batch of range
/// queries under the configured bound, the baselines' with the signals', nothing kept from before.
async fn fetch_whole(
    config: &Config,
    source: &PrometheusSource,
    judged: &[(&Signal, Window)],
    at: i64,
) -> (Vec<Result<Grid, SourceError>>, Vec<Baselines>) {
    let kept = &mut KeptBaselines::default();
    let max_series = |s: &Signal| config.evaluation.max_series(s);
    let plan = Plan::new(judged.iter().copied(), kept, max_series);
    let mut answers = source
        .range_all(
            judged
                .iter()
                .map(|(s, w)| (s.query.as_str(), *w, max_series(s)))
                .chain(plan.queries()),
            config.evaluation.concurrency,
        )
        .await;
    let fetched = answers.split_off(judged.len());
    let baselines = plan.baselines(judged.iter().copied(), fetched, kept, at);
    (answers, baselines)
}
