//! `serve`'s evaluations: each signal's window kept from one to the next, so that only the steps
//! not seen yet are fetched, which a shared Prometheus (or a bill per sample processed, as on
//! Amazon Managed Service for Prometheus) pays for once, not once per step of every window.

use std::time::Instant;

use super::baselines::{KeptBaselines, Plan};
use crate::config::Config;
use crate::engine::baseline::Baselines;
use crate::engine::grid::Grid;
use crate::engine::pack::Signal;
use crate::engine::snapshot::{windows, Snapshot};
use crate::engine::window_cache::WindowCache;
use crate::prometheus::error::SourceError;
use crate::prometheus::source::PrometheusSource;

/// `serve`'s evaluations: each signal's window kept from one to the next, so that only new
/// steps are fetched. The verdicts are those of [`super::evaluate`] at the same time: a signal is
/// fetched whole when nothing usable is held (at start, after a reload that changed its query
/// or window, after its own error, after a gap longer than its window).
#[derive(Default)]
pub struct Incremental {
    cache: WindowCache,
    /// Fixed baselines, fetched once, and moving ones' windows (see [`KeptBaselines`]).
    baselines: KeptBaselines,
}

impl Incremental {
    /// Drops the baselines, after a reload that may have changed them.
    pub fn forget_baselines(&mut self) {
        self.baselines = KeptBaselines::default();
    }

    /// Judges every phase at `at`, a step of the interval grid (multiples of the interval since
    /// the epoch), fetching what the cache does not hold yet.
    pub async fn evaluate(
        &mut self,
        config: &Config,
        source: &PrometheusSource,
        at: i64,
    ) -> Snapshot {
        let started = Instant::now();
        let step = config.evaluation.step_secs();
        let mut snapshot = self
            .fetch(config, source, at, async |answers, baselines| {
                Snapshot::judge_against(&config.pack, step, at, answers, baselines)
            })
            .await;
        snapshot.took = started.elapsed();
        snapshot
    }

    /// Brings every signal's window (and baselines) up to `at` and hands them, in pack order, to
    /// `judge`: one cluster's snapshot, or a fleet's answers to deal out per cluster (which may
    /// fetch again, split, what was too large).
    pub async fn fetch<R>(
        &mut self,
        config: &Config,
        source: &PrometheusSource,
        at: i64,
        judge: impl AsyncFnOnce(&[Result<&Grid, &SourceError>], &[Baselines]) -> R,
    ) -> R {
        let step = config.evaluation.step_secs();
        let pack = &config.pack;
        let windows = windows(pack, step, at, at);
        let judged = || pack.signals.iter().zip(windows.iter().copied());
        // Fixed baselines are kept, moving ones extended by their new steps.
        let max_series = |s: &Signal| config.evaluation.max_series(s);
        let plan = Plan::new(judged(), &self.baselines, max_series);
        self.cache
            .retain(|name| pack.signals.iter().any(|s| s.name == name));
        let wanted: Vec<_> = pack
            .signals
            .iter()
            .zip(&windows)
            .filter_map(|(s, w)| {
                let part = self.cache.missing(&s.name, &s.query, *w)?;
                Some((s, *w, part))
            })
            .collect();
        let mut fetched = source
            .range_all(
                wanted
                    .iter()
                    .map(|(s, _, part)| (s.query.as_str(), *part, max_series(s)))
                    .chain(plan.queries()),
                config.evaluation.concurrency,
            )
            .await;
        let baselines = plan.baselines(
            judged(),
            fetched.split_off(wanted.len()),
            &mut self.baselines,
            at,
        );
        let mut errors: Vec<(&str, SourceError)> = Vec::new();
        for ((signal, window, _), answer) in wanted.into_iter().zip(fetched) {
            let limit = max_series(signal);
            let merged = answer.map(|grid| {
                self.cache
                    .merge(&signal.name, &signal.query, window, grid)
                    .series_count()
            });
            // The series of the whole window, as a whole fetch would have counted them.
            let error = match merged {
                Ok(returned) if returned > limit => {
                    Some(SourceError::TooManySeries { returned, limit })
                }
                Ok(_) => None,
                Err(e) => Some(e),
            };
            if let Some(e) = error {
                self.cache.forget(&signal.name);
                errors.push((&signal.name, e));
            }
        }
        let answers: Vec<_> = pack
            .signals
            .iter()
            .map(|s| match errors.iter().find(|(name, _)| *name == s.name) {
                Some((_, e)) => Err(e),
                None => Ok(self.cache.get(&s.name).expect("merged above or held")),
            })
            .collect();
        judge(&answers, &baselines).await
    }
}
