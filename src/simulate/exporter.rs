//! `simulate --listen`: the synthetic upgrade of [`super::scenarios`] as an exporter that a
//! real Prometheus scrapes, so the gate can be watched flipping live.
//!
//! `GET /metrics` answers every series at the moment of the scrape
//! ([`scenarios::exposition`], the same model the backfill file is written from), in the
//! Prometheus text format 0.0.4 without timestamps. The text format rather than OpenMetrics:
//! there a counter's samples carry the name as is, so Istio's `pilot_xds_pushes` and the VPC CNI's
//! `awscni_*` counters are stored under the names the pack queries, typed `counter`, as the real
//! components export them. Series carry their own `job` and `instance` labels (the apiserver
//! version signal joins on them): scrape with `honor_labels: true`.
//!
//! A fleet (`simulate --clusters N`, [`super::fleet`]) is served the same way, every cluster in
//! one answer, rendered off the async threads: 200 clusters are some megabytes of text.
//!
//! Time is the unix time at start plus the monotonic time elapsed since, so counters never go
//! down between scrapes even if the wall clock steps back.

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use clap::ValueEnum;
use tokio::net::TcpListener;

use super::fleet::Fleet;
use super::scenarios::{self, Scenario, Window};

/// Content type of the Prometheus text format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Unix seconds that never go back: the wall clock read once, plus monotonic elapsed time.
#[derive(Debug, Clone, Copy)]
struct Clock {
    unix_at_start: f64,
    started: Instant,
}

impl Clock {
    fn start() -> Clock {
        let unix_at_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs_f64();
        Clock {
            unix_at_start,
            started: Instant::now(),
        }
    }

    fn now(self) -> i64 {
        (self.unix_at_start + self.started.elapsed().as_secs_f64()).floor() as i64
    }
}

/// What the exporter plays: one cluster's scenario, or a fleet of clusters.
#[derive(Debug, Clone)]
pub enum Cast {
    Cluster(Scenario),
    Fleet(Arc<Fleet>),
}

impl From<Scenario> for Cast {
    fn from(scenario: Scenario) -> Cast {
        Cast::Cluster(scenario)
    }
}

impl From<Fleet> for Cast {
    fn from(fleet: Fleet) -> Cast {
        Cast::Fleet(Arc::new(fleet))
    }
}

impl Cast {
    /// One scrape at `at`.
    async fn exposition(&self, window: Window, at: i64) -> String {
        match self {
            Cast::Cluster(scenario) => scenarios::exposition(*scenario, window, at),
            Cast::Fleet(fleet) => {
                let fleet = fleet.clone();
                tokio::task::spawn_blocking(move || fleet.exposition(window, at))
                    .await
                    .expect("rendering the fleet does not panic")
            }
        }
    }

    fn timeline(&self, window: Window) -> Vec<(i64, String)> {
        match self {
            Cast::Cluster(scenario) => scenarios::timeline(*scenario, window),
            Cast::Fleet(fleet) => fleet.timeline(window),
        }
    }
}

fn scenario_name(scenario: Scenario) -> String {
    scenario
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

/// `GET /metrics`: `cast` over `window`, at the time of each request.
pub fn router(cast: impl Into<Cast>, window: Window) -> Router {
    let cast = cast.into();
    let clock = Clock::start();
    Router::new().route(
        "/metrics",
        get(move || async move {
            let body = cast.exposition(window, clock.now()).await;
            ([(CONTENT_TYPE, TEXT_FORMAT)], body)
        }),
    )
}

/// Serves `cast` over `window` on `listener` until `shutdown` completes, then finishes
/// in-flight scrapes and returns. Logs the timeline first.
pub async fn serve(
    cast: impl Into<Cast>,
    window: Window,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cast = cast.into();
    let at = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| t.to_string())
    };
    let listen = listener.local_addr()?;
    let (start, end) = (at(window.start), at(window.end));
    match &cast {
        Cast::Cluster(scenario) => tracing::info!(
            listen = %listen,
            scenario = scenario_name(*scenario),
            window_start = %start,
            window_end = %end,
            "simulator serving /metrics"
        ),
        Cast::Fleet(fleet) => tracing::info!(
            listen = %listen,
            clusters = fleet.clusters().len(),
            fleet_label = fleet.label(),
            incidents = %fleet
                .clusters()
                .iter()
                .filter(|(_, s)| *s != Scenario::Healthy)
                .map(|(c, s)| format!("{c}={}", scenario_name(*s)))
                .collect::<Vec<_>>()
                .join(","),
            window_start = %start,
            window_end = %end,
            "simulator serving /metrics"
        ),
    }
    for (t, what) in cast.timeline(window) {
        let offset = std::time::Duration::from_secs((t - window.start).unsigned_abs());
        let sign = if t < window.start { "-" } else { "+" };
        let offset = format!("{sign}{}", humantime::format_duration(offset));
        tracing::info!(at = %at(t), after_start = %offset, "{what}");
    }
    axum::serve(listener, router(cast, window))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("simulator stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// `GET /metrics` of `app`: the content type and the body; asserts a 200.
    async fn scrape(app: Router) -> (String, String) {
        let answer = app
            .oneshot(
                axum::http::Request::get("/metrics")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let content_type = answer.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
        let body = axum::body::to_bytes(answer.into_body(), usize::MAX)
            .await
            .unwrap();
        (content_type, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn metrics_answers_the_text_format_at_this_time() {
        let now = Clock::start().now();
        let window = Window::new(now - 60, now + 1200);
        let (content_type, body) = scrape(router(Scenario::Healthy, window)).await;
        assert_eq!(content_type, TEXT_FORMAT);
        assert!(body.contains("# TYPE pilot_xds_pushes counter\n"), "{body}");
        // Rendered at a time between the two reads of the clock.
        let later = Clock::start().now();
        assert!((now..=later).any(|t| scenarios::exposition(Scenario::Healthy, window, t) == body));
    }

    #[tokio::test]
    async fn a_fleet_is_served_in_one_answer() {
        let now = Clock::start().now();
        let window = Window::new(now - 60, now + 1200);
        let incidents = [("c2".to_string(), Scenario::Istio5xxSpike)];
        let fleet = Fleet::new("cluster", 3, Scenario::Healthy, &incidents).unwrap();
        let (content_type, body) = scrape(router(fleet.clone(), window)).await;
        assert_eq!(content_type, TEXT_FORMAT);
        let later = Clock::start().now();
        assert!((now..=later).any(|t| fleet.exposition(window, t) == body));
        for c in ["c1", "c2", "c3"] {
            assert!(body.contains(&format!("up{{cluster=\"{c}\"}} 1\n")), "{c}");
        }
    }

    #[test]
    fn the_clock_never_goes_back() {
        let clock = Clock::start();
        let mut last = clock.now();
        for _ in 0..1000 {
            let t = clock.now();
            assert!(t >= last);
            last = t;
        }
    }
}
