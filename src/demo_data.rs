//! Synthetic metrics of an EKS upgrade, for `simulate`, the local demo and the integration tests.
//!
//! The default signal pack (`queries/*.yaml`) reads metrics of kube-apiserver, kube-state-metrics,
//! Karpenter, Istio, CoreDNS and the VPC CNI. Showing the daemon, or testing the pack end to end,
//! needs a real Prometheus that holds those series with the label sets the queries group and join
//! by. [`openmetrics`] writes them as OpenMetrics text for
//! `promtool tsdb create-blocks-from openmetrics`. It is pure (no clock, no I/O, no randomness),
//! so one window always gives the same text.
//!
//! Table-driven: one table per component (nodes, apiserver endpoints, mesh services, ...) and a
//! small writer that knows counters, gauges and histograms. [`Scenario::Healthy`] is a cluster at
//! the end of the upgrade where every signal of the pack is healthy, or has no series where its
//! `no_data` is `ok`: every node on AL2023 with the 1.34 kubelet, every proxy and istiod on Istio
//! 1.28, Karpenter 1.6, error counters flat, two nodes joining during the window.
//! [`Scenario::Istio5xxSpike`] is the same cluster with one service answering 20% 5xx throughout.
//!
//! OpenMetrics as promtool (Debian's 2.42) reads it: a `# TYPE` line before each family, all
//! samples of a family together, each series in increasing time order, `# EOF` last. Counter
//! samples are named `<family>_total`, so counters exported without that suffix (Istio's
//! `pilot_xds_pushes`, the VPC CNI's `awscni_*`, the apiserver's `..._rejection_count`) are declared
//! `unknown`. Histograms are `_bucket{le}` (cumulative, up to `+Inf`), `_sum` and `_count`.
//! A step of 60 s or less keeps every signal healthy (5-minute rates need a few samples).

use std::fmt::Write as _;

/// Scenario of the synthetic upgrade data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Healthy,
    #[value(name = "istio-5xx-spike")]
    Istio5xxSpike,
}

/// How long every component had been running at `from_unix`: counters start from this much traffic.
const UPTIME_SECS: i64 = 6 * 3600;
/// Nodes created during the window take this long from registration to Ready.
const JOIN_SECS: i64 = 45;
/// The pending pod that makes Karpenter launch a node was created this long before the node.
const PENDING_SECS: i64 = 90;

const AL2023_IMAGE: &str = "Amazon Linux 2023.8.20250818";
const K8S_VERSION: &str = "v1.34.1-eks-113cf36";
const ISTIO_TAG: &str = "1.28.1";
const KARPENTER_VERSION: &str = "1.6.3";

/// Nodes: name, its aws-node (VPC CNI) pod, and when it was created as a fraction of the window
/// (`None`: days before it). Those created in the window are Karpenter's answer to a pending pod.
#[rustfmt::skip]
const NODES: &[(&str, &str, Option<f64>)] = &[
    ("ip-10-0-11-21.ap-northeast-2.compute.internal", "aws-node-4kq8z", None),
    ("ip-10-0-12-34.ap-northeast-2.compute.internal", "aws-node-9xw2d", None),
    ("ip-10-0-13-47.ap-northeast-2.compute.internal", "aws-node-bt7mr", None),
    ("ip-10-0-11-58.ap-northeast-2.compute.internal", "aws-node-h3n6c", Some(0.3)),
    ("ip-10-0-12-69.ap-northeast-2.compute.internal", "aws-node-p5v1s", Some(0.6)),
];

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
const SPIKE_SERVICE: &str = "reviews.bookinfo.svc.cluster.local";
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

/// OpenMetrics text (ending in `# EOF\n`) with one sample every `step_secs` seconds for every
/// series from `from_unix` to `to_unix` (inclusive, unix seconds), for every metric the default pack queries,
/// with label sets the queries expect (several destination_services, verbs, nodepools, nodes...).
pub fn openmetrics(scenario: Scenario, from_unix: i64, to_unix: i64, step_secs: i64) -> String {
    assert!(step_secs > 0, "step_secs must be positive");
    let mut w = Writer {
        from: from_unix,
        to: to_unix,
        step: step_secs,
        families: Vec::new(),
    };
    let long_ago = from_unix - UPTIME_SECS;

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
                w.counter(
                    "apiserver_request_total",
                    &l,
                    long_ago,
                    0.0,
                    per_sec * share,
                );
            }
        }
        w.histogram(
            "apiserver_request_duration_seconds",
            &labels(&base),
            APISERVER_BUCKETS,
            per_sec,
            mean,
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
        w.gauge(
            "apiserver_storage_objects",
            &format!("{l},resource=\"pods\""),
            |_| Some(120.0),
        );
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
            long_ago,
            count,
            per_sec,
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
    for &(node, aws_node, created_at) in NODES {
        let created = match created_at {
            None => from_unix - 3 * 86_400,
            Some(f) => from_unix + (f * (to_unix - from_unix) as f64) as i64,
        };
        let exists = move |t: i64| t >= created;
        let ready = move |t: i64| t >= created + JOIN_SECS;
        let info = labels(&[
            ("node", node),
            ("os_image", AL2023_IMAGE),
            ("kubelet_version", K8S_VERSION),
            ("kernel_version", "6.12.40-63.114.amzn2023.x86_64"),
            ("container_runtime_version", "containerd://2.0.5"),
            ("provider_id", "aws:///ap-northeast-2a/i-0abc"),
        ]);
        let n = labels(&[("node", node)]);
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
            ("instance", node),
            ("git_version", K8S_VERSION),
        ]);
        w.gauge("kubernetes_build_info", &kubelet, |t| {
            exists(t).then_some(1.0)
        });

        let pod = labels(&[("pod", aws_node)]);
        w.counter("awscni_no_available_ip_addresses", &pod, created, 0.0, 0.0);
        if created_at.is_none() {
            // Errors ipamd met long ago on the older nodes; they no longer grow.
            let fn_ = format!("{pod},fn=\"increaseIPPoolAllocIPAddressFailed\"");
            w.counter("awscni_ipamd_error_count", &fn_, created, 2.0, 0.0);
            let api =
                format!("{pod},api=\"DescribeNetworkInterfaces\",error=\"RequestLimitExceeded\"");
            w.counter("awscni_aws_api_error_count", &api, created, 1.0, 0.0);
        } else {
            let suffix = aws_node.trim_start_matches("aws-node-");
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
    for &(reason, nodepool, capacity, count, per_sec) in KARPENTER_DISRUPTIONS {
        let l = labels(&[
            ("reason", reason),
            ("nodepool", nodepool),
            ("capacity_type", capacity),
        ]);
        w.counter(
            "karpenter_nodeclaims_disrupted_total",
            &l,
            long_ago,
            count,
            per_sec,
        );
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
            long_ago,
            count,
            0.0,
        );
    }

    // Istio: service traffic from both proxies of each call, sidecar and istiod builds, istiod pushes.
    for &(service, workload, caller, per_sec, healthy_5xx) in SERVICES {
        let errors = match scenario {
            Scenario::Istio5xxSpike if service == SPIKE_SERVICE => SPIKE_5XX_SHARE,
            _ => healthy_5xx,
        };
        for reporter in ["destination", "source"] {
            for (code, share) in [("200", 1.0 - errors), ("503", errors)] {
                if share > 0.0 {
                    let l = labels(&[
                        ("reporter", reporter),
                        ("source_workload", caller),
                        ("destination_service", service),
                        ("destination_workload", workload),
                        ("destination_workload_namespace", "bookinfo"),
                        ("response_code", code),
                        ("response_flags", "-"),
                    ]);
                    w.counter("istio_requests_total", &l, long_ago, 0.0, per_sec * share);
                }
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
                long_ago,
                0.0,
                0.5,
            );
        }
        // A send error and a reject from long ago: the series exist, their rates are 0.
        w.counter(
            "pilot_xds_pushes",
            &format!("{p},type=\"eds_senderr\""),
            long_ago,
            2.0,
            0.0,
        );
        w.counter(
            "pilot_total_xds_rejects",
            &format!("{p},type=\"lds\""),
            long_ago,
            1.0,
            0.0,
        );
        w.counter("pilot_total_xds_internal_errors", &p, long_ago, 0.0, 0.0);
        w.histogram(
            "pilot_proxy_convergence_time",
            &p,
            CONVERGENCE_BUCKETS,
            2.0,
            0.05,
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
            w.counter("coredns_dns_responses_total", &l, long_ago, 0.0, per_sec);
        }
    }

    w.finish()
}

/// `a="b",c="d"` from label pairs (the values here never need escaping).
fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(",")
}

/// Metric families in first-use order, each with its samples kept together as OpenMetrics requires.
struct Writer {
    from: i64,
    to: i64,
    step: i64,
    /// (family name, OpenMetrics type, sample lines)
    families: Vec<(String, &'static str, String)>,
}

impl Writer {
    fn times(&self) -> impl Iterator<Item = i64> {
        let (from, to, step) = (self.from, self.to, self.step);
        (0..)
            .map(move |i| from + i * step)
            .take_while(move |&t| t <= to)
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

    /// A gauge with `value(t)` at each sample time; `None` leaves the time out.
    fn gauge(&mut self, name: &str, labels: &str, value: impl Fn(i64) -> Option<f64>) {
        let samples: Vec<(i64, f64)> = self
            .times()
            .filter_map(|t| value(t).map(|v| (t, v)))
            .collect();
        let body = self.family(name, "gauge");
        for (t, v) in samples {
            let _ = writeln!(body, "{name}{{{labels}}} {v} {t}");
        }
    }

    /// A counter worth `start` at `since` and growing by `per_sec`, sampled from `since` on. A name
    /// ending in `_total` is an OpenMetrics counter; any other is exported as `unknown`.
    fn counter(&mut self, name: &str, labels: &str, since: i64, start: f64, per_sec: f64) {
        let (family, kind) = match name.strip_suffix("_total") {
            Some(family) => (family, "counter"),
            None => (name, "unknown"),
        };
        let samples: Vec<i64> = self.times().filter(|&t| t >= since).collect();
        let body = self.family(family, kind);
        for t in samples {
            let v = (start + per_sec * (t - since) as f64).floor();
            let _ = writeln!(body, "{name}{{{labels}}} {v} {t}");
        }
    }

    /// A histogram of `per_sec` observations since long before the window, exponentially
    /// distributed around `mean` (the share at or below `le` is `1 - e^(-le/mean)`), so its
    /// p99 is about 4.6 × mean, capped by the largest bucket.
    fn histogram(&mut self, name: &str, labels: &str, buckets: &[f64], per_sec: f64, mean: f64) {
        let times: Vec<i64> = self.times().collect();
        let from = self.from;
        let sep = if labels.is_empty() { "" } else { "," };
        let body = self.family(name, "histogram");
        for t in times {
            let observed = per_sec * (UPTIME_SECS + t - from) as f64;
            for &le in buckets {
                let below = (observed * (1.0 - (-le / mean).exp())).floor();
                let _ = writeln!(
                    body,
                    "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {below} {t}"
                );
            }
            let count = observed.floor();
            let _ = writeln!(
                body,
                "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count} {t}"
            );
            let _ = writeln!(body, "{name}_sum{{{labels}}} {} {t}", observed * mean);
            let _ = writeln!(body, "{name}_count{{{labels}}} {count} {t}");
        }
    }

    fn finish(self) -> String {
        let mut out = String::new();
        for (name, kind, body) in self.families {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            out.push_str(&body);
        }
        out.push_str("# EOF\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn is_well_formed_openmetrics() {
        let text = text(Scenario::Healthy);
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
        let mut last: BTreeMap<String, (i64, f64)> = BTreeMap::new();
        for (series, t, v) in samples(&text) {
            if let Some(&(pt, pv)) = last.get(&series) {
                assert!(t > pt, "{series}: {t} after {pt}");
                if series.contains("_total{") || series.contains("_bucket{") {
                    assert!(v >= pv, "{series} went down");
                }
            }
            last.insert(series, (t, v));
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
}
