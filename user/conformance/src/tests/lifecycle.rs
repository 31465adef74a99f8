//! Thread and space lifecycle (spec 5.3, 5.9): 1,000 threads in 100 address spaces created
//! (active: UTCBs allocated, waiting for their start message) and deleted, three rounds; the
//! kernel's memory in use (KDB extension `kernel_frames_in_use`) must return to its starting
//! figure after every round. Thread numbers come from blocks of the check's [`Cx`].

use abi::{Fpage, ThreadId};
use l4::{kdb, kip, syscall, utcb};

use crate::conformance::{Check, Cx};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "lifecycle.create_delete",
        run: create_delete,
    },
    Check {
        name: "lifecycle.exhaustion",
        run: exhaustion,
    },
];

const SPACES: u64 = 100;
const PER_SPACE: u64 = 10;
const UTCB_AREA: u64 = 0x8000_0000;

/// Thread `k` of space `space` in the block starting at number `base`.
fn id(base: u64, space: u64, k: u64) -> ThreadId {
    ThreadId::global(kip::thread_info().user_base() + base + space * 16 + k, 3)
}

fn round(base: u64) -> Result<(), (u64, u64, u64)> {
    let me = utcb::my_global_id();
    let id = |space, k| id(base, space, k);
    for sp in 0..SPACES {
        let first = id(sp, 0);
        if syscall::thread_control(first, first, me, ThreadId::NIL, u64::MAX) != 1 {
            return Err((sp, 0, utcb::error_code()));
        }
        let (r, _) = syscall::space_control(
            first,
            0,
            Fpage::new_log2(kip::kip_address(), 12),
            Fpage::new_log2(UTCB_AREA, 14),
            ThreadId::NIL,
        );
        if r != 1 {
            return Err((sp, 1, utcb::error_code()));
        }
        for k in 0..PER_SPACE {
            let t = id(sp, k);
            let r = if k == 0 {
                syscall::thread_control(t, first, me, me, UTCB_AREA)
            } else {
                syscall::thread_control(t, first, me, me, UTCB_AREA + 1024 * k)
            };
            if r != 1 {
                return Err((sp, 2 + k, utcb::error_code()));
            }
        }
    }
    for sp in 0..SPACES {
        for k in (0..PER_SPACE).rev() {
            if syscall::thread_control(
                id(sp, k),
                ThreadId::NIL,
                ThreadId::NIL,
                ThreadId::NIL,
                u64::MAX,
            ) != 1
            {
                return Err((sp, 100 + k, utcb::error_code()));
            }
        }
    }
    Ok(())
}

/// Three rounds of 1000 threads in 100 spaces created and deleted; kernel memory comes back.
fn create_delete(s: &mut Cx) {
    let base = s.thread_block(SPACES * 16);
    let start = kdb::kernel_frames_in_use();
    let mut figures = [0u64; 3];
    for (i, f) in figures.iter_mut().enumerate() {
        let t0 = syscall::system_clock();
        let r = round(base);
        *f = kdb::kernel_frames_in_use();
        let ms = (syscall::system_clock() - t0) / 1000;
        if let Err((sp, step, e)) = r {
            s.check(
                "lifecycle.create_delete_1000_threads",
                false,
                format_args!("round {i}: space {sp} step {step} error {e}"),
            );
            return;
        }
        l4::println!(
            "lifecycle: round {} of 1000 threads in 100 spaces took {} ms",
            i + 1,
            ms
        );
    }
    l4::println!(
        "kernel memory: start {} frames, after round 1 {}, round 2 {}, round 3 {}",
        start,
        figures[0],
        figures[1],
        figures[2]
    );
    s.check(
        "lifecycle.create_delete_1000_threads",
        true,
        format_args!(""),
    );
    s.check(
        "lifecycle.kernel_memory_returns_each_round",
        figures.iter().all(|&f| f == start),
        format_args!("start {start}, rounds {figures:?}"),
    );
}

/// Kernel memory exhaustion is an error result (ErrNoMem), never a panic; everything comes back.
fn exhaustion(s: &mut Cx) {
    let me = utcb::my_global_id();
    let base = kip::thread_info().user_base() + s.thread_block(20_000);
    let start = kdb::kernel_frames_in_use();
    let mut n = 0u64;
    let mut error = 0;
    while n < 20_000 {
        let t = ThreadId::global(base + n, 1);
        if syscall::thread_control(t, t, me, ThreadId::NIL, u64::MAX) != 1 {
            error = utcb::error_code();
            break;
        }
        n += 1;
    }
    s.check(
        "lifecycle.exhaustion_is_no_mem_error",
        error == 8,
        format_args!("after {n} threads: error {error}"),
    );
    for k in 0..n {
        syscall::thread_control(
            ThreadId::global(base + k, 1),
            ThreadId::NIL,
            ThreadId::NIL,
            ThreadId::NIL,
            u64::MAX,
        );
    }
    let end = kdb::kernel_frames_in_use();
    l4::println!(
        "lifecycle: kernel memory exhausted after {} threads in new spaces; frames {} -> {}",
        n,
        start,
        end
    );
    s.check(
        "lifecycle.exhaustion_fully_recovered",
        end == start,
        format_args!("start {start} end {end}"),
    );
    // And the system still works: a new thread can be created again.
    let t = ThreadId::global(base, 1);
    let ok = syscall::thread_control(t, t, me, ThreadId::NIL, u64::MAX) == 1;
    syscall::thread_control(t, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX);
    s.check(
        "lifecycle.works_after_exhaustion",
        ok,
        format_args!("error {}", utcb::error_code()),
    );
}
