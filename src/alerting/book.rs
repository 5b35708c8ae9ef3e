//! Alerts: what is firing after each evaluation, and what changed since the previous one.
//!
//! Four alerts exist: a phase that is not go (`UpgradeGatePhaseNoGo`, for no-go and unknown
//! alike: either holds the upgrade, and the text says which), a signal that fails
//! (`UpgradeGateSignalFailing`), a signal whose own query errors (`UpgradeGateQueryError`), and
//! one error that two or more signals share (`UpgradeGatePrometheusError`): an unreachable or
//! refusing Prometheus, refused credentials. That one cause is one alert naming the signals it
//! hides, as the reasons of `/gate` say it once, not one alert per signal: an outage would
//! otherwise page once per signal and resolve as many times. The `all` pseudo-phase raises none:
//! every signal in it already raises its own.
//!
//! In fleet mode each cluster's snapshot raises the same alerts, carrying the cluster and its wave
//! (see [`super::fleet`]), and a fifth exists: a wave that may not start
//! (`UpgradeGateWaveBlocked`).
//!
//! The book is pure: it is fed snapshots and answers with notices, so the rules of when to tell
//! people are tested without a network.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use crate::engine::decide::{shared_errors, Decision, SignalReport};
use crate::engine::evaluate::Status;
use crate::engine::pack::ALL_PHASES;
use crate::engine::snapshot::Snapshot;
use crate::engine::text::{fmt_labels, fmt_number, fmt_with_baseline};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertName {
    #[serde(rename = "UpgradeGatePhaseNoGo")]
    PhaseNoGo,
    #[serde(rename = "UpgradeGateSignalFailing")]
    SignalFailing,
    #[serde(rename = "UpgradeGateQueryError")]
    QueryError,
    /// One error shared by two or more signals: its cause, not each signal, is the alert.
    #[serde(rename = "UpgradeGatePrometheusError")]
    PrometheusError,
    /// A wave of a fleet that may not start: clusters of earlier waves not go, or a soak not over.
    #[serde(rename = "UpgradeGateWaveBlocked")]
    WaveBlocked,
}

impl AlertName {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertName::PhaseNoGo => "UpgradeGatePhaseNoGo",
            AlertName::SignalFailing => "UpgradeGateSignalFailing",
            AlertName::QueryError => "UpgradeGateQueryError",
            AlertName::PrometheusError => "UpgradeGatePrometheusError",
            AlertName::WaveBlocked => "UpgradeGateWaveBlocked",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// One alert as receivers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub name: AlertName,
    /// The phase for a phase alert; the signal's phases for a signal alert; none for a shared
    /// cause, whose identity must not change as the signals it hides come and go.
    pub phases: Vec<String>,
    pub signal: Option<String>,
    /// In fleet mode, the cluster whose snapshot raised it; `None` for a single gate and for a
    /// wave's alert.
    pub cluster: Option<String>,
    /// In fleet mode, that cluster's wave, or the wave a wave alert is about.
    pub wave: Option<String>,
    pub severity: Severity,
    pub status: AlertStatus,
    pub starts_at: DateTime<Utc>,
    /// When it resolved; `None` while firing.
    pub ends_at: Option<DateTime<Utc>>,
    pub evaluated_at: DateTime<Utc>,
    /// A phase alert's decision and score at `evaluated_at`.
    pub decision: Option<Decision>,
    pub score: Option<f64>,
    /// The signals that explain the alert: the phase's unhealthy ones, the one signal, or those
    /// a shared cause hides.
    pub signals: Vec<SignalReport>,
    pub reasons: Vec<String>,
}

impl Alert {
    /// Identity: what Alertmanager would fingerprint from the labels. A single gate's alerts
    /// have no cluster or wave, and their identity is what it was before fleets.
    pub fn id(&self) -> String {
        let mut id = format!(
            "{}/{}/{}",
            self.name.as_str(),
            self.phases.join(","),
            self.signal.as_deref().unwrap_or("")
        );
        if let Some(cluster) = &self.cluster {
            id.push_str(&format!("/cluster={cluster}"));
        }
        if let Some(wave) = &self.wave {
            id.push_str(&format!("/wave={wave}"));
        }
        id
    }

    /// ` on cluster c2 (wave staging)` for a cluster's alert, empty otherwise: where the alert
    /// comes from, for every text a person reads.
    pub fn location(&self) -> String {
        match (&self.cluster, &self.wave) {
            (Some(cluster), Some(wave)) => format!(" on cluster {cluster} (wave {wave})"),
            (Some(cluster), None) => format!(" on cluster {cluster}"),
            _ => String::new(),
        }
    }

    /// Same for every retry of one notification, different for the next notification of the same
    /// alert (a repeat or a resolution is judged at another evaluation), so a receiver can drop
    /// duplicates without dropping repeats.
    pub fn idempotency_key(&self) -> String {
        let status = match self.status {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        };
        let digest = Sha256::digest(format!(
            "{}|{status}|{}|{}",
            self.id(),
            self.starts_at.timestamp(),
            self.evaluated_at.timestamp()
        ));
        hex::encode(&digest[..16])
    }

    /// One line a person reads first.
    pub fn summary(&self) -> String {
        let resolved = self.status == AlertStatus::Resolved;
        let at = self.location();
        match (self.name, &self.signal) {
            (AlertName::PhaseNoGo, _) => {
                let phases = self.phases.join(",");
                let score = self.score.map_or("?".into(), fmt_number);
                match self.decision {
                    _ if resolved => format!("phase {phases} is GO again{at} (score {score})"),
                    // The score counts what could not be evaluated as 0: the cause says more.
                    Some(Decision::Unknown) => format!(
                        "phase {phases} is UNKNOWN{at}: {}",
                        self.reasons
                            .first()
                            .map_or("a query failed", String::as_str)
                    ),
                    _ => format!("phase {phases} is NO-GO{at} (score {score})"),
                }
            }
            (AlertName::SignalFailing, Some(signal)) if resolved => {
                format!("signal {signal} no longer fails{at}")
            }
            (AlertName::SignalFailing, Some(signal)) => match self.signals.first() {
                Some(r) => format!("signal {signal} fails{at}: {}", signal_detail(r)),
                None => format!("signal {signal} fails{at}"),
            },
            (AlertName::QueryError, Some(signal)) if resolved => {
                format!("signal {signal} can be evaluated again{at}")
            }
            (AlertName::QueryError, Some(signal)) => format!(
                "signal {signal} cannot be evaluated{at}: {}",
                self.signals
                    .first()
                    .and_then(|r| r.error.as_deref())
                    .unwrap_or("query error")
            ),
            (AlertName::PrometheusError, _) if resolved => {
                format!("Prometheus answers again{at}: the signals it hid can be evaluated again")
            }
            (AlertName::PrometheusError, _) => {
                let mut causes: Vec<&str> = self
                    .signals
                    .iter()
                    .filter_map(|r| r.error.as_deref())
                    .collect();
                causes.dedup();
                let names: Vec<&str> = self.signals.iter().map(|r| r.name.as_str()).collect();
                format!(
                    "{}{at} ({} signals cannot be evaluated: {})",
                    causes.join("; "),
                    names.len(),
                    listed(&names)
                )
            }
            (AlertName::WaveBlocked, _) => {
                let wave = self.wave.as_deref().unwrap_or("?");
                if resolved {
                    format!("wave {wave} may start")
                } else {
                    let state = match self.decision {
                        Some(Decision::Unknown) => "UNKNOWN",
                        _ => "BLOCKED",
                    };
                    let reasons: Vec<&str> = self.reasons.iter().map(String::as_str).collect();
                    format!("wave {wave} is {state}: {}", listed_with(&reasons, "; "))
                }
            }
            (_, None) => self.name.as_str().to_string(),
        }
    }
}

/// Most signal names a summary lists; the rest are counted.
const MAX_NAMED: usize = 5;

/// `a, b, c, d, e and 23 more`.
fn listed(names: &[&str]) -> String {
    listed_with(names, ", ")
}

fn listed_with(names: &[&str], separator: &str) -> String {
    let shown = names[..names.len().min(MAX_NAMED)].join(separator);
    match names.len().saturating_sub(MAX_NAMED) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// A signal's worst series, value and threshold, for messages: `{svc="a"} = 2 (fail > 1)`.
pub fn signal_detail(r: &SignalReport) -> String {
    let mut parts = Vec::new();
    let value = match r.offenders.first() {
        Some(o) => Some(fmt_with_baseline(o.value, o.baseline)),
        None => r.value.map(|v| fmt_with_baseline(v, r.baseline)),
    };
    match (r.offenders.first(), value) {
        (Some(o), Some(v)) => parts.push(format!("{} = {v}", fmt_labels(&o.labels))),
        (None, Some(v)) => parts.push(v),
        _ => {}
    }
    match (r.status, &r.fail, &r.warn) {
        (Status::Fail, Some(t), _) => parts.push(format!("(fail {t})")),
        (Status::Warn, _, Some(t)) | (Status::Warn, Some(t), None) => {
            parts.push(format!("(threshold {t})"))
        }
        _ => {}
    }
    if let Some(e) = &r.error {
        parts.push(e.clone());
    }
    parts.join(" ")
}

/// `name is status: detail`, the line each signal gets in a message.
pub fn signal_line(r: &SignalReport) -> String {
    let detail = signal_detail(r);
    if detail.is_empty() {
        format!("{} is {}", r.name, r.status.as_str())
    } else {
        format!("{} is {}: {detail}", r.name, r.status.as_str())
    }
}

/// What a receiver is told after one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// Started firing since the previous evaluation (or is firing at the first one).
    New,
    /// Stopped firing since the previous evaluation.
    Resolved,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub alert: Alert,
}

/// The result of one evaluation for the alert path.
#[derive(Debug, Default)]
pub struct Update {
    /// What this process saw change, in order: the candidates for Slack and webhooks, which the
    /// notification log then filters (what a peer or an earlier run already sent) and completes
    /// (repeats, and resolutions of what was announced before a restart).
    pub notices: Vec<Notice>,
    /// The whole current state: every firing alert and every alert resolved just now, for
    /// receivers that keep state themselves (Alertmanager) and want it refreshed.
    pub state: Vec<Alert>,
}

/// The alerts firing after the last evaluation, each with the evaluation that first saw it.
///
/// It remembers nothing across restarts: what was announced, and when, is the notification log's
/// business. At the first evaluation everything firing is new to it.
#[derive(Default)]
pub struct AlertBook {
    active: BTreeMap<String, Alert>,
}

impl AlertBook {
    /// Compares `snapshot` with the previous one.
    pub fn update(&mut self, snapshot: &Snapshot) -> Update {
        self.compare(firing_alerts(snapshot), |alert| resolve(alert, snapshot))
    }

    /// Compares what fires now with what fired after the previous evaluation; `resolve` turns an
    /// alert that stopped firing into its resolution.
    pub(super) fn compare(
        &mut self,
        firing: Vec<Alert>,
        resolve: impl Fn(Alert) -> Alert,
    ) -> Update {
        let mut update = Update::default();
        let mut firing: BTreeMap<String, Alert> = firing.into_iter().map(|a| (a.id(), a)).collect();

        let ended: Vec<String> = self
            .active
            .keys()
            .filter(|id| !firing.contains_key(*id))
            .cloned()
            .collect();
        for id in ended {
            let previous = self.active.remove(&id).expect("listed above");
            let alert = resolve(previous);
            update.state.push(alert.clone());
            update.notices.push(Notice {
                kind: NoticeKind::Resolved,
                alert,
            });
        }

        for (id, mut alert) in std::mem::take(&mut firing) {
            match self.active.remove(&id) {
                None => update.notices.push(Notice {
                    kind: NoticeKind::New,
                    alert: alert.clone(),
                }),
                Some(previous) => alert.starts_at = previous.starts_at,
            }
            update.state.push(alert.clone());
            self.active.insert(id, alert);
        }
        update
    }
}

/// A resolved notice for an alert this process may never have seen firing (it was announced
/// before a restart, or by a peer), rebuilt from what the notification log kept of it.
pub fn resolved_alert(announced: Alert, snapshot: &Snapshot) -> Alert {
    resolve(announced, snapshot)
}

/// The firing alert as it was, turned resolved with the current decision and signal state.
pub(super) fn resolve(alert: Alert, snapshot: &Snapshot) -> Alert {
    let mut alert = resolved_at(alert, snapshot.evaluated_at);
    match &alert.signal {
        // The signals it hid report for themselves again, each in its own alerts.
        None if alert.name == AlertName::PrometheusError => {}
        None => {
            let verdict = alert.phases.first().and_then(|p| snapshot.verdict(p));
            alert.decision = verdict.map(|v| v.decision);
            alert.score = verdict.map(|v| v.score);
        }
        Some(name) => {
            alert.signals = snapshot
                .signals
                .iter()
                .filter(|s| &s.name == name)
                .cloned()
                .collect();
        }
    }
    alert
}

/// The firing alert turned resolved at `at`, without the state that made it fire.
pub(super) fn resolved_at(mut alert: Alert, at: DateTime<Utc>) -> Alert {
    alert.status = AlertStatus::Resolved;
    alert.ends_at = Some(at);
    alert.evaluated_at = at;
    alert.reasons.clear();
    alert.signals.clear();
    alert.decision = None;
    alert.score = None;
    alert
}

/// Everything firing in `snapshot`, phases first, then signals, then a shared cause.
pub(super) fn firing_alerts(snapshot: &Snapshot) -> Vec<Alert> {
    // Sorted by error, so that one cause's signals stand together in the alert.
    let shared = shared_errors(&snapshot.signals);
    let base = |name, phases, signal, severity, signals| Alert {
        name,
        phases,
        signal,
        cluster: None,
        wave: None,
        severity,
        status: AlertStatus::Firing,
        starts_at: snapshot.evaluated_at,
        ends_at: None,
        evaluated_at: snapshot.evaluated_at,
        decision: None,
        score: None,
        signals,
        reasons: Vec::new(),
    };
    let phases = snapshot
        .phases
        .iter()
        // Unknown is never go: it alerts as no-go does, and says unknown.
        .filter(|v| v.phase != ALL_PHASES && v.decision != Decision::Go)
        .map(|v| Alert {
            decision: Some(v.decision),
            score: Some(v.score),
            reasons: v.reasons.clone(),
            ..base(
                AlertName::PhaseNoGo,
                vec![v.phase.clone()],
                None,
                Severity::Critical,
                v.signals
                    .iter()
                    .filter(|s| s.status.troubled(s.no_data))
                    .cloned()
                    .collect(),
            )
        });
    let signals = snapshot.signals.iter().filter_map(|s| {
        let (name, severity) = match s.status {
            Status::Fail if s.critical => (AlertName::SignalFailing, Severity::Critical),
            Status::Fail => (AlertName::SignalFailing, Severity::Warning),
            // The gate fails closed on errors, so an error blocks pipelines like a critical fail.
            Status::Error if s.error.as_deref().is_some_and(|e| shared.contains_key(e)) => {
                return None
            }
            Status::Error => (AlertName::QueryError, Severity::Critical),
            _ => return None,
        };
        Some(base(
            name,
            s.phases.clone(),
            Some(s.name.clone()),
            severity,
            vec![s.clone()],
        ))
    });
    let hidden: Vec<SignalReport> = shared
        .values()
        .flatten()
        .filter_map(|name| snapshot.signals.iter().find(|s| &s.name == name))
        .cloned()
        .collect();
    let cause = (!hidden.is_empty()).then(|| Alert {
        reasons: shared
            .iter()
            .map(|(error, names)| format!("{error}: {}", names.join(", ")))
            .collect(),
        ..base(
            AlertName::PrometheusError,
            Vec::new(),
            None,
            Severity::Critical,
            hidden,
        )
    });
    phases.chain(signals).chain(cause).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    use crate::engine::decide::Verdict;
    use crate::engine::pack::NoDataPolicy;

    pub(crate) fn report(name: &str, status: Status) -> SignalReport {
        SignalReport {
            name: name.to_string(),
            status,
            value: Some(2.0),
            baseline: None,
            warn: None,
            fail: Some("> 1".parse().unwrap()),
            for_: Duration::ZERO,
            weight: 1.0,
            critical: true,
            no_data: NoDataPolicy::Fail,
            phases: vec!["istio".into()],
            offenders: vec![],
            offending_series: 0,
            error: (status == Status::Error).then(|| "Prometheus is unreachable".into()),
            description: None,
            runbook: None,
            query: "q".into(),
        }
    }

    /// A snapshot at minute `minute` with one phase and the given signals.
    pub(crate) fn snapshot(
        minute: i64,
        decision: Decision,
        statuses: &[(&str, Status)],
    ) -> Snapshot {
        let at = DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap();
        let signals: Vec<SignalReport> = statuses.iter().map(|(n, s)| report(n, *s)).collect();
        let verdict = |phase: &str| Verdict {
            phase: phase.into(),
            decision,
            score: if decision == Decision::Go {
                100.0
            } else {
                50.0
            },
            min_score: 90.0,
            evaluated_at: at,
            stable_since: None,
            stable_for: Duration::ZERO,
            reasons: vec!["why".into()],
            signals: signals.clone(),
        };
        Snapshot {
            evaluated_at: at,
            took: Duration::ZERO,
            phases: vec![verdict("istio"), verdict(ALL_PHASES)],
            signals,
        }
    }

    pub(crate) fn kinds(update: &Update) -> Vec<(NoticeKind, String)> {
        update
            .notices
            .iter()
            .map(|n| (n.kind, n.alert.id()))
            .collect()
    }

    /// Unknown holds the upgrade as no-go does, so it is the same alert, said as unknown with its
    /// cause; going from unknown to no-go is no new alert, and go resolves it.
    #[test]
    fn an_unknown_phase_alerts_like_a_no_go_one_and_says_unknown() {
        let mut book = AlertBook::default();
        let u = book.update(&snapshot(0, Decision::Unknown, &[("a", Status::Error)]));
        assert_eq!(
            kinds(&u),
            [
                (NoticeKind::New, "UpgradeGatePhaseNoGo/istio/".into()),
                (NoticeKind::New, "UpgradeGateQueryError/istio/a".into()),
            ]
        );
        let phase = &u.notices[0].alert;
        assert_eq!(phase.decision, Some(Decision::Unknown));
        assert_eq!(phase.summary(), "phase istio is UNKNOWN: why");
        let u = book.update(&snapshot(1, Decision::NoGo, &[("a", Status::Fail)]));
        assert!(
            !kinds(&u).contains(&(NoticeKind::New, "UpgradeGatePhaseNoGo/istio/".into())),
            "{:?}",
            kinds(&u)
        );
        assert_eq!(
            book.update(&snapshot(2, Decision::Go, &[("a", Status::Ok)]))
                .notices[0]
                .alert
                .summary(),
            "phase istio is GO again (score 100)"
        );
    }

    #[test]
    fn what_fires_at_start_is_new_to_the_book() {
        let mut book = AlertBook::default();
        let u = book.update(&snapshot(0, Decision::NoGo, &[("a", Status::Fail)]));
        assert_eq!(
            kinds(&u),
            [
                (NoticeKind::New, "UpgradeGatePhaseNoGo/istio/".into()),
                (NoticeKind::New, "UpgradeGateSignalFailing/istio/a".into()),
            ],
            "the all pseudo-phase raises nothing of its own"
        );
        assert_eq!(u.state.len(), 2);
    }

    #[test]
    fn changes_are_announced_once_and_resolve() {
        let mut book = AlertBook::default();
        book.update(&snapshot(
            0,
            Decision::Go,
            &[("a", Status::Ok), ("b", Status::Ok)],
        ));
        let u = book.update(&snapshot(
            1,
            Decision::NoGo,
            &[("a", Status::Fail), ("b", Status::Error)],
        ));
        assert_eq!(
            kinds(&u),
            [
                (NoticeKind::New, "UpgradeGatePhaseNoGo/istio/".into()),
                (NoticeKind::New, "UpgradeGateQueryError/istio/b".into()),
                (NoticeKind::New, "UpgradeGateSignalFailing/istio/a".into()),
            ]
        );
        assert_eq!(
            u.notices[0].alert.summary(),
            "phase istio is NO-GO (score 50)"
        );
        assert_eq!(u.notices[2].alert.summary(), "signal a fails: 2 (fail > 1)");
        assert_eq!(
            u.notices[1].alert.summary(),
            "signal b cannot be evaluated: Prometheus is unreachable"
        );
        let started = u.notices[0].alert.starts_at;

        // Nothing changed: nothing to say, but the state is still all there.
        let same = book.update(&snapshot(
            2,
            Decision::NoGo,
            &[("a", Status::Fail), ("b", Status::Error)],
        ));
        assert!(same.notices.is_empty());
        assert_eq!(same.state.len(), 3);
        assert_eq!(same.state[0].starts_at, started);

        let u = book.update(&snapshot(
            3,
            Decision::Go,
            &[("a", Status::Ok), ("b", Status::Ok)],
        ));
        assert_eq!(
            kinds(&u),
            [
                (NoticeKind::Resolved, "UpgradeGatePhaseNoGo/istio/".into()),
                (NoticeKind::Resolved, "UpgradeGateQueryError/istio/b".into()),
                (
                    NoticeKind::Resolved,
                    "UpgradeGateSignalFailing/istio/a".into()
                ),
            ]
        );
        let phase = &u.notices[0].alert;
        assert_eq!(phase.status, AlertStatus::Resolved);
        assert_eq!(phase.starts_at, started);
        assert_eq!(
            phase.ends_at,
            Some(snapshot(3, Decision::Go, &[]).evaluated_at)
        );
        assert_eq!(phase.decision, Some(Decision::Go));
        assert_eq!(phase.summary(), "phase istio is GO again (score 100)");
        assert!(book
            .update(&snapshot(4, Decision::Go, &[("a", Status::Ok)]))
            .state
            .is_empty());
    }

    #[test]
    fn a_still_firing_alert_keeps_its_start_and_a_new_notification_gets_a_new_key() {
        let mut book = AlertBook::default();
        book.update(&snapshot(0, Decision::Go, &[("a", Status::Ok)]));
        let first = book.update(&snapshot(1, Decision::Go, &[("a", Status::Fail)]));
        let later = book.update(&snapshot(61, Decision::Go, &[("a", Status::Fail)]));
        assert!(later.notices.is_empty());
        assert_eq!(later.state[0].starts_at, first.state[0].starts_at);
        let (a, b) = (&first.state[0], &later.state[0]);
        assert_eq!(a.idempotency_key(), a.clone().idempotency_key());
        assert_ne!(a.idempotency_key(), b.idempotency_key());
        let resolved = book.update(&snapshot(62, Decision::Go, &[("a", Status::Ok)]));
        assert_ne!(
            resolved.notices[0].alert.idempotency_key(),
            b.idempotency_key()
        );
    }

    #[test]
    fn fail_to_error_is_one_resolved_and_one_new() {
        let mut book = AlertBook::default();
        book.update(&snapshot(0, Decision::Go, &[("a", Status::Fail)]));
        let u = book.update(&snapshot(1, Decision::Go, &[("a", Status::Error)]));
        assert_eq!(
            kinds(&u),
            [
                (
                    NoticeKind::Resolved,
                    "UpgradeGateSignalFailing/istio/a".into()
                ),
                (NoticeKind::New, "UpgradeGateQueryError/istio/a".into()),
            ]
        );
    }

    #[test]
    fn an_error_signals_share_is_one_alert_naming_them_and_a_signal_of_its_own_keeps_its_own() {
        let mut book = AlertBook::default();
        book.update(&snapshot(
            0,
            Decision::Go,
            &[("a", Status::Ok), ("b", Status::Ok), ("c", Status::Ok)],
        ));
        let mut down = snapshot(
            1,
            Decision::NoGo,
            &[
                ("a", Status::Error),
                ("b", Status::Error),
                ("c", Status::Error),
            ],
        );
        down.signals[2].error = Some("parse error: unexpected `}`".into());
        let u = book.update(&down);
        assert_eq!(
            kinds(&u),
            [
                (NoticeKind::New, "UpgradeGatePhaseNoGo/istio/".into()),
                (NoticeKind::New, "UpgradeGatePrometheusError//".into()),
                (NoticeKind::New, "UpgradeGateQueryError/istio/c".into()),
            ]
        );
        let cause = &u.notices[1].alert;
        assert_eq!(
            cause.summary(),
            "Prometheus is unreachable (2 signals cannot be evaluated: a, b)"
        );
        assert_eq!(cause.reasons, ["Prometheus is unreachable: a, b"]);
        assert!(
            cause.phases.is_empty(),
            "one identity, whichever signals it hides"
        );

        // Fewer signals hidden, same cause: nothing new to say.
        let mut fewer = snapshot(
            2,
            Decision::NoGo,
            &[
                ("a", Status::Error),
                ("b", Status::Error),
                ("c", Status::Ok),
            ],
        );
        fewer.signals[2].error = None;
        assert_eq!(
            kinds(&book.update(&fewer)),
            [(NoticeKind::Resolved, "UpgradeGateQueryError/istio/c".into())]
        );
        let back = book.update(&snapshot(
            3,
            Decision::Go,
            &[("a", Status::Ok), ("b", Status::Ok), ("c", Status::Ok)],
        ));
        assert_eq!(
            kinds(&back),
            [
                (NoticeKind::Resolved, "UpgradeGatePhaseNoGo/istio/".into()),
                (NoticeKind::Resolved, "UpgradeGatePrometheusError//".into()),
            ]
        );
        assert_eq!(
            back.notices[1].alert.summary(),
            "Prometheus answers again: the signals it hid can be evaluated again"
        );
    }
}
