//! The notification log as one process holds it: shared by the receivers' workers and the
//! gossip, written to the state file after each change, and GC'd as it goes. What comes from the
//! file passes the same checks as what comes from a peer ([`Trust`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::watch;

use super::nflog::{Entry, Key, NotificationLog, Retention};
use super::seal::Trust;
use super::statefile;

/// A cheap handle; every clone sees the same log.
#[derive(Clone)]
pub struct SharedLog {
    log: Arc<Mutex<NotificationLog>>,
    file: Option<Arc<PathBuf>>,
    /// Bumped on every change, so gossip knows when to publish.
    changes: Arc<watch::Sender<u64>>,
    /// Bumped when the retention changes: a peer's entries left out before may be kept now.
    retention: Arc<watch::Sender<u64>>,
    trust: Trust,
}

impl SharedLog {
    /// The log kept in `file`, read now; an empty one if there is none yet. A file that cannot be
    /// read is logged and replaced on the next change: what it held may be announced again,
    /// which beats never announcing it. Entries that `trust` refuses are left out, and counted.
    pub fn open(file: Option<PathBuf>, trust: Trust) -> SharedLog {
        let mut log = NotificationLog::default();
        if let Some(path) = &file {
            match statefile::load(path) {
                Ok(entries) => {
                    let now = Utc::now();
                    log.merge(trust.admit(&path.display().to_string(), entries, now), now);
                    tracing::info!(path = %path.display(), entries = log.len(), "notification log read");
                }
                Err(e) => tracing::error!(error = %e, "starting with an empty notification log"),
            }
        }
        SharedLog {
            log: Arc::new(Mutex::new(log)),
            file: file.map(Arc::new),
            changes: Arc::new(watch::Sender::new(0)),
            retention: Arc::new(watch::Sender::new(0)),
            trust,
        }
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Applies the alerts configuration in force (after a start or a reload): collects what it no
    /// longer keeps, at once.
    pub fn set_retention(&self, retention: Retention) {
        let mut log = self.log.lock().expect("notification log lock");
        log.set_retention(retention);
        let dropped = log.gc(Utc::now()).len();
        if dropped > 0 {
            self.saved(&log);
        }
        drop(log);
        self.retention.send_modify(|v| *v += 1);
    }

    pub fn read<T>(&self, f: impl FnOnce(&NotificationLog) -> T) -> T {
        f(&self.log.lock().expect("notification log lock"))
    }

    /// Records one notification sent (or refused for good).
    pub fn record(&self, key: Key, entry: Entry) {
        self.merge([(key, entry)]);
    }

    /// Merges entries (from a peer, or one just sent); saves and announces a change. Returns how
    /// many entries changed.
    pub fn merge(&self, entries: impl IntoIterator<Item = (Key, Entry)>) -> usize {
        let mut log = self.log.lock().expect("notification log lock");
        let now = Utc::now();
        let changed = log.merge(entries, now).len() + log.gc(now).len();
        if changed > 0 {
            self.saved(&log);
        }
        changed
    }

    /// Saves a changed log and announces the change.
    fn saved(&self, log: &NotificationLog) {
        if let Some(path) = &self.file {
            if let Err(e) = statefile::save(path, log, self.trust.sealer()) {
                tracing::error!(error = %e, "notification log not saved; a restart may repeat what it holds");
            }
        }
        self.changes.send_modify(|v| *v += 1);
    }

    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn retention_changes(&self) -> watch::Receiver<u64> {
        self.retention.subscribe()
    }
}
