//! Queues of threads linked by thread number, not by pointer: a send queue (the threads waiting
//! to send to one receiver, in order) and a list of closed receivers (the threads waiting for a
//! message from one thread). Number 0 is "none" (it is never a user thread's).
//!
//! The queue head lives in the owner, each member's [`Link`] in the member; the kernel finds a
//! member's link by its number ([`Links`]). Adding and removing cost O(1); a member's own link
//! is passed in directly, so the code never asks the table for the member it already holds.

/// A member's neighbours (0: none).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Link {
    /// The member before it.
    pub prev: u32,
    /// The member after it.
    pub next: u32,
}

/// The ends of a queue (0: empty).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Queue {
    /// First member.
    pub head: u32,
    /// Last member.
    pub tail: u32,
}

/// Where the links of the members other than the one at hand are (the kernel: in the TCBs).
pub trait Links {
    /// The link of member `n` (a member of the queue being changed, never the one passed in).
    fn link(&mut self, n: u32) -> &mut Link;
}

impl Queue {
    /// No member.
    pub const EMPTY: Queue = Queue { head: 0, tail: 0 };

    /// Whether the queue has no member.
    pub fn is_empty(&self) -> bool {
        self.head == 0
    }

    /// Appends `n` (whose link is `link`).
    #[inline]
    pub fn push_back(&mut self, n: u32, link: &mut Link, others: &mut impl Links) {
        *link = Link {
            prev: self.tail,
            next: 0,
        };
        if self.tail == 0 {
            self.head = n;
        } else {
            others.link(self.tail).next = n;
        }
        self.tail = n;
    }

    /// Puts `n` (whose link is `link`) first.
    #[inline]
    pub fn push_front(&mut self, n: u32, link: &mut Link, others: &mut impl Links) {
        *link = Link {
            prev: 0,
            next: self.head,
        };
        if self.head == 0 {
            self.tail = n;
        } else {
            others.link(self.head).prev = n;
        }
        self.head = n;
    }

    /// Takes member `link` out (its own number is not needed: its neighbours say where it is).
    #[inline]
    pub fn remove(&mut self, link: &Link, others: &mut impl Links) {
        let Link { prev, next } = *link;
        if prev == 0 {
            self.head = next;
        } else {
            others.link(prev).next = next;
        }
        if next == 0 {
            self.tail = prev;
        } else {
            others.link(next).prev = prev;
        }
        // `link` keeps stale values: it means something only while the member is queued (the
        // kernel knows that from the member's state) and is rewritten on insertion.
    }
}
