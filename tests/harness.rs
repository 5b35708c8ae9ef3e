//! Self-test of the TestPrometheus harness against a real Prometheus.

mod common;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use common::prometheus::TestPrometheus;
use serde_json::Value;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// OpenMetrics for one gauge sample line per timestamp in [from, to] every `step` seconds.
fn gauge(name: &str, labels: &str, value: &str, from: i64, to: i64, step: i64) -> String {
    let mut text = format!("# TYPE {name} gauge\n");
    for t in (from..=to).step_by(step as usize) {
        text.push_str(&format!("{name}{{{labels}}} {value} {t}\n"));
    }
    text
}

fn json(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("bad JSON ({e}): {body}"));
    assert_eq!(v["status"], "success", "{body}");
    v
}

/// The single sample of an instant vector as (labels, value string).
fn only_sample(body: &str) -> (Value, String) {
    let v = json(body);
    let result = v["data"]["result"].as_array().expect("vector result");
    assert_eq!(result.len(), 1, "{body}");
    (
        result[0]["metric"].clone(),
        result[0]["value"][1]
            .as_str()
            .expect("value is a string")
            .to_owned(),
    )
}

#[test]
fn instant_query_at_now_sees_backfilled_gauge() {
    let now = now();
    let mut text = gauge("harness_probe", r#"k="v""#, "1", now - 600, now + 600, 15);
    text.push_str("# EOF\n");
    let prom = TestPrometheus::start(&text);
    assert!(
        prom.url().starts_with("http://127.0.0.1:"),
        "{}",
        prom.url()
    );

    let body = prom.get(&format!("/api/v1/query?query=harness_probe&time={now}"));
    let (metric, value) = only_sample(&body);
    assert_eq!(metric["__name__"], "harness_probe");
    assert_eq!(metric["k"], "v");
    assert_eq!(value, "1");
}

#[tokio::test]
async fn range_query_past_and_future_data_from_async_test() {
    let now = now();
    // Hours in the past, some in the future, and a second overlapping backfill of
    // another series: Prometheus must answer from all of them right after start.
    let mut text = gauge(
        "harness_span",
        r#"k="a""#,
        "2",
        now - 4 * 3600,
        now + 3600,
        15,
    );
    text.push_str(&gauge(
        "harness_old",
        "",
        "3",
        now - 20 * 86400,
        now - 20 * 86400 + 600,
        60,
    ));
    text.push_str("# EOF\n");
    let prom = TestPrometheus::start(&text);

    let body = prom.query_range("harness_span", (now - 1800) as f64, now as f64, 60.0);
    let v = json(&body);
    let values = v["data"]["result"][0]["values"]
        .as_array()
        .expect("matrix")
        .clone();
    assert_eq!(values.len(), 31, "{body}");
    assert!(values.iter().all(|p| p[1] == "2"), "{body}");

    // In the future (a live daemon would see this later).
    let (_, value) = only_sample(&prom.query("harness_span", (now + 1800) as f64));
    assert_eq!(value, "2");
    // Older than the default 15d retention: kept, because retention is 100y.
    let (_, value) = only_sample(&prom.query("harness_old", (now - 20 * 86400 + 300) as f64));
    assert_eq!(value, "3");
    // Escaping through `query`.
    let (_, value) =
        only_sample(&prom.query(r#"count({__name__=~"harness_.+", k!="x y"})"#, now as f64));
    assert_eq!(value, "1");
}

#[test]
fn nan_and_infinities_come_back_as_strings() {
    let now = now();
    let mut text = String::from("# TYPE harness_odd gauge\n");
    for (kind, value) in [("nan", "NaN"), ("inf", "+Inf"), ("ninf", "-Inf")] {
        text.push_str(&format!(
            "harness_odd{{kind=\"{kind}\"}} {value} {}\n",
            now - 60
        ));
    }
    text.push_str("# EOF\n");
    let prom = TestPrometheus::start(&text);

    for (kind, expected) in [("nan", "NaN"), ("inf", "+Inf"), ("ninf", "-Inf")] {
        let (_, value) =
            only_sample(&prom.query(&format!(r#"harness_odd{{kind="{kind}"}}"#), now as f64));
        assert_eq!(value, expected, "kind={kind}");
    }
}

#[test]
fn bad_query_is_reported_with_status() {
    let prom = TestPrometheus::start("# EOF\n");
    let (status, body) = prom.get_with_status("/api/v1/query?query=sum(");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_data"), "{body}");
}

#[test]
fn drop_kills_prometheus() {
    let prom = TestPrometheus::start("# EOF\n");
    let proc_dir = format!("/proc/{}", prom.pid());
    assert!(Path::new(&proc_dir).exists());
    drop(prom);
    assert!(
        !Path::new(&proc_dir).exists(),
        "prometheus still running after drop"
    );
}
