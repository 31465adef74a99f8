//! Hardware interrupts: the kernel's timer tick and interrupts delivered to user-level handlers
//! as IPC (spec 6.5).
//!
//! IRQ n appears as the thread id (n, 1). ThreadControl associates a handler; when the line
//! fires it is masked and the handler receives a message from (n, 1) with label -1<<4; the
//! handler acknowledges by sending any message to (n, 1), which unmasks the line.

use abi::error::{IpcErrorCode, IpcPhase};
use abi::msgtag::{MsgTag, labels};
use abi::thread_id::ThreadId;

use crate::arch::trap::TrapFrame;
use crate::ipc::IpcErr;
use crate::platform::pic;
use crate::schedule;
use crate::sync::{KernelCell, KernelValue};
use crate::thread::{self, IpcWake, State, Tcb};

pub struct Clock {
    pub tsc_khz: u64,
    pub tick_ns: u64,
    pub ticks: u64,
}

pub static CLOCK: KernelCell<Clock> = KernelCell::new(Clock {
    tsc_khz: 1,
    tick_ns: 1_000_000,
    ticks: 0,
});

#[derive(Clone, Copy)]
pub(crate) struct Line {
    pub(crate) handler: ThreadId,
    /// Fired, message not yet delivered.
    pub(crate) pending: bool,
    pub(crate) priority: u8,
}

pub(crate) static LINES: KernelCell<[Line; pic::NUM_IRQS]> = KernelCell::new(
    [Line {
        handler: ThreadId::NIL,
        pending: false,
        priority: 255,
    }; pic::NUM_IRQS],
);

/// Microseconds per TSC count as a 0.64 fixed-point fraction (2^64 · 1000 / TSC kHz): the
/// clock is the high half of TSC × scale, a multiplication instead of a 128-bit division.
/// 0 if the TSC is slower than 1 MHz (then the division is used). Read by the `syscall`
/// entry's SystemClock shortcut (`arch/x86_64/syscall.rs`), which so gives the same clock.
#[unsafe(no_mangle)]
pub static CLOCK_SCALE: KernelCell<u64> = KernelCell::new(0);

pub fn init(tsc_khz: u64, tick_ns: u64) {
    // SAFETY: the only borrow of CLOCK_SCALE in use; it ends before any call that touches it.
    *(unsafe { CLOCK_SCALE.get() }) = if tsc_khz > 1000 {
        ((1000u128 << 64) / tsc_khz as u128) as u64
    } else {
        0
    };
    // SAFETY: the only borrow of CLOCK in use; it ends before any call that touches it.
    *(unsafe { CLOCK.get() }) = Clock {
        tsc_khz,
        tick_ns,
        ticks: 0,
    };
}

/// Microseconds since boot (SystemClock).
pub fn now_us() -> u64 {
    // SAFETY: the only borrow of CLOCK_SCALE in use; it ends before any call that touches it.
    let scale = *(unsafe { CLOCK_SCALE.get() });
    if scale != 0 {
        let t = crate::arch::cpu::rdtsc() as u128;
        return ((t * scale as u128) >> 64) as u64;
    }
    // SAFETY: the only borrow of CLOCK in use; it ends before any call that touches it.
    let c = unsafe { CLOCK.get() };
    let khz = c.tsc_khz.max(1);
    let t = crate::arch::cpu::rdtsc() as u128;
    (t * 1000 / khz as u128) as u64
}

pub fn handle_irq(irq: usize, frame: &mut TrapFrame) {
    crate::debug::on_irq(irq, frame);
    if irq == 0 {
        // SAFETY: the only borrow of CLOCK in use; it ends before any call that touches it.
        let c = unsafe { CLOCK.get() };
        c.ticks += 1;
        pic::eoi(0);
        if frame.is_from_user() || thread::current_ptr() == schedule::idle_tcb() {
            schedule::tick(c.tick_ns / 1000);
        }
        return;
    }
    if (irq == 7 || irq == 15) && pic::is_spurious(irq) {
        if irq == 15 {
            pic::eoi(2);
        }
        return;
    }
    pic::mask(irq);
    pic::eoi(irq);
    // SAFETY: the only borrow of LINES in use; it ends before any call that touches it.
    let line = &mut (unsafe { LINES.get() })[irq];
    if line.handler.is_nil() {
        return;
    }
    set_pending(line, true);
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    if let Some(h) = unsafe { thread::lookup_global(line.handler) } {
        let me = ThreadId::interrupt(irq as u64);
        if let State::RecvBlocked { from } = h.state
            && (from.is_any() || from == me)
        {
            set_pending(line, false);
            h.set_mr(0, MsgTag::new(labels::INTERRUPT, 0, 0).raw());
            h.ipc_from = me;
            schedule::wake(h, IpcWake::Done);
        }
    }
    if frame.is_from_user() || thread::current_ptr() == schedule::idle_tcb() {
        schedule::preempt_if_higher();
    }
}

fn line_of(id: ThreadId) -> Option<usize> {
    (id.is_global()
        && id.version() == 1
        && (id.number() as usize) < pic::NUM_IRQS
        && id.number() != 0
        && id.number() != 2)
        .then_some(id.number() as usize)
}

/// ThreadControl on an interrupt thread id (spec 5.3.1): `handler` = the irq id itself
/// deassociates; an existing thread associates.
pub fn associate(irq_tid: ThreadId, handler: ThreadId) -> Result<(), abi::error::SyscallError> {
    let irq = line_of(irq_tid).ok_or(abi::error::SyscallError::InvalidThread)?;
    // SAFETY: the only borrow of LINES in use; it ends before any call that touches it.
    let line = &mut (unsafe { LINES.get() })[irq];
    if handler == irq_tid || handler.is_nil() {
        line.handler = ThreadId::NIL;
        set_pending(line, false);
        pic::mask(irq);
        return Ok(());
    }
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let h = (unsafe { thread::resolve(cur, handler) })
        .ok_or(abi::error::SyscallError::InvalidThread)?;
    line.handler = h.id;
    set_pending(line, false);
    pic::unmask(irq);
    Ok(())
}

/// The handler's send to the interrupt thread: acknowledge and unmask.
pub fn acknowledge(cur: &Tcb, irq_tid: ThreadId) -> Result<(), ()> {
    let irq = line_of(irq_tid).ok_or(())?;
    // SAFETY: the only borrow of LINES in use; it ends before any call that touches it.
    if (unsafe { LINES.get() })[irq].handler != cur.id {
        return Err(());
    }
    pic::unmask(irq);
    Ok(())
}

/// Closed receive from an interrupt thread id: error if it is not ours.
pub fn try_receive(cur: &mut Tcb, irq_tid: ThreadId) -> Option<Result<ThreadId, IpcErr>> {
    match line_of(irq_tid) {
        // SAFETY: the only borrow of LINES in use; it ends before any call that touches it.
        Some(irq) if (unsafe { LINES.get() })[irq].handler == cur.id => None,
        _ => Some(Err(IpcErr::new(IpcPhase::Receive, IpcErrorCode::NotExist))),
    }
}

fn pending_line(cur: &Tcb, spec: ThreadId) -> Option<usize> {
    (0..pic::NUM_IRQS).find(|&i| {
        // SAFETY: the only borrow of LINES in use; it ends before any call that touches it.
        let l = &(unsafe { LINES.get() })[i];
        l.pending && l.handler == cur.id && (spec.is_any() || spec == ThreadId::interrupt(i as u64))
    })
}

/// Lines fired whose message is not delivered yet (a shortcut for every receive).
pub(crate) static PENDING: KernelValue<u32> = KernelValue::new(0);

fn set_pending(line: &mut Line, on: bool) {
    if line.pending != on {
        line.pending = on;
        if on {
            PENDING.set(PENDING.get() + 1);
        } else {
            PENDING.set(PENDING.get() - 1);
        }
    }
}

pub fn pending_for(cur: &Tcb, spec: ThreadId) -> bool {
    PENDING.get() != 0 && pending_line(cur, spec).is_some()
}

pub fn deliver_pending(cur: &mut Tcb, spec: ThreadId) -> Result<ThreadId, IpcErr> {
    let i = pending_line(cur, spec).unwrap_or(0);
    // SAFETY: the only borrow of LINES in use; it ends before any call that touches it.
    set_pending(&mut (unsafe { LINES.get() })[i], false);
    cur.set_mr(0, MsgTag::new(labels::INTERRUPT, 0, 0).raw());
    let id = ThreadId::interrupt(i as u64);
    cur.ipc_from = id;
    Ok(id)
}

/// Schedule on an interrupt thread id: valid once associated (spec 6.5).
pub fn schedule_irq(
    id: ThreadId,
    prio: u64,
    privileged: bool,
) -> Result<(u64, u64), abi::error::SyscallError> {
    let irq = line_of(id).ok_or(abi::error::SyscallError::InvalidThread)?;
    // SAFETY: the only borrow of LINES in use; it ends before any call that touches it.
    let line = &mut (unsafe { LINES.get() })[irq];
    if line.handler.is_nil() {
        return Err(abi::error::SyscallError::InvalidThread);
    }
    if !privileged {
        return Err(abi::error::SyscallError::NoPrivilege);
    }
    if prio != u64::MAX {
        line.priority = prio as u8;
    }
    Ok((abi::syscall_args::ScheduleResult::Waiting as u64, 0))
}

/// Drops associations of a deleted handler.
pub fn handler_deleted(id: ThreadId) {
    // SAFETY: the only borrow of LINES in use; it ends before any call that touches it.
    for (i, l) in (unsafe { LINES.get() }).iter_mut().enumerate() {
        if l.handler == id {
            l.handler = ThreadId::NIL;
            set_pending(l, false);
            pic::mask(i);
        }
    }
}
