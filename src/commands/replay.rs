//! `upgrade-gate replay`: the decision timeline of a phase over a past window, from the same
//! evaluation code as `check` and `serve`. This is how a team tunes thresholds on the data of the
//! last upgrade: when would the gate have said no-go, why, and when would it have let the next
//! phase start.
//!
//! One range query per signal covers the whole window (plus the history its `for` and the phase's
//! `stable_for` need at the first step); every step is then judged from those answers
//! ([`crate::evaluation::evaluate_steps`]).

use std::fmt::Write;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use serde::Serialize;

use super::common::{load_single_cluster, runtime, EXIT_CANNOT};
use crate::config::Config;
use crate::engine::decide::{Decision, Verdict};
use crate::engine::text::fmt_number;
use crate::evaluation::{evaluate_steps, StepsError, MAX_POINTS};
use crate::prometheus::source::PrometheusSource;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TimelineOutput {
    Text,
    Json,
    Csv,
}

/// One step of the timeline: the verdict without its per-signal detail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub evaluated_at: DateTime<Utc>,
    pub decision: Decision,
    pub score: f64,
    pub stable_since: Option<DateTime<Utc>>,
    pub reasons: Vec<String>,
}

impl From<Verdict> for Row {
    fn from(v: Verdict) -> Self {
        Row {
            evaluated_at: v.evaluated_at,
            decision: v.decision,
            score: v.score,
            stable_since: v.stable_since,
            reasons: v.reasons,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("unknown phase {phase:?}; known phases: {known}")]
    UnknownPhase { phase: String, known: String },
    #[error("--to must be after --from")]
    EmptyWindow,
    #[error("{points} steps is more than Prometheus answers in one range query ({MAX_POINTS}); use a larger --step")]
    TooManySteps { points: i64 },
    /// A signal's query or baseline failed.
    #[error(transparent)]
    Query(StepsError),
}

impl From<StepsError> for ReplayError {
    fn from(e: StepsError) -> Self {
        match e {
            StepsError::TooManyPoints { points } => ReplayError::TooManySteps { points },
            other => ReplayError::Query(other),
        }
    }
}

/// The verdict of `phase` at every step from `from` to `to`, oldest first. The step is the
/// config's evaluation interval.
pub async fn replay(
    config: &Config,
    source: &PrometheusSource,
    phase: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Row>, ReplayError> {
    let Some(phase) = config.pack.phase(phase) else {
        return Err(ReplayError::UnknownPhase {
            phase: phase.to_string(),
            known: config.pack.phase_names().join(", "),
        });
    };
    if to <= from {
        return Err(ReplayError::EmptyWindow);
    }
    let verdicts = evaluate_steps(config, source, &phase, from, to).await?;
    Ok(verdicts.into_iter().map(Row::from).collect())
}

/// The command: load, replay, print.
pub fn run(
    path: Option<PathBuf>,
    phase: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Option<Duration>,
    output: TimelineOutput,
) -> u8 {
    let mut config = match load_single_cluster(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(step) = step {
        // `for` and `stable_for` are judged at the replay's grain.
        config.evaluation.interval = step;
    }
    let source = match PrometheusSource::new(&config.prometheus) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CANNOT;
        }
    };
    let rows = match runtime().block_on(replay(
        &config,
        &source,
        phase,
        from.timestamp(),
        to.timestamp(),
    )) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CANNOT;
        }
    };
    match output {
        TimelineOutput::Text => out!("{}", text(phase, &rows, config.evaluation.step_secs())),
        TimelineOutput::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        ),
        TimelineOutput::Csv => out!("{}", csv(&rows)),
    }
    0
}

/// The timeline as a person reads it: the first step, then every change of decision, then a
/// summary of how long the phase was no-go and when it would have been allowed to go on.
pub fn text(phase: &str, rows: &[Row], step_secs: i64) -> String {
    let mut out = String::new();
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return out;
    };
    let _ = writeln!(
        out,
        "phase {phase}, {} .. {}, step {}s",
        first.evaluated_at.to_rfc3339(),
        last.evaluated_at.to_rfc3339(),
        step_secs
    );
    let mut previous: Option<Decision> = None;
    for row in rows {
        if previous == Some(row.decision) {
            continue;
        }
        previous = Some(row.decision);
        let _ = write!(
            out,
            "{}  {:<5}  score {}",
            row.evaluated_at.to_rfc3339(),
            row.decision.heading(),
            fmt_number(row.score)
        );
        for reason in &row.reasons {
            let _ = write!(out, "\n    - {reason}");
        }
        let _ = writeln!(out);
    }
    let steps = |decision| rows.iter().filter(|r| r.decision == decision).count() as u64;
    let lasting = |steps: u64| {
        humantime::format_duration(std::time::Duration::from_secs(steps * step_secs as u64))
    };
    let no_go = steps(Decision::NoGo);
    let _ = write!(
        out,
        "no-go at {no_go} of {} steps ({} in all); ",
        rows.len(),
        lasting(no_go)
    );
    // Steps at which a query errored: neither go nor a known failure.
    let unknown = steps(Decision::Unknown);
    if unknown > 0 {
        let _ = write!(
            out,
            "unknown at {unknown} steps ({} in all); ",
            lasting(unknown)
        );
    }
    match last.decision {
        Decision::Go => {
            let since = rows
                .iter()
                .rposition(|r| r.decision != Decision::Go)
                .map(|i| rows[i + 1].evaluated_at);
            match since {
                Some(t) => {
                    let _ = writeln!(out, "go from {} to the end.", t.to_rfc3339());
                }
                None => {
                    let _ = writeln!(out, "go throughout.");
                }
            }
        }
        Decision::NoGo => {
            let _ = writeln!(out, "still no-go at the end.");
        }
        Decision::Unknown => {
            let _ = writeln!(out, "still unknown at the end.");
        }
    }
    out
}

/// One line per step: `evaluated_at,decision,score,stable_since,reasons` (reasons joined by ` | `).
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from("evaluated_at,decision,score,stable_since,reasons\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{}",
            r.evaluated_at.to_rfc3339(),
            r.decision.as_str(),
            fmt_number(r.score),
            r.stable_since.map(|t| t.to_rfc3339()).unwrap_or_default(),
            csv_field(&r.reasons.join(" | "))
        );
    }
    out
}

/// RFC 4180 quoting: fields with commas, quotes or newlines are quoted, quotes doubled.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(minute: i64, decision: Decision, reasons: &[&str]) -> Row {
        Row {
            evaluated_at: DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap(),
            decision,
            score: if decision == Decision::Go {
                100.0
            } else {
                50.0
            },
            stable_since: None,
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn text_shows_changes_and_when_go_came_back() {
        let rows = [
            row(0, Decision::Go, &[]),
            row(1, Decision::NoGo, &["signal \"a\" is fail"]),
            row(2, Decision::NoGo, &["signal \"a\" is fail"]),
            row(3, Decision::Go, &[]),
        ];
        let t = text("istio", &rows, 60);
        assert_eq!(
            t,
            "phase istio, 2027-01-15T08:00:00+00:00 .. 2027-01-15T08:03:00+00:00, step 60s\n\
             2027-01-15T08:00:00+00:00  GO     score 100\n\
             2027-01-15T08:01:00+00:00  NO-GO  score 50\n    - signal \"a\" is fail\n\
             2027-01-15T08:03:00+00:00  GO     score 100\n\
             no-go at 2 of 4 steps (2m in all); go from 2027-01-15T08:03:00+00:00 to the end.\n"
        );
    }

    #[test]
    fn text_counts_unknown_steps_apart_from_no_go() {
        let rows = [
            row(0, Decision::NoGo, &["signal \"a\" is fail"]),
            row(
                1,
                Decision::Unknown,
                &["signal \"a\" could not be evaluated: x"],
            ),
            row(
                2,
                Decision::Unknown,
                &["signal \"a\" could not be evaluated: x"],
            ),
        ];
        let t = text("istio", &rows, 60);
        assert_eq!(
            t,
            "phase istio, 2027-01-15T08:00:00+00:00 .. 2027-01-15T08:02:00+00:00, step 60s\n\
             2027-01-15T08:00:00+00:00  NO-GO  score 50\n    - signal \"a\" is fail\n\
             2027-01-15T08:01:00+00:00  UNKNOWN  score 50\n    - signal \"a\" could not be evaluated: x\n\
             no-go at 1 of 3 steps (1m in all); unknown at 2 steps (2m in all); still unknown at the end.\n"
        );
        let rows = [row(0, Decision::Unknown, &["x"]), row(1, Decision::Go, &[])];
        assert!(
            text("istio", &rows, 60).ends_with("go from 2027-01-15T08:01:00+00:00 to the end.\n"),
            "{}",
            text("istio", &rows, 60)
        );
        assert!(csv(&rows).contains(",unknown,50,,x\n"), "{}", csv(&rows));
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let rows = [row(0, Decision::NoGo, &["a, \"b\"", "c"])];
        assert_eq!(
            csv(&rows),
            "evaluated_at,decision,score,stable_since,reasons\n\
             2027-01-15T08:00:00+00:00,no_go,50,,\"a, \"\"b\"\" | c\"\n"
        );
    }
}
