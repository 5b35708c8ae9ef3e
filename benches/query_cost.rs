//! What one evaluation of the default pack costs Prometheus, in the unit Amazon Managed Service
//! for Prometheus bills and a shared Prometheus pays in CPU: samples processed
//! (`totalQueryableSamples` with `stats=all`). Compared, in the same run and on the same data,
//! with the pack's queries asked once as instant queries, the simplest poller there is.
//!
//! A proxy between the gate and a real Prometheus (Debian's, holding the healthy demo data at a
//! 15 s scrape resolution) adds `stats=all` to every query and sums the samples. The pack's
//! relative signals compare with a moving baseline (the default); its offset is set to 2 h here,
//! not 1 d, so that the data holds the baselines without backfilling a day: what a baseline
//! query costs depends on its window, not on how far back it is.
//!
//! Then a fleet (`simulate --clusters`' model, 2 and 8 clusters in one store): one steady-state
//! fleet evaluation against every cluster's single gate asking its queries as instant queries,
//! and the number of queries per evaluation, which must not grow with the clusters. Figures go in
//! BENCHMARKS.md; run with `cargo bench --bench query_cost`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::counting::{self, Counting};
use common::prometheus::TestPrometheus;
use upgrade_gate::config::{BackendScope, Config, FleetConfig, Wave};
use upgrade_gate::engine::baseline::Anchor;
use upgrade_gate::evaluation::fleet::FleetEvaluator;
use upgrade_gate::evaluation::{evaluate, Incremental};
use upgrade_gate::prometheus::source::PrometheusSource;
use upgrade_gate::simulate::fleet::Fleet;
use upgrade_gate::simulate::scenarios::{openmetrics, Scenario};

/// Steady-state evaluations averaged per figure.
const STEPS: i64 = 4;

/// Instant queries: (query, time).
type Instants = Vec<(String, i64)>;

/// Every query a single gate asks for one new step at `t`, as (query, time) instant queries:
/// each signal's at `t`, and each moving baseline's one offset back. `limit` writes a query as
/// sent (for a fleet: limited to one cluster).
fn per_step(config: &Config, t: i64, limit: impl Fn(&str) -> String) -> (Instants, Instants) {
    let signals = config
        .pack
        .signals
        .iter()
        .map(|s| (limit(&s.query), t))
        .collect();
    let baselines = config
        .pack
        .signals
        .iter()
        .filter(|s| s.is_relative())
        .filter_map(|s| match s.baseline.anchor {
            Anchor::Moving(offset) => Some((limit(&s.query), t - offset.as_secs() as i64)),
            Anchor::Fixed(_) => None,
        })
        .collect();
    (signals, baselines)
}

/// Asks each (query, time) once as an instant query.
async fn instant_queries(proxy: &str, queries: &[(String, i64)]) {
    let http = reqwest::Client::new();
    for (query, time) in queries {
        http.post(format!("{proxy}/api/v1/query"))
            .form(&[("query", query.as_str()), ("time", &time.to_string())])
            .send()
            .await
            .unwrap();
    }
}

/// Samples processed by `work`.
async fn cost<F: std::future::Future>(samples: &AtomicU64, work: F) -> u64 {
    samples.store(0, Ordering::SeqCst);
    work.await;
    samples.load(Ordering::SeqCst)
}

async fn measure(config: &Config, proxy: &str, samples: &AtomicU64, at: i64) {
    let step = config.evaluation.step_secs();
    let source = PrometheusSource::new(&config.prometheus).unwrap();
    let whole = cost(samples, evaluate(config, &source, at)).await;

    let mut incremental = Incremental::default();
    incremental.evaluate(config, &source, at).await;
    let mut steady = 0;
    for k in 1..=STEPS {
        steady += cost(
            samples,
            incremental.evaluate(config, &source, at + k * step),
        )
        .await;
    }
    let steady = steady / STEPS as u64;

    // The same queries, once each, as instant queries at a step of the same run; then every other
    // query the gate asks: each moving baseline's own query at the one point a step adds to it.
    let (signals, baselines) = per_step(config, at + step, |q| q.to_string());
    let instant = cost(samples, instant_queries(proxy, &signals)).await;
    let baseline_points = cost(samples, instant_queries(proxy, &baselines)).await;
    let http = reqwest::Client::new();
    let instant_all = instant + baseline_points;
    // What `serve` paid before moving baselines were kept: each one's whole window, every time.
    let windows = upgrade_gate::engine::snapshot::windows(&config.pack, step, at, at);
    let baselines_whole = cost(samples, async {
        for (s, w) in config.pack.signals.iter().zip(windows) {
            if !s.is_relative() {
                continue;
            }
            let b = s.baseline.query_window(w);
            http.post(format!("{proxy}/api/v1/query_range"))
                .form(&[
                    ("query", s.query.as_str()),
                    ("start", &b.start.to_string()),
                    ("end", &b.end.to_string()),
                    ("step", &step.to_string()),
                ])
                .send()
                .await
                .unwrap();
        }
    })
    .await;
    // The alternative to query_offset: re-fetch a settle margin of one step with each new one.
    let settle = cost(samples, async {
        for s in &config.pack.signals {
            http.post(format!("{proxy}/api/v1/query_range"))
                .form(&[
                    ("query", s.query.as_str()),
                    ("start", &at.to_string()),
                    ("end", &(at + step).to_string()),
                    ("step", &step.to_string()),
                ])
                .send()
                .await
                .unwrap();
        }
    })
    .await;
    let ratio = |n: u64| n as f64 / instant as f64;
    let relative = config
        .pack
        .signals
        .iter()
        .filter(|s| s.is_relative())
        .count();
    println!(
        "interval {step}s, {} signals ({relative} with a moving baseline): instant queries {instant} samples; \
         whole windows and baselines {whole} ({:.1}x); incremental + 1-step settle margin {settle} ({:.2}x); \
         incremental with query_offset, baselines kept {steady} ({:.2}x); \
         the moving baselines' whole windows, which serve fetched every evaluation before, \
         on top of that {baselines_whole} ({:.2}x); \
         against every query the gate asks (baselines' new points too) as instant queries, \
         {instant_all} samples: incremental {:.2}x",
        config.pack.signals.len(),
        ratio(whole),
        ratio(settle),
        ratio(steady),
        ratio(baselines_whole),
        steady as f64 / instant_all as f64
    );
}

/// A fleet of `clusters` in one store: what one steady-state evaluation of the fleet gate costs,
/// against what a single gate per cluster would pay asking every one of its queries once as an
/// instant query (each limited to its cluster, as its own Prometheus holds only its series).
async fn measure_fleet(base: &Config, proxy: &str, counters: &Counting, at: i64, clusters: usize) {
    let step = base.evaluation.step_secs();
    let names: Vec<String> = (1..=clusters)
        .map(upgrade_gate::simulate::fleet::cluster_name)
        .collect();
    let mut config = base.clone();
    let fleet = FleetConfig {
        label: "cluster".into(),
        presence: "up".into(),
        waves: vec![Wave {
            name: "all".into(),
            clusters: names.clone(),
            soak: Duration::ZERO,
        }],
        backends: vec![],
    };
    config.fleet = Some(fleet.clone());
    let mut gate = FleetEvaluator::new(&config).unwrap();
    let first = gate.evaluate(&config, at).await;
    assert!(
        first
            .clusters
            .iter()
            .all(|c| c.snapshot.signals.iter().all(|s| s.error.is_none())),
        "every cluster is judged"
    );
    counters.queries.store(0, Ordering::SeqCst);
    let mut steady = 0;
    for k in 1..=STEPS {
        steady += cost(&counters.samples, gate.evaluate(&config, at + k * step)).await;
    }
    let steady = steady / STEPS as u64;
    let queries = counters.queries.load(Ordering::SeqCst) / STEPS as u64;
    let mut singles = 0;
    for name in &names {
        let scope = BackendScope {
            backend: None,
            clusters: vec![name.clone()],
        };
        let (signals, baselines) =
            per_step(&config, at + step, |q| fleet.rewrite(q, &scope).unwrap());
        singles += cost(&counters.samples, instant_queries(proxy, &signals)).await;
        singles += cost(&counters.samples, instant_queries(proxy, &baselines)).await;
    }
    println!(
        "fleet of {clusters} clusters, interval {step}s: steady-state evaluation {steady} samples in \
         {queries} queries; {clusters} single gates' queries as instant queries {singles} samples; \
         fleet {:.2}x",
        steady as f64 / singles as f64
    );
}

fn main() {
    let now = chrono::Utc::now().timestamp();
    let at = now - now % 60 - 600;
    // Before the pack's default configuration is read (as a pipeline's environment would be).
    std::env::set_var("UPGRADE_GATE__BASELINE__OFFSET", "2h");
    let prom = TestPrometheus::start(&openmetrics(
        Scenario::Healthy,
        at - 5 * 3600,
        at + 1200,
        15,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (proxy, counters) = counting::start(prom.url()).await;
        for interval in [30, 15] {
            let mut config = upgrade_gate::config::load(None).unwrap();
            config.prometheus.url = proxy.clone();
            config.evaluation.interval = Duration::from_secs(interval);
            measure(&config, &proxy, &counters.samples, at).await;
        }
    });
    // A fleet: the same healthy model per cluster, 3 h of it (the 2 h baseline offset and its
    // window fit), in one store.
    for clusters in [2, 8] {
        let fleet = Fleet::new("cluster", clusters, Scenario::Healthy, &[]).unwrap();
        let window = upgrade_gate::simulate::model::time::Window::new(at - 3 * 3600, at + 1200);
        let prom = TestPrometheus::start(&fleet.openmetrics(window, at - 3 * 3600, at + 1200, 15));
        runtime.block_on(async {
            let (proxy, counters) = counting::start(prom.url()).await;
            let mut config = upgrade_gate::config::load(None).unwrap();
            config.prometheus.url = proxy.clone();
            measure_fleet(&config, &proxy, &counters, at, clusters).await;
        });
    }
}
