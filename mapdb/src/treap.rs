//! Insertion and removal for the two treaps threaded through the nodes: the `(space, vaddr)`
//! index (`index.rs`) and each node's children (`children.rs`). Iterative (one descent each,
//! no recursion): insertion walks down to where the new node's priority belongs and splits
//! the subtree there; removal finds the node and merges its two subtrees in its place.
//!
//! A treap is a binary search tree on the key that is also a heap on a priority; with random
//! priorities its expected depth is logarithmic whatever order keys arrive in. The priority is
//! a hash of the node's slab index ([`priority`]), so it costs no storage. Keys are unique.

use crate::{NIL, Node};

/// Heap priority of slab entry `i` (the murmur3 finaliser: a bijection that mixes all bits).
pub(crate) fn priority(i: u32) -> u32 {
    let mut x = i ^ 0x9E37_79B9;
    x ^= x >> 16;
    x = x.wrapping_mul(0x85EB_CA6B);
    x ^= x >> 13;
    x = x.wrapping_mul(0xC2B2_AE35);
    x ^ (x >> 16)
}

/// Which links and key a treap uses.
pub(crate) trait Shape {
    type Key: Ord + Copy;
    fn key(nodes: &[Node], i: u32) -> Self::Key;
    fn left(n: &Node) -> u32;
    fn right(n: &Node) -> u32;
    fn set_left(n: &mut Node, v: u32);
    fn set_right(n: &mut Node, v: u32);
    /// Parent links: a treap that keeps them (the index) finds a node's place in O(1) on
    /// removal; one that does not (the child treaps) descends from the root.
    const UP: bool = false;
    fn up(n: &Node) -> u32 {
        let _ = n;
        NIL
    }
    fn set_up(n: &mut Node, v: u32) {
        let _ = (n, v);
    }
}

/// Where a subtree hangs: the root, or the left or right link of a node.
#[derive(Clone, Copy)]
enum Slot {
    Root,
    Left(u32),
    Right(u32),
}

fn put<S: Shape>(nodes: &mut [Node], root: &mut u32, slot: Slot, v: u32) {
    let up = match slot {
        Slot::Root => {
            *root = v;
            NIL
        }
        Slot::Left(p) => {
            S::set_left(&mut nodes[p as usize], v);
            p
        }
        Slot::Right(p) => {
            S::set_right(&mut nodes[p as usize], v);
            p
        }
    };
    if S::UP && v != NIL {
        S::set_up(&mut nodes[v as usize], up);
    }
}

/// Split `t` into the keys `< k` and the keys `>= k`.
fn split<S: Shape>(nodes: &mut [Node], mut t: u32, k: S::Key) -> (u32, u32) {
    let (mut l, mut r) = (NIL, NIL);
    let (mut l_slot, mut r_slot) = (Slot::Root, Slot::Root);
    while t != NIL {
        if S::key(nodes, t) < k {
            put::<S>(nodes, &mut l, l_slot, t);
            l_slot = Slot::Right(t);
            t = S::right(&nodes[t as usize]);
        } else {
            put::<S>(nodes, &mut r, r_slot, t);
            r_slot = Slot::Left(t);
            t = S::left(&nodes[t as usize]);
        }
    }
    put::<S>(nodes, &mut l, l_slot, NIL);
    put::<S>(nodes, &mut r, r_slot, NIL);
    (l, r)
}

/// Join `a` and `b`, every key of `a` below every key of `b`.
fn merge<S: Shape>(nodes: &mut [Node], mut a: u32, mut b: u32) -> u32 {
    let mut root = NIL;
    let mut slot = Slot::Root;
    loop {
        if a == NIL {
            put::<S>(nodes, &mut root, slot, b);
            return root;
        }
        if b == NIL {
            put::<S>(nodes, &mut root, slot, a);
            return root;
        }
        if priority(a) > priority(b) {
            put::<S>(nodes, &mut root, slot, a);
            slot = Slot::Right(a);
            a = S::right(&nodes[a as usize]);
        } else {
            put::<S>(nodes, &mut root, slot, b);
            slot = Slot::Left(b);
            b = S::left(&nodes[b as usize]);
        }
    }
}

/// Insert node `i` (its key not present, its links free) into the treap `root`; the new root.
pub(crate) fn insert<S: Shape>(nodes: &mut [Node], mut root: u32, i: u32) -> u32 {
    let k = S::key(nodes, i);
    let pi = priority(i);
    let mut slot = Slot::Root;
    let mut t = root;
    while t != NIL && priority(t) > pi {
        if k < S::key(nodes, t) {
            slot = Slot::Left(t);
            t = S::left(&nodes[t as usize]);
        } else {
            slot = Slot::Right(t);
            t = S::right(&nodes[t as usize]);
        }
    }
    let (l, r) = split::<S>(nodes, t, k);
    let mut unused = NIL;
    put::<S>(nodes, &mut unused, Slot::Left(i), l);
    put::<S>(nodes, &mut unused, Slot::Right(i), r);
    put::<S>(nodes, &mut root, slot, i);
    root
}

/// Remove node `i` (which must be present) from the treap `root`; the new root. `i`'s links
/// are cleared.
pub(crate) fn remove<S: Shape>(nodes: &mut [Node], mut root: u32, i: u32) -> u32 {
    let slot = if S::UP {
        // O(1): the parent link names the slot.
        let p = S::up(&nodes[i as usize]);
        if p == NIL {
            assert!(root == i, "treap: removing a node that is not in it");
            Slot::Root
        } else if S::left(&nodes[p as usize]) == i {
            Slot::Left(p)
        } else {
            Slot::Right(p)
        }
    } else {
        let k = S::key(nodes, i);
        let mut slot = Slot::Root;
        let mut t = root;
        while t != i {
            assert!(t != NIL, "treap: removing a node that is not in it");
            if k < S::key(nodes, t) {
                slot = Slot::Left(t);
                t = S::left(&nodes[t as usize]);
            } else {
                slot = Slot::Right(t);
                t = S::right(&nodes[t as usize]);
            }
        }
        slot
    };
    let (l, r) = (S::left(&nodes[i as usize]), S::right(&nodes[i as usize]));
    S::set_left(&mut nodes[i as usize], NIL);
    S::set_right(&mut nodes[i as usize], NIL);
    S::set_up(&mut nodes[i as usize], NIL);
    let m = merge::<S>(nodes, l, r);
    put::<S>(nodes, &mut root, slot, m);
    root
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    fn in_order(nodes: &[Node], t: u32, out: &mut Vec<u64>) {
        if t == NIL {
            return;
        }
        in_order(nodes, nodes[t as usize].left, out);
        out.push(nodes[t as usize].vaddr);
        in_order(nodes, nodes[t as usize].right, out);
    }

    /// Every node's parent link names the node whose child link holds it (NIL at the root).
    fn up_ok(nodes: &[Node], t: u32, parent: u32) -> bool {
        if t == NIL {
            return true;
        }
        let n = &nodes[t as usize];
        n.up == parent && up_ok(nodes, n.left, t) && up_ok(nodes, n.right, t)
    }

    fn heap_ok(nodes: &[Node], t: u32) -> bool {
        if t == NIL {
            return true;
        }
        let n = &nodes[t as usize];
        [n.left, n.right]
            .iter()
            .all(|&c| c == NIL || (priority(c) < priority(t) && heap_ok(nodes, c)))
    }

    proptest! {
        /// Random insertions and removals agree with a sorted-set model: the in-order walk
        /// is the model's order and the heap order holds after every step.
        #[test]
        fn insert_remove_agree_with_a_sorted_set(
            ops in proptest::collection::vec((any::<bool>(), 0u32..64), 1..300),
        ) {
            let mut nodes = std::vec![Node::EMPTY; 64];
            for (i, n) in nodes.iter_mut().enumerate() {
                n.vaddr = (i as u64 * 37 % 64) << 12;
                n.left = NIL;
                n.right = NIL;
            }
            let mut root = NIL;
            let mut model = BTreeSet::new();
            for (add, i) in ops {
                let v = nodes[i as usize].vaddr;
                if add && !model.contains(&v) {
                    root = insert::<Index>(&mut nodes, root, i);
                    model.insert(v);
                } else if !add && model.contains(&v) {
                    root = remove::<Index>(&mut nodes, root, i);
                    model.remove(&v);
                }
                let mut got = Vec::new();
                in_order(&nodes, root, &mut got);
                prop_assert_eq!(got, model.iter().copied().collect::<Vec<_>>());
                prop_assert!(heap_ok(&nodes, root));
                prop_assert!(up_ok(&nodes, root, NIL), "parent links wrong");
            }
        }
    }
}
