//! The Kernel Interface Page (spec 3): magic, API version and flags, layout sanity.

use abi::kip::{ApiVersion, KIP_MAGIC};
use l4::kip;

use crate::conformance::{Check, Cx};

/// The check functions (nothing to allocate: the KIP is read only).
pub const CHECKS: &[Check] = &[
    Check {
        name: "kip.magic",
        run: |cx| {
            cx.check_eq("kip.magic", kip::kip().magic, KIP_MAGIC);
        },
    },
    Check {
        name: "kip.address_page_aligned",
        run: |cx| {
            cx.check_eq("kip.address_page_aligned", kip::kip_address() % 4096, 0);
        },
    },
    Check {
        name: "kip.api_version",
        run: |cx| {
            cx.check_eq(
                "kip.api_version",
                ApiVersion(kip::kip().api_version).version(),
                0x84,
            );
        },
    },
    Check {
        name: "kip.api_flags",
        run: |cx| {
            cx.check_eq("kip.api_flags", kip::kip().api_flags, 4);
        },
    },
    Check {
        name: "kip.kernel_desc_inside",
        run: kernel_desc_inside,
    },
    Check {
        name: "kip.proc_descs_inside",
        run: proc_descs_inside,
    },
    Check {
        name: "kip.syscall_links_set",
        run: syscall_links_set,
    },
];

fn kernel_desc_inside(cx: &mut Cx) {
    let k = kip::kip();
    let desc_inside = k.kernel_desc_ptr >= 0x240 && k.kernel_desc_ptr + 0x20 <= kip::area_size();
    cx.check(
        "kip.kernel_desc_inside",
        desc_inside,
        format_args!(
            "KernelVerPtr {:#x}, area {:#x}",
            k.kernel_desc_ptr,
            kip::area_size()
        ),
    );
}

fn proc_descs_inside(cx: &mut Cx) {
    let k = kip::kip();
    let procs_inside = (0..kip::num_processors()).all(|i| kip::proc_desc(i).is_some());
    cx.check(
        "kip.proc_descs_inside",
        procs_inside,
        format_args!("ProcDescPtr {:#x}", k.proc_desc_ptr),
    );
}

fn syscall_links_set(cx: &mut Cx) {
    let k = kip::kip();
    let links_set = k.syscall_links().iter().all(|&a| a != 0);
    cx.check(
        "kip.syscall_links_set",
        links_set,
        format_args!("{:x?}", k.syscall_links()),
    );
}
