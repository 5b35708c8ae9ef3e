//! `validate --online`: which metrics the pack queries that Prometheus does not have.
//!
//! After a component upgrade renames a metric, its signal quietly returns no series; with
//! `no_data: ok` it even passes. Asking Prometheus for the metric names it has seen recently, and
//! comparing them with the names each query selects, catches that before an upgrade window.

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;

use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr, VectorSelector};
use promql_parser::util::{walk_expr, ExprVisitor};

use crate::engine::pack::{NoDataPolicy, Signal};

/// Metric names a query selects by name; selectors that match names by regex are skipped.
pub fn selected_metrics(query: &str) -> BTreeSet<String> {
    struct Names(BTreeSet<String>);
    impl Names {
        fn add(&mut self, vs: &VectorSelector) {
            let by_matcher = vs
                .matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
                .map(|m| m.value.clone());
            if let Some(name) = vs.name.clone().or(by_matcher) {
                self.0.insert(name);
            }
        }
    }
    impl ExprVisitor for Names {
        type Error = Infallible;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Infallible> {
            match expr {
                Expr::VectorSelector(vs) => self.add(vs),
                Expr::MatrixSelector(ms) => self.add(&ms.vs),
                _ => {}
            }
            Ok(true)
        }
    }
    let mut names = Names(BTreeSet::new());
    if let Ok(expr) = promql_parser::parser::parse(query) {
        let _ = walk_expr(&mut names, &expr);
    }
    names.0
}

/// A signal whose query selects metrics Prometheus has no series of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absent {
    pub signal: String,
    pub origin: String,
    pub metrics: Vec<String>,
    /// With `no_data: ok` such a signal passes while seeing nothing.
    pub passes_silently: bool,
}

impl std::fmt::Display for Absent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: signal {:?}: no series of {} in Prometheus",
            self.origin,
            self.signal,
            self.metrics.join(", ")
        )?;
        if self.passes_silently {
            write!(f, "; with no_data: ok it passes while seeing nothing")?;
        }
        Ok(())
    }
}

/// The signals that select at least one metric missing from `known`.
pub fn absent(signals: &[Signal], known: &HashSet<String>) -> Vec<Absent> {
    signals
        .iter()
        .filter_map(|s| {
            let missing: Vec<String> = selected_metrics(&s.query)
                .into_iter()
                .filter(|m| !known.contains(m))
                .collect();
            (!missing.is_empty()).then(|| Absent {
                signal: s.name.clone(),
                origin: s.origin.clone(),
                metrics: missing,
                passes_silently: s.no_data == NoDataPolicy::Ok,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_selected_name() {
        let q = r#"sum by (destination_service) (rate(istio_requests_total{reporter="destination"}[5m]))
            / on() group_left max_over_time(up[1h:5m]) > 0 or {__name__="karpenter_build_info"} or {__name__=~"kube_.*"}"#;
        let names: Vec<String> = selected_metrics(q).into_iter().collect();
        assert_eq!(
            names,
            ["istio_requests_total", "karpenter_build_info", "up"]
        );
    }

    #[test]
    fn histogram_quantiles_name_the_bucket_series() {
        let q = "histogram_quantile(0.99, sum by (le, verb) (rate(apiserver_request_duration_seconds_bucket[5m])))";
        assert_eq!(
            selected_metrics(q).into_iter().collect::<Vec<_>>(),
            ["apiserver_request_duration_seconds_bucket"]
        );
    }
}
