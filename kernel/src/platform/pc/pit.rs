//! The 8254 programmable interval timer: the kernel's periodic tick (channel 0, IRQ 0) and the
//! reference for calibrating the TSC (channel 2, gate-controlled, polled).

use crate::arch::x86_64::cpu::{inb, outb, rdtsc};

pub const PIT_HZ: u64 = 1_193_182;

/// Programs channel 0 as a rate generator at about `hz` interrupts per second; returns the
/// exact period in nanoseconds.
pub fn start_periodic(hz: u64) -> u64 {
    let divisor = (PIT_HZ / hz).clamp(1, 0xFFFF);
    outb(0x43, 0x34); // channel 0, lo/hi, mode 2
    outb(0x40, divisor as u8);
    outb(0x40, (divisor >> 8) as u8);
    divisor * 1_000_000_000 / PIT_HZ
}

/// Measures the TSC frequency in kHz against channel 2 over about 10 ms.
pub fn calibrate_tsc_khz() -> u64 {
    let ticks: u64 = PIT_HZ / 100; // 10 ms
    // Gate high, speaker off.
    outb(0x61, (inb(0x61) & !0x02) | 0x01);
    outb(0x43, 0xB0); // channel 2, lo/hi, mode 0 (interrupt on terminal count)
    outb(0x42, ticks as u8);
    outb(0x42, (ticks >> 8) as u8);
    // Restart the count by toggling the gate.
    let g = inb(0x61) & !0x01;
    outb(0x61, g);
    outb(0x61, g | 0x01);
    let start = rdtsc();
    let mut spins = 0u64;
    while inb(0x61) & 0x20 == 0 {
        spins += 1;
        if spins > 100_000_000 {
            break;
        }
    }
    let end = rdtsc();
    let khz = (end - start) * 100 / 1000;
    if khz == 0 { 1_000_000 } else { khz }
}
