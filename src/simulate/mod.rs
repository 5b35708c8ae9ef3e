//! Synthetic upgrade metrics for the demo and the tests: the scenarios, one pure model of an EKS
//! cluster under upgrade ([`scenarios`]), rendered as OpenMetrics for a backfill or served live by
//! an exporter that a real Prometheus scrapes ([`exporter`]).
//!
//! It knows the metric names the default pack reads, and nothing of the gate itself: no engine,
//! no configuration, no Prometheus client.

pub mod exporter;
pub mod scenarios;
