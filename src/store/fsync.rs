//! Reaching stable storage (`storage.sync`): when an acknowledged write is `fsync`ed.
//!
//! sled 0.34.7's `flush` writes its log buffers with `pwrite` followed by
//! `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` on Linux: that starts and waits for
//! writeback of those pages, but neither flushes the device's volatile write cache nor
//! commits the file's metadata (a grown file size), so a flushed write may be lost on
//! power loss (sled issues #1452, #1351). Page writes larger than a quarter of a sled
//! segment (~128 KiB) go to `<path>/blobs/<lsn>` files that sled writes without any sync,
//! and sled creates `conf`, `db`, `blobs/` and renames `snap.*` files without syncing their
//! directory. Only its background flusher (every `flush_every_ms`, 1 s here), recovery and
//! segment truncation call `fsync` on `db`.
//!
//! So in the sync modes we finish sled's job after each `flush`: `fdatasync` its `db` file
//! through a descriptor of our own (`fsync` acts on the inode, whoever opened it), and
//! `fsync` every blob file that appeared since the last sync plus the `blobs` directory.
//! On open, everything the store consists of (sled's files and directories, the alert log
//! and checkpoint directories, the store directory and its parent) is synced once, which
//! covers files and directories sled and we created or renamed while opening.
//!
//! The modes:
//! * `batch` (default): a group commit is synced before its callers are answered when it
//!   holds at least one commit somebody waits for (ingest, silences, admin writes, flushed
//!   notifications); only what those commits wrote is synced (the alert log segment and/or
//!   sled). Delivery bookkeeping queued without waiting (`Store::commit_nowait`: delivered,
//!   failed, merged, dead-letter states) is synced by the next synced commit of the same
//!   file, sled's own 1 s background `fsync`, or a graceful shutdown; lost, it makes a
//!   notification be delivered again, never lost.
//! * `always`: every group commit that wrote anything is synced, bookkeeping included.
//! * `none`: writes are handed to the operating system (`write`, sled's `flush`) and
//!   survive a crash of the process, not of the machine.
//!
//! A failed `fsync` (or write) fails its group commit (the callers get an error, so `503`)
//! and every later one until the store is reopened: after a failed `fsync` Linux may drop
//! the pages it could not write, so a later successful `fsync` would not mean they are on
//! disk, and sled cannot continue after a failed write. `alert_router::run` reopens the
//! store once its directory takes writes again ([`probe_writable`]).

use super::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// `storage.sync`: when acknowledged writes reach stable storage (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// `fsync` every group commit, delivery bookkeeping included.
    Always,
    /// `fsync` every group commit that acknowledges a caller.
    #[default]
    Batch,
    /// No `fsync` of ours: durable against process crashes only.
    None,
}

impl SyncMode {
    /// Whether this mode syncs at all.
    pub fn syncs(self) -> bool {
        self != SyncMode::None
    }

    /// Whether a group commit must be synced: `waited` when a caller waits for it.
    pub fn syncs_commit(self, waited: bool) -> bool {
        match self {
            SyncMode::Always => true,
            SyncMode::Batch => waited,
            SyncMode::None => false,
        }
    }
}

/// How many syncs the store has issued (tests check that each mode syncs where it should).
#[derive(Debug, Default)]
pub struct SyncCounts {
    /// `fdatasync` of an alert log segment.
    pub log: AtomicU64,
    /// `fdatasync` of sled's `db` file after a flush.
    pub sled: AtomicU64,
    /// `fsync` of another file (a sled blob, sled's `conf`).
    pub files: AtomicU64,
    /// `fsync` of a directory.
    pub dirs: AtomicU64,
    /// Tests: the next alert log sync fails.
    #[cfg(test)]
    pub fail_next_log_sync: std::sync::atomic::AtomicBool,
}

/// A plain copy of [`SyncCounts`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncCount {
    pub log: u64,
    pub sled: u64,
    pub files: u64,
    pub dirs: u64,
}

impl SyncCounts {
    pub fn get(&self) -> SyncCount {
        SyncCount {
            log: self.log.load(Ordering::Relaxed),
            sled: self.sled.load(Ordering::Relaxed),
            files: self.files.load(Ordering::Relaxed),
            dirs: self.dirs.load(Ordering::Relaxed),
        }
    }
}

pub(crate) fn io_error(path: &Path, err: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// Whether `dir` takes writes again after the store failed: write `bytes` to a probe file,
/// `fsync` it and remove it. Reopening the store needs room (sled's recovery, the log's
/// next segment), so callers probe with a few MiB, not one byte.
pub fn probe_writable(dir: &Path, bytes: usize) -> Result<(), StoreError> {
    use std::io::Write;
    let path = dir.join(".write-probe");
    let written = (|| {
        let mut f = File::create(&path)?;
        let chunk = vec![0u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            f.write_all(&chunk[..n])?;
            left -= n;
        }
        f.sync_all()
    })();
    // the probe's space is given back whatever happened
    let removed = std::fs::remove_file(&path);
    written.map_err(|e| io_error(&path, e))?;
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&path, e)),
        _ => Ok(()),
    }
}

/// `fsync` a directory, so the entries created, renamed or removed in it are durable.
pub fn sync_dir(path: &Path, counts: &SyncCounts) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(path, e))?;
    counts.dirs.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// `fsync` a file by path (a missing file is skipped: sled removes blobs it no longer needs).
fn sync_file(path: &Path, counts: &SyncCounts) -> Result<bool, StoreError> {
    match File::open(path) {
        Ok(f) => {
            f.sync_all().map_err(|e| io_error(path, e))?;
            counts.files.fetch_add(1, Ordering::Relaxed);
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Makes what sled flushed stable (see the module docs); shared by the writer and the
/// checkpoint thread.
pub struct SledSync {
    mode: SyncMode,
    /// sled's directory (the store directory).
    dir: PathBuf,
    /// sled's `db` file, opened by us when syncing.
    db: Option<File>,
    /// Blob files already synced, with their length then (pruned to those still present;
    /// one that has grown since, being written while we looked, is synced again).
    blobs: Mutex<HashMap<OsString, u64>>,
    pub counts: Arc<SyncCounts>,
}

impl SledSync {
    /// For the sled database at `dir` (already open, so its files exist).
    pub fn open(mode: SyncMode, dir: &Path) -> Result<SledSync, StoreError> {
        let db = if mode.syncs() {
            let path = dir.join("db");
            Some(File::open(&path).map_err(|e| io_error(&path, e))?)
        } else {
            None
        };
        Ok(SledSync {
            mode,
            dir: dir.to_path_buf(),
            db,
            blobs: Mutex::default(),
            counts: Arc::default(),
        })
    }

    pub fn mode(&self) -> SyncMode {
        self.mode
    }

    /// After `db.flush()`: `fdatasync` sled's `db` file and `fsync` new blob files and
    /// their directory. Nothing in mode `none`.
    pub fn after_flush(&self) -> Result<(), StoreError> {
        let Some(db) = &self.db else {
            return Ok(());
        };
        self.sync_new_blobs()?;
        db.sync_data()
            .map_err(|e| io_error(&self.dir.join("db"), e))?;
        self.counts.sled.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `fsync` blob files not synced yet (or grown since), then the `blobs` directory if
    /// there were new ones.
    fn sync_new_blobs(&self) -> Result<(), StoreError> {
        let dir = self.dir.join("blobs");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(&dir, e)),
        };
        let mut synced = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut present = HashMap::with_capacity(synced.len());
        let mut new = false;
        for e in entries {
            let e = e.map_err(|e| io_error(&dir, e))?;
            let name = e.file_name();
            // read the length before syncing: a blob still growing is synced again next time
            let len = match e.metadata() {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(io_error(&dir.join(&name), err)),
            };
            match synced.get(&name) {
                Some(&was) if was == len => {}
                before => {
                    if !sync_file(&dir.join(&name), &self.counts)? {
                        continue; // removed meanwhile
                    }
                    new |= before.is_none();
                }
            }
            present.insert(name, len);
        }
        if new {
            sync_dir(&dir, &self.counts)?;
        }
        *synced = present;
        Ok(())
    }

    /// Once on open: sync sled's files (`db`, `conf`, blobs) and its directories, so what
    /// sled created or renamed while opening (and anything left unsynced by a previous run)
    /// is durable before the first acknowledgement. Nothing in mode `none`.
    pub fn on_open(&self) -> Result<(), StoreError> {
        if !self.mode.syncs() {
            return Ok(());
        }
        sync_file(&self.dir.join("conf"), &self.counts)?;
        self.after_flush()?;
        sync_dir(&self.dir.join("blobs"), &self.counts)?;
        sync_dir(&self.dir, &self.counts)?;
        // the store directory's own entry (it may have just been created)
        if let Some(parent) = self.dir.parent() {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            sync_dir(parent, &self.counts)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parses_lowercase_and_defaults_to_batch() {
        for (s, m) in [
            ("always", SyncMode::Always),
            ("batch", SyncMode::Batch),
            ("none", SyncMode::None),
        ] {
            let parsed: SyncMode = serde_json::from_str(&format!("{s:?}")).unwrap();
            assert_eq!(parsed, m);
        }
        assert!(serde_json::from_str::<SyncMode>("\"Always\"").is_err());
        assert!(serde_json::from_str::<SyncMode>("\"fsync\"").is_err());
        assert_eq!(SyncMode::default(), SyncMode::Batch);
        assert!(SyncMode::Always.syncs_commit(false));
        assert!(SyncMode::Batch.syncs_commit(true));
        assert!(!SyncMode::Batch.syncs_commit(false));
        assert!(!SyncMode::None.syncs_commit(true));
    }

    #[test]
    fn new_blobs_are_synced_once_with_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), b"").unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        let s = SledSync::open(SyncMode::Batch, dir.path()).unwrap();
        s.after_flush().unwrap();
        assert_eq!(
            s.counts.get(),
            SyncCount {
                sled: 1,
                ..Default::default()
            }
        );
        std::fs::write(dir.path().join("blobs/17"), b"x").unwrap();
        s.after_flush().unwrap();
        let c = s.counts.get();
        assert_eq!((c.sled, c.files, c.dirs), (2, 1, 1));
        s.after_flush().unwrap();
        let c = s.counts.get();
        assert_eq!(
            (c.sled, c.files, c.dirs),
            (3, 1, 1),
            "an old blob is not synced again"
        );
        std::fs::write(dir.path().join("blobs/17"), b"xy").unwrap();
        s.after_flush().unwrap();
        let c = s.counts.get();
        assert_eq!(
            (c.files, c.dirs),
            (2, 1),
            "a grown blob is synced again, not its dir"
        );
        let none = SledSync::open(SyncMode::None, dir.path()).unwrap();
        none.after_flush().unwrap();
        none.on_open().unwrap();
        assert_eq!(none.counts.get(), SyncCount::default());
    }
}
