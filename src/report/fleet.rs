//! The report of a fleet: one cluster's page, a wave's, or the whole fleet's, from the steps
//! [`FleetEvaluator::each_step`] judged for every cluster.
//!
//! A cluster's page is the single-cluster page of its own steps. A wave's (or the fleet's)
//! timelines, plots and incidents are those of the combined steps: at each step a phase is go
//! only when every cluster is, no-go when one is, unknown when only unknowns hold it; each signal
//! shows its worst cluster, whose offenders name it. Above them, clusters × phases as a heat map
//! and when each wave could have started, as `/waves/{name}` would have answered at each step.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::DateTime;

use super::build;
use super::model::{
    Cell, ClusterRow, FleetStory, Judged, PhaseSteps, Report, Span, State, Step, WaveStart,
    OFFENDERS_KEPT,
};
use super::ReportError;
use crate::config::{Config, FleetConfig};
use crate::engine::decide::{Decision, Verdict};
use crate::engine::fleet::{ClusterSnapshot, FleetSnapshot, GoSince};
use crate::engine::pack::{Pack, Phase};
use crate::engine::snapshot::Snapshot;
use crate::engine::threshold::Direction;
use crate::evaluation::fleet::FleetEvaluator;

/// Whose report: one cluster, one wave, or every cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Fleet,
    Cluster(String),
    Wave(String),
}

/// What is kept of every cluster's step for the heat map and the waves: a few bytes a step.
#[derive(Debug, Clone, Copy)]
struct Brief {
    decision: Decision,
    soaking: bool,
    stable_since: Option<i64>,
}

/// The fleet's `scope` over `phases` from `from` to `to`, judged through
/// [`FleetEvaluator::each_step`]. An unlisted cluster or wave is the caller's to refuse; here it
/// gives a page without clusters.
pub async fn collect_fleet(
    config: &Config,
    phases: Vec<Phase>,
    scope: &Scope,
    from: i64,
    to: i64,
) -> Result<Report, ReportError> {
    if to <= from {
        return Err(ReportError::EmptyWindow);
    }
    let evaluator = FleetEvaluator::new(config).map_err(|e| ReportError::Fleet(e.to_string()))?;
    let mut steps = FleetSteps::new(config, phases.clone(), scope.clone())?;
    evaluator
        .each_step(config, &phases, from, to, |cluster, i, verdict| {
            steps.add(cluster, i, Step::of(&verdict))
        })
        .await?;
    let step_secs = config.evaluation.step_secs();
    Ok(steps.report(Span {
        from,
        to: from + (to - from) / step_secs * step_secs,
        step_secs,
    }))
}

/// Every cluster's steps as they come (from a past window's evaluation, or from what `serve`
/// kept), folded into what the page shows: the combined steps of the clusters in scope, and a
/// few bytes a step of every cluster for the heat map and the waves.
pub struct FleetSteps<'a> {
    config: &'a Config,
    fleet: &'a FleetConfig,
    phases: Vec<Phase>,
    scope: Scope,
    combined: Vec<BTreeMap<i64, Step>>,
    briefs: BTreeMap<String, Vec<BTreeMap<i64, Brief>>>,
}

impl<'a> FleetSteps<'a> {
    pub fn new(
        config: &'a Config,
        phases: Vec<Phase>,
        scope: Scope,
    ) -> Result<FleetSteps<'a>, ReportError> {
        let fleet = config.fleet.as_ref().ok_or(ReportError::NotAFleet)?;
        Ok(FleetSteps {
            config,
            fleet,
            combined: vec![BTreeMap::new(); phases.len()],
            phases,
            scope,
            briefs: BTreeMap::new(),
        })
    }

    fn wave_of(&self, cluster: &str) -> String {
        self.fleet
            .waves
            .iter()
            .find(|w| w.clusters.iter().any(|c| c == cluster))
            .map_or_else(String::new, |w| w.name.clone())
    }

    fn shown(&self, cluster: &str) -> bool {
        match &self.scope {
            Scope::Fleet => true,
            Scope::Cluster(c) => c == cluster,
            Scope::Wave(w) => *w == self.wave_of(cluster),
        }
    }

    /// One step of `cluster` for `phases[i]`.
    pub fn add(&mut self, cluster: &str, i: usize, step: Step) {
        let brief = Brief {
            decision: step.decision,
            soaking: step.soaking,
            stable_since: step.stable_since,
        };
        let phases = self.phases.len();
        self.briefs
            .entry(cluster.to_string())
            .or_insert_with(|| vec![BTreeMap::new(); phases])[i]
            .insert(step.at, brief);
        if self.shown(cluster) {
            match self.combined[i].get_mut(&step.at) {
                Some(into) => merge(&self.config.pack, into, step),
                None => {
                    self.combined[i].insert(step.at, step);
                }
            }
        }
    }

    /// The page's data over `span`.
    pub fn report(self, span: Span) -> Report {
        let (config, fleet) = (self.config, self.fleet);
        let steps: Vec<PhaseSteps> = self
            .phases
            .iter()
            .zip(&self.combined)
            .map(|(phase, steps)| PhaseSteps {
                phase: phase.clone(),
                steps: steps.values().cloned().collect(),
            })
            .collect();
        let mut report = build(config, span, &steps);
        let order: Vec<&String> = fleet.waves.iter().flat_map(|w| &w.clusters).collect();
        report.subject = Some(match &self.scope {
            Scope::Fleet => format!(
                "fleet: {} clusters in {} waves",
                order.len(),
                fleet.waves.len()
            ),
            Scope::Cluster(c) => format!("cluster {c} (wave {})", self.wave_of(c)),
            Scope::Wave(w) => {
                let clusters: Vec<&str> = order
                    .iter()
                    .filter(|c| self.wave_of(c) == *w)
                    .map(|c| c.as_str())
                    .collect();
                format!("wave {w}: {}", clusters.join(", "))
            }
        });
        if !fleet.backends.is_empty() {
            let names: Vec<&str> = fleet.backends.iter().map(|b| b.name.as_str()).collect();
            report.prometheus = format!(
                "{} and fleet.backends {}",
                report.prometheus,
                names.join(", ")
            );
        }
        if matches!(self.scope, Scope::Cluster(_)) {
            return report;
        }
        let none = vec![BTreeMap::new(); self.phases.len()];
        let rows = order
            .iter()
            .filter(|c| self.shown(c))
            .map(|c| ClusterRow {
                cluster: c.to_string(),
                wave: self.wave_of(c),
                cells: self
                    .briefs
                    .get(c.as_str())
                    .unwrap_or(&none)
                    .iter()
                    .map(|b| cell(span, b))
                    .collect(),
            })
            .collect();
        let mut waves = self.wave_starts(span);
        if let Scope::Wave(w) = &self.scope {
            waves.retain(|s| s.wave == *w);
        }
        report.fleet = Some(FleetStory {
            phases: self.phases.iter().map(|p| p.name.clone()).collect(),
            rows,
            waves,
        });
        report
    }
}

fn state(brief: Option<&Brief>) -> State {
    match brief {
        None => State::Unknown,
        Some(b) => match b.decision {
            Decision::Go => State::Go,
            Decision::NoGo if b.soaking => State::Soak,
            Decision::NoGo => State::NoGo,
            Decision::Unknown => State::Unknown,
        },
    }
}

fn cell(span: Span, steps: &BTreeMap<i64, Brief>) -> Cell {
    let mut cell = Cell {
        worst: State::Go,
        last: State::Unknown,
        not_go_secs: 0,
        no_go: 0,
        unknown: 0,
    };
    for at in span.steps() {
        let s = state(steps.get(&at));
        match s {
            State::Go => {}
            State::Unknown => cell.unknown += 1,
            State::NoGo | State::Soak => cell.no_go += 1,
        }
        if s != State::Go {
            cell.not_go_secs += span.step_secs;
        }
        let rank = |s: State| match s {
            State::Go => 0,
            State::Soak => 1,
            State::Unknown => 2,
            State::NoGo => 3,
        };
        if rank(s) > rank(cell.worst) {
            cell.worst = s;
        }
        cell.last = s;
    }
    cell
}

impl FleetSteps<'_> {
    /// Each wave's answer at every step, as the daemon's would have been had it evaluated each step
    /// of the window in turn (the soak counted from what the window proves).
    fn wave_starts(&self, span: Span) -> Vec<WaveStart> {
        let (fleet, phases, briefs) = (self.fleet, &self.phases, &self.briefs);
        let clusters: Vec<&String> = fleet.waves.iter().flat_map(|w| &w.clusters).collect();
        let mut go_since = GoSince::default();
        let mut starts: Vec<WaveStart> = fleet
            .waves
            .iter()
            .map(|w| WaveStart {
                wave: w.name.clone(),
                clusters: w.clusters.clone(),
                soak: w.soak,
                start: None,
                held_secs: 0,
                last: Decision::Unknown,
                reasons: Vec::new(),
            })
            .collect();
        for at in span.steps() {
            let evaluated_at = DateTime::from_timestamp(at, 0).unwrap_or_default();
            let snapshots = clusters
                .iter()
                .map(|c| {
                    let verdicts = phases
                        .iter()
                        .enumerate()
                        .map(|(i, phase)| {
                            let brief = briefs.get(c.as_str()).and_then(|p| p[i].get(&at));
                            brief_verdict(phase, evaluated_at, brief)
                        })
                        .collect();
                    ClusterSnapshot {
                        cluster: c.to_string(),
                        wave: self.wave_of(c),
                        go_since: None,
                        snapshot: Snapshot {
                            evaluated_at,
                            took: Duration::ZERO,
                            phases: verdicts,
                            signals: Vec::new(),
                        },
                    }
                })
                .collect();
            let snapshot =
                FleetSnapshot::new(evaluated_at, snapshots, &fleet.waves, &mut go_since, 0);
            for (start, state) in starts.iter_mut().zip(snapshot.waves) {
                if state.decision == Decision::Go && start.start.is_none() {
                    start.start = Some(at);
                }
                if state.decision != Decision::Go {
                    start.held_secs += span.step_secs;
                }
                start.last = state.decision;
                start.reasons = state.reasons;
            }
        }
        starts
    }
}

/// A verdict with only what a wave's answer reads: the decision and the healthy run's start.
fn brief_verdict(
    phase: &Phase,
    evaluated_at: chrono::DateTime<chrono::Utc>,
    brief: Option<&Brief>,
) -> Verdict {
    Verdict {
        phase: phase.name.clone(),
        decision: brief.map_or(Decision::Unknown, |b| b.decision),
        score: 0.0,
        min_score: phase.min_score,
        evaluated_at,
        stable_since: brief
            .and_then(|b| b.stable_since)
            .and_then(|t| DateTime::from_timestamp(t, 0)),
        stable_for: phase.stable_for,
        reasons: Vec::new(),
        signals: Vec::new(),
    }
}

/// `no_go` if either is, else `unknown` if either is, else `go`.
fn worst(a: Decision, b: Decision) -> Decision {
    match (a, b) {
        (Decision::NoGo, _) | (_, Decision::NoGo) => Decision::NoGo,
        (Decision::Unknown, _) | (_, Decision::Unknown) => Decision::Unknown,
        _ => Decision::Go,
    }
}

/// Folds another cluster's step of the same phase and time into `into`: the worst decision
/// (soaking only when every no-go is), and each signal's worst cluster with the worst offenders
/// of both.
fn merge(pack: &Pack, into: &mut Step, other: Step) {
    let soaking = |s: &Step| s.decision != Decision::NoGo || s.soaking;
    into.soaking = soaking(into) && soaking(&other);
    into.decision = worst(into.decision, other.decision);
    for judged in other.signals {
        match into.signals.iter_mut().find(|j| j.name == judged.name) {
            None => into.signals.push(judged),
            Some(kept) => {
                let direction = pack
                    .signals
                    .iter()
                    .find(|s| s.name == judged.name)
                    .map_or(Direction::HigherIsWorse, |s| s.direction());
                let mut offenders = std::mem::take(&mut kept.offenders);
                offenders.extend(judged.offenders.iter().cloned());
                offenders.sort_by(|a, b| match direction {
                    Direction::HigherIsWorse => b.1.total_cmp(&a.1),
                    Direction::LowerIsWorse => a.1.total_cmp(&b.1),
                });
                offenders.truncate(OFFENDERS_KEPT);
                if worse(direction, &judged, kept) {
                    *kept = judged;
                }
                kept.offenders = offenders;
            }
        }
    }
}

/// Whether `a` tells more about trouble than `b`: troubled first, then the worse status, then
/// the worse value.
fn worse(direction: Direction, a: &Judged, b: &Judged) -> bool {
    let rank = |j: &Judged| (j.troubled(), j.status);
    match rank(a).cmp(&rank(b)) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => match (a.value, b.value) {
            (Some(x), Some(y)) => direction.worse(x, y),
            (Some(_), None) => true,
            _ => false,
        },
    }
}
