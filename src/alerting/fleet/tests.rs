use std::time::Duration;

use super::*;
use crate::alerting::book::tests::{self as book_tests, kinds};
use crate::alerting::book::NoticeKind;
use crate::alerting::formats::{alertmanager, slack, webhook};
use crate::alerting::nflog::{Due, Entry, Key, NotificationLog};
use crate::engine::decide::{SignalReport, Verdict};
use crate::engine::evaluate::Status;
use crate::engine::fleet::{ClusterSnapshot, GoSince, Wave};
use crate::engine::pack::ALL_PHASES;

const T0: i64 = 1_800_000_000;

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + minute * 60, 0).unwrap()
}

fn report(status: Status) -> SignalReport {
    let mut r = book_tests::report("mesh_5xx", status);
    r.value = Some(if status == Status::Ok { 0.1 } else { 2.0 });
    r.error = (status == Status::Error).then(|| format!("no data from cluster since {}", at(0)));
    r.query = "mesh_5xx".into();
    r
}

/// A cluster with one phase, `istio`, and one signal, `mesh_5xx`, in `status`.
fn cluster(name: &str, wave: &str, minute: i64, status: Status) -> ClusterSnapshot {
    let decision = match status {
        Status::Ok => Decision::Go,
        Status::Error => Decision::Unknown,
        _ => Decision::NoGo,
    };
    let signals = vec![report(status)];
    let verdict = |phase: &str| Verdict {
        phase: phase.into(),
        decision,
        score: if decision == Decision::Go { 100.0 } else { 0.0 },
        min_score: 90.0,
        evaluated_at: at(minute),
        stable_since: (decision == Decision::Go).then(|| at(minute - 60)),
        stable_for: Duration::ZERO,
        reasons: vec![format!("mesh_5xx is {}", status.as_str())],
        signals: signals.clone(),
    };
    ClusterSnapshot {
        cluster: name.into(),
        wave: wave.into(),
        go_since: None,
        snapshot: Snapshot {
            evaluated_at: at(minute),
            took: Duration::ZERO,
            phases: vec![verdict("istio"), verdict(ALL_PHASES)],
            signals,
        },
    }
}

fn waves() -> Vec<Wave> {
    vec![
        Wave {
            name: "staging".into(),
            clusters: vec!["c1".into(), "c2".into()],
            soak: Duration::ZERO,
        },
        Wave {
            name: "prod".into(),
            clusters: vec!["c3".into()],
            soak: Duration::ZERO,
        },
    ]
}

/// The fleet at `minute`, with c1, c2 (staging) and c3 (prod) in the given states.
pub(crate) fn fleet(minute: i64, states: [Status; 3], since: &mut GoSince) -> FleetSnapshot {
    let clusters = ["c1", "c2", "c3"]
        .iter()
        .zip(states)
        .map(|(c, s)| cluster(c, if *c == "c3" { "prod" } else { "staging" }, minute, s))
        .collect();
    FleetSnapshot::new(at(minute), clusters, &waves(), since, 0)
}

use Status::{Error, Fail, Ok};

#[test]
fn each_cluster_alerts_on_its_own_with_its_cluster_and_wave_and_a_blocked_wave_is_one_more() {
    let since = &mut GoSince::default();
    let mut book = AlertBook::default();
    assert!(book
        .update_fleet(&fleet(0, [Ok, Ok, Ok], since))
        .notices
        .is_empty());
    let u = book.update_fleet(&fleet(1, [Ok, Fail, Ok], since));
    assert_eq!(
        kinds(&u),
        [
            (
                NoticeKind::New,
                "UpgradeGatePhaseNoGo/istio//cluster=c2/wave=staging".into()
            ),
            (
                NoticeKind::New,
                "UpgradeGateSignalFailing/istio/mesh_5xx/cluster=c2/wave=staging".into()
            ),
            (NoticeKind::New, "UpgradeGateWaveBlocked///wave=prod".into()),
        ]
    );
    let phase = &u.notices[0].alert;
    assert_eq!(
        phase.summary(),
        "phase istio is NO-GO on cluster c2 (wave staging) (score 0)"
    );
    assert_eq!(
        u.notices[1].alert.summary(),
        "signal mesh_5xx fails on cluster c2 (wave staging): 2 (fail > 1)"
    );
    let wave = &u.notices[2].alert;
    assert_eq!(
        wave.summary(),
        "wave prod is BLOCKED: cluster c2 (wave staging) is no_go for istio: mesh_5xx"
    );
    assert_eq!(wave.severity, Severity::Warning);

    // c1 too: its own notices, the wave's alert is still the one.
    let u = book.update_fleet(&fleet(2, [Fail, Fail, Ok], since));
    assert_eq!(
        kinds(&u),
        [
            (
                NoticeKind::New,
                "UpgradeGatePhaseNoGo/istio//cluster=c1/wave=staging".into()
            ),
            (
                NoticeKind::New,
                "UpgradeGateSignalFailing/istio/mesh_5xx/cluster=c1/wave=staging".into()
            ),
        ]
    );

    // Both recover: every alert resolves, the wave's saying it may start.
    let u = book.update_fleet(&fleet(3, [Ok, Ok, Ok], since));
    assert_eq!(u.notices.len(), 5);
    assert!(u.notices.iter().all(|n| n.kind == NoticeKind::Resolved));
    let wave = u
        .notices
        .iter()
        .find(|n| n.alert.name == AlertName::WaveBlocked)
        .unwrap();
    assert_eq!(wave.alert.summary(), "wave prod may start");
    assert_eq!(wave.alert.decision, Some(Decision::Go));
    let phase = u
        .notices
        .iter()
        .find(|n| n.alert.id() == "UpgradeGatePhaseNoGo/istio//cluster=c2/wave=staging")
        .unwrap();
    assert_eq!(
        phase.alert.summary(),
        "phase istio is GO again on cluster c2 (wave staging) (score 100)"
    );
}

#[test]
fn an_unknown_cluster_alerts_as_no_go_and_says_unknown() {
    let since = &mut GoSince::default();
    let mut book = AlertBook::default();
    let u = book.update_fleet(&fleet(0, [Error, Ok, Ok], since));
    let phase = u
        .notices
        .iter()
        .find(|n| n.alert.name == AlertName::PhaseNoGo)
        .expect("unknown alerts");
    assert_eq!(phase.alert.decision, Some(Decision::Unknown));
    assert_eq!(
        phase.alert.summary(),
        "phase istio is UNKNOWN on cluster c1 (wave staging): mesh_5xx is error"
    );
    assert!(slack(&phase.alert, None)["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("istio is UNKNOWN on cluster c1 (wave staging)"));
    let wave = u
        .notices
        .iter()
        .find(|n| n.alert.name == AlertName::WaveBlocked)
        .unwrap();
    assert!(
        wave.alert
            .summary()
            .starts_with("wave prod is UNKNOWN: cluster c1"),
        "{}",
        wave.alert.summary()
    );
}

#[test]
fn a_cluster_a_reload_removed_resolves_its_alerts() {
    let since = &mut GoSince::default();
    let mut book = AlertBook::default();
    book.update_fleet(&fleet(0, [Ok, Fail, Ok], since));
    let mut gone = fleet(1, [Ok, Ok, Ok], since);
    gone.clusters.retain(|c| c.cluster != "c2");
    let u = book.update_fleet(&gone);
    assert_eq!(u.notices.len(), 3, "{:?}", kinds(&u));
    let phase = &u.notices[0].alert;
    assert_eq!(phase.status, AlertStatus::Resolved);
    assert_eq!(phase.ends_at, Some(at(1)));
    assert_eq!(phase.decision, None, "nothing is known of it any more");
}

#[test]
fn the_log_keys_each_cluster_apart_and_resolves_from_the_fleet_after_a_restart() {
    let since = &mut GoSince::default();
    let mut book = AlertBook::default();
    let both = book.update_fleet(&fleet(0, [Fail, Fail, Ok], since));
    let firing: Vec<Alert> = both.state.clone();
    let mut log = NotificationLog::default();
    let due = log.due("hook", &firing, at(0), Duration::from_secs(3600));
    assert_eq!(due.len(), 5, "c1 and c2 twice each, and the wave");
    for d in &due {
        let Due::Announce(a) = d else { panic!("{d:?}") };
        log.record(Key::of("hook", a), Entry::of(a));
    }
    let key = Key::of("hook", &firing[0]);
    assert_eq!((key.cluster.as_str(), key.wave.as_str()), ("c1", "staging"));
    // A single gate's key serializes as it did before fleets.
    let single = Key {
        cluster: String::new(),
        wave: String::new(),
        ..key.clone()
    };
    assert_eq!(
        serde_json::to_string(&single).unwrap(),
        r#"{"receiver":"hook","alertname":"UpgradeGatePhaseNoGo","phase":"istio","signal":""}"#
    );
    // The same evaluation, on another replica after this one sent: nothing is due.
    assert!(log
        .due("hook", &firing, at(0), Duration::from_secs(3600))
        .is_empty());

    // After a restart, with a book that knows nothing: c1 recovered, resolved from the log.
    let now = Arc::new(fleet(5, [Ok, Fail, Ok], since));
    let firing = AlertBook::default().update_fleet(&now).state;
    let due = log.due("hook", &firing, at(5), Duration::from_secs(3600));
    let resolved: Vec<Alert> = due
        .into_iter()
        .filter_map(|d| match d {
            Due::Resolve(key, entry) => {
                Some(Judged::Fleet(now.clone()).resolved(key.announced(&entry)))
            }
            Due::Announce(_) => None,
        })
        .collect();
    assert_eq!(resolved.len(), 2, "{resolved:?}");
    assert_eq!(
        resolved[0].summary(),
        "phase istio is GO again on cluster c1 (wave staging) (score 100)"
    );
    assert_eq!(resolved[0].starts_at, at(0));
    assert_eq!(resolved[1].cluster.as_deref(), Some("c1"));
}

#[test]
fn every_format_names_the_cluster_and_the_wave() {
    let since = &mut GoSince::default();
    let mut book = AlertBook::default();
    let u = book.update_fleet(&fleet(0, [Ok, Fail, Ok], since));
    let phase = &u.notices[0].alert;
    let url = Some("http://gate.example:8080");
    let hook = webhook(phase, url);
    assert_eq!(hook["cluster"], "c2");
    assert_eq!(hook["wave"], "staging");
    assert_eq!(
        hook["summary"],
        "phase istio is NO-GO on cluster c2 (wave staging) (score 0)"
    );
    assert_eq!(
        hook["gate_url"],
        "http://gate.example:8080/gate/istio?cluster=c2"
    );
    let text = slack(phase, url).to_string();
    assert!(
        text.contains("NO-GO on cluster c2 (wave staging)"),
        "{text}"
    );
    assert!(
        text.contains("*Cluster*\\nc2") && text.contains("*Wave*\\nstaging"),
        "{text}"
    );

    let request = alertmanager(&u.state, url, Duration::from_secs(240));
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    let labels: Vec<&serde_json::Value> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["labels"])
        .collect();
    assert_eq!(labels[0]["cluster"], "c2");
    assert_eq!(labels[0]["wave"], "staging");
    assert_eq!(labels[0]["alertname"], "UpgradeGatePhaseNoGo");
    let wave = body
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "UpgradeGateWaveBlocked")
        .unwrap();
    assert_eq!(wave["labels"]["wave"], "prod");
    assert!(wave["labels"]["cluster"].is_null());
    assert_eq!(
        wave["annotations"]["description"],
        "cluster c2 (wave staging) is no_go for istio: mesh_5xx"
    );
    assert_eq!(wave["generatorURL"], "http://gate.example:8080/waves/prod");
    let wave_slack = slack(&u.notices[2].alert, None).to_string();
    assert!(
        wave_slack.contains("• cluster c2 (wave staging) is no_go for istio: mesh_5xx"),
        "{wave_slack}"
    );

    // A single gate's alert has neither field nor label.
    let single = Alert {
        cluster: None,
        wave: None,
        ..phase.clone()
    };
    let hook = webhook(&single, url);
    assert!(hook.get("cluster").is_none() && hook.get("wave").is_none());
    assert_eq!(hook["gate_url"], "http://gate.example:8080/gate/istio");
}

#[test]
fn a_wave_held_back_by_the_soak_alone_is_blocked_until_the_soak_is_over() {
    let since = &mut GoSince::default();
    let mut soaking = waves();
    soaking[1].soak = Duration::from_secs(2 * 3600);
    let at_minute = |minute: i64, since: &mut GoSince| {
        let clusters = [("c1", "staging"), ("c2", "staging"), ("c3", "prod")]
            .iter()
            .map(|(c, w)| cluster(c, w, minute, Ok))
            .collect();
        FleetSnapshot::new(at(minute), clusters, &soaking, since, 0)
    };
    let mut book = AlertBook::default();
    // First seen go at minute 0, proven go since minute -60 (stable_since): an hour left.
    let u = book.update_fleet(&at_minute(0, since));
    assert_eq!(
        kinds(&u),
        [(NoticeKind::New, "UpgradeGateWaveBlocked///wave=prod".into())]
    );
    assert_eq!(
        u.notices[0].alert.summary(),
        "wave prod is BLOCKED: wave staging must stay go for 2h before prod starts: 1h left"
    );
    assert!(book.update_fleet(&at_minute(59, since)).notices.is_empty());
    let u = book.update_fleet(&at_minute(60, since));
    assert_eq!(
        kinds(&u),
        [(
            NoticeKind::Resolved,
            "UpgradeGateWaveBlocked///wave=prod".into()
        )]
    );
    assert_eq!(u.notices[0].alert.summary(), "wave prod may start");
}
