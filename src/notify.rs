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
