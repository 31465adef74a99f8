//! PS/2 keyboard (8042 controller, data port 0x60, status 0x64, IRQ 1), scan-code set 1 (the
//! controller translates the keyboard's set 2, as the BIOS leaves it). Letters, digits,
//! punctuation, space, enter, backspace and tab are printed as `kbd: '<char>'`; shift and caps
//! lock change the case; other make codes are printed as `kbd: scan code 0x..`.

use l4::println;

use super::inb;

const DATA: u16 = 0x60;
const STATUS: u16 = 0x64;
/// The IRQ line.
pub const IRQ: u64 = 1;

/// Set-1 make codes 0x00..0x3A without shift (0 = not a character).
const PLAIN: &[u8; 0x3A] =
    b"\0\x1b1234567890-=\x08\tqwertyuiop[]\n\0asdfghjkl;'`\0\\zxcvbnm,./\0*\0 ";
/// The same with shift.
const SHIFTED: &[u8; 0x3A] =
    b"\0\x1b!@#$%^&*()_+\x08\tQWERTYUIOP{}\n\0ASDFGHJKL:\"~\0|ZXCVBNM<>?\0*\0 ";

const LSHIFT: u8 = 0x2A;
const RSHIFT: u8 = 0x36;
const CAPS: u8 = 0x3A;

/// Decoder state: shift keys held, caps lock, an 0xE0 prefix seen.
#[derive(Default)]
pub struct Decoder {
    lshift: bool,
    rshift: bool,
    caps: bool,
    extended: bool,
}

/// What one scan code means.
#[derive(Debug, PartialEq, Eq)]
pub enum Key {
    /// A printable (or control) character.
    Char(char),
    /// Modifier or release: nothing to show.
    None,
    /// A make code this decoder does not map.
    Unhandled(u8),
    /// Caps lock toggled (new state).
    Caps(bool),
}

impl Decoder {
    /// Decodes one byte from the data port.
    pub fn feed(&mut self, code: u8) -> Key {
        if code == 0xE0 {
            self.extended = true;
            return Key::None;
        }
        let release = code & 0x80 != 0;
        let make = code & 0x7F;
        if core::mem::take(&mut self.extended) {
            return if release {
                Key::None
            } else {
                Key::Unhandled(code)
            };
        }
        match make {
            LSHIFT => {
                self.lshift = !release;
                return Key::None;
            }
            RSHIFT => {
                self.rshift = !release;
                return Key::None;
            }
            CAPS if !release => {
                self.caps = !self.caps;
                return Key::Caps(self.caps);
            }
            _ => {}
        }
        if release {
            return Key::None;
        }
        let shift = self.lshift || self.rshift;
        let c = match (make as usize) < PLAIN.len() {
            true if shift => SHIFTED[make as usize],
            true => PLAIN[make as usize],
            false => 0,
        };
        if c == 0 {
            return Key::Unhandled(code);
        }
        let mut c = c as char;
        if self.caps && c.is_ascii_alphabetic() {
            c = if shift {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            };
        }
        Key::Char(c)
    }
}

/// The driver thread (its IRQ is already associated with it).
pub extern "C" fn main() -> ! {
    // Drop whatever the controller holds from before (it would keep the line from firing).
    let mut spins = 0;
    while inb(STATUS) & 1 != 0 && spins < 64 {
        let _ = inb(DATA);
        spins += 1;
    }
    println!("kbd: driver on IRQ {IRQ}, scan-code set 1");
    super::report_ready();
    let mut d = Decoder::default();
    super::serve(IRQ, || {
        while inb(STATUS) & 1 != 0 {
            let code = inb(DATA);
            match d.feed(code) {
                Key::Char(c) => println!("kbd: {c:?}"),
                Key::Caps(on) => println!("kbd: caps lock {}", if on { "on" } else { "off" }),
                Key::Unhandled(code) => println!("kbd: scan code {code:#04x}"),
                Key::None => {}
            }
        }
    })
}
