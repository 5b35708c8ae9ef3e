//! A loopback proxy in front of a real Prometheus that refuses any request without the required
//! headers (401, as an authenticating gateway does) and keeps the headers of every request, so a
//! test can check what credentials the gate sent. It can also add keys to the envelope of API
//! answers (`warnings`, as Thanos and Mimir send with a partial answer; `infos`), which a
//! Prometheus alone never writes.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Clone)]
pub struct Proxy {
    upstream: String,
    /// Header name and value every request must carry.
    pub required: Arc<Mutex<Vec<(String, String)>>>,
    /// The headers of every request, refused or not.
    pub seen: Arc<Mutex<Vec<HeaderMap>>>,
    /// Keys set in the envelope of every `/api/v1/...` answer, over Prometheus' own.
    pub inject: Arc<Mutex<serde_json::Map<String, serde_json::Value>>>,
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    p.seen.lock().unwrap().push(headers.clone());
    let required = p.required.lock().unwrap().clone();
    if required
        .iter()
        .any(|(k, v)| headers.get(k).and_then(|h| h.to_str().ok()) != Some(v.as_str()))
    {
        return (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
    }
    let url = format!(
        "{}{}",
        p.upstream,
        uri.path_and_query().map_or("", |pq| pq.as_str())
    );
    let mut request = reqwest::Client::new().request(method, url).body(body);
    if let Some(ct) = headers.get("content-type") {
        request = request.header("content-type", ct);
    }
    let answer = request.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let content_type = answer
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let mut body = answer.bytes().await.unwrap();
    let inject = p.inject.lock().unwrap().clone();
    if uri.path().starts_with("/api/v1/") && !inject.is_empty() {
        let mut envelope: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&body).unwrap();
        envelope.extend(inject);
        body = serde_json::to_vec(&envelope).unwrap().into();
    }
    (status, [("content-type", content_type)], body).into_response()
}

/// Starts a proxy to `upstream` on a free loopback port; answers with its URL.
pub async fn proxy(upstream: &str, required: &[(&str, &str)]) -> (String, Proxy) {
    let p = Proxy {
        upstream: upstream.to_string(),
        required: Arc::new(Mutex::new(
            required
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )),
        seen: Arc::default(),
        inject: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(forward).with_state(p.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, p)
}
