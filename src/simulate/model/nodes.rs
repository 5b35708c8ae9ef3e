//! Nodes: kube-state-metrics' view of each node, its kubelet's build and its VPC CNI pod, and the
//! pending pods that made Karpenter launch the ones created during the window.

use super::scene::{Node, K8S_VERSION};
use super::time::Window;
use super::writer::{labels, Writer};

/// Nodes created during the window take this long from registration to Ready.
pub const JOIN_SECS: i64 = 45;
/// The pending pod that makes Karpenter launch a node was created this long before the node.
const PENDING_SECS: i64 = 90;
/// Nodes from before the window were created this long before its start.
pub const NODE_AGE_SECS: i64 = 3 * 86_400;

pub const AL2023_IMAGE: &str = "Amazon Linux 2023.8.20250818";
pub const AL2023_KERNEL: &str = "6.12.40-63.114.amzn2023.x86_64";

/// Nodes: name, its aws-node (VPC CNI) pod, and when it was created as a fraction of the window
/// (`None`: days before it). Those created in the window are Karpenter's answer to a pending pod.
#[rustfmt::skip]
pub(crate) const NODES: &[(&str, &str, Option<f64>)] = &[
    ("ip-10-0-11-21.ap-northeast-2.compute.internal", "aws-node-4kq8z", None),
    ("ip-10-0-12-34.ap-northeast-2.compute.internal", "aws-node-9xw2d", None),
    ("ip-10-0-13-47.ap-northeast-2.compute.internal", "aws-node-bt7mr", None),
    ("ip-10-0-11-58.ap-northeast-2.compute.internal", "aws-node-h3n6c", Some(0.3)),
    ("ip-10-0-12-69.ap-northeast-2.compute.internal", "aws-node-p5v1s", Some(0.6)),
    // Joined before the window, so the hour before it (a demo's backfill) has a pending pod too.
    ("ip-10-0-13-72.ap-northeast-2.compute.internal", "aws-node-r8t2k", Some(-0.5)),
];

/// The nodes of the healthy cluster: every one on AL2023 with the 1.34 kubelet.
pub fn healthy(window: Window) -> Vec<Node> {
    let long_ago = window.start - NODE_AGE_SECS;
    NODES
        .iter()
        .map(|&(name, aws_node, created_at)| Node {
            name,
            aws_node,
            os_image: AL2023_IMAGE,
            kubelet: K8S_VERSION,
            kernel: AL2023_KERNEL,
            created: created_at.map_or(long_ago, |f| window.at(f)),
            gone: None,
            long_ago: created_at.is_none(),
            for_pending_pod: created_at.is_some(),
        })
        .collect()
}

/// Every series of `nodes`, and of the pods that wait for the new ones.
pub fn write(nodes: &[Node], w: &mut Writer) {
    for node in nodes {
        let (created, gone) = (node.created, node.gone);
        let exists = move |t: i64| t >= created && gone.is_none_or(|g| t < g);
        let ready = move |t: i64| t >= created + JOIN_SECS;
        let info = labels(&[
            ("node", node.name),
            ("os_image", node.os_image),
            ("kubelet_version", node.kubelet),
            ("kernel_version", node.kernel),
            ("container_runtime_version", "containerd://2.0.5"),
            ("provider_id", "aws:///ap-northeast-2a/i-0abc"),
        ]);
        let n = labels(&[("node", node.name)]);
        w.gauge("kube_node_info", &info, |t| exists(t).then_some(1.0));
        w.gauge("kube_node_created", &n, |t| {
            exists(t).then_some(created as f64)
        });
        for (status, value) in [("true", true), ("false", false), ("unknown", false)] {
            let l = format!("{n},condition=\"Ready\",status=\"{status}\"");
            w.gauge("kube_node_status_condition", &l, |t| {
                exists(t).then_some(f64::from(u8::from(
                    status != "unknown" && ready(t) == value,
                )))
            });
        }
        let kubelet = labels(&[
            ("job", "kubelet"),
            ("instance", node.name),
            ("git_version", node.kubelet),
        ]);
        w.gauge("kubernetes_build_info", &kubelet, |t| {
            exists(t).then_some(1.0)
        });

        let pod = labels(&[("pod", node.aws_node)]);
        let alive = |value: f64| move |t: i64| exists(t).then_some(value);
        w.counter("awscni_no_available_ip_addresses", &pod, alive(0.0));
        if node.long_ago {
            // Errors ipamd met long ago on the older nodes; they no longer grow.
            let fn_ = format!("{pod},fn=\"increaseIPPoolAllocIPAddressFailed\"");
            w.counter("awscni_ipamd_error_count", &fn_, alive(2.0));
            let api =
                format!("{pod},api=\"DescribeNetworkInterfaces\",error=\"RequestLimitExceeded\"");
            w.counter("awscni_aws_api_error_count", &api, alive(1.0));
        }
        if node.for_pending_pod {
            let suffix = node.aws_node.trim_start_matches("aws-node-");
            let pending = labels(&[
                ("namespace", "shop"),
                ("pod", &format!("checkout-7c9d8f6b5-{suffix}")),
            ]);
            let pod_created = created - PENDING_SECS;
            w.gauge("kube_pod_created", &pending, |t| {
                (t >= pod_created).then_some(pod_created as f64)
            });
            w.gauge("kube_pod_status_unschedulable", &pending, |t| {
                (t >= pod_created && !ready(t)).then_some(1.0)
            });
        }
    }
}
