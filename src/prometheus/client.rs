//! The one way the gate talks to Prometheus. Every request takes the same path: built from the
//! base URL, given the configured authentication as a step (headers, basic auth, a bearer token
//! re-read from its file, a SigV4 signature last because it covers the exact request), sent
//! within the query timeout over the one TLS-configured HTTP client, and any failure sorted by
//! one classifier ([`classify`]) and one envelope reading ([`api_status`]).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::{api_status, classify, shown_url, SourceError};
use super::sigv4::SigV4;
use crate::config::{Bearer, PrometheusConfig};

/// A client bound to one server, its credentials and one per-query timeout.
pub struct Client {
    url: String,
    base: reqwest::Url,
    timeout: Duration,
    http: reqwest::Client,
    /// Sent with every request: configured headers, basic auth, an inline bearer token.
    headers: HeaderMap,
    /// Re-read before every request: projected service-account tokens rotate.
    token_file: Option<PathBuf>,
    sigv4: Option<SigV4>,
}

/// The envelope of every Prometheus HTTP API answer.
#[derive(Deserialize)]
struct Envelope<T> {
    status: Option<String>,
    data: Option<T>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    warnings: Option<Vec<String>>,
}

impl Client {
    /// `refresh_before`: how long before they expire SigV4 credentials are refreshed.
    pub fn new(config: &PrometheusConfig, refresh_before: Duration) -> Result<Self, SourceError> {
        let auth = &config.auth;
        let bad_url = |reason: String| SourceError::Unreachable {
            at: shown_url(&config.url),
            reason,
        };
        let mut base =
            reqwest::Url::parse(&config.url).map_err(|e| bad_url(format!("bad URL: {e}")))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
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
        let http = builder
            .build()
            .map_err(|e| bad_url(e.without_url().to_string()))?;
        Ok(Client {
            url: config.url.clone(),
            base,
            timeout: config.timeout,
            http,
            headers: static_headers(config)?,
            token_file: match &auth.bearer {
                Some(Bearer::File(path)) => Some(path.clone()),
                _ => None,
            },
            sigv4: auth.sigv4.clone().map(|c| SigV4::new(c, refresh_before)),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `path` with `params` and answers the response once its status says it may hold
    /// an API answer. Queries go as a form (no URL length limit for long PromQL), metadata as
    /// `GET`, and signed requests always as `GET`, whose signature covers the URL.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<reqwest::Response, SourceError> {
        let mut url =
            self.base
                .join(path.trim_start_matches('/'))
                .map_err(|e| SourceError::Unreachable {
                    at: shown_url(&self.url),
                    reason: format!("bad URL: {e}"),
                })?;
        let method = if self.sigv4.is_some() {
            Method::GET
        } else {
            method
        };
        if method == Method::GET {
            url.query_pairs_mut().extend_pairs(params);
        }
        let builder = self.http.request(method.clone(), url).timeout(self.timeout);
        let builder = match method {
            Method::GET => builder,
            _ => builder.form(params),
        };
        let mut request = builder
            .build()
            .map_err(|e| classify(&e, self.timeout, &self.url))?;
        self.authenticate(&mut request).await?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| classify(&e, self.timeout, &self.url))?;
        match response.status() {
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                Err(SourceError::Auth(format!(
                    "Prometheus answered {status}: check {}",
                    if self.sigv4.is_some() {
                        "the role's permissions and the region of the SigV4 signature"
                    } else {
                        "the credentials, or that a proxy in front of it accepts them"
                    }
                )))
            }
            _ => Ok(response),
        }
    }

    /// `GET path?params`, read whole: the `data` of the API answer, or why there is none.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T, SourceError> {
        let exchange = async {
            let response = self.send(Method::GET, path, params).await?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| classify(&e, self.timeout, &self.url))?;
            let envelope: Envelope<T> =
                serde_json::from_slice(&body).map_err(|e| not_api(status, e.to_string()))?;
            api_status(
                envelope.status.as_deref(),
                envelope.error_type,
                envelope.error,
                envelope.warnings,
                self.timeout,
            )?;
            envelope
                .data
                .ok_or_else(|| SourceError::BadResponse("no data".into()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SourceError::Timeout(self.timeout))?
    }

    /// The authentication step: headers, the bearer token as its file holds it now, and the
    /// signature last.
    async fn authenticate(&self, request: &mut reqwest::Request) -> Result<(), SourceError> {
        for (name, value) in &self.headers {
            request.headers_mut().insert(name, value.clone());
        }
        if let Some(path) = &self.token_file {
            let token = std::fs::read_to_string(path).map_err(|e| {
                SourceError::Auth(format!(
                    "cannot read bearer_token_file {}: {e}",
                    path.display()
                ))
            })?;
            let value = sensitive(format!("Bearer {}", token.trim()), "the bearer token")?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        if let Some(signer) = &self.sigv4 {
            signer.sign(request).await?;
        }
        Ok(())
    }
}

/// A body that is not the API's answer; with an error status most likely a proxy's page, so
/// the status is named.
pub fn not_api(status: StatusCode, why: String) -> SourceError {
    if status.is_success() {
        SourceError::BadResponse(format!(
            "{why} (is an auth layer or proxy answering instead of Prometheus?)"
        ))
    } else {
        SourceError::BadResponse(format!("HTTP {status}: {why}"))
    }
}

/// The headers every request carries. Values are marked sensitive so that they never show in
/// debug output.
fn static_headers(config: &PrometheusConfig) -> Result<HeaderMap, SourceError> {
    use base64::Engine;
    let auth = &config.auth;
    let mut headers = HeaderMap::new();
    for (name, value) in &auth.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| SourceError::Auth("a header name is not a valid header value".into()))?;
        headers.insert(name, sensitive(value.expose().to_string(), "a header")?);
    }
    if let Some(Bearer::Token(token)) = &auth.bearer {
        headers.insert(
            AUTHORIZATION,
            sensitive(format!("Bearer {}", token.expose()), "the bearer token")?,
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
    Ok(headers)
}

fn sensitive(value: String, what: &str) -> Result<HeaderValue, SourceError> {
    let mut value = HeaderValue::from_str(&value)
        .map_err(|_| SourceError::Auth(format!("{what} is not a valid header value")))?;
    value.set_sensitive(true);
    Ok(value)
}
