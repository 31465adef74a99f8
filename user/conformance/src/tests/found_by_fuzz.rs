//! Regression checks for kernel defects the fuzzer (`root fuzz`, `cargo xtask fuzz`) found;
//! docs/kernel-bugs.md has one line per defect.
//!
//! Set-up shared by the checks: a receiver C in a new space whose pager is a *slow pager*
//! (a thread of the root's space that holds back its answer to a fault on C's receive
//! buffer), a sender S
//! in the root's space that is queued on C with a string item (and in the first check a
//! send timeout of 200 ms)
//! before C receives. When C then takes S's message, the copy page-faults on C's untouched
//! receive buffer and blocks in C's slow fault IPC: S is neither in a send queue nor done.
//!
//! Threads: UserBase + 0x1C0.. (C, S, slow pager); root UTCB slots 0xC0..0xC3; util stacks
//! 20..22.
//!
//! Nothing here depends on host speed: the slow pager does not answer after a fixed delay
//! but once the sender's send timeout has passed (guest clock), and that timeout (2 s) only
//! has to cover the few IPCs of the set-up.
//!
//! On the kernel with invariant checks (integration test `found-by-fuzz-invariants`, and the
//! fuzz boots) the module also asks the kernel to verify its invariants before and after.
//! That boot guards the loader defect of docs/kernel-bugs.md (the root thread started while
//! still on sigma0's closed-receiver list), which no user-level behaviour shows once
//! `ipc::link_receiver` tolerates it: the checking kernel reports "invariant violated" the
//! moment the listed thread is made ready (the root's first reply from sigma0 takes it off
//! the list again, so the check at the start alone would not see it).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::acceptor::Acceptor;
use abi::items::{MapItem, simple_string};
use abi::msgtag::labels;
use abi::{Fpage, MsgTag, Rights, ThreadId, Time, Timeouts};
use l4::{syscall, utcb};

use super::util::{self, kill_r, tid};
use crate::conformance::Suite;

const LEN: usize = 6000;
/// The slow pager's wait past the sender's send deadline (guest clock).
const MARGIN_US: u64 = 20_000;
/// Without a send deadline (round 1) the slow pager answers once the root says so (after it
/// deleted the sender), or after wait_until's bound.
static RELEASE: AtomicBool = AtomicBool::new(false);
/// The sender's send timeout in round 0: far longer than the set-up needs (a few IPCs), so a
/// slow host cannot make it expire before the copy starts; the slow fault lasts until it has
/// passed.
const SEND_TIMEOUT_US: u64 = 2_000_000;
/// System clock when the root saw the sender queued (0: no send timeout this round); its
/// deadline lies at most SEND_TIMEOUT_US after that.
static QUEUED_AT: AtomicU64 = AtomicU64::new(0);
static SEND_TIMEOUT: AtomicU64 = AtomicU64::new(SEND_TIMEOUT_US);

#[repr(C, align(4096))]
struct Page2([u8; 8192]);
/// The sender's string (root memory) and the receiver's buffer (untouched in C's space).
static mut SRC: Page2 = Page2([0; 8192]);
static mut DST: Page2 = Page2([0; 8192]);

static SENDER: AtomicU64 = AtomicU64::new(0);
static S_RESULT: AtomicU64 = AtomicU64::new(u64::MAX);
static SLOW_FAULTS: AtomicU64 = AtomicU64::new(0);
const GO: u64 = 0x60;

extern "C" fn slow_pager() -> ! {
    let (start, end) = util::image();
    loop {
        let r = syscall::ipc(
            ThreadId::NIL,
            ThreadId::ANY,
            Timeouts::new(Time::NEVER, Time::NEVER),
        );
        if r.tag.error() || r.tag.label() & !0xF != labels::PAGE_FAULT {
            continue;
        }
        let addr = utcb::mr(1) & !0xFFF;
        let dst = &raw const DST as u64;
        if addr >= dst && addr < dst + 8192 && STRING_REPLY.load(Ordering::SeqCst) {
            // Check 3: answer the receiver's fault IPC (run inside its string copy) with a
            // string item, which a kernel-generated IPC does not accept.
            SLOW_FAULTS.fetch_add(1, Ordering::SeqCst);
            let w = simple_string(8, &raw const SRC as u64);
            utcb::set_mrs(1, &w);
            utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
            let _ = syscall::ipc(
                r.from,
                ThreadId::NIL,
                Timeouts::new(Time::ZERO, Time::NEVER),
            );
            continue;
        }
        if addr >= dst && addr < dst + 8192 {
            // Only the receive buffer is slow: the receiver's way into its receive is fast.
            SLOW_FAULTS.fetch_add(1, Ordering::SeqCst);
            let q = QUEUED_AT.load(Ordering::SeqCst);
            if q == 0 {
                util::wait_until(|| RELEASE.load(Ordering::SeqCst));
            } else {
                // Wait for the event (the sender's deadline has passed), not for a window.
                let until = q + SEND_TIMEOUT_US + MARGIN_US;
                while syscall::system_clock() < until {
                    util::sleep_us(MARGIN_US);
                }
            }
        }
        if addr < start || addr >= end {
            continue;
        }
        let w =
            MapItem::new(Fpage::new_log2(addr, 12).with_rights(Rights::FULL), addr).to_words(false);
        utcb::set_mrs(1, &w);
        utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
        let _ = syscall::ipc(
            r.from,
            ThreadId::NIL,
            Timeouts::new(Time::ZERO, Time::NEVER),
        );
    }
}

/// C: report, wait for the root's go, receive S's string into DST, report the outcome.
extern "C" fn receiver() -> ! {
    util::report(&[1]);
    let root = util::root();
    let _ = syscall::ipc(ThreadId::NIL, root, Timeouts::new(Time::NEVER, Time::NEVER));
    utcb::accept(Acceptor::STRING_ITEMS);
    let b = simple_string(8192, &raw const DST as u64);
    utcb::set_br(1, b[0]);
    utcb::set_br(2, b[1]);
    let s = ThreadId::from_raw(SENDER.load(Ordering::SeqCst));
    let r = syscall::ipc(
        ThreadId::NIL,
        s,
        Timeouts::new(Time::NEVER, Time::period_micros(5_000_000)),
    );
    let code = if r.tag.error() { utcb::error_code() } else { 0 };
    // SAFETY: the kernel's copy has ended (the IPC returned).
    let first = unsafe { core::ptr::read_volatile((&raw const DST as *const u8).add(LEN - 1)) };
    util::report(&[code, first as u64]);
    util::park()
}

/// S: send the string to C (send timeout SEND_TIMEOUT, 0 = never); record the ErrorCode.
extern "C" fn sender() -> ! {
    let to = ThreadId::from_raw(RECEIVER.load(Ordering::SeqCst));
    let s = simple_string(LEN as u64, &raw const SRC as u64);
    utcb::set_mrs(1, &s);
    utcb::set_mr(0, MsgTag::new(0x51, 0, 2).raw());
    let r = syscall::ipc(
        to,
        ThreadId::NIL,
        Timeouts::new(
            match SEND_TIMEOUT.load(Ordering::SeqCst) {
                0 => Time::NEVER,
                us => Time::period_micros(us),
            },
            Time::NEVER,
        ),
    );
    S_RESULT.store(
        if r.tag.error() { utcb::error_code() } else { 0 },
        Ordering::SeqCst,
    );
    if SELF_SEND.load(Ordering::SeqCst) {
        // Check 3: a send to itself (blocks until aborted), as the fuzz thread did.
        utcb::set_mr(0, MsgTag::new(0x52, 0, 0).raw());
        let me = ThreadId::from_raw(SENDER.load(Ordering::SeqCst));
        let r = syscall::ipc(me, ThreadId::NIL, Timeouts::new(Time::NEVER, Time::NEVER));
        S_SELF_RESULT.store(
            if r.tag.error() { utcb::error_code() } else { 0 },
            Ordering::SeqCst,
        );
    }
    util::park()
}
/// Check 3: the slow pager answers the receiver's fault with a string item; the sender then
/// sends to itself, and the ErrorCode of that send.
static STRING_REPLY: AtomicBool = AtomicBool::new(false);
static SELF_SEND: AtomicBool = AtomicBool::new(false);
static S_SELF_RESULT: AtomicU64 = AtomicU64::new(u64::MAX);
static RECEIVER: AtomicU64 = AtomicU64::new(0);

/// Sets up C (slow pager) and S queued on it, then gives C the go. Returns (C, S, pager).
fn setup(round: u64) -> Result<(ThreadId, ThreadId, ThreadId), &'static str> {
    let c = tid(0x1C0 + 4 * round);
    let s = tid(0x1C1 + 4 * round);
    let p = tid(0x1C2 + 4 * round);
    // SAFETY: no other thread uses SRC yet.
    unsafe { core::ptr::write_bytes(&raw mut SRC as *mut u8, 0xA5 ^ round as u8, LEN) };
    SENDER.store(s.raw(), Ordering::SeqCst);
    RECEIVER.store(c.raw(), Ordering::SeqCst);
    S_RESULT.store(u64::MAX, Ordering::SeqCst);
    SEND_TIMEOUT.store(
        if round == 0 { SEND_TIMEOUT_US } else { 0 },
        Ordering::SeqCst,
    );
    SLOW_FAULTS.store(0, Ordering::SeqCst);
    QUEUED_AT.store(0, Ordering::SeqCst);
    RELEASE.store(false, Ordering::SeqCst);
    if !util::spawn_worker(p, 0xC0, 200, slow_pager, 20) {
        return Err("slow pager not created");
    }
    if util::spawn_in_new_space(c, receiver, 21).is_err() || util::receive_report(c, 2000).is_err()
    {
        return Err("receiver not started");
    }
    // From now on C's faults go to the slow pager.
    let (r, _) = syscall::exchange_registers(
        c,
        syscall::ExregsState {
            control: 1 << 7,
            pager: p,
            ..Default::default()
        },
    );
    if r.is_nil() {
        return Err("receiver's pager not changed");
    }
    if !util::spawn_worker(s, 0xC1, 100, sender, 22) {
        return Err("sender not created");
    }
    let pending = abi::syscall_args::ScheduleResult::PendingSend as u64;
    if !util::wait_until(|| util::state_of(s) == pending) {
        return Err("sender never queued on the receiver");
    }
    if round == 0 {
        QUEUED_AT.store(syscall::system_clock(), Ordering::SeqCst);
    }
    utcb::set_mr(0, MsgTag::new(GO, 0, 0).raw());
    let r = syscall::ipc(
        c,
        ThreadId::NIL,
        Timeouts::new(Time::period_micros(1_000_000), Time::NEVER),
    );
    if r.tag.error() {
        return Err("go not delivered");
    }
    Ok((c, s, p))
}

/// The kernel's own invariant checks, if this kernel has them (feature `invariants`).
fn kernel_invariants(s: &mut Suite, name: &str) {
    if let Some(n) = l4::kdb::check_kernel_invariants() {
        s.check(
            name,
            n == 0,
            format_args!("{n} violations (listed by the kernel above)"),
        );
    }
}

pub fn run(s: &mut Suite) {
    // 0. The kernel's invariants (checking kernel only), e.g. no thread that runs is on a
    //    closed-receiver list (the loader started the root thread while it was).
    kernel_invariants(s, "found_by_fuzz.kernel_invariants_hold_at_start");
    if !util::ensure_pager() {
        s.check("found_by_fuzz.pager_thread_up", false, format_args!(""));
        return;
    }
    // 1. The queued sender's send timeout expires while its receiver's copy waits for a
    //    page fault: the kernel used to "remove" it from the queue of a null partner.
    match setup(0) {
        Ok((c, snd, p)) => {
            let rep = util::receive_report(c, 20_000);
            let sres = S_RESULT.load(Ordering::SeqCst);
            s.check(
                "found_by_fuzz.send_timeout_during_string_copy_from_queue",
                matches!(rep, Ok((w, _)) if w[0] == 0 && w[1] == 0xA5) && sres == 0,
                format_args!(
                    "receiver {rep:x?}, sender error {sres:#x}, slow faults {}",
                    SLOW_FAULTS.load(Ordering::SeqCst)
                ),
            );
            for t in [c, snd, p] {
                kill_r(t);
            }
        }
        Err(e) => {
            s.check(
                "found_by_fuzz.send_timeout_during_string_copy_from_queue",
                false,
                format_args!("{e}"),
            );
        }
    }
    // 2. The sender is deleted while its receiver's copy waits for a page fault: the copy
    //    is aborted for the receiver (code 7), nothing touches the deleted thread.
    match setup(1) {
        Ok((c, snd, p)) => {
            let faulted = util::wait_until(|| SLOW_FAULTS.load(Ordering::SeqCst) > 0);
            let killed = kill_r(snd) == 1;
            RELEASE.store(true, Ordering::SeqCst);
            let rep = util::receive_report(c, 20_000);
            s.check(
                "found_by_fuzz.delete_sender_during_string_copy",
                faulted && killed && matches!(rep, Ok((w, _)) if w[0] & 0xF == 7 << 1 | 1),
                format_args!("faulted {faulted} deleted {killed} receiver {rep:x?}"),
            );
            for t in [c, p] {
                kill_r(t);
            }
        }
        Err(e) => {
            s.check(
                "found_by_fuzz.delete_sender_during_string_copy",
                false,
                format_args!("{e}"),
            );
        }
    }
    // 3. The receiver's own fault IPC inside its string copy is answered with a string item
    //    (not accepted: overflow). That nested transfer used to replace the links of the outer
    //    one, so the sender kept a stale link to the receiver: aborting the sender's next IPC
    //    (a send to itself) then aborted the receiver's copy (code 7 instead of 3), and a
    //    transfer partner that left its transfer could be woken later while in a send queue
    //    (docs/kernel-bugs.md, "thread in two send queues").
    STRING_REPLY.store(true, Ordering::SeqCst);
    SELF_SEND.store(true, Ordering::SeqCst);
    S_SELF_RESULT.store(u64::MAX, Ordering::SeqCst);
    let name = "found_by_fuzz.string_reply_to_fault_in_copy_keeps_transfer_links";
    match setup(2) {
        Ok((c, snd, p)) => {
            let rep = util::receive_report(c, 20_000);
            let sent = util::wait_until(|| S_RESULT.load(Ordering::SeqCst) != u64::MAX);
            let pending = abi::syscall_args::ScheduleResult::PendingSend as u64;
            let queued = util::wait_until(|| util::state_of(snd) == pending);
            let (r, _) = syscall::exchange_registers(
                snd,
                syscall::ExregsState {
                    control: (1 << 1) | (1 << 2),
                    ..Default::default()
                },
            );
            let ended = util::wait_until(|| S_SELF_RESULT.load(Ordering::SeqCst) != u64::MAX);
            let code = S_SELF_RESULT.load(Ordering::SeqCst);
            // Canceled (3) in the send phase: ErrorCode 3 << 1.
            s.check(
                name,
                sent && queued && !r.is_nil() && ended && code == 3 << 1,
                format_args!(
                    "receiver {rep:x?}, sender {:#x}, send to itself queued {queued}, \
                     its error after the abort {code:#x} (want 0x6), slow faults {}",
                    S_RESULT.load(Ordering::SeqCst),
                    SLOW_FAULTS.load(Ordering::SeqCst)
                ),
            );
            for t in [c, snd, p] {
                kill_r(t);
            }
        }
        Err(e) => {
            s.check(name, false, format_args!("{e}"));
        }
    }
    STRING_REPLY.store(false, Ordering::SeqCst);
    SELF_SEND.store(false, Ordering::SeqCst);
    // The kernel still works.
    let t = tid(0x1CF);
    let ok = util::spawn_in_new_space(t, util::child_hello, 21).is_ok()
        && util::receive_report(t, 2000).is_ok();
    s.check(
        "found_by_fuzz.kernel_works_afterwards",
        ok && kill_r(t) == 1,
        format_args!("error {}", utcb::error_code()),
    );
    kernel_invariants(s, "found_by_fuzz.kernel_invariants_hold_at_end");
}
