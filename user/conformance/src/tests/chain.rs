//! Recursive address spaces across spaces (spec 2.4, 5.8, 6.2): sigma0 → root → space A →
//! space B built by page faults and map items; Unmap at the root removes the page from A and B
//! (their next access faults to their pagers again); a read-only map makes B's write fault;
//! the sigma0 protocol refuses what is not the protocol.
//!
//! A and B run the root's own image: the root's pager thread `PG` maps the root's pages at the
//! same addresses into A, and `a` (in A) is the pager of `b` (in B), mapping on from A. Pages of
//! the image are therefore physically shared, so statics below are visible in all three spaces.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::items::MapItem;
use abi::msgtag::labels;
use abi::{Fpage, MsgTag, Rights, ThreadId, Time, Timeouts};
use l4::{kip, msg, syscall, utcb};

use crate::conformance::{Check, Cx};

/// The check functions: the chain is one scenario, step by step (its threads, slot and
/// stacks come from its [`Cx`]); the sigma0 protocol another.
pub const CHECKS: &[Check] = &[
    Check {
        name: "chain.spaces",
        run: chain,
    },
    Check {
        name: "chain.sigma0",
        run: sigma0_protocol,
    },
];

#[repr(C, align(4096))]
struct Page([u64; 512]);
static mut DATA_PAGE: Page = Page([0; 512]);
/// Mapped in the root only: PG refuses to map it into A.
static mut SECRET: Page = Page([0; 512]);
static mut INBOX: Page = Page([0; 512]);

/// Where A and B see the data page.
const DATA: u64 = 0x7000_0000;
const UTCB_AREA: u64 = 0x8000_0000;

static PG_DATA_FAULTS: AtomicU64 = AtomicU64::new(0);
static A_DATA_FAULTS_OF_B: AtomicU64 = AtomicU64::new(0);
static A_WRITE_FAULTS_OF_B: AtomicU64 = AtomicU64::new(0);
static B_RIGHTS: AtomicU64 = AtomicU64::new(7);

fn root() -> ThreadId {
    ThreadId::global(kip::thread_info().user_base() + 2, 1)
}

fn reply_map(to: ThreadId, src: u64, dst: u64, rights: Rights) {
    let w = MapItem::new(Fpage::new_log2(src, 12).with_rights(rights), dst).to_words(false);
    utcb::set_mr(1, w[0]);
    utcb::set_mr(2, w[1]);
    utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
    let _ = msg::send_timeout(to, Time::ZERO);
}

/// The root's pager thread for space A: image pages and stacks at the same address; DATA from
/// the root's data page.
extern "C" fn pg() -> ! {
    loop {
        let Ok((from, tag)) = msg::wait() else {
            continue;
        };
        if tag.label() & !0xF != labels::PAGE_FAULT {
            continue;
        }
        let addr = utcb::mr(1) & !0xFFF;
        if addr == &raw const SECRET as u64 {
            continue; // never given to A
        }
        if addr == DATA {
            PG_DATA_FAULTS.fetch_add(1, Ordering::SeqCst);
            let src = &raw const DATA_PAGE as u64;
            reply_map(from, src, DATA, Rights::RW);
        } else {
            reply_map(from, addr, addr, Rights::FULL);
        }
    }
}

/// Thread `a` in space A: serves the root's commands and pages `b`.
/// Commands (label 1): MR1 = 1 read DATA, 2 start b at (MR2 ip, MR3 sp).
extern "C" fn a_main() -> ! {
    loop {
        let Ok((from, tag)) = msg::wait() else {
            continue;
        };
        if tag.label() & !0xF == labels::PAGE_FAULT {
            let addr = utcb::mr(1) & !0xFFF;
            let write = tag.label() & 2 != 0;
            if addr == DATA {
                A_DATA_FAULTS_OF_B.fetch_add(1, Ordering::SeqCst);
                if write {
                    A_WRITE_FAULTS_OF_B.fetch_add(1, Ordering::SeqCst);
                }
            }
            // Make sure we have the page ourselves (faults to PG), then map it on.
            // SAFETY: reading a page of our own space; a fault goes to our pager.
            unsafe { core::ptr::read_volatile(addr as *const u8) };
            let rights = if addr == DATA {
                Rights::from_raw(B_RIGHTS.load(Ordering::SeqCst))
            } else {
                Rights::FULL
            };
            reply_map(from, addr, addr, rights);
            continue;
        }
        let v = match utcb::mr(1) {
            // SAFETY: DATA is paged in by PG.
            1 => unsafe { core::ptr::read_volatile(DATA as *const u64) },
            2 => {
                let (who, ip, sp) = (ThreadId::from_raw(utcb::mr(4)), utcb::mr(2), utcb::mr(3));
                utcb::set_mr(1, ip);
                utcb::set_mr(2, sp);
                utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
                msg::send_timeout(who, Time::period_micros(100_000)).is_ok() as u64
            }
            // Send the root a string from MR2 (an address A does not have), 10 ms xfer timeout.
            4 => {
                let src = utcb::mr(2);
                utcb::set_xfer_timeouts(abi::XferTimeouts::new(
                    Time::period_micros(10_000),
                    Time::NEVER,
                ));
                let w = abi::items::simple_string(64, src);
                utcb::set_mrs(1, &w);
                utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
                let _ = msg::send_timeout(from, Time::period_micros(100_000));
                continue;
            }
            // Privileged calls from an unprivileged space: each must fail with ErrNoPrivilege.
            3 => {
                let mut codes = 0u64;
                let me = utcb::my_global_id();
                let probe = ThreadId::global(0x3_4567, 1);
                let r = syscall::thread_control(probe, probe, me, ThreadId::NIL, u64::MAX);
                codes |= (r << 60) | utcb::error_code();
                let (r, _) = syscall::space_control(me, 0, Fpage::NIL, Fpage::NIL, ThreadId::NIL);
                codes |= (r << 61) | (utcb::error_code() << 8);
                let r = syscall::processor_control(0, u64::MAX, u64::MAX, u64::MAX);
                codes |= (r << 62) | (utcb::error_code() << 16);
                let r = syscall::memory_control(0, [0; 4]);
                codes |= (r << 63) | (utcb::error_code() << 24);
                codes
            }
            _ => 0,
        };
        utcb::set_mr(1, v);
        utcb::set_mr(0, MsgTag::new(0, 1, 0).raw());
        let _ = msg::send_timeout(from, Time::period_micros(100_000));
    }
}

/// Thread `b` in space B (pager `a`): MR1 = 1 read DATA, 2 write DATA.
extern "C" fn b_main() -> ! {
    loop {
        let Ok((from, _)) = msg::wait() else { continue };
        let v = match utcb::mr(1) {
            // SAFETY: DATA is paged in by `a`.
            1 => unsafe { core::ptr::read_volatile(DATA as *const u64) },
            2 => {
                // SAFETY: as above; a write fault goes to `a`.
                unsafe { core::ptr::write_volatile(DATA as *mut u64, 0xB0B0) };
                0xB0B0
            }
            _ => 0,
        };
        utcb::set_mr(1, v);
        utcb::set_mr(0, MsgTag::new(0, 1, 0).raw());
        let _ = msg::send_timeout(from, Time::period_micros(100_000));
    }
}

fn command(t: ThreadId, words: &[u64]) -> Option<u64> {
    utcb::set_mrs(1, words);
    utcb::set_mr(0, MsgTag::new(1, words.len() as u64, 0).raw());
    let r = syscall::ipc(
        t,
        t,
        Timeouts::new(Time::period_micros(500_000), Time::period_micros(500_000)),
    );
    (!r.tag.error()).then(|| utcb::mr(1))
}

/// A new space with one thread `t`, paged by `pager`, not yet started.
fn new_space(s: &mut Cx, t: ThreadId, pager: ThreadId) -> bool {
    let me = root();
    let ok = syscall::thread_control(t, t, me, ThreadId::NIL, u64::MAX) == 1
        && syscall::space_control(
            t,
            0,
            Fpage::new_log2(kip::kip_address(), 12),
            Fpage::new_log2(UTCB_AREA, 13),
            ThreadId::NIL,
        )
        .0 == 1
        && syscall::thread_control(t, t, me, pager, UTCB_AREA) == 1;
    s.check(
        "chain.create_space",
        ok,
        format_args!("thread {:#x}: error {}", t.raw(), utcb::error_code()),
    );
    ok
}

/// sigma0 → root → A → B, Unmap through the chain, read-only maps, sigma0 refusals.
fn chain(s: &mut Cx) {
    for c in [&PG_DATA_FAULTS, &A_DATA_FAULTS_OF_B, &A_WRITE_FAULTS_OF_B] {
        c.store(0, Ordering::SeqCst);
    }
    B_RIGHTS.store(7, Ordering::SeqCst);
    let stack_top = [s.stack(), s.stack(), s.stack()];
    let slot = s.slot();
    // SAFETY: our own data page, before A and B exist.
    unsafe { (&raw mut DATA_PAGE.0[0]).write_volatile(0xC4A1_0001) };
    let (pgt, a, b) = (s.thread(), s.thread(), s.thread());
    if syscall::thread_control(pgt, root(), root(), root(), slot) != 1 {
        s.check(
            "chain.pager",
            false,
            format_args!("error {}", utcb::error_code()),
        );
        return;
    }
    l4::thread::start(
        pgt,
        stack_top[0],
        pg as extern "C" fn() -> ! as usize as u64,
    );
    if !new_space(s, a, pgt) || !new_space(s, b, a) {
        return;
    }
    // a's pager (PG) is in our space: ExchangeRegisters may start it (pagerexregs).
    let r = l4::thread::start(
        a,
        stack_top[1],
        a_main as extern "C" fn() -> ! as usize as u64,
    );
    s.check(
        "chain.exregs_allowed_from_pager_space",
        !r.is_nil(),
        format_args!("error {}", utcb::error_code()),
    );
    // b's pager is a (space A): we may not, a starts it with the start-up message.
    let (r, _) = syscall::exchange_registers(
        b,
        syscall::ExregsState {
            control: 0,
            ..Default::default()
        },
    );
    s.check(
        "chain.exregs_refused_other_space",
        r.is_nil(),
        format_args!("result {:#x}", r.raw()),
    );
    let started = command(
        a,
        &[
            2,
            b_main as extern "C" fn() -> ! as usize as u64,
            stack_top[2],
            b.raw(),
        ],
    );
    s.check_eq("chain.b_started_by_its_pager", started, Some(1));

    // sigma0 → root → A → B by page faults and map items.
    let va = command(a, &[1]);
    s.check_eq("chain.a_reads_root_page", va, Some(0xC4A1_0001));
    let vb = command(b, &[1]);
    s.check_eq("chain.b_reads_through_a", vb, Some(0xC4A1_0001));
    // An unprivileged space: ThreadControl, SpaceControl, ProcessorControl, MemoryControl all
    // fail with ErrNoPrivilege (1) and result 0.
    let codes = command(a, &[3]);
    s.check_eq("chain.unprivileged_calls_refused", codes, Some(0x0101_0101));
    let faults_pg = PG_DATA_FAULTS.load(Ordering::SeqCst);
    let faults_a = A_DATA_FAULTS_OF_B.load(Ordering::SeqCst);

    // Unmap at the root: A's and B's mappings (derived) go; the next accesses fault again.
    let page = &raw const DATA_PAGE as u64;
    utcb::set_mr(0, Fpage::new_log2(page, 12).with_rights(Rights::FULL).raw());
    syscall::unmap(0);
    let vb = command(b, &[1]);
    s.check_eq("chain.b_reads_after_unmap", vb, Some(0xC4A1_0001));
    s.check(
        "chain.unmap_at_root_removed_from_b",
        A_DATA_FAULTS_OF_B.load(Ordering::SeqCst) > faults_a,
        format_args!(
            "b's faults at a: {}",
            A_DATA_FAULTS_OF_B.load(Ordering::SeqCst)
        ),
    );
    s.check(
        "chain.unmap_at_root_removed_from_a",
        PG_DATA_FAULTS.load(Ordering::SeqCst) > faults_pg,
        format_args!(
            "a's faults at PG: {}",
            PG_DATA_FAULTS.load(Ordering::SeqCst)
        ),
    );

    // Rights reduction along the chain: a maps read-only to b; b's write faults (to a).
    utcb::set_mr(0, Fpage::new_log2(page, 12).with_rights(Rights::FULL).raw());
    syscall::unmap(0);
    B_RIGHTS.store(Rights::R.raw(), Ordering::SeqCst);
    let _ = command(b, &[1]);
    let w0 = A_WRITE_FAULTS_OF_B.load(Ordering::SeqCst);
    B_RIGHTS.store(Rights::RW.raw(), Ordering::SeqCst);
    let vw = command(b, &[2]);
    s.check(
        "chain.read_only_write_faults_to_pager",
        A_WRITE_FAULTS_OF_B.load(Ordering::SeqCst) > w0,
        format_args!(
            "write faults {}",
            A_WRITE_FAULTS_OF_B.load(Ordering::SeqCst)
        ),
    );
    // SAFETY: our own page, written by b through the chain.
    let seen = unsafe { (&raw const DATA_PAGE.0[0]).read_volatile() };
    s.check(
        "chain.b_write_reaches_root_page",
        vw == Some(0xB0B0) && seen == 0xB0B0,
        format_args!("{vw:?} {seen:#x}"),
    );

    // Isolation: A names the root's secret page as a string source; the kernel reads it through
    // A's own mappings only, so A's pager is asked (and refuses) and nothing arrives.
    // SAFETY: our own pages, prepared before the transfer.
    let (secret, inbox) = unsafe {
        (&raw mut SECRET.0[0]).write_volatile(0x5EC2_E75E_C2E7);
        (&raw mut INBOX.0[0]).write_volatile(0);
        (&raw const SECRET as u64, &raw mut INBOX as u64)
    };
    utcb::set_br(0, 1);
    utcb::set_br(1, abi::items::StringHeader::new(64, 1).0);
    utcb::set_br(2, inbox);
    utcb::set_mrs(1, &[4, secret]);
    utcb::set_mr(0, MsgTag::new(1, 2, 0).raw());
    let r = syscall::ipc(
        a,
        a,
        Timeouts::new(Time::period_micros(500_000), Time::period_micros(500_000)),
    );
    let code = utcb::error_code();
    utcb::set_br(0, 0);
    // SAFETY: our inbox page.
    let got = unsafe { (&raw const INBOX.0[0]).read_volatile() };
    s.check(
        "chain.string_cannot_read_other_space",
        r.tag.error() && code & 0xF == 13 && got != 0x5EC2_E75E_C2E7,
        format_args!("error {code:#x} inbox {got:#x}"),
    );

    // Deleting A's thread destroys space A and everything derived from it (B's DATA too).
    syscall::thread_control(a, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX);
    syscall::thread_control(b, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX);
    syscall::thread_control(pgt, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX);
}

/// The sigma0 protocol (spec 6.7): a specific page, any page, and refusals.
fn sigma0_protocol(s: &mut Cx) {
    let s0 = kip::sigma0_id();
    // A request that is not the protocol (u must be 2 or 3) gets no answer at all.
    utcb::set_mrs(1, &[abi::sigma0::any_page(12).raw(), 0, 0, 0, 0]);
    utcb::set_mr(0, MsgTag::new(labels::SIGMA0, 5, 0).raw());
    let r = syscall::ipc(
        s0,
        s0,
        Timeouts::new(Time::period_micros(100_000), Time::period_micros(50_000)),
    );
    s.check(
        "chain.sigma0_ignores_malformed_request",
        r.tag.error() && utcb::error_code() & 0xF == 3,
        format_args!("tag {:#x} error {:#x}", r.tag.raw(), utcb::error_code()),
    );
    // Unknown label: no answer.
    utcb::set_mr(0, MsgTag::new(0x1234, 2, 0).raw());
    let r = syscall::ipc(
        s0,
        s0,
        Timeouts::new(Time::period_micros(100_000), Time::period_micros(50_000)),
    );
    s.check(
        "chain.sigma0_ignores_unknown_label",
        r.tag.error() && utcb::error_code() & 0xF == 3,
        format_args!("tag {:#x} error {:#x}", r.tag.raw(), utcb::error_code()),
    );
    // Kernel memory (the reserved pool) is refused: nil map item.
    let pool = l4::kip::memory_descriptors()
        .iter()
        .find(|d| d.mem_type() == Some(abi::MemType::Reserved) && d.low() > 0x100_0000)
        .map(|d| d.low());
    if let Some(p) = pool {
        let r = l4::sigma0::get_page(Fpage::new_log2(p, 12));
        s.check(
            "chain.sigma0_refuses_kernel_memory",
            r.is_err(),
            format_args!("{p:#x}: {:?}", r.ok()),
        );
    }
    // Any 2 MiB page: granted as one superpage-sized fpage.
    let r = l4::sigma0::get_any(21);
    s.check(
        "chain.sigma0_any_2mib_page",
        r.is_ok(),
        format_args!("{:?}", r.err()),
    );
    if let Ok(f) = r {
        // SAFETY: sigma0 just mapped these 2 MiB at their physical address in our space.
        let v = unsafe {
            ((f.base() + 0x1F_F000) as *mut u64).write_volatile(0x2B);
            ((f.base() + 0x1F_F000) as *const u64).read_volatile()
        };
        s.check(
            "chain.sigma0_2mib_page_usable",
            v == 0x2B && f.size_log2() == 21,
            format_args!("fpage {:#x}", f.raw()),
        );
        // The same page again: already ours, granted again.
        let again = l4::sigma0::get_page(Fpage::new_log2(f.base(), 12));
        s.check(
            "chain.sigma0_own_page_again",
            again.is_ok(),
            format_args!("{:?}", again.err()),
        );
    }
}
