//! Thread identifiers (spec 2.1).
//!
//! Owns the encoding of global ids (thread number in bits 63..32, version in bits 31..0),
//! local ids (the address of the thread's MR0, low 6 bits zero) and the special ids
//! nil, any and any-local. A word is *local* iff its low 6 bits are zero and it is not
//! nil; global ids therefore need a version with non-zero low 6 bits (the kernel uses 1).

/// A thread id word, global or local (spec 2.1).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct ThreadId(pub u64);

impl ThreadId {
    /// `nilthread` = 0 (spec 2.1).
    pub const NIL: Self = Self(0);
    /// `anythread` = all ones (spec 2.1).
    pub const ANY: Self = Self(u64::MAX);
    /// `anylocalthread` = local form with all local-id bits set (spec 2.1).
    pub const ANY_LOCAL: Self = Self(0xFFFF_FFFF_FFFF_FFC0);
    /// Mask of the bits that are zero in a local id (spec 2.1).
    pub const LOCAL_ZERO_MASK: u64 = 0x3F;

    /// Global id from a 32-bit thread number and a 32-bit version; excess bits are
    /// dropped, like libl4 `L4_GlobalId` (spec 2.1).
    pub const fn global(number: u64, version: u64) -> Self {
        Self(((number & 0xFFFF_FFFF) << 32) | (version & 0xFFFF_FFFF))
    }

    /// The id of the interrupt thread for IRQ line `irq`: (irq, version 1) (spec 2.1, 6.5).
    pub const fn interrupt(irq: u64) -> Self {
        Self::global(irq, 1)
    }

    /// Local id of a thread whose MR0 lives at `addr` (UTCB start + 0x200); the low 6
    /// bits are cleared (spec 2.1, 4.2).
    pub const fn local_from_utcb_mr0(addr: u64) -> Self {
        Self(addr & !Self::LOCAL_ZERO_MASK)
    }

    /// Local id of the thread whose 1 KiB UTCB block starts at `utcb_location`
    /// (MR0 = location + 0x200, spec 4.2).
    pub const fn local_from_utcb_location(utcb_location: u64) -> Self {
        Self::local_from_utcb_mr0(utcb_location.wrapping_add(crate::utcb::MR0_OFFSET as u64))
    }

    /// Wraps a raw word (spec 2.1).
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw word (spec 2.1).
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Thread number of a global id: bits 63..32 (spec 2.1; libl4 `L4_ThreadNo`).
    pub const fn number(self) -> u64 {
        self.0 >> 32
    }

    /// Version of a global id: bits 31..0 (spec 2.1; libl4 `L4_Version`).
    pub const fn version(self) -> u64 {
        self.0 & 0xFFFF_FFFF
    }

    /// `self == nilthread` (spec 2.1).
    pub const fn is_nil(self) -> bool {
        self.0 == 0
    }

    /// `self == anythread` (spec 2.1).
    pub const fn is_any(self) -> bool {
        self.0 == u64::MAX
    }

    /// `self == anylocalthread` (spec 2.1).
    pub const fn is_any_local(self) -> bool {
        self.0 == Self::ANY_LOCAL.0
    }

    /// Local form: low 6 bits zero and not nil. Note that `ANY_LOCAL` is local by this
    /// test (spec 2.1).
    pub const fn is_local(self) -> bool {
        self.0 & Self::LOCAL_ZERO_MASK == 0 && self.0 != 0
    }

    /// Global form: not local, not nil, not `anythread` (spec 2.1).
    pub const fn is_global(self) -> bool {
        !self.is_local() && !self.is_nil() && !self.is_any()
    }

    /// For a local id: the address of the thread's MR0 (spec 4.2).
    pub const fn mr0_address(self) -> u64 {
        self.0 & !Self::LOCAL_ZERO_MASK
    }
}
