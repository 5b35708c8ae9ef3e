//! `apiserver-list-regression`: cluster-wide LISTs of nodes get 4x slower, still far below any
//! absolute threshold, so only a baseline catches it.

use crate::simulate::model::apiserver::SlowEndpoint;
use crate::simulate::model::scene::Span;

#[rustfmt::skip]
pub const APISERVER_LIST_REGRESSION: SlowEndpoint = SlowEndpoint {
    span: Span {
        from: 0.1, to: 0.95,
        what: "cluster-wide LIST nodes takes 1 s on average instead of 0.25 s (p99 about 4.6 s instead of 1.15 s: far below the 30 s SLO)",
        expect: "with the baseline pinned at the window's start (UPGRADE_GATE__BASELINE__END), apiserver_list_p99_latency is 4x its baseline: it warns (2x) within minutes and fails (3x) once that has held for its `for` (10m): precheck and control-plane no-go. Against a moving baseline without a day of history nothing fires",
    },
    verb: "LIST",
    resource: "nodes",
    mean: 1.0,
};
