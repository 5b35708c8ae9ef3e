//! Alerts: what is firing after each evaluation, and what changed since the previous one.
//!
//! Three alerts exist: a phase that is no-go (`UpgradeGatePhaseNoGo`), a signal that fails
//! (`UpgradeGateSignalFailing`), and a signal whose query errors, which is what an unreachable
//! Prometheus looks like (`UpgradeGateQueryError`). The `all` pseudo-phase raises none: every
//! signal in it already raises its own.
//!
//! The book is pure: it is fed snapshots and answers with notices, so the rules of when to tell
//! people are tested without a network.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::engine::decide::{fmt_labels, fmt_number, fmt_with_baseline, Decision, SignalReport};
use crate::engine::evaluate::Status;
use crate::engine::pack::{NoDataPolicy, ALL_PHASES};
use crate::engine::snapshot::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum AlertName {
    #[serde(rename = "UpgradeGatePhaseNoGo")]
    PhaseNoGo,
    #[serde(rename = "UpgradeGateSignalFailing")]
    SignalFailing,
    #[serde(rename = "UpgradeGateQueryError")]
    QueryError,
}

impl AlertName {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertName::PhaseNoGo => "UpgradeGatePhaseNoGo",
            AlertName::SignalFailing => "UpgradeGateSignalFailing",
            AlertName::QueryError => "UpgradeGateQueryError",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// One alert as receivers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub name: AlertName,
    /// The phase for a phase alert; the signal's phases for a signal alert.
    pub phases: Vec<String>,
    pub signal: Option<String>,
    pub severity: Severity,
    pub status: AlertStatus,
    pub starts_at: DateTime<Utc>,
    /// When it resolved; `None` while firing.
    pub ends_at: Option<DateTime<Utc>>,
    pub evaluated_at: DateTime<Utc>,
    /// A phase alert's decision and score at `evaluated_at`.
    pub decision: Option<Decision>,
    pub score: Option<f64>,
    /// The signals that explain the alert: the phase's unhealthy ones, or the one signal.
    pub signals: Vec<SignalReport>,
    pub reasons: Vec<String>,
    /// Same for every retry of one notification, different for the next notification of the same
    /// alert, so a receiver can drop duplicates without dropping repeats.
    pub idempotency_key: String,
}

impl Alert {
    /// Identity: what Alertmanager would fingerprint from the labels.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.name.as_str(),
            self.phases.join(","),
            self.signal.as_deref().unwrap_or("")
        )
    }

    /// One line a person reads first.
    pub fn summary(&self) -> String {
        let resolved = self.status == AlertStatus::Resolved;
        match (self.name, &self.signal) {
            (AlertName::PhaseNoGo, _) => {
                let score = self.score.map_or("?".into(), fmt_number);
                if resolved {
                    format!(
                        "phase {} is GO again (score {score})",
                        self.phases.join(",")
                    )
                } else {
                    format!("phase {} is NO-GO (score {score})", self.phases.join(","))
                }
            }
            (AlertName::SignalFailing, Some(signal)) if resolved => {
                format!("signal {signal} no longer fails")
            }
            (AlertName::SignalFailing, Some(signal)) => match self.signals.first() {
                Some(r) => format!("signal {signal} fails: {}", describe(r)),
                None => format!("signal {signal} fails"),
            },
            (AlertName::QueryError, Some(signal)) if resolved => {
                format!("signal {signal} can be evaluated again")
            }
            (AlertName::QueryError, Some(signal)) => format!(
                "signal {signal} cannot be evaluated: {}",
                self.signals
                    .first()
                    .and_then(|r| r.error.as_deref())
                    .unwrap_or("query error")
            ),
            (_, None) => self.name.as_str().to_string(),
        }
    }
}

/// A signal's worst series, value and threshold, for messages: `{svc="a"} = 2 (fail > 1)`.
pub fn describe(r: &SignalReport) -> String {
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
    let detail = describe(r);
    if detail.is_empty() {
        format!("{} is {}", r.name, r.status.as_str())
    } else {
        format!("{} is {}: {detail}", r.name, r.status.as_str())
    }
}

/// What a receiver is told after one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// Started firing since the previous evaluation.
    New,
    /// Still firing, and `repeat_interval` has passed since it was last announced.
    Repeat,
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
    /// Changes and repeats, for receivers that notify people (Slack, webhooks), in order.
    pub notices: Vec<Notice>,
    /// The whole current state: every firing alert and every alert resolved just now, for
    /// receivers that keep state themselves (Alertmanager) and want it refreshed.
    pub state: Vec<Alert>,
}

struct Active {
    alert: Alert,
    last_announced: DateTime<Utc>,
    notifications: u32,
}

/// The alerts firing after the last evaluation, with when each was last announced.
#[derive(Default)]
pub struct AlertBook {
    active: BTreeMap<String, Active>,
    started: bool,
}

impl AlertBook {
    /// Compares `snapshot` with the previous one. On the first call, alerts already firing are taken
    /// as known (announced before a restart) and are only repeated after `repeat_interval`.
    pub fn update(&mut self, snapshot: &Snapshot, repeat_interval: Duration) -> Update {
        let now = snapshot.evaluated_at;
        let first = !self.started;
        self.started = true;
        let mut update = Update::default();
        let mut firing: BTreeMap<String, Alert> = firing_alerts(snapshot)
            .into_iter()
            .map(|a| (a.id(), a))
            .collect();

        let ended: Vec<String> = self
            .active
            .keys()
            .filter(|id| !firing.contains_key(*id))
            .cloned()
            .collect();
        for id in ended {
            let previous = self.active.remove(&id).expect("listed above");
            let alert = resolved(previous, snapshot);
            update.state.push(alert.clone());
            update.notices.push(Notice {
                kind: NoticeKind::Resolved,
                alert,
            });
        }

        for (id, mut alert) in std::mem::take(&mut firing) {
            let entry = self.active.remove(&id);
            let (kind, starts_at, last_announced, notifications) = match entry {
                None if first => (None, now, now, 0),
                None => (Some(NoticeKind::New), now, now, 1),
                Some(a) => {
                    let due = !repeat_interval.is_zero()
                        && (now - a.last_announced).to_std().unwrap_or_default() >= repeat_interval;
                    if due {
                        (
                            Some(NoticeKind::Repeat),
                            a.alert.starts_at,
                            now,
                            a.notifications + 1,
                        )
                    } else {
                        (None, a.alert.starts_at, a.last_announced, a.notifications)
                    }
                }
            };
            alert.starts_at = starts_at;
            alert.idempotency_key = idempotency_key(&alert, notifications);
            if let Some(kind) = kind {
                update.notices.push(Notice {
                    kind,
                    alert: alert.clone(),
                });
            }
            update.state.push(alert.clone());
            self.active.insert(
                id,
                Active {
                    alert,
                    last_announced,
                    notifications,
                },
            );
        }
        update
    }
}

fn idempotency_key(alert: &Alert, notification: u32) -> String {
    let status = match alert.status {
        AlertStatus::Firing => "firing",
        AlertStatus::Resolved => "resolved",
    };
    let digest = Sha256::digest(format!(
        "{}|{status}|{}|{notification}",
        alert.id(),
        alert.starts_at.timestamp()
    ));
    hex::encode(&digest[..16])
}

/// The firing alert as it was, turned resolved with the current decision and signal state.
fn resolved(previous: Active, snapshot: &Snapshot) -> Alert {
    let mut alert = previous.alert;
    alert.status = AlertStatus::Resolved;
    alert.ends_at = Some(snapshot.evaluated_at);
    alert.evaluated_at = snapshot.evaluated_at;
    alert.reasons.clear();
    match &alert.signal {
        None => {
            let verdict = alert.phases.first().and_then(|p| snapshot.verdict(p));
            alert.decision = verdict.map(|v| v.decision);
            alert.score = verdict.map(|v| v.score);
            alert.signals.clear();
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
    alert.idempotency_key = idempotency_key(&alert, previous.notifications + 1);
    alert
}

fn unhealthy(r: &SignalReport) -> bool {
    match r.status {
        Status::Ok => false,
        Status::NoData => r.no_data != NoDataPolicy::Ok,
        Status::Warn | Status::Fail | Status::Error => true,
    }
}

/// Everything firing in `snapshot`, phases first.
fn firing_alerts(snapshot: &Snapshot) -> Vec<Alert> {
    let base = |name, phases, signal, severity, signals| Alert {
        name,
        phases,
        signal,
        severity,
        status: AlertStatus::Firing,
        starts_at: snapshot.evaluated_at,
        ends_at: None,
        evaluated_at: snapshot.evaluated_at,
        decision: None,
        score: None,
        signals,
        reasons: Vec::new(),
        idempotency_key: String::new(),
    };
    let phases = snapshot
        .phases
        .iter()
        .filter(|v| v.phase != ALL_PHASES && v.decision == Decision::NoGo)
        .map(|v| Alert {
            decision: Some(v.decision),
            score: Some(v.score),
            reasons: v.reasons.clone(),
            ..base(
                AlertName::PhaseNoGo,
                vec![v.phase.clone()],
                None,
                Severity::Critical,
                v.signals.iter().filter(|s| unhealthy(s)).cloned().collect(),
            )
        });
    let signals = snapshot.signals.iter().filter_map(|s| {
        let (name, severity) = match s.status {
            Status::Fail if s.critical => (AlertName::SignalFailing, Severity::Critical),
            Status::Fail => (AlertName::SignalFailing, Severity::Warning),
            // The gate fails closed on errors, so an error blocks pipelines like a critical fail.
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
    phases.chain(signals).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::decide::Verdict;

    const HOUR: Duration = Duration::from_secs(3600);

    fn report(name: &str, status: Status) -> SignalReport {
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
    fn snapshot(minute: i64, decision: Decision, statuses: &[(&str, Status)]) -> Snapshot {
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

    fn kinds(update: &Update) -> Vec<(NoticeKind, String)> {
        update
            .notices
            .iter()
            .map(|n| (n.kind, n.alert.id()))
            .collect()
    }

    #[test]
    fn what_fires_at_start_is_known_not_announced() {
        let mut book = AlertBook::default();
        let u = book.update(&snapshot(0, Decision::NoGo, &[("a", Status::Fail)]), HOUR);
        assert!(u.notices.is_empty());
        let ids: Vec<_> = u.state.iter().map(|a| a.id()).collect();
        assert_eq!(
            ids,
            [
                "UpgradeGatePhaseNoGo/istio/",
                "UpgradeGateSignalFailing/istio/a"
            ],
            "the all pseudo-phase raises nothing of its own"
        );
    }

    #[test]
    fn changes_are_announced_once_and_resolve() {
        let mut book = AlertBook::default();
        book.update(
            &snapshot(0, Decision::Go, &[("a", Status::Ok), ("b", Status::Ok)]),
            HOUR,
        );
        let u = book.update(
            &snapshot(
                1,
                Decision::NoGo,
                &[("a", Status::Fail), ("b", Status::Error)],
            ),
            HOUR,
        );
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
        let same = book.update(
            &snapshot(
                2,
                Decision::NoGo,
                &[("a", Status::Fail), ("b", Status::Error)],
            ),
            HOUR,
        );
        assert!(same.notices.is_empty());
        assert_eq!(same.state.len(), 3);
        assert_eq!(same.state[0].starts_at, started);

        let u = book.update(
            &snapshot(3, Decision::Go, &[("a", Status::Ok), ("b", Status::Ok)]),
            HOUR,
        );
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
            .update(&snapshot(4, Decision::Go, &[("a", Status::Ok)]), HOUR)
            .state
            .is_empty());
    }

    #[test]
    fn still_firing_alerts_repeat_after_the_interval_with_a_new_key() {
        let mut book = AlertBook::default();
        book.update(&snapshot(0, Decision::Go, &[("a", Status::Ok)]), HOUR);
        let first = book.update(&snapshot(1, Decision::Go, &[("a", Status::Fail)]), HOUR);
        assert!(book
            .update(&snapshot(60, Decision::Go, &[("a", Status::Fail)]), HOUR)
            .notices
            .is_empty());
        let again = book.update(&snapshot(61, Decision::Go, &[("a", Status::Fail)]), HOUR);
        assert_eq!(
            kinds(&again),
            [(
                NoticeKind::Repeat,
                "UpgradeGateSignalFailing/istio/a".into()
            )]
        );
        assert_ne!(
            first.notices[0].alert.idempotency_key,
            again.notices[0].alert.idempotency_key
        );
        assert_eq!(
            first.notices[0].alert.starts_at,
            again.notices[0].alert.starts_at
        );
        // With repeat_interval 0, never again.
        let mut book = AlertBook::default();
        book.update(
            &snapshot(0, Decision::Go, &[("a", Status::Fail)]),
            Duration::ZERO,
        );
        assert!(book
            .update(
                &snapshot(600, Decision::Go, &[("a", Status::Fail)]),
                Duration::ZERO
            )
            .notices
            .is_empty());
    }

    #[test]
    fn known_alerts_at_start_repeat_after_the_interval() {
        let mut book = AlertBook::default();
        book.update(&snapshot(0, Decision::Go, &[("a", Status::Fail)]), HOUR);
        assert!(book
            .update(&snapshot(59, Decision::Go, &[("a", Status::Fail)]), HOUR)
            .notices
            .is_empty());
        let u = book.update(&snapshot(60, Decision::Go, &[("a", Status::Fail)]), HOUR);
        assert_eq!(
            kinds(&u),
            [(
                NoticeKind::Repeat,
                "UpgradeGateSignalFailing/istio/a".into()
            )]
        );
    }

    #[test]
    fn fail_to_error_is_one_resolved_and_one_new() {
        let mut book = AlertBook::default();
        book.update(&snapshot(0, Decision::Go, &[("a", Status::Fail)]), HOUR);
        let u = book.update(&snapshot(1, Decision::Go, &[("a", Status::Error)]), HOUR);
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
}
