//! `wrk` runs for the HTTP benchmarks (Debian package `wrk`): one short run against a URL, and
//! the servers of this process pinned to one core while wrk has another (`taskset`), so that the
//! two do not fight over a core, which made ratios move by several percent from run to run;
//! and the gate served as `serve` serves it, from what is given in memory.

use std::process::Command;
use std::sync::Arc;

use tokio::sync::watch;
use upgrade_gate::config::Config;
use upgrade_gate::server::bodies::Bodies;
use upgrade_gate::server::listener;
use upgrade_gate::server::metrics::Metrics;
use upgrade_gate::server::page::{Page, Pages};
use upgrade_gate::server::router::AppState;

const SECONDS_PER_RUN: &str = "2s";
/// The core the servers run on when there are two or more; wrk gets the next one.
const SERVER_CORE: &str = "0";
const WRK_CORE: &str = "1";

/// Requests per second and 99th percentile latency (ms) of one `wrk -t1 -c32` run, each request
/// with `header` (`Name: value`) when given.
pub fn run(url: &str, pinned: bool, header: Option<&str>) -> (f64, f64) {
    let duration = format!("-d{SECONDS_PER_RUN}");
    let mut wrk_args = vec!["wrk", "-t1", "-c32", &duration, "--latency"];
    if let Some(header) = header {
        wrk_args.extend(["-H", header]);
    }
    wrk_args.push(url);
    let out = if pinned {
        Command::new("taskset")
            .args(["-c", WRK_CORE])
            .args(&wrk_args)
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
pub fn pin_servers() -> bool {
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

/// The gate as `serve` serves it (`server::app`: body limit, token check, routes, on
/// `server::listener`: connection cap, header deadline) on a loopback port, answering from
/// `bodies` and `page`; its base URL. It serves until the process ends.
pub async fn serve(config: Config, bodies: Bodies, page: Option<Page>) -> String {
    let (bodies_tx, bodies) = watch::channel(Some(Arc::new(bodies)));
    let (page_tx, page) = watch::channel(page.map(Arc::new));
    let (config_tx, config) = watch::channel(Arc::new(config));
    let (reload, reloads) = tokio::sync::mpsc::channel(1);
    // Nothing changes them while the benchmark runs; they must outlive it.
    std::mem::forget((bodies_tx, page_tx, config_tx, reloads));
    let app = upgrade_gate::server::app(AppState {
        bodies,
        metrics: Arc::new(Metrics::new()),
        config: config.clone(),
        reload,
        pages: Pages::with(page),
    });
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", socket.local_addr().unwrap());
    tokio::spawn(listener::serve(socket, app, config, std::future::pending()));
    base
}

/// One worker: the servers have one core, and a second worker there would only contend.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}
