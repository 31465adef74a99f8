//! Architecture-specific code. Only x86-64 exists.
//!
//! Generic kernel code names the architecture's modules through this one (`crate::arch::paging`,
//! `crate::arch::context`, ...), never `x86_64` itself, so another architecture means another
//! set of these modules behind the same names.

pub mod x86_64;

pub use x86_64::{boot, context, cpu, fpu, gdt, ioport, paging, syscall, trap, usercopy};
