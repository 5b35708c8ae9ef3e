//! The signal pack: validated signals and phases, ready for evaluation.
//!
//! Everything here has already passed configuration validation, so the evaluator never has to
//! handle a half-parsed threshold or an unknown phase.

use std::time::Duration;

use serde::Serialize;

use super::threshold::{Direction, Threshold};

/// The bar of the `all` pseudo-phase, and of a phase that sets no `min_score`.
pub const DEFAULT_MIN_SCORE: f64 = 90.0;

/// Name of the pseudo-phase that judges every signal (`GET /gate`, `check` without `--phase`).
pub const ALL_PHASES: &str = "all";

/// What a signal that returns no series counts as. The status stays `no_data` so that a person
/// sees the query matched nothing; the policy only decides how it is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoDataPolicy {
    Ok,
    Warn,
    Fail,
}

/// Where a signal's baseline window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anchor {
    /// At this unix time, whatever the judged step: the moment before the upgrade started.
    Fixed(i64),
    /// This long before each judged step: the same time a day earlier, say.
    Moving(Duration),
}

/// How a signal's baseline is taken: where its window ends, and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaselineSpec {
    pub anchor: Anchor,
    pub window: Duration,
}

impl BaselineSpec {
    /// The moving baseline of a config that says nothing: the same hour one day earlier.
    pub const DEFAULT: BaselineSpec = BaselineSpec {
        anchor: Anchor::Moving(Duration::from_secs(86_400)),
        window: Duration::from_secs(3600),
    };
}

/// A named PromQL query with thresholds.
#[derive(Debug, Clone)]
pub struct Signal {
    pub name: String,
    pub description: Option<String>,
    pub runbook: Option<String>,
    pub query: String,
    pub warn: Option<Threshold>,
    pub fail: Option<Threshold>,
    /// The fail threshold must hold at every evaluation step of this window to count as `fail`.
    pub for_: Duration,
    pub weight: f64,
    pub critical: bool,
    pub no_data: NoDataPolicy,
    /// What a relative condition compares each series with.
    pub baseline: BaselineSpec,
    /// What a series without a baseline counts as, when the signal has a relative condition
    /// (absolute conditions still apply to it).
    pub no_baseline: NoDataPolicy,
    /// Names of the phases this signal belongs to (already resolved: never empty).
    pub phases: Vec<String>,
    /// Where the signal was defined, for messages.
    pub origin: String,
    /// Most series its query may return (`max_series`), when it overrides the evaluation's.
    pub max_series: Option<usize>,
}

impl Signal {
    /// The direction in which this signal's values get worse: the fail threshold's, else warn's.
    pub fn direction(&self) -> Direction {
        self.fail
            .as_ref()
            .or(self.warn.as_ref())
            .map_or(Direction::HigherIsWorse, |t| t.direction())
    }

    pub fn in_phase(&self, phase: &str) -> bool {
        phase == ALL_PHASES || self.phases.iter().any(|p| p == phase)
    }
}

/// A named set of signals with its own bar and soak time.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    pub min_score: f64,
    /// How long the phase must have been healthy before it is `go`.
    pub stable_for: Duration,
}

/// The phases and signals the gate judges.
#[derive(Debug, Clone)]
pub struct Pack {
    pub phases: Vec<Phase>,
    pub signals: Vec<Signal>,
}

impl Pack {
    /// The phase by name, including the `all` pseudo-phase (every signal, default bar, no soak).
    pub fn phase(&self, name: &str) -> Option<Phase> {
        if name == ALL_PHASES {
            return Some(Phase {
                name: ALL_PHASES.to_string(),
                min_score: DEFAULT_MIN_SCORE,
                stable_for: Duration::ZERO,
            });
        }
        self.phases.iter().find(|p| p.name == name).cloned()
    }

    /// Every phase a request may name, `all` last.
    pub fn phase_names(&self) -> Vec<String> {
        self.phases
            .iter()
            .map(|p| p.name.clone())
            .chain(std::iter::once(ALL_PHASES.to_string()))
            .collect()
    }
}
