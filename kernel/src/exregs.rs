//! ExchangeRegisters (spec 5.2): read and change another thread's user registers and TCRs,
//! cancel its IPC, halt or resume it.

use abi::ExregsControl;
use abi::error::{IpcErrorCode, SyscallError};
use abi::thread_id::ThreadId;
use abi::utcb;

use crate::arch::trap::TrapFrame;
use crate::kernel_state::Kernel;
use crate::schedule::{self, Next};
use crate::thread::{self, State};

/// Returns the scheduling decision: a thread that halted itself leaves the processor.
pub fn sys_exchange_registers(k: &mut Kernel, f: &mut TrapFrame) -> Next {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    let dest = ThreadId::from_raw(f.rax);
    // Decoded once, with the `abi` type (spec 5.2 bit layout).
    let control = ExregsControl::from_raw(f.rsi);
    let fail = |f: &mut TrapFrame| {
        cur.set_utcb_word(utcb::ERROR_CODE, SyscallError::InvalidThread as u64);
        f.rax = 0;
        f.rsi = 0;
        f.rdx = 0;
        f.r8 = 0;
        f.r9 = 0;
        f.r10 = 0;
        f.rdi = 0;
    };
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let Some(t) = (unsafe { thread::resolve(cur, dest) }) else {
        fail(f);
        return Next::Stay;
    };
    if !t.is_activated() || t.id.number() < thread::USER_BASE {
        fail(f);
        return Next::Stay;
    }
    // Same space, or the space of the thread's pager (Pistachio's "pagerexregs").
    let pager_space =
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        (unsafe { thread::lookup_global(ThreadId::from_raw(t.utcb_word(utcb::PAGER))) }).map(|p| p.space);
    if !t.same_space(cur) && pager_space != Some(cur.space) {
        fail(f);
        return Next::Stay;
    }
    let result_id = if dest.is_local() { t.id } else { t.local_id() };
    let is_self = core::ptr::eq(t, cur);
    let (sp, ip, flags, handle, pager) = (f.rdx, f.r8, f.r9, f.r10, f.rdi);
    let old_handle = t.utcb_word(utcb::USER_DEFINED_HANDLE);
    let old_pager = t.utcb_word(utcb::PAGER);
    // SAFETY: `t` is not running (or is the caller, whose live frame is `f`); its saved frame
    // is at the top of its kernel stack.
    let tf: &mut TrapFrame = if is_self {
        &mut *f
    } else {
        unsafe { &mut *(t.frame() as *mut TrapFrame) }
    };
    let old_sp = tf.rsp;
    let old_ip = tf.rip;
    let old_flags = tf.rflags;
    if control.has(ExregsControl::SET_SP) {
        tf.rsp = sp;
    }
    if control.has(ExregsControl::SET_IP) {
        // Any value: a non-canonical IP becomes #GP for the thread in `trap_return`.
        tf.rip = ip;
    }
    if control.has(ExregsControl::SET_FLAGS) {
        tf.rflags = crate::arch::trap::merge_user_rflags(tf.rflags, flags);
    }
    if control.has(ExregsControl::SET_HANDLE) {
        t.set_utcb_word(utcb::USER_DEFINED_HANDLE, handle);
    }
    if control.has(ExregsControl::SET_PAGER) {
        t.set_utcb_word(utcb::PAGER, pager);
    }
    let mut out = 0u64;
    if t.halted {
        out |= ExregsControl::OUT_HALTED;
    }
    let (sending, receiving) = crate::ipc::cancel(
        k,
        t,
        control.has(ExregsControl::ABORT_SEND),
        control.has(ExregsControl::ABORT_RECEIVE),
        IpcErrorCode::Canceled,
    );
    if sending {
        out |= ExregsControl::OUT_SENDING;
    }
    if receiving {
        out |= ExregsControl::OUT_RECEIVING;
    }
    if control.has(ExregsControl::APPLY_HALT) {
        let halt = control.halt();
        if halt && !t.halted {
            t.halted = true;
            schedule::dequeue(k, t);
        } else if !halt && t.halted {
            t.halted = false;
            if t.state == State::Ready {
                schedule::enqueue(k, t);
            }
        }
    }
    f.rax = result_id.raw();
    f.rsi = out;
    f.rdx = old_sp;
    f.r8 = old_ip;
    f.r9 = old_flags;
    f.r10 = old_handle;
    f.rdi = old_pager;
    if is_self && t.halted {
        Next::Switch
    } else {
        Next::Stay
    }
}
