//! The optional bearer token (`server.auth`): a layer in front of the router, so handlers know
//! nothing of it. `/gate`, `/signals`, the report pages (`/`, `/report`) and `POST /-/reload` show
//! queries, label values and runbook text, or change what runs, and need
//! `Authorization: Bearer <token>`; the probes stay open, and
//! `/metrics` too unless `protect_metrics`. A refusal is a bare 401 that says nothing of why.
//!
//! The layer is tower-http's request validation with this check: the check is synchronous, so an
//! allowed request goes on without a boxed future (axum's `from_fn` middleware, on every route,
//! cost a third of a microsecond per `/gate` request, more than the handler itself).
//!
//! The token file is re-read whenever it changes (a rotated Kubernetes Secret), and the
//! comparison takes the same time wherever the presented token differs. The token is never
//! logged: only the file's path is.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeaderLayer};

use crate::config::Config;
use crate::secret::{Secret, SecretFile};

/// Paths a probe or a scraper must reach without a token.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// The token check, to wrap the whole router (a layer on the router as a whole is passed once
/// per request; on each route, axum boxes it again). With no `server.auth` configured it lets
/// everything through. Follows reloads: the current configuration says which file and what is
/// open.
pub fn layer(config: watch::Receiver<Arc<Config>>) -> ValidateRequestHeaderLayer<RequireToken> {
    ValidateRequestHeaderLayer::custom(RequireToken(Arc::new(Auth {
        config,
        token: Mutex::default(),
    })))
}

/// The check each request passes through; clones share the token read.
#[derive(Clone)]
pub struct RequireToken(Arc<Auth>);

impl<B> ValidateRequest<B> for RequireToken {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response> {
        if self.0.allows(request) {
            Ok(())
        } else {
            Err((
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
            )
                .into_response())
        }
    }
}

struct Auth {
    config: watch::Receiver<Arc<Config>>,
    /// The token file named by the running configuration; a reload may name another.
    token: Mutex<Option<Arc<SecretFile>>>,
}

/// Compares digests, so that neither the bytes nor the length of the token decide how long the
/// comparison takes.
fn same(presented: &[u8], expected: &[u8]) -> bool {
    Sha256::digest(presented)
        .ct_eq(&Sha256::digest(expected))
        .into()
}

impl Auth {
    /// Whether the request may go on: always without `server.auth`, for the open paths, and with
    /// the current token.
    fn allows<B>(&self, request: &Request<B>) -> bool {
        // Cloned only when a token is required, so that the file is never read under the lock.
        let settings = match &self.config.borrow().server.auth {
            None => return true,
            Some(settings) => settings.clone(),
        };
        let path = request.uri().path();
        if PROBES.contains(&path) || (path == "/metrics" && !settings.protect_metrics) {
            return true;
        }
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        match (presented, self.token(&settings.bearer_token_file)) {
            (Some(presented), Some(expected)) => same(presented, expected.expose().as_bytes()),
            _ => false,
        }
    }

    /// The current token, re-read when the file has changed (see [`SecretFile`]); with none
    /// read yet, every request is refused.
    fn token(&self, path: &Path) -> Option<Secret> {
        let file = {
            let mut file = self.token.lock().unwrap_or_else(|e| e.into_inner());
            match file.as_ref() {
                Some(f) if f.path() == path => f.clone(),
                _ => file
                    .insert(Arc::new(SecretFile::new(
                        path.to_path_buf(),
                        "server.auth.bearer_token_file",
                    )))
                    .clone(),
            }
        };
        file.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_value_whatever_their_length() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cret", b"s3cret-and-more"));
        assert!(!same(b"", b"s3cret"));
    }
}
