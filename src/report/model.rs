//! The report's data: from what each phase decided at each step, the story a person reads —
//! bands of go, soak, no-go and unknown per phase, each signal that was ever not ok over time,
//! and the incidents with their offenders and runbook text.
//!
//! Pure: it is handed steps (from a `replay`-style evaluation, or the daemon's kept history) and
//! the pack, and knows neither Prometheus nor HTTP, so a test builds it from a handful of steps.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::decide::{Decision, SignalReport, Verdict};
use crate::engine::evaluate::Status;
use crate::engine::pack::{NoDataPolicy, Pack, Phase, Signal};
use crate::engine::text::fmt_labels;
use crate::engine::threshold::{Direction, Threshold};

/// Offenders kept per signal and step: a report names the worst few, not every series.
pub const OFFENDERS_KEPT: usize = 3;
/// Offenders named per signal in the plots' captions and per incident.
pub const OFFENDERS_SHOWN: usize = 5;

/// One signal at one step, as much as a report shows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub name: String,
    pub status: Status,
    pub no_data: NoDataPolicy,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
    /// The worst series' labels and values, only when the signal is not ok.
    pub offenders: Vec<(String, f64)>,
}

impl Judged {
    pub fn of(report: &SignalReport) -> Judged {
        let mut judged = Judged {
            name: report.name.clone(),
            status: report.status,
            no_data: report.no_data,
            value: report.value,
            baseline: report.baseline,
            offenders: Vec::new(),
        };
        if judged.troubled() {
            judged.offenders = report
                .offenders
                .iter()
                .take(OFFENDERS_KEPT)
                .map(|o| (fmt_labels(&o.labels), o.value))
                .collect();
        }
        judged
    }

    /// Counted against the gate: anything but ok, except no data where no data is fine.
    pub fn troubled(&self) -> bool {
        self.status.troubled(self.no_data)
    }
}

/// One phase at one step: its decision and its signals.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at: i64,
    pub decision: Decision,
    /// Healthy now, but not for `stable_for` yet.
    pub soaking: bool,
    /// The healthy run's start, when healthy now (what a wave's soak is counted from).
    pub stable_since: Option<i64>,
    pub signals: Vec<Judged>,
}

impl Step {
    pub fn of(verdict: &Verdict) -> Step {
        Step {
            at: verdict.evaluated_at.timestamp(),
            decision: verdict.decision,
            soaking: verdict.decision != Decision::Go && verdict.stable_since.is_some(),
            stable_since: verdict.stable_since.map(|t| t.timestamp()),
            signals: verdict.signals.iter().map(Judged::of).collect(),
        }
    }
}

/// What a phase was at one step, as a timeline band shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Go,
    /// No-go only because the healthy run is shorter than `stable_for`.
    Soak,
    NoGo,
    /// Not judged: the step is missing (the daemon was not running, or the evaluation failed),
    /// or the decision itself is unknown.
    Unknown,
}

impl State {
    pub fn of(step: &Step) -> State {
        match step.decision {
            Decision::Go => State::Go,
            Decision::NoGo if step.soaking => State::Soak,
            Decision::NoGo => State::NoGo,
            Decision::Unknown => State::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Go => "go",
            State::Soak => "soak",
            State::NoGo => "no-go",
            State::Unknown => "unknown",
        }
    }
}

/// A run of steps in the same state: `[from, to)`, `to` one step after the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Band {
    pub state: State,
    pub from: i64,
    pub to: i64,
}

/// The steps of one phase over the window, possibly with gaps.
pub struct PhaseSteps {
    pub phase: Phase,
    pub steps: Vec<Step>,
}

/// The judged window: every `step_secs` from `from` to `to`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: i64,
    pub to: i64,
    pub step_secs: i64,
}

impl Span {
    pub fn steps(&self) -> impl Iterator<Item = i64> {
        let (from, step) = (self.from, self.step_secs);
        (0..=(self.to - self.from) / step).map(move |i| from + i * step)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PhaseStory {
    pub name: String,
    pub stable_for: Duration,
    /// The last step's state.
    pub last: State,
    /// The first step at which the phase was go.
    pub first_go: Option<i64>,
    pub bands: Vec<Band>,
}

impl PhaseStory {
    /// How long the phase was not go in all: no-go, soaking or unknown.
    pub fn not_go_secs(&self) -> i64 {
        self.bands
            .iter()
            .filter(|b| b.state != State::Go)
            .map(|b| b.to - b.from)
            .sum()
    }
}

/// One point of a signal's plot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub at: i64,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
    pub status: Status,
}

/// A signal that was not ok at some step, with everything its plot and caption need.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalStory {
    pub name: String,
    pub description: Option<String>,
    pub runbook: Option<String>,
    pub warn: Option<Threshold>,
    pub fail: Option<Threshold>,
    pub critical: bool,
    pub direction: Direction,
    pub phases: Vec<String>,
    pub worst: Status,
    pub points: Vec<Point>,
    /// Series that offended, worst first: labels, worst value, steps offending.
    pub offenders: Vec<(String, f64, usize)>,
    /// Where the signal was not ok, as bands of its own.
    pub troubled: Vec<(i64, i64)>,
}

/// A maximal run of steps at which a phase was not go.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub phase: String,
    pub start: i64,
    /// The first go step after it, or one step past the window when it was still not go.
    pub end: i64,
    pub ongoing: bool,
    /// The signals not ok during it, in the order they first were.
    pub signals: Vec<String>,
    /// Per signal, its worst series during the incident.
    pub offenders: Vec<(String, String, f64)>,
    /// Per signal with one, its runbook text.
    pub runbooks: Vec<(String, String)>,
}

impl Incident {
    pub fn duration(&self) -> Duration {
        Duration::from_secs((self.end - self.start).max(0) as u64)
    }
}

/// Everything the page and the Markdown show.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// In fleet mode, whose report it is: `cluster c2 (wave canary)`, `wave prod: c3, c4`, ...
    pub subject: Option<String>,
    /// In fleet mode (but for one cluster's page): clusters × phases and the waves' starts.
    pub fleet: Option<FleetStory>,
    pub span: Span,
    /// The Prometheus URL without credentials, query or fragment.
    pub prometheus: String,
    pub config_hash: String,
    pub phases: Vec<PhaseStory>,
    pub signals: Vec<SignalStory>,
    pub incidents: Vec<Incident>,
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

impl Report {
    /// The report of `span` from each phase's steps; steps off the span's grid are ignored and
    /// missing ones are unknown.
    pub fn build(
        span: Span,
        prometheus: String,
        config_hash: String,
        pack: &Pack,
        phases: &[PhaseSteps],
    ) -> Report {
        let by_time: Vec<BTreeMap<i64, &Step>> = phases
            .iter()
            .map(|p| p.steps.iter().map(|s| (s.at, s)).collect())
            .collect();
        let stories = phases
            .iter()
            .zip(&by_time)
            .map(|(p, steps)| phase_story(span, &p.phase, steps))
            .collect();
        let incidents = phases
            .iter()
            .zip(&by_time)
            .flat_map(|(p, steps)| incidents(span, pack, &p.phase.name, steps))
            .collect();
        Report {
            subject: None,
            fleet: None,
            span,
            prometheus,
            config_hash,
            phases: stories,
            signals: signal_stories(span, pack, &by_time),
            incidents,
        }
    }
}

fn state_at(steps: &BTreeMap<i64, &Step>, at: i64) -> State {
    steps.get(&at).map_or(State::Unknown, |s| State::of(s))
}

/// Runs of equal values over the span's steps, as `[from, to)` bands.
fn runs<T: PartialEq + Copy>(span: Span, value: impl Fn(i64) -> T) -> Vec<(T, i64, i64)> {
    let mut out: Vec<(T, i64, i64)> = Vec::new();
    for at in span.steps() {
        let v = value(at);
        match out.last_mut() {
            Some((last, _, to)) if *last == v => *to = at + span.step_secs,
            _ => out.push((v, at, at + span.step_secs)),
        }
    }
    out
}

fn phase_story(span: Span, phase: &Phase, steps: &BTreeMap<i64, &Step>) -> PhaseStory {
    let bands: Vec<Band> = runs(span, |at| state_at(steps, at))
        .into_iter()
        .map(|(state, from, to)| Band { state, from, to })
        .collect();
    PhaseStory {
        name: phase.name.clone(),
        stable_for: phase.stable_for,
        last: bands.last().map_or(State::Unknown, |b| b.state),
        first_go: bands.iter().find(|b| b.state == State::Go).map(|b| b.from),
        bands,
    }
}

/// The runs of not-go steps of one phase, each with what was not ok during it.
fn incidents(span: Span, pack: &Pack, phase: &str, steps: &BTreeMap<i64, &Step>) -> Vec<Incident> {
    let end_of_window = span.to + span.step_secs;
    runs(span, |at| state_at(steps, at) == State::Go)
        .into_iter()
        .filter(|(go, _, _)| !go)
        .map(|(_, start, end)| {
            let mut signals: Vec<String> = Vec::new();
            let mut worst: BTreeMap<String, (String, f64)> = BTreeMap::new();
            for step in steps.range(start..end).map(|(_, s)| s) {
                for j in step.signals.iter().filter(|j| j.troubled()) {
                    if !signals.contains(&j.name) {
                        signals.push(j.name.clone());
                    }
                    let direction =
                        signal(pack, &j.name).map_or(Direction::HigherIsWorse, Signal::direction);
                    for (labels, value) in &j.offenders {
                        let better = worst
                            .get(&j.name)
                            .is_none_or(|(_, w)| direction.worse(*value, *w));
                        if better {
                            worst.insert(j.name.clone(), (labels.clone(), *value));
                        }
                    }
                }
            }
            let offenders = signals
                .iter()
                .filter_map(|s| worst.get(s).map(|(l, v)| (s.clone(), l.clone(), *v)))
                .collect();
            let runbooks = signals
                .iter()
                .filter_map(|s| {
                    let runbook = signal(pack, s)?.runbook.clone()?;
                    Some((s.clone(), runbook))
                })
                .collect();
            Incident {
                phase: phase.to_string(),
                start,
                end,
                ongoing: end == end_of_window,
                signals,
                offenders,
                runbooks,
            }
        })
        .collect()
}

fn signal<'a>(pack: &'a Pack, name: &str) -> Option<&'a Signal> {
    pack.signals.iter().find(|s| s.name == name)
}

/// Every signal of the pack that was not ok at some step, in pack order.
fn signal_stories(span: Span, pack: &Pack, phases: &[BTreeMap<i64, &Step>]) -> Vec<SignalStory> {
    pack.signals
        .iter()
        .filter_map(|s| {
            // A signal judged by several phases is judged the same in each: the first tells.
            let at = |t: i64| {
                phases
                    .iter()
                    .filter_map(|steps| steps.get(&t))
                    .find_map(|step| step.signals.iter().find(|j| j.name == s.name))
            };
            let judged: Vec<(i64, Option<&Judged>)> = span.steps().map(|t| (t, at(t))).collect();
            if !judged.iter().any(|(_, j)| j.is_some_and(Judged::troubled)) {
                return None;
            }
            Some(signal_story(span, s, &judged))
        })
        .collect()
}

fn signal_story(span: Span, s: &Signal, judged: &[(i64, Option<&Judged>)]) -> SignalStory {
    let direction = s.direction();
    let mut offenders: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for (labels, value) in judged
        .iter()
        .filter_map(|(_, j)| *j)
        .flat_map(|j| &j.offenders)
    {
        let entry = offenders.entry(labels).or_insert((*value, 0));
        if direction.worse(*value, entry.0) {
            entry.0 = *value;
        }
        entry.1 += 1;
    }
    let mut offenders: Vec<(String, f64, usize)> = offenders
        .into_iter()
        .map(|(l, (v, n))| (l.to_string(), v, n))
        .collect();
    offenders.sort_by(|a, b| match direction {
        Direction::HigherIsWorse => b.1.total_cmp(&a.1),
        Direction::LowerIsWorse => a.1.total_cmp(&b.1),
    });
    offenders.truncate(OFFENDERS_SHOWN);
    let troubled_at = |t: i64| {
        judged
            .get(((t - span.from) / span.step_secs) as usize)
            .and_then(|(_, j)| *j)
            .is_some_and(Judged::troubled)
    };
    SignalStory {
        name: s.name.clone(),
        description: s.description.clone(),
        runbook: s.runbook.clone(),
        warn: s.warn.clone(),
        fail: s.fail.clone(),
        critical: s.critical,
        direction,
        phases: s.phases.clone(),
        worst: judged
            .iter()
            .filter_map(|(_, j)| j.filter(|j| j.troubled()).map(|j| j.status))
            .max()
            .unwrap_or(Status::Ok),
        points: judged
            .iter()
            .map(|(at, j)| Point {
                at: *at,
                value: j.and_then(|j| j.value),
                baseline: j.and_then(|j| j.baseline),
                status: j.map_or(Status::NoData, |j| j.status),
            })
            .collect(),
        offenders,
        troubled: runs(span, troubled_at)
            .into_iter()
            .filter(|(t, _, _)| *t)
            .map(|(_, from, to)| (from, to))
            .collect(),
    }
}

/// Incidents that differ only by phase (one signal shared by several phases blocks them all
/// alike), as one row each: the phases, and the incident of the first.
pub fn grouped(incidents: &[Incident]) -> Vec<(Vec<&str>, &Incident)> {
    let mut rows: Vec<(Vec<&str>, &Incident)> = Vec::new();
    for i in incidents {
        let same = |o: &Incident| {
            (o.start, o.end, &o.signals, &o.offenders) == (i.start, i.end, &i.signals, &i.offenders)
        };
        match rows.iter_mut().find(|(_, o)| same(o)) {
            Some((phases, _)) => phases.push(&i.phase),
            None => rows.push((vec![&i.phase], i)),
        }
    }
    rows
}

#[cfg(test)]
mod tests;
