//! The kernel's use of the mapping database (`mapdb`): every user mapping made by map and grant
//! items is a node derived from its sender's mapping, so Unmap revokes transitively in all
//! spaces and a deleted space takes its derived mappings with it.
//!
//! Owns the node slab and the `PageTableOps` that let the database drive the x86-64 page
//! tables. The KIP and UTCB pages and sigma0's idempotent mappings are made by the kernel
//! directly and are never in the database.
//!
//! `reserve` allocates every page table a later `install` needs; where a superpage stands in
//! the way (it is about to be replaced) the table is taken from a small spare list filled by
//! `reserve`, so `install` never allocates. Spares left over are returned after each operation.

use mapdb::{MapDb, MapError, Node, PageTableOps, Rights as MRights, SpaceId};

use crate::arch::x86_64::cpu;
use crate::arch::x86_64::paging::{ACCESSED, ADDR_MASK, DIRTY, NX, P, PS, RW, US, table};
use crate::mm::frame;
use crate::space::Space;
use crate::sync::KernelCell;

/// Mapping nodes (one per mapped page of any size). Running out is `NoMem`.
pub const NODES: usize = 65536;

static SLAB: KernelCell<[Node; NODES]> = KernelCell::new([Node::EMPTY; NODES]);
static DB: KernelCell<Option<MapDb<'static>>> = KernelCell::new(None);
static SPARES: KernelCell<([u64; 8], usize)> = KernelCell::new(([0; 8], 0));

pub fn init(sigma0: *mut Space) {
    *DB.get() = Some(MapDb::new(SLAB.get(), id(sigma0)));
}

pub fn id(s: *const Space) -> SpaceId {
    SpaceId(s as u64)
}

fn space(id: SpaceId) -> &'static Space {
    // SAFETY: ids are pointers of live spaces (a space leaves the database before it is freed).
    unsafe { &*(id.0 as *const Space) }
}

/// Invariant checks (`invariants.rs`): the database, read only.
#[cfg(feature = "invariants")]
pub fn database() -> &'static MapDb<'static> {
    db()
}

fn db() -> &'static mut MapDb<'static> {
    DB.get()
        .as_mut()
        .expect("mapping database initialised at boot")
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
fn entry(
    s: &Space,
    vaddr: u64,
    level: u32,
    take: &mut dyn FnMut() -> Option<u64>,
) -> Option<&'static mut u64> {
    let mut t = s.pml4;
    let mut l = 4;
    loop {
        let e = &mut table(t)[((vaddr >> (12 + 9 * (l - 1))) & 511) as usize];
        if l == level {
            return Some(e);
        }
        if *e & P == 0 || *e & PS != 0 {
            let nt = take()?;
            *e = nt | P | RW | US;
        }
        t = *e & ADDR_MASK;
        l -= 1;
    }
}

fn pte_flags(r: MRights) -> u64 {
    let mut f = P | US;
    if r.contains(MRights::W) {
        f |= RW;
    }
    if !r.contains(MRights::X) && cpu::features().nx {
        f |= NX;
    }
    f
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
            let e = &mut table(t)[((vaddr >> (12 + 9 * (l - 1))) & 511) as usize];
            if *e & P == 0 {
                let Some(nt) = frame::alloc() else {
                    return false;
                };
                *e = nt | P | RW | US;
            } else if *e & PS != 0 {
                let sp = SPARES.get();
                for _ in 0..(l - level) {
                    if sp.1 == sp.0.len() {
                        break;
                    }
                    let Some(f) = frame::alloc() else {
                        return false;
                    };
                    sp.0[sp.1] = f;
                    sp.1 += 1;
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
            let spares = SPARES.get();
            if spares.1 > 0 {
                spares.1 -= 1;
                Some(spares.0[spares.1])
            } else {
                frame::alloc()
            }
        };
        let Some(e) = entry(s, vaddr, level, &mut take) else {
            self.no_mem = true;
            return;
        };
        if level > 1 && *e & P != 0 && *e & PS == 0 {
            // An empty table left by `reserve` under what becomes a superpage.
            frame::free(*e & ADDR_MASK);
        }
        let ps = if level > 1 { PS } else { 0 };
        *e = (paddr & ADDR_MASK) | pte_flags(rights) | ps;
        flush(vaddr);
    }

    fn protect(&mut self, sp: SpaceId, vaddr: u64, size_log2: u8, rights: MRights) -> MRights {
        let Some(e) = entry(space(sp), vaddr, level_of(size_log2), &mut || None) else {
            return MRights::NONE;
        };
        let st = status_of(*e);
        let ps = *e & PS;
        *e = (*e & ADDR_MASK) | pte_flags(rights) | ps;
        flush(vaddr);
        st
    }

    fn remove(&mut self, sp: SpaceId, vaddr: u64, size_log2: u8) -> MRights {
        let Some(e) = entry(space(sp), vaddr, level_of(size_log2), &mut || None) else {
            return MRights::NONE;
        };
        let st = status_of(*e);
        *e = 0;
        flush(vaddr);
        st
    }

    fn read_status(&mut self, sp: SpaceId, vaddr: u64, size_log2: u8) -> MRights {
        let Some(e) = entry(space(sp), vaddr, level_of(size_log2), &mut || None) else {
            return MRights::NONE;
        };
        let st = status_of(*e);
        *e &= !(ACCESSED | DIRTY);
        flush(vaddr);
        st
    }
}

fn return_spares() {
    let sp = SPARES.get();
    while sp.1 > 0 {
        sp.1 -= 1;
        frame::free(sp.0[sp.1]);
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
        db().grant(
            &mut ops,
            id(from),
            from_vaddr,
            id(to),
            to_vaddr,
            size_log2,
            MRights::from_bits(rights),
        )
    } else {
        db().map(
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
    let r = db().unmap(
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
    db().delete_space(&mut ops, id(s));
    return_spares();
}
