//! The root server's own UTCB and ids (spec 4.2, 6.8).

use abi::ThreadId;
use l4::{kip, utcb};

use crate::conformance::{Check, Cx};

/// The check functions (nothing to allocate).
pub const CHECKS: &[Check] = &[
    Check {
        name: "utcb.my_global_id_is_root",
        run: |cx| {
            cx.check_eq(
                "utcb.my_global_id_is_root",
                utcb::my_global_id(),
                ThreadId::global(kip::thread_info().user_base() + 2, 1),
            );
        },
    },
    Check {
        name: "utcb.user_base",
        run: |cx| {
            let ti = kip::thread_info();
            cx.check_eq("utcb.user_base", ti.user_base(), ti.system_base() + 32);
        },
    },
    Check {
        name: "utcb.local_id_form",
        run: local_id_form,
    },
    Check {
        name: "utcb.pager_is_sigma0",
        run: |cx| {
            cx.check_eq("utcb.pager_is_sigma0", utcb::pager(), kip::sigma0_id());
        },
    },
];

fn local_id_form(cx: &mut Cx) {
    let local = utcb::my_local_id();
    cx.check(
        "utcb.local_id_form",
        local.is_local(),
        format_args!("local id {:#x}", local.raw()),
    );
}
