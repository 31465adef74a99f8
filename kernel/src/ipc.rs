//! IPC: the Ipc/Lipc system call, message transfer, timeouts, cancellation, and the messages the
//! kernel sends on a thread's behalf (page faults, exceptions, thread start-up).
//!
//! The story of one message (see docs/design.md): the Ipc stub stores MR0..MR7 into the UTCB
//! and executes `syscall`; `syscall_dispatch` calls `sys_ipc`, which runs the send phase
//! (`send_phase`: find the partner, deliver directly if it waits for us, else block in its
//! send queue) and then the receive phase (`receive_phase`: take a queued sender, else block).
//! `transfer` copies the message between the two UTCBs (kernel views through the direct map) and
//! processes typed items. A blocked thread sleeps inside `schedule::block_current` on its own
//! kernel stack; whoever completes its IPC writes the outcome into its TCB (`wake`).
//!
//! May touch: thread IPC fields and states (through `schedule::wake`), UTCBs, spaces (items).

use abi::error::{IpcError, IpcErrorCode, IpcPhase};
use abi::msgtag::MsgTag;
use abi::thread_id::ThreadId;
use abi::time::{Time, Timeouts};
use abi::utcb;

use crate::interrupt;
use crate::schedule;
use crate::thread::{self, IpcWake, State, Tcb};

fn err(phase: IpcPhase, code: IpcErrorCode) -> u64 {
    IpcError::new(phase, code).encode()
}

/// Absolute deadline (µs) of a timeout, `None` = zero timeout, `Some(MAX)` = never.
fn deadline(t: Time) -> Option<u64> {
    if t == Time::NEVER {
        return Some(u64::MAX);
    }
    if t == Time::ZERO {
        return None;
    }
    let now = interrupt::now_us();
    match t.decode().deadline(now) {
        Some(d) => Some(d.max(now + 1)),
        None => Some(u64::MAX),
    }
}

/// Whom a message from `sender` appears to come from: its virtual sender when propagating.
fn apparent_sender(sender: &Tcb) -> &Tcb {
    if sender.propagate_as.is_null() {
        sender
    } else {
        // SAFETY: `propagate_as` points at a live thread (cleared when that thread is deleted).
        unsafe { &*sender.propagate_as }
    }
}

/// Does a receiver waiting with `from_spec` accept a message from `sender`?
fn accepts(receiver: &Tcb, sender: &Tcb) -> bool {
    let f = receiver.from_spec;
    let s = apparent_sender(sender);
    f.is_any() || (f.is_any_local() && receiver.same_space(s)) || f == s.id
}

/// Decides whether `cur`'s message to `dest` is propagated (spec 5.7.5): the virtual sender
/// must exist and be in the sender's space, or the receiver must be in the sender's space;
/// otherwise the p bit is silently dropped.
fn setup_propagation(cur: &mut Tcb, dest: &Tcb) {
    cur.propagate_as = core::ptr::null_mut();
    let tag = MsgTag::from_raw(cur.mr(0));
    if !tag.propagated() {
        return;
    }
    let vs = ThreadId::from_raw(cur.utcb_word(utcb::VIRTUAL_SENDER));
    match thread::resolve(cur, vs) {
        Some(v)
            if v.id.number() >= thread::USER_BASE
                && (v.same_space(cur) || dest.same_space(cur)) =>
        {
            cur.propagate_as = v as *mut Tcb;
        }
        _ => cur.mrs()[0] = tag.with_propagated(false).raw(),
    }
}

/// Completes a transfer from `sender` to `receiver`: message, from id, and for a propagated
/// message the ActualSender TCR and the redirection of the virtual sender's closed receive.
fn complete(sender: &mut Tcb, receiver: &mut Tcb) -> Result<(), (u64, u64)> {
    let r = transfer(sender, receiver);
    for t in [&mut *sender, &mut *receiver] {
        t.tunnel_for = core::ptr::null_mut();
        t.xfer_copier = core::ptr::null_mut();
    }
    let apparent = apparent_sender(sender);
    receiver.ipc_from = sender_id_for(receiver, apparent);
    if !sender.propagate_as.is_null() {
        receiver.set_utcb_word(utcb::VIRTUAL_SENDER, sender.id.raw());
        // SAFETY: as in `apparent_sender`.
        let vs = unsafe { &mut *sender.propagate_as };
        if vs.state == State::RecvBlocked && vs.from_spec == sender.id {
            vs.from_spec = receiver.id;
        }
        sender.propagate_as = core::ptr::null_mut();
    }
    r
}

/// The id under which `receiver` sees `sender`.
fn sender_id_for(receiver: &Tcb, sender: &Tcb) -> ThreadId {
    if receiver.same_space(sender) && sender.is_activated() {
        sender.local_id()
    } else {
        sender.id
    }
}

/// Copies the message from `src` to `dst`. Returns the error code pair (sender, receiver) on
/// failure; both UTCBs then carry the error.
fn transfer(src: &mut Tcb, dst: &mut Tcb) -> Result<(), (u64, u64)> {
    let tag = MsgTag::from_raw(src.mr(0));
    let u = tag.untyped() as usize;
    let t = tag.typed() as usize;
    let d = dst.mrs();
    d[0] = tag.clear_receive_flags().raw();
    if u + t >= 64 {
        let n = 63.min(u + t);
        d[1..=n].copy_from_slice(&src.mrs()[1..=n]);
        return Err((
            err(IpcPhase::Send, IpcErrorCode::Overflow),
            err(IpcPhase::Receive, IpcErrorCode::Overflow),
        ));
    }
    d[1..=u + t].copy_from_slice(&src.mrs()[1..=u + t]);
    if t == 0 {
        return Ok(());
    }
    // Typed items: work on a copy, since nested fault IPCs during string copies save and
    // restore the MRs.
    let mut s = [0u64; 64];
    s[..=u + t].copy_from_slice(&src.mrs()[..=u + t]);
    let mut i = u + 1;
    let end = u + t + 1;
    let mut buffers: Option<crate::string::Buffers> = None;
    let mut copied = 0u64;
    while i < end {
        if abi::items::StringHeader::is_string_item(s[i]) {
            i = string_item(src, dst, &s[..end], i, &mut buffers, &mut copied)?;
            continue;
        }
        match abi::items::decode_typed(&s[i..end]) {
            Ok((abi::items::TypedItem::Map { item: m, .. }, n)) => {
                crate::space::map_item(src, dst, m.snd_base, m.fpage, false)
                    .map_err(|_| overflow())?;
                i += n;
            }
            Ok((abi::items::TypedItem::Grant { item: g, .. }, n)) => {
                crate::space::map_item(src, dst, g.snd_base, g.fpage, true)
                    .map_err(|_| overflow())?;
                i += n;
            }
            _ => return Err(overflow()),
        }
    }
    Ok(())
}

/// One logical send string at `words[i]` into the next receive buffer; returns the index after
/// it. Kept out of `transfer` so that its large locals only occupy the stack for strings.
#[inline(never)]
fn string_item(
    src: &mut Tcb,
    dst: &mut Tcb,
    words: &[u64],
    i: usize,
    buffers: &mut Option<crate::string::Buffers>,
    copied: &mut u64,
) -> Result<usize, (u64, u64)> {
    let mut pos = i;
    let Some((send, _)) = crate::string::logical_string(words, &mut pos) else {
        return Err(crate::string::overflow(*copied));
    };
    if buffers.is_none() {
        *buffers = crate::string::Buffers::of(dst);
        let copier = thread::current_ptr();
        src.xfer_copier = copier;
        dst.xfer_copier = copier;
        thread::current().xfer_abort = false;
    }
    let Some(recv) = buffers.as_mut().and_then(|b| b.next()) else {
        return Err(crate::string::overflow(*copied));
    };
    crate::string::copy(src, &send, dst, &recv, copied)?;
    Ok(pos)
}

fn overflow() -> (u64, u64) {
    (
        err(IpcPhase::Send, IpcErrorCode::Overflow),
        err(IpcPhase::Receive, IpcErrorCode::Overflow),
    )
}

/// Delivers `sender`'s message to a `receiver` that is blocked receiving and accepts it.
fn deliver(sender: &mut Tcb, receiver: &mut Tcb) -> Result<(), u64> {
    let r = complete(sender, receiver);
    if receiver.state == State::Dead {
        // Deleted during the copy (which was aborted): ours to free now.
        thread::release_zombie(receiver);
        return r.map_err(|(se, _)| se);
    }
    match r {
        Ok(()) => {
            schedule::wake(receiver, IpcWake::Done);
            Ok(())
        }
        Err((se, re)) => {
            receiver.mrs()[0] = MsgTag::from_raw(receiver.mr(0)).with_error(true).raw();
            receiver.set_utcb_word(utcb::ERROR_CODE, re);
            schedule::wake(receiver, IpcWake::Error(re));
            Err(se)
        }
    }
}

/// Outcome of a whole Ipc call for the caller: the from id (nil if none).
pub struct IpcResult {
    pub from: ThreadId,
}

fn fail(cur: &Tcb, code: u64) -> IpcResult {
    cur.set_utcb_word(utcb::ERROR_CODE, code);
    cur.mrs()[0] = MsgTag::from_raw(cur.mr(0)).with_error(true).raw();
    IpcResult {
        from: ThreadId::NIL,
    }
}

/// The Ipc system call (spec 5.7) for the current thread.
pub fn sys_ipc(to: ThreadId, from_spec: ThreadId, timeouts: Timeouts) -> IpcResult {
    let cur = thread::current();
    match do_ipc(cur, to, from_spec, timeouts) {
        Ok(from) => IpcResult { from },
        Err(Phase::Send(code)) => fail(cur, code),
        Err(Phase::Receive(code)) => {
            cur.set_utcb_word(utcb::ERROR_CODE, code);
            // Keep what the sender wrote (if anything) but flag the error.
            cur.mrs()[0] = MsgTag::from_raw(cur.mr(0)).with_error(true).raw();
            IpcResult { from: cur.ipc_from }
        }
    }
}

/// The common case, short: an untyped message (no typed items, no flags) to a thread that is
/// already waiting for us, followed by a receive with timeout never from that thread or from
/// anybody / any local thread (Call, ReplyWait, Lcall, LreplyWait) while nobody else is queued
/// for us. The partner is handed the
/// message and made ready; we block exactly as the general path would, so every other part of
/// the kernel (timeouts, cancellation, deletion, interrupts, tunnelling) sees the usual states.
/// Returns false, having changed nothing, when the case does not apply.
pub fn fast_call(to: ThreadId, from_spec: ThreadId, timeouts: Timeouts) -> Option<IpcResult> {
    let cur = thread::current();
    let open = from_spec.is_any() || from_spec.is_any_local();
    if timeouts.receive() != Time::NEVER
        || to.is_nil()
        || to.is_any()
        || to.is_any_local()
        || !(from_spec == to || open)
    {
        return None;
    }
    let tag = MsgTag::from_raw(cur.mr(0));
    if tag.typed() != 0 || tag.flags() != 0 {
        return None;
    }
    let dest = thread::resolve(cur, to).filter(|t| t.id.number() >= thread::USER_BASE)?;
    if dest.state != State::RecvBlocked || dest.halted || !accepts(dest, cur) {
        return None;
    }
    if open && (!cur.sendq_head.is_null() || interrupt::pending_for(cur, ThreadId::ANY)) {
        return None;
    }
    crate::profile::mark(crate::profile::Point::Resolved);
    // Send: the message, the from id, the partner ready.
    let u = tag.untyped() as usize;
    let d = dest.mrs();
    d[0] = tag.raw();
    d[1..=u].copy_from_slice(&cur.mrs()[1..=u]);
    dest.ipc_from = sender_id_for(dest, cur);
    schedule::wake(dest, IpcWake::Done);
    crate::profile::mark(crate::profile::Point::Transferred);
    // Receive: wait for the answer.
    cur.from_spec = if open { from_spec } else { dest.id };
    cur.recv_phase_done = false;
    cur.recv_after_send = ThreadId::NIL;
    cur.state = State::RecvBlocked;
    schedule::block_current(u64::MAX);
    crate::string::serve_tunnel(cur);
    Some(match cur.wake {
        IpcWake::Done => IpcResult { from: cur.ipc_from },
        other => {
            let code = match other {
                IpcWake::Error(e) => e,
                _ => err(IpcPhase::Receive, IpcErrorCode::Canceled),
            };
            cur.set_utcb_word(utcb::ERROR_CODE, code);
            cur.mrs()[0] = MsgTag::from_raw(cur.mr(0)).with_error(true).raw();
            IpcResult { from: cur.ipc_from }
        }
    })
}

/// Which phase of an IPC failed, with its ErrorCode value.
pub enum Phase {
    Send(u64),
    Receive(u64),
}

/// Send phase then receive phase. A sender whose message is taken from the partner's send
/// queue passes straight into its receive phase (`enter_receive_after_send`), so a reply sent
/// with a zero timeout right away finds it waiting.
pub fn do_ipc(
    cur: &mut Tcb,
    to: ThreadId,
    from_spec: ThreadId,
    timeouts: Timeouts,
) -> Result<ThreadId, Phase> {
    cur.recv_after_send = if to.is_nil() {
        ThreadId::NIL
    } else {
        from_spec
    };
    cur.recv_timeout = timeouts.receive();
    cur.recv_phase_done = false;
    if !to.is_nil() {
        send_phase(cur, to, timeouts.send()).map_err(Phase::Send)?;
    }
    cur.recv_after_send = ThreadId::NIL;
    if cur.recv_phase_done {
        cur.recv_phase_done = false;
        return match cur.wake {
            IpcWake::Done => Ok(cur.ipc_from),
            IpcWake::Error(e) => Err(Phase::Receive(e)),
            IpcWake::None | IpcWake::Tunnel => Err(Phase::Receive(err(
                IpcPhase::Receive,
                IpcErrorCode::Canceled,
            ))),
        };
    }
    if from_spec.is_nil() {
        return Ok(ThreadId::NIL);
    }
    receive_phase(cur, from_spec, timeouts.receive()).map_err(Phase::Receive)
}

/// `s`'s send completed while it was blocked in a send queue. If it has a receive phase, it
/// goes into it right now (still blocked) instead of waking up first; else it wakes.
fn finish_queued_send(s: &mut Tcb) {
    let spec = s.recv_after_send;
    if spec.is_nil() || spec.is_global() && spec.number() < thread::SYSTEM_BASE {
        // No receive phase, or one from an interrupt: the thread runs it itself.
        return schedule::wake(s, IpcWake::Done);
    }
    let resolved = if spec.is_any() || spec.is_any_local() {
        Some(spec)
    } else {
        thread::resolve(s, spec)
            .filter(|t| t.id.number() >= thread::USER_BASE)
            .map(|t| t.id)
    };
    s.recv_phase_done = true;
    let Some(resolved) = resolved else {
        return schedule::wake(
            s,
            IpcWake::Error(err(IpcPhase::Receive, IpcErrorCode::NotExist)),
        );
    };
    // A matching sender already queued to it: let the thread receive that one itself.
    s.from_spec = resolved;
    let mut q = s.sendq_head;
    while !q.is_null() {
        // SAFETY: send-queue members are live, blocked TCBs.
        let w = unsafe { &*q };
        if accepts(s, w) {
            s.recv_phase_done = false;
            return schedule::wake(s, IpcWake::Done);
        }
        q = w.sendq_next;
    }
    let Some(dl) = deadline(s.recv_timeout) else {
        return schedule::wake(
            s,
            IpcWake::Error(err(IpcPhase::Receive, IpcErrorCode::Timeout)),
        );
    };
    schedule::timer_remove(s);
    s.partner = core::ptr::null_mut();
    s.from_spec = resolved;
    s.state = State::RecvBlocked;
    s.wake = IpcWake::None;
    if dl != u64::MAX {
        schedule::block_other(s, dl);
    }
}

/// Send phase: returns the ErrorCode value on failure.
pub fn send_phase(cur: &mut Tcb, to: ThreadId, timeout: Time) -> Result<(), u64> {
    if to.is_global() && to.number() < thread::SYSTEM_BASE {
        return interrupt::acknowledge(cur, to)
            .map_err(|_| err(IpcPhase::Send, IpcErrorCode::NotExist));
    }
    let Some(dest) =
        thread::resolve(cur, to).filter(|t| t.is_activated() && t.id.number() >= thread::USER_BASE)
    else {
        return Err(err(IpcPhase::Send, IpcErrorCode::NotExist));
    };
    setup_propagation(cur, dest);
    crate::profile::mark(crate::profile::Point::Resolved);
    if dest.state == State::RecvBlocked && accepts(dest, cur) {
        let r = deliver(cur, dest);
        crate::profile::mark(crate::profile::Point::Transferred);
        return r;
    }
    let Some(dl) = deadline(timeout) else {
        return Err(err(IpcPhase::Send, IpcErrorCode::Timeout));
    };
    // Block in dest's send queue.
    cur.state = State::SendBlocked;
    cur.partner = dest as *mut Tcb;
    sendq_push(dest, cur);
    schedule::block_current(dl);
    crate::string::serve_tunnel(cur);
    if cur.recv_phase_done {
        return Ok(());
    }
    match cur.wake {
        IpcWake::Done => Ok(()),
        IpcWake::Error(e) => Err(e),
        IpcWake::None | IpcWake::Tunnel => Err(err(IpcPhase::Send, IpcErrorCode::Canceled)),
    }
}

/// Receive phase: returns the from id, or the ErrorCode value.
pub fn receive_phase(cur: &mut Tcb, from_spec: ThreadId, timeout: Time) -> Result<ThreadId, u64> {
    let mut spec = from_spec;
    if !from_spec.is_any() && !from_spec.is_any_local() {
        if from_spec.is_global() && from_spec.number() < thread::SYSTEM_BASE {
            if let Some(r) = interrupt::try_receive(cur, from_spec) {
                return r;
            }
        } else {
            match thread::resolve(cur, from_spec).filter(|t| t.id.number() >= thread::USER_BASE) {
                Some(t) => spec = t.id,
                None => return Err(err(IpcPhase::Receive, IpcErrorCode::NotExist)),
            }
        }
    }
    cur.from_spec = spec;
    // A queued sender?
    let mut p = cur.sendq_head;
    while !p.is_null() {
        // SAFETY: send-queue members are live, blocked TCBs.
        let s = unsafe { &mut *p };
        p = s.sendq_next;
        if accepts(cur, s) {
            sendq_remove(cur, s);
            // The sender's send timeout ends where its transfer starts (spec 5.7): during a
            // string copy that blocks it is neither queued nor may its timer fire (that
            // "removed" it from the queue of a null partner: docs/kernel-bugs.md).
            schedule::timer_remove(s);
            let r = complete(s, cur);
            let id = cur.ipc_from;
            if s.state == State::Dead {
                // Deleted during the copy (which was aborted): ours to free now.
                thread::release_zombie(s);
                return r.map(|()| id).map_err(|(_, re)| re);
            }
            return match r {
                Ok(()) => {
                    finish_queued_send(s);
                    Ok(id)
                }
                Err((se, re)) => {
                    s.set_utcb_word(utcb::ERROR_CODE, se);
                    s.mrs()[0] = MsgTag::from_raw(s.mr(0)).with_error(true).raw();
                    schedule::wake(s, IpcWake::Error(se));
                    Err(re)
                }
            };
        }
    }
    if interrupt::pending_for(cur, spec) {
        return interrupt::deliver_pending(cur, spec);
    }
    let Some(dl) = deadline(timeout) else {
        return Err(err(IpcPhase::Receive, IpcErrorCode::Timeout));
    };
    cur.state = State::RecvBlocked;
    schedule::block_current(dl);
    crate::string::serve_tunnel(cur);
    match cur.wake {
        IpcWake::Done => Ok(cur.ipc_from),
        IpcWake::Error(e) => Err(e),
        IpcWake::None | IpcWake::Tunnel => Err(err(IpcPhase::Receive, IpcErrorCode::Canceled)),
    }
}

fn sendq_push(dest: &mut Tcb, s: &mut Tcb) {
    let p = s as *mut Tcb;
    s.sendq_next = core::ptr::null_mut();
    if dest.sendq_head.is_null() {
        dest.sendq_head = p;
        s.sendq_prev = p; // head's prev = tail
    } else {
        // SAFETY: queue members are live TCBs; the head's prev is the tail.
        unsafe {
            let head = &mut *dest.sendq_head;
            let tail = head.sendq_prev;
            (*tail).sendq_next = p;
            s.sendq_prev = tail;
            head.sendq_prev = p;
        }
    }
}

fn sendq_remove(dest: &mut Tcb, s: &mut Tcb) {
    let p = s as *mut Tcb;
    // SAFETY: `s` is in `dest`'s send queue; members are live TCBs.
    unsafe {
        let head = dest.sendq_head;
        if head == p {
            dest.sendq_head = s.sendq_next;
            if !s.sendq_next.is_null() {
                (*s.sendq_next).sendq_prev = s.sendq_prev;
            }
        } else {
            (*s.sendq_prev).sendq_next = s.sendq_next;
            if s.sendq_next.is_null() {
                (*head).sendq_prev = s.sendq_prev;
            } else {
                (*s.sendq_next).sendq_prev = s.sendq_prev;
            }
        }
    }
    s.sendq_next = core::ptr::null_mut();
    s.sendq_prev = core::ptr::null_mut();
    s.partner = core::ptr::null_mut();
}

/// A blocked thread's timeout expired.
pub fn timeout(t: &mut Tcb) {
    if t.state == State::XferWait {
        return schedule::wake(t, IpcWake::Error(crate::string::XFER_EXPIRED));
    }
    let code = match t.state {
        State::SendBlocked if t.partner.is_null() => {
            // Taken from its partner's queue by a copy in progress: no timer applies.
            return schedule::timer_remove(t);
        }
        State::SendBlocked => {
            // SAFETY: a send-blocked thread's partner is live (deletion unblocks its senders).
            let dest = unsafe { &mut *t.partner };
            sendq_remove(dest, t);
            err(IpcPhase::Send, IpcErrorCode::Timeout)
        }
        _ => err(IpcPhase::Receive, IpcErrorCode::Timeout),
    };
    schedule::wake(t, IpcWake::Error(code));
}

/// Aborts a blocked IPC of `t` (ExchangeRegisters, deletion): the thread returns with `code`
/// for the phase it was in. Returns whether it was sending / receiving.
pub fn cancel(
    t: &mut Tcb,
    abort_send: bool,
    abort_receive: bool,
    code: IpcErrorCode,
) -> (bool, bool) {
    let copier = t.xfer_copier;
    if !copier.is_null() && (abort_send || abort_receive) {
        // In a string transfer: abort it for both parties (code 7, spec 5.2).
        let me = t as *mut Tcb;
        // SAFETY: the copier is alive while `xfer_copier` is set (cleared when it finishes).
        let c = unsafe { &mut *copier };
        c.xfer_abort = true;
        if c.state == State::XferWait {
            schedule::wake(
                c,
                IpcWake::Error(err(IpcPhase::Send, IpcErrorCode::Aborted)),
            );
        } else if copier != me && (c.state == State::SendBlocked || c.state == State::RecvBlocked) {
            // The copier is in its own nested fault IPC: abort that.
            cancel_blocked(c, true, true, IpcErrorCode::Aborted);
        }
        return match t.state {
            State::XferWait => (true, false),
            State::Transfer => (false, true),
            _ => cancel_blocked(t, abort_send, abort_receive, IpcErrorCode::Aborted),
        };
    }
    cancel_blocked(t, abort_send, abort_receive, code)
}

/// Cancels a thread's blocked IPC (send queue or receive wait) with `code`.
pub fn cancel_blocked(
    t: &mut Tcb,
    abort_send: bool,
    abort_receive: bool,
    code: IpcErrorCode,
) -> (bool, bool) {
    match t.state {
        // A sender whose receiver took it from its queue and is copying its message has no
        // partner link: the copy's abort (`cancel`) ends its IPC, not a queue removal.
        State::SendBlocked if t.partner.is_null() => (true, false),
        State::SendBlocked => {
            if abort_send {
                // SAFETY: as in `timeout`.
                let dest = unsafe { &mut *t.partner };
                sendq_remove(dest, t);
                schedule::wake(t, IpcWake::Error(err(IpcPhase::Send, code)));
            }
            (true, false)
        }
        State::RecvBlocked => {
            if abort_receive {
                schedule::wake(t, IpcWake::Error(err(IpcPhase::Receive, code)));
            }
            (false, true)
        }
        _ => (false, false),
    }
}

/// Wakes every thread whose IPC involves `gone` (being deleted) with "non-existing partner",
/// and takes `gone` out of any send queue.
pub fn unlink_deleted(gone: &mut Tcb) {
    if !gone.xfer_copier.is_null() {
        // In a string transfer: abort it for the other party too (it must not go on
        // copying from or to a deleted thread).
        cancel(gone, true, true, IpcErrorCode::Aborted);
    }
    if gone.state == State::SendBlocked && !gone.partner.is_null() {
        // SAFETY: as in `timeout`.
        let dest = unsafe { &mut *gone.partner };
        sendq_remove(dest, gone);
    }
    schedule::timer_remove(gone);
    while !gone.sendq_head.is_null() {
        // SAFETY: send-queue members are live TCBs.
        let s = unsafe { &mut *gone.sendq_head };
        sendq_remove(gone, s);
        schedule::wake(
            s,
            IpcWake::Error(err(IpcPhase::Send, IpcErrorCode::NotExist)),
        );
    }
    let id = gone.id;
    let gp = gone as *mut Tcb;
    thread::for_each(|t| {
        if t.propagate_as == gp {
            t.propagate_as = core::ptr::null_mut();
        }
        if t.xfer_copier == gp {
            // The thread copying our message (or into our buffers) is gone: end our IPC
            // (it used to stay blocked for ever: docs/kernel-bugs.md).
            t.xfer_copier = core::ptr::null_mut();
            match t.state {
                State::SendBlocked if t.partner.is_null() => schedule::wake(
                    t,
                    IpcWake::Error(err(IpcPhase::Send, IpcErrorCode::Aborted)),
                ),
                State::RecvBlocked => schedule::wake(
                    t,
                    IpcWake::Error(err(IpcPhase::Receive, IpcErrorCode::Aborted)),
                ),
                _ => {}
            }
        }
        if t.tunnel_for == gp {
            t.tunnel_for = core::ptr::null_mut();
            if t.state == State::Transfer || t.state == State::XferWait {
                schedule::wake(
                    t,
                    IpcWake::Error(err(IpcPhase::Send, IpcErrorCode::Aborted)),
                );
            }
        }
        if (t.state == State::XferWait || t.state == State::Transfer)
            && core::ptr::eq(gone.tunnel_for, t)
        {
            schedule::wake(
                t,
                IpcWake::Error(err(IpcPhase::Send, IpcErrorCode::Aborted)),
            );
        }
        if t.state == State::RecvBlocked && t.from_spec == id {
            schedule::wake(
                t,
                IpcWake::Error(err(IpcPhase::Receive, IpcErrorCode::NotExist)),
            );
        }
    });
}

/// Sends a kernel-generated message (page fault, exception) from `cur` to `handler` as a
/// Call with infinite timeouts, saving and restoring the thread's MR0..MR63, BR0 and
/// ErrorCode around it (spec 5.7.8). `build` fills the message; `reply` reads the answer
/// before the registers are restored. Returns the ErrorCode value if the IPC failed.
pub fn kernel_call(
    cur: &mut Tcb,
    handler: ThreadId,
    build: impl FnOnce(&Tcb),
    reply: impl FnOnce(&Tcb),
) -> Result<(), u64> {
    kernel_call_timeout(cur, handler, Time::NEVER, build, reply)
}

/// `kernel_call` with a timeout for both phases.
pub fn kernel_call_timeout(
    cur: &mut Tcb,
    handler: ThreadId,
    timeout: Time,
    build: impl FnOnce(&Tcb),
    reply: impl FnOnce(&Tcb),
) -> Result<(), u64> {
    let mut saved = [0u64; 64];
    saved.copy_from_slice(cur.mrs());
    let br0 = cur.utcb_word(utcb::br(0));
    let ec = cur.utcb_word(utcb::ERROR_CODE);
    cur.set_utcb_word(utcb::br(0), abi::fpage::Fpage::COMPLETE.raw());
    build(cur);
    cur.kernel_ipc_depth += 1;
    let r = match do_ipc(cur, handler, handler, Timeouts::new(timeout, timeout)) {
        Ok(_) => Ok(()),
        Err(Phase::Send(e)) | Err(Phase::Receive(e)) => Err(e),
    };
    cur.kernel_ipc_depth -= 1;
    if r.is_ok() {
        reply(cur);
    }
    cur.mrs().copy_from_slice(&saved);
    cur.set_utcb_word(utcb::br(0), br0);
    cur.set_utcb_word(utcb::ERROR_CODE, ec);
    r
}

/// Did a kernel-generated IPC fail because it was aborted (ExchangeRegisters), rather than for
/// lack of a partner? An aborted fault IPC makes the thread retry its instruction (spec 5.2).
pub fn was_aborted(code: u64) -> bool {
    matches!(IpcError::decode(code), Some(e) if e.code == IpcErrorCode::Canceled || e.code == IpcErrorCode::Aborted)
}

/// First code of an activated thread: wait for the start-up message from the pager
/// (spec 6.1), then enter user mode.
pub extern "C" fn thread_startup(_: u64) -> ! {
    let cur = thread::current();
    // The thread was put into RecvBlocked by ThreadControl and has now been woken.
    if cur.wake == IpcWake::Done {
        let tag = MsgTag::from_raw(cur.mr(0));
        if tag.untyped() == 2 {
            let (ip, sp) = (cur.mr(1), cur.mr(2));
            let f = cur.frame();
            f.rip = ip;
            f.rsp = sp;
        }
    }
    cur.startup = false;
    crate::syscall::return_to_user()
}
