//! The raft log and vote, durable in a redb database.
//!
//! Every entry not yet purged is also held in memory, so that replication
//! reads never touch the disk. Writes go to one writer thread in order
//! (raft needs its log and vote IO serialised); the thread commits every
//! queued append in one redb transaction (group commit: one fsync for many
//! entries under load) and only then reports them flushed.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, RwLock, mpsc};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, StorageError, StorageIOError, Vote};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::types::{NodeId, TypeConfig};
use crate::wire;

const LOGS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const VOTE: &str = "vote";
const PURGED: &str = "purged";
const COMMITTED: &str = "committed";

/// The most appends the writer folds into one transaction.
const GROUP: usize = 4096;

/// Replication sends at most this many bytes of entries per message (and
/// at least one entry): openraft gives an append one heartbeat interval.
const SEND_BYTES: usize = 512 << 10;

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

/// The log store: cheap to clone (it is also the log reader).
#[derive(Clone)]
pub(crate) struct LogStore {
    cache: Arc<RwLock<Cache>>,
    tx: mpsc::Sender<Op>,
}

#[derive(Default)]
struct Cache {
    /// Each entry with its encoded size.
    entries: BTreeMap<u64, (Entry<TypeConfig>, usize)>,
    purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

type Done = oneshot::Sender<io::Result<()>>;

enum Op {
    Append(Vec<(u64, Vec<u8>)>, LogFlushed<TypeConfig>),
    Meta(&'static str, Vec<u8>, Option<Done>),
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

impl LogStore {
    /// Opens (or creates) the log in `path`, loading the live entries.
    pub(crate) fn open(path: &Path) -> std::result::Result<Self, crate::Error> {
        let db = redb::Database::create(path).map_err(crate::Error::storage)?;
        let mut cache = Cache::default();
        {
            let w = db.begin_write().map_err(crate::Error::storage)?;
            w.open_table(LOGS).map_err(crate::Error::storage)?;
            w.open_table(META).map_err(crate::Error::storage)?;
            w.commit().map_err(crate::Error::storage)?;
        }
        let r = db.begin_read().map_err(crate::Error::storage)?;
        let meta = r.open_table(META).map_err(crate::Error::storage)?;
        let get = |key: &str| -> std::result::Result<Option<Vec<u8>>, crate::Error> {
            Ok(meta
                .get(key)
                .map_err(crate::Error::storage)?
                .map(|v| v.value().to_vec()))
        };
        fn decode<T: serde::de::DeserializeOwned>(
            bytes: Option<Vec<u8>>,
            what: &str,
            path: &Path,
        ) -> std::result::Result<Option<T>, crate::Error> {
            bytes
                .map(|b| wire::decode(&b))
                .transpose()
                .map_err(|e| crate::Error::Storage(format!("{what} in {}: {e}", path.display())))
        }
        cache.vote = decode(get(VOTE)?, "the vote", path)?;
        cache.purged = decode::<Option<_>>(get(PURGED)?, "the purged log id", path)?.flatten();
        cache.committed =
            decode::<Option<_>>(get(COMMITTED)?, "the committed log id", path)?.flatten();
        let logs = r.open_table(LOGS).map_err(crate::Error::storage)?;
        for row in logs.iter().map_err(crate::Error::storage)? {
            let (k, v) = row.map_err(crate::Error::storage)?;
            let entry: Entry<TypeConfig> = wire::decode(v.value()).map_err(|e| {
                crate::Error::Storage(format!(
                    "log entry {} in {}: {e}",
                    k.value(),
                    path.display()
                ))
            })?;
            cache.entries.insert(k.value(), (entry, v.value().len()));
        }
        drop((logs, meta, r));
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer(&db, &rx))
            .map_err(crate::Error::storage)?;
        Ok(Self {
            cache: Arc::new(RwLock::new(cache)),
            tx,
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
}

/// The writer thread: applies ops in order, folding queued ops into one
/// transaction.
fn writer(db: &redb::Database, rx: &mpsc::Receiver<Op>) {
    while let Ok(first) = rx.recv() {
        let mut ops = vec![first];
        while ops.len() < GROUP {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let result = write_ops(db, &ops).map_err(io_err);
        for op in ops {
            let r = result.as_ref().map(|_| ()).map_err(|e| io_err(e));
            match op {
                Op::Append(_, flushed) => flushed.log_io_completed(r),
                Op::Meta(_, _, done) => {
                    if let Some(done) = done {
                        let _ = done.send(r);
                    }
                }
                Op::Truncate(_, done) | Op::Purge(_, _, done) => {
                    let _ = done.send(r);
                }
            }
        }
    }
}

fn write_ops(db: &redb::Database, ops: &[Op]) -> std::result::Result<(), redb::Error> {
    let w = db.begin_write()?;
    {
        let mut logs = w.open_table(LOGS)?;
        let mut meta = w.open_table(META)?;
        for op in ops {
            match op {
                Op::Append(entries, _) => {
                    for (index, bytes) in entries {
                        logs.insert(*index, bytes.as_slice())?;
                    }
                }
                Op::Meta(key, bytes, _) => {
                    meta.insert(*key, bytes.as_slice())?;
                }
                Op::Truncate(from, _) => {
                    logs.retain_in(*from.., |_, _| false)?;
                }
                Op::Purge(upto, purged, _) => {
                    meta.insert(PURGED, purged.as_slice())?;
                    logs.retain_in(..=*upto, |_, _| false)?;
                }
            }
        }
    }
    w.commit()?;
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
        self.send_and_wait(|done| Op::Meta(VOTE, bytes, Some(done)))
            .await
            .map_err(|_| StorageIOError::write_vote(&io_err("the vote was not saved")).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        Ok(self.cache().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        self.cache_mut().committed = committed;
        // Not waited for: a committed id that is lost in a crash is learnt
        // again from the leader.
        self.tx
            .send(Op::Meta(COMMITTED, wire::to_bytes(&committed), None))
            .map_err(|_| write_err("the log writer has stopped"))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        Ok(self.cache().committed)
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
                bytes.push((entry.log_id.index, encoded));
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

impl LogStore {
    /// Purges every entry and records `last` as purged: the log of a
    /// member recovered with `--force-new-cluster`, whose snapshot holds
    /// everything.
    pub(crate) async fn reset_to(&mut self, last: LogId<NodeId>) -> Result<()> {
        self.purge(last).await
    }
}
