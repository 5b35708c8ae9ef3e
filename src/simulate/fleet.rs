//! A fleet in one text: `simulate --clusters N` writes N clusters of the model, each series
//! carrying the fleet label as a central store (a Prometheus receiving remote write, Mimir, AMP)
//! holds it, so that a gate in fleet mode can be tried on one exporter or one backfill.
//!
//! Each cluster plays its own scenario on the shared window, the healthy one unless an incident
//! names it. The clusters are named `c1` to `cN`, so a fleet configuration for a test or a
//! benchmark is written without asking the simulator. Each cluster also has `up{<label>="cK"} 1`:
//! in a real fleet every cluster's own scrapes give it one, and the gate's default presence
//! selector (`up`) reads it.

use super::model::time::Window;
use super::model::writer::{Format, Writer};
use super::scenarios::{self, Scenario};

/// Several clusters, each with the scenario it plays, told apart by one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    label: String,
    /// (name, scenario), in name order `c1`, `c2`, ...
    clusters: Vec<(String, Scenario)>,
}

/// Why a fleet cannot be simulated; the message names what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("--clusters must be at least 1")]
    NoClusters,
    #[error("--incident {cluster}=...: there is no cluster {cluster:?}; the clusters are {known}")]
    UnknownCluster { cluster: String, known: String },
    #[error("--incident {cluster}=...: {cluster} already plays {first}")]
    TwoIncidents { cluster: String, first: String },
}

/// The name of the `i`-th cluster (from 1).
pub fn cluster_name(i: usize) -> String {
    format!("c{i}")
}

impl Fleet {
    /// `count` clusters labelled `label`, each playing `normal` unless `incidents` (cluster,
    /// scenario) gives it another. The label is taken as given: the caller checks it.
    pub fn new(
        label: &str,
        count: usize,
        normal: Scenario,
        incidents: &[(String, Scenario)],
    ) -> Result<Fleet, FleetError> {
        if count == 0 {
            return Err(FleetError::NoClusters);
        }
        let mut clusters: Vec<(String, Scenario)> =
            (1..=count).map(|i| (cluster_name(i), normal)).collect();
        let mut named: Vec<&str> = Vec::new();
        for (cluster, scenario) in incidents {
            let Some(slot) = clusters.iter_mut().find(|(name, _)| name == cluster) else {
                return Err(FleetError::UnknownCluster {
                    cluster: cluster.clone(),
                    known: known(count),
                });
            };
            if named.contains(&cluster.as_str()) {
                return Err(FleetError::TwoIncidents {
                    cluster: cluster.clone(),
                    first: scenario_name(slot.1),
                });
            }
            named.push(cluster);
            slot.1 = *scenario;
        }
        Ok(Fleet {
            label: label.to_string(),
            clusters,
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// (name, scenario) of every cluster, `c1` first.
    pub fn clusters(&self) -> &[(String, Scenario)] {
        &self.clusters
    }

    /// One scrape of every cluster at `at_unix` (see [`scenarios::exposition`]).
    pub fn exposition(&self, window: Window, at_unix: i64) -> String {
        self.write(Writer::new(Format::Text, vec![at_unix]), window)
    }

    /// Every cluster sampled from `from_unix` to `to_unix` (see [`scenarios::openmetrics_window`]).
    pub fn openmetrics(&self, window: Window, from_unix: i64, to_unix: i64, step: i64) -> String {
        assert!(step > 0, "step must be positive");
        let times = (0..)
            .map(|i| from_unix + i * step)
            .take_while(|&t| t <= to_unix)
            .collect();
        self.write(Writer::new(Format::OpenMetrics, times), window)
    }

    /// What happens when in the clusters that do not play `healthy`, each sentence naming its
    /// cluster, in time order.
    pub fn timeline(&self, window: Window) -> Vec<(i64, String)> {
        let mut events: Vec<(i64, String)> = self
            .clusters
            .iter()
            .flat_map(|(name, scenario)| {
                scenarios::timeline(*scenario, window)
                    .into_iter()
                    .map(move |(t, what)| (t, format!("{name}: {what}")))
            })
            .collect();
        events.sort_by_key(|&(t, _)| t);
        events
    }

    fn write(&self, mut w: Writer, window: Window) -> String {
        for (name, scenario) in &self.clusters {
            w.set_cluster(&self.label, name);
            w.gauge("up", "", |_| Some(1.0));
            scenarios::write(*scenario, window, &mut w);
        }
        w.finish()
    }
}

/// `c1`, `c2`, ... for a message: every name when few, else the first and the last.
fn known(count: usize) -> String {
    if count <= 5 {
        (1..=count).map(cluster_name).collect::<Vec<_>>().join(", ")
    } else {
        format!("{} to {}", cluster_name(1), cluster_name(count))
    }
}

fn scenario_name(scenario: Scenario) -> String {
    clap::ValueEnum::to_possible_value(&scenario)
        .map_or_else(|| format!("{scenario:?}"), |v| v.get_name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(count: usize, incidents: &[(&str, Scenario)]) -> Result<Fleet, FleetError> {
        let incidents: Vec<(String, Scenario)> =
            incidents.iter().map(|(c, s)| (c.to_string(), *s)).collect();
        Fleet::new("cluster", count, Scenario::Healthy, &incidents)
    }

    /// The lines of `text` that belong to `cluster`, with its label taken out.
    fn lines_of(text: &str, label: &str, cluster: &str) -> Vec<String> {
        let tag = format!("{label}=\"{cluster}\"");
        text.lines()
            .filter(|l| l.contains(&format!("{{{tag}")))
            .map(|l| l.replacen(&format!("{tag},"), "", 1).replacen(&tag, "", 1))
            .collect()
    }

    fn sample_lines(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn each_cluster_is_the_single_cluster_text_with_its_label() {
        let window = Window::new(1_000_000, 1_001_200);
        let f = fleet(3, &[("c2", Scenario::Istio5xxSpike)]).unwrap();
        let at = window.at(0.5);
        let text = f.exposition(window, at);
        for (cluster, scenario) in [
            ("c1", Scenario::Healthy),
            ("c2", Scenario::Istio5xxSpike),
            ("c3", Scenario::Healthy),
        ] {
            let mut expected = sample_lines(&scenarios::exposition(scenario, window, at));
            expected.insert(0, "up{} 1".to_string());
            let mut got = lines_of(&text, "cluster", cluster);
            expected.sort();
            got.sort();
            assert_eq!(got, expected, "{cluster}");
        }
        // Every sample line names its cluster; each family is declared once.
        assert!(sample_lines(&text)
            .iter()
            .all(|l| l.contains("{cluster=\"c")));
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let mut unique = types.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(types.len(), unique.len());
        // The incident shows in its cluster only.
        assert_ne!(
            lines_of(&text, "cluster", "c2"),
            lines_of(&text, "cluster", "c1")
        );
        assert_eq!(
            lines_of(&text, "cluster", "c3"),
            lines_of(&text, "cluster", "c1")
        );
    }

    #[test]
    fn the_backfill_declares_each_family_once_and_ends_in_eof() {
        let window = Window::new(1_000_000, 1_000_600);
        let f = Fleet::new("k8s_cluster", 2, Scenario::Healthy, &[]).unwrap();
        let text = f.openmetrics(window, window.start, window.end, 60);
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
        assert_eq!(text.matches("# TYPE up gauge\n").count(), 1);
        assert!(
            text.contains("up{k8s_cluster=\"c2\"} 1 1000600\n"),
            "{text:.300}"
        );
        let single =
            scenarios::openmetrics_window(Scenario::Healthy, window, window.start, window.end, 60);
        // Two clusters plus their `up`: twice the single cluster's samples and eleven ups each.
        assert_eq!(
            sample_lines(&text).len(),
            2 * sample_lines(&single).len() + 2 * 11
        );
    }

    #[test]
    fn an_incident_must_name_a_cluster_of_the_fleet_once() {
        assert_eq!(
            fleet(3, &[("c4", Scenario::Istio5xxSpike)]).unwrap_err(),
            FleetError::UnknownCluster {
                cluster: "c4".into(),
                known: "c1, c2, c3".into()
            }
        );
        let e = fleet(200, &[("prod", Scenario::Istio5xxSpike)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--incident prod=...: there is no cluster \"prod\"; the clusters are c1 to c200"
        );
        let e = fleet(
            2,
            &[
                ("c1", Scenario::Istio5xxSpike),
                ("c1", Scenario::ApiserverLatency),
            ],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--incident c1=...: c1 already plays istio-5xx-spike"
        );
        assert_eq!(fleet(0, &[]).unwrap_err(), FleetError::NoClusters);
        let f = fleet(2, &[("c2", Scenario::ApiserverLatency)]).unwrap();
        assert_eq!(
            f.clusters(),
            [
                ("c1".to_string(), Scenario::Healthy),
                ("c2".to_string(), Scenario::ApiserverLatency)
            ]
        );
    }

    #[test]
    fn the_timeline_names_the_cluster() {
        let window = Window::new(0, 1000);
        let f = fleet(3, &[("c3", Scenario::ApiserverLatency)]).unwrap();
        let events = f.timeline(window);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events.iter().all(|(_, what)| what.starts_with("c3: ")));
        assert_eq!(events[0].0, window.at(0.1));
    }
}
