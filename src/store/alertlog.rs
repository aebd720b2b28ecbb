//! Alerts: an in-memory live map backed by an append-only log and periodic checkpoints.
//!
//! Ingest acknowledges after an *append*: the writer merges each report into the live map
//! (one [`AlertRecord`] per alert, shared with the aggregation groups) and appends the
//! merged records to the `alertlog` tree under a monotonic sequence number, a few KiB per
//! key, flushed once per group commit. Sequential keys cost sled far less than updating
//! random fingerprint keys.
//!
//! When the log has grown past half the live data (at least [`MIN_CHECKPOINT_BYTES`]), a
//! background thread writes the whole live map as a new checkpoint generation (the
//! `checkpoint` tree), records `(generation, last sequence covered)` in `meta`, then drops
//! the older generation and the log up to that sequence. Log entries are full alert
//! states or deletions, so replaying them is idempotent: the checkpoint may even contain
//! states newer than the sequence it covers, and replaying the tail still ends in the
//! state of the last entry. A crash at any point of a checkpoint leaves either the old or
//! the new generation complete, with every log entry after it.
//!
//! On open, the newest checkpoint is loaded and the log tail replayed; leftovers of an
//! interrupted checkpoint are removed. Schema 1 stores (JSON alerts keyed by fingerprint)
//! are migrated on first open.

use super::record::{put_uvar, AlertRecord, Reader, RecordError};
use super::{keys, StoreError};
use crate::alert::{Alert, Fingerprint};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;

/// Target size of one log or checkpoint value: sled writes a leaf of up to 17 values as one
/// unit and moves anything over ~128 KiB into a separate blob file, so values stay small.
pub const CHUNK_BYTES: usize = 4096;
/// The log is checkpointed once it holds this much, or half the live data if that is more.
pub const MIN_CHECKPOINT_BYTES: u64 = 32 * 1024 * 1024;

/// What the admin status shows about checkpoints (updated by the writer).
#[derive(Debug, Default)]
pub struct Stats {
    /// Checkpoints completed since start.
    pub completed: AtomicU64,
    /// Generation of the newest complete checkpoint.
    pub generation: AtomicU64,
    /// Log bytes written since the newest checkpoint started.
    pub log_bytes: AtomicU64,
}

impl Stats {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "completed": self.completed.load(Ordering::Relaxed),
            "generation": self.generation.load(Ordering::Relaxed),
            "log_bytes": self.log_bytes.load(Ordering::Relaxed),
        })
    }
}

const PUT: u8 = 1;
const DEL: u8 = 2;
const SHARDS: usize = 16;

/// Fingerprints are already FNV hashes: mix them once instead of SipHashing them again.
#[derive(Default)]
pub struct FpHasher(u64);

impl Hasher for FpHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
}

type FpMap<V> = HashMap<Fingerprint, V, BuildHasherDefault<FpHasher>>;

/// Every stored alert, in memory (sharded so readers never hold up the writer for long).
pub struct Live {
    shards: Vec<RwLock<FpMap<AlertRecord>>>,
    count: AtomicUsize,
    bytes: AtomicU64,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            count: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
        }
    }
}

impl Live {
    fn shard(&self, fp: Fingerprint) -> &RwLock<FpMap<AlertRecord>> {
        &self.shards[(fp.0 >> 60) as usize % SHARDS]
    }

    pub fn get(&self, fp: Fingerprint) -> Option<AlertRecord> {
        let s = self.shard(fp).read().unwrap_or_else(|p| p.into_inner());
        s.get(&fp).cloned()
    }

    pub fn put(&self, r: AlertRecord) {
        let fp = r.fingerprint();
        let len = r.len() as u64;
        let old = self
            .shard(fp)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fp, r);
        match old {
            Some(o) => {
                self.bytes.fetch_sub(o.len() as u64, Ordering::Relaxed);
            }
            None => {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.bytes.fetch_add(len, Ordering::Relaxed);
    }

    pub fn remove(&self, fp: Fingerprint) -> Option<AlertRecord> {
        let old = self
            .shard(fp)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fp);
        if let Some(o) = &old {
            self.count.fetch_sub(1, Ordering::Relaxed);
            self.bytes.fetch_sub(o.len() as u64, Ordering::Relaxed);
        }
        old
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of record data held.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Every record (each shard is locked only while its handles are cloned).
    pub fn records(&self) -> Vec<AlertRecord> {
        let mut out = Vec::with_capacity(self.len());
        for s in &self.shards {
            let s = s.read().unwrap_or_else(|p| p.into_inner());
            out.extend(s.values().cloned());
        }
        out
    }
}

/// Appends log entries into chunks of about [`CHUNK_BYTES`].
pub struct Chunker {
    cur: Vec<u8>,
    done: Vec<Vec<u8>>,
}

impl Default for Chunker {
    fn default() -> Self {
        Chunker {
            cur: Vec::with_capacity(CHUNK_BYTES + 512),
            done: Vec::new(),
        }
    }
}

impl Chunker {
    pub fn put(&mut self, r: &AlertRecord) {
        self.cur.push(PUT);
        put_uvar(&mut self.cur, r.len() as u64);
        self.cur.extend_from_slice(r.as_bytes());
        self.cut();
    }

    pub fn del(&mut self, fp: Fingerprint) {
        self.cur.push(DEL);
        self.cur.extend_from_slice(&fp.0.to_le_bytes());
        self.cut();
    }

    fn cut(&mut self) {
        if self.cur.len() >= CHUNK_BYTES {
            let full = std::mem::replace(&mut self.cur, Vec::with_capacity(CHUNK_BYTES + 512));
            self.done.push(full);
        }
    }

    /// The finished chunks, including a partial last one.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        if !self.cur.is_empty() {
            self.done.push(self.cur);
        }
        self.done
    }
}

/// One entry of a chunk.
enum Entry {
    Put(AlertRecord),
    Del(Fingerprint),
}

/// Parse a chunk. Records are checked only as far as their header (a full decode of every
/// alert would dominate start-up); a record that later fails to decode is reported where
/// it is read.
fn entries(chunk: &[u8]) -> Result<Vec<Entry>, RecordError> {
    let mut r = Reader::over(chunk);
    let mut out = Vec::new();
    while !r.rest.is_empty() {
        match r.byte()? {
            PUT => {
                let n = usize::try_from(r.uvar()?).map_err(|_| RecordError("length"))?;
                let rec = AlertRecord::from_trusted(r.bytes(n)?);
                rec.header()?;
                out.push(Entry::Put(rec));
            }
            DEL => {
                let mut fp = [0u8; 8];
                fp.copy_from_slice(r.bytes(8)?);
                out.push(Entry::Del(Fingerprint(u64::from_le_bytes(fp))));
            }
            _ => return Err(RecordError("unknown log entry")),
        }
    }
    Ok(out)
}

fn apply_chunk(live: &Live, tree: &'static str, chunk: &[u8]) -> Result<(), StoreError> {
    let parsed = entries(chunk).map_err(|e| StoreError::Decode {
        tree,
        err: e.to_string(),
    })?;
    for e in parsed {
        match e {
            Entry::Put(r) => live.put(r),
            Entry::Del(fp) => {
                live.remove(fp);
            }
        }
    }
    Ok(())
}

/// Where the newest complete checkpoint is: its generation and the last log sequence
/// number it covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mark {
    pub generation: u64,
    pub covers: u64,
}

impl Mark {
    fn read(meta: &sled::Tree) -> Result<Mark, StoreError> {
        match meta.get(keys::CHECKPOINT_KEY)? {
            None => Ok(Mark::default()),
            Some(v) if v.len() == 16 => {
                let mut g = [0u8; 8];
                let mut c = [0u8; 8];
                g.copy_from_slice(&v[..8]);
                c.copy_from_slice(&v[8..]);
                Ok(Mark {
                    generation: u64::from_be_bytes(g),
                    covers: u64::from_be_bytes(c),
                })
            }
            Some(_) => Err(StoreError::Decode {
                tree: "meta",
                err: "checkpoint mark is not 16 bytes".into(),
            }),
        }
    }

    fn bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.generation.to_be_bytes());
        b[8..].copy_from_slice(&self.covers.to_be_bytes());
        b
    }
}

/// The trees behind the alert log.
#[derive(Clone)]
pub struct Trees {
    pub db: sled::Db,
    pub meta: sled::Tree,
    pub log: sled::Tree,
    pub checkpoint: sled::Tree,
}

impl Trees {
    pub fn open(db: &sled::Db) -> Result<Trees, StoreError> {
        Ok(Trees {
            db: db.clone(),
            meta: db.open_tree(keys::TREE_META)?,
            log: db.open_tree(keys::TREE_ALERT_LOG)?,
            checkpoint: db.open_tree(keys::TREE_CHECKPOINT)?,
        })
    }
}

/// What [`load`] found.
pub struct Loaded {
    pub mark: Mark,
    /// The sequence number the next log chunk gets.
    pub next_seq: u64,
    /// Log bytes after the checkpoint (counted toward the next one).
    pub log_bytes: u64,
}

/// Load the newest checkpoint and replay the log after it into `live`, removing what an
/// interrupted checkpoint left behind.
pub fn load(t: &Trees, live: &Live) -> Result<Loaded, StoreError> {
    let mark = Mark::read(&t.meta)?;
    let gen = mark.generation.to_be_bytes();
    let mut stale = sled::Batch::default();
    let mut any_stale = false;
    for kv in t.checkpoint.iter() {
        let (k, v) = kv?;
        if k.starts_with(&gen) && mark.generation > 0 {
            apply_chunk(live, "checkpoint", &v)?;
        } else {
            stale.remove(k);
            any_stale = true;
        }
    }
    if any_stale {
        t.checkpoint.apply_batch(stale)?;
    }
    let mut next_seq = mark.covers + 1;
    let mut log_bytes = 0u64;
    let mut old = sled::Batch::default();
    for kv in t.log.iter() {
        let (k, v) = kv?;
        let seq = seq_of(&k)?;
        if seq <= mark.covers {
            old.remove(k);
            continue;
        }
        apply_chunk(live, "alertlog", &v)?;
        log_bytes += v.len() as u64;
        next_seq = seq + 1;
    }
    t.log.apply_batch(old)?;
    Ok(Loaded {
        mark,
        next_seq,
        log_bytes,
    })
}

fn seq_of(k: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = k.try_into().map_err(|_| StoreError::Decode {
        tree: "alertlog",
        err: "key is not a sequence number".into(),
    })?;
    Ok(u64::from_be_bytes(arr))
}

pub fn log_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Checkpoints written in chunks per sled batch.
const CHUNKS_PER_BATCH: usize = 256;

/// Write the live map as generation `prev.generation + 1`, covering log entries up to
/// `covers`, then drop the previous generation and the covered log. Returns the new mark.
pub fn checkpoint(t: &Trees, live: &Live, prev: Mark, covers: u64) -> Result<Mark, StoreError> {
    let mark = Mark {
        generation: prev.generation + 1,
        covers,
    };
    let prefix = mark.generation.to_be_bytes();
    let mut chunker = Chunker::default();
    let mut idx = 0u64;
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    let mut write = |chunks: Vec<Vec<u8>>, batch: &mut sled::Batch, in_batch: &mut usize| {
        for c in chunks {
            let mut k = Vec::with_capacity(16);
            k.extend_from_slice(&prefix);
            k.extend_from_slice(&idx.to_be_bytes());
            idx += 1;
            batch.insert(k, c);
            *in_batch += 1;
        }
    };
    for s in &live.shards {
        let records: Vec<AlertRecord> = s
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for r in &records {
            chunker.put(r);
        }
        let full = std::mem::take(&mut chunker.done);
        write(full, &mut batch, &mut in_batch);
        if in_batch >= CHUNKS_PER_BATCH {
            t.checkpoint.apply_batch(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    write(chunker.finish(), &mut batch, &mut in_batch);
    t.checkpoint.apply_batch(batch)?;
    t.db.flush()?;
    t.meta.insert(keys::CHECKPOINT_KEY, &mark.bytes())?;
    t.db.flush()?;
    // The new generation is complete and recorded: what it replaces can go.
    let mut old = sled::Batch::default();
    for k in t
        .checkpoint
        .scan_prefix(prev.generation.to_be_bytes())
        .keys()
    {
        old.remove(k?);
    }
    t.checkpoint.apply_batch(old)?;
    let mut old = sled::Batch::default();
    for k in t.log.range(..=log_key(covers)).keys() {
        old.remove(k?);
    }
    t.log.apply_batch(old)?;
    Ok(mark)
}

/// Migrate a schema 1 store (JSON alerts keyed by fingerprint in the `alerts` tree) into
/// `live` and a first checkpoint. The old tree is dropped only after the checkpoint and the
/// new schema version are flushed, so an interrupted migration simply runs again.
pub fn migrate_v1(t: &Trees, live: &Live) -> Result<Mark, StoreError> {
    let old = t.db.open_tree(keys::TREE_ALERTS)?;
    let mut n = 0usize;
    for v in old.iter().values() {
        let v = v?;
        let a: Alert = serde_json::from_slice(&v).map_err(|e| StoreError::Decode {
            tree: "alerts",
            err: e.to_string(),
        })?;
        live.put(AlertRecord::encode(&a));
        n += 1;
    }
    // Start from a clean slate: whatever a previous, interrupted attempt wrote is replaced.
    t.checkpoint.clear()?;
    t.log.clear()?;
    let mark = checkpoint(t, live, Mark::default(), 0)?;
    t.meta.insert(
        keys::SCHEMA_KEY,
        keys::SCHEMA_VERSION.to_string().as_bytes(),
    )?;
    t.db.flush()?;
    drop(old);
    t.db.drop_tree(keys::TREE_ALERTS)?;
    t.db.flush()?;
    tracing::info!(
        alerts = n,
        "store migrated from schema 1 (JSON) to schema 2"
    );
    Ok(mark)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::alert;

    fn append(t: &Trees, seq: &mut u64, f: impl FnOnce(&mut Chunker)) {
        let mut c = Chunker::default();
        f(&mut c);
        for chunk in c.finish() {
            t.log.insert(log_key(*seq), chunk).unwrap();
            *seq += 1;
        }
    }

    /// A fresh database whose log holds alerts `0..n` (also put into the returned map).
    fn with_alerts(dir: &std::path::Path, n: u64) -> (Trees, Live, u64) {
        let db = sled::Config::new().path(dir).open().unwrap();
        let t = Trees::open(&db).unwrap();
        let live = Live::default();
        let mut seq = 1;
        append(&t, &mut seq, |c| {
            for i in 0..n {
                let r = AlertRecord::encode(&alert(i));
                live.put(r.clone());
                c.put(&r);
            }
        });
        (t, live, seq)
    }

    #[test]
    fn checkpoint_then_tail_replays_to_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let t = Trees::open(&db).unwrap();
        let live = Live::default();
        let mut seq = 1;
        let alerts: Vec<Alert> = (0..500).map(alert).collect();
        append(&t, &mut seq, |c| {
            for a in &alerts {
                let r = AlertRecord::encode(a);
                live.put(r.clone());
                c.put(&r);
            }
        });
        assert!(seq > 3, "500 alerts span several chunks");
        let mark = checkpoint(&t, &live, Mark::default(), seq - 1).unwrap();
        assert_eq!(t.log.len(), 0, "covered log dropped");
        // after the checkpoint: one update, one delete
        let mut changed = alerts[7].clone();
        changed.ends_at = Some(changed.starts_at);
        append(&t, &mut seq, |c| {
            c.put(&AlertRecord::encode(&changed));
            c.del(alerts[9].fingerprint);
        });
        let reloaded = Live::default();
        let l = load(&t, &reloaded).unwrap();
        assert_eq!(l.mark, mark);
        assert_eq!(l.next_seq, seq);
        assert_eq!(reloaded.len(), 499);
        assert!(reloaded.get(alerts[9].fingerprint).is_none());
        let got = reloaded
            .get(alerts[7].fingerprint)
            .unwrap()
            .decode()
            .unwrap();
        assert_eq!(got, changed);
        let got = reloaded
            .get(alerts[8].fingerprint)
            .unwrap()
            .decode()
            .unwrap();
        assert_eq!(got, alerts[8]);
    }

    /// A checkpoint interrupted after writing some chunks (no mark yet) is ignored and
    /// cleaned up; the previous generation plus the full log give the state.
    #[test]
    fn interrupted_checkpoint_leaves_the_old_state_intact() {
        let dir = tempfile::tempdir().unwrap();
        let (t, _, _) = with_alerts(dir.path(), 50);
        // half-written generation 1: garbage chunks, no mark
        t.checkpoint
            .insert(
                [1u64.to_be_bytes(), 0u64.to_be_bytes()].concat(),
                vec![PUT, 3, 1, 2],
            )
            .unwrap();
        let reloaded = Live::default();
        load(&t, &reloaded).unwrap();
        assert_eq!(reloaded.len(), 50);
        assert_eq!(t.checkpoint.len(), 0, "stale chunks removed");
    }

    /// A checkpoint interrupted after its mark was written but before the generation it
    /// replaces and the covered log were dropped: load uses the new generation, skips the
    /// covered log and removes both leftovers.
    #[test]
    fn checkpoint_interrupted_after_its_mark_loads_the_new_generation() {
        let dir = tempfile::tempdir().unwrap();
        let (t, live, mut seq) = with_alerts(dir.path(), 30);
        let first = checkpoint(&t, &live, Mark::default(), seq - 1).unwrap();
        // generation 1's chunks and the covered log as they were before generation 2
        let gen1: Vec<(sled::IVec, sled::IVec)> =
            t.checkpoint.iter().map(|kv| kv.unwrap()).collect();
        let deleted = alert(3).fingerprint;
        live.remove(deleted);
        let covered_log = seq;
        append(&t, &mut seq, |c| c.del(deleted));
        checkpoint(&t, &live, first, seq - 1).unwrap();
        for (k, v) in gen1 {
            t.checkpoint.insert(k, v).unwrap();
        }
        // a covered log entry that would resurrect a deleted alert if replayed
        let mut c = Chunker::default();
        c.put(&AlertRecord::encode(&alert(3)));
        t.log
            .insert(log_key(covered_log), c.finish().remove(0))
            .unwrap();
        let reloaded = Live::default();
        let l = load(&t, &reloaded).unwrap();
        assert_eq!(l.mark.generation, 2);
        assert_eq!(reloaded.len(), 29);
        assert!(reloaded.get(deleted).is_none(), "covered log not replayed");
        assert_eq!(t.log.len(), 0);
        assert!(t
            .checkpoint
            .iter()
            .keys()
            .all(|k| k.unwrap().starts_with(&2u64.to_be_bytes())));
    }

    #[test]
    fn corrupt_chunks_are_errors() {
        for bad in [&[9u8][..], &[PUT, 200], &[DEL, 1, 2], &[PUT, 2, 1, 0]] {
            assert!(entries(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn migrates_schema_1_json_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let old = db.open_tree(keys::TREE_ALERTS).unwrap();
        let alerts: Vec<Alert> = (0..20).map(alert).collect();
        for a in &alerts {
            old.insert(keys::alert(a.fingerprint), serde_json::to_vec(a).unwrap())
                .unwrap();
        }
        let t = Trees::open(&db).unwrap();
        let live = Live::default();
        let mark = migrate_v1(&t, &live).unwrap();
        assert_eq!(mark.generation, 1);
        assert_eq!(live.len(), 20);
        assert!(!db.tree_names().iter().any(|n| &n[..] == b"alerts"));
        let reloaded = Live::default();
        load(&t, &reloaded).unwrap();
        for a in &alerts {
            assert_eq!(&reloaded.get(a.fingerprint).unwrap().decode().unwrap(), a);
        }
    }
}
