//! Baselines: what a relative condition (`"> baseline * 3"`) compares each series with.
//!
//! A series' baseline is the mean of its own values over a window that ends either at a fixed
//! moment (`end`: just before the upgrade started) or `offset` before each judged step (moving).
//! Series are matched to their baseline by their full label set, so one verb or one service that
//! regressed offends while the others do not. Like the rest of the engine this is pure: the
//! baseline's range query is run by whoever fetches the signal's own answer, over
//! [`BaselineSpec::query_window`], and handed in.

use std::collections::HashMap;
use std::fmt::Display;

use super::grid::Grid;
pub use super::pack::{Anchor, BaselineSpec};
use super::pack::{NoDataPolicy, Signal};
use super::series::{Labels, Window};

impl BaselineSpec {
    /// Steps of `step` seconds that the baseline window spans (its points are one more).
    fn steps(&self, step: i64) -> i64 {
        self.window.as_secs() as i64 / step
    }

    /// The range query that answers this baseline for a signal judged over `judged`: the window
    /// before `end` on the judged step (fixed, the same for every judged window), or the judged
    /// grid moved back by `offset` and stretched back by the window (moving), so that each judged
    /// step's baseline is the mean of the points that end `offset` before it.
    pub fn query_window(&self, judged: Window) -> Window {
        let span = self.steps(judged.step) * judged.step;
        match self.anchor {
            Anchor::Fixed(end) => Window {
                start: end - span,
                end,
                step: judged.step,
            },
            Anchor::Moving(offset) => {
                let offset = offset.as_secs() as i64;
                Window {
                    start: judged.start - offset - span,
                    end: judged.end - offset,
                    step: judged.step,
                }
            }
        }
    }
}

/// Every series' baseline for one signal judged over one window.
#[derive(Debug, Clone, PartialEq)]
pub enum Baselines {
    /// The signal has no relative condition: nothing was fetched, nothing is needed.
    Unused,
    /// The baseline's query failed; the signal cannot be judged (fail closed).
    Failed(String),
    /// One mean per series, for every judged step.
    Fixed(HashMap<Labels, f64>),
    /// Per series, the mean for each step of the judged window (`None` where its window is empty).
    Moving(HashMap<Labels, Vec<Option<f64>>>),
}

/// One series' baseline at each judged step.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesBaseline {
    Constant(Option<f64>),
    PerStep(Vec<Option<f64>>),
}

impl SeriesBaseline {
    pub fn at(&self, i: usize) -> Option<f64> {
        match self {
            SeriesBaseline::Constant(b) => *b,
            SeriesBaseline::PerStep(steps) => steps.get(i).copied().flatten(),
        }
    }
}

impl Baselines {
    /// The baselines of a signal judged over `judged`, from the answer of the range query over
    /// `spec.query_window(judged)`.
    pub fn from_answer<E: Display>(
        spec: &BaselineSpec,
        judged: Window,
        answer: &Result<Grid, E>,
    ) -> Baselines {
        match answer {
            Err(e) => Baselines::Failed(e.to_string()),
            Ok(grid) => Baselines::from_grid(spec, judged, grid),
        }
    }

    /// The baselines from the points over `spec.query_window(judged)`, however they were fetched.
    pub fn from_grid(spec: &BaselineSpec, judged: Window, grid: &Grid) -> Baselines {
        match spec.anchor {
            Anchor::Fixed(_) => Baselines::Fixed(
                grid.series()
                    .filter_map(|(labels, values)| {
                        Some((labels.clone(), running_mean(values.iter().copied())?))
                    })
                    .collect(),
            ),
            Anchor::Moving(_) => {
                let points = spec.steps(judged.step) as usize + 1;
                Baselines::Moving(
                    grid.series()
                        .map(|(labels, values)| {
                            (labels.clone(), sliding_means(values, judged, points))
                        })
                        .collect(),
                )
            }
        }
    }

    /// The baseline of the series with these labels; none when it had no value in the window
    /// (a service that did not exist yet).
    pub fn for_series(&self, labels: &Labels) -> SeriesBaseline {
        match self {
            Baselines::Unused | Baselines::Failed(_) => SeriesBaseline::Constant(None),
            Baselines::Fixed(means) => SeriesBaseline::Constant(means.get(labels).copied()),
            Baselines::Moving(means) => means
                .get(labels)
                .map_or(SeriesBaseline::Constant(None), |m| {
                    SeriesBaseline::PerStep(m.clone())
                }),
        }
    }
}

/// The mean of the finite values, if there is one. Kept as a running mean rather than a sum, so
/// that a steady series' baseline is its value exactly, not that value plus rounding.
fn running_mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (mean, n) = values
        .filter(|v| v.is_finite())
        .fold((0.0, 0usize), |(mean, n), v| {
            (mean + (v - mean) / (n + 1) as f64, n + 1)
        });
    (n > 0).then_some(mean)
}

/// For each judged step `i`, the mean of the series' finite values at fetched grid points
/// `i ..= i + points - 1` (the window that ends `offset` before the step); `values` are on the
/// fetched grid.
fn sliding_means(values: &[f64], judged: Window, points: usize) -> Vec<Option<f64>> {
    (0..judged.len())
        .map(|i| {
            let window = values.get(i..(i + points).min(values.len())).unwrap_or(&[]);
            running_mean(window.iter().copied())
        })
        .collect()
}

impl Signal {
    /// Whether the signal has a relative condition, and so needs its baseline fetched.
    pub fn is_relative(&self) -> bool {
        [&self.warn, &self.fail]
            .into_iter()
            .flatten()
            .any(|t| t.is_relative())
    }

    /// A series without a baseline, on a signal that compares with one: its `no_baseline` policy
    /// decides what that counts as.
    fn unbased(&self, baseline: Option<f64>, policy: NoDataPolicy) -> bool {
        baseline.is_none() && self.no_baseline == policy && self.is_relative()
    }

    /// Breached at `fail` level at one step: a fail condition holds, or the series has no
    /// baseline under `no_baseline: fail`. This is what `for` counts.
    pub fn breaches_fail(&self, value: f64, baseline: Option<f64>) -> bool {
        self.fail
            .as_ref()
            .is_some_and(|t| t.breached_by(value, baseline))
            || self.unbased(baseline, NoDataPolicy::Fail)
    }

    /// Breached at `warn` level: a warn condition holds, or the series has no baseline under
    /// `no_baseline: warn`.
    pub fn breaches_warn(&self, value: f64, baseline: Option<f64>) -> bool {
        self.warn
            .as_ref()
            .is_some_and(|t| t.breached_by(value, baseline))
            || self.unbased(baseline, NoDataPolicy::Warn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::series::Series;
    use std::time::Duration;

    fn series(values: &[(i64, f64)]) -> Series {
        Series {
            labels: [("verb".to_string(), "LIST".to_string())].into(),
            samples: values.to_vec(),
        }
    }

    const JUDGED: Window = Window {
        start: 10_000,
        end: 10_090,
        step: 30,
    };

    #[test]
    fn a_fixed_baseline_is_the_mean_over_the_window_before_end() {
        let spec = BaselineSpec {
            anchor: Anchor::Fixed(5_000),
            window: Duration::from_secs(60),
        };
        let fetched = spec.query_window(JUDGED);
        assert_eq!(
            (fetched.start, fetched.end, fetched.step),
            (4_940, 5_000, 30)
        );
        let s = series(&[(4_940, 1.0), (4_970, 2.0), (5_000, f64::NAN)]);
        let grid = Grid::from_series(fetched, std::slice::from_ref(&s));
        let b = Baselines::from_answer(&spec, JUDGED, &Ok::<_, String>(grid));
        assert_eq!(b.for_series(&s.labels), SeriesBaseline::Constant(Some(1.5)));
        assert_eq!(b.for_series(&Labels::new()).at(0), None, "unknown series");
    }

    #[test]
    fn a_moving_baseline_moves_with_each_step() {
        let spec = BaselineSpec {
            anchor: Anchor::Moving(Duration::from_secs(1_000)),
            window: Duration::from_secs(60),
        };
        let window = spec.query_window(JUDGED);
        assert_eq!((window.start, window.end), (8_940, 9_090));
        // Points 8940, 8970, ... 9090: 1, 2, 3, (gap), 5, 6.
        let fetched = series(&[
            (8_940, 1.0),
            (8_970, 2.0),
            (9_000, 3.0),
            (9_060, 5.0),
            (9_090, 6.0),
        ]);
        let grid = Grid::from_series(window, std::slice::from_ref(&fetched));
        let b = Baselines::from_answer(&spec, JUDGED, &Ok::<_, String>(grid));
        let s = b.for_series(&fetched.labels);
        // Step 10000 looks at 8940..=9000, 10030 at 8970..=9030, ...
        let at: Vec<_> = (0..4).map(|i| s.at(i)).collect();
        assert_eq!(at, [Some(2.0), Some(2.5), Some(4.0), Some(5.5)]);
    }

    #[test]
    fn a_failed_baseline_query_is_kept_as_its_error() {
        let answer: Result<Grid, _> = Err("timed out");
        assert_eq!(
            Baselines::from_answer(&BaselineSpec::DEFAULT, JUDGED, &answer),
            Baselines::Failed("timed out".into())
        );
    }
}
