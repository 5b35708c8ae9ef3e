//! The `report` section: how much of its own history `serve` shows at `/` (`window`), and the
//! longest window `/report?from=&to=` builds on demand (`max_window`), a bound on what one
//! request may ask of Prometheus.

use std::time::Duration;

use serde::Deserialize;

use super::problems::At;

const DEFAULT_WINDOW: Duration = Duration::from_secs(6 * 3600);
const DEFAULT_MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReport {
    window: Option<String>,
    max_window: Option<String>,
}

/// The report page's windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportConfig {
    /// `/` shows the last this much of the evaluations `serve` kept.
    pub window: Duration,
    /// `/report` refuses a longer window.
    pub max_window: Duration,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            window: DEFAULT_WINDOW,
            max_window: DEFAULT_MAX_WINDOW,
        }
    }
}

pub(super) fn validate_report(raw: RawReport, at: At) -> ReportConfig {
    let positive = |key: &'static str, text: Option<String>, default: Duration| {
        let key = at.key(key);
        let d = key.duration_or(text, default);
        let whole = humantime::format_duration(d);
        match key.require(
            d >= Duration::from_secs(60) && d.subsec_nanos() == 0,
            format!("{whole} must be a whole number of seconds, at least 1m"),
        ) {
            true => d,
            false => default,
        }
    };
    ReportConfig {
        window: positive("report.window", raw.window, DEFAULT_WINDOW),
        max_window: positive("report.max_window", raw.max_window, DEFAULT_MAX_WINDOW),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::problems::Problems;

    fn validate(window: Option<&str>, max_window: Option<&str>) -> (ReportConfig, Vec<String>) {
        let problems = Problems::default();
        let raw = RawReport {
            window: window.map(String::from),
            max_window: max_window.map(String::from),
        };
        let config = validate_report(raw, problems.at("gate.yaml"));
        let problems = problems.into_vec().iter().map(|p| p.to_string()).collect();
        (config, problems)
    }

    #[test]
    fn windows_default_to_six_hours_and_a_day() {
        assert_eq!(validate(None, None), (ReportConfig::default(), vec![]));
        let (c, p) = validate(Some("2h"), Some("3d"));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.window, Duration::from_secs(7200));
        assert_eq!(c.max_window, Duration::from_secs(3 * 86400));
    }

    #[test]
    fn a_window_too_short_or_not_a_duration_is_a_problem_with_its_key() {
        let (_, p) = validate(Some("10s"), Some("soon"));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("report.window") && p[0].contains("at least 1m"),
            "{p:?}"
        );
        assert!(p[1].contains("report.max_window"), "{p:?}");
    }
}
