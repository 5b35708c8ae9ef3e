//! The engine end to end against a real Prometheus: data backfilled by promtool, queried over
//! HTTP, judged, scored and decided.

mod common;

use std::time::Duration;

use common::data::{around, now, OpenMetrics};
use common::gate::free_port;
use common::prometheus::{hanging_server, TestPrometheus};
use common::proxy::proxy;
use upgrade_gate::config::{self, Config};
use upgrade_gate::engine::decide::{Decision, Verdict};
use upgrade_gate::engine::evaluate::Status;
use upgrade_gate::engine::snapshot::Snapshot;
use upgrade_gate::evaluation;
use upgrade_gate::prometheus::source::PrometheusSource;

/// Writes `body` (phases and signals) under a `prometheus` section for `url` and loads it.
fn config(url: &str, body: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    let text = format!(
        "prometheus: {{url: \"{url}\", timeout: 2s}}\nevaluation: {{interval: 30s, concurrency: 4}}\n{body}"
    );
    std::fs::write(&path, text).unwrap();
    let config = config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    (dir, config)
}

async fn evaluate(url: &str, body: &str, at: i64) -> Snapshot {
    let (_dir, config) = config(url, body);
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    evaluation::evaluate(&config, &source, at).await
}

fn verdict<'a>(s: &'a Snapshot, phase: &str) -> &'a Verdict {
    s.verdict(phase).unwrap()
}

fn status(s: &Snapshot, signal: &str) -> Status {
    s.signals.iter().find(|r| r.name == signal).unwrap().status
}

/// A Prometheus holding a steady `mesh_5xx` per service around `t`.
fn steady_mesh_5xx(t: i64, services: &[(&str, f64)]) -> TestPrometheus {
    let mut data = OpenMetrics::new();
    for &(service, value) in services {
        let labels = format!("destination_service=\"{service}\"");
        data.gauge("mesh_5xx", &labels, around(t), move |_| Some(value));
    }
    TestPrometheus::start(&data.render())
}

#[tokio::test]
async fn healthy_data_is_go() {
    let t = now();
    let prom = steady_mesh_5xx(t, &[("a", 0.1), ("b", 0.2)]);
    let s = evaluate(
        prom.url(),
        r#"
phases: [{name: istio, min_score: 90, stable_for: 10m}]
signals:
  - {name: mesh_5xx, query: mesh_5xx, warn: "> 0.5", fail: "> 1", for: 2m, critical: true}
"#,
        t,
    )
    .await;
    let v = verdict(&s, "istio");
    assert_eq!(v.decision, Decision::Go, "{:?} {:?}", v.reasons, v.signals);
    assert_eq!(v.score, 100.0);
    assert!(v.reasons.is_empty());
    assert_eq!(
        v.signals[0].value,
        Some(0.2),
        "the worst series is the value"
    );
    assert!(v.stable_since.unwrap().timestamp() <= t - 600);
    assert_eq!(verdict(&s, "all").decision, Decision::Go);
}

#[tokio::test]
async fn sustained_breach_is_no_go_naming_signal_and_series() {
    let t = now();
    let prom = TestPrometheus::start(
        &OpenMetrics::new()
            .gauge(
                "mesh_5xx",
                r#"destination_service="reviews""#,
                around(t),
                |ts| Some(if ts >= t - 600 { 1.7 } else { 0.1 }),
            )
            .gauge(
                "mesh_5xx",
                r#"destination_service="ratings""#,
                around(t),
                |_| Some(0.1),
            )
            .render(),
    );
    let s = evaluate(
        prom.url(),
        r#"
phases: [{name: istio, min_score: 0}]
signals:
  - {name: mesh_5xx, query: mesh_5xx, warn: "> 0.5", fail: "> 1", for: 5m, critical: true}
"#,
        t,
    )
    .await;
    let v = verdict(&s, "istio");
    assert_eq!(v.decision, Decision::NoGo);
    assert_eq!(v.signals[0].status, Status::Fail);
    assert_eq!(v.signals[0].offenders.len(), 1);
    assert_eq!(
        v.signals[0].offenders[0].labels["destination_service"],
        "reviews"
    );
    let reason = &v.reasons[0];
    assert!(
        reason.contains("critical signal \"mesh_5xx\" is fail"),
        "{reason}"
    );
    assert!(
        reason.contains("destination_service=\"reviews\""),
        "{reason}"
    );
    assert!(reason.contains("1.7 breaches fail > 1 for 5m"), "{reason}");
}

#[tokio::test]
async fn a_blip_shorter_than_for_is_not_fail() {
    let t = now();
    // Breached for two minutes, five minutes ago; `for: 5m` must not count it.
    let prom = TestPrometheus::start(
        &OpenMetrics::new()
            .gauge("errors", r#"job="x""#, around(t), |ts| {
                Some(if (t - 420..t - 300).contains(&ts) {
                    9.0
                } else {
                    0.0
                })
            })
            .render(),
    );
    let body = r#"
phases: [{name: p, min_score: 90}]
signals:
  - {name: errors, query: errors, fail: "> 1", for: 5m, critical: true}
"#;
    let s = evaluate(prom.url(), body, t).await;
    assert_eq!(status(&s, "errors"), Status::Ok);
    assert_eq!(verdict(&s, "p").decision, Decision::Go);
    // During the blip the signal is only pending (warn), never fail.
    let s = evaluate(prom.url(), body, t - 330).await;
    assert_eq!(status(&s, "errors"), Status::Warn);
}

#[tokio::test]
async fn stable_for_holds_the_gate_after_a_recovery() {
    let t = now();
    // Failing until four minutes ago, healthy since, and (data reaching into the future) after.
    let recovered = t - 240;
    let prom = TestPrometheus::start(
        &OpenMetrics::new()
            .gauge("errors", r#"job="x""#, around(t), |ts| {
                Some(if ts < recovered { 5.0 } else { 0.0 })
            })
            .render(),
    );
    let body = r#"
phases: [{name: p, min_score: 90, stable_for: 10m}]
signals:
  - {name: errors, query: errors, fail: "> 1", critical: true}
"#;
    let s = evaluate(prom.url(), body, t).await;
    let v = verdict(&s, "p");
    assert_eq!(v.decision, Decision::NoGo);
    assert_eq!(v.stable_since.unwrap().timestamp(), recovered);
    assert!(
        v.reasons[0].starts_with("healthy for 4m of the required stable_for 10m"),
        "{:?}",
        v.reasons
    );
    // Ten minutes after the recovery the same config is go, from a fresh evaluation.
    let s = evaluate(prom.url(), body, recovered + 600).await;
    let v = verdict(&s, "p");
    assert_eq!(v.decision, Decision::Go, "{:?}", v.reasons);
    assert_eq!(v.stable_since.unwrap().timestamp(), recovered);
}

#[tokio::test]
async fn score_is_exact_with_weights_and_warn() {
    let t = now();
    let prom = TestPrometheus::start(
        &OpenMetrics::new()
            .gauge("m", r#"s="ok""#, around(t), |_| Some(0.0))
            .gauge("m", r#"s="warn""#, around(t), |_| Some(0.7))
            .gauge("m", r#"s="fail""#, around(t), |_| Some(2.0))
            .render(),
    );
    // (3×1 + 2×0.5 + 1×0) / 6 = 66.67
    let s = evaluate(
        prom.url(),
        r#"
phases: [{name: p, min_score: 70}]
signals:
  - {name: a, query: 'm{s="ok"}', warn: "> 0.5", fail: "> 1", weight: 3}
  - {name: b, query: 'm{s="warn"}', warn: "> 0.5", fail: "> 1", weight: 2}
  - {name: c, query: 'm{s="fail"}', warn: "> 0.5", fail: "> 1"}
"#,
        t,
    )
    .await;
    let v = verdict(&s, "p");
    assert!((v.score - 400.0 / 6.0).abs() < 1e-9, "score {}", v.score);
    assert_eq!(v.decision, Decision::NoGo);
    assert_eq!(v.reasons[0], "score 66.6667 is below min_score 70");
    assert!(v
        .reasons
        .iter()
        .any(|r| r.starts_with("signal \"b\" is warn")));
    assert!(v
        .reasons
        .iter()
        .any(|r| r.starts_with("signal \"c\" is fail")));
    let order: Vec<_> = v.signals.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(order, ["c", "b", "a"], "worst first");
}

#[tokio::test]
async fn no_data_follows_each_policy() {
    let t = now();
    let prom = TestPrometheus::start(
        &OpenMetrics::new()
            .gauge("present", "", around(t), |_| Some(0.0))
            .gauge("nan", "", around(t), |_| Some(f64::NAN))
            .render(),
    );
    let s = evaluate(
        prom.url(),
        r#"
phases: [{name: p, min_score: 0}]
signals:
  - {name: present, query: present, fail: "> 1"}
  - {name: absent_ok, query: absent_metric, fail: "> 1", no_data: ok}
  - {name: absent_warn, query: absent_metric, fail: "> 1", no_data: warn}
  - {name: absent_fail, query: absent_metric, fail: "> 1"}
  - {name: nan_is_no_data, query: nan, fail: "> 1", no_data: ok}
"#,
        t,
    )
    .await;
    for name in ["absent_ok", "absent_warn", "absent_fail", "nan_is_no_data"] {
        assert_eq!(status(&s, name), Status::NoData, "{name}");
    }
    // (1 + 1 + 0.5 + 0 + 1) / 5
    let v = verdict(&s, "p");
    assert_eq!(v.score, 70.0);
    assert_eq!(
        v.decision,
        Decision::Go,
        "non-critical no_data only lowers the score"
    );

    let s = evaluate(
        prom.url(),
        r#"
phases: [{name: p, min_score: 0}]
signals:
  - {name: absent_fail, query: absent_metric, fail: "> 1", critical: true}
"#,
        t,
    )
    .await;
    let v = verdict(&s, "p");
    assert_eq!(v.decision, Decision::NoGo);
    assert_eq!(
        v.reasons[0],
        "critical signal \"absent_fail\" returned no data (no_data: fail)"
    );
}

#[tokio::test]
async fn lower_is_worse_and_offenders_worst_first() {
    let t = now();
    let mut data = OpenMetrics::new();
    for (svc, v) in [
        ("a", 0.999),
        ("b", 0.90),
        ("c", 0.97),
        ("d", 0.80),
        ("e", 0.985),
    ] {
        data.gauge(
            "success_ratio",
            &format!("svc=\"{svc}\""),
            around(t),
            move |_| Some(v),
        );
    }
    let prom = TestPrometheus::start(&data.render());
    let s = evaluate(
        prom.url(),
        r#"
phases: [{name: p}]
signals:
  - {name: success, query: success_ratio, warn: "< 0.99", fail: "< 0.95"}
"#,
        t,
    )
    .await;
    let r = &s.signals[0];
    assert_eq!(r.status, Status::Fail);
    assert_eq!(r.value, Some(0.80));
    let order: Vec<_> = r
        .offenders
        .iter()
        .map(|o| (o.labels["svc"].as_str(), o.status))
        .collect();
    assert_eq!(
        order,
        [
            ("d", Status::Fail),
            ("b", Status::Fail),
            ("c", Status::Warn),
            ("e", Status::Warn)
        ]
    );
}

#[tokio::test]
async fn unreachable_prometheus_is_never_go() {
    // A port that was free a moment ago: nothing listens there.
    let port = free_port();
    let s = evaluate(
        &format!("http://127.0.0.1:{port}"),
        r#"
phases: [{name: p, min_score: 0}]
signals:
  - {name: x, query: up, fail: "> 1", no_data: ok}
"#,
        now(),
    )
    .await;
    let v = verdict(&s, "p");
    assert_eq!(v.decision, Decision::Unknown);
    assert_eq!(v.signals[0].status, Status::Error);
    assert!(
        v.reasons[0].contains(&format!(
            "Prometheus at http://127.0.0.1:{port} is unreachable"
        )),
        "{:?}",
        v.reasons
    );
}

#[tokio::test]
async fn a_query_timeout_is_never_go_and_is_bounded() {
    let (url, server) = hanging_server().await;
    let started = std::time::Instant::now();
    let s = evaluate(
        &url,
        r#"
phases: [{name: p, min_score: 0}]
signals:
  - {name: x, query: up, fail: "> 1", no_data: ok}
  - {name: y, query: up, fail: "> 1", no_data: ok}
"#,
        now(),
    )
    .await;
    // Both queries time out at 2 s, concurrently: well under the 4 s of two in a row.
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
    let v = verdict(&s, "p");
    assert_eq!(v.decision, Decision::Unknown);
    assert!(
        v.reasons[0].contains("query timed out after 2s"),
        "{:?}",
        v.reasons
    );
    server.abort();
}

#[tokio::test]
async fn garbage_from_prometheus_is_an_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let body = "{\"status\":\"success\",\"data\":{not json";
            let _ = socket
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    let s = evaluate(
        &url,
        r#"
phases: [{name: p, min_score: 0}]
signals:
  - {name: x, query: up, fail: "> 1", no_data: ok}
"#,
        now(),
    )
    .await;
    assert_eq!(s.signals[0].status, Status::Error);
    let error = s.signals[0].error.as_deref().unwrap();
    assert!(
        error.starts_with("Prometheus answered something that is not a range-query result"),
        "{error}"
    );
    assert_eq!(verdict(&s, "p").decision, Decision::Unknown);
    server.abort();
}

#[tokio::test]
async fn a_rejected_query_is_an_error_with_prometheus_reason() {
    let t = now();
    let prom = TestPrometheus::start(
        &OpenMetrics::new()
            .gauge("m", "", around(t), |_| Some(1.0))
            .render(),
    );
    let (_dir, mut config) = config(
        prom.url(),
        "phases: [{name: p, min_score: 0}]\nsignals: [{name: x, query: m, fail: \"> 1\"}]\n",
    );
    // Validation keeps bad PromQL out of a pack; this one slips past it to show what Prometheus says.
    config.pack.signals[0].query = "sum(".into();
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    let s = evaluation::evaluate(&config, &source, t).await;
    let r = &s.signals[0];
    assert_eq!(r.status, Status::Error, "{r:?}");
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("Prometheus rejected the query: bad_data"),
        "{r:?}"
    );
    assert_eq!(verdict(&s, "p").decision, Decision::Unknown);
}

#[tokio::test]
async fn queries_in_flight_never_exceed_the_concurrency_bound() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // Counts connections and holds them: every query waits for its 1 s timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    let signals: String = (0..5)
        .map(|i| format!("  - {{name: s{i}, query: up, fail: \"> 1\"}}\n"))
        .collect();
    std::fs::write(
        &path,
        format!("prometheus: {{url: \"{url}\", timeout: 1s}}\nevaluation: {{concurrency: 2}}\nphases: [{{name: p}}]\nsignals:\n{signals}"),
    )
    .unwrap();
    let config = config::load(Some(&path)).unwrap();
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    let evaluation =
        tokio::spawn(async move { evaluation::evaluate(&config, &source, now()).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "two queries in flight, three waiting"
    );
    let s = evaluation.await.unwrap();
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        5,
        "every query ran in the end"
    );
    assert!(s.signals.iter().all(|r| r.status == Status::Error));
    server.abort();
}

#[tokio::test]
async fn a_query_above_max_series_is_an_error_that_says_to_aggregate() {
    let t = now();
    let mut data = OpenMetrics::new();
    for pod in ["a", "b", "c"] {
        data.gauge("restarts", &format!("pod=\"{pod}\""), around(t), |_| {
            Some(0.0)
        });
    }
    let prom = TestPrometheus::start(&data.render());
    let (_dir, config) = config(
        prom.url(),
        r#"
phases: [{name: p, min_score: 0}]
signals:
  - {name: wide, query: restarts, fail: "> 1", max_series: 2}
  - {name: fits, query: restarts, fail: "> 1", max_series: 3}
"#,
    );
    assert_eq!(config.evaluation.max_series, 10_000, "the default");
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    let whole = evaluation::evaluate(&config, &source, t).await;
    // serve's evaluator counts the series of the whole window too, and fails closed the same way.
    let incremental = evaluation::Incremental::default()
        .evaluate(&config, &source, t)
        .await;
    for s in [&whole, &incremental] {
        let wide = s.signals.iter().find(|r| r.name == "wide").unwrap();
        assert_eq!(wide.status, Status::Error);
        assert_eq!(
            wide.error.as_deref(),
            Some("query returned 3 series, more than max_series 2: aggregate it, e.g. `sum by (...)`")
        );
        assert_eq!(status(s, "fits"), Status::Ok);
        assert_eq!(verdict(s, "p").decision, Decision::Unknown, "fails closed");
    }
}

/// Thanos and Mimir answer a query some of whose stores they could not reach with the series of
/// the others and `warnings`: judged as whole, the missing stores' series would pass unseen. The
/// signal is an error and, nothing known blocking, the phase is unknown (never go), in `check`'s
/// whole fetch and in `serve`'s incremental one alike; once the answers are whole again, go.
/// `infos` (query hints from Prometheus 2.50 on) say nothing about completeness and are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_answer_with_warnings_is_an_error_and_the_phase_unknown() {
    let t = now();
    let prom = steady_mesh_5xx(t, &[("a", 0.1)]);
    let (url, proxy) = proxy(prom.url(), &[]).await;
    let (_dir, config) = config(
        &url,
        r#"
phases: [{name: p, min_score: 0}]
signals:
  - {name: x, query: mesh_5xx, fail: "> 1", critical: true}
"#,
    );
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    let mut incremental = evaluation::Incremental::default();
    let set = |keys: serde_json::Value| {
        *proxy.inject.lock().unwrap() = keys.as_object().unwrap().clone();
    };
    set(serde_json::json!({
        "warnings": ["No StoreAPIs matched for this query: store eu-2 unreachable"],
        "infos": ["PromQL info: metric might not be a counter"],
    }));
    let whole = evaluation::evaluate(&config, &source, t).await;
    let served = incremental.evaluate(&config, &source, t).await;
    for s in [&whole, &served] {
        let r = &s.signals[0];
        assert_eq!(r.status, Status::Error, "{r:?}");
        assert_eq!(
            r.error.as_deref(),
            Some("Prometheus answered with warnings (a partial response): No StoreAPIs matched for this query: store eu-2 unreachable")
        );
        assert_eq!(r.value, None, "the partial series are not judged");
        let v = verdict(s, "p");
        assert_eq!(v.decision, Decision::Unknown, "{:?}", v.reasons);
        assert!(
            v.reasons[0].contains("a partial response"),
            "{:?}",
            v.reasons
        );
    }
    // `validate --online` does not list metrics as absent from a partial list of names.
    let names = source.metric_names_seen(t - 3600, t).await;
    assert!(
        names
            .as_ref()
            .is_err_and(|e| e.to_string().contains("a partial response")),
        "{names:?}"
    );
    // Only `infos`, or an empty `warnings`: a whole answer.
    for keys in [
        serde_json::json!({"infos": ["PromQL info: metric might not be a counter"]}),
        serde_json::json!({"warnings": [], "infos": []}),
    ] {
        set(keys.clone());
        let whole = evaluation::evaluate(&config, &source, t).await;
        let served = incremental.evaluate(&config, &source, t).await;
        for s in [&whole, &served] {
            assert_eq!(status(s, "x"), Status::Ok, "{keys}: {:?}", s.signals[0]);
            assert_eq!(verdict(s, "p").decision, Decision::Go, "{keys}");
        }
        let names = source.metric_names_seen(t - 3600, t).await.unwrap();
        assert!(names.contains("mesh_5xx"), "{keys}: {names:?}");
    }
}
