//! The sigma0 protocol (spec 6.7): request labels, the "any page" marker and the shape of
//! requests and replies.
//!
//! Requests have t = 0 and u = 2 or 3; sigma0 dispatches on label bits 4..47
//! ([`crate::msgtag::protocol`]). RPC request: MR1 = fpage (base, log2 size; rights
//! ignored), MR2 = memory attributes (0 = default), MR3 = high address bits (32-bit only).
//! Reply: label 0, u = 0, t = 2: one map item (RWX, SndBase = physical address), or a nil
//! map item on failure.

use crate::fpage::{Fpage, Rights};
use crate::items::MapItem;
use crate::msgtag::{MsgTag, labels};

/// Label of a sigma0 RPC request (`-6<<4`) (spec 6.7).
pub const LABEL_RPC: u64 = labels::SIGMA0;
/// Label of a page fault sigma0 serves for the root task (spec 6.7).
pub const LABEL_PAGE_FAULT: u64 = labels::PAGE_FAULT;
/// Label of the extension request (`-1001<<4`) (spec 6.7).
pub const LABEL_EXTENSION: u64 = labels::SIGMA0_EXT;
/// Label of an IO page fault (spec 6.7).
pub const LABEL_IO_PAGE_FAULT: u64 = labels::IO_PAGE_FAULT;

/// Extension MR1 value: set verbosity to MR2 (spec 6.7).
pub const EXT_SET_VERBOSITY: u64 = 1;
/// Extension MR1 value: dump pools, reply if MR2 != 0 (spec 6.7).
pub const EXT_DUMP: u64 = 2;

/// Untyped words of an RPC request (fpage, attributes) (spec 6.7).
pub const RPC_UNTYPED: u64 = 2;
/// Untyped words of an RPC request with high address bits (32-bit only) (spec 6.7).
pub const RPC_UNTYPED_EXTENDED: u64 = 3;

/// Base bits (10–63) of an "any page of this size" request: all ones (spec 6.7).
pub const ANY_PAGE_BASE_BITS: u64 = !0x3FF;

/// Request tag for an RPC (`L4_Sigma0_GetPage`) (spec 6.7).
pub const fn rpc_tag() -> MsgTag {
    MsgTag::new(LABEL_RPC, RPC_UNTYPED, 0)
}

/// The fpage asking for any free page of 2^`size_log2` bytes (`L4_Sigma0_GetAny`):
/// base bits all ones (spec 6.7).
pub const fn any_page(size_log2: u64) -> Fpage {
    Fpage(ANY_PAGE_BASE_BITS | ((size_log2 & 0x3F) << 4))
}

/// Whether a requested fpage is an "any page" request: `(raw >> 10) == !0 >> 10` (spec 6.7).
pub const fn is_any_page(fpage: Fpage) -> bool {
    fpage.0 >> 10 == u64::MAX >> 10
}

/// Whether `tag` has the shape sigma0 serves: t = 0, u = 2 or 3 (spec 6.7).
pub const fn is_valid_request(tag: MsgTag) -> bool {
    tag.typed() == 0 && (tag.untyped() == 2 || tag.untyped() == 3)
}

/// Reply tag: label 0, u = 0, t = 2 (spec 6.7).
pub const fn reply_tag() -> MsgTag {
    MsgTag::new(0, 0, 2)
}

/// The reply map item for granted ports (IO page fault or IO-fpage request, spec 6.6/6.7):
/// the IO fpage, SndBase = its first port (bits 10-63 only survive; ports are not translated,
/// so the kernel ignores it).
pub const fn io_reply_item(io: crate::fpage::IoFpage) -> MapItem {
    MapItem::new(io.fpage(), io.port())
}

/// The reply map item for a granted page at `phys` of 2^`size_log2` bytes: full rights,
/// SndBase = physical address (spec 6.7).
pub const fn reply_item(phys: u64, size_log2: u64) -> MapItem {
    MapItem::new(
        Fpage::new_log2(phys, size_log2).with_rights(Rights::FULL),
        phys,
    )
}
