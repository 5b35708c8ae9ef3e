//! Synthetic upgrade metrics for the demo and the tests: one pure model of an EKS cluster under
//! upgrade, component by component ([`model`]), the scenarios that change it, one file each, and
//! their rendering as OpenMetrics for a backfill ([`scenarios`]), or served live by an exporter
//! that a real Prometheus scrapes ([`exporter`]); a fleet of such clusters in one text, told
//! apart by a label ([`fleet`]).
//!
//! It knows the metric names the default pack reads, and nothing of the gate itself: no engine,
//! no configuration, no Prometheus client.

pub mod exporter;
pub mod fleet;
pub mod model;
pub mod scenarios;
