//! Per-thread CPU state (spec 1 items 18, 19; 4.2; 8): SSE registers survive switches to
//! another thread that uses them too, `%gs:0` is each thread's own UTCB pointer, and the kernel
//! debugger interface prints, reads and enters. The helper's id, slot and stack come from
//! the check's [`Cx`].

use core::sync::atomic::{AtomicU64, Ordering};

use abi::ThreadId;
use l4::{kdb, msg, syscall, utcb};

use crate::conformance::{Check, Cx};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "cpu.sse_and_gs",
        run: sse_and_gs,
    },
    Check {
        name: "kdb",
        run: kdb_interface,
    },
];

static OTHER_GS: AtomicU64 = AtomicU64::new(0);
static OTHER_DONE: AtomicU64 = AtomicU64::new(0);

/// Loads its own values into xmm0..xmm15 repeatedly while yielding, records its `%gs:0`.
extern "C" fn sse_clobberer() -> ! {
    OTHER_GS.store(utcb::utcb_pointer() as u64, Ordering::SeqCst);
    for _ in 0..50 {
        // SAFETY: only vector registers of this thread are written.
        unsafe {
            core::arch::asm!(
                "mov rax, 0x5555555555555555",
                "movq xmm0, rax", "movq xmm1, rax", "movq xmm2, rax", "movq xmm3, rax",
                "movq xmm8, rax", "movq xmm15, rax",
                out("rax") _, out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm8") _, out("xmm15") _,
            )
        };
        syscall::thread_switch(ThreadId::NIL);
    }
    OTHER_DONE.store(1, Ordering::SeqCst);
    loop {
        let _ = msg::receive(utcb::my_global_id());
    }
}

/// SSE registers survive switches to a thread that uses them too; `%gs:0` is each thread's
/// own UTCB.
fn sse_and_gs(s: &mut Cx) {
    OTHER_GS.store(0, Ordering::SeqCst);
    OTHER_DONE.store(0, Ordering::SeqCst);
    let me = utcb::my_global_id();
    let t = s.thread();
    let (loc, top) = (s.slot(), s.stack());
    if syscall::thread_control(t, me, me, me, loc) != 1 {
        s.check(
            "cpu.helper",
            false,
            format_args!("error {}", utcb::error_code()),
        );
        return;
    }
    // Same priority as the helper, so that ThreadSwitch alternates between us.
    syscall::schedule(me, u64::MAX, u64::MAX, 100, u64::MAX);
    syscall::schedule(t, u64::MAX, u64::MAX, 100, u64::MAX);
    l4::thread::start(
        t,
        top,
        sse_clobberer as extern "C" fn() -> ! as usize as u64,
    );
    let mut kept = true;
    for i in 0..50u64 {
        let pattern = 0x1111_0000_0000_0000 | i;
        let (a, b, c): (u64, u64, u64);
        // SAFETY: our own vector registers; ThreadSwitch (callq through the KIP link) clobbers
        // nothing but what the stub declares, so the kernel must preserve xmm state.
        unsafe {
            core::arch::asm!(
                "movq xmm0, {p}",
                "movq xmm8, {p}",
                "movq xmm15, {p}",
                "push rbp",
                "xor edi, edi",
                "call {link}",
                "pop rbp",
                "movq {a}, xmm0",
                "movq {b}, xmm8",
                "movq {c}, xmm15",
                p = in(reg) pattern,
                link = in(reg) syscall::link_address(syscall::link::THREAD_SWITCH),
                a = out(reg) a, b = out(reg) b, c = out(reg) c,
                out("rdi") _, out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                out("xmm0") _, out("xmm8") _, out("xmm15") _,
            )
        };
        if a != pattern || b != pattern || c != pattern {
            kept = false;
            s.check(
                "cpu.sse_registers_preserved",
                false,
                format_args!("round {i}: {a:#x} {b:#x} {c:#x}"),
            );
            break;
        }
    }
    if kept {
        s.check("cpu.sse_registers_preserved", true, format_args!(""));
    }
    super::util::wait_until(|| OTHER_DONE.load(Ordering::SeqCst) != 0);
    let other = OTHER_GS.load(Ordering::SeqCst);
    s.check(
        "cpu.gs0_is_own_utcb",
        other == loc + 0x200 && utcb::utcb_pointer() as u64 == utcb::my_local_id().raw(),
        format_args!("helper {other:#x}, ours {:#x}", utcb::utcb_pointer() as u64),
    );
    syscall::schedule(me, u64::MAX, u64::MAX, 255, u64::MAX);
    syscall::thread_control(t, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX);
}

/// Kernel debugger interface: non-blocking read with nothing typed, enter-with-message.
fn kdb_interface(s: &mut Cx) {
    let c = kdb::read_char();
    s.check(
        "kdb.read_char_nonblocking",
        c.is_none(),
        format_args!("{c:?}"),
    );
    kdb::enter("kdb-enter-check");
    s.check("kdb.enter_continues", true, format_args!(""));
    kdb::print_char(b'\n');
}
