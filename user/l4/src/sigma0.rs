//! The sigma0 client (libl4 `sigma0.h`, spec 6.7): ask the root pager for physical memory.
//!
//! A request is a Call to sigma0 = (UserBase, 1) with label `-6<<4`, u = 2: MR1 = the
//! wanted fpage (base all ones = "any page of this size"), MR2 = memory attributes (0 =
//! default). Sigma0 answers with one map item mapping the page **at its physical address**
//! (SndBase = physical address) or a nil map item. We accept maps anywhere (acceptor =
//! complete address space), so the page appears at virtual = physical in our space.

use abi::sigma0::{any_page, rpc_tag};
use abi::{Acceptor, Fpage, MapItem, ThreadId};

use crate::{kip, msg, utcb};

/// Why a sigma0 request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sigma0Error {
    /// The IPC failed (ErrorCode attached).
    Ipc(msg::IpcFailure),
    /// Sigma0 refused: nil map item (or a malformed reply).
    Refused,
}

/// sigma0's thread id from the KIP: (UserBase, 1).
pub fn sigma0_id() -> ThreadId {
    kip::sigma0_id()
}

/// `L4_Sigma0_GetPage(nil, fpage)`: the physical memory `fpage` (rights ignored), mapped
/// read-write-execute at the same virtual address. Returns the received fpage.
pub fn get_page(fpage: Fpage) -> Result<Fpage, Sigma0Error> {
    request(sigma0_id(), fpage, 0)
}

/// `L4_Sigma0_GetAny(nil, size_log2)`: any free conventional page of 2^`size_log2` bytes.
pub fn get_any(size_log2: u64) -> Result<Fpage, Sigma0Error> {
    request(sigma0_id(), any_page(size_log2), 0)
}

/// IO-fpages (spec 6.6, 6.7): the 2^`log2_ports` ports from `port` (aligned down), mapped
/// into our space's I/O bitmap. sigma0 gives ports to the root server thread only.
pub fn get_io(port: u64, log2_ports: u64) -> Result<Fpage, Sigma0Error> {
    request(
        sigma0_id(),
        abi::IoFpage::new_log2(port, log2_ports).fpage(),
        0,
    )
}

/// The raw RPC: ask `s0` for `fpage` with memory attributes `attributes`.
pub fn request(s0: ThreadId, fpage: Fpage, attributes: u64) -> Result<Fpage, Sigma0Error> {
    let saved = utcb::accepted();
    utcb::accept(Acceptor::map_grant(Fpage::COMPLETE));
    utcb::set_mr(0, rpc_tag().raw());
    utcb::set_mr(1, fpage.raw());
    utcb::set_mr(2, attributes);
    let r = msg::call(s0);
    utcb::accept(saved);
    let tag = r.map_err(Sigma0Error::Ipc)?;
    if tag.typed() < 2 {
        return Err(Sigma0Error::Refused);
    }
    let at = 1 + tag.untyped() as usize;
    if at + 1 >= utcb::MR_COUNT {
        return Err(Sigma0Error::Refused);
    }
    match MapItem::from_words([utcb::mr(at), utcb::mr(at + 1)]) {
        Some(item) if !item.fpage.is_nil() => Ok(item.fpage),
        _ => Err(Sigma0Error::Refused),
    }
}
