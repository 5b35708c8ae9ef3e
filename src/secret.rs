//! Secrets (webhook URLs, HMAC keys): values that must never reach a log line, an error message
//! or an API answer. `Debug` and `Display` print a placeholder; only `expose` gives the value,
//! and only the code that puts it on the wire calls it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A secret kept in a file that may be replaced while the process runs (a rotated Kubernetes
/// Secret): read again whenever the file changes. A file that cannot be read or is empty
/// (half-written) leaves the last good value in force, with an error logged once per change; only
/// the path is ever logged.
pub struct SecretFile {
    path: PathBuf,
    /// The configuration key that names the file, for the log.
    key: &'static str,
    cached: Mutex<Option<(Option<FileStamp>, Secret)>>,
}

impl SecretFile {
    pub fn new(path: PathBuf, key: &'static str) -> SecretFile {
        SecretFile {
            path,
            key,
            cached: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current value; `None` while the file has never been read successfully.
    pub fn current(&self) -> Option<Secret> {
        let stamp = FileStamp::of(&self.path);
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, value)) = cached.as_ref() {
            if *seen == stamp {
                return Some(value.clone());
            }
        }
        let read = std::fs::read_to_string(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|text| match text.trim() {
                "" => Err("the file is empty".to_string()),
                value => Ok(Secret::new(value.to_string())),
            });
        match read {
            Ok(value) => {
                if cached.is_some() {
                    tracing::info!(file = %self.path.display(), "{} re-read", self.key);
                }
                *cached = Some((stamp, value.clone()));
                Some(value)
            }
            Err(e) => {
                tracing::error!(
                    file = %self.path.display(),
                    error = %e,
                    "cannot read {}; the last value read stays in force",
                    self.key
                );
                let (seen, value) = cached.as_mut()?;
                *seen = stamp;
                Some(value.clone())
            }
        }
    }
}

/// Enough of a file's metadata to notice a replacement: Kubernetes swaps a symlink to a new
/// file, an editor rewrites in place.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: inode(&meta),
        })
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

/// Expands `${NAME}` from the environment. Unset variables are named in the error; values never are.
pub fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unclosed ${ in value".to_string())?;
        let name = &after[..end];
        let value =
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn expands_variables_and_names_missing_ones() {
        std::env::set_var("UPGRADE_GATE_TEST_SECRET_HOST", "hooks.example");
        assert_eq!(
            expand_env("https://${UPGRADE_GATE_TEST_SECRET_HOST}/x").unwrap(),
            "https://hooks.example/x"
        );
        assert_eq!(expand_env("plain").unwrap(), "plain");
        assert_eq!(
            expand_env("${UPGRADE_GATE_TEST_SURELY_UNSET}").unwrap_err(),
            "environment variable UPGRADE_GATE_TEST_SURELY_UNSET is not set"
        );
        assert!(expand_env("${OPEN").is_err());
    }

    #[test]
    fn a_secret_file_is_read_again_when_it_changes_and_kept_when_it_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let file = SecretFile::new(path.clone(), "cluster.secret_file");
        assert_eq!(file.current(), None, "no file yet");
        std::fs::write(&path, "first\n").unwrap();
        assert_eq!(file.current().unwrap().expose(), "first");
        // Replaced as Kubernetes does: a new file renamed over the old one.
        let next = dir.path().join("next");
        std::fs::write(&next, "second-value").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(file.current().unwrap().expose(), "second-value");
        std::fs::write(&path, "").unwrap();
        assert_eq!(file.current().unwrap().expose(), "second-value");
    }
}
