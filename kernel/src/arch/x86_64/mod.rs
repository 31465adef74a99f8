//! Everything specific to x86-64: boot trampoline, CPU control, descriptor tables, trap and
//! system-call entry, page tables. Generic kernel code calls into this module and never uses
//! inline assembly itself.

pub mod boot;
pub mod context;
pub mod cpu;
pub mod gdt;
pub mod ioport;
pub mod paging;
pub mod syscall;
pub mod trap;
pub mod usercopy;
