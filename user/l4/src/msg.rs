//! Messages and the IPC conveniences of libl4 (`L4_Msg_t`, `L4_Call`, `L4_ReplyWait`, ...).
//!
//! A message is MR0 (the tag: label, u untyped words, t typed words, flags) followed by
//! MR1..MRu untyped words and then t words of typed items (map, grant and string items),
//! spec 2.2–2.5. [`Msg`] builds one in ordinary memory; [`Msg::load`] copies it into the
//! MRs, and [`Msg::store`] copies a received one out. The IPC helpers then only pick the
//! `to`/`FromSpecifier`/timeout combination of libl4's derived forms (spec 5.7.1).
//!
//! Failures: an IPC whose returned tag has the e flag set failed; the reason is in the
//! ErrorCode TCR. The helpers return it as an [`IpcFailure`]; [`ipc_error`] decodes the TCR
//! directly.

use abi::items::{CONTINUATION, GrantItem, MapItem, simple_string};
use abi::{Acceptor, IpcError, MsgTag, ThreadId, Time, Timeouts};

use crate::syscall::{self, IpcResult};
use crate::utcb;

/// A failed IPC: the tag returned (e flag set) and the ErrorCode TCR at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcFailure {
    /// The returned MR0 (e flag set; the receiver side keeps the sender's u/t/label).
    pub tag: MsgTag,
    /// The raw ErrorCode word (spec 5.7.6).
    pub error_code: u64,
}

impl IpcFailure {
    /// The decoded error (phase, code, offset); `None` if the kernel left ErrorCode 0.
    pub fn error(&self) -> Option<IpcError> {
        IpcError::decode(self.error_code)
    }
}

/// Decodes the ErrorCode TCR as an IPC error (valid right after a failed IPC).
pub fn ipc_error() -> Option<IpcError> {
    IpcError::decode(utcb::error_code())
}

/// Sets the acceptor BR0 (`L4_Accept`), e.g. `accept(Acceptor::map_grant(Fpage::COMPLETE))`.
pub fn accept(acceptor: Acceptor) {
    utcb::accept(acceptor)
}

/// Turns an [`IpcResult`] into `Ok` or an [`IpcFailure`] by the tag's e flag.
pub fn check(r: IpcResult) -> Result<IpcResult, IpcFailure> {
    if r.tag.error() {
        Err(IpcFailure {
            tag: r.tag,
            error_code: utcb::error_code(),
        })
    } else {
        Ok(r)
    }
}

/// `Ipc(to, FromSpecifier, Timeouts)` with the result checked.
pub fn ipc(to: ThreadId, from: ThreadId, timeouts: Timeouts) -> Result<IpcResult, IpcFailure> {
    check(syscall::ipc(to, from, timeouts))
}

/// `L4_Call`: send to `to`, then receive from `to`; never time out. Returns the reply tag.
pub fn call(to: ThreadId) -> Result<MsgTag, IpcFailure> {
    call_timeouts(to, Time::NEVER, Time::NEVER)
}

/// `L4_Call_Timeouts`.
pub fn call_timeouts(to: ThreadId, snd: Time, rcv: Time) -> Result<MsgTag, IpcFailure> {
    ipc(to, to, Timeouts::new(snd, rcv)).map(|r| r.tag)
}

/// `L4_Send`: send to `to`, waiting as long as it takes.
pub fn send(to: ThreadId) -> Result<(), IpcFailure> {
    send_timeout(to, Time::NEVER)
}

/// `L4_Send_Timeout`.
pub fn send_timeout(to: ThreadId, snd: Time) -> Result<(), IpcFailure> {
    ipc(to, ThreadId::NIL, Timeouts::new(snd, Time::NEVER)).map(|_| ())
}

/// `L4_Reply`: send to `to` only if it is already waiting (send timeout zero).
pub fn reply(to: ThreadId) -> Result<(), IpcFailure> {
    send_timeout(to, Time::ZERO)
}

/// `L4_Receive`: closed receive from `from` (a thread id, or `ThreadId::ANY_LOCAL`).
pub fn receive(from: ThreadId) -> Result<MsgTag, IpcFailure> {
    receive_timeout(from, Time::NEVER)
}

/// `L4_Receive_Timeout`.
pub fn receive_timeout(from: ThreadId, rcv: Time) -> Result<MsgTag, IpcFailure> {
    ipc(ThreadId::NIL, from, Timeouts::new(Time::NEVER, rcv)).map(|r| r.tag)
}

/// `L4_Wait`: open receive from any thread. Returns (sender, tag).
pub fn wait() -> Result<(ThreadId, MsgTag), IpcFailure> {
    wait_timeout(Time::NEVER)
}

/// `L4_Wait_Timeout`.
pub fn wait_timeout(rcv: Time) -> Result<(ThreadId, MsgTag), IpcFailure> {
    ipc(
        ThreadId::NIL,
        ThreadId::ANY,
        Timeouts::new(Time::NEVER, rcv),
    )
    .map(|r| (r.from, r.tag))
}

/// `L4_ReplyWait`: reply to `to` (send timeout zero), then wait for anybody.
pub fn reply_wait(to: ThreadId) -> Result<(ThreadId, MsgTag), IpcFailure> {
    reply_wait_timeout(to, Time::NEVER)
}

/// `L4_ReplyWait_Timeout`.
pub fn reply_wait_timeout(to: ThreadId, rcv: Time) -> Result<(ThreadId, MsgTag), IpcFailure> {
    ipc(to, ThreadId::ANY, Timeouts::new(Time::ZERO, rcv)).map(|r| (r.from, r.tag))
}

/// `L4_Sleep`: a receive from oneself that can only time out (spec 5.7.3).
pub fn sleep(t: Time) {
    let _ = syscall::ipc(
        ThreadId::NIL,
        utcb::my_global_id(),
        Timeouts::new(Time::NEVER, t),
    );
}

/// `L4_Lcall`: [`call`] through Lipc (partner in the same space, by local id).
pub fn lcall(to: ThreadId) -> Result<MsgTag, IpcFailure> {
    check(syscall::lipc(to, to, Timeouts::NEVER)).map(|r| r.tag)
}

/// `L4_LreplyWait`: [`reply_wait`] through Lipc, receiving from any local thread.
pub fn lreply_wait(to: ThreadId) -> Result<(ThreadId, MsgTag), IpcFailure> {
    check(syscall::lipc(
        to,
        ThreadId::ANY_LOCAL,
        Timeouts::new(Time::ZERO, Time::NEVER),
    ))
    .map(|r| (r.from, r.tag))
}

/// A message under construction or as received: tag fields, MR1..MRu untyped words, then
/// the typed-item words (spec 2.2–2.5). At most 63 words after the tag.
#[derive(Clone, Debug)]
pub struct Msg {
    /// MR0..MR63; `mr[0]` is rebuilt from the fields by [`Msg::tag`].
    mr: [u64; utcb::MR_COUNT],
    label: u64,
    flags: u64,
    u: usize,
    t: usize,
    /// Index in `mr` of the first word of the last typed item (for its C bit).
    last_item: Option<usize>,
}

impl Msg {
    /// Empty message with `label` (`L4_MsgClear` + `L4_Set_MsgLabel`).
    pub const fn new(label: u64) -> Self {
        Self {
            mr: [0; utcb::MR_COUNT],
            label,
            flags: 0,
            u: 0,
            t: 0,
            last_item: None,
        }
    }

    /// The tag describing this message.
    pub fn tag(&self) -> MsgTag {
        MsgTag::new(self.label, self.u as u64, self.t as u64).with_flags(self.flags)
    }

    /// The label.
    pub fn label(&self) -> u64 {
        self.label
    }

    /// Replaces the label.
    pub fn set_label(&mut self, label: u64) -> &mut Self {
        self.label = label;
        self
    }

    /// Sets the p flag: the message will be propagated (set the VirtualSender TCR too).
    pub fn set_propagate(&mut self, on: bool) -> &mut Self {
        self.flags = if on { self.flags | 1 } else { self.flags & !1 };
        self
    }

    /// The untyped words MR1..MRu.
    pub fn untyped(&self) -> &[u64] {
        &self.mr[1..=self.u]
    }

    /// The typed-item words.
    pub fn typed(&self) -> &[u64] {
        &self.mr[self.u + 1..=self.u + self.t]
    }

    /// Untyped word `i` (MR`i+1`), 0 if absent.
    pub fn word(&self, i: usize) -> u64 {
        if i < self.u { self.mr[i + 1] } else { 0 }
    }

    /// Replaces untyped word `i` (must exist).
    pub fn put_word(&mut self, i: usize, w: u64) -> &mut Self {
        assert!(i < self.u, "no untyped word {i}");
        self.mr[i + 1] = w;
        self
    }

    fn room(&self, words: usize) {
        assert!(
            self.u + self.t + words < utcb::MR_COUNT,
            "message longer than 63 words"
        );
    }

    /// Appends an untyped word (typed items move up by one, like `L4_MsgAppendWord`).
    pub fn append_word(&mut self, w: u64) -> &mut Self {
        self.room(1);
        let first_typed = self.u + 1;
        self.mr
            .copy_within(first_typed..first_typed + self.t, first_typed + 1);
        self.mr[first_typed] = w;
        self.u += 1;
        if let Some(i) = self.last_item.as_mut() {
            *i += 1;
        }
        self
    }

    /// Appends raw typed-item words (one complete item), maintaining the C bit of the
    /// previous item.
    pub fn append_item(&mut self, words: &[u64]) -> &mut Self {
        assert!(!words.is_empty());
        self.room(words.len());
        if let Some(prev) = self.last_item {
            self.mr[prev] |= CONTINUATION;
        }
        let at = self.u + self.t + 1;
        self.mr[at..at + words.len()].copy_from_slice(words);
        self.last_item = Some(at);
        self.t += words.len();
        self
    }

    /// Appends a map item (`L4_MsgAppendMapItem`).
    pub fn append_map(&mut self, item: MapItem) -> &mut Self {
        self.append_item(&item.to_words(false))
    }

    /// Appends a grant item (`L4_MsgAppendGrantItem`).
    pub fn append_grant(&mut self, item: GrantItem) -> &mut Self {
        self.append_item(&item.to_words(false))
    }

    /// Appends a simple string item: `len` bytes at `addr` (`L4_MsgAppendSimpleStringItem`).
    pub fn append_string(&mut self, len: u64, addr: u64) -> &mut Self {
        self.append_item(&simple_string(len, addr))
    }

    /// Copies the message into MR0..MR(u+t) (`L4_MsgLoad`).
    pub fn load(&self) {
        utcb::set_mr(0, self.tag().raw());
        utcb::set_mrs(1, &self.mr[1..=self.u + self.t]);
    }

    /// Copies a message with tag `tag` out of the MRs (`L4_MsgStore`). u + t is cut to 63.
    pub fn store(tag: MsgTag) -> Self {
        let u = tag.untyped() as usize;
        let t = (tag.typed() as usize).min(utcb::MR_COUNT - 1 - u);
        let mut m = Self::new(tag.label());
        m.flags = tag.flags();
        m.u = u;
        m.t = t;
        utcb::mrs(1, &mut m.mr[1..=u + t]);
        m
    }

    /// The message currently in the MRs (tag from MR0).
    pub fn received() -> Self {
        Self::store(MsgTag::from_raw(utcb::mr(0)))
    }
}
