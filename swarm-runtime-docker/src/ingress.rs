//! The node's share of the routing mesh: every ingress-published port of
//! this runtime's running containers is listened on at the node, and each
//! connection goes to one of the port's containers in turn.
//!
//! The containers are found from the engine, by their labels, so that
//! adopted containers are served, and killed or removed ones are dropped,
//! whoever started or stopped them. Only this node's containers back its
//! ports: forwarding to other nodes' tasks belongs to the cluster network.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use swarm_core::Id;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::spec::{LABEL_INGRESS, ingress_ports, parse_ingress, scope_filter};

/// How long a connection to one container may take before the next is
/// tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The containers behind one published port, taken in turn.
#[derive(Default)]
struct Backends {
    addrs: RwLock<Vec<SocketAddr>>,
    next: AtomicUsize,
}

impl Backends {
    fn in_turn(&self) -> Vec<SocketAddr> {
        let addrs = self.addrs.read().unwrap_or_else(PoisonError::into_inner);
        let n = addrs.len();
        if n == 0 {
            return Vec::new();
        }
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).map(|i| addrs[(first + i) % n]).collect()
    }
}

/// A listening port and its containers.
struct Published {
    backends: Arc<Backends>,
    accept: JoinHandle<()>,
}

impl Drop for Published {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The ingress listeners of one runtime.
pub(crate) struct Ingress {
    docker: Docker,
    node: Option<Id>,
    wake: Notify,
    ports: Mutex<HashMap<u16, Published>>,
    /// Ports that could not be bound, so that each failure is logged once.
    failed: Mutex<HashSet<u16>>,
}

impl Ingress {
    /// Starts refreshing every `every` and when [`poke`](Self::poke)d; the
    /// returned handle stops it.
    pub(crate) fn start(
        docker: Docker,
        node: Option<Id>,
        every: Duration,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let ingress = Arc::new(Self {
            docker,
            node,
            wake: Notify::new(),
            ports: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashSet::new()),
        });
        let me = ingress.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = me.refresh().await {
                    tracing::debug!(error = %e, "cannot list containers for the ingress ports");
                }
                let _ = tokio::time::timeout(every, me.wake.notified()).await;
            }
        });
        (ingress, task)
    }

    /// Asks for a refresh now (a container started, stopped or went away).
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    /// The ports served now, with their containers' addresses.
    pub(crate) fn published(&self) -> BTreeMap<u16, Vec<SocketAddr>> {
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(port, p)| {
                let addrs = p
                    .backends
                    .addrs
                    .read()
                    .unwrap_or_else(PoisonError::into_inner);
                (*port, addrs.clone())
            })
            .collect()
    }

    /// Whether the node can publish `task`'s ingress ports: each is served
    /// already, or can be bound now. A listener of ours that was just let
    /// go closes a moment later, so a port in use gets a second of tries.
    pub(crate) async fn check(&self, task: &swarm_core::model::Task) -> Result<(), String> {
        for p in ingress_ports(task) {
            let Ok(port) = u16::try_from(p.published_port) else {
                continue;
            };
            let mut tries = 0;
            loop {
                let bound = {
                    // Under the lock, so that a refresh does not bind
                    // meanwhile.
                    let ports = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
                    if ports.contains_key(&port) {
                        Ok(())
                    } else {
                        listen_std(port).map(drop)
                    }
                };
                match bound {
                    Ok(()) => break,
                    Err(_) if tries < 20 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => {
                        return Err(format!(
                            "port {port} cannot be published on this node: {e} (does another program hold it?)"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Matches the listeners to the running containers.
    async fn refresh(&self) -> Result<(), bollard::errors::Error> {
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: false,
                filters: Some(scope_filter(LABEL_INGRESS, self.node.as_ref(), None)),
                ..ListContainersOptions::default()
            }))
            .await?;
        let mut want: HashMap<u16, Vec<SocketAddr>> = HashMap::new();
        for c in containers {
            let Some(ports) = c.labels.as_ref().and_then(|l| l.get(LABEL_INGRESS)) else {
                continue;
            };
            // As the routing mesh does, only healthy containers (or those
            // without a health check) get connections.
            let status = c.status.as_deref().unwrap_or_default();
            if status.contains("(unhealthy)") || status.contains("(health: starting)") {
                continue;
            }
            let ip = c
                .network_settings
                .as_ref()
                .and_then(|n| n.networks.as_ref())
                .into_iter()
                .flat_map(|n| n.values())
                .filter_map(|e| e.ip_address.as_deref())
                .find_map(|ip| ip.parse::<IpAddr>().ok());
            let Some(ip) = ip else {
                continue;
            };
            for (published, target) in parse_ingress(ports) {
                want.entry(published)
                    .or_default()
                    .push(SocketAddr::new(ip, target));
            }
        }
        let mut ports = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
        ports.retain(|port, _| want.contains_key(port));
        for (port, mut addrs) in want {
            addrs.sort_unstable();
            if let Some(p) = ports.get(&port) {
                *p.backends
                    .addrs
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = addrs;
                continue;
            }
            match listen(port) {
                Ok(listener) => {
                    self.failed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&port);
                    let backends = Arc::new(Backends {
                        addrs: RwLock::new(addrs),
                        next: AtomicUsize::new(0),
                    });
                    let accept = tokio::spawn(accept(listener, backends.clone()));
                    ports.insert(port, Published { backends, accept });
                }
                Err(e) => {
                    if self
                        .failed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(port)
                    {
                        tracing::warn!(port, error = %e, "cannot publish an ingress port on this node; retrying");
                    }
                }
            }
        }
        Ok(())
    }
}

fn listen_std(port: u16) -> std::io::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
}

fn listen(port: u16) -> std::io::Result<TcpListener> {
    let listener = listen_std(port)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

async fn accept(listener: TcpListener, backends: Arc<Backends>) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                tokio::spawn(forward(conn, backends.clone()));
            }
            Err(e) => {
                tracing::debug!(error = %e, "accept failed on an ingress port");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Joins `conn` to the first container, in turn, that takes a connection.
async fn forward(mut conn: TcpStream, backends: Arc<Backends>) {
    for addr in backends.in_turn() {
        if let Ok(Ok(mut upstream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        {
            let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
            return;
        }
    }
}
