//! How verdicts, numbers, labels and baselines read as text: one place, so that a terminal, a
//! Slack message, an alert's summary and a verdict's reasons say a value the same way.
//!
//! The small parts (numbers, label sets, a value beside its baseline, an error with its causes)
//! are here; how a whole verdict reads in a terminal is in [`terminal`], which imports the
//! verdict's types (the verdict's own reasons use the small parts, so they sit below it).

use std::error::Error;

use super::series::Labels;

pub mod terminal;

/// `value / baseline`, rounded to two decimals, when the baseline is not 0.
pub(super) fn ratio(value: f64, baseline: f64) -> Option<String> {
    (baseline != 0.0).then(|| fmt_number((value / baseline * 100.0).round() / 100.0))
}

/// A value beside its baseline, as tables and messages show it: `0.35 (3.5x baseline 0.1)`.
pub fn fmt_with_baseline(value: f64, baseline: Option<f64>) -> String {
    match baseline {
        None => fmt_number(value),
        Some(b) => match ratio(value, b) {
            Some(r) => format!("{} ({r}x baseline {})", fmt_number(value), fmt_number(b)),
            None => format!("{} (baseline {})", fmt_number(value), fmt_number(b)),
        },
    }
}

/// `{a="1", b="2"}` as PromQL writes it.
pub fn fmt_labels(labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// A number short enough to read: at most four decimals, no trailing zeros.
pub fn fmt_number(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// An error and each error that caused it, in one line: `a: b: c`. A transport error's own text
/// rarely says why (refused, reset, certificate); its causes do.
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    std::iter::successors(Some(e), |e| (*e).source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_labels_read_well() {
        assert_eq!(fmt_number(75.0), "75");
        assert_eq!(fmt_number(83.33333), "83.3333");
        assert_eq!(fmt_number(0.05), "0.05");
        let labels: Labels = [("b".into(), "2".into()), ("a".into(), "1".into())].into();
        assert_eq!(fmt_labels(&labels), "{a=\"1\", b=\"2\"}");
    }

    #[test]
    fn an_error_reads_with_its_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("refused")]
        struct Refused;
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed")]
        struct Connect(#[source] Refused);
        assert_eq!(error_chain(&Refused), "refused");
        assert_eq!(error_chain(&Connect(Refused)), "connect failed: refused");
    }
}
