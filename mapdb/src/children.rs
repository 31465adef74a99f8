//! The children of one node: a treap per parent, keyed by `(size_log2, paddr, slab index)`,
//! rooted at the parent's `first_child` and threaded through the children's `sib_left` /
//! `sib_right` links (the heap priority is the same hash of the slab index as the index's).
//!
//! A sibling list would do for the walks, but Unmap of a small fpage inside a large mapping
//! (4 KiB of a 2 MiB page) must find the children that overlap it without visiting the other
//! ones (issue 17): in this order, the children of one size that overlap a physical range
//! are one contiguous run of keys, found with one descent per page size. Insertion and
//! removal cost the depth of the parent's treap, which is logarithmic in its number of
//! children (one descent for the usual parent with a single child).

use crate::treap::{self, Shape, priority};
use crate::{NIL, Node};

pub(crate) type Key = (u8, u64, u32);

pub(crate) fn key(nodes: &[Node], i: u32) -> Key {
    let n = &nodes[i as usize];
    (n.size_log2, n.paddr, i)
}

/// The child treaps' shape: key `(size_log2, paddr, index)`, links `sib_left`/`sib_right`.
struct Children;

impl Shape for Children {
    type Key = Key;
    fn key(nodes: &[Node], i: u32) -> Key {
        key(nodes, i)
    }
    fn left(n: &Node) -> u32 {
        n.sib_left
    }
    fn right(n: &Node) -> u32 {
        n.sib_right
    }
    fn set_left(n: &mut Node, v: u32) {
        n.sib_left = v;
    }
    fn set_right(n: &mut Node, v: u32) {
        n.sib_right = v;
    }
}

/// Insert child `i` (not yet in any child treap) into the treap `root`; the new root.
pub(crate) fn insert(nodes: &mut [Node], root: u32, i: u32) -> u32 {
    nodes[i as usize].sib_left = NIL;
    nodes[i as usize].sib_right = NIL;
    treap::insert::<Children>(nodes, root, i)
}

/// Remove child `i` (which must be in it) from the treap `t`; the new root.
pub(crate) fn remove(nodes: &mut [Node], t: u32, i: u32) -> u32 {
    treap::remove::<Children>(nodes, t, i)
}

/// The child with the smallest key `>= k` (`strict`: `> k`), or `NIL`.
pub(crate) fn ceil(nodes: &[Node], mut t: u32, k: Key, strict: bool) -> u32 {
    let mut best = NIL;
    while t != NIL {
        let tk = key(nodes, t);
        if tk > k || (!strict && tk == k) {
            best = t;
            t = nodes[t as usize].sib_left;
        } else {
            t = nodes[t as usize].sib_right;
        }
    }
    best
}

/// The child with the smallest key, or `NIL`.
pub(crate) fn first(nodes: &[Node], mut t: u32) -> u32 {
    if t == NIL {
        return NIL;
    }
    while nodes[t as usize].sib_left != NIL {
        t = nodes[t as usize].sib_left;
    }
    t
}

/// Check the key and heap orders of the child treap `t` of `parent`; each child must be used
/// and name `parent`. `prev` is the previous key in order; returns the number of children.
pub(crate) fn check(
    nodes: &[Node],
    t: u32,
    parent: u32,
    prev: &mut Option<Key>,
) -> Result<usize, &'static str> {
    if t == NIL {
        return Ok(0);
    }
    let n = &nodes[t as usize];
    if !n.used() || n.parent != parent {
        return Err("child list corrupt");
    }
    for c in [n.sib_left, n.sib_right] {
        if c != NIL && priority(c) > priority(t) {
            return Err("children: heap order broken");
        }
    }
    let mut count = check(nodes, n.sib_left, parent, prev)?;
    let k = key(nodes, t);
    if prev.is_some_and(|p| p >= k) {
        return Err("children: keys out of order");
    }
    *prev = Some(k);
    count += 1;
    count += check(nodes, n.sib_right, parent, prev)?;
    Ok(count)
}
