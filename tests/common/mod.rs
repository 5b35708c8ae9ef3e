//! Shared helpers for the integration tests (a real Prometheus fed from OpenMetrics text,
//! a real Alertmanager, both run by `process`, a scripted recording HTTP receiver, a recording
//! proxy that checks credentials).
// Each test binary uses a different part of these helpers.
#![allow(dead_code)]
pub mod alertmanager;
pub mod browser;
pub mod counting;
pub mod data;
pub mod exporter;
pub mod fleet;
pub mod gate;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod receiver;
pub mod tls;

/// The metric names upgrade-gate exports, as Prometheus stores them: a contract with the alerting
/// rules and the Grafana dashboard (DESIGN.md, README "Exported metrics").
pub const CONTRACT_METRICS: [&str; 11] = [
    "upgrade_gate_score",
    "upgrade_gate_decision",
    "upgrade_gate_signal_status",
    "upgrade_gate_signal_value",
    "upgrade_gate_stable_seconds",
    "upgrade_gate_evaluation_duration_seconds",
    "upgrade_gate_query_errors_total",
    "upgrade_gate_last_evaluation_timestamp_seconds",
    "upgrade_gate_alerts_total",
    "upgrade_gate_cluster_peers",
    "upgrade_gate_cluster_position",
];

/// The metric names only a gate in fleet mode exports (README "Exported metrics").
pub const FLEET_METRICS: [&str; 2] = [
    "upgrade_gate_wave_ready",
    "upgrade_gate_fleet_unlisted_series",
];
