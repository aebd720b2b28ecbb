//! The compact binary alert record (store schema 2): how an alert is kept in memory, in the
//! alert log and in checkpoints.
//!
//! One record per alert, immutable once built and shared (`Arc`) between the store's live
//! map and every aggregation group holding the alert, so each alert exists in memory once.
//! Layout (record format 1; integers are LEB128 varints, signed ones zigzag-encoded; a
//! string is a varint tag, `id << 1 | 1` for a string of the store's [`Interner`] or
//! `len << 1` followed by that many UTF-8 bytes):
//!
//! ```text
//! u8 format (= 1)
//! u8 flags          bit 0: has ends_at, bit 1: timeout, bit 2: routed, bit 3: expires
//! u64 fingerprint   little-endian
//! time starts_at    time = zigzag secs, nanos, zigzag UTC offset in seconds
//! time ends_at      only with flag bit 0
//! time updated_at
//! time received_at
//! varint n, n × string             receivers (direct targets)
//! string generator_url
//! varint n, n × (string, string)   labels, sorted by name
//! varint n, n × (string, string)   annotations, sorted by name
//! ```
//!
//! Everything merging and timing need (times, flags, targets) comes before the label sets,
//! so [`AlertRecord::header`] never reads them.

use crate::alert::{Alert, Fingerprint, LabelSet, MergeState, Targets};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use time::{OffsetDateTime, UtcOffset};

/// Version byte of the record layout above.
pub const RECORD_FORMAT: u8 = 1;

const HAS_END: u8 = 1;
const TIMEOUT: u8 = 2;
const ROUTED: u8 = 4;
const EXPIRES: u8 = 8;

/// A record that does not decode (truncated, wrong format, invalid UTF-8 or time).
#[derive(Debug, thiserror::Error)]
#[error("alert record: {0}")]
pub struct RecordError(pub &'static str);

/// One alert in its stored form; cheap to clone (shared bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct AlertRecord(Arc<[u8]>);

impl std::fmt::Debug for AlertRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AlertRecord({}, {} bytes)",
            self.fingerprint(),
            self.len()
        )
    }
}

/// Most values interned per label name: names with more distinct values than this
/// (`instance`, `pod`, descriptions) keep their values inline.
pub const VALUES_PER_NAME: u32 = 1024;
/// Most strings interned per store.
pub const MAX_INTERNED: usize = 1 << 20;
/// The "name" generator URLs are counted under.
const GENERATOR_URL: u32 = u32::MAX;
/// The "name" direct receivers are counted under.
const RECEIVER: u32 = u32::MAX - 1;
/// Names themselves are counted under this pseudo-name.
const NAME: u32 = u32::MAX - 2;
/// Values of names that could not be interned themselves.
const UNCOUNTED: u32 = u32::MAX - 3;

/// The store's table of repeated strings: label names, and the values of labels with few
/// distinct values (alert names, severities, namespaces, summaries, generator URLs).
/// Strings are never removed, so an id means the same string for the life of the store;
/// the table is persisted as `define` entries in the alert log and checkpoints (see
/// [`super::alertlog`]) and bounded by [`VALUES_PER_NAME`] and [`MAX_INTERNED`].
#[derive(Default)]
pub struct Interner {
    inner: RwLock<InternState>,
}

#[derive(Default)]
struct InternState {
    ids: HashMap<Arc<str>, u32>,
    strs: Vec<(Arc<str>, u32)>,
    /// Interned values per name id (or pseudo-name).
    per_name: HashMap<u32, u32>,
}

impl Interner {
    /// Strings defined so far; ids are `0..len`.
    pub fn len(&self) -> usize {
        self.read().strs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, InternState> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, InternState> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// `(id, string, counted under)` of ids `from..`, for persisting definitions.
    pub fn since(&self, from: usize) -> Vec<(u32, Arc<str>, u32)> {
        let s = self.read();
        s.strs
            .iter()
            .enumerate()
            .skip(from)
            .map(|(i, (v, under))| (i as u32, v.clone(), *under))
            .collect()
    }

    /// Replay a persisted definition. Ids arrive in order; a known id must mean the same
    /// string.
    pub fn define(&self, id: u32, v: &str, under: u32) -> Result<(), RecordError> {
        let mut s = self.write();
        let next = s.strs.len() as u32;
        if id < next {
            return if &*s.strs[id as usize].0 == v {
                Ok(())
            } else {
                Err(RecordError("interned string redefined"))
            };
        }
        if id > next {
            return Err(RecordError("interned string defined out of order"));
        }
        let a: Arc<str> = v.into();
        s.ids.insert(a.clone(), id);
        s.strs.push((a, under));
        *s.per_name.entry(under).or_default() += 1;
        Ok(())
    }
}

/// Looks strings up (and adds new ones) while one record is encoded.
struct Encoder<'a> {
    state: &'a mut InternState,
}

impl Encoder<'_> {
    /// Id of `v`, interning it if its name still has room.
    fn id(&mut self, v: &str, under: u32) -> Option<u32> {
        if let Some(&id) = self.state.ids.get(v) {
            return Some(id);
        }
        let room = self.state.strs.len() < MAX_INTERNED
            && self.state.per_name.get(&under).copied().unwrap_or(0) < VALUES_PER_NAME;
        if !room || v.len() > 512 {
            return None;
        }
        let id = self.state.strs.len() as u32;
        let a: Arc<str> = v.into();
        self.state.ids.insert(a.clone(), id);
        self.state.strs.push((a, under));
        *self.state.per_name.entry(under).or_default() += 1;
        Some(id)
    }

    fn put(&mut self, b: &mut Vec<u8>, v: &str, under: u32) {
        match self.id(v, under) {
            Some(id) => put_uvar(b, (u64::from(id) << 1) | 1),
            None => put_inline(b, v),
        }
    }

    fn put_labels(&mut self, b: &mut Vec<u8>, l: &LabelSet) {
        put_uvar(b, l.len() as u64);
        for (k, v) in l {
            let name = self.id(k, NAME);
            match name {
                Some(id) => put_uvar(b, (u64::from(id) << 1) | 1),
                None => put_inline(b, k),
            }
            self.put(b, v, name.unwrap_or(UNCOUNTED));
        }
    }
}

/// The fixed part of a record: what timers, merging and retention look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fingerprint: Fingerprint,
    pub starts_at: OffsetDateTime,
    pub ends_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    pub received_at: OffsetDateTime,
    pub timeout: bool,
    pub routed: bool,
    pub expires: bool,
}

impl Header {
    /// The header `a` is stored with.
    pub fn of(a: &Alert) -> Header {
        Header {
            fingerprint: a.fingerprint,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            updated_at: a.updated_at,
            received_at: a.received_at,
            timeout: a.timeout,
            routed: a.targets.routed,
            expires: a.expires,
        }
    }

    /// Resolved at `t` iff it has an end time and that end is not after `t`.
    pub fn resolved_at(&self, t: OffsetDateTime) -> bool {
        self.ends_at.is_some_and(|e| e <= t)
    }
}

impl AlertRecord {
    /// Encode `a`, interning its repeated strings in `strings` (new ones are persisted by
    /// the caller: see [`Interner::since`]).
    pub fn encode(a: &Alert, strings: &Interner) -> AlertRecord {
        let mut state = strings.write();
        let mut enc = Encoder { state: &mut state };
        let mut b = Vec::with_capacity(64 + estimate(&a.labels) / 2 + estimate(&a.annotations));
        b.push(RECORD_FORMAT);
        let mut flags = 0;
        if a.ends_at.is_some() {
            flags |= HAS_END;
        }
        if a.timeout {
            flags |= TIMEOUT;
        }
        if a.targets.routed {
            flags |= ROUTED;
        }
        if a.expires {
            flags |= EXPIRES;
        }
        b.push(flags);
        b.extend_from_slice(&a.fingerprint.0.to_le_bytes());
        put_time(&mut b, a.starts_at);
        if let Some(e) = a.ends_at {
            put_time(&mut b, e);
        }
        put_time(&mut b, a.updated_at);
        put_time(&mut b, a.received_at);
        put_uvar(&mut b, a.targets.receivers.len() as u64);
        for r in &a.targets.receivers {
            enc.put(&mut b, r, RECEIVER);
        }
        enc.put(&mut b, &a.generator_url, GENERATOR_URL);
        enc.put_labels(&mut b, &a.labels);
        enc.put_labels(&mut b, &a.annotations);
        AlertRecord(b.into())
    }

    /// Wrap bytes, checking they decode with `strings`.
    pub fn from_bytes(bytes: &[u8], strings: &Interner) -> Result<AlertRecord, RecordError> {
        let r = AlertRecord(bytes.into());
        r.decode(strings)?;
        Ok(r)
    }

    /// Wrap bytes without checking them (the caller checks at least the header).
    pub(crate) fn from_trusted(bytes: &[u8]) -> AlertRecord {
        AlertRecord(bytes.into())
    }

    /// The cheap check done on load: the format byte, flags and a fingerprint are there.
    pub(crate) fn check_shape(&self) -> Result<(), RecordError> {
        match self.0.first() {
            Some(&RECORD_FORMAT) if self.0.len() >= 10 => Ok(()),
            Some(&RECORD_FORMAT) => Err(RecordError("truncated")),
            _ => Err(RecordError("unknown record format")),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn fingerprint(&self) -> Fingerprint {
        let mut fp = [0u8; 8];
        if let Some(s) = self.0.get(2..10) {
            fp.copy_from_slice(s);
        }
        Fingerprint(u64::from_le_bytes(fp))
    }

    pub fn header(&self) -> Result<Header, RecordError> {
        Ok(Reader::new(&self.0)?.header()?.0)
    }

    /// The header, and in `key` all that routing and grouping depend on when they look at
    /// the labels `names` only (sorted): the routed flag, the direct receivers and the
    /// values of those labels, as encoded (no string is built). Records with equal keys are
    /// routed and grouped alike. An equal value may be encoded two ways (interned in one
    /// record, inline in an older one): that only makes two keys for one outcome.
    pub fn routing_key(
        &self,
        strings: &Interner,
        names: &[String],
        key: &mut Vec<u8>,
    ) -> Result<Header, RecordError> {
        let mut r = Reader::new(&self.0)?;
        let (h, flags) = r.header()?;
        key.clear();
        key.push(flags & ROUTED);
        let start = r.rest;
        let n = r.len()?;
        for _ in 0..n {
            r.skip_string()?;
        }
        key.extend_from_slice(&start[..start.len() - r.rest.len()]);
        r.skip_string()?;
        let s = strings.read();
        let n = r.len()?;
        for _ in 0..n {
            let name = r.string_ref(&s)?;
            let value = r.rest;
            r.skip_string()?;
            if let Ok(i) = names.binary_search_by(|x| x.as_str().cmp(name)) {
                put_uvar(key, i as u64);
                key.extend_from_slice(&value[..value.len() - r.rest.len()]);
            }
        }
        Ok(h)
    }

    /// What merging a newer report onto this alert needs.
    pub fn merge_state(&self, strings: &Interner) -> Result<MergeState, RecordError> {
        let mut r = Reader::new(&self.0)?;
        let s = strings.read();
        let (h, receivers) = {
            let (h, _) = r.header()?;
            (h, r.strings(&s)?)
        };
        Ok(MergeState {
            starts_at: h.starts_at,
            ends_at: h.ends_at,
            received_at: h.received_at,
            timeout: h.timeout,
            targets: Targets {
                routed: h.routed,
                receivers: receivers.into_iter().collect(),
            },
        })
    }

    pub fn decode(&self, strings: &Interner) -> Result<Alert, RecordError> {
        self.decode_with(strings, true)
    }

    /// What routing needs (everything but annotations and the generator URL, which are left
    /// empty): cheaper, for rebuilding groups.
    pub fn decode_for_routing(&self, strings: &Interner) -> Result<Alert, RecordError> {
        self.decode_with(strings, false)
    }

    fn decode_with(&self, strings: &Interner, all: bool) -> Result<Alert, RecordError> {
        let mut r = Reader::new(&self.0)?;
        let s = strings.read();
        let (h, _) = r.header()?;
        let receivers = r.strings(&s)?;
        let (generator_url, labels, annotations) = if all {
            let g = r.string(&s)?;
            let l = r.labels(&s)?;
            let a = r.labels(&s)?;
            if !r.rest.is_empty() {
                return Err(RecordError("trailing bytes"));
            }
            (g, l, a)
        } else {
            r.skip_string()?;
            (String::new(), r.labels(&s)?, LabelSet::new())
        };
        Ok(Alert {
            fingerprint: h.fingerprint,
            labels,
            annotations,
            starts_at: h.starts_at,
            ends_at: h.ends_at,
            generator_url,
            updated_at: h.updated_at,
            received_at: h.received_at,
            targets: Targets {
                routed: h.routed,
                receivers: receivers.into_iter().collect(),
            },
            timeout: h.timeout,
            handoff: false,
            expires: h.expires,
        })
    }

    /// Heap bytes this record occupies (for the memory figures).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn estimate(l: &LabelSet) -> usize {
    l.iter().map(|(k, v)| k.len() + v.len() + 2).sum()
}

pub(crate) fn put_uvar(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn put_ivar(b: &mut Vec<u8>, v: i64) {
    put_uvar(b, ((v << 1) ^ (v >> 63)) as u64);
}

/// A plain string: length, bytes.
pub(crate) fn put_str(b: &mut Vec<u8>, s: &str) {
    put_uvar(b, s.len() as u64);
    b.extend_from_slice(s.as_bytes());
}

/// A record string kept inline: `len << 1`, bytes.
fn put_inline(b: &mut Vec<u8>, s: &str) {
    put_uvar(b, (s.len() as u64) << 1);
    b.extend_from_slice(s.as_bytes());
}

fn put_time(b: &mut Vec<u8>, t: OffsetDateTime) {
    put_ivar(b, t.unix_timestamp());
    put_uvar(b, u64::from(t.nanosecond()));
    put_ivar(b, i64::from(t.offset().whole_seconds()));
}

/// A cursor over encoded bytes (records, log chunks).
pub(crate) struct Reader<'a> {
    pub(crate) rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Result<Reader<'a>, RecordError> {
        match b.first() {
            Some(&RECORD_FORMAT) => Ok(Reader { rest: &b[1..] }),
            Some(_) => Err(RecordError("unknown record format")),
            None => Err(RecordError("empty")),
        }
    }

    pub(crate) fn over(b: &'a [u8]) -> Reader<'a> {
        Reader { rest: b }
    }

    pub(crate) fn byte(&mut self) -> Result<u8, RecordError> {
        let (&x, rest) = self.rest.split_first().ok_or(RecordError("truncated"))?;
        self.rest = rest;
        Ok(x)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.rest.len() < n {
            return Err(RecordError("truncated"));
        }
        let (x, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(x)
    }

    pub(crate) fn uvar(&mut self) -> Result<u64, RecordError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let x = self.byte()?;
            v |= u64::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError("varint too long"))
    }

    fn ivar(&mut self) -> Result<i64, RecordError> {
        let u = self.uvar()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn len(&mut self) -> Result<usize, RecordError> {
        usize::try_from(self.uvar()?).map_err(|_| RecordError("length out of range"))
    }

    /// A plain string (length, bytes).
    pub(crate) fn str(&mut self) -> Result<&'a str, RecordError> {
        let n = self.len()?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| RecordError("invalid UTF-8"))
    }

    /// A record string: interned or inline.
    fn string(&mut self, s: &InternState) -> Result<String, RecordError> {
        self.string_ref(s).map(str::to_string)
    }

    /// A record string, borrowed (from the interner or the record).
    fn string_ref<'b>(&mut self, s: &'b InternState) -> Result<&'b str, RecordError>
    where
        'a: 'b,
    {
        let tag = self.uvar()?;
        if tag & 1 == 1 {
            let id = usize::try_from(tag >> 1).map_err(|_| RecordError("interned id"))?;
            return s
                .strs
                .get(id)
                .map(|(v, _)| &**v)
                .ok_or(RecordError("unknown interned string"));
        }
        let n = usize::try_from(tag >> 1).map_err(|_| RecordError("length out of range"))?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| RecordError("invalid UTF-8"))
    }

    fn skip_string(&mut self) -> Result<(), RecordError> {
        let tag = self.uvar()?;
        if tag & 1 == 0 {
            let n = usize::try_from(tag >> 1).map_err(|_| RecordError("length out of range"))?;
            self.bytes(n)?;
        }
        Ok(())
    }

    fn strings(&mut self, s: &InternState) -> Result<Vec<String>, RecordError> {
        let n = self.len()?;
        let mut v = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            v.push(self.string(s)?);
        }
        Ok(v)
    }

    fn labels(&mut self, s: &InternState) -> Result<LabelSet, RecordError> {
        let n = self.len()?;
        let mut l = LabelSet::new();
        for _ in 0..n {
            let k = self.string(s)?;
            let v = self.string(s)?;
            l.insert(k, v);
        }
        Ok(l)
    }

    fn time(&mut self) -> Result<OffsetDateTime, RecordError> {
        let secs = self.ivar()?;
        let nanos = u32::try_from(self.uvar()?).map_err(|_| RecordError("nanoseconds"))?;
        let offset = i32::try_from(self.ivar()?).map_err(|_| RecordError("offset"))?;
        let t = OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|_| RecordError("time out of range"))?
            .replace_nanosecond(nanos)
            .map_err(|_| RecordError("nanoseconds"))?;
        let off = UtcOffset::from_whole_seconds(offset).map_err(|_| RecordError("offset"))?;
        Ok(t.to_offset(off))
    }

    fn header(&mut self) -> Result<(Header, u8), RecordError> {
        let flags = self.byte()?;
        let mut fp = [0u8; 8];
        fp.copy_from_slice(self.bytes(8)?);
        let starts_at = self.time()?;
        let ends_at = if flags & HAS_END != 0 {
            Some(self.time()?)
        } else {
            None
        };
        let updated_at = self.time()?;
        let received_at = self.time()?;
        Ok((
            Header {
                fingerprint: Fingerprint(u64::from_le_bytes(fp)),
                starts_at,
                ends_at,
                updated_at,
                received_at,
                timeout: flags & TIMEOUT != 0,
                routed: flags & ROUTED != 0,
                expires: flags & EXPIRES != 0,
            },
            flags,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sample() -> Alert {
        let labels: LabelSet = [
            ("alertname".to_string(), "HighLatency".to_string()),
            ("instance".to_string(), "host-1:9100".to_string()),
            ("ünïcode".to_string(), "värde ✓".to_string()),
        ]
        .into();
        Alert {
            fingerprint: Fingerprint::of(&labels),
            labels,
            annotations: [("summary".to_string(), "p99 over 2 s".to_string())].into(),
            starts_at: datetime!(2026-11-30 23:59:59.123456789 +02:00),
            ends_at: Some(datetime!(2026-12-01 01:00:00 UTC)),
            generator_url: "http://prometheus:9090/graph?g0.expr=up".into(),
            updated_at: datetime!(2026-12-01 00:30:00 UTC),
            received_at: datetime!(1969-07-20 20:17:40 UTC),
            targets: Targets {
                routed: true,
                receivers: ["team-a".to_string(), "team-b".to_string()].into(),
            },
            timeout: true,
            handoff: false,
            expires: false,
        }
    }

    #[test]
    fn round_trips_every_field_including_offsets() {
        let strings = Interner::default();
        let a = sample();
        let r = AlertRecord::encode(&a, &strings);
        let back = r.decode(&strings).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.starts_at.offset().whole_seconds(), 7200);
        assert_eq!(r.fingerprint(), a.fingerprint);
        let h = r.header().unwrap();
        assert_eq!(h.ends_at, a.ends_at);
        assert!(h.timeout && h.routed);
        assert_eq!(r.merge_state(&strings).unwrap(), a.merge_state());
        let routing = r.decode_for_routing(&strings).unwrap();
        assert_eq!(routing.labels, a.labels);
        assert_eq!(routing.targets, a.targets);
        assert!(routing.annotations.is_empty() && routing.generator_url.is_empty());
        let mut firing = a.clone();
        firing.ends_at = None;
        firing.timeout = false;
        firing.targets = Targets::default();
        let r = AlertRecord::encode(&firing, &strings);
        assert_eq!(r.decode(&strings).unwrap(), firing);
        assert_eq!(r.header().unwrap().ends_at, None);
        // a webhook TTL end keeps its flag
        let mut ttl = a.clone();
        ttl.expires = true;
        let r = AlertRecord::encode(&ttl, &strings);
        assert_eq!(r.decode(&strings).unwrap(), ttl);
        assert!(r.header().unwrap().expires);
        assert!(!AlertRecord::encode(&a, &strings).header().unwrap().expires);
    }

    /// The routing key holds the routed flag, the direct receivers and the named labels'
    /// values, and nothing else.
    #[test]
    fn routing_key_covers_what_routing_reads() {
        let strings = Interner::default();
        let names = ["alertname".to_string(), "team".to_string()];
        let key = |a: &Alert| {
            let mut k = Vec::new();
            let h = AlertRecord::encode(a, &strings)
                .routing_key(&strings, &names, &mut k)
                .unwrap();
            assert_eq!(h, Header::of(a));
            k
        };
        let mut a = sample();
        a.labels.insert("team".into(), "db".into());
        let base = key(&a);
        let mut other = a.clone();
        other.labels.insert("pod".into(), "p-1".into());
        other.annotations.clear();
        other.ends_at = None;
        assert_eq!(
            key(&other),
            base,
            "unnamed labels and the rest do not count"
        );
        for change in [
            |a: &mut Alert| {
                a.labels.insert("team".into(), "web".into());
            },
            |a: &mut Alert| {
                a.labels.remove("team");
            },
            |a: &mut Alert| a.targets.routed = false,
            |a: &mut Alert| {
                a.targets.receivers.insert("team-c".into());
            },
        ] {
            let mut b = a.clone();
            change(&mut b);
            assert_ne!(key(&b), base, "{:?}", b.labels);
        }
    }

    #[test]
    fn record_is_compact() {
        let strings = Interner::default();
        let a = sample();
        let json = serde_json::to_vec(&a).unwrap();
        let first = AlertRecord::encode(&a, &strings);
        assert!(
            first.len() * 2 < json.len(),
            "record {} bytes vs JSON {}",
            first.len(),
            json.len()
        );
        // every string of the sample is repeated from now on: names and values are ids
        let again = AlertRecord::encode(&a, &strings);
        assert!(again.len() < 100, "{} bytes", again.len());
        assert_eq!(again.decode(&strings).unwrap(), a);
    }

    /// A label with more distinct values than VALUES_PER_NAME keeps the rest inline, so
    /// the table stays bounded; ids survive a persisted replay of the definitions.
    #[test]
    fn interning_is_bounded_per_name_and_replayable() {
        let strings = Interner::default();
        let mut records = Vec::new();
        for i in 0..(VALUES_PER_NAME + 500) {
            let mut a = sample();
            a.labels.insert("instance".into(), format!("host-{i}"));
            records.push((AlertRecord::encode(&a, &strings), a));
        }
        assert!(
            strings.len() < VALUES_PER_NAME as usize + 20,
            "{}",
            strings.len()
        );
        let replayed = Interner::default();
        for (id, v, under) in strings.since(0) {
            replayed.define(id, &v, under).unwrap();
        }
        assert!(replayed.define(0, "something else", 0).is_err());
        assert!(replayed.define(strings.len() as u32 + 5, "gap", 0).is_err());
        for (r, a) in &records {
            assert_eq!(&r.decode(&replayed).unwrap(), a);
        }
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let strings = Interner::default();
        let bytes = AlertRecord::encode(&sample(), &strings).as_bytes().to_vec();
        for n in 0..bytes.len() {
            assert!(
                AlertRecord::from_bytes(&bytes[..n], &strings).is_err(),
                "prefix {n}"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(AlertRecord::from_bytes(&extra, &strings).is_err());
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert!(AlertRecord::from_bytes(&wrong, &strings).is_err());
        // unknown interned ids are errors
        assert!(AlertRecord::from_bytes(&bytes, &Interner::default()).is_err());
        // flip every byte: decoding may succeed or fail, never panic
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = AlertRecord::from_bytes(&b, &strings);
        }
    }
}
