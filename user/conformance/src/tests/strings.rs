//! String items (spec 2.5, 5.7.4, 5.7.6): simple and compound strings, scatter/gather, message
//! overflow with byte offsets, page faults in the receiver's buffers resolved by its pager
//! during the copy, and transfer timeouts assigned by the 5/6 rule.
//!
//! The receiver `R` runs in the root's space with a pager thread `PG` (also in the root's
//! space): PG maps pages of a root-owned pool at fault addresses in a window, and ignores
//! faults in a "black hole" region, so that transfer timeouts can expire. Each check function
//! starts both with [`helpers`] (threads, slots, stacks, window and hole from its [`Cx`]).

use core::sync::atomic::{AtomicU64, Ordering};

use abi::items::{MapItem, simple_string};
use abi::msgtag::labels;
use abi::{Fpage, MsgTag, Rights, ThreadId, Time, Timeouts, XferTimeouts};
use l4::{kip, msg, syscall, utcb};

use crate::conformance::{Check, Cx, start_local};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "strings.helpers",
        run: |cx| {
            helpers(cx);
        },
    },
    Check {
        name: "strings.simple",
        run: simple,
    },
    Check {
        name: "strings.gather_substrings",
        run: gather,
    },
    Check {
        name: "strings.scatter_substrings",
        run: scatter,
    },
    Check {
        name: "strings.overflow",
        run: overflow,
    },
    Check {
        name: "strings.not_accepted_overflow",
        run: not_accepted,
    },
    Check {
        name: "strings.kernel_address_refused",
        run: kernel_address,
    },
    Check {
        name: "strings.receiver_fault",
        run: receiver_fault,
    },
    Check {
        name: "strings.xfer_timeout",
        run: xfer_timeouts,
    },
    Check {
        name: "strings.abort_during_nested_fault",
        run: abort_during_nested_fault,
    },
    Check {
        name: "strings.sender_fault_resolved",
        run: sender_fault,
    },
];

#[repr(C, align(4096))]
struct Pool([[u8; 4096]; 8]);
static mut POOL: Pool = Pool([[0; 4096]; 8]);

#[repr(C, align(4096))]
struct Buf([u8; 8192]);
static mut SRC: Buf = Buf([0; 8192]);
static mut DST: Buf = Buf([0; 8192]);

/// Fault window served by the pager, and the black hole above it that it never answers
/// (ranges of the running check).
static WINDOW: AtomicU64 = AtomicU64::new(0);
static HOLE: AtomicU64 = AtomicU64::new(0);
/// The receiver of the running check (for the aborter).
static RECEIVER: AtomicU64 = AtomicU64::new(0);

static PG_FAULTS: AtomicU64 = AtomicU64::new(0);
static R_ERROR: AtomicU64 = AtomicU64::new(0);
static R_SUM: AtomicU64 = AtomicU64::new(0);
static R_MR: AtomicU64 = AtomicU64::new(0);

fn root() -> ThreadId {
    ThreadId::global(kip::thread_info().user_base() + 2, 1)
}

extern "C" fn pager() -> ! {
    loop {
        let Ok((from, tag)) = msg::wait() else {
            continue;
        };
        if tag.label() & !0xF != labels::PAGE_FAULT {
            continue;
        }
        let addr = utcb::mr(1) & !0xFFF;
        PG_FAULTS.fetch_add(1, Ordering::SeqCst);
        if addr >= HOLE.load(Ordering::SeqCst) {
            continue; // never answered: the transfer timeout decides
        }
        let idx = ((addr - WINDOW.load(Ordering::SeqCst)) / 4096 % 8) as usize;
        // SAFETY: only the address of the pool page is taken.
        let src = unsafe { &raw const POOL.0[idx] } as u64;
        let w =
            MapItem::new(Fpage::new_log2(src, 12).with_rights(Rights::FULL), addr).to_words(false);
        utcb::set_mr(1, w[0]);
        utcb::set_mr(2, w[1]);
        utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
        let _ = msg::send_timeout(from, Time::ZERO);
    }
}

/// Receiver: MR1 = buffer address, MR2 = buffer length (0 = no string acceptance), MR3 = its
/// XferTimeouts, MR4 = number of substrings of the buffer (scatter). Then receives one message
/// from the root and reports ErrorCode, a byte sum of the buffer and its MR1.
extern "C" fn receiver() -> ! {
    loop {
        let Ok(_) = msg::receive(root()) else {
            continue;
        };
        let (addr, len, xfer, parts) = (utcb::mr(1), utcb::mr(2), utcb::mr(3), utcb::mr(4).max(1));
        utcb::set_xfer_timeouts(XferTimeouts(xfer));
        if len == 0 {
            utcb::set_br(0, 0);
        } else {
            utcb::set_br(0, 1);
            let part = len / parts;
            utcb::set_br(1, abi::items::StringHeader::new(part, parts).0);
            for k in 0..parts {
                utcb::set_br(2 + k as usize, addr + k * part);
            }
        }
        let r = syscall::ipc(ThreadId::NIL, root(), Timeouts::NEVER);
        R_ERROR.store(
            if r.tag.error() { utcb::error_code() } else { 0 },
            Ordering::SeqCst,
        );
        R_MR.store(utcb::mr(1), Ordering::SeqCst);
        let mut sum = 0u64;
        if len != 0 && !r.tag.error() {
            for i in 0..len {
                // SAFETY: the buffer was just written by the string transfer (mapped).
                sum = sum.wrapping_add(
                    unsafe { core::ptr::read_volatile((addr + i) as *const u8) } as u64 * (i + 1),
                );
            }
        }
        R_SUM.store(sum, Ordering::SeqCst);
        utcb::set_br(0, 0);
        utcb::set_mr(0, 0);
        let _ = msg::send(root());
    }
}

/// Waits 30 ms, then aborts the receiver's IPC with ExchangeRegisters (R and S).
extern "C" fn aborter() -> ! {
    msg::sleep(Time::period_micros(30_000));
    let r = ThreadId::from_raw(RECEIVER.load(Ordering::SeqCst));
    syscall::exchange_registers(
        r,
        syscall::ExregsState {
            control: 6,
            ..Default::default()
        },
    );
    loop {
        let _ = msg::receive(utcb::my_global_id());
    }
}

fn expected_sum(len: u64) -> u64 {
    (0..len).fold(0u64, |s, i| s.wrapping_add(pattern(i) as u64 * (i + 1)))
}

fn pattern(i: u64) -> u8 {
    (i * 7 + 3) as u8
}

/// One transfer: configure the receiver, send `items` (string item words), collect results.
/// Returns (sender ErrorCode, receiver ErrorCode, receiver byte sum, receiver MR1).
fn transfer(
    r: ThreadId,
    buf: (u64, u64, u64),
    xfer: (u64, u64),
    items: &[u64],
) -> (u64, u64, u64, u64) {
    utcb::set_mr(1, buf.0);
    utcb::set_mr(2, buf.1);
    utcb::set_mr(3, xfer.1);
    utcb::set_mr(4, buf.2);
    utcb::set_mr(0, MsgTag::new(0, 4, 0).raw());
    let _ = msg::send(r);
    msg::sleep(Time::period_micros(2000));
    utcb::set_xfer_timeouts(XferTimeouts(xfer.0));
    utcb::set_mrs(1, items);
    utcb::set_mr(0, MsgTag::new(0x5, 0, items.len() as u64).raw());
    let res = syscall::ipc(
        r,
        ThreadId::NIL,
        Timeouts::new(Time::period_micros(500_000), Time::NEVER),
    );
    let se = if res.tag.error() {
        utcb::error_code()
    } else {
        0
    };
    let _ = msg::receive_timeout(r, Time::period_micros(1_000_000));
    utcb::set_xfer_timeouts(XferTimeouts(0));
    (
        se,
        R_ERROR.load(Ordering::SeqCst),
        R_SUM.load(Ordering::SeqCst),
        R_MR.load(Ordering::SeqCst),
    )
}

/// The receiver and its pager of one check, and the source and destination buffers.
struct Setup {
    r: ThreadId,
    src: u64,
    dst: u64,
}

/// Starts the pager thread and the receiver (prints `strings.helpers` when called as that
/// check, or on failure), fills the source buffer; None if the helpers did not start.
fn helpers(cx: &mut Cx) -> Option<Setup> {
    let (pg, r) = (cx.thread(), cx.thread());
    RECEIVER.store(r.raw(), Ordering::SeqCst);
    let window = cx.range(16);
    let hole = cx.range(16);
    WINDOW.store(window, Ordering::SeqCst);
    HOLE.store(hole, Ordering::SeqCst);
    // SAFETY: our buffers, written before any helper runs.
    let (src, dst) = unsafe {
        let sp = &raw mut SRC.0;
        for i in 0..8192u64 {
            (*sp)[i as usize] = pattern(i);
        }
        let dp = &raw mut DST.0;
        (*dp)[0] = 0;
        (*dp)[4096] = 0;
        (sp as u64, dp as u64)
    };
    let (l0, s0, l1, s1) = (cx.slot(), cx.stack(), cx.slot(), cx.stack());
    let ok =
        spawn_with_pager(pg, l0, s0, pager, root()) && spawn_with_pager(r, l1, s1, receiver, pg);
    msg::sleep(Time::period_micros(2000));
    if !ok || cx.name() == "strings.helpers" {
        cx.check(
            "strings.helpers",
            ok,
            format_args!("error {}", utcb::error_code()),
        );
    }
    ok.then_some(Setup { r, src, dst })
}

/// Creates `t` in the root's space with `pager`, its UTCB at `loc`, started at `f`.
fn spawn_with_pager(
    t: ThreadId,
    loc: u64,
    sp: u64,
    f: extern "C" fn() -> !,
    pager: ThreadId,
) -> bool {
    let me = root();
    if syscall::thread_control(t, me, me, pager, loc) != 1 {
        return false;
    }
    l4::thread::start(t, sp, f as usize as u64);
    true
}

/// A simple string into a mapped buffer.
fn simple(s: &mut Cx) {
    let Some(Setup { r, src, dst }) = helpers(s) else {
        return;
    };
    let (se, re, sum, mr1) = transfer(r, (dst, 256, 1), (0, 0), &simple_string(256, src));
    s.check(
        "strings.simple",
        se == 0 && re == 0 && sum == expected_sum(256),
        format_args!("errors {se:#x}/{re:#x} sum {sum}"),
    );
    s.check_eq(
        "strings.item_words_in_receiver_mrs",
        mr1,
        simple_string(256, src)[0],
    );
}

/// Gather: a compound send string (3 substrings of 64 bytes) into one buffer of 192.
fn gather(s: &mut Cx) {
    let Some(Setup { r, src, dst }) = helpers(s) else {
        return;
    };
    // Gather: a compound send string (3 substrings of 64 bytes) into one buffer of 192.
    let mut words = [0u64; 8];
    let n = match abi::items::StringItemWriter::new(&mut words, 64, src) {
        Ok(mut w) => {
            let _ = w.add_substring_address(src + 64);
            let _ = w.add_substring_address(src + 128);
            w.words()
        }
        Err(_) => 0,
    };
    let (se, re, sum, _) = transfer(r, (dst, 192, 1), (0, 0), &words[..n]);
    s.check(
        "strings.gather_substrings",
        se == 0 && re == 0 && sum == expected_sum(192),
        format_args!("errors {se:#x}/{re:#x} sum {sum} words {n}"),
    );
}

/// Scatter: one send string of 200 into a buffer of 4 substrings of 50.
fn scatter(s: &mut Cx) {
    let Some(Setup { r, src, dst }) = helpers(s) else {
        return;
    };
    // Scatter: one send string of 200 into a buffer of 4 substrings of 50.
    let (se, re, sum, _) = transfer(r, (dst, 200, 4), (0, 0), &simple_string(200, src));
    s.check(
        "strings.scatter_substrings",
        se == 0 && re == 0 && sum == expected_sum(200),
        format_args!("errors {se:#x}/{re:#x} sum {sum}"),
    );
}

/// Message cut: overflow with the byte offset for both parties.
fn overflow(s: &mut Cx) {
    let Some(Setup { r, src, dst }) = helpers(s) else {
        return;
    };
    // Message cut: 256 bytes into a 100-byte buffer: overflow (4) at offset 100 for both.
    let (se, re, _, _) = transfer(r, (dst, 100, 1), (0, 0), &simple_string(256, src));
    s.check_eq("strings.overflow_sender_code", se, (100 << 4) | (4 << 1));
    s.check_eq(
        "strings.overflow_receiver_code",
        re,
        (100 << 4) | (4 << 1) | 1,
    );
}

/// No string acceptance at all: overflow at offset 0.
fn not_accepted(s: &mut Cx) {
    let Some(Setup { r, src, dst }) = helpers(s) else {
        return;
    };
    // No string acceptance at all: overflow at offset 0.
    let (se, re, _, _) = transfer(r, (dst, 0, 1), (0, 0), &simple_string(16, src));
    s.check(
        "strings.not_accepted_overflow",
        se == 8 && re == 9,
        format_args!("errors {se:#x}/{re:#x}"),
    );
}

/// A string item whose address is in kernel memory is never read.
fn kernel_address(s: &mut Cx) {
    let Some(Setup { r, src: _, dst }) = helpers(s) else {
        return;
    };
    // A string item whose address is in kernel memory never reads it: the sender's fault IPC
    // goes nowhere (the root's pager, sigma0, refuses) — use a zero transfer timeout instead.
    let (se, re, _, _) = transfer(
        r,
        (dst, 64, 1),
        (0x0400 << 16, 0),
        &simple_string(64, 0xFFFF_FFFF_8010_0000),
    );
    s.check(
        "strings.kernel_address_refused",
        se & 0xE != 0 && re & 0xE != 0,
        format_args!("errors {se:#x}/{re:#x}"),
    );
}

/// Receiver buffer not mapped: its pager resolves the faults during the copy.
fn receiver_fault(s: &mut Cx) {
    let Some(Setup { r, src, dst: _ }) = helpers(s) else {
        return;
    };
    // Receiver buffer not mapped: its pager resolves the faults during the copy (tunnelled).
    let before = PG_FAULTS.load(Ordering::SeqCst);
    let (se, re, sum, _) = transfer(
        r,
        (WINDOW.load(Ordering::SeqCst) + 0x800, 6000, 1),
        (0, 0),
        &simple_string(6000, src),
    );
    let faults = PG_FAULTS.load(Ordering::SeqCst) - before;
    s.check(
        "strings.receiver_fault_resolved",
        se == 0 && re == 0 && sum == expected_sum(6000),
        format_args!("errors {se:#x}/{re:#x} sum {sum}"),
    );
    s.check(
        "strings.receiver_faults_to_its_pager",
        faults >= 2,
        format_args!("{faults} faults"),
    );
}

/// Faults that are never resolved: the smaller transfer timeout decides who gets 5 and 6.
fn xfer_timeouts(s: &mut Cx) {
    let Some(Setup { r, src, dst: _ }) = helpers(s) else {
        return;
    };
    // Faults that are never resolved: the smaller transfer timeout decides who gets 5 and 6.
    let ten_ms = Time::period_micros(10_000).raw() as u64;
    let never = 0u64;
    let (se, re, _, _) = transfer(
        r,
        (HOLE.load(Ordering::SeqCst), 64, 1),
        (ten_ms << 16, never),
        &simple_string(64, src),
    );
    s.check(
        "strings.xfer_timeout_sender_shorter",
        se & 0xF == 10 && re & 0xF == 13,
        format_args!("errors {se:#x}/{re:#x}"),
    );
    let (se, re, _, _) = transfer(
        r,
        (HOLE.load(Ordering::SeqCst) + 0x1000, 64, 1),
        (never, ten_ms),
        &simple_string(64, src),
    );
    s.check(
        "strings.xfer_timeout_receiver_shorter",
        se & 0xF == 12 && re & 0xF == 11,
        format_args!("errors {se:#x}/{re:#x}"),
    );
}

/// ExchangeRegisters aborts the receiver while its tunnelled fault is pending: both get 7.
fn abort_during_nested_fault(s: &mut Cx) {
    let Some(Setup { r, src, dst: _ }) = helpers(s) else {
        return;
    };
    // ExchangeRegisters aborts the receiver while its tunnelled fault is pending: both get 7.
    let never = 0u64;
    let ab = s.thread();
    let (loc, sp) = (s.slot(), s.stack());
    let started = start_local(ab, loc, sp, None, aborter);
    let (se, re, _, _) = transfer(
        r,
        (HOLE.load(Ordering::SeqCst) + 0x2000, 64, 1),
        (never, never),
        &simple_string(64, src),
    );
    s.check(
        "strings.abort_during_nested_fault",
        started && se & 0xF == 14 && re & 0xF == 15,
        format_args!("errors {se:#x}/{re:#x}"),
    );
}

/// A fault on the sender's side (the root's unmapped source, resolved by its pager sigma0).
fn sender_fault(s: &mut Cx) {
    let Some(Setup { r, src: _, dst }) = helpers(s) else {
        return;
    };
    // A fault on the sender's side (the root's unmapped source, resolved by its pager sigma0).
    let far = 0x0900_0000u64;
    let (se, re, sum, _) = transfer(r, (dst, 128, 1), (0, 0), &simple_string(128, far));
    let mut want = 0u64;
    for i in 0..128u64 {
        // SAFETY: sigma0 mapped this page for the root during the transfer.
        want = want.wrapping_add(
            unsafe { core::ptr::read_volatile((far + i) as *const u8) } as u64 * (i + 1),
        );
    }
    s.check(
        "strings.sender_fault_resolved",
        se == 0 && re == 0 && sum == want,
        format_args!("errors {se:#x}/{re:#x} sum {sum} want {want}"),
    );
}
