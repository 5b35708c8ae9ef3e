//! Reading raw values: YAML documents layered with `UPGRADE_GATE__` environment overrides
//! through the `config` crate, durations, whole numbers, and secrets given inline or as files.
//! Each failure becomes a [`Problem`] rather than an early return.

use std::fmt;
use std::time::Duration;

use config::{Environment, Source};
use serde::de::{self, Deserializer, Unexpected, Visitor};

use super::problems::{Key, Problem};
use crate::secret::{expand_env, Secret};

const ENV_PREFIX: &str = "UPGRADE_GATE";

/// `UPGRADE_GATE__PROMETHEUS__URL` overrides `prometheus.url`, and so on for every key. Every
/// value stays the text it was: guessing types here (the crate's `try_parsing`) sent a token
/// `007` as `7` and a password `12.50` as `12.5`. Keys that want a number or a boolean read
/// it from the text themselves ([`whole_number`], the crate's own boolean reading).
pub(super) fn env_overrides() -> Environment {
    Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
}

pub(super) fn read_raw<T: serde::de::DeserializeOwned>(
    name: &str,
    source: impl config::Source + Send + Sync + 'static,
    env: Option<Environment>,
) -> Result<T, Problem> {
    let mut builder = config::Config::builder().add_source(source);
    if let Some(env) = env.clone() {
        builder = builder.add_source(env);
    }
    builder
        .build()
        .and_then(|c| c.try_deserialize::<T>())
        .map_err(|e| {
            env.and_then(|env| from_environment(name, &env, &e))
                .unwrap_or_else(|| config_problem(name, e))
        })
}

fn config_problem(file: &str, e: config::ConfigError) -> Problem {
    Problem {
        file: file.to_string(),
        signal: None,
        key: None,
        message: e.to_string(),
    }
}

/// The problem with a value the environment gave, named by its variable (which the crate's
/// message does not say) and without the value, which may be a secret.
fn from_environment(file: &str, env: &Environment, e: &config::ConfigError) -> Option<Problem> {
    let (key, expected) = match e {
        config::ConfigError::Type { key, expected, .. } => (key.as_ref()?, expected.to_string()),
        config::ConfigError::At { key, error, .. } => {
            let message = error.to_string();
            let expected = message.rsplit_once(", expected ")?.1.to_string();
            (key.as_ref()?, expected)
        }
        _ => return None,
    };
    env.collect().ok()?.get(key)?;
    let variable = format!("{ENV_PREFIX}__{}", key.to_uppercase().replace('.', "__"));
    let message = if expected.starts_with("struct ") || expected == "a map" {
        format!("environment variable {variable} names a section; set its keys as {variable}__KEY")
    } else {
        format!("environment variable {variable} is not {expected}")
    };
    Some(Problem {
        file: file.to_string(),
        signal: None,
        key: Some(key.clone()),
        message,
    })
}

/// A whole number written as one (YAML) or as text (the environment, where every value is
/// text). Unlike the crate's own reading, `yes` is not 1 and `2.5` is not 3.
pub(super) fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Whole;
    impl Visitor<'_> for Whole {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
            Ok(Some(n))
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            i64::try_from(n)
                .map(Some)
                .map_err(|_| E::invalid_value(Unexpected::Unsigned(n), &self))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            text.parse()
                .map(Some)
                .map_err(|_| E::invalid_value(Unexpected::Str(text), &self))
        }
    }
    d.deserialize_any(Whole)
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
