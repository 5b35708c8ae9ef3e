//! The `server` section's hardening: connection deadlines and limits, optional TLS, and an
//! optional bearer token. The certificate and key are read and matched now, so that a bad pair
//! (at start, or on a reload after a rotation) is a configuration problem and the running
//! certificate stays; the token file is only checked here, the server re-reads it on change.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::sign::CertifiedKey;

use super::problems::{At, Problems};
use super::read::whole_number;

const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// `POST /-/reload` takes no body; this leaves room for a proxy's small one.
const DEFAULT_MAX_BODY_BYTES: usize = 4096;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) enable_reload_endpoint: Option<bool>,
    header_read_timeout: Option<String>,
    request_timeout: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    max_connections: Option<i64>,
    #[serde(default, deserialize_with = "whole_number")]
    max_body_bytes: Option<i64>,
    tls: Option<RawServerTls>,
    auth: Option<RawServerAuth>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServerTls {
    cert_file: Option<String>,
    key_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServerAuth {
    bearer_token_file: Option<String>,
    protect_metrics: Option<bool>,
}

/// How the HTTP server guards itself and whom it answers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub limits: Limits,
    pub tls: Option<ServerTls>,
    pub auth: Option<ServerAuth>,
}

/// Deadlines and sizes that keep idle, slow or greedy clients from taking the server away from
/// everyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's line and headers (and, with TLS, the handshake before them) must arrive within
    /// this; it also closes a keep-alive connection that sends no next request.
    pub header_read_timeout: Duration,
    /// A request that has no answer within this gets 408.
    pub request_timeout: Duration,
    /// Open connections at most; `None` derives it from the process's open-file limit.
    pub max_connections: Option<usize>,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
}

/// The server's certificate chain and key, read and matched at load.
#[derive(Clone)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub certified: Arc<CertifiedKey>,
}

impl fmt::Debug for ServerTls {
    /// The key stays out of any printout.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAuth {
    /// Holds the token; re-read by the server whenever the file changes.
    pub bearer_token_file: PathBuf,
    /// Whether `/metrics` needs the token too (`/healthz` and `/readyz` never do).
    pub protect_metrics: bool,
}

pub(super) fn validate_server(file: &str, raw: &RawServer, problems: &Problems) -> ServerConfig {
    let at = problems.at(file);
    let positive_duration = |key: &str, text: &Option<String>, default: Duration| {
        let key = at.key(key);
        let d = key.duration_or(text.clone(), default);
        match key.require(!d.is_zero(), "must be more than 0") {
            true => d,
            false => default,
        }
    };
    let header_read_timeout = positive_duration(
        "server.header_read_timeout",
        &raw.header_read_timeout,
        DEFAULT_HEADER_READ_TIMEOUT,
    );
    let request_timeout = positive_duration(
        "server.request_timeout",
        &raw.request_timeout,
        DEFAULT_REQUEST_TIMEOUT,
    );
    // 0 (or absent) means: derived from the open-file limit at start.
    let max_connections = raw.max_connections.filter(|&n| n != 0).and_then(|n| {
        let positive = at.key("server.max_connections").require(
            n > 0,
            format!("{n} must be at least 1, or 0 for the default"),
        );
        positive.then_some(n as usize)
    });
    let max_body_bytes = match raw.max_body_bytes {
        None => DEFAULT_MAX_BODY_BYTES,
        Some(n) if n >= 0 => n as usize,
        Some(n) => {
            at.key("server.max_body_bytes")
                .problem(format!("{n} must not be negative"));
            DEFAULT_MAX_BODY_BYTES
        }
    };
    ServerConfig {
        limits: Limits {
            header_read_timeout,
            request_timeout,
            max_connections,
            max_body_bytes,
        },
        tls: raw.tls.as_ref().and_then(|t| validate_tls(at, t)),
        auth: raw.auth.as_ref().and_then(|a| validate_auth(at, a)),
    }
}

fn validate_tls(at: At, raw: &RawServerTls) -> Option<ServerTls> {
    let (Some(cert_file), Some(key_file)) = (&raw.cert_file, &raw.key_file) else {
        for (key, value) in [
            ("server.tls.cert_file", &raw.cert_file),
            ("server.tls.key_file", &raw.key_file),
        ] {
            at.key(key).require(
                value.is_some(),
                "missing: TLS needs both cert_file and key_file",
            );
        }
        return None;
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("cannot read {cert_file}: {e}"))
        .and_then(|certs| {
            certs
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{cert_file} is not PEM: {e}"))
        })
        .and_then(|chain| match chain.is_empty() {
            true => Err(format!("{cert_file} holds no CERTIFICATE")),
            false => Ok(chain),
        });
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("cannot read a PEM private key from {key_file}: {e}"));
    let chain = at.key("server.tls.cert_file").check(chain);
    let key = at.key("server.tls.key_file").check(key);
    let certified = CertifiedKey::from_der(chain?, key?, &aws_lc_rs::default_provider())
        .map_err(|e| format!("{key_file} does not fit the certificate in {cert_file}: {e}"));
    Some(ServerTls {
        cert_file: cert_file.into(),
        key_file: key_file.into(),
        certified: Arc::new(at.key("server.tls.key_file").check(certified)?),
    })
}

fn validate_auth(at: At, raw: &RawServerAuth) -> Option<ServerAuth> {
    let key = at.key("server.auth.bearer_token_file");
    let Some(path) = &raw.bearer_token_file else {
        key.problem("missing");
        return None;
    };
    // Read now so that a wrong path fails at start-up; the value itself is never kept here.
    let token = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"));
    let token = key.check(token)?;
    key.require(!token.trim().is_empty(), format!("{path} is empty"))
        .then(|| ServerAuth {
            bearer_token_file: path.into(),
            protect_metrics: raw.protect_metrics.unwrap_or(false),
        })
}
