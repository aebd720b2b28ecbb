//! The delivery worker of one integration instance: drains its queue through a rate
//! limiter (governor), retries with backoff and jitter, merges overflow of the same group
//! while rate limited, and dead-letters what cannot be delivered. Its settings (notifier,
//! rate limit, delivery policy) are swapped in place by a reload.

use super::limiter::Limiter;
use super::{lock, NotifyError};
use crate::alert::{now, Digest, Status};
use crate::config::{DeliveryConfig, RateLimit};
use crate::metrics::{integration_labels, Labels, Metrics};
use crate::notify::Notifier;
use crate::store::{
    Commit, DeliveryRecord, DeliveryState, DispatchOp, MessageRef, Notification, Store,
};
use futures::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

/// What the admin API shows about one worker.
#[derive(Debug, Clone, Serialize, Default)]
pub struct WorkerStatus {
    pub receiver: String,
    pub integration: String,
    pub index: usize,
    pub queue_depth: usize,
    /// When the notification at the head of the queue (the next to be tried) was created:
    /// how long the oldest waiting notification has waited, give or take merges.
    #[serde(with = "time::serde::rfc3339::option")]
    pub queue_head_created_at: Option<OffsetDateTime>,
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

impl RateLimitView {
    pub fn of(rl: &RateLimit) -> Self {
        RateLimitView {
            messages: rl.messages,
            per: rl.per.to_string(),
            burst: rl.burst.unwrap_or(rl.messages),
        }
    }
}

/// Labels of an integration instance's queue-depth gauge (a depth per instance: counters
/// may add up across instances, a depth may not).
pub(crate) fn depth_labels(labels: &[(&'static str, String)], index: usize) -> Labels {
    let mut labels = labels.to_vec();
    labels.push(("index", index.to_string()));
    labels
}

/// What a worker's queue holds: the id, and on arrival the notification itself. The worker
/// keeps up to [`MAX_BODIES`] notifications in memory; the others stay in the store and are
/// read back just before their attempt, so a long backlog behind a slow rate limit costs
/// little memory while a burst to a fast destination is not read back one by one.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub id: u64,
    pub group_key: String,
    pub attempts: u32,
    /// When the notification was created (queued by the dispatcher).
    pub created_at: OffsetDateTime,
    /// Not a test send and not a digest: may be merged into a newer notification of its
    /// group, or carried by a digest.
    pub foldable: bool,
    /// The notification as stored, when the sender had it at hand (taken by the worker).
    pub body: Option<Box<Notification>>,
}

impl Queued {
    pub fn of(n: &Notification) -> Self {
        Queued {
            id: n.id,
            group_key: n.group_key.clone(),
            attempts: n.attempts,
            created_at: n.created_at,
            foldable: !n.test && n.message.digest.is_none(),
            body: None,
        }
    }

    /// Queue `n`, carrying it along (it has just been stored as it is).
    pub fn with_body(n: Notification) -> Self {
        let mut q = Queued::of(&n);
        q.body = Some(Box::new(n));
        q
    }

    /// Not tried yet and foldable (a retrying notification keeps its place).
    fn eligible(&self) -> bool {
        self.attempts == 0 && self.foldable
    }
}

/// Most notifications (of different groups) one worker has in flight at once, when its
/// rate limit has that many slots free: a fast destination is not held to one request at
/// a time, and a finished attempt makes room for the next at once. (32 → 64 cut the CPU per
/// notification of `cargo bench --bench dispatch` by about a tenth: more requests per wakeup.
/// A rate-limited destination never sees more than its limit allows.)
const MAX_IN_FLIGHT: usize = 64;

/// A finished attempt: the notification, what the destination said, how long it took.
pub(crate) struct Done {
    n: Notification,
    result: Result<super::Delivered, NotifyError>,
    edits: bool,
    elapsed: Duration,
}

/// One attempt in flight.
type Attempt = futures::future::BoxFuture<'static, Done>;

/// Pending record writes a worker remembers before it forgets those already done.
const MAX_UNRECORDED: usize = 1024;

/// Queued notifications a worker holds in memory (beyond them, ids only).
const MAX_BODIES: usize = 4096;

/// What a worker delivers with. A reload swaps it in place: the worker keeps its queue and,
/// unless the rate limit changed, its limiter state (a reload never floods a destination).
pub(crate) struct Settings {
    pub notifier: Arc<dyn Notifier>,
    pub rate_limit: RateLimit,
    pub digest_threshold: usize,
    pub delivery: DeliveryConfig,
}

/// What a stopped worker leaves behind: ids it had not finished, merged versions of some
/// of them, and its channel (with whatever arrived after it stopped).
pub(crate) struct Leftover {
    pub queue: VecDeque<Queued>,
    pub merged: HashMap<u64, Notification>,
    pub rx: mpsc::UnboundedReceiver<Queued>,
}

/// The delivery loop of one integration instance.
pub(crate) struct Worker {
    pub key: String,
    pub settings: watch::Receiver<Arc<Settings>>,
    pub current: Arc<Settings>,
    pub limiter: Limiter,
    pub queue: VecDeque<Queued>,
    pub rx: mpsc::UnboundedReceiver<Queued>,
    /// Notifications held in memory: as queued (up to [`MAX_BODIES`]), or changed by a
    /// merge whose stored copy may not be written yet.
    pub merged: HashMap<u64, Notification>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Mutex<WorkerStatus>>,
    /// Set by the hub to stop this worker (after its in-flight attempt).
    pub stop: watch::Receiver<bool>,
    /// New notifications arrived since the last merge pass.
    pub unmerged: bool,
    /// Message references this worker wrote (the store may not show them yet).
    pub refs: HashMap<Vec<u8>, MessageRef>,
    /// Per group, the write of its last recorded attempt, until it is known to be written:
    /// a group's next notification is sent only after that, so a crash repeats at most the
    /// one notification per group that was in flight.
    pub unrecorded: HashMap<String, crate::store::Written>,
    /// The queue-depth and queue-head gauges of this worker, by its index.
    pub queue_gauges: Option<(usize, QueueGauges)>,
}

/// A worker's queue gauges (`notification_queue_depth` and
/// `notification_queue_head_created_timestamp_seconds`).
pub(crate) struct QueueGauges {
    depth: prometheus_client::metrics::gauge::Gauge,
    head_created: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
}

/// Exponential backoff (×1.5 from `initial`, capped at `max`) with ±50 % jitter.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let base = initial.as_secs_f64() * 1.5f64.powi(attempt.saturating_sub(1).min(60) as i32);
    let base = base.min(max.as_secs_f64());
    let jitter = rand::rng().random_range(0.5..1.5);
    Duration::from_secs_f64((base * jitter).min(max.as_secs_f64()))
}

impl Worker {
    /// Deliver until stopped; an attempt in flight is always finished and recorded first,
    /// so a notification is never sent by two workers.
    pub async fn run(mut self) -> Leftover {
        self.serve().await;
        Leftover {
            queue: self.queue,
            merged: self.merged,
            rx: self.rx,
        }
    }

    /// Take a reload's new settings; a changed rate limit starts from the old limiter's
    /// recent sends instead of a fresh burst.
    fn refresh_settings(&mut self) {
        let new = self.settings.borrow_and_update().clone();
        if Arc::ptr_eq(&new, &self.current) {
            return;
        }
        if new.rate_limit != self.current.rate_limit {
            self.limiter = Limiter::carry_over(&new.rate_limit, &self.limiter);
        }
        self.current = new;
    }

    async fn serve(&mut self) {
        let labels = integration_labels(&self.status_receiver(), self.current.notifier.kind());
        let reasons = super::FailureReason::ALL.map(super::FailureReason::as_str);
        self.metrics.init_integration(&labels, &reasons);
        self.publish_depth(&labels);
        // Attempts in flight (at most MAX_IN_FLIGHT, one per group, so a group's
        // notifications still go out in order); a finished one frees its slot at once.
        let mut inflight: FuturesUnordered<Attempt> = FuturesUnordered::new();
        let mut busy: HashSet<String> = HashSet::new();
        // After a failure: the backoff (or the destination's Retry-After) before the next start.
        let mut paused_until: Option<tokio::time::Instant> = None;
        // The hub dropped its sender: deliver what is queued, then end.
        let mut closed = false;
        loop {
            // stopped, or the hub is gone (a dropped sender would wake every select at once)
            if *self.stop.borrow() || self.stop.has_changed().is_err() {
                // Whatever is in flight is finished and recorded first.
                while let Some(done) = inflight.next().await {
                    self.finish(done, &mut busy, &labels);
                }
                return;
            }
            self.refresh_settings();
            while let Ok(q) = self.rx.try_recv() {
                self.accept(q);
            }
            if let Some(until) = paused_until {
                if tokio::time::Instant::now() < until {
                    tokio::select! {
                        Some(done) = inflight.next(), if !inflight.is_empty() => {
                            paused_until = paused_until.max(self.finish(done, &mut busy, &labels));
                        }
                        _ = tokio::time::sleep_until(until) => paused_until = None,
                        _ = self.stop.changed() => {},
                    }
                    continue;
                }
                paused_until = None;
            }
            let startable = inflight.len() < MAX_IN_FLIGHT
                && self.queue.iter().any(|q| !busy.contains(&q.group_key));
            if !startable {
                if inflight.is_empty() {
                    // nothing queued: wait for work
                    tokio::select! {
                        q = self.rx.recv() => match q {
                            Some(q) => self.accept(q),
                            None => return,
                        },
                        _ = self.stop.changed() => {},
                    }
                } else {
                    tokio::select! {
                        Some(done) = inflight.next() => {
                            paused_until = paused_until.max(self.finish(done, &mut busy, &labels));
                        }
                        q = self.rx.recv(), if !closed => match q {
                            Some(q) => self.accept(q),
                            None => closed = true,
                        },
                        _ = self.stop.changed() => {},
                    }
                }
                continue;
            }
            if let Some(wait) = self.limiter.try_acquire() {
                if inflight.is_empty() {
                    // Rate limited with nothing in flight: wait for a send slot, folding
                    // queued notifications of the same group together meanwhile.
                    if !self.wait_for_slot(wait, &labels).await {
                        continue;
                    }
                } else {
                    tokio::select! {
                        Some(done) = inflight.next() => {
                            paused_until = paused_until.max(self.finish(done, &mut busy, &labels));
                        }
                        _ = tokio::time::sleep(wait) => {},
                        _ = self.stop.changed() => {},
                    }
                    continue;
                }
            }
            // A send slot is ours: start the first queued notification of an idle group.
            let Some(pos) = self.queue.iter().position(|q| !busy.contains(&q.group_key)) else {
                continue;
            };
            let Some(q) = self.queue.remove(pos) else {
                continue;
            };
            if let Some(written) = self.unrecorded.remove(&q.group_key) {
                // written to the OS, not synced: enough against a crash of the process
                let _ = written.await;
            }
            let mut n = match self.load(q.id) {
                Ok(Some(n)) => n,
                // deleted meanwhile (retention): nothing to deliver
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(worker = %self.key, id = q.id, error = %e, "cannot read queued notification; retrying");
                    self.queue.push_front(q);
                    paused_until = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                    continue;
                }
            };
            // Replayed, merged or finished through the admin API meanwhile.
            if !n.state.is_open() {
                continue;
            }
            // the stored record may lag behind our own unflushed updates
            n.attempts = n.attempts.max(q.attempts);
            let notifier = self.current.notifier.clone();
            let edits = notifier.updates_messages();
            let edit = if edits {
                self.message_to_edit(&n)
            } else {
                None
            };
            busy.insert(q.group_key);
            self.publish_depth(&labels);
            inflight.push(Box::pin(async move {
                let started = std::time::Instant::now();
                let result = notifier.send(&n, edit.as_deref()).await;
                Done {
                    n,
                    result,
                    edits,
                    elapsed: started.elapsed(),
                }
            }));
        }
    }

    /// Rate limited: wait until the limiter grants a slot, merging and digesting what
    /// waits meanwhile. False when stopped or reconfigured before a slot was granted.
    async fn wait_for_slot(
        &mut self,
        first: Duration,
        labels: &Vec<(&'static str, String)>,
    ) -> bool {
        self.metrics.rate_limited_waits.get_or_create(labels).inc();
        lock(&self.status).rate_limited = true;
        let mut wait = Some(first);
        while let Some(w) = wait {
            self.merge_overflow(labels);
            tokio::select! {
                _ = tokio::time::sleep(w) => {},
                _ = self.stop.changed() => return false,
                // A reload may change the rate limit: ask the new limiter.
                _ = self.settings.changed() => self.refresh_settings(),
            }
            wait = self.limiter.try_acquire();
        }
        self.merge_overflow(labels);
        self.digest_storm(labels);
        lock(&self.status).rate_limited = false;
        true
    }

    /// Record a finished attempt; returns until when to pause before the next start.
    fn finish(
        &mut self,
        done: Done,
        busy: &mut HashSet<String>,
        labels: &Vec<(&'static str, String)>,
    ) -> Option<tokio::time::Instant> {
        self.metrics
            .delivery_latency
            .get_or_create(labels)
            .observe(done.elapsed.as_secs_f64());
        busy.remove(&done.n.group_key);
        let (wait, again) = self.record(done.n, done.result, done.edits, labels);
        // A retry keeps its place at the head.
        if let Some(q) = again {
            self.queue.push_front(q);
        }
        self.publish_depth(labels);
        wait.map(|w| tokio::time::Instant::now() + w)
    }

    /// Record the outcome of one attempt (durably, without waiting for the flush: a crash
    /// before it lands means the notification is sent again, never lost). Returns how long
    /// to wait before the next attempt, and the notification to retry, if any.
    fn record(
        &mut self,
        mut n: Notification,
        result: Result<super::Delivered, NotifyError>,
        edits: bool,
        labels: &Vec<(&'static str, String)>,
    ) -> (Option<Duration>, Option<Queued>) {
        let t = now();
        n.attempts += 1;
        n.updated_at = t;
        let mut wait = None;
        let mut commit = Commit::default();
        match result {
            Ok(delivered) => {
                n.state = DeliveryState::Delivered;
                n.delivered_at = Some(t);
                n.last_error = None;
                n.platform_message_id = delivered.message_id.clone();
                let digest = n.message.digest.is_some();
                if let (true, false, Some(id)) = (edits, digest, delivered.message_id) {
                    // Recorded in the same batch as the delivery state.
                    let r = MessageRef {
                        root: n.episode_root().to_string(),
                        id,
                        updated_at: t,
                    };
                    let key = n.message_key();
                    self.refs.insert(key.clone(), r.clone());
                    commit.dispatch.push(DispatchOp::PutMessageRef(key, r));
                }
                self.metrics.notifications_sent.get_or_create(labels).inc();
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
                let too_old = t - n.created_at > self.current.delivery.max_age.0;
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
                            self.current.delivery.backoff_initial.0,
                            self.current.delivery.backoff_max.0,
                        );
                        wait = Some(
                            retry_after.map_or(b, |r| r.max(b.min(r + Duration::from_millis(250)))),
                        );
                    }
                    _ => {
                        n.state = DeliveryState::Dead;
                        n.last_error = Some(if too_old {
                            format!(
                                "gave up after {} attempts (max_age {}): {msg}",
                                n.attempts, self.current.delivery.max_age
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
        let again = (n.state == DeliveryState::Failed).then(|| Queued::of(&n));
        let group = n.group_key.clone();
        // The message itself is stored already (as queued, merged or digested, in an
        // earlier commit): only the outcome is written.
        commit
            .dispatch
            .push(DispatchOp::PutDelivery(n.id, DeliveryRecord::of(&n)));
        match self.store.commit_nowait(commit) {
            Ok(written) => {
                if self.unrecorded.len() >= MAX_UNRECORDED {
                    // forget the writes already done (groups that sent nothing since)
                    self.unrecorded.retain(|_, w| {
                        matches!(
                            w.try_recv(),
                            Err(tokio::sync::oneshot::error::TryRecvError::Empty)
                        )
                    });
                }
                self.unrecorded.insert(group, written);
            }
            Err(e) => {
                tracing::error!(worker = %self.key, error = %e, "cannot record delivery state")
            }
        }
        (wait, again)
    }

    fn status_receiver(&self) -> String {
        lock(&self.status).receiver.clone()
    }

    fn publish_depth(&mut self, labels: &[(&'static str, String)]) {
        let depth = self.queue.len() + self.rx.len();
        let head = self.queue.front().map(|q| q.created_at);
        let index = {
            let mut st = lock(&self.status);
            st.queue_depth = depth;
            st.queue_head_created_at = head;
            st.index
        };
        // the gauges are looked up (labels built, hashed) only when the index changes
        let gauges = match &self.queue_gauges {
            Some((i, g)) if *i == index => g,
            _ => {
                let l = depth_labels(labels, index);
                let g = QueueGauges {
                    depth: self.metrics.queue_depth.get_or_create(&l).clone(),
                    head_created: self.metrics.queue_head_created.get_or_create(&l).clone(),
                };
                &self.queue_gauges.insert((index, g)).1
            }
        };
        gauges.depth.set(depth as i64);
        gauges
            .head_created
            .set(head.map_or(0.0, |t| t.unix_timestamp_nanos() as f64 / 1e9));
    }

    /// A storm: more than `digest_threshold` notifications of different groups waited for
    /// this send slot. They go out as one digest message, queued first; each one is marked
    /// merged into it ("carried by digest N"), and the digest lists them, so nothing is
    /// dropped and the admin API shows which digest carried which notification.
    fn digest_storm(&mut self, labels: &Vec<(&'static str, String)>) {
        let threshold = self.current.digest_threshold;
        let waiting = self.queue.iter().filter(|q| q.eligible()).count();
        if threshold == 0 || waiting <= threshold {
            return;
        }
        let (take, keep): (Vec<Queued>, Vec<Queued>) =
            self.queue.drain(..).partition(Queued::eligible);
        self.queue.extend(keep);
        let mut parts: Vec<Notification> = take
            .iter()
            .filter_map(|q| self.load(q.id).ok().flatten())
            .filter(|n| n.state.is_open())
            .collect();
        if parts.is_empty() {
            return;
        }
        let id = match self.store.next_id() {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(worker = %self.key, error = %e, "cannot make a digest; sending one by one");
                self.queue.extend(take);
                return;
            }
        };
        let t = now();
        // Most severe first: firing before resolved, then by severity, then oldest.
        parts.sort_by_key(|n| {
            (
                n.message.status != Status::Firing,
                std::cmp::Reverse(severity_rank(&n.message)),
                n.created_at,
            )
        });
        let digest = build_digest(id, &parts, t);
        let mut commit = Commit::default();
        for mut p in parts {
            p.state = DeliveryState::Merged;
            p.updated_at = t;
            p.last_error = Some(format!("carried by digest notification {id}"));
            commit
                .dispatch
                .push(DispatchOp::PutNotification(std::sync::Arc::new(p)));
        }
        let carried = commit.dispatch.len() as u64;
        commit
            .dispatch
            .push(DispatchOp::PutNotification(std::sync::Arc::new(
                digest.clone(),
            )));
        if let Err(e) = self.store.commit_nowait(commit) {
            tracing::error!(worker = %self.key, error = %e, "cannot record the digest");
        }
        self.metrics
            .notifications_digested
            .get_or_create(labels)
            .inc_by(carried);
        self.metrics.digests.get_or_create(labels).inc();
        tracing::info!(worker = %self.key, id, groups = carried, "rate limited: storm digest");
        self.queue.push_front(Queued::of(&digest));
        self.merged.insert(id, digest);
    }

    /// The platform message to edit for `n`: the one recorded for its group, if it shows
    /// the same episode (a notification after a full resolve starts a new message).
    fn message_to_edit(&mut self, n: &Notification) -> Option<String> {
        let key = n.message_key();
        let r = match self.refs.get(&key) {
            Some(r) => Some(r.clone()),
            None => match self.store.message_ref(&key) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(worker = %self.key, error = %e, "cannot read the group's message; posting a new one");
                    None
                }
            },
        }?;
        (n.in_reply_to.as_deref() == Some(r.root.as_str())).then_some(r.id)
    }

    /// Queue `q`, keeping its notification in memory while fewer than [`MAX_BODIES`] are.
    fn accept(&mut self, mut q: Queued) {
        if let Some(n) = q.body.take() {
            if self.merged.len() < MAX_BODIES {
                self.merged.entry(q.id).or_insert(*n);
            }
        }
        self.queue.push_back(q);
        self.unmerged = true;
    }

    /// The notification to send for a queued id: the one held in memory (as queued, or a
    /// merged version) if there is one, else the stored record.
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
            self.accept(q);
        }
        // Nothing new since the last pass: the queue is already merged.
        if !self.unmerged || self.queue.len() < 2 {
            return;
        }
        self.unmerged = false;
        let eligible = Queued::eligible;
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
                                .push(DispatchOp::PutNotification(std::sync::Arc::new(o)));
                        }
                        commit
                            .dispatch
                            .push(DispatchOp::PutNotification(std::sync::Arc::new(n.clone())));
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

/// Rank of the most severe firing alert of a message (critical > error > warning > info).
fn severity_rank(m: &crate::alert::WebhookMessage) -> u8 {
    m.firing()
        .map(|a| {
            match a
                .labels
                .get("severity")
                .map(|s| s.to_ascii_lowercase())
                .as_deref()
            {
                Some("critical") | Some("page") | Some("emergency") => 4,
                Some("error") | Some("high") => 3,
                Some("warning") | Some("warn") => 2,
                Some("info") | Some("low") => 1,
                _ => 0,
            }
        })
        .max()
        .unwrap_or(0)
}

/// One message standing for `parts` (already in the order to list them): every alert of
/// every group (each integration truncates to its platform's limits, "…and N more"),
/// and a [`Digest`] with a line per group.
fn build_digest(id: u64, parts: &[Notification], t: OffsetDateTime) -> Notification {
    let first = &parts[0];
    let mut seen = HashSet::new();
    let mut alerts = Vec::new();
    let mut lines = Vec::new();
    for p in parts {
        lines.push(crate::template::one_line(&crate::template::subject(
            &p.message,
        )));
        for a in &p.message.alerts {
            if seen.insert(a.fingerprint.clone()) {
                alerts.push(a.clone());
            }
        }
    }
    let firing_groups = parts
        .iter()
        .filter(|p| p.message.status == Status::Firing)
        .count();
    let mut msg = crate::alert::WebhookMessage::new(
        &first.receiver,
        alerts,
        Default::default(),
        &first.message.external_url,
        "{}/digest:{}",
        "storm digest",
    );
    msg.digest = Some(Digest {
        groups: parts.len(),
        firing_groups,
        resolved_groups: parts.len() - firing_groups,
        notifications: parts.iter().map(|p| p.id).collect(),
        lines,
    });
    let host = first
        .message_id
        .rsplit_once('@')
        .map_or("alert-router>", |(_, h)| h);
    Notification::pending(
        id,
        (&first.receiver, &first.integration, first.index),
        msg,
        format!("<digest.{id}@{host}"),
        t,
    )
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
}
