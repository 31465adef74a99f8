//! CPU exceptions: what the kernel does when a thread (or the kernel itself) faults.
//!
//! * In kernel mode: a guarded user-memory access resumes at its fixup; anything else is a
//!   kernel bug: the registers are dumped and the system stops (unless a self-test asked for
//!   exactly that fault).
//! * From user mode: `lock; nop` (#UD) is KernelInterface (spec 4.1); `int3` is the KDB
//!   interface (spec 8); a page fault becomes page-fault IPC to the pager (6.2), or an
//!   idempotent mapping for sigma0; every other exception becomes exception IPC to the
//!   thread's exception handler (6.3). A thread whose fault cannot be delivered is halted.

use abi::msgtag::{MsgTag, labels};
use abi::thread_id::ThreadId;
use abi::utcb;

use crate::arch::paging::USER_END;
use crate::arch::trap::{self, TrapFrame};
use crate::arch::{cpu, usercopy};
use crate::kernel_state::Kernel;
use crate::kip;
use crate::schedule;
use crate::thread;

const VEC_UD: u64 = 6;
const VEC_BP: u64 = 3;
const VEC_PF: u64 = 14;
const VEC_GP: u64 = 13;

/// An exception. One in kernel mode (a user-memory access that faulted, a kernel defect) is
/// not a kernel entry of its own: it runs inside the entry that was interrupted, without a
/// borrow of the kernel state. One from user mode is an entry: it takes the borrow.
pub fn handle(frame: &mut TrapFrame) {
    if !frame.is_from_user() {
        if frame.vector == VEC_PF
            && let Some(to) = usercopy::fixup(frame.rip)
        {
            frame.rip = to;
            return;
        }
        trap::dump(frame);
        crate::debug::on_kernel_fault(frame);
        if crate::selftest::expected(frame.vector) {
            crate::kprintln!("selftest: exception {} reported as expected", frame.vector);
            crate::platform::qemu_exit(crate::platform::EXIT_SUCCESS);
        }
        panic!("unexpected exception {} in kernel mode", frame.vector);
    }
    crate::kernel_state::with_kernel(|k| user_exception(k, frame));
}

fn user_exception(k: &mut Kernel, frame: &mut TrapFrame) {
    match frame.vector {
        VEC_UD if is_kernel_interface(frame.rip) => {
            // SAFETY: the only reference to the KIP in use.
            let k = &(unsafe { kip::kip() });
            // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
            frame.rax = (unsafe { thread::current().space() }).kip_area.base();
            frame.rcx = k.kip.api_version;
            frame.rdx = k.kip.api_flags;
            frame.rsi = k.kernel_desc.kernel_id;
            frame.rip += 2;
        }
        VEC_BP => {
            if !crate::kdb::handle(k, frame) {
                exception_ipc(k, frame);
            } else {
                crate::debug::after_kdb_call(frame);
            }
        }
        VEC_PF => page_fault(k, frame),
        // IO-fpages: a port access to ports the space lacks is an IO page fault (io_space.rs).
        VEC_GP => match crate::io_space::gp_fault(k, frame) {
            crate::io_space::GpOutcome::NotIo => exception_ipc(k, frame),
            crate::io_space::GpOutcome::Retry => {}
            crate::io_space::GpOutcome::Undeliverable(why) => halt_faulting(k, frame, why),
        },
        _ => exception_ipc(k, frame),
    }
}

fn is_kernel_interface(rip: u64) -> bool {
    usercopy::read_u8(rip) == Some(0xF0) && usercopy::read_u8(rip + 1) == Some(0x90)
}

fn page_fault(k: &mut Kernel, frame: &mut TrapFrame) {
    let addr = cpu::read_cr2();
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    let s = unsafe { cur.space() };
    if s.sigma0 && crate::space::sigma0_fault(s, addr) {
        return;
    }
    if addr >= USER_END || frame.error & 4 == 0 {
        // A user access to kernel addresses is not a page fault a pager can resolve (spec 6.2):
        // it becomes an exception message (vector 14) to the exception handler. So is a
        // supervisor-mode access made on the thread's behalf (error code U/S = 0: descriptor
        // tables, or QEMU's far return/`iretq` stack reads under SMAP), which mapping cannot
        // cure: as a pager fault it would repeat for ever.
        return exception_ipc(k, frame);
    }
    let err = frame.error;
    let rwx = if err & (1 << 4) != 0 {
        1
    } else if err & 2 != 0 {
        2
    } else {
        4
    };
    let pager = ThreadId::from_raw(cur.utcb_word(utcb::PAGER));
    let ip = frame.rip;
    if pager.is_nil() {
        return halt_faulting(k, frame, "page fault and no pager");
    }
    let r = crate::ipc::kernel_call(
        k,
        cur,
        pager,
        |t| {
            t.set_mr(0, MsgTag::new(labels::PAGE_FAULT | rwx, 2, 0).raw());
            t.set_mr(1, addr);
            t.set_mr(2, ip);
        },
        |_| {},
    );
    match r {
        Ok(()) => {}
        Err(code) if crate::ipc::was_aborted(code) => {} // retry the instruction
        Err(_) => halt_faulting(k, frame, "page-fault IPC to the pager failed"),
    }
}

/// Exception IPC (spec 6.3): MR1..MR18 registers, MR19 vector, MR20 error code; the reply's
/// MR1..MR18 become the new registers (RFLAGS through the user mask).
fn exception_ipc(k: &mut Kernel, frame: &mut TrapFrame) {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    let handler = ThreadId::from_raw(cur.utcb_word(utcb::EXCEPTION_HANDLER));
    if handler.is_nil() {
        return halt_faulting(k, frame, "exception with no exception handler");
    }
    let f = *frame;
    let regs = [
        f.rip, f.rbx, f.r10, f.r12, f.r13, f.r14, f.r15, f.rax, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp,
        f.r8, f.r9, f.r11, f.rsp, f.rflags,
    ];
    let mut reply = [0u64; 18];
    let r = crate::ipc::kernel_call(
        k,
        cur,
        handler,
        |t| {
            t.set_mr(
                0,
                MsgTag::new(labels::EXCEPTION, abi::exception::EXCEPTION_MSG_UNTYPED, 0).raw(),
            );
            for (i, r) in regs.iter().enumerate() {
                t.set_mr(i + 1, *r);
            }
            t.set_mr(19, f.vector);
            t.set_mr(20, f.error);
        },
        |t| {
            for (i, r) in reply.iter_mut().enumerate() {
                *r = t.mr(i + 1);
            }
        },
    );
    match r {
        Ok(()) => {}
        Err(code) if crate::ipc::was_aborted(code) => return, // re-execute, fault again
        Err(_) => return halt_faulting(k, frame, "exception IPC failed"),
    }
    let fr = &mut *frame;
    fr.rip = reply[0]; // non-canonical: #GP for the thread in `trap_return`
    fr.rbx = reply[1];
    fr.r10 = reply[2];
    fr.r12 = reply[3];
    fr.r13 = reply[4];
    fr.r14 = reply[5];
    fr.r15 = reply[6];
    fr.rax = reply[7];
    fr.rcx = reply[8];
    fr.rdx = reply[9];
    fr.rsi = reply[10];
    fr.rdi = reply[11];
    fr.rbp = reply[12];
    fr.r8 = reply[13];
    fr.r9 = reply[14];
    fr.r11 = reply[15];
    fr.rsp = reply[16];
    fr.rflags = trap::merge_user_rflags(fr.rflags, reply[17]);
}

fn halt_faulting(k: &mut Kernel, frame: &mut TrapFrame, why: &str) {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    crate::kprintln!("thread {:#x}: {}; halted", cur.id.raw(), why);
    trap::dump(frame);
    cur.halted = true;
    schedule::dequeue(k, cur);
    crate::debug::on_user_fault(frame, why);
    schedule::schedule(k);
}
