//! The scheduler: 256 strict priorities, round robin within a priority, timer preemption by
//! time slice, timeouts of blocked threads, the idle thread, and the ThreadSwitch and Schedule
//! system calls.
//!
//! Ready threads (including the running one) sit in a queue per priority, linked by thread
//! number (`kcore::queue`, no pointers between TCBs); a 256-bit
//! bitmap of non-empty lists makes the choice of the next thread constant time. Blocked threads
//! with a timeout sit in a heap keyed by deadline (`kcore::timer`); a tick looks at its root.
//!
//! May touch: thread state, queue links and time accounting; the CPU context switch.

use crate::decode::{Out, ScheduleArgs};
use abi::error::SyscallError;
use abi::syscall_args::ScheduleResult;
use abi::thread_id::ThreadId;
use abi::time::{Time, TimeSpec};

use crate::arch::context::{self, SwitchTo};
use crate::interrupt;
use crate::kernel_state::{self, Kernel, RunQueues, Timers};
use crate::sync::KernelValue;
use crate::thread::{self, IpcWake, State, Tcb};
use kcore::queue::{Link, Links};

/// What a handler decided about the processor, carried out once on the way out of the
/// kernel entry ([`finish`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use]
pub enum Next {
    /// The current thread goes on, whatever became ready (a tick within a slice).
    Keep,
    /// The current thread goes on unless a higher-priority thread became ready or it no
    /// longer is ready.
    Stay,
    /// Run the best ready thread (the current one has blocked, halted or used its turn).
    Switch,
    /// Run this ready thread now (a ThreadSwitch donation, spec 5.5).
    To(*mut Tcb),
}

/// Carries out a handler's decision: the one switch of a kernel entry.
#[inline(always)]
pub fn finish(k: &mut Kernel, next: Next) {
    match next {
        Next::Keep => {}
        Next::Stay => preempt_if_higher(k),
        Next::Switch => schedule(k),
        Next::To(t) => switch_to(k, thread::current_ptr(), t),
    }
}

/// The idle thread: a kernel thread that halts the CPU when nothing is ready.
static IDLE: KernelValue<*mut Tcb> = KernelValue::new(core::ptr::null_mut());

/// The ready-queue links of the TCBs, by thread number (queued threads exist: deletion
/// dequeues first).
struct ReadyLinks;

impl Links for ReadyLinks {
    #[inline(always)]
    fn link(&mut self, n: u32) -> &mut Link {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        &mut (unsafe { thread::linked(n) }).ready_link
    }
}

#[inline(always)]
#[cfg_attr(feature = "invariants", track_caller)]
pub fn enqueue(run: &mut RunQueues, t: &mut Tcb) {
    if t.ready_queued || t.halted || t.state != State::Ready {
        return;
    }
    #[cfg(feature = "invariants")]
    crate::invariants::ready_off_lists(t, "enqueued", core::panic::Location::caller());
    let q = run;
    let prio = t.priority as usize;
    if q.queues[prio].is_empty() {
        q.bitmap[prio / 64] |= 1 << (prio % 64);
    }
    q.queues[prio].push_back(t.no, &mut t.ready_link, &mut ReadyLinks);
    t.ready_queued = true;
}

#[inline(always)]
pub fn dequeue(run: &mut RunQueues, t: &mut Tcb) {
    if !t.ready_queued {
        return;
    }
    let q = run;
    let prio = t.priority as usize;
    q.queues[prio].remove(&t.ready_link, &mut ReadyLinks);
    if q.queues[prio].is_empty() {
        q.bitmap[prio / 64] &= !(1 << (prio % 64));
    }
    t.ready_queued = false;
}

#[inline(always)]
fn highest_ready(k: &Kernel) -> Option<usize> {
    let q = &k.run;
    // Unrolled: an iterator here is an out-of-line call of ~30 instructions on every switch.
    let b = &q.bitmap;
    let (i, w) = if b[3] != 0 {
        (3, b[3])
    } else if b[2] != 0 {
        (2, b[2])
    } else if b[1] != 0 {
        (1, b[1])
    } else if b[0] != 0 {
        (0, b[0])
    } else {
        return None;
    };
    Some(i * 64 + 63 - w.leading_zeros() as usize)
}

/// Moves a thread to the tail of its priority list (end of its turn).
fn rotate(run: &mut RunQueues, t: &mut Tcb) {
    if t.ready_queued {
        dequeue(run, t);
        enqueue(run, t);
    }
}

/// The best ready thread (or idle).
#[inline(always)]
fn best(k: &Kernel) -> *mut Tcb {
    match highest_ready(k) {
        // SAFETY: only the address of the head of a ready queue (a live thread) is kept.
        Some(prio) => (unsafe { thread::linked(k.run.queues[prio].head) }) as *mut Tcb,
        None => IDLE.get(),
    }
}

/// Switches to the best ready thread (or idle). Returns when the caller runs again. Called
/// on the way out of a kernel entry ([`finish`]), and inside one only where a thread blocks
/// on its kernel stack (the general IPC path, a string copy waiting for a tunnelled fault).
pub fn schedule(k: &mut Kernel) {
    let cur = thread::current_ptr();
    let next = best(k);
    if next == cur {
        return;
    }
    switch_to(k, cur, next);
}

/// The switch. It takes the entry borrow `k` (unused by the switch itself): whoever runs
/// next continues with it, and this thread's use of it resumes only when it is switched back
/// to (`kernel_state`).
fn switch_to(_k: &mut Kernel, cur: *mut Tcb, next: *mut Tcb) {
    let to = prepare_switch(cur, next);
    // SAFETY: `cur` is the running thread (live).
    context::switch(unsafe { &mut (*cur).ksp }, &to);
}

/// Everything a switch from `cur` to `next` needs, with the kernel's side of it done
/// (current thread, last user space, the IO bitmap hook): shared by [`switch_to`] and the
/// fast path's [`leave_current`], so both switch alike.
#[inline(always)]
fn prepare_switch(cur: *mut Tcb, next: *mut Tcb) -> SwitchTo {
    // SAFETY: both are live TCBs; `cur` is the running thread.
    let (c, n) = unsafe { (&mut *cur, &mut *next) };
    #[cfg(feature = "invariants")]
    crate::invariants::ready_off_lists(n, "switched to", core::panic::Location::caller());
    let cr3 = if n.space.is_null() || c.space == n.space {
        None
    } else {
        // SAFETY: a thread's space outlives it; the only reference to it in use.
        Some((unsafe { n.space() }).pml4)
    };
    let idle = next == IDLE.get();
    let to = SwitchTo {
        kstack_top: n.kstack_top(),
        ksp: n.ksp,
        cr3: if idle { None } else { cr3 },
        gs_base: if n.utcb_location == u64::MAX {
            0
        } else {
            n.utcb_location
        },
        fpu: n.fpu.0.as_mut_ptr(),
    };
    if !idle {
        LAST_SPACE_USER.set(n.space);
        // IO-fpages: the TSS I/O bitmap follows the space (io_space.rs): one compare when
        // the space changes, nothing within a space.
        if cr3.is_some() {
            // SAFETY: a thread's space outlives it; the only reference to it in use.
            crate::io_space::enter(unsafe { n.space() });
        }
    }
    thread::CURRENT.set(next);
    crate::profile::mark(crate::profile::Point::Switching);
    to
}

/// Switches away from the current thread, which has just blocked ([`block_prepare`]) at the
/// bottom of a system call, without keeping its kernel stack: when next switched to, it
/// continues at `resume_ksp` (a frame like `switch_stacks` leaves, `fastpath.rs`) instead
/// of returning here. The choice of the next thread is [`schedule`]'s. If that is `direct`
/// and it blocked here too, it returns to user mode at once (`direct_exit(next)` says how, or
/// refuses).
#[inline(always)]
pub fn leave_current(
    k: &mut Kernel,
    resume_ksp: u64,
    direct: *mut Tcb,
    direct_exit: impl FnOnce(&mut Tcb) -> bool,
) -> ! {
    let cur = thread::current_ptr();
    let next = best(k);
    // SAFETY: `cur` is the running thread; its stack below the trap frame is abandoned.
    unsafe { (*cur).ksp = resume_ksp };
    if next == cur {
        // Not blocked after all (cannot happen: it left the ready queue): resume it at once.
        context::resume_at(resume_ksp);
    }
    let to = prepare_switch(cur, next);
    // SAFETY: `next` is a live TCB (the head of a ready queue).
    if next == direct && to.ksp == resume_ksp && direct_exit(unsafe { &mut *next }) {
        crate::kernel_state::exit_to_user();
        context::switch_to_user(&to)
    }
    context::switch_away(&to)
}

/// The space whose page tables are loaded (idle keeps the last user space's tables).
pub(crate) static LAST_SPACE_USER: KernelValue<*mut crate::space::Space> =
    KernelValue::new(core::ptr::null_mut());

/// Makes a blocked thread runnable with the given IPC outcome.
#[inline(always)]
#[cfg_attr(feature = "invariants", track_caller)]
pub fn wake(run: &mut RunQueues, t: &mut Tcb, how: IpcWake) {
    #[cfg(feature = "invariants")]
    crate::invariants::woken_off_queues(t, core::panic::Location::caller());
    timer_remove(t);
    if t.recvq_on != 0 {
        // A list of waiting receivers to leave: out of the common path.
        leave_list(t);
    }
    t.wake = how;
    t.state = State::Ready;
    enqueue(run, t);
}

/// [`wake`] for the partner `t` of the running thread `cur`, which blocks right after
/// ([`block_prepare`]): the IPC fast paths (`ipc::fast_send`). When `cur` is the only ready
/// thread of `t`'s priority, `t` takes its place in that queue (one store of the queue ends,
/// the bitmap unchanged) instead of `enqueue(t)` then `dequeue(cur)`: the queues and the
/// bitmap end exactly as they would, so does the next choice of [`schedule`]. Otherwise the
/// plain [`wake`], and `block_prepare` dequeues `cur`.
#[inline(always)]
pub fn wake_handing_over(run: &mut RunQueues, cur: &mut Tcb, t: &mut Tcb) {
    if t.priority == cur.priority && cur.ready_queued && !t.ready_queued && !t.halted {
        let q = &run.queues[t.priority as usize];
        if q.head == cur.no && q.tail == cur.no {
            timer_remove(t);
            if t.recvq_on != 0 {
                leave_list(t);
            }
            t.wake = IpcWake::Done;
            t.state = State::Ready;
            run.queues[t.priority as usize] = kcore::queue::Queue {
                head: t.no,
                tail: t.no,
            };
            t.ready_link = Link { prev: 0, next: 0 };
            t.ready_queued = true;
            cur.ready_queued = false;
            return;
        }
    }
    wake(run, t, IpcWake::Done);
}

#[inline(never)]
fn leave_list(t: &mut Tcb) {
    crate::ipc::leave_receive_list(t);
}

/// Blocks the current thread (already in a blocked state) until woken; `deadline` in µs.
#[cfg_attr(feature = "invariants", track_caller)]
pub fn block_current(k: &mut Kernel, deadline: u64) {
    block_prepare(k, deadline);
    schedule(k);
    #[cfg(feature = "invariants")]
    crate::invariants::running_unblocked(
        k.current(),
        "resumed from a block",
        core::panic::Location::caller(),
    );
}

/// [`block_current`] up to the switch: out of the ready queue, no outcome yet, the timeout.
#[inline(always)]
pub fn block_prepare(k: &mut Kernel, deadline: u64) {
    let s: &mut kernel_state::State = k;
    let t = s.threads.current_mut();
    dequeue(&mut s.run, t);
    t.wake = IpcWake::None;
    if deadline != u64::MAX {
        t.deadline = deadline;
        s.timers.arm(t.slot, t.deadline);
    }
}

/// Gives a blocked thread that is not running a timeout (µs deadline).
pub fn block_other(timers: &mut Timers, t: &mut Tcb, deadline: u64) {
    t.deadline = deadline;
    timers.arm(t.slot, t.deadline);
}

/// Disarms a thread's timeout (if armed). Lazily: the heap entry stays until it expires (and
/// is then found stale: the thread's `deadline` is no longer set) or the thread arms a timeout
/// again (which moves the entry). A wake-up thus costs one store, not a heap removal.
#[inline(always)]
pub fn timer_remove(t: &mut Tcb) {
    t.deadline = u64::MAX;
}

/// Removes a thread's heap entry for good (the thread is being deleted: its slot may be
/// reused, and the tick must never name a free slot).
pub fn timer_drop(timers: &mut Timers, t: &mut Tcb) {
    timers.cancel(t.slot);
    t.deadline = u64::MAX;
}

/// Timer tick (from user mode or idle): expire timeouts, account the running thread's slice.
/// Returns the decision for the way out of the interrupt.
pub fn tick(k: &mut Kernel, tick_us: u64) -> Next {
    let now = interrupt::now_us();
    let mut woke = false;
    // `ipc::timeout` changes the timers and the run queues (wake → enqueue) through the same
    // `k`: the compiler sees that, so nothing of the heap is kept across it (issue 11).
    while let Some(slot) = k.timers.pop_due(now) {
        let Some(t) = k.threads.slot_mut(slot) else {
            break;
        };
        if t.deadline == u64::MAX {
            continue; // disarmed since (`timer_remove`)
        }
        t.deadline = u64::MAX;
        crate::ipc::timeout(k, slot);
        woke = true;
    }
    let s: &mut kernel_state::State = k;
    let cur = s.threads.current_mut();
    if thread::current_ptr() == IDLE.get() || cur.state != State::Ready {
        return Next::Switch;
    }
    if cur.slice_left_us <= tick_us {
        cur.slice_left_us = cur.timeslice_us;
        rotate(&mut s.run, cur);
        Next::Switch
    } else {
        cur.slice_left_us -= tick_us;
        // A thread running on a ThreadSwitch donation keeps the processor until its slice
        // ends (spec 5.5), even with a higher-priority thread ready; only a wake-up is a
        // scheduling point before that.
        if woke { Next::Stay } else { Next::Keep }
    }
}

/// Runs a higher-priority thread if one became ready (after a wake-up in a system call).
pub fn preempt_if_higher(k: &mut Kernel) {
    let cur = k.current();
    if let Some(p) = highest_ready(k)
        && (thread::current_ptr() == IDLE.get()
            || p > cur.priority as usize
            || cur.state != State::Ready)
    {
        schedule(k);
    }
}

extern "C" fn idle_loop(_: u64) -> ! {
    // First run: the thread that switched here handed on its entry borrow; end it.
    crate::kernel_state::continue_entry(|_| ());
    loop {
        // SAFETY: idle: enable interrupts and wait for the next one; the tick reschedules.
        // Not `nomem`: interrupt handlers run inside and change kernel memory (with `nomem`
        // the compiler dropped the end-of-borrow store of the previous round as dead).
        unsafe { core::arch::asm!("sti; hlt; cli", options(nostack)) };
        crate::kernel_state::with_kernel(schedule);
    }
}

/// Creates the idle thread and makes the boot flow the idle thread's predecessor.
pub fn init_idle(boot_tcb: *mut Tcb) -> bool {
    let space = crate::space::kernel_space();
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let Some(t) = (unsafe {
        thread::create(
            ThreadId::global(thread::SYSTEM_BASE, 1),
            space,
            ThreadId::NIL,
        )
    }) else {
        return false;
    };
    t.state = State::Ready; // never queued: chosen only when nothing else is ready
    t.ksp = context::prepare_stack(
        t.kstack_top() - crate::arch::trap::TRAP_FRAME_SIZE as u64,
        idle_loop,
        0,
    );
    IDLE.set(t as *mut Tcb);
    thread::CURRENT.set(boot_tcb);
    true
}

/// Invariant checks (`invariants.rs`): the ready queues and their bitmap.
#[cfg(feature = "invariants")]
pub fn queues_for_check(k: &Kernel) -> ([kcore::queue::Queue; 256], [u64; 4]) {
    (k.run.queues, k.run.bitmap)
}

/// Invariant checks (`invariants.rs`): the timer heap's own check, and whether `slot` has an
/// entry in it.
#[cfg(feature = "invariants")]
pub fn timers_for_check(k: &Kernel, slot: Option<u32>) -> Result<bool, &'static str> {
    let h = &k.timers;
    match slot {
        None => h.check().map(|_| true),
        Some(s) => Ok(h.deadline(s).is_some()),
    }
}

pub fn idle_tcb() -> *mut Tcb {
    IDLE.get()
}

/// Leaves the boot stack for good: switch to the best ready thread.
pub fn start(boot: *mut Tcb) -> ! {
    thread::CURRENT.set(boot);
    crate::kernel_state::with_kernel(schedule);
    unreachable!("the boot context is never scheduled again");
}

// ---- system calls ----

/// ThreadSwitch (spec 5.5).
pub fn sys_thread_switch(k: &mut Kernel, dest: ThreadId) -> Next {
    // Not through `k.threads`: the donation holds the caller and the target at once, and
    // looking the target up again by handle cost 17 instructions per ThreadSwitch (+5.7 %).
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    if !dest.is_nil()
        // SAFETY: the only reference in use to this TCB (`t` is `cur` only when equal, then
        // only compared); not held across a deletion or a blocking copy.
        && let Some(t) = (unsafe { thread::resolve(cur, dest) }).filter(|t| t.id.number() >= thread::USER_BASE)
    {
        if core::ptr::eq(t, cur) {
            return Next::Stay;
        }
        if t.state == State::Ready && !t.halted {
            // Donate (spec 5.5): run the target now, whatever its priority; the caller keeps
            // its place and the scheduler decides again at the target's next scheduling point.
            rotate(&mut k.run, cur);
            dequeue(&mut k.run, t);
            enqueue_front(&mut k.run, t);
            return Next::To(t as *mut Tcb);
        }
    }
    cur.slice_left_us = cur.timeslice_us;
    rotate(&mut k.run, cur);
    Next::Switch
}

fn enqueue_front(run: &mut RunQueues, t: &mut Tcb) {
    if t.ready_queued || t.halted || t.state != State::Ready {
        return;
    }
    let q = run;
    let prio = t.priority as usize;
    if q.queues[prio].is_empty() {
        q.bitmap[prio / 64] |= 1 << (prio % 64);
    }
    q.queues[prio].push_front(t.no, &mut t.ready_link, &mut ReadyLinks);
    t.ready_queued = true;
}

/// Schedule (spec 5.6): returns (result word, old TimeControl) or an error.
pub fn sys_schedule(k: &mut Kernel, a: ScheduleArgs) -> Result<Out, SyscallError> {
    schedule_call(k, a).map(|(result, old_tc)| Out::RaxRdx(result, old_tc))
}

fn schedule_call(k: &mut Kernel, a: ScheduleArgs) -> Result<(u64, u64), SyscallError> {
    let ScheduleArgs {
        dest,
        time: time_control,
        processor,
        prio,
        preemption,
    } = a;
    // Priority: 9 bits like Pistachio (spec 5.6); all ones or a value above 255 = no change
    // (`abi::syscall_args::PrioControl::priority`, the one decoder).
    let new_prio = prio.priority();
    let cur = k.threads.current();
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    let privileged = (unsafe { cur.space() }).privileged;
    let (cur_id, cur_priority) = (cur.id, cur.priority);
    if dest.is_global() && dest.number() < thread::SYSTEM_BASE {
        return crate::interrupt::schedule_irq(k, dest, new_prio, privileged);
    }
    let st: &mut kernel_state::State = k;
    let t = st
        .threads
        .resolve_current_mut(dest)
        .filter(|t| t.id.number() >= thread::USER_BASE || t.id.number() < thread::SYSTEM_BASE);
    let Some(t) = t else {
        return Err(SyscallError::InvalidThread);
    };
    let is_scheduler = t.scheduler == cur_id;
    if !privileged && !is_scheduler {
        return Err(SyscallError::NoPrivilege);
    }
    let old_tc = encode_time_control(t.slice_left_us, t.total_quantum_us);
    if let Some(p) = new_prio
        && !privileged
        && p > cur_priority
    {
        return Err(SyscallError::NoPrivilege);
    }
    if !preemption.is_no_change() {
        let sensitive = preemption.sensitive_prio() as u64;
        if !privileged && sensitive > cur_priority as u64 {
            return Err(SyscallError::NoPrivilege);
        }
    }
    let mut new_slice = None;
    let mut new_quantum = None;
    if !time_control.is_no_change() {
        let (ts, tq) = (time_control.timeslice(), time_control.total_quantum());
        if ts.0 != 0xFFFF {
            match ts.decode() {
                TimeSpec::Period(us) if us > 0 => new_slice = Some(us),
                TimeSpec::Never => new_slice = Some(u64::MAX / 2),
                _ => return Err(SyscallError::InvalidParam),
            }
        }
        if tq.0 != 0xFFFF {
            match tq.decode() {
                TimeSpec::Period(us) => new_quantum = Some(us),
                TimeSpec::Never | TimeSpec::Zero => new_quantum = Some(0),
                _ => return Err(SyscallError::InvalidParam),
            }
        }
    }
    if processor.processor().is_some_and(|p| p != 0) {
        return Err(SyscallError::InvalidParam);
    }
    if let Some(s) = new_slice {
        t.timeslice_us = s;
        t.slice_left_us = s;
    }
    if let Some(q) = new_quantum {
        t.total_quantum_us = q;
    }
    if let Some(p) = new_prio {
        let was_queued = t.ready_queued;
        dequeue(&mut st.run, t);
        t.priority = p;
        if was_queued {
            enqueue(&mut st.run, t);
        }
    }
    // A changed priority takes effect on the way out (`syscall_dispatch`: `Next::Stay`).
    Ok((state_result(t) as u64, old_tc))
}

pub fn state_result(t: &Tcb) -> ScheduleResult {
    match t.state {
        State::Inactive | State::Dead => ScheduleResult::Dead,
        _ if t.halted => ScheduleResult::Inactive,
        State::Ready => ScheduleResult::Running,
        State::SendBlocked { .. } => ScheduleResult::PendingSend,
        State::RecvBlocked { .. } => ScheduleResult::Waiting,
        State::Transfer { .. } => ScheduleResult::Sending,
        State::XferWait { .. } => ScheduleResult::Receiving,
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
