//! OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`, built from functions of
//! time so each test states its scenario as "value at t".

use std::collections::BTreeMap;

/// Gauge families, each a list of sample lines, rendered grouped as OpenMetrics requires.
#[derive(Default)]
pub struct OpenMetrics {
    families: BTreeMap<String, Vec<String>>,
}

impl OpenMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// One gauge series `name{labels}` sampled every `step` seconds over `[from, to]`;
    /// `value(t)` returning `None` leaves a gap.
    pub fn gauge(
        &mut self,
        name: &str,
        labels: &str,
        (from, to, step): (i64, i64, i64),
        value: impl Fn(i64) -> Option<f64>,
    ) -> &mut Self {
        let lines = self.families.entry(name.to_string()).or_default();
        let mut t = from;
        while t <= to {
            if let Some(v) = value(t) {
                let v = if v.is_nan() {
                    "NaN".to_string()
                } else if v.is_infinite() {
                    if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
                } else {
                    v.to_string()
                };
                lines.push(format!("{name}{{{labels}}} {v} {t}"));
            }
            t += step;
        }
        self
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, lines) in &self.families {
            out.push_str(&format!("# TYPE {name} gauge\n"));
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// `mesh_5xx{destination_service="reviews"}` sampled every second over now ± 10 minutes: `before`
/// until `at` (unix seconds), `after` from then on. For tests of a live daemon whose signal breaks
/// or recovers a few seconds into the test.
pub fn mesh_5xx_switching(at: i64, before: f64, after: f64) -> OpenMetrics {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let mut data = OpenMetrics::new();
    data.gauge(
        "mesh_5xx",
        r#"destination_service="reviews""#,
        (now - 600, now + 600, 1),
        move |t| Some(if t < at { before } else { after }),
    );
    data
}

/// Now, rounded down to a multiple of 30 s so that sample times and evaluation steps line up.
pub fn now() -> i64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    t - t % 30
}

/// A window of sample times around `now`: two hours back, one hour ahead, every 15 s.
pub fn around(now: i64) -> (i64, i64, i64) {
    (now - 2 * 3600, now + 3600, 15)
}

/// Unix seconds as the CLI takes them, e.g. `2027-01-15T08:00:00+00:00`.
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339()
}

/// A fleet in one store, over [`around`]`(t)`: for each of `clusters` (label `cluster`), `up` (its
/// presence), `ok_metric` at 0 and `mesh_5xx{destination_service="reviews"}` at 0.1, except that
/// `failing`'s `mesh_5xx` is 2.5 from `since` on.
pub fn fleet_mesh_5xx(t: i64, clusters: &[&str], failing: &str, since: i64) -> OpenMetrics {
    let mut data = OpenMetrics::new();
    for &c in clusters {
        let bad = c == failing;
        data.gauge(
            "up",
            &format!(r#"cluster="{c}",job="x""#),
            around(t),
            |_| Some(1.0),
        )
        .gauge(
            "ok_metric",
            &format!(r#"cluster="{c}",job="x""#),
            around(t),
            |_| Some(0.0),
        )
        .gauge(
            "mesh_5xx",
            &format!(r#"cluster="{c}",destination_service="reviews""#),
            around(t),
            move |ts| Some(if bad && ts >= since { 2.5 } else { 0.1 }),
        );
    }
    data
}

/// A configuration reading `url` with the default pack (`queries/*.yaml`), its six phases and a
/// one-hour baseline ending at `baseline_end`, as the report tests judge an upgrade; a fleet
/// section may follow.
pub fn default_pack_config(url: &str, baseline_end: i64) -> String {
    let queries = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/*.yaml");
    format!(
        r#"prometheus: {{url: "{url}"}}
evaluation: {{interval: 30s}}
signal_files: ["{}"]
baseline: {{end: "{}", window: 1h}}
phases:
  - {{name: precheck, min_score: 100, stable_for: 0s}}
  - {{name: karpenter, min_score: 90, stable_for: 10m}}
  - {{name: istio, min_score: 90, stable_for: 15m}}
  - {{name: addons, min_score: 90, stable_for: 10m}}
  - {{name: control-plane, min_score: 90, stable_for: 15m}}
  - {{name: nodes, min_score: 90, stable_for: 10m}}
"#,
        queries.display(),
        rfc3339(baseline_end)
    )
}
