//! The hub: one delivery worker per integration instance, keyed `receiver/kind[index]`.
//!
//! A reload never stops a worker whose integration still exists: its settings are swapped
//! in place, so its queue, its in-flight attempt and its limiter state carry on and a
//! notification id is only ever in one queue. Workers of removed integrations are stopped
//! after their in-flight attempt; what they still held becomes dead letters.

use super::worker::{
    depth_labels, Leftover, Queued, RateLimitView, Settings, Worker, WorkerStatus,
};
use super::{lock, Integration};
use crate::alert::now;
use crate::config::DeliveryConfig;
use crate::metrics::{integration_labels, Metrics};
use crate::store::{Commit, DeliveryState, DispatchOp, Notification, Store, StoreError};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long a stopping worker may take to finish its in-flight attempt before it is
/// aborted (the attempt's notification then stays open: dead-lettered if its integration
/// was removed, sent again after a restart otherwise).
const STOP_GRACE: Duration = Duration::from_secs(60);

struct WorkerHandle {
    tx: mpsc::UnboundedSender<Queued>,
    status: Arc<Mutex<WorkerStatus>>,
    settings: watch::Sender<Arc<Settings>>,
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<Leftover>,
}

/// All delivery workers.
pub struct Hub {
    workers: Mutex<HashMap<String, WorkerHandle>>,
    store: Store,
    metrics: Arc<Metrics>,
}

impl Hub {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Hub {
            workers: Mutex::new(HashMap::new()),
            store,
            metrics,
        }
    }

    /// Whether the integration with this worker key sends resolved notifications.
    pub fn send_resolved(&self, key: &str) -> bool {
        lock(&self.workers)
            .get(key)
            .is_none_or(|h| h.settings.borrow().notifier.send_resolved())
    }

    /// Start the workers of `integrations` with the open notifications the store holds
    /// for them (process start). Open notifications of integrations no longer configured
    /// become dead letters.
    pub async fn start(
        &self,
        integrations: Vec<Integration>,
        delivery: &DeliveryConfig,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        let open = tokio::task::spawn_blocking(move || store.open_notifications())
            .await
            .map_err(|e| StoreError::Failed(e.to_string()))??;
        let mut by_key: HashMap<String, VecDeque<Queued>> = HashMap::new();
        let mut orphaned = Vec::new();
        let keys: HashSet<&str> = integrations.iter().map(|i| i.key.as_str()).collect();
        for n in open {
            let key = n.worker_key();
            if keys.contains(key.as_str()) {
                by_key.entry(key).or_default().push_back(Queued::of(&n));
            } else {
                orphaned.push(n);
            }
        }
        for i in integrations {
            let queue = by_key.remove(&i.key).unwrap_or_default();
            self.spawn(i, delivery, queue);
        }
        self.bury(orphaned).await
    }

    /// Apply a reload: existing workers take their new settings in place, new
    /// integrations get a worker. Workers of integrations that are gone keep running until
    /// [`Hub::retire`], so whatever the old routing still queues has somewhere to go.
    pub fn apply(&self, integrations: Vec<Integration>, delivery: &DeliveryConfig) {
        for i in integrations {
            let settings = Arc::new(Settings {
                notifier: i.notifier.clone(),
                rate_limit: i.rate_limit,
                digest_threshold: i.digest_threshold,
                delivery: delivery.clone(),
            });
            let updated = lock(&self.workers)
                .get(&i.key)
                .map(|h| {
                    lock(&h.status).rate_limit = Some(RateLimitView::of(&i.rate_limit));
                    h.settings.send_replace(settings)
                })
                .is_some();
            if !updated {
                self.spawn(i, delivery, VecDeque::new());
            }
        }
    }

    /// Stop the workers whose key is not in `keep` (after their in-flight attempt) and
    /// turn what they still held into dead letters.
    pub async fn retire(&self, keep: &HashSet<String>) -> Result<(), StoreError> {
        let gone: Vec<(String, WorkerHandle)> = {
            let mut w = lock(&self.workers);
            let keys: Vec<String> = w.keys().filter(|k| !keep.contains(*k)).cloned().collect();
            keys.into_iter()
                .filter_map(|k| w.remove(&k).map(|h| (k, h)))
                .collect()
        };
        let mut dead = Vec::new();
        for (key, h) in gone {
            let status = lock(&h.status).clone();
            let labels = integration_labels(&status.receiver, &status.integration);
            if let Some(left) = self.stop_worker(&key, h).await {
                dead.extend(self.resolve_leftover(left));
            }
            let l = depth_labels(&labels, status.index);
            self.metrics.queue_depth.remove(&l);
            self.metrics.queue_head_created.remove(&l);
            tracing::info!(worker = %key, "integration removed; its worker stopped");
        }
        self.bury(dead).await
    }

    /// Stop every worker (graceful shutdown): in-flight attempts finish (up to a grace
    /// period); queued notifications stay open in the store for the next start.
    pub async fn stop(&self) {
        let all: Vec<(String, WorkerHandle)> = lock(&self.workers).drain().collect();
        for (key, h) in all {
            let _ = self.stop_worker(&key, h).await;
        }
    }

    async fn stop_worker(&self, key: &str, h: WorkerHandle) -> Option<Leftover> {
        let _ = h.stop.send(true);
        let abort = h.join.abort_handle();
        match tokio::time::timeout(STOP_GRACE, h.join).await {
            Ok(Ok(left)) => Some(left),
            Ok(Err(e)) => {
                tracing::error!(worker = %key, error = %e, "delivery worker failed");
                None
            }
            Err(_) => {
                tracing::warn!(worker = %key, "in-flight delivery did not finish in {STOP_GRACE:?}; aborted");
                abort.abort();
                None
            }
        }
    }

    /// The notifications a stopped worker still held, newest merged versions preferred.
    fn resolve_leftover(&self, mut left: Leftover) -> Vec<Notification> {
        while let Ok(q) = left.rx.try_recv() {
            left.queue.push_back(q);
        }
        left.queue
            .into_iter()
            .filter_map(|q| match (left.merged.remove(&q.id), q.body) {
                (Some(n), _) => Some(n),
                (None, Some(n)) => Some(*n),
                (None, None) => self.store.notification(q.id).ok().flatten(),
            })
            .filter(|n| n.state.is_open())
            .collect()
    }

    /// Dead-letter open notifications whose integration is no longer configured.
    async fn bury(&self, ns: Vec<Notification>) -> Result<(), StoreError> {
        if ns.is_empty() {
            return Ok(());
        }
        let mut commit = Commit::default();
        for n in ns {
            commit
                .dispatch
                .push(DispatchOp::PutNotification(std::sync::Arc::new(
                    dead_letter(n),
                )));
        }
        self.store.commit(commit).await
    }

    fn spawn(&self, i: Integration, delivery: &DeliveryConfig, queue: VecDeque<Queued>) {
        let Integration {
            key,
            notifier,
            rate_limit,
            digest_threshold,
        } = i;
        let (tx, rx) = mpsc::unbounded_channel();
        let (receiver, integration, index) = split_worker_key(&key);
        let status = Arc::new(Mutex::new(WorkerStatus {
            receiver,
            integration,
            index,
            queue_depth: queue.len(),
            rate_limit: Some(RateLimitView::of(&rate_limit)),
            ..Default::default()
        }));
        let settings = Arc::new(Settings {
            notifier,
            rate_limit,
            digest_threshold,
            delivery: delivery.clone(),
        });
        let (settings_tx, settings_rx) = watch::channel(settings.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker = Worker {
            key: key.clone(),
            settings: settings_rx,
            current: settings,
            limiter: super::limiter::Limiter::new(&rate_limit),
            queue,
            rx,
            merged: HashMap::new(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            status: status.clone(),
            stop: stop_rx,
            unmerged: true,
            refs: HashMap::new(),
            unrecorded: HashMap::new(),
            queue_gauges: None,
        };
        let join = tokio::spawn(worker.run());
        lock(&self.workers).insert(
            key,
            WorkerHandle {
                tx,
                status,
                settings: settings_tx,
                stop: stop_tx,
                join,
            },
        );
    }

    /// Hand a durably queued notification to its worker. With no worker for it (its
    /// integration was removed meanwhile) it becomes a dead letter instead of waiting in
    /// the store forever. Returns whether a worker took it.
    pub fn enqueue(&self, n: Notification) -> bool {
        let key = n.worker_key();
        let n = {
            let workers = lock(&self.workers);
            match workers.get(&key) {
                Some(w) => {
                    lock(&w.status).queue_depth += 1;
                    match w.tx.send(Queued::with_body(n)) {
                        Ok(()) => return true,
                        Err(back) => match back.0.body {
                            Some(n) => *n,
                            None => return false,
                        },
                    }
                }
                None => n,
            }
        };
        tracing::warn!(worker = %key, id = n.id, "no delivery worker for this integration; dead letter");
        let commit = Commit {
            dispatch: vec![DispatchOp::PutNotification(std::sync::Arc::new(
                dead_letter(n),
            ))],
            ..Default::default()
        };
        if let Err(e) = self.store.commit_nowait(commit) {
            tracing::error!(worker = %key, error = %e, "cannot record dead letter");
        }
        false
    }

    /// The notifier a worker currently delivers with.
    pub fn notifier(&self, key: &str) -> Option<Arc<dyn super::Notifier>> {
        lock(&self.workers)
            .get(key)
            .map(|h| h.settings.borrow().notifier.clone())
    }

    pub fn has_worker(&self, key: &str) -> bool {
        lock(&self.workers).contains_key(key)
    }

    /// Whether every one of `keys` has a live worker (readiness).
    pub fn serves_all<'a>(&self, mut keys: impl Iterator<Item = &'a str>) -> bool {
        let w = lock(&self.workers);
        keys.all(|k| w.get(k).is_some_and(|h| !h.join.is_finished()))
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

    /// Whether every worker is alive (a panicked worker makes the process unready).
    pub fn running(&self) -> bool {
        let w = lock(&self.workers);
        w.values().all(|h| !h.join.is_finished())
    }
}

fn dead_letter(mut n: Notification) -> Notification {
    n.state = DeliveryState::Dead;
    n.updated_at = now();
    n.last_error = Some(format!(
        "integration {} is no longer configured",
        n.worker_key()
    ));
    n
}

fn split_worker_key(key: &str) -> (String, String, usize) {
    // receiver/kind[index]; the receiver name may itself contain '/'.
    let (rest, idx) = key.rsplit_once('[').unwrap_or((key, "0]"));
    let index = idx.trim_end_matches(']').parse().unwrap_or(0);
    let (receiver, kind) = rest.rsplit_once('/').unwrap_or((rest, ""));
    (receiver.to_string(), kind.to_string(), index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_keys_split() {
        assert_eq!(
            split_worker_key("team/ops/slack[2]"),
            ("team/ops".into(), "slack".into(), 2)
        );
    }
}
