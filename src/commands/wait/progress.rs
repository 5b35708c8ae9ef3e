//! How `wait` shows its progress: one line per poll on a terminal, and in a log (a CI job's
//! output) a line per change with a heartbeat between.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::engine::decide::Decision;
use crate::engine::text::fmt_number;

/// One poll's answer, reduced to what the progress line and the exit code need.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    Answer {
        decision: Decision,
        score: Option<f64>,
        min_score: Option<f64>,
        stable_since: Option<DateTime<Utc>>,
        stable_for: Option<String>,
        reasons: Vec<String>,
        evaluated_at: Option<DateTime<Utc>>,
    },
    /// The phase, cluster or wave does not exist, or the question does not fit the gate:
    /// waiting cannot help.
    Unanswerable(String),
    /// The gate could not answer this time (unreachable, refused the token, garbage).
    Error(String),
}

/// How often a log that has seen no change says that it is still waiting.
const HEARTBEAT: Duration = Duration::from_secs(60);

/// Progress for a log rather than a terminal (a CI job's output): a line when the decision,
/// score or reasons change, and a short heartbeat when nothing has for [`HEARTBEAT`], instead of
/// the same long line at every poll.
#[derive(Default)]
pub struct ChangeLog {
    /// What the last full line said, and when the last line of any kind was written.
    last: Option<(String, DateTime<Utc>)>,
    since: Option<DateTime<Utc>>,
}

impl ChangeLog {
    pub fn line(&mut self, phase: &str, poll: &Poll, now: DateTime<Utc>) -> Option<String> {
        let key = match poll {
            Poll::Answer {
                decision,
                score,
                reasons,
                ..
            } => format!("{decision:?} {score:?} {reasons:?}"),
            Poll::Unanswerable(message) | Poll::Error(message) => message.clone(),
        };
        match &mut self.last {
            Some((last, written)) if *last == key => {
                if now - *written < chrono::Duration::from_std(HEARTBEAT).unwrap_or_default() {
                    return None;
                }
                *written = now;
                let since = self.since.unwrap_or(now);
                let decision = match poll {
                    Poll::Answer { decision, .. } => decision.heading(),
                    Poll::Unanswerable(_) | Poll::Error(_) => "ERROR",
                };
                Some(format!(
                    "{} {phase} still {decision}, unchanged since {}",
                    now.format("%H:%M:%S"),
                    since.format("%H:%M:%S")
                ))
            }
            _ => {
                self.last = Some((key, now));
                self.since = Some(now);
                Some(progress_line(phase, poll, now))
            }
        }
    }
}

/// `10:00:15 istio NO-GO score 75/90, healthy 4m of 15m: <first reason> (+2 more)`.
pub fn progress_line(phase: &str, poll: &Poll, now: DateTime<Utc>) -> String {
    let clock = now.format("%H:%M:%S");
    match poll {
        Poll::Answer {
            decision,
            score,
            min_score,
            stable_since,
            stable_for,
            reasons,
            evaluated_at,
        } => {
            let mut line = format!("{clock} {phase} {}", decision.heading());
            if let (Some(score), Some(min)) = (score, min_score) {
                line.push_str(&format!(
                    " score {}/{}",
                    fmt_number(*score),
                    fmt_number(*min)
                ));
            }
            if let (Some(since), Some(at)) = (stable_since, evaluated_at) {
                let healthy = (*at - *since).to_std().unwrap_or_default();
                line.push_str(&format!(
                    ", healthy {}",
                    humantime::format_duration(Duration::from_secs(healthy.as_secs()))
                ));
                if let Some(needed) = stable_for {
                    line.push_str(&format!(" of {needed}"));
                }
            }
            if let Some(first) = reasons.first() {
                line.push_str(&format!(": {first}"));
                if reasons.len() > 1 {
                    line.push_str(&format!(" (+{} more)", reasons.len() - 1));
                }
            }
            line
        }
        Poll::Unanswerable(message) => format!("{clock} {phase} ERROR: {message}"),
        Poll::Error(message) => format!("{clock} {phase} ERROR: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn an_unknown_answer_reads_unknown() {
        let poll = Poll::Answer {
            decision: Decision::Unknown,
            score: None,
            min_score: None,
            stable_since: None,
            stable_for: None,
            reasons: vec!["no evaluation has finished yet".into()],
            evaluated_at: None,
        };
        let now = at("2026-11-26T10:00:15Z");
        assert_eq!(
            progress_line("istio", &poll, now),
            "10:00:15 istio UNKNOWN: no evaluation has finished yet"
        );
        let mut log = ChangeLog::default();
        assert!(log.line("istio", &poll, now).is_some());
        assert_eq!(
            log.line("istio", &poll, now + chrono::Duration::seconds(60))
                .as_deref(),
            Some("10:01:15 istio still UNKNOWN, unchanged since 10:00:15")
        );
    }

    #[test]
    fn a_log_gets_changes_and_heartbeats_not_every_poll() {
        let no_go = |reason: &str| Poll::Answer {
            decision: Decision::NoGo,
            score: Some(75.0),
            min_score: Some(90.0),
            stable_since: None,
            stable_for: Some("15m".into()),
            reasons: vec![reason.into()],
            evaluated_at: Some(at("2026-11-26T10:00:00Z")),
        };
        let mut log = ChangeLog::default();
        let t = |s: u32| at("2026-11-26T10:00:00Z") + chrono::Duration::seconds(s.into());
        assert_eq!(
            log.line("istio", &no_go("a"), t(0)).as_deref(),
            Some("10:00:00 istio NO-GO score 75/90: a")
        );
        // The same answer polled every second: silence until the heartbeat is due.
        assert!((1..60).all(|s| log.line("istio", &no_go("a"), t(s)).is_none()));
        assert_eq!(
            log.line("istio", &no_go("a"), t(60)).as_deref(),
            Some("10:01:00 istio still NO-GO, unchanged since 10:00:00")
        );
        assert!(log.line("istio", &no_go("a"), t(61)).is_none());
        // A new reason is a new line at once.
        assert_eq!(
            log.line("istio", &no_go("b"), t(62)).as_deref(),
            Some("10:01:02 istio NO-GO score 75/90: b")
        );
        assert_eq!(
            log.line("istio", &Poll::Error("down".into()), t(63))
                .as_deref(),
            Some("10:01:03 istio ERROR: down")
        );
    }

    #[test]
    fn progress_lines_read_well() {
        let poll = Poll::Answer {
            decision: Decision::NoGo,
            score: Some(75.0),
            min_score: Some(90.0),
            stable_since: Some(at("2026-11-26T09:56:00Z")),
            stable_for: Some("15m".into()),
            reasons: vec!["first".into(), "second".into(), "third".into()],
            evaluated_at: Some(at("2026-11-26T10:00:00Z")),
        };
        assert_eq!(
            progress_line("istio", &poll, at("2026-11-26T10:00:15Z")),
            "10:00:15 istio NO-GO score 75/90, healthy 4m of 15m: first (+2 more)"
        );
        assert_eq!(
            progress_line(
                "istio",
                &Poll::Error("cannot reach x".into()),
                at("2026-11-26T10:00:15Z")
            ),
            "10:00:15 istio ERROR: cannot reach x"
        );
    }
}
