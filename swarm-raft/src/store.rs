//! `RaftStore`: a manager's handle on the replicated store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{ChangeMembers, Membership, StoredMembership};
use swarm_core::store::{Change, State, Store, StoreError, WatchStream};
use tonic::transport::Channel;

use crate::config::RaftConfig;
use crate::error::Error;
use crate::log::LogStore;
use crate::network::{Connector, Contacts, Network, PlainConnector, client};
use crate::server::RaftService;
use crate::sm::{Shared, StateMachine};
use crate::types::{Member, NodeId, Proposal, Request, TypeConfig, members_of};
use crate::wire::{self, Forward, Reply};

/// One member as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberStatus {
    /// Its id.
    pub id: NodeId,
    /// Its address.
    pub addr: String,
    /// A voter (counts for quorum), or a learner.
    pub voter: bool,
    /// Whether it answered the leader within the (shortest) election
    /// timeout.
    pub reachable: bool,
    /// The last log index the leader knows it holds.
    pub matched: Option<u64>,
}

/// The raft group as its leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterStatus {
    /// The leader.
    pub leader: NodeId,
    /// The leader's term.
    pub term: u64,
    /// The last log index the leader has applied (and so committed).
    pub applied: Option<u64>,
    /// Every member, voters and learners, by id.
    pub members: Vec<MemberStatus>,
}

/// A manager's handle on the replicated store: cheap to clone.
///
/// It implements [`Store`]: reads and watches are served from this
/// member's replica; writes go to the leader (forwarded transparently when
/// this member does not lead) and are acknowledged once committed and
/// applied here, so a `state()` after an `apply()` on the same handle sees
/// the write. One exception: if this replica has not applied a committed
/// write within the write timeout, the write is still reported committed
/// (a retry would apply it twice), and a warning is logged.
#[derive(Clone)]
pub struct RaftStore {
    inner: Arc<Inner>,
}

struct Inner {
    proposals: tokio::sync::mpsc::UnboundedSender<Pending>,
    /// Free proposal slots (of [`IN_FLIGHT`]).
    slots: Arc<tokio::sync::Semaphore>,
    /// Writes queued for the proposer.
    queued: std::sync::atomic::AtomicUsize,
    id: NodeId,
    addr: String,
    raft: openraft::Raft<TypeConfig>,
    shared: Arc<Shared>,
    connector: Arc<dyn Connector>,
    contacts: Arc<Contacts>,
    channels: Mutex<HashMap<String, Channel>>,
    config: RaftConfig,
    /// The member's data key, to seal again when the unlock key changes.
    keys: crate::crypt::KeyFile,
}

impl std::fmt::Debug for RaftStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStore")
            .field("id", &self.inner.id)
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl RaftStore {
    /// Opens a member over plain TCP. See [`RaftStore::open_with`].
    pub async fn open(config: RaftConfig) -> Result<Self, Error> {
        Self::open_with(config, Arc::new(PlainConnector)).await
    }

    /// Opens a member from its data directory (created if missing), using
    /// `connector` to reach the others. A new member is not part of any
    /// cluster yet: call [`RaftStore::initialize`] to start one, or have
    /// the leader [`RaftStore::add_learner`] it. A restarted member resumes
    /// where it was. With [`RaftConfig::force_new_cluster`], the member
    /// first becomes the only voter of a new cluster that keeps every
    /// object of its log and snapshot.
    ///
    /// Serve [`RaftStore::service`] at `config.addr` for the others to
    /// reach it.
    pub async fn open_with(
        config: RaftConfig,
        connector: Arc<dyn Connector>,
    ) -> Result<Self, Error> {
        let raft_config = Arc::new(config.openraft()?);
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::Storage(format!("cannot create {}: {e}", config.data_dir.display()))
        })?;
        let keys = crate::crypt::KeyFile::open_or_create(
            &config.data_dir,
            config
                .unlock_key
                .as_ref()
                .map(swarm_core::model::UnlockKey::bytes),
        )?;
        let sealer = keys.sealer();
        let mut log = LogStore::open(&config.data_dir.join("log"), sealer.clone())?;
        let sm = StateMachine::open(
            &config.data_dir.join("snapshots"),
            config.history_events,
            config.watch_buffer,
            sealer,
        )?;
        if config.force_new_cluster {
            recover(&config, &mut log, &sm).await?;
        }
        let contacts = Arc::new(Contacts::default());
        let shared = sm.shared();
        let network = Network {
            connector: connector.clone(),
            contacts: contacts.clone(),
        };
        let config_id = config.id;
        let raft = openraft::Raft::new(config.id, raft_config, network, log, sm)
            .await
            .map_err(|e| Error::Storage(e.to_string()))?;
        let (proposals, queue) = tokio::sync::mpsc::unbounded_channel();
        let store = Self {
            inner: Arc::new(Inner {
                proposals,
                slots: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
                queued: std::sync::atomic::AtomicUsize::new(0),
                id: config.id,
                addr: config.addr.clone(),
                raft,
                shared,
                connector,
                contacts,
                channels: Mutex::new(HashMap::new()),
                config,
                keys,
            }),
        };
        tokio::spawn(propose(Arc::downgrade(&store.inner), queue));
        tokio::spawn(crate::figures::follow(
            store.inner.raft.metrics(),
            config_id,
        ));
        Ok(store)
    }

    /// Seals this member's data key with `key` (autolock), or keeps it
    /// plain again (`None`). The log and snapshots stay as they are: they
    /// are sealed with the data key, which does not change.
    pub fn set_unlock_key(&self, key: Option<&swarm_core::model::UnlockKey>) -> Result<(), Error> {
        self.inner
            .keys
            .write(key.map(swarm_core::model::UnlockKey::bytes))
    }

    /// Commits the writes of one proposal (one log entry) on the leader,
    /// and waits until this replica has applied it.
    async fn submit(&self, requests: Vec<Request>) -> Result<Vec<Result<u64, StoreError>>, Error> {
        let n = requests.len();
        match self
            .on_leader_here(Forward::Write(Proposal { requests }))
            .await?
        {
            (
                Reply::Written {
                    log_index,
                    response,
                },
                here,
            ) if response.results.len() == n => {
                // Acknowledge only what this replica shows (a write the
                // leader served here is applied here already).
                if !here
                    && let Err(e) = self
                        .wait_applied(log_index, self.inner.config.write_timeout)
                        .await
                {
                    // Committed all the same: say so, rather than
                    // invite a retry that would apply it again.
                    tracing::warn!(error = %e, "a committed write is not applied here yet");
                }
                Ok(response.results)
            }
            (other, _) => Err(unexpected(&other)),
        }
    }

    /// This member's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The gRPC service the other members call: mount it in the node's
    /// tonic server.
    #[must_use]
    pub fn service(&self) -> crate::wire::proto::raft_server::RaftServer<RaftService> {
        RaftService::server(self.clone())
    }

    pub(crate) fn raft(&self) -> &openraft::Raft<TypeConfig> {
        &self.inner.raft
    }

    /// Starts a new cluster with this member as its only voter. Does
    /// nothing if this member already belongs to a cluster.
    pub async fn initialize(&self) -> Result<(), Error> {
        let members = BTreeMap::from([(self.inner.id, Member::new(self.inner.addr.clone()))]);
        match self.inner.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(Error::InvalidArgument(e.to_string())),
        }
    }

    /// The member that leads, as this member knows it.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    /// Whether this member leads, as a watch that changes when leadership
    /// moves: what runs the managers' control loops on the leader only
    /// (see `swarm_core::manager::run_while_leading`).
    #[must_use]
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<bool> {
        let mut metrics = self.inner.raft.metrics();
        let id = self.inner.id;
        let leads = move |m: &openraft::RaftMetrics<NodeId, Member>| {
            m.current_leader == Some(id) && m.state == openraft::ServerState::Leader
        };
        let (tx, rx) = tokio::sync::watch::channel(leads(&metrics.borrow()));
        tokio::spawn(async move {
            // Ends when the member shuts down (its metrics close) or nobody
            // watches any more.
            while metrics.changed().await.is_ok() {
                let now = leads(&metrics.borrow_and_update());
                tx.send_if_modified(|l| std::mem::replace(l, now) != now);
                if tx.is_closed() {
                    break;
                }
            }
            let _ = tx.send(false);
        });
        rx
    }

    /// Waits until some member leads and this member knows it.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, Error> {
        let mut metrics = self.inner.raft.metrics();
        let found = tokio::time::timeout(timeout, async {
            loop {
                if let Some(l) = metrics.borrow_and_update().current_leader {
                    return Ok(l);
                }
                if metrics.changed().await.is_err() {
                    return Err(Error::Stopped);
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            Err(Error::NoQuorum(format!(
                "no leader elected within {timeout:?}"
            )))
        })
    }

    /// Adds a member as a learner and waits until it has caught up with
    /// the log (or a snapshot). It then receives every commit but does not
    /// vote: [`RaftStore::promote`] makes it a voter.
    pub async fn add_learner(&self, id: NodeId, addr: impl Into<String>) -> Result<u64, Error> {
        let addr = addr.into();
        if addr.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "member {id} needs an address"
            )));
        }
        self.changed(Forward::AddLearner(id, Member::new(addr)))
            .await
    }

    /// Makes a learner a voter.
    pub async fn promote(&self, id: NodeId) -> Result<u64, Error> {
        self.changed(Forward::Promote(id)).await
    }

    /// Makes a voter a learner.
    pub async fn demote(&self, id: NodeId) -> Result<u64, Error> {
        self.changed(Forward::Demote(id)).await
    }

    /// Removes a member from the cluster.
    pub async fn remove_member(&self, id: NodeId) -> Result<u64, Error> {
        self.changed(Forward::Remove(id)).await
    }

    async fn changed(&self, f: Forward) -> Result<u64, Error> {
        match self.on_leader(f).await? {
            Reply::Changed(index) => Ok(index),
            other => Err(unexpected(&other)),
        }
    }

    /// The raft group as its leader sees it: who leads, each member's role
    /// and whether the leader reaches it.
    pub async fn status(&self) -> Result<ClusterStatus, Error> {
        match self.on_leader(Forward::Status).await? {
            Reply::Status(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// A linearizable read: the state with every write acknowledged
    /// anywhere in the cluster before the call. It costs a round trip to
    /// the leader and a quorum check; [`Store::state`] is the cheap, local
    /// read.
    pub async fn state_linearizable(&self) -> Result<State, Error> {
        let index = match self.on_leader(Forward::ReadIndex).await? {
            Reply::ReadIndex(index) => index,
            other => return Err(unexpected(&other)),
        };
        self.wait_applied(index, self.inner.config.write_timeout)
            .await?;
        Ok(self.inner.shared.journal().state().clone())
    }

    /// Stops this member: it leaves raft (not the membership) and stops
    /// serving.
    pub async fn shutdown(&self) {
        let _ = self.inner.raft.shutdown().await;
    }

    async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), Error> {
        self.inner
            .raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "a forwarded request")
            .await
            .map(|_| ())
            .map_err(|e| Error::NoQuorum(format!("this member did not apply index {index}: {e}")))
    }

    /// Runs a request on the leader: here if this member leads, else over
    /// gRPC; retried (same request, so a write is never applied twice)
    /// until the write timeout.
    async fn on_leader(&self, f: Forward) -> Result<Reply, Error> {
        self.on_leader_here(f).await.map(|(reply, _)| reply)
    }

    /// [`Self::on_leader`], and whether this member served it (then a
    /// write is already applied here).
    async fn on_leader_here(&self, f: Forward) -> Result<(Reply, bool), Error> {
        let deadline = Instant::now() + self.inner.config.write_timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            let target = {
                let metrics = self.inner.raft.metrics();
                let m = metrics.borrow();
                m.current_leader.map(|l| {
                    let member = m.membership_config.membership().get_node(&l).cloned();
                    (l, member)
                })
            };
            let result = match target {
                Some((l, _)) if l == self.inner.id => {
                    self.serve_forward(f.clone()).await.map(|r| (r, true))
                }
                Some((_, Some(member))) => self.forward(&member, &f).await.map(|r| (r, false)),
                Some((l, None)) => Err(Error::NoQuorum(format!("leader {l} has no known address"))),
                None => Err(Error::NoQuorum("no leader is elected".into())),
            };
            match result {
                Err(e @ (Error::NotLeader { .. } | Error::NoQuorum(_)))
                    if Instant::now() + pause < deadline =>
                {
                    tracing::debug!(error = %e, "retrying on the leader");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    async fn forward(&self, to: &Member, f: &Forward) -> Result<Reply, Error> {
        let channel = {
            let mut channels = self
                .inner
                .channels
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match channels.get(&to.addr) {
                Some(c) => c.clone(),
                None => {
                    let c = self
                        .inner
                        .connector
                        .channel(&to.addr)
                        .map_err(Error::InvalidArgument)?;
                    channels.insert(to.addr.clone(), c.clone());
                    c
                }
            }
        };
        let mut request = tonic::Request::new(wire::encode(f));
        // The leader bounds its own work by the same time; this bounds a
        // leader that hangs.
        request.set_timeout(self.time_for(f) + Duration::from_secs(1));
        let reply = client(channel)
            .forward(request)
            .await
            // Whether or not the leader got it, a retry is safe.
            .map_err(|s| {
                Error::NoQuorum(format!("cannot reach the leader at {to}: {}", s.message()))
            })?;
        let result: Result<Reply, Error> =
            wire::decode(&reply.into_inner().data).map_err(Error::Storage)?;
        // A leader that is shutting down: another will be elected.
        result.map_err(|e| match e {
            Error::Stopped => Error::NoQuorum(format!("the leader at {to} is shutting down")),
            other => other,
        })
    }

    /// How long the leader may take to serve `f`.
    fn time_for(&self, f: &Forward) -> Duration {
        match f {
            Forward::AddLearner(..) => self.inner.config.membership_timeout,
            _ => self.inner.config.write_timeout,
        }
    }

    /// Serves a request on this member, which must lead (the server side
    /// of forwarding, and the local path).
    pub(crate) async fn serve_forward(&self, f: Forward) -> Result<Reply, Error> {
        let raft = &self.inner.raft;
        let timeout = self.inner.config.write_timeout;
        let quorum =
            |what: &str| Error::NoQuorum(format!("{what} was not committed within {timeout:?}"));
        match f {
            Forward::Write(req) => {
                let began = std::time::Instant::now();
                let r = tokio::time::timeout(timeout, raft.client_write(req))
                    .await
                    .inspect(|r| {
                        if r.is_ok() {
                            crate::figures::committed(began.elapsed());
                        }
                    })
                    .map_err(|_| {
                        Error::NoQuorum(format!(
                            "the write was not committed within {timeout:?} (it may still be: read the state to find out)"
                        ))
                    })?;
                let r = r.map_err(|e| self.write_error(e))?;
                Ok(Reply::Written {
                    log_index: r.log_id.index,
                    response: r.data,
                })
            }
            Forward::ReadIndex => {
                let (read, _) = tokio::time::timeout(timeout, raft.get_read_log_id())
                    .await
                    .map_err(|_| quorum("the read index"))?
                    .map_err(|e| match e {
                        RaftError::APIError(
                            openraft::error::CheckIsLeaderError::ForwardToLeader(f),
                        ) => self.not_leader(f.leader_id, f.leader_node),
                        other => Error::NoQuorum(other.to_string()),
                    })?;
                Ok(Reply::ReadIndex(read.map_or(0, |l| l.index)))
            }
            Forward::Status => Ok(Reply::Status(self.local_status()?)),
            Forward::AddLearner(id, member) => {
                let limit = self.inner.config.membership_timeout;
                let r = tokio::time::timeout(limit, raft.add_learner(id, member, true))
                    .await
                    .map_err(|_| {
                        Error::NoQuorum(format!(
                            "member {id} did not catch up within {limit:?}: is it running and reachable?"
                        ))
                    })?
                    .map_err(|e| self.write_error(e))?;
                Ok(Reply::Changed(r.log_id.index))
            }
            Forward::Promote(id) => {
                let current = self.membership();
                if current.membership().get_node(&id).is_none() {
                    return Err(Error::InvalidArgument(format!(
                        "member {id} is not in the cluster: add it as a learner first"
                    )));
                }
                self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
            }
            Forward::Demote(id) => {
                let current = self.membership();
                if !current.membership().voter_ids().any(|v| v == id) {
                    return Err(Error::InvalidArgument(format!(
                        "member {id} is not a voter"
                    )));
                }
                self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id])), true)
                    .await
            }
            Forward::Remove(id) => {
                let current = self.membership();
                let ids = BTreeSet::from([id]);
                if current.membership().voter_ids().any(|v| v == id) {
                    self.change(ChangeMembers::RemoveVoters(ids), false).await
                } else if current.membership().get_node(&id).is_some() {
                    self.change(ChangeMembers::RemoveNodes(ids), false).await
                } else {
                    Err(Error::InvalidArgument(format!(
                        "member {id} is not in the cluster"
                    )))
                }
            }
        }
    }

    async fn change(
        &self,
        changes: ChangeMembers<NodeId, Member>,
        retain: bool,
    ) -> Result<Reply, Error> {
        let limit = self.inner.config.write_timeout;
        let r = tokio::time::timeout(limit, self.inner.raft.change_membership(changes, retain))
            .await
            .map_err(|_| {
                Error::NoQuorum(format!(
                    "the membership change was not committed within {limit:?}"
                ))
            })?
            .map_err(|e| self.write_error(e))?;
        Ok(Reply::Changed(r.log_id.index))
    }

    /// The membership as this member knows it.
    fn membership(&self) -> Arc<StoredMembership<NodeId, Member>> {
        self.inner.raft.metrics().borrow().membership_config.clone()
    }

    fn not_leader(&self, leader: Option<NodeId>, node: Option<Member>) -> Error {
        Error::NotLeader {
            id: self.inner.id,
            leader,
            leader_addr: node.map(|n| n.addr),
        }
    }

    fn write_error(&self, e: RaftError<NodeId, ClientWriteError<NodeId, Member>>) -> Error {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                self.not_leader(f.leader_id, f.leader_node)
            }
            RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                Error::Conflict(c.to_string())
            }
            RaftError::Fatal(openraft::error::Fatal::Stopped) => Error::Stopped,
            RaftError::Fatal(f) => Error::Storage(f.to_string()),
        }
    }

    fn local_status(&self) -> Result<ClusterStatus, Error> {
        let m = self.inner.raft.metrics().borrow().clone();
        if m.current_leader != Some(self.inner.id) {
            return Err(self.not_leader(m.current_leader, None));
        }
        // A follower hears from the leader every heartbeat; one silent for
        // an election timeout would start an election itself.
        let horizon = self.inner.config.election_timeout.0;
        let matched = m.replication.clone().unwrap_or_default();
        let members = members_of(&m.membership_config)
            .into_iter()
            .map(|(id, (member, voter))| MemberStatus {
                id,
                addr: member.addr,
                voter,
                reachable: id == self.inner.id
                    || self.inner.contacts.since(id).is_some_and(|d| d < horizon),
                matched: if id == self.inner.id {
                    m.last_log_index
                } else {
                    matched.get(&id).copied().flatten().map(|l| l.index)
                },
            })
            .collect();
        Ok(ClusterStatus {
            leader: self.inner.id,
            term: m.current_term,
            applied: m.last_applied.map(|l| l.index),
            members,
        })
    }
}

/// A write waiting to be proposed.
struct Pending {
    request: Request,
    reply: tokio::sync::oneshot::Sender<Result<u64, StoreError>>,
}

/// Proposals in flight at once. While they are, new writes queue up and
/// the next proposal takes them all: one log entry, one fsync and one
/// round of replication for many callers.
const IN_FLIGHT: usize = 2;

/// The most writes in one proposal.
const MAX_PROPOSAL: usize = 1024;

/// The group-commit loop of one member: gathers queued writes into
/// proposals.
async fn propose(
    store: std::sync::Weak<Inner>,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Pending>,
) {
    let Some(slots) = store.upgrade().map(|i| i.slots.clone()) else {
        return;
    };
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_PROPOSAL {
            match queue.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let Some(inner) = store.upgrade() else {
            return;
        };
        inner
            .queued
            .fetch_sub(batch.len(), std::sync::atomic::Ordering::AcqRel);
        let store = RaftStore { inner };
        tokio::spawn(async move {
            let _slot = slot;
            let (requests, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.request, p.reply)).unzip();
            match store.submit(requests).await {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    let e = StoreError::from(e);
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

fn unexpected_empty() -> StoreError {
    Error::Storage("the leader answered a write with no result".into()).into()
}

fn unexpected(r: &Reply) -> Error {
    Error::Storage(format!("unexpected reply from the leader: {r:?}"))
}

/// `--force-new-cluster`: applies the whole local log on top of the
/// snapshot, then makes a snapshot whose membership is this member alone,
/// and purges the log it covers. A marker (`FORCED`) records the recovery:
/// with the flag left on, a restart that finds nothing changed since does
/// nothing, and one that finds the membership changed (others joined the
/// new cluster) refuses, rather than split the cluster again.
async fn recover(config: &RaftConfig, log: &mut LogStore, sm: &StateMachine) -> Result<(), Error> {
    use openraft::storage::RaftStateMachine;
    let mut sm_handle = sm.clone();
    let (applied, membership) = sm_handle.applied_state().await.map_err(Error::storage)?;
    let entries = log.entries_after(applied.map(|l| l.index));
    let latest_membership = entries
        .iter()
        .filter(|e| matches!(e.payload, openraft::EntryPayload::Membership(_)))
        .map(|e| Some(e.log_id))
        .next_back()
        .unwrap_or(*membership.log_id());
    let marker = config.data_dir.join("FORCED");
    if let Ok(bytes) = std::fs::read(&marker) {
        let forced: Option<openraft::LogId<NodeId>> =
            wire::decode(&bytes).map_err(Error::Storage)?;
        if forced == latest_membership {
            tracing::info!("force_new_cluster: already recovered, nothing changed since");
            return Ok(());
        }
        return Err(Error::InvalidArgument(format!(
            "force_new_cluster is set, but this member already recovered once and its cluster has changed since: start it without force_new_cluster (or remove {} to force again)",
            marker.display()
        )));
    }
    let me = config.id;
    let member = Member::new(config.addr.clone());
    let last = sm.recover(entries, move |last| {
        StoredMembership::new(
            last,
            Membership::new(vec![BTreeSet::from([me])], BTreeMap::from([(me, member)])),
        )
    })?;
    if let Some(last) = last {
        log.reset_to(last).await.map_err(Error::storage)?;
    }
    std::fs::write(&marker, wire::to_bytes(&last)).map_err(Error::storage)?;
    tracing::warn!(
        member = me,
        "forced a new single-member cluster from the local data"
    );
    Ok(())
}

#[async_trait]
impl Store for RaftStore {
    async fn state(&self) -> Result<State, StoreError> {
        Ok(self.inner.shared.journal().state().clone())
    }

    async fn apply(&self, changes: Vec<Change>) -> Result<u64, StoreError> {
        if changes.is_empty() {
            return Ok(self.inner.shared.journal().state().index());
        }
        let request = Request {
            id: (rand::random(), rand::random()),
            changes,
            now: SystemTime::now(),
        };
        // Idle: propose from here, without the proposer's hops.
        if self.inner.queued.load(std::sync::atomic::Ordering::Acquire) == 0
            && let Ok(_slot) = self.inner.slots.clone().try_acquire_owned()
        {
            let mut results = self.submit(vec![request]).await?;
            return results.pop().unwrap_or_else(|| Err(unexpected_empty()));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner
            .queued
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.inner
            .proposals
            .send(Pending { request, reply })
            .map_err(|_| StoreError::from(Error::Stopped))?;
        answer.await.map_err(|_| StoreError::from(Error::Stopped))?
    }

    async fn watch(&self, from: Option<u64>) -> Result<WatchStream, StoreError> {
        self.inner.shared.journal().watch(from)
    }
}

#[async_trait::async_trait]
impl swarm_core::store::ReplicatedStore for RaftStore {
    fn member_id(&self) -> u64 {
        self.id()
    }

    fn leadership(&self) -> tokio::sync::watch::Receiver<bool> {
        RaftStore::leadership(self)
    }

    async fn state_linearizable(&self) -> Result<State, StoreError> {
        Ok(RaftStore::state_linearizable(self).await?)
    }

    async fn membership(&self) -> Result<swarm_core::store::Membership, StoreError> {
        let status = self.status().await?;
        Ok(swarm_core::store::Membership {
            leader: status.leader,
            members: status
                .members
                .into_iter()
                .map(|m| swarm_core::store::Member {
                    id: m.id,
                    addr: m.addr,
                    voter: m.voter,
                    reachable: m.reachable,
                })
                .collect(),
        })
    }

    async fn add_voter(&self, id: u64, addr: String) -> Result<(), StoreError> {
        let status = self.status().await?;
        if status.members.iter().any(|m| m.id == id && m.voter) {
            return Ok(());
        }
        self.add_learner(id, addr).await?;
        self.promote(id).await?;
        Ok(())
    }

    async fn remove_member(&self, id: u64) -> Result<(), StoreError> {
        RaftStore::remove_member(self, id).await?;
        Ok(())
    }

    async fn shutdown(&self) {
        RaftStore::shutdown(self).await;
    }
}
