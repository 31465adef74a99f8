//! `scale`: how the cost of one operation grows with state the operation does not touch.
//!
//! Each figure is an rdtsc delta; under QEMU `-icount shift=0` (as `make bench` boots it) that
//! is an exact instruction count. For N in [`NS`] the root builds background state (N threads
//! in one new address space that sleep with finite timeouts, or that are queued sending to the
//! root), then times single operations that do not involve that state:
//!
//! * `thread-create-activate`, `thread-delete`: ThreadControl of a fresh thread in the root's
//!   space with N other threads existing;
//! * `ipc-finite-timeout`: one-way IPC (Call / ReplyWait, 0 words) with a finite receive
//!   timeout later than the N armed timeouts;
//! * `closed-receive-miss`: a closed receive with timeout zero from a thread that is not in the
//!   queue while N senders are queued on the root;
//! * `space-delete`: deleting a space with N pages mapped one per 2 MiB (its thread ran: it
//!   also holds the pages of its code, data and stack, and the 129 pages of the fault figure);
//! * `space-delete-empty`: deleting a space whose one thread never ran (KIP and UTCB pages
//!   only), ThreadControl delete included;
//! * `pagefault-roundtrip`: a 4 KiB page fault resolved by a pager's map item, per fault (the
//!   pager answers with ReplyWait: fault IPC, one ReplyWait carrying the map item);
//! * `map-item`, `unmap`: one 4 KiB map item (beyond the IPC carrying it) and the Unmap of one
//!   leaf mapping, with N other pages mapped in the receiving space ([`MAP_NS`]);
//! * `unmap-in-superpage`: Unmap (no flush) of one 4 KiB page inside a 2 MiB mapping of the
//!   root (from sigma0) that has N 4 KiB children in the receiver's space ([`SUPER_NS`]): the
//!   kernel must find the child it hits without visiting the others;
//! * `unmap-chain`: Unmap (no flush) of a page of the root that was mapped on through a
//!   chain of N spaces (root → link 1 → … → link N): the depth of the mapping tree
//!   ([`CHAIN_DEPTHS`]); every level is one mapping to revoke.
//!
//! `scale profile <k>` runs only k map items, each followed by the Unmap of its source page,
//! for `scripts/profile-map.sh` (instructions by kernel function).
//!
//! Output: `scale: <op> n=<N> instr=<x.xx>` per figure, then `scale: done` and KDB
//! `exit-success` (or `exit-failure` when a set-up step failed). Figures only: nothing here
//! passes or fails on timing.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::items::MapItem;
use abi::msgtag::labels;
use abi::{Acceptor, Fpage, MsgTag, Rights, ThreadId, Time, Timeouts};
use l4::{msg, println, syscall, utcb};

use crate::demo::spaces::{self, Stack};

/// Background sizes for the thread, timer and queue figures.
const NS: [u64; 5] = [0, 10, 100, 1000, 4000];
/// Mapped-page counts for the map and unmap figures.
const MAP_NS: [u64; 5] = [0, 10, 100, 1000, 10000];
/// Children of the 2 MiB mapping for the `unmap-in-superpage` figure.
const SUPER_NS: [u64; 4] = [1, 10, 100, 512];
/// Depths of the mapping chain for the `unmap-chain` figure.
const CHAIN_DEPTHS: [u64; 4] = [1, 2, 4, 8];
const MAX_CHAIN: usize = 8;
/// Repetitions per figure.
const REPS: u64 = 32;
const MAX_BG: usize = 4000;

// Thread numbers (user_base + k) and root UTCB slots.
const PAGER: u64 = 0x0F04;
const PAGER_SLOT: u64 = 0x32;
const ECHO: u64 = 0x0F03;
const ECHO_SLOT: u64 = 0x33;
const FRESH: u64 = 0x0F05;
const FRESH_SLOT: u64 = 0x34;
const ANCHOR: u64 = 0x0F00;
const MAPPER: u64 = 0x0F01;
const RECEIVER: u64 = 0x0F02;
const BG_BASE: u64 = 0x1000;
/// Links of the mapping chain: CHAIN .. CHAIN + MAX_CHAIN.
const CHAIN: u64 = 0x0F10;

/// The background space's UTCB area: 4 MiB = 4096 UTCBs.
const BG_UTCB_AREA: u64 = 0x8000_0000;
const BG_UTCB_LOG2: u64 = 22;
/// Where the pager maps [`FILLER`] on a fault (one per 2 MiB or 4 KiB).
const FILL_BASE: u64 = 0x1_0000_0000;
/// Page-fault round trips are measured here.
const FAULT_BASE: u64 = 0x2_0000_0000;
/// Map-item fillers and measured map items land here in the receiver's space.
const MAP_FILL_BASE: u64 = 0x3_0000_0000;
const MAP_MEASURE_BASE: u64 = 0x4_0000_0000;
/// The children of the 2 MiB mapping land here in the receiver's space.
const MAP_SUPER_BASE: u64 = 0x5_0000_0000;
/// Where every link of the chain holds the chained page.
const CHAIN_VA: u64 = 0x6_0000_0000;

const START_REQUEST: u64 = 0x5354;
const DONE: u64 = 0xD0E;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The page mapped at every filler address.
static mut FILLER: Page = Page([0; 4096]);
/// Pages with exactly one derived mapping each (the measured map items and Unmaps).
static mut ONE_CHILD: [Page; REPS as usize] = [const { Page([0; 4096]) }; REPS as usize];

/// Address of page `k` of [`ONE_CHILD`].
fn one_child(k: u64) -> u64 {
    &raw const ONE_CHILD as u64 + (k << 12)
}

#[repr(C, align(16))]
struct SmallStack([u8; 512]);
/// Stacks of the background threads (they only block in one system call).
static mut BG_STACKS: [SmallStack; MAX_BG] = [const { SmallStack([0; 512]) }; MAX_BG];

static mut PAGER_STACK: Stack = Stack::new();
static mut ECHO_STACK: Stack = Stack::new();
static mut MAPPER_STACK: Stack = Stack::new();
static mut RECEIVER_STACK: Stack = Stack::new();
static mut CHAIN_STACKS: [Stack; MAX_CHAIN] = [const { Stack::new() }; MAX_CHAIN];
/// The page the chain passes on.
static mut CHAIN_PAGE: Page = Page([0; 4096]);
/// Links in the current chain.
static CHAIN_DEPTH: AtomicU64 = AtomicU64::new(0);

/// What background threads do: 0 sleep with a finite timeout, 1 send to the root.
static BG_MODE: AtomicU64 = AtomicU64::new(0);
static BG_STARTED: AtomicU64 = AtomicU64::new(0);
/// Pages the mapper touches at 2 MiB strides before reporting.
static MAPPER_PAGES: AtomicU64 = AtomicU64::new(0);
/// 100 × instructions per page fault, measured by the mapper.
static FAULT_RESULT: AtomicU64 = AtomicU64::new(0);

#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects (user-mode rdtsc is allowed).
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn report(op: &str, n: u64, total: u64, count: u64) {
    let x = total * 100 / count.max(1);
    println!("scale: {op} n={n} instr={}.{:02}", x / 100, x % 100);
}

const HOUR: u64 = 3_600_000_000;

/// The pager of every thread this mode creates outside the root's space: pages below
/// [`FILL_BASE`] are the root's own (image, statics, stacks) mapped at the same address;
/// pages at or above it get [`FILLER`]. It also sends start-up messages for the root.
extern "C" fn pager_main() -> ! {
    // Each answer goes out with the next wait in one ReplyWait, as pagers do (sigma0, the
    // reference pagers): a fault costs the fault IPC and one ReplyWait.
    let mut reply: Option<ThreadId> = None;
    loop {
        let r = match reply.take() {
            Some(to) => msg::reply_wait(to),
            None => msg::wait(),
        };
        let Ok((from, tag)) = r else {
            continue;
        };
        if tag.label() & !0xF == labels::PAGE_FAULT {
            let page = utcb::mr(1) & !0xFFF;
            let src = if page >= FILL_BASE {
                &raw const FILLER as u64
            } else {
                // SAFETY: a read of our own space's page below FILL_BASE (image/statics).
                unsafe { core::ptr::read_volatile(page as *const u8) };
                page
            };
            let w = MapItem::new(Fpage::new_log2(src, 12).with_rights(Rights::FULL), page)
                .to_words(false);
            utcb::set_mrs(1, &w);
            utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
            reply = Some(from);
        } else if tag.label() == START_REQUEST && tag.untyped() == 3 {
            let (t, ip, sp) = (ThreadId::from_raw(utcb::mr(1)), utcb::mr(2), utcb::mr(3));
            utcb::set_mrs(1, &[ip, sp]);
            utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
            let ok = msg::send_timeout(t, Time::period_micros(5_000_000)).is_ok();
            utcb::set_mr(1, ok as u64);
            utcb::set_mr(0, MsgTag::new(0, 1, 0).raw());
            reply = Some(from);
        }
    }
}

extern "C" fn background() -> ! {
    let mode = BG_MODE.load(Ordering::SeqCst);
    // Run the blocking call's code path once without blocking (zero timeout), so that every
    // page it touches is mapped before the thread reports that it is about to block: the
    // root must not measure while threads are still in page faults.
    if mode == 0 {
        msg::sleep(Time::ZERO);
    } else {
        utcb::set_mr(0, 0);
        let _ = syscall::ipc(
            spaces::root(),
            ThreadId::NIL,
            Timeouts::new(Time::ZERO, Time::NEVER),
        );
    }
    BG_STARTED.fetch_add(1, Ordering::SeqCst);
    loop {
        if mode == 0 {
            msg::sleep(Time::period_micros(HOUR));
        } else {
            utcb::set_mr(0, 0);
            let _ = syscall::ipc(spaces::root(), ThreadId::NIL, Timeouts::NEVER);
        }
    }
}

/// Answers every message from the root at once; receives with a finite (2 h) timeout.
extern "C" fn echo() -> ! {
    let finite = Time::period_micros(2 * HOUR);
    let mut r = syscall::ipc(
        ThreadId::NIL,
        ThreadId::ANY,
        Timeouts::new(Time::NEVER, finite),
    );
    loop {
        utcb::set_mr(0, 0);
        r = syscall::ipc(r.from, ThreadId::ANY, Timeouts::new(Time::ZERO, finite));
    }
}

/// Touches MAPPER_PAGES pages at 2 MiB strides, then times REPS page faults at 4 KiB strides,
/// then reports to the root and waits.
extern "C" fn mapper() -> ! {
    for i in 0..MAPPER_PAGES.load(Ordering::SeqCst) {
        // SAFETY: the pager maps FILLER at every address at or above FILL_BASE.
        unsafe { core::ptr::write_volatile((FILL_BASE + (i << 21)) as *mut u8, 1) };
    }
    // The first access also builds the page tables: not timed.
    // SAFETY: as above (FAULT_BASE is above FILL_BASE).
    unsafe { core::ptr::write_volatile(FAULT_BASE as *mut u8, 1) };
    // The smallest of four batches: a timer tick inside a batch is not the fault's cost.
    let mut best = u64::MAX;
    for b in 0..4u64 {
        let t0 = rdtsc();
        for i in 1..=REPS {
            let a = FAULT_BASE + ((b * REPS + i) << 12);
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(a as *mut u8, 1) };
        }
        best = best.min(rdtsc() - t0);
    }
    FAULT_RESULT.store(best * 100 / REPS, Ordering::SeqCst);
    utcb::set_mr(0, MsgTag::new(DONE, 0, 0).raw());
    let _ = msg::send_timeout(spaces::root(), Time::period_micros(60_000_000));
    loop {
        msg::sleep(Time::NEVER);
    }
}

/// Accepts map items anywhere and answers every Call of the root with 0 words.
extern "C" fn receiver() -> ! {
    msg::accept(Acceptor::map_grant(Fpage::COMPLETE));
    let root = spaces::root();
    let _ = syscall::ipc(ThreadId::NIL, root, Timeouts::NEVER);
    loop {
        msg::accept(Acceptor::map_grant(Fpage::COMPLETE));
        utcb::set_mr(0, 0);
        let _ = syscall::ipc(root, root, Timeouts::NEVER);
    }
}

/// Link k of the chain: receives the page (from the root or link k-1) at [`CHAIN_VA`] and maps
/// it on to link k+1, or, as the last link of the current depth, tells the root.
extern "C" fn chain_link() -> ! {
    let k = utcb::my_global_id().number() - l4::kip::thread_info().user_base() - CHAIN;
    loop {
        msg::accept(Acceptor::map_grant(Fpage::COMPLETE));
        let _ = syscall::ipc(ThreadId::NIL, ThreadId::ANY, Timeouts::NEVER);
        if k + 1 < CHAIN_DEPTH.load(Ordering::SeqCst) {
            let w = MapItem::new(
                Fpage::new_log2(CHAIN_VA, 12).with_rights(Rights::FULL),
                CHAIN_VA,
            )
            .to_words(false);
            utcb::set_mrs(1, &w);
            utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
            let _ = syscall::ipc(tid(CHAIN + k + 1), ThreadId::NIL, Timeouts::NEVER);
        } else {
            utcb::set_mr(0, MsgTag::new(DONE, 0, 0).raw());
            let _ = syscall::ipc(spaces::root(), ThreadId::NIL, Timeouts::NEVER);
        }
    }
}

fn tid(k: u64) -> ThreadId {
    spaces::tid(k)
}

/// Creates `t` in a new space with the given UTCB area (its UTCB at the area's start).
fn new_space(t: ThreadId, utcb_area: u64, utcb_log2: u64, pager: ThreadId) -> bool {
    spaces::new_space_with_utcb_area(t, pager, utcb_area, utcb_log2)
}

/// N background threads in one new space, started in `mode`; returns whether all run.
fn build_background(n: u64, mode: u64, pager: ThreadId) -> bool {
    BG_MODE.store(mode, Ordering::SeqCst);
    BG_STARTED.store(0, Ordering::SeqCst);
    let anchor = tid(ANCHOR);
    if !new_space(anchor, BG_UTCB_AREA, BG_UTCB_LOG2, pager) {
        return false;
    }
    let me = spaces::root();
    for i in 0..n {
        let t = tid(BG_BASE + i);
        let loc = BG_UTCB_AREA + (i + 1) * spaces::UTCB_SLOT;
        if syscall::thread_control(t, anchor, me, pager, loc) != 1 {
            println!(
                "scale: background thread {i} not created (error {})",
                utcb::error_code()
            );
            return false;
        }
        // SAFETY: stack i belongs to background thread i alone; none runs yet.
        let sp = unsafe { (&raw mut BG_STACKS[i as usize]) as u64 + 512 - 8 };
        if !spaces::start_via_pager(pager, t, background, sp) {
            return false;
        }
    }
    // The root runs at the highest priority: sleep until every background thread is started
    // (bounded generously; the bound is never the figure).
    for _ in 0..100_000 {
        if BG_STARTED.load(Ordering::SeqCst) >= n {
            break;
        }
        msg::sleep(Time::period_micros(1000));
    }
    // Let the last starters reach their blocking call (they run below the root's priority).
    msg::sleep(Time::period_micros(50_000));
    BG_STARTED.load(Ordering::SeqCst) >= n
}

fn teardown_background(n: u64) {
    for i in 0..n {
        spaces::delete(tid(BG_BASE + i));
    }
    spaces::delete(tid(ANCHOR));
}

fn measure_threads(n: u64, pager: ThreadId) {
    let me = spaces::root();
    let t = tid(FRESH);
    let loc = spaces::root_utcb_slot(FRESH_SLOT);
    let (mut create, mut delete) = (0, 0);
    for _ in 0..REPS {
        let t0 = rdtsc();
        let ok = syscall::thread_control(t, me, me, pager, loc);
        let t1 = rdtsc();
        syscall::thread_control(t, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX);
        let t2 = rdtsc();
        if ok != 1 {
            println!(
                "scale: fresh thread not created (error {})",
                utcb::error_code()
            );
        }
        create += t1 - t0;
        delete += t2 - t1;
    }
    report("thread-create-activate", n, create, REPS);
    report("thread-delete", n, delete, REPS);
}

fn measure_finite_ipc(n: u64) {
    let e = tid(ECHO);
    let finite = Timeouts::new(Time::NEVER, Time::period_micros(2 * HOUR));
    let round = |k: u64| {
        for _ in 0..k {
            utcb::set_mr(0, 0);
            syscall::ipc(e, e, finite);
        }
    };
    round(8);
    let t0 = rdtsc();
    round(REPS * 4);
    let t1 = rdtsc();
    report("ipc-finite-timeout", n, t1 - t0, 2 * REPS * 4);
}

fn measure_closed_receive_miss(n: u64) {
    let e = tid(ECHO);
    let t0 = rdtsc();
    for _ in 0..REPS {
        syscall::ipc(ThreadId::NIL, e, Timeouts::new(Time::NEVER, Time::ZERO));
    }
    let t1 = rdtsc();
    report("closed-receive-miss", n, t1 - t0, REPS);
}

/// One mapper run: builds a space with `n` pages one per 2 MiB, then deletes it; returns
/// (instructions of the deletion, 100 × instructions per page fault).
fn space_delete_once(n: u64, pager: ThreadId) -> Option<(u64, u64)> {
    MAPPER_PAGES.store(n, Ordering::SeqCst);
    let m = tid(MAPPER);
    // SAFETY: the previous mapper using this stack is deleted.
    let sp = unsafe { spaces::prepare_stack(&raw mut MAPPER_STACK) };
    if !new_space(m, spaces::UTCB_AREA, 14, pager) || !spaces::start_via_pager(pager, m, mapper, sp)
    {
        return None;
    }
    match msg::receive_timeout(m, Time::period_micros(600_000_000)) {
        Ok(tag) if tag.label() == DONE => {}
        _ => {
            println!("scale: the mapper did not finish (n={n})");
            spaces::delete(m);
            return None;
        }
    }
    let t0 = rdtsc();
    spaces::delete(m);
    let t1 = rdtsc();
    Some((t1 - t0, FAULT_RESULT.load(Ordering::SeqCst)))
}

/// The smallest of three runs (a timer tick during one run is not the operation's cost).
fn measure_space_delete(n: u64, pager: ThreadId) -> bool {
    let (mut del, mut fault) = (u64::MAX, u64::MAX);
    for _ in 0..3 {
        let Some((d, f)) = space_delete_once(n, pager) else {
            return false;
        };
        del = del.min(d);
        fault = fault.min(f);
    }
    println!(
        "scale: pagefault-roundtrip n={n} instr={}.{:02}",
        fault / 100,
        fault % 100
    );
    report("space-delete", n, del, 1);
    true
}

/// Deleting a space that holds nothing but its KIP and UTCB pages (its thread never ran).
fn measure_empty_space_delete(pager: ThreadId) -> bool {
    let m = tid(MAPPER);
    let mut total = 0;
    for _ in 0..REPS {
        if !new_space(m, spaces::UTCB_AREA, 14, pager) {
            return false;
        }
        let t0 = rdtsc();
        spaces::delete(m);
        total += rdtsc() - t0;
    }
    report("space-delete-empty", 0, total, REPS);
    true
}

fn map_call(r: ThreadId, item: Option<(u64, u64)>) {
    match item {
        Some((src, dst)) => {
            let w = MapItem::new(Fpage::new_log2(src, 12).with_rights(Rights::FULL), dst)
                .to_words(false);
            utcb::set_mrs(1, &w);
            utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
        }
        None => utcb::set_mr(0, 0),
    }
    syscall::ipc(r, r, Timeouts::NEVER);
}

fn measure_map_unmap(pager: ThreadId) -> bool {
    let r = tid(RECEIVER);
    // SAFETY: not in use.
    let sp = unsafe { spaces::prepare_stack(&raw mut RECEIVER_STACK) };
    if !new_space(r, spaces::UTCB_AREA, 14, pager)
        || !spaces::start_via_pager(pager, r, receiver, sp)
    {
        return false;
    }
    // Own every page we hand out (written, so sigma0 maps them writable).
    // SAFETY: our own statics, used by nobody else yet.
    unsafe {
        core::ptr::write_volatile(&raw mut FILLER.0[0], 1);
        for k in 0..REPS {
            core::ptr::write_volatile(one_child(k) as *mut u8, 1);
        }
    }
    let filler = &raw const FILLER as u64;
    let mut filled = 0u64;
    for (round, &n) in MAP_NS.iter().enumerate() {
        while filled < n {
            map_call(r, Some((filler, MAP_FILL_BASE + (filled << 12))));
            filled += 1;
        }
        let t0 = rdtsc();
        for _ in 0..REPS {
            map_call(r, None);
        }
        let t1 = rdtsc();
        let base = round as u64 * REPS;
        for k in 0..REPS {
            let src = one_child(k);
            map_call(r, Some((src, MAP_MEASURE_BASE + ((base + k) << 12))));
        }
        let t2 = rdtsc();
        let empty = t1 - t0;
        let with = t2 - t1;
        report("map-item", n, with.saturating_sub(empty), REPS);
        let t3 = rdtsc();
        for k in 0..REPS as usize {
            let src = one_child(k as u64);
            utcb::set_mr(0, Fpage::new_log2(src, 12).with_rights(Rights::FULL).raw());
            syscall::unmap(0);
        }
        let t4 = rdtsc();
        report("unmap", n, t4 - t3, REPS);
    }
    let ok = measure_unmap_in_superpage(r);
    spaces::delete(r);
    ok
}

/// Unmap of one 4 KiB page of a 2 MiB mapping with N children (each a 4 KiB page of it mapped
/// to the receiver `r`); the unmapped child is mapped again after each (not timed).
fn measure_unmap_in_superpage(r: ThreadId) -> bool {
    let Ok(f) = l4::sigma0::get_any(21) else {
        println!("scale: sigma0 gave no 2 MiB page");
        return false;
    };
    let base = f.base();
    let child = |k: u64| (base + (k << 12), MAP_SUPER_BASE + (k << 12));
    let mut have = 0;
    for &n in &SUPER_NS {
        while have < n {
            map_call(r, Some(child(have)));
            have += 1;
        }
        let mut total = 0;
        for k in 0..REPS {
            let (src, dst) = child(k * 7 % n);
            utcb::set_mr(0, Fpage::new_log2(src, 12).with_rights(Rights::FULL).raw());
            let t0 = rdtsc();
            syscall::unmap(0);
            total += rdtsc() - t0;
            map_call(r, Some((src, dst)));
        }
        report("unmap-in-superpage", n, total, REPS);
    }
    true
}

/// Unmap of a page mapped on through chains of [`CHAIN_DEPTHS`] spaces; the chain is built
/// again after each Unmap (not timed).
fn measure_unmap_chain(pager: ThreadId) -> bool {
    // SAFETY: our own static, used by nobody else yet (written: sigma0 maps it writable).
    unsafe { core::ptr::write_volatile(&raw mut CHAIN_PAGE.0[0], 1) };
    let page = &raw const CHAIN_PAGE as u64;
    let mut ok = true;
    let mut made = 0;
    for k in 0..MAX_CHAIN as u64 {
        let t = tid(CHAIN + k);
        // SAFETY: stack k belongs to link k alone, which does not run yet.
        let sp = unsafe { spaces::prepare_stack(&raw mut CHAIN_STACKS[k as usize]) };
        if !new_space(t, spaces::UTCB_AREA, 14, pager)
            || !spaces::start_via_pager(pager, t, chain_link, sp)
        {
            ok = false;
            break;
        }
        made += 1;
    }
    for &d in &CHAIN_DEPTHS {
        if !ok {
            break;
        }
        CHAIN_DEPTH.store(d, Ordering::SeqCst);
        let last = tid(CHAIN + d - 1);
        let mut total = 0;
        for _ in 0..REPS {
            let w = MapItem::new(
                Fpage::new_log2(page, 12).with_rights(Rights::FULL),
                CHAIN_VA,
            )
            .to_words(false);
            utcb::set_mrs(1, &w);
            utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
            let _ = msg::send_timeout(tid(CHAIN), Time::period_micros(5_000_000));
            match msg::receive_timeout(last, Time::period_micros(60_000_000)) {
                Ok(tag) if tag.label() == DONE => {}
                _ => {
                    println!("scale: the chain of depth {d} did not complete");
                    ok = false;
                    break;
                }
            }
            utcb::set_mr(0, Fpage::new_log2(page, 12).with_rights(Rights::FULL).raw());
            let t0 = rdtsc();
            syscall::unmap(0);
            total += rdtsc() - t0;
        }
        if ok {
            report("unmap-chain", d, total, REPS);
        }
    }
    for k in 0..made {
        spaces::delete(tid(CHAIN + k));
    }
    ok
}

/// `scale profile <k>`: only `k` map items of one 4 KiB page and `k` Unmaps of them (no
/// figures), for an instruction profile of those paths: two boots (k and 0) under QEMU's
/// `-d exec` log, the difference divided by k (`scripts/profile-map.sh`, decision 011).
fn profile(k: u64) {
    spaces::touch_image();
    let pager = tid(PAGER);
    // SAFETY: the stacks are not in use yet.
    let sp_pager = unsafe { spaces::prepare_stack(&raw mut PAGER_STACK) };
    let r = tid(RECEIVER);
    // SAFETY: not in use.
    let sp = unsafe { spaces::prepare_stack(&raw mut RECEIVER_STACK) };
    let ok = spaces::spawn_local(pager, PAGER_SLOT, pager_main, sp_pager)
        && new_space(r, spaces::UTCB_AREA, 14, pager)
        && spaces::start_via_pager(pager, r, receiver, sp);
    // SAFETY: our own statics, used by nobody else yet.
    unsafe {
        for j in 0..REPS {
            core::ptr::write_volatile(one_child(j) as *mut u8, 1);
        }
    }
    map_call(r, None);
    for j in 0..k {
        map_call(r, Some((one_child(j % REPS), MAP_MEASURE_BASE + (j << 12))));
        utcb::set_mr(
            0,
            Fpage::new_log2(one_child(j % REPS), 12)
                .with_rights(Rights::FULL)
                .raw(),
        );
        syscall::unmap(0);
    }
    println!("scale: done");
    l4::kdb::enter(if ok { "exit-success" } else { "exit-failure" });
}

/// Runs every measurement and ends the run.
pub fn run(args: &str) {
    let mut words = args.split_whitespace().skip(1);
    if words.next() == Some("profile") {
        profile(words.next().and_then(|w| w.parse().ok()).unwrap_or(0));
        return;
    }
    println!("scale: start ({REPS} operations per figure)");
    spaces::touch_image();
    // Every background stack page is the root's before the pager hands it on.
    // SAFETY: nobody uses the stacks yet.
    unsafe {
        let base = &raw mut BG_STACKS as *mut u8;
        for off in (0..core::mem::size_of::<[SmallStack; MAX_BG]>()).step_by(4096) {
            core::ptr::write_volatile(base.add(off), 0);
        }
    }
    let pager = tid(PAGER);
    // SAFETY: the stacks are not in use yet.
    let (sp_pager, sp_echo) = unsafe {
        (
            spaces::prepare_stack(&raw mut PAGER_STACK),
            spaces::prepare_stack(&raw mut ECHO_STACK),
        )
    };
    let mut ok = spaces::spawn_local(pager, PAGER_SLOT, pager_main, sp_pager)
        && spaces::spawn_local(tid(ECHO), ECHO_SLOT, echo, sp_echo);
    if ok {
        for &n in &NS {
            if !build_background(n, 0, pager) {
                ok = false;
                break;
            }
            measure_threads(n, pager);
            measure_finite_ipc(n);
            teardown_background(n);
            if !build_background(n, 1, pager) {
                ok = false;
                break;
            }
            measure_closed_receive_miss(n);
            teardown_background(n);
        }
    }
    if ok {
        for &n in &NS {
            ok &= measure_space_delete(n, pager);
        }
        ok = ok && measure_empty_space_delete(pager);
    }
    ok = ok && measure_map_unmap(pager);
    ok = ok && measure_unmap_chain(pager);
    println!("scale: done");
    l4::kdb::enter(if ok { "exit-success" } else { "exit-failure" });
}
