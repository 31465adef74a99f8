//! ExchangeRegisters (spec 5.2, 4.6, 6.1): id conversion with control 0, queries with control
//! `1<<9`, setting SP/IP/FLAGS/UserDefinedHandle/Pager on a thread in its start-up wait and on
//! a running one, the output control bits, halt and resume, abort receive (which starts a
//! thread waiting for its start-up message), permissions (same space, or the space of the
//! thread's pager) and the failure form (nil result, ErrorCode 2, all outputs 0).
//!
//! Threads, root UTCB slots and stacks come from each check's [`Cx`].

use core::sync::atomic::{AtomicU64, Ordering};

use abi::{ThreadId, Time, Timeouts};
use l4::syscall::{self, ExregsState};
use l4::{kip, thread, utcb};

use super::util::{self, NEW_UTCB_AREA, pager, query, root, tc};
use crate::conformance::{Check, Cx, start_local};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "exregs.self",
        run: of_self,
    },
    Check {
        name: "exregs.startup_wait",
        run: startup_wait,
    },
    Check {
        name: "exregs.running",
        run: running,
    },
    Check {
        name: "exregs.other_spaces",
        run: other_spaces,
    },
    Check {
        name: "exregs.refusals",
        run: refusals,
    },
];

const USER_FLAGS: u64 = 0x8D5; // CF PF AF ZF SF OF

static W_MARK: AtomicU64 = AtomicU64::new(0);
static W_SP: AtomicU64 = AtomicU64::new(0);
static W_WAKES: AtomicU64 = AtomicU64::new(0);
static W_ERR: AtomicU64 = AtomicU64::new(0);
static E_COUNT: AtomicU64 = AtomicU64::new(0);
static E_HANDLE: AtomicU64 = AtomicU64::new(0);
static E_PAGER: AtomicU64 = AtomicU64::new(0);
static E_REDIRECT: AtomicU64 = AtomicU64::new(0);

/// Started by aborting its start-up wait: records its stack pointer, then receives from
/// itself for ever, recording the ErrorCode each time that receive is cancelled.
extern "C" fn waiter() -> ! {
    let sp: u64;
    // SAFETY: reads RSP only.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack)) };
    W_SP.store(sp, Ordering::SeqCst);
    W_MARK.store(0x57A2_7ED0, Ordering::SeqCst);
    loop {
        let me = utcb::my_global_id();
        let r = syscall::ipc(ThreadId::NIL, me, Timeouts::new(Time::NEVER, Time::NEVER));
        W_ERR.store(
            if r.tag.error() { utcb::error_code() } else { 0 },
            Ordering::SeqCst,
        );
        W_WAKES.fetch_add(1, Ordering::SeqCst);
    }
}

/// Busy thread: counts, and mirrors its UserDefinedHandle and Pager TCRs.
extern "C" fn busy() -> ! {
    loop {
        E_HANDLE.store(utcb::user_defined_handle(), Ordering::SeqCst);
        E_PAGER.store(utcb::pager().raw(), Ordering::SeqCst);
        E_COUNT.fetch_add(1, Ordering::SeqCst);
    }
}

/// Where `busy` is sent by setting its IP.
extern "C" fn redirected() -> ! {
    E_REDIRECT.store(1, Ordering::SeqCst);
    loop {
        E_COUNT.fetch_add(1, Ordering::SeqCst);
    }
}

fn exr(
    t: ThreadId,
    control: u64,
    sp: u64,
    ip: u64,
    flags: u64,
    handle: u64,
    pager: ThreadId,
) -> (ThreadId, ExregsState) {
    syscall::exchange_registers(
        t,
        ExregsState {
            control,
            sp,
            ip,
            flags,
            user_handle: handle,
            pager,
        },
    )
}

/// The failure form: result nil, ErrorCode 2, every other output 0. A pure query with
/// non-zero (ignored) inputs, so that a wrongly accepted call cannot hurt anybody.
fn check_refused(s: &mut Cx, name: &str, t: ThreadId) {
    utcb::write(abi::utcb::ERROR_CODE, 0);
    let (r, o) = exr(t, 1 << 9, 0x1000, 0x2000, !0, 0x77, root());
    let e = utcb::error_code();
    let ok = r.is_nil() && e == 2 && o == ExregsState::default();
    s.check(
        name,
        ok,
        format_args!("result {:#x} error {e} outputs {o:x?}", r.raw()),
    );
}

/// Id conversion and the pager of the root itself.
fn of_self(s: &mut Cx) {
    let me = utcb::my_global_id();
    s.check_eq(
        "exregs.local_id_of_self",
        thread::local_id_of(me),
        utcb::my_local_id(),
    );
    s.check_eq(
        "exregs.global_id_of_self",
        thread::global_id_of(utcb::my_local_id()),
        me,
    );
    s.check_eq("exregs.pager_of_self", thread::pager_of(me), utcb::pager());
}

/// A thread in its start-up wait (created inactive, then activated, never started): queries,
/// setting every register, abort of the start-up wait and of an ordinary receive.
fn startup_wait(s: &mut Cx) {
    let me = utcb::my_global_id();
    let nil = ThreadId::NIL;
    for a in [&W_MARK, &W_SP, &W_WAKES, &W_ERR] {
        a.store(0, Ordering::SeqCst);
    }
    let w = s.thread();
    let (loc, sp6) = (s.slot(), s.stack());
    let ok = tc(w, me, me, nil, loc) == (1, 0) && tc(w, me, nil, me, u64::MAX) == (1, 0);
    s.check(
        "exregs.target_in_startup_wait_created",
        ok,
        format_args!("error {}", utcb::error_code()),
    );
    let (rid, q0) = query(w);
    s.check_eq("exregs.query_result_local_id", rid.raw(), loc + 0x200);
    s.check(
        "exregs.startup_wait_reports_receiving",
        q0.control & 7 == 2,
        format_args!("control {:#x}", q0.control),
    );
    // IF and bit 1, IOPL 0 (IO-fpages; 0x3202 only with the UNSAFE options iopl=privileged|all).
    s.check_eq(
        "exregs.new_thread_flags",
        q0.flags,
        abi::exregs::INITIAL_USER_FLAGS,
    );
    s.check_eq("exregs.new_thread_pager", q0.pager, me);
    s.check_eq("exregs.new_thread_handle_zero", q0.user_handle, 0);
    let (_, q0b) = query(w);
    s.check_eq("exregs.query_changes_nothing", q0b, q0);
    let (_, q0c) = exr(
        w,
        0,
        0x1111_0000,
        0x2222_0000,
        0x8D5,
        0x3333,
        kip::sigma0_id(),
    );
    let (_, q0d) = query(w);
    s.check(
        "exregs.control_zero_changes_nothing",
        q0c == q0 && q0d == q0,
        format_args!("{q0c:x?} then {q0d:x?}"),
    );

    let ip_w = util::entry(waiter);
    let (_, old) = exr(w, 0xF8, sp6, ip_w, !0, 0xABCD_1234, kip::sigma0_id());
    s.check_eq("exregs.set_returns_old_values", old, q0);
    let (_, q1) = query(w);
    s.check_eq("exregs.set_sp", q1.sp, sp6);
    s.check_eq("exregs.set_ip", q1.ip, ip_w);
    s.check_eq("exregs.set_handle", q1.user_handle, 0xABCD_1234);
    s.check_eq("exregs.set_pager", q1.pager, kip::sigma0_id());
    s.check(
        "exregs.flags_set_only_arithmetic_bits",
        q1.flags & USER_FLAGS == USER_FLAGS && q1.flags & !USER_FLAGS == q0.flags & !USER_FLAGS,
        format_args!("flags {:#x} -> {:#x}", q0.flags, q1.flags),
    );
    exr(w, 1 << 5, 0, 0, 0, 0, nil);
    let (_, q2) = query(w);
    s.check(
        "exregs.flags_clear_only_arithmetic_bits",
        q2.flags & USER_FLAGS == 0 && q2.flags & !USER_FLAGS == q0.flags & !USER_FLAGS,
        format_args!("flags {:#x}", q2.flags),
    );
    exr(w, 1 << 7, 0, 0, 0, 0, me);
    s.check_eq("exregs.set_pager_back", thread::pager_of(w), me);

    // Abort receive (R) with SP and IP in the same call: the thread starts there (spec 6.1).
    let (_, old) = exr(w, (1 << 1) | (1 << 3) | (1 << 4), sp6, ip_w, 0, 0, nil);
    util::wait_until(|| W_MARK.load(Ordering::SeqCst) == 0x57A2_7ED0);
    let wsp = W_SP.load(Ordering::SeqCst);
    s.check(
        "exregs.abort_startup_wait_starts_thread",
        old.control & 2 != 0
            && W_MARK.load(Ordering::SeqCst) == 0x57A2_7ED0
            && wsp <= sp6
            && wsp + 512 > sp6,
        format_args!(
            "old control {:#x}, mark {:#x}, sp {wsp:#x} (set {sp6:#x})",
            old.control,
            W_MARK.load(Ordering::SeqCst)
        ),
    );
    // The mark is stored just before the receive: wait for the receive itself (a tick can
    // preempt the waiter between the two on a loaded host).
    util::wait_until(|| query(w).1.control & 7 == 2);
    let (_, q3) = query(w);
    s.check_eq(
        "exregs.blocked_receiver_reports_receiving",
        q3.control & 7,
        2,
    );
    // Abort an ordinary receive: the Ipc returns "canceled" in the receive phase (3<<1 | 1).
    let wakes = W_WAKES.load(Ordering::SeqCst);
    exr(w, 1 << 1, 0, 0, 0, 0, nil);
    util::wait_until(|| W_WAKES.load(Ordering::SeqCst) > wakes);
    s.check(
        "exregs.abort_receive_cancels_ipc",
        W_WAKES.load(Ordering::SeqCst) == wakes + 1 && W_ERR.load(Ordering::SeqCst) == 7,
        format_args!(
            "wakes {wakes} -> {}, error {:#x}",
            W_WAKES.load(Ordering::SeqCst),
            W_ERR.load(Ordering::SeqCst)
        ),
    );
    // Abort send on a receiver: nothing to abort, reported receiving (once it is back in
    // its receive: it counted the wake-up just before).
    util::wait_until(|| query(w).1.control & 7 == 2);
    let (_, old) = exr(w, 1 << 2, 0, 0, 0, 0, nil);
    util::sleep_us(5_000);
    s.check(
        "exregs.abort_send_leaves_receiver",
        old.control & 7 == 2 && W_WAKES.load(Ordering::SeqCst) == wakes + 1,
        format_args!(
            "control {:#x}, wakes {}",
            old.control,
            W_WAKES.load(Ordering::SeqCst)
        ),
    );
}

/// A running thread: control bits, TCRs, halt and resume, redirection, id conversion.
fn running(s: &mut Cx) {
    let me = utcb::my_global_id();
    let nil = ThreadId::NIL;
    for a in [&E_COUNT, &E_HANDLE, &E_PAGER, &E_REDIRECT] {
        a.store(0, Ordering::SeqCst);
    }
    let r = s.thread();
    let (loc, sp, sp8) = (s.slot(), s.stack(), s.stack());
    let ok = start_local(r, loc, sp, Some(100), busy);
    util::wait_until(|| E_COUNT.load(Ordering::SeqCst) > 0);
    s.check(
        "exregs.running_target_runs",
        ok && E_COUNT.load(Ordering::SeqCst) > 0,
        format_args!("count {}", E_COUNT.load(Ordering::SeqCst)),
    );
    let (_, q) = query(r);
    s.check_eq("exregs.running_thread_control_bits_clear", q.control & 7, 0);
    exr(r, 1 << 6, 0, 0, 0, 0x4242, nil);
    exr(r, 1 << 7, 0, 0, 0, 0, kip::sigma0_id());
    util::wait_until(|| {
        E_HANDLE.load(Ordering::SeqCst) == 0x4242
            && E_PAGER.load(Ordering::SeqCst) == kip::sigma0_id().raw()
    });
    s.check_eq(
        "exregs.handle_reaches_tcr",
        E_HANDLE.load(Ordering::SeqCst),
        0x4242,
    );
    s.check_eq(
        "exregs.pager_reaches_tcr",
        E_PAGER.load(Ordering::SeqCst),
        kip::sigma0_id().raw(),
    );
    exr(r, 1 << 7, 0, 0, 0, 0, me);

    // Halt (H|h) and resume (H).
    let (_, old) = exr(r, (1 << 8) | 1, 0, 0, 0, 0, nil);
    let c1 = E_COUNT.load(Ordering::SeqCst);
    util::sleep_us(30_000);
    let c2 = E_COUNT.load(Ordering::SeqCst);
    s.check(
        "exregs.halt_stops_running_thread",
        old.control & 1 == 0 && c1 == c2,
        format_args!("old control {:#x}, {c1} -> {c2}", old.control),
    );
    let (_, q) = query(r);
    s.check_eq("exregs.halted_thread_reports_halted", q.control & 7, 1);
    let (_, old) = exr(r, (1 << 8) | 1, 0, 0, 0, 0, nil);
    s.check_eq("exregs.halt_again_reports_halted", old.control & 7, 1);
    let (_, old) = exr(r, 1 << 8, 0, 0, 0, 0, nil);
    util::wait_until(|| E_COUNT.load(Ordering::SeqCst) > c2);
    let c3 = E_COUNT.load(Ordering::SeqCst);
    s.check(
        "exregs.resume_continues_running_thread",
        old.control & 1 == 1 && c3 > c2,
        format_args!("old control {:#x}, {c2} -> {c3}", old.control),
    );
    let (_, q) = query(r);
    s.check_eq("exregs.resumed_thread_not_halted", q.control & 7, 0);

    // Setting SP and IP of a running thread redirects it.
    let (_, old) = exr(
        r,
        (1 << 3) | (1 << 4),
        sp8,
        util::entry(redirected),
        0,
        0,
        nil,
    );
    util::wait_until(|| E_REDIRECT.load(Ordering::SeqCst) == 1);
    s.check(
        "exregs.set_ip_redirects_running_thread",
        E_REDIRECT.load(Ordering::SeqCst) == 1 && old.ip != 0 && old.sp != 0,
        format_args!(
            "redirected {} old ip {:#x} sp {:#x}",
            E_REDIRECT.load(Ordering::SeqCst),
            old.ip,
            old.sp
        ),
    );

    // --- Id conversion.
    let (lr, _) = exr(r, 0, 0, 0, 0, 0, nil);
    s.check_eq("exregs.id_global_in_local_out", lr.raw(), loc + 0x200);
    let (gr, _) = exr(lr, 0, 0, 0, 0, 0, nil);
    s.check_eq("exregs.id_local_in_global_out", gr, r);
}

/// Other spaces: allowed from the pager's space, refused otherwise.
fn other_spaces(s: &mut Cx) {
    let me = utcb::my_global_id();
    let nil = ThreadId::NIL;
    if !util::ensure_pager() {
        s.check("exregs.pager_thread_up", false, format_args!(""));
        return;
    }
    let o = s.thread(); // new space, paged by our pager thread
    let f = s.thread(); // new space, paged by sigma0 (not our space)
    let osp = s.stack();
    let sp = util::spawn_in_new_space_at(o, util::child_hello, osp);
    let rep = util::receive_report(o, 2000);
    s.check(
        "exregs.other_space_target_runs",
        sp.is_ok() && rep.is_ok(),
        format_args!("{sp:?} {rep:x?}"),
    );
    // Wait (bounded) until it reaches its receive: it may still need a page fault served and
    // share the processor with a spinning thread of its priority for a whole time slice.
    util::wait_until(|| query(o).1.control & 7 == 2);
    let (lo, qo) = query(o);
    s.check(
        "exregs.pager_space_may_exregs",
        lo.raw() == NEW_UTCB_AREA + 0x200 && qo.pager == pager() && qo.control & 7 == 2,
        format_args!(
            "result {:#x} {qo:x?} error {}",
            lo.raw(),
            utcb::error_code()
        ),
    );
    let (_, old) = exr(o, 1 << 6, 0, 0, 0, 0x0BAD_CAFE, nil);
    let (_, qo2) = query(o);
    s.check(
        "exregs.pager_space_may_set",
        old.user_handle == 0 && qo2.user_handle == 0x0BAD_CAFE,
        format_args!("{old:x?} {qo2:x?}"),
    );
    let ok = util::new_space(f).is_ok() && tc(f, f, me, kip::sigma0_id(), NEW_UTCB_AREA) == (1, 0);
    s.check(
        "exregs.foreign_target_created",
        ok,
        format_args!("error {}", utcb::error_code()),
    );
    check_refused(s, "exregs.err_other_space_foreign_pager", f);
    s.check_eq(
        "exregs.foreign_target_pager_changed",
        tc(f, f, nil, pager(), u64::MAX),
        (1, 0),
    );
    let (lf, _) = query(f);
    s.check_eq(
        "exregs.pager_change_grants_exregs",
        lf.raw(),
        NEW_UTCB_AREA + 0x200,
    );
}

/// The failure form for every kind of id that names no thread ExchangeRegisters may reach.
fn refusals(s: &mut Cx) {
    let me = utcb::my_global_id();
    let nil = ThreadId::NIL;
    let ti = kip::thread_info();
    // A live thread (for its stale version), an id never created, a slot never used.
    let (r, never) = (s.thread(), s.thread());
    let (loc, unused) = (s.slot(), s.slot());
    // (If it could not be made, its stale id is refused all the same.)
    let _ = tc(r, me, me, nil, loc);
    check_refused(s, "exregs.err_nonexistent", never);
    check_refused(
        s,
        "exregs.err_stale_version",
        ThreadId::global(r.number(), 9),
    );
    check_refused(
        s,
        "exregs.err_first_kernel_thread",
        ThreadId::global(ti.system_base(), 1),
    );
    check_refused(
        s,
        "exregs.err_last_kernel_thread",
        ThreadId::global(ti.user_base() - 1, 1),
    );
    check_refused(s, "exregs.err_nil", nil);
    check_refused(
        s,
        "exregs.err_unused_local_id",
        ThreadId::from_raw(unused + 0x200),
    );
}
