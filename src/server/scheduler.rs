//! The evaluation loop: every `interval`, take a snapshot, publish it, export it, and hand it to
//! the alert path. Ticks missed while an evaluation overran are skipped, not bunched up.
//!
//! It is also where a reload is applied, between two evaluations, so that no evaluation ever
//! mixes two configurations.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{interval, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::baselines::KeptBaselines;
use super::evaluation::evaluate_keeping;
use super::metrics::Metrics;
use crate::alerting::delivery::Alerting;
use crate::config::{self, Config, ConfigError};
use crate::engine::decide::Decision;
use crate::engine::evaluate::Status;
use crate::engine::snapshot::Snapshot;
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
    pub publish: watch::Sender<Option<Arc<Snapshot>>>,
    pub reloads: mpsc::Receiver<Reload>,
    /// Fixed baselines fetched so far; a reload starts afresh, as it may have changed them.
    pub baselines: KeptBaselines,
}

fn ticker(config: &Config) -> Interval {
    let mut ticks = interval(config.evaluation.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticks
}

impl Scheduler {
    /// Runs until `shutdown` is cancelled; an evaluation in flight is abandoned then. Gives back
    /// the alert path, so that the caller can let it finish sending.
    pub async fn run(mut self, shutdown: CancellationToken) -> Alerting {
        let mut ticks = ticker(&self.config.borrow());
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return self.alerting,
                Some(request) = self.reloads.recv() => {
                    let interval_before = self.config.borrow().evaluation.interval;
                    let outcome = self.reload();
                    if self.config.borrow().evaluation.interval != interval_before {
                        ticks = ticker(&self.config.borrow());
                    }
                    if let Some(reply) = request.reply {
                        let _ = reply.send(outcome);
                    }
                    continue;
                }
                _ = ticks.tick() => {}
            }
            let config = self.config.borrow().clone();
            let at = chrono::Utc::now().timestamp();
            let snapshot = tokio::select! {
                _ = shutdown.cancelled() => return self.alerting,
                s = evaluate_keeping(&config, &self.source, at, &mut self.baselines) => Arc::new(s),
            };
            self.publish_snapshot(snapshot);
        }
    }

    /// Re-reads the configuration from where it came from. A bad one is rejected, with every
    /// problem logged, and the running one stays.
    fn reload(&mut self) -> Result<(), ConfigError> {
        let current = self.config.borrow().clone();
        let new =
            config::load(current.source.as_deref()).and_then(|new| {
                match PrometheusSource::new(&new.prometheus) {
                    Ok(source) => Ok((new, source)),
                    Err(e) => Err(ConfigError {
                        problems: vec![config::Problem {
                            file: "prometheus".into(),
                            signal: None,
                            key: None,
                            message: e.to_string(),
                        }],
                    }),
                }
            });
        let (new, source) = match new {
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
        self.source = source;
        self.baselines = KeptBaselines::default();
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

    fn publish_snapshot(&mut self, snapshot: Arc<Snapshot>) {
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
        self.alerting.observe(&snapshot);
        tracing::info!(
            evaluated_at = %snapshot.evaluated_at.to_rfc3339(),
            took_ms = snapshot.took.as_millis() as u64,
            go = snapshot.phases.iter().filter(|v| v.decision == Decision::Go).count(),
            phases = snapshot.phases.len(),
            "evaluation finished"
        );
        self.publish.send_replace(Some(snapshot));
    }
}
