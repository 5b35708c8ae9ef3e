//! Every notification once, with real processes on loopback: the built gate as child processes
//! (killed with SIGKILL, restarted), a real Prometheus scraping an exporter the test switches, and
//! one webhook receiver that counts deliveries per alert and status.
//!
//! Durations are short through the config (1 s evaluations, 1 s peer_timeout), and every wait is
//! a poll for a condition: deliveries, or each replica's own counters of what it sent and what it
//! left to others.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::exporter::Exporter;
use common::gate::{cluster_secret, free_port, start_process};
use common::process::{gate_cli, ServerProcess};
use common::prometheus::{urlencode, TestPrometheus};
use common::receiver::Receiver;
use tokio::net::UdpSocket;

const FAILING: &str = "mesh_5xx{destination_service=\"reviews\"} 2.5\n";
const HEALTHY: &str = "mesh_5xx{destination_service=\"reviews\"} 0.1\n";
const WAIT: Duration = Duration::from_secs(40);
/// Two alerts per incident: the phase no-go and the failing signal.
const ALERTS: usize = 2;

/// Prometheus scraping a switchable exporter, and the receiver every replica notifies; all on a
/// runtime of their own, so the test itself may block.
struct World {
    runtime: tokio::runtime::Runtime,
    exporter: Exporter,
    prometheus: ServerProcess,
    hook: Receiver,
}

impl World {
    /// An incident already under way: mesh_5xx fails, and Prometheus has scraped it.
    fn failing() -> World {
        World::scraping(FAILING, "2.5")
    }

    /// No incident: mesh_5xx has been healthy in every sample Prometheus has.
    fn healthy() -> World {
        World::scraping(HEALTHY, "0.1")
    }

    fn scraping(text: &str, value: &str) -> World {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let exporter = runtime.block_on(Exporter::start(text));
        let hook = runtime.block_on(Receiver::start(vec![]));
        let prometheus = TestPrometheus::scraping(exporter.addr());
        let world = World {
            runtime,
            exporter,
            prometheus,
            hook,
        };
        world.until_prometheus_has(value);
        world
    }

    fn until_prometheus_has(&self, value: &str) {
        let query = format!("/api/v1/query?query={}", urlencode("mesh_5xx"));
        poll("Prometheus to scrape the exporter", || {
            self.prometheus
                .get(&query)
                .contains(&format!("\"{value}\""))
        });
    }

    fn recover(&self) {
        self.exporter.set(HEALTHY);
        self.until_prometheus_has("0.1");
    }

    fn fail(&self) {
        self.exporter.set(FAILING);
        self.until_prometheus_has("2.5");
    }

    /// Deliveries per (alertname, status).
    fn deliveries(&self) -> BTreeMap<(String, String), usize> {
        let mut counts = BTreeMap::new();
        for r in self.hook.received() {
            let body = r.json();
            let key = (
                body["alertname"].as_str().unwrap().to_string(),
                body["status"].as_str().unwrap().to_string(),
            );
            *counts.entry(key).or_default() += 1;
        }
        counts
    }

    fn assert_each(&self, times: usize, statuses: &[&str]) {
        let counts: Vec<(&str, usize)> = statuses.iter().map(|s| (*s, times)).collect();
        self.assert_counts(&counts);
    }

    /// Each alert delivered exactly this many times with each status, and nothing else.
    fn assert_counts(&self, counts: &[(&str, usize)]) {
        let mut expected = BTreeMap::new();
        for alert in ["UpgradeGatePhaseNoGo", "UpgradeGateSignalFailing"] {
            for (status, times) in counts {
                expected.insert((alert.to_string(), status.to_string()), *times);
            }
        }
        assert_eq!(
            self.deliveries(),
            expected,
            "deliveries per alert and status: {:#?}",
            self.hook.received()
        );
    }
}

/// How one replica is set up.
#[derive(Clone, Default)]
struct Setup {
    state_file: Option<PathBuf>,
    /// This replica's gossip port and every replica's (its own may be among them).
    cluster: Option<(u16, Vec<u16>)>,
    /// The port peers dial instead of the gossip port (a [`Relay`] in front of it).
    advertise: Option<u16>,
    repeat_interval: Option<&'static str>,
    /// `cluster.insecure: true` instead of a key.
    insecure: bool,
}

impl Setup {
    /// A process on its own with its notification log in `dir`, which outlives the process.
    fn keeping_state(dir: &Path) -> Setup {
        Setup {
            state_file: Some(dir.join("notifications.json")),
            ..Setup::default()
        }
    }
}

fn start(world: &World, setup: &Setup) -> ServerProcess {
    let prometheus = world.prometheus.url().to_string();
    let hook = world.hook.url();
    let setup = setup.clone();
    start_process(move |dir: &Path, listen: SocketAddr| {
        let mut yaml = format!(
            r#"
prometheus: {{url: "{prometheus}", timeout: 2s}}
evaluation: {{interval: 1s}}
server: {{listen: "{listen}"}}
phases: [{{name: istio}}]
signals:
  - {{name: mesh_5xx, query: mesh_5xx, fail: "> 1", critical: true, no_data: ok, description: "{}"}}
alerts:
  repeat_interval: {}
  retry_initial_backoff: 100ms
  retry_max_backoff: 200ms
  receivers:
    - {{name: hook, kind: webhook, url: "{hook}/hook"}}
"#,
            dir.file_name().unwrap().to_str().unwrap(),
            setup.repeat_interval.unwrap_or("0s"),
        );
        if let Some(path) = &setup.state_file {
            yaml.push_str(&format!("  state_file: \"{}\"\n", path.display()));
        }
        if let Some((own, peers)) = &setup.cluster {
            let peers: Vec<String> = peers.iter().map(|p| format!("127.0.0.1:{p}")).collect();
            yaml.push_str(&format!(
                "cluster:\n  listen: 127.0.0.1:{own}\n  peers: [{}]\n  peer_timeout: 1s\n",
                peers.join(", ")
            ));
            if setup.insecure {
                yaml.push_str("  insecure: true\n");
            } else {
                yaml.push_str(&cluster_secret(dir));
            }
            if let Some(port) = setup.advertise {
                yaml.push_str(&format!("  advertise: 127.0.0.1:{port}\n"));
            }
        }
        yaml
    })
}

/// `n` replicas that gossip with each other.
fn replicas(world: &World, n: usize) -> (Vec<Setup>, Vec<ServerProcess>) {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let setups: Vec<Setup> = ports
        .iter()
        .map(|own| Setup {
            cluster: Some((*own, ports.clone())),
            ..Setup::default()
        })
        .collect();
    let processes = setups.iter().map(|s| start(world, s)).collect();
    (setups, processes)
}

fn poll(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A sample of the gate's /metrics, by its full series name.
fn metric(gate: &ServerProcess, series: &str) -> f64 {
    let text = gate.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn outcome(gate: &ServerProcess, outcome: &str) -> f64 {
    metric(
        gate,
        &format!("upgrade_gate_alerts_total{{receiver=\"hook\",outcome=\"{outcome}\"}}"),
    )
}

/// Waits until the replicas together have decided `n` notifications (each sent, or left to what
/// the log shows sent), then until each has evaluated twice more than the longest turn lasts, so
/// that a duplicate on its way would have arrived.
fn decided(gates: &[&ServerProcess], n: usize) {
    poll(&format!("{n} notifications decided"), || {
        let total: f64 = gates
            .iter()
            .map(|g| outcome(g, "sent") + outcome(g, "deduplicated"))
            .sum();
        total >= n as f64
    });
    let last = |g: &ServerProcess| metric(g, "upgrade_gate_last_evaluation_timestamp_seconds");
    let since: Vec<f64> = gates.iter().map(|g| last(g)).collect();
    let turns = 2.0 * gates.len() as f64 + 1.0;
    poll("evaluations after the decisions", || {
        gates.iter().zip(&since).all(|(g, s)| last(g) >= s + turns)
    });
}

fn an_incident_under_way_at_start_is_notified_once(n: usize) {
    let world = World::failing();
    let (_, gates) = replicas(&world, n);
    let all: Vec<&ServerProcess> = gates.iter().collect();
    poll("every replica to see the others", || {
        all.iter()
            .all(|g| metric(g, "upgrade_gate_cluster_peers") == n as f64)
    });
    let mut positions: Vec<f64> = all
        .iter()
        .map(|g| metric(g, "upgrade_gate_cluster_position"))
        .collect();
    positions.sort_by(f64::total_cmp);
    assert_eq!(positions, (0..n).map(|p| p as f64).collect::<Vec<_>>());
    decided(&all, n * ALERTS);
    world.assert_each(1, &["firing"]);
    let deduplicated: f64 = all.iter().map(|g| outcome(g, "deduplicated")).sum();
    assert_eq!(deduplicated, ((n - 1) * ALERTS) as f64);
    world.recover();
    decided(&all, 2 * n * ALERTS);
    world.assert_each(1, &["firing", "resolved"]);
}

#[test]
fn two_replicas_notify_an_incident_under_way_once() {
    an_incident_under_way_at_start_is_notified_once(2);
}

#[test]
fn three_replicas_notify_an_incident_under_way_once() {
    an_incident_under_way_at_start_is_notified_once(3);
}

#[test]
fn a_replica_killed_after_the_firing_notice_leaves_the_resolution_to_the_other() {
    // Each replica in turn: the one at position 0 (the sender), then the one at position 1.
    for killed_position in [0.0, 1.0] {
        let world = World::failing();
        let (_, mut gates) = replicas(&world, 2);
        let all: Vec<&ServerProcess> = gates.iter().collect();
        poll("the replicas to see each other", || {
            all.iter()
                .all(|g| metric(g, "upgrade_gate_cluster_peers") == 2.0)
        });
        decided(&all, 2 * ALERTS);
        world.assert_each(1, &["firing"]);
        let i = gates
            .iter()
            .position(|g| metric(g, "upgrade_gate_cluster_position") == killed_position)
            .unwrap();
        drop(gates.remove(i)); // SIGKILL
        world.recover();
        decided(&[&gates[0]], 2 * ALERTS);
        world.assert_each(1, &["firing", "resolved"]);
    }
}

#[test]
fn a_process_with_a_state_file_restarted_mid_incident_repeats_nothing() {
    let world = World::failing();
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::keeping_state(dir.path());
    let gate = start(&world, &setup);
    decided(&[&gate], ALERTS);
    world.assert_each(1, &["firing"]);
    drop(gate); // SIGKILL
    let gate = start(&world, &setup);
    // At its first evaluation everything firing is new to it; the log says it was sent.
    decided(&[&gate], ALERTS);
    assert_eq!(outcome(&gate, "deduplicated"), ALERTS as f64);
    world.assert_each(1, &["firing"]);
    world.recover();
    decided(&[&gate], 2 * ALERTS);
    world.assert_each(1, &["firing", "resolved"]);
}

#[test]
fn an_incident_that_starts_while_the_process_is_down_is_notified_when_it_is_back() {
    let world = World::healthy();
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::keeping_state(dir.path());
    let gate = start(&world, &setup);
    assert!(world.hook.received().is_empty());
    drop(gate);
    world.fail();
    let gate = start(&world, &setup);
    decided(&[&gate], ALERTS);
    world.assert_each(1, &["firing"]);
    world.recover();
    decided(&[&gate], 2 * ALERTS);
    world.assert_each(1, &["firing", "resolved"]);
    // Without a state file too: a fresh start announces what is firing.
    let world = World::failing();
    let gate = start(&world, &Setup::default());
    decided(&[&gate], ALERTS);
    world.assert_each(1, &["firing"]);
}

#[test]
fn a_replica_that_joins_mid_incident_reads_what_its_peer_sent() {
    let world = World::failing();
    let ports = [free_port(), free_port()];
    let setup = |own: u16| Setup {
        cluster: Some((own, ports.to_vec())),
        ..Setup::default()
    };
    // Alone, the first replica waits one peer_timeout for peers, then sends.
    let first = start(&world, &setup(ports[0]));
    decided(&[&first], ALERTS);
    world.assert_each(1, &["firing"]);
    let second = start(&world, &setup(ports[1]));
    decided(&[&first, &second], 2 * ALERTS);
    assert_eq!(outcome(&second, "deduplicated"), ALERTS as f64);
    world.assert_each(1, &["firing"]);
    world.recover();
    decided(&[&first, &second], 4 * ALERTS);
    world.assert_each(1, &["firing", "resolved"]);
}

#[test]
fn replicas_that_cannot_reach_each_other_both_send_and_lose_nothing() {
    let world = World::failing();
    // Each one's peer is a port nobody gossips on: a partition from the start.
    let gates: Vec<ServerProcess> = (0..2)
        .map(|_| {
            start(
                &world,
                &Setup {
                    cluster: Some((free_port(), vec![free_port()])),
                    ..Setup::default()
                },
            )
        })
        .collect();
    let all: Vec<&ServerProcess> = gates.iter().collect();
    decided(&all, 2 * ALERTS);
    world.recover();
    decided(&all, 4 * ALERTS);
    world.assert_each(2, &["firing", "resolved"]);
    for g in &all {
        assert_eq!(metric(g, "upgrade_gate_cluster_peers"), 1.0);
        assert_eq!(outcome(g, "sent"), (2 * ALERTS) as f64);
    }
}

/// A UDP relay in front of one replica's gossip port, which the test can cut and heal: the replica
/// advertises the relay's address, so every gossip packet to it, and every answer from it, passes
/// here. Each sender gets an upstream socket of its own, so answers find their way back.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl Relay {
    async fn start(target: u16) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let port = front.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let relay = Relay {
            port,
            cut: cut.clone(),
        };
        tokio::spawn(async move {
            let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = vec![0; 65_536];
            loop {
                let (n, sender) = front.recv_from(&mut buf).await.unwrap();
                if cut.load(Ordering::SeqCst) {
                    continue;
                }
                let upstream = match upstreams.get(&sender) {
                    Some(u) => u.clone(),
                    None => {
                        let u = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                        u.connect(("127.0.0.1", target)).await.unwrap();
                        let (u2, front, cut) = (u.clone(), front.clone(), cut.clone());
                        tokio::spawn(async move {
                            let mut buf = vec![0; 65_536];
                            while let Ok(n) = u2.recv(&mut buf).await {
                                if !cut.load(Ordering::SeqCst) {
                                    let _ = front.send_to(&buf[..n], sender).await;
                                }
                            }
                        });
                        upstreams.insert(sender, u.clone());
                        u
                    }
                };
                let _ = upstream.send(&buf[..n]).await;
            }
        });
        relay
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

#[test]
fn a_partition_of_a_formed_cluster_loses_nothing_and_heals() {
    let world = World::healthy();
    let gossip = [free_port(), free_port()];
    let relays: Vec<Relay> = gossip
        .iter()
        .map(|g| world.runtime.block_on(Relay::start(*g)))
        .collect();
    let peers: Vec<u16> = relays.iter().map(|r| r.port).collect();
    let gates: Vec<ServerProcess> = gossip
        .iter()
        .zip(&relays)
        .map(|(g, r)| {
            let setup = Setup {
                cluster: Some((*g, peers.clone())),
                advertise: Some(r.port),
                ..Setup::default()
            };
            start(&world, &setup)
        })
        .collect();
    let all: Vec<&ServerProcess> = gates.iter().collect();
    let peers_seen = |n: f64| {
        poll(&format!("every replica to see {n} peers"), || {
            all.iter()
                .all(|g| metric(g, "upgrade_gate_cluster_peers") == n)
        })
    };
    peers_seen(2.0);
    // An incident in the formed cluster: announced once.
    world.fail();
    decided(&all, 2 * ALERTS);
    world.assert_each(1, &["firing"]);
    // Cut: each replica is alone and first in its own order, so each announces the end itself.
    relays.iter().for_each(|r| r.set_cut(true));
    peers_seen(1.0);
    world.recover();
    decided(&all, 4 * ALERTS);
    // Both sides of the partition resolve it.
    world.assert_counts(&[("firing", 1), ("resolved", 2)]);
    // Healed: the logs merge again, and the next incident is announced once.
    relays.iter().for_each(|r| r.set_cut(false));
    peers_seen(2.0);
    world.fail();
    decided(&all, 6 * ALERTS);
    // Once before the partition, once after it healed.
    world.assert_counts(&[("firing", 2), ("resolved", 2)]);
}

#[test]
fn repeat_interval_is_honoured_across_a_restart() {
    let world = World::failing();
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        // Long enough for the kill and the restart to happen well within it.
        repeat_interval: Some("10s"),
        ..Setup::keeping_state(dir.path())
    };
    let gate = start(&world, &setup);
    decided(&[&gate], ALERTS);
    let first = world.hook.received()[0].at;
    drop(gate);
    let gate = start(&world, &setup);
    poll("the restarted gate's first decisions", || {
        outcome(&gate, "deduplicated") + outcome(&gate, "sent") >= ALERTS as f64
    });
    assert_eq!(
        outcome(&gate, "deduplicated"),
        ALERTS as f64,
        "both alerts found in the log"
    );
    world.assert_each(1, &["firing"]);
    let runtime = &world.runtime;
    let repeats = runtime.block_on(world.hook.wait_for(2 * ALERTS, WAIT));
    world.assert_each(2, &["firing"]);
    let gap = repeats[ALERTS].at - first;
    assert!(
        gap >= Duration::from_secs(9),
        "repeated {gap:?} after the first notice, before repeat_interval"
    );
    let keys: std::collections::HashSet<_> = repeats
        .iter()
        .map(|r| r.header("Idempotency-Key").unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 2 * ALERTS, "a repeat is a new notification");
}

/// A chitchat node that holds the replicas' cluster id but not their key, publishing the same
/// forged far-future firing entries a rogue on the network would: written from the wire format,
/// not with the gate's own types.
struct Rogue {
    handle: chitchat::ChitchatHandle,
}

/// The date the forged entries carry: it would win every last-writer-wins merge.
const FORGED_AT: &str = "2099-01-01T00:00:00Z";

impl Rogue {
    async fn start(seeds: &[u16]) -> Rogue {
        use chitchat::transport::UdpTransport;
        use chitchat::{ChitchatConfig, ChitchatId, FailureDetectorConfig};
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let forged = |alertname: &str, signal: &str, mac: Option<&str>| {
            let key = serde_json::json!({
                "receiver": "hook", "alertname": alertname, "phase": "istio", "signal": signal
            });
            let mut entry = serde_json::json!({
                "status": "firing", "at": FORGED_AT, "starts_at": FORGED_AT,
                "severity": "critical", "hash": "forged"
            });
            if let Some(mac) = mac {
                entry["mac"] = mac.into();
            }
            (format!("nf:{key}"), entry.to_string())
        };
        let entries = vec![
            forged("UpgradeGatePhaseNoGo", "", None),
            forged(
                "UpgradeGateSignalFailing",
                "mesh_5xx",
                Some(&"0".repeat(64)),
            ),
        ];
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new("rogue", 0, listen),
            cluster_id: "upgrade-gate".into(),
            gossip_interval: Duration::from_millis(50),
            listen_addr: listen,
            seed_nodes: seeds.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            failure_detector_config: FailureDetectorConfig::default(),
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let handle = chitchat::spawn_chitchat(config, entries, &UdpTransport)
            .await
            .unwrap();
        Rogue { handle }
    }
}

#[test]
fn a_rogue_without_the_key_cannot_silence_a_notification() {
    let world = World::healthy();
    let ports = [free_port(), free_port()];
    let state = tempfile::tempdir().unwrap();
    let setups: Vec<Setup> = ports
        .iter()
        .map(|own| Setup {
            cluster: Some((*own, ports.to_vec())),
            state_file: Some(state.path().join(format!("{own}.json"))),
            ..Setup::default()
        })
        .collect();
    let rogue = world.runtime.block_on(Rogue::start(&ports));
    let gates: Vec<ServerProcess> = setups.iter().map(|s| start(&world, s)).collect();
    let all: Vec<&ServerProcess> = gates.iter().collect();
    let rejected = |g: &ServerProcess| metric(g, "upgrade_gate_cluster_rejected_total");
    // The rogue's entries reach both replicas and are refused before anything is due.
    poll("each replica to refuse the rogue's entries", || {
        all.iter().all(|g| rejected(g) >= 2.0)
    });
    world.fail();
    decided(&all, 2 * ALERTS);
    world.assert_each(1, &["firing"]);
    for g in &all {
        assert!(rejected(g) > 0.0);
    }
    // What the replicas keep is theirs: sealed, and none of it the rogue's.
    for setup in &setups {
        let path = setup.state_file.as_ref().unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
        let entries = stored["entries"].as_array().unwrap();
        assert_eq!(entries.len(), ALERTS, "{text}");
        for e in entries {
            assert_ne!(e["entry"]["at"], FORGED_AT, "{text}");
            assert_ne!(e["entry"]["hash"], "forged", "{text}");
            assert_eq!(e["mac"].as_str().map(str::len), Some(64), "{text}");
        }
    }
    world.runtime.block_on(rogue.handle.shutdown()).unwrap();
}

#[test]
fn a_cluster_without_a_key_refuses_to_start_unless_it_says_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    let yaml = |extra: &str| {
        format!(
            "prometheus: {{url: \"http://127.0.0.1:9\"}}\nphases: [{{name: istio}}]\n\
             signals: [{{name: s, query: up, fail: \"< 1\"}}]\n\
             cluster: {{listen: \"127.0.0.1:{}\"{extra}}}\n",
            free_port()
        )
    };
    std::fs::write(&path, yaml("")).unwrap();
    let (code, _, stderr) = gate_cli(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: key `cluster.secret_file`: missing",
            path.display()
        )),
        "{stderr}"
    );
    // Said in so many words, it starts, and warns.
    let world = World::healthy();
    let gate = start(
        &world,
        &Setup {
            cluster: Some((free_port(), vec![])),
            insecure: true,
            ..Setup::default()
        },
    );
    assert!(
        gate.stderr()
            .contains("the notification log is gossiped without authentication"),
        "{}",
        gate.stderr()
    );
}
