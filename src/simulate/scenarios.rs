//! Synthetic metrics of an EKS upgrade, for `simulate`, the local demo and the integration tests.
//!
//! The default signal pack (`queries/*.yaml`) reads metrics of kube-apiserver, kube-state-metrics,
//! Karpenter, Istio, CoreDNS and the VPC CNI. Showing the daemon, or testing the pack end to end,
//! needs a real Prometheus that holds those series with the label sets the queries group and join
//! by. One model of the cluster, every series a function of time, is rendered two ways:
//! [`openmetrics`] / [`openmetrics_window`] write samples over a range of times as OpenMetrics
//! text for `promtool tsdb create-blocks-from openmetrics`, and [`exposition`] writes the value of
//! every series at one time, without timestamps, in the Prometheus text format for a scrape
//! (`simulate --listen`, see [`super::exporter`]). It is pure (no clock, no I/O, no
//! randomness), so one window always gives the same text, and a backfilled file and a live exporter that share a
//! [`Window`] agree sample for sample.
//!
//! Table-driven: one table per component (nodes, apiserver endpoints, mesh services, ...), one
//! table of the trouble each scenario adds ([`TROUBLES`], and [`MIGRATION`] for the node
//! migration), and a small writer that knows counters, gauges and histograms.
//! [`Scenario::Healthy`] is a cluster at the end of the upgrade where every signal of the pack is
//! healthy, or has no series where its `no_data` is `ok`: every node on AL2023 with the 1.34
//! kubelet, every proxy and istiod on Istio 1.28, Karpenter 1.6, error counters flat, two nodes
//! joining during the window. The other scenarios are that cluster with one thing going wrong for
//! part of the [`Window`], the scenario's timeline: trouble starts a tenth into the window and
//! stops shortly before its end, so a live simulator shows the gate flip from go to no-go and back.
//! Before the window the cluster is as at its start (the node migration began a little before
//! it), after it as at its end.
//!
//! Counters are functions of time whose rate may change during the trouble (the integral of a
//! piecewise constant rate, floored), so they never go down; histograms likewise sum their
//! observations segment by segment, each exponentially distributed around the segment's mean.
//!
//! OpenMetrics as promtool (Debian's 2.42) reads it: a `# TYPE` line before each family, all
//! samples of a family together, each series in increasing time order, `# EOF` last. Counter
//! samples are named `<family>_total`, so counters exported without that suffix (Istio's
//! `pilot_xds_pushes`, the VPC CNI's `awscni_*`, the apiserver's `..._rejection_count`) are declared
//! `unknown`. The text format (0.0.4) has no such rule: there every counter is a `counter` and its
//! samples carry the name as is, which is how Istio and the VPC CNI export them. Histograms are
//! `_bucket{le}` (cumulative, up to `+Inf`), `_sum` and `_count`. A step of 60 s or less keeps
//! every signal healthy (5-minute rates need a few samples).

use std::fmt::Write as _;

/// Scenario of the synthetic upgrade data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Every signal of the default pack healthy.
    Healthy,
    /// One mesh service answers 20% 5xx: istio_5xx_ratio fails, every phase no-go.
    #[value(name = "istio-5xx-spike")]
    Istio5xxSpike,
    /// NodeClaims fail to register: karpenter_nodeclaim_launch_failures fails, karpenter and nodes no-go.
    #[value(name = "karpenter-launch-failures")]
    KarpenterLaunchFailures,
    /// POST requests are slow: apiserver_p99_latency_by_verb fails, precheck and control-plane no-go.
    #[value(name = "apiserver-latency")]
    ApiserverLatency,
    /// Cluster-wide LISTs get 4x slower, still far below any absolute threshold: only a baseline
    /// (the hour before the window) catches it, with apiserver_list_p99_latency's `> baseline * 3`.
    #[value(name = "apiserver-list-regression")]
    ApiserverListRegression,
    /// AL2 nodes replaced by AL2023 nodes one by one: nodes no-go until the last one has moved.
    #[value(name = "al2023-migration")]
    Al2023Migration,
}

/// The scenario's timeline, unix seconds: its trouble is placed at fractions of this window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn new(start: i64, end: i64) -> Window {
        assert!(end >= start, "a window ends after it starts");
        Window { start, end }
    }

    /// The time at `fraction` of the window (0 its start, 1 its end).
    pub fn at(self, fraction: f64) -> i64 {
        self.start + (fraction * (self.end - self.start) as f64) as i64
    }
}

/// How long every component had been running at the window's start: counters start from this much traffic.
const UPTIME_SECS: i64 = 6 * 3600;
/// Nodes created during the window take this long from registration to Ready.
const JOIN_SECS: i64 = 45;
/// The pending pod that makes Karpenter launch a node was created this long before the node.
const PENDING_SECS: i64 = 90;
/// A migrated node is deleted this long after its replacement is Ready (cordon, drain, terminate).
const DRAIN_SECS: i64 = 60;

const AL2023_IMAGE: &str = "Amazon Linux 2023.8.20250818";
const AL2023_KERNEL: &str = "6.12.40-63.114.amzn2023.x86_64";
const AL2_IMAGE: &str = "Amazon Linux 2";
const AL2_KERNEL: &str = "5.10.240-238.959.amzn2.x86_64";
const K8S_VERSION: &str = "v1.34.1-eks-113cf36";
/// The kubelet of the AL2 nodes that [`Scenario::Al2023Migration`] replaces.
const OLD_KUBELET: &str = "v1.32.9-eks-a737599";
const ISTIO_TAG: &str = "1.28.1";
const KARPENTER_VERSION: &str = "1.6.3";

/// The trouble a scenario adds to the healthy cluster: when it is on (fractions of the window),
/// what happens, and what the default pack makes of it. Its size is in the component tables
/// ([`SPIKE_SERVICE`], [`SLOW_ENDPOINTS`], [`LAUNCH_FAILURES`]).
pub struct Trouble {
    pub scenario: Scenario,
    pub from: f64,
    pub to: f64,
    pub what: &'static str,
    pub expect: &'static str,
}

/// Every scenario with trouble but [`Scenario::Al2023Migration`], whose timeline is [`MIGRATION`].
/// From a tenth into the window to 95% of it: with `simulate --listen --duration 20m` that is
/// minute 2 to minute 19.
#[rustfmt::skip]
pub const TROUBLES: &[Trouble] = &[
    Trouble {
        scenario: Scenario::Istio5xxSpike, from: 0.1, to: 0.95,
        what: "reviews.bookinfo.svc.cluster.local answers 20% of its requests with 503",
        expect: "istio_5xx_ratio warns within a minute and fails once that has held for its `for` (5m): every phase no-go",
    },
    Trouble {
        scenario: Scenario::KarpenterLaunchFailures, from: 0.1, to: 0.95,
        what: "a NodeClaim of NodePool general-purpose never registers every 2 minutes (Karpenter deletes it: reason liveness)",
        expect: "karpenter_nodeclaim_launch_failures warns at the first failure and fails at the third within 15m: karpenter and nodes no-go",
    },
    Trouble {
        scenario: Scenario::ApiserverLatency, from: 0.1, to: 0.95,
        what: "POST requests (pod creation behind a slow admission webhook) take 0.8 s on average, p99 about 3.7 s",
        expect: "apiserver_p99_latency_by_verb warns at once and fails once that has held for its `for` (10m): precheck and control-plane no-go",
    },
    Trouble {
        scenario: Scenario::ApiserverListRegression, from: 0.1, to: 0.95,
        what: "cluster-wide LIST nodes takes 1 s on average instead of 0.25 s (p99 about 4.6 s instead of 1.15 s: far below the 30 s SLO)",
        expect: "with the baseline pinned at the window's start (UPGRADE_GATE__BASELINE__END), apiserver_list_p99_latency is 4x its baseline: it warns (2x) within minutes and fails (3x) once that has held for its `for` (10m): precheck and control-plane no-go. Against a moving baseline without a day of history nothing fires",
    },
];

/// Nodes: name, its aws-node (VPC CNI) pod, and when it was created as a fraction of the window
/// (`None`: days before it). Those created in the window are Karpenter's answer to a pending pod.
#[rustfmt::skip]
const NODES: &[(&str, &str, Option<f64>)] = &[
    ("ip-10-0-11-21.ap-northeast-2.compute.internal", "aws-node-4kq8z", None),
    ("ip-10-0-12-34.ap-northeast-2.compute.internal", "aws-node-9xw2d", None),
    ("ip-10-0-13-47.ap-northeast-2.compute.internal", "aws-node-bt7mr", None),
    ("ip-10-0-11-58.ap-northeast-2.compute.internal", "aws-node-h3n6c", Some(0.3)),
    ("ip-10-0-12-69.ap-northeast-2.compute.internal", "aws-node-p5v1s", Some(0.6)),
    // Joined before the window, so the hour before it (a demo's backfill) has a pending pod too.
    ("ip-10-0-13-72.ap-northeast-2.compute.internal", "aws-node-r8t2k", Some(-0.5)),
];

/// [`Scenario::Al2023Migration`]: AL2 nodes (name, aws-node pod) on the old kubelet, each deleted
/// at a fraction of the window, replaced by Karpenter drift with an AL2023 node (name, aws-node
/// pod) on 1.34 that was created [`JOIN_SECS`] + [`DRAIN_SECS`] before. The migration started
/// before the window: the first old node went at -30% (6 minutes before a 20-minute window), long
/// enough for Prometheus' 5-minute lookback to let go of it, so from the window's start the count
/// of old nodes is below its maximum of the last hour and `nodes_migration_stalled` stays quiet
/// (given that history, e.g. backfilled before a live simulator). The others go one by one, the
/// last at 40% of the window, so the nodes phase can soak (`stable_for`) before the window ends.
#[rustfmt::skip]
pub const MIGRATION: &[(&str, &str, f64, &str, &str)] = &[
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

/// kube-apiserver endpoints: verb, group, resource, subresource, scope, success code, requests/s,
/// mean latency in seconds, 5xx share. WATCH, CONNECT and the `log` subresource are long-running:
/// the latency signals must exclude them, or these rows would breach.
#[allow(clippy::type_complexity)]
#[rustfmt::skip]
const APISERVER: &[(&str, &str, &str, &str, &str, &str, f64, f64, f64)] = &[
    ("GET", "", "pods", "", "resource", "200", 15.0, 0.008, 0.0),
    ("GET", "", "configmaps", "", "resource", "200", 5.0, 0.006, 0.0),
    ("LIST", "", "pods", "", "namespace", "200", 2.0, 0.05, 0.0005),
    ("LIST", "", "nodes", "", "cluster", "200", 0.5, 0.25, 0.0),
    ("WATCH", "", "pods", "", "cluster", "200", 0.2, 300.0, 0.0),
    ("POST", "", "pods", "", "namespace", "201", 1.0, 0.03, 0.0),
    ("PATCH", "", "nodes", "status", "resource", "200", 3.0, 0.012, 0.0),
    ("PUT", "coordination.k8s.io", "leases", "", "namespace", "200", 5.0, 0.009, 0.0),
    ("DELETE", "", "pods", "", "namespace", "200", 0.5, 0.02, 0.0),
    ("CONNECT", "", "pods", "exec", "namespace", "101", 0.01, 30.0, 0.0),
    ("GET", "", "pods", "log", "namespace", "200", 0.2, 5.0, 0.0),
];
/// The apiserver scenarios: endpoints (verb, resource) and their mean latency in seconds during
/// the trouble (p99 ≈ 4.6 × mean).
const SLOW_ENDPOINTS: &[(Scenario, &str, &str, f64)] = &[
    (Scenario::ApiserverLatency, "POST", "pods", 0.8),
    (Scenario::ApiserverListRegression, "LIST", "nodes", 1.0),
];
const APISERVER_INSTANCES: &[&str] = &["10.0.101.12:443", "10.0.102.34:443"];
#[rustfmt::skip]
const APISERVER_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];
/// Admission webhook rejections: name, type, operation, error type, rejection code, count, per second.
/// Policy rejections keep coming; the one failed call is old.
#[rustfmt::skip]
const WEBHOOK_REJECTIONS: &[(&str, &str, &str, &str, &str, f64, f64)] = &[
    ("rev.validation.istio.io", "validating", "CREATE", "no_error", "400", 3.0, 0.001),
    ("rev.namespace.sidecar-injector.istio.io", "admit", "CREATE", "calling_webhook_error", "0", 2.0, 0.0),
];

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
/// [`Scenario::KarpenterLaunchFailures`]: disruptions (reason, nodepool, capacity type) that grow
/// during the trouble, per second. `liveness` is Karpenter 1.0–1.6's reason for a NodeClaim whose
/// node never registered (split into launch_timeout / registration_timeout from 1.7).
#[rustfmt::skip]
const LAUNCH_FAILURES: &[(&str, &str, &str, f64)] = &[
    ("liveness", "general-purpose", "on-demand", 1.0 / 120.0),
];
/// Karpenter CloudProvider errors: controller, method, error, count (all old).
#[rustfmt::skip]
const KARPENTER_CLOUDPROVIDER_ERRORS: &[(&str, &str, &str, f64)] = &[
    ("nodeclaim.lifecycle", "Create", "InsufficientCapacityError", 6.0),
    ("nodeclaim.lifecycle", "Create", "", 1.0),
    ("nodeclaim.garbagecollection", "List", "", 2.0),
];

/// Mesh services: destination service, workload, its caller, requests/s, 5xx share when healthy.
#[rustfmt::skip]
const SERVICES: &[(&str, &str, &str, f64, f64)] = &[
    ("productpage.bookinfo.svc.cluster.local", "productpage-v1", "istio-ingressgateway", 40.0, 0.001),
    ("reviews.bookinfo.svc.cluster.local", "reviews-v2", "productpage-v1", 30.0, 0.0),
    ("ratings.bookinfo.svc.cluster.local", "ratings-v1", "reviews-v2", 20.0, 0.0),
    ("details.bookinfo.svc.cluster.local", "details-v1", "productpage-v1", 20.0, 0.0005),
];
/// The service that fails in [`Scenario::Istio5xxSpike`], and how much of its traffic.
pub const SPIKE_SERVICE: &str = "reviews.bookinfo.svc.cluster.local";
const SPIKE_5XX_SHARE: f64 = 0.2;
/// Sidecar pods: namespace, pod.
#[rustfmt::skip]
const PROXIES: &[(&str, &str)] = &[
    ("istio-system", "istio-ingressgateway-7f9d6c5b8-2lqxp"),
    ("bookinfo", "productpage-v1-6b746f74dc-k8rwn"),
    ("bookinfo", "reviews-v2-5b667bcbf8-7dj4m"),
    ("bookinfo", "ratings-v1-b6994bb9-tq2hs"),
    ("bookinfo", "details-v1-5f4d584748-zp9cf"),
];
const ISTIOD_PODS: &[&str] = &["istiod-1-28-6d8f9c7b5-abcde", "istiod-1-28-6d8f9c7b5-fghij"];
const XDS_TYPES: &[&str] = &["cds", "eds", "lds", "rds"];
const CONVERGENCE_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0];

const COREDNS_PODS: &[&str] = &["coredns-5b8f9c7d6-4xk2p", "coredns-5b8f9c7d6-9tq7w"];
/// DNS responses per CoreDNS pod: rcode, per second.
#[rustfmt::skip]
const DNS_RCODES: &[(&str, f64)] = &[("NOERROR", 80.0), ("NXDOMAIN", 20.0), ("SERVFAIL", 0.01)];
/// CoreDNS request latency: mean seconds (mostly cache hits), and its buckets
/// (`plugin.TimeBuckets`, `prometheus.ExponentialBuckets(0.00025, 2, 16)`; source: coredns/coredns
/// plugin/plugin.go).
const DNS_MEAN_SECS: f64 = 0.002;
#[rustfmt::skip]
const DNS_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512,
    1.024, 2.048, 4.096, 8.192,
];

/// OpenMetrics text (ending in `# EOF\n`) with one sample every `step_secs` seconds for every
/// series from `from_unix` to `to_unix` (inclusive, unix seconds), for every metric the default
/// pack queries, with label sets the queries expect (several destination_services, verbs,
/// nodepools, nodes...). The scenario's window is the sampled range.
pub fn openmetrics(scenario: Scenario, from_unix: i64, to_unix: i64, step_secs: i64) -> String {
    openmetrics_window(
        scenario,
        Window::new(from_unix, to_unix),
        from_unix,
        to_unix,
        step_secs,
    )
}

/// [`openmetrics`] with the scenario's timeline on `window` rather than on the sampled range:
/// e.g. an hour of history before the window that a live simulator then continues.
pub fn openmetrics_window(
    scenario: Scenario,
    window: Window,
    from_unix: i64,
    to_unix: i64,
    step_secs: i64,
) -> String {
    assert!(step_secs > 0, "step_secs must be positive");
    let times = (0..)
        .map(|i| from_unix + i * step_secs)
        .take_while(|&t| t <= to_unix)
        .collect();
    let mut w = Writer::new(Format::OpenMetrics, times);
    model(scenario, window, &mut w);
    w.finish()
}

/// The value of every series at `at_unix`, in the Prometheus text format (0.0.4) without
/// timestamps: one scrape of a live simulator. The same model as [`openmetrics_window`].
pub fn exposition(scenario: Scenario, window: Window, at_unix: i64) -> String {
    let mut w = Writer::new(Format::Text, vec![at_unix]);
    model(scenario, window, &mut w);
    w.finish()
}

/// What happens when in `scenario` over `window`, for people: (unix time, sentence), in time order.
pub fn timeline(scenario: Scenario, window: Window) -> Vec<(i64, String)> {
    let mut events = Vec::new();
    if let Some(t) = TROUBLES.iter().find(|t| t.scenario == scenario) {
        events.push((window.at(t.from), format!("{}; {}", t.what, t.expect)));
        events.push((
            window.at(t.to),
            "the trouble stops; each signal clears once its query window has passed it \
             (5m rates, 15m increases), then each phase is go again after its stable_for"
                .to_string(),
        ));
    }
    if scenario == Scenario::Al2023Migration {
        let left = MIGRATION.iter().filter(|m| window.at(m.2) > window.start);
        events.push((
            window.start,
            format!(
                "{} AL2 nodes on kubelet {OLD_KUBELET} are left: nodes_not_on_target warns, the \
                 nodes phase is no-go until the last one is gone and it has soaked for its \
                 stable_for",
                left.count()
            ),
        ));
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
    }
    events.sort_by_key(|&(t, _)| t);
    events
}

/// When `scenario`'s trouble is on, in unix seconds (empty for the other scenarios).
fn trouble(scenario: Scenario, window: Window) -> (i64, i64) {
    TROUBLES
        .iter()
        .find(|t| t.scenario == scenario)
        .map_or((0, 0), |t| (window.at(t.from), window.at(t.to)))
}

/// A piecewise constant quantity of time: `base`, and `during` from `span.0` to `span.1`.
#[derive(Debug, Clone, Copy)]
struct Shape {
    base: f64,
    during: f64,
    span: (i64, i64),
}

impl Shape {
    fn flat(v: f64) -> Shape {
        Shape {
            base: v,
            during: v,
            span: (0, 0),
        }
    }

    /// `base`, and `during` inside `span` when there is a `during`.
    fn changed(base: f64, during: Option<f64>, span: (i64, i64)) -> Shape {
        match during {
            Some(during) => Shape { base, during, span },
            None => Shape::flat(base),
        }
    }

    /// Seconds of [since, t] outside and inside the span.
    fn split(self, since: i64, t: i64) -> (f64, f64) {
        let elapsed = (t - since).max(0);
        let inside = (t.min(self.span.1) - since.max(self.span.0)).clamp(0, elapsed);
        ((elapsed - inside) as f64, inside as f64)
    }

    /// The integral over [since, t] (a rate's count).
    fn integral(self, since: i64, t: i64) -> f64 {
        let (outside, inside) = self.split(since, t);
        self.base * outside + self.during * inside
    }

    /// When the quantity is first non-zero: `since` if `base` is, else the span's start.
    fn first_nonzero(self, since: i64) -> Option<i64> {
        if self.base > 0.0 {
            Some(since)
        } else if self.during > 0.0 && self.span.1 > self.span.0 {
            Some(self.span.0.max(since))
        } else {
            None
        }
    }
}

/// A counter worth `start` at `since`, growing by `rate`, absent before.
fn grows(since: i64, start: f64, rate: Shape) -> impl Fn(i64) -> Option<f64> {
    move |t| (t >= since).then(|| start + rate.integral(since, t))
}

/// One node's life in the data.
struct Node {
    name: &'static str,
    aws_node: &'static str,
    os_image: &'static str,
    kubelet: &'static str,
    kernel: &'static str,
    created: i64,
    /// When it is deleted.
    gone: Option<i64>,
    /// Running since long before the window (its ipamd met errors once); else Karpenter launched it.
    long_ago: bool,
    /// A pending pod made Karpenter launch it.
    for_pending_pod: bool,
}

fn nodes(scenario: Scenario, window: Window) -> Vec<Node> {
    let long_ago = window.start - 3 * 86_400;
    let mut nodes: Vec<Node> = NODES
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
        .collect();
    if scenario == Scenario::Al2023Migration {
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
    }
    nodes
}

/// Every series of the cluster in `scenario` over `window`, written to `w` at its sample times.
fn model(scenario: Scenario, window: Window, w: &mut Writer) {
    let long_ago = window.start - UPTIME_SECS;
    let trouble = trouble(scenario, window);
    let during = |s: Scenario| scenario == s;

    // kube-apiserver: requests, latency, build, storage, admission webhooks, deprecated APIs.
    for &(verb, group, resource, sub, scope, ok_code, per_sec, mean, errors) in APISERVER {
        let version = "v1";
        let base = [
            ("verb", verb),
            ("group", group),
            ("version", version),
            ("resource", resource),
            ("subresource", sub),
            ("scope", scope),
            ("component", "apiserver"),
        ];
        for (code, share) in [(ok_code, 1.0 - errors), ("503", errors)] {
            if share > 0.0 {
                let l = labels(&[&base[..], &[("code", code)]].concat());
                let rate = Shape::flat(per_sec * share);
                w.counter("apiserver_request_total", &l, grows(long_ago, 0.0, rate));
            }
        }
        let slow = SLOW_ENDPOINTS
            .iter()
            .find(|&&(s, v, r, _)| during(s) && v == verb && r == resource && sub.is_empty())
            .map(|&(_, _, _, slow_mean)| slow_mean);
        w.histogram(
            "apiserver_request_duration_seconds",
            &labels(&base),
            APISERVER_BUCKETS,
            long_ago,
            per_sec,
            Shape::changed(mean, slow, trouble),
        );
    }
    for instance in APISERVER_INSTANCES {
        let l = labels(&[("job", "apiserver"), ("instance", instance)]);
        let build = labels(&[
            ("job", "apiserver"),
            ("instance", instance),
            ("git_version", K8S_VERSION),
        ]);
        w.gauge("kubernetes_build_info", &build, |_| Some(1.0));
        // Kubernetes 1.34 renamed the object count and still exports the deprecated name.
        for name in ["apiserver_storage_objects", "apiserver_resource_objects"] {
            w.gauge(name, &format!("{l},resource=\"pods\""), |_| Some(120.0));
        }
    }
    for &(name, kind, op, error_type, code, count, per_sec) in WEBHOOK_REJECTIONS {
        let l = labels(&[
            ("name", name),
            ("type", kind),
            ("operation", op),
            ("error_type", error_type),
            ("rejection_code", code),
        ]);
        w.counter(
            "apiserver_admission_webhook_rejection_count",
            &l,
            grows(long_ago, count, Shape::flat(per_sec)),
        );
    }
    // An API whose removal comes after 1.34 (synthetic): the pack's removed_release filter skips it.
    let deprecated = labels(&[
        ("group", "storage.k8s.io"),
        ("version", "v1beta1"),
        ("resource", "volumeattributesclasses"),
        ("subresource", ""),
        ("removed_release", "1.36"),
    ]);
    w.gauge("apiserver_requested_deprecated_apis", &deprecated, |_| {
        Some(1.0)
    });

    // Nodes (kube-state-metrics, kubelet build, VPC CNI on each node) and the pods that wait for new ones.
    for node in nodes(scenario, window) {
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

    // Karpenter.
    w.gauge(
        "karpenter_build_info",
        &labels(&[("version", KARPENTER_VERSION)]),
        |_| Some(1.0),
    );
    // Karpenter counts a drifted NodeClaim when it launches the replacement.
    let migrated_by = |t: i64| {
        MIGRATION
            .iter()
            .filter(|&&(_, _, at, _, _)| window.at(at) - DRAIN_SECS - JOIN_SECS <= t)
            .count() as f64
    };
    for &(reason, nodepool, capacity, count, per_sec) in KARPENTER_DISRUPTIONS {
        let l = labels(&[
            ("reason", reason),
            ("nodepool", nodepool),
            ("capacity_type", capacity),
        ]);
        let failing = LAUNCH_FAILURES
            .iter()
            .find(|&&(r, p, c, _)| (r, p, c) == (reason, nodepool, capacity))
            .filter(|_| during(Scenario::KarpenterLaunchFailures))
            .map(|&(_, _, _, failing)| failing);
        let counts = grows(long_ago, count, Shape::changed(per_sec, failing, trouble));
        let migrating = during(Scenario::Al2023Migration)
            && (reason, nodepool, capacity) == MIGRATION_DISRUPTION;
        w.counter("karpenter_nodeclaims_disrupted_total", &l, |t| {
            let drifted = if migrating { migrated_by(t) } else { 0.0 };
            counts(t).map(|v| v + drifted)
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

    // Istio: service traffic from both proxies of each call, sidecar and istiod builds, istiod pushes.
    for &(service, workload, caller, per_sec, healthy_5xx) in SERVICES {
        let spike = (during(Scenario::Istio5xxSpike) && service == SPIKE_SERVICE)
            .then_some(SPIKE_5XX_SHARE);
        let errors = Shape::changed(healthy_5xx, spike, trouble);
        for reporter in ["destination", "source"] {
            let ok = Shape {
                base: per_sec * (1.0 - errors.base),
                during: per_sec * (1.0 - errors.during),
                span: errors.span,
            };
            let failed = Shape {
                base: per_sec * errors.base,
                during: per_sec * errors.during,
                span: errors.span,
            };
            for (code, rate) in [("200", ok), ("503", failed)] {
                // Istio creates a series at its first request.
                let Some(since) = rate.first_nonzero(long_ago) else {
                    continue;
                };
                let l = labels(&[
                    ("reporter", reporter),
                    ("source_workload", caller),
                    ("destination_service", service),
                    ("destination_workload", workload),
                    ("destination_workload_namespace", "bookinfo"),
                    ("response_code", code),
                    ("response_flags", "-"),
                ]);
                let counts = move |t: i64| (t >= since).then(|| rate.integral(long_ago, t));
                w.counter("istio_requests_total", &l, counts);
            }
        }
    }
    for &(namespace, pod) in PROXIES {
        let l = labels(&[
            ("component", "proxy"),
            ("tag", ISTIO_TAG),
            ("namespace", namespace),
            ("pod", pod),
        ]);
        w.gauge("istio_build", &l, |_| Some(1.0));
    }
    for &pod in ISTIOD_PODS {
        let p = labels(&[("pod", pod)]);
        let build = labels(&[
            ("component", "pilot"),
            ("tag", ISTIO_TAG),
            ("namespace", "istio-system"),
            ("pod", pod),
        ]);
        w.gauge("istio_build", &build, |_| Some(1.0));
        for xds in XDS_TYPES {
            w.counter(
                "pilot_xds_pushes",
                &format!("{p},type=\"{xds}\""),
                grows(long_ago, 0.0, Shape::flat(0.5)),
            );
        }
        // A send error and a reject from long ago: the series exist, their rates are 0.
        w.counter(
            "pilot_xds_pushes",
            &format!("{p},type=\"eds_senderr\""),
            grows(long_ago, 2.0, Shape::flat(0.0)),
        );
        w.counter(
            "pilot_total_xds_rejects",
            &format!("{p},type=\"lds\""),
            grows(long_ago, 1.0, Shape::flat(0.0)),
        );
        w.counter(
            "pilot_total_xds_internal_errors",
            &p,
            grows(long_ago, 0.0, Shape::flat(0.0)),
        );
        w.histogram(
            "pilot_proxy_convergence_time",
            &p,
            CONVERGENCE_BUCKETS,
            long_ago,
            2.0,
            Shape::flat(0.05),
        );
    }

    // CoreDNS.
    for &pod in COREDNS_PODS {
        for &(rcode, per_sec) in DNS_RCODES {
            let l = labels(&[
                ("server", "dns://:53"),
                ("zone", "."),
                ("view", ""),
                ("rcode", rcode),
                ("plugin", ""),
                ("pod", pod),
            ]);
            w.counter(
                "coredns_dns_responses_total",
                &l,
                grows(long_ago, 0.0, Shape::flat(per_sec)),
            );
        }
        let l = labels(&[
            ("server", "dns://:53"),
            ("zone", "."),
            ("view", ""),
            ("type", "A"),
            ("pod", pod),
        ]);
        let requests = DNS_RCODES.iter().map(|(_, per_sec)| per_sec).sum();
        w.histogram(
            "coredns_dns_request_duration_seconds",
            &l,
            DNS_BUCKETS,
            long_ago,
            requests,
            Shape::flat(DNS_MEAN_SECS),
        );
    }
}

/// `a="b",c="d"` from label pairs (the values here never need escaping).
fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Samples with timestamps, counters as OpenMetrics wants them, `# EOF` last: a file to backfill.
    OpenMetrics,
    /// Samples without timestamps in the text format 0.0.4: one scrape.
    Text,
}

/// Metric families in first-use order, each with its samples kept together as both formats require.
struct Writer {
    format: Format,
    /// Sample times, increasing.
    times: Vec<i64>,
    /// (family name, type, sample lines)
    families: Vec<(String, &'static str, String)>,
}

impl Writer {
    fn new(format: Format, times: Vec<i64>) -> Writer {
        Writer {
            format,
            times,
            families: Vec::new(),
        }
    }

    fn family(&mut self, name: &str, kind: &'static str) -> &mut String {
        let i = match self.families.iter().position(|(n, _, _)| n == name) {
            Some(i) => i,
            None => {
                self.families.push((name.to_string(), kind, String::new()));
                self.families.len() - 1
            }
        };
        &mut self.families[i].2
    }

    /// `value(t)` at each sample time, as (t, value); `None` leaves the time out.
    fn sample(&self, value: impl Fn(i64) -> Option<f64>) -> Vec<(i64, f64)> {
        self.times
            .iter()
            .filter_map(|&t| value(t).map(|v| (t, v)))
            .collect()
    }

    fn line(format: Format, body: &mut String, series: std::fmt::Arguments, v: f64, t: i64) {
        let _ = match format {
            Format::OpenMetrics => writeln!(body, "{series} {v} {t}"),
            Format::Text => writeln!(body, "{series} {v}"),
        };
    }

    /// A gauge with `value(t)` at each sample time; `None` leaves the time out.
    fn gauge(&mut self, name: &str, labels: &str, value: impl Fn(i64) -> Option<f64>) {
        let samples = self.sample(value);
        let format = self.format;
        let body = self.family(name, "gauge");
        for (t, v) in samples {
            Self::line(format, body, format_args!("{name}{{{labels}}}"), v, t);
        }
    }

    /// A counter worth `value(t)` (floored: counters count whole events; `None` leaves the time
    /// out). In OpenMetrics a name ending in `_total` is a counter family without the suffix and
    /// any other is `unknown`; in the text format both are counters named as they are.
    fn counter(&mut self, name: &str, labels: &str, value: impl Fn(i64) -> Option<f64>) {
        let samples = self.sample(value);
        let format = self.format;
        let (family, kind) = match (format, name.strip_suffix("_total")) {
            (Format::OpenMetrics, Some(family)) => (family, "counter"),
            (Format::OpenMetrics, None) => (name, "unknown"),
            (Format::Text, _) => (name, "counter"),
        };
        let body = self.family(family, kind);
        for (t, v) in samples {
            Self::line(
                format,
                body,
                format_args!("{name}{{{labels}}}"),
                v.floor(),
                t,
            );
        }
    }

    /// A histogram of `per_sec` observations from `since` on, exponentially distributed around
    /// `mean(t)` (the share at or below `le` is `1 - e^(-le/mean)`), so its p99 is about
    /// 4.6 × mean, capped by the largest bucket.
    fn histogram(
        &mut self,
        name: &str,
        labels: &str,
        buckets: &[f64],
        since: i64,
        per_sec: f64,
        mean: Shape,
    ) {
        let times: Vec<i64> = self.times.clone();
        let format = self.format;
        let sep = if labels.is_empty() { "" } else { "," };
        let body = self.family(name, "histogram");
        for t in times.into_iter().filter(|&t| t >= since) {
            let (outside, inside) = mean.split(since, t);
            let (outside, inside) = (per_sec * outside, per_sec * inside);
            let below = |le: f64, mean: f64| 1.0 - (-le / mean).exp();
            for &le in buckets {
                let v = (outside * below(le, mean.base) + inside * below(le, mean.during)).floor();
                Self::line(
                    format,
                    body,
                    format_args!("{name}_bucket{{{labels}{sep}le=\"{le}\"}}"),
                    v,
                    t,
                );
            }
            let count = (outside + inside).floor();
            let sum = outside * mean.base + inside * mean.during;
            Self::line(
                format,
                body,
                format_args!("{name}_bucket{{{labels}{sep}le=\"+Inf\"}}"),
                count,
                t,
            );
            Self::line(format, body, format_args!("{name}_sum{{{labels}}}"), sum, t);
            Self::line(
                format,
                body,
                format_args!("{name}_count{{{labels}}}"),
                count,
                t,
            );
        }
    }

    fn finish(self) -> String {
        let mut out = String::new();
        for (name, kind, body) in self.families {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            out.push_str(&body);
        }
        if self.format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;
    use std::collections::{BTreeMap, HashSet};

    const FROM: i64 = 1_800_000_000;

    fn text(scenario: Scenario) -> String {
        openmetrics(scenario, FROM, FROM + 3600, 30)
    }

    /// (series, timestamp, value) of every sample line.
    fn samples(text: &str) -> Vec<(String, i64, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let mut parts = l.rsplitn(3, ' ');
                let t = parts.next().unwrap().parse().unwrap();
                let v = parts.next().unwrap().parse().unwrap();
                (parts.next().unwrap().to_string(), t, v)
            })
            .collect()
    }

    /// series → value of one scrape (text format).
    fn scrape(scenario: Scenario, window: Window, at: i64) -> BTreeMap<String, f64> {
        exposition(scenario, window, at)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, v) = l.rsplit_once(' ').unwrap();
                (series.to_string(), v.parse().unwrap())
            })
            .collect()
    }

    /// Sum of the values of the series starting with `prefix` and containing every one of `having`.
    fn total(scrape: &BTreeMap<String, f64>, prefix: &str, having: &[&str]) -> f64 {
        scrape
            .iter()
            .filter(|(s, _)| s.starts_with(prefix) && having.iter().all(|h| s.contains(h)))
            .map(|(_, v)| v)
            .sum()
    }

    fn all_scenarios() -> &'static [Scenario] {
        Scenario::value_variants()
    }

    #[test]
    fn is_well_formed_openmetrics() {
        for &scenario in all_scenarios() {
            let text = text(scenario);
            assert!(text.ends_with("\n# EOF\n"));
            assert_eq!(text.matches("# EOF").count(), 1);
            // Every family is declared once, and its samples follow its TYPE line without interruption.
            let mut declared = HashSet::new();
            let mut current: Option<(String, String)> = None;
            for line in text.lines().filter(|l| *l != "# EOF") {
                if let Some(decl) = line.strip_prefix("# TYPE ") {
                    let (name, kind) = decl.split_once(' ').unwrap();
                    assert!(
                        ["counter", "gauge", "histogram", "unknown"].contains(&kind),
                        "{line}"
                    );
                    assert!(declared.insert(name.to_string()), "{name} declared twice");
                    current = Some((name.to_string(), kind.to_string()));
                    continue;
                }
                let (family, kind) = current.as_ref().expect("a sample before any TYPE line");
                let metric = line.split(['{', ' ']).next().unwrap();
                let allowed: Vec<String> = match kind.as_str() {
                    "counter" => vec![format!("{family}_total")],
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .map(|s| format!("{family}{s}"))
                        .collect(),
                    _ => vec![family.clone()],
                };
                assert!(
                    allowed.contains(&metric.to_string()),
                    "{metric} under {kind} {family}"
                );
            }
            // Each series is in increasing time order, and counters never go down.
            let counters: HashSet<String> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter(|d| d.ends_with(" counter") || d.ends_with(" unknown"))
                .map(|d| d.split(' ').next().unwrap().to_string())
                .collect();
            let mut last: BTreeMap<String, (i64, f64)> = BTreeMap::new();
            for (series, t, v) in samples(&text) {
                if let Some(&(pt, pv)) = last.get(&series) {
                    assert!(t > pt, "{series}: {t} after {pt}");
                    let name = series.split('{').next().unwrap();
                    if counters.contains(name.trim_end_matches("_total"))
                        || series.contains("_bucket{")
                        || series.contains("_count{")
                    {
                        assert!(v >= pv, "{scenario:?}: {series} went down at {t}");
                    }
                }
                last.insert(series, (t, v));
            }
        }
    }

    #[test]
    fn samples_every_step_over_the_inclusive_window() {
        let text = openmetrics(Scenario::Healthy, FROM, FROM + 600, 60);
        let times: Vec<i64> = samples(&text)
            .into_iter()
            .filter(|(s, _, _)| s.starts_with("karpenter_build_info"))
            .map(|(_, t, _)| t)
            .collect();
        assert_eq!(times, (0..=10).map(|i| FROM + i * 60).collect::<Vec<_>>());
    }

    #[test]
    fn histograms_are_cumulative_and_end_in_inf() {
        let text = text(Scenario::Healthy);
        let at_end: Vec<(String, f64)> = samples(&text)
            .into_iter()
            .filter(|(s, t, _)| *t == FROM + 3600 && s.starts_with("apiserver_request_duration_seconds_bucket{verb=\"GET\",group=\"\",version=\"v1\",resource=\"pods\",subresource=\"\""))
            .map(|(s, _, v)| (s, v))
            .collect();
        assert_eq!(at_end.len(), APISERVER_BUCKETS.len() + 1);
        assert!(at_end.last().unwrap().0.contains("le=\"+Inf\""));
        assert!(at_end.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn a_scrape_is_the_backfilled_sample_at_that_time_without_timestamp() {
        let window = Window::new(FROM, FROM + 1200);
        for &scenario in all_scenarios() {
            let file = openmetrics_window(scenario, window, FROM - 600, FROM + 1500, 30);
            for at in [FROM - 600, FROM + 150, FROM + 600, FROM + 1170, FROM + 1500] {
                let from_file: Vec<String> = samples(&file)
                    .into_iter()
                    .filter(|&(_, t, _)| t == at)
                    .map(|(s, _, v)| format!("{s} {v}"))
                    .collect();
                let scraped: Vec<String> = exposition(scenario, window, at)
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(str::to_string)
                    .collect();
                assert_eq!(scraped, from_file, "{scenario:?} at {at}");
            }
        }
    }

    #[test]
    fn a_scrape_declares_every_counter_under_its_own_name() {
        let text = exposition(Scenario::Healthy, Window::new(FROM, FROM + 1200), FROM);
        assert!(!text.contains("# EOF"));
        for family in [
            "istio_requests_total",
            "pilot_xds_pushes",
            "awscni_no_available_ip_addresses",
            "apiserver_admission_webhook_rejection_count",
            "karpenter_nodeclaims_disrupted_total",
        ] {
            assert!(
                text.contains(&format!("\n# TYPE {family} counter\n{family}{{")),
                "{family}"
            );
        }
        assert!(text.contains("# TYPE apiserver_request_duration_seconds histogram\n"));
        assert!(!text.contains(" unknown\n"));
        // Every sample is `series value`: no timestamp.
        assert!(text.lines().filter(|l| !l.starts_with('#')).all(|l| l
            .rsplit_once("} ")
            .is_some_and(|(_, v)| v.parse::<f64>().is_ok())));
    }

    #[test]
    fn the_spike_changes_only_the_spiking_service() {
        let (healthy, spike) = (text(Scenario::Healthy), text(Scenario::Istio5xxSpike));
        let healthy: HashSet<&str> = healthy.lines().collect();
        let differing: HashSet<String> = samples(&spike)
            .into_iter()
            .zip(spike.lines().filter(|l| !l.starts_with('#')))
            .filter(|(_, line)| !healthy.contains(line))
            .map(|((series, _, _), _)| series)
            .collect();
        assert!(!differing.is_empty());
        assert!(differing
            .iter()
            .all(|s| s.starts_with("istio_requests_total{") && s.contains(SPIKE_SERVICE)));
        assert!(differing
            .iter()
            .any(|s| s.contains("response_code=\"503\"")));
    }

    /// The increase of the summed series over [a, b].
    fn increase(
        scenario: Scenario,
        w: Window,
        prefix: &str,
        having: &[&str],
        a: i64,
        b: i64,
    ) -> f64 {
        total(&scrape(scenario, w, b), prefix, having)
            - total(&scrape(scenario, w, a), prefix, having)
    }

    #[test]
    fn trouble_is_on_only_inside_its_span() {
        let w = Window::new(FROM, FROM + 1000);
        let (on, off) = (w.at(0.1), w.at(0.95));
        let minute = |t: i64| (t, t + 60);
        // (scenario, series prefix, labels, increase per minute outside, inside)
        let errors_503 = [
            "reporter=\"destination\"",
            "reviews.bookinfo",
            "response_code=\"503\"",
        ];
        let liveness = ["reason=\"liveness\""];
        let cases: [(Scenario, &str, &[&str], f64, f64); 2] = [
            (
                Scenario::Istio5xxSpike,
                "istio_requests_total{",
                &errors_503,
                0.0,
                30.0 * 60.0 * 0.2,
            ),
            (
                Scenario::KarpenterLaunchFailures,
                "karpenter_nodeclaims_disrupted_total{",
                &liveness,
                0.0,
                0.5,
            ),
        ];
        for (scenario, prefix, having, outside, inside) in cases {
            for (a, b, expected) in [
                (minute(w.start).0, minute(w.start).1, outside),
                (on - 60, on, outside),
                (on + 120, on + 240, 2.0 * inside),
                (off, off + 60, outside),
                (w.end, w.end + 600, outside),
            ] {
                let got = increase(scenario, w, prefix, having, a, b);
                assert!(
                    (got - expected).abs() <= 1.0,
                    "{scenario:?} [{a}, {b}]: {got} != {expected}"
                );
            }
        }
        // The slow POSTs: the mean latency of the observations made in a minute.
        let mean = |a, b| {
            let post = ["verb=\"POST\""];
            let sum = increase(
                Scenario::ApiserverLatency,
                w,
                "apiserver_request_duration_seconds_sum",
                &post,
                a,
                b,
            );
            let count = increase(
                Scenario::ApiserverLatency,
                w,
                "apiserver_request_duration_seconds_count",
                &post,
                a,
                b,
            );
            sum / count
        };
        assert!((mean(on - 60, on) - 0.03).abs() < 0.005);
        assert!((mean(on + 60, on + 120) - 0.8).abs() < 0.05);
        assert!((mean(off + 60, off + 120) - 0.03).abs() < 0.005);
    }

    #[test]
    fn the_migration_replaces_every_al2_node_one_by_one() {
        let w = Window::new(FROM, FROM + 1200);
        let old_nodes = |t| {
            let s = scrape(Scenario::Al2023Migration, w, t);
            let old = total(&s, "kube_node_info{", &["os_image=\"Amazon Linux 2\""]);
            let all = total(&s, "kube_node_info{", &[]);
            (old, all)
        };
        let all_old = MIGRATION.len() as f64;
        assert_eq!(old_nodes(w.start - 3600).0, all_old);
        // One went before the window; the others go one by one.
        assert_eq!(old_nodes(w.start).0, all_old - 1.0);
        assert!(old_nodes(w.at(0.05)).0 > 0.0);
        let mut last = all_old;
        let mut decreases = 0;
        for t in (w.start - 3600..=w.end).step_by(15) {
            let (old, _) = old_nodes(t);
            assert!(old <= last, "the number of old nodes went up at {t}");
            decreases += usize::from(old < last);
            last = old;
        }
        assert_eq!(decreases, MIGRATION.len());
        assert_eq!(
            (old_nodes(w.at(0.4)).0, old_nodes(w.end).1),
            (0.0, NODES.len() as f64 + MIGRATION.len() as f64)
        );
        // Each old node runs the old kubelet, and Karpenter counts each replacement as drift.
        let s = scrape(Scenario::Al2023Migration, w, w.start);
        assert!(s.keys().any(|k| k.starts_with("kube_node_info{")
            && k.contains(OLD_KUBELET)
            && k.contains(AL2_IMAGE)));
        let drift = ["reason=\"drifted\""];
        assert_eq!(
            increase(
                Scenario::Al2023Migration,
                w,
                "karpenter_nodeclaims_disrupted_total{",
                &drift,
                w.start - 3600,
                w.end
            ),
            MIGRATION.len() as f64
        );
    }

    #[test]
    fn every_node_is_migrated_in_the_healthy_data() {
        let text = text(Scenario::Healthy);
        let infos: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("kube_node_info{"))
            .collect();
        assert!(!infos.is_empty());
        assert!(infos
            .iter()
            .all(|l| l.contains("os_image=\"Amazon Linux 2023")
                && l.contains("kubelet_version=\"v1.34.")));
        assert!(text
            .lines()
            .filter(|l| l.starts_with("istio_build{"))
            .all(|l| l.contains("tag=\"1.28.")));
    }

    #[test]
    fn the_timeline_says_what_happens_when() {
        let w = Window::new(FROM, FROM + 1200);
        assert!(timeline(Scenario::Healthy, w).is_empty());
        for &scenario in &all_scenarios()[1..] {
            let events = timeline(scenario, w);
            assert!(events.len() >= 2, "{scenario:?}");
            assert!(events.windows(2).all(|e| e[0].0 <= e[1].0));
            // Only the migration started before the window.
            assert!(events.iter().all(
                |&(t, _)| t <= w.end && (t >= w.start || scenario == Scenario::Al2023Migration)
            ));
        }
        let spike = timeline(Scenario::Istio5xxSpike, w);
        assert_eq!(spike[0].0, FROM + 120);
        assert!(spike[0].1.contains("istio_5xx_ratio"));
    }
}
