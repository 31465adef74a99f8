//! The Kernel Interface Page (spec 3): magic, API version and flags, layout sanity.

use abi::kip::{ApiVersion, KIP_MAGIC};
use l4::kip;

use crate::conformance::Suite;

/// Runs this module's checks.
pub fn run(s: &mut Suite) {
    let k = kip::kip();
    s.check_eq("kip.magic", k.magic, KIP_MAGIC);
    s.check_eq("kip.address_page_aligned", kip::kip_address() % 4096, 0);
    s.check_eq("kip.api_version", ApiVersion(k.api_version).version(), 0x84);
    s.check_eq("kip.api_flags", k.api_flags, 4);
    let desc_inside = k.kernel_desc_ptr >= 0x240 && k.kernel_desc_ptr + 0x20 <= kip::area_size();
    s.check(
        "kip.kernel_desc_inside",
        desc_inside,
        format_args!(
            "KernelVerPtr {:#x}, area {:#x}",
            k.kernel_desc_ptr,
            kip::area_size()
        ),
    );
    let procs_inside = (0..kip::num_processors()).all(|i| kip::proc_desc(i).is_some());
    s.check(
        "kip.proc_descs_inside",
        procs_inside,
        format_args!("ProcDescPtr {:#x}", k.proc_desc_ptr),
    );
    let links_set = k.syscall_links().iter().all(|&a| a != 0);
    s.check(
        "kip.syscall_links_set",
        links_set,
        format_args!("{:x?}", k.syscall_links()),
    );
}
