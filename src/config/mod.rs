//! Configuration in two phases: raw values as written (YAML through the `config` crate, with
//! `UPGRADE_GATE__SECTION__KEY` environment overrides), then a validated [`Config`].
//!
//! Validation collects every problem instead of stopping at the first, each naming the file, the
//! signal and the key, because a pack is edited in bulk before an upgrade window and fixing one
//! error per run is how thresholds end up wrong at 2 a.m. One file per section: [`prometheus`]
//! (access and auth), [`signals`] (phases, signal files, the pack), [`alerts`] (receivers),
//! [`server`] (the HTTP server's limits, TLS and token), [`cluster`] (replicas sharing the
//! notification log), [`baseline`] (the `baseline` section of relative conditions), with the
//! problem list in [`problems`] and the value readers in [`read`]. It builds the engine's
//! pack; it knows nothing of how the configuration is used.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{File, FileFormat};
use serde::Deserialize;

pub mod alerts;
pub mod baseline;
pub mod cluster;
pub mod problems;
pub mod prometheus;
pub mod read;
pub mod server;
pub mod signals;

pub use alerts::{AlertsConfig, ReceiverConfig, ReceiverKind};
pub use cluster::ClusterConfig;
pub use problems::{ConfigError, Problem};
pub use prometheus::{Bearer, PrometheusAuth, PrometheusConfig, SigV4Config};
pub use read::parse_duration;
pub use server::{Limits, ServerAuth, ServerConfig, ServerTls};

use crate::engine::pack::Pack;
use alerts::{validate_alerts, RawAlerts};
use baseline::{BaselineSettings, RawBaseline};
use cluster::{validate_cluster, RawCluster};
use problems::Problems;
use prometheus::{validate_prometheus, RawPrometheus};
use read::{count_or, duration_or, env_overrides, read_raw};
use server::{validate_server, RawServer};
use signals::{expand_signal_files, validate_pack, RawPhase, RawSignal, SignalSources};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_CONCURRENCY: usize = 8;
const DEFAULT_MAX_SERIES: usize = 10_000;
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The config used when no `--config` is given; its `signal_files` are replaced by [`DEFAULT_PACK`].
const DEFAULT_CONFIG: (&str, &str) = (
    "built-in deploy/upgrade-gate.yaml",
    include_str!("../../deploy/upgrade-gate.yaml"),
);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    prometheus: RawPrometheus,
    #[serde(default)]
    evaluation: RawEvaluation,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    baseline: RawBaseline,
    #[serde(default)]
    signal_files: Vec<String>,
    #[serde(default)]
    phases: Vec<RawPhase>,
    #[serde(default)]
    signals: Vec<RawSignal>,
    #[serde(default)]
    alerts: RawAlerts,
    cluster: Option<RawCluster>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvaluation {
    interval: Option<String>,
    concurrency: Option<i64>,
    query_offset: Option<String>,
    max_series: Option<i64>,
}

/// How often the daemon evaluates, and how many queries may be in flight at once.
#[derive(Debug, Clone)]
pub struct EvaluationConfig {
    /// Also the step of every range query, so `for` and `stable_for` are judged at this grain.
    pub interval: Duration,
    pub concurrency: usize,
    /// How far behind now `serve` judges, so that late samples (remote-write lag) are in before
    /// a step is fetched, once.
    pub query_offset: Duration,
    /// Most series one signal's query may return; a signal may set its own.
    pub max_series: usize,
}

impl EvaluationConfig {
    /// The range queries' step in whole seconds; validation makes the interval a whole number of
    /// seconds, at least one.
    pub fn step_secs(&self) -> i64 {
        self.interval.as_secs() as i64
    }

    /// The series limit of `signal`: its own `max_series`, else the evaluation's.
    pub fn max_series(&self, signal: &crate::engine::pack::Signal) -> usize {
        signal.max_series.unwrap_or(self.max_series)
    }
}

/// The validated, ready-to-use configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub prometheus: PrometheusConfig,
    pub evaluation: EvaluationConfig,
    pub listen: SocketAddr,
    pub pack: Pack,
    pub alerts: AlertsConfig,
    /// Replicas sharing the notification log; `None` for a lone process.
    pub cluster: Option<ClusterConfig>,
    /// Whether `POST /-/reload` re-reads the configuration (SIGHUP always does).
    pub reload_endpoint: bool,
    /// Connection limits, TLS and the bearer token of the HTTP server.
    pub server: ServerConfig,
    /// The file this was loaded from, re-read on reload; `None` for the built-in default.
    pub source: Option<PathBuf>,
}

/// Loads and validates the config at `path`, or the built-in default when `path` is `None`.
/// Environment overrides apply in both cases.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut problems = Problems(Vec::new());
    let (file_name, raw, signal_sources) = match path {
        Some(path) => {
            let name = path.display().to_string();
            let raw = read_raw::<RawConfig>(
                &name,
                File::from(path).format(FileFormat::Yaml),
                Some(env_overrides()),
            )
            .map_err(|p| ConfigError { problems: vec![p] })?;
            let base = path.parent().unwrap_or(Path::new("."));
            let files = expand_signal_files(&name, base, &raw.signal_files, &mut problems);
            (name, raw, SignalSources::Disk(files))
        }
        None => {
            let (name, text) = DEFAULT_CONFIG;
            let raw = read_raw::<RawConfig>(
                name,
                File::from_str(text, FileFormat::Yaml),
                Some(env_overrides()),
            )
            .map_err(|p| ConfigError { problems: vec![p] })?;
            (name.to_string(), raw, SignalSources::BuiltIn)
        }
    };
    let mut config = validate(&file_name, raw, signal_sources, &mut problems);
    config.source = path.map(Path::to_path_buf);
    if problems.0.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            problems: problems.0,
        })
    }
}

fn validate(
    file: &str,
    raw: RawConfig,
    signal_sources: SignalSources,
    problems: &mut Problems,
) -> Config {
    let prometheus = validate_prometheus(file, &raw.prometheus, problems);
    let interval = duration_or(
        file,
        "evaluation.interval",
        raw.evaluation.interval,
        DEFAULT_INTERVAL,
        problems,
    );
    if interval < Duration::from_secs(1) || interval.subsec_nanos() != 0 {
        problems.add(
            file,
            None,
            Some("evaluation.interval"),
            format!(
                "{} must be a whole number of seconds, at least 1s (it is the range query step)",
                humantime::format_duration(interval)
            ),
        );
    }
    let concurrency = count_or(
        file,
        "evaluation.concurrency",
        raw.evaluation.concurrency,
        DEFAULT_CONCURRENCY,
        problems,
    );
    let query_offset = duration_or(
        file,
        "evaluation.query_offset",
        raw.evaluation.query_offset,
        Duration::ZERO,
        problems,
    );
    if query_offset.subsec_nanos() != 0 {
        problems.add(
            file,
            None,
            Some("evaluation.query_offset"),
            format!(
                "{} must be a whole number of seconds",
                humantime::format_duration(query_offset)
            ),
        );
    }
    let max_series = count_or(
        file,
        "evaluation.max_series",
        raw.evaluation.max_series,
        DEFAULT_MAX_SERIES,
        problems,
    );
    let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen_text.parse().unwrap_or_else(|e| {
        problems.add(
            file,
            None,
            Some("server.listen"),
            format!("{listen_text:?} is not an address such as 127.0.0.1:8080: {e}"),
        );
        DEFAULT_LISTEN
            .parse()
            .expect("default listen address parses")
    });

    let (baseline, baseline_errors) = BaselineSettings::validate(raw.baseline);
    for (key, message) in baseline_errors {
        problems.add(file, None, Some(key), message);
    }

    Config {
        prometheus,
        evaluation: EvaluationConfig {
            interval,
            concurrency,
            query_offset,
            max_series,
        },
        listen,
        pack: validate_pack(
            file,
            baseline,
            raw.phases,
            raw.signals,
            signal_sources,
            problems,
        ),
        alerts: validate_alerts(file, raw.alerts, problems),
        cluster: validate_cluster(file, raw.cluster, problems),
        reload_endpoint: raw.server.enable_reload_endpoint.unwrap_or(false),
        server: validate_server(file, &raw.server, problems),
        source: None,
    }
}
