//! Phases and signals: the signal files (or the built-in pack), each signal's query, thresholds,
//! `for`, weight and no-data policy, validated into the engine's [`Pack`].

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{File, FileFormat};
use serde::Deserialize;

use super::baseline::{BaselineSettings, RawBaseline};
use super::problems::{Problem, Problems};
use super::read::{duration_or, parse_duration, read_raw};
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
    problems: &mut Problems,
) -> Vec<PathBuf> {
    let mut files = BTreeSet::new();
    for pattern in patterns {
        let full = base.join(pattern);
        let full = full.to_string_lossy();
        match glob::glob(&full) {
            Err(e) => problems.add(
                config_file,
                None,
                Some("signal_files"),
                format!("bad pattern {pattern:?}: {e}"),
            ),
            Ok(paths) => {
                let before = files.len();
                files.extend(paths.filter_map(Result::ok));
                if files.len() == before {
                    problems.add(
                        config_file,
                        None,
                        Some("signal_files"),
                        format!("pattern {pattern:?} matches no file (looked for {full})"),
                    );
                }
            }
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
    problems: &mut Problems,
) -> Pack {
    let phases = validate_phases(file, raw_phases, problems);
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
            Err(p) => problems.0.push(p),
        }
    }

    let mut seen: HashMap<String, String> = HashMap::new();
    let mut signals = Vec::new();
    for (index, (origin, raw)) in raw_signals.into_iter().enumerate() {
        if let Some(signal) = validate_signal(&origin, index, raw, &phase_names, baseline, problems)
        {
            if let Some(first) = seen.get(&signal.name) {
                problems.add(
                    &origin,
                    Some(&signal.name),
                    Some("name"),
                    format!("duplicate signal name; first defined in {first}"),
                );
                continue;
            }
            seen.insert(signal.name.clone(), origin.clone());
            signals.push(signal);
        }
    }
    if signals.is_empty() && problems.0.is_empty() {
        problems.add(
            file,
            None,
            Some("signals"),
            "no signal is defined (inline `signals` or `signal_files`); a gate with nothing to judge would always pass".into(),
        );
    }
    for phase in &phases {
        if !signals.iter().any(|s| s.in_phase(&phase.name)) && !signals.is_empty() {
            problems.add(
                file,
                None,
                Some("phases"),
                format!(
                    "phase {:?} has no signal; it would be go with nothing judged",
                    phase.name
                ),
            );
        }
    }

    Pack { phases, signals }
}

fn validate_phases(file: &str, raw: Vec<RawPhase>, problems: &mut Problems) -> Vec<Phase> {
    let mut phases: Vec<Phase> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("phases[{i}].{k}");
        let Some(name) = p.name.filter(|n| !n.trim().is_empty()) else {
            problems.add(file, None, Some(&key("name")), "missing phase name".into());
            continue;
        };
        if !valid_name(&name) {
            problems.add(
                file,
                None,
                Some(&key("name")),
                format!("{name:?} may only use letters, digits, '_', '-' and '.' (it is a URL path segment)"),
            );
        }
        if name == ALL_PHASES {
            problems.add(
                file,
                None,
                Some(&key("name")),
                format!("{ALL_PHASES:?} is reserved for the gate over every signal"),
            );
        }
        if phases.iter().any(|q| q.name == name) {
            problems.add(
                file,
                None,
                Some(&key("name")),
                format!("duplicate phase {name:?}"),
            );
        }
        let min_score = p.min_score.unwrap_or(DEFAULT_MIN_SCORE);
        if !(0.0..=100.0).contains(&min_score) {
            problems.add(
                file,
                None,
                Some(&key("min_score")),
                format!("{min_score} must be between 0 and 100"),
            );
        }
        let stable_for = duration_or(
            file,
            &key("stable_for"),
            p.stable_for,
            Duration::ZERO,
            problems,
        );
        phases.push(Phase {
            name,
            min_score,
            stable_for,
        });
    }
    phases
}

fn validate_signal(
    origin: &str,
    index: usize,
    raw: RawSignal,
    phase_names: &[String],
    top_baseline: BaselineSettings,
    problems: &mut Problems,
) -> Option<Signal> {
    let Some(name) = raw.name.filter(|n| !n.trim().is_empty()) else {
        problems.add(
            origin,
            Some(&format!("#{}", index + 1)),
            Some("name"),
            "missing signal name".into(),
        );
        return None;
    };
    // (key, message) pairs for this signal, reported together at the end.
    let mut errors: Vec<(&str, String)> = Vec::new();
    if !valid_name(&name) {
        errors.push((
            "name",
            "may only use letters, digits, '_', '-' and '.'".into(),
        ));
    }
    let query = raw.query.unwrap_or_default();
    if query.trim().is_empty() {
        errors.push(("query", "missing PromQL query".into()));
    } else if let Err(e) = promql_parser::parser::parse(&query) {
        errors.push(("query", format!("invalid PromQL: {}", e.trim())));
    }
    let mut threshold =
        |key: &'static str, raw: Option<RawThreshold>| match raw.map(RawThreshold::parse) {
            None => (None, true),
            Some(Ok(t)) => (Some(t), true),
            Some(Err(e)) => {
                errors.push((key, e));
                (None, false)
            }
        };
    let (warn, warn_parsed) = threshold("warn", raw.warn);
    let (fail, fail_parsed) = threshold("fail", raw.fail);
    match (&warn, &fail) {
        (None, None) if warn_parsed && fail_parsed => errors.push((
            "fail",
            "a signal needs a `warn` or a `fail` threshold, else it can never be unhealthy".into(),
        )),
        (Some(w), Some(f)) if !w.is_not_stricter_than(f) => errors.push((
            "warn",
            format!("warn {w} must point the same way as fail {f} and be reached first"),
        )),
        _ => {}
    }
    let weight = raw.weight.unwrap_or(1.0);
    if !(weight.is_finite() && weight > 0.0) {
        errors.push(("weight", format!("{weight} must be a number above 0")));
    }
    let mut read_policy = |key: &'static str, text: Option<String>, default| {
        policy(text.as_deref(), default).unwrap_or_else(|message| {
            errors.push((key, message));
            default
        })
    };
    let no_data = read_policy("no_data", raw.no_data, NoDataPolicy::Fail);
    let no_baseline_set = raw.no_baseline.is_some();
    let no_baseline = read_policy("no_baseline", raw.no_baseline, NoDataPolicy::Ok);
    let relative = [&warn, &fail]
        .into_iter()
        .flatten()
        .any(|t| t.is_relative());
    if no_baseline_set && !relative {
        errors.push((
            "no_baseline",
            "the signal has no relative condition (such as \"> baseline * 2\"), so no series can lack a baseline".into(),
        ));
    }
    let (own_baseline, baseline_errors) =
        BaselineSettings::validate(raw.baseline.unwrap_or_default());
    errors.extend(baseline_errors);
    if !own_baseline.is_empty() && !relative {
        errors.push((
            "baseline",
            "the signal has no relative condition (such as \"> baseline * 2\") to use it".into(),
        ));
    }
    let phases = match raw.phases {
        None => phase_names.to_vec(),
        Some(list) => {
            if list.is_empty() {
                errors.push((
                    "phases",
                    "empty list; leave the key out to put the signal in every phase".into(),
                ));
            }
            for p in list.iter().filter(|p| !phase_names.contains(p)) {
                let known = if phase_names.is_empty() {
                    "no phase".to_string()
                } else {
                    phase_names.join(", ")
                };
                errors.push((
                    "phases",
                    format!("unknown phase {p:?}; the config defines {known}"),
                ));
            }
            list
        }
    };
    let for_ = match raw.for_.as_deref().map(parse_duration) {
        None => Duration::ZERO,
        Some(Ok(d)) => d,
        Some(Err(message)) => {
            errors.push(("for", message));
            Duration::ZERO
        }
    };
    if fail.is_none() && !for_.is_zero() {
        errors.push((
            "for",
            "`for` applies to the fail threshold, but the signal has none".into(),
        ));
    }
    let max_series = raw.max_series.and_then(|n| {
        let limit = usize::try_from(n).ok().filter(|&n| n >= 1);
        if limit.is_none() {
            errors.push(("max_series", format!("{n} must be at least 1")));
        }
        limit
    });
    for (key, message) in errors {
        problems.add(origin, Some(&name), Some(key), message);
    }
    Some(Signal {
        name,
        description: raw.description,
        runbook: raw.runbook,
        query,
        warn,
        fail,
        for_,
        weight,
        critical: raw.critical.unwrap_or(false),
        no_data,
        baseline: own_baseline.over(top_baseline),
        no_baseline,
        phases,
        origin: origin.to_string(),
        max_series,
    })
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

fn valid_name(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
