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
//! Time is the unix time at start plus the monotonic time elapsed since, so counters never go
//! down between scrapes even if the wall clock steps back.

use std::future::Future;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use clap::ValueEnum;
use tokio::net::TcpListener;

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

/// `GET /metrics`: `scenario` over `window`, at the time of each request.
pub fn router(scenario: Scenario, window: Window) -> Router {
    let clock = Clock::start();
    Router::new().route(
        "/metrics",
        get(move || async move {
            let body = scenarios::exposition(scenario, window, clock.now());
            ([(CONTENT_TYPE, TEXT_FORMAT)], body)
        }),
    )
}

/// Serves `scenario` over `window` on `listener` until `shutdown` completes, then finishes
/// in-flight scrapes and returns. Logs the scenario's timeline first.
pub async fn serve(
    scenario: Scenario,
    window: Window,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let at = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| t.to_string())
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        scenario = scenario.to_possible_value().map_or_else(String::new, |v| v.get_name().to_string()),
        window_start = %at(window.start),
        window_end = %at(window.end),
        "simulator serving /metrics"
    );
    for (t, what) in scenarios::timeline(scenario, window) {
        let offset = std::time::Duration::from_secs((t - window.start).unsigned_abs());
        let sign = if t < window.start { "-" } else { "+" };
        let offset = format!("{sign}{}", humantime::format_duration(offset));
        tracing::info!(at = %at(t), after_start = %offset, "{what}");
    }
    axum::serve(listener, router(scenario, window))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("simulator stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn metrics_answers_the_text_format_at_this_time() {
        let now = Clock::start().now();
        let window = Window::new(now - 60, now + 1200);
        let answer = router(Scenario::Healthy, window)
            .oneshot(
                axum::http::Request::get("/metrics")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()[CONTENT_TYPE], TEXT_FORMAT);
        let body = axum::body::to_bytes(answer.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("# TYPE pilot_xds_pushes counter\n"), "{body}");
        // Rendered at a time between the two reads of the clock.
        let later = Clock::start().now();
        assert!((now..=later).any(|t| scenarios::exposition(Scenario::Healthy, window, t) == body));
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
