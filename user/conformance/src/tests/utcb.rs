//! The root server's own UTCB and ids (spec 4.2, 6.8).

use abi::ThreadId;
use l4::{kip, utcb};

use crate::conformance::Suite;

/// Runs this module's checks.
pub fn run(s: &mut Suite) {
    let ti = kip::thread_info();
    s.check_eq(
        "utcb.my_global_id_is_root",
        utcb::my_global_id(),
        ThreadId::global(ti.user_base() + 2, 1),
    );
    s.check_eq("utcb.user_base", ti.user_base(), ti.system_base() + 32);
    let local = utcb::my_local_id();
    s.check(
        "utcb.local_id_form",
        local.is_local(),
        format_args!("local id {:#x}", local.raw()),
    );
    s.check_eq("utcb.pager_is_sigma0", utcb::pager(), kip::sigma0_id());
}
