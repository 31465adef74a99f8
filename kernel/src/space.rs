//! Address spaces: their page tables, KIP and UTCB areas, UTCB memory, and the memory half of
//! IPC (map and grant items), Unmap and SpaceControl.
//!
//! A space is created with its first thread (ThreadControl) and destroyed with its last. Its
//! page-table root shares PML4 slot 511 (kernel, direct map, stubs) with every other space.
//! User page-table pages and UTCB pages come from the kernel pool and go back to it when the
//! space is destroyed.
//!
//! Mappings here are tracked by the page tables alone: map and grant copy the sender's
//! translation with rights reduced; Unmap revokes in the caller's own space (flush) — the
//! recursive mapping database that revokes derived mappings in other spaces is `mapdb`
//! (not yet wired in; see CAVEATS.md).
//!
//! sigma0's space is idempotent physical memory: its page faults are resolved by the kernel
//! (virtual = physical), and a map item from sigma0 names physical memory directly.

use abi::acceptor::Acceptor;
use abi::error::SyscallError;
use abi::fpage::{Fpage, Rights};
use abi::thread_id::ThreadId;

use crate::arch::x86_64::cpu;
use crate::arch::x86_64::paging::{
    self, ADDR_MASK, NX, P, PS, RW, US, USER_END, phys_to_virt, table,
};
use crate::mm::frame;
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
    io: crate::io_space::SpaceIo::NONE,
});

pub fn kernel_space() -> *mut Space {
    let s = KERNEL_SPACE.get();
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
    table(pml4)[511] = table(paging::kernel_pml4())[511];
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
            io: crate::io_space::SpaceIo::NONE,
        })
    };
    Some(s)
}

/// Drops one thread's reference; the last one destroys the space.
pub fn release(s: &mut Space) {
    s.threads -= 1;
    if s.threads == 0 && !core::ptr::eq(s, KERNEL_SPACE.get()) {
        destroy(s);
    }
}

fn destroy(s: &mut Space) {
    crate::mapping::delete_space(s);
    crate::io_space::delete_space(s); // its ports, and its I/O bitmap
    let (pool_lo, pool_hi) = frame::range();
    let utcb = s.utcb_area;
    // Free user page tables, and the UTCB pages (the only pool frames mapped as user pages).
    for i4 in 0..256usize {
        let e4 = table(s.pml4)[i4];
        if e4 & P == 0 {
            continue;
        }
        let pdpt = e4 & ADDR_MASK;
        for i3 in 0..512usize {
            let e3 = table(pdpt)[i3];
            if e3 & P == 0 || e3 & PS != 0 {
                continue;
            }
            let pd = e3 & ADDR_MASK;
            for i2 in 0..512usize {
                let e2 = table(pd)[i2];
                if e2 & P == 0 || e2 & PS != 0 {
                    continue;
                }
                let pt = e2 & ADDR_MASK;
                for i1 in 0..512usize {
                    let e1 = table(pt)[i1];
                    let va = ((i4 as u64) << 39)
                        | ((i3 as u64) << 30)
                        | ((i2 as u64) << 21)
                        | ((i1 as u64) << 12);
                    let pa = e1 & ADDR_MASK;
                    if e1 & P != 0
                        && !utcb.is_nil()
                        && fpage_contains(utcb, va)
                        && pa >= pool_lo
                        && pa < pool_hi
                    {
                        frame::free(pa);
                    }
                }
                frame::free(pt);
            }
            frame::free(pd);
        }
        frame::free(pdpt);
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
    pub fn is_kip_or_utcb(&self, va: u64) -> bool {
        fpage_contains(self.kip_area, va) || fpage_contains(self.utcb_area, va)
    }

    /// Walks to the leaf entry for `va`, allocating tables if `alloc`. Returns (entry, level:
    /// 1 = 4 KiB, 2 = 2 MiB).
    fn walk(
        &self,
        va: u64,
        alloc: bool,
        want_level: u32,
    ) -> Result<Option<(&'static mut u64, u32)>, SyscallError> {
        let mut t = self.pml4;
        for level in [4u32, 3, 2] {
            let idx = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
            let e = &mut table(t)[idx];
            if level == want_level {
                return Ok(Some((e, level)));
            }
            if *e & P == 0 {
                if !alloc {
                    return Ok(None);
                }
                let nt = frame::alloc().ok_or(SyscallError::NoMem)?;
                *e = nt | P | RW | US;
            } else if *e & PS != 0 {
                return Ok(Some((e, level)));
            }
            t = *e & ADDR_MASK;
        }
        let e = &mut table(t)[((va >> 12) & 511) as usize];
        Ok(Some((e, 1)))
    }

    /// Translation of `va`: (physical address, page size log2, rights).
    pub fn lookup(&self, va: u64) -> Option<(u64, u32, Rights)> {
        if va >= USER_END {
            return None;
        }
        let (e, level) = self.walk(va, false, 0).ok().flatten()?;
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
            let Some((e, level)) = self.walk(va, true, 2)? else {
                return Ok(());
            };
            if level == 2 {
                if *e & P != 0 && *e & PS == 0 {
                    free_table(*e & ADDR_MASK);
                }
                *e = (pa & !0x1F_FFFF) | flags | PS;
                flush_range(va, 1 << 21);
                return Ok(());
            }
        }
        let Some((e, level)) = self.walk(va, true, 1)? else {
            return Ok(());
        };
        if level != 1 {
            // A superpage covers this address: split it into 4 KiB pages first.
            let old = *e;
            let nt = frame::alloc().ok_or(SyscallError::NoMem)?;
            let base = old & ADDR_MASK & !0x1F_FFFF;
            for i in 0..512u64 {
                table(nt)[i as usize] = (base + (i << 12)) | (old & !(ADDR_MASK | PS));
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
            return Ok(phys_to_virt(pa) + (location & 0xFFF));
        }
        let f = frame::alloc().ok_or(SyscallError::NoMem)?;
        if let Err(e) = self.map_page(page, f, 12, Rights::RW) {
            frame::free(f);
            return Err(e);
        }
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

fn free_table(pt: u64) {
    frame::free(pt);
}

fn flush_range(va: u64, len: u64) {
    let mut a = va;
    while a < va + len {
        cpu::invlpg(a);
        a += 4096;
    }
}

fn rights_to_pte(r: Rights) -> u64 {
    let mut f = P | US;
    if r.raw() & 2 != 0 {
        f |= RW;
    }
    if r.raw() & 1 == 0 && cpu::features().nx {
        f |= NX;
    }
    f
}

fn pte_rights(e: u64) -> Rights {
    let mut r = 4;
    if e & RW != 0 {
        r |= 2;
    }
    if e & NX == 0 {
        r |= 1;
    }
    Rights::from_raw(r)
}

/// Is [pa, pa+len) kernel memory that nobody may map (image, pool)?
fn is_kernel_memory(pa: u64, len: u64) -> bool {
    let (lo, hi) = frame::range();
    let (ilo, ihi) = crate::kernel_image_range();
    (pa < hi && lo < pa.saturating_add(len)) || (pa < ihi && ilo < pa.saturating_add(len))
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
/// kernel memory. `Err` only when kernel memory ran out.
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
        return crate::io_space::map_item(from.space(), to.space(), window, fpage, grant);
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
    let fs_ = from.space();
    let ts = to.space();
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
pub fn sys_space_control(
    space: ThreadId,
    control: u64,
    kip_area: Fpage,
    utcb_area: Fpage,
    redirector: ThreadId,
) -> Result<u64, SyscallError> {
    let cur = thread::current();
    if !cur.space().privileged {
        return Err(SyscallError::NoPrivilege);
    }
    let _ = control;
    let t = thread::resolve(cur, space)
        .filter(|t| t.id.number() >= thread::USER_BASE)
        .ok_or(SyscallError::InvalidSpace)?;
    let s = t.space();
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
    let Some((e, _)) = s.walk(base, true, 1)? else {
        return Err(SyscallError::NoMem);
    };
    *e = kip_phys | P | US | if cpu::features().nx { NX } else { 0 };
    s.kip_area = kip_area;
    Ok(())
}

/// Unmap (spec 5.8): fpages in MR0..MRk of the caller; each is revoked from the mappings
/// derived from the caller's (and from the caller's own with flush) and replaced by itself with
/// the status bits of what it covered.
pub fn sys_unmap(control: u64) {
    let cur = thread::current();
    let k = (control & 0x3F) as usize;
    let flush = control & 0x40 != 0;
    let s = cur.space;
    for i in 0..=k {
        let f = Fpage::from_raw(cur.mr(i));
        if f.is_nil() {
            continue;
        }
        if f.is_io() {
            // IO-fpages: revoke ports (io_space.rs).
            let status = crate::io_space::unmap(cur.space(), f, flush);
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
