//! The alert path against real servers: a recording HTTP receiver for Slack and webhooks, a real
//! Alertmanager, receivers that fail, throttle and hang, and the daemon's logs checked for secrets.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::alertmanager::TestAlertmanager;
use common::data::mesh_5xx_switching;
use common::gate::free_port;
use common::prometheus::TestPrometheus;
use common::receiver::{Receiver, Reply};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use upgrade_gate::alerting::delivery::Alerting;
use upgrade_gate::config::{self, Config};
use upgrade_gate::engine::grid::Grid;
use upgrade_gate::engine::series::Series;
use upgrade_gate::engine::snapshot::{windows, Snapshot};
use upgrade_gate::server::metrics::Metrics;

const WAIT: Duration = Duration::from_secs(20);

/// A config with one phase, two signals, and `receivers` (YAML list items) for alerts.
fn config(receivers: &str, extra_alerts: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
evaluation: {{interval: 30s}}
phases: [{{name: istio, min_score: 90}}]
signals:
  - {{name: mesh_5xx, query: mesh_5xx, warn: "> 0.5", fail: "> 1", critical: true, runbook: "relabel the namespaces to the old revision"}}
  - {{name: xds_rejects, query: xds_rejects, fail: "> 0"}}
alerts:
  external_url: http://gate.example:8080/
  retry_initial_backoff: 50ms
  retry_max_backoff: 200ms
  timeout: 2s
{extra_alerts}
  receivers:
{receivers}
"#
        ),
    )
    .unwrap();
    let config = config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    (dir, config)
}

/// A snapshot at `at` where `mesh_5xx` of service `reviews` is `value` and xDS rejects are 0.
fn snapshot(config: &Config, at: i64, value: f64) -> Arc<Snapshot> {
    let answers: Vec<Result<_, String>> =
        windows(&config.pack, config.evaluation.step_secs(), at, at)
            .iter()
            .zip(&config.pack.signals)
            .map(|(w, s)| {
                let v = if s.name == "mesh_5xx" { value } else { 0.0 };
                Ok(Grid::from_series(
                    *w,
                    &[Series {
                        labels: [("destination_service".to_string(), "reviews".to_string())].into(),
                        samples: (0..w.len())
                            .map(|k| (w.start + w.step * k as i64, v))
                            .collect(),
                    }],
                ))
            })
            .collect();
    Arc::new(Snapshot::judge(
        &config.pack,
        config.evaluation.step_secs(),
        at,
        &answers,
    ))
}

fn verify_signature(secret: &str, body: &str, header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    header.strip_prefix("sha256=").map(hex::decode)
        == Some(Ok(mac.finalize().into_bytes().to_vec()))
}

const T0: i64 = 1_800_000_000;

/// A webhook receiver entry for `config`.
fn webhook_at(url: &str) -> String {
    format!("    - {{name: pipeline, kind: webhook, url: \"{url}\"}}")
}

/// Feeds one snapshot per value of `mesh_5xx`, 30 s apart from `T0`, through the alert path, and
/// waits until every queued alert has been delivered or given up.
async fn run_alerts(config: &Config, values: &[f64]) -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::new());
    let mut alerting = Alerting::start(
        &config.alerts,
        config.evaluation.interval,
        metrics.alerts.clone(),
    );
    for (i, v) in values.iter().enumerate() {
        alerting.observe(
            &snapshot(config, T0 + 30 * i as i64, *v),
            tokio::time::Instant::now(),
        );
    }
    alerting.close().await;
    metrics
}

#[tokio::test]
async fn slack_and_webhook_bodies_reach_real_receivers() {
    let slack = Receiver::start(vec![]).await;
    let hook = Receiver::start(vec![]).await;
    let (_dir, config) = config(
        &format!(
            "    - {{name: ops-slack, kind: slack, url: \"{}/services/T000/B000/XXXX\"}}\n    - {{name: pipeline, kind: webhook, url: \"{}/upgrade\", hmac_secret: \"s3cret-key\"}}",
            slack.url(),
            hook.url()
        ),
        "",
    );
    // Healthy (nothing to say), then the phase is no-go as mesh_5xx fails, then both resolve.
    let metrics = run_alerts(&config, &[0.1, 2.5, 0.1]).await;
    let messages = slack.received();
    let hooks = hook.received();
    assert_eq!(messages.len(), 4);
    assert_eq!(hooks.len(), 4);

    // Slack: Block Kit with the phase, decision, score, failing signal and the gate link.
    assert_eq!(messages[0].path, "/services/T000/B000/XXXX");
    let m = messages[0].json();
    assert_eq!(
        m["text"],
        ":red_circle: upgrade-gate: phase istio is NO-GO (score 50)"
    );
    let blocks = m["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["text"], "upgrade-gate: istio is NO-GO");
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "*Phase*\nistio",
            "*Decision*\nno_go",
            "*Score*\n50",
            "*Severity*\ncritical"
        ]
    );
    let signal = blocks[2]["text"]["text"].as_str().unwrap();
    assert_eq!(
        signal,
        "*mesh_5xx* is *fail*: `{destination_service=\"reviews\"} = 2.5 (fail > 1)`\n_Runbook:_ relabel the namespaces to the old revision"
    );
    let context = blocks.last().unwrap()["elements"].to_string();
    assert!(
        context.contains("<http://gate.example:8080/gate/istio|Open the gate>"),
        "{context}"
    );
    let texts: Vec<String> = messages
        .iter()
        .map(|m| m.json()["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        texts[1..],
        [
            ":red_circle: upgrade-gate: signal mesh_5xx fails: {destination_service=\"reviews\"} = 2.5 (fail > 1)",
            ":white_check_mark: upgrade-gate: phase istio is GO again (score 100)",
            ":white_check_mark: upgrade-gate: signal mesh_5xx no longer fails",
        ]
    );

    // Webhook: the documented body, signed, with an idempotency key per alert.
    let first = &hooks[0];
    assert_eq!(first.path, "/upgrade");
    let body = first.json();
    assert_eq!(body["version"], "1");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alertname"], "UpgradeGatePhaseNoGo");
    assert_eq!(body["phase"], "istio");
    assert_eq!(body["decision"], "no_go");
    assert_eq!(body["score"], 50.0);
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["evaluated_at"], "2027-01-15T08:00:30Z");
    assert_eq!(body["starts_at"], "2027-01-15T08:00:30Z");
    assert_eq!(body["gate_url"], "http://gate.example:8080/gate/istio");
    assert_eq!(body["signals"][0]["name"], "mesh_5xx");
    assert_eq!(body["signals"][0]["status"], "fail");
    assert_eq!(body["signals"][0]["value"], 2.5);
    assert_eq!(body["signals"][0]["fail"], "> 1");
    assert_eq!(
        body["signals"][0]["worst"]["labels"]["destination_service"],
        "reviews"
    );
    assert!(body["reasons"][0]
        .as_str()
        .unwrap()
        .contains("critical signal \"mesh_5xx\" is fail"));
    for h in &hooks {
        let signature = h.header("X-Upgrade-Gate-Signature").expect("signed");
        assert!(
            verify_signature("s3cret-key", &h.body, signature),
            "bad signature {signature}"
        );
        assert!(!verify_signature("another-key", &h.body, signature));
        assert_eq!(
            h.header("Idempotency-Key").unwrap(),
            h.json()["idempotency_key"]
        );
        assert_eq!(h.header("content-type").unwrap(), "application/json");
    }
    let keys: std::collections::HashSet<_> = hooks
        .iter()
        .map(|h| h.header("Idempotency-Key").unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 4, "one key per alert notification");
    let resolved = hooks[2].json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["decision"], "go");
    assert_eq!(resolved["ends_at"], "2027-01-15T08:01:00Z");
    assert_eq!(resolved["starts_at"], "2027-01-15T08:00:30Z");
    assert!(metrics
        .encode()
        .contains("upgrade_gate_alerts_total{receiver=\"pipeline\",outcome=\"sent\"} 4"));
}

#[tokio::test]
async fn send_resolved_false_keeps_resolutions_to_itself() {
    let hook = Receiver::start(vec![]).await;
    let (_dir, config) = config(&webhook_at(&hook.url()), "  send_resolved: false");
    run_alerts(&config, &[0.1, 2.5, 0.1]).await;
    let statuses: Vec<Value> = hook
        .received()
        .iter()
        .map(|r| r.json()["status"].clone())
        .collect();
    assert_eq!(statuses, ["firing", "firing"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_sees_firing_then_resolved_and_deduplicates_replicas() {
    let am = TestAlertmanager::start();
    let (_dir, config) = config(
        &format!(
            "    - {{name: am, kind: alertmanager, url: \"{}/\"}}",
            am.url()
        ),
        "",
    );
    // Two replicas of the gate judging the same data.
    let mut one = Alerting::start(
        &config.alerts,
        config.evaluation.interval,
        Metrics::new().alerts,
    );
    let mut two = Alerting::start(
        &config.alerts,
        config.evaluation.interval,
        Metrics::new().alerts,
    );
    // Evaluation times a little in the past, as they are when a request reaches Alertmanager.
    let now = chrono::Utc::now().timestamp() - 40;
    // Already failing at start-up: Alertmanager is told the state anyway, it deduplicates.
    one.observe(&snapshot(&config, now, 2.5), tokio::time::Instant::now());
    two.observe(
        &snapshot(&config, now + 1, 2.5),
        tokio::time::Instant::now(),
    );
    let alerts = am.wait_until(WAIT, |a| a.len() == 2).await;
    let mut names: Vec<&str> = alerts
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["UpgradeGatePhaseNoGo", "UpgradeGateSignalFailing"]);
    let phase = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "UpgradeGatePhaseNoGo")
        .unwrap();
    assert_eq!(phase["labels"]["phase"], "istio");
    assert_eq!(phase["labels"]["severity"], "critical");
    assert_eq!(phase["status"]["state"], "active");
    assert_eq!(phase["generatorURL"], "http://gate.example:8080/gate/istio");
    assert_eq!(
        phase["annotations"]["summary"],
        "phase istio is NO-GO (score 50)"
    );
    let signal = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "UpgradeGateSignalFailing")
        .unwrap();
    assert_eq!(signal["labels"]["signal"], "mesh_5xx");
    assert_eq!(signal["labels"]["phase"], "istio");
    assert_eq!(
        signal["annotations"]["runbook"],
        "relabel the namespaces to the old revision"
    );
    let ends: chrono::DateTime<chrono::Utc> = phase["endsAt"].as_str().unwrap().parse().unwrap();
    assert!(
        ends.timestamp() > now + 60,
        "firing alerts outlive a few evaluations: {ends}"
    );

    // Recovery: both replicas resolve, and the alerts leave Alertmanager's active list.
    one.observe(
        &snapshot(&config, now + 30, 0.1),
        tokio::time::Instant::now(),
    );
    two.observe(
        &snapshot(&config, now + 31, 0.1),
        tokio::time::Instant::now(),
    );
    // (now + 31 is still in the past: a resolved alert ends before it is read.)
    am.wait_until(WAIT, |a| a.is_empty()).await;
    one.close().await;
    two.close().await;
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_the_latest_state_once() {
    // 503 three times, then 429 asking for a 1 s pause, then healthy.
    let hook = Receiver::start(vec![
        Reply::Status(503),
        Reply::Status(503),
        Reply::Status(503),
        Reply::StatusWithHeader(429, "Retry-After", "1".into()),
    ])
    .await;
    let (_dir, config) = config(&webhook_at(&hook.url()), "");
    // The incident starts, ends and starts again while the receiver refuses: when it answers,
    // it is told the current state (both alerts firing) once, not the history.
    let metrics = run_alerts(&config, &[0.1, 2.5, 0.1, 2.5]).await;
    let all = hook.received();
    assert_eq!(all.len(), 6, "four refusals, then two alerts: {all:#?}");
    // The refused attempts were all the first alert, retried.
    let first_key = all[0].header("Idempotency-Key").unwrap().to_string();
    assert!(all[..5]
        .iter()
        .all(|r| r.header("Idempotency-Key").unwrap() == first_key));
    // Retry-After: 1 was honoured.
    assert!(
        all[4].at - all[3].at >= Duration::from_millis(950),
        "{:?}",
        all[4].at - all[3].at
    );
    let delivered: Vec<(String, String)> = all[4..]
        .iter()
        .map(|r| {
            let b = r.json();
            (
                b["alertname"].as_str().unwrap().to_string(),
                b["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("UpgradeGatePhaseNoGo", "firing"),
        ("UpgradeGateSignalFailing", "firing"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, s)| (a.to_string(), s.to_string()))
        .collect();
    assert_eq!(delivered, expected, "the latest state, none twice");
    let text = metrics.encode();
    assert!(
        text.contains("upgrade_gate_alerts_total{receiver=\"pipeline\",outcome=\"retried\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("upgrade_gate_alerts_total{receiver=\"pipeline\",outcome=\"sent\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn an_incident_that_ends_while_the_receiver_refuses_is_not_sent_late() {
    let hook = Receiver::start(vec![Reply::Status(503)]).await;
    let (_dir, config) = config(&webhook_at(&hook.url()), "");
    // The firing notice is refused once; by its retry the incident has ended. The receiver never
    // heard of it, so it gets neither the stale firing nor a resolution.
    let metrics = run_alerts(&config, &[0.1, 2.5, 0.1]).await;
    let all = hook.received();
    assert_eq!(all.len(), 1, "only the refused attempt: {all:#?}");
    let text = metrics.encode();
    assert!(
        text.contains("upgrade_gate_alerts_total{receiver=\"pipeline\",outcome=\"sent\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn retry_after_zero_still_waits_a_second_between_attempts() {
    let throttled = || Reply::StatusWithHeader(429, "Retry-After", "0".into());
    let hook = Receiver::start(vec![throttled(), throttled(), throttled()]).await;
    let (_dir, config) = config(&webhook_at(&hook.url()), "");
    let metrics = run_alerts(&config, &[2.5]).await;
    let all = hook.received();
    assert_eq!(all.len(), 5, "three refusals, then two alerts: {all:#?}");
    for pair in all[..4].windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_secs(1), "attempts {gap:?} apart");
    }
    let text = metrics.encode();
    assert!(
        text.contains("upgrade_gate_alerts_total{receiver=\"pipeline\",outcome=\"retried\"} 3"),
        "{text}"
    );
}

#[tokio::test]
async fn a_notice_undelivered_after_give_up_after_expires() {
    let hook = Receiver::start(vec![Reply::Status(503); 1000]).await;
    let (_dir, config) = config(&webhook_at(&hook.url()), "  give_up_after: 2s");
    let started = Instant::now();
    // Two notices: the first is retried for 2 s, the second is past its evaluation's deadline
    // by then and gets its one attempt.
    let metrics = run_alerts(&config, &[2.5]).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let all = hook.received();
    let last = all.last().unwrap().at;
    assert!(
        last - started < Duration::from_secs(3),
        "no attempt after the give-up"
    );
    assert_eq!(
        all.last().unwrap().json()["alertname"],
        "UpgradeGateSignalFailing"
    );
    let text = metrics.encode();
    assert!(
        text.contains("upgrade_gate_alerts_total{receiver=\"pipeline\",outcome=\"expired\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("upgrade_gate_alerts_total{receiver=\"pipeline\",outcome=\"sent\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_refused_alert_is_given_up_and_the_next_one_still_goes() {
    let hook = Receiver::start(vec![Reply::Status(400)]).await;
    let (_dir, config) = config(&webhook_at(&hook.url()), "");
    let metrics = run_alerts(&config, &[0.1, 2.5]).await;
    let received = hook.received();
    assert_eq!(received.len(), 2, "no retry after a 400");
    assert_eq!(received[0].json()["alertname"], "UpgradeGatePhaseNoGo");
    assert_eq!(received[1].json()["alertname"], "UpgradeGateSignalFailing");
    let text = metrics.encode();
    assert!(
        text.contains("upgrade_gate_alerts_total{receiver=\"pipeline\",outcome=\"failed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("upgrade_gate_alerts_total{receiver=\"pipeline\",outcome=\"sent\"} 1"),
        "{text}"
    );
}

/// Data that is healthy until `flip` (unix seconds) and failing after, sampled every second.
fn flipping_data(flip: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    mesh_5xx_switching(flip, 0.1, 2.5)
        .gauge("xds_rejects", "", (now - 600, now + 600, 1), |_| Some(0.0))
        .render()
}

fn serve_config(
    dir: &std::path::Path,
    prometheus: &str,
    listen: &str,
    receivers: &str,
) -> std::path::PathBuf {
    let path = dir.join("gate.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
prometheus: {{url: "{prometheus}", timeout: 2s}}
evaluation: {{interval: 1s}}
server: {{listen: "{listen}"}}
phases: [{{name: istio}}]
signals:
  - {{name: mesh_5xx, query: mesh_5xx, fail: "> 1", critical: true}}
  - {{name: xds_rejects, query: xds_rejects, fail: "> 0"}}
alerts:
  timeout: 30s
  retry_initial_backoff: 100ms
  retry_max_backoff: 200ms
  receivers:
{receivers}
"#
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_slows_neither_evaluation_nor_the_gate() {
    let flip = chrono::Utc::now().timestamp() + 3;
    let prom = TestPrometheus::start(&flipping_data(flip));
    let hook = Receiver::start(vec![Reply::Hang, Reply::Hang, Reply::Hang]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = serve_config(
        dir.path(),
        prom.url(),
        "127.0.0.1:0",
        &format!(
            "    - {{name: stuck, kind: webhook, url: \"{}\"}}",
            hook.url()
        ),
    );
    let config = config::load(Some(&path)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(upgrade_gate::server::serve(config, listener, async {
        let _ = stopped.await;
    }));
    // The first alert reaches the receiver, which never answers.
    hook.wait_for(1, WAIT).await;
    // One client for every request, so that timings measure the gate, not client set-up.
    let client = reqwest::Client::new();
    let last_evaluation = || async {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("upgrade_gate_last_evaluation_timestamp_seconds "))
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    let before = last_evaluation().await;
    for _ in 0..10 {
        let started = Instant::now();
        let r = client
            .get(format!("{base}/gate/istio"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503, "no-go since the flip");
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }
    let deadline = Instant::now() + WAIT;
    while last_evaluation().await < before + 2.0 {
        assert!(
            Instant::now() < deadline,
            "evaluation stalled behind the hanging receiver"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    // Shutdown waits for delivery only up to its deadline, then gives up on the hung receiver.
    let result = tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("stops")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn secrets_never_reach_logs_or_answers() {
    let flip = chrono::Utc::now().timestamp() + 3;
    let prom = TestPrometheus::start(&flipping_data(flip));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // One receiver refuses (404) what it gets, the other is not there at all.
    let hook = runtime.block_on(Receiver::start(vec![Reply::Status(404)]));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slack-url"),
        format!("{}/services/TOPSECRET123\n", hook.url()),
    )
    .unwrap();
    std::fs::write(dir.path().join("hmac"), "HMACSECRET456").unwrap();
    let port = free_port();
    let path = serve_config(
        dir.path(),
        prom.url(),
        &format!("127.0.0.1:{port}"),
        &format!(
            "    - {{name: ops-slack, kind: slack, url_file: \"{}\"}}\n    - {{name: pipeline, kind: webhook, url: \"http://{closed}/hook/${{UG_TEST_TOKEN}}\", hmac_secret_file: \"{}\"}}",
            dir.path().join("slack-url").display(),
            dir.path().join("hmac").display()
        ),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_upgrade-gate"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&path)
        .env("UG_TEST_TOKEN", "ENVSECRET789")
        .env("RUST_LOG", "debug")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let answers = runtime.block_on(async {
        hook.wait_for(1, WAIT).await;
        // Wait until the unreachable receiver has been retried, so its errors are in the logs.
        let deadline = Instant::now() + WAIT;
        loop {
            let metrics = reqwest::get(format!("{base}/metrics"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if metrics
                .contains("upgrade_gate_alerts_total{receiver=\"pipeline\",outcome=\"retried\"} 2")
            {
                break;
            }
            assert!(Instant::now() < deadline, "{metrics}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut answers = String::new();
        for path in ["/gate/istio", "/gate", "/signals", "/metrics"] {
            answers.push_str(
                &reqwest::get(format!("{base}{path}"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
            );
        }
        answers
    });
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    assert!(
        logs.contains("alert rejected by the receiver"),
        "the 404 is logged: {logs}"
    );
    assert!(
        logs.contains("alert delivery failed; will retry"),
        "the connection error is logged: {logs}"
    );
    for secret in ["TOPSECRET123", "HMACSECRET456", "ENVSECRET789"] {
        assert!(!logs.contains(secret), "{secret} in logs:\n{logs}");
        assert!(!answers.contains(secret), "{secret} in answers");
    }
}
