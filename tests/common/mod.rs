//! Shared helpers for the integration tests (a real Prometheus fed from OpenMetrics text).
// Each test binary uses a different part of these helpers.
#![allow(dead_code)]
pub mod data;
pub mod prometheus;
