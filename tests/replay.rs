//! `upgrade-gate replay` over a past window with a real Prometheus: the timeline, its formats,
//! agreement with `check --at`, and one range query per signal for the whole window.

mod common;

use common::data::{now, rfc3339, OpenMetrics};
use common::process::gate_cli as run;
use common::prometheus::TestPrometheus;
use serde_json::Value;

/// `mesh_5xx` breaches from `t-60m` to `t-40m`; a second signal stays healthy.
fn setup(t: i64) -> (TestPrometheus, tempfile::TempDir, String) {
    let data = OpenMetrics::new()
        .gauge(
            "mesh_5xx",
            r#"destination_service="reviews""#,
            (t - 3 * 3600, t + 600, 15),
            |ts| {
                Some(if (t - 3600..t - 2400).contains(&ts) {
                    2.0
                } else {
                    0.1
                })
            },
        )
        .gauge("xds_rejects", "", (t - 3 * 3600, t + 600, 15), |_| {
            Some(0.0)
        })
        .render();
    let prom = TestPrometheus::start(&data);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::write(
        &path,
        format!(
            r#"prometheus: {{url: "{}"}}
evaluation: {{interval: 30s}}
phases: [{{name: istio, min_score: 90, stable_for: 10m}}, {{name: other}}]
signals:
  - {{name: mesh_5xx, query: mesh_5xx, fail: "> 1", for: 2m, critical: true, phases: [istio]}}
  - {{name: xds_rejects, query: xds_rejects, fail: "> 0", phases: [istio]}}
  - {{name: unrelated, query: absent_metric, fail: "> 0", phases: [other]}}
"#,
            prom.url()
        ),
    )
    .unwrap();
    let path = path.display().to_string();
    (prom, dir, path)
}

#[test]
fn the_timeline_shows_the_breach_and_the_soak_with_one_query_per_signal() {
    let t = now();
    let (prom, _dir, cfg) = setup(t);
    let (from, to) = (rfc3339(t - 90 * 60), rfc3339(t));
    let before = prom.query_range_requests();
    let (code, out, err) = run(&[
        "replay", "--config", &cfg, "--phase", "istio", "--from", &from, "--to", &to, "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        prom.query_range_requests() - before,
        2,
        "one range query per signal of the phase"
    );
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(
        rows.len(),
        181,
        "every 30 s step of 90 minutes, both ends included"
    );
    let at = |ts: i64| {
        rows.iter()
            .find(|r| r["evaluated_at"] == rfc3339(ts).replace("+00:00", "Z"))
            .unwrap_or_else(|| panic!("no row at {ts}"))
    };
    assert_eq!(at(t - 90 * 60)["decision"], "go");
    // The breach starts at -60m: pending (`for: 2m`) it counts as warn, which already costs the
    // score; it fails from -58m.
    assert_eq!(at(t - 61 * 60)["decision"], "go");
    assert_eq!(at(t - 60 * 60)["decision"], "no_go");
    assert!(at(t - 60 * 60)["reasons"][1]
        .as_str()
        .unwrap()
        .contains("is warn"));
    assert!(at(t - 58 * 60)["reasons"][0]
        .as_str()
        .unwrap()
        .contains("is fail"));
    assert!(at(t - 50 * 60)["reasons"][0]
        .as_str()
        .unwrap()
        .contains("critical signal \"mesh_5xx\" is fail"));
    // Healthy again from -40m, but soaking for 10 minutes.
    assert_eq!(at(t - 35 * 60)["decision"], "no_go");
    assert!(at(t - 35 * 60)["reasons"][0]
        .as_str()
        .unwrap()
        .starts_with("healthy for 5m of the required stable_for 10m"));
    assert_eq!(at(t - 30 * 60)["decision"], "go");
    assert_eq!(at(t)["decision"], "go");

    // The same code as `check`: any row equals `check --at` that time.
    for ts in [t - 50 * 60, t - 35 * 60, t - 30 * 60] {
        let (_, out, _) = run(&[
            "check",
            "--config",
            &cfg,
            "--phase",
            "istio",
            "--output",
            "json",
            "--at",
            &rfc3339(ts),
        ]);
        let check: Value = serde_json::from_str(&out).unwrap();
        let row = at(ts);
        for key in [
            "decision",
            "score",
            "stable_since",
            "reasons",
            "evaluated_at",
        ] {
            assert_eq!(row[key], check[key], "{key} at {ts}");
        }
    }
}

#[test]
fn text_and_csv_outputs() {
    let t = now();
    let (_prom, _dir, cfg) = setup(t);
    let (from, to) = (rfc3339(t - 90 * 60), rfc3339(t));
    let (code, out, err) = run(&[
        "replay", "--config", &cfg, "--phase", "istio", "--from", &from, "--to", &to,
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("phase istio, {from} .. {to}, step 30s"));
    assert_eq!(lines[1], format!("{from}  GO     score 100"));
    assert_eq!(
        lines[2],
        format!("{}  NO-GO  score 75", rfc3339(t - 60 * 60)),
        "{out}"
    );
    assert_eq!(
        lines.last().unwrap(),
        &format!(
            "no-go at 60 of 181 steps (30m in all); go from {} to the end.",
            rfc3339(t - 30 * 60)
        )
    );

    let (code, out, _) = run(&[
        "replay", "--config", &cfg, "--phase", "istio", "--from", &from, "--to", &to, "--output",
        "csv", "--step", "5m",
    ]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "evaluated_at,decision,score,stable_since,reasons");
    assert_eq!(lines.len(), 1 + 19, "every 5 minutes over 90 minutes");
    assert!(lines[1].starts_with(&format!("{from},go,100,")), "{out}");
}

#[test]
fn bad_requests_exit_2() {
    let t = now();
    let (_prom, _dir, cfg) = setup(t);
    let (code, _, err) = run(&[
        "replay", "--config", &cfg, "--phase", "nope", "--from", "now-1h", "--to", "now",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown phase \"nope\""), "{err}");
    let (code, _, err) = run(&[
        "replay", "--config", &cfg, "--phase", "istio", "--from", "now", "--to", "now-1h",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--to must be after --from"), "{err}");
    let (code, _, err) = run(&[
        "replay", "--config", &cfg, "--phase", "istio", "--from", "now-30d", "--to", "now",
        "--step", "30s",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("use a larger --step"), "{err}");
}
