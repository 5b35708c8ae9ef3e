//! SigV4 for Amazon Managed Service for Prometheus: credentials from the standard AWS chain (here
//! its environment link), every request signed, the signature recomputed independently by a
//! loopback proxy from the AWS specification before it forwards to a real Prometheus.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::data::{around, now, OpenMetrics};
use common::prometheus::TestPrometheus;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use upgrade_gate::config::{Config, SigV4Config};
use upgrade_gate::engine::evaluate::Status;
use upgrade_gate::engine::snapshot::Snapshot;
use upgrade_gate::evaluation;
use upgrade_gate::prometheus::source::PrometheusSource;
use upgrade_gate::simulate::scenarios::{openmetrics, Scenario};

const ACCESS_KEY: &str = "AKIDUPGRADEGATETEST";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYUPGRADEGATE";
const REGION: &str = "eu-west-1";

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// AWS's URI encoding: everything but unreserved characters, percent-encoded in upper case.
fn aws_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Why the request's signature is wrong, or `None` when it is right.
fn check_signature(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let auth = header("authorization")?;
    let amz_date = header("x-amz-date")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let field = |name: &str| {
        rest.split(", ")
            .find_map(|part| part.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let credential = field("Credential")?;
    let signed_headers = field("SignedHeaders")?;
    let signature = field("Signature")?;
    let scope = credential
        .strip_prefix(&format!("{ACCESS_KEY}/"))?
        .to_string();
    let date = &amz_date[..8];
    if scope != format!("{date}/{REGION}/aps/aws4_request") {
        return Some(format!("wrong scope {scope}"));
    }
    let mut query: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| {
                let s = s.replace('+', " ");
                let bytes = s.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' {
                        out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).unwrap()
            };
            (aws_encode(&decode(k)), aws_encode(&decode(v)))
        })
        .collect();
    query.sort();
    let canonical_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let canonical_headers: String = signed_headers
        .split(';')
        .map(|h| format!("{h}:{}\n", header(h).unwrap_or_default().trim()))
        .collect();
    let canonical_request = format!(
        "GET\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        uri.path(),
        canonical_query.join("&"),
        hex::encode(Sha256::digest(b""))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = hmac(format!("AWS4{SECRET_KEY}").as_bytes(), date);
    let key = hmac(&key, REGION);
    let key = hmac(&key, "aps");
    let key = hmac(&key, "aws4_request");
    let expected = hex::encode(hmac(&key, &string_to_sign));
    (expected != signature).then(|| format!("signature mismatch over:\n{canonical_request}"))
}

#[derive(Clone)]
struct Verifier {
    upstream: String,
    verdicts: Arc<Mutex<Vec<Option<String>>>>,
}

/// Checks the signature over the path as sent (`OriginalUri`, with the workspace prefix), then
/// forwards the API path to Prometheus.
async fn verify_and_forward(
    State(v): State<Verifier>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let verdict = if headers.get("authorization").is_none() {
        Some("unsigned".to_string())
    } else {
        check_signature(&original, &headers)
    };
    v.verdicts.lock().unwrap().push(verdict.clone());
    if let Some(why) = verdict {
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let url = format!("{}{}", v.upstream, uri.path_and_query().unwrap());
    let answer = reqwest::get(url).await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    (
        status,
        [("content-type", "application/json")],
        answer.bytes().await.unwrap(),
    )
        .into_response()
}

/// A signing proxy in front of `upstream`, as AMP's workspace URL: the URL and its verdicts.
async fn start_verifier(upstream: &str) -> (String, Verifier) {
    let verifier = Verifier {
        upstream: upstream.to_string(),
        verdicts: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/workspaces/ws-1234",
        listener.local_addr().unwrap()
    );
    let app = axum::Router::new()
        .fallback(verify_and_forward)
        .with_state(verifier.clone());
    let app = axum::Router::new().nest_service("/workspaces/ws-1234", app);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, verifier)
}

/// The AWS environment is one per process: tests that set it take turns.
static AWS_ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_signed_with_credentials_from_the_chain() {
    let _env = AWS_ENV.lock().await;
    // The chain's environment link; metadata endpoints are off so nothing leaves loopback.
    std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::remove_var("AWS_SESSION_TOKEN");
    std::env::remove_var("AWS_PROFILE");

    let prom = TestPrometheus::start(
        &OpenMetrics::new()
            .gauge(
                "mesh_5xx",
                r#"destination_service="a b/c""#,
                around(now()),
                |_| Some(0.1),
            )
            .render(),
    );
    let (url, verifier) = start_verifier(prom.url()).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::write(
        &path,
        format!(
            "prometheus: {{url: \"{url}\", sigv4: {{region: {REGION}}}}}\nphases: [{{name: p}}]\nsignals:\n  - {{name: mesh_5xx, query: 'sum by (destination_service) (mesh_5xx{{destination_service=~\"a.*\"}})', fail: \"> 1\"}}\n"
        ),
    )
    .unwrap();
    let config = upgrade_gate::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    let s = evaluation::evaluate(&config, &source, now()).await;
    assert_eq!(
        s.signals[0].status,
        Status::Ok,
        "{:?} {:?}",
        s.signals[0].error,
        verifier.verdicts.lock().unwrap()
    );
    assert_eq!(s.signals[0].value, Some(0.1));
    let names = source.metric_names_seen(now() - 3600, now()).await.unwrap();
    assert!(names.contains("mesh_5xx"));
    let verdicts = verifier.verdicts.lock().unwrap().clone();
    assert_eq!(verdicts, [None, None], "both requests signed correctly");

    // Wrong credentials: the proxy refuses, and the gate reports it as an auth error.
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let other = PrometheusSource::new(&config.prometheus).unwrap();
    let s = evaluation::evaluate(&config, &other, now()).await;
    assert_eq!(s.signals[0].status, Status::Error);
    let error = s.signals[0].error.clone().unwrap();
    assert!(
        error.contains("cannot authenticate to Prometheus: Prometheus answered 403"),
        "{error}"
    );
    assert!(!error.contains("not-the-secret"));
}

/// A local STS: answers AssumeRoleWithWebIdentity and AssumeRole with the verifier's keys, valid
/// for `lifetime`, and counts the calls; while `failing`, it throttles.
#[derive(Clone, Default)]
struct Sts {
    /// (action, when, the expiration it answered).
    calls: Arc<Mutex<Vec<(String, SystemTime, SystemTime)>>>,
    lifetime: Arc<Mutex<Duration>>,
    failing: Arc<AtomicBool>,
}

impl Sts {
    fn count(&self, action: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.0 == action)
            .count()
    }
}

async fn sts_answer(State(sts): State<Sts>, body: String) -> Response {
    let action = body
        .split('&')
        .find_map(|p| p.strip_prefix("Action="))
        .unwrap_or("")
        .to_string();
    let now = SystemTime::now();
    let expiration = now + *sts.lifetime.lock().unwrap();
    sts.calls
        .lock()
        .unwrap()
        .push((action.clone(), now, expiration));
    if sts.failing.load(Ordering::SeqCst) {
        let error = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>STS is down in this test</Message></Error><RequestId>r</RequestId></ErrorResponse>";
        return (StatusCode::FORBIDDEN, [("content-type", "text/xml")], error).into_response();
    }
    let expiration = chrono::DateTime::<chrono::Utc>::from(expiration)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let subject = if action == "AssumeRoleWithWebIdentity" {
        "<SubjectFromWebIdentityToken>system:serviceaccount:gate:gate</SubjectFromWebIdentityToken>"
    } else {
        ""
    };
    let body = format!(
        r#"<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><{action}Result>{subject}<Credentials><AccessKeyId>{ACCESS_KEY}</AccessKeyId><SecretAccessKey>{SECRET_KEY}</SecretAccessKey><SessionToken>session-{n}</SessionToken><Expiration>{expiration}</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/gate/upgrade-gate</Arn><AssumedRoleId>AROATEST:upgrade-gate</AssumedRoleId></AssumedRoleUser></{action}Result><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"#,
        n = sts.calls.lock().unwrap().len()
    );
    (StatusCode::OK, [("content-type", "text/xml")], body).into_response()
}

/// IRSA as EKS sets it up: a projected token file and a role, with STS on loopback; nothing
/// else of the chain answers.
async fn irsa(lifetime: Duration, dir: &std::path::Path) -> Sts {
    let sts = Sts::default();
    *sts.lifetime.lock().unwrap() = lifetime;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(sts_answer)
        .with_state(sts.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let token = dir.join("token");
    std::fs::write(&token, "eyJ.projected.token").unwrap();
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        std::env::remove_var(name);
    }
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_CONFIG_FILE", dir.join("no-config"));
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"));
    std::env::set_var("AWS_WEB_IDENTITY_TOKEN_FILE", &token);
    std::env::set_var("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gate");
    std::env::set_var("AWS_ROLE_SESSION_NAME", "upgrade-gate");
    std::env::set_var("AWS_ENDPOINT_URL_STS", &endpoint);
    sts
}

/// The default pack on a healthy cluster, read through the signing proxy with SigV4.
async fn default_pack_over_sigv4(role_arn: Option<&str>) -> (Config, TestPrometheus) {
    let t = now();
    let prom = TestPrometheus::start(&openmetrics(Scenario::Healthy, t - 2 * 3600, t + 600, 30));
    let (url, _) = start_verifier(prom.url()).await;
    let mut config = upgrade_gate::config::load(None).unwrap_or_else(|e| panic!("{e}"));
    config.prometheus.url = url;
    config.prometheus.auth.sigv4 = Some(SigV4Config {
        region: REGION.to_string(),
        service: "aps".to_string(),
        role_arn: role_arn.map(str::to_string),
    });
    (config, prom)
}

/// Every signal judged, none failed to query.
fn all_queried(s: &Snapshot) {
    for r in &s.signals {
        assert_ne!(r.status, Status::Error, "{}: {:?}", r.name, r.error);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_evaluations_fetch_credentials_once_per_lifetime() {
    let _env = AWS_ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    for role_arn in [None, Some("arn:aws:iam::123456789012:role/amp-query")] {
        let sts = irsa(Duration::from_secs(3600), dir.path()).await;
        let (config, _prom) = default_pack_over_sigv4(role_arn).await;
        let source = PrometheusSource::new(&config.prometheus).unwrap();
        for _ in 0..50 {
            all_queried(&evaluation::evaluate(&config, &source, now()).await);
        }
        assert_eq!(sts.count("AssumeRoleWithWebIdentity"), 1, "{role_arn:?}");
        assert_eq!(
            sts.count("AssumeRole"),
            usize::from(role_arn.is_some()),
            "{role_arn:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_refreshed_once_before_they_expire() {
    let _env = AWS_ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let sts = irsa(Duration::from_secs(120), dir.path()).await;
    let (config, _prom) = default_pack_over_sigv4(Some("arn:aws:iam::1:role/amp")).await;
    // Refreshed between 50 and 100 s before they expire, as the SDK jitters it: 20 to 70 s in.
    let source =
        PrometheusSource::with_credentials_refresh(&config.prometheus, Duration::from_secs(100))
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(110);
    while sts.count("AssumeRole") < 2 && Instant::now() < deadline {
        all_queried(&evaluation::evaluate(&config, &source, now()).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for _ in 0..3 {
        all_queried(&evaluation::evaluate(&config, &source, now()).await);
    }
    let calls = sts.calls.lock().unwrap().clone();
    let roles: Vec<_> = calls.iter().filter(|c| c.0 == "AssumeRole").collect();
    assert_eq!(roles.len(), 2, "fetched, then refreshed once: {calls:?}");
    assert!(roles[1].1 < roles[0].2, "refreshed before they expired");
    assert_eq!(sts.count("AssumeRoleWithWebIdentity"), 2, "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_while_credentials_hold_costs_no_query() {
    let _env = AWS_ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let sts = irsa(Duration::from_secs(600), dir.path()).await;
    let (config, _prom) = default_pack_over_sigv4(None).await;
    // Refreshing more than twice the lifetime ahead: every query asks for a refresh.
    let source =
        PrometheusSource::with_credentials_refresh(&config.prometheus, Duration::from_secs(1300))
            .unwrap();
    all_queried(&evaluation::evaluate(&config, &source, now()).await);
    sts.failing.store(true, Ordering::SeqCst);
    let before = sts.count("AssumeRoleWithWebIdentity");
    all_queried(&evaluation::evaluate(&config, &source, now()).await);
    assert!(
        sts.count("AssumeRoleWithWebIdentity") > before,
        "a refresh was tried, and failed"
    );
    // Without credentials in hand, the same failure is an authentication error.
    let fresh = PrometheusSource::new(&config.prometheus).unwrap();
    let s = evaluation::evaluate(&config, &fresh, now()).await;
    let error = s.signals[0].error.clone().unwrap_or_default();
    assert!(error.contains("no AWS credentials"), "{error}");
}
