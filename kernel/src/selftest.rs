//! Deliberate kernel faults, selected by `selftest=` on the command line, so that the test
//! harness can check that each is reported with a register dump instead of a triple fault,
//! and that SMAP and SMEP are really enforced (`smap`, `smep`: a kernel access to a user page
//! outside the guarded accessors faults).

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
        // The system-call stub page is the one user-accessible page of the kernel image: a
        // plain kernel read of it must fault under SMAP, a call into it under SMEP.
        "smap" if crate::arch::x86_64::cpu::smap_on() => {
            *EXPECTED.get() = Some(14);
            let p = crate::arch::x86_64::syscall::stubs_base();
            // SAFETY: the stub page is mapped (user-readable); with SMAP on the read faults
            // (the point of the test).
            unsafe { core::ptr::read_volatile(p as *const u8) };
        }
        "smep" if crate::arch::x86_64::cpu::smep_on() => {
            *EXPECTED.get() = Some(14);
            let p = crate::arch::x86_64::syscall::stubs_base();
            // SAFETY: with SMEP on, fetching from a user page faults before any instruction
            // of it runs (the point of the test).
            unsafe { core::arch::asm!("call {}", in(reg) p, clobber_abi("C")) };
        }
        "smap" | "smep" => {
            crate::kprintln!("selftest: {} is off (not in CPUID): not tested", which);
            return;
        }
        "panic" => panic!("selftest panic"),
        other => crate::kprintln!("selftest: unknown test {}", other),
    }
    crate::kprintln!("selftest: {} did not fault", which);
}
