//! The fuzz pager: a thread of the root's space (priority 254) that never blocks on a fuzz
//! thread. It serves
//! * page faults: pages of the root's image are mapped from the root (the fuzz spaces run the
//!   root's image); a data access anywhere else in the user area gets one of the scratch pages
//!   (so string copies to random addresses complete); instruction fetches outside the image
//!   and a thread faulting on the same address over and over are not answered (the thread
//!   stays blocked until the supervisor restarts it);
//! * exceptions: the reply restarts the thread at the fuzz entry point on its own stack;
//! * the root's start requests: the start-up message (IP, SP) for a new fuzz thread.
//!
//! Every reply is sent with timeout zero. Messages from anyone else are ignored.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::items::MapItem;
use abi::msgtag::labels;
use abi::{Fpage, MsgTag, Rights, ThreadId, Time, Timeouts};
use l4::{syscall, utcb};

use super::{N, PAGER_NO, PAGER_SLOT, index_of, pager_id, stack_top};
use crate::tests::util;

const START_REQ: u64 = 0x57A8;
/// Scratch pages for faults outside the image (shared by every fuzz space).
pub const SCRATCH: usize = 8;
#[repr(C, align(4096))]
pub struct Scratch(pub [[u8; 4096]; SCRATCH]);
pub static mut SCRATCH_PAGES: Scratch = Scratch([[0; 4096]; SCRATCH]);

pub static FAULTS: AtomicU64 = AtomicU64::new(0);
pub static SCRATCH_FAULTS: AtomicU64 = AtomicU64::new(0);
pub static EXCEPTIONS: AtomicU64 = AtomicU64::new(0);
pub static UNSERVED: AtomicU64 = AtomicU64::new(0);
static UP: AtomicBool = AtomicBool::new(false);

/// Repeated faults per thread: (address, count).
static mut REPEAT: [(u64, u32); N] = [(0, 0); N];

fn map_reply(from_page: u64, to_addr: u64, rights: Rights) {
    let w =
        MapItem::new(Fpage::new_log2(from_page, 12).with_rights(rights), to_addr).to_words(false);
    utcb::set_mr(1, w[0]);
    utcb::set_mr(2, w[1]);
    utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
}

extern "C" fn pager_main() -> ! {
    let (start, end) = util::image();
    let root = util::root();
    let mut reply_to = ThreadId::NIL;
    loop {
        let r = util::reply_or_wait(reply_to);
        reply_to = ThreadId::NIL;
        if r.tag.error() {
            continue;
        }
        let (from, tag) = (r.from, r.tag);
        // Same-space senders appear by their local id: only the root's space has those here.
        if (from == root || from.is_local()) && tag.label() == START_REQ && tag.untyped() == 3 {
            let (t, ip, sp) = (ThreadId::from_raw(utcb::mr(1)), utcb::mr(2), utcb::mr(3));
            utcb::set_mr(1, ip);
            utcb::set_mr(2, sp);
            utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
            let ok = !syscall::ipc(
                t,
                ThreadId::NIL,
                Timeouts::new(Time::period_micros(500_000), Time::NEVER),
            )
            .tag
            .error();
            let code = if ok { 0 } else { utcb::error_code() };
            utcb::set_mr(1, ok as u64);
            utcb::set_mr(2, code);
            utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
            reply_to = from;
            continue;
        }
        let Some(i) = index_of(from) else {
            continue;
        };
        if tag.label() & !0xF == labels::PAGE_FAULT && tag.untyped() == 2 {
            FAULTS.fetch_add(1, Ordering::Relaxed);
            let addr = utcb::mr(1);
            let page = addr & !0xFFF;
            // SAFETY: REPEAT is touched by this thread only.
            let rep = unsafe { &mut REPEAT[i] };
            if rep.0 == page {
                rep.1 += 1;
            } else {
                *rep = (page, 0);
            }
            if rep.1 > 16 {
                UNSERVED.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if page >= start && page < end {
                map_reply(page, page, Rights::FULL);
                reply_to = from;
            } else if tag.label() & 1 == 0 && page < 0x0000_7FFF_FFFF_F000 {
                SCRATCH_FAULTS.fetch_add(1, Ordering::Relaxed);
                // SAFETY: only the address is taken.
                let base = unsafe { &raw const SCRATCH_PAGES.0 as u64 };
                let k = (page >> 12) % SCRATCH as u64;
                map_reply(base + 4096 * k, page, Rights::RW);
                reply_to = from;
            } else {
                UNSERVED.fetch_add(1, Ordering::Relaxed);
            }
        } else if tag.label() & !0xF == labels::EXCEPTION
            && tag.untyped() == abi::exception::EXCEPTION_MSG_UNTYPED
        {
            EXCEPTIONS.fetch_add(1, Ordering::Relaxed);
            for m in 1..=18 {
                utcb::set_mr(m, 0);
            }
            utcb::set_mr(abi::exception::MR_RIP, util::entry(super::ops::worker_main));
            utcb::set_mr(abi::exception::MR_RSP, stack_top(i));
            utcb::set_mr(abi::exception::MR_RFLAGS, 0x202);
            utcb::set_mr(0, MsgTag::new(0, 18, 0).raw());
            reply_to = from;
        }
    }
}

/// Creates the pager thread once (priority 254).
pub fn ensure() -> bool {
    if UP.load(Ordering::SeqCst) {
        return true;
    }
    let p = pager_id();
    let me = util::root();
    if syscall::thread_control(p, me, me, me, util::slot(PAGER_SLOT)) != 1 {
        l4::println!(
            "fuzz: pager thread not created: error {}",
            utcb::error_code()
        );
        return false;
    }
    util::set_prio(p, 254);
    if l4::thread::start(p, stack_top(N), util::entry(pager_main)).is_nil() {
        return false;
    }
    let _ = PAGER_NO;
    UP.store(true, Ordering::SeqCst);
    true
}

/// Asks the pager to send `t` its start-up message; Ok(0) = delivered, Ok(code) = the IPC
/// error the pager saw, Err = the pager did not answer.
pub fn start(t: ThreadId, ip: u64, sp: u64) -> Result<u64, u64> {
    utcb::set_mrs(1, &[t.raw(), ip, sp]);
    utcb::set_mr(0, MsgTag::new(START_REQ, 3, 0).raw());
    let p = pager_id();
    let r = syscall::ipc(
        p,
        p,
        // Generous (the pager answers at once; a loaded host may stop the guest for seconds).
        Timeouts::new(
            Time::period_micros(60_000_000),
            Time::period_micros(60_000_000),
        ),
    );
    if r.tag.error() {
        return Err(utcb::error_code());
    }
    Ok(if utcb::mr(1) == 1 { 0 } else { utcb::mr(2) })
}
