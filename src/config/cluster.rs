//! The `cluster` section: the replicas that share one notification log over gossip, where this
//! one listens, what its peers dial, how long each position waits before it sends, and the shared
//! key that authenticates what they gossip.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::problems::{Key, Problems};
use crate::secret::expand_env;

const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(15);
/// Shorter keys are guessable offline from one captured packet.
const MIN_SECRET_BYTES: usize = 16;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    listen: Option<String>,
    advertise: Option<String>,
    /// A list in YAML; from the environment (`UPGRADE_GATE__CLUSTER__PEERS`), one string with
    /// commas between peers.
    #[serde(default, deserialize_with = "list_or_commas")]
    peers: Vec<String>,
    peer_timeout: Option<String>,
    secret_file: Option<String>,
    insecure: Option<bool>,
}

/// Gossip between replicas. Peers are `host:port`; a DNS name stands for every address it
/// resolves to, so a headless Service names all replicas at once.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub listen: SocketAddr,
    /// What peers dial to reach this replica; also its identity in the sending order.
    pub advertise: SocketAddr,
    pub peers: Vec<String>,
    /// How long the replica at position k waits, k times, before it sends what nobody sent.
    pub peer_timeout: Duration,
    /// Holds the key every gossiped entry is authenticated with; re-read by the gossip whenever
    /// the file changes. `None` only with `insecure`.
    pub secret_file: Option<PathBuf>,
    /// Gossip without a key, as asked for with `cluster.insecure: true`.
    pub insecure: bool,
}

pub(super) fn validate_cluster(
    file: &str,
    raw: Option<RawCluster>,
    problems: &Problems,
) -> Option<ClusterConfig> {
    let raw = raw?;
    let at = problems.at(file);
    let address = |key: &str, text: &str| -> Option<SocketAddr> {
        let parsed = expand_env(text).and_then(|t| {
            t.parse::<SocketAddr>()
                .map_err(|e| format!("{t:?} is not an address such as 10.0.0.5:7946: {e}"))
        });
        at.key(format!("cluster.{key}")).check(parsed)
    };
    let listen = raw
        .listen
        .as_deref()
        .and_then(|text| address("listen", text));
    at.key("cluster.listen").require(
        raw.listen.is_some(),
        "missing; the gossip address, such as 0.0.0.0:7946",
    );
    let advertise = match raw.advertise.as_deref() {
        Some(text) => address("advertise", text),
        None => listen,
    };
    if let Some(a) = advertise.filter(|a| a.ip().is_unspecified() || a.port() == 0) {
        let key = match raw.advertise {
            Some(_) => "cluster.advertise",
            None => "cluster.listen",
        };
        at.key(key).problem(format!(
            "peers cannot dial {a}; \
             set cluster.advertise to this replica's own address, such as ${{POD_IP}}:7946"
        ));
    }
    let mut peers = Vec::new();
    for (i, peer) in raw.peers.iter().enumerate() {
        let key = at.key(format!("cluster.peers[{i}]"));
        let peer = expand_env(peer).and_then(|p| match valid_host_port(&p) {
            true => Ok(p),
            false => Err(format!(
                "{p:?} is not host:port, such as upgrade-gate-peers:7946"
            )),
        });
        peers.extend(key.check(peer));
    }
    let key = at.key("cluster.peer_timeout");
    let peer_timeout = key.duration_or(raw.peer_timeout, DEFAULT_PEER_TIMEOUT);
    key.require(!peer_timeout.is_zero(), "must be more than 0");
    let insecure = raw.insecure.unwrap_or(false);
    let secret_file =
        validate_secret_file(at.key("cluster.secret_file"), raw.secret_file, insecure);
    Some(ClusterConfig {
        listen: listen?,
        advertise: advertise?,
        peers,
        peer_timeout,
        secret_file,
        insecure,
    })
}

/// Without a key, anyone who can send UDP to the gossip port can silence notifications: a cluster
/// needs one, or says in so many words that it does without. The file is read now so that a wrong
/// path fails at start; the key itself is never kept here.
fn validate_secret_file(key: Key, path: Option<String>, insecure: bool) -> Option<PathBuf> {
    let path = match (path, insecure) {
        (None, true) => return None,
        (None, false) => {
            key.problem(
                "missing: replicas authenticate the notification log they gossip with a shared \
                 key (a file holding, say, `openssl rand -base64 32`); set `cluster.insecure: true` \
                 to gossip without one",
            );
            return None;
        }
        (Some(_), true) => {
            key.problem("set either `cluster.secret_file` or `cluster.insecure: true`, not both");
            return None;
        }
        (Some(path), false) => path,
    };
    let path = key.check(expand_env(&path))?;
    // One key a line (the first seals, every one is accepted: a rotation adds a line first).
    let short = |text: &str| {
        let mut keys = text.lines().map(str::trim).filter(|l| !l.is_empty());
        keys.clone().next().is_none() || keys.any(|k| k.len() < MIN_SECRET_BYTES)
    };
    let keys =
        key.check(std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}")))?;
    key.require(
        !short(&keys),
        format!(
            "{path} holds a key of fewer than {MIN_SECRET_BYTES} bytes, or none; \
             use a random key such as `openssl rand -base64 32`"
        ),
    )
    .then(|| PathBuf::from(path))
}

fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Peers {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match Peers::deserialize(d)? {
        Peers::List(list) => list,
        Peers::Commas(text) => text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect(),
    })
}

fn valid_host_port(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insecure() -> RawCluster {
        RawCluster {
            insecure: Some(true),
            ..RawCluster::default()
        }
    }

    fn check(raw: RawCluster) -> (Option<ClusterConfig>, Vec<String>) {
        let problems = Problems::default();
        let c = validate_cluster("f.yaml", Some(raw), &problems);
        (
            c,
            problems
                .into_vec()
                .iter()
                .map(ToString::to_string)
                .collect(),
        )
    }

    #[test]
    fn advertise_defaults_to_listen_and_must_be_dialable() {
        let (c, problems) = check(RawCluster {
            listen: Some("127.0.0.1:7946".into()),
            peers: vec!["peers.svc:7946".into(), "10.0.0.2:7946".into()],
            ..insecure()
        });
        assert!(problems.is_empty(), "{problems:?}");
        let c = c.unwrap();
        assert_eq!(c.advertise, "127.0.0.1:7946".parse().unwrap());
        assert_eq!(c.peer_timeout, DEFAULT_PEER_TIMEOUT);
        let (_, problems) = check(RawCluster {
            listen: Some("0.0.0.0:7946".into()),
            ..insecure()
        });
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("key `cluster.listen`"), "{problems:?}");
    }

    #[test]
    fn peers_from_the_environment_are_one_string_with_commas() {
        let raw: RawCluster = serde_json::from_value(serde_json::json!({
            "listen": "10.0.0.5:7946",
            "peers": "upgrade-gate-peers:7946, 10.0.0.6:7946",
            "insecure": true
        }))
        .unwrap();
        let (c, problems) = check(raw);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            c.unwrap().peers,
            ["upgrade-gate-peers:7946", "10.0.0.6:7946"]
        );
    }

    #[test]
    fn bad_values_are_named_by_key() {
        let (c, problems) = check(RawCluster {
            listen: Some("nowhere".into()),
            advertise: Some("10.0.0.1:7946".into()),
            peers: vec!["no-port".into()],
            peer_timeout: Some("0s".into()),
            ..insecure()
        });
        assert!(c.is_none());
        let keys: Vec<&str> = ["cluster.listen", "cluster.peers[0]", "cluster.peer_timeout"]
            .into_iter()
            .filter(|k| problems.iter().any(|p| p.contains(&format!("`{k}`"))))
            .collect();
        assert_eq!(keys.len(), 3, "{problems:?}");
    }

    #[test]
    fn a_cluster_needs_a_key_unless_it_says_it_is_insecure() {
        let listen = || Some("10.0.0.5:7946".to_string());
        let (c, problems) = check(RawCluster {
            listen: listen(),
            ..RawCluster::default()
        });
        assert!(c.unwrap().secret_file.is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("f.yaml: key `cluster.secret_file`: missing")
                && problems[0].contains("cluster.insecure: true"),
            "{problems:?}"
        );

        let (c, problems) = check(RawCluster {
            listen: listen(),
            ..insecure()
        });
        assert!(problems.is_empty(), "{problems:?}");
        let c = c.unwrap();
        assert!(c.insecure && c.secret_file.is_none());

        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
        let with_key = |path: &std::path::Path, insecure: Option<bool>| RawCluster {
            listen: listen(),
            secret_file: Some(path.display().to_string()),
            insecure,
            ..RawCluster::default()
        };
        let (c, problems) = check(with_key(&key, None));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c.unwrap().secret_file.as_deref(), Some(key.as_path()));

        let short = dir.path().join("short");
        std::fs::write(&short, "0123456789abcdef0123456789abcdef\nhunter2\n").unwrap();
        for raw in [
            with_key(&key, Some(true)),
            with_key(&short, None),
            with_key(&dir.path().join("absent"), None),
        ] {
            let (_, problems) = check(raw);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0].contains("key `cluster.secret_file`"),
                "{problems:?}"
            );
            assert!(!problems[0].contains("hunter2"), "{problems:?}");
        }
    }
}
