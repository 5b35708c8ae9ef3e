//! A fleet on loopback, laid out as issue 18's stores are: per cluster an `upgrade-gate simulate
//! --listen` (the cluster's own metrics) scraped by that cluster's Prometheus, which adds
//! `external_labels: {cluster: NAME}` and remote-writes into one central Prometheus started with
//! `--web.enable-remote-write-receiver`: the store a gate in fleet mode queries.
//!
//! Each cluster's Prometheus is an agent (`--enable-feature=agent`, as most fleets run it) or a
//! normal server, which a test can also query to compare the central store with the cluster's
//! own. Every process is a child on a free loopback port in its own temp dir, killed on drop.
//! Scrapes every second and remote write with a 100 ms batch deadline keep the central store a
//! second or two behind; every wait polls the central store, none sleeps a fixed time.
//!
//! Every simulator plays its scenario on one shared window, from an hour before the start to an
//! hour after it, so a scenario's trouble (10% to 95% of the window) is on throughout a test;
//! unless [`FleetOptions::incident_ends`] places each incident so that it stops during the test. [`FleetOptions::backend`] sends some clusters to a second central
//! store, as a fleet with a backend per Region has.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::Value;
use upgrade_gate::simulate::scenarios::{Scenario, Window};

use super::data::now;
use super::process::{ServerKind, ServerProcess, IDENTITY_IN_LOG};
use super::prometheus::{urlencode, TestPrometheus};

/// The label the clusters' Prometheus servers add, as `fleet.label` names it by default.
pub const FLEET_LABEL: &str = "cluster";

/// How long the waits of this module poll the central stores.
pub const FLEET_DEADLINE: Duration = Duration::from_secs(60);

const SIMULATOR: ServerKind = ServerKind {
    owner: "FleetSimulator",
    name: "simulate",
    install_hint: "cargo builds it for integration tests",
    ready_path: "/metrics",
    identity_path: IDENTITY_IN_LOG,
};

/// What each cluster runs to send its metrics to the central store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// `prometheus --enable-feature=agent`: scrapes and remote-writes, answers no query.
    Agent,
    /// A normal Prometheus: also holds the cluster's series for queries of its own.
    Server,
}

#[derive(Debug, Clone, Copy)]
pub struct FleetOptions {
    pub store: Store,
    /// `--query.lookback-delta` of the central stores (and of the clusters' servers): how long
    /// after its last sample a series of a cluster that went silent is still seen (a killed
    /// agent sends no staleness marker).
    pub lookback: Duration,
    /// The clusters whose Prometheus remote-writes into the second central store
    /// ([`TestFleet::backend`]) rather than the first; none by default.
    pub backend: &'static [&'static str],
    /// For every cluster not playing `healthy`: its trouble stops this long after the start
    /// (its window is placed so that 95% of it falls there; the trouble began long before).
    pub incident_ends: Option<Duration>,
}

impl Default for FleetOptions {
    /// Agents, and Prometheus' own lookback (5m).
    fn default() -> FleetOptions {
        FleetOptions {
            store: Store::Agent,
            lookback: Duration::from_secs(300),
            backend: &[],
            incident_ends: None,
        }
    }
}

/// One cluster: its simulator and the Prometheus that sends its series to the central store.
pub struct TestCluster {
    pub name: String,
    pub scenario: Scenario,
    /// Its scenario's window: the trouble is on from `window.at(0.1)` to `window.at(0.95)`.
    pub window: Window,
    /// Whether it remote-writes into [`TestFleet::backend`] rather than [`TestFleet::central`].
    pub in_backend: bool,
    pub simulator: ServerProcess,
    /// An agent or a server, as [`FleetOptions::store`] says.
    pub prometheus: TestPrometheus,
}

/// A central Prometheus and the clusters that remote-write into it; every process killed on drop.
pub struct TestFleet {
    pub central: TestPrometheus,
    /// The second central store, when [`FleetOptions::backend`] names clusters.
    pub backend: Option<TestPrometheus>,
    pub clusters: Vec<TestCluster>,
    /// The scenarios' window, shared by every simulator but those whose incident ends early.
    pub window: Window,
}

impl TestFleet {
    /// Starts the central Prometheus (and the backend), then every cluster (in parallel), and
    /// waits until its store has `up{cluster=NAME}` for each, since before the current second.
    /// `clusters` are (name, scenario).
    pub fn start(clusters: &[(&str, Scenario)], options: FleetOptions) -> TestFleet {
        let lookback = format!(
            "--query.lookback-delta={}s",
            options.lookback.as_secs().max(1)
        );
        let receiver = || {
            TestPrometheus::with_config(
                "global: {scrape_interval: 1m, evaluation_interval: 1m}\n",
                &[
                    "--web.enable-remote-write-receiver".to_string(),
                    lookback.clone(),
                    "--log.level=warn".to_string(),
                ],
            )
        };
        let central = receiver();
        let backend = (!options.backend.is_empty()).then(receiver);
        let at = now();
        let window = Window::new(at - 3600, at + 3600);
        let ends = options
            .incident_ends
            .map(|d| unix_now() as i64 + d.as_secs() as i64);
        let write_url = |store: &TestPrometheus| format!("{}/api/v1/write", store.url());
        let clusters = std::thread::scope(|scope| {
            let started: Vec<_> = clusters
                .iter()
                .map(|&(name, scenario)| {
                    let in_backend = options.backend.contains(&name);
                    let store = match &backend {
                        Some(backend) if in_backend => backend,
                        _ => &central,
                    };
                    let window = match ends {
                        // 95% of two hours is 6840 s.
                        Some(ends) if scenario != Scenario::Healthy => {
                            Window::new(ends - 6840, ends + 360)
                        }
                        _ => window,
                    };
                    let (write_url, lookback) = (write_url(store), &lookback);
                    scope.spawn(move || {
                        let mut cluster = TestCluster::start(
                            name, scenario, window, &write_url, options, lookback,
                        );
                        cluster.in_backend = in_backend;
                        cluster
                    })
                })
                .collect();
            started
                .into_iter()
                .map(|s| s.join().expect("a cluster of the fleet failed to start"))
                .collect()
        });
        let fleet = TestFleet {
            central,
            backend,
            clusters,
            window,
        };
        let names: Vec<&str> = fleet.clusters.iter().map(|c| c.name.as_str()).collect();
        fleet.wait_reporting(&names);
        // A gate judges the whole second at or before now: had the first samples come in the
        // current second, its first evaluation would find no cluster at all.
        fleet.wait_ingested(unix_now().ceil());
        fleet
    }

    pub fn cluster(&self, name: &str) -> &TestCluster {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("TestFleet: no cluster {name}"))
    }

    /// The central store `name` remote-writes into.
    pub fn store_of(&self, name: &str) -> &TestPrometheus {
        match &self.backend {
            Some(backend) if self.cluster(name).in_backend => backend,
            _ => &self.central,
        }
    }

    fn stores(&self) -> impl Iterator<Item = &TestPrometheus> {
        std::iter::once(&self.central).chain(&self.backend)
    }

    fn cluster_mut(&mut self, name: &str) -> &mut TestCluster {
        self.clusters
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("TestFleet: no cluster {name}"))
    }

    /// SIGKILLs the Prometheus (agent or server) of `name`: its simulator keeps running, and its
    /// central store stops receiving the cluster's series, without staleness markers.
    pub fn kill_store(&mut self, name: &str) {
        self.cluster_mut(name).prometheus.kill();
    }

    /// Starts the Prometheus of `name` again (same port, configuration and WAL) and waits until
    /// its central store has a sample of its `up` newer than the restart.
    pub fn restart_store(&mut self, name: &str) {
        let restarted = unix_now();
        self.cluster_mut(name).prometheus.restart();
        let promql = format!("timestamp(up{{{FLEET_LABEL}=\"{name}\"}}) > {restarted}");
        let store = self.store_of(name);
        self.poll(&promql, || instant(store, &promql), |r| !r.is_empty());
    }

    /// The clusters that have an `up` series in the central store or the backend now (within
    /// the lookback), sorted.
    pub fn reporting(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .stores()
            .flat_map(|store| instant(store, &format!("count by ({FLEET_LABEL}) (up)")))
            .filter_map(|s| s["metric"][FLEET_LABEL].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// Polls until the stores have `up{cluster=NAME}` for every one of `names`.
    pub fn wait_reporting(&self, names: &[&str]) {
        self.poll(
            &format!("every one of {names:?} reporting"),
            || self.reporting(),
            |reporting| names.iter().all(|n| reporting.iter().any(|r| r == n)),
        );
    }

    /// Polls until no store has `up{cluster=NAME}` any more: the cluster's series went stale
    /// (after the lookback, for a killed agent).
    pub fn wait_silent(&self, name: &str) {
        self.poll(
            &format!("{name} silent"),
            || self.reporting(),
            |reporting| !reporting.iter().any(|r| r == name),
        );
    }

    /// Polls until every live series of every cluster in its store has a sample at or after
    /// `until` (unix seconds): what a query over a window ending there reads is complete.
    pub fn wait_ingested(&self, until: f64) {
        for store in self.stores() {
            let names: Vec<&str> = self
                .clusters
                .iter()
                .filter(|c| std::ptr::eq(self.store_of(&c.name), store))
                .map(|c| c.name.as_str())
                .collect();
            if !names.is_empty() {
                self.wait_ingested_in(store, &names, until);
            }
        }
    }

    fn wait_ingested_in(&self, store: &TestPrometheus, names: &[&str], until: f64) {
        // timestamp() drops the name: keep it in another label so that series stay apart.
        let promql = format!(
            "min by ({FLEET_LABEL}) (timestamp(label_replace({{{FLEET_LABEL}=~\"{}\"}}, \
             \"name\", \"$1\", \"__name__\", \"(.+)\")))",
            names.join("|")
        );
        self.poll(
            &format!("every series of {names:?} ingested up to {until}"),
            || instant(store, &promql),
            |result| {
                result.len() == names.len()
                    && result.iter().all(|s| {
                        s["value"][1]
                            .as_str()
                            .and_then(|v| v.parse::<f64>().ok())
                            .is_some_and(|t| t >= until)
                    })
            },
        );
    }

    /// The `result` of an instant query on the central store now.
    pub fn central_instant(&self, promql: &str) -> Vec<Value> {
        instant(&self.central, promql)
    }

    /// The `result` of a range query on the central store.
    pub fn central_range(&self, promql: &str, start: f64, end: f64, step: f64) -> Vec<Value> {
        result(&self.central.query_range(promql, start, end, step))
    }

    /// Polls an instant query on the central store until `done` accepts its result.
    pub fn poll_central(&self, promql: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.poll(promql, || self.central_instant(promql), |r| done(r))
    }

    fn poll<T: std::fmt::Debug>(
        &self,
        what: &str,
        read: impl Fn() -> T,
        done: impl Fn(&T) -> bool,
    ) -> T {
        let started = Instant::now();
        loop {
            let value = read();
            if done(&value) {
                return value;
            }
            assert!(
                started.elapsed() < FLEET_DEADLINE,
                "TestFleet: not {what} within {FLEET_DEADLINE:?}; last: {value:?}\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every process' stderr, for a failure message.
    pub fn stderr(&self) -> String {
        let mut out = format!("--- central ---\n{}", self.central.stderr());
        if let Some(backend) = &self.backend {
            out.push_str(&format!("--- backend ---\n{}", backend.stderr()));
        }
        for c in &self.clusters {
            out.push_str(&format!(
                "--- {} prometheus ---\n{}--- {} simulate ---\n{}",
                c.name,
                c.prometheus.stderr(),
                c.name,
                c.simulator.stderr()
            ));
        }
        out
    }
}

impl TestCluster {
    fn start(
        name: &str,
        scenario: Scenario,
        window: Window,
        write_url: &str,
        options: FleetOptions,
        lookback: &str,
    ) -> TestCluster {
        let simulator = start_simulator(scenario, window);
        let config = format!(
            "global:\n\
             \x20 scrape_interval: 1s\n\
             \x20 scrape_timeout: 1s\n\
             \x20 evaluation_interval: 1m\n\
             \x20 external_labels: {{{FLEET_LABEL}: {name}}}\n\
             scrape_configs:\n\
             - job_name: scraped\n\
             \x20 honor_labels: true\n\
             \x20 static_configs: [{{targets: ['{}']}}]\n\
             remote_write:\n\
             - url: {write_url}\n\
             \x20 queue_config: {{batch_send_deadline: 100ms, min_backoff: 30ms, max_backoff: 1s}}\n",
            simulator.addr()
        );
        let mut args = vec!["--log.level=warn".to_string()];
        match options.store {
            // An agent answers no query: it has no lookback.
            Store::Agent => args.push("--enable-feature=agent".to_string()),
            Store::Server => args.push(lookback.to_string()),
        }
        let prometheus = TestPrometheus::with_config(&config, &args);
        TestCluster {
            name: name.to_string(),
            scenario,
            window,
            in_backend: false,
            simulator,
            prometheus,
        }
    }

    /// The `result` of a range query on the cluster's own Prometheus ([`Store::Server`] only).
    pub fn range(&self, promql: &str, start: f64, end: f64, step: f64) -> Vec<Value> {
        result(&self.prometheus.query_range(promql, start, end, step))
    }
}

/// `upgrade-gate simulate --scenario S --listen ADDR` on `window`, on a free loopback port.
pub fn start_simulator(scenario: Scenario, window: Window) -> ServerProcess {
    let name = clap::ValueEnum::to_possible_value(&scenario)
        .expect("every scenario has a name")
        .get_name()
        .to_string();
    simulator(&["--scenario", &name], window)
}

/// `upgrade-gate simulate ARGS --listen ADDR` on `window` (e.g. `--clusters 3`), on a free
/// loopback port; ready once it answers /metrics and has logged that it listens there.
pub fn simulator(args: &[&str], window: Window) -> ServerProcess {
    let rfc3339 = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .expect("a valid time")
            .to_rfc3339()
    };
    let (start, duration) = (
        rfc3339(window.start),
        format!("{}s", window.end - window.start),
    );
    ServerProcess::start(
        SIMULATOR,
        |_| {},
        |_, addr| {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_upgrade-gate"));
            command
                .arg("simulate")
                .args(args)
                .arg(format!("--listen={addr}"))
                .args(["--start", &start, "--duration", &duration]);
            command
        },
    )
}

/// Unix seconds, with fractions.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The `result` of an instant query on `prometheus` now.
pub fn instant(prometheus: &TestPrometheus, promql: &str) -> Vec<Value> {
    result(&prometheus.get(&format!("/api/v1/query?query={}", urlencode(promql))))
}

/// The `data.result` of a Prometheus API answer; panics on an error answer.
pub fn result(body: &str) -> Vec<Value> {
    let answer: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(answer["status"], "success", "{body}");
    answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
