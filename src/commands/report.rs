//! `upgrade-gate report`: the story of a past window as one self-contained HTML page (or
//! Markdown for a ticket), judged through the same evaluation path as `replay`
//! ([`crate::report::collect`]); in fleet mode one cluster's, one wave's or the whole fleet's
//! ([`crate::report::fleet`]).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::ValueEnum;

use super::common::{load, runtime, EXIT_CANNOT};
use super::fleet::{checked, Subject};
use crate::prometheus::source::PrometheusSource;
use crate::report::fleet::{collect_fleet, Scope};
use crate::report::{self, html, markdown};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Html,
    Markdown,
}

/// What the command was asked for.
pub struct ReportArgs {
    pub config: Option<PathBuf>,
    pub phase: Option<String>,
    /// In fleet mode: one cluster's or one wave's report rather than the whole fleet's.
    pub cluster: Option<String>,
    pub wave: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step: Option<Duration>,
    pub output: Option<PathBuf>,
    pub format: ReportFormat,
}

/// The command: load, judge the window, write the page. Exit 0, or 2 when it cannot evaluate.
pub fn run(args: ReportArgs) -> u8 {
    let mut config = match load(args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let subject = match (args.cluster, args.wave) {
        (Some(c), _) => Some(Subject::Cluster(c)),
        (None, Some(w)) => Some(Subject::Wave(w)),
        (None, None) => None,
    };
    // Without --cluster or --wave a fleet's report is the whole fleet's.
    let scope = match (&config.fleet, subject) {
        (Some(_), None) => Some(Scope::Fleet),
        (_, subject) => match checked(&config, subject) {
            Ok(None) => None,
            Ok(Some(Subject::Cluster(c))) => Some(Scope::Cluster(c)),
            Ok(Some(Subject::Wave(w) | Subject::StartWave(w))) => Some(Scope::Wave(w)),
            Err(code) => return code,
        },
    };
    if let Some(step) = args.step {
        // `for` and `stable_for` are judged at the report's grain, as `replay --step` does.
        config.evaluation.interval = step;
    }
    let phases = match report::phases(&config, args.phase.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CANNOT;
        }
    };
    let (from, to) = (args.from.timestamp(), args.to.timestamp());
    let built = match &scope {
        Some(scope) => runtime().block_on(collect_fleet(&config, phases, scope, from, to)),
        None => {
            let source = match PrometheusSource::new(&config.prometheus) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return EXIT_CANNOT;
                }
            };
            runtime().block_on(report::collect(&config, &source, phases, from, to))
        }
    };
    let report = match built {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            if matches!(
                e,
                report::ReportError::Steps(crate::evaluation::StepsError::TooManyPoints { .. })
            ) {
                eprintln!("use a larger --step");
            }
            return EXIT_CANNOT;
        }
    };
    let text = match args.format {
        ReportFormat::Html => html::render(&report),
        ReportFormat::Markdown => markdown::render(&report),
    };
    match args.output {
        None => out!("{text}"),
        Some(path) => {
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("cannot write {}: {e}", path.display());
                return EXIT_CANNOT;
            }
        }
    }
    0
}
