//! The notification log: what each receiver was told about each alert, and when. As
//! Alertmanager's `nflog`: entries keyed by receiver and alert (alertname, phase, signal), merged
//! last writer wins by the time of the evaluation they report on, old entries collected.
//!
//! It is pure: it answers what is due from what is firing, and merges what peers or a state file
//! bring. Where it is kept (a file, gossip) is [`super::statefile`]'s and [`super::cluster`]'s job.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::book::{Alert, AlertName, AlertStatus, Severity};

/// How long a resolved entry is kept: long enough to outvote any replica's stale view of the
/// incident, short enough that the log stays small.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How much longer than `repeat_interval` a firing entry lives: a still-firing alert's entry is
/// rewritten by its repeat, which comes after the turns and the delivery's retries; an entry nobody
/// rewrites (its alert stopped firing while no replica saw it, or a forged one) goes.
pub const FIRING_MARGIN: Duration = Duration::from_secs(3600);

/// Which entries the log keeps, from the alerts configuration in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    /// A firing entry not rewritten within this is collected.
    pub firing: Duration,
    /// The receivers configured now: entries of any other (one a reload removed) are dropped.
    /// `None` keeps every receiver's.
    pub receivers: Option<BTreeSet<String>>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            firing: RETENTION,
            receivers: None,
        }
    }
}

impl Retention {
    /// With `repeat_interval` zero (never repeat) nothing rewrites a firing entry: it lives as
    /// long as a resolved one, so an incident longer than that is announced again once a day.
    pub fn new(repeat_interval: Duration, receivers: impl IntoIterator<Item = String>) -> Self {
        Retention {
            firing: if repeat_interval.is_zero() {
                RETENTION
            } else {
                repeat_interval + FIRING_MARGIN
            },
            receivers: Some(receivers.into_iter().collect()),
        }
    }

    /// Whether the entry is to be dropped at `now`.
    fn drops(&self, key: &Key, e: &Entry, now: DateTime<Utc>) -> bool {
        let age = (now - e.at).to_std().unwrap_or_default();
        let max_age = match e.status {
            AlertStatus::Resolved => RETENTION,
            AlertStatus::Firing => self.firing,
        };
        age > max_age
            || self
                .receivers
                .as_ref()
                .is_some_and(|r| !r.contains(&key.receiver))
    }
}

/// One receiver and one alert.
///
/// In fleet mode the cluster is part of the key, so that two clusters going no-go are two
/// notices, each sent once whichever replica sends it. A single gate's keys leave `cluster` and
/// `wave` out when they serialize: its state files, gossip and seals are as they were.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub receiver: String,
    pub alertname: AlertName,
    /// The phase of a phase alert, the signal's phases joined by commas for a signal alert.
    pub phase: String,
    /// Empty for a phase alert.
    pub signal: String,
    /// The cluster of a fleet's alert; empty for a single gate and for a wave's alert.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// The cluster's wave, or the wave of a wave's alert; empty for a single gate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub wave: String,
}

impl Key {
    pub fn of(receiver: &str, alert: &Alert) -> Key {
        Key {
            receiver: receiver.to_string(),
            alertname: alert.name,
            phase: alert.phases.join(","),
            signal: alert.signal.clone().unwrap_or_default(),
            cluster: alert.cluster.clone().unwrap_or_default(),
            wave: alert.wave.clone().unwrap_or_default(),
        }
    }

    /// The firing alert this key and its entry announced, as far as the log knows it: enough to
    /// resolve it after a restart, or when a peer announced it.
    pub fn announced(&self, entry: &Entry) -> Alert {
        let some = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        Alert {
            name: self.alertname,
            phases: self
                .phase
                .split(',')
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect(),
            signal: some(&self.signal),
            cluster: some(&self.cluster),
            wave: some(&self.wave),
            severity: entry.severity,
            status: AlertStatus::Firing,
            starts_at: entry.starts_at,
            ends_at: None,
            evaluated_at: entry.starts_at,
            decision: None,
            score: None,
            signals: Vec::new(),
            reasons: Vec::new(),
        }
    }
}

/// The last notification sent for one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub status: AlertStatus,
    /// The evaluation the notification reported on; later wins when logs merge.
    pub at: DateTime<Utc>,
    /// When the incident started, as first announced; repeats and the resolution keep it.
    pub starts_at: DateTime<Utc>,
    pub severity: Severity,
    /// The idempotency key of what was sent: the same notification has the same hash everywhere.
    pub hash: String,
}

impl Entry {
    pub fn of(alert: &Alert) -> Entry {
        Entry {
            status: alert.status,
            at: alert.evaluated_at,
            starts_at: alert.starts_at,
            severity: alert.severity,
            hash: alert.idempotency_key(),
        }
    }

    /// Last writer wins; the hash breaks ties so that every replica picks the same entry.
    fn supersedes(&self, other: &Entry) -> bool {
        (self.at, &self.hash) > (other.at, &other.hash)
    }
}

/// What a receiver must be told after one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// Firing and not yet announced since it last resolved, or `repeat_interval` has passed. The
    /// alert carries the incident's start as the log knows it.
    Announce(Alert),
    /// Announced as firing, and no longer firing. Built by the caller from the entry.
    Resolve(Key, Entry),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotificationLog {
    entries: BTreeMap<Key, Entry>,
    retention: Retention,
}

impl NotificationLog {
    /// Applies from the next merge or collection on.
    pub fn set_retention(&mut self, retention: Retention) {
        self.retention = retention;
    }

    pub fn get(&self, key: &Key) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes `entry` unless the log holds a later one; says whether it was taken.
    pub fn record(&mut self, key: Key, entry: Entry) -> bool {
        match self.entries.get(&key) {
            Some(current) if !entry.supersedes(current) => false,
            _ => {
                self.entries.insert(key, entry);
                true
            }
        }
    }

    /// Merges entries from a peer or a file, leaving out those the retention would drop at
    /// `now`; returns the keys that changed.
    pub fn merge(
        &mut self,
        entries: impl IntoIterator<Item = (Key, Entry)>,
        now: DateTime<Utc>,
    ) -> Vec<Key> {
        let retention = self.retention.clone();
        entries
            .into_iter()
            .filter(|(k, e)| !retention.drops(k, e, now))
            .filter_map(|(k, e)| self.record(k.clone(), e).then_some(k))
            .collect()
    }

    /// Drops what the [`Retention`] does not keep; returns the keys.
    pub fn gc(&mut self, now: DateTime<Utc>) -> Vec<Key> {
        let old: Vec<Key> = self
            .entries
            .iter()
            .filter(|(k, e)| self.retention.drops(k, e, now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &old {
            self.entries.remove(k);
        }
        old
    }

    /// What `receiver` must be told after an evaluation at `at` found `firing` firing: resolutions
    /// first, then announcements, each in key order. An entry about an evaluation at or after
    /// `at` outvotes this one: a peer saw a newer state than this evaluation did.
    pub fn due(
        &self,
        receiver: &str,
        firing: &[Alert],
        at: DateTime<Utc>,
        repeat_interval: Duration,
    ) -> Vec<Due> {
        let mut firing_keys = BTreeSet::new();
        let mut announce = Vec::new();
        for alert in firing {
            let key = Key::of(receiver, alert);
            match self.entries.get(&key) {
                None => announce.push(alert.clone()),
                Some(e) if e.at >= at => {}
                Some(e) if e.status == AlertStatus::Resolved => announce.push(alert.clone()),
                Some(e) => {
                    let since = (at - e.at).to_std().unwrap_or_default();
                    if !repeat_interval.is_zero() && since >= repeat_interval {
                        announce.push(Alert {
                            starts_at: e.starts_at,
                            ..alert.clone()
                        });
                    }
                }
            }
            firing_keys.insert(key);
        }
        let resolve = self
            .entries
            .iter()
            .filter(|(k, e)| {
                k.receiver == receiver
                    && e.status == AlertStatus::Firing
                    && e.at < at
                    && !firing_keys.contains(*k)
            })
            .map(|(k, e)| Due::Resolve(k.clone(), e.clone()));
        let mut announce: Vec<Alert> = announce;
        announce.sort_by_key(Alert::id);
        resolve
            .chain(announce.into_iter().map(Due::Announce))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::book::tests as book_tests;
    use crate::engine::decide::Decision;
    use crate::engine::evaluate::Status;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap()
    }

    fn alert(signal: &str, minute: i64) -> Alert {
        Alert {
            name: AlertName::SignalFailing,
            phases: vec!["istio".into()],
            signal: Some(signal.into()),
            cluster: None,
            wave: None,
            severity: Severity::Critical,
            status: AlertStatus::Firing,
            starts_at: at(minute),
            ends_at: None,
            evaluated_at: at(minute),
            decision: None,
            score: None,
            signals: vec![],
            reasons: vec![],
        }
    }

    fn sent(log: &mut NotificationLog, receiver: &str, alert: &Alert) {
        assert!(log.record(Key::of(receiver, alert), Entry::of(alert)));
    }

    fn names(due: &[Due]) -> Vec<String> {
        due.iter()
            .map(|d| match d {
                Due::Announce(a) => format!("firing {}", a.signal.as_deref().unwrap()),
                Due::Resolve(k, _) => format!("resolved {}", k.signal),
            })
            .collect()
    }

    #[test]
    fn what_was_sent_is_not_due_again_until_the_repeat_interval() {
        let mut log = NotificationLog::default();
        let a = alert("a", 0);
        assert_eq!(
            names(&log.due("hook", std::slice::from_ref(&a), at(0), HOUR)),
            ["firing a"]
        );
        sent(&mut log, "hook", &a);
        assert!(log.due("hook", &[alert("a", 1)], at(1), HOUR).is_empty());
        // Another receiver has its own entries.
        assert_eq!(
            names(&log.due("slack", &[alert("a", 1)], at(1), HOUR)),
            ["firing a"]
        );
        let due = log.due("hook", &[alert("a", 60)], at(60), HOUR);
        let Due::Announce(repeat) = &due[0] else {
            panic!("{due:?}")
        };
        assert_eq!(
            repeat.starts_at,
            at(0),
            "a repeat keeps the incident's start"
        );
        assert_ne!(repeat.idempotency_key(), a.idempotency_key());
        // Zero means never.
        assert!(log
            .due("hook", &[alert("a", 600)], at(600), Duration::ZERO)
            .is_empty());
    }

    #[test]
    fn what_was_announced_and_stopped_firing_is_resolved_once() {
        let mut log = NotificationLog::default();
        sent(&mut log, "hook", &alert("a", 0));
        sent(&mut log, "hook", &alert("b", 0));
        sent(&mut log, "other", &alert("c", 0));
        let due = log.due("hook", &[alert("b", 1)], at(1), HOUR);
        assert_eq!(names(&due), ["resolved a"]);
        let Due::Resolve(key, entry) = &due[0] else {
            unreachable!()
        };
        let mut resolved = alert("a", 1);
        resolved.status = AlertStatus::Resolved;
        resolved.starts_at = entry.starts_at;
        log.record(key.clone(), Entry::of(&resolved));
        assert!(log.due("hook", &[alert("b", 2)], at(2), HOUR).is_empty());
        // Firing again is a new announcement.
        assert_eq!(
            names(&log.due("hook", &[alert("a", 3), alert("b", 3)], at(3), HOUR)),
            ["firing a"]
        );
    }

    #[test]
    fn a_newer_entry_from_a_peer_outvotes_a_stale_evaluation() {
        let mut log = NotificationLog::default();
        sent(&mut log, "hook", &alert("a", 0));
        let mut resolved = alert("a", 5);
        resolved.status = AlertStatus::Resolved;
        sent(&mut log, "hook", &resolved);
        // This replica evaluated at minute 4 and still saw it firing: the peer knows better.
        assert!(log.due("hook", &[alert("a", 4)], at(4), HOUR).is_empty());
        // An older entry does not replace a newer one.
        assert!(!log.record(Key::of("hook", &resolved), Entry::of(&alert("a", 3))));
    }

    #[test]
    fn merge_is_last_writer_wins_and_the_same_in_any_order() {
        let firing = alert("a", 0);
        let mut resolved = alert("a", 1);
        resolved.status = AlertStatus::Resolved;
        let key = Key::of("hook", &firing);
        let both = [
            (key.clone(), Entry::of(&firing)),
            (key.clone(), Entry::of(&resolved)),
        ];
        let mut one = NotificationLog::default();
        let mut two = NotificationLog::default();
        let now = at(2);
        one.merge(both.clone(), now);
        two.merge(both.into_iter().rev(), now);
        assert_eq!(one, two);
        assert_eq!(one.get(&key).unwrap().status, AlertStatus::Resolved);
        // Merging what is already there changes nothing.
        assert!(one
            .merge(two.entries().map(|(k, e)| (k.clone(), e.clone())), now)
            .is_empty());
        // Same time, different content: both sides settle on the same one.
        let mut other = Entry::of(&resolved);
        other.hash = "zzz".into();
        assert_eq!(one.merge([(key.clone(), other.clone())], now).len(), 1);
        two.merge([(key.clone(), other)], now);
        assert_eq!(one, two);
    }

    #[test]
    fn old_resolved_entries_are_collected_and_not_merged_back() {
        let mut log = NotificationLog::default();
        let mut resolved = alert("a", 0);
        resolved.status = AlertStatus::Resolved;
        sent(&mut log, "hook", &resolved);
        sent(&mut log, "hook", &alert("b", 120));
        let later = at(0) + chrono::Duration::hours(23);
        assert_eq!(log.gc(later), [], "kept within the retention");
        let later = at(0) + chrono::Duration::hours(25);
        assert_eq!(log.gc(later), [Key::of("hook", &resolved)]);
        assert_eq!(
            log.len(),
            1,
            "without a repeat_interval a firing entry stays a day"
        );
        assert_eq!(log.gc(at(120) + chrono::Duration::hours(25)).len(), 1);
        assert!(log
            .merge([(Key::of("hook", &resolved), Entry::of(&resolved))], later)
            .is_empty());
    }

    #[test]
    fn firing_entries_nobody_rewrites_are_collected_after_the_repeat_interval_and_a_margin() {
        let mut log = NotificationLog::default();
        log.set_retention(Retention::new(HOUR, ["hook".to_string()]));
        sent(&mut log, "hook", &alert("a", 0));
        sent(&mut log, "hook", &alert("b", 0));
        // b still fires and is repeated after the repeat_interval: its entry is rewritten.
        sent(&mut log, "hook", &alert("b", 60));
        let limit = at(0) + chrono::Duration::from_std(HOUR + FIRING_MARGIN).unwrap();
        assert_eq!(log.gc(limit), [], "not older than the limit yet");
        let after = limit + chrono::Duration::seconds(1);
        assert_eq!(log.gc(after), [Key::of("hook", &alert("a", 0))]);
        assert_eq!(log.len(), 1);
        // A peer's copy of the collected entry is not merged back.
        assert!(log
            .merge(
                [(Key::of("hook", &alert("a", 0)), Entry::of(&alert("a", 0)))],
                after
            )
            .is_empty());
    }

    #[test]
    fn entries_of_receivers_a_reload_removed_are_dropped() {
        let mut log = NotificationLog::default();
        sent(&mut log, "hook", &alert("a", 0));
        sent(&mut log, "gone", &alert("a", 0));
        log.set_retention(Retention::new(HOUR, ["hook".to_string()]));
        assert_eq!(log.gc(at(1)), [Key::of("gone", &alert("a", 0))]);
        assert_eq!(log.len(), 1);
        // Nor does a peer that has not reloaded yet bring them back.
        assert!(log
            .merge(
                [(Key::of("gone", &alert("b", 1)), Entry::of(&alert("b", 1)))],
                at(1)
            )
            .is_empty());
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn an_alert_announced_before_a_restart_resolves_from_what_the_log_kept() {
        let at = book_tests::snapshot(5, Decision::Go, &[("a", Status::Ok)]);
        let started = book_tests::snapshot(0, Decision::Go, &[]).evaluated_at;
        let announced = |name, signal: Option<&str>, severity| {
            let key = Key {
                receiver: "hook".into(),
                alertname: name,
                phase: "istio".into(),
                signal: signal.unwrap_or_default().into(),
                cluster: String::new(),
                wave: String::new(),
            };
            key.announced(&Entry {
                status: AlertStatus::Firing,
                at: started,
                starts_at: started,
                severity,
                hash: "h".into(),
            })
        };
        let phase = super::super::book::resolved_alert(
            announced(AlertName::PhaseNoGo, None, Severity::Critical),
            &at,
        );
        assert_eq!(phase.status, AlertStatus::Resolved);
        assert_eq!(phase.starts_at, started);
        assert_eq!(phase.ends_at, Some(at.evaluated_at));
        assert_eq!(phase.summary(), "phase istio is GO again (score 100)");
        let signal = super::super::book::resolved_alert(
            announced(AlertName::SignalFailing, Some("a"), Severity::Warning),
            &at,
        );
        assert_eq!(signal.summary(), "signal a no longer fails");
        assert_eq!(signal.signals[0].name, "a");
    }
}
