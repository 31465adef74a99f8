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
//! Threads are named, not pointed at: a send-blocked thread's state names its receiver by
//! handle, send queues and the lists of closed receivers link thread numbers (`kcore::queue`),
//! and the parties of a string transfer are handles looked up afresh after every wait. What an
//! outside event (timeout, abort, deletion, delivery) does to a blocked thread is decided by
//! `kcore::state::react` and carried out by `apply`. IPC errors travel as `IpcErr` and become
//! the ErrorCode TCR in `report_error` only. (Decision 009.)
//!
//! May touch: thread IPC fields and states (through `schedule::wake`), UTCBs, spaces (items).

use abi::error::{IpcError, IpcErrorCode, IpcPhase};
use abi::msgtag::MsgTag;
use abi::thread_id::ThreadId;
use abi::time::{Time, Timeouts};
use abi::utcb;

use crate::interrupt;
use crate::kernel_state::{Kernel, State as State_};
use crate::schedule;
use crate::thread::{self, IpcWake, State, Tcb};
use kcore::queue::{Link, Links};
use kcore::state::{self, Event, Outcome, Reaction};

fn err(phase: IpcPhase, code: IpcErrorCode) -> IpcErr {
    IpcErr::new(phase, code)
}

/// An IPC error as it travels through the kernel: built only from its phase, code and byte
/// offset (`abi::error::IpcError`, the one encoder), carried as the ErrorCode word it becomes
/// (one register, so outcomes stay as cheap as the raw words they replace).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IpcErr(u64);

impl IpcErr {
    pub const fn new(phase: IpcPhase, code: IpcErrorCode) -> Self {
        IpcErr(IpcError::new(phase, code).encode())
    }

    pub const fn with_offset(phase: IpcPhase, code: IpcErrorCode, offset: u64) -> Self {
        IpcErr(IpcError::with_offset(phase, code, offset).encode())
    }

    /// The error code (spec 5.7.6).
    pub fn code(self) -> Option<IpcErrorCode> {
        IpcError::decode(self.0).map(|e| e.code)
    }

    /// The ErrorCode TCR value.
    pub const fn word(self) -> u64 {
        self.0
    }
}

/// The one place where an IPC error becomes user-visible: the ErrorCode TCR and the E flag of
/// the thread's MR0 (spec 5.7).
pub fn report_error(t: &Tcb, e: IpcErr) {
    t.set_utcb_word(utcb::ERROR_CODE, e.word());
    t.set_mr(0, MsgTag::from_raw(t.mr(0)).with_error(true).raw());
}

/// Absolute deadline (µs) of a timeout, `None` = zero timeout, `Some(MAX)` = never.
pub(crate) fn deadline(t: Time) -> Option<u64> {
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

/// Whom a message from `sender` appears to come from: its virtual sender when propagating
/// (if that thread still exists).
#[inline(always)]
fn apparent_sender(sender: &Tcb) -> &Tcb {
    match sender.propagate_as {
        None => sender,
        Some(v) => virtual_sender(sender, v),
    }
}

#[cold]
#[inline(never)]
fn virtual_sender(sender: &Tcb, v: thread::Handle) -> &Tcb {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    match unsafe { thread::get(v) } {
        Some(v) => v,
        None => sender,
    }
}

/// Does a receiver blocked in a receive accept a message from `sender`?
#[inline(always)]
fn accepts(receiver: &Tcb, sender: &Tcb) -> bool {
    match receiver.state {
        State::RecvBlocked { from } => accepts_from(from, receiver, sender),
        _ => false,
    }
}

/// Would a receive from `f` by `receiver` accept a message from `sender`?
#[inline(always)]
fn accepts_from(f: ThreadId, receiver: &Tcb, sender: &Tcb) -> bool {
    if f.is_any() {
        return true;
    }
    let s = apparent_sender(sender);
    (f.is_any_local() && receiver.same_space(s)) || f == s.id
}

/// Decides whether `cur`'s message to `dest` is propagated (spec 5.7.5): the virtual sender
/// must exist and be in the sender's space, or the receiver must be in the sender's space;
/// otherwise the p bit is silently dropped.
fn setup_propagation(cur: &mut Tcb, dest: &Tcb) {
    cur.propagate_as = None;
    let tag = MsgTag::from_raw(cur.mr(0));
    if !tag.propagated() {
        return;
    }
    let vs = ThreadId::from_raw(cur.utcb_word(utcb::VIRTUAL_SENDER));
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    match unsafe { thread::resolve(cur, vs) } {
        Some(v)
            if v.id.number() >= thread::USER_BASE
                && (v.same_space(cur) || dest.same_space(cur)) =>
        {
            cur.propagate_as = Some(v.handle());
        }
        _ => cur.set_mr(0, tag.with_propagated(false).raw()),
    }
}

/// How a transfer run by the current thread ended.
enum Completion<'a> {
    /// Both parties exist (the other party is given back); the pair of error codes (sender,
    /// receiver) if it failed.
    Done(&'a mut Tcb, Result<(), (IpcErr, IpcErr)>),
    /// The other party was deleted while the copy waited for a page fault: the current
    /// thread's transfer is aborted, and the other party must not be touched.
    PartnerGone,
}

/// Completes a transfer from `sender` to `receiver` run by the current thread (one of the
/// two): message, from id, and for a propagated message the ActualSender TCR and the
/// redirection of the virtual sender's closed receive. The party that does not run the copy
/// waits in `State::Transfer` meanwhile, with no timer: its IPC timeout no longer applies
/// once the transfer has started (spec 5.7); only transfer timeouts bound the copy.
///
/// The parties are named by handles, not references: a string copy may block (nested page
/// faults), and either party other than the running one may be deleted meanwhile.
fn complete<'a>(k: &mut Kernel, sender: &'a mut Tcb, receiver: &'a mut Tcb) -> Completion<'a> {
    let sender_runs = core::ptr::eq(&*sender, thread::current_ptr());
    if MsgTag::from_raw(sender.mr(0)).typed() == 0 {
        // Untyped: nothing can block, both stay as they are.
        let r = transfer_untyped(sender, receiver);
        finish(sender, receiver);
        return Completion::Done(if sender_runs { receiver } else { sender }, r);
    }
    // May block: from here on the parties are named by handles only.
    complete_typed(k, sender.handle(), receiver.handle())
}

/// `complete` for a message with typed items (map, grant, string items: may block).
#[inline(never)]
fn complete_typed(
    k: &mut Kernel,
    sender_h: thread::Handle,
    receiver_h: thread::Handle,
) -> Completion<'static> {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let sender_runs = (unsafe { thread::current() }).handle() == sender_h;
    let other = if sender_runs { receiver_h } else { sender_h };
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    if let Some(waiting) = unsafe { thread::get(other) } {
        schedule::timer_remove(waiting);
        leave_receive_list(waiting);
        waiting.state = State::Transfer {
            // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
            with: (unsafe { thread::current() }).handle(),
            sender: !sender_runs,
        };
    }
    let r = transfer(k, sender_h, receiver_h);
    // The string-transfer links of this pair end here (only this pair's: a nested fault IPC
    // inside a copy completes too, and must leave the outer transfer's links alone).
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let me = unsafe { thread::current() };
    let me_h = me.handle();
    let ours = me.xfer_partner == Some(other);
    if ours {
        me.xfer_partner = None;
        me.xfer_copier = false;
    }
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let Some(o) = (unsafe { thread::get(other) }) else {
        return Completion::PartnerGone;
    };
    if o.xfer_partner == Some(me_h) {
        o.xfer_partner = None;
        o.xfer_copier = false;
    }
    // The other party must still wait for this transfer. It may have left it while the copy
    // waited (an abort of the copier's wait for a tunnelled fault that it was still serving,
    // or a serve that found its link gone): it then runs on, or blocks in another IPC (a send
    // queue), and must not be woken or written by this transfer (docs/kernel-bugs.md: "thread
    // in two send queues"). With its link cleared above, a tunnelled fault it still serves
    // ends its own IPC with "aborted".
    if !matches!(o.state, State::Transfer { with, .. } if with == me_h) {
        return Completion::PartnerGone;
    }
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let (Some(sender), Some(receiver)) = (
        (unsafe { thread::get(sender_h) }),
        (unsafe { thread::get(receiver_h) }),
    ) else {
        return Completion::PartnerGone;
    };
    finish(sender, receiver);
    Completion::Done(if sender_runs { receiver } else { sender }, r)
}

/// The from id, and for a propagated message the ActualSender TCR and the redirection of the
/// virtual sender's closed receive.
fn finish(sender: &mut Tcb, receiver: &mut Tcb) {
    let apparent = apparent_sender(sender);
    receiver.ipc_from = sender_id_for(receiver, apparent);
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    if let Some(vs) = sender.propagate_as.and_then(|h| unsafe { thread::get(h) }) {
        receiver.set_utcb_word(utcb::VIRTUAL_SENDER, sender.id.raw());
        if vs.state == (State::RecvBlocked { from: sender.id }) {
            leave_receive_list(vs);
            enter_receive(vs, receiver.id, Some(receiver));
        }
    }
    sender.propagate_as = None;
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
/// Copies MR1..=MRn (n <= 63). No call at all for an empty message, and no out-of-line
/// range checks (an inclusive range index is not inlined; an empty `copy_from_slice` still
/// calls `memcpy`).
#[inline(always)]
fn copy_mrs(d: &mut [u64; 64], s: &[u64; 64], n: usize) {
    if n != 0 {
        let end = n.min(63) + 1;
        d[1..end].copy_from_slice(&s[1..end]);
    }
}

/// The untyped part of a message (MR0..MRu): never blocks. Also reports an overflow.
fn transfer_untyped(src: &Tcb, dst: &mut Tcb) -> Result<(), (IpcErr, IpcErr)> {
    let tag = MsgTag::from_raw(src.mr(0));
    let u = tag.untyped() as usize;
    let t = tag.typed() as usize;
    let d = dst.mrs();
    d[0] = tag.clear_receive_flags().raw();
    if u + t >= 64 {
        let n = 63.min(u + t);
        d[1..=n].copy_from_slice(&src.mrs_ref()[1..=n]);
        return Err(overflow());
    }
    copy_mrs(d, src.mrs_ref(), u + t);
    Ok(())
}

fn transfer(
    k: &mut Kernel,
    src_h: thread::Handle,
    dst_h: thread::Handle,
) -> Result<(), (IpcErr, IpcErr)> {
    // Two distinct threads: the running one and the one blocked waiting for it.
    let Some((src, dst)) = k.threads.pair_mut(src_h, dst_h) else {
        return Err(crate::string::aborted(0));
    };
    transfer_untyped(src, dst)?;
    let tag = MsgTag::from_raw(src.mr(0));
    let u = tag.untyped() as usize;
    let t = tag.typed() as usize;
    if t == 0 {
        return Ok(());
    }
    // Typed items: work on a copy, since nested fault IPCs during string copies save and
    // restore the MRs. A pager's reply (a map item and a few words) fits in 8 words, copied
    // whole: no 512-byte buffer to clear first (issue 17: ~60 instructions per map item).
    if u + t < 8 {
        let mut s = [0u64; 8];
        s.copy_from_slice(&src.mrs_ref()[..8]);
        typed_items(k, src_h, dst_h, &s, u, t)
    } else {
        let mut s = [0u64; 64];
        s[..=u + t].copy_from_slice(&src.mrs_ref()[..=u + t]);
        typed_items(k, src_h, dst_h, &s, u, t)
    }
}

/// `transfer`'s typed items, MR[u+1..=u+t] of the copy `s` of the sender's MRs.
fn typed_items(
    k: &mut Kernel,
    src_h: thread::Handle,
    dst_h: thread::Handle,
    s: &[u64],
    u: usize,
    t: usize,
) -> Result<(), (IpcErr, IpcErr)> {
    let mut i = u + 1;
    let end = u + t + 1;
    let mut buffers: Option<crate::string::Buffers> = None;
    let mut copied = 0u64;
    while i < end {
        if abi::items::StringHeader::is_string_item(s[i]) {
            i = string_item(k, src_h, dst_h, &s[..end], i, &mut buffers, &mut copied)?;
            continue;
        }
        // A string copy before may have blocked: name the parties afresh.
        let Some((src, dst)) = k.threads.pair_mut(src_h, dst_h) else {
            return Err(crate::string::aborted(copied));
        };
        // Map/grant items (spec 2.4, 2.5): a receiver whose receive window is nil (it accepts
        // no mappings, e.g. acceptor 0) makes the IPC a message overflow for both parties, at
        // the offset of the string bytes copied so far (issue 14; was: skipped silently, offset
        // 0). Running out of kernel memory while mapping is reported the same way.
        let (snd_base, fpage, grant, n) = match abi::items::decode_typed(&s[i..end]) {
            Ok((abi::items::TypedItem::Map { item: m, .. }, n)) => (m.snd_base, m.fpage, false, n),
            Ok((abi::items::TypedItem::Grant { item: g, .. }, n)) => (g.snd_base, g.fpage, true, n),
            _ => return Err(crate::string::overflow(copied)),
        };
        if abi::Acceptor(dst.utcb_word(utcb::br(0))).window().is_nil() {
            return Err(crate::string::overflow(copied));
        }
        crate::space::map_item(src, dst, snd_base, fpage, grant)
            .map_err(|_| crate::string::overflow(copied))?;
        i += n;
    }
    Ok(())
}

/// One logical send string at `words[i]` into the next receive buffer; returns the index after
/// it. Kept out of `transfer` so that its large locals only occupy the stack for strings.
#[inline(never)]
fn string_item(
    k: &mut Kernel,
    src_h: thread::Handle,
    dst_h: thread::Handle,
    words: &[u64],
    i: usize,
    buffers: &mut Option<crate::string::Buffers>,
    copied: &mut u64,
) -> Result<usize, (IpcErr, IpcErr)> {
    let mut pos = i;
    let Some((send, _)) = crate::string::logical_string(words, &mut pos) else {
        return Err(crate::string::overflow(*copied));
    };
    if buffers.is_none() {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let (Some(src), Some(dst)) = (
            (unsafe { thread::get(src_h) }),
            (unsafe { thread::get(dst_h) }),
        ) else {
            return Err(crate::string::aborted(*copied));
        };
        *buffers = crate::string::Buffers::of(dst);
        if buffers.is_none() {
            // No string accepted: an overflow before any copy, and no transfer links. (A
            // kernel-generated IPC, which accepts no strings, may run inside a string copy of
            // its receiver: linking it here replaced the links of that outer transfer.)
            return Err(crate::string::overflow(*copied));
        }
        let src_runs = core::ptr::eq(&*src, thread::current_ptr());
        src.xfer_partner = Some(dst.handle());
        dst.xfer_partner = Some(src.handle());
        src.xfer_copier = src_runs;
        dst.xfer_copier = !src_runs;
        src.xfer_sender = true;
        dst.xfer_sender = false;
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        (unsafe { thread::current() }).xfer_abort = false;
    }
    let Some(recv) = buffers.as_mut().and_then(|b| b.next()) else {
        return Err(crate::string::overflow(*copied));
    };
    crate::string::copy(k, src_h, &send, dst_h, &recv, copied)?;
    Ok(pos)
}

fn overflow() -> (IpcErr, IpcErr) {
    (
        err(IpcPhase::Send, IpcErrorCode::Overflow),
        err(IpcPhase::Receive, IpcErrorCode::Overflow),
    )
}

/// Delivers `sender`'s message to a `receiver` that is blocked receiving and accepts it.
fn deliver(k: &mut Kernel, sender: &mut Tcb, receiver: &mut Tcb) -> Result<(), IpcErr> {
    match complete(k, sender, receiver) {
        Completion::PartnerGone => Err(err(IpcPhase::Send, IpcErrorCode::Aborted)),
        Completion::Done(receiver, Ok(())) => {
            schedule::wake(&mut k.run, receiver, IpcWake::Done);
            Ok(())
        }
        Completion::Done(receiver, Err((se, re))) => {
            report_error(receiver, re);
            schedule::wake(&mut k.run, receiver, IpcWake::Error(re));
            Err(se)
        }
    }
}

/// Outcome of a whole Ipc call for the caller: the from id (nil if none).
pub struct IpcResult {
    pub from: ThreadId,
}

fn fail(cur: &Tcb, code: IpcErr) -> IpcResult {
    report_error(cur, code);
    IpcResult {
        from: ThreadId::NIL,
    }
}

/// The Ipc system call (spec 5.7) for the current thread.
pub fn sys_ipc(k: &mut Kernel, to: ThreadId, from_spec: ThreadId, timeouts: Timeouts) -> IpcResult {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    match do_ipc(k, cur, to, from_spec, timeouts) {
        Ok(from) => IpcResult { from },
        Err(Phase::Send(code)) => fail(cur, code),
        Err(Phase::Receive(code)) => {
            // Keep what the sender wrote (if anything) but flag the error.
            report_error(cur, code);
            IpcResult { from: cur.ipc_from }
        }
    }
}

/// The common case, short: an untyped message (no typed items, no flags) to a thread that is
/// already waiting for us, followed by a receive with a non-zero timeout from that thread or
/// from anybody / any local thread (Call, ReplyWait, Lcall, LreplyWait) while nobody else is
/// queued for us. The partner is handed the
/// message and made ready; we block exactly as the general path would, so every other part of
/// the kernel (timeouts, cancellation, deletion, interrupts, tunnelling) sees the usual states.
/// Returns false, having changed nothing, when the case does not apply.
pub fn fast_call(
    k: &mut Kernel,
    to: ThreadId,
    from_spec: ThreadId,
    timeouts: Timeouts,
) -> Option<IpcResult> {
    let (dl, _) = fast_send(k, to, from_spec, timeouts)?;
    schedule::block_current(k, dl);
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    Some(fast_finish(k, unsafe { thread::current() }))
}

/// The send half of [`fast_call`] and its entry into the receive: when the case applies, the
/// message is delivered, the partner is ready and the caller is `RecvBlocked` (not yet out of
/// the ready queue); returns the receive deadline to block with. `None`, having changed
/// nothing, when the case does not apply. Also the guard chain of the fast path
/// (`fastpath.rs`), which blocks without keeping this call's frames. Also returns the partner.
#[inline(always)]
pub fn fast_send(
    k: &mut Kernel,
    to: ThreadId,
    from_spec: ThreadId,
    timeouts: Timeouts,
) -> Option<(u64, *mut Tcb)> {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    let open = from_spec.is_any() || from_spec.is_any_local();
    let rcv = timeouts.receive();
    if rcv == Time::ZERO
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
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let dest =
        (unsafe { thread::resolve(cur, to) }).filter(|t| t.id.number() >= thread::USER_BASE)?;
    if dest.halted || !accepts(dest, cur) {
        return None;
    }
    if open && (!cur.sendq.is_empty() || interrupt::pending_for(k, cur, ThreadId::ANY))
        || cur.sendq_propagated != 0
    {
        // Someone queued for us (or a propagated message that may appear to come from `dest`):
        // the general receive phase takes it.
        return None;
    }
    crate::profile::mark(crate::profile::Point::Resolved);
    // Send: the message, the from id, the partner ready.
    let u = tag.untyped() as usize;
    let d = dest.mrs();
    d[0] = tag.raw();
    copy_mrs(d, cur.mrs_ref(), u);
    dest.ipc_from = sender_id_for(dest, cur);
    if dest.recvq_on == cur.no {
        // The usual reply: the partner waits in a closed receive from us.
        unlink_receiver(cur, dest);
    }
    schedule::wake_handing_over(&mut k.run, cur, dest);
    crate::profile::mark(crate::profile::Point::Transferred);
    // Receive: wait for the answer.
    cur.recv_phase_done = false;
    cur.recv_after_send = ThreadId::NIL;
    if open {
        cur.state = State::RecvBlocked { from: from_spec };
    } else {
        cur.state = State::RecvBlocked { from: dest.id };
        link_receiver(dest, cur);
    }
    let dl = if rcv == Time::NEVER {
        u64::MAX
    } else {
        // A finite receive timeout (not zero: excluded above, so there is a deadline).
        deadline(rcv).unwrap_or(u64::MAX)
    };
    Some((dl, dest as *mut Tcb))
}

/// The end of a [`fast_call`] receive, once the caller runs again: a tunnelled page fault
/// to serve, the outcome into the ErrorCode TCR; the from id.
pub fn fast_finish(k: &mut Kernel, cur: &mut Tcb) -> IpcResult {
    crate::string::serve_tunnel(k, cur, IpcPhase::Receive);
    if let Err(e) = outcome(cur.wake, IpcPhase::Receive) {
        report_error(cur, e);
    }
    IpcResult { from: cur.ipc_from }
}

/// Which phase of an IPC failed, with its ErrorCode value.
pub enum Phase {
    Send(IpcErr),
    Receive(IpcErr),
}

/// Send phase then receive phase. A sender whose message is taken from the partner's send
/// queue passes straight into its receive phase (`enter_receive_after_send`), so a reply sent
/// with a zero timeout right away finds it waiting.
pub fn do_ipc(
    k: &mut Kernel,
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
        send_phase(k, cur, to, timeouts.send()).map_err(Phase::Send)?;
    }
    cur.recv_after_send = ThreadId::NIL;
    if cur.recv_phase_done {
        cur.recv_phase_done = false;
        return outcome(cur.wake, IpcPhase::Receive)
            .map(|()| cur.ipc_from)
            .map_err(Phase::Receive);
    }
    if from_spec.is_nil() {
        return Ok(ThreadId::NIL);
    }
    receive_phase(k, cur, from_spec, timeouts.receive()).map_err(Phase::Receive)
}

/// `s`'s send completed while it was blocked in a send queue. If it has a receive phase, it
/// goes into it right now (still blocked) instead of waking up first; else it wakes.
fn finish_queued_send(k: &mut Kernel, s: &mut Tcb) {
    let spec = s.recv_after_send;
    if spec.is_nil() || spec.is_global() && spec.number() < thread::SYSTEM_BASE {
        // No receive phase, or one from an interrupt: the thread runs it itself.
        return schedule::wake(&mut k.run, s, IpcWake::Done);
    }
    let resolved = if spec.is_any() || spec.is_any_local() {
        Some(spec)
    } else {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        (unsafe { thread::resolve(s, spec) })
            .filter(|t| t.id.number() >= thread::USER_BASE)
            .map(|t| t.id)
    };
    s.recv_phase_done = true;
    let Some(resolved) = resolved else {
        return schedule::wake(
            &mut k.run,
            s,
            IpcWake::Error(err(IpcPhase::Receive, IpcErrorCode::NotExist)),
        );
    };
    // A matching sender already queued to it: let the thread receive that one itself.
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    if (unsafe { queued_sender(s, resolved) }).is_some() {
        s.recv_phase_done = false;
        return schedule::wake(&mut k.run, s, IpcWake::Done);
    }
    let Some(dl) = deadline(s.recv_timeout) else {
        return schedule::wake(
            &mut k.run,
            s,
            IpcWake::Error(err(IpcPhase::Receive, IpcErrorCode::Timeout)),
        );
    };
    schedule::timer_remove(s);
    enter_receive(s, resolved, None);
    s.wake = IpcWake::None;
    if dl != u64::MAX {
        schedule::block_other(&mut k.timers, s, dl);
    }
}

/// Send phase: returns the ErrorCode value on failure.
pub fn send_phase(
    k: &mut Kernel,
    cur: &mut Tcb,
    to: ThreadId,
    timeout: Time,
) -> Result<(), IpcErr> {
    if to.is_global() && to.number() < thread::SYSTEM_BASE {
        return interrupt::acknowledge(k, cur, to)
            .map_err(|_| err(IpcPhase::Send, IpcErrorCode::NotExist));
    }
    let Some(dest) =
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        (unsafe { thread::resolve(cur, to) }).filter(|t| t.is_activated() && t.id.number() >= thread::USER_BASE)
    else {
        return Err(err(IpcPhase::Send, IpcErrorCode::NotExist));
    };
    setup_propagation(cur, dest);
    crate::profile::mark(crate::profile::Point::Resolved);
    if accepts(dest, cur) {
        let r = deliver(k, cur, dest);
        crate::profile::mark(crate::profile::Point::Transferred);
        return r;
    }
    let Some(dl) = deadline(timeout) else {
        return Err(err(IpcPhase::Send, IpcErrorCode::Timeout));
    };
    // Block in dest's send queue.
    cur.state = State::SendBlocked { to: dest.handle() };
    sendq_push(dest, cur);
    schedule::block_current(k, dl);
    crate::string::serve_tunnel(k, cur, IpcPhase::Send);
    if cur.recv_phase_done {
        return Ok(());
    }
    outcome(cur.wake, IpcPhase::Send)
}

/// How a blocked phase ended, from what its waker wrote: the one decoding of `IpcWake`.
fn outcome(wake: IpcWake, phase: IpcPhase) -> Result<(), IpcErr> {
    match wake {
        IpcWake::Done => Ok(()),
        IpcWake::Error(e) => Err(e),
        IpcWake::None | IpcWake::Tunnel | IpcWake::XferExpired | IpcWake::TunnelFailed => {
            Err(err(phase, IpcErrorCode::Canceled))
        }
    }
}

/// Receive phase: returns the from id, or the ErrorCode value.
pub fn receive_phase(
    k: &mut Kernel,
    cur: &mut Tcb,
    from_spec: ThreadId,
    timeout: Time,
) -> Result<ThreadId, IpcErr> {
    let mut spec = from_spec;
    // The thread named by a closed receive (nothing below blocks before it is used).
    let mut partner = None;
    if !from_spec.is_any() && !from_spec.is_any_local() {
        if from_spec.is_global() && from_spec.number() < thread::SYSTEM_BASE {
            if let Some(r) = interrupt::try_receive(k, cur, from_spec) {
                return r;
            }
        } else {
            // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
            match (unsafe { thread::resolve(cur, from_spec) })
                .filter(|t| t.id.number() >= thread::USER_BASE)
            {
                Some(t) => {
                    spec = t.id;
                    partner = Some(t);
                }
                None => return Err(err(IpcPhase::Receive, IpcErrorCode::NotExist)),
            }
        }
    }
    // A queued sender?
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    if let Some(s) = unsafe { queued_sender(cur, spec) } {
        sendq_remove(cur, s);
        return match complete(k, s, cur) {
            Completion::PartnerGone => Err(err(IpcPhase::Receive, IpcErrorCode::Aborted)),
            Completion::Done(s, Ok(())) => {
                finish_queued_send(k, s);
                // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
                Ok((unsafe { thread::current() }).ipc_from)
            }
            Completion::Done(s, Err((se, re))) => {
                report_error(s, se);
                schedule::wake(&mut k.run, s, IpcWake::Error(se));
                Err(re)
            }
        };
    }
    if interrupt::pending_for(k, cur, spec) {
        return interrupt::deliver_pending(k, cur, spec);
    }
    let Some(dl) = deadline(timeout) else {
        return Err(err(IpcPhase::Receive, IpcErrorCode::Timeout));
    };
    match partner {
        Some(p) if !core::ptr::eq(&*p, &*cur) => {
            cur.state = State::RecvBlocked { from: spec };
            link_receiver(p, cur);
        }
        _ => enter_receive(cur, spec, None),
    }
    schedule::block_current(k, dl);
    crate::string::serve_tunnel(k, cur, IpcPhase::Receive);
    outcome(cur.wake, IpcPhase::Receive).map(|()| cur.ipc_from)
}

/// A member of a send queue, by number (queue members exist: deletion empties the queue of the
/// deleted thread and takes it out of the queue it is in).
#[inline(always)]
/// # Safety
/// The caller must not use the returned reference while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
unsafe fn queue_member(no: u32) -> &'static mut Tcb {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    unsafe { thread::linked(no) }
}

/// The send-queue links of the TCBs, by thread number.
struct SendLinks;

impl Links for SendLinks {
    fn link(&mut self, n: u32) -> &mut Link {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        &mut (unsafe { queue_member(n) }).sendq_link
    }
}

/// The closed-receiver-list links of the TCBs, by thread number.
struct RecvLinks;

impl Links for RecvLinks {
    fn link(&mut self, n: u32) -> &mut Link {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        &mut (unsafe { queue_member(n) }).recvq_link
    }
}

fn sendq_push(dest: &mut Tcb, s: &mut Tcb) {
    dest.sendq
        .push_back(s.no, &mut s.sendq_link, &mut SendLinks);
    if s.propagate_as.is_some() {
        dest.sendq_propagated += 1;
    }
}

fn sendq_remove(dest: &mut Tcb, s: &mut Tcb) {
    dest.sendq.remove(&s.sendq_link, &mut SendLinks);
    if s.propagate_as.is_some() {
        dest.sendq_propagated -= 1;
    }
}

/// The first sender queued to `r` that a receive from `spec` accepts. A closed receive from a
/// thread costs the same however many others are queued: that thread's state says whether it
/// sends to `r`. Only anylocalthread, and a closed receive while propagated messages are
/// queued (they appear to come from someone else), look through the queue.
#[inline(always)]
/// # Safety
/// The caller must not use the returned reference while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
unsafe fn queued_sender(r: &Tcb, spec: ThreadId) -> Option<&'static mut Tcb> {
    if r.sendq.is_empty() {
        return None;
    }
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    unsafe { queued_sender_in(r, spec) }
}

#[inline(never)]
/// # Safety
/// The caller must not use the returned reference while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
unsafe fn queued_sender_in(r: &Tcb, spec: ThreadId) -> Option<&'static mut Tcb> {
    if spec.is_any() {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        return Some(unsafe { queue_member(r.sendq.head) });
    }
    if !spec.is_any_local() && r.sendq_propagated == 0 {
        let me = r.handle();
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        return (unsafe { thread::lookup_global(spec) })
            .filter(|s| s.state == State::SendBlocked { to: me });
    }
    let mut n = r.sendq.head;
    while n != 0 {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let s = unsafe { queue_member(n) };
        if accepts_from(spec, r, s) {
            return Some(s);
        }
        n = s.sendq_link.next;
    }
    None
}

/// The reaction (decided by `kcore::state::react`) to an event, carried out: the one place
/// where an event from outside ends or disturbs a thread's IPC. Threads are named by handle
/// and reached through the entry borrow (`thread::Threads`), one at a time or as a pair.
fn apply(k: &mut Kernel, h: thread::Handle, r: Reaction) {
    match r {
        Reaction::Stay | Reaction::Unlink { .. } => {}
        Reaction::Wake { leave, outcome } => {
            if let Some(q) = leave {
                leave_send_queue(k, q, h);
            }
            let how = match outcome {
                Outcome::Done => IpcWake::Done,
                Outcome::Error(phase, code) => IpcWake::Error(err(phase, code)),
                Outcome::XferExpired => IpcWake::XferExpired,
            };
            let st: &mut State_ = k;
            if let Some(t) = st.threads.get_mut(h) {
                schedule::wake(&mut st.run, t, how);
            }
        }
        Reaction::AbortTransfer { copier: None } => abort_copier(k, h),
        Reaction::AbortTransfer { copier: Some(c) } => abort_copier(k, c),
    }
}

/// `t` leaves the send queue of `q` (if both exist). `q` may be `t` itself: a send to
/// oneself waits in one's own queue (until its timeout or an abort).
fn leave_send_queue(k: &mut Kernel, q: thread::Handle, t: thread::Handle) {
    if q == t {
        if let Some(t) = k.threads.get_mut(t) {
            // The queue and the link are two fields of the one TCB.
            t.sendq.remove(&t.sendq_link, &mut SendLinks);
            if t.propagate_as.is_some() {
                t.sendq_propagated -= 1;
            }
        }
    } else if let Some((q, t)) = k.threads.pair_mut(q, t) {
        sendq_remove(q, t);
    }
}

/// A blocked thread's timeout expired (the thread in timer slot `slot`, whose deadline the
/// tick has just cleared).
pub fn timeout(k: &mut Kernel, slot: u32) {
    let st: &mut State_ = k;
    let Some(t) = st.threads.slot_mut(slot) else {
        return;
    };
    let (r, _) = state::react(t.state, Event::Timeout);
    if let Reaction::Wake {
        leave: None,
        outcome,
    } = r
    {
        // The common case (a receive, or a transfer wait): no other thread is involved, so
        // no lookup by handle (`apply` would look the thread up again).
        let how = match outcome {
            Outcome::Done => IpcWake::Done,
            Outcome::Error(phase, code) => IpcWake::Error(err(phase, code)),
            Outcome::XferExpired => IpcWake::XferExpired,
        };
        return schedule::wake(&mut st.run, t, how);
    }
    let h = t.handle();
    apply(k, h, r);
}

/// Aborts a string transfer at its copier `c` (spec 5.2: code 7 for both parties): the copy
/// loop sees `xfer_abort` at its next step; a wait for a tunnelled fault or a nested fault IPC
/// of the copier ends now. Never called for the running thread's own nested IPC.
fn abort_copier(k: &mut Kernel, ch: thread::Handle) {
    let me = k.current().handle();
    let st: &mut State_ = k;
    let Some(c) = st.threads.get_mut(ch) else {
        return;
    };
    c.xfer_abort = true;
    if let State::XferWait { .. } = c.state {
        schedule::wake(
            &mut st.run,
            c,
            IpcWake::Error(err(IpcPhase::Send, IpcErrorCode::Aborted)),
        );
    } else if matches!(
        c.state,
        State::SendBlocked { .. } | State::RecvBlocked { .. }
    ) && ch != me
    {
        // The copier is in its own nested fault IPC: abort that.
        cancel_blocked(k, ch, true, true, IpcErrorCode::Aborted);
    }
}

/// Aborts a blocked IPC of `t` (ExchangeRegisters, deletion): the thread returns with `code`
/// for the phase it was in. Returns whether it was sending / receiving.
pub fn cancel(
    k: &mut Kernel,
    h: thread::Handle,
    abort_send: bool,
    abort_receive: bool,
    code: IpcErrorCode,
) -> (bool, bool) {
    let Some(t) = k.threads.get(h) else {
        return (false, false);
    };
    if let Some(partner) = t.xfer_partner
        && (abort_send || abort_receive)
    {
        // In a string transfer (running it, waiting for it, or in a nested fault IPC inside
        // it): abort it for both parties (code 7, spec 5.2).
        abort_copier(k, if t.xfer_copier { h } else { partner });
        let Some(t) = k.threads.get(h) else {
            return (false, false);
        };
        return match t.state {
            State::XferWait { .. } => (true, false),
            State::Transfer { .. } => (false, true),
            _ => cancel_blocked(k, h, abort_send, abort_receive, IpcErrorCode::Aborted),
        };
    }
    cancel_blocked(k, h, abort_send, abort_receive, code)
}

/// Cancels a thread's blocked IPC (send queue or receive wait) with `code` (canceled, 3, for
/// ExchangeRegisters; aborted, 7, inside a transfer).
pub fn cancel_blocked(
    k: &mut Kernel,
    h: thread::Handle,
    abort_send: bool,
    abort_receive: bool,
    code: IpcErrorCode,
) -> (bool, bool) {
    let Some(t) = k.threads.get(h) else {
        return (false, false);
    };
    if !matches!(
        t.state,
        State::SendBlocked { .. } | State::RecvBlocked { .. }
    ) {
        return (false, false);
    }
    let (r, reported) = state::react(
        t.state,
        Event::Abort {
            send: abort_send,
            receive: abort_receive,
        },
    );
    let r = match r {
        Reaction::Wake {
            leave,
            outcome: Outcome::Error(phase, _),
        } => Reaction::Wake {
            leave,
            outcome: Outcome::Error(phase, code),
        },
        other => other,
    };
    apply(k, h, r);
    reported
}

/// Ends every IPC that involves `gone` (being deleted): it leaves the send queue it is in;
/// its own senders get "non-existing partner"; the other party of its string transfer is
/// told (`kcore::state::react` decides each of these). Links to `gone` held elsewhere are
/// handles: they fail from now on.
///
/// `gone` by reference (its caller, `thread_control::delete`, holds it from its one lookup:
/// looking it up again by handle after each step cost 6 % of a deletion, decision 009); every
/// other thread is reached by handle.
pub fn unlink_deleted(k: &mut Kernel, gone: &mut Tcb) {
    let h = gone.handle();
    let (r, _) = state::react(gone.state, Event::Deleted);
    schedule::timer_drop(&mut k.timers, gone);
    let event = Event::PartnerDeleted {
        handle: h,
        id: gone.id,
    };
    if let Reaction::Unlink { leave, partner } = r {
        if let Some(q) = leave {
            leave_send_queue(k, q, h);
        }
        if let Some(other) = partner.or(gone.xfer_partner) {
            tell_transfer_partner(k, other, h, gone.xfer_copier, event);
        }
    }
    while !gone.sendq.is_empty() {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let s = unsafe { queue_member(gone.sendq.head) };
        sendq_remove(gone, s);
        let (r, _) = state::react(s.state, event);
        let sh = s.handle();
        apply(k, sh, r);
    }
    // Closed receives from `gone`: its list of waiting receivers (no scan of all threads).
    leave_receive_list(gone);
    while !gone.recvq.is_empty() {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let w = unsafe { queue_member(gone.recvq.head) };
        unlink_receiver(gone, w);
        let (r, _) = state::react(w.state, event);
        let wh = w.handle();
        apply(k, wh, r);
    }
}

/// Puts `t` into a receive from `from` (every way into `RecvBlocked` but an open one in the
/// fast path): a closed receive from a user thread joins that thread's list of waiting
/// receivers, so that deleting it ends their receives without a look at every thread.
/// `sender` is that thread if the caller has it at hand.
#[inline(always)]
pub fn enter_receive(t: &mut Tcb, from: ThreadId, sender: Option<&mut Tcb>) {
    t.state = State::RecvBlocked { from };
    if !from.is_global() || from.number() < thread::USER_BASE || from == t.id {
        // Open, from an interrupt, or from itself (a sleep): no list.
        return;
    }
    let sender = match sender {
        Some(s) => Some(s),
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        None => unsafe { thread::lookup_global(from) },
    };
    if let Some(s) = sender {
        link_receiver(s, t);
    }
}

/// `t` joins `s`'s list of waiting closed receivers (at the head).
#[inline(always)]
fn link_receiver(s: &mut Tcb, t: &mut Tcb) {
    if t.recvq_on != 0 {
        #[cfg(feature = "invariants")]
        crate::invariants::ready_off_lists(
            t,
            "entering a closed receive",
            core::panic::Location::caller(),
        );
        // Cannot happen since the loader's fix (docs/kernel-bugs.md: the root thread started
        // while on sigma0's list); kept as a guard: a second `push_front` onto the same list
        // would link `t` to itself. The invariants build reports it.
        leave_list_cold(t);
    }
    t.recvq_on = s.no;
    s.recvq.push_front(t.no, &mut t.recvq_link, &mut RecvLinks);
}

#[inline(never)]
#[cold]
fn leave_list_cold(t: &mut Tcb) {
    leave_receive_list(t);
}

/// `t` leaves `s`'s list (`s` is the thread `t.recvq_on` names).
#[inline(always)]
fn unlink_receiver(s: &mut Tcb, t: &mut Tcb) {
    s.recvq.remove(&t.recvq_link, &mut RecvLinks);
    t.recvq_on = 0;
}

/// Leaves the list of waiting receivers `enter_receive` put `t` in (waking, a transfer
/// starting, deletion, a redirected receive).
#[inline(always)]
pub fn leave_receive_list(t: &mut Tcb) {
    if t.recvq_on != 0 {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        unlink_receiver(unsafe { queue_member(t.recvq_on) }, t);
    }
}

/// `gone`, a party of `other`'s string transfer, is being deleted.
fn tell_transfer_partner(
    k: &mut Kernel,
    oh: thread::Handle,
    gone: thread::Handle,
    gone_copier: bool,
    event: Event,
) {
    let Some(other) = k.threads.get_mut(oh) else {
        return;
    };
    if other.xfer_partner != Some(gone) {
        return;
    }
    other.xfer_partner = None;
    if !gone_copier {
        // `other` runs the copy: it finds the handle of `gone` stale when its copy ends.
        return abort_copier(k, oh);
    }
    // `other` waits for the end of the copy, or serves a tunnelled fault
    // (`string::serve_tunnel` then finds its partner gone).
    other.tunnel_abandon = true;
    match other.state {
        State::Transfer { .. } => {
            let (r, _) = state::react(other.state, event);
            apply(k, oh, r);
        }
        State::SendBlocked { .. } | State::RecvBlocked { .. } if other.kernel_ipc_depth > 0 => {
            cancel_blocked(k, oh, true, true, IpcErrorCode::Aborted);
        }
        _ => {}
    }
}

/// Sends a kernel-generated message (page fault, exception) from `cur` to `handler` as a
/// Call with infinite timeouts, saving and restoring the thread's MR0..MR63, BR0 and
/// ErrorCode around it (spec 5.7.8). `build` fills the message; `reply` reads the answer
/// before the registers are restored. Returns the ErrorCode value if the IPC failed.
pub fn kernel_call(
    k: &mut Kernel,
    handler: ThreadId,
    build: impl FnOnce(&Tcb),
    reply: impl FnOnce(&Tcb),
) -> Result<(), IpcErr> {
    kernel_call_timeout(k, handler, Time::NEVER, build, reply)
}

/// `kernel_call` with a timeout for both phases.
pub fn kernel_call_timeout(
    k: &mut Kernel,
    handler: ThreadId,
    timeout: Time,
    build: impl FnOnce(&Tcb),
    reply: impl FnOnce(&Tcb),
) -> Result<(), IpcErr> {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    let mut saved = [0u64; 64];
    saved.copy_from_slice(cur.mrs_ref());
    let br0 = cur.utcb_word(utcb::br(0));
    let ec = cur.utcb_word(utcb::ERROR_CODE);
    cur.set_utcb_word(utcb::br(0), abi::fpage::Fpage::COMPLETE.raw());
    build(cur);
    cur.kernel_ipc_depth += 1;
    let r = match do_ipc(k, cur, handler, handler, Timeouts::new(timeout, timeout)) {
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
pub fn was_aborted(e: IpcErr) -> bool {
    matches!(
        e.code(),
        Some(IpcErrorCode::Canceled | IpcErrorCode::Aborted)
    )
}

/// First code of an activated thread: wait for the start-up message from the pager
/// (spec 6.1), then enter user mode.
pub extern "C" fn thread_startup(_: u64) -> ! {
    // First run: the thread that switched here handed on its entry borrow; it ends here.
    crate::kernel_state::continue_entry(|_| ());
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
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
