//! ThreadControl (spec 5.3, 2.9, 6.1; decisions 003): create inactive / active in the root's
//! space, create a new space (+ SpaceControl), activate and run there, modify (UTCB location,
//! pager, scheduler, version, space), delete, and every error path with result 0 and the
//! ErrorCode TCR.
//!
//! Threads, root UTCB slots and stacks come from each check's [`Cx`].

use core::sync::atomic::{AtomicU64, Ordering};

use abi::ThreadId;
use l4::{kip, thread, utcb};

use super::util::{
    self, NEW_UTCB_AREA, activate_in, kill, kill_r, kip_fpage, new_utcb_fpage, pager, pager_start,
    query, root, sc, slot, state_of, tc,
};
use crate::conformance::{Check, Cx};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "thread_control.inactive",
        run: inactive,
    },
    Check {
        name: "thread_control.active",
        run: active,
    },
    Check {
        name: "thread_control.new_space",
        run: new_space,
    },
    Check {
        name: "thread_control.errors",
        run: errors,
    },
];

/// The test pager thread runs (reports `thread_control.pager_thread_up` if not).
fn pager_up(s: &mut Cx) -> bool {
    util::ensure_pager()
        || !s.check(
            "thread_control.pager_thread_up",
            false,
            format_args!("error {}", utcb::error_code()),
        )
}

static COUNT: AtomicU64 = AtomicU64::new(0);
static SEEN_ID: AtomicU64 = AtomicU64::new(0);
static SEEN_PAGER: AtomicU64 = AtomicU64::new(0);

/// Busy thread of the root's space: records its MyGlobalId and Pager TCRs.
extern "C" fn busy() -> ! {
    loop {
        SEEN_ID.store(utcb::my_global_id().raw(), Ordering::SeqCst);
        SEEN_PAGER.store(utcb::pager().raw(), Ordering::SeqCst);
        COUNT.fetch_add(1, Ordering::SeqCst);
    }
}

/// Create inactive, relocate its UTCB, activate.
fn inactive(s: &mut Cx) {
    let me = root();
    let nil = ThreadId::NIL;
    let a = s.thread(); // created inactive, relocated, activated, never started
    let (loc1, loc2) = (s.slot(), s.slot());

    // --- Create inactive, relocate its UTCB, activate.
    s.check_eq(
        "thread_control.create_inactive_own_space",
        tc(a, me, me, nil, loc1),
        (1, 0),
    );
    s.check_eq(
        "thread_control.inactive_schedule_state_dead",
        state_of(a),
        1,
    );
    let (r, _) = query(a);
    s.check(
        "thread_control.inactive_not_exregs_target",
        r.is_nil() && utcb::error_code() == 2,
        format_args!("result {:#x} error {}", r.raw(), utcb::error_code()),
    );
    s.check_eq(
        "thread_control.inactive_utcb_relocatable",
        tc(a, me, nil, nil, loc2),
        (1, 0),
    );
    s.check_eq(
        "thread_control.activate_inactive_with_pager",
        tc(a, me, nil, me, u64::MAX),
        (1, 0),
    );
    s.check_eq("thread_control.activated_in_startup_wait", state_of(a), 6);
    s.check_eq(
        "thread_control.activated_at_relocated_utcb",
        thread::local_id_of(a).raw(),
        loc2 + 0x200,
    );
    s.check_eq(
        "thread_control.activated_pager_tcr",
        thread::pager_of(a),
        me,
    );
}

/// Create active in the root's space and run; modify version, pager, scheduler, UTCB.
fn active(s: &mut Cx) {
    if !pager_up(s) {
        return;
    }
    let me = root();
    let nil = ThreadId::NIL;
    let ub = kip::thread_info().user_base();
    for a in [&COUNT, &SEEN_ID, &SEEN_PAGER] {
        a.store(0, Ordering::SeqCst);
    }
    let b = s.thread(); // created active in our space, runs `busy`
    let b2 = ThreadId::global(b.number(), 2); // b after a version change
    let x = s.thread(); // scratch
    let (loc3, loc4, sp) = (s.slot(), s.slot(), s.stack());
    s.check_eq(
        "thread_control.create_active_own_space",
        tc(b, me, me, me, loc3),
        (1, 0),
    );
    s.check_eq(
        "thread_control.created_active_in_startup_wait",
        state_of(b),
        6,
    );
    s.check_eq(
        "thread_control.created_active_local_id",
        thread::local_id_of(b).raw(),
        loc3 + 0x200,
    );
    let started = thread::start(b, sp, util::entry(busy));
    util::wait_until(|| SEEN_ID.load(Ordering::SeqCst) == b.raw());
    s.check(
        "thread_control.own_space_thread_runs",
        !started.is_nil()
            && COUNT.load(Ordering::SeqCst) > 0
            && SEEN_ID.load(Ordering::SeqCst) == b.raw(),
        format_args!(
            "count {} seen id {:#x}",
            COUNT.load(Ordering::SeqCst),
            SEEN_ID.load(Ordering::SeqCst)
        ),
    );

    // --- Modify: version, pager, scheduler, UTCB of an active thread.
    s.check_eq(
        "thread_control.modify_version",
        tc(b2, me, nil, nil, u64::MAX),
        (1, 0),
    );
    let (r_old, _) = query(b);
    let (r_new, _) = query(b2);
    s.check(
        "thread_control.version_change_new_global_id",
        r_old.is_nil() && r_new.raw() == loc3 + 0x200,
        format_args!(
            "old version -> {:#x}, new version -> {:#x}",
            r_old.raw(),
            r_new.raw()
        ),
    );
    util::wait_until(|| SEEN_ID.load(Ordering::SeqCst) == b2.raw());
    s.check_eq(
        "thread_control.version_change_updates_my_global_id",
        SEEN_ID.load(Ordering::SeqCst),
        b2.raw(),
    );
    s.check_eq(
        "thread_control.modify_pager",
        tc(b2, me, nil, kip::sigma0_id(), u64::MAX),
        (1, 0),
    );
    s.check_eq(
        "thread_control.modify_pager_exregs_view",
        thread::pager_of(b2),
        kip::sigma0_id(),
    );
    util::wait_until(|| SEEN_PAGER.load(Ordering::SeqCst) == kip::sigma0_id().raw());
    s.check_eq(
        "thread_control.modify_pager_tcr_view",
        SEEN_PAGER.load(Ordering::SeqCst),
        kip::sigma0_id().raw(),
    );
    s.check_eq(
        "thread_control.modify_scheduler",
        tc(b2, me, pager(), nil, u64::MAX),
        (1, 0),
    );
    s.check_eq(
        "thread_control.modify_utcb_of_active_refused",
        tc(b2, me, nil, nil, loc4),
        (0, 6),
    );
    s.check_eq(
        "thread_control.modify_unknown_version_space_refused",
        tc(b2, ThreadId::global(ub + 2, 7), nil, nil, u64::MAX),
        (0, 3),
    );

    kill(b2);
    s.check_eq(
        "thread_control.utcb_reusable_after_delete",
        tc(x, me, me, me, loc3),
        (1, 0),
    );
    kill(x);
}

/// A new space: create, SpaceControl, activate, start-up message from the pager, run; a
/// second thread; moving threads between spaces; deletion.
fn new_space(s: &mut Cx) {
    if !pager_up(s) {
        return;
    }
    let me = root();
    let nil = ThreadId::NIL;
    let c = s.thread(); // first thread of a new space
    let c2 = s.thread(); // second thread of c's space
    let x = s.thread(); // scratch
    let m = s.thread(); // an inactive thread moved into c's space
    let y = s.thread(); // an active thread of the root's space (never started)
    let (sp2, sp3, sp4, yloc) = (s.stack(), s.stack(), s.stack(), s.slot());
    s.check_eq(
        "thread_control.create_new_space",
        tc(c, c, me, nil, u64::MAX),
        (1, 0),
    );
    s.check_eq("thread_control.new_space_thread_inactive", state_of(c), 1);
    s.check_eq(
        "thread_control.new_space_space_control",
        sc(c, kip_fpage(), new_utcb_fpage()),
        (1, 0),
    );
    s.check_eq(
        "thread_control.activate_in_new_space",
        activate_in(c, c, 0),
        (1, 0),
    );
    s.check_eq("thread_control.new_space_waits_for_startup", state_of(c), 6);
    let st = pager_start(c, util::entry(util::child_hello), sp2);
    s.check_eq(
        "thread_control.new_space_startup_message_delivered",
        st,
        Ok(0),
    );
    let rep = util::receive_report(c, 2000);
    s.check(
        "thread_control.new_space_thread_runs",
        matches!(rep, Ok((w, from)) if w[0] == c.raw() && w[1] == NEW_UTCB_AREA + 0x200 && w[2] == pager().raw() && from == c),
        format_args!("{rep:x?} (pager faults {}, bad {} at {:#x})",
            util::PAGER_FAULTS.load(Ordering::SeqCst),
            util::PAGER_BAD_FAULTS.load(Ordering::SeqCst),
            util::PAGER_BAD_ADDR.load(Ordering::SeqCst)),
    );

    // A second thread in that space, started by ExchangeRegisters from its pager's space.
    s.check_eq(
        "thread_control.create_active_in_other_space",
        activate_in(c2, c, 1),
        (1, 0),
    );
    s.check_eq(
        "thread_control.err_utcb_taken_in_other_space",
        activate_in(x, c, 0),
        (0, 6),
    );
    let r = thread::start(c2, sp3, util::entry(util::child_hello));
    let rep = util::receive_report(c2, 2000);
    s.check(
        "thread_control.second_thread_of_new_space_runs",
        !r.is_nil() && matches!(rep, Ok((w, from)) if w[0] == c2.raw() && w[1] == NEW_UTCB_AREA + 0x600 && from == c2),
        format_args!("start {:#x}, report {rep:x?}", r.raw()),
    );

    // Moving threads between spaces: an active thread cannot (decision: ErrUtcbArea), an
    // inactive one can, and then runs in its new space.
    let _ = tc(y, me, me, me, yloc);
    s.check_eq(
        "thread_control.move_active_to_other_space_refused",
        tc(y, c, nil, nil, u64::MAX),
        (0, 6),
    );
    s.check_eq(
        "thread_control.create_inactive_for_move",
        tc(m, me, me, nil, u64::MAX),
        (1, 0),
    );
    s.check_eq(
        "thread_control.move_inactive_to_other_space",
        tc(m, c, nil, nil, u64::MAX),
        (1, 0),
    );
    s.check_eq(
        "thread_control.activate_moved_thread",
        activate_in(m, c, 2),
        (1, 0),
    );
    let st = pager_start(m, util::entry(util::child_hello), sp4);
    let rep = util::receive_report(m, 2000);
    s.check(
        "thread_control.moved_thread_runs_in_target_space",
        st == Ok(0) && matches!(rep, Ok((w, from)) if w[0] == m.raw() && w[1] == NEW_UTCB_AREA + 0xA00 && from == m),
        format_args!("start {st:?}, report {rep:x?}"),
    );

    // --- Delete.
    s.check_eq("thread_control.delete_result_1", kill_r(c2), 1);
    let (r, _, e) = util::sched(c2, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    s.check(
        "thread_control.deleted_thread_gone",
        r == 0 && e == 2,
        format_args!("schedule result {r} error {e}"),
    );
    s.check_eq("thread_control.delete_nonexistent_result_1", kill_r(c2), 1);
    s.check_eq("thread_control.delete_first_thread_of_space", kill_r(c), 1);
    let (r, _) = query(m);
    s.check_eq(
        "thread_control.space_survives_first_thread",
        r.raw(),
        NEW_UTCB_AREA + 0xA00,
    );
    s.check_eq(
        "thread_control.space_named_by_any_of_its_threads",
        tc(x, m, me, pager(), NEW_UTCB_AREA + 0xC00),
        (1, 0),
    );
}

/// Error paths: result 0, ErrorCode as spec 5.3 / 2.9.
fn errors(s: &mut Cx) {
    if !pager_up(s) {
        return;
    }
    let me = root();
    let nil = ThreadId::NIL;
    let ti = kip::thread_info();
    let (sys, ub) = (ti.system_base(), ti.user_base());
    let x = s.thread(); // never created: every attempt fails
    let u = s.thread(); // an uninitialised space
    let never = s.thread(); // never exists
    let loc5 = s.slot();
    s.check_eq(
        "thread_control.err_dest_local_id",
        tc(utcb::my_local_id(), me, me, nil, u64::MAX),
        (0, 3),
    );
    s.check_eq(
        "thread_control.err_dest_nil",
        tc(nil, me, me, nil, u64::MAX),
        (0, 3),
    );
    for (name, n) in [
        ("thread_control.err_dest_first_kernel_thread", sys),
        ("thread_control.err_dest_kernel_thread", sys + 7),
        ("thread_control.err_dest_last_kernel_thread", ub - 1),
    ] {
        s.check_eq(
            name,
            tc(ThreadId::global(n, 1), me, me, nil, u64::MAX),
            (0, 2),
        );
    }
    s.check_eq(
        "thread_control.err_delete_kernel_thread",
        tc(ThreadId::global(sys, 1), nil, nil, nil, u64::MAX),
        (0, 2),
    );
    s.check_eq(
        "thread_control.err_delete_self",
        tc(me, nil, nil, nil, u64::MAX),
        (0, 2),
    );
    s.check_eq(
        "thread_control.err_delete_sigma0",
        tc(kip::sigma0_id(), nil, nil, nil, u64::MAX),
        (0, 2),
    );
    s.check_eq(
        "thread_control.err_create_nil_scheduler",
        tc(x, me, nil, nil, u64::MAX),
        (0, 2),
    );
    s.check_eq(
        "thread_control.err_space_nonexistent",
        tc(x, never, me, nil, u64::MAX),
        (0, 3),
    );
    s.check_eq(
        "thread_control.err_space_stale_version",
        tc(x, ThreadId::global(ub + 2, 2), me, nil, u64::MAX),
        (0, 3),
    );
    s.check_eq(
        "thread_control.err_activate_brand_new_space",
        tc(x, x, me, pager(), NEW_UTCB_AREA),
        (0, 3),
    );
    s.check_eq(
        "thread_control.create_uninitialised_space",
        tc(u, u, me, nil, u64::MAX),
        (1, 0),
    );
    s.check_eq(
        "thread_control.err_activate_in_uninitialised_space",
        tc(x, u, me, pager(), NEW_UTCB_AREA),
        (0, 3),
    );
    kill(u);
    s.check_eq(
        "thread_control.err_utcb_outside_area",
        tc(x, me, me, me, 0x4000_0000),
        (0, 6),
    );
    s.check_eq(
        "thread_control.err_utcb_just_past_area",
        tc(x, me, me, me, slot(256)),
        (0, 6),
    );
    s.check_eq(
        "thread_control.err_utcb_just_below_area",
        tc(x, me, me, me, slot(0) - 0x400),
        (0, 6),
    );
    s.check_eq(
        "thread_control.err_utcb_misaligned_512",
        tc(x, me, me, me, loc5 + 0x200),
        (0, 6),
    );
    s.check_eq(
        "thread_control.err_utcb_misaligned_64",
        tc(x, me, me, me, loc5 + 0x40),
        (0, 6),
    );
    s.check_eq(
        "thread_control.err_utcb_unset_for_active",
        tc(x, me, me, me, u64::MAX),
        (0, 6),
    );
    s.check_eq(
        "thread_control.err_utcb_taken_by_root",
        tc(x, me, me, me, slot(0)),
        (0, 6),
    );
    s.check_eq(
        "thread_control.err_utcb_taken_by_pager",
        tc(x, me, me, me, slot(util::PAGER_SLOT)),
        (0, 6),
    );
    let (r, _, e) = util::sched(x, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    s.check(
        "thread_control.failed_creations_left_nothing",
        r == 0 && e == 2,
        format_args!("schedule result {r} error {e}"),
    );
}
