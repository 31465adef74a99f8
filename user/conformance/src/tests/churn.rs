//! Kernel memory under thread and space churn (spec 5.3, 5.9): 1,000 threads in 100 new
//! spaces, every one active (UTCB allocated, waiting for its start-up message), created and
//! deleted, three rounds with three deletion orders (each space's threads last-to-first,
//! first-to-last, and every space's first thread before all others); then three rounds of
//! five spaces whose threads really ran (page faults served, mappings made). The kernel's
//! memory in use (KDB extension `kernel_frames_in_use`) must return exactly to its starting
//! figure after every round.
//!
//! Threads: a block of the check's [`Cx`], number 16·space + k in it; stacks from the `Cx`.

use abi::ThreadId;
use l4::{kdb, kip, syscall, utcb};

use super::util::{self, activate_in, kill_r, new_space};
use crate::conformance::{Check, Cx};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "churn.active_threads",
        run: active_threads,
    },
    Check {
        name: "churn.running_spaces",
        run: running_spaces,
    },
];

const SPACES: u64 = 100;
const PER_SPACE: u64 = 10;

/// Thread `k` of space `space` in the block starting at number `base`.
fn id(base: u64, space: u64, k: u64) -> ThreadId {
    ThreadId::global(kip::thread_info().user_base() + base + space * 16 + k, 1)
}

/// One round; `order` 0..=2 picks the deletion order. Err = (space, step, error).
fn round(base: u64, order: u32) -> Result<(), (u64, u64, u64)> {
    let id = |space, k| id(base, space, k);
    for sp in 0..SPACES {
        let first = id(sp, 0);
        new_space(first).map_err(|(step, e)| (sp, step, e))?;
        for k in 0..PER_SPACE {
            let (r, e) = activate_in(id(sp, k), first, k);
            if r != 1 {
                return Err((sp, 10 + k, e));
            }
        }
    }
    let del = |sp: u64, k: u64| -> Result<(), (u64, u64, u64)> {
        if kill_r(id(sp, k)) != 1 {
            return Err((sp, 100 + k, utcb::error_code()));
        }
        Ok(())
    };
    match order {
        0 => {
            for sp in 0..SPACES {
                for k in (0..PER_SPACE).rev() {
                    del(sp, k)?;
                }
            }
        }
        1 => {
            for sp in 0..SPACES {
                for k in 0..PER_SPACE {
                    del(sp, k)?;
                }
            }
        }
        _ => {
            for sp in 0..SPACES {
                del(sp, 0)?;
            }
            for sp in 0..SPACES {
                for k in 1..PER_SPACE {
                    del(sp, k)?;
                }
            }
        }
    }
    Ok(())
}

/// Five spaces whose first thread runs `child_hello` (faults served by the pager thread) on
/// stacks `sps`.
fn running_round(base: u64, sps: &[u64; 5]) -> Result<(), (u64, u64)> {
    let id = |space, k| id(base, space, k);
    for sp in 0..5u64 {
        let t = id(sp, 0);
        util::spawn_in_new_space_at(t, util::child_hello, sps[sp as usize])
            .map_err(|(st, e)| (sp, st * 1000 + e))?;
        util::receive_report(t, 2000).map_err(|e| (sp, 9000 + e))?;
        let (r, _) = activate_in(id(sp, 1), t, 1);
        if r != 1 {
            return Err((sp, 8000 + utcb::error_code()));
        }
    }
    for sp in 0..5u64 {
        kill_r(id(sp, 1));
        kill_r(id(sp, 0));
    }
    Ok(())
}

/// 1,000 active threads in 100 spaces, three deletion orders; memory returns each time.
fn active_threads(s: &mut Cx) {
    let base = s.thread_block(SPACES * 16);
    if !util::ensure_pager() {
        s.check("churn.pager_thread_up", false, format_args!(""));
        return;
    }
    let start = kdb::kernel_frames_in_use();
    let mut after = [0u64; 3];
    let mut ms = [0u64; 3];
    for (i, f) in after.iter_mut().enumerate() {
        let t0 = syscall::system_clock();
        let r = round(base, i as u32);
        ms[i] = (syscall::system_clock() - t0) / 1000;
        *f = kdb::kernel_frames_in_use();
        if let Err((sp, step, e)) = r {
            s.check(
                "churn.create_delete_1000_active_threads",
                false,
                format_args!("round {}: space {sp} step {step} error {e}", i + 1),
            );
            return;
        }
    }
    l4::println!(
        "churn: rounds of 1000 active threads in 100 spaces took {} ms, {} ms, {} ms",
        ms[0],
        ms[1],
        ms[2]
    );
    l4::println!(
        "kernel memory: start {} frames, after round 1 {}, round 2 {}, round 3 {}",
        start,
        after[0],
        after[1],
        after[2]
    );
    s.check(
        "churn.create_delete_1000_active_threads",
        true,
        format_args!(""),
    );
    s.check_eq(
        "churn.memory_returns_after_reverse_deletion",
        after[0],
        start,
    );
    s.check_eq(
        "churn.memory_returns_after_forward_deletion",
        after[1],
        start,
    );
    s.check_eq(
        "churn.memory_returns_after_first_threads_first",
        after[2],
        start,
    );
}

/// Three rounds of five spaces whose threads really ran; memory returns.
fn running_spaces(s: &mut Cx) {
    let base = s.thread_block(5 * 16);
    let sps: [u64; 5] = core::array::from_fn(|_| s.stack());
    if !util::ensure_pager() {
        s.check("churn.pager_thread_up", false, format_args!(""));
        return;
    }
    let start = kdb::kernel_frames_in_use();
    let mut after = [0u64; 3];
    for (i, f) in after.iter_mut().enumerate() {
        let r = running_round(base, &sps);
        *f = kdb::kernel_frames_in_use();
        if let Err((sp, e)) = r {
            s.check(
                "churn.running_spaces_created_and_deleted",
                false,
                format_args!("round {}: space {sp} code {e}", i + 1),
            );
            return;
        }
    }
    l4::println!(
        "kernel memory (running spaces): start {} frames, after round 1 {}, round 2 {}, round 3 {}",
        start,
        after[0],
        after[1],
        after[2]
    );
    s.check(
        "churn.running_spaces_created_and_deleted",
        true,
        format_args!(""),
    );
    s.check(
        "churn.running_spaces_memory_returns",
        after.iter().all(|&a| a == start),
        format_args!("start {start}, rounds {after:?}"),
    );
}
