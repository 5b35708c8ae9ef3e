//! Fetching baselines: which signals need one more range query for their relative conditions,
//! and the fixed baselines kept between evaluations.
//!
//! A fixed baseline (`baseline.end`) is the mean over a window in the past: once Prometheus can
//! no longer add samples to it, it cannot change, so `serve` fetches it once per signal and keeps
//! it until a reload (which starts a new [`KeptBaselines`]). A moving one (`baseline.offset`) is
//! one more range query per signal and evaluation: the signal's own query over its window moved
//! back by the offset (as PromQL's `offset` would), stretched back by the baseline window; the
//! engine takes the sliding means. BENCHMARKS.md compares that with a subquery.

use std::collections::HashMap;

use crate::engine::baseline::{Anchor, BaselineSpec, Baselines};
use crate::engine::grid::Grid;
use crate::engine::pack::Signal;
use crate::engine::series::Window;
use crate::prometheus::error::SourceError;

/// How long after a fixed baseline's end its samples may still change: Prometheus' default
/// lookback (a late scrape within it still lands on the grid points before `end`).
const SETTLE_SECS: i64 = 300;

/// Fixed baselines fetched so far, by query, baseline and step: everything the answer depends on.
#[derive(Debug, Default)]
pub struct KeptBaselines(HashMap<(String, BaselineSpec, i64), Grid>);

/// The baseline range queries one evaluation needs: (signal index, query, window).
pub struct Plan<'a> {
    fetches: Vec<(usize, &'a str, Window)>,
}

impl<'a> Plan<'a> {
    /// What to fetch for `signals`, each judged over its window: nothing for a signal without a
    /// relative condition or whose fixed baseline is kept.
    pub fn new(
        signals: impl IntoIterator<Item = (&'a Signal, Window)>,
        kept: &KeptBaselines,
    ) -> Plan<'a> {
        let fetches = signals
            .into_iter()
            .enumerate()
            .filter(|(_, (s, w))| s.is_relative() && !kept.0.contains_key(&key(s, w.step)))
            .map(|(i, (s, w))| (i, s.query.as_str(), s.baseline.query_window(w)))
            .collect();
        Plan { fetches }
    }

    /// The range queries, each with the index of its signal among those the plan was made for,
    /// in the order their answers go to [`Plan::baselines`].
    pub fn queries(&self) -> impl Iterator<Item = (usize, &'a str, Window)> + '_ {
        self.fetches.iter().copied()
    }

    /// Each signal's baselines from the answers to [`Plan::queries`] and what was kept; keeps
    /// each fixed baseline that has settled by `at`.
    pub fn baselines(
        self,
        signals: impl IntoIterator<Item = (&'a Signal, Window)>,
        answers: Vec<Result<Grid, SourceError>>,
        kept: &mut KeptBaselines,
        at: i64,
    ) -> Vec<Baselines> {
        let mut fetched: HashMap<usize, Result<Grid, SourceError>> = self
            .fetches
            .iter()
            .map(|&(i, _, _)| i)
            .zip(answers)
            .collect();
        signals
            .into_iter()
            .enumerate()
            .map(|(i, (s, w))| {
                if !s.is_relative() {
                    return Baselines::Unused;
                }
                let key = key(s, w.step);
                let answer = match fetched.remove(&i) {
                    Some(answer) => answer,
                    None => Ok(kept
                        .0
                        .get(&key)
                        .cloned()
                        .unwrap_or_else(|| Grid::new(s.baseline.query_window(w)))),
                };
                if let (Ok(series), Anchor::Fixed(end)) = (&answer, s.baseline.anchor) {
                    if end + SETTLE_SECS <= at {
                        kept.0.entry(key).or_insert_with(|| series.clone());
                    }
                }
                Baselines::from_answer(&s.baseline, w, &answer)
            })
            .collect()
    }
}

fn key(signal: &Signal, step: i64) -> (String, BaselineSpec, i64) {
    (signal.query.clone(), signal.baseline, step)
}
