//! Root mode `fuzz`: a seeded, reproducible system-call fuzzer against the kernel.
//!
//! Command line (after `fuzz`): `seed=S` (default 1), `ops=N` (stop after N operations,
//! default 100000; 0 = no limit), `secs=T` (stop after T seconds of guest time; 0 = no
//! limit), `check=N` (kernel invariant check every N operations, default 2000), `nofar`
//! (leave out far jumps/returns to other code segments and the other system-call
//! instructions, which are on by default),
//! `trace` (print every operation: slow, for replaying a failure).
//!
//! Set-up: [`NSPACES`] non-privileged spaces with [`PER_SPACE`] threads each run the root's
//! image (as in `tests::util`); every thread loops over random operations ([`ops`]) drawn
//! from its own xorshift stream seeded by (seed, thread, generation). A pager thread of the
//! root ([`pager`]) serves their page faults (image pages from the root, any other user
//! address with a scratch page) and their exceptions (restart at the entry point). The root
//! is the supervisor: it deletes and re-creates threads others are blocked on, aborts their
//! IPC, changes priorities (all from the same seed), restarts threads that stopped making
//! progress while blocked ("stalls": legitimate, e.g. a receive with timeout never), checks
//! the kernel's invariants (kernel feature `invariants`, `l4::kdb::check_kernel_invariants`)
//! every `check` operations and at the end, and checks that kernel memory returns to its
//! figure once every fuzz thread is deleted.
//!
//! Output: `fuzz: seed S ...` at the start, a heartbeat per guest second, and
//! `fuzz: done: seed S, N ops in T ms (X ops/s), ...` then KDB `exit-success`; a failure
//! prints `fuzz: FAILED (seed S): why`, the last operations of every thread, and leaves with
//! `exit-failure`. Under `-icount` the run is deterministic: the same seed gives the same
//! operations (the final `digest` line compares two runs).

#![allow(clippy::needless_range_loop)] // per-thread arrays are indexed by thread number

mod ops;
mod pager;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::{ThreadId, Time};
use l4::{kdb, println, syscall, utcb};

use crate::tests::util::{self, tid};

/// Address spaces fuzzed.
pub const NSPACES: usize = 4;
/// Threads per space.
pub const PER_SPACE: usize = 4;
/// All fuzz threads.
pub const N: usize = NSPACES * PER_SPACE;
/// Thread numbers (above UserBase) of the fuzz threads.
pub const BASE_NO: u64 = 0x2000;
/// The fuzz pager's thread number and root UTCB slot.
pub const PAGER_NO: u64 = 0x1FF0;
const PAGER_SLOT: u64 = 0xD0;
/// A thread counts as stalled after this long blocked without finishing an operation.
const STALL_US: u64 = 20_000;
/// Operations remembered per thread for a failure report.
pub const LOG: usize = 8;

/// Run-wide settings, written by the root before any fuzz thread starts.
pub static SEED: AtomicU64 = AtomicU64::new(1);
/// Far transfers and the other system-call instructions (on by default; `nofar` turns them
/// off). They crashed the kernel before the security fixes of issue 10 (docs/kernel-bugs.md).
pub static FAR: AtomicBool = AtomicBool::new(true);
pub static TRACE: AtomicBool = AtomicBool::new(false);
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Per thread: operations completed, generation (bumped by every re-creation), and the ring
/// of its last operations (4 words each: op | generation << 8 | sequence << 32, then args).
pub static OPS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
pub static GEN: [AtomicU64; N] = [const { AtomicU64::new(1) }; N];
pub static RING: [[[AtomicU64; 4]; LOG]; N] =
    [const { [const { [const { AtomicU64::new(0) }; 4] }; LOG] }; N];
/// Digest over every operation's arguments (order-independent sum per thread), for replay.
pub static DIGEST: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];

/// Stacks of the fuzz threads.
pub const STACK: usize = 16 * 1024;
#[repr(C, align(4096))]
struct Stacks([[u8; STACK]; N + 1]);
static mut STACKS: Stacks = Stacks([[0; STACK]; N + 1]);

/// Initial stack pointer of fuzz thread `i` (index N: the pager).
pub fn stack_top(i: usize) -> u64 {
    // SAFETY: only the address is taken.
    unsafe { &raw const STACKS.0[i] as u64 + STACK as u64 - 8 }
}

/// Global id of fuzz thread `i` in generation `g`.
pub fn thread_id(i: usize, g: u64) -> ThreadId {
    ThreadId::global(
        l4::kip::thread_info().user_base() + BASE_NO + i as u64,
        g & 0x3FFF_FFFF | 1,
    )
}

/// Index of a fuzz thread from its global id.
pub fn index_of(t: ThreadId) -> Option<usize> {
    let no = t
        .number()
        .checked_sub(l4::kip::thread_info().user_base() + BASE_NO)?;
    ((no as usize) < N).then_some(no as usize)
}

pub fn pager_id() -> ThreadId {
    tid(PAGER_NO)
}

/// xorshift64*.
#[derive(Clone, Copy)]
pub struct Rng(pub u64);
impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        for _ in 0..4 {
            r.next();
        }
        r
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability 1/n.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

struct Config {
    seed: u64,
    ops: u64,
    secs: u64,
    check: u64,
}

fn parse(args: &str) -> Config {
    let mut c = Config {
        seed: 1,
        ops: 100_000,
        secs: 0,
        check: 2000,
    };
    for w in args.split_whitespace().skip(1) {
        let (k, v) = w.split_once('=').unwrap_or((w, ""));
        let num = || {
            if let Some(h) = v.strip_prefix("0x") {
                u64::from_str_radix(h, 16).ok()
            } else {
                v.parse::<u64>().ok()
            }
        };
        match k {
            "seed" => c.seed = num().unwrap_or(1),
            "ops" => c.ops = num().unwrap_or(c.ops),
            "secs" => c.secs = num().unwrap_or(0),
            "check" => c.check = num().unwrap_or(c.check).max(1),
            "far" => FAR.store(true, Ordering::SeqCst),
            "nofar" => FAR.store(false, Ordering::SeqCst),
            "trace" => TRACE.store(true, Ordering::SeqCst),
            other => println!("fuzz: unknown option `{other}` ignored"),
        }
    }
    c
}

/// Root's bookkeeping of one fuzz thread.
#[derive(Clone, Copy)]
struct Slot {
    alive: bool,
    id: ThreadId,
    last_ops: u64,
    last_change: u64,
}

/// Operations counted by the root: per thread, the increases of its counter of at most
/// [`MAX_STEP`] between two looks (a fuzz thread running wild code may scribble on the
/// shared counters; such jumps are counted as `scribbles`, not as operations).
fn count_ops(seen: &mut [u64; N], counted: &mut u64, scribbles: &mut u64) {
    for i in 0..N {
        let n = OPS[i].load(Ordering::Relaxed);
        let d = n.wrapping_sub(seen[i]);
        if d <= MAX_STEP {
            *counted += d;
        } else {
            *scribbles += 1;
        }
        seen[i] = n;
    }
}
const MAX_STEP: u64 = 1_000_000;

/// Creates (or re-creates) fuzz thread `i` in generation GEN[i] and starts it.
fn create(i: usize, slots: &mut [Slot; N]) -> Result<(), (u64, u64)> {
    let s = i / PER_SPACE;
    let k = i % PER_SPACE;
    let id = thread_id(i, GEN[i].load(Ordering::SeqCst));
    let mate = (s * PER_SPACE..(s + 1) * PER_SPACE).find(|&j| j != i && slots[j].alive);
    match mate {
        Some(j) => {
            let (r, e) = util::tc(
                id,
                slots[j].id,
                util::root(),
                pager_id(),
                util::NEW_UTCB_AREA + 0x400 * k as u64,
            );
            if r != 1 {
                return Err((3, e));
            }
        }
        None => {
            util::new_space(id)?;
            let (r, e) = util::tc(
                id,
                id,
                util::root(),
                pager_id(),
                util::NEW_UTCB_AREA + 0x400 * k as u64,
            );
            if r != 1 {
                return Err((3, e));
            }
        }
    }
    slots[i].alive = true;
    slots[i].id = id;
    match pager::start(id, util::entry(ops::worker_main), stack_top(i)) {
        Ok(0) => Ok(()),
        // Not waiting for its start-up message any more: a sibling's ExchangeRegisters
        // started (or cancelled) it first, which is its right. The stall logic restarts it
        // if it does not run.
        Ok(_) => {
            START_PREEMPTED.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err((4, e)),
    }
}

/// Start-up messages that found their thread already started by a sibling.
static START_PREEMPTED: AtomicU64 = AtomicU64::new(0);

/// Deletes fuzz thread `i` and creates it again one generation later.
fn recreate(i: usize, slots: &mut [Slot; N]) -> Result<(), (u64, u64)> {
    if slots[i].alive {
        if util::kill_r(slots[i].id) != 1 {
            return Err((5, utcb::error_code()));
        }
        slots[i].alive = false;
    }
    GEN[i].fetch_add(1, Ordering::SeqCst);
    create(i, slots)
}

/// Restarts a stalled thread: abort its IPC, resume it and send it to its entry point
/// (ExchangeRegisters from its pager's space); if that fails (e.g. the thread changed its
/// pager), delete and re-create it.
fn restart(i: usize, slots: &mut [Slot; N]) -> Result<(), (u64, u64)> {
    let st = syscall::ExregsState {
        // cancel send+receive, set sp, ip, flags, pager, h-bit valid (resume).
        control: (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8),
        sp: stack_top(i),
        ip: util::entry(ops::worker_main),
        flags: 0,
        user_handle: 0,
        pager: pager_id(),
    };
    utcb::write(abi::utcb::ERROR_CODE, 0);
    let (r, _) = syscall::exchange_registers(slots[i].id, st);
    if !r.is_nil() {
        return Ok(());
    }
    recreate(i, slots)
}

/// No progress for a whole second: the states of the pager and every fuzz thread.
fn diagnose() {
    println!(
        "fuzz: no progress; pager state {} faults {} scratch {} exceptions {} unserved {}",
        util::state_of(pager_id()),
        pager::FAULTS.load(Ordering::Relaxed),
        pager::SCRATCH_FAULTS.load(Ordering::Relaxed),
        pager::EXCEPTIONS.load(Ordering::Relaxed),
        pager::UNSERVED.load(Ordering::Relaxed)
    );
    for i in 0..N {
        let id = thread_id(i, GEN[i].load(Ordering::Relaxed));
        let (_, st) = util::query(id);
        println!(
            "fuzz:   thread {i} {:#x}: schedule state {} exregs control {:#x} ip {:#x} sp {:#x}",
            id.raw(),
            util::state_of(id),
            st.control,
            st.ip,
            st.sp
        );
    }
}

/// Prints the failure report and leaves with `exit-failure`.
fn fail(seed: u64, why: core::fmt::Arguments<'_>) -> ! {
    STOP.store(true, Ordering::SeqCst);
    println!("fuzz: FAILED (seed {seed:#x}): {why}");
    println!("fuzz: replay with `cargo xtask fuzz --seed {seed:#x}` (deterministic under -icount)");
    for i in 0..N {
        let n = OPS[i].load(Ordering::Relaxed);
        println!(
            "fuzz: thread {i} (gen {}), {} ops; last operations, oldest first:",
            GEN[i].load(Ordering::Relaxed),
            n
        );
        let mut entries = [[0u64; 4]; LOG];
        for (e, r) in entries.iter_mut().zip(RING[i].iter()) {
            for (w, a) in e.iter_mut().zip(r.iter()) {
                *w = a.load(Ordering::Relaxed);
            }
        }
        // Oldest first (insertion sort by sequence number).
        for a in 1..LOG {
            let mut b = a;
            while b > 0 && entries[b - 1][0] >> 32 > entries[b][0] >> 32 {
                entries.swap(b - 1, b);
                b -= 1;
            }
        }
        for e in entries.iter().filter(|e| e[0] != 0) {
            println!(
                "fuzz:   #{} {} {:#x} {:#x} {:#x}",
                e[0] >> 32,
                ops::op_name(e[0] & 0xFF),
                e[1],
                e[2],
                e[3]
            );
        }
    }
    kdb::enter("exit-failure");
    loop {
        l4::msg::sleep(Time::NEVER);
    }
}

fn invariants(seed: u64, checks: &mut u64) {
    match kdb::check_kernel_invariants() {
        None => {}
        Some(0) => *checks += 1,
        Some(n) => fail(
            seed,
            format_args!("{n} kernel invariant violations (listed above)"),
        ),
    }
}

/// Runs the fuzzer.
pub fn run(args: &str) {
    let c = parse(args);
    SEED.store(c.seed, Ordering::SeqCst);
    println!(
        "fuzz: seed {:#x}, {} spaces x {} threads, ops {}, secs {}, invariant check every {} ops{}",
        c.seed,
        NSPACES,
        PER_SPACE,
        c.ops,
        c.secs,
        c.check,
        if FAR.load(Ordering::SeqCst) {
            ", far/sysenter/int/compat ops"
        } else {
            ""
        }
    );
    util::prepare();
    let mut checks = 0u64;
    let has_checks = kdb::check_kernel_invariants().is_some();
    println!(
        "fuzz: kernel invariant checks {}",
        if has_checks {
            "on"
        } else {
            "NOT available (kernel without the `invariants` feature)"
        }
    );
    invariants(c.seed, &mut checks);
    let frames_before = kdb::kernel_frames_in_use();
    if !pager::ensure() {
        fail(c.seed, format_args!("fuzz pager not created"));
    }
    let frames_with_pager = kdb::kernel_frames_in_use();
    let mut slots = [Slot {
        alive: false,
        id: ThreadId::NIL,
        last_ops: 0,
        last_change: 0,
    }; N];
    for i in 0..N {
        if let Err(e) = create(i, &mut slots) {
            fail(c.seed, format_args!("thread {i} not created: {e:x?}"));
        }
    }
    let mut rng = Rng::new(c.seed ^ 0x5EED_0000_0000_0000);
    let t0 = syscall::system_clock();
    let mut last_beat = t0;
    let mut last_check_ops = 0u64;
    let (mut seen, mut total, mut scribbles) = ([0u64; N], 0u64, 0u64);
    let mut last_beat_ops = 0u64;
    let (mut stalls, mut deletions, mut aborts, mut reprios) = (0u64, 0u64, 0u64, 0u64);
    for s in slots.iter_mut() {
        s.last_change = t0;
    }
    loop {
        util::sleep_us(1000 + rng.below(2000));
        let now = syscall::system_clock();
        count_ops(&mut seen, &mut total, &mut scribbles);
        // Stalls.
        for i in 0..N {
            let n = OPS[i].load(Ordering::Relaxed);
            if n != slots[i].last_ops {
                slots[i].last_ops = n;
                slots[i].last_change = now;
                continue;
            }
            if now - slots[i].last_change < STALL_US {
                continue;
            }
            // Ready threads that did not run are starved, not stalled.
            if util::state_of(slots[i].id) == abi::syscall_args::ScheduleResult::Running as u64 {
                continue;
            }
            stalls += 1;
            if let Err(e) = restart(i, &mut slots) {
                fail(
                    c.seed,
                    format_args!("thread {i} could not be restarted: {e:x?}"),
                );
            }
            slots[i].last_change = now;
        }
        // Chaos.
        let i = rng.below(N as u64) as usize;
        match rng.below(16) {
            0 => {
                deletions += 1;
                if let Err(e) = recreate(i, &mut slots) {
                    fail(c.seed, format_args!("thread {i} not re-created: {e:x?}"));
                }
            }
            1 | 2 => {
                aborts += 1;
                let st = syscall::ExregsState {
                    control: rng.below(8) << 1 | if rng.one_in(4) { 1 << 8 | 1 } else { 0 },
                    ..Default::default()
                };
                let _ = syscall::exchange_registers(slots[i].id, st);
                if st.control & 1 != 0 {
                    // halted: resume it a little later (the stall logic would too). At least
                    // 1 µs: a period of 0 is raw 0 = never (libl4's quirk), which stopped the
                    // supervisor for good once in 500 halts (long runs without -icount).
                    util::sleep_us(1 + rng.below(500));
                    let _ = syscall::exchange_registers(
                        slots[i].id,
                        syscall::ExregsState {
                            control: 1 << 8,
                            ..Default::default()
                        },
                    );
                }
            }
            3 => {
                reprios += 1;
                util::set_prio(slots[i].id, 90 + rng.below(21));
            }
            _ => {}
        }
        if total - last_check_ops >= c.check {
            last_check_ops = total;
            invariants(c.seed, &mut checks);
        }
        if now - last_beat >= 1_000_000 {
            last_beat = now;
            if total == last_beat_ops {
                diagnose();
            }
            last_beat_ops = total;
            let ms = (now - t0) / 1000;
            println!(
                "fuzz: {} ops in {} ms ({} ops/s), {} invariant checks, {} stalls restarted",
                total,
                ms,
                total * 1000 / ms.max(1),
                checks,
                stalls
            );
        }
        let done_ops = c.ops != 0 && total >= c.ops;
        let done_time = c.secs != 0 && now - t0 >= c.secs * 1_000_000;
        if done_ops || done_time {
            break;
        }
    }
    STOP.store(true, Ordering::SeqCst);
    let t1 = syscall::system_clock();
    count_ops(&mut seen, &mut total, &mut scribbles);
    invariants(c.seed, &mut checks);
    for i in 0..N {
        if slots[i].alive && util::kill_r(slots[i].id) != 1 {
            fail(
                c.seed,
                format_args!("thread {i} not deleted: error {}", utcb::error_code()),
            );
        }
        slots[i].alive = false;
    }
    invariants(c.seed, &mut checks);
    let frames_after = kdb::kernel_frames_in_use();
    if frames_after != frames_with_pager {
        fail(
            c.seed,
            format_args!(
                "kernel memory leaked: {} frames in use with the pager before, {} after \
                 deleting every fuzz thread",
                frames_with_pager, frames_after
            ),
        );
    }
    let ms = ((t1 - t0) / 1000).max(1);
    let digest = DIGEST
        .iter()
        .fold(0u64, |a, d| a.rotate_left(7) ^ d.load(Ordering::Relaxed));
    println!(
        "fuzz: done: seed {:#x}, {} ops in {} ms ({} ops/s), {} invariant checks, 0 violations, \
         0 hangs, {} stalls restarted, {} counter scribbles, {} starts preempted, {} deletions, {} aborts, {} priority changes, \
         {} page faults ({} scratch, {} unserved), {} exceptions, kernel \
         memory {} -> {} frames, digest {:#018x}",
        c.seed,
        total,
        ms,
        total * 1000 / ms,
        checks,
        stalls,
        scribbles,
        START_PREEMPTED.load(Ordering::Relaxed),
        deletions,
        aborts,
        reprios,
        pager::FAULTS.load(Ordering::Relaxed),
        pager::SCRATCH_FAULTS.load(Ordering::Relaxed),
        pager::UNSERVED.load(Ordering::Relaxed),
        pager::EXCEPTIONS.load(Ordering::Relaxed),
        frames_before,
        frames_after,
        digest
    );
    kdb::enter("exit-success");
}
