//! What the boot loader handed over: the multiboot information, copied into kernel memory
//! (memory map, modules and command lines) before anything can overwrite it, and the kernel's
//! command-line options.

pub mod multiboot;
pub mod options;
