//! A snapshot: every phase's verdict and every signal's result at one evaluation time.
//!
//! `serve` keeps the latest one behind an `Arc` that handlers clone, so a request never waits on
//! Prometheus; `check` takes one and prints it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::decide::{verdict, Member, SignalReport, Verdict};
use crate::evaluate::judge;
use crate::pack::{Signal, ALL_PHASES};
use crate::source::{PrometheusSource, Series, SourceError, Window};

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub evaluated_at: DateTime<Utc>,
    /// Wall time the evaluation took, for the duration metric.
    #[serde(skip)]
    pub took: Duration,
    /// One verdict per configured phase, then the `all` pseudo-phase.
    pub phases: Vec<Verdict>,
    /// Every signal at the evaluated time, in pack order.
    pub signals: Vec<SignalReport>,
}

impl Snapshot {
    /// Queries every signal once over the window its phases need, then judges every phase.
    pub async fn take(config: &Config, source: &PrometheusSource, at: i64) -> Snapshot {
        let started = Instant::now();
        let windows = windows(config, at, at);
        let answers = source
            .range_all(
                config
                    .pack
                    .signals
                    .iter()
                    .map(|s| s.query.as_str())
                    .zip(windows.iter().copied()),
                config.evaluation.concurrency,
            )
            .await;
        let mut snapshot = Snapshot::judge(config, at, &answers);
        snapshot.took = started.elapsed();
        snapshot
    }

    /// The pure half of [`Snapshot::take`]: judges answers already fetched, one per signal in
    /// pack order, each over the window [`windows`] gives it.
    pub fn judge(
        config: &Config,
        at: i64,
        answers: &[Result<Vec<Series>, SourceError>],
    ) -> Snapshot {
        let started = Instant::now();
        let step = config.evaluation.interval.as_secs() as i64;
        let pack = &config.pack;
        let timelines: Vec<_> = pack
            .signals
            .iter()
            .zip(answers)
            .zip(windows(config, at, at))
            .map(|((s, a), w)| judge(s, a, w))
            .collect();
        let phases = pack
            .phase_names()
            .iter()
            .map(|name| {
                let phase = pack.phase(name).expect("named by the pack");
                let members: Vec<Member> = pack
                    .signals
                    .iter()
                    .zip(&timelines)
                    .filter(|(s, _)| s.in_phase(name))
                    .map(|(signal, timeline)| Member { signal, timeline })
                    .collect();
                verdict(&phase, &members, step, 0)
            })
            .collect();
        let signals = pack
            .signals
            .iter()
            .zip(&timelines)
            .map(|(s, t)| SignalReport::new(s, t.judgement_at(t.window().len() - 1)))
            .collect();
        Snapshot {
            evaluated_at: DateTime::from_timestamp(at, 0).unwrap_or_default(),
            took: started.elapsed(),
            phases,
            signals,
        }
    }

    pub fn verdict(&self, phase: &str) -> Option<&Verdict> {
        self.phases.iter().find(|v| v.phase == phase)
    }

    pub fn all(&self) -> &Verdict {
        self.verdict(ALL_PHASES)
            .expect("every snapshot judges the all pseudo-phase")
    }
}

/// The range-query window of each signal, in pack order, to judge every step from `from` to `to`
/// (`to` rounded down onto the step grid that starts at `from`): each reaches back far enough for
/// the signal's `for` and its phases' `stable_for` at `from`.
pub fn windows(config: &Config, from: i64, to: i64) -> Vec<Window> {
    let step = config.evaluation.interval.as_secs() as i64;
    let end = from + (to - from).max(0) / step * step;
    config
        .pack
        .signals
        .iter()
        .map(|s| Window {
            start: from - step * steps_back(config, s) as i64,
            end,
            step,
        })
        .collect()
}

/// Steps of history a signal needs: the longest `stable_for` among its phases, plus its own `for`
/// so that the first step of the stability window already knows whether `for` held.
fn steps_back(config: &Config, signal: &Signal) -> usize {
    let step = config.evaluation.interval.as_secs();
    let stable = config
        .pack
        .phases
        .iter()
        .filter(|p| signal.in_phase(&p.name))
        .map(|p| p.stable_for.as_secs())
        .max()
        .unwrap_or(0);
    (stable.div_ceil(step) + signal.for_.as_secs().div_ceil(step)) as usize
}
