//! Schedule's PrioControl word read as Pistachio reads it (spec 5.6, issue 11): 9 bits, and a
//! value above 255 changes nothing. Read as 8 bits (before), 0x100 | 40 set priority 40.
//! Observed through strict priorities: a busy worker at 20 never runs while one at 30 is busy.
//!
//! Threads: UserBase + 0x170, 0x171 (after `schedule`, which has ended its workers there);
//! root UTCB slots 0xF0, 0xF1; stacks 10 and 11.

use core::sync::atomic::{AtomicU64, Ordering};

use l4::{kip, utcb};

use super::util::{self, kill, root, set_prio, tid};
use crate::conformance::Suite;

const BASE: u64 = 0x170;
static CNT: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

extern "C" fn busy() -> ! {
    let i = ((utcb::my_global_id().number() - kip::thread_info().user_base() - BASE) & 1) as usize;
    loop {
        CNT[i].fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs this module's checks.
pub fn run(s: &mut Suite) {
    util::prepare();
    set_prio(root(), 255);
    for c in CNT.iter() {
        c.store(0, Ordering::SeqCst);
    }
    let lo = tid(BASE);
    let hi = tid(BASE + 1);
    let made_lo = util::spawn_worker(lo, 0xF0, 20, busy, 10);
    let made_hi = util::spawn_worker(hi, 0xF1, 30, busy, 11);
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
    kill(hi);
    kill(lo);
}
