//! ThreadControl, SpaceControl and ExchangeRegisters (spec 5.2, 5.3, 5.9, 2.9): successful
//! forms and every error path: invalid or stale ids, kernel threads, UTCB outside the area or
//! misaligned or taken, KIP/UTCB area conflicts, deleting oneself, nil scheduler, ids of
//! threads that do not exist. Thread ids and UTCB slots come from the check's [`Cx`] (an id
//! it never creates is one that does not exist).

use abi::{Fpage, ThreadId};
use l4::syscall::{self, ExregsState};
use l4::{kip, thread, utcb};

use crate::conformance::{Check, Cx};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "threads.thread_control_lifecycle",
        run: thread_control_lifecycle,
    },
    Check {
        name: "threads.thread_control_errors",
        run: thread_control_errors,
    },
    Check {
        name: "threads.space_control",
        run: space_control,
    },
    Check {
        name: "threads.exregs",
        run: exregs,
    },
];

/// Fresh ids for the check: `t(k)` of the former fixed numbering.
fn ids(cx: &mut Cx) -> [ThreadId; 10] {
    core::array::from_fn(|_| cx.thread())
}

fn kill(id: ThreadId) -> u64 {
    syscall::thread_control(id, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX)
}

/// Calls ThreadControl and returns (result, ErrorCode).
fn tc(dest: ThreadId, space: ThreadId, sched: ThreadId, pager: ThreadId, loc: u64) -> (u64, u64) {
    utcb::write(abi::utcb::ERROR_CODE, 0);
    let r = syscall::thread_control(dest, space, sched, pager, loc);
    (r, if r == 1 { 0 } else { utcb::error_code() })
}

fn sc(space: ThreadId, kip_area: Fpage, utcb_area: Fpage) -> (u64, u64) {
    let (r, _) = syscall::space_control(space, 0, kip_area, utcb_area, ThreadId::NIL);
    (r, if r == 1 { 0 } else { utcb::error_code() })
}

/// ThreadControl: create inactive, create active, modify, version change, delete.
fn thread_control_lifecycle(s: &mut Cx) {
    let me = utcb::my_global_id();
    let ids = ids(s);
    let t = |k: usize| ids[k];
    let loc0 = s.slot();
    s.check_eq(
        "thread_control.create_inactive_in_own_space",
        tc(t(0), me, me, ThreadId::NIL, loc0),
        (1, 0),
    );
    let (r, _) = syscall::schedule(t(0), u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    s.check_eq("thread_control.inactive_thread_schedule_result_dead", r, 1);
    s.check_eq(
        "thread_control.activate_by_setting_pager",
        tc(t(0), me, ThreadId::NIL, me, u64::MAX),
        (1, 0),
    );
    let (r, _) = syscall::schedule(t(0), u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    s.check_eq("thread_control.active_thread_waits_for_start", r, 6);
    s.check_eq(
        "thread_control.change_pager",
        tc(t(0), me, ThreadId::NIL, kip::sigma0_id(), u64::MAX),
        (1, 0),
    );
    s.check_eq(
        "thread_control.pager_tcr_updated",
        thread::pager_of(t(0)),
        kip::sigma0_id(),
    );
    let v2 = ThreadId::global(t(0).number(), 2);
    s.check_eq(
        "thread_control.version_change",
        tc(v2, me, ThreadId::NIL, ThreadId::NIL, u64::MAX),
        (1, 0),
    );
    s.check(
        "thread_control.old_version_gone",
        thread::local_id_of(t(0)).is_nil(),
        format_args!(""),
    );
    s.check(
        "thread_control.new_version_exists",
        !thread::local_id_of(v2).is_nil(),
        format_args!(""),
    );
    s.check_eq("thread_control.delete", kill(v2), 1);
    s.check_eq("thread_control.delete_nonexistent_is_ok", kill(t(0)), 1);
}

/// ThreadControl's error paths.
fn thread_control_errors(s: &mut Cx) {
    let me = utcb::my_global_id();
    let sys = kip::thread_info().system_base();
    let ids = ids(s);
    let t = |k: usize| ids[k];
    let loc1 = s.slot();
    s.check_eq(
        "thread_control.local_dest_invalid_space",
        tc(utcb::my_local_id(), me, me, ThreadId::NIL, u64::MAX),
        (0, 3),
    );
    s.check_eq(
        "thread_control.nil_dest_invalid_space",
        tc(ThreadId::NIL, me, me, ThreadId::NIL, u64::MAX),
        (0, 3),
    );
    s.check_eq(
        "thread_control.kernel_thread_invalid",
        tc(ThreadId::global(sys, 1), me, me, ThreadId::NIL, u64::MAX),
        (0, 2),
    );
    s.check_eq(
        "thread_control.delete_self_invalid",
        tc(me, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX),
        (0, 2),
    );
    s.check_eq(
        "thread_control.nil_scheduler_invalid",
        tc(t(1), me, ThreadId::NIL, ThreadId::NIL, u64::MAX),
        (0, 2),
    );
    s.check_eq(
        "thread_control.nonexistent_space_invalid",
        tc(t(1), t(9), me, ThreadId::NIL, u64::MAX),
        (0, 3),
    );
    s.check_eq(
        "thread_control.stale_space_specifier_invalid",
        tc(
            t(1),
            ThreadId::global(me.number(), 77),
            me,
            ThreadId::NIL,
            u64::MAX,
        ),
        (0, 3),
    );
    s.check_eq(
        "thread_control.active_in_uninitialised_new_space",
        tc(t(1), t(1), me, me, loc1),
        (0, 3),
    );
    s.check_eq(
        "thread_control.utcb_outside_area",
        tc(t(1), me, me, me, 0x4000_0000),
        (0, 6),
    );
    s.check_eq(
        "thread_control.utcb_misaligned",
        tc(t(1), me, me, me, loc1 + 0x200),
        (0, 6),
    );
    s.check_eq(
        "thread_control.utcb_unset_for_active",
        tc(t(1), me, me, me, u64::MAX),
        (0, 6),
    );
    s.check_eq(
        "thread_control.utcb_taken",
        tc(t(1), me, me, me, utcb::my_local_id().raw() - 0x200),
        (0, 6),
    );
    s.check_eq(
        "thread_control.thread_number_too_large",
        tc(
            ThreadId::global(1 << 20, 1),
            me,
            me,
            ThreadId::NIL,
            u64::MAX,
        ),
        (0, 2),
    );
    s.check(
        "thread_control.failed_create_left_nothing",
        thread::local_id_of(t(1)).is_nil(),
        format_args!(""),
    );
}

/// SpaceControl: the area errors, success, threads in the new space.
fn space_control(s: &mut Cx) {
    let me = utcb::my_global_id();
    let kipf = Fpage::new_log2(kip::kip_address(), 12);
    let ids = ids(s);
    let t = |k: usize| ids[k];
    let (r, _) = tc(t(2), t(2), me, ThreadId::NIL, u64::MAX);
    s.check_eq("space_control.new_space_thread", r, 1);
    s.check_eq(
        "space_control.nonexistent_space",
        sc(t(9), kipf, Fpage::new_log2(0x8000_0000, 14)),
        (0, 3),
    );
    s.check_eq(
        "space_control.utcb_area_too_small",
        sc(t(2), kipf, Fpage::new_log2(0x8000_0000, 11)),
        (0, 6),
    );
    s.check_eq(
        "space_control.utcb_area_beyond_user_space",
        sc(t(2), kipf, Fpage::new_log2(0xFFFF_8000_0000_0000, 14)),
        (0, 6),
    );
    s.check_eq(
        "space_control.kip_overlaps_utcb",
        sc(
            t(2),
            Fpage::new_log2(0x8000_0000, 12),
            Fpage::new_log2(0x8000_0000, 14),
        ),
        (0, 7),
    );
    s.check_eq(
        "space_control.kip_area_too_small",
        sc(
            t(2),
            Fpage::new_log2(0x9000_0000, 10),
            Fpage::new_log2(0x8000_0000, 14),
        ),
        (0, 7),
    );
    s.check_eq(
        "space_control.kip_area_beyond_user_space",
        sc(
            t(2),
            Fpage::new_log2(0x0000_8000_0000_0000, 12),
            Fpage::new_log2(0x8000_0000, 14),
        ),
        (0, 7),
    );
    s.check_eq(
        "space_control.success",
        sc(t(2), kipf, Fpage::new_log2(0x8000_0000, 14)),
        (1, 0),
    );
    s.check_eq(
        "space_control.initialised_ignores_fpages",
        sc(t(2), Fpage::NIL, Fpage::NIL),
        (1, 0),
    );
    s.check_eq(
        "space_control.activate_in_new_space",
        tc(t(3), t(2), me, me, 0x8000_0400).0,
        1,
    );
    s.check_eq(
        "space_control.utcb_outside_new_area",
        tc(t(4), t(2), me, me, 0x8001_0000),
        (0, 6),
    );
    kill(t(3));
    kill(t(2));
}

/// ExchangeRegisters: set and read every field; ids that name no thread.
fn exregs(s: &mut Cx) {
    let me = utcb::my_global_id();
    let sys = kip::thread_info().system_base();
    let ids = ids(s);
    let t = |k: usize| ids[k];
    let (loc5, loc6) = (s.slot(), s.slot());
    let (r, _) = tc(t(5), me, me, me, loc5);
    s.check_eq("exregs.target_created", r, 1);
    let set = ExregsState {
        control: (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7),
        sp: 0x1234_5000,
        ip: 0x1000,
        flags: 0xFFFF_FFFF,
        user_handle: 0xABCD,
        pager: kip::sigma0_id(),
    };
    let (res, old) = syscall::exchange_registers(t(5), set);
    s.check_eq("exregs.global_in_local_out", res, thread::local_id_of(t(5)));
    s.check(
        "exregs.reports_waiting_thread_receiving",
        old.control & 2 != 0,
        format_args!("control {:#x}", old.control),
    );
    s.check_eq("exregs.old_pager", old.pager, me);
    let (_, now) = syscall::exchange_registers(
        t(5),
        ExregsState {
            control: 1 << 9,
            ..Default::default()
        },
    );
    s.check_eq("exregs.sp_set", now.sp, 0x1234_5000);
    s.check_eq("exregs.ip_set", now.ip, 0x1000);
    s.check_eq("exregs.only_user_flags_set", now.flags & 0x8D5, 0x8D5);
    s.check(
        "exregs.iopl_and_if_kept",
        now.flags & 0x3200 == 0x0200, // IF kept, IOPL stays 0 (IO-fpages)
        format_args!("flags {:#x}", now.flags),
    );
    s.check_eq("exregs.handle_set", now.user_handle, 0xABCD);
    s.check_eq("exregs.pager_set", now.pager, kip::sigma0_id());
    let (res, _) = syscall::exchange_registers(
        thread::local_id_of(t(5)),
        ExregsState {
            control: 0,
            ..Default::default()
        },
    );
    s.check_eq("exregs.local_in_global_out", res, t(5));
    let check_nil = |s: &mut Cx, name: &str, id: ThreadId| {
        let (res, old) = syscall::exchange_registers(
            id,
            ExregsState {
                control: 1 << 9,
                ..Default::default()
            },
        );
        let ok = res.is_nil()
            && utcb::error_code() == 2
            && old.sp == 0
            && old.ip == 0
            && old.pager.is_nil();
        s.check(
            name,
            ok,
            format_args!("result {:#x} error {}", res.raw(), utcb::error_code()),
        );
    };
    check_nil(s, "exregs.nonexistent_thread", t(9));
    check_nil(
        s,
        "exregs.stale_version",
        ThreadId::global(t(5).number(), 9),
    );
    check_nil(s, "exregs.kernel_thread", ThreadId::global(sys, 1));
    check_nil(s, "exregs.interrupt_thread", ThreadId::global(1, 1));
    let (_, inactive) = tc(t(6), me, me, ThreadId::NIL, loc6);
    let _ = inactive;
    check_nil(s, "exregs.inactive_thread", t(6));
    kill(t(6));
    kill(t(5));
}
