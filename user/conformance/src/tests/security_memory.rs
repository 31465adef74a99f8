//! Security: memory a non-privileged space names to the kernel (issue 10, classes 2 and 4).
//!
//! * **String copies through odd physical memory.** A child in a new, non-privileged space
//!   asks sigma0 directly for physical pages the memory descriptors call shared or free (as
//!   any thread may): device memory (local APIC, VGA text, the top page below 4 GiB), pages
//!   past the kernel's direct map (there the kernel image and its stacks follow), a hole of
//!   the direct map, and memory beyond 512 GiB. Each page is then used as a string source
//!   (sent to the root) and as a receive buffer (the root sends "PWNED..." into it). The
//!   kernel must refuse both with message overflow (4, offset 0) for both parties, copy
//!   nothing, never fault, and leave the KIP as it was.
//! * **sigma0 and kernel memory.** The same child asks sigma0 for pages of the kernel image
//!   (the KIP among them) and of the kernel pool (the reserved memory descriptors): refused.
//! * **Kernel memory exhaustion.** An attacker space maps one page again and again into itself
//!   (at 2 MiB strides: a page table per mapping; at 4 KiB strides: a mapping node per
//!   mapping) until the kernel refuses; the refusal is the attacker's own IPC error. While the
//!   attacker still holds everything it got, a new space still faults its pages in (mapping)
//!   and runs. After the attacker is deleted its kernel memory is back: ten attackers in a
//!   row, together far more than the whole pool, each get exactly as far as the first; at the
//!   quota a page can still be re-mapped with more rights.
//! * **Superpages over page tables.** A space maps a 4 KiB page and then gets the 1 GiB page
//!   over it from sigma0, 20,000 times: the page tables under the 1 GiB page must be freed
//!   each time (they leaked, and the pool ran out).

use core::sync::atomic::{AtomicU64, Ordering};

use abi::items::{MapItem, simple_string};
use abi::kip::MemType;
use abi::{Acceptor, Fpage, MsgTag, Rights, ThreadId, Time, Timeouts};
use l4::{kip, msg, sigma0, syscall, utcb};

use super::util::{self, REPORT, kill};
use crate::conformance::{Check, Cx};

/// The check functions; threads and stacks come from their [`Cx`].
pub const CHECKS: &[Check] = &[
    Check {
        name: "security_memory.strings",
        run: strings,
    },
    Check {
        name: "security_memory.superpage_over_tables_frees_them",
        run: superpage_churn,
    },
    Check {
        // 2 MiB strides: a page table per mapping.
        name: "security_memory.exhaustion_2m_strides",
        run: |cx| exhaustion(cx, "2m_strides", 21, 0x1000_0000_0000, 40_000),
    },
    Check {
        // 4 KiB strides: a mapping node per mapping.
        name: "security_memory.exhaustion_4k_strides",
        run: |cx| exhaustion(cx, "4k_strides", 12, 0x2000_0000_0000, 200_000),
    },
];

/// Length of each string.
const LEN: u64 = 64;
const PWNED: &[u8; 16] = b"PWNED-PWNED-PWN!";

#[repr(C, align(4096))]
struct Page([u8; 4096]);
/// The root's receive buffer and send source for the string cases.
static mut RBUF: Page = Page([0; 4096]);
static mut SBUF: Page = Page([0; 4096]);
/// The page the attackers map again and again.
static mut ATTACK_PAGE: Page = Page([0; 4096]);

/// The physical pages of the string cases, set by the root before the child starts.
const MAX_CASES: usize = 24;
static CASES: [AtomicU64; MAX_CASES] = [const { AtomicU64::new(0) }; MAX_CASES];
static NCASES: AtomicU64 = AtomicU64::new(0);
/// Pages of kernel memory the child asks sigma0 for (must be refused).
static KERNEL_PAGES: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static NKERNEL: AtomicU64 = AtomicU64::new(0);

/// Kernel image and pool ranges, from the reserved memory descriptors: (low, high) each,
/// the lower one first (the image).
fn reserved() -> [(u64, u64); 2] {
    let mut r = [(u64::MAX, 0u64); 2];
    let mut n = 0;
    for d in kip::memory_descriptors() {
        if !d.is_virtual() && d.mem_type() == Some(MemType::Reserved) && n < 2 {
            r[n] = (d.low(), d.high());
            n += 1;
        }
    }
    if r[1].0 < r[0].0 {
        r.swap(0, 1);
    }
    r
}

/// The child: for every case page, ask sigma0 for it (mapped at the same address), send a
/// string from it to the root, then receive the root's string into it. Then ask sigma0 for
/// the kernel pages and report what it got.
extern "C" fn child() -> ! {
    let root = util::root();
    for (i, case) in CASES
        .iter()
        .take(NCASES.load(Ordering::SeqCst) as usize)
        .enumerate()
    {
        let pa = case.load(Ordering::SeqCst);
        let mapped = sigma0::get_page(Fpage::new_log2(pa, 12)).is_ok();
        // The string starts 0x100 into the page: an offset like any other.
        let va = pa + 0x100;
        let mut w = [0u64; 4];
        w[0] = i as u64;
        w[1] = mapped as u64;
        utcb::set_mrs(1, &w[..2]);
        if mapped {
            utcb::set_mrs(3, &simple_string(LEN, va));
            utcb::set_mr(0, MsgTag::new(REPORT, 2, 2).raw());
        } else {
            utcb::set_mr(0, MsgTag::new(REPORT, 2, 0).raw());
        }
        let _ = syscall::ipc(
            root,
            ThreadId::NIL,
            Timeouts::new(Time::period_micros(3_000_000), Time::NEVER),
        );
        if mapped {
            utcb::set_br(0, 1);
            utcb::set_br(1, simple_string(LEN, va)[0]);
            utcb::set_br(2, va);
        } else {
            utcb::set_br(0, 0);
        }
        let _ = msg::receive_timeout(root, Time::period_micros(3_000_000));
        utcb::set_br(0, 0);
    }
    let mut got = 0u64;
    for (k, p) in KERNEL_PAGES
        .iter()
        .take(NKERNEL.load(Ordering::SeqCst) as usize)
        .enumerate()
    {
        if sigma0::get_page(Fpage::new_log2(p.load(Ordering::SeqCst), 12)).is_ok() {
            got |= 1 << k;
        }
    }
    util::report(&[got]);
    util::park()
}

/// Result of one string case as the root saw it.
#[derive(Clone, Copy, Default)]
struct CaseResult {
    mapped: bool,
    recv_code: u64,
    send_code: u64,
    rbuf_clean: bool,
}

fn string_cases(s: &mut Cx, cases: &[(&str, u64)]) {
    // The KIP as we see it before.
    let kip_before = kip_copy();
    for (i, &(_, pa)) in cases.iter().enumerate() {
        CASES[i].store(pa, Ordering::SeqCst);
    }
    NCASES.store(cases.len() as u64, Ordering::SeqCst);
    let [image, pool] = reserved();
    let mut kpages = [
        image.0,
        image.0 + 0x1000,
        image.0 + 0x2000,
        image.0 + 0x3000,
        pool.0,
        pool.0 + 0x10_0000,
        pool.1 & !0xFFF,
        image.1 & !0xFFF,
    ];
    for p in kpages.iter_mut() {
        *p &= !0xFFF;
    }
    for (k, p) in kpages.iter().enumerate() {
        KERNEL_PAGES[k].store(*p, Ordering::SeqCst);
    }
    NKERNEL.store(kpages.len() as u64, Ordering::SeqCst);
    // SAFETY: our own statics; the child never touches them.
    unsafe {
        let sp = &raw mut SBUF.0;
        for i in 0..LEN as usize {
            (*sp)[i] = PWNED[i % PWNED.len()];
        }
    }
    // The same child on every run: sigma0 gives each page only to its first owner.
    static CHILD: AtomicU64 = AtomicU64::new(0);
    let c = s.thread_once(&CHILD);
    let sp = s.stack();
    let started = spawn(c, sp, child);
    s.check(
        "security_memory.child_started",
        started.is_ok(),
        format_args!("{started:?}"),
    );
    if started.is_err() {
        return;
    }
    let mut results = [CaseResult::default(); MAX_CASES];
    for r in results.iter_mut().take(cases.len()) {
        // SAFETY: our own buffer; no transfer into it is running.
        unsafe { core::ptr::write_bytes(&raw mut RBUF as *mut u8, 0xAA, 4096) };
        utcb::set_br(0, 1);
        utcb::set_br(1, simple_string(LEN, &raw const RBUF as u64)[0]);
        utcb::set_br(2, &raw const RBUF as u64);
        let got = syscall::ipc(
            ThreadId::NIL,
            c,
            Timeouts::new(Time::NEVER, Time::period_micros(5_000_000)),
        );
        r.recv_code = if got.tag.error() {
            utcb::error_code()
        } else {
            0
        };
        r.mapped = utcb::mr(2) == 1;
        utcb::set_br(0, 0);
        // SAFETY: as above.
        r.rbuf_clean = unsafe { core::slice::from_raw_parts(&raw const RBUF as *const u8, 4096) }
            .iter()
            .all(|&b| b == 0xAA);
        utcb::set_mrs(1, &simple_string(LEN, &raw const SBUF as u64));
        utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
        let sent = syscall::ipc(
            c,
            ThreadId::NIL,
            Timeouts::new(Time::period_micros(5_000_000), Time::NEVER),
        );
        r.send_code = if sent.tag.error() {
            utcb::error_code()
        } else {
            0
        };
    }
    for (i, &(name, pa)) in cases.iter().enumerate() {
        let r = results[i];
        s.check(
            &name_of("security_memory.string_source_refused", name),
            r.mapped && r.recv_code == 9 && r.rbuf_clean,
            format_args!(
                "pa {pa:#x}: mapped {} receiver code {:#x} (want 9 = overflow at 0) buffer untouched {}",
                r.mapped, r.recv_code, r.rbuf_clean
            ),
        );
        s.check(
            &name_of("security_memory.string_buffer_refused", name),
            r.mapped && r.send_code == 8,
            format_args!(
                "pa {pa:#x}: mapped {} sender code {:#x} (want 8 = overflow at 0)",
                r.mapped, r.send_code
            ),
        );
    }
    s.check(
        "security_memory.kip_unchanged",
        kip_copy() == kip_before,
        format_args!("the KIP changed"),
    );
    let refused = util::receive_report(c, 5000);
    s.check(
        "security_memory.sigma0_refuses_kernel_image_and_pool",
        matches!(refused, Ok((w, _)) if w[0] == 0),
        format_args!("pages granted (bit mask of {kpages:x?}): {refused:x?}"),
    );
    kill(c);
}

fn name_of(prefix: &str, case: &str) -> heapless_name::Name {
    heapless_name::Name::new(prefix, case)
}

/// A check name built on the stack (no allocator in the root server).
mod heapless_name {
    pub struct Name {
        buf: [u8; 96],
        len: usize,
    }
    impl Name {
        pub fn new(a: &str, b: &str) -> Name {
            let mut n = Name {
                buf: [0; 96],
                len: 0,
            };
            for part in [a.as_bytes(), b".", b.as_bytes()] {
                let k = part.len().min(n.buf.len() - n.len);
                n.buf[n.len..n.len + k].copy_from_slice(&part[..k]);
                n.len += k;
            }
            n
        }
    }
    impl core::ops::Deref for Name {
        type Target = str;
        fn deref(&self) -> &str {
            core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
        }
    }
}

fn kip_copy() -> [u64; 512] {
    let mut k = [0u64; 512];
    for (i, w) in k.iter_mut().enumerate() {
        // SAFETY: the KIP is mapped (read-only) at its KIP-area address in our space.
        *w = unsafe { core::ptr::read_volatile((kip::kip_address() as *const u64).add(i)) };
    }
    k
}

/// Creates `t` as the first thread of a new space and starts it at `f` with stack pointer
/// `sp` (a stack of the check's [`Cx`]).
fn spawn(t: ThreadId, sp: u64, f: extern "C" fn() -> !) -> Result<(), (u64, u64)> {
    if !util::ensure_pager() {
        return Err((0, 0));
    }
    util::new_space(t)?;
    start_in(t, t, 0, sp, f)
}

/// Activates `t` in `space`'s space (UTCB slot `k` of the new space's area) and starts it at
/// `f` with stack pointer `sp`.
fn start_in(
    t: ThreadId,
    space: ThreadId,
    k: u64,
    sp: u64,
    f: extern "C" fn() -> !,
) -> Result<(), (u64, u64)> {
    let (r, e) = util::activate_in(t, space, k);
    if r != 1 {
        return Err((3, e));
    }
    match util::pager_start(t, util::entry(f), sp) {
        Ok(0) => Ok(()),
        Ok(e) | Err(e) => Err((4, e)),
    }
}

// ---------------------------------------------------------------------------------------
// Exhaustion.

/// Attack parameters for the attacker threads: stride (log2), base address, bound.
static STRIDE_LOG2: AtomicU64 = AtomicU64::new(21);
static ATTACK_BASE: AtomicU64 = AtomicU64::new(0);
static ATTACK_BOUND: AtomicU64 = AtomicU64::new(0);

/// The receiving thread of the attacker space: accepts mappings anywhere, for ever.
extern "C" fn sink() -> ! {
    loop {
        msg::accept(Acceptor::map_grant(Fpage::COMPLETE));
        let _ = syscall::ipc(ThreadId::NIL, ThreadId::ANY, Timeouts::NEVER);
    }
}

/// The attacker: maps ATTACK_PAGE to its own sink thread at every stride until refused;
/// reports (mappings made, IPC error code of the refusal).
extern "C" fn attacker() -> ! {
    let page = &raw const ATTACK_PAGE as u64;
    // SAFETY: our own page (fault it in first, so it is mapped in our space).
    unsafe { core::ptr::read_volatile(page as *const u8) };
    // Map every page of our image before the attack: after it the quota leaves no room for
    // another mapping, page faults included (the kernel halts us then, as it should).
    util::prepare();
    util::report(&[READY]);
    let (Ok((w, _)), stride, base, bound) = (
        util::receive_report(util::root(), 5000),
        STRIDE_LOG2.load(Ordering::SeqCst),
        ATTACK_BASE.load(Ordering::SeqCst),
        ATTACK_BOUND.load(Ordering::SeqCst),
    ) else {
        util::report(&[0, u64::MAX]);
        util::park()
    };
    let sink = ThreadId::from_raw(w[0]);
    let mut n = 0u64;
    let mut code = 0u64;
    while n < bound {
        let item = MapItem::new(
            Fpage::new_log2(page, 12).with_rights(Rights::R),
            base + (n << stride),
        )
        .to_words(false);
        utcb::set_mrs(1, &item);
        utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
        let r = syscall::ipc(
            sink,
            ThreadId::NIL,
            Timeouts::new(Time::period_micros(2_000_000), Time::NEVER),
        );
        if r.tag.error() {
            code = utcb::error_code();
            break;
        }
        n += 1;
    }
    // At the quota, the first page is mapped again with more rights (as a pager upgrading a
    // read-only page on a write fault): it costs nothing, so it must still work.
    let item =
        MapItem::new(Fpage::new_log2(page, 12).with_rights(Rights::RW), base).to_words(false);
    utcb::set_mrs(1, &item);
    utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
    let r = syscall::ipc(
        sink,
        ThreadId::NIL,
        Timeouts::new(Time::period_micros(2_000_000), Time::NEVER),
    );
    let remap = if r.tag.error() { utcb::error_code() } else { 0 };
    util::report(&[n, code, remap]);
    util::park()
}

/// The attacker's first report.
const READY: u64 = 0x4_EAD1;

/// The threads and stacks of one attacking space (fresh ids from the check's [`Cx`]; the
/// stacks are reused by the next attacker once this one is deleted).
#[derive(Clone, Copy)]
struct Attacker {
    a: ThreadId,
    b: ThreadId,
    sps: [u64; 2],
}

impl Attacker {
    fn new(cx: &mut Cx, sps: [u64; 2]) -> Self {
        Attacker {
            a: cx.thread(),
            b: cx.thread(),
            sps,
        }
    }
}

/// One attack by a fresh space; returns (mappings, error code, error code of re-mapping the
/// first page with more rights at the quota), the attacker still alive.
fn attack(
    at: Attacker,
    stride_log2: u64,
    base: u64,
    bound: u64,
) -> Result<(u64, u64, u64), (u64, u64)> {
    STRIDE_LOG2.store(stride_log2, Ordering::SeqCst);
    ATTACK_BASE.store(base, Ordering::SeqCst);
    ATTACK_BOUND.store(bound, Ordering::SeqCst);
    let (a, b) = (at.a, at.b);
    spawn(a, at.sps[0], attacker)?;
    start_in(b, a, 1, at.sps[1], sink)?;
    match util::receive_report(a, 5000) {
        Ok((w, _)) if w[0] == READY => {}
        Ok((w, _)) => return Err((6, w[0])),
        Err(e) => return Err((6, e)),
    }
    // The sink's id, as a report the attacker waits for.
    utcb::set_mrs(1, &[b.raw()]);
    utcb::set_mr(0, MsgTag::new(REPORT, 1, 0).raw());
    let _ = syscall::ipc(
        a,
        ThreadId::NIL,
        Timeouts::new(Time::period_micros(5_000_000), Time::NEVER),
    );
    match util::receive_report(a, 60_000) {
        Ok((w, _)) => Ok((w[0], w[1], w[2])),
        Err(e) => Err((5, e)),
    }
}

fn delete_attacker(at: Attacker) {
    kill(at.b);
    kill(at.a);
}

/// A new space (thread `v`, stack pointer `sp`) faults its pages in (the pager maps them) and
/// reports: true if it ran.
fn victim_runs(v: ThreadId, sp: u64) -> bool {
    let ok = spawn(v, sp, util::child_hello).is_ok()
        && matches!(util::receive_report(v, 5000), Ok((w, _)) if w[0] == v.raw());
    kill(v);
    ok
}

fn exhaustion(s: &mut Cx, name: &str, stride_log2: u64, base: u64, bound: u64) {
    let sps = [s.stack(), s.stack()];
    let victim_sp = s.stack();
    let at = Attacker::new(s, sps);
    let first = attack(at, stride_log2, base, bound);
    let refused = matches!(first, Ok((n, code, _)) if n < bound && code == 8);
    s.check(
        &name_of("security_memory.exhaustion_refused_to_attacker", name),
        refused,
        format_args!("(mappings, error code, _) {first:x?}, bound {bound}; want overflow (8)"),
    );
    s.check(
        &name_of("security_memory.remap_at_quota_works", name),
        matches!(first, Ok((_, _, 0))),
        format_args!("(mappings, error code, re-map error code) {first:x?}"),
    );
    let v = s.thread();
    let ran = victim_runs(v, victim_sp);
    s.check(
        &name_of("security_memory.other_space_maps_faults_runs", name),
        ran,
        format_args!("a new space did not run while the attacker held its memory"),
    );
    delete_attacker(at);
    let Ok((n1, _, _)) = first else {
        return;
    };
    // Ten more attackers in a row: together far more than the pool; each gets as far.
    let mut counts = [0u64; 10];
    for c in counts.iter_mut() {
        let at = Attacker::new(s, sps);
        *c = attack(at, stride_log2, base, bound).map_or(u64::MAX, |r| r.0);
        delete_attacker(at);
    }
    s.check(
        &name_of("security_memory.kernel_memory_returns_after_deletion", name),
        counts.iter().all(|&c| c == n1),
        format_args!("first attacker {n1}, then {counts:?}"),
    );
    let v2 = s.thread();
    s.check(
        &name_of("security_memory.other_space_runs_after_attacks", name),
        victim_runs(v2, victim_sp),
        format_args!("a new space did not run after the attacks"),
    );
}

// ---------------------------------------------------------------------------------------
// Page tables under a replaced superpage.

/// Rounds of the superpage churn: more than the default pool has frames.
const CHURN_ROUNDS: u64 = 20_000;
/// Where the churn space gets its pages (sigma0's part: shared memory above the direct map).
const CHURN_BASE: u64 = 600 << 30;

/// Does the CPU have 1 GiB pages (CPUID 0x8000_0001 EDX bit 26)?
fn has_1g_pages() -> bool {
    let max = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    max >= 0x8000_0001 && core::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 26) != 0
}

/// Churn, mapping side: maps ATTACK_PAGE (4 KiB) to the sink thread of its own space at
/// CHURN_BASE, CHURN_ROUNDS times (each builds a page directory and a page table there).
extern "C" fn churn_mapper() -> ! {
    let page = &raw const ATTACK_PAGE as u64;
    util::prepare();
    util::report(&[READY]);
    let Ok((w, _)) = util::receive_report(util::root(), 5000) else {
        util::park()
    };
    let sink = ThreadId::from_raw(w[0]);
    for _ in 0..CHURN_ROUNDS {
        let item = MapItem::new(Fpage::new_log2(page, 12).with_rights(Rights::R), CHURN_BASE)
            .to_words(false);
        utcb::set_mrs(1, &item);
        utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
        let r = syscall::ipc(
            sink,
            ThreadId::NIL,
            Timeouts::new(Time::period_micros(5_000_000), Time::NEVER),
        );
        if r.tag.error() {
            break;
        }
    }
    util::park()
}

/// Churn, sink side: receives the 4 KiB page at CHURN_BASE, then asks sigma0 for the 1 GiB
/// page there, which replaces the page directory and page table by one entry; reports
/// (rounds completed, CHURN_ROUNDS).
extern "C" fn churn_sink() -> ! {
    let mut done = 0;
    while done < CHURN_ROUNDS {
        msg::accept(Acceptor::map_grant(Fpage::COMPLETE));
        let r = syscall::ipc(
            ThreadId::NIL,
            ThreadId::ANY,
            Timeouts::new(Time::NEVER, Time::period_micros(5_000_000)),
        );
        if r.tag.error() || sigma0::get_page(Fpage::new_log2(CHURN_BASE, 30)).is_err() {
            break;
        }
        done += 1;
    }
    util::report(&[done, CHURN_ROUNDS]);
    util::park()
}

/// A 1 GiB page mapped over a page directory with page tables below it frees all of them:
/// a non-privileged space doing so again and again (more often than the pool has frames)
/// never runs out. Needs 1 GiB pages (`-cpu max`); without them the check is trivially met.
fn superpage_churn(s: &mut Cx) {
    if !has_1g_pages() {
        s.check(
            "security_memory.superpage_over_tables_frees_them",
            true,
            format_args!(""),
        );
        return;
    }
    let (a, b) = (s.thread(), s.thread());
    let sps = [s.stack(), s.stack()];
    let got = (|| {
        spawn(a, sps[0], churn_mapper)?;
        start_in(b, a, 1, sps[1], churn_sink)?;
        match util::receive_report(a, 5000) {
            Ok((w, _)) if w[0] == READY => {}
            other => return Err((6, other.map_or_else(|e| e, |(w, _)| w[0]))),
        }
        utcb::set_mrs(1, &[b.raw()]);
        utcb::set_mr(0, MsgTag::new(REPORT, 1, 0).raw());
        let _ = syscall::ipc(
            a,
            ThreadId::NIL,
            Timeouts::new(Time::period_micros(5_000_000), Time::NEVER),
        );
        util::receive_report(b, 300_000).map_err(|e| (5, e))
    })();
    s.check(
        "security_memory.superpage_over_tables_frees_them",
        matches!(got, Ok((w, _)) if w[0] == CHURN_ROUNDS),
        format_args!("(rounds, of) {got:x?}"),
    );
    kill(b);
    kill(a);
}

/// String copies through odd physical memory, and sigma0 refusing kernel memory.
fn strings(s: &mut Cx) {
    let [image, _] = reserved();
    const PAST_DIRECT_MAP: u64 = 510 << 30;
    let img = image.0 & !0xFFF;
    let cases: [(&str, u64); 12] = [
        ("lapic_0xfee00000", 0xFEE0_0000),
        ("vga_0xb8000", 0xB8000),
        ("top_0xfffff000", 0xFFFF_F000),
        ("past_direct_map_image", PAST_DIRECT_MAP + img),
        ("past_direct_map_image_1", PAST_DIRECT_MAP + img + 0x1000),
        ("past_direct_map_image_2", PAST_DIRECT_MAP + img + 0x2000),
        ("past_direct_map_image_3", PAST_DIRECT_MAP + img + 0x3000),
        ("past_direct_map_kstacks", (511 << 30) + 0x1000),
        ("hole_8g", 8 << 30),
        ("hole_100g", 100 << 30),
        ("beyond_512g", (512 << 30) + img),
        ("beyond_600g", 600 << 30),
    ];
    string_cases(s, &cases);
}
