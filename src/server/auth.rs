//! The optional bearer token (`server.auth`): a layer in front of the router, so handlers know
//! nothing of it. `/gate`, `/signals` and `POST /-/reload` show queries, label values and runbook
//! text, or change what runs, and need `Authorization: Bearer <token>`; the probes stay open, and
//! `/metrics` too unless `protect_metrics`. A refusal is a bare 401 that says nothing of why.
//!
//! The layer is tower-http's request validation with this check: the check is synchronous, so an
//! allowed request goes on without a boxed future (axum's `from_fn` middleware, on every route,
//! cost a third of a microsecond per `/gate` request, more than the handler itself).
//!
//! The token file is re-read whenever it changes (a rotated Kubernetes Secret), and the
//! comparison takes the same time wherever the presented token differs. The token is never
//! logged: only the file's path is.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeaderLayer};

use crate::config::Config;
use crate::secret::Secret;

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
    token: Mutex<Option<TokenFile>>,
}

/// The token as last read, and what the file looked like then.
struct TokenFile {
    path: PathBuf,
    seen: Option<FileStamp>,
    token: Secret,
}

/// Enough of a file's metadata to notice a replacement: Kubernetes swaps a symlink to a new
/// file, an editor rewrites in place.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: inode(&meta),
        })
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
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

    /// The current token, re-read when the file has changed. A file that cannot be read or is
    /// empty (half-written) leaves the last good token in force, with an error logged once per
    /// change; with none yet, every request is refused.
    fn token(&self, path: &Path) -> Option<Secret> {
        let stamp = FileStamp::of(path);
        let mut cached = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = cached.as_ref() {
            if t.path == path && t.seen == stamp {
                return Some(t.token.clone());
            }
        }
        let read = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| match text.trim() {
                "" => Err("the file is empty".to_string()),
                token => Ok(Secret::new(token.to_string())),
            });
        match read {
            Ok(token) => {
                if cached.is_some() {
                    tracing::info!(file = %path.display(), "bearer token file re-read");
                }
                *cached = Some(TokenFile {
                    path: path.to_path_buf(),
                    seen: stamp,
                    token: token.clone(),
                });
                Some(token)
            }
            Err(e) => {
                tracing::error!(
                    file = %path.display(),
                    error = %e,
                    "cannot read server.auth.bearer_token_file; the last token read stays in force"
                );
                let last = cached.as_mut().filter(|t| t.path == path)?;
                last.seen = stamp;
                Some(last.token.clone())
            }
        }
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
