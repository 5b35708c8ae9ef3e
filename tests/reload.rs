//! Hot reload: SIGHUP and `POST /-/reload` re-read the config and signal files; a bad new config
//! is rejected with the reason logged, and the old one keeps running.

mod common;

use std::time::{Duration, Instant};

use common::data::{around, now, OpenMetrics};
use common::gate::free_port;
use common::prometheus::TestPrometheus;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn data() -> String {
    let t = now();
    OpenMetrics::new()
        .gauge("mesh_5xx", r#"destination_service="a""#, around(t), |_| {
            Some(0.1)
        })
        .gauge(
            "launch_failures",
            r#"nodepool="default""#,
            around(t),
            |_| Some(0.0),
        )
        .render()
}

fn config(prometheus: &str, listen: &str, endpoint: bool, phases: &str) -> String {
    format!(
        r#"prometheus: {{url: "{prometheus}"}}
evaluation: {{interval: 1s}}
server: {{listen: "{listen}", enable_reload_endpoint: {endpoint}}}
signal_files: ["signals/*.yaml"]
phases: {phases}
"#
    )
}

const ISTIO_ONLY: &str =
    "signals:\n  - {name: mesh_5xx, query: mesh_5xx, fail: \"> 1\", phases: [istio]}\n";
const KARPENTER_ONLY: &str = "signals:\n  - {name: launch_failures, query: launch_failures, fail: \"> 0\", phases: [karpenter]}\n";
const WITH_KARPENTER: &str = "signals:\n  - {name: mesh_5xx, query: mesh_5xx, fail: \"> 1\", phases: [istio]}\n  - {name: launch_failures, query: launch_failures, fail: \"> 0\", phases: [karpenter]}\n";

fn get(base: &str, path: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

fn poll(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_and_a_bad_config_keeps_the_old_one() {
    let prom = TestPrometheus::start(&data());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    let path = dir.path().join("gate.yaml");
    std::fs::create_dir(dir.path().join("signals")).unwrap();
    let signals = dir.path().join("signals/pack.yaml");
    std::fs::write(&path, config(prom.url(), &listen, false, "[{name: istio}]")).unwrap();
    std::fs::write(&signals, ISTIO_ONLY).unwrap();
    let log_path = dir.path().join("stderr.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_upgrade-gate"))
        .args(["serve", "--config"])
        .arg(&path)
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let logs = || std::fs::read_to_string(&log_path).unwrap();
    let hup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };

    poll("ready", || {
        std::net::TcpStream::connect(&listen).is_ok() && get(&base, "/readyz").0 == 200
    });
    assert_eq!(get(&base, "/gate/karpenter").0, 404);

    // A new phase in the config and a new signal in a signal file; and a cluster section, which
    // only a restart applies.
    let cluster = format!(
        "cluster: {{listen: \"127.0.0.1:{}\", insecure: true}}\n",
        free_port()
    );
    std::fs::write(
        &path,
        config(
            prom.url(),
            &listen,
            false,
            "[{name: istio}, {name: karpenter}]",
        ) + &cluster,
    )
    .unwrap();
    std::fs::write(&signals, WITH_KARPENTER).unwrap();
    hup();
    poll("the new phase", || get(&base, "/gate/karpenter").0 == 200);
    assert!(logs().contains("configuration reloaded"), "{}", logs());
    assert!(
        logs().contains("cluster changed; the gossip keeps its old settings until a restart"),
        "{}",
        logs()
    );
    poll("the new signal's metrics", || {
        get(&base, "/metrics")
            .1
            .contains("upgrade_gate_signal_value{signal=\"launch_failures\"}")
    });

    // A broken signal file: rejected, logged with the file and key, the running config stays.
    std::fs::write(
        &signals,
        "signals:\n  - {name: mesh_5xx, query: 'sum(', fail: \"> 1\"}\n",
    )
    .unwrap();
    hup();
    poll("the rejection", || {
        logs().contains("configuration reload rejected")
    });
    let log = logs();
    assert!(
        log.contains("signal \\\"mesh_5xx\\\": key `query`: invalid PromQL"),
        "{log}"
    );
    assert_eq!(
        get(&base, "/gate/karpenter").0,
        200,
        "the old config keeps running"
    );
    poll("a later evaluation", || {
        let (_, body) = get(&base, "/gate/istio");
        serde_json::from_str::<Value>(&body)
            .map(|v| v["decision"] == "go")
            .unwrap_or(false)
    });
    // A phase that a reload removes is unknown at once, though it was known at start (and so had
    // a route of its own, not the `{phase}` one).
    std::fs::write(
        &path,
        config(prom.url(), &listen, false, "[{name: karpenter}]"),
    )
    .unwrap();
    std::fs::write(&signals, KARPENTER_ONLY).unwrap();
    hup();
    poll("the removed phase", || get(&base, "/gate/istio").0 == 404);
    let (status, body) = get(&base, "/gate/istio");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains(r#""phases":["karpenter","all"]"#), "{body}");
    assert_eq!(get(&base, "/gate/karpenter").0, 200);

    // The endpoint is off unless enabled.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{base}/-/reload"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 404);

    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reload_endpoint_answers_with_the_outcome() {
    let prom = TestPrometheus::start(&data());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::create_dir(dir.path().join("signals")).unwrap();
    let signals = dir.path().join("signals/pack.yaml");
    std::fs::write(
        &path,
        config(prom.url(), "127.0.0.1:0", true, "[{name: istio}]"),
    )
    .unwrap();
    std::fs::write(&signals, ISTIO_ONLY).unwrap();
    let loaded = upgrade_gate::config::load(Some(&path)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(upgrade_gate::server::serve(
        loaded,
        listener,
        std::future::pending(),
    ));
    let client = reqwest::Client::new();

    std::fs::write(&path, config_with_bad_phase(prom.url())).unwrap();
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"],
        "the new configuration was rejected; the running one stays"
    );
    let problem = body["problems"][0].as_str().unwrap();
    assert!(
        problem.contains("gate.yaml: key `phases[1].min_score`: 500 must be between 0 and 100"),
        "{problem}"
    );

    // A fleet section turns the running gate into a fleet gate: verdicts are asked per cluster
    // or wave, and a listed cluster without series is unknown, never go.
    let fleet = "fleet: {waves: [{name: w, clusters: [c1, c2]}]}\n";
    std::fs::write(
        &path,
        config(prom.url(), "127.0.0.1:0", true, "[{name: istio}]") + fleet,
    )
    .unwrap();
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{base}/gate/istio"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("add ?cluster=NAME or ?wave=NAME"),
        "{body}"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let r = client
            .get(format!("{base}/gate/istio?cluster=c1"))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        if body.contains("no data from cluster c1") {
            assert_eq!(status, 503, "{body}");
            assert!(body.contains(r#""cluster":"c1""#), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "c1 never judged: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    std::fs::write(
        &path,
        config(
            prom.url(),
            "127.0.0.1:0",
            true,
            "[{name: istio}, {name: karpenter}]",
        ),
    )
    .unwrap();
    std::fs::write(&signals, WITH_KARPENTER).unwrap();
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "reloaded");
    let deadline = Instant::now() + WAIT;
    loop {
        let status = client
            .get(format!("{base}/gate/karpenter"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "karpenter never served: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config_with_bad_phase(prometheus: &str) -> String {
    config(
        prometheus,
        "127.0.0.1:0",
        true,
        "[{name: istio}, {name: karpenter, min_score: 500}]",
    )
}
