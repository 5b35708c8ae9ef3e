//! `al2023-migration`: AL2 nodes on the old kubelet replaced one by one by AL2023 nodes on 1.34,
//! through Karpenter drift. No span of trouble: the nodes phase is no-go until the last old node
//! is gone and the phase has soaked, and the timeline says when each one goes.

use crate::simulate::model::nodes::{AL2023_IMAGE, AL2023_KERNEL, JOIN_SECS, NODE_AGE_SECS};
use crate::simulate::model::scene::{Node, Trouble, K8S_VERSION};
use crate::simulate::model::time::Window;

/// A migrated node is deleted this long after its replacement is Ready (cordon, drain, terminate).
const DRAIN_SECS: i64 = 60;
pub(crate) const AL2_IMAGE: &str = "Amazon Linux 2";
const AL2_KERNEL: &str = "5.10.240-238.959.amzn2.x86_64";
/// The kubelet of the AL2 nodes that the migration replaces.
pub(crate) const OLD_KUBELET: &str = "v1.32.9-eks-a737599";

/// AL2 nodes (name, aws-node pod) on the old kubelet, each deleted at a fraction of the window,
/// replaced by Karpenter drift with an AL2023 node (name, aws-node pod) on 1.34 that was created
/// [`JOIN_SECS`] + [`DRAIN_SECS`] before. The migration started before the window: the first old
/// node went at -30% (6 minutes before a 20-minute window), long enough for Prometheus' 5-minute
/// lookback to let go of it, so from the window's start the count of old nodes is below its
/// maximum of the last hour and `nodes_migration_stalled` stays quiet (given that history, e.g.
/// backfilled before a live simulator). The others go one by one, the last at 40% of the window,
/// so the nodes phase can soak (`stable_for`) before the window ends.
#[rustfmt::skip]
pub(crate) const MIGRATION: &[(&str, &str, f64, &str, &str)] = &[
    ("ip-10-0-21-14.ap-northeast-2.compute.internal", "aws-node-2mfjx", -0.3,
     "ip-10-0-31-82.ap-northeast-2.compute.internal", "aws-node-8zc4q"),
    ("ip-10-0-22-27.ap-northeast-2.compute.internal", "aws-node-6tnlw", 0.1,
     "ip-10-0-32-95.ap-northeast-2.compute.internal", "aws-node-k1v7e"),
    ("ip-10-0-23-40.ap-northeast-2.compute.internal", "aws-node-qd9rb", 0.25,
     "ip-10-0-33-108.ap-northeast-2.compute.internal", "aws-node-w4hs2"),
    ("ip-10-0-21-53.ap-northeast-2.compute.internal", "aws-node-yx3pg", 0.4,
     "ip-10-0-31-121.ap-northeast-2.compute.internal", "aws-node-c6m0a"),
];
/// The Karpenter disruption (reason, nodepool, capacity type) each migrated node counts as.
const MIGRATION_DISRUPTION: (&str, &str, &str) = ("drifted", "general-purpose", "on-demand");

/// The scenario: [`MIGRATION`], and Karpenter counting each replacement as drift.
pub struct Al2023Migration;

impl Trouble for Al2023Migration {
    /// Each old node, deleted at its time, and its replacement, created [`JOIN_SECS`] +
    /// [`DRAIN_SECS`] before.
    fn nodes(&self, window: Window) -> Vec<Node> {
        let long_ago = window.start - NODE_AGE_SECS;
        let mut nodes = Vec::new();
        for &(old, old_aws_node, at, new, new_aws_node) in MIGRATION {
            let gone = window.at(at);
            let replaced = gone - DRAIN_SECS - JOIN_SECS;
            nodes.push(Node {
                name: old,
                aws_node: old_aws_node,
                os_image: AL2_IMAGE,
                kubelet: OLD_KUBELET,
                kernel: AL2_KERNEL,
                created: long_ago,
                gone: Some(gone),
                long_ago: false,
                for_pending_pod: false,
            });
            nodes.push(Node {
                name: new,
                aws_node: new_aws_node,
                os_image: AL2023_IMAGE,
                kubelet: K8S_VERSION,
                kernel: AL2023_KERNEL,
                created: replaced,
                gone: None,
                long_ago: false,
                for_pending_pod: false,
            });
        }
        nodes
    }

    /// Karpenter counts a drifted NodeClaim when it launches the replacement.
    fn disrupted(&self, window: Window, disruption: (&str, &str, &str), t: i64) -> f64 {
        if disruption != MIGRATION_DISRUPTION {
            return 0.0;
        }
        MIGRATION
            .iter()
            .filter(|&&(_, _, at, _, _)| window.at(at) - DRAIN_SECS - JOIN_SECS <= t)
            .count() as f64
    }

    fn timeline(&self, window: Window) -> Vec<(i64, String)> {
        let left = MIGRATION.iter().filter(|m| window.at(m.2) > window.start);
        let mut events = vec![(
            window.start,
            format!(
                "{} AL2 nodes on kubelet {OLD_KUBELET} are left: nodes_not_on_target warns, the \
                 nodes phase is no-go until the last one is gone and it has soaked for its \
                 stable_for",
                left.count()
            ),
        )];
        for &(old, _, at, new, _) in MIGRATION {
            events.push((
                window.at(at),
                format!(
                    "AL2 node {old} is gone, replaced by Karpenter drift with {new} (AL2023, \
                     {K8S_VERSION}, created {}s earlier)",
                    JOIN_SECS + DRAIN_SECS
                ),
            ));
        }
        events
    }
}
