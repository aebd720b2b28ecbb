//! The compact binary alert record (store schema 2): how an alert is kept in memory, in the
//! alert log and in checkpoints.
//!
//! One record per alert, immutable once built and shared (`Arc`) between the store's live
//! map and every aggregation group holding the alert, so each alert exists in memory once.
//! Layout (record format 1; integers are LEB128 varints, signed ones zigzag-encoded,
//! strings are a varint length then UTF-8 bytes):
//!
//! ```text
//! u8 format (= 1)
//! u8 flags          bit 0: has ends_at, bit 1: timeout, bit 2: routed
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
use std::sync::Arc;
use time::{OffsetDateTime, UtcOffset};

/// Version byte of the record layout above.
pub const RECORD_FORMAT: u8 = 1;

const HAS_END: u8 = 1;
const TIMEOUT: u8 = 2;
const ROUTED: u8 = 4;

/// A record that does not decode (truncated, wrong format, invalid UTF-8 or time).
#[derive(Debug, thiserror::Error)]
#[error("alert record: {0}")]
pub struct RecordError(pub &'static str);

/// One alert in its stored form; cheap to clone (shared bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct AlertRecord(Arc<[u8]>);

impl std::fmt::Debug for AlertRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.decode() {
            Ok(a) => a.fmt(f),
            Err(e) => write!(f, "AlertRecord({e})"),
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
}

impl Header {
    /// Resolved at `t` iff it has an end time and that end is not after `t`.
    pub fn resolved_at(&self, t: OffsetDateTime) -> bool {
        self.ends_at.is_some_and(|e| e <= t)
    }
}

impl AlertRecord {
    pub fn encode(a: &Alert) -> AlertRecord {
        let mut b = Vec::with_capacity(96 + estimate(&a.labels) + estimate(&a.annotations));
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
            put_str(&mut b, r);
        }
        put_str(&mut b, &a.generator_url);
        put_labels(&mut b, &a.labels);
        put_labels(&mut b, &a.annotations);
        AlertRecord(b.into())
    }

    /// Wrap bytes read from the log or a checkpoint, checking they decode.
    pub fn from_bytes(bytes: &[u8]) -> Result<AlertRecord, RecordError> {
        let r = AlertRecord(bytes.into());
        r.decode()?;
        Ok(r)
    }

    /// Wrap bytes without checking them (the caller checks at least the header).
    pub(crate) fn from_trusted(bytes: &[u8]) -> AlertRecord {
        AlertRecord(bytes.into())
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

    /// What merging a newer report onto this alert needs.
    pub fn merge_state(&self) -> Result<MergeState, RecordError> {
        let mut r = Reader::new(&self.0)?;
        let (h, receivers) = {
            let (h, _) = r.header()?;
            (h, r.strings()?)
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

    pub fn decode(&self) -> Result<Alert, RecordError> {
        let mut r = Reader::new(&self.0)?;
        let (h, _) = r.header()?;
        let receivers = r.strings()?;
        let generator_url = r.string()?;
        let labels = r.labels()?;
        let annotations = r.labels()?;
        if !r.rest.is_empty() {
            return Err(RecordError("trailing bytes"));
        }
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

fn put_str(b: &mut Vec<u8>, s: &str) {
    put_uvar(b, s.len() as u64);
    b.extend_from_slice(s.as_bytes());
}

fn put_time(b: &mut Vec<u8>, t: OffsetDateTime) {
    put_ivar(b, t.unix_timestamp());
    put_uvar(b, u64::from(t.nanosecond()));
    put_ivar(b, i64::from(t.offset().whole_seconds()));
}

fn put_labels(b: &mut Vec<u8>, l: &LabelSet) {
    put_uvar(b, l.len() as u64);
    for (k, v) in l {
        put_str(b, k);
        put_str(b, v);
    }
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

    fn str(&mut self) -> Result<&'a str, RecordError> {
        let n = self.len()?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| RecordError("invalid UTF-8"))
    }

    fn string(&mut self) -> Result<String, RecordError> {
        self.str().map(str::to_string)
    }

    fn strings(&mut self) -> Result<Vec<String>, RecordError> {
        let n = self.len()?;
        let mut v = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            v.push(self.string()?);
        }
        Ok(v)
    }

    fn labels(&mut self) -> Result<LabelSet, RecordError> {
        let n = self.len()?;
        let mut l = LabelSet::new();
        for _ in 0..n {
            let k = self.string()?;
            let v = self.string()?;
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
        }
    }

    #[test]
    fn round_trips_every_field_including_offsets() {
        let a = sample();
        let r = AlertRecord::encode(&a);
        let back = r.decode().unwrap();
        assert_eq!(back, a);
        assert_eq!(back.starts_at.offset().whole_seconds(), 7200);
        assert_eq!(r.fingerprint(), a.fingerprint);
        let h = r.header().unwrap();
        assert_eq!(h.ends_at, a.ends_at);
        assert!(h.timeout && h.routed);
        assert_eq!(r.merge_state().unwrap(), a.merge_state());
        let mut firing = a.clone();
        firing.ends_at = None;
        firing.timeout = false;
        firing.targets = Targets::default();
        let r = AlertRecord::encode(&firing);
        assert_eq!(r.decode().unwrap(), firing);
        assert_eq!(r.header().unwrap().ends_at, None);
    }

    #[test]
    fn record_is_compact() {
        let a = sample();
        let json = serde_json::to_vec(&a).unwrap();
        let r = AlertRecord::encode(&a);
        assert!(
            r.len() * 2 < json.len(),
            "record {} bytes vs JSON {}",
            r.len(),
            json.len()
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let bytes = AlertRecord::encode(&sample()).as_bytes().to_vec();
        for n in 0..bytes.len() {
            assert!(AlertRecord::from_bytes(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(AlertRecord::from_bytes(&extra).is_err());
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert!(AlertRecord::from_bytes(&wrong).is_err());
        // flip every byte: decoding may succeed or fail, never panic
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = AlertRecord::from_bytes(&b);
        }
    }
}
