//! Transitions of health between two snapshots, and the seam through which they reach people.
//!
//! Only changes are announced: a phase's decision flipping, or a signal entering or leaving
//! `fail`/`error`. The first evaluation after start-up has nothing to compare with, so a restart
//! does not re-announce what was already known.

use crate::decide::Decision;
use crate::evaluate::Status;
use crate::snapshot::Snapshot;

#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Phase {
        phase: String,
        from: Decision,
        to: Decision,
        score: f64,
        reasons: Vec<String>,
    },
    Signal {
        signal: String,
        from: Status,
        to: Status,
    },
}

/// Something that tells people about transitions. Implementations must not block: they are
/// called from the evaluation loop.
pub trait Notifier: Send + Sync {
    fn notify(&self, transition: &Transition);
}

/// Writes each transition as one structured log line.
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn notify(&self, transition: &Transition) {
        match transition {
            Transition::Phase {
                phase,
                from,
                to,
                score,
                reasons,
            } => tracing::warn!(
                phase = %phase,
                from = from.as_str(),
                to = to.as_str(),
                score = *score,
                reasons = ?reasons,
                "phase decision changed"
            ),
            Transition::Signal { signal, from, to } => tracing::warn!(
                signal = %signal,
                from = from.as_str(),
                to = to.as_str(),
                "signal health changed"
            ),
        }
    }
}

fn alarming(status: Status) -> bool {
    matches!(status, Status::Fail | Status::Error)
}

/// What changed from `prev` to `next`, phases first.
pub fn transitions(prev: Option<&Snapshot>, next: &Snapshot) -> Vec<Transition> {
    let Some(prev) = prev else {
        return Vec::new();
    };
    let phases = next.phases.iter().filter_map(|v| {
        let before = prev.verdict(&v.phase)?;
        (before.decision != v.decision).then(|| Transition::Phase {
            phase: v.phase.clone(),
            from: before.decision,
            to: v.decision,
            score: v.score,
            reasons: v.reasons.clone(),
        })
    });
    let signals = next.signals.iter().filter_map(|s| {
        let before = prev.signals.iter().find(|p| p.name == s.name)?;
        (before.status != s.status && (alarming(before.status) || alarming(s.status))).then(|| {
            Transition::Signal {
                signal: s.name.clone(),
                from: before.status,
                to: s.status,
            }
        })
    });
    phases.chain(signals).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{SignalReport, Verdict};
    use crate::pack::NoDataPolicy;
    use std::time::Duration;

    fn snapshot(decision: Decision, statuses: &[(&str, Status)]) -> Snapshot {
        let signals: Vec<SignalReport> = statuses
            .iter()
            .map(|(name, status)| SignalReport {
                name: name.to_string(),
                status: *status,
                value: None,
                warn: None,
                fail: None,
                for_: Duration::ZERO,
                weight: 1.0,
                critical: false,
                no_data: NoDataPolicy::Fail,
                offenders: vec![],
                offending_series: 0,
                error: None,
                description: None,
                runbook: None,
                query: "q".into(),
            })
            .collect();
        Snapshot {
            evaluated_at: chrono::DateTime::UNIX_EPOCH,
            took: Duration::ZERO,
            phases: vec![Verdict {
                phase: "istio".into(),
                decision,
                score: 50.0,
                min_score: 90.0,
                evaluated_at: chrono::DateTime::UNIX_EPOCH,
                stable_since: None,
                stable_for: Duration::ZERO,
                reasons: vec!["why".into()],
                signals: signals.clone(),
            }],
            signals,
        }
    }

    #[test]
    fn the_first_evaluation_announces_nothing() {
        let next = snapshot(Decision::NoGo, &[("a", Status::Fail)]);
        assert!(transitions(None, &next).is_empty());
    }

    #[test]
    fn decision_flips_and_fail_or_error_edges_are_announced() {
        let prev = snapshot(
            Decision::Go,
            &[
                ("a", Status::Ok),
                ("b", Status::Fail),
                ("c", Status::Ok),
                ("d", Status::Ok),
            ],
        );
        let next = snapshot(
            Decision::NoGo,
            &[
                ("a", Status::Fail),
                ("b", Status::Ok),
                ("c", Status::Warn),
                ("d", Status::Error),
            ],
        );
        let got = transitions(Some(&prev), &next);
        assert_eq!(
            got[0],
            Transition::Phase {
                phase: "istio".into(),
                from: Decision::Go,
                to: Decision::NoGo,
                score: 50.0,
                reasons: vec!["why".into()],
            }
        );
        let signals: Vec<_> = got[1..]
            .iter()
            .map(|t| match t {
                Transition::Signal { signal, from, to } => (signal.as_str(), *from, *to),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            signals,
            [
                ("a", Status::Ok, Status::Fail),
                ("b", Status::Fail, Status::Ok),
                ("d", Status::Ok, Status::Error)
            ],
            "ok -> warn is not announced"
        );
        assert!(
            transitions(Some(&next), &next).is_empty(),
            "no change, nothing to say"
        );
    }
}
