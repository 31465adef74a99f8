//! Kernel memory: the physical frame pool the kernel allocates from, and the table of the
//! physical memory it may touch on a user's behalf.

pub mod frame;
pub mod phys;
pub mod quota;
