//! alert-router: durable, deduplicating, rate-limited delivery for Alertmanager
//! notifications.
//!
//! Data flows one way: ingest (HTTP) → store (sled, flushed before the ack) → dispatch
//! (route tree, aggregation groups, notification log) → notify (one worker per
//! integration: rate limit, retry, dead letters). [`App`] wires them from a [`Config`].

pub mod alert;
pub mod config;
pub mod dispatch;
pub mod duration;
pub mod gotemplate;
pub mod http;
pub mod inhibit;
pub mod matcher;
pub mod metrics;
pub mod notify;
pub mod route;
pub mod secret;
pub mod silence;
pub mod store;
pub mod template;
pub mod timeinterval;

use arc_swap::ArcSwap;
use config::Config;
use dispatch::{Dispatcher, DispatcherHandle, Routing};
use metrics::Metrics;
use notify::Hub;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use time::OffsetDateTime;

/// Startup failures.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("cannot open store at {path}: {err}")]
    Store {
        path: String,
        err: store::StoreError,
    },
    #[error("{0}")]
    Runtime(#[from] store::StoreError),
    #[error("cannot listen on {addr}: {err}")]
    Listen { addr: String, err: std::io::Error },
    #[error("invalid integration: {0}")]
    Integration(String),
    #[error("{0}")]
    Tls(#[from] http::listener::TlsError),
}

/// Where the configuration came from (for reloads).
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    Embedded,
}

impl ConfigSource {
    pub fn load(&self) -> Result<(Config, String), config::ConfigError> {
        match self {
            ConfigSource::File(p) => {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                Ok((Config::load_file(p)?, hash(&text)))
            }
            ConfigSource::Embedded => {
                Ok((Config::default_embedded()?, hash(config::DEFAULT_CONFIG)))
            }
        }
    }
}

fn hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// The running application: shared by every HTTP handler.
pub struct App {
    config: ArcSwap<Config>,
    routing: ArcSwap<Routing>,
    config_hash: ArcSwap<String>,
    source: ConfigSource,
    pub store: Store,
    pub hub: Arc<Hub>,
    pub dispatcher: DispatcherHandle,
    pub metrics: Arc<Metrics>,
    pub silences: Arc<silence::Silences>,
    pub started_at: OffsetDateTime,
    reload_lock: tokio::sync::Mutex<()>,
}

impl App {
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub fn routing(&self) -> Arc<Routing> {
        self.routing.load_full()
    }

    pub fn config_hash(&self) -> String {
        self.config_hash.load().to_string()
    }

    pub fn config_source(&self) -> String {
        match &self.source {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Embedded => "embedded".into(),
        }
    }

    /// Ready when the store takes writes, the dispatcher runs and every configured
    /// integration has a live worker.
    pub fn is_ready(&self) -> bool {
        self.store.failure().is_none()
            && self.dispatcher.running()
            && self.hub.running()
            && self
                .hub
                .serves_all(self.routing().worker_keys().iter().map(String::as_str))
    }

    /// Start a reload as a task owned by the app: a client that stops waiting for it
    /// (or a request timeout) cannot interrupt it half-way.
    pub fn spawn_reload(self: &Arc<Self>) -> tokio::task::JoinHandle<Result<(), String>> {
        let app = self.clone();
        tokio::spawn(async move { app.reload().await })
    }

    /// Re-read the configuration; an invalid one is rejected and the old one keeps running.
    /// Call it from a task of its own ([`App::spawn_reload`]): it must not be cancelled.
    ///
    /// Order matters: workers first (existing ones take their new settings, new
    /// integrations get one), then the routing, and only then are the workers of removed
    /// integrations retired — so every notification the old or the new routing queues
    /// has a worker.
    async fn reload(&self) -> Result<(), String> {
        let _guard = self.reload_lock.lock().await;
        let result = async {
            let (cfg, h) = self.source.load().map_err(|e| e.to_string())?;
            let old = self.config();
            if cfg.listen != old.listen || cfg.storage.path != old.storage.path {
                tracing::warn!("listen and storage.path changes take effect only after a restart");
            }
            if cfg.server != old.server || cfg.tls != old.tls {
                tracing::warn!("server and tls changes take effect only after a restart (certificate files are reloaded when they change)");
            }
            let templates = Arc::new(template::Templates::from_config(&cfg)?);
            let notifiers = notify::build_notifiers(&cfg, &templates)?;
            let cfg = Arc::new(cfg);
            let routing = Arc::new(Routing::new(cfg.clone()));
            self.hub.apply(notifiers, &cfg.delivery);
            self.config.store(cfg);
            self.routing.store(routing.clone());
            self.config_hash.store(Arc::new(h));
            self.dispatcher.reload(routing.clone()).await;
            let keep = routing.worker_keys().into_iter().collect();
            self.hub.retire(&keep).await.map_err(|e| {
                format!("removed integrations: cannot record their dead letters: {e}")
            })?;
            Ok::<(), String>(())
        }
        .await;
        match &result {
            Ok(()) => {
                self.metrics.config_reload_success.set(1);
                self.metrics
                    .config_reload_timestamp
                    .set(OffsetDateTime::now_utc().unix_timestamp() as f64);
                tracing::info!(hash = %self.config_hash(), "configuration reloaded");
            }
            Err(e) => {
                self.metrics.config_reload_success.set(0);
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
            }
        }
        result
    }
}

/// A started router (tests use it in-process).
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    gc: tokio::task::JoinHandle<()>,
    acks: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Graceful stop: stop accepting, finish in-flight requests, stop workers, flush.
    /// When it returns, the store is closed (its directory can be opened again), unless
    /// something outside still holds the app.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.server.await;
        // The GC task holds the app (and so the store) until it is stopped.
        self.gc.abort();
        let _ = self.gc.await;
        self.acks.abort();
        let _ = self.acks.await;
        self.app.hub.stop().await;
        // Barrier: queued delivery-state updates are written before the final flush.
        let _ = self.app.store.commit(store::Commit::default()).await;
        let _ = self.app.store.flush();
        let writer = self.app.store.take_writer();
        // Dropping the app ends the dispatcher (its channel closes), which drops the last
        // store handles; the writer thread then ends and sled closes the database.
        drop(self.app);
        if let Some(w) = writer {
            let joined = tokio::task::spawn_blocking(move || {
                let _ = w.join();
            });
            if tokio::time::timeout(STORE_CLOSE_WAIT, joined)
                .await
                .is_err()
            {
                tracing::warn!("the store is still open (another handle holds it)");
            }
        }
    }
}

/// Open the store, rebuild state, start workers and the HTTP server.
pub async fn start(source: ConfigSource) -> Result<Running, AppError> {
    let (cfg, h) = source.load()?;
    // First, before anything is opened: a bad certificate file is a startup error naming it.
    let tls = cfg
        .tls
        .as_ref()
        .map(http::listener::Tls::load)
        .transpose()?;
    let metrics = Arc::new(Metrics::new());
    let store = Store::open_with_sync(
        &cfg.storage.path,
        cfg.storage.cache_capacity_mb,
        cfg.ingest.max_pending_alerts,
        cfg.storage.checkpoint_min_bytes,
        cfg.storage.sync,
    )
    .map_err(|err| AppError::Store {
        path: cfg.storage.path.display().to_string(),
        err,
    })?;
    let silences =
        Arc::new(
            silence::Silences::open(store.clone()).map_err(|err| AppError::Store {
                path: cfg.storage.path.display().to_string(),
                err,
            })?,
        );
    let templates =
        Arc::new(template::Templates::from_config(&cfg).map_err(AppError::Integration)?);
    let notifiers = notify::build_notifiers(&cfg, &templates).map_err(AppError::Integration)?;
    let hub = Arc::new(Hub::new(store.clone(), metrics.clone()));
    hub.start(notifiers, &cfg.delivery).await?;
    let cfg = Arc::new(cfg);
    let routing = Arc::new(Routing::new(cfg.clone()));
    let (dispatcher, _join) = Dispatcher::start(
        store.clone(),
        hub.clone(),
        metrics.clone(),
        routing.clone(),
        silences.clone(),
    )
    .await?;
    metrics.config_reload_success.set(1);
    metrics
        .config_reload_timestamp
        .set(OffsetDateTime::now_utc().unix_timestamp() as f64);
    let addr = cfg.listen_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| AppError::Listen {
            addr: addr.to_string(),
            err,
        })?;
    let addr = listener.local_addr().map_err(|err| AppError::Listen {
        addr: addr.to_string(),
        err,
    })?;
    let app = Arc::new(App {
        config: ArcSwap::from(cfg.clone()),
        routing: ArcSwap::from(routing),
        config_hash: ArcSwap::from_pointee(h),
        source,
        store: store.clone(),
        hub,
        dispatcher,
        metrics,
        silences,
        started_at: OffsetDateTime::now_utc(),
        reload_lock: tokio::sync::Mutex::new(()),
    });
    let gc = spawn_gc(app.clone());
    let acks = spawn_ack_sweeper(app.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = http::router(app.clone());
    let server = tokio::spawn(http::listener::serve(
        listener,
        router,
        cfg.server.clone(),
        tls,
        app.metrics.clone(),
        async {
            let _ = rx.await;
        },
    ));
    tracing::info!(%addr, tls = cfg.tls.is_some(), external_url = %cfg.external_url(), "alert-router listening");
    Ok(Running {
        addr,
        app,
        shutdown: tx,
        server,
        gc,
        acks,
    })
}

/// Run until `shutdown` resolves, reloading on SIGHUP. When the store stops taking writes
/// (a full disk, an I/O error: see [`Store::failure`]), the router keeps answering (`503`
/// to writes, `/-/ready` false), logs one error per [`STORE_PROBE_PERIOD`] and probes the
/// store directory; once it takes writes again, the app is stopped and started again on
/// the same configuration, which reopens the store from what is on disk.
pub async fn run(source: ConfigSource, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    let mut running = start(source.clone()).await?;
    // The app SIGHUP reloads: a weak reference, so this task never keeps an app (and its
    // store) alive past a stop; replaced when the app is restarted.
    let current = Arc::new(std::sync::Mutex::new(Arc::downgrade(&running.app)));
    #[cfg(unix)]
    {
        let current = current.clone();
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let app = current.lock().unwrap_or_else(|p| p.into_inner()).upgrade();
                    let Some(app) = app else { continue };
                    tracing::info!("SIGHUP: reloading configuration");
                    let _ = app.spawn_reload().await;
                }
            });
        }
    }
    tokio::pin!(shutdown);
    loop {
        let store = running.app.store.clone();
        tokio::select! {
            _ = &mut shutdown => break,
            _ = wait_store_writable_again(&store) => {}
        }
        drop(store);
        tracing::warn!("the store takes writes again: restarting to reopen it");
        running.stop().await;
        running = loop {
            match start(source.clone()).await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot restart after a store failure; retrying");
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(STORE_PROBE_PERIOD) => {}
                    }
                }
            }
        };
        *current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&running.app);
        tracing::info!("store reopened; accepting writes again");
    }
    tracing::info!("shutting down: finishing in-flight requests and deliveries");
    running.stop().await;
    tracing::info!("store flushed; bye");
    Ok(())
}

/// How often a failed store is reported and its directory probed.
pub const STORE_PROBE_PERIOD: Duration = Duration::from_secs(5);

/// What the probe writes: room for sled's recovery and the log's next writes.
const STORE_PROBE_BYTES: usize = 8 << 20;

/// Returns once the store has failed and its directory takes writes again; logs the
/// failure once per [`STORE_PROBE_PERIOD`] meanwhile.
async fn wait_store_writable_again(store: &Store) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let failure = loop {
        tick.tick().await;
        if let Some(f) = store.failure() {
            break f;
        }
    };
    let dir = store.path().to_path_buf();
    let mut tick = tokio::time::interval(STORE_PROBE_PERIOD);
    loop {
        tick.tick().await;
        let d = dir.clone();
        let probe = tokio::task::spawn_blocking(move || {
            store::fsync::probe_writable(&d, STORE_PROBE_BYTES)
        })
        .await;
        match probe {
            Ok(Ok(())) => return,
            Ok(Err(e)) => tracing::error!(
                failure = %failure,
                probe = %e,
                "store refuses writes (ingest answers 503); probing again in {}s",
                STORE_PROBE_PERIOD.as_secs()
            ),
            Err(e) => tracing::error!(error = %e, "store probe panicked"),
        }
    }
}

/// How long a graceful stop waits for the store to close.
const STORE_CLOSE_WAIT: Duration = Duration::from_secs(10);

/// How often retention garbage collection runs.
const GC_PERIOD: Duration = Duration::from_secs(600);

/// How often acknowledgements are checked even without a hint (alerts that resolve by
/// their end time passing, not by a post, send no hint).
const ACK_SWEEP_PERIOD: Duration = Duration::from_secs(5);

/// Expires "acknowledge until resolved" silences once all their alerts have resolved:
/// woken by the dispatcher when a bound alert resolves, and every few seconds.
fn spawn_ack_sweeper(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            app.silences.wait_resolved_hint(ACK_SWEEP_PERIOD).await;
            let t = alert::now();
            for (state, n) in app.silences.counts(t) {
                app.metrics
                    .silences
                    .get_or_create(&metrics::labels(&[("state", state.as_str())]))
                    .set(n as i64);
            }
            let store = app.store.clone();
            // Unreadable = not known to be resolved: the acknowledgement stays.
            let resolved = move |fp| match store.alert(fp) {
                Ok(None) => true,
                Ok(Some(a)) => a.resolved_at(t),
                Err(_) => false,
            };
            match app.silences.expire_resolved_acks(t, resolved).await {
                Ok(ids) => {
                    for id in ids {
                        tracing::info!(silence = %id, "acknowledged alerts resolved; acknowledgement expired");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot expire resolved acknowledgements"),
            }
        }
    })
}

/// Periodic garbage collection of resolved alerts, old notifications and expired nflog
/// entries (older than `storage.retention`).
fn spawn_gc(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Each pass reads every alert and notification back, so it runs rarely: retention
        // is counted in hours.
        let mut tick = tokio::time::interval(GC_PERIOD);
        loop {
            tick.tick().await;
            let retention = app.config().storage.retention.0;
            let store = app.store.clone();
            // A whole-store scan: off the async runtime.
            let scan = tokio::task::spawn_blocking(move || {
                store::gc::collect(&store, retention, alert::now())
            })
            .await;
            if let Err(e) = app.silences.collect_garbage(retention, alert::now()).await {
                tracing::warn!(error = %e, "garbage collection of expired silences failed");
            }
            match scan {
                Ok(Ok(commit)) if !commit.is_empty() => {
                    if let Err(e) = app.store.commit(commit).await {
                        tracing::warn!(error = %e, "garbage collection failed");
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "garbage collection scan failed"),
                Err(e) => tracing::warn!(error = %e, "garbage collection scan panicked"),
            }
        }
    })
}
