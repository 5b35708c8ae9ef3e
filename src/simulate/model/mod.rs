//! One model of an EKS cluster under upgrade, every series a function of time: the healthy
//! cluster, one module per component, and the hooks through which a scenario changes it
//! ([`scene::Trouble`]).
//!
//! Table-driven: each component module holds the tables of its series (nodes, apiserver
//! endpoints, mesh services, ...) and writes them; a scenario changes a component through the
//! hooks of [`scene::Trouble`] that the component asks. The healthy cluster is at the end of the
//! upgrade, where every signal of the default pack is healthy, or has no series where its
//! `no_data` is `ok`: every node on AL2023 with the 1.34 kubelet, every proxy and istiod on Istio
//! 1.28, Karpenter 1.6, error counters flat, two nodes joining during the window.
//!
//! Pure (no clock, no I/O, no randomness): one window always gives the same series.
//!
//! | module | what |
//! | --- | --- |
//! | `scene.rs` | what a scenario may change, and one rendering's circumstances |
//! | `time.rs` | the window, piecewise constant quantities and their integrals |
//! | `writer.rs` | OpenMetrics and the text format: families, counters, gauges, histograms |
//! | `apiserver.rs`, `nodes.rs`, `karpenter.rs`, `istio.rs`, `coredns.rs` | the components |

pub mod apiserver;
pub mod coredns;
pub mod istio;
pub mod karpenter;
pub mod nodes;
pub mod scene;
pub mod time;
pub mod writer;

use scene::{Scene, Trouble};
use time::Window;
use writer::Writer;

/// How long every component had been running at the window's start: counters start from this much traffic.
const UPTIME_SECS: i64 = 6 * 3600;

/// Every series of the cluster with `trouble` over `window`, written to `w` at its sample times,
/// component by component (the order of the families in the text).
pub fn write(trouble: &dyn Trouble, window: Window, w: &mut Writer) {
    let span = trouble
        .span()
        .map_or((0, 0), |t| (window.at(t.from), window.at(t.to)));
    let scene = Scene {
        trouble,
        window,
        long_ago: window.start - UPTIME_SECS,
        span,
    };
    apiserver::write(&scene, w);
    let mut nodes = nodes::healthy(window);
    nodes.extend(trouble.nodes(window));
    nodes::write(&nodes, w);
    karpenter::write(&scene, w);
    istio::write(&scene, w);
    coredns::write(&scene, w);
}
