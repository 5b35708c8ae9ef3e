//! AWS Signature Version 4 for Amazon Managed Service for Prometheus (AMP): a step on the
//! client's one request path, the last before sending, because the signature covers the exact
//! request.
//!
//! Credentials come from the standard AWS chain (environment, profile, web identity for IRSA or
//! EKS Pod Identity, container and instance metadata), optionally through an assumed role.

use std::time::SystemTime;

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::sts::AssumeRoleProvider;
use aws_config::Region;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use tokio::sync::OnceCell;

use super::error::SourceError;
use crate::config::SigV4Config;

pub struct SigV4 {
    config: SigV4Config,
    /// Built on first use: loading the chain is async and may read files.
    credentials: OnceCell<SharedCredentialsProvider>,
}

impl SigV4 {
    pub fn new(config: SigV4Config) -> Self {
        SigV4 {
            config,
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

    /// Adds the signature headers to `request`, a GET whose URL carries all its parameters.
    pub async fn sign(&self, request: &mut reqwest::Request) -> Result<(), SourceError> {
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
            request.method().as_str(),
            request.url().as_str(),
            std::iter::empty(),
            SignableBody::Bytes(&[]),
        )
        .map_err(|e| SourceError::Auth(format!("SigV4: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| SourceError::Auth(format!("SigV4: {e}")))?
            .into_parts();
        for (name, value) in instructions.headers() {
            let mut value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| SourceError::Auth(format!("SigV4: {e}")))?;
            value.set_sensitive(true);
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| SourceError::Auth(format!("SigV4: {e}")))?;
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }
}
