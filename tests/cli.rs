//! The `upgrade-gate` binary as a pipeline runs it: exit codes, output formats, config errors.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::data::{around, fleet_mesh_5xx, now, rfc3339, OpenMetrics};
use common::gate::free_port;
use common::prometheus::TestPrometheus;
use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_upgrade-gate"));
    // The tests decide the environment; a developer's own overrides must not leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("UPGRADE_GATE__") {
            c.env_remove(k);
        }
    }
    c
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the binary runs");
    (
        status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Runs `cmd` with its standard output a pipe that nobody reads any more, as `| head` leaves it
/// once it has its lines: (exit code, stderr).
fn run_into_a_closed_pipe(cmd: &mut Command) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let Output { status, stderr, .. } = cmd.stdout(writer).output().expect("the binary runs");
    let code = status.code().expect("exited, not killed");
    (code, String::from_utf8_lossy(&stderr).into_owned())
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// Failing `mesh_5xx` for the last 10 minutes on one service; healthy before.
fn breach_data(t: i64) -> String {
    OpenMetrics::new()
        .gauge(
            "mesh_5xx",
            r#"destination_service="reviews""#,
            around(t),
            |ts| Some(if ts >= t - 600 { 2.5 } else { 0.1 }),
        )
        .gauge("ok_metric", r#"job="x""#, around(t), |_| Some(0.0))
        .render()
}

const PACK: &str = r#"
evaluation: {interval: 30s}
phases:
  - {name: istio, min_score: 90}
  - {name: addons, min_score: 90}
signals:
  - name: mesh_5xx
    query: mesh_5xx
    warn: "> 0.5"
    fail: "> 1"
    for: 2m
    critical: true
    phases: [istio]
    runbook: "relabel namespaces to the old revision"
  - {name: steady, query: ok_metric, fail: "> 1", phases: [addons, istio]}
"#;

fn gate_config(dir: &Path, url: &str) -> std::path::PathBuf {
    write(
        dir,
        "gate.yaml",
        &format!("prometheus: {{url: \"{url}\", timeout: 2s}}\n{PACK}"),
    )
}

#[test]
fn check_exit_codes_follow_the_decision() {
    let t = now();
    let prom = TestPrometheus::start(&breach_data(t));
    let dir = tempfile::tempdir().unwrap();
    let cfg = gate_config(dir.path(), prom.url());
    let at = chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();

    let (code, out, err) = run(bin()
        .args(["check", "--phase", "addons", "--at", &at, "--config"])
        .arg(&cfg));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("phase addons: GO"), "{out}");

    let (code, out, _) = run(bin()
        .args(["check", "--phase", "istio", "--at", &at, "--config"])
        .arg(&cfg));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("phase istio: NO-GO"), "{out}");
    assert!(
        out.contains("critical signal \"mesh_5xx\" is fail"),
        "{out}"
    );
    assert!(out.contains("Runbook: relabel namespaces"), "{out}");
    // A reader that has gone (`| head`) changes nothing of the answer, and panics nothing.
    let (code, err) = run_into_a_closed_pipe(
        bin()
            .args(["check", "--phase", "istio", "--at", &at, "--config"])
            .arg(&cfg),
    );
    assert_eq!((code, err.as_str()), (1, ""));
    // The table: header, then the worst signal first.
    let table: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("SIGNAL"))
        .collect();
    assert!(
        table[1].starts_with("mesh_5xx *") && table[1].contains("fail"),
        "{out}"
    );
    assert!(
        table[1].contains("destination_service=\"reviews\"}"),
        "{out}"
    );

    // Half an hour earlier the same phase was healthy: `--at` evaluates the past.
    let before = chrono::DateTime::from_timestamp(t - 1800, 0)
        .unwrap()
        .to_rfc3339();
    let (code, out, _) = run(bin()
        .args(["check", "--phase", "istio", "--at", &before, "--config"])
        .arg(&cfg));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_json_has_the_documented_shape() {
    let t = now();
    let prom = TestPrometheus::start(&breach_data(t));
    let dir = tempfile::tempdir().unwrap();
    let cfg = gate_config(dir.path(), prom.url());
    let at = chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
    let (code, out, err) = run(bin()
        .args([
            "check", "--phase", "istio", "--output", "json", "--at", &at, "--config",
        ])
        .arg(&cfg));
    assert_eq!(code, 1, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["phase"], "istio");
    assert_eq!(v["decision"], "no_go");
    assert_eq!(v["score"], 50.0);
    assert_eq!(v["min_score"], 90.0);
    assert_eq!(v["evaluated_at"], at.replace("+00:00", "Z"));
    assert!(v["stable_since"].is_null());
    assert!(v["reasons"][0].as_str().unwrap().contains("mesh_5xx"));
    let s = &v["signals"][0];
    assert_eq!(s["name"], "mesh_5xx");
    assert_eq!(s["status"], "fail");
    assert_eq!(s["value"], 2.5);
    assert_eq!(s["warn"], "> 0.5");
    assert_eq!(s["fail"], "> 1");
    assert_eq!(s["query"], "mesh_5xx");
    assert_eq!(
        s["offenders"][0]["labels"]["destination_service"],
        "reviews"
    );
    assert_eq!(s["offenders"][0]["value"], 2.5);
    assert_eq!(v["signals"][1]["name"], "steady");
    assert_eq!(v["signals"][1]["status"], "ok");
}

#[test]
fn check_cannot_evaluate_exits_2_and_says_unknown() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    // Credentials in the URL must not leak into answers or logs.
    let cfg = gate_config(dir.path(), &format!("http://gate:s3cr3t@127.0.0.1:{port}"));
    let (code, out, err) = run(bin()
        .args(["check", "--phase", "istio", "--output", "json", "--config"])
        .arg(&cfg));
    assert_eq!(code, 2);
    assert!(
        !out.contains("s3cr3t") && !err.contains("s3cr3t"),
        "{out}{err}"
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "unknown");
    assert_eq!(v["signals"][0]["status"], "error");
    let (code, out, _) = run(bin()
        .args(["check", "--phase", "istio", "--config"])
        .arg(&cfg));
    assert_eq!(code, 2);
    assert!(
        out.starts_with("phase istio: UNKNOWN  score 0 (min 90)"),
        "{out}"
    );

    let (code, _, err) = run(bin()
        .args(["check", "--phase", "nope", "--config"])
        .arg(&cfg));
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown phase \"nope\"; known phases: istio, addons, all"),
        "{err}"
    );

    let (code, _, err) = run(bin().args(["check", "--output", "xml"]));
    assert_eq!(code, 2, "bad usage");
    assert!(err.contains("xml"), "{err}");
    let (code, _, err) = run(bin().args(["check", "--at", "yesterday"]));
    assert_eq!(code, 2);
    assert!(err.contains("not an RFC 3339 time"), "{err}");
}

#[test]
fn an_unreachable_prometheus_is_said_once() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = gate_config(dir.path(), &format!("http://gate:s3cr3t@127.0.0.1:{port}"));
    let (code, out, err) = run(bin()
        .args(["check", "--phase", "istio", "--config"])
        .arg(&cfg));
    assert_eq!(code, 2, "{out}{err}");
    let reasons: Vec<&str> = out.lines().filter(|l| l.starts_with("  - ")).collect();
    // The cause once, naming the server without its credentials; the phase is unknown, so no
    // score reason: the score is short only by what could not be evaluated.
    assert_eq!(reasons.len(), 1, "{out}");
    assert!(
        reasons[0].starts_with(&format!(
            "  - Prometheus at http://127.0.0.1:{port} is unreachable: "
        )),
        "{out}"
    );
    assert!(
        reasons[0].ends_with("(2 signals could not be evaluated: mesh_5xx, steady)"),
        "{out}"
    );
    assert!(!out.contains("min_score 90"), "{out}");
    // The runbook is about the signal's own failure, not about reaching Prometheus.
    assert!(!out.contains("relabel namespaces"), "{out}");
    assert_eq!(out.matches("is unreachable").count(), 1, "{out}");
    assert!(!out.contains("s3cr3t") && !err.contains("s3cr3t"));

    // The JSON keeps the error on every signal.
    let (_, out, _) = run(bin()
        .args(["check", "--phase", "istio", "--output", "json", "--config"])
        .arg(&cfg));
    let v: Value = serde_json::from_str(&out).unwrap();
    for s in v["signals"].as_array().unwrap() {
        assert!(
            s["error"].as_str().unwrap().contains("is unreachable"),
            "{s}"
        );
    }
}

#[test]
fn help_says_which_config_is_read_and_logs_are_plain_off_a_terminal() {
    for command in ["serve", "check", "wait", "replay", "validate"] {
        let (code, out, _) = run(bin().args([command, "--help"]));
        assert_eq!(code, 0);
        assert!(out.contains("--config <FILE>"), "{command}: {out}");
        assert!(
            out.contains("Without it, the built-in default: deploy/upgrade-gate.yaml"),
            "{command}: {out}"
        );
    }
    // `serve` on an address already taken logs an error and stops: standard error is a pipe
    // here, so the log line must carry no colour escapes.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (code, _, err) = run(bin()
        .env(
            "UPGRADE_GATE__SERVER__LISTEN",
            taken.local_addr().unwrap().to_string(),
        )
        .arg("serve"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
}

#[test]
fn environment_overrides_the_config_file() {
    let t = now();
    let prom = TestPrometheus::start(&breach_data(t));
    let dir = tempfile::tempdir().unwrap();
    // The file points at nothing; the environment points at the real Prometheus.
    let cfg = gate_config(dir.path(), "http://127.0.0.1:9");
    let (code, out, err) = run(bin()
        .env("UPGRADE_GATE__PROMETHEUS__URL", prom.url())
        .args(["check", "--phase", "addons", "--config"])
        .arg(&cfg));
    assert_eq!(code, 0, "{out}{err}");

    let (code, _, err) = run(bin()
        .env("UPGRADE_GATE__EVALUATION__CONCURRENCY", "many")
        .args(["validate", "--config"])
        .arg(&cfg));
    assert_eq!(code, 2);
    assert!(err.contains("evaluation.concurrency"), "{err}");
}

#[test]
fn validate_accepts_the_default_pack_and_the_example_config() {
    let (code, out, err) = run(bin().arg("validate"));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("valid: "), "{out}");
    assert!(
        out.contains("precheck, karpenter, istio, addons, control-plane, nodes"),
        "{out}"
    );
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/upgrade-gate.yaml");
    let (code, out2, err) = run(bin().arg("validate").arg("--config").arg(example));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, out2, "the built-in pack is the example config's pack");
    // The demos' configs: every query of the default pack kept apart per cluster for the fleet.
    for demo in ["deploy/demo/demo.yaml", "deploy/demo/fleet.yaml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(demo);
        let (code, out, err) = run(bin()
            .args(["validate", "--show-queries", "--config"])
            .arg(&path));
        assert_eq!(code, 0, "{demo}: {err}");
        assert!(
            out.starts_with("valid: 30 signals in 6 phases"),
            "{demo}: {out}"
        );
        let (code, err) = run_into_a_closed_pipe(
            bin()
                .args(["validate", "--show-queries", "--config"])
                .arg(demo),
        );
        assert_eq!((code, err.as_str()), (0, ""), "{demo} into a closed pipe");
    }
}

#[test]
fn validate_lists_every_problem_with_file_signal_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "sig/typo.yaml",
        "signals:\n  - {name: e, query: up, fail: \"> 1\", fial: \"> 2\"}\n",
    );
    write(
        d,
        "sig/type.yaml",
        "signals:\n  - {name: f, query: up, fail: \"> 1\", weight: heavy}\n",
    );
    write(
        d,
        "sig/dup.yaml",
        "signals:\n  - {name: a, query: up, fail: \"> 1\"}\n",
    );
    let cfg = write(
        d,
        "bad.yaml",
        r#"
prometheus: {url: "ftp://x", timeout: 10x}
evaluation: {interval: 500ms, concurrency: 0, query_offset: 1500ms, max_series: 0}
server: {listen: nowhere}
signal_files: ["missing/*.yaml", "sig/*.yaml"]
phases:
  - {name: istio, min_score: 120, stable_for: soon}
  - {name: istio}
  - {name: empty, min_score: 50}
  - {name: all}
  - {name: "a b"}
signals:
  - {name: a, query: 'sum(rate(x[5m])', fail: "> 1", phases: [istio]}
  - {name: b, query: up, warn: "> 2", fail: "> 1", weight: -1, no_data: maybe, phases: [nope], for: 5 parsecs}
  - {name: c, query: up, phases: [istio]}
  - {name: d, query: up, fail: "1", phases: [istio]}
  - {query: up, fail: "> 1"}
  - {name: g, query: up, warn: "< 1", fail: "> 1", phases: [istio], max_series: -3}
  - {name: h, query: up, fail: "> NaN", phases: [istio]}
  - {name: i, query: up, warn: "> 1", for: 1m, phases: [istio]}
  - {name: j, fail: "> 1", phases: []}
"#,
    );
    let (code, out, err) = run(bin().arg("validate").arg("--config").arg(&cfg));
    assert_eq!(code, 2, "{out}");
    let bad = cfg.display().to_string();
    let sig = |f: &str| d.join("sig").join(f).display().to_string();
    let expected = [
        format!("{bad}: key `signal_files`: pattern \"missing/*.yaml\" matches no file"),
        format!("{bad}: key `prometheus.url`: must be an http:// or https:// URL"),
        format!("{bad}: key `prometheus.timeout`: \"10x\" is not a duration"),
        format!("{bad}: key `evaluation.interval`: 500ms must be a whole number of seconds"),
        format!("{bad}: key `evaluation.concurrency`: 0 must be at least 1"),
        format!("{bad}: key `evaluation.query_offset`: 1s 500ms must be a whole number of seconds"),
        format!("{bad}: key `evaluation.max_series`: 0 must be at least 1"),
        format!("{bad}: key `server.listen`: \"nowhere\" is not an address"),
        format!("{bad}: key `phases[0].min_score`: 120 must be between 0 and 100"),
        format!("{bad}: key `phases[0].stable_for`: \"soon\" is not a duration"),
        format!("{bad}: key `phases[1].name`: duplicate phase \"istio\""),
        format!("{bad}: key `phases[3].name`: \"all\" is reserved"),
        format!("{bad}: key `phases[4].name`: \"a b\" may only use letters"),
        format!("{bad}: key `phases`: phase \"empty\" has no signal"),
        format!("{bad}: key `phases`: phase \"a b\" has no signal"),
        format!("{}: unknown field `fial`", sig("typo.yaml")),
        format!("{}: invalid type: string \"heavy\", expected a floating point", sig("type.yaml")),
        format!("{bad}: signal \"a\": key `query`: invalid PromQL: unclosed left parenthesis"),
        format!("{bad}: signal \"b\": key `warn`: warn > 2 must point the same way as fail > 1 and be reached first"),
        format!("{bad}: signal \"b\": key `weight`: -1 must be a number above 0"),
        format!("{bad}: signal \"b\": key `no_data`: \"maybe\" is not one of ok, warn, fail"),
        format!("{bad}: signal \"b\": key `phases`: unknown phase \"nope\""),
        format!("{bad}: signal \"b\": key `for`: \"5 parsecs\" is not a duration"),
        format!("{bad}: signal \"c\": key `fail`: a signal needs a `warn` or a `fail` threshold"),
        format!("{bad}: signal \"d\": key `fail`: \"1\" does not start with one of the operators"),
        format!("{bad}: signal \"#5\": key `name`: missing signal name"),
        format!("{bad}: signal \"g\": key `warn`: warn < 1 must point the same way as fail > 1"),
        format!("{bad}: signal \"g\": key `max_series`: -3 must be at least 1"),
        format!("{bad}: signal \"h\": key `fail`: \"NaN\" is not a finite number"),
        format!("{bad}: signal \"i\": key `for`: `for` applies to the fail threshold, but the signal has none"),
        format!("{bad}: signal \"j\": key `query`: missing PromQL query"),
        format!("{bad}: signal \"j\": key `phases`: empty list"),
        format!("{}: signal \"a\": key `name`: duplicate signal name; first defined in {bad}", sig("dup.yaml")),
    ];
    for e in &expected {
        assert!(err.contains(e.as_str()), "missing {e:?} in:\n{err}");
    }
    assert!(
        err.starts_with(&format!(
            "invalid configuration ({} problems):",
            expected.len()
        )),
        "{err}"
    );
}

#[test]
fn validate_reports_unreadable_files_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let broken = write(dir.path(), "broken.yaml", "prometheus: [\n");
    let (code, _, err) = run(bin().arg("validate").arg("--config").arg(&broken));
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{}: while parsing", broken.display())),
        "{err}"
    );
    assert!(err.contains("line 2"), "{err}");

    let missing = dir.path().join("nope.yaml");
    let (code, _, err) = run(bin().arg("validate").arg("--config").arg(&missing));
    assert_eq!(code, 2);
    assert!(err.contains("not found"), "{err}");

    let empty = write(dir.path(), "empty.yaml", "phases: [{name: p}]\n");
    let (code, _, err) = run(bin().arg("validate").arg("--config").arg(&empty));
    assert_eq!(code, 2);
    assert!(err.contains("no signal is defined"), "{err}");
}

#[test]
fn validate_checks_alert_receivers_without_echoing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write(
        d,
        "alerts.yaml",
        r#"
phases: [{name: p}]
signals: [{name: s, query: up, fail: "> 1"}]
alerts:
  repeat_interval: often
  retry_initial_backoff: 2m
  retry_max_backoff: 1m
  give_up_after: 0s
  queue_capacity: 0
  external_url: "gate:8080"
  receivers:
    - {name: a, kind: pager, url: "http://x"}
    - {name: b, kind: slack}
    - {name: c, kind: webhook, url: "http://x", url_file: /nope}
    - {name: d, kind: webhook, url: "https://${UG_SURELY_UNSET_VAR}/x"}
    - {name: e, kind: slack, url: "http://x", hmac_secret: "k"}
    - {name: e, kind: webhook, url: "not-a-url-TOKEN42"}
    - {name: f, kind: slack, url_file: /nonexistent/slack-url}
    - {kind: alertmanager, url: "http://am:9093"}
"#,
    );
    let (code, out, err) = run(bin().arg("validate").arg("--config").arg(&cfg));
    assert_eq!(code, 2, "{out}");
    let f = cfg.display().to_string();
    let expected = [
        format!("{f}: key `alerts.repeat_interval`: \"often\" is not a duration"),
        format!("{f}: key `alerts.retry_max_backoff`: must not be shorter than alerts.retry_initial_backoff"),
        format!("{f}: key `alerts.give_up_after`: must be more than 0"),
        format!("{f}: key `alerts.queue_capacity`: 0 must be at least 1"),
        format!("{f}: key `alerts.external_url`: must be an http:// or https:// URL"),
        format!("{f}: key `alerts.receivers[0].kind`: \"pager\" is not one of slack, webhook, alertmanager"),
        format!("{f}: key `alerts.receivers[1].url`: set `url` or `url_file`"),
        format!("{f}: key `alerts.receivers[2].url`: set either `alerts.receivers[2].url` or `alerts.receivers[2].url_file`, not both"),
        format!("{f}: key `alerts.receivers[3].url`: environment variable UG_SURELY_UNSET_VAR is not set"),
        format!("{f}: key `alerts.receivers[4].hmac_secret`: only webhook receivers sign their bodies"),
        format!("{f}: key `alerts.receivers[5].name`: duplicate receiver \"e\""),
        format!("{f}: key `alerts.receivers[5].url`: must be an http:// or https:// URL"),
        format!("{f}: key `alerts.receivers[6].url`: cannot read alerts.receivers[6].url_file /nonexistent/slack-url"),
        format!("{f}: key `alerts.receivers[7].name`: missing receiver name"),
    ];
    for e in &expected {
        assert!(err.contains(e.as_str()), "missing {e:?} in:\n{err}");
    }
    assert!(!err.contains("TOKEN42"), "a URL is a secret: {err}");
}

#[test]
fn validate_online_names_the_signals_whose_metrics_are_absent() {
    let t = now();
    let prom = TestPrometheus::start(
        &OpenMetrics::new()
            .gauge(
                "present_metric",
                r#"job="x""#,
                (t - 1800, t + 600, 15),
                |_| Some(1.0),
            )
            .gauge(
                "old_metric_name",
                r#"job="x""#,
                (t - 3 * 86400, t - 2 * 86400, 60),
                |_| Some(1.0),
            )
            .render(),
    );
    let dir = tempfile::tempdir().unwrap();
    let body = |signals: &str| {
        format!(
            "prometheus: {{url: \"{}\"}}\nphases: [{{name: p}}]\nsignals:\n{signals}",
            prom.url()
        )
    };
    let cfg = write(
        dir.path(),
        "gate.yaml",
        &body(
            r#"  - {name: fine, query: 'sum(rate(present_metric[5m]))', fail: "> 1"}
  - {name: renamed, query: 'old_metric_name > 0 or present_metric', fail: "> 1"}
  - {name: masked, query: 'gone_metric', fail: "> 1", no_data: ok}
"#,
        ),
    );
    let (code, out, err) = run(bin().args(["validate", "--online", "--config"]).arg(&cfg));
    assert_eq!(code, 2, "{out}{err}");
    let f = cfg.display();
    assert!(
        err.contains("2 signals query metrics that Prometheus has no series of over the last hour"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{f}: signal \"renamed\": no series of old_metric_name in Prometheus\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{f}: signal \"masked\": no series of gone_metric in Prometheus; with no_data: ok it passes while seeing nothing")),
        "{err}"
    );
    assert!(!err.contains("\"fine\""), "{err}");

    let good = write(
        dir.path(),
        "good.yaml",
        &body("  - {name: fine, query: present_metric, fail: \"> 1\"}\n"),
    );
    let (code, out, err) = run(bin().args(["validate", "--online", "--config"]).arg(&good));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("online: every metric the pack queries has series"),
        "{out}"
    );

    let (code, _, err) = run(bin()
        .env("UPGRADE_GATE__PROMETHEUS__URL", "http://127.0.0.1:9")
        .args(["validate", "--online", "--config"])
        .arg(&good));
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "cannot check metrics online: Prometheus at http://127.0.0.1:9 is unreachable"
        ),
        "{err}"
    );
}

/// The issue's fleet: three waves, one cluster in a backend of its own.
const FLEET: &str = r#"
fleet:
  waves:
    - {name: canary, clusters: [dev-euw1]}
    - {name: staging, clusters: [stg-euw1, stg-use1], soak: 30m}
    - {name: prod, clusters: [prod-euw1, prod-apne2], soak: 2h}
  backends:
    - name: apne2
      prometheus: {url: "https://aps-workspaces.ap-northeast-2.amazonaws.com/workspaces/ws-1", sigv4: {region: ap-northeast-2}}
      clusters: [prod-apne2]
"#;

#[test]
fn validate_names_the_key_of_every_fleet_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "fleet.yaml",
        &format!(
            r##"{PACK}
fleet:
  label: 2cluster
  presence: 'sum(up)'
  waves:
    - {{name: canary, clusters: [dev-euw1, stg-euw1]}}
    - {{name: staging, clusters: [stg-euw1], soak: a while}}
    - {{name: empty, clusters: []}}
    - {{name: canary, clusters: [prod-euw1]}}
    - {{name: "#5", clusters: [prod-use1]}}
    - {{clusters: [prod-apne1]}}
  backends:
    - name: apne2
      prometheus: {{url: "ftp://x", timeout: 0s}}
      clusters: [prod-apne2, dev-euw1]
    - {{name: other, clusters: [dev-euw1]}}
"##
        ),
    );
    let (code, out, err) = run(bin().arg("validate").arg("--config").arg(&cfg));
    assert_eq!(code, 2, "{out}");
    let f = cfg.display().to_string();
    let expected = [
        format!("{f}: key `fleet.label`: \"2cluster\" is not a label name"),
        format!("{f}: key `fleet.presence`: \"sum(up)\" is not a series selector"),
        format!("{f}: key `fleet.waves[1].clusters[0]`: stg-euw1 is already in wave canary"),
        format!("{f}: key `fleet.waves[1].soak`: \"a while\" is not a duration"),
        format!("{f}: key `fleet.waves[2].clusters`: wave \"empty\" lists no cluster"),
        format!("{f}: key `fleet.waves[3].name`: duplicate wave \"canary\""),
        format!("{f}: key `fleet.waves[4].name`: \"#5\" may only use letters"),
        format!("{f}: key `fleet.waves[5].name`: missing wave name"),
        format!("{f}: key `fleet.backends[0].prometheus.url`: must be an http:// or https:// URL"),
        format!("{f}: key `fleet.backends[0].prometheus.timeout`: must be more than 0"),
        format!("{f}: key `fleet.backends[0].clusters[0]`: prod-apne2 is in no wave"),
        format!("{f}: key `fleet.backends[1].prometheus.url`: missing"),
        format!("{f}: key `fleet.backends[1].clusters[0]`: dev-euw1 is already in backend apne2"),
    ];
    for e in &expected {
        assert!(err.contains(e.as_str()), "missing {e:?} in:\n{err}");
    }
    let count = format!("invalid configuration ({} problems):", expected.len());
    assert!(err.starts_with(&count), "{err}");

    for (label, why) in [
        ("__name__", "starts with \"__\""),
        ("__cluster", "starts with \"__\""),
        ("k8s-cluster", "is not a label name"),
    ] {
        let cfg = write(
            dir.path(),
            "label.yaml",
            &format!("{PACK}fleet:\n  label: {label}\n  waves: [{{name: w, clusters: [a]}}]\n"),
        );
        let (code, _, err) = run(bin().arg("validate").arg("--config").arg(&cfg));
        assert_eq!(code, 2, "{label}");
        assert!(
            err.contains("key `fleet.label`") && err.contains(why),
            "{label}: {err}"
        );
    }
    let cfg = write(dir.path(), "none.yaml", &format!("{PACK}fleet: {{}}\n"));
    let (code, _, err) = run(bin().arg("validate").arg("--config").arg(&cfg));
    assert_eq!(code, 2);
    assert!(
        err.contains("key `fleet.waves`: no wave is listed"),
        "{err}"
    );
}

#[test]
fn validate_refuses_a_query_that_would_blend_clusters_in_fleet_mode_only() {
    let dir = tempfile::tempdir().unwrap();
    let pack = r#"
phases: [{name: p}]
signals:
  - {name: ok, query: 'sum(rate(x[5m])) / on () group_left sum(y)', fail: "> 1"}
  - {name: whole, query: 'x > scalar(sum(y))', fail: "> 1"}
  - {name: gone, query: 'absent(up{job="a"})', fail: "> 0"}
  - {name: merged, query: 'sum without (cluster) (x)', fail: "> 1"}
  - {name: crossed, query: 'a / ignoring (cluster) b', fail: "> 1"}
"#;
    let single = write(dir.path(), "single.yaml", pack);
    let (code, _, err) = run(bin().arg("validate").arg("--config").arg(&single));
    assert_eq!(code, 0, "without a fleet every query is fine: {err}");

    let cfg = write(dir.path(), "fleet.yaml", &format!("{pack}{FLEET}"));
    let (code, out, err) = run(bin().arg("validate").arg("--config").arg(&cfg));
    assert_eq!(code, 2, "{out}");
    let f = cfg.display().to_string();
    let refused = |signal: &str, why: &str| {
        let e = format!("{f}: signal \"{signal}\": key `query`: fleet mode cannot keep clusters apart in this query: {why}");
        assert!(err.contains(&e), "missing {e:?} in:\n{err}");
    };
    refused("whole", "scalar() drops every label");
    refused("gone", "absent() answers for the whole store");
    refused("merged", "`without (cluster)` merges the clusters' series");
    refused(
        "crossed",
        "`ignoring (cluster)` matches one cluster's series with another's",
    );
    assert!(!err.contains("signal \"ok\""), "{err}");
    assert!(
        err.starts_with("invalid configuration (4 problems):"),
        "{err}"
    );
}

#[test]
fn validate_show_queries_prints_each_store_s_rewritten_queries() {
    let dir = tempfile::tempdir().unwrap();
    let pack = "phases: [{name: p}]\nsignals:\n  - {name: ratio, query: 'sum(rate(e[5m])) / on () group_left sum(rate(t[5m]))', fail: \"> 1\"}\n";
    let single = write(dir.path(), "single.yaml", pack);
    let (code, out, err) = run(bin()
        .args(["validate", "--show-queries", "--config"])
        .arg(&single));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("queries:\n  ratio: sum(rate(e[5m])) / on () group_left sum(rate(t[5m]))\n"),
        "as written without a fleet:\n{out}"
    );

    let cfg = write(dir.path(), "fleet.yaml", &format!("{pack}{FLEET}"));
    let (code, out, err) = run(bin()
        .args(["validate", "--show-queries", "--config"])
        .arg(&cfg));
    assert_eq!(code, 0, "{err}");
    let main = r#"cluster=~"dev-euw1|stg-euw1|stg-use1|prod-euw1""#;
    let apne2 = r#"cluster=~"prod-apne2""#;
    let expected = format!(
        "queries for prometheus (clusters dev-euw1, stg-euw1, stg-use1, prod-euw1):\n\
         \x20 presence: count by (cluster) (up)\n\
         \x20 ratio: sum by (cluster) (rate(e{{{main}}}[5m])) / on (cluster) group_left () sum by (cluster) (rate(t{{{main}}}[5m]))\n\
         queries for backend apne2 (clusters prod-apne2):\n\
         \x20 presence: count by (cluster) (up)\n\
         \x20 ratio: sum by (cluster) (rate(e{{{apne2}}}[5m])) / on (cluster) group_left () sum by (cluster) (rate(t{{{apne2}}}[5m]))\n"
    );
    assert!(out.ends_with(&expected), "{out}");
}

/// Canary `c1` healthy and `c2` failing `mesh_5xx` for the last 10 minutes, prod `c3` healthy,
/// and `c4` (wave `dark`) listed but sending nothing.
const WAVES: &str = r#"
fleet:
  waves:
    - {name: canary, clusters: [c1, c2]}
    - {name: prod, clusters: [c3], soak: 10m}
    - {name: dark, clusters: [c4]}
"#;

/// A fleet gate on a Prometheus holding [`WAVES`]' data, and `--at` its time.
fn fleet_gate(dir: &Path) -> (TestPrometheus, std::path::PathBuf, String) {
    let t = now();
    let prom =
        TestPrometheus::start(&fleet_mesh_5xx(t, &["c1", "c2", "c3"], "c2", t - 600).render());
    let cfg = gate_config(dir, prom.url());
    let cfg = write(
        dir,
        "fleet.yaml",
        &format!("{}{WAVES}", std::fs::read_to_string(cfg).unwrap()),
    );
    (prom, cfg, rfc3339(t))
}

#[test]
fn check_judges_each_cluster_of_a_fleet_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_prom, cfg, at) = fleet_gate(dir.path());
    let check = |args: &[&str]| {
        run(bin()
            .arg("check")
            .args(args)
            .args(["--at", &at, "--config"])
            .arg(&cfg))
    };
    let (code, out, err) = check(&["--cluster", "c1", "--phase", "istio"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("cluster c1, phase istio: GO"), "{out}");

    let (code, out, err) = check(&["--cluster", "c2", "--phase", "istio"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("cluster c2, phase istio: NO-GO"), "{out}");
    assert!(
        out.contains("critical signal \"mesh_5xx\" is fail"),
        "{out}"
    );
    // c2's offender is its own series; c1's healthy ones are not blended in.
    assert!(out.contains("cluster=\"c2\""), "{out}");
    assert!(!out.contains("c1"), "{out}");
    // The same cluster's other phase does not query mesh_5xx and is go.
    let (code, out, _) = check(&["--cluster", "c2", "--phase", "addons"]);
    assert_eq!(code, 0, "{out}");

    // JSON: the body of /gate/istio?cluster=c2.
    let (code, out, _) = check(&["--cluster", "c2", "--phase", "istio", "--output", "json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cluster"], "c2");
    assert_eq!(v["wave"], "canary");
    assert_eq!(v["phase"], "istio");
    assert_eq!(v["decision"], "no_go");
    assert_eq!(v["signals"][0]["name"], "mesh_5xx");
    assert_eq!(v["signals"][0]["offenders"][0]["labels"]["cluster"], "c2");
    assert_eq!(v["signals"][0]["value"], 2.5);

    // A listed cluster that sends nothing is not go: it cannot be evaluated (exit 2).
    let (code, out, _) = check(&["--cluster", "c4", "--phase", "istio"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("cluster c4, phase istio: "), "{out}");
    assert!(!out.starts_with("cluster c4, phase istio: GO"), "{out}");
    assert!(out.contains("no data from cluster c4"), "{out}");
}

#[test]
fn check_a_wave_and_whether_the_next_may_start() {
    let dir = tempfile::tempdir().unwrap();
    let (_prom, cfg, at) = fleet_gate(dir.path());
    let check = |args: &[&str], at: &str| {
        run(bin()
            .arg("check")
            .args(args)
            .args(["--at", at, "--config"])
            .arg(&cfg))
    };
    let (code, out, err) = check(&["--wave", "canary", "--phase", "istio"], &at);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("wave canary, phase istio: NO-GO"), "{out}");
    assert!(
        out.contains("  - cluster c2: critical signal \"mesh_5xx\" is fail"),
        "{out}"
    );
    let (_, out, _) = check(
        &["--wave", "canary", "--phase", "istio", "--output", "json"],
        &at,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["wave"], "canary");
    assert_eq!(v["decision"], "no_go");
    // The blocking cluster first.
    assert_eq!(v["clusters"][0]["cluster"], "c2");
    assert_eq!(v["clusters"][0]["decision"], "no_go");
    assert_eq!(v["clusters"][1]["cluster"], "c1");
    assert_eq!(v["clusters"][1]["decision"], "go");
    let (code, out, _) = check(&["--wave", "prod", "--phase", "istio"], &at);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("wave prod, phase istio: GO"), "{out}");
    // A wave whose cluster sends nothing cannot be evaluated (exit 2), and says which cluster.
    let (code, out, _) = check(&["--wave", "dark", "--phase", "istio"], &at);
    assert_eq!(code, 2, "{out}");
    assert!(!out.starts_with("wave dark, phase istio: GO"), "{out}");
    assert!(out.contains("cluster c4: no data from cluster c4"), "{out}");

    // prod may not start while c2 (canary) fails; the first wave has nothing before it.
    let (code, out, err) = check(&["--start-wave", "prod"], &at);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("wave prod, start: NO-GO"), "{out}");
    assert!(
        out.contains("  - cluster c2 (wave canary) is no_go for istio: mesh_5xx"),
        "{out}"
    );
    let (_, out, _) = check(&["--start-wave", "prod", "--output", "json"], &at);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["wave"], "prod");
    assert_eq!(v["decision"], "no_go");
    assert_eq!(v["blocking"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["blocking"][0]["cluster"], "c2");
    assert_eq!(v["blocking"][0]["signals"][0], "mesh_5xx");
    let (code, out, _) = check(&["--start-wave", "canary"], &at);
    assert_eq!(code, 0, "{out}");

    // Before the incident every canary cluster is go, but not yet for prod's 10m soak: what
    // one evaluation proves is its windows, a few minutes.
    let before = rfc3339(now() - 1800);
    let (code, out, _) = check(&["--start-wave", "prod", "--output", "json"], &before);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["blocking"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["soak"], "10m");
    assert_ne!(v["soak_left"], "0s", "{v}");
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("wave canary must stay go for 10m before prod starts:"),
        "{v}"
    );
}

#[test]
fn fleet_options_that_do_not_fit_the_configuration_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let single = gate_config(dir.path(), "http://127.0.0.1:9");
    let fleet = write(
        dir.path(),
        "fleet.yaml",
        &format!("{}{WAVES}", std::fs::read_to_string(&single).unwrap()),
    );
    let f = fleet.display().to_string();
    let s = single.display().to_string();
    let no_option = format!(
        "{f} has a `fleet` section: say what to judge with --cluster NAME (clusters: c1, c2, c3, \
         c4), --wave NAME or --start-wave NAME (waves: canary, prod, dark)"
    );
    for command in [
        vec!["check", "--phase", "istio"],
        vec!["wait", "--phase", "istio", "--timeout", "1s"],
    ] {
        for (cfg, extra, said) in [
            (&fleet, vec![], no_option.clone()),
            (
                &fleet,
                vec!["--cluster", "c9"],
                "unknown cluster \"c9\"; known clusters: c1, c2, c3, c4".to_string(),
            ),
            (
                &fleet,
                vec!["--wave", "nope"],
                "unknown wave \"nope\"; known waves: canary, prod, dark".to_string(),
            ),
            (
                &single,
                vec!["--cluster", "c1"],
                format!("--cluster needs a `fleet` section, and {s} has none"),
            ),
            (
                &single,
                vec!["--wave", "canary"],
                format!("--wave needs a `fleet` section, and {s} has none"),
            ),
        ] {
            let (code, out, err) = run(bin().args(&command).args(&extra).arg("--config").arg(cfg));
            assert_eq!(code, 2, "{command:?} {extra:?}: {out}{err}");
            assert!(err.contains(&said), "{command:?} {extra:?}: {err}");
            assert!(
                out.is_empty(),
                "{command:?} {extra:?} judged something: {out}"
            );
        }
        // clap: one of the three, and --start-wave judges every phase.
        for extra in [
            vec!["--cluster", "c1", "--wave", "canary"],
            vec!["--start-wave", "prod"],
        ] {
            let (code, _, err) = run(bin()
                .args(&command)
                .args(&extra)
                .arg("--config")
                .arg(&fleet));
            assert_eq!(code, 2, "{command:?} {extra:?}: {err}");
            assert!(err.contains("cannot be used with"), "{err}");
        }
    }
    // An unknown phase is said before anything is queried.
    let (code, _, err) = run(bin()
        .args(["check", "--cluster", "c1", "--phase", "nope", "--config"])
        .arg(&fleet));
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown phase \"nope\"; known phases: istio, addons, all"),
        "{err}"
    );
}

#[test]
fn replay_refuses_a_fleet_until_it_judges_clusters_apart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = gate_config(dir.path(), "http://127.0.0.1:9");
    let cfg = write(
        dir.path(),
        "fleet.yaml",
        &format!("{}{FLEET}", std::fs::read_to_string(cfg).unwrap()),
    );
    let f = cfg.display().to_string();
    let (code, out, err) = run(bin()
        .args([
            "replay", "--phase", "istio", "--from", "now-1h", "--to", "now", "--config",
        ])
        .arg(&cfg));
    assert_eq!(code, 2, "{out}{err}");
    let said =
        format!("{f}: key `fleet`: fleet mode: per-cluster evaluation is not implemented yet;");
    assert!(err.contains(&said), "{err}");
    assert!(out.is_empty(), "replay judged something: {out}");
}
