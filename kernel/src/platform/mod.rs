//! Platform devices.
//!
//! Generic kernel code names the platform's devices through this module (`crate::platform::pic`,
//! `crate::platform::qemu_exit`, ...), never `pc` itself.

pub mod pc;

pub use pc::{EXIT_FAILURE, EXIT_SUCCESS, pic, pit, qemu_exit, serial};
