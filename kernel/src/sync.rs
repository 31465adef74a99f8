//! The one synchronisation primitive of a uniprocessor, non-preemptible kernel.
//!
//! Kernel code runs with interrupts disabled (syscall entry masks IF, every gate is an interrupt
//! gate) and on one CPU, so at most one flow of control is ever inside the kernel. A
//! `KernelCell` is a global whose exclusive access follows from that fact alone.
//!
//! A `KernelValue` is a `Copy` global read and written whole: it never hands out a reference,
//! so it is sound whatever the callers do (use it for pointers, counters, flags).

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
    /// # Safety
    /// The caller must not let the returned borrow overlap any other access to the same cell
    /// (no call made while it is in use may touch the cell).
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: single CPU, interrupts off in kernel mode (module header); callers keep
        // borrows short and non-overlapping.
        unsafe { &mut *self.0.get() }
    }

    pub fn as_ptr(&self) -> *mut T {
        self.0.get()
    }
}

/// A `Copy` global read and written whole (no reference to it is ever handed out).
/// `repr(transparent)`: assembly may name it as a plain `T` (`CURRENT_KSTACK_TOP`).
#[repr(transparent)]
pub struct KernelValue<T: Copy>(core::cell::Cell<T>);

// SAFETY: single CPU, interrupts off in kernel mode: no two accesses overlap, and no reference
// into the value exists.
unsafe impl<T: Copy> Sync for KernelValue<T> {}

impl<T: Copy> KernelValue<T> {
    pub const fn new(v: T) -> Self {
        Self(core::cell::Cell::new(v))
    }

    #[inline(always)]
    pub fn get(&self) -> T {
        self.0.get()
    }

    #[inline(always)]
    pub fn set(&self, v: T) {
        self.0.set(v)
    }

    /// Stores `v` and returns the previous value.
    #[inline(always)]
    pub fn replace(&self, v: T) -> T {
        self.0.replace(v)
    }
}
