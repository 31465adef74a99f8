//! The kernel memory pool: 4 KiB frames for page tables, thread control blocks and kernel
//! stacks, UTCBs and mapping nodes.
//!
//! The pool is one physical range chosen at boot and reported as reserved in the KIP, so that
//! sigma0 never hands it out. Frames come back zeroed. Exhaustion is an ordinary `None`; the
//! callers turn it into the `NoMem` error of the system call that asked.

use crate::arch::x86_64::paging::phys_to_virt;
use crate::sync::KernelCell;

pub const FRAME_SIZE: u64 = 4096;

struct Pool {
    start: u64,
    end: u64,
    /// Frames at and above this address were never handed out.
    fresh: u64,
    /// Physical address of the first free frame (a singly linked list through the frames), 0 = empty.
    free_head: u64,
    in_use: u64,
}

static POOL: KernelCell<Pool> = KernelCell::new(Pool {
    start: 0,
    end: 0,
    fresh: 0,
    free_head: 0,
    in_use: 0,
});

pub fn init(start: u64, end: u64) {
    *POOL.get() = Pool {
        start,
        end,
        fresh: start,
        free_head: 0,
        in_use: 0,
    };
}

pub fn alloc() -> Option<u64> {
    let pool = POOL.get();
    let frame = if pool.free_head != 0 {
        let f = pool.free_head;
        // SAFETY: free frames hold the address of the next free frame in their first word.
        pool.free_head = unsafe { *(phys_to_virt(f) as *const u64) };
        f
    } else if pool.fresh + FRAME_SIZE <= pool.end {
        let f = pool.fresh;
        pool.fresh += FRAME_SIZE;
        f
    } else {
        return None;
    };
    pool.in_use += 1;
    // SAFETY: the frame belongs to the pool and is now exclusively ours.
    unsafe { core::ptr::write_bytes(phys_to_virt(frame) as *mut u8, 0, FRAME_SIZE as usize) };
    Some(frame)
}

/// Returns a frame obtained from `alloc`.
pub fn free(frame: u64) {
    let pool = POOL.get();
    debug_assert!(frame >= pool.start && frame < pool.end && frame.is_multiple_of(FRAME_SIZE));
    // SAFETY: the caller gives the frame back; its first word becomes the list link.
    unsafe { *(phys_to_virt(frame) as *mut u64) = pool.free_head };
    pool.free_head = frame;
    pool.in_use -= 1;
}

/// Frames currently handed out.
pub fn in_use() -> u64 {
    POOL.get().in_use
}

/// Invariant checks (`invariants.rs`): (start, end, fresh, free_head, in_use).
#[cfg(feature = "invariants")]
pub fn pool_for_check() -> (u64, u64, u64, u64, u64) {
    let p = POOL.get();
    (p.start, p.end, p.fresh, p.free_head, p.in_use)
}

/// (start, end) of the pool.
pub fn range() -> (u64, u64) {
    let p = POOL.get();
    (p.start, p.end)
}
