//! Kernel memory: the physical frame pool the kernel allocates from.

pub mod frame;
