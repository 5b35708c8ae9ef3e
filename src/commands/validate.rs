//! `upgrade-gate validate`: the configuration, signal files, thresholds and PromQL syntax, and
//! with `--online` the metrics that Prometheus has no series of.

use std::path::PathBuf;

use chrono::Utc;

use super::common::{load, runtime, EXIT_CANNOT};
use crate::config::Config;
use crate::prometheus::online::absent;
use crate::prometheus::source::PrometheusSource;

/// How far back `validate --online` looks for a metric's series.
const ONLINE_LOOKBACK_SECS: i64 = 3600;

pub fn run(path: Option<PathBuf>, online: bool, show_queries: bool) -> u8 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    outln!(
        "valid: {} signals in {} phases ({})",
        config.pack.signals.len(),
        config.pack.phases.len(),
        config
            .pack
            .phases
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if show_queries {
        print_queries(&config);
    }
    if !online {
        return 0;
    }
    let now = Utc::now().timestamp();
    let known = PrometheusSource::new(&config.prometheus).and_then(|source| {
        runtime().block_on(source.metric_names_seen(now - ONLINE_LOOKBACK_SECS, now))
    });
    let known = match known {
        Ok(k) => k,
        Err(e) => {
            eprintln!("cannot check metrics online: {e}");
            return EXIT_CANNOT;
        }
    };
    let absent = absent(&config.pack.signals, &known);
    if absent.is_empty() {
        outln!("online: every metric the pack queries has series in Prometheus over the last hour");
        return 0;
    }
    eprintln!(
        "{} signal{} query metrics that Prometheus has no series of over the last hour:",
        absent.len(),
        if absent.len() == 1 { "" } else { "s" }
    );
    for a in &absent {
        eprintln!("  - {a}");
    }
    EXIT_CANNOT
}

/// Each signal's query as it is sent: per store in fleet mode, as written otherwise.
fn print_queries(config: &Config) {
    let indent = |text: &str| text.trim().lines().collect::<Vec<_>>().join("\n    ");
    let Some(fleet) = &config.fleet else {
        outln!("queries:");
        for signal in &config.pack.signals {
            outln!("  {}: {}", signal.name, indent(&signal.query));
        }
        return;
    };
    for scope in fleet.scopes() {
        let store = scope
            .backend
            .map_or("prometheus".to_string(), |b| format!("backend {b}"));
        outln!(
            "queries for {store} (clusters {}):",
            scope.clusters.join(", ")
        );
        let rewritten = |query: &str| match fleet.rewrite(query, &scope) {
            Ok(q) => q,
            Err(refusal) => format!("(cannot be rewritten: {refusal})"),
        };
        outln!("  presence: {}", fleet.presence_query());
        for signal in &config.pack.signals {
            outln!("  {}: {}", signal.name, rewritten(&signal.query));
        }
    }
}
