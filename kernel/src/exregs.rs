//! ExchangeRegisters (spec 5.2): read and change another thread's user registers and TCRs,
//! cancel its IPC, halt or resume it.

use abi::error::{IpcErrorCode, SyscallError};
use abi::thread_id::ThreadId;
use abi::utcb;

use crate::arch::x86_64::trap::TrapFrame;
use crate::schedule;
use crate::thread::{self, State};

pub fn sys_exchange_registers(f: &mut TrapFrame) {
    let cur = thread::current();
    let dest = ThreadId::from_raw(f.rax);
    let control = f.rsi;
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
    let Some(t) = thread::resolve(cur, dest) else {
        return fail(f);
    };
    if !t.is_activated() || t.id.number() < thread::USER_BASE {
        return fail(f);
    }
    // Same space, or the space of the thread's pager (Pistachio's "pagerexregs").
    let pager_space =
        thread::lookup_global(ThreadId::from_raw(t.utcb_word(utcb::PAGER))).map(|p| p.space);
    if !t.same_space(cur) && pager_space != Some(cur.space) {
        return fail(f);
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
    if control & (1 << 3) != 0 {
        tf.rsp = sp;
    }
    if control & (1 << 4) != 0 {
        // Any value: a non-canonical IP becomes #GP for the thread in `trap_return`.
        tf.rip = ip;
    }
    if control & (1 << 5) != 0 {
        tf.rflags = crate::arch::x86_64::trap::merge_user_rflags(tf.rflags, flags);
    }
    if control & (1 << 6) != 0 {
        t.set_utcb_word(utcb::USER_DEFINED_HANDLE, handle);
    }
    if control & (1 << 7) != 0 {
        t.set_utcb_word(utcb::PAGER, pager);
    }
    let mut out = 0u64;
    if t.halted {
        out |= 1;
    }
    let (sending, receiving) = crate::ipc::cancel(
        t,
        control & (1 << 2) != 0,
        control & (1 << 1) != 0,
        IpcErrorCode::Canceled,
    );
    if sending {
        out |= 4;
    }
    if receiving {
        out |= 2;
    }
    if control & (1 << 8) != 0 {
        let halt = control & 1 != 0;
        if halt && !t.halted {
            t.halted = true;
            schedule::dequeue(t);
        } else if !halt && t.halted {
            t.halted = false;
            if t.state == State::Ready {
                schedule::enqueue(t);
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
        schedule::schedule();
    }
}
