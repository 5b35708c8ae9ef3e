//! The report page `serve` shows: `GET /` from memory, `GET /report?from=&to=` on demand.
//!
//! `/` is the report of the last `report.window` of the evaluations this process made: a task
//! follows the published snapshots, keeps their steps ([`History`]) and rebuilds the page at most
//! once a minute, so that a request only clones the latest page (kept gzipped too, for the
//! browsers that take it) and never waits on Prometheus, and a browser that already has it gets
//! a 304 for its `ETag`. `/report` judges a past window
//! through the same path as `report` on the command line (`step` as its `--step`), one request
//! at a time (429 for a second) and within `report.max_window`.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::bodies::Bodies;
use crate::config::Config;
use crate::evaluation::{StepsError, MAX_POINTS};
use crate::prometheus::source::PrometheusSource;
use crate::report::fleet::{collect_fleet, Scope};
use crate::report::history::{FleetHistory, History};
use crate::report::model::Span;
use crate::report::{self, html, ReportError};

/// The page of `/` is rebuilt at most this often.
pub const REBUILD_EVERY: Duration = Duration::from_secs(60);

/// Browsers keep the page but ask again each time; an unchanged page is a 304.
const CACHE_CONTROL: &str = "private, no-cache";

/// One built page, plain and gzipped, each with its entity tag.
pub struct Page {
    pub html: Bytes,
    pub etag: HeaderValue,
    gzip: Bytes,
    gzip_etag: HeaderValue,
}

impl Page {
    pub fn new(html: String) -> Page {
        let digest = hex::encode(&Sha256::digest(html.as_bytes())[..12]);
        let tag = |suffix: &str| {
            HeaderValue::from_str(&format!("\"{digest}{suffix}\""))
                .expect("hex is a valid header value")
        };
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        let gzip = encoder
            .write_all(html.as_bytes())
            .and_then(|()| encoder.finish())
            .expect("gzip into memory does not fail");
        Page {
            html: Bytes::from(html),
            etag: tag(""),
            gzip: Bytes::from(gzip),
            gzip_etag: tag("-gzip"),
        }
    }

    /// The page as sent to a client that takes gzip.
    pub fn gzipped(&self) -> &Bytes {
        &self.gzip
    }

    /// 200 with the page (gzipped when the client takes gzip), or 304 when the client holds
    /// this one already.
    pub fn answer(&self, request: &HeaderMap) -> Response {
        let gzip = request
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|coding| {
                let mut parts = coding.split(';').map(str::trim);
                parts.next() == Some("gzip") && !parts.any(|q| q == "q=0" || q == "q=0.0")
            });
        let (body, etag) = match gzip {
            true => (&self.gzip, &self.gzip_etag),
            false => (&self.html, &self.etag),
        };
        let cached = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| tag.trim() == etag || tag.trim() == "*");
        let headers = [
            (header::ETAG, etag.clone()),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(CACHE_CONTROL),
            ),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
        ];
        if cached {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        let mut response = (
            headers,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body.clone(),
        )
            .into_response();
        if gzip {
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

/// What the handlers share: the latest page, and the one on-demand report allowed at a time.
#[derive(Clone)]
pub struct Pages {
    pub latest: watch::Receiver<Option<Arc<Page>>>,
    on_demand: Arc<Semaphore>,
}

impl Pages {
    /// Starts the task that keeps `/`'s page, until `shutdown`.
    pub fn start(
        bodies: watch::Receiver<Option<Arc<Bodies>>>,
        config: watch::Receiver<Arc<Config>>,
        shutdown: CancellationToken,
    ) -> Pages {
        let (publish, latest) = watch::channel(None);
        tokio::spawn(keep(bodies, config, publish, shutdown));
        Pages::with(latest)
    }

    /// Pages served from `latest`, with no task behind them (for tests and benchmarks).
    pub fn with(latest: watch::Receiver<Option<Arc<Page>>>) -> Pages {
        Pages {
            latest,
            on_demand: Arc::new(Semaphore::new(1)),
        }
    }
}

/// Most steps per phase `/` keeps: as many as Prometheus answers in one range query, so that a
/// short interval cannot make the history (and the page) grow without bound.
fn keep_secs(config: &Config) -> i64 {
    let step = config.evaluation.step_secs();
    (config.report.window.as_secs() as i64).min(step * MAX_POINTS)
}

/// Follows the snapshots into the history; rebuilds the page from it when something new came and
/// the last build is a minute old.
async fn keep(
    mut bodies: watch::Receiver<Option<Arc<Bodies>>>,
    config: watch::Receiver<Arc<Config>>,
    publish: watch::Sender<Option<Arc<Page>>>,
    shutdown: CancellationToken,
) {
    let mut history = History::default();
    // Folded and rendered off the runtime: a fleet's page reads every cluster's steps.
    let fleet = Arc::new(std::sync::Mutex::new(FleetHistory::default()));
    let mut next_build = Instant::now();
    let mut fresh = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = bodies.changed() => {
                if changed.is_err() {
                    return;
                }
                let latest = bodies.borrow_and_update().clone();
                let keep = keep_secs(&config.borrow());
                if let Some(b) = latest {
                    if let Some(snapshot) = &b.snapshot {
                        history.record(snapshot, keep);
                        fresh = true;
                    }
                    if let Some(snapshot) = &b.fleet_snapshot {
                        let config = config.borrow();
                        fleet.lock().expect("not poisoned").record(snapshot, &config, keep);
                        fresh = true;
                    }
                }
            }
            _ = tokio::time::sleep_until(next_build), if fresh => {
                let config = config.borrow().clone();
                let built = if config.fleet.is_some() {
                    let fleet = fleet.clone();
                    tokio::task::spawn_blocking(move || {
                        let fleet = fleet.lock().expect("not poisoned");
                        let to = fleet.latest()?;
                        let span = live_span(&config, fleet.earliest().unwrap_or(to), to);
                        match fleet.report(&config, span) {
                            Ok(report) => Some(Page::new(html::render(&report))),
                            Err(e) => {
                                tracing::error!(error = %e, "building the fleet page failed");
                                None
                            }
                        }
                    })
                    .await
                    .map(|page| page.map(Arc::new))
                } else {
                    let Some(to) = history.latest() else { continue };
                    let span = live_span(&config, history.earliest().unwrap_or(to), to);
                    let steps = history.steps(&config.pack);
                    tokio::task::spawn_blocking(move || {
                        Some(Arc::new(Page::new(html::render(&report::build(&config, span, &steps)))))
                    })
                    .await
                };
                match built {
                    Ok(Some(page)) => {
                        publish.send_replace(Some(page));
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "building the report page failed"),
                }
                fresh = false;
                next_build = Instant::now() + REBUILD_EVERY;
            }
        }
    }
}

/// The window `/` shows: `report.window` (bounded as [`keep_secs`]) ending at the latest step,
/// or less, from the oldest step kept, while the process has not been evaluating that long.
fn live_span(config: &Config, earliest: i64, to: i64) -> Span {
    let step = config.evaluation.step_secs();
    let back = (keep_secs(config) / step * step).min((to - earliest).max(0) / step * step);
    Span {
        from: to - back,
        to,
        step_secs: step,
    }
}

/// Why `/report` refused or failed, each a JSON `{error}`.
#[derive(Debug, thiserror::Error)]
pub enum OnDemandError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the window is {asked}; /report builds at most report.max_window ({max})")]
    TooLong { asked: String, max: String },
    #[error("another report is being built; try again shortly")]
    Busy,
    #[error("{0}")]
    Prometheus(String),
    #[error("{0}")]
    NotFound(String),
}

impl IntoResponse for OnDemandError {
    fn into_response(self) -> Response {
        let status = match self {
            OnDemandError::BadRequest(_) | OnDemandError::TooLong { .. } => StatusCode::BAD_REQUEST,
            OnDemandError::Busy => StatusCode::TOO_MANY_REQUESTS,
            OnDemandError::Prometheus(_) => StatusCode::BAD_GATEWAY,
            OnDemandError::NotFound(_) => StatusCode::NOT_FOUND,
        };
        let mut response = (status, axum::Json(json!({"error": self.to_string()}))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// What `/report` was asked for.
#[derive(Debug, PartialEq)]
struct Asked {
    from: i64,
    to: i64,
    phase: Option<String>,
    step: Option<Duration>,
    /// `cluster=` or `wave=`, in fleet mode.
    scope: Option<Scope>,
}

/// `from` and `to` as RFC 3339 times or Unix seconds, an optional `phase` and `step`.
fn parse_query(query: Option<&str>) -> Result<Asked, OnDemandError> {
    let mut from = None;
    let mut to = None;
    let mut phase = None;
    let mut step = None;
    let mut scope = None;
    for (key, value) in url_pairs(query.unwrap_or_default()) {
        let time = || {
            value
                .parse::<i64>()
                .ok()
                .or_else(|| {
                    chrono::DateTime::parse_from_rfc3339(&value)
                        .ok()
                        .map(|t| t.timestamp())
                })
                .ok_or_else(|| {
                    OnDemandError::BadRequest(format!(
                        "{key}={value:?} is neither an RFC 3339 time nor Unix seconds"
                    ))
                })
        };
        match key.as_str() {
            "from" => from = Some(time()?),
            "to" => to = Some(time()?),
            "phase" => phase = Some(value),
            "cluster" | "wave" if scope.is_some() => {
                return Err(OnDemandError::BadRequest(
                    "give one of cluster and wave, once".into(),
                ))
            }
            "cluster" => scope = Some(Scope::Cluster(value)),
            "wave" => scope = Some(Scope::Wave(value)),
            "step" => match crate::config::parse_duration(&value) {
                Ok(d) if d.as_secs() >= 1 && d.subsec_nanos() == 0 => step = Some(d),
                _ => {
                    return Err(OnDemandError::BadRequest(format!(
                        "step={value:?} is not a whole number of seconds, at least 1s"
                    )))
                }
            },
            other => {
                return Err(OnDemandError::BadRequest(format!(
                    "unknown parameter {other:?}; /report takes from, to, phase, step, and in fleet mode cluster or wave"
                )))
            }
        }
    }
    match (from, to) {
        (Some(from), Some(to)) if to > from => Ok(Asked {
            from,
            to,
            phase,
            step,
            scope,
        }),
        (Some(_), Some(_)) => Err(OnDemandError::BadRequest("to must be after from".into())),
        _ => Err(OnDemandError::BadRequest(
            "/report needs from and to (RFC 3339 or Unix seconds)".into(),
        )),
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://query/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// Whose report `/report` builds: in fleet mode the cluster or wave asked for (404 naming the
/// known ones when unlisted), or the whole fleet; without a fleet section, refused when asked
/// for one (the answer would be the whole store's).
fn fleet_scope(config: &Config, asked: Option<Scope>) -> Result<Option<Scope>, OnDemandError> {
    let Some(fleet) = &config.fleet else {
        return match asked {
            None => Ok(None),
            Some(_) => Err(OnDemandError::BadRequest(
                "this gate has no fleet section: cluster and wave are for fleet mode".into(),
            )),
        };
    };
    let known = |names: Vec<&str>| {
        let more = names.len().saturating_sub(20);
        let shown = names[..names.len().min(20)].join(", ");
        match more {
            0 => shown,
            n => format!("{shown} and {n} more"),
        }
    };
    let clusters = || fleet.waves.iter().flat_map(|w| &w.clusters);
    match asked {
        None => Ok(Some(Scope::Fleet)),
        Some(Scope::Cluster(c)) if !clusters().any(|x| *x == c) => {
            Err(OnDemandError::NotFound(format!(
                "unknown cluster {c:?}; known: {}",
                known(clusters().map(String::as_str).collect())
            )))
        }
        Some(Scope::Wave(w)) if !fleet.waves.iter().any(|x| x.name == w) => {
            Err(OnDemandError::NotFound(format!(
                "unknown wave {w:?}; known: {}",
                known(fleet.waves.iter().map(|x| x.name.as_str()).collect())
            )))
        }
        scope => Ok(scope),
    }
}

/// Builds the report of a past window on demand, one at a time, within `report.max_window`.
pub async fn on_demand(
    pages: &Pages,
    config: Arc<Config>,
    query: Option<&str>,
) -> Result<Response, OnDemandError> {
    let Asked {
        from,
        to,
        phase,
        step,
        scope,
    } = parse_query(query)?;
    let scope = fleet_scope(&config, scope)?;
    let max = config.report.max_window;
    if (to - from) as u64 > max.as_secs() {
        return Err(OnDemandError::TooLong {
            asked: humantime::format_duration(Duration::from_secs((to - from) as u64)).to_string(),
            max: humantime::format_duration(max).to_string(),
        });
    }
    let _turn = pages
        .on_demand
        .clone()
        .try_acquire_owned()
        .map_err(|_| OnDemandError::Busy)?;
    let config = match step {
        // `for` and `stable_for` judged at the report's grain, as `report --step` does.
        Some(step) => {
            let mut config = Config::clone(&config);
            config.evaluation.interval = step;
            Arc::new(config)
        }
        None => config,
    };
    let phases = report::phases(&config, phase.as_deref())
        .map_err(|e| OnDemandError::BadRequest(e.to_string()))?;
    let built = match &scope {
        Some(scope) => collect_fleet(&config, phases, scope, from, to).await,
        None => {
            let source = PrometheusSource::new(&config.prometheus)
                .map_err(|e| OnDemandError::Prometheus(e.to_string()))?;
            report::collect(&config, &source, phases, from, to).await
        }
    };
    let built = built.map_err(|e| match e {
        ReportError::Steps(StepsError::Query { .. }) => OnDemandError::Prometheus(e.to_string()),
        other => OnDemandError::BadRequest(other.to_string()),
    })?;
    let page = tokio::task::spawn_blocking(move || html::render(&built))
        .await
        .map_err(|e| OnDemandError::Prometheus(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        page,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_page_is_a_304_for_its_etag() {
        let page = Page::new("<html>one</html>".into());
        let other = Page::new("<html>two</html>".into());
        assert_ne!(page.etag, other.etag);
        let mut headers = HeaderMap::new();
        let r = page.answer(&headers);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::ETAG], page.etag);
        assert_eq!(r.headers()[header::CACHE_CONTROL], CACHE_CONTROL);
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"x\", {}", page.etag.to_str().unwrap())).unwrap(),
        );
        let r = page.answer(&headers);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::ETAG], page.etag);
        assert_eq!(other.answer(&headers).status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_browser_that_takes_gzip_gets_it_under_its_own_tag() {
        let html = "<html>".to_string() + &"<p>same</p>".repeat(1000);
        let page = Page::new(html.clone());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate, br"),
        );
        let r = page.answer(&headers);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()[header::VARY], "accept-encoding");
        let tag = r.headers()[header::ETAG].clone();
        assert_ne!(tag, page.etag);
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(body.len() < html.len() / 10);
        let mut plain = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
            .unwrap();
        assert_eq!(plain, html);
        headers.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(page.answer(&headers).status(), StatusCode::NOT_MODIFIED);
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        let r = page.answer(&headers);
        assert_eq!(r.status(), StatusCode::OK, "the plain page has another tag");
        assert!(!r.headers().contains_key(header::CONTENT_ENCODING));
    }

    #[test]
    fn the_window_is_rfc3339_or_unix_seconds_from_before_to() {
        assert_eq!(
            parse_query(Some(
                "from=1800000000&to=2027-01-15T09:00:00Z&phase=istio&step=1m&wave=prod"
            ))
            .unwrap(),
            Asked {
                from: 1_800_000_000,
                to: 1_800_003_600,
                phase: Some("istio".into()),
                step: Some(Duration::from_secs(60)),
                scope: Some(Scope::Wave("prod".into())),
            }
        );
        for (query, says) in [
            (None, "needs from and to"),
            (Some("from=1800000000"), "needs from and to"),
            (
                Some("from=1800000000&to=1700000000"),
                "to must be after from",
            ),
            (
                Some("from=yesterday&to=1800000000"),
                "neither an RFC 3339 time",
            ),
            (
                Some("from=1&to=2&cluster=a&wave=b"),
                "give one of cluster and wave",
            ),
            (Some("from=1&to=2&region=a"), "unknown parameter \"region\""),
            (
                Some("from=1&to=2&step=0.5s"),
                "not a whole number of seconds",
            ),
        ] {
            match parse_query(query) {
                Err(OnDemandError::BadRequest(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("{query:?}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_window_past_max_window_is_refused_and_a_second_report_waits_its_turn() {
        let mut config = crate::config::load(None).unwrap();
        config.report.max_window = Duration::from_secs(3600);
        let config = Arc::new(config);
        let (_tx, latest) = watch::channel(None);
        let pages = Pages::with(latest);
        let too_long = on_demand(&pages, config.clone(), Some("from=0&to=3601")).await;
        assert!(matches!(too_long, Err(OnDemandError::TooLong { .. })));
        let _busy = pages.on_demand.clone().try_acquire_owned().unwrap();
        let second = on_demand(&pages, config, Some("from=0&to=60")).await;
        let response = second.unwrap_err().into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }
}
