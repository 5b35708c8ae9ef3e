//! A snapshot: every phase's verdict and every signal's result at one evaluation time.
//!
//! `serve` keeps the latest one behind an `Arc` that handlers clone, so a request never waits on
//! Prometheus; `check` takes one and prints it. Built from answers already fetched: the engine
//! never asks Prometheus itself.

use std::borrow::Borrow;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::baseline::Baselines;
use super::decide::{verdict, Member, SignalReport, Verdict};
use super::evaluate::judge_against;
use super::grid::Grid;
use super::pack::{Pack, Signal, ALL_PHASES};
use super::series::Window;

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
    /// Judges answers already fetched, one per signal in pack order, each on the grid of the
    /// window [`windows`] gives it (owned, or borrowed from a cache); `step` is the evaluation
    /// interval in seconds.
    pub fn judge<G: Borrow<Grid>, E: std::fmt::Display>(
        pack: &Pack,
        step: i64,
        at: i64,
        answers: &[Result<G, E>],
    ) -> Snapshot {
        Snapshot::judge_against::<G, E, Baselines>(pack, step, at, answers, &[])
    }

    /// [`Snapshot::judge`] with each signal's baselines, in pack order. A signal with a relative
    /// condition whose baselines are not given is `error`: it cannot be judged without them.
    /// Baselines may be borrowed, as a fleet's clusters share most of theirs.
    pub fn judge_against<G: Borrow<Grid>, E: std::fmt::Display, B: Borrow<Baselines>>(
        pack: &Pack,
        step: i64,
        at: i64,
        answers: &[Result<G, E>],
        baselines: &[B],
    ) -> Snapshot {
        let started = Instant::now();
        let missing = Baselines::Failed("no baseline was fetched".into());
        let timelines: Vec<_> = pack
            .signals
            .iter()
            .zip(answers)
            .zip(windows(pack, step, at, at))
            .enumerate()
            .map(|(i, ((s, a), w))| {
                let b = baselines.get(i).map_or(
                    if s.is_relative() {
                        &missing
                    } else {
                        &Baselines::Unused
                    },
                    Borrow::borrow,
                );
                judge_against(s, a.as_ref().map(Borrow::borrow), b, w)
            })
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
/// (`to` rounded down onto the `step`-second grid that starts at `from`): each reaches back far enough for
/// the signal's `for` and its phases' `stable_for` at `from`.
pub fn windows(pack: &Pack, step: i64, from: i64, to: i64) -> Vec<Window> {
    let end = from + (to - from).max(0) / step * step;
    pack.signals
        .iter()
        .map(|s| Window {
            start: from - step * steps_back(pack, step, s) as i64,
            end,
            step,
        })
        .collect()
}

/// Steps of history a signal needs: the longest `stable_for` among its phases, plus its own `for`
/// so that the first step of the stability window already knows whether `for` held.
fn steps_back(pack: &Pack, step: i64, signal: &Signal) -> usize {
    let step = step as u64;
    let stable = pack
        .phases
        .iter()
        .filter(|p| signal.in_phase(&p.name))
        .map(|p| p.stable_for.as_secs())
        .max()
        .unwrap_or(0);
    (stable.div_ceil(step) + signal.for_.as_secs().div_ceil(step)) as usize
}
