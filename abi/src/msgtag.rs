//! The message tag, MR0 of every message (spec 2.2), and the well-known labels of
//! kernel-generated messages and standard protocols (spec 6).
//!
//! Layout: u = bits 0–5, t = bits 6–11, flags p/r/x/e = bits 12–15, label = bits 16–63
//! (48 bits). Labels are written in the X.2 convention `(-n) << 4`, truncated to 48 bits.
//! Protocol dispatch (sigma0, libl4) ignores the low 4 label bits: see [`protocol`].

/// A message tag word (spec 2.2).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MsgTag(pub u64);

/// Flag bits of the tag's flags nibble, as libl4 numbers them after `>> 12` (spec 2.2).
pub mod flags {
    /// p: propagation requested / message was propagated.
    pub const PROPAGATED: u64 = 1;
    /// r: redirected (kernel sets it on receive; Pistachio never does).
    pub const REDIRECTED: u64 = 2;
    /// x: cross-processor IPC.
    pub const XCPU: u64 = 4;
    /// e: IPC failed; details in the ErrorCode TCR.
    pub const ERROR: u64 = 8;
}

const U_MASK: u64 = 0x3F;
const T_SHIFT: u32 = 6;
const FLAGS_SHIFT: u32 = 12;
const LABEL_SHIFT: u32 = 16;
/// Width mask of a label (48 bits, spec 2.2).
pub const LABEL_MASK: u64 = 0xFFFF_FFFF_FFFF;

impl MsgTag {
    /// The nil tag (`L4_Niltag`, spec 2.2).
    pub const NIL: Self = Self(0);
    /// Tag with only the error flag set (`0x8000`, spec 2.2).
    pub const ERROR_ONLY: Self = Self(flags::ERROR << FLAGS_SHIFT);

    /// Tag with a 48-bit `label`, `u` untyped words and `t` typed words, no flags. Fields
    /// are truncated to their widths (spec 2.2).
    pub const fn new(label: u64, u: u64, t: u64) -> Self {
        Self(((label & LABEL_MASK) << LABEL_SHIFT) | ((t & U_MASK) << T_SHIFT) | (u & U_MASK))
    }

    /// Wraps a raw word (spec 2.2).
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw word (spec 2.2).
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// u: number of untyped words MR1..MRu (spec 2.2).
    pub const fn untyped(self) -> u64 {
        self.0 & U_MASK
    }

    /// t: number of typed-item words after the untyped words (spec 2.2).
    pub const fn typed(self) -> u64 {
        (self.0 >> T_SHIFT) & U_MASK
    }

    /// u + t: message words after MR0 (spec 2.2). The kernel must check `words() < 64`.
    pub const fn words(self) -> u64 {
        self.untyped() + self.typed()
    }

    /// The 48-bit label (spec 2.2).
    pub const fn label(self) -> u64 {
        self.0 >> LABEL_SHIFT
    }

    /// The flags nibble (bits 12–15) as a value 0..=15, see [`flags`] (spec 2.2).
    pub const fn flags(self) -> u64 {
        (self.0 >> FLAGS_SHIFT) & 0xF
    }

    /// Replaces the flags nibble with `flags & 0xF` (spec 2.2).
    pub const fn with_flags(self, flags: u64) -> Self {
        Self((self.0 & !(0xF << FLAGS_SHIFT)) | ((flags & 0xF) << FLAGS_SHIFT))
    }

    /// Replaces the label (spec 2.2).
    pub const fn with_label(self, label: u64) -> Self {
        Self((self.0 & 0xFFFF) | ((label & LABEL_MASK) << LABEL_SHIFT))
    }

    /// Replaces u (spec 2.2).
    pub const fn with_untyped(self, u: u64) -> Self {
        Self((self.0 & !U_MASK) | (u & U_MASK))
    }

    /// Replaces t (spec 2.2).
    pub const fn with_typed(self, t: u64) -> Self {
        Self((self.0 & !(U_MASK << T_SHIFT)) | ((t & U_MASK) << T_SHIFT))
    }

    /// p flag (spec 2.2).
    pub const fn propagated(self) -> bool {
        self.flags() & flags::PROPAGATED != 0
    }

    /// r flag (spec 2.2).
    pub const fn redirected(self) -> bool {
        self.flags() & flags::REDIRECTED != 0
    }

    /// x flag (spec 2.2).
    pub const fn xcpu(self) -> bool {
        self.flags() & flags::XCPU != 0
    }

    /// e flag: the IPC failed (`L4_IpcFailed`, spec 2.2).
    pub const fn error(self) -> bool {
        self.flags() & flags::ERROR != 0
    }

    /// Sets or clears the e flag (spec 2.2).
    pub const fn with_error(self, error: bool) -> Self {
        let f = self.flags() & !flags::ERROR;
        self.with_flags(if error { f | flags::ERROR } else { f })
    }

    /// Sets or clears the p flag (spec 2.2).
    pub const fn with_propagated(self, p: bool) -> Self {
        let f = self.flags() & !flags::PROPAGATED;
        self.with_flags(if p { f | flags::PROPAGATED } else { f })
    }

    /// The tag as delivered to a receiver: r, x, e cleared, p kept (spec 2.2).
    pub const fn clear_receive_flags(self) -> Self {
        self.with_flags(self.flags() & flags::PROPAGATED)
    }

    /// The label's protocol part (bits 4..47), see [`protocol`] (spec 6).
    pub const fn protocol(self) -> u64 {
        protocol(self.label())
    }
}

/// The protocol part of a label: `label & !0xF`, i.e. label bits 4..47, which is what
/// sigma0 and libl4 dispatch on (spec 6).
pub const fn protocol(label: u64) -> u64 {
    label & LABEL_MASK & !0xF
}

/// 48-bit labels of kernel-generated messages and standard protocols (spec 6), i.e.
/// `((-n) << 4) & 0xFFFF_FFFF_FFFF`. Low 4 bits are zero unless a protocol puts data
/// there (page faults: rwx).
pub mod labels {
    const fn neg(n: u64) -> u64 {
        (0u64.wrapping_sub(n) << 4) & super::LABEL_MASK
    }
    /// Interrupt, `-1<<4` (spec 6.5).
    pub const INTERRUPT: u64 = neg(1);
    /// Page fault, `-2<<4`; low 4 bits carry the access rwx (spec 6.2).
    pub const PAGE_FAULT: u64 = neg(2);
    /// Preemption, `-3<<4` (spec 6.4).
    pub const PREEMPTION: u64 = neg(3);
    /// Architecture-specific exception, `-4<<4` (spec 6; not generated on amd64).
    pub const ARCH_EXCEPTION: u64 = neg(4);
    /// Exception, `-5<<4` (spec 6.3).
    pub const EXCEPTION: u64 = neg(5);
    /// Sigma0 RPC, `-6<<4` (spec 6.7).
    pub const SIGMA0: u64 = neg(6);
    /// IO page fault, `-8<<4`; low bits carry rwx (spec 6.6).
    pub const IO_PAGE_FAULT: u64 = neg(8);
    /// Sigma0 extension (verbosity/dump), `-1001<<4` (spec 6.7).
    pub const SIGMA0_EXT: u64 = neg(1001);
}
