//! The scenarios as text: well-formed in both formats, the same values either way, and each
//! trouble where and when it should be.

use std::collections::{BTreeMap, HashSet};

use clap::ValueEnum;

use super::al2023_migration::{AL2_IMAGE, MIGRATION, OLD_KUBELET};
use super::istio_5xx_spike::SPIKE_SERVICE;
use super::*;
use crate::simulate::model::apiserver::APISERVER_BUCKETS;
use crate::simulate::model::nodes::NODES;

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

/// series → value of one scrape (text format).
fn scrape(scenario: Scenario, window: Window, at: i64) -> BTreeMap<String, f64> {
    exposition(scenario, window, at)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, v) = l.rsplit_once(' ').unwrap();
            (series.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// Sum of the values of the series starting with `prefix` and containing every one of `having`.
fn total(scrape: &BTreeMap<String, f64>, prefix: &str, having: &[&str]) -> f64 {
    scrape
        .iter()
        .filter(|(s, _)| s.starts_with(prefix) && having.iter().all(|h| s.contains(h)))
        .map(|(_, v)| v)
        .sum()
}

fn all_scenarios() -> &'static [Scenario] {
    Scenario::value_variants()
}

#[test]
fn is_well_formed_openmetrics() {
    for &scenario in all_scenarios() {
        let text = text(scenario);
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
        let counters: HashSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter(|d| d.ends_with(" counter") || d.ends_with(" unknown"))
            .map(|d| d.split(' ').next().unwrap().to_string())
            .collect();
        let mut last: BTreeMap<String, (i64, f64)> = BTreeMap::new();
        for (series, t, v) in samples(&text) {
            if let Some(&(pt, pv)) = last.get(&series) {
                assert!(t > pt, "{series}: {t} after {pt}");
                let name = series.split('{').next().unwrap();
                if counters.contains(name.trim_end_matches("_total"))
                    || series.contains("_bucket{")
                    || series.contains("_count{")
                {
                    assert!(v >= pv, "{scenario:?}: {series} went down at {t}");
                }
            }
            last.insert(series, (t, v));
        }
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
fn a_scrape_is_the_backfilled_sample_at_that_time_without_timestamp() {
    let window = Window::new(FROM, FROM + 1200);
    for &scenario in all_scenarios() {
        let file = openmetrics_window(scenario, window, FROM - 600, FROM + 1500, 30);
        for at in [FROM - 600, FROM + 150, FROM + 600, FROM + 1170, FROM + 1500] {
            let from_file: Vec<String> = samples(&file)
                .into_iter()
                .filter(|&(_, t, _)| t == at)
                .map(|(s, _, v)| format!("{s} {v}"))
                .collect();
            let scraped: Vec<String> = exposition(scenario, window, at)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_string)
                .collect();
            assert_eq!(scraped, from_file, "{scenario:?} at {at}");
        }
    }
}

#[test]
fn a_scrape_declares_every_counter_under_its_own_name() {
    let text = exposition(Scenario::Healthy, Window::new(FROM, FROM + 1200), FROM);
    assert!(!text.contains("# EOF"));
    for family in [
        "istio_requests_total",
        "pilot_xds_pushes",
        "awscni_no_available_ip_addresses",
        "apiserver_admission_webhook_rejection_count",
        "karpenter_nodeclaims_disrupted_total",
    ] {
        assert!(
            text.contains(&format!("\n# TYPE {family} counter\n{family}{{")),
            "{family}"
        );
    }
    assert!(text.contains("# TYPE apiserver_request_duration_seconds histogram\n"));
    assert!(!text.contains(" unknown\n"));
    // Every sample is `series value`: no timestamp.
    assert!(text.lines().filter(|l| !l.starts_with('#')).all(|l| l
        .rsplit_once("} ")
        .is_some_and(|(_, v)| v.parse::<f64>().is_ok())));
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

/// The increase of the summed series over [a, b].
fn increase(scenario: Scenario, w: Window, prefix: &str, having: &[&str], a: i64, b: i64) -> f64 {
    total(&scrape(scenario, w, b), prefix, having) - total(&scrape(scenario, w, a), prefix, having)
}

#[test]
fn trouble_is_on_only_inside_its_span() {
    let w = Window::new(FROM, FROM + 1000);
    let (on, off) = (w.at(0.1), w.at(0.95));
    let minute = |t: i64| (t, t + 60);
    // (scenario, series prefix, labels, increase per minute outside, inside)
    let errors_503 = [
        "reporter=\"destination\"",
        "reviews.bookinfo",
        "response_code=\"503\"",
    ];
    let liveness = ["reason=\"liveness\""];
    let cases: [(Scenario, &str, &[&str], f64, f64); 2] = [
        (
            Scenario::Istio5xxSpike,
            "istio_requests_total{",
            &errors_503,
            0.0,
            30.0 * 60.0 * 0.2,
        ),
        (
            Scenario::KarpenterLaunchFailures,
            "karpenter_nodeclaims_disrupted_total{",
            &liveness,
            0.0,
            0.5,
        ),
    ];
    for (scenario, prefix, having, outside, inside) in cases {
        for (a, b, expected) in [
            (minute(w.start).0, minute(w.start).1, outside),
            (on - 60, on, outside),
            (on + 120, on + 240, 2.0 * inside),
            (off, off + 60, outside),
            (w.end, w.end + 600, outside),
        ] {
            let got = increase(scenario, w, prefix, having, a, b);
            assert!(
                (got - expected).abs() <= 1.0,
                "{scenario:?} [{a}, {b}]: {got} != {expected}"
            );
        }
    }
    // The slow POSTs: the mean latency of the observations made in a minute.
    let mean = |a, b| {
        let post = ["verb=\"POST\""];
        let sum = increase(
            Scenario::ApiserverLatency,
            w,
            "apiserver_request_duration_seconds_sum",
            &post,
            a,
            b,
        );
        let count = increase(
            Scenario::ApiserverLatency,
            w,
            "apiserver_request_duration_seconds_count",
            &post,
            a,
            b,
        );
        sum / count
    };
    assert!((mean(on - 60, on) - 0.03).abs() < 0.005);
    assert!((mean(on + 60, on + 120) - 0.8).abs() < 0.05);
    assert!((mean(off + 60, off + 120) - 0.03).abs() < 0.005);
}

#[test]
fn the_migration_replaces_every_al2_node_one_by_one() {
    let w = Window::new(FROM, FROM + 1200);
    let old_nodes = |t| {
        let s = scrape(Scenario::Al2023Migration, w, t);
        let old = total(&s, "kube_node_info{", &["os_image=\"Amazon Linux 2\""]);
        let all = total(&s, "kube_node_info{", &[]);
        (old, all)
    };
    let all_old = MIGRATION.len() as f64;
    assert_eq!(old_nodes(w.start - 3600).0, all_old);
    // One went before the window; the others go one by one.
    assert_eq!(old_nodes(w.start).0, all_old - 1.0);
    assert!(old_nodes(w.at(0.05)).0 > 0.0);
    let mut last = all_old;
    let mut decreases = 0;
    for t in (w.start - 3600..=w.end).step_by(15) {
        let (old, _) = old_nodes(t);
        assert!(old <= last, "the number of old nodes went up at {t}");
        decreases += usize::from(old < last);
        last = old;
    }
    assert_eq!(decreases, MIGRATION.len());
    assert_eq!(
        (old_nodes(w.at(0.4)).0, old_nodes(w.end).1),
        (0.0, NODES.len() as f64 + MIGRATION.len() as f64)
    );
    // Each old node runs the old kubelet, and Karpenter counts each replacement as drift.
    let s = scrape(Scenario::Al2023Migration, w, w.start);
    assert!(s.keys().any(|k| k.starts_with("kube_node_info{")
        && k.contains(OLD_KUBELET)
        && k.contains(AL2_IMAGE)));
    let drift = ["reason=\"drifted\""];
    assert_eq!(
        increase(
            Scenario::Al2023Migration,
            w,
            "karpenter_nodeclaims_disrupted_total{",
            &drift,
            w.start - 3600,
            w.end
        ),
        MIGRATION.len() as f64
    );
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

#[test]
fn the_timeline_says_what_happens_when() {
    let w = Window::new(FROM, FROM + 1200);
    assert!(timeline(Scenario::Healthy, w).is_empty());
    for &scenario in &all_scenarios()[1..] {
        let events = timeline(scenario, w);
        assert!(events.len() >= 2, "{scenario:?}");
        assert!(events.windows(2).all(|e| e[0].0 <= e[1].0));
        // Only the migration started before the window.
        assert!(events
            .iter()
            .all(|&(t, _)| t <= w.end && (t >= w.start || scenario == Scenario::Al2023Migration)));
    }
    let spike = timeline(Scenario::Istio5xxSpike, w);
    assert_eq!(spike[0].0, FROM + 120);
    assert!(spike[0].1.contains("istio_5xx_ratio"));
}
