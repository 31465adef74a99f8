//! System-call dispatch: one `match` from the stub a call came through to its handler, with
//! arguments taken from and results written to the caller's `TrapFrame` (register contracts of
//! spec 4.4). Errors of non-IPC calls go to the ErrorCode TCR.

use abi::error::SyscallError;
use abi::fpage::Fpage;
use abi::thread_id::ThreadId;
use abi::time::Timeouts;
use abi::utcb;

use crate::arch::syscall::{Syscall, identify};
use crate::arch::trap::TrapFrame;
use crate::schedule;
use crate::thread;

fn set_error(e: SyscallError) {
    let t = thread::current();
    if t.is_activated() {
        t.set_utcb_word(utcb::ERROR_CODE, e as u64);
    }
}

fn privileged() -> bool {
    thread::current().space().privileged
}

#[unsafe(no_mangle)]
pub extern "C" fn syscall_dispatch(f: &mut TrapFrame) {
    let Some(call) = identify(f.rcx) else {
        // `syscall` outside the stubs: not a system call; return untouched.
        return;
    };
    if !thread::current().is_activated() {
        return;
    }
    match call {
        Syscall::Ipc | Syscall::Lipc => {
            crate::profile::mark(crate::profile::Point::Dispatch);
            let (to, from, timeouts) = (
                ThreadId::from_raw(f.rsi),
                ThreadId::from_raw(f.rdx),
                Timeouts(f.r8 & 0xFFFF_FFFF),
            );
            if let Some(r) = crate::ipc::fast_call(to, from, timeouts) {
                f.rsi = r.from.raw();
                schedule::preempt_if_higher();
                crate::profile::mark(crate::profile::Point::Resumed);
                return;
            }
            let r = crate::ipc::sys_ipc(
                ThreadId::from_raw(f.rsi),
                ThreadId::from_raw(f.rdx),
                Timeouts(f.r8 & 0xFFFF_FFFF),
            );
            f.rsi = r.from.raw();
        }
        Syscall::ExchangeRegisters => crate::exregs::sys_exchange_registers(f),
        Syscall::ThreadControl => {
            let r = crate::thread_control::sys_thread_control(
                ThreadId::from_raw(f.rdi),
                ThreadId::from_raw(f.r8),
                ThreadId::from_raw(f.rdx),
                ThreadId::from_raw(f.rsi),
                f.r9,
            );
            f.rax = match r {
                Ok(()) => 1,
                Err(e) => {
                    set_error(e);
                    0
                }
            };
        }
        Syscall::SystemClock => f.rax = crate::interrupt::now_us(),
        Syscall::ThreadSwitch => schedule::sys_thread_switch(ThreadId::from_raw(f.rdi)),
        Syscall::Schedule => {
            match schedule::sys_schedule(ThreadId::from_raw(f.rdi), f.rdx, f.r8, f.rsi, f.r9) {
                Ok((res, tc)) => {
                    f.rax = res;
                    f.rdx = tc;
                }
                Err(e) => {
                    set_error(e);
                    f.rax = 0;
                }
            }
        }
        Syscall::Unmap => crate::space::sys_unmap(f.rdx),
        Syscall::SpaceControl => {
            match crate::space::sys_space_control(
                ThreadId::from_raw(f.rdi),
                f.rsi,
                Fpage::from_raw(f.rdx),
                Fpage::from_raw(f.r8),
                ThreadId::from_raw(f.r9),
            ) {
                Ok(old) => {
                    f.rax = 1;
                    f.rdx = old;
                }
                Err(e) => {
                    set_error(e);
                    f.rax = 0;
                }
            }
        }
        Syscall::ProcessorControl => {
            // Processor 0 only; frequencies and voltage cannot be changed here (docs/decisions).
            f.rax = if !privileged() {
                set_error(SyscallError::NoPrivilege);
                0
            } else if f.rdi != 0 {
                set_error(SyscallError::InvalidParam);
                0
            } else {
                1
            };
        }
        Syscall::MemoryControl => {
            // Only the default attribute (0) exists on this platform so far.
            let attrs = [f.r9, f.rsi, f.r8, f.r10];
            f.rdx = if !privileged() {
                set_error(SyscallError::NoPrivilege);
                0
            } else {
                let cur = thread::current();
                let k = (f.rdx & 0x3F) as usize;
                let ok = (0..=k).all(|i| attrs[(cur.mr(i) & 3) as usize] == 0);
                if ok {
                    1
                } else {
                    set_error(SyscallError::InvalidParam);
                    0
                }
            };
        }
    }
    schedule::preempt_if_higher();
    crate::profile::mark(crate::profile::Point::Resumed);
}

/// Start of a root server: straight to user mode with its prepared frame.
pub extern "C" fn enter_user(_: u64) -> ! {
    return_to_user()
}

unsafe extern "C" {
    fn trap_return_from(sp: u64) -> !;
}

core::arch::global_asm!(
    r#"
    .text
    .global trap_return_from
trap_return_from:
    movq %rdi, %rsp
    jmp trap_return
    "#,
    options(att_syntax)
);

/// Leaves the kernel for the current thread's saved user state.
pub fn return_to_user() -> ! {
    let t = thread::current();
    let sp = t.kstack_top() - crate::arch::trap::TRAP_FRAME_SIZE as u64;
    // SAFETY: the frame at the top of the current thread's stack holds a complete user state.
    unsafe { trap_return_from(sp) }
}
