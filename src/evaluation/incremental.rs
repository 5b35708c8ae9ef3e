//! `serve`'s evaluations: each signal's window kept from one to the next, so that only the steps
//! not seen yet are fetched, which a shared Prometheus (or a bill per sample processed, as on
//! Amazon Managed Service for Prometheus) pays for once, not once per step of every window.

use std::collections::HashMap;
use std::time::Instant;

use super::baselines::{KeptBaselines, Plan};
use crate::config::Config;
use crate::engine::baseline::Baselines;
use crate::engine::grid::Grid;
use crate::engine::pack::{Pack, Signal};
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
        let refreshed = self.refresh(config, source, at).await;
        let answers = self.answers(&config.pack, &refreshed);
        let mut snapshot =
            Snapshot::judge_against(&config.pack, step, at, &answers, &refreshed.baselines);
        snapshot.took = started.elapsed();
        snapshot
    }

    /// Brings every signal's window (and baselines) up to `at`: one cluster's, or a fleet's
    /// answers to deal out per cluster. [`Incremental::answers`] then lends the windows.
    pub async fn refresh(
        &mut self,
        config: &Config,
        source: &PrometheusSource,
        at: i64,
    ) -> Refreshed {
        let step = config.evaluation.step_secs();
        let pack = &config.pack;
        let windows = windows(pack, step, at, at);
        let judged = || pack.signals.iter().zip(windows.iter().copied());
        self.cache
            .retain(|name| pack.signals.iter().any(|s| s.name == name));
        self.baselines.retain(&pack.signals);
        // Fixed baselines are kept, moving ones extended by their new steps.
        let max_series = |s: &Signal| config.evaluation.max_series(s);
        let plan = Plan::new(judged(), &self.baselines, max_series);
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
        let mut errors = HashMap::new();
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
                errors.insert(signal.name.clone(), e);
            }
        }
        Refreshed { errors, baselines }
    }

    /// Each signal of `pack` (the one [`Incremental::refresh`] was given) in pack order: its
    /// window, or why it could not be fetched.
    pub fn answers<'a>(
        &'a self,
        pack: &Pack,
        refreshed: &'a Refreshed,
    ) -> Vec<Result<&'a Grid, &'a SourceError>> {
        pack.signals
            .iter()
            .map(|s| match refreshed.errors.get(&s.name) {
                Some(e) => Err(e),
                None => Ok(self.cache.get(&s.name).expect("merged by refresh or held")),
            })
            .collect()
    }
}

/// What one [`Incremental::refresh`] brought: the signals it could not fetch, and every
/// signal's baselines in pack order.
pub struct Refreshed {
    errors: HashMap<String, SourceError>,
    pub baselines: Vec<Baselines>,
}

impl Refreshed {
    /// Why `signal` could not be fetched, if it could not.
    pub fn error(&self, signal: &str) -> Option<&SourceError> {
        self.errors.get(signal)
    }
}
