//! The Prometheus source: runs one range query per signal, each with its own timeout, with at
//! most `concurrency` in flight so that a large pack cannot stampede a busy Prometheus.
//!
//! It only fetches; judging the samples is `evaluate`'s job, which keeps that part pure.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use prometheus_http_query::response::Data;
use prometheus_http_query::Client;
use tokio::sync::Semaphore;

use crate::config::PrometheusConfig;

/// Labels of one series, sorted so that output and matching are deterministic.
pub type Labels = BTreeMap<String, String>;

/// One returned series: its labels and its samples as (unix seconds, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// The time grid of a range query: `start`, `start + step`, ... up to `end` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Window {
    /// A window of `steps_back` steps before `end` (so `steps_back + 1` points).
    pub fn ending_at(end: i64, step: i64, steps_back: usize) -> Window {
        Window {
            start: end - step * steps_back as i64,
            end,
            step,
        }
    }

    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step) as usize + 1
    }

    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }

    /// The grid index of a sample timestamp, if it lies on the grid.
    pub fn index_of(&self, ts: i64) -> Option<usize> {
        let offset = ts - self.start;
        (offset >= 0 && offset % self.step == 0 && ts <= self.end)
            .then(|| (offset / self.step) as usize)
    }
}

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
}

/// A Prometheus HTTP API client bound to one server and one per-query timeout.
#[derive(Clone)]
pub struct PrometheusSource {
    client: Client,
    timeout: Duration,
}

impl PrometheusSource {
    pub fn new(config: &PrometheusConfig) -> Result<Self, SourceError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| SourceError::Unreachable(e.without_url().to_string()))?;
        let client = Client::from(http, &config.url)
            .map_err(|e| SourceError::Unreachable(format!("bad Prometheus URL: {e}")))?;
        Ok(PrometheusSource {
            client,
            timeout: config.timeout,
        })
    }

    /// Runs every query over its window, at most `concurrency` at once, answers in input order.
    pub async fn range_all(
        &self,
        queries: impl IntoIterator<Item = (&str, Window)>,
        concurrency: usize,
    ) -> Vec<Result<Vec<Series>, SourceError>> {
        let permits = Semaphore::new(concurrency.max(1));
        let pending: Vec<_> = queries
            .into_iter()
            .map(|(query, window)| {
                let permits = &permits;
                async move {
                    let _permit = permits
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    self.range(query, window).await
                }
            })
            .collect();
        join_all(pending).await
    }

    /// Every metric name with a series between `start` and `end` (unix seconds).
    pub async fn metric_names(
        &self,
        start: i64,
        end: i64,
    ) -> Result<std::collections::HashSet<String>, SourceError> {
        let request = self
            .client
            .label_values("__name__")
            .start(start)
            .end(end)
            .get();
        let names = tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| SourceError::Timeout(self.timeout))?
            .map_err(|e| classify(e, self.timeout))?;
        Ok(names.into_iter().collect())
    }

    /// One range query. The timeout covers the whole exchange, including a server that accepts
    /// the connection and then never answers.
    pub async fn range(&self, query: &str, window: Window) -> Result<Vec<Series>, SourceError> {
        let request = self
            .client
            .query_range(query, window.start, window.end, window.step as f64)
            .timeout(self.timeout.as_millis() as i64)
            .post();
        let response = tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| SourceError::Timeout(self.timeout))?
            .map_err(|e| classify(e, self.timeout))?;
        match response.into_inner().0 {
            Data::Matrix(vectors) => Ok(vectors
                .into_iter()
                .map(|rv| {
                    let (labels, samples) = rv.into_inner();
                    Series {
                        labels: labels.into_iter().collect(),
                        samples: samples
                            .iter()
                            .map(|s| (s.timestamp().round() as i64, s.value()))
                            .collect(),
                    }
                })
                .collect()),
            other => Err(SourceError::BadResponse(format!(
                "expected a matrix, got {}",
                match other {
                    Data::Vector(_) => "a vector",
                    Data::Scalar(_) => "a scalar",
                    _ => "another result type",
                }
            ))),
        }
    }
}

/// Sorts a client error into what an operator would act on. URLs are stripped because they may
/// carry credentials.
fn classify(e: prometheus_http_query::Error, timeout: Duration) -> SourceError {
    use prometheus_http_query::Error;
    match e {
        Error::Prometheus(p) if p.is_timeout() => SourceError::Timeout(timeout),
        Error::Prometheus(p) => SourceError::Rejected(p.to_string()),
        Error::Client(c) => match c.inner() {
            Some(r) if r.is_timeout() => SourceError::Timeout(timeout),
            Some(r) if r.is_decode() || r.is_body() => SourceError::BadResponse(describe_chain(r)),
            Some(r) => SourceError::Unreachable(describe_chain(r)),
            // Raised by the client itself, e.g. a body that is not the API's JSON.
            None => SourceError::BadResponse(c.to_string()),
        },
        other => SourceError::BadResponse(other.to_string()),
    }
}

/// The error and its causes in one line, without the request URL.
fn describe_chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        "request failed".to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_grid_is_inclusive_and_aligned_to_the_end() {
        let w = Window::ending_at(1000, 30, 4);
        assert_eq!(w.start, 880);
        assert_eq!(w.len(), 5);
        assert_eq!(w.index_of(880), Some(0));
        assert_eq!(w.index_of(1000), Some(4));
        assert_eq!(w.index_of(1001), None);
        assert_eq!(w.index_of(850), None);
        assert_eq!(w.index_of(1030), None);
    }
}
