//! A loopback proxy in front of a real Prometheus that counts what the gate costs it: every API
//! call is forwarded with `stats=all` added, and the queries and the samples Prometheus reports
//! having processed (`totalQueryableSamples`, the unit Amazon Managed Service for Prometheus
//! bills) are summed. Used by the query-cost and fleet benches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Router;

/// The counters of one proxy; clones share them.
#[derive(Clone)]
pub struct Counting {
    upstream: String,
    http: reqwest::Client,
    pub samples: Arc<AtomicU64>,
    pub queries: Arc<AtomicU64>,
    /// Every call: (query, start, end, samples), to tell where samples went.
    pub calls: Arc<Mutex<Vec<Call>>>,
}

/// One query the proxy forwarded.
#[derive(Debug, Clone)]
pub struct Call {
    pub query: String,
    /// `start` and `end` of a range query; `time` twice for an instant one.
    pub range: (f64, f64),
    pub samples: u64,
    /// From sending the call to Prometheus to its whole answer.
    pub took: std::time::Duration,
}

impl Counting {
    /// The calls so far, and the list emptied.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }
}

/// The number after `"totalQueryableSamples":` in an answer. Found by a scan rather than a
/// parse: a fleet's answers run to megabytes, and the proxy should cost the run next to nothing.
fn total_samples(body: &[u8]) -> Option<u64> {
    let key = b"\"totalQueryableSamples\":";
    let at = body.windows(key.len()).rposition(|w| w == key)? + key.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// Forwards one API call with `stats=all` added and counts the samples Prometheus processed.
async fn forward(State(proxy): State<Counting>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let form = parts
        .uri
        .query()
        .unwrap_or("")
        .as_bytes()
        .iter()
        .chain(b"&")
        .chain(&body[..]);
    let form: Vec<u8> = form.copied().collect();
    let field = |name: &str| {
        form_urlencoded::parse(&form)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let time = |name: &str| field(name).and_then(|v| v.parse::<f64>().ok());
    let at = time("time");
    let mut call = Call {
        query: field("query").unwrap_or_default(),
        range: (
            time("start").or(at).unwrap_or(0.0),
            time("end").or(at).unwrap_or(0.0),
        ),
        samples: 0,
        took: std::time::Duration::ZERO,
    };
    let sent = std::time::Instant::now();
    let query = parts
        .uri
        .query()
        .map_or("stats=all".to_string(), |q| format!("{q}&stats=all"));
    let url = format!("{}{}?{query}", proxy.upstream, parts.uri.path());
    let mut upstream = proxy.http.request(parts.method, url);
    if let Some(t) = parts.headers.get(CONTENT_TYPE) {
        upstream = upstream.header(CONTENT_TYPE, t);
    }
    let answer = upstream.body(body).send().await.unwrap();
    let status = answer.status();
    let bytes: Bytes = answer.bytes().await.unwrap();
    call.took = sent.elapsed();
    let n = total_samples(&bytes)
        .unwrap_or_else(|| panic!("no stats in {}", String::from_utf8_lossy(&bytes)));
    proxy.samples.fetch_add(n, Ordering::SeqCst);
    proxy.queries.fetch_add(1, Ordering::SeqCst);
    call.samples = n;
    proxy.calls.lock().unwrap().push(call);
    (status, [(CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// Starts a counting proxy to `upstream` on a free loopback port (on the current tokio
/// runtime); answers with its URL.
pub async fn start(upstream: &str) -> (String, Counting) {
    let proxy = Counting {
        upstream: upstream.to_string(),
        http: reqwest::Client::new(),
        samples: Arc::new(AtomicU64::new(0)),
        queries: Arc::new(AtomicU64::new(0)),
        calls: Arc::default(),
    };
    let app = Router::new().fallback(forward).with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, proxy)
}
