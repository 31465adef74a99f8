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
//! * **kernel memory**: the pool's in-use count, free list and untouched rest add up to the
//!   pool.
//!
//! Dropped in the port to core v2 (the fuzz branch had them on the old core): the comparison
//! of the mapping database with every page table, and the accounting of frames in use against
//! what threads and spaces own (a boot constant + per thread + per space). Both depended on
//! the old layouts (TCB pages, per-space frame scans) that core v2 and the per-space frame
//! lists replaced; they are not ported yet.
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
    check_threads(&mut r);
    check_ready_queues(k, &mut r);
    check_timers(k, &mut r);
    check_send_queues(&mut r);
    check_mappings(&mut r);
    check_memory(&mut r);
    if r.n > MAX_REPORTS {
        kprintln!("invariant violated: ... {} more", r.n - MAX_REPORTS);
    }
    r.n as u64
}

/// Calls `f` for every live thread.
fn each_thread(mut f: impl FnMut(&'static Tcb)) {
    for no in 0..thread::MAX_THREADS as u32 {
        if let Some(t) = thread_no(no) {
            f(t);
        }
    }
}

/// Thread table and space thread counts.
fn check_threads(r: &mut Report) {
    // SAFETY: the only borrow of SPACES in use; it ends before any call that touches it.
    let spaces = unsafe { SPACES.get() };
    let mut nspaces = 0usize;
    for no in 0..thread::MAX_THREADS as u32 {
        let Some(t) = thread_no(no) else { continue };
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
        walk(
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
            },
        );
        blocked += matches!(owner.state, State::SendBlocked { .. }) as usize;
    });
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
}
