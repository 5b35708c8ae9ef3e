//! `/gate/{phase}` under load, over real sockets, against a bare axum handler serving the same
//! bytes from the same process: the reference for what the gate's own work costs per request.
//! `wrk` (Debian package `wrk`) runs against each in turn, several rounds alternating, so that
//! both see the same machine. Figures go in BENCHMARKS.md; run with `cargo bench --bench http_wrk`.

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
use upgrade_gate::server::answers::Answers;
use upgrade_gate::server::metrics::Metrics;
use upgrade_gate::server::router::{router, AppState};

const ROUNDS: usize = 5;
const PATH: &str = "/gate/istio";

/// Requests per second and 99th percentile latency (ms) of one `wrk -t1 -c32 -d5s` run.
fn wrk(base: &str) -> (f64, f64) {
    let out = Command::new("wrk")
        .args(["-t1", "-c32", "-d5s", "--latency", &format!("{base}{PATH}")])
        .output()
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

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
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
        let answers = Answers::encode(Arc::new(Snapshot::judge(&config.pack, step, at, &answers)));
        let (status, body) = answers.gate("istio").unwrap();
        let (_tx, snapshot) = watch::channel(Some(Arc::new(answers)));
        let (_config_tx, config) = watch::channel(Arc::new(config));
        let (reload, _reloads) = tokio::sync::mpsc::channel(1);
        let gate = serve(router(AppState {
            snapshot,
            metrics: Arc::new(Metrics::new()),
            config,
            reload,
        }))
        .await;
        let bytes: Bytes = body.clone();
        let bare = serve(Router::new().route(
            PATH,
            get(move || {
                let bytes = bytes.clone();
                async move { (status, [(CONTENT_TYPE, "application/json")], bytes) }
            }),
        ))
        .await;
        println!("{PATH}: {} bytes, status {status}", body.len());
        let (mut gate_runs, mut bare_runs) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            gate_runs.push(tokio::task::spawn_blocking({
                let gate = gate.clone();
                move || wrk(&gate)
            })
            .await
            .unwrap());
            bare_runs.push(tokio::task::spawn_blocking({
                let bare = bare.clone();
                move || wrk(&bare)
            })
            .await
            .unwrap());
        }
        let median = |runs: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(pick).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (g_rps, b_rps) = (median(&gate_runs, |r| r.0), median(&bare_runs, |r| r.0));
        let (g_p99, b_p99) = (median(&gate_runs, |r| r.1), median(&bare_runs, |r| r.1));
        println!("runs (req/s, p99 ms): gate {gate_runs:?}; bare {bare_runs:?}");
        println!(
            "median of {ROUNDS}: gate {g_rps:.0} req/s, p99 {g_p99:.2} ms; bare axum {b_rps:.0} req/s, p99 {b_p99:.2} ms; \
             throughput {:.3}x, p99 {:.2}x",
            g_rps / b_rps,
            g_p99 / b_p99
        );
    });
}
