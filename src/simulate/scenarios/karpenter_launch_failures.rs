//! `karpenter-launch-failures`: every 2 minutes a NodeClaim never registers and Karpenter deletes
//! it. `liveness` is Karpenter 1.0–1.6's reason for a NodeClaim whose node never registered (split
//! into launch_timeout / registration_timeout from 1.7).

use crate::simulate::model::karpenter::FailingLaunches;
use crate::simulate::model::scene::Span;

#[rustfmt::skip]
pub const KARPENTER_LAUNCH_FAILURES: FailingLaunches = FailingLaunches {
    span: Span {
        from: 0.1, to: 0.95,
        what: "a NodeClaim of NodePool general-purpose never registers every 2 minutes (Karpenter deletes it: reason liveness)",
        expect: "karpenter_nodeclaim_launch_failures warns at the first failure and fails at the third within 15m: karpenter and nodes no-go",
    },
    disruption: ("liveness", "general-purpose", "on-demand"),
    per_sec: 1.0 / 120.0,
};
