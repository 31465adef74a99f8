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
use crate::kernel_state::{Kernel, with_kernel};
use crate::schedule::{self, Next};
use crate::thread;

fn privileged(k: &Kernel) -> bool {
    // SAFETY: a thread's space outlives it; a read of one field.
    (unsafe { k.current().space() }).privileged
}

/// ProcessorControl: processor 0 only; frequencies and voltage cannot be changed here
/// (docs/decisions).
fn processor_control(k: &Kernel, a: ProcessorControlArgs) -> Result<Out, SyscallError> {
    if !privileged(k) {
        Err(SyscallError::NoPrivilege)
    } else if a.processor != 0 {
        Err(SyscallError::InvalidParam)
    } else {
        Ok(Out::Rax(1))
    }
}

/// MemoryControl: only the default attribute (0) exists on this platform so far.
fn memory_control(k: &Kernel, a: MemoryControlArgs) -> Result<Out, SyscallError> {
    if !privileged(k) {
        return Err(SyscallError::NoPrivilege);
    }
    let cur = k.current();
    let ok = (0..=a.control.last_mr())
        .all(|i| a.attributes[MemoryControlWord::attribute_index(Fpage::from_raw(cur.mr(i)))] == 0);
    if ok {
        Ok(Out::Rdx(1))
    } else {
        Err(SyscallError::InvalidParam)
    }
}

/// The general system-call entry (`syscall_dispatch_vector` while the event trace is on):
/// the entry borrow of the kernel state, then [`dispatch`].
#[unsafe(no_mangle)]
pub extern "C" fn syscall_dispatch(f: &mut TrapFrame) {
    with_kernel(|k| dispatch(k, f))
}

/// One system call: decode, run the handler, carry out its scheduling decision once on the
/// way out (`schedule::finish`).
#[inline(always)]
fn dispatch(k: &mut Kernel, f: &mut TrapFrame) {
    let Some(call) = identify(f.rcx) else {
        // `syscall` outside the stubs: not a system call; return untouched.
        return;
    };
    #[cfg(feature = "invariants")]
    crate::invariants::running_unblocked(
        k.current(),
        "entered a system call",
        core::panic::Location::caller(),
    );
    if !k.current().is_activated() {
        return;
    }
    match call {
        Syscall::Ipc | Syscall::Lipc => {
            crate::profile::mark(crate::profile::Point::Dispatch);
            crate::fastpath::mrs_in(k.current(), f);
            let (to, from, timeouts) = (
                ThreadId::from_raw(f.rsi),
                ThreadId::from_raw(f.rdx),
                Timeouts(f.r8 & 0xFFFF_FFFF),
            );
            if let Some(r) = crate::ipc::fast_call(k, to, from, timeouts) {
                f.rsi = r.from.raw();
                schedule::finish(k, Next::Stay);
                crate::profile::mark(crate::profile::Point::Resumed);
                crate::fastpath::mrs_out(k.current(), f);
                return;
            }
            let r = crate::ipc::sys_ipc(
                k,
                ThreadId::from_raw(f.rsi),
                ThreadId::from_raw(f.rdx),
                Timeouts(f.r8 & 0xFFFF_FFFF),
            );
            f.rsi = r.from.raw();
            schedule::finish(k, Next::Stay);
            crate::profile::mark(crate::profile::Point::Resumed);
            crate::fastpath::mrs_out(k.current(), f);
            return;
        }
        // The two calls whose decision can be other than `Stay`: carried out here; when the
        // thread runs again, the `Stay` below looks once more (as every call does).
        Syscall::ExchangeRegisters => {
            let next = crate::exregs::sys_exchange_registers(k, f);
            if next != Next::Stay {
                schedule::finish(k, next);
            }
        }
        Syscall::ThreadSwitch => {
            let next = schedule::sys_thread_switch(k, ThreadId::from_raw(f.rdi));
            if next != Next::Stay {
                schedule::finish(k, next);
            }
        }
        Syscall::ThreadControl => {
            let r = crate::thread_control::sys_thread_control(k, ThreadControlArgs::decode(f));
            finish(f, r, ResultReg::Rax)
        }
        Syscall::SystemClock => f.rax = crate::interrupt::now_us(),
        Syscall::Schedule => {
            let r = schedule::sys_schedule(k, ScheduleArgs::decode(f));
            finish(f, r, ResultReg::Rax)
        }
        Syscall::Unmap => finish(
            f,
            crate::space::sys_unmap(k, UnmapArgs::decode(f)),
            ResultReg::Rax,
        ),
        Syscall::SpaceControl => finish(
            f,
            crate::space::sys_space_control(k, SpaceControlArgs::decode(f)),
            ResultReg::Rax,
        ),
        Syscall::ProcessorControl => finish(
            f,
            processor_control(k, ProcessorControlArgs::decode(f)),
            ResultReg::Rax,
        ),
        Syscall::MemoryControl => finish(
            f,
            memory_control(k, MemoryControlArgs::decode(f)),
            ResultReg::Rdx,
        ),
    }
    // Every other call decided `Stay`.
    schedule::finish(k, Next::Stay);
    crate::profile::mark(crate::profile::Point::Resumed);
}

/// Start of a root server: straight to user mode with its prepared frame.
pub extern "C" fn enter_user(_: u64) -> ! {
    // First run: the thread that switched here handed on its entry borrow; it ends here.
    crate::kernel_state::continue_entry(|_| ());
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
