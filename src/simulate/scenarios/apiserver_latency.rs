//! `apiserver-latency`: POST requests (pod creation behind a slow admission webhook) get slow
//! enough for the absolute latency threshold.

use crate::simulate::model::apiserver::SlowEndpoint;
use crate::simulate::model::scene::Span;

#[rustfmt::skip]
pub const APISERVER_LATENCY: SlowEndpoint = SlowEndpoint {
    span: Span {
        from: 0.1, to: 0.95,
        what: "POST requests (pod creation behind a slow admission webhook) take 0.8 s on average, p99 about 3.7 s",
        expect: "apiserver_p99_latency_by_verb warns at once and fails once that has held for its `for` (10m): precheck and control-plane no-go",
    },
    verb: "POST",
    resource: "pods",
    mean: 0.8,
};
