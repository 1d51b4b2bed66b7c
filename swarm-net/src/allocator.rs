//! The network allocator: the manager's control loop that gives networks
//! their subnets and VXLAN ids, services their virtual IPs, and new tasks
//! their addresses, through an [`AddressManager`].
//!
//! It keeps no state between runs: each run rebuilds the address manager
//! from the snapshot (what networks, services and unfinished tasks hold),
//! so a crash, a lost commit or a new leader never leaks or doubles an
//! address. The core allocator then moves a task whose addresses are
//! recorded from `new` to `pending`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use swarm_core::Id;
use swarm_core::manager::control_loop::{ControlLoop, Dirty, LoopFactory, Next, control_loop};
use swarm_core::manager::required_networks;
use swarm_core::model::{
    EndpointMode, FIRST_VNI, Network, NetworkAddresses, Object, Service, Subnet, Task, TaskNetwork,
    TaskState, VirtualIp,
};
use swarm_core::store::{Change, Commit, Event, State, Store};

use crate::ipam::{AddressManager, Ipam, NetworkAllocation, PoolConfig};

/// The network allocator loop over `store`; see the module docs.
pub struct NetworkAllocator<S> {
    store: S,
    routes: Vec<Subnet>,
}

impl<S: Store> NetworkAllocator<S> {
    /// An allocator whose pool blocks never overlap `routes` (the leader's
    /// own networks, from [`crate::host_routes`]).
    #[must_use]
    pub fn new(store: S, routes: Vec<Subnet>) -> Self {
        Self { store, routes }
    }
}

/// A [`LoopFactory`] for [`swarm_core::manager::Manager::with_loop`]:
/// the network allocator, avoiding `routes`.
pub fn network_allocator<S: Store + Clone + 'static>(routes: Vec<Subnet>) -> LoopFactory<S> {
    control_loop(move |store: &S| NetworkAllocator::new(store.clone(), routes.clone()))
}

/// The pools of the cluster's settings.
fn pools(state: &State) -> PoolConfig {
    state
        .cluster()
        .map_or_else(PoolConfig::default, |c| PoolConfig {
            pools: c
                .spec
                .default_addr_pool
                .iter()
                .map(|p| (*p, c.spec.subnet_size))
                .collect(),
        })
}

/// The address manager holding what `state` records: every network's
/// subnet, every service's VIPs and every unfinished task's addresses.
/// Records that contradict each other are logged and skipped (the first
/// holder keeps the address).
#[must_use]
pub fn restore(state: &State, routes: &[Subnet]) -> Ipam {
    let mut pool = pools(state);
    if pool.validate().is_err() {
        tracing::error!(pools = ?pool.pools, "the cluster's address pools are invalid; using 10.0.0.0/8 in /24s");
        pool = PoolConfig::default();
    }
    let mut used: HashMap<&Id, Vec<std::net::Ipv4Addr>> = HashMap::new();
    for s in state.services() {
        for v in &s.endpoint.virtual_ips {
            used.entry(&v.network_id).or_default().push(v.addr);
        }
    }
    for n in state.networks() {
        for addr in n.node_addrs.values() {
            used.entry(&n.meta.id).or_default().push(*addr);
        }
    }
    for t in state.tasks().filter(|t| holds_addresses(t)) {
        for a in &t.networks {
            used.entry(&a.network_id).or_default().push(a.addr);
        }
    }
    let mut ipam = Ipam::new(pool, routes.iter().copied());
    for n in state.networks() {
        let Some(a) = n.addresses else { continue };
        let alloc = NetworkAllocation {
            subnet: a.subnet,
            gateway: a.gateway,
        };
        if let Err(e) = ipam.adopt(n.meta.id.clone(), alloc) {
            tracing::error!(network = %n.spec.name, error = %e, "recorded network addresses conflict");
            continue;
        }
        for addr in used.remove(&n.meta.id).unwrap_or_default() {
            if let Err(e) = ipam.allocate_exact(&n.meta.id, addr) {
                tracing::error!(network = %n.spec.name, %addr, error = %e, "a recorded address conflicts");
            }
        }
    }
    ipam
}

/// Whether a task's addresses are still taken: it has not finished.
fn holds_addresses(t: &Task) -> bool {
    !t.status.state.is_terminal()
}

/// What one run decides: the objects to write.
#[derive(Debug, Default)]
pub struct Plan {
    /// Networks given addresses, or an error.
    pub networks: Vec<Network>,
    /// Services whose VIPs changed.
    pub services: Vec<Service>,
    /// New tasks given addresses, or an error.
    pub tasks: Vec<Task>,
}

impl Plan {
    /// The plan as store changes.
    #[must_use]
    pub fn changes(self) -> Vec<Change> {
        let n = self.networks.into_iter().map(|o| Change::Update(o.into()));
        let s = self.services.into_iter().map(|o| Change::Update(o.into()));
        let t = self.tasks.into_iter().map(|o| Change::Update(o.into()));
        n.chain(s).chain(t).collect()
    }
}

/// Plans one run over `state` with `ipam` (which holds what `state`
/// records, see [`restore`]): addresses for networks, VIPs for services
/// (before their tasks), then addresses for new tasks. Each service or
/// task gets all of its addresses or none, with an error saying why.
pub fn plan(state: &State, ipam: &mut impl AddressManager) -> Plan {
    let mut out = Plan::default();
    // Networks first: subnets and VXLAN ids.
    let mut vnis: BTreeSet<u32> = state
        .networks()
        .filter_map(|n| n.addresses.map(|a| a.vni))
        .collect();
    let mut networks: HashMap<Id, Arc<Network>> = state
        .networks()
        .map(|n| (n.meta.id.clone(), n.clone()))
        .collect();
    let mut pending: Vec<&Arc<Network>> =
        state.networks().filter(|n| n.addresses.is_none()).collect();
    // Subnets asked for first: a pool block must not take one of them.
    pending.sort_by_key(|n| (n.spec.subnet.is_none(), n.meta.created_at));
    for n in pending {
        let mut n2 = (**n).clone();
        match ipam.create_network(n.meta.id.clone(), n.spec.subnet, n.spec.gateway) {
            Ok(a) => {
                let vni = (FIRST_VNI..)
                    .find(|v| !vnis.contains(v))
                    .unwrap_or(FIRST_VNI);
                vnis.insert(vni);
                n2.addresses = Some(NetworkAddresses {
                    subnet: a.subnet,
                    gateway: a.gateway,
                    vni,
                });
                n2.error = None;
            }
            Err(e) => {
                let why = e.to_string();
                if n.error.as_deref() == Some(why.as_str()) {
                    continue;
                }
                n2.error = Some(why);
            }
        }
        networks.insert(n.meta.id.clone(), Arc::new(n2.clone()));
        out.networks.push(n2);
    }
    // Each node's own address on the ingress network, for the mesh.
    if let Some(n2) = node_addresses(state, &networks, ipam) {
        networks.insert(n2.meta.id.clone(), Arc::new(n2.clone()));
        match out.networks.iter_mut().find(|n| n.meta.id == n2.meta.id) {
            Some(n) => *n = n2,
            None => out.networks.push(n2),
        }
    }
    // Then each service's VIPs.
    let mut endpoints: HashMap<&Id, Option<Service>> = HashMap::new();
    for s in state.services() {
        let planned = service_vips(state, &networks, s, ipam);
        if let Some(p) = &planned {
            out.services.push(p.clone());
        }
        endpoints.insert(&s.meta.id, planned);
    }
    // Then new tasks, once their service has its VIPs.
    let mut new: Vec<&Arc<Task>> = state
        .tasks()
        .filter(|t| t.status.state == TaskState::New && t.desired_state <= TaskState::Running)
        .collect();
    new.sort_by_key(|t| (t.meta.created_at, t.slot));
    for t in new {
        let service = match endpoints.get(&t.service_id) {
            Some(Some(planned)) => planned,
            Some(None) => match state.service(&t.service_id) {
                Some(s) => &**s,
                None => continue,
            },
            None => continue, // its service is gone: the reaper ends it
        };
        if service.endpoint.error.is_some() {
            continue; // the service says why; its tasks wait
        }
        if let Some(t2) = task_addresses(state, &networks, service, t, ipam) {
            out.tasks.push(t2);
        }
    }
    out
}

/// The ingress network with an address for every node, and none for
/// nodes that are gone, if that changed.
fn node_addresses(
    state: &State,
    networks: &HashMap<Id, Arc<Network>>,
    ipam: &mut impl AddressManager,
) -> Option<Network> {
    let ingress = networks.values().find(|n| n.spec.ingress)?;
    ingress.addresses?;
    let mut n2 = (**ingress).clone();
    n2.node_addrs.retain(|node, addr| {
        let keep = state.node(node).is_some();
        if !keep {
            let _ = ipam.release(&ingress.meta.id, *addr);
        }
        keep
    });
    let mut nodes: Vec<&Id> = state.nodes().map(|n| &n.meta.id).collect();
    nodes.sort();
    for node in nodes {
        if n2.node_addrs.contains_key(node) {
            continue;
        }
        match ipam.allocate(&ingress.meta.id) {
            Ok(addr) => {
                n2.node_addrs.insert(node.clone(), addr);
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "no ingress address for a node: the routing mesh cannot forward from it");
                break;
            }
        }
    }
    (n2.node_addrs != ingress.node_addrs).then_some(n2)
}

/// The service's VIPs as they should be, if they changed.
fn service_vips(
    state: &State,
    networks: &HashMap<Id, Arc<Network>>,
    s: &Service,
    ipam: &mut impl AddressManager,
) -> Option<Service> {
    let Ok(need) = required_networks(state, &s.spec.task.networks, &s.spec.endpoint) else {
        return None; // a missing network: the control API and the tasks say so
    };
    let wanted: Vec<Id> = if s.spec.endpoint.mode == EndpointMode::Vip {
        need.iter().map(|(n, _)| n.meta.id.clone()).collect()
    } else {
        Vec::new()
    };
    let mut vips: Vec<VirtualIp> = Vec::new();
    let mut fresh: Vec<(Id, std::net::Ipv4Addr)> = Vec::new();
    let mut error = None;
    for id in &wanted {
        if let Some(v) = s.endpoint.virtual_ips.iter().find(|v| &v.network_id == id) {
            vips.push(v.clone());
            continue;
        }
        let net = &networks[id];
        let Some(a) = net.addresses else {
            error = Some(unaddressed(net));
            break;
        };
        match ipam.allocate(id) {
            Ok(addr) => {
                fresh.push((id.clone(), addr));
                vips.push(VirtualIp {
                    network_id: id.clone(),
                    addr,
                    prefix: a.subnet.prefix(),
                });
            }
            Err(e) => {
                error = Some(format!(
                    "no virtual IP for service {} on network {}: {e}",
                    s.spec.name, net.spec.name
                ));
                break;
            }
        }
    }
    if let Some(why) = error {
        for (id, addr) in fresh {
            let _ = ipam.release(&id, addr);
        }
        if s.endpoint.error.as_deref() == Some(why.as_str()) {
            return None;
        }
        let mut s2 = s.clone();
        s2.endpoint.error = Some(why);
        return Some(s2);
    }
    // VIPs on networks the service left go back to the pool.
    for v in &s.endpoint.virtual_ips {
        if !wanted.contains(&v.network_id) && networks.contains_key(&v.network_id) {
            let _ = ipam.release(&v.network_id, v.addr);
        }
    }
    if vips == s.endpoint.virtual_ips && s.endpoint.error.is_none() {
        return None;
    }
    let mut s2 = s.clone();
    s2.endpoint.virtual_ips = vips;
    s2.endpoint.error = None;
    Some(s2)
}

fn unaddressed(net: &Network) -> String {
    match &net.error {
        Some(e) => format!("network {} has no subnet: {e}", net.spec.name),
        None => format!("network {} has no subnet yet", net.spec.name),
    }
}

/// The task with an address on each of its networks, or with the reason
/// it has none; `None` when nothing changes.
fn task_addresses(
    state: &State,
    networks: &HashMap<Id, Arc<Network>>,
    service: &Service,
    t: &Task,
    ipam: &mut impl AddressManager,
) -> Option<Task> {
    let Ok(need) = required_networks(state, &t.spec.networks, &t.endpoint) else {
        return None; // the core allocator says which network is missing
    };
    if t.endpoint.mode == EndpointMode::Vip
        && need.iter().any(|(n, _)| service.vip(&n.meta.id).is_none())
    {
        return None; // its service's VIPs come first
    }
    let mut attached = Vec::new();
    let mut error = None;
    for (n, aliases) in &need {
        if let Some(a) = t.networks.iter().find(|a| a.network_id == n.meta.id) {
            attached.push(a.clone());
            continue;
        }
        let net = &networks[&n.meta.id];
        let Some(a) = net.addresses else {
            error = Some(unaddressed(net));
            break;
        };
        match ipam.allocate(&n.meta.id) {
            Ok(addr) => attached.push(TaskNetwork {
                network_id: n.meta.id.clone(),
                addr,
                prefix: a.subnet.prefix(),
                aliases: aliases.clone(),
            }),
            Err(e) => {
                error = Some(format!("no address on network {}: {e}", net.spec.name));
                break;
            }
        }
    }
    let mut t2 = t.clone();
    if let Some(why) = error {
        for a in &attached {
            if !t.networks.contains(a) {
                let _ = ipam.release(&a.network_id, a.addr);
            }
        }
        if t.status.err.as_deref() == Some(why.as_str()) {
            return None;
        }
        t2.status.err = Some(why);
        return Some(t2);
    }
    if attached == t.networks {
        return None;
    }
    t2.networks = attached;
    t2.status.err = None;
    Some(t2)
}

impl<S: Store> ControlLoop for NetworkAllocator<S> {
    const NAME: &'static str = "network allocator";

    fn touched(&mut self, commit: &Commit, dirty: &mut Dirty) {
        // Each run looks at everything (it rebuilds from the snapshot), so
        // the only question is whether anything it cares about moved.
        let relevant = commit.events.iter().any(|e| match e {
            Event::Created(o) | Event::Deleted(o) => matches!(
                o,
                Object::Network(_)
                    | Object::Service(_)
                    | Object::Task(_)
                    | Object::Cluster(_)
                    | Object::Node(_)
            ),
            Event::Updated { old, new } => match (old, new) {
                (Object::Task(old), Object::Task(new)) => {
                    new.status.state == TaskState::New
                        || (new.status.state.is_terminal()
                            && !old.status.state.is_terminal()
                            && !new.networks.is_empty())
                }
                (_, o) => matches!(
                    o,
                    Object::Network(_) | Object::Service(_) | Object::Cluster(_)
                ),
            },
        });
        if relevant {
            *dirty = Dirty::everything();
        }
    }

    async fn run(&mut self, state: State, _dirty: Dirty) -> Next {
        let mut ipam = restore(&state, &self.routes);
        let changes = plan(&state, &mut ipam).changes();
        if changes.is_empty() {
            return Next::done();
        }
        match self.store.apply(changes).await {
            Ok(_) => Next::done(),
            Err(e) => {
                tracing::debug!(error = %e, "network allocation not applied; retrying");
                Next::retry(Duration::from_millis(50), Dirty::everything())
            }
        }
    }
}

#[cfg(test)]
mod tests;
