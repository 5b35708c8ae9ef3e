//! Configuration in two phases: raw values as written (YAML through the `config` crate, with
//! `UPGRADE_GATE__SECTION__KEY` environment overrides), then a validated [`Config`].
//!
//! Validation collects every problem instead of stopping at the first, each naming the file, the
//! signal and the key, because a pack is edited in bulk before an upgrade window and fixing one
//! error per run is how thresholds end up wrong at 2 a.m.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Environment, File, FileFormat};
use serde::Deserialize;

use crate::pack::{NoDataPolicy, Pack, Phase, Signal, ALL_PHASES};
use crate::secret::{expand_env, Secret};
use crate::threshold::Threshold;

pub const DEFAULT_MIN_SCORE: f64 = 90.0;
const DEFAULT_PROMETHEUS_URL: &str = "http://127.0.0.1:9090";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_CONCURRENCY: usize = 8;
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const ENV_PREFIX: &str = "UPGRADE_GATE";
const DEFAULT_REPEAT: Duration = Duration::from_secs(3600);
const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(60);
const DEFAULT_QUEUE: usize = 1000;

/// The config used when no `--config` is given; its `signal_files` are replaced by [`DEFAULT_PACK`].
const DEFAULT_CONFIG: (&str, &str) = (
    "built-in deploy/upgrade-gate.yaml",
    include_str!("../deploy/upgrade-gate.yaml"),
);

/// The default signal pack, compiled in so that the binary works without any file beside it.
pub const DEFAULT_PACK: &[(&str, &str)] = &[
    (
        "built-in queries/precheck.yaml",
        include_str!("../queries/precheck.yaml"),
    ),
    (
        "built-in queries/karpenter.yaml",
        include_str!("../queries/karpenter.yaml"),
    ),
    (
        "built-in queries/istio.yaml",
        include_str!("../queries/istio.yaml"),
    ),
    (
        "built-in queries/addons.yaml",
        include_str!("../queries/addons.yaml"),
    ),
    (
        "built-in queries/control-plane.yaml",
        include_str!("../queries/control-plane.yaml"),
    ),
    (
        "built-in queries/nodes.yaml",
        include_str!("../queries/nodes.yaml"),
    ),
];

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
    signal_files: Vec<String>,
    #[serde(default)]
    phases: Vec<RawPhase>,
    #[serde(default)]
    signals: Vec<RawSignal>,
    #[serde(default)]
    alerts: RawAlerts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    repeat_interval: Option<String>,
    send_resolved: Option<bool>,
    external_url: Option<String>,
    timeout: Option<String>,
    retry_initial_backoff: Option<String>,
    retry_max_backoff: Option<String>,
    queue_capacity: Option<i64>,
    #[serde(default)]
    receivers: Vec<RawReceiver>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReceiver {
    name: Option<String>,
    kind: Option<String>,
    url: Option<String>,
    url_file: Option<String>,
    hmac_secret: Option<String>,
    hmac_secret_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrometheus {
    url: Option<String>,
    timeout: Option<String>,
    bearer_token: Option<String>,
    bearer_token_file: Option<String>,
    basic_auth: Option<RawBasicAuth>,
    headers: Option<BTreeMap<String, String>>,
    tls: Option<RawTls>,
    sigv4: Option<RawSigV4>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigV4 {
    region: Option<String>,
    service: Option<String>,
    role_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvaluation {
    interval: Option<String>,
    concurrency: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    enable_reload_endpoint: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    name: Option<String>,
    min_score: Option<f64>,
    stable_for: Option<String>,
}

/// A signal file holds only signals; phases live in the main config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignalFile {
    #[serde(default)]
    signals: Vec<RawSignal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignal {
    name: Option<String>,
    description: Option<String>,
    runbook: Option<String>,
    query: Option<String>,
    warn: Option<String>,
    fail: Option<String>,
    #[serde(rename = "for")]
    for_: Option<String>,
    weight: Option<f64>,
    critical: Option<bool>,
    no_data: Option<String>,
    phases: Option<Vec<String>>,
}

/// Where the Prometheus API is and how long one query may take.
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    pub url: String,
    pub timeout: Duration,
    pub auth: PrometheusAuth,
}

/// How upgrade-gate proves who it is to Prometheus (or Mimir, Cortex, Thanos behind a proxy).
#[derive(Debug, Clone, Default)]
pub struct PrometheusAuth {
    pub bearer: Option<Bearer>,
    pub basic: Option<(String, Secret)>,
    /// Sent with every query, e.g. `X-Scope-OrgID` for a multi-tenant Mimir or Cortex.
    pub headers: Vec<(String, Secret)>,
    /// PEM of extra CAs to trust.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of the client certificate followed by its key, for mutual TLS.
    pub identity_pem: Option<Vec<u8>>,
    pub insecure_skip_verify: bool,
    /// Sign every request with AWS SigV4 (Amazon Managed Service for Prometheus).
    pub sigv4: Option<SigV4Config>,
}

#[derive(Debug, Clone)]
pub struct SigV4Config {
    pub region: String,
    /// `aps` for Amazon Managed Service for Prometheus.
    pub service: String,
    /// A role to assume with the chain's credentials.
    pub role_arn: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Bearer {
    Token(Secret),
    /// Re-read before every query: projected service-account tokens rotate.
    File(PathBuf),
}

/// How often the daemon evaluates, and how many queries may be in flight at once.
#[derive(Debug, Clone)]
pub struct EvaluationConfig {
    /// Also the step of every range query, so `for` and `stable_for` are judged at this grain.
    pub interval: Duration,
    pub concurrency: usize,
}

/// Where alerts go and how hard delivery tries.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Re-send a still-firing alert this often to Slack and webhooks; zero means never.
    pub repeat_interval: Duration,
    pub send_resolved: bool,
    /// Base URL of the gate as people reach it, for links in messages.
    pub external_url: Option<String>,
    /// Per delivery attempt.
    pub timeout: Duration,
    pub retry_initial_backoff: Duration,
    pub retry_max_backoff: Duration,
    /// Alerts waiting per receiver before new ones are dropped (and counted).
    pub queue_capacity: usize,
    pub receivers: Vec<ReceiverConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverKind {
    Slack,
    Webhook,
    Alertmanager,
}

impl ReceiverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Slack => "slack",
            ReceiverKind::Webhook => "webhook",
            ReceiverKind::Alertmanager => "alertmanager",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub name: String,
    pub kind: ReceiverKind,
    /// A secret: Slack and many webhook URLs carry their token in the path.
    pub url: Secret,
    pub hmac_secret: Option<Secret>,
}

/// The validated, ready-to-use configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub prometheus: PrometheusConfig,
    pub evaluation: EvaluationConfig,
    pub listen: SocketAddr,
    pub pack: Pack,
    pub alerts: AlertsConfig,
    /// Whether `POST /-/reload` re-reads the configuration (SIGHUP always does).
    pub reload_endpoint: bool,
    /// The file this was loaded from, re-read on reload; `None` for the built-in default.
    pub source: Option<PathBuf>,
}

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

/// Collects problems while walking the raw config.
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, file: &str, signal: Option<&str>, key: Option<&str>, message: String) {
        self.0.push(Problem {
            file: file.to_string(),
            signal: signal.map(str::to_string),
            key: key.map(str::to_string),
            message,
        });
    }
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

enum SignalSources {
    Disk(Vec<PathBuf>),
    BuiltIn,
}

/// `UPGRADE_GATE__PROMETHEUS__URL` overrides `prometheus.url`, and so on for every key.
fn env_overrides() -> Environment {
    Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
}

fn read_raw<T: serde::de::DeserializeOwned>(
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

fn expand_signal_files(
    config_file: &str,
    base: &Path,
    patterns: &[String],
    problems: &mut Problems,
) -> Vec<PathBuf> {
    let mut files = BTreeSet::new();
    for pattern in patterns {
        let full = base.join(pattern);
        let full = full.to_string_lossy();
        match glob::glob(&full) {
            Err(e) => problems.add(
                config_file,
                None,
                Some("signal_files"),
                format!("bad pattern {pattern:?}: {e}"),
            ),
            Ok(paths) => {
                let before = files.len();
                files.extend(paths.filter_map(Result::ok));
                if files.len() == before {
                    problems.add(
                        config_file,
                        None,
                        Some("signal_files"),
                        format!("pattern {pattern:?} matches no file (looked for {full})"),
                    );
                }
            }
        }
    }
    files.into_iter().collect()
}

fn validate(
    file: &str,
    raw: RawConfig,
    signal_sources: SignalSources,
    problems: &mut Problems,
) -> Config {
    let auth = validate_auth(file, &raw.prometheus, problems);
    let prometheus = PrometheusConfig {
        auth,
        url: validate_url(file, raw.prometheus.url, problems),
        timeout: duration_or(
            file,
            "prometheus.timeout",
            raw.prometheus.timeout,
            DEFAULT_TIMEOUT,
            problems,
        ),
    };
    if prometheus.timeout.is_zero() {
        problems.add(
            file,
            None,
            Some("prometheus.timeout"),
            "must be more than 0".into(),
        );
    }
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
    let concurrency = match raw.evaluation.concurrency {
        None => DEFAULT_CONCURRENCY,
        Some(n) if n >= 1 => n as usize,
        Some(n) => {
            problems.add(
                file,
                None,
                Some("evaluation.concurrency"),
                format!("{n} must be at least 1"),
            );
            DEFAULT_CONCURRENCY
        }
    };
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

    let phases = validate_phases(file, raw.phases, problems);
    let phase_names: Vec<String> = phases.iter().map(|p| p.name.clone()).collect();

    let mut raw_signals: Vec<(String, RawSignal)> = raw
        .signals
        .into_iter()
        .map(|s| (file.to_string(), s))
        .collect();
    let sources: Vec<(String, Result<RawSignalFile, Problem>)> = match signal_sources {
        SignalSources::Disk(paths) => paths
            .iter()
            .map(|p| {
                let name = p.display().to_string();
                let parsed = read_raw(
                    &name,
                    File::from(p.as_path()).format(FileFormat::Yaml),
                    None,
                );
                (name, parsed)
            })
            .collect(),
        SignalSources::BuiltIn => DEFAULT_PACK
            .iter()
            .map(|(name, text)| {
                let parsed = read_raw(name, File::from_str(text, FileFormat::Yaml), None);
                (name.to_string(), parsed)
            })
            .collect(),
    };
    for (name, parsed) in sources {
        match parsed {
            Ok(f) => raw_signals.extend(f.signals.into_iter().map(|s| (name.clone(), s))),
            Err(p) => problems.0.push(p),
        }
    }

    let mut seen: HashMap<String, String> = HashMap::new();
    let mut signals = Vec::new();
    for (index, (origin, raw)) in raw_signals.into_iter().enumerate() {
        if let Some(signal) = validate_signal(&origin, index, raw, &phase_names, problems) {
            if let Some(first) = seen.get(&signal.name) {
                problems.add(
                    &origin,
                    Some(&signal.name),
                    Some("name"),
                    format!("duplicate signal name; first defined in {first}"),
                );
                continue;
            }
            seen.insert(signal.name.clone(), origin.clone());
            signals.push(signal);
        }
    }
    if signals.is_empty() && problems.0.is_empty() {
        problems.add(
            file,
            None,
            Some("signals"),
            "no signal is defined (inline `signals` or `signal_files`); a gate with nothing to judge would always pass".into(),
        );
    }
    for phase in &phases {
        if !signals.iter().any(|s| s.in_phase(&phase.name)) && !signals.is_empty() {
            problems.add(
                file,
                None,
                Some("phases"),
                format!(
                    "phase {:?} has no signal; it would be go with nothing judged",
                    phase.name
                ),
            );
        }
    }

    Config {
        prometheus,
        evaluation: EvaluationConfig {
            interval,
            concurrency,
        },
        listen,
        pack: Pack { phases, signals },
        alerts: validate_alerts(file, raw.alerts, problems),
        reload_endpoint: raw.server.enable_reload_endpoint.unwrap_or(false),
        source: None,
    }
}

fn validate_auth(file: &str, raw: &RawPrometheus, problems: &mut Problems) -> PrometheusAuth {
    let bearer = match (&raw.bearer_token, &raw.bearer_token_file) {
        (Some(_), Some(_)) => {
            problems.add(
                file,
                None,
                Some("prometheus.bearer_token"),
                "set either `bearer_token` or `bearer_token_file`, not both".into(),
            );
            None
        }
        (Some(_), None) => secret_value(
            file,
            "prometheus.bearer_token",
            raw.bearer_token.clone(),
            None,
            problems,
        )
        .map(Bearer::Token),
        (None, Some(path)) => {
            // Read now to catch a wrong path at start-up; read again before every query.
            if let Err(e) = std::fs::read_to_string(path) {
                problems.add(
                    file,
                    None,
                    Some("prometheus.bearer_token_file"),
                    format!("cannot read {path}: {e}"),
                );
            }
            Some(Bearer::File(PathBuf::from(path)))
        }
        (None, None) => None,
    };
    let basic = raw.basic_auth.as_ref().and_then(|b| {
        let username = b.username.clone().filter(|u| !u.is_empty());
        if username.is_none() {
            problems.add(
                file,
                None,
                Some("prometheus.basic_auth.username"),
                "missing".into(),
            );
        }
        if b.password.is_none() && b.password_file.is_none() {
            problems.add(
                file,
                None,
                Some("prometheus.basic_auth.password"),
                "set `password` or `password_file`".into(),
            );
        }
        let password = secret_value(
            file,
            "prometheus.basic_auth.password",
            b.password.clone(),
            b.password_file.clone(),
            problems,
        );
        username.zip(password)
    });
    if bearer.is_some() && basic.is_some() {
        problems.add(
            file,
            None,
            Some("prometheus.basic_auth"),
            "set either a bearer token or basic auth, not both".into(),
        );
    }
    let mut headers = Vec::new();
    for (name, value) in raw.headers.iter().flatten() {
        let key = format!("prometheus.headers.{name}");
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.add(file, None, Some(&key), "is not a valid header name".into());
            continue;
        }
        if let Some(value) = secret_value(file, &key, Some(value.clone()), None, problems) {
            headers.push((name.clone(), value));
        }
    }
    let mut pem = |key: &str, path: &Option<String>| {
        path.as_ref().and_then(|p| match std::fs::read(p) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                problems.add(file, None, Some(key), format!("cannot read {p}: {e}"));
                None
            }
        })
    };
    let tls = raw.tls.as_ref();
    let ca_pem = tls.and_then(|t| pem("prometheus.tls.ca_file", &t.ca_file));
    let cert = tls.and_then(|t| pem("prometheus.tls.cert_file", &t.cert_file));
    let key = tls.and_then(|t| pem("prometheus.tls.key_file", &t.key_file));
    if let Some(ca) = &ca_pem {
        if reqwest::Certificate::from_pem_bundle(ca).map_or(true, |c| c.is_empty()) {
            problems.add(
                file,
                None,
                Some("prometheus.tls.ca_file"),
                "holds no PEM certificate".into(),
            );
        }
    }
    let identity_pem = match (cert, key) {
        (Some(mut cert), Some(key)) => {
            cert.push(b'\n');
            cert.extend(key);
            if reqwest::Identity::from_pem(&cert).is_err() {
                problems.add(
                    file,
                    None,
                    Some("prometheus.tls.cert_file"),
                    "cert_file and key_file do not make a PEM certificate and private key".into(),
                );
            }
            Some(cert)
        }
        (None, None) => None,
        _ => {
            problems.add(
                file,
                None,
                Some("prometheus.tls"),
                "a client certificate needs both cert_file and key_file".into(),
            );
            None
        }
    };
    let sigv4 = raw.sigv4.as_ref().and_then(|v| {
        if bearer.is_some() || basic.is_some() {
            problems.add(
                file,
                None,
                Some("prometheus.sigv4"),
                "SigV4 signs the requests itself; remove the bearer token or basic auth".into(),
            );
        }
        match v.region.clone().filter(|r| !r.is_empty()) {
            None => {
                problems.add(
                    file,
                    None,
                    Some("prometheus.sigv4.region"),
                    "missing, e.g. eu-west-1".into(),
                );
                None
            }
            Some(region) => Some(SigV4Config {
                region,
                service: v.service.clone().unwrap_or_else(|| "aps".to_string()),
                role_arn: v.role_arn.clone(),
            }),
        }
    });
    PrometheusAuth {
        bearer,
        basic,
        headers,
        ca_pem,
        identity_pem,
        insecure_skip_verify: tls.and_then(|t| t.insecure_skip_verify).unwrap_or(false),
        sigv4,
    }
}

fn validate_alerts(file: &str, raw: RawAlerts, problems: &mut Problems) -> AlertsConfig {
    let mut duration = |key: &str, text: Option<String>, default: Duration| {
        duration_or(file, &format!("alerts.{key}"), text, default, problems)
    };
    let repeat_interval = duration("repeat_interval", raw.repeat_interval, DEFAULT_REPEAT);
    let timeout = duration("timeout", raw.timeout, DEFAULT_TIMEOUT);
    let retry_initial_backoff = duration(
        "retry_initial_backoff",
        raw.retry_initial_backoff,
        DEFAULT_RETRY_INITIAL,
    );
    let retry_max_backoff = duration(
        "retry_max_backoff",
        raw.retry_max_backoff,
        DEFAULT_RETRY_MAX,
    );
    for (key, d) in [
        ("alerts.timeout", timeout),
        ("alerts.retry_initial_backoff", retry_initial_backoff),
    ] {
        if d.is_zero() {
            problems.add(file, None, Some(key), "must be more than 0".into());
        }
    }
    if retry_max_backoff < retry_initial_backoff {
        problems.add(
            file,
            None,
            Some("alerts.retry_max_backoff"),
            "must not be shorter than alerts.retry_initial_backoff".into(),
        );
    }
    let queue_capacity = match raw.queue_capacity {
        None => DEFAULT_QUEUE,
        Some(n) if n >= 1 => n as usize,
        Some(n) => {
            problems.add(
                file,
                None,
                Some("alerts.queue_capacity"),
                format!("{n} must be at least 1"),
            );
            DEFAULT_QUEUE
        }
    };
    if let Some(url) = &raw.external_url {
        if !is_http_url(url) {
            problems.add(
                file,
                None,
                Some("alerts.external_url"),
                "must be an http:// or https:// URL".into(),
            );
        }
    }
    let mut receivers: Vec<ReceiverConfig> = Vec::new();
    for (i, r) in raw.receivers.into_iter().enumerate() {
        let key = |k: &str| format!("alerts.receivers[{i}].{k}");
        let name = r.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| {
            problems.add(
                file,
                None,
                Some(&key("name")),
                "missing receiver name".into(),
            );
            format!("#{}", i + 1)
        });
        if receivers.iter().any(|other| other.name == name) {
            problems.add(
                file,
                None,
                Some(&key("name")),
                format!("duplicate receiver {name:?}"),
            );
        }
        let kind = match r.kind.as_deref() {
            Some("slack") => Some(ReceiverKind::Slack),
            Some("webhook") => Some(ReceiverKind::Webhook),
            Some("alertmanager") => Some(ReceiverKind::Alertmanager),
            other => {
                let message = match other {
                    Some(kind) => format!("{kind:?} is not one of slack, webhook, alertmanager"),
                    None => "missing; one of slack, webhook, alertmanager".to_string(),
                };
                problems.add(file, None, Some(&key("kind")), message);
                None
            }
        };
        if r.url.is_none() && r.url_file.is_none() {
            problems.add(
                file,
                None,
                Some(&key("url")),
                "set `url` or `url_file`".into(),
            );
        }
        let url = secret_value(file, &key("url"), r.url, r.url_file, problems);
        // The value is secret: say what is wrong, not what it is.
        if url.as_ref().is_some_and(|u| !is_http_url(u.expose())) {
            problems.add(
                file,
                None,
                Some(&key("url")),
                "must be an http:// or https:// URL".into(),
            );
        }
        let hmac_secret = secret_value(
            file,
            &key("hmac_secret"),
            r.hmac_secret,
            r.hmac_secret_file,
            problems,
        );
        if hmac_secret.is_some() && kind != Some(ReceiverKind::Webhook) {
            problems.add(
                file,
                None,
                Some(&key("hmac_secret")),
                "only webhook receivers sign their bodies".into(),
            );
        }
        if let (Some(kind), Some(url)) = (kind, url) {
            receivers.push(ReceiverConfig {
                name,
                kind,
                url,
                hmac_secret,
            });
        }
    }
    AlertsConfig {
        repeat_interval,
        send_resolved: raw.send_resolved.unwrap_or(true),
        external_url: raw
            .external_url
            .map(|u| u.trim_end_matches('/').to_string()),
        timeout,
        retry_initial_backoff,
        retry_max_backoff,
        queue_capacity,
        receivers,
    }
}

/// A secret given inline (with `${ENV}` expansion) or as `<key>_file`, never both.
fn secret_value(
    file: &str,
    key: &str,
    inline: Option<String>,
    path: Option<String>,
    problems: &mut Problems,
) -> Option<Secret> {
    let result = match (inline, path) {
        (None, None) => return None,
        (Some(_), Some(_)) => Err(format!("set either `{key}` or `{key}_file`, not both")),
        (Some(text), None) => expand_env(&text),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("cannot read {key}_file {path}: {e}")),
    };
    match result {
        Ok(v) if v.is_empty() => {
            problems.add(file, None, Some(key), "is empty".into());
            None
        }
        Ok(v) => Some(Secret::new(v)),
        Err(message) => {
            problems.add(file, None, Some(key), message);
            None
        }
    }
}

fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

fn validate_url(file: &str, url: Option<String>, problems: &mut Problems) -> String {
    let url = url.unwrap_or_else(|| DEFAULT_PROMETHEUS_URL.to_string());
    match reqwest::Url::parse(&url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        // The URL may carry credentials; say what is wrong without echoing it.
        Ok(_) => problems.add(
            file,
            None,
            Some("prometheus.url"),
            "must be an http:// or https:// URL".into(),
        ),
        Err(e) => problems.add(
            file,
            None,
            Some("prometheus.url"),
            format!("is not a URL: {e}"),
        ),
    }
    url
}

fn validate_phases(file: &str, raw: Vec<RawPhase>, problems: &mut Problems) -> Vec<Phase> {
    let mut phases: Vec<Phase> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("phases[{i}].{k}");
        let Some(name) = p.name.filter(|n| !n.trim().is_empty()) else {
            problems.add(file, None, Some(&key("name")), "missing phase name".into());
            continue;
        };
        if !valid_name(&name) {
            problems.add(
                file,
                None,
                Some(&key("name")),
                format!("{name:?} may only use letters, digits, '_', '-' and '.' (it is a URL path segment)"),
            );
        }
        if name == ALL_PHASES {
            problems.add(
                file,
                None,
                Some(&key("name")),
                format!("{ALL_PHASES:?} is reserved for the gate over every signal"),
            );
        }
        if phases.iter().any(|q| q.name == name) {
            problems.add(
                file,
                None,
                Some(&key("name")),
                format!("duplicate phase {name:?}"),
            );
        }
        let min_score = p.min_score.unwrap_or(DEFAULT_MIN_SCORE);
        if !(0.0..=100.0).contains(&min_score) {
            problems.add(
                file,
                None,
                Some(&key("min_score")),
                format!("{min_score} must be between 0 and 100"),
            );
        }
        let stable_for = duration_or(
            file,
            &key("stable_for"),
            p.stable_for,
            Duration::ZERO,
            problems,
        );
        phases.push(Phase {
            name,
            min_score,
            stable_for,
        });
    }
    phases
}

fn validate_signal(
    origin: &str,
    index: usize,
    raw: RawSignal,
    phase_names: &[String],
    problems: &mut Problems,
) -> Option<Signal> {
    let Some(name) = raw.name.filter(|n| !n.trim().is_empty()) else {
        problems.add(
            origin,
            Some(&format!("#{}", index + 1)),
            Some("name"),
            "missing signal name".into(),
        );
        return None;
    };
    // (key, message) pairs for this signal, reported together at the end.
    let mut errors: Vec<(&str, String)> = Vec::new();
    if !valid_name(&name) {
        errors.push((
            "name",
            "may only use letters, digits, '_', '-' and '.'".into(),
        ));
    }
    let query = raw.query.unwrap_or_default();
    if query.trim().is_empty() {
        errors.push(("query", "missing PromQL query".into()));
    } else if let Err(e) = promql_parser::parser::parse(&query) {
        errors.push(("query", format!("invalid PromQL: {}", e.trim())));
    }
    let mut threshold =
        |key: &'static str, text: Option<String>| match text.map(|t| t.parse::<Threshold>()) {
            None => (None, true),
            Some(Ok(t)) => (Some(t), true),
            Some(Err(e)) => {
                errors.push((key, e.to_string()));
                (None, false)
            }
        };
    let (warn, warn_parsed) = threshold("warn", raw.warn);
    let (fail, fail_parsed) = threshold("fail", raw.fail);
    match (&warn, &fail) {
        (None, None) if warn_parsed && fail_parsed => errors.push((
            "fail",
            "a signal needs a `warn` or a `fail` threshold, else it can never be unhealthy".into(),
        )),
        (Some(w), Some(f)) if !w.is_not_stricter_than(f) => errors.push((
            "warn",
            format!("warn {w} must point the same way as fail {f} and be reached first"),
        )),
        _ => {}
    }
    let weight = raw.weight.unwrap_or(1.0);
    if !(weight.is_finite() && weight > 0.0) {
        errors.push(("weight", format!("{weight} must be a number above 0")));
    }
    let no_data = match raw.no_data.as_deref() {
        None | Some("fail") => NoDataPolicy::Fail,
        Some("ok") => NoDataPolicy::Ok,
        Some("warn") => NoDataPolicy::Warn,
        Some(other) => {
            errors.push(("no_data", format!("{other:?} is not one of ok, warn, fail")));
            NoDataPolicy::Fail
        }
    };
    let phases = match raw.phases {
        None => phase_names.to_vec(),
        Some(list) => {
            if list.is_empty() {
                errors.push((
                    "phases",
                    "empty list; leave the key out to put the signal in every phase".into(),
                ));
            }
            for p in list.iter().filter(|p| !phase_names.contains(p)) {
                let known = if phase_names.is_empty() {
                    "no phase".to_string()
                } else {
                    phase_names.join(", ")
                };
                errors.push((
                    "phases",
                    format!("unknown phase {p:?}; the config defines {known}"),
                ));
            }
            list
        }
    };
    let for_ = match raw.for_.as_deref().map(parse_duration) {
        None => Duration::ZERO,
        Some(Ok(d)) => d,
        Some(Err(message)) => {
            errors.push(("for", message));
            Duration::ZERO
        }
    };
    if fail.is_none() && !for_.is_zero() {
        errors.push((
            "for",
            "`for` applies to the fail threshold, but the signal has none".into(),
        ));
    }
    for (key, message) in errors {
        problems.add(origin, Some(&name), Some(key), message);
    }
    Some(Signal {
        name,
        description: raw.description,
        runbook: raw.runbook,
        query,
        warn,
        fail,
        for_,
        weight,
        critical: raw.critical.unwrap_or(false),
        no_data,
        phases,
        origin: origin.to_string(),
    })
}

fn valid_name(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
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

fn duration_or(
    file: &str,
    key: &str,
    text: Option<String>,
    default: Duration,
    problems: &mut Problems,
) -> Duration {
    match text.as_deref().map(parse_duration) {
        None => default,
        Some(Ok(d)) => d,
        Some(Err(message)) => {
            problems.add(file, None, Some(key), message);
            default
        }
    }
}
