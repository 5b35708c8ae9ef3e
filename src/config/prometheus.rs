//! The `prometheus` section: where the API is, how long a query may take, and how the gate
//! proves who it is (bearer token, basic auth, headers, TLS, SigV4). Files named here are read
//! now, so that a wrong path fails at start-up rather than at the first query.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::problems::{At, Problems};
use crate::secret::Secret;

const DEFAULT_PROMETHEUS_URL: &str = "http://127.0.0.1:9090";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrometheus {
    url: Option<String>,
    timeout: Option<String>,
    bearer_token: Option<String>,
    bearer_token_file: Option<String>,
    basic_auth: Option<RawBasicAuth>,
    headers: Option<BTreeMap<String, String>>,
    tls: Option<RawTls>,
    sigv4: Option<RawSigV4>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigV4 {
    region: Option<String>,
    service: Option<String>,
    role_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    insecure_skip_verify: Option<bool>,
}

impl RawPrometheus {
    /// Whether a URL is written: a fleet backend has no default to fall back on.
    pub(super) fn has_url(&self) -> bool {
        self.url.is_some()
    }
}

/// Where the Prometheus API is and how long one query may take.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusConfig {
    pub url: String,
    pub timeout: Duration,
    pub auth: PrometheusAuth,
}

/// How upgrade-gate proves who it is to Prometheus (or Mimir, Cortex, Thanos behind a proxy).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrometheusAuth {
    pub bearer: Option<Bearer>,
    pub basic: Option<(String, Secret)>,
    /// Sent with every query, e.g. `X-Scope-OrgID` for a multi-tenant Mimir or Cortex.
    pub headers: Vec<(String, Secret)>,
    /// PEM of extra CAs to trust.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of the client certificate followed by its key, for mutual TLS.
    pub identity_pem: Option<Vec<u8>>,
    pub insecure_skip_verify: bool,
    /// Sign every request with AWS SigV4 (Amazon Managed Service for Prometheus).
    pub sigv4: Option<SigV4Config>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SigV4Config {
    pub region: String,
    /// `aps` for Amazon Managed Service for Prometheus.
    pub service: String,
    /// A role to assume with the chain's credentials.
    pub role_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Bearer {
    Token(Secret),
    /// Re-read before every query: projected service-account tokens rotate.
    File(PathBuf),
}

/// The `prometheus` section: where, how long a query may take, and the credentials.
pub(super) fn validate_prometheus(
    file: &str,
    raw: &RawPrometheus,
    problems: &Problems,
) -> PrometheusConfig {
    validate_prometheus_at(problems.at(file), "prometheus", raw)
}

/// The keys of a `prometheus` section under `prefix`: the top-level one, or a fleet backend's
/// (`fleet.backends[0].prometheus`), so that both are read by the same rules.
pub(super) fn validate_prometheus_at(
    at: At,
    prefix: &str,
    raw: &RawPrometheus,
) -> PrometheusConfig {
    let p = prefix;
    let auth = validate_auth(at, p, raw);
    let url = validate_url(at, p, raw.url.clone());
    let key = at.key(format!("{p}.timeout"));
    let timeout = key.duration_or(raw.timeout.clone(), DEFAULT_TIMEOUT);
    key.require(!timeout.is_zero(), "must be more than 0");
    PrometheusConfig { auth, url, timeout }
}

fn validate_auth(at: At, p: &str, raw: &RawPrometheus) -> PrometheusAuth {
    let bearer = match (&raw.bearer_token, &raw.bearer_token_file) {
        (Some(_), Some(_)) => {
            at.key(format!("{p}.bearer_token"))
                .problem("set either `bearer_token` or `bearer_token_file`, not both");
            None
        }
        (Some(token), None) => at
            .key(format!("{p}.bearer_token"))
            .secret(Some(token.clone()), None)
            .map(Bearer::Token),
        (None, Some(path)) => {
            // Read now to catch a wrong path at start-up; read again before every query.
            let read =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"));
            at.key(format!("{p}.bearer_token_file")).check(read);
            Some(Bearer::File(PathBuf::from(path)))
        }
        (None, None) => None,
    };
    let basic = raw.basic_auth.as_ref().and_then(|b| {
        let username = b.username.clone().filter(|u| !u.is_empty());
        at.key(format!("{p}.basic_auth.username"))
            .require(username.is_some(), "missing");
        let password = at.key(format!("{p}.basic_auth.password"));
        let given = b.password.is_some() || b.password_file.is_some();
        password.require(given, "set `password` or `password_file`");
        username.zip(password.secret(b.password.clone(), b.password_file.clone()))
    });
    at.key(format!("{p}.basic_auth")).require(
        bearer.is_none() || basic.is_none(),
        "set either a bearer token or basic auth, not both",
    );
    let mut headers = Vec::new();
    for (name, value) in raw.headers.iter().flatten() {
        let key = at.key(format!("{p}.headers.{name}"));
        let valid = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok();
        if key.require(valid, "is not a valid header name") {
            headers.extend(
                key.secret(Some(value.clone()), None)
                    .map(|v| (name.clone(), v)),
            );
        }
    }
    let pem = |key: String, path: &Option<String>| {
        let path = path.as_ref()?;
        let read = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"));
        at.key(key).check(read)
    };
    let tls = raw.tls.as_ref();
    let ca_pem = tls.and_then(|t| pem(format!("{p}.tls.ca_file"), &t.ca_file));
    let cert = tls.and_then(|t| pem(format!("{p}.tls.cert_file"), &t.cert_file));
    let key = tls.and_then(|t| pem(format!("{p}.tls.key_file"), &t.key_file));
    if let Some(ca) = &ca_pem {
        let empty = reqwest::Certificate::from_pem_bundle(ca).map_or(true, |c| c.is_empty());
        at.key(format!("{p}.tls.ca_file"))
            .require(!empty, "holds no PEM certificate");
    }
    let identity_pem = match (cert, key) {
        (Some(mut cert), Some(key)) => {
            cert.push(b'\n');
            cert.extend(key);
            at.key(format!("{p}.tls.cert_file")).require(
                reqwest::Identity::from_pem(&cert).is_ok(),
                "cert_file and key_file do not make a PEM certificate and private key",
            );
            Some(cert)
        }
        (None, None) => None,
        _ => {
            at.key(format!("{p}.tls"))
                .problem("a client certificate needs both cert_file and key_file");
            None
        }
    };
    let sigv4 = raw.sigv4.as_ref().and_then(|v| {
        at.key(format!("{p}.sigv4")).require(
            bearer.is_none() && basic.is_none(),
            "SigV4 signs the requests itself; remove the bearer token or basic auth",
        );
        let region = v.region.clone().filter(|r| !r.is_empty());
        at.key(format!("{p}.sigv4.region"))
            .require(region.is_some(), "missing, e.g. eu-west-1");
        Some(SigV4Config {
            region: region?,
            service: v.service.clone().unwrap_or_else(|| "aps".to_string()),
            role_arn: v.role_arn.clone(),
        })
    });
    PrometheusAuth {
        bearer,
        basic,
        headers,
        ca_pem,
        identity_pem,
        insecure_skip_verify: tls.and_then(|t| t.insecure_skip_verify).unwrap_or(false),
        sigv4,
    }
}

fn validate_url(at: At, p: &str, url: Option<String>) -> String {
    let url = url.unwrap_or_else(|| DEFAULT_PROMETHEUS_URL.to_string());
    let key = at.key(format!("{p}.url"));
    // The URL may carry credentials; say what is wrong without echoing it.
    if let Some(u) = key.check(reqwest::Url::parse(&url).map_err(|e| format!("is not a URL: {e}")))
    {
        key.require(
            u.scheme() == "http" || u.scheme() == "https",
            "must be an http:// or https:// URL",
        );
    }
    url
}
