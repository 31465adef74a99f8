//! Event counters for the benchmark (cargo feature `counters`, off in normal builds): what
//! QEMU `-icount` weighs as one instruction but hardware does not — CR3 writes, MSR writes,
//! FPU state saves and restores, and kernel entries (each left by one `iretq`, a serialising
//! instruction). `swapgs` is not counted: the kernel never executes it (design.md).
//! `make bench` boots a kernel built with the feature once; the pingpong asks for the figures
//! with the debug-only `KDB_Enter("counters")` around its measured rounds (`kdb.rs`).
//!
//! Owns only its counters; without the feature every `count` compiles to nothing.

#[cfg(feature = "counters")]
use crate::sync::KernelCell;

/// A counted event.
#[derive(Clone, Copy)]
pub enum Event {
    Cr3Write = 0,
    MsrWrite = 1,
    FpuSave = 2,
    FpuRestore = 3,
    /// A `syscall` entry (left by `iretq`).
    SyscallEntry = 4,
    /// An interrupt or exception entry (left by `iretq`).
    TrapEntry = 5,
    /// An IPC taken by the fast path (`fastpath.rs`).
    FastPath = 6,
    /// A CR0 write (FPU ownership, `clts` included).
    Cr0Write = 7,
}

pub(crate) const N: usize = 8;

/// (Also incremented by the assembly fast path, `fastpath.rs`, in `counters` builds.)
#[cfg(feature = "counters")]
pub(crate) static COUNTS: KernelCell<[u64; N]> = KernelCell::new([0; N]);

/// Counts one event (nothing without the `counters` feature).
#[inline(always)]
pub fn count(e: Event) {
    #[cfg(feature = "counters")]
    {
        // SAFETY: the only borrow of COUNTS in use; it ends before any call that touches it.
        (unsafe { COUNTS.get() })[e as usize] += 1;
    }
    #[cfg(not(feature = "counters"))]
    let _ = e;
}

/// Prints the counters (one line, parsed by `xtask bench`); false without the feature.
pub fn report() -> bool {
    #[cfg(feature = "counters")]
    {
        // SAFETY: the only borrow of COUNTS in use; it ends in this statement.
        let c = *(unsafe { COUNTS.get() });
        crate::kprintln!(
            "counters: cr3={} msr={} fxsave={} fxrstor={} syscall={} trap={} fast={} cr0={}",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            c[6],
            c[7]
        );
        true
    }
    #[cfg(not(feature = "counters"))]
    {
        let _ = N;
        false
    }
}
