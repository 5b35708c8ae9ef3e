//! What a scenario may change in the healthy cluster ([`Trouble`], with its timing [`Span`]), and
//! the circumstances one rendering of the model shares between components ([`Scene`]).
//!
//! Each hook answers "nothing changes" by default, so a scenario says only what goes wrong, and
//! the components ask every scenario the same questions without knowing which one is playing.

use super::time::Window;

/// The Kubernetes version the cluster is upgraded to: the apiserver's and every new node's.
pub const K8S_VERSION: &str = "v1.34.1-eks-113cf36";

/// When a scenario's trouble is on (fractions of the window), what happens, and what the default
/// pack makes of it, for the timeline. Its size is in the scenario's own fields.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub from: f64,
    pub to: f64,
    pub what: &'static str,
    pub expect: &'static str,
}

/// A scenario: the healthy cluster with something going wrong. The components of the model ask
/// each hook about their own series; the answers that take effect only during the trouble apply
/// within [`Trouble::span`].
pub trait Trouble: Sync {
    /// When the trouble is on, if it has one span (a migration has its own timeline).
    fn span(&self) -> Option<&Span> {
        None
    }

    /// The mean latency in seconds of an apiserver endpoint (verb, resource, subresource) during
    /// the trouble, if it changes.
    fn mean_latency(&self, _verb: &str, _resource: &str, _subresource: &str) -> Option<f64> {
        None
    }

    /// The rate per second of a Karpenter disruption (reason, nodepool, capacity type) during
    /// the trouble, if it changes.
    fn disruption_rate(&self, _disruption: (&str, &str, &str)) -> Option<f64> {
        None
    }

    /// The 5xx share of a mesh service's requests during the trouble, if it changes.
    fn error_share(&self, _service: &str) -> Option<f64> {
        None
    }

    /// Nodes besides the healthy cluster's.
    fn nodes(&self, _window: Window) -> Vec<Node> {
        Vec::new()
    }

    /// Karpenter disruptions (reason, nodepool, capacity type) counted by `t` besides the healthy
    /// cluster's, at any time rather than during a span.
    fn disrupted(&self, _window: Window, _disruption: (&str, &str, &str), _t: i64) -> f64 {
        0.0
    }

    /// What happens when, for people: (unix time, sentence), in any order.
    fn timeline(&self, window: Window) -> Vec<(i64, String)> {
        let Some(t) = self.span() else {
            return Vec::new();
        };
        vec![
            (window.at(t.from), format!("{}; {}", t.what, t.expect)),
            (
                window.at(t.to),
                "the trouble stops; each signal clears once its query window has passed it \
                 (5m rates, 15m increases), then each phase is go again after its stable_for"
                    .to_string(),
            ),
        ]
    }
}

/// One rendering of the model: the scenario, its window, and what follows from them.
pub struct Scene<'a> {
    pub trouble: &'a dyn Trouble,
    pub window: Window,
    /// When every component started: counters start from this much traffic at the window's start.
    pub long_ago: i64,
    /// When the trouble is on, in unix seconds (empty when it has no span).
    pub span: (i64, i64),
}

/// One node's life in the data.
pub struct Node {
    pub name: &'static str,
    pub aws_node: &'static str,
    pub os_image: &'static str,
    pub kubelet: &'static str,
    pub kernel: &'static str,
    pub created: i64,
    /// When it is deleted.
    pub gone: Option<i64>,
    /// Running since long before the window (its ipamd met errors once); else Karpenter launched it.
    pub long_ago: bool,
    /// A pending pod made Karpenter launch it.
    pub for_pending_pod: bool,
}
