//! Schedule's PrioControl word read as Pistachio reads it (spec 5.6, issue 11): 9 bits, and a
//! value above 255 changes nothing. Read as 8 bits (before), 0x100 | 40 set priority 40.
//! Observed through strict priorities: a busy worker at 20 never runs while one at 30 is busy.
//!
//! Threads, root UTCB slots and stacks come from the check's [`Cx`].

use core::sync::atomic::{AtomicU64, Ordering};

use l4::utcb;

use super::util::{self, root, set_prio};
use crate::conformance::{Check, Cx};

/// The check functions.
pub const CHECKS: &[Check] = &[Check {
    name: "schedule.prio_above_255",
    run: prio_above_255,
}];

static WORKERS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static CNT: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

extern "C" fn busy() -> ! {
    let me = utcb::my_global_id().raw();
    let i = usize::from(WORKERS[1].load(Ordering::SeqCst) == me);
    loop {
        CNT[i].fetch_add(1, Ordering::SeqCst);
    }
}

fn prio_above_255(s: &mut Cx) {
    set_prio(root(), 255);
    for c in CNT.iter() {
        c.store(0, Ordering::SeqCst);
    }
    // Ids first: a worker finds its index by its id as soon as it runs.
    let lo = s.thread();
    let hi = s.thread();
    WORKERS[0].store(lo.raw(), Ordering::SeqCst);
    WORKERS[1].store(hi.raw(), Ordering::SeqCst);
    let (lo_loc, lo_sp) = (s.slot(), s.stack());
    let (hi_loc, hi_sp) = (s.slot(), s.stack());
    let made_lo = crate::conformance::start_local(lo, lo_loc, lo_sp, Some(20), busy);
    let made_hi = crate::conformance::start_local(hi, hi_loc, hi_sp, Some(30), busy);
    // 0x128 = 0x100 | 40: above 255 in 9 bits, so no change; 40 if bit 8 were dropped.
    let r = set_prio(lo, 0x128);
    util::wait_until(|| CNT[1].load(Ordering::SeqCst) > 0);
    util::sleep_us(10_000);
    let (c_lo, c_hi) = (CNT[0].load(Ordering::SeqCst), CNT[1].load(Ordering::SeqCst));
    s.check(
        "schedule.prio_above_255_in_9_bits_changes_nothing",
        made_lo && made_hi && r != 0 && c_hi > 0 && c_lo == 0,
        format_args!(
            "created {made_lo} {made_hi}, result {r}; counts prio-20 {c_lo} prio-30 {c_hi}"
        ),
    );
}
