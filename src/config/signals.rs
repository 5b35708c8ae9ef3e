//! Phases and signals: the signal files (or the built-in pack), each signal's query, thresholds,
//! `for`, weight and no-data policy, validated into the engine's [`Pack`].

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{File, FileFormat};
use serde::Deserialize;

use super::baseline::{BaselineSettings, RawBaseline};
use super::problems::{At, Key, Problem, Problems};
use super::read::{read_raw, whole_number};
use crate::engine::pack::{NoDataPolicy, Pack, Phase, Signal, ALL_PHASES, DEFAULT_MIN_SCORE};
use crate::engine::threshold::{Threshold, ThresholdError};

/// The default signal pack, compiled in so that the binary works without any file beside it.
pub const DEFAULT_PACK: &[(&str, &str)] = &[
    (
        "built-in queries/precheck.yaml",
        include_str!("../../queries/precheck.yaml"),
    ),
    (
        "built-in queries/karpenter.yaml",
        include_str!("../../queries/karpenter.yaml"),
    ),
    (
        "built-in queries/istio.yaml",
        include_str!("../../queries/istio.yaml"),
    ),
    (
        "built-in queries/addons.yaml",
        include_str!("../../queries/addons.yaml"),
    ),
    (
        "built-in queries/control-plane.yaml",
        include_str!("../../queries/control-plane.yaml"),
    ),
    (
        "built-in queries/nodes.yaml",
        include_str!("../../queries/nodes.yaml"),
    ),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPhase {
    name: Option<String>,
    min_score: Option<f64>,
    stable_for: Option<String>,
}

/// A signal file holds only signals; phases live in the main config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignalFile {
    #[serde(default)]
    signals: Vec<RawSignal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSignal {
    name: Option<String>,
    description: Option<String>,
    runbook: Option<String>,
    query: Option<String>,
    warn: Option<RawThreshold>,
    fail: Option<RawThreshold>,
    #[serde(rename = "for")]
    for_: Option<String>,
    weight: Option<f64>,
    critical: Option<bool>,
    no_data: Option<String>,
    baseline: Option<RawBaseline>,
    no_baseline: Option<String>,
    phases: Option<Vec<String>>,
    #[serde(default, deserialize_with = "whole_number")]
    max_series: Option<i64>,
}

/// `warn` or `fail` as written: one condition, or a list breached when any condition is.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawThreshold {
    One(String),
    Many(Vec<String>),
    /// Anything else (a bare number, a map), reported with the signal and key.
    Other(serde::de::IgnoredAny),
}

impl RawThreshold {
    fn parse(self) -> Result<Threshold, String> {
        match self {
            RawThreshold::One(text) => text.parse().map_err(|e: ThresholdError| e.to_string()),
            RawThreshold::Many(texts) => Threshold::any_of(&texts).map_err(|e| e.to_string()),
            RawThreshold::Other(_) => Err(
                "expected a condition such as \"> 0.5\" or \"> baseline * 2\", or a list of them"
                    .into(),
            ),
        }
    }
}

/// Where the signal files are: on disk, found by the config's patterns, or compiled in.
pub(super) enum SignalSources {
    Disk(Vec<PathBuf>),
    BuiltIn,
}

pub(super) fn expand_signal_files(
    config_file: &str,
    base: &Path,
    patterns: &[String],
    problems: &Problems,
) -> Vec<PathBuf> {
    let key = problems.at(config_file).key("signal_files");
    let mut files = BTreeSet::new();
    for pattern in patterns {
        let full = base.join(pattern);
        let full = full.to_string_lossy();
        let glob = glob::glob(&full).map_err(|e| format!("bad pattern {pattern:?}: {e}"));
        if let Some(paths) = key.check(glob) {
            let before = files.len();
            files.extend(paths.filter_map(Result::ok));
            key.require(
                files.len() > before,
                format!("pattern {pattern:?} matches no file (looked for {full})"),
            );
        }
    }
    files.into_iter().collect()
}

/// The phases of the main config and the signals of every signal file (or the built-in pack),
/// each signal validated where it was written.
pub(super) fn validate_pack(
    file: &str,
    baseline: BaselineSettings,
    raw_phases: Vec<RawPhase>,
    inline_signals: Vec<RawSignal>,
    signal_sources: SignalSources,
    problems: &Problems,
) -> Pack {
    let at = problems.at(file);
    let phases = validate_phases(at, raw_phases);
    let phase_names: Vec<String> = phases.iter().map(|p| p.name.clone()).collect();

    let mut raw_signals: Vec<(String, RawSignal)> = inline_signals
        .into_iter()
        .map(|s| (file.to_string(), s))
        .collect();
    let sources: Vec<(String, Result<RawSignalFile, Problem>)> = match signal_sources {
        SignalSources::Disk(paths) => paths
            .iter()
            .map(|p| {
                let name = p.display().to_string();
                let parsed = read_raw(
                    &name,
                    File::from(p.as_path()).format(FileFormat::Yaml),
                    None,
                );
                (name, parsed)
            })
            .collect(),
        SignalSources::BuiltIn => DEFAULT_PACK
            .iter()
            .map(|(name, text)| {
                let parsed = read_raw(name, File::from_str(text, FileFormat::Yaml), None);
                (name.to_string(), parsed)
            })
            .collect(),
    };
    for (name, parsed) in sources {
        match parsed {
            Ok(f) => raw_signals.extend(f.signals.into_iter().map(|s| (name.clone(), s))),
            Err(p) => at.push(p),
        }
    }

    let mut seen: HashMap<String, String> = HashMap::new();
    let mut signals = Vec::new();
    for (index, (origin, raw)) in raw_signals.into_iter().enumerate() {
        let at = problems.at(&origin);
        if let Some(signal) = validate_signal(at, index, raw, &phase_names, baseline) {
            if let Some(first) = seen.get(&signal.name) {
                at.signal(&signal.name)
                    .key("name")
                    .problem(format!("duplicate signal name; first defined in {first}"));
                continue;
            }
            seen.insert(signal.name.clone(), origin.clone());
            signals.push(signal);
        }
    }
    if signals.is_empty() && problems.is_empty() {
        at.key("signals").problem(
            "no signal is defined (inline `signals` or `signal_files`); \
             a gate with nothing to judge would always pass",
        );
    }
    for phase in &phases {
        let judged = signals.is_empty() || signals.iter().any(|s| s.in_phase(&phase.name));
        let message = format!(
            "phase {:?} has no signal; it would be go with nothing judged",
            phase.name
        );
        at.key("phases").require(judged, message);
    }

    Pack { phases, signals }
}

fn validate_phases(at: At, raw: Vec<RawPhase>) -> Vec<Phase> {
    let mut phases: Vec<Phase> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let key = |k: &str| at.key(format!("phases[{i}].{k}"));
        let Some(name) = p.name.filter(|n| !n.trim().is_empty()) else {
            key("name").problem("missing phase name");
            continue;
        };
        key("name").require(
            valid_name(&name),
            format!(
                "{name:?} may only use letters, digits, '_', '-' and '.' \
                 (it is a URL path segment)"
            ),
        );
        key("name").require(
            name != ALL_PHASES,
            format!("{ALL_PHASES:?} is reserved for the gate over every signal"),
        );
        let unique = !phases.iter().any(|q| q.name == name);
        key("name").require(unique, format!("duplicate phase {name:?}"));
        let min_score = p.min_score.unwrap_or(DEFAULT_MIN_SCORE);
        let in_range = (0.0..=100.0).contains(&min_score);
        key("min_score").require(in_range, format!("{min_score} must be between 0 and 100"));
        let stable_for = key("stable_for").duration_or(p.stable_for, Duration::ZERO);
        phases.push(Phase {
            name,
            min_score,
            stable_for,
        });
    }
    phases
}

fn validate_signal(
    at: At,
    index: usize,
    raw: RawSignal,
    phase_names: &[String],
    top_baseline: BaselineSettings,
) -> Option<Signal> {
    let Some(name) = raw.name.filter(|n| !n.trim().is_empty()) else {
        let number = format!("#{}", index + 1);
        at.signal(&number)
            .key("name")
            .problem("missing signal name");
        return None;
    };
    let at = at.signal(&name);
    let key = |k: &'static str| at.key(k);
    key("name").require(
        valid_name(&name),
        "may only use letters, digits, '_', '-' and '.'",
    );
    let query = raw.query.unwrap_or_default();
    if key("query").require(!query.trim().is_empty(), "missing PromQL query") {
        let parsed = promql_parser::parser::parse(&query);
        key("query").check(parsed.map_err(|e| format!("invalid PromQL: {}", e.trim())));
    }
    let threshold = |k: &'static str, raw: Option<RawThreshold>| match raw {
        None => (None, true),
        Some(raw) => key(k)
            .check(raw.parse())
            .map_or((None, false), |t| (Some(t), true)),
    };
    let (warn, warn_parsed) = threshold("warn", raw.warn);
    let (fail, fail_parsed) = threshold("fail", raw.fail);
    match (&warn, &fail) {
        (None, None) if warn_parsed && fail_parsed => key("fail").problem(
            "a signal needs a `warn` or a `fail` threshold, else it can never be unhealthy",
        ),
        (Some(w), Some(f)) if !w.is_not_stricter_than(f) => key("warn").problem(format!(
            "warn {w} must point the same way as fail {f} and be reached first"
        )),
        _ => {}
    }
    let weight = raw.weight.unwrap_or(1.0);
    key("weight").require(
        weight.is_finite() && weight > 0.0,
        format!("{weight} must be a number above 0"),
    );
    let read_policy = |k: &'static str, text: Option<String>, default| {
        key(k)
            .check(policy(text.as_deref(), default))
            .unwrap_or(default)
    };
    let no_data = read_policy("no_data", raw.no_data, NoDataPolicy::Fail);
    let no_baseline_set = raw.no_baseline.is_some();
    let no_baseline = read_policy("no_baseline", raw.no_baseline, NoDataPolicy::Ok);
    let relative = [&warn, &fail]
        .into_iter()
        .flatten()
        .any(|t| t.is_relative());
    key("no_baseline").require(
        relative || !no_baseline_set,
        "the signal has no relative condition (such as \"> baseline * 2\"), \
         so no series can lack a baseline",
    );
    let own_baseline = BaselineSettings::validate(raw.baseline.unwrap_or_default(), at);
    key("baseline").require(
        relative || own_baseline.is_empty(),
        "the signal has no relative condition (such as \"> baseline * 2\") to use it",
    );
    let phases = signal_phases(key("phases"), raw.phases, phase_names);
    let for_ = key("for").duration_or(raw.for_, Duration::ZERO);
    key("for").require(
        fail.is_some() || for_.is_zero(),
        "`for` applies to the fail threshold, but the signal has none",
    );
    let max_series = raw.max_series.and_then(|n| {
        let limit = usize::try_from(n).ok().filter(|&n| n >= 1);
        key("max_series").require(limit.is_some(), format!("{n} must be at least 1"));
        limit
    });
    let critical = raw.critical.unwrap_or(false);
    let origin = at.file().to_string();
    Some(Signal {
        name,
        description: raw.description,
        runbook: raw.runbook,
        query,
        warn,
        fail,
        for_,
        weight,
        critical,
        no_data,
        baseline: own_baseline.over(top_baseline),
        no_baseline,
        phases,
        origin,
        max_series,
    })
}

/// The phases a signal names (every phase when it names none), each one the config defines.
fn signal_phases(key: Key, list: Option<Vec<String>>, phase_names: &[String]) -> Vec<String> {
    let Some(list) = list else {
        return phase_names.to_vec();
    };
    key.require(
        !list.is_empty(),
        "empty list; leave the key out to put the signal in every phase",
    );
    let known = match phase_names.is_empty() {
        true => "no phase".to_string(),
        false => phase_names.join(", "),
    };
    for p in list.iter().filter(|p| !phase_names.contains(p)) {
        key.problem(format!("unknown phase {p:?}; the config defines {known}"));
    }
    list
}

/// `ok`, `warn` or `fail`, for `no_data` and `no_baseline`.
fn policy(text: Option<&str>, default: NoDataPolicy) -> Result<NoDataPolicy, String> {
    match text {
        None => Ok(default),
        Some("fail") => Ok(NoDataPolicy::Fail),
        Some("ok") => Ok(NoDataPolicy::Ok),
        Some("warn") => Ok(NoDataPolicy::Warn),
        Some(other) => Err(format!("{other:?} is not one of ok, warn, fail")),
    }
}

pub(super) fn valid_name(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
