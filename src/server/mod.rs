//! The daemon: the evaluation loop ([`scheduler`], one [`crate::evaluation::Incremental`]
//! evaluation per tick, or one [`FleetEvaluator`] evaluation in fleet mode) and the HTTP server
//! ([`router`](mod@router) behind the [`auth`] check and the [`listener`]'s limits), sharing one
//! shutdown token, with the gate's own [`metrics`] and the report [`page`] kept from the
//! published snapshots.
//!
//! This is where the pieces meet: it wires the evaluation, the alert path and the HTTP answers
//! together, and only it knows the HTTP routes. Nothing below it imports it. [`serve`] takes an
//! already-bound listener so that tests can bind port 0 and learn the address.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;

use crate::alerting::cluster::{ClusterError, Peers};
use crate::alerting::delivery::Alerting;
use crate::config::Config;
use crate::evaluation::fleet::{FleetError, FleetEvaluator};
use crate::prometheus::error::SourceError;
use crate::prometheus::source::PrometheusSource;
use metrics::Metrics;
use page::Pages;
use router::{router, AppState};
use scheduler::{Reload, Scheduler};

pub mod auth;
pub mod bodies;
pub mod listener;
pub mod metrics;
pub mod page;
pub mod router;
pub mod scheduler;
pub mod scope;
pub mod webhook;

/// How long the evaluation loop and alert delivery may take to stop after the server has.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("HTTP server failed: {0}")]
    Http(#[from] std::io::Error),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

/// Serves until `shutdown` completes, then stops accepting, finishes in-flight requests and
/// stops the evaluation loop.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let source = PrometheusSource::new(&config.prometheus)?;
    let fleet = match &config.fleet {
        Some(_) => Some(FleetEvaluator::new(&config)?),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let (publish, bodies) = watch::channel(None);
    let token = CancellationToken::new();
    let (reload, reloads) = mpsc::channel(4);
    #[cfg(unix)]
    tokio::spawn(reload_on_sighup(reload.clone(), token.clone()));

    let peers = Peers::start(
        config.alerts.state_file.clone(),
        config.cluster.as_ref(),
        metrics.cluster.clone(),
    )
    .await?;
    let alerting = Alerting::with_peers(
        &config.alerts,
        config.evaluation.interval,
        metrics.alerts.clone(),
        peers,
    );
    let config = Arc::new(config);
    let (config_tx, config_rx) = watch::channel(config.clone());
    let scheduler = Scheduler {
        config: config_tx,
        source,
        metrics: metrics.clone(),
        alerting,
        publish,
        reloads,
        evaluator: Default::default(),
        fleet,
    };
    let evaluation = tokio::spawn(scheduler.run(token.clone()));

    let pages = Pages::start(bodies.clone(), config_rx.clone(), token.clone());
    let state = AppState {
        bodies,
        metrics,
        config: config_rx.clone(),
        reload,
        pages,
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        signals = config.pack.signals.len(),
        phases = config.pack.phases.len(),
        interval = %humantime::format_duration(config.evaluation.interval),
        "upgrade-gate serving"
    );
    let server_token = token.clone();
    let app = app(state);
    let result = listener::serve(listener, app, config_rx, async move {
        tokio::select! {
            _ = shutdown => {}
            _ = server_token.cancelled() => {}
        }
        tracing::info!("shutting down");
    })
    .await;
    token.cancel();
    // The loop owns the alert queues: once it has stopped they close, and the workers send what is
    // left in them, within the deadline.
    let drained = tokio::time::timeout(DRAIN_DEADLINE, async {
        if let Ok(alerting) = evaluation.await {
            alerting.close().await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "alert delivery did not finish within {}; undelivered alerts are lost",
            humantime::format_duration(DRAIN_DEADLINE)
        );
    }
    result.map_err(ServeError::from)
}

/// The HTTP application as the listener serves it: the body limit (413), the token check (401),
/// then the routes. The layers wrap the router as a whole, so a request passes each once; on
/// every route, axum would box each layer again, which cost `/gate` more than its own work.
pub fn app(state: AppState) -> impl listener::App {
    let max_body_bytes = state.config.borrow().server.limits.max_body_bytes;
    let config = state.config.clone();
    ServiceBuilder::new()
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        .layer(auth::layer(config))
        .service(router(state))
}

/// Turns every SIGHUP into a reload request, until shutdown.
#[cfg(unix)]
async fn reload_on_sighup(reload: mpsc::Sender<Reload>, shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reload with POST /-/reload");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(()) = hangups.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                if reload.send(Reload { reply: None }).await.is_err() {
                    return;
                }
            }
        }
    }
}
