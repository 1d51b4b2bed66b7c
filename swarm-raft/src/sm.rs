//! The state machine: a [`Journal`] of the whole object model, the
//! request-dedup table, and snapshots on disk.
//!
//! The state lives in memory; what makes it durable is the snapshot file
//! plus the log after it. A snapshot is written to a temporary file,
//! fsynced, renamed into place and the directory fsynced, so a crash leaves
//! either the old snapshot or the new one, never half of one.

use std::collections::{HashMap, VecDeque};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use swarm_core::model::Object;
use swarm_core::store::{Journal, State};

use crate::crypt::Sealer;
use crate::types::{Member, NodeId, RequestId, Response, TypeConfig};
use crate::wire;

type Result<T> = std::result::Result<T, StorageError<NodeId>>;
type Outcome = std::result::Result<u64, swarm_core::store::StoreError>;

/// The state the store handle shares with the state machine.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The object model, its history and watchers.
    pub(crate) journal: Mutex<Journal>,
}

impl Shared {
    pub(crate) fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Remembers the answers to recent requests, so that a retried request is
/// answered, not applied again. Part of the replicated state (it is in the
/// snapshot), so every member deduplicates the same way.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Dedup {
    order: VecDeque<RequestId>,
    answers: HashMap<RequestId, Outcome>,
}

impl Dedup {
    /// Requests remembered. A caller retries for seconds, while the cluster
    /// commits at most some thousands of batches a second.
    const KEEP: usize = 100_000;

    fn get(&self, id: &RequestId) -> Option<&Outcome> {
        self.answers.get(id)
    }

    fn insert(&mut self, id: RequestId, response: Outcome) {
        if self.answers.insert(id, response).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > Self::KEEP {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
            }
        }
    }
}

/// The body of a snapshot: what the state machine holds.
#[derive(Serialize, Deserialize)]
struct Body {
    index: u64,
    objects: Vec<Object>,
    dedup: Dedup,
}

/// A snapshot file: its meta and its body.
#[derive(Serialize, Deserialize)]
struct File {
    meta: SnapshotMeta<NodeId, Member>,
    /// Raw bytes in MessagePack (not an array of numbers).
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
}

/// [`File`], borrowed for writing (the same encoding).
#[derive(Serialize)]
struct FileRef<'a> {
    meta: &'a SnapshotMeta<NodeId, Member>,
    #[serde(with = "serde_bytes")]
    body: &'a [u8],
}

#[derive(Debug, Default)]
struct Applied {
    last: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Member>,
    dedup: Dedup,
    /// The current snapshot's meta (its file is `snapshot.bin`).
    snapshot: Option<SnapshotMeta<NodeId, Member>>,
}

/// The raft state machine.
#[derive(Clone)]
pub(crate) struct StateMachine {
    shared: Arc<Shared>,
    applied: Arc<Mutex<Applied>>,
    /// Serialises snapshot file writes: openraft builds snapshots in a
    /// task of their own, which may overlap an install.
    files: Arc<Mutex<()>>,
    dir: PathBuf,
    /// Seals the snapshot file.
    sealer: Sealer,
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl StateMachine {
    /// Opens the state machine in `dir`: the last snapshot, if any.
    pub(crate) fn open(
        dir: &Path,
        history_events: usize,
        watch_buffer: usize,
        sealer: Sealer,
    ) -> std::result::Result<Self, crate::Error> {
        std::fs::create_dir_all(dir).map_err(crate::Error::storage)?;
        let mut journal = Journal::new(history_events, watch_buffer);
        let mut applied = Applied::default();
        let path = dir.join("snapshot.bin");
        if path.exists() {
            let bytes = std::fs::read(&path).map_err(crate::Error::storage)?;
            let bytes = sealer
                .open(&bytes)
                .map_err(|e| crate::Error::Storage(format!("{}: {e}", path.display())))?;
            let file: File = wire::decode(&bytes)
                .map_err(|e| crate::Error::Storage(format!("{}: {e}", path.display())))?;
            let (state, dedup) = decode_body(&file.body)
                .map_err(|e| crate::Error::Storage(format!("{}: {e}", path.display())))?;
            journal.reset(state);
            applied.last = file.meta.last_log_id;
            applied.membership = file.meta.last_membership.clone();
            applied.dedup = dedup;
            applied.snapshot = Some(file.meta);
        }
        Ok(Self {
            shared: Arc::new(Shared {
                journal: Mutex::new(journal),
            }),
            applied: Arc::new(Mutex::new(applied)),
            files: Arc::new(Mutex::new(())),
            dir: dir.to_owned(),
            sealer,
        })
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    fn applied(&self) -> MutexGuard<'_, Applied> {
        self.applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies one entry; the same code serves raft and recovery.
    fn apply_entry(&self, entry: Entry<TypeConfig>) -> Response {
        let mut applied = self.applied();
        applied.last = Some(entry.log_id);
        let mut journal = self.shared.journal();
        let mut results = Vec::new();
        match entry.payload {
            EntryPayload::Normal(proposal) => {
                for request in proposal.requests {
                    if let Some(answer) = applied.dedup.get(&request.id) {
                        results.push(answer.clone());
                        continue;
                    }
                    let result = journal.commit(request.changes, request.now);
                    applied.dedup.insert(request.id, result.clone());
                    results.push(result);
                }
            }
            EntryPayload::Membership(m) => {
                applied.membership = StoredMembership::new(Some(entry.log_id), m);
            }
            EntryPayload::Blank => {}
        }
        Response { results }
    }

    /// Applies entries outside raft (recovery), then writes a snapshot
    /// whose membership is `membership`: the start of a new cluster that
    /// keeps every object.
    pub(crate) fn recover(
        &self,
        entries: Vec<Entry<TypeConfig>>,
        membership: impl FnOnce(Option<LogId<NodeId>>) -> StoredMembership<NodeId, Member>,
    ) -> std::result::Result<Option<LogId<NodeId>>, crate::Error> {
        for e in entries {
            self.apply_entry(e);
        }
        let last = {
            let mut applied = self.applied();
            applied.membership = membership(applied.last);
            // The new snapshot replaces the current one even at the same
            // log id: its membership differs.
            applied.snapshot = None;
            applied.last
        };
        let (meta, body) = self.capture();
        self.persist(&meta, &body).map_err(crate::Error::storage)?;
        Ok(last)
    }

    /// The current state as a snapshot meta and body.
    fn capture(&self) -> (SnapshotMeta<NodeId, Member>, Vec<u8>) {
        let (state, dedup, last, membership) = {
            let applied = self.applied();
            let state = self.shared.journal().state().clone();
            (
                state,
                applied.dedup.clone(),
                applied.last,
                applied.membership.clone(),
            )
        };
        let body = wire::to_bytes(&Body {
            index: state.index(),
            objects: state.objects().collect(),
            dedup,
        });
        let snapshot_id = match last {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, rand::random::<u32>()),
            None => format!("0-0-{}", rand::random::<u32>()),
        };
        (
            SnapshotMeta {
                last_log_id: last,
                last_membership: membership,
                snapshot_id,
            },
            body,
        )
    }

    /// Makes `meta` the current snapshot and writes its file crash-safely
    /// (temp file, fsync, rename, fsync of the directory), unless a
    /// snapshot at least as recent is current already: then nothing
    /// changes and it returns false. A snapshot never goes backwards.
    fn persist(&self, meta: &SnapshotMeta<NodeId, Member>, body: &[u8]) -> std::io::Result<bool> {
        let _files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.applied().snapshot.as_ref().map(|m| m.last_log_id);
        if current.is_some_and(|c| c >= meta.last_log_id) {
            return Ok(false);
        }
        let bytes = self.sealer.seal(&wire::to_bytes(&FileRef { meta, body }));
        let tmp = self.dir.join("snapshot.bin.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join("snapshot.bin"))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.applied().snapshot = Some(meta.clone());
        Ok(true)
    }

    fn read_snapshot(&self) -> std::io::Result<Option<Snapshot<TypeConfig>>> {
        let path = self.dir.join("snapshot.bin");
        if !path.exists() {
            return Ok(None);
        }
        let bytes = self.sealer.open(&std::fs::read(path)?).map_err(io_err)?;
        let file: File = wire::decode(&bytes).map_err(io_err)?;
        Ok(Some(Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(file.body)),
        }))
    }
}

fn decode_body(body: &[u8]) -> std::result::Result<(State, Dedup), String> {
    let body: Body = wire::decode(body)?;
    let state = State::restore(body.index, body.objects).map_err(|e| e.to_string())?;
    Ok((state, body.dedup))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let sm = self.clone();
        let built = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let (meta, body) = sm.capture();
            // An install may have overtaken this build: then the file and
            // the current snapshot stay the installed one.
            sm.persist(&meta, &body)?;
            Ok(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(body)),
            })
        })
        .await
        .map_err(io_err)
        .and_then(|r| r);
        built.map_err(|e| StorageIOError::write_snapshot(None, &e).into())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Member>)> {
        let applied = self.applied();
        Ok((applied.last, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        Ok(entries.into_iter().map(|e| self.apply_entry(e)).collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let sm = self.clone();
        let meta = meta.clone();
        let signature = meta.signature();
        let installed = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let body = snapshot.into_inner();
            let (state, dedup) = decode_body(&body).map_err(io_err)?;
            if !sm.persist(&meta, &body)? {
                // A snapshot at least as recent is current: keep it.
                return Ok(());
            }
            let mut applied = sm.applied();
            sm.shared.journal().reset(state);
            applied.last = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
            applied.dedup = dedup;
            Ok(())
        })
        .await
        .map_err(io_err)
        .and_then(|r| r);
        installed.map_err(|e| StorageIOError::write_snapshot(Some(signature), &e).into())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        let sm = self.clone();
        tokio::task::spawn_blocking(move || sm.read_snapshot())
            .await
            .map_err(io_err)
            .and_then(|r| r)
            .map_err(|e| StorageIOError::read_snapshot(None, &e).into())
    }
}
