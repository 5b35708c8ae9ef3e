use super::*;
use crate::engine::decide::SignalReport;
use crate::engine::evaluate::Status;
use crate::engine::fleet::FleetSnapshot;
use crate::engine::pack::NoDataPolicy;
use crate::engine::snapshot::Snapshot;

const T0: i64 = 1_800_000_000;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + secs, 0).unwrap()
}

fn verdict(phase: &str, decision: Decision, now: i64) -> Verdict {
    Verdict {
        phase: phase.into(),
        decision,
        score: if decision == Decision::Go {
            100.0
        } else {
            50.0
        },
        min_score: 90.0,
        evaluated_at: at(now),
        stable_since: (decision == Decision::Go).then(|| at(now - 600)),
        stable_for: Duration::from_secs(300),
        reasons: if decision == Decision::Go {
            vec![]
        } else {
            vec![format!("{phase} is {}", decision.as_str())]
        },
        signals: vec![],
    }
}

fn cluster(name: &str, wave: &str, now: i64, decisions: &[Decision]) -> ClusterSnapshot {
    ClusterSnapshot {
        cluster: name.into(),
        wave: wave.into(),
        go_since: None,
        snapshot: Snapshot {
            evaluated_at: at(now),
            took: Duration::ZERO,
            phases: ["istio", "nodes"]
                .iter()
                .zip(decisions)
                .map(|(p, d)| verdict(p, *d, now))
                .collect(),
            signals: vec![],
        },
    }
}

fn waves() -> Vec<Wave> {
    let wave = |name: &str, clusters: &[&str], soak: u64| Wave {
        name: name.into(),
        clusters: clusters.iter().map(|c| c.to_string()).collect(),
        soak: Duration::from_secs(soak),
    };
    vec![
        wave("canary", &["dev"], 0),
        wave("staging", &["stg1", "stg2"], 1800),
        wave("prod", &["prod1"], 7200),
    ]
}

use Decision::{Go, NoGo, Unknown};

fn fleet(now: i64, states: &[(&str, &str, [Decision; 2])], since: &mut GoSince) -> FleetSnapshot {
    let clusters = states
        .iter()
        .map(|(c, w, d)| cluster(c, w, now, d))
        .collect();
    FleetSnapshot::new(at(now), clusters, &waves(), since, 0)
}

#[test]
fn a_wave_waits_for_every_earlier_cluster_and_names_the_blocking_ones() {
    let since = &mut GoSince::default();
    let f = fleet(
        0,
        &[
            ("prod1", "prod", [Go, Go]),
            ("dev", "canary", [NoGo, Go]),
            ("stg1", "staging", [Go, Unknown]),
            ("stg2", "staging", [Go, Go]),
        ],
        since,
    );
    let order: Vec<_> = f.clusters.iter().map(|c| c.cluster.as_str()).collect();
    assert_eq!(order, ["dev", "stg1", "stg2", "prod1"], "wave order");
    let canary = f.wave("canary").unwrap();
    assert_eq!(canary.decision, Go, "the first wave waits on nothing");
    let staging = f.wave("staging").unwrap();
    assert_eq!(staging.decision, NoGo);
    assert_eq!(staging.blocking.len(), 1);
    assert_eq!(staging.blocking[0].cluster, "dev");
    assert_eq!(staging.blocking[0].phases, ["istio"]);
    let prod = f.wave("prod").unwrap();
    let blocking: Vec<_> = prod.blocking.iter().map(|b| b.cluster.as_str()).collect();
    assert_eq!(blocking, ["stg1", "dev"], "the wave just before first");
    assert_eq!(prod.blocking[0].decision, Unknown);
    assert!(prod.reasons[0].contains("cluster stg1 (wave staging) is unknown for nodes"));
}

/// A signal of a verdict, in `status`, whose missing data means `no_data`.
fn report(name: &str, status: Status, no_data: NoDataPolicy) -> SignalReport {
    SignalReport {
        name: name.into(),
        status,
        value: None,
        baseline: None,
        warn: None,
        fail: None,
        for_: Duration::ZERO,
        weight: 1.0,
        critical: false,
        no_data,
        phases: vec!["istio".into()],
        offenders: vec![],
        offending_series: 0,
        error: None,
        description: None,
        runbook: None,
        query: name.into(),
    }
}

#[test]
fn a_blocker_names_the_signals_that_count_against_it_and_no_other() {
    let mut dev = cluster("dev", "canary", 0, &[NoGo, Go]);
    dev.snapshot.phases[0].signals = vec![
        report("mesh_5xx", Status::Fail, NoDataPolicy::Fail),
        // No deprecated API calls: no series, and that is fine.
        report("deprecated_api_requests", Status::NoData, NoDataPolicy::Ok),
        report("node_join", Status::NoData, NoDataPolicy::Fail),
        report("apiserver_p99", Status::Ok, NoDataPolicy::Fail),
        report("pods_pending", Status::Warn, NoDataPolicy::Ok),
    ];
    let f = FleetSnapshot::new(at(0), vec![dev], &waves(), &mut GoSince::default(), 0);
    let staging = f.wave("staging").unwrap();
    assert_eq!(
        staging.blocking[0].signals,
        ["mesh_5xx", "node_join", "pods_pending"]
    );
}

#[test]
fn only_unknown_clusters_holding_a_wave_back_make_it_unknown() {
    let since = &mut GoSince::default();
    let f = fleet(0, &[("dev", "canary", [Go, Unknown])], since);
    assert_eq!(f.wave("staging").unwrap().decision, Unknown);
}

#[test]
fn the_soak_counts_from_when_the_wave_before_became_go_and_restarts_on_a_break() {
    let since = &mut GoSince::default();
    let all_go = |now| {
        [
            ("dev", "canary", [Go, Go]),
            ("stg1", "staging", [Go, Go]),
            ("stg2", "staging", [Go, Go]),
        ]
        .iter()
        .map(|(c, w, d)| cluster(c, w, now, d))
        .collect::<Vec<_>>()
    };
    // First seen go at 0: proven go since 0 - 600 + 300 = -300.
    let f = FleetSnapshot::new(at(0), all_go(0), &waves(), since, 0);
    assert_eq!(f.cluster("stg1").unwrap().go_since, Some(at(-300)));
    let prod = f.wave("prod").unwrap();
    assert_eq!(prod.decision, NoGo);
    assert_eq!(prod.soak_left, Duration::from_secs(7200 - 300));
    assert!(
        prod.reasons[0].contains("wave staging must stay go for 2h"),
        "{:?}",
        prod.reasons
    );
    // Still go later: the soak runs from the first sighting, not from each evaluation.
    let f = FleetSnapshot::new(at(6900), all_go(6900), &waves(), since, 0);
    let prod = f.wave("prod").unwrap();
    assert_eq!((prod.decision, prod.soak_left), (Go, Duration::ZERO));
    assert!(prod.reasons.is_empty());
    // A break restarts it: while it lasts, the whole soak is ahead.
    let mut broken = all_go(7000);
    broken[2] = cluster("stg2", "staging", 7000, &[Go, NoGo]);
    let f = FleetSnapshot::new(at(7000), broken, &waves(), since, 0);
    let prod = f.wave("prod").unwrap();
    assert_eq!(
        (prod.decision, prod.soak_left),
        (NoGo, Duration::from_secs(7200))
    );
    assert_eq!(
        prod.reasons[1],
        "wave staging must stay go for 2h before prod starts: it is not go now, and the soak \
         starts again once it is"
    );
    let f = FleetSnapshot::new(at(7100), all_go(7100), &waves(), since, 0);
    let prod = f.wave("prod").unwrap();
    assert_eq!(prod.decision, NoGo);
    assert_eq!(prod.soak_left, Duration::from_secs(7200 - 300));
}

#[test]
fn a_wave_verdict_is_go_only_when_every_cluster_is_and_lists_blocking_clusters_first() {
    let since = &mut GoSince::default();
    let f = fleet(
        0,
        &[
            ("stg1", "staging", [Go, Go]),
            ("stg2", "staging", [NoGo, Go]),
        ],
        since,
    );
    let v = f.wave_verdict("staging", "istio").unwrap();
    assert_eq!(v.decision, NoGo);
    assert_eq!(v.clusters[0].cluster, "stg2");
    assert_eq!(v.reasons, ["cluster stg2: istio is no_go"]);
    assert_eq!(v.score, 50.0, "the lowest score");
    let v = f.wave_verdict("staging", "nodes").unwrap();
    assert_eq!(v.decision, Go);
    assert_eq!(v.stable_since, Some(at(-600)));
    assert!(f.wave_verdict("staging", "nope").is_none());
    assert!(f.wave_verdict("nope", "istio").is_none());
}
