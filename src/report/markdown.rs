//! The report as Markdown, for a change ticket or a pull request comment: the summary and the
//! incidents table, no plots.

use std::fmt::Write;
use std::time::Duration;

use chrono::DateTime;

use super::model::{grouped, Incident, Report};
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

/// A table cell: pipes escaped, lines joined.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let span = report.span;
    let _ = writeln!(
        out,
        "## Upgrade report {} .. {}\n\n- Prometheus: `{}`\n- configuration: `{}`\n- step: {}s\n",
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
