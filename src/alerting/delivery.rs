//! Alert delivery. The evaluation loop hands each receiver its work through a bounded queue and
//! never waits; one worker per receiver sends in order, retrying connection errors, 5xx and 429
//! (honouring `Retry-After`) with exponential backoff and jitter, and giving up on other 4xx.
//! A receiver that is down holds up only its own queue.
//!
//! Slack and webhook workers consult the notification log: after each evaluation a worker waits
//! its turn ([`Turn`]: position x `peer_timeout` after the evaluated step fell due on the grid all
//! replicas share), sends only what the log says is due, and records what it sent. Alertmanager workers send the whole state every time; Alertmanager deduplicates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use reqwest::StatusCode;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::book::{resolved_alert, Alert, AlertBook, AlertStatus, NoticeKind};
use super::cluster::{Peers, Turn};
use super::formats::{alertmanager, notification, Request};
use super::nflog::{Due, Entry, Key, Retention};
use crate::config::{AlertsConfig, ReceiverConfig, ReceiverKind};
use crate::engine::snapshot::Snapshot;

/// Longest `Retry-After` honoured; a receiver asking for more is retried at this pace.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// What became of one delivery attempt or alert, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertOutcome {
    Sent,
    Retried,
    Failed,
    Dropped,
    /// Not sent: the notification log shows it sent already, by a peer or before a restart.
    Deduplicated,
}

impl AlertOutcome {
    const ALL: [AlertOutcome; 5] = [
        AlertOutcome::Sent,
        AlertOutcome::Retried,
        AlertOutcome::Failed,
        AlertOutcome::Dropped,
        AlertOutcome::Deduplicated,
    ];

    fn as_str(self) -> &'static str {
        match self {
            AlertOutcome::Sent => "sent",
            AlertOutcome::Retried => "retried",
            AlertOutcome::Failed => "failed",
            AlertOutcome::Dropped => "dropped",
            AlertOutcome::Deduplicated => "deduplicated",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    receiver: String,
    outcome: String,
}

/// The delivery counters this path updates, one per receiver and outcome. A cheap handle onto
/// shared counters: whoever exports metrics registers [`DeliveryCounters::family`] and the alert
/// path keeps counting into the same counters, without knowing about the exporter.
#[derive(Clone, Debug, Default)]
pub struct DeliveryCounters(Family<DeliveryLabels, Counter>);

impl DeliveryCounters {
    pub fn family(&self) -> Family<DeliveryLabels, Counter> {
        self.0.clone()
    }

    /// Creates the receiver's counters at 0, so that alerting rules see the first increase.
    fn register_receiver(&self, receiver: &str) {
        for outcome in AlertOutcome::ALL {
            self.counter(receiver, outcome);
        }
    }

    fn record(&self, receiver: &str, outcome: AlertOutcome) {
        self.counter(receiver, outcome).inc();
    }

    fn counter(&self, receiver: &str, outcome: AlertOutcome) -> Counter {
        self.0.get_or_create_owned(&DeliveryLabels {
            receiver: receiver.to_string(),
            outcome: outcome.as_str().to_string(),
        })
    }
}

enum Job {
    /// One evaluation, for a person-facing receiver (Slack, webhook).
    Evaluation(Arc<Evaluation>),
    /// The whole alert state, for Alertmanager.
    State(Vec<Alert>),
}

/// What a Slack or webhook worker needs to know of one evaluation.
struct Evaluation {
    snapshot: Arc<Snapshot>,
    firing: Vec<Alert>,
    /// What this process saw change (alert id and status): each is either sent or counted as
    /// deduplicated.
    changes: Vec<(String, AlertStatus)>,
    /// When the evaluation was due (see [`Turn::wait`]).
    due: Instant,
}

struct Queue {
    receiver: String,
    kind: ReceiverKind,
    tx: mpsc::Sender<Job>,
}

/// The alert path of the daemon: the book of firing alerts and one queue and worker per receiver.
pub struct Alerting {
    book: AlertBook,
    queues: Vec<Queue>,
    /// Every worker started, including those of receivers replaced by a reload that may still be
    /// sending what was queued for them.
    workers: Vec<JoinHandle<()>>,
    send_resolved: bool,
    counters: DeliveryCounters,
    peers: Peers,
    /// The state file the log was opened with; another one takes a restart.
    state_file: Option<std::path::PathBuf>,
}

/// What each worker needs to send.
struct Worker {
    receiver: ReceiverConfig,
    client: reqwest::Client,
    external_url: Option<String>,
    firing_ttl: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    repeat_interval: Duration,
    send_resolved: bool,
    counters: DeliveryCounters,
    turn: Turn,
}

impl Alerting {
    /// Starts one worker per receiver, for a process on its own with the log in
    /// `alerts.state_file`, if set.
    pub fn start(
        config: &AlertsConfig,
        evaluation_interval: Duration,
        counters: DeliveryCounters,
    ) -> Alerting {
        let peers = Peers::alone(config.state_file.clone(), &Default::default());
        Alerting::with_peers(config, evaluation_interval, counters, peers)
    }

    /// Starts one worker per receiver, taking turns with `peers`.
    pub fn with_peers(
        config: &AlertsConfig,
        evaluation_interval: Duration,
        counters: DeliveryCounters,
        peers: Peers,
    ) -> Alerting {
        let mut alerting = Alerting {
            book: AlertBook::default(),
            queues: Vec::new(),
            workers: Vec::new(),
            send_resolved: config.send_resolved,
            counters,
            peers,
            state_file: config.state_file.clone(),
        };
        alerting.reconfigure(config, evaluation_interval);
        alerting
    }

    /// Replaces the receivers, keeping the book of firing alerts, so that an alert that fired
    /// before a reload still resolves after it. The old workers finish their queues.
    pub fn reconfigure(&mut self, config: &AlertsConfig, evaluation_interval: Duration) {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .expect("a reqwest client with a timeout builds");
        // As Prometheus does: long enough to survive a few missed evaluations.
        let firing_ttl = 4 * evaluation_interval.max(Duration::from_secs(60));
        self.send_resolved = config.send_resolved;
        if config.state_file != self.state_file {
            tracing::warn!("alerts.state_file changed; the new file is used only after a restart");
        }
        self.peers.turn.log.set_retention(Retention::new(
            config.repeat_interval,
            config.receivers.iter().map(|r| r.name.clone()),
        ));
        self.queues.clear();
        self.workers.retain(|w| !w.is_finished());
        for receiver in &config.receivers {
            self.counters.register_receiver(&receiver.name);
            let (tx, rx) = mpsc::channel(config.queue_capacity);
            self.queues.push(Queue {
                receiver: receiver.name.clone(),
                kind: receiver.kind,
                tx,
            });
            let worker = Worker {
                receiver: receiver.clone(),
                client: client.clone(),
                external_url: config.external_url.clone(),
                firing_ttl,
                initial_backoff: config.retry_initial_backoff,
                max_backoff: config.retry_max_backoff,
                repeat_interval: config.repeat_interval,
                send_resolved: config.send_resolved,
                counters: self.counters.clone(),
                turn: self.peers.turn.clone(),
            };
            self.workers.push(tokio::spawn(worker.run(rx)));
        }
    }

    /// Closes the queues, waits until the workers have sent what is in them, and leaves the
    /// cluster.
    pub async fn close(self) {
        drop(self.queues);
        futures::future::join_all(self.workers).await;
        self.peers.leave().await;
    }

    /// Logs what changed and queues the evaluation for every receiver. Never waits: a full queue
    /// drops it for that receiver, with an error log and the `dropped` outcome (the next evaluation
    /// still brings what is due).
    /// `due` is when the evaluation was scheduled to start: the same moment on every replica.
    pub fn observe(&mut self, snapshot: &Snapshot, due: Instant) {
        let update = self.book.update(snapshot);
        for notice in &update.notices {
            let a = &notice.alert;
            match notice.kind {
                NoticeKind::New => {
                    tracing::warn!(alert = a.name.as_str(), summary = %a.summary(), "alert firing")
                }
                NoticeKind::Resolved => {
                    tracing::info!(alert = a.name.as_str(), summary = %a.summary(), "alert resolved")
                }
            }
        }
        let evaluation = Arc::new(Evaluation {
            snapshot: Arc::new(snapshot.clone()),
            firing: update
                .state
                .iter()
                .filter(|a| a.status == AlertStatus::Firing)
                .cloned()
                .collect(),
            changes: update
                .notices
                .iter()
                .filter(|n| self.send_resolved || n.kind != NoticeKind::Resolved)
                .map(|n| (n.alert.id(), n.alert.status))
                .collect(),
            due,
        });
        for queue in &self.queues {
            let job = match queue.kind {
                ReceiverKind::Alertmanager if update.state.is_empty() => continue,
                ReceiverKind::Alertmanager => Job::State(update.state.clone()),
                ReceiverKind::Slack | ReceiverKind::Webhook => Job::Evaluation(evaluation.clone()),
            };
            if queue.tx.try_send(job).is_err() {
                tracing::error!(receiver = %queue.receiver, "alert queue full; evaluation dropped");
                self.counters.record(&queue.receiver, AlertOutcome::Dropped);
            }
        }
    }
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.recv().await {
            let request = match job {
                Job::Evaluation(evaluation) => {
                    self.notify(&evaluation).await;
                    continue;
                }
                Job::State(state) => {
                    // Only the latest state matters to Alertmanager: fold what queued up while it
                    // was away into one request, the newest version of each alert winning.
                    let mut latest: BTreeMap<String, Alert> =
                        state.into_iter().map(|a| (a.id(), a)).collect();
                    while let Ok(Job::State(newer)) = rx.try_recv() {
                        latest.extend(newer.into_iter().map(|a| (a.id(), a)));
                    }
                    let alerts: Vec<Alert> = latest.into_values().collect();
                    alertmanager(&alerts, self.external_url.as_deref(), self.firing_ttl)
                }
            };
            self.deliver(&request).await;
        }
    }

    /// Waits its turn, then sends what the notification log says is due and records it.
    async fn notify(&self, evaluation: &Evaluation) {
        self.turn.wait(evaluation.due).await;
        let name = &self.receiver.name;
        let snapshot = &evaluation.snapshot;
        let due = self.turn.log.read(|log| {
            log.due(
                name,
                &evaluation.firing,
                snapshot.evaluated_at,
                self.repeat_interval,
            )
        });
        let alerts: Vec<Alert> = due
            .into_iter()
            .map(|d| match d {
                Due::Announce(alert) => alert,
                Due::Resolve(key, entry) => resolved_alert(
                    key.alertname,
                    key.phase
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(String::from)
                        .collect(),
                    Some(key.signal).filter(|s| !s.is_empty()),
                    entry.severity,
                    entry.starts_at,
                    snapshot,
                ),
            })
            .collect();
        for (id, status) in &evaluation.changes {
            if !alerts.iter().any(|a| &a.id() == id && a.status == *status) {
                tracing::info!(receiver = %name, alert = %id, status = ?status, "already notified (by a peer or before a restart); not sent again");
                self.counters.record(name, AlertOutcome::Deduplicated);
            }
        }
        for alert in alerts {
            if alert.status == AlertStatus::Firing || self.send_resolved {
                let request = notification(&self.receiver, &alert, self.external_url.as_deref());
                self.deliver(&request).await;
            }
            // Recorded once delivered, or refused for good: sending it again would not help.
            // A resolution that is not sent is recorded too, so the next incident is new.
            self.turn
                .log
                .record(Key::of(name, &alert), Entry::of(&alert));
        }
    }

    /// Sends until delivered or refused; the outcome is logged and counted.
    async fn deliver(&self, request: &Request) {
        let name = &self.receiver.name;
        let mut backoff = self.initial_backoff;
        loop {
            let wait = match self.send(request).await {
                Ok(r) if r.status.is_success() => {
                    tracing::debug!(receiver = %name, status = r.status.as_u16(), "alert delivered");
                    self.counters.record(name, AlertOutcome::Sent);
                    return;
                }
                Ok(Response {
                    status,
                    retry_after,
                    body,
                }) if retryable(status) => {
                    tracing::warn!(receiver = %name, status = status.as_u16(), body = %body, "alert delivery refused for now; will retry");
                    retry_after.map(|d| d.min(MAX_RETRY_AFTER))
                }
                Ok(Response { status, body, .. }) => {
                    tracing::error!(receiver = %name, status = status.as_u16(), body = %body, "alert rejected by the receiver; giving up on it");
                    self.counters.record(name, AlertOutcome::Failed);
                    return;
                }
                Err(error) => {
                    tracing::warn!(receiver = %name, error = %error, "alert delivery failed; will retry");
                    None
                }
            };
            self.counters.record(name, AlertOutcome::Retried);
            tokio::time::sleep(wait.unwrap_or_else(|| jitter(backoff))).await;
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    async fn send(&self, request: &Request) -> Result<Response, String> {
        let base = self.receiver.url.expose();
        let url = if request.path_suffix.is_empty() {
            base.to_string()
        } else {
            format!("{}{}", base.trim_end_matches('/'), request.path_suffix)
        };
        let mut builder = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        // Errors are stripped of the URL: for Slack and many webhooks the URL is the secret.
        let response = builder
            .send()
            .await
            .map_err(|e| describe(&e.without_url()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.text().await.unwrap_or_default();
        Ok(Response {
            status,
            retry_after,
            body: body.chars().take(200).collect(),
        })
    }
}

struct Response {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: String,
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
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
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
}
