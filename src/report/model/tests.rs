use std::time::Duration;

use super::*;
use crate::engine::baseline::BaselineSpec;

const T: i64 = 1_800_000_000;
const STEP: i64 = 60;

fn signal(name: &str, no_data: NoDataPolicy, runbook: Option<&str>) -> Signal {
    Signal {
        name: name.into(),
        description: None,
        runbook: runbook.map(String::from),
        query: "q".into(),
        warn: Some("> 0.5".parse().unwrap()),
        fail: Some("> 1".parse().unwrap()),
        for_: Duration::ZERO,
        weight: 1.0,
        critical: true,
        no_data,
        baseline: BaselineSpec::DEFAULT,
        no_baseline: NoDataPolicy::Ok,
        phases: vec!["istio".into()],
        origin: "test".into(),
        max_series: None,
    }
}

fn pack() -> Pack {
    Pack {
        phases: vec![phase("istio"), phase("nodes")],
        signals: vec![
            signal("mesh_5xx", NoDataPolicy::Fail, Some("roll back the canary")),
            signal("quiet", NoDataPolicy::Ok, None),
        ],
    }
}

fn phase(name: &str) -> Phase {
    Phase {
        name: name.into(),
        min_score: 90.0,
        stable_for: Duration::from_secs(120),
    }
}

fn judged(name: &str, status: Status, value: f64, offender: Option<(&str, f64)>) -> Judged {
    Judged {
        name: name.into(),
        status,
        no_data: if name == "quiet" {
            NoDataPolicy::Ok
        } else {
            NoDataPolicy::Fail
        },
        value: Some(value),
        baseline: None,
        offenders: offender
            .map(|(l, v)| vec![(l.to_string(), v)])
            .unwrap_or_default(),
    }
}

/// Minute `i` of the window: the decision, whether soaking, and mesh_5xx's value.
fn step(i: i64, decision: Decision, soaking: bool, value: f64) -> Step {
    let status = match value {
        v if v > 1.0 => Status::Fail,
        v if v > 0.5 => Status::Warn,
        _ => Status::Ok,
    };
    let offender = (status != Status::Ok).then_some(("{svc=\"reviews\"}", value));
    Step {
        at: T + i * STEP,
        decision,
        soaking,
        stable_since: None,
        signals: vec![
            judged("mesh_5xx", status, value, offender),
            Judged {
                status: Status::NoData,
                value: None,
                ..judged("quiet", Status::NoData, 0.0, None)
            },
        ],
    }
}

fn span(steps: i64) -> Span {
    Span {
        from: T,
        to: T + (steps - 1) * STEP,
        step_secs: STEP,
    }
}

/// go, go, no-go (fail 3), no-go (fail 2), soak, go, (missing), go
fn istio_steps() -> Vec<Step> {
    use Decision::{Go, NoGo};
    vec![
        step(0, Go, false, 0.1),
        step(1, Go, false, 0.2),
        step(2, NoGo, false, 3.0),
        step(3, NoGo, false, 2.0),
        step(4, NoGo, true, 0.1),
        step(5, Go, false, 0.1),
        step(7, Go, false, 0.1),
    ]
}

fn report(phases: Vec<PhaseSteps>, steps: i64) -> Report {
    Report::build(
        span(steps),
        "http://p/".into(),
        "h".into(),
        &pack(),
        &phases,
    )
}

#[test]
fn bands_follow_the_decisions_and_a_missing_step_is_unknown() {
    let r = report(
        vec![PhaseSteps {
            phase: phase("istio"),
            steps: istio_steps(),
        }],
        8,
    );
    let p = &r.phases[0];
    let bands: Vec<(State, i64, i64)> = p
        .bands
        .iter()
        .map(|b| (b.state, (b.from - T) / STEP, (b.to - T) / STEP))
        .collect();
    assert_eq!(
        bands,
        [
            (State::Go, 0, 2),
            (State::NoGo, 2, 4),
            (State::Soak, 4, 5),
            (State::Go, 5, 6),
            (State::Unknown, 6, 7),
            (State::Go, 7, 8),
        ]
    );
    assert_eq!(p.first_go, Some(T));
    assert_eq!(p.last, State::Go);
}

#[test]
fn an_incident_is_a_run_of_not_go_with_its_signals_worst_offender_and_runbook() {
    let r = report(
        vec![PhaseSteps {
            phase: phase("istio"),
            steps: istio_steps(),
        }],
        8,
    );
    assert_eq!(r.incidents.len(), 2, "{:?}", r.incidents);
    let i = &r.incidents[0];
    assert_eq!((i.start, i.end), (T + 2 * STEP, T + 5 * STEP));
    assert_eq!(i.duration(), Duration::from_secs(180));
    assert!(!i.ongoing);
    assert_eq!(i.signals, ["mesh_5xx"]);
    assert_eq!(
        i.offenders,
        [("mesh_5xx".into(), "{svc=\"reviews\"}".into(), 3.0)]
    );
    assert_eq!(
        i.runbooks,
        [("mesh_5xx".into(), "roll back the canary".into())]
    );
    // The step nobody judged is not go either: it is an incident with nothing to blame.
    let gap = &r.incidents[1];
    assert_eq!((gap.start, gap.end), (T + 6 * STEP, T + 7 * STEP));
    assert!(gap.signals.is_empty());
}

#[test]
fn an_incident_still_open_at_the_end_is_ongoing() {
    use Decision::{Go, NoGo};
    let r = report(
        vec![PhaseSteps {
            phase: phase("istio"),
            steps: vec![step(0, Go, false, 0.1), step(1, NoGo, false, 2.0)],
        }],
        2,
    );
    assert_eq!(r.incidents.len(), 1);
    assert!(r.incidents[0].ongoing);
    assert_eq!(r.incidents[0].end, T + 2 * STEP);
    assert_eq!(r.phases[0].last, State::NoGo);
}

#[test]
fn only_signals_that_were_not_ok_are_told_with_every_point() {
    let r = report(
        vec![PhaseSteps {
            phase: phase("istio"),
            steps: istio_steps(),
        }],
        8,
    );
    // `quiet` returned no data under `no_data: ok` throughout: healthy, not plotted.
    let names: Vec<&str> = r.signals.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["mesh_5xx"]);
    let s = &r.signals[0];
    assert_eq!(s.points.len(), 8);
    assert_eq!(s.points[6].status, Status::NoData, "the missing step");
    assert_eq!(s.worst, Status::Fail);
    assert_eq!(s.troubled, [(T + 2 * STEP, T + 4 * STEP)]);
    assert_eq!(s.offenders, [("{svc=\"reviews\"}".to_string(), 3.0, 2)]);
}

#[test]
fn incidents_shared_by_phases_are_one_row() {
    let both = |name: &str| PhaseSteps {
        phase: phase(name),
        steps: istio_steps(),
    };
    let r = report(vec![both("istio"), both("nodes")], 8);
    assert_eq!(r.incidents.len(), 4);
    let rows = grouped(&r.incidents);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, ["istio", "nodes"]);
}

#[test]
fn the_page_is_self_contained_with_one_plot_per_signal_not_ok() {
    let r = report(
        vec![PhaseSteps {
            phase: phase("istio"),
            steps: istio_steps(),
        }],
        8,
    );
    let page = crate::report::html::render(&r);
    assert_eq!(page.matches("<figure class=\"signal\"").count(), 1);
    // One timeline and one plot, each an SVG drawn by plotters.
    assert_eq!(page.matches("<svg ").count(), 2);
    for fetched in ["<script", "src=", "url(", "@import", "<link"] {
        assert!(!page.contains(fetched), "{fetched}");
    }
    assert!(page.contains("roll back the canary"));
    assert!(page.contains("{svc=&quot;reviews&quot;}"));
    let md = crate::report::markdown::render(&r);
    assert!(
        md.contains("| istio | 2027-01-15T08:02:00Z | 2027-01-15T08:05:00Z | 3m | mesh_5xx |"),
        "{md}"
    );
}
