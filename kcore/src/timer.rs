//! Armed timeouts: a binary min-heap of `(deadline, key)` with a position index per key.
//!
//! A key is a small integer (the kernel uses the thread's slot number), below the capacity
//! `N`. Each key is armed at most once. Arming, re-arming and cancelling are O(log n); the
//! earliest deadline is at the root, so a timer tick that expires nothing costs one compare.
//! Equal deadlines expire in an unspecified order.

/// No position: the key is not armed. Positions are stored plus one, so that an empty heap is
/// all zeroes (the kernel's copy lives in `.bss`).
const NONE: u32 = 0;

/// The timeouts of up to `N` keys.
pub struct TimerHeap<const N: usize> {
    /// `heap[0..len]`: (deadline, key), heap-ordered by deadline.
    heap: [(u64, u32); N],
    /// `pos[key]`: index of the key's entry in `heap` plus one, or `NONE`.
    pos: [u32; N],
    len: usize,
}

impl<const N: usize> TimerHeap<N> {
    /// No timeout armed.
    pub const fn new() -> Self {
        TimerHeap {
            heap: [(0, 0); N],
            pos: [NONE; N],
            len: 0,
        }
    }

    /// Number of armed timeouts.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timeout is armed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The deadline of `key`, if armed.
    pub fn deadline(&self, key: u32) -> Option<u64> {
        match self.pos.get(key as usize) {
            Some(&p) if p != NONE => Some(self.heap[p as usize - 1].0),
            _ => None,
        }
    }

    /// Arms (or re-arms) `key` for `deadline`. Panics if `key >= N` (a kernel bug).
    #[inline]
    pub fn arm(&mut self, key: u32, deadline: u64) {
        let p = self.pos[key as usize];
        if p != NONE {
            let i = p as usize - 1;
            let old = self.heap[i].0;
            self.heap[i].0 = deadline;
            if deadline < old {
                if i > 0 {
                    self.up(i);
                }
            } else if 2 * i + 1 < self.len {
                self.down(i);
            }
            return;
        }
        let i = self.len;
        self.len += 1;
        self.heap[i] = (deadline, key);
        self.pos[key as usize] = i as u32 + 1;
        if i > 0 {
            self.up(i);
        }
    }

    /// Disarms `key`; returns whether it was armed.
    #[inline]
    pub fn cancel(&mut self, key: u32) -> bool {
        let Some(&p) = self.pos.get(key as usize) else {
            return false;
        };
        if p == NONE {
            return false;
        }
        self.remove_at(p as usize - 1);
        true
    }

    /// The earliest armed timeout.
    pub fn peek(&self) -> Option<(u64, u32)> {
        (self.len > 0).then(|| self.heap[0])
    }

    /// Disarms and returns the key of a timeout due at `now` (deadline <= now), earliest first.
    pub fn pop_due(&mut self, now: u64) -> Option<u32> {
        let (d, key) = self.peek()?;
        if d > now {
            return None;
        }
        self.remove_at(0);
        Some(key)
    }

    #[inline]
    fn remove_at(&mut self, i: usize) {
        let key = self.heap[i].1;
        self.pos[key as usize] = NONE;
        self.len -= 1;
        if i == self.len {
            return;
        }
        self.refill(i);
    }

    /// Moves the last entry into the hole at `i` and restores the heap order.
    fn refill(&mut self, i: usize) {
        self.heap[i] = self.heap[self.len];
        self.pos[self.heap[i].1 as usize] = i as u32 + 1;
        if i > 0 && self.heap[i].0 < self.heap[(i - 1) / 2].0 {
            self.up(i);
        } else {
            self.down(i);
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].1 as usize] = a as u32 + 1;
        self.pos[self.heap[b].1 as usize] = b as u32 + 1;
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent].0 <= self.heap[i].0 {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < self.len && self.heap[l].0 < self.heap[m].0 {
                m = l;
            }
            if r < self.len && self.heap[r].0 < self.heap[m].0 {
                m = r;
            }
            if m == i {
                return;
            }
            self.swap(i, m);
            i = m;
        }
    }

    /// Checks the invariants (heap order, position index); for tests.
    pub fn check(&self) -> Result<(), &'static str> {
        for i in 1..self.len {
            if self.heap[(i - 1) / 2].0 > self.heap[i].0 {
                return Err("heap order");
            }
        }
        let mut armed = 0;
        for (key, &p) in self.pos.iter().enumerate() {
            if p == NONE {
                continue;
            }
            armed += 1;
            if p as usize > self.len || self.heap[p as usize - 1].1 as usize != key {
                return Err("position index");
            }
        }
        if armed != self.len {
            return Err("armed count");
        }
        Ok(())
    }
}

impl<const N: usize> Default for TimerHeap<N> {
    fn default() -> Self {
        Self::new()
    }
}
