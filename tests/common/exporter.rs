//! A metrics endpoint whose text the test sets, for a real Prometheus to scrape: the way to make
//! an incident start or end exactly when a test says so.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::Router;
use tokio::sync::watch;

/// Serves the current text on every path; stopped on drop.
pub struct Exporter {
    addr: SocketAddr,
    text: Arc<Mutex<String>>,
    stop: watch::Sender<bool>,
}

impl Exporter {
    /// Must be called inside a tokio runtime, which then serves it.
    pub async fn start(text: &str) -> Exporter {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("Exporter: cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let text = Arc::new(Mutex::new(text.to_string()));
        let app = Router::new()
            .fallback(|State(text): State<Arc<Mutex<String>>>| async move {
                text.lock().unwrap().clone()
            })
            .with_state(text.clone());
        let stop = watch::Sender::new(false);
        let mut stopped = stop.subscribe();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        Exporter { addr, text, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the next scrape gets.
    pub fn set(&self, text: &str) {
        *self.text.lock().unwrap() = text.to_string();
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
