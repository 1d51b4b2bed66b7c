//! The state of one scheduling call: what it knows of each node and what
//! it has placed so far.

use std::collections::{BTreeMap, HashMap, HashSet};

use swarm_core::model::{Protocol, Resources};
use swarm_core::sched::NodeInfo;

use crate::filter::{Rejection, Requirements};
use crate::memo::{Memo, Readiness};
use crate::plug::{Candidate, Ranking};
use crate::rank::{Key, Layout};

/// What one scheduling call knows of a node, kept small and contiguous so
/// that filtering a batch rarely has to follow the pointer to the node.
#[derive(Debug, Clone, Copy)]
struct Load {
    /// CPU and memory not yet reserved, including by this call.
    available: Resources,
    /// Active tasks of all services, including this call's (capped).
    total: u32,
    /// Tasks of the current service placed by this call.
    service_placed: u32,
    /// The node's index in the caller's slice.
    index: u32,
    /// Whether the node takes tasks.
    readiness: Readiness,
    /// Whether the node has per-service task counts or failures.
    per_service: bool,
    /// Whether `total` changed since the last [`Cluster::take_moved`].
    moved: bool,
}

/// How many nodes do not take tasks, by reason.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Unready {
    /// Nodes whose state is not `ready`.
    pub not_ready: usize,
    /// Ready nodes that are drained.
    pub drained: usize,
    /// Ready nodes that are paused.
    pub paused: usize,
}

/// The nodes and what this call has placed on them so far.
///
/// Inside a call a node is known by its position among the nodes sorted by
/// id (the tie-break of the ranking), so that placing tasks on equally
/// loaded nodes walks this state in order.
pub(crate) struct Cluster<'a> {
    /// The caller's nodes.
    nodes: &'a [NodeInfo],
    /// By position.
    loads: Vec<Load>,
    /// The positions of the ready and active nodes, in order.
    ready: Vec<u32>,
    /// How many nodes are not.
    unready: Unready,
    /// How ranks are packed for this many nodes.
    pub layout: Layout,
    /// Host-mode ports taken by this call: (position, protocol, port).
    ports: HashSet<(u32, Protocol, u32)>,
    /// Generic resources reserved by this call's placements, by position
    /// and kind (only tasks that reserve some touch it).
    generic: HashMap<u32, BTreeMap<String, u64>>,
    /// The positions whose `service_placed` is not zero.
    touched: Vec<u32>,
    /// The positions whose `total` changed since the last
    /// [`Cluster::take_moved`], with their total before.
    moved: Vec<(u32, u32)>,
}

impl<'a> Cluster<'a> {
    /// The cluster before any placement, bringing `memo` up to `nodes` on
    /// the way.
    pub fn new(nodes: &'a [NodeInfo], memo: &mut Memo) -> Self {
        // Read the loads in the caller's order, which is likelier to be the
        // order they sit in memory, then arrange them by id. The nodes'
        // own objects are read only when they changed: the memo has what
        // is needed of them.
        let mut by_index: Vec<Load> = Vec::with_capacity(nodes.len());
        memo.refresh_with(nodes, |index, info, node| {
            by_index.push(Load {
                available: node.capacity.saturating_sub(&info.reserved),
                total: cap(info.tasks),
                service_placed: 0,
                index: index as u32,
                readiness: node.readiness,
                per_service: !info.tasks_by_service.is_empty() || !info.recent_failures.is_empty(),
                moved: false,
            });
        });
        let loads: Vec<Load> = if memo.in_order {
            by_index
        } else {
            memo.by_position
                .iter()
                .map(|&i| by_index[i as usize])
                .collect()
        };
        let mut ready = Vec::with_capacity(loads.len());
        let mut unready = Unready::default();
        for (p, load) in loads.iter().enumerate() {
            match load.readiness {
                Readiness::Ready => ready.push(p as u32),
                Readiness::NotReady => unready.not_ready += 1,
                Readiness::Drained => unready.drained += 1,
                Readiness::Paused => unready.paused += 1,
            }
        }
        Self {
            nodes,
            loads,
            ready,
            unready,
            layout: Layout::new(nodes.len()),
            ports: HashSet::new(),
            generic: HashMap::new(),
            touched: Vec::new(),
            moved: Vec::new(),
        }
    }

    /// The caller's nodes.
    pub fn nodes(&self) -> &'a [NodeInfo] {
        self.nodes
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.loads.len()
    }

    /// The index in the caller's slice of the node at position `p`.
    pub fn index(&self, p: usize) -> usize {
        self.loads[p].index as usize
    }

    /// The node at position `p`.
    pub fn node(&self, p: usize) -> &'a NodeInfo {
        &self.nodes[self.loads[p].index as usize]
    }

    /// The positions of the nodes that are ready and active, in order.
    pub fn ready(&self) -> &[u32] {
        &self.ready
    }

    /// How many nodes are not ready and active, by reason.
    pub fn unready(&self) -> Unready {
        self.unready
    }

    /// Active tasks of all services on the node at `p`, including this
    /// call's (capped).
    pub fn total(&self, p: usize) -> u32 {
        self.loads[p].total
    }

    /// Whether the node at `p` has task counts or failures for some
    /// service.
    pub fn has_per_service(&self, p: usize) -> bool {
        self.loads[p].per_service
    }

    /// The positions of the nodes with tasks of the current service
    /// placed by this call.
    pub fn touched(&self) -> &[u32] {
        &self.touched
    }

    /// The positions whose total changed since the last `take_moved`, each
    /// with its total before; forgets them.
    pub fn take_moved(&mut self) -> Vec<(u32, u32)> {
        for &(p, _) in &self.moved {
            self.loads[p as usize].moved = false;
        }
        std::mem::take(&mut self.moved)
    }

    /// Starts counting the placements of another service.
    pub fn next_service(&mut self) {
        for &p in &self.touched {
            self.loads[p as usize].service_placed = 0;
        }
        self.touched.clear();
    }

    /// Active tasks of `service` on the node at `p`, including this call's.
    pub fn service_tasks(&self, p: usize, service: &str) -> u32 {
        let load = &self.loads[p];
        let existing = if load.per_service {
            cap(self.node(p).service_tasks(service))
        } else {
            0
        };
        existing.saturating_add(load.service_placed)
    }

    /// The rank of the node at `p` for a task of `req` that has
    /// `service_tasks` tasks there; it ranks last when the service failed
    /// there at least `max_failures` times.
    pub fn key(
        &self,
        p: usize,
        req: &Requirements<'_>,
        service_tasks: u32,
        max_failures: u32,
    ) -> Key {
        let failing = self.failing(p, req, max_failures);
        self.layout
            .key(failing, service_tasks, self.loads[p].total, p as u32)
    }

    /// Whether the service failed at least `max_failures` times on the
    /// node at `p` lately.
    fn failing(&self, p: usize, req: &Requirements<'_>, max_failures: u32) -> bool {
        self.loads[p].per_service
            && self
                .node(p)
                .recent_failures
                .get(req.service)
                .is_some_and(|&f| f >= max_failures)
    }

    /// The rank of the node at `p` for a task of `req` by `ranking`.
    pub fn ranked_key(
        &self,
        p: usize,
        req: &Requirements<'_>,
        max_failures: u32,
        ranking: &Ranking,
    ) -> Key {
        let node = Candidate {
            cluster: self,
            req,
            p,
        };
        let rank = ranking.rank(&node, req.task);
        self.layout
            .ranked(self.failing(p, req, max_failures), rank, p as u32)
    }

    /// Records a task of `req` placed on the node at `p`, and says whether
    /// the node can take another task of `req`.
    pub fn place(&mut self, p: usize, req: &Requirements<'_>) -> bool {
        let load = &mut self.loads[p];
        if !load.moved {
            load.moved = true;
            self.moved.push((p as u32, load.total));
        }
        load.total = load.total.saturating_add(1);
        if load.service_placed == 0 {
            self.touched.push(p as u32);
        }
        load.service_placed += 1;
        load.available = load.available.saturating_sub(&req.reservations);
        let mut fits = load.available.fits(&req.reservations);
        for &(proto, port) in &req.host_ports {
            self.ports.insert((p as u32, proto, port));
        }
        if !req.generic.is_empty() {
            let placed = self.generic.entry(p as u32).or_default();
            for (kind, n) in req.generic {
                let sum = placed.entry(kind.clone()).or_default();
                *sum = sum.saturating_add(*n);
            }
            fits &= self.generic_fits(p, req);
        }
        req.host_ports.is_empty()
            && fits
            && (req.max_per_node == 0
                || u64::from(self.service_tasks(p, req.service)) < req.max_per_node)
    }

    /// Records a task of `req` placed on the node at `p`, and says whether
    /// the node can take another task of the batch: what [`Self::place`]
    /// says under the stock filters, and the whole chain otherwise (an
    /// app's filter may turn the node away now, and a built-in that was
    /// removed or replaced must not).
    pub fn settle(&mut self, p: usize, req: &Requirements<'_>) -> bool {
        let fits = self.place(p, req);
        if req.filters.stock {
            fits
        } else {
            self.check(p, req, self.service_tasks(p, req.service))
                .is_ok()
        }
    }

    /// Whether the node at `p` is ready and active, or why not.
    pub fn readiness(&self, p: usize) -> Result<(), Rejection> {
        match self.loads[p].readiness {
            Readiness::Ready => Ok(()),
            Readiness::NotReady => Err(Rejection::NotReady),
            Readiness::Drained => Err(Rejection::Drained),
            Readiness::Paused => Err(Rejection::Paused),
        }
    }

    /// CPU and memory not yet reserved on the node at `p`, including by
    /// this call.
    pub fn available(&self, p: usize) -> Resources {
        self.loads[p].available
    }

    /// Whether the node at `p` has the generic resources `req` reserves
    /// free, this call's placements counted.
    pub fn generic_fits(&self, p: usize, req: &Requirements<'_>) -> bool {
        if req.generic.is_empty() {
            return true;
        }
        let placed = self.generic.get(&(p as u32));
        let node = self.node(p);
        req.generic.iter().all(|(kind, &n)| {
            let used = placed.and_then(|m| m.get(kind)).copied().unwrap_or(0);
            node.generic_free(kind).saturating_sub(used) >= n
        })
    }

    /// Whether this call placed a task publishing `port` on the node at `p`.
    pub fn port_taken(&self, p: usize, port: (Protocol, u32)) -> bool {
        self.ports.contains(&(p as u32, port.0, port.1))
    }
}

/// A count as `u32`, capped well below the limit.
fn cap(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX).min(u32::MAX / 2)
}
