//! COM1 input (16550 UART at 0x3F8, IRQ 4): every received byte is printed as
//! `com1: '<char>'`. The kernel leaves the UART's interrupts off and OUT2 (which gates the
//! UART's interrupt line on a PC) on; this driver enables the receive-data interrupt.

use l4::println;

use super::{inb, outb};

const BASE: u16 = 0x3F8;
const IER: u16 = BASE + 1;
const IIR: u16 = BASE + 2;
const LSR: u16 = BASE + 5;
/// The IRQ line.
pub const IRQ: u64 = 4;

fn drain() {
    while inb(LSR) & 1 != 0 {
        let c = inb(BASE) as char;
        println!("com1: {c:?}");
    }
}

/// The driver thread (its IRQ is already associated with it).
pub extern "C" fn main() -> ! {
    drain();
    outb(IER, 0x01); // received-data-available interrupt only
    let _ = inb(IIR);
    println!("com1: driver on IRQ {IRQ}, receive interrupt enabled");
    super::report_ready();
    super::serve(IRQ, || {
        let _ = inb(IIR);
        drain();
    })
}
