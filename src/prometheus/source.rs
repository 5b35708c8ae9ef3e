//! The Prometheus source: runs one range query per signal, each with its own timeout, with at
//! most `concurrency` in flight so that a large pack cannot stampede a busy Prometheus.
//!
//! It only fetches; judging the samples is the engine's job, which keeps that part pure.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use reqwest::Method;
use tokio::sync::Semaphore;

use super::client::{not_api, Client};
use super::error::SourceError;
use super::matrix;
use super::sigv4::REFRESH_BEFORE;
use crate::config::PrometheusConfig;
use crate::engine::grid::Grid;
use crate::engine::series::Window;

/// The Prometheus the gate reads, through the one [`Client`].
#[derive(Clone)]
pub struct PrometheusSource {
    client: Arc<Client>,
}

impl PrometheusSource {
    pub fn new(config: &PrometheusConfig) -> Result<Self, SourceError> {
        Self::with_credentials_refresh(config, REFRESH_BEFORE)
    }

    /// As [`Self::new`], with SigV4 credentials refreshed `before` they expire instead of
    /// [`REFRESH_BEFORE`]: tests use credentials that live for minutes, not hours.
    #[doc(hidden)]
    pub fn with_credentials_refresh(
        config: &PrometheusConfig,
        before: Duration,
    ) -> Result<Self, SourceError> {
        Ok(PrometheusSource {
            client: Arc::new(Client::new(config, before)?),
        })
    }

    /// Runs every query over its window, each refused above its series limit, at most
    /// `concurrency` at once; answers in input order.
    pub async fn range_all(
        &self,
        queries: impl IntoIterator<Item = (&str, Window, usize)>,
        concurrency: usize,
    ) -> Vec<Result<Grid, SourceError>> {
        let permits = Semaphore::new(concurrency.max(1));
        let pending: Vec<_> = queries
            .into_iter()
            .map(|(query, window, max_series)| {
                let permits = &permits;
                async move {
                    let _permit = permits
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    self.range(query, window, max_series).await
                }
            })
            .collect();
        join_all(pending).await
    }

    /// Every metric name with a series between `start` and `end` (unix seconds).
    pub async fn metric_names_seen(
        &self,
        start: i64,
        end: i64,
    ) -> Result<std::collections::HashSet<String>, SourceError> {
        let params = [("start", start.to_string()), ("end", end.to_string())];
        let names: Vec<String> = self
            .client
            .get("/api/v1/label/__name__/values", &params)
            .await?;
        Ok(names.into_iter().collect())
    }

    /// One range query, put on `window`'s grid as it is read; more than `max_series` series is
    /// an error. The timeout covers the whole exchange, including a server that accepts the
    /// connection and then never answers.
    pub async fn range(
        &self,
        query: &str,
        window: Window,
        max_series: usize,
    ) -> Result<Grid, SourceError> {
        let timeout = self.client.timeout();
        let params = [
            ("query", query.to_string()),
            ("start", window.start.to_string()),
            ("end", window.end.to_string()),
            ("step", window.step.to_string()),
            ("timeout", format!("{}ms", timeout.as_millis())),
        ];
        let exchange = async {
            let response = self
                .client
                .send(Method::POST, "/api/v1/query_range", &params)
                .await?;
            let status = response.status();
            matrix::read(response, window, max_series, timeout, self.client.url())
                .await
                .map_err(|e| match e {
                    SourceError::BadResponse(why) => not_api(status, why),
                    other => other,
                })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| SourceError::Timeout(timeout))?
    }
}
