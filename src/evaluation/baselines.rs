//! Fetching baselines: which signals need one more range query for their relative conditions,
//! and the baselines kept between evaluations.
//!
//! A fixed baseline (`baseline.end`) is the mean over a window in the past: once Prometheus can
//! no longer add samples to it, it cannot change, so `serve` fetches it once per signal and keeps
//! it until a reload (which starts a new [`KeptBaselines`]). A moving one (`baseline.offset`) is
//! the signal's own query over its window moved back by the offset (as PromQL's `offset` would),
//! stretched back by the baseline window; the engine takes the sliding means. That window slides
//! one step per evaluation like the judged one, so `serve` keeps it in a [`WindowCache`] of its
//! own and asks only for its new steps: a day-old step is final when first fetched. BENCHMARKS.md
//! compares that query with a subquery.

use std::collections::HashMap;

use crate::engine::baseline::{Anchor, BaselineSpec, Baselines};
use crate::engine::grid::Grid;
use crate::engine::pack::Signal;
use crate::engine::series::Window;
use crate::engine::window_cache::WindowCache;
use crate::prometheus::error::SourceError;

/// How long after a fixed baseline's end its samples may still change: Prometheus' default
/// lookback (a late scrape within it still lands on the grid points before `end`).
const SETTLE_SECS: i64 = 300;

/// Baselines fetched so far: fixed ones by query, baseline and step (everything the answer
/// depends on), moving ones as the window of points last fetched, by signal.
#[derive(Debug, Default)]
pub struct KeptBaselines {
    fixed: HashMap<(String, BaselineSpec, i64), Grid>,
    moving: WindowCache,
}

/// One baseline range query: the signal's index among those the plan was made for, its query,
/// the part of the baseline's window still to fetch, and the signal's series limit.
#[derive(Clone, Copy)]
struct Fetch<'a> {
    signal: usize,
    query: &'a str,
    window: Window,
    max_series: usize,
}

/// The baseline range queries one evaluation needs.
pub struct Plan<'a> {
    fetches: Vec<Fetch<'a>>,
}

impl<'a> Plan<'a> {
    /// What to fetch for `signals`, each judged over its window: nothing for a signal without a
    /// relative condition or whose fixed baseline is kept, only the new steps of a moving one
    /// held from the last evaluation.
    pub fn new(
        signals: impl IntoIterator<Item = (&'a Signal, Window)>,
        kept: &KeptBaselines,
        max_series: impl Fn(&Signal) -> usize,
    ) -> Plan<'a> {
        let fetches = signals
            .into_iter()
            .enumerate()
            .filter(|(_, (s, _))| s.is_relative())
            .filter_map(|(i, (s, w))| {
                let window = s.baseline.query_window(w);
                let missing = match s.baseline.anchor {
                    Anchor::Fixed(_) if kept.fixed.contains_key(&key(s, w.step)) => None,
                    Anchor::Fixed(_) => Some(window),
                    Anchor::Moving(_) => kept.moving.missing(&s.name, &s.query, window),
                };
                Some(Fetch {
                    signal: i,
                    query: s.query.as_str(),
                    window: missing?,
                    max_series: max_series(s),
                })
            })
            .collect();
        Plan { fetches }
    }

    /// The range queries (query, window, series limit), in the order their answers go to
    /// [`Plan::baselines`].
    pub fn queries(&self) -> impl Iterator<Item = (&'a str, Window, usize)> + '_ {
        self.fetches
            .iter()
            .map(|f| (f.query, f.window, f.max_series))
    }

    /// Each signal's baselines from the answers to [`Plan::queries`] and what was kept; keeps
    /// each fixed baseline that has settled by `at`, and every moving one's window.
    pub fn baselines(
        self,
        signals: impl IntoIterator<Item = (&'a Signal, Window)>,
        answers: Vec<Result<Grid, SourceError>>,
        kept: &mut KeptBaselines,
        at: i64,
    ) -> Vec<Baselines> {
        let mut fetched: HashMap<usize, (Fetch, Result<Grid, SourceError>)> = self
            .fetches
            .into_iter()
            .zip(answers)
            .map(|(f, answer)| (f.signal, (f, answer)))
            .collect();
        signals
            .into_iter()
            .enumerate()
            .map(|(i, (s, w))| {
                if !s.is_relative() {
                    return Baselines::Unused;
                }
                let fetched = fetched.remove(&i);
                match s.baseline.anchor {
                    Anchor::Fixed(end) => kept.fixed_baseline(s, w, fetched.map(|f| f.1), end, at),
                    Anchor::Moving(_) => kept.moving_baseline(s, w, fetched),
                }
            })
            .collect()
    }
}

impl KeptBaselines {
    /// Drops what was kept for signals no longer asked: those a reload removed, or a fleet
    /// store's signals that are now asked in parts.
    pub fn retain(&mut self, signals: &[Signal]) {
        self.moving
            .retain(|name| signals.iter().any(|s| s.name == name));
        self.fixed
            .retain(|(query, ..), _| signals.iter().any(|s| &s.query == query));
    }

    fn fixed_baseline(
        &mut self,
        s: &Signal,
        judged: Window,
        fetched: Option<Result<Grid, SourceError>>,
        end: i64,
        at: i64,
    ) -> Baselines {
        let key = key(s, judged.step);
        let answer = match fetched {
            Some(answer) => answer,
            None => Ok(self.fixed[&key].clone()),
        };
        if let Ok(series) = &answer {
            if end + SETTLE_SECS <= at {
                self.fixed.entry(key).or_insert_with(|| series.clone());
            }
        }
        Baselines::from_answer(&s.baseline, judged, &answer)
    }

    /// The new steps merged onto what was held, judged as one fetch of the whole window would
    /// be: an error, or more series than the signal's limit over the whole window, drops what
    /// was held, so that the next evaluation fetches it whole.
    fn moving_baseline(
        &mut self,
        s: &Signal,
        judged: Window,
        fetched: Option<(Fetch, Result<Grid, SourceError>)>,
    ) -> Baselines {
        let window = s.baseline.query_window(judged);
        let merged = match fetched {
            None => Ok(self.moving.get(&s.name).expect("nothing missing: held")),
            Some((fetch, answer)) => answer.and_then(|part| {
                let grid = self.moving.merge(&s.name, &s.query, window, part);
                match grid.series_count() {
                    returned if returned > fetch.max_series => Err(SourceError::TooManySeries {
                        returned,
                        limit: fetch.max_series,
                    }),
                    _ => Ok(grid),
                }
            }),
        };
        match merged {
            Ok(grid) => Baselines::from_grid(&s.baseline, judged, grid),
            Err(e) => {
                self.moving.forget(&s.name);
                Baselines::Failed(e.to_string())
            }
        }
    }
}

fn key(signal: &Signal, step: i64) -> (String, BaselineSpec, i64) {
    (signal.query.clone(), signal.baseline, step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::baseline::SeriesBaseline;
    use crate::engine::pack::NoDataPolicy;
    use crate::engine::series::Series;
    use std::time::Duration;

    const STEP: i64 = 30;

    fn relative(anchor: Anchor) -> Signal {
        Signal {
            name: "latency".into(),
            description: None,
            runbook: None,
            query: "q".into(),
            warn: None,
            fail: Some("> baseline * 2".parse().unwrap()),
            for_: Duration::ZERO,
            weight: 1.0,
            critical: false,
            no_data: NoDataPolicy::Ok,
            baseline: BaselineSpec {
                anchor,
                window: Duration::from_secs(120),
            },
            no_baseline: NoDataPolicy::Ok,
            phases: vec![],
            origin: "test".into(),
            max_series: None,
        }
    }

    /// What Prometheus answers over `window`: one series whose value is its timestamp.
    fn answer(window: Window) -> Grid {
        let series = Series {
            labels: [("verb".to_string(), "LIST".to_string())].into(),
            samples: (0..window.len() as i64)
                .map(|k| {
                    let t = window.start + k * window.step;
                    (t, t as f64)
                })
                .collect(),
        };
        Grid::from_series(window, &[series])
    }

    /// One evaluation at `at`: the windows the plan asked for, and the baselines it gave.
    fn evaluate(s: &Signal, kept: &mut KeptBaselines, at: i64) -> (Vec<Window>, Baselines) {
        let judged = Window {
            start: at - 10 * STEP,
            end: at,
            step: STEP,
        };
        let plan = Plan::new([(s, judged)], kept, |_| 100);
        let asked: Vec<Window> = plan.queries().map(|(_, w, _)| w).collect();
        let answers = asked.iter().map(|w| Ok(answer(*w))).collect();
        let mut baselines = plan.baselines([(s, judged)], answers, kept, at);
        (asked, baselines.remove(0))
    }

    #[test]
    fn a_moving_baseline_is_fetched_whole_once_then_one_step_at_a_time() {
        let s = relative(Anchor::Moving(Duration::from_secs(3600)));
        let kept = &mut KeptBaselines::default();
        let at = 1_800_000_000;
        let (asked, first) = evaluate(&s, kept, at);
        assert_eq!(
            asked,
            [s.baseline.query_window(Window {
                start: at - 300,
                end: at,
                step: STEP
            })]
        );
        for k in 1..=3 {
            let now = at + k * STEP;
            let (asked, kept_answer) = evaluate(&s, kept, now);
            assert_eq!(
                asked,
                [Window {
                    start: now - 3600,
                    end: now - 3600,
                    step: STEP
                }],
                "step {k}"
            );
            // The same baselines a fresh plan, fetching the whole window, gives.
            let (_, whole) = evaluate(&s, &mut KeptBaselines::default(), now);
            assert_eq!(kept_answer, whole, "step {k}");
        }
        let labels = [("verb".to_string(), "LIST".to_string())].into();
        // Each judged step's baseline is the mean of the points 1 h before it: t - 3600 - 60 on average.
        assert_eq!(
            first.for_series(&labels).at(10),
            Some((at - 3600 - 60) as f64)
        );
        assert!(matches!(
            first.for_series(&labels),
            SeriesBaseline::PerStep(_)
        ));
    }

    #[test]
    fn a_moving_baseline_that_failed_is_fetched_whole_again() {
        let s = relative(Anchor::Moving(Duration::from_secs(3600)));
        let kept = &mut KeptBaselines::default();
        let at = 1_800_000_000;
        evaluate(&s, kept, at);
        let judged = Window {
            start: at + STEP - 300,
            end: at + STEP,
            step: STEP,
        };
        let plan = Plan::new([(&s, judged)], kept, |_| 100);
        let failed = plan.baselines(
            [(&s, judged)],
            vec![Err(SourceError::Timeout(Duration::from_secs(1)))],
            kept,
            at + STEP,
        );
        assert!(matches!(failed[0], Baselines::Failed(_)));
        let plan = Plan::new([(&s, judged)], kept, |_| 100);
        let asked: Vec<Window> = plan.queries().map(|(_, w, _)| w).collect();
        assert_eq!(asked, [s.baseline.query_window(judged)]);
    }

    #[test]
    fn a_fixed_baseline_is_kept_once_settled() {
        let end = 1_800_000_000;
        let s = relative(Anchor::Fixed(end));
        let kept = &mut KeptBaselines::default();
        // Not yet settled: asked again next time.
        assert_eq!(evaluate(&s, kept, end + 60).0.len(), 1);
        assert_eq!(evaluate(&s, kept, end + 90).0.len(), 1);
        assert_eq!(evaluate(&s, kept, end + SETTLE_SECS).0.len(), 1);
        let (asked, kept_answer) = evaluate(&s, kept, end + SETTLE_SECS + 30);
        assert!(asked.is_empty(), "kept once settled");
        assert_eq!(
            kept_answer,
            evaluate(&s, &mut KeptBaselines::default(), end + SETTLE_SECS + 30).1
        );
    }
}
