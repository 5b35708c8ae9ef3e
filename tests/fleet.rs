//! A fleet through real processes on loopback (issue 18, items 2 and 8): clusters whose own
//! Prometheus remote-writes into a central one ([`common::fleet`]). The rewritten queries of the
//! default pack, asked once of the central store, answer for each cluster exactly what the
//! original queries answer on that cluster's own Prometheus; and a cluster whose agent dies goes
//! silent in the central store, which is what the gate's presence check reads.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::fleet::{instant, unix_now, FleetOptions, Store, TestFleet, FLEET_LABEL};
use serde_json::Value;
use upgrade_gate::engine::fleet::{rewrite_query, Scope};
use upgrade_gate::engine::snapshot::Snapshot;
use upgrade_gate::evaluation;
use upgrade_gate::evaluation::fleet::FleetEvaluator;
use upgrade_gate::prometheus::source::PrometheusSource;
use upgrade_gate::simulate::scenarios::Scenario;

/// One cluster's answer to a range query: each series' labels (without the fleet label) and its
/// (time, value) samples.
type Answer = BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>>;

/// `result` of a range query as [`Answer`]s keyed by the fleet label's value (`""` where a series
/// has none, as on a cluster's own Prometheus).
fn by_cluster(result: &[Value]) -> BTreeMap<String, Answer> {
    let mut out: BTreeMap<String, Answer> = BTreeMap::new();
    for series in result {
        let mut labels: BTreeMap<String, String> =
            serde_json::from_value(series["metric"].clone()).unwrap();
        let cluster = labels.remove(FLEET_LABEL).unwrap_or_default();
        let samples = series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let t = s[0].as_f64().unwrap();
                let v: f64 = s[1].as_str().unwrap().parse().unwrap();
                (t, v)
            })
            .collect();
        let previous = out.entry(cluster).or_default().insert(labels, samples);
        assert!(previous.is_none(), "two series with the same labels");
    }
    out
}

/// Whether two answers hold the same series with the same values at the same steps (relative
/// tolerance 1e-9); the first difference otherwise.
fn difference(central: &Answer, own: &Answer) -> Option<String> {
    let keys = |a: &Answer| a.keys().cloned().collect::<Vec<_>>();
    if keys(central) != keys(own) {
        return Some(format!(
            "series differ:\ncentral {:?}\nown     {:?}",
            keys(central),
            keys(own)
        ));
    }
    for (labels, samples) in central {
        let theirs = &own[labels];
        let same = samples.len() == theirs.len()
            && samples.iter().zip(theirs).all(|(&(t, a), &(u, b))| {
                t == u
                    && (a == b
                        || (a.is_nan() && b.is_nan())
                        || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()))
            });
        if !same {
            return Some(format!(
                "{labels:?}:\ncentral {samples:?}\nown     {theirs:?}"
            ));
        }
    }
    None
}

/// What a snapshot decides, every field a gate's verdict turns on: per phase its decision,
/// score and healthy-run start; per signal its status, value, baseline and offending series
/// (their labels without the fleet label, which only the central store has).
fn judged_as(s: &Snapshot) -> String {
    let mut out = String::new();
    for v in &s.phases {
        out += &format!(
            "{} {:?} {} {:?}\n",
            v.phase, v.decision, v.score, v.stable_since
        );
    }
    for r in &s.signals {
        let offenders: Vec<_> = r
            .offenders
            .iter()
            .map(|o| {
                let mut labels = o.labels.clone();
                labels.remove(FLEET_LABEL);
                (labels, o.value)
            })
            .collect();
        out += &format!(
            "{} {:?} {:?} {:?} {} {:?} {:?}\n",
            r.name, r.status, r.value, r.baseline, r.offending_series, offenders, r.error
        );
    }
    out
}

#[test]
fn every_default_pack_signal_answers_per_cluster_as_each_clusters_own_prometheus() {
    let clusters = [
        ("c1", Scenario::Healthy),
        ("c2", Scenario::Istio5xxSpike),
        ("c3", Scenario::Healthy),
    ];
    let names: Vec<String> = clusters.iter().map(|(n, _)| n.to_string()).collect();
    let fleet = TestFleet::start(
        &clusters,
        FleetOptions {
            store: Store::Server,
            ..FleetOptions::default()
        },
    );
    // A past window, fully ingested by the central store (and so by every cluster's own).
    let begin = unix_now().ceil();
    let (start, end, step) = (begin, begin + 20.0, 1.0);
    fleet.wait_ingested(end + 1.0);

    let config = upgrade_gate::config::load(None).unwrap_or_else(|e| panic!("{e}"));
    let scope = Scope {
        label: FLEET_LABEL,
        clusters: &names,
    };
    let mut answered: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for signal in &config.pack.signals {
        let rewritten =
            rewrite_query(&signal.query, &scope).unwrap_or_else(|e| panic!("{}: {e}", signal.name));
        let central = by_cluster(&fleet.central_range(&rewritten, start, end, step));
        if let Some(c) = central.keys().find(|c| !names.contains(c)) {
            failures.push(format!(
                "{}: series of no listed cluster ({c:?})\nrewritten: {rewritten}",
                signal.name
            ));
        }
        for cluster in &fleet.clusters {
            let own = by_cluster(&cluster.range(&signal.query, start, end, step));
            let own = own.get("").cloned().unwrap_or_default();
            let theirs = central.get(&cluster.name).cloned().unwrap_or_default();
            if !own.is_empty() {
                *answered.entry(&cluster.name).or_default() += 1;
            }
            if let Some(d) = difference(&theirs, &own) {
                failures.push(format!(
                    "{} on {}: {d}\nrewritten: {rewritten}",
                    signal.name, cluster.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // Not equal by being empty: every cluster answers many signals.
    for name in &names {
        assert!(
            answered.get(name.as_str()).copied().unwrap_or(0) >= config.pack.signals.len() / 2,
            "{name} answered only {answered:?}"
        );
    }

    // Judged, too: each cluster's snapshot from the central store equals a single gate's on the
    // cluster's own Prometheus (thresholds, `for`, `stable_for`, baselines, score, critical).
    let at = end as i64;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut fleet_config = config.clone();
    fleet_config.prometheus.url = fleet.central.url().to_string();
    fleet_config.fleet = Some(upgrade_gate::config::FleetConfig {
        label: FLEET_LABEL.into(),
        presence: "up".into(),
        waves: vec![upgrade_gate::config::Wave {
            name: "all".into(),
            clusters: names.clone(),
            soak: Duration::ZERO,
        }],
        backends: vec![],
    });
    let judged = runtime.block_on(async {
        let mut evaluator = FleetEvaluator::new(&fleet_config).unwrap();
        evaluator.evaluate(&fleet_config, at).await
    });
    for cluster in &fleet.clusters {
        let mut single = config.clone();
        single.prometheus.url = cluster.prometheus.url().to_string();
        let source = PrometheusSource::new(&single.prometheus).unwrap();
        let own = runtime.block_on(evaluation::evaluate(&single, &source, at));
        let central = &judged.cluster(&cluster.name).unwrap().snapshot;
        assert_eq!(judged_as(central), judged_as(&own), "{}", cluster.name);
    }
    let c2 = &judged.cluster("c2").unwrap().snapshot;
    assert_ne!(
        judged_as(c2),
        judged_as(&judged.cluster("c1").unwrap().snapshot),
        "c2's incident shows in its own verdicts"
    );

    // The incident is c2's alone.
    let ratio = config
        .pack
        .signals
        .iter()
        .find(|s| s.name == "istio_5xx_ratio")
        .expect("the default pack has istio_5xx_ratio");
    let rewritten = rewrite_query(&ratio.query, &scope).unwrap();
    let central = by_cluster(&fleet.central_range(&rewritten, start, end, step));
    let c2 = &central["c2"];
    assert!(
        c2.values().flatten().any(|&(_, v)| v > 0.1),
        "c2's reviews answer 20% 5xx: {c2:?}"
    );
    for healthy in ["c1", "c3"] {
        let other = central.get(healthy).cloned().unwrap_or_default();
        assert_ne!(&other, c2, "{healthy} looks like c2");
        // At the last step: the first ones rate over the few scrapes since the cluster started.
        assert!(
            other
                .values()
                .filter_map(|samples| samples.last())
                .all(|&(_, v)| v < 0.01),
            "{healthy}: {other:?}"
        );
    }
}

#[test]
fn a_killed_agent_goes_silent_in_the_central_store_and_comes_back() {
    let clusters = [("c1", Scenario::Healthy), ("c2", Scenario::Healthy)];
    let mut fleet = TestFleet::start(
        &clusters,
        FleetOptions {
            store: Store::Agent,
            lookback: Duration::from_secs(5),
            ..FleetOptions::default()
        },
    );
    assert_eq!(fleet.reporting(), ["c1", "c2"]);
    let killed = unix_now();
    fleet.kill_store("c2");
    fleet.wait_silent("c2");
    // Silent only once the lookback has passed since its last sample; c1 kept reporting.
    assert!(unix_now() - killed >= 4.0, "{}", unix_now() - killed);
    assert_eq!(fleet.reporting(), ["c1"]);
    let up = fleet.central_instant(r#"up{cluster="c1"}"#);
    assert_eq!(up.len(), 1, "{up:?}");

    fleet.restart_store("c2");
    assert_eq!(fleet.reporting(), ["c1", "c2"]);
}

#[test]
fn a_backend_holds_its_clusters_alone_and_an_incident_ends_when_asked() {
    let clusters = [("c1", Scenario::Healthy), ("c2", Scenario::Istio5xxSpike)];
    let fleet = TestFleet::start(
        &clusters,
        FleetOptions {
            backend: &["c2"],
            incident_ends: Some(Duration::from_secs(25)),
            ..FleetOptions::default()
        },
    );
    let backend = fleet.backend.as_ref().expect("a backend for c2");
    let up = |store| {
        let mut names: Vec<String> = instant(store, "up")
            .iter()
            .map(|s| s["metric"][FLEET_LABEL].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(up(&fleet.central), ["c1"]);
    assert_eq!(up(backend), ["c2"]);
    assert_eq!(fleet.reporting(), ["c1", "c2"]);

    // c2's reviews answer 503 until the trouble stops, 25 s after the start; c1 never did.
    let ends = fleet.cluster("c2").window.at(0.95) as f64;
    let errors = r#"sum(increase(istio_requests_total{response_code="503"}[3s]))"#;
    let spiking = |r: &[serde_json::Value]| {
        r.first()
            .and_then(|s| s["value"][1].as_str())
            .is_some_and(|v| v.parse::<f64>().unwrap() > 0.0)
    };
    // When `errors` on the backend first is (or is not) spiking, polled.
    let when = |want: bool| {
        let started = std::time::Instant::now();
        loop {
            if spiking(&instant(backend, errors)) == want {
                return unix_now();
            }
            assert!(started.elapsed() < Duration::from_secs(60), "never {want}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let on = when(true);
    assert!(
        on < ends,
        "the trouble was on from the start: seen at {on}, ends {ends}"
    );
    assert!(!spiking(&fleet.central_instant(errors)));
    let off = when(false);
    assert!(off >= ends, "ended at {off} before {ends}");
}
