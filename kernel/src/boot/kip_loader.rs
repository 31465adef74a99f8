//! Boot by a second-stage loader that patches the KIP (kickstart, spec 7.2/7.3): the loader
//! has loaded sigma0 and the root server at their physical addresses, written the memory
//! descriptors from index 0, the sigma0/root-server fields and BootInfo into the KIP inside our
//! loaded image, and jumped to the ELF entry in 32-bit protected mode with paging off and no
//! register contents defined. What it wrote is the truth: this module only reads it.
//!
//! * The loader is recognised by the KIP itself: a multiboot loader copies the image unchanged,
//!   whose memory-descriptor count is statically 0; a KIP-patching loader always writes at
//!   least one descriptor.
//! * Kernel memory comes from the physical regions the loader typed *reserved* (kickstart's
//!   `kmem=`, default 16 MiB), as the reference kernel does (spec 7.3), clear of our image.
//! * The kernel command line is the kernel module's line in the loader's copy of the multiboot
//!   information, reached through the BootInfo Multiboot record (kickstart with `mbi=yes`);
//!   none if the loader gave no such record.
//!
//! May touch: the KIP (reads only) and `multiboot::BOOT` (the command line).

use abi::bootinfo::{BootInfo, Record};
use abi::kip::{MemDesc, MemType, MemoryInfo};

use crate::arch::paging::phys_to_virt;
use crate::boot::multiboot;
use crate::kip;

/// Only memory below this is usable for the kernel pool (the boot page tables map 1 GiB).
const POOL_LIMIT: u64 = 1 << 30;

/// True when a boot loader wrote memory descriptors into the KIP before the kernel ran.
pub fn patched() -> bool {
    // SAFETY: the only reference to the KIP in use.
    MemoryInfo((unsafe { kip::kip() }).kip.memory_info).count() != 0
}

/// The descriptors the loader wrote (a prefix of the KIP's array).
fn descriptors() -> &'static [MemDesc] {
    // SAFETY: the only reference to the KIP in use.
    let k = unsafe { kip::kip() };
    let n = (MemoryInfo(k.kip.memory_info).count() as usize).min(kip::MAX_MEMDESC);
    &k.mem_desc[..n]
}

/// End of the highest conventional physical memory described by the loader.
pub fn phys_top() -> u64 {
    descriptors()
        .iter()
        .filter(|d| !d.is_virtual() && d.mem_type() == Some(MemType::Conventional))
        .map(|d| d.high().saturating_add(1))
        .max()
        .unwrap_or(0)
}

/// The kernel memory pool: the largest piece below 1 GiB of a reserved physical region the
/// loader set aside, clear of `busy` (our image, the boot servers), page aligned.
pub fn pool(busy: &[(u64, u64)]) -> Option<(u64, u64)> {
    let mut best: Option<(u64, u64)> = None;
    for d in descriptors() {
        if d.is_virtual() || d.mem_type() != Some(MemType::Reserved) {
            continue;
        }
        let lo = (d.low() + 0xFFF) & !0xFFF;
        let hi = d.high().saturating_add(1).min(POOL_LIMIT) & !0xFFF;
        // Cut the busy ranges out of [lo, hi), keeping the larger side each time.
        let (mut s, mut e) = (lo, hi);
        for &(bs, be) in busy {
            if bs < e && s < be {
                if bs.saturating_sub(s) >= e.saturating_sub(be) {
                    e = bs.max(s);
                } else {
                    s = be;
                }
            }
        }
        if e > s && best.is_none_or(|(bs, be)| e - s > be - bs) {
            best = Some((s, e));
        }
    }
    best
}

/// Copies the kernel's command line out of the loader's MBI copy (module 0 = the kernel), if
/// BootInfo leads to one.
pub fn read_cmdline() {
    // SAFETY: the only reference to the KIP in use.
    let at = (unsafe { kip::kip() }).kip.boot_info;
    if at == 0 || at >= POOL_LIMIT - 4096 {
        return;
    }
    // SAFETY: the loader's bootinfo page, below 1 GiB (checked), read through the boot
    // tables' physical window; one page, as kickstart allocates it.
    let page = unsafe { core::slice::from_raw_parts(phys_to_virt(at) as *const u8, 4096) };
    let Ok(bi) = BootInfo::parse(page) else {
        return;
    };
    for r in bi.records() {
        if let Ok(Record::Multiboot { address }) = r
            && address != 0
            && address < POOL_LIMIT
        {
            multiboot::read_kernel_cmdline(address);
            return;
        }
    }
}
