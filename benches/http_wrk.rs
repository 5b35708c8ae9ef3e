//! `/gate/{phase}` under load, over real sockets, against a bare axum handler serving the same
//! bytes from the same process: the reference for what the gate's own work costs per request.
//!
//! The gate is served as `serve` serves it: the routes behind the body limit and the token check
//! (`server::app`), on the listener with its connection cap and header deadline. The
//! reference is `axum::serve` with one handler. `wrk` (Debian package `wrk`) runs against each in
//! turn, several rounds, the order swapped every round so that drift on the machine falls on both.
//! The runs and their pinning to cores are `support/wrk.rs`'s, shared with `benches/fleet.rs`.
//! Figures go in BENCHMARKS.md; run with `cargo bench --bench http_wrk`.

#[path = "support/wrk.rs"]
mod wrk;

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use upgrade_gate::engine::baseline::Baselines;
use upgrade_gate::engine::grid::Grid;
use upgrade_gate::engine::series::Series;
use upgrade_gate::engine::snapshot::{windows, Snapshot};
use upgrade_gate::server::bodies::Bodies;
use upgrade_gate::server::scope::Target;
use wrk::Pairs;

/// Pairs of short runs (see `support/wrk.rs`).
const ROUNDS: usize = 30;
const PATH: &str = "/gate/istio";

fn main() {
    if !wrk::available() {
        println!("wrk is not installed (Debian package `wrk`): nothing to measure");
        return;
    }
    let runtime = wrk::runtime();
    let pinned = wrk::pin_server(std::process::id());
    let (gate, bare) = runtime.block_on(async {
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
        // A relative signal is judged against its baseline: each series' is 1, so 0 is healthy.
        let labels: upgrade_gate::engine::series::Labels =
            [("service".to_string(), "a".to_string())].into();
        let baselines: Vec<Baselines> = config
            .pack
            .signals
            .iter()
            .map(|s| match s.is_relative() {
                true => Baselines::Fixed([(labels.clone(), 1.0)].into()),
                false => Baselines::Unused,
            })
            .collect();
        let snapshot = Snapshot::judge_against(&config.pack, step, at, &answers, &baselines);
        let bodies = Bodies::encode(Arc::new(snapshot));
        let (status, body) = bodies.gate("istio", Target::Gate).unwrap();
        assert_eq!(status, 200, "the verdict is go: {body:?}");
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
        (gate, bare)
    });
    // The servers run on the runtime's worker while the runs are taken from here.
    let pairs = Pairs::run(
        ROUNDS,
        &format!("{gate}{PATH}"),
        &format!("{bare}{PATH}"),
        pinned,
        None,
    );
    let ((gate_rps, gate_p99), (bare_rps, bare_p99)) = pairs.medians();
    let (rps, p99) = pairs.ratios();
    println!(
        "runs (req/s, p99 ms): gate {:?}; bare {:?}",
        pairs.a, pairs.b
    );
    println!(
        "median of {ROUNDS} runs each: gate {gate_rps:.0} req/s, p99 {gate_p99:.3} ms; \
         bare axum {bare_rps:.0} req/s, p99 {bare_p99:.3} ms"
    );
    println!("median of the {ROUNDS} side-by-side ratios: throughput {rps:.3}x, p99 {p99:.2}x");
}
