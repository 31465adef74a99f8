//! x86 port I/O for user threads: the TSS I/O permission bitmap and the decoding of a
//! faulting `in`/`out`/`ins`/`outs` instruction (spec 6.6). (Which threads run with IOPL 3
//! instead, UNSAFE options only, is `super::trap::initial_user_rflags`.)
//!
//! Owns: the contents of the TSS bitmap area (`gdt::iomap`) and `iomap_base`, and the serial
//! of the bitmap that is loaded. It touches nothing
//! else; which space holds which ports is `crate::io_space`'s business, which calls
//! [`load`], [`deny_all`] and [`update_loaded`] to keep the TSS in step.
//!
//! Switching ([`switch_to`], inline in the scheduler, no call and no copy): a space without
//! ports runs with `iomap_base` beyond the TSS limit (every port denied, one 16-bit write).
//! The TSS area remembers whose bitmap copy it holds (a serial that is never reused, so a
//! dead space's bitmap is never mistaken for a new one), also while denied, so going back to
//! that space is again one 16-bit write. A space with ports whose bitmap is not in the TSS
//! starts with every port denied; its first port access faults and `io_space::gp_fault` has
//! [`load`] copy the bitmap in and retries. Only the leading `span` bytes of a bitmap can hold
//! a 0 (allowed) bit, so a copy moves `max(span of the new, span in the TSS)` bytes: 128 bytes
//! for a space that holds COM1, 8 KiB only for sigma0 or high ports. See
//! docs/decisions/005-io-fpages-tss-bitmap.md.

use super::gdt::{self, IOMAP_BYTES, IOMAP_DENY_ALL, IOMAP_OFFSET};
use crate::sync::KernelCell;

/// What the TSS holds.
pub(crate) struct Loaded {
    /// Serial of the bitmap in effect (0: every port denied).
    pub(crate) serial: u64,
    /// Serial of the bitmap whose copy is in the TSS area, in effect or not (0: none).
    pub(crate) content: u64,
    /// How many leading bytes of the TSS copy may hold a 0 bit.
    span: usize,
}

pub(crate) static LOADED: KernelCell<Loaded> = KernelCell::new(Loaded {
    serial: 0,
    content: 0,
    span: 0,
});

/// Serial of the bitmap in effect (0: none, every port denied).
#[inline]
pub fn loaded_serial() -> u64 {
    // SAFETY: the only borrow of LOADED in use; it ends before any call that touches it.
    (unsafe { LOADED.get() }).serial
}

/// The switch hook (inline, no call, no copy): the bitmap `serial` (0: none) in effect if the
/// TSS holds its copy, else every port denied (the copy is made on the first port access:
/// `io_space::gp_fault`).
#[inline(always)]
pub fn switch_to(serial: u64) {
    // SAFETY: the only borrow of LOADED in use; it ends before any call that touches it.
    let l = unsafe { LOADED.get() };
    if serial == l.serial {
        return;
    }
    if serial != 0 && serial == l.content {
        l.serial = serial;
        gdt::set_iomap_base(IOMAP_OFFSET);
    } else if l.serial != 0 {
        l.serial = 0;
        gdt::set_iomap_base(IOMAP_DENY_ALL);
    }
}

/// Every port denied (the space that runs next has no bitmap). The copy stays in the TSS.
pub fn deny_all() {
    // SAFETY: the only borrow of LOADED in use; it ends before any call that touches it.
    let l = unsafe { LOADED.get() };
    if l.serial != 0 {
        l.serial = 0;
        gdt::set_iomap_base(IOMAP_DENY_ALL);
    }
}

/// The bitmap `serial` is going away: stop using it and forget its copy.
pub fn forget(serial: u64) {
    if loaded_serial() == serial {
        deny_all();
    }
    // SAFETY: the only borrow of LOADED in use; it ends before any call that touches it.
    let l = unsafe { LOADED.get() };
    if l.content == serial {
        l.content = 0;
    }
}

/// Loads a space's bitmap: `halves` are its two 4 KiB halves (kernel addresses), `span` the
/// number of leading bytes that may hold a 0 bit.
pub fn load(serial: u64, halves: [*const u8; 2], span: usize) {
    // SAFETY: the only borrow of LOADED in use; it ends before any call that touches it.
    let l = unsafe { LOADED.get() };
    if l.serial == serial {
        return;
    }
    if l.content == serial {
        // The copy is still there (only denied in between): no copy.
        l.serial = serial;
        gdt::set_iomap_base(IOMAP_OFFSET);
        return;
    }
    // SAFETY: the only reference to the TSS I/O bitmap in use.
    let tss = unsafe { gdt::iomap() };
    let span = span.min(IOMAP_BYTES);
    let half = IOMAP_BYTES / 2;
    let mut off = 0;
    while off < span {
        let h = off / half;
        let n = (span - off).min(half - off % half);
        // SAFETY: each half is a live 4 KiB frame of the space's bitmap (io_space keeps it
        // until the space is deleted, and `deny_all`s the TSS first if it is loaded);
        // `off % half + n <= half`.
        let src = unsafe { core::slice::from_raw_parts(halves[h].add(off % half), n) };
        tss[off..off + n].copy_from_slice(src);
        off += n;
    }
    if l.span > span {
        tss[span..l.span].fill(0xFF);
    }
    l.span = span;
    l.serial = serial;
    l.content = serial;
    gdt::set_iomap_base(IOMAP_OFFSET);
}

/// The bitmap `serial` changed: ports `[first, first + count)` are now allowed or denied.
/// Updates the TSS copy if it is that bitmap's (in effect or not).
pub fn update_loaded(serial: u64, first: usize, count: usize, allow: bool) {
    // SAFETY: the only borrow of LOADED in use; it ends before any call that touches it.
    let l = unsafe { LOADED.get() };
    if serial == 0 || l.content != serial {
        return;
    }
    // SAFETY: the only reference to the TSS I/O bitmap in use.
    let tss = unsafe { gdt::iomap() };
    set_bits(tss, first, count, allow);
    if allow {
        l.span = l.span.max((first + count).div_ceil(8).min(IOMAP_BYTES));
    }
}

/// Clears (allow) or sets (deny) the bits of ports `[first, first + count)` in a bitmap
/// given as a byte-indexable store.
pub fn set_bits(map: &mut [u8], first: usize, count: usize, allow: bool) {
    let end = (first + count).min(map.len() * 8);
    let mut p = first;
    while p < end {
        if p.is_multiple_of(8) && end - p >= 8 {
            let n = (end - p) / 8;
            map[p / 8..p / 8 + n].fill(if allow { 0 } else { 0xFF });
            p += n * 8;
            continue;
        }
        let bit = 1u8 << (p % 8);
        if allow {
            map[p / 8] &= !bit;
        } else {
            map[p / 8] |= bit;
        }
        p += 1;
    }
}

/// A decoded port access: first port and width in bytes (1, 2 or 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAccess {
    pub port: u16,
    pub width: u8,
}

/// Decodes the instruction at a faulting user RIP: `in`/`out` (imm8 or DX port), `ins`/`outs`,
/// after any operand-size (0x66), address-size (0x67), rep (0xF2/0xF3), segment or REX
/// prefixes. `fetch(i)` reads instruction byte `i` (through the guarded user-memory accessor);
/// `dx` is the thread's RDX. `None`: not a port access (or unreadable).
pub fn decode(fetch: impl Fn(u64) -> Option<u8>, dx: u64) -> Option<PortAccess> {
    let mut opsize16 = false;
    let mut i = 0u64;
    // At most 15 bytes make an instruction; in/out are at most 2 bytes after prefixes.
    let op = loop {
        if i >= 14 {
            return None;
        }
        let b = fetch(i)?;
        match b {
            0x66 => opsize16 = true,
            0x67 | 0xF2 | 0xF3 | 0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 => {}
            // REX (ignored by in/out); it must come last, so the opcode follows.
            0x40..=0x4F => {
                let op = fetch(i + 1)?;
                i += 1;
                break op;
            }
            _ => break b,
        }
        i += 1;
    };
    let wide = if opsize16 { 2 } else { 4 };
    let (port, width) = match op {
        0xE4 | 0xE6 => (fetch(i + 1)? as u16, 1),
        0xE5 | 0xE7 => (fetch(i + 1)? as u16, wide),
        0xEC | 0xEE | 0x6C | 0x6E => (dx as u16, 1),
        0xED | 0xEF | 0x6D | 0x6F => (dx as u16, wide),
        _ => return None,
    };
    Some(PortAccess { port, width })
}
