//! `serve`'s incremental evaluation against a whole fetch, side by side, over live data: a real
//! Prometheus scraping an exporter whose series change, appear and vanish while the two run.
//! Every snapshot must be the same, including across a reload that changes a query and a window,
//! and for a relative signal whose moving baseline is kept and extended like the windows.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::prometheus::TestPrometheus;
use tokio::net::TcpListener;
use upgrade_gate::config::{self, Config};
use upgrade_gate::engine::decide::Decision;
use upgrade_gate::engine::evaluate::Status;
use upgrade_gate::evaluation::{evaluate, Incremental};
use upgrade_gate::prometheus::source::PrometheusSource;

/// Seconds of exporter life at which each series is present, and its value then.
fn exposition(second: u64) -> String {
    let mut text = String::from("# TYPE changing gauge\n");
    // Always there, cycling through healthy and breaching values.
    text.push_str(&format!("changing{{s=\"a\"}} {}\n", second % 9));
    // Appears, vanishes, comes back, breaching.
    if (4..9).contains(&second) || second >= 15 {
        text.push_str("changing{s=\"b\"} 7\n");
    }
    // There at the start, then gone for good.
    if second < 6 {
        text.push_str("changing{s=\"c\"} 1\n");
    }
    text
}

/// An exporter whose answer depends on how long it has run; scraped every second.
async fn exporter() -> std::net::SocketAddr {
    let started = Instant::now();
    let app = Router::new().route(
        "/metrics",
        get(move || async move { exposition(started.elapsed().as_secs()) }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn load(dir: &tempfile::TempDir, url: &str, query: &str, stable_for: &str) -> Config {
    let path = dir.path().join("gate.yaml");
    // A step is judged 3 s behind now: the 1 s scrape (1 s timeout) that covers it is stored by then.
    std::fs::write(
        &path,
        format!(
            r#"
prometheus: {{url: "{url}", timeout: 5s}}
evaluation: {{interval: 1s, query_offset: 3s}}
phases: [{{name: p, min_score: 60, stable_for: {stable_for}}}]
signals:
  - {{name: worst, query: '{query}', warn: "> 4", fail: "> 5", for: 2s, critical: true}}
  - {{name: peak, query: 'max_over_time(changing[3s])', warn: "> 6", no_data: ok}}
  - {{name: count, query: 'count(changing)', fail: "< 2"}}
  - {{name: rel, query: changing, warn: "> baseline * 1.5", fail: "> baseline + 3", no_baseline: warn, baseline: {{offset: 4s, window: 3s}}}}
"#
        ),
    )
    .unwrap();
    config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_snapshots_equal_whole_fetches_while_series_come_and_go() {
    let target = exporter().await;
    let prom = tokio::task::spawn_blocking(move || TestPrometheus::scraping(target))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Arc::new(load(&dir, prom.url(), "changing", "5s"));
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    let mut incremental = Incremental::default();

    let offset = config.evaluation.query_offset.as_secs() as i64;
    let mut seen_statuses = std::collections::BTreeSet::new();
    let mut seen_series = std::collections::BTreeSet::new();
    let mut baselines_seen = 0;
    let mut decisions = Vec::new();
    let mut last = 0;
    let mut compared = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while compared < 24 {
        assert!(Instant::now() < deadline, "only {compared} steps compared");
        let at = chrono::Utc::now().timestamp() - offset;
        if at == last {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        last = at;
        if compared == 14 {
            // A reload: one signal's query and the phase's window change.
            config = Arc::new(load(&dir, prom.url(), "changing * 1", "7s"));
        }
        let inc = incremental.evaluate(&config, &source, at).await;
        let whole = evaluate(&config, &source, at).await;
        assert_eq!(inc.evaluated_at, whole.evaluated_at);
        assert_eq!(
            inc.signals, whole.signals,
            "signals at step {compared} ({at})"
        );
        assert_eq!(
            inc.phases, whole.phases,
            "verdicts at step {compared} ({at})"
        );
        for s in &whole.signals {
            assert_ne!(s.status, Status::Error, "{s:?}");
            seen_statuses.insert((s.name.clone(), s.status));
            seen_series.extend(
                s.offenders
                    .iter()
                    .filter_map(|o| o.labels.get("s").cloned()),
            );
        }
        baselines_seen += whole
            .signals
            .iter()
            .filter(|s| s.name == "rel")
            .flat_map(|s| &s.offenders)
            .filter(|o| o.baseline.is_some())
            .count();
        decisions.push(whole.verdict("p").unwrap().decision);
        compared += 1;
    }
    // The data did change under the two evaluators: both breaching series were judged, the
    // signals moved between statuses, and the phase was held back.
    assert!(
        seen_series.contains("a") && seen_series.contains("b"),
        "{seen_series:?}"
    );
    let worst: Vec<_> = seen_statuses.iter().filter(|(n, _)| n == "worst").collect();
    assert!(worst.len() >= 2, "{seen_statuses:?}");
    assert!(decisions.contains(&Decision::NoGo), "{decisions:?}");
    assert!(
        baselines_seen > 0,
        "the relative signal was judged against a baseline"
    );
}
