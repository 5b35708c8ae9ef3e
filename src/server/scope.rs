//! Whose verdict a request asks for: the gate's own cluster, or in fleet mode one cluster's
//! (`?cluster=`, `metadata.cluster`) or one wave's (`?wave=`, `metadata.wave`).
//!
//! Names are checked against the running configuration, as phases are, so that a typo is a 404
//! naming the known ones from the first request on, not a 503 a pipeline would retry forever. A
//! request that names no cluster in fleet mode, or one in single-cluster mode, is refused with
//! what to add or drop rather than answered for a guessed scope.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::config::FleetConfig;

/// How many known names a 404 lists: a fleet of 200 clusters is not repeated in every answer.
const LISTED: usize = 20;

/// Whose answer a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The gate's one cluster (no `fleet` section).
    Gate,
    Cluster(&'a str),
    Wave(&'a str),
}

/// What the route can answer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// A verdict: a cluster's or a wave's.
    Verdict,
    /// Signal results, which only a cluster has.
    Signals,
}

/// A request whose scope does not fit the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("this gate has no fleet section, so there is no {given} to choose; drop {given} (?{given}= or metadata.{given})")]
    NoFleet { given: &'static str },
    #[error("fleet mode: say whose verdict: add ?cluster=NAME or ?wave=NAME (a Flagger webhook: metadata.cluster or metadata.wave)")]
    NoTarget,
    #[error("fleet mode: signals are per cluster: add ?cluster=NAME")]
    NoCluster,
    #[error("give a cluster or a wave, not both")]
    Both,
    #[error("unknown cluster {name:?}; known: {}", listed(known, *more))]
    UnknownCluster {
        name: String,
        known: Vec<String>,
        more: usize,
    },
    #[error("unknown wave {name:?}; known: {}", listed(known, *more))]
    UnknownWave {
        name: String,
        known: Vec<String>,
        more: usize,
    },
    #[error("this gate has no fleet section: {route} answers only with one")]
    NotAFleet { route: &'static str },
}

/// `a, b, c and 180 more`.
fn listed(known: &[String], more: usize) -> String {
    let names = known.join(", ");
    if more == 0 {
        names
    } else {
        format!("{names} and {more} more")
    }
}

/// The first [`LISTED`] names and how many more there are.
fn capped<'a>(names: impl Iterator<Item = &'a String>) -> (Vec<String>, usize) {
    let names: Vec<&String> = names.collect();
    let known = names.iter().take(LISTED).map(|n| n.to_string()).collect();
    (known, names.len().saturating_sub(LISTED))
}

impl IntoResponse for ScopeError {
    fn into_response(self) -> Response {
        let error = self.to_string();
        let (status, body) = match self {
            ScopeError::UnknownCluster { known, more, .. } => (
                StatusCode::NOT_FOUND,
                json!({"error": error, "clusters": known, "more": more}),
            ),
            ScopeError::UnknownWave { known, more, .. } => (
                StatusCode::NOT_FOUND,
                json!({"error": error, "waves": known, "more": more}),
            ),
            ScopeError::NotAFleet { .. } => (StatusCode::NOT_FOUND, json!({"error": error})),
            _ => (StatusCode::BAD_REQUEST, json!({"error": error})),
        };
        (status, Json(body)).into_response()
    }
}

/// The target `cluster` and `wave` name under `fleet` (the running configuration's).
pub fn resolve<'a>(
    fleet: Option<&FleetConfig>,
    cluster: Option<&'a str>,
    wave: Option<&'a str>,
    serves: Serves,
) -> Result<Target<'a>, ScopeError> {
    let target = shape(fleet.is_some(), cluster, wave, serves)?;
    known(fleet, target)?;
    Ok(target)
}

/// The target asked, without looking its name up: what a poll needs before the bodies, which
/// hold only the names the last evaluation judged, are looked in. A name they lack is then
/// looked up with [`known`].
pub fn shape<'a>(
    fleet: bool,
    cluster: Option<&'a str>,
    wave: Option<&'a str>,
    serves: Serves,
) -> Result<Target<'a>, ScopeError> {
    if !fleet {
        return match (cluster, wave) {
            (None, None) => Ok(Target::Gate),
            (Some(_), _) => Err(ScopeError::NoFleet { given: "cluster" }),
            (None, Some(_)) => Err(ScopeError::NoFleet { given: "wave" }),
        };
    }
    match (cluster, wave, serves) {
        (Some(_), Some(_), _) => Err(ScopeError::Both),
        (None, None, Serves::Verdict) => Err(ScopeError::NoTarget),
        (None, _, Serves::Signals) => Err(ScopeError::NoCluster),
        (Some(name), None, _) => Ok(Target::Cluster(name)),
        (None, Some(name), Serves::Verdict) => Ok(Target::Wave(name)),
    }
}

/// Whether `fleet` lists the cluster or wave `target` names: a 404 naming the known ones if not.
pub fn known(fleet: Option<&FleetConfig>, target: Target<'_>) -> Result<(), ScopeError> {
    match (fleet, target) {
        (_, Target::Gate) | (None, _) => Ok(()),
        (Some(fleet), Target::Wave(name)) => wave_named(fleet, name).map(|_| ()),
        (Some(fleet), Target::Cluster(name)) => {
            let mut clusters = fleet.waves.iter().flat_map(|w| &w.clusters);
            if clusters.any(|c| c == name) {
                return Ok(());
            }
            let (known, more) = capped(fleet.waves.iter().flat_map(|w| &w.clusters));
            Err(ScopeError::UnknownCluster {
                name: name.to_string(),
                known,
                more,
            })
        }
    }
}

/// `name` if `fleet` lists that wave.
pub fn wave_named<'a>(fleet: &FleetConfig, name: &'a str) -> Result<&'a str, ScopeError> {
    if fleet.waves.iter().any(|w| w.name == name) {
        return Ok(name);
    }
    let (known, more) = capped(fleet.waves.iter().map(|w| &w.name));
    Err(ScopeError::UnknownWave {
        name: name.to_string(),
        known,
        more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fleet::Wave;

    fn fleet(clusters: usize) -> FleetConfig {
        let wave = |name: &str, range: std::ops::Range<usize>| Wave {
            name: name.into(),
            clusters: range.map(|i| format!("c{i}")).collect(),
            soak: std::time::Duration::ZERO,
        };
        FleetConfig {
            label: "cluster".into(),
            presence: "up".into(),
            waves: vec![wave("first", 1..2), wave("second", 2..clusters + 1)],
            backends: vec![],
        }
    }

    #[test]
    fn a_fleet_needs_one_target_and_a_gate_none() {
        let f = fleet(3);
        let v = Serves::Verdict;
        assert_eq!(
            resolve(Some(&f), Some("c2"), None, v).unwrap(),
            Target::Cluster("c2")
        );
        assert_eq!(
            resolve(Some(&f), None, Some("second"), v).unwrap(),
            Target::Wave("second")
        );
        assert!(matches!(
            resolve(Some(&f), None, None, v),
            Err(ScopeError::NoTarget)
        ));
        assert!(matches!(
            resolve(Some(&f), Some("c1"), Some("first"), v),
            Err(ScopeError::Both)
        ));
        assert!(matches!(
            resolve(Some(&f), None, Some("first"), Serves::Signals),
            Err(ScopeError::NoCluster)
        ));
        assert_eq!(resolve(None, None, None, v).unwrap(), Target::Gate);
        let refused = resolve(None, Some("c1"), None, v).unwrap_err();
        assert!(
            refused.to_string().contains("no fleet section"),
            "{refused}"
        );
        let refused = resolve(None, None, Some("w"), v)
            .unwrap_err()
            .into_response();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn an_unknown_name_is_a_404_listing_at_most_twenty() {
        let f = fleet(200);
        let refused = resolve(Some(&f), Some("c999"), None, Serves::Verdict).unwrap_err();
        let message = refused.to_string();
        assert!(
            message.starts_with("unknown cluster \"c999\"; known: c1, c2, "),
            "{message}"
        );
        assert!(message.ends_with("c20 and 180 more"), "{message}");
        let ScopeError::UnknownCluster { known, more, .. } = &refused else {
            panic!("{refused:?}")
        };
        assert_eq!((known.len(), *more), (20, 180));
        assert_eq!(refused.into_response().status(), StatusCode::NOT_FOUND);
        let refused = resolve(Some(&f), None, Some("third"), Serves::Verdict).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "unknown wave \"third\"; known: first, second"
        );
    }
}
