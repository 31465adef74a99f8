//! Helpers shared by the test modules: helper threads in the root server's own space.

use abi::ThreadId;
use l4::{kip, syscall, utcb};

/// The root server's global id.
pub fn root() -> ThreadId {
    ThreadId::global(kip::thread_info().user_base() + 2, 1)
}

/// Touches every page of a stack (so its thread never faults on it) and returns the initial
/// stack pointer (top − 8, as after a call).
pub fn prefault_stack(stack: *mut u8, len: usize) -> u64 {
    for p in (0..len).step_by(4096) {
        // SAFETY: callers pass a static stack array that no running thread uses yet.
        unsafe { core::ptr::write_volatile(stack.add(p), 0) };
    }
    stack as u64 + len as u64 - 8
}

/// The UTCB location of UTCB slot `slot` (1 KiB each) in the root's UTCB area.
pub fn utcb_slot(slot: u64) -> u64 {
    (utcb::my_local_id().raw() & !0xFFF) + 0x400 * slot
}

/// Creates `id` in the root's space with `pager`, its UTCB in `slot`, and starts it at `entry`
/// on the stack whose initial pointer is `sp`. False (ErrorCode set) if ThreadControl failed.
pub fn spawn_local(
    id: ThreadId,
    slot: u64,
    sp: u64,
    entry: extern "C" fn() -> !,
    pager: ThreadId,
) -> bool {
    let me = utcb::my_global_id();
    if syscall::thread_control(id, me, me, pager, utcb_slot(slot)) != 1 {
        return false;
    }
    l4::thread::start(id, sp, entry as usize as u64);
    true
}

/// Deletes a thread.
pub fn kill(id: ThreadId) {
    syscall::thread_control(id, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX);
}
