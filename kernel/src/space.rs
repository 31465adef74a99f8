//! Address spaces: their page tables, KIP and UTCB areas, UTCB memory, and the memory half of
//! IPC (map and grant items), Unmap and SpaceControl.
//!
//! A space is created with its first thread (ThreadControl) and destroyed with its last. Its
//! page-table root shares PML4 slot 511 (kernel, direct map, stubs) with every other space.
//! User page-table pages and UTCB pages come from the kernel pool and go back to it when the
//! space is destroyed; the space keeps them on a frame list (`frames`), so destruction costs
//! what the space holds (its mappings, tables and UTCB pages) and never reads the entries of
//! its page tables (issue 17).
//!
//! Map and grant items, Unmap and space deletion go through the mapping database
//! (`mapping.rs`). Page-table frames of a space's user part are charged to the space
//! (`alloc_table`), mapping nodes too (`mappings`); a non-privileged space is limited to its
//! quota (`mm/quota.rs`, decision 006), so exhausting kernel memory fails only for the space
//! that tries.
//!
//! sigma0's space is idempotent physical memory: its page faults are resolved by the kernel
//! (virtual = physical), and a map item from sigma0 names physical memory directly.

use crate::decode::{Out, SpaceControlArgs, UnmapArgs};
use core::cell::Cell;

use abi::acceptor::Acceptor;
use abi::error::SyscallError;
use abi::fpage::{Fpage, Rights};
use abi::thread_id::ThreadId;

use crate::arch::cpu;
use crate::arch::paging::{
    self, ADDR_MASK, NX, P, PS, RW, US, USER_END, Walk, phys_to_virt, table,
};
use crate::kernel_state::Kernel;
use crate::mm::{frame, quota};
use crate::sync::KernelCell;
use crate::thread::{self, Tcb};

pub struct Space {
    /// Physical address of the PML4.
    pub pml4: u64,
    pub kip_area: Fpage,
    pub utcb_area: Fpage,
    pub initialised: bool,
    pub redirector: ThreadId,
    pub threads: u32,
    pub privileged: bool,
    pub sigma0: bool,
    /// Page-table frames of the user part charged to this space (mm/quota.rs).
    pub table_frames: Cell<u64>,
    /// Mapping-database nodes (mappings) this space holds (mm/quota.rs).
    pub mappings: Cell<u64>,
    /// Every pool frame of the user part: page tables (`alloc_table`) and UTCB pages
    /// (`utcb_memory`); freed with the space.
    frames: frame::FrameList,
    /// IO-fpages: the space's I/O permission bitmap (owned by `io_space`).
    pub io: crate::io_space::SpaceIo,
}

const _: () = assert!(core::mem::size_of::<Space>() <= 4096);

/// The pseudo space of kernel threads (idle): kernel page tables, no user part.
static KERNEL_SPACE: KernelCell<Space> = KernelCell::new(Space {
    pml4: 0,
    kip_area: Fpage::NIL,
    utcb_area: Fpage::NIL,
    initialised: true,
    redirector: ThreadId::NIL,
    threads: 0,
    privileged: false,
    sigma0: false,
    table_frames: Cell::new(0),
    mappings: Cell::new(0),
    frames: frame::FrameList::new(),
    io: crate::io_space::SpaceIo::NONE,
});

pub fn kernel_space() -> *mut Space {
    // SAFETY: the only borrow of KERNEL_SPACE in use; it ends before any call that touches it.
    let s = unsafe { KERNEL_SPACE.get() };
    s.pml4 = paging::kernel_pml4();
    s as *mut Space
}

/// A new, uninitialised space (no KIP/UTCB area yet). `None` if kernel memory ran out.
pub fn create() -> Option<*mut Space> {
    let page = frame::alloc()?;
    let Some(pml4) = frame::alloc() else {
        frame::free(page);
        return None;
    };
    // SAFETY: a kernel-owned page table; no other reference to it in use.
    (unsafe { table(pml4) })[511] = (unsafe { table(paging::kernel_pml4()) })[511];
    let s = phys_to_virt(page) as *mut Space;
    // SAFETY: a fresh pool frame, exclusively ours.
    unsafe {
        s.write(Space {
            pml4,
            kip_area: Fpage::NIL,
            utcb_area: Fpage::NIL,
            initialised: false,
            redirector: ThreadId::ANY,
            threads: 0,
            privileged: false,
            sigma0: false,
            table_frames: Cell::new(0),
            mappings: Cell::new(0),
            frames: frame::FrameList::new(),
            io: crate::io_space::SpaceIo::NONE,
        })
    };
    Some(s)
}

/// Drops one thread's reference; the last one destroys the space.
pub fn release(s: &mut Space) {
    s.threads -= 1;
    if s.threads == 0 && !core::ptr::eq(s, KERNEL_SPACE.as_ptr()) {
        destroy(s);
    }
}

fn destroy(s: &mut Space) {
    crate::mapping::delete_space(s);
    crate::io_space::delete_space(s); // its ports, and its I/O bitmap
    // The user page tables and the UTCB pages: every frame on the list, and nothing else.
    while let Some(f) = s.frames.pop() {
        frame::free(f);
    }
    frame::free(s.pml4);
    frame::free(s as *mut Space as u64 - phys_to_virt(0));
}

fn fpage_contains(f: Fpage, va: u64) -> bool {
    let size = f.size();
    size != 0 && va >= f.base() && va - f.base() < size
}

fn fpages_overlap(a: Fpage, b: Fpage) -> bool {
    let (ab, ae) = (a.base(), a.base().wrapping_add(a.size()));
    let (bb, be) = (b.base(), b.base().wrapping_add(b.size()));
    ab < be && bb < ae
}

impl Space {
    /// A page-table frame for this space's user part, charged to its quota (none for
    /// privileged spaces). `None` when the quota or the pool is exhausted.
    pub fn alloc_table(&self) -> Option<u64> {
        if !self.privileged && self.table_frames.get() >= quota::limits().table_frames {
            return None;
        }
        let f = frame::alloc()?;
        self.frames.push(f);
        self.table_frames.set(self.table_frames.get() + 1);
        Some(f)
    }

    /// Gives back a frame from `alloc_table` while the space lives on.
    pub fn free_table(&self, f: u64) {
        self.frames.remove(f);
        frame::free(f);
        self.table_frames.set(self.table_frames.get() - 1);
    }

    /// Pool frames on this space's list (invariant checks only).
    #[cfg(feature = "invariants")]
    pub fn frames_for_check(&self) -> u64 {
        self.frames.len_for_check()
    }

    /// May this space hold `more` mappings beyond its current ones?
    pub fn may_add_mappings(&self, more: u64) -> bool {
        self.privileged || self.mappings.get() + more <= quota::limits().mappings
    }

    pub fn is_kip_or_utcb(&self, va: u64) -> bool {
        fpage_contains(self.kip_area, va) || fpage_contains(self.utcb_area, va)
    }

    /// Walks to the leaf entry for `va`, allocating tables if `alloc`. Returns (entry, level:
    /// 1 = 4 KiB, 2 = 2 MiB).
    /// # Safety
    /// The caller must not use the returned entry while another reference to it (or to its
    /// table) is in use, nor after the table can have been freed.
    unsafe fn walk(
        &self,
        va: u64,
        alloc: bool,
        want_level: u32,
    ) -> Result<Option<(&'static mut u64, u32)>, SyscallError> {
        if !alloc {
            // SAFETY: this space's tree; the caller's contract covers the entry.
            return Ok(unsafe { paging::walk(self.pml4, va, want_level, Walk::Lookup) });
        }
        let mut take = || self.alloc_table();
        // SAFETY: as above.
        let found = unsafe { paging::walk(self.pml4, va, want_level, Walk::Create(&mut take)) };
        found.map(Some).ok_or(SyscallError::NoMem)
    }

    /// Translation of `va`: (physical address, page size log2, rights).
    pub fn lookup(&self, va: u64) -> Option<(u64, u32, Rights)> {
        if va >= USER_END {
            return None;
        }
        // SAFETY: the entry is used only here, before any call that could free its table.
        let (e, level) = (unsafe { self.walk(va, false, 0) }).ok().flatten()?;
        if *e & P == 0 {
            return None;
        }
        let size_log2 = if level == 2 {
            21
        } else if level == 3 {
            30
        } else {
            12
        };
        let base = *e & ADDR_MASK & !((1u64 << size_log2) - 1);
        let pa = base + (va & ((1 << size_log2) - 1));
        Some((pa, size_log2, pte_rights(*e)))
    }

    /// Maps one page (4 KiB or 2 MiB) of user memory, replacing what was there.
    pub fn map_page(
        &self,
        va: u64,
        pa: u64,
        size_log2: u32,
        rights: Rights,
    ) -> Result<(), SyscallError> {
        let flags = rights_to_pte(rights);
        if size_log2 == 21 {
            // SAFETY: the entry is used only here, before any call that could free its table.
            let Some((e, level)) = (unsafe { self.walk(va, true, 2) })? else {
                return Ok(());
            };
            if level == 2 {
                if *e & P != 0 && *e & PS == 0 {
                    self.free_table(*e & ADDR_MASK);
                }
                *e = (pa & !0x1F_FFFF) | flags | PS;
                flush_range(va, 1 << 21);
                return Ok(());
            }
        }
        // SAFETY: the entry is used only here, before any call that could free its table.
        let Some((e, level)) = (unsafe { self.walk(va, true, 1) })? else {
            return Ok(());
        };
        if level != 1 {
            // A superpage covers this address: split it into 4 KiB pages first.
            let old = *e;
            let nt = self.alloc_table().ok_or(SyscallError::NoMem)?;
            let base = old & ADDR_MASK & !0x1F_FFFF;
            for i in 0..512u64 {
                // SAFETY: a kernel-owned page table; no other reference to it in use.
                (unsafe { table(nt) })[i as usize] = (base + (i << 12)) | (old & !(ADDR_MASK | PS));
            }
            *e = nt | P | RW | US;
            flush_range(va & !0x1F_FFFF, 1 << 21);
            return self.map_page(va, pa, 12, rights);
        }
        *e = (pa & ADDR_MASK) | flags;
        cpu::invlpg(va);
        Ok(())
    }

    /// Makes sure the page holding the UTCB at `location` exists; returns its kernel address.
    pub fn utcb_memory(&self, location: u64) -> Result<u64, SyscallError> {
        let page = location & !0xFFF;
        if let Some((pa, _, _)) = self.lookup(page) {
            // Only the kernel maps pages into a UTCB area (map items and sigma0's faults skip
            // it), and only pool frames; anything else would be a kernel bug, refused here
            // rather than written to.
            let (lo, hi) = frame::range();
            if pa < lo || pa >= hi {
                return Err(SyscallError::UtcbArea);
            }
            return Ok(phys_to_virt(pa) + (location & 0xFFF));
        }
        let f = frame::alloc().ok_or(SyscallError::NoMem)?;
        if let Err(e) = self.map_page(page, f, 12, Rights::RW) {
            frame::free(f);
            return Err(e);
        }
        self.frames.push(f);
        Ok(phys_to_virt(f) + (location & 0xFFF))
    }

    /// A UTCB location is valid iff 1 KiB aligned and [loc, loc + 1 KiB) lies in the UTCB area.
    pub fn valid_utcb_location(&self, loc: u64) -> bool {
        !self.utcb_area.is_nil()
            && loc & 0x3FF == 0
            && loc >= self.utcb_area.base()
            && loc
                .checked_add(1024)
                .is_some_and(|e| e <= self.utcb_area.base() + self.utcb_area.size())
    }
}

fn flush_range(va: u64, len: u64) {
    let mut a = va;
    while a < va + len {
        cpu::invlpg(a);
        a += 4096;
    }
}

fn rights_to_pte(r: Rights) -> u64 {
    paging::user_pte(r.raw() & 2 != 0, r.raw() & 1 != 0)
}

fn pte_rights(e: u64) -> Rights {
    let (write, exec) = paging::pte_access(e);
    Rights::from_raw(4 | if write { 2 } else { 0 } | if exec { 1 } else { 0 })
}

/// Is [pa, pa+len) kernel memory that nobody may map (image, pool, reserved descriptors)?
fn is_kernel_memory(pa: u64, len: u64) -> bool {
    crate::mm::phys::is_kernel(pa, len)
}

/// Resolves a page fault of sigma0 by mapping physical memory idempotently.
pub fn sigma0_fault(s: &Space, va: u64) -> bool {
    if va >= USER_END || s.is_kip_or_utcb(va) {
        return false;
    }
    let big = va & !0x1F_FFFF;
    let fp = Fpage::new_log2(big, 21);
    if !fpages_overlap(fp, s.kip_area)
        && !fpages_overlap(fp, s.utcb_area)
        && !is_kernel_memory(big, 1 << 21)
    {
        return s.map_page(big, big, 21, Rights::FULL).is_ok();
    }
    let page = va & !0xFFF;
    if is_kernel_memory(page, 4096) {
        return false;
    }
    s.map_page(page, page, 12, Rights::FULL).is_ok()
}

/// Transfers one map or grant item from `from` to `to` (spec 2.4) through the mapping
/// database. What cannot be mapped is skipped silently: parts outside the receive window or
/// user space, the receiver's KIP and UTCB areas, unmapped source pages, and (from sigma0)
/// kernel memory. `Err` only when kernel memory ran out. A nil receive window is not skipped:
/// `ipc::transfer` fails the IPC with message overflow before calling this (spec 2.5).
pub fn map_item(
    from: &Tcb,
    to: &Tcb,
    snd_base: u64,
    fpage: Fpage,
    grant: bool,
) -> Result<(), SyscallError> {
    let acceptor = Acceptor(to.utcb_word(abi::utcb::br(0)));
    let window = acceptor.window();
    if fpage.is_io() {
        // IO-fpages: ports, not memory (io_space.rs).
        // SAFETY: a thread's space outlives it; the only reference to it in use.
        return crate::io_space::map_item(
            unsafe { from.space() },
            unsafe { to.space() },
            window,
            fpage,
            grant,
        );
    }
    if window.is_nil() || fpage.is_nil() || fpage.rights().raw() == 0 {
        return Ok(());
    }
    // The user area is 2^47 bytes minus a guard page: treat "complete" as 2^47 at 0.
    let ws = if window.is_complete() {
        47
    } else {
        window.size_log2().min(47)
    };
    let fs = if fpage.is_complete() {
        47
    } else {
        fpage.size_log2().min(47)
    };
    if fs < 12 || ws < 12 {
        return Ok(());
    }
    let wbase = if window.is_complete() {
        0
    } else {
        window.base()
    };
    let fbase = if fpage.is_complete() { 0 } else { fpage.base() };
    let mask = |s: u64| (1u64 << s) - 1;
    let (src, dst, size_log2) = if fs <= ws {
        (fbase, wbase + (snd_base & mask(ws) & !mask(fs)), fs)
    } else {
        (fbase + (snd_base & mask(fs) & !mask(ws)), wbase, ws)
    };
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    let fs_ = unsafe { from.space() };
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    let ts = unsafe { to.space() };
    let from_sigma0 = fs_.sigma0;
    map_clipped(
        fs_,
        src,
        ts,
        dst,
        size_log2 as u32,
        fpage.rights().raw(),
        grant,
        from_sigma0,
    )
}

/// Splits [dst, dst + 2^log2) around what may not be mapped and hands the rest to the database.
#[allow(clippy::too_many_arguments)]
fn map_clipped(
    from: &Space,
    src: u64,
    to: &Space,
    dst: u64,
    log2: u32,
    rights: u64,
    grant: bool,
    from_sigma0: bool,
) -> Result<(), SyscallError> {
    let size = 1u64 << log2;
    let dst_forbidden = |a: u64, len: u64| {
        a.saturating_add(len) > USER_END
            || fpages_overlap(Fpage::new_log2(a, log2 as u64), to.kip_area)
            || fpages_overlap(Fpage::new_log2(a, log2 as u64), to.utcb_area)
    };
    let src_forbidden = |a: u64, len: u64| from_sigma0 && is_kernel_memory(a, len);
    if !dst_forbidden(dst, size) && !src_forbidden(src, size) {
        if to.sigma0 || (core::ptr::eq(from, to) && src == dst) {
            return Ok(());
        }
        return crate::mapping::map(from, src, to, dst, log2 as u8, rights, grant)
            .map_err(|_| SyscallError::NoMem);
    }
    if log2 <= 12 {
        return Ok(());
    }
    let half = size / 2;
    map_clipped(from, src, to, dst, log2 - 1, rights, grant, from_sigma0)?;
    map_clipped(
        from,
        src + half,
        to,
        dst + half,
        log2 - 1,
        rights,
        grant,
        from_sigma0,
    )
}

// ---- system calls ----

/// SpaceControl (spec 5.9): returns the old control word.
pub fn sys_space_control(k: &Kernel, a: SpaceControlArgs) -> Result<Out, SyscallError> {
    space_control(k, a).map(|old| Out::RaxRdx(1, old))
}

fn space_control(k: &Kernel, a: SpaceControlArgs) -> Result<u64, SyscallError> {
    let SpaceControlArgs {
        space,
        control,
        kip_area,
        utcb_area,
        redirector,
    } = a;
    let cur = k.current();
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    if !(unsafe { cur.space() }).privileged {
        return Err(SyscallError::NoPrivilege);
    }
    let _ = control;
    let t = k
        .threads
        .resolve(cur.space, space)
        .filter(|t| t.id.number() >= thread::USER_BASE)
        .ok_or(SyscallError::InvalidSpace)?;
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    let s = unsafe { t.space() };
    if !s.initialised {
        let in_user = |f: Fpage| {
            !f.is_nil()
                && !f.is_complete()
                && f.base()
                    .checked_add(f.size())
                    .is_some_and(|e| e <= USER_END)
        };
        if !in_user(utcb_area) || utcb_area.size_log2() < 12 {
            return Err(SyscallError::UtcbArea);
        }
        if !in_user(kip_area) || kip_area.size_log2() < 12 || fpages_overlap(kip_area, utcb_area) {
            return Err(SyscallError::KipArea);
        }
        map_kip(s, kip_area)?;
        s.utcb_area = utcb_area;
        s.initialised = true;
    }
    if !redirector.is_nil() {
        s.redirector = redirector;
    }
    Ok(0)
}

/// Maps the KIP read-only at the KIP area base.
pub fn map_kip(s: &mut Space, kip_area: Fpage) -> Result<(), SyscallError> {
    let kip_phys = crate::kip::kip_phys();
    let base = kip_area.base();
    // SAFETY: the entry is used only here, before any call that could free its table.
    let Some((e, _)) = (unsafe { s.walk(base, true, 1) })? else {
        return Err(SyscallError::NoMem);
    };
    *e = kip_phys | P | US | if cpu::features().nx { NX } else { 0 };
    s.kip_area = kip_area;
    Ok(())
}

/// Unmap (spec 5.8): fpages in MR0..MRk of the caller; each is revoked from the mappings
/// derived from the caller's (and from the caller's own with flush) and replaced by itself with
/// the status bits of what it covered.
pub fn sys_unmap(k: &Kernel, a: UnmapArgs) -> Result<Out, SyscallError> {
    unmap_call(k, a);
    Ok(Out::Nothing)
}

fn unmap_call(kernel: &Kernel, a: UnmapArgs) {
    let cur = kernel.current();
    let k = a.control.last_mr();
    let flush = a.control.flush();
    let s = cur.space;
    for i in 0..=k {
        let f = Fpage::from_raw(cur.mr(i));
        if f.is_nil() {
            continue;
        }
        if f.is_io() {
            // IO-fpages: revoke ports (io_space.rs).
            // SAFETY: a thread's space outlives it; the only reference to it in use.
            let status = crate::io_space::unmap(unsafe { cur.space() }, f, flush);
            cur.set_mr(i, (f.raw() & !7) | status);
            continue;
        }
        let (base, log2) = if f.is_complete() {
            (0, 47)
        } else {
            (f.base(), f.size_log2().clamp(12, 47))
        };
        if base >= USER_END {
            continue;
        }
        let base = base & !((1u64 << log2) - 1);
        let status = crate::mapping::unmap(s, base, log2 as u8, f.rights().raw(), flush);
        cur.set_mr(i, (f.raw() & !7) | status);
    }
}
