//! Memory (spec 2.4, 5.8, 6.2): map items with rights reduction, transitive revocation by
//! Unmap, flush, status bits, grant, and items aimed at the KIP/UTCB areas or beyond user space.
//!
//! A helper thread in the root's space (pager = root) receives mappings from the root at other
//! addresses and touches them; each fault it takes arrives at the root as page-fault IPC, which
//! is how the checks observe what is mapped. Each check function starts its own helper
//! ([`setup`]) with a thread, slot, stack and two windows from its [`Cx`].

use core::sync::atomic::{AtomicU64, Ordering};

use abi::items::{GrantItem, MapItem};
use abi::msgtag::labels;
use abi::{Acceptor, Fpage, MsgTag, Rights, ThreadId, Time};
use l4::{kip, msg, syscall, utcb};

use crate::conformance::{Check, Cx, start_local};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "memory.map_and_rights",
        run: map_and_rights,
    },
    Check {
        name: "memory.grant_delivers_page",
        run: grant,
    },
    Check {
        name: "memory.map_item_malformed",
        run: malformed,
    },
    Check {
        name: "memory.map_into_utcb_area_ignored",
        run: into_utcb_area,
    },
    Check {
        name: "memory.kip_readable",
        run: kip_readable,
    },
];

#[repr(C, align(4096))]
struct Pages([[u64; 512]; 2]);
static mut PAGES: Pages = Pages([[0; 512]; 2]);

/// The second window (in the root's space) of the running check, where the helper accepts
/// a map or grant (the first is only named in the root's commands).
static WIN2: AtomicU64 = AtomicU64::new(0);

/// Commands from the root to the helper: MR1 = 1 read / 2 write at MR2; reply MR1 = value.
static LAST: AtomicU64 = AtomicU64::new(0);

extern "C" fn helper() -> ! {
    let root = ThreadId::global(kip::thread_info().user_base() + 2, 1);
    loop {
        let Ok(_) = msg::receive(root) else { continue };
        let (op, addr) = (utcb::mr(1), utcb::mr(2));
        let v = match op {
            // SAFETY: deliberate accesses to windows the root maps (or not) for this test; a
            // fault goes to the root as page-fault IPC.
            1 => unsafe { core::ptr::read_volatile(addr as *const u64) },
            2 => {
                // SAFETY: as above.
                unsafe { core::ptr::write_volatile(addr as *mut u64, 0xD1D1) };
                0xD1D1
            }
            3 => {
                // Accept a map/grant from the root into WIN2 and report the first word.
                let win2 = WIN2.load(Ordering::SeqCst);
                msg::accept(Acceptor::map_grant(Fpage::new_log2(win2, 20)));
                utcb::set_mr(0, 0);
                let _ = msg::send(root);
                let _ = msg::receive(root);
                msg::accept(Acceptor::UNTYPED_WORDS);
                // SAFETY: the root just mapped or granted a page at WIN2.
                unsafe { core::ptr::read_volatile(win2 as *const u64) }
            }
            _ => 0,
        };
        LAST.store(v, Ordering::SeqCst);
        utcb::set_mr(1, v);
        utcb::set_mr(0, MsgTag::new(0, 1, 0).raw());
        let _ = msg::send(root);
    }
}

/// Asks the helper to access `addr`; returns Ok(value) or Err(page-fault access bits) if the
/// access faulted to us (the fault is then resolved with `resolve`, or the helper is left
/// blocked if `resolve` is `None`).
fn access(h: ThreadId, op: u64, addr: u64, resolve: Option<(u64, Rights)>) -> Result<u64, u64> {
    utcb::set_mr(1, op);
    utcb::set_mr(2, addr);
    utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
    if msg::send(h).is_err() {
        return Err(0xFF);
    }
    let Ok(tag) = msg::receive_timeout(h, Time::period_micros(500_000)) else {
        return Err(0xFE);
    };
    if tag.label() & !0xF == labels::PAGE_FAULT {
        let rwx = tag.label() & 7;
        if let Some((src, rights)) = resolve {
            reply_map(h, src, addr & !0xFFF, rights, false);
            let _ = msg::receive_timeout(h, Time::period_micros(500_000));
        }
        return Err(rwx);
    }
    Ok(utcb::mr(1))
}

fn reply_map(h: ThreadId, src: u64, dst: u64, rights: Rights, grant: bool) {
    let f = Fpage::new_log2(src, 12).with_rights(rights);
    let w = if grant {
        GrantItem::new(f, dst).to_words(false)
    } else {
        MapItem::new(f, dst).to_words(false)
    };
    utcb::set_mr(1, w[0]);
    utcb::set_mr(2, w[1]);
    utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
    let _ = msg::send(h);
}

fn unmap(fpage: Fpage, flush: bool) -> u64 {
    utcb::set_mr(0, fpage.raw());
    syscall::unmap(if flush { 0x40 } else { 0 });
    utcb::mr(0) & 7
}

/// The helper of one check, the two test pages and the first window.
struct Setup {
    h: ThreadId,
    p0: u64,
    p1: u64,
    win: u64,
}

/// Starts the helper (reports `memory.helper` if it cannot) with fresh windows.
fn setup(s: &mut Cx) -> Option<Setup> {
    let h = s.thread();
    let (loc, top) = (s.slot(), s.stack());
    let win = s.range(20);
    WIN2.store(s.range(20), Ordering::SeqCst);
    // SAFETY: the test pages are written before anything else touches them.
    let (p0, p1) = unsafe {
        let pages = &raw mut PAGES;
        (*pages).0[0][0] = 0xAAAA_0000;
        (*pages).0[1][0] = 0xBBBB_0000;
        (
            &raw const (*pages).0[0] as u64,
            &raw const (*pages).0[1] as u64,
        )
    };
    if !start_local(h, loc, top, None, helper) {
        s.check(
            "memory.helper",
            false,
            format_args!("ThreadControl error {}", utcb::error_code()),
        );
        return None;
    }
    Some(Setup { h, p0, p1, win })
}

/// Map items with rights reduction, status bits, Unmap of derived mappings and of rights.
fn map_and_rights(s: &mut Cx) {
    let Some(Setup { h, p0, win, .. }) = setup(s) else {
        return;
    };

    // An unmapped window faults to the pager (us) with the right access bits.
    let r = access(h, 1, win, Some((p0, Rights::R)));
    s.check(
        "memory.read_fault_to_pager",
        r == Err(4),
        format_args!("{r:?}"),
    );
    let v = LAST.load(Ordering::SeqCst);
    s.check(
        "memory.map_item_resolves_fault",
        v == 0xAAAA_0000,
        format_args!("read {v:#x}"),
    );
    // Mapped read-only: a write faults (rights reduction).
    let r = access(h, 2, win, None);
    s.check(
        "memory.read_only_map_write_faults",
        r == Err(2),
        format_args!("{r:?}"),
    );
    // Resolve that write fault with a read-write map of the same page: the helper's write lands.
    reply_map(h, p0, win, Rights::RW, false);
    let _ = msg::receive_timeout(h, Time::period_micros(500_000));
    // SAFETY: our own page, written by the helper through its derived mapping.
    let seen = unsafe { core::ptr::read_volatile(p0 as *const u64) };
    s.check(
        "memory.write_through_derived_mapping",
        seen == 0xD1D1,
        format_args!("page word {seen:#x}"),
    );

    // Status bits: the derived mapping was read and written.
    let st = unmap(Fpage::new_log2(p0, 12), false);
    s.check(
        "memory.unmap_reports_referenced_written",
        st & 6 == 6,
        format_args!("status {st:#x}"),
    );
    // Unmap without flush revokes the derived mapping, not ours.
    let st2 = unmap(Fpage::new_log2(p0, 12).with_rights(Rights::FULL), false);
    let _ = st2;
    let r = access(h, 1, win, Some((p0, Rights::RW)));
    s.check(
        "memory.unmap_revokes_derived",
        r == Err(4),
        format_args!("{r:?}"),
    );
    // SAFETY: our own mapping stays.
    let mine = unsafe { core::ptr::read_volatile(p0 as *const u64) };
    s.check(
        "memory.unmap_keeps_own_mapping",
        mine == 0xD1D1,
        format_args!("{mine:#x}"),
    );
    // Reducing rights to read-only (revoke W) on the derived mapping: writes fault again.
    unmap(Fpage::new_log2(p0, 12).with_rights(Rights::W), false);
    let r = access(h, 2, win, Some((p0, Rights::RW)));
    s.check(
        "memory.unmap_write_right_only",
        r == Err(2),
        format_args!("{r:?}"),
    );
}

/// Grant: the helper accepts into its second window; the page moves (our mapping of p1
/// disappears; sigma0 maps it again when the root next touches it).
fn grant(s: &mut Cx) {
    let Some(Setup { h, p1, .. }) = setup(s) else {
        return;
    };
    utcb::set_mr(1, 3);
    utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
    let _ = msg::send(h);
    let _ = msg::receive_timeout(h, Time::period_micros(500_000));
    reply_map(h, p1, 0, Rights::FULL, true);
    let got = msg::receive_timeout(h, Time::period_micros(500_000)).map(|_| utcb::mr(1));
    s.check(
        "memory.grant_delivers_page",
        got == Ok(0xBBBB_0000),
        format_args!("{got:?}"),
    );
}

/// Malformed map items are ignored: the helper's access faults again each time.
fn malformed(s: &mut Cx) {
    let Some(Setup { h, p0, win, .. }) = setup(s) else {
        return;
    };
    let bad: [(u64, u64, &str); 3] = [
        (
            Fpage::new_log2(p0, 10).with_rights(Rights::FULL).raw(),
            win + 0x3000,
            "memory.map_item_below_4k_ignored",
        ),
        (
            Fpage::new_log2(0xFFFF_FFFF_8010_0000, 12)
                .with_rights(Rights::FULL)
                .raw(),
            win + 0x6000,
            "memory.map_item_kernel_source_ignored",
        ),
        (
            Fpage::new_log2(p0, 12).with_rights(Rights::NONE).raw(),
            win + 0x7000,
            "memory.map_item_no_rights_ignored",
        ),
    ];
    for (fp, at, name) in bad {
        let r = access(h, 1, at, None);
        if r != Err(4) {
            s.check(name, false, format_args!("first access {r:?}"));
            continue;
        }
        let w = MapItem::new(Fpage::from_raw(fp), at).to_words(false);
        utcb::set_mr(1, w[0]);
        utcb::set_mr(2, w[1]);
        utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
        let _ = msg::send(h);
        // The helper retries and faults again: nothing was mapped.
        let again = msg::receive_timeout(h, Time::period_micros(500_000));
        let ok = again.is_ok_and(|t| t.label() & !0xF == labels::PAGE_FAULT)
            && utcb::mr(1) & !0xFFF == at;
        s.check(name, ok, format_args!("{:?}", again.map(|t| t.raw())));
        // Resolve it for real so the helper continues.
        reply_map(h, p0, at, Rights::R, false);
        let _ = msg::receive_timeout(h, Time::period_micros(500_000));
    }
}

/// A map item aimed at our own UTCB area is ignored: our UTCB keeps working.
fn into_utcb_area(s: &mut Cx) {
    let Some(Setup { h, p0, win, .. }) = setup(s) else {
        return;
    };
    let me = utcb::my_global_id();
    let utcb_page = utcb::my_local_id().raw() & !0xFFF;
    let r = access(h, 1, win + 0x5000, None);
    if r == Err(4) {
        let w = MapItem::new(Fpage::new_log2(p0, 12).with_rights(Rights::FULL), utcb_page)
            .to_words(false);
        utcb::set_mr(1, w[0]);
        utcb::set_mr(2, w[1]);
        utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
        // The helper's acceptor is the whole space, so SndBase picks the UTCB page.
        let _ = msg::send(h);
        let again = msg::receive_timeout(h, Time::period_micros(500_000));
        s.check(
            "memory.map_into_utcb_area_ignored",
            again.is_ok() && utcb::my_global_id() == me,
            format_args!("{:?}", again.map(|t| t.raw())),
        );
        reply_map(h, p0, win + 0x5000, Rights::R, false);
        let _ = msg::receive_timeout(h, Time::period_micros(500_000));
    }
}

/// The KIP area is readable by the helper without a fault.
fn kip_readable(s: &mut Cx) {
    let Some(Setup { h, .. }) = setup(s) else {
        return;
    };
    let kip_area = kip::kip_address();
    let r = access(h, 1, kip_area, None);
    s.check("memory.kip_readable", r.is_ok(), format_args!("{r:?}"));
}
