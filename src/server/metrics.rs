//! The `upgrade_gate_*` metrics: the gate's own state, exported for Grafana and for the alerting
//! rules in `alerts/`. Names and labels are a contract with both.
//!
//! Handles are registered once at start-up; encoding needs only `&Registry`, so no lock is held
//! across a scrape.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::alerting::cluster::ClusterMetrics;
use crate::alerting::delivery::DeliveryCounters;
use crate::engine::decide::Decision;
use crate::engine::evaluate::Status;
use crate::engine::snapshot::Snapshot;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabels {
    signal: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalStatusLabels {
    signal: String,
    status: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    score: Family<PhaseLabels, FloatGauge>,
    decision: Family<PhaseLabels, Gauge>,
    stable_seconds: Family<PhaseLabels, FloatGauge>,
    signal_status: Family<SignalStatusLabels, Gauge>,
    signal_value: Family<SignalLabels, FloatGauge>,
    signal_baseline: Family<SignalLabels, FloatGauge>,
    query_errors: Family<SignalLabels, Counter>,
    evaluation_duration: Histogram,
    last_evaluation: FloatGauge,
    /// Updated by the alert path; registered here with the rest.
    pub alerts: DeliveryCounters,
    /// Updated by the gossip between replicas.
    pub cluster: ClusterMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics {
            registry: Registry::default(),
            score: Family::default(),
            decision: Family::default(),
            stable_seconds: Family::default(),
            signal_status: Family::default(),
            signal_value: Family::default(),
            signal_baseline: Family::default(),
            query_errors: Family::default(),
            evaluation_duration: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            last_evaluation: FloatGauge::default(),
            alerts: DeliveryCounters::default(),
            cluster: ClusterMetrics::default(),
        };
        // Families are cheap handles onto shared state: the registry encodes the clones that the
        // struct keeps updating.
        registry.register(
            "upgrade_gate_score",
            "Health score of the phase, 0 to 100",
            metrics.score.clone(),
        );
        registry.register(
            "upgrade_gate_decision",
            "1 when the phase is go, 0 otherwise (no-go or unknown)",
            metrics.decision.clone(),
        );
        registry.register(
            "upgrade_gate_stable_seconds",
            "How long the phase has been healthy without interruption (0 when unhealthy)",
            metrics.stable_seconds.clone(),
        );
        registry.register(
            "upgrade_gate_signal_status",
            "1 for the signal's current status, 0 for the others",
            metrics.signal_status.clone(),
        );
        registry.register(
            "upgrade_gate_signal_value",
            "Value of the signal's worst series (absent when it has no data)",
            metrics.signal_value.clone(),
        );
        registry.register(
            "upgrade_gate_signal_baseline",
            "Baseline of the signal's worst series, for relative thresholds (absent when it has none)",
            metrics.signal_baseline.clone(),
        );
        registry.register(
            "upgrade_gate_query_errors",
            "Queries of the signal that failed (error, timeout, unreachable Prometheus)",
            metrics.query_errors.clone(),
        );
        registry.register(
            "upgrade_gate_evaluation_duration_seconds",
            "Time one evaluation of every signal took",
            metrics.evaluation_duration.clone(),
        );
        registry.register(
            "upgrade_gate_last_evaluation_timestamp_seconds",
            "Unix time of the last finished evaluation",
            metrics.last_evaluation.clone(),
        );
        registry.register(
            "upgrade_gate_alerts",
            "Alert deliveries by receiver: sent, retried (one per retry), failed (refused), dropped (queue full), deduplicated (already sent by a peer or before a restart)",
            metrics.alerts.family(),
        );
        registry.register(
            "upgrade_gate_cluster_peers",
            "Live replicas sharing the notification log, this one included (1 alone)",
            metrics.cluster.peers.clone(),
        );
        registry.register(
            "upgrade_gate_cluster_position",
            "This replica's turn to send: it waits position x peer_timeout; 0 sends at once",
            metrics.cluster.position.clone(),
        );
        registry.register(
            "upgrade_gate_cluster_rejected",
            "Notification log entries refused, from a peer or the state file: without a valid seal of cluster.secret_file's key, or dated more than peer_timeout ahead",
            metrics.cluster.rejected.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Publishes a finished evaluation.
    pub fn observe(&self, snapshot: &Snapshot) {
        for v in &snapshot.phases {
            let labels = PhaseLabels {
                phase: v.phase.clone(),
            };
            self.score.get_or_create(&labels).set(v.score);
            self.decision
                .get_or_create(&labels)
                .set(i64::from(v.decision == Decision::Go));
            let stable = v.stable_since.map_or(0.0, |since| {
                (v.evaluated_at - since).num_seconds().max(0) as f64
            });
            self.stable_seconds.get_or_create(&labels).set(stable);
        }
        for s in &snapshot.signals {
            for status in Status::ALL {
                self.signal_status
                    .get_or_create(&SignalStatusLabels {
                        signal: s.name.clone(),
                        status: status.as_str().to_string(),
                    })
                    .set(i64::from(s.status == status));
            }
            let labels = SignalLabels {
                signal: s.name.clone(),
            };
            for (family, value) in [
                (&self.signal_value, s.value),
                (&self.signal_baseline, s.baseline),
            ] {
                match value {
                    Some(v) => {
                        family.get_or_create(&labels).set(v);
                    }
                    None => {
                        family.remove(&labels);
                    }
                }
            }
            // Created at 0 on the first evaluation so that `increase()` sees the first error.
            let errors = self.query_errors.get_or_create(&labels);
            if s.status == Status::Error {
                errors.inc();
            }
        }
        self.evaluation_duration
            .observe(snapshot.took.as_secs_f64());
        self.last_evaluation
            .set(snapshot.evaluated_at.timestamp() as f64);
    }

    /// Drops the per-phase and per-signal gauges, after a reload may have removed some.
    pub fn forget_pack(&self) {
        self.score.clear();
        self.decision.clear();
        self.stable_seconds.clear();
        self.signal_status.clear();
        self.signal_value.clear();
        self.signal_baseline.clear();
    }

    /// OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
