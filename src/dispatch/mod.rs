//! The dispatcher: routes stored alerts into aggregation groups, runs their timers
//! (`group_wait`, `group_interval`), and at each flush applies the notification-log rules
//! per integration, queueing notifications durably before any worker sees them.
//!
//! One task owns all groups, so there are no locks on the hot path; timers are a sorted
//! set of deadlines. Group deadlines and the notification log live in the store, so a
//! restart neither re-waits `group_wait` nor repeats a notification.

pub mod nflog;

use crate::alert::{
    notification_order, now, Alert, Fingerprint, LabelSet, WebhookAlert, WebhookMessage,
};
use crate::config::Config;
use crate::inhibit::Inhibitor;
use crate::metrics::Metrics;
use crate::notify::Hub;
use crate::route::{GroupBy, Route};
use crate::silence::Silences;
use crate::store::record::{AlertRecord, Header};
use crate::store::{
    keys, Commit, DispatchOp, GroupState, Merged, NflogEntry, Notification, Store, StoreError,
};
use crate::timeinterval::{muted_by_names, TimeIntervals};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};

/// How often the alert and group gauges are recomputed while alerts change.
const GAUGE_PERIOD: Duration = Duration::from_secs(5);

/// How often ended sources are dropped from the inhibition index.
const INHIBIT_PRUNE_PERIOD: Duration = Duration::from_secs(60);

/// Most groups one flush commit carries. When thousands come due at once (a storm, a
/// restart), their notifications are written and handed to the workers in chunks, so
/// delivery starts after the first chunk instead of after the last, and the store writer
/// and the workers run side by side; alerts arriving meanwhile are taken between chunks.
const FLUSH_CHUNK: usize = 256;

fn read(i: &RwLock<Inhibitor>) -> std::sync::RwLockReadGuard<'_, Inhibitor> {
    i.read().unwrap_or_else(|p| p.into_inner())
}

fn write(i: &RwLock<Inhibitor>) -> std::sync::RwLockWriteGuard<'_, Inhibitor> {
    i.write().unwrap_or_else(|p| p.into_inner())
}

/// Routing state derived from one configuration.
pub struct Routing {
    pub config: Arc<Config>,
    pub root: Route,
    direct: HashMap<String, Route>,
    /// receiver → its integrations as (kind, index).
    integrations: HashMap<String, Vec<(&'static str, usize)>>,
    external_url: String,
    message_host: String,
    intervals: TimeIntervals,
    /// route id → (`mute_time_intervals`, `active_time_intervals`), for routes with any.
    route_intervals: HashMap<String, (Vec<String>, Vec<String>)>,
}

fn collect_intervals(r: &Route, out: &mut HashMap<String, (Vec<String>, Vec<String>)>) {
    if !r.mute_time_intervals.is_empty() || !r.active_time_intervals.is_empty() {
        out.insert(
            r.id.clone(),
            (
                r.mute_time_intervals.clone(),
                r.active_time_intervals.clone(),
            ),
        );
    }
    for c in &r.routes {
        collect_intervals(c, out);
    }
}

impl Routing {
    pub fn new(config: Arc<Config>) -> Self {
        let root = Route::from_config(&config.route);
        let mut direct = HashMap::new();
        let mut integrations = HashMap::new();
        for r in &config.receivers {
            let name = r.name.value.clone();
            direct.insert(name.clone(), Route::direct(&root, &name));
            integrations.insert(name, r.integrations());
        }
        let external_url = config.external_url();
        let message_host = reqwest::Url::parse(&external_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "alert-router".to_string());
        let intervals = TimeIntervals::from_config(&config);
        let mut route_intervals = HashMap::new();
        collect_intervals(&root, &mut route_intervals);
        Routing {
            config,
            root,
            direct,
            integrations,
            external_url,
            message_host,
            intervals,
            route_intervals,
        }
    }

    /// Worker keys of every configured integration.
    pub fn worker_keys(&self) -> Vec<String> {
        self.integrations
            .iter()
            .flat_map(|(r, v)| {
                v.iter()
                    .map(move |(kind, i)| crate::store::worker_key(r, kind, *i))
            })
            .collect()
    }

    pub fn has_receiver(&self, name: &str) -> bool {
        self.direct.contains_key(name)
    }

    /// Time intervals muting the route with this id at `t` (Alertmanager's `mutedBy`).
    pub fn route_muted_by(&self, route_id: &str, t: OffsetDateTime) -> Vec<String> {
        match self.route_intervals.get(route_id) {
            Some((mute, active)) => muted_by_names(mute, active, &self.intervals, t),
            None => Vec::new(),
        }
    }

    /// Time intervals muting an alert at `t`: those of its routes, if every one of its
    /// routes is muted (otherwise it is delivered somewhere: not muted).
    pub fn muted_by_all(&self, routes: &[&Route], t: OffsetDateTime) -> Vec<String> {
        let mut names = Vec::new();
        for r in routes {
            let m = self.route_muted_by(&r.id, t);
            if m.is_empty() {
                return Vec::new();
            }
            names.extend(m);
        }
        names.sort();
        names.dedup();
        names
    }

    /// Every route an alert can be delivered through, in a fixed order (the tree depth
    /// first, then the direct routes by receiver): [`Prepared`] names routes by position.
    fn route_list(&self) -> Vec<&Route> {
        let mut out = Vec::new();
        self.root.walk(&mut out);
        let mut direct: Vec<&Route> = self.direct.values().collect();
        direct.sort_by(|a, b| a.receiver.cmp(&b.receiver));
        out.extend(direct);
        out
    }

    /// The label names routing and grouping look at (every matcher's and `group_by`'s),
    /// sorted; `None` when a route groups by every label (`...`).
    fn routing_names(&self) -> Option<Vec<String>> {
        let mut names = Vec::new();
        for r in self.route_list() {
            names.extend(r.matchers.0.iter().map(|m| m.name.clone()));
            match &r.group_by {
                GroupBy::All => return None,
                GroupBy::Labels(l) => names.extend(l.iter().cloned()),
            }
        }
        names.sort();
        names.dedup();
        Some(names)
    }

    /// Routes an alert is delivered through.
    pub fn routes_for(&self, a: &Alert) -> Vec<&Route> {
        let mut out = if a.targets.routed {
            self.root.match_labels(&a.labels)
        } else {
            Vec::new()
        };
        out.extend(
            a.targets
                .receivers
                .iter()
                .filter_map(|r| self.direct.get(r)),
        );
        out
    }
}

/// One aggregation group.
struct Group {
    key: String,
    labels: LabelSet,
    receiver: String,
    route_id: String,
    group_interval: Duration,
    repeat_interval: Duration,
    alerts: BTreeMap<Fingerprint, Member>,
    next_flush: OffsetDateTime,
    last_flush: Option<OffsetDateTime>,
    /// Its timer state is in the store (written at its first flush, then whenever a flush
    /// sends something).
    stored: bool,
    /// Firing alerts its last flush left out (silenced, inhibited, muted).
    suppressed: usize,
    /// Holds resolves handed over by an Alertmanager for alerts whose firing this router
    /// may never have announced (see [`Alert::handoff`]): they are announced anyway.
    handoff: bool,
}

/// An alert in a group: the store's shared record (decoded only when the group flushes)
/// and its end time (what the gauges and views count by).
struct Member {
    record: AlertRecord,
    ends_at: Option<OffsetDateTime>,
    /// The end is the webhook TTL (see [`Alert::expires`]).
    expires: bool,
}

impl Member {
    fn resolved_at(&self, t: OffsetDateTime) -> bool {
        self.ends_at.is_some_and(|e| e <= t)
    }
}

/// What the admin API shows about a group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub id: String,
    #[serde(rename = "groupKey")]
    pub group_key: String,
    pub receiver: String,
    pub route: String,
    pub labels: LabelSet,
    pub alerts: Vec<String>,
    pub firing: usize,
    pub resolved: usize,
    #[serde(with = "time::serde::rfc3339")]
    pub next_flush: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_flush: Option<OffsetDateTime>,
}

enum Msg {
    Alerts(Vec<Merged>),
    /// The stored alerts at this point of the writer's order (see [`Store::snapshot`]).
    Snapshot(Vec<AlertRecord>),
    Reload(Arc<Routing>, oneshot::Sender<()>),
    Groups(oneshot::Sender<Vec<GroupView>>),
}

/// The group label of a route's overflow group (see `ingest.max_groups`).
pub const OVERFLOW_LABEL: &str = "alert_router_overflow";

/// Handle to the dispatcher task.
#[derive(Clone)]
pub struct DispatcherHandle {
    tx: mpsc::UnboundedSender<Msg>,
    alive: watch::Receiver<bool>,
    backlog: Arc<AtomicUsize>,
    inhibitor: Arc<RwLock<Inhibitor>>,
}

impl DispatcherHandle {
    /// Feed durably stored alerts.
    pub fn alerts(&self, alerts: Vec<Merged>) {
        let n = alerts.len();
        self.backlog.fetch_add(n, Ordering::AcqRel);
        if self.tx.send(Msg::Alerts(alerts)).is_err() {
            self.backlog.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Stored alerts not grouped yet: ingest refuses work (503) while this is over its
    /// limit, so a dispatcher falling behind cannot make memory grow without bound.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Acquire)
    }

    /// Swap the routing (config reload); groups are rebuilt from the store.
    pub async fn reload(&self, routing: Arc<Routing>) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Reload(routing, tx)).is_ok() {
            let _ = rx.await;
        }
    }

    pub async fn groups(&self) -> Vec<GroupView> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Groups(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    pub fn running(&self) -> bool {
        *self.alive.borrow()
    }

    /// A firing alert that inhibits this one at `t`, if any.
    pub fn inhibited_by(
        &self,
        fp: Fingerprint,
        labels: &LabelSet,
        t: OffsetDateTime,
    ) -> Option<Fingerprint> {
        read(&self.inhibitor).inhibited_by(fp, labels, t)
    }
}

pub struct Dispatcher {
    rx: mpsc::UnboundedReceiver<Msg>,
    /// This task's own channel, to receive a snapshot in order (weak: the task ends when
    /// every handle is gone).
    tx: mpsc::WeakUnboundedSender<Msg>,
    backlog: Arc<AtomicUsize>,
    store: Store,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    routing: Arc<Routing>,
    silences: Arc<Silences>,
    /// Source alerts of the inhibition rules (shared with the API, which asks it too).
    inhibitor: Arc<RwLock<Inhibitor>>,
    inhibitor_pruned: std::time::Instant,
    groups: HashMap<String, Group>,
    timers: BTreeSet<(OffsetDateTime, String)>,
    persisted: HashMap<String, GroupState>,
    /// During a rebuild, per group without stored state: when its earliest firing alert
    /// arrived (what a stored resolved alert is owed against). Computed once per group: a
    /// rebuild inserts every firing alert before the first resolved one.
    episode_start: HashMap<String, Option<OffsetDateTime>>,
    gauges_updated: std::time::Instant,
    gauges_dirty: bool,
}

impl Dispatcher {
    /// Rebuild groups from the store and start the dispatcher task.
    pub async fn start(
        store: Store,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        routing: Arc<Routing>,
        silences: Arc<Silences>,
    ) -> Result<(DispatcherHandle, tokio::task::JoinHandle<()>), crate::store::StoreError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (alive_tx, alive) = watch::channel(true);
        let backlog = Arc::new(AtomicUsize::new(0));
        let inhibitor = Arc::new(RwLock::new(Inhibitor::new(&routing.config.inhibit_rules)));
        let mut d = Dispatcher {
            tx: tx.downgrade(),
            inhibitor: inhibitor.clone(),
            inhibitor_pruned: std::time::Instant::now(),
            rx,
            backlog: backlog.clone(),
            persisted: store.group_states()?,
            store,
            hub,
            metrics,
            routing,
            silences,
            groups: HashMap::new(),
            episode_start: HashMap::new(),
            timers: BTreeSet::new(),
            gauges_updated: std::time::Instant::now(),
            gauges_dirty: false,
        };
        // nothing is ingested before the listener opens: the live map is the snapshot
        let records = d.store.alert_records();
        d.rebuild(records).await?;
        let join = tokio::spawn(async move {
            d.run().await;
            let _ = alive_tx.send(false);
        });
        Ok((
            DispatcherHandle {
                tx,
                alive,
                backlog,
                inhibitor,
            },
            join,
        ))
    }

    /// Rebuild every group from the stored alerts (start and reload). Firing alerts go
    /// first, so that a resolved alert only joins a group that still owes a notification
    /// for it (see [`Dispatcher::insert`]).
    async fn rebuild(&mut self, records: Vec<AlertRecord>) -> Result<(), crate::store::StoreError> {
        let started = std::time::Instant::now();
        self.groups.clear();
        self.episode_start.clear();
        self.timers.clear();
        let mut inhibitor = Inhibitor::new(&self.routing.config.inhibit_rules);
        let store = self.store.clone();
        // Decoded off the async runtime, on every core, a slice at a time (a million alerts
        // decoded at once would double the memory); grouping here overlaps the next slice.
        let (tx, mut rx) = mpsc::channel::<Vec<Prepared>>(2);
        let routing = self.routing.clone();
        let t = now();
        let labels = !inhibitor.is_empty();
        let decoder = tokio::task::spawn_blocking(move || {
            let mut records = records;
            let firing = firing_first(&mut records, t);
            let (firing, resolved) = records.split_at(firing);
            let names = routing.routing_names();
            let how = Decode {
                store: &store,
                routing: &routing,
                names: names.as_deref(),
                labels,
                t,
            };
            for part in [firing, resolved] {
                for slice in part.chunks(REBUILD_SLICE) {
                    if tx.blocking_send(decode_parallel(&how, slice)).is_err() {
                        return;
                    }
                }
            }
        });
        let mut n = 0usize;
        let routing = self.routing.clone();
        let routes = routing.route_list();
        while let Some(decoded) = rx.recv().await {
            n += decoded.len();
            for p in decoded {
                if let Some(l) = &p.labels {
                    inhibitor.observe(p.head.fingerprint, l, p.head.ends_at);
                }
                for (i, labels, id) in p.groups.iter() {
                    if let Some(route) = routes.get(*i) {
                        let group = (*route, labels, id.as_str());
                        self.join_group(&p.head, false, p.record.clone(), group, true, t);
                    }
                }
            }
        }
        self.episode_start = HashMap::new();
        decoder
            .await
            .map_err(|e| crate::store::StoreError::Failed(e.to_string()))?;
        *write(&self.inhibitor) = inhibitor;
        self.update_gauges();
        tracing::info!(
            alerts = n,
            groups = self.groups.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "aggregation groups rebuilt from the store"
        );
        Ok(())
    }

    /// Delete persisted timer state of groups that no longer exist (routes changed).
    async fn drop_stale_group_states(&mut self) {
        let stale: Vec<String> = self
            .persisted
            .keys()
            .filter(|id| !self.groups.contains_key(*id))
            .cloned()
            .collect();
        if stale.is_empty() {
            return;
        }
        for id in &stale {
            self.persisted.remove(id);
        }
        let commit = Commit {
            dispatch: stale.into_iter().map(DispatchOp::DelGroup).collect(),
            ..Default::default()
        };
        if let Err(e) = self.store.commit(commit).await {
            tracing::warn!(error = %e, "cannot delete stale group states");
        }
    }

    async fn run(&mut self) {
        self.drop_stale_group_states().await;
        loop {
            let next = self.timers.first().map(|(t, _)| *t);
            let mut sleep = match next {
                Some(t) => {
                    let d = t - now();
                    Duration::try_from(d).unwrap_or(Duration::ZERO)
                }
                None => Duration::from_secs(3600),
            };
            // Gauges are recomputed at most every GAUGE_PERIOD (they walk every alert).
            if self.gauges_dirty {
                let due = GAUGE_PERIOD.saturating_sub(self.gauges_updated.elapsed());
                if due.is_zero() {
                    self.update_gauges();
                } else {
                    sleep = sleep.min(due);
                }
            }
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    None => return,
                    Some(Msg::Alerts(alerts)) => {
                        let n = alerts.len();
                        let t = now();
                        {
                            let mut inh = write(&self.inhibitor);
                            if !inh.is_empty() {
                                for m in &alerts {
                                    inh.observe(m.alert.fingerprint, &m.alert.labels, m.alert.ends_at);
                                }
                            }
                        }
                        for m in alerts {
                            if m.alert.resolved_at(t) {
                                self.silences.hint_resolved(m.alert.fingerprint);
                            }
                            self.insert(&m.alert, m.record, false);
                        }
                        self.backlog.fetch_sub(n, Ordering::AcqRel);
                        self.gauges_dirty = true;
                    }
                    Some(Msg::Reload(routing, done)) => {
                        self.routing = routing;
                        let mut dones = vec![done];
                        let records = self.snapshot(&mut dones).await;
                        self.persisted = self.store.group_states().unwrap_or_default();
                        if let Err(e) = self.rebuild(records).await {
                            tracing::error!(error = %e, "rebuilding groups after reload failed");
                        }
                        self.drop_stale_group_states().await;
                        for done in dones {
                            let _ = done.send(());
                        }
                    }
                    // the answer to a snapshot request given up on
                    Some(Msg::Snapshot(_)) => {}
                    Some(Msg::Groups(reply)) => {
                        let _ = reply.send(self.views());
                    }
                },
                _ = tokio::time::sleep(sleep), if next.is_some() || self.gauges_dirty => {
                    self.flush_due().await;
                }
            }
        }
    }

    /// The stored alerts for a rebuild, received in order through this task's channel:
    /// reports queued before the snapshot are in it (so they are not applied again),
    /// reports after it are applied after the rebuild, so an older report never lands on
    /// a newer state. Reloads arriving meanwhile take effect in this rebuild (`dones`).
    async fn snapshot(&mut self, dones: &mut Vec<oneshot::Sender<()>>) -> Vec<AlertRecord> {
        let Some(tx) = self.tx.upgrade() else {
            return self.store.alert_records();
        };
        let store = self.store.clone();
        let asked = store.snapshot(move |records| {
            let _ = tx.send(Msg::Snapshot(records));
        });
        tokio::pin!(asked);
        let mut answered = false;
        loop {
            tokio::select! {
                r = &mut asked, if !answered => {
                    answered = true;
                    if let Err(e) = r {
                        // not in order, but no report is lost: the live map has them all
                        tracing::warn!(error = %e, "no store snapshot; rebuilding from the live map");
                        return self.store.alert_records();
                    }
                }
                m = self.rx.recv() => match m {
                    Some(Msg::Snapshot(records)) => return records,
                    Some(Msg::Alerts(alerts)) => {
                        // contained in the snapshot; only the silences' hint is taken
                        let t = now();
                        for m in &alerts {
                            if m.alert.resolved_at(t) {
                                self.silences.hint_resolved(m.alert.fingerprint);
                            }
                        }
                        self.backlog.fetch_sub(alerts.len(), Ordering::AcqRel);
                    }
                    Some(Msg::Reload(routing, done)) => {
                        self.routing = routing;
                        dones.push(done);
                    }
                    Some(Msg::Groups(reply)) => {
                        let _ = reply.send(self.views());
                    }
                    None => return self.store.alert_records(),
                },
            }
        }
    }

    /// Put an alert into every group its routes lead to.
    ///
    /// A resolved alert never creates a group while running (Alertmanager drops it). Read
    /// back from the store (restart, reload) it joins a group only if that group still owes
    /// a notification for it: it ended after the group's last flush — or, for a group not
    /// flushed yet in this episode, after the episode's first firing alert arrived.
    /// Anything older was notified (and purged) already, so it is not announced again.
    fn insert(&mut self, a: &Alert, record: AlertRecord, from_store: bool) {
        let routing = self.routing.clone();
        let (head, t) = (Header::of(a), now());
        for route in routing.routes_for(a) {
            let labels = route.group_labels(&a.labels);
            let id = route.group_id(&labels);
            let group = (route, &labels, id.as_str());
            self.join_group(&head, a.handoff, record.clone(), group, from_store, t);
        }
    }

    /// Put an alert known by its header (`handoff`: it came by webhook) into one of its
    /// groups: `group` is (route, group labels, group id), computed by the caller (a rebuild
    /// computes them on every core, once per distinct routing key).
    fn join_group(
        &mut self,
        a: &Header,
        handoff: bool,
        record: AlertRecord,
        group: (&Route, &LabelSet, &str),
        from_store: bool,
        t: OffsetDateTime,
    ) {
        let resolved = a.resolved_at(t);
        let max_groups = self.routing.config.ingest.max_groups;
        let (route, labels, id) = group;
        let overflow = self.limit_groups(route, a.fingerprint, id, resolved, max_groups);
        let (labels, id) = match &overflow {
            Some((l, id)) => (l, id.as_str()),
            None => (labels, id),
        };
        if resolved {
            let owed = if from_store {
                self.owes(id, a, t)
            } else {
                handoff || self.groups.contains_key(id)
            };
            if !owed {
                return;
            }
        }
        // Alertmanager: a group created by an alert that started more than group_wait
        // ago flushes at once (no re-waiting after restarts).
        let gw = time::Duration::try_from(route.group_wait).unwrap_or(time::Duration::ZERO);
        let first_flush = if a
            .starts_at
            .checked_add(gw)
            .is_some_and(|s| s < a.received_at)
        {
            a.received_at
        } else {
            a.received_at + gw
        };
        if let Some(g) = self.groups.get_mut(id) {
            // Rebuilt and not flushed yet: group_wait counts from its earliest alert
            // (when Alertmanager would have created it), not from whichever alert the
            // rebuild meets first, or every reload would postpone its first flush.
            if from_store && !g.stored && g.last_flush.is_none() && first_flush < g.next_flush {
                self.timers.remove(&(g.next_flush, id.to_string()));
                g.next_flush = first_flush;
                self.timers.insert((first_flush, id.to_string()));
            }
        } else {
            let persisted = self.persisted.get(id);
            let next_flush = match persisted {
                Some(p) => p.next_flush,
                None => first_flush,
            };
            let g = Group {
                key: route.group_key(labels),
                labels: labels.clone(),
                receiver: route.receiver.clone(),
                route_id: route.id.clone(),
                group_interval: route.group_interval,
                repeat_interval: route.repeat_interval,
                alerts: BTreeMap::new(),
                next_flush,
                last_flush: persisted.and_then(|p| p.last_flush),
                stored: persisted.is_some(),
                suppressed: 0,
                handoff: false,
            };
            self.timers.insert((next_flush, id.to_string()));
            self.groups.insert(id.to_string(), g);
        }
        if let Some(g) = self.groups.get_mut(id) {
            g.handoff |= resolved && handoff;
            g.alerts.insert(
                a.fingerprint,
                Member {
                    record: record.clone(),
                    ends_at: a.ends_at,
                    expires: a.expires,
                },
            );
        }
    }

    /// `ingest.max_groups`: the group an alert of `route` joins. Its own group when that
    /// exists or may be created; past the limit a new group is not created and the alert
    /// joins the route's overflow group instead (group labels [`OVERFLOW_LABEL`]`="true"`),
    /// so it is still notified, in one message with the other overflowed alerts. An alert
    /// already in the overflow group stays there (its repeats and its resolve are sent
    /// where its firing was).
    /// `None`: the alert's own group.
    fn limit_groups(
        &mut self,
        route: &Route,
        fingerprint: Fingerprint,
        id: &str,
        resolved: bool,
        max_groups: usize,
    ) -> Option<(LabelSet, String)> {
        if self.groups.contains_key(id) {
            return None;
        }
        let overflow_labels = LabelSet::from([(OVERFLOW_LABEL.to_string(), "true".to_string())]);
        let overflow_id = route.group_id(&overflow_labels);
        let overflow = self.groups.get(&overflow_id);
        if overflow.is_some_and(|g| g.alerts.contains_key(&fingerprint)) {
            return Some((overflow_labels, overflow_id));
        }
        if resolved || self.groups.len() < max_groups {
            return None;
        }
        if overflow.is_none() {
            tracing::warn!(
                route = %route.id,
                max_groups,
                "ingest.max_groups reached: new groups of this route join its overflow group"
            );
        }
        self.metrics
            .groups_limited
            .get_or_create(&crate::metrics::labels(&[("receiver", &route.receiver)]))
            .inc();
        Some((overflow_labels, overflow_id))
    }

    /// Whether group `id` still owes a notification for the stored resolved alert `a`.
    fn owes(&mut self, id: &str, a: &Header, t: OffsetDateTime) -> bool {
        let since = match (self.persisted.get(id), self.groups.get(id)) {
            (Some(p), _) => p.last_flush,
            (None, Some(g)) => *self.episode_start.entry(id.to_string()).or_insert_with(|| {
                g.alerts
                    .values()
                    .filter(|x| !x.resolved_at(t))
                    .filter_map(|x| x.record.header().ok().map(|h| h.received_at))
                    .min()
            }),
            (None, None) => return false,
        };
        owed_since(since, a)
    }

    fn update_gauges(&mut self) {
        let t = now();
        if self.inhibitor_pruned.elapsed() >= INHIBIT_PRUNE_PERIOD {
            self.inhibitor_pruned = std::time::Instant::now();
            let mut inh = write(&self.inhibitor);
            if !inh.is_empty() {
                inh.prune(t);
            }
        }
        // Counted per group: an alert routed to two groups (`continue`) counts twice.
        let firing: usize = self
            .groups
            .values()
            .map(|g| g.alerts.values().filter(|a| !a.resolved_at(t)).count())
            .sum();
        self.metrics.alerts_active.set(firing as i64);
        let suppressed: usize = self.groups.values().map(|g| g.suppressed).sum();
        self.metrics.alerts_suppressed.set(suppressed as i64);
        self.metrics.groups.set(self.groups.len() as i64);
        self.gauges_updated = std::time::Instant::now();
        self.gauges_dirty = false;
    }

    fn views(&self) -> Vec<GroupView> {
        let t = now();
        let mut v: Vec<GroupView> = self
            .groups
            .iter()
            .map(|(id, g)| GroupView {
                id: id.clone(),
                group_key: g.key.clone(),
                receiver: g.receiver.clone(),
                route: g.route_id.clone(),
                labels: g.labels.clone(),
                alerts: g.alerts.keys().map(|f| f.to_string()).collect(),
                firing: g.alerts.values().filter(|a| !a.resolved_at(t)).count(),
                resolved: g.alerts.values().filter(|a| a.resolved_at(t)).count(),
                next_flush: g.next_flush,
                last_flush: g.last_flush,
            })
            .collect();
        v.sort_by(|a, b| (&a.receiver, &a.group_key).cmp(&(&b.receiver, &b.group_key)));
        v
    }

    /// Flush the groups whose deadline has passed, at most [`FLUSH_CHUNK`] of them, with
    /// one durable commit for all; the run loop comes back at once for the rest.
    async fn flush_due(&mut self) {
        let t = now();
        let due: Vec<(OffsetDateTime, String)> = self
            .timers
            .iter()
            .take_while(|(d, _)| *d <= t)
            .take(FLUSH_CHUNK)
            .cloned()
            .collect();
        if due.is_empty() {
            return;
        }
        let mut commit = Commit::default();
        // about three operations per group (notification, nflog entry, timer): sized once
        commit.dispatch.reserve(due.len() * 3);
        let mut queued: Vec<Arc<Notification>> = Vec::with_capacity(due.len());
        let mut purges: Vec<(String, Vec<(Fingerprint, AlertRecord)>)> = Vec::new();
        let routing = self.routing.clone();
        for entry in &due {
            self.timers.remove(entry);
            let id = &entry.1;
            let Some(g) = self.groups.get_mut(id) else {
                continue;
            };
            match flush_group(
                id,
                g,
                &routing,
                &self.store,
                &self.hub,
                &self.metrics,
                &self.silences,
                &self.inhibitor,
                t,
                &mut commit,
                &mut queued,
            ) {
                Ok(purge) => purges.push((id.clone(), purge)),
                Err(e) => {
                    tracing::error!(group = %g.key, error = %e, "flush failed; retrying shortly");
                    g.next_flush = t + time::Duration::seconds(5);
                    self.timers.insert((g.next_flush, id.clone()));
                }
            }
        }
        if let Err(e) = self.store.commit(commit).await {
            match e {
                // a failed store is reported (once per interval) where it is probed
                StoreError::Failed(_) => {
                    tracing::debug!(error = %e, "cannot store flushed notifications; retrying shortly")
                }
                e => {
                    tracing::error!(error = %e, "cannot store flushed notifications; retrying shortly")
                }
            }
            for (id, _) in purges {
                if let Some(g) = self.groups.get_mut(&id) {
                    g.next_flush = t + time::Duration::seconds(5);
                    self.timers.insert((g.next_flush, id.clone()));
                }
            }
            return;
        }
        for n in queued {
            // the writer has dropped its reference: no copy
            self.hub
                .enqueue(Arc::try_unwrap(n).unwrap_or_else(|n| (*n).clone()));
        }
        for (id, purge) in purges {
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            for (fp, record) in purge {
                // Only if no newer report replaced it meanwhile.
                if g.alerts.get(&fp).is_some_and(|m| m.record == record) {
                    g.alerts.remove(&fp);
                }
            }
            if g.alerts.is_empty() {
                self.groups.remove(&id);
                self.persisted.remove(&id);
            } else {
                self.timers.insert((g.next_flush, id.clone()));
            }
        }
        if due.len() < FLUSH_CHUNK {
            self.update_gauges();
        } else {
            // more chunks follow at once: the gauges (a walk over every alert) wait for them
            self.gauges_dirty = true;
        }
    }
}

/// Whether a stored resolved alert is owed by a group that last flushed at `since` (or
/// that no flush has seen yet, `None`): it ended after that flush, or its resolve was
/// reported after it. A resolve arrives late as a rule (an upstream Alertmanager sends it
/// up to its own `group_interval` after the end), so its end alone may predate a flush that
/// still saw the alert firing.
fn owed_since(since: Option<OffsetDateTime>, a: &Header) -> bool {
    since.is_none_or(|s| a.ends_at.is_some_and(|e| e > s) || a.updated_at > s)
}

/// Move the records of alerts resolved at `t` after the others, in place (a million
/// records copied into two new vectors would be memory the restart keeps); returns the
/// number of the others.
fn firing_first(records: &mut [AlertRecord], t: OffsetDateTime) -> usize {
    let resolved = |r: &AlertRecord| r.header().is_ok_and(|h| h.resolved_at(t));
    let (mut i, mut end) = (0, records.len());
    while i < end {
        if resolved(&records[i]) {
            end -= 1;
            records.swap(i, end);
        } else {
            i += 1;
        }
    }
    i
}

/// Alerts decoded per step of a rebuild.
const REBUILD_SLICE: usize = 32 * 1024;

/// A stored alert ready to be grouped: its record and header, its labels when the
/// inhibition rules need them (firing alerts, when there are rules), and its groups as
/// (position in [`Routing::route_list`], group labels, group id), shared by every alert
/// with the same routing key.
struct Prepared {
    record: AlertRecord,
    head: Header,
    labels: Option<LabelSet>,
    groups: RoutedGroups,
}

/// An alert's groups: (position in [`Routing::route_list`], group labels, group id).
type RoutedGroups = Arc<[(usize, LabelSet, String)]>;

/// How a rebuild decodes: the store, the routing, the label names routing looks at (`None`:
/// all of them), whether labels are kept for the inhibitor, and the time.
struct Decode<'a> {
    store: &'a Store,
    routing: &'a Routing,
    names: Option<&'a [String]>,
    labels: bool,
    t: OffsetDateTime,
}

/// Most distinct routing keys one decoding thread remembers per slice (one group per
/// alert would otherwise make it a second copy of every key).
const ROUTING_CACHE: usize = 4096;

/// Decode what grouping needs of `records`, split over every core. Routing and grouping run
/// once per distinct routing key (see [`AlertRecord::routing_key`]): a million alerts in a
/// few groups are not each decoded and matched. Unreadable records are logged and skipped.
fn decode_parallel(how: &Decode<'_>, records: &[AlertRecord]) -> Vec<Prepared> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = records.len().div_ceil(threads).max(1);
    let decode = |part: &[AlertRecord]| -> Vec<Prepared> {
        let routes = how.routing.route_list();
        let mut cache: HashMap<Vec<u8>, RoutedGroups> = HashMap::new();
        let mut key = Vec::new();
        let mut out = Vec::with_capacity(part.len());
        for record in part {
            let unreadable = |e: StoreError| {
                tracing::error!(fingerprint = %record.fingerprint(), error = %e, "unreadable alert record skipped");
            };
            let head = match how.names {
                Some(names) => how.store.routing_key(record, names, &mut key),
                None => record
                    .header()
                    .map_err(|e| StoreError::Failed(e.to_string())),
            };
            let head = match head {
                Ok(h) => h,
                Err(e) => {
                    unreadable(e);
                    continue;
                }
            };
            let want_labels = how.labels && !head.resolved_at(how.t);
            let cached = how.names.and_then(|_| cache.get(&key).cloned());
            let (groups, labels) = match cached {
                Some(g) if !want_labels => (g, None),
                _ => {
                    let alert = match how.store.decode_for_routing(record) {
                        Ok(a) => a,
                        Err(e) => {
                            unreadable(e);
                            continue;
                        }
                    };
                    let groups: RoutedGroups = how
                        .routing
                        .routes_for(&alert)
                        .into_iter()
                        .filter_map(|route| {
                            let i = routes.iter().position(|r| std::ptr::eq(*r, route))?;
                            let labels = route.group_labels(&alert.labels);
                            let id = route.group_id(&labels);
                            Some((i, labels, id))
                        })
                        .collect();
                    if how.names.is_some() && cache.len() < ROUTING_CACHE {
                        cache.insert(key.clone(), groups.clone());
                    }
                    (groups, want_labels.then_some(alert.labels))
                }
            };
            out.push(Prepared {
                record: record.clone(),
                head,
                labels,
                groups,
            });
        }
        out
    };
    std::thread::scope(|s| {
        let parts: Vec<_> = records
            .chunks(per)
            .map(|part| s.spawn(move || decode(part)))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| {
                p.join().unwrap_or_else(|_| {
                    tracing::error!("a decoding thread panicked; its alerts are not grouped until the next reload");
                    Vec::new()
                })
            })
            .collect()
    })
}

/// Build the notifications one group owes at `t`; returns the resolved alerts to purge
/// once the commit is durable.
#[allow(clippy::too_many_arguments)]
fn flush_group(
    id: &str,
    g: &mut Group,
    routing: &Routing,
    store: &Store,
    hub: &Hub,
    metrics: &Metrics,
    silences: &Silences,
    inhibitor: &RwLock<Inhibitor>,
    t: OffsetDateTime,
    commit: &mut Commit,
    queued: &mut Vec<Arc<Notification>>,
) -> Result<Vec<(Fingerprint, AlertRecord)>, crate::store::StoreError> {
    let mut alerts: Vec<Alert> = Vec::with_capacity(g.alerts.len());
    for m in g.alerts.values() {
        match store.decode(&m.record) {
            Ok(a) => alerts.push(a),
            Err(e) => {
                tracing::error!(group = %g.key, fingerprint = %m.record.fingerprint(), error = %e, "unreadable alert record left out of the notification")
            }
        }
    }
    alerts.sort_by(|a, b| notification_order(&a.labels, &b.labels));
    // Webhook alerts their Alertmanager stopped sending (`ingest.webhook_firing_ttl`) leave
    // quietly: nobody said they resolved, so no resolve is announced; they are left out of
    // this and later notifications and purged with the resolved ones.
    let before = alerts.len();
    alerts.retain(|a| !a.expired_at(t));
    let expired = before - alerts.len();
    if expired > 0 {
        metrics.alerts_expired.inc_by(expired as u64);
        tracing::info!(
            group = %g.key,
            receiver = %g.receiver,
            expired,
            "firing webhook alerts not sent again within ingest.webhook_firing_ttl leave the group without a resolve notification"
        );
    }
    // Muted alerts are left out (Alertmanager's inhibition, time-interval and silence
    // stages run before the notification log); if nothing is left, nothing is sent or
    // recorded. A route muted by its time intervals mutes the whole group.
    let group_muted = !routing.route_muted_by(&g.route_id, t).is_empty();
    let muted: HashSet<Fingerprint> = {
        let inh = read(inhibitor);
        alerts
            .iter()
            .filter(|a| {
                group_muted
                    || (!inh.is_empty() && inh.inhibited_by(a.fingerprint, &a.labels, t).is_some())
                    || !silences.silenced_by(a.fingerprint, &a.labels, t).is_empty()
            })
            .map(|a| a.fingerprint)
            .collect()
    };
    // Muted firing alerts stay in the notification log's firing set where they were
    // announced before, so the log does not forget them while they are muted.
    let muted_firing: BTreeSet<u64> = alerts
        .iter()
        .filter(|a| muted.contains(&a.fingerprint) && !a.resolved_at(t))
        .map(|a| a.fingerprint.0)
        .collect();
    g.suppressed = muted_firing.len();
    if !muted.is_empty() {
        alerts.retain(|a| !muted.contains(&a.fingerprint));
    }
    let firing: BTreeSet<u64> = alerts
        .iter()
        .filter(|a| !a.resolved_at(t))
        .map(|a| a.fingerprint.0)
        .collect();
    let resolved: BTreeSet<u64> = alerts
        .iter()
        .filter(|a| a.resolved_at(t))
        .map(|a| a.fingerprint.0)
        .collect();
    // Alerts some integration announced as firing: a muted one that resolved is kept in
    // the group so its resolution goes out once the mute ends (Alertmanager drops it).
    let mut announced: HashSet<u64> = HashSet::new();
    let ops_before = commit.dispatch.len();
    let cfg = &routing.config;
    let retention = cfg.storage.retention.0;
    for &(kind, index) in routing
        .integrations
        .get(&g.receiver)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let wkey = crate::store::worker_key(&g.receiver, kind, index);
        let send_resolved = hub.send_resolved(&wkey);
        let nkey = keys::nflog(&g.receiver, kind, index, &g.key);
        let entry = store.nflog(&nkey)?;
        if !muted.is_empty() {
            if let Some(e) = &entry {
                announced.extend(e.firing.iter().copied());
            }
        }
        if alerts.is_empty() {
            continue;
        }
        let firing_here: std::borrow::Cow<'_, BTreeSet<u64>> = match &entry {
            Some(e) if !muted_firing.is_empty() => {
                let mut f = firing.clone();
                f.extend(e.firing.iter().filter(|x| muted_firing.contains(x)));
                std::borrow::Cow::Owned(f)
            }
            _ => std::borrow::Cow::Borrowed(&firing),
        };
        let reason = nflog::needs_update(
            entry.as_ref(),
            &firing_here,
            &resolved,
            send_resolved,
            g.repeat_interval,
            t,
        )
        .or_else(|| {
            (g.handoff && send_resolved)
                .then(|| nflog::handed_over_resolve(entry.as_ref(), &firing_here, &resolved))
                .flatten()
        });
        let Some(reason) = reason else {
            metrics
                .dedup_suppressed
                .get_or_create(&crate::metrics::integration_labels(&g.receiver, kind))
                .inc();
            continue;
        };
        let expiry = retention
            .min(g.repeat_interval * 2)
            .max(g.group_interval * 2);
        let mut new_entry = NflogEntry {
            firing: firing_here.iter().copied().collect(),
            resolved: resolved.iter().copied().collect(),
            timestamp: Some(t),
            thread_root: None,
            thread_last: None,
            expires_at: Some(t + time::Duration::try_from(expiry).unwrap_or(time::Duration::DAY)),
        };
        let continuing = entry.as_ref().is_some_and(|e| !e.firing.is_empty());
        if continuing {
            new_entry.thread_root = entry.as_ref().and_then(|e| e.thread_root.clone());
            new_entry.thread_last = entry.as_ref().and_then(|e| e.thread_last.clone());
        }
        let wire: Vec<WebhookAlert> = alerts
            .iter()
            .filter(|a| send_resolved || !a.resolved_at(t))
            .map(|a| WebhookAlert::from_alert(a, t))
            .collect();
        if wire.is_empty() {
            // Nothing to say (only resolved alerts, send_resolved off): record the state so
            // the next firing starts a new episode, as Alertmanager does.
            commit.dispatch.push(DispatchOp::PutNflog(nkey, new_entry));
            continue;
        }
        let nid = store.next_id()?;
        let digest = Sha256::digest(g.key.as_bytes());
        let message_id = format!(
            "<{}.{}@{}>",
            hex::encode(&digest[..8]),
            nid,
            routing.message_host
        );
        let in_reply_to = new_entry.thread_root.clone();
        let references: Vec<String> = match (&new_entry.thread_root, &new_entry.thread_last) {
            (Some(r), Some(l)) if r != l => vec![r.clone(), l.clone()],
            (Some(r), _) => vec![r.clone()],
            _ => Vec::new(),
        };
        if new_entry.thread_root.is_none() {
            new_entry.thread_root = Some(message_id.clone());
        }
        new_entry.thread_last = Some(message_id.clone());
        let message = WebhookMessage::new(
            &g.receiver,
            wire,
            g.labels.clone(),
            &routing.external_url,
            &g.key,
            reason,
        );
        // encoded once here, for both the outbox log and the request body
        let message = crate::store::Message::encoded(message);
        let mut n = Notification::pending(nid, (&g.receiver, kind, index), message, message_id, t);
        n.in_reply_to = in_reply_to;
        n.references = references;
        tracing::debug!(group = %g.key, worker = %wkey, reason, "notification queued");
        metrics
            .notifications_queued
            .get_or_create(&crate::metrics::integration_labels(&g.receiver, kind))
            .inc();
        commit.dispatch.push(DispatchOp::PutNflog(nkey, new_entry));
        let n = Arc::new(n);
        commit.dispatch.push(DispatchOp::PutNotification(n.clone()));
        queued.push(n);
    }
    g.last_flush = Some(t);
    g.next_flush = t + time::Duration::try_from(g.group_interval).unwrap_or(time::Duration::MINUTE);
    let purge: Vec<(Fingerprint, AlertRecord)> = g
        .alerts
        .iter()
        .filter(|(fp, m)| {
            m.resolved_at(t) && (m.expires || !(muted.contains(fp) && announced.contains(&fp.0)))
        })
        .map(|(fp, m)| (*fp, m.record.clone()))
        .collect();
    if purge.len() == g.alerts.len() {
        commit.dispatch.push(DispatchOp::DelGroup(id.to_string()));
    } else if !g.stored || commit.dispatch.len() > ops_before {
        // Timer state is rewritten only when this flush recorded something: a flush that
        // sends nothing leaves it as it was (after a restart the group then flushes a little
        // early, and the notification log keeps that from repeating anything), so idle
        // groups cost no writes every group_interval.
        g.stored = true;
        commit.dispatch.push(DispatchOp::PutGroup(
            id.to_string(),
            GroupState {
                group_key: g.key.clone(),
                receiver: g.receiver.clone(),
                next_flush: g.next_flush,
                last_flush: g.last_flush,
            },
        ));
    }
    Ok(purge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Fingerprint, LabelSet, Targets};

    /// A resolved alert that ended `ended` minutes and was reported `reported` minutes
    /// after `t0`.
    fn resolved(t0: OffsetDateTime, ended: i64, reported: i64) -> Header {
        Header::of(&resolved_alert(t0, ended, reported))
    }

    fn resolved_alert(t0: OffsetDateTime, ended: i64, reported: i64) -> Alert {
        let min = time::Duration::minutes;
        Alert {
            fingerprint: Fingerprint(1),
            labels: LabelSet::new(),
            annotations: LabelSet::new(),
            starts_at: t0,
            ends_at: Some(t0 + min(ended)),
            generator_url: String::new(),
            updated_at: t0 + min(reported),
            received_at: t0,
            targets: Targets::default(),
            timeout: false,
            handoff: false,
            expires: false,
        }
    }

    /// Which stored resolved alerts a restart puts back into a group flushed at minute 10.
    #[test]
    fn a_resolve_reported_after_the_last_flush_is_still_owed() {
        let t0 = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let flush = Some(t0 + time::Duration::minutes(10));
        assert!(!owed_since(flush, &resolved(t0, 5, 6)), "announced already");
        assert!(
            owed_since(flush, &resolved(t0, 12, 12)),
            "ended after the flush"
        );
        assert!(
            owed_since(flush, &resolved(t0, 5, 11)),
            "ended before the flush that saw it firing, reported after it"
        );
        assert!(owed_since(None, &resolved(t0, 5, 6)), "no flush yet");
    }

    #[test]
    fn firing_first_puts_resolved_records_last() {
        let t0 = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let strings = crate::store::record::Interner::default();
        for pattern in [
            "",
            "f",
            "r",
            "rrff",
            "ffrr",
            "rfrfrfrrff",
            "rrrrrrf",
            "frrrrrrr",
        ] {
            let mut records: Vec<AlertRecord> = pattern
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    let mut alert = resolved_alert(t0, 5, 6);
                    alert.fingerprint = Fingerprint(i as u64);
                    if c == 'f' {
                        alert.ends_at = None;
                    }
                    AlertRecord::encode(&alert, &strings)
                })
                .collect();
            let n = firing_first(&mut records, t0 + time::Duration::minutes(10));
            let firing = pattern.matches('f').count();
            assert_eq!(n, firing, "{pattern}");
            assert!(records[..n]
                .iter()
                .all(|r| r.header().unwrap().ends_at.is_none()));
            assert!(records[n..]
                .iter()
                .all(|r| r.header().unwrap().ends_at.is_some()));
            let mut fps: Vec<u64> = records.iter().map(|r| r.fingerprint().0).collect();
            fps.sort();
            assert_eq!(
                fps,
                (0..pattern.len() as u64).collect::<Vec<_>>(),
                "{pattern}"
            );
        }
    }

    /// A rebuild routes once per routing key and shares the outcome: every alert must get
    /// exactly the groups that routing it on its own gives. Many alerts share a key; label
    /// values are interned or inline (`cluster` has more values than are interned per
    /// name), some labels are missing, some alerts are posted to a receiver directly or not
    /// routed, and the tree has regex, negative and `continue` matchers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn routing_by_key_groups_as_routing_each_alert() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "route:\n  receiver: a\n  group_by: [alertname, cluster]\n  routes:\n    - receiver: b\n      matchers: ['team=~\"db|web\"']\n      group_by: [alertname]\n      continue: true\n    - receiver: c\n      matchers: ['severity!=\"\"', 'env=\"prod\"']\nreceivers:\n  - name: a\n  - name: b\n  - name: c\n";
        let config = Config::load_str(yaml, "test.yml", dir.path()).unwrap();
        let routing = Routing::new(Arc::new(config));
        let store = Store::open(&dir.path().join("data"), 8, 100_000, 1 << 20).unwrap();
        let t = now();
        let pick = |i: u64, of: &[&str]| of[(i % of.len() as u64) as usize].to_string();
        let alerts: Vec<Alert> = (0..6_000u64)
            .map(|i| {
                let mut labels = LabelSet::new();
                labels.insert("alertname".into(), pick(i, &["A", "B", "C"]));
                labels.insert("instance".into(), format!("host-{i}"));
                // past the first 1,100 (more than are interned per name), few values
                let cluster = if i < 1_100 {
                    format!("x{i}")
                } else {
                    pick(i / 5, &["c1", "c2", "x7", "x1090"])
                };
                labels.insert("cluster".into(), cluster);
                if i % 5 != 0 {
                    labels.insert("team".into(), pick(i / 3, &["db", "web", "ops", "dbx"]));
                }
                if i % 4 != 0 {
                    labels.insert("severity".into(), pick(i / 2, &["critical", "", "info"]));
                }
                labels.insert("env".into(), pick(i / 7, &["prod", "dev"]));
                Alert {
                    fingerprint: Fingerprint::of(&labels),
                    labels,
                    annotations: LabelSet::new(),
                    starts_at: t,
                    ends_at: None,
                    generator_url: String::new(),
                    updated_at: t,
                    received_at: t,
                    targets: Targets {
                        routed: i % 11 != 0,
                        receivers: if i % 7 == 0 || i % 11 == 0 {
                            ["b".to_string()].into()
                        } else {
                            Default::default()
                        },
                    },
                    timeout: false,
                    handoff: false,
                    expires: false,
                }
            })
            .collect();
        for chunk in alerts.chunks(500) {
            store.ingest(chunk.to_vec(), |_| {}).await.unwrap();
        }
        let records = store.alert_records();
        assert_eq!(records.len(), alerts.len());
        let names = routing.routing_names().expect("no group_by '...'");
        assert_eq!(names, ["alertname", "cluster", "env", "severity", "team"]);
        let how = |names| Decode {
            store: &store,
            routing: &routing,
            names,
            labels: false,
            t,
        };
        let by_fp = |v: Vec<Prepared>| -> HashMap<Fingerprint, Vec<(usize, LabelSet, String)>> {
            v.into_iter()
                .map(|p| (p.head.fingerprint, p.groups.to_vec()))
                .collect()
        };
        let keyed = by_fp(decode_parallel(&how(Some(&names)), &records));
        let each = by_fp(decode_parallel(&how(None), &records));
        assert_eq!(keyed.len(), alerts.len());
        assert_eq!(keyed, each);
        let multi = each.values().filter(|g| g.len() > 1).count();
        let none = each.values().filter(|g| g.is_empty()).count();
        assert!(
            multi > 0 && none == 0,
            "{multi} alerts in 2+ groups, {none} in none"
        );
    }
}
