//! The one synchronisation primitive of a uniprocessor, non-preemptible kernel.
//!
//! Kernel code runs with interrupts disabled (syscall entry masks IF, every gate is an interrupt
//! gate) and on one CPU, so at most one flow of control is ever inside the kernel. A
//! `KernelCell` is a global whose exclusive access follows from that fact alone.

use core::cell::UnsafeCell;

/// A global touched only from kernel mode with interrupts disabled.
#[repr(transparent)]
pub struct KernelCell<T>(UnsafeCell<T>);

// SAFETY: the kernel runs on a single CPU with interrupts disabled whenever it is in kernel mode,
// so no two accesses can overlap in time.
unsafe impl<T> Sync for KernelCell<T> {}

impl<T> KernelCell<T> {
    pub const fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }

    /// Exclusive access. Callers must not hold two references from the same cell at once
    /// (no re-entrant `get` while a previous borrow is alive).
    #[allow(clippy::mut_from_ref)]
    pub fn get(&self) -> &mut T {
        // SAFETY: single CPU, interrupts off in kernel mode (module header); callers keep
        // borrows short and non-overlapping.
        unsafe { &mut *self.0.get() }
    }

    pub fn as_ptr(&self) -> *mut T {
        self.0.get()
    }
}
