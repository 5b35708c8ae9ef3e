//! Outages as on-call engineers live them, with real processes on loopback: the built gate as a
//! child process, a real Prometheus that is killed and started again, a real Alertmanager, and a
//! webhook receiver that is down for a while.
//!
//! Durations are scaled through the config so that a scenario of minutes takes seconds: 1 s
//! evaluations, a receiver "down for ten minutes" is down for about fifteen evaluations, and
//! `give_up_after` (an hour by default) is a minute, still far longer than that outage. Every wait
//! polls for a condition; to show that nothing more arrives, a test waits for a few more
//! evaluations.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::alertmanager::TestAlertmanager;
use common::data::OpenMetrics;
use common::gate::{free_port, GateProcess};
use common::prometheus::TestPrometheus;
use common::receiver::{Receiver, Reply};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(40);

fn poll(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A sample of the gate's /metrics, by its full series name.
fn metric(gate: &GateProcess, series: &str) -> f64 {
    let (_, text) = gate.request("GET", "/metrics").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// Waits until the gate has evaluated `n` more times: a notice on its way would have arrived.
fn evaluations(gate: &GateProcess, n: u32) {
    let series = "upgrade_gate_last_evaluation_timestamp_seconds";
    let from = metric(gate, series);
    poll(&format!("{n} more evaluations"), || {
        metric(gate, series) >= from + f64::from(n)
    });
}

/// Webhook messages per (alertname, phase or signal, status).
fn tally(hook: &Receiver) -> BTreeMap<(String, String, String), usize> {
    let mut counts = BTreeMap::new();
    for r in hook.received() {
        let b = r.json();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let subject = match (&b["phase"], &b["signal"]) {
            (Value::String(p), _) => p.clone(),
            (_, Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        *counts
            .entry((text(&b["alertname"]), subject, text(&b["status"])))
            .or_default() += 1;
    }
    counts
}

fn count(hook: &Receiver, alertname: &str, status: &str) -> usize {
    tally(hook)
        .iter()
        .filter(|((a, _, s), _)| a == alertname && s == status)
        .map(|(_, n)| n)
        .sum()
}

const CAUSE: &str = "UpgradeGatePrometheusError";

#[test]
fn prometheus_down_is_one_notice_and_one_resolution_per_receiver() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hook = runtime.block_on(Receiver::start(vec![]));
    let now = chrono::Utc::now().timestamp();
    // Nothing the default pack queries: its phases are no-go for lack of data from the start,
    // and stay so; what changes is whether Prometheus answers.
    let data = OpenMetrics::new()
        .gauge("unrelated", "", (now - 600, now + 600, 15), |_| Some(1.0))
        .render();
    let mut prometheus = TestPrometheus::start(&data);
    let alertmanager = TestAlertmanager::start();
    // The default pack: deploy/upgrade-gate.yaml's signal files, baseline and six phases.
    let root = env!("CARGO_MANIFEST_DIR");
    let deploy = std::fs::read_to_string(format!("{root}/deploy/upgrade-gate.yaml")).unwrap();
    let pack = &deploy[deploy.find("\nbaseline:").unwrap()..];
    let gate = GateProcess::start(
        |listen| {
            format!(
                r#"
prometheus: {{url: "{}", timeout: 2s}}
evaluation: {{interval: 1s}}
server: {{listen: "{listen}"}}
signal_files: ["{root}/queries/*.yaml"]
{pack}
alerts:
  retry_initial_backoff: 100ms
  retry_max_backoff: 500ms
  receivers:
    - {{name: hook, kind: webhook, url: "{}"}}
    - {{name: am, kind: alertmanager, url: "{}"}}
"#,
                prometheus.url(),
                hook.url(),
                alertmanager.url()
            )
        },
        &[],
    );
    evaluations(&gate, 3);
    assert_eq!(count(&hook, CAUSE, "firing"), 0, "{:#?}", tally(&hook));

    prometheus.kill();
    poll("the cause to be announced", || {
        count(&hook, CAUSE, "firing") >= 1
    });
    poll("Alertmanager to hold the cause", || {
        !alertmanager.alerts_matching(CAUSE).is_empty()
    });
    evaluations(&gate, 3);
    let cause = hook
        .received()
        .into_iter()
        .map(|r| r.json())
        .find(|b| b["alertname"] == CAUSE)
        .unwrap();
    let summary = cause["summary"].as_str().unwrap();
    assert!(summary.contains("is unreachable"), "{summary}");
    assert!(summary.contains("signals cannot be evaluated"), "{summary}");
    let reasons = cause["reasons"].to_string();
    assert!(
        reasons.contains("istio_5xx_ratio"),
        "names the signals: {reasons}"
    );
    let held = alertmanager.alerts_matching(CAUSE);
    assert_eq!(held.len(), 1, "{held:#?}");
    assert!(held[0]["labels"].get("signal").is_none(), "{held:#?}");
    assert!(
        alertmanager
            .alerts_matching("UpgradeGateQueryError")
            .is_empty(),
        "no alert per signal: {:#?}",
        alertmanager.alerts()
    );

    prometheus.restart();
    poll("the cause to be resolved", || {
        count(&hook, CAUSE, "resolved") >= 1
    });
    evaluations(&gate, 3);

    let tally = tally(&hook);
    assert_eq!(count(&hook, CAUSE, "firing"), 1, "{tally:#?}");
    assert_eq!(count(&hook, CAUSE, "resolved"), 1, "{tally:#?}");
    assert_eq!(
        count(&hook, "UpgradeGateQueryError", "firing"),
        0,
        "{tally:#?}"
    );
    for ((alertname, phase, status), n) in &tally {
        if alertname != CAUSE {
            assert_eq!(alertname, "UpgradeGatePhaseNoGo", "{tally:#?}");
            assert_eq!(*n, 1, "{phase} {status}: {tally:#?}");
        }
    }
    assert!(
        tally.len() <= 2 + 2 * 6,
        "at most one message per phase and status: {tally:#?}"
    );
}

/// `mesh_5xx` and `xds_rejects` sampled every second around now, each from `value(t)`.
fn incidents(mesh_5xx: impl Fn(i64) -> f64, xds_rejects: impl Fn(i64) -> f64) -> String {
    let now = chrono::Utc::now().timestamp();
    OpenMetrics::new()
        .gauge(
            "mesh_5xx",
            r#"destination_service="reviews""#,
            (now - 600, now + 600, 1),
            |t| Some(mesh_5xx(t)),
        )
        .gauge("xds_rejects", "", (now - 600, now + 600, 1), |t| {
            Some(xds_rejects(t))
        })
        .render()
}

/// The gate as a process on the two signals of `incidents`, one phase, and one webhook receiver at
/// `hook`, with `alerts` (YAML lines) added to its alerts section.
fn two_signal_gate(prometheus: &TestPrometheus, hook: &str, alerts: &str) -> GateProcess {
    GateProcess::start(
        |listen| {
            format!(
                r#"
prometheus: {{url: "{}", timeout: 2s}}
evaluation: {{interval: 1s}}
server: {{listen: "{listen}"}}
phases: [{{name: istio}}]
signals:
  - {{name: mesh_5xx, query: mesh_5xx, fail: "> 1", critical: true}}
  - {{name: xds_rejects, query: xds_rejects, fail: "> 0"}}
alerts:
  retry_initial_backoff: 100ms
  retry_max_backoff: 500ms
{alerts}
  receivers:
    - {{name: hook, kind: webhook, url: "{hook}"}}
"#,
                prometheus.url()
            )
        },
        &[],
    )
}

#[test]
fn a_receiver_down_while_an_incident_starts_and_ends_gets_the_current_state_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // While the receiver is down, mesh_5xx fails and recovers (an incident that started and
    // ended), then xds_rejects starts failing (the incident under way when it is back).
    let start = chrono::Utc::now().timestamp() + 8;
    let prometheus = TestPrometheus::start(&incidents(
        |t| {
            if (start..start + 4).contains(&t) {
                2.5
            } else {
                0.1
            }
        },
        |t| if t >= start + 7 { 3.0 } else { 0.0 },
    ));
    let port = free_port();
    let gate = two_signal_gate(
        &prometheus,
        &format!("http://127.0.0.1:{port}/hook"),
        "  timeout: 2s\n  give_up_after: 1m",
    );
    let back = start + 12;
    poll("the receiver's outage to end", || {
        chrono::Utc::now().timestamp() >= back
    });
    assert!(
        metric(
            &gate,
            "upgrade_gate_alerts_total{receiver=\"hook\",outcome=\"retried\"}"
        ) > 0.0,
        "the gate tried while the receiver was down"
    );
    let hook = runtime.block_on(Receiver::start_on(port, vec![]));
    runtime.block_on(hook.wait_for(2, WAIT));
    evaluations(&gate, 3);
    let tally = tally(&hook);
    let expected: BTreeMap<(String, String, String), usize> = [
        ("UpgradeGatePhaseNoGo", "istio", "firing"),
        ("UpgradeGateSignalFailing", "xds_rejects", "firing"),
    ]
    .into_iter()
    .map(|(a, s, st)| ((a.to_string(), s.to_string(), st.to_string()), 1))
    .collect();
    assert_eq!(
        tally, expected,
        "the current state once, nothing of the incident that ended"
    );
    assert_eq!(
        metric(
            &gate,
            "upgrade_gate_alerts_total{receiver=\"hook\",outcome=\"expired\"}"
        ),
        0.0
    );
}

#[test]
fn a_notice_undelivered_for_give_up_after_expires_with_an_error_and_a_metric() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hook = runtime.block_on(Receiver::start(vec![Reply::Status(503); 10_000]));
    let prometheus = TestPrometheus::start(&incidents(|_| 2.5, |_| 0.0));
    let gate = two_signal_gate(&prometheus, &hook.url(), "  give_up_after: 3s");
    let expired = "upgrade_gate_alerts_total{receiver=\"hook\",outcome=\"expired\"}";
    // The phase no-go and the failing signal, each given up.
    poll("both notices to expire", || metric(&gate, expired) >= 2.0);
    let logged = gate
        .logged("alert not delivered in time; giving up on it")
        .unwrap_or_else(|| panic!("no error logged:\n{}", gate.logs()));
    assert_eq!(logged["give_up_after"], "3s", "{logged}");
    let attempts = hook.received().len();
    evaluations(&gate, 3);
    assert_eq!(
        hook.received().len(),
        attempts,
        "no attempt after giving up"
    );
    assert_eq!(metric(&gate, expired), 2.0);
}
