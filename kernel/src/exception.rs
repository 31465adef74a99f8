//! CPU exceptions: what the kernel does when a thread (or the kernel itself) faults.
//!
//! A fault in kernel mode is a kernel bug: the registers are dumped and the system stops
//! (unless a self-test asked for exactly that fault).

use crate::arch::x86_64::trap::{self, TrapFrame};

pub fn handle(frame: &mut TrapFrame) {
    if !frame.from_user() {
        trap::dump(frame);
        if crate::selftest::expected(frame.vector) {
            crate::kprintln!("selftest: exception {} reported as expected", frame.vector);
            crate::platform::pc::qemu_exit(crate::platform::pc::EXIT_SUCCESS);
        }
        panic!("unexpected exception {} in kernel mode", frame.vector);
    }
    trap::dump(frame);
    panic!("user exception {} with no handler", frame.vector);
}
