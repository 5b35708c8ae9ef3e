//! Relative thresholds (`"> baseline * 3"`) against a real Prometheus: each series compared with
//! its own mean before a fixed `baseline.end` or `offset` before each step, through `check`,
//! `replay`, `validate` and the daemon's HTTP answers and metrics.

mod common;

use std::time::Duration;

use common::data::{now, rfc3339, OpenMetrics};
use common::gate::TestGate;
use common::process::gate_cli as run;
use common::prometheus::TestPrometheus;
use serde_json::Value;

const MIN: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// The cluster the tests judge, `t` being now:
/// - `lat{verb}`: LIST goes from 0.1 to 0.35 at t-90m (3.5x, far below the absolute 4), GET from
///   0.2 to 0.3 (1.5x);
/// - `post_lat`: 5 throughout (above the absolute 4, at its baseline);
/// - `svc_errors{svc}`: `old` 1 throughout, `new` 1 from t-30m only (no baseline);
/// - `daily`: 2.5 since t-3h, the same as two hours ago (fixed baseline) and 2.5x the hour a day
///   before (moving baseline: 1); 2.5 also from t-1d-100m to t-1d-60m, so that the moving baseline
///   rises between t-100m and t-60m and a regression there clears.
fn data(t: i64) -> String {
    let span = (t - DAY - 3 * HOUR, t + 10 * MIN, 30);
    let mut data = OpenMetrics::new();
    data.gauge("lat", r#"verb="LIST""#, span, |ts| {
        Some(if ts < t - 90 * MIN { 0.1 } else { 0.35 })
    })
    .gauge("lat", r#"verb="GET""#, span, |ts| {
        Some(if ts < t - 90 * MIN { 0.2 } else { 0.3 })
    })
    .gauge("post_lat", "", span, |_| Some(5.0))
    .gauge("svc_errors", r#"svc="old""#, span, |_| Some(1.0))
    .gauge("svc_errors", r#"svc="new""#, span, |ts| {
        (ts >= t - 30 * MIN).then_some(1.0)
    })
    .gauge("daily", "", span, |ts| {
        let day_before = (t - DAY - 100 * MIN..t - DAY - 60 * MIN).contains(&ts);
        Some(if day_before || ts >= t - 3 * HOUR {
            2.5
        } else {
            1.0
        })
    });
    data.render()
}

/// Every signal of the tests; the top-level baseline ends two hours before `t`.
fn config(prometheus: &str, t: i64) -> String {
    format!(
        r#"prometheus: {{url: "{prometheus}"}}
evaluation: {{interval: 60s}}
baseline: {{end: "{end}", window: 1h}}
phases: [{{name: lat}}, {{name: new}}, {{name: daily}}]
signals:
  - {{name: list_p99, query: lat, warn: "> baseline * 2", fail: ["> 4", "> baseline * 3"], for: 10m, phases: [lat]}}
  - {{name: list_p99_absolute, query: lat, warn: "> 2", fail: "> 4", for: 10m, phases: [lat]}}
  - {{name: post_p99, query: post_lat, fail: ["> 4", "> baseline * 3"], phases: [lat]}}
  - {{name: new_ok, query: svc_errors, fail: "> baseline * 3", phases: [new]}}
  - {{name: new_warn, query: svc_errors, fail: "> baseline * 3", no_baseline: warn, phases: [new]}}
  - {{name: new_fail, query: svc_errors, fail: "> baseline * 3", no_baseline: fail, phases: [new]}}
  - {{name: daily_fixed, query: daily, fail: "> baseline * 2", phases: [daily]}}
  - {{name: daily_moving, query: daily, fail: "> baseline * 2", baseline: {{offset: 1d}}, phases: [daily]}}
"#,
        end = rfc3339(t - 2 * HOUR)
    )
}

struct Setup {
    t: i64,
    prom: TestPrometheus,
    dir: tempfile::TempDir,
    path: String,
}

fn setup() -> Setup {
    let t = now();
    let prom = TestPrometheus::start(&data(t));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::write(&path, config(prom.url(), t)).unwrap();
    Setup {
        t,
        prom,
        path: path.display().to_string(),
        dir,
    }
}

/// `check --output json` of phase `all` at `at`.
fn check_at(cfg: &str, at: i64) -> Value {
    let (code, out, err) = run(&[
        "check",
        "--config",
        cfg,
        "--output",
        "json",
        "--at",
        &rfc3339(at),
    ]);
    assert!(code == 0 || code == 1, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn signal<'a>(verdict: &'a Value, name: &str) -> &'a Value {
    verdict["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no signal {name}"))
}

#[test]
fn relative_conditions_judge_each_series_against_its_own_baseline() {
    let s = setup();
    let v = check_at(&s.path, s.t);

    // Only the relative condition catches the LIST regression, and only LIST offends.
    let list = signal(&v, "list_p99");
    assert_eq!(list["status"], "fail", "{list:#}");
    assert_eq!(list["offending_series"], 1, "{list:#}");
    assert_eq!(list["offenders"][0]["labels"]["verb"], "LIST");
    assert_eq!(list["offenders"][0]["value"], 0.35);
    assert_eq!(list["offenders"][0]["baseline"], 0.1);
    assert_eq!(list["fail"], serde_json::json!(["> 4", "> baseline * 3"]));
    assert_eq!(list["warn"], "> baseline * 2");
    assert_eq!(signal(&v, "list_p99_absolute")["status"], "ok");
    let reason = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|r| r.as_str().filter(|r| r.contains("\"list_p99\"")))
        .unwrap_or_else(|| panic!("{:#}", v["reasons"]));
    assert!(
        reason.ends_with(
            "signal \"list_p99\" is fail: {__name__=\"lat\", verb=\"LIST\"} = 0.35 is 3.5x its \
             baseline 0.1, breaches fail > baseline * 3 for 10m"
        ),
        "{reason}"
    );

    let (_, text, _) = run(&[
        "check",
        "--config",
        &s.path,
        "--phase",
        "lat",
        "--at",
        &rfc3339(s.t),
    ]);
    let row = text
        .lines()
        .find(|l| l.starts_with("list_p99 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("0.35 (3.5x baseline 0.1)"), "{text}");
    assert!(row.contains("> 4 or > baseline * 3"), "{text}");

    // A list breaches when any condition does: here the absolute one.
    let post = signal(&v, "post_p99");
    assert_eq!(post["status"], "fail");
    assert_eq!(post["baseline"], 5.0);
    assert_eq!(post["offenders"][0]["baseline"], 5.0);

    // A series that started after the baseline window has none: no_baseline decides.
    for (name, status) in [("new_ok", "ok"), ("new_warn", "warn"), ("new_fail", "fail")] {
        let r = signal(&v, name);
        assert_eq!(r["status"], status, "{r:#}");
        if status != "ok" {
            assert_eq!(r["offending_series"], 1, "{r:#}");
            assert_eq!(r["offenders"][0]["labels"]["svc"], "new");
            assert!(r["offenders"][0]["baseline"].is_null(), "{r:#}");
        }
    }

    // The same series against the fixed top-level baseline (two hours ago: as now) and against
    // the signal's own moving one (a day earlier: 1).
    let fixed = signal(&v, "daily_fixed");
    assert_eq!(fixed["status"], "ok", "{fixed:#}");
    assert_eq!(fixed["baseline"], 2.5);
    let moving = signal(&v, "daily_moving");
    assert_eq!(moving["status"], "fail", "{moving:#}");
    assert_eq!(moving["baseline"], 1.0);

    // A step before the fixed `end` (t-2h) keeps the same baseline; a moving one moves with it.
    let early = check_at(&s.path, s.t - 150 * MIN);
    assert_eq!(signal(&early, "daily_fixed")["baseline"], 2.5);
    assert_eq!(
        signal(&early, "list_p99")["baseline"],
        0.2,
        "the worst series is GET"
    );
    assert_eq!(signal(&early, "list_p99")["status"], "ok");
    let moving = signal(&early, "daily_moving");
    assert_eq!(moving["baseline"], 1.0, "{moving:#}");
}

#[test]
fn for_holds_a_relative_breach_like_an_absolute_one() {
    let s = setup();
    // The LIST regression starts at t-90m; `for: 10m`.
    let list = |at| signal(&check_at(&s.path, at), "list_p99").clone();
    assert_eq!(list(s.t - 95 * MIN)["status"], "ok");
    let pending = list(s.t - 85 * MIN);
    assert_eq!(pending["status"], "warn", "{pending:#}");
    assert_eq!(list(s.t - 79 * MIN)["status"], "fail");
}

#[test]
fn replay_equals_check_at_every_step_with_moving_and_fixed_baselines() {
    let s = setup();
    let (from, to) = (s.t - 100 * MIN, s.t - 60 * MIN);
    let (code, out, err) = run(&[
        "replay",
        "--config",
        &s.path,
        "--phase",
        "all",
        "--from",
        &rfc3339(from),
        "--to",
        &rfc3339(to),
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 41);
    for (i, row) in rows.iter().enumerate() {
        let check = check_at(&s.path, from + i as i64 * MIN);
        for key in [
            "evaluated_at",
            "decision",
            "score",
            "stable_since",
            "reasons",
        ] {
            assert_eq!(row[key], check[key], "{key} at step {i}");
        }
    }
    // The moving baseline moved: daily_moving fails at the start and has cleared by the end.
    let names = |row: &Value| row["reasons"].to_string().contains("daily_moving");
    assert!(names(&rows[0]), "{:#}", rows[0]);
    assert!(!names(&rows[40]), "{:#}", rows[40]);
}

#[tokio::test]
async fn the_daemon_reports_baselines_and_keeps_a_fixed_one() {
    let s = setup();
    let mut config = upgrade_gate::config::load(Some(std::path::Path::new(&s.path))).unwrap();
    config.evaluation.interval = Duration::from_secs(1);
    let before = s.prom.query_range_requests();
    let gate = TestGate::start(config).await;
    gate.ready().await;

    let (_, body) = gate.get("/signals").await;
    let signals: Value = serde_json::from_str(&body).unwrap();
    let list = signals
        .as_array()
        .or_else(|| signals["signals"].as_array())
        .unwrap()
        .iter()
        .find(|r| r["name"] == "list_p99")
        .unwrap()
        .clone();
    assert_eq!(list["baseline"], 0.1, "{list:#}");
    assert_eq!(list["offenders"][0]["baseline"], 0.1);
    let (code, body) = gate.get("/gate/lat").await;
    assert_eq!(code, 503);
    assert!(body.contains("is 3.5x its baseline 0.1"), "{body}");
    let (_, metrics) = gate.get("/metrics").await;
    assert!(
        metrics.contains("upgrade_gate_signal_baseline{signal=\"list_p99\"} 0.1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("upgrade_gate_signal_baseline{signal=\"new_ok\"}"),
        "the worst new_ok series has no baseline"
    );

    // Wait for a few more evaluations: each asks for the 8 signals and the one moving baseline;
    // the 6 fixed baselines were fetched by the first one only (fetching them each time would
    // be 15 queries an evaluation).
    let evaluations = |metrics: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with("upgrade_gate_evaluation_duration_seconds_count"))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |v| v.parse::<u64>().unwrap())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let n = loop {
        let n = evaluations(&gate.get("/metrics").await.1);
        if n >= 5 {
            break n;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    gate.stop().await;
    let fetched = s.prom.query_range_requests() - before;
    // One more evaluation may have been in flight when the count was read.
    assert!(
        (n * 9 + 6..=(n + 1) * 9 + 6).contains(&fetched),
        "{fetched} range queries for {n} evaluations"
    );
}

#[test]
fn a_pipeline_pins_the_baseline_from_the_environment() {
    let s = setup();
    // The same config without `end`: the top level is the default moving baseline (1d) until the
    // pipeline sets UPGRADE_GATE__BASELINE__END.
    let path = s.dir.path().join("moving.yaml");
    let text = std::fs::read_to_string(&s.path).unwrap();
    let end = format!("end: \"{}\", ", rfc3339(s.t - 2 * HOUR));
    std::fs::write(&path, text.replace(&end, "")).unwrap();
    let check = |env: Option<String>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_upgrade-gate"));
        cmd.args([
            "check",
            "--config",
            path.to_str().unwrap(),
            "--phase",
            "daily",
        ])
        .args(["--output", "json", "--at", &rfc3339(s.t)]);
        if let Some(end) = env {
            cmd.env("UPGRADE_GATE__BASELINE__END", end);
        }
        let out = cmd.output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        signal(&v, "daily_fixed").clone()
    };
    let moving = check(None);
    assert_eq!(moving["status"], "fail", "a day ago it was 1: {moving:#}");
    let pinned = check(Some(rfc3339(s.t - 2 * HOUR)));
    assert_eq!(pinned["status"], "ok", "{pinned:#}");
    assert_eq!(pinned["baseline"], 2.5);

    let (code, _, err) = run(&["validate", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_upgrade-gate"))
        .args(["validate", "--config", path.to_str().unwrap()])
        .env("UPGRADE_GATE__BASELINE__END", "when the upgrade starts")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key `baseline.end`: \"when the upgrade starts\" is not an RFC 3339 time"),
        "{err}"
    );
}

#[test]
fn validate_rejects_bad_relative_thresholds_and_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::write(
        &path,
        r#"baseline: {end: yesterday, window: 0}
signals:
  - {name: lots, query: up, fail: "> baseline * lots"}
  - {name: typo, query: up, fail: ["> 4", "> baselin * 2"]}
  - {name: mixed, query: up, fail: ["> 4", "< baseline * 0.5"]}
  - {name: own, query: up, fail: "> baseline * 2", baseline: {offset: 0}, no_baseline: maybe}
  - {name: unused, query: up, fail: "> 1", baseline: {window: 1h}}
"#,
    )
    .unwrap();
    let file = path.display().to_string();
    let (code, _, err) = run(&["validate", "--config", &file]);
    assert_eq!(code, 2, "{err}");
    for (signal, key) in [
        (None, "baseline.end"),
        (None, "baseline.window"),
        (Some("lots"), "fail"),
        (Some("typo"), "fail"),
        (Some("mixed"), "fail"),
        (Some("own"), "baseline.offset"),
        (Some("own"), "no_baseline"),
        (Some("unused"), "baseline"),
    ] {
        let expected = match signal {
            Some(s) => format!("{file}: signal {s:?}: key `{key}`: "),
            None => format!("{file}: key `{key}`: "),
        };
        assert!(err.contains(&expected), "{expected}\n{err}");
    }
}
