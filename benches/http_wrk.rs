//! `/gate/{phase}` under load, over real sockets, against a bare axum handler serving the same
//! bytes from the same process: the reference for what the gate's own work costs per request.
//!
//! The gate is served as `serve` serves it: the routes behind the body limit and the token check
//! (`server::app`), on the listener with its connection cap and header deadline. The
//! reference is `axum::serve` with one handler. `wrk` (Debian package `wrk`) runs against each in
//! turn, several rounds, the order swapped every round so that drift on the machine falls on both.
//! On two or more cores the servers share one core and wrk has another (`taskset`), so that the
//! two do not fight over a core, which made the ratio move by several percent from run to run.
//! Figures go in BENCHMARKS.md; run with `cargo bench --bench http_wrk`.

#[path = "common/wrk.rs"]
mod wrk;

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use upgrade_gate::engine::grid::Grid;
use upgrade_gate::engine::series::Series;
use upgrade_gate::engine::snapshot::{windows, Snapshot};
use upgrade_gate::server::bodies::Bodies;
use upgrade_gate::server::scope::Target;

/// Pairs of short runs: the machine's speed drifts by tens of percent over seconds (a shared
/// host), so many short runs side by side, compared pair by pair, say more than a few long ones.
const ROUNDS: usize = 30;
const PATH: &str = "/gate/istio";

fn main() {
    let runtime = wrk::runtime();
    let pinned = wrk::pin_servers();
    runtime.block_on(async {
        // The default pack, every signal healthy, judged now so that the verdict is fresh.
        let config = upgrade_gate::config::load(None).unwrap();
        let step = config.evaluation.step_secs();
        let now = chrono::Utc::now().timestamp();
        let at = now - now % step;
        let answers: Vec<Result<Grid, String>> = windows(&config.pack, step, at, at)
            .into_iter()
            .map(|w| {
                let series = Series {
                    labels: [("service".to_string(), "a".to_string())].into(),
                    samples: (0..w.len() as i64)
                        .map(|k| (w.start + k * step, 0.0))
                        .collect(),
                };
                Ok(Grid::from_series(w, &[series]))
            })
            .collect();
        let bodies = Bodies::encode(Arc::new(Snapshot::judge(&config.pack, step, at, &answers)));
        let (status, body) = bodies.gate("istio", Target::Gate).unwrap();
        let gate = wrk::serve(config, bodies, None).await;

        let bytes: Bytes = body.clone();
        let bare_app = Router::new().route(
            PATH,
            get(move || {
                let bytes = bytes.clone();
                async move { (status, [(CONTENT_TYPE, "application/json")], bytes) }
            }),
        );
        let bare_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bare = format!("http://{}", bare_listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(bare_listener, bare_app).await });

        println!(
            "{PATH}: {} bytes, status {status}; servers and wrk on separate cores: {pinned}",
            body.len()
        );
        let run = |base: &String| {
            let base = base.clone();
            tokio::task::spawn_blocking(move || wrk::run(&format!("{base}{PATH}"), pinned, None))
        };
        let (mut gate_runs, mut bare_runs) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                gate_runs.push(run(&gate).await.unwrap());
                bare_runs.push(run(&bare).await.unwrap());
            } else {
                bare_runs.push(run(&bare).await.unwrap());
                gate_runs.push(run(&gate).await.unwrap());
            }
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        type Pick = fn(&(f64, f64)) -> f64;
        let (rps, p99): (Pick, Pick) = (|r| r.0, |r| r.1);
        let of = |runs: &[(f64, f64)], pick: Pick| median(runs.iter().map(pick).collect());
        let ratios = |pick: Pick| {
            let pairs = gate_runs.iter().zip(&bare_runs);
            median(pairs.map(|(g, b)| pick(g) / pick(b)).collect())
        };
        println!("runs (req/s, p99 ms): gate {gate_runs:?}; bare {bare_runs:?}");
        println!(
            "median of {ROUNDS} runs each: gate {:.0} req/s, p99 {:.3} ms; \
             bare axum {:.0} req/s, p99 {:.3} ms",
            of(&gate_runs, rps),
            of(&gate_runs, p99),
            of(&bare_runs, rps),
            of(&bare_runs, p99),
        );
        println!(
            "median of the {ROUNDS} side-by-side ratios: throughput {:.3}x, p99 {:.2}x",
            ratios(rps),
            ratios(p99),
        );
    });
}
