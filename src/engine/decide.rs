//! Score and decision per phase: go only when no critical signal is failing, no query errored,
//! the score reaches `min_score`, and all of that has held for `stable_for`.
//!
//! What is not go is either no-go or unknown. A query that errored at the evaluated step (a
//! Prometheus error, a timeout, a partial answer, a step before the window) hides the signal's
//! state, so when the signals that were judged would let the phase pass, the gate does not know
//! and says `unknown`; a failure it does know about is `no_go` whatever the errors beside it.
//! Unknown is never go: pipelines hold on it as on no-go.
//!
//! Pure: the stability window is judged from the signals' timelines, not from memory of earlier
//! cycles, so a restarted daemon answers the same as one that has been running for hours.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Serialize, Serializer};

use super::evaluate::{Judgement, Offender, Status, Timeline};
use super::pack::{NoDataPolicy, Phase, Signal};
use super::text::{fmt_labels, fmt_number, ratio};
use super::threshold::Threshold;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Go,
    NoGo,
    /// Not go because some signal could not be evaluated, while the ones that were would pass.
    Unknown,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Go => "go",
            Decision::NoGo => "no_go",
            Decision::Unknown => "unknown",
        }
    }

    /// As headings, progress lines and alert titles put it: `GO`, `NO-GO`, `UNKNOWN`.
    pub fn heading(self) -> &'static str {
        match self {
            Decision::Go => "GO",
            Decision::NoGo => "NO-GO",
            Decision::Unknown => "UNKNOWN",
        }
    }
}

/// One signal's latest result, as shown by `/signals`, `/gate` and `check`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalReport {
    pub name: String,
    pub status: Status,
    pub value: Option<f64>,
    /// The worst series' baseline (`null` when it has none, or the signal compares with none).
    pub baseline: Option<f64>,
    pub warn: Option<Threshold>,
    pub fail: Option<Threshold>,
    #[serde(rename = "for", serialize_with = "humantime_str")]
    pub for_: Duration,
    pub weight: f64,
    pub critical: bool,
    pub no_data: NoDataPolicy,
    pub phases: Vec<String>,
    pub offenders: Vec<Offender>,
    pub offending_series: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    pub query: String,
}

impl SignalReport {
    pub fn new(signal: &Signal, judgement: Judgement) -> Self {
        SignalReport {
            name: signal.name.clone(),
            status: judgement.status,
            value: judgement.value,
            baseline: judgement.baseline,
            warn: signal.warn.clone(),
            fail: signal.fail.clone(),
            for_: signal.for_,
            weight: signal.weight,
            critical: signal.critical,
            no_data: signal.no_data,
            phases: signal.phases.clone(),
            offenders: judgement.offenders,
            offending_series: judgement.offending_series,
            error: judgement.error,
            description: signal.description.clone(),
            runbook: signal.runbook.clone(),
            query: signal.query.clone(),
        }
    }
}

/// The gate's answer for one phase at one time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub phase: String,
    pub decision: Decision,
    pub score: f64,
    pub min_score: f64,
    pub evaluated_at: DateTime<Utc>,
    /// Start of the current healthy run, when the phase is healthy now. When the run reaches back
    /// past the evaluated window this is the window's start: "at least since".
    pub stable_since: Option<DateTime<Utc>>,
    #[serde(serialize_with = "humantime_str")]
    pub stable_for: Duration,
    /// Every cause of a no-go or unknown, one sentence each; empty when go.
    pub reasons: Vec<String>,
    /// The phase's signals, worst first.
    pub signals: Vec<SignalReport>,
}

/// A duration as humantime writes it (`5m`, `1h 30m`), the form the config takes it in.
pub(crate) fn humantime_str<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// How much a signal in `status` contributes to the score (1 ok, 0.5 warn, 0 otherwise).
fn credit(signal: &Signal, status: Status) -> f64 {
    match (status, signal.no_data) {
        (Status::Ok, _) | (Status::NoData, NoDataPolicy::Ok) => 1.0,
        (Status::Warn, _) | (Status::NoData, NoDataPolicy::Warn) => 0.5,
        _ => 0.0,
    }
}

/// `100 × Σ(weight × credit) / Σ weight`; 0 for an empty set, which validation forbids anyway.
pub fn score<'a>(members: impl IntoIterator<Item = (&'a Signal, Status)>) -> f64 {
    let (earned, total) =
        members
            .into_iter()
            .fold((0.0, 0.0), |(earned, total), (signal, status)| {
                (
                    earned + signal.weight * credit(signal, status),
                    total + signal.weight,
                )
            });
    if total > 0.0 {
        100.0 * earned / total
    } else {
        0.0
    }
}

/// A status that blocks the phase whatever the score: any query error (fail closed), or a
/// critical signal failing or returning no data under `no_data: fail`.
fn blocks(signal: &Signal, status: Status) -> bool {
    match status {
        Status::Error => true,
        Status::Fail => signal.critical,
        Status::NoData => signal.critical && signal.no_data == NoDataPolicy::Fail,
        Status::Ok | Status::Warn => false,
    }
}

/// Healthy at one instant: nothing blocks and the score reaches the bar.
fn healthy<'a>(
    phase: &Phase,
    statuses: impl Iterator<Item = (&'a Signal, Status)> + Clone,
) -> bool {
    !statuses.clone().any(|(s, st)| blocks(s, st)) && score(statuses) >= phase.min_score
}

/// Not go, but only for want of an answer: some signal errored, and with every error read as
/// `ok` the phase would be healthy, so no known status blocks it.
fn unknown<'a>(
    phase: &Phase,
    statuses: impl Iterator<Item = (&'a Signal, Status)> + Clone,
) -> bool {
    let known = statuses.clone().map(|(s, st)| match st {
        Status::Error => (s, Status::Ok),
        st => (s, st),
    });
    statuses.clone().any(|(_, st)| st == Status::Error) && healthy(phase, known)
}

/// A phase's members: each signal with its timeline, all ending at the evaluated time.
pub struct Member<'a> {
    pub signal: &'a Signal,
    pub timeline: &'a Timeline<'a>,
}

impl Member<'_> {
    /// Status `back` steps before the end of the window.
    fn status_back(&self, back: usize) -> Status {
        let len = self.timeline.window().len();
        if back < len {
            self.timeline.status_at(len - 1 - back)
        } else {
            // Before the queried window nothing is known, which is never healthy.
            Status::Error
        }
    }
}

/// Decides `phase` `offset` steps before the common end of the members' windows (0: at the end).
pub fn verdict(phase: &Phase, members: &[Member<'_>], step_secs: i64, offset: usize) -> Verdict {
    let end = members.first().map_or(0, |m| m.timeline.window().end) - offset as i64 * step_secs;
    let evaluated_at = timestamp(end);
    let steps_needed = phase.stable_for.as_secs().div_ceil(step_secs as u64) as usize;
    let statuses_back = |back: usize| {
        members
            .iter()
            .map(move |m| (m.signal, m.status_back(offset + back)))
    };

    let healthy_run = (0..=steps_needed)
        .take_while(|&back| healthy(phase, statuses_back(back)))
        .count();
    let stable_since =
        (healthy_run > 0).then(|| timestamp(end - (healthy_run as i64 - 1) * step_secs));
    let stable_secs = (healthy_run as i64 - 1).max(0) * step_secs;
    let go = healthy_run > 0 && stable_secs as u64 >= phase.stable_for.as_secs();

    let mut reports: Vec<(&Signal, SignalReport)> = members
        .iter()
        .map(|m| {
            let len = m.timeline.window().len();
            (
                m.signal,
                SignalReport::new(m.signal, m.timeline.judgement_at(len - 1 - offset)),
            )
        })
        .collect();
    // Worst first: what blocks, then what costs the most score, so reasons and tables lead with
    // the cause. A `no_data` under `no_data: ok` sorts with the healthy signals.
    reports.sort_by(|(sa, a), (sb, b)| {
        blocks(sb, b.status)
            .cmp(&blocks(sa, a.status))
            .then(credit(sa, a.status).total_cmp(&credit(sb, b.status)))
            .then(b.status.cmp(&a.status))
            .then(b.critical.cmp(&a.critical))
            .then(b.weight.total_cmp(&a.weight))
            .then(a.name.cmp(&b.name))
    });
    let current = score(reports.iter().map(|(s, r)| (*s, r.status)));
    let decision = if go {
        Decision::Go
    } else if unknown(phase, statuses_back(0)) {
        Decision::Unknown
    } else {
        Decision::NoGo
    };

    let mut reasons = Vec::new();
    if !go {
        let shared = shared_errors(reports.iter().map(|(_, r)| r));
        reasons.extend(
            shared
                .iter()
                .map(|(error, names)| common_cause(error, names)),
        );
        reasons.extend(
            reports
                .iter()
                .filter(|(s, r)| blocks(s, r.status))
                .filter(|(_, r)| !r.error.as_deref().is_some_and(|e| shared.contains_key(e)))
                .map(|(s, r)| explain(s, r)),
        );
        // Unknown: the score is short only by what could not be evaluated, said above.
        if current < phase.min_score && decision == Decision::NoGo {
            reasons.push(format!(
                "score {} is below min_score {}",
                fmt_number(current),
                fmt_number(phase.min_score)
            ));
            reasons.extend(
                reports
                    .iter()
                    .filter(|(s, r)| !blocks(s, r.status) && credit(s, r.status) < 1.0)
                    .map(|(s, r)| explain(s, r)),
            );
        }
        if let Some(since) = stable_since {
            reasons.push(format!(
                "healthy for {} of the required stable_for {} (since {})",
                humantime::format_duration(Duration::from_secs(stable_secs as u64)),
                humantime::format_duration(phase.stable_for),
                since.to_rfc3339(),
            ));
        }
    }

    let signals: Vec<SignalReport> = reports.into_iter().map(|(_, r)| r).collect();

    Verdict {
        phase: phase.name.clone(),
        decision,
        score: current,
        min_score: phase.min_score,
        evaluated_at,
        stable_since,
        stable_for: phase.stable_for,
        reasons,
        signals,
    }
}

/// Errors that two or more signals share, with the signals' names: one cause (an unreachable
/// Prometheus, refused credentials) is said once rather than once per signal.
pub fn shared_errors<'a>(
    reports: impl IntoIterator<Item = &'a SignalReport>,
) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut by_error: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in reports {
        if let Some(e) = &r.error {
            by_error.entry(e).or_default().push(&r.name);
        }
    }
    by_error.retain(|_, names| names.len() > 1);
    by_error
}

/// Most signal names a common-cause sentence lists; the rest are counted.
const MAX_NAMED: usize = 5;

/// `<error> (28 signals could not be evaluated: a, b, c, d, e and 23 more)`.
fn common_cause(error: &str, names: &[&str]) -> String {
    let listed = names[..names.len().min(MAX_NAMED)].join(", ");
    let more = match names.len().saturating_sub(MAX_NAMED) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(
        "{error} ({} signals could not be evaluated: {listed}{more})",
        names.len()
    )
}

/// One sentence about a signal that is not healthy: what, which series, how bad, against what.
fn explain(signal: &Signal, report: &SignalReport) -> String {
    let who = if signal.critical {
        format!("critical signal {:?}", signal.name)
    } else {
        format!("signal {:?}", signal.name)
    };
    let mut sentence = match report.status {
        Status::Error => format!(
            "{who} could not be evaluated: {}",
            report.error.as_deref().unwrap_or("unknown error")
        ),
        Status::NoData => format!(
            "{who} returned no data (no_data: {})",
            policy_name(signal.no_data)
        ),
        Status::Fail | Status::Warn => {
            let worst = report.offenders.first();
            let (threshold_name, threshold) = if report.status == Status::Fail {
                ("fail", &signal.fail)
            } else if worst.is_some_and(|o| !signal.breaches_warn(o.value, o.baseline)) {
                ("fail (pending `for`)", &signal.fail)
            } else {
                ("warn", &signal.warn)
            };
            let series = worst.map_or_else(String::new, |o| format!("{} ", fmt_labels(&o.labels)));
            let value = worst.map(|o| o.value).or(report.value);
            let baseline = worst.map_or(report.baseline, |o| o.baseline);
            // Name the condition the worst series breaches, or why it counts without one.
            let breach = match (threshold, value) {
                (Some(t), Some(v)) => match t.breached(v, baseline) {
                    Some(c) => format!("breaches {threshold_name} {c}"),
                    None if baseline.is_none() && t.is_relative() => format!(
                        "has no baseline (no_baseline: {})",
                        policy_name(signal.no_baseline)
                    ),
                    None => format!("breaches {threshold_name} {t}"),
                },
                (t, _) => format!(
                    "breaches {threshold_name} {}",
                    t.as_ref().map_or("?".to_string(), |t| t.to_string())
                ),
            };
            let against = match (value, baseline) {
                (Some(v), Some(b)) => match ratio(v, b) {
                    Some(r) => format!(" is {r}x its baseline {},", fmt_number(b)),
                    None => format!(" against its baseline {},", fmt_number(b)),
                },
                _ => String::new(),
            };
            let mut s = format!(
                "{who} is {}: {series}= {}{against} {breach}",
                report.status.as_str(),
                value.map_or("?".to_string(), fmt_number),
            );
            if report.status == Status::Fail && !signal.for_.is_zero() {
                s.push_str(&format!(" for {}", humantime::format_duration(signal.for_)));
            }
            if report.offending_series > 1 {
                s.push_str(&format!(
                    " ({} series breach in all)",
                    report.offending_series
                ));
            }
            s
        }
        Status::Ok => format!("{who} is ok"),
    };
    if let Some(runbook) = &signal.runbook {
        sentence.push_str(&format!(". Runbook: {runbook}"));
    }
    sentence
}

fn policy_name(policy: NoDataPolicy) -> &'static str {
    match policy {
        NoDataPolicy::Ok => "ok",
        NoDataPolicy::Warn => "warn",
        NoDataPolicy::Fail => "fail",
    }
}

fn timestamp(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::evaluate::judge;
    use crate::engine::grid::Grid;
    use crate::engine::series::{Series, Window};

    fn signal(name: &str, weight: f64, critical: bool, no_data: NoDataPolicy) -> Signal {
        Signal {
            name: name.into(),
            description: None,
            runbook: None,
            query: "q".into(),
            warn: Some("> 0.5".parse().unwrap()),
            fail: Some("> 1".parse().unwrap()),
            for_: Duration::ZERO,
            weight,
            critical,
            no_data,
            baseline: crate::engine::baseline::BaselineSpec::DEFAULT,
            no_baseline: NoDataPolicy::Ok,
            phases: vec![],
            origin: "test".into(),
            max_series: None,
        }
    }

    fn phase(min_score: f64, stable_secs: u64) -> Phase {
        Phase {
            name: "p".into(),
            min_score,
            stable_for: Duration::from_secs(stable_secs),
        }
    }

    const STEP: i64 = 30;

    fn window(steps_back: usize) -> Window {
        Window::ending_at(10_000, STEP, steps_back)
    }

    /// One flat-valued series per step (oldest first); `None` leaves the step empty.
    fn answer(w: Window, values: &[Option<f64>]) -> Result<Vec<Series>, String> {
        Ok(vec![Series {
            labels: [("svc".to_string(), "a".to_string())].into(),
            samples: values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (w.start + STEP * i as i64, v)))
                .collect(),
        }])
    }

    fn decide(p: &Phase, cases: &[(&Signal, Result<Vec<Series>, String>)], w: Window) -> Verdict {
        let grids: Vec<_> = cases
            .iter()
            .map(|(_, a)| {
                a.as_ref()
                    .map(|s| Grid::from_series(w, s))
                    .map_err(Clone::clone)
            })
            .collect();
        let timelines: Vec<_> = cases
            .iter()
            .zip(&grids)
            .map(|((s, _), a)| judge(s, a.as_ref(), w))
            .collect();
        let members: Vec<_> = cases
            .iter()
            .zip(&timelines)
            .map(|((s, _), t)| Member {
                signal: s,
                timeline: t,
            })
            .collect();
        verdict(p, &members, STEP, 0)
    }

    #[test]
    fn score_weights_ok_warn_and_fail() {
        let a = signal("a", 2.0, false, NoDataPolicy::Fail);
        let b = signal("b", 1.0, false, NoDataPolicy::Fail);
        let c = signal("c", 1.0, false, NoDataPolicy::Fail);
        // (2×1 + 1×0.5 + 1×0) / 4 = 62.5
        assert_eq!(
            score([(&a, Status::Ok), (&b, Status::Warn), (&c, Status::Fail)]),
            62.5
        );
        assert_eq!(score([(&a, Status::Ok), (&b, Status::Ok)]), 100.0);
        assert_eq!(score([(&a, Status::Error), (&b, Status::Ok)]), 100.0 / 3.0);
    }

    #[test]
    fn no_data_scores_by_policy() {
        let ok = signal("ok", 1.0, false, NoDataPolicy::Ok);
        let warn = signal("warn", 1.0, false, NoDataPolicy::Warn);
        let fail = signal("fail", 1.0, false, NoDataPolicy::Fail);
        assert_eq!(score([(&ok, Status::NoData)]), 100.0);
        assert_eq!(score([(&warn, Status::NoData)]), 50.0);
        assert_eq!(score([(&fail, Status::NoData)]), 0.0);
    }

    #[test]
    fn healthy_phase_is_go_with_no_reasons() {
        let s = signal("a", 1.0, true, NoDataPolicy::Fail);
        let w = window(0);
        let v = decide(&phase(90.0, 0), &[(&s, answer(w, &[Some(0.1)]))], w);
        assert_eq!(v.decision, Decision::Go);
        assert_eq!(v.score, 100.0);
        assert!(v.reasons.is_empty());
        assert_eq!(v.stable_since, Some(timestamp(10_000)));
    }

    #[test]
    fn critical_fail_is_no_go_whatever_the_score() {
        let crit = signal("crit", 1.0, true, NoDataPolicy::Fail);
        let heavy = signal("heavy", 100.0, false, NoDataPolicy::Fail);
        let w = window(0);
        let v = decide(
            &phase(50.0, 0),
            &[
                (&crit, answer(w, &[Some(5.0)])),
                (&heavy, answer(w, &[Some(0.0)])),
            ],
            w,
        );
        assert_eq!(v.decision, Decision::NoGo);
        assert!(v.score > 50.0);
        assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
        assert!(v.reasons[0].contains("critical signal \"crit\" is fail"));
        assert!(v.reasons[0].contains("svc=\"a\""));
        assert!(v.reasons[0].contains("= 5 breaches fail > 1"));
        assert_eq!(v.signals[0].name, "crit", "worst first");
    }

    #[test]
    fn low_score_names_the_score_and_each_contributor() {
        let a = signal("a", 1.0, false, NoDataPolicy::Fail);
        let b = signal("b", 1.0, false, NoDataPolicy::Fail);
        let w = window(0);
        let v = decide(
            &phase(80.0, 0),
            &[(&a, answer(w, &[Some(0.7)])), (&b, answer(w, &[Some(0.1)]))],
            w,
        );
        assert_eq!(v.score, 75.0);
        assert_eq!(v.decision, Decision::NoGo);
        assert_eq!(v.reasons[0], "score 75 is below min_score 80");
        assert!(v.reasons[1].contains("signal \"a\" is warn"));
    }

    /// A light signal that errors beside one that is judged: unknown when the judged one would
    /// pass, even when it weighs 1000 times more; no-go when it is a critical fail.
    #[test]
    fn an_error_alone_is_unknown_and_beside_a_critical_fail_no_go() {
        let broken = signal("broken", 1.0, false, NoDataPolicy::Fail);
        let w = window(0);
        let beside = |other: &Signal, value: f64| {
            decide(
                &phase(0.0, 0),
                &[
                    (&broken, Err("query timed out after 1s".to_string())),
                    (other, answer(w, &[Some(value)])),
                ],
                w,
            )
        };
        let v = beside(&signal("heavy", 1000.0, false, NoDataPolicy::Fail), 0.0);
        assert_eq!(v.decision, Decision::Unknown);
        assert_eq!(v.decision.as_str(), "unknown");
        assert_eq!(serde_json::to_value(v.decision).unwrap(), "unknown");
        assert!(v.reasons[0].contains("could not be evaluated: query timed out"));
        assert_eq!(v.reasons.len(), 1, "no score reason: {:?}", v.reasons);
        assert_eq!(v.stable_since, None);

        let v = beside(&signal("crit", 1.0, true, NoDataPolicy::Fail), 5.0);
        assert_eq!(v.decision, Decision::NoGo);
        let said = |what: &str| v.reasons.iter().any(|r| r.contains(what));
        assert!(said("critical signal \"crit\" is fail"), "{:?}", v.reasons);
        assert!(said("could not be evaluated"), "{:?}", v.reasons);
    }

    #[test]
    fn an_error_beside_a_score_too_low_without_it_is_no_go() {
        let broken = signal("broken", 1.0, false, NoDataPolicy::Fail);
        let warned = signal("warned", 1.0, false, NoDataPolicy::Fail);
        let failed = signal("failed", 1.0, false, NoDataPolicy::Fail);
        let w = window(0);
        let cases = |min_score| {
            decide(
                &phase(min_score, 0),
                &[
                    (&broken, Err("Prometheus rejected the query".to_string())),
                    (&warned, answer(w, &[Some(0.7)])),
                    (&failed, answer(w, &[Some(5.0)])),
                ],
                w,
            )
        };
        // The error read as ok: (1 + 0.5 + 0) / 3 = 50. Below 60 whatever the error hides.
        let v = cases(60.0);
        assert_eq!(v.decision, Decision::NoGo);
        assert_eq!(
            v.score,
            50.0 / 3.0,
            "the published score still counts the error as 0"
        );
        assert!(
            v.reasons
                .contains(&"score 16.6667 is below min_score 60".to_string()),
            "{:?}",
            v.reasons
        );
        // Reaching 50 once the error is read as ok: only the error stands in the way.
        let v = cases(50.0);
        assert_eq!(v.decision, Decision::Unknown, "{:?}", v.reasons);
        // Short of 50 only by the error, which the first reason names: no score reason.
        assert!(
            v.reasons[0].contains("could not be evaluated"),
            "{:?}",
            v.reasons
        );
        assert!(
            v.reasons.iter().all(|r| !r.contains("min_score")),
            "{:?}",
            v.reasons
        );
    }

    #[test]
    fn without_an_error_at_the_evaluated_step_nothing_is_unknown() {
        let s = signal("a", 1.0, true, NoDataPolicy::Fail);
        // A fail now, or a fail earlier in the soak: no-go as before.
        let w = window(2);
        let v = decide(
            &phase(90.0, 0),
            &[(&s, answer(w, &[Some(0.0), Some(0.0), Some(5.0)]))],
            w,
        );
        assert_eq!(v.decision, Decision::NoGo);
        let v = decide(
            &phase(90.0, 60),
            &[(&s, answer(w, &[Some(5.0), Some(0.0), Some(0.0)]))],
            w,
        );
        assert_eq!(v.decision, Decision::NoGo);
        // The soak reaching before the window (a step nobody judged, counted as an error): the
        // phase is judged at its last step, which is known and healthy, so no-go, not unknown.
        let w = window(0);
        let v = decide(&phase(90.0, 60), &[(&s, answer(w, &[Some(0.0)]))], w);
        assert_eq!(v.decision, Decision::NoGo);
        let w = window(2);
        let v = decide(&phase(90.0, 60), &[(&s, answer(w, &[Some(0.0); 3]))], w);
        assert_eq!(v.decision, Decision::Go);
    }

    #[test]
    fn critical_no_data_blocks_only_under_fail_policy() {
        let strict = signal("strict", 1.0, true, NoDataPolicy::Fail);
        let lenient = signal("lenient", 1.0, true, NoDataPolicy::Ok);
        let w = window(0);
        let v = decide(&phase(0.0, 0), &[(&strict, answer(w, &[None]))], w);
        assert_eq!(v.decision, Decision::NoGo);
        assert!(v.reasons[0].contains("returned no data (no_data: fail)"));
        let v = decide(&phase(90.0, 0), &[(&lenient, answer(w, &[None]))], w);
        assert_eq!(v.decision, Decision::Go);
    }

    #[test]
    fn stable_for_counts_back_from_the_last_unhealthy_step() {
        let s = signal("a", 1.0, true, NoDataPolicy::Fail);
        // 10 steps back (5m at 30s); unhealthy until 3 steps ago.
        let w = window(10);
        let mut values = vec![Some(5.0); 8];
        values.extend([Some(0.0); 3]);
        let v = decide(&phase(90.0, 300), &[(&s, answer(w, &values))], w);
        assert_eq!(v.decision, Decision::NoGo);
        assert_eq!(v.stable_since, Some(timestamp(10_000 - 2 * STEP)));
        assert_eq!(v.reasons.len(), 1);
        assert!(v.reasons[0].starts_with("healthy for 1m of the required stable_for 5m"));

        let values = vec![Some(0.0); 11];
        let v = decide(&phase(90.0, 300), &[(&s, answer(w, &values))], w);
        assert_eq!(v.decision, Decision::Go);
        assert_eq!(v.stable_since, Some(timestamp(10_000 - 10 * STEP)));
    }
}
