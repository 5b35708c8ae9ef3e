//! The `fleet` section: the label that names a cluster in every series, the selector whose
//! series show that a cluster reports, the waves the clusters are upgraded in, and the clusters
//! whose metrics live in another store than the `prometheus` section's.
//!
//! A cluster in two waves, or in two backends, would be judged twice and gated inconsistently,
//! and a backend cluster in no wave would be queried and never judged; each is refused here with
//! the key to fix. So is every pack query that cannot be kept apart per cluster
//! ([`crate::engine::fleet`]), because such a query would judge one cluster by another's series.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::problems::{At, Problems};
use super::prometheus::{validate_prometheus_at, PrometheusConfig, RawPrometheus};
use super::signals::valid_name;
pub use crate::engine::fleet::Wave;
use crate::engine::fleet::{rewrite, rewrite_query, Refusal, Scope};
use crate::engine::pack::Pack;

/// What `check`, `wait` and `replay` answer to a `fleet` section until they judge clusters one
/// by one (`serve` does): judging the store as one blended cluster would hide a failing cluster.
pub const FLEET_NOT_EVALUATED: &str = "fleet mode: per-cluster evaluation is not implemented yet; \
    judging the whole store as one cluster would blend every cluster's series, so this command \
    refuses. `validate` (with --show-queries) checks a fleet configuration; remove the `fleet` \
    section to gate a single cluster";

const DEFAULT_LABEL: &str = "cluster";
const DEFAULT_PRESENCE: &str = "up";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    label: Option<String>,
    presence: Option<String>,
    #[serde(default)]
    waves: Vec<RawWave>,
    #[serde(default)]
    backends: Vec<RawBackend>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWave {
    name: Option<String>,
    #[serde(default)]
    clusters: Vec<String>,
    soak: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    name: Option<String>,
    #[serde(default)]
    prometheus: RawPrometheus,
    #[serde(default)]
    clusters: Vec<String>,
}

/// Many clusters behind one (or a few) central stores, upgraded wave after wave.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// The label that names a cluster in every series (`cluster`, as the mixins' `clusterLabel`).
    pub label: String,
    /// A selector whose series show that a cluster reports at all.
    pub presence: String,
    /// In upgrade order; every cluster is in exactly one.
    pub waves: Vec<Wave>,
    /// Stores other than the `prometheus` section's, each with the clusters it alone holds.
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub name: String,
    pub prometheus: PrometheusConfig,
    pub clusters: Vec<String>,
}

/// The clusters one store answers for: `backend` is `None` for the `prometheus` section's.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendScope<'a> {
    pub backend: Option<&'a str>,
    pub clusters: Vec<String>,
}

impl FleetConfig {
    /// Every store with the clusters it is queried for, the `prometheus` section's first (left
    /// out when the backends hold every cluster).
    pub fn scopes(&self) -> Vec<BackendScope<'_>> {
        let elsewhere = |c: &String| self.backends.iter().any(|b| b.clusters.contains(c));
        let main: Vec<String> = self
            .waves
            .iter()
            .flat_map(|w| &w.clusters)
            .filter(|c| !elsewhere(c))
            .cloned()
            .collect();
        let main = (!main.is_empty()).then_some(BackendScope {
            backend: None,
            clusters: main,
        });
        main.into_iter()
            .chain(self.backends.iter().map(|b| BackendScope {
                backend: Some(&b.name),
                clusters: b.clusters.clone(),
            }))
            .collect()
    }

    /// The presence query each store is asked once per evaluation: how many presence series
    /// every cluster has, listed or not, so that clusters no wave lists are counted too.
    pub fn presence_query(&self) -> String {
        format!("count by ({}) ({})", self.label, self.presence)
    }

    /// `query` as it is sent to the store of `scope`.
    pub fn rewrite(&self, query: &str, scope: &BackendScope) -> Result<String, Refusal> {
        let scope = Scope {
            label: &self.label,
            clusters: &scope.clusters,
        };
        rewrite_query(query, &scope)
    }
}

pub(super) fn validate_fleet(
    file: &str,
    raw: Option<RawFleet>,
    problems: &Problems,
) -> Option<FleetConfig> {
    let raw = raw?;
    let at = problems.at(file);
    let label = raw.label.unwrap_or_else(|| DEFAULT_LABEL.to_string());
    let key = at.key("fleet.label");
    if key.require(
        valid_label_name(&label),
        format!("{label:?} is not a label name (letters, digits and '_', not first a digit)"),
    ) {
        key.require(
            !label.starts_with("__"),
            format!("{label:?} starts with \"__\", which Prometheus keeps for itself"),
        );
    }
    let presence = raw.presence.unwrap_or_else(|| DEFAULT_PRESENCE.to_string());
    let key = at.key("fleet.presence");
    let selector = promql_parser::parser::parse(&presence)
        .map_err(|e| format!("invalid PromQL: {}", e.trim()))
        .and_then(|e| match e {
            promql_parser::parser::Expr::VectorSelector(_) => Ok(()),
            _ => Err(format!(
                "{presence:?} is not a series selector such as up or up{{job=\"kubelet\"}}"
            )),
        });
    key.check(selector);
    let waves = validate_waves(at, raw.waves);
    let backends = validate_backends(at, raw.backends, &waves);
    Some(FleetConfig {
        label,
        presence,
        waves,
        backends,
    })
}

fn validate_waves(at: At, raw: Vec<RawWave>) -> Vec<Wave> {
    at.key("fleet.waves").require(
        !raw.is_empty(),
        "no wave is listed; a fleet needs at least one wave of clusters",
    );
    let mut waves: Vec<Wave> = Vec::new();
    let mut wave_of: HashMap<String, String> = HashMap::new();
    for (i, w) in raw.into_iter().enumerate() {
        let key = |k: &str| at.key(format!("fleet.waves[{i}].{k}"));
        let name = match w.name.filter(|n| !n.trim().is_empty()) {
            Some(name) => {
                key("name").require(
                    valid_name(&name),
                    format!(
                        "{name:?} may only use letters, digits, '_', '-' and '.' \
                         (it is a URL path segment)"
                    ),
                );
                name
            }
            None => {
                key("name").problem("missing wave name");
                format!("#{}", i + 1)
            }
        };
        let unique = !waves.iter().any(|v| v.name == name);
        key("name").require(unique, format!("duplicate wave {name:?}"));
        key("clusters").require(
            !w.clusters.is_empty(),
            format!("wave {name:?} lists no cluster"),
        );
        let mut clusters = Vec::new();
        for (j, cluster) in w.clusters.into_iter().enumerate() {
            let key = at.key(format!("fleet.waves[{i}].clusters[{j}]"));
            if !key.require(!cluster.trim().is_empty(), "empty cluster name") {
                continue;
            }
            if let Some(first) = wave_of.get(&cluster) {
                key.problem(format!("{cluster} is already in wave {first}"));
                continue;
            }
            wave_of.insert(cluster.clone(), name.clone());
            clusters.push(cluster);
        }
        let soak = key("soak").duration_or(w.soak, Duration::ZERO);
        waves.push(Wave {
            name,
            clusters,
            soak,
        });
    }
    waves
}

fn validate_backends(at: At, raw: Vec<RawBackend>, waves: &[Wave]) -> Vec<Backend> {
    let mut backends: Vec<Backend> = Vec::new();
    let mut backend_of: HashMap<String, String> = HashMap::new();
    for (i, b) in raw.into_iter().enumerate() {
        let key = |k: &str| at.key(format!("fleet.backends[{i}].{k}"));
        let name = b.name.filter(|n| !n.trim().is_empty());
        let name = name.unwrap_or_else(|| {
            key("name").problem("missing backend name");
            format!("#{}", i + 1)
        });
        let unique = !backends.iter().any(|v| v.name == name);
        key("name").require(unique, format!("duplicate backend {name:?}"));
        let prefix = format!("fleet.backends[{i}].prometheus");
        let prometheus = validate_prometheus_at(at, &prefix, &b.prometheus);
        key("prometheus.url").require(
            b.prometheus.has_url(),
            "missing; the store that holds this backend's clusters",
        );
        key("clusters").require(
            !b.clusters.is_empty(),
            format!("backend {name:?} lists no cluster"),
        );
        let mut clusters = Vec::new();
        for (j, cluster) in b.clusters.into_iter().enumerate() {
            let key = at.key(format!("fleet.backends[{i}].clusters[{j}]"));
            let in_wave = waves.iter().any(|w| w.clusters.contains(&cluster));
            if !key.require(in_wave, format!("{cluster} is in no wave")) {
                continue;
            }
            if let Some(first) = backend_of.get(&cluster) {
                key.problem(format!("{cluster} is already in backend {first}"));
                continue;
            }
            backend_of.insert(cluster.clone(), name.clone());
            clusters.push(cluster);
        }
        backends.push(Backend {
            name,
            prometheus,
            clusters,
        });
    }
    backends
}

/// A Prometheus label name, as `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every signal whose query the fleet cannot keep apart per cluster, reported at its `query`.
pub(super) fn validate_fleet_queries(fleet: &FleetConfig, pack: &Pack, problems: &Problems) {
    // Which clusters are listed does not change what is refused; the label does.
    let clusters = [String::from("any")];
    let scope = Scope {
        label: &fleet.label,
        clusters: &clusters,
    };
    for signal in &pack.signals {
        let Ok(expr) = promql_parser::parser::parse(&signal.query) else {
            continue; // already reported as invalid PromQL
        };
        if let Err(refusal) = rewrite(expr, &scope) {
            problems
                .at(&signal.origin)
                .signal(&signal.name)
                .key("query")
                .problem(format!(
                    "fleet mode cannot keep clusters apart in this query: {refusal}"
                ));
        }
    }
}

#[cfg(test)]
mod tests;
