//! Configuration in two phases: raw values as written (YAML through the `config` crate, with
//! `UPGRADE_GATE__SECTION__KEY` environment overrides), then a validated [`Config`].
//!
//! Validation collects every problem instead of stopping at the first, each naming the file, the
//! signal and the key, because a pack is edited in bulk before an upgrade window and fixing one
//! error per run is how thresholds end up wrong at 2 a.m. One file per section: [`prometheus`]
//! (access and auth), [`signals`] (phases, signal files, the pack), [`alerts`] (receivers),
//! [`server`] (the HTTP server's limits, TLS and token),
//! [`cluster`] (replicas sharing the notification log), [`fleet`] (many clusters in waves behind
//! central stores), [`baseline`] (the window relative
//! conditions compare with), [`report`] (the report page's windows), with the problem list in [`problems`] (and the [`problems::At`] and
//! [`problems::Key`] each rule is one call on) and the value readers in [`read`]. It builds the
//! engine's pack; it knows nothing of how the configuration is used.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{File, FileFormat};
use serde::Deserialize;

pub mod alerts;
pub mod baseline;
pub mod cluster;
pub mod fleet;
pub mod problems;
pub mod prometheus;
pub mod read;
pub mod report;
pub mod server;
pub mod signals;

pub use alerts::{AlertsConfig, ReceiverConfig, ReceiverKind};
pub use cluster::ClusterConfig;
pub use fleet::{Backend, BackendScope, FleetConfig, Wave, FLEET_NOT_EVALUATED};
pub use problems::{ConfigError, Problem};
pub use prometheus::{Bearer, PrometheusAuth, PrometheusConfig, SigV4Config};
pub use read::parse_duration;
pub use report::ReportConfig;
pub use server::{Limits, ServerAuth, ServerConfig, ServerTls};

use crate::engine::pack::Pack;
use alerts::{validate_alerts, RawAlerts};
use baseline::{BaselineSettings, RawBaseline};
use cluster::{validate_cluster, RawCluster};
use fleet::{validate_fleet, validate_fleet_queries, RawFleet};
use problems::Problems;
use prometheus::{validate_prometheus, RawPrometheus};
use read::{env_overrides, read_raw, whole_number};
use report::{validate_report, RawReport};
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
    #[serde(default)]
    report: RawReport,
    cluster: Option<RawCluster>,
    fleet: Option<RawFleet>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvaluation {
    interval: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    concurrency: Option<i64>,
    query_offset: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
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
    /// Many clusters judged from central stores; `None` for a gate of one cluster.
    pub fleet: Option<FleetConfig>,
    /// Whether `POST /-/reload` re-reads the configuration (SIGHUP always does).
    pub reload_endpoint: bool,
    /// Connection limits, TLS and the bearer token of the HTTP server.
    pub server: ServerConfig,
    /// The report page's windows (`/` and `/report`).
    pub report: ReportConfig,
    /// The file this was loaded from, re-read on reload; `None` for the built-in default.
    pub source: Option<PathBuf>,
}

/// Loads and validates the config at `path`, or the built-in default when `path` is `None`.
/// Environment overrides apply in both cases.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let problems = Problems::default();
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
            let files = expand_signal_files(&name, base, &raw.signal_files, &problems);
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
    let mut config = validate(&file_name, raw, signal_sources, &problems);
    config.source = path.map(Path::to_path_buf);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            problems: problems.into_vec(),
        })
    }
}

fn validate(
    file: &str,
    raw: RawConfig,
    signal_sources: SignalSources,
    problems: &Problems,
) -> Config {
    let at = problems.at(file);
    let prometheus = validate_prometheus(file, &raw.prometheus, problems);
    let key = at.key("evaluation.interval");
    let interval = key.duration_or(raw.evaluation.interval, DEFAULT_INTERVAL);
    let whole = humantime::format_duration(interval);
    key.require(
        interval >= Duration::from_secs(1) && interval.subsec_nanos() == 0,
        format!(
            "{whole} must be a whole number of seconds, at least 1s (it is the range query step)"
        ),
    );
    let concurrency = at
        .key("evaluation.concurrency")
        .count_or(raw.evaluation.concurrency, DEFAULT_CONCURRENCY);
    let key = at.key("evaluation.query_offset");
    let query_offset = key.duration_or(raw.evaluation.query_offset, Duration::ZERO);
    let whole = humantime::format_duration(query_offset);
    key.require(
        query_offset.subsec_nanos() == 0,
        format!("{whole} must be a whole number of seconds"),
    );
    let max_series = at
        .key("evaluation.max_series")
        .count_or(raw.evaluation.max_series, DEFAULT_MAX_SERIES);
    let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen =
        at.key("server.listen")
            .check(listen_text.parse().map_err(|e| {
                format!("{listen_text:?} is not an address such as 127.0.0.1:8080: {e}")
            }))
            .unwrap_or_else(|| {
                DEFAULT_LISTEN
                    .parse()
                    .expect("default listen address parses")
            });

    let baseline = BaselineSettings::validate(raw.baseline, at);
    let pack = validate_pack(
        file,
        baseline,
        raw.phases,
        raw.signals,
        signal_sources,
        problems,
    );
    let fleet = validate_fleet(file, raw.fleet, problems);
    if let Some(fleet) = &fleet {
        validate_fleet_queries(fleet, &pack, problems);
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
        pack,
        alerts: validate_alerts(file, raw.alerts, problems),
        cluster: validate_cluster(file, raw.cluster, problems),
        fleet,
        reload_endpoint: raw.server.enable_reload_endpoint.unwrap_or(false),
        server: validate_server(file, &raw.server, problems),
        report: validate_report(raw.report, at),
        source: None,
    }
}

/// Environment overrides through the whole load, with the variables given to the source rather
/// than set on the process (which other tests share).
#[cfg(test)]
mod env_tests {
    use super::*;
    use crate::secret::Secret;

    /// Values the crate's number guessing used to change; each must arrive as written.
    const TRICKY: [&str; 6] = ["007", "1e3", "true", "12.50", "0x10", "two  spaces"];

    /// Loads `yaml` under the variables `env` (given by key, as the crate maps
    /// `UPGRADE_GATE__A__B` to `a.b`), without touching the process's environment.
    fn load(yaml: &str, env: &[(&str, &str)]) -> Result<Config, Vec<Problem>> {
        let vars = env
            .iter()
            .map(|(k, v)| {
                (
                    format!("upgrade_gate__{}", k.replace('.', "__")),
                    v.to_string(),
                )
            })
            .collect();
        let yaml = format!(
            "{yaml}phases: [{{name: p}}]\nsignals: [{{name: s, query: up, fail: \"> 1\"}}]\n"
        );
        let file = File::from_str(&yaml, FileFormat::Yaml);
        let raw: RawConfig = read_raw("gate.yaml", file, Some(env_overrides().source(Some(vars))))
            .map_err(|p| vec![p])?;
        let problems = Problems::default();
        let config = validate("gate.yaml", raw, SignalSources::Disk(Vec::new()), &problems);
        let problems = problems.into_vec();
        problems.is_empty().then_some(config).ok_or(problems)
    }

    const RECEIVER: &str =
        "alerts:\n  receivers:\n    - {name: r, kind: webhook, url: \"http://127.0.0.1:9/x\"}\n";

    #[test]
    fn every_string_key_from_the_environment_is_kept_verbatim() {
        for value in TRICKY {
            let url = format!("http://127.0.0.1:9/{value}");
            let c = load(
                RECEIVER,
                &[
                    ("prometheus.bearer_token", value),
                    ("prometheus.headers.x-scope-orgid", value),
                    ("alerts.receivers[0].url", &url),
                    ("alerts.receivers[0].hmac_secret", value),
                    ("alerts.state_file", value),
                    ("baseline.end", "2026-12-01T09:00:00Z"),
                ],
            )
            .unwrap_or_else(|p| panic!("{value:?}: {p:?}"));
            let auth = &c.prometheus.auth;
            assert_eq!(auth.bearer, Some(Bearer::Token(Secret::new(value.into()))));
            assert_eq!(
                auth.headers,
                [("x-scope-orgid".into(), Secret::new(value.into()))]
            );
            let receiver = &c.alerts.receivers[0];
            assert_eq!(receiver.url.expose(), url);
            assert_eq!(receiver.hmac_secret.as_ref().unwrap().expose(), value);
            assert_eq!(c.alerts.state_file.as_deref(), Some(value.as_ref()));

            let c = load(
                "",
                &[
                    ("prometheus.basic_auth.username", value),
                    ("prometheus.basic_auth.password", value),
                ],
            )
            .unwrap_or_else(|p| panic!("{value:?}: {p:?}"));
            assert_eq!(
                c.prometheus.auth.basic,
                Some((value.to_string(), Secret::new(value.into())))
            );

            let c = load(
                "",
                &[
                    ("prometheus.sigv4.region", value),
                    ("prometheus.sigv4.service", value),
                    ("prometheus.sigv4.role_arn", value),
                ],
            )
            .unwrap_or_else(|p| panic!("{value:?}: {p:?}"));
            let sigv4 = c.prometheus.auth.sigv4.unwrap();
            assert_eq!(
                [sigv4.region, sigv4.service, sigv4.role_arn.unwrap()],
                [value; 3]
            );
        }
    }

    #[test]
    fn numbers_and_booleans_from_the_environment_still_parse() {
        let c = load(
            "",
            &[
                ("evaluation.concurrency", "3"),
                ("evaluation.max_series", "+500"),
                ("alerts.queue_capacity", "7"),
                ("alerts.send_resolved", "false"),
                ("server.enable_reload_endpoint", "TRUE"),
                ("server.max_connections", "0"),
                ("server.max_body_bytes", "100"),
                ("prometheus.tls.insecure_skip_verify", "true"),
            ],
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(c.evaluation.concurrency, 3);
        assert_eq!(c.evaluation.max_series, 500);
        assert_eq!(c.alerts.queue_capacity, 7);
        assert!(!c.alerts.send_resolved);
        assert!(c.reload_endpoint);
        assert_eq!(c.server.limits.max_connections, None);
        assert_eq!(c.server.limits.max_body_bytes, 100);
        assert!(c.prometheus.auth.insecure_skip_verify);

        for (key, value) in [
            ("evaluation.concurrency", "1e3"),
            ("server.max_body_bytes", "0x10"),
            ("server.enable_reload_endpoint", "12.50"),
        ] {
            let problems = load("", &[(key, value)]).unwrap_err();
            let variable = format!("UPGRADE_GATE__{}", key.to_uppercase().replace('.', "__"));
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].key.as_deref(), Some(key));
            assert!(problems[0].message.contains(&variable), "{problems:?}");
            assert!(!problems[0].message.contains(value), "{problems:?}");
        }
    }
}
