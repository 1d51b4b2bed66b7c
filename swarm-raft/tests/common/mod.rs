//! A raft cluster of in-process members, each serving gRPC on its own
//! loopback port with its own data directory.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use swarm_core::model::{Meta, Object, Secret, SecretSpec};
use swarm_core::store::{Change, Store};
use swarm_raft::{RaftConfig, RaftStore};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Upper bound for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(20);

/// One member.
pub struct Member {
    pub id: u64,
    pub addr: String,
    pub dir: PathBuf,
    pub store: RaftStore,
    server: JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

/// A cluster's members; `None` for a killed one.
pub struct Cluster {
    pub members: Vec<Option<Member>>,
    pub base: tempfile::TempDir,
    pub tune: fn(RaftConfig) -> RaftConfig,
}

fn fast(c: RaftConfig) -> RaftConfig {
    c
}

impl Cluster {
    /// An empty cluster: no member yet.
    pub fn new(tune: Option<fn(RaftConfig) -> RaftConfig>) -> Self {
        Self {
            members: Vec::new(),
            base: tempfile::tempdir().unwrap(),
            tune: tune.unwrap_or(fast),
        }
    }

    /// A cluster of `n` voters, member 1 leading at first.
    pub async fn start(n: u64, tune: Option<fn(RaftConfig) -> RaftConfig>) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut c = Self::new(tune);
        for id in 1..=n {
            c.spawn(id, None, false).await;
        }
        let first = c.store(1);
        first.initialize().await.unwrap();
        first.wait_for_leader(WAIT).await.unwrap();
        for id in 2..=n {
            let addr = c.member(id).addr.clone();
            first.add_learner(id, addr).await.unwrap();
            first.promote(id).await.unwrap();
        }
        c
    }

    /// Starts member `id` (new, or restarted from its directory).
    pub async fn spawn(&mut self, id: u64, addr: Option<String>, force: bool) -> RaftStore {
        let listener = match &addr {
            Some(a) => {
                let mut tries = 0;
                loop {
                    match TcpListener::bind(a).await {
                        Ok(l) => break l,
                        Err(e) if tries < 50 => {
                            tries += 1;
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("cannot bind {a} again: {e}"),
                    }
                }
            }
            None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let addr = listener.local_addr().unwrap().to_string();
        let dir = self.base.path().join(format!("m{id}"));
        let config =
            (self.tune)(RaftConfig::new(id, addr.clone(), dir.clone())).force_new_cluster(force);
        // A killed member's lock is waited for by `open` itself.
        let store = RaftStore::open(config)
            .await
            .unwrap_or_else(|e| panic!("cannot open member {id}: {e}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn({
            let store = store.clone();
            async move {
                let _ = swarm_raft::serve(store, listener, async {
                    let _ = stopped.await;
                })
                .await;
            }
        });
        let idx = (id - 1) as usize;
        if self.members.len() <= idx {
            self.members.resize_with(idx + 1, || None);
        }
        self.members[idx] = Some(Member {
            id,
            addr,
            dir,
            store: store.clone(),
            server,
            stop,
        });
        store
    }

    pub fn member(&self, id: u64) -> &Member {
        self.members[(id - 1) as usize]
            .as_ref()
            .expect("member is running")
    }

    pub fn store(&self, id: u64) -> RaftStore {
        self.member(id).store.clone()
    }

    /// Stops member `id` abruptly: its server and its raft stop; what is on
    /// disk stays. Returns its address for the restart.
    pub async fn kill(&mut self, id: u64) -> String {
        let m = self.members[(id - 1) as usize]
            .take()
            .expect("member is running");
        // Raft first, so that open connections only hear "stopped"; then
        // the server, which closes them.
        m.store.shutdown().await;
        let _ = m.stop.send(());
        let stopped = tokio::time::timeout(Duration::from_secs(5), m.server).await;
        assert!(stopped.is_ok(), "member {id}'s server did not stop");
        m.addr
    }

    /// Restarts a killed member on its old address and directory.
    pub async fn restart(&mut self, id: u64, addr: String) -> RaftStore {
        self.spawn(id, Some(addr), false).await
    }

    /// The running members.
    pub fn running(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().flatten()
    }

    /// The leader: a running member that leads, as it knows itself.
    pub async fn leader(&self) -> u64 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(m) = self.running().find(|m| m.store.leader() == Some(m.id)) {
                return m.id;
            }
            assert!(tokio::time::Instant::now() < deadline, "no leader elected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every running member has applied store index `index`.
    pub async fn converge(&self, index: u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        for m in self.running() {
            loop {
                let at = m.store.state().await.unwrap().index();
                if at >= index {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "member {} is stuck at index {at}, below {index}",
                    m.id
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A secret named `name` with `size` bytes of data.
pub fn secret(name: &str, size: usize) -> Change {
    Change::Create(Object::from(Secret {
        meta: Meta::new(name.into()),
        spec: SecretSpec {
            name: name.into(),
            data: vec![b'x'; size],
            ..Default::default()
        },
    }))
}

/// Writes `n` secrets `{prefix}{i}` one batch each through `store`.
pub async fn write_secrets(store: &RaftStore, prefix: &str, n: usize) -> u64 {
    let mut last = 0;
    for i in 0..n {
        last = store
            .apply(vec![secret(&format!("{prefix}{i}"), 16)])
            .await
            .unwrap_or_else(|e| panic!("write {prefix}{i}: {e}"));
    }
    last
}
