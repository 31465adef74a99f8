//! The operations: map, grant, unmap, delete a space, and the queries.
//!
//! Every mutating operation is two passes over the same walk: a dry run that counts nodes and
//! reserves page-table levels (the only places it can fail), then the real run. The real run
//! never keeps a node index across a step that may free nodes; it re-finds the next node from
//! an address cursor, so removals anywhere in the tree cannot leave it holding a dangling
//! index.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::children;
use crate::index;
use crate::{MIN_PAGE_LOG2, MapError, Mapping, NIL, Node, PageTableOps, Rights, SpaceId, span};

/// The mapping database over a caller-supplied slab of nodes.
pub struct MapDb<'a> {
    nodes: &'a mut [Node],
    /// Head of the free list (linked through `sib_right`).
    free: u32,
    free_count: u32,
    /// Root of the `(space, vaddr)` index.
    root: u32,
    sigma0: SpaceId,
    /// While a map or grant runs, root nodes that lose their last child are not released but
    /// chained here (through `sib_right`, unused in roots) and released at its end, so
    /// the node count of its dry run holds.
    defer_release: bool,
    unused_roots: u32,
    /// The look-up hints ([`MapDb::set_hints`]); empty = none.
    hints: &'a [AtomicU32],
    /// `64 - log2(hints.len())`: the shift that turns a hash into a slot (63 without a table).
    hint_shift: u32,
}

/// The hint slot of `(space, addr)` for a table of `64 - shift` bits.
fn hint_slot(space: u64, addr: u64, shift: u32) -> usize {
    let h = ((space >> 3) ^ (addr >> MIN_PAGE_LOG2)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> shift) as usize
}

/// Where a piece of a map or grant comes from.
#[derive(Clone, Copy)]
enum Source {
    /// A node of the sender (for sigma0: an existing root node).
    Node(u32),
    /// sigma0 memory that no root node covers yet.
    Sigma0Gap,
}

/// A stretch of the sender's range with one source: `[start, last]` in the sender's space,
/// `paddr` the physical address of `start`.
#[derive(Clone, Copy)]
struct Segment {
    source: Source,
    start: u64,
    last: u64,
    paddr: u64,
    rights: Rights,
}

fn overlaps(a: u64, a_last: u64, b: u64, b_last: u64) -> bool {
    a <= b_last && b <= a_last
}

fn check_fpage(vaddr: u64, size_log2: u8) -> Result<u64, MapError> {
    if !(MIN_PAGE_LOG2..=64).contains(&size_log2) || vaddr & span(size_log2) != 0 {
        return Err(MapError::BadFpage);
    }
    Ok(vaddr + span(size_log2))
}

/// The largest page size in `mask` that starts at `src`/`paddr` (both aligned to it) and ends
/// within `last` (`src <= last`); 4 KiB if none does. O(1): the alignment and the length each
/// bound the size, and the largest size in the mask below both bounds is taken.
fn piece_size(mask: u64, src: u64, paddr: u64, last: u64) -> u8 {
    let align = (src | paddr).trailing_zeros().min(63);
    let len = last.wrapping_sub(src);
    // floor(log2(len + 1)): the largest p with 2^p - 1 <= len.
    let fit = if len == u64::MAX {
        63
    } else {
        63 - (len + 1).leading_zeros()
    };
    let top = align.min(fit);
    let allowed = mask & (u64::MAX >> (63 - top)) & !span(MIN_PAGE_LOG2);
    if allowed == 0 {
        // Callers only hand in 4 KiB-aligned ranges, and 4 KiB is always a hardware size.
        return MIN_PAGE_LOG2;
    }
    (63 - allowed.leading_zeros()) as u8
}

impl<'a> MapDb<'a> {
    /// A database over `nodes` (all of which become free; at most `u32::MAX - 1` are used),
    /// with `sigma0` as the root space.
    pub fn new(nodes: &'a mut [Node], sigma0: SpaceId) -> MapDb<'a> {
        let len = nodes.len().min(NIL as usize - 1);
        for (i, n) in nodes[..len].iter_mut().enumerate() {
            *n = Node::EMPTY;
            n.sib_right = if i + 1 < len { i as u32 + 1 } else { NIL };
        }
        MapDb {
            nodes,
            free: if len > 0 { 0 } else { NIL },
            free_count: len as u32,
            root: NIL,
            sigma0,
            defer_release: false,
            unused_roots: NIL,
            hints: &[],
            hint_shift: 63,
        }
    }

    /// Gives the database a look-up hint table (decision 011): a direct-mapped table from
    /// `(space, 4 KiB page)` to the node last found or made there, `hints.len()` a power of
    /// two (otherwise only the largest power of two that fits is used). A hint is only a
    /// guess, checked against the node before use (in use, same space, covers the address:
    /// the one node that can, since the mappings of a space do not overlap), so a stale or
    /// overwritten slot costs one index descent, never a wrong answer; nothing clears it.
    /// Without a table every look-up descends the index.
    pub fn set_hints(&mut self, hints: &'a [AtomicU32]) {
        if hints.len() < 2 {
            // No table (a shift of 63 gives slots 0 and 1, which `get` does not find).
            self.hints = &[];
            self.hint_shift = 63;
            return;
        }
        let bits = usize::BITS - 1 - hints.len().leading_zeros();
        let hints = &hints[..1 << bits];
        for h in hints {
            h.store(NIL, Ordering::Relaxed);
        }
        self.hints = hints;
        self.hint_shift = 64 - bits;
    }

    /// sigma0's space.
    pub fn sigma0(&self) -> SpaceId {
        self.sigma0
    }

    /// Number of nodes in use (mappings plus sigma0 root nodes).
    pub fn len(&self) -> usize {
        self.capacity() - self.free_count as usize
    }

    /// No node in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of nodes the slab holds.
    pub fn capacity(&self) -> usize {
        self.nodes.len().min(NIL as usize - 1)
    }

    /// Number of free nodes.
    pub fn free_nodes(&self) -> usize {
        self.free_count as usize
    }

    // ---- queries -------------------------------------------------------------------------

    fn mapping(&self, i: u32) -> Mapping {
        let n = &self.nodes[i as usize];
        let parent = (n.parent != NIL).then(|| {
            let p = &self.nodes[n.parent as usize];
            (SpaceId(p.space), p.vaddr + (n.paddr - p.paddr))
        });
        Mapping {
            space: SpaceId(n.space),
            vaddr: n.vaddr,
            size_log2: n.size_log2,
            paddr: n.paddr,
            rights: Rights::from_bits(n.rights as u64),
            parent,
        }
    }

    /// The mapping of `space` that covers `vaddr`. In sigma0's space, the root node if any.
    pub fn lookup(&self, space: SpaceId, vaddr: u64) -> Option<Mapping> {
        let i = self.first_overlapping(space, vaddr, vaddr);
        (i != NIL).then(|| self.mapping(i))
    }

    /// The mappings of `space` in address order (for sigma0: its root nodes).
    pub fn mappings(&self, space: SpaceId) -> Mappings<'_, 'a> {
        Mappings {
            db: self,
            space,
            cursor: Some(0),
        }
    }

    // ---- node storage --------------------------------------------------------------------

    fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    fn node_mut(&mut self, i: u32) -> &mut Node {
        &mut self.nodes[i as usize]
    }

    fn is_root(&self, i: u32) -> bool {
        self.node(i).parent == NIL
    }

    /// The lowest-addressed node of `space` overlapping `[start, last]`, or `NIL`. The node
    /// that covers `start` is the answer whenever there is one, and it is found first
    /// through the hint table: O(1) when the hint holds, one index descent when not.
    fn first_overlapping(&self, space: SpaceId, start: u64, last: u64) -> u32 {
        let slot = self.hints.get(hint_slot(space.0, start, self.hint_shift));
        if let Some(slot) = slot {
            let h = slot.load(Ordering::Relaxed);
            if let Some(n) = self.nodes.get(h as usize)
                && n.used()
                && n.space == space.0
                && n.vaddr <= start
                && start <= n.last()
            {
                return h;
            }
        }
        let i = index::first_overlapping(self.nodes, self.root, space.0, start, last);
        if let Some(slot) = slot
            && i != NIL
            && self.nodes[i as usize].vaddr <= start
        {
            slot.store(i, Ordering::Relaxed);
        }
        i
    }

    /// Points the hint of `i`'s first page at `i`.
    fn hint(&self, i: u32) {
        let n = &self.nodes[i as usize];
        if let Some(slot) = self.hints.get(hint_slot(n.space, n.vaddr, self.hint_shift)) {
            slot.store(i, Ordering::Relaxed);
        }
    }

    /// Take a free node, fill it in, index it and hang it under `parent`. The caller has
    /// checked that a node is free.
    #[allow(clippy::too_many_arguments)]
    fn new_node(
        &mut self,
        ops: &mut impl PageTableOps,
        space: SpaceId,
        vaddr: u64,
        size_log2: u8,
        paddr: u64,
        rights: Rights,
        parent: u32,
    ) -> u32 {
        let i = self.free;
        assert!(i != NIL, "mapdb: node count check missed an allocation");
        self.free = self.node(i).sib_right;
        self.free_count -= 1;
        *self.node_mut(i) = Node {
            space: space.0,
            vaddr,
            paddr,
            size_log2,
            rights: rights.bits(),
            ..Node::EMPTY
        };
        self.root = index::insert(self.nodes, self.root, i);
        self.hint(i);
        if parent != NIL {
            self.link_child(parent, i);
            ops.mappings_changed(space, 1);
        }
        i
    }

    fn link_child(&mut self, parent: u32, c: u32) {
        self.node_mut(c).parent = parent;
        let root = self.node(parent).first_child;
        self.node_mut(parent).first_child = children::insert(self.nodes, root, c);
    }

    fn unlink_child(&mut self, c: u32) {
        let parent = self.node(c).parent;
        if parent != NIL {
            let root = self.node(parent).first_child;
            self.node_mut(parent).first_child = children::remove(self.nodes, root, c);
        }
        let n = self.node_mut(c);
        n.parent = NIL;
        n.sib_left = NIL;
        n.sib_right = NIL;
    }

    /// The child of `parent` with the smallest key above `k` (`strict`) or at or above it.
    fn child_from(&self, parent: u32, k: children::Key, strict: bool) -> u32 {
        children::ceil(self.nodes, self.node(parent).first_child, k, strict)
    }

    /// The first child of `i` in key order, or `NIL`.
    fn first_child(&self, i: u32) -> u32 {
        children::first(self.nodes, self.node(i).first_child)
    }

    /// Unindex, unlink and free a node without children.
    fn release(&mut self, i: u32) {
        debug_assert!(self.node(i).first_child == NIL);
        self.root = index::remove(self.nodes, self.root, i);
        self.unlink_child(i);
        *self.node_mut(i) = Node {
            sib_right: self.free,
            ..Node::EMPTY
        };
        self.free = i;
        self.free_count += 1;
    }

    /// Release a sigma0 root node that has lost its last child.
    fn release_root_if_unused(&mut self, i: u32) {
        if i == NIL || !self.is_root(i) || self.node(i).first_child != NIL {
            return;
        }
        if !self.defer_release {
            self.release(i);
        } else if !self.node(i).unused_root {
            let head = self.unused_roots;
            let n = self.node_mut(i);
            n.unused_root = true;
            n.sib_right = head;
            self.unused_roots = i;
        }
    }

    /// End of a map or grant: release the roots that lost their children and got none back.
    fn release_deferred_roots(&mut self) {
        self.defer_release = false;
        while self.unused_roots != NIL {
            let i = self.unused_roots;
            self.unused_roots = self.node(i).sib_right;
            let n = self.node_mut(i);
            n.sib_right = NIL;
            n.unused_root = false;
            self.release_root_if_unused(i);
        }
    }

    fn park_status(&mut self, i: u32, status: Rights) {
        if i != NIL {
            self.node_mut(i).pending |= status.bits();
        }
    }

    fn take_pending(&mut self, i: u32) -> Rights {
        let n = self.node_mut(i);
        let s = Rights::from_bits(n.pending as u64);
        n.pending = 0;
        s
    }

    // ---- subtree walks -------------------------------------------------------------------

    /// The node after `n` in a pre-order walk of `top`'s subtree that skips `n`'s children.
    fn next_skipping_children(&self, mut n: u32, top: u32) -> u32 {
        loop {
            if n == top {
                return NIL;
            }
            let parent = self.node(n).parent;
            let s = self.child_from(parent, children::key(self.nodes, n), true);
            if s != NIL {
                return s;
            }
            n = parent;
        }
    }

    /// Remove `top` and everything derived from it, page-table entries included; return their
    /// status. Post-order, each node visited once.
    fn remove_subtree(&mut self, ops: &mut impl PageTableOps, top: u32) -> Rights {
        let mut status = Rights::NONE;
        let mut cur = top;
        loop {
            while self.node(cur).first_child != NIL {
                cur = self.node(cur).first_child;
            }
            let n = *self.node(cur);
            status |= Rights::from_bits(n.pending as u64);
            if n.parent != NIL {
                status |= ops.remove(SpaceId(n.space), n.vaddr, n.size_log2);
                ops.mappings_changed(SpaceId(n.space), -1);
            }
            self.release(cur);
            if cur == top {
                return status;
            }
            cur = n.parent;
        }
    }

    /// Revoke `rights` from `top` (not a root node) and everything derived from it; return
    /// their status. Revoking RWX, or everything a node has, removes it with its subtree.
    fn revoke(&mut self, ops: &mut impl PageTableOps, top: u32, rights: Rights) -> Rights {
        let mut status = Rights::NONE;
        let mut cur = top;
        while cur != NIL {
            let n = *self.node(cur);
            let old = Rights::from_bits(n.rights as u64);
            let new = old & !rights;
            let (space, v, s) = (SpaceId(n.space), n.vaddr, n.size_log2);
            if rights == Rights::RWX || new.is_empty() {
                let next = self.next_skipping_children(cur, top);
                status |= self.remove_subtree(ops, cur);
                cur = next;
                continue;
            }
            status |= self.take_pending(cur);
            status |= if new != old {
                self.node_mut(cur).rights = new.bits();
                ops.protect(space, v, s, new)
            } else {
                ops.read_status(space, v, s)
            };
            cur = if n.first_child != NIL {
                self.first_child(cur)
            } else {
                self.next_skipping_children(cur, top)
            };
        }
        status
    }

    /// Remove the receiver mapping `r` with its subtree to make room for a new one.
    fn replace_out(&mut self, ops: &mut impl PageTableOps, r: u32) {
        let parent = self.node(r).parent;
        let status = self.remove_subtree(ops, r);
        self.park_status(parent, status);
        self.release_root_if_unused(parent);
    }

    fn is_ancestor_or_self(&self, a: u32, mut n: u32) -> bool {
        while n != NIL {
            if n == a {
                return true;
            }
            n = self.node(n).parent;
        }
        false
    }

    /// Does `space` hold, in `[start, last]`, the node `src` or one of its ancestors?
    fn holds_ancestor_of(&self, space: SpaceId, start: u64, last: u64, src: u32) -> bool {
        let mut cursor = start;
        loop {
            let r = self.first_overlapping(space, cursor, last);
            if r == NIL {
                return false;
            }
            if self.is_ancestor_or_self(r, src) {
                return true;
            }
            let r_last = self.node(r).last();
            if r_last >= last {
                return false;
            }
            cursor = r_last + 1;
        }
    }

    /// Does `space` hold a mapping that lies entirely inside `[start, last]` (an aligned block)?
    /// A piece mapped there then adds no mapping to the receiver's count: it extends that
    /// mapping, leaves the range alone (it holds an ancestor of the source), or replaces it
    /// (or the mapping went earlier in the same operation, with a subtree). Mappings of a space
    /// never overlap, so only the first one overlapping the block needs a look: one that
    /// starts before the block covers all of it.
    fn holds_inside(&self, space: SpaceId, start: u64, last: u64) -> bool {
        let r = self.first_overlapping(space, start, last);
        r != NIL && self.node(r).vaddr >= start && self.node(r).last() <= last
    }

    /// Remove every mapping of `space` overlapping `[start, last]`.
    fn clear_range(&mut self, ops: &mut impl PageTableOps, space: SpaceId, start: u64, last: u64) {
        loop {
            let r = self.first_overlapping(space, start, last);
            if r == NIL {
                return;
            }
            self.replace_out(ops, r);
        }
    }

    // ---- map and grant -------------------------------------------------------------------

    /// The first stretch of `[cursor, last]` in `from` with a single source.
    fn segment(&self, from: SpaceId, cursor: u64, last: u64) -> Option<Segment> {
        let i = self.first_overlapping(from, cursor, last);
        if from == self.sigma0 {
            if i == NIL || self.node(i).vaddr > cursor {
                let gap_last = if i == NIL {
                    last
                } else {
                    self.node(i).vaddr - 1
                };
                return Some(Segment {
                    source: Source::Sigma0Gap,
                    start: cursor,
                    last: gap_last,
                    paddr: cursor,
                    rights: Rights::RWX,
                });
            }
            let seg_last = self.node(i).last().min(last);
            return Some(Segment {
                source: Source::Node(i),
                start: cursor,
                last: seg_last,
                paddr: cursor,
                rights: Rights::RWX,
            });
        }
        if i == NIL {
            return None;
        }
        let n = self.node(i);
        let start = n.vaddr.max(cursor);
        Some(Segment {
            source: Source::Node(i),
            start,
            last: n.last().min(last),
            paddr: n.paddr + (start - n.vaddr),
            rights: Rights::from_bits(n.rights as u64),
        })
    }

    /// Map `2^size_log2` bytes at `from_vaddr` in `from` to `to_vaddr` in `to`, with at most
    /// `rights`. Both addresses must be aligned to the size.
    #[allow(clippy::too_many_arguments)] // the six words of a map item, plus the page tables
    pub fn map(
        &mut self,
        ops: &mut impl PageTableOps,
        from: SpaceId,
        from_vaddr: u64,
        to: SpaceId,
        to_vaddr: u64,
        size_log2: u8,
        rights: Rights,
    ) -> Result<(), MapError> {
        self.transfer(
            ops, from, from_vaddr, to, to_vaddr, size_log2, rights, false,
        )
    }

    /// Like [`map`](Self::map), but the sender's mappings move to the receiver. Granting from
    /// sigma0 is mapping.
    #[allow(clippy::too_many_arguments)] // the six words of a map item, plus the page tables
    pub fn grant(
        &mut self,
        ops: &mut impl PageTableOps,
        from: SpaceId,
        from_vaddr: u64,
        to: SpaceId,
        to_vaddr: u64,
        size_log2: u8,
        rights: Rights,
    ) -> Result<(), MapError> {
        let grant = from != self.sigma0;
        self.transfer(
            ops, from, from_vaddr, to, to_vaddr, size_log2, rights, grant,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn transfer(
        &mut self,
        ops: &mut impl PageTableOps,
        from: SpaceId,
        from_vaddr: u64,
        to: SpaceId,
        to_vaddr: u64,
        size_log2: u8,
        rights: Rights,
        grant: bool,
    ) -> Result<(), MapError> {
        let from_last = check_fpage(from_vaddr, size_log2)?;
        let to_last = check_fpage(to_vaddr, size_log2)?;
        if to == self.sigma0 {
            return Err(MapError::RootTarget);
        }
        if from == to && overlaps(from_vaddr, from_last, to_vaddr, to_last) {
            return Err(MapError::Overlap);
        }
        if rights.is_empty() {
            return Ok(());
        }
        let mask = ops.page_sizes() | (1 << MIN_PAGE_LOG2);
        let dst = |src: u64| to_vaddr + (src - from_vaddr);

        // Dry run: count nodes (one per piece, two where sigma0 needs a new root node for it)
        // and reserve the page-table levels of every piece. Root nodes that exist now stay
        // until the end (`defer_release`), so the count is an upper bound.
        let mut need = 0usize;
        let mut need_to = 0usize;
        let mut cursor = from_vaddr;
        // The first segment is looked up once for both runs (the dry run changes nothing).
        let first = self.segment(from, from_vaddr, from_last);
        let next_segment = |db: &Self, cursor: u64| {
            if cursor == from_vaddr {
                first
            } else {
                db.segment(from, cursor, from_last)
            }
        };
        while let Some(seg) = next_segment(self, cursor) {
            let per_piece = if let Source::Sigma0Gap = seg.source {
                2
            } else {
                1
            };
            let mut src = seg.start;
            loop {
                let p = piece_size(mask, src, seg.paddr + (src - seg.start), seg.last);
                need += per_piece;
                // The receiver's quota: every piece counts as a new mapping while there is
                // room; near the limit, a piece whose range already holds one of the
                // receiver's mappings counts as none (it extends, keeps or replaces it), so
                // re-mapping at the quota works. The look-up costs only near the limit.
                if ops.may_add_mappings(to, need_to + 1) {
                    need_to += 1;
                } else if !self.holds_inside(to, dst(src), dst(src) + span(p)) {
                    return Err(MapError::NoMem);
                }
                if need > self.free_count as usize || !ops.reserve(to, dst(src), p) {
                    return Err(MapError::NoMem);
                }
                if src + span(p) >= seg.last {
                    break;
                }
                src += span(p) + 1;
            }
            if seg.last >= from_last {
                break;
            }
            cursor = seg.last + 1;
        }

        // The real run.
        self.defer_release = true;
        let mut cursor = from_vaddr;
        while let Some(seg) = next_segment(self, cursor) {
            match seg.source {
                Source::Node(s) if grant => {
                    self.grant_segment(ops, mask, s, seg, to, dst(seg.start), rights)
                }
                _ => self.map_segment(ops, mask, from, seg, to, dst(seg.start), rights),
            }
            if seg.last >= from_last {
                break;
            }
            cursor = seg.last + 1;
        }
        self.release_deferred_roots();
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn map_segment(
        &mut self,
        ops: &mut impl PageTableOps,
        mask: u64,
        from: SpaceId,
        seg: Segment,
        to: SpaceId,
        seg_dst: u64,
        rights: Rights,
    ) {
        let eff = seg.rights & rights;
        if eff.is_empty() {
            return;
        }
        let from_sigma0 = from == self.sigma0;
        let mut src = seg.start;
        loop {
            let paddr = seg.paddr + (src - seg.start);
            let p = piece_size(mask, src, paddr, seg.last);
            let dst = seg_dst + (src - seg.start);
            let dst_last = dst + span(p);
            // For sigma0 the root node is looked up afresh for every piece: a gap segment
            // gets a new root node per piece.
            let parent = if from_sigma0 {
                let r = self.first_overlapping(self.sigma0, src, src + span(p));
                if r != NIL && self.node(r).vaddr <= src && self.node(r).last() >= src + span(p) {
                    r
                } else {
                    NIL
                }
            } else {
                match seg.source {
                    Source::Node(s) => s,
                    Source::Sigma0Gap => NIL,
                }
            };
            self.map_piece(
                ops,
                parent,
                from_sigma0,
                src,
                paddr,
                p,
                to,
                dst,
                dst_last,
                eff,
            );
            if src + span(p) >= seg.last {
                break;
            }
            src += span(p) + 1;
        }
    }

    /// Map one hardware page. `parent` is the source node (for sigma0: the root node covering
    /// the piece, or `NIL` if there is none yet).
    #[allow(clippy::too_many_arguments)]
    fn map_piece(
        &mut self,
        ops: &mut impl PageTableOps,
        parent: u32,
        from_sigma0: bool,
        src: u64,
        paddr: u64,
        p: u8,
        to: SpaceId,
        dst: u64,
        dst_last: u64,
        eff: Rights,
    ) {
        let r = if ops.maps_nothing(to, dst, p) {
            NIL
        } else {
            self.first_overlapping(to, dst, dst_last)
        };
        if r != NIL && parent != NIL {
            let n = *self.node(r);
            if n.vaddr == dst && n.size_log2 == p && n.paddr == paddr && n.parent == parent {
                // The same page from the same source: only extend the rights.
                let new = Rights::from_bits(n.rights as u64) | eff;
                if new.bits() != n.rights {
                    self.node_mut(r).rights = new.bits();
                    let status = ops.protect(to, dst, p, new);
                    self.park_status(r, status);
                }
                return;
            }
            if !from_sigma0 && self.holds_ancestor_of(to, dst, dst_last, parent) {
                return;
            }
        }
        if r != NIL {
            self.clear_range(ops, to, dst, dst_last);
        }
        let parent = if parent == NIL {
            self.new_node(ops, self.sigma0, src, p, src, Rights::RWX, NIL)
        } else {
            parent
        };
        self.new_node(ops, to, dst, p, paddr, eff, parent);
        ops.install(to, dst, p, paddr, eff);
    }

    #[allow(clippy::too_many_arguments)]
    fn grant_segment(
        &mut self,
        ops: &mut impl PageTableOps,
        mask: u64,
        s: u32,
        seg: Segment,
        to: SpaceId,
        seg_dst: u64,
        rights: Rights,
    ) {
        let eff = seg.rights & rights;
        let seg_dst_last = seg_dst + (seg.last - seg.start);
        if eff.is_empty() || self.holds_ancestor_of(to, seg_dst, seg_dst_last, s) {
            return;
        }
        self.clear_range(ops, to, seg_dst, seg_dst_last);
        let n = *self.node(s);
        let lost = Rights::from_bits(n.rights as u64) & !eff;
        if seg.start == n.vaddr && seg.last == n.last() {
            // The whole node moves, children attached.
            let status = ops.remove(SpaceId(n.space), n.vaddr, n.size_log2);
            self.park_status(s, status);
            self.root = index::remove(self.nodes, self.root, s);
            ops.mappings_changed(SpaceId(n.space), -1);
            ops.mappings_changed(to, 1);
            let node = self.node_mut(s);
            node.space = to.0;
            node.vaddr = seg_dst;
            node.rights = eff.bits();
            self.root = index::insert(self.nodes, self.root, s);
            self.hint(s);
            ops.install(to, seg_dst, n.size_log2, n.paddr, eff);
            if !lost.is_empty() {
                self.revoke_children(ops, s, lost);
            }
            return;
        }
        // Part of a larger node: new siblings for the granted pieces, the children that lie
        // inside them re-attached, the rest of the node flushed from the sender.
        let mut src = seg.start;
        loop {
            let paddr = seg.paddr + (src - seg.start);
            let p = piece_size(mask, src, paddr, seg.last);
            let dst = seg_dst + (src - seg.start);
            self.new_node(ops, to, dst, p, paddr, eff, n.parent);
            ops.install(to, dst, p, paddr, eff);
            if src + span(p) >= seg.last {
                break;
            }
            src += span(p) + 1;
        }
        let mut c = self.first_child(s);
        while c != NIL {
            // The next child is found from this one's key after it is handled (it may move).
            let k = children::key(self.nodes, c);
            let (c_paddr, c_plast) = (self.node(c).paddr, self.node(c).plast());
            let seg_plast = seg.paddr + (seg.last - seg.start);
            if seg.paddr <= c_paddr && c_plast <= seg_plast {
                let piece_v = seg_dst + (c_paddr - seg.paddr);
                let piece = self.first_overlapping(to, piece_v, piece_v);
                if piece != NIL
                    && self.node(piece).parent == n.parent
                    && self.node(piece).plast() >= c_plast
                {
                    self.unlink_child(c);
                    self.link_child(piece, c);
                    if !lost.is_empty() {
                        let status = self.revoke(ops, c, lost);
                        self.park_status(piece, status);
                    }
                }
            }
            c = self.child_from(s, k, true);
        }
        let status = self.remove_subtree(ops, s);
        self.park_status(n.parent, status);
    }

    /// Revoke `rights` from every child of `i` (and their subtrees); park the status in `i`.
    fn revoke_children(&mut self, ops: &mut impl PageTableOps, i: u32, rights: Rights) {
        let mut c = self.first_child(i);
        let mut status = Rights::NONE;
        while c != NIL {
            let k = children::key(self.nodes, c);
            status |= self.revoke(ops, c, rights);
            c = self.child_from(i, k, true);
        }
        self.park_status(i, status);
    }

    // ---- unmap ---------------------------------------------------------------------------

    /// Unmap (spec 5.8): for every mapping of `space` overlapping the fpage, revoke `rights`
    /// from everything derived from it, and with `flush` from the mapping itself (never from
    /// sigma0's root nodes). `rights` = RWX removes; NONE only reads the status. Returns the
    /// referenced/written/executed status of the fpage accumulated since the last query, which
    /// is then reset.
    pub fn unmap(
        &mut self,
        ops: &mut impl PageTableOps,
        space: SpaceId,
        vaddr: u64,
        size_log2: u8,
        rights: Rights,
        flush: bool,
    ) -> Result<Rights, MapError> {
        let last = check_fpage(vaddr, size_log2)?;
        let mut status = Rights::NONE;
        let mut cursor = vaddr;
        loop {
            let m = self.first_overlapping(space, cursor, last);
            if m == NIL {
                break;
            }
            let n = *self.node(m);
            if flush && n.parent != NIL {
                status |= self.revoke(ops, m, rights);
                self.release_root_if_unused(n.parent);
            } else {
                status |= self.take_pending(m);
                if n.parent != NIL {
                    status |= ops.read_status(space, n.vaddr, n.size_log2);
                }
                // The part of the fpage inside this mapping, as physical addresses.
                let plo = n.paddr + (vaddr.max(n.vaddr) - n.vaddr);
                let phi = n.paddr + (last.min(n.last()) - n.vaddr);
                // The children that overlap it: for each page size, one run of keys from
                // the first child of that size that can reach `plo` (issue 17: Unmap of
                // 4 KiB inside a 2 MiB mapping visits only the children it hits).
                let mut sizes = (ops.page_sizes() | (1 << MIN_PAGE_LOG2))
                    & (u64::MAX >> (63 - n.size_log2.min(63)));
                while sizes != 0 && n.first_child != NIL {
                    let p = sizes.trailing_zeros() as u8;
                    sizes &= sizes - 1;
                    let mut c = self.child_from(m, (p, plo & !span(p), 0), false);
                    while c != NIL {
                        let k = children::key(self.nodes, c);
                        if k.0 != p || k.1 > phi {
                            break;
                        }
                        status |= self.revoke(ops, c, rights);
                        c = self.child_from(m, k, true);
                    }
                }
                self.release_root_if_unused(m);
            }
            if n.last() >= last {
                break;
            }
            cursor = n.last() + 1;
        }
        Ok(status)
    }

    /// Delete a space: flush everything it maps, with everything derived from it. For sigma0,
    /// everything derived from it goes and the (implicit) identity mapping stays.
    pub fn delete_space(&mut self, ops: &mut impl PageTableOps, space: SpaceId) {
        // The complete address space is a valid fpage, so this cannot fail.
        let _ = self.unmap(ops, space, 0, 64, Rights::RWX, true);
    }

    // ---- self-check ----------------------------------------------------------------------

    /// Check every invariant of the database: the free list and index account for every node;
    /// the mappings of a space do not overlap; every non-root node has a live parent that
    /// covers it physically and holds at least its rights, and appears in that parent's child
    /// list; root nodes are sigma0's, identity, RWX and have children. For tests and the
    /// kernel debugger; O(n).
    pub fn check(&self) -> Result<(), &'static str> {
        let cap = self.capacity();
        let mut free = 0usize;
        let mut f = self.free;
        while f != NIL {
            if free > cap || self.node(f).used() {
                return Err("free list corrupt");
            }
            free += 1;
            f = self.node(f).sib_right;
        }
        if free != self.free_count as usize || self.defer_release || self.unused_roots != NIL {
            return Err("free count wrong");
        }
        let mut prev = NIL;
        let indexed = index::check(self.nodes, self.root, &mut prev)? as usize;
        if self.root != NIL && self.node(self.root).up != NIL {
            return Err("index: root has a parent link");
        }
        let used = self.nodes[..cap].iter().filter(|n| n.used()).count();
        if used != indexed || used + free != cap {
            return Err("node accounting wrong");
        }
        for (i, n) in self.nodes[..cap].iter().enumerate() {
            if !n.used() {
                continue;
            }
            let i = i as u32;
            if n.rights == 0 || n.rights > 7 || n.pending > 7 {
                return Err("bad rights");
            }
            if n.size_log2 < MIN_PAGE_LOG2
                || n.size_log2 > 64
                || (n.vaddr | n.paddr) & span(n.size_log2) != 0
            {
                return Err("bad size or alignment");
            }
            let mut prev_key = None;
            children::check(self.nodes, n.first_child, i, &mut prev_key)?;
            if n.parent == NIL {
                if n.unused_root
                    || n.space != self.sigma0.0
                    || n.vaddr != n.paddr
                    || n.rights != 7
                    || n.first_child == NIL
                {
                    return Err("bad root node");
                }
                continue;
            }
            if n.space == self.sigma0.0 {
                return Err("derived mapping in sigma0's space");
            }
            let p = self.node(n.parent);
            if !p.used() {
                return Err("dangling parent");
            }
            if n.paddr < p.paddr || n.plast() > p.plast() {
                return Err("child not inside its parent");
            }
            if n.rights & !p.rights != 0 {
                return Err("child has rights its parent lacks");
            }
            let listed = self.child_from(n.parent, children::key(self.nodes, i), false) == i;
            if !listed {
                return Err("child missing from its parent's list");
            }
        }
        Ok(())
    }
}

/// Iterator over the mappings of one space, in address order.
pub struct Mappings<'d, 'a> {
    db: &'d MapDb<'a>,
    space: SpaceId,
    cursor: Option<u64>,
}

impl Iterator for Mappings<'_, '_> {
    type Item = Mapping;
    fn next(&mut self) -> Option<Mapping> {
        let cursor = self.cursor?;
        let i = self.db.first_overlapping(self.space, cursor, u64::MAX);
        if i == NIL {
            self.cursor = None;
            return None;
        }
        let last = self.db.node(i).last();
        self.cursor = last.checked_add(1);
        Some(self.db.mapping(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The loop `piece_size` replaced: every size from the largest down.
    fn reference(mask: u64, src: u64, paddr: u64, last: u64) -> u8 {
        let mut p = 63u8;
        loop {
            if mask & (1 << p) != 0
                && (src | paddr) & span(p) == 0
                && src.checked_add(span(p)).is_some_and(|end| end <= last)
            {
                return p;
            }
            if p == MIN_PAGE_LOG2 {
                return MIN_PAGE_LOG2;
            }
            p -= 1;
        }
    }

    proptest! {
        #[test]
        fn piece_size_matches_the_loop(
            mask in prop_oneof![
                Just(crate::X86_64_PAGE_SIZES),
                Just(1u64 << 12),
                Just(((1u64 << 29) - 1) & !((1u64 << 12) - 1)),
                any::<u64>().prop_map(|m| m | (1 << 12)),
            ],
            src_page in any::<u64>(),
            pa_page in any::<u64>(),
            zeros_src in 0u32..52,
            zeros_pa in 0u32..52,
            len_pages in prop_oneof![0u64..2048, any::<u64>()],
        ) {
            let src = (src_page << 12) & !((1u64 << (12 + zeros_src)) - 1);
            let paddr = (pa_page << 12) & !((1u64 << (12 + zeros_pa)) - 1);
            let last = src.saturating_add(len_pages.saturating_mul(4096)) | 0xFFF;
            prop_assert_eq!(piece_size(mask, src, paddr, last), reference(mask, src, paddr, last));
        }
    }
}
