//! Write throughput and latency of a 3-member raft store on loopback (fsync
//! on), beside a 3-member etcd driven with the same load in the same run,
//! and the time from killing the leader until a write is accepted again.
//!
//! `cargo bench -p swarm-raft --bench raft` (options: `--writes N` for the
//! concurrent rounds, a quarter of it for 1 client, default 8000;
//! `--clients 1,64`; `--failovers N`, default 5; `--no-etcd`).
//!
//! Each write is one batch creating one secret of 64 bytes (ours) or one
//! put of a 64-byte value (etcd). Our clients call the leader's store
//! handle in this process; etcd's clients are gRPC clients of its leader:
//! both are acknowledged only after a quorum has the entry on disk.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use swarm_core::model::{Meta, Object, Secret, SecretSpec};
use swarm_core::store::{Change, Store};
use swarm_raft::{RaftConfig, RaftStore};
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The latencies of one round, and its wall time.
struct Round {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Round {
    fn print(&mut self, system: &str, clients: usize) {
        self.latencies.sort();
        let n = self.latencies.len();
        let pct = |p: f64| self.latencies[((n as f64 * p) as usize).min(n - 1)];
        println!(
            "raft-bench system={system} clients={clients} writes={n} writes_per_s={:.0} p50_ms={:.2} p99_ms={:.2}",
            n as f64 / self.wall.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
        );
    }
}

/// Runs `total` writes from `clients` concurrent clients; `write(i)` does
/// write number `i`.
async fn round<F, Fut>(clients: usize, total: usize, write: F) -> Round
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let write = Arc::new(write);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let write = write.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = c;
            while i < total {
                let t = Instant::now();
                write(i).await;
                lat.push(t.elapsed());
                i += clients;
            }
            lat
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    Round {
        latencies,
        wall: start.elapsed(),
    }
}

fn secret(name: String) -> Change {
    Change::Create(Object::from(Secret {
        meta: Meta::new(name.as_str().into()),
        spec: SecretSpec {
            name,
            data: vec![b'v'; 64],
            ..Default::default()
        },
    }))
}

/// One of our members.
struct Member {
    store: RaftStore,
    addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

async fn start_member(id: u64, dir: &Path, addr: Option<&str>) -> Member {
    let listener = match addr {
        Some(a) => loop {
            match TcpListener::bind(a).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        },
        None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let addr = listener.local_addr().unwrap().to_string();
    let config = RaftConfig::new(id, addr.clone(), dir.join(format!("m{id}")));
    // A killed member's lock is waited for by `open` itself.
    let store = RaftStore::open(config).await.expect("open a member");
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
    Member {
        store,
        addr,
        stop,
        server,
    }
}

/// Stops a member the way a crash does, as far as the others can tell:
/// its raft stops at once; its server closes its connections behind.
async fn kill(m: Member) -> String {
    m.store.shutdown().await;
    let _ = m.stop.send(());
    tokio::spawn(m.server);
    m.addr
}

/// The client counts of the rounds (`--clients 1,64`).
fn rounds(clients: &[usize], writes: usize) -> Vec<(usize, usize)> {
    clients
        .iter()
        .map(|&c| (c, if c == 1 { writes / 4 } else { writes }))
        .collect()
}

async fn ours(dir: &Path, writes: usize, clients: &[usize], failovers: usize) {
    let mut members = Vec::new();
    for id in 1..=3 {
        members.push(Some(start_member(id, dir, None).await));
    }
    let first = members[0].as_ref().unwrap().store.clone();
    first.initialize().await.unwrap();
    first
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    for (i, m) in members.iter().enumerate().skip(1) {
        let m = m.as_ref().unwrap();
        first
            .add_learner(i as u64 + 1, m.addr.clone())
            .await
            .unwrap();
        first.promote(i as u64 + 1).await.unwrap();
    }
    for (clients, total) in rounds(clients, writes) {
        let store = first.clone();
        let tag = format!("r{clients}");
        let mut r = round(clients, total, move |i| {
            let store = store.clone();
            let name = format!("{tag}-{i}");
            async move {
                store.apply(vec![secret(name)]).await.expect("write");
            }
        })
        .await;
        r.print("swarm-raft", clients);
    }

    // Failover: kill the leader, then write through a survivor until a
    // write is accepted.
    let mut times = Vec::new();
    for round in 0..failovers {
        let leader = members
            .iter()
            .flatten()
            .find_map(|m| m.store.leader())
            .expect("a leader");
        let idx = (leader - 1) as usize;
        let victim = members[idx].take().unwrap();
        let survivor = members.iter().flatten().next().unwrap().store.clone();
        let killed_at = Instant::now();
        let addr = kill(victim).await;
        let mut n = 0;
        loop {
            n += 1;
            let w = survivor.apply(vec![secret(format!("failover{round}-{n}"))]);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(2_000), w).await {
                break;
            }
        }
        let t = killed_at.elapsed();
        times.push(t);
        eprintln!(
            "  failover {round}: a write was accepted {:.3} s after the kill",
            t.as_secs_f64()
        );
        members[idx] = Some(start_member(leader, dir, Some(&addr)).await);
        // Let the restarted member catch up before the next round.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    if !times.is_empty() {
        times.sort();
        println!(
            "raft-bench failover runs={} median_s={:.3} max_s={:.3}",
            times.len(),
            times[times.len() / 2].as_secs_f64(),
            times[times.len() - 1].as_secs_f64()
        );
    }
    for m in members.into_iter().flatten() {
        kill(m).await;
    }
}

/// The bits of etcd's v3 API the load needs (`etcdserverpb`).
mod etcd {
    /// `PutRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }
    /// `PutResponse` (its fields are not needed).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PutResponse {}
    /// `StatusRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusRequest {}
    /// `ResponseHeader`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResponseHeader {
        #[prost(uint64, tag = "2")]
        pub member_id: u64,
    }
    /// `StatusResponse`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StatusResponse {
        #[prost(message, optional, tag = "1")]
        pub header: Option<ResponseHeader>,
        #[prost(uint64, tag = "4")]
        pub leader: u64,
    }
}

type Grpc = tonic::client::Grpc<tonic::transport::Channel>;

async fn unary<Req, Resp>(
    client: &mut Grpc,
    path: &'static str,
    req: Req,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    Ok(client
        .unary(tonic::Request::new(req), path, codec)
        .await?
        .into_inner())
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Etcd(Vec<Child>);

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn etcd(dir: &Path, writes: usize, clients: &[usize]) {
    if Command::new("etcd").arg("--version").output().is_err() {
        println!("raft-bench system=etcd skipped: no etcd binary (apt-get install etcd-server)");
        return;
    }
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let cluster = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        children.push(
            Command::new("etcd")
                .args([
                    "--name",
                    &format!("e{i}"),
                    "--data-dir",
                    &dir.join(format!("etcd{i}")).display().to_string(),
                    "--listen-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                    "--advertise-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                    "--listen-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                    "--initial-advertise-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                    "--initial-cluster",
                    &cluster,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "swarm-bench",
                    "--logger",
                    "zap",
                    "--log-level",
                    "error",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start etcd"),
        );
    }
    let _guard = Etcd(children);
    // Find the leader's client endpoint.
    let mut leader_client = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while leader_client.is_none() {
        assert!(Instant::now() < deadline, "etcd did not elect a leader");
        for (client_port, _) in &ports {
            let Ok(channel) =
                tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{client_port}"))
                    .unwrap()
                    .connect()
                    .await
            else {
                continue;
            };
            let mut c = Grpc::new(channel.clone());
            let s: Result<etcd::StatusResponse, _> = unary(
                &mut c,
                "/etcdserverpb.Maintenance/Status",
                etcd::StatusRequest {},
            )
            .await;
            if let Ok(s) = s
                && s.leader != 0
                && s.header.as_ref().is_some_and(|h| h.member_id == s.leader)
            {
                leader_client = Some(channel);
                break;
            }
        }
        if leader_client.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let channel = leader_client.unwrap();
    for (clients, total) in rounds(clients, writes) {
        let channel = channel.clone();
        let mut r = round(clients, total, move |i| {
            let mut c = Grpc::new(channel.clone());
            async move {
                let req = etcd::PutRequest {
                    key: format!("r{clients}-{i}").into_bytes(),
                    value: vec![b'v'; 64],
                };
                let _: etcd::PutResponse = unary(&mut c, "/etcdserverpb.KV/Put", req)
                    .await
                    .expect("put");
            }
        })
        .await;
        r.print("etcd", clients);
    }
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let writes = arg(&args, "--writes", 8000).max(4);
    let failovers = arg(&args, "--failovers", 5);
    let with_etcd = !args.iter().any(|a| a == "--no-etcd");
    let clients: Vec<usize> = args
        .iter()
        .position(|a| a == "--clients")
        .and_then(|i| args.get(i + 1))
        .map_or_else(
            || vec![1, 64],
            |v| {
                v.split(',')
                    .filter_map(|c| c.parse().ok())
                    .filter(|&c| c > 0)
                    .collect()
            },
        );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir_in(
            std::env::var_os("BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()),
        )
        .expect("a temp dir on disk");
        eprintln!("data in {} (fsync on)", dir.path().display());
        ours(dir.path(), writes, &clients, failovers).await;
        if with_etcd {
            etcd(dir.path(), writes, &clients).await;
        }
    });
}
