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

use crate::arch::x86_64::paging::phys_to_virt;
use crate::sync::KernelCell;

const MAX_RANGES: usize = 32;
const PAGE: u64 = 4096;

struct Ram {
    /// Usable RAM `[start, end)`, page aligned inwards, clipped to the direct map.
    ranges: [(u64, u64); MAX_RANGES],
    n: usize,
    /// Kernel-owned ranges `[start, end)` inside RAM: the image and the pool.
    kernel: [(u64, u64); 2],
}

static RAM: KernelCell<Ram> = KernelCell::new(Ram {
    ranges: [(0, 0); MAX_RANGES],
    n: 0,
    kernel: [(0, 0); 2],
});

/// Records the usable RAM (`ranges`, as the boot loader reported it), the end of the direct
/// map, and the kernel's own ranges (image, pool). Called once at boot.
pub fn init(
    ranges: impl Iterator<Item = (u64, u64)>,
    direct_map_end: u64,
    image: (u64, u64),
    pool: (u64, u64),
) {
    let ram = RAM.get();
    ram.n = 0;
    for (base, end) in ranges {
        let start = base.saturating_add(PAGE - 1) & !(PAGE - 1);
        let end = end.min(direct_map_end) & !(PAGE - 1);
        if start < end && ram.n < MAX_RANGES {
            ram.ranges[ram.n] = (start, end);
            ram.n += 1;
        }
    }
    ram.kernel = [image, pool];
}

/// Is the page at `page` (aligned) user RAM?
fn is_user_ram(page: u64) -> bool {
    let ram = RAM.get();
    let Some(page_end) = page.checked_add(PAGE) else {
        return false;
    };
    ram.ranges[..ram.n]
        .iter()
        .any(|&(s, e)| page >= s && page_end <= e)
        && !ram.kernel.iter().any(|&(s, e)| page < e && s < page_end)
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
