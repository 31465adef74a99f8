//! The scheduler: 256 strict priorities, round robin within a priority, timer preemption by
//! time slice, timeouts of blocked threads, the idle thread, and the ThreadSwitch and Schedule
//! system calls.
//!
//! Ready threads (including the running one) sit in a circular list per priority; a 256-bit
//! bitmap of non-empty lists makes the choice of the next thread constant time. Blocked threads
//! with a timeout sit in a list sorted by deadline, checked on every tick.
//!
//! May touch: thread state, queue links and time accounting; the CPU context switch.

use abi::error::SyscallError;
use abi::syscall_args::ScheduleResult;
use abi::thread_id::ThreadId;
use abi::time::{Time, TimeSpec};

use crate::arch::x86_64::context::{self, SwitchTo};
use crate::interrupt;
use crate::sync::KernelCell;
use crate::thread::{self, IpcWake, State, Tcb};

struct RunQueues {
    heads: [*mut Tcb; 256],
    bitmap: [u64; 4],
    timers: *mut Tcb,
}

static QUEUES: KernelCell<RunQueues> = KernelCell::new(RunQueues {
    heads: [core::ptr::null_mut(); 256],
    bitmap: [0; 4],
    timers: core::ptr::null_mut(),
});

/// The idle thread: a kernel thread that halts the CPU when nothing is ready.
static IDLE: KernelCell<*mut Tcb> = KernelCell::new(core::ptr::null_mut());

pub fn enqueue(t: &mut Tcb) {
    if !t.ready_next.is_null() || t.halted || t.state != State::Ready {
        return;
    }
    let q = QUEUES.get();
    let p = t as *mut Tcb;
    let prio = t.priority as usize;
    let head = q.heads[prio];
    if head.is_null() {
        t.ready_next = p;
        t.ready_prev = p;
        q.heads[prio] = p;
        q.bitmap[prio / 64] |= 1 << (prio % 64);
    } else {
        // SAFETY: queue members are live TCBs. Insert at the tail (before head).
        unsafe {
            let tail = (*head).ready_prev;
            t.ready_next = head;
            t.ready_prev = tail;
            (*tail).ready_next = p;
            (*head).ready_prev = p;
        }
    }
}

pub fn dequeue(t: &mut Tcb) {
    if t.ready_next.is_null() {
        return;
    }
    let q = QUEUES.get();
    let p = t as *mut Tcb;
    let prio = t.priority as usize;
    if t.ready_next == p {
        q.heads[prio] = core::ptr::null_mut();
        q.bitmap[prio / 64] &= !(1 << (prio % 64));
    } else {
        // SAFETY: queue members are live TCBs.
        unsafe {
            (*t.ready_prev).ready_next = t.ready_next;
            (*t.ready_next).ready_prev = t.ready_prev;
        }
        if q.heads[prio] == p {
            q.heads[prio] = t.ready_next;
        }
    }
    t.ready_next = core::ptr::null_mut();
    t.ready_prev = core::ptr::null_mut();
}

fn highest_ready() -> Option<usize> {
    let q = QUEUES.get();
    (0..4)
        .rev()
        .find(|&i| q.bitmap[i] != 0)
        .map(|i| i * 64 + 63 - q.bitmap[i].leading_zeros() as usize)
}

/// Moves a thread to the tail of its priority list (end of its turn).
fn rotate(t: &mut Tcb) {
    if !t.ready_next.is_null() {
        dequeue(t);
        enqueue(t);
    }
}

/// Switches to the best ready thread (or idle). Returns when the caller runs again.
pub fn schedule() {
    let cur = thread::current_ptr();
    let next = match highest_ready() {
        Some(prio) => QUEUES.get().heads[prio],
        None => *IDLE.get(),
    };
    if next == cur {
        return;
    }
    switch_to(cur, next);
}

fn switch_to(cur: *mut Tcb, next: *mut Tcb) {
    // SAFETY: both are live TCBs; `cur` is the running thread.
    let (c, n) = unsafe { (&mut *cur, &mut *next) };
    let cr3 = if n.space.is_null() || c.space == n.space {
        None
    } else {
        Some(n.space().pml4)
    };
    let idle = next == *IDLE.get();
    let to = SwitchTo {
        kstack_top: n.kstack_top(),
        ksp: n.ksp,
        cr3: if idle { None } else { cr3 },
        gs_base: if n.utcb_location == u64::MAX {
            0
        } else {
            n.utcb_location
        },
        fpu_save: c.fpu.0.as_mut_ptr(),
        fpu_load: n.fpu.0.as_ptr(),
    };
    if !idle {
        LAST_SPACE_USER.get().clone_from(&n.space);
        // IO-fpages: the TSS I/O bitmap follows the space (io_space.rs): one compare when
        // the space changes, nothing within a space.
        if cr3.is_some() {
            crate::io_space::enter(n.space());
        }
    }
    *thread::CURRENT.get() = next;
    crate::profile::mark(crate::profile::Point::Switching);
    context::switch(&mut c.ksp, &to);
}

/// The space whose page tables are loaded (idle keeps the last user space's tables).
static LAST_SPACE_USER: KernelCell<*mut crate::space::Space> =
    KernelCell::new(core::ptr::null_mut());

/// Makes a blocked thread runnable with the given IPC outcome.
pub fn wake(t: &mut Tcb, how: IpcWake) {
    timer_remove(t);
    t.wake = how;
    t.state = State::Ready;
    t.partner = core::ptr::null_mut();
    enqueue(t);
}

/// Blocks the current thread (already in a blocked state) until woken; `deadline` in µs.
pub fn block_current(deadline: u64) {
    let t = thread::current();
    dequeue(t);
    t.wake = IpcWake::None;
    if deadline != u64::MAX {
        t.deadline = deadline;
        timer_insert(t);
    }
    schedule();
}

/// Gives a blocked thread that is not running a timeout (µs deadline).
pub fn block_other(t: &mut Tcb, deadline: u64) {
    t.deadline = deadline;
    timer_insert(t);
}

fn timer_insert(t: &mut Tcb) {
    let q = QUEUES.get();
    let p = t as *mut Tcb;
    let mut link: *mut *mut Tcb = &mut q.timers;
    // SAFETY: the list holds live, blocked TCBs, sorted by deadline.
    unsafe {
        while !(*link).is_null() && (**link).deadline <= t.deadline {
            link = &mut (**link).timer_next;
        }
        t.timer_next = *link;
        *link = p;
    }
}

pub fn timer_remove(t: &mut Tcb) {
    if t.deadline == u64::MAX {
        return;
    }
    let q = QUEUES.get();
    let p = t as *mut Tcb;
    let mut link: *mut *mut Tcb = &mut q.timers;
    // SAFETY: as in `timer_insert`.
    unsafe {
        while !(*link).is_null() {
            if *link == p {
                *link = t.timer_next;
                break;
            }
            link = &mut (**link).timer_next;
        }
    }
    t.timer_next = core::ptr::null_mut();
    t.deadline = u64::MAX;
}

/// Timer tick (from user mode or idle): expire timeouts, account the running thread's slice.
pub fn tick(tick_us: u64) {
    let now = interrupt::now_us();
    let mut woke = false;
    loop {
        // A fresh, short borrow each round: `ipc::timeout` re-enters the queues (wake →
        // enqueue), so no borrow of `QUEUES` may live across it.
        let head = QUEUES.get().timers;
        if head.is_null() {
            break;
        }
        // SAFETY: list members are live TCBs.
        let t = unsafe { &mut *head };
        if t.deadline > now {
            break;
        }
        crate::ipc::timeout(t);
        woke = true;
    }
    let cur = thread::current();
    if thread::current_ptr() == *IDLE.get() || cur.state != State::Ready {
        return schedule();
    }
    if cur.slice_left_us <= tick_us {
        cur.slice_left_us = cur.timeslice_us;
        rotate(cur);
        schedule();
    } else {
        cur.slice_left_us -= tick_us;
        // A thread running on a ThreadSwitch donation keeps the processor until its slice
        // ends (spec 5.5), even with a higher-priority thread ready; only a wake-up is a
        // scheduling point before that.
        if woke {
            preempt_if_higher();
        }
    }
}

/// Runs a higher-priority thread if one became ready (after a wake-up in a system call).
pub fn preempt_if_higher() {
    let cur = thread::current();
    if let Some(p) = highest_ready()
        && (thread::current_ptr() == *IDLE.get()
            || p > cur.priority as usize
            || cur.state != State::Ready)
    {
        schedule();
    }
}

extern "C" fn idle_loop(_: u64) -> ! {
    loop {
        // SAFETY: idle: enable interrupts and wait for the next one; the tick reschedules.
        unsafe { core::arch::asm!("sti; hlt; cli", options(nomem, nostack)) };
        schedule();
    }
}

/// Creates the idle thread and makes the boot flow the idle thread's predecessor.
pub fn init_idle(boot_tcb: *mut Tcb) -> bool {
    let space = crate::space::kernel_space();
    let Some(t) = thread::create(
        ThreadId::global(thread::SYSTEM_BASE, 1),
        space,
        ThreadId::NIL,
    ) else {
        return false;
    };
    t.state = State::Ready; // never queued: chosen only when nothing else is ready
    t.ksp = context::prepare_stack(
        t.kstack_top() - crate::arch::x86_64::trap::TRAP_FRAME_SIZE as u64,
        idle_loop,
        0,
    );
    *IDLE.get() = t as *mut Tcb;
    *thread::CURRENT.get() = boot_tcb;
    true
}

/// Invariant checks (`invariants.rs`): ready-list heads, bitmap, timer list head.
#[cfg(feature = "invariants")]
pub fn queues_for_check() -> ([*mut Tcb; 256], [u64; 4], *mut Tcb) {
    let q = QUEUES.get();
    (q.heads, q.bitmap, q.timers)
}

pub fn idle_tcb() -> *mut Tcb {
    *IDLE.get()
}

/// Leaves the boot stack for good: switch to the best ready thread.
pub fn start(boot: *mut Tcb) -> ! {
    *thread::CURRENT.get() = boot;
    schedule();
    unreachable!("the boot context is never scheduled again");
}

// ---- system calls ----

/// ThreadSwitch (spec 5.5).
pub fn sys_thread_switch(dest: ThreadId) {
    let cur = thread::current();
    if !dest.is_nil()
        && let Some(t) = thread::resolve(cur, dest).filter(|t| t.id.number() >= thread::USER_BASE)
    {
        if core::ptr::eq(t, cur) {
            return;
        }
        if t.state == State::Ready && !t.halted {
            // Donate (spec 5.5): run the target now, whatever its priority; the caller keeps
            // its place and the scheduler decides again at the target's next scheduling point.
            rotate(cur);
            dequeue(t);
            enqueue_front(t);
            switch_to(cur as *mut Tcb, t as *mut Tcb);
            return;
        }
    }
    cur.slice_left_us = cur.timeslice_us;
    rotate(cur);
    schedule();
}

fn enqueue_front(t: &mut Tcb) {
    enqueue(t);
    QUEUES.get().heads[t.priority as usize] = t as *mut Tcb;
}

/// Schedule (spec 5.6): returns (result word, old TimeControl) or an error.
pub fn sys_schedule(
    dest: ThreadId,
    time_control: u64,
    processor: u64,
    prio_control: u64,
    preemption: u64,
) -> Result<(u64, u64), SyscallError> {
    let cur = thread::current();
    let privileged = cur.space().privileged;
    let t = if dest.is_global() && dest.number() < thread::SYSTEM_BASE {
        return crate::interrupt::schedule_irq(dest, prio_control, privileged);
    } else {
        thread::resolve(cur, dest)
            .filter(|t| t.id.number() >= thread::USER_BASE || t.id.number() < thread::SYSTEM_BASE)
    };
    let Some(t) = t else {
        return Err(SyscallError::InvalidThread);
    };
    let is_scheduler = t.scheduler == cur.id;
    if !privileged && !is_scheduler {
        return Err(SyscallError::NoPrivilege);
    }
    let old_tc = encode_time_control(t.slice_left_us, t.total_quantum_us);
    if prio_control != u64::MAX {
        let prio = prio_control & 0xFF;
        if !privileged && prio > cur.priority as u64 {
            return Err(SyscallError::NoPrivilege);
        }
    }
    if preemption != u64::MAX {
        let sensitive = (preemption >> 16) & 0xFF;
        if !privileged && sensitive > cur.priority as u64 {
            return Err(SyscallError::NoPrivilege);
        }
    }
    let mut new_slice = None;
    let mut new_quantum = None;
    if time_control != u64::MAX {
        let ts = Time((time_control >> 16) as u16);
        let tq = Time(time_control as u16);
        if (time_control >> 16) & 0xFFFF != 0xFFFF {
            match ts.decode() {
                TimeSpec::Period(us) if us > 0 => new_slice = Some(us),
                TimeSpec::Never => new_slice = Some(u64::MAX / 2),
                _ => return Err(SyscallError::InvalidParam),
            }
        }
        if time_control & 0xFFFF != 0xFFFF {
            match tq.decode() {
                TimeSpec::Period(us) => new_quantum = Some(us),
                TimeSpec::Never | TimeSpec::Zero => new_quantum = Some(0),
                _ => return Err(SyscallError::InvalidParam),
            }
        }
    }
    if processor != u64::MAX && processor & 0xFFFF != 0 {
        return Err(SyscallError::InvalidParam);
    }
    if let Some(s) = new_slice {
        t.timeslice_us = s;
        t.slice_left_us = s;
    }
    if let Some(q) = new_quantum {
        t.total_quantum_us = q;
    }
    if prio_control != u64::MAX {
        let was_queued = !t.ready_next.is_null();
        dequeue(t);
        t.priority = (prio_control & 0xFF) as u8;
        if was_queued {
            enqueue(t);
        }
    }
    let result = state_result(t);
    preempt_if_higher();
    Ok((result as u64, old_tc))
}

pub fn state_result(t: &Tcb) -> ScheduleResult {
    match t.state {
        State::Inactive | State::Dead => ScheduleResult::Dead,
        _ if t.halted => ScheduleResult::Inactive,
        State::Ready => ScheduleResult::Running,
        State::SendBlocked => ScheduleResult::PendingSend,
        State::RecvBlocked => ScheduleResult::Waiting,
        State::Transfer => ScheduleResult::Sending,
        State::XferWait => ScheduleResult::Receiving,
    }
}

/// Encodes remaining slice and quantum (µs) as a TimeControl word of two time periods.
fn encode_time_control(slice_us: u64, quantum_us: u64) -> u64 {
    let ts = Time::period_micros(slice_us.min(u32::MAX as u64)).0 as u64;
    let tq = if quantum_us == 0 {
        Time::NEVER.0 as u64
    } else {
        Time::period_micros(quantum_us).0 as u64
    };
    (ts << 16) | tq
}
