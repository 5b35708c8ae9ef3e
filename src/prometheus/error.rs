//! How a query can fail. Every variant is a reason the gate fails closed, never a healthy answer.

use std::time::Duration;

use crate::engine::text::error_chain;

/// Why a query produced no usable answer. Never treated as healthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("query timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// `at` is the server as [`shown_url`] gives it: errors reach logs, /gate and alerts.
    #[error("Prometheus at {at} is unreachable: {reason}")]
    Unreachable { at: String, reason: String },
    #[error("Prometheus rejected the query: {0}")]
    Rejected(String),
    #[error("Prometheus answered something that is not a range-query result: {0}")]
    BadResponse(String),
    #[error("cannot authenticate to Prometheus: {0}")]
    Auth(String),
    /// An unaggregated query in a big cluster: judging it would cost the gate its memory limit.
    #[error(
        "query returned {} series, more than max_series {}: aggregate it, e.g. `sum by (...)`",
        thousands(*returned),
        thousands(*limit)
    )]
    TooManySeries { returned: usize, limit: usize },
    /// A successful answer that says it is incomplete: Thanos and Mimir answer what the stores
    /// they reached hold and list the others in `warnings`. Judging it would judge part of the
    /// series as if they were all, so the signal is not known.
    #[error(
        "Prometheus answered with warnings (a partial response): {}",
        warnings.first().map_or("", String::as_str)
    )]
    Partial { warnings: Vec<String> },
}

/// What stores answer when a query asks for more than they will load: Prometheus'
/// `--query.max-samples`, Mimir's `err-mimir-max-series-per-query` and its fetched-series and
/// chunk limits, Amazon Managed Service for Prometheus' query samples limit, Thanos' series limit.
const SIZE_REFUSALS: &[&str] = &[
    "too many samples",
    "max-series-per-query",
    "max-fetched-series-per-query",
    "max-fetched-chunks-per-query",
    "max-chunks-per-query",
    "samples limit",
    "series limit",
    "exceeded the maximum",
];

impl SourceError {
    /// The answer would be too large: more series than `max_series`, or a store refusing the
    /// query for its size. A fleet query is then asked again for fewer clusters.
    pub fn is_too_large(&self) -> bool {
        match self {
            SourceError::TooManySeries { .. } => true,
            SourceError::Rejected(text) => {
                let text = text.to_ascii_lowercase();
                SIZE_REFUSALS.iter().any(|m| text.contains(m))
            }
            _ => false,
        }
    }
}

/// The verdict of an API answer's envelope (`status`, `errorType`, `error`, `warnings`): the one
/// reading of it, for streamed range answers and whole ones alike. `timeout` names the limit in a
/// timeout Prometheus reports itself. Any warning makes the answer partial; `infos` (Prometheus
/// 2.50 and later: hints about the query, the answer whole) are not read.
pub fn api_status(
    status: Option<&str>,
    error_type: Option<String>,
    error: Option<String>,
    warnings: Option<Vec<String>>,
    timeout: Duration,
) -> Result<(), SourceError> {
    match status {
        Some("success") => match warnings {
            Some(warnings) if !warnings.is_empty() => Err(SourceError::Partial { warnings }),
            _ => Ok(()),
        },
        Some("error") if error_type.as_deref() == Some("timeout") => {
            Err(SourceError::Timeout(timeout))
        }
        Some("error") => Err(SourceError::Rejected(format!(
            "{}: {}",
            error_type.unwrap_or_default(),
            error.unwrap_or_default()
        ))),
        other => Err(SourceError::BadResponse(format!(
            "status {:?}",
            other.unwrap_or("missing")
        ))),
    }
}

/// Sorts an exchange that got no complete answer into what an operator would act on: too slow,
/// or no connection. The one classifier of transport errors; URLs are stripped because they may
/// carry credentials.
pub fn classify(e: &reqwest::Error, timeout: Duration, url: &str) -> SourceError {
    if e.is_timeout() {
        SourceError::Timeout(timeout)
    } else {
        SourceError::Unreachable {
            at: shown_url(url),
            reason: describe_chain(e),
        }
    }
}

/// The error's causes in one line, without the top error, which carries the request URL.
fn describe_chain(e: &reqwest::Error) -> String {
    std::error::Error::source(e).map_or_else(|| "request failed".to_string(), error_chain)
}

/// `52113` as `52,113`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The Prometheus URL as messages may show it: without user info, query or fragment, which can
/// carry credentials.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "the configured URL".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_refusing_a_query_for_its_size_are_told_from_other_refusals() {
        let too_large = [
            "execution: query processing would load too many samples into memory in query execution",
            "execution: the query exceeded the maximum number of series (limit: 1000) (err-mimir-max-series-per-query)",
            "bad_data: query samples limit exceeded",
        ];
        for text in too_large {
            assert!(SourceError::Rejected(text.into()).is_too_large(), "{text}");
        }
        assert!(!SourceError::Rejected("bad_data: parse error".into()).is_too_large());
        assert!(!SourceError::Timeout(Duration::from_secs(1)).is_too_large());
    }

    #[test]
    fn too_many_series_says_what_to_do() {
        let e = SourceError::TooManySeries {
            returned: 52_113,
            limit: 10_000,
        };
        assert_eq!(
            e.to_string(),
            "query returned 52,113 series, more than max_series 10,000: aggregate it, e.g. `sum by (...)`"
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn a_success_with_warnings_is_partial_and_an_error_stays_an_error() {
        let t = Duration::from_secs(1);
        let warned = |w: &[&str]| Some(w.iter().map(|s| s.to_string()).collect());
        let e = api_status(
            Some("success"),
            None,
            None,
            warned(&["store a down", "b"]),
            t,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Prometheus answered with warnings (a partial response): store a down"
        );
        assert_eq!(
            api_status(Some("success"), None, None, warned(&[]), t),
            Ok(())
        );
        assert_eq!(api_status(Some("success"), None, None, None, t), Ok(()));
        let e = api_status(
            Some("error"),
            Some("timeout".into()),
            None,
            warned(&["x"]),
            t,
        );
        assert_eq!(e, Err(SourceError::Timeout(t)));
    }

    #[test]
    fn shown_urls_carry_no_credentials() {
        assert_eq!(
            shown_url("https://gate:s3cr3t@prom.example:9090/prom/?token=x#f"),
            "https://prom.example:9090/prom"
        );
        assert_eq!(shown_url("http://127.0.0.1:9090"), "http://127.0.0.1:9090");
        assert_eq!(shown_url("not a url"), "the configured URL");
    }
}
