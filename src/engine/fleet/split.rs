//! One fleet answer, dealt out to the clusters it answers for.
//!
//! A rewritten query answers for every cluster of a store at once; each cluster is then judged on
//! its own series alone, exactly as a gate pointed at that cluster's own Prometheus would judge
//! them. Series keep the fleet label, so offenders name their cluster, and baselines (looked up
//! by a series' full labels) need no dealing out.

use std::collections::HashMap;

use crate::engine::grid::Grid;

/// Each cluster's part of one answer, and how many series named no listed cluster.
#[derive(Debug, Default)]
pub struct Dealt {
    pub by_cluster: HashMap<String, Grid>,
    /// Series whose fleet label is missing or names a cluster `deal` was not asked for: ignored
    /// (a series of a cluster no wave lists must not judge a listed one), but counted.
    pub unlisted: usize,
}

/// Deals `grid`'s series out by their `label`, to the `clusters` listed; every listed cluster
/// gets a grid, empty when it has no series (what its own Prometheus would have answered).
pub fn deal(grid: &Grid, label: &str, clusters: &[String]) -> Dealt {
    let mut by_cluster: HashMap<String, Grid> = clusters
        .iter()
        .map(|c| (c.clone(), Grid::new(grid.window())))
        .collect();
    let mut unlisted = 0;
    for (labels, values) in grid.series() {
        match labels.get(label).and_then(|c| by_cluster.get_mut(c)) {
            Some(part) => part.push_series(labels.clone(), values),
            None => unlisted += 1,
        }
    }
    Dealt {
        by_cluster,
        unlisted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::series::{Series, Window};

    const W: Window = Window {
        start: 0,
        end: 30,
        step: 15,
    };

    fn series(cluster: Option<&str>, service: &str, v: f64) -> Series {
        let mut labels: crate::engine::series::Labels =
            [("service".to_string(), service.to_string())].into();
        if let Some(c) = cluster {
            labels.insert("cluster".into(), c.into());
        }
        Series {
            labels,
            samples: vec![(0, v), (30, v + 1.0)],
        }
    }

    #[test]
    fn each_cluster_gets_its_own_series_with_their_values_and_the_rest_is_counted() {
        let grid = Grid::from_series(
            W,
            &[
                series(Some("a"), "x", 1.0),
                series(Some("b"), "x", 5.0),
                series(Some("a"), "y", 2.0),
                series(Some("zz"), "x", 9.0),
                series(None, "x", 9.0),
            ],
        );
        let clusters = ["a".to_string(), "b".to_string(), "c".to_string()];
        let dealt = deal(&grid, "cluster", &clusters);
        assert_eq!(
            dealt.unlisted, 2,
            "an unlisted cluster and a series without the label"
        );
        let a = &dealt.by_cluster["a"];
        assert_eq!(a.series_count(), 2);
        let rows: Vec<_> = a
            .series()
            .map(|(l, v)| (l["service"].clone(), l["cluster"].clone(), v.to_vec()))
            .collect();
        assert_eq!(rows[0].0, "x");
        assert_eq!(rows[0].1, "a", "series keep the fleet label");
        assert_eq!(rows[0].2[0], 1.0);
        assert_eq!(rows[0].2[2], 2.0);
        assert!(rows[0].2[1].is_nan(), "a missing step stays missing");
        assert_eq!(rows[1].2[0], 2.0);
        assert_eq!(dealt.by_cluster["b"].series_count(), 1);
        assert_eq!(dealt.by_cluster["c"].series_count(), 0, "no series: empty");
        assert_eq!(dealt.by_cluster["c"].window(), W);
    }
}
