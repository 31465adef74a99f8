//! System-call dispatch: one `match` from the stub a call came through to its handler, with
//! arguments taken from and results written to the caller's `TrapFrame` (register contracts of
//! spec 4.4). Errors of non-IPC calls go to the ErrorCode TCR.

use abi::error::SyscallError;
use abi::fpage::Fpage;
use abi::syscall_args::MemoryControlWord;
use abi::thread_id::ThreadId;
use abi::time::Timeouts;

use crate::arch::syscall::{Syscall, identify};
use crate::arch::trap::TrapFrame;
use crate::decode::{
    MemoryControlArgs, Out, ProcessorControlArgs, ResultReg, ScheduleArgs, SpaceControlArgs,
    ThreadControlArgs, UnmapArgs, finish,
};
use crate::schedule;
use crate::thread;

fn privileged() -> bool {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    (unsafe { thread::current().space() }).privileged
}

/// ProcessorControl: processor 0 only; frequencies and voltage cannot be changed here
/// (docs/decisions).
fn processor_control(a: ProcessorControlArgs) -> Result<Out, SyscallError> {
    if !privileged() {
        Err(SyscallError::NoPrivilege)
    } else if a.processor != 0 {
        Err(SyscallError::InvalidParam)
    } else {
        Ok(Out::Rax(1))
    }
}

/// MemoryControl: only the default attribute (0) exists on this platform so far.
fn memory_control(a: MemoryControlArgs) -> Result<Out, SyscallError> {
    if !privileged() {
        return Err(SyscallError::NoPrivilege);
    }
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    let ok = (0..=a.control.last_mr())
        .all(|i| a.attributes[MemoryControlWord::attribute_index(Fpage::from_raw(cur.mr(i)))] == 0);
    if ok {
        Ok(Out::Rdx(1))
    } else {
        Err(SyscallError::InvalidParam)
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn syscall_dispatch(f: &mut TrapFrame) {
    let Some(call) = identify(f.rcx) else {
        // `syscall` outside the stubs: not a system call; return untouched.
        return;
    };
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    if !(unsafe { thread::current() }).is_activated() {
        return;
    }
    match call {
        Syscall::Ipc | Syscall::Lipc => {
            crate::profile::mark(crate::profile::Point::Dispatch);
            // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
            crate::fastpath::mrs_in(unsafe { thread::current() }, f);
            let (to, from, timeouts) = (
                ThreadId::from_raw(f.rsi),
                ThreadId::from_raw(f.rdx),
                Timeouts(f.r8 & 0xFFFF_FFFF),
            );
            if let Some(r) = crate::ipc::fast_call(to, from, timeouts) {
                f.rsi = r.from.raw();
                schedule::preempt_if_higher();
                crate::profile::mark(crate::profile::Point::Resumed);
                // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
                crate::fastpath::mrs_out(unsafe { thread::current() }, f);
                return;
            }
            let r = crate::ipc::sys_ipc(
                ThreadId::from_raw(f.rsi),
                ThreadId::from_raw(f.rdx),
                Timeouts(f.r8 & 0xFFFF_FFFF),
            );
            f.rsi = r.from.raw();
            schedule::preempt_if_higher();
            crate::profile::mark(crate::profile::Point::Resumed);
            // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
            crate::fastpath::mrs_out(unsafe { thread::current() }, f);
            return;
        }
        Syscall::ExchangeRegisters => crate::exregs::sys_exchange_registers(f),
        Syscall::ThreadControl => finish(
            f,
            crate::thread_control::sys_thread_control(ThreadControlArgs::decode(f)),
            ResultReg::Rax,
        ),
        Syscall::SystemClock => f.rax = crate::interrupt::now_us(),
        Syscall::ThreadSwitch => schedule::sys_thread_switch(ThreadId::from_raw(f.rdi)),
        Syscall::Schedule => finish(
            f,
            schedule::sys_schedule(ScheduleArgs::decode(f)),
            ResultReg::Rax,
        ),
        Syscall::Unmap => finish(
            f,
            crate::space::sys_unmap(UnmapArgs::decode(f)),
            ResultReg::Rax,
        ),
        Syscall::SpaceControl => finish(
            f,
            crate::space::sys_space_control(SpaceControlArgs::decode(f)),
            ResultReg::Rax,
        ),
        Syscall::ProcessorControl => finish(
            f,
            processor_control(ProcessorControlArgs::decode(f)),
            ResultReg::Rax,
        ),
        Syscall::MemoryControl => finish(
            f,
            memory_control(MemoryControlArgs::decode(f)),
            ResultReg::Rdx,
        ),
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
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let t = unsafe { thread::current() };
    let sp = t.kstack_top() - crate::arch::trap::TRAP_FRAME_SIZE as u64;
    // SAFETY: the frame at the top of the current thread's stack holds a complete user state.
    unsafe { trap_return_from(sp) }
}
