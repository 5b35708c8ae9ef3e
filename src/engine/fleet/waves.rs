//! Waves: may the next group of clusters start its upgrade?
//!
//! A wave may start when every cluster of every earlier wave is go for every phase now, and the
//! clusters of the wave just before have stayed go without a break for this wave's `soak`. The
//! soak is measured from what the gate has seen ([`GoSince`]): after a restart it starts from the
//! earliest go the evaluated windows prove, never from a guess, so a restart can only lengthen a
//! wait.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::cluster::ClusterSnapshot;
use crate::engine::decide::{humantime_str, Decision, Verdict};

/// Clusters upgraded together, in upgrade order.
#[derive(Debug, Clone, PartialEq)]
pub struct Wave {
    pub name: String,
    pub clusters: Vec<String>,
    /// How long every cluster of the wave before must have been go before this one starts.
    pub soak: Duration,
}

/// Since when each cluster has been go for every phase without a break.
#[derive(Debug, Default)]
pub struct GoSince(HashMap<String, DateTime<Utc>>);

impl GoSince {
    /// Records the cluster's state now and answers since when it has been go (`None`: not go).
    /// A cluster first seen go has been go at least since the latest of its phases' proven starts
    /// (each phase's healthy run start plus its `stable_for`).
    pub fn update(&mut self, cluster: &ClusterSnapshot) -> Option<DateTime<Utc>> {
        if !cluster.all_go() {
            self.0.remove(&cluster.cluster);
            return None;
        }
        let at = cluster.snapshot.evaluated_at;
        let proven = cluster
            .phases()
            .filter_map(|v| {
                let stable_for = chrono::Duration::from_std(v.stable_for).ok()?;
                Some(v.stable_since? + stable_for)
            })
            .max()
            .unwrap_or(at)
            .min(at);
        Some(*self.0.entry(cluster.cluster.clone()).or_insert(proven))
    }
}

/// Whether a wave may start, and what holds it back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaveState {
    pub wave: String,
    /// `go` when the wave may start; `unknown` when only clusters the gate knows nothing about
    /// hold it back; `no_go` otherwise (a cluster not go, or the soak not over).
    pub decision: Decision,
    pub evaluated_at: DateTime<Utc>,
    pub clusters: Vec<String>,
    #[serde(serialize_with = "humantime_str")]
    pub soak: Duration,
    /// How much longer the wave before must stay go; zero once the soak is over.
    #[serde(serialize_with = "humantime_str")]
    pub soak_left: Duration,
    /// Clusters of earlier waves not go for every phase now, the wave just before's first.
    pub blocking: Vec<Blocker>,
    /// Every cause, one sentence each; empty when the wave may start.
    pub reasons: Vec<String>,
}

/// A cluster of an earlier wave that is not go now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocker {
    pub cluster: String,
    pub wave: String,
    /// `no_go` when any of its phases is, `unknown` otherwise.
    pub decision: Decision,
    /// Its phases that are not go.
    pub phases: Vec<String>,
    /// The signals that hold those phases back (troubled), without repeats.
    pub signals: Vec<String>,
}

/// `no_go` if any is, else `unknown` if any is, else `go` (also for none).
fn worst(decisions: impl IntoIterator<Item = Decision>) -> Decision {
    decisions
        .into_iter()
        .fold(Decision::Go, |worst, d| match (worst, d) {
            (Decision::NoGo, _) | (_, Decision::NoGo) => Decision::NoGo,
            (Decision::Unknown, _) | (_, Decision::Unknown) => Decision::Unknown,
            _ => Decision::Go,
        })
}

fn blocker(c: &ClusterSnapshot) -> Option<Blocker> {
    let not_go: Vec<&Verdict> = c.phases().filter(|v| v.decision != Decision::Go).collect();
    if not_go.is_empty() {
        return None;
    }
    let mut signals: Vec<String> = Vec::new();
    for s in not_go.iter().flat_map(|v| &v.signals) {
        if s.status.troubled(s.no_data) && !signals.contains(&s.name) {
            signals.push(s.name.clone());
        }
    }
    Some(Blocker {
        cluster: c.cluster.clone(),
        wave: c.wave.clone(),
        decision: worst(not_go.iter().map(|v| v.decision)),
        phases: not_go.iter().map(|v| v.phase.clone()).collect(),
        signals,
    })
}

fn of_wave<'a>(
    clusters: &'a [ClusterSnapshot],
    wave: &'a Wave,
) -> impl Iterator<Item = &'a ClusterSnapshot> {
    clusters.iter().filter(move |c| c.wave == wave.name)
}

/// Every wave's state at `at`, from the clusters' snapshots.
pub fn states(at: DateTime<Utc>, waves: &[Wave], clusters: &[ClusterSnapshot]) -> Vec<WaveState> {
    waves
        .iter()
        .enumerate()
        .map(|(i, wave)| {
            let blocking: Vec<Blocker> = waves[..i]
                .iter()
                .rev()
                .flat_map(|w| of_wave(clusters, w).filter_map(blocker))
                .collect();
            let mut reasons: Vec<String> = blocking
                .iter()
                .map(|b| {
                    format!(
                        "cluster {} (wave {}) is {} for {}{}",
                        b.cluster,
                        b.wave,
                        b.decision.as_str(),
                        b.phases.join(", "),
                        if b.signals.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", b.signals.join(", "))
                        }
                    )
                })
                .collect();
            // Soaking: the wave before is go, not yet for the soak. When it is not go, its
            // blocking clusters decide (unknown only when unknowns alone hold it back).
            let (soak_left, soaking) = match i.checked_sub(1).map(|p| &waves[p]) {
                Some(before) => {
                    // A cluster not go now has the whole soak ahead of it, once it is go again.
                    let go = of_wave(clusters, before).all(|c| c.go_since.is_some());
                    let left = of_wave(clusters, before)
                        .map(|c| match c.go_since {
                            Some(since) => {
                                let gone = (at - since).to_std().unwrap_or_default();
                                wave.soak.saturating_sub(gone)
                            }
                            None => wave.soak,
                        })
                        .max()
                        .unwrap_or_default();
                    if !left.is_zero() {
                        let soak = humantime::format_duration(wave.soak);
                        reasons.push(if go {
                            format!(
                                "wave {} must stay go for {soak} before {} starts: {} left",
                                before.name,
                                wave.name,
                                humantime::format_duration(left),
                            )
                        } else {
                            format!(
                                "wave {} must stay go for {soak} before {} starts: it is not go \
                                 now, and the soak starts again once it is",
                                before.name, wave.name,
                            )
                        });
                    }
                    (left, go && !left.is_zero())
                }
                None => (Duration::ZERO, false),
            };
            let decision = if soaking {
                Decision::NoGo
            } else {
                worst(blocking.iter().map(|b| b.decision))
            };
            WaveState {
                wave: wave.name.clone(),
                decision,
                evaluated_at: at,
                clusters: wave.clusters.clone(),
                soak: wave.soak,
                soak_left,
                blocking,
                reasons,
            }
        })
        .collect()
}

/// A phase's answer for a whole wave: go only when every cluster of the wave is go.
#[derive(Debug, Clone, Serialize)]
pub struct WaveVerdict {
    pub wave: String,
    pub phase: String,
    pub decision: Decision,
    /// The lowest of the clusters' scores.
    pub score: f64,
    pub min_score: f64,
    pub evaluated_at: DateTime<Utc>,
    /// When every cluster is go: the latest of their healthy runs' starts.
    pub stable_since: Option<DateTime<Utc>>,
    #[serde(serialize_with = "humantime_str")]
    pub stable_for: Duration,
    /// Each cluster that is not go, with its reasons; empty when go.
    pub reasons: Vec<String>,
    /// Every cluster of the wave, those that block first.
    pub clusters: Vec<ClusterDecision>,
}

/// One cluster's line in a wave's answer.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterDecision {
    pub cluster: String,
    pub decision: Decision,
    pub score: f64,
    pub stable_since: Option<DateTime<Utc>>,
    pub reasons: Vec<String>,
}

impl WaveVerdict {
    /// `None` when the wave has no cluster or the phase is unknown.
    pub fn new(wave: &str, phase: &str, members: &[&ClusterSnapshot]) -> Option<WaveVerdict> {
        let verdicts: Vec<(&ClusterSnapshot, &Verdict)> = members
            .iter()
            .map(|c| Some((*c, c.snapshot.verdict(phase)?)))
            .collect::<Option<_>>()?;
        let (_, first) = verdicts.first()?;
        let decision = worst(verdicts.iter().map(|(_, v)| v.decision));
        let mut clusters: Vec<ClusterDecision> = verdicts
            .iter()
            .map(|(c, v)| ClusterDecision {
                cluster: c.cluster.clone(),
                decision: v.decision,
                score: v.score,
                stable_since: v.stable_since,
                reasons: v.reasons.clone(),
            })
            .collect();
        // Blocking first (no_go, then unknown), each group in wave order.
        let rank = |d: Decision| match d {
            Decision::NoGo => 0,
            Decision::Unknown => 1,
            Decision::Go => 2,
        };
        clusters.sort_by_key(|c| rank(c.decision));
        let reasons = clusters
            .iter()
            .filter(|c| c.decision != Decision::Go)
            .flat_map(|c| {
                c.reasons
                    .iter()
                    .map(move |r| format!("cluster {}: {r}", c.cluster))
            })
            .collect();
        Some(WaveVerdict {
            wave: wave.to_string(),
            phase: phase.to_string(),
            decision,
            score: verdicts
                .iter()
                .map(|(_, v)| v.score)
                .fold(f64::INFINITY, f64::min),
            min_score: first.min_score,
            evaluated_at: first.evaluated_at,
            stable_since: if decision == Decision::Go {
                verdicts.iter().filter_map(|(_, v)| v.stable_since).max()
            } else {
                None
            },
            stable_for: first.stable_for,
            reasons,
            clusters,
        })
    }
}

#[cfg(test)]
mod tests;
