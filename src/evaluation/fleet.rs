//! Fleet evaluations: per store, one presence query and one rewritten query per signal, whatever
//! the number of clusters, dealt out so that each cluster is judged alone.
//!
//! Each store (the `prometheus` section's, and each of `fleet.backends`) keeps its own
//! [`Incremental`] windows, so `serve` fetches only new steps per store as it does for one
//! cluster. A signal too large for one query over a store's clusters is asked in parts of the
//! cluster list from then on, each part keeping its windows the same way. What a store cannot
//! answer makes its clusters `unknown` and no other: its error, a cluster without presence
//! series, a partial answer. Never `go`.

use std::collections::HashMap;
use std::time::Instant;

use chrono::DateTime;
use futures::future::join_all;
use futures::stream::{self, StreamExt};

use super::Incremental;
use super::Refreshed;
use crate::config::{BackendScope, Config, FleetConfig};
use crate::engine::baseline::Baselines;
use crate::engine::fleet::split::deal;
use crate::engine::fleet::{ClusterSnapshot, FleetSnapshot, GoSince, Refusal};
use crate::engine::grid::{value, Grid};
use crate::engine::pack::Signal;
use crate::engine::series::Window;
use crate::engine::snapshot::Snapshot;
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
    /// The configuration with every query rewritten for this store's clusters, less the signals
    /// asked in parts.
    config: Config,
    /// `count by (<label>) (<presence>)`: every cluster reporting to the store, listed or not.
    presence: String,
    windows: Incremental,
    /// Signals too large for one query over the store's clusters (above `max_series`, or refused
    /// for size), asked from then on for parts of the cluster list, halved until each fits.
    /// Each part keeps its windows and baselines as the store does, so a split signal still
    /// costs only its new steps. A split holds until a reload makes a new evaluator.
    parts: Vec<Part>,
}

/// One signal asked for some of a store's clusters.
struct Part {
    signal: String,
    clusters: Vec<String>,
    /// The configuration with this one signal, its query rewritten for these clusters.
    config: Config,
    windows: Incremental,
    /// This evaluation's refresh; `None` until done.
    refreshed: Option<Refreshed>,
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
                    parts: Vec::new(),
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
        let whole = self.windows.refresh(&self.config, &self.source, at).await;
        let newly_split: Vec<String> = self
            .config
            .pack
            .signals
            .iter()
            .filter(|_| self.clusters.len() > 1)
            .filter(|s| whole.error(&s.name).is_some_and(SourceError::is_too_large))
            .map(|s| s.name.clone())
            .collect();
        for name in &newly_split {
            let signal = original.pack.signals.iter().find(|s| &s.name == name);
            let signal = signal.expect("the store's signals are the pack's");
            self.parts
                .extend(Part::halves(original, fleet, signal, &self.clusters));
        }
        self.refresh_parts(original, fleet, at).await;

        let (signals, more_unlisted) = self.deal_all(original, fleet, &whole, &newly_split);
        unlisted += more_unlisted;
        let judged = self
            .clusters
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
                let answers: Vec<Result<&Grid, &str>> = signals
                    .iter()
                    .map(|signal| match (&absent, &signal.answers[cluster]) {
                        (Some(why), _) => Err(why.as_str()),
                        (None, Ok(grid)) => Ok(grid),
                        (None, Err(e)) => Err(e.as_str()),
                    })
                    .collect();
                let baselines: Vec<&Baselines> =
                    signals.iter().map(|s| s.baselines.of(cluster)).collect();
                let snapshot =
                    Snapshot::judge_against(&original.pack, step, at, &answers, &baselines);
                (cluster.clone(), absent.is_none(), snapshot)
            })
            .collect();
        self.config
            .pack
            .signals
            .retain(|s| !newly_split.contains(&s.name));
        Judged {
            clusters: judged,
            unlisted,
        }
    }

    /// Every signal of the pack dealt out to the store's clusters, from the store's answer or
    /// its parts'; also the series that named no listed cluster.
    fn deal_all<'a>(
        &'a self,
        original: &Config,
        fleet: &FleetConfig,
        whole: &'a Refreshed,
        newly_split: &[String],
    ) -> (Vec<Dealt<'a>>, usize) {
        let whole_answers = self.windows.answers(&self.config.pack, whole);
        let mut unlisted = 0;
        let signals = original.pack.signals.iter().map(|signal| {
            let whole_signal = |s: &Signal| s.name == signal.name && !newly_split.contains(&s.name);
            let (dealt, extra) = match self.config.pack.signals.iter().position(whole_signal) {
                Some(i) => {
                    Dealt::whole(whole_answers[i], &whole.baselines[i], fleet, &self.clusters)
                }
                None => Dealt::parts(
                    self.parts
                        .iter()
                        .filter(|p| p.signal == signal.name)
                        .map(|part| {
                            let refreshed =
                                part.refreshed.as_ref().expect("refreshed before dealt");
                            let answer = part.windows.answers(&part.config.pack, refreshed)[0];
                            (part.clusters.as_slice(), answer, &refreshed.baselines[0])
                        }),
                    fleet,
                ),
            };
            unlisted += extra;
            dealt
        });
        let signals = signals.collect();
        (signals, unlisted)
    }

    /// Brings every part up to `at`, halving those still too large (down to one cluster) and
    /// asking their halves at once; at most `concurrency` parts at a time.
    async fn refresh_parts(&mut self, original: &Config, fleet: &FleetConfig, at: i64) {
        let Store { parts, source, .. } = self;
        for part in parts.iter_mut() {
            part.refreshed = None;
        }
        loop {
            stream::iter(parts.iter_mut().filter(|p| p.refreshed.is_none()))
                .for_each_concurrent(original.evaluation.concurrency, async |part| {
                    let refreshed = part.windows.refresh(&part.config, source, at).await;
                    part.refreshed = Some(refreshed);
                })
                .await;
            let (too_large, fit): (Vec<Part>, Vec<Part>) = std::mem::take(parts)
                .into_iter()
                .partition(|p| p.clusters.len() > 1 && p.too_large());
            *parts = fit;
            if too_large.is_empty() {
                return;
            }
            for part in too_large {
                let signal = original.pack.signals.iter().find(|s| s.name == part.signal);
                let signal = signal.expect("a part's signal is the pack's");
                parts.extend(Part::halves(original, fleet, signal, &part.clusters));
            }
        }
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

/// One signal of the pack for each cluster of a store: its answer and its baselines.
struct Dealt<'a> {
    answers: PerCluster,
    baselines: BaselinesOf<'a>,
}

impl<'a> Dealt<'a> {
    /// From the store's answer for all of `clusters`; also the series that named none.
    fn whole(
        answer: Result<&Grid, &SourceError>,
        baselines: &'a Baselines,
        fleet: &FleetConfig,
        clusters: &[String],
    ) -> (Dealt<'a>, usize) {
        let (answers, unlisted) = deal_out(answer, fleet, clusters);
        let baselines = BaselinesOf::Store(baselines);
        (Dealt { answers, baselines }, unlisted)
    }

    /// From the answers of the parts it was split into, each (its clusters, its answer, its
    /// baselines); also the series that named none of a part's clusters.
    fn parts(
        parts: impl Iterator<
            Item = (
                &'a [String],
                Result<&'a Grid, &'a SourceError>,
                &'a Baselines,
            ),
        >,
        fleet: &FleetConfig,
    ) -> (Dealt<'a>, usize) {
        let mut answers = PerCluster::new();
        let mut of_cluster = HashMap::new();
        let mut unlisted = 0;
        for (clusters, answer, baselines) in parts {
            let (dealt, extra) = deal_out(answer, fleet, clusters);
            answers.extend(dealt);
            unlisted += extra;
            for cluster in clusters {
                of_cluster.insert(cluster.as_str(), baselines);
            }
        }
        let baselines = BaselinesOf::Clusters(of_cluster);
        (Dealt { answers, baselines }, unlisted)
    }
}

/// One signal's baselines for each cluster: the store's, or each cluster's part's.
enum BaselinesOf<'a> {
    Store(&'a Baselines),
    Clusters(HashMap<&'a str, &'a Baselines>),
}

impl BaselinesOf<'_> {
    fn of(&self, cluster: &str) -> &Baselines {
        match self {
            BaselinesOf::Store(b) => b,
            BaselinesOf::Clusters(by_cluster) => by_cluster[cluster],
        }
    }
}

impl Part {
    /// `signal` asked for each half of `clusters` (two clusters at least).
    fn halves(
        original: &Config,
        fleet: &FleetConfig,
        signal: &Signal,
        clusters: &[String],
    ) -> [Part; 2] {
        let (a, b) = clusters.split_at(clusters.len() / 2);
        [a, b].map(|half| {
            let scope = BackendScope {
                backend: None,
                clusters: half.to_vec(),
            };
            let mut signal = signal.clone();
            signal.query = fleet
                .rewrite(&signal.query, &scope)
                .expect("a part's clusters are some of the store's, whose rewrite succeeded");
            let mut config = original.clone();
            config.pack.signals = vec![signal];
            Part {
                signal: config.pack.signals[0].name.clone(),
                clusters: scope.clusters,
                config,
                windows: Incremental::default(),
                refreshed: None,
            }
        })
    }

    fn too_large(&self) -> bool {
        let error = self.refreshed.as_ref().and_then(|r| r.error(&self.signal));
        error.is_some_and(SourceError::is_too_large)
    }
}

/// `answer`, asked for `clusters`, dealt out to each of them; also the series that named none.
fn deal_out(
    answer: Result<&Grid, &SourceError>,
    fleet: &FleetConfig,
    clusters: &[String],
) -> (PerCluster, usize) {
    match answer {
        Ok(grid) => {
            let dealt = deal(grid, &fleet.label, clusters);
            let answers = dealt.by_cluster.into_iter().map(|(c, g)| (c, Ok(g)));
            (answers.collect(), dealt.unlisted)
        }
        Err(e) => {
            // Only an answer for one cluster is still too large: larger ones are split.
            let why = if e.is_too_large() {
                format!("too large for one query even for this cluster alone: {e}")
            } else {
                e.to_string()
            };
            let answers = clusters.iter().map(|c| (c.clone(), Err(why.clone())));
            (answers.collect(), 0)
        }
    }
}
