//! Delivery: the [`Notifier`] trait every integration implements, and one delivery worker
//! per integration instance that drains its queue through a rate limiter (governor), retries
//! with backoff and jitter, merges overflow while rate limited, and dead-letters what
//! cannot be delivered.

pub mod email;
pub mod http;
pub mod limiter;
pub mod log;
pub mod slack;
pub mod webhook;

use crate::alert::{now, Status};
use crate::config::{Config, DeliveryConfig, RateLimit};
use crate::metrics::{integration_labels, Metrics};
use crate::store::{worker_key, Commit, DeliveryState, DispatchOp, Notification, Store};
use crate::template::Templates;
use futures::future::BoxFuture;
use limiter::Limiter;
use rand::Rng;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

/// Why an attempt failed, for metrics (Alertmanager's reason labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    ClientError,
    ServerError,
    RateLimited,
    AuthError,
    Network,
    Timeout,
    Other,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientError => "clientError",
            Self::ServerError => "serverError",
            Self::RateLimited => "rateLimited",
            Self::AuthError => "authError",
            Self::Network => "network",
            Self::Timeout => "contextDeadlineExceeded",
            Self::Other => "other",
        }
    }

    /// Classify an HTTP status code.
    pub fn from_status(code: u16) -> Self {
        match code {
            401 | 403 => Self::AuthError,
            429 => Self::RateLimited,
            400..=499 => Self::ClientError,
            500..=599 => Self::ServerError,
            _ => Self::Other,
        }
    }
}

/// A failed delivery attempt.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotifyError {
    /// Worth trying again (network errors, 5xx, 429), optionally not before `retry_after`.
    #[error("{message}")]
    Retryable {
        message: String,
        reason: FailureReason,
        retry_after: Option<Duration>,
    },
    /// Will never succeed as is (4xx, SMTP 5xx, rendering errors).
    #[error("{message}")]
    Permanent {
        message: String,
        reason: FailureReason,
    },
}

impl NotifyError {
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::Retryable { reason, .. } | Self::Permanent { reason, .. } => *reason,
        }
    }

    pub fn permanent(reason: FailureReason, message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
            reason,
        }
    }

    pub fn retryable(reason: FailureReason, message: impl Into<String>) -> Self {
        Self::Retryable {
            message: message.into(),
            reason,
            retry_after: None,
        }
    }
}

/// Render a user template of an integration; a failure is permanent (retrying cannot fix
/// a template) and names the field.
pub(crate) fn render(
    templates: &Templates,
    what: &str,
    source: &str,
    msg: &crate::alert::WebhookMessage,
) -> Result<String, NotifyError> {
    templates
        .render(source, msg)
        .map_err(|e| NotifyError::permanent(FailureReason::Other, format!("{what}: {e}")))
}

/// One integration instance (an entry of a receiver's `*_configs`).
pub trait Notifier: Send + Sync {
    /// Integration type: `email`, `slack`, `webhook`, `log`.
    fn kind(&self) -> &'static str;
    /// Whether resolved alerts are sent (the dispatcher filters on it).
    fn send_resolved(&self) -> bool;
    /// Deliver one notification.
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), NotifyError>>;
}

/// One configured integration instance, ready for a delivery worker.
pub struct Integration {
    /// Worker key: `receiver/kind[index]`.
    pub key: String,
    pub notifier: Arc<dyn Notifier>,
    pub rate_limit: RateLimit,
}

/// Build every integration of `cfg`.
pub fn build_notifiers(
    cfg: &Config,
    templates: &Arc<Templates>,
) -> Result<Vec<Integration>, String> {
    let mut out: Vec<Integration> = Vec::new();
    let mut push = |key: String, notifier: Arc<dyn Notifier>, rate_limit: RateLimit| {
        out.push(Integration {
            key,
            notifier,
            rate_limit,
        })
    };
    for r in &cfg.receivers {
        let name = &r.name.value;
        for (i, c) in r.email_configs.iter().enumerate() {
            let n = email::EmailNotifier::new(c, cfg, templates.clone())
                .map_err(|e| format!("receiver {name:?} email_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "email", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(email::DEFAULT_RATE_LIMIT),
            );
        }
        for (i, c) in r.slack_configs.iter().enumerate() {
            let n = slack::SlackNotifier::new(c, templates.clone())
                .map_err(|e| format!("receiver {name:?} slack_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "slack", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(slack::DEFAULT_RATE_LIMIT),
            );
        }
        for (i, c) in r.webhook_configs.iter().enumerate() {
            let n = webhook::WebhookNotifier::new(c)
                .map_err(|e| format!("receiver {name:?} webhook_configs[{i}]: {e}"))?;
            push(
                worker_key(name, "webhook", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(webhook::DEFAULT_RATE_LIMIT),
            );
        }
        for (i, c) in r.log_configs.iter().enumerate() {
            let n = log::LogNotifier::new(c, templates.clone());
            push(
                worker_key(name, "log", i),
                Arc::new(n),
                c.rate_limit.unwrap_or(log::DEFAULT_RATE_LIMIT),
            );
        }
    }
    Ok(out)
}

/// What the admin API shows about one worker.
#[derive(Debug, Clone, Serialize, Default)]
pub struct WorkerStatus {
    pub receiver: String,
    pub integration: String,
    pub index: usize,
    pub queue_depth: usize,
    pub rate_limit: Option<RateLimitView>,
    /// True while the worker is waiting for the limiter.
    pub rate_limited: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    /// Consecutive failed attempts of the notification at the head of the queue.
    pub retrying_attempts: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RateLimitView {
    pub messages: u32,
    pub per: String,
    pub burst: u32,
}

/// What a worker's queue holds. The full notification (with its alert snapshot) stays in
/// the store and is read back just before each attempt, so a long backlog behind a slow
/// rate limit costs little memory.
#[derive(Debug, Clone)]
struct Queued {
    id: u64,
    group_key: String,
    attempts: u32,
    test: bool,
}

impl Queued {
    fn of(n: &Notification) -> Self {
        Queued {
            id: n.id,
            group_key: n.group_key.clone(),
            attempts: n.attempts,
            test: n.test,
        }
    }
}

struct WorkerHandle {
    tx: mpsc::UnboundedSender<Queued>,
    status: Arc<Mutex<WorkerStatus>>,
    join: tokio::task::JoinHandle<()>,
}

/// All delivery workers; rebuilt on config reload.
pub struct Hub {
    workers: Mutex<HashMap<String, WorkerHandle>>,
    send_resolved: Mutex<HashMap<String, bool>>,
    store: Store,
    metrics: Arc<Metrics>,
    stop_tx: Mutex<watch::Sender<bool>>,
    /// Set while `restart` swaps the workers.
    restarting: std::sync::atomic::AtomicBool,
    orphans: Mutex<Vec<(String, Queued)>>,
}

impl Hub {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Hub {
            workers: Mutex::new(HashMap::new()),
            send_resolved: Mutex::new(HashMap::new()),
            store,
            metrics,
            stop_tx: Mutex::new(watch::channel(false).0),
            restarting: std::sync::atomic::AtomicBool::new(false),
            orphans: Mutex::new(Vec::new()),
        }
    }

    /// Whether the integration with this worker key sends resolved notifications.
    pub fn send_resolved(&self, key: &str) -> bool {
        lock(&self.send_resolved).get(key).copied().unwrap_or(true)
    }

    /// Stop the current workers (each finishes its in-flight attempt) and start new ones
    /// for `notifiers`, loading their open notifications from the store.
    pub async fn restart(
        &self,
        notifiers: Vec<Integration>,
        delivery: &DeliveryConfig,
    ) -> Result<(), crate::store::StoreError> {
        self.restarting
            .store(true, std::sync::atomic::Ordering::Release);
        self.stop().await;
        // Barrier: the stopped workers' unawaited state updates are applied (the writer
        // works in order) before the open notifications are read back.
        self.store.commit(Commit::default()).await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        *lock(&self.stop_tx) = stop_tx;
        let mut open: HashMap<String, Vec<Notification>> = HashMap::new();
        for n in self.store.open_notifications()? {
            open.entry(n.worker_key()).or_default().push(n);
        }
        let mut workers = HashMap::new();
        let mut send_resolved = HashMap::new();
        for Integration {
            key,
            notifier,
            rate_limit: rl,
        } in notifiers
        {
            let (tx, rx) = mpsc::unbounded_channel();
            let (receiver, integration, index) = split_worker_key(&key);
            let status = Arc::new(Mutex::new(WorkerStatus {
                receiver,
                integration,
                index,
                rate_limit: Some(RateLimitView {
                    messages: rl.messages,
                    per: rl.per.to_string(),
                    burst: rl.burst.unwrap_or(rl.messages),
                }),
                ..Default::default()
            }));
            let queue: VecDeque<Queued> = open
                .remove(&key)
                .unwrap_or_default()
                .iter()
                .map(Queued::of)
                .collect();
            send_resolved.insert(key.clone(), notifier.send_resolved());
            let worker = Worker {
                key: key.clone(),
                notifier,
                limiter: Limiter::new(&rl),
                queue,
                rx,
                store: self.store.clone(),
                metrics: self.metrics.clone(),
                status: status.clone(),
                delivery: delivery.clone(),
                stop: stop_rx.clone(),
                unmerged: true,
                merged: HashMap::new(),
            };
            let join = tokio::spawn(worker.run());
            workers.insert(key, WorkerHandle { tx, status, join });
        }
        // Open notifications whose integration no longer exists become dead letters.
        let mut commit = Commit::default();
        for (key, ns) in open {
            for mut n in ns {
                n.state = DeliveryState::Dead;
                n.updated_at = now();
                n.last_error = Some(format!("integration {key} is no longer configured"));
                commit
                    .dispatch
                    .push(DispatchOp::PutNotification(Box::new(n)));
            }
        }
        if !commit.dispatch.is_empty() {
            self.store.commit(commit).await?;
        }
        {
            let mut w = lock(&self.workers);
            *w = workers;
            // Notifications queued while the workers were being replaced (a worker skips
            // any that the store already shows as finished, so a double hand-over is harmless).
            for (key, q) in lock(&self.orphans).drain(..) {
                if let Some(h) = w.get(&key) {
                    lock(&h.status).queue_depth += 1;
                    let _ = h.tx.send(q);
                }
            }
        }
        *lock(&self.send_resolved) = send_resolved;
        self.restarting
            .store(false, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Hand a durably queued notification to its worker. Returns false when no worker has
    /// that key (the notification stays in the store).
    pub fn enqueue(&self, n: Notification) -> bool {
        let key = n.worker_key();
        let q = Queued::of(&n);
        let workers = lock(&self.workers);
        if let Some(w) = workers.get(&key) {
            lock(&w.status).queue_depth += 1;
            match w.tx.send(q) {
                Ok(()) => return true,
                Err(e) => lock(&self.orphans).push((key, e.0)),
            }
        } else if self.restarting.load(std::sync::atomic::Ordering::Acquire) {
            // Workers are being replaced: hand it to the new ones once they exist.
            lock(&self.orphans).push((key, q));
            return true;
        }
        false
    }

    pub fn has_worker(&self, key: &str) -> bool {
        lock(&self.workers).contains_key(key)
    }

    pub fn statuses(&self) -> Vec<WorkerStatus> {
        let mut v: Vec<WorkerStatus> = lock(&self.workers)
            .values()
            .map(|w| lock(&w.status).clone())
            .collect();
        v.sort_by(|a, b| {
            (&a.receiver, &a.integration, a.index).cmp(&(&b.receiver, &b.integration, b.index))
        });
        v
    }

    pub fn running(&self) -> bool {
        let w = lock(&self.workers);
        w.values().all(|h| !h.join.is_finished())
    }

    /// Stop all workers after their in-flight attempt.
    pub async fn stop(&self) {
        let _ = lock(&self.stop_tx).send(true);
        let handles: Vec<WorkerHandle> = lock(&self.workers).drain().map(|(_, h)| h).collect();
        for h in handles {
            let _ = tokio::time::timeout(Duration::from_secs(30), h.join).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn split_worker_key(key: &str) -> (String, String, usize) {
    // receiver/kind[index]; the receiver name may itself contain '/'.
    let (rest, idx) = key.rsplit_once('[').unwrap_or((key, "0]"));
    let index = idx.trim_end_matches(']').parse().unwrap_or(0);
    let (receiver, kind) = rest.rsplit_once('/').unwrap_or((rest, ""));
    (receiver.to_string(), kind.to_string(), index)
}

struct Worker {
    key: String,
    notifier: Arc<dyn Notifier>,
    limiter: Limiter,
    queue: VecDeque<Queued>,
    rx: mpsc::UnboundedReceiver<Queued>,
    /// Notifications changed by a merge whose stored copy may not be written yet.
    merged: HashMap<u64, Notification>,
    store: Store,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<WorkerStatus>>,
    delivery: DeliveryConfig,
    stop: watch::Receiver<bool>,
    /// New notifications arrived since the last merge pass.
    unmerged: bool,
}

/// Exponential backoff (×1.5 from `initial`, capped at `max`) with ±50 % jitter.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let base = initial.as_secs_f64() * 1.5f64.powi(attempt.saturating_sub(1).min(60) as i32);
    let base = base.min(max.as_secs_f64());
    let jitter = rand::rng().random_range(0.5..1.5);
    Duration::from_secs_f64((base * jitter).min(max.as_secs_f64()))
}

impl Worker {
    async fn run(mut self) {
        let labels = integration_labels(&self.status_receiver(), self.notifier.kind());
        self.publish_depth(&labels);
        loop {
            if *self.stop.borrow() {
                return;
            }
            while let Ok(n) = self.rx.try_recv() {
                self.queue.push_back(n);
                self.unmerged = true;
            }
            if self.queue.is_empty() {
                tokio::select! {
                    n = self.rx.recv() => match n {
                        Some(n) => {
                            self.queue.push_back(n);
                            self.unmerged = true;
                        }
                        None => return,
                    },
                    _ = self.stop.changed() => return,
                }
                continue;
            }
            // Wait for a send slot; while waiting, fold queued notifications of the same
            // group together (also those that arrive during the wait).
            let mut limited = false;
            while let Some(wait) = self.limiter.try_acquire() {
                if !limited {
                    limited = true;
                    self.metrics.rate_limited_waits.get_or_create(&labels).inc();
                    lock(&self.status).rate_limited = true;
                }
                self.merge_overflow(&labels);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {},
                    _ = self.stop.changed() => return,
                }
            }
            if limited {
                self.merge_overflow(&labels);
                lock(&self.status).rate_limited = false;
            }
            let Some(q) = self.queue.pop_front() else {
                continue;
            };
            let mut n = match self.load(q.id) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    // deleted meanwhile (retention): nothing to deliver
                    self.publish_depth(&labels);
                    continue;
                }
                Err(e) => {
                    tracing::error!(worker = %self.key, id = q.id, error = %e, "cannot read queued notification; retrying");
                    self.queue.push_front(q);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {},
                        _ = self.stop.changed() => return,
                    }
                    continue;
                }
            };
            // Replayed, merged or finished through the admin API meanwhile.
            if !n.state.is_open() {
                self.publish_depth(&labels);
                continue;
            }
            // the stored record may lag behind our own unflushed updates
            n.attempts = n.attempts.max(q.attempts);
            let started = std::time::Instant::now();
            let result = self.notifier.send(&n).await;
            self.metrics
                .delivery_latency
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            let t = now();
            n.attempts += 1;
            n.updated_at = t;
            let mut wait = None;
            match result {
                Ok(()) => {
                    n.state = DeliveryState::Delivered;
                    n.delivered_at = Some(t);
                    n.last_error = None;
                    self.metrics.notifications_sent.get_or_create(&labels).inc();
                    let mut s = lock(&self.status);
                    s.last_success = Some(t);
                    s.retrying_attempts = 0;
                }
                Err(e) => {
                    let reason = e.reason();
                    let mut rl = labels.clone();
                    rl.push(("reason", reason.as_str().to_string()));
                    self.metrics
                        .notification_attempts_failed
                        .get_or_create(&rl)
                        .inc();
                    let too_old = t - n.created_at > self.delivery.max_age.0;
                    let msg = e.to_string();
                    tracing::warn!(worker = %self.key, id = n.id, attempts = n.attempts, error = %msg, "delivery attempt failed");
                    {
                        let mut s = lock(&self.status);
                        s.last_error = Some(msg.clone());
                        s.last_error_at = Some(t);
                        s.retrying_attempts = n.attempts;
                    }
                    match e {
                        NotifyError::Retryable { retry_after, .. } if !too_old => {
                            n.state = DeliveryState::Failed;
                            n.last_error = Some(msg);
                            let b = backoff(
                                n.attempts,
                                self.delivery.backoff_initial.0,
                                self.delivery.backoff_max.0,
                            );
                            wait = Some(
                                retry_after
                                    .map_or(b, |r| r.max(b.min(r + Duration::from_millis(250)))),
                            );
                        }
                        _ => {
                            n.state = DeliveryState::Dead;
                            n.last_error = Some(if too_old {
                                format!(
                                    "gave up after {} attempts (max_age {}): {msg}",
                                    n.attempts, self.delivery.max_age
                                )
                            } else {
                                msg
                            });
                            self.metrics.notifications_failed.get_or_create(&rl).inc();
                            tracing::error!(worker = %self.key, id = n.id, "notification moved to dead letters");
                        }
                    }
                }
            }
            let commit = Commit {
                dispatch: vec![DispatchOp::PutNotification(Box::new(n.clone()))],
                ..Default::default()
            };
            // Recorded without waiting for the flush: a crash before it lands means this
            // notification is sent again (at-least-once), never lost.
            if let Err(e) = self.store.commit_nowait(commit) {
                tracing::error!(worker = %self.key, error = %e, "cannot record delivery state");
            }
            if n.state == DeliveryState::Failed {
                self.queue.push_front(Queued::of(&n));
            }
            self.publish_depth(&labels);
            if let Some(w) = wait {
                tokio::select! {
                    _ = tokio::time::sleep(w) => {},
                    _ = self.stop.changed() => return,
                }
            }
        }
    }

    fn status_receiver(&self) -> String {
        lock(&self.status).receiver.clone()
    }

    fn publish_depth(&self, labels: &[(&'static str, String)]) {
        let depth = self.queue.len() + self.rx.len();
        let index = {
            let mut st = lock(&self.status);
            st.queue_depth = depth;
            st.index
        };
        // A gauge per integration instance (counters may add up across instances, a
        // depth may not).
        let mut labels = labels.to_vec();
        labels.push(("index", index.to_string()));
        self.metrics
            .queue_depth
            .get_or_create(&labels)
            .set(depth as i64);
    }

    /// While rate limited, fold queued notifications of the same group into the newest
    /// one: the newest snapshot already carries the group's current state, and resolved
    /// alerts only the older ones mention are carried over, so nothing is lost and the
    /// destination gets one message per group instead of a backlog.
    /// The notification to send for a queued id: a merged version if there is one, else
    /// the stored record.
    fn load(&mut self, id: u64) -> Result<Option<Notification>, crate::store::StoreError> {
        match self.merged.remove(&id) {
            Some(n) => Ok(Some(n)),
            None => self.store.notification(id),
        }
    }

    /// While rate limited, fold queued notifications of the same group into the newest
    /// one: the newest snapshot already carries the group's current state, and resolved
    /// alerts only the older ones mention are carried over, so nothing is lost and the
    /// destination gets one message per group instead of a backlog.
    fn merge_overflow(&mut self, labels: &Vec<(&'static str, String)>) {
        while let Ok(q) = self.rx.try_recv() {
            self.queue.push_back(q);
            self.unmerged = true;
        }
        // Nothing new since the last pass: the queue is already merged.
        if !self.unmerged || self.queue.len() < 2 {
            return;
        }
        self.unmerged = false;
        // Only notifications not tried yet are merged (a retrying one keeps its place).
        let eligible = |q: &Queued| q.attempts == 0 && !q.test;
        let mut newest: HashMap<String, usize> = HashMap::new();
        let mut count: HashMap<String, usize> = HashMap::new();
        for (i, q) in self.queue.iter().enumerate() {
            if eligible(q) {
                newest.insert(q.group_key.clone(), i);
                *count.entry(q.group_key.clone()).or_default() += 1;
            }
        }
        if count.values().all(|c| *c < 2) {
            return;
        }
        let items: Vec<Queued> = self.queue.drain(..).collect();
        let mut absorbed: HashMap<usize, Vec<Queued>> = HashMap::new();
        let mut keep: Vec<(usize, Queued)> = Vec::with_capacity(items.len());
        for (i, q) in items.into_iter().enumerate() {
            match newest.get(&q.group_key) {
                Some(&last) if last != i && eligible(&q) => {
                    absorbed.entry(last).or_default().push(q)
                }
                _ => keep.push((i, q)),
            }
        }
        let mut commit = Commit::default();
        let mut merged_count = 0u64;
        let t = now();
        for (i, q) in keep {
            if let Some(olds) = absorbed.remove(&i) {
                match self.load(q.id) {
                    Ok(Some(mut n)) => {
                        let olds: Vec<Notification> = olds
                            .iter()
                            .filter_map(|o| self.load(o.id).ok().flatten())
                            .filter(|o| o.state.is_open())
                            .collect();
                        merge_into(&mut n, &olds);
                        for mut o in olds {
                            merged_count += 1;
                            o.state = DeliveryState::Merged;
                            o.updated_at = t;
                            o.last_error = Some(format!("merged into notification {}", n.id));
                            commit
                                .dispatch
                                .push(DispatchOp::PutNotification(Box::new(o)));
                        }
                        commit
                            .dispatch
                            .push(DispatchOp::PutNotification(Box::new(n.clone())));
                        self.merged.insert(n.id, n);
                    }
                    // The newest cannot be read: leave the older ones queued as they were.
                    _ => self.queue.extend(olds),
                }
            }
            self.queue.push_back(q);
        }
        if merged_count > 0 {
            self.metrics
                .notifications_merged
                .get_or_create(labels)
                .inc_by(merged_count);
            tracing::info!(worker = %self.key, merged = merged_count, "rate limited: merged queued notifications of the same groups");
            if let Err(e) = self.store.commit_nowait(commit) {
                tracing::error!(worker = %self.key, error = %e, "cannot record merged notifications");
            }
        }
    }
}

/// Fold older notifications of a group into the newest `n`: resolved alerts only the older
/// ones carry are added, and when `n` continues an older one's email thread it takes over
/// that message's id, so the thread root is a message that was actually sent.
fn merge_into(n: &mut Notification, olds: &[Notification]) {
    let mut present: HashSet<String> = n
        .message
        .alerts
        .iter()
        .map(|a| a.fingerprint.clone())
        .collect();
    for o in olds {
        for a in &o.message.alerts {
            if a.status == Status::Resolved && present.insert(a.fingerprint.clone()) {
                n.message.alerts.push(a.clone());
            }
        }
        if n.in_reply_to.as_deref() == Some(o.message_id.as_str()) {
            n.message_id = o.message_id.clone();
            n.in_reply_to = o.in_reply_to.clone();
            n.references = o.references.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let i = Duration::from_millis(500);
        let m = Duration::from_secs(60);
        assert!(backoff(1, i, m) <= Duration::from_millis(750));
        assert!(backoff(1, i, m) >= Duration::from_millis(250));
        assert!(backoff(30, i, m) <= m);
        assert!(backoff(30, i, m) >= Duration::from_secs(30));
    }

    #[test]
    fn merge_keeps_resolved_alerts_and_the_thread_root() {
        use crate::alert::{LabelSet, WebhookAlert, WebhookMessage};
        let wa = |fp: &str, status: Status| WebhookAlert {
            status,
            labels: LabelSet::new(),
            annotations: LabelSet::new(),
            starts_at: String::new(),
            ends_at: String::new(),
            generator_url: String::new(),
            fingerprint: fp.into(),
        };
        let note = |id: u64, alerts: Vec<WebhookAlert>| {
            let msg = WebhookMessage::new("r", alerts, LabelSet::new(), "http://x", "g", "r");
            Notification::pending(id, ("r", "slack", 0), msg, format!("<{id}@x>"), now())
        };
        let old = note(1, vec![wa("a", Status::Firing), wa("b", Status::Resolved)]);
        let mut newest = note(2, vec![wa("a", Status::Firing), wa("c", Status::Firing)]);
        newest.in_reply_to = Some("<1@x>".into());
        merge_into(&mut newest, &[old]);
        let fps: Vec<&str> = newest
            .message
            .alerts
            .iter()
            .map(|a| a.fingerprint.as_str())
            .collect();
        assert_eq!(
            fps,
            ["a", "c", "b"],
            "the resolved alert only the older one had is kept"
        );
        assert_eq!(
            newest.message_id, "<1@x>",
            "the merged message takes over the unsent thread root"
        );
        assert_eq!(newest.in_reply_to, None);
    }

    #[test]
    fn worker_keys_split() {
        assert_eq!(
            split_worker_key("team/ops/slack[2]"),
            ("team/ops".into(), "slack".into(), 2)
        );
    }
}
