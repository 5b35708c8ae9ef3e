//! `istio-5xx-spike`: one mesh service answers a fifth of its requests with 503.

use crate::simulate::model::istio::ErrorSpike;
use crate::simulate::model::scene::Span;

/// The service that fails.
pub(crate) const SPIKE_SERVICE: &str = "reviews.bookinfo.svc.cluster.local";

#[rustfmt::skip]
pub const ISTIO_5XX_SPIKE: ErrorSpike = ErrorSpike {
    span: Span {
        from: 0.1, to: 0.95,
        what: "reviews.bookinfo.svc.cluster.local answers 20% of its requests with 503",
        expect: "istio_5xx_ratio warns within a minute and fails once that has held for its `for` (5m): every phase no-go",
    },
    service: SPIKE_SERVICE,
    share: 0.2,
};
