//! The daemon: HTTP endpoints, status codes, /metrics, readiness and graceful shutdown, with the
//! whole app started on port 0 against a real Prometheus.

mod common;

use std::time::{Duration, Instant};

use common::data::{around, now, OpenMetrics};
use common::gate::{free_port, TestGate};
use common::prometheus::TestPrometheus;
use serde_json::Value;
use tokio::net::TcpListener;
use upgrade_gate::config;

/// A gate serving `body` against Prometheus at `url`, with its config file kept alive.
struct App {
    gate: TestGate,
    _dir: tempfile::TempDir,
}

impl App {
    /// Loads `body` against Prometheus at `url`, binds port 0 and serves.
    async fn start(url: &str, body: &str) -> App {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.yaml");
        std::fs::write(
            &path,
            format!(
                "prometheus: {{url: \"{url}\", timeout: 2s}}\nevaluation: {{interval: 1s}}\n{body}"
            ),
        )
        .unwrap();
        let config = config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
        App {
            gate: TestGate::start(config).await,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.gate.get(path).await
    }

    async fn ready(&self) {
        self.gate.ready().await
    }

    async fn shutdown(self) {
        self.gate.stop().await
    }
}

const BODY: &str = r#"
phases:
  - {name: istio, min_score: 90}
  - {name: karpenter, min_score: 90}
signals:
  - {name: mesh_5xx, query: mesh_5xx, warn: "> 0.5", fail: "> 1", critical: true, phases: [istio]}
  - {name: launch_failures, query: launch_failures, fail: "> 0", phases: [karpenter]}
"#;

fn data(t: i64) -> String {
    OpenMetrics::new()
        .gauge("mesh_5xx", r#"destination_service="a""#, around(t), |_| {
            Some(0.2)
        })
        .gauge(
            "launch_failures",
            r#"nodepool="default""#,
            around(t),
            |_| Some(3.0),
        )
        .render()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_answer_from_the_latest_snapshot() {
    let prom = TestPrometheus::start(&data(now()));
    let app = App::start(prom.url(), BODY).await;
    app.ready().await;

    let (code, body) = app.get("/gate/istio").await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["phase"], "istio");
    assert_eq!(v["decision"], "go");
    assert_eq!(v["score"], 100.0);
    assert_eq!(v["signals"][0]["value"], 0.2);

    let (code, body) = app.get("/gate/karpenter").await;
    assert_eq!(code, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["decision"], "no_go");
    assert!(v["reasons"][0]
        .as_str()
        .unwrap()
        .contains("score 0 is below min_score 90"));

    let (code, body) = app.get("/gate").await;
    assert_eq!(code, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["phase"], "all");
    assert_eq!(v["score"], 50.0);

    let (code, body) = app.get("/gate/nope").await;
    assert_eq!(code, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "unknown phase \"nope\"");
    assert_eq!(
        v["phases"],
        serde_json::json!(["istio", "karpenter", "all"])
    );

    let (code, body) = app.get("/signals").await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<_> = v["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, ["mesh_5xx", "launch_failures"]);
    assert_eq!(v["signals"][1]["status"], "fail");
    assert_eq!(v["signals"][1]["query"], "launch_failures");
    assert_eq!(
        v["signals"][1]["offenders"][0]["labels"]["nodepool"],
        "default"
    );

    assert_eq!(app.get("/healthz").await.0, 200);

    let (code, metrics) = app.get("/metrics").await;
    assert_eq!(code, 200);
    for line in [
        "upgrade_gate_score{phase=\"istio\"} 100.0",
        "upgrade_gate_score{phase=\"karpenter\"} 0.0",
        "upgrade_gate_decision{phase=\"istio\"} 1",
        "upgrade_gate_decision{phase=\"karpenter\"} 0",
        "upgrade_gate_signal_status{signal=\"launch_failures\",status=\"fail\"} 1",
        "upgrade_gate_signal_status{signal=\"launch_failures\",status=\"ok\"} 0",
        "upgrade_gate_signal_value{signal=\"mesh_5xx\"} 0.2",
        "upgrade_gate_signal_value{signal=\"launch_failures\"} 3.0",
        "upgrade_gate_stable_seconds{phase=\"karpenter\"} 0.0",
        "# TYPE upgrade_gate_evaluation_duration_seconds histogram",
        "# TYPE upgrade_gate_last_evaluation_timestamp_seconds gauge",
        "upgrade_gate_query_errors_total{signal=\"mesh_5xx\"} 0",
        "# EOF",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_errors_are_counted_and_block_the_gate() {
    let port = free_port();
    let app = App::start(&format!("http://127.0.0.1:{port}"), BODY).await;
    app.ready().await;
    let (code, body) = app.get("/gate/istio").await;
    assert_eq!(code, 503);
    assert!(
        body.contains(&format!(
            "Prometheus at http://127.0.0.1:{port} is unreachable"
        )),
        "{body}"
    );
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains("upgrade_gate_query_errors_total{signal=\"mesh_5xx\"} "),
        "{metrics}"
    );
    assert!(metrics.contains("upgrade_gate_signal_status{signal=\"mesh_5xx\",status=\"error\"} 1"));
    assert!(
        !metrics.contains("upgrade_gate_signal_value{signal=\"mesh_5xx\"}"),
        "no value when no data"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_never_wait_on_a_hanging_prometheus() {
    // Accepts connections and never answers: the first evaluation cannot finish for 2 s.
    let hang = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", hang.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            held.push(s);
        }
    });
    let app = App::start(&url, BODY).await;
    // Before the first evaluation: not ready, and a gate answer is a fast, safe unknown (503).
    let started = Instant::now();
    assert_eq!(app.get("/readyz").await.0, 503);
    let (code, body) = app.get("/gate/istio").await;
    assert_eq!(code, 503);
    assert!(body.contains("no evaluation has finished yet"), "{body}");
    assert!(body.contains(r#""decision":"unknown""#), "{body}");
    assert_eq!(app.get("/healthz").await.0, 200, "alive while not ready");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );

    // After the timeout the evaluation finishes with errors; answers stay fast while the next
    // evaluation hangs again.
    app.ready().await;
    for _ in 0..5 {
        let started = Instant::now();
        let (code, body) = app.get("/gate/istio").await;
        assert_eq!(code, 503);
        assert!(body.contains(r#""decision":"unknown""#), "{body}");
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }
    app.shutdown().await;
    holder.abort();
}

/// The binary itself: SIGTERM and SIGINT stop it cleanly with exit 0, logs are JSON when asked.
#[test]
fn the_binary_shuts_down_gracefully_on_sigterm_and_sigint() {
    let t = now();
    let prom = TestPrometheus::start(&data(t));
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let path = dir.path().join("gate.yaml");
        std::fs::write(
            &path,
            format!(
                "prometheus: {{url: \"{}\"}}\nevaluation: {{interval: 1s}}\nserver: {{listen: \"127.0.0.1:{port}\"}}\n{BODY}",
                prom.url()
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_upgrade-gate"))
            .args(["--log-format", "json", "serve", "--config"])
            .arg(&path)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .and_then(|mut s| {
                    use std::io::{Read, Write};
                    s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").ok()?;
                    let mut answer = String::new();
                    s.read_to_string(&mut answer).ok()?;
                    Some(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"))
                });
            if ready == Some(true) {
                break;
            }
            assert!(Instant::now() < deadline, "serve never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let exit = loop {
            if let Some(exit) = child.try_wait().unwrap() {
                break exit;
            }
            assert!(Instant::now() < deadline, "did not stop after SIG{signal}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(exit.code(), Some(0), "SIG{signal}");
        let mut logs = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
        let lines: Vec<Value> = logs
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l["fields"]["message"] == "evaluation finished"),
            "{logs}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l["fields"]["message"] == "shutting down"),
            "{logs}"
        );
    }
}
