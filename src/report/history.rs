//! What the daemon keeps of its own evaluations for the live page: each phase's steps over the
//! last `report.window`, bounded, so that `/` is rebuilt from memory and never waits on
//! Prometheus. Steps it did not evaluate (before it started, or while it could not) stay
//! missing, and the page shows them as unknown. In fleet mode, the same per cluster
//! ([`FleetHistory`]).

use std::collections::{BTreeMap, VecDeque};

use super::fleet::{merge, Brief, FleetSteps, Runs, Scope};
use super::model::{PhaseSteps, Report, Span, Step};
use super::ReportError;
use crate::config::Config;
use crate::engine::fleet::FleetSnapshot;
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

    /// The oldest step kept of any phase.
    pub fn earliest(&self) -> Option<i64> {
        self.phases
            .values()
            .filter_map(|s| s.front())
            .map(|s| s.at)
            .min()
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

/// What the live page of a fleet needs of its evaluations over the window: per phase the fleet's
/// combined steps (folded as each snapshot comes, so they weigh what one cluster's do), and per
/// cluster and phase its decisions without their signals, as runs of equal steps, for the heat
/// map and the waves.
#[derive(Debug, Default)]
pub struct FleetHistory {
    combined: BTreeMap<String, VecDeque<Step>>,
    briefs: BTreeMap<String, BTreeMap<String, Runs>>,
    latest: Option<i64>,
}

impl FleetHistory {
    /// Keeps the snapshot's steps and forgets those older than `keep_secs` before it, and
    /// clusters no longer in the fleet.
    pub fn record(&mut self, fleet: &FleetSnapshot, config: &Config, keep_secs: i64) {
        let (pack, step_secs) = (&config.pack, config.evaluation.step_secs());
        let at = fleet.evaluated_at.timestamp();
        if self.latest.is_some_and(|l| at <= l) {
            return;
        }
        self.latest = Some(at);
        self.briefs
            .retain(|name, _| fleet.clusters.iter().any(|c| c.cluster == *name));
        let mut combined: BTreeMap<&str, Step> = BTreeMap::new();
        for c in &fleet.clusters {
            let briefs = self.briefs.entry(c.cluster.clone()).or_default();
            for v in c.phases() {
                let step = Step::of(v);
                let runs = briefs.entry(v.phase.clone());
                runs.or_insert_with(|| Runs::new(step_secs))
                    .push(step.at, Brief::of(&step));
                match combined.get_mut(v.phase.as_str()) {
                    Some(into) => merge(pack, into, step),
                    None => {
                        combined.insert(&v.phase, step);
                    }
                }
            }
        }
        for (phase, step) in combined {
            self.combined
                .entry(phase.to_string())
                .or_default()
                .push_back(step);
        }
        let old = |steps: &mut VecDeque<Step>| {
            while steps.front().is_some_and(|s| s.at < at - keep_secs) {
                steps.pop_front();
            }
            !steps.is_empty()
        };
        self.combined.retain(|_, steps| old(steps));
        for phases in self.briefs.values_mut() {
            phases.retain(|_, runs| {
                runs.forget_before(at - keep_secs);
                !runs.is_empty()
            });
        }
    }

    pub fn latest(&self) -> Option<i64> {
        self.latest
    }

    pub fn earliest(&self) -> Option<i64> {
        self.combined
            .values()
            .filter_map(|s| s.front())
            .map(|s| s.at)
            .min()
    }

    /// The whole fleet's page over `span` from the kept steps.
    pub fn report(&self, config: &Config, span: Span) -> Result<Report, ReportError> {
        let mut steps = FleetSteps::new(config, config.pack.phases.clone(), Scope::Fleet)?;
        for (i, phase) in config.pack.phases.iter().enumerate() {
            for (cluster, phases) in &self.briefs {
                if let Some(runs) = phases.get(&phase.name) {
                    steps.briefs(cluster, i, runs);
                }
            }
            for step in self.combined.get(&phase.name).into_iter().flatten() {
                steps.combine(i, step.clone());
            }
        }
        Ok(steps.report(span))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::decide::{Decision, Verdict};
    use crate::engine::pack::Phase;

    fn snapshot(at: i64) -> Snapshot {
        let evaluated_at = chrono::DateTime::from_timestamp(at, 0).unwrap();
        let verdict = |phase: &str| Verdict {
            phase: phase.into(),
            decision: Decision::Go,
            score: 100.0,
            min_score: 90.0,
            evaluated_at,
            stable_since: Some(evaluated_at),
            stable_for: Duration::ZERO,
            reasons: vec![],
            signals: vec![],
        };
        Snapshot {
            evaluated_at,
            took: Duration::ZERO,
            phases: vec![verdict("istio"), verdict(ALL_PHASES)],
            signals: vec![],
        }
    }

    #[test]
    fn keeps_each_step_once_within_the_window() {
        let mut h = History::default();
        for at in [0, 30, 60, 60, 30, 90] {
            h.record(&snapshot(1_800_000_000 + at), 60);
        }
        // The repeated and the late snapshots are not kept twice; 0 fell out of the 60 s window;
        // the `all` pseudo-phase is not a phase of the page.
        assert_eq!(h.len(), 3);
        assert_eq!(h.earliest(), Some(1_800_000_030));
        assert_eq!(h.latest(), Some(1_800_000_090));
        let pack = Pack {
            phases: vec![Phase {
                name: "istio".into(),
                min_score: 90.0,
                stable_for: Duration::ZERO,
            }],
            signals: vec![],
        };
        let steps = h.steps(&pack);
        assert_eq!(steps.len(), 1);
        let times: Vec<i64> = steps[0]
            .steps
            .iter()
            .map(|s| s.at - 1_800_000_000)
            .collect();
        assert_eq!(times, [30, 60, 90]);
    }

    #[test]
    fn a_fleet_keeps_its_combined_steps_and_each_clusters_decisions() {
        use crate::engine::fleet::{ClusterSnapshot, GoSince, Wave};
        let mut config = crate::config::load(None).unwrap();
        config.evaluation.interval = Duration::from_secs(30);
        config.pack.phases = vec![Phase {
            name: "istio".into(),
            min_score: 90.0,
            stable_for: Duration::ZERO,
        }];
        let waves = vec![Wave {
            name: "w".into(),
            clusters: vec!["a".into(), "b".into()],
            soak: Duration::ZERO,
        }];
        config.fleet = Some(crate::config::FleetConfig {
            label: "cluster".into(),
            presence: "up".into(),
            waves: waves.clone(),
            backends: vec![],
        });
        let mut go_since = GoSince::default();
        let mut h = FleetHistory::default();
        for (i, at) in [0, 30, 60, 60].into_iter().enumerate() {
            let at = 1_800_000_000 + at;
            let cluster = |name: &str, no_go: bool| {
                let mut snapshot = snapshot(at);
                if no_go {
                    snapshot.phases[0].decision = Decision::NoGo;
                    snapshot.phases[0].stable_since = None;
                }
                ClusterSnapshot {
                    cluster: name.into(),
                    wave: "w".into(),
                    go_since: None,
                    snapshot,
                }
            };
            // b is no-go at the second step.
            let clusters = vec![cluster("a", false), cluster("b", i == 1)];
            let evaluated_at = chrono::DateTime::from_timestamp(at, 0).unwrap();
            let fleet = FleetSnapshot::new(evaluated_at, clusters, &waves, &mut go_since, 0);
            h.record(&fleet, &config, 3600);
        }
        assert_eq!(h.earliest(), Some(1_800_000_000));
        assert_eq!(h.latest(), Some(1_800_000_060));
        let span = Span {
            from: 1_800_000_000,
            to: 1_800_000_060,
            step_secs: 30,
        };
        let report = h.report(&config, span).unwrap();
        let states: Vec<&str> = report.phases[0]
            .bands
            .iter()
            .map(|b| b.state.as_str())
            .collect();
        assert_eq!(
            states,
            ["go", "no-go", "go"],
            "combined: b blocks the fleet"
        );
        let fleet = report.fleet.unwrap();
        assert_eq!(fleet.rows[1].cells[0].not_go_secs, 30);
        assert_eq!(fleet.rows[0].cells[0].not_go_secs, 0);
    }
}
