//! The kernel memory pool: 4 KiB frames for page tables, thread control blocks and kernel
//! stacks, UTCBs and mapping nodes.
//!
//! The pool is one physical range chosen at boot and reported as reserved in the KIP, so that
//! sigma0 never hands it out. Frames come back zeroed. Exhaustion is an ordinary `None`; the
//! callers turn it into the `NoMem` error of the system call that asked.
//!
//! Owners that hold many frames (a space: its page tables and UTCB pages) keep them on a
//! [`FrameList`], a doubly linked list threaded through a link table at the start of the pool
//! (8 bytes per frame, 0.2 % of the pool), so that they give them back without searching for
//! them (issue 17: deleting a space never reads the entries of its page tables).

use core::cell::Cell;

use crate::arch::paging::phys_to_virt;
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
    /// Frames at the start of the pool that hold the link table of [`FrameList`]s.
    link_frames: u64,
}

static POOL: KernelCell<Pool> = KernelCell::new(Pool {
    start: 0,
    end: 0,
    fresh: 0,
    free_head: 0,
    in_use: 0,
    link_frames: 0,
});

pub fn init(start: u64, end: u64) {
    // The link table: one [next, prev] pair of u32 per frame, never handed out. Its entries
    // are written when a frame joins a list, so it needs no initialisation here.
    let frames = (end - start) / FRAME_SIZE;
    let link_frames = (frames * 8).div_ceil(FRAME_SIZE).min(frames);
    // SAFETY: the only borrow of POOL in use; it ends before any call that touches it.
    *(unsafe { POOL.get() }) = Pool {
        start,
        end,
        fresh: start + link_frames * FRAME_SIZE,
        free_head: 0,
        in_use: link_frames,
        link_frames,
    };
}

pub fn alloc() -> Option<u64> {
    // SAFETY: the only borrow of POOL in use; it ends before any call that touches it.
    let pool = unsafe { POOL.get() };
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

/// `n` physically contiguous frames (not zeroed), from the part of the pool never handed out;
/// for the boot-time allocation of the mapping database. Never returned.
pub fn alloc_contiguous(n: u64) -> Option<u64> {
    // SAFETY: the only borrow of POOL in use; it ends before any call that touches it.
    let pool = unsafe { POOL.get() };
    let bytes = n.checked_mul(FRAME_SIZE)?;
    if pool.fresh.checked_add(bytes)? > pool.end {
        return None;
    }
    let f = pool.fresh;
    pool.fresh += bytes;
    pool.in_use += n;
    Some(f)
}

/// Returns a frame obtained from `alloc`.
pub fn free(frame: u64) {
    // SAFETY: the only borrow of POOL in use; it ends before any call that touches it.
    let pool = unsafe { POOL.get() };
    debug_assert!(frame >= pool.start && frame < pool.end && frame.is_multiple_of(FRAME_SIZE));
    // SAFETY: the caller gives the frame back; its first word becomes the list link.
    unsafe { *(phys_to_virt(frame) as *mut u64) = pool.free_head };
    pool.free_head = frame;
    pool.in_use -= 1;
}

/// Frames currently handed out.
pub fn in_use() -> u64 {
    // SAFETY: the only borrow of POOL in use; it ends before any call that touches it.
    (unsafe { POOL.get() }).in_use
}

/// Invariant checks (`invariants.rs`): (start, end, fresh, free_head, in_use).
#[cfg(feature = "invariants")]
pub fn pool_for_check() -> (u64, u64, u64, u64, u64) {
    // SAFETY: the only borrow of POOL in use; it ends before any call that touches it.
    let p = unsafe { POOL.get() };
    (p.start, p.end, p.fresh, p.free_head, p.in_use)
}

/// (start, end) of the pool.
pub fn range() -> (u64, u64) {
    // SAFETY: the only borrow of POOL in use; it ends before any call that touches it.
    let p = unsafe { POOL.get() };
    (p.start, p.end)
}

/// No frame (end of a list).
const NIL: u32 = u32::MAX;

/// Where the [next, prev] links of pool frame `frame` are (a frame of the pool outside the
/// link table). Read and written whole through `links` / `set_link`: no reference escapes.
fn link_slot(frame: u64) -> *mut [u32; 2] {
    // SAFETY: the only borrow of POOL in use; it ends before any call that touches it.
    let pool = unsafe { POOL.get() };
    let i = (frame - pool.start) / FRAME_SIZE;
    assert!(
        frame >= pool.start + pool.link_frames * FRAME_SIZE && frame < pool.end,
        "frame list: not a pool frame"
    );
    // The link table holds 8 bytes per pool frame in the pool's first `link_frames` frames,
    // which are never handed out; `i` < the number of pool frames (checked above).
    (phys_to_virt(pool.start) as *mut [u32; 2]).wrapping_add(i as usize)
}

fn links(frame: u64) -> [u32; 2] {
    // SAFETY: `link_slot` is in the link table, which only this module touches, by value.
    unsafe { *link_slot(frame) }
}

fn set_links(frame: u64, v: [u32; 2]) {
    // SAFETY: as in `links`.
    unsafe { *link_slot(frame) = v }
}

fn set_link(frame: u64, which: usize, v: u32) {
    let p = link_slot(frame);
    // SAFETY: as in `links` (a place expression: no reference is formed).
    unsafe { (*p)[which & 1] = v }
}

fn number(frame: u64) -> u32 {
    // SAFETY: the only borrow of POOL in use; it ends before any call that touches it.
    ((frame - (unsafe { POOL.get() }).start) / FRAME_SIZE) as u32
}

fn address(n: u32) -> u64 {
    // SAFETY: the only borrow of POOL in use; it ends before any call that touches it.
    (unsafe { POOL.get() }).start + n as u64 * FRAME_SIZE
}

/// Pool frames owned by one object, doubly linked through the pool's link table: push,
/// remove and pop are O(1). A frame is on at most one list, and only while allocated.
pub struct FrameList {
    head: Cell<u32>,
}

impl FrameList {
    /// No frames.
    pub const fn new() -> FrameList {
        FrameList {
            head: Cell::new(NIL),
        }
    }

    /// Adds an allocated frame that is on no list.
    pub fn push(&self, frame: u64) {
        let n = number(frame);
        let head = self.head.get();
        set_links(frame, [head, NIL]);
        if head != NIL {
            set_link(address(head), 1, n);
        }
        self.head.set(n);
    }

    /// Takes `frame` (which is on this list) off it.
    pub fn remove(&self, frame: u64) {
        let [next, prev] = links(frame);
        if prev != NIL {
            set_link(address(prev), 0, next);
        } else {
            debug_assert!(self.head.get() == number(frame));
            self.head.set(next);
        }
        if next != NIL {
            set_link(address(next), 1, prev);
        }
    }

    /// The number of frames on the list (invariant checks only: a walk of the list).
    #[cfg(feature = "invariants")]
    pub fn len_for_check(&self) -> u64 {
        let (mut n, mut f) = (0u64, self.head.get());
        while f != NIL {
            n += 1;
            f = links(address(f))[0];
        }
        n
    }

    /// Takes any frame off the list.
    pub fn pop(&self) -> Option<u64> {
        let h = self.head.get();
        if h == NIL {
            return None;
        }
        let f = address(h);
        self.remove(f);
        Some(f)
    }
}
