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

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::process::{server_command, ServerKind, ServerProcess, POLL_HTTP_TIMEOUT, POLL_INTERVAL};

/// Name of the only receiver; every alert's `receivers` lists it.
pub const RECEIVER: &str = "blackhole";

const KIND: ServerKind = ServerKind {
    owner: "TestAlertmanager",
    name: "alertmanager",
    install_hint: "install the Debian package `prometheus-alertmanager` or set ALERTMANAGER_BIN",
    ready_path: "/-/ready",
    // Shows the configuration (`config.original`), whose templates glob names the temp dir.
    identity_path: "/api/v2/status",
};

/// A real Alertmanager on a free loopback port, routing everything to a receiver
/// with no integrations; killed on drop.
pub struct TestAlertmanager {
    server: ServerProcess,
}

impl TestAlertmanager {
    /// Starts Alertmanager and waits until /-/ready answers 200 (readiness poll,
    /// deadline 30 s, panics with its stderr otherwise). If it cannot bind its port
    /// (another process took it), the whole start is retried on a new port, up to
    /// 3 attempts in all.
    pub fn start() -> TestAlertmanager {
        TestAlertmanager::start_with(&format!(
            "route:\n  receiver: {RECEIVER}\n  group_wait: 0s\n  group_interval: 1s\n  \
             repeat_interval: 1h\nreceivers:\n  - name: {RECEIVER}\n"
        ))
    }

    /// As [`TestAlertmanager::start`], with `config` (route, inhibit rules, receivers; no
    /// `templates`) as its configuration.
    pub fn start_with(config: &str) -> TestAlertmanager {
        let server = ServerProcess::start(
            KIND,
            |dir| {
                fs::create_dir(dir.join("data")).expect("TestAlertmanager: cannot create data dir");
                fs::write(dir.join("alertmanager.yml"), config_yaml(config, dir))
                    .expect("TestAlertmanager: cannot write alertmanager.yml");
            },
            |dir, addr| {
                let config = dir.join("alertmanager.yml");
                let mut command = server_command(&alertmanager_bin(), &config, addr);
                command
                    .arg(format!("--storage.path={}", dir.join("data").display()))
                    // Empty: no HA mode, so no gossip listener on 0.0.0.0:9094.
                    .arg("--cluster.listen-address=");
                command
            },
        );
        TestAlertmanager { server }
    }

    /// Base URL, e.g. "http://127.0.0.1:41234".
    pub fn url(&self) -> &str {
        self.server.url()
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
        self.server.request("POST", "/api/v2/alerts", Some(json))
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
                .get(format!("{}/api/v2/alerts", self.url()))
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
                    self.url()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// GETs `path_and_query` and returns the body; panics unless the status is 200.
    pub fn get(&self, path_and_query: &str) -> String {
        self.server.get(path_and_query)
    }

    /// Process id of the alertmanager child.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// What alertmanager has written to stderr so far (its whole log).
    pub fn stderr(&self) -> String {
        self.server.stderr()
    }
}

/// `config` and a template glob that matches no file: it is there because it names the temp
/// dir, which the readiness check looks for in /api/v2/status to make sure the answering
/// Alertmanager is ours.
fn config_yaml(config: &str, dir: &Path) -> String {
    format!(
        "{config}\ntemplates:\n  - '{}/no-templates/*.tmpl'\n",
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
