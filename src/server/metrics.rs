//! The `upgrade_gate_*` metrics: the gate's own state, exported for Grafana and for the alerting
//! rules in `alerts/`. Names and labels are a contract with both.
//!
//! Handles are registered once at start-up; encoding needs only `&Registry`, so no lock is held
//! across a scrape.
//!
//! In fleet mode the per-phase and per-signal families gain a `cluster` label, and two fleet-only
//! metrics appear (`upgrade_gate_wave_ready`, `upgrade_gate_fleet_unlisted_series`). A single
//! gate's output is unchanged, byte for byte: no empty `cluster` label, no fleet-only metric.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::alerting::cluster::ClusterMetrics;
use crate::alerting::delivery::DeliveryCounters;
use crate::engine::decide::Decision;
use crate::engine::evaluate::Status;
use crate::engine::fleet::FleetSnapshot;
use crate::engine::snapshot::Snapshot;

/// The fleet's `cluster` label, first of its series' labels; a single gate's series have none.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Scope(Option<String>);

impl EncodeLabelSet for Scope {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        match &self.0 {
            Some(cluster) => ("cluster", cluster.as_str()).encode(encoder.encode_label()),
            None => Ok(()),
        }
    }
}

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WaveLabels {
    wave: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type Scoped<L, M> = Family<(Scope, L), M>;

/// The fleet-only metrics, encoded only once a fleet has been exported, so that a single gate's
/// scrape does not show them.
#[derive(Clone, Debug, Default)]
struct FleetGauges {
    exported: Arc<AtomicBool>,
    wave_ready: Family<WaveLabels, Gauge>,
    unlisted_series: Gauge,
}

impl Collector for FleetGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if !self.exported.load(Ordering::Relaxed) {
            return Ok(());
        }
        let metric = encoder.encode_descriptor(
            "upgrade_gate_wave_ready",
            "1 when the wave may start (every cluster of every earlier wave go, the soak over), else 0",
            None,
            self.wave_ready.metric_type(),
        )?;
        self.wave_ready.encode(metric)?;
        let metric = encoder.encode_descriptor(
            "upgrade_gate_fleet_unlisted_series",
            "Series of clusters that no wave lists in the last evaluation's answers (ignored)",
            None,
            self.unlisted_series.metric_type(),
        )?;
        self.unlisted_series.encode(metric)
    }
}

pub struct Metrics {
    registry: Registry,
    score: Scoped<PhaseLabels, FloatGauge>,
    decision: Scoped<PhaseLabels, Gauge>,
    stable_seconds: Scoped<PhaseLabels, FloatGauge>,
    signal_status: Scoped<SignalStatusLabels, Gauge>,
    signal_value: Scoped<SignalLabels, FloatGauge>,
    signal_baseline: Scoped<SignalLabels, FloatGauge>,
    query_errors: Scoped<SignalLabels, Counter>,
    fleet: FleetGauges,
    /// The clusters and waves last exported (empty for a single gate): when they change, the
    /// scoped families are emptied, so that no cluster a reload removed lingers.
    exported: Mutex<Vec<String>>,
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
            fleet: FleetGauges::default(),
            exported: Mutex::default(),
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
        registry.register_collector(Box::new(metrics.fleet.clone()));
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Publishes a finished evaluation.
    pub fn observe(&self, snapshot: &Snapshot) {
        self.rescope(Vec::new());
        self.fleet.exported.store(false, Ordering::Relaxed);
        self.judged(&Scope(None), snapshot);
        self.finished(snapshot.took, snapshot.evaluated_at);
    }

    /// Publishes a finished fleet evaluation: each cluster's phases and signals with its
    /// `cluster` label, and whether each wave may start.
    pub fn export_fleet(&self, fleet: &FleetSnapshot) {
        let scope = fleet
            .clusters
            .iter()
            .map(|c| format!("cluster {}", c.cluster))
            .chain(fleet.waves.iter().map(|w| format!("wave {}", w.wave)))
            .collect();
        self.rescope(scope);
        for c in &fleet.clusters {
            self.judged(&Scope(Some(c.cluster.clone())), &c.snapshot);
        }
        for w in &fleet.waves {
            self.fleet
                .wave_ready
                .get_or_create_owned(&WaveLabels {
                    wave: w.wave.clone(),
                })
                .set(i64::from(w.decision == Decision::Go));
        }
        self.fleet
            .unlisted_series
            .set(i64::try_from(fleet.unlisted_series).unwrap_or(i64::MAX));
        self.fleet.exported.store(true, Ordering::Relaxed);
        self.finished(fleet.took, fleet.evaluated_at);
    }

    /// Empties the scoped families when the clusters or waves differ from the last export's,
    /// query error counters included: a removed cluster's series must not linger.
    fn rescope(&self, scope: Vec<String>) {
        let mut exported = self.exported.lock().unwrap_or_else(|e| e.into_inner());
        if *exported != scope {
            self.forget_pack();
            self.query_errors.clear();
            *exported = scope;
        }
    }

    fn finished(&self, took: std::time::Duration, at: chrono::DateTime<chrono::Utc>) {
        self.evaluation_duration.observe(took.as_secs_f64());
        self.last_evaluation.set(at.timestamp() as f64);
    }

    /// One gate's or one cluster's phases and signals.
    fn judged(&self, scope: &Scope, snapshot: &Snapshot) {
        for v in &snapshot.phases {
            let labels = (
                scope.clone(),
                PhaseLabels {
                    phase: v.phase.clone(),
                },
            );
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
                    .get_or_create_owned(&(
                        scope.clone(),
                        SignalStatusLabels {
                            signal: s.name.clone(),
                            status: status.as_str().to_string(),
                        },
                    ))
                    .set(i64::from(s.status == status));
            }
            let labels = (
                scope.clone(),
                SignalLabels {
                    signal: s.name.clone(),
                },
            );
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
    }

    /// Drops the per-phase and per-signal gauges, after a reload may have removed some.
    pub fn forget_pack(&self) {
        self.score.clear();
        self.decision.clear();
        self.stable_seconds.clear();
        self.signal_status.clear();
        self.signal_value.clear();
        self.signal_baseline.clear();
        self.fleet.wave_ready.clear();
    }

    /// OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::fleet::tests::fleet;
    use crate::engine::fleet::GoSince;
    use Status::{Error, Fail, Ok};

    fn lines(metrics: &Metrics, prefix: &str) -> Vec<String> {
        metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(String::from)
            .collect()
    }

    #[test]
    fn a_fleet_has_a_cluster_label_and_wave_ready_and_a_single_gate_has_neither() {
        let metrics = Metrics::new();
        let since = &mut GoSince::default();
        let single = fleet(0, [Ok, Ok, Ok], since).clusters[0].snapshot.clone();
        metrics.observe(&single);
        let text = metrics.encode();
        assert!(
            text.contains("upgrade_gate_score{phase=\"istio\"} 100.0\n"),
            "{text}"
        );
        assert!(!text.contains("cluster=\""), "{text}");
        assert!(!text.contains("upgrade_gate_wave_ready"), "{text}");
        assert!(
            !text.contains("upgrade_gate_fleet_unlisted_series"),
            "{text}"
        );

        let mut f = fleet(1, [Ok, Fail, Error], since);
        f.unlisted_series = 7;
        metrics.export_fleet(&f);
        let mut decisions = lines(&metrics, "upgrade_gate_decision{");
        decisions.sort();
        assert_eq!(
            decisions,
            [
                "upgrade_gate_decision{cluster=\"c1\",phase=\"all\"} 1",
                "upgrade_gate_decision{cluster=\"c1\",phase=\"istio\"} 1",
                "upgrade_gate_decision{cluster=\"c2\",phase=\"all\"} 0",
                "upgrade_gate_decision{cluster=\"c2\",phase=\"istio\"} 0",
                "upgrade_gate_decision{cluster=\"c3\",phase=\"all\"} 0",
                "upgrade_gate_decision{cluster=\"c3\",phase=\"istio\"} 0",
            ],
            "every cluster's, and no single gate's left"
        );
        let text = metrics.encode();
        for line in [
            "upgrade_gate_score{cluster=\"c2\",phase=\"istio\"} 0.0",
            "upgrade_gate_signal_status{cluster=\"c2\",signal=\"mesh_5xx\",status=\"fail\"} 1",
            "upgrade_gate_signal_status{cluster=\"c3\",signal=\"mesh_5xx\",status=\"error\"} 1",
            "upgrade_gate_query_errors_total{cluster=\"c3\",signal=\"mesh_5xx\"} 1",
            "upgrade_gate_wave_ready{wave=\"staging\"} 1",
            "upgrade_gate_wave_ready{wave=\"prod\"} 0",
            "upgrade_gate_fleet_unlisted_series 7",
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "{line} missing:\n{text}"
            );
        }

        // c3 and its wave removed by a reload: none of their series linger.
        let mut f = fleet(2, [Ok, Ok, Ok], since);
        f.clusters.retain(|c| c.cluster != "c3");
        f.waves.retain(|w| w.wave != "prod");
        metrics.export_fleet(&f);
        let text = metrics.encode();
        assert!(!text.contains("c3"), "{text}");
        assert!(!text.contains("wave=\"prod\""), "{text}");
        assert!(text.contains("upgrade_gate_wave_ready{wave=\"staging\"} 1\n"));

        // Back to a single gate: as it was.
        metrics.observe(&single);
        let text = metrics.encode();
        assert!(!text.contains("cluster=\""), "{text}");
        assert!(!text.contains("upgrade_gate_wave_ready"), "{text}");
    }
}
