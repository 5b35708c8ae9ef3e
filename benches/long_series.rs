//! Reading range answers of long series, 11,000 points each (Prometheus' limit per series, about
//! 300 kB of JSON a series), as the gate reads them: in 16 KiB chunks as they arrive, onto the
//! grid. Reference, in the same run: serde_json parsing the same bytes whole, from one slice, into
//! a typed struct that borrows every string (the fastest serde_json reading there is, keeping
//! nothing but the text's parts) and, for one series, into a `Value`.
//! Figures are written down in BENCHMARKS.md; run with `cargo bench --bench long_series`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use serde::Deserialize;
use upgrade_gate::engine::series::Window;
use upgrade_gate::prometheus::matrix;

const POINTS: i64 = 11_000;
const STEP: i64 = 15;
const START: i64 = 1_700_000_000;
/// About what hyper hands the reader per chunk on loopback.
const CHUNK: usize = 16 << 10;

/// `series` series of `POINTS` points in Prometheus' compact form, labels and values as
/// `scripts/bench/fake-prometheus.py` makes them.
fn answer_of(series: usize) -> (Vec<u8>, Window) {
    let mut body = String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
    for i in 0..series {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"metric":{{"namespace":"ns-{}","pod":"long-pod-{i:06}","container":"app"}},"values":["#,
            i % 50
        ));
        for k in 0..POINTS {
            let t = START + k * STEP;
            let value = ((i as i64 * 7 + t) % 100) as f64 / 100.0;
            if k > 0 {
                body.push(',');
            }
            body.push_str(&format!(r#"[{t},"{value}"]"#));
        }
        body.push_str("]}");
    }
    body.push_str("]}}");
    let window = Window {
        start: START,
        end: START + (POINTS - 1) * STEP,
        step: STEP,
    };
    (body.into_bytes(), window)
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    status: &'a str,
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow, rename = "resultType")]
    result_type: &'a str,
    #[serde(borrow)]
    result: Vec<Series<'a>>,
}

#[derive(Deserialize)]
struct Series<'a> {
    #[serde(borrow)]
    metric: HashMap<&'a str, &'a str>,
    #[serde(borrow)]
    values: Vec<(f64, &'a str)>,
}

fn compare(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, series: usize) {
    let (body, window) = answer_of(series);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("gate, 16 KiB chunks", |b| {
        b.iter(|| {
            let grid = matrix::parse(body.chunks(CHUNK), window, 10_000, Duration::from_secs(60));
            black_box(grid.unwrap().series_count())
        })
    });
    group.bench_function("serde_json typed, whole", |b| {
        b.iter(|| {
            let answer: Answer = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                (answer.status, answer.data.result_type),
                ("success", "matrix")
            );
            black_box(
                answer
                    .data
                    .result
                    .iter()
                    .map(|s| s.values.len() + s.metric.len())
                    .sum::<usize>(),
            )
        })
    });
    if series == 1 {
        // A `Value` of 2,000 series would take about 3 GB.
        group.bench_function("serde_json Value, whole", |b| {
            b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(&body).unwrap()))
        });
    }
}

fn long_series(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_series_of_11000_points");
    compare(&mut group, 1);
    group.finish();
    let mut group = c.benchmark_group("2000_series_of_11000_points");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    compare(&mut group, 2_000);
    group.finish();
}

criterion_group!(benches, long_series);
criterion_main!(benches);
