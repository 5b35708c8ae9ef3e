//! Karpenter: its build, NodeClaim disruptions and CloudProvider errors; and [`FailingLaunches`],
//! the trouble of the Karpenter scenario.

use super::scene::{Scene, Span, Trouble};
use super::time::{grows, Shape};
use super::writer::{labels, Writer};

const KARPENTER_VERSION: &str = "1.6.3";

/// Karpenter NodeClaim disruptions: reason (v1.2+ spelling), nodepool, capacity type, count, per second.
/// Only consolidation keeps happening; failures and drift are old.
#[rustfmt::skip]
const KARPENTER_DISRUPTIONS: &[(&str, &str, &str, f64, f64)] = &[
    ("underutilized", "general-purpose", "spot", 40.0, 1.0 / 1800.0),
    ("empty", "general-purpose", "spot", 12.0, 0.0),
    ("drifted", "general-purpose", "on-demand", 25.0, 0.0),
    ("liveness", "general-purpose", "on-demand", 1.0, 0.0),
    ("insufficient_capacity", "general-purpose", "spot", 6.0, 0.0),
];
/// Karpenter CloudProvider errors: controller, method, error, count (all old).
#[rustfmt::skip]
const KARPENTER_CLOUDPROVIDER_ERRORS: &[(&str, &str, &str, f64)] = &[
    ("nodeclaim.lifecycle", "Create", "InsufficientCapacityError", 6.0),
    ("nodeclaim.lifecycle", "Create", "", 1.0),
    ("nodeclaim.garbagecollection", "List", "", 2.0),
];

/// A Karpenter scenario: NodeClaims disrupted for one reason (reason, nodepool, capacity type)
/// `per_sec` during the trouble.
pub struct FailingLaunches {
    pub span: Span,
    pub disruption: (&'static str, &'static str, &'static str),
    pub per_sec: f64,
}

impl Trouble for FailingLaunches {
    fn span(&self) -> Option<&Span> {
        Some(&self.span)
    }

    fn disruption_rate(&self, disruption: (&str, &str, &str)) -> Option<f64> {
        (disruption == self.disruption).then_some(self.per_sec)
    }
}

/// Every Karpenter series of `scene`.
pub fn write(scene: &Scene, w: &mut Writer) {
    let (long_ago, trouble, window) = (scene.long_ago, scene.trouble, scene.window);
    w.gauge(
        "karpenter_build_info",
        &labels(&[("version", KARPENTER_VERSION)]),
        |_| Some(1.0),
    );
    for &(reason, nodepool, capacity, count, per_sec) in KARPENTER_DISRUPTIONS {
        let l = labels(&[
            ("reason", reason),
            ("nodepool", nodepool),
            ("capacity_type", capacity),
        ]);
        let disruption = (reason, nodepool, capacity);
        let failing = trouble.disruption_rate(disruption);
        let counts = grows(
            long_ago,
            count,
            Shape::changed(per_sec, failing, scene.span),
        );
        w.counter("karpenter_nodeclaims_disrupted_total", &l, |t| {
            counts(t).map(|v| v + trouble.disrupted(window, disruption, t))
        });
    }
    for &(controller, method, error, count) in KARPENTER_CLOUDPROVIDER_ERRORS {
        let l = labels(&[
            ("controller", controller),
            ("method", method),
            ("provider", "aws"),
            ("error", error),
        ]);
        w.counter(
            "karpenter_cloudprovider_errors_total",
            &l,
            grows(long_ago, count, Shape::flat(0.0)),
        );
    }
}
