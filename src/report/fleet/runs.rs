//! One cluster's steps for one phase as runs of consecutive steps that say the same thing. A
//! fleet's page reads a decision per cluster, phase and step: kept a step each, six hours of 200
//! clusters and six phases at 30 s are 864,000 steps (61 MB for the live page's history, as much
//! again for each build of the page); kept as runs, a healthy cluster's six hours are one run.

use std::collections::VecDeque;

use crate::engine::decide::Decision;
use crate::report::model::Step;

/// What the heat map and the waves read of one step: a few bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brief {
    pub decision: Decision,
    pub soaking: bool,
    pub stable_since: Option<i64>,
}

impl Brief {
    pub fn of(step: &Step) -> Brief {
        Brief {
            decision: step.decision,
            soaking: step.soaking,
            stable_since: step.stable_since,
        }
    }

    /// Whether `next`, the step after this one, belongs to the same run. A go step's healthy run
    /// start may move with the evaluated window ("at least since"), but a phase go at both steps
    /// has been healthy since the earlier start, which the run keeps: it is what a wave's soak
    /// counts from.
    fn continued_by(&self, next: &Brief) -> bool {
        self.decision == next.decision
            && self.soaking == next.soaking
            && (self.decision == Decision::Go || self.stable_since == next.stable_since)
    }
}

#[derive(Debug, Clone, Copy)]
struct Run {
    from: i64,
    to: i64,
    brief: Brief,
}

/// Steps `step` seconds apart, oldest first; a step not added stays missing.
#[derive(Debug, Clone)]
pub struct Runs {
    step: i64,
    runs: VecDeque<Run>,
}

impl Runs {
    pub fn new(step: i64) -> Runs {
        Runs {
            step: step.max(1),
            runs: VecDeque::new(),
        }
    }

    /// Adds the step at `at`. Steps come oldest first: one at or before the newest kept is
    /// already there, and is left as it is.
    pub fn push(&mut self, at: i64, brief: Brief) {
        if let Some(last) = self.runs.back_mut() {
            if at <= last.to {
                return;
            }
            if at == last.to + self.step && last.brief.continued_by(&brief) {
                last.to = at;
                return;
            }
        }
        self.runs.push_back(Run {
            from: at,
            to: at,
            brief,
        });
    }

    /// The step at `at`, if it was added.
    pub fn get(&self, at: i64) -> Option<&Brief> {
        let i = self.runs.partition_point(|r| r.to < at);
        let run = self.runs.get(i).filter(|r| r.from <= at)?;
        ((at - run.from) % self.step == 0).then_some(&run.brief)
    }

    /// Forgets the steps before `at`.
    pub fn forget_before(&mut self, at: i64) {
        while self.runs.front().is_some_and(|r| r.to < at) {
            self.runs.pop_front();
        }
        if let Some(first) = self.runs.front_mut() {
            if first.from < at {
                // Both positive here; rounded up to the next step of the grid.
                let behind = (at - first.from) as u64;
                first.from += (behind.div_ceil(self.step as u64) * self.step as u64) as i64;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO: Brief = Brief {
        decision: Decision::Go,
        soaking: false,
        stable_since: Some(0),
    };
    const NO_GO: Brief = Brief {
        decision: Decision::NoGo,
        soaking: false,
        stable_since: None,
    };

    fn decisions(runs: &Runs, steps: std::ops::Range<i64>) -> Vec<Option<Decision>> {
        steps
            .map(|k| runs.get(k * 30).map(|b| b.decision))
            .collect()
    }

    #[test]
    fn consecutive_equal_steps_are_one_run_and_a_missing_step_stays_missing() {
        let mut runs = Runs::new(30);
        for (k, brief) in [(0, GO), (1, GO), (2, NO_GO), (3, GO), (5, GO), (6, GO)] {
            runs.push(k * 30, brief);
        }
        runs.push(30, NO_GO); // late: already there
        assert_eq!(runs.runs.len(), 4, "{runs:?}");
        use Decision::{Go, NoGo};
        assert_eq!(
            decisions(&runs, 0..8),
            [
                Some(Go),
                Some(Go),
                Some(NoGo),
                Some(Go),
                None,
                Some(Go),
                Some(Go),
                None
            ]
        );
        assert_eq!(runs.get(15), None, "between steps");
    }

    #[test]
    fn a_go_run_keeps_its_earliest_start_and_a_soak_breaks_on_a_new_start() {
        let mut runs = Runs::new(30);
        runs.push(0, GO);
        runs.push(
            30,
            Brief {
                stable_since: Some(30),
                ..GO
            },
        );
        assert_eq!(runs.get(30).unwrap().stable_since, Some(0));
        let soak = |since| Brief {
            decision: Decision::NoGo,
            soaking: true,
            stable_since: Some(since),
        };
        runs.push(60, soak(60));
        runs.push(90, soak(90));
        assert_eq!(runs.get(90).unwrap().stable_since, Some(90));
        assert_eq!(runs.runs.len(), 3);
    }

    #[test]
    fn forgetting_keeps_the_grid() {
        let mut runs = Runs::new(30);
        for k in 0..10 {
            runs.push(k * 30, if k < 4 { NO_GO } else { GO });
        }
        runs.forget_before(140);
        use Decision::Go;
        assert_eq!(
            decisions(&runs, 0..10),
            [
                None,
                None,
                None,
                None,
                None,
                Some(Go),
                Some(Go),
                Some(Go),
                Some(Go),
                Some(Go)
            ]
        );
        runs.forget_before(1000);
        assert!(runs.is_empty());
    }
}
