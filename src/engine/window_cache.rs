//! The window cache of `serve`: each signal's grid kept between evaluations, so that Prometheus
//! is asked only for the steps after the last one fetched.
//!
//! A signal's window slides by whole steps of one fixed grid (multiples of the interval since the
//! epoch): the steps that fall out of it are evicted, the new ones fetched and appended, series
//! matched by labels. A series that appears gets missing values before it appeared; one that
//! vanishes keeps its values until they have all slid out, then goes. It is a cache and never a
//! memory: whenever it cannot extend what it holds (first evaluation, a changed query or window,
//! a gap longer than the window, the clock going back) it asks for the whole window, and the
//! caller drops a signal's entry after an error, so what it judges is always what one fetch of
//! the whole window would have returned.

use std::collections::HashMap;

use super::grid::{Grid, MISSING};
use super::series::{Labels, Window};

/// Per signal name, the query its grid was fetched with and the grid.
#[derive(Debug, Default)]
pub struct WindowCache {
    signals: HashMap<String, (String, Grid)>,
}

impl WindowCache {
    pub fn new() -> WindowCache {
        WindowCache::default()
    }

    /// The part of `window` that `signal` (asking `query`) still needs fetched: the steps after
    /// the last one held, the whole window when what is held cannot be extended to it, `None`
    /// when everything is already held.
    pub fn missing(&self, signal: &str, query: &str, window: Window) -> Option<Window> {
        let Some((cached_query, grid)) = self.signals.get(signal) else {
            return Some(window);
        };
        let held = grid.window();
        let extends = cached_query == query
            && held.step == window.step
            && held.len() == window.len()
            && (held.start - window.start) % window.step == 0
            && held.end <= window.end
            && held.end + window.step >= window.start;
        if !extends {
            Some(window)
        } else if held.end == window.end {
            None
        } else {
            Some(Window {
                start: held.end + window.step,
                end: window.end,
                step: window.step,
            })
        }
    }

    /// Takes the answer to what [`WindowCache::missing`] asked for and answers `signal`'s grid
    /// over `window`. `fetched` over the whole window replaces what was held.
    pub fn merge(&mut self, signal: &str, query: &str, window: Window, fetched: Grid) -> &Grid {
        let extends =
            fetched.window() != window && self.signals.get(signal).is_some_and(|(q, _)| q == query);
        if extends {
            let (_, grid) = self.signals.get_mut(signal).expect("held, checked above");
            slide(grid, window, fetched);
        } else {
            // Kept for the whole life of the signal: without the spare capacity its buffer grew by.
            let mut fetched = fetched;
            fetched.values.shrink_to_fit();
            fetched.labels.shrink_to_fit();
            self.signals
                .insert(signal.to_string(), (query.to_string(), fetched));
        }
        &self.signals[signal].1
    }

    /// The grid held for `signal`, as the last merge left it.
    pub fn get(&self, signal: &str) -> Option<&Grid> {
        self.signals.get(signal).map(|(_, g)| g)
    }

    /// Drops what is held for `signal`, so that its next evaluation fetches the whole window.
    pub fn forget(&mut self, signal: &str) {
        self.signals.remove(signal);
    }

    /// Drops every signal for which `keep` is false, e.g. those a reload removed.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.signals.retain(|name, _| keep(name));
    }
}

/// Slides `grid` forward onto `window` (same length and step, a later end) and writes the
/// `fetched` steps, which run from just after the old end to the new one.
fn slide(grid: &mut Grid, window: Window, fetched: Grid) {
    let steps = window.len();
    let shift = ((window.end - grid.window.end) / window.step) as usize;
    debug_assert!(
        shift < steps,
        "a gap longer than the window is fetched whole"
    );
    debug_assert_eq!(fetched.window.start, grid.window.end + window.step);
    debug_assert_eq!(fetched.window.end, window.end);
    let kept = steps - shift;
    for row in grid.values.chunks_exact_mut(steps) {
        row.copy_within(shift.., 0);
        row[kept..].fill(MISSING);
    }
    grid.window = window;

    let Grid {
        labels: fetched_labels,
        values: fetched_values,
        ..
    } = fetched;
    let rows: HashMap<&Labels, usize> = grid
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l, i))
        .collect();
    let mut appeared = Vec::new();
    for (labels, new) in fetched_labels
        .into_iter()
        .zip(fetched_values.chunks_exact(shift))
    {
        match rows.get(&labels) {
            Some(&i) => grid.values[i * steps + kept..(i + 1) * steps].copy_from_slice(new),
            None => appeared.push((labels, new)),
        }
    }
    drop(rows);
    for (labels, new) in appeared {
        grid.labels.push(labels);
        grid.values.extend(std::iter::repeat_n(MISSING, kept));
        grid.values.extend_from_slice(new);
    }
    drop_vanished(grid);
}

/// Removes the series that have no value left in the window, and gives memory back once the grid
/// has shrunk well below what it once held (after a burst of big answers).
fn drop_vanished(grid: &mut Grid) {
    let steps = grid.window.len();
    let mut kept = 0;
    for i in 0..grid.labels.len() {
        let row = i * steps..(i + 1) * steps;
        if grid.values[row.clone()].iter().any(|v| v.is_finite()) {
            if kept != i {
                grid.labels.swap(kept, i);
                grid.values.copy_within(row, kept * steps);
            }
            kept += 1;
        }
    }
    grid.labels.truncate(kept);
    grid.values.truncate(kept * steps);
    if grid.values.capacity() > 2 * grid.values.len() {
        grid.values.shrink_to_fit();
        grid.labels.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::series::Series;

    const STEP: i64 = 15;
    /// 9 points: 8 steps back.
    const BACK: usize = 8;

    /// Made-up data: series `k` exists over `[born, died)`, with a gap now and then, and a value
    /// that is a function of (series, time) so that any fetch of any window agrees with any other.
    #[derive(Clone)]
    struct Truth {
        series: Vec<(i64, i64)>,
    }

    impl Truth {
        fn random(rng: &mut fastrand::Rng, horizon: i64) -> Truth {
            let series = (0..rng.usize(1..12))
                .map(|_| {
                    let born = rng.i64(0..horizon);
                    (born, born + rng.i64(STEP..horizon))
                })
                .collect();
            Truth { series }
        }

        fn value(&self, k: usize, t: i64) -> Option<f64> {
            let (born, died) = self.series[k];
            let gap = (t / STEP + k as i64) % 7 == 3;
            (t >= born && t < died && !gap).then(|| (k as i64 * 1000 + t) as f64)
        }

        /// What a range query over `window` answers: the series with a sample in it.
        fn fetch(&self, window: Window) -> Grid {
            let series: Vec<Series> = (0..self.series.len())
                .map(|k| Series {
                    labels: [("k".to_string(), k.to_string())].into(),
                    samples: (0..window.len() as i64)
                        .map(|i| window.start + i * window.step)
                        .filter_map(|t| self.value(k, t).map(|v| (t, v)))
                        .collect(),
                })
                .filter(|s| !s.samples.is_empty())
                .collect();
            Grid::from_series(window, &series)
        }
    }

    /// One series as a judge sees it: labels, and each step's value bit for bit.
    type Row = (Labels, Vec<Option<u64>>);

    /// A grid as a judge sees it: the series with a value, in label order.
    fn seen(grid: &Grid) -> (Window, Vec<Row>) {
        let mut rows: Vec<_> = grid
            .series()
            .filter(|(_, v)| v.iter().any(|v| v.is_finite()))
            .map(|(l, v)| {
                let bits = v
                    .iter()
                    .map(|v| v.is_finite().then(|| v.to_bits()))
                    .collect();
                (l.clone(), bits)
            })
            .collect();
        rows.sort();
        (grid.window(), rows)
    }

    fn window_at(end: i64) -> Window {
        Window::ending_at(end, STEP, BACK)
    }

    /// Evaluates at `end` through the cache, the way `serve` does.
    fn through(cache: &mut WindowCache, truth: &Truth, end: i64) -> Grid {
        let window = window_at(end);
        let fetched = match cache.missing("s", "q", window) {
            Some(part) => truth.fetch(part),
            None => return cache.get("s").unwrap().clone(),
        };
        cache.merge("s", "q", window, fetched).clone()
    }

    #[test]
    fn the_first_fetch_is_whole_then_only_new_steps() {
        let mut cache = WindowCache::new();
        let w = window_at(1200);
        assert_eq!(cache.missing("s", "q", w), Some(w));
        cache.merge("s", "q", w, Grid::new(w));
        assert_eq!(
            cache.missing("s", "q", w),
            None,
            "same step: nothing to ask"
        );
        let next = window_at(1200 + STEP);
        assert_eq!(
            cache.missing("s", "q", next),
            Some(Window {
                start: 1215,
                end: 1215,
                step: STEP
            }),
            "one new step: a single point, what an instant query costs"
        );
        let later = window_at(1200 + 3 * STEP);
        assert_eq!(cache.missing("s", "q", later).unwrap().start, 1215);
    }

    #[test]
    fn what_cannot_be_extended_is_fetched_whole() {
        let mut cache = WindowCache::new();
        let w = window_at(1200);
        cache.merge("s", "q", w, Grid::new(w));
        let whole = |w: Window| Some(w);
        // A gap longer than the window: nothing held is still inside it.
        let far = window_at(1200 + (BACK as i64 + 1) * STEP);
        assert_eq!(cache.missing("s", "q", far), whole(far));
        // A gap of exactly the window: the held end is the step before the new start, so the
        // "new steps" are the whole window anyway.
        let edge = window_at(1200 + (BACK as i64) * STEP);
        assert_eq!(cache.missing("s", "q", edge).unwrap().start, 1215);
        // The clock went back.
        let back = window_at(1200 - STEP);
        assert_eq!(cache.missing("s", "q", back), whole(back));
        // A reload changed the query, the window's length, or the step.
        assert_eq!(cache.missing("s", "other", w), whole(w));
        let longer = Window::ending_at(1200, STEP, BACK + 2);
        assert_eq!(cache.missing("s", "q", longer), whole(longer));
        let coarser = Window::ending_at(1200, 30, BACK);
        assert_eq!(cache.missing("s", "q", coarser), whole(coarser));
        // Off the grid the cache was filled on.
        let off = window_at(1207);
        assert_eq!(cache.missing("s", "q", off), whole(off));
        // After an error the caller forgets the signal.
        cache.forget("s");
        assert_eq!(cache.missing("s", "q", w), whole(w));
    }

    #[test]
    fn a_changed_query_replaces_the_grid() {
        let truth = Truth {
            series: vec![(0, 10_000)],
        };
        let mut cache = WindowCache::new();
        let w = window_at(1200);
        cache.merge("s", "old", w, truth.fetch(w));
        let next = window_at(1215);
        assert_eq!(cache.missing("s", "new", next), Some(next));
        let merged = cache.merge("s", "new", next, Grid::new(next));
        assert_eq!(
            merged.series_count(),
            0,
            "nothing of the old query's answer is kept"
        );
    }

    #[test]
    fn series_appear_and_vanish() {
        let truth = Truth {
            // k=0 lives throughout; k=1 appears at 1230; k=2's last sample is at 1185.
            series: vec![(0, 10_000), (1230, 10_000), (0, 1200)],
        };
        let mut cache = WindowCache::new();
        let first = through(&mut cache, &truth, 1200);
        assert_eq!(first.series_count(), 2);
        let later = through(&mut cache, &truth, 1245);
        assert_eq!(seen(&later), seen(&truth.fetch(window_at(1245))));
        let labels: Vec<_> = later.series().map(|(l, _)| l["k"].clone()).collect();
        assert!(labels.contains(&"1".to_string()), "appeared: {labels:?}");
        assert!(labels.contains(&"2".to_string()), "still inside the window");
        // Once its last sample slides out of the window, k=2 is gone.
        let last = 1185 + BACK as i64 * STEP;
        let after = through(&mut cache, &truth, last);
        assert!(after.series().any(|(l, _)| l["k"] == "2"));
        let gone = through(&mut cache, &truth, last + STEP);
        assert!(gone.series().all(|(l, _)| l["k"] != "2"));
        assert_eq!(seen(&gone), seen(&truth.fetch(gone.window())));
    }

    #[test]
    fn memory_follows_the_answers_down() {
        let big = Truth {
            series: (0..500).map(|_| (0, 1200 + STEP)).collect(),
        };
        let mut cache = WindowCache::new();
        let g = through(&mut cache, &big, 1200);
        assert_eq!(g.series_count(), 500);
        let mut end = 1200;
        for _ in 0..=BACK {
            end += STEP;
            through(&mut cache, &big, end);
        }
        let held = cache.get("s").unwrap();
        assert_eq!(held.series_count(), 0);
        assert!(
            held.values.capacity() < 500 * (BACK + 1),
            "buffer given back"
        );
    }

    /// The merge against a whole fetch, over random data and random advances of the clock
    /// (repeats, single steps, several steps, gaps longer than the window, going back).
    #[test]
    fn incremental_equals_a_whole_fetch_at_every_evaluation() {
        let mut rng = fastrand::Rng::with_seed(8);
        for _ in 0..300 {
            let truth = Truth::random(&mut rng, 3000);
            let mut cache = WindowCache::new();
            let mut end = rng.i64(0..200) * STEP;
            for _ in 0..60 {
                end += STEP
                    * match rng.u8(0..20) {
                        0 => 0,
                        1 => -(rng.i64(1..4)),
                        2 => rng.i64(BACK as i64..3 * BACK as i64),
                        3..=6 => rng.i64(2..BACK as i64),
                        _ => 1,
                    };
                let incremental = through(&mut cache, &truth, end);
                let whole = truth.fetch(window_at(end));
                assert_eq!(seen(&incremental), seen(&whole), "at {end}");
            }
        }
    }
}
