//! The problem list: everything wrong with a configuration, each located by file, signal and
//! key, collected in one pass so that a pack edited in bulk is fixed in one round.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

/// One thing wrong with the configuration, located precisely enough to fix without searching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub signal: Option<String>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(signal) = &self.signal {
            write!(f, ": signal {signal:?}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found while loading; never empty.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// Collects problems while walking the raw config. Shared rather than `&mut` so that a
/// validator can hand its [`At`] to readers and closures while still adding rules of its own.
#[derive(Debug, Default)]
pub(super) struct Problems(RefCell<Vec<Problem>>);

impl Problems {
    pub(super) fn add(&self, file: &str, signal: Option<&str>, key: Option<&str>, message: String) {
        self.push(Problem {
            file: file.to_string(),
            signal: signal.map(str::to_string),
            key: key.map(str::to_string),
            message,
        });
    }

    pub(super) fn push(&self, problem: Problem) {
        self.0.borrow_mut().push(problem);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    pub(super) fn into_vec(self) -> Vec<Problem> {
        self.0.into_inner()
    }

    /// Where the rules of `file` report, until narrowed to a signal or a key.
    pub(super) fn at<'a>(&'a self, file: &'a str) -> At<'a> {
        At {
            problems: self,
            file,
            signal: None,
        }
    }
}

/// A file, and within it perhaps a signal: the place a rule's problem is reported.
#[derive(Debug, Clone, Copy)]
pub(super) struct At<'a> {
    problems: &'a Problems,
    file: &'a str,
    signal: Option<&'a str>,
}

impl<'a> At<'a> {
    /// The same file, within the signal `name`.
    pub(super) fn signal(self, name: &'a str) -> At<'a> {
        At {
            signal: Some(name),
            ..self
        }
    }

    /// A key here, such as `prometheus.timeout` (or `for`, within a signal).
    pub(super) fn key(self, key: impl Into<Cow<'a, str>>) -> Key<'a> {
        Key {
            at: self,
            key: key.into(),
        }
    }

    pub(super) fn file(self) -> &'a str {
        self.file
    }

    /// A problem of the file (or signal) as a whole, for a source that failed to parse.
    pub(super) fn push(self, problem: Problem) {
        self.problems.push(problem);
    }
}

/// One key of a file (or of a signal in it): each rule about it is one call.
#[derive(Debug, Clone)]
pub(super) struct Key<'a> {
    at: At<'a>,
    key: Cow<'a, str>,
}

impl Key<'_> {
    pub(super) fn problem(&self, message: impl Into<String>) {
        let At {
            problems,
            file,
            signal,
        } = self.at;
        problems.add(file, signal, Some(&self.key), message.into());
    }

    /// Reports `message` unless `ok`; says whether the rule held.
    pub(super) fn require(&self, ok: bool, message: impl Into<String>) -> bool {
        if !ok {
            self.problem(message);
        }
        ok
    }

    /// The value, or `None` with its error reported.
    pub(super) fn check<T>(&self, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.problem(message)).ok()
    }

    pub(super) fn name(&self) -> &str {
        &self.key
    }
}
