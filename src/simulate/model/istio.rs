//! Istio: traffic between mesh services as both proxies of each call report it, sidecar and
//! istiod builds, istiod's pushes and rejects; and [`ErrorSpike`], the trouble of the Istio
//! scenario.

use super::scene::{Scene, Span, Trouble};
use super::time::{grows, Shape};
use super::writer::{labels, Writer};

const ISTIO_TAG: &str = "1.28.1";

/// Mesh services: destination service, workload, its caller, requests/s, 5xx share when healthy.
#[rustfmt::skip]
const SERVICES: &[(&str, &str, &str, f64, f64)] = &[
    ("productpage.bookinfo.svc.cluster.local", "productpage-v1", "istio-ingressgateway", 40.0, 0.001),
    ("reviews.bookinfo.svc.cluster.local", "reviews-v2", "productpage-v1", 30.0, 0.0),
    ("ratings.bookinfo.svc.cluster.local", "ratings-v1", "reviews-v2", 20.0, 0.0),
    ("details.bookinfo.svc.cluster.local", "details-v1", "productpage-v1", 20.0, 0.0005),
];
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

/// An Istio scenario: one mesh service answers `share` of its requests with 503 during the
/// trouble.
pub struct ErrorSpike {
    pub span: Span,
    pub service: &'static str,
    pub share: f64,
}

impl Trouble for ErrorSpike {
    fn span(&self) -> Option<&Span> {
        Some(&self.span)
    }

    fn error_share(&self, service: &str) -> Option<f64> {
        (service == self.service).then_some(self.share)
    }
}

/// Every Istio series of `scene`.
pub fn write(scene: &Scene, w: &mut Writer) {
    let long_ago = scene.long_ago;
    for &(service, workload, caller, per_sec, healthy_5xx) in SERVICES {
        let spike = scene.trouble.error_share(service);
        let errors = Shape::changed(healthy_5xx, spike, scene.span);
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
}
