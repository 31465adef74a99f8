//! Flexpages (spec 2.3): memory fpages and x86 IO fpages, and their access rights.
//!
//! Memory fpage word: rights x/w/r in bits 0–2, bit 3 reserved (sigma0 32-bit "extended"),
//! log2 size `s` in bits 4–9, base >> 10 in bits 10–63. Raw 0 is the nil fpage; s = 1 with
//! base 0 (raw `0x10`) is the complete address space. Constructors here align the base
//! down to the fpage size (libl4 keeps unaligned base bits in the raw word; every getter,
//! ours and libl4's, masks them, so decoded values agree).
//!
//! IO fpage word: size field fixed at 2, log2 of the port count in bits 10–15, base port in
//! bits 16–31.

use crate::low_mask;
use core::ops::{BitAnd, BitOr, Not};

/// Access rights (or, on Unmap output, access status) in bits 0–2 of an fpage (spec 2.3).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Rights(pub u64);

impl Rights {
    /// No access.
    pub const NONE: Self = Self(0);
    /// x: execute (status: executed).
    pub const X: Self = Self(1);
    /// w: write (status: written).
    pub const W: Self = Self(2);
    /// r: read (status: referenced).
    pub const R: Self = Self(4);
    /// r + x.
    pub const RX: Self = Self(5);
    /// r + w.
    pub const RW: Self = Self(6);
    /// r + w + x (`L4_FullyAccessible`).
    pub const FULL: Self = Self(7);

    /// Rights from the low 3 bits of `raw` (spec 2.3).
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw & 7)
    }

    /// The 3-bit value.
    pub const fn raw(self) -> u64 {
        self.0 & 7
    }

    /// Whether every right in `other` is also in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no right is set.
    pub const fn is_empty(self) -> bool {
        self.0 & 7 == 0
    }
}

impl BitOr for Rights {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self((self.0 | rhs.0) & 7)
    }
}

impl BitAnd for Rights {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0 & 7)
    }
}

impl Not for Rights {
    type Output = Self;
    fn not(self) -> Self {
        Self(!self.0 & 7)
    }
}

/// A memory fpage word (spec 2.3).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Fpage(pub u64);

const S_SHIFT: u32 = 4;
const S_MASK: u64 = 0x3F;
/// Bits 0–9 of an fpage (rights, reserved bit, size); the base is the rest (spec 2.3).
const NON_BASE_MASK: u64 = 0x3FF;

/// ceil(log2(size)) for size >= 1, saturating at 64.
const fn log2_ceil(size: u64) -> u64 {
    if size <= 1 {
        return 0;
    }
    let msb = 63 - (size.leading_zeros() as u64);
    if size.is_power_of_two() { msb } else { msb + 1 }
}

impl Fpage {
    /// `L4_Nilpage` (spec 2.3).
    pub const NIL: Self = Self(0);
    /// `L4_CompleteAddressSpace`: s = 1, base 0 (spec 2.3).
    pub const COMPLETE: Self = Self(0x10);

    /// Fpage of 2^`size_log2` bytes containing `base` (base aligned down; `size_log2`
    /// truncated to 6 bits), no rights (spec 2.3; libl4 `L4_FpageLog2`).
    pub const fn new_log2(base: u64, size_log2: u64) -> Self {
        let s = size_log2 & S_MASK;
        let base = base & !NON_BASE_MASK & !low_mask(s as u32);
        Self(base | (s << S_SHIFT))
    }

    /// Fpage at `base` with `size` rounded up to a power of two like libl4 `L4_Fpage`
    /// (spec 2.3). `size == 0` gives the nil fpage; sizes above 2^63 give s = 63 (libl4
    /// would wrap the 6-bit field to 0).
    pub const fn from_base_size(base: u64, size: u64) -> Self {
        if size == 0 {
            return Self::NIL;
        }
        let s = log2_ceil(size);
        Self::new_log2(base, if s > 63 { 63 } else { s })
    }

    /// Wraps a raw word (spec 2.3).
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw word (spec 2.3).
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// s: log2 of the size in bytes (spec 2.3).
    pub const fn size_log2(self) -> u64 {
        (self.0 >> S_SHIFT) & S_MASK
    }

    /// Size in bytes: 0 if s = 0, `u64::MAX` (saturated) if s >= 64 (spec 2.3).
    pub const fn size(self) -> u64 {
        let s = self.size_log2();
        if s == 0 {
            0
        } else if s >= 64 {
            u64::MAX
        } else {
            1 << s
        }
    }

    /// Base address, aligned to the size (libl4 `L4_Address`, spec 2.3).
    pub const fn base(self) -> u64 {
        self.0 & !NON_BASE_MASK & !low_mask(self.size_log2() as u32)
    }

    /// Last byte of the fpage, inclusive: `base | (size - 1)` (spec 2.3). For s = 0 this is
    /// `base`; callers test [`Fpage::is_nil`] / s first.
    pub const fn end(self) -> u64 {
        self.base() | low_mask(self.size_log2() as u32)
    }

    /// Access rights in bits 0–2 (spec 2.3).
    pub const fn rights(self) -> Rights {
        Rights::from_raw(self.0)
    }

    /// Same fpage with its rights replaced (spec 2.3).
    pub const fn with_rights(self, rights: Rights) -> Self {
        Self((self.0 & !7) | rights.raw())
    }

    /// Same fpage with `rights` added (libl4 `L4_FpageAddRights`, spec 2.3).
    pub const fn add_rights(self, rights: Rights) -> Self {
        Self(self.0 | rights.raw())
    }

    /// Whole word 0 (spec 2.3).
    pub const fn is_nil(self) -> bool {
        self.0 == 0
    }

    /// s = 1 and base 0, any rights (spec 2.3).
    pub const fn is_complete(self) -> bool {
        self.0 & !0xF == Self::COMPLETE.0
    }

    /// Whether `addr` lies in the fpage. Nil and s = 0 contain nothing; the complete
    /// address space contains everything (spec 2.3).
    pub const fn contains(self, addr: u64) -> bool {
        if self.is_complete() {
            return true;
        }
        if self.size_log2() == 0 {
            return false;
        }
        addr >= self.base() && addr <= self.end()
    }

    /// Whether the word is an IO fpage rather than a memory fpage (spec 2.3).
    pub const fn is_io(self) -> bool {
        IoFpage::is_io(self.0)
    }
}

/// An x86 IO fpage word (spec 2.3, 6.6).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct IoFpage(pub u64);

impl IoFpage {
    /// Value of the size field that marks an IO fpage (spec 2.3).
    pub const IO_SIZE_MARK: u64 = 2;
    /// The whole IO space: 2^16 ports from port 0 (spec 2.3).
    pub const COMPLETE: Self = Self::new_log2(0, 16);

    /// Whether `raw` is an IO fpage: size field (bits 4–9) equals 2 (spec 2.3).
    pub const fn is_io(raw: u64) -> bool {
        (raw >> S_SHIFT) & S_MASK == Self::IO_SIZE_MARK
    }

    /// IO fpage of 2^`log2_ports` ports from `port` (port truncated to 16 bits and
    /// aligned down; log2 truncated to 6 bits), no rights (spec 2.3).
    pub const fn new_log2(port: u64, log2_ports: u64) -> Self {
        let l = log2_ports & 0x3F;
        let port = port & 0xFFFF & !low_mask(l as u32);
        Self((port << 16) | (l << 10) | (Self::IO_SIZE_MARK << S_SHIFT))
    }

    /// IO fpage covering `count` ports from `port`, count rounded up to a power of two
    /// (libl4 `L4_IoFpage`, spec 2.3).
    pub const fn from_port_count(port: u64, count: u64) -> Self {
        Self::new_log2(port, log2_ceil(count))
    }

    /// Base port: bits 16–31 (spec 2.3).
    pub const fn port(self) -> u64 {
        (self.0 >> 16) & 0xFFFF
    }

    /// log2 of the number of ports: bits 10–15 (spec 2.3).
    pub const fn size_log2(self) -> u64 {
        (self.0 >> 10) & 0x3F
    }

    /// Number of ports, saturating at `u64::MAX` (spec 2.3).
    pub const fn ports(self) -> u64 {
        let l = self.size_log2();
        if l >= 64 { u64::MAX } else { 1 << l }
    }

    /// Rights bits 0–2 (spec 2.3).
    pub const fn rights(self) -> Rights {
        Rights::from_raw(self.0)
    }

    /// The raw word (spec 2.3).
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The same word as an [`Fpage`], for map items, acceptors and Unmap (spec 2.3, 6.6).
    pub const fn fpage(self) -> Fpage {
        Fpage(self.0)
    }

    /// Whether port `port` lies inside (spec 2.3).
    pub const fn contains_port(self, port: u64) -> bool {
        port >= self.port() && port - self.port() < self.ports()
    }
}
