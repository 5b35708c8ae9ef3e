//! One attempt at a receiver, and the pace of the next: what an answer means (delivered, refused
//! for good, or try again) and when trying again is polite. A receiver that asks for no pause
//! (`Retry-After: 0`) still gets one second, and none waits longer than [`MAX_RETRY_AFTER`] or
//! the configured maximum backoff: a flood of retries is what a struggling receiver needs least.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;

use super::formats::Request;
use crate::engine::text::error_chain;

/// Shortest pause before a retry, whatever `Retry-After` says.
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest `Retry-After` honoured; a receiver asking for more is retried at this pace.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// What one attempt came to.
pub(super) enum Attempt {
    Delivered(StatusCode),
    /// Refused for good (a 4xx other than 429): sending it again would not help.
    Refused {
        status: StatusCode,
        body: String,
    },
    /// Worth another try: a transport error, a 5xx or a 429.
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
}

/// When one receiver may be tried next. Kept per receiver, not per notice, so that a newer notice
/// does not restart the count while the receiver is still down.
pub(super) struct Pace {
    initial: Duration,
    max: Duration,
    backoff: Duration,
    not_before: Instant,
}

impl Pace {
    pub(super) fn new(initial: Duration, max: Duration) -> Pace {
        Pace {
            initial,
            max,
            backoff: initial,
            not_before: Instant::now(),
        }
    }

    pub(super) fn not_before(&self) -> Instant {
        self.not_before
    }

    /// The receiver answered: the next notice goes at once.
    pub(super) fn answered(&mut self) {
        self.backoff = self.initial;
        self.not_before = Instant::now();
    }

    /// The receiver failed: wait what it asked for (within bounds), else the jittered backoff,
    /// which doubles up to the maximum.
    pub(super) fn failed(&mut self, retry_after: Option<Duration>) {
        let wait = match retry_after {
            Some(asked) => asked.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER),
            None => jitter(self.backoff),
        };
        self.not_before = Instant::now() + wait;
        self.backoff = (self.backoff * 2).min(self.max);
    }
}

/// Posts `request` to `url` once.
pub(super) async fn attempt(client: &reqwest::Client, url: &str, request: &Request) -> Attempt {
    let url = if request.path_suffix.is_empty() {
        url.to_string()
    } else {
        format!("{}{}", url.trim_end_matches('/'), request.path_suffix)
    };
    let mut builder = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(request.body.clone());
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    let response = match builder.send().await {
        Ok(response) => response,
        // Errors are stripped of the URL: for Slack and many webhooks the URL is the secret.
        Err(e) => {
            return Attempt::Retry {
                why: error_chain(&e.without_url()),
                retry_after: None,
            }
        }
    };
    let status = response.status();
    if status.is_success() {
        return Attempt::Delivered(status);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    if retryable(status) {
        Attempt::Retry {
            why: format!("HTTP {}: {body}", status.as_u16()),
            retry_after,
        }
    } else {
        Attempt::Refused { status, body }
    }
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// Between half and all of `backoff`, so that replicas retrying together spread out.
fn jitter(backoff: Duration) -> Duration {
    backoff.mul_f64(0.5 + 0.5 * fastrand::f64())
}

/// `Retry-After` as seconds or as an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    // A date in the past asks for no pause at all.
    Some(
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let d = parse_retry_after(&later).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        let earlier = (chrono::Utc::now() - chrono::Duration::seconds(120)).to_rfc2822();
        assert_eq!(parse_retry_after(&earlier), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn jitter_stays_within_half_and_whole() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(10));
            assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs(10));
        }
    }

    #[test]
    fn only_5xx_and_429_are_retried() {
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable(StatusCode::BAD_REQUEST));
        assert!(!retryable(StatusCode::NOT_FOUND));
    }

    #[tokio::test]
    async fn retry_after_is_honoured_within_bounds_and_the_backoff_is_capped() {
        let second = Duration::from_secs(1);
        let mut pace = Pace::new(Duration::from_millis(100), Duration::from_millis(400));
        let waits = |pace: &Pace| pace.not_before() - Instant::now();
        pace.failed(Some(Duration::ZERO));
        assert!(
            waits(&pace) > second - Duration::from_millis(50),
            "never below 1 s"
        );
        pace.failed(Some(Duration::from_secs(5)));
        assert!(waits(&pace) > Duration::from_secs(4));
        pace.failed(Some(Duration::from_secs(86_400)));
        assert!(waits(&pace) <= MAX_RETRY_AFTER);
        for _ in 0..10 {
            pace.failed(None);
            assert!(waits(&pace) <= Duration::from_millis(400), "capped");
        }
        pace.answered();
        assert!(pace.not_before() <= Instant::now());
        assert_eq!(pace.backoff, Duration::from_millis(100));
    }
}
