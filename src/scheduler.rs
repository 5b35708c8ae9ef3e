//! The evaluation loop: every `interval`, take a snapshot, publish it, export it, and hand it to
//! the alert path. Ticks missed while an evaluation overran are skipped, not bunched up.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::{interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dispatch::Alerting;
use crate::evaluate::Status;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::source::PrometheusSource;

pub struct Scheduler {
    pub config: Arc<Config>,
    pub source: PrometheusSource,
    pub metrics: Arc<Metrics>,
    pub alerting: Alerting,
    pub publish: watch::Sender<Option<Arc<Snapshot>>>,
}

impl Scheduler {
    /// Runs until `shutdown` is cancelled; an evaluation in flight is abandoned then.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ticks = interval(self.config.evaluation.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let at = chrono::Utc::now().timestamp();
            let snapshot = tokio::select! {
                _ = shutdown.cancelled() => return,
                s = Snapshot::take(&self.config, &self.source, at) => Arc::new(s),
            };
            self.publish_snapshot(snapshot);
        }
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
            go = snapshot.phases.iter().filter(|v| v.decision == crate::decide::Decision::Go).count(),
            phases = snapshot.phases.len(),
            "evaluation finished"
        );
        self.publish.send_replace(Some(snapshot));
    }
}
