//! Replicas sharing one notification log, as Alertmanager's cluster does with memberlist: each
//! replica gossips its log, and replicas take turns by position. Membership and gossip are
//! chitchat's (Scuttlebutt reconciliation over UDP with a phi-accrual failure detector, run by
//! Quickwit in production); this file only maps the log onto chitchat's key-values and reads the
//! live peers' order.
//!
//! Every replica publishes the whole log it knows, not only what it sent itself, so that a replica
//! that joins learns everything from any one live peer, including what a dead one sent. Each entry
//! is published with its seal, and a peer's entries are merged only once [`Trust`] has checked
//! them: chitchat itself lets anyone who can reach the port publish anything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::transport::UdpTransport;
use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig,
    ProtocolVersion,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::nflog::{Entry, Key};
use super::seal::{SealedEntry, Trust};
use super::shared::SharedLog;
use crate::config::ClusterConfig;
use crate::secret::SecretFile;

/// Keys of log entries among a node's chitchat key-values.
const ENTRY_PREFIX: &str = "nf:";
const CLUSTER_ID: &str = "upgrade-gate";
/// Gossip rounds the live set must stay the same, with every peer heard of live, before this
/// replica trusts that it knows its peers and their logs (as Alertmanager's settle).
const SETTLE_ROUNDS: u32 = 3;
/// How far ahead of its clock a lone process takes the dates in its own state file: it has no
/// `peer_timeout`, and the default one serves.
const ALONE_SKEW: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
#[error("cannot start gossip on {listen}: {message}")]
pub struct ClusterError {
    listen: std::net::SocketAddr,
    message: String,
}

/// This replica's place among the live ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// Live replicas, this one included.
    pub peers: usize,
    /// Index of this replica among the live ones sorted by identity (advertised address).
    /// Live here means heard from within one `peer_timeout`, or live to the failure detector.
    pub position: usize,
    /// Whether the peers' logs have been read (or waiting for them has timed out): before that,
    /// this replica does not know what they sent.
    pub settled: bool,
}

impl Membership {
    const ALONE: Membership = Membership {
        peers: 1,
        position: 0,
        settled: true,
    };
}

/// The gauges and the counter this path updates; whoever exports metrics registers them.
#[derive(Clone, Debug, Default)]
pub struct ClusterMetrics {
    pub peers: Gauge,
    pub position: Gauge,
    /// Log entries refused, from a peer or the state file: unauthenticated or dated in the future.
    pub rejected: Counter,
}

impl ClusterMetrics {
    fn set(&self, m: &Membership) {
        self.peers.set(m.peers as i64);
        self.position.set(m.position as i64);
    }
}

/// What the receivers' workers need to take their turn.
#[derive(Clone)]
pub struct Turn {
    pub log: SharedLog,
    pub membership: watch::Receiver<Membership>,
    /// The wait per position before sending.
    pub peer_timeout: Duration,
}

impl Turn {
    /// Waits until the peers' logs are known, then until `position x peer_timeout` after `due`:
    /// the moment the evaluated step fell due on the interval grid that every replica shares (or
    /// the evaluation's own start, when it began later, as the first one after a start does).
    /// Counting from the grid rather than from when this replica finished evaluating keeps the
    /// turns `peer_timeout` apart however long each replica's evaluation took.
    pub async fn wait(&self, due: Instant) {
        let mut membership = self.membership.clone();
        // A closed channel means the gossip is gone: nobody else will send, so go ahead.
        let _ = membership.wait_for(|m| m.settled).await;
        let position = membership.borrow().position as u32;
        tokio::time::sleep_until(due + self.peer_timeout * position).await;
    }
}

/// The log and, with a `cluster` section, the gossip that shares it.
pub struct Peers {
    pub turn: Turn,
    gossip: Option<Gossip>,
}

struct Gossip {
    handle: ChitchatHandle,
    sync: JoinHandle<()>,
    stop: CancellationToken,
}

impl Peers {
    /// A process on its own, with its log in `state_file` if any: position 0, nobody to wait for.
    pub fn alone(state_file: Option<std::path::PathBuf>, metrics: &ClusterMetrics) -> Peers {
        let trust = Trust::new(None, ALONE_SKEW, metrics.rejected.clone());
        let log = SharedLog::open(state_file, trust);
        metrics.set(&Membership::ALONE);
        let (_, membership) = watch::channel(Membership::ALONE);
        Peers {
            turn: Turn {
                log,
                membership,
                peer_timeout: Duration::ZERO,
            },
            gossip: None,
        }
    }

    /// Opens the state file, if any, and joins the cluster, if configured.
    pub async fn start(
        state_file: Option<std::path::PathBuf>,
        cluster: Option<&ClusterConfig>,
        metrics: ClusterMetrics,
    ) -> Result<Peers, ClusterError> {
        let Some(config) = cluster else {
            return Ok(Peers::alone(state_file, &metrics));
        };
        let key = config
            .secret_file
            .clone()
            .map(|path| SecretFile::new(path, "cluster.secret_file"));
        if key.is_none() {
            tracing::warn!(
                "cluster.insecure: the notification log is gossiped without authentication; anyone who can send UDP to {} can silence notifications",
                config.listen
            );
        }
        let trust = Trust::new(key, config.peer_timeout, metrics.rejected.clone());
        join(config, SharedLog::open(state_file, trust), metrics).await
    }

    /// Stops gossiping; peers see this replica leave the order.
    pub async fn leave(self) {
        if let Some(g) = self.gossip {
            g.stop.cancel();
            let _ = g.sync.await;
            let _ = g.handle.shutdown().await;
        }
    }
}

/// Often enough that a peer's entries arrive well within one `peer_timeout`, and a dead peer is
/// noticed (about 20 silent rounds) before the next one's turn has passed.
fn gossip_interval(peer_timeout: Duration) -> Duration {
    (peer_timeout / 10).clamp(Duration::from_millis(20), Duration::from_millis(200))
}

async fn join(
    config: &ClusterConfig,
    log: SharedLog,
    gauges: ClusterMetrics,
) -> Result<Peers, ClusterError> {
    let interval = gossip_interval(config.peer_timeout);
    // The start time tells this run from an earlier one at the same address.
    let generation = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let id = ChitchatId::new(config.advertise.to_string(), generation, config.advertise);
    let chitchat_config = ChitchatConfig {
        chitchat_id: id.clone(),
        cluster_id: CLUSTER_ID.to_string(),
        gossip_interval: interval,
        listen_addr: config.listen,
        seed_nodes: config.peers.clone(),
        failure_detector_config: FailureDetectorConfig {
            initial_interval: interval,
            dead_node_grace_period: Duration::from_secs(3600),
            ..FailureDetectorConfig::default()
        },
        marked_for_deletion_grace_period: Duration::from_secs(3600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: ProtocolVersion::V0,
    };
    let handle = spawn_chitchat(chitchat_config, Vec::new(), &UdpTransport)
        .await
        .map_err(|e| ClusterError {
            listen: config.listen,
            message: format!("{e:#}"),
        })?;
    let (publish, membership) = watch::channel(Membership {
        settled: false,
        ..Membership::ALONE
    });
    gauges.set(&Membership::ALONE);
    let stop = CancellationToken::new();
    let sync = Sync {
        retention: log.retention_changes(),
        log: log.clone(),
        chitchat: handle.chitchat(),
        self_id: id,
        published: BTreeMap::new(),
        read: BTreeMap::new(),
        settle_by: Instant::now() + config.peer_timeout,
        live: Vec::new(),
        stable_rounds: 0,
        beats: BTreeMap::new(),
        peer_timeout: config.peer_timeout,
        publish,
        gauges,
    };
    tracing::info!(
        listen = %config.listen,
        advertise = %config.advertise,
        peers = ?config.peers,
        authenticated = config.secret_file.is_some(),
        "gossiping the notification log"
    );
    let sync = tokio::spawn(sync.run(interval, stop.clone()));
    Ok(Peers {
        turn: Turn {
            log,
            membership,
            peer_timeout: config.peer_timeout,
        },
        gossip: Some(Gossip { handle, sync, stop }),
    })
}

/// Copies the log into chitchat and the peers' logs out of it, once per gossip round.
struct Sync {
    log: SharedLog,
    /// Changes when a reload changes what the log keeps: every peer's state is read again then.
    retention: watch::Receiver<u64>,
    chitchat: Arc<tokio::sync::Mutex<chitchat::Chitchat>>,
    self_id: ChitchatId,
    /// What this replica has published, key by key.
    published: BTreeMap<String, String>,
    /// The version of each peer's state last read.
    read: BTreeMap<ChitchatId, u64>,
    settle_by: Instant,
    /// The live set of the previous round, and for how many rounds it has not changed.
    live: Vec<String>,
    stable_rounds: u32,
    /// Each peer's last heartbeat and when it last changed.
    beats: BTreeMap<ChitchatId, (chitchat::Heartbeat, Instant)>,
    peer_timeout: Duration,
    publish: watch::Sender<Membership>,
    gauges: ClusterMetrics,
}

impl Sync {
    async fn run(mut self, interval: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            self.round().await;
        }
    }

    async fn round(&mut self) {
        let trust = self.log.trust().clone();
        let seal = trust.sealer();
        let ours = self.log.read(|log| {
            log.entries()
                .map(|(k, e)| (entry_key(k), entry_value(e, seal(k, e))))
                .collect::<BTreeMap<String, String>>()
        });
        if self.retention.has_changed().unwrap_or(false) {
            self.retention.mark_unchanged();
            self.read.clear();
        }
        let mut chitchat = self.chitchat.lock().await;
        if ours != self.published {
            let state = chitchat.self_node_state();
            for (k, v) in &ours {
                if self.published.get(k) != Some(v) {
                    state.set(k, v);
                }
            }
            for k in self.published.keys().filter(|k| !ours.contains_key(*k)) {
                state.delete(k);
            }
            self.published = ours;
        }
        let mut theirs = Vec::new();
        let mut heard = Vec::new();
        let now = Instant::now();
        // A peer counts in the order as soon as its heartbeat is heard moving, before the failure
        // detector has samples enough to call it live, and until it has been silent for one
        // peer_timeout: two replicas must not both take position 0 while one has not noticed the
        // other yet, and a dead one's turn costs one wait at most.
        let mut present = Vec::new();
        for (id, state) in chitchat.node_states() {
            if id.node_id == self.self_id.node_id {
                continue;
            }
            heard.push(id.node_id.to_string());
            let beat = state.heartbeat();
            let changed = match self.beats.get(id) {
                Some((last, at)) if *last == beat => *at,
                _ => now,
            };
            self.beats.insert(id.clone(), (beat, changed));
            if now.duration_since(changed) < self.peer_timeout {
                present.push(id.node_id.to_string());
            }
            if self.read.get(id) == Some(&state.max_version()) {
                continue;
            }
            self.read.insert(id.clone(), state.max_version());
            let entries = state
                .key_values()
                .filter(|(k, _)| k.starts_with(ENTRY_PREFIX))
                .filter_map(|(k, v)| parse_entry(k, v));
            theirs.extend(trust.admit(&id.node_id, entries, chrono::Utc::now()));
        }
        let mut live: Vec<String> = chitchat
            .live_nodes()
            .map(|id| id.node_id.to_string())
            .collect();
        drop(chitchat);
        live.sort_unstable();
        live.dedup();
        present.extend(live.iter().cloned());
        present.sort_unstable();
        present.dedup();
        if live == self.live {
            self.stable_rounds += 1;
        } else {
            self.stable_rounds = 0;
        }
        // A peer heard of but not live yet is one whose log may not be complete here; a dead one
        // keeps this replica waiting until the timeout, which is the most a join may take. Before
        // any peer is heard of, nothing tells "alone" from "not reached yet" (a busy peer may take
        // more than the settle rounds to answer): only the timeout settles that.
        let known = !heard.is_empty() && heard.iter().all(|h| live.contains(h));
        let membership = Membership {
            peers: present.len(),
            position: present
                .iter()
                .position(|n| **n == *self.self_id.node_id)
                .unwrap_or(0),
            settled: self.publish.borrow().settled
                || (known && self.stable_rounds >= SETTLE_ROUNDS)
                || Instant::now() >= self.settle_by,
        };
        self.live = live;
        if !theirs.is_empty() {
            self.log.merge(theirs);
        }
        if *self.publish.borrow() != membership {
            tracing::info!(
                peers = membership.peers,
                position = membership.position,
                settled = membership.settled,
                "cluster membership changed"
            );
            self.gauges.set(&membership);
            self.publish.send_replace(membership);
        }
    }
}

fn entry_key(key: &Key) -> String {
    format!(
        "{ENTRY_PREFIX}{}",
        serde_json::to_string(key).expect("keys serialize")
    )
}

fn entry_value(entry: &Entry, mac: Option<String>) -> String {
    let sealed = SealedEntry {
        entry: entry.clone(),
        mac,
    };
    serde_json::to_string(&sealed).expect("entries serialize")
}

/// An entry a peer published, with its seal; one this version cannot read is skipped (a newer
/// peer's format).
fn parse_entry(key: &str, value: &str) -> Option<(Key, Entry, Option<String>)> {
    let key = serde_json::from_str(key.strip_prefix(ENTRY_PREFIX)?).ok()?;
    let sealed: SealedEntry = serde_json::from_str(value).ok()?;
    Some((key, sealed.entry, sealed.mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::book::{AlertName, AlertStatus, Severity};

    #[test]
    fn entries_round_trip_through_key_values() {
        let key = Key {
            receiver: "a/b:c".into(),
            alertname: AlertName::SignalFailing,
            phase: "istio,nodes".into(),
            signal: "mesh_5xx".into(),
            cluster: String::new(),
            wave: String::new(),
        };
        let entry = Entry {
            status: AlertStatus::Resolved,
            at: chrono::Utc::now(),
            starts_at: chrono::Utc::now(),
            severity: Severity::Warning,
            hash: "h".into(),
        };
        let k = entry_key(&key);
        let v = entry_value(&entry, Some("ab12".into()));
        assert_eq!(parse_entry(&k, &v), Some((key, entry, Some("ab12".into()))));
        assert_eq!(parse_entry("nf:garbage", &v), None);
        assert_eq!(parse_entry("heartbeat", &v), None);
    }

    #[test]
    fn gossip_is_a_fraction_of_the_peer_timeout_within_bounds() {
        assert_eq!(
            gossip_interval(Duration::from_secs(15)),
            Duration::from_millis(200)
        );
        assert_eq!(
            gossip_interval(Duration::from_secs(1)),
            Duration::from_millis(100)
        );
        assert_eq!(
            gossip_interval(Duration::from_millis(50)),
            Duration::from_millis(20)
        );
    }
}
