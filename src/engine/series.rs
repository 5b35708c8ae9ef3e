//! The time grid of a range query ([`Window`]) and the labels that name a series.
//!
//! Owned by the engine so that judging never depends on how the samples were fetched: the
//! Prometheus source asks for a [`Window`] and reads its answer straight onto that window's
//! [`super::grid::Grid`]. A [`Series`], labels with a list of samples, is the plain form for
//! answers written by hand (unit tests, integration tests, benches), which
//! [`super::grid::Grid::from_series`] lays on a grid; no fetched answer passes through it.

use std::collections::BTreeMap;

/// Labels of one series, sorted so that output and matching are deterministic.
pub type Labels = BTreeMap<String, String>;

/// One returned series: its labels and its samples as (unix seconds, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// The time grid of a range query: `start`, `start + step`, ... up to `end` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Window {
    /// A window of `steps_back` steps before `end` (so `steps_back + 1` points).
    pub fn ending_at(end: i64, step: i64, steps_back: usize) -> Window {
        Window {
            start: end - step * steps_back as i64,
            end,
            step,
        }
    }

    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step) as usize + 1
    }

    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }

    /// The grid index of a sample timestamp, if it lies on the grid. Any `ts` is safe: the
    /// timestamps come from an answer, and one far off the window is merely not on it.
    pub fn index_of(&self, ts: i64) -> Option<usize> {
        let offset = ts.checked_sub(self.start)?;
        (offset >= 0 && offset.checked_rem(self.step)? == 0 && ts <= self.end)
            .then(|| (offset / self.step) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_grid_is_inclusive_and_aligned_to_the_end() {
        let w = Window::ending_at(1000, 30, 4);
        assert_eq!(w.start, 880);
        assert_eq!(w.len(), 5);
        assert_eq!(w.index_of(880), Some(0));
        assert_eq!(w.index_of(1000), Some(4));
        assert_eq!(w.index_of(1001), None);
        assert_eq!(w.index_of(850), None);
        assert_eq!(w.index_of(1030), None);
    }

    #[test]
    fn a_timestamp_at_the_ends_of_i64_is_off_the_grid() {
        let w = Window::ending_at(1000, 30, 4);
        assert_eq!(w.index_of(i64::MIN), None);
        assert_eq!(w.index_of(i64::MAX), None);
        let below_zero = Window::ending_at(-1000, 30, 4);
        assert_eq!(below_zero.index_of(i64::MAX), None);
        assert_eq!(below_zero.index_of(-1000), Some(4));
    }
}
