//! Indexes that spare a batch without spread preferences from looking at
//! every node.
//!
//! For a given service, a node that has no task of it and no failures of
//! it ranks by its total tasks, then by id: the same order for every such
//! service. [`LoadOrder`] keeps the ready nodes in that order across the
//! batches of a call; [`ServiceNodes`] lists, per service, the nodes that
//! have tasks or failures of it, which rank on their own. A batch then
//! starts from its service's nodes and draws the others from the load
//! order only as far as its tasks need: placing `k` tasks costs about
//! `O((k + s) log N)` for `s` nodes running the service, rather than
//! `O(N)`, unless the filters turn many nodes away.

use std::collections::{BTreeSet, HashMap};

use crate::cluster::Cluster;

/// The ready nodes by (total tasks, position): a sorted list made once,
/// and the nodes that moved since, kept apart in a small ordered set (their
/// entries in the list are skipped), so that neither building it nor
/// following a call's placements costs a tree of every node.
pub(crate) struct LoadOrder {
    /// `total << 32 | position` of the ready nodes as of the last build.
    base: Vec<u64>,
    /// The nodes that moved since, by (total, position).
    moved: BTreeSet<(u32, u32)>,
    /// By position: the node's total in `moved`, or [`STILL`] when it has
    /// not moved (its entry in `base` holds).
    moved_total: Vec<u32>,
    /// Every entry of `base` before this one has moved: walks start here.
    start: usize,
}

/// A node that has not moved since the list was made.
const STILL: u32 = u32::MAX;

impl LoadOrder {
    /// The ready nodes of `cluster` as they are now.
    pub fn new(cluster: &mut Cluster<'_>) -> Self {
        cluster.take_moved();
        let mut base: Vec<u64> = cluster
            .ready()
            .iter()
            .map(|&p| (u64::from(cluster.total(p as usize)) << 32) | u64::from(p))
            .collect();
        // Equal loads come in position order already.
        if !base.is_sorted() {
            base.sort_unstable();
        }
        Self {
            base,
            moved: BTreeSet::new(),
            moved_total: vec![STILL; cluster.len()],
            start: 0,
        }
    }

    /// The ready nodes, least loaded first, as (total tasks, position).
    pub fn iter(&self) -> Iter<'_> {
        let mut moved = self.moved.iter();
        Iter {
            order: self,
            at: self.start,
            next_moved: moved.next().copied(),
            moved,
        }
    }

    /// Catches up with the placements made since the last update.
    pub fn update(&mut self, cluster: &mut Cluster<'_>) {
        let moved = cluster.take_moved();
        // Many at once: a new list costs less than moving them one by one.
        // Otherwise the moved ones join the set, however many there are
        // by then.
        if moved.len() > self.base.len() / 4 {
            *self = Self::new(cluster);
            return;
        }
        for (p, before) in moved {
            let known = &mut self.moved_total[p as usize];
            let old = if *known == STILL { before } else { *known };
            self.moved.remove(&(old, p));
            let now = cluster.total(p as usize);
            self.moved.insert((now, p));
            *known = now;
        }
        // The least loaded nodes move first: skip them once, not on every
        // walk.
        while let Some(&k) = self.base.get(self.start) {
            if self.moved_total[(k as u32) as usize] == STILL {
                break;
            }
            self.start += 1;
        }
    }
}

/// The walk of a [`LoadOrder`]: the list, skipping the nodes that moved,
/// merged with the moved ones.
pub(crate) struct Iter<'a> {
    order: &'a LoadOrder,
    /// The next entry of the list to look at.
    at: usize,
    next_moved: Option<(u32, u32)>,
    moved: std::collections::btree_set::Iter<'a, (u32, u32)>,
}

impl Iterator for Iter<'_> {
    type Item = (u32, u32);

    #[inline]
    fn next(&mut self) -> Option<(u32, u32)> {
        let base = &self.order.base;
        // The next entry of the list that still holds.
        let listed = loop {
            let Some(&k) = base.get(self.at) else {
                break None;
            };
            let entry = ((k >> 32) as u32, k as u32);
            if self.order.moved.is_empty() || self.order.moved_total[entry.1 as usize] == STILL {
                break Some(entry);
            }
            self.at += 1;
        };
        match (listed, self.next_moved) {
            (Some(l), Some(m)) if m < l => {
                self.next_moved = self.moved.next().copied();
                Some(m)
            }
            (Some(l), _) => {
                self.at += 1;
                Some(l)
            }
            (None, Some(m)) => {
                self.next_moved = self.moved.next().copied();
                Some(m)
            }
            (None, None) => None,
        }
    }
}

/// Per service, the positions of the nodes that have tasks or failures of
/// it (a node may be listed twice).
pub(crate) struct ServiceNodes<'a> {
    by_service: HashMap<&'a str, Vec<u32>>,
}

impl<'a> ServiceNodes<'a> {
    /// Reads the per-service counts of every node.
    pub fn new(cluster: &Cluster<'a>) -> Self {
        let mut by_service: HashMap<&'a str, Vec<u32>> = HashMap::new();
        for p in (0..cluster.len()).filter(|&p| cluster.has_per_service(p)) {
            let info = cluster.node(p);
            for service in info
                .tasks_by_service
                .keys()
                .chain(info.recent_failures.keys())
            {
                by_service
                    .entry(service.as_str())
                    .or_default()
                    .push(p as u32);
            }
        }
        Self { by_service }
    }

    /// The nodes with tasks or failures of `service`.
    pub fn of(&self, service: &str) -> &[u32] {
        self.by_service.get(service).map_or(&[], Vec::as_slice)
    }
}
