//! `upgrade-gate check`: one evaluation, printed. Exit 0 go, 1 no-go, 2 unknown (a signal could
//! not be evaluated and nothing known blocks) or cannot evaluate at all.
//!
//! With a `fleet` section, one fleet evaluation (one query per signal and store), of which the
//! cluster, the wave or the wave's start asked for is printed.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::ValueEnum;

use super::common::{load, runtime, EXIT_CANNOT, EXIT_NO_GO};
use super::fleet::{self, Answer, FleetArgs, Subject};
use crate::config::Config;
use crate::engine::decide::Decision;
use crate::engine::pack::ALL_PHASES;
use crate::engine::text::terminal::verdict_text;
use crate::evaluation::evaluate;
use crate::evaluation::fleet::FleetEvaluator;
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
    fleet_args: FleetArgs,
) -> u8 {
    let mut config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let subject = match fleet::checked(&config, fleet_args.subject()) {
        Ok(s) => s,
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
    // Only the phase's own signals need querying; a wave's start waits on every phase.
    if !matches!(subject, Some(Subject::StartWave(_))) {
        config.pack.signals.retain(|s| s.in_phase(&phase));
    }
    if let Some(subject) = subject {
        return check_fleet(&config, &subject, &phase, at, output);
    }
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
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(verdict).expect("a verdict serializes")
        ),
        Output::Text => out!("{}", verdict_text(verdict)),
    }
    match verdict.decision {
        Decision::Go => 0,
        Decision::NoGo => EXIT_NO_GO,
        Decision::Unknown => EXIT_CANNOT,
    }
}

/// One fleet evaluation; prints the answer about `subject` as its HTTP route would.
fn check_fleet(
    config: &Config,
    subject: &Subject,
    phase: &str,
    at: Option<DateTime<Utc>>,
    output: Output,
) -> u8 {
    let mut evaluator = match FleetEvaluator::new(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CANNOT;
        }
    };
    let at = at.unwrap_or_else(Utc::now).timestamp();
    let snapshot = runtime().block_on(evaluator.evaluate(config, at));
    let answer = Answer::of(&snapshot, subject, phase)
        .expect("the fleet snapshot judges every listed cluster and phase");
    match output {
        Output::Json => outln!("{}", answer.json()),
        Output::Text => out!("{}", answer.text()),
    }
    answer.exit_code()
}
