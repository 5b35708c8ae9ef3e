//! The report as Markdown, for a change ticket or a pull request comment: the summary and the
//! incidents table, no plots.

use std::fmt::Write;
use std::time::Duration;

use chrono::DateTime;

use super::model::{grouped, Cell, FleetStory, Incident, Report, State, WaveStart};
use crate::engine::decide::Decision;
use crate::engine::text::fmt_number;

/// A time as every part of the report writes it: UTC, to the second, `Z`.
pub fn utc(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Seconds as humantime writes them (`1h 5m`); `0s` for none.
pub fn duration(secs: i64) -> String {
    humantime::format_duration(Duration::from_secs(secs.max(0) as u64)).to_string()
}

/// An incident's end, or that the window ended first.
pub fn end(i: &Incident) -> String {
    if i.ongoing {
        format!("{} (still not go)", utc(i.end))
    } else {
        utc(i.end)
    }
}

/// The signals to blame, or why there are none: the phase was soaking, or was not judged.
pub fn signals(i: &Incident) -> String {
    if i.signals.is_empty() {
        "none (soaking, or not judged)".to_string()
    } else {
        i.signals.join(", ")
    }
}

/// Under a heat map cell's worst state: how long it was not go, and how it ended.
pub fn cell_note(c: &Cell) -> String {
    if c.not_go_secs == 0 {
        "always go".to_string()
    } else {
        format!(
            "not go {}, {} at the end",
            duration(c.not_go_secs),
            c.last.as_str()
        )
    }
}

/// When a wave could first start, or that it could not within the window.
pub fn wave_start(w: &WaveStart) -> String {
    w.start
        .map_or_else(|| "not in this window".to_string(), utc)
}

/// A wave's answer as the state a band or cell shows.
pub fn decision_state(d: Decision) -> State {
    match d {
        Decision::Go => State::Go,
        Decision::NoGo => State::NoGo,
        Decision::Unknown => State::Unknown,
    }
}

/// A table cell: pipes escaped, lines joined.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let span = report.span;
    let subject = report
        .subject
        .as_ref()
        .map_or_else(String::new, |s| format!(": {s}"));
    let _ = writeln!(
        out,
        "## Upgrade report{subject} {} .. {}\n\n- Prometheus: `{}`\n- configuration: `{}`\n- step: {}s\n",
        utc(span.from),
        utc(span.to),
        report.prometheus,
        report.config_hash,
        span.step_secs
    );
    out.push_str("| phase | at the end | first go | not go for |\n| --- | --- | --- | --- |\n");
    for p in &report.phases {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(&p.name),
            p.last.as_str(),
            p.first_go.map_or_else(|| "never".to_string(), utc),
            duration(p.not_go_secs())
        );
    }
    if let Some(fleet) = &report.fleet {
        heat_map(&mut out, fleet);
    }
    let _ = writeln!(out, "\n### Incidents ({})\n", report.incidents.len());
    if report.incidents.is_empty() {
        out.push_str("No phase was ever not go.\n");
        return out;
    }
    out.push_str("| phases | start | end | duration | signals | worst offenders | runbook |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for (phases, i) in grouped(&report.incidents) {
        let (end, signals) = (end(i), signals(i));
        let offenders: Vec<String> = i
            .offenders
            .iter()
            .map(|(s, l, v)| format!("{s}: `{l}` {}", fmt_number(*v)))
            .collect();
        let runbooks: Vec<String> = i
            .runbooks
            .iter()
            .map(|(s, r)| format!("{s}: {r}"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&phases.join(", ")),
            utc(i.start),
            end,
            duration(i.end - i.start),
            cell(&signals),
            cell(&offenders.join("; ")),
            cell(&runbooks.join("; "))
        );
    }
    out
}

/// Clusters × phases as a table (the state at the end, and how long not go), then the waves.
fn heat_map(out: &mut String, fleet: &FleetStory) {
    out.push_str("\n### Clusters × phases\n\n| cluster | wave |");
    for p in &fleet.phases {
        let _ = write!(out, " {} |", cell(p));
    }
    out.push_str("\n| --- | --- |");
    out.push_str(&" --- |".repeat(fleet.phases.len()));
    out.push('\n');
    for row in &fleet.rows {
        let _ = write!(out, "| {} | {} |", cell(&row.cluster), cell(&row.wave));
        for c in &row.cells {
            let _ = write!(out, " {} ({}) |", c.worst.as_str(), cell_note(c));
        }
        out.push('\n');
    }
    out.push_str("\n### Waves\n\n| wave | clusters | soak | could start | held back for | at the end | why not go at the end |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for w in &fleet.waves {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&w.wave),
            cell(&w.clusters.join(", ")),
            humantime::format_duration(w.soak),
            wave_start(w),
            duration(w.held_secs),
            w.last.as_str(),
            cell(&w.reasons.join("; "))
        );
    }
}
