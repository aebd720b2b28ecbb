//! Notifications on disk, out of sled: an append-only log of notification bodies, delivery
//! records and deletions (`<storage.path>/outbox/`, [`LogFile`] segments), with an
//! in-memory index of where each notification's body is and its latest delivery record.
//! Bodies are read back on demand (`pread`), so memory holds about a hundred bytes per
//! notification, and queueing or recording an attempt costs one sequential append instead
//! of sled B-tree inserts.
//!
//! A frame holds the outbox part of one writer batch. When the same batch also changes
//! the `dispatch` tree (a flush records its notification-log entry beside the queued
//! notification), the frame is *flagged*, and the sled batch stores the frame's sequence
//! number as the outbox mark ([`keys::OUTBOX_MARK_KEY`]) atomically with its own changes.
//! The frame is written (and, where `storage.sync` says, synced) before the sled batch is
//! applied, so sled never runs ahead of the log; on open, a flagged frame past the mark
//! lost its sled half in a crash: nobody was answered for it, and it is cut off with
//! everything after it, so a notification is neither queued twice nor without its
//! notification-log entry.
//!
//! Space: a segment is deleted once it is the oldest and nothing live is in it (so a
//! deletion is never dropped before the body it deletes); an oldest segment less than a
//! quarter live is compacted: its live notifications are written again, with their
//! delivery records folded in, and it is deleted.
//!
//! Frame chunk: `flags u8` (bit 0: flagged), then ops: `1 id u64 state u8 updated_at i64
//! len u32 json` (a whole [`Notification`]), `2 id u64 len u32 json` (a
//! [`DeliveryRecord`]), `3 id u64` (delete); integers little-endian, times in unix
//! nanoseconds.
//!
//! [`keys::OUTBOX_MARK_KEY`]: super::keys::OUTBOX_MARK_KEY

use super::logfile::{self, LogFile, HEADER};
use super::{DeliveryRecord, DeliveryState, Notification, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, RwLock};
use time::OffsetDateTime;

const FLAGGED: u8 = 1;
const OP_PUT: u8 = 1;
const OP_DELIVERY: u8 = 2;
const OP_DEL: u8 = 3;

fn corrupt(err: impl std::fmt::Display) -> StoreError {
    StoreError::Decode {
        tree: "outbox",
        err: err.to_string(),
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Sled(sled::Error::Io(e))
}

fn state_code(s: DeliveryState) -> u8 {
    match s {
        DeliveryState::Pending => 0,
        DeliveryState::Failed => 1,
        DeliveryState::Delivered => 2,
        DeliveryState::Merged => 3,
        DeliveryState::Dead => 4,
    }
}

fn state_of(c: u8) -> Result<DeliveryState, StoreError> {
    Ok(match c {
        0 => DeliveryState::Pending,
        1 => DeliveryState::Failed,
        2 => DeliveryState::Delivered,
        3 => DeliveryState::Merged,
        4 => DeliveryState::Dead,
        c => return Err(corrupt(format!("unknown delivery state {c}"))),
    })
}

fn nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn time_of(n: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(n.into()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Where a notification is and what its delivery state is.
#[derive(Debug, Clone)]
struct Slot {
    /// Body: segment, byte offset, length.
    body: (u64, u64, u32),
    state: DeliveryState,
    updated_at: OffsetDateTime,
    /// The latest delivery record since the body was written, and where it is on disk.
    delivery: Option<(Box<DeliveryRecord>, (u64, u32))>,
}

impl Slot {
    /// Bytes this slot keeps live, per segment.
    fn holds(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        std::iter::once((self.body.0, u64::from(self.body.2)))
            .chain(self.delivery.iter().map(|(_, (s, l))| (*s, u64::from(*l))))
    }
}

/// The index, shared by the writer (which changes it) and readers.
#[derive(Default)]
struct Index {
    slots: BTreeMap<u64, Slot>,
    files: HashMap<u64, Arc<File>>,
    /// Live bytes per segment.
    live: BTreeMap<u64, u64>,
}

impl Index {
    fn release(&mut self, slot: &Slot) {
        for (seg, n) in slot.holds() {
            if let Some(l) = self.live.get_mut(&seg) {
                *l = l.saturating_sub(n);
            }
        }
    }

    fn hold(&mut self, slot: &Slot) {
        for (seg, n) in slot.holds() {
            *self.live.entry(seg).or_default() += n;
        }
    }

    /// Apply the ops of a frame whose chunk starts at `base` in segment `seg`.
    fn apply(&mut self, chunk: &[u8], seg: u64, base: u64) -> Result<(), StoreError> {
        let mut r = Cursor { b: chunk, at: 1 };
        while r.at < chunk.len() {
            let op = r.u8()?;
            let id = r.u64()?;
            match op {
                OP_PUT => {
                    let state = state_of(r.u8()?)?;
                    let updated_at = time_of(r.u64()? as i64);
                    let len = r.u32()?;
                    let off = base + r.at as u64;
                    r.skip(len as usize)?;
                    self.put(id, (seg, off, len), state, updated_at);
                }
                OP_DELIVERY => {
                    let len = r.u32()?;
                    let json = r.take(len as usize)?;
                    let d: DeliveryRecord = serde_json::from_slice(json).map_err(corrupt)?;
                    self.delivery(id, d, (seg, len));
                }
                OP_DEL => self.del(id),
                op => return Err(corrupt(format!("unknown op {op}"))),
            }
        }
        Ok(())
    }

    fn put(&mut self, id: u64, body: (u64, u64, u32), state: DeliveryState, t: OffsetDateTime) {
        let slot = Slot {
            body,
            state,
            updated_at: t,
            delivery: None,
        };
        self.hold(&slot);
        if let Some(old) = self.slots.insert(id, slot) {
            self.release(&old);
        }
    }

    fn del(&mut self, id: u64) {
        if let Some(old) = self.slots.remove(&id) {
            self.release(&old);
        }
    }

    fn delivery(&mut self, id: u64, d: DeliveryRecord, at: (u64, u32)) {
        let Some(mut slot) = self.slots.remove(&id) else {
            // deleted meanwhile: nothing to record on
            return;
        };
        self.release(&slot);
        slot.state = d.state;
        slot.updated_at = d.updated_at;
        slot.delivery = Some((Box::new(d), at));
        self.hold(&slot);
        self.slots.insert(id, slot);
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let s = self
            .b
            .get(self.at..self.at + n)
            .ok_or_else(|| corrupt("frame cut short"))?;
        self.at += n;
        Ok(s)
    }
    fn skip(&mut self, n: usize) -> Result<(), StoreError> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().map_err(corrupt)?))
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(corrupt)?))
    }
}

/// The readable side: lookups by id and state (cheap to share).
#[derive(Default)]
pub struct Outbox {
    index: RwLock<Index>,
}

impl Outbox {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored notification `id` with its latest delivery record applied.
    pub fn get(&self, id: u64) -> Result<Option<Notification>, StoreError> {
        let (slot, file) = {
            let ix = self.read();
            let Some(slot) = ix.slots.get(&id) else {
                return Ok(None);
            };
            let file = ix
                .files
                .get(&slot.body.0)
                .cloned()
                .ok_or_else(|| corrupt(format!("notification {id}: segment missing")))?;
            (slot.clone(), file)
        };
        // The file stays readable even if compaction deletes it meanwhile.
        let (_, off, len) = slot.body;
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, off).map_err(io)?;
        let mut n: Notification = serde_json::from_slice(&buf).map_err(corrupt)?;
        if let Some((d, _)) = slot.delivery {
            d.apply_to(&mut n);
        }
        Ok(Some(n))
    }

    /// Delivery state and last change of notification `id`.
    pub fn state(&self, id: u64) -> Option<(DeliveryState, OffsetDateTime)> {
        self.read().slots.get(&id).map(|s| (s.state, s.updated_at))
    }

    /// Ids of the notifications whose (state, last change) satisfy `keep`, newest first.
    pub fn ids(&self, mut keep: impl FnMut(DeliveryState, OffsetDateTime) -> bool) -> Vec<u64> {
        self.read()
            .slots
            .iter()
            .rev()
            .filter(|(_, s)| keep(s.state, s.updated_at))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// An op waiting in the frame being built; applied to the index once the frame is written.
enum Pending {
    /// Body at this offset of the chunk.
    Put(u64, usize, u32, DeliveryState, OffsetDateTime),
    Delivery(u64, DeliveryRecord, u32),
    Del(u64),
}

/// The writing side (the store's writer thread only).
pub struct OutboxLog {
    log: LogFile,
    /// Sequence number of the next frame.
    seq: u64,
    chunk: Vec<u8>,
    pending: Vec<Pending>,
    shared: Arc<Outbox>,
}

/// Segments whose live bytes are below this share of their size are compacted (when they
/// are the oldest).
const COMPACT_BELOW: u64 = 4;

impl OutboxLog {
    /// Open the log in `dir`; `mark` is the outbox mark stored in sled (see the module
    /// doc). Flagged frames past it are cut off.
    pub fn open(dir: &Path, mark: u64) -> Result<(OutboxLog, Arc<Outbox>), StoreError> {
        let mut index = Index::default();
        let mut cut: Option<(u64, u64)> = None;
        let (log, next) = LogFile::open_at(dir, |seq, chunk, (seg, off)| {
            if cut.is_some() {
                return Ok(());
            }
            let flags = chunk.first().copied().unwrap_or(0);
            if flags & FLAGGED != 0 && seq > mark {
                cut = Some((seg, off - HEADER as u64));
                return Ok(());
            }
            index.apply(chunk, seg, off)
        })?;
        let (log, next) = match cut {
            None => (log, next),
            Some(at) => {
                drop(log);
                tracing::warn!(
                    segment = at.0,
                    offset = at.1,
                    "outbox: frames whose notification-log half was not stored (a crash) removed"
                );
                logfile::truncate(dir, at)?;
                LogFile::open_at(dir, |_, _, _| Ok(()))?
            }
        };
        for (seg, _) in logfile::segment_sizes(dir)? {
            let f = File::open(log.segment_path(seg)).map_err(io)?;
            index.files.insert(seg, Arc::new(f));
            index.live.entry(seg).or_default();
        }
        let shared = Arc::new(Outbox {
            index: RwLock::new(index),
        });
        Ok((
            OutboxLog {
                log,
                seq: next,
                chunk: vec![0],
                pending: Vec::new(),
                shared: shared.clone(),
            },
            shared,
        ))
    }

    pub fn set_sync(&mut self, counts: Arc<super::fsync::SyncCounts>) {
        self.log.set_sync(counts);
    }

    /// Sync every frame written (nothing unless sync is on).
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.log.sync()
    }

    /// Sequence number of the last frame written (0: none).
    pub fn last_seq(&self) -> u64 {
        self.seq - 1
    }

    /// Nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The outbox as the writer sees it (the index is updated as frames are written).
    pub fn shared(&self) -> &Outbox {
        &self.shared
    }

    /// Store `n` whole (replacing its delivery record, if any).
    pub fn put(&mut self, n: &Notification) {
        let start = self.chunk.len();
        self.chunk.push(OP_PUT);
        self.chunk.extend_from_slice(&n.id.to_le_bytes());
        self.chunk.push(state_code(n.state));
        self.chunk
            .extend_from_slice(&nanos(n.updated_at).to_le_bytes());
        let len_at = self.chunk.len();
        self.chunk.extend_from_slice(&[0; 4]);
        let at = self.chunk.len();
        // straight into the frame (our own plain data always serialises)
        if let Err(e) = serde_json::to_writer(&mut self.chunk, n) {
            tracing::error!(id = n.id, error = %e, "cannot encode a notification; it is not stored");
            self.chunk.truncate(start);
            return;
        }
        let len = (self.chunk.len() - at) as u32;
        self.chunk[len_at..at].copy_from_slice(&len.to_le_bytes());
        self.pending
            .push(Pending::Put(n.id, at, len, n.state, n.updated_at));
    }

    /// Record the outcome of an attempt at notification `id`.
    pub fn delivery(&mut self, id: u64, d: DeliveryRecord) {
        let json = serde_json::to_vec(&d).unwrap_or_default();
        self.chunk.push(OP_DELIVERY);
        self.chunk.extend_from_slice(&id.to_le_bytes());
        self.chunk
            .extend_from_slice(&(json.len() as u32).to_le_bytes());
        self.chunk.extend_from_slice(&json);
        self.pending
            .push(Pending::Delivery(id, d, json.len() as u32));
    }

    pub fn del(&mut self, id: u64) {
        self.chunk.push(OP_DEL);
        self.chunk.extend_from_slice(&id.to_le_bytes());
        self.pending.push(Pending::Del(id));
    }

    /// Forget what waits (its batch failed; the store refuses writes from now on).
    pub fn discard(&mut self) {
        self.chunk.truncate(1);
        self.pending.clear();
    }

    /// Write what waits as one frame, `flagged` when the same batch changes sled, and
    /// apply it to the index. Nothing when nothing waits.
    pub fn write(&mut self, flagged: bool) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.chunk[0] = if flagged { FLAGGED } else { 0 };
        let written = self.log.append_one(&self.chunk, &mut self.seq);
        // emptied, keeping its capacity for the next frame (up to a megabyte)
        self.chunk.truncate(1);
        self.chunk.shrink_to(1 << 20);
        let pending = std::mem::take(&mut self.pending);
        let (seg, base) = written?;
        let mut ix = self.shared.write();
        if let std::collections::hash_map::Entry::Vacant(e) = ix.files.entry(seg) {
            let f = File::open(self.log.segment_path(seg)).map_err(io)?;
            e.insert(Arc::new(f));
            ix.live.entry(seg).or_default();
        }
        for p in pending {
            match p {
                Pending::Put(id, at, len, state, updated_at) => {
                    ix.put(id, (seg, base + at as u64, len), state, updated_at)
                }
                Pending::Delivery(id, d, len) => ix.delivery(id, d, (seg, len)),
                Pending::Del(id) => ix.del(id),
            }
        }
        Ok(())
    }

    /// Reclaim space: delete the oldest segment while nothing in it is live; compact it
    /// when less than a quarter is. Call between batches (it may write a frame).
    pub fn reclaim(&mut self) -> Result<(), StoreError> {
        loop {
            let current = self.log.segment();
            let oldest = {
                let ix = self.shared.read();
                ix.live.iter().next().map(|(s, l)| (*s, *l))
            };
            let Some((seg, live)) = oldest else {
                return Ok(());
            };
            if seg == current {
                return Ok(());
            }
            if live > 0 {
                let size = std::fs::metadata(self.log.segment_path(seg))
                    .map(|m| m.len())
                    .unwrap_or(0);
                if live * COMPACT_BELOW >= size {
                    return Ok(());
                }
                self.compact(seg)?;
            }
            self.log.remove_segment(seg)?;
            let mut ix = self.shared.write();
            ix.live.remove(&seg);
            ix.files.remove(&seg);
        }
    }

    /// Write the notifications with anything live in segment `seg` again, whole.
    fn compact(&mut self, seg: u64) -> Result<(), StoreError> {
        let ids: Vec<u64> = {
            let ix = self.shared.read();
            ix.slots
                .iter()
                .filter(|(_, s)| s.holds().any(|(g, _)| g == seg))
                .map(|(id, _)| *id)
                .collect()
        };
        tracing::debug!(
            segment = seg,
            notifications = ids.len(),
            "outbox: compacting a mostly dead segment"
        );
        for id in ids {
            if let Some(n) = self.shared.get(id)? {
                self.put(&n);
            }
        }
        self.write(false)?;
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::WebhookMessage;

    fn note(id: u64) -> Notification {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000 + id as i64).unwrap();
        Notification::pending(
            id,
            ("r", "webhook", 0),
            crate::store::tests::empty_message(),
            format!("<{id}@x>"),
            t,
        )
    }

    fn delivered(n: &Notification) -> DeliveryRecord {
        let mut n = n.clone();
        n.state = DeliveryState::Delivered;
        n.attempts = 1;
        n.delivered_at = Some(n.created_at);
        DeliveryRecord::of(&n)
    }

    #[test]
    fn bodies_deliveries_and_deletes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, ob) = OutboxLog::open(dir.path(), 0).unwrap();
        for id in 1..=3 {
            log.put(&note(id));
        }
        log.write(false).unwrap();
        log.delivery(2, delivered(&note(2)));
        log.del(3);
        log.write(false).unwrap();
        assert_eq!(ob.get(1).unwrap().unwrap(), note(1));
        assert_eq!(ob.get(2).unwrap().unwrap().state, DeliveryState::Delivered);
        assert!(ob.get(3).unwrap().is_none());
        assert_eq!(ob.ids(|s, _| s.is_open()), vec![1]);
        drop(log);
        let (_, ob) = OutboxLog::open(dir.path(), 0).unwrap();
        assert_eq!(ob.get(1).unwrap().unwrap(), note(1));
        let two = ob.get(2).unwrap().unwrap();
        assert_eq!((two.state, two.attempts), (DeliveryState::Delivered, 1));
        assert!(ob.get(3).unwrap().is_none());
        assert_eq!(ob.ids(|_, _| true), vec![2, 1], "newest first");
    }

    #[test]
    fn a_flagged_frame_past_the_mark_is_cut_off_with_what_follows() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = OutboxLog::open(dir.path(), 0).unwrap();
        log.put(&note(1));
        log.write(true).unwrap(); // seq 1, its sled half stored (mark 1)
        log.put(&note(2));
        log.write(false).unwrap(); // seq 2: no sled half, kept
        log.put(&note(3));
        log.write(true).unwrap(); // seq 3: sled half lost
        log.delivery(2, delivered(&note(2)));
        log.write(false).unwrap(); // seq 4: after the cut
        drop(log);
        let (mut log, ob) = OutboxLog::open(dir.path(), 1).unwrap();
        assert_eq!(ob.ids(|_, _| true), vec![2, 1]);
        assert_eq!(ob.get(2).unwrap().unwrap().state, DeliveryState::Pending);
        assert_eq!(log.last_seq(), 2, "appends continue after the cut");
        log.put(&note(4));
        log.write(true).unwrap();
        drop(log);
        let (_, ob) = OutboxLog::open(dir.path(), 3).unwrap();
        assert_eq!(ob.ids(|_, _| true), vec![4, 2, 1]);
    }

    #[test]
    fn dead_segments_are_deleted_and_sparse_ones_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, ob) = OutboxLog::open(dir.path(), 0).unwrap();
        // a first segment: 1 is kept, 2..=40 deleted later; then enough to pass a segment
        let mut big = note(1);
        big.message.receiver = "x".repeat(64 * 1024);
        for id in 1..=40 {
            let mut n = big.clone();
            n.id = id;
            log.put(&n);
            log.write(false).unwrap();
        }
        log.delivery(1, delivered(&big));
        log.write(false).unwrap();
        let mut id = 41;
        while logfile::segment_sizes(dir.path()).unwrap().len() < 2 {
            let mut n = big.clone();
            n.id = id;
            log.put(&n);
            log.write(false).unwrap();
            id += 1;
        }
        let first = logfile::segment_sizes(dir.path()).unwrap()[0].0;
        log.reclaim().unwrap();
        assert_eq!(
            logfile::segment_sizes(dir.path()).unwrap()[0].0,
            first,
            "mostly live: kept"
        );
        for id in 2..id {
            log.del(id);
        }
        log.write(false).unwrap();
        log.reclaim().unwrap();
        let segs = logfile::segment_sizes(dir.path()).unwrap();
        assert!(
            segs.iter().all(|s| s.0 != first),
            "compacted away: {segs:?}"
        );
        let one = ob.get(1).unwrap().unwrap();
        assert_eq!(one.state, DeliveryState::Delivered, "delivery folded in");
        drop(log);
        let (_, ob) = OutboxLog::open(dir.path(), 0).unwrap();
        assert_eq!(ob.ids(|_, _| true), vec![1]);
        assert_eq!(ob.get(1).unwrap().unwrap().attempts, 1);
    }

    #[test]
    fn messages_round_trip() {
        // the stored JSON is the notification as it was
        let mut n = note(9);
        // encoded at flush, as the dispatcher stores it: the log copies those bytes
        n.message = crate::store::Message::encoded(WebhookMessage {
            receiver: "r".into(),
            ..crate::store::tests::empty_message()
        });
        assert!(n.message.has_json());
        let dir = tempfile::tempdir().unwrap();
        let (mut log, ob) = OutboxLog::open(dir.path(), 0).unwrap();
        log.put(&n);
        log.write(false).unwrap();
        assert_eq!(ob.get(9).unwrap().unwrap(), n);
    }
}
