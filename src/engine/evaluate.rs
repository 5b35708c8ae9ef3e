//! Evaluation: turns one signal's range-query answer into a status at every step of the window.
//!
//! Pure functions of (signal, series, window), so a fresh process, a second replica and `replay`
//! all reach the same answer from the same Prometheus data.

use serde::Serialize;

use super::baseline::{Baselines, SeriesBaseline};
use super::grid::{self, Grid};
use super::pack::{NoDataPolicy, Signal};
use super::series::{Labels, Window};

/// Most offending series listed per signal; the rest are counted.
pub const MAX_OFFENDERS: usize = 10;

/// Health of one series or one signal at one step, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warn,
    NoData,
    Fail,
    Error,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Ok,
        Status::Warn,
        Status::NoData,
        Status::Fail,
        Status::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::NoData => "no_data",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }

    /// Counted against the gate, for a signal whose missing data means `no_data`: anything but
    /// ok, except no data where no data is fine. What alerts, reports and a wave's blockers name.
    pub fn troubled(self, no_data: NoDataPolicy) -> bool {
        match self {
            Status::Ok => false,
            Status::NoData => no_data != NoDataPolicy::Ok,
            Status::Warn | Status::Fail | Status::Error => true,
        }
    }
}

/// A series that breaches warn or fail at the evaluated step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offender {
    pub labels: Labels,
    pub value: f64,
    /// The series' baseline at this step, when the signal compares with one and it has one.
    pub baseline: Option<f64>,
    pub status: Status,
}

/// One signal at one step: what the gate reports and scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub status: Status,
    /// The worst series' value, by the signal's direction.
    pub value: Option<f64>,
    /// The worst series' baseline.
    pub baseline: Option<f64>,
    /// Breaching series, failing first, then worst value first; at most [`MAX_OFFENDERS`].
    pub offenders: Vec<Offender>,
    /// How many series breach in all, including those not listed.
    pub offending_series: usize,
    pub error: Option<String>,
}

/// One series of the answer's grid, borrowed: no copy of the answer is made to judge it.
struct Track<'a> {
    labels: &'a Labels,
    /// One value per step of the window, NaN where the series has no finite sample.
    values: &'a [f64],
    /// For each step, whether the fail threshold held at every step of the `for` window ending there.
    fail_held: Vec<bool>,
    baseline: SeriesBaseline,
}

/// A signal judged over a whole window; ask it for any step.
pub struct Timeline<'a> {
    signal: &'a Signal,
    window: Window,
    outcome: Result<Vec<Track<'a>>, String>,
}

/// Precomputes the `for` condition for every series and step of an answer on `window`'s grid.
pub fn judge<'a, E: std::fmt::Display>(
    signal: &'a Signal,
    answer: Result<&'a Grid, &E>,
    window: Window,
) -> Timeline<'a> {
    judge_against(signal, answer, &Baselines::Unused, window)
}

/// [`judge`], with each series' baseline for the signal's relative conditions. A baseline that
/// could not be fetched makes the signal `error`, as its own query failing would.
pub fn judge_against<'a, E: std::fmt::Display>(
    signal: &'a Signal,
    answer: Result<&'a Grid, &E>,
    baselines: &Baselines,
    window: Window,
) -> Timeline<'a> {
    let for_steps = signal.for_.as_secs().div_ceil(window.step as u64) as usize;
    let answer = match baselines {
        Baselines::Failed(e) => Err(format!("baseline query failed: {e}")),
        _ => answer.map_err(|e| e.to_string()),
    };
    let outcome = answer.map(|grid| {
        debug_assert_eq!(
            grid.window(),
            window,
            "answers are judged on their own grid"
        );
        grid.series()
            .map(|(labels, values)| {
                let baseline = baselines.for_series(labels);
                Track {
                    labels,
                    values,
                    fail_held: fail_held(signal, values, &baseline, for_steps),
                    baseline,
                }
            })
            .collect()
    });
    Timeline {
        signal,
        window,
        outcome,
    }
}

/// `held[i]` is true when fail was breached at each of steps `i - for_steps ..= i`. Steps whose
/// `for` window starts before the grid cannot be known to hold and are false, like a Prometheus
/// alert that is still pending.
fn fail_held(
    signal: &Signal,
    values: &[f64],
    baseline: &SeriesBaseline,
    for_steps: usize,
) -> Vec<bool> {
    if signal.fail.is_none() {
        return vec![false; values.len()];
    }
    let mut run = 0usize;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            run = if grid::value(*v).is_some_and(|v| signal.breaches_fail(v, baseline.at(i))) {
                run + 1
            } else {
                0
            };
            run > for_steps
        })
        .collect()
}

impl Timeline<'_> {
    pub fn window(&self) -> Window {
        self.window
    }

    /// Status at grid index `i`, without building the offender list.
    pub fn status_at(&self, i: usize) -> Status {
        match &self.outcome {
            Err(_) => Status::Error,
            Ok(tracks) => tracks
                .iter()
                .filter_map(|t| self.series_status(t, i))
                .max()
                .unwrap_or(Status::NoData),
        }
    }

    /// Full judgement at grid index `i`.
    pub fn judgement_at(&self, i: usize) -> Judgement {
        let tracks = match &self.outcome {
            Err(e) => {
                return Judgement {
                    status: Status::Error,
                    value: None,
                    baseline: None,
                    offenders: Vec::new(),
                    offending_series: 0,
                    error: Some(e.clone()),
                }
            }
            Ok(tracks) => tracks,
        };
        let direction = self.signal.direction();
        let mut status: Option<Status> = None;
        let mut value: Option<f64> = None;
        let mut baseline: Option<f64> = None;
        let mut offenders = Vec::new();
        for track in tracks {
            let (Some(s), Some(v)) = (self.series_status(track, i), grid::value(track.values[i]))
            else {
                continue;
            };
            status = status.max(Some(s));
            if value.is_none_or(|w| direction.worse(v, w)) {
                value = Some(v);
                baseline = track.baseline.at(i);
            }
            if s != Status::Ok {
                offenders.push(Offender {
                    labels: track.labels.clone(),
                    value: v,
                    baseline: track.baseline.at(i),
                    status: s,
                });
            }
        }
        offenders.sort_by(|a, b| {
            b.status.cmp(&a.status).then_with(|| {
                if direction.worse(a.value, b.value) {
                    std::cmp::Ordering::Less
                } else if direction.worse(b.value, a.value) {
                    std::cmp::Ordering::Greater
                } else {
                    a.labels.cmp(&b.labels)
                }
            })
        });
        let offending_series = offenders.len();
        offenders.truncate(MAX_OFFENDERS);
        Judgement {
            status: status.unwrap_or(Status::NoData),
            value,
            baseline,
            offenders,
            offending_series,
            error: None,
        }
    }

    /// A series is `fail` once fail has held for `for`, `warn` while it breaches warn or while a
    /// fail breach is still pending, and `None` when it has no sample at this step.
    fn series_status(&self, track: &Track, i: usize) -> Option<Status> {
        let v = grid::value(track.values[i])?;
        let baseline = track.baseline.at(i);
        Some(if track.fail_held[i] {
            Status::Fail
        } else if self.signal.breaches_warn(v, baseline) || self.signal.breaches_fail(v, baseline) {
            Status::Warn
        } else {
            Status::Ok
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pack::NoDataPolicy;
    use crate::engine::series::Series;
    use crate::engine::threshold::Threshold;
    use std::time::Duration;

    fn signal(warn: Option<&str>, fail: Option<&str>, for_secs: u64) -> Signal {
        Signal {
            name: "s".into(),
            description: None,
            runbook: None,
            query: "q".into(),
            warn: warn.map(|t| t.parse().unwrap()),
            fail: fail.map(|t| t.parse().unwrap()),
            for_: Duration::from_secs(for_secs),
            weight: 1.0,
            critical: false,
            no_data: NoDataPolicy::Fail,
            baseline: crate::engine::baseline::BaselineSpec::DEFAULT,
            no_baseline: NoDataPolicy::Ok,
            phases: vec![],
            origin: "test".into(),
            max_series: None,
        }
    }

    fn series(name: &str, w: Window, values: &[f64]) -> Series {
        Series {
            labels: [("svc".to_string(), name.to_string())].into(),
            samples: values
                .iter()
                .enumerate()
                .map(|(i, v)| (w.start + w.step * i as i64, *v))
                .collect(),
        }
    }

    fn on_grid<E>(answer: Result<Vec<Series>, E>) -> Result<Grid, E> {
        answer.map(|s| Grid::from_series(W, &s))
    }

    const W: Window = Window {
        start: 0,
        end: 120,
        step: 30,
    };

    #[test]
    fn fail_needs_the_whole_for_window() {
        let s = signal(None, Some("> 1"), 60);
        // Breach at the last three steps: 60s at a 30s step needs three points in a row.
        let answer: Result<_, String> = Ok(vec![series("a", W, &[0.0, 0.0, 2.0, 2.0, 2.0])]);
        let answer = on_grid(answer);
        let t = judge(&s, answer.as_ref(), W);
        assert_eq!(t.status_at(2), Status::Warn, "pending, not fail");
        assert_eq!(t.status_at(3), Status::Warn);
        assert_eq!(t.status_at(4), Status::Fail);
    }

    #[test]
    fn a_blip_shorter_than_for_never_fails() {
        let s = signal(None, Some("> 1"), 60);
        let answer: Result<_, String> = Ok(vec![series("a", W, &[0.0, 2.0, 2.0, 0.0, 0.0])]);
        let answer = on_grid(answer);
        let t = judge(&s, answer.as_ref(), W);
        assert!((0..5).all(|i| t.status_at(i) != Status::Fail));
        assert_eq!(t.status_at(4), Status::Ok);
    }

    #[test]
    fn a_gap_in_the_data_restarts_the_for_window() {
        let s = signal(None, Some("> 1"), 30);
        let mut a = series("a", W, &[2.0, 2.0, 2.0, 2.0, 2.0]);
        a.samples.remove(3);
        let answer = on_grid(Ok::<_, String>(vec![a]));
        let t = judge(&s, answer.as_ref(), W);
        assert_eq!(t.status_at(2), Status::Fail);
        assert_eq!(t.status_at(3), Status::NoData);
        assert_eq!(t.status_at(4), Status::Warn);
    }

    #[test]
    fn healthy_series_are_ok_not_no_data() {
        let s = signal(Some("> 0.5"), Some("> 1"), 0);
        let answer: Result<_, String> =
            Ok(vec![series("a", W, &[0.1; 5]), series("b", W, &[0.2; 5])]);
        let j = judge(&s, on_grid(answer).as_ref(), W).judgement_at(4);
        assert_eq!(j.status, Status::Ok);
        assert_eq!(j.value, Some(0.2));
        assert!(j.offenders.is_empty());
    }

    #[test]
    fn worst_series_decides_and_offenders_are_ordered() {
        let s = signal(Some("> 0.5"), Some("> 1"), 0);
        let answer: Result<_, String> = Ok(vec![
            series("ok", W, &[0.1; 5]),
            series("warn-high", W, &[0.9; 5]),
            series("warn-low", W, &[0.6; 5]),
            series("fail", W, &[1.5; 5]),
            series("fail-worst", W, &[3.0; 5]),
        ]);
        let j = judge(&s, on_grid(answer).as_ref(), W).judgement_at(4);
        assert_eq!(j.status, Status::Fail);
        assert_eq!(j.value, Some(3.0));
        let order: Vec<_> = j
            .offenders
            .iter()
            .map(|o| o.labels["svc"].as_str())
            .collect();
        assert_eq!(order, ["fail-worst", "fail", "warn-high", "warn-low"]);
        assert_eq!(j.offending_series, 4);
    }

    #[test]
    fn lower_is_worse_picks_the_lowest() {
        let s = signal(Some("< 0.99"), Some("< 0.95"), 0);
        let answer: Result<_, String> = Ok(vec![
            series("good", W, &[1.0; 5]),
            series("bad", W, &[0.9; 5]),
            series("meh", W, &[0.97; 5]),
        ]);
        let j = judge(&s, on_grid(answer).as_ref(), W).judgement_at(4);
        assert_eq!(j.status, Status::Fail);
        assert_eq!(j.value, Some(0.9));
        assert_eq!(j.offenders[0].labels["svc"], "bad");
        assert_eq!(j.offenders[1].labels["svc"], "meh");
    }

    #[test]
    fn offenders_are_capped_but_counted() {
        let s = signal(None, Some("> 1"), 0);
        let answer: Result<_, String> = Ok((0..15)
            .map(|i| series(&format!("s{i:02}"), W, &[2.0 + i as f64; 5]))
            .collect());
        let j = judge(&s, on_grid(answer).as_ref(), W).judgement_at(4);
        assert_eq!(j.offenders.len(), MAX_OFFENDERS);
        assert_eq!(j.offending_series, 15);
        assert_eq!(j.offenders[0].value, 16.0);
    }

    #[test]
    fn nan_and_inf_are_missing_data() {
        let s = signal(None, Some("> 1"), 0);
        let answer: Result<_, String> = Ok(vec![
            series("nan", W, &[f64::NAN; 5]),
            series("inf", W, &[f64::INFINITY; 5]),
        ]);
        let answer = on_grid(answer);
        let t = judge(&s, answer.as_ref(), W);
        assert_eq!(t.status_at(4), Status::NoData);
        assert_eq!(t.judgement_at(4).value, None);
    }

    /// A fixed baseline of `mean` for the series named `svc`.
    fn fixed(bases: &[(&str, f64)]) -> Baselines {
        Baselines::Fixed(
            bases
                .iter()
                .map(|(svc, b)| ([("svc".to_string(), svc.to_string())].into(), *b))
                .collect(),
        )
    }

    #[test]
    fn a_relative_condition_compares_each_series_with_its_own_baseline() {
        let s = signal(Some("> baseline * 1.5"), Some("> baseline * 3"), 0);
        let answer: Result<_, String> = on_grid(Ok(vec![
            series("slow", W, &[0.35; 5]),
            series("fast", W, &[0.35; 5]),
        ]));
        let b = fixed(&[("slow", 0.1), ("fast", 0.3)]);
        let j = judge_against(&s, answer.as_ref(), &b, W).judgement_at(4);
        assert_eq!(j.status, Status::Fail);
        assert_eq!(j.offending_series, 1, "{:?}", j.offenders);
        assert_eq!(j.offenders[0].labels["svc"], "slow");
        assert_eq!(j.offenders[0].baseline, Some(0.1));
    }

    #[test]
    fn for_counts_relative_breaches_too() {
        let s = signal(None, Some("> baseline * 3"), 60);
        let answer: Result<_, String> =
            on_grid(Ok(vec![series("a", W, &[0.1, 0.1, 0.5, 0.5, 0.5])]));
        let t = judge_against(&s, answer.as_ref(), &fixed(&[("a", 0.1)]), W);
        assert_eq!(t.status_at(2), Status::Warn, "pending");
        assert_eq!(t.status_at(4), Status::Fail);
    }

    #[test]
    fn a_series_without_baseline_counts_as_no_baseline_says() {
        let answer: Result<_, String> = on_grid(Ok(vec![series("new", W, &[5.0; 5])]));
        let b = fixed(&[]);
        let mut s = signal(None, Some("> baseline * 3"), 0);
        for (policy, status) in [
            (NoDataPolicy::Ok, Status::Ok),
            (NoDataPolicy::Warn, Status::Warn),
            (NoDataPolicy::Fail, Status::Fail),
        ] {
            s.no_baseline = policy;
            let j = judge_against(&s, answer.as_ref(), &b, W).judgement_at(4);
            assert_eq!(j.status, status, "{policy:?}");
            assert_eq!(j.baseline, None);
        }
        // Absolute conditions still apply to it.
        let s = Signal {
            fail: Some(Threshold::any_of(&["> 4".into(), "> baseline * 3".into()]).unwrap()),
            ..signal(None, None, 0)
        };
        assert_eq!(
            judge_against(&s, answer.as_ref(), &b, W).status_at(4),
            Status::Fail
        );
    }

    #[test]
    fn a_failed_baseline_makes_the_signal_error() {
        let s = signal(None, Some("> baseline * 3"), 0);
        let answer: Result<_, String> = on_grid(Ok(vec![series("a", W, &[0.1; 5])]));
        let j = judge_against(&s, answer.as_ref(), &Baselines::Failed("refused".into()), W)
            .judgement_at(4);
        assert_eq!(j.status, Status::Error);
        assert_eq!(j.error.as_deref(), Some("baseline query failed: refused"));
    }

    #[test]
    fn a_query_error_is_error_at_every_step() {
        let s = signal(None, Some("> 1"), 0);
        let answer: Result<Vec<Series>, _> = Err("Prometheus is unreachable: connection refused");
        let answer = on_grid(answer);
        let t = judge(&s, answer.as_ref(), W);
        assert_eq!(t.status_at(0), Status::Error);
        let j = t.judgement_at(4);
        assert_eq!(j.status, Status::Error);
        assert!(j.error.unwrap().contains("connection refused"));
    }
}
