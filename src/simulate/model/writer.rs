//! The text the model is written as: OpenMetrics samples over a range of times for a backfill,
//! or one scrape in the Prometheus text format. The model calls [`Writer::gauge`],
//! [`Writer::counter`] and [`Writer::histogram`] with functions of time; the writer samples them
//! and knows how each format names and declares them.
//!
//! OpenMetrics as promtool (Debian's 2.42) reads it: a `# TYPE` line before each family, all
//! samples of a family together, each series in increasing time order, `# EOF` last. Counter
//! samples are named `<family>_total`, so counters exported without that suffix (Istio's
//! `pilot_xds_pushes`, the VPC CNI's `awscni_*`, the apiserver's `..._rejection_count`) are declared
//! `unknown`. The text format (0.0.4) has no such rule: there every counter is a `counter` and its
//! samples carry the name as is, which is how Istio and the VPC CNI export them. Histograms are
//! `_bucket{le}` (cumulative, up to `+Inf`), `_sum` and `_count`.
//!
//! A fleet is several clusters in one text: [`Writer::set_cluster`] puts the fleet label first on
//! every series written after it, so each family still holds its samples together across clusters.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::time::Shape;

/// `a="b",c="d"` from label pairs (the values here never need escaping).
pub fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Samples with timestamps, counters as OpenMetrics wants them, `# EOF` last: a file to backfill.
    OpenMetrics,
    /// Samples without timestamps in the text format 0.0.4: one scrape.
    Text,
}

/// Metric families in first-use order, each with its samples kept together as both formats require.
pub struct Writer {
    format: Format,
    /// Sample times, increasing.
    times: Vec<i64>,
    /// (family name, type, sample lines)
    families: Vec<(String, &'static str, String)>,
    /// `label="cluster"` of the cluster being written, empty outside a fleet.
    cluster: String,
}

impl Writer {
    pub fn new(format: Format, times: Vec<i64>) -> Writer {
        Writer {
            format,
            times,
            families: Vec::new(),
            cluster: String::new(),
        }
    }

    /// Every series written from now on carries `label="name"` (first among its labels).
    pub fn set_cluster(&mut self, label: &str, name: &str) {
        self.cluster = labels(&[(label, name)]);
    }

    /// `labels` with the cluster's label in front, if a cluster is set.
    fn with_cluster<'a>(&self, labels: &'a str) -> Cow<'a, str> {
        match (self.cluster.is_empty(), labels.is_empty()) {
            (true, _) => Cow::Borrowed(labels),
            (false, true) => Cow::Owned(self.cluster.clone()),
            (false, false) => Cow::Owned(format!("{},{labels}", self.cluster)),
        }
    }

    fn family(&mut self, name: &str, kind: &'static str) -> &mut String {
        let i = match self.families.iter().position(|(n, _, _)| n == name) {
            Some(i) => i,
            None => {
                self.families.push((name.to_string(), kind, String::new()));
                self.families.len() - 1
            }
        };
        &mut self.families[i].2
    }

    /// `value(t)` at each sample time, as (t, value); `None` leaves the time out.
    fn sample(&self, value: impl Fn(i64) -> Option<f64>) -> Vec<(i64, f64)> {
        self.times
            .iter()
            .filter_map(|&t| value(t).map(|v| (t, v)))
            .collect()
    }

    fn line(format: Format, body: &mut String, series: std::fmt::Arguments, v: f64, t: i64) {
        let _ = match format {
            Format::OpenMetrics => writeln!(body, "{series} {v} {t}"),
            Format::Text => writeln!(body, "{series} {v}"),
        };
    }

    /// A gauge with `value(t)` at each sample time; `None` leaves the time out.
    pub fn gauge(&mut self, name: &str, labels: &str, value: impl Fn(i64) -> Option<f64>) {
        let samples = self.sample(value);
        let labels = self.with_cluster(labels);
        let labels = &*labels;
        let format = self.format;
        let body = self.family(name, "gauge");
        for (t, v) in samples {
            Self::line(format, body, format_args!("{name}{{{labels}}}"), v, t);
        }
    }

    /// A counter worth `value(t)` (floored: counters count whole events; `None` leaves the time
    /// out). In OpenMetrics a name ending in `_total` is a counter family without the suffix and
    /// any other is `unknown`; in the text format both are counters named as they are.
    pub fn counter(&mut self, name: &str, labels: &str, value: impl Fn(i64) -> Option<f64>) {
        let samples = self.sample(value);
        let labels = self.with_cluster(labels);
        let labels = &*labels;
        let format = self.format;
        let (family, kind) = match (format, name.strip_suffix("_total")) {
            (Format::OpenMetrics, Some(family)) => (family, "counter"),
            (Format::OpenMetrics, None) => (name, "unknown"),
            (Format::Text, _) => (name, "counter"),
        };
        let body = self.family(family, kind);
        for (t, v) in samples {
            Self::line(
                format,
                body,
                format_args!("{name}{{{labels}}}"),
                v.floor(),
                t,
            );
        }
    }

    /// A histogram of `per_sec` observations from `since` on, exponentially distributed around
    /// `mean(t)` (the share at or below `le` is `1 - e^(-le/mean)`), so its p99 is about
    /// 4.6 × mean, capped by the largest bucket.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &str,
        buckets: &[f64],
        since: i64,
        per_sec: f64,
        mean: Shape,
    ) {
        let times: Vec<i64> = self.times.clone();
        let format = self.format;
        let labels = self.with_cluster(labels);
        let labels = &*labels;
        let sep = if labels.is_empty() { "" } else { "," };
        let body = self.family(name, "histogram");
        for t in times.into_iter().filter(|&t| t >= since) {
            let (outside, inside) = mean.split(since, t);
            let (outside, inside) = (per_sec * outside, per_sec * inside);
            let below = |le: f64, mean: f64| 1.0 - (-le / mean).exp();
            for &le in buckets {
                let v = (outside * below(le, mean.base) + inside * below(le, mean.during)).floor();
                Self::line(
                    format,
                    body,
                    format_args!("{name}_bucket{{{labels}{sep}le=\"{le}\"}}"),
                    v,
                    t,
                );
            }
            let count = (outside + inside).floor();
            let sum = outside * mean.base + inside * mean.during;
            Self::line(
                format,
                body,
                format_args!("{name}_bucket{{{labels}{sep}le=\"+Inf\"}}"),
                count,
                t,
            );
            Self::line(format, body, format_args!("{name}_sum{{{labels}}}"), sum, t);
            Self::line(
                format,
                body,
                format_args!("{name}_count{{{labels}}}"),
                count,
                t,
            );
        }
    }

    pub fn finish(self) -> String {
        let mut out = String::new();
        for (name, kind, body) in self.families {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            out.push_str(&body);
        }
        if self.format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
        out
    }
}
