//! `simulate` end to end: each scenario's data backfilled into a real Prometheus and judged by the
//! default pack, and the live exporter scraped by a real Prometheus.

mod common;

use std::time::{Duration, Instant};

use common::data::now;
use common::process::ServerProcess;
use common::prometheus::{urlencode, TestPrometheus};
use serde_json::Value;
use upgrade_gate::engine::baseline::Anchor;
use upgrade_gate::engine::decide::Decision;
use upgrade_gate::engine::evaluate::Status;
use upgrade_gate::engine::snapshot::Snapshot;
use upgrade_gate::evaluation;
use upgrade_gate::prometheus::source::PrometheusSource;
use upgrade_gate::simulate::scenarios::{openmetrics_window, Scenario, Window};

/// The scenarios' window in these tests: an hour, with an hour of history before it.
const WINDOW_SECS: i64 = 3600;

/// A Prometheus holding `scenario` over a one-hour window placed so that `fraction` of it is now,
/// from an hour before the window to its end; and that window.
fn backfilled(scenario: Scenario, fraction: f64) -> (TestPrometheus, Window) {
    let at = now();
    let start = at - (fraction * WINDOW_SECS as f64) as i64;
    let window = Window::new(start, start + WINDOW_SECS);
    let text = openmetrics_window(scenario, window, start - 3600, window.end, 30);
    (TestPrometheus::start(&text), window)
}

/// The default pack judged at `at` against `prom`.
async fn judge(prom: &TestPrometheus, at: i64) -> Snapshot {
    let mut config = upgrade_gate::config::load(None).unwrap_or_else(|e| panic!("{e}"));
    config.prometheus.url = prom.url().to_string();
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    evaluation::evaluate(&config, &source, at).await
}

/// The default pack judged at `at` with every baseline pinned at `end`, as a pipeline does with
/// `UPGRADE_GATE__BASELINE__END` when the upgrade starts.
async fn judge_pinned(prom: &TestPrometheus, at: i64, end: i64) -> Snapshot {
    let mut config = upgrade_gate::config::load(None).unwrap_or_else(|e| panic!("{e}"));
    config.prometheus.url = prom.url().to_string();
    for s in &mut config.pack.signals {
        s.baseline.anchor = Anchor::Fixed(end);
    }
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    evaluation::evaluate(&config, &source, at).await
}

/// Asserts that exactly the phases in `no_go` (and `all` when any) are no-go, with reasons.
fn assert_no_go_only(s: &Snapshot, no_go: &[&str]) {
    for v in &s.phases {
        let expected = if no_go.contains(&v.phase.as_str()) {
            Decision::NoGo
        } else {
            Decision::Go
        };
        assert_eq!(
            v.decision, expected,
            "{}: score {}, {:#?}",
            v.phase, v.score, v.reasons
        );
    }
}

fn signal<'a>(s: &'a Snapshot, name: &str) -> &'a upgrade_gate::engine::decide::SignalReport {
    s.signals.iter().find(|r| r.name == name).unwrap()
}

/// Every signal but those named is healthy: ok, or no series where that is allowed.
fn assert_others_healthy(s: &Snapshot, except: &[&str]) {
    let bad: Vec<_> = s
        .signals
        .iter()
        .filter(|r| !except.contains(&r.name.as_str()))
        .filter(|r| !matches!(r.status, Status::Ok | Status::NoData))
        .map(|r| (&r.name, r.status, r.value))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
}

#[tokio::test]
async fn karpenter_launch_failures_stop_the_karpenter_and_nodes_phases() {
    let (prom, window) = backfilled(Scenario::KarpenterLaunchFailures, 0.5);
    let s = judge(&prom, window.at(0.5)).await;
    let r = signal(&s, "karpenter_nodeclaim_launch_failures");
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert_eq!(r.offenders[0].labels["reason"], "liveness");
    assert_eq!(r.offenders[0].labels["nodepool"], "general-purpose");
    assert!(r.value.unwrap() > 2.0, "{:?}", r.value);
    // The signal is in the karpenter and nodes phases, and in `all`.
    assert_no_go_only(&s, &["karpenter", "nodes", "all"]);
    let v = s.verdict("karpenter").unwrap();
    assert!(
        v.reasons[0].starts_with("critical signal \"karpenter_nodeclaim_launch_failures\" is fail"),
        "{:?}",
        v.reasons
    );
    assert_others_healthy(&s, &["karpenter_nodeclaim_launch_failures"]);
}

#[tokio::test]
async fn apiserver_latency_stops_the_control_plane() {
    let (prom, window) = backfilled(Scenario::ApiserverLatency, 0.5);
    let s = judge(&prom, window.at(0.5)).await;
    let r = signal(&s, "apiserver_p99_latency_by_verb");
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert_eq!(r.offenders.len(), 1, "{:?}", r.offenders);
    assert_eq!(r.offenders[0].labels["verb"], "POST");
    assert!(r.value.unwrap() > 2.0, "{:?}", r.value);
    // The latency signal is judged in precheck and control-plane.
    assert_no_go_only(&s, &["precheck", "control-plane", "all"]);
    assert_others_healthy(&s, &["apiserver_p99_latency_by_verb"]);
}

#[tokio::test]
async fn apiserver_latency_is_pending_before_its_for_has_passed() {
    // Five minutes into the trouble: breached, but not yet for the signal's 10m.
    let (prom, window) = backfilled(Scenario::ApiserverLatency, 0.1 + 300.0 / 3600.0);
    let s = judge(&prom, window.at(0.1) + 300).await;
    assert_eq!(
        signal(&s, "apiserver_p99_latency_by_verb").status,
        Status::Warn
    );
    assert_eq!(
        s.verdict("control-plane").unwrap().decision,
        Decision::Go,
        "{:?}",
        s.verdict("control-plane").unwrap().reasons
    );
}

#[tokio::test]
async fn against_the_hour_before_the_window_a_healthy_cluster_stays_go() {
    let (prom, window) = backfilled(Scenario::Healthy, 0.5);
    let s = judge_pinned(&prom, window.at(0.5), window.start).await;
    assert_no_go_only(&s, &[]);
    assert_others_healthy(&s, &[]);
    // The relative signals found their baselines: the healthy cluster is at them.
    let list = signal(&s, "apiserver_list_p99_latency");
    let (value, baseline) = (list.value.unwrap(), list.baseline.unwrap());
    assert!((value / baseline - 1.0).abs() < 0.05, "{list:?}");
}

#[tokio::test]
async fn a_list_regression_is_caught_only_against_its_baseline() {
    let (prom, window) = backfilled(Scenario::ApiserverListRegression, 0.5);
    let at = window.at(0.5);
    // Against a day-old moving baseline there is no history: only the absolute ceilings apply,
    // and the 4x slower LIST is far below them.
    let s = judge(&prom, at).await;
    assert_no_go_only(&s, &[]);
    assert_others_healthy(&s, &[]);

    let s = judge_pinned(&prom, at, window.start).await;
    let r = signal(&s, "apiserver_list_p99_latency");
    assert_eq!(r.status, Status::Fail, "{r:?}");
    assert_eq!(r.offending_series, 1, "{:?}", r.offenders);
    assert_eq!(r.offenders[0].labels["scope"], "cluster");
    let (value, baseline) = (r.value.unwrap(), r.baseline.unwrap());
    assert!(
        value < 5.0 && value / baseline > 3.0,
        "{value} vs {baseline}"
    );
    let v = s.verdict("control-plane").unwrap();
    assert_eq!(v.decision, Decision::NoGo);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("apiserver_list_p99_latency")
                && r.contains("x its baseline")
                && r.contains("breaches fail > baseline * 3 for 10m")),
        "{:?}",
        v.reasons
    );
    // Every signal counts in `all`, where this one alone leaves the score above 90.
    assert_no_go_only(&s, &["precheck", "control-plane"]);
    assert_others_healthy(&s, &["apiserver_list_p99_latency"]);
}

#[tokio::test]
async fn the_trouble_scenarios_still_break_against_a_pinned_baseline() {
    let (prom, window) = backfilled(Scenario::Istio5xxSpike, 0.5);
    let s = judge_pinned(&prom, window.at(0.5), window.start).await;
    assert_eq!(signal(&s, "istio_5xx_ratio").status, Status::Fail);
    assert_others_healthy(&s, &["istio_5xx_ratio"]);
    let (prom, window) = backfilled(Scenario::ApiserverLatency, 0.5);
    let s = judge_pinned(&prom, window.at(0.5), window.start).await;
    let r = signal(&s, "apiserver_p99_latency_by_verb");
    assert_eq!(r.status, Status::Fail);
    assert_eq!(r.offenders[0].labels["verb"], "POST");
    assert!(r.offenders[0].baseline.unwrap() < 0.5, "{r:?}");
    assert_others_healthy(&s, &["apiserver_p99_latency_by_verb"]);
}

#[tokio::test]
async fn the_al2023_migration_holds_the_nodes_phase_until_the_last_node_moved() {
    // One Prometheus, judged at the window's start, while nodes move, and at its end.
    let (prom, window) = backfilled(Scenario::Al2023Migration, 1.0);

    for fraction in [0.0, 0.3] {
        let s = judge(&prom, window.at(fraction)).await;
        let r = signal(&s, "nodes_not_on_target");
        assert_eq!(r.status, Status::Warn, "at {fraction}: {r:?}");
        assert_eq!(r.offenders[0].labels["os_image"], "Amazon Linux 2");
        assert!(r.offenders[0].labels["kubelet_version"].starts_with("v1.32."));
        // The number of old nodes keeps going down: not stalled.
        let stalled = signal(&s, "nodes_migration_stalled");
        assert_ne!(stalled.status, Status::Fail, "at {fraction}: {stalled:?}");
        let v = s.verdict("nodes").unwrap();
        assert_eq!(v.decision, Decision::NoGo, "at {fraction}");
        assert!(
            v.reasons.iter().any(|r| r.contains("below min_score")),
            "{:?}",
            v.reasons
        );
        // Karpenter drift replaces the nodes: expected here, it only warns in the karpenter phase.
        assert_eq!(
            signal(&s, "karpenter_unexpected_drift").status,
            Status::Warn
        );
        for phase in ["precheck", "karpenter", "istio", "addons", "control-plane"] {
            let v = s.verdict(phase).unwrap();
            assert_eq!(v.decision, Decision::Go, "{phase}: {:?}", v.reasons);
        }
        assert_others_healthy(&s, &["nodes_not_on_target", "karpenter_unexpected_drift"]);
    }

    let s = judge(&prom, window.end).await;
    assert_eq!(signal(&s, "nodes_not_on_target").status, Status::Ok);
    assert_eq!(signal(&s, "nodes_not_on_target").value, Some(0.0));
    assert_no_go_only(&s, &[]);
    assert_others_healthy(&s, &[]);
}

/// The `result` of an instant query, polled until `done` accepts it (deadline 30 s).
fn poll_query(prom: &ServerProcess, promql: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = prom.get(&format!("/api/v1/query?query={}", urlencode(promql)));
        let answer: Value = serde_json::from_str(&body).unwrap();
        let result = answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if done(&result) {
            return result;
        }
        assert!(
            Instant::now() < deadline,
            "{promql} never gave the expected answer; last: {body}\n{}",
            prom.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn prometheus_scrapes_the_live_simulator() {
    // The exporter on its own runtime thread; the test thread makes blocking calls.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let exporter = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let start = now();
            let window = Window::new(start, start + 1200);
            upgrade_gate::simulate::exporter::serve(
                Scenario::Istio5xxSpike,
                window,
                listener,
                async {
                    let _ = stopped.await;
                },
            )
            .await
        })
    });

    let prom = TestPrometheus::scraping(addr);
    // A pack metric with the labels the pack groups by.
    let reviews = r#"istio_requests_total{reporter="destination",destination_service="reviews.bookinfo.svc.cluster.local",response_code="200"}"#;
    let series = poll_query(&prom, reviews, |r| !r.is_empty());
    assert_eq!(series.len(), 1, "{series:?}");
    let labels = &series[0]["metric"];
    assert_eq!(labels["destination_workload"], "reviews-v2");
    assert_eq!(labels["source_workload"], "productpage-v1");
    assert_eq!(
        labels["job"], "scraped",
        "the scrape job labels series without their own"
    );
    // Istio's counters without `_total` are stored under their own names.
    let pushes = poll_query(&prom, r#"pilot_xds_pushes{type="cds"}"#, |r| r.len() == 2);
    assert!(pushes
        .iter()
        .all(|s| s["metric"]["pod"].as_str().unwrap().starts_with("istiod-")));
    // honor_labels keeps the series' own job and instance (the apiserver version signal joins on them).
    poll_query(
        &prom,
        r#"kubernetes_build_info{job="apiserver",instance="10.0.101.12:443"}"#,
        |r| r.len() == 1,
    );
    // The counter went up between scrapes, never down.
    let samples = poll_query(&prom, &format!("{reviews}[1m]"), |r| {
        let values = r[0]["values"].as_array().unwrap();
        values.len() >= 3
    });
    let values: Vec<f64> = samples[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[1].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    assert!(values.last() > values.first(), "{values:?}");

    stop.send(()).unwrap();
    exporter
        .join()
        .unwrap()
        .expect("the simulator stops cleanly");
}

/// The fleet label's values among the series of an instant query's `result`, sorted.
fn clusters_of(result: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = result
        .iter()
        .filter_map(|s| s["metric"]["cluster"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn one_simulator_serves_a_fleet_with_an_incident_in_one_cluster() {
    let at = now();
    let window = Window::new(at - 3600, at + 3600);
    let simulator = common::fleet::simulator(
        &["--clusters", "3", "--incident", "c2=istio-5xx-spike"],
        window,
    );
    let prom = TestPrometheus::scraping(simulator.addr());
    // Each cluster's own `up`, beside the scrape's (which has no cluster).
    let up = poll_query(&prom, "count by (cluster) (up{cluster!=\"\"})", |r| {
        r.len() == 3
    });
    assert_eq!(clusters_of(&up), ["c1", "c2", "c3"]);
    // Every cluster has the pack's series; only c2 answers 5xx.
    let requests = poll_query(
        &prom,
        "count by (cluster) (istio_requests_total{reporter=\"destination\"})",
        |r| r.len() == 3,
    );
    let count = |c: &str| {
        requests
            .iter()
            .find(|s| s["metric"]["cluster"] == c)
            .map(|s| s["value"][1].as_str().unwrap().parse::<f64>().unwrap())
    };
    // The two healthy clusters alike; c2 has its 503 series besides.
    assert_eq!(count("c1"), count("c3"));
    assert!(
        count("c1").is_some() && count("c2") > count("c1"),
        "{requests:?}"
    );
    let spiking = poll_query(
        &prom,
        "sum by (cluster) (rate(istio_requests_total{response_code=~\"5..\"}[10s])) > 0.5",
        |r| !r.is_empty(),
    );
    assert_eq!(clusters_of(&spiking), ["c2"]);
}

#[test]
fn a_fleet_backfill_holds_every_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.om");
    let file = file.to_str().unwrap();
    let (code, _, stderr) = common::process::gate_cli(&[
        "simulate",
        "--clusters",
        "2",
        "--fleet-label",
        "k8s_cluster",
        "--incident",
        "c1=apiserver-latency",
        "--openmetrics",
        file,
        "--from",
        "now-20m",
        "--to",
        "now",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let prom = TestPrometheus::start(&std::fs::read_to_string(file).unwrap());
    let body = prom.query("count by (k8s_cluster) (up)", now() as f64);
    let answer: Value = serde_json::from_str(&body).unwrap();
    let mut names: Vec<&str> = answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["k8s_cluster"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["c1", "c2"], "{body}");
}

#[test]
fn a_bad_fleet_option_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.om");
    let run = |extra: &[&str]| {
        let mut args = vec!["simulate"];
        args.extend_from_slice(extra);
        let out = file.to_str().unwrap();
        args.extend_from_slice(&["--openmetrics", out, "--from", "now-5m", "--to", "now"]);
        common::process::gate_cli(&args)
    };
    for (args, says) in [
        (
            &["--clusters", "3", "--incident", "c4=istio-5xx-spike"][..],
            "there is no cluster \"c4\"; the clusters are c1, c2, c3",
        ),
        (
            &["--clusters", "3", "--incident", "c2=istio-5xx"][..],
            "unknown scenario \"istio-5xx\"; the scenarios are healthy, istio-5xx-spike",
        ),
        (
            &["--clusters", "3", "--incident", "c2"][..],
            "\"c2\" is not CLUSTER=SCENARIO",
        ),
        (
            &[
                "--clusters",
                "2",
                "--incident",
                "c1=healthy",
                "--incident",
                "c1=apiserver-latency",
            ][..],
            "c1 already plays healthy",
        ),
        (
            &["--clusters", "2", "--fleet-label", "k8s-cluster"][..],
            "--fleet-label \"k8s-cluster\" is not a label name",
        ),
        (
            &["--clusters", "0"][..],
            "invalid value '0' for '--clusters",
        ),
        (
            &["--scenario", "healthy", "--incident", "c1=healthy"][..],
            "--clusters",
        ),
    ] {
        let (code, _, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(!file.exists(), "nothing written");
}
