//! The evaluation loop: every `interval`, take a snapshot, publish it, export it, and hand it to
//! the alert path. Ticks missed while an evaluation overran are skipped, not bunched up.
//!
//! Evaluations sit on a fixed grid, multiples of the interval since the Unix epoch, judged
//! `query_offset` behind now: so each one adds exactly one step to the windows the
//! [`Incremental`] evaluator keeps, and a step is fetched once, final when fetched.
//!
//! It is also where a reload is applied, between two evaluations, so that no evaluation ever
//! mixes two configurations.

use std::sync::Arc;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::bodies::Bodies;
use super::metrics::Metrics;
use crate::alerting::delivery::Alerting;
use crate::config::{self, Config, ConfigError};
use crate::engine::decide::Decision;
use crate::engine::evaluate::Status;
use crate::engine::fleet::FleetSnapshot;
use crate::engine::snapshot::Snapshot;
use crate::evaluation::fleet::FleetEvaluator;
use crate::evaluation::Incremental;
use crate::prometheus::source::PrometheusSource;

/// A request to re-read the configuration; the answer says whether it was taken.
pub struct Reload {
    pub reply: Option<oneshot::Sender<Result<(), ConfigError>>>,
}

pub struct Scheduler {
    /// The running configuration, also read by the HTTP handlers.
    pub config: watch::Sender<Arc<Config>>,
    pub source: PrometheusSource,
    pub metrics: Arc<Metrics>,
    pub alerting: Alerting,
    pub publish: watch::Sender<Option<Arc<Bodies>>>,
    pub reloads: mpsc::Receiver<Reload>,
    /// The windows and fixed baselines kept between evaluations.
    pub evaluator: Incremental,
    /// In fleet mode (a `fleet` section), every store's windows and the clusters' go-since,
    /// which replace `evaluator`; `None` for one cluster.
    pub fleet: Option<FleetEvaluator>,
}

/// The file a configuration came from, as its problems name it.
fn file(config: &Config) -> String {
    config
        .source
        .as_ref()
        .map_or_else(|| "the configuration".into(), |p| p.display().to_string())
}

/// The step to judge now: the latest multiple of the interval at or before `now - query_offset`.
fn grid_step(config: &Config, now: Duration) -> i64 {
    let step = config.evaluation.step_secs();
    let behind = now.as_secs() as i64 - config.evaluation.query_offset.as_secs() as i64;
    behind.div_euclid(step) * step
}

/// How long until the next step of the grid may be judged.
fn until_next_step(config: &Config, now: Duration) -> Duration {
    let next = grid_step(config, now) + config.evaluation.step_secs();
    let due = Duration::from_secs((next + config.evaluation.query_offset.as_secs() as i64) as u64);
    due.saturating_sub(now)
}

fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Scheduler {
    /// Runs until `shutdown` is cancelled; an evaluation in flight is abandoned then. Gives back
    /// the alert path, so that the caller can let it finish sending.
    pub async fn run(mut self, shutdown: CancellationToken) -> Alerting {
        // The first evaluation at once, the next ones on the grid.
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return self.alerting,
                Some(request) = self.reloads.recv() => {
                    let before = self.config.borrow().prometheus.clone();
                    let outcome = self.reload();
                    if self.config.borrow().prometheus != before {
                        // Another server, tenant or credentials: what is held may not be what it
                        // answers now, so every signal is fetched whole again.
                        self.evaluator = Incremental::default();
                    }
                    if let Some(reply) = request.reply {
                        let _ = reply.send(outcome);
                    }
                    continue;
                }
                _ = sleep_until(next) => {}
            }
            let config = self.config.borrow().clone();
            let at = grid_step(&config, wall_clock());
            if let Some(fleet) = &mut self.fleet {
                let snapshot = tokio::select! {
                    _ = shutdown.cancelled() => return self.alerting,
                    s = fleet.evaluate(&config, at) => Arc::new(s),
                };
                self.publish_fleet(snapshot, next);
            } else {
                let snapshot = tokio::select! {
                    _ = shutdown.cancelled() => return self.alerting,
                    s = self.evaluator.evaluate(&config, &self.source, at) => Arc::new(s),
                };
                self.publish_snapshot(snapshot, next);
            }
            // Ticks missed while the evaluation overran are skipped: the next is the next step due.
            next = Instant::now() + until_next_step(&config, wall_clock());
        }
    }

    /// Re-reads the configuration from where it came from. A bad one is rejected, with every
    /// problem logged, and the running one stays.
    fn reload(&mut self) -> Result<(), ConfigError> {
        let current = self.config.borrow().clone();
        let new = config::load(current.source.as_deref()).and_then(|new| {
            let problem = |file: String, key: Option<&str>, message: String| ConfigError {
                problems: vec![config::Problem {
                    file,
                    signal: None,
                    key: key.map(Into::into),
                    message,
                }],
            };
            let source = PrometheusSource::new(&new.prometheus)
                .map_err(|e| problem("prometheus".into(), None, e.to_string()))?;
            // A fleet's stores hold the queries rewritten for their clusters and the evaluation
            // settings: any change may touch them, so they are made anew from the new file.
            let fleet = match &new.fleet {
                None => None,
                Some(_) => Some(
                    FleetEvaluator::new(&new)
                        .map_err(|e| problem(file(&new), Some("fleet"), e.to_string()))?,
                ),
            };
            Ok((new, source, fleet))
        });
        let (new, source, fleet) = match new {
            Ok(ok) => ok,
            Err(e) => {
                tracing::error!(
                    problems = ?e.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "configuration reload rejected; the running configuration stays"
                );
                return Err(e);
            }
        };
        if new.listen != current.listen {
            tracing::warn!(
                "server.listen changed; the new address takes effect only after a restart"
            );
        }
        if new.cluster != current.cluster {
            tracing::warn!("cluster changed; the gossip keeps its old settings until a restart");
        }
        self.source = source;
        // The new configuration may pin or move the baselines.
        self.evaluator.forget_baselines();
        self.fleet = match (fleet, self.fleet.take()) {
            // How long each cluster has been go is what the gate has seen, whatever the new file
            // says: a reload must not restart the soak of every wave.
            (Some(mut new), Some(old)) => {
                new.carry_over(old);
                Some(new)
            }
            (new, _) => new,
        };
        self.alerting
            .reconfigure(&new.alerts, new.evaluation.interval);
        // Phases and signals may have gone: their gauges must not linger with old values.
        self.metrics.forget_pack();
        tracing::info!(
            signals = new.pack.signals.len(),
            phases = new.pack.phases.len(),
            receivers = new.alerts.receivers.len(),
            "configuration reloaded"
        );
        self.config.send_replace(Arc::new(new));
        Ok(())
    }

    /// `due` is the instant this evaluation was scheduled for: the step's moment on the grid (or
    /// the start, for the first evaluation), which replicas' turns to notify count from.
    fn publish_snapshot(&mut self, snapshot: Arc<Snapshot>, due: Instant) {
        self.metrics.observe(&snapshot);
        for s in snapshot
            .signals
            .iter()
            .filter(|s| s.status == Status::Error)
        {
            tracing::warn!(
                signal = %s.name,
                error = s.error.as_deref().unwrap_or_default(),
                "signal query failed"
            );
        }
        self.alerting.observe(&snapshot, due);
        tracing::info!(
            evaluated_at = %snapshot.evaluated_at.to_rfc3339(),
            took_ms = snapshot.took.as_millis() as u64,
            go = snapshot.phases.iter().filter(|v| v.decision == Decision::Go).count(),
            unknown = snapshot
                .phases
                .iter()
                .filter(|v| v.decision == Decision::Unknown)
                .count(),
            phases = snapshot.phases.len(),
            "evaluation finished"
        );
        self.publish
            .send_replace(Some(Arc::new(Bodies::encode(snapshot))));
    }

    /// The fleet's counterpart of [`Scheduler::publish_snapshot`]: one line for the clusters
    /// whose queries failed (with the first one's error) rather than a line per failed query,
    /// which 200 clusters would repeat every interval.
    fn publish_fleet(&mut self, snapshot: Arc<FleetSnapshot>, due: Instant) {
        self.metrics.export_fleet(&snapshot);
        self.alerting.observe_fleet(&snapshot, due);
        let failed: Vec<(&str, &str)> = snapshot
            .clusters
            .iter()
            .filter_map(|c| {
                let s = c
                    .snapshot
                    .signals
                    .iter()
                    .find(|s| s.status == Status::Error)?;
                Some((c.cluster.as_str(), s.error.as_deref().unwrap_or_default()))
            })
            .collect();
        if let Some((cluster, error)) = failed.first() {
            tracing::warn!(
                clusters = failed.len(),
                first = ?failed.iter().take(10).map(|f| f.0).collect::<Vec<_>>(),
                cluster,
                error,
                "signal queries failed for some clusters"
            );
        }
        let mut bodies = Bodies::encode_fleet(&snapshot);
        bodies.fleet_snapshot = Some(snapshot.clone());
        tracing::info!(
            evaluated_at = %snapshot.evaluated_at.to_rfc3339(),
            took_ms = snapshot.took.as_millis() as u64,
            clusters = snapshot.clusters.len(),
            go = snapshot.clusters.iter().filter(|c| c.all_go()).count(),
            waves_go = snapshot.waves.iter().filter(|w| w.decision == Decision::Go).count(),
            unlisted_series = snapshot.unlisted_series,
            body_bytes = bodies.encoded_bytes(),
            "evaluation finished"
        );
        self.publish.send_replace(Some(Arc::new(bodies)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(interval: u64, offset: u64) -> Config {
        let mut config = config::load(None).unwrap();
        config.evaluation.interval = Duration::from_secs(interval);
        config.evaluation.query_offset = Duration::from_secs(offset);
        config
    }

    #[test]
    fn steps_sit_on_the_interval_grid_behind_the_offset() {
        let c = config(15, 0);
        let now = |s: u64, ms: u64| Duration::from_secs(s) + Duration::from_millis(ms);
        assert_eq!(grid_step(&c, now(1_800_000_014, 999)), 1_800_000_000);
        assert_eq!(grid_step(&c, now(1_800_000_015, 0)), 1_800_000_015);
        assert_eq!(
            until_next_step(&c, now(1_800_000_014, 500)),
            Duration::from_millis(500)
        );
        assert_eq!(
            until_next_step(&c, now(1_800_000_015, 0)),
            Duration::from_secs(15)
        );
        // One minute behind: at 12:01:07 the step judged is 12:00:00, the next is due at 12:01:15.
        let c = config(15, 60);
        assert_eq!(grid_step(&c, now(1_800_000_067, 0)), 1_800_000_000);
        assert_eq!(
            until_next_step(&c, now(1_800_000_067, 0)),
            Duration::from_secs(8)
        );
    }
}
