//! The report as one HTML page: CSS and SVG inline, no script, nothing fetched, so that it
//! opens from a ticket attachment on a machine with no network.

use std::fmt::Write;

use super::markdown::{self, duration, utc};
use super::model::{grouped, FleetStory, Incident, PhaseStory, Report, SignalStory, State};
use super::plot;
use crate::engine::text::fmt_number;

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:1.5rem auto;max-width:1000px;color:#222;line-height:1.4}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}h3{font-size:1rem;margin:1rem 0 .2rem}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}code{font-size:.85rem}figure{margin:1rem 0}figcaption{font-size:.9rem}
.state{font-weight:600;padding:0 .3rem;border-radius:3px}.go{background:#009E73;color:#fff}.no-go{background:#D55E00;color:#fff}
.soak{background:#F0E442;color:#222}.unknown{background:#999;color:#fff}.muted{color:#666}
.legend span{margin-right:1rem}ul{margin:.2rem 0;padding-left:1.2rem}
table.incidents{width:100%;font-size:.85rem}table.incidents td{overflow-wrap:anywhere}
table.incidents td:nth-child(2),table.incidents td:nth-child(3){white-space:nowrap;overflow-wrap:normal}
tr.runbook td{border-top:none;background:#fafafa}
svg{max-width:100%;height:auto}
table.heatmap td.cell{text-align:center;min-width:5.5rem}table.heatmap td.cell small{display:block;font-weight:400}
table.heatmap td.cell.no-go{background-image:repeating-linear-gradient(45deg,transparent 0 6px,rgba(255,255,255,.25) 6px 9px)}
table.heatmap td.cell.unknown{background-image:repeating-linear-gradient(90deg,transparent 0 8px,rgba(255,255,255,.25) 8px 11px)}";

/// HTML text: `&`, `<`, `>` and quotes escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn state(s: State) -> String {
    let class = s.as_str();
    format!(
        "<span class=\"state {class}\">{}</span>",
        class.to_uppercase()
    )
}

/// The whole page.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let span = report.span;
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>upgrade-gate report {} .. {}</title><style>{STYLE}</style></head><body>\n",
        utc(span.from),
        utc(span.to)
    );
    header(&mut out, report);
    if let Some(fleet) = &report.fleet {
        heat_map(&mut out, fleet);
    }
    let _ = writeln!(out, "<h2>Phases</h2>\n<p class=\"legend\">{} healthy and stable for <code>stable_for</code> · {} healthy, not yet for <code>stable_for</code> (diagonal) · {} blocked (cross) · {} not judged (dashes). Times in UTC.</p>",
        state(State::Go), state(State::Soak), state(State::NoGo), state(State::Unknown));
    for phase in &report.phases {
        timeline(&mut out, report, phase);
    }
    let _ = writeln!(
        out,
        "<h2>Signals that were not ok ({})</h2>",
        report.signals.len()
    );
    if report.signals.is_empty() {
        out.push_str("<p>Every signal was ok throughout.</p>\n");
    }
    for signal in &report.signals {
        signal_figure(&mut out, report, signal);
    }
    let _ = writeln!(out, "<h2>Incidents ({})</h2>", report.incidents.len());
    incidents(&mut out, &report.incidents);
    out.push_str("</body></html>\n");
    out
}

fn header(out: &mut String, report: &Report) {
    let span = report.span;
    let _ = writeln!(
        out,
        "<h1>Upgrade report{}</h1>",
        report
            .subject
            .as_ref()
            .map_or_else(String::new, |s| format!(": {}", escape(s)))
    );
    let _ = writeln!(
        out,
        "<table class=\"header\">\
         <tr><th>window</th><td>{} .. {} (step {}s)</td></tr>\
         <tr><th>Prometheus</th><td><code>{}</code></td></tr>\
         <tr><th>configuration</th><td><code>{}</code></td></tr></table>",
        utc(span.from),
        utc(span.to),
        span.step_secs,
        escape(&report.prometheus),
        escape(&report.config_hash)
    );
    out.push_str(
        "<table class=\"phases\"><tr><th>phase</th><th>at the end</th><th>first go</th><th>not go for</th></tr>\n",
    );
    for p in &report.phases {
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#phase-{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td></tr>",
            escape(&p.name),
            state(p.last),
            p.first_go.map_or_else(|| "never".to_string(), utc),
            duration(p.not_go_secs())
        );
    }
    out.push_str("</table>\n");
}

/// Clusters × phases, each cell's state at the end in colour, pattern and words, with how long
/// it was not go; then when each wave could start.
fn heat_map(out: &mut String, fleet: &FleetStory) {
    let _ = writeln!(
        out,
        "<h2>Clusters × phases</h2>\n<p class=\"legend\">Each cell: the worst state the phase was in on that cluster during the window (colour, pattern and word), how long it was not go in all, and its state at the end. Phases below are the clusters combined: go only when every cluster is.</p>"
    );
    out.push_str("<table class=\"heatmap\"><tr><th>cluster</th><th>wave</th>");
    for p in &fleet.phases {
        let _ = write!(out, "<th>{}</th>", escape(p));
    }
    out.push_str("</tr>\n");
    for row in &fleet.rows {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td>",
            escape(&row.cluster),
            escape(&row.wave)
        );
        for (phase, c) in fleet.phases.iter().zip(&row.cells) {
            let note = if c.not_go_secs == 0 {
                "<small>always go</small>".to_string()
            } else {
                format!(
                    "<small>not go {}</small><small>{} at the end</small>",
                    markdown::duration(c.not_go_secs),
                    c.last.as_str()
                )
            };
            let _ = write!(
                out,
                "<td class=\"cell {}\" title=\"{} {}\">{}{note}</td>",
                c.worst.as_str(),
                escape(&row.cluster),
                escape(phase),
                c.worst.as_str().to_uppercase(),
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n<h2>Waves</h2>\n<table class=\"waves\"><tr><th>wave</th><th>clusters</th><th>soak</th><th>could start</th><th>held back for</th><th>at the end</th><th>why not go at the end</th></tr>\n");
    for w in &fleet.waves {
        let reasons: String = w
            .reasons
            .iter()
            .map(|r| format!("<li>{}</li>", escape(r)))
            .collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><ul>{}</ul></td></tr>",
            escape(&w.wave),
            escape(&w.clusters.join(", ")),
            humantime::format_duration(w.soak),
            markdown::wave_start(w),
            markdown::duration(w.held_secs),
            state(markdown::decision_state(w.last)),
            reasons
        );
    }
    out.push_str("</table>\n");
}

fn timeline(out: &mut String, report: &Report, phase: &PhaseStory) {
    let _ = writeln!(
        out,
        "<section class=\"phase\" id=\"phase-{0}\"><h3>{0} <span class=\"muted\">(stable_for {1})</span></h3>",
        escape(&phase.name),
        humantime::format_duration(phase.stable_for)
    );
    let _ = writeln!(
        out,
        "<div class=\"timeline\" role=\"img\" aria-label=\"timeline of {}\">{}</div>",
        escape(&phase.name),
        plot::timeline(report.span, phase)
    );
    let changes: Vec<String> = phase
        .bands
        .iter()
        .map(|b| format!("{} {} .. {}", b.state.as_str(), utc(b.from), utc(b.to)))
        .collect();
    let _ = writeln!(
        out,
        "<details><summary>{} bands</summary><ul>{}</ul></details></section>",
        changes.len(),
        changes
            .iter()
            .map(|c| format!("<li>{}</li>", escape(c)))
            .collect::<String>()
    );
}

fn signal_figure(out: &mut String, report: &Report, s: &SignalStory) {
    let threshold = |t: &Option<crate::engine::threshold::Threshold>| {
        t.as_ref()
            .map_or_else(|| "none".to_string(), |t| escape(&t.to_string()))
    };
    let _ = write!(
        out,
        "<figure class=\"signal\" id=\"signal-{0}\"><figcaption><strong>{0}</strong>{1} · worst status <strong>{2}</strong> · warn <code>{3}</code> · fail <code>{4}</code> · phases {5}",
        escape(&s.name),
        if s.critical { " (critical)" } else { "" },
        s.worst.as_str(),
        threshold(&s.warn),
        threshold(&s.fail),
        escape(&s.phases.join(", "))
    );
    if let Some(d) = &s.description {
        let _ = write!(out, "<br>{}", escape(d));
    }
    if !s.offenders.is_empty() {
        out.push_str("<br>top offenders: <ul>");
        for (labels, worst, steps) in &s.offenders {
            let _ = write!(
                out,
                "<li><code>{}</code> worst {} ({} steps)</li>",
                escape(labels),
                fmt_number(*worst),
                steps
            );
        }
        out.push_str("</ul>");
    }
    if let Some(r) = &s.runbook {
        let _ = write!(out, "runbook: {}", escape(r));
    }
    let _ = writeln!(
        out,
        "</figcaption>{}</figure>",
        plot::signal(report.span, s)
    );
}

fn incidents(out: &mut String, incidents: &[Incident]) {
    if incidents.is_empty() {
        out.push_str("<p>No phase was ever not go.</p>\n");
        return;
    }
    out.push_str("<table class=\"incidents\"><tr><th>phases</th><th>start</th><th>end</th><th>duration</th><th>signals</th><th>worst offenders</th></tr>\n");
    for (phases, i) in grouped(incidents) {
        let (end, signals) = (markdown::end(i), escape(&markdown::signals(i)));
        let offenders: String = i
            .offenders
            .iter()
            .map(|(s, l, v)| {
                format!(
                    "<li>{}: <code>{}</code> {}</li>",
                    escape(s),
                    escape(l),
                    fmt_number(*v)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><ul>{}</ul></td></tr>",
            escape(&phases.join(", ")),
            utc(i.start),
            end,
            duration(i.end - i.start),
            signals,
            offenders
        );
        // The runbook under its incident, the width of the table: it is what the reader acts on.
        for (signal, runbook) in &i.runbooks {
            let _ = writeln!(
                out,
                "<tr class=\"runbook\"><td colspan=\"6\">runbook for {}: {}</td></tr>",
                escape(signal),
                escape(runbook)
            );
        }
    }
    out.push_str("</table>\n");
}
