//! The two cascaded 8259 interrupt controllers: IRQ 0..15 at vectors 0x20..0x2F.
//!
//! IRQ 0 (PIT) is the kernel's timer; IRQ 2 is the cascade. Every other line stays masked
//! until a user-level handler is associated with it.

use crate::arch::x86_64::cpu::{inb, outb};
use crate::sync::KernelValue;

pub const VECTOR_BASE: u8 = 0x20;
pub const NUM_IRQS: usize = 16;

const PIC1: u16 = 0x20;
const PIC2: u16 = 0xA0;

static MASK: KernelValue<u16> = KernelValue::new(0xFFFF);

pub fn init() {
    outb(PIC1, 0x11);
    outb(PIC2, 0x11);
    outb(PIC1 + 1, VECTOR_BASE);
    outb(PIC2 + 1, VECTOR_BASE + 8);
    outb(PIC1 + 1, 4);
    outb(PIC2 + 1, 2);
    outb(PIC1 + 1, 1);
    outb(PIC2 + 1, 1);
    MASK.set(!(1 << 2)); // cascade line open
    write_mask();
}

fn write_mask() {
    let m = MASK.get();
    outb(PIC1 + 1, m as u8);
    outb(PIC2 + 1, (m >> 8) as u8);
}

pub fn mask(irq: usize) {
    MASK.set(MASK.get() | (1 << irq));
    write_mask();
}

pub fn unmask(irq: usize) {
    MASK.set(MASK.get() & (!(1 << irq)));
    write_mask();
}

pub fn eoi(irq: usize) {
    if irq >= 8 {
        outb(PIC2, 0x20);
    }
    outb(PIC1, 0x20);
}

/// True if a vector-7/15 interrupt is spurious (not in service).
pub fn is_spurious(irq: usize) -> bool {
    let (port, bit) = if irq == 7 { (PIC1, 7) } else { (PIC2, 7) };
    outb(port, 0x0B);
    inb(port) & (1 << bit) == 0
}
