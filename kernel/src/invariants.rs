//! Kernel self-checks for the fuzzer (cargo feature `invariants`, never in the production
//! build): the kernel verifies its own data structures on request of a user program
//! (`int3; cmpb $0x21,%al`, see `kdb.rs`), prints every violation it finds and returns
//! their number in RAX (0 = all invariants hold).
//!
//! What is checked (docs/kernel-bugs.md lists what these checks found):
//! * **threads**: the thread table and the list of all threads agree (every listed thread is
//!   in the table at its number, nothing else is), no thread is dead, every space's thread
//!   count matches the threads that point at it;
//! * **ready queues**: each list is circular and well linked, its members are Ready, not
//!   halted and of the list's priority, the bitmap has a bit exactly for non-empty lists, and
//!   every Ready, non-halted, activated thread is queued;
//! * **timers**: the timeout list is sorted, acyclic, holds only blocked threads with a
//!   deadline, and every thread with a deadline is on it;
//! * **send queues**: acyclic and well linked (the head's `prev` is the tail), members are
//!   SendBlocked on the queue's owner, and every SendBlocked thread is in its partner's queue;
//! * **mapping database**: its own `check`, and it agrees with every page table: each node of
//!   a space (sigma0 excepted) is a present entry of its size with its physical address, and
//!   each present user entry outside the KIP and UTCB areas is covered by a node;
//! * **kernel memory**: the pool's in-use count, free list and untouched rest add up to the
//!   pool; frames in use = a boot-time constant + 5 per thread + what each space owns (its
//!   descriptor, PML4, page tables, UTCB pages), the constant being fixed at the first check.
//!
//! Everything here only reads kernel state (the one write is the remembered constant). The
//! hooks into other modules are one accessor each, behind the same feature:
//! `schedule::queues_for_check`, `mm::frame::pool_for_check`, `mapping::database`.
//! Port note: the core rewrite changes TCB links into ids; only the walks below change.

use crate::arch::x86_64::paging::{ADDR_MASK, P, PS, USER_END, phys_to_virt, table};
use crate::kprintln;
use crate::mm::frame;
use crate::space::Space;
use crate::sync::KernelCell;
use crate::thread::{self, State, Tcb};

/// Violations reported per check (the rest are counted only).
const MAX_REPORTS: u32 = 24;
/// Frames of a thread: 16 KiB stack and the TCB page.
const THREAD_FRAMES: u64 = 5;

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

/// The boot-time part of kernel memory (frames not owned by a thread or space), fixed at the
/// first check.
static BASELINE: KernelCell<Option<u64>> = KernelCell::new(None);
/// The spaces seen in one check (distinct space pointers of live threads).
static SPACES: KernelCell<[(usize, u32); MAX_SPACES]> = KernelCell::new([(0, 0); MAX_SPACES]);
const MAX_SPACES: usize = 4096;

fn tcb(p: *mut Tcb) -> &'static Tcb {
    // SAFETY: callers pass pointers taken from kernel lists after checking them against the
    // thread table (`is_live`), or from the table itself; live TCBs stay mapped.
    unsafe { &*p }
}

/// Is `p` a live TCB (the table entry of its own number)?
fn is_live(p: *mut Tcb) -> bool {
    if p.is_null() {
        return false;
    }
    let start = 0xFFFF_FFFF_C000_0000u64;
    if (p as u64) < start {
        return false;
    }
    // Find it by scanning the all-threads list (pointers in lists must be listed threads).
    let mut q = *thread::ALL_THREADS.get();
    let mut n = 0;
    while !q.is_null() && n < thread::MAX_SLOTS + 4 {
        if q == p {
            return true;
        }
        q = tcb(q).all_next;
        n += 1;
    }
    p == crate::schedule::idle_tcb()
}

fn name(t: &Tcb) -> (u64, u64) {
    (t.id.number(), t.id.version())
}

/// Runs every check; returns the number of violations (0 = all hold).
pub fn check() -> u64 {
    let mut r = Report { n: 0 };
    let threads = check_threads(&mut r);
    check_ready_queues(&mut r);
    check_timers(&mut r, threads);
    check_send_queues(&mut r, threads);
    check_mappings(&mut r);
    check_memory(&mut r);
    if r.n > MAX_REPORTS {
        kprintln!("invariant violated: ... {} more", r.n - MAX_REPORTS);
    }
    r.n as u64
}

/// Thread table, all-threads list, space thread counts. Returns the number of threads.
fn check_threads(r: &mut Report) -> usize {
    let mut n = 0usize;
    let mut prev: *mut Tcb = core::ptr::null_mut();
    let mut p = *thread::ALL_THREADS.get();
    let spaces = SPACES.get();
    let mut nspaces = 0usize;
    while !p.is_null() {
        if n > thread::MAX_SLOTS + 2 {
            fail!(r, "all-threads list longer than the slots: a cycle");
            break;
        }
        let t = tcb(p);
        n += 1;
        if t.all_prev != prev {
            fail!(r, "thread {:?}: all_prev link broken", name(t));
        }
        let no = t.id.number() as usize;
        if no >= thread::MAX_THREADS || thread::THREADS.get()[no] != p {
            fail!(r, "thread {:?}: not in the thread table", name(t));
        }
        if t.state == State::Dead {
            fail!(r, "thread {:?}: dead but listed", name(t));
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
        prev = p;
        p = t.all_next;
    }
    let in_table = thread::THREADS
        .get()
        .iter()
        .filter(|q| !q.is_null())
        .count();
    if in_table != n {
        fail!(r, "thread table holds {} threads, the list {}", in_table, n);
    }
    let kernel_space = crate::space::kernel_space() as usize;
    // Deleted threads a transfer still uses (`thread::ZOMBIES`) count in their space and in
    // kernel memory but are listed nowhere: skip those two checks while any exist.
    let zombies = *thread::ZOMBIES.get() != 0;
    for &(sp, count) in spaces[..nspaces].iter().filter(|_| !zombies) {
        // SAFETY: a live thread's space is live.
        let s = unsafe { &*(sp as *const Space) };
        if sp != kernel_space && s.threads != count {
            fail!(
                r,
                "space {:#x}: thread count {} but {} threads in it",
                sp,
                s.threads,
                count
            );
        }
    }
    SPACE_COUNT.get().clone_from(&nspaces);
    n
}

static SPACE_COUNT: KernelCell<usize> = KernelCell::new(0);

fn check_ready_queues(r: &mut Report) {
    let (heads, bitmap, _) = crate::schedule::queues_for_check();
    let mut queued = 0usize;
    for (prio, &head) in heads.iter().enumerate() {
        let bit = bitmap[prio / 64] & (1 << (prio % 64)) != 0;
        if bit == head.is_null() {
            fail!(
                r,
                "ready bitmap bit {} is {} but the list is {}",
                prio,
                bit,
                { if head.is_null() { "empty" } else { "not empty" } }
            );
        }
        if head.is_null() {
            continue;
        }
        let mut p = head;
        let mut n = 0;
        loop {
            if !is_live(p) {
                fail!(r, "ready list {}: dangling member {:#x}", prio, p as u64);
                break;
            }
            let t = tcb(p);
            if t.state != State::Ready || t.halted {
                fail!(
                    r,
                    "thread {:?} in ready list {} but state {:?} halted {}",
                    name(t),
                    prio,
                    t.state,
                    t.halted
                );
            }
            if t.priority as usize != prio {
                fail!(
                    r,
                    "thread {:?} of priority {} in ready list {}",
                    name(t),
                    t.priority,
                    prio
                );
            }
            if t.ready_next.is_null() || !is_live(t.ready_next) {
                fail!(r, "thread {:?}: broken ready_next", name(t));
                break;
            }
            if tcb(t.ready_next).ready_prev != p {
                fail!(r, "thread {:?}: ready_next's prev is not it", name(t));
            }
            n += 1;
            queued += 1;
            if n > thread::MAX_SLOTS {
                fail!(r, "ready list {} does not return to its head", prio);
                break;
            }
            p = t.ready_next;
            if p == head {
                break;
            }
        }
    }
    let idle = crate::schedule::idle_tcb();
    let mut with_links = 0usize;
    thread::for_each(|t| {
        let p = t as *mut Tcb;
        if !t.ready_next.is_null() {
            with_links += 1;
        }
        if p != idle
            && t.state == State::Ready
            && !t.halted
            && t.is_activated()
            && t.ready_next.is_null()
        {
            fail!(
                r,
                "thread {:?} is ready (prio {}) but in no ready list",
                name(t),
                t.priority
            );
        }
    });
    if with_links != queued {
        fail!(
            r,
            "{} threads have ready links, {} are in the ready lists",
            with_links,
            queued
        );
    }
}

fn check_timers(r: &mut Report, threads: usize) {
    let (_, _, head) = crate::schedule::queues_for_check();
    let mut p = head;
    let mut n = 0usize;
    let mut last = 0u64;
    while !p.is_null() {
        if !is_live(p) {
            fail!(r, "timer list: dangling member {:#x}", p as u64);
            break;
        }
        let t = tcb(p);
        n += 1;
        if n > threads + 1 {
            fail!(r, "timer list longer than the thread count: a cycle");
            break;
        }
        if t.deadline == u64::MAX {
            fail!(r, "thread {:?} on the timer list without deadline", name(t));
        }
        if t.deadline < last {
            fail!(r, "timer list not sorted at thread {:?}", name(t));
        }
        last = t.deadline;
        if !matches!(
            t.state,
            State::SendBlocked | State::RecvBlocked | State::XferWait | State::Transfer
        ) {
            fail!(
                r,
                "thread {:?} on the timer list in state {:?}",
                name(t),
                t.state
            );
        }
        p = t.timer_next;
    }
    let mut with_deadline = 0usize;
    thread::for_each(|t| {
        if t.deadline != u64::MAX {
            with_deadline += 1;
        }
    });
    if with_deadline != n {
        fail!(
            r,
            "{} threads have a deadline, {} are on the timer list",
            with_deadline,
            n
        );
    }
}

fn check_send_queues(r: &mut Report, threads: usize) {
    let mut members = 0usize;
    thread::for_each(|owner| {
        let o = owner as *mut Tcb;
        let head = owner.sendq_head;
        if head.is_null() {
            return;
        }
        let mut p = head;
        let mut prev: *mut Tcb = core::ptr::null_mut();
        let mut n = 0usize;
        while !p.is_null() {
            if !is_live(p) {
                fail!(r, "send queue of {:?}: dangling member", name(owner));
                return;
            }
            let s = tcb(p);
            n += 1;
            members += 1;
            if n > threads {
                fail!(r, "send queue of {:?} has a cycle", name(owner));
                return;
            }
            if s.state != State::SendBlocked {
                fail!(
                    r,
                    "thread {:?} in the send queue of {:?} in state {:?}",
                    name(s),
                    name(owner),
                    s.state
                );
            }
            if s.partner != o {
                fail!(
                    r,
                    "thread {:?} in the send queue of {:?} has another partner",
                    name(s),
                    name(owner)
                );
            }
            if !prev.is_null() && s.sendq_prev != prev {
                fail!(r, "thread {:?}: sendq_prev link broken", name(s));
            }
            prev = p;
            p = s.sendq_next;
        }
        if tcb(head).sendq_prev != prev {
            fail!(
                r,
                "send queue of {:?}: the head's prev is not the tail",
                name(owner)
            );
        }
    });
    let mut blocked = 0usize;
    thread::for_each(|t| {
        if t.state == State::SendBlocked {
            blocked += 1;
            if !is_live(t.partner) {
                fail!(r, "thread {:?} send-blocked on no live thread", name(t));
            }
        }
    });
    if blocked != members {
        fail!(
            r,
            "{} threads are send-blocked, {} are in send queues",
            blocked,
            members
        );
    }
}

/// The leaf entry of `va` at `level` (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB), without allocating.
fn leaf(s: &Space, va: u64, level: u32) -> Option<u64> {
    let mut t = s.pml4;
    let mut l = 4;
    loop {
        let e = table(t)[((va >> (12 + 9 * (l - 1))) & 511) as usize];
        if l == level {
            return Some(e);
        }
        if e & P == 0 || e & PS != 0 {
            return None;
        }
        t = e & ADDR_MASK;
        l -= 1;
    }
}

fn in_fpage(f: abi::fpage::Fpage, va: u64) -> bool {
    !f.is_nil() && f.size() != 0 && va >= f.base() && va - f.base() < f.size()
}

fn check_mappings(r: &mut Report) {
    let db = crate::mapping::database();
    if let Err(e) = db.check() {
        fail!(r, "mapping database: {}", e);
    }
    let spaces = SPACES.get();
    let n = *SPACE_COUNT.get();
    let kernel_space = crate::space::kernel_space() as usize;
    for &(sp, _) in spaces[..n].iter() {
        if sp == kernel_space {
            continue;
        }
        // SAFETY: a live thread's space is live.
        let s = unsafe { &*(sp as *const Space) };
        if s.sigma0 {
            continue;
        }
        let id = crate::mapping::id(s);
        for m in db.mappings(id) {
            let level = match m.size_log2 {
                30 => 3,
                21 => 2,
                12 => 1,
                other => {
                    fail!(r, "space {:#x}: node of size 2^{}", sp, other);
                    continue;
                }
            };
            match leaf(s, m.vaddr, level) {
                Some(e) if e & P != 0 && (level == 1 || e & PS != 0) => {
                    let pa = e & ADDR_MASK & !((1u64 << m.size_log2) - 1);
                    if pa != m.paddr {
                        fail!(
                            r,
                            "space {:#x} va {:#x}: page table {:#x}, database {:#x}",
                            sp,
                            m.vaddr,
                            pa,
                            m.paddr
                        );
                    }
                }
                _ => fail!(
                    r,
                    "space {:#x} va {:#x} (2^{}): in the database, not in the page table",
                    sp,
                    m.vaddr,
                    m.size_log2
                ),
            }
        }
        // Reverse: every present user leaf is covered by a node.
        walk_user(s, &mut |va, size_log2, pa| {
            if in_fpage(s.kip_area, va) || in_fpage(s.utcb_area, va) {
                return;
            }
            match db.lookup(id, va) {
                Some(m) if m.vaddr <= va && m.paddr + (va - m.vaddr) == pa => {}
                Some(m) => fail!(
                    r,
                    "space {:#x} va {:#x} (2^{}): page table {:#x}, database {:#x}+{:#x}",
                    sp,
                    va,
                    size_log2,
                    pa,
                    m.paddr,
                    va.wrapping_sub(m.vaddr)
                ),
                None => fail!(
                    r,
                    "space {:#x} va {:#x} (2^{}): mapped in the page table, not in the database",
                    sp,
                    va,
                    size_log2
                ),
            }
        });
    }
}

/// Calls `f(va, size_log2, pa)` for every present user leaf entry of `s`.
fn walk_user(s: &Space, f: &mut dyn FnMut(u64, u32, u64)) {
    for i4 in 0..256usize {
        let e4 = table(s.pml4)[i4];
        if e4 & P == 0 {
            continue;
        }
        for i3 in 0..512usize {
            let e3 = table(e4 & ADDR_MASK)[i3];
            let va3 = ((i4 as u64) << 39) | ((i3 as u64) << 30);
            if e3 & P == 0 {
                continue;
            }
            if e3 & PS != 0 {
                f(va3, 30, e3 & ADDR_MASK & !((1 << 30) - 1));
                continue;
            }
            for i2 in 0..512usize {
                let e2 = table(e3 & ADDR_MASK)[i2];
                let va2 = va3 | ((i2 as u64) << 21);
                if e2 & P == 0 {
                    continue;
                }
                if e2 & PS != 0 {
                    f(va2, 21, e2 & ADDR_MASK & !((1 << 21) - 1));
                    continue;
                }
                for i1 in 0..512usize {
                    let e1 = table(e2 & ADDR_MASK)[i1];
                    if e1 & P != 0 {
                        f(va2 | ((i1 as u64) << 12), 12, e1 & ADDR_MASK);
                    }
                }
            }
        }
    }
    let _ = USER_END;
}

/// Frames a space owns: descriptor, PML4, user page tables, UTCB pages from the pool.
fn space_frames(s: &Space) -> u64 {
    let (lo, hi) = frame::range();
    let mut n = 2u64;
    for i4 in 0..256usize {
        let e4 = table(s.pml4)[i4];
        if e4 & P == 0 {
            continue;
        }
        n += 1;
        for i3 in 0..512usize {
            let e3 = table(e4 & ADDR_MASK)[i3];
            if e3 & P == 0 || e3 & PS != 0 {
                continue;
            }
            n += 1;
            for i2 in 0..512usize {
                let e2 = table(e3 & ADDR_MASK)[i2];
                if e2 & P != 0 && e2 & PS == 0 {
                    n += 1;
                }
            }
        }
    }
    walk_user(s, &mut |va, size_log2, pa| {
        if size_log2 == 12 && in_fpage(s.utcb_area, va) && pa >= lo && pa < hi {
            n += 1;
        }
    });
    n
}

fn check_memory(r: &mut Report) {
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
    let mut owned = 0u64;
    thread::for_each(|_| owned += THREAD_FRAMES);
    let kernel_space = crate::space::kernel_space() as usize;
    let spaces = SPACES.get();
    for &(sp, _) in spaces[..*SPACE_COUNT.get()].iter() {
        if sp != kernel_space {
            // SAFETY: a live thread's space is live.
            owned += space_frames(unsafe { &*(sp as *const Space) });
        }
    }
    if *thread::ZOMBIES.get() != 0 {
        return;
    }
    let base = BASELINE.get();
    match *base {
        None => *base = Some(in_use.wrapping_sub(owned)),
        Some(b) if b.wrapping_add(owned) != in_use => fail!(
            r,
            "kernel memory: {} frames in use, threads and spaces own {}, boot constant {} \
             ({} leaked)",
            in_use,
            owned,
            b,
            in_use as i64 - (b + owned) as i64
        ),
        Some(_) => {}
    }
}
