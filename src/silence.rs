//! Silences: Alertmanager's silences (matchers, validation, pending/active/expired states,
//! update-in-place versus expire-and-replace, expiry) plus "acknowledge until resolved"
//! silences bound to alert fingerprints, which expire by themselves once every bound alert
//! has resolved.
//!
//! Silences are few (thousands at most), so all of them live in memory for matching and
//! every change is written through the store (the `s/` prefix of the `dispatch` tree)
//! before it is acknowledged or takes effect, so they survive restarts and `kill -9`.

use crate::alert::{Fingerprint, LabelSet};
use crate::matcher::{LabelIndex, MatchType, Matcher};
use crate::store::{Commit, DispatchOp, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;
use time::OffsetDateTime;

/// Why a silence change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// Invalid silence (answered with 400).
    #[error("{0}")]
    Invalid(String),
    /// No silence with that id (404).
    #[error("silence {0} not found")]
    NotFound(String),
    /// Storing it failed (503).
    #[error("silence not stored: {0}")]
    Store(#[from] StoreError),
}

/// One matcher of a silence, in Alertmanager's API shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    #[serde(rename = "isRegex")]
    pub is_regex: bool,
    #[serde(rename = "isEqual", default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    fn op(&self) -> MatchType {
        match (self.is_regex, self.is_equal) {
            (false, true) => MatchType::Equal,
            (false, false) => MatchType::NotEqual,
            (true, true) => MatchType::Regex,
            (true, false) => MatchType::NotRegex,
        }
    }

    /// The compiled matcher.
    pub fn compile(&self) -> Result<Matcher, String> {
        Matcher::new(self.name.clone(), self.op(), self.value.clone())
            .map_err(|e| format!("invalid matcher {:?}: {e}", self.name))
    }

    /// From a parsed matcher (`amtool`-style filters, ack silences).
    pub fn from_matcher(m: &Matcher) -> Self {
        SilenceMatcher {
            name: m.name.clone(),
            value: m.value.clone(),
            is_regex: matches!(m.op, MatchType::Regex | MatchType::NotRegex),
            is_equal: matches!(m.op, MatchType::Equal | MatchType::Regex),
        }
    }
}

/// A silence as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub created_by: String,
    pub comment: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Acknowledge-until-resolved: the silence mutes only these alerts (besides its
    /// matchers) and expires by itself once all of them have resolved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<Fingerprint>,
}

/// A silence's state at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl Silence {
    /// Pending before its start, expired from its end on, active in between.
    pub fn state_at(&self, t: OffsetDateTime) -> SilenceState {
        if t < self.starts_at {
            SilenceState::Pending
        } else if t >= self.ends_at {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }
}

/// What a client sends to create or update a silence (`POST /api/v2/silences`).
#[derive(Debug, Clone, Deserialize)]
pub struct PostableSilence {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Vec<SilenceMatcher>,
    #[serde(rename = "startsAt", default, with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(rename = "endsAt", with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    #[serde(rename = "createdBy")]
    pub created_by: String,
    pub comment: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A silence with its compiled matchers.
struct Entry {
    silence: Silence,
    matchers: Vec<Matcher>,
    bound: HashSet<Fingerprint>,
}

impl Entry {
    fn new(silence: Silence) -> Result<Self, String> {
        let matchers = silence
            .matchers
            .iter()
            .map(SilenceMatcher::compile)
            .collect::<Result<_, _>>()?;
        let bound = silence.fingerprints.iter().copied().collect();
        Ok(Entry {
            silence,
            matchers,
            bound,
        })
    }

    fn mutes(&self, fp: Fingerprint, labels: &LabelSet) -> bool {
        (self.bound.is_empty() || self.bound.contains(&fp))
            && self.matchers.iter().all(|m| m.matches_labels(labels))
    }
}

/// Check a silence the way Alertmanager does before storing it.
fn validate(s: &Silence) -> Result<(), String> {
    if s.matchers.is_empty() {
        return Err("at least one matcher required".into());
    }
    let mut all_match_empty = true;
    for (i, m) in s.matchers.iter().enumerate() {
        if !crate::alert::valid_label_name(&m.name) {
            return Err(format!("matchers[{i}]: invalid label name {:?}", m.name));
        }
        let c = m.compile().map_err(|e| format!("matchers[{i}]: {e}"))?;
        if !c.matches("") {
            all_match_empty = false;
        }
    }
    if all_match_empty {
        return Err("at least one matcher must not match the empty string".into());
    }
    if s.ends_at < s.starts_at {
        return Err("end time must not be before start time".into());
    }
    Ok(())
}

/// A random version-4 UUID (Alertmanager's silence ids).
fn new_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether `id` looks like a UUID (the API's path parameter format).
pub fn is_uuid(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Whether an in-place update of `old` to `new` is allowed at `t` (otherwise the old
/// silence is expired and a new one created): same matchers, and an active silence keeps
/// its start (to the second) and does not end in the past; a pending one does not start
/// in the past; an expired one never changes.
fn can_update(old: &Silence, new: &Silence, t: OffsetDateTime) -> bool {
    if old.matchers != new.matchers {
        return false;
    }
    match old.state_at(t) {
        SilenceState::Active => {
            old.starts_at.unix_timestamp() == new.starts_at.unix_timestamp() && new.ends_at >= t
        }
        SilenceState::Pending => new.starts_at >= t,
        SilenceState::Expired => false,
    }
}

/// Silences by id, and an index of the ones not expired: by one of their `=` matchers
/// (name → value → ids), the rest in a list checked for every alert. An alert is checked
/// only against the silences indexed under its own labels, so a thousand silences cost a
/// few hash lookups per alert, not a thousand matcher runs.
#[derive(Default)]
struct State {
    by_id: HashMap<String, Entry>,
    index: LabelIndex<String>,
    /// Fingerprints bound to acknowledgements not expired (see [`Silences::hint_resolved`]).
    bound: HashSet<Fingerprint>,
}

impl State {
    /// Rebuild the index (after every change; silences change rarely).
    fn reindex(&mut self, t: OffsetDateTime) {
        self.index.clear();
        self.bound.clear();
        for (id, e) in &self.by_id {
            if e.silence.state_at(t) != SilenceState::Expired {
                self.index.insert(&e.matchers, id.clone());
                self.bound.extend(e.bound.iter().copied());
            }
        }
    }

    /// Entries that may mute an alert with these labels.
    fn candidates<'a>(&'a self, labels: &'a LabelSet) -> impl Iterator<Item = &'a Entry> + 'a {
        self.index
            .candidates(labels)
            .filter_map(move |id| self.by_id.get(id))
    }
}

/// Every silence, in memory, written through the store.
pub struct Silences {
    store: Store,
    state: RwLock<State>,
    /// Serialises changes (read-modify-write of one silence, then its durable write).
    write: tokio::sync::Mutex<()>,
    /// Silences bound to fingerprints that have not expired yet (a cheap "any acks?").
    acks: AtomicUsize,
    /// Woken when a bound alert may have resolved (see [`Silences::hint_resolved`]).
    resolved: tokio::sync::Notify,
}

impl Silences {
    /// Load every stored silence.
    pub fn open(store: Store) -> Result<Self, StoreError> {
        let mut map = HashMap::new();
        for s in store.silences()? {
            let id = s.id.clone();
            match Entry::new(s) {
                Ok(e) => {
                    map.insert(id, e);
                }
                Err(e) => {
                    tracing::error!(silence = %id, error = %e, "stored silence unreadable; ignored")
                }
            }
        }
        let mut state = State {
            by_id: map,
            ..Default::default()
        };
        state.reindex(crate::alert::now());
        let s = Silences {
            store,
            state: RwLock::new(state),
            write: tokio::sync::Mutex::new(()),
            acks: AtomicUsize::new(0),
            resolved: tokio::sync::Notify::new(),
        };
        s.count_acks(crate::alert::now());
        Ok(s)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn count_acks(&self, t: OffsetDateTime) {
        let n = self
            .read()
            .by_id
            .values()
            .filter(|e| !e.bound.is_empty() && e.silence.state_at(t) != SilenceState::Expired)
            .count();
        self.acks.store(n, Ordering::Release);
    }

    /// Every silence.
    pub fn list(&self) -> Vec<Silence> {
        self.read()
            .by_id
            .values()
            .map(|e| e.silence.clone())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<Silence> {
        self.read().by_id.get(id).map(|e| e.silence.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.read().by_id.is_empty()
    }

    /// Ids of the silences muting this alert at `t` (sorted).
    pub fn silenced_by(
        &self,
        fp: Fingerprint,
        labels: &LabelSet,
        t: OffsetDateTime,
    ) -> Vec<String> {
        let state = self.read();
        if state.by_id.is_empty() {
            return Vec::new();
        }
        let mut ids: Vec<String> = state
            .candidates(labels)
            .filter(|e| e.silence.state_at(t) == SilenceState::Active && e.mutes(fp, labels))
            .map(|e| e.silence.id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    async fn put(&self, s: Silence) -> Result<(), SilenceError> {
        let entry = Entry::new(s.clone()).map_err(SilenceError::Invalid)?;
        self.store
            .commit(Commit {
                dispatch: vec![DispatchOp::PutSilence(Box::new(s))],
                ..Default::default()
            })
            .await?;
        let id = entry.silence.id.clone();
        let mut state = self.write_state();
        state.by_id.insert(id, entry);
        state.reindex(crate::alert::now());
        Ok(())
    }

    /// Create or update a silence (`POST /api/v2/silences`): returns the id now carrying
    /// it (a new one when the update could not be done in place).
    pub async fn upsert(
        &self,
        p: PostableSilence,
        t: OffsetDateTime,
    ) -> Result<String, SilenceError> {
        self.upsert_bound(p, Vec::new(), t).await
    }

    /// [`Silences::upsert`] for a silence bound to fingerprints (acknowledgements).
    pub async fn upsert_bound(
        &self,
        p: PostableSilence,
        fingerprints: Vec<Fingerprint>,
        t: OffsetDateTime,
    ) -> Result<String, SilenceError> {
        let starts_at = p.starts_at.unwrap_or(t);
        if starts_at >= p.ends_at {
            return Err(SilenceError::Invalid(
                "Failed to create silence: start time must be before end time".into(),
            ));
        }
        if p.ends_at < t {
            return Err(SilenceError::Invalid(
                "Failed to create silence: end time can't be in the past".into(),
            ));
        }
        let mut s = Silence {
            id: String::new(),
            matchers: p.matchers,
            starts_at,
            ends_at: p.ends_at,
            updated_at: t,
            created_by: p.created_by,
            comment: p.comment,
            annotations: p.annotations,
            fingerprints,
        };
        validate(&s).map_err(|e| SilenceError::Invalid(format!("invalid silence: {e}")))?;
        let _guard = self.write.lock().await;
        let prev = match p.id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => Some(
                self.get(id)
                    .ok_or_else(|| SilenceError::NotFound(id.to_string()))?,
            ),
            None => None,
        };
        if let Some(old) = &prev {
            if can_update(old, &s, t) {
                s.id = old.id.clone();
                if s.fingerprints.is_empty() {
                    s.fingerprints = old.fingerprints.clone();
                }
                self.put(s.clone()).await?;
                self.count_acks(t);
                return Ok(s.id);
            }
        }
        // A new silence: it cannot start in the past.
        if s.starts_at < t {
            s.starts_at = t;
        }
        s.id = new_id();
        let mut ops = vec![DispatchOp::PutSilence(Box::new(s.clone()))];
        let mut expired_old = None;
        if let Some(mut old) = prev {
            if let Some(e) = expired_copy(&mut old, t) {
                ops.push(DispatchOp::PutSilence(Box::new(e.clone())));
                expired_old = Some(e);
            }
        }
        let entry = Entry::new(s.clone()).map_err(SilenceError::Invalid)?;
        self.store
            .commit(Commit {
                dispatch: ops,
                ..Default::default()
            })
            .await?;
        {
            let mut state = self.write_state();
            state.by_id.insert(s.id.clone(), entry);
            if let Some(old) = expired_old {
                if let Ok(e) = Entry::new(old) {
                    state.by_id.insert(e.silence.id.clone(), e);
                }
            }
            state.reindex(t);
        }
        self.count_acks(t);
        Ok(s.id)
    }

    /// Expire a silence (`DELETE /api/v2/silence/{id}`); an expired one stays as it is.
    pub async fn expire(&self, id: &str, t: OffsetDateTime) -> Result<(), SilenceError> {
        let _guard = self.write.lock().await;
        let mut s = self
            .get(id)
            .ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
        if let Some(e) = expired_copy(&mut s, t) {
            self.put(e).await?;
        }
        self.count_acks(t);
        Ok(())
    }

    /// Tell the acknowledgement sweeper that this alert resolved (cheap when it is bound to
    /// no acknowledgement).
    pub fn hint_resolved(&self, fp: Fingerprint) {
        if self.acks.load(Ordering::Acquire) == 0 {
            return;
        }
        if self.read().bound.contains(&fp) {
            self.resolved.notify_one();
        }
    }

    /// Wait until [`Silences::hint_resolved`] reports a bound alert (or `max` passes).
    pub async fn wait_resolved_hint(&self, max: std::time::Duration) {
        let _ = tokio::time::timeout(max, self.resolved.notified()).await;
    }

    /// Expire every acknowledgement whose bound alerts have all resolved at `t`
    /// (`resolved` tells whether one alert has; an alert no longer stored counts as
    /// resolved). Returns the expired ids.
    pub async fn expire_resolved_acks(
        &self,
        t: OffsetDateTime,
        resolved: impl Fn(Fingerprint) -> bool,
    ) -> Result<Vec<String>, SilenceError> {
        if self.acks.load(Ordering::Acquire) == 0 {
            return Ok(Vec::new());
        }
        let _guard = self.write.lock().await;
        let done: Vec<Silence> = self
            .read()
            .by_id
            .values()
            .filter(|e| {
                !e.bound.is_empty()
                    && e.silence.state_at(t) != SilenceState::Expired
                    && e.bound.iter().all(|fp| resolved(*fp))
            })
            .map(|e| e.silence.clone())
            .collect();
        let mut ids = Vec::new();
        for mut s in done {
            if let Some(e) = expired_copy(&mut s, t) {
                ids.push(e.id.clone());
                self.put(e).await?;
            }
        }
        self.count_acks(t);
        Ok(ids)
    }

    /// Delete silences expired for longer than `retention` (they are kept that long so
    /// the API can show them).
    pub async fn collect_garbage(
        &self,
        retention: std::time::Duration,
        t: OffsetDateTime,
    ) -> Result<usize, SilenceError> {
        let cutoff = t - time::Duration::try_from(retention).unwrap_or(time::Duration::days(5));
        let _guard = self.write.lock().await;
        let old: Vec<String> = self
            .read()
            .by_id
            .values()
            .filter(|e| e.silence.ends_at < cutoff)
            .map(|e| e.silence.id.clone())
            .collect();
        if old.is_empty() {
            return Ok(0);
        }
        self.store
            .commit(Commit {
                dispatch: old.iter().cloned().map(DispatchOp::DelSilence).collect(),
                ..Default::default()
            })
            .await?;
        let mut state = self.write_state();
        for id in &old {
            state.by_id.remove(id);
        }
        state.reindex(t);
        Ok(old.len())
    }

    /// How many silences are in each state at `t` (for metrics).
    pub fn counts(&self, t: OffsetDateTime) -> [(SilenceState, usize); 3] {
        let mut c = [0usize; 3];
        for e in self.read().by_id.values() {
            c[e.silence.state_at(t) as usize] += 1;
        }
        [
            (SilenceState::Pending, c[0]),
            (SilenceState::Active, c[1]),
            (SilenceState::Expired, c[2]),
        ]
    }
}

/// The silence as it is once expired at `t` (active: ends now; pending: starts and ends
/// now); `None` if it has expired already.
fn expired_copy(s: &mut Silence, t: OffsetDateTime) -> Option<Silence> {
    match s.state_at(t) {
        SilenceState::Expired => None,
        SilenceState::Active => {
            s.ends_at = t;
            s.updated_at = t;
            Some(s.clone())
        }
        SilenceState::Pending => {
            s.starts_at = t;
            s.ends_at = t;
            s.updated_at = t;
            Some(s.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn m(name: &str, value: &str, is_regex: bool, is_equal: bool) -> SilenceMatcher {
        SilenceMatcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        }
    }

    fn postable(
        matchers: Vec<SilenceMatcher>,
        starts: Option<OffsetDateTime>,
        ends: OffsetDateTime,
    ) -> PostableSilence {
        PostableSilence {
            id: None,
            matchers,
            starts_at: starts,
            ends_at: ends,
            created_by: "me".into(),
            comment: "c".into(),
            annotations: BTreeMap::new(),
        }
    }

    fn ls(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn open() -> (tempfile::TempDir, Store, Silences) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8, 1000, 1 << 20).unwrap();
        let s = Silences::open(store.clone()).unwrap();
        (dir, store, s)
    }

    #[test]
    fn validation_follows_alertmanager() {
        let t = crate::alert::now();
        let base = |ms: Vec<SilenceMatcher>| Silence {
            id: String::new(),
            matchers: ms,
            starts_at: t,
            ends_at: t + Duration::hours(1),
            updated_at: t,
            created_by: "x".into(),
            comment: "y".into(),
            annotations: BTreeMap::new(),
            fingerprints: Vec::new(),
        };
        assert!(validate(&base(vec![]))
            .unwrap_err()
            .contains("at least one matcher"));
        assert!(validate(&base(vec![m("foo", "", false, true)]))
            .unwrap_err()
            .contains("empty string"));
        assert!(validate(&base(vec![m("foo", ".*", true, true)]))
            .unwrap_err()
            .contains("empty string"));
        // One matcher not matching "" makes the set valid.
        assert!(validate(&base(vec![
            m("foo", ".*", true, true),
            m("a", "b", false, true)
        ]))
        .is_ok());
        assert!(validate(&base(vec![m("foo", "", false, false)])).is_ok());
        assert!(validate(&base(vec![m("foo", "(", true, true)]))
            .unwrap_err()
            .contains("matchers[0]"));
        assert!(validate(&base(vec![m("", "x", false, true)]))
            .unwrap_err()
            .contains("invalid label name"));
        let mut s = base(vec![m("a", "b", false, true)]);
        s.ends_at = t - Duration::seconds(1);
        assert!(validate(&s).unwrap_err().contains("before start"));
    }

    #[test]
    fn states_and_matching() {
        let t = crate::alert::now();
        let s = Silence {
            id: "x".into(),
            matchers: vec![m("a", "b", false, true), m("c", "d.*", true, true)],
            starts_at: t,
            ends_at: t + Duration::hours(1),
            updated_at: t,
            created_by: "x".into(),
            comment: "y".into(),
            annotations: BTreeMap::new(),
            fingerprints: Vec::new(),
        };
        assert_eq!(s.state_at(t - Duration::seconds(1)), SilenceState::Pending);
        assert_eq!(s.state_at(t), SilenceState::Active);
        assert_eq!(s.state_at(t + Duration::hours(1)), SilenceState::Expired);
        let e = Entry::new(s).unwrap();
        let fp = Fingerprint(1);
        assert!(e.mutes(fp, &ls(&[("a", "b"), ("c", "dx")])));
        assert!(
            !e.mutes(fp, &ls(&[("a", "b"), ("c", "xd")])),
            "regex is anchored"
        );
        assert!(!e.mutes(fp, &ls(&[("a", "b")])));
        assert!(is_uuid(&new_id()));
        assert!(!is_uuid("nope"));
    }

    #[tokio::test]
    async fn create_update_expire_and_restart() {
        let (dir, store, s) = open();
        let t = crate::alert::now();
        let ms = vec![m("alertname", "Disk", false, true)];
        // In the past: rejected.
        let err = s
            .upsert(
                postable(
                    ms.clone(),
                    Some(t - Duration::minutes(2)),
                    t - Duration::minutes(1),
                ),
                t,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("in the past"), "{err}");
        // Start before end.
        let err = s
            .upsert(
                postable(
                    ms.clone(),
                    Some(t + Duration::hours(2)),
                    t + Duration::hours(1),
                ),
                t,
            )
            .await
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("start time must be before end time"));
        // A start in the past is moved to now.
        let id = s
            .upsert(
                postable(
                    ms.clone(),
                    Some(t - Duration::hours(1)),
                    t + Duration::hours(1),
                ),
                t,
            )
            .await
            .unwrap();
        let got = s.get(&id).unwrap();
        assert_eq!(got.starts_at, t);
        assert_eq!(got.state_at(t), SilenceState::Active);
        let labels = ls(&[("alertname", "Disk"), ("x", "y")]);
        assert_eq!(s.silenced_by(Fingerprint(9), &labels, t), vec![id.clone()]);

        // Extending an active silence (same matchers and start) keeps its id.
        let mut up = postable(ms.clone(), Some(t), t + Duration::hours(3));
        up.id = Some(id.clone());
        let same = s.upsert(up, t).await.unwrap();
        assert_eq!(same, id);
        assert_eq!(s.get(&id).unwrap().ends_at, t + Duration::hours(3));

        // Changing the matchers expires it and creates a new one.
        let mut up = postable(
            vec![m("alertname", "Cpu", false, true)],
            Some(t),
            t + Duration::hours(3),
        );
        up.id = Some(id.clone());
        let new = s.upsert(up, t).await.unwrap();
        assert_ne!(new, id);
        assert_eq!(s.get(&id).unwrap().state_at(t), SilenceState::Expired);
        assert!(s.silenced_by(Fingerprint(9), &labels, t).is_empty());

        // Unknown ids.
        let mut up = postable(ms.clone(), None, t + Duration::hours(1));
        up.id = Some("00000000-0000-4000-8000-000000000000".into());
        assert!(matches!(
            s.upsert(up, t).await,
            Err(SilenceError::NotFound(_))
        ));
        assert!(matches!(
            s.expire("nope", t).await,
            Err(SilenceError::NotFound(_))
        ));

        // Expire a pending one: starts and ends now.
        let pending = s
            .upsert(
                postable(
                    ms.clone(),
                    Some(t + Duration::hours(1)),
                    t + Duration::hours(2),
                ),
                t,
            )
            .await
            .unwrap();
        assert_eq!(s.get(&pending).unwrap().state_at(t), SilenceState::Pending);
        s.expire(&pending, t).await.unwrap();
        let p = s.get(&pending).unwrap();
        assert_eq!((p.starts_at, p.ends_at), (t, t));
        // Expiring again is a no-op.
        s.expire(&pending, t).await.unwrap();

        // Everything survives a reopen of the store.
        drop(s);
        store.flush().unwrap();
        let again = Silences::open(store.clone()).unwrap();
        assert_eq!(again.list().len(), 3);
        assert_eq!(again.get(&new).unwrap().state_at(t), SilenceState::Active);
        assert_eq!(again.get(&id).unwrap().state_at(t), SilenceState::Expired);

        // Garbage collection after retention.
        let later = t + Duration::days(10);
        assert_eq!(
            again
                .collect_garbage(std::time::Duration::from_secs(86400), later)
                .await
                .unwrap(),
            3
        );
        assert!(again.is_empty());
        drop(dir);
    }

    #[tokio::test]
    async fn the_index_finds_exactly_what_a_full_scan_finds() {
        let (_dir, _store, s) = open();
        let t = crate::alert::now();
        let end = t + Duration::hours(1);
        let sets = [
            vec![m("alertname", "Disk", false, true)],
            vec![
                m("alertname", "Disk", false, true),
                m("host", "a.*", true, true),
            ],
            vec![
                m("host", "b", false, true),
                m("alertname", "Disk", false, false),
            ],
            vec![m("host", "c.*", true, true)],
            vec![m("zone", "", false, true), m("host", "a", false, true)],
            vec![
                m("zone", "", false, true),
                m("alertname", "Cpu", false, true),
            ],
        ];
        let mut ids = Vec::new();
        for ms in &sets {
            ids.push(
                s.upsert(postable(ms.clone(), Some(t), end), t)
                    .await
                    .unwrap(),
            );
        }
        let labels = [
            ls(&[("alertname", "Disk"), ("host", "a1")]),
            ls(&[("alertname", "Disk"), ("host", "b")]),
            ls(&[("alertname", "Cpu"), ("host", "b")]),
            ls(&[("alertname", "Cpu"), ("host", "c9")]),
            ls(&[("alertname", "Cpu"), ("host", "a"), ("zone", "z")]),
            ls(&[("alertname", "Cpu"), ("host", "a")]),
        ];
        for l in &labels {
            let mut scan: Vec<String> = sets
                .iter()
                .zip(&ids)
                .filter(|(ms, _)| ms.iter().all(|m| m.compile().unwrap().matches_labels(l)))
                .map(|(_, id)| id.clone())
                .collect();
            scan.sort();
            assert_eq!(s.silenced_by(Fingerprint(1), l, t), scan, "{l:?}");
        }
        // Spot checks that the scan itself is what we think.
        assert_eq!(s.silenced_by(Fingerprint(1), &labels[0], t).len(), 2);
        assert_eq!(s.silenced_by(Fingerprint(1), &labels[5], t).len(), 2);
    }

    #[tokio::test]
    async fn acknowledgements_bind_to_fingerprints_and_expire_on_resolve() {
        let (_dir, _store, s) = open();
        let t = crate::alert::now();
        let labels = ls(&[("alertname", "Disk"), ("host", "a")]);
        let (fa, fb) = (Fingerprint(1), Fingerprint(2));
        let id = s
            .upsert_bound(
                postable(
                    vec![m("alertname", "Disk", false, true)],
                    None,
                    t + Duration::days(3650),
                ),
                vec![fa, fb],
                t,
            )
            .await
            .unwrap();
        assert_eq!(s.silenced_by(fa, &labels, t), vec![id.clone()]);
        assert!(
            s.silenced_by(Fingerprint(3), &labels, t).is_empty(),
            "only bound alerts"
        );
        // One of two resolved: still active.
        let gone = s.expire_resolved_acks(t, |fp| fp == fa).await.unwrap();
        assert!(gone.is_empty());
        // Both: expired.
        let gone = s.expire_resolved_acks(t, |_| true).await.unwrap();
        assert_eq!(gone, vec![id.clone()]);
        assert_eq!(s.get(&id).unwrap().state_at(t), SilenceState::Expired);
        assert!(s.silenced_by(fa, &labels, t).is_empty());
    }
}
