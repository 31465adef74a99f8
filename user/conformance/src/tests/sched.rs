//! Schedule, ThreadSwitch and the scheduler itself (spec 5.5, 5.6): priorities, time slices,
//! result words and errors; equal-priority busy threads all progress, a higher priority runs
//! first, ThreadSwitch yields; and every system call entered with random registers leaves the
//! kernel standing. Workers (ids, slots, stacks) come from each check's [`Cx`] and find their
//! index in [`WORKERS`].

use core::sync::atomic::{AtomicU64, Ordering};

use abi::{ThreadId, Time};
use l4::{kip, msg, syscall, utcb};

use crate::conformance::{Check, Cx, start_local};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "sched.results",
        run: results,
    },
    Check {
        name: "sched.equal_priority",
        run: equal_priority,
    },
    Check {
        name: "sched.short_timeslices",
        run: short_timeslices,
    },
    Check {
        name: "sched.higher_priority",
        run: higher_priority,
    },
    Check {
        name: "sched.halt_resume",
        run: halt_resume,
    },
    Check {
        name: "sched.thread_switch",
        run: thread_switch,
    },
    Check {
        name: "sched.processor_memory_control",
        run: processor_memory_control,
    },
    Check {
        name: "sched.fuzz",
        run: fuzz,
    },
];

/// The workers of the running check by index (raw ids).
static WORKERS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

static COUNTERS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
static SEQ: AtomicU64 = AtomicU64::new(0);
static ORDER: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

fn index() -> usize {
    let me = utcb::my_global_id().raw();
    (0..3)
        .find(|&i| WORKERS[i].load(Ordering::SeqCst) == me)
        .unwrap_or(2)
}

extern "C" fn busy() -> ! {
    let i = index();
    ORDER[i].store(SEQ.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
    loop {
        COUNTERS[i].fetch_add(1, Ordering::Relaxed);
    }
}

extern "C" fn yielder() -> ! {
    let i = index();
    loop {
        COUNTERS[i].fetch_add(1, Ordering::SeqCst);
        syscall::thread_switch(ThreadId::NIL);
    }
}

/// Worker `k` of the check (fresh id, slot and stack from `cx`), priority set before it
/// starts, so it cannot run ahead of its configuration.
fn spawn(cx: &mut Cx, k: usize, prio: u64, entry: extern "C" fn() -> !) -> ThreadId {
    let id = cx.thread();
    WORKERS[k].store(id.raw(), Ordering::SeqCst);
    let (loc, sp) = (cx.slot(), cx.stack());
    start_local(id, loc, sp, Some(prio), entry);
    id
}

use super::util::kill;

fn reset() {
    for c in COUNTERS.iter().chain(ORDER.iter()) {
        c.store(0, Ordering::SeqCst);
    }
    SEQ.store(0, Ordering::SeqCst);
}

/// Schedule: results, priority, time control, errors.
fn results(s: &mut Cx) {
    let me = utcb::my_global_id();
    let (r, _) = syscall::schedule(me, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    s.check_eq("schedule.self_running", r, 3);
    let (r, _) = syscall::schedule(
        ThreadId::global(0x3_3333, 1),
        u64::MAX,
        u64::MAX,
        u64::MAX,
        u64::MAX,
    );
    s.check(
        "schedule.invalid_thread",
        r == 0 && utcb::error_code() == 2,
        format_args!("result {r} error {}", utcb::error_code()),
    );
    let (r, _) = syscall::schedule(ThreadId::NIL, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    s.check_eq("schedule.nil_dest", r, 0);
    let a = spawn(s, 0, 10, yielder);
    let five_ms = Time::period_micros(5000).raw() as u64;
    let (r, _) = syscall::schedule(a, five_ms << 16 | 0xFFFF, u64::MAX, 200, u64::MAX);
    s.check(
        "schedule.set_timeslice_and_priority",
        r != 0,
        format_args!("error {}", utcb::error_code()),
    );
    let (_, old) = syscall::schedule(a, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    s.check(
        "schedule.reports_timeslice",
        (old >> 16) as u16 != 0 && (old >> 16) <= five_ms,
        format_args!("TimeControl {old:#x}"),
    );
    syscall::schedule(a, u64::MAX, u64::MAX, 10, u64::MAX);
    let (r, _) = syscall::schedule(a, 0x8000 << 16 | 0xFFFF, u64::MAX, u64::MAX, u64::MAX);
    s.check(
        "schedule.time_point_invalid_param",
        r == 0 && utcb::error_code() == 5,
        format_args!("result {r} error {}", utcb::error_code()),
    );
    let (r, _) = syscall::schedule(a, u64::MAX, 1, u64::MAX, u64::MAX);
    s.check(
        "schedule.other_processor_invalid_param",
        r == 0 && utcb::error_code() == 5,
        format_args!("result {r} error {}", utcb::error_code()),
    );
    kill(a);
}

/// Equal-priority busy threads all progress (time slices) while we sleep.
fn equal_priority(s: &mut Cx) {
    syscall::schedule(utcb::my_global_id(), u64::MAX, u64::MAX, 255, u64::MAX);
    reset();
    let b0 = spawn(s, 0, 50, busy);
    let b1 = spawn(s, 1, 50, busy);
    let b2 = spawn(s, 2, 50, busy);
    super::util::wait_until(|| (0..3).all(|i| COUNTERS[i].load(Ordering::SeqCst) > 0));
    let c: [u64; 3] = core::array::from_fn(|i| COUNTERS[i].load(Ordering::SeqCst));
    s.check(
        "schedule.equal_priority_all_progress",
        c.iter().all(|&x| x > 0),
        format_args!("{c:?}"),
    );
    for id in [b0, b1, b2] {
        kill(id);
    }
}

/// Shorter time slices: still all progress, with 1 ms slices.
fn short_timeslices(s: &mut Cx) {
    syscall::schedule(utcb::my_global_id(), u64::MAX, u64::MAX, 255, u64::MAX);
    reset();
    let one_ms = Time::period_micros(1000).raw() as u64;
    let x0 = spawn(s, 0, 50, busy);
    let x1 = spawn(s, 1, 50, busy);
    for id in [x0, x1] {
        syscall::schedule(id, one_ms << 16 | 0xFFFF, u64::MAX, u64::MAX, u64::MAX);
    }
    super::util::wait_until(|| (0..2).all(|i| COUNTERS[i].load(Ordering::SeqCst) > 0));
    let c: [u64; 2] = core::array::from_fn(|i| COUNTERS[i].load(Ordering::SeqCst));
    s.check(
        "schedule.short_timeslices_progress",
        c.iter().all(|&x| x > 0),
        format_args!("{c:?}"),
    );
    kill(x0);
    kill(x1);
}

/// A higher priority runs first: create low, then high; both become ready while we sleep.
fn higher_priority(s: &mut Cx) {
    let me = utcb::my_global_id();
    reset();
    syscall::schedule(me, u64::MAX, u64::MAX, 255, u64::MAX);
    let lo = spawn(s, 0, 20, busy);
    let hi = spawn(s, 1, 30, busy);
    super::util::wait_until(|| ORDER[1].load(Ordering::SeqCst) != 0);
    let (ol, oh) = (
        ORDER[0].load(Ordering::SeqCst),
        ORDER[1].load(Ordering::SeqCst),
    );
    s.check(
        "schedule.higher_priority_first",
        oh == 1 && (ol == 0 || ol > oh),
        format_args!("order low {ol} high {oh}"),
    );
    s.check(
        "schedule.lower_starves_under_busy_higher",
        COUNTERS[0].load(Ordering::SeqCst) == 0,
        format_args!("low ran {}", COUNTERS[0].load(Ordering::SeqCst)),
    );
    kill(hi);
    kill(lo);
}

/// ExchangeRegisters halt (H|h) stops a busy thread; resume (H) lets it continue.
fn halt_resume(s: &mut Cx) {
    syscall::schedule(utcb::my_global_id(), u64::MAX, u64::MAX, 255, u64::MAX);
    reset();
    let hb = spawn(s, 0, 50, busy);
    super::util::wait_until(|| COUNTERS[0].load(Ordering::SeqCst) > 0);
    let (_, old) = syscall::exchange_registers(
        hb,
        l4::syscall::ExregsState {
            control: (1 << 8) | 1,
            ..Default::default()
        },
    );
    let c1 = COUNTERS[0].load(Ordering::SeqCst);
    msg::sleep(Time::period_micros(10_000));
    let c2 = COUNTERS[0].load(Ordering::SeqCst);
    s.check(
        "exregs.halt_stops_thread",
        c1 > 0 && c2 == c1 && old.control & 1 == 0,
        format_args!("{c1} -> {c2}, control {:#x}", old.control),
    );
    let (r, _) = syscall::schedule(hb, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    s.check_eq("exregs.halted_thread_schedule_result_inactive", r, 2);
    let (_, old) = syscall::exchange_registers(
        hb,
        l4::syscall::ExregsState {
            control: 1 << 8,
            ..Default::default()
        },
    );
    s.check(
        "exregs.reports_halted",
        old.control & 1 != 0,
        format_args!("control {:#x}", old.control),
    );
    super::util::wait_until(|| COUNTERS[0].load(Ordering::SeqCst) > c2);
    let c3 = COUNTERS[0].load(Ordering::SeqCst);
    s.check(
        "exregs.resume_continues_thread",
        c3 > c2,
        format_args!("{c2} -> {c3}"),
    );
    kill(hb);
}

/// ThreadSwitch(nil) yields to an equal-priority thread; to a thread runs it; to self returns.
fn thread_switch(s: &mut Cx) {
    let me = utcb::my_global_id();
    reset();
    syscall::schedule(me, u64::MAX, u64::MAX, 60, u64::MAX);
    let y = spawn(s, 0, 60, yielder);
    let before = COUNTERS[0].load(Ordering::SeqCst);
    for _ in 0..5 {
        syscall::thread_switch(ThreadId::NIL);
    }
    let after = COUNTERS[0].load(Ordering::SeqCst);
    s.check(
        "thread_switch.yields_to_equal_priority",
        after > before,
        format_args!("{before} -> {after}"),
    );
    // ThreadSwitch to a specific ready thread runs it.
    let b = COUNTERS[0].load(Ordering::SeqCst);
    syscall::thread_switch(y);
    s.check(
        "thread_switch.to_thread_runs_it",
        COUNTERS[0].load(Ordering::SeqCst) > b,
        format_args!(""),
    );
    syscall::thread_switch(me);
    s.check("thread_switch.to_self_returns", true, format_args!(""));
    syscall::schedule(me, u64::MAX, u64::MAX, 255, u64::MAX);
    kill(y);
}

/// ProcessorControl and MemoryControl.
fn processor_memory_control(s: &mut Cx) {
    // An unprivileged, non-scheduler caller is refused (the root is privileged: use a priority
    // above our own through a thread whose scheduler we are not — covered in chain.*); here:
    // ProcessorControl and MemoryControl answers of the platform.
    s.check_eq(
        "processor_control.cpu0",
        syscall::processor_control(0, u64::MAX, u64::MAX, u64::MAX),
        1,
    );
    let r = syscall::processor_control(1, u64::MAX, u64::MAX, u64::MAX);
    s.check(
        "processor_control.other_cpu_invalid",
        r == 0 && utcb::error_code() == 5,
        format_args!("result {r} error {}", utcb::error_code()),
    );
    utcb::set_mr(0, abi::Fpage::new_log2(0x10_0000, 12).raw());
    s.check_eq(
        "memory_control.default_attribute",
        syscall::memory_control(0, [0; 4]),
        1,
    );
    utcb::set_mr(0, abi::Fpage::new_log2(0x10_0000, 12).raw());
    let r = syscall::memory_control(0, [7, 0, 0, 0]);
    s.check(
        "memory_control.unknown_attribute_invalid",
        r == 0 && utcb::error_code() == 5,
        format_args!("result {r} error {}", utcb::error_code()),
    );
}

/// Every system call stub entered with random registers (xorshift, fixed seed). Destination
/// ids are kept out of the range of existing threads so the suite does not delete itself.
fn fuzz(s: &mut Cx) {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let user_base = kip::thread_info().user_base();
    let mut calls = 0u64;
    for _ in 0..3000 {
        let link = (next() % 11) as usize;
        let mut r: [u64; 9] = core::array::from_fn(|_| next());
        // Keep thread ids away from the suite's own threads (numbers below 0x1_0000 above UserBase),
        // and Ipc away from blocking for ever.
        let dest = (r[0] & 0xFFFF_FFFF) | ((user_base + 0x1_0000 + (r[0] >> 48)) << 32);
        r[0] = if r[0] & 1 == 0 {
            dest
        } else {
            r[0] | 0xFFFF_0000_0000_0000
        };
        if link == l4::syscall::link::IPC || link == l4::syscall::link::LIPC {
            r[2] = Time::ZERO.raw() as u64 | (Time::ZERO.raw() as u64) << 16;
        }
        if link == l4::syscall::link::THREAD_CONTROL
            || link == l4::syscall::link::SCHEDULE
            || link == l4::syscall::link::SPACE_CONTROL
        {
            r[1] = dest;
        }
        let addr = syscall::link_address(link);
        // SAFETY: a system call with arbitrary register values; the stub clobbers what any call
        // may clobber, so everything but RSP/RBP is declared clobbered. RDI is kept a valid
        // UTCB pointer only for the stubs that store message registers through it.
        unsafe {
            core::arch::asm!(
                "push rbp",
                "push rbx",
                "mov rbx, r12",
                "call r13",
                "pop rbx",
                "pop rbp",
                inout("r12") r[3] => _,
                inout("r13") addr => _,
                inout("rdi") if matches!(link, 3..=6) { utcb::utcb_pointer() as u64 } else { r[1] } => _,
                inout("rsi") r[4] => _,
                inout("rdx") r[5] => _,
                inout("r8") r[2] => _,
                inout("r9") r[6] => _,
                inout("rax") r[0] => _,
                inout("r10") r[7] => _,
                inout("r11") r[8] => _,
                out("rcx") _, out("r14") _, out("r15") _,
            )
        };
        calls += 1;
    }
    // Leave our own TCRs sane again after random ExchangeRegisters on ourselves.
    utcb::set_pager(kip::sigma0_id());
    syscall::schedule(utcb::my_global_id(), u64::MAX, u64::MAX, 255, u64::MAX);
    s.check(
        "fuzz.random_registers_every_syscall",
        true,
        format_args!("{calls} calls"),
    );
}
