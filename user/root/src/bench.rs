//! `bench`: the classic L4 pingpong benchmark (spec 10.2) plus a null system call and an
//! exception round trip. Figures are rdtsc deltas; under QEMU `-icount shift=0` the TSC
//! advances once per executed instruction, so they are instruction counts.
//!
//! * IPC: `ping` Calls `pong` (Ipc with to = from = pong, never time out, tag u = words) and
//!   `pong` answers with ReplyWait (send timeout zero, receive from any), for 0..=63 untyped
//!   words, [`ROUNDS`] round trips after [`WARMUP`]; the figure is per **one-way** IPC
//!   (delta / 2·ROUNDS). Three set-ups: ping and pong in two new address spaces (`inter-as`),
//!   both in one new space (`intra-as`), and the same with Lipc and local ids (`intra-as-lipc`).
//!   The new spaces run the root's image, paged by a pager thread of the root
//!   ([`crate::demo::spaces`]).
//! * Null system call: `SystemClock`, the cheapest real `syscall` (it only reads the clock);
//!   ThreadSwitch would go through the scheduler and KernelInterface is an emulated #UD.
//! * Exception round trip: a thread of the root space executes `ud2`; its exception handler
//!   (the root) replies with RIP + 2; per exception = fault, exception IPC, reply, resume.
//! * ThreadSwitch to a ready thread: two threads of the root space (same priority) switch to
//!   each other with `ThreadSwitch(other)`; per switch (the user loop included).
//!
//! * IO-fpages: the 0-word inter-AS figure again with spaces that hold ports (8 each), ping's
//!   below 0x400: `one` (pong's space has none), `one-access` (ping also reads one of its
//!   ports before every message: a driver's steady state, no fault), `both` (pong's space
//!   holds ports too, neither touches them: no copy), `both-access` (both read a port per
//!   message: every switch meets a bitmap not in the TSS, so the port access faults once and
//!   the kernel copies 128 bytes of bitmap: the lazy-copy worst case), `both-access-8k` (the
//!   same with pong's ports at 0xFFF8: 8 KiB per copy). The ports come from the root (a map
//!   item in reply to a request each thread sends first).
//!
//! Output: `bench: <kind> words=<n> cycles=<x.xx>`, `bench: null-syscall cycles=<x.xx>`,
//! `bench: exception cycles=<x.xx>`, `bench: thread-switch cycles=<x.xx>`, `bench: io-switch kind=<k> cycles=<x.xx>`, then
//! `bench: done` and KDB `exit-success`.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::msgtag::labels;
use abi::{MsgTag, ThreadId, Time, Timeouts};
use l4::{msg, println, syscall, thread, utcb};

use crate::demo::spaces::{self, Stack};

/// Round trips per figure.
pub const ROUNDS: u64 = 1000;
/// Round trips before measuring (page faults, caches).
pub const WARMUP: u64 = 50;
/// Null system calls / exceptions measured.
const CALLS: u64 = 1000;

const PAGER: u64 = 0x10;
const DONE: u64 = 0xD0E;
/// Label of ping's request for ports (IO-fpage modes).
const PORTS_REQ: u64 = 0x10F;
/// IO-fpage modes 3..: (name, ping's first port, pong's first port or 0 for none, whether
/// each side reads its first port once per message); 8 ports each.
const IO_MODES: [(&str, u64, u64, bool); 5] = [
    ("one", 0x3F8, 0, false),
    ("one-access", 0x3F8, 0, true),
    ("both", 0x3F8, 0x2F8, false),
    ("both-access", 0x3F8, 0x2F8, true),
    ("both-access-8k", 0x3F8, 0xFFF8, true),
];

/// IO-fpage modes: `in al, dx` from `port` when `on` (a port the space holds).
#[inline(always)]
fn touch_port(on: bool, port: u64) {
    if on {
        // SAFETY: a read of a port our space was given (COM1's scratch register area or an
        // absent device); no memory is touched.
        unsafe {
            core::arch::asm!("in al, dx", in("dx") port as u16, out("al") _, options(nomem, nostack))
        };
    }
}

/// IO-fpage modes: ask the root for this thread's ports.
fn request_ports() {
    utcb::accept(abi::Acceptor::map_grant(abi::Fpage::COMPLETE));
    utcb::set_mr(0, MsgTag::new(PORTS_REQ, 0, 0).raw());
    let _ = msg::call(spaces::root());
}

/// IO-fpage modes: answer `t`'s request with 8 ports from `port` (the root holds them).
fn grant_ports(t: ThreadId, port: u64) -> bool {
    let asked = matches!(
        msg::receive_timeout(t, Time::period_micros(10_000_000)),
        Ok(tag) if tag.label() == PORTS_REQ
    );
    let w = abi::MapItem::new(abi::IoFpage::new_log2(port, 3).fpage(), 0).to_words(false);
    utcb::set_mrs(1, &w);
    utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
    asked && msg::send_timeout(t, Time::period_micros(1_000_000)).is_ok()
}

/// How ping talks to pong: 0 Ipc with global ids, 1 Ipc in one space, 2 Lipc.
static MODE: AtomicU64 = AtomicU64::new(0);
/// Partner id ping uses (global for Ipc).
static PONG: AtomicU64 = AtomicU64::new(0);
/// Per word count: 100 × instructions per one-way IPC.
static RESULTS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
static EXC_RESULT: AtomicU64 = AtomicU64::new(0);
/// Print the kernel's event counters around the measured rounds (`bench counters`).
static COUNTERS: AtomicU64 = AtomicU64::new(0);

/// Counter snapshots around a measured loop (see [`run`]).
fn counters_mark(what: &str, words: u64, begin: bool) {
    if COUNTERS.load(Ordering::SeqCst) != 0 {
        if begin {
            println!("bench: counters {what} words={words}");
        }
        l4::kdb::enter("counters");
    }
}

static mut PING_STACK: Stack = Stack::new();
static mut PONG_STACK: Stack = Stack::new();
static mut FAULTER_STACK: Stack = Stack::new();

#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects (user-mode rdtsc is allowed).
    unsafe { core::arch::x86_64::_rdtsc() }
}

extern "C" fn ping() -> ! {
    let mode = MODE.load(Ordering::SeqCst);
    let mut pong = ThreadId::from_raw(PONG.load(Ordering::SeqCst));
    if mode == 2 {
        pong = thread::local_id_of(pong);
    }
    let (io_touch, io_port) = if mode >= 3 {
        // IO-fpages: get ports from the root first, so this space has an I/O bitmap.
        request_ports();
        let m = IO_MODES[(mode - 3) as usize];
        (m.3, m.1)
    } else {
        (false, 0)
    };
    for w in 0..64u64 {
        if mode >= 3 && w > 0 {
            break; // only the 0-word figure
        }
        let tag = MsgTag::new(0, w, 0).raw();
        let round = |n: u64| {
            for _ in 0..n {
                touch_port(io_touch, io_port);
                utcb::set_mr(0, tag);
                if mode == 2 {
                    syscall::lipc(pong, pong, Timeouts::NEVER);
                } else {
                    syscall::ipc(pong, pong, Timeouts::NEVER);
                }
            }
        };
        round(WARMUP);
        let counted = matches!(w, 0 | 8 | 63) && mode < 3;
        let what = ["inter-as", "intra-as", "intra-as-lipc"][mode.min(2) as usize];
        if counted {
            counters_mark(what, w, true);
        }
        let t0 = rdtsc();
        round(ROUNDS);
        let t1 = rdtsc();
        if counted {
            counters_mark(what, w, false);
        }
        RESULTS[w as usize].store((t1 - t0) * 100 / (2 * ROUNDS), Ordering::SeqCst);
    }
    utcb::set_mr(0, MsgTag::new(DONE, 0, 0).raw());
    let _ = msg::send_timeout(spaces::root(), Time::period_micros(5_000_000));
    loop {
        msg::sleep(Time::NEVER);
    }
}

extern "C" fn pong() -> ! {
    let mode = MODE.load(Ordering::SeqCst);
    let (io_touch, io_port) = if mode >= 3 && IO_MODES[(mode - 3) as usize].2 != 0 {
        request_ports();
        let m = IO_MODES[(mode - 3) as usize];
        (m.3, m.2)
    } else {
        (false, 0)
    };
    let lipc = mode == 2;
    let mut r = syscall::ipc(ThreadId::NIL, ThreadId::ANY, Timeouts::NEVER);
    loop {
        touch_port(io_touch, io_port);
        let from = r.from;
        let u = r.tag.untyped();
        utcb::set_mr(0, MsgTag::new(0, u, 0).raw());
        r = if lipc {
            syscall::lipc(
                from,
                ThreadId::ANY_LOCAL,
                Timeouts::new(Time::ZERO, Time::NEVER),
            )
        } else {
            syscall::ipc(from, ThreadId::ANY, Timeouts::new(Time::ZERO, Time::NEVER))
        };
    }
}

fn fixed(x: u64) -> (u64, u64) {
    (x / 100, x % 100)
}

/// One IPC set-up: creates ping and pong (`same_space`: pong in ping's space), runs, prints.
fn ipc_run(name: &str, mode: u64, pager: ThreadId, ping_k: u64, pong_k: u64) -> bool {
    let (pi, po) = (spaces::tid(ping_k), spaces::tid(pong_k));
    let ok = if mode == 0 || mode >= 3 {
        spaces::new_space(pi, pager) && spaces::new_space(po, pager)
    } else {
        spaces::new_space(pi, pager) && spaces::new_thread_in(po, pi, 1, pager)
    };
    if !ok {
        return false;
    }
    MODE.store(mode, Ordering::SeqCst);
    PONG.store(po.raw(), Ordering::SeqCst);
    for r in &RESULTS {
        r.store(0, Ordering::SeqCst);
    }
    // SAFETY: the previous ping/pong using these stacks are deleted.
    let (sp_ping, sp_pong) = unsafe {
        (
            spaces::prepare_stack(&raw mut PING_STACK),
            spaces::prepare_stack(&raw mut PONG_STACK),
        )
    };
    let started = spaces::start_via_pager(pager, po, pong, sp_pong)
        && spaces::start_via_pager(pager, pi, ping, sp_ping);
    let mut started = started;
    if started && mode >= 3 {
        // Answer the port requests (pong first: it was started first).
        let (_, ping_port, pong_port, _) = IO_MODES[(mode - 3) as usize];
        if pong_port != 0 {
            started &= grant_ports(po, pong_port);
        }
        started &= grant_ports(pi, ping_port);
    }
    let done = started
        && matches!(
            msg::receive_timeout(pi, Time::period_micros(60_000_000)),
            Ok(tag) if tag.label() == DONE
        );
    if done && mode >= 3 {
        let (i, f) = fixed(RESULTS[0].load(Ordering::SeqCst));
        let kind = IO_MODES[(mode - 3) as usize].0;
        println!("bench: io-switch kind={kind} cycles={i}.{f:02}");
    } else if done {
        for (w, r) in RESULTS.iter().enumerate() {
            let (i, f) = fixed(r.load(Ordering::SeqCst));
            println!("bench: {name} words={w} cycles={i}.{f:02}");
        }
    } else {
        println!("bench: {name} FAILED");
    }
    spaces::delete(pi);
    spaces::delete(po);
    done
}

extern "C" fn faulter() -> ! {
    utcb::set_exception_handler(spaces::root());
    let once = || {
        // SAFETY: a deliberate #UD; the handler resumes us at RIP + 2 (after the ud2).
        unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    };
    for _ in 0..WARMUP {
        once();
    }
    counters_mark("exception", 0, true);
    let t0 = rdtsc();
    for _ in 0..CALLS {
        once();
    }
    let t1 = rdtsc();
    counters_mark("exception", 0, false);
    EXC_RESULT.store((t1 - t0) * 100 / CALLS, Ordering::SeqCst);
    utcb::set_mr(0, MsgTag::new(DONE, 0, 0).raw());
    let _ = msg::send_timeout(spaces::root(), Time::period_micros(5_000_000));
    loop {
        msg::sleep(Time::NEVER);
    }
}

fn exception_run() -> bool {
    let t = spaces::tid(0x26);
    // SAFETY: not in use.
    let sp = unsafe { spaces::prepare_stack(&raw mut FAULTER_STACK) };
    if !spaces::spawn_local(t, 0x26, faulter, sp) {
        return false;
    }
    let mut r = msg::receive_timeout(t, Time::period_micros(10_000_000));
    let ok = loop {
        match r {
            Ok(tag) if tag.label() & !0xF == labels::EXCEPTION => {
                utcb::set_mr(1, utcb::mr(1) + 2);
                utcb::set_mr(0, MsgTag::new(0, tag.untyped().min(18), 0).raw());
                r = msg::ipc(
                    t,
                    t,
                    Timeouts::new(Time::ZERO, Time::period_micros(10_000_000)),
                )
                .map(|r| r.tag);
            }
            Ok(tag) if tag.label() == DONE => break true,
            Ok(tag) => {
                println!("bench: exception: unexpected tag {:#x}", tag.raw());
                break false;
            }
            Err(e) => {
                println!("bench: exception: IPC failed ({:?})", e.error());
                break false;
            }
        }
    };
    if ok {
        let (i, f) = fixed(EXC_RESULT.load(Ordering::SeqCst));
        println!("bench: exception cycles={i}.{f:02}");
    }
    spaces::delete(t);
    ok
}

/// The two threads of the ThreadSwitch figure (set before they start).
static SWITCH_PEER: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
/// Set by the measuring thread when it is done: the other one stops switching.
static SWITCH_STOP: AtomicU64 = AtomicU64::new(0);
static SWITCH_RESULT: AtomicU64 = AtomicU64::new(0);

/// ThreadSwitch figure, measuring side: `CALLS` switches to the other thread, each answered by
/// one switch back; per switch = delta / 2·CALLS.
extern "C" fn switcher_a() -> ! {
    let b = ThreadId::from_raw(SWITCH_PEER[1].load(Ordering::SeqCst));
    for _ in 0..WARMUP {
        syscall::thread_switch(b);
    }
    let t0 = rdtsc();
    for _ in 0..CALLS {
        syscall::thread_switch(b);
    }
    let t1 = rdtsc();
    SWITCH_RESULT.store((t1 - t0) * 100 / (2 * CALLS), Ordering::SeqCst);
    SWITCH_STOP.store(1, Ordering::SeqCst);
    utcb::set_mr(0, MsgTag::new(DONE, 0, 0).raw());
    let _ = msg::send_timeout(spaces::root(), Time::period_micros(5_000_000));
    loop {
        msg::sleep(Time::NEVER);
    }
}

/// ThreadSwitch figure, answering side: switches back until told to stop.
extern "C" fn switcher_b() -> ! {
    let a = ThreadId::from_raw(SWITCH_PEER[0].load(Ordering::SeqCst));
    while SWITCH_STOP.load(Ordering::SeqCst) == 0 {
        syscall::thread_switch(a);
    }
    loop {
        msg::sleep(Time::NEVER);
    }
}

/// ThreadSwitch to a ready thread: two threads of the root's space (same priority) switch to
/// each other; the figure is per switch (user loop included).
fn thread_switch_run() -> bool {
    let (a, b) = (spaces::tid(0x34), spaces::tid(0x35));
    SWITCH_PEER[0].store(a.raw(), Ordering::SeqCst);
    SWITCH_PEER[1].store(b.raw(), Ordering::SeqCst);
    SWITCH_STOP.store(0, Ordering::SeqCst);
    // SAFETY: not in use (the faulter is deleted; ping and pong are not created yet).
    let (sa, sb) = unsafe {
        (
            spaces::prepare_stack(&raw mut PING_STACK),
            spaces::prepare_stack(&raw mut PONG_STACK),
        )
    };
    let ok = spaces::spawn_local(b, 0x27, switcher_b, sb)
        && spaces::spawn_local(a, 0x26, switcher_a, sa)
        && matches!(
            msg::receive_timeout(a, Time::period_micros(60_000_000)),
            Ok(tag) if tag.label() == DONE
        );
    if ok {
        let (i, f) = fixed(SWITCH_RESULT.load(Ordering::SeqCst));
        println!("bench: thread-switch cycles={i}.{f:02}");
    } else {
        println!("bench: thread-switch FAILED");
    }
    spaces::delete(a);
    spaces::delete(b);
    ok
}

fn null_syscall() {
    for _ in 0..WARMUP {
        syscall::system_clock();
    }
    let t0 = rdtsc();
    for _ in 0..CALLS {
        syscall::system_clock();
    }
    let t1 = rdtsc();
    let (i, f) = fixed((t1 - t0) * 100 / CALLS);
    println!("bench: null-syscall cycles={i}.{f:02} (SystemClock)");
}

/// Runs every measurement and ends the run.
pub fn run(args: &str) {
    // `bench counters` (a kernel built with the `counters` feature, `make bench`): the kernel
    // prints its event counters (KDB_Enter("counters")) around the measured rounds of 0, 8 and
    // 63 words and of the exception round trip; `xtask bench` turns them into per-IPC counts.
    COUNTERS.store(
        args.split_whitespace().any(|a| a == "counters") as u64,
        Ordering::SeqCst,
    );
    println!(
        "bench: start ({ROUNDS} round trips per figure after {WARMUP}; figures per one-way IPC)"
    );
    let pager = spaces::tid(PAGER);
    let mut ok = spaces::start_pager(pager, PAGER);
    null_syscall();
    ok &= exception_run();
    ok &= thread_switch_run();
    ok &= ipc_run("inter-as", 0, pager, 0x20, 0x21);
    ok &= ipc_run("intra-as", 1, pager, 0x22, 0x23);
    ok &= ipc_run("intra-as-lipc", 2, pager, 0x24, 0x25);
    for (_, a, b, _) in IO_MODES {
        ok &= l4::sigma0::get_io(a, 3).is_ok() && (b == 0 || l4::sigma0::get_io(b, 3).is_ok());
    }
    for i in 0..IO_MODES.len() as u64 {
        ok &= ipc_run("io-switch", 3 + i, pager, 0x27 + 2 * i, 0x28 + 2 * i);
    }
    println!("bench: done");
    l4::kdb::enter(if ok { "exit-success" } else { "exit-failure" });
}
