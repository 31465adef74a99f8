//! Four-level x86-64 page tables: the kernel's own mappings and the per-space user tables.
//!
//! Virtual memory layout (see docs/design.md):
//! * `0 .. USER_END`: user space of the current address space (PML4 slots 0..255, per space).
//! * `PHYS_OFFSET ..`: all physical memory, 1:1 (PML4 slot 511, PDPT entries 0..509), kernel only.
//! * `KERNEL_VMA + phys`: the kernel image (PDPT entry 510 of slot 511) mapped with 4 KiB pages
//!   and per-section rights; its `.user_stubs` pages are user-executable, so that the KIP's
//!   system-call links work at the same address in every space.
//!
//! Slot 511 is shared by every address space (its PML4 entry is copied into each new space).

use crate::mm::frame;

pub const PHYS_OFFSET: u64 = 0xFFFF_FF80_0000_0000;
pub const KERNEL_VMA: u64 = 0xFFFF_FFFF_8000_0000;
/// First address above user space (lower canonical half, less a guard page so that `sysret`
/// can never return to a non-canonical address).
pub const USER_END: u64 = 0x0000_7FFF_FFFF_F000;
/// Physical memory above this is not reachable through the direct map.
pub const MAX_PHYS: u64 = 510 << 30;

pub const P: u64 = 1;
pub const RW: u64 = 1 << 1;
pub const US: u64 = 1 << 2;
pub const ACCESSED: u64 = 1 << 5;
pub const DIRTY: u64 = 1 << 6;
pub const PS: u64 = 1 << 7;
pub const G: u64 = 1 << 8;
pub const NX: u64 = 1 << 63;
pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

use crate::sync::KernelValue;

/// Where physical memory is visible: the boot tables' -2 GiB window until the kernel's own
/// tables are live, then the direct map.
static PHYS_WINDOW: KernelValue<u64> = KernelValue::new(KERNEL_VMA);
static KERNEL_PML4: KernelValue<u64> = KernelValue::new(0);

pub fn phys_to_virt(p: u64) -> u64 {
    PHYS_WINDOW.get() + p
}

/// A page table page, viewed through the physical window.
/// # Safety
/// `phys` is a page-table frame the caller owns, and no other reference to that table is in
/// use while the returned one is.
pub unsafe fn table(phys: u64) -> &'static mut [u64; 512] {
    // SAFETY: `phys` is a page-table frame owned by the kernel; the physical window maps it.
    unsafe { &mut *(phys_to_virt(phys) as *mut [u64; 512]) }
}

/// What the walker does at a missing table, or at a superpage above the wanted level.
pub enum Walk<'a> {
    /// Stop: `None` at a missing table; the superpage's entry (and its level) at a superpage.
    Lookup,
    /// Create missing tables from the closure (`None` from it: the walk returns `None`); a
    /// superpage above the wanted level stops the walk and is returned.
    Create(&'a mut dyn FnMut() -> Option<u64>),
    /// Like `Create`, and a superpage above the wanted level is replaced by a fresh table (its
    /// node has been or is being removed by the mapping database).
    Replace(&'a mut dyn FnMut() -> Option<u64>),
}

/// Index of `va` in its table at `level` (1 = PT, 2 = PD, 3 = PDPT, 4 = PML4).
pub const fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 511) as usize
}

/// The one page-table walker: the entry for `va` at `level` (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB)
/// in the tree under `root`, with the level it was found at (higher than `level` only for a
/// superpage that `mode` does not replace). Tables it creates are user-accessible (the
/// kernel's own tables are made once at boot and only looked up).
/// # Safety
/// `root` is a page-table tree the kernel owns; the caller must not use the returned entry
/// while another reference to it (or to its table) is in use, nor after the table can have
/// been freed.
#[inline(always)]
pub unsafe fn walk(
    root: u64,
    va: u64,
    level: u32,
    mut mode: Walk,
) -> Option<(&'static mut u64, u32)> {
    let mut t = root;
    for l in [4u32, 3, 2, 1] {
        // SAFETY: `t` is a table of the tree under `root` (the caller's contract).
        let e = &mut (unsafe { table(t) })[index(va, l)];
        if l <= level.max(1) {
            return Some((e, l));
        }
        let superpage = *e & P != 0 && *e & PS != 0;
        match &mut mode {
            Walk::Lookup if *e & P == 0 => return None,
            Walk::Lookup | Walk::Create(_) if superpage => return Some((e, l)),
            Walk::Create(take) | Walk::Replace(take) if *e & P == 0 || superpage => {
                *e = take()? | P | RW | US;
            }
            _ => {}
        }
        t = *e & ADDR_MASK;
    }
    None
}

/// The one rights-to-PTE mapping of user pages: present, user, writable if `write`, not
/// executable unless `exec` (when the CPU has NX).
pub fn user_pte(write: bool, exec: bool) -> u64 {
    let mut f = P | US;
    if write {
        f |= RW;
    }
    if !exec && super::cpu::features().nx {
        f |= NX;
    }
    f
}

/// The rights a user PTE grants: (write, execute).
pub fn pte_access(e: u64) -> (bool, bool) {
    (e & RW != 0, e & NX == 0)
}

pub fn kernel_pml4() -> u64 {
    KERNEL_PML4.get()
}

unsafe extern "C" {
    static __kip_start: u8;
    static __text_start: u8;
    static __user_stubs_start: u8;
    static __user_stubs_end: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __image_end: u8;
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Builds the kernel's page tables (direct map of `0..phys_top`, the image with section rights)
/// and switches to them. Returns false if memory ran out.
pub fn init_kernel_tables(phys_top: u64) -> bool {
    let f = crate::arch::x86_64::cpu::features();
    let nx = if f.nx { NX } else { 0 };
    let g = if f.pge { G } else { 0 };
    let Some(pml4) = frame::alloc() else {
        return false;
    };
    let Some(pdpt) = frame::alloc() else {
        return false;
    };
    let gib = phys_top.min(MAX_PHYS).div_ceil(1 << 30).max(4);
    for i in 0..gib {
        if f.pdpe1gb {
            // SAFETY: a kernel-owned page table; no other reference to it in use.
            (unsafe { table(pdpt) })[i as usize] = (i << 30) | P | RW | PS | g | nx;
        } else {
            let Some(pd) = frame::alloc() else {
                return false;
            };
            for j in 0..512u64 {
                // SAFETY: a kernel-owned page table; no other reference to it in use.
                (unsafe { table(pd) })[j as usize] = (i << 30) | (j << 21) | P | RW | PS | g | nx;
            }
            // SAFETY: a kernel-owned page table; no other reference to it in use.
            (unsafe { table(pdpt) })[i as usize] = pd | P | RW;
        }
    }
    // The image: 4 KiB pages with rights by section.
    let Some(pd_img) = frame::alloc() else {
        return false;
    };
    // SAFETY: a kernel-owned page table; no other reference to it in use.
    (unsafe { table(pdpt) })[510] = pd_img | P | RW | US;
    // SAFETY: linker-provided symbols; only their addresses are used.
    let (kip, text, stubs, stubs_end, rodata, data, end) = unsafe {
        (
            sym(&__kip_start),
            sym(&__text_start),
            sym(&__user_stubs_start),
            sym(&__user_stubs_end),
            sym(&__rodata_start),
            sym(&__data_start),
            sym(&__image_end),
        )
    };
    let mut va = kip;
    while va < end {
        let flags = if va < text {
            P | RW | nx // KIP (kernel view)
        } else if va < stubs {
            P // text
        } else if va < stubs_end {
            P | US // system-call stubs: user-executable, same address in every space
        } else if va < rodata {
            P
        } else if va < data {
            P | nx
        } else {
            P | RW | nx
        };
        let pdi = ((va >> 21) & 511) as usize;
        let pti = ((va >> 12) & 511) as usize;
        // SAFETY: a kernel-owned page table; no other reference to it in use.
        if (unsafe { table(pd_img) })[pdi] & P == 0 {
            let Some(pt) = frame::alloc() else {
                return false;
            };
            // SAFETY: a kernel-owned page table; no other reference to it in use.
            (unsafe { table(pd_img) })[pdi] = pt | P | RW | US;
        }
        // SAFETY: a kernel-owned page table; no other reference to it in use.
        let pt = (unsafe { table(pd_img) })[pdi] & ADDR_MASK;
        // SAFETY: a kernel-owned page table; no other reference to it in use.
        (unsafe { table(pt) })[pti] = (va - KERNEL_VMA) | flags | g;
        va += 4096;
    }
    // SAFETY: a kernel-owned page table; no other reference to it in use.
    (unsafe { table(pml4) })[511] = pdpt | P | RW | US;
    KERNEL_PML4.set(pml4);
    // SAFETY: the new tables map the running image (same virtual addresses) and the stack
    // (in .bss); the physical window moves to the direct map, which they also contain.
    unsafe { crate::arch::x86_64::cpu::write_cr3(pml4) };
    PHYS_WINDOW.set(PHYS_OFFSET);
    true
}
