//! SpaceControl (spec 5.9, 2.9; decision 003 "user area" = `0 .. 0x0000_7FFF_FFFF_F000`):
//! success on a new space (the KIP then appears at the KipArea and a thread activated in the
//! UtcbArea runs), nonexistent space → ErrInvalidSpace, UTCB area too small or beyond the user
//! area → ErrUtcbArea, KIP area overlapping the UTCB area / too small / beyond the user area →
//! ErrKipArea, and an initialised space ignores both fpages.
//!
//! Thread ids and stacks come from each check's [`Cx`].

use abi::{Fpage, ThreadId};
use l4::{kip, utcb};

use super::util::{self, NEW_UTCB_AREA, kill, kip_fpage, new_utcb_fpage, pager, root, sc, tc};
use crate::conformance::{Check, Cx};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "space_control.new_space",
        run: new_space,
    },
    Check {
        name: "space_control.edge",
        run: edge,
    },
];

/// First address beyond the user area (decision 003).
const USER_END: u64 = 0x0000_7FFF_FFFF_F000;

/// A new space, tried with bad areas first (each refused, the space left uninitialised),
/// then initialised; its areas hold, its thread runs with the KIP at the KIP area.
fn new_space(s: &mut Cx) {
    if !util::ensure_pager() {
        s.check("space_control.pager_thread_up", false, format_args!(""));
        return;
    }
    let me = root();
    let nil = ThreadId::NIL;
    let sp = s.thread(); // a new space, tried with bad areas first, then initialised
    let t2 = s.thread(); // its second thread
    let ghost = s.thread(); // never exists
    let stack = s.stack();
    let utcb16k = new_utcb_fpage();

    let created = tc(sp, sp, me, nil, u64::MAX);
    s.check_eq("space_control.space_thread_created", created, (1, 0));

    // Space specifier errors.
    s.check_eq(
        "space_control.err_space_nonexistent",
        sc(ghost, kip_fpage(), utcb16k),
        (0, 3),
    );
    s.check_eq(
        "space_control.err_space_nil",
        sc(nil, kip_fpage(), utcb16k),
        (0, 3),
    );
    s.check_eq(
        "space_control.err_space_stale_version",
        sc(ThreadId::global(sp.number(), 5), kip_fpage(), utcb16k),
        (0, 3),
    );

    // UTCB area errors.
    s.check_eq(
        "space_control.err_utcb_area_2k",
        sc(sp, kip_fpage(), Fpage::new_log2(0x8000_0000, 11)),
        (0, 6),
    );
    s.check_eq(
        "space_control.err_utcb_area_nil",
        sc(sp, kip_fpage(), Fpage::NIL),
        (0, 6),
    );
    s.check_eq(
        "space_control.err_utcb_area_beyond_user",
        sc(sp, kip_fpage(), Fpage::new_log2(0x0000_8000_0000_0000, 14)),
        (0, 6),
    );
    s.check_eq(
        "space_control.err_utcb_area_kernel_half",
        sc(sp, kip_fpage(), Fpage::new_log2(0xFFFF_8000_0000_0000, 14)),
        (0, 6),
    );
    s.check_eq(
        "space_control.err_utcb_area_guard_page",
        sc(sp, kip_fpage(), Fpage::new_log2(USER_END, 12)),
        (0, 6),
    );
    s.check_eq(
        "space_control.err_utcb_area_straddles_end",
        sc(sp, kip_fpage(), Fpage::new_log2(USER_END & !0x3FFF, 14)),
        (0, 6),
    );

    // KIP area errors (with a valid UTCB area).
    s.check_eq(
        "space_control.err_kip_overlaps_utcb",
        sc(sp, Fpage::new_log2(NEW_UTCB_AREA + 0x1000, 12), utcb16k),
        (0, 7),
    );
    s.check_eq(
        "space_control.err_kip_covers_utcb",
        sc(sp, Fpage::new_log2(NEW_UTCB_AREA, 24), utcb16k),
        (0, 7),
    );
    s.check_eq(
        "space_control.err_kip_area_1k",
        sc(sp, Fpage::new_log2(0x9000_0000, 10), utcb16k),
        (0, 7),
    );
    s.check_eq(
        "space_control.err_kip_area_nil",
        sc(sp, Fpage::NIL, utcb16k),
        (0, 7),
    );
    s.check_eq(
        "space_control.err_kip_area_beyond_user",
        sc(sp, Fpage::new_log2(0x0000_8000_0000_0000, 12), utcb16k),
        (0, 7),
    );
    s.check_eq(
        "space_control.err_kip_area_guard_page",
        sc(sp, Fpage::new_log2(USER_END, 12), utcb16k),
        (0, 7),
    );
    // The failed calls left the space uninitialised: activation there is still refused.
    s.check_eq(
        "space_control.failed_calls_left_space_uninitialised",
        util::activate_in(sp, sp, 0),
        (0, 3),
    );

    // Success; old control 0 (no compatibility mode).
    utcb::write(abi::utcb::ERROR_CODE, 0);
    let (r, old) = l4::syscall::space_control(sp, 0, kip_fpage(), utcb16k, nil);
    s.check(
        "space_control.new_space_success",
        r == 1 && old == 0,
        format_args!(
            "result {r} old control {old:#x} error {}",
            utcb::error_code()
        ),
    );
    // Initialised: fpages ignored, valid or not.
    s.check_eq(
        "space_control.initialised_ignores_nil_fpages",
        sc(sp, Fpage::NIL, Fpage::NIL),
        (1, 0),
    );
    s.check_eq(
        "space_control.initialised_ignores_other_fpages",
        sc(
            sp,
            Fpage::new_log2(0x9000_0000, 12),
            Fpage::new_log2(0xA000_0000, 16),
        ),
        (1, 0),
    );
    // The areas of the first call hold: UTCBs inside the 16 KiB area, not outside.
    s.check_eq(
        "space_control.err_activate_outside_utcb_area",
        tc(t2, sp, me, pager(), NEW_UTCB_AREA + 0x4000),
        (0, 6),
    );
    s.check_eq(
        "space_control.err_activate_in_ignored_area",
        tc(t2, sp, me, pager(), 0xA000_0000),
        (0, 6),
    );
    s.check_eq(
        "space_control.activate_last_utcb_of_area",
        tc(t2, sp, me, pager(), NEW_UTCB_AREA + 0x3C00),
        (1, 0),
    );
    s.check_eq(
        "space_control.activate_first_thread",
        util::activate_in(sp, sp, 0),
        (1, 0),
    );
    let st = util::pager_start(sp, util::entry(util::child_hello), stack);
    let rep = util::receive_report(sp, 2000);
    s.check(
        "space_control.kip_mapped_at_kip_area",
        st == Ok(0) && matches!(rep, Ok((w, _)) if w[3] == kip::kip().magic),
        format_args!("start {st:?} report {rep:x?}"),
    );
    kill(t2);
    kill(sp);
}

/// Areas that end exactly at the end of the user area are valid.
fn edge(s: &mut Cx) {
    let me = root();
    let nil = ThreadId::NIL;
    if !util::ensure_pager() {
        s.check("space_control.pager_thread_up", false, format_args!(""));
        return;
    }
    let edge = s.thread(); // a space whose areas end exactly at the end of the user area
    s.check_eq(
        "space_control.edge_space_thread_created",
        tc(edge, edge, me, nil, u64::MAX),
        (1, 0),
    );
    s.check_eq(
        "space_control.areas_at_end_of_user_area",
        sc(
            edge,
            Fpage::new_log2(USER_END - 0x3000, 12),
            Fpage::new_log2(USER_END - 0x1000, 12),
        ),
        (1, 0),
    );
    s.check_eq(
        "space_control.activate_at_end_of_user_area",
        tc(edge, edge, me, pager(), USER_END - 0x400),
        (1, 0),
    );
    s.check_eq(
        "space_control.edge_local_id",
        l4::thread::local_id_of(edge).raw(),
        USER_END - 0x200,
    );
    kill(edge);
}
