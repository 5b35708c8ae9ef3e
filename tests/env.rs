//! `UPGRADE_GATE__...` environment overrides as a pipeline or a Kubernetes Secret sets them: the
//! real binary, a real Prometheus behind a loopback proxy that records what it is sent. Text
//! stays text (a token `007` is not the number 7), numbers and booleans still parse, and a bad
//! one names its variable.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::data::{around, now, OpenMetrics};
use common::prometheus::TestPrometheus;
use common::proxy::{proxy, Proxy};

/// Values that look like numbers or booleans, or hold spaces: each must arrive as written.
const TRICKY: [&str; 6] = ["007", "1e3", "true", "12.50", "0x10", "two  spaces"];

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_upgrade-gate"));
    // The test decides the environment; a developer's own overrides must not leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("UPGRADE_GATE__") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs the binary off the runtime's threads (the proxy answers on them).
async fn run(mut cmd: Command) -> (i32, String) {
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().expect("exited"), text)
}

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("gate.yaml");
    std::fs::write(
        &path,
        r#"
prometheus: {url: "http://127.0.0.1:9", timeout: 5s}
phases: [{name: p}]
signals: [{name: mesh_5xx, query: mesh_5xx, fail: "> 1"}]
"#,
    )
    .unwrap();
    path
}

fn prometheus() -> TestPrometheus {
    TestPrometheus::start(
        &OpenMetrics::new()
            .gauge("mesh_5xx", r#"service="a""#, around(now()), |_| Some(0.1))
            .render(),
    )
}

/// Every request since the last call carried each `name: value` exactly, and there was one.
fn every_request_carried(r: &Proxy, expected: &[(&str, &str)]) {
    let seen = std::mem::take(&mut *r.seen.lock().unwrap());
    assert!(!seen.is_empty(), "no request reached Prometheus");
    for headers in seen {
        for (name, value) in expected {
            let got = headers.get(*name).map(|v| v.to_str().unwrap().to_string());
            assert_eq!(got.as_deref(), Some(*value), "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_the_environment_arrive_verbatim() {
    let prom = prometheus();
    let (url, seen) = proxy(prom.url(), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let check = |vars: [(&str, &str); 2]| {
        let mut cmd = bin();
        cmd.env("UPGRADE_GATE__PROMETHEUS__URL", &url)
            .envs(vars)
            .args(["check", "--phase", "p", "--config"])
            .arg(&cfg);
        run(cmd)
    };
    for value in TRICKY {
        let (code, out) = check([
            ("UPGRADE_GATE__PROMETHEUS__BEARER_TOKEN", value),
            ("UPGRADE_GATE__PROMETHEUS__HEADERS__X-SCOPE-ORGID", value),
        ])
        .await;
        assert_eq!(code, 0, "{value:?}: {out}");
        let bearer = format!("Bearer {value}");
        every_request_carried(
            &seen,
            &[("authorization", &bearer), ("x-scope-orgid", value)],
        );

        // Basic auth: both the name and the password are text.
        let (code, out) = check([
            ("UPGRADE_GATE__PROMETHEUS__BASIC_AUTH__USERNAME", value),
            ("UPGRADE_GATE__PROMETHEUS__BASIC_AUTH__PASSWORD", value),
        ])
        .await;
        assert_eq!(code, 0, "{value:?}: {out}");
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{value}:{value}"));
        every_request_carried(&seen, &[("authorization", &format!("Basic {basic}"))]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_and_booleans_from_the_environment_parse_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let validate = |vars: &[(&str, &str)]| {
        let mut cmd = bin();
        cmd.envs(vars.iter().copied())
            .args(["validate", "--config"])
            .arg(&cfg);
        run(cmd)
    };
    let (code, out) = validate(&[
        ("UPGRADE_GATE__EVALUATION__CONCURRENCY", "3"),
        ("UPGRADE_GATE__EVALUATION__MAX_SERIES", "500"),
        ("UPGRADE_GATE__SERVER__ENABLE_RELOAD_ENDPOINT", "true"),
        ("UPGRADE_GATE__SERVER__MAX_BODY_BYTES", "0"),
        ("UPGRADE_GATE__ALERTS__SEND_RESOLVED", "False"),
        (
            "UPGRADE_GATE__PROMETHEUS__TLS__INSECURE_SKIP_VERIFY",
            "false",
        ),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    // A count of zero still breaks its rule, as in the file.
    let (code, out) = validate(&[("UPGRADE_GATE__EVALUATION__CONCURRENCY", "0")]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("key `evaluation.concurrency`: 0 must be at least 1"),
        "{out}"
    );

    let file = cfg.display().to_string();
    for (variable, key, value, what) in [
        (
            "UPGRADE_GATE__EVALUATION__CONCURRENCY",
            "evaluation.concurrency",
            "abc",
            "a whole number",
        ),
        // Not silently 1000, 3 or 1.
        (
            "UPGRADE_GATE__EVALUATION__CONCURRENCY",
            "evaluation.concurrency",
            "1e3",
            "a whole number",
        ),
        (
            "UPGRADE_GATE__ALERTS__QUEUE_CAPACITY",
            "alerts.queue_capacity",
            "2.5",
            "a whole number",
        ),
        (
            "UPGRADE_GATE__SERVER__MAX_CONNECTIONS",
            "server.max_connections",
            "yes",
            "a whole number",
        ),
        (
            "UPGRADE_GATE__SERVER__ENABLE_RELOAD_ENDPOINT",
            "server.enable_reload_endpoint",
            "maybe",
            "a boolean",
        ),
    ] {
        let (code, out) = validate(&[(variable, value)]).await;
        assert_eq!(code, 2, "{variable}={value}: {out}");
        let expected =
            format!("{file}: key `{key}`: environment variable {variable} is not {what}");
        assert!(out.contains(&expected), "{variable}={value}: {out}");
        // The value is not repeated: the same path serves secrets.
        assert!(!out.contains(&format!("\"{value}\"")), "{out}");
    }
}
