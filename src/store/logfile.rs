//! The alert log on disk: append-only segment files of framed, checksummed chunks.
//!
//! `<storage.path>/alertlog/<first sequence number, hex>.log`; each frame is
//! `seq u64 | len u32 | crc32 u32 | chunk` (little-endian). The writer appends one `write`
//! per group commit; with `storage.sync: none` it acknowledges after that (the data is then
//! in the operating system: it survives a crash of the process, not of the machine), in the
//! sync modes after [`LogFile::sync`] (`fdatasync`, see [`super::fsync`]). A new segment
//! starts once the current one passes [`SEGMENT_BYTES`]; segments wholly covered by a
//! checkpoint are deleted. When syncing, the segment being closed is synced before the next
//! one is created, and the directory is synced after a segment is created or deleted.
//! On open, a frame cut short at the end of the last segment (the process died while
//! writing it, so it was never acknowledged) is truncated away; damage anywhere else is an
//! error.

use super::fsync::{io_error, sync_dir, SyncCounts};
use super::StoreError;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A segment is closed once it holds this much.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
pub const HEADER: usize = 16;

fn io(e: std::io::Error) -> StoreError {
    StoreError::Sled(sled::Error::Io(e))
}

fn corrupt(err: String) -> StoreError {
    StoreError::Decode {
        tree: "alertlog",
        err,
    }
}

/// The open log: appends go to the newest segment.
pub struct LogFile {
    dir: PathBuf,
    file: File,
    /// Path of `file`.
    path: PathBuf,
    /// First sequence number of `file` (its name).
    first: u64,
    bytes: u64,
    /// Set when the log is synced (`storage.sync` other than `none`).
    sync: Option<Arc<SyncCounts>>,
    /// The directory has entries not synced yet.
    dir_dirty: bool,
}

/// Segments in the directory, oldest first, by their first sequence number.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(e)),
    };
    for e in entries {
        let path = e.map_err(io)?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| u64::from_str_radix(n, 16).ok());
        if let Some(first) = first {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:016x}.log"))
}

impl LogFile {
    /// Open the log in `dir`, calling `f(seq, chunk)` for every frame in order. Returns
    /// the log, open for appending, and the sequence number after the last frame (1 if
    /// empty).
    pub fn open(
        dir: &Path,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(LogFile, u64), StoreError> {
        LogFile::open_at(dir, |seq, chunk, _| f(seq, chunk))
    }

    /// [`LogFile::open`], also telling `f` where each chunk is: the segment (its first
    /// sequence number) and the chunk's byte offset in it.
    pub fn open_at(
        dir: &Path,
        mut f: impl FnMut(u64, &[u8], (u64, u64)) -> Result<(), StoreError>,
    ) -> Result<(LogFile, u64), StoreError> {
        std::fs::create_dir_all(dir).map_err(io)?;
        let segs = segments(dir)?;
        let mut next = 1u64;
        let last = segs.len().saturating_sub(1);
        for (i, (first, path)) in segs.iter().enumerate() {
            let file = File::open(path).map_err(io)?;
            let mut r = BufReader::with_capacity(1 << 20, file);
            let mut good = 0u64;
            let mut buf = Vec::new();
            loop {
                let mut head = [0u8; HEADER];
                match read_full(&mut r, &mut head).map_err(io)? {
                    0 => break,
                    n if n < HEADER => {
                        if i == last {
                            break;
                        }
                        return Err(corrupt(format!("{}: truncated frame", path.display())));
                    }
                    _ => {}
                }
                let seq = u64::from_le_bytes(head[0..8].try_into().unwrap_or_default());
                let len = u32::from_le_bytes(head[8..12].try_into().unwrap_or_default()) as usize;
                let crc = u32::from_le_bytes(head[12..16].try_into().unwrap_or_default());
                buf.resize(len, 0);
                let n = read_full(&mut r, &mut buf).map_err(io)?;
                if n < len || crc32fast::hash(&buf) != crc {
                    if i == last && n < len {
                        break; // a write cut short by a crash: never acknowledged
                    }
                    return Err(corrupt(format!(
                        "{}: damaged frame at byte {good}",
                        path.display()
                    )));
                }
                if seq < next {
                    return Err(corrupt(format!(
                        "{}: sequence {seq} after {}",
                        path.display(),
                        next - 1
                    )));
                }
                f(seq, &buf, (*first, good + HEADER as u64))?;
                next = seq + 1;
                good += (HEADER + len) as u64;
            }
            if i == last {
                // drop a torn tail so appends continue from a clean frame boundary
                let file = OpenOptions::new().write(true).open(path).map_err(io)?;
                if file.metadata().map_err(io)?.len() > good {
                    tracing::warn!(segment = %path.display(), at = good, "alert log: incomplete last frame removed");
                    file.set_len(good).map_err(io)?;
                }
            }
        }
        let (first, path, bytes) = match segs.last() {
            Some((first, p)) => (*first, p.clone(), std::fs::metadata(p).map_err(io)?.len()),
            None => (next, segment_path(dir, next), 0),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        Ok((
            LogFile {
                dir: dir.to_path_buf(),
                file,
                path,
                first,
                bytes,
                sync: None,
                // the directory or the segment may have just been created
                dir_dirty: true,
            },
            next,
        ))
    }

    /// Sync from now on (`storage.sync` other than `none`), counting into `counts`.
    pub fn set_sync(&mut self, counts: Arc<SyncCounts>) {
        self.sync = Some(counts);
    }

    /// Make every append so far stable: `fdatasync` the segment, and `fsync` the directory
    /// (and its parent) if a segment was created since the last sync. Nothing unless
    /// [`LogFile::set_sync`] was called.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        let Some(counts) = &self.sync else {
            return Ok(());
        };
        if self.dir_dirty {
            sync_dir(&self.dir, counts)?;
            if let Some(parent) = self.dir.parent() {
                sync_dir(parent, counts)?;
            }
            self.dir_dirty = false;
        }
        #[cfg(test)]
        if counts.fail_next_log_sync.swap(false, Ordering::Relaxed) {
            return Err(io_error(&self.path, std::io::Error::other("injected")));
        }
        self.file.sync_data().map_err(|e| io_error(&self.path, e))?;
        counts.log.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Append `chunks` as frames numbered from `*seq` (advanced past them) in one write.
    pub fn append<C: AsRef<[u8]>>(
        &mut self,
        chunks: &[C],
        seq: &mut u64,
    ) -> Result<u64, StoreError> {
        if self.bytes >= SEGMENT_BYTES {
            if let Some(counts) = &self.sync {
                // the closed segment must be complete before frames follow in the next one
                self.file.sync_data().map_err(|e| io_error(&self.path, e))?;
                counts.log.fetch_add(1, Ordering::Relaxed);
            }
            let path = segment_path(&self.dir, *seq);
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io)?;
            self.path = path;
            self.first = *seq;
            self.bytes = 0;
            self.dir_dirty = true;
            if let Some(counts) = &self.sync {
                sync_dir(&self.dir, counts)?;
                self.dir_dirty = false;
            }
        }
        let total: usize = chunks.iter().map(|c| HEADER + c.as_ref().len()).sum();
        let mut buf = Vec::with_capacity(total);
        for c in chunks {
            let c = c.as_ref();
            buf.extend_from_slice(&seq.to_le_bytes());
            buf.extend_from_slice(&(c.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(c).to_le_bytes());
            buf.extend_from_slice(c);
            *seq += 1;
        }
        self.file.write_all(&buf).map_err(io)?;
        self.bytes += total as u64;
        Ok(total as u64)
    }
}

impl LogFile {
    /// Append one frame; returns where its chunk is: the segment (its first sequence
    /// number) and the chunk's byte offset in it.
    pub fn append_one(&mut self, chunk: &[u8], seq: &mut u64) -> Result<(u64, u64), StoreError> {
        self.append(&[chunk], seq)?;
        Ok((self.first, self.bytes - chunk.len() as u64))
    }

    /// First sequence number of the segment appends go to.
    pub fn segment(&self) -> u64 {
        self.first
    }

    /// Path of the segment whose first sequence number is `first`.
    pub fn segment_path(&self, first: u64) -> PathBuf {
        segment_path(&self.dir, first)
    }

    /// Delete the segment whose first sequence number is `first` (never the one appends go
    /// to); with sync on, `fsync` the directory after.
    pub fn remove_segment(&mut self, first: u64) -> Result<(), StoreError> {
        if first == self.first {
            return Ok(());
        }
        match std::fs::remove_file(segment_path(&self.dir, first)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        if let Some(counts) = &self.sync {
            sync_dir(&self.dir, counts)?;
        }
        Ok(())
    }
}

/// Cut the log in `dir` at `(segment, offset)`: that segment keeps its first `offset`
/// bytes, later segments are deleted (frames a crash left without their other half).
pub fn truncate(dir: &Path, at: (u64, u64)) -> Result<(), StoreError> {
    for (first, p) in segments(dir)? {
        if first > at.0 {
            std::fs::remove_file(p).map_err(io)?;
        } else if first == at.0 {
            let f = OpenOptions::new().write(true).open(&p).map_err(io)?;
            f.set_len(at.1).map_err(io)?;
        }
    }
    Ok(())
}

/// Bytes of every segment in `dir`, by first sequence number.
pub fn segment_sizes(dir: &Path) -> Result<Vec<(u64, u64)>, StoreError> {
    segments(dir)?
        .into_iter()
        .map(|(first, p)| Ok((first, std::fs::metadata(p).map_err(io)?.len())))
        .collect()
}

/// Delete the segments every frame of which is at or before `covers` (never the newest);
/// with `sync`, `fsync` the directory after deleting any.
pub fn trim(dir: &Path, covers: u64, sync: Option<&SyncCounts>) -> Result<(), StoreError> {
    let segs = segments(dir)?;
    let mut deleted = false;
    for pair in segs.windows(2) {
        // frames of pair[0] are numbered below pair[1]'s first
        if pair[1].0 <= covers + 1 {
            std::fs::remove_file(&pair[0].1).map_err(io)?;
            deleted = true;
        }
    }
    if let (true, Some(counts)) = (deleted, sync) {
        sync_dir(dir, counts)?;
    }
    Ok(())
}

/// Remove every segment (migration starts the log afresh).
pub fn clear(dir: &Path) -> Result<(), StoreError> {
    for (_, p) in segments(dir)? {
        std::fs::remove_file(p).map_err(io)?;
    }
    Ok(())
}

/// Read until `buf` is full or the end; returns how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(dir: &Path) -> (Vec<(u64, Vec<u8>)>, u64) {
        let mut v = Vec::new();
        let (_, next) = LogFile::open(dir, |s, c| {
            v.push((s, c.to_vec()));
            Ok(())
        })
        .unwrap();
        (v, next)
    }

    #[test]
    fn appends_reopen_and_torn_tails() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut seq) = LogFile::open(dir.path(), |_, _| Ok(())).unwrap();
        assert_eq!(seq, 1);
        log.append(&[b"one".to_vec(), b"two".to_vec()], &mut seq)
            .unwrap();
        log.append(&[b"three".to_vec()], &mut seq).unwrap();
        drop(log);
        let (frames, next) = read_all(dir.path());
        assert_eq!(next, 4);
        assert_eq!(frames[2], (3, b"three".to_vec()));
        // a crash in the middle of a write: the torn frame is dropped, appends continue
        let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 2).unwrap();
        let (frames, next) = read_all(dir.path());
        assert_eq!((frames.len(), next), (2, 3));
        let (mut log, mut seq) = LogFile::open(dir.path(), |_, _| Ok(())).unwrap();
        log.append(&[b"four".to_vec()], &mut seq).unwrap();
        let (frames, _) = read_all(dir.path());
        assert_eq!(frames.last().unwrap(), &(3, b"four".to_vec()));
        // damage inside a complete frame is an error, not a silent loss
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 1] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(LogFile::open(dir.path(), |_, _| Ok(())).is_err());
    }

    #[test]
    fn sync_counts_segment_and_directory_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let logdir = dir.path().join("alertlog");
        let (mut log, mut seq) = LogFile::open(&logdir, |_, _| Ok(())).unwrap();
        log.append(&[b"one".to_vec()], &mut seq).unwrap();
        log.sync().unwrap(); // without set_sync: nothing to do
        let counts = Arc::new(SyncCounts::default());
        log.set_sync(counts.clone());
        log.sync().unwrap();
        let c = counts.get();
        assert_eq!(
            (c.log, c.dirs),
            (1, 2),
            "segment, its new directory and the parent"
        );
        log.append(&[b"two".to_vec()], &mut seq).unwrap();
        log.sync().unwrap();
        let c = counts.get();
        assert_eq!(
            (c.log, c.dirs),
            (2, 2),
            "directories only when an entry changed"
        );
    }

    #[test]
    fn trim_drops_only_covered_segments() {
        let dir = tempfile::tempdir().unwrap();
        for first in [1u64, 10, 20] {
            std::fs::write(segment_path(dir.path(), first), b"").unwrap();
        }
        let counts = SyncCounts::default();
        trim(dir.path(), 15, Some(&counts)).unwrap();
        assert_eq!(counts.get().dirs, 1, "directory synced after a deletion");
        let left: Vec<u64> = segments(dir.path()).unwrap().iter().map(|s| s.0).collect();
        assert_eq!(left, vec![10, 20]);
        trim(dir.path(), 100, None).unwrap();
        let left: Vec<u64> = segments(dir.path()).unwrap().iter().map(|s| s.0).collect();
        assert_eq!(left, vec![20], "the newest segment stays");
    }
}
