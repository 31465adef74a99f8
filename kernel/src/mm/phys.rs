//! Which physical memory the kernel may touch on a user's behalf.
//!
//! A user names physical memory indirectly: whatever its pager chain (rooted at sigma0) mapped
//! into its space. sigma0 may hand out any physical address the memory descriptors call free
//! or shared, which includes device memory, holes, and addresses the direct map does not
//! cover (above it, the kernel image and the kernel stacks follow in the same PML4 slot).
//! When the kernel itself must read or write such a page (string items copy through the
//! direct map, because the partner's space is not the current one), it goes through
//! [`user_ram`], which gives a kernel pointer only for conventional RAM that the boot loader
//! reported usable, that lies inside the direct map, and that is not the kernel's own (image
//! with the KIP, the kernel memory pool with every page table, TCB, kernel stack, UTCB page
//! and mapping node). Everything else is refused, and the caller turns that into an error.
//!
//! Owns: the table of usable RAM, fixed at boot. May touch: nothing else.

use crate::arch::paging::{MAX_PHYS, phys_to_virt};
use crate::sync::KernelCell;

use abi::kip::{MemType, MemoryInfo};

const MAX_RANGES: usize = 32;
const MAX_RESERVED: usize = 16;
const PAGE: u64 = 4096;

struct Ram {
    /// Usable RAM `[start, end)`, page aligned inwards, clipped to the direct map.
    ranges: [(u64, u64); MAX_RANGES],
    n: usize,
    /// Kernel-owned ranges `[start, end)`: the image, the pool, every reserved descriptor.
    kernel: [(u64, u64); MAX_RESERVED + 2],
    nkernel: usize,
}

static RAM: KernelCell<Ram> = KernelCell::new(Ram {
    ranges: [(0, 0); MAX_RANGES],
    n: 0,
    kernel: [(0, 0); MAX_RESERVED + 2],
    nkernel: 0,
});

/// Builds the table from the KIP's memory descriptors, whoever wrote them (the kernel from
/// the multiboot memory map, or a boot loader that patched the KIP): conventional memory is
/// RAM, reserved memory is the kernel's; the image and the pool are the kernel's whatever the
/// descriptors say. Called once at boot, before the first user thread runs. Descriptors that
/// do not fit the table are dropped: RAM then counts as unusable (safe), a reserved range as
/// kernel memory only through the image and pool rules.
pub fn init(image: (u64, u64), pool: (u64, u64)) {
    // SAFETY: the only borrow of RAM in use; it ends before any call that touches it.
    let ram = unsafe { RAM.get() };
    ram.n = 0;
    ram.kernel[0] = image;
    ram.kernel[1] = pool;
    ram.nkernel = 2;
    // SAFETY: the only reference to the KIP in use.
    let k = unsafe { crate::kip::kip() };
    let count = (MemoryInfo(k.kip.memory_info).count() as usize).min(k.mem_desc.len());
    for d in &k.mem_desc[..count] {
        if d.is_virtual() {
            continue;
        }
        let (low, end) = (d.low(), d.high().saturating_add(1));
        match d.mem_type() {
            Some(MemType::Conventional) => {
                let start = low.saturating_add(PAGE - 1) & !(PAGE - 1);
                let end = end.min(MAX_PHYS) & !(PAGE - 1);
                if start < end && ram.n < MAX_RANGES {
                    ram.ranges[ram.n] = (start, end);
                    ram.n += 1;
                }
            }
            Some(MemType::Reserved) if ram.nkernel < ram.kernel.len() => {
                ram.kernel[ram.nkernel] = (low, end);
                ram.nkernel += 1;
            }
            _ => {}
        }
    }
}

/// Is the page at `page` (aligned) user RAM?
fn is_user_ram(page: u64) -> bool {
    // SAFETY: the only borrow of RAM in use; it ends before any call that touches it.
    let ram = unsafe { RAM.get() };
    let Some(page_end) = page.checked_add(PAGE) else {
        return false;
    };
    ram.ranges[..ram.n]
        .iter()
        .any(|&(s, e)| page >= s && page_end <= e)
        && !ram.kernel[..ram.nkernel]
            .iter()
            .any(|&(s, e)| page < e && s < page_end)
}

/// Does `[pa, pa + len)` touch kernel memory (image, pool, a reserved descriptor)? Such
/// memory is never mapped to user space, not even when sigma0 asks (`space.rs`).
pub fn is_kernel(pa: u64, len: u64) -> bool {
    // SAFETY: the only borrow of RAM in use; it ends before any call that touches it.
    let ram = unsafe { RAM.get() };
    let end = pa.saturating_add(len);
    ram.kernel[..ram.nkernel]
        .iter()
        .any(|&(s, e)| pa < e && s < end)
}

/// Kernel address of `len` bytes of user memory at physical `pa` (within one 4 KiB page), if
/// that page is usable RAM the kernel does not own; `None` for device memory, holes, memory
/// beyond the direct map, and kernel memory.
pub fn user_ram(pa: u64, len: u64) -> Option<*mut u8> {
    let page = pa & !(PAGE - 1);
    if len > PAGE - (pa - page) || !is_user_ram(page) {
        return None;
    }
    Some(phys_to_virt(pa) as *mut u8)
}
