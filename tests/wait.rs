//! `upgrade-gate wait` as a pipeline step runs it: against a live daemon whose data turns healthy,
//! against one that stays no-go, with a wrong phase, with nothing listening, and locally.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::data::{fleet_mesh_5xx, mesh_5xx_switching, now};
use common::gate::{free_port, TestGate};
use common::prometheus::TestPrometheus;
use common::tls::certificates;
use upgrade_gate::config;

/// `mesh_5xx` failing until `recover` (unix seconds), healthy after; one sample a second.
fn recovering_data(recover: i64) -> String {
    mesh_5xx_switching(recover, 2.5, 0.1).render()
}

fn write_config(dir: &std::path::Path, prometheus: &str) -> std::path::PathBuf {
    let path = dir.join("gate.yaml");
    std::fs::write(
        &path,
        format!(
            "prometheus: {{url: \"{prometheus}\", timeout: 2s}}\nevaluation: {{interval: 1s}}\nphases: [{{name: istio}}]\nsignals:\n  - {{name: mesh_5xx, query: mesh_5xx, fail: \"> 1\", critical: true}}\n"
        ),
    )
    .unwrap();
    path
}

/// Serves the config in-process on port 0.
async fn serve(path: &std::path::Path) -> TestGate {
    TestGate::start(config::load(Some(path)).unwrap()).await
}

async fn run_wait(args: Vec<String>) -> (i32, String, String) {
    run_wait_with(args, &[]).await
}

/// `upgrade-gate` with `args`, with `env` added to its environment.
async fn run_wait_with(args: Vec<String>, env: &[(&str, String)]) -> (i32, String, String) {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_upgrade-gate"))
            .args(args)
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        status.code().unwrap(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `wait --phase P --server BASE --timeout T --interval 1s`.
async fn wait_on(base: &str, phase: &str, timeout: &str) -> (i32, String, String) {
    wait_via(phase, &["--server", base], timeout).await
}

/// `wait --phase P <how> --timeout T --interval 1s`, `how` naming the gate or the config.
async fn wait_via(phase: &str, how: &[&str], timeout: &str) -> (i32, String, String) {
    let mut list = vec!["wait", "--phase", phase];
    list.extend_from_slice(how);
    list.extend_from_slice(&["--timeout", timeout, "--interval", "1s"]);
    run_wait(args(&list)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_until_the_phase_turns_go() {
    let recover = chrono::Utc::now().timestamp() + 4;
    let prom = TestPrometheus::start(&recovering_data(recover));
    let dir = tempfile::tempdir().unwrap();
    let gate = serve(&write_config(dir.path(), prom.url())).await;
    let base = &gate.base;
    let (code, out, err) = wait_on(base, "istio", "60s").await;
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    // Plain lines (stdout is not a terminal), no-go first, then go; a line only when the answer
    // changes, so no two lines in a row say the same after their clock.
    assert!(lines.len() >= 3, "{out}");
    assert!(
        lines.windows(2).all(|w| w[0].get(9..) != w[1].get(9..)),
        "{out}"
    );
    assert!(
        !out.contains('\r'),
        "no live line rewriting outside a terminal"
    );
    // Unknown before the first evaluation, then no-go (failing) until the data recovers.
    let before = &lines[..lines.len() - 2];
    assert!(
        before.iter().all(|l| l.contains(" istio NO-GO")
            || l.contains(" istio UNKNOWN: no evaluation has finished yet")),
        "{out}"
    );
    assert!(
        before
            .iter()
            .any(|l| l.contains("critical signal \"mesh_5xx\" is fail")),
        "{out}"
    );
    assert!(
        lines[lines.len() - 2].contains(" istio GO score 100/90"),
        "{out}"
    );
    assert_eq!(lines[lines.len() - 1], "phase istio is go");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_out_no_go_with_exit_1() {
    let prom = TestPrometheus::start(&recovering_data(i64::MAX));
    let dir = tempfile::tempdir().unwrap();
    let gate = serve(&write_config(dir.path(), prom.url())).await;
    let base = &gate.base;
    let started = std::time::Instant::now();
    let (code, out, err) = wait_on(base, "istio", "3s").await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("phase istio still no-go after 3s"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(
        out.lines().all(|l| l.contains(" istio NO-GO")
            || l.contains(" istio UNKNOWN: no evaluation has finished")),
        "{out}"
    );
}

/// A gate whose Prometheus is down answers unknown: waited on like a no-go, printed UNKNOWN, and
/// exit 2 at the timeout (it could not tell), through a server and locally alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_answer_is_waited_on_and_ends_in_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &format!("http://127.0.0.1:{}", free_port()));
    let gate = serve(&path).await;
    gate.ready().await;
    let (code, out, err) = wait_on(&gate.base, "istio", "3s").await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("phase istio still unknown after 3s"), "{err}");
    assert!(out.lines().all(|l| l.contains(" istio UNKNOWN")), "{out}");
    assert!(out.contains("is unreachable"), "{out}");

    let config = path.display().to_string();
    let (code, out, err) = wait_via("istio", &["--config", &config], "2s").await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("phase istio still unknown after 2s"), "{err}");
    assert!(out.lines().all(|l| l.contains(" istio UNKNOWN")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_phase_or_no_server_is_exit_2() {
    let prom = TestPrometheus::start(&recovering_data(0));
    let dir = tempfile::tempdir().unwrap();
    let gate = serve(&write_config(dir.path(), prom.url())).await;
    let base = &gate.base;
    let started = std::time::Instant::now();
    let (code, out, err) = wait_on(base, "nope", "60s").await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("unknown phase \"nope\""), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no waiting for a phase that cannot exist"
    );

    let nothing = format!("http://127.0.0.1:{}", free_port());
    let (code, out, err) = wait_on(&nothing, "istio", "2s").await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("ERROR: cannot reach"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluates_locally_with_a_config() {
    let prom = TestPrometheus::start(&recovering_data(0));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), prom.url());
    let (code, out, err) = run_wait(vec![
        "wait".into(),
        "--phase".into(),
        "istio".into(),
        "--config".into(),
        path.display().to_string(),
        "--timeout".into(),
        "10s".into(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .next()
            .unwrap()
            .contains(" istio GO score 100/90"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_a_gate_behind_tls_and_a_token() {
    let prom = TestPrometheus::start(&recovering_data(0));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let token = d.join("token");
    std::fs::write(&token, "pipeline-t0ken\n").unwrap();
    let path = write_config(d, prom.url());
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "server:\n  tls: {{cert_file: \"{}\", key_file: \"{}\"}}\n  auth: {{bearer_token_file: \"{}\"}}\n",
        d.join("server.pem").display(),
        d.join("server.key").display(),
        token.display()
    ));
    std::fs::write(&path, text).unwrap();
    let gate = serve(&path).await;
    assert!(gate.base.starts_with("https://"));
    // The runner trusts the private CA the way curl and most tools do.
    let env = [("SSL_CERT_FILE", d.join("ca.pem").display().to_string())];
    let wait = |extra: &[&str]| {
        let mut list = vec![
            "wait",
            "--phase",
            "istio",
            "--server",
            &gate.base,
            "--timeout",
            "3s",
            "--interval",
            "1s",
        ];
        list.extend_from_slice(extra);
        run_wait_with(args(&list), &env)
    };
    let token_arg = token.display().to_string();
    let (code, out, err) = wait(&["--token-file", &token_arg]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" istio GO score 100/90"), "{out}");

    // Without the token: refused every time, which is an error (exit 2), never a go.
    let (code, out, err) = wait(&[]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("refused the token (401)"), "{out}");
    let (code, _, err) = wait(&["--token-file", "/nonexistent/token"]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read --token-file /nonexistent/token"),
        "{err}"
    );
    assert!(!format!("{out}{err}").contains("pipeline-t0ken"));
}

/// A fleet config on `prometheus`: canary `c1` and `c2`, then prod `c3` after a 10m soak.
fn write_fleet_config(dir: &std::path::Path, prometheus: &str) -> std::path::PathBuf {
    let path = dir.join("fleet.yaml");
    std::fs::write(
        &path,
        format!(
            "prometheus: {{url: \"{prometheus}\", timeout: 2s}}\nevaluation: {{interval: 15s}}\nphases: [{{name: istio}}]\nsignals:\n  - {{name: mesh_5xx, query: mesh_5xx, fail: \"> 1\", critical: true}}\nfleet:\n  waves:\n    - {{name: canary, clusters: [c1, c2]}}\n    - {{name: prod, clusters: [c3], soak: 10m}}\n"
        ),
    )
    .unwrap();
    path
}

/// `wait` asking `target` (`--config F` or `--server URL`) about `fleet` (`--cluster C --phase P`,
/// ...), polling every second.
fn wait_in_fleet(
    target: [&str; 2],
    fleet: &[&str],
    timeout: &str,
) -> impl std::future::Future<Output = (i32, String, String)> {
    let mut list = vec!["wait", target[0], target[1], "--timeout", timeout];
    list.extend_from_slice(&["--interval", "1s"]);
    list.extend_from_slice(fleet);
    run_wait(args(&list))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_a_cluster_or_a_wave_of_a_fleet_locally() {
    let t = now();
    let prom =
        TestPrometheus::start(&fleet_mesh_5xx(t, &["c1", "c2", "c3"], "c2", t - 600).render());
    let dir = tempfile::tempdir().unwrap();
    let path = write_fleet_config(dir.path(), prom.url())
        .display()
        .to_string();
    let wait = |fleet: &[&str], timeout: &str| wait_in_fleet(["--config", &path], fleet, timeout);

    let (code, out, err) = wait(&["--cluster", "c1", "--phase", "istio"], "10s").await;
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains(" cluster c1 istio GO score 100/90"),
        "{out}"
    );
    assert_eq!(lines[lines.len() - 1], "cluster c1, phase istio is go");

    // c2 fails in the same store: its own answer is no-go until the timeout (exit 1).
    let started = std::time::Instant::now();
    let (code, out, err) = wait(&["--cluster", "c2", "--phase", "istio"], "3s").await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("cluster c2, phase istio still no-go after 3s"),
        "{err}"
    );
    assert!(
        out.lines().all(|l| l.contains(" cluster c2 istio NO-GO")),
        "{out}"
    );
    assert!(
        out.contains("critical signal \"mesh_5xx\" is fail"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // The wave holding c2 is no-go; the next one may not start.
    let (code, out, err) = wait(&["--wave", "canary", "--phase", "istio"], "2s").await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(" wave canary istio NO-GO"), "{out}");
    assert!(out.contains("cluster c2: critical signal"), "{out}");
    let (code, out, err) = wait(&["--start-wave", "prod"], "2s").await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(" wave prod start NO-GO"), "{out}");
    assert!(
        out.contains("cluster c2 (wave canary) is no_go for istio"),
        "{out}"
    );
    assert!(
        err.contains("wave prod still may not start after 2s"),
        "{err}"
    );
    let (code, out, err) = wait(&["--start-wave", "canary"], "10s").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("wave canary may start\n"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_a_fleet_gate_for_a_cluster_a_wave_and_a_wave_s_start() {
    let t = now();
    let prom =
        TestPrometheus::start(&fleet_mesh_5xx(t, &["c1", "c2", "c3"], "c2", t - 600).render());
    let dir = tempfile::tempdir().unwrap();
    let gate = serve(&write_fleet_config(dir.path(), prom.url())).await;
    gate.ready().await;
    let wait =
        |fleet: &[&str], timeout: &str| wait_in_fleet(["--server", &gate.base], fleet, timeout);
    let (code, out, err) = wait(&["--cluster", "c1", "--phase", "istio"], "10s").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("cluster c1, phase istio is go\n"), "{out}");
    let (code, out, err) = wait(&["--cluster", "c2", "--phase", "istio"], "2s").await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(" cluster c2 istio NO-GO"), "{out}");
    assert!(
        out.contains("critical signal \"mesh_5xx\" is fail"),
        "{out}"
    );
    let (code, out, err) = wait(&["--wave", "canary", "--phase", "istio"], "2s").await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(" wave canary istio NO-GO"), "{out}");
    let (code, out, err) = wait(&["--start-wave", "prod"], "2s").await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(" wave prod start NO-GO"), "{out}");
    assert!(
        err.contains("wave prod still may not start after 2s"),
        "{err}"
    );
    let (code, out, err) = wait(&["--start-wave", "canary"], "10s").await;
    assert_eq!(code, 0, "{out}{err}");

    // What waiting cannot fix ends at once (exit 2): an unlisted cluster (404), no cluster or
    // wave on a fleet gate (400).
    let started = std::time::Instant::now();
    let (code, out, err) = wait(&["--cluster", "c9", "--phase", "istio"], "60s").await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("unknown cluster \"c9\""), "{out}");
    let (code, out, err) = wait(&["--phase", "istio"], "60s").await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("?cluster="), "{out}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
