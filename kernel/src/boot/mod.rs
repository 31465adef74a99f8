//! What the boot loader handed over: the multiboot information, copied into kernel memory
//! (memory map, modules and command lines) before anything can overwrite it, or what a
//! KIP-patching second-stage loader (kickstart) wrote into the KIP; and the kernel's
//! command-line options.

pub mod kip_loader;
pub mod multiboot;
pub mod options;
