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

use super::model::{Judged, PhaseSteps, Report, Span, State, Step, OFFENDERS_KEPT};
use super::{build, ReportError};
use crate::config::Config;
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

/// One cluster × phase of the heat map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// The worst state of any step (no-go, then unknown, then soak): what the cell's colour says.
    pub worst: State,
    /// The last step's state.
    pub last: State,
    /// How long it was not go in all (no-go, soaking or unknown).
    pub not_go_secs: i64,
    /// Steps no-go (soaking included) and unknown.
    pub no_go: usize,
    pub unknown: usize,
}

/// One cluster's row of the heat map, a cell per phase.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRow {
    pub cluster: String,
    pub wave: String,
    pub cells: Vec<Cell>,
}

/// When a wave could first have started within the window, as `/waves/{name}` judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaveStart {
    pub wave: String,
    pub clusters: Vec<String>,
    pub soak: Duration,
    /// The first step at which it could start; `None`: not within the window.
    pub start: Option<i64>,
    /// How long in all it could not start (its answer no-go or unknown).
    pub held_secs: i64,
    /// Its answer at the last step, and why it was not go then.
    pub last: Decision,
    pub reasons: Vec<String>,
}

/// What a fleet report adds to the page: what it is about, the heat map, the waves.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetStory {
    /// The phases of the heat map's columns.
    pub phases: Vec<String>,
    pub rows: Vec<ClusterRow>,
    pub waves: Vec<WaveStart>,
}

/// What is kept of every cluster's step for the heat map and the waves: a few bytes a step.
#[derive(Debug, Clone, Copy)]
struct Brief {
    decision: Decision,
    soaking: bool,
    stable_since: Option<i64>,
}

/// The fleet's `scope` over `phases` from `from` to `to`. An unlisted cluster or wave is the
/// caller's to refuse; here it gives a page without clusters.
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
    let fleet = config.fleet.as_ref().ok_or(ReportError::NotAFleet)?;
    let evaluator = FleetEvaluator::new(config).map_err(|e| ReportError::Fleet(e.to_string()))?;
    let wave_of = |cluster: &str| {
        fleet
            .waves
            .iter()
            .find(|w| w.clusters.iter().any(|c| c == cluster))
            .map_or_else(String::new, |w| w.name.clone())
    };
    let shown = |cluster: &str| match scope {
        Scope::Fleet => true,
        Scope::Cluster(c) => c == cluster,
        Scope::Wave(w) => *w == wave_of(cluster),
    };
    let mut combined: Vec<BTreeMap<i64, Step>> = vec![BTreeMap::new(); phases.len()];
    let mut briefs: BTreeMap<String, Vec<BTreeMap<i64, Brief>>> = BTreeMap::new();
    evaluator
        .each_step(config, &phases, from, to, |cluster, i, verdict: Verdict| {
            let at = verdict.evaluated_at.timestamp();
            let step = Step::of(&verdict);
            let brief = Brief {
                decision: verdict.decision,
                soaking: step.soaking,
                stable_since: verdict.stable_since.map(|t| t.timestamp()),
            };
            briefs
                .entry(cluster.to_string())
                .or_insert_with(|| vec![BTreeMap::new(); phases.len()])[i]
                .insert(at, brief);
            if shown(cluster) {
                match combined[i].get_mut(&at) {
                    Some(into) => merge(&config.pack, into, step),
                    None => {
                        combined[i].insert(at, step);
                    }
                }
            }
        })
        .await?;
    let step_secs = config.evaluation.step_secs();
    let span = Span {
        from,
        to: from + (to - from) / step_secs * step_secs,
        step_secs,
    };
    let steps: Vec<PhaseSteps> = phases
        .iter()
        .zip(combined)
        .map(|(phase, steps)| PhaseSteps {
            phase: phase.clone(),
            steps: steps.into_values().collect(),
        })
        .collect();
    let mut report = build(config, span, &steps);
    let order: Vec<&String> = fleet.waves.iter().flat_map(|w| &w.clusters).collect();
    report.subject = Some(match scope {
        Scope::Fleet => format!(
            "fleet: {} clusters in {} waves",
            order.len(),
            fleet.waves.len()
        ),
        Scope::Cluster(c) => format!("cluster {c} (wave {})", wave_of(c)),
        Scope::Wave(w) => {
            let clusters: Vec<&str> = order
                .iter()
                .filter(|c| wave_of(c) == *w)
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
    if matches!(scope, Scope::Cluster(_)) {
        return Ok(report);
    }
    let rows = order
        .iter()
        .filter(|c| shown(c))
        .map(|c| ClusterRow {
            cluster: c.to_string(),
            wave: wave_of(c),
            cells: match briefs.get(c.as_str()) {
                Some(per_phase) => per_phase.iter().map(|b| cell(span, b)).collect(),
                None => phases
                    .iter()
                    .map(|_| cell(span, &BTreeMap::new()))
                    .collect(),
            },
        })
        .collect();
    let mut waves = wave_starts(config, span, &phases, &briefs, &wave_of);
    if let Scope::Wave(w) = scope {
        waves.retain(|s| s.wave == *w);
    }
    report.fleet = Some(FleetStory {
        phases: phases.iter().map(|p| p.name.clone()).collect(),
        rows,
        waves,
    });
    Ok(report)
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

/// Each wave's answer at every step, as the daemon's would have been had it evaluated each step
/// of the window in turn (the soak counted from what the window proves).
fn wave_starts(
    config: &Config,
    span: Span,
    phases: &[Phase],
    briefs: &BTreeMap<String, Vec<BTreeMap<i64, Brief>>>,
    wave_of: &dyn Fn(&str) -> String,
) -> Vec<WaveStart> {
    let Some(fleet) = config.fleet.as_ref() else {
        return Vec::new();
    };
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
                    wave: wave_of(c),
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
        let snapshot = FleetSnapshot::new(evaluated_at, snapshots, &fleet.waves, &mut go_since, 0);
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
