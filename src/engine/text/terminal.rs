//! How a verdict reads in a terminal (`check`): the decision first, then why, then the signals
//! worst first.

use std::fmt::Write;

use crate::engine::decide::{shared_errors, Verdict};
use crate::engine::text::{fmt_labels, fmt_number, fmt_with_baseline};

/// The verdict as `check` prints it: a heading line, the reasons, then a table of the signals.
pub fn verdict_text(v: &Verdict) -> String {
    let mut out = String::new();
    let decision = v.decision.heading();
    let stable = v.stable_since.map_or("not healthy".to_string(), |s| {
        format!("healthy since {}", s.to_rfc3339())
    });
    let _ = writeln!(
        out,
        "phase {}: {decision}  score {} (min {})  at {}  {stable}",
        v.phase,
        fmt_number(v.score),
        fmt_number(v.min_score),
        v.evaluated_at.to_rfc3339(),
    );
    for r in &v.reasons {
        let _ = writeln!(out, "  - {r}");
    }
    // An error many signals share is said once, in the reasons; the table points there.
    let shared = shared_errors(&v.signals);
    let rows: Vec<[String; 6]> = v
        .signals
        .iter()
        .map(|s| {
            [
                format!("{}{}", s.name, if s.critical { " *" } else { "" }),
                s.status.as_str().to_string(),
                s.value
                    .map_or("-".to_string(), |v| fmt_with_baseline(v, s.baseline)),
                s.warn.as_ref().map_or("-".to_string(), |t| t.to_string()),
                s.fail.as_ref().map_or("-".to_string(), |t| t.to_string()),
                match (&s.error, s.offenders.first()) {
                    (Some(e), _) if shared.contains_key(e.as_str()) => {
                        "(the shared cause above)".to_string()
                    }
                    (Some(e), _) => e.clone(),
                    (None, Some(o)) => fmt_labels(&o.labels),
                    (None, None) => String::new(),
                },
            ]
        })
        .collect();
    let header = [
        "SIGNAL",
        "STATUS",
        "VALUE",
        "WARN",
        "FAIL",
        "WORST SERIES / ERROR",
    ];
    table(&mut out, header, &rows);
    let _ = writeln!(out, "(* critical)");
    out
}

/// A blank line, then left-aligned columns under `header`, the last one unpadded (it may be long).
pub fn table<const N: usize>(out: &mut String, header: [&str; N], rows: &[[String; N]]) {
    let widths: Vec<usize> = (0..N.saturating_sub(1))
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let _ = writeln!(out);
    for row in std::iter::once(header.map(str::to_string)).chain(rows.iter().cloned()) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            match widths.get(i) {
                Some(w) => {
                    let _ = write!(line, "{cell:<w$}  ");
                }
                None => line.push_str(cell),
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
