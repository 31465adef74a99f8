//! Lazy FPU/SSE switching (issue 12): the registers stay with their owner until another
//! thread touches them.
//!
//! A switch to a thread that does not own the FPU registers sets CR0.TS (once: the flag is
//! tracked here, so a run of switches between threads that never use the FPU writes CR0 at
//! most once and saves or restores nothing); a switch back to the owner clears it. The first
//! FPU/SSE instruction of a thread that does not own the registers raises #NM, and
//! [`device_not_available`] saves the owner's image into its save area, loads the running
//! thread's, and makes it the owner. Correct under preemption (a switch is a switch, whoever
//! causes it) and exceptions (exception IPC does not touch the FPU; a handler that uses it
//! takes the registers like any thread). A deleted owner is forgotten ([`forget`]) so that a
//! new thread whose save area lands at the same address never inherits its registers. The
//! kernel never uses the FPU itself (soft-float target), so #NM in kernel mode is a bug.
//!
//! Owns: the owner's save-area address and the state of CR0.TS.

use super::cpu;
use crate::counters::{self, Event};
use crate::sync::KernelCell;

pub(crate) struct Lazy {
    /// Save area of the thread whose state is in the registers (null: nobody's, e.g. at boot
    /// or after the owner was deleted).
    pub(crate) owner: *mut u8,
    /// Whether CR0.TS is set.
    pub(crate) ts: bool,
}

pub(crate) static LAZY: KernelCell<Lazy> = KernelCell::new(Lazy {
    owner: core::ptr::null_mut(),
    ts: false,
});

const CR0_TS: u64 = 1 << 3;

/// A switch to the thread with save area `next`: the registers stay where they are; TS says
/// whether they are `next`'s.
#[inline(always)]
pub fn switch_to(next: *mut u8) {
    // SAFETY: the only borrow of LAZY in use; it ends before any call that touches it.
    let l = unsafe { LAZY.get() };
    let ts = l.owner != next;
    if ts != l.ts {
        l.ts = ts;
        counters::count(Event::Cr0Write);
        if ts {
            // SAFETY: only TS changes; the kernel never uses the FPU.
            unsafe { cpu::write_cr0(cpu::read_cr0() | CR0_TS) };
        } else {
            // SAFETY: `clts` only clears TS.
            unsafe { core::arch::asm!("clts", options(nomem, nostack, preserves_flags)) };
        }
    }
}

/// #NM from user mode: the running thread (save area `mine`) takes the registers. Always the
/// kernel's (CR0.EM is off: TS is the only cause), never exception IPC.
pub fn device_not_available(mine: *mut u8) {
    // SAFETY: the only borrow of LAZY in use; it ends before any call that touches it.
    let l = unsafe { LAZY.get() };
    // SAFETY: `clts` only clears TS.
    unsafe { core::arch::asm!("clts", options(nomem, nostack, preserves_flags)) };
    counters::count(Event::Cr0Write);
    l.ts = false;
    if l.owner == mine {
        return;
    }
    if !l.owner.is_null() {
        counters::count(Event::FpuSave);
        // SAFETY: the owner is a live thread (deletion calls `forget`); its area is 512 bytes,
        // 16-aligned.
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) l.owner, options(nostack)) };
    }
    counters::count(Event::FpuRestore);
    // SAFETY: the running thread's area holds a valid image (`init_image` at creation).
    unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) mine, options(nostack)) };
    l.owner = mine;
}

/// The thread with save area `area` is being deleted: its registers are nobody's now.
pub fn forget(area: *mut u8) {
    // SAFETY: the only borrow of LAZY in use; it ends before any call that touches it.
    let l = unsafe { LAZY.get() };
    if l.owner == area {
        l.owner = core::ptr::null_mut();
        // The next switch must set TS again even if it goes to a thread at the same address.
        if !l.ts {
            l.ts = true;
            counters::count(Event::Cr0Write);
            // SAFETY: only TS changes.
            unsafe { cpu::write_cr0(cpu::read_cr0() | CR0_TS) };
        }
    }
}

/// The FPU/SSE image every new thread starts with (that of `fninit` plus the default MXCSR),
/// written without touching the registers.
pub fn init_image(area: &mut [u8; 512]) {
    area.fill(0);
    // FCW 0x037F (all exceptions masked, extended precision, round to nearest).
    area[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
    // MXCSR 0x1F80 (all SIMD exceptions masked).
    area[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
}
