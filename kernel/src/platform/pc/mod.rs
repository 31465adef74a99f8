//! PC platform devices: COM1, the 8259 PIC pair, the 8253/8254 PIT, QEMU's debug-exit port.

pub mod pic;
pub mod pit;
pub mod serial;

use crate::arch::x86_64::cpu::outb;

/// Leaves QEMU through the isa-debug-exit device (iobase 0xf4): QEMU's exit status becomes
/// `(code << 1) | 1`. On real hardware (no such device) this falls through to halting.
pub fn qemu_exit(code: u8) -> ! {
    outb(0xF4, code);
    crate::arch::x86_64::cpu::halt_forever()
}

/// Exit code for an orderly shutdown (QEMU status 33).
pub const EXIT_SUCCESS: u8 = 0x10;
/// Exit code for a kernel panic or unexpected fault (QEMU status 35).
pub const EXIT_FAILURE: u8 = 0x11;
