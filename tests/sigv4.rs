//! SigV4 for Amazon Managed Service for Prometheus: credentials from the standard AWS chain (here
//! its environment link), every request signed, the signature recomputed independently by a
//! loopback proxy from the AWS specification before it forwards to a real Prometheus.

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::data::{around, now, OpenMetrics};
use common::prometheus::TestPrometheus;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use upgrade_gate::engine::evaluate::Status;
use upgrade_gate::evaluation;
use upgrade_gate::prometheus::source::PrometheusSource;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_signed_with_credentials_from_the_chain() {
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
    let verifier = Verifier {
        upstream: prom.url().to_string(),
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
