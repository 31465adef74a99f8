//! String items (spec 2.5, 5.7.4, 5.7.6): copying a message's strings from the sender's address
//! space into the receiver's buffers.
//!
//! Both sides are reached through their page tables and the direct map, so the copy works
//! whichever of the two threads runs it. A page missing (or not writable for the receiver) on
//! the running thread's side is resolved by a nested page-fault IPC of that thread to its pager
//! (IP = the sender's real IP, or ~0 for the receiver, whose fault is reported as a write). A
//! page missing on the partner's side is "tunnelled": the partner is woken to send the fault
//! message to its own pager while the running thread waits (`State::XferWait`), then the copy
//! continues. Page faults are bounded by the transfer timeout: the smaller of the sender's
//! send-side and the receiver's receive-side XferTimeouts (spec 5.7.6 decides who gets 5/6).
//!
//! The copy may block, and either party other than the running one may be deleted or aborted
//! meanwhile: the parties are named by handles and looked up afresh after every wait, and a
//! stale handle or the copier's `xfer_abort` ends the copy with "aborted" (7).
//!
//! May touch: both UTCBs (items, buffers, ErrorCode), the thread states of the two partners.

use abi::error::{IpcErrorCode, IpcPhase};
use abi::items::{TypedItem, decode_typed};
use abi::msgtag::{MsgTag, labels};
use abi::thread_id::ThreadId;
use abi::time::Time;
use abi::utcb;

use crate::arch::paging::USER_END;
use crate::ipc::IpcErr;
use crate::kernel_state::Kernel;
use crate::mm::phys::user_ram;
use crate::schedule;
use crate::thread::{self, IpcWake, State, Tcb};

/// Segments of one logical string (a chain of compound string items): at most 32 pieces (more
/// make the transfer a message overflow), since it lives on the kernel stack.
pub struct Segments {
    seg: [(u64, u64); 32],
    n: usize,
}

impl Segments {
    const fn new() -> Self {
        Segments {
            seg: [(0, 0); 32],
            n: 0,
        }
    }
    fn total(&self) -> u64 {
        self.seg[..self.n].iter().map(|s| s.1).sum()
    }
}

/// Reads one logical string starting at `words[*pos]`; `None` if the words are not a string.
/// Also returns the C bit of its FIRST item (another string follows): libl4 sets C only on the
/// first item of a compound string and Pistachio reads it there; the C bits of the later items
/// are ignored (spec 2.5; issue 14, docs/kernel-bugs.md).
pub fn logical_string(words: &[u64], pos: &mut usize) -> Option<(Segments, bool)> {
    let mut s = Segments::new();
    let mut more: Option<bool> = None;
    loop {
        let (TypedItem::String { header, substrings }, n) =
            decode_typed(words.get(*pos..)?).ok()?
        else {
            return None;
        };
        for &a in substrings {
            if s.n == s.seg.len() {
                return None;
            }
            s.seg[s.n] = (a, header.length());
            s.n += 1;
        }
        *pos += n;
        let more = *more.get_or_insert(header.more());
        if !header.compound() {
            return Some((s, more));
        }
    }
}

/// Receive buffers of the receiver: BR1..BR32 (spec 2.6), with a cursor.
pub struct Buffers {
    words: [u64; 32],
    pos: usize,
    more: bool,
}

impl Buffers {
    pub fn of(dst: &Tcb) -> Option<Self> {
        if dst.utcb_word(utcb::br(0)) & 1 == 0 {
            return None;
        }
        let mut words = [0u64; 32];
        for (i, w) in words.iter_mut().enumerate() {
            *w = dst.utcb_word(utcb::br(i + 1));
        }
        Some(Buffers {
            words,
            pos: 0,
            more: true,
        })
    }

    /// The next logical receive string, if any is left (buffers are chained by their C bit;
    /// running past BR32 is an overflow).
    pub fn next(&mut self) -> Option<Segments> {
        if !self.more || self.pos >= self.words.len() {
            return None;
        }
        let (s, more) = logical_string(&self.words, &mut self.pos)?;
        self.more = more;
        Some(s)
    }
}

/// Error codes for (sender, receiver).
pub type Codes = (IpcErr, IpcErr);

fn code(phase: IpcPhase, c: IpcErrorCode, offset: u64) -> IpcErr {
    IpcErr::with_offset(phase, c, offset)
}

pub fn overflow(offset: u64) -> Codes {
    (
        code(IpcPhase::Send, IpcErrorCode::Overflow, offset),
        code(IpcPhase::Receive, IpcErrorCode::Overflow, offset),
    )
}

pub fn aborted(offset: u64) -> Codes {
    (
        code(IpcPhase::Send, IpcErrorCode::Aborted, offset),
        code(IpcPhase::Receive, IpcErrorCode::Aborted, offset),
    )
}

/// Transfer timeout expiry: 5 for the party whose timeout was the effective one (ties: the
/// sender), 6 for the other (spec 5.7.6).
fn xfer_timeout(src: &Tcb, dst: &Tcb, offset: u64) -> Codes {
    let s = period(Time((src.utcb_word(utcb::XFER_TIMEOUTS) >> 16) as u16));
    let r = period(Time(dst.utcb_word(utcb::XFER_TIMEOUTS) as u16));
    if r < s {
        (
            code(IpcPhase::Send, IpcErrorCode::XferTimeoutPartner, offset),
            code(IpcPhase::Receive, IpcErrorCode::XferTimeoutCurrent, offset),
        )
    } else {
        (
            code(IpcPhase::Send, IpcErrorCode::XferTimeoutCurrent, offset),
            code(IpcPhase::Receive, IpcErrorCode::XferTimeoutPartner, offset),
        )
    }
}

/// A timeout as µs (never = MAX, zero = 0).
fn period(t: Time) -> u64 {
    match t.decode() {
        abi::time::TimeSpec::Never => u64::MAX,
        abi::time::TimeSpec::Zero => 0,
        abi::time::TimeSpec::Period(us) => us,
        abi::time::TimeSpec::Point { .. } => t
            .decode()
            .deadline(crate::interrupt::now_us())
            .unwrap_or(u64::MAX)
            .saturating_sub(crate::interrupt::now_us()),
    }
}

/// The effective transfer timeout of a transfer from `src` to `dst`, as a Time.
fn effective_timeout(src: &Tcb, dst: &Tcb) -> (u64, Time) {
    let s = Time((src.utcb_word(utcb::XFER_TIMEOUTS) >> 16) as u16);
    let r = Time(dst.utcb_word(utcb::XFER_TIMEOUTS) as u16);
    if period(r) < period(s) {
        (period(r), r)
    } else {
        (period(s), s)
    }
}

/// Physical address of `va` in `t`'s space if mapped user-accessible (and writable if `write`).
fn translate(t: &Tcb, va: u64, write: bool) -> Option<u64> {
    if va >= USER_END {
        return None;
    }
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    let (pa, _, rights) = (unsafe { t.space() }).lookup(va)?;
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    if (unsafe { t.space() }).is_kip_or_utcb(va) {
        return None;
    }
    (!write || rights.raw() & 2 != 0).then_some(pa)
}

/// Outcome of resolving one fault.
pub enum Resolve {
    Done,
    Timeout,
    Aborted,
    Failed,
}

/// Copies one logical send string into one logical receive string. `copied` counts the bytes
/// of the whole message so far (the error offset). The running thread is one of the two
/// parties; both are named by handles and looked up afresh after every wait for a page fault,
/// since the other may be deleted meanwhile (the copy is then aborted).
pub fn copy(
    k: &mut Kernel,
    src_h: thread::Handle,
    s: &Segments,
    dst_h: thread::Handle,
    d: &Segments,
    copied: &mut u64,
) -> Result<(), Codes> {
    let cur_is_src = k.current().handle() == src_h;
    let (mut si, mut soff, mut di, mut doff) = (0usize, 0u64, 0usize, 0u64);
    let total = s.total();
    let mut done = 0u64;
    while done < total {
        if k.current().xfer_abort {
            return Err(aborted(*copied));
        }
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let (Some(src), Some(dst)) = (
            (unsafe { thread::get(src_h) }),
            (unsafe { thread::get(dst_h) }),
        ) else {
            return Err(aborted(*copied));
        };
        while si < s.n && soff >= s.seg[si].1 {
            si += 1;
            soff = 0;
        }
        while di < d.n && doff >= d.seg[di].1 {
            di += 1;
            doff = 0;
        }
        if si >= s.n {
            break;
        }
        if di >= d.n {
            return Err(overflow(*copied));
        }
        let sa = s.seg[si].0.wrapping_add(soff);
        let da = d.seg[di].0.wrapping_add(doff);
        let n = (s.seg[si].1 - soff)
            .min(d.seg[di].1 - doff)
            .min(4096 - (sa & 0xFFF))
            .min(4096 - (da & 0xFFF));
        let sp = translate(src, sa, false);
        let dp = translate(dst, da, true);
        match (sp, dp) {
            (Some(sp), Some(dp)) => {
                // Device memory, holes, memory beyond the direct map and kernel memory are
                // never touched: the message overflows (docs/decisions/003-open-points.md).
                let (Some(from), Some(to)) = (user_ram(sp, n), user_ram(dp, n)) else {
                    return Err(overflow(*copied));
                };
                // SAFETY: `user_ram` vouches that both ranges lie within one page each of
                // usable RAM outside the kernel's own memory, reached through the direct map.
                unsafe { core::ptr::copy(from as *const u8, to, n as usize) };
                soff += n;
                doff += n;
                done += n;
                *copied += n;
            }
            (None, _) => {
                let timeout = effective_timeout(src, dst);
                let r = if cur_is_src {
                    fault_self(k, src, timeout, sa, false)
                } else {
                    tunnel(k, dst, src, timeout, sa, false)
                };
                check(k, r, src_h, dst_h, *copied)?;
            }
            (_, None) => {
                let timeout = effective_timeout(src, dst);
                let r = if cur_is_src {
                    tunnel(k, src, dst, timeout, da, true)
                } else {
                    fault_self(k, dst, timeout, da, true)
                };
                check(k, r, src_h, dst_h, *copied)?;
            }
        }
    }
    Ok(())
}

fn check(
    k: &Kernel,
    r: Resolve,
    src: thread::Handle,
    dst: thread::Handle,
    offset: u64,
) -> Result<(), Codes> {
    if k.current().xfer_abort {
        return Err(aborted(offset));
    }
    match r {
        Resolve::Done => Ok(()),
        Resolve::Timeout => match (k.threads.get(src), k.threads.get(dst)) {
            (Some(src), Some(dst)) => Err(xfer_timeout(src, dst, offset)),
            _ => Err(aborted(offset)),
        },
        Resolve::Aborted => Err(aborted(offset)),
        Resolve::Failed => Err(aborted(offset)),
    }
}

/// The running thread `me` faulted at `va` in its own space during the copy: page-fault IPC to
/// its pager, bounded by the transfer timeout.
fn fault_self(
    k: &mut Kernel,
    me: &mut Tcb,
    timeout: (u64, Time),
    va: u64,
    receiver_side: bool,
) -> Resolve {
    if timeout.0 == 0 {
        return Resolve::Timeout;
    }
    pagefault_ipc(k, me, va, receiver_side, timeout.1)
}

/// Page-fault IPC of `me` (which must be running) for a fault at `va` during a string copy.
pub fn pagefault_ipc(
    k: &mut Kernel,
    me: &mut Tcb,
    va: u64,
    receiver_side: bool,
    timeout: Time,
) -> Resolve {
    let pager = ThreadId::from_raw(me.utcb_word(utcb::PAGER));
    if pager.is_nil() {
        return Resolve::Failed;
    }
    let ip = if receiver_side {
        u64::MAX
    } else {
        me.frame().rip
    };
    let rwx = if receiver_side { 2 } else { 4 };
    let r = crate::ipc::kernel_call_timeout(
        k,
        pager,
        timeout,
        |t| {
            t.set_mr(0, MsgTag::new(labels::PAGE_FAULT | rwx, 2, 0).raw());
            t.set_mr(1, va);
            t.set_mr(2, ip);
        },
        |_| {},
    );
    match r {
        Ok(()) => Resolve::Done,
        Err(e) if e.code() == Some(IpcErrorCode::Timeout) => Resolve::Timeout,
        Err(c) if crate::ipc::was_aborted(c) => Resolve::Aborted,
        Err(_) => Resolve::Failed,
    }
}

/// The partner's page at `va` is missing: wake the partner to send the fault message to its own
/// pager (tunnelling) and wait until it is resolved. The partner is named by its handle across
/// the wait: it may be deleted meanwhile (the copy is then aborted).
fn tunnel(
    k: &mut Kernel,
    me: &mut Tcb,
    partner: &mut Tcb,
    timeout: (u64, Time),
    va: u64,
    receiver_side: bool,
) -> Resolve {
    let us = timeout.0;
    if us == 0 {
        return Resolve::Timeout;
    }
    if !matches!(partner.state, State::Transfer { with, .. } if with == me.handle()) {
        // The partner no longer waits for this transfer (it left it: see `ipc::complete_typed`);
        // waking it would end whatever it does now (e.g. leave it in a send queue while ready).
        return Resolve::Aborted;
    }
    let deadline = if us == u64::MAX {
        u64::MAX
    } else {
        crate::interrupt::now_us().saturating_add(us)
    };
    let partner_handle = partner.handle();
    partner.tunnel_addr = va;
    partner.tunnel_receiver_side = receiver_side;
    partner.tunnel_abandon = false;
    schedule::wake(&mut k.run, partner, IpcWake::Tunnel);
    me.state = State::XferWait {
        with: partner_handle,
    };
    schedule::block_current(k, deadline);
    match me.wake {
        IpcWake::Done => Resolve::Done,
        IpcWake::XferExpired => {
            abandon(k, me, partner_handle);
            Resolve::Timeout
        }
        IpcWake::Error(c) if crate::ipc::was_aborted(c) => {
            abandon(k, me, partner_handle);
            Resolve::Aborted
        }
        _ => Resolve::Failed,
    }
}

/// We stop waiting for the partner's tunnelled fault (timeout or abort): make it give up its
/// fault IPC (or not start one) and wait until it has checked back in (or is deleted).
fn abandon(k: &mut Kernel, me: &mut Tcb, partner: thread::Handle) {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let Some(partner) = (unsafe { thread::get(partner) }) else {
        return;
    };
    partner.tunnel_abandon = true;
    if !matches!(partner.state, State::Transfer { .. }) {
        let ph = partner.handle();
        crate::ipc::cancel_blocked(k, ph, true, true, IpcErrorCode::Aborted);
        me.state = State::XferWait { with: ph };
        schedule::block_current(k, u64::MAX);
    }
}

/// Run by a partner woken with `IpcWake::Tunnel`: sends the fault message for its own space,
/// reports to the waiting thread, and goes back to waiting for the end of the transfer. If the
/// thread running the copy is deleted meanwhile, the IPC of `me` ends with "aborted" in
/// `phase`.
#[inline(always)]
pub fn serve_tunnel(k: &mut Kernel, me: &mut Tcb, phase: IpcPhase) {
    if me.wake == IpcWake::Tunnel {
        serve_tunnel_loop(k, me, phase);
    }
}

#[inline(never)]
fn serve_tunnel_loop(k: &mut Kernel, me: &mut Tcb, phase: IpcPhase) {
    while me.wake == IpcWake::Tunnel {
        let r = if me.tunnel_abandon {
            Resolve::Failed
        } else {
            pagefault_ipc(k, me, me.tunnel_addr, me.tunnel_receiver_side, Time::NEVER)
        };
        me.tunnel_abandon = false;
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let Some(w) = me.xfer_partner.and_then(|h| unsafe { thread::get(h) }) else {
            me.state = State::Ready;
            me.wake = IpcWake::Error(IpcErr::new(phase, IpcErrorCode::Aborted));
            return;
        };
        let copier = w.handle();
        if let State::XferWait { .. } = w.state {
            let how = match r {
                Resolve::Done => IpcWake::Done,
                Resolve::Aborted => IpcWake::Error(aborted(0).0),
                _ => IpcWake::TunnelFailed,
            };
            schedule::wake(&mut k.run, w, how);
        }
        me.state = State::Transfer {
            with: copier,
            sender: me.xfer_sender,
        };
        schedule::block_current(k, u64::MAX);
    }
}
