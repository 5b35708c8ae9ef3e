//! kube-apiserver: requests and their latency per endpoint, builds, stored objects, admission
//! webhook rejections and a deprecated API; and [`SlowEndpoint`], the trouble of the apiserver
//! scenarios.

use super::scene::{Scene, Span, Trouble, K8S_VERSION};
use super::time::{grows, Shape};
use super::writer::{labels, Writer};

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
pub(crate) const APISERVER_BUCKETS: &[f64] = &[
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

/// An apiserver scenario: requests to one endpoint (verb, resource, no subresource) take `mean`
/// seconds on average during the trouble (p99 ≈ 4.6 × mean).
pub struct SlowEndpoint {
    pub span: Span,
    pub verb: &'static str,
    pub resource: &'static str,
    pub mean: f64,
}

impl Trouble for SlowEndpoint {
    fn span(&self) -> Option<&Span> {
        Some(&self.span)
    }

    fn mean_latency(&self, verb: &str, resource: &str, subresource: &str) -> Option<f64> {
        ((verb, resource, subresource) == (self.verb, self.resource, "")).then_some(self.mean)
    }
}

/// Every apiserver series of `scene`.
pub fn write(scene: &Scene, w: &mut Writer) {
    let long_ago = scene.long_ago;
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
        let slow = scene.trouble.mean_latency(verb, resource, sub);
        w.histogram(
            "apiserver_request_duration_seconds",
            &labels(&base),
            APISERVER_BUCKETS,
            long_ago,
            per_sec,
            Shape::changed(mean, slow, scene.span),
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
}
