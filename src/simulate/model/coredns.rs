//! CoreDNS: responses per rcode and request latency, per pod.

use super::scene::Scene;
use super::time::{grows, Shape};
use super::writer::{labels, Writer};

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

/// Every CoreDNS series of `scene`.
pub fn write(scene: &Scene, w: &mut Writer) {
    let long_ago = scene.long_ago;
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
