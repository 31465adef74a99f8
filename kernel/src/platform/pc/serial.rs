//! COM1 (16550 UART at 0x3F8): the kernel console and the kernel debugger's input.
//!
//! Output is polled. Input is polled by the kernel debugger; user-level drivers may take the
//! UART's interrupt (IRQ 4) later, the kernel never enables it itself. Bytes the debugger's
//! break-in poll read but did not want are pushed back here and come first on the next read.

use crate::arch::x86_64::cpu::{inb, outb};
use crate::sync::{KernelCell, KernelValue};

const COM1: u16 = 0x3F8;

pub fn init() {
    outb(COM1 + 1, 0x00); // no interrupts
    outb(COM1 + 3, 0x80); // DLAB on
    outb(COM1, 0x01); // divisor 1: 115200 baud
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); // 8N1
    outb(COM1 + 2, 0xC7); // FIFO on, cleared
    outb(COM1 + 4, 0x0B); // DTR, RTS, OUT2
}

pub fn write_byte(b: u8) {
    let mut spins = 0u32;
    while lsr() & 0x20 == 0 && spins < 100_000 {
        spins += 1;
    }
    outb(COM1, b);
}

/// A BREAK seen by any read of the line status register (reading clears the bit), kept until
/// `line_status` reports it.
static BREAK_SEEN: KernelValue<bool> = KernelValue::new(false);

fn lsr() -> u8 {
    let v = inb(COM1 + 5);
    // 0xFF: no UART at this port (a PC without COM1); not a BREAK.
    if v & 0x10 != 0 && v != 0xFF {
        BREAK_SEEN.set(true);
    }
    v
}

pub fn write_str(s: &str) {
    for b in s.bytes() {
        if b == b'\n' {
            write_byte(b'\r');
        }
        write_byte(b);
    }
}

/// Bytes read by the debugger's poll and handed back (a small ring; oldest dropped when full).
struct Pushback {
    buf: [u8; 64],
    head: usize,
    len: usize,
}

static PUSHBACK: KernelCell<Pushback> = KernelCell::new(Pushback {
    buf: [0; 64],
    head: 0,
    len: 0,
});

/// Keeps `b` for the next `try_read_byte`.
#[cfg_attr(not(feature = "kdb"), allow(dead_code))]
pub fn push_back(b: u8) {
    // SAFETY: the only borrow of PUSHBACK in use; it ends before any call that touches it.
    let p = unsafe { PUSHBACK.get() };
    if p.len == p.buf.len() {
        p.head = (p.head + 1) % p.buf.len();
        p.len -= 1;
    }
    let i = (p.head + p.len) % p.buf.len();
    p.buf[i] = b;
    p.len += 1;
}

/// Line status register: bit 0 data ready, bit 4 break received since the last call.
#[cfg_attr(not(feature = "kdb"), allow(dead_code))]
pub fn line_status() -> u8 {
    let v = lsr();
    let seen = BREAK_SEEN.replace(false);
    if seen { v | 0x10 } else { v }
}

/// A byte straight from the UART (no pushback), if one is waiting.
#[cfg_attr(not(feature = "kdb"), allow(dead_code))]
pub fn read_raw() -> Option<u8> {
    if lsr() & 1 != 0 {
        Some(inb(COM1))
    } else {
        None
    }
}

/// A received byte, if one is waiting.
pub fn try_read_byte() -> Option<u8> {
    // SAFETY: the only borrow of PUSHBACK in use; it ends before any call that touches it.
    let p = unsafe { PUSHBACK.get() };
    if p.len > 0 {
        let b = p.buf[p.head];
        p.head = (p.head + 1) % p.buf.len();
        p.len -= 1;
        return Some(b);
    }
    if lsr() & 1 != 0 {
        Some(inb(COM1))
    } else {
        None
    }
}
