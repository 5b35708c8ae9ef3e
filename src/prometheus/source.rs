//! The Prometheus source: runs one range query per signal, each with its own timeout, with at
//! most `concurrency` in flight so that a large pack cannot stampede a busy Prometheus.
//!
//! It only fetches; judging the samples is the engine's job, which keeps that part pure.

use std::time::Duration;

use futures::future::join_all;
use prometheus_http_query::Client;
use tokio::sync::Semaphore;

use std::sync::{Arc, Mutex};

use super::answer;
use super::error::{shown_url, SourceError};
use super::sigv4::SigV4;
use crate::config::{Bearer, PrometheusConfig};
use crate::engine::grid::Grid;
use crate::engine::series::Window;
use crate::engine::text::error_chain;

/// A Prometheus HTTP API client bound to one server and one per-query timeout.
#[derive(Clone)]
pub struct PrometheusSource {
    config: PrometheusConfig,
    /// Set for Amazon Managed Service for Prometheus: requests are signed and sent by it.
    sigv4: Option<Arc<SigV4>>,
    /// The client, with the bearer token it was built with when the token comes from a file.
    current: Arc<Mutex<(Option<String>, Client)>>,
}

impl PrometheusSource {
    pub fn new(config: &PrometheusConfig) -> Result<Self, SourceError> {
        let token = read_token(config)?;
        let client = build_client(config, token.as_deref())?;
        let sigv4 = config
            .auth
            .sigv4
            .clone()
            .map(|v| Arc::new(SigV4::new(v, client.inner().clone())));
        Ok(PrometheusSource {
            config: config.clone(),
            sigv4,
            current: Arc::new(Mutex::new((token, client))),
        })
    }

    /// The client to use now: rebuilt when a bearer token file has rotated since the last query.
    fn client(&self) -> Result<Client, SourceError> {
        let token = read_token(&self.config)?;
        let mut current = self
            .current
            .lock()
            .expect("no panic while holding the lock");
        if current.0 != token {
            let client = build_client(&self.config, token.as_deref())?;
            *current = (token, client);
        }
        Ok(current.1.clone())
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
        let timeout = self.config.timeout;
        let names: Vec<String> = match &self.sigv4 {
            Some(signer) => {
                let params = [("start", start.to_string()), ("end", end.to_string())];
                let data = signer
                    .get(
                        &self.config.url,
                        "/api/v1/label/__name__/values",
                        &params,
                        timeout,
                    )
                    .await?;
                serde_json::from_value(data).map_err(|e| SourceError::BadResponse(e.to_string()))?
            }
            None => {
                let request = self
                    .client()?
                    .label_values("__name__")
                    .start(start)
                    .end(end)
                    .get();
                tokio::time::timeout(timeout, request)
                    .await
                    .map_err(|_| SourceError::Timeout(timeout))?
                    .map_err(|e| classify(e, timeout, &self.config.url))?
            }
        };
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
        let timeout = self.config.timeout;
        let params = [
            ("query", query.to_string()),
            ("start", window.start.to_string()),
            ("end", window.end.to_string()),
            ("step", window.step.to_string()),
            ("timeout", format!("{}ms", timeout.as_millis())),
        ];
        let path = "/api/v1/query_range";
        let exchange = async {
            let response = match &self.sigv4 {
                Some(signer) => {
                    signer
                        .send(&self.config.url, path, &params, timeout)
                        .await?
                }
                None => {
                    let url = format!("{}{path}", self.config.url.trim_end_matches('/'));
                    let response = self.client()?.inner().post(url).form(&params).send().await;
                    let response =
                        response.map_err(|e| classify_http(e, timeout, &self.config.url))?;
                    let status = response.status();
                    if status == 401 || status == 403 {
                        return Err(SourceError::Auth(format!(
                            "Prometheus answered {status}: check the credentials, or that a proxy in front of it accepts them"
                        )));
                    }
                    response
                }
            };
            let status = response.status();
            answer::read(response, window, max_series, timeout, &self.config.url)
                .await
                .map_err(|e| match e {
                    // Garbage with an error status is most likely a proxy's page: say which status.
                    SourceError::BadResponse(why) if !status.is_success() => {
                        SourceError::BadResponse(format!("HTTP {status}: {why}"))
                    }
                    SourceError::BadResponse(why) => SourceError::BadResponse(format!(
                        "{why} (is an auth layer or proxy answering instead of Prometheus?)"
                    )),
                    other => other,
                })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| SourceError::Timeout(timeout))?
    }
}

/// Sorts a failed exchange into what an operator would act on. URLs are stripped because they
/// may carry credentials.
fn classify_http(e: reqwest::Error, timeout: Duration, url: &str) -> SourceError {
    if e.is_timeout() {
        SourceError::Timeout(timeout)
    } else {
        SourceError::Unreachable {
            at: shown_url(url),
            reason: describe_chain(&e),
        }
    }
}

/// The bearer token from its file, when it comes from one.
fn read_token(config: &PrometheusConfig) -> Result<Option<String>, SourceError> {
    match &config.auth.bearer {
        Some(Bearer::File(path)) => std::fs::read_to_string(path)
            .map(|t| Some(t.trim().to_string()))
            .map_err(|e| {
                SourceError::Auth(format!(
                    "cannot read bearer_token_file {}: {e}",
                    path.display()
                ))
            }),
        _ => Ok(None),
    }
}

/// A client that sends the configured credentials and headers with every request and trusts the
/// configured CAs. Header values are marked sensitive so that they never show in debug output.
fn build_client(
    config: &PrometheusConfig,
    file_token: Option<&str>,
) -> Result<Client, SourceError> {
    use base64::Engine;
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
    let auth = &config.auth;
    let invalid = |what: &str| SourceError::Auth(format!("{what} is not a valid header value"));
    let sensitive = |value: String, what: &str| {
        HeaderValue::from_str(&value)
            .map_err(|_| invalid(what))
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &auth.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("a header name"))?;
        headers.insert(name, sensitive(value.expose().to_string(), "a header")?);
    }
    let token = match &auth.bearer {
        Some(Bearer::Token(t)) => Some(t.expose()),
        Some(Bearer::File(_)) => file_token,
        None => None,
    };
    if let Some(token) = token {
        headers.insert(
            AUTHORIZATION,
            sensitive(format!("Bearer {token}"), "the bearer token")?,
        );
    }
    if let Some((user, password)) = &auth.basic {
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", password.expose()));
        headers.insert(
            AUTHORIZATION,
            sensitive(format!("Basic {encoded}"), "basic auth")?,
        );
    }
    let mut builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .default_headers(headers)
        .danger_accept_invalid_certs(auth.insecure_skip_verify);
    let tls_error = |e: reqwest::Error| SourceError::Auth(format!("TLS settings: {e}"));
    if let Some(ca) = &auth.ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(ca).map_err(tls_error)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(identity) = &auth.identity_pem {
        builder = builder.identity(reqwest::Identity::from_pem(identity).map_err(tls_error)?);
    }
    let http = builder.build().map_err(|e| SourceError::Unreachable {
        at: shown_url(&config.url),
        reason: e.without_url().to_string(),
    })?;
    Client::from(http, &config.url).map_err(|e| SourceError::Unreachable {
        at: shown_url(&config.url),
        reason: format!("bad URL: {e}"),
    })
}

/// Sorts a client error into what an operator would act on. URLs are stripped because they may
/// carry credentials.
fn classify(e: prometheus_http_query::Error, timeout: Duration, url: &str) -> SourceError {
    use prometheus_http_query::Error;
    match e {
        Error::Prometheus(p) if p.is_timeout() => SourceError::Timeout(timeout),
        Error::Prometheus(p) => SourceError::Rejected(p.to_string()),
        Error::Client(c) => match c.inner() {
            Some(r) if r.is_timeout() => SourceError::Timeout(timeout),
            Some(r) => match r.status() {
                Some(s) if s == 401 || s == 403 => SourceError::Auth(format!(
                    "Prometheus answered {s}: check the credentials, or that a proxy in front of it accepts them"
                )),
                Some(s) => SourceError::BadResponse(format!("HTTP {s}")),
                None if r.is_decode() || r.is_body() => SourceError::BadResponse(format!(
                    "{} (is an auth layer or proxy answering instead of Prometheus?)",
                    describe_chain(r)
                )),
                None => SourceError::Unreachable {
                    at: shown_url(url),
                    reason: describe_chain(r),
                },
            },
            // Raised by the client itself, e.g. a body that is not the API's JSON.
            None => SourceError::BadResponse(c.to_string()),
        },
        other => SourceError::BadResponse(other.to_string()),
    }
}

/// The error's causes in one line, without the request URL (which reqwest's own text carries).
fn describe_chain(e: &reqwest::Error) -> String {
    std::error::Error::source(e).map_or_else(|| "request failed".to_string(), error_chain)
}
