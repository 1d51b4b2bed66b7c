//! Spread preferences: a tree of heaps.
//!
//! With preferences `spread=A, spread=B`, the eligible nodes are grouped by
//! their value of `A`, each group by its value of `B`, and so on; a node
//! without the label has the empty value, a group of its own, as in Docker.
//! Each branch counts the tasks of the service on its nodes (existing ones
//! and those placed by this call). A task goes down, at every level, into
//! the branch with the fewest tasks (ties go to the smaller value), and
//! lands on the best-ranked node of the leaf it reaches. Inner branches keep
//! their children in a heap by (tasks, value), leaves keep their nodes in a
//! heap by [rank](crate::rank), so each placement costs
//! `O(depth × log(width))`.
//!
//! Without preferences the tree is a single leaf holding every eligible
//! node.

use std::collections::HashMap;

use crate::cluster::Cluster;
use crate::heap::Heap;
use crate::rank::Key;
use swarm_core::constraint::Attribute;

/// The values of an attribute on every node, as small integers numbered in
/// the order of the values, computed once per call.
#[derive(Debug)]
pub(crate) struct Column {
    /// The value number of each node, by position.
    of_node: Vec<u32>,
    /// How many distinct values there are.
    distinct: usize,
}

/// The [`Column`]s of the attributes used by this call's preferences.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    by_attribute: HashMap<Attribute, Column>,
}

impl Columns {
    /// Computes the column of `attribute`, unless it is known already.
    pub fn load(&mut self, attribute: &Attribute, cluster: &Cluster<'_>) {
        if self.by_attribute.contains_key(attribute) {
            return;
        }
        let mut numbers: HashMap<&str, u32> = HashMap::new();
        // Read the nodes in the caller's order, which is likelier to be the
        // order they sit in memory.
        let by_index: Vec<u32> = cluster
            .nodes()
            .iter()
            .map(|info| {
                let next = numbers.len() as u32;
                *numbers.entry(attribute.value(&info.node)).or_insert(next)
            })
            .collect();
        // Renumber in value order, and arrange by position.
        let mut values: Vec<(&str, u32)> = numbers.into_iter().collect();
        values.sort_unstable();
        let mut renumber = vec![0; values.len()];
        for (order, &(_, first_seen)) in values.iter().enumerate() {
            renumber[first_seen as usize] = order as u32;
        }
        let of_node = (0..cluster.len())
            .map(|p| renumber[by_index[cluster.index(p)] as usize])
            .collect();
        self.by_attribute.insert(
            attribute.clone(),
            Column {
                of_node,
                distinct: values.len(),
            },
        );
    }

    /// The column of `attribute`, once [loaded](Self::load).
    pub fn get(&self, attribute: &Attribute) -> &Column {
        &self.by_attribute[attribute]
    }
}

/// A branch: (tasks of the service, value number, branch).
type Child = (u64, u32, u32);

enum Branch {
    /// A level of the spread: children by tasks, then value.
    Inner(Heap<Child>),
    /// The nodes sharing every spread value: by rank.
    Leaf(Heap<Key>),
}

/// The eligible nodes of a batch, arranged for spreading.
pub(crate) struct Tree {
    /// The root is branch 0.
    branches: Vec<Branch>,
    /// Scratch: the inner branches the current descent went through.
    path: Vec<u32>,
}

impl Tree {
    /// Arranges `eligible` nodes, each as (position, rank, tasks of the
    /// service), by their values in `levels` (outermost first).
    pub fn build(
        levels: &[&Column],
        eligible: impl IntoIterator<Item = (usize, Key, u32)>,
    ) -> Self {
        let Some((first, deeper)) = levels.split_first() else {
            let keys: Vec<Key> = eligible.into_iter().map(|(_, key, _)| key).collect();
            return Self {
                branches: vec![Branch::Leaf(Heap::from_vec(keys))],
                path: Vec::new(),
            };
        };
        struct Draft {
            value: u32,
            parent: u32,
            tasks: u64,
            /// For leaves: their nodes.
            keys: Vec<Key>,
        }
        const NONE: u32 = u32::MAX;
        let mut drafts = vec![Draft {
            value: 0,
            parent: NONE,
            tasks: 0,
            keys: Vec::new(),
        }];
        // The outermost level by value, the deeper ones by (parent, value).
        let mut outer = vec![NONE; first.distinct];
        let mut inner: HashMap<(u32, u32), u32> = HashMap::new();
        for (i, key, tasks) in eligible {
            let tasks = u64::from(tasks);
            drafts[0].tasks += tasks;
            let value = first.of_node[i];
            let mut b = outer[value as usize];
            if b == NONE {
                b = drafts.len() as u32;
                outer[value as usize] = b;
                drafts.push(Draft {
                    value,
                    parent: 0,
                    tasks: 0,
                    keys: Vec::new(),
                });
            }
            drafts[b as usize].tasks += tasks;
            for column in deeper {
                let value = column.of_node[i];
                let parent = b;
                b = *inner.entry((parent, value)).or_insert_with(|| {
                    drafts.push(Draft {
                        value,
                        parent,
                        tasks: 0,
                        keys: Vec::new(),
                    });
                    (drafts.len() - 1) as u32
                });
                drafts[b as usize].tasks += tasks;
            }
            drafts[b as usize].keys.push(key);
        }
        let mut children: Vec<Vec<Child>> = drafts.iter().map(|_| Vec::new()).collect();
        for (b, d) in drafts.iter().enumerate().skip(1) {
            children[d.parent as usize].push((d.tasks, d.value, b as u32));
        }
        let branches = drafts
            .into_iter()
            .zip(children)
            .map(|(d, children)| {
                if children.is_empty() && d.parent != NONE {
                    Branch::Leaf(Heap::from_vec(d.keys))
                } else {
                    Branch::Inner(Heap::from_vec(children))
                }
            })
            .collect();
        Self {
            branches,
            path: Vec::new(),
        }
    }

    /// Places one task: descends into the least loaded branches to the best
    /// node of a leaf, and hands its rank to `settle`, which records the
    /// placement and returns the node's new rank if it can take another
    /// task of the batch (`None` drops it). Returns the chosen node's rank
    /// before the placement, or `None` when no node is left.
    pub fn pick(&mut self, settle: impl FnOnce(Key) -> Option<Key>) -> Option<Key> {
        loop {
            self.path.clear();
            let mut b = 0u32;
            let leaf_has_nodes = loop {
                match &self.branches[b as usize] {
                    Branch::Inner(heap) => match heap.peek() {
                        Some((_, _, child)) => {
                            self.path.push(b);
                            b = child;
                        }
                        None => break false,
                    },
                    Branch::Leaf(heap) => break !heap.is_empty(),
                }
            };
            if !leaf_has_nodes {
                // `b` has no nodes left: forget it, and look again.
                let &parent = self.path.last()?;
                if let Branch::Inner(heap) = &mut self.branches[parent as usize] {
                    heap.pop();
                }
                continue;
            }
            let Branch::Leaf(heap) = &mut self.branches[b as usize] else {
                unreachable!()
            };
            let key = heap.peek().expect("the leaf has nodes");
            match settle(key) {
                Some(next) => heap.replace_top(next),
                None => {
                    heap.pop();
                }
            }
            // Each branch on the path is still its parent's first child:
            // count the task there and let it sink to its place.
            for &p in &self.path {
                if let Branch::Inner(heap) = &mut self.branches[p as usize]
                    && let Some((tasks, value, child)) = heap.peek()
                {
                    heap.replace_top((tasks + 1, value, child));
                }
            }
            return Some(key);
        }
    }
}
