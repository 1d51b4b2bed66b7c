//! A d-ary min-heap of small `Copy` keys.
//!
//! With eight `u64` keys per node of the tree, the children of a node share
//! a cache line or two, so a sift from the root of a 100k-node heap touches
//! six levels instead of the seventeen of a binary heap. The scheduler pops
//! a node, places a task there and puts the node back with its new rank in
//! one [`Heap::replace_top`].

/// Children per node.
const ARITY: usize = 8;

/// A min-heap: [`Heap::peek`] is the smallest item.
#[derive(Debug, Clone)]
pub(crate) struct Heap<T> {
    items: Vec<T>,
}

impl<T: Ord + Copy> Heap<T> {
    /// A heap of `items`, in `O(n)`.
    pub fn from_vec(items: Vec<T>) -> Self {
        let mut heap = Self { items };
        let len = heap.items.len();
        if len > 1 {
            for i in (0..=(len - 2) / ARITY).rev() {
                heap.sift_down(i);
            }
        }
        heap
    }

    /// Whether the heap is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The smallest item.
    pub fn peek(&self) -> Option<T> {
        self.items.first().copied()
    }

    /// Adds `item`.
    pub fn push(&mut self, item: T) {
        let mut i = self.items.len();
        self.items.push(item);
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if self.items[parent] <= item {
                break;
            }
            self.items[i] = self.items[parent];
            i = parent;
        }
        self.items[i] = item;
    }

    /// Replaces the smallest item with `item`.
    ///
    /// # Panics
    /// If the heap is empty.
    pub fn replace_top(&mut self, item: T) {
        self.items[0] = item;
        self.sift_down(0);
    }

    /// Removes the smallest item.
    pub fn pop(&mut self) -> Option<T> {
        if self.items.is_empty() {
            return None;
        }
        let top = self.items.swap_remove(0);
        if !self.items.is_empty() {
            self.sift_down(0);
        }
        Some(top)
    }

    /// Moves the item at `i` down to its place.
    #[inline]
    fn sift_down(&mut self, mut i: usize) {
        let items = &mut self.items;
        let len = items.len();
        let item = items[i];
        loop {
            let first = i * ARITY + 1;
            if first >= len {
                break;
            }
            let end = (first + ARITY).min(len);
            let mut best = first;
            let mut best_item = items[first];
            for (c, &candidate) in items[first + 1..end].iter().enumerate() {
                if candidate < best_item {
                    best = first + 1 + c;
                    best_item = candidate;
                }
            }
            if best_item >= item {
                break;
            }
            items[i] = best_item;
            i = best;
        }
        items[i] = item;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pops_in_order_whatever_the_replacements(
            items in prop::collection::vec(0..1000u64, 0..200),
            pushed in prop::collection::vec(0..1000u64, 0..50),
            bumps in prop::collection::vec(0..50u64, 0..100),
        ) {
            let mut heap = Heap::from_vec(items.clone());
            let mut model = items;
            for x in pushed {
                heap.push(x);
                model.push(x);
            }
            for b in bumps {
                let Some(top) = heap.peek() else { break };
                model.sort_unstable();
                prop_assert_eq!(top, model[0]);
                heap.replace_top(top + b);
                model[0] = top + b;
            }
            model.sort_unstable();
            let mut popped = Vec::new();
            while let Some(x) = heap.pop() {
                popped.push(x);
            }
            prop_assert_eq!(popped, model);
        }
    }
}
