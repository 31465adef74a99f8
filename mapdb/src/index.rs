//! The `(space, vaddr) → node` index: a treap threaded through the nodes' `left`/`right` links.
//!
//! Insertion and removal are `treap.rs`'s (iterative); the priority is a hash of the node's
//! slab index, so it costs no storage and stays deterministic.

use crate::treap::{self, Shape, priority};
use crate::{NIL, Node};

pub(crate) type Key = (u64, u64);

fn key(nodes: &[Node], i: u32) -> Key {
    let n = &nodes[i as usize];
    (n.space, n.vaddr)
}

/// The index's shape: key `(space, vaddr)`, links `left`/`right`.
pub(crate) struct Index;

impl Shape for Index {
    type Key = Key;
    fn key(nodes: &[Node], i: u32) -> Key {
        key(nodes, i)
    }
    fn left(n: &Node) -> u32 {
        n.left
    }
    fn right(n: &Node) -> u32 {
        n.right
    }
    fn set_left(n: &mut Node, v: u32) {
        n.left = v;
    }
    fn set_right(n: &mut Node, v: u32) {
        n.right = v;
    }
    const UP: bool = true;
    fn up(n: &Node) -> u32 {
        n.up
    }
    fn set_up(n: &mut Node, v: u32) {
        n.up = v;
    }
}

/// Insert node `i` (its key must not be present) into the treap rooted at `root`.
pub(crate) fn insert(nodes: &mut [Node], root: u32, i: u32) -> u32 {
    nodes[i as usize].left = NIL;
    nodes[i as usize].right = NIL;
    nodes[i as usize].up = NIL;
    treap::insert::<Index>(nodes, root, i)
}

/// Remove node `i` (which must be present) from the treap rooted at `t`; return the new root.
pub(crate) fn remove(nodes: &mut [Node], t: u32, i: u32) -> u32 {
    treap::remove::<Index>(nodes, t, i)
}

/// The lowest-addressed node of `space` overlapping `[start, last]`, or `NIL`. One descent:
/// the greatest key `<= (space, start)` and the smallest key `>= (space, start)` both lie on
/// the search path of `(space, start)`.
pub(crate) fn first_overlapping(
    nodes: &[Node],
    root: u32,
    space: u64,
    start: u64,
    last: u64,
) -> u32 {
    let k = (space, start);
    let (mut floor, mut ceil) = (NIL, NIL);
    let mut t = root;
    while t != NIL {
        let n = &nodes[t as usize];
        let nk = (n.space, n.vaddr);
        if nk == k {
            return t;
        }
        if nk < k {
            floor = t;
            t = n.right;
        } else {
            ceil = t;
            t = n.left;
        }
    }
    if floor != NIL {
        let f = &nodes[floor as usize];
        if f.space == space && f.last() >= start {
            return floor;
        }
    }
    if ceil != NIL {
        let c = &nodes[ceil as usize];
        if c.space == space && c.vaddr <= last {
            return ceil;
        }
    }
    NIL
}

/// Check the search-tree and heap orders below `t`, and that nodes of one space do not
/// overlap. `prev` is the previous node in key order; returns the number of nodes.
pub(crate) fn check(nodes: &[Node], t: u32, prev: &mut u32) -> Result<u32, &'static str> {
    if t == NIL {
        return Ok(0);
    }
    let n = &nodes[t as usize];
    if !n.used() {
        return Err("index: free node indexed");
    }
    for child in [n.left, n.right] {
        if child != NIL && priority(child) > priority(t) {
            return Err("index: heap order broken");
        }
        if child != NIL && nodes[child as usize].up != t {
            return Err("index: parent link wrong");
        }
    }
    let mut count = check(nodes, n.left, prev)?;
    if *prev != NIL {
        let p = &nodes[*prev as usize];
        if key(nodes, *prev) >= key(nodes, t) {
            return Err("index: keys out of order");
        }
        if p.space == n.space && p.last() >= n.vaddr {
            return Err("index: overlapping mappings in one space");
        }
    }
    *prev = t;
    count += 1;
    count += check(nodes, n.right, prev)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The node with the greatest key `<= k`.
    fn floor(nodes: &[Node], mut t: u32, k: Key) -> u32 {
        let mut best = NIL;
        while t != NIL {
            if key(nodes, t) <= k {
                best = t;
                t = nodes[t as usize].right;
            } else {
                t = nodes[t as usize].left;
            }
        }
        best
    }

    /// The node with the smallest key `>= k`.
    fn ceil(nodes: &[Node], mut t: u32, k: Key) -> u32 {
        let mut best = NIL;
        while t != NIL {
            if key(nodes, t) >= k {
                best = t;
                t = nodes[t as usize].left;
            } else {
                t = nodes[t as usize].right;
            }
        }
        best
    }

    /// The two-descent definition `first_overlapping` had before it became one descent.
    fn reference(nodes: &[Node], root: u32, space: u64, start: u64, last: u64) -> u32 {
        let f = floor(nodes, root, (space, start));
        if f != NIL && nodes[f as usize].space == space && nodes[f as usize].last() >= start {
            return f;
        }
        let c = ceil(nodes, root, (space, start));
        if c != NIL && nodes[c as usize].space == space && nodes[c as usize].vaddr <= last {
            return c;
        }
        NIL
    }

    proptest! {
        /// One descent finds what a floor and a ceiling search found, for pages of 4 KiB and
        /// 2 MiB in three spaces (non-overlapping within a space) and any query range.
        #[test]
        fn first_overlapping_matches_floor_and_ceil(
            pages in proptest::collection::btree_set((0u64..3, 0u64..64, any::<bool>()), 0..60),
            queries in proptest::collection::vec((0u64..4, 0u64..64 * 512, 0u64..2048), 1..40),
        ) {
            let mut nodes = std::vec![Node::EMPTY; 128];
            let mut root = NIL;
            for (i, (space, slot, big)) in pages.into_iter().enumerate() {
                // Slot = 2 MiB region; a big page fills it, else one 4 KiB page at its start
                // plus a second one further in, so ranges have gaps.
                let (vaddr, size) = if big { (slot << 21, 21) } else { ((slot << 21) | ((slot % 7) << 12), 12) };
                let i = i as u32;
                nodes[i as usize] = Node { space, vaddr, size_log2: size, ..Node::EMPTY };
                root = insert(&mut nodes, root, i);
            }
            for (space, page, len) in queries {
                let start = page << 12;
                let last = start + (len << 12) + 0xFFF;
                prop_assert_eq!(
                    first_overlapping(&nodes, root, space, start, last),
                    reference(&nodes, root, space, start, last)
                );
            }
        }
    }
}
