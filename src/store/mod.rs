//! Durable state: alerts (an in-memory live map behind an append-only log and
//! checkpoints, see [`alertlog`]), notifications and their delivery records (an
//! append-only log with an in-memory index, see [`outbox`]), and in sled the
//! aggregation-group timers, the notification log, message references and silences.
//!
//! Every write goes through one writer thread that batches whatever is waiting and then
//! flushes once (group commit): callers are answered only after their data is flushed, so
//! a 2xx to a sender or a queued notification survives a crash, while a burst of
//! concurrent requests shares one flush. With `storage.sync: batch` (the default) or
//! `always`, that flush is also `fsync`ed before the answer (see [`fsync`] for what each
//! mode syncs and what sled does not), so it survives a power loss too.

pub mod alertlog;
pub mod fsync;
pub mod gc;
pub mod keys;
pub mod logfile;
pub mod message;
pub mod outbox;
pub mod record;

use crate::alert::{Alert, Fingerprint};
use alertlog::{Chunker, Live, Mark, Trees};
pub use fsync::SyncMode;
use fsync::{SledSync, SyncCount};
pub use message::Message;
use record::AlertRecord;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::oneshot;

/// Storage failures (all map to 503 at the HTTP edge).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// Another process (or a handle of this one that did not close) holds the directory.
    #[error(
        "{} is in use by another alert-router (its lock was not released within {}s); \
         two routers cannot share one storage.path",
        path.display(),
        waited.as_secs()
    )]
    Locked {
        path: std::path::PathBuf,
        waited: std::time::Duration,
    },
    /// A file operation of ours failed (the `fsync`s of `storage.sync`).
    #[error("storage I/O error on {}: {err}", path.display())]
    Io {
        path: std::path::PathBuf,
        err: std::io::Error,
    },
    #[error("corrupt record in {tree}: {err}")]
    Decode { tree: &'static str, err: String },
    #[error(
        "store was created by a newer alert-router (schema {found}, this build knows {known})"
    )]
    Schema { found: u32, known: u32 },
    #[error("store writer is overloaded ({0} alerts waiting)")]
    Overloaded(usize),
    #[error("store writer has stopped")]
    Closed,
    #[error("storage commit failed: {0}")]
    Failed(String),
    /// A precondition of the commit did not hold when the writer came to it; nothing of
    /// that commit was applied.
    #[error("{0}")]
    Conflict(String),
}

/// Timer state of one aggregation group, persisted so a restart neither re-waits nor repeats.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupState {
    pub group_key: String,
    pub receiver: String,
    #[serde(with = "time::serde::rfc3339")]
    pub next_flush: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_flush: Option<OffsetDateTime>,
}

/// What was last notified for (group, receiver, integration): Alertmanager's nflog entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct NflogEntry {
    pub firing: Vec<u64>,
    pub resolved: Vec<u64>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub timestamp: Option<OffsetDateTime>,
    /// Message id of the first notification of the current firing episode (email threads).
    #[serde(default)]
    pub thread_root: Option<String>,
    #[serde(default)]
    pub thread_last: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
}

/// The platform message that shows a group's current episode (integrations with
/// `update_message`): later notifications of the episode edit it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageRef {
    /// Our `message_id` of the episode's first notification (the episode's identity:
    /// later notifications carry it as `in_reply_to`).
    pub root: String,
    /// The platform's id of the message.
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Delivery state of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Queued, not tried yet.
    Pending,
    /// Tried and failed with a retryable error; will be retried.
    Failed,
    Delivered,
    /// Folded into a newer notification of the same group while rate limited (see
    /// `last_error` for which); its content went out with that one.
    Merged,
    /// Gave up (permanent error or max age): a dead letter, replayable through the admin API.
    Dead,
}

impl DeliveryState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "failed" => Some(Self::Failed),
            "delivered" => Some(Self::Delivered),
            "merged" => Some(Self::Merged),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }

    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Failed)
    }
}

/// A rendered-at-send-time notification: the group snapshot plus its delivery record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notification {
    pub id: u64,
    pub receiver: String,
    pub integration: String,
    pub index: usize,
    pub group_key: String,
    pub state: DeliveryState,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Stable id of this message (email `Message-ID`), and the thread it continues.
    pub message_id: String,
    #[serde(default)]
    pub in_reply_to: Option<String>,
    #[serde(default)]
    pub references: Vec<String>,
    #[serde(default)]
    pub test: bool,
    /// The platform's id of the message this notification posted or edited (integrations
    /// with `update_message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_message_id: Option<String>,
    pub message: Message,
}

/// The part of a [`Notification`] an attempt changes, stored on its own (`d/<id>`) so
/// recording an attempt rewrites about a hundred bytes, not the whole message. Read back,
/// it overrides the same fields of the stored notification; storing the whole
/// notification again (a merge, a replay) removes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeliveryRecord {
    pub state: DeliveryState,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_message_id: Option<String>,
}

impl DeliveryRecord {
    /// The delivery fields of `n`.
    pub fn of(n: &Notification) -> Self {
        DeliveryRecord {
            state: n.state,
            updated_at: n.updated_at,
            delivered_at: n.delivered_at,
            attempts: n.attempts,
            last_error: n.last_error.clone(),
            platform_message_id: n.platform_message_id.clone(),
        }
    }

    fn apply_to(self, n: &mut Notification) {
        n.state = self.state;
        n.updated_at = self.updated_at;
        n.delivered_at = self.delivered_at;
        n.attempts = self.attempts;
        n.last_error = self.last_error;
        n.platform_message_id = self.platform_message_id;
    }
}

impl Notification {
    /// A new notification waiting for its first attempt.
    pub fn pending(
        id: u64,
        integration: (&str, &str, usize),
        message: impl Into<Message>,
        message_id: String,
        created_at: OffsetDateTime,
    ) -> Notification {
        let (receiver, kind, index) = integration;
        let message = message.into();
        Notification {
            id,
            receiver: receiver.to_string(),
            integration: kind.to_string(),
            index,
            group_key: message.group_key.clone(),
            state: DeliveryState::Pending,
            created_at,
            updated_at: created_at,
            delivered_at: None,
            attempts: 0,
            last_error: None,
            message_id,
            in_reply_to: None,
            references: Vec::new(),
            test: false,
            platform_message_id: None,
            message,
        }
    }

    /// `receiver/integration[index]`, the name of the delivery worker it belongs to.
    pub fn worker_key(&self) -> String {
        worker_key(&self.receiver, &self.integration, self.index)
    }

    /// Key of the [`MessageRef`] of this notification's group and integration.
    pub fn message_key(&self) -> Vec<u8> {
        keys::message(
            &self.receiver,
            &self.integration,
            self.index,
            &self.group_key,
        )
    }

    /// Our id of the episode this notification belongs to (see [`MessageRef::root`]).
    pub fn episode_root(&self) -> &str {
        self.in_reply_to.as_deref().unwrap_or(&self.message_id)
    }
}

pub fn worker_key(receiver: &str, integration: &str, index: usize) -> String {
    format!("{receiver}/{integration}[{index}]")
}

/// A change to the `dispatch` tree.
#[derive(Debug, Clone)]
pub enum DispatchOp {
    PutGroup(String, GroupState),
    DelGroup(String),
    PutNflog(Vec<u8>, NflogEntry),
    DelNflog(Vec<u8>),
    /// The whole notification (replaces its delivery record, if any).
    PutNotification(Arc<Notification>),
    /// The outcome of an attempt at a stored notification (its message unchanged).
    PutDelivery(u64, DeliveryRecord),
    DelNotification(u64),
    /// Retention: delete the notification only if it is still finished and last changed
    /// before the cutoff (a replay meanwhile keeps it).
    DelNotificationIfFinishedBefore(u64, OffsetDateTime),
    /// Retention: delete the nflog entry only if it is still expired at the given time (a
    /// flush meanwhile wrote a fresh one).
    DelNflogIfExpired(Vec<u8>, OffsetDateTime),
    PutMessageRef(Vec<u8>, MessageRef),
    /// Retention: delete the message reference only if it was not updated since the cutoff.
    DelMessageRefIfOlder(Vec<u8>, OffsetDateTime),
    PutSilence(Box<crate::silence::Silence>),
    DelSilence(String),
}

/// A condition the writer checks, in commit order, before applying a commit: a
/// compare-and-swap, so concurrent requests cannot both act on the same old state.
#[derive(Debug, Clone)]
pub enum Precondition {
    /// The notification exists and is finished (not pending or failed).
    NotificationClosed(u64),
}

/// An alert as merged and stored: the decoded alert (for routing) and its shared record
/// (what aggregation groups keep).
#[derive(Debug, Clone)]
pub struct Merged {
    pub alert: Alert,
    pub record: AlertRecord,
}

/// What runs on the writer thread once a commit is durable, in commit order: hands the
/// merged alerts to the dispatcher or queued notifications to workers. Because it runs
/// there and not in the request, a client that disconnects cannot separate "stored" from
/// "forwarded", and forwarding follows the order the store committed.
pub type AfterCommit = Box<dyn FnOnce(Vec<Merged>) + Send>;

/// One unit of work for the writer.
#[derive(Default)]
pub struct Commit {
    /// Alerts merged into the stored ones (Alertmanager merge rules).
    pub alerts: Vec<Alert>,
    /// Alerts to delete if they are still resolved before the given cutoff when the writer
    /// comes to them (retention: an alert that fired again meanwhile stays).
    pub delete_alerts: Vec<(Fingerprint, OffsetDateTime)>,
    pub dispatch: Vec<DispatchOp>,
    pub require: Vec<Precondition>,
    pub then: Option<AfterCommit>,
    /// Applied in a writer batch of its own (set by [`Store::snapshot`]).
    pub barrier: bool,
}

impl Commit {
    /// Run `f` with the merged alerts once this commit is durable (see [`AfterCommit`]).
    pub fn then(mut self, f: impl FnOnce(Vec<Merged>) + Send + 'static) -> Self {
        self.then = Some(Box::new(f));
        self
    }

    /// Whether the writer must read current state before applying this commit.
    fn conditional(&self) -> bool {
        !self.require.is_empty()
            || self.dispatch.iter().any(|op| {
                matches!(
                    op,
                    DispatchOp::DelNotificationIfFinishedBefore(..)
                        | DispatchOp::DelNflogIfExpired(..)
                        | DispatchOp::DelMessageRefIfOlder(..)
                )
            })
    }
}

struct Job {
    commit: Commit,
    /// Counted in `pending_alerts` (ingest requests).
    ingest: bool,
    /// Somebody waits for the answer (not [`Store::commit_nowait`]): with
    /// `storage.sync: batch` such a commit is synced before the answer.
    waited: bool,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Answers once a [`Store::commit_nowait`] commit is written (or failed).
pub type Written = oneshot::Receiver<Result<(), StoreError>>;

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    live: Arc<Live>,
    dispatch: sled::Tree,
    outbox: Arc<outbox::Outbox>,
    tx: std::sync::mpsc::Sender<Job>,
    pending_alerts: Arc<AtomicUsize>,
    max_pending_alerts: usize,
    stats: Arc<alertlog::Stats>,
    /// Directories of the alert log, the checkpoints and the outbox log.
    file_dirs: Arc<[std::path::PathBuf; 3]>,
    /// Makes sled's flushes stable (`storage.sync`); holds the sync counters.
    sled_sync: Arc<SledSync>,
    /// The writer thread; it ends (closing the database) when the last handle is dropped.
    writer: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// Why the store stopped accepting writes (see [`Store::failure`]).
    failure: Arc<std::sync::Mutex<Option<String>>>,
    /// The store directory.
    path: Arc<Path>,
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Our own plain data types always serialise.
    serde_json::to_vec(v).unwrap_or_default()
}

fn record_error(e: record::RecordError) -> StoreError {
    StoreError::Decode {
        tree: "alerts",
        err: e.to_string(),
    }
}

fn decode<T: for<'de> Deserialize<'de>>(tree: &'static str, b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Decode {
        tree,
        err: e.to_string(),
    })
}

/// How long opening waits for the directory's lock: sled's background threads of a handle
/// just closed in this process (an in-process restart) release it a moment after the
/// handle is dropped. Another process holding it is reported after this wait.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Open sled at `path`, waiting up to `wait` ([`LOCK_WAIT`] in production) for its lock.
fn open_sled(
    path: &Path,
    cache_mb: u64,
    wait: std::time::Duration,
) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb * 1024 * 1024)
            .flush_every_ms(Some(1000))
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                return Err(StoreError::Locked {
                    path: path.to_path_buf(),
                    waited: wait,
                });
            }
            other => return Ok(other?),
        }
    }
}

impl Store {
    /// Open (or create) the store at `path` with the default `storage.sync` mode
    /// ([`SyncMode::Batch`]) and start its writer thread.
    pub fn open(
        path: &Path,
        cache_mb: u64,
        max_pending_alerts: usize,
        checkpoint_min_bytes: u64,
    ) -> Result<Store, StoreError> {
        Store::open_with_sync(
            path,
            cache_mb,
            max_pending_alerts,
            checkpoint_min_bytes,
            SyncMode::default(),
        )
    }

    /// Open (or create) the store at `path`, syncing as `sync` says, and start its writer
    /// thread. In the sync modes everything the store consists of is synced once before
    /// this returns.
    pub fn open_with_sync(
        path: &Path,
        cache_mb: u64,
        max_pending_alerts: usize,
        checkpoint_min_bytes: u64,
        sync: SyncMode,
    ) -> Result<Store, StoreError> {
        let opened = std::time::Instant::now();
        let db = open_sled(path, cache_mb, LOCK_WAIT)?;
        let meta = db.open_tree(keys::TREE_META)?;
        let schema = match meta.get(keys::SCHEMA_KEY)? {
            Some(v) => {
                let found: u32 = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u32::MAX);
                if found > keys::SCHEMA_VERSION {
                    return Err(StoreError::Schema {
                        found,
                        known: keys::SCHEMA_VERSION,
                    });
                }
                found
            }
            None => {
                meta.insert(
                    keys::SCHEMA_KEY,
                    keys::SCHEMA_VERSION.to_string().as_bytes(),
                )?;
                db.flush()?;
                keys::SCHEMA_VERSION
            }
        };
        let sled_sync = Arc::new(SledSync::open(sync, path)?);
        let trees = Trees::open(&db, path, sled_sync.clone())?;
        let dispatch = db.open_tree(keys::TREE_DISPATCH)?;
        let live = Arc::new(Live::default());
        let mut loaded = if schema == 1 {
            alertlog::migrate_v1(&trees, &live)?
        } else {
            alertlog::load(&trees, &live)?
        };
        let mark = dispatch
            .get(keys::OUTBOX_MARK_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        let outbox_dir = path.join("outbox");
        let (mut outbox_log, outbox) = outbox::OutboxLog::open(&outbox_dir, mark)?;
        if sync.syncs() {
            outbox_log.set_sync(sled_sync.counts.clone());
        }
        if schema < keys::SCHEMA_VERSION {
            // schema 2 → 3 only added records; 3 → 4 moves notifications to the outbox log
            let moved = migrate_outbox(&dispatch, &mut outbox_log)?;
            db.flush()?;
            meta.insert(
                keys::SCHEMA_KEY,
                keys::SCHEMA_VERSION.to_string().as_bytes(),
            )?;
            db.flush()?;
            tracing::info!(
                from = schema,
                to = keys::SCHEMA_VERSION,
                notifications = moved,
                "store upgraded"
            );
        }
        if sync.syncs() {
            outbox_log.sync()?;
            loaded.log.set_sync(sled_sync.counts.clone());
            loaded.log.sync()?;
            fsync::sync_dir(&trees.dir, &sled_sync.counts)?;
            sled_sync.on_open()?;
        }
        tracing::info!(
            alerts = live.len(),
            record_bytes = live.bytes(),
            checkpoint = loaded.mark.generation,
            log_bytes = loaded.log_bytes,
            elapsed_ms = opened.elapsed().as_millis() as u64,
            "alerts loaded"
        );
        let stats = Arc::new(alertlog::Stats::default());
        stats
            .generation
            .store(loaded.mark.generation, Ordering::Relaxed);
        stats.log_bytes.store(loaded.log_bytes, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let pending_alerts = Arc::new(AtomicUsize::new(0));
        let file_dirs = Arc::new([trees.logdir.clone(), trees.dir.clone(), outbox_dir]);
        let failure = Arc::new(std::sync::Mutex::new(None));
        let writer = {
            let w = Writer {
                trees,
                dispatch: dispatch.clone(),
                outbox: outbox_log,
                live: live.clone(),
                pending: pending_alerts.clone(),
                seq: loaded.next_seq,
                log: loaded.log,
                log_bytes: loaded.log_bytes,
                mark: loaded.mark,
                checkpointer: None,
                checkpoint_min_bytes,
                stats: stats.clone(),
                sync,
                failure: failure.clone(),
                defined: live.strings.len(),
                durable_defined: live.strings.len(),
                reclaim_after: None,
            };
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || w.run(rx))
                .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?
        };
        Ok(Store {
            db,
            live,
            dispatch,
            outbox,
            tx,
            pending_alerts,
            max_pending_alerts,
            stats,
            file_dirs,
            sled_sync,
            writer: Arc::new(std::sync::Mutex::new(Some(writer))),
            failure,
            path: Arc::from(path),
        })
    }

    /// Why the store stopped accepting writes, if it did: a write or `fsync` failed (a
    /// full disk, an I/O error). From then on every commit fails with
    /// [`StoreError::Failed`] (answered `503`): sled cannot continue after a failed write,
    /// and after a failed `fsync` Linux may have dropped pages it could not write, so a
    /// later success would prove nothing. Reopening the store recovers (see
    /// `alert_router::run`, which does so once [`fsync::probe_writable`] succeeds).
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer thread's handle (once): joining it after every handle of this store is
    /// dropped waits until the database is closed and its lock released, so the same
    /// directory can be opened again in this process.
    pub fn take_writer(&self) -> Option<std::thread::JoinHandle<()>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Durably apply `commit`; resolves once flushed (and its `then` has run).
    pub async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        self.send(commit, false).await
    }

    /// Queue `commit` without waiting for its flush (delivery bookkeeping: a delivery
    /// worker must not stall behind ingest flushes). Jobs are applied in the order they
    /// are queued, so later states of a notification never get overwritten by earlier ones.
    /// Failures are logged by the writer. The receiver answers once the commit is written
    /// (to the operating system: it survives a crash of the process; `storage.sync` does
    /// not wait for its `fsync`, see [`fsync`]); dropping it is fine.
    pub fn commit_nowait(&self, commit: Commit) -> Result<Written, StoreError> {
        let (reply, written) = oneshot::channel();
        self.tx
            .send(Job {
                commit,
                ingest: false,
                waited: false,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        Ok(written)
    }

    async fn send(&self, commit: Commit, ingest: bool) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                commit,
                ingest,
                waited: true,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Durably merge ingested alerts, refusing when too many are already waiting. `then`
    /// receives the merged alerts on the writer thread once they are durable.
    pub async fn ingest(
        &self,
        alerts: Vec<Alert>,
        then: impl FnOnce(Vec<Merged>) + Send + 'static,
    ) -> Result<(), StoreError> {
        let n = alerts.len();
        let waiting = self.pending_alerts.fetch_add(n, Ordering::AcqRel);
        if waiting > 0 && waiting + n > self.max_pending_alerts {
            self.pending_alerts.fetch_sub(n, Ordering::AcqRel);
            return Err(StoreError::Overloaded(waiting));
        }
        let commit = Commit {
            alerts,
            ..Default::default()
        }
        .then(then);
        self.send(commit, true).await
    }

    /// Every stored alert as of a point in the writer's order, handed to `f` on the writer
    /// thread: `f` runs after the `then` of every commit written before and before the
    /// `then` of any commit written after. Someone fed by those `then`s (the dispatcher)
    /// who passes `f`'s records on through the same channel therefore receives them
    /// exactly between the reports they contain and the reports they do not, and never
    /// applies an older report over a newer state (a config reload under load). Resolves
    /// once `f` has run; an error means it did not run.
    pub async fn snapshot(
        &self,
        f: impl FnOnce(Vec<AlertRecord>) + Send + 'static,
    ) -> Result<(), StoreError> {
        let live = self.live.clone();
        let mut commit = Commit::default().then(move |_| f(live.records()));
        commit.barrier = true;
        self.send(commit, false).await
    }

    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    pub fn alert(&self, fp: Fingerprint) -> Result<Option<Alert>, StoreError> {
        self.live.get(fp).map(|r| self.decode(&r)).transpose()
    }

    /// Every stored alert, decoded (an unreadable record is logged and skipped).
    pub fn all_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        Ok(self
            .live
            .records()
            .iter()
            .filter_map(|r| {
                r.decode(&self.live.strings)
                    .map_err(|e| tracing::error!(fingerprint = %r.fingerprint(), error = %e, "unreadable alert record"))
                    .ok()
            })
            .collect())
    }

    /// Decode a record of this store (its interned strings are this store's).
    pub fn decode(&self, r: &AlertRecord) -> Result<Alert, StoreError> {
        r.decode(&self.live.strings).map_err(record_error)
    }

    /// Decode what routing needs of a record (see [`AlertRecord::decode_for_routing`]).
    pub fn decode_for_routing(&self, r: &AlertRecord) -> Result<Alert, StoreError> {
        r.decode_for_routing(&self.live.strings)
            .map_err(record_error)
    }

    /// A record's header and routing key (see [`AlertRecord::routing_key`]).
    pub fn routing_key(
        &self,
        r: &AlertRecord,
        names: &[String],
        key: &mut Vec<u8>,
    ) -> Result<record::Header, StoreError> {
        r.routing_key(&self.live.strings, names, key)
            .map_err(record_error)
    }

    /// Every stored alert as its shared record.
    pub fn alert_records(&self) -> Vec<AlertRecord> {
        self.live.records()
    }

    /// Fingerprints of alerts resolved before `cutoff` (retention).
    pub fn resolved_before(&self, cutoff: OffsetDateTime) -> Vec<Fingerprint> {
        self.live
            .records()
            .iter()
            .filter(|r| {
                r.header()
                    .is_ok_and(|h| h.ends_at.is_some_and(|e| e < cutoff))
            })
            .map(AlertRecord::fingerprint)
            .collect()
    }

    pub fn alert_count(&self) -> usize {
        self.live.len()
    }

    /// Checkpoint progress (admin status).
    pub fn checkpoint_stats(&self) -> serde_json::Value {
        self.stats.json()
    }

    /// Bytes of alert record data held in memory.
    pub fn alert_bytes(&self) -> u64 {
        self.live.bytes()
    }

    pub fn group_states(&self) -> Result<HashMap<String, GroupState>, StoreError> {
        self.dispatch
            .scan_prefix(keys::GROUP_PREFIX)
            .map(|kv| {
                let (k, v) = kv?;
                let id = String::from_utf8_lossy(&k[keys::GROUP_PREFIX.len()..]).into_owned();
                Ok((id, decode("dispatch/groups", &v)?))
            })
            .collect()
    }

    pub fn nflog(&self, key: &[u8]) -> Result<Option<NflogEntry>, StoreError> {
        self.dispatch
            .get(key)?
            .map(|v| decode("dispatch/nflog", &v))
            .transpose()
    }

    pub fn nflog_entries(&self) -> Result<Vec<(Vec<u8>, NflogEntry)>, StoreError> {
        self.dispatch
            .scan_prefix(keys::NFLOG_PREFIX)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), decode("dispatch/nflog", &v)?))
            })
            .collect()
    }

    pub fn message_ref(&self, key: &[u8]) -> Result<Option<MessageRef>, StoreError> {
        self.dispatch
            .get(key)?
            .map(|v| decode("dispatch/messages", &v))
            .transpose()
    }

    pub fn message_refs(&self) -> Result<Vec<(Vec<u8>, MessageRef)>, StoreError> {
        self.dispatch
            .scan_prefix(keys::MESSAGE_PREFIX)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), decode("dispatch/messages", &v)?))
            })
            .collect()
    }

    /// Every stored silence.
    pub fn silences(&self) -> Result<Vec<crate::silence::Silence>, StoreError> {
        self.dispatch
            .scan_prefix(keys::SILENCE_PREFIX)
            .map(|kv| {
                let (_, v) = kv?;
                decode("dispatch/silences", &v)
            })
            .collect()
    }

    pub fn notification(&self, id: u64) -> Result<Option<Notification>, StoreError> {
        self.outbox.get(id)
    }

    /// Notifications, newest first, that satisfy `keep`, at most `limit`.
    pub fn notifications(
        &self,
        limit: usize,
        keep: impl FnMut(&Notification) -> bool,
    ) -> Result<Vec<Notification>, StoreError> {
        self.notifications_where(limit, |_, _| true, keep)
    }

    /// [`Store::notifications`] among those whose (state, last change) satisfy `first`
    /// (checked without reading the notification).
    pub fn notifications_where(
        &self,
        limit: usize,
        first: impl FnMut(DeliveryState, OffsetDateTime) -> bool,
        mut keep: impl FnMut(&Notification) -> bool,
    ) -> Result<Vec<Notification>, StoreError> {
        let mut out = Vec::new();
        for id in self.outbox.ids(first) {
            // deleted since the ids were taken: skip
            let Some(n) = self.outbox.get(id)? else {
                continue;
            };
            if keep(&n) {
                out.push(n);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Notifications still to deliver, oldest first.
    pub fn open_notifications(&self) -> Result<Vec<Notification>, StoreError> {
        let mut v =
            self.notifications_where(usize::MAX, |s, _| s.is_open(), |n| n.state.is_open())?;
        v.reverse();
        Ok(v)
    }

    /// Ids of the finished notifications last changed before `cutoff` (retention).
    pub fn finished_before(&self, cutoff: OffsetDateTime) -> Vec<u64> {
        self.outbox
            .ids(|s, updated| !s.is_open() && updated < cutoff)
    }

    /// Bytes on disk: sled plus the alert log segments and checkpoint files.
    pub fn disk_size(&self) -> u64 {
        let files: u64 = self
            .file_dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        self.db.size_on_disk().unwrap_or(0) + files
    }

    /// Flush everything (graceful shutdown); in the sync modes also `fsync` it, delivery
    /// bookkeeping included.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.sled_sync.after_flush()
    }

    /// The `storage.sync` mode.
    pub fn sync_mode(&self) -> SyncMode {
        self.sled_sync.mode()
    }

    /// How many `fsync`s the store has issued since it was opened.
    pub fn sync_count(&self) -> SyncCount {
        self.sled_sync.counts.get()
    }
}

/// Most jobs applied with one flush.
const MAX_BATCH: usize = 4096;

/// The writer thread's state.
struct Writer {
    trees: Trees,
    dispatch: sled::Tree,
    outbox: outbox::OutboxLog,
    live: Arc<Live>,
    pending: Arc<AtomicUsize>,
    /// Sequence number of the next alert log chunk.
    seq: u64,
    log: logfile::LogFile,
    /// Log bytes written since the newest checkpoint.
    log_bytes: u64,
    mark: Mark,
    /// A checkpoint running in the background, covering the log up to `.1`.
    checkpointer: Option<(std::thread::JoinHandle<Result<Mark, StoreError>>, u64)>,
    checkpoint_min_bytes: u64,
    stats: Arc<alertlog::Stats>,
    /// `storage.sync`: which group commits are synced before they are answered.
    sync: SyncMode,
    /// Set when a write or an `fsync` failed: every later commit fails (with this
    /// message); shared with [`Store::failure`].
    failure: Arc<std::sync::Mutex<Option<String>>>,
    /// Interned strings `0..defined` are in the log (or a checkpoint), or in the batch
    /// being written.
    defined: usize,
    /// Strings durably defined (`defined` goes back here when a batch fails).
    durable_defined: usize,
    /// No outbox reclaim before this (after a failed one).
    reclaim_after: Option<std::time::Instant>,
}

impl Writer {
    fn run(mut self, rx: std::sync::mpsc::Receiver<Job>) {
        // A barrier met while collecting a batch: it is the next batch, alone.
        let mut held: Option<Job> = None;
        while let Some(first) = held.take().or_else(|| rx.recv().ok()) {
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH && !jobs[0].commit.barrier {
                match rx.try_recv() {
                    Ok(j) if j.commit.barrier => {
                        held = Some(j);
                        break;
                    }
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            // Only ingest counts toward the overload limit (see `Store::ingest`); count
            // before `apply` drains the jobs.
            let n_ingested: usize = jobs
                .iter()
                .filter(|j| j.ingest)
                .map(|j| j.commit.alerts.len())
                .sum();
            let failed = self
                .failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let result = match failed {
                // sled cannot continue after a failed write, and after a failed fsync the
                // kernel may have dropped the pages it could not write: nothing written
                // since could be promised durable (reopening the store recovers)
                Some(msg) => Err(StoreError::Failed(msg)),
                None => match self.apply(&mut jobs) {
                    Err(e) => {
                        tracing::error!(error = %e, "store write failed: refusing writes until the store is reopened");
                        let msg = format!("store cannot be written ({e})");
                        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.clone());
                        Err(StoreError::Failed(msg))
                    }
                    ok => ok,
                },
            };
            if result.is_ok() {
                self.durable_defined = self.defined;
            } else {
                // definitions of the failed batch are written again with the next one
                self.defined = self.durable_defined;
                self.outbox.discard();
            }
            self.pending.fetch_sub(n_ingested, Ordering::AcqRel);
            match result {
                Ok(outcomes) => {
                    for (mut job, outcome) in jobs.into_iter().zip(outcomes) {
                        let reply = match outcome {
                            Ok(merged) => {
                                if let Some(then) = job.commit.then.take() {
                                    then(merged);
                                }
                                Ok(())
                            }
                            Err(e) => Err(e),
                        };
                        let _ = job.reply.send(reply);
                    }
                }
                Err(e) => {
                    let msg = match e {
                        StoreError::Failed(m) => m,
                        e => e.to_string(),
                    };
                    for job in jobs {
                        let _ = job.reply.send(Err(StoreError::Failed(msg.clone())));
                    }
                }
            }
            self.maybe_checkpoint();
        }
        // Closing: let a running checkpoint finish, so the database closes cleanly.
        if let Some((h, _)) = self.checkpointer.take() {
            let _ = h.join();
        }
        if let Err(e) = self.log.sync() {
            tracing::error!(error = %e, "cannot sync the alert log on close");
        }
    }

    /// Start a background checkpoint when the log has grown enough (and none is running);
    /// collect a finished one.
    fn maybe_checkpoint(&mut self) {
        self.reclaim_outbox();
        if let Some((h, _)) = &self.checkpointer {
            if !h.is_finished() {
                return;
            }
        }
        if let Some((h, covers)) = self.checkpointer.take() {
            match h.join() {
                Ok(Ok(mark)) => {
                    tracing::debug!(
                        generation = mark.generation,
                        covers,
                        "alert checkpoint written"
                    );
                    self.mark = mark;
                    self.stats.completed.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .generation
                        .store(mark.generation, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "alert checkpoint failed; the log keeps everything")
                }
                Err(_) => {
                    tracing::error!("alert checkpoint thread panicked; the log keeps everything")
                }
            }
        }
        self.stats
            .log_bytes
            .store(self.log_bytes, Ordering::Relaxed);
        let threshold = self.checkpoint_min_bytes.max(self.live.bytes() / 2);
        if self.log_bytes < threshold {
            return;
        }
        let covers = self.seq - 1;
        let (trees, live, prev) = (self.trees.clone(), self.live.clone(), self.mark);
        match std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || alertlog::checkpoint(&trees, &live, prev, covers))
        {
            Ok(h) => {
                self.checkpointer = Some((h, covers));
                self.log_bytes = 0;
            }
            Err(e) => tracing::error!(error = %e, "cannot start the checkpoint thread"),
        }
    }

    /// Reclaim outbox space (see [`outbox`]), unless the store has failed or the last
    /// attempt failed less than a minute ago (an unreadable notification would otherwise
    /// fail it, and log it, after every batch).
    fn reclaim_outbox(&mut self) {
        let failed = self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        let now = std::time::Instant::now();
        if failed || self.reclaim_after.is_some_and(|t| now < t) {
            return;
        }
        self.reclaim_after = None;
        if let Err(e) = self.outbox.reclaim() {
            tracing::error!(error = %e, "outbox: cannot reclaim space; retrying in a minute");
            self.reclaim_after = Some(now + std::time::Duration::from_secs(60));
        }
    }

    /// Apply every job's changes (alert log chunks, one `dispatch` batch), then flush once
    /// and, as `storage.sync` says, `fsync` what was written (`always`: whatever this batch
    /// wrote; `batch`: what the jobs somebody waits for wrote).
    /// Returns per job the merged alerts, or why its preconditions failed (nothing of that
    /// job applied).
    ///
    /// Alerts are merged against the live map, which is updated as we go (so several
    /// reports of one alert in the same batch merge in order). A job with conditions first
    /// applies what the dispatch batch holds so far, so its reads see every earlier job.
    fn apply(
        &mut self,
        jobs: &mut [Job],
    ) -> Result<Vec<Result<Vec<Merged>, StoreError>>, StoreError> {
        let dispatch = &self.dispatch;
        let live = &self.live;
        let mut log = Chunker::default();
        let mut dispatch_batch = DispatchBatch::default();
        // what the jobs somebody waits for write: the log, the dispatch state
        let (mut waited_log, mut waited_dispatch) = (false, false);
        for job in jobs.iter().filter(|j| j.waited) {
            let c = &job.commit;
            waited_log |= !c.alerts.is_empty() || !c.delete_alerts.is_empty();
            waited_dispatch |= !c.dispatch.is_empty() || c.conditional();
        }
        let sync_dispatch = self.sync.syncs_commit(waited_dispatch);
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs.iter_mut() {
            let c = &mut job.commit;
            if c.conditional() {
                // its reads must see every earlier job
                dispatch_batch.write(&mut self.outbox, dispatch, sync_dispatch)?;
                if let Err(e) = check(self.outbox.shared(), &c.require) {
                    outcomes.push(Err(e));
                    continue;
                }
            }
            let mut merged = Vec::with_capacity(c.alerts.len());
            for mut a in c.alerts.drain(..) {
                if let Some(old) = live.get(a.fingerprint) {
                    match old.merge_state(&live.strings) {
                        Ok(m) => a.merge_onto(&m),
                        Err(e) => tracing::error!(
                            fingerprint = %a.fingerprint,
                            error = %e,
                            "unreadable stored alert replaced by the new report"
                        ),
                    }
                }
                let record = AlertRecord::encode(&a, &live.strings);
                // strings this record interned first: replay must know them
                if live.strings.len() > self.defined {
                    log.define_since(&live.strings, self.defined);
                    self.defined = live.strings.len();
                }
                log.put(&record);
                live.put(record.clone());
                merged.push(Merged { alert: a, record });
            }
            for (fp, cutoff) in c.delete_alerts.drain(..) {
                let still_old = live.get(fp).is_some_and(|r| {
                    r.header()
                        .is_ok_and(|h| h.ends_at.is_some_and(|e| e < cutoff))
                });
                if still_old {
                    live.remove(fp);
                    log.del(fp);
                }
            }
            for op in c.dispatch.drain(..) {
                apply_dispatch_op(dispatch, &mut self.outbox, &mut dispatch_batch, op);
            }
            outcomes.push(Ok(merged));
        }
        let chunks = log.finish();
        let wrote_log = !chunks.is_empty();
        if wrote_log {
            self.log_bytes += self.log.append(&chunks, &mut self.seq)?;
        }
        dispatch_batch.write(&mut self.outbox, dispatch, sync_dispatch)?;
        // sled is flushed only when this batch changed it (ingest and delivery records
        // alone do not)
        if dispatch_batch.sled_written {
            self.trees.db.flush()?;
        }
        if wrote_log && self.sync.syncs_commit(waited_log) {
            self.log.sync()?;
        }
        if dispatch_batch.sled_written && sync_dispatch {
            self.trees.sled_sync.after_flush()?;
        }
        Ok(outcomes)
    }
}

/// The dispatch changes of a writer batch: sled's part and (in `outbox`) the outbox's.
#[derive(Default)]
struct DispatchBatch {
    sled: sled::Batch,
    /// `sled` has changes.
    dirty: bool,
    /// Some sled batch was applied (it needs a flush).
    sled_written: bool,
}

impl DispatchBatch {
    fn insert(&mut self, k: impl Into<sled::IVec>, v: impl Into<sled::IVec>) {
        self.sled.insert(k, v);
        self.dirty = true;
    }

    fn remove(&mut self, k: impl Into<sled::IVec>) {
        self.sled.remove(k);
        self.dirty = true;
    }

    /// Write what waits: the outbox frame first (synced if `sync`), flagged when sled
    /// changes too; then the sled batch with the outbox mark (see [`outbox`]), so sled
    /// never holds the half of a commit whose outbox half is not in the log.
    fn write(
        &mut self,
        outbox: &mut outbox::OutboxLog,
        dispatch: &sled::Tree,
        sync: bool,
    ) -> Result<(), StoreError> {
        if !outbox.is_empty() {
            outbox.write(self.dirty)?;
            // synced whenever the commit is (a replay or, with `always`, a delivery record
            // changes no sled key but is promised just the same)
            if sync {
                outbox.sync()?;
            }
        }
        if self.dirty {
            let mut b = std::mem::take(&mut self.sled);
            b.insert(keys::OUTBOX_MARK_KEY, &outbox.last_seq().to_be_bytes());
            dispatch.apply_batch(b)?;
            self.dirty = false;
            self.sled_written = true;
        }
        Ok(())
    }
}

fn apply_dispatch_op(
    dispatch: &sled::Tree,
    outbox: &mut outbox::OutboxLog,
    batch: &mut DispatchBatch,
    op: DispatchOp,
) {
    match op {
        DispatchOp::PutGroup(id, g) => batch.insert(keys::group(&id), encode(&g)),
        DispatchOp::DelGroup(id) => batch.remove(keys::group(&id)),
        DispatchOp::PutNflog(k, e) => batch.insert(k, encode(&e)),
        DispatchOp::DelNflog(k) => batch.remove(k),
        DispatchOp::PutNotification(n) => outbox.put(&n),
        DispatchOp::PutDelivery(id, d) => outbox.delivery(id, d),
        DispatchOp::DelNotification(id) => outbox.del(id),
        DispatchOp::DelNotificationIfFinishedBefore(id, cutoff) => {
            let old = outbox
                .shared()
                .state(id)
                .is_some_and(|(state, updated)| !state.is_open() && updated < cutoff);
            if old {
                outbox.del(id);
            }
        }
        DispatchOp::PutMessageRef(k, m) => batch.insert(k, encode(&m)),
        DispatchOp::PutSilence(s) => batch.insert(keys::silence(&s.id), encode(&*s)),
        DispatchOp::DelSilence(id) => batch.remove(keys::silence(&id)),
        DispatchOp::DelMessageRefIfOlder(key, cutoff) => {
            let old = read::<MessageRef>(dispatch, &key, "dispatch/messages")
                .is_some_and(|m| m.updated_at < cutoff);
            if old {
                batch.remove(key);
            }
        }
        DispatchOp::DelNflogIfExpired(key, t) => {
            let expired = read::<NflogEntry>(dispatch, &key, "dispatch/nflog")
                .is_some_and(|e| e.expires_at.is_some_and(|x| x < t));
            if expired {
                batch.remove(key);
            }
        }
    }
}

/// A record as the writer currently sees it; unreadable ones are logged and treated as
/// absent (a conditional delete then keeps them).
fn read<T: for<'de> Deserialize<'de>>(
    tree: &sled::Tree,
    key: &[u8],
    what: &'static str,
) -> Option<T> {
    match tree.get(key) {
        Ok(Some(v)) => decode(what, &v)
            .map_err(|e| tracing::warn!(error = %e, "conditional write: unreadable record"))
            .ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "conditional write: cannot read record");
            None
        }
    }
}

/// Move the notifications and delivery records a schema 3 store keeps in sled into the
/// outbox log (synced), then delete them from sled. Idempotent: a crash before the
/// deletion moves them again, replacing the copies.
fn migrate_outbox(
    dispatch: &sled::Tree,
    outbox: &mut outbox::OutboxLog,
) -> Result<usize, StoreError> {
    let mut moved = 0;
    let mut remove = sled::Batch::default();
    for kv in dispatch.scan_prefix(keys::OUTBOX_PREFIX) {
        let (k, v) = kv?;
        let mut n: Notification = decode("dispatch/outbox", &v)?;
        let dkey = keys::delivery(n.id);
        if let Some(d) = dispatch.get(&dkey)? {
            decode::<DeliveryRecord>("dispatch/delivery", &d)?.apply_to(&mut n);
        }
        outbox.put(&n);
        remove.remove(k);
        remove.remove(dkey);
        moved += 1;
        if moved % 1024 == 0 {
            outbox.write(false)?;
        }
    }
    // delivery records without their notification
    for kv in dispatch.scan_prefix(keys::DELIVERY_PREFIX) {
        remove.remove(kv?.0);
    }
    outbox.write(false)?;
    outbox.sync()?;
    dispatch.apply_batch(remove)?;
    Ok(moved)
}

/// Check a commit's preconditions against the current state of the outbox.
fn check(outbox: &outbox::Outbox, require: &[Precondition]) -> Result<(), StoreError> {
    for p in require {
        match p {
            Precondition::NotificationClosed(id) => match outbox.state(*id) {
                None => return Err(StoreError::Conflict(format!("no notification {id}"))),
                Some((state, _)) if state.is_open() => {
                    return Err(StoreError::Conflict(format!(
                        "notification {id} is already queued ({state:?})"
                    )))
                }
                Some(_) => {}
            },
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::alert::{LabelSet, Targets};

    /// Close `store` and wait until its directory can be opened again.
    pub(crate) fn close(store: Store) {
        let w = store.take_writer();
        drop(store);
        if let Some(w) = w {
            w.join().unwrap();
        }
    }

    /// A notification message of receiver `r` with no alerts.
    pub(crate) fn empty_message() -> crate::alert::WebhookMessage {
        crate::alert::WebhookMessage::new(
            "r",
            vec![],
            LabelSet::new(),
            "http://x",
            "{}:{}",
            "first notification",
        )
    }

    /// A firing alert with label `i` and a 100-byte annotation.
    pub(crate) fn alert(i: u64) -> Alert {
        let t = crate::alert::now();
        let labels: LabelSet = [("i".to_string(), i.to_string())].into();
        Alert {
            fingerprint: Fingerprint::of(&labels),
            labels,
            annotations: [("summary".to_string(), "x".repeat(100))].into(),
            starts_at: t,
            ends_at: None,
            generator_url: String::new(),
            updated_at: t,
            received_at: t,
            targets: Targets {
                routed: true,
                receivers: Default::default(),
            },
            timeout: false,
            handoff: false,
            expires: false,
        }
    }

    /// Regression: the overload counter must go back down once alerts are stored, or
    /// ingest is refused for good after `max_pending_alerts` alerts in total.
    #[tokio::test]
    async fn overload_limit_counts_waiting_alerts_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8, 10, 1 << 20).unwrap();
        for round in 0..10 {
            let batch: Vec<Alert> = (0..8).map(|i| alert(round * 8 + i)).collect();
            assert!(
                store.ingest(batch, |_| {}).await.is_ok(),
                "round {round} refused"
            );
        }
        assert_eq!(store.alert_count(), 80);
        assert_eq!(store.pending_alerts.load(Ordering::Acquire), 0);
    }

    /// Each `storage.sync` mode syncs exactly where it should: `none` never; `batch` every
    /// group commit somebody waits for (the log for alerts, sled for dispatch state) but not
    /// delivery bookkeeping queued without waiting; `always` that bookkeeping too.
    #[tokio::test]
    async fn each_sync_mode_syncs_where_it_should() {
        for mode in [SyncMode::None, SyncMode::Batch, SyncMode::Always] {
            let syncs = mode != SyncMode::None;
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open_with_sync(dir.path(), 8, 100, 1 << 20, mode).unwrap();
            assert_eq!(store.sync_mode(), mode);
            let opened = store.sync_count();
            assert_eq!(
                opened.sled > 0 && opened.log > 0 && opened.dirs > 0,
                syncs,
                "{mode:?}: everything synced once on open: {opened:?}"
            );
            // ingest: the alert log, before the answer
            store.ingest(vec![alert(1)], |_| {}).await.unwrap();
            let c = store.sync_count();
            assert_eq!(c.log - opened.log, u64::from(syncs), "{mode:?}: ingest");
            assert_eq!(c.sled, opened.sled, "{mode:?}: ingest does not touch sled");
            // delivery bookkeeping nobody waits for (made visible by an empty barrier)
            let group = GroupState {
                group_key: "g".into(),
                receiver: "r".into(),
                next_flush: crate::alert::now(),
                last_flush: None,
            };
            let put = |id: &str| Commit {
                dispatch: vec![DispatchOp::PutGroup(id.into(), group.clone())],
                ..Default::default()
            };
            store.commit_nowait(put("a")).unwrap();
            store.commit(Commit::default()).await.unwrap();
            let d = store.sync_count();
            assert_eq!(
                d.sled - c.sled,
                u64::from(mode == SyncMode::Always),
                "{mode:?}: bookkeeping"
            );
            assert_eq!(d.log, c.log, "{mode:?}: nothing written to the log");
            // a waited dispatch write (a flushed notification, a silence): sled
            store.commit(put("b")).await.unwrap();
            let e = store.sync_count();
            assert_eq!(e.sled - d.sled, u64::from(syncs), "{mode:?}: waited commit");
            // graceful shutdown syncs whatever is left
            store.flush().unwrap();
            assert_eq!(store.sync_count().sled - e.sled, u64::from(syncs));
        }
    }

    /// Group commit: requests queued while the writer is busy are answered after one
    /// shared `fsync`, not one each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_commits_share_one_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with_sync(dir.path(), 8, 1000, 1 << 20, SyncMode::Batch).unwrap();
        // the first commit's `then` holds the writer until we have queued the others
        let (entered_tx, entered_rx) = oneshot::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let s = store.clone();
        let first = tokio::spawn(async move {
            s.ingest(vec![alert(0)], move |_| {
                let _ = entered_tx.send(());
                let _ = release_rx.recv();
            })
            .await
        });
        entered_rx.await.unwrap();
        let before = store.sync_count();
        let queued: Vec<_> = (1..=20)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move { s.ingest(vec![alert(i)], |_| {}).await })
            })
            .collect();
        while store.pending_alerts.load(Ordering::Acquire) < 20 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        release_tx.send(()).unwrap();
        first.await.unwrap().unwrap();
        for q in queued {
            q.await.unwrap().unwrap();
        }
        assert_eq!(store.alert_count(), 21);
        assert_eq!(
            store.sync_count().log - before.log,
            1,
            "20 queued ingests, one fsync"
        );
    }

    /// A failed `fsync` fails its group commit and every later one: the kernel may have
    /// dropped the pages it could not write, so nothing can be promised until a restart.
    #[tokio::test]
    async fn a_failed_sync_stops_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with_sync(dir.path(), 8, 100, 1 << 20, SyncMode::Batch).unwrap();
        store.ingest(vec![alert(1)], |_| {}).await.unwrap();
        store
            .sled_sync
            .counts
            .fail_next_log_sync
            .store(true, Ordering::Relaxed);
        let e = store.ingest(vec![alert(2)], |_| {}).await.unwrap_err();
        assert!(e.to_string().contains("injected"), "{e}");
        let e = store.ingest(vec![alert(3)], |_| {}).await.unwrap_err();
        assert!(e.to_string().contains("injected"), "{e}");
        assert!(matches!(e, StoreError::Failed(_)), "{e:?}");
        let e = store.commit(Commit::default()).await.unwrap_err();
        assert!(e.to_string().contains("store cannot be written"), "{e}");
        assert!(store.failure().is_some_and(|m| m.contains("injected")));
        // reopening recovers; the acknowledged alert is there (the failed one may be:
        // it was written, its sync failed)
        close(store);
        let store = Store::open_with_sync(dir.path(), 8, 100, 1 << 20, SyncMode::Batch).unwrap();
        assert!(store.failure().is_none());
        assert!(store.alert(alert(1).fingerprint).unwrap().is_some());
        store.ingest(vec![alert(4)], |_| {}).await.unwrap();
    }

    /// An attempt's outcome is a small record beside the notification: read back, it
    /// overrides the delivery fields; storing the whole notification again replaces it;
    /// retention and deletion remove both; it survives a reopen.
    #[tokio::test]
    async fn delivery_records_override_the_stored_notification() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8, 100, 1 << 20).unwrap();
        let t = crate::alert::now();
        let n = Notification::pending(7, ("r", "log", 0), empty_message(), "<7@x>".into(), t);
        let put = |n: &Notification| Commit {
            dispatch: vec![DispatchOp::PutNotification(std::sync::Arc::new(n.clone()))],
            ..Default::default()
        };
        let record = |n: &Notification| Commit {
            dispatch: vec![DispatchOp::PutDelivery(n.id, DeliveryRecord::of(n))],
            ..Default::default()
        };
        store.commit(put(&n)).await.unwrap();
        let mut done = n.clone();
        done.state = DeliveryState::Delivered;
        done.attempts = 2;
        done.delivered_at = Some(t);
        done.platform_message_id = Some("m-1".into());
        store.commit(record(&done)).await.unwrap();
        assert_eq!(store.notification(7).unwrap().as_ref(), Some(&done));
        assert_eq!(
            store
                .notifications(10, |n| n.state == DeliveryState::Delivered)
                .unwrap(),
            vec![done.clone()]
        );
        assert!(store.open_notifications().unwrap().is_empty());
        // a replay stores the whole notification again: its own state wins
        store.commit(put(&n)).await.unwrap();
        assert_eq!(store.notification(7).unwrap().as_ref(), Some(&n));
        store.commit(record(&done)).await.unwrap();
        store.flush().unwrap();
        close(store);
        let store = Store::open(dir.path(), 8, 100, 1 << 20).unwrap();
        assert_eq!(store.notification(7).unwrap().as_ref(), Some(&done));
        // retention deletes the notification and its record together
        store
            .commit(Commit {
                dispatch: vec![DispatchOp::DelNotificationIfFinishedBefore(
                    7,
                    t + time::Duration::seconds(1),
                )],
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(store.notification(7).unwrap(), None);
        close(store);
        let store = Store::open(dir.path(), 8, 100, 1 << 20).unwrap();
        assert_eq!(
            store.notification(7).unwrap(),
            None,
            "the deletion is stored"
        );
    }

    fn note(id: u64, t: OffsetDateTime) -> Notification {
        Notification::pending(id, ("r", "log", 0), empty_message(), format!("<{id}@x>"), t)
    }

    /// A schema 3 store (notifications and delivery records in sled) is upgraded in place:
    /// its notifications move to the outbox log with their delivery records applied, sled
    /// keeps none, and it is marked schema 4 (a build that knows only 3 then refuses it
    /// rather than miss every notification). A schema 2 store takes the same path.
    #[tokio::test]
    async fn a_schema_3_store_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let t = crate::alert::now();
        let n = |id: u64| note(id, t);
        let mut done = n(2);
        done.state = DeliveryState::Delivered;
        done.attempts = 1;
        {
            let store = Store::open(dir.path(), 8, 100, 1 << 20).unwrap();
            store.ingest(vec![alert(1)], |_| {}).await.unwrap();
            for id in 1..=2 {
                store
                    .dispatch
                    .insert(keys::outbox(id), encode(&n(id)))
                    .unwrap();
            }
            store
                .dispatch
                .insert(keys::delivery(2), encode(&DeliveryRecord::of(&done)))
                .unwrap();
            store
                .db
                .open_tree(keys::TREE_META)
                .unwrap()
                .insert(keys::SCHEMA_KEY, b"3")
                .unwrap();
            store.flush().unwrap();
            close(store);
        }
        for _ in 0..2 {
            let store = Store::open(dir.path(), 8, 100, 1 << 20).unwrap();
            assert!(store.alert(alert(1).fingerprint).unwrap().is_some());
            assert_eq!(store.notification(1).unwrap(), Some(n(1)));
            assert_eq!(store.notification(2).unwrap(), Some(done.clone()));
            assert_eq!(store.open_notifications().unwrap(), vec![n(1)]);
            assert_eq!(store.dispatch.scan_prefix(keys::OUTBOX_PREFIX).count(), 0);
            assert_eq!(store.dispatch.scan_prefix(keys::DELIVERY_PREFIX).count(), 0);
            let meta = store.db.open_tree(keys::TREE_META).unwrap();
            assert_eq!(
                meta.get(keys::SCHEMA_KEY).unwrap().as_deref(),
                Some(&b"4"[..])
            );
            close(store);
        }
    }

    /// The notification-log half of a flush and its queued notification are one commit:
    /// a notification whose sled half was lost in a crash (the outbox mark is behind its
    /// frame) is not there after a restart, so the flush is redone once, not sent twice.
    #[tokio::test]
    async fn a_queued_notification_without_its_nflog_half_is_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let t = crate::alert::now();
        let n = |id: u64| note(id, t);
        let flush = |id: u64| Commit {
            dispatch: vec![
                DispatchOp::PutNflog(format!("n/{id}").into_bytes(), NflogEntry::default()),
                DispatchOp::PutNotification(std::sync::Arc::new(n(id))),
            ],
            ..Default::default()
        };
        let mark;
        {
            let store = Store::open(dir.path(), 8, 100, 1 << 20).unwrap();
            store.commit(flush(1)).await.unwrap();
            mark = store.dispatch.get(keys::OUTBOX_MARK_KEY).unwrap().unwrap();
            store.commit(flush(2)).await.unwrap();
            assert!(store.notification(2).unwrap().is_some());
            // the crash: sled lost the second commit's half
            store.dispatch.remove(b"n/2").unwrap();
            store
                .dispatch
                .insert(keys::OUTBOX_MARK_KEY, mark.clone())
                .unwrap();
            store.flush().unwrap();
            close(store);
        }
        let store = Store::open(dir.path(), 8, 100, 1 << 20).unwrap();
        assert!(store.notification(1).unwrap().is_some());
        assert_eq!(store.notification(2).unwrap(), None);
        assert!(store.nflog(b"n/1").unwrap().is_some());
        // later commits are kept across the next restart (the cut frame is gone for good)
        store.commit(flush(3)).await.unwrap();
        close(store);
        let store = Store::open(dir.path(), 8, 100, 1 << 20).unwrap();
        let ids: Vec<u64> = store
            .notifications(10, |_| true)
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(ids, vec![3, 1]);
    }

    /// A snapshot sees exactly the commits queued before it, and its callback runs between
    /// their `then`s and those of later commits, even when all are queued at once (the
    /// writer would otherwise apply them in one batch and the snapshot would show the
    /// later state before the earlier report was handed on).
    #[tokio::test]
    async fn a_snapshot_falls_between_the_reports_it_contains_and_the_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8, 100, 1 << 20).unwrap();
        let firing = alert(1);
        let mut resolved = firing.clone();
        resolved.ends_at = Some(firing.starts_at + time::Duration::minutes(1));
        resolved.updated_at = firing.updated_at + time::Duration::seconds(1);
        let order = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        for _ in 0..20 {
            order.lock().unwrap().clear();
            let (o1, o2, o3) = (order.clone(), order.clone(), order.clone());
            let strings = store.live.clone();
            let a = store.ingest(vec![firing.clone()], move |_| {
                o1.lock().unwrap().push("firing handed on".into())
            });
            let snap = store.snapshot(move |records| {
                let ended = records
                    .iter()
                    .find(|r| r.fingerprint() == firing_fp())
                    .and_then(|r| r.decode(&strings.strings).ok())
                    .map(|a| a.ends_at.is_some());
                o2.lock()
                    .unwrap()
                    .push(format!("snapshot: resolved={ended:?}"));
            });
            let b = store.ingest(vec![resolved.clone()], move |_| {
                o3.lock().unwrap().push("resolve handed on".into())
            });
            let (a, snap, b) = futures::join!(a, snap, b);
            a.unwrap();
            snap.unwrap();
            b.unwrap();
            assert_eq!(
                *order.lock().unwrap(),
                vec![
                    "firing handed on".to_string(),
                    "snapshot: resolved=Some(false)".to_string(),
                    "resolve handed on".to_string(),
                ]
            );
        }
    }

    fn firing_fp() -> Fingerprint {
        alert(1).fingerprint
    }

    /// A directory held by another handle is refused with an error that says so, after
    /// the bounded wait.
    #[test]
    fn a_held_directory_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let _held = open_sled(dir.path(), 8, LOCK_WAIT).unwrap();
        let started = std::time::Instant::now();
        let e = open_sled(dir.path(), 8, std::time::Duration::from_millis(200)).unwrap_err();
        assert!(started.elapsed() >= std::time::Duration::from_millis(200));
        assert!(matches!(e, StoreError::Locked { .. }), "{e:?}");
        assert!(
            e.to_string().contains("in use by another alert-router"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn merges_with_what_is_stored_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let first = alert(1);
        {
            let store = Store::open(dir.path(), 8, 100, 1 << 20).unwrap();
            store.ingest(vec![first.clone()], |_| {}).await.unwrap();
            store.flush().unwrap();
        }
        // the writer thread of the first handle releases the lock when it sees the channel close
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let store = loop {
            match Store::open(dir.path(), 8, 100, 1 << 20) {
                Ok(s) => break s,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("reopen failed: {e}"),
            }
        };
        let mut later = first.clone();
        later.starts_at = first.starts_at + time::Duration::minutes(1);
        later.received_at = first.received_at + time::Duration::minutes(1);
        later
            .annotations
            .insert("summary".into(), "now with a summary".into());
        let (tx, rx) = std::sync::mpsc::channel();
        store
            .ingest(vec![later], move |m| {
                let _ = tx.send(m);
            })
            .await
            .unwrap();
        let merged = rx.recv().unwrap();
        assert_eq!(
            merged[0].alert.starts_at, first.starts_at,
            "earliest start kept after reopen"
        );
        assert_eq!(merged[0].alert.received_at, first.received_at);
        let stored = store.alert(first.fingerprint).unwrap().unwrap();
        assert_eq!(
            stored.annotations.get("summary").map(String::as_str),
            Some("now with a summary")
        );
    }
}
