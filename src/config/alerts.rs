//! The `alerts` section: receivers (Slack, webhook, Alertmanager) with their secret URLs and
//! HMAC keys, and how hard delivery tries.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::problems::{At, Problems};
use super::read::whole_number;
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
    #[serde(default, deserialize_with = "whole_number")]
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

pub(super) fn validate_alerts(file: &str, raw: RawAlerts, problems: &Problems) -> AlertsConfig {
    let at = problems.at(file);
    let duration = |key: &str, text: Option<String>, default: Duration| {
        at.key(format!("alerts.{key}")).duration_or(text, default)
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
        at.key(key).require(!d.is_zero(), "must be more than 0");
    }
    at.key("alerts.retry_max_backoff").require(
        retry_max_backoff >= retry_initial_backoff,
        "must not be shorter than alerts.retry_initial_backoff",
    );
    let queue_capacity = at
        .key("alerts.queue_capacity")
        .count_or(raw.queue_capacity, DEFAULT_QUEUE);
    if let Some(url) = &raw.external_url {
        at.key("alerts.external_url")
            .require(is_http_url(url), "must be an http:// or https:// URL");
    }
    let mut receivers: Vec<ReceiverConfig> = Vec::new();
    for (i, r) in raw.receivers.into_iter().enumerate() {
        if let Some(receiver) = validate_receiver(at, i, r, &receivers) {
            receivers.push(receiver);
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

/// The receiver at `alerts.receivers[i]`, or `None` when it cannot be built; `before` are the
/// receivers read so far, whose names it must not repeat.
fn validate_receiver(
    at: At,
    i: usize,
    r: RawReceiver,
    before: &[ReceiverConfig],
) -> Option<ReceiverConfig> {
    let key = |k: &str| at.key(format!("alerts.receivers[{i}].{k}"));
    let name = r.name.filter(|n| !n.trim().is_empty());
    key("name").require(name.is_some(), "missing receiver name");
    let name = name.unwrap_or_else(|| format!("#{}", i + 1));
    let unique = !before.iter().any(|other| other.name == name);
    key("name").require(unique, format!("duplicate receiver {name:?}"));
    let kind = key("kind").check(match r.kind.as_deref() {
        Some("slack") => Ok(ReceiverKind::Slack),
        Some("webhook") => Ok(ReceiverKind::Webhook),
        Some("alertmanager") => Ok(ReceiverKind::Alertmanager),
        Some(kind) => Err(format!(
            "{kind:?} is not one of slack, webhook, alertmanager"
        )),
        None => Err("missing; one of slack, webhook, alertmanager".to_string()),
    });
    let given = r.url.is_some() || r.url_file.is_some();
    key("url").require(given, "set `url` or `url_file`");
    let url = key("url").secret(r.url, r.url_file);
    // The value is secret: say what is wrong, not what it is.
    let valid = url.as_ref().is_none_or(|u| is_http_url(u.expose()));
    key("url").require(valid, "must be an http:// or https:// URL");
    let hmac_secret = key("hmac_secret").secret(r.hmac_secret, r.hmac_secret_file);
    let signs = hmac_secret.is_none() || kind == Some(ReceiverKind::Webhook);
    key("hmac_secret").require(signs, "only webhook receivers sign their bodies");
    Some(ReceiverConfig {
        name,
        kind: kind?,
        url: url?,
        hmac_secret,
    })
}

fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}
