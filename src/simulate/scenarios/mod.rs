//! Synthetic metrics of an EKS upgrade, for `simulate`, the local demo and the integration tests.
//!
//! The default signal pack (`queries/*.yaml`) reads metrics of kube-apiserver, kube-state-metrics,
//! Karpenter, Istio, CoreDNS and the VPC CNI. Showing the daemon, or testing the pack end to end,
//! needs a real Prometheus that holds those series with the label sets the queries group and join
//! by. One model of the cluster ([`super::model`]), every series a function of time, is rendered
//! two ways: [`openmetrics`] / [`openmetrics_window`] write samples over a range of times as
//! OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`, and [`exposition`] writes
//! the value of every series at one time, without timestamps, in the Prometheus text format for a
//! scrape (`simulate --listen`, see [`super::exporter`]). It is pure (no clock, no I/O, no
//! randomness), so one window always gives the same text, and a backfilled file and a live
//! exporter that share a [`Window`] agree sample for sample.
//!
//! One file per scenario: [`Scenario::Healthy`] is the healthy cluster of the model; every other
//! is that cluster with one thing going wrong for part of the [`Window`], the scenario's
//! timeline, told to the model through the hooks of [`Trouble`]. Trouble starts a tenth into the
//! window and stops shortly before its end (from a tenth to 95%: with `simulate --listen
//! --duration 20m` that is minute 2 to minute 19), so a live simulator shows the gate flip from go
//! to no-go and back; the node migration has a timeline of its own. Before the window the cluster
//! is as at its start (the node migration began a little before it), after it as at its end. A
//! step of 60 s or less keeps every signal healthy (5-minute rates need a few samples).
//!
//! Adding a scenario: a file here whose value implements [`Trouble`] (often a row of a kind the
//! model already has: [`SlowEndpoint`](super::model::apiserver::SlowEndpoint),
//! [`FailingLaunches`](super::model::karpenter::FailingLaunches),
//! [`ErrorSpike`](super::model::istio::ErrorSpike)), its variant in [`Scenario`] (the doc comment
//! is its `--help` line), and its arm in `trouble()` below.

mod al2023_migration;
mod apiserver_latency;
mod apiserver_list_regression;
mod healthy;
mod istio_5xx_spike;
mod karpenter_launch_failures;

pub use crate::simulate::model::time::Window;

use crate::simulate::model::scene::Trouble;
use crate::simulate::model::writer::{Format, Writer};

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

/// What `scenario` changes in the healthy cluster: the one place that knows every scenario.
fn trouble(scenario: Scenario) -> &'static dyn Trouble {
    match scenario {
        Scenario::Healthy => &healthy::Healthy,
        Scenario::Istio5xxSpike => &istio_5xx_spike::ISTIO_5XX_SPIKE,
        Scenario::KarpenterLaunchFailures => &karpenter_launch_failures::KARPENTER_LAUNCH_FAILURES,
        Scenario::ApiserverLatency => &apiserver_latency::APISERVER_LATENCY,
        Scenario::ApiserverListRegression => &apiserver_list_regression::APISERVER_LIST_REGRESSION,
        Scenario::Al2023Migration => &al2023_migration::Al2023Migration,
    }
}

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
    crate::simulate::model::write(trouble(scenario), window, &mut w);
    w.finish()
}

/// The value of every series at `at_unix`, in the Prometheus text format (0.0.4) without
/// timestamps: one scrape of a live simulator. The same model as [`openmetrics_window`].
pub fn exposition(scenario: Scenario, window: Window, at_unix: i64) -> String {
    let mut w = Writer::new(Format::Text, vec![at_unix]);
    write(scenario, window, &mut w);
    w.finish()
}

/// Every series of `scenario` over `window` into `w`: one cluster of a fleet's text.
pub(in crate::simulate) fn write(scenario: Scenario, window: Window, w: &mut Writer) {
    crate::simulate::model::write(trouble(scenario), window, w);
}

/// What happens when in `scenario` over `window`, for people: (unix time, sentence), in time order.
pub fn timeline(scenario: Scenario, window: Window) -> Vec<(i64, String)> {
    let mut events = trouble(scenario).timeline(window);
    events.sort_by_key(|&(t, _)| t);
    events
}

#[cfg(test)]
mod tests;
