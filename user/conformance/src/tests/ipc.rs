//! IPC (spec 5.7, 6.1 to 6.5): untyped words, call/reply, local and global from-ids,
//! timeouts, non-existing partners, cancellation, deletion of a partner, message overflow,
//! sleep, exception and page-fault messages (with the 64-MR abort rule), interrupts.
//!
//! Helper threads run in the root server's own space on stacks in `.bss` that the root touches
//! first, so they never fault unless a check wants them to.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::items::MapItem;
use abi::msgtag::labels;
use abi::{Fpage, MsgTag, Rights, ThreadId, Time, Timeouts};
use l4::syscall::{self, ExregsState};
use l4::{kip, msg, thread, utcb};

use super::util::{self, kill, root};
use crate::conformance::{Check, Cx, start_local};

/// The check functions, in run order; each allocates its helper threads from its [`Cx`].
pub const CHECKS: &[Check] = &[
    Check {
        name: "ipc.untyped_words",
        run: untyped_words,
    },
    Check {
        name: "ipc.lipc_call",
        run: lipc_call,
    },
    Check {
        name: "ipc.sigma0",
        run: sigma0,
    },
    Check {
        name: "ipc.receive_anylocalthread",
        run: receive_anylocalthread,
    },
    Check {
        name: "ipc.propagation",
        run: propagation,
    },
    Check {
        name: "ipc.timeouts",
        run: timeouts,
    },
    Check {
        name: "ipc.nonexistent",
        run: nonexistent,
    },
    Check {
        name: "ipc.message_overflow",
        run: message_overflow,
    },
    Check {
        name: "ipc.cancel",
        run: cancel,
    },
    Check {
        name: "ipc.partner_deleted_while_sending",
        run: partner_deleted_while_sending,
    },
    Check {
        name: "ipc.partner_deleted_while_receiving",
        run: partner_deleted_while_receiving,
    },
    Check {
        name: "ipc.exception",
        run: exception,
    },
    Check {
        name: "ipc.kernel_address",
        run: kernel_address,
    },
    Check {
        name: "ipc.pagefault",
        run: pagefault,
    },
    Check {
        name: "ipc.interrupt",
        run: interrupt,
    },
    Check {
        name: "ipc.start",
        run: start_message,
    },
    Check {
        name: "ipc.time_point",
        run: time_point,
    },
    Check {
        name: "ipc.stress",
        run: stress,
    },
];

/// Shared words between the root and its helper threads (same space); cleared by [`fresh`]
/// at the start of every check.
static SHARED: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];

/// The thread a helper addresses (the echo server for the propagator, the partner of the
/// blocked sender and receivers): set by the check before it starts the helper.
static PARTNER: AtomicU64 = AtomicU64::new(0);

/// The address the page-fault helper reads (a range of the check's [`Cx`]).
static PF_ADDR: AtomicU64 = AtomicU64::new(0);

fn partner() -> ThreadId {
    ThreadId::from_raw(PARTNER.load(Ordering::SeqCst))
}

/// Clears the shared words (a check's helpers report through them).
fn fresh() {
    for w in SHARED.iter() {
        w.store(0, Ordering::SeqCst);
    }
}

/// A helper thread of the root's space running `entry` (default priority), or NIL after
/// reporting why not.
fn spawn(cx: &mut Cx, entry: extern "C" fn() -> !) -> ThreadId {
    let t = cx.spawn_local(None, entry);
    if t.is_nil() {
        l4::println!("ipc: cannot create a helper (error {})", utcb::error_code());
    }
    t
}

fn ms(n: u64) -> Time {
    Time::period_micros(n * 1000)
}

/// Echo server: answers every message with the same tag and each word + 1.
extern "C" fn echo() -> ! {
    let mut r = msg::wait();
    loop {
        match r {
            Ok((from, tag)) => {
                SHARED[0].store(from.raw(), Ordering::SeqCst);
                if tag.propagated() {
                    SHARED[10].store(utcb::actual_sender().raw(), Ordering::SeqCst);
                }
                for i in 1..=tag.untyped() as usize {
                    utcb::set_mr(i, utcb::mr(i).wrapping_add(1));
                }
                utcb::set_mr(0, MsgTag::new(tag.label(), tag.untyped(), 0).raw());
                r = msg::reply_wait(from);
            }
            Err(_) => r = msg::wait(),
        }
    }
}

/// Forwards each request to the echo server ([`PARTNER`]) as a propagated message on behalf of
/// its client, so that the echo server replies straight to the client (spec 5.7.5).
extern "C" fn propagator() -> ! {
    loop {
        if let Ok((from, tag)) = msg::wait() {
            let client = thread::global_id_of(from);
            utcb::set_virtual_sender(client);
            utcb::set_mr(0, tag.with_propagated(true).raw());
            let _ = msg::send(partner());
        }
    }
}

/// Started by a start-up message: records that it ran.
extern "C" fn started_by_message() -> ! {
    SHARED[11].store(0x5747, Ordering::SeqCst);
    loop {
        let _ = msg::receive(utcb::my_global_id());
    }
}

/// xorshift64: the stress test's deterministic randomness.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

static STRESS_DONE: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// The stress workers' ids (raw), so that each finds its index and its peers.
static STRESS_IDS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Stress worker `i`: random sends, receives, calls and sleeps among the workers with short
/// timeouts; counts completed rounds.
extern "C" fn stress_worker() -> ! {
    let me = utcb::my_global_id().raw();
    let i = (0..4)
        .find(|&k| STRESS_IDS[k].load(Ordering::SeqCst) == me)
        .unwrap_or(0);
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
    loop {
        let peer =
            ThreadId::from_raw(STRESS_IDS[(next(&mut x) % 4) as usize].load(Ordering::SeqCst));
        let t = Time::period_micros(next(&mut x) % 3000);
        utcb::set_mr(
            0,
            MsgTag::new(next(&mut x) & 0xFF, next(&mut x) % 64, 0).raw(),
        );
        let _ = match next(&mut x) % 5 {
            0 => syscall::ipc(peer, ThreadId::NIL, Timeouts::new(t, Time::NEVER)),
            1 => syscall::ipc(ThreadId::NIL, ThreadId::ANY, Timeouts::new(Time::NEVER, t)),
            2 => syscall::ipc(peer, peer, Timeouts::new(t, t)),
            3 => syscall::ipc(peer, ThreadId::ANY_LOCAL, Timeouts::new(Time::ZERO, t)),
            _ => syscall::ipc(ThreadId::NIL, peer, Timeouts::new(Time::NEVER, t)),
        };
        STRESS_DONE[i].fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits forever in a receive from itself (never accepts anybody).
extern "C" fn sleeper() -> ! {
    loop {
        let _ = msg::receive(utcb::my_global_id());
    }
}

/// Receives from the root with no timeout and reports the error code it got to the root.
extern "C" fn blocked_receiver() -> ! {
    let r = msg::receive(ThreadId::global(kip::thread_info().user_base() + 2, 1));
    SHARED[1].store(r.err().map(|e| e.error_code).unwrap_or(0), Ordering::SeqCst);
    SHARED[2].store(1, Ordering::SeqCst);
    loop {
        let _ = msg::receive(utcb::my_global_id());
    }
}

/// Receives from [`PARTNER`] with no timeout and reports its error code.
extern "C" fn receiver_of_partner() -> ! {
    let r = msg::receive(partner());
    SHARED[1].store(r.err().map(|e| e.error_code).unwrap_or(0), Ordering::SeqCst);
    SHARED[2].store(1, Ordering::SeqCst);
    loop {
        let _ = msg::receive(utcb::my_global_id());
    }
}

/// Sends to [`PARTNER`] (a sleeper) with no timeout and reports its error code.
extern "C" fn blocked_sender() -> ! {
    utcb::set_mr(0, MsgTag::new(0x77, 0, 0).raw());
    let r = msg::send(partner());
    SHARED[3].store(r.err().map(|e| e.error_code).unwrap_or(0), Ordering::SeqCst);
    SHARED[4].store(1, Ordering::SeqCst);
    loop {
        let _ = msg::receive(utcb::my_global_id());
    }
}

/// Executes `ud2` with RAX = 0x1111; after the exception reply, stores RAX to SHARED[5].
extern "C" fn faulter() -> ! {
    utcb::set_exception_handler(ThreadId::global(kip::thread_info().user_base() + 2, 1));
    let rax: u64;
    // SAFETY: a deliberate #UD; the exception handler (the root) resumes us after it.
    unsafe { core::arch::asm!("mov rax, 0x1111", "ud2", out("rax") rax) };
    SHARED[5].store(rax, Ordering::SeqCst);
    SHARED[6].store(1, Ordering::SeqCst);
    loop {
        let _ = msg::receive(utcb::my_global_id());
    }
}

/// Reads kernel memory; the exception handler (the root) skips the instruction.
extern "C" fn kernel_reader() -> ! {
    utcb::set_exception_handler(ThreadId::global(kip::thread_info().user_base() + 2, 1));
    // SAFETY: a deliberate access to kernel memory; it must fault and become an exception.
    let v = unsafe { core::ptr::read_volatile(0xFFFF_FFFF_8010_0000u64 as *const u64) };
    SHARED[12].store(v | 1, Ordering::SeqCst);
    loop {
        let _ = msg::receive(utcb::my_global_id());
    }
}

/// Fills all 64 MRs, reads an unmapped address, then checks the MRs and reports.
extern "C" fn toucher() -> ! {
    for i in 0..64 {
        utcb::set_mr(i, 0xA5A5_0000 + i as u64);
    }
    // SAFETY: a deliberate page fault at an address the root will map for us.
    let v = unsafe { core::ptr::read_volatile(PF_ADDR.load(Ordering::SeqCst) as *const u64) };
    let intact = (0..64).all(|i| utcb::mr(i) == 0xA5A5_0000 + i as u64);
    SHARED[7].store(v, Ordering::SeqCst);
    SHARED[8].store(intact as u64, Ordering::SeqCst);
    SHARED[9].store(1, Ordering::SeqCst);
    loop {
        let _ = msg::receive(utcb::my_global_id());
    }
}

#[repr(C, align(4096))]
struct Page([u64; 512]);
static mut MAPPED_PAGE: Page = Page([0; 512]);

fn wait_flag(i: usize) -> bool {
    super::util::wait_until(|| SHARED[i].load(Ordering::SeqCst) != 0)
}

/// Waits (bounded, generously) until `t` is blocked in the given way (Schedule result:
/// `ScheduleResult::Waiting` = receiving, `PendingSend` = sending): the event itself, not a
/// fixed sleep that a loaded host may outlast.
fn wait_state(t: ThreadId, st: abi::syscall_args::ScheduleResult) -> bool {
    super::util::wait_until(|| super::util::state_of(t) == st as u64)
}

fn error_code_of<T>(r: Result<T, msg::IpcFailure>) -> u64 {
    r.err().map(|e| e.error_code).unwrap_or(0)
}

/// A running echo server (helper) and a short pause for it to reach its receive.
fn echo_server(cx: &mut Cx) -> ThreadId {
    let t = spawn(cx, echo);
    wait_state(t, abi::syscall_args::ScheduleResult::Waiting);
    t
}

/// A running sleeper (a helper that never accepts a message).
fn sleeper_thread(cx: &mut Cx) -> ThreadId {
    let t = spawn(cx, sleeper);
    wait_state(t, abi::syscall_args::ScheduleResult::Waiting);
    t
}

/// 0..63 untyped words, call/reply-wait; the from-id of a same-space sender is local.
fn untyped_words(cx: &mut Cx) {
    fresh();
    let echo_t = echo_server(cx);
    let mut all_ok = true;
    for n in 0..=63u64 {
        for i in 1..=n as usize {
            utcb::set_mr(i, (n << 32) | i as u64);
        }
        utcb::set_mr(0, MsgTag::new(0x42, n, 0).raw());
        match msg::call(echo_t) {
            Ok(tag) => {
                let words_ok = (1..=n as usize).all(|i| utcb::mr(i) == ((n << 32) | i as u64) + 1);
                if tag.untyped() != n || tag.label() != 0x42 || !words_ok {
                    all_ok = false;
                    cx.check(
                        "ipc.untyped_words",
                        false,
                        format_args!("{n} words: tag {:#x}", tag.raw()),
                    );
                    break;
                }
            }
            Err(e) => {
                all_ok = false;
                cx.check(
                    "ipc.untyped_words",
                    false,
                    format_args!("{n} words: error {:#x}", e.error_code),
                );
                break;
            }
        }
    }
    if all_ok {
        cx.check("ipc.untyped_words_0_to_63", true, format_args!(""));
    }
    cx.check_eq(
        "ipc.from_is_local_id_in_same_space",
        SHARED[0].load(Ordering::SeqCst),
        utcb::my_local_id().raw(),
    );
}

/// Lipc between threads of one space.
fn lipc_call(cx: &mut Cx) {
    fresh();
    let echo_t = echo_server(cx);
    utcb::set_mr(1, 7);
    utcb::set_mr(0, MsgTag::new(1, 1, 0).raw());
    let ok = msg::lcall(echo_t).is_ok() && utcb::mr(1) == 8;
    cx.check("ipc.lipc_call", ok, format_args!("MR1 {}", utcb::mr(1)));
}

/// From a thread of another space (sigma0): the global id.
fn sigma0(cx: &mut Cx) {
    let page = l4::sigma0::get_any(12);
    cx.check(
        "ipc.sigma0_rpc_answers",
        page.is_ok(),
        format_args!("{:?}", page.err()),
    );
    utcb::set_mr(0, MsgTag::new(0x1234, 0, 0).raw());
    let r = syscall::ipc(
        kip::sigma0_id(),
        kip::sigma0_id(),
        Timeouts::new(Time::NEVER, ms(50)),
    );
    let _ = r;
    utcb::set_mr(1, abi::sigma0::any_page(12).raw());
    utcb::set_mr(2, 0);
    utcb::set_mr(0, abi::sigma0::rpc_tag().raw());
    msg::accept(abi::Acceptor::map_grant(Fpage::COMPLETE));
    let r = syscall::ipc(kip::sigma0_id(), kip::sigma0_id(), Timeouts::NEVER);
    cx.check_eq(
        "ipc.from_is_global_id_across_spaces",
        r.from,
        kip::sigma0_id(),
    );
    msg::accept(abi::Acceptor::UNTYPED_WORDS);
}

/// anylocalthread: a same-space sender is accepted.
fn receive_anylocalthread(cx: &mut Cx) {
    fresh();
    let echo_t = echo_server(cx);
    utcb::set_mr(1, 1);
    utcb::set_mr(0, MsgTag::new(2, 1, 0).raw());
    let r = syscall::ipc(echo_t, ThreadId::ANY_LOCAL, Timeouts::NEVER);
    cx.check(
        "ipc.receive_anylocalthread",
        !r.tag.error() && r.from == thread::local_id_of(echo_t) && utcb::mr(1) == 2,
        format_args!("tag {:#x} from {:#x}", r.tag.raw(), r.from.raw()),
    );
}

/// Propagation: root calls the propagator, which forwards to echo on the root's behalf;
/// echo sees the root as sender, the propagator as ActualSender, and replies to the root.
fn propagation(cx: &mut Cx) {
    fresh();
    let echo_t = echo_server(cx);
    PARTNER.store(echo_t.raw(), Ordering::SeqCst);
    let prop = spawn(cx, propagator);
    utcb::set_mr(1, 100);
    utcb::set_mr(0, MsgTag::new(3, 1, 0).raw());
    let r = msg::call_timeouts(prop, Time::NEVER, ms(500));
    cx.check(
        "ipc.propagation_reply_from_final_server",
        r.is_ok() && utcb::mr(1) == 101,
        format_args!("{:?} MR1 {}", r.err(), utcb::mr(1)),
    );
    cx.check_eq(
        "ipc.propagation_from_is_virtual_sender",
        SHARED[0].load(Ordering::SeqCst),
        utcb::my_local_id().raw(),
    );
    cx.check_eq(
        "ipc.propagation_actual_sender",
        SHARED[10].load(Ordering::SeqCst),
        prop.raw(),
    );
}

/// Send and receive timeouts (finite and zero) with a partner that never answers; sleep.
fn timeouts(cx: &mut Cx) {
    let sleeper_t = sleeper_thread(cx);
    let t0 = syscall::system_clock();
    utcb::set_mr(0, 0);
    let e = error_code_of(msg::send_timeout(sleeper_t, ms(30)));
    let dt = syscall::system_clock() - t0;
    cx.check(
        "ipc.send_timeout_code",
        e == 2,
        format_args!("ErrorCode {e:#x}"),
    );
    cx.check(
        "ipc.send_timeout_duration",
        (25_000..2_000_000).contains(&dt),
        format_args!("{dt} us"),
    );
    let t0 = syscall::system_clock();
    let e = error_code_of(msg::receive_timeout(sleeper_t, ms(30)));
    let dt = syscall::system_clock() - t0;
    cx.check(
        "ipc.receive_timeout_code",
        e == 3,
        format_args!("ErrorCode {e:#x}"),
    );
    cx.check(
        "ipc.receive_timeout_duration",
        (25_000..2_000_000).contains(&dt),
        format_args!("{dt} us"),
    );
    let e = error_code_of(msg::send_timeout(sleeper_t, Time::ZERO));
    cx.check(
        "ipc.zero_send_timeout",
        e == 2,
        format_args!("ErrorCode {e:#x}"),
    );
    let e = error_code_of(msg::receive_timeout(sleeper_t, Time::ZERO));
    cx.check(
        "ipc.zero_receive_timeout",
        e == 3,
        format_args!("ErrorCode {e:#x}"),
    );
    let t0 = syscall::system_clock();
    msg::sleep(ms(20));
    let dt = syscall::system_clock() - t0;
    cx.check(
        "ipc.sleep",
        (19_000..2_000_000).contains(&dt),
        format_args!("{dt} us"),
    );
}

/// Non-existing partners: nobody, a stale version, kernel threads.
fn nonexistent(cx: &mut Cx) {
    let ghost = ThreadId::global(0x3_0000, 7);
    let e = error_code_of(msg::send_timeout(ghost, Time::ZERO));
    cx.check(
        "ipc.send_to_nonexistent",
        e == 4,
        format_args!("ErrorCode {e:#x}"),
    );
    let e = error_code_of(msg::receive_timeout(ghost, Time::ZERO));
    cx.check(
        "ipc.receive_from_nonexistent",
        e == 5,
        format_args!("ErrorCode {e:#x}"),
    );
    let live = sleeper_thread(cx);
    let stale = ThreadId::global(live.number(), 2);
    let e = error_code_of(msg::send_timeout(stale, Time::ZERO));
    cx.check(
        "ipc.send_to_stale_version",
        e == 4,
        format_args!("ErrorCode {e:#x}"),
    );
    let kernel_thread = ThreadId::global(kip::thread_info().system_base(), 1);
    let e = error_code_of(msg::send_timeout(kernel_thread, Time::ZERO));
    cx.check(
        "ipc.send_to_kernel_thread",
        e == 4,
        format_args!("ErrorCode {e:#x}"),
    );
    // ThreadSwitch to a kernel thread (the idle thread) is an ordinary yield.
    for _ in 0..3 {
        syscall::thread_switch(kernel_thread);
    }
    cx.check(
        "ipc.thread_switch_to_kernel_thread_is_yield",
        true,
        format_args!(""),
    );
    let r = syscall::thread_control(
        ThreadId::global(0x3_1234, 1),
        kernel_thread,
        root(),
        ThreadId::NIL,
        u64::MAX,
    );
    cx.check(
        "ipc.kernel_thread_is_no_space",
        r == 0 && utcb::error_code() == 3,
        format_args!("result {r} error {}", utcb::error_code()),
    );
}

/// Message overflow: u + t > 63.
fn message_overflow(cx: &mut Cx) {
    fresh();
    let echo_t = echo_server(cx);
    utcb::set_mr(0, MsgTag::new(0, 60, 4).raw());
    let e = error_code_of(msg::send_timeout(echo_t, ms(10)));
    cx.check(
        "ipc.message_overflow",
        e & 0xF == 8,
        format_args!("ErrorCode {e:#x}"),
    );
}

/// Cancel a blocked receive and a blocked send (ExchangeRegisters R / S).
fn cancel(cx: &mut Cx) {
    fresh();
    let sleeper_t = sleeper_thread(cx);
    PARTNER.store(sleeper_t.raw(), Ordering::SeqCst);
    let rcv = spawn(cx, blocked_receiver);
    // Wait for its receive itself (a fixed window fails on a slow host).
    util::wait_until(|| util::state_of(rcv) & 7 == 6);
    syscall::exchange_registers(
        rcv,
        ExregsState {
            control: 1 << 1,
            ..ExregsState::default()
        },
    );
    let ok = wait_flag(2);
    cx.check(
        "ipc.cancel_receive",
        ok && SHARED[1].load(Ordering::SeqCst) == 7,
        format_args!("ErrorCode {:#x}", SHARED[1].load(Ordering::SeqCst)),
    );
    let snd = spawn(cx, blocked_sender);
    util::wait_until(|| util::state_of(snd) & 7 == 4);
    let (_, old) = syscall::exchange_registers(
        snd,
        ExregsState {
            control: 1 << 2,
            ..ExregsState::default()
        },
    );
    let ok = wait_flag(4);
    cx.check(
        "ipc.cancel_send_reports_sending",
        old.control & 4 != 0,
        format_args!("control out {:#x}", old.control),
    );
    cx.check(
        "ipc.cancel_send",
        ok && SHARED[3].load(Ordering::SeqCst) == 6,
        format_args!("ErrorCode {:#x}", SHARED[3].load(Ordering::SeqCst)),
    );
}

/// A partner deleted while a sender is blocked on it: the sender gets error 4.
fn partner_deleted_while_sending(cx: &mut Cx) {
    fresh();
    let sleeper_t = sleeper_thread(cx);
    PARTNER.store(sleeper_t.raw(), Ordering::SeqCst);
    let snd = spawn(cx, blocked_sender);
    util::wait_until(|| util::state_of(snd) & 7 == 4);
    kill(sleeper_t);
    let ok = wait_flag(4);
    cx.check(
        "ipc.partner_deleted_while_sending",
        ok && SHARED[3].load(Ordering::SeqCst) == 4,
        format_args!("ErrorCode {:#x}", SHARED[3].load(Ordering::SeqCst)),
    );
}

/// A thread deleted while another waits to receive from it: that one gets error 5.
fn partner_deleted_while_receiving(cx: &mut Cx) {
    fresh();
    let target = sleeper_thread(cx);
    PARTNER.store(target.raw(), Ordering::SeqCst);
    let waiter = spawn(cx, receiver_of_partner);
    wait_state(waiter, abi::syscall_args::ScheduleResult::Waiting);
    kill(target);
    let ok = wait_flag(2);
    cx.check(
        "ipc.partner_deleted_while_receiving",
        ok && SHARED[1].load(Ordering::SeqCst) == 5,
        format_args!("ErrorCode {:#x}", SHARED[1].load(Ordering::SeqCst)),
    );
}

/// Exception IPC and resumption with modified registers.
fn exception(cx: &mut Cx) {
    fresh();
    let f = spawn(cx, faulter);
    match msg::receive_timeout(f, ms(500)) {
        Ok(tag) => {
            let ok_tag = tag.label() == labels::EXCEPTION && tag.untyped() == 19;
            cx.check(
                "ipc.exception_message_tag",
                ok_tag,
                format_args!("tag {:#x}", tag.raw()),
            );
            cx.check_eq("ipc.exception_message_vector", utcb::mr(19), 6);
            cx.check_eq("ipc.exception_message_rax", utcb::mr(8), 0x1111);
            let rip = utcb::mr(1);
            utcb::set_mr(1, rip + 2);
            utcb::set_mr(8, 0x4242);
            utcb::set_mr(0, MsgTag::new(0, 18, 0).raw());
            let _ = msg::reply(f);
            let ok = wait_flag(6);
            cx.check(
                "ipc.exception_reply_resumes",
                ok && SHARED[5].load(Ordering::SeqCst) == 0x4242,
                format_args!("RAX {:#x}", SHARED[5].load(Ordering::SeqCst)),
            );
        }
        Err(e) => {
            cx.check(
                "ipc.exception_message_tag",
                false,
                format_args!("no exception message: {:#x}", e.error_code),
            );
        }
    }
}

/// A user access to kernel memory is an exception (vector 14), never a read.
fn kernel_address(cx: &mut Cx) {
    fresh();
    let k = spawn(cx, kernel_reader);
    match msg::receive_timeout(k, ms(500)) {
        Ok(tag) => {
            let ok = tag.label() == labels::EXCEPTION && utcb::mr(19) == 14;
            cx.check(
                "ipc.kernel_address_is_exception",
                ok,
                format_args!("tag {:#x} vector {}", tag.raw(), utcb::mr(19)),
            );
        }
        Err(e) => {
            cx.check(
                "ipc.kernel_address_is_exception",
                false,
                format_args!("{:#x}", e.error_code),
            );
        }
    }
    kill(k);
    cx.check_eq(
        "ipc.kernel_memory_not_read",
        SHARED[12].load(Ordering::SeqCst),
        0,
    );
}

/// Page fault: message contents; an aborted fault IPC is retried and keeps all 64 MRs.
fn pagefault(cx: &mut Cx) {
    fresh();
    let pf_addr = cx.range(12);
    PF_ADDR.store(pf_addr, Ordering::SeqCst);
    // SAFETY: the page is only written here, before the toucher maps and reads it.
    unsafe { (&raw mut MAPPED_PAGE.0[0]).write_volatile(0xFEED_F00D) };
    let p = spawn(cx, toucher);
    match msg::receive_timeout(p, ms(500)) {
        Ok(tag) => {
            cx.check(
                "ipc.pagefault_tag",
                tag.label() == labels::PAGE_FAULT | 4 && tag.untyped() == 2,
                format_args!("tag {:#x}", tag.raw()),
            );
            cx.check_eq("ipc.pagefault_address", utcb::mr(1), pf_addr);
            let ip = utcb::mr(2);
            cx.check(
                "ipc.pagefault_ip_in_image",
                ip >= kip::kip().root_server.low && ip < kip::kip().root_server.high,
                format_args!("ip {ip:#x}"),
            );
            // Abort the fault IPC: the thread retries and faults again.
            syscall::exchange_registers(
                p,
                ExregsState {
                    control: 6,
                    ..ExregsState::default()
                },
            );
            match msg::receive_timeout(p, ms(500)) {
                Ok(tag) => {
                    cx.check(
                        "ipc.pagefault_retried_after_abort",
                        tag.label() == labels::PAGE_FAULT | 4,
                        format_args!("tag {:#x}", tag.raw()),
                    );
                    let src = &raw const MAPPED_PAGE as u64;
                    let item =
                        MapItem::new(Fpage::new_log2(src, 12).with_rights(Rights::FULL), pf_addr);
                    let w = item.to_words(false);
                    utcb::set_mr(1, w[0]);
                    utcb::set_mr(2, w[1]);
                    utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
                    let _ = msg::reply(p);
                    let ok = wait_flag(9);
                    cx.check(
                        "ipc.pagefault_resolved_by_map_item",
                        ok && SHARED[7].load(Ordering::SeqCst) == 0xFEED_F00D,
                        format_args!("read {:#x}", SHARED[7].load(Ordering::SeqCst)),
                    );
                    cx.check(
                        "ipc.pagefault_keeps_64_mrs",
                        SHARED[8].load(Ordering::SeqCst) == 1,
                        format_args!(""),
                    );
                }
                Err(e) => {
                    cx.check(
                        "ipc.pagefault_retried_after_abort",
                        false,
                        format_args!("{:#x}", e.error_code),
                    );
                }
            }
        }
        Err(e) => {
            cx.check(
                "ipc.pagefault_tag",
                false,
                format_args!("no page-fault message: {:#x}", e.error_code),
            );
        }
    }
}

/// Thread start-up by the pager's message (spec 6.1): u = 2 → MR1 = IP, MR2 = SP.
fn start_message(cx: &mut Cx) {
    fresh();
    let t = cx.thread();
    let (loc, top) = (cx.slot(), cx.stack());
    let r = syscall::thread_control(t, root(), root(), root(), loc);
    cx.check(
        "ipc.start_thread_created",
        r == 1,
        format_args!("error {}", utcb::error_code()),
    );
    let (res, _) = syscall::schedule(t, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    cx.check_eq("ipc.start_thread_waits_for_start_message", res, 6);
    utcb::set_mr(
        1,
        started_by_message as extern "C" fn() -> ! as usize as u64,
    );
    utcb::set_mr(2, top);
    utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
    let sent = msg::send_timeout(t, Time::ZERO);
    let ok = sent.is_ok() && wait_flag(11) && SHARED[11].load(Ordering::SeqCst) == 0x5747;
    cx.check(
        "ipc.start_by_message_runs_at_mr1_mr2",
        ok,
        format_args!("{:?}", sent.err()),
    );
}

/// A receive timeout given as an absolute time point (spec 2.7) expires around that point.
fn time_point(cx: &mut Cx) {
    let partner = sleeper_thread(cx);
    let now = syscall::system_clock();
    let at = now + 20_000;
    let p = Time::point_at(at, now);
    let r = msg::receive_timeout(partner, p);
    let end = syscall::system_clock();
    let e = error_code_of(r);
    cx.check(
        "ipc.time_point_timeout_code",
        e == 3,
        format_args!("ErrorCode {e:#x}"),
    );
    cx.check(
        "ipc.time_point_timeout_when",
        end + 2_000 >= at && end < at + 1_000_000,
        format_args!("now {now} point {at} woke {end}"),
    );
}

/// Random IPC among four workers while the root cancels their IPCs and deletes and recreates
/// them; afterwards every worker must still make progress (nothing blocked for ever, no panic).
fn stress(cx: &mut Cx) {
    let mut x = 0x1234_5678_9ABC_DEF1u64;
    // Each worker keeps its id, UTCB slot and stack when it is deleted and created again.
    let mut ids = [ThreadId::NIL; 4];
    let mut locs = [0u64; 4];
    let mut sps = [0u64; 4];
    for k in 0..4 {
        ids[k] = cx.thread();
        locs[k] = cx.slot();
        sps[k] = cx.stack();
        STRESS_IDS[k].store(ids[k].raw(), Ordering::SeqCst);
    }
    for k in 0..4 {
        start_local(ids[k], locs[k], sps[k], None, stress_worker);
    }
    let t_end = syscall::system_clock() + 300_000;
    let mut ops = 0;
    while syscall::system_clock() < t_end {
        let k = (next(&mut x) % 4) as usize;
        match next(&mut x) % 4 {
            0 => {
                kill(ids[k]);
                start_local(ids[k], locs[k], sps[k], None, stress_worker);
            }
            1 | 2 => {
                let ctl = (next(&mut x) % 3 + 1) << 1; // R, S or both
                syscall::exchange_registers(
                    ids[k],
                    ExregsState {
                        control: ctl,
                        ..ExregsState::default()
                    },
                );
            }
            _ => msg::sleep(Time::period_micros(next(&mut x) % 2000 + 1)),
        }
        ops += 1;
    }
    let before: [u64; 4] = core::array::from_fn(|k| STRESS_DONE[k].load(Ordering::SeqCst));
    let progress =
        util::wait_until(|| (0..4).all(|k| STRESS_DONE[k].load(Ordering::SeqCst) > before[k]));
    cx.check(
        "ipc.stress_cancel_delete_no_hang",
        progress,
        format_args!("{ops} root operations; rounds {before:?}"),
    );
}

/// COM1's transmitter-empty interrupt (IRQ 4) delivered as IPC, acknowledged by a send.
fn interrupt(cx: &mut Cx) {
    // The root thread's first access to COM1 is an IO page fault to its pager, sigma0, which
    // maps the port (IO-fpages, spec 6.6): port I/O written for IOPL 3 keeps working.
    let lsr = inb(0x3FD);
    cx.check(
        "ipc.io_port_via_io_page_fault",
        lsr & 0x60 != 0,
        format_args!("COM1 LSR {lsr:#x}"),
    );
    let irq = ThreadId::global(4, 1);
    let r = syscall::thread_control(irq, irq, ThreadId::NIL, root(), u64::MAX);
    cx.check(
        "ipc.interrupt_associate",
        r == 1,
        format_args!("error {}", utcb::error_code()),
    );
    // Enable the UART's THR-empty interrupt: it fires at once (the transmitter is idle).
    outb(0x3F9, 0x02);
    let r = msg::receive_timeout(irq, ms(500));
    outb(0x3F9, 0x00);
    let _ = inb(0x3FA); // read IIR: clears the THRE condition
    match r {
        Ok(tag) => {
            cx.check(
                "ipc.interrupt_message",
                tag.label() == labels::INTERRUPT && tag.untyped() == 0,
                format_args!("tag {:#x}", tag.raw()),
            );
        }
        Err(e) => {
            cx.check(
                "ipc.interrupt_message",
                false,
                format_args!("ErrorCode {:#x}", e.error_code),
            );
        }
    }
    utcb::set_mr(0, 0);
    let ack = msg::send_timeout(irq, Time::ZERO);
    cx.check(
        "ipc.interrupt_acknowledge",
        ack.is_ok(),
        format_args!("{:?}", ack.err()),
    );
    let e = error_code_of(msg::send_timeout(ThreadId::global(5, 1), Time::ZERO));
    cx.check(
        "ipc.interrupt_not_ours",
        e == 4,
        format_args!("ErrorCode {e:#x}"),
    );
    let r = syscall::thread_control(irq, irq, ThreadId::NIL, irq, u64::MAX);
    cx.check(
        "ipc.interrupt_deassociate",
        r == 1,
        format_args!("error {}", utcb::error_code()),
    );
}

fn outb(port: u16, v: u8) {
    // SAFETY: COM1 belongs to this test for a moment; the port comes from sigma0 through an
    // IO page fault (IO-fpages).
    unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") v) }
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as for `outb`.
    unsafe { core::arch::asm!("in al, dx", out("al") v, in("dx") port) }
    v
}
