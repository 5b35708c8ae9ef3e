//! `serve` in fleet mode against a real Prometheus: every HTTP answer per cluster, per wave and
//! for the fleet, the refusals that name what to add or drop, and the Flagger webhook's metadata.
//!
//! The store holds three clusters' series with a `cluster` label (backfilled by promtool): `c2`
//! fails `mesh_5xx`, `c1` and `c3` are healthy, and `c4` is listed but has no series at all.

mod common;

use common::data::{around, now, OpenMetrics};
use common::gate::TestGate;
use common::prometheus::TestPrometheus;
use serde_json::Value;
use upgrade_gate::config::{self, Config};

const PACK: &str = r#"
phases:
  - {name: istio, min_score: 90, stable_for: 0s}
  - {name: nodes, min_score: 90, stable_for: 0s}
signals:
  - {name: mesh_5xx, query: "max by (destination_service) (mesh_5xx)", fail: "> 0.1", critical: true, phases: [istio]}
  - {name: nodes_ready, query: "min(node_ready)", fail: "< 1", phases: [nodes]}
"#;

const FLEET: &str = r#"
fleet:
  waves:
    - {name: first, clusters: [c1, c2]}
    - {name: second, clusters: [c3, c4]}
"#;

fn data() -> String {
    let t = now();
    let mut data = OpenMetrics::new();
    for (cluster, errors) in [("c1", 0.01), ("c2", 0.2), ("c3", 0.02)] {
        let labels = format!(r#"cluster="{cluster}",job="kubelet""#);
        data.gauge("up", &labels, around(t), |_| Some(1.0));
        data.gauge("node_ready", &labels, around(t), |_| Some(1.0));
        let labels = format!(r#"cluster="{cluster}",destination_service="reviews""#);
        data.gauge("mesh_5xx", &labels, around(t), move |_| Some(errors));
    }
    data.render()
}

fn config(url: &str, fleet: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    let text = format!(
        "prometheus: {{url: \"{url}\", timeout: 2s}}\nevaluation: {{interval: 15s}}\nserver: {{listen: \"127.0.0.1:0\"}}\n{PACK}{fleet}"
    );
    std::fs::write(&path, text).unwrap();
    let config = config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    (dir, config)
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Status and body of a Flagger webhook call (its body shape and content type).
async fn flagger(gate: &TestGate, path: &str, metadata: &str) -> (u16, String) {
    let body = format!(
        r#"{{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"1","metadata":{metadata}}}"#
    );
    let r = reqwest::Client::new()
        .post(format!("{}{path}", gate.base))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cluster_and_wave_is_answered_apart() {
    let prom = TestPrometheus::start(&data());
    let (_dir, config) = config(prom.url(), FLEET);
    let gate = TestGate::start(config).await;
    gate.ready().await;

    // One cluster: its own verdict, naming it and its wave.
    let (status, body) = gate.get("/gate/istio?cluster=c1").await;
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(
        (v["cluster"].as_str(), v["wave"].as_str()),
        (Some("c1"), Some("first"))
    );
    assert_eq!(v["decision"], "go");
    let (status, body) = gate.get("/gate/istio?cluster=c2").await;
    assert_eq!(status, 503, "{body}");
    let v = json(&body);
    assert_eq!(v["cluster"], "c2");
    assert_eq!(v["decision"], "no_go");
    let signal = &v["signals"][0];
    assert_eq!(signal["name"], "mesh_5xx");
    assert_eq!(signal["status"], "fail");
    assert_eq!(signal["offenders"][0]["labels"]["cluster"], "c2", "{body}");
    assert_eq!(signal["offenders"].as_array().unwrap().len(), 1, "{body}");
    // Its other phase is go: only the failing signal's phase holds it.
    assert_eq!(gate.get("/gate/nodes?cluster=c2").await.0, 200);

    // A listed cluster without a single series is unknown, never go, with the reason.
    let (status, body) = gate.get("/gate/nodes?cluster=c4").await;
    assert_eq!(status, 503, "{body}");
    let v = json(&body);
    assert_eq!(v["decision"], "unknown", "{body}");
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .contains("no data from cluster c4"),
        "{body}"
    );

    // A wave: no-go while one of its clusters is, the blocking one first.
    let (status, body) = gate.get("/gate/istio?wave=first").await;
    assert_eq!(status, 503, "{body}");
    let v = json(&body);
    assert_eq!(v["wave"], "first");
    assert_eq!(v["decision"], "no_go");
    let order: Vec<&str> = v["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cluster"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["c2", "c1"], "{body}");
    assert_eq!(v["clusters"][0]["decision"], "no_go");
    assert_eq!(v["clusters"][1]["decision"], "go");
    assert_eq!(gate.get("/gate/nodes?wave=first").await.0, 200);

    // May a wave start: the first may (nothing before it), the second is held by c2's signal.
    let (status, body) = gate.get("/waves/first").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["decision"], "go");
    let (status, body) = gate.get("/waves/second").await;
    assert_eq!(status, 503, "{body}");
    let v = json(&body);
    assert_eq!(v["decision"], "no_go");
    assert_eq!(v["blocking"][0]["cluster"], "c2", "{body}");
    assert_eq!(v["blocking"][0]["signals"][0], "mesh_5xx", "{body}");
    assert_eq!(v["blocking"].as_array().unwrap().len(), 1, "{body}");
    let (status, body) = gate.get("/waves/second?status=always-200").await;
    assert_eq!(
        (status, json(&body)["decision"].as_str()),
        (200, Some("no_go"))
    );

    // The fleet at a glance: every cluster × phase, every wave.
    let (status, body) = gate.get("/fleet").await;
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    let clusters = v["clusters"].as_array().unwrap();
    let names: Vec<&str> = clusters
        .iter()
        .map(|c| c["cluster"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c1", "c2", "c3", "c4"]);
    let decision = |cluster: usize, phase: usize| {
        let p = &clusters[cluster]["phases"][phase];
        (
            p["phase"].as_str().unwrap(),
            p["decision"].as_str().unwrap(),
        )
    };
    assert_eq!(decision(1, 0), ("istio", "no_go"));
    assert_eq!(decision(1, 1), ("nodes", "go"));
    assert_eq!(decision(3, 1).0, "nodes");
    assert_eq!(decision(3, 1).1, "unknown");
    assert!(clusters
        .iter()
        .all(|c| c["phases"].as_array().unwrap().len() == 2));
    assert!(
        clusters[0]["phases"][0]["stable_since"].is_string(),
        "{body}"
    );
    assert!(clusters[0]["phases"][0]["score"].is_number(), "{body}");
    assert!(
        !body.contains("offenders"),
        "no signal lists in /fleet: {body}"
    );
    let waves: Vec<(&str, &str)> = v["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["wave"].as_str().unwrap(), w["decision"].as_str().unwrap()))
        .collect();
    assert_eq!(waves, [("first", "go"), ("second", "no_go")]);

    // Signals per cluster.
    let (status, body) = gate.get("/signals?cluster=c2").await;
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["cluster"], "c2");
    assert_eq!(v["signals"][0]["status"], "fail");
    let (status, body) = gate.get("/signals").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("add ?cluster=NAME"), "{body}");

    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_unlisted_or_missing_is_refused_naming_what_to_use() {
    let prom = TestPrometheus::start(&data());
    let (_dir, config) = config(prom.url(), FLEET);
    let gate = TestGate::start(config).await;
    gate.ready().await;

    let (status, body) = gate.get("/gate/istio?cluster=c9").await;
    assert_eq!(status, 404, "{body}");
    let v = json(&body);
    assert_eq!(v["error"], "unknown cluster \"c9\"; known: c1, c2, c3, c4");
    assert_eq!(v["clusters"], serde_json::json!(["c1", "c2", "c3", "c4"]));
    for path in ["/gate/istio?wave=third", "/waves/third"] {
        let (status, body) = gate.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(
            json(&body)["error"],
            "unknown wave \"third\"; known: first, second",
            "{path}"
        );
    }
    let (status, body) = gate.get("/gate/nope?cluster=c1").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        json(&body)["phases"],
        serde_json::json!(["istio", "nodes", "all"])
    );

    for path in ["/gate/istio", "/gate", "/gate/istio?status=always-200"] {
        let (status, body) = gate.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body.contains("fleet mode: say whose verdict: add ?cluster=NAME or ?wave=NAME"),
            "{path}: {body}"
        );
    }
    let (status, body) = gate.get("/gate/istio?cluster=c1&wave=first").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not both"), "{body}");
    let (status, body) = gate.get("/gate/istio?cluster=c1&cluster=c2").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("given twice"), "{body}");

    // All phases of one cluster, and a name that needs percent-decoding is still a name.
    let (status, body) = gate.get("/gate?cluster=c1").await;
    assert_eq!((status, json(&body)["phase"].as_str()), (200, Some("all")));
    assert_eq!(gate.get("/gate/istio?cluster=%63%31").await.0, 200);
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagger_names_the_cluster_or_wave_in_its_metadata() {
    let prom = TestPrometheus::start(&data());
    let (_dir, config) = config(prom.url(), FLEET);
    let gate = TestGate::start(config).await;
    gate.ready().await;

    let (status, body) = flagger(&gate, "/gate", r#"{"phase":"istio","cluster":"c1"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["cluster"], "c1");
    let (status, body) = flagger(&gate, "/gate", r#"{"phase":"istio","cluster":"c2"}"#).await;
    assert_eq!(status, 403, "{body}");
    let v = json(&body);
    assert_eq!(
        (v["cluster"].as_str(), v["decision"].as_str()),
        (Some("c2"), Some("no_go"))
    );
    let (status, body) = flagger(&gate, "/gate", r#"{"phase":"nodes","wave":"first"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["wave"], "first");
    let (status, body) = flagger(&gate, "/gate/istio", r#"{"wave":"first"}"#).await;
    assert_eq!(status, 403, "{body}");
    // The query string names the cluster as well as the metadata does.
    let (status, body) = flagger(&gate, "/gate/istio?cluster=c1", "{}").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = flagger(&gate, "/gate/istio?cluster=c2&status=always-200", "{}").await;
    assert_eq!(
        (status, json(&body)["decision"].as_str()),
        (200, Some("no_go"))
    );
    let (status, body) = flagger(&gate, "/gate/istio", r#"{"owner":"team-a"}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("metadata.cluster or metadata.wave"), "{body}");
    let (status, body) = flagger(&gate, "/gate", r#"{"phase":"istio","cluster":"c9"}"#).await;
    assert_eq!(status, 404, "{body}");
    gate.stop().await;
}

/// Without a `fleet` section, a cluster or wave asked for is a mistake to point out, not a
/// parameter to ignore: the answer would be the whole store's, not that cluster's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_cluster_gate_refuses_fleet_parameters() {
    let prom = TestPrometheus::start(&data());
    let (_dir, config) = config(prom.url(), "");
    let gate = TestGate::start(config).await;
    gate.ready().await;

    assert_eq!(gate.get("/gate/nodes").await.0, 200);
    let (status, body) = flagger(&gate, "/gate/nodes", r#"{"cluster":"c1"}"#).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("this gate has no fleet section"), "{body}");
    let (status, body) = flagger(&gate, "/gate/nodes", r#"{"owner":"x"}"#).await;
    assert_eq!(status, 200, "{body}");
    for path in [
        "/gate/nodes?cluster=c1",
        "/gate?wave=first",
        "/signals?cluster=c1",
    ] {
        let (status, body) = gate.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("no fleet section"), "{path}: {body}");
    }
    for path in ["/fleet", "/waves/first"] {
        let (status, body) = gate.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body.contains("this gate has no fleet section"),
            "{path}: {body}"
        );
    }
    gate.stop().await;
}
