//! The `prometheus` section: where the API is, how long a query may take, and how the gate
//! proves who it is (bearer token, basic auth, headers, TLS, SigV4). Files named here are read
//! now, so that a wrong path fails at start-up rather than at the first query.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::problems::Problems;
use super::read::{duration_or, secret_value};
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
    problems: &mut Problems,
) -> PrometheusConfig {
    let auth = validate_auth(file, raw, problems);
    let prometheus = PrometheusConfig {
        auth,
        url: validate_url(file, raw.url.clone(), problems),
        timeout: duration_or(
            file,
            "prometheus.timeout",
            raw.timeout.clone(),
            DEFAULT_TIMEOUT,
            problems,
        ),
    };
    if prometheus.timeout.is_zero() {
        problems.add(
            file,
            None,
            Some("prometheus.timeout"),
            "must be more than 0".into(),
        );
    }
    prometheus
}

fn validate_auth(file: &str, raw: &RawPrometheus, problems: &mut Problems) -> PrometheusAuth {
    let bearer = match (&raw.bearer_token, &raw.bearer_token_file) {
        (Some(_), Some(_)) => {
            problems.add(
                file,
                None,
                Some("prometheus.bearer_token"),
                "set either `bearer_token` or `bearer_token_file`, not both".into(),
            );
            None
        }
        (Some(_), None) => secret_value(
            file,
            "prometheus.bearer_token",
            raw.bearer_token.clone(),
            None,
            problems,
        )
        .map(Bearer::Token),
        (None, Some(path)) => {
            // Read now to catch a wrong path at start-up; read again before every query.
            if let Err(e) = std::fs::read_to_string(path) {
                problems.add(
                    file,
                    None,
                    Some("prometheus.bearer_token_file"),
                    format!("cannot read {path}: {e}"),
                );
            }
            Some(Bearer::File(PathBuf::from(path)))
        }
        (None, None) => None,
    };
    let basic = raw.basic_auth.as_ref().and_then(|b| {
        let username = b.username.clone().filter(|u| !u.is_empty());
        if username.is_none() {
            problems.add(
                file,
                None,
                Some("prometheus.basic_auth.username"),
                "missing".into(),
            );
        }
        if b.password.is_none() && b.password_file.is_none() {
            problems.add(
                file,
                None,
                Some("prometheus.basic_auth.password"),
                "set `password` or `password_file`".into(),
            );
        }
        let password = secret_value(
            file,
            "prometheus.basic_auth.password",
            b.password.clone(),
            b.password_file.clone(),
            problems,
        );
        username.zip(password)
    });
    if bearer.is_some() && basic.is_some() {
        problems.add(
            file,
            None,
            Some("prometheus.basic_auth"),
            "set either a bearer token or basic auth, not both".into(),
        );
    }
    let mut headers = Vec::new();
    for (name, value) in raw.headers.iter().flatten() {
        let key = format!("prometheus.headers.{name}");
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.add(file, None, Some(&key), "is not a valid header name".into());
            continue;
        }
        if let Some(value) = secret_value(file, &key, Some(value.clone()), None, problems) {
            headers.push((name.clone(), value));
        }
    }
    let mut pem = |key: &str, path: &Option<String>| {
        path.as_ref().and_then(|p| match std::fs::read(p) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                problems.add(file, None, Some(key), format!("cannot read {p}: {e}"));
                None
            }
        })
    };
    let tls = raw.tls.as_ref();
    let ca_pem = tls.and_then(|t| pem("prometheus.tls.ca_file", &t.ca_file));
    let cert = tls.and_then(|t| pem("prometheus.tls.cert_file", &t.cert_file));
    let key = tls.and_then(|t| pem("prometheus.tls.key_file", &t.key_file));
    if let Some(ca) = &ca_pem {
        if reqwest::Certificate::from_pem_bundle(ca).map_or(true, |c| c.is_empty()) {
            problems.add(
                file,
                None,
                Some("prometheus.tls.ca_file"),
                "holds no PEM certificate".into(),
            );
        }
    }
    let identity_pem = match (cert, key) {
        (Some(mut cert), Some(key)) => {
            cert.push(b'\n');
            cert.extend(key);
            if reqwest::Identity::from_pem(&cert).is_err() {
                problems.add(
                    file,
                    None,
                    Some("prometheus.tls.cert_file"),
                    "cert_file and key_file do not make a PEM certificate and private key".into(),
                );
            }
            Some(cert)
        }
        (None, None) => None,
        _ => {
            problems.add(
                file,
                None,
                Some("prometheus.tls"),
                "a client certificate needs both cert_file and key_file".into(),
            );
            None
        }
    };
    let sigv4 = raw.sigv4.as_ref().and_then(|v| {
        if bearer.is_some() || basic.is_some() {
            problems.add(
                file,
                None,
                Some("prometheus.sigv4"),
                "SigV4 signs the requests itself; remove the bearer token or basic auth".into(),
            );
        }
        match v.region.clone().filter(|r| !r.is_empty()) {
            None => {
                problems.add(
                    file,
                    None,
                    Some("prometheus.sigv4.region"),
                    "missing, e.g. eu-west-1".into(),
                );
                None
            }
            Some(region) => Some(SigV4Config {
                region,
                service: v.service.clone().unwrap_or_else(|| "aps".to_string()),
                role_arn: v.role_arn.clone(),
            }),
        }
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

fn validate_url(file: &str, url: Option<String>, problems: &mut Problems) -> String {
    let url = url.unwrap_or_else(|| DEFAULT_PROMETHEUS_URL.to_string());
    match reqwest::Url::parse(&url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        // The URL may carry credentials; say what is wrong without echoing it.
        Ok(_) => problems.add(
            file,
            None,
            Some("prometheus.url"),
            "must be an http:// or https:// URL".into(),
        ),
        Err(e) => problems.add(
            file,
            None,
            Some("prometheus.url"),
            format!("is not a URL: {e}"),
        ),
    }
    url
}
