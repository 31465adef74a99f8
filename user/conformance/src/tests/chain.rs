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

/// A new space with one thread `t`, paged by `pager`, not yet started. Err: ErrorCode.
fn new_space(t: ThreadId, pager: ThreadId) -> Result<(), u64> {
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
    if ok { Ok(()) } else { Err(utcb::error_code()) }
}

/// The chain as [`build`] left it: `a` in space A (paged by the root's pager thread PG), `b`
/// in space B (paged by `a`); what each step of the building returned. The runner deletes
/// b, a (space A and everything derived from it) and PG when the check returns.
struct Built {
    a: ThreadId,
    b: ThreadId,
    /// Err: the step that failed (PG, space A, space B) and its ErrorCode.
    made: Result<(), (&'static str, u64)>,
    /// ExchangeRegisters starting `a` from our space (PG, a's pager, is ours).
    start_a: ThreadId,
    /// ExchangeRegisters on `b` from our space (b's pager is in A).
    exregs_b: ThreadId,
    /// `a`'s answer to "start b".
    started_b: Option<u64>,
}

/// Builds the chain sigma0 → root → A → B (threads, slot and stacks from `s`), the data page
/// holding 0xC4A1_0001 and nothing of it mapped in A or B yet; the counters cleared.
fn build(s: &mut Cx) -> Built {
    for c in [&PG_DATA_FAULTS, &A_DATA_FAULTS_OF_B, &A_WRITE_FAULTS_OF_B] {
        c.store(0, Ordering::SeqCst);
    }
    B_RIGHTS.store(7, Ordering::SeqCst);
    let stack_top = [s.stack(), s.stack(), s.stack()];
    let slot = s.slot();
    // SAFETY: our own data page, before A and B exist.
    unsafe { (&raw mut DATA_PAGE.0[0]).write_volatile(0xC4A1_0001) };
    let (pgt, a, b) = (s.thread(), s.thread(), s.thread());
    let mut built = Built {
        a,
        b,
        made: Ok(()),
        start_a: ThreadId::NIL,
        exregs_b: ThreadId::NIL,
        started_b: None,
    };
    if syscall::thread_control(pgt, root(), root(), root(), slot) != 1 {
        built.made = Err(("PG", utcb::error_code()));
        return built;
    }
    l4::thread::start(
        pgt,
        stack_top[0],
        pg as extern "C" fn() -> ! as usize as u64,
    );
    if let Err(e) = new_space(a, pgt) {
        built.made = Err(("space A", e));
        return built;
    }
    if let Err(e) = new_space(b, a) {
        built.made = Err(("space B", e));
        return built;
    }
    // a's pager (PG) is in our space: ExchangeRegisters may start it (pagerexregs).
    built.start_a = l4::thread::start(
        a,
        stack_top[1],
        a_main as extern "C" fn() -> ! as usize as u64,
    );
    // b's pager is a (space A): we may not, a starts it with the start-up message.
    built.exregs_b = syscall::exchange_registers(
        b,
        syscall::ExregsState {
            control: 0,
            ..Default::default()
        },
    )
    .0;
    built.started_b = command(
        a,
        &[
            2,
            b_main as extern "C" fn() -> ! as usize as u64,
            stack_top[2],
            b.raw(),
        ],
    );
    built
}

/// [`build`], for a check of what the running chain does: None (reported as a failure of
/// check `name`) if it could not be built and started.
fn ready(s: &mut Cx, name: &str) -> Option<Built> {
    let c = build(s);
    let ok = c.made.is_ok() && !c.start_a.is_nil() && c.started_b == Some(1);
    if !ok {
        s.check(
            name,
            false,
            format_args!(
                "chain not built: {:x?}, a started {:#x}, b started {:?}",
                c.made,
                c.start_a.raw(),
                c.started_b
            ),
        );
        return None;
    }
    Some(c)
}

/// The check functions: the chain is built for each ([`build`]), the steps before the one
/// observed run again ([`unmap_step`], [`read_only_step`]); the sigma0 protocol apart.
pub const CHECKS: &[Check] = &[
    Check {
        name: "chain.create_space",
        run: create_space,
    },
    Check {
        name: "chain.exregs_allowed_from_pager_space",
        run: exregs_allowed_from_pager_space,
    },
    Check {
        name: "chain.exregs_refused_other_space",
        run: exregs_refused_other_space,
    },
    Check {
        name: "chain.b_started_by_its_pager",
        run: b_started_by_its_pager,
    },
    Check {
        name: "chain.a_reads_root_page",
        run: a_reads_root_page,
    },
    Check {
        name: "chain.b_reads_through_a",
        run: b_reads_through_a,
    },
    Check {
        name: "chain.unprivileged_calls_refused",
        run: unprivileged_calls_refused,
    },
    Check {
        name: "chain.b_reads_after_unmap",
        run: b_reads_after_unmap,
    },
    Check {
        name: "chain.unmap_at_root_removed_from",
        run: unmap_at_root_removed,
    },
    Check {
        name: "chain.read_only_write_faults_to_pager",
        run: read_only_write_faults_to_pager,
    },
    Check {
        name: "chain.b_write_reaches_root_page",
        run: b_write_reaches_root_page,
    },
    Check {
        name: "chain.string_cannot_read_other_space",
        run: string_cannot_read_other_space,
    },
    Check {
        name: "chain.sigma0",
        run: sigma0_protocol,
    },
];

/// Spaces A and B are created (one line each).
fn create_space(s: &mut Cx) {
    const NAME: &str = "chain.create_space";
    let c = build(s);
    match c.made {
        Err(("PG", e)) => {
            s.check(NAME, false, format_args!("pager thread: error {e}"));
        }
        Err((step, e)) => {
            let a_ok = step != "space A";
            s.check(
                NAME,
                a_ok,
                format_args!("thread {:#x}: error {e}", c.a.raw()),
            );
            if a_ok {
                s.check(
                    NAME,
                    false,
                    format_args!("thread {:#x}: error {e}", c.b.raw()),
                );
            }
        }
        Ok(()) => {
            s.check(NAME, true, format_args!(""));
            s.check(NAME, true, format_args!(""));
        }
    }
}

/// a's pager (PG) is in our space: ExchangeRegisters may start it (pagerexregs).
fn exregs_allowed_from_pager_space(s: &mut Cx) {
    const NAME: &str = "chain.exregs_allowed_from_pager_space";
    let c = build(s);
    s.check(
        NAME,
        c.made.is_ok() && !c.start_a.is_nil(),
        format_args!("{:x?}, error {}", c.made, utcb::error_code()),
    );
}

/// b's pager is a (space A): we may not use ExchangeRegisters on b.
fn exregs_refused_other_space(s: &mut Cx) {
    const NAME: &str = "chain.exregs_refused_other_space";
    let c = build(s);
    s.check(
        NAME,
        c.made.is_ok() && c.exregs_b.is_nil(),
        format_args!("{:x?}, result {:#x}", c.made, c.exregs_b.raw()),
    );
}

/// a starts b with the start-up message.
fn b_started_by_its_pager(s: &mut Cx) {
    let c = build(s);
    s.check_eq("chain.b_started_by_its_pager", c.started_b, Some(1));
}

/// sigma0 → root → A by a page fault and a map item.
fn a_reads_root_page(s: &mut Cx) {
    const NAME: &str = "chain.a_reads_root_page";
    let Some(c) = ready(s, NAME) else { return };
    let va = command(c.a, &[1]);
    s.check_eq(NAME, va, Some(0xC4A1_0001));
}

/// sigma0 → root → A → B by page faults and map items.
fn b_reads_through_a(s: &mut Cx) {
    const NAME: &str = "chain.b_reads_through_a";
    let Some(c) = ready(s, NAME) else { return };
    let vb = command(c.b, &[1]);
    s.check_eq(NAME, vb, Some(0xC4A1_0001));
}

/// An unprivileged space: ThreadControl, SpaceControl, ProcessorControl, MemoryControl all
/// fail with ErrNoPrivilege (1) and result 0.
fn unprivileged_calls_refused(s: &mut Cx) {
    const NAME: &str = "chain.unprivileged_calls_refused";
    let Some(c) = ready(s, NAME) else { return };
    let codes = command(c.a, &[3]);
    s.check_eq(NAME, codes, Some(0x0101_0101));
}

/// What [`unmap_step`] saw: B's read after the Unmap, and (before, after) it: B's data
/// faults at `a`, A's data faults at PG.
struct Unmapped {
    vb: Option<u64>,
    faults_a: (u64, u64),
    faults_pg: (u64, u64),
}

/// A and B read the data page (mapped along the chain), the root unmaps it (A's and B's
/// mappings, derived, go), B reads again (faulting again along the chain).
fn unmap_step(c: &Built) -> Unmapped {
    let _ = command(c.a, &[1]);
    let _ = command(c.b, &[1]);
    let faults_pg = PG_DATA_FAULTS.load(Ordering::SeqCst);
    let faults_a = A_DATA_FAULTS_OF_B.load(Ordering::SeqCst);
    let page = &raw const DATA_PAGE as u64;
    utcb::set_mr(0, Fpage::new_log2(page, 12).with_rights(Rights::FULL).raw());
    syscall::unmap(0);
    let vb = command(c.b, &[1]);
    Unmapped {
        vb,
        faults_a: (faults_a, A_DATA_FAULTS_OF_B.load(Ordering::SeqCst)),
        faults_pg: (faults_pg, PG_DATA_FAULTS.load(Ordering::SeqCst)),
    }
}

/// B still reads the page after the Unmap at the root.
fn b_reads_after_unmap(s: &mut Cx) {
    const NAME: &str = "chain.b_reads_after_unmap";
    let Some(c) = ready(s, NAME) else { return };
    let u = unmap_step(&c);
    s.check_eq(NAME, u.vb, Some(0xC4A1_0001));
}

/// Unmap at the root removed the page from B (its next read faults to `a`) and from A (a's
/// next access faults to PG).
fn unmap_at_root_removed(s: &mut Cx) {
    let Some(c) = ready(s, "chain.unmap_at_root_removed_from") else {
        return;
    };
    let u = unmap_step(&c);
    s.check(
        "chain.unmap_at_root_removed_from_b",
        u.faults_a.1 > u.faults_a.0,
        format_args!("b's faults at a: {:?}", u.faults_a),
    );
    s.check(
        "chain.unmap_at_root_removed_from_a",
        u.faults_pg.1 > u.faults_pg.0,
        format_args!("a's faults at PG: {:?}", u.faults_pg),
    );
}

/// Rights reduction along the chain, after [`unmap_step`]: the page unmapped again, `a` maps
/// it read-only to b, then (asked again) read-write; b writes. Returns a's write faults of b
/// (before, after the write), b's answer and what the root's page then holds.
fn read_only_step(c: &Built) -> ((u64, u64), Option<u64>, u64) {
    let _ = unmap_step(c);
    let page = &raw const DATA_PAGE as u64;
    utcb::set_mr(0, Fpage::new_log2(page, 12).with_rights(Rights::FULL).raw());
    syscall::unmap(0);
    B_RIGHTS.store(Rights::R.raw(), Ordering::SeqCst);
    let _ = command(c.b, &[1]);
    let w0 = A_WRITE_FAULTS_OF_B.load(Ordering::SeqCst);
    B_RIGHTS.store(Rights::RW.raw(), Ordering::SeqCst);
    let vw = command(c.b, &[2]);
    let w1 = A_WRITE_FAULTS_OF_B.load(Ordering::SeqCst);
    // SAFETY: our own page, written by b through the chain.
    let seen = unsafe { (&raw const DATA_PAGE.0[0]).read_volatile() };
    ((w0, w1), vw, seen)
}

/// A read-only map makes b's write fault to its pager.
fn read_only_write_faults_to_pager(s: &mut Cx) {
    const NAME: &str = "chain.read_only_write_faults_to_pager";
    let Some(c) = ready(s, NAME) else { return };
    let (w, _, _) = read_only_step(&c);
    s.check(NAME, w.1 > w.0, format_args!("write faults {w:?}"));
}

/// b's write (once mapped read-write) reaches the root's page.
fn b_write_reaches_root_page(s: &mut Cx) {
    const NAME: &str = "chain.b_write_reaches_root_page";
    let Some(c) = ready(s, NAME) else { return };
    let (_, vw, seen) = read_only_step(&c);
    s.check(
        NAME,
        vw == Some(0xB0B0) && seen == 0xB0B0,
        format_args!("{vw:?} {seen:#x}"),
    );
}

/// Isolation: A names the root's secret page as a string source; the kernel reads it through
/// A's own mappings only, so A's pager is asked (and refuses) and nothing arrives.
fn string_cannot_read_other_space(s: &mut Cx) {
    const NAME: &str = "chain.string_cannot_read_other_space";
    let Some(c) = ready(s, NAME) else { return };
    let a = c.a;
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
        NAME,
        r.tag.error() && code & 0xF == 13 && got != 0x5EC2_E75E_C2E7,
        format_args!("error {code:#x} inbox {got:#x}"),
    );
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
