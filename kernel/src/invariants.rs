//! Kernel self-checks for the fuzzer (cargo feature `invariants`, never in the production
//! build): the kernel verifies its own data structures on request of a user program
//! (`int3; cmpb $0x21,%al`, see `kdb.rs`), prints every violation it finds and returns
//! their number in RAX (0 = all invariants hold).
//!
//! What is checked (ported to core v2: queues linked by thread number, the state enum with
//! its partner handles, the timer heap):
//! * **threads**: every thread-table entry is the TCB of its own number, none is Dead, every
//!   space's thread count matches the threads that point at it;
//! * **ready queues**: each queue is acyclic and well linked (`prev` of each member is the
//!   one before it, `tail` is the last), its members are marked queued and of the queue's
//!   priority, the bitmap has a bit exactly for non-empty queues, and the number of threads
//!   marked queued equals the number of members;
//! * **timers**: the heap's own check (order, position index), and every thread with a
//!   finite deadline has an entry in the heap;
//! * **send queues**: acyclic and well linked, members are SendBlocked on the queue's owner
//!   (`to` names it), and every SendBlocked thread is in exactly one queue (member count =
//!   SendBlocked threads; catches "a thread in two send queues");
//! * **closed-receiver lists**: acyclic and well linked, members name the owner in `recvq_on`;
//! * **mapping database**: its own `check`;
//! * **mapping database against the page tables** (every space but sigma0's, whose
//!   idempotent mappings the kernel makes without the database): each mapping of the space
//!   is a present user leaf of its size at its address with its physical address and write
//!   right, and each present leaf of the user half is a mapping of the database or a KIP /
//!   UTCB page (which the database never holds); the space's mapping counter equals its
//!   mappings; its page-table counter equals the tables found under its PML4;
//! * **kernel memory**: the pool's in-use count, free list and untouched rest add up to the
//!   pool; and the frames in use are what owners hold plus a constant fixed at boot: per
//!   thread its stack and TCB pages, per space its descriptor, PML4, listed frames (page
//!   tables + UTCB pages: the list holds exactly these) and I/O bitmap. The constant (kernel
//!   tables, mapping database slab, ...) is taken at the first check; a change later is a
//!   leak or a double count.
//!
//! Everything here only reads kernel state.

use crate::arch::x86_64::paging::phys_to_virt;
use crate::kernel_state::Kernel;
use crate::kprintln;
use crate::mm::frame;
use crate::space::Space;
use crate::sync::KernelCell;
use crate::thread::{self, State, Tcb};

/// Violations reported per check (the rest are counted only).
const MAX_REPORTS: u32 = 24;

struct Report {
    n: u32,
}

impl Report {
    fn fail(&mut self, args: core::fmt::Arguments<'_>) {
        self.n += 1;
        if self.n <= MAX_REPORTS {
            kprintln!("invariant violated: {}", args);
        }
    }
}

macro_rules! fail {
    ($r:expr, $($a:tt)*) => { $r.fail(format_args!($($a)*)) };
}

/// The spaces seen in one check (distinct space pointers of live threads, with counts).
static SPACES: KernelCell<[(usize, u32); MAX_SPACES]> = KernelCell::new([(0, 0); MAX_SPACES]);
const MAX_SPACES: usize = 4096;

/// The live thread with number `no`, if any (read only).
fn thread_no(no: u32) -> Option<&'static Tcb> {
    // SAFETY: the checks run inside one kernel entry (KDB call) and hold no other reference
    // to a TCB while using this one; nothing is deleted while they run.
    (unsafe { thread::lookup_number(no as u64) }).map(|t| &*t)
}

fn name(t: &Tcb) -> (u64, u64) {
    (t.id.number(), t.id.version())
}

/// Runs every check; returns the number of violations (0 = all hold).
pub fn check(k: &mut Kernel) -> u64 {
    let mut r = Report { n: 0 };
    let nspaces = check_threads(&mut r);
    check_ready_queues(k, &mut r);
    check_timers(k, &mut r);
    check_send_queues(&mut r);
    check_mappings(&mut r);
    let owned = check_spaces(&mut r, nspaces);
    check_memory(&mut r, owned);
    if r.n > MAX_REPORTS {
        kprintln!("invariant violated: ... {} more", r.n - MAX_REPORTS);
    }
    r.n as u64
}

/// The numbers of the live threads, collected by `check_threads` (one scan of the whole
/// table per check instead of one per rule).
static LIVE: KernelCell<([u32; thread::MAX_SLOTS], usize)> =
    KernelCell::new(([0; thread::MAX_SLOTS], 0));

/// Calls `f` for every live thread.
fn each_thread(mut f: impl FnMut(&'static Tcb)) {
    // SAFETY: a short borrow per step; only `check_threads` writes LIVE.
    let n = (unsafe { LIVE.get() }).1;
    for k in 0..n {
        // SAFETY: as above.
        let no = (unsafe { LIVE.get() }).0[k];
        if let Some(t) = thread_no(no) {
            f(t);
        }
    }
}

/// Called (invariants build only) where a thread runs or is made ready, and where a running
/// thread enters a closed receive: it must not be on a closed-receiver list then (only a
/// thread blocked in a closed receive is). Reports at once, with the place, instead of at
/// the next full check.
pub fn ready_off_lists(t: &Tcb, what: &str, at: &'static core::panic::Location<'static>) {
    if t.recvq_on != 0 {
        kprintln!(
            "invariant violated: thread {:?} {} at {} while on the receiver list of {} \
             (state {:?}, wake {:?}, halted {}, xfer_partner {:?}, copier {}, startup {})",
            name(t),
            what,
            at,
            t.recvq_on,
            t.state,
            t.wake,
            t.halted,
            t.xfer_partner,
            t.xfer_copier,
            t.startup
        );
    }
}

/// Called (invariants build only) where a thread enters the kernel by a system call and where
/// a blocked thread's wait returns: it must be ready then, and not a member of a send queue
/// (only a `SendBlocked` thread is). Reports at once, with the place.
pub fn running_unblocked(t: &Tcb, what: &str, at: &'static core::panic::Location<'static>) {
    let mut n = t.sendq.head;
    let mut steps = 0;
    let mut own = false;
    while n != 0 && steps < thread::MAX_SLOTS {
        if n == t.no {
            own = true;
            break;
        }
        match thread_no(n) {
            Some(m) => n = m.sendq_link.next,
            None => break,
        }
        steps += 1;
    }
    if t.state != State::Ready || own {
        kprintln!(
            "invariant violated: thread {:?} {} at {} in state {:?} (wake {:?}, in its own send \
             queue {}, halted {}, xfer_partner {:?}, depth {})",
            name(t),
            what,
            at,
            t.state,
            t.wake,
            own,
            t.halted,
            t.xfer_partner,
            t.kernel_ipc_depth
        );
    }
}

/// Whether thread `no` is a member of `owner`'s send queue (a bounded walk).
fn in_send_queue(owner: &Tcb, no: u32) -> bool {
    let mut n = owner.sendq.head;
    let mut steps = 0;
    while n != 0 && steps < thread::MAX_SLOTS {
        if n == no {
            return true;
        }
        match thread_no(n) {
            Some(m) => n = m.sendq_link.next,
            None => return false,
        }
        steps += 1;
    }
    false
}

/// Called (invariants build only) where a blocked thread is made ready: it must have left the
/// send queue it was in (and its own). Reports at once, with the place.
pub fn woken_off_queues(t: &Tcb, at: &'static core::panic::Location<'static>) {
    let queued_to = match t.state {
        State::SendBlocked { to } => thread_no(to.no).filter(|o| in_send_queue(o, t.no)),
        _ => None,
    };
    if queued_to.is_some() || in_send_queue(t, t.no) {
        kprintln!(
            "invariant violated: thread {:?} woken at {} while in a send queue (state {:?}, \
             wake {:?}, in its own queue {}, halted {}, xfer_partner {:?}, depth {})",
            name(t),
            at,
            t.state,
            t.wake,
            in_send_queue(t, t.no),
            t.halted,
            t.xfer_partner,
            t.kernel_ipc_depth
        );
    }
}

/// Thread table and space thread counts; returns the number of spaces found (in `SPACES`).
fn check_threads(r: &mut Report) -> usize {
    // SAFETY: the only borrow of SPACES in use; it ends before any call that touches it.
    let spaces = unsafe { SPACES.get() };
    let mut nspaces = 0usize;
    // SAFETY: the only borrow of LIVE in use; it ends before any call that touches it.
    let live = unsafe { LIVE.get() };
    live.1 = 0;
    for no in 0..thread::MAX_THREADS as u32 {
        let Some(t) = thread_no(no) else { continue };
        if live.1 < live.0.len() {
            live.0[live.1] = no;
            live.1 += 1;
        } else {
            fail!(r, "more live threads than kernel-stack slots");
        }
        if t.no != no || t.id.number() != no as u64 {
            fail!(r, "thread {:?}: in table entry {}", name(t), no);
        }
        if t.state == State::Dead {
            fail!(r, "thread {:?}: dead but in the table", name(t));
        }
        let sp = t.space as usize;
        match spaces[..nspaces].iter_mut().find(|(s, _)| *s == sp) {
            Some(e) => e.1 += 1,
            None if nspaces < MAX_SPACES => {
                spaces[nspaces] = (sp, 1);
                nspaces += 1;
            }
            None => {}
        }
    }
    let kernel_space = crate::space::kernel_space() as usize;
    for &(sp, count) in spaces[..nspaces].iter() {
        if sp == kernel_space || sp == 0 {
            continue;
        }
        // SAFETY: a live thread's space is live; only read here.
        let s = unsafe { &*(sp as *const Space) };
        if s.threads != count {
            fail!(
                r,
                "space {:#x}: thread count {} but {} threads in it",
                sp,
                s.threads,
                count
            );
        }
    }
    nspaces
}

/// Walks a queue by number: calls `member` for each member with its link, checks the links;
/// returns the number of members.
fn walk(
    r: &mut Report,
    what: &str,
    owner: u64,
    q: kcore::queue::Queue,
    link: impl Fn(&Tcb) -> kcore::queue::Link,
    mut member: impl FnMut(&mut Report, &'static Tcb),
) -> usize {
    let (mut prev, mut n, mut cur) = (0u32, 0usize, q.head);
    while cur != 0 {
        if n > thread::MAX_THREADS {
            fail!(r, "{} of {}: a cycle", what, owner);
            return n;
        }
        let Some(t) = thread_no(cur) else {
            fail!(r, "{} of {}: member {} does not exist", what, owner, cur);
            return n;
        };
        let l = link(t);
        if l.prev != prev {
            fail!(
                r,
                "{} of {}: member {} prev {} != {}",
                what,
                owner,
                cur,
                l.prev,
                prev
            );
        }
        member(r, t);
        n += 1;
        prev = cur;
        cur = l.next;
    }
    if q.tail != prev {
        fail!(
            r,
            "{} of {}: tail {} but last {}",
            what,
            owner,
            q.tail,
            prev
        );
    }
    n
}

fn check_ready_queues(k: &Kernel, r: &mut Report) {
    let (queues, bitmap) = crate::schedule::queues_for_check(k);
    let mut members = 0usize;
    for (prio, q) in queues.iter().enumerate() {
        let bit = bitmap[prio / 64] & (1 << (prio % 64)) != 0;
        if bit == q.is_empty() {
            fail!(
                r,
                "ready bitmap bit {} is {} for a queue empty={}",
                prio,
                bit,
                q.is_empty()
            );
        }
        members += walk(
            r,
            "ready queue",
            prio as u64,
            *q,
            |t| t.ready_link,
            |r, t| {
                if !t.ready_queued || t.priority as usize != prio {
                    fail!(
                        r,
                        "thread {:?} in ready queue {}: queued={} priority {}",
                        name(t),
                        prio,
                        t.ready_queued,
                        t.priority
                    );
                }
            },
        );
    }
    let mut marked = 0usize;
    each_thread(|t| marked += t.ready_queued as usize);
    if marked != members {
        fail!(
            r,
            "{} threads marked ready-queued, {} in the ready queues",
            marked,
            members
        );
    }
}

fn check_timers(k: &Kernel, r: &mut Report) {
    if let Err(e) = crate::schedule::timers_for_check(k, None) {
        fail!(r, "timer heap: {}", e);
    }
    each_thread(|t| {
        if t.deadline != u64::MAX && crate::schedule::timers_for_check(k, Some(t.slot)) != Ok(true)
        {
            fail!(
                r,
                "thread {:?}: deadline {} but no timer",
                name(t),
                t.deadline
            );
        }
    });
}

fn check_send_queues(r: &mut Report) {
    let (mut members, mut blocked) = (0usize, 0usize);
    let (mut listed, mut on_lists) = (0usize, 0usize);
    each_thread(|owner| {
        let o = owner.no;
        members += walk(
            r,
            "send queue",
            o as u64,
            owner.sendq,
            |t| t.sendq_link,
            |r, t| match t.state {
                State::SendBlocked { to } if to.no == o => {}
                s => fail!(
                    r,
                    "thread {:?} in send queue of {}: state {:?}",
                    name(t),
                    o,
                    s
                ),
            },
        );
        listed += walk(
            r,
            "receiver list",
            o as u64,
            owner.recvq,
            |t| t.recvq_link,
            |r, t| {
                if t.recvq_on != o {
                    fail!(
                        r,
                        "thread {:?} in receiver list of {}: on {}",
                        name(t),
                        o,
                        t.recvq_on
                    );
                }
                // Only a closed receive from the owner puts a thread on its list.
                match t.state {
                    State::RecvBlocked { from } if from.number() == o as u64 => {}
                    s => fail!(
                        r,
                        "thread {:?} in receiver list of {}: state {:?} (not a receive from it)",
                        name(t),
                        o,
                        s
                    ),
                }
            },
        );
        on_lists += (owner.recvq_on != 0) as usize;
        blocked += matches!(owner.state, State::SendBlocked { .. }) as usize;
    });
    if listed != on_lists {
        fail!(
            r,
            "{} receiver-list members but {} threads marked on a list",
            listed,
            on_lists
        );
    }
    if members != blocked {
        fail!(
            r,
            "{} send-queue members but {} SendBlocked threads",
            members,
            blocked
        );
    }
}

fn check_mappings(r: &mut Report) {
    if let Some(db) = crate::mapping::database()
        && let Err(e) = db.check()
    {
        fail!(r, "mapping database: {}", e);
    }
}

/// The frames the kernel allocated at boot and keeps (kernel tables, slabs, kernel-stack
/// tables): in use minus owned, taken at the first check.
static BOOT_FRAMES: KernelCell<Option<u64>> = KernelCell::new(None);

/// Page tables against the mapping database for every space in `SPACES[..nspaces]`; returns
/// the pool frames the threads and spaces own.
fn check_spaces(r: &mut Report, nspaces: usize) -> u64 {
    let mut threads = 0u64;
    each_thread(|_| threads += 1);
    let mut owned = threads * thread::FRAMES_PER_THREAD;
    let kernel_space = crate::space::kernel_space() as usize;
    for k in 0..nspaces {
        // SAFETY: a short borrow of SPACES; nothing else uses it meanwhile.
        let sp = (unsafe { SPACES.get() })[k].0;
        if sp == kernel_space || sp == 0 {
            continue;
        }
        // SAFETY: a live thread's space is live; only read here.
        let s = unsafe { &*(sp as *const Space) };
        owned += 2 + s.frames_for_check() + s.io.frames_for_check();
        check_space(r, s);
    }
    owned
}

/// What a walk of one space's page tables found.
#[derive(Default)]
struct Walked {
    tables: u64,
    utcb_pages: u64,
    leaves: u64,
}

/// Scans the table `t` of `level` (3 = PDPT .. 1 = PT) that maps from `base`, and the tables
/// below it (recursion depth at most 3).
fn scan(r: &mut Report, s: &Space, t: u64, level: u32, base: u64, w: &mut Walked) {
    use crate::arch::x86_64::paging::{ADDR_MASK, P, PS, RW, US, table};
    w.tables += 1;
    let shift = 12 + 9 * (level - 1);
    let id = crate::mapping::id(s);
    for i in 0..512u64 {
        // SAFETY: a kernel-owned page table; only read.
        let e = (unsafe { table(t) })[i as usize];
        if e & P == 0 {
            continue;
        }
        let va = base + (i << shift);
        if level > 1 && e & PS == 0 {
            scan(r, s, e & ADDR_MASK, level - 1, va, w);
            continue;
        }
        // A leaf of 2^size bytes.
        let size = shift as u8;
        let pa = e & ADDR_MASK & !((1u64 << size) - 1);
        if e & US == 0 {
            fail!(r, "space {:#x}: user leaf at {:#x} without US", id.0, va);
        }
        if s.sigma0 {
            // Its idempotent mappings are not in the database; only its UTCB pages count.
            w.utcb_pages += fpage_has(s.utcb_area, va) as u64;
            continue;
        }
        let m = crate::mapping::database().and_then(|d| d.lookup(id, va));
        if s.is_kip_or_utcb(va) {
            if fpage_has(s.utcb_area, va) {
                w.utcb_pages += 1;
            }
            if let Some(m) = m {
                fail!(
                    r,
                    "space {:#x}: KIP/UTCB page {:#x} also a mapping of {:#x}",
                    id.0,
                    va,
                    m.vaddr
                );
            }
            continue;
        }
        w.leaves += 1;
        match m {
            Some(m)
                if m.vaddr == va
                    && m.size_log2 == size
                    && m.paddr == pa
                    && (e & RW != 0) == m.rights.contains(mapdb::Rights::W) => {}
            Some(m) => fail!(
                r,
                "space {:#x}: leaf {:#x} (2^{} -> {:#x}, rw {}) but mapping {:#x} 2^{} -> {:#x} {:?}",
                id.0,
                va,
                size,
                pa,
                e & RW != 0,
                m.vaddr,
                m.size_log2,
                m.paddr,
                m.rights
            ),
            None => fail!(
                r,
                "space {:#x}: leaf {:#x} (2^{} -> {:#x}) not in the mapping database",
                id.0,
                va,
                size,
                pa
            ),
        }
    }
}

/// One space's page tables against the database and its counters.
fn check_space(r: &mut Report, s: &Space) {
    use crate::arch::x86_64::paging::{ADDR_MASK, P, table};
    let id = crate::mapping::id(s);
    let mut w = Walked::default();
    // The user half: PML4 entries 0..256.
    for i4 in 0..256u64 {
        // SAFETY: a kernel-owned page table; only read.
        let e4 = (unsafe { table(s.pml4) })[i4 as usize];
        if e4 & P != 0 {
            scan(r, s, e4 & ADDR_MASK, 3, i4 << 39, &mut w);
        }
    }
    if w.tables != s.table_frames.get() {
        fail!(
            r,
            "space {:#x}: {} page tables under its PML4, counter {}",
            id.0,
            w.tables,
            s.table_frames.get()
        );
    }
    if w.tables + w.utcb_pages != s.frames_for_check() {
        fail!(
            r,
            "space {:#x}: frame list {} != {} page tables + {} UTCB pages",
            id.0,
            s.frames_for_check(),
            w.tables,
            w.utcb_pages
        );
    }
    if s.sigma0 {
        return;
    }
    let held = crate::mapping::database().map_or(0, |d| d.mappings(id).count() as u64);
    if held != w.leaves {
        fail!(
            r,
            "space {:#x}: {} mappings in the database, {} leaves in its page tables",
            id.0,
            held,
            w.leaves
        );
    }
    if held != s.mappings.get() {
        fail!(
            r,
            "space {:#x}: {} mappings in the database, counter {}",
            id.0,
            held,
            s.mappings.get()
        );
    }
}

fn fpage_has(f: abi::Fpage, va: u64) -> bool {
    let size = f.size();
    size != 0 && va >= f.base() && va - f.base() < size
}

fn check_memory(r: &mut Report, owned: u64) {
    let (start, end, fresh, free_head, in_use) = frame::pool_for_check();
    let total = (end - start) / frame::FRAME_SIZE;
    let untouched = (end.saturating_sub(fresh)) / frame::FRAME_SIZE;
    let mut free = 0u64;
    let mut f = free_head;
    while f != 0 {
        if f < start || f >= fresh || f % frame::FRAME_SIZE != 0 {
            fail!(r, "kernel memory: free list holds {:#x}", f);
            break;
        }
        free += 1;
        if free > total {
            fail!(r, "kernel memory: free list has a cycle");
            break;
        }
        // SAFETY: free frames hold the address of the next free frame in their first word.
        f = unsafe { *(phys_to_virt(f) as *const u64) };
    }
    if in_use + free + untouched != total {
        fail!(
            r,
            "kernel memory: {} in use + {} free + {} untouched != {} frames",
            in_use,
            free,
            untouched,
            total
        );
    }
    // SAFETY: the only borrow of BOOT_FRAMES in use.
    let boot = unsafe { BOOT_FRAMES.get() };
    let fixed = in_use.wrapping_sub(owned);
    match *boot {
        None => *boot = Some(fixed),
        Some(b) if b != fixed => fail!(
            r,
            "kernel memory: {} frames in use, {} owned by threads and spaces: {} unowned, {} at the first check",
            in_use,
            owned,
            fixed as i64,
            b
        ),
        Some(_) => {}
    }
}
