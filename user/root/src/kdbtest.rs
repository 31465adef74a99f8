//! `kdbtest`: a fixed, known system state for the kernel debugger's integration tests
//! (xtask `kdb-*` tests drive the debugger over the serial line against it).
//!
//! * a pager thread (`user_base + 0x20`) as in the demo;
//! * `server` (`user_base + 0x21`), in the root's space: answers every call with the label
//!   plus 0x10 and MR1 doubled;
//! * `client` (`user_base + 0x22`), in its own space: every round calls the server three
//!   times (labels 0x101, 0x102, 0x103, MR1 = 1, 2, 3), then sleeps 100 ms;
//! * the root prints `kdbtest: round N` as rounds complete, so a test sees the system run;
//!   every round it deletes `scratch` (`user_base + 0x24`) and creates it again in a new
//!   space, started through the pager (its first instructions page-fault; then it raises #UD,
//!   an exception message to the pager, which leaves it unanswered), so a trace sees thread
//!   and space creation and deletion, page faults and an exception.
//!
//! Arguments: `fault` adds a thread (`user_base + 0x23`) that executes `ud2` with no
//! exception handler (an undeliverable fault); `enter` makes the root call KDB_Enter once
//! everything runs.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::{MsgTag, ThreadId, Time};
use l4::{msg, println, utcb};

use crate::demo::spaces::{self, Stack};

fn pager_id() -> ThreadId {
    spaces::tid(0x20)
}
fn server_id() -> ThreadId {
    spaces::tid(0x21)
}
fn client_id() -> ThreadId {
    spaces::tid(0x22)
}
fn faulter_id() -> ThreadId {
    spaces::tid(0x23)
}
fn scratch_id() -> ThreadId {
    spaces::tid(0x24)
}

/// Completed rounds (the image is shared page by page, so the client's writes are seen here).
static ROUNDS: AtomicU64 = AtomicU64::new(0);

static mut SERVER_STACK: Stack = Stack::new();
static mut CLIENT_STACK: Stack = Stack::new();
static mut FAULTER_STACK: Stack = Stack::new();
static mut SCRATCH_STACK: Stack = Stack::new();

/// Raises #UD at once; its exception handler (the pager thread) never answers, so it stays
/// blocked in the exception IPC until the root deletes it.
extern "C" fn scratch() -> ! {
    utcb::set_exception_handler(pager_id());
    // SAFETY: a deliberate #UD, delivered as exception IPC (the point).
    unsafe { core::arch::asm!("ud2") };
    loop {
        msg::sleep(Time::NEVER);
    }
}

/// Deletes the scratch thread (and its space) if it exists, then makes it anew.
fn renew_scratch(sp: u64) {
    let s = scratch_id();
    spaces::delete(s);
    if spaces::new_space(s, pager_id()) {
        spaces::start_via_pager(pager_id(), s, scratch, sp);
    }
}

extern "C" fn server() -> ! {
    let mut r = msg::wait();
    loop {
        match r {
            Ok((from, tag)) => {
                utcb::set_mr(1, utcb::mr(1) * 2);
                utcb::set_mr(0, MsgTag::new(tag.label() + 0x10, 1, 0).raw());
                r = msg::reply_wait(from);
            }
            Err(_) => r = msg::wait(),
        }
    }
}

/// One round of the client: three calls. Not inlined, so that its address is a breakpoint.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn kdbtest_client_round() {
    for k in 1..=3u64 {
        utcb::set_mr(1, k);
        utcb::set_mr(0, MsgTag::new(0x100 + k, 1, 0).raw());
        let _ = msg::call_timeouts(
            server_id(),
            Time::period_micros(1_000_000),
            Time::period_micros(1_000_000),
        );
    }
}

extern "C" fn client() -> ! {
    loop {
        kdbtest_client_round();
        ROUNDS.fetch_add(1, Ordering::SeqCst);
        msg::sleep(Time::period_micros(100_000));
    }
}

extern "C" fn faulter() -> ! {
    // SAFETY: deliberately raises #UD; the thread has no exception handler (the point).
    unsafe { core::arch::asm!("ud2") };
    loop {
        msg::sleep(Time::NEVER);
    }
}

pub fn run(args: &str) {
    let fault = args.split_whitespace().any(|a| a == "fault");
    let enter = args.split_whitespace().any(|a| a == "enter");
    if !spaces::start_pager(pager_id(), 1) {
        return;
    }
    // SAFETY: each stack belongs to one thread, not running yet.
    let (ssp, csp, fsp, xsp) = unsafe {
        (
            spaces::prepare_stack(&raw mut SERVER_STACK),
            spaces::prepare_stack(&raw mut CLIENT_STACK),
            spaces::prepare_stack(&raw mut FAULTER_STACK),
            spaces::prepare_stack(&raw mut SCRATCH_STACK),
        )
    };
    if !spaces::spawn_local(server_id(), 2, server, ssp) {
        return;
    }
    let c = client_id();
    if !spaces::new_space(c, pager_id()) || !spaces::start_via_pager(pager_id(), c, client, csp) {
        return;
    }
    println!(
        "kdbtest: server {:#x}, client {:#x}, client round at {:#x}",
        server_id().raw(),
        c.raw(),
        kdbtest_client_round as extern "C" fn() as usize
    );
    while ROUNDS.load(Ordering::SeqCst) == 0 {
        msg::sleep(Time::period_micros(10_000));
    }
    if fault {
        println!("kdbtest: starting a thread that faults with no handler");
        spaces::spawn_local(faulter_id(), 3, faulter, fsp);
    }
    println!("kdbtest: ready");
    if enter {
        l4::kdb::enter("kdbtest-enter");
        println!("kdbtest: back from KDB_Enter");
    }
    let mut seen = ROUNDS.load(Ordering::SeqCst);
    loop {
        msg::sleep(Time::period_micros(20_000));
        let now = ROUNDS.load(Ordering::SeqCst);
        if now != seen {
            seen = now;
            renew_scratch(xsp);
            println!("kdbtest: round {}", now);
        }
    }
}
