//! `upgrade-gate report`: the story of a past window as one self-contained HTML page (or
//! Markdown for a ticket), judged through the same evaluation path as `replay`
//! ([`crate::report::collect`]).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::ValueEnum;

use super::common::{load_single_cluster, runtime, EXIT_CANNOT};
use crate::prometheus::source::PrometheusSource;
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
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step: Option<Duration>,
    pub output: Option<PathBuf>,
    pub format: ReportFormat,
}

/// The command: load, judge the window, write the page. Exit 0, or 2 when it cannot evaluate.
pub fn run(args: ReportArgs) -> u8 {
    let mut config = match load_single_cluster(args.config) {
        Ok(c) => c,
        Err(code) => return code,
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
    let source = match PrometheusSource::new(&config.prometheus) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CANNOT;
        }
    };
    let built = runtime().block_on(report::collect(
        &config,
        &source,
        phases,
        args.from.timestamp(),
        args.to.timestamp(),
    ));
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
        None => print!("{text}"),
        Some(path) => {
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("cannot write {}: {e}", path.display());
                return EXIT_CANNOT;
            }
        }
    }
    0
}
