//! The debugger's terminal: a polled line editor on COM1 (echo, backspace, Ctrl-U).
//!
//! Runs with interrupts disabled; nothing else in the system moves while it waits for a key.

use crate::kprint;
use crate::platform::serial;

pub const LINE_MAX: usize = 120;

pub struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Line {
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

fn read_byte() -> u8 {
    loop {
        if let Some(b) = serial::try_read_byte() {
            return b;
        }
        core::hint::spin_loop();
    }
}

/// Prints `prompt` and reads one line (CR or LF ends it; an LF right after a CR is skipped).
pub fn read_line(prompt: &str) -> Line {
    kprint!("{}", prompt);
    let mut l = Line {
        buf: [0; LINE_MAX],
        len: 0,
    };
    loop {
        match read_byte() {
            b'\r' | b'\n' => {
                kprint!("\n");
                // Swallow the LF of a CR LF pair if it is already there.
                if let Some(b) = serial::try_read_byte()
                    && b != b'\n'
                {
                    serial::push_back(b);
                }
                return l;
            }
            0x08 | 0x7F if l.len > 0 => {
                l.len -= 1;
                kprint!("\x08 \x08");
            }
            0x15 => {
                while l.len > 0 {
                    l.len -= 1;
                    kprint!("\x08 \x08");
                }
            }
            b if (0x20..0x7F).contains(&b) && l.len < LINE_MAX => {
                l.buf[l.len] = b;
                l.len += 1;
                serial::write_byte(b);
            }
            _ => {}
        }
    }
}

/// Parses a number: hex with `0x`, else decimal.
pub fn parse_num(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}
