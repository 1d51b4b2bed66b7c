//! The Linux data plane: a [`NetworkDriver`] that gives each task its own
//! network namespace, joins the node to each overlay with a bridge and a
//! VXLAN device, keeps the overlay's static neighbours, DNS names, VIPs
//! and routing mesh following the cluster's view.
//!
//! Per overlay on a node: a bridge `swb<vni>` holding the network's
//! gateway (the ingress bridge holds the node's own ingress address), and
//! a VXLAN device `swv<vni>` on it, without learning and with ARP proxy:
//! every remote address has a static neighbour and forwarding entry from
//! the view, so no broadcast crosses the underlay. Per task: a namespace
//! `swarm-<task>` with a veth on each of its networks (`eth0`, `eth1`,
//! ...) holding its address, DNS at 127.0.0.11, and its VIPs as nftables
//! DNAT rules.

mod cmd;
pub mod proxy;
pub mod rules;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use swarm_core::Id;
use swarm_core::model::{Task, TaskNetwork};
use swarm_core::network::{NetworkDriver, NetworkError, NetworkView, Sandbox, ViewNetwork};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::dns::{Answerer, NameTable, Names, RESOLVER_ADDR};
use rules::{Balancer, NftBalancer, Peer};

/// VXLAN over IPv4 costs 50 bytes of each underlay frame.
const VXLAN_OVERHEAD: u32 = 50;

/// Settings of a [`LinuxDriver`].
pub struct LinuxConfig {
    /// This node.
    pub node_id: Id,
    /// This node's underlay address: where the other nodes send its VXLAN
    /// traffic.
    pub data_addr: IpAddr,
    /// Where each task's `resolv.conf` is written.
    pub state_dir: PathBuf,
    /// The overlay MTU; by default the underlay interface's, less 50.
    pub mtu: Option<u32>,
    /// The TTL of DNS answers.
    pub dns_ttl: Duration,
    /// Where names that are not the cluster's go; by default the host's
    /// `/etc/resolv.conf` nameservers.
    pub upstreams: Option<Vec<SocketAddr>>,
    /// How VIP and mesh connections are spread.
    pub balancer: Arc<dyn Balancer>,
}

impl LinuxConfig {
    /// Defaults for node `node_id` reached at `data_addr`, keeping files
    /// under `state_dir`.
    #[must_use]
    pub fn new(node_id: Id, data_addr: IpAddr, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            node_id,
            data_addr,
            state_dir: state_dir.into(),
            mtu: None,
            dns_ttl: crate::dns::DEFAULT_TTL,
            upstreams: None,
            balancer: Arc::new(NftBalancer),
        }
    }
}

/// An overlay this node has joined.
struct LocalNet {
    peers: BTreeSet<Peer>,
}

/// A task's sandbox on this node.
struct TaskBox {
    netns: String,
    networks: Vec<Id>,
    rules: String,
    dns: Vec<JoinHandle<()>>,
}

struct Inner {
    view: Arc<NetworkView>,
    nets: HashMap<Id, LocalNet>,
    tasks: HashMap<Id, TaskBox>,
    node_rules: String,
    proxies: proxy::Proxies,
}

impl Drop for Inner {
    /// A driver that goes (a node that changes roles makes another) takes
    /// its DNS servers with it, so that its successor can bind the tasks'
    /// resolver addresses.
    fn drop(&mut self) {
        for b in self.tasks.values() {
            for d in &b.dns {
                d.abort();
            }
        }
    }
}

/// The Linux data plane; see the module docs.
pub struct LinuxDriver {
    config: LinuxConfig,
    mtu: u32,
    names: Names,
    answerer: Answerer,
    inner: Mutex<Inner>,
}

impl LinuxDriver {
    /// A driver for this node, after checking that it may make network
    /// namespaces and interfaces. Without that privilege the error says
    /// so: run the tasks on the host's network instead
    /// ([`swarm_core::network::HostNetwork`]).
    pub async fn new(config: LinuxConfig) -> Result<Self, NetworkError> {
        probe().await?;
        let mtu = match config.mtu {
            Some(m) => m,
            None => underlay_mtu(config.data_addr)
                .await
                .saturating_sub(VXLAN_OVERHEAD),
        };
        let upstreams = config.upstreams.clone().unwrap_or_else(|| {
            crate::dns::upstreams_of(
                &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            )
        });
        let names = Names::default();
        let answerer = Answerer::new(names.clone(), config.dns_ttl, upstreams);
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| NetworkError::Failed(format!("{}: {e}", config.state_dir.display())))?;
        // The node forwards between the underlay and its overlays.
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
        let_docker_forward().await;
        Ok(Self {
            config,
            mtu,
            names,
            answerer,
            inner: Mutex::new(Inner {
                view: Arc::new(NetworkView::default()),
                nets: HashMap::new(),
                tasks: HashMap::new(),
                node_rules: String::new(),
                proxies: proxy::Proxies::default(),
            }),
        })
    }

    /// The overlay MTU this driver uses.
    #[must_use]
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// The address this node's bridge on `net` holds: its own ingress
    /// address on the ingress network, the gateway elsewhere.
    fn bridge_addr(&self, net: &ViewNetwork) -> Option<Ipv4Addr> {
        if net.ingress {
            net.node_addrs
                .iter()
                .find(|(n, _)| n == &self.config.node_id)
                .map(|(_, a)| *a)
        } else {
            Some(net.gateway)
        }
    }

    /// Joins `net` on this node: its bridge and VXLAN device, then its
    /// peers.
    async fn join(&self, inner: &mut Inner, net: &ViewNetwork) -> Result<(), NetworkError> {
        if inner.nets.contains_key(&net.id) {
            return Ok(());
        }
        let Some(addr) = self.bridge_addr(net) else {
            return Err(NetworkError::Failed(format!(
                "this node has no address on network {} yet",
                net.name
            )));
        };
        let (br, vx, mtu) = (
            rules::bridge_name(net.vni),
            rules::vxlan_name(net.vni),
            self.mtu,
        );
        // What an earlier run left behind goes first.
        cmd::ip_batch(
            None,
            &[format!("link del {vx}"), format!("link del {br}")],
            true,
        )
        .await
        .ok();
        let local = match self.config.data_addr {
            IpAddr::V4(a) => format!("local {a}"),
            IpAddr::V6(a) => format!("local {a}"),
        };
        cmd::ip_batch(
            None,
            &[
                format!("link add {br} type bridge"),
                format!("link set {br} address {} mtu {mtu}", rules::mac_of(addr)),
                format!(
                    "link add {vx} mtu {mtu} type vxlan id {} dstport {} {local} nolearning proxy",
                    net.vni, inner.view.data_path_port
                ),
                format!("link set {vx} master {br}"),
                format!("link set {vx} up"),
                format!("link set {br} up"),
                format!("addr add {addr}/{} dev {br}", net.subnet.prefix()),
            ],
            false,
        )
        .await?;
        if net.ingress {
            // Connections to the mesh from this host's own loopback.
            let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{br}/route_localnet"), "1");
        }
        inner.nets.insert(
            net.id.clone(),
            LocalNet {
                peers: BTreeSet::new(),
            },
        );
        self.sync_peers(inner, net).await
    }

    /// Makes `net`'s static neighbours those of the view.
    async fn sync_peers(&self, inner: &mut Inner, net: &ViewNetwork) -> Result<(), NetworkError> {
        let want = rules::peers(&inner.view, &self.config.node_id, net);
        let Some(local) = inner.nets.get_mut(&net.id) else {
            return Ok(());
        };
        let vx = rules::vxlan_name(net.vni);
        let mut neigh = Vec::new();
        let mut fdb = Vec::new();
        for p in local.peers.difference(&want) {
            let mac = rules::mac_of(p.ip);
            neigh.push(format!("neigh del {} dev {vx}", p.ip));
            fdb.push(format!("fdb del {mac} dev {vx} dst {}", p.dst));
            // And what the bridge learned of it on the VXLAN port: were
            // the address to come to this node, the bridge would send its
            // frames back out of that port (to a peer that no longer has
            // it) until the entry aged out, minutes later.
            fdb.push(format!("fdb del {mac} dev {vx} master"));
        }
        for p in want.difference(&local.peers) {
            let mac = rules::mac_of(p.ip);
            neigh.push(format!(
                "neigh replace {} lladdr {mac} dev {vx} nud permanent",
                p.ip
            ));
            fdb.push(format!(
                "fdb replace {mac} dev {vx} dst {} self permanent",
                p.dst
            ));
        }
        if neigh.is_empty() {
            return Ok(());
        }
        cmd::bridge_batch(&fdb).await?;
        cmd::ip_batch(None, &neigh, true).await?;
        local.peers = want;
        Ok(())
    }

    /// Loads the node's ruleset if it changed.
    async fn sync_node_rules(&self, inner: &mut Inner) -> Result<(), NetworkError> {
        let ingress_addr = inner
            .view
            .networks
            .iter()
            .find(|n| n.ingress)
            .filter(|n| inner.nets.contains_key(&n.id))
            .and_then(|n| self.bridge_addr(n));
        let rules =
            self.config
                .balancer
                .node_rules(&inner.view, &self.config.node_id, ingress_addr);
        if rules != inner.node_rules {
            cmd::nft(None, &rules).await?;
            inner.node_rules = rules;
        }
        let want = if ingress_addr.is_some() {
            rules::proxy_ports(&inner.view)
        } else {
            HashMap::new()
        };
        inner.proxies.sync(want).await;
        Ok(())
    }

    fn resolv_conf(&self, task: &Id) -> PathBuf {
        self.config.state_dir.join(format!("{task}.resolv.conf"))
    }
}

/// Tells each task interface's bridge where the task's MAC address is, as
/// a static entry on its veth: the bridge would learn it only once the
/// task sends a frame, and until then it could hold the address on the
/// VXLAN port, from when another node's task had it (addresses are
/// reused), and send the task's frames there. A static entry wins over
/// learning, and goes with the veth.
async fn pin_macs(
    nets: &[(&TaskNetwork, ViewNetwork)],
    veths: &[String],
) -> Result<(), NetworkError> {
    let lines: Vec<String> = nets
        .iter()
        .zip(veths)
        .map(|((a, _), veth)| {
            format!(
                "fdb replace {} dev {veth} master static",
                rules::mac_of(a.addr)
            )
        })
        .collect();
    cmd::bridge_batch(&lines).await
}

#[async_trait]
impl NetworkDriver for LinuxDriver {
    async fn attach(
        &self,
        task: &Task,
        holder: Option<u32>,
    ) -> Result<Option<Sandbox>, NetworkError> {
        if task.networks.is_empty() {
            return Ok(None);
        }
        let mut inner = self.inner.lock().await;
        if let Some(b) = inner.tasks.get(&task.meta.id) {
            return Ok(Some(self.sandbox_of(&task.meta.id, &b.netns)));
        }
        let view = inner.view.clone();
        let mut nets = Vec::new();
        for a in &task.networks {
            let net = view
                .network(&a.network_id)
                .ok_or_else(|| NetworkError::UnknownNetwork(a.network_id.clone()))?
                .clone();
            self.join(&mut inner, &net).await?;
            nets.push((a, net));
        }
        let ns = rules::netns_name(&task.meta.id);
        let veths: Vec<String> = (0..nets.len())
            .map(|i| rules::veth_name(&task.meta.id, i))
            .collect();
        // A sandbox that an earlier run of this node made, for a task that
        // still runs (a container outlives its node's restart), is taken
        // up as it is: its namespace, interfaces and addresses stay, and
        // only what died with that run (DNS, the VIP rules) is made again.
        let intact = netns_path(&ns).exists()
            && veths
                .iter()
                .all(|v| Path::new("/sys/class/net").join(v).exists())
            && holder.is_none_or(|pid| same_netns(&netns_path(&ns), pid));
        if !intact {
            cmd::run("ip", &["netns", "del", &ns], "").await.ok();
            match holder {
                // The runtime's holder's namespace, named as `ip netns`
                // names its own.
                Some(pid) => cmd::run("ip", &["netns", "attach", &ns, &pid.to_string()], "").await,
                None => cmd::run("ip", &["netns", "add", &ns], "").await,
            }?;
        }
        let made = async {
            if intact {
                // A restarted node made its bridges anew: the veths go
                // back onto them.
                let lines: Vec<String> = nets
                    .iter()
                    .zip(&veths)
                    .flat_map(|((_, net), veth)| {
                        [
                            format!("link set {veth} master {}", rules::bridge_name(net.vni)),
                            format!("link set {veth} up"),
                        ]
                    })
                    .collect();
                cmd::ip_batch(None, &lines, false).await?;
                pin_macs(&nets, &veths).await?;
            } else {
                self.make_interfaces(&ns, &nets, &veths).await?;
            }
            let resolv = self.resolv_conf(&task.meta.id);
            std::fs::write(
                &resolv,
                format!("nameserver {RESOLVER_ADDR}\noptions ndots:0\n"),
            )
            .map_err(|e| NetworkError::Failed(format!("{}: {e}", resolv.display())))?;
            let networks: Vec<Id> = nets.iter().map(|(a, _)| a.network_id.clone()).collect();
            let rules = self.config.balancer.task_rules(&view, &networks);
            cmd::nft(Some(&ns), &rules).await?;
            let (udp, tcp) = sockets_in(&netns_path(&ns)).await?;
            let scope: Arc<[Id]> = networks.clone().into();
            let dns = vec![
                tokio::spawn(self.answerer.clone().serve_udp(udp, scope.clone())),
                tokio::spawn(self.answerer.clone().serve_tcp(tcp, scope)),
            ];
            Ok::<_, NetworkError>(TaskBox {
                netns: ns.clone(),
                networks,
                rules,
                dns,
            })
        }
        .await;
        match made {
            Ok(b) => {
                if intact {
                    tracing::info!(task_id = %task.meta.id, "took up the sandbox an earlier run made");
                }
                inner.tasks.insert(task.meta.id.clone(), b);
                Ok(Some(self.sandbox_of(&task.meta.id, &ns)))
            }
            Err(e) => {
                if !intact {
                    cmd::run("ip", &["netns", "del", &ns], "").await.ok();
                }
                Err(e)
            }
        }
    }

    async fn detach(&self, task_id: &Id) -> Result<(), NetworkError> {
        let mut inner = self.inner.lock().await;
        let (ns, interfaces) = match inner.tasks.remove(task_id) {
            Some(b) => {
                for d in &b.dns {
                    d.abort();
                }
                (b.netns, b.networks.len())
            }
            // Made by an earlier run of this node: its veths are not
            // counted, so try the first few names (a missing one is no
            // error in a forced batch).
            None => (rules::netns_name(task_id), 8),
        };
        // The host ends first: whatever still holds the namespace (an
        // open file, a socket), the task's addresses leave the overlay now.
        let veths: Vec<String> = (0..interfaces)
            .map(|i| format!("link del {}", rules::veth_name(task_id, i)))
            .collect();
        cmd::ip_batch(None, &veths, true).await.ok();
        let _ = std::fs::remove_file(self.resolv_conf(task_id));
        if netns_path(&ns).exists() {
            // Deleting the namespace deletes the veths in it, and so
            // their host ends.
            cmd::run("ip", &["netns", "del", &ns], "").await?;
        }
        Ok(())
    }

    async fn update(&self, view: Arc<NetworkView>) -> Result<(), NetworkError> {
        let asked = std::time::Instant::now();
        let mut inner = self.inner.lock().await;
        if *inner.view == *view {
            return Ok(());
        }
        inner.view = view.clone();
        let began = std::time::Instant::now();
        let queued = began - asked;
        self.names.set(Arc::new(NameTable::of(&view)));
        let mut first_error = None;
        // Every node joins the ingress network, for the mesh.
        if let Some(ingress) = view.networks.iter().find(|n| n.ingress)
            && self.bridge_addr(ingress).is_some()
            && let Err(e) = self.join(&mut inner, ingress).await
        {
            first_error.get_or_insert(e);
        }
        let joined: Vec<ViewNetwork> = view
            .networks
            .iter()
            .filter(|n| inner.nets.contains_key(&n.id))
            .cloned()
            .collect();
        for net in &joined {
            if let Err(e) = self.sync_peers(&mut inner, net).await {
                first_error.get_or_insert(e);
            }
        }
        let ids: Vec<Id> = inner.tasks.keys().cloned().collect();
        for id in ids {
            let b = &inner.tasks[&id];
            let rules = self.config.balancer.task_rules(&view, &b.networks);
            if rules != b.rules {
                tracing::debug!(task_id = %id, %rules, "a task's VIP rules change");
                let ns = b.netns.clone();
                match cmd::nft(Some(&ns), &rules).await {
                    Ok(()) => {
                        if let Some(b) = inner.tasks.get_mut(&id) {
                            b.rules = rules;
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        if let Err(e) = self.sync_node_rules(&mut inner).await {
            first_error.get_or_insert(e);
        }
        tracing::debug!(
            serving = view.endpoints.iter().filter(|e| e.serving).count(),
            took = ?began.elapsed(),
            ?queued,
            "network view applied"
        );
        first_error.map_or(Ok(()), Err)
    }
}

impl LinuxDriver {
    /// Gives namespace `ns` an interface on each of `nets` (a veth named
    /// as in `veths`, its host end on the network's bridge), its
    /// addresses and its default route.
    async fn make_interfaces(
        &self,
        ns: &str,
        nets: &[(&TaskNetwork, ViewNetwork)],
        veths: &[String],
    ) -> Result<(), NetworkError> {
        let mut host = Vec::new();
        let mut inside = vec!["link set lo up".to_owned()];
        for (i, ((a, net), veth)) in nets.iter().zip(veths).enumerate() {
            host.push(format!("link del {veth}"));
            host.push(format!(
                "link add {veth} mtu {} type veth peer name eth{i} netns {ns}",
                self.mtu
            ));
            host.push(format!(
                "link set {veth} master {}",
                rules::bridge_name(net.vni)
            ));
            host.push(format!("link set {veth} up"));
            inside.push(format!(
                "link set eth{i} address {} mtu {}",
                rules::mac_of(a.addr),
                self.mtu
            ));
            inside.push(format!("addr add {}/{} dev eth{i}", a.addr, a.prefix));
            inside.push(format!("link set eth{i} up"));
        }
        // The default route: the first network that leads out.
        let out = nets
            .iter()
            .find(|(_, n)| !n.internal && !n.ingress)
            .map(|(_, n)| Some(n.gateway))
            .or_else(|| {
                nets.iter()
                    .find(|(_, n)| n.ingress)
                    .map(|(_, n)| self.bridge_addr(n))
            })
            .flatten();
        if let Some(gw) = out {
            inside.push(format!("route add default via {gw}"));
        }
        // `link del` of a veth that does not exist fails: tolerate it.
        let (dels, adds): (Vec<String>, Vec<String>) =
            host.into_iter().partition(|l| l.starts_with("link del"));
        cmd::ip_batch(None, &dels, true).await.ok();
        cmd::ip_batch(None, &adds, false).await?;
        cmd::ip_batch(Some(ns), &inside, false).await?;
        pin_macs(nets, veths).await
    }

    fn sandbox_of(&self, task: &Id, ns: &str) -> Sandbox {
        Sandbox {
            netns: netns_path(ns),
            resolv_conf: Some(self.resolv_conf(task)),
        }
    }
}

/// Where `ip netns` keeps a namespace.
fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// On a host where Docker runs, iptables' FORWARD policy is DROP (Docker
/// sets it, and its `br_netfilter` sends bridged frames through it too),
/// which would drop the overlays' traffic and the mesh's. Docker leaves
/// the chain `DOCKER-USER` to its users; at its top go, in order:
/// traffic from the overlays to Docker's own bridges (`docker0`, `br-*`)
/// goes on to Docker's rules (so tasks reach no unpublished port of a
/// local container), and the rest of the overlays' traffic, in or out,
/// is accepted. The driver's own nftables rules (isolation between
/// networks) still apply, as every base chain must accept a packet.
/// Without iptables or that chain (or when dockerd starts after the
/// node), nothing is done.
async fn let_docker_forward() {
    if cmd::run("iptables", &["-S", "DOCKER-USER"], "")
        .await
        .is_err()
    {
        return;
    }
    let rules: [&[&str]; 4] = [
        &["-i", "swb+", "-o", "docker0", "-j", "RETURN"],
        &["-i", "swb+", "-o", "br-+", "-j", "RETURN"],
        &["-i", "swb+", "-j", "ACCEPT"],
        &["-o", "swb+", "-j", "ACCEPT"],
    ];
    // Those of an earlier run go first, so that the order holds.
    for rule in rules {
        let delete: Vec<&str> = ["-D", "DOCKER-USER"].iter().chain(rule).copied().collect();
        while cmd::run("iptables", &delete, "").await.is_ok() {}
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = (i + 1).to_string();
        let insert: Vec<&str> = ["-I", "DOCKER-USER", at.as_str()]
            .iter()
            .chain(rule.iter())
            .copied()
            .collect();
        if let Err(e) = cmd::run("iptables", &insert, "").await {
            tracing::warn!(error = %e, "cannot let the overlays through Docker's FORWARD policy");
            return;
        }
    }
}

/// Whether the namespace bound at `path` is process `pid`'s.
fn same_netns(path: &Path, pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        std::fs::metadata(format!("/proc/{pid}/ns/net")),
    ) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Whether this process may make interfaces and namespaces.
async fn probe() -> Result<(), NetworkError> {
    let name = format!("swprobe{}", std::process::id() % 100_000);
    let made = cmd::ip_batch(None, &[format!("link add {name} type bridge")], false).await;
    match made {
        Ok(()) => {
            cmd::ip_batch(None, &[format!("link del {name}")], true)
                .await
                .ok();
            Ok(())
        }
        Err(NetworkError::Unsupported(why)) => Err(NetworkError::Unsupported(why)),
        Err(e) => Err(NetworkError::Unsupported(format!(
            "this node cannot make network interfaces ({e}): tasks run on the host's network, where overlay networks, service DNS and VIPs do not reach them. Run the node as root (or with CAP_NET_ADMIN and CAP_SYS_ADMIN) to give tasks networks"
        ))),
    }
}

/// The MTU of the interface that holds `addr`; 1500 if unknown.
async fn underlay_mtu(addr: IpAddr) -> u32 {
    let Ok(out) = cmd::run("ip", &["-o", "addr", "show"], "").await else {
        return 1500;
    };
    let needle = format!(" {addr}/");
    out.lines()
        .find(|l| l.contains(&needle))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|ifname| std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu")).ok())
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(1500)
}

/// A UDP socket and a TCP listener at the resolver address inside the
/// namespace at `netns`, made on a thread of their own (a socket belongs
/// to the namespace it was made in; the thread's namespace then goes
/// with the thread).
async fn sockets_in(
    netns: &Path,
) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener), NetworkError> {
    let path = netns.to_owned();
    let made = tokio::task::spawn_blocking(move || {
        std::thread::scope(|s| {
            s.spawn(
                || -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
                    let f = std::fs::File::open(&path)?;
                    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)?;
                    let at = SocketAddr::from((RESOLVER_ADDR, 53));
                    let udp = std::net::UdpSocket::bind(at)?;
                    let tcp = std::net::TcpListener::bind(at)?;
                    udp.set_nonblocking(true)?;
                    tcp.set_nonblocking(true)?;
                    Ok((udp, tcp))
                },
            )
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the socket thread panicked")))
        })
    })
    .await
    .map_err(|e| NetworkError::Failed(e.to_string()))?
    .map_err(|e| NetworkError::Failed(format!("DNS sockets in {}: {e}", netns.display())))?;
    let udp =
        tokio::net::UdpSocket::from_std(made.0).map_err(|e| NetworkError::Failed(e.to_string()))?;
    let tcp = tokio::net::TcpListener::from_std(made.1)
        .map_err(|e| NetworkError::Failed(e.to_string()))?;
    Ok((udp, tcp))
}
