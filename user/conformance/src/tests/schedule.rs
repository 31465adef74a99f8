//! Schedule, ThreadSwitch and SystemClock (spec 5.4–5.6): result words for each thread state,
//! errors, TimeControl (timeslice set and read back, time points refused), priorities
//! (strict between levels, round robin within one), ThreadSwitch to nil / self / a thread.
//! The root runs at 255 and sleeps while its workers (below it) run; no timing threshold is
//! tighter than 10x.
//!
//! Threads, root UTCB slots and stacks come from each check's [`Cx`]; worker `i` of a check
//! finds its index in [`WORKERS`].

use core::sync::atomic::{AtomicU64, Ordering};

use abi::time::TimeSpec;
use abi::{ThreadId, Time};
use l4::{syscall, thread, utcb};

use super::util::{self, kill, period, root, sched, set_prio, state_of, tc};
use crate::conformance::{Check, Cx, start_local};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "schedule.system_clock",
        run: system_clock,
    },
    Check {
        name: "schedule.time_control",
        run: time_control,
    },
    Check {
        name: "schedule.errors",
        run: errors,
    },
    Check {
        name: "schedule.result_words",
        run: result_words,
    },
    Check {
        name: "schedule.priority_200",
        run: priority_200,
    },
    Check {
        name: "schedule.higher_priority",
        run: higher_priority,
    },
    Check {
        name: "schedule.equal_priority",
        run: equal_priority,
    },
    Check {
        name: "schedule.thread_switch",
        run: thread_switch,
    },
];

/// The workers of the running check by index (raw ids).
static WORKERS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static CNT: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static ORDER: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static SEQ: AtomicU64 = AtomicU64::new(0);

fn index() -> usize {
    let me = utcb::my_global_id().raw();
    (0..8)
        .find(|&i| WORKERS[i].load(Ordering::SeqCst) == me)
        .unwrap_or(7)
}

extern "C" fn busy() -> ! {
    let i = index();
    ORDER[i].store(SEQ.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
    loop {
        CNT[i].fetch_add(1, Ordering::SeqCst);
    }
}

extern "C" fn yielder() -> ! {
    let i = index();
    loop {
        CNT[i].fetch_add(1, Ordering::SeqCst);
        syscall::thread_switch(ThreadId::NIL);
    }
}

extern "C" fn sender() -> ! {
    util::report(&[0x5E4D]);
    util::park()
}

fn reset() {
    for c in CNT.iter().chain(ORDER.iter()) {
        c.store(0, Ordering::SeqCst);
    }
    SEQ.store(0, Ordering::SeqCst);
}

fn cnt(i: usize) -> u64 {
    CNT[i].load(Ordering::SeqCst)
}

/// Worker `i` of the check (a fresh thread, slot and stack from `cx`) at `prio`.
fn worker(cx: &mut Cx, i: usize, prio: u64, f: extern "C" fn() -> !) -> ThreadId {
    let t = cx.thread();
    WORKERS[i].store(t.raw(), Ordering::SeqCst);
    let (loc, sp) = (cx.slot(), cx.stack());
    if !start_local(t, loc, sp, Some(prio), f) {
        l4::println!(
            "schedule: worker {i} not created: error {}",
            utcb::error_code()
        );
    }
    t
}

fn slice_us(tc: u64) -> Option<u64> {
    match Time((tc >> 16) as u16).decode() {
        TimeSpec::Period(us) => Some(us),
        _ => None,
    }
}

/// SystemClock: monotonic, advancing over a sleep.
fn system_clock(s: &mut Cx) {
    let mut prev = syscall::system_clock();
    let mut mono = true;
    for _ in 0..1000 {
        let now = syscall::system_clock();
        mono &= now >= prev;
        prev = now;
    }
    s.check("system_clock.monotonic_1000_reads", mono, format_args!(""));
    let t0 = syscall::system_clock();
    util::sleep_us(10_000);
    let dt = syscall::system_clock() - t0;
    s.check(
        "system_clock.advances_over_10ms_sleep",
        (10_000..1_000_000).contains(&dt),
        format_args!("{dt} us"),
    );
}

/// Result words of the root and of an inactive thread; its TimeControl set and read back.
fn time_control(s: &mut Cx) {
    let me = root();
    let nil = ThreadId::NIL;
    s.check_eq("schedule.result_running_for_self", state_of(me), 3);
    let d = s.thread();
    let loc = s.slot();
    s.check_eq(
        "schedule.dead_target_created",
        tc(d, me, me, nil, loc),
        (1, 0),
    );
    s.check_eq("schedule.result_dead_for_inactive", state_of(d), 1);
    // Time control of a fresh thread: the default 10 ms timeslice; then 5 ms.
    let (r, old, e) = sched(
        d,
        (period(5000) << 16) | Time::NEVER.raw() as u64,
        u64::MAX,
        u64::MAX,
        u64::MAX,
    );
    s.check(
        "schedule.set_timeslice_5ms",
        r != 0,
        format_args!("result {r} error {e}"),
    );
    s.check_eq(
        "schedule.default_timeslice_10ms",
        slice_us(old),
        Some(10_000),
    );
    let (_, now, _) = sched(d, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    s.check_eq(
        "schedule.timeslice_reads_back_5ms",
        slice_us(now),
        Some(5000),
    );
    s.check_eq(
        "schedule.quantum_never_reads_back",
        now & 0xFFFF,
        Time::NEVER.raw() as u64,
    );
    let (r, _, e) = sched(
        d,
        (0x8123 << 16) | Time::NEVER.raw() as u64,
        u64::MAX,
        u64::MAX,
        u64::MAX,
    );
    s.check_eq("schedule.err_timeslice_time_point", (r, e), (0, 5));
    let (r, _, e) = sched(
        d,
        (period(5000) << 16) | 0x8123,
        u64::MAX,
        u64::MAX,
        u64::MAX,
    );
    s.check_eq("schedule.err_quantum_time_point", (r, e), (0, 5));
    let (_, now, _) = sched(d, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    s.check_eq(
        "schedule.refused_time_control_changes_nothing",
        slice_us(now),
        Some(5000),
    );
    let (r, _, e) = sched(d, u64::MAX, 1, u64::MAX, u64::MAX);
    s.check_eq("schedule.err_processor_1", (r, e), (0, 5));
    let (r, _, e) = sched(d, u64::MAX, 0, u64::MAX, u64::MAX);
    s.check(
        "schedule.processor_0_accepted",
        r == 1,
        format_args!("result {r} error {e}"),
    );
    s.check_eq(
        "schedule.activate_for_waiting",
        tc(d, me, nil, me, u64::MAX),
        (1, 0),
    );
    s.check_eq("schedule.result_waiting_for_startup_wait", state_of(d), 6);
    kill(d);
}

/// Errors: no such thread, a stale version, nil.
fn errors(s: &mut Cx) {
    let me = root();
    let nil = ThreadId::NIL;
    let never = s.thread();
    let (r, _, e) = sched(never, u64::MAX, u64::MAX, 10, u64::MAX);
    s.check_eq("schedule.err_nonexistent", (r, e), (0, 2));
    let (r, _, e) = sched(
        ThreadId::global(me.number(), 3),
        u64::MAX,
        u64::MAX,
        10,
        u64::MAX,
    );
    s.check_eq("schedule.err_stale_version", (r, e), (0, 2));
    let (r, _, _) = sched(nil, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    s.check_eq("schedule.nil_dest_result_0", r, 0);
    s.check_eq(
        "schedule.root_priority_unchanged_by_errors",
        state_of(me),
        3,
    );
}

/// Running, halted (inactive), pending send, waiting.
fn result_words(s: &mut Cx) {
    set_prio(root(), 255);
    reset();
    let b = worker(s, 0, 100, busy);
    s.check_eq("schedule.result_running_for_ready", state_of(b), 3);
    util::sleep_us(10_000);
    thread::stop(b);
    s.check_eq("schedule.result_inactive_for_halted", state_of(b), 2);
    kill(b);
    let p = worker(s, 1, 100, sender);
    util::wait_until(|| state_of(p) == 4);
    s.check_eq("schedule.result_pending_send", state_of(p), 4);
    let rep = util::receive_report(p, 1000);
    s.check(
        "schedule.pending_sender_received",
        matches!(rep, Ok((w, _)) if w[0] == 0x5E4D),
        format_args!("{rep:x?}"),
    );
    util::sleep_us(5_000);
    s.check_eq("schedule.result_waiting_for_receiver", state_of(p), 6);
    kill(p);
}

/// Priorities: 200 sticks (0x1C8 is 200 whether bit 8 is masked or the value ignored); a
/// lowered priority gives way.
fn priority_200(s: &mut Cx) {
    set_prio(root(), 255);
    reset();
    let lo = worker(s, 1, 150, busy);
    let hi = worker(s, 0, 100, busy);
    let r1 = set_prio(hi, 200);
    let r2 = set_prio(hi, 0x1C8);
    util::wait_until(|| cnt(0) > 0);
    util::sleep_us(10_000);
    s.check(
        "schedule.priority_200_sticks",
        r1 != 0 && r2 != 0 && cnt(0) > 0 && cnt(1) == 0,
        format_args!(
            "results {r1} {r2}; counts prio-200 {} prio-150 {}",
            cnt(0),
            cnt(1)
        ),
    );
    set_prio(hi, 100);
    util::sleep_us(30_000);
    let c_hi = cnt(0);
    util::sleep_us(30_000);
    s.check(
        "schedule.lowered_priority_gives_way",
        cnt(1) > 0 && cnt(0) == c_hi,
        format_args!("prio-100 {} -> {}, prio-150 {}", c_hi, cnt(0), cnt(1)),
    );
    kill(hi);
    kill(lo);
}

/// A higher priority runs first and starves a lower busy one.
fn higher_priority(s: &mut Cx) {
    set_prio(root(), 255);
    reset();
    let lo = worker(s, 0, 20, busy);
    let hi = worker(s, 1, 30, busy);
    util::wait_until(|| ORDER[1].load(Ordering::SeqCst) != 0);
    let (ol, oh) = (
        ORDER[0].load(Ordering::SeqCst),
        ORDER[1].load(Ordering::SeqCst),
    );
    s.check(
        "schedule.higher_priority_runs_first",
        oh == 1,
        format_args!("order: low {ol}, high {oh}"),
    );
    s.check_eq(
        "schedule.lower_priority_starves_under_busy_higher",
        cnt(0),
        0,
    );
    kill(hi);
    kill(lo);
}

/// Equal priorities share the processor, with 2 ms slices and with the default ones.
fn equal_priority(s: &mut Cx) {
    set_prio(root(), 255);
    reset();
    let a = worker(s, 0, 100, busy);
    let b = worker(s, 1, 100, busy);
    for t in [a, b] {
        sched(
            t,
            (period(2000) << 16) | Time::NEVER.raw() as u64,
            u64::MAX,
            u64::MAX,
            u64::MAX,
        );
    }
    util::wait_until(|| cnt(0) > 0 && cnt(1) > 0);
    s.check(
        "schedule.equal_priority_2ms_slices_both_progress",
        cnt(0) > 0 && cnt(1) > 0,
        format_args!("{} {}", cnt(0), cnt(1)),
    );
    kill(a);
    kill(b);
    reset();
    let a = worker(s, 0, 100, busy);
    let b = worker(s, 1, 100, busy);
    util::wait_until(|| cnt(0) > 0 && cnt(1) > 0);
    s.check(
        "schedule.equal_priority_default_slices_both_progress",
        cnt(0) > 0 && cnt(1) > 0,
        format_args!("{} {}", cnt(0), cnt(1)),
    );
    kill(a);
    kill(b);
}

/// ThreadSwitch to nil, self, nobody, an equal and a lower priority thread.
fn thread_switch(s: &mut Cx) {
    let me = root();
    let nil = ThreadId::NIL;
    set_prio(me, 255);
    let never = s.thread();
    syscall::thread_switch(nil);
    s.check("thread_switch.nil_returns", true, format_args!(""));
    syscall::thread_switch(me);
    s.check("thread_switch.self_returns", true, format_args!(""));
    syscall::thread_switch(never);
    s.check("thread_switch.nonexistent_returns", true, format_args!(""));
    reset();
    let y = worker(s, 0, 255, yielder);
    let c0 = cnt(0);
    syscall::thread_switch(y);
    let c1 = cnt(0);
    s.check(
        "thread_switch.to_equal_priority_thread_runs_it",
        c1 > c0,
        format_args!("{c0} -> {c1}"),
    );
    syscall::thread_switch(nil);
    let c2 = cnt(0);
    s.check(
        "thread_switch.nil_yields_to_equal_priority",
        c2 > c1,
        format_args!("{c1} -> {c2}"),
    );
    kill(y);
    let l = worker(s, 1, 50, busy);
    let c0 = cnt(1);
    syscall::thread_switch(l);
    let c1 = cnt(1);
    s.check(
        "thread_switch.to_lower_priority_thread_runs_it",
        c1 > c0,
        format_args!("{c0} -> {c1}"),
    );
    kill(l);
    set_prio(me, 255);
}
