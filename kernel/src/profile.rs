//! IPC path profiling (cargo feature `ipc-profile`, off by default): under QEMU `-icount
//! shift=0` the TSC counts instructions, so timestamps at fixed points of a call give the
//! instructions spent in each stage of a one-way IPC. Used to write docs/ipc-path.md.
//!
//! Points of one one-way IPC from A to B (B waiting in a receive): `Dispatch` (A's system call
//! reaches `syscall_dispatch`), `Resolved` (destination found), `Transferred` (message copied, B
//! woken), `Switching` (A blocked, about to switch stacks), `Resumed` (B leaves
//! `syscall_dispatch`, about to return to user).

#[derive(Clone, Copy)]
pub enum Point {
    Dispatch = 0,
    Resolved = 1,
    Transferred = 2,
    Switching = 3,
    Resumed = 4,
}

#[cfg(feature = "ipc-profile")]
mod imp {
    use super::Point;
    use crate::sync::KernelCell;

    struct Prof {
        t: [u64; 5],
        seen: u8,
        sum: [u64; 4],
        n: u64,
    }
    static P: KernelCell<Prof> = KernelCell::new(Prof {
        t: [0; 5],
        seen: 0,
        sum: [0; 4],
        n: 0,
    });

    pub fn mark(p: Point) {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let pr = unsafe { P.get() };
        let i = p as usize;
        if i == 0 {
            pr.seen = 1;
        } else if pr.seen == i as u8 {
            pr.seen += 1;
        } else {
            return;
        }
        pr.t[i] = crate::arch::cpu::rdtsc();
        if i == 4 {
            for k in 0..4 {
                pr.sum[k] += pr.t[k + 1] - pr.t[k];
            }
            pr.n += 1;
            pr.seen = 0;
            if pr.n == 4000 {
                let a = |k: usize| pr.sum[k] as f64 / pr.n as f64;
                crate::kprintln!(
                    "ipc-profile: {} IPCs: dispatch->resolved {:.1}, ->transferred {:.1}, ->switching {:.1}, ->resumed {:.1}",
                    pr.n,
                    a(0),
                    a(1),
                    a(2),
                    a(3)
                );
                *pr = Prof {
                    t: [0; 5],
                    seen: 0,
                    sum: [0; 4],
                    n: 0,
                };
            }
        }
    }
}

#[cfg(feature = "ipc-profile")]
pub use imp::mark;

#[cfg(not(feature = "ipc-profile"))]
#[inline(always)]
pub fn mark(_: Point) {}
