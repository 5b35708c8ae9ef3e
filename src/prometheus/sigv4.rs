//! AWS Signature Version 4 for Amazon Managed Service for Prometheus (AMP).
//!
//! AMP accepts only signed requests, and the signature covers the exact request, so these
//! requests are built and sent here rather than by the Prometheus client crate. Credentials come
//! from the standard AWS chain (environment, profile, web identity for IRSA or EKS Pod Identity,
//! container and instance metadata), optionally through an assumed role; the chain refreshes
//! them before they expire.

use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::sts::AssumeRoleProvider;
use aws_config::Region;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::error::{shown_url, SourceError};
use crate::config::SigV4Config;

pub struct SigV4 {
    config: SigV4Config,
    http: reqwest::Client,
    /// Built on first use: loading the chain is async and may read files.
    credentials: OnceCell<SharedCredentialsProvider>,
}

/// The envelope of every Prometheus HTTP API answer.
#[derive(Deserialize)]
struct ApiAnswer {
    status: String,
    data: Option<serde_json::Value>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

impl SigV4 {
    pub fn new(config: SigV4Config, http: reqwest::Client) -> Self {
        SigV4 {
            config,
            http,
            credentials: OnceCell::new(),
        }
    }

    async fn provider(&self) -> &SharedCredentialsProvider {
        self.credentials
            .get_or_init(|| async {
                let region = Region::new(self.config.region.clone());
                let chain = DefaultCredentialsChain::builder()
                    .region(region.clone())
                    .build()
                    .await;
                match &self.config.role_arn {
                    None => SharedCredentialsProvider::new(chain),
                    Some(role) => SharedCredentialsProvider::new(
                        AssumeRoleProvider::builder(role)
                            .region(region)
                            .session_name("upgrade-gate")
                            .build_from_provider(chain)
                            .await,
                    ),
                }
            })
            .await
    }

    /// A signed `GET base+path?params`; answers the API's `data`, or why there is none.
    pub async fn get(
        &self,
        base: &str,
        path: &str,
        params: &[(&str, String)],
        timeout: Duration,
    ) -> Result<serde_json::Value, SourceError> {
        let response = self.send(base, path, params, timeout).await?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| failed(e, timeout, base))?;
        let answer: ApiAnswer = serde_json::from_slice(&body)
            .map_err(|e| SourceError::BadResponse(format!("HTTP {status}: {e}")))?;
        match (answer.status.as_str(), answer.data) {
            ("success", Some(data)) => Ok(data),
            (_, _) if answer.error_type.as_deref() == Some("timeout") => {
                Err(SourceError::Timeout(timeout))
            }
            _ => Err(SourceError::Rejected(format!(
                "{}: {}",
                answer.error_type.unwrap_or_default(),
                answer.error.unwrap_or_default()
            ))),
        }
    }

    /// A signed `GET base+path?params`; answers the response for the caller to read (a range
    /// query's answer is read onto the grid as it arrives, never held whole).
    pub async fn send(
        &self,
        base: &str,
        path: &str,
        params: &[(&str, String)],
        timeout: Duration,
    ) -> Result<reqwest::Response, SourceError> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}{path}", base.trim_end_matches('/')),
            params,
        )
        .map_err(|e| SourceError::Unreachable {
            at: shown_url(base),
            reason: format!("bad URL: {e}"),
        })?;
        let credentials = self
            .provider()
            .await
            .provide_credentials()
            .await
            .map_err(|e| SourceError::Auth(format!("no AWS credentials: {e}")))?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name(&self.config.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SourceError::Auth(format!("SigV4: {e}")))?
            .into();
        let signable = SignableRequest::new(
            "GET",
            url.as_str(),
            std::iter::empty(),
            SignableBody::Bytes(&[]),
        )
        .map_err(|e| SourceError::Auth(format!("SigV4: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| SourceError::Auth(format!("SigV4: {e}")))?
            .into_parts();
        let mut request = self.http.get(url).timeout(timeout);
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| failed(e, timeout, base))?;
        let status = response.status();
        if status == 401 || status == 403 {
            return Err(SourceError::Auth(format!(
                "Prometheus answered {status} to a SigV4-signed request: check the role's permissions and the region"
            )));
        }
        Ok(response)
    }
}

/// A request that got no complete answer: too slow, or no connection.
fn failed(e: reqwest::Error, timeout: Duration, base: &str) -> SourceError {
    if e.is_timeout() {
        SourceError::Timeout(timeout)
    } else {
        SourceError::Unreachable {
            at: shown_url(base),
            reason: e.without_url().to_string(),
        }
    }
}
