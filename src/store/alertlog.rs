//! Alerts: an in-memory live map backed by an append-only log and periodic checkpoints.
//!
//! Ingest acknowledges after an *append*: the writer merges each report into the live map
//! (one [`AlertRecord`] per alert, shared with the aggregation groups) and appends the
//! merged records to the alert log ([`super::logfile`]) in chunks of a few KiB under
//! monotonic sequence numbers, one write per group commit. Strings the records intern are
//! appended as `define` entries before the first record that uses them.
//!
//! When the log has grown past half the live data (at least `storage.checkpoint_min_bytes`),
//! a background thread writes the string table and the whole live map to a checkpoint
//! file (`checkpoints/alerts-<generation>.ckpt` in the store directory: written to a
//! temporary name, fsynced, renamed), records `(generation, last log sequence covered)` in
//! `meta`, then deletes the previous file and the log up to that sequence. Log entries are
//! full alert states, deletions or string definitions, so replaying them is idempotent: the
//! checkpoint may even contain states newer than the sequence it covers, and replaying the
//! tail still ends in the state of the last entry. A crash at any point of a checkpoint
//! leaves the old or the new generation complete, with every log entry after it.
//!
//! On open, the newest checkpoint is loaded and the log tail replayed; leftovers of an
//! interrupted checkpoint are removed. Schema 1 stores (JSON alerts keyed by fingerprint)
//! are migrated on first open.

use super::fsync::{SledSync, SyncCounts};
use super::logfile::{self, LogFile};
use super::record::{put_str, put_uvar, AlertRecord, Interner, Reader, RecordError};
use super::{keys, StoreError};
use crate::alert::{Alert, Fingerprint};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Target size of one log value: sled writes a leaf of up to 17 values as one unit and
/// moves anything over ~128 KiB into a separate blob file, so values stay small.
pub const CHUNK_BYTES: usize = 4096;
/// Target size of one checkpoint file frame.
const FILE_CHUNK_BYTES: usize = 64 * 1024;
/// The log is checkpointed once it holds this much, or half the live data if that is more.
pub const MIN_CHECKPOINT_BYTES: u64 = 32 * 1024 * 1024;

const PUT: u8 = 1;
const DEL: u8 = 2;
const DEFINE: u8 = 3;
const SHARDS: usize = 16;
const MAGIC: &[u8] = b"alert-router checkpoint 1\n";

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

/// Every stored alert, in memory (sharded so readers never hold up the writer for long),
/// and the string table its records use.
pub struct Live {
    shards: Vec<RwLock<FpMap<AlertRecord>>>,
    count: AtomicUsize,
    bytes: AtomicU64,
    pub strings: Interner,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            count: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            strings: Interner::default(),
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

/// Appends log entries into chunks of about a target size.
pub struct Chunker {
    target: usize,
    cur: Vec<u8>,
    done: Vec<Vec<u8>>,
}

impl Default for Chunker {
    fn default() -> Self {
        Chunker::with_target(CHUNK_BYTES)
    }
}

impl Chunker {
    fn with_target(target: usize) -> Self {
        Chunker {
            target,
            cur: Vec::with_capacity(target + 512),
            done: Vec::new(),
        }
    }

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

    /// Persist the string table's entries from id `from` on.
    pub fn define_since(&mut self, strings: &Interner, from: usize) {
        for (id, v, under) in strings.since(from) {
            self.cur.push(DEFINE);
            put_uvar(&mut self.cur, u64::from(id));
            put_uvar(&mut self.cur, u64::from(under));
            put_str(&mut self.cur, &v);
            self.cut();
        }
    }

    fn cut(&mut self) {
        if self.cur.len() >= self.target {
            let full = std::mem::replace(&mut self.cur, Vec::with_capacity(self.target + 512));
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

/// Apply one chunk's entries to `live`. Records are checked only for their format byte and
/// a fingerprint (decoding a million alerts would dominate start-up); a record that later
/// fails to decode is reported where it is read.
fn apply_entries(live: &Live, chunk: &[u8]) -> Result<(), RecordError> {
    let mut r = Reader::over(chunk);
    while !r.rest.is_empty() {
        match r.byte()? {
            PUT => {
                let n = usize::try_from(r.uvar()?).map_err(|_| RecordError("length"))?;
                let rec = AlertRecord::from_trusted(r.bytes(n)?);
                rec.check_shape()?;
                live.put(rec);
            }
            DEL => {
                let mut fp = [0u8; 8];
                fp.copy_from_slice(r.bytes(8)?);
                live.remove(Fingerprint(u64::from_le_bytes(fp)));
            }
            DEFINE => {
                let id = u32::try_from(r.uvar()?).map_err(|_| RecordError("string id"))?;
                let under = u32::try_from(r.uvar()?).map_err(|_| RecordError("string id"))?;
                let v = r.str()?;
                live.strings.define(id, v, under)?;
            }
            _ => return Err(RecordError("unknown log entry")),
        }
    }
    Ok(())
}

fn apply_chunk(live: &Live, tree: &'static str, chunk: &[u8]) -> Result<(), StoreError> {
    apply_entries(live, chunk).map_err(|e| StoreError::Decode {
        tree,
        err: e.to_string(),
    })
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

/// Where the alert log and its checkpoints live.
#[derive(Clone)]
pub struct Trees {
    pub db: sled::Db,
    pub meta: sled::Tree,
    /// Directory of the alert log segments.
    pub logdir: PathBuf,
    /// Directory of the checkpoint files.
    pub dir: PathBuf,
    /// Makes sled's flushes stable (`storage.sync`).
    pub sled_sync: Arc<SledSync>,
}

impl Trees {
    pub fn open(
        db: &sled::Db,
        store_dir: &Path,
        sled_sync: Arc<SledSync>,
    ) -> Result<Trees, StoreError> {
        let dir = store_dir.join("checkpoints");
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        Ok(Trees {
            db: db.clone(),
            meta: db.open_tree(keys::TREE_META)?,
            logdir: store_dir.join("alertlog"),
            dir,
            sled_sync,
        })
    }

    /// Flush sled and, in the sync modes, make the flush stable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.sled_sync.after_flush()
    }

    /// The sync counters when syncing (`None` with `storage.sync: none`).
    fn sync_counts(&self) -> Option<&SyncCounts> {
        self.sled_sync
            .mode()
            .syncs()
            .then_some(&*self.sled_sync.counts)
    }

    fn file(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("alerts-{generation:016x}.ckpt"))
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Sled(sled::Error::Io(e))
}

fn corrupt(what: String) -> StoreError {
    StoreError::Decode {
        tree: "checkpoint",
        err: what,
    }
}

/// What [`load`] found.
pub struct Loaded {
    pub mark: Mark,
    /// The log, open for appending.
    pub log: LogFile,
    /// The sequence number the next log chunk gets.
    pub next_seq: u64,
    /// Log bytes after the checkpoint (counted toward the next one).
    pub log_bytes: u64,
}

/// Load the newest checkpoint and replay the log after it into `live`, removing what an
/// interrupted checkpoint left behind.
pub fn load(t: &Trees, live: &Live) -> Result<Loaded, StoreError> {
    let mark = Mark::read(&t.meta)?;
    if mark.generation > 0 {
        read_file(&t.file(mark.generation), live)?;
    }
    remove_other_files(t, mark.generation)?;
    let mut log_bytes = 0u64;
    let (log, next) = LogFile::open(&t.logdir, |seq, chunk| {
        if seq > mark.covers {
            apply_chunk(live, "alertlog", chunk)?;
            log_bytes += chunk.len() as u64;
        }
        Ok(())
    })?;
    Ok(Loaded {
        mark,
        log,
        next_seq: next.max(mark.covers + 1),
        log_bytes,
    })
}

/// Delete checkpoint files (and temporaries) of every generation but `keep`.
fn remove_other_files(t: &Trees, keep: u64) -> Result<(), StoreError> {
    let keep = t.file(keep);
    for e in std::fs::read_dir(&t.dir).map_err(io)? {
        let path = e.map_err(io)?.path();
        if path != keep {
            std::fs::remove_file(&path).map_err(io)?;
        }
    }
    Ok(())
}

fn read_file(path: &Path, live: &Live) -> Result<(), StoreError> {
    let f = std::fs::File::open(path).map_err(|e| {
        corrupt(format!(
            "{}: {e} (the checkpoint the store records is missing)",
            path.display()
        ))
    })?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut magic = vec![0u8; MAGIC.len()];
    r.read_exact(&mut magic).map_err(io)?;
    if magic != MAGIC {
        return Err(corrupt(format!(
            "{}: not a checkpoint file",
            path.display()
        )));
    }
    let mut buf = Vec::new();
    loop {
        let mut head = [0u8; 8];
        r.read_exact(&mut head)
            .map_err(|e| corrupt(format!("{}: truncated ({e})", path.display())))?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 {
            return Ok(()); // end marker
        }
        buf.resize(len, 0);
        r.read_exact(&mut buf)
            .map_err(|e| corrupt(format!("{}: truncated ({e})", path.display())))?;
        if crc32fast::hash(&buf) != crc {
            return Err(corrupt(format!("{}: checksum mismatch", path.display())));
        }
        apply_chunk(live, "checkpoint", &buf)?;
    }
}

/// Write the string table and the live map as generation `prev.generation + 1`, covering
/// log entries up to `covers`, then drop the previous generation and the covered log.
/// Returns the new mark.
pub fn checkpoint(t: &Trees, live: &Live, prev: Mark, covers: u64) -> Result<Mark, StoreError> {
    let mark = Mark {
        generation: prev.generation + 1,
        covers,
    };
    let path = t.file(mark.generation);
    let tmp = path.with_extension("ckpt.tmp");
    let f = std::fs::File::create(&tmp).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    w.write_all(MAGIC).map_err(io)?;
    let frame = |w: &mut BufWriter<std::fs::File>, chunk: &[u8]| -> Result<(), StoreError> {
        w.write_all(&(chunk.len() as u32).to_le_bytes())
            .map_err(io)?;
        w.write_all(&crc32fast::hash(chunk).to_le_bytes())
            .map_err(io)?;
        w.write_all(chunk).map_err(io)
    };
    // Records first, streamed shard by shard, then every string defined by then (each id
    // a record uses was defined before the record was built). Loading only checks record
    // headers, so definitions may follow the records that use them.
    let mut records = Chunker::with_target(FILE_CHUNK_BYTES);
    for s in &live.shards {
        let shard: Vec<AlertRecord> = s
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for r in &shard {
            records.put(r);
            for chunk in records.done.drain(..) {
                frame(&mut w, &chunk)?;
            }
        }
    }
    let mut defs = Chunker::with_target(FILE_CHUNK_BYTES);
    defs.define_since(&live.strings, 0);
    for chunk in records.finish().into_iter().chain(defs.finish()) {
        frame(&mut w, &chunk)?;
    }
    w.write_all(&[0u8; 8]).map_err(io)?; // end marker
    let f = w.into_inner().map_err(|e| io(e.into_error()))?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(&t.dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    t.meta.insert(keys::CHECKPOINT_KEY, &mark.bytes())?;
    // In the sync modes the mark must be stable before what it replaces is deleted, or a
    // power loss could bring back the old mark without its file and log.
    t.flush()?;
    // The new generation is complete and recorded: what it replaces can go.
    if prev.generation > 0 {
        let _ = std::fs::remove_file(t.file(prev.generation));
    }
    logfile::trim(&t.logdir, covers, t.sync_counts())?;
    Ok(mark)
}

/// Migrate a schema 1 store (JSON alerts keyed by fingerprint in the `alerts` tree) into
/// `live` and a first checkpoint. The old tree is dropped only after the checkpoint and the
/// new schema version are flushed, so an interrupted migration simply runs again.
pub fn migrate_v1(t: &Trees, live: &Live) -> Result<Loaded, StoreError> {
    let old = t.db.open_tree(keys::TREE_ALERTS)?;
    let mut n = 0usize;
    for v in old.iter().values() {
        let v = v?;
        let a: Alert = serde_json::from_slice(&v).map_err(|e| StoreError::Decode {
            tree: "alerts",
            err: e.to_string(),
        })?;
        live.put(AlertRecord::encode(&a, &live.strings));
        n += 1;
    }
    // Start from a clean slate: whatever a previous, interrupted attempt wrote is replaced.
    logfile::clear(&t.logdir)?;
    let mark = checkpoint(t, live, Mark::default(), 0)?;
    t.meta.insert(
        keys::SCHEMA_KEY,
        keys::SCHEMA_VERSION.to_string().as_bytes(),
    )?;
    t.flush()?;
    drop(old);
    t.db.drop_tree(keys::TREE_ALERTS)?;
    t.flush()?;
    tracing::info!(
        alerts = n,
        "store migrated from schema 1 (JSON) to the current schema"
    );
    let (log, next) = LogFile::open(&t.logdir, |_, _| Ok(()))?;
    Ok(Loaded {
        mark,
        log,
        next_seq: next.max(mark.covers + 1),
        log_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::alert;

    /// Append entries as the writer does: definitions of new strings before the records.
    fn append(t: &Trees, live: &Live, seq: &mut u64, f: impl FnOnce(&mut Chunker, &Live)) {
        let mut c = Chunker::default();
        let before = live.strings.len();
        let mut body = Chunker::default();
        f(&mut body, live);
        c.define_since(&live.strings, before);
        let chunks: Vec<Vec<u8>> = c.finish().into_iter().chain(body.finish()).collect();
        let (mut log, next) = LogFile::open(&t.logdir, |_, _| Ok(())).unwrap();
        *seq = (*seq).max(next);
        log.append(&chunks, seq).unwrap();
    }

    fn log_frames(t: &Trees) -> usize {
        let mut n = 0;
        LogFile::open(&t.logdir, |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        n
    }

    fn put(c: &mut Chunker, live: &Live, a: &Alert) {
        let r = AlertRecord::encode(a, &live.strings);
        live.put(r.clone());
        c.put(&r);
    }

    fn decoded(live: &Live, a: &Alert) -> Option<Alert> {
        live.get(a.fingerprint)
            .map(|r| r.decode(&live.strings).unwrap())
    }

    fn no_sync() -> Arc<SledSync> {
        Arc::new(SledSync::open(super::super::fsync::SyncMode::None, Path::new("")).unwrap())
    }

    /// A fresh database whose log holds alerts `0..n` (also put into the returned map).
    fn with_alerts(dir: &Path, n: u64) -> (Trees, Live, u64) {
        with_alerts_syncing(dir, n, super::super::fsync::SyncMode::None)
    }

    fn with_alerts_syncing(
        dir: &Path,
        n: u64,
        mode: super::super::fsync::SyncMode,
    ) -> (Trees, Live, u64) {
        let db = sled::Config::new().path(dir.join("db")).open().unwrap();
        let sync = Arc::new(SledSync::open(mode, &dir.join("db")).unwrap());
        let t = Trees::open(&db, dir, sync).unwrap();
        let live = Live::default();
        let mut seq = 1;
        append(&t, &live, &mut seq, |c, live| {
            for i in 0..n {
                put(c, live, &alert(i));
            }
        });
        (t, live, seq)
    }

    #[test]
    fn checkpoint_then_tail_replays_to_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let (t, live, mut seq) = with_alerts(dir.path(), 500);
        assert!(seq > 3, "500 alerts span several chunks");
        let mark = checkpoint(&t, &live, Mark::default(), seq - 1).unwrap();
        // after the checkpoint: one update (with a new string), one delete
        let mut changed = alert(7);
        changed.ends_at = Some(changed.starts_at);
        changed
            .labels
            .insert("new_label".into(), "new value".into());
        changed.fingerprint = Fingerprint::of(&changed.labels);
        append(&t, &live, &mut seq, |c, live| {
            put(c, live, &changed);
            live.remove(alert(9).fingerprint);
            c.del(alert(9).fingerprint);
        });
        let reloaded = Live::default();
        let l = load(&t, &reloaded).unwrap();
        assert_eq!(l.mark, mark);
        assert_eq!(l.next_seq, seq);
        assert_eq!(reloaded.len(), 500);
        assert!(reloaded.get(alert(9).fingerprint).is_none());
        assert_eq!(decoded(&reloaded, &changed), Some(changed.clone()));
        let eight = alert(8);
        assert_eq!(
            decoded(&reloaded, &eight).map(|a| a.labels),
            Some(eight.labels)
        );
        assert_eq!(reloaded.strings.len(), live.strings.len());
    }

    /// In the sync modes the checkpoint's mark is fsynced (sled's `db` file) before the
    /// previous generation and the covered log are deleted, and the log directory is synced
    /// after segments are deleted; in mode `none` nothing is synced beyond the checkpoint
    /// file itself.
    #[test]
    fn checkpoint_syncs_its_mark_in_sync_modes() {
        use super::super::fsync::SyncMode;
        for (mode, want_sled) in [
            (SyncMode::Batch, 1),
            (SyncMode::Always, 1),
            (SyncMode::None, 0),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (t, live, seq) = with_alerts_syncing(dir.path(), 50, mode);
            // a second segment, so the checkpoint has one to delete
            std::fs::write(t.logdir.join(format!("{:016x}.log", seq + 1)), b"").unwrap();
            checkpoint(&t, &live, Mark::default(), seq).unwrap();
            let c = t.sled_sync.counts.get();
            assert_eq!(c.sled, want_sled, "{mode:?}");
            assert_eq!(c.dirs, want_sled, "{mode:?}: log directory after the trim");
            assert_eq!(log_frames(&t), 0, "{mode:?}: covered segment trimmed");
        }
    }

    /// A checkpoint interrupted before its mark (a temporary, or even a renamed file)
    /// is ignored and removed; the previous state plus the full log give the state.
    #[test]
    fn interrupted_checkpoint_leaves_the_old_state_intact() {
        let dir = tempfile::tempdir().unwrap();
        let (t, _, _) = with_alerts(dir.path(), 50);
        std::fs::write(t.file(1).with_extension("ckpt.tmp"), b"half").unwrap();
        std::fs::write(t.file(1), b"alert-router checkpoint 1\n\x05").unwrap();
        let reloaded = Live::default();
        load(&t, &reloaded).unwrap();
        assert_eq!(reloaded.len(), 50);
        assert_eq!(
            std::fs::read_dir(&t.dir).unwrap().count(),
            0,
            "leftovers removed"
        );
    }

    /// A checkpoint interrupted after its mark was written but before the previous file
    /// and the covered log were dropped: load uses the new generation, skips the covered
    /// log (which would resurrect a deleted alert) and removes both leftovers.
    #[test]
    fn checkpoint_interrupted_after_its_mark_loads_the_new_generation() {
        let dir = tempfile::tempdir().unwrap();
        let (t, live, mut seq) = with_alerts(dir.path(), 30);
        let first = checkpoint(&t, &live, Mark::default(), seq - 1).unwrap();
        let gen1 = std::fs::read(t.file(1)).unwrap();
        let deleted = alert(3);
        append(&t, &live, &mut seq, |c, live| {
            live.remove(deleted.fingerprint);
            c.del(deleted.fingerprint);
        });
        checkpoint(&t, &live, first, seq - 1).unwrap();
        std::fs::write(t.file(1), gen1).unwrap();
        let reloaded = Live::default();
        let l = load(&t, &reloaded).unwrap();
        assert_eq!(l.mark.generation, 2);
        assert_eq!(l.log_bytes, 0, "covered log frames not replayed");
        assert_eq!(reloaded.len(), 29);
        assert!(reloaded.get(deleted.fingerprint).is_none());
        assert!(!t.file(1).exists());
        assert!(
            log_frames(&t) > 0,
            "the newest segment is kept for appending"
        );
    }

    /// A checkpoint file that is missing, truncated or damaged is an error at open, never
    /// a silently smaller store.
    #[test]
    fn damaged_checkpoint_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (t, live, seq) = with_alerts(dir.path(), 200);
        checkpoint(&t, &live, Mark::default(), seq - 1).unwrap();
        let good = std::fs::read(t.file(1)).unwrap();
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        for (what, bytes) in [
            ("truncated", good[..good.len() - 8].to_vec()),
            ("flipped", flipped),
            ("not a checkpoint", b"hello".to_vec()),
        ] {
            std::fs::write(t.file(1), &bytes).unwrap();
            assert!(load(&t, &Live::default()).is_err(), "{what}");
        }
        std::fs::remove_file(t.file(1)).unwrap();
        assert!(load(&t, &Live::default()).is_err(), "missing");
    }

    #[test]
    fn corrupt_chunks_are_errors() {
        let live = Live::default();
        for bad in [
            &[9u8][..],
            &[PUT, 200],
            &[DEL, 1, 2],
            &[PUT, 2, 1, 0],
            &[DEFINE, 5, 0, 1, b'x'],
        ] {
            assert!(apply_entries(&live, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn migrates_schema_1_json_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        let old = db.open_tree(keys::TREE_ALERTS).unwrap();
        let alerts: Vec<Alert> = (0..20).map(alert).collect();
        for a in &alerts {
            old.insert(keys::alert(a.fingerprint), serde_json::to_vec(a).unwrap())
                .unwrap();
        }
        let t = Trees::open(&db, dir.path(), no_sync()).unwrap();
        let live = Live::default();
        let mark = migrate_v1(&t, &live).unwrap();
        assert_eq!(mark.mark.generation, 1);
        assert_eq!(live.len(), 20);
        assert!(!db.tree_names().iter().any(|n| &n[..] == b"alerts"));
        let reloaded = Live::default();
        load(&t, &reloaded).unwrap();
        for a in &alerts {
            assert_eq!(decoded(&reloaded, a).as_ref(), Some(a));
        }
    }
}
