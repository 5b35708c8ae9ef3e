//! Fleet evaluations against a real Prometheus holding several clusters' series: each cluster
//! judged alone, a silent cluster never go, unlisted clusters ignored and counted, and answers
//! too large for one query asked again for halves of the cluster list.

mod common;

use common::counting;
use common::data::{around, now, OpenMetrics};
use common::prometheus::TestPrometheus;
use upgrade_gate::config::{self, Config};
use upgrade_gate::engine::decide::Decision;
use upgrade_gate::engine::evaluate::Status;
use upgrade_gate::engine::fleet::FleetSnapshot;
use upgrade_gate::evaluation::fleet::FleetEvaluator;

/// `up` for every cluster that reports, and `mesh_5xx` per destination service.
fn store(t: i64, clusters: &[(&str, f64)], services: &[&str]) -> OpenMetrics {
    let mut data = OpenMetrics::new();
    for (cluster, errors) in clusters {
        data.gauge(
            "up",
            &format!(r#"cluster="{cluster}",job="kubelet""#),
            around(t),
            |_| Some(1.0),
        );
        for service in services {
            let labels = format!(r#"cluster="{cluster}",destination_service="{service}""#);
            data.gauge("mesh_5xx", &labels, around(t), |_| Some(*errors));
        }
    }
    data
}

fn config(url: &str, max_series: usize, query: &str, waves: &str) -> (tempfile::TempDir, Config) {
    let signal = format!(
        r#"
  - name: mesh_5xx
    query: '{query}'
    fail: "> 1"
    critical: true
    phases: [istio]"#
    );
    config_with(url, max_series, &signal, waves)
}

/// A fleet configuration with one phase, `istio`, and `signals` (YAML list items).
fn config_with(
    url: &str,
    max_series: usize,
    signals: &str,
    waves: &str,
) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    let text = format!(
        r#"prometheus: {{url: "{url}", timeout: 5s}}
evaluation: {{interval: 30s, concurrency: 4, max_series: {max_series}}}
fleet:
  waves: {waves}
phases: [{{name: istio, min_score: 90, stable_for: 2m}}]
signals:{signals}
"#
    );
    std::fs::write(&path, text).unwrap();
    let config = config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    (dir, config)
}

async fn evaluate(config: &Config, at: i64) -> FleetSnapshot {
    let mut evaluator = FleetEvaluator::new(config).unwrap();
    evaluator.evaluate(config, at).await
}

fn decision(f: &FleetSnapshot, cluster: &str) -> Decision {
    f.cluster(cluster)
        .unwrap()
        .snapshot
        .verdict("istio")
        .unwrap()
        .decision
}

#[tokio::test]
async fn each_cluster_is_judged_alone_and_a_silent_one_is_never_go() {
    let t = now();
    let data = store(
        t,
        &[("c1", 0.1), ("c2", 5.0), ("c3", 0.2), ("stray", 9.0)],
        &["reviews", "ratings"],
    );
    let prom = TestPrometheus::start(&data.render());
    let (_dir, config) = config(
        prom.url(),
        1000,
        "max by (destination_service) (mesh_5xx)",
        "[{name: first, clusters: [c1, c2]}, {name: second, clusters: [c3, c4], soak: 30m}]",
    );
    let f = evaluate(&config, t).await;

    assert_eq!(decision(&f, "c1"), Decision::Go);
    assert_eq!(decision(&f, "c3"), Decision::Go, "c2's failure is not c3's");
    assert_eq!(decision(&f, "c2"), Decision::NoGo);
    let c2 = &f.cluster("c2").unwrap().snapshot;
    let signal = &c2.signals[0];
    assert_eq!(signal.status, Status::Fail);
    assert_eq!(signal.value, Some(5.0), "c2's own value, not a blend");
    assert_eq!(signal.offenders.len(), 2);
    assert!(
        signal.offenders.iter().all(|o| o.labels["cluster"] == "c2"),
        "offenders carry their cluster: {:?}",
        signal.offenders
    );

    let c4 = f.cluster("c4").unwrap();
    assert_eq!(
        c4.snapshot.verdict("istio").unwrap().decision,
        Decision::Unknown
    );
    let reasons = &c4.snapshot.verdict("istio").unwrap().reasons;
    assert!(
        reasons[0].contains("no data from cluster c4 since the gate started"),
        "{reasons:?}"
    );
    assert_eq!(f.unlisted_series, 1, "the stray cluster's up series");
    assert!(f.cluster("stray").is_none());

    let second = f.wave("second").unwrap();
    assert_eq!(second.decision, Decision::NoGo);
    assert_eq!(second.blocking[0].cluster, "c2");
    assert_eq!(second.blocking[0].signals, ["mesh_5xx"]);
    assert_eq!(
        f.wave_verdict("first", "istio").unwrap().decision,
        Decision::NoGo
    );
}

#[tokio::test]
async fn an_answer_too_large_for_the_fleet_is_asked_again_by_halves() {
    let t = now();
    let mut data = store(t, &[("c1", 0.1), ("c2", 5.0), ("c3", 0.2)], &["a", "b"]);
    // Four series alone: over the limit of three even by itself.
    for service in ["a", "b", "c", "d"] {
        let labels = format!(r#"cluster="big",destination_service="{service}""#);
        data.gauge("mesh_5xx", &labels, around(t), |_| Some(0.1));
    }
    data.gauge("up", r#"cluster="big""#, around(t), |_| Some(1.0));
    let prom = TestPrometheus::start(&data.render());
    // Unaggregated: two series per cluster, six for the three clusters, limit three.
    let (_dir, config) = config(
        prom.url(),
        3,
        "mesh_5xx",
        "[{name: all, clusters: [c1, c2, c3, big]}]",
    );
    let f = evaluate(&config, t).await;
    assert_eq!(decision(&f, "c1"), Decision::Go);
    assert_eq!(decision(&f, "c2"), Decision::NoGo, "judged, not refused");
    assert_eq!(decision(&f, "c3"), Decision::Go);
    let big = &f.cluster("big").unwrap().snapshot;
    assert_eq!(big.signals[0].status, Status::Error);
    let error = big.signals[0].error.as_deref().unwrap();
    assert!(
        error.contains("too large for one query even for this cluster alone")
            && error.contains("more than max_series 3"),
        "{error}"
    );
}

/// The clusters of the split tests and their errors: two series each (services `a` and `b`).
const SPLIT_CLUSTERS: [(&str, f64); 4] = [("c1", 0.1), ("c2", 5.0), ("c3", 0.2), ("c4", 0.1)];
const SPLIT_WAVES: &str = "[{name: all, clusters: [c1, c2, c3, c4]}]";
/// Two series per cluster, limit three: the fleet's eight and a half's four are too many.
const SPLIT_LIMIT: usize = 3;
/// A signal and a relative one, both too large for one query over the fleet.
const SPLIT_SIGNALS: &str = r#"
  - name: mesh_5xx
    query: mesh_5xx
    fail: "> 1"
    phases: [istio]
  - name: mesh_5xx_vs_before
    query: mesh_5xx
    fail: "> baseline * 2"
    baseline: {offset: 1h, window: 10m}
    phases: [istio]"#;

/// Once split, a signal is asked in parts from then on, and each part keeps its window and its
/// moving baseline as a whole signal does: later evaluations fetch new steps only, and a relative
/// signal too large for the fleet is judged per part rather than failing for every cluster.
#[tokio::test]
async fn a_split_signal_keeps_each_parts_window_and_baseline() {
    let t = now();
    let prom = TestPrometheus::start(&store(t, &SPLIT_CLUSTERS, &["a", "b"]).render());
    let (url, counting) = counting::start(prom.url()).await;
    let (_dir, config) = config_with(&url, SPLIT_LIMIT, SPLIT_SIGNALS, SPLIT_WAVES);
    let mut evaluator = FleetEvaluator::new(&config).unwrap();

    for at in [t, t + 30, t + 60] {
        let f = evaluator.evaluate(&config, at).await;
        for (cluster, _) in SPLIT_CLUSTERS {
            let relative = &f.cluster(cluster).unwrap().snapshot.signals[1];
            assert_eq!(
                relative.status,
                Status::Ok,
                "{cluster} at {at}: {relative:?}"
            );
        }
        assert_eq!(decision(&f, "c1"), Decision::Go);
        assert_eq!(decision(&f, "c2"), Decision::NoGo);
        assert_eq!(decision(&f, "c4"), Decision::Go);
        let calls = counting.take_calls();
        if at == t {
            continue;
        }
        // Presence, then per signal its four one-cluster parts, and the relative one's four
        // baselines: each for the one step it has not seen.
        assert_eq!(calls.len(), 1 + 4 + 4 + 4, "{calls:#?}");
        for call in &calls {
            assert!(call.range.1 - call.range.0 <= 30.0, "{call:?}");
        }
    }
}

/// A past window (what `report` judges) splits a signal too large for one query as `serve` does:
/// every step of every cluster is judged as it is when the whole answer fits, none unknown.
#[tokio::test]
async fn a_past_window_splits_a_signal_too_large_as_serve_does() {
    let t = now();
    let prom = TestPrometheus::start(&store(t, &SPLIT_CLUSTERS, &["a", "b"]).render());
    let (url, counting) = counting::start(prom.url()).await;
    let steps = async |max_series| {
        let (_dir, config) = config_with(&url, max_series, SPLIT_SIGNALS, SPLIT_WAVES);
        let evaluator = FleetEvaluator::new(&config).unwrap();
        let mut verdicts = Vec::new();
        evaluator
            .each_step(&config, &config.pack.phases, t - 300, t, |cluster, _, v| {
                verdicts.push((cluster.to_string(), v))
            })
            .await
            .unwrap();
        (verdicts, counting.take_calls())
    };

    let (whole, _) = steps(1000).await;
    let (split, calls) = steps(SPLIT_LIMIT).await;
    assert_eq!(split.len(), 4 * 11, "four clusters, eleven steps");
    assert_eq!(split, whole);
    let last = |cluster: &str| {
        let (_, verdict) = split.iter().rfind(|(c, _)| c == cluster).unwrap();
        verdict.decision
    };
    assert_eq!(last("c1"), Decision::Go);
    assert_eq!(last("c2"), Decision::NoGo);
    // Presence, then per signal the fleet, its halves and its quarters; and the relative
    // signal's baseline with each of its parts.
    assert_eq!(calls.len(), 1 + 2 * (1 + 2 + 4) + (1 + 2 + 4), "{calls:#?}");
    let one_cluster = calls
        .iter()
        .filter(|c| c.query.contains(r#"cluster=~"c2""#));
    assert_eq!(one_cluster.count(), 3, "{calls:#?}");
}

#[tokio::test]
async fn a_store_that_fails_makes_its_clusters_unknown_and_no_other() {
    let t = now();
    let prom = TestPrometheus::start(&store(t, &[("c1", 0.1), ("c2", 0.1)], &["a"]).render());
    let dead = format!("http://127.0.0.1:{}", common::gate::free_port());
    let (_dir, config) = config(
        prom.url(),
        1000,
        "max by (destination_service) (mesh_5xx)",
        &format!(
            "[{{name: all, clusters: [c1, c2]}}]\n  backends: [{{name: elsewhere, prometheus: {{url: \"{dead}\"}}, clusters: [c2]}}]"
        ),
    );
    let f = evaluate(&config, t).await;
    assert_eq!(decision(&f, "c1"), Decision::Go, "its own store answers");
    let c2 = f.cluster("c2").unwrap().snapshot.verdict("istio").unwrap();
    assert_eq!(c2.decision, Decision::Unknown);
    assert!(
        c2.reasons[0].contains("fleet.backends elsewhere: presence query failed")
            && c2.reasons[0].contains("unreachable"),
        "{:?}",
        c2.reasons
    );
}
