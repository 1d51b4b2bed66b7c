//! Service DNS: which names a task sees (pure, from the view), and the
//! server that answers each task at its resolver address.
//!
//! - `<service>` and its aliases resolve to the service's VIP on the
//!   network the asking task shares with it, or, in dnsrr mode, to its
//!   serving tasks' addresses;
//! - `tasks.<service>` resolves to the serving tasks' addresses;
//! - a task sees only the services on its own networks;
//! - other names go to the host's upstream resolvers.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType, rdata::A};
use swarm_core::Id;
use swarm_core::model::EndpointMode;
use swarm_core::network::NetworkView;

/// The address DNS answers at inside each task's namespace (Docker's).
pub const RESOLVER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// The TTL of our answers: short, so that a client's cache is never far
/// behind (Docker's is 600 s).
pub const DEFAULT_TTL: Duration = Duration::from_secs(2);

/// What a name is, for a task on some networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// One of ours, with these addresses (possibly none: a service with
    /// no serving task).
    Found(Vec<Ipv4Addr>),
    /// Looks like one of ours (one label, or `tasks.<label>`) but is not.
    NoSuchName,
    /// Not ours: ask upstream.
    NotOurs,
}

/// Name resolution for tasks: the seam of service discovery.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Resolve: Send + Sync + 'static {
    /// What `name` (lower case, without the final dot) is for a task on
    /// `networks`.
    fn lookup(&self, networks: &[Id], name: &str) -> Lookup;
}

/// The names of a view, per network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameTable {
    by_network: HashMap<Id, HashMap<String, Vec<Ipv4Addr>>>,
}

impl NameTable {
    /// The names `view` gives each network.
    #[must_use]
    pub fn of(view: &NetworkView) -> Self {
        let mut by_network: HashMap<Id, HashMap<String, Vec<Ipv4Addr>>> = HashMap::new();
        // The routing mesh's network carries published ports, not names
        // (as Docker's): a name resolves on the networks the user chose.
        let ingress: Vec<&Id> = view
            .networks
            .iter()
            .filter(|n| n.ingress)
            .map(|n| &n.id)
            .collect();
        for s in &view.services {
            for net in s.networks.iter().filter(|n| !ingress.contains(n)) {
                let serving: Vec<Ipv4Addr> = view
                    .endpoints_of(&s.id)
                    .filter(|e| e.serving)
                    .filter_map(|e| e.networks.iter().find(|a| &a.network_id == net))
                    .map(|a| a.addr)
                    .collect();
                let service_addrs = match s.mode {
                    EndpointMode::Vip => s
                        .vips
                        .iter()
                        .filter(|(n, _)| n == net)
                        .map(|(_, a)| *a)
                        .collect(),
                    EndpointMode::Dnsrr => serving.clone(),
                };
                let names = by_network.entry(net.clone()).or_default();
                let aliases = s.aliases.iter().filter(|(n, _)| n == net).map(|(_, a)| a);
                for name in std::iter::once(&s.name).chain(aliases) {
                    names
                        .entry(name.to_ascii_lowercase())
                        .or_default()
                        .extend(&service_addrs);
                }
                names
                    .entry(format!("tasks.{}", s.name.to_ascii_lowercase()))
                    .or_default()
                    .extend(&serving);
            }
        }
        Self { by_network }
    }
}

impl Resolve for NameTable {
    fn lookup(&self, networks: &[Id], name: &str) -> Lookup {
        let mut found: Option<Vec<Ipv4Addr>> = None;
        for n in networks {
            if let Some(addrs) = self.by_network.get(n).and_then(|m| m.get(name)) {
                found.get_or_insert_with(Vec::new).extend(addrs);
            }
        }
        match found {
            Some(mut addrs) => {
                addrs.sort_unstable();
                addrs.dedup();
                Lookup::Found(addrs)
            }
            None if !name.contains('.')
                || name
                    .strip_prefix("tasks.")
                    .is_some_and(|rest| !rest.contains('.')) =>
            {
                Lookup::NoSuchName
            }
            None => Lookup::NotOurs,
        }
    }
}

/// The names the server answers from: swapped whole when the view
/// changes.
#[derive(Clone)]
pub struct Names(Arc<RwLock<Arc<dyn Resolve>>>);

impl Default for Names {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(Arc::new(NameTable::default()))))
    }
}

impl Names {
    /// Answers from `table` from now on.
    pub fn set(&self, table: Arc<dyn Resolve>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = table;
    }

    fn get(&self) -> Arc<dyn Resolve> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// How the server answers: names, TTL and upstreams.
#[derive(Clone)]
pub struct Answerer {
    names: Names,
    ttl: Duration,
    upstreams: Arc<Vec<SocketAddr>>,
    turn: Arc<AtomicUsize>,
}

impl Answerer {
    /// Answers from `names` with `ttl`, forwarding other names to
    /// `upstreams` (tried in turn).
    #[must_use]
    pub fn new(names: Names, ttl: Duration, upstreams: Vec<SocketAddr>) -> Self {
        Self {
            names,
            ttl,
            upstreams: Arc::new(upstreams),
            turn: Arc::default(),
        }
    }

    /// The answer to the query `packet` from a task on `networks`, or
    /// `None` when it is not a query worth answering.
    pub async fn answer(&self, networks: &[Id], packet: &[u8]) -> Option<Vec<u8>> {
        let query = Message::from_vec(packet).ok()?;
        if query.metadata.message_type != MessageType::Query {
            return None;
        }
        let q = query.queries.first()?.clone();
        let name = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let lookup = self.names.get().lookup(networks, &name);
        let mut reply = reply_to(&query);
        reply.metadata.authoritative = true;
        match lookup {
            Lookup::Found(mut addrs) => {
                // Rotate, so that clients that take the first answer
                // spread over the tasks.
                if !addrs.is_empty() {
                    let k = self.turn.fetch_add(1, Ordering::Relaxed) % addrs.len();
                    addrs.rotate_left(k);
                }
                if q.query_type() == RecordType::A || q.query_type() == RecordType::ANY {
                    let ttl = u32::try_from(self.ttl.as_secs()).unwrap_or(u32::MAX);
                    for a in addrs {
                        reply.add_answer(Record::from_rdata(q.name().clone(), ttl, RData::A(A(a))));
                    }
                }
                // Other types (AAAA): no data, so that clients move on.
            }
            Lookup::NoSuchName => {
                reply.metadata.response_code = ResponseCode::NXDomain;
            }
            Lookup::NotOurs => return Some(self.forward(packet, &query).await),
        }
        reply.to_vec().ok()
    }

    /// Asks the upstreams; SERVFAIL when none answers in time.
    async fn forward(&self, packet: &[u8], query: &Message) -> Vec<u8> {
        let n = self.upstreams.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let up = self.upstreams[(start + i) % n];
            let bind: SocketAddr = if up.is_ipv4() {
                "0.0.0.0:0".parse().expect("an address")
            } else {
                "[::]:0".parse().expect("an address")
            };
            let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
                continue;
            };
            if sock.send_to(packet, up).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; 4096];
            if let Ok(Ok((len, from))) =
                tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await
                && from == up
            {
                buf.truncate(len);
                return buf;
            }
        }
        let mut fail = reply_to(query);
        fail.metadata.response_code = ResponseCode::ServFail;
        fail.to_vec().unwrap_or_default()
    }

    /// Serves `socket` (UDP) for a task on `networks` until dropped.
    pub async fn serve_udp(self, socket: tokio::net::UdpSocket, networks: Arc<[Id]>) {
        let socket = Arc::new(socket);
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let packet = buf[..len].to_vec();
            let (me, socket, networks) = (self.clone(), socket.clone(), networks.clone());
            tokio::spawn(async move {
                if let Some(reply) = me.answer(&networks, &packet).await {
                    let _ = socket.send_to(&reply, from).await;
                }
            });
        }
    }

    /// Serves `listener` (TCP, length-prefixed messages) for a task on
    /// `networks` until dropped.
    pub async fn serve_tcp(self, listener: tokio::net::TcpListener, networks: Arc<[Id]>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (me, networks) = (self.clone(), networks.clone());
            tokio::spawn(async move {
                loop {
                    let Ok(len) = conn.read_u16().await else {
                        return;
                    };
                    let mut packet = vec![0u8; usize::from(len)];
                    if conn.read_exact(&mut packet).await.is_err() {
                        return;
                    }
                    let Some(reply) = me.answer(&networks, &packet).await else {
                        return;
                    };
                    let Ok(n) = u16::try_from(reply.len()) else {
                        return;
                    };
                    if conn.write_u16(n).await.is_err() || conn.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
}

/// An empty response to `query`: its id, op code, question and
/// recursion flags.
fn reply_to(query: &Message) -> Message {
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    if let Some(q) = query.queries.first() {
        reply.add_query(q.clone());
    }
    reply
}

/// The nameservers of a `resolv.conf`, on port 53.
#[must_use]
pub fn upstreams_of(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            let ip: std::net::IpAddr = w.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests;
