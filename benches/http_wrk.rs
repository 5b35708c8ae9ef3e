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

use std::process::Command;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use upgrade_gate::engine::grid::Grid;
use upgrade_gate::engine::series::Series;
use upgrade_gate::engine::snapshot::{windows, Snapshot};
use upgrade_gate::server::bodies::Bodies;
use upgrade_gate::server::listener;
use upgrade_gate::server::metrics::Metrics;
use upgrade_gate::server::router::AppState;

/// Pairs of short runs: the machine's speed drifts by tens of percent over seconds (a shared
/// host), so many short runs side by side, compared pair by pair, say more than a few long ones.
const ROUNDS: usize = 30;
const SECONDS_PER_RUN: &str = "2s";
const PATH: &str = "/gate/istio";
/// The core the servers run on when there are two or more; wrk gets the next one.
const SERVER_CORE: &str = "0";
const WRK_CORE: &str = "1";

/// Requests per second and 99th percentile latency (ms) of one `wrk -t1 -c32` run.
fn wrk(base: &str, pinned: bool) -> (f64, f64) {
    let url = format!("{base}{PATH}");
    let duration = format!("-d{SECONDS_PER_RUN}");
    let wrk_args = ["wrk", "-t1", "-c32", &duration, "--latency", url.as_str()];
    let out = if pinned {
        Command::new("taskset")
            .args(["-c", WRK_CORE])
            .args(wrk_args)
            .output()
    } else {
        Command::new(wrk_args[0]).args(&wrk_args[1..]).output()
    }
    .expect("wrk runs (Debian package `wrk`)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
    };
    let rps: f64 = field("Requests/sec:").parse().unwrap();
    let p99 = field("99%");
    let ms = if let Some(us) = p99.strip_suffix("us") {
        us.parse::<f64>().unwrap() / 1000.0
    } else if let Some(ms) = p99.strip_suffix("ms") {
        ms.parse().unwrap()
    } else {
        p99.trim_end_matches('s').parse::<f64>().unwrap() * 1000.0
    };
    (rps, ms)
}

/// Puts every thread of this process (the runtime's, and those it starts later) on one core.
fn pin_servers() -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        return false;
    }
    let pid = std::process::id().to_string();
    Command::new("taskset")
        .args(["-a", "-p", "-c", SERVER_CORE, &pid])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn main() {
    // One worker: the servers have one core, and a second worker there would only contend.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let pinned = pin_servers();
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
        let (status, body) = bodies.gate("istio").unwrap();
        let (_tx, bodies) = watch::channel(Some(Arc::new(bodies)));
        let (_config_tx, config) = watch::channel(Arc::new(config));
        let (reload, _reloads) = tokio::sync::mpsc::channel(1);
        let (_page_tx, page) = watch::channel(None);
        let app = upgrade_gate::server::app(AppState {
            bodies,
            metrics: Arc::new(Metrics::new()),
            config: config.clone(),
            reload,
            pages: upgrade_gate::server::page::Pages::with(page),
        });
        let gate_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gate = format!("http://{}", gate_listener.local_addr().unwrap());
        tokio::spawn(listener::serve(
            gate_listener,
            app,
            config,
            std::future::pending(),
        ));

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
            tokio::task::spawn_blocking(move || wrk(&base, pinned))
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
