//! Shared helpers for the integration tests (a real Prometheus fed from OpenMetrics text,
//! a real Alertmanager, both run by `process`, a scripted recording HTTP receiver).
// Each test binary uses a different part of these helpers.
#![allow(dead_code)]
pub mod alertmanager;
pub mod data;
pub mod process;
pub mod prometheus;
pub mod receiver;
