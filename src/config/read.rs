//! Reading raw values: YAML documents layered with `UPGRADE_GATE__` environment overrides
//! through the `config` crate, durations, and secrets given inline or as files. Each failure
//! becomes a [`Problem`] rather than an early return.

use std::time::Duration;

use config::Environment;

use super::problems::{Key, Problem};
use crate::secret::{expand_env, Secret};

const ENV_PREFIX: &str = "UPGRADE_GATE";

/// `UPGRADE_GATE__PROMETHEUS__URL` overrides `prometheus.url`, and so on for every key.
pub(super) fn env_overrides() -> Environment {
    Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
}

pub(super) fn read_raw<T: serde::de::DeserializeOwned>(
    name: &str,
    source: impl config::Source + Send + Sync + 'static,
    env: Option<Environment>,
) -> Result<T, Problem> {
    let mut builder = config::Config::builder().add_source(source);
    if let Some(env) = env {
        builder = builder.add_source(env);
    }
    builder
        .build()
        .and_then(|c| c.try_deserialize::<T>())
        .map_err(|e| config_problem(name, e))
}

fn config_problem(file: &str, e: config::ConfigError) -> Problem {
    Problem {
        file: file.to_string(),
        signal: None,
        key: None,
        message: e.to_string(),
    }
}

/// Parses a humantime duration such as `10m` or `1h30m`; `0` alone means zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 30s or 10m: {e}"))
}

impl Key<'_> {
    /// A duration, or `default` when not given (or not readable, with the problem reported).
    pub(super) fn duration_or(&self, text: Option<String>, default: Duration) -> Duration {
        match text.as_deref() {
            None => default,
            Some(text) => self.check(parse_duration(text)).unwrap_or(default),
        }
    }

    /// A count that must be at least 1, or `default` when not given.
    pub(super) fn count_or(&self, value: Option<i64>, default: usize) -> usize {
        match value {
            None => default,
            Some(n) if n >= 1 => n as usize,
            Some(n) => {
                self.problem(format!("{n} must be at least 1"));
                default
            }
        }
    }

    /// A secret given inline (with `${ENV}` expansion) or as `<key>_file`, never both.
    pub(super) fn secret(&self, inline: Option<String>, path: Option<String>) -> Option<Secret> {
        let key = self.name();
        let result = match (inline, path) {
            (None, None) => return None,
            (Some(_), Some(_)) => Err(format!("set either `{key}` or `{key}_file`, not both")),
            (Some(text), None) => expand_env(&text),
            (None, Some(path)) => std::fs::read_to_string(&path)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("cannot read {key}_file {path}: {e}")),
        };
        let value = self.check(result)?;
        self.require(!value.is_empty(), "is empty")
            .then(|| Secret::new(value))
    }
}
