//! Alerts of a fleet. Each cluster's snapshot is judged exactly as a single gate's: the book's
//! own rules raise its alerts, which then carry the cluster and its wave. Each wave that may not
//! start is one more alert (`UpgradeGateWaveBlocked`), naming what holds it back, resolved when
//! the wave may start.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::book::{
    firing_alerts, resolve, resolved_alert, resolved_at, Alert, AlertBook, AlertName, AlertStatus,
    Severity, Update,
};
use crate::engine::decide::Decision;
use crate::engine::fleet::{FleetSnapshot, WaveState};
use crate::engine::snapshot::Snapshot;

/// What one evaluation judged: a single gate's snapshot or a whole fleet's. Alerts announced
/// earlier are resolved against it.
#[derive(Debug, Clone)]
pub enum Judged {
    Gate(Arc<Snapshot>),
    Fleet(Arc<FleetSnapshot>),
}

impl Judged {
    pub fn evaluated_at(&self) -> DateTime<Utc> {
        match self {
            Judged::Gate(s) => s.evaluated_at,
            Judged::Fleet(f) => f.evaluated_at,
        }
    }

    /// A resolved notice for an alert the notification log announced (see
    /// [`super::nflog::Key::announced`]), with the state now.
    pub fn resolved(&self, announced: Alert) -> Alert {
        match self {
            Judged::Gate(s) => resolved_alert(announced, s),
            Judged::Fleet(f) => resolve_in_fleet(announced, f),
        }
    }
}

impl AlertBook {
    /// Compares `fleet` with the previous evaluation: every cluster's alerts, then every wave's.
    pub fn update_fleet(&mut self, fleet: &FleetSnapshot) -> Update {
        self.compare(firing_in_fleet(fleet), |alert| {
            resolve_in_fleet(alert, fleet)
        })
    }
}

/// Everything firing in the fleet: each cluster's alerts in wave order, then the blocked waves.
pub fn firing_in_fleet(fleet: &FleetSnapshot) -> Vec<Alert> {
    let clusters = fleet.clusters.iter().flat_map(|c| {
        firing_alerts(&c.snapshot).into_iter().map(|alert| Alert {
            cluster: Some(c.cluster.clone()),
            wave: Some(c.wave.clone()),
            ..alert
        })
    });
    let waves = fleet
        .waves
        .iter()
        .filter(|w| w.decision != Decision::Go)
        .map(|w| wave_blocked(w, fleet.evaluated_at));
    clusters.chain(waves).collect()
}

/// The alert of a wave that may not start. A warning: the clusters that hold it back raise
/// their own critical alerts; this one tells the pipeline's owners that the next wave waits.
fn wave_blocked(wave: &WaveState, at: DateTime<Utc>) -> Alert {
    Alert {
        name: AlertName::WaveBlocked,
        phases: Vec::new(),
        signal: None,
        cluster: None,
        wave: Some(wave.wave.clone()),
        severity: Severity::Warning,
        status: AlertStatus::Firing,
        starts_at: at,
        ends_at: None,
        evaluated_at: at,
        decision: Some(wave.decision),
        score: None,
        signals: Vec::new(),
        reasons: wave.reasons.clone(),
    }
}

/// The firing alert turned resolved with the fleet's state now: its cluster's snapshot, or its
/// wave's state. A cluster or wave a reload removed resolves with no state.
fn resolve_in_fleet(alert: Alert, fleet: &FleetSnapshot) -> Alert {
    if alert.name == AlertName::WaveBlocked {
        let decision = alert
            .wave
            .as_deref()
            .and_then(|w| fleet.wave(w))
            .map(|w| w.decision);
        return Alert {
            decision,
            ..resolved_at(alert, fleet.evaluated_at)
        };
    }
    match alert.cluster.as_deref().and_then(|c| fleet.cluster(c)) {
        Some(cluster) => resolve(alert, &cluster.snapshot),
        None => resolved_at(alert, fleet.evaluated_at),
    }
}

#[cfg(test)]
pub(crate) mod tests;
