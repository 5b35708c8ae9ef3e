//! What a replica trusts of the notification log entries it did not write itself, from a peer's
//! gossip or from the state file: chitchat authenticates nobody, and one forged firing entry dated
//! in the future would win every merge and silence the real notification.
//!
//! With `cluster.secret_file`, every entry carries an HMAC-SHA256 over everything that is merged
//! (its key and its whole content) with the cluster's shared key; one without a valid seal is
//! dropped. Whatever the key, an entry dated more than one `peer_timeout` ahead of the local clock
//! is refused too (a replica whose clock jumped forward would win every merge just the same).
//! Both are counted in `upgrade_gate_cluster_rejected_total`.
//!
//! The state file is checked the same way as gossip: it is written from a log whose every entry
//! was checked, so a valid file passes whole; what fails is a file written before the key was set
//! (when a rogue's entry may have been merged), with another key, or by anyone but a replica.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::nflog::{Entry, Key};
use crate::secret::{Secret, SecretFile};

/// Tells this seal from any other HMAC made with the same key, and this layout from a later one.
const DOMAIN: &[u8] = b"upgrade-gate notification log entry v1\0";
/// Rejections are counted each; they are logged at most this often, so a flood of forged packets
/// does not flood the log too.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// An entry as gossiped: its content and, with a key, its seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedEntry {
    #[serde(flatten)]
    pub entry: Entry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// Why an entry was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No seal, or not one made with this cluster's key.
    Unauthenticated,
    /// Dated more than the allowed skew ahead of the local clock.
    FromTheFuture,
}

/// The checks, shared by the gossip and the state file; clones share the key and the counter.
#[derive(Clone)]
pub struct Trust {
    key: Option<Arc<SecretFile>>,
    /// How far ahead of the local clock an entry may be dated (one `peer_timeout`).
    skew: Duration,
    rejected: Counter,
    warned: Arc<Mutex<Option<Instant>>>,
}

impl Trust {
    /// Seals and checks with the key in `key` (re-read when the file changes); without one, only
    /// the date is checked.
    pub fn new(key: Option<SecretFile>, skew: Duration, rejected: Counter) -> Trust {
        Trust {
            key: key.map(Arc::new),
            skew,
            rejected,
            warned: Arc::default(),
        }
    }

    /// The seal of one entry, `None` without a key.
    pub fn seal(&self, key: &Key, entry: &Entry) -> Option<String> {
        self.sealer()(key, entry)
    }

    /// Seals entries with the key as it is now, read once for all of them.
    pub fn sealer(&self) -> impl Fn(&Key, &Entry) -> Option<String> {
        let secret = self.key.as_ref().and_then(|file| file.current());
        move |key, entry| {
            let secret = secret.as_ref()?;
            let mac = mac(keys(secret).next()?, key, entry)?;
            Some(hex::encode(mac.finalize().into_bytes()))
        }
    }

    /// Why `entry` is not to be taken at `now`, if it is not.
    pub fn check(
        &self,
        key: &Key,
        entry: &Entry,
        seal: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Rejection> {
        let secret = self.key.as_ref().map(|file| file.current());
        self.check_with(secret.as_ref(), key, entry, seal, now)
    }

    /// [`Trust::check`] with the key already read: `None` without a key, `Some(None)` when its
    /// file was never readable (nothing passes then).
    fn check_with(
        &self,
        secret: Option<&Option<Secret>>,
        key: &Key,
        entry: &Entry,
        seal: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Rejection> {
        if let Some(secret) = secret {
            let seal = seal.and_then(|s| hex::decode(s).ok());
            let valid = secret.as_ref().zip(seal).is_some_and(|(secret, seal)| {
                keys(secret)
                    .any(|k| mac(k, key, entry).is_some_and(|m| m.verify_slice(&seal).is_ok()))
            });
            if !valid {
                return Err(Rejection::Unauthenticated);
            }
        }
        match (entry.at - now).to_std() {
            Ok(ahead) if ahead > self.skew => Err(Rejection::FromTheFuture),
            _ => Ok(()),
        }
    }

    /// The entries that pass; the others are counted, and logged as coming `from` (a peer, the
    /// state file), at most once a minute.
    pub fn admit(
        &self,
        from: &str,
        entries: impl IntoIterator<Item = (Key, Entry, Option<String>)>,
        now: DateTime<Utc>,
    ) -> Vec<(Key, Entry)> {
        let (mut unauthenticated, mut future) = (0, 0);
        let secret = self.key.as_ref().map(|file| file.current());
        let admitted = entries
            .into_iter()
            .filter(|(k, e, seal)| {
                match self.check_with(secret.as_ref(), k, e, seal.as_deref(), now) {
                    Ok(()) => true,
                    Err(r) => {
                        self.rejected.inc();
                        match r {
                            Rejection::Unauthenticated => unauthenticated += 1,
                            Rejection::FromTheFuture => future += 1,
                        }
                        false
                    }
                }
            })
            .map(|(k, e, _)| (k, e))
            .collect();
        if unauthenticated + future > 0 {
            self.warn(from, unauthenticated, future);
        }
        admitted
    }

    fn warn(&self, from: &str, unauthenticated: usize, future: usize) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return;
        }
        *warned = Some(Instant::now());
        tracing::warn!(
            from,
            unauthenticated,
            future,
            skew = %humantime::format_duration(self.skew),
            "notification log entries rejected: without a valid seal of the cluster key, or dated ahead of this clock by more than the skew (all counted in upgrade_gate_cluster_rejected_total; logged at most once a minute)"
        );
    }
}

/// The keys in the file, one a line: the first seals, every one is accepted. So a key is rotated
/// without a moment where replicas refuse each other: add the new key as a second line everywhere,
/// then make it the first, then drop the old one.
fn keys(secret: &Secret) -> impl Iterator<Item = &[u8]> {
    secret
        .expose()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::as_bytes)
}

/// The HMAC state over one entry, ready to finalize or verify; `None` only for an entry that does
/// not serialize, which no entry does.
fn mac(secret: &[u8], key: &Key, entry: &Entry) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(DOMAIN);
    // Serialized by this process from the parsed values, never from the bytes received: whatever
    // the peer's spelling, the seal covers exactly what is merged.
    mac.update(&serde_json::to_vec(&(key, entry)).ok()?);
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::book::{AlertName, AlertStatus, Severity};

    const SKEW: Duration = Duration::from_secs(15);

    fn key(receiver: &str) -> Key {
        Key {
            receiver: receiver.into(),
            alertname: AlertName::PhaseNoGo,
            phase: "istio".into(),
            signal: String::new(),
            cluster: String::new(),
            wave: String::new(),
        }
    }

    fn entry(at: DateTime<Utc>) -> Entry {
        Entry {
            status: AlertStatus::Firing,
            at,
            starts_at: at,
            severity: Severity::Critical,
            hash: "h".into(),
        }
    }

    fn keyed(dir: &std::path::Path, secret: &str) -> (Trust, Counter) {
        let path = dir.join(format!("key-{secret}"));
        std::fs::write(&path, secret).unwrap();
        let counter = Counter::default();
        let file = SecretFile::new(path, "cluster.secret_file");
        (Trust::new(Some(file), SKEW, counter.clone()), counter)
    }

    #[test]
    fn only_entries_sealed_with_the_key_and_unchanged_are_admitted() {
        let dir = tempfile::tempdir().unwrap();
        let (ours, rejected) = keyed(dir.path(), "the-cluster-key-0123456789");
        let (theirs, _) = keyed(dir.path(), "another-key-0123456789abcdef");
        let now = Utc::now();
        let (k, e) = (key("hook"), entry(now));
        let seal = ours.seal(&k, &e);
        assert_eq!(ours.check(&k, &e, seal.as_deref(), now), Ok(()));
        // Anything merged changed after sealing: the receiver, the date, the status.
        let mut later = e.clone();
        later.at += chrono::Duration::seconds(1);
        let mut resolved = e.clone();
        resolved.status = AlertStatus::Resolved;
        let forged = theirs.seal(&k, &e);
        let candidates = [
            (k.clone(), e.clone(), seal.clone()),
            (key("other"), e.clone(), seal.clone()),
            (k.clone(), later, seal.clone()),
            (k.clone(), resolved, seal.clone()),
            (k.clone(), e.clone(), forged),
            (k.clone(), e.clone(), None),
            (k.clone(), e.clone(), Some("not hex".into())),
        ];
        let admitted = ours.admit("peer", candidates, now);
        assert_eq!(admitted, [(k, e)]);
        assert_eq!(rejected.get(), 6);
    }

    #[test]
    fn entries_dated_more_than_the_skew_ahead_are_refused_with_or_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let (keyed, rejected) = keyed(dir.path(), "the-cluster-key-0123456789");
        let unkeyed = Trust::new(None, SKEW, rejected.clone());
        let now = Utc::now();
        let within = entry(now + chrono::Duration::seconds(14));
        let beyond = entry(now + chrono::Duration::seconds(16));
        let far = entry(now + chrono::Duration::days(365));
        for trust in [&keyed, &unkeyed] {
            let k = key("hook");
            let sealed = |e: &Entry| (k.clone(), e.clone(), trust.seal(&k, e));
            assert_eq!(
                trust.check(&k, &within, trust.seal(&k, &within).as_deref(), now),
                Ok(())
            );
            assert_eq!(
                trust.check(&k, &far, trust.seal(&k, &far).as_deref(), now),
                Err(Rejection::FromTheFuture)
            );
            let admitted = trust.admit("peer", [sealed(&within), sealed(&beyond)], now);
            assert_eq!(admitted, [(k.clone(), within.clone())]);
        }
        assert_eq!(rejected.get(), 2);
    }

    #[test]
    fn a_sealed_entry_round_trips_as_json_and_an_older_reader_sees_the_entry() {
        let e = entry(Utc::now());
        let sealed = SealedEntry {
            entry: e.clone(),
            mac: Some("ab".into()),
        };
        let text = serde_json::to_string(&sealed).unwrap();
        assert_eq!(serde_json::from_str::<SealedEntry>(&text).unwrap(), sealed);
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), e);
    }

    #[test]
    fn every_line_of_the_key_file_is_accepted_and_the_first_seals() {
        let dir = tempfile::tempdir().unwrap();
        let (old, _) = keyed(dir.path(), "the-old-key-0123456789abcdef");
        let (new, _) = keyed(dir.path(), "the-new-key-0123456789abcdef");
        let (both, rejected) = keyed(
            dir.path(),
            "the-new-key-0123456789abcdef\nthe-old-key-0123456789abcdef\n",
        );
        let now = Utc::now();
        let (k, e) = (key("hook"), entry(now));
        for one in [&old, &new] {
            assert_eq!(both.check(&k, &e, one.seal(&k, &e).as_deref(), now), Ok(()));
        }
        assert_eq!(both.seal(&k, &e), new.seal(&k, &e));
        assert_eq!(
            old.check(&k, &e, both.seal(&k, &e).as_deref(), now),
            Err(Rejection::Unauthenticated)
        );
        assert_eq!(rejected.get(), 0);
    }
}
