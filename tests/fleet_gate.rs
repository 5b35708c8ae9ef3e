//! A fleet gate as real processes on loopback (issue 18, item 8): Prometheus agents, one per
//! cluster, each scraping its own `upgrade-gate simulate --listen` with `external_labels:
//! {cluster: ...}` and remote-writing into a central Prometheus; a second central store for one
//! cluster; a proxy adding `warnings` for another; and `upgrade-gate serve` in fleet mode.
//!
//! One cluster's incident blocks that cluster and its wave while the others stay go; the next
//! wave stays closed until the incident has been over for the soak; a killed agent makes its
//! cluster unknown once its series go stale; a partial answer makes the signal unknown.

mod common;

use std::time::{Duration, Instant};

use common::fleet::{FleetOptions, Store, TestFleet};
use common::gate::GateProcess;
use common::proxy::proxy;
use common::receiver::{Received, Receiver};
use serde_json::{json, Value};
use upgrade_gate::simulate::scenarios::Scenario;

/// The istio 5xx share over 10 s (the runbook's query, with a window the 1 s scrapes fill fast):
/// a test waits seconds, not the default pack's five minutes, for an incident to show or clear.
const PACK: &str = r#"
phases: [{name: istio, min_score: 90}]
signals:
  - name: istio_5xx_ratio
    query: |-
      (
          sum by (destination_service) (rate(istio_requests_total{reporter="destination",response_code=~"5.."}[10s]))
        or
          0 * sum by (destination_service) (rate(istio_requests_total{reporter="destination"}[10s]))
      )
      / (sum by (destination_service) (rate(istio_requests_total{reporter="destination"}[10s])) > 0.1)
    fail: "> 0.05"
    critical: true
    phases: [istio]
"#;

const SOAK: Duration = Duration::from_secs(15);
const DEADLINE: Duration = Duration::from_secs(120);

fn get(gate: &GateProcess, path: &str) -> (u16, Value) {
    let (status, body) = gate
        .request("GET", path)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let body = serde_json::from_str(&body).unwrap_or_else(|_| json!({ "text": body }));
    (status, body)
}

/// Polls `path` until `done(status, body)`; the last answer.
fn poll(gate: &GateProcess, path: &str, done: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = get(gate, path);
        if done(status, &body) {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} never reached the state awaited; last {status} {body:#}\n{}",
            gate.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn reasons(body: &Value) -> String {
    body["reasons"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_blocks_its_cluster_and_wave_and_the_next_wave_waits_for_the_soak() {
    let mut fleet = TestFleet::start(
        &[
            ("c1", Scenario::Healthy),
            ("c2", Scenario::Istio5xxSpike),
            ("c3", Scenario::Healthy),
            ("c4", Scenario::Healthy),
        ],
        FleetOptions {
            store: Store::Agent,
            lookback: Duration::from_secs(5),
            backend: &["c3"],
            incident_ends: Some(Duration::from_secs(40)),
        },
    );
    let (partial, proxied) = proxy(fleet.central.url(), &[]).await;
    proxied.inject.lock().unwrap().insert(
        "warnings".into(),
        json!(["partial response: store-gateway-2 did not answer"]),
    );
    let hook = Receiver::start(vec![]).await;
    let hook_url = format!("{}/upgrade", hook.url());
    let central = fleet.central.url().to_string();
    let second = fleet.backend.as_ref().unwrap().url().to_string();
    let gate = GateProcess::start(
        |listen| {
            format!(
                "prometheus: {{url: \"{central}\", timeout: 5s}}\n\
                 evaluation: {{interval: 1s}}\n\
                 server: {{listen: \"{listen}\"}}\n\
                 alerts: {{receivers: [{{name: pipeline, kind: webhook, url: \"{hook_url}\"}}]}}\n\
                 fleet:\n  \
                   waves:\n    \
                     - {{name: first, clusters: [c1, c2]}}\n    \
                     - {{name: second, clusters: [c3, c4], soak: {}s}}\n  \
                   backends:\n    \
                     - {{name: second-store, prometheus: {{url: \"{second}\"}}, clusters: [c3]}}\n    \
                     - {{name: thanos, prometheus: {{url: \"{partial}\"}}, clusters: [c4]}}\n\
                 {PACK}",
                SOAK.as_secs()
            )
        },
        &[],
    );

    // The incident: c2 and its wave are no-go, naming c2; c1 beside it stays go.
    // (At first the 10 s rates have no data yet: no-go too, but for another reason.)
    let (_, c2) = poll(&gate, "/gate/istio?cluster=c2", |s, b| {
        s == 503 && b["decision"] == "no_go" && b["signals"][0]["status"] == "fail"
    });
    assert_eq!(c2["cluster"], "c2");
    assert_eq!(c2["wave"], "first");
    let offender = &c2["signals"][0]["offenders"][0]["labels"];
    assert_eq!(offender["cluster"], "c2", "{c2:#}");
    assert_eq!(
        offender["destination_service"],
        "reviews.bookinfo.svc.cluster.local"
    );
    let (_, c1) = poll(&gate, "/gate/istio?cluster=c1", |s, _| s == 200);
    assert_eq!(c1["decision"], "go", "{c1:#}");
    let (status, wave) = get(&gate, "/gate/istio?wave=first");
    assert_eq!(status, 503, "{wave:#}");
    assert_eq!(wave["clusters"][0]["cluster"], "c2", "blocking first");
    assert_eq!(wave["clusters"][1]["decision"], "go");
    let (status, next) = get(&gate, "/waves/second");
    assert_eq!(status, 503, "{next:#}");
    assert_eq!(next["blocking"][0]["cluster"], "c2");
    assert_eq!(next["blocking"][0]["signals"][0], "istio_5xx_ratio");

    // Metrics and alerts name the cluster; the wave it blocks is its own notice.
    let (_, metrics) = gate.request("GET", "/metrics").unwrap();
    for line in [
        r#"upgrade_gate_decision{cluster="c2",phase="istio"} 0"#,
        r#"upgrade_gate_decision{cluster="c1",phase="istio"} 1"#,
        r#"upgrade_gate_wave_ready{wave="second"} 0"#,
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    let deadline = Instant::now() + DEADLINE;
    // (c1's phase may have fired too while its rates had no data yet.)
    let firing = |name: &str, key: &str, value: &str| {
        hook.received()
            .iter()
            .map(Received::json)
            .find(|b| b["alertname"] == name && b["status"] == "firing" && b[key] == value)
    };
    let phase = || firing("UpgradeGatePhaseNoGo", "cluster", "c2");
    let wave = || firing("UpgradeGateWaveBlocked", "wave", "second");
    while phase().is_none() || wave().is_none() {
        assert!(Instant::now() < deadline, "alerts: {:?}", hook.received());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let phase = phase().unwrap();
    assert_eq!(phase["wave"], "first", "{phase:#}");
    assert!(
        phase["summary"]
            .as_str()
            .unwrap()
            .contains("is NO-GO on cluster c2 (wave first)"),
        "{phase:#}"
    );
    assert!(
        wave().unwrap()["summary"].as_str().unwrap().contains("c2"),
        "{:#}",
        wave().unwrap()
    );

    // A second store answers for c3; a partial answer makes c4's signal unknown, never go.
    let (_, c3) = poll(&gate, "/gate/istio?cluster=c3", |s, _| s == 200);
    assert_eq!(c3["cluster"], "c3", "{c3:#}");
    let (status, c4) = get(&gate, "/gate/istio?cluster=c4");
    assert_eq!(
        (status, &c4["decision"]),
        (503, &json!("unknown")),
        "{c4:#}"
    );
    assert!(reasons(&c4).contains("warnings"), "{c4:#}");

    // The incident ends: c2 turns go, and the next wave opens only after the soak.
    poll(&gate, "/gate/istio?cluster=c2", |s, _| s == 200);
    let went_go = Instant::now();
    let (_, waiting) = get(&gate, "/waves/second");
    assert_eq!(waiting["decision"], "no_go", "{waiting:#}");
    assert!(
        reasons(&waiting).contains("must stay go for 15s"),
        "{waiting:#}"
    );
    poll(&gate, "/waves/second", |s, _| s == 200);
    let waited = went_go.elapsed();
    assert!(
        waited + Duration::from_secs(2) >= SOAK,
        "the wave opened {waited:?} after c2 turned go, before the {SOAK:?} soak"
    );

    // c1's agent dies: once its series are stale c1 is unknown, not go, and so is its wave.
    fleet.kill_store("c1");
    let (_, c1) = poll(&gate, "/gate/istio?cluster=c1", |s, b| {
        s == 503 && b["decision"] == "unknown"
    });
    assert!(reasons(&c1).contains("no data from cluster c1"), "{c1:#}");
    let (status, next) = get(&gate, "/waves/second");
    assert_eq!(status, 503, "{next:#}");
    assert_eq!(next["decision"], "unknown", "{next:#}");
}

/// A `fleet` section that cannot be right is refused by the daemon itself, exit 2, naming the
/// file and the key.
#[test]
fn a_bad_fleet_section_exits_2_naming_the_key() {
    let cases = [
        (
            "waves: [{name: a, clusters: [x]}, {name: b, clusters: [x]}]",
            "fleet.waves[1].clusters[0]",
            "x is already in wave a",
        ),
        (
            "waves: [{name: a, clusters: []}]",
            "fleet.waves[0].clusters",
            "lists no cluster",
        ),
        (
            "waves: [{name: a, clusters: [x]}]\n  backends: [{name: b, prometheus: {url: \"http://127.0.0.1:1\"}, clusters: [y]}]",
            "fleet.backends[0].clusters[0]",
            "y is in no wave",
        ),
        (
            "label: 2cluster\n  waves: [{name: a, clusters: [x]}]",
            "fleet.label",
            "is not a label name",
        ),
    ];
    for (fleet, key, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate.yaml");
        std::fs::write(
            &path,
            format!("prometheus: {{url: \"http://127.0.0.1:1\"}}\nfleet:\n  {fleet}\n{PACK}"),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_upgrade-gate"))
            .args(["serve", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{fleet}: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string())
                && stderr.contains(key)
                && stderr.contains(message),
            "{fleet}: {stderr}"
        );
    }
}
