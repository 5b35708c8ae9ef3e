//! Prometheus access as real setups need it: bearer tokens (inline and from a rotating file),
//! basic auth and custom headers, checked by a loopback proxy in front of a real Prometheus that
//! refuses any request without the expected credentials; and TLS with a private CA and a client
//! certificate, against a real Prometheus serving HTTPS through its `--web.config.file`.

mod common;

use common::data::{around, now, OpenMetrics};
use common::gate::free_port;
use common::prometheus::TestPrometheus;
use common::proxy::proxy;
use common::tls::certificates;
use upgrade_gate::config;
use upgrade_gate::engine::decide::Decision;
use upgrade_gate::engine::evaluate::Status;
use upgrade_gate::engine::snapshot::Snapshot;
use upgrade_gate::evaluation;
use upgrade_gate::prometheus::source::PrometheusSource;

fn prometheus() -> TestPrometheus {
    TestPrometheus::start(
        &OpenMetrics::new()
            .gauge(
                "mesh_5xx",
                r#"destination_service="a""#,
                around(now()),
                |_| Some(0.1),
            )
            .render(),
    )
}

/// Loads a config for `url` with the given `prometheus:` extras and evaluates once.
async fn evaluate(dir: &std::path::Path, url: &str, extra: &str) -> Snapshot {
    let path = dir.join("gate.yaml");
    std::fs::write(
        &path,
        format!("prometheus:\n  url: \"{url}\"\n{extra}\nphases: [{{name: p}}]\nsignals: [{{name: mesh_5xx, query: mesh_5xx, fail: \"> 1\"}}]\n"),
    )
    .unwrap();
    let config = config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    evaluation::evaluate(&config, &source, now()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_from_the_environment() {
    let prom = prometheus();
    let (url, _) = proxy(prom.url(), &[("authorization", "Bearer t0k3n-from-env")]).await;
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("UG_AUTH_TEST_TOKEN", "t0k3n-from-env");
    let s = evaluate(
        dir.path(),
        &url,
        "  bearer_token: \"${UG_AUTH_TEST_TOKEN}\"",
    )
    .await;
    assert_eq!(s.all().decision, Decision::Go, "{:?}", s.all().reasons);

    // Without it, the proxy refuses: an error, never healthy.
    let s = evaluate(dir.path(), &url, "").await;
    assert_eq!(s.signals[0].status, Status::Error);
    assert_eq!(s.all().decision, Decision::Unknown);
    assert!(
        s.signals[0]
            .error
            .as_deref()
            .unwrap()
            .contains("cannot authenticate to Prometheus: Prometheus answered 401 Unauthorized"),
        "{:?}",
        s.signals[0].error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_bearer_token_file_is_picked_up() {
    let prom = prometheus();
    let (url, proxy) = proxy(prom.url(), &[("authorization", "Bearer first")]).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first\n").unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::write(
        &path,
        format!(
            "prometheus: {{url: \"{url}\", bearer_token_file: \"{}\"}}\nphases: [{{name: p}}]\nsignals: [{{name: mesh_5xx, query: mesh_5xx, fail: \"> 1\"}}]\n",
            token.display()
        ),
    )
    .unwrap();
    let config = config::load(Some(&path)).unwrap();
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    assert_eq!(
        evaluation::evaluate(&config, &source, now()).await.signals[0].status,
        Status::Ok
    );
    // The token rotates (as a projected service-account token does): the same source follows.
    std::fs::write(&token, "second\n").unwrap();
    *proxy.required.lock().unwrap() = vec![("authorization".into(), "Bearer second".into())];
    assert_eq!(
        evaluation::evaluate(&config, &source, now()).await.signals[0].status,
        Status::Ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_and_tenant_headers() {
    let prom = prometheus();
    // "gate:pa55" in base64.
    let (url, proxy) = proxy(
        prom.url(),
        &[
            ("authorization", "Basic Z2F0ZTpwYTU1"),
            ("x-scope-orgid", "tenant-1"),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "pa55\n").unwrap();
    let s = evaluate(
        dir.path(),
        &url,
        &format!(
            "  basic_auth: {{username: gate, password_file: \"{}\"}}\n  headers: {{X-Scope-OrgID: tenant-1}}",
            password.display()
        ),
    )
    .await;
    assert_eq!(s.signals[0].status, Status::Ok, "{:?}", s.signals[0].error);
    let seen = proxy.seen.lock().unwrap();
    assert!(
        seen.iter().all(|h| h.get("x-scope-orgid").is_some()),
        "every query carries the tenant"
    );
}

#[test]
fn credentials_are_validated_without_being_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::write(
        &path,
        r#"prometheus:
  url: http://127.0.0.1:9090
  bearer_token: "SECRET-TOKEN"
  bearer_token_file: /nonexistent/token
  basic_auth: {password: "SECRET-PASSWORD"}
  headers: {"bad header": x}
  tls: {ca_file: /nonexistent/ca.pem, cert_file: /nonexistent/cert.pem}
phases: [{name: p}]
signals: [{name: s, query: up, fail: "> 1"}]
"#,
    )
    .unwrap();
    let err = config::load(Some(&path)).unwrap_err().to_string();
    for expected in [
        "key `prometheus.bearer_token`: set either `bearer_token` or `bearer_token_file`, not both",
        "key `prometheus.basic_auth.username`: missing",
        "key `prometheus.headers.bad header`: is not a valid header name",
        "key `prometheus.tls.ca_file`: cannot read /nonexistent/ca.pem",
        "key `prometheus.tls.cert_file`: cannot read /nonexistent/cert.pem",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
    assert!(!err.contains("SECRET"), "{err}");
}

/// Prometheus serving HTTPS that requires a client certificate signed by the test CA; killed on drop.
struct TlsPrometheus(std::process::Child);

impl Drop for TlsPrometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_and_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    std::fs::write(d.join("prometheus.yml"), "global: {scrape_interval: 1m}\n").unwrap();
    std::fs::write(
        d.join("web.yml"),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    )
    .unwrap();
    let port = free_port();
    let _prometheus = TlsPrometheus(
        std::process::Command::new("prometheus")
            .current_dir(d)
            .args([
                "--config.file=prometheus.yml",
                "--web.config.file=web.yml",
                "--storage.tsdb.path=data",
                &format!("--web.listen-address=127.0.0.1:{port}"),
                "--log.level=warn",
            ])
            .stderr(std::fs::File::create(d.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let url = format!("https://127.0.0.1:{port}");
    // Ready when it answers over TLS with our client certificate.
    let read = |f: &str| std::fs::read(d.join(f)).unwrap();
    let probe = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&read("ca.pem")).unwrap())
        .identity(
            reqwest::Identity::from_pem(&[read("client.pem"), read("client.key")].concat())
                .unwrap(),
        )
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !probe
        .get(format!("{url}/-/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "TLS Prometheus never ready: {}",
            std::fs::read_to_string(d.join("prometheus.log")).unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let path = |f: &str| d.join(f).display().to_string();
    let tls = format!(
        "  tls: {{ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\"}}",
        path("ca.pem"),
        path("client.pem"),
        path("client.key")
    );
    // `vector(0.5)` needs no data: the point is the TLS handshake both ways.
    let evaluate = |extra: String| {
        let gate = d.join("gate.yaml");
        std::fs::write(
            &gate,
            format!("prometheus:\n  url: \"{url}\"\n{extra}\nphases: [{{name: p}}]\nsignals: [{{name: s, query: 'vector(0.5)', fail: \"> 1\"}}]\n"),
        )
        .unwrap();
        let config = config::load(Some(&gate)).unwrap_or_else(|e| panic!("{e}"));
        async move {
            let source = PrometheusSource::new(&config.prometheus).unwrap();
            evaluation::evaluate(&config, &source, now())
                .await
                .signals
                .remove(0)
        }
    };
    let ok = evaluate(tls).await;
    assert_eq!(ok.status, Status::Ok, "{:?}", ok.error);
    assert_eq!(ok.value, Some(0.5));

    // Without the client certificate the server refuses the handshake; without the CA the gate
    // refuses the server. Both are errors, never healthy.
    // In TLS 1.3 the server refuses the missing certificate after the client has finished its
    // handshake, so the server's alert races the request: under load hyper may see the connection
    // close before it reads the alert ("connection was not ready"). Every attempt must be an
    // error; the alert must be named within a few attempts.
    let mut errors = Vec::new();
    for _ in 0..5 {
        let no_client = evaluate(format!("  tls: {{ca_file: \"{}\"}}", path("ca.pem"))).await;
        assert_eq!(no_client.status, Status::Error);
        let error = no_client.error.unwrap();
        let named = error.contains("BadCertificate");
        errors.push(error);
        if named {
            break;
        }
    }
    assert!(
        errors.last().unwrap().contains("BadCertificate"),
        "{errors:?}"
    );
    let no_ca = evaluate(String::new()).await;
    assert_eq!(no_ca.status, Status::Error);
    assert!(
        no_ca.error.as_deref().unwrap().contains("UnknownIssuer"),
        "{:?}",
        no_ca.error
    );
}
