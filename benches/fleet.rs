//! A fleet of 200 clusters in one Prometheus against one cluster (issue 18, item 7): what one
//! `upgrade-gate serve` in fleet mode costs per cluster, beside a single gate on one cluster of
//! the same model, both run as real processes in the same run.
//!
//! `simulate --clusters`' healthy model is backfilled into two real Prometheus (200 clusters;
//! 1 cluster), at a 30 s resolution over just the window the default pack needs (its moving
//! baselines moved to a 20 m offset and a 20 m window, as `query_cost` moves them: what a
//! baseline query costs depends on its window, not on how far back it is). Each gate asks its
//! Prometheus through a counting proxy (`stats=all`). Measured per gate: the evaluation's
//! wall time (`took_ms` of its "evaluation finished" log line), its CPU (utime + stime from
//! /proc), peak RSS (VmHWM), queries and samples per steady-state evaluation; then `wrk` on
//! `/gate/istio?cluster=c150` of the fleet gate against `/gate/istio` of the single gate,
//! paired runs alternated (`support/wrk.rs`, as `http_wrk`). Figures go in BENCHMARKS.md; run
//! with `cargo bench --bench fleet`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/wrk.rs"]
mod wrk;

use std::time::{Duration, Instant};

use common::counting::{self, Call, Counting};
use common::gate::GateProcess;
use common::prometheus::TestPrometheus;
use upgrade_gate::simulate::fleet::{cluster_name, Fleet};
use upgrade_gate::simulate::model::time::Window;
use upgrade_gate::simulate::scenarios::Scenario;

const CLUSTERS: usize = 200;
/// The first wave; the others are the second (`prod`).
const CANARY: usize = 20;
/// Evaluations measured after the second (the first fetches whole windows), 30 s apart.
const STEADY: usize = 8;
/// Seconds between backfilled samples.
const RESOLUTION: i64 = 30;
/// Backfilled before now: the default pack's longest window (15m `stable_for` + 10m `for`,
/// 30m `increase`) and a baseline 20m back over 20m, with a margin.
const HISTORY: i64 = 80 * 60;
/// Backfilled after now: the run must end before it.
const AHEAD: i64 = 30 * 60;
const ROUNDS: usize = 30;
const PATH: &str = "/gate/istio";
const ASKED: &str = "c150";
/// The moving baselines' offset here (the default is 1d).
const BASELINE_OFFSET: i64 = 20 * 60;

/// The built-in configuration (the default pack, default settings) with the gate's Prometheus,
/// listen address, the short baseline, a longer timeout for the fleet's first evaluation, and
/// `extra` appended.
fn config(prometheus: &str, listen: &str, offset: &str, extra: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/deploy/upgrade-gate.yaml")).unwrap();
    let mut text = text.lines().map(|l| format!("{l}\n")).collect::<String>();
    for (from, to) in [
        (
            "url: http://127.0.0.1:9090",
            format!("url: \"{prometheus}\""),
        ),
        ("timeout: 10s", "timeout: 60s".to_string()),
        ("query_offset: 0s", format!("query_offset: {offset}")),
        ("listen: 127.0.0.1:8080", format!("listen: \"{listen}\"")),
        (
            "\"../queries/*.yaml\"",
            format!("\"{root}/queries/*.yaml\""),
        ),
        ("offset: 1d", format!("offset: {BASELINE_OFFSET}s")),
        ("window: 1h", "window: 20m".to_string()),
    ] {
        assert!(
            text.contains(from),
            "deploy/upgrade-gate.yaml has no {from}"
        );
        text = text.replacen(from, &to, 1);
    }
    text + extra
}

/// The fleet section: c1..c20 in `canary`, the rest in `prod`.
fn fleet_section() -> String {
    let names =
        |r: std::ops::RangeInclusive<usize>| r.map(cluster_name).collect::<Vec<_>>().join(", ");
    format!(
        "fleet:\n  waves:\n    - {{name: canary, clusters: [{}]}}\n    \
         - {{name: prod, clusters: [{}], soak: 1h}}\n",
        names(1..=CANARY),
        names(CANARY + 1..=CLUSTERS)
    )
}

/// Every "evaluation finished" line so far: (the step judged, Unix seconds; `took_ms`).
fn evaluations(gate: &GateProcess) -> Vec<(i64, u64)> {
    gate.logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "evaluation finished")
        .map(|l| {
            let at = l["fields"]["evaluated_at"].as_str().unwrap();
            let at = chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .timestamp();
            (at, l["fields"]["took_ms"].as_u64().unwrap())
        })
        .collect()
}

/// The calls of the evaluation of step `at`: its signals' and presence query end at `at`, its
/// moving baselines' at `at` - the offset. Told apart by time rather than by when they arrive, so
/// that an evaluation that starts just as the bench reads the counters is not counted twice.
fn of_step(calls: &[Call], at: i64) -> impl Iterator<Item = &Call> {
    calls.iter().filter(move |c| {
        let end = c.range.1 as i64;
        end == at || end == at - BASELINE_OFFSET
    })
}

/// CPU time (user + system, all threads, ended ones included) of process `pid`.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name in parentheses; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    let per_second: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    Duration::from_millis(ticks * 1000 / per_second)
}

/// A memory figure of /proc/PID/status in MB (`VmHWM`: peak resident, `VmRSS`: now).
fn memory_mb(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// One gate under measurement, from the end of its second evaluation (the first fetches whole
/// windows and starts at any time; from the second on they are an interval apart).
struct Measured {
    name: &'static str,
    gate: GateProcess,
    counting: Counting,
    cpu_from: Duration,
    done: Option<Figures>,
}

/// The first evaluation's, and per steady-state evaluation (the mean of [`STEADY`]).
struct Figures {
    first_ms: u64,
    /// (queries, samples) of the first evaluation.
    first: (usize, u64),
    /// The longest any one query of the first evaluation took (against `prometheus.timeout`).
    first_slowest: Duration,
    wall_ms: f64,
    /// The median `took_ms` of the steady evaluations (the host's load puts a few far out).
    wall_median_ms: u64,
    cpu_ms: f64,
    queries: f64,
    samples: f64,
    peak_mb: f64,
    rss_mb: f64,
    /// The queries of the steady evaluations.
    calls: Vec<Call>,
}

impl Measured {
    fn start(name: &'static str, gate: GateProcess, counting: Counting) -> Measured {
        while evaluations(&gate).len() < 2 {
            std::thread::sleep(Duration::from_millis(50));
        }
        let cpu_from = cpu(gate.pid());
        Measured {
            name,
            gate,
            counting,
            cpu_from,
            done: None,
        }
    }

    /// Takes the figures once [`STEADY`] evaluations have followed the second: whether it has.
    fn poll(&mut self) -> bool {
        let took = evaluations(&self.gate);
        if self.done.is_none() && took.len() >= 2 + STEADY {
            let pid = self.gate.pid();
            let cpu = cpu(pid) - self.cpu_from;
            let all = self.counting.take_calls();
            let steady = &took[2..2 + STEADY];
            let calls: Vec<Call> = steady
                .iter()
                .flat_map(|(at, _)| of_step(&all, *at))
                .cloned()
                .collect();
            let first: Vec<&Call> = of_step(&all, took[0].0).collect();
            let n = STEADY as f64;
            self.done = Some(Figures {
                first_ms: took[0].1,
                first: (first.len(), first.iter().map(|c| c.samples).sum()),
                first_slowest: first.iter().map(|c| c.took).max().unwrap_or_default(),
                wall_ms: steady.iter().map(|e| e.1).sum::<u64>() as f64 / n,
                wall_median_ms: {
                    let mut t: Vec<u64> = steady.iter().map(|e| e.1).collect();
                    t.sort_unstable();
                    t[t.len() / 2]
                },
                cpu_ms: cpu.as_secs_f64() * 1000.0 / n,
                queries: calls.len() as f64 / n,
                samples: calls.iter().map(|c| c.samples).sum::<u64>() as f64 / n,
                peak_mb: memory_mb(pid, "VmHWM"),
                rss_mb: memory_mb(pid, "VmRSS"),
                calls,
            });
            let took: Vec<u64> = took.iter().map(|e| e.1).collect();
            println!(
                "{}: evaluations took {took:?} ms (the first: whole windows)",
                self.name
            );
        }
        self.done.is_some()
    }
}

/// Where a gate's samples went: how many steps its queries spanned (1 in steady state), and
/// the queries that cost most, per evaluation.
fn breakdown(name: &str, calls: &[Call], step: f64) {
    let mut spans = std::collections::BTreeMap::<u64, (usize, u64)>::new();
    let mut by_query = std::collections::HashMap::<&str, u64>::new();
    for c in calls {
        let span = spans
            .entry(((c.range.1 - c.range.0) / step) as u64 + 1)
            .or_default();
        *span = (span.0 + 1, span.1 + c.samples);
        *by_query.entry(&c.query).or_default() += c.samples;
    }
    let mut top: Vec<_> = by_query.into_iter().collect();
    top.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let n = STEADY as u64;
    let top: Vec<String> = top
        .iter()
        .take(4)
        .map(|(q, s)| format!("{} samples: {:.70}", s / n, q.replace('\n', " ")))
        .collect();
    println!("{name}: steps per query -> (queries, samples): {spans:?}; costliest: {top:#?}");
}

/// Status and decision of `path`.
fn ask(gate: &GateProcess, path: &str) -> (u16, String, usize) {
    let (status, body) = gate.request("GET", path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    (status, v["decision"].to_string(), body.len())
}

fn main() {
    let now = chrono::Utc::now().timestamp();
    let (from, to) = (now - HISTORY, now + AHEAD);
    let store = |clusters: usize| {
        let fleet = Fleet::new("cluster", clusters, Scenario::Healthy, &[]).unwrap();
        let text = fleet.openmetrics(Window::new(from, to), from, to, RESOLUTION);
        println!(
            "{clusters} clusters: {} MB of OpenMetrics",
            text.len() >> 20
        );
        TestPrometheus::start(&text)
    };
    let started = Instant::now();
    let (many, one) = (store(CLUSTERS), store(1));
    println!("backfilled in {:.0?}", started.elapsed());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (fleet_url, fleet_count) = runtime.block_on(counting::start(many.url()));
    let (single_url, single_count) = runtime.block_on(counting::start(one.url()));

    let fleet = GateProcess::start_within(
        |listen| config(&fleet_url, listen, "0s", &fleet_section()),
        &[],
        Duration::from_secs(300),
    );
    // The single gate is started after the fleet's second evaluation and judges 15 s behind the
    // grid, so that the two never evaluate at the same time on the 2 cores.
    let mut fleet = Measured::start("fleet", fleet, fleet_count);
    let single = GateProcess::start(|listen| config(&single_url, listen, "15s", ""), &[]);
    let mut single = Measured::start("single", single, single_count);
    while !(fleet.poll() & single.poll()) {
        std::thread::sleep(Duration::from_millis(200));
    }

    // Both judge their clusters go: the data covers every window.
    let asked = format!("{PATH}?cluster={ASKED}");
    let (status, decision, _) = ask(&fleet.gate, &asked);
    assert_eq!(
        (status, decision.as_str()),
        (200, "\"go\""),
        "fleet {asked}"
    );
    let (status, decision, _) = ask(&single.gate, PATH);
    assert_eq!(
        (status, decision.as_str()),
        (200, "\"go\""),
        "single {PATH}"
    );
    let (status, decision, _) = ask(&fleet.gate, &format!("{PATH}?wave=prod"));
    assert_eq!(
        (status, decision.as_str()),
        (200, "\"go\""),
        "the wave prod"
    );

    report(&fleet, &single);
    throughput(&fleet, &single);
    drop((many, one));
}

/// Each gate's figures, where their samples went, and the per-cluster ratios.
fn report(fleet: &Measured, single: &Measured) {
    let (f, s) = (fleet.done.as_ref().unwrap(), single.done.as_ref().unwrap());
    let n = CLUSTERS as f64;
    for m in [fleet, single] {
        let d = m.done.as_ref().unwrap();
        println!(
            "{}: first evaluation {} ms, {} queries (slowest {:.1?}), {} samples; per steady \
             evaluation (mean of {STEADY}): wall {:.1} ms (median {} ms), CPU {:.1} ms, {:.1} \
             queries, {:.0} samples; peak RSS {:.1} MB, RSS now {:.1} MB",
            m.name,
            d.first_ms,
            d.first.0,
            d.first_slowest,
            d.first.1,
            d.wall_ms,
            d.wall_median_ms,
            d.cpu_ms,
            d.queries,
            d.samples,
            d.peak_mb,
            d.rss_mb
        );
    }
    breakdown("fleet", &f.calls, 30.0);
    breakdown("single", &s.calls, 30.0);
    println!(
        "per cluster (fleet / {CLUSTERS} against single): first evaluation {:.3}x, steady wall \
         {:.3}x (of the medians {:.3}x), CPU {:.3}x, peak RSS {:.3}x ({:.2} MB per cluster); \
         queries per evaluation {:.0} against {:.0} ({:.1}x); samples against {CLUSTERS} single \
         gates {:.3}x; peak RSS {:.0} MB, budget 40 + 1 per cluster = {} MB",
        f.first_ms as f64 / n / s.first_ms.max(1) as f64,
        f.wall_ms / n / s.wall_ms,
        f.wall_median_ms as f64 / n / s.wall_median_ms.max(1) as f64,
        f.cpu_ms / n / s.cpu_ms,
        f.peak_mb / n / s.peak_mb,
        f.peak_mb / n,
        f.queries,
        s.queries,
        f.queries / s.queries,
        f.samples / (n * s.samples),
        f.peak_mb,
        40 + CLUSTERS
    );
}

/// `wrk` on `?cluster=` of the fleet gate against `/gate/{phase}` of the single gate, in pairs.
fn throughput(fleet: &Measured, single: &Measured) {
    if !wrk::available() {
        println!("wrk is not installed (Debian package `wrk`): no throughput figures");
        return;
    }
    let asked = format!("{PATH}?cluster={ASKED}");
    let (status, _, bytes) = ask(&fleet.gate, &asked);
    let (single_status, _, single_bytes) = ask(&single.gate, PATH);
    let pinned = wrk::pin_server(fleet.gate.pid()) & wrk::pin_server(single.gate.pid());
    println!(
        "{asked} of the fleet gate: {bytes} bytes, status {status}; {PATH} of the single gate: \
         {single_bytes} bytes, status {single_status}; servers and wrk on separate cores: {pinned}"
    );
    let pairs = wrk::Pairs::run(
        ROUNDS,
        &format!("{}{asked}", fleet.gate.base),
        &format!("{}{PATH}", single.gate.base),
        pinned,
        None,
    );
    let ((fleet_rps, fleet_p99), (single_rps, single_p99)) = pairs.medians();
    let (rps, p99) = pairs.ratios();
    println!(
        "runs (req/s, p99 ms): fleet {:?}; single {:?}",
        pairs.a, pairs.b
    );
    println!(
        "median of {ROUNDS} runs each: fleet {fleet_rps:.0} req/s, p99 {fleet_p99:.3} ms; \
         single {single_rps:.0} req/s, p99 {single_p99:.3} ms"
    );
    println!(
        "median of the {ROUNDS} side-by-side ratios (fleet / single): throughput {rps:.3}x, \
         p99 {p99:.2}x; peak RSS after the runs: fleet {:.1} MB, single {:.1} MB",
        memory_mb(fleet.gate.pid(), "VmHWM"),
        memory_mb(single.gate.pid(), "VmHWM")
    );
}
