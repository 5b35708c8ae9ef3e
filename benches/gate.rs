//! How fast the pure core and the HTTP path are, at the size of a large pack.
//! Figures are written down in BENCHMARKS.md; run with `cargo bench --bench gate`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tokio::sync::watch;
use tower::ServiceExt;
use upgrade_gate::config::Config;
use upgrade_gate::engine::fleet::{ClusterSnapshot, FleetSnapshot, GoSince, Wave};
use upgrade_gate::engine::grid::Grid;
use upgrade_gate::engine::series::Series;
use upgrade_gate::engine::snapshot::{windows, Snapshot};
use upgrade_gate::server::bodies::Bodies;
use upgrade_gate::server::metrics::Metrics;
use upgrade_gate::server::page::Pages;
use upgrade_gate::server::router::{router, AppState};

const AT: i64 = 1_800_000_000;

/// A pack of `signals` signals over six phases with `stable_for: 15m`, `for: 5m`, 30 s steps.
fn config(signals: usize) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let phases = [
        "precheck",
        "karpenter",
        "istio",
        "addons",
        "control-plane",
        "nodes",
    ];
    let mut yaml = String::from("evaluation: {interval: 30s}\nphases:\n");
    for p in phases {
        yaml.push_str(&format!("  - {{name: {p}, stable_for: 15m}}\n"));
    }
    yaml.push_str("signals:\n");
    for i in 0..signals {
        yaml.push_str(&format!(
            "  - {{name: s{i}, query: m{i}, warn: \"> 0.5\", fail: \"> 1\", for: 5m, phases: [{}]}}\n",
            phases[i % phases.len()]
        ));
    }
    let path = dir.path().join("bench.yaml");
    std::fs::write(&path, yaml).unwrap();
    upgrade_gate::config::load(Some(&path)).unwrap()
}

/// `series` series per signal on every step of its window, a few of them breaching.
fn answers(
    config: &Config,
    series: usize,
) -> Vec<Result<Grid, upgrade_gate::prometheus::error::SourceError>> {
    windows(&config.pack, config.evaluation.step_secs(), AT, AT)
        .iter()
        .map(|w| {
            let series: Vec<Series> = (0..series)
                .map(|j| Series {
                    labels: [(
                        "destination_service".to_string(),
                        format!("svc-{j}.ns.svc.cluster.local"),
                    )]
                    .into(),
                    samples: (0..w.len())
                        .map(|k| {
                            (
                                w.start + w.step * k as i64,
                                if j % 17 == 0 {
                                    1.5
                                } else {
                                    0.1 * (k % 5) as f64
                                },
                            )
                        })
                        .collect(),
                })
                .collect();
            Ok(Grid::from_series(*w, &series))
        })
        .collect()
}

fn evaluation(c: &mut Criterion) {
    let mut group = c.benchmark_group("judge_snapshot");
    for (signals, series) in [(20, 10), (20, 200), (100, 50)] {
        let config = config(signals);
        let answers = answers(&config, series);
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{signals}_signals_x_{series}_series")),
            &(config, answers),
            |b, (config, answers)| {
                b.iter(|| {
                    black_box(Snapshot::judge(
                        &config.pack,
                        config.evaluation.step_secs(),
                        AT,
                        answers,
                    ))
                })
            },
        );
    }
    group.finish();
}

fn http(c: &mut Criterion) {
    let config = config(20);
    let snapshot = Arc::new(Snapshot::judge(
        &config.pack,
        config.evaluation.step_secs(),
        AT,
        &answers(&config, 50),
    ));
    let metrics = Arc::new(Metrics::new());
    metrics.observe(&snapshot);
    let (_tx, rx) = watch::channel(Some(Arc::new(Bodies::encode(snapshot))));
    let (_config_tx, config) = watch::channel(Arc::new(config));
    let (reload, _) = tokio::sync::mpsc::channel(1);
    let (_page_tx, page) = watch::channel(None);
    let app = router(AppState {
        bodies: rx,
        metrics,
        config,
        reload,
        pages: Pages::with(page),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for path in ["/gate/istio", "/metrics"] {
        c.bench_function(&format!("http_get{}", path.replace('/', "_")), |b| {
            b.to_async(&runtime).iter(|| {
                let app = app.clone();
                async move {
                    let request = axum::http::Request::get(path)
                        .body(axum::body::Body::empty())
                        .unwrap();
                    let response = app.oneshot(request).await.unwrap();
                    black_box(
                        axum::body::to_bytes(response.into_body(), usize::MAX)
                            .await
                            .unwrap(),
                    )
                }
            })
        });
    }
}

/// The default pack's size (20 signals, six phases) exported for one gate, and for a fleet of 200
/// clusters in four waves (the same snapshot for each): the per-evaluation update and one scrape.
fn fleet_metrics(c: &mut Criterion) {
    let config = config(20);
    let snapshot = Snapshot::judge(
        &config.pack,
        config.evaluation.step_secs(),
        AT,
        &answers(&config, 10),
    );
    let names: Vec<String> = (1..=200).map(|i| format!("c{i}")).collect();
    let waves: Vec<Wave> = names
        .chunks(50)
        .enumerate()
        .map(|(i, clusters)| Wave {
            name: format!("w{i}"),
            clusters: clusters.to_vec(),
            soak: std::time::Duration::ZERO,
        })
        .collect();
    let clusters = waves
        .iter()
        .flat_map(|w| {
            w.clusters.iter().map(|c| ClusterSnapshot {
                cluster: c.clone(),
                wave: w.name.clone(),
                go_since: None,
                snapshot: snapshot.clone(),
            })
        })
        .collect();
    let at = chrono::DateTime::from_timestamp(AT, 0).unwrap();
    let fleet = FleetSnapshot::new(at, clusters, &waves, &mut GoSince::default(), 0);
    let mut group = c.benchmark_group("metrics");
    group.sample_size(20);
    let single = Metrics::new();
    group.bench_function("observe_1_gate", |b| b.iter(|| single.observe(&snapshot)));
    group.bench_function("encode_1_gate", |b| b.iter(|| black_box(single.encode())));
    let many = Metrics::new();
    group.bench_function("export_fleet_200_clusters", |b| {
        b.iter(|| many.export_fleet(&fleet))
    });
    group.bench_function("encode_200_clusters", |b| {
        b.iter(|| black_box(many.encode()))
    });
    eprintln!(
        "metrics text: 1 gate {} bytes, 200 clusters {} bytes",
        single.encode().len(),
        many.encode().len()
    );
    group.finish();
}

criterion_group!(benches, evaluation, http, fleet_metrics);
criterion_main!(benches);
