//! A real, throwaway Prometheus for integration tests.
//!
//! [`TestPrometheus::start`] turns OpenMetrics text into TSDB blocks with
//! `promtool tsdb create-blocks-from openmetrics`, starts `prometheus` on them,
//! listening on a free port on 127.0.0.1 only, and waits until `/-/ready`
//! answers 200. The process is killed and reaped on drop, then its temp dir
//! is removed.
//!
//! Only std is used (plus `tempfile`), and every call blocks, so it works the
//! same from plain `#[test]`s and from `#[tokio::test]`s. Inside an async test,
//! call the blocking helpers (`get`, `query`, ...) only when no future of
//! the test runtime needs to make progress at the same time. Otherwise use an
//! async HTTP client against [`TestPrometheus::url`].
//!
//! Behaviour checked against Debian's `prometheus, version 2.42.0+ds`:
//! * Blocks may lie partly or wholly in the future, and they may overlap
//!   (including several blocks for the same series). Prometheus 2.42 loads
//!   them and merges overlapping ones at query time. About a minute later it
//!   compacts them, and the query results stay the same. promtool needs no
//!   extra flags (this version has no `--max-block-duration` for
//!   openmetrics). It cuts the input into 2h-aligned blocks itself.
//! * Blocks are loaded before `/-/ready` turns 200. Instant and range queries
//!   see all backfilled data as soon as `start` returns, so there is no
//!   second wait.
//! * Time-based retention is measured back from the newest block's end, not
//!   from the wall clock. With the default 15d, backfilled data older than
//!   that is deleted at startup. That is why a 100y retention is passed.
//! * Within one series, promtool silently drops samples that are not in
//!   increasing time order inside a block, and samples with a duplicate
//!   timestamp (exit code is still 0). Write each series sorted by time.
//!   A sample needs a timestamp (in seconds, fractions allowed), and the text
//!   must end with `# EOF`.
//! * `NaN`, `+Inf`, `-Inf` (and `Inf`) are accepted as gauge values. The
//!   HTTP API returns them as the strings `"NaN"`, `"+Inf"`, `"-Inf"`. Every
//!   sample value is a JSON string, e.g. `[1795677581.909, "1"]`.
//!
//! `TestPrometheus` must not be stored in a `static`: statics are never
//! dropped, so that Prometheus would outlive the test binary.
#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use super::process::{server_command, ServerKind, ServerProcess};

/// Minimal configuration: no scrape jobs, no rules, no alerting.
const CONFIG: &str = "global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\n";

const KIND: ServerKind = ServerKind {
    owner: "TestPrometheus",
    name: "prometheus",
    install_hint: "install the Debian package `prometheus` or set PROMETHEUS_BIN",
    ready_path: "/-/ready",
    // Shows `storage.tsdb.path`, which lies in the temp dir.
    identity_path: "/api/v1/status/flags",
};

/// A real Prometheus on a free loopback port, filled from OpenMetrics text by promtool, or
/// started empty on a configuration of the test's; killed on drop.
pub struct TestPrometheus {
    server: ServerProcess,
    /// How it was started, to start it again.
    launch: Launch,
}

/// How a [`TestPrometheus`] is run in its temp dir.
#[derive(Clone)]
enum Launch {
    /// On the blocks promtool wrote into `data`.
    Backfilled,
    /// On `prometheus.yml` with these flags added, storage in `data` (`agent` for an agent).
    Fresh(Vec<String>),
}

impl Launch {
    fn command(&self, dir: &Path, addr: std::net::SocketAddr) -> Command {
        match self {
            Launch::Backfilled => backfilled_command(dir, addr),
            Launch::Fresh(args) => fresh_command(dir, addr, args),
        }
    }
}

impl TestPrometheus {
    /// Backfills `openmetrics` (text ending in "# EOF\n") with `promtool tsdb create-blocks-from openmetrics`,
    /// starts prometheus on it, and waits until /-/ready answers 200 (readiness poll, no fixed sleeps),
    /// with a deadline (30 s) and a clear panic message including prometheus' stderr if it never becomes ready.
    ///
    /// If prometheus cannot bind its port (another process took it), the whole start is
    /// retried on a new port, up to 3 attempts in all.
    pub fn start(openmetrics: &str) -> TestPrometheus {
        let server = ServerProcess::start(
            KIND,
            |dir| {
                let input = dir.join("input.om");
                fs::write(&input, openmetrics)
                    .expect("TestPrometheus: cannot write OpenMetrics input");
                fs::write(dir.join("prometheus.yml"), CONFIG)
                    .expect("TestPrometheus: cannot write prometheus.yml");
                backfill(&input, &dir.join("data"));
            },
            backfilled_command,
        );
        TestPrometheus {
            server,
            launch: Launch::Backfilled,
        }
    }

    /// A Prometheus with no data yet on `config` (prometheus.yml text), `args` added to its
    /// command line: `--web.enable-remote-write-receiver` for a central store,
    /// `--enable-feature=agent` for an agent (whose storage is then an agent WAL, and which
    /// answers no queries).
    pub fn with_config(config: &str, args: &[String]) -> TestPrometheus {
        let launch = Launch::Fresh(args.to_vec());
        let server = ServerProcess::start(
            KIND,
            |dir| {
                fs::write(dir.join("prometheus.yml"), config)
                    .expect("TestPrometheus: cannot write prometheus.yml")
            },
            |dir, addr| launch.command(dir, addr),
        );
        TestPrometheus { server, launch }
    }

    /// Kills Prometheus: its port refuses connections until [`TestPrometheus::restart`].
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts Prometheus again on the same port, configuration and data, and waits until it is
    /// ready.
    pub fn restart(&mut self) {
        let launch = self.launch.clone();
        self.server.restart(|dir, addr| launch.command(dir, addr));
    }

    /// A Prometheus with an empty TSDB that scrapes `target` every second. `honor_labels` keeps
    /// the `job` and `instance` labels that some series carry themselves.
    pub fn scraping(target: std::net::SocketAddr) -> ServerProcess {
        let config = format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1m}}\n\
             scrape_configs:\n\
             - job_name: scraped\n\
             \x20 honor_labels: true\n\
             \x20 static_configs: [{{targets: ['{target}']}}]\n"
        );
        TestPrometheus::with_config(&config, &["--log.level=warn".to_string()]).server
    }

    /// Base URL, e.g. "http://127.0.0.1:41234".
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// GETs `path_and_query` (e.g. "/api/v1/query?query=up") and returns the body.
    /// Panics unless the status is 200. The caller must percent-encode the query
    /// string (see [`urlencode`], [`TestPrometheus::query`]).
    pub fn get(&self, path_and_query: &str) -> String {
        self.server.get(path_and_query)
    }

    /// GETs `path_and_query` and returns (status, body) whatever the status.
    pub fn get_with_status(&self, path_and_query: &str) -> (u16, String) {
        self.server.request("GET", path_and_query, None)
    }

    /// Instant query at `time` (Unix seconds); returns the JSON body of `/api/v1/query`.
    pub fn query(&self, promql: &str, time: f64) -> String {
        self.get(&format!(
            "/api/v1/query?query={}&time={time}",
            urlencode(promql)
        ))
    }

    /// Range query over [start, end] (Unix seconds) every `step` seconds; returns the
    /// JSON body of `/api/v1/query_range`.
    pub fn query_range(&self, promql: &str, start: f64, end: f64, step: f64) -> String {
        self.get(&format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step={step}",
            urlencode(promql)
        ))
    }

    /// How many range queries this Prometheus has answered (its own request counter).
    pub fn query_range_requests(&self) -> u64 {
        self.get("/metrics")
            .lines()
            .find(|l| {
                l.starts_with("prometheus_http_requests_total{")
                    && l.contains("handler=\"/api/v1/query_range\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |v| v.parse::<f64>().unwrap() as u64)
    }

    /// Process id of the prometheus child.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// What prometheus has written to stderr so far (only warnings and errors are logged).
    pub fn stderr(&self) -> String {
        self.server.stderr()
    }
}

/// Prometheus on the backfilled blocks in `dir`.
fn backfilled_command(dir: &Path, addr: std::net::SocketAddr) -> Command {
    let config = dir.join("prometheus.yml");
    let mut command = server_command(&prometheus_bin(), &config, addr);
    command
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        // Retention is measured back from the newest block, which may lie in the future.
        .arg("--storage.tsdb.retention.time=100y")
        .arg("--query.lookback-delta=5m")
        .arg("--log.level=warn");
    command
}

/// Prometheus on `prometheus.yml` in `dir`, storing in `dir`, with `args` added.
fn fresh_command(dir: &Path, addr: std::net::SocketAddr, args: &[String]) -> Command {
    let mut command = server_command(&prometheus_bin(), &dir.join("prometheus.yml"), addr);
    if args.iter().any(|a| a == "--enable-feature=agent") {
        command.arg(format!(
            "--storage.agent.path={}",
            dir.join("agent").display()
        ));
    } else {
        command.arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ));
    }
    command.args(args);
    command
}

/// Percent-encodes `s` for use as a query-string value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn prometheus_bin() -> String {
    std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".to_owned())
}

fn promtool_bin() -> String {
    std::env::var("PROMTOOL_BIN").unwrap_or_else(|_| "promtool".to_owned())
}

fn backfill(input: &Path, data: &Path) {
    let output = Command::new(promtool_bin())
        .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
        .arg(input)
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "TestPrometheus: cannot run `{}` ({e}); install the Debian package \
                 `prometheus` or set PROMTOOL_BIN",
                promtool_bin()
            )
        });
    assert!(
        output.status.success(),
        "TestPrometheus: `promtool tsdb create-blocks-from openmetrics` failed ({}); \
         the input must be OpenMetrics with a timestamp on every sample and end with \"# EOF\\n\"\n\
         --- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A server that accepts connections and never answers: what a wedged Prometheus looks like.
pub async fn hanging_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}
