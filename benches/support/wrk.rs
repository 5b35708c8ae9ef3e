//! `wrk` runs taken in pairs, shared by the HTTP benches: the machine's speed drifts by tens of
//! percent over seconds (a shared host), so many short runs of two servers side by side,
//! compared pair by pair, say more than a few long ones.
//!
//! On two or more cores the servers run on one core and wrk on another (`taskset`), so that the
//! two do not fight over a core, which made the ratio move by several percent from run to run.
//! Also the gate served as `serve` serves it, from what is given in memory.

// Each bench uses its part of this module.
#![allow(dead_code)]

use std::process::Command;
use std::sync::Arc;

use tokio::sync::watch;
use upgrade_gate::config::Config;
use upgrade_gate::server::bodies::Bodies;
use upgrade_gate::server::listener;
use upgrade_gate::server::metrics::Metrics;
use upgrade_gate::server::page::{Page, Pages};
use upgrade_gate::server::router::AppState;

/// The core the servers run on when there are two or more; wrk gets the next one.
const SERVER_CORE: &str = "0";
const WRK_CORE: &str = "1";
const SECONDS_PER_RUN: &str = "2s";

/// Requests per second and 99th percentile latency (ms) of one `wrk -t1 -c32` run on `url`,
/// each request with `header` (`Name: value`) when given.
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

/// Puts every thread of process `pid` (those it starts later too) on the servers' core, if
/// there are two or more cores: whether it did.
pub fn pin_server(pid: u32) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        return false;
    }
    Command::new("taskset")
        .args(["-a", "-p", "-c", SERVER_CORE, &pid.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether wrk is installed: a bench without it says so and skips its throughput part.
pub fn available() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `rounds` runs of each of two URLs, the order swapped every round so that drift on the
/// machine falls on both: (requests/s, p99 ms) per run.
pub struct Pairs {
    pub a: Vec<(f64, f64)>,
    pub b: Vec<(f64, f64)>,
}

impl Pairs {
    /// Each request with `header` when given (`Accept-Encoding: gzip`, as a browser asks).
    pub fn run(rounds: usize, a: &str, b: &str, pinned: bool, header: Option<&str>) -> Pairs {
        let (mut runs_a, mut runs_b) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            if round % 2 == 0 {
                runs_a.push(run(a, pinned, header));
                runs_b.push(run(b, pinned, header));
            } else {
                runs_b.push(run(b, pinned, header));
                runs_a.push(run(a, pinned, header));
            }
        }
        Pairs {
            a: runs_a,
            b: runs_b,
        }
    }

    /// The median requests/s and p99 (ms) of `a`'s runs and of `b`'s.
    pub fn medians(&self) -> ((f64, f64), (f64, f64)) {
        let of = |runs: &[(f64, f64)]| {
            (
                median(runs.iter().map(|r| r.0).collect()),
                median(runs.iter().map(|r| r.1).collect()),
            )
        };
        (of(&self.a), of(&self.b))
    }

    /// The median of the side-by-side ratios a / b: (throughput, p99).
    pub fn ratios(&self) -> (f64, f64) {
        let pairs = || self.a.iter().zip(&self.b);
        (
            median(pairs().map(|(a, b)| a.0 / b.0).collect()),
            median(pairs().map(|(a, b)| a.1 / b.1).collect()),
        )
    }
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
