//! AWS Signature Version 4 for Amazon Managed Service for Prometheus (AMP): a step on the
//! client's one request path, the last before sending, because the signature covers the exact
//! request.
//!
//! Credentials come from the standard AWS chain (environment, profile, web identity for IRSA or
//! EKS Pod Identity, container and instance metadata), optionally through an assumed role. The
//! chain and `AssumeRoleProvider` do not cache: an SDK client caches through its identity cache,
//! and so does this signer, with the same lazy cache. Credentials are reused until a few minutes
//! before they expire, then refreshed once, concurrent queries waiting for the one refresh; a
//! failed refresh while the credentials in hand are still valid signs with them and costs no
//! query.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::sts::AssumeRoleProvider;
use aws_config::Region;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_async::time::SystemTimeSource;
use aws_smithy_runtime::client::auth::no_auth::{NoAuthScheme, NO_AUTH_SCHEME_ID};
use aws_smithy_runtime::client::identity::IdentityCache;
use aws_smithy_runtime::client::orchestrator::endpoints::StaticUriEndpointResolver;
use aws_smithy_runtime::client::retries::strategy::NeverRetryStrategy;
use aws_smithy_runtime_api::client::auth::static_resolver::StaticAuthSchemeOptionResolver;
use aws_smithy_runtime_api::client::identity::{
    ResolveCachedIdentity, SharedIdentityCache, SharedIdentityResolver,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::display::DisplayErrorContext;
use tokio::sync::OnceCell;

use super::error::SourceError;
use crate::config::SigV4Config;

/// How long before credentials expire they are refreshed; the cache takes a random part of the
/// last half off, so that replicas do not refresh at once.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// How long credentials in hand must still be valid to sign with them when a refresh failed.
const STILL_VALID_FOR: Duration = Duration::from_secs(15);

/// Longest wait for STS or a metadata endpoint; the query's own timeout still bounds it.
const LOAD_TIMEOUT: Duration = Duration::from_secs(20);

pub struct SigV4 {
    config: SigV4Config,
    refresh_before: Duration,
    /// Built on first use: loading the chain is async and may read files.
    credentials: OnceCell<Cached>,
}

impl SigV4 {
    pub fn new(config: SigV4Config, refresh_before: Duration) -> Self {
        SigV4 {
            config,
            refresh_before,
            credentials: OnceCell::new(),
        }
    }

    async fn cached(&self) -> &Cached {
        self.credentials
            .get_or_init(|| async {
                let region = Region::new(self.config.region.clone());
                let chain = DefaultCredentialsChain::builder()
                    .region(region.clone())
                    .build()
                    .await;
                let provider = match &self.config.role_arn {
                    None => SharedCredentialsProvider::new(chain),
                    Some(role) => SharedCredentialsProvider::new(
                        AssumeRoleProvider::builder(role)
                            .region(region)
                            .session_name("upgrade-gate")
                            .build_from_provider(chain)
                            .await,
                    ),
                };
                Cached::new(provider, self.refresh_before)
            })
            .await
    }

    /// Adds the signature headers to `request`, a GET whose URL carries all its parameters.
    pub async fn sign(&self, request: &mut reqwest::Request) -> Result<(), SourceError> {
        let credentials = self.cached().await.credentials().await?;
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

/// Credentials behind the SDK's lazy identity cache, used outside an SDK client: the cache asks
/// for the runtime components a client would hand it, of which it reads the clock and the sleep.
struct Cached {
    cache: SharedIdentityCache,
    resolver: SharedIdentityResolver,
    components: RuntimeComponents,
    config: ConfigBag,
    /// The credentials last obtained, to sign with while a refresh fails and they still hold.
    last: Mutex<Option<Credentials>>,
}

impl Cached {
    fn new(provider: SharedCredentialsProvider, refresh_before: Duration) -> Self {
        let cache = IdentityCache::lazy()
            .buffer_time(refresh_before)
            .load_timeout(LOAD_TIMEOUT)
            .build();
        let resolver = SharedIdentityResolver::new(provider);
        let components = RuntimeComponentsBuilder::new("upgrade-gate sigv4 credentials")
            .with_identity_cache(Some(cache.clone()))
            .with_identity_resolver(NO_AUTH_SCHEME_ID, resolver.clone())
            .with_auth_scheme(NoAuthScheme::new())
            .with_auth_scheme_option_resolver(Some(StaticAuthSchemeOptionResolver::new(vec![
                NO_AUTH_SCHEME_ID,
            ])))
            .with_endpoint_resolver(Some(StaticUriEndpointResolver::uri("http://127.0.0.1")))
            .with_retry_strategy(Some(NeverRetryStrategy::new()))
            .with_time_source(Some(SystemTimeSource::new()))
            .with_sleep_impl(Some(TokioSleep::new()))
            .build()
            .expect("every component the builder requires is set");
        Cached {
            cache,
            resolver,
            components,
            config: ConfigBag::base(),
            last: Mutex::new(None),
        }
    }

    async fn credentials(&self) -> Result<Credentials, SourceError> {
        let resolved =
            self.cache
                .resolve_cached_identity(self.resolver.clone(), &self.components, &self.config)
                .await
                .map_err(|e| format!("no AWS credentials: {}", DisplayErrorContext(&*e)))
                .and_then(|identity| {
                    identity.data::<Credentials>().cloned().ok_or_else(|| {
                        "the credential chain answered no AWS credentials".to_string()
                    })
                });
        let mut last = self.last.lock().expect("no panic while holding the lock");
        match resolved {
            Ok(credentials) => {
                *last = Some(credentials.clone());
                Ok(credentials)
            }
            Err(why) => match last.as_ref() {
                Some(held) if still_valid(held) => {
                    tracing::warn!(
                        error = %why,
                        "refreshing AWS credentials failed; signing with the ones in hand, still valid"
                    );
                    Ok(held.clone())
                }
                _ => Err(SourceError::Auth(why)),
            },
        }
    }
}

fn still_valid(credentials: &Credentials) -> bool {
    credentials
        .expiry()
        .is_none_or(|expiry| expiry > SystemTime::now() + STILL_VALID_FOR)
}
