//! The notification log on disk, for a process that restarts: read at start, replaced after
//! each change by writing a temporary file beside it, syncing it, and renaming it over the old
//! one, so a crash leaves either the old log or the new one, never half of each. In a cluster with a
//! key each entry carries its seal, checked on load as a peer's would be ([`super::seal`]).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::nflog::{Entry, Key, NotificationLog};

/// Bumped on any incompatible change of the file.
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read the notification log {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the notification log {path} is not one this version wrote: {message}")]
    Format { path: PathBuf, message: String },
    #[error("cannot write the notification log {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    entries: Vec<StoredEntry>,
}

#[derive(Serialize, Deserialize)]
struct StoredEntry {
    key: Key,
    entry: Entry,
    /// Absent without a cluster key, and in files written before there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
}

/// The entries in `path`, each with its seal if it has one; none when the file does not exist yet.
pub fn load(path: &Path) -> Result<Vec<(Key, Entry, Option<String>)>, StateFileError> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateFileError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let format = |message: String| StateFileError::Format {
        path: path.to_path_buf(),
        message,
    };
    let stored: Stored = serde_json::from_slice(&text).map_err(|e| format(e.to_string()))?;
    if stored.version != VERSION {
        return Err(format(format!(
            "version {} (expected {VERSION})",
            stored.version
        )));
    }
    Ok(stored
        .entries
        .into_iter()
        .map(|s| (s.key, s.entry, s.mac))
        .collect())
}

/// Replaces `path` with `log`, atomically, each entry with what `seal` makes of it.
pub fn save(
    path: &Path,
    log: &NotificationLog,
    seal: impl Fn(&Key, &Entry) -> Option<String>,
) -> Result<(), StateFileError> {
    let stored = Stored {
        version: VERSION,
        entries: log
            .entries()
            .map(|(k, e)| StoredEntry {
                key: k.clone(),
                entry: e.clone(),
                mac: seal(k, e),
            })
            .collect(),
    };
    let body = serde_json::to_vec_pretty(&stored).expect("the log serializes");
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let write = |source| StateFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::create(&temp).map_err(write)?;
    file.write_all(&body).map_err(write)?;
    file.sync_all().map_err(write)?;
    drop(file);
    fs::rename(&temp, path).map_err(write)?;
    // The rename itself is durable only once the directory is synced.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::book::{AlertName, AlertStatus, Severity};

    fn log() -> NotificationLog {
        let mut log = NotificationLog::default();
        let at = chrono::Utc::now();
        log.record(
            Key {
                receiver: "hook".into(),
                alertname: AlertName::PhaseNoGo,
                phase: "istio".into(),
                signal: String::new(),
                cluster: String::new(),
                wave: String::new(),
            },
            Entry {
                status: AlertStatus::Firing,
                at,
                starts_at: at,
                severity: Severity::Critical,
                hash: "abc".into(),
            },
        );
        log
    }

    #[test]
    fn what_is_saved_is_loaded_and_no_temp_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notifications.json");
        assert!(load(&path).unwrap().is_empty(), "no file yet: an empty log");
        let log = log();
        save(&path, &log, |_, _| None).unwrap();
        save(&path, &log, |_, _| Some("seal".into())).unwrap();
        let loaded = load(&path).unwrap();
        assert!(loaded
            .iter()
            .all(|(_, _, mac)| mac.as_deref() == Some("seal")));
        let mut back = NotificationLog::default();
        back.merge(
            loaded.into_iter().map(|(k, e, _)| (k, e)),
            chrono::Utc::now(),
        );
        assert_eq!(back, log);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["notifications.json"]);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notifications.json");
        fs::write(&path, "{\"version\": 1, \"entries\": [").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("notifications.json"), "{e}");
        fs::write(&path, "{\"version\": 9, \"entries\": []}").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("version 9"));
    }
}
