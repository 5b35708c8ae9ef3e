//! Alert delivery. The evaluation loop hands each receiver its work through a bounded queue and
//! never waits; one worker per receiver sends in order, retrying connection errors, 5xx and 429
//! at the pace [`super::retry`] sets, and giving up on other 4xx. A receiver that is down holds
//! up only its own queue.
//!
//! What a receiver is told is the latest state, not a history: while a notice is being retried,
//! the evaluations that arrive meanwhile collapse into the newest, and a notice that the newest
//! contradicts (a firing that has resolved since, a resolution that fires again) is dropped
//! unsent and unrecorded. A firing dropped so was never told, so the notification log owes no
//! resolution for it either. A notice still undelivered `alerts.give_up_after` after its
//! evaluation is given up (`expired`) and recorded as if sent, so that it is not retried at the
//! next evaluation; the next change of the alert, or its repeat, goes as usual.
//!
//! Slack and webhook workers consult the notification log: after each evaluation a worker waits
//! its turn ([`Turn`]: position x `peer_timeout` after the evaluated step fell due on the grid all
//! replicas share), sends only what the log says is due, and records what it sent. Alertmanager
//! workers send the whole state every time; Alertmanager deduplicates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::book::{Alert, AlertBook, AlertStatus, NoticeKind, Update};
use super::cluster::{Peers, Turn};
use super::fleet::Judged;
use super::formats::{alertmanager, notification, Request};
use super::nflog::{Due, Entry, Key, Retention};
use super::retry::{attempt, Attempt, Pace};
use crate::config::{AlertsConfig, ReceiverConfig, ReceiverKind};
use crate::engine::fleet::FleetSnapshot;
use crate::engine::snapshot::Snapshot;

/// What became of one delivery attempt or alert, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertOutcome {
    Sent,
    Retried,
    Failed,
    Dropped,
    /// Not sent: the notification log shows it sent already, by a peer or before a restart.
    Deduplicated,
    /// Not delivered within `alerts.give_up_after`: retrying longer would only bring stale news.
    Expired,
}

impl AlertOutcome {
    const ALL: [AlertOutcome; 6] = [
        AlertOutcome::Sent,
        AlertOutcome::Retried,
        AlertOutcome::Failed,
        AlertOutcome::Dropped,
        AlertOutcome::Deduplicated,
        AlertOutcome::Expired,
    ];

    fn as_str(self) -> &'static str {
        match self {
            AlertOutcome::Sent => "sent",
            AlertOutcome::Retried => "retried",
            AlertOutcome::Failed => "failed",
            AlertOutcome::Dropped => "dropped",
            AlertOutcome::Deduplicated => "deduplicated",
            AlertOutcome::Expired => "expired",
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
    judged: Judged,
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
    pace: Pace,
    give_up_after: Duration,
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
                pace: Pace::new(config.retry_initial_backoff, config.retry_max_backoff),
                give_up_after: config.give_up_after,
                repeat_interval: config.repeat_interval,
                send_resolved: config.send_resolved,
                counters: self.counters.clone(),
                turn: self.peers.turn.clone(),
            };
            self.workers.push(tokio::spawn(worker.run(Inbox::new(rx))));
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
    pub fn observe(&mut self, snapshot: &Arc<Snapshot>, due: Instant) {
        let update = self.book.update(snapshot);
        self.dispatch(update, Judged::Gate(snapshot.clone()), due);
    }

    /// As [`Alerting::observe`], for a fleet: each cluster's alerts, carrying its `cluster` and
    /// `wave`, and one `UpgradeGateWaveBlocked` per wave that may not start.
    pub fn observe_fleet(&mut self, fleet: &Arc<FleetSnapshot>, due: Instant) {
        let update = self.book.update_fleet(fleet);
        self.dispatch(update, Judged::Fleet(fleet.clone()), due);
    }

    fn dispatch(&mut self, update: Update, judged: Judged, due: Instant) {
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
            judged,
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

/// A worker's end of its queue, and the newest job taken out of it while a delivery waited.
struct Inbox {
    rx: mpsc::Receiver<Job>,
    /// The newest job that arrived during a retry: older ones are superseded by it, or, for
    /// Alertmanager, folded into it.
    newer: Option<Job>,
    closed: bool,
}

impl Inbox {
    fn new(rx: mpsc::Receiver<Job>) -> Inbox {
        Inbox {
            rx,
            newer: None,
            closed: false,
        }
    }

    /// The newest job that arrived during a retry, else the next one in order; `None` once the
    /// queue is closed and empty.
    async fn next(&mut self) -> Option<Job> {
        match self.newer.take() {
            Some(job) => Some(job),
            None if self.closed => None,
            None => self.rx.recv().await,
        }
    }

    /// Sleeps until `until`, taking in what arrives meanwhile. Takes nothing when there is no
    /// wait: jobs that queue while the receiver answers are handled in order.
    async fn wait_until(&mut self, until: Instant) {
        while Instant::now() < until {
            if self.closed {
                tokio::time::sleep_until(until).await;
                return;
            }
            tokio::select! {
                biased;
                job = self.rx.recv() => match job {
                    Some(job) => self.keep(job),
                    None => self.closed = true,
                },
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }

    fn keep(&mut self, job: Job) {
        self.newer = Some(match (self.newer.take(), job) {
            (Some(Job::State(mut older)), Job::State(newer)) => {
                older.extend(newer);
                Job::State(older)
            }
            (_, job) => job,
        });
    }
}

/// Whether a delivery ended (delivered, refused, or given up: what the log records) or a newer
/// job made it stale.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    Ended,
    Stale,
}

impl Worker {
    async fn run(mut self, mut inbox: Inbox) {
        while let Some(job) = inbox.next().await {
            match job {
                Job::Evaluation(evaluation) => self.notify(&evaluation, &mut inbox).await,
                Job::State(state) => self.update_alertmanager(state, &mut inbox).await,
            }
        }
    }

    /// Sends Alertmanager the latest version of every alert in `state` and in what queues up
    /// meanwhile (the newest version of each alert winning), until delivered or given up.
    async fn update_alertmanager(&mut self, state: Vec<Alert>, inbox: &mut Inbox) {
        let deadline = Instant::now() + self.give_up_after;
        let mut latest: BTreeMap<String, Alert> = state.into_iter().map(|a| (a.id(), a)).collect();
        loop {
            while let Ok(Job::State(newer)) = inbox.rx.try_recv() {
                latest.extend(newer.into_iter().map(|a| (a.id(), a)));
            }
            let alerts: Vec<Alert> = latest.values().cloned().collect();
            let request = alertmanager(&alerts, self.external_url.as_deref(), self.firing_ttl);
            let stale = |job: &Job| matches!(job, Job::State(_));
            if self.deliver(&request, deadline, inbox, stale).await == Delivery::Ended {
                return;
            }
            if let Some(Job::State(newer)) = inbox.newer.take() {
                latest.extend(newer.into_iter().map(|a| (a.id(), a)));
            }
        }
    }

    /// Waits its turn, then sends what the notification log says is due and records it.
    async fn notify(&mut self, evaluation: &Evaluation, inbox: &mut Inbox) {
        self.turn.wait(evaluation.due).await;
        let name = self.receiver.name.clone();
        let judged = &evaluation.judged;
        let due = self.turn.log.read(|log| {
            log.due(
                &name,
                &evaluation.firing,
                judged.evaluated_at(),
                self.repeat_interval,
            )
        });
        let alerts: Vec<Alert> = due
            .into_iter()
            .map(|d| match d {
                Due::Announce(alert) => alert,
                Due::Resolve(key, entry) => judged.resolved(key.announced(&entry)),
            })
            .collect();
        for (id, status) in &evaluation.changes {
            if !alerts.iter().any(|a| &a.id() == id && a.status == *status) {
                tracing::info!(receiver = %name, alert = %id, status = ?status, "already notified (by a peer, before a restart, or while the receiver was failing); not sent again");
                self.counters.record(&name, AlertOutcome::Deduplicated);
            }
        }
        let deadline = evaluation.due + self.give_up_after;
        for alert in alerts {
            if alert.status == AlertStatus::Firing || self.send_resolved {
                let request = notification(&self.receiver, &alert, self.external_url.as_deref());
                let stale = |job: &Job| match job {
                    Job::Evaluation(newer) => contradicts(newer, &alert),
                    Job::State(_) => false,
                };
                if self.deliver(&request, deadline, inbox, stale).await == Delivery::Stale {
                    tracing::info!(receiver = %name, alert = %alert.id(), status = ?alert.status, "superseded by a newer state before it could be delivered; not sent");
                    continue;
                }
            }
            // Recorded once delivered, refused for good or given up: sending it again would not
            // help. A resolution that is not sent is recorded too, so the next incident is new.
            self.turn
                .log
                .record(Key::of(&name, &alert), Entry::of(&alert));
        }
    }

    /// Sends at the receiver's pace until delivered, refused, or given up at `deadline` (each
    /// notice is tried at least once), logging and counting the outcome. Returns early, unsent,
    /// when a job that arrived while it waited makes `request` stale.
    async fn deliver(
        &mut self,
        request: &Request,
        deadline: Instant,
        inbox: &mut Inbox,
        stale: impl Fn(&Job) -> bool,
    ) -> Delivery {
        let name = self.receiver.name.clone();
        loop {
            inbox.wait_until(self.pace.not_before()).await;
            if inbox.newer.as_ref().is_some_and(&stale) {
                return Delivery::Stale;
            }
            let url = self.receiver.url.expose();
            match attempt(&self.client, url, request).await {
                Attempt::Delivered(status) => {
                    tracing::debug!(receiver = %name, status = status.as_u16(), "alert delivered");
                    self.pace.answered();
                    self.counters.record(&name, AlertOutcome::Sent);
                    return Delivery::Ended;
                }
                Attempt::Refused { status, body } => {
                    tracing::error!(receiver = %name, status = status.as_u16(), body = %body, "alert rejected by the receiver; giving up on it");
                    self.pace.answered();
                    self.counters.record(&name, AlertOutcome::Failed);
                    return Delivery::Ended;
                }
                Attempt::Retry { why, retry_after } => {
                    self.pace.failed(retry_after);
                    if self.pace.not_before() >= deadline {
                        tracing::error!(receiver = %name, error = %why, give_up_after = %humantime::format_duration(self.give_up_after), "alert not delivered in time; giving up on it");
                        self.counters.record(&name, AlertOutcome::Expired);
                        return Delivery::Ended;
                    }
                    tracing::warn!(receiver = %name, error = %why, "alert delivery failed; will retry");
                    self.counters.record(&name, AlertOutcome::Retried);
                }
            }
        }
    }
}

/// Whether the newer evaluation says otherwise than `alert`: a firing alert that is no longer
/// firing, or a resolved one that fires again.
fn contradicts(newer: &Evaluation, alert: &Alert) -> bool {
    let id = alert.id();
    let firing = newer.firing.iter().any(|a| a.id() == id);
    firing != (alert.status == AlertStatus::Firing)
}
