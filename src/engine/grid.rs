//! One query's answer laid on its window's grid: per series, one value per step.
//!
//! The form every answer is judged in, whether it was fetched whole (`check`, `replay`) or put
//! together from several fetches by the [`super::window_cache`] (`serve`). Compact on purpose: a
//! step costs 8 bytes (NaN where the series has no finite sample), one buffer holds every series,
//! and a timestamp is never stored per sample, because the step grid already says it. An
//! unaggregated query in a big cluster returns tens of thousands of series.

use super::series::{Labels, Series, Window};

/// Series on a shared step grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub(super) window: Window,
    pub(super) labels: Vec<Labels>,
    /// Row-major: series `i` at step `j` is `values[i * window.len() + j]`.
    pub(super) values: Vec<f64>,
}

/// What a series has at a step it has no finite sample for. NaN and ±Inf say nothing about
/// health, so they are stored as missing too.
pub const MISSING: f64 = f64::NAN;

impl Grid {
    /// No series yet, over `window`.
    pub fn new(window: Window) -> Grid {
        Grid {
            window,
            labels: Vec::new(),
            values: Vec::new(),
        }
    }

    /// A grid from series written as lists of samples (answers made by hand: tests, benches),
    /// samples off the grid ignored. Fetched answers are read onto a grid directly.
    pub fn from_series(window: Window, series: &[Series]) -> Grid {
        let mut grid = Grid::new(window);
        for s in series {
            let row = grid.add_series(s.labels.clone());
            for &(ts, v) in &s.samples {
                grid.set(row, ts, v);
            }
        }
        grid
    }

    pub fn window(&self) -> Window {
        self.window
    }

    /// How many series the grid holds.
    pub fn series_count(&self) -> usize {
        self.labels.len()
    }

    /// Adds a series with no value yet at any step; answers its row.
    pub fn add_series(&mut self, labels: Labels) -> usize {
        self.labels.push(labels);
        self.values
            .resize(self.values.len() + self.window.len(), MISSING);
        self.labels.len() - 1
    }

    /// Adds a series with its value at every step, as another grid on the same window holds it.
    pub fn push_series(&mut self, labels: Labels, values: &[f64]) {
        debug_assert_eq!(values.len(), self.window.len());
        self.labels.push(labels);
        self.values.extend_from_slice(values);
    }

    /// Puts a sample of series `row` on the grid: kept if `ts` is a step and `value` is finite.
    pub fn set(&mut self, row: usize, ts: i64, value: f64) {
        if let (Some(j), true) = (self.window.index_of(ts), value.is_finite()) {
            let steps = self.window.len();
            self.values[row * steps + j] = value;
        }
    }

    /// Each series' labels and its value at every step of the window.
    pub fn series(&self) -> impl ExactSizeIterator<Item = (&Labels, &[f64])> {
        self.labels
            .iter()
            .zip(self.values.chunks_exact(self.window.len().max(1)))
    }
}

/// A grid value as the judge reads it: `None` where the series has no finite sample.
pub fn value(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        start: 100,
        end: 160,
        step: 30,
    };

    #[test]
    fn samples_land_on_their_step_and_the_rest_is_missing() {
        let s = Series {
            labels: [("a".to_string(), "1".to_string())].into(),
            samples: vec![(100, 1.0), (115, 9.0), (160, f64::INFINITY), (190, 5.0)],
        };
        let g = Grid::from_series(W, &[s]);
        let (labels, values) = g.series().next().unwrap();
        assert_eq!(labels["a"], "1");
        assert_eq!(values.len(), 3);
        assert_eq!(value(values[0]), Some(1.0));
        assert_eq!(value(values[1]), None, "no sample at 130");
        assert_eq!(value(values[2]), None, "+Inf counts as missing");
    }
}
