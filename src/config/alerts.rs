//! The `alerts` section: receivers (Slack, webhook, Alertmanager) with their secret URLs and
//! HMAC keys, and how hard delivery tries.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::problems::Problems;
use super::read::{duration_or, secret_value};
use crate::secret::Secret;

const DEFAULT_REPEAT: Duration = Duration::from_secs(3600);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(60);
const DEFAULT_GIVE_UP: Duration = Duration::from_secs(3600);
const DEFAULT_QUEUE: usize = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    repeat_interval: Option<String>,
    send_resolved: Option<bool>,
    external_url: Option<String>,
    timeout: Option<String>,
    retry_initial_backoff: Option<String>,
    retry_max_backoff: Option<String>,
    give_up_after: Option<String>,
    queue_capacity: Option<i64>,
    state_file: Option<String>,
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
    /// How long a notice is retried before it is given up (`expired`): past it, it is stale.
    pub give_up_after: Duration,
    /// Alerts waiting per receiver before new ones are dropped (and counted).
    pub queue_capacity: usize,
    /// Where a lone process keeps its notification log across restarts.
    pub state_file: Option<PathBuf>,
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

pub(super) fn validate_alerts(file: &str, raw: RawAlerts, problems: &mut Problems) -> AlertsConfig {
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
    let give_up_after = duration("give_up_after", raw.give_up_after, DEFAULT_GIVE_UP);
    for (key, d) in [
        ("alerts.timeout", timeout),
        ("alerts.retry_initial_backoff", retry_initial_backoff),
        ("alerts.give_up_after", give_up_after),
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
        give_up_after,
        queue_capacity,
        state_file: raw
            .state_file
            .filter(|p| !p.trim().is_empty())
            .map(PathBuf::from),
        receivers,
    }
}

fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}
