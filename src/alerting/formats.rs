//! What each kind of receiver is sent: a Slack Block Kit message, a signed JSON webhook, or
//! Alertmanager's `POST /api/v2/alerts` body. Pure functions from alerts to HTTP requests.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;

use super::book::{signal_detail, signal_line, Alert, AlertName, AlertStatus};
use crate::config::{ReceiverConfig, ReceiverKind};
use crate::engine::decide::{Decision, SignalReport};
use crate::engine::evaluate::{Offender, Status};
use crate::engine::text::fmt_number;
use crate::engine::threshold::Threshold;

/// Version of the webhook body; bumped on any incompatible change.
pub const WEBHOOK_VERSION: &str = "1";
/// Header carrying `sha256=<hex HMAC-SHA256 of the body>` when the receiver has a secret.
pub const SIGNATURE_HEADER: &str = "X-Upgrade-Gate-Signature";
/// Header carrying the alert's idempotency key (same on retries, new on repeats).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Signals listed per message: enough to act on, short enough for Slack's block limits.
const MAX_SIGNALS: usize = 10;

/// An HTTP POST ready to send; the URL stays in the receiver's config, as a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub path_suffix: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// Link to the gate's answer for the alert, when `alerts.external_url` is set: in fleet mode the
/// cluster's answer for the (first) phase, or the wave's.
pub fn gate_url(alert: &Alert, external_url: Option<&str>) -> Option<String> {
    let base = external_url?;
    if alert.name == AlertName::WaveBlocked {
        return Some(format!(
            "{base}/waves/{}",
            encoded(alert.wave.as_deref().unwrap_or_default())
        ));
    }
    Some(
        match (&alert.cluster, &alert.signal, alert.phases.first()) {
            (None, None, Some(phase)) => format!("{base}/gate/{phase}"),
            (None, _, _) => format!("{base}/signals"),
            (Some(cluster), _, Some(phase)) => {
                format!("{base}/gate/{phase}?cluster={}", encoded(cluster))
            }
            (Some(_), _, None) => format!("{base}/fleet"),
        },
    )
}

/// Percent-encodes all but RFC 3986's unreserved characters: a cluster name is any label value.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The Slack or webhook request for one alert.
pub fn notification(
    receiver: &ReceiverConfig,
    alert: &Alert,
    external_url: Option<&str>,
) -> Request {
    let body = match receiver.kind {
        ReceiverKind::Slack => slack(alert, external_url),
        ReceiverKind::Webhook | ReceiverKind::Alertmanager => webhook(alert, external_url),
    };
    let body = serde_json::to_vec(&body).expect("JSON values serialize");
    let mut headers = vec![(IDEMPOTENCY_HEADER, alert.idempotency_key())];
    if let Some(secret) = &receiver.hmac_secret {
        headers.push((SIGNATURE_HEADER, sign(secret.expose(), &body)));
    }
    Request {
        path_suffix: "",
        body,
        headers,
    }
}

/// `sha256=<hex>` of the body under the receiver's secret, as GitHub signs its webhooks.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A signal as messages show it: enough to act on without the query text.
#[derive(Debug, Serialize)]
struct SignalBrief<'a> {
    name: &'a str,
    status: Status,
    value: Option<f64>,
    baseline: Option<f64>,
    warn: Option<&'a Threshold>,
    fail: Option<&'a Threshold>,
    critical: bool,
    /// The worst offending series, when there is one.
    worst: Option<&'a Offender>,
    offending_series: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runbook: Option<&'a str>,
}

impl<'a> From<&'a SignalReport> for SignalBrief<'a> {
    fn from(r: &'a SignalReport) -> Self {
        SignalBrief {
            name: &r.name,
            status: r.status,
            value: r.value,
            baseline: r.baseline,
            warn: r.warn.as_ref(),
            fail: r.fail.as_ref(),
            critical: r.critical,
            worst: r.offenders.first(),
            offending_series: r.offending_series,
            error: r.error.as_deref(),
            runbook: r.runbook.as_deref(),
        }
    }
}

/// The generic webhook body; its fields are documented in the README.
pub fn webhook(alert: &Alert, external_url: Option<&str>) -> Value {
    let signals: Vec<SignalBrief> = alert
        .signals
        .iter()
        .take(MAX_SIGNALS)
        .map(Into::into)
        .collect();
    let mut body = json!({
        "version": WEBHOOK_VERSION,
        "status": alert.status,
        "alertname": alert.name,
        "severity": alert.severity,
        "phase": if alert.signal.is_none() { alert.phases.first() } else { None },
        "phases": alert.phases,
        "signal": alert.signal,
        "decision": alert.decision,
        "score": alert.score,
        "summary": alert.summary(),
        "reasons": alert.reasons,
        "signals": signals,
        "starts_at": rfc3339(alert.starts_at),
        "ends_at": alert.ends_at.map(rfc3339),
        "evaluated_at": rfc3339(alert.evaluated_at),
        "gate_url": gate_url(alert, external_url),
        "idempotency_key": alert.idempotency_key(),
    });
    // Only in fleet mode: a single gate's body is as it was.
    located(&mut body, alert);
    body
}

/// Adds `cluster` and `wave`, where the alert has them, to a JSON object.
fn located(object: &mut Value, alert: &Alert) {
    if let Some(cluster) = &alert.cluster {
        object["cluster"] = json!(cluster);
    }
    if let Some(wave) = &alert.wave {
        object["wave"] = json!(wave);
    }
}

/// A Slack incoming-webhook message: a header, the phase/decision/score fields, one section per
/// unhealthy signal with its worst series, value and threshold, and the link to the gate.
pub fn slack(alert: &Alert, external_url: Option<&str>) -> Value {
    let resolved = alert.status == AlertStatus::Resolved;
    let icon = if resolved {
        ":white_check_mark:"
    } else {
        ":red_circle:"
    };
    let title = match alert.name {
        AlertName::PhaseNoGo if resolved => {
            format!("{} is GO again{}", alert.phases.join(","), alert.location())
        }
        AlertName::PhaseNoGo => format!(
            "{} is {}{}",
            alert.phases.join(","),
            alert.decision.unwrap_or(Decision::NoGo).heading(),
            alert.location()
        ),
        _ => alert.summary(),
    };
    let mut fields = Vec::new();
    if let Some(cluster) = &alert.cluster {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Cluster*\n{cluster}")}));
    }
    if let Some(wave) = &alert.wave {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Wave*\n{wave}")}));
    }
    // A shared cause belongs to no phase: its signals list theirs.
    if !alert.phases.is_empty() {
        fields.push(
            json!({"type": "mrkdwn", "text": format!("*Phase*\n{}", alert.phases.join(", "))}),
        );
    }
    if let Some(decision) = alert.decision {
        let decision = decision.as_str();
        fields.push(json!({"type": "mrkdwn", "text": format!("*Decision*\n{decision}")}));
    }
    if let Some(score) = alert.score {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Score*\n{}", fmt_number(score))}));
    }
    fields.push(
        json!({"type": "mrkdwn", "text": format!("*Severity*\n{}", alert.severity.as_str())}),
    );
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("upgrade-gate: {title}"), 150)}}),
        json!({"type": "section", "fields": fields}),
    ];
    for r in alert.signals.iter().take(MAX_SIGNALS) {
        let mut text = format!("*{}* is *{}*", r.name, r.status.as_str());
        let detail = signal_detail(r);
        if !detail.is_empty() {
            text.push_str(&format!(": `{detail}`"));
        }
        if let Some(runbook) = &r.runbook {
            text.push_str(&format!("\n_Runbook:_ {runbook}"));
        }
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, 2900)}}),
        );
    }
    // A wave's alert has no signals of its own: what holds it back is in its reasons.
    if alert.name == AlertName::WaveBlocked && !alert.reasons.is_empty() {
        let text = alert
            .reasons
            .iter()
            .take(MAX_SIGNALS)
            .map(|r| format!("• {r}"))
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, 2900)}}),
        );
    }
    let mut context = vec![
        json!({"type": "mrkdwn", "text": format!("evaluated {}", rfc3339(alert.evaluated_at))}),
    ];
    if let Some(url) = gate_url(alert, external_url) {
        context.push(json!({"type": "mrkdwn", "text": format!("<{url}|Open the gate>")}));
    }
    blocks.push(json!({"type": "context", "elements": context}));
    json!({
        "text": format!("{icon} upgrade-gate: {}", alert.summary()),
        "blocks": blocks,
    })
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max_chars - 1).collect();
    out.push('…');
    out
}

/// The Alertmanager request for the whole current state. Firing alerts get an `endsAt` that
/// outlives a few evaluations, as Prometheus does, so that Alertmanager resolves them by itself if
/// the gate stops re-sending; resolved ones carry their (past) end.
pub fn alertmanager(alerts: &[Alert], external_url: Option<&str>, firing_ttl: Duration) -> Request {
    let ttl = chrono::Duration::from_std(firing_ttl).unwrap_or(chrono::Duration::minutes(4));
    let body: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let mut labels = json!({
                "alertname": a.name.as_str(),
                "severity": a.severity.as_str(),
            });
            // A shared cause has no phase: one alert whatever signals it hides.
            if !a.phases.is_empty() {
                labels["phase"] = json!(a.phases.join(","));
            }
            if let Some(signal) = &a.signal {
                labels["signal"] = json!(signal);
            }
            located(&mut labels, a);
            let description = if a.reasons.is_empty() {
                a.signals
                    .iter()
                    .map(signal_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                a.reasons.join("\n")
            };
            let mut annotations = json!({"summary": a.summary(), "description": description});
            if let Some(runbook) = a.signals.iter().find_map(|s| s.runbook.as_deref()) {
                annotations["runbook"] = json!(runbook);
            }
            let ends_at = a.ends_at.unwrap_or(a.evaluated_at + ttl);
            let mut alert = json!({
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": rfc3339(ends_at),
            });
            if let Some(url) = gate_url(a, external_url) {
                alert["generatorURL"] = json!(url);
            }
            alert
        })
        .collect();
    Request {
        path_suffix: "/api/v2/alerts",
        body: serde_json::to_vec(&body).expect("JSON values serialize"),
        headers: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// A firing signal alert: LIST p99 3.5x its baseline.
    fn regression() -> Alert {
        let labels: crate::engine::series::Labels = [("verb".into(), "LIST".into())].into();
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Alert {
            name: AlertName::SignalFailing,
            phases: vec!["control-plane".into()],
            signal: Some("list_p99".into()),
            cluster: None,
            wave: None,
            severity: super::super::book::Severity::Warning,
            status: AlertStatus::Firing,
            starts_at: at,
            ends_at: None,
            evaluated_at: at,
            decision: None,
            score: None,
            signals: vec![SignalReport {
                name: "list_p99".into(),
                status: Status::Fail,
                value: Some(0.35),
                baseline: Some(0.1),
                warn: None,
                fail: Some(Threshold::any_of(&["> 4".into(), "> baseline * 3".into()]).unwrap()),
                for_: Duration::ZERO,
                weight: 1.0,
                critical: false,
                no_data: crate::engine::pack::NoDataPolicy::Ok,
                phases: vec!["control-plane".into()],
                offenders: vec![Offender {
                    labels,
                    value: 0.35,
                    baseline: Some(0.1),
                    status: Status::Fail,
                }],
                offending_series: 1,
                error: None,
                description: None,
                runbook: None,
                query: "q".into(),
            }],
            reasons: Vec::new(),
        }
    }

    #[test]
    fn every_format_carries_the_baseline() {
        let alert = regression();
        let body = webhook(&alert, None);
        assert_eq!(body["signals"][0]["baseline"], 0.1);
        assert_eq!(body["signals"][0]["worst"]["baseline"], 0.1);
        assert_eq!(body["signals"][0]["fail"], json!(["> 4", "> baseline * 3"]));
        let slack = slack(&alert, None).to_string();
        assert!(
            slack.contains("= 0.35 (3.5x baseline 0.1) (fail > 4 or > baseline * 3)"),
            "{slack}"
        );
        let am = alertmanager(&[alert], None, Duration::from_secs(60));
        let am: Value = serde_json::from_slice(&am.body).unwrap();
        let description = am[0]["annotations"]["description"].as_str().unwrap();
        assert!(
            description.contains("0.35 (3.5x baseline 0.1)"),
            "{description}"
        );
    }

    #[test]
    fn an_unknown_phase_is_said_unknown() {
        let alert = Alert {
            name: AlertName::PhaseNoGo,
            signal: None,
            decision: Some(Decision::Unknown),
            score: Some(0.0),
            reasons: vec!["Prometheus at http://p is unreachable: refused".into()],
            ..regression()
        };
        let slack = slack(&alert, None);
        assert_eq!(
            slack["blocks"][0]["text"]["text"],
            "upgrade-gate: control-plane is UNKNOWN"
        );
        assert_eq!(
            slack["text"],
            ":red_circle: upgrade-gate: phase control-plane is UNKNOWN: Prometheus at http://p is unreachable: refused"
        );
        assert!(
            slack.to_string().contains(r"*Decision*\nunknown"),
            "{slack}"
        );
        assert_eq!(webhook(&alert, None)["decision"], "unknown");
    }

    #[test]
    fn long_texts_are_cut_for_slack() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
