//! What a scheduler remembers of the nodes between calls, so that a call
//! does not read every node again when few have changed.
//!
//! A scheduling loop passes the same nodes call after call, with their
//! loads updated and now and then a node replaced (a new `Arc<Node>`).
//! What a call needs of a node's own object (whether it takes tasks, its
//! capacity) and the order of the nodes by id are kept here, keyed by the
//! node's `Arc`: a call compares pointers, which sit in the caller's
//! slice, and reads a node only when its `Arc` changed. The ids are sorted
//! again only when a node came, went or moved in the slice.

use std::sync::Arc;

use swarm_core::model::{Availability, Node, NodeState, Resources};
use swarm_core::sched::NodeInfo;

use crate::rank::IdOrder;

/// Whether a node takes tasks, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    Ready,
    NotReady,
    Drained,
    Paused,
}

/// What a call needs of a node's own object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Static {
    pub readiness: Readiness,
    pub capacity: Resources,
}

impl Static {
    fn of(node: &Node) -> Self {
        let readiness = if node.status.state != NodeState::Ready {
            Readiness::NotReady
        } else {
            match node.spec.availability {
                Availability::Active => Readiness::Ready,
                Availability::Drain => Readiness::Drained,
                Availability::Pause => Readiness::Paused,
            }
        };
        Self {
            readiness,
            capacity: node.description.resources,
        }
    }
}

/// The nodes of the last call, by their index in the caller's slice.
#[derive(Default)]
pub(crate) struct Memo {
    /// The nodes as last seen (held, so that a pointer cannot be reused
    /// by another node while it is remembered).
    nodes: Vec<Arc<Node>>,
    /// What each needs, by index.
    pub statics: Vec<Static>,
    /// Indices in id order.
    pub by_position: Vec<u32>,
    /// Whether `by_position` is `0, 1, 2, …`: the caller's nodes come
    /// sorted by id, as the scheduling loop keeps them.
    pub in_order: bool,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl Memo {
    /// Brings the memo up to `nodes`.
    pub fn refresh(&mut self, nodes: &[NodeInfo]) {
        self.refresh_with(nodes, |_, _, _| {});
    }

    /// Brings the memo up to `nodes`, handing `visit` each node's index,
    /// its info and what the memo now has of it, in the caller's order:
    /// one pass over the caller's slice does both.
    pub fn refresh_with(
        &mut self,
        nodes: &[NodeInfo],
        mut visit: impl FnMut(usize, &NodeInfo, Static),
    ) {
        if self.nodes.len() != nodes.len() {
            self.nodes = nodes.iter().map(|n| n.node.clone()).collect();
            self.statics = nodes.iter().map(|n| Static::of(&n.node)).collect();
            self.sort(nodes);
            for (i, (info, s)) in nodes.iter().zip(&self.statics).enumerate() {
                visit(i, info, *s);
            }
            return;
        }
        let mut moved = false;
        for (i, ((info, known), s)) in nodes
            .iter()
            .zip(self.nodes.iter_mut())
            .zip(self.statics.iter_mut())
            .enumerate()
        {
            if !Arc::ptr_eq(known, &info.node) {
                moved |= known.meta.id != info.node.meta.id;
                *s = Static::of(&info.node);
                *known = info.node.clone();
            }
            visit(i, info, *s);
        }
        if moved {
            self.sort(nodes);
        }
    }

    fn sort(&mut self, nodes: &[NodeInfo]) {
        self.by_position = IdOrder::new(nodes).by_position;
        self.in_order = self
            .by_position
            .iter()
            .enumerate()
            .all(|(p, &i)| p == i as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_core::model::{Meta, NodeDescription, NodeSpec, NodeStatus};

    fn info(id: &str, cpus: f64) -> NodeInfo {
        NodeInfo::new(Arc::new(Node {
            meta: Meta::new(id.into()),
            spec: NodeSpec::default(),
            description: NodeDescription {
                data_addr: None,
                resources: Resources::new(cpus, 1 << 30),
                ..Default::default()
            },
            status: NodeStatus {
                state: NodeState::Ready,
                ..Default::default()
            },
        }))
    }

    #[test]
    fn follows_replaced_added_and_moved_nodes() {
        let mut memo = Memo::default();
        let mut nodes = vec![info("b", 1.0), info("a", 1.0)];
        memo.refresh(&nodes);
        assert_eq!(memo.by_position, [1, 0]);
        assert!(!memo.in_order);
        // A node replaced by a new object: read again.
        Arc::make_mut(&mut nodes[0].node).spec.availability = Availability::Drain;
        memo.refresh(&nodes);
        assert_eq!(memo.statics[0].readiness, Readiness::Drained);
        assert_eq!(memo.by_position, [1, 0]);
        // Another node in a slot: the order again.
        nodes[0] = info("c", 2.0);
        memo.refresh(&nodes);
        assert_eq!(memo.by_position, [1, 0]);
        assert_eq!(memo.statics[0].capacity, Resources::new(2.0, 1 << 30));
        nodes.swap(0, 1);
        memo.refresh(&nodes);
        assert_eq!(memo.by_position, [0, 1]);
        assert!(memo.in_order);
        nodes.push(info("0", 1.0));
        memo.refresh(&nodes);
        assert_eq!(memo.by_position, [2, 0, 1]);
    }
}
