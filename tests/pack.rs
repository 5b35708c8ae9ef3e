//! The default signal pack end to end: synthetic upgrade metrics with the real names and labels,
//! in a real Prometheus, judged by the built-in config.

mod common;

use common::data::now;
use common::prometheus::TestPrometheus;
use upgrade_gate::engine::decide::Decision;
use upgrade_gate::engine::evaluate::Status;
use upgrade_gate::engine::snapshot::Snapshot;
use upgrade_gate::evaluation;
use upgrade_gate::prometheus::source::PrometheusSource;
use upgrade_gate::simulate::scenarios::{openmetrics, openmetrics_window, Scenario, Window};

async fn evaluate_default_pack(scenario: Scenario) -> Snapshot {
    let t = now();
    let prom = TestPrometheus::start(&openmetrics(scenario, t - 2 * 3600, t + 600, 30));
    let mut config = upgrade_gate::config::load(None).unwrap_or_else(|e| panic!("{e}"));
    config.prometheus.url = prom.url().to_string();
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    evaluation::evaluate(&config, &source, t).await
}

#[tokio::test]
async fn a_healthy_cluster_is_go_in_every_phase() {
    let s = evaluate_default_pack(Scenario::Healthy).await;
    for v in &s.phases {
        assert_eq!(v.decision, Decision::Go, "{}: {:#?}", v.phase, v.reasons);
        assert_eq!(v.score, 100.0, "{}", v.phase);
    }
    assert_eq!(s.phases.len(), 7, "six phases and all");
    let no_data: Vec<_> = s
        .signals
        .iter()
        .filter(|r| r.status == Status::NoData)
        .map(|r| r.name.as_str())
        .collect();
    // Only signals whose "nothing returned" means healthy may be empty.
    for r in s.signals.iter().filter(|r| r.status == Status::NoData) {
        assert_eq!(
            r.no_data,
            upgrade_gate::engine::pack::NoDataPolicy::Ok,
            "{no_data:?}"
        );
    }
    assert!(s.signals.iter().all(|r| r.status != Status::Error));
}

#[tokio::test]
async fn an_istio_5xx_spike_stops_the_istio_phase_naming_the_service() {
    let s = evaluate_default_pack(Scenario::Istio5xxSpike).await;
    let v = s.verdict("istio").unwrap();
    assert_eq!(v.decision, Decision::NoGo);
    let r = v
        .signals
        .iter()
        .find(|r| r.name == "istio_5xx_ratio")
        .unwrap();
    assert_eq!(r.status, Status::Fail);
    assert_eq!(
        r.offenders[0].labels["destination_service"],
        "reviews.bookinfo.svc.cluster.local"
    );
    assert!((r.value.unwrap() - 0.2).abs() < 0.01, "{:?}", r.value);
    assert!(
        v.reasons[0].starts_with("critical signal \"istio_5xx_ratio\" is fail"),
        "{:?}",
        v.reasons
    );
    // Every other signal stays healthy: the spike is the only cause.
    let others_bad: Vec<_> = s
        .signals
        .iter()
        .filter(|r| r.name != "istio_5xx_ratio" && !matches!(r.status, Status::Ok | Status::NoData))
        .map(|r| (&r.name, r.status))
        .collect();
    assert!(others_bad.is_empty(), "{others_bad:?}");
}

/// The metric names of the samples in OpenMetrics text, as a query selects them.
fn exposed_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l[..l.find(['{', ' ']).unwrap_or(l.len())].to_string())
        .collect()
}

#[test]
fn the_simulator_exports_every_metric_the_default_pack_reads() {
    let config = upgrade_gate::config::load(None).unwrap_or_else(|e| panic!("{e}"));
    let t = now();
    for &scenario in <Scenario as clap::ValueEnum>::value_variants() {
        // The hour `validate --online` looks at: the scenario's own window as the tests backfill
        // it, and the hour before it as a demo backfills it when it starts.
        let hours = [
            ("its window", openmetrics(scenario, t - 3600, t, 30)),
            (
                "the hour before it",
                openmetrics_window(scenario, Window::new(t, t + 1200), t - 3600, t, 30),
            ),
        ];
        for (hour, text) in hours {
            let exposed = exposed_names(&text);
            let missing: Vec<String> = config
                .pack
                .signals
                .iter()
                .flat_map(|s| {
                    upgrade_gate::prometheus::online::selected_metrics(&s.query)
                        .into_iter()
                        .filter(|m| !exposed.contains(m))
                        .map(|m| format!("{}: {m}", s.name))
                        .collect::<Vec<_>>()
                })
                .collect();
            assert!(
                missing.is_empty(),
                "{scenario:?}, {hour}: exports none of these, so their signals are never exercised: {missing:?}"
            );
        }
    }
}
