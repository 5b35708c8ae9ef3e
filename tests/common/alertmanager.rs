//! A real, throwaway Alertmanager for integration tests.
//!
//! [`TestAlertmanager::start`] runs `prometheus-alertmanager` (Debian package
//! `prometheus-alertmanager`; override the binary with `ALERTMANAGER_BIN`)
//! with a configuration that routes every alert to one receiver without
//! integrations, so nothing is ever sent anywhere. It listens on a free port on
//! 127.0.0.1 only, with clustering disabled (`--cluster.listen-address=`, so
//! no gossip port is bound) and its storage in a temp dir. `start` returns
//! once `/-/ready` answers 200. The process is killed and reaped on drop, then
//! its temp dir is removed.
//!
//! Like `prometheus.rs`, only std is used (plus `tempfile` and `serde_json`)
//! and every call blocks, except [`TestAlertmanager::wait_until`]. Inside an
//! async test that runs the code under test on the same runtime, wait with
//! `wait_until` (async, reqwest) rather than looping over the blocking
//! [`TestAlertmanager::alerts`].
//!
//! Behaviour checked against Debian's `alertmanager, version 0.25.0`:
//! * `GET /api/v2/alerts` lists only alerts that have not ended: an alert whose
//!   `endsAt` is in the past (resolved) is dropped from the answer at once, with
//!   no way to list it (`active=false` gives `[]` too). There is no "resolved"
//!   state in the API; to see that an alert was resolved, see it disappear.
//!   An alert posted already resolved (never seen firing) is never listed.
//! * `status.state` is `"active"` for a firing alert (also when read
//!   immediately after the POST; `"unprocessed"` never showed up in 100 tries,
//!   since the state is computed by the GET handler) and `"suppressed"` when a
//!   silence (`status.silencedBy`) or an inhibition (`status.inhibitedBy`)
//!   matches. The default query includes silenced and inhibited alerts.
//! * Alerts are identified by their label set only (`fingerprint`).
//!   Posting the same labels from two senders with different `startsAt` gives
//!   **one** alert. While it is firing the two posts merge: `startsAt` is the
//!   earliest of the two, `endsAt` the latest (a later post with a shorter
//!   `endsAt` does not shorten it), and `annotations` come from the most
//!   recent post. One sender posting it resolved (`endsAt` in the past)
//!   resolves it for everybody, until another sender posts it firing again;
//!   it then reappears as the same alert, with its original `startsAt`.
//! * A POST is validated per alert, and `endsAt` must not be before
//!   `startsAt` (equal is fine): resolving with `startsAt` = now and `endsAt` =
//!   now - 1m is answered `400 "start time must be before end time"`. So a
//!   resolve must carry the alert's original `startsAt` (or none), and an
//!   alert that started less than a second ago cannot be resolved "1 s ago":
//!   send `endsAt` = now. In a batch with one invalid alert, the valid ones are
//!   still stored although the answer is 400.
//! * A missing `startsAt` becomes the time of the POST; a missing `endsAt`
//!   becomes `startsAt` + `resolve_timeout` (5m), and the answer shows it.
//! * Timestamps come back in UTC with milliseconds, e.g.
//!   `"2026-11-26T07:47:52.000Z"`.
//!
//! `TestAlertmanager` must not be stored in a `static`: statics are never
//! dropped, so that Alertmanager would outlive the test binary.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one start attempt may take to get `/-/ready` to answer 200.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Whole start attempts, each on a new port (another process may take the
/// port between probing it and Alertmanager binding it).
const START_ATTEMPTS: u32 = 3;
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Short, so a foreign listener that never answers on our port does not stall the poll.
const POLL_HTTP_TIMEOUT: Duration = Duration::from_millis(500);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Name of the only receiver; every alert's `receivers` lists it.
pub const RECEIVER: &str = "blackhole";

/// A real Alertmanager on a free loopback port, routing everything to a receiver
/// with no integrations; killed on drop.
pub struct TestAlertmanager {
    child: Child,
    url: String,
    addr: SocketAddr,
    /// Declared last, so it is removed after `Drop::drop` has reaped the child.
    dir: tempfile::TempDir,
}

impl TestAlertmanager {
    /// Starts Alertmanager and waits until /-/ready answers 200 (readiness poll,
    /// deadline 30 s, panics with its stderr otherwise). If it cannot bind its port
    /// (another process took it), the whole start is retried on a new port, up to
    /// 3 attempts in all.
    pub fn start() -> TestAlertmanager {
        let mut last_stderr = String::new();
        for attempt in 1..=START_ATTEMPTS {
            match Self::try_start() {
                Ok(alertmanager) => return alertmanager,
                Err(PortTaken { stderr }) => {
                    if attempt < START_ATTEMPTS {
                        eprintln!(
                            "TestAlertmanager: port taken (attempt {attempt}/{START_ATTEMPTS}), \
                             retrying on another port"
                        );
                    }
                    last_stderr = stderr;
                }
            }
        }
        panic!(
            "TestAlertmanager: alertmanager could not bind a loopback port in {START_ATTEMPTS} \
             attempts; last stderr:\n{last_stderr}"
        );
    }

    /// Base URL, e.g. "http://127.0.0.1:41234".
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET /api/v2/alerts`: every alert that has not ended (firing, silenced or
    /// inhibited), parsed. Resolved alerts are not listed (see the module doc).
    pub fn alerts(&self) -> Vec<Value> {
        let body = self.get("/api/v2/alerts");
        parse_alerts(&body)
    }

    /// The alerts of [`TestAlertmanager::alerts`] whose label `alertname` is `alertname`.
    pub fn alerts_matching(&self, alertname: &str) -> Vec<Value> {
        filter_alertname(self.alerts(), alertname)
    }

    /// POSTs `json` (a JSON array of alerts) to /api/v2/alerts; returns (status, body)
    /// whatever the status. Blocking.
    pub fn post_alerts(&self, json: &str) -> (u16, String) {
        http_request(
            self.addr,
            "POST",
            "/api/v2/alerts",
            Some(json),
            HTTP_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("POST {}/api/v2/alerts failed: {e}", self.url))
    }

    /// Async: polls `GET /api/v2/alerts` (reqwest, so the test runtime keeps
    /// running) until `done(&alerts)` holds, and returns those alerts. Panics
    /// with the last answer after `deadline`.
    pub async fn wait_until(
        &self,
        deadline: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let client = reqwest::Client::builder()
            .timeout(POLL_HTTP_TIMEOUT * 4)
            .build()
            .expect("TestAlertmanager: cannot build a reqwest client");
        let started = tokio::time::Instant::now();
        loop {
            let last = match client
                .get(format!("{}/api/v2/alerts", self.url))
                .send()
                .await
            {
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        let alerts = parse_alerts(&body);
                        if done(&alerts) {
                            return alerts;
                        }
                    }
                    format!("{status}: {body}")
                }
                Err(e) => format!("error: {e}"),
            };
            if started.elapsed() >= deadline {
                panic!(
                    "TestAlertmanager: condition not met within {deadline:?}; \
                     last GET {}/api/v2/alerts answered {last}",
                    self.url
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// GETs `path_and_query` and returns the body; panics unless the status is 200.
    pub fn get(&self, path_and_query: &str) -> String {
        let (status, body) = http_request(self.addr, "GET", path_and_query, None, HTTP_TIMEOUT)
            .unwrap_or_else(|e| panic!("GET {}{path_and_query} failed: {e}", self.url));
        assert_eq!(
            status, 200,
            "GET {}{path_and_query} answered {status}: {body}",
            self.url
        );
        body
    }

    /// Process id of the alertmanager child.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What alertmanager has written to stderr so far (its whole log).
    pub fn stderr(&self) -> String {
        read_lossy(&self.dir.path().join("alertmanager.stderr"))
    }

    fn try_start() -> Result<TestAlertmanager, PortTaken> {
        let dir = tempfile::Builder::new()
            .prefix("upgrade-gate-alertmanager-")
            .tempdir()
            .expect("TestAlertmanager: cannot create temp dir");
        let config = dir.path().join("alertmanager.yml");
        let data = dir.path().join("data");
        fs::create_dir(&data).expect("TestAlertmanager: cannot create data dir");
        fs::write(&config, config_yaml(dir.path()))
            .expect("TestAlertmanager: cannot write alertmanager.yml");

        let port = free_loopback_port();
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let stderr_path = dir.path().join("alertmanager.stderr");
        let stderr =
            File::create(&stderr_path).expect("TestAlertmanager: cannot create stderr file");
        let child = Command::new(alertmanager_bin())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", data.display()))
            .arg(format!("--web.listen-address={addr}"))
            // Empty: no HA mode, so no gossip listener on 0.0.0.0:9094.
            .arg("--cluster.listen-address=")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "TestAlertmanager: cannot run `{}` ({e}); install the Debian package \
                     `prometheus-alertmanager` or set ALERTMANAGER_BIN",
                    alertmanager_bin()
                )
            });
        let mut alertmanager = TestAlertmanager {
            child,
            url: format!("http://{addr}"),
            addr,
            dir,
        };
        // On any panic below, dropping `alertmanager` kills the child.
        alertmanager.wait_ready()?;
        Ok(alertmanager)
    }

    fn wait_ready(&mut self) -> Result<(), PortTaken> {
        let started = Instant::now();
        // Unique to this instance; shows up in /api/v2/status (config.original, templates).
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
                .expect("TestAlertmanager: try_wait failed")
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
            if let Ok((200, _)) =
                http_request(self.addr, "GET", "/-/ready", None, POLL_HTTP_TIMEOUT)
            {
                // Another instance could hold this port while ours fails to bind it:
                // only accept the answer if it comes from our config. If not, our
                // child exits with "address already in use" shortly and we retry.
                match http_request(self.addr, "GET", "/api/v2/status", None, POLL_HTTP_TIMEOUT) {
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
            "TestAlertmanager: `{}` on {} {what}\n--- alertmanager stderr ---\n{stderr}",
            alertmanager_bin(),
            self.url
        )
    }
}

impl Drop for TestAlertmanager {
    fn drop(&mut self) {
        // SIGKILL: nothing of its state needs to survive.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct PortTaken {
    stderr: String,
}

/// Everything goes to one receiver without integrations. The template glob matches
/// no file; it is there because it names the temp dir, which `wait_ready` looks for
/// in /api/v2/status to make sure the answering Alertmanager is ours.
fn config_yaml(dir: &Path) -> String {
    format!(
        "route:\n  receiver: {RECEIVER}\n  group_wait: 0s\n  group_interval: 1s\n  \
         repeat_interval: 1h\nreceivers:\n  - name: {RECEIVER}\ntemplates:\n  - '{}/no-templates/*.tmpl'\n",
        dir.display()
    )
}

fn parse_alerts(body: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(alerts)) => alerts,
        Ok(other) => panic!("TestAlertmanager: /api/v2/alerts is not an array: {other}"),
        Err(e) => panic!("TestAlertmanager: /api/v2/alerts is not JSON ({e}): {body}"),
    }
}

fn filter_alertname(alerts: Vec<Value>, alertname: &str) -> Vec<Value> {
    alerts
        .into_iter()
        .filter(|a| a["labels"]["alertname"].as_str() == Some(alertname))
        .collect()
}

fn alertmanager_bin() -> String {
    std::env::var("ALERTMANAGER_BIN").unwrap_or_else(|_| "prometheus-alertmanager".to_owned())
}

fn free_loopback_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("TestAlertmanager: cannot bind 127.0.0.1:0")
        .port()
    // The listener is dropped here, releasing the port for alertmanager.
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}

/// Minimal blocking HTTP request. HTTP/1.0, so the server neither keeps the
/// connection alive nor (normally) uses chunked encoding; the body is
/// everything up to EOF. A `body` is sent as JSON.
fn http_request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path_and_query} HTTP/1.0\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n"
    )?;
    match body {
        Some(body) => write!(
            stream,
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?,
        None => write!(stream, "\r\n")?,
    }
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
