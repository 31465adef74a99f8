//! What a thread is doing, as one enum carrying the data of each state, and the one function
//! ([`react`]) that says what an event does to a thread in each state.
//!
//! The kernel keeps a [`ThreadState`] in every TCB and changes it only through its IPC and
//! scheduling code; every asynchronous event that ends or disturbs a blocked IPC (its
//! timeout, an ExchangeRegisters abort, the deletion of the thread, the deletion of the thread
//! it deals with, the delivery of a message) is decided here, in one place, and the kernel
//! applies the [`Reaction`] (leave a send queue, wake with an outcome, abort a transfer).
//! Every state × event pair has a unit test below.
//!
//! Links between threads are [`Handle`]s (thread number plus the generation of the TCB), never
//! pointers: a handle to a deleted thread fails the kernel's lookup.

use abi::error::{IpcErrorCode, IpcPhase};
use abi::thread_id::ThreadId;

/// A thread named by the kernel: its number and the generation of the TCB that bore it when
/// the name was taken. A TCB gets a fresh generation when it is created, so a handle never
/// names a later thread with the same number (or the same user-visible id).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Handle {
    /// Thread number (index of the thread table).
    pub no: u32,
    /// Generation of the TCB.
    pub generation: u32,
}

/// What a thread is doing. `repr(u8)`: the tag is the first byte, as the kernel's assembly
/// fast path reads and writes it (`kernel/src/fastpath.rs`, checked there at compile time).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum ThreadState {
    /// Created, not yet activated.
    Inactive,
    /// Runnable (in its ready queue unless halted) or running.
    Ready,
    /// In the send queue of `to`, waiting for it to receive (timeout armed if finite).
    SendBlocked {
        /// The receiver.
        to: Handle,
    },
    /// Waiting for a message from `from` (a global id, anythread, anylocalthread, or an
    /// interrupt's id); timeout armed if finite.
    RecvBlocked {
        /// The FromSpecifier.
        from: ThreadId,
    },
    /// `with` runs the string copy of a message this thread sends (`sender`) or receives, and
    /// this thread waits for it to end. No timer: the IPC timeouts stop applying when the
    /// transfer starts; the transfer timeouts bound the copier's waits.
    Transfer {
        /// The copier.
        with: Handle,
        /// Whether this thread is the message's sender.
        sender: bool,
    },
    /// Runs a string copy and waits for `with` to resolve a page fault of its own space
    /// (tunnelled); transfer timeout armed if finite.
    XferWait {
        /// The other party of the transfer.
        with: Handle,
    },
    /// Deleted.
    Dead,
}

/// Something that happens to a thread from outside.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// Its timeout expired.
    Timeout,
    /// ExchangeRegisters: abort its send phase and/or its receive phase.
    Abort {
        /// Abort a send phase.
        send: bool,
        /// Abort a receive phase.
        receive: bool,
    },
    /// The thread itself is being deleted.
    Deleted,
    /// Another thread (named by `handle`, with user-visible `id`) is being deleted.
    PartnerDeleted {
        /// Its handle.
        handle: Handle,
        /// Its global id.
        id: ThreadId,
    },
    /// A message was delivered to it (or, send-blocked, its message was taken).
    Delivered,
}

/// How a woken thread's IPC ends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// The message went through.
    Done,
    /// An IPC error for the ErrorCode TCR.
    Error(IpcPhase, IpcErrorCode),
    /// The transfer timeout of a tunnelled fault expired (the copier decides the codes).
    XferExpired,
}

/// What the kernel must do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reaction {
    /// Nothing.
    Stay,
    /// Leave the send queue of `leave` (if any), cancel the timer, become ready with `outcome`.
    Wake {
        /// Whose send queue to leave.
        leave: Option<Handle>,
        /// The outcome of the IPC.
        outcome: Outcome,
    },
    /// The thread takes part in a string transfer: abort the transfer at its copier (the
    /// thread itself if `copier` is `None`), which ends it for both with "aborted" (7).
    AbortTransfer {
        /// The copier, if it is the other party.
        copier: Option<Handle>,
    },
    /// The thread is deleted: leave the send queue of `leave` (if any) and tell `partner` (the
    /// other party of its transfer, if any) that it is gone.
    Unlink {
        /// Whose send queue to leave.
        leave: Option<Handle>,
        /// The other party of a transfer.
        partner: Option<Handle>,
    },
}

/// What `event` does to a thread in `state`. `reported` (for ExchangeRegisters' output
/// control) says whether the thread was sending / receiving.
pub fn react(state: ThreadState, event: Event) -> (Reaction, (bool, bool)) {
    use IpcErrorCode::*;
    use IpcPhase::{Receive, Send};
    use ThreadState::*;
    let wake = |leave, phase, code| Reaction::Wake {
        leave,
        outcome: Outcome::Error(phase, code),
    };
    let r = match (state, event) {
        // Timeouts: only a waiting IPC has one; a transfer has started, its parties have none.
        (SendBlocked { to }, Event::Timeout) => wake(Some(to), Send, Timeout),
        (RecvBlocked { .. }, Event::Timeout) => wake(None, Receive, Timeout),
        (XferWait { .. }, Event::Timeout) => Reaction::Wake {
            leave: None,
            outcome: Outcome::XferExpired,
        },
        (Transfer { .. } | Ready | Inactive | Dead, Event::Timeout) => Reaction::Stay,

        // ExchangeRegisters: cancel (3) a phase that has not started a transfer; a transfer is
        // aborted (7) for both parties.
        (SendBlocked { to }, Event::Abort { send, .. }) => {
            let r = if send {
                wake(Some(to), Send, Canceled)
            } else {
                Reaction::Stay
            };
            return (r, (true, false));
        }
        (RecvBlocked { .. }, Event::Abort { receive, .. }) => {
            let r = if receive {
                wake(None, Receive, Canceled)
            } else {
                Reaction::Stay
            };
            return (r, (false, true));
        }
        (Transfer { with, .. }, Event::Abort { send, receive }) => {
            let r = if send || receive {
                Reaction::AbortTransfer { copier: Some(with) }
            } else {
                Reaction::Stay
            };
            return (r, (false, true));
        }
        (XferWait { .. }, Event::Abort { send, receive }) => {
            let r = if send || receive {
                Reaction::AbortTransfer { copier: None }
            } else {
                Reaction::Stay
            };
            return (r, (true, false));
        }
        (Ready | Inactive | Dead, Event::Abort { .. }) => Reaction::Stay,

        // Deletion of the thread itself: leave whatever queue it is in; the other party of a
        // transfer must learn of it.
        (SendBlocked { to }, Event::Deleted) => Reaction::Unlink {
            leave: Some(to),
            partner: None,
        },
        (Transfer { with, .. } | XferWait { with }, Event::Deleted) => Reaction::Unlink {
            leave: None,
            partner: Some(with),
        },
        (RecvBlocked { .. } | Ready | Inactive | Dead, Event::Deleted) => Reaction::Unlink {
            leave: None,
            partner: None,
        },

        // Deletion of another thread: end the IPCs that name it.
        (SendBlocked { to }, Event::PartnerDeleted { handle, .. }) if to == handle => {
            // Its send queue goes with it.
            wake(None, Send, NotExist)
        }
        (RecvBlocked { from }, Event::PartnerDeleted { id, .. }) if from == id => {
            wake(None, Receive, NotExist)
        }
        (Transfer { with, sender }, Event::PartnerDeleted { handle, .. }) if with == handle => {
            wake(None, if sender { Send } else { Receive }, Aborted)
        }
        (XferWait { with }, Event::PartnerDeleted { handle, .. }) if with == handle => {
            Reaction::AbortTransfer { copier: None }
        }
        (_, Event::PartnerDeleted { .. }) => Reaction::Stay,

        // Delivery: a waiting receiver gets the message; a queued sender's message was taken;
        // the waiting party of a transfer learns that it ended.
        (SendBlocked { to }, Event::Delivered) => Reaction::Wake {
            leave: Some(to),
            outcome: Outcome::Done,
        },
        (RecvBlocked { .. } | Transfer { .. } | XferWait { .. }, Event::Delivered) => {
            Reaction::Wake {
                leave: None,
                outcome: Outcome::Done,
            }
        }
        (Ready | Inactive | Dead, Event::Delivered) => Reaction::Stay,
    };
    let reported = match state {
        SendBlocked { .. } | XferWait { .. } => (true, false),
        RecvBlocked { .. } | Transfer { .. } => (false, true),
        _ => (false, false),
    };
    (r, reported)
}

impl ThreadState {
    /// Whether the thread waits in an IPC (and may have a timer armed).
    pub fn is_blocked(&self) -> bool {
        matches!(
            self,
            ThreadState::SendBlocked { .. }
                | ThreadState::RecvBlocked { .. }
                | ThreadState::Transfer { .. }
                | ThreadState::XferWait { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use IpcErrorCode::*;
    use IpcPhase::{Receive, Send};

    const A: Handle = Handle {
        no: 100,
        generation: 1,
    };
    const B: Handle = Handle {
        no: 101,
        generation: 7,
    };
    /// B's number with another generation: a later thread with B's number.
    const B_LATER: Handle = Handle {
        no: 101,
        generation: 8,
    };

    fn id_b() -> ThreadId {
        ThreadId::global(101, 1)
    }

    fn all_states() -> [ThreadState; 11] {
        use ThreadState::*;
        [
            Inactive,
            Ready,
            SendBlocked { to: B },
            RecvBlocked { from: id_b() },
            RecvBlocked {
                from: ThreadId::ANY,
            },
            Transfer {
                with: B,
                sender: true,
            },
            Transfer {
                with: B,
                sender: false,
            },
            XferWait { with: B },
            Dead,
            SendBlocked { to: A },
            XferWait { with: A },
        ]
    }

    fn wake(leave: Option<Handle>, phase: IpcPhase, code: IpcErrorCode) -> Reaction {
        Reaction::Wake {
            leave,
            outcome: Outcome::Error(phase, code),
        }
    }

    fn b_deleted() -> Event {
        Event::PartnerDeleted {
            handle: B,
            id: id_b(),
        }
    }

    #[test]
    fn timeout() {
        use ThreadState::*;
        let r = |s| react(s, Event::Timeout).0;
        assert_eq!(r(SendBlocked { to: B }), wake(Some(B), Send, Timeout));
        assert_eq!(
            r(RecvBlocked { from: id_b() }),
            wake(None, Receive, Timeout)
        );
        assert_eq!(
            r(XferWait { with: B }),
            Reaction::Wake {
                leave: None,
                outcome: Outcome::XferExpired
            }
        );
        // The two issue-11 bugs: a party of a started transfer ignores its old IPC timeout.
        for sender in [true, false] {
            assert_eq!(r(Transfer { with: B, sender }), Reaction::Stay);
        }
        for s in [Ready, Inactive, Dead] {
            assert_eq!(r(s), Reaction::Stay);
        }
    }

    #[test]
    fn abort() {
        use ThreadState::*;
        let ab = |s, send, receive| react(s, Event::Abort { send, receive });
        assert_eq!(
            ab(SendBlocked { to: B }, true, false),
            (wake(Some(B), Send, Canceled), (true, false))
        );
        assert_eq!(
            ab(SendBlocked { to: B }, false, true),
            (Reaction::Stay, (true, false))
        );
        assert_eq!(
            ab(RecvBlocked { from: id_b() }, false, true),
            (wake(None, Receive, Canceled), (false, true))
        );
        assert_eq!(
            ab(RecvBlocked { from: id_b() }, true, false),
            (Reaction::Stay, (false, true))
        );
        for sender in [true, false] {
            assert_eq!(
                ab(Transfer { with: B, sender }, true, true),
                (Reaction::AbortTransfer { copier: Some(B) }, (false, true))
            );
            assert_eq!(
                ab(Transfer { with: B, sender }, false, false),
                (Reaction::Stay, (false, true))
            );
        }
        assert_eq!(
            ab(XferWait { with: B }, false, true),
            (Reaction::AbortTransfer { copier: None }, (true, false))
        );
        for s in [Ready, Inactive, Dead] {
            assert_eq!(ab(s, true, true), (Reaction::Stay, (false, false)));
        }
    }

    #[test]
    fn deletion_of_self() {
        use ThreadState::*;
        let d = |s| react(s, Event::Deleted).0;
        assert_eq!(
            d(SendBlocked { to: B }),
            Reaction::Unlink {
                leave: Some(B),
                partner: None
            }
        );
        for s in [
            Transfer {
                with: B,
                sender: true,
            },
            XferWait { with: B },
        ] {
            assert_eq!(
                d(s),
                Reaction::Unlink {
                    leave: None,
                    partner: Some(B)
                }
            );
        }
        for s in [RecvBlocked { from: id_b() }, Ready, Inactive, Dead] {
            assert_eq!(
                d(s),
                Reaction::Unlink {
                    leave: None,
                    partner: None
                }
            );
        }
    }

    #[test]
    fn deletion_of_partner() {
        use ThreadState::*;
        let d = |s| react(s, b_deleted()).0;
        assert_eq!(d(SendBlocked { to: B }), wake(None, Send, NotExist));
        assert_eq!(
            d(RecvBlocked { from: id_b() }),
            wake(None, Receive, NotExist)
        );
        assert_eq!(
            d(Transfer {
                with: B,
                sender: true
            }),
            wake(None, Send, Aborted)
        );
        assert_eq!(
            d(Transfer {
                with: B,
                sender: false
            }),
            wake(None, Receive, Aborted)
        );
        assert_eq!(
            d(XferWait { with: B }),
            Reaction::AbortTransfer { copier: None }
        );
        // Other partners, open receives, and threads not in IPC are not disturbed.
        for s in [
            SendBlocked { to: A },
            XferWait { with: A },
            RecvBlocked {
                from: ThreadId::ANY,
            },
            Ready,
            Inactive,
            Dead,
        ] {
            assert_eq!(d(s), Reaction::Stay);
        }
    }

    #[test]
    fn a_later_thread_with_the_same_number_is_not_the_partner() {
        use ThreadState::*;
        let later = Event::PartnerDeleted {
            handle: B_LATER,
            id: ThreadId::global(101, 2),
        };
        for s in [
            SendBlocked { to: B },
            XferWait { with: B },
            Transfer {
                with: B,
                sender: true,
            },
            RecvBlocked { from: id_b() },
        ] {
            assert_eq!(react(s, later).0, Reaction::Stay, "{s:?}");
        }
    }

    #[test]
    fn delivery() {
        use ThreadState::*;
        let d = |s| react(s, Event::Delivered).0;
        let done = |leave| Reaction::Wake {
            leave,
            outcome: Outcome::Done,
        };
        assert_eq!(d(SendBlocked { to: B }), done(Some(B)));
        assert_eq!(d(RecvBlocked { from: id_b() }), done(None));
        assert_eq!(
            d(Transfer {
                with: B,
                sender: false
            }),
            done(None)
        );
        assert_eq!(d(XferWait { with: B }), done(None));
        for s in [Ready, Inactive, Dead] {
            assert_eq!(d(s), Reaction::Stay);
        }
    }

    /// Every state × event pair has a defined reaction, and a reaction that wakes never leaves
    /// a queue the thread was not in.
    #[test]
    fn every_pair_is_consistent() {
        let events = [
            Event::Timeout,
            Event::Abort {
                send: true,
                receive: true,
            },
            Event::Abort {
                send: false,
                receive: false,
            },
            Event::Deleted,
            b_deleted(),
            Event::Delivered,
        ];
        for s in all_states() {
            for e in events {
                let (r, reported) = react(s, e);
                if let Reaction::Wake { leave: Some(q), .. } = r {
                    assert_eq!(s, ThreadState::SendBlocked { to: q }, "{s:?} {e:?}");
                }
                if let Reaction::Unlink { leave: Some(q), .. } = r {
                    assert_eq!(s, ThreadState::SendBlocked { to: q }, "{s:?} {e:?}");
                }
                if !s.is_blocked() {
                    assert!(
                        matches!(r, Reaction::Stay | Reaction::Unlink { .. }),
                        "{s:?} {e:?}"
                    );
                    assert_eq!(reported, (false, false));
                }
            }
        }
    }
}
