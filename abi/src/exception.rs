//! Kernel-generated messages (spec 6.1–6.5): exception IPC register order for amd64,
//! page-fault, interrupt and preemption tags, and the thread start-up message.
//!
//! **Exception message length: u = 19**, exactly as Pistachio sends it ([`EXCEPTION_MSG_UNTYPED`]).
//! The spec allows 20 as a compatible superset (MR20 = hardware error code), but binaries
//! tested against Pistachio may check the tag, so we match it; the kernel still writes MR20
//! into the faulting thread's MRs (like Pistachio) where a handler in the same space could
//! look. On the reply, MR1..MR18 are written back (RFLAGS through
//! [`crate::exregs::USER_FLAGS_MASK`]); MR19/MR20 are ignored.

use crate::msgtag::{MsgTag, labels};

/// MR1: RIP (spec 6.3).
pub const MR_RIP: usize = 1;
/// MR2: RBX.
pub const MR_RBX: usize = 2;
/// MR3: R10.
pub const MR_R10: usize = 3;
/// MR4: R12.
pub const MR_R12: usize = 4;
/// MR5: R13.
pub const MR_R13: usize = 5;
/// MR6: R14.
pub const MR_R14: usize = 6;
/// MR7: R15.
pub const MR_R15: usize = 7;
/// MR8: RAX.
pub const MR_RAX: usize = 8;
/// MR9: RCX.
pub const MR_RCX: usize = 9;
/// MR10: RDX.
pub const MR_RDX: usize = 10;
/// MR11: RSI.
pub const MR_RSI: usize = 11;
/// MR12: RDI.
pub const MR_RDI: usize = 12;
/// MR13: RBP.
pub const MR_RBP: usize = 13;
/// MR14: R8.
pub const MR_R8: usize = 14;
/// MR15: R9.
pub const MR_R9: usize = 15;
/// MR16: R11.
pub const MR_R11: usize = 16;
/// MR17: RSP.
pub const MR_RSP: usize = 17;
/// MR18: RFLAGS.
pub const MR_RFLAGS: usize = 18;
/// MR19: exception number (x86 vector).
pub const MR_VECTOR: usize = 19;
/// MR20: hardware error code (not transferred with u = 19).
pub const MR_ERROR_CODE: usize = 20;
/// Last MR a reply may write back into registers (RFLAGS) (spec 6.3).
pub const MR_LAST_WRITABLE: usize = MR_RFLAGS;

/// Untyped words of an exception IPC: 19, as Pistachio (see module header, spec 6.3).
pub const EXCEPTION_MSG_UNTYPED: u64 = 19;

/// Exception IPC tag: label `-5<<4`, u = 19, t = 0 (spec 6.3).
pub const fn exception_tag() -> MsgTag {
    MsgTag::new(labels::EXCEPTION, EXCEPTION_MSG_UNTYPED, 0)
}

/// Access bits of a page fault (same values as fpage rights) (spec 6.2).
pub mod access {
    /// Read.
    pub const READ: u64 = 4;
    /// Write.
    pub const WRITE: u64 = 2;
    /// Instruction fetch.
    pub const EXECUTE: u64 = 1;
}

/// Page-fault tag: label `(-2<<4) | rwx`, u = 2, t = 0; MR1 = address, MR2 = IP
/// (spec 6.2).
pub const fn pagefault_tag(rwx: u64) -> MsgTag {
    MsgTag::new(labels::PAGE_FAULT | (rwx & 7), 2, 0)
}

/// IO page-fault tag: label `(-8<<4) | rwx`, u = 2; MR1 = IO fpage, MR2 = IP (spec 6.6).
pub const fn io_pagefault_tag(rwx: u64) -> MsgTag {
    MsgTag::new(labels::IO_PAGE_FAULT | (rwx & 7), 2, 0)
}

/// Whether `tag` is a page-fault message; returns the rwx bits (spec 6.2).
pub const fn pagefault_access(tag: MsgTag) -> Option<u64> {
    if tag.protocol() == labels::PAGE_FAULT {
        Some(tag.label() & 7)
    } else {
        None
    }
}

/// Interrupt tag: label `-1<<4`, u = t = 0 (spec 6.5).
pub const fn interrupt_tag() -> MsgTag {
    MsgTag::new(labels::INTERRUPT, 0, 0)
}

/// Preemption tag: label `-3<<4`, u = 2; MR1 = clock low word, MR2 = high word (0)
/// (spec 6.4).
pub const fn preemption_tag() -> MsgTag {
    MsgTag::new(labels::PREEMPTION, 2, 0)
}

/// Thread start-up: a first message from the pager with exactly u = 2 sets IP = MR1 and
/// SP = MR2 (spec 6.1).
pub const START_MSG_UNTYPED: u64 = 2;
/// Start-up message MR holding the IP (spec 6.1).
pub const START_MR_IP: usize = 1;
/// Start-up message MR holding the SP (spec 6.1).
pub const START_MR_SP: usize = 2;

/// Tag of the start-up message a pager sends (label 0, u = 2) (spec 6.1).
pub const fn start_tag() -> MsgTag {
    MsgTag::new(0, START_MSG_UNTYPED, 0)
}

/// Whether a first message with `tag` carries an IP/SP (u == 2 exactly) (spec 6.1).
pub const fn is_start_message(tag: MsgTag) -> bool {
    tag.untyped() == START_MSG_UNTYPED
}
