//! A day's report of the default pack: how big the page is and how long it takes to build, against
//! a real Prometheus on loopback backfilled with 24 hours of the istio incident at 30 s; and `/`
//! served from memory under `wrk` (asking for gzip, as browsers do), as a ratio to `/gate/istio`
//! of the same server in the same run.
//! Figures go in BENCHMARKS.md; run with `cargo bench --bench report`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/wrk.rs"]
mod wrk;

use std::sync::Arc;
use std::time::Instant;

use common::prometheus::TestPrometheus;
use upgrade_gate::engine::baseline::Anchor;
use upgrade_gate::evaluation;
use upgrade_gate::prometheus::source::PrometheusSource;
use upgrade_gate::report::{self, html};
use upgrade_gate::server::bodies::Bodies;
use upgrade_gate::server::page::Page;
use upgrade_gate::simulate::scenarios::{openmetrics_window, Scenario, Window};

const DAY: i64 = 24 * 3600;
const BUILDS: usize = 5;
const ROUNDS: usize = 10;
const ACCEPT: &str = "Accept-Encoding: gzip, deflate, br";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runtime = wrk::runtime();
    let now = chrono::Utc::now().timestamp();
    let at = now - now % 30;
    let from = at - DAY;
    // The incident an hour long, 20 hours ago (the simulator's series begin six hours before its
    // window: so they cover the whole day); the history before the day for the first step's
    // `for` and `stable_for`, and the baselines pinned at the day's start.
    let started = Instant::now();
    let incident = Window::new(at - 20 * 3600, at - 19 * 3600);
    let prom = TestPrometheus::start(&openmetrics_window(
        Scenario::Istio5xxSpike,
        incident,
        from - 2 * 3600,
        at,
        30,
    ));
    println!(
        "backfilled 26 h in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut config = upgrade_gate::config::load(None).unwrap();
    config.prometheus.url = prom.url().to_string();
    for s in &mut config.pack.signals {
        s.baseline.anchor = Anchor::Fixed(from);
    }
    let source = PrometheusSource::new(&config.prometheus).unwrap();

    let (mut page, mut times) = (String::new(), Vec::new());
    for _ in 0..BUILDS {
        let started = Instant::now();
        let built = runtime
            .block_on(report::collect(
                &config,
                &source,
                config.pack.phases.clone(),
                from,
                at,
            ))
            .unwrap();
        page = html::render(&built);
        if times.is_empty() {
            let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
            std::fs::write(out.join("report-24h.html"), &page).unwrap();
        }
        times.push(started.elapsed().as_secs_f64());
        if times.len() == 1 {
            // For a look at what the day held: the Markdown beside the page.
            let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
            std::fs::write(out.join("report-24h.md"), report::markdown::render(&built)).unwrap();
            let names: Vec<&str> = built.signals.iter().map(|s| s.name.as_str()).collect();
            println!(
                "signals not ok: {names:?}; incidents: {}",
                built.incidents.len()
            );
        }
    }
    println!(
        "24 h report of the default pack (30 s steps, 6 phases): {} bytes ({:.2} MB), built in {:.2} s (median of {BUILDS}: {times:.2?})",
        page.len(),
        page.len() as f64 / 1e6,
        median(times.clone())
    );

    if !wrk::available() {
        println!("wrk is not installed (Debian package `wrk`): no throughput to measure");
        return;
    }
    let pinned = wrk::pin_server(std::process::id());
    runtime.block_on(async {
        let snapshot = Arc::new(evaluation::evaluate(&config, &source, at).await);
        let page = Page::new(page);
        println!("the page gzipped: {} bytes", page.gzipped().len());
        let base = wrk::serve(config, Bodies::encode(snapshot), Some(page)).await;
        // As a browser asks: `/` comes gzipped (`/gate` is JSON either way). The servers run on
        // this runtime's worker while the runs are taken on a blocking thread.
        let (page_url, gate_url) = (format!("{base}/"), format!("{base}/gate/istio"));
        let pairs = tokio::task::spawn_blocking(move || {
            wrk::Pairs::run(ROUNDS, &page_url, &gate_url, pinned, Some(ACCEPT))
        })
        .await
        .unwrap();
        let ((page_rps, page_p99), (gate_rps, gate_p99)) = pairs.medians();
        let (ratio, _) = pairs.ratios();
        println!(
            "wrk -t1 -c32, {ROUNDS} pairs, separate cores: {pinned}; / {page_rps:.0} req/s, p99 {page_p99:.2} ms; /gate/istio {gate_rps:.0} req/s, p99 {gate_p99:.2} ms; / : /gate throughput, median of pair ratios {ratio:.3}x",
        );
    });
}
