//! Kernel memory: the physical frame pool the kernel allocates from, and the table of the
//! physical memory it may touch on a user's behalf.

pub mod frame;
pub mod phys;
pub mod quota;

/// Fixes, before the first space exists, what user spaces may cost and touch: the per-space
/// quotas and the size of the mapping database (`quota`, from the command line) and the
/// table of RAM a string copy may reach (`phys`, from the KIP's memory descriptors).
pub fn init_user_policy(cmdline: &str, node_size: u64) {
    let (lo, hi) = frame::range();
    quota::init(cmdline, hi - lo, node_size);
    phys::init(crate::kernel_image_range(), (lo, hi));
}
