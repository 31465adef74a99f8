//! The IPC fast path (issue 12, decision 004): a guard chain in front of the general system-
//! call dispatch for the Ipc and Lipc stubs.
//!
//! The guards and the state changes are `ipc::fast_send`, shared with the general path's own
//! shortcut `ipc::fast_call`: an untyped message without flags to a user thread that waits in a
//! receive accepting us (not halted), with a receive phase that has a non-zero timeout (from
//! that thread, or open while nobody is queued for us and no interrupt is pending), no
//! propagated message queued for us. At the first other condition (typed items, propagation,
//! a zero receive timeout, a partner not waiting or halted, a kernel or interrupt thread, a
//! thread not activated, the debugger's event trace on: it redirects the entry vector to its
//! own wrapper) the general path runs, having found nothing changed. A higher-priority ready
//! thread is no reason to fall back: the next thread is the scheduler's choice, as in the
//! general path.
//!
//! What the fast path saves is the general path's blocking inside Rust frames: the caller,
//! now `RecvBlocked` exactly as `fast_call` leaves it (queues, timer, closed-receiver list,
//! ready queue), gives up its kernel stack below the trap frame (`schedule::leave_current`)
//! and records as its saved stack pointer [`fast_resume_frame`], a constant frame whose return
//! address is [`fastpath_resume_entry`]. Whoever switches to it next (this fast path, the
//! scheduler after a timeout, an abort, a deletion of the partner, a tunnelled fault) lands
//! there: the thread finishes its receive on a fresh stack (`ipc::fast_finish`: tunnelled
//! faults, the outcome into ErrorCode, RSI = from) and leaves through `trap_return`. A partner
//! blocked that way therefore costs no unwinding of `fast_call` → `block_current` →
//! `schedule` → `switch_to` → `context::switch` frames.
//!
//! May touch: the current thread's trap frame and saved stack pointer; everything else through
//! `ipc` and `schedule`.

use abi::thread_id::ThreadId;
use abi::time::Timeouts;
use core::arch::global_asm;

use crate::arch::syscall::stubs_base;
use crate::arch::trap::TrapFrame;
use crate::counters::{self, Event};
use crate::kernel_state::{Kernel, continue_entry, with_kernel};
use crate::thread::IpcWake;
use crate::{ipc, schedule, thread};

global_asm!(
    r#"
    .text
    /* A thread that blocked in the fast path continues here on its next switch-in (reached
       by `switch_stacks`/`load_stack` popping `fast_resume_frame`; RSP points into that
       read-only frame, so nothing is pushed before the stack is reloaded): its own kernel
       stack right below its trap frame. */
    .global fastpath_resume_entry
fastpath_resume_entry:
    movq CURRENT_KSTACK_TOP(%rip), %rsp
    subq ${frame}, %rsp
    movq %rsp, %rdi
    call fastpath_resumed
    jmp trap_return

    .section .rodata.fast_resume_frame, "a"
    .balign 8
    .global fast_resume_frame
fast_resume_frame:
    .quad 0, 0, 0, 0, 0, 0      /* r15, r14, r13, r12, rbp, rbx */
    .quad fastpath_resume_entry
    .text
    "#,
    frame = const crate::arch::trap::TRAP_FRAME_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    static fast_resume_frame: [u64; 7];
}

/// The saved stack pointer of a thread blocked in the fast path.
fn resume_ksp() -> u64 {
    // SAFETY: only the address of the constant frame is taken.
    unsafe { fast_resume_frame.as_ptr() as u64 }
}

/// The system-call entry's dispatch vector (`syscall_dispatch_vector`) while the event trace
/// is off: the fast path for Ipc and Lipc, else (and on every fall-back) the general
/// dispatch.
#[unsafe(no_mangle)]
pub extern "C" fn fastpath_dispatch(f: &mut TrapFrame) {
    counters::count(Event::SyscallEntry);
    // The Ipc (0) and Lipc (1) stub slots. This borrow of the kernel state ends before the
    // general dispatch takes its own (one borrow at a time; and `syscall::dispatch` stays
    // inlined into its one caller).
    if f.rcx.wrapping_sub(stubs_base()) < 512 && with_kernel(|k| general_ipc(k, f)) {
        return;
    }
    crate::syscall::syscall_dispatch(f)
}

/// The IPC of an Ipc/Lipc stub: the fast path, else the general IPC. False, having done
/// nothing, if the thread is not activated (`syscall_dispatch` ignores the call).
#[inline(always)]
fn general_ipc(k: &mut Kernel, f: &mut TrapFrame) -> bool {
    if !try_ipc(k, f) {
        return false;
    }
    // The fast path does not apply. `syscall_dispatch` would try `ipc::fast_call`, whose
    // guards are the ones that just failed on the same state: straight to the general IPC
    // instead (what `syscall_dispatch` does after its shortcut).
    let r = ipc::sys_ipc(
        k,
        ThreadId::from_raw(f.rsi),
        ThreadId::from_raw(f.rdx),
        Timeouts(f.r8 & 0xFFFF_FFFF),
    );
    f.rsi = r.from.raw();
    schedule::finish(k, schedule::Next::Stay);
    crate::profile::mark(crate::profile::Point::Resumed);
    true
}

/// Returns only if the fast path does not apply (nothing changed): true if the general IPC
/// is to run, false if the thread is not activated (`syscall_dispatch` ignores the call).
#[inline(never)]
fn try_ipc(k: &mut Kernel, f: &mut TrapFrame) -> bool {
    #[cfg(feature = "invariants")]
    crate::invariants::running_unblocked(
        k.current(),
        "entered the IPC fast path",
        core::panic::Location::caller(),
    );
    if !k.current().is_activated() {
        return false;
    }
    let Some((deadline, dest)) = ipc::fast_send(
        k,
        ThreadId::from_raw(f.rsi),
        ThreadId::from_raw(f.rdx),
        Timeouts(f.r8 & 0xFFFF_FFFF),
    ) else {
        return true;
    };
    counters::count(Event::FastPath);
    schedule::block_prepare(k, deadline);
    // If the partner runs next and blocked here too, all that is left of its receive is
    // what `fastpath_resumed` would do with a plain delivery: RSI = from (no tunnelled
    // fault, no error; it is the highest-priority ready thread, so no preemption).
    schedule::leave_current(k, resume_ksp(), dest, |d| {
        if d.wake != IpcWake::Done {
            return false;
        }
        d.frame().rsi = d.ipc_from.raw();
        true
    })
}

/// A thread that blocked in the fast path runs again (on a fresh stack, below `f`).
#[unsafe(no_mangle)]
extern "C" fn fastpath_resumed(f: &mut TrapFrame) {
    // A fresh frame after a switch: the borrow of the thread that switched here goes on.
    continue_entry(|k| {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let r = ipc::fast_finish(k, unsafe { thread::current() });
        f.rsi = r.from.raw();
        schedule::finish(k, schedule::Next::Stay);
    });
    crate::profile::mark(crate::profile::Point::Resumed);
}
