//! Fleet evaluations: per store, one presence query and one rewritten query per signal, whatever
//! the number of clusters, dealt out so that each cluster is judged alone.
//!
//! Each store (the `prometheus` section's, and each of `fleet.backends`) keeps its own
//! [`Incremental`] windows, so `serve` fetches only new steps per store as it does for one
//! cluster. What a store cannot answer makes its clusters `unknown` and no other: its error, a
//! cluster without presence series, a partial answer. Never `go`.

use std::collections::HashMap;
use std::time::Instant;

use chrono::DateTime;
use futures::future::join_all;

use super::Incremental;
use crate::config::{BackendScope, Config, FleetConfig};
use crate::engine::fleet::split::deal;
use crate::engine::fleet::{ClusterSnapshot, FleetSnapshot, GoSince, Refusal};
use crate::engine::grid::{value, Grid};
use crate::engine::series::Window;
use crate::engine::snapshot::{windows as windows_of, Snapshot};
use crate::prometheus::error::SourceError;
use crate::prometheus::source::PrometheusSource;

mod steps;

/// Why a fleet cannot be evaluated at all (a configuration `validate` would have refused).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("the configuration has no fleet section")]
    NotAFleet,
    #[error("{store}: {source}")]
    Source {
        store: String,
        #[source]
        source: SourceError,
    },
    #[error("signal {signal:?}: fleet mode cannot keep clusters apart in this query: {refusal}")]
    Rewrite { signal: String, refusal: Refusal },
}

/// The fleet's stores with what each keeps between evaluations, and since when each cluster has
/// been go and was last seen.
pub struct FleetEvaluator {
    stores: Vec<Store>,
    go_since: GoSince,
    last_seen: HashMap<String, i64>,
}

/// One store and the clusters whose series it holds.
struct Store {
    name: String,
    clusters: Vec<String>,
    source: PrometheusSource,
    /// The configuration with every query rewritten for this store's clusters.
    config: Config,
    /// `count by (<label>) (<presence>)`: every cluster reporting to the store, listed or not.
    presence: String,
    windows: Incremental,
}

impl FleetEvaluator {
    /// A store per backend, each query rewritten for its clusters.
    pub fn new(config: &Config) -> Result<FleetEvaluator, FleetError> {
        let fleet = config.fleet.as_ref().ok_or(FleetError::NotAFleet)?;
        let stores = fleet
            .scopes()
            .into_iter()
            .map(|scope| {
                let (name, prometheus) = match scope.backend {
                    None => ("prometheus".to_string(), &config.prometheus),
                    Some(b) => {
                        let backend = fleet.backends.iter().find(|x| x.name == b);
                        let backend = backend.expect("scopes name configured backends");
                        (format!("fleet.backends {b}"), &backend.prometheus)
                    }
                };
                let source =
                    PrometheusSource::new(prometheus).map_err(|source| FleetError::Source {
                        store: name.clone(),
                        source,
                    })?;
                let mut rewritten = config.clone();
                for signal in &mut rewritten.pack.signals {
                    signal.query = fleet.rewrite(&signal.query, &scope).map_err(|refusal| {
                        FleetError::Rewrite {
                            signal: signal.name.clone(),
                            refusal,
                        }
                    })?;
                }
                Ok(Store {
                    name,
                    presence: fleet.presence_query(),
                    clusters: scope.clusters,
                    source,
                    config: rewritten,
                    windows: Incremental::default(),
                })
            })
            .collect::<Result<_, FleetError>>()?;
        Ok(FleetEvaluator {
            stores,
            go_since: GoSince::default(),
            last_seen: HashMap::new(),
        })
    }

    /// Judges every cluster at `at` (a step of the interval grid), each store queried at once.
    pub async fn evaluate(&mut self, config: &Config, at: i64) -> FleetSnapshot {
        let started = Instant::now();
        let fleet = config
            .fleet
            .as_ref()
            .expect("a fleet evaluator has a fleet");
        let last_seen = &self.last_seen;
        let judged = join_all(
            self.stores
                .iter_mut()
                .map(|store| store.evaluate(config, fleet, last_seen, at)),
        )
        .await;
        let mut clusters = Vec::new();
        let mut unlisted = 0;
        for judged in judged {
            unlisted += judged.unlisted;
            for (cluster, seen, snapshot) in judged.clusters {
                if seen {
                    self.last_seen.insert(cluster.clone(), at);
                }
                clusters.push((cluster, snapshot));
            }
        }
        let wave_of = |cluster: &str| {
            fleet
                .waves
                .iter()
                .find(|w| w.clusters.iter().any(|c| c == cluster))
                .map_or_else(String::new, |w| w.name.clone())
        };
        let clusters = clusters
            .into_iter()
            .map(|(cluster, snapshot)| ClusterSnapshot {
                wave: wave_of(&cluster),
                cluster,
                go_since: None,
                snapshot,
            })
            .collect();
        let at = DateTime::from_timestamp(at, 0).unwrap_or_default();
        let mut snapshot =
            FleetSnapshot::new(at, clusters, &fleet.waves, &mut self.go_since, unlisted);
        snapshot.took = started.elapsed();
        snapshot
    }

    /// Takes over what `old` (the evaluator of the configuration a reload replaced) has seen:
    /// since when each cluster has been go and when it last reported. The stores' windows are
    /// not taken: their queries may have changed.
    pub fn carry_over(&mut self, old: FleetEvaluator) {
        self.go_since = old.go_since;
        self.last_seen = old.last_seen;
    }

    /// When `cluster` was last seen reporting, as a sentence's end.
    fn since(last_seen: &HashMap<String, i64>, cluster: &str) -> String {
        match last_seen
            .get(cluster)
            .and_then(|t| DateTime::from_timestamp(*t, 0))
        {
            Some(t) => format!("since {}", t.to_rfc3339()),
            None => "since the gate started".into(),
        }
    }
}

/// A store's clusters judged at one time: (cluster, seen reporting, snapshot) in the store's
/// order, and the series that named no listed cluster.
struct Judged {
    clusters: Vec<(String, bool, Snapshot)>,
    unlisted: usize,
}

impl Store {
    async fn evaluate(
        &mut self,
        original: &Config,
        fleet: &FleetConfig,
        last_seen: &HashMap<String, i64>,
        at: i64,
    ) -> Judged {
        let step = original.evaluation.step_secs();
        let (reporting, mut unlisted) = self.presence(original, fleet, at).await;
        let Store {
            clusters,
            source,
            config,
            windows,
            ..
        } = self;
        let clusters = &*clusters;
        let source = &*source;
        let judged_windows = windows_of(&original.pack, step, at, at);
        windows
            .fetch(config, source, at, async |answers, baselines| {
                let mut per_signal: Vec<PerCluster> = Vec::with_capacity(answers.len());
                for ((signal, window), answer) in original
                    .pack
                    .signals
                    .iter()
                    .zip(&judged_windows)
                    .zip(answers)
                {
                    per_signal.push(match answer {
                        Ok(grid) => {
                            let dealt = deal(grid, &fleet.label, clusters);
                            unlisted += dealt.unlisted;
                            dealt
                                .by_cluster
                                .into_iter()
                                .map(|(c, g)| (c, Ok(g)))
                                .collect()
                        }
                        Err(e) if e.is_too_large() && clusters.len() > 1 => {
                            let limit = original.evaluation.max_series(signal);
                            let query = Split {
                                source,
                                fleet,
                                query: &signal.query,
                                window: *window,
                                limit,
                            };
                            let (parts, extra) = query.halves(clusters).await;
                            unlisted += extra;
                            parts
                        }
                        Err(e) => clusters
                            .iter()
                            .map(|c| (c.clone(), Err(e.to_string())))
                            .collect(),
                    });
                }
                let judged = clusters
                    .iter()
                    .map(|cluster| {
                        let absent = match &reporting {
                            Ok(present) if present.contains(cluster) => None,
                            Ok(_) => Some(format!(
                                "no data from cluster {cluster} {} (no series of {} for it)",
                                FleetEvaluator::since(last_seen, cluster),
                                fleet.presence
                            )),
                            Err(e) => Some(e.clone()),
                        };
                        let answers: Vec<Result<&Grid, &str>> = per_signal
                            .iter()
                            .map(|part| match (&absent, &part[cluster]) {
                                (Some(why), _) => Err(why.as_str()),
                                (None, Ok(grid)) => Ok(grid),
                                (None, Err(e)) => Err(e.as_str()),
                            })
                            .collect();
                        let snapshot =
                            Snapshot::judge_against(&original.pack, step, at, &answers, baselines);
                        (cluster.clone(), absent.is_none(), snapshot)
                    })
                    .collect();
                Judged {
                    clusters: judged,
                    unlisted,
                }
            })
            .await
    }

    /// The listed clusters that report at `at`, and how many presence series name a cluster no
    /// wave lists; or why presence could not be known.
    async fn presence(
        &self,
        config: &Config,
        fleet: &FleetConfig,
        at: i64,
    ) -> (Result<Vec<String>, String>, usize) {
        let window = Window {
            start: at,
            end: at,
            step: config.evaluation.step_secs(),
        };
        let answer = self
            .source
            .range(&self.presence, window, usize::MAX)
            .await
            .map_err(|e| format!("{}: presence query failed: {e}", self.name));
        match answer {
            Err(e) => (Err(e), 0),
            Ok(grid) => {
                let listed = |c: &str| {
                    fleet
                        .waves
                        .iter()
                        .any(|w| w.clusters.iter().any(|x| x == c))
                };
                let mut present = Vec::new();
                let mut unlisted = 0.0;
                for (labels, values) in grid.series() {
                    let (Some(cluster), Some(count)) = (
                        labels.get(&fleet.label),
                        values.last().copied().and_then(value),
                    ) else {
                        continue;
                    };
                    if listed(cluster) {
                        present.push(cluster.clone());
                    } else {
                        unlisted += count;
                    }
                }
                (Ok(present), unlisted as usize)
            }
        }
    }
}

/// One signal's answer for each cluster of a store.
type PerCluster = HashMap<String, Result<Grid, String>>;

/// A signal whose fleet answer was too large (above `max_series`, or refused for size by the
/// store), asked again for halves of the cluster list.
struct Split<'a> {
    source: &'a PrometheusSource,
    fleet: &'a FleetConfig,
    /// The pack's query, as written for one cluster.
    query: &'a str,
    window: Window,
    limit: usize,
}

impl Split<'_> {
    /// Each cluster's answer, halving the list until a part fits; a cluster still too large
    /// alone gets the refusal. Also the series that named no listed cluster.
    async fn halves(&self, clusters: &[String]) -> (PerCluster, usize) {
        let mut answers = PerCluster::new();
        let mut unlisted = 0;
        let mut pending: Vec<&[String]> = vec![clusters];
        // Every part pushed has two clusters or more, so both halves have one at least.
        while let Some(part) = pending.pop() {
            let (a, b) = part.split_at(part.len() / 2);
            let (ra, rb) = tokio::join!(self.fetch(a), self.fetch(b));
            for (half, answer) in [(a, ra), (b, rb)] {
                match answer {
                    Err(e) if e.is_too_large() && half.len() > 1 => pending.push(half),
                    answer => unlisted += self.record(half, answer, &mut answers),
                }
            }
        }
        (answers, unlisted)
    }

    async fn fetch(&self, clusters: &[String]) -> Result<Grid, SourceError> {
        let scope = BackendScope {
            backend: None,
            clusters: clusters.to_vec(),
        };
        let query = self
            .fleet
            .rewrite(self.query, &scope)
            .map_err(|r| SourceError::Rejected(r.to_string()))?;
        self.source.range(&query, self.window, self.limit).await
    }

    fn record(
        &self,
        clusters: &[String],
        answer: Result<Grid, SourceError>,
        into: &mut PerCluster,
    ) -> usize {
        match answer {
            Ok(grid) => {
                let dealt = deal(&grid, &self.fleet.label, clusters);
                into.extend(dealt.by_cluster.into_iter().map(|(c, g)| (c, Ok(g))));
                dealt.unlisted
            }
            Err(e) => {
                let why = if e.is_too_large() {
                    format!("too large for one query even for this cluster alone: {e}")
                } else {
                    e.to_string()
                };
                into.extend(clusters.iter().map(|c| (c.clone(), Err(why.clone()))));
                0
            }
        }
    }
}
