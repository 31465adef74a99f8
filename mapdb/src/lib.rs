//! The mapping database: where every mapped page came from (spec 2.3, 2.4, 5.8, 6.2, 6.7).
//!
//! L4 address spaces are recursive. sigma0's space is the root: it owns physical memory
//! idempotently (virtual = physical) with full rights. Every other mapping was *derived* by a
//! map or grant item from a mapping of its sender, and Unmap revokes rights from everything
//! derived from the caller's mappings, transitively. This crate owns that derivation tree and
//! nothing else; it is `no_std`, allocation-free and tested on the host.
//!
//! # What it owns
//! * A **node** per mapping: `(space, vaddr, size_log2, paddr, rights)`, its parent (the
//!   mapping it was derived from) and its children. A node covers `[vaddr, vaddr + 2^size)`
//!   and is exactly one page-table entry of one of the hardware page sizes
//!   ([`PageTableOps::page_sizes`], 4 KiB / 2 MiB / 1 GiB on x86-64). A child may cover only a
//!   part of its parent (a 4 KiB page mapped out of a 2 MiB superpage); its offset into the
//!   parent is `child.paddr - parent.paddr`, so a grant that moves the parent does not disturb
//!   it.
//! * **Root nodes** in sigma0's space anchor everything derived from sigma0. They are created
//!   on demand when sigma0 maps a page that no root covers yet, and released when their last
//!   child goes (at the end of a map or grant, so that its node count holds): the database
//!   never keeps state for memory nobody has been given. sigma0's own
//!   page table (the identity map the kernel builds on sigma0's faults, spec 6.2) is not the
//!   database's business: root nodes have no page-table entry, are never reduced, and are
//!   never removed by Unmap, not even by a flush.
//!
//! # How it is shaped, and why
//! * **Storage** is a caller-supplied slab (`&mut [Node]`) with a free list, linked by `u32`
//!   indices. The kernel backs it with pages from its pool; running out is
//!   [`MapError::NoMem`], returned *before* anything changes: map and grant count the nodes
//!   they could need (an upper bound; unmap needs none) and ask [`PageTableOps::reserve`] for every
//!   page-table level they will write, then mutate without any further failure point.
//! * **Lookup** `(space, vaddr) → node` goes through an index kept inside the database: one
//!   treap over all nodes keyed by `(space, vaddr)`, its links stored in the nodes themselves.
//!   Because the mappings of one space never overlap, the node covering an address is the
//!   greatest key not above it, and "every mapping inside this fpage" (Unmap of a large fpage,
//!   deleting a space) is an in-order walk. Keeping the index here rather than next to each
//!   PTE keeps the page-table format free of database words, lets root nodes (which have no
//!   PTE) be found the same way, and lets the database check its own invariants
//!   ([`MapDb::check`]). See `docs/decisions/002-mapping-database.md`.
//! * **Page tables** are driven through [`PageTableOps`], which the kernel implements:
//!   install, protect and remove an entry, and read-and-clear its accessed/dirty status. The
//!   database decides *what* the page tables must contain; the kernel decides *how*.
//! * **Status** (referenced/written/executed, spec 5.8): when a node is removed or reduced,
//!   its hardware bits are read through [`PageTableOps`]. Inside an Unmap they go to the
//!   result; otherwise (the node was replaced by a new mapping, or its own space flushed it)
//!   they are parked in its parent's pending status, so a later query of an ancestor still
//!   sees that the page was used.
//!
//! # Rules the operations follow
//! * Map: the child's rights are the requested rights ∩ the sender's. Each piece becomes the
//!   largest hardware page that fits the source mapping and to which both the receiver
//!   address and the physical address are aligned: a 2 MiB request against 4 KiB source
//!   pages becomes 4 KiB children. A receiver mapping in the way is replaced: it is removed
//!   with its whole subtree first (Pistachio does the same), even if it is a superpage only
//!   partly overlapped. Exception: re-mapping the very same page from the very same parent
//!   only extends the rights (repeated sigma0 replies do not churn the tree). A piece whose
//!   receiver already holds the source itself or one of its ancestors is skipped: replacing it
//!   would cut the branch the source hangs on.
//! * Grant: like map, but the sender's node moves to the receiver, children attached; rights
//!   dropped by the grant are revoked from those children. Granting part of a larger node
//!   gives the receiver new nodes (siblings of the old one), re-attaches the children that
//!   lie inside them, and removes the rest of the old node from the sender (spec 2.4: the
//!   whole send fpage is flushed from the sender). Granting from sigma0 is mapping.
//! * Unmap: the unit of revocation is the node. Without flush, the children of each caller
//!   mapping that overlap the fpage lose `rights`, with all their descendants; with flush the
//!   caller's own mapping too (whole, even if the fpage covers only a part of it). A node
//!   left without rights, or hit by a revocation of RWX, is removed with its subtree.
//! * Map into sigma0's space is refused ([`MapError::RootTarget`]); source and destination
//!   ranges in the same space must not overlap ([`MapError::Overlap`]). Both are cases where
//!   Pistachio's behaviour is an accident of its walk order; the kernel decides what the
//!   user sees. KIP and UTCB areas are the kernel's to skip before calling in.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

mod children;
mod db;
mod index;
mod treap;

pub use db::{MapDb, Mappings};

use core::ops::{BitAnd, BitOr, Not};

/// Smallest page (and fpage) size the database deals in: 4 KiB.
pub const MIN_PAGE_LOG2: u8 = 12;

/// Hardware page sizes of x86-64 as a bit mask (bit n = pages of 2^n bytes): 4 KiB, 2 MiB, 1 GiB.
pub const X86_64_PAGE_SIZES: u64 = (1 << 12) | (1 << 21) | (1 << 30);

/// An address space, as an opaque handle chosen by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpaceId(pub u64);

/// Access rights, or access status, in the bit layout of an fpage (spec 2.3): R = 4, W = 2,
/// X = 1. As status: referenced, written, executed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rights(u8);

impl Rights {
    /// No rights / nothing accessed.
    pub const NONE: Rights = Rights(0);
    /// Execute / executed.
    pub const X: Rights = Rights(1);
    /// Write / written.
    pub const W: Rights = Rights(2);
    /// Read / referenced.
    pub const R: Rights = Rights(4);
    /// Read and execute.
    pub const RX: Rights = Rights(5);
    /// Read and write.
    pub const RW: Rights = Rights(6);
    /// Everything.
    pub const RWX: Rights = Rights(7);

    /// Rights from the low three bits of `bits` (the rest is ignored).
    pub const fn from_bits(bits: u64) -> Rights {
        Rights((bits & 7) as u8)
    }
    /// The rights as fpage bits 0–2.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// No bit set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Every bit of `other` is also in `self`.
    pub const fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Rights {
    type Output = Rights;
    fn bitor(self, rhs: Rights) -> Rights {
        Rights(self.0 | rhs.0)
    }
}

impl BitAnd for Rights {
    type Output = Rights;
    fn bitand(self, rhs: Rights) -> Rights {
        Rights(self.0 & rhs.0)
    }
}

impl Not for Rights {
    type Output = Rights;
    fn not(self) -> Rights {
        Rights(!self.0 & 7)
    }
}

impl core::ops::BitOrAssign for Rights {
    fn bitor_assign(&mut self, rhs: Rights) {
        self.0 |= rhs.0;
    }
}

/// Why an operation was refused. In every case the database and the page tables are as they
/// were before the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Not enough free nodes, [`PageTableOps::reserve`] failed, or the receiver's quota
    /// ([`PageTableOps::may_add_mappings`]) would be exceeded.
    NoMem,
    /// Size below 4 KiB or above 2^64, or an address not aligned to the size.
    BadFpage,
    /// Map or grant into sigma0's space, whose contents are defined to be physical memory.
    RootTarget,
    /// Source and destination ranges overlap in the same space.
    Overlap,
}

/// One mapping, as reported by [`MapDb::lookup`] and [`MapDb::mappings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The space holding it.
    pub space: SpaceId,
    /// First virtual address (aligned to the size).
    pub vaddr: u64,
    /// log2 of the size in bytes.
    pub size_log2: u8,
    /// Physical address of `vaddr`.
    pub paddr: u64,
    /// Access rights.
    pub rights: Rights,
    /// Where it came from: the parent's space and the parent-space address of this mapping's
    /// first byte. `None` for sigma0's root nodes.
    pub parent: Option<(SpaceId, u64)>,
}

/// The page-table side of the database, implemented by the kernel.
///
/// The database calls these to make the page tables agree with the tree. Only `reserve` may
/// fail; it is called for every entry an operation will install before the operation changes
/// anything, so `install` must then succeed without allocating (a superpage installed where
/// `reserve` created an empty lower-level table for a smaller size must reuse or drop that
/// table). Removing or reducing an entry includes whatever TLB shootdown it needs.
pub trait PageTableOps {
    /// Hardware page sizes as a bit mask (bit n = pages of 2^n bytes). Must include 4 KiB.
    fn page_sizes(&self) -> u64 {
        X86_64_PAGE_SIZES
    }
    /// Make sure an entry of `size_log2` at `vaddr` can later be installed without allocating.
    /// `false` = out of memory (turned into [`MapError::NoMem`]).
    fn reserve(&mut self, space: SpaceId, vaddr: u64, size_log2: u8) -> bool;
    /// Install an entry that maps `vaddr` to `paddr`. There is no entry there yet.
    fn install(&mut self, space: SpaceId, vaddr: u64, size_log2: u8, paddr: u64, rights: Rights);
    /// Change the rights of an existing entry; return its status bits and clear them.
    fn protect(&mut self, space: SpaceId, vaddr: u64, size_log2: u8, rights: Rights) -> Rights;
    /// Remove an existing entry; return its status bits.
    fn remove(&mut self, space: SpaceId, vaddr: u64, size_log2: u8) -> Rights;
    /// Return the status bits of an existing entry and clear them (accessed → R, dirty → W).
    fn read_status(&mut self, space: SpaceId, vaddr: u64, size_log2: u8) -> Rights;
    /// Whether `space` may hold `more` mappings beyond those it holds now (the kernel's
    /// per-space quota). Asked by the dry run of map and grant with the number of mappings the
    /// receiver may gain (an upper bound: pieces whose range holds none of its mappings yet);
    /// `false` fails the operation with
    /// [`MapError::NoMem`] before anything changed. sigma0's root nodes are nobody's mappings
    /// and are never counted.
    fn may_add_mappings(&mut self, space: SpaceId, more: usize) -> bool {
        let _ = (space, more);
        true
    }
    /// A hint for map and grant: `true` only if `space`'s page tables map nothing at all in
    /// `[vaddr, vaddr + 2^size_log2)`. Every mapping of the database except sigma0's root
    /// nodes has its entry installed, so the database then skips looking for a receiver
    /// mapping in the way (one index descent per piece). `false` (the default) is always
    /// correct: the database looks.
    fn maps_nothing(&mut self, space: SpaceId, vaddr: u64, size_log2: u8) -> bool {
        let _ = (space, vaddr, size_log2);
        false
    }
    /// `space` gained (`delta` = 1) or lost (`delta` = -1) one mapping (a non-root node).
    fn mappings_changed(&mut self, space: SpaceId, delta: isize) {
        let _ = (space, delta);
    }
}

/// `2^size_log2 - 1`: the offset of the last byte of a block of that size.
pub(crate) const fn span(size_log2: u8) -> u64 {
    if size_log2 >= 64 {
        u64::MAX
    } else {
        (1u64 << size_log2) - 1
    }
}

/// A node of the database, as stored in the caller's slab. Its fields are private; the slab
/// is handed to [`MapDb::new`] filled with [`Node::EMPTY`].
#[derive(Clone, Copy, Debug)]
pub struct Node {
    pub(crate) space: u64,
    pub(crate) vaddr: u64,
    pub(crate) paddr: u64,
    /// Parent mapping; `NIL` for sigma0's root nodes (and for free nodes).
    pub(crate) parent: u32,
    /// Root of the treap of this node's children (`children.rs`).
    pub(crate) first_child: u32,
    /// Links of the parent's child treap; `sib_right` also links the free list (and the
    /// chain of unused roots, which are nobody's children).
    pub(crate) sib_right: u32,
    pub(crate) sib_left: u32,
    /// Index links (see `index.rs`): children and parent in the index treap.
    pub(crate) left: u32,
    pub(crate) right: u32,
    pub(crate) up: u32,
    pub(crate) size_log2: u8,
    pub(crate) rights: u8,
    /// Status parked here by removed or reduced descendants, reported by the next query.
    pub(crate) pending: u8,
    /// A root node chained on `MapDb::unused_roots`.
    pub(crate) unused_root: bool,
}

pub(crate) const NIL: u32 = u32::MAX;

impl Node {
    /// A free node.
    pub const EMPTY: Node = Node {
        space: 0,
        vaddr: 0,
        paddr: 0,
        parent: NIL,
        first_child: NIL,
        sib_right: NIL,
        sib_left: NIL,
        left: NIL,
        right: NIL,
        up: NIL,
        size_log2: 0,
        rights: 0,
        pending: 0,
        unused_root: false,
    };

    /// In use (a free node has size 0; a node in use is at least 4 KiB).
    pub(crate) fn used(&self) -> bool {
        self.size_log2 != 0
    }
    pub(crate) fn last(&self) -> u64 {
        self.vaddr.wrapping_add(span(self.size_log2))
    }
    pub(crate) fn plast(&self) -> u64 {
        self.paddr.wrapping_add(span(self.size_log2))
    }
}

impl Default for Node {
    fn default() -> Node {
        Node::EMPTY
    }
}

// A node stays 56 bytes (the default slab size in README and decision 006 counts on it).
const _: () = assert!(core::mem::size_of::<Node>() == 56);
