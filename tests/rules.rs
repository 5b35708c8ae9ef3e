//! The alerting rules in `alerts/`: valid for promtool, their unit tests pass, every rule has a
//! firing and a silent unit test case, and they only use metric names upgrade-gate exports.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const RULES: &str = "alerts/upgrade-gate.rules.yaml";
const RULES_TEST: &str = "alerts/upgrade-gate.rules.test.yaml";

/// The series a histogram is exposed as.
const HISTOGRAMS: &[&str] = &["upgrade_gate_evaluation_duration_seconds"];
const HISTOGRAM_SUFFIXES: &[&str] = &["_bucket", "_sum", "_count"];

fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(path(relative))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path(relative).display()))
}

fn promtool_bin() -> String {
    std::env::var("PROMTOOL_BIN").unwrap_or_else(|_| "promtool".to_owned())
}

/// Runs promtool with `args`; panics with its output unless it exits 0.
fn promtool(args: &[&str], file: &str) -> String {
    let output = Command::new(promtool_bin())
        .args(args)
        .arg(path(file))
        // `promtool test rules` resolves `rule_files` relative to the test file.
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{}` ({e}); install the Debian package `prometheus` or set PROMTOOL_BIN",
                promtool_bin()
            )
        });
    let text = format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "`promtool {} {file}` failed ({}):\n{text}",
        args.join(" "),
        output.status
    );
    text
}

/// Every `upgrade_gate_[a-z_]+` in `text` (no regex crate: a hand-rolled scan).
fn metric_names(text: &str) -> BTreeSet<String> {
    const PREFIX: &str = "upgrade_gate_";
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        // Only a whole word: not the tail of a longer identifier.
        let word_start = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let tail = &rest[at + PREFIX.len()..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        if word_start && len > 0 {
            names.insert(format!("{PREFIX}{}", &tail[..len]));
        }
        rest = &tail[len..];
    }
    names
}

fn is_contract_name(name: &str) -> bool {
    common::CONTRACT_METRICS.contains(&name)
        || HISTOGRAMS.iter().any(|h| {
            HISTOGRAM_SUFFIXES
                .iter()
                .any(|suffix| name == format!("{h}{suffix}"))
        })
}

/// Names of the alerting rules (`- alert: Name`).
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

/// For each `alertname:` of an `alert_rule_test`, whether that case expects alerts
/// (`exp_alerts:` followed by a list) or none (`exp_alerts: []`).
fn test_cases(tests: &str) -> Vec<(String, bool)> {
    let lines: Vec<&str> = tests
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut cases = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix("alertname:") {
            let fires = match lines.get(i + 1) {
                Some(&"exp_alerts: []") => false,
                Some(&"exp_alerts:") => true,
                other => panic!("alertname {name} is not followed by exp_alerts: {other:?}"),
            };
            cases.push((name.trim().to_owned(), fires));
        }
    }
    cases
}

#[test]
fn promtool_checks_the_rules() {
    let out = promtool(&["check", "rules"], RULES);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_unit_tests_pass() {
    let out = promtool(&["test", "rules"], RULES_TEST);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn rules_use_only_exported_metric_names() {
    for file in [RULES, RULES_TEST] {
        let names = metric_names(&read(file));
        assert!(
            !names.is_empty(),
            "no upgrade_gate_* metric found in {file}"
        );
        let unknown: Vec<&String> = names.iter().filter(|n| !is_contract_name(n)).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metric names that upgrade-gate does not export: {unknown:?}\n\
             (exported: {:?})",
            common::CONTRACT_METRICS
        );
    }
}

#[test]
fn every_rule_has_a_firing_and_a_silent_unit_test() {
    let alerts = alert_names(&read(RULES));
    let required = [
        "UpgradeGateNoGoTooLong",
        "UpgradeGateEvaluationStale",
        "UpgradeGatePrometheusErrors",
        "UpgradeGateAlertDeliveryFailing",
    ];
    for name in required {
        assert!(alerts.iter().any(|a| a == name), "{RULES} lacks {name}");
    }
    let cases = test_cases(&read(RULES_TEST));
    for alert in &alerts {
        let fires = cases.iter().any(|(n, f)| n == alert && *f);
        let silent = cases.iter().any(|(n, f)| n == alert && !*f);
        assert!(
            fires && silent,
            "{alert}: needs a case where it fires ({fires}) and one where it must not ({silent})"
        );
    }
    for (name, _) in &cases {
        assert!(
            alerts.contains(name),
            "{RULES_TEST} tests {name}, which {RULES} does not define"
        );
    }
}

#[test]
fn metric_name_scan_finds_whole_names_only() {
    let text = "rate(upgrade_gate_alerts_total{outcome=\"failed\"}[5m]) \
                my_upgrade_gate_score upgrade_gate_evaluation_duration_seconds_bucket 'upgrade_gate_x9'";
    let names: Vec<String> = metric_names(text).into_iter().collect();
    assert_eq!(
        names,
        [
            "upgrade_gate_alerts_total",
            "upgrade_gate_evaluation_duration_seconds_bucket",
            "upgrade_gate_x"
        ]
    );
    assert!(is_contract_name(
        "upgrade_gate_evaluation_duration_seconds_bucket"
    ));
    assert!(!is_contract_name("upgrade_gate_x"));
    assert!(!is_contract_name("upgrade_gate_query_errors"));
}
