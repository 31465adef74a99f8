//! Regression checks for kernel defects the fuzzer (`root fuzz`, `cargo xtask fuzz`) found;
//! docs/kernel-bugs.md has one line per defect.
//!
//! Set-up shared by the checks: a receiver C in a new space whose pager is a *slow pager*
//! (a thread of the root's space that waits 1 s before answering a fault on C's receive
//! buffer), a sender S
//! in the root's space that is queued on C with a string item (and in the first check a
//! send timeout of 200 ms)
//! before C receives. When C then takes S's message, the copy page-faults on C's untouched
//! receive buffer and blocks in C's slow fault IPC: S is neither in a send queue nor done.
//!
//! Threads: UserBase + 0x1C0.. (C, S, slow pager); root UTCB slots 0xC0..0xC3; util stacks
//! 20..22.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::acceptor::Acceptor;
use abi::items::{MapItem, simple_string};
use abi::msgtag::labels;
use abi::{Fpage, MsgTag, Rights, ThreadId, Time, Timeouts};
use l4::{syscall, utcb};

use super::util::{self, kill_r, tid};
use crate::conformance::Suite;

const LEN: usize = 6000;
const DELAY_US: u64 = 1_000_000;
/// The sender's send timeout in round 0: far longer than the set-up needs (so a slow host
/// cannot make it expire before the copy starts), far shorter than the slow fault.
const SEND_TIMEOUT_US: u64 = 200_000;
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
        if addr >= dst && addr < dst + 8192 {
            // Only the receive buffer is slow: the receiver's way into its receive is fast.
            SLOW_FAULTS.fetch_add(1, Ordering::SeqCst);
            util::sleep_us(DELAY_US);
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
    util::park()
}
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

pub fn run(s: &mut Suite) {
    if !util::ensure_pager() {
        s.check("found_by_fuzz.pager_thread_up", false, format_args!(""));
        return;
    }
    // 1. The queued sender's send timeout expires while its receiver's copy waits for a
    //    page fault: the kernel used to "remove" it from the queue of a null partner.
    match setup(0) {
        Ok((c, snd, p)) => {
            let rep = util::receive_report(c, 5000);
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
            let rep = util::receive_report(c, 5000);
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
    // The kernel still works.
    let t = tid(0x1CF);
    let ok = util::spawn_in_new_space(t, util::child_hello, 21).is_ok()
        && util::receive_report(t, 2000).is_ok();
    s.check(
        "found_by_fuzz.kernel_works_afterwards",
        ok && kill_r(t) == 1,
        format_args!("error {}", utcb::error_code()),
    );
}
