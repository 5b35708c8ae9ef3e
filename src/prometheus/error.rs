//! How a query can fail. Every variant is a reason the gate fails closed, never a healthy answer.

use std::time::Duration;

/// Why a query produced no usable answer. Never treated as healthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("query timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("Prometheus is unreachable: {0}")]
    Unreachable(String),
    #[error("Prometheus rejected the query: {0}")]
    Rejected(String),
    #[error("Prometheus answered something that is not a range-query result: {0}")]
    BadResponse(String),
    #[error("cannot authenticate to Prometheus: {0}")]
    Auth(String),
}
