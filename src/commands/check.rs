//! `upgrade-gate check`: one evaluation, printed. Exit 0 go, 1 no-go, 2 unknown (a signal could
//! not be evaluated and nothing known blocks) or cannot evaluate at all.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::ValueEnum;

use super::common::{load_single_cluster, runtime, EXIT_CANNOT, EXIT_NO_GO};
use crate::engine::decide::Decision;
use crate::engine::pack::ALL_PHASES;
use crate::engine::text::terminal::verdict_text;
use crate::evaluation::evaluate;
use crate::prometheus::source::PrometheusSource;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

pub fn run(
    path: Option<PathBuf>,
    phase: Option<String>,
    at: Option<DateTime<Utc>>,
    output: Output,
) -> u8 {
    let mut config = match load_single_cluster(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let phase = phase.unwrap_or_else(|| ALL_PHASES.to_string());
    if config.pack.phase(&phase).is_none() {
        eprintln!(
            "unknown phase {phase:?}; known phases: {}",
            config.pack.phase_names().join(", ")
        );
        return EXIT_CANNOT;
    }
    // Only the phase's own signals need querying.
    config.pack.signals.retain(|s| s.in_phase(&phase));
    let source = match PrometheusSource::new(&config.prometheus) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CANNOT;
        }
    };
    let at = at.unwrap_or_else(Utc::now).timestamp();
    let snapshot = runtime().block_on(evaluate(&config, &source, at));
    let verdict = snapshot
        .verdict(&phase)
        .expect("the snapshot judges every known phase");
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(verdict).expect("a verdict serializes")
        ),
        Output::Text => print!("{}", verdict_text(verdict)),
    }
    match verdict.decision {
        Decision::Go => 0,
        Decision::NoGo => EXIT_NO_GO,
        Decision::Unknown => EXIT_CANNOT,
    }
}
