//! The debugger's one window onto kernel state: every read of the thread table, TCB fields,
//! ready queues, timers, spaces, the mapping database, interrupt lines and the frame pool is
//! here, turned into plain snapshots the shell and the trace print. When the core's data
//! structures change, this is the file to port.
//!
//! The only writes are the single-step flag in a thread's saved user RFLAGS
//! ([`set_single_step`], [`set_resume_flag`]). Everything runs with interrupts off inside the
//! debugger or an entry wrapper, so nothing changes under a walk.

use abi::fpage::Fpage;
use abi::thread_id::ThreadId;
use abi::utcb;

use crate::arch::paging::{ADDR_MASK, P, PS, phys_to_virt, table};
use crate::arch::trap::TrapFrame;
use crate::platform::pic;
use crate::space::Space;
use crate::thread::{self, State, Tcb};

/// Kernel-memory frames of one thread: 16 KiB kernel stack plus the TCB page (thread.rs).
const FRAMES_PER_THREAD: u64 = 5;

/// A snapshot of one thread.
#[derive(Clone, Copy)]
pub struct ThreadView {
    pub id: ThreadId,
    pub state: &'static str,
    /// The thread it waits for (send: its destination; receive: its from specifier).
    pub partner: Option<ThreadId>,
    /// Absolute timeout in µs.
    pub deadline_us: Option<u64>,
    pub halted: bool,
    pub priority: u8,
    pub space: u64,
    pub pager: ThreadId,
    pub exc_handler: ThreadId,
    pub scheduler: ThreadId,
    pub activated: bool,
    pub utcb_location: u64,
    pub timeslice_us: u64,
    pub slice_left_us: u64,
    pub kernel_thread: bool,
    pub queued_senders: u32,
}

/// # Safety
/// The caller must not use the returned reference while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
unsafe fn tcb_of(no: u64) -> Option<&'static mut Tcb> {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    unsafe { thread::lookup_number(no) }
}

fn state_name(t: &Tcb) -> &'static str {
    match t.state {
        State::Inactive => "inactive",
        State::Ready => "ready",
        State::SendBlocked { .. } => "send",
        State::RecvBlocked { .. } => "recv",
        State::Dead => "dead",
        State::Transfer { .. } => "xfer",
        State::XferWait { .. } => "xfer-wait",
    }
}

fn snapshot(t: &Tcb) -> ThreadView {
    let partner = match t.state {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        State::SendBlocked { to } => (unsafe { thread::get(to) }).map(|p| p.id),
        State::RecvBlocked { from } => Some(from),
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        State::Transfer { with, .. } | State::XferWait { with } => {
            (unsafe { thread::get(with) }).map(|p| p.id)
        }
        _ => None,
    };
    let word = |i| {
        if t.is_activated() {
            ThreadId::from_raw(t.utcb_word(i))
        } else {
            ThreadId::NIL
        }
    };
    let mut queued = 0;
    let mut q = t.sendq.head;
    while q != 0 && queued < 100_000 {
        queued += 1;
        // Send-queue members are live threads; a stale number ends the walk.
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        q = (unsafe { thread::lookup_number(q as u64) }).map_or(0, |m| m.sendq_link.next);
    }
    ThreadView {
        id: t.id,
        state: state_name(t),
        partner,
        deadline_us: (t.deadline != u64::MAX).then_some(t.deadline),
        halted: t.halted,
        priority: t.priority,
        space: t.space as u64,
        pager: word(utcb::PAGER),
        exc_handler: word(utcb::EXCEPTION_HANDLER),
        scheduler: t.scheduler,
        activated: t.is_activated(),
        utcb_location: t.utcb_location,
        timeslice_us: t.timeslice_us,
        slice_left_us: t.slice_left_us,
        kernel_thread: t.id.number() < thread::USER_BASE,
        queued_senders: queued,
    }
}

/// Every thread in number order.
pub fn threads(mut f: impl FnMut(&ThreadView)) {
    for no in 0..thread::MAX_THREADS as u64 {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        if let Some(t) = unsafe { tcb_of(no) } {
            f(&snapshot(t));
        }
    }
}

/// Number of threads.
pub fn thread_count() -> u64 {
    let mut n = 0;
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    (unsafe { thread::for_each(|_| n += 1) });
    n
}

/// The thread with this number (any version).
pub fn thread(no: u64) -> Option<ThreadView> {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    (unsafe { tcb_of(no) }).map(|t| snapshot(t))
}

/// Does a thread with exactly this global id exist?
pub fn thread_exists(id: ThreadId) -> bool {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    (unsafe { thread::lookup_global(id) }).is_some()
}

/// The running thread (the one the kernel was entered on).
pub fn current_id() -> ThreadId {
    let p = thread::current_ptr();
    if p.is_null() {
        return ThreadId::NIL;
    }
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    (unsafe { thread::current() }).id
}

pub fn current_privileged() -> bool {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    !thread::current_ptr().is_null() && (unsafe { thread::current().space() }).privileged
}

pub fn idle_id() -> ThreadId {
    let p = crate::schedule::idle_tcb();
    if p.is_null() {
        return ThreadId::NIL;
    }
    // SAFETY: the idle TCB lives for ever once created.
    unsafe { (*p).id }
}

/// The saved user registers of a thread (its frame at the top of its kernel stack).
pub fn user_regs(no: u64) -> Option<TrapFrame> {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let t = (unsafe { tcb_of(no) })?;
    if t.id.number() < thread::USER_BASE {
        return None;
    }
    Some(*t.frame())
}

/// The UTCB of a thread: MR0..MR63, BR0..BR32 and the TCRs by name.
pub struct UtcbView {
    pub mrs: [u64; 64],
    pub brs: [u64; 33],
    pub tcrs: [(&'static str, u64); 12],
}

pub fn utcb_of(no: u64) -> Option<UtcbView> {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let t = (unsafe { tcb_of(no) })?;
    if !t.is_activated() {
        return None;
    }
    let mut v = UtcbView {
        mrs: [0; 64],
        brs: [0; 33],
        tcrs: [("", 0); 12],
    };
    for (i, m) in v.mrs.iter_mut().enumerate() {
        *m = t.utcb_word(utcb::mr(i));
    }
    for (i, b) in v.brs.iter_mut().enumerate() {
        *b = t.utcb_word(utcb::br(i));
    }
    let names = [
        ("MyGlobalId", utcb::MY_GLOBAL_ID),
        ("ProcessorNo", utcb::PROCESSOR_NO),
        ("UserDefinedHandle", utcb::USER_DEFINED_HANDLE),
        ("Pager", utcb::PAGER),
        ("ExceptionHandler", utcb::EXCEPTION_HANDLER),
        ("Flags", utcb::FLAGS),
        ("ErrorCode", utcb::ERROR_CODE),
        ("XferTimeouts", utcb::XFER_TIMEOUTS),
        ("IntendedReceiver", utcb::INTENDED_RECEIVER),
        ("VirtualSender", utcb::VIRTUAL_SENDER),
        ("ThreadWord0", utcb::THREAD_WORD0),
        ("ThreadWord1", utcb::THREAD_WORD1),
    ];
    for (slot, (name, i)) in v.tcrs.iter_mut().zip(names) {
        *slot = (name, t.utcb_word(i));
    }
    Some(v)
}

/// The message tag and ErrorCode TCR of a thread's UTCB (for the trace).
pub fn mr0_and_error(id: ThreadId) -> (u64, u64) {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    match unsafe { thread::lookup_global(id) } {
        Some(t) if t.is_activated() => (t.utcb_word(utcb::mr(0)), t.utcb_word(utcb::ERROR_CODE)),
        _ => (0, 0),
    }
}

/// Turns single-stepping of a user thread on or off (TF in its saved RFLAGS).
pub fn set_single_step(no: u64, on: bool) -> bool {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let Some(t) = (unsafe { tcb_of(no) }).filter(|t| t.id.number() >= thread::USER_BASE) else {
        return false;
    };
    let f = t.frame();
    if on {
        f.rflags |= 0x100;
    } else {
        f.rflags &= !0x100;
    }
    true
}

/// Sets RF in a frame about to return to user mode (skip an instruction breakpoint once).
pub fn set_resume_flag(f: &mut TrapFrame) {
    f.rflags |= 1 << 16;
}

// ---- spaces ----

#[derive(Clone, Copy)]
pub struct SpaceView {
    pub key: u64,
    pub pml4: u64,
    pub threads: u32,
    pub kip_area: Fpage,
    pub utcb_area: Fpage,
    pub privileged: bool,
    pub sigma0: bool,
    /// The lowest-numbered thread in it (how the debugger names a space).
    pub first_thread: ThreadId,
}

/// Every user address space once, ordered by its first thread.
/// At most this many spaces are listed.
pub const MAX_LISTED_SPACES: usize = 256;

/// Every user address space once (up to [`MAX_LISTED_SPACES`]), ordered by its first thread.
/// One pass over the thread list (not the 2^18-entry table): the trace calls this on every
/// ThreadControl.
pub fn spaces(mut f: impl FnMut(&SpaceView)) {
    let kernel = crate::space::kernel_space() as u64;
    // SAFETY: the only borrow of SPACE_SCRATCH in use; it ends before any call that touches it.
    let scratch = unsafe { SPACE_SCRATCH.get() };
    if scratch.busy {
        return; // not re-entered by any caller; refuse rather than alias the buffer
    }
    scratch.busy = true;
    let found = &mut scratch.found;
    let mut n = 0;
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    (unsafe {
        thread::for_each(|t| {
            let key = t.space as u64;
            if key == kernel {
                return;
            }
            // SAFETY (the guard's read): list members are live TCBs.
            match found[..n].iter().position(|(k, _)| *k == key) {
                Some(i) if t.id.number() < (*found[i].1).id.number() => found[i].1 = t,
                Some(_) => {}
                None if n < found.len() => {
                    found[n] = (key, t as *mut Tcb);
                    n += 1;
                }
                None => {}
            }
        })
    });
    // SAFETY: list members are live TCBs (nothing runs while the debugger reads).
    let first_no = |p: *mut Tcb| unsafe { (*p).id.number() };
    found[..n].sort_unstable_by_key(|&(_, p)| first_no(p));
    for &(key, p) in &found[..n] {
        // SAFETY: as above.
        let t = unsafe { &*p };
        // SAFETY: a thread's space outlives it; the only reference to it in use.
        let s = unsafe { t.space() };
        f(&SpaceView {
            key,
            pml4: s.pml4,
            threads: s.threads,
            kip_area: s.kip_area,
            utcb_area: s.utcb_area,
            privileged: s.privileged,
            sigma0: s.sigma0,
            first_thread: t.id,
        });
    }
    // SAFETY: the only borrow of SPACE_SCRATCH in use; it ends before any call that touches it.
    (unsafe { SPACE_SCRATCH.get() }).busy = false;
}

/// The work area of [`spaces`], static: the debugger may run on a kernel stack that is
/// already deep (entered from a fault), so its large buffers stay off the stack.
struct SpaceScratch {
    busy: bool,
    found: [(u64, *mut Tcb); MAX_LISTED_SPACES],
}

static SPACE_SCRATCH: crate::sync::KernelCell<SpaceScratch> =
    crate::sync::KernelCell::new(SpaceScratch {
        busy: false,
        found: [(0, core::ptr::null_mut()); MAX_LISTED_SPACES],
    });

/// Is the thread with exactly this id the last one of its space (deleting it deletes the
/// space)?
pub fn last_in_its_space(id: ThreadId) -> bool {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    (unsafe { thread::lookup_global(id) }).is_some_and(|t| (unsafe { t.space() }).threads == 1)
}

/// The space of the thread with this number.
pub fn space_of(no: u64) -> Option<SpaceView> {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let key = (unsafe { tcb_of(no) })?.space as u64;
    let mut found = None;
    spaces(|s| {
        if s.key == key {
            found = Some(*s);
        }
    });
    found
}

/// One mapping of the mapping database.
#[derive(Clone, Copy)]
pub struct MapView {
    pub space: u64,
    pub vaddr: u64,
    pub size_log2: u8,
    pub paddr: u64,
    pub rights: u8,
    /// Parent space and the address of this mapping's first byte in it (none: sigma0 root).
    pub parent: Option<(u64, u64)>,
}

fn map_view(m: &mapdb::Mapping) -> MapView {
    MapView {
        space: m.space.0,
        vaddr: m.vaddr,
        size_log2: m.size_log2,
        paddr: m.paddr,
        rights: m.rights.bits(),
        parent: m.parent.map(|(s, a)| (s.0, a)),
    }
}

/// The mappings of a space in address order (for sigma0: its root nodes).
pub fn mappings(space: u64, mut f: impl FnMut(&MapView)) {
    let Some(db) = crate::mapping::database() else {
        return;
    };
    for m in db.mappings(mapdb::SpaceId(space)) {
        f(&map_view(&m));
    }
}

/// Every mapping (in any space) that covers physical address `pa`.
pub fn mappings_of_frame(pa: u64, mut f: impl FnMut(&MapView)) {
    spaces(|s| {
        mappings(s.key, |m| {
            let size = 1u64 << m.size_log2.min(63);
            if pa >= m.paddr && pa - m.paddr < size {
                f(m);
            }
        });
    });
}

/// Mapping-database nodes in use and capacity.
pub fn mapdb_usage() -> (usize, usize) {
    crate::mapping::database().map_or((0, 0), |db| (db.len(), db.capacity()))
}

// ---- scheduling ----

/// Ready threads per priority (highest first), in queue order starting anywhere in the ring.
pub fn ready_queues(mut f: impl FnMut(u8, &[ThreadId])) {
    for prio in (0..=255u8).rev() {
        let mut first = 0u32;
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        (unsafe {
            thread::for_each(|t| {
                if t.ready_queued && t.priority == prio && t.ready_link.prev == 0 {
                    first = t.no;
                }
            })
        });
        if first == 0 {
            continue;
        }
        let mut ids = [ThreadId::NIL; 32];
        let mut n = 0;
        let mut p = first;
        // Ready-queue members are live threads; a stale number ends the walk.
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        while let Some(t) = unsafe { thread::lookup_number(p as u64) } {
            if n < ids.len() {
                ids[n] = t.id;
                n += 1;
            }
            p = t.ready_link.next;
            if p == 0 || n >= ids.len() {
                break;
            }
        }
        f(prio, &ids[..n]);
    }
}

/// Threads with a timeout, sorted by deadline (µs).
pub fn timers(mut f: impl FnMut(ThreadId, u64)) {
    let mut last = 0u64;
    let mut last_no = 0u64;
    let mut started = false;
    // Repeated minimum search: no allocation, fine for a debugger.
    loop {
        let mut best: Option<(u64, u64, ThreadId)> = None;
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        (unsafe {
            thread::for_each(|t| {
                let key = (t.deadline, t.id.number());
                if t.deadline == u64::MAX || (started && key <= (last, last_no)) {
                    return;
                }
                if best.is_none_or(|(d, n, _)| key < (d, n)) {
                    best = Some((t.deadline, t.id.number(), t.id));
                }
            })
        });
        let Some((d, no, id)) = best else { break };
        f(id, d);
        last = d;
        last_no = no;
        started = true;
    }
}

pub fn now_us() -> u64 {
    crate::interrupt::now_us()
}

pub fn ticks() -> u64 {
    crate::interrupt::CLOCK.get().ticks
}

// ---- memory ----

pub struct MemView {
    pub pool_start: u64,
    pub pool_end: u64,
    pub in_use: u64,
    pub threads: u64,
    pub thread_frames: u64,
    pub spaces: u64,
    pub space_frames: u64,
    pub page_tables: u64,
    pub utcb_pages: u64,
    pub mapdb_used: usize,
    pub mapdb_capacity: usize,
    pub mapdb_bytes: usize,
}

/// Counts the user page-table frames and pool-backed UTCB pages of a space.
fn walk_space(s: &Space) -> (u64, u64) {
    let (lo, hi) = crate::mm::frame::range();
    let (mut tables, mut utcbs) = (0, 0);
    for i4 in 0..256usize {
        // SAFETY: a kernel-owned page table; no other reference to it in use.
        let e4 = (unsafe { table(s.pml4) })[i4];
        if e4 & P == 0 {
            continue;
        }
        tables += 1;
        for i3 in 0..512usize {
            // SAFETY: a kernel-owned page table; no other reference to it in use.
            let e3 = (unsafe { table(e4 & ADDR_MASK) })[i3];
            if e3 & P == 0 || e3 & PS != 0 {
                continue;
            }
            tables += 1;
            for i2 in 0..512usize {
                // SAFETY: a kernel-owned page table; no other reference to it in use.
                let e2 = (unsafe { table(e3 & ADDR_MASK) })[i2];
                if e2 & P == 0 || e2 & PS != 0 {
                    continue;
                }
                tables += 1;
                for i1 in 0..512usize {
                    // SAFETY: a kernel-owned page table; no other reference to it in use.
                    let e1 = (unsafe { table(e2 & ADDR_MASK) })[i1];
                    let va = ((i4 as u64) << 39) | ((i3 as u64) << 30) | ((i2 as u64) << 21);
                    let va = va | ((i1 as u64) << 12);
                    let pa = e1 & ADDR_MASK;
                    if e1 & P != 0
                        && !s.utcb_area.is_nil()
                        && va >= s.utcb_area.base()
                        && va - s.utcb_area.base() < s.utcb_area.size()
                        && pa >= lo
                        && pa < hi
                    {
                        utcbs += 1;
                    }
                }
            }
        }
    }
    (tables, utcbs)
}

pub fn memory() -> MemView {
    let (pool_start, pool_end) = crate::mm::frame::range();
    let threads = thread_count();
    let mut v = MemView {
        pool_start,
        pool_end,
        in_use: crate::mm::frame::in_use(),
        threads,
        thread_frames: threads * FRAMES_PER_THREAD,
        spaces: 0,
        space_frames: 0,
        page_tables: 0,
        utcb_pages: 0,
        mapdb_used: 0,
        mapdb_capacity: 0,
        mapdb_bytes: 0,
    };
    (v.mapdb_used, v.mapdb_capacity) = mapdb_usage();
    // The database is carved from the pool at boot: its size follows its capacity.
    v.mapdb_bytes = v.mapdb_capacity * core::mem::size_of::<mapdb::Node>();
    spaces(|sv| {
        v.spaces += 1;
        v.space_frames += 2; // the Space structure and the PML4
        // SAFETY: the key is the pointer of a live space (one of its threads exists).
        let s = unsafe { &*(sv.key as *const Space) };
        let (t, u) = walk_space(s);
        v.page_tables += t;
        v.utcb_pages += u;
    });
    v
}

/// Reads the first 8 bytes at a physical address (for `frame`), through the direct map.
pub fn phys_word(pa: u64) -> u64 {
    // SAFETY: the direct map covers all physical memory below MAX_PHYS; callers pass RAM.
    unsafe { core::ptr::read_volatile(phys_to_virt(pa & !7) as *const u64) }
}

// ---- interrupts ----

#[derive(Clone, Copy)]
pub struct IrqView {
    pub irq: usize,
    pub handler: ThreadId,
    pub pending: bool,
    pub masked: bool,
    pub priority: u8,
}

fn pic_masked(irq: usize) -> bool {
    let port = if irq < 8 { 0x21 } else { 0xA1 };
    crate::arch::cpu::inb(port) & (1 << (irq % 8)) != 0
}

pub fn irqs(mut f: impl FnMut(&IrqView)) {
    let lines = crate::kernel_state::lines_for_debugger();
    for (irq, l) in lines.iter().enumerate().take(pic::NUM_IRQS) {
        f(&IrqView {
            irq,
            handler: l.handler,
            pending: l.pending,
            masked: pic_masked(irq),
            priority: l.priority,
        });
    }
}

pub fn irq_has_handler(irq: usize) -> bool {
    !crate::kernel_state::lines_for_debugger()[irq]
        .handler
        .is_nil()
}
