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
use crate::kernel_state::Kernel;
use crate::platform::pic;
use crate::schedule;
use crate::sync::KernelValue;
use crate::thread::{self, IpcWake, State, Tcb};

#[derive(Clone, Copy)]
pub struct Clock {
    pub tsc_khz: u64,
    pub tick_ns: u64,
    pub ticks: u64,
}

pub static CLOCK: KernelValue<Clock> = KernelValue::new(Clock {
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

/// The interrupt lines and their owners (`kernel_state::State::lines`): none at first.
pub(crate) const NO_LINES: [Line; pic::NUM_IRQS] = [Line {
    handler: ThreadId::NIL,
    pending: false,
    priority: 255,
}; pic::NUM_IRQS];

/// Microseconds per TSC count as a 0.64 fixed-point fraction (2^64 · 1000 / TSC kHz): the
/// clock is the high half of TSC × scale, a multiplication instead of a 128-bit division.
/// 0 if the TSC is slower than 1 MHz (then the division is used). Read by the `syscall`
/// entry's SystemClock shortcut (`arch/x86_64/syscall.rs`), which so gives the same clock.
#[unsafe(no_mangle)]
pub static CLOCK_SCALE: KernelValue<u64> = KernelValue::new(0);

pub fn init(tsc_khz: u64, tick_ns: u64) {
    CLOCK_SCALE.set(if tsc_khz > 1000 {
        ((1000u128 << 64) / tsc_khz as u128) as u64
    } else {
        0
    });
    CLOCK.set(Clock {
        tsc_khz,
        tick_ns,
        ticks: 0,
    });
}

/// Microseconds since boot (SystemClock).
pub fn now_us() -> u64 {
    let scale = CLOCK_SCALE.get();
    if scale != 0 {
        let t = crate::arch::cpu::rdtsc() as u128;
        return ((t * scale as u128) >> 64) as u64;
    }
    let khz = CLOCK.get().tsc_khz.max(1);
    let t = crate::arch::cpu::rdtsc() as u128;
    (t * 1000 / khz as u128) as u64
}

pub fn handle_irq(k: &mut Kernel, irq: usize, frame: &mut TrapFrame) {
    crate::debug::on_irq(irq, frame);
    if irq == 0 {
        let c = CLOCK.get();
        CLOCK.set(Clock {
            ticks: c.ticks + 1,
            ..c
        });
        pic::eoi(0);
        if frame.is_from_user() || thread::current_ptr() == schedule::idle_tcb() {
            let next = schedule::tick(k, c.tick_ns / 1000);
            schedule::finish(k, next);
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
    let line = &mut k.lines[irq];
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
            schedule::wake(k, h, IpcWake::Done);
        }
    }
    if frame.is_from_user() || thread::current_ptr() == schedule::idle_tcb() {
        schedule::finish(k, schedule::Next::Stay);
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
pub fn associate(
    k: &mut Kernel,
    irq_tid: ThreadId,
    handler: ThreadId,
) -> Result<(), abi::error::SyscallError> {
    let irq = line_of(irq_tid).ok_or(abi::error::SyscallError::InvalidThread)?;
    let line = &mut k.lines[irq];
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
pub fn acknowledge(k: &Kernel, cur: &Tcb, irq_tid: ThreadId) -> Result<(), ()> {
    let irq = line_of(irq_tid).ok_or(())?;
    if k.lines[irq].handler != cur.id {
        return Err(());
    }
    pic::unmask(irq);
    Ok(())
}

/// Closed receive from an interrupt thread id: error if it is not ours.
pub fn try_receive(
    k: &Kernel,
    cur: &mut Tcb,
    irq_tid: ThreadId,
) -> Option<Result<ThreadId, IpcErr>> {
    match line_of(irq_tid) {
        Some(irq) if k.lines[irq].handler == cur.id => None,
        _ => Some(Err(IpcErr::new(IpcPhase::Receive, IpcErrorCode::NotExist))),
    }
}

fn pending_line(k: &Kernel, cur: &Tcb, spec: ThreadId) -> Option<usize> {
    (0..pic::NUM_IRQS).find(|&i| {
        let l = &k.lines[i];
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

pub fn pending_for(k: &Kernel, cur: &Tcb, spec: ThreadId) -> bool {
    PENDING.get() != 0 && pending_line(k, cur, spec).is_some()
}

pub fn deliver_pending(k: &mut Kernel, cur: &mut Tcb, spec: ThreadId) -> Result<ThreadId, IpcErr> {
    let i = pending_line(k, cur, spec).unwrap_or(0);
    set_pending(&mut k.lines[i], false);
    cur.set_mr(0, MsgTag::new(labels::INTERRUPT, 0, 0).raw());
    let id = ThreadId::interrupt(i as u64);
    cur.ipc_from = id;
    Ok(id)
}

/// Schedule on an interrupt thread id: valid once associated (spec 6.5).
pub fn schedule_irq(
    k: &mut Kernel,
    id: ThreadId,
    prio: Option<u8>,
    privileged: bool,
) -> Result<(u64, u64), abi::error::SyscallError> {
    let irq = line_of(id).ok_or(abi::error::SyscallError::InvalidThread)?;
    let line = &mut k.lines[irq];
    if line.handler.is_nil() {
        return Err(abi::error::SyscallError::InvalidThread);
    }
    if !privileged {
        return Err(abi::error::SyscallError::NoPrivilege);
    }
    if let Some(p) = prio {
        line.priority = p;
    }
    Ok((abi::syscall_args::ScheduleResult::Waiting as u64, 0))
}

/// Drops associations of a deleted handler.
pub fn handler_deleted(k: &mut Kernel, id: ThreadId) {
    for (i, l) in k.lines.iter_mut().enumerate() {
        if l.handler == id {
            l.handler = ThreadId::NIL;
            set_pending(l, false);
            pic::mask(i);
        }
    }
}
