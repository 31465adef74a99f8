//! ExchangeRegisters (spec 5.2): id conversion with control 0, queries with control `1<<9`.

use l4::{thread, utcb};

use crate::conformance::Suite;

/// Runs this module's checks.
pub fn run(s: &mut Suite) {
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
