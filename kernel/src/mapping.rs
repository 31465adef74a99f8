//! The kernel's use of the mapping database (`mapdb`): every user mapping made by map and grant
//! items is a node derived from its sender's mapping, so Unmap revokes transitively in all
//! spaces and a deleted space takes its derived mappings with it.
//!
//! Owns the node slab (carved from the kernel pool at boot, sized by `mm::quota`) and the
//! `PageTableOps` that let the database drive the x86-64 page tables, charging page-table
//! frames and mappings to the receiving space's quota. The KIP and UTCB pages and sigma0's
//! idempotent mappings are made by the kernel directly and are never in the database.
//!
//! `reserve` allocates every page table a later `install` needs; where a superpage stands in
//! the way (it is about to be replaced) the tables are taken from a spare list filled by
//! `reserve` (one per table to be created, at most `MAX_SPARES` per operation), so `install`
//! never allocates. Spares left over are returned after each operation.

use core::sync::atomic::AtomicU32;

use mapdb::{MapDb, MapError, Node, PageTableOps, Rights as MRights, SpaceId};

use crate::arch::cpu;
use crate::arch::paging::{self, ACCESSED, ADDR_MASK, DIRTY, P, PS, RW, US, Walk, table};
use crate::mm::frame;
use crate::space::Space;
use crate::sync::KernelCell;

static DB: KernelCell<Option<MapDb<'static>>> = KernelCell::new(None);
/// Tables one map or grant may have to create under superpages that stand in its way.
const MAX_SPARES: usize = 128;

/// Page-table frames `reserve` took for the space being mapped into, for `install` to use
/// where a superpage is replaced by smaller pages; charged to that space, returned after each
/// operation. `keys` names each table they stand for (its level and the region it covers),
/// so that pieces under the same superpage do not provision the same table twice, and pieces
/// under different ones get one each.
struct Spares {
    frames: [u64; MAX_SPARES],
    keys: [u64; MAX_SPARES],
    n: usize,
    space: SpaceId,
}

static SPARES: KernelCell<Spares> = KernelCell::new(Spares {
    frames: [0; MAX_SPARES],
    keys: [0; MAX_SPARES],
    n: 0,
    space: SpaceId(0),
});

/// Creates the database when sigma0's space is made (fixing the user-memory policy first,
/// `mm::init_user_policy`): its node slab (`mm::quota` capacity, one node per mapped page of
/// any size) is carved from the kernel pool. False if the pool is too small.
pub fn init(sigma0: *mut Space) -> bool {
    crate::mm::init_user_policy(
        // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
        (unsafe { crate::boot::multiboot::BOOT.get() }).cmdline(),
        core::mem::size_of::<Node>() as u64,
    );
    let limits = crate::mm::quota::limits();
    crate::kprintln!(
        "kernel: mapping database {} nodes; per non-privileged space at most {} page-table frames and {} mappings",
        limits.nodes,
        limits.table_frames,
        limits.mappings
    );
    let nodes = limits.nodes;
    let bytes = nodes * core::mem::size_of::<Node>() as u64;
    let Some(base) = frame::alloc_contiguous(bytes.div_ceil(frame::FRAME_SIZE)) else {
        return false;
    };
    const _: () = assert!(core::mem::align_of::<Node>() <= 4096);
    // SAFETY: `base` starts a run of pool frames that is ours for good (never freed), large
    // enough for `nodes` nodes, page aligned, reached through the direct map. `MapDb::new`
    // initialises every node before use; raw pool bytes are not yet valid `Node`s, so they
    // are written first.
    let slab = unsafe {
        let p = crate::arch::paging::phys_to_virt(base) as *mut Node;
        for i in 0..nodes as usize {
            p.add(i).write(Node::EMPTY);
        }
        core::slice::from_raw_parts_mut(p, nodes as usize)
    };
    // The look-up hint table (decision 011): one 4-byte slot per node, rounded up to a power
    // of two (512 KiB for the default 74,898 nodes), so that hints rarely collide even with
    // the database full; a slot is a guess the database checks before use.
    let slots = nodes.next_power_of_two();
    let Some(hbase) = frame::alloc_contiguous((slots * 4).div_ceil(frame::FRAME_SIZE)) else {
        return false;
    };
    // SAFETY: as the slab: a run of pool frames that is ours for good, large enough for
    // `slots` slots, reached through the direct map; every slot is written before use.
    let hints = unsafe {
        let p = crate::arch::paging::phys_to_virt(hbase) as *mut AtomicU32;
        for i in 0..slots as usize {
            p.add(i).write(AtomicU32::new(0));
        }
        core::slice::from_raw_parts(p, slots as usize)
    };
    let mut db = MapDb::new(slab, id(sigma0));
    db.set_hints(hints);
    // SAFETY: the only borrow of DB in use; it ends before any call that touches it.
    *(unsafe { DB.get() }) = Some(db);
    true
}

pub fn id(s: *const Space) -> SpaceId {
    SpaceId(s as u64)
}

fn space(id: SpaceId) -> &'static Space {
    // SAFETY: ids are pointers of live spaces (a space leaves the database before it is freed).
    unsafe { &*(id.0 as *const Space) }
}

/// # Safety
/// No other reference to the mapping database may be in use while the returned one is.
unsafe fn db() -> &'static mut MapDb<'static> {
    // SAFETY: the only borrow of DB in use; it ends before any call that touches it.
    (unsafe { DB.get() })
        .as_mut()
        .expect("mapping database initialised at boot")
}

/// Read access for the kernel debugger's views (`debug/view.rs`).
#[cfg_attr(not(feature = "kdb"), allow(dead_code))]
pub fn database() -> Option<&'static MapDb<'static>> {
    // SAFETY: the only borrow of DB in use; it ends before any call that touches it.
    (unsafe { DB.get() }).as_ref()
}

fn level_of(size_log2: u8) -> u32 {
    match size_log2 {
        30 => 3,
        21 => 2,
        _ => 1,
    }
}

/// The entry for `vaddr` at `level` (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB). Missing tables are
/// created from `take` when it yields frames; a superpage above the level is replaced by an
/// empty table only when `split_superpages` (its node is being removed by the database).
/// # Safety
/// The caller must not use the returned entry while another reference to it (or to its table)
/// is in use, nor after the table can have been freed.
unsafe fn entry(
    s: &Space,
    vaddr: u64,
    level: u32,
    take: &mut dyn FnMut() -> Option<u64>,
) -> Option<&'static mut u64> {
    // SAFETY: `s`'s tree; the caller's contract covers the entry.
    unsafe { paging::walk(s.pml4, vaddr, level, Walk::Replace(take)) }.map(|(e, _)| e)
}

fn pte_flags(r: MRights) -> u64 {
    paging::user_pte(r.contains(MRights::W), r.contains(MRights::X))
}

fn status_of(e: u64) -> MRights {
    let mut st = MRights::NONE;
    if e & ACCESSED != 0 {
        st |= MRights::R;
    }
    if e & DIRTY != 0 {
        st |= MRights::W;
    }
    st
}

fn flush(vaddr: u64) {
    cpu::invlpg(vaddr);
}

struct Ops {
    no_mem: bool,
}

impl PageTableOps for Ops {
    fn page_sizes(&self) -> u64 {
        let big = if cpu::features().pdpe1gb { 1 << 30 } else { 0 };
        (1 << 12) | (1 << 21) | big
    }

    fn reserve(&mut self, sp: SpaceId, vaddr: u64, size_log2: u8) -> bool {
        let s = space(sp);
        let level = level_of(size_log2);
        // Walk, creating missing tables; a superpage in the way needs a spare for later.
        let mut t = s.pml4;
        let mut l = 4;
        while l > level {
            // SAFETY: a kernel-owned page table; no other reference to it in use.
            let e = &mut (unsafe { table(t) })[((vaddr >> (12 + 9 * (l - 1))) & 511) as usize];
            if *e & P == 0 {
                let Some(nt) = s.alloc_table() else {
                    return false;
                };
                *e = nt | P | RW | US;
            } else if *e & PS != 0 {
                // The superpage will be removed before `install`; then the tables of levels
                // l-1 .. level covering `vaddr` must be created: one spare for each that no
                // earlier piece of this operation provisioned. Too many is a refusal.
                // SAFETY: the only borrow of SPARES in use; it ends before any call that touches it.
                let spares = unsafe { SPARES.get() };
                spares.space = sp;
                for k in level..l {
                    let key = (vaddr & !((1u64 << (12 + 9 * k)) - 1)) | k as u64;
                    if spares.keys[..spares.n].contains(&key) {
                        continue;
                    }
                    if spares.n == MAX_SPARES {
                        return false;
                    }
                    let Some(f) = s.alloc_table() else {
                        return false;
                    };
                    spares.frames[spares.n] = f;
                    spares.keys[spares.n] = key;
                    spares.n += 1;
                }
                return true;
            }
            t = *e & ADDR_MASK;
            l -= 1;
        }
        true
    }

    fn install(&mut self, sp: SpaceId, vaddr: u64, size_log2: u8, paddr: u64, rights: MRights) {
        let s = space(sp);
        let level = level_of(size_log2);
        let mut take = || {
            // SAFETY: the only borrow of SPARES in use; it ends before any call that touches it.
            let spares = unsafe { SPARES.get() };
            if spares.n > 0 && spares.space == sp {
                spares.n -= 1;
                Some(spares.frames[spares.n])
            } else {
                // `reserve` provisioned every table; reaching this is a kernel bug, reported
                // as no memory rather than by allocating past the quota.
                None
            }
        };
        // SAFETY: the entry is used only here, before any call that could free its table.
        let Some(e) = (unsafe { entry(s, vaddr, level, &mut take) }) else {
            self.no_mem = true;
            return;
        };
        if level > 1 && *e & P != 0 && *e & PS == 0 {
            // Tables under what becomes a superpage: left empty by `reserve`, or emptied by the
            // database, which removed every mapping in the range first (the kernel's own KIP
            // and UTCB pages are never inside a superpage: `space::map_clipped`). The whole
            // tree goes, not just its top, or the tables below would leak.
            free_table_tree(s, *e & ADDR_MASK, level - 1);
        }
        let ps = if level > 1 { PS } else { 0 };
        *e = (paddr & ADDR_MASK) | pte_flags(rights) | ps;
        flush(vaddr);
    }

    fn protect(&mut self, sp: SpaceId, vaddr: u64, size_log2: u8, rights: MRights) -> MRights {
        // SAFETY: the entry is used only here, before any call that could free its table.
        let Some(e) = (unsafe { entry(space(sp), vaddr, level_of(size_log2), &mut || None) })
        else {
            return MRights::NONE;
        };
        let st = status_of(*e);
        let ps = *e & PS;
        *e = (*e & ADDR_MASK) | pte_flags(rights) | ps;
        flush(vaddr);
        st
    }

    fn remove(&mut self, sp: SpaceId, vaddr: u64, size_log2: u8) -> MRights {
        // SAFETY: the entry is used only here, before any call that could free its table.
        let Some(e) = (unsafe { entry(space(sp), vaddr, level_of(size_log2), &mut || None) })
        else {
            return MRights::NONE;
        };
        let st = status_of(*e);
        *e = 0;
        flush(vaddr);
        st
    }

    fn read_status(&mut self, sp: SpaceId, vaddr: u64, size_log2: u8) -> MRights {
        // SAFETY: the entry is used only here, before any call that could free its table.
        let Some(e) = (unsafe { entry(space(sp), vaddr, level_of(size_log2), &mut || None) })
        else {
            return MRights::NONE;
        };
        let st = status_of(*e);
        *e &= !(ACCESSED | DIRTY);
        flush(vaddr);
        st
    }

    fn maps_nothing(&mut self, sp: SpaceId, vaddr: u64, size_log2: u8) -> bool {
        // Nothing is mapped there if the walk to the piece's level ends at an empty entry;
        // a table or a superpage on the way, or a present entry, may hold something.
        // By hand, not `paging::walk`: this runs for every piece of every map, and a read-only
        // descent without the walker's modes is ~10 instructions shorter.
        let level = level_of(size_log2);
        let mut t = space(sp).pml4;
        let mut l = 4;
        loop {
            // SAFETY: a kernel-owned page table; no other reference to it in use.
            let e = (unsafe { table(t) })[paging::index(vaddr, l)];
            if e & P == 0 {
                return true;
            }
            if l == level || e & PS != 0 {
                return false;
            }
            t = e & ADDR_MASK;
            l -= 1;
        }
    }

    fn may_add_mappings(&mut self, sp: SpaceId, more: usize) -> bool {
        space(sp).may_add_mappings(more as u64)
    }

    fn mappings_changed(&mut self, sp: SpaceId, delta: isize) {
        let c = &space(sp).mappings;
        c.set(c.get().wrapping_add_signed(delta as i64));
    }
}

/// Frees the table at `t` (of `level`: 1 = page table) and every table below it.
fn free_table_tree(s: &Space, t: u64, level: u32) {
    if level > 1 {
        for i in 0..512 {
            // SAFETY: a kernel-owned page table; no other reference to it in use.
            let e = (unsafe { table(t) })[i];
            if e & P != 0 && e & PS == 0 {
                free_table_tree(s, e & ADDR_MASK, level - 1);
            }
        }
    }
    s.free_table(t);
}

fn return_spares() {
    // SAFETY: the only borrow of SPARES in use; it ends before any call that touches it.
    let spares = unsafe { SPARES.get() };
    while spares.n > 0 {
        spares.n -= 1;
        space(spares.space).free_table(spares.frames[spares.n]);
    }
}

/// Map (or grant) `2^size_log2` bytes; `Err(())` only when kernel memory ran out.
pub fn map(
    from: *const Space,
    from_vaddr: u64,
    to: *const Space,
    to_vaddr: u64,
    size_log2: u8,
    rights: u64,
    grant: bool,
) -> Result<(), ()> {
    let mut ops = Ops { no_mem: false };
    let r = if grant {
        // SAFETY: the only reference to this mapping database in use.
        (unsafe { db() }).grant(
            &mut ops,
            id(from),
            from_vaddr,
            id(to),
            to_vaddr,
            size_log2,
            MRights::from_bits(rights),
        )
    } else {
        // SAFETY: the only reference to this mapping database in use.
        (unsafe { db() }).map(
            &mut ops,
            id(from),
            from_vaddr,
            id(to),
            to_vaddr,
            size_log2,
            MRights::from_bits(rights),
        )
    };
    return_spares();
    match r {
        Err(MapError::NoMem) => Err(()),
        _ if ops.no_mem => Err(()),
        _ => Ok(()),
    }
}

/// Unmap: revoke `rights` from mappings derived from `space`'s pages in the range (and from its
/// own with `flush`); returns the referenced/written/executed status bits.
pub fn unmap(s: *const Space, vaddr: u64, size_log2: u8, rights: u64, flush: bool) -> u64 {
    let mut ops = Ops { no_mem: false };
    // SAFETY: the only reference to this mapping database in use.
    let r = (unsafe { db() }).unmap(
        &mut ops,
        id(s),
        vaddr,
        size_log2,
        MRights::from_bits(rights),
        flush,
    );
    return_spares();
    r.map(|st| st.bits() as u64).unwrap_or(0)
}

/// Removes every mapping of a space that is being destroyed (and what was derived from them).
pub fn delete_space(s: *const Space) {
    let mut ops = Ops { no_mem: false };
    // SAFETY: the only reference to this mapping database in use.
    (unsafe { db() }).delete_space(&mut ops, id(s));
    return_spares();
}
