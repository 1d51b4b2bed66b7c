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
    /// Their totals in `moved`, by position.
    moved_total: HashMap<u32, u32>,
}

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
            moved_total: HashMap::new(),
        }
    }

    /// The ready nodes, least loaded first, as (total tasks, position).
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let split = |k: u64| ((k >> 32) as u32, k as u32);
        let mut base = self
            .base
            .iter()
            .map(move |&k| split(k))
            .filter(|(_, p)| !self.moved_total.contains_key(p))
            .peekable();
        let mut moved = self.moved.iter().copied().peekable();
        std::iter::from_fn(move || match (base.peek(), moved.peek()) {
            (Some(b), Some(m)) if m < b => moved.next(),
            (Some(_), _) => base.next(),
            (None, _) => moved.next(),
        })
    }

    /// Catches up with the placements made since the last update.
    pub fn update(&mut self, cluster: &mut Cluster<'_>) {
        let moved = cluster.take_moved();
        if self.moved_total.len() + moved.len() > self.base.len() / 4 {
            *self = Self::new(cluster);
            return;
        }
        for (p, before) in moved {
            let old = self.moved_total.get(&p).copied().unwrap_or(before);
            self.moved.remove(&(old, p));
            let now = cluster.total(p as usize);
            self.moved.insert((now, p));
            self.moved_total.insert(p, now);
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
