//! Ranking nodes: a node's rank for a batch packed into one `u64`, so that
//! heaps compare single integers.
//!
//! From most to least significant: whether the service failed repeatedly on
//! the node (such nodes come last), the tasks of the service on the node,
//! the tasks of all services on the node, and the node's position among the
//! nodes sorted by id (the tie-break, which makes results independent of
//! the order of the caller's node list). Smaller is better.
//!
//! The position takes as many bits as the node count needs; the two counts
//! share the rest (23 bits each with 100k nodes, 21 with a million) and
//! saturate: nodes with more tasks than that compare as equally loaded.

use swarm_core::sched::NodeInfo;

/// A node's rank for a batch; smaller ranks are chosen first.
pub(crate) type Key = u64;

/// Where the fields of a [`Key`] sit, sized for a cluster.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    position_bits: u32,
    count_bits: u32,
}

impl Layout {
    /// The layout for `nodes` nodes (at most 2^32).
    pub fn new(nodes: usize) -> Self {
        let largest = nodes.saturating_sub(1) as u64;
        let position_bits = (u64::BITS - largest.leading_zeros()).max(1);
        Self {
            position_bits,
            count_bits: (63 - position_bits) / 2,
        }
    }

    fn count_max(self) -> u64 {
        (1 << self.count_bits) - 1
    }

    /// Packs a rank.
    pub fn key(self, failing: bool, service_tasks: u32, total_tasks: u32, position: u32) -> Key {
        let max = self.count_max();
        (u64::from(failing) << 63)
            | (u64::from(service_tasks).min(max) << (self.position_bits + self.count_bits))
            | (u64::from(total_tasks).min(max) << self.position_bits)
            | u64::from(position)
    }

    /// Packs a rank given by a [`Rank`](crate::Rank): failing nodes last,
    /// then `rank` (saturating), then the position.
    pub fn ranked(self, failing: bool, rank: u64, position: u32) -> Key {
        let max = (1u64 << (63 - self.position_bits)) - 1;
        (u64::from(failing) << 63) | (rank.min(max) << self.position_bits) | u64::from(position)
    }

    /// The rank after one more task of the service landed on the node.
    pub fn bump(self, key: Key) -> Key {
        let max = self.count_max();
        let service_shift = self.position_bits + self.count_bits;
        let service = (key >> service_shift) & max;
        let total = (key >> self.position_bits) & max;
        let mut key = key;
        if service < max {
            key += 1 << service_shift;
        }
        if total < max {
            key += 1 << self.position_bits;
        }
        key
    }

    /// The id position of the node `key` ranks.
    pub fn position(self, key: Key) -> u32 {
        (key & ((1 << self.position_bits) - 1)) as u32
    }
}

/// Nodes sorted by id: the tie-break between nodes of equal load.
pub(crate) struct IdOrder {
    /// Node indices (in the caller's slice) in id order.
    pub by_position: Vec<u32>,
}

impl IdOrder {
    /// Sorts `nodes` by id (nodes listed twice keep their order).
    pub fn new(nodes: &[NodeInfo]) -> Self {
        let ids = |i: u32| nodes[i as usize].node.meta.id.as_str();
        let n = u32::try_from(nodes.len()).expect("fewer than 2^32 nodes");
        // The first sixteen bytes settle most comparisons without chasing
        // the ids' pointers, even for names such as `node-000123`.
        let mut sorted: Vec<(u128, u32)> = (0..n)
            .map(|i| {
                let mut prefix = [0u8; 16];
                let id = ids(i).as_bytes();
                let len = id.len().min(16);
                prefix[..len].copy_from_slice(&id[..len]);
                (u128::from_be_bytes(prefix), i)
            })
            .collect();
        let cmp = |a: &(u128, u32), b: &(u128, u32)| {
            a.0.cmp(&b.0)
                .then_with(|| ids(a.1).cmp(ids(b.1)))
                .then(a.1.cmp(&b.1))
        };
        if !sorted.is_sorted_by(|a, b| cmp(a, b).is_le()) {
            sorted.sort_unstable_by(cmp);
        }
        Self {
            by_position: sorted.into_iter().map(|(_, i)| i).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_failing_then_service_then_total_then_id() {
        let l = Layout::new(1000);
        assert!(
            l.key(false, 9, 9, 9) < l.key(true, 0, 0, 0),
            "failing nodes come last"
        );
        assert!(
            l.key(false, 1, 9, 9) < l.key(false, 2, 0, 0),
            "fewer tasks of the service first"
        );
        assert!(
            l.key(false, 1, 1, 9) < l.key(false, 1, 2, 0),
            "then fewer tasks overall"
        );
        assert!(l.key(false, 1, 1, 1) < l.key(false, 1, 1, 2), "then by id");
        let k = l.bump(l.key(true, 3, 7, 999));
        assert_eq!(k, l.key(true, 4, 8, 999));
        assert_eq!(l.position(k), 999);
    }

    #[test]
    fn counts_saturate_without_spilling_into_other_fields() {
        let l = Layout::new(1 << 20);
        assert_eq!((l.position_bits, l.count_bits), (20, 21));
        let max = (1 << 21) - 1;
        let k = l.key(false, u32::MAX, max - 1, (1 << 20) - 1);
        assert_eq!(l.bump(k), l.key(false, max, max, (1 << 20) - 1));
        assert_eq!(l.bump(l.bump(k)), l.bump(k));
        assert!(l.bump(k) < l.key(true, 0, 0, 0));
        assert_eq!(Layout::new(1).position_bits, 1);
        assert_eq!(Layout::new(0).position_bits, 1);
        assert_eq!(Layout::new(1 << 32).position_bits, 32);
    }
}
