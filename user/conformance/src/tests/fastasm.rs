//! The assembly fast path of issue 12 (kernel/src/fastpath.rs) and the register contract of
//! the Ipc/Lipc stubs it relies on: MR0..MR7 travel in R9, RAX, RBX, R10, R12..R15 (spec table
//! 4.4), not through the UTCB, both when the fast path hands them over and when the general
//! path runs; guards new with the assembly path: local ids read as user memory (unmapped, in
//! the kernel half), a partner of another priority (the hand-over into an empty queue).
//! The guards shared with the Rust path are checked in `fastpath.rs`.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::{MsgTag, ThreadId, Time, Timeouts};
use l4::{msg, syscall, utcb};

use super::util::{self, root, set_prio, tid};
use crate::conformance::Suite;

const STACK: usize = 16 * 1024;
#[repr(C, align(4096))]
struct Stacks([[u8; STACK]; 1]);
static mut STACKS: Stacks = Stacks([[0; STACK]; 1]);

/// Messages the echo answered.
static ANSWERED: AtomicU64 = AtomicU64::new(0);
/// MR1 and MR7 as the echo found them (after its stub returned) with the last message.
static SEEN: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Answers every message with MR1 + 1 and MR2 + 2 (2 words), by ReplyWait.
extern "C" fn echo() -> ! {
    let mut r = msg::wait();
    loop {
        let Ok((from, _)) = r else {
            r = msg::wait();
            continue;
        };
        let (a, b) = (utcb::mr(1), utcb::mr(2));
        SEEN[0].store(a, Ordering::SeqCst);
        SEEN[1].store(utcb::mr(7), Ordering::SeqCst);
        ANSWERED.fetch_add(1, Ordering::SeqCst);
        utcb::set_mrs(1, &[a + 1, b + 2]);
        utcb::set_mr(0, MsgTag::new(0xA5, 2, 0).raw());
        r = msg::reply_wait(from);
    }
}

/// A Call through the Ipc stub with MR0..MR2 in registers only (the UTCB's MR0..MR7 hold
/// other values): returns (R9, RAX, RBX) after the call, i.e. MR0..MR2 as received.
fn raw_call(to: ThreadId, u: u64, mr1: u64, mr2: u64) -> (u64, u64, u64) {
    let p = utcb::utcb_pointer();
    for i in 0..8 {
        // SAFETY: our own UTCB's MR0..MR7.
        unsafe { p.add(i).write_volatile(0xDEAD_0000 + i as u64) };
    }
    let stub = syscall::link_address(l4::syscall::link::IPC);
    let tag = MsgTag::new(0x11, u, 0).raw();
    let (r9, rax, rbx): (u64, u64, u64);
    // SAFETY: table 4.4 (Ipc): in RSI/RDX/R8, MR0..MR2 in R9/RAX/RBX, RDI = UTCB pointer
    // (preserved); out RSI and the MR registers; RCX/RDX/R8/R11 clobbered; RBX/RBP saved
    // around the call here.
    unsafe {
        core::arch::asm!(
            "push rbx",
            "push rbp",
            "mov rbx, r12",
            "call rcx",
            "mov r12, rbx",
            "pop rbp",
            "pop rbx",
            in("rdi") p,
            inout("rsi") to.raw() => _,
            inout("rdx") to.raw() => _,
            inout("r8") Timeouts::NEVER.0 => _,
            inout("r9") tag => r9,
            inout("rax") mr1 => rax,
            inout("rcx") stub => _,
            out("r10") _,
            out("r11") _,
            inout("r12") mr2 => rbx,
            out("r13") _,
            out("r14") _,
            inout("r15") mr2 => _,
        );
    }
    (r9, rax, rbx)
}

/// Runs this module's checks.
pub fn run(s: &mut Suite) {
    let e = tid(0x310);
    set_prio(utcb::my_global_id(), 255);
    // SAFETY: only the address of the stack is taken; no thread uses it yet.
    let sp = util::prefault_stack(unsafe { &raw mut STACKS.0[0] } as *mut u8, STACK);
    let ok = util::spawn_local(e, 0xA8, sp, echo, root());
    set_prio(e, 100);
    s.check(
        "fastasm.helpers",
        ok,
        format_args!("error {}", utcb::error_code()),
    );
    if !ok {
        return;
    }
    msg::sleep(Time::period_micros(2000));

    // The register contract: the first Call finds the echo blocked in the general path (its
    // first receive), the next ones in the fast path; each time the echo sees the words in
    // our registers, and we get its answer in registers, whatever the UTCBs held.
    let mut got = [(0, 0, 0); 3];
    for (i, g) in got.iter_mut().enumerate() {
        *g = raw_call(e, 2, 0x100 + i as u64, 0x200 + i as u64);
    }
    let want = |i: u64| (MsgTag::new(0xA5, 2, 0).raw(), 0x100 + i + 1, 0x200 + i + 2);
    let good = got.iter().enumerate().all(|(i, g)| {
        (MsgTag::from_raw(g.0).label(), g.1, g.2) == {
            let w = want(i as u64);
            (MsgTag::from_raw(w.0).label(), w.1, w.2)
        }
    });
    s.check(
        "fastasm.mrs_travel_in_registers_general_and_fast_path",
        good,
        format_args!("got {got:x?}"),
    );

    // A message of no words (u = 0) with our MR1 and MR7 registers holding values we do not
    // send: the echo (taking it by the fast path) must not find them in its MR1 and MR7.
    const SECRET: u64 = 0x5EC7_E700_0000_0001;
    let _ = raw_call(e, 0, SECRET, SECRET + 6);
    let seen = [
        SEEN[0].load(Ordering::SeqCst),
        SEEN[1].load(Ordering::SeqCst),
    ];
    s.check(
        "fastasm.unsent_mr_registers_do_not_reach_the_receiver",
        seen[0] != SECRET && seen[1] != SECRET + 6,
        format_args!("the echo's MR1, MR7: {seen:#x?}"),
    );

    // Local ids that name no UTCB: unmapped user memory (the MyGlobalId read faults inside
    // the fast path and is answered by its fix-up) and a kernel-half address (out of the
    // user range): both fall back, and the general path reports a non-existing partner (2)
    // in the send phase.
    for (name, id) in [
        (
            "fastasm.lipc_to_unmapped_local_id_fails",
            0x0000_4000_0000_0000u64,
        ),
        (
            "fastasm.lipc_to_kernel_half_local_id_fails",
            0xFFFF_FFFF_8000_0000,
        ),
    ] {
        let to = ThreadId::from_raw(id);
        utcb::set_mr(0, MsgTag::new(0x12, 0, 0).raw());
        let r = syscall::lipc(to, to, Timeouts::NEVER);
        let ec = utcb::error_code();
        s.check(
            name,
            r.tag.error() && ec & 0xF == 2 << 1,
            format_args!("error {} code {ec:#x}", r.tag.error()),
        );
    }

    // A Call to a partner of a lower priority (100, we run at 255) and one with a finite
    // receive timeout: both taken by the fast path now (hand-over into the partner's empty
    // queue, timer armed) and answered; the echo keeps answering afterwards.
    let n0 = ANSWERED.load(Ordering::SeqCst);
    let le = l4::thread::local_id_of(e);
    let mut ok = true;
    let mut first_bad = None;
    for i in 0..4u64 {
        utcb::set_mrs(1, &[i, i]);
        utcb::set_mr(0, MsgTag::new(0x13, 2, 0).raw());
        let t = if i % 2 == 0 {
            Timeouts::NEVER
        } else {
            Timeouts::new(Time::NEVER, Time::period_micros(5_000_000))
        };
        let r = syscall::ipc(e, e, t);
        let good = !r.tag.error() && r.from == le && utcb::mr(1) == i + 1 && utcb::mr(2) == i + 2;
        if !good && first_bad.is_none() {
            first_bad = Some((i, r.tag.raw(), r.from.raw(), utcb::mr(1), utcb::mr(2)));
        }
        ok &= good;
    }
    s.check(
        "fastasm.lower_priority_partner_and_finite_timeout_answered",
        ok && ANSWERED.load(Ordering::SeqCst) == n0 + 4,
        format_args!(
            "answered {}, first bad reply (i, tag, from, MR1, MR2) {first_bad:x?}",
            ANSWERED.load(Ordering::SeqCst) - n0
        ),
    );
    util::kill(e);
}
