//! The front door of the HTTP server: accepts connections under a cap, closes those that stay
//! idle past the header deadline (a client that sends nothing, or its request too slowly, and
//! keep-alive connections that ask nothing more), speaks TLS when configured, and hands each
//! request to the application (`super::app`: body limit, token check, routes).
//!
//! The deadline is kept by one sweep over the open connections rather than by hyper's
//! `header_read_timeout`, which arms a timer for every request: that timer cost a `/gate` poll
//! about 4% of the gate's throughput (BENCHMARKS.md), and the open connections are listed here
//! for the cap anyway.
//!
//! `axum::serve` can set none of these, and on a full file table it only pauses accepting, so a
//! thousand silent connections used to take the gate away from every pipeline. Here the number of
//! open connections stays below the process's open-file limit, with a reserve for the Prometheus
//! queries and the alert receivers; when the cap is reached, the connection that has been idle
//! longest (no request being answered: never sent one, or between two) is closed to make room,
//! as nginx does with its keep-alive connections, so a newcomer such as a probe is always served.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{BoxError, Service, ServiceExt};

use crate::config::{Config, Limits};

/// File descriptors kept back from the connection cap whatever the configuration: standard
/// streams, the runtime's own, config, signal, token and certificate files read on reload.
const RESERVED_FILES: u64 = 64;
/// The default cap when the file limit allows more: enough for every pipeline and probe of a
/// cluster, small enough that their buffers stay a few tens of MB.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long to pause accepting after an error that is not the client's (e.g. no file left).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// The sweep for idle connections runs this many times per header deadline (so a connection is
/// closed at most an eighth late), but at least every second and at most every millisecond.
const SWEEPS_PER_DEADLINE: u32 = 8;
const MAX_SWEEP_PERIOD: Duration = Duration::from_secs(1);
const MIN_SWEEP_PERIOD: Duration = Duration::from_millis(1);

/// What the listener serves: the whole application as one hyper service, cloned for each
/// connection (`super::app` is one).
pub trait App:
    Service<
        Request<Incoming>,
        Response = Response<Self::Answer>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
    /// The body of an answer.
    type Answer: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;
}

impl<A, B> App for A
where
    A: Service<
            Request<Incoming>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static,
    B: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    type Answer = B;
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets requests in
/// flight finish (within the request timeout) and closes idle connections. TLS and the limits
/// come from the configuration at start; a reload rotates the certificate.
pub async fn serve(
    listener: TcpListener,
    app: impl App,
    mut config: watch::Receiver<Arc<Config>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let running = config.borrow_and_update().clone();
    let limits = running.server.limits;
    let cap = connection_cap(&running);
    let tls = running.server.tls.as_ref().map(|t| {
        let certificate = Arc::new(Certificate(RwLock::new(t.certified.clone())));
        (certificate.clone(), acceptor(certificate))
    });
    tracing::info!(
        max_connections = cap.max,
        open_file_limit = cap.file_limit,
        reserved_files = cap.reserved,
        header_read_timeout = %humantime::format_duration(limits.header_read_timeout),
        request_timeout = %humantime::format_duration(limits.request_timeout),
        max_body_bytes = limits.max_body_bytes,
        tls = tls.is_some(),
        bearer_token = running.server.auth.is_some(),
        "HTTP connections capped"
    );

    let draining = CancellationToken::new();
    tokio::spawn(follow_reloads(
        config,
        running,
        tls.as_ref().map(|(c, _)| c.clone()),
        draining.clone(),
    ));
    let connections = Arc::new(Connections::default());
    // The sweep goes on while the server drains: a client still sending its request then is
    // closed at the deadline, not left to hold the shutdown until the drain gives up.
    let swept = CancellationToken::new();
    tokio::spawn(close_idle(
        connections.clone(),
        limits.header_read_timeout,
        swept.clone(),
    ));
    let front = Front {
        app,
        acceptor: tls.map(|(_, a)| a),
        connections,
        limits,
        draining: draining.clone(),
    };
    let slots = Arc::new(Semaphore::new(cap.max));
    let tasks = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    front.connections.evict_longest_idle();
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) if front.connections.evict_longest_idle() => {
                tracing::debug!("connection cap reached: closed the longest idle connection");
                tokio::select! {
                    _ = &mut shutdown => break,
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                }
            }
            Err(_) => {
                tracing::debug!("connection cap reached and every connection busy: refused one");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(front.clone().run_connection(stream, slot));
    }
    drop(listener);
    draining.cancel();
    tasks.close();
    let drained = tokio::time::timeout(limits.request_timeout, tasks.wait()).await;
    swept.cancel();
    if drained.is_err() {
        tracing::warn!("some HTTP connections did not finish in time; shutting down without them");
    }
    Ok(())
}

/// The cap on open connections and how it was chosen, for the start-up log.
struct Cap {
    max: usize,
    file_limit: u64,
    reserved: u64,
}

/// `server.max_connections`, or [`DEFAULT_MAX_CONNECTIONS`], kept below the soft open-file limit
/// minus what the evaluation (one socket per query in flight, and as many pooled) and the alert
/// receivers need.
fn connection_cap(config: &Config) -> Cap {
    let reserved = RESERVED_FILES
        + 2 * config.evaluation.concurrency as u64
        + 2 * config.alerts.receivers.len() as u64;
    let file_limit = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _)) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; assuming 1024");
            1024
        }
    };
    let ceiling = usize::try_from(file_limit.saturating_sub(reserved))
        .unwrap_or(usize::MAX)
        .max(1);
    let configured = config.server.limits.max_connections;
    let wanted = configured.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if configured.is_some_and(|n| n > ceiling) {
        tracing::warn!(
            wanted,
            open_file_limit = file_limit,
            "server.max_connections is more than the open-file limit leaves room for; \
             raise the limit (LimitNOFILE, ulimit -n)"
        );
    }
    Cap {
        max: wanted.min(ceiling),
        file_limit,
        reserved,
    }
}

/// Errors that concern one client only; the next accept may succeed at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// What every connection shares.
#[derive(Clone)]
struct Front<A> {
    app: A,
    acceptor: Option<TlsAcceptor>,
    connections: Arc<Connections>,
    limits: Limits,
    draining: CancellationToken,
}

impl<A: App> Front<A> {
    /// One accepted connection, holding its slot under the cap: the TLS handshake (under the header
    /// deadline), then HTTP/1.1 until the client leaves, a deadline passes, the cap evicts it, or the
    /// server drains.
    async fn run_connection(self, stream: TcpStream, _slot: OwnedSemaphorePermit) {
        let connection = self.connections.open();
        let evicted = connection.evict.clone();
        let _registered = Registered(self.connections.clone(), connection.id);
        let Some(acceptor) = self.acceptor.clone() else {
            return self.speak_http(stream, connection).await;
        };
        let handshake =
            tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(stream));
        let stream = tokio::select! {
            _ = evicted.cancelled() => return,
            _ = self.draining.cancelled() => return,
            done = handshake => match done {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            },
        };
        self.speak_http(stream, connection).await
    }

    async fn speak_http<I>(self, io: I, connection: Arc<Connection>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Front { app, draining, .. } = self;
        let evicted = connection.evict.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let busy = connection.busy();
            let answer = app.clone().oneshot(request);
            async move {
                let response = answer.await;
                drop(busy);
                response
            }
        });
        // No timer for hyper: `close_idle` keeps the header deadline.
        let http = http1::Builder::new().serve_connection(TokioIo::new(io), service);
        tokio::pin!(http);
        // Eviction (the cap, the header deadline) ends the connection even while it drains.
        let mut shutting_down = false;
        let result = loop {
            tokio::select! {
                result = http.as_mut() => break result,
                _ = evicted.cancelled() => return,
                _ = draining.cancelled(), if !shutting_down => {
                    http.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
            }
        };
        // Deadlines passing and clients going away are the normal end of a connection.
        if let Err(e) = result {
            tracing::debug!(error = %e, "HTTP connection ended");
        }
    }
}

/// The open connections, so that the cap can close the one idle longest.
#[derive(Default)]
struct Connections {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
}

struct Connection {
    id: u64,
    /// Requests being answered (HTTP/1.1 answers one at a time; pipelined ones queue in hyper).
    busy: AtomicUsize,
    /// Since when no request has been in flight, in nanoseconds from `born`.
    idle_since: AtomicU64,
    born: Instant,
    evict: CancellationToken,
}

impl Connections {
    fn open(&self) -> Arc<Connection> {
        let connection = Arc::new(Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            born: Instant::now(),
            evict: CancellationToken::new(),
        });
        self.lock().insert(connection.id, connection.clone());
        connection
    }

    /// Closes the connection that has had no request in flight for longest; false when every
    /// connection is answering one.
    fn evict_longest_idle(&self) -> bool {
        let mut open = self.lock();
        let longest = open
            .values()
            .filter(|c| c.is_idle())
            .min_by_key(|c| c.idle_instant())
            .map(|c| c.id);
        match longest.and_then(|id| open.remove(&id)) {
            Some(connection) => {
                connection.evict.cancel();
                true
            }
            None => false,
        }
    }

    /// Closes every connection that has had no request in flight for `deadline` or longer.
    fn evict_idle_for(&self, deadline: Duration) {
        let now = Instant::now();
        self.lock().retain(|_, c| {
            let expired =
                c.is_idle() && now.saturating_duration_since(c.idle_instant()) >= deadline;
            if expired {
                c.evict.cancel();
            }
            !expired
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        // A panic while holding the lock leaves the map consistent: every change is one call.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps the header deadline for every open connection until `stop`: one that has had
/// no request in flight for `deadline` (none yet since it opened, or none since its last answer)
/// is closed. A request whose line and headers are still arriving is not in flight yet, so a
/// client that sends them too slowly is closed too, as hyper's own deadline would close it.
async fn close_idle(connections: Arc<Connections>, deadline: Duration, stop: CancellationToken) {
    let period = (deadline / SWEEPS_PER_DEADLINE).clamp(MIN_SWEEP_PERIOD, MAX_SWEEP_PERIOD);
    let mut sweeps = tokio::time::interval(period);
    sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = sweeps.tick() => connections.evict_idle_for(deadline),
        }
    }
}

/// Takes the connection off the list when its task ends, however it ends.
struct Registered(Arc<Connections>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

impl Connection {
    /// No request in flight: never sent one, or between two.
    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    fn idle_instant(&self) -> Instant {
        self.born + Duration::from_nanos(self.idle_since.load(Ordering::Acquire))
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }
}

/// A request in flight on a connection; its end makes the connection idle again.
struct Busy(Arc<Connection>);

impl Drop for Busy {
    fn drop(&mut self) {
        let c = &self.0;
        let now = c.born.elapsed().as_nanos() as u64;
        c.idle_since.store(now, Ordering::Release);
        c.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The server certificate, replaced when a reload has read a new one (cert-manager rotation);
/// each handshake takes the current one.
#[derive(Debug)]
struct Certificate(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl Certificate {
    fn current(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = key;
    }
}

fn acceptor(certificate: Arc<Certificate>) -> TlsAcceptor {
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// Applies what a reload may change here: the certificate. The rest of the `server` section is
/// read once, and a change is reported as needing a restart.
async fn follow_reloads(
    mut config: watch::Receiver<Arc<Config>>,
    running: Arc<Config>,
    certificate: Option<Arc<Certificate>>,
    draining: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = draining.cancelled() => return,
            changed = config.changed() => if changed.is_err() { return },
        }
        let new = config.borrow_and_update().clone();
        if new.server.limits != running.server.limits {
            tracing::warn!("server limits changed; they take effect only after a restart");
        }
        match (&certificate, &new.server.tls) {
            (Some(certificate), Some(tls)) => {
                if certificate.current().cert != tls.certified.cert {
                    certificate.replace(tls.certified.clone());
                    tracing::info!(
                        cert_file = %tls.cert_file.display(),
                        "TLS certificate reloaded"
                    );
                }
            }
            (None, None) => {}
            _ => tracing::warn!(
                "server.tls was switched on or off; that takes effect only after a restart"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_closes_only_connections_idle_past_the_deadline() {
        let connections = Connections::default();
        let (idle, answering, fresh) = (connections.open(), connections.open(), connections.open());
        let _busy = answering.busy();
        std::thread::sleep(Duration::from_millis(30));
        drop(fresh.busy());

        connections.evict_idle_for(Duration::from_millis(20));

        assert!(idle.evict.is_cancelled(), "idle since it opened, 30 ms ago");
        assert!(!answering.evict.is_cancelled(), "a request is in flight");
        assert!(!fresh.evict.is_cancelled(), "answered a request just now");
        let mut open: Vec<u64> = connections.lock().keys().copied().collect();
        open.sort();
        assert_eq!(open, vec![answering.id, fresh.id]);
    }
}
