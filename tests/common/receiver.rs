//! A recording HTTP receiver for webhook, Slack and Alertmanager-client tests.
//!
//! [`Receiver::start`] serves on 127.0.0.1:0 (axum, spawned on the current tokio
//! runtime, so it must be called from inside a runtime, e.g. a `#[tokio::test]`).
//! Every request, whatever its method and path, is recorded before it is answered,
//! then answered with the next scripted [`Reply`]; once the script is used up,
//! every request gets `200 ok`.
//!
//! A [`Reply::Hang`] request never gets an answer while the receiver lives: the
//! client has to time out. Dropping the `Receiver` stops accepting connections
//! and releases hanging requests (they are then answered 503, which nobody
//! should be waiting for any more).
//!
//! The receiver runs on the test's runtime: with a current-thread runtime
//! (`#[tokio::test]` default) it only answers while the test is awaiting, so do
//! not call blocking code while a client is expected to get an answer.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::watch;

/// One recorded request.
#[derive(Clone)]
pub struct Received {
    pub method: Method,
    /// The URI path, without the query string.
    pub path: String,
    pub headers: HeaderMap,
    /// The body, lossily decoded as UTF-8.
    pub body: String,
    /// When the handler got the request (after its body was read).
    pub at: Instant,
}

impl Received {
    /// The value of header `name` (case-insensitive), if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: body is not JSON ({e}): {}",
                self.method, self.path, self.body
            )
        })
    }
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {:?} {}",
            self.method, self.path, self.headers, self.body
        )
    }
}

/// How to answer one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// This status, with a short text body.
    Status(u16),
    /// This status with one extra header, e.g. `(429, "Retry-After", "2".into())`.
    StatusWithHeader(u16, &'static str, String),
    /// Never answer (until the receiver is dropped).
    Hang,
}

struct Inner {
    script: VecDeque<Reply>,
    received: Vec<Received>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    /// Number of recorded requests, for `wait_for`.
    count: watch::Sender<usize>,
    /// Flips to true on drop: stops the server and releases hanging requests.
    shutdown: watch::Sender<bool>,
}

/// A scripted HTTP server recording every request; stopped on drop.
pub struct Receiver {
    addr: SocketAddr,
    shared: Shared,
}

impl Receiver {
    /// Answers the scripted replies in order, then 200 for every later request.
    /// Records every request (also those answered with errors or hanging).
    pub async fn start(script: Vec<Reply>) -> Receiver {
        Receiver::start_on(0, script).await
    }

    /// As [`Receiver::start`], on a given loopback port: a receiver that was down (nothing
    /// listening, connections refused) and comes back where its clients expect it.
    pub async fn start_on(port: u16, script: Vec<Reply>) -> Receiver {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap_or_else(|e| panic!("Receiver: cannot bind 127.0.0.1:{port}: {e}"));
        let addr = listener.local_addr().expect("Receiver: no local address");
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                script: script.into(),
                received: Vec::new(),
            })),
            count: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
        };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let mut stop = shared.shutdown.subscribe();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await;
            if let Err(e) = served {
                eprintln!("Receiver on {addr}: server error: {e}");
            }
        });
        Receiver { addr, shared }
    }

    /// Base URL, e.g. "http://127.0.0.1:41234" (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request recorded so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .inner
            .lock()
            .expect("Receiver lock poisoned")
            .received
            .clone()
    }

    /// Waits (woken on every recorded request, no fixed sleeps) until at least `n`
    /// requests were recorded, and returns all of them. Panics with what was
    /// received if that takes longer than `deadline`.
    pub async fn wait_for(&self, n: usize, deadline: Duration) -> Vec<Received> {
        let mut count = self.shared.count.subscribe();
        let reached = tokio::time::timeout(deadline, count.wait_for(|c| *c >= n)).await;
        match reached {
            Ok(Ok(_)) => self.received(),
            Ok(Err(_)) => unreachable!("the sender lives in self"),
            Err(_) => {
                let got = self.received();
                panic!(
                    "Receiver on {}: expected at least {n} request(s) within {deadline:?}, \
                     got {}:\n{got:#?}",
                    self.url(),
                    got.len()
                );
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut inner = shared.inner.lock().expect("Receiver lock poisoned");
        inner.received.push(Received {
            method,
            path: uri.path().to_owned(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
        });
        let reply = inner.script.pop_front();
        shared.count.send_replace(inner.received.len());
        reply
    };
    match reply {
        None => (StatusCode::OK, "ok").into_response(),
        Some(Reply::Status(code)) => (status(code), format!("scripted {code}")).into_response(),
        Some(Reply::StatusWithHeader(code, name, value)) => {
            let name = HeaderName::from_bytes(name.as_bytes())
                .unwrap_or_else(|e| panic!("Receiver: bad header name {name:?}: {e}"));
            let value = HeaderValue::from_str(&value)
                .unwrap_or_else(|e| panic!("Receiver: bad header value {value:?}: {e}"));
            (status(code), [(name, value)], format!("scripted {code}")).into_response()
        }
        Some(Reply::Hang) => {
            let mut stop = shared.shutdown.subscribe();
            let _ = stop.wait_for(|stopped| *stopped).await;
            (StatusCode::SERVICE_UNAVAILABLE, "receiver stopped").into_response()
        }
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or_else(|e| panic!("Receiver: bad status {code}: {e}"))
}
