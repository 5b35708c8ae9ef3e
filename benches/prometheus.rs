//! One full evaluation of the default pack (28 signals, their `for` and `stable_for` windows)
//! against a real Prometheus on loopback holding the demo data, at several concurrency bounds.
//! Figures are written down in BENCHMARKS.md; run with `cargo bench --bench prometheus`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::prometheus::TestPrometheus;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use upgrade_gate::evaluation;
use upgrade_gate::prometheus::source::PrometheusSource;
use upgrade_gate::simulate::scenarios::{openmetrics, Scenario};

fn default_pack(c: &mut Criterion) {
    let now = chrono::Utc::now().timestamp();
    let at = now - now % 30;
    let prom = TestPrometheus::start(&openmetrics(Scenario::Healthy, at - 2 * 3600, at + 600, 30));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("evaluate_default_pack");
    group.sample_size(20);
    for concurrency in [1, 4, 8] {
        let mut config = upgrade_gate::config::load(None).unwrap();
        config.prometheus.url = prom.url().to_string();
        config.evaluation.concurrency = concurrency;
        let source = PrometheusSource::new(&config.prometheus).unwrap();
        group.bench_with_input(
            BenchmarkId::new("concurrency", concurrency),
            &config,
            |b, config| {
                b.to_async(&runtime)
                    .iter(|| async { black_box(evaluation::evaluate(config, &source, at).await) })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, default_pack);
criterion_main!(benches);
