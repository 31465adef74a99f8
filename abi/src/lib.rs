//! The L4 X.2 binary interface for x86-64 (Pistachio amd64 flavour).
//!
//! This crate owns every data format that crosses the user/kernel boundary: thread ids,
//! message tags, fpages, typed items, acceptors, time values, error codes, syscall
//! argument words, the Kernel Interface Page, the UTCB, kernel-generated messages, the
//! generic bootinfo and the sigma0 protocol. Each format is a `#[repr(transparent)]`
//! newtype over `u64` (or a `#[repr(C)]` struct) with named constructors and getters, so
//! neither the kernel nor the user library ever shifts or masks ABI words by hand.
//!
//! Rules kept throughout:
//! * every item cites the section of `shared/spec/x2-amd64.md` it implements;
//! * every decoder is total: any `u64` (or word/byte slice) decodes without panicking;
//! * encoders reproduce the reference libl4 bit for bit (see `tests/vectors.rs`);
//! * no `unsafe`, no allocation, `no_std`.

#![no_std]
#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod acceptor;
pub mod bootinfo;
pub mod error;
pub mod exception;
pub mod exregs;
pub mod fpage;
pub mod items;
pub mod kip;
pub mod msgtag;
pub mod sigma0;
pub mod syscall_args;
pub mod thread_id;
pub mod time;
pub mod utcb;

pub use acceptor::Acceptor;
pub use error::{IpcError, IpcErrorCode, IpcPhase, SyscallError};
pub use exregs::ExregsControl;
pub use fpage::{Fpage, IoFpage, Rights};
pub use items::{GrantItem, ItemError, MapItem, StringHeader, TypedItem, decode_typed};
pub use kip::{Kip, MemDesc, MemType};
pub use msgtag::MsgTag;
pub use thread_id::ThreadId;
pub use time::{Time, TimeSpec, Timeouts, XferTimeouts};
pub use utcb::Utcb;

/// Mask of the low `bits` bits (`bits` in 0..=64); `low_mask(64) == u64::MAX`.
pub(crate) const fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}
