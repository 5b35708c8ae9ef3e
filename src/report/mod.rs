//! The report: the story of an upgrade window for the people around it — each phase's go,
//! soak, no-go and unknown bands, every signal that was not ok plotted against its lines, and
//! the incidents with their offenders and runbook text — as one self-contained HTML page
//! ([`html`]) or Markdown for a ticket ([`markdown`]).
//!
//! The data ([`model`]) is built from steps judged through the same evaluation path as `replay`
//! ([`collect`]), or from what the daemon kept of its own evaluations ([`history`]); it knows no
//! HTTP and no command line, and the server imports it, never the other way round.

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::engine::pack::Phase;
use crate::evaluation::{each_step, StepsError};
use crate::prometheus::error::shown_url;
use crate::prometheus::source::PrometheusSource;
use model::{PhaseSteps, Report, Span, Step};

pub mod fleet;
pub mod history;
pub mod html;
pub mod markdown;
pub mod model;
mod plot;

/// Why a window could not be reported.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("unknown phase {phase:?}; known phases: {known}")]
    UnknownPhase { phase: String, known: String },
    #[error("--to must be after --from")]
    EmptyWindow,
    #[error(transparent)]
    Steps(#[from] StepsError),
    #[error("the configuration has no fleet section")]
    NotAFleet,
    #[error("{0}")]
    Fleet(String),
}

/// The phases a report covers: the one named, or every configured phase.
pub fn phases(config: &Config, only: Option<&str>) -> Result<Vec<Phase>, ReportError> {
    match only {
        None => Ok(config.pack.phases.clone()),
        Some(name) => match config.pack.phase(name) {
            Some(p) => Ok(vec![p]),
            None => Err(ReportError::UnknownPhase {
                phase: name.to_string(),
                known: config.pack.phase_names().join(", "),
            }),
        },
    }
}

/// Judges every step of `phases` from `from` to `to` as `replay` does (one range query per
/// signal, at the evaluation interval) and builds their report.
pub async fn collect(
    config: &Config,
    source: &PrometheusSource,
    phases: Vec<Phase>,
    from: i64,
    to: i64,
) -> Result<Report, ReportError> {
    if to <= from {
        return Err(ReportError::EmptyWindow);
    }
    let mut steps: Vec<PhaseSteps> = phases
        .into_iter()
        .map(|phase| PhaseSteps {
            phase,
            steps: Vec::new(),
        })
        .collect();
    let judged: Vec<Phase> = steps.iter().map(|p| p.phase.clone()).collect();
    each_step(config, source, &judged, from, to, |i, verdict| {
        steps[i].steps.push(Step::of(&verdict))
    })
    .await?;
    let step_secs = config.evaluation.step_secs();
    let span = Span {
        from,
        to: from + (to - from) / step_secs * step_secs,
        step_secs,
    };
    Ok(build(config, span, &steps))
}

/// The report of `span` from steps already judged, with the header this configuration gives.
pub fn build(config: &Config, span: Span, steps: &[PhaseSteps]) -> Report {
    Report::build(
        span,
        shown_url(&config.prometheus.url),
        config_hash(config),
        &config.pack,
        steps,
    )
}

/// A short digest of what decides: the phases, the signals (queries, thresholds, `for`, weights,
/// baselines) and the evaluation interval. Two reports with the same hash judged alike.
pub fn config_hash(config: &Config) -> String {
    let mut digest = Sha256::new();
    digest.update(format!("{:?}", config.pack.phases));
    digest.update(format!("{:?}", config.pack.signals));
    digest.update(config.evaluation.step_secs().to_le_bytes());
    hex::encode(&digest.finalize()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_prometheus_without_credentials_and_hashes_what_decides() {
        let mut config = crate::config::load(None).unwrap();
        config.prometheus.url = "https://gate:s3cret@prom.example/api/prom?token=abc".into();
        let span = Span {
            from: 1_800_000_000,
            to: 1_800_000_600,
            step_secs: 60,
        };
        let report = build(&config, span, &[]);
        assert_eq!(report.prometheus, "https://prom.example/api/prom");
        let page = html::render(&report);
        assert!(!page.contains("s3cret") && !page.contains("abc"), "{page}");
        assert_eq!(report.config_hash.len(), 12);
        let before = report.config_hash;
        config.pack.signals[0].fail = Some("> 12345".parse().unwrap());
        assert_ne!(build(&config, span, &[]).config_hash, before);
    }
}
