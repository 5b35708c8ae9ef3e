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

mod runs;

pub use runs::{Brief, Runs};

/// Whose report: one cluster, one wave, or every cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Fleet,
    Cluster(String),
    Wave(String),
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
    briefs: BTreeMap<String, Vec<Runs>>,
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
        self.brief(cluster, i, &step);
        if self.shown(cluster) {
            self.combine(i, step);
        }
    }

    /// Only what the heat map and the waves read of one step of `cluster` for `phases[i]`.
    pub fn brief(&mut self, cluster: &str, i: usize, step: &Step) {
        self.runs_of(cluster)[i].push(step.at, Brief::of(step));
    }

    /// What the heat map and the waves read of every step of `cluster` for `phases[i]`, as kept.
    pub fn briefs(&mut self, cluster: &str, i: usize, runs: &Runs) {
        self.runs_of(cluster)[i] = runs.clone();
    }

    fn runs_of(&mut self, cluster: &str) -> &mut Vec<Runs> {
        let none = || vec![Runs::new(self.config.evaluation.step_secs()); self.phases.len()];
        self.briefs.entry(cluster.to_string()).or_insert_with(none)
    }

    /// A step for `phases[i]` of a cluster in scope, or of several already combined.
    pub fn combine(&mut self, i: usize, step: Step) {
        match self.combined[i].get_mut(&step.at) {
            Some(into) => merge(&self.config.pack, into, step),
            None => {
                self.combined[i].insert(step.at, step);
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
        let none = vec![Runs::new(span.step_secs); self.phases.len()];
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

fn cell(span: Span, steps: &Runs) -> Cell {
    let mut cell = Cell {
        worst: State::Go,
        last: State::Unknown,
        not_go_secs: 0,
        no_go: 0,
        unknown: 0,
    };
    for at in span.steps() {
        let s = state(steps.get(at));
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
                            let brief = briefs.get(c.as_str()).and_then(|p| p[i].get(at));
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
pub fn merge(pack: &Pack, into: &mut Step, other: Step) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::evaluate::Status;
    use crate::engine::fleet::Wave;
    use crate::engine::pack::NoDataPolicy;

    const T: i64 = 1_800_000_000;
    const STEP: i64 = 60;

    /// The default pack, one phase, two waves: a (x, y), then b (z) after a 2-minute soak.
    fn config() -> Config {
        let mut config = crate::config::load(None).unwrap();
        config.evaluation.interval = Duration::from_secs(STEP as u64);
        config.pack.phases.truncate(1);
        config.pack.phases[0].stable_for = Duration::ZERO;
        let wave = |name: &str, clusters: &[&str], soak: u64| Wave {
            name: name.into(),
            clusters: clusters.iter().map(|c| c.to_string()).collect(),
            soak: Duration::from_secs(soak),
        };
        config.fleet = Some(FleetConfig {
            label: "cluster".into(),
            presence: "up".into(),
            waves: vec![wave("a", &["x", "y"], 0), wave("b", &["z"], 120)],
            backends: vec![],
        });
        config
    }

    fn step(i: i64, decision: Decision, value: f64, cluster: &str) -> Step {
        let troubled = decision != Decision::Go;
        Step {
            at: T + i * STEP,
            decision,
            soaking: false,
            // A healthy run that starts now: the soak counts from here.
            stable_since: (!troubled).then_some(T + i * STEP),
            signals: vec![Judged {
                name: "istio_5xx_ratio".into(),
                status: if troubled { Status::Fail } else { Status::Ok },
                no_data: NoDataPolicy::Fail,
                value: Some(value),
                baseline: None,
                offenders: if troubled {
                    vec![(format!("{{cluster=\"{cluster}\"}}"), value)]
                } else {
                    vec![]
                },
            }],
        }
    }

    /// Minutes 0..=7: x go throughout; y no-go at minutes 1 and 2, unknown at 3; z go.
    fn fold(config: &Config, scope: Scope) -> Report {
        let phases = config.pack.phases.clone();
        let mut steps = FleetSteps::new(config, phases, scope).unwrap();
        for i in 0..=7 {
            steps.add("x", 0, step(i, Decision::Go, 0.0, "x"));
            let y = match i {
                1 | 2 => Decision::NoGo,
                3 => Decision::Unknown,
                _ => Decision::Go,
            };
            steps.add("y", 0, step(i, y, 0.2 + i as f64, "y"));
            steps.add("z", 0, step(i, Decision::Go, 0.0, "z"));
        }
        steps.report(Span {
            from: T,
            to: T + 7 * STEP,
            step_secs: STEP,
        })
    }

    #[test]
    fn the_heat_map_names_the_worst_state_and_how_long_not_go() {
        let config = config();
        let report = fold(&config, Scope::Fleet);
        let fleet = report.fleet.unwrap();
        let y = &fleet.rows[1];
        assert_eq!(y.cluster, "y");
        assert_eq!(
            y.cells[0],
            Cell {
                worst: State::NoGo,
                last: State::Go,
                not_go_secs: 3 * STEP,
                no_go: 2,
                unknown: 1
            }
        );
        assert_eq!(fleet.rows[0].cells[0].not_go_secs, 0);
        // Combined: no-go while y is, unknown while only y's unknown holds it.
        let bands: Vec<(State, i64)> = report.phases[0]
            .bands
            .iter()
            .map(|b| (b.state, (b.from - T) / STEP))
            .collect();
        assert_eq!(
            bands,
            [
                (State::Go, 0),
                (State::NoGo, 1),
                (State::Unknown, 3),
                (State::Go, 4)
            ]
        );
        // The plot shows the worst cluster, whose offender names it.
        let signal = &report.signals[0];
        assert_eq!(signal.points[2].value, Some(2.2));
        assert_eq!(signal.offenders[0].0, "{cluster=\"y\"}");
        // b waits for a to be go for its 2-minute soak: y is again from minute 4, so minute 6.
        let b = &fleet.waves[1];
        assert_eq!(b.start, Some(T + 6 * STEP), "{b:?}");
        assert_eq!(b.held_secs, 6 * STEP);
        assert_eq!(b.last, Decision::Go);
        assert_eq!(
            fleet.waves[0].start,
            Some(T),
            "the first wave waits on none"
        );
    }

    #[test]
    fn a_wave_shows_its_clusters_and_a_cluster_its_own_page() {
        let config = config();
        let report = fold(&config, Scope::Wave("b".into()));
        assert_eq!(report.subject.as_deref(), Some("wave b: z"));
        let fleet = report.fleet.unwrap();
        assert_eq!(fleet.rows.len(), 1);
        assert_eq!(fleet.waves.len(), 1);
        assert!(report.incidents.is_empty(), "z alone was always go");
        let report = fold(&config, Scope::Cluster("y".into()));
        assert_eq!(report.subject.as_deref(), Some("cluster y (wave a)"));
        assert!(report.fleet.is_none());
        assert_eq!(report.incidents.len(), 1);
    }
}
