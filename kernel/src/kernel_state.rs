//! The one owner of the kernel's scheduling state, and the one borrow of it per kernel entry.
//!
//! `Kernel` holds what every kernel entry may change and the scheduler decides on: the ready
//! queues and their bitmap, the timer heap of blocked threads, and the set of UTCB locations
//! in use. It is reached only through [`with_kernel`], which the outermost Rust function of
//! each kernel entry calls once (system-call dispatch and the fast path, a trap or an
//! interrupt, a thread's first run); handlers take `k: &mut Kernel` and pass it on, so no
//! function below an entry can create a second borrow of this state (Hubris `sys/kern`:
//! `with_task_table`, handlers taking the table; decision 009).
//!
//! A thread switch happens with the borrow live: the switching thread passes `k` into
//! `schedule::schedule(k)`, and the thread switched to continues inside its own earlier entry
//! borrow, which it had likewise passed into the switch when it left. From the compiler's
//! view the switch is an ordinary call that may change everything behind `k`, so nothing read
//! through `k` is cached across it; at any instant only the running thread uses the borrow.
//! A thread that runs for the first time, or resumes at a fresh frame (the fast path's
//! `fastpath_resumed`), continues the borrow of the thread that switched to it
//! ([`continue_entry`]).
//!
//! TCBs are not (yet) inside the owner: they are found through `thread`'s lookups, whose
//! "only reference in use" rule the call sites still claim (CAVEATS.md, decision 009).
//!
//! May touch: nothing itself; it owns the state that `schedule` and `thread_control` change.
//! (Exception: the assembly IPC fast path, `fastpath.rs`, writes the ready queues and bitmap
//! directly, outside any borrow, exactly as `schedule` would; no Rust borrow is live then.)

use kcore::queue::Queue;
use kcore::timer::TimerHeap;
use kcore::utcb::UtcbSet;

use crate::sync::KernelCell;
use crate::thread;

/// The ready queues: one per priority, by thread number (`kcore::queue`); the running thread
/// stays at its queue's head. A bit per non-empty queue makes the choice constant time.
pub struct RunQueues {
    pub queues: [Queue; 256],
    pub bitmap: [u64; 4],
}

/// The kernel state owned by the running kernel entry (module header), reached through
/// [`Kernel`].
pub struct State {
    pub run: RunQueues,
    /// Armed timeouts of blocked threads, by thread slot: a heap (`kcore::timer`), so
    /// arming, cancelling and expiring cost O(log n) in the number of armed timeouts.
    pub timers: TimerHeap<{ thread::MAX_SLOTS }>,
    /// The UTCB locations of activated threads, by space: whether a location is taken is
    /// found without looking at the threads (`kcore::utcb`). Capacity: every thread slot.
    pub utcbs: UtcbSet<{ 2 * thread::MAX_SLOTS }>,
    /// The interrupt lines: their owners (handler threads), pending flags and priorities.
    pub lines: [crate::interrupt::Line; crate::platform::pic::NUM_IRQS],
}

pub(crate) static STATE: KernelCell<State> = KernelCell::new(State {
    run: RunQueues {
        queues: [Queue::EMPTY; 256],
        bitmap: [0; 4],
    },
    timers: TimerHeap::new(),
    utcbs: UtcbSet::new(),
    lines: crate::interrupt::NO_LINES,
});

/// The entry borrow: the right to use [`State`], of which [`with_kernel`] makes the only one
/// in use (it cannot be made elsewhere: its field is private). It is zero-sized and the state
/// has a fixed address, so passing `k: &mut Kernel` down the handlers costs nothing once
/// inlined (the argument is unused and dropped); what it buys is that the compiler sees every
/// use of the state as a use of this one borrow.
pub struct Kernel {
    _only_with_kernel: (),
}

impl core::ops::Deref for Kernel {
    type Target = State;
    #[inline(always)]
    fn deref(&self) -> &State {
        // SAFETY: a `Kernel` exists only inside `with_kernel`, one at a time; a shared borrow of
        // it lends the state shared for as long (see `deref_mut`).
        unsafe { &*STATE.as_ptr() }
    }
}

impl core::ops::DerefMut for Kernel {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut State {
        // SAFETY: a `Kernel` exists only inside `with_kernel`, one at a time (its SAFETY), so a
        // unique borrow of it is the only way to the state in use: the returned borrow, tied
        // to it, cannot overlap another.
        unsafe { &mut *STATE.as_ptr() }
    }
}

/// Entries in progress that have not handed their borrow on (checked builds only): 0 in user
/// mode and in the idle thread's halt, 1 inside an entry.
#[cfg(debug_assertions)]
static DEPTH: crate::sync::KernelValue<u32> = crate::sync::KernelValue::new(0);
#[cfg(debug_assertions)]
static TAKER: crate::sync::KernelValue<u64> = crate::sync::KernelValue::new(0);
/// Where the borrow in progress was taken (checked builds: for the re-entry message).
#[cfg(debug_assertions)]
static HOLDER: crate::sync::KernelValue<&'static core::panic::Location<'static>> =
    crate::sync::KernelValue::new(core::panic::Location::caller());

impl Kernel {
    /// The running thread, to read, borrowed with the entry borrow (the first of the TCB
    /// accessors tied to it; decision 009 plans `current_mut`, `threads.get_mut`, `pair_mut`).
    #[inline(always)]
    pub fn current(&self) -> &crate::thread::Tcb {
        // SAFETY: `CURRENT` points at the running thread's TCB, live while it runs. The shared
        // borrow of `self` keeps every `&mut` from this borrow away meanwhile; the `unsafe`
        // lookups of `thread` promise that their references are not in use across code that
        // is handed this borrow.
        unsafe { &*crate::thread::current_ptr() }
    }
}

/// The kernel entry's borrow of the kernel state: call once, at the outermost level of an
/// entry (never from code that can be reached with a borrow live).
#[inline(always)]
#[track_caller]
pub fn with_kernel<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    #[cfg(debug_assertions)]
    {
        assert_eq!(
            DEPTH.get(),
            0,
            "kernel state borrowed twice (re-entered; borrow taken at {} by {:#x}, now {:#x})",
            HOLDER.get(),
            TAKER.get(),
            crate::thread::current_ptr() as u64
        );
        TAKER.set(crate::thread::current_ptr() as u64);
        DEPTH.set(1);
        HOLDER.set(core::panic::Location::caller());
    }
    // The one place the kernel state is borrowed (the `unsafe` is in `Kernel`'s `Deref`,
    // valid because of what follows). One CPU, and interrupts are off
    // whenever the kernel runs (syscall masks IF, every gate is an interrupt gate), so no
    // other flow of control enters the kernel while this one is in it; this function is
    // called only at the outermost level of an entry, so the borrow is not re-entered (the
    // checked build asserts it above). A thread switch inside `f` passes the borrow on (module
    // header): the thread switched away from does not use it until it is switched back to.
    let r = f(&mut Kernel {
        _only_with_kernel: (),
    });
    #[cfg(debug_assertions)]
    DEPTH.set(0);
    r
}

/// The borrow of a thread that starts to run at a fresh frame after a switch (a new thread's
/// first run, a thread resuming from the fast path): it continues the entry borrow of the
/// thread that switched to it, which that thread handed on with the switch.
#[inline(always)]
#[track_caller]
pub fn continue_entry<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    #[cfg(debug_assertions)]
    {
        assert_eq!(
            DEPTH.get(),
            1,
            "continuing a kernel entry that is not in progress"
        );
        DEPTH.set(0);
    }
    with_kernel(f)
}

/// An entry leaves for user mode without returning through [`with_kernel`] (the fast path's
/// direct exit, a new thread's first return): its borrow ends here.
#[inline(always)]
pub fn exit_to_user() {
    #[cfg(debug_assertions)]
    DEPTH.set(0);
}

/// The interrupt lines, copied, for the kernel debugger's views (it runs inside an entry
/// whose borrow it does not have; a copy lends nothing).
#[cfg(feature = "kdb")]
pub fn lines_for_debugger() -> [crate::interrupt::Line; crate::platform::pic::NUM_IRQS] {
    // SAFETY: a read of plain `Copy` data while the kernel is stopped in the debugger (no
    // handler runs meanwhile); no reference escapes this function.
    unsafe { (*STATE.as_ptr()).lines }
}
