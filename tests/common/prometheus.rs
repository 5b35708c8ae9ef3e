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

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one start attempt may take to get `/-/ready` to answer 200.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Whole start attempts, each on a new port (another process may take the
/// port between probing it and Prometheus binding it).
const START_ATTEMPTS: u32 = 3;
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Short, so a foreign listener that never answers on our port does not stall
/// the poll; a ready Prometheus answers in well under a millisecond.
const POLL_HTTP_TIMEOUT: Duration = Duration::from_millis(500);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Minimal configuration: no scrape jobs, no rules, no alerting.
const CONFIG: &str = "global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\n";

/// A real Prometheus on a free loopback port, filled from OpenMetrics text by promtool; killed on drop.
pub struct TestPrometheus {
    child: Child,
    url: String,
    addr: SocketAddr,
    /// Declared last, so it is removed after `Drop::drop` has reaped the child.
    dir: tempfile::TempDir,
}

impl TestPrometheus {
    /// Backfills `openmetrics` (text ending in "# EOF\n") with `promtool tsdb create-blocks-from openmetrics`,
    /// starts prometheus on it, and waits until /-/ready answers 200 (readiness poll, no fixed sleeps),
    /// with a deadline (30 s) and a clear panic message including prometheus' stderr if it never becomes ready.
    ///
    /// If prometheus cannot bind its port (another process took it), the whole start is
    /// retried on a new port, up to 3 attempts in all.
    pub fn start(openmetrics: &str) -> TestPrometheus {
        let mut last_stderr = String::new();
        for attempt in 1..=START_ATTEMPTS {
            match Self::try_start(openmetrics) {
                Ok(prometheus) => return prometheus,
                Err(PortTaken { stderr }) => {
                    if attempt < START_ATTEMPTS {
                        eprintln!(
                            "TestPrometheus: port taken (attempt {attempt}/{START_ATTEMPTS}), \
                             retrying on another port"
                        );
                    }
                    last_stderr = stderr;
                }
            }
        }
        panic!(
            "TestPrometheus: prometheus could not bind a loopback port in {START_ATTEMPTS} \
             attempts; last stderr:\n{last_stderr}"
        );
    }

    /// Base URL, e.g. "http://127.0.0.1:41234".
    pub fn url(&self) -> &str {
        &self.url
    }

    /// GETs `path_and_query` (e.g. "/api/v1/query?query=up") and returns the body.
    /// Panics unless the status is 200. The caller must percent-encode the query
    /// string (see [`urlencode`], [`TestPrometheus::query`]).
    pub fn get(&self, path_and_query: &str) -> String {
        let (status, body) = self.get_with_status(path_and_query);
        assert_eq!(
            status, 200,
            "GET {}{path_and_query} answered {status}: {body}",
            self.url
        );
        body
    }

    /// GETs `path_and_query` and returns (status, body) whatever the status.
    pub fn get_with_status(&self, path_and_query: &str) -> (u16, String) {
        http_get(self.addr, path_and_query, HTTP_TIMEOUT)
            .unwrap_or_else(|e| panic!("GET {}{path_and_query} failed: {e}", self.url))
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

    /// Process id of the prometheus child.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What prometheus has written to stderr so far (only warnings and errors are logged).
    pub fn stderr(&self) -> String {
        read_lossy(&self.dir.path().join("prometheus.stderr"))
    }

    fn try_start(openmetrics: &str) -> Result<TestPrometheus, PortTaken> {
        let dir = tempfile::Builder::new()
            .prefix("upgrade-gate-prometheus-")
            .tempdir()
            .expect("TestPrometheus: cannot create temp dir");
        let input = dir.path().join("input.om");
        let data = dir.path().join("data");
        let config = dir.path().join("prometheus.yml");
        fs::write(&input, openmetrics).expect("TestPrometheus: cannot write OpenMetrics input");
        fs::write(&config, CONFIG).expect("TestPrometheus: cannot write prometheus.yml");
        backfill(&input, &data);

        let port = free_loopback_port();
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let stderr_path = dir.path().join("prometheus.stderr");
        let stderr = File::create(&stderr_path).expect("TestPrometheus: cannot create stderr file");
        let child = Command::new(prometheus_bin())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={addr}"))
            // Retention is measured back from the newest block, which may lie in the future.
            .arg("--storage.tsdb.retention.time=100y")
            .arg("--query.lookback-delta=5m")
            .arg("--log.level=warn")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "TestPrometheus: cannot run `{}` ({e}); install the Debian package \
                     `prometheus` or set PROMETHEUS_BIN",
                    prometheus_bin()
                )
            });
        let mut prometheus = TestPrometheus {
            child,
            url: format!("http://{addr}"),
            addr,
            dir,
        };
        // On any panic below, dropping `prometheus` kills the child.
        prometheus.wait_ready()?;
        Ok(prometheus)
    }

    fn wait_ready(&mut self) -> Result<(), PortTaken> {
        let started = Instant::now();
        // Unique to this instance; shows up in /api/v1/status/flags (storage.tsdb.path).
        let marker = self
            .dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("temp dir name is UTF-8")
            .to_owned();
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .expect("TestPrometheus: try_wait failed")
            {
                let stderr = self.stderr();
                if stderr.contains("address already in use") {
                    return Err(PortTaken { stderr });
                }
                panic!(
                    "{}",
                    self.failure(&format!("exited ({status}) before becoming ready"), &stderr)
                );
            }
            if let Ok((200, _)) = http_get(self.addr, "/-/ready", POLL_HTTP_TIMEOUT) {
                // Another instance could hold this port while ours fails to bind it:
                // only accept the answer if it comes from our data dir. If not, our
                // child exits with "address already in use" shortly and we retry.
                match http_get(self.addr, "/api/v1/status/flags", POLL_HTTP_TIMEOUT) {
                    Ok((200, body)) if body.contains(&marker) => return Ok(()),
                    _ => {}
                }
            }
            if started.elapsed() >= READY_DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr();
                panic!(
                    "{}",
                    self.failure(
                        &format!("did not become ready within {READY_DEADLINE:?}"),
                        &stderr
                    )
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn failure(&self, what: &str, stderr: &str) -> String {
        format!(
            "TestPrometheus: `{}` on {} {what}\n--- prometheus stderr ---\n{stderr}",
            prometheus_bin(),
            self.url
        )
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        // SIGKILL: nothing of its state needs to survive, and it is faster than a clean shutdown.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct PortTaken {
    stderr: String,
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

fn free_loopback_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("TestPrometheus: cannot bind 127.0.0.1:0")
        .port()
    // The listener is dropped here, releasing the port for prometheus.
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}

/// Minimal blocking HTTP GET. HTTP/1.0, so the server neither keeps the
/// connection alive nor (normally) uses chunked encoding; the body is
/// everything up to EOF.
fn http_get(
    addr: SocketAddr,
    path_and_query: &str,
    timeout: Duration,
) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;

    let invalid = |msg: &str| io::Error::new(io::ErrorKind::InvalidData, msg.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of HTTP headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid("bad HTTP status line"))?;
    let chunked = head.lines().skip(1).any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| invalid("bad chunked body"))?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}
