//! The raft log and vote, durable in plain files.
//!
//! - The log is a series of append-only segment files
//!   (`log/<first index>.wal`). A record is `[length u32][crc32 u32][entry]`;
//!   at start, a torn or corrupt tail (a crash in the middle of a write) is
//!   cut off at the last whole record. Nothing after it was acknowledged:
//!   an append is reported flushed only after `fdatasync`.
//! - The vote and the purged log id are small files, each replaced by
//!   write, fsync, rename, fsync of the directory. The committed log id is
//!   not kept (it is optional in openraft): a restarted member applies the
//!   entries after its snapshot once a leader says they are committed.
//!
//! Every live entry is also held in memory, so replication reads never
//! touch the disk. Writes go to one writer thread in order (raft needs its
//! log and vote IO serialised); the thread writes every queued append and
//! syncs once for all of them (group commit) before reporting them flushed.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, mpsc};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, StorageError, StorageIOError, Vote};
use tokio::sync::oneshot;

use crate::crypt::Sealer;
use crate::types::{NodeId, TypeConfig};
use crate::wire;

const VOTE: &str = "vote";
const PURGED: &str = "purged";

/// The most ops the writer folds into one sync.
const GROUP: usize = 4096;

/// A new segment is started once the current one is this large.
const SEGMENT_BYTES: u64 = 64 << 20;

/// Replication sends at most this many bytes of entries per message (and
/// at least one entry): openraft gives an append one heartbeat interval.
const SEND_BYTES: usize = 512 << 10;

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

/// The log store: cheap to clone (it is also the log reader).
#[derive(Clone)]
pub(crate) struct LogStore {
    cache: Arc<RwLock<Cache>>,
    tx: mpsc::Sender<Op>,
    /// Seals each record before it is written.
    sealer: Sealer,
}

#[derive(Default)]
struct Cache {
    /// Each entry with its encoded size.
    entries: BTreeMap<u64, (Entry<TypeConfig>, usize)>,
    purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
}

type Done = oneshot::Sender<io::Result<()>>;

enum Op {
    Append(Vec<(u64, Vec<u8>)>, LogFlushed<TypeConfig>),
    Meta(&'static str, Vec<u8>, Done),
    /// Delete entries at and after the index.
    Truncate(u64, Done),
    /// Delete entries up to the index, and record the purged log id.
    Purge(u64, Vec<u8>, Done),
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn write_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_logs(&io_err(e)).into()
}

fn storage(path: &Path, e: impl std::fmt::Display) -> crate::Error {
    crate::Error::Storage(format!("{}: {e}", path.display()))
}

/// Replaces `dir/name` with `bytes` crash-safely.
fn write_file(dir: &Path, name: &str, bytes: &[u8], sync: bool) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    if sync {
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_meta<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> std::result::Result<Option<T>, crate::Error> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => wire::decode(&bytes)
            .map(Some)
            .map_err(|e| storage(&path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(storage(&path, e)),
    }
}

/// One segment file: its first index and where each of its records starts.
struct Segment {
    first: u64,
    path: PathBuf,
    /// Index → offset of its record.
    offsets: BTreeMap<u64, u64>,
    len: u64,
}

/// The writer thread's view of the files.
struct Files {
    /// Held (locked) while the writer runs: one member per directory.
    _lock: Option<File>,
    dir: PathBuf,
    segments: Vec<Segment>,
    file: Option<File>,
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.wal"))
}

/// What [`read_segment`] found: the entries (with their encoded sizes),
/// the segment, and whether a torn tail was cut off.
type SegmentRead = (Vec<(Entry<TypeConfig>, usize)>, Segment, bool);

/// Reads one segment's records. The log must continue from `prev`: each
/// index one more than the last, terms never decreasing. In the last
/// segment, a bad record is a torn tail (a crash in the middle of a write
/// that was never acknowledged): it and what follows are cut off. Anywhere
/// else it is corruption, and an error: acknowledged entries follow it.
fn read_segment(
    path: &Path,
    first: u64,
    last: bool,
    mut prev: Option<LogId<NodeId>>,
    sealer: &Sealer,
) -> io::Result<SegmentRead> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut entries = Vec::new();
    let mut offsets = BTreeMap::new();
    let mut at = 0usize;
    let mut bad = None;
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + 8) else {
            bad = Some("a cut-off record header");
            break;
        };
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(body) = bytes.get(at + 8..at + 8 + len) else {
            bad = Some("a cut-off record");
            break;
        };
        if crc32fast::hash(body) != crc {
            bad = Some("a checksum mismatch");
            break;
        }
        let plain = sealer
            .open(body)
            .map_err(|e| io_err(format!("record at offset {at}: {e}")))?;
        let entry: Entry<TypeConfig> = wire::decode(&plain).map_err(|e| {
            io_err(format!(
                "record at offset {at} has a valid checksum but cannot be read ({e}): was it written by a newer version?"
            ))
        })?;
        let expected = prev.map_or(first, |p| p.index + 1);
        if entry.log_id.index != expected
            || prev.is_some_and(|p| entry.log_id.leader_id.term < p.leader_id.term)
        {
            bad = Some("a record out of sequence");
            break;
        }
        prev = Some(entry.log_id);
        offsets.insert(entry.log_id.index, at as u64);
        entries.push((entry, len));
        at += 8 + len;
    }
    if let Some(why) = bad {
        if !last {
            return Err(io_err(format!(
                "{why} at offset {at}, before later segments: the log is corrupt"
            )));
        }
        tracing::warn!(file = %path.display(), offset = at, why, "cutting a torn tail off the raft log");
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(at as u64)?;
        f.sync_all()?;
    }
    Ok((
        entries,
        Segment {
            first,
            path: path.to_owned(),
            offsets,
            len: at as u64,
        },
        bad.is_some(),
    ))
}

impl Files {
    fn current(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            let seg = self.segments.last().expect("a segment exists when writing");
            self.file = Some(OpenOptions::new().append(true).open(&seg.path)?);
        }
        Ok(self.file.as_mut().expect("just opened"))
    }

    fn new_segment(&mut self, first: u64) -> io::Result<()> {
        // The group's one sync covers the new file only: make the old
        // one's tail durable now.
        if let Some(f) = self.file.as_mut() {
            f.sync_data()?;
        }
        let path = segment_path(&self.dir, first);
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        File::open(&self.dir)?.sync_all()?;
        self.segments.push(Segment {
            first,
            path,
            offsets: BTreeMap::new(),
            len: 0,
        });
        drop(f);
        self.file = None;
        Ok(())
    }

    fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> io::Result<()> {
        let Some((first, _)) = entries.first() else {
            return Ok(());
        };
        let roll = self.segments.last().is_none_or(|s| s.len >= SEGMENT_BYTES);
        if roll {
            self.new_segment(*first)?;
        }
        let mut buf = Vec::with_capacity(entries.iter().map(|(_, b)| b.len() + 8).sum());
        let seg = self.segments.last_mut().expect("a segment");
        for (index, bytes) in entries {
            seg.offsets.insert(*index, seg.len + buf.len() as u64);
            let len =
                u32::try_from(bytes.len()).map_err(|_| io_err("a log entry is over 4 GiB"))?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(bytes).to_le_bytes());
            buf.extend_from_slice(bytes);
        }
        seg.len += buf.len() as u64;
        self.current()?.write_all(&buf)
    }

    /// Deletes entries at and after `from`, durably before it returns:
    /// records appended after it must never sit in front of stale ones.
    fn truncate(&mut self, from: u64) -> io::Result<()> {
        let mut removed = false;
        while let Some(seg) = self.segments.last_mut() {
            if seg.first >= from {
                std::fs::remove_file(&seg.path)?;
                self.segments.pop();
                self.file = None;
                removed = true;
                continue;
            }
            if let Some(&offset) = seg.offsets.get(&from) {
                seg.offsets.split_off(&from);
                seg.len = offset;
                let f = OpenOptions::new().write(true).open(&seg.path)?;
                f.set_len(offset)?;
                f.sync_all()?;
                self.file = None;
            }
            break;
        }
        if removed {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Deletes the segments that hold only entries up to `upto`.
    fn purge(&mut self, upto: u64) -> io::Result<()> {
        let before = self.segments.len();
        while self.segments.len() > 1 && self.segments[1].first <= upto + 1 {
            let seg = self.segments.remove(0);
            std::fs::remove_file(&seg.path)?;
        }
        // The last segment may be all purged, too: the next append starts
        // a new one.
        if let Some(last) = self.segments.last()
            && last.offsets.keys().next_back().is_none_or(|&i| i <= upto)
            && last.first <= upto
        {
            let seg = self.segments.pop().expect("a segment");
            std::fs::remove_file(&seg.path)?;
            self.file = None;
        }
        if self.segments.len() != before {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, loading the live entries;
    /// records are sealed and opened with `sealer`.
    pub(crate) fn open(dir: &Path, sealer: Sealer) -> std::result::Result<Self, crate::Error> {
        std::fs::create_dir_all(dir).map_err(|e| storage(dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = File::create(&lock_path).map_err(|e| storage(&lock_path, e))?;
        // A member stopped in this process releases the lock when its
        // writer thread ends: give that a moment.
        let mut tries = 0;
        while lock.try_lock().is_err() {
            tries += 1;
            if tries > 40 {
                return Err(crate::Error::Storage(format!(
                    "{} is in use by another running member: stop it first, or give this one its own data directory",
                    dir.display()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut cache = Cache {
            vote: read_meta(dir, VOTE)?,
            purged: read_meta::<Option<_>>(dir, PURGED)?.flatten(),
            ..Cache::default()
        };
        let mut firsts: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| storage(dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".wal")?.parse().ok())
            .collect();
        firsts.sort_unstable();
        let mut segments = Vec::new();
        let mut prev = None;
        let count = firsts.len();
        for (n, first) in firsts.into_iter().enumerate() {
            let path = segment_path(dir, first);
            let (entries, segment, _) = read_segment(&path, first, n + 1 == count, prev, &sealer)
                .map_err(|e| storage(&path, e))?;
            if let Some((e, _)) = entries.last() {
                prev = Some(e.log_id);
            }
            for (entry, size) in entries {
                if cache.purged.is_none_or(|p| entry.log_id.index > p.index) {
                    cache.entries.insert(entry.log_id.index, (entry, size));
                }
            }
            segments.push(segment);
        }
        let files = Files {
            _lock: Some(lock),
            dir: dir.to_owned(),
            segments,
            file: None,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer(files, &rx))
            .map_err(|e| storage(dir, e))?;
        Ok(Self {
            cache: Arc::new(RwLock::new(cache)),
            tx,
            sealer,
        })
    }

    fn cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cache_mut(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn send_and_wait(&self, op: impl FnOnce(Done) -> Op) -> Result<()> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(op(done))
            .map_err(|_| write_err("the log writer has stopped"))?;
        rx.await
            .map_err(|_| write_err("the log writer has stopped"))?
            .map_err(write_err)
    }

    /// Every entry after `index`, for recovery.
    pub(crate) fn entries_after(&self, index: Option<u64>) -> Vec<Entry<TypeConfig>> {
        let start = index.map_or(0, |i| i + 1);
        self.cache()
            .entries
            .range(start..)
            .map(|(_, (e, _))| e.clone())
            .collect()
    }

    /// Purges every entry up to `last` and records it as purged: the log
    /// of a member recovered with `--force-new-cluster`, whose snapshot
    /// holds everything.
    pub(crate) async fn reset_to(&mut self, last: LogId<NodeId>) -> Result<()> {
        self.purge(last).await
    }
}

/// The writer thread: applies ops in order, folding queued ops into one
/// sync.
fn writer(mut files: Files, rx: &mpsc::Receiver<Op>) {
    while let Ok(first) = rx.recv() {
        let mut ops = vec![first];
        while ops.len() < GROUP {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let result = write_ops(&mut files, &ops);
        for op in ops {
            let r = result.as_ref().map(|_| ()).map_err(io_err);
            match op {
                Op::Append(_, flushed) => flushed.log_io_completed(r),
                Op::Meta(_, _, done) | Op::Truncate(_, done) | Op::Purge(_, _, done) => {
                    let _ = done.send(r);
                }
            }
        }
    }
}

fn write_ops(files: &mut Files, ops: &[Op]) -> io::Result<()> {
    let mut dirty = false;
    for op in ops {
        match op {
            Op::Append(entries, _) => {
                files.append(entries)?;
                dirty = true;
            }
            Op::Meta(key, bytes, _) => write_file(&files.dir, key, bytes, true)?,
            Op::Truncate(from, _) => {
                files.truncate(*from)?;
                dirty = true;
            }
            Op::Purge(upto, purged, _) => {
                // Record the purge first: a crash in between leaves
                // entries that are ignored on start.
                write_file(&files.dir, PURGED, purged, true)?;
                files.purge(*upto)?;
            }
        }
    }
    if dirty {
        if let Some(f) = files.file.as_mut() {
            f.sync_data()?;
        } else if let Some(seg) = files.segments.last() {
            OpenOptions::new()
                .write(true)
                .open(&seg.path)?
                .sync_data()?;
        }
    }
    Ok(())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        Ok(self
            .cache()
            .entries
            .range(range)
            .map(|(_, (e, _))| e.clone())
            .collect())
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let cache = self.cache();
        let mut bytes = 0;
        let mut out = Vec::new();
        for (_, (e, size)) in cache.entries.range(start..end) {
            if !out.is_empty() && bytes + size > SEND_BYTES {
                break;
            }
            bytes += size;
            out.push(e.clone());
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let cache = self.cache();
        let last = cache
            .entries
            .values()
            .next_back()
            .map(|(e, _)| e.log_id)
            .or(cache.purged);
        Ok(LogState {
            last_purged_log_id: cache.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        self.cache_mut().vote = Some(*vote);
        let bytes = wire::to_bytes(vote);
        self.send_and_wait(|done| Op::Meta(VOTE, bytes, done))
            .await
            .map_err(|e| {
                StorageIOError::write_vote(&io_err(format!("the vote was not saved: {e}"))).into()
            })
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        Ok(self.cache().vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut bytes = Vec::new();
        {
            let mut cache = self.cache_mut();
            for entry in entries {
                let encoded = wire::to_bytes(&entry);
                let size = encoded.len();
                bytes.push((entry.log_id.index, self.sealer.seal(&encoded)));
                cache.entries.insert(entry.log_id.index, (entry, size));
            }
        }
        self.tx
            .send(Op::Append(bytes, callback))
            .map_err(|_| write_err("the log writer has stopped"))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        self.cache_mut().entries.split_off(&log_id.index);
        self.send_and_wait(|done| Op::Truncate(log_id.index, done))
            .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        {
            let mut cache = self.cache_mut();
            cache.purged = Some(log_id);
            let keep = cache.entries.split_off(&(log_id.index + 1));
            cache.entries = keep;
        }
        let bytes = wire::to_bytes(&Some(log_id));
        self.send_and_wait(|done| Op::Purge(log_id.index, bytes, done))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn files(dir: &Path) -> Files {
        Files {
            _lock: None,
            dir: dir.to_owned(),
            segments: Vec::new(),
            file: None,
        }
    }

    fn encoded(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, Vec<u8>)> {
        range.map(|i| (i, wire::to_bytes(&entry(i)))).collect()
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_whole_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = files(dir.path());
        f.append(&encoded(1..=5)).unwrap();
        f.file.as_mut().unwrap().sync_data().unwrap();
        // A crash in the middle of the sixth record.
        let path = segment_path(dir.path(), 1);
        let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
        raw.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        drop(raw);
        let (entries, segment, torn) =
            read_segment(&path, 1, true, None, &Sealer::random()).unwrap();
        assert!(torn);
        assert_eq!(entries.len(), 5);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), segment.len);
        // The file is whole again.
        let (again, _, torn) = read_segment(&path, 1, true, None, &Sealer::random()).unwrap();
        assert!(!torn);
        assert_eq!(again.len(), 5);
    }

    #[test]
    fn a_corrupt_record_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = files(dir.path());
        f.append(&encoded(1..=3)).unwrap();
        drop(f);
        let path = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let (entries, _, torn) = read_segment(&path, 1, true, None, &Sealer::random()).unwrap();
        assert!(torn);
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn truncate_and_purge_keep_the_files_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = files(dir.path());
        f.append(&encoded(1..=10)).unwrap();
        f.truncate(6).unwrap();
        f.append(&encoded(6..=7)).unwrap();
        let (entries, _, _) = read_segment(
            &segment_path(dir.path(), 1),
            1,
            true,
            None,
            &Sealer::random(),
        )
        .unwrap();
        let indexes: Vec<u64> = entries.iter().map(|(e, _)| e.log_id.index).collect();
        assert_eq!(indexes, vec![1, 2, 3, 4, 5, 6, 7]);
        f.purge(7).unwrap();
        assert!(f.segments.is_empty(), "an all-purged segment is deleted");
        f.append(&encoded(8..=9)).unwrap();
        assert_eq!(f.segments[0].first, 8);
    }

    #[tokio::test]
    async fn entries_and_vote_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::random();
        {
            let mut log = LogStore::open(dir.path(), sealer.clone()).unwrap();
            log.save_vote(&Vote::new(3, 1)).await.unwrap();
            let mut files = Files {
                _lock: None,
                dir: dir.path().to_owned(),
                segments: Vec::new(),
                file: None,
            };
            // Write entries the way the writer does, then close.
            files.append(&encoded(1..=4)).unwrap();
            files.file.as_mut().unwrap().sync_data().unwrap();
            log.purge(LogId::new(CommittedLeaderId::new(1, 1), 2))
                .await
                .unwrap();
        }
        let mut log = LogStore::open(dir.path(), sealer).unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(2));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(4));
        let entries = log.try_get_log_entries(0..10).await.unwrap();
        assert_eq!(
            entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![3, 4]
        );
    }

    #[test]
    fn a_directory_serves_one_member_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = LogStore::open(dir.path(), Sealer::random()).unwrap();
        let Err(e) = LogStore::open(dir.path(), Sealer::random()) else {
            panic!("a second member opened the same directory");
        };
        assert!(
            e.to_string().contains("in use by another running member"),
            "{e}"
        );
        drop(first);
    }

    #[test]
    fn stale_records_after_the_live_ones_are_cut_and_corruption_before_later_segments_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = files(dir.path());
        f.append(&encoded(1..=3)).unwrap();
        // An old record (index 2 again) after the live ones.
        f.append(&encoded(2..=2)).unwrap();
        drop(f);
        let path = segment_path(dir.path(), 1);
        let (entries, _, cut) = read_segment(&path, 1, true, None, &Sealer::random()).unwrap();
        assert!(cut);
        assert_eq!(entries.len(), 3);
        // The same bad record in a segment that is not the last is an error.
        let mut f = files(dir.path());
        f.segments.clear();
        std::fs::remove_file(&path).unwrap();
        f.append(&encoded(1..=3)).unwrap();
        f.append(&encoded(2..=2)).unwrap();
        let Err(e) = read_segment(&path, 1, false, None, &Sealer::random()) else {
            panic!("a corrupt middle segment was accepted");
        };
        assert!(e.to_string().contains("the log is corrupt"), "{e}");
    }
}
