//! What the daemon keeps of its own evaluations for the live page: each phase's steps over the
//! last `report.window`, bounded, so that `/` is rebuilt from memory and never waits on
//! Prometheus. Steps it did not evaluate (before it started, or while it could not) stay
//! missing, and the page shows them as unknown.

use std::collections::{BTreeMap, VecDeque};

use super::model::{PhaseSteps, Step};
use crate::engine::pack::{Pack, ALL_PHASES};
use crate::engine::snapshot::Snapshot;

#[derive(Debug, Default)]
pub struct History {
    /// Per phase, oldest first.
    phases: BTreeMap<String, VecDeque<Step>>,
    latest: Option<i64>,
}

impl History {
    /// Keeps the snapshot's verdicts and forgets steps older than `keep_secs` before it.
    pub fn record(&mut self, snapshot: &Snapshot, keep_secs: i64) {
        let at = snapshot.evaluated_at.timestamp();
        if self.latest.is_some_and(|l| at <= l) {
            return;
        }
        self.latest = Some(at);
        for v in snapshot.phases.iter().filter(|v| v.phase != ALL_PHASES) {
            self.phases
                .entry(v.phase.clone())
                .or_default()
                .push_back(Step::of(v));
        }
        for steps in self.phases.values_mut() {
            while steps.front().is_some_and(|s| s.at < at - keep_secs) {
                steps.pop_front();
            }
        }
        self.phases.retain(|_, steps| !steps.is_empty());
    }

    pub fn latest(&self) -> Option<i64> {
        self.latest
    }

    pub fn len(&self) -> usize {
        self.phases.values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kept steps of each phase the pack has now, in its order.
    pub fn steps(&self, pack: &Pack) -> Vec<PhaseSteps> {
        pack.phases
            .iter()
            .map(|phase| PhaseSteps {
                phase: phase.clone(),
                steps: self
                    .phases
                    .get(&phase.name)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default(),
            })
            .collect()
    }
}
