//! Deliberate kernel faults, selected by `selftest=` on the command line, so that the test
//! harness can check that each is reported with a register dump instead of a triple fault.

use crate::sync::KernelCell;

static EXPECTED: KernelCell<Option<u64>> = KernelCell::new(None);

pub fn expected(vector: u64) -> bool {
    *EXPECTED.get() == Some(vector)
}

pub fn run_from_cmdline(cmdline: &str) {
    let Some(which) = crate::boot::options::value(cmdline, "selftest") else {
        return;
    };
    crate::kprintln!("selftest: provoking {}", which);
    match which {
        "pf" => {
            *EXPECTED.get() = Some(14);
            // SAFETY: deliberately faulting read of an unmapped address (the point of the test).
            unsafe { core::ptr::read_volatile(0x0dea_dbee_f000 as *const u64) };
        }
        "gp" => {
            *EXPECTED.get() = Some(13);
            // SAFETY: a non-canonical address faults with #GP (the point of the test).
            unsafe { core::ptr::read_volatile(0x8000_0000_0000_0000u64 as *const u64) };
        }
        "ud" => {
            *EXPECTED.get() = Some(6);
            // SAFETY: ud2 raises #UD (the point of the test).
            unsafe { core::arch::asm!("ud2") };
        }
        "panic" => panic!("selftest panic"),
        other => crate::kprintln!("selftest: unknown test {}", other),
    }
    crate::kprintln!("selftest: {} did not fault", which);
}
