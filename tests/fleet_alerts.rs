//! A fleet's alerts against real servers: a recording HTTP receiver for Slack and webhooks, two
//! replicas gossiping their notification log on loopback, and a real Alertmanager. Each cluster's
//! snapshot is judged from data by the engine, as a single gate's is.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::alertmanager::TestAlertmanager;
use common::gate::free_port;
use common::receiver::{Received, Receiver};
use serde_json::Value;
use upgrade_gate::alerting::cluster::{ClusterMetrics, Peers};
use upgrade_gate::alerting::delivery::Alerting;
use upgrade_gate::config::{self, Config};
use upgrade_gate::engine::fleet::{ClusterSnapshot, FleetSnapshot, GoSince, Wave};
use upgrade_gate::engine::grid::Grid;
use upgrade_gate::engine::series::Series;
use upgrade_gate::engine::snapshot::{windows, Snapshot};
use upgrade_gate::server::metrics::Metrics;

const WAIT: Duration = Duration::from_secs(20);

/// One phase, one signal, and `receivers` (YAML list items); `extra` is appended at top level.
fn config(receivers: &str, extra: &str) -> (tempfile::TempDir, Config) {
    let signals = r#"  - {name: mesh_5xx, query: mesh_5xx, fail: "> 1", critical: true}"#;
    config_with_signals(signals, receivers, extra)
}

/// As [`config`], with `signals` (YAML list items).
fn config_with_signals(signals: &str, receivers: &str, extra: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
evaluation: {{interval: 30s}}
phases: [{{name: istio, min_score: 90}}]
signals:
{signals}
alerts:
  external_url: http://gate.example:8080
  retry_initial_backoff: 50ms
  retry_max_backoff: 200ms
  timeout: 2s
  receivers:
{receivers}
{extra}
"#
        ),
    )
    .unwrap();
    let config = config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    (dir, config)
}

/// One cluster's snapshot at `at`, where `mesh_5xx` is `value`, judged by the engine.
fn judged(config: &Config, at: i64, value: f64) -> Snapshot {
    let answers: Vec<Result<_, String>> =
        windows(&config.pack, config.evaluation.step_secs(), at, at)
            .iter()
            .map(|w| {
                Ok(Grid::from_series(
                    *w,
                    &[Series {
                        labels: [("destination_service".to_string(), "reviews".to_string())].into(),
                        samples: (0..w.len())
                            .map(|k| (w.start + w.step * k as i64, value))
                            .collect(),
                    }],
                ))
            })
            .collect();
    Snapshot::judge(&config.pack, config.evaluation.step_secs(), at, &answers)
}

/// One cluster's snapshot at `at` when every query fails with `error`, judged by the engine.
fn failed(config: &Config, at: i64, error: &str) -> Snapshot {
    let answers: Vec<Result<Grid, &str>> = config.pack.signals.iter().map(|_| Err(error)).collect();
    Snapshot::judge(&config.pack, config.evaluation.step_secs(), at, &answers)
}

/// c1 and c2 in wave staging, c3 in wave prod; `values` is mesh_5xx of each.
fn fleet(config: &Config, at: i64, values: [f64; 3], since: &mut GoSince) -> Arc<FleetSnapshot> {
    fleet_of(at, values.map(|v| judged(config, at, v)), since)
}

/// c1 and c2 in wave staging, c3 in wave prod, judged as `snapshots`.
fn fleet_of(at: i64, snapshots: [Snapshot; 3], since: &mut GoSince) -> Arc<FleetSnapshot> {
    let wave = |name: &str, clusters: &[&str]| Wave {
        name: name.into(),
        clusters: clusters.iter().map(|c| c.to_string()).collect(),
        soak: Duration::ZERO,
    };
    let waves = [wave("staging", &["c1", "c2"]), wave("prod", &["c3"])];
    let clusters = [("c1", "staging"), ("c2", "staging"), ("c3", "prod")]
        .iter()
        .zip(snapshots)
        .map(|((cluster, wave), snapshot)| ClusterSnapshot {
            cluster: cluster.to_string(),
            wave: wave.to_string(),
            go_since: None,
            snapshot,
        })
        .collect();
    let at = chrono::DateTime::from_timestamp(at, 0).unwrap();
    Arc::new(FleetSnapshot::new(at, clusters, &waves, since, 0))
}

/// The alert path of a gate on its own, with its metrics.
fn alerting(config: &Config) -> (Alerting, Metrics) {
    let metrics = Metrics::new();
    let alerting = Alerting::start(
        &config.alerts,
        config.evaluation.interval,
        metrics.alerts.clone(),
    );
    (alerting, metrics)
}

const OK: f64 = 0.1;
const FAIL: f64 = 2.5;

/// (alertname, cluster, wave, status) of each webhook body, in arrival order.
fn notices(received: &[Received]) -> Vec<(String, String, String, String)> {
    received
        .iter()
        .map(|r| {
            let b = r.json();
            let s = |k: &str| b[k].as_str().unwrap_or("-").to_string();
            (s("alertname"), s("cluster"), s("wave"), s("status"))
        })
        .collect()
}

fn notice(name: &str, cluster: &str, wave: &str, status: &str) -> (String, String, String, String) {
    (name.into(), cluster.into(), wave.into(), status.into())
}

#[tokio::test]
async fn each_cluster_and_the_blocked_wave_reach_slack_and_a_webhook_naming_the_cluster() {
    let slack = Receiver::start(vec![]).await;
    let hook = Receiver::start(vec![]).await;
    let (_dir, config) = config(
        &format!(
            "    - {{name: ops-slack, kind: slack, url: \"{}/services/T0/B0/X\"}}\n    - {{name: pipeline, kind: webhook, url: \"{}/upgrade\"}}",
            slack.url(),
            hook.url()
        ),
        "",
    );
    let (mut alerting, _) = alerting(&config);
    let since = &mut GoSince::default();
    let t0 = 1_800_000_000;
    for (i, values) in [[OK, OK, OK], [FAIL, FAIL, OK], [OK, OK, OK]]
        .into_iter()
        .enumerate()
    {
        let f = fleet(&config, t0 + 30 * i as i64, values, since);
        alerting.observe_fleet(&f, tokio::time::Instant::now());
    }
    alerting.close().await;

    // c1 and c2: two notices each (phase, signal), the prod wave one; all of them resolve.
    let hooks = hook.received();
    let mut got = notices(&hooks);
    got.sort();
    let mut want = Vec::new();
    for status in ["firing", "resolved"] {
        for cluster in ["c1", "c2"] {
            want.push(notice("UpgradeGatePhaseNoGo", cluster, "staging", status));
            want.push(notice(
                "UpgradeGateSignalFailing",
                cluster,
                "staging",
                status,
            ));
        }
        want.push(notice("UpgradeGateWaveBlocked", "-", "prod", status));
    }
    want.sort();
    assert_eq!(got, want);

    let body = |name: &str, cluster: Option<&str>, status: &str| -> Value {
        hooks
            .iter()
            .map(Received::json)
            .find(|b| {
                b["alertname"] == name
                    && b["status"] == status
                    && cluster.is_none_or(|c| b["cluster"] == c)
            })
            .unwrap()
    };
    let c2 = body("UpgradeGatePhaseNoGo", Some("c2"), "firing");
    assert_eq!(
        c2["summary"],
        "phase istio is NO-GO on cluster c2 (wave staging) (score 0)"
    );
    assert_eq!(
        c2["gate_url"],
        "http://gate.example:8080/gate/istio?cluster=c2"
    );
    let wave = body("UpgradeGateWaveBlocked", None, "firing");
    let summary = wave["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("wave prod is BLOCKED: cluster c1 (wave staging) is no_go for istio: mesh_5xx; cluster c2"),
        "{summary}"
    );
    assert_eq!(wave["gate_url"], "http://gate.example:8080/waves/prod");
    assert_eq!(
        body("UpgradeGateWaveBlocked", None, "resolved")["summary"],
        "wave prod may start"
    );

    // Slack: the cluster in the text, as fields, and the blocked wave's causes.
    let messages: Vec<String> = slack
        .received()
        .iter()
        .map(|r| r.json().to_string())
        .collect();
    assert_eq!(messages.len(), 10);
    assert!(messages.iter().any(|m| m.contains(
        r#""text":":red_circle: upgrade-gate: phase istio is NO-GO on cluster c1 (wave staging) (score 0)""#
    )));
    assert!(messages
        .iter()
        .any(|m| m.contains(r#"*Cluster*\nc1"#) && m.contains(r#"*Wave*\nstaging"#)));
    assert!(messages
        .iter()
        .any(|m| m.contains("• cluster c2 (wave staging) is no_go for istio: mesh_5xx")));
}

/// A replica gossiping its log on a free loopback port with `peer`'s.
async fn replica(hook: &Receiver, port: u16, peer: u16) -> (Alerting, Metrics, Config) {
    let (_dir, config) = config_with(hook, port, peer);
    let metrics = Metrics::new();
    let cluster = config.cluster.clone().unwrap();
    let peers = Peers::start(None, Some(&cluster), ClusterMetrics::default())
        .await
        .unwrap();
    let alerting = Alerting::with_peers(
        &config.alerts,
        config.evaluation.interval,
        metrics.alerts.clone(),
        peers,
    );
    (alerting, metrics, config)
}

fn config_with(hook: &Receiver, port: u16, peer: u16) -> (tempfile::TempDir, Config) {
    config(
        &format!(
            "    - {{name: pipeline, kind: webhook, url: \"{}/upgrade\"}}",
            hook.url()
        ),
        &format!(
            "cluster: {{listen: \"127.0.0.1:{port}\", peers: [\"127.0.0.1:{peer}\"], peer_timeout: 1s, insecure: true}}"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_send_each_clusters_notice_once() {
    let hook = Receiver::start(vec![]).await;
    let (a, b) = (free_port(), free_port());
    let (mut one, m1, config) = replica(&hook, a, b).await;
    let (mut two, m2, _) = replica(&hook, b, a).await;
    let since = &mut GoSince::default();
    let now = chrono::Utc::now().timestamp() - 40;
    // Both replicas judge the same step, due at the same moment.
    let due = tokio::time::Instant::now();
    let f = fleet(&config, now, [OK, FAIL, FAIL], since);
    one.observe_fleet(&f, due);
    two.observe_fleet(&f, due);
    // c2, c3: phase and signal each; prod waits on staging's c2 (c3 is in prod itself).
    let received = hook.wait_for(5, WAIT).await;
    // The later replica's turn comes one peer_timeout later, and then it finds all sent.
    let deduplicated = |m: &Metrics| {
        m.encode()
            .lines()
            .filter(|l| l.starts_with("upgrade_gate_alerts_total{") && l.contains("deduplicated"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let started = std::time::Instant::now();
    while deduplicated(&m1) + deduplicated(&m2) < 5 {
        assert!(
            started.elapsed() < WAIT,
            "the later replica never took its turn"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    one.close().await;
    two.close().await;
    let mut got = notices(&hook.received());
    got.sort();
    assert_eq!(
        got,
        [
            notice("UpgradeGatePhaseNoGo", "c2", "staging", "firing"),
            notice("UpgradeGatePhaseNoGo", "c3", "prod", "firing"),
            notice("UpgradeGateSignalFailing", "c2", "staging", "firing"),
            notice("UpgradeGateSignalFailing", "c3", "prod", "firing"),
            notice("UpgradeGateWaveBlocked", "-", "prod", "firing"),
        ],
        "each once: {received:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_gets_the_cluster_and_wave_labels_and_the_blocked_wave() {
    let am = TestAlertmanager::start();
    let (_dir, config) = config(
        &format!(
            "    - {{name: am, kind: alertmanager, url: \"{}/\"}}",
            am.url()
        ),
        "",
    );
    let (mut alerting, _) = alerting(&config);
    let since = &mut GoSince::default();
    let now = chrono::Utc::now().timestamp() - 40;
    alerting.observe_fleet(
        &fleet(&config, now, [OK, FAIL, OK], since),
        tokio::time::Instant::now(),
    );
    let alerts = am.wait_until(WAIT, |a| a.len() == 3).await;
    let labels = |name: &str| {
        alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .unwrap_or_else(|| panic!("no {name} in {alerts:#?}"))["labels"]
            .clone()
    };
    let phase = labels("UpgradeGatePhaseNoGo");
    assert_eq!(
        (&phase["cluster"], &phase["wave"], &phase["phase"]),
        (&"c2".into(), &"staging".into(), &"istio".into())
    );
    assert_eq!(labels("UpgradeGateSignalFailing")["cluster"], "c2");
    let wave = labels("UpgradeGateWaveBlocked");
    assert_eq!(wave["wave"], "prod");
    assert!(wave.get("cluster").is_none(), "{wave}");
    let blocked = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "UpgradeGateWaveBlocked")
        .unwrap();
    assert_eq!(
        blocked["annotations"]["description"],
        "cluster c2 (wave staging) is no_go for istio: mesh_5xx"
    );

    // c2 recovers: its alerts and the wave's resolve and leave Alertmanager's active list.
    alerting.observe_fleet(
        &fleet(&config, now + 30, [OK, OK, OK], since),
        tokio::time::Instant::now(),
    );
    am.wait_until(WAIT, |a| a.is_empty()).await;
    alerting.close().await;
}

/// A store outage through the routing the project ships (`alerts/alertmanager-fleet.yml`) in a
/// real Alertmanager: every cluster's `UpgradeGatePrometheusError` in one notification, their
/// phases' `UpgradeGatePhaseNoGo` inhibited, the blocked wave a notification of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_through_the_shipped_alertmanager_routing_is_one_notification() {
    let team = Receiver::start(vec![]).await;
    let shipped = std::fs::read_to_string("alerts/alertmanager-fleet.yml").unwrap();
    // As shipped, but for where it sends and how long a group waits for its first alerts (they
    // all arrive in one request here).
    let url = format!("{}/team", team.url());
    let routing = shipped
        .replace("https://alerts.example.com/upgrade-gate", &url)
        .replace("group_wait: 30s", "group_wait: 1s");
    assert!(
        routing.contains(&url) && routing.contains("group_wait: 1s"),
        "{routing}"
    );
    let am = TestAlertmanager::start_with(&routing);
    let signals = r#"  - {name: mesh_5xx, query: mesh_5xx, fail: "> 1", critical: true}
  - {name: mesh_p99, query: mesh_p99, fail: "> 1000"}"#;
    let receiver = format!(
        "    - {{name: am, kind: alertmanager, url: \"{}/\"}}",
        am.url()
    );
    let (_dir, config) = config_with_signals(signals, &receiver, "");
    let (mut alerting, _) = alerting(&config);
    let now = chrono::Utc::now().timestamp() - 40;
    let down = || failed(&config, now, "error sending request: connection refused");
    let outage = fleet_of(now, [down(), down(), down()], &mut GoSince::default());
    alerting.observe_fleet(&outage, tokio::time::Instant::now());

    // Per cluster its PrometheusError and its phase's PhaseNoGo (unknown), and the prod wave's.
    let inhibited = |a: &Value| !a["status"]["inhibitedBy"].as_array().unwrap().is_empty();
    let alerts = am
        .wait_until(WAIT, |alerts| {
            alerts.len() == 7
                && alerts
                    .iter()
                    .all(|a| inhibited(a) == (a["labels"]["alertname"] == "UpgradeGatePhaseNoGo"))
        })
        .await;
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == "UpgradeGatePhaseNoGo")
            .count(),
        3
    );

    let mut groups: Vec<(String, Vec<String>)> = team
        .wait_for(2, WAIT)
        .await
        .iter()
        .map(|r| {
            let body = r.json();
            let mut alerts: Vec<String> = body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    let label = |k: &str| a["labels"][k].as_str().unwrap_or("-").to_string();
                    format!("{} {}", label("alertname"), label("cluster"))
                })
                .collect();
            alerts.sort();
            (body["groupLabels"].to_string(), alerts)
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            (
                r#"{"alertname":"UpgradeGatePrometheusError"}"#.to_string(),
                vec![
                    "UpgradeGatePrometheusError c1".to_string(),
                    "UpgradeGatePrometheusError c2".into(),
                    "UpgradeGatePrometheusError c3".into(),
                ]
            ),
            (
                r#"{"alertname":"UpgradeGateWaveBlocked","wave":"prod"}"#.to_string(),
                vec!["UpgradeGateWaveBlocked -".to_string()]
            ),
        ]
    );
    alerting.close().await;
}
