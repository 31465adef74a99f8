//! Drop-in compatibility with the reference kernel (issue 14), two IPC behaviours:
//!
//! * compound receive strings: the C bit ("another receive string follows") is the one of the
//!   FIRST item of a compound receive string (libl4 sets it there and Pistachio reads it
//!   there; spec 2.5), so a second receive string after a compound one is used;
//! * a map or grant item sent to a receiver whose receive window is nil (e.g. acceptor 0,
//!   untyped words only) makes the IPC fail with message overflow for both parties, at the
//!   offset of the string bytes already copied in the message (spec 2.5); e.g. a sigma0 reply
//!   to a client that accepts untyped words only.
//!
//! A receiver thread `R` in the root's space takes its acceptor (MR1) and receive buffers
//! (MR2..) from a set-up message, receives one message from the root and reports its ErrorCode.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::items::{GrantItem, MapItem, StringHeader, simple_string};
use abi::{Fpage, MsgTag, Rights, ThreadId, Time, Timeouts};
use l4::{msg, syscall, utcb};

use super::util::root;
use crate::conformance::{Check, Cx, start_local};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "compat.items",
        run: items,
    },
    Check {
        name: "compat.sigma0",
        run: sigma0,
    },
];

#[repr(C, align(4096))]
struct Buf([u8; 4096]);
static mut SRC: Buf = Buf([0; 4096]);
static mut DST: Buf = Buf([0; 4096]);
/// A page of ours that is sent in map items.
static mut PAGE: Buf = Buf([0; 4096]);

/// The receiver's ErrorCode (0 = success) of its last receive.
static R_ERROR: AtomicU64 = AtomicU64::new(u64::MAX);

extern "C" fn receiver() -> ! {
    loop {
        let Ok(tag) = msg::receive(root()) else {
            continue;
        };
        let n = (tag.untyped() as usize).clamp(1, 16);
        let mut w = [0u64; 16];
        utcb::mrs(1, &mut w[..n]);
        for (i, &b) in w[..n].iter().enumerate() {
            utcb::set_br(i, b);
        }
        let r = syscall::ipc(ThreadId::NIL, root(), Timeouts::NEVER);
        R_ERROR.store(
            if r.tag.error() { utcb::error_code() } else { 0 },
            Ordering::SeqCst,
        );
        utcb::set_br(0, 0);
        utcb::set_mr(0, 0);
        let _ = msg::send(root());
    }
}

/// Sets the receiver's BR0.. to `brs`, sends it `items` (typed words after no untyped words)
/// and returns (sender ErrorCode, receiver ErrorCode), 0 meaning success.
fn transfer(r: ThreadId, brs: &[u64], items: &[u64]) -> (u64, u64) {
    R_ERROR.store(u64::MAX, Ordering::SeqCst);
    utcb::set_mrs(1, brs);
    utcb::set_mr(0, MsgTag::new(0, brs.len() as u64, 0).raw());
    let _ = msg::send(r);
    // The receiver is in its receive from us once it has set its buffers; a send with a long
    // timeout waits for that (no time window involved).
    utcb::set_mrs(1, items);
    utcb::set_mr(0, MsgTag::new(0x14, 0, items.len() as u64).raw());
    let res = syscall::ipc(
        r,
        ThreadId::NIL,
        Timeouts::new(Time::period_micros(2_000_000), Time::NEVER),
    );
    let se = if res.tag.error() {
        utcb::error_code()
    } else {
        0
    };
    let _ = msg::receive_timeout(r, Time::period_micros(2_000_000));
    (se, R_ERROR.load(Ordering::SeqCst))
}

const fn overflow(offset: u64, receive: bool) -> u64 {
    (offset << 4) | (4 << 1) | receive as u64
}

/// Compound receive strings and map/grant items against nil and real receive windows, with
/// a receiver thread (id, slot, stack and window from the check's [`Cx`]).
fn items(s: &mut Cx) {
    let r = s.thread();
    let (loc, sp) = (s.slot(), s.stack());
    let win = s.range(12);
    // SAFETY: our own buffers, touched before any other thread uses them.
    let (src, dst, page) = unsafe {
        let sp = &raw mut SRC.0;
        for (i, b) in (*sp).iter_mut().enumerate() {
            *b = i as u8;
        }
        let dp = &raw mut DST.0;
        (*dp)[0] = 0;
        let pp = &raw mut PAGE.0;
        (*pp)[0] = 1;
        (sp as u64, dp as u64, pp as u64)
    };
    let ok = start_local(r, loc, sp, None, receiver);
    s.check(
        "compat.helpers",
        ok,
        format_args!("error {}", utcb::error_code()),
    );
    if !ok {
        return;
    }

    // Compound receive string A (two items of 48 bytes, C set on the FIRST item only, as libl4
    // writes it), then a simple receive string B of 156 bytes. Send 96 then 160 bytes: A takes
    // the 96, B the first 156 of the 160: overflow at 96 + 156 = 252 on both sides.
    let a1 = StringHeader::new(48, 1)
        .with_compound(true)
        .with_more(true)
        .0;
    let a2 = StringHeader::new(48, 1).0;
    let b = StringHeader::new(156, 1).0;
    let brs = [1, a1, dst, a2, dst + 48, b, dst + 96];
    let mut items = [0u64; 4];
    items[..2].copy_from_slice(&simple_string(96, src));
    items[2..].copy_from_slice(&simple_string(160, src + 96));
    let (se, re) = transfer(r, &brs, &items);
    s.check_eq(
        "compat.compound_receive_c_bit_first_item_sender",
        se,
        overflow(252, false),
    );
    s.check_eq(
        "compat.compound_receive_c_bit_first_item_receiver",
        re,
        overflow(252, true),
    );
    // The same with a 156-byte second send string fits exactly: success.
    items[2..].copy_from_slice(&simple_string(156, src + 96));
    let (se, re) = transfer(r, &brs, &items);
    s.check(
        "compat.compound_receive_then_second_buffer_used",
        se == 0 && re == 0,
        format_args!("errors {se:#x}/{re:#x}"),
    );

    // A map item to a receiver that accepts untyped words only (acceptor 0).
    let map = MapItem::new(Fpage::new_log2(page, 12).with_rights(Rights::FULL), 0).to_words(false);
    let (se, re) = transfer(r, &[0], &map);
    s.check_eq("compat.map_to_nil_window_sender", se, overflow(0, false));
    s.check_eq("compat.map_to_nil_window_receiver", re, overflow(0, true));
    // A grant item likewise.
    let grant =
        GrantItem::new(Fpage::new_log2(page, 12).with_rights(Rights::FULL), 0).to_words(false);
    let (se, re) = transfer(r, &[0], &grant);
    s.check(
        "compat.grant_to_nil_window_overflow",
        se == overflow(0, false) && re == overflow(0, true),
        format_args!("errors {se:#x}/{re:#x}"),
    );
    // Strings accepted but no receive window: a 64-byte string, then a map item. The offset
    // counts the 64 string bytes already copied.
    let mut items = [0u64; 4];
    items[..2].copy_from_slice(&simple_string(64, src));
    items[2..].copy_from_slice(&map);
    let (se, re) = transfer(r, &[1, StringHeader::new(64, 1).0, dst], &items);
    s.check_eq(
        "compat.map_to_nil_window_offset_sender",
        se,
        overflow(64, false),
    );
    s.check_eq(
        "compat.map_to_nil_window_offset_receiver",
        re,
        overflow(64, true),
    );
    // With a receive window the same map item is delivered (success).
    let window = abi::Acceptor::map_grant(Fpage::new_log2(win, 12)).raw();
    let (se, re) = transfer(r, &[window], &map);
    s.check(
        "compat.map_to_window_ok",
        se == 0 && re == 0,
        format_args!("errors {se:#x}/{re:#x}"),
    );
}

/// The example: a sigma0 reply (one map item) to a client that accepts untyped
/// words only fails for the client with message overflow (receive phase); sigma0 shrugs it
/// off and serves the next request (the page stays the client's).
fn sigma0(s: &mut Cx) {
    let Ok(page) = l4::sigma0::get_any(12) else {
        s.check(
            "compat.sigma0_page_for_test",
            false,
            format_args!("no page"),
        );
        return;
    };
    let saved = utcb::accepted();
    utcb::accept(abi::Acceptor::UNTYPED_WORDS);
    utcb::set_mr(0, abi::sigma0::rpc_tag().raw());
    utcb::set_mr(1, page.raw());
    utcb::set_mr(2, 0);
    let s0 = l4::sigma0::sigma0_id();
    let res = syscall::ipc(s0, s0, Timeouts::NEVER);
    let err = if res.tag.error() {
        utcb::error_code()
    } else {
        0
    };
    utcb::accept(saved);
    s.check_eq(
        "compat.sigma0_reply_to_words_only_client_overflows",
        err,
        overflow(0, true),
    );
    s.check(
        "compat.sigma0_serves_after_failed_reply",
        l4::sigma0::get_page(page).is_ok(),
        format_args!("page {:#x}", page.raw()),
    );
}
