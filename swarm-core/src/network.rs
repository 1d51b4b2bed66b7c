//! The node side of networking, as the agent sees it: the cluster's
//! [`NetworkView`] that every node gets through its dispatcher session,
//! the [`Sandbox`] a task runs in, and the [`NetworkDriver`] trait that
//! makes sandboxes and keeps a node's DNS, load balancing and overlay
//! peers following the view. swarm-net implements the driver on Linux;
//! [`HostNetwork`] is the no-op one (tasks share the host's network).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Id;
use crate::model::{EndpointMode, PortConfig, Subnet, Task, TaskNetwork, TaskState};
use crate::store::State;

/// What every node needs to know to route, resolve and balance: the
/// networks, the nodes' underlay addresses, the services' names and VIPs,
/// and the tasks that may take traffic. Computed from the store by
/// [`NetworkView::of`], pushed to every node through its dispatcher
/// session. Holds nothing secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkView {
    /// The overlay networks that have addresses.
    pub networks: Vec<ViewNetwork>,
    /// Every node with a known underlay address.
    pub nodes: Vec<ViewNode>,
    /// Every service on a network.
    pub services: Vec<ViewService>,
    /// The unfinished tasks on networks, each saying whether it may take
    /// new traffic.
    pub endpoints: Vec<ViewEndpoint>,
    /// The UDP port of the overlay's VXLAN traffic.
    pub data_path_port: u16,
}

/// A network, as nodes need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewNetwork {
    /// Its id.
    pub id: Id,
    /// Its name.
    pub name: String,
    /// Its subnet.
    pub subnet: Subnet,
    /// Its gateway: each node's bridge holds it.
    pub gateway: Ipv4Addr,
    /// Its VXLAN id.
    pub vni: u32,
    /// No route out of the overlay.
    pub internal: bool,
    /// The routing mesh's network.
    pub ingress: bool,
    /// Each node's own address on it (ingress only): the source address
    /// of the mesh's forwarded connections.
    pub node_addrs: Vec<(Id, Ipv4Addr)>,
}

/// A node's underlay address: where its VXLAN traffic goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewNode {
    /// Its id.
    pub id: Id,
    /// Its address.
    pub addr: IpAddr,
}

/// A service, as DNS and the balancers need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewService {
    /// Its id.
    pub id: Id,
    /// Its name: a DNS name on each of its networks.
    pub name: String,
    /// VIP or DNS round robin.
    pub mode: EndpointMode,
    /// Its VIP on each network (VIP mode).
    pub vips: Vec<(Id, Ipv4Addr)>,
    /// The networks it is on.
    pub networks: Vec<Id>,
    /// Its extra names, per network.
    pub aliases: Vec<(Id, String)>,
    /// Its published ports.
    pub ports: Vec<PortConfig>,
}

/// An unfinished task on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewEndpoint {
    /// It may take new connections and be resolved: it runs (healthy),
    /// and is still wanted running. A task stops serving as soon as it is
    /// told to stop, before it stops, and drains meanwhile.
    pub serving: bool,
    /// The task.
    pub task_id: Id,
    /// Its service.
    pub service_id: Id,
    /// Its node.
    pub node_id: Id,
    /// Its address on each network, with its aliases there.
    pub networks: Vec<TaskNetwork>,
}

impl NetworkView {
    /// The view of `state`.
    #[must_use]
    pub fn of(state: &State) -> Self {
        let mut networks: Vec<ViewNetwork> = state
            .networks()
            .filter_map(|n| {
                let a = n.addresses?;
                let mut node_addrs: Vec<(Id, Ipv4Addr)> = n
                    .node_addrs
                    .iter()
                    .map(|(id, addr)| (id.clone(), *addr))
                    .collect();
                node_addrs.sort();
                Some(ViewNetwork {
                    id: n.meta.id.clone(),
                    name: n.spec.name.clone(),
                    subnet: a.subnet,
                    gateway: a.gateway,
                    vni: a.vni,
                    internal: n.spec.internal,
                    ingress: n.spec.ingress,
                    node_addrs,
                })
            })
            .collect();
        networks.sort_by(|a, b| a.id.cmp(&b.id));
        let mut nodes: Vec<ViewNode> = state
            .nodes()
            .filter_map(|n| {
                let addr = crate::constraint::node_ip(&n.status.addr)?;
                Some(ViewNode {
                    id: n.meta.id.clone(),
                    addr,
                })
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut services: Vec<ViewService> = state
            .services()
            .filter_map(|s| {
                let nets = crate::manager::required_networks(
                    state,
                    &s.spec.task.networks,
                    &s.spec.endpoint,
                )
                .ok()?;
                if nets.is_empty() {
                    return None;
                }
                Some(ViewService {
                    id: s.meta.id.clone(),
                    name: s.spec.name.clone(),
                    mode: s.spec.endpoint.mode,
                    vips: s
                        .endpoint
                        .virtual_ips
                        .iter()
                        .map(|v| (v.network_id.clone(), v.addr))
                        .collect(),
                    networks: nets.iter().map(|(n, _)| n.meta.id.clone()).collect(),
                    aliases: nets
                        .iter()
                        .flat_map(|(n, aliases)| {
                            aliases.iter().map(|a| (n.meta.id.clone(), a.clone()))
                        })
                        .collect(),
                    ports: s.spec.endpoint.ports.clone(),
                })
            })
            .collect();
        services.sort_by(|a, b| a.id.cmp(&b.id));
        let mut endpoints: Vec<ViewEndpoint> = state
            .tasks()
            .filter(|t| !t.status.state.is_terminal() && !t.networks.is_empty())
            .filter_map(|t| {
                Some(ViewEndpoint {
                    serving: takes_traffic(t),
                    task_id: t.meta.id.clone(),
                    service_id: t.service_id.clone(),
                    node_id: t.node_id.clone()?,
                    networks: t.networks.clone(),
                })
            })
            .collect();
        endpoints.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Self {
            networks,
            nodes,
            services,
            endpoints,
            data_path_port: state.cluster().map_or(4789, |c| c.spec.data_path_port),
        }
    }

    /// A network by id.
    #[must_use]
    pub fn network(&self, id: &Id) -> Option<&ViewNetwork> {
        self.networks.iter().find(|n| &n.id == id)
    }

    /// A node's underlay address.
    #[must_use]
    pub fn node_addr(&self, id: &Id) -> Option<IpAddr> {
        self.nodes.iter().find(|n| &n.id == id).map(|n| n.addr)
    }

    /// The endpoints of a service.
    pub fn endpoints_of<'a>(&'a self, service: &'a Id) -> impl Iterator<Item = &'a ViewEndpoint> {
        self.endpoints
            .iter()
            .filter(move |e| &e.service_id == service)
    }
}

/// Whether a task may take traffic: it runs, it is wanted running, and
/// it is on a network.
#[must_use]
pub fn takes_traffic(t: &Task) -> bool {
    t.status.state == TaskState::Running
        && t.desired_state <= TaskState::Running
        && !t.networks.is_empty()
}

/// Where a task's network lives: what a runtime needs to run the task
/// inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The task's network namespace (a bind mount, `/run/netns/<name>`).
    pub netns: PathBuf,
    /// A `resolv.conf` naming the node's DNS at the task's resolver
    /// address; the runtime shows it to the task as `/etc/resolv.conf`.
    pub resolv_conf: Option<PathBuf>,
}

/// What went wrong attaching a task or following the view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// This node cannot make network namespaces and interfaces (no
    /// privilege); the message says what works instead.
    #[error("{0}")]
    Unsupported(String),
    /// The task names a network this node does not know yet.
    #[error("network {0} is not known on this node yet")]
    UnknownNetwork(Id),
    /// A system call or tool failed.
    #[error("{0}")]
    Failed(String),
}

/// The node side of networking: gives tasks their network namespaces and
/// keeps the node's overlay peers, DNS and load balancing following the
/// cluster's view.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait NetworkDriver: Send + Sync + 'static {
    /// Whether [`NetworkDriver::attach`] gives tasks namespaces of their
    /// own (false: they share the host's network, and the agent does not
    /// ask the runtime for a [holder](crate::runtime::Runtime::hold_sandbox)).
    fn isolates(&self) -> bool {
        true
    }

    /// Makes `task`'s sandbox: a network namespace with an interface on
    /// each of its networks holding its address, and DNS at its resolver
    /// address. With `holder`, the namespace is that process's (one the
    /// runtime started to hold it) rather than a new one. `Ok(None)`: the
    /// task shares the host's network (it is on no network, or this node
    /// cannot make namespaces). Called again for a task that has its
    /// sandbox (after the node restarted, say), it takes up what exists.
    async fn attach(
        &self,
        task: &Task,
        holder: Option<u32>,
    ) -> Result<Option<Sandbox>, NetworkError>;

    /// Removes what [`NetworkDriver::attach`] made for the task; harmless
    /// when there is nothing.
    async fn detach(&self, task_id: &Id) -> Result<(), NetworkError>;

    /// The cluster's view changed: follow it (overlay peers, names, VIP
    /// and mesh backends).
    async fn update(&self, view: Arc<NetworkView>) -> Result<(), NetworkError>;
}

/// Tasks share the host's network: nothing to attach, nothing to follow.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostNetwork;

#[async_trait]
impl NetworkDriver for HostNetwork {
    fn isolates(&self) -> bool {
        false
    }
    async fn attach(
        &self,
        _task: &Task,
        _holder: Option<u32>,
    ) -> Result<Option<Sandbox>, NetworkError> {
        Ok(None)
    }
    async fn detach(&self, _task_id: &Id) -> Result<(), NetworkError> {
        Ok(())
    }
    async fn update(&self, _view: Arc<NetworkView>) -> Result<(), NetworkError> {
        Ok(())
    }
}
