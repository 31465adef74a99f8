//! The processor's debug facilities used by the debugger: the hardware breakpoint registers
//! (DR0, DR6, DR7) and reset.

use crate::arch::cpu::outb;

/// DR6: why the last #DB happened (bit 0 = DR0 hit, bit 14 = single step).
pub fn read_dr6() -> u64 {
    let v: u64;
    // SAFETY: reading a debug register has no side effects.
    unsafe { core::arch::asm!("mov {}, dr6", out(reg) v, options(nomem, nostack)) };
    v
}

pub fn clear_dr6() {
    // SAFETY: DR6 only reports; clearing it is what the handler of a #DB must do.
    unsafe { core::arch::asm!("mov dr6, {}", in(reg) 0xFFFF_0FF0u64, options(nomem, nostack)) };
}

/// Arms DR0 as an instruction breakpoint at `addr` (a user address), or disarms it.
pub fn set_breakpoint(addr: Option<u64>) {
    match addr {
        Some(a) => {
            // SAFETY: an execute breakpoint on a user address; the kernel never executes
            // there, and a hit from user mode comes back to `shell::user_debug_trap`.
            unsafe {
                core::arch::asm!("mov dr0, {}", in(reg) a, options(nomem, nostack));
                // L0 = 1, R/W0 = 00 (execute), LEN0 = 00.
                core::arch::asm!("mov dr7, {}", in(reg) 0x401u64, options(nomem, nostack));
            }
        }
        None => {
            // SAFETY: disabling every breakpoint.
            unsafe { core::arch::asm!("mov dr7, {}", in(reg) 0x400u64, options(nomem, nostack)) };
        }
    }
}

/// Resets the machine: the keyboard controller's reset line, then a triple fault.
pub fn reboot() -> ! {
    outb(0x64, 0xFE);
    for _ in 0..1_000_000 {
        core::hint::spin_loop();
    }
    #[repr(C, packed)]
    struct Ptr {
        limit: u16,
        base: u64,
    }
    let p = Ptr { limit: 0, base: 0 };
    // SAFETY: deliberately loads an empty IDT and faults: the processor resets.
    unsafe { core::arch::asm!("lidt [{}]", "int3", in(reg) &p, options(nostack)) };
    crate::arch::cpu::halt_forever()
}
