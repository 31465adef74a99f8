//! Root mode `stress [messages=N]` (default 1,000,000): IPC under load with exact accounting.
//!
//! 64 threads in 8 non-privileged spaces form 32 sender/receiver pairs, each pair across two
//! spaces, priorities mixed (50..200, changed at random; preemption by the timer is on). A
//! sender Calls its receiver with sequence-numbered messages: MR1 = sequence number, MR2 =
//! attempt number (rises with every try), MR3 = string length, and a string item whose bytes
//! derive from (sequence, attempt); timeouts are random (zero, short, never). The receiver
//! checks each message and replies with (sequence, attempt). Meanwhile the root (priority
//! 255) aborts IPCs with ExchangeRegisters, revokes the buffers' pages (so string copies page
//! fault into the pager), deletes and re-creates threads whose partner may be blocked on
//! them, and changes priorities.
//!
//! Accounting, per pair: the sender counts the attempts whose send phase succeeded (Call
//! succeeded, or failed in its receive phase); the receiver counts the messages it got and
//! checks that attempts only rise (a repeat is a duplicate), that a sequence number is the
//! last one again (a retry) or the next (anything else is a lost message), and the string
//! bytes. When the root deletes a sender blocked in a Call's receive phase, the attempt in
//! flight was delivered and the root counts it. At the end both counts must agree for every
//! pair, with no duplicate, loss, corruption, or thread that stopped making progress.

#![allow(clippy::needless_range_loop)] // per-pair arrays are indexed by pair number

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::acceptor::Acceptor;
use abi::items::simple_string;
use abi::syscall_args::ScheduleResult;
use abi::{MsgTag, ThreadId, Time, Timeouts};
use l4::{kdb, println, syscall, utcb};

use crate::fuzz::Rng;
use crate::tests::util;

const SPACES: usize = 8;
const PAIRS: usize = 32;
const THREADS: usize = 2 * PAIRS;
const BASE_NO: u64 = 0x3000;
const BUF: usize = 8192;
const STACK: usize = 8192;
const LABEL: u64 = 0x57E5;

#[repr(C, align(4096))]
struct Stacks([[u8; STACK]; THREADS]);
static mut STACKS: Stacks = Stacks([[0; STACK]; THREADS]);
#[repr(C, align(4096))]
struct Bufs([[u8; BUF]; PAIRS]);
static mut SBUF: Bufs = Bufs([[0; BUF]; PAIRS]);
static mut RBUF: Bufs = Bufs([[0; BUF]; PAIRS]);

// Shared accounting (the image is shared by every space).
static GEN: [AtomicU64; THREADS] = [const { AtomicU64::new(1) }; THREADS];
static SEED: AtomicU64 = AtomicU64::new(1);
static PER_PAIR: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
/// Sender: current sequence number, last attempt number, attempt in flight (0 = none),
/// attempts delivered, done flag.
static S_SEQ: [AtomicU64; PAIRS] = [const { AtomicU64::new(1) }; PAIRS];
static S_ATTEMPT: [AtomicU64; PAIRS] = [const { AtomicU64::new(0) }; PAIRS];
static S_INFLIGHT: [AtomicU64; PAIRS] = [const { AtomicU64::new(0) }; PAIRS];
static S_DELIVERED: [AtomicU64; PAIRS] = [const { AtomicU64::new(0) }; PAIRS];
static S_DONE: [AtomicBool; PAIRS] = [const { AtomicBool::new(false) }; PAIRS];
/// Receiver: messages received, last sequence and attempt, and the errors it saw.
static R_RECEIVED: [AtomicU64; PAIRS] = [const { AtomicU64::new(0) }; PAIRS];
static R_SEQ: [AtomicU64; PAIRS] = [const { AtomicU64::new(0) }; PAIRS];
static R_ATTEMPT: [AtomicU64; PAIRS] = [const { AtomicU64::new(0) }; PAIRS];
static DUPS: AtomicU64 = AtomicU64::new(0);
static LOST: AtomicU64 = AtomicU64::new(0);
static CORRUPT: AtomicU64 = AtomicU64::new(0);
/// IPC outcomes seen by senders: ok, send-phase errors, receive-phase errors.
static OK: AtomicU64 = AtomicU64::new(0);
static SEND_ERR: AtomicU64 = AtomicU64::new(0);
static RECV_ERR: AtomicU64 = AtomicU64::new(0);

fn stack_top(t: usize) -> u64 {
    // SAFETY: only the address is taken.
    unsafe { &raw const STACKS.0[t] as u64 + STACK as u64 - 8 }
}
fn sbuf(p: usize) -> *mut u8 {
    // SAFETY: only the address is taken.
    unsafe { &raw mut SBUF.0[p] as *mut u8 }
}
fn rbuf(p: usize) -> *mut u8 {
    // SAFETY: only the address is taken.
    unsafe { &raw mut RBUF.0[p] as *mut u8 }
}

fn id(t: usize) -> ThreadId {
    ThreadId::global(
        l4::kip::thread_info().user_base() + BASE_NO + t as u64,
        GEN[t].load(Ordering::SeqCst) & 0x3FFF_FFFF | 1,
    )
}
fn index(me: ThreadId) -> usize {
    (me.number() - l4::kip::thread_info().user_base() - BASE_NO) as usize
}
/// Space and UTCB slot of thread `t` (sender 2p, receiver 2p+1).
fn place(t: usize) -> (usize, u64) {
    let p = t / 2;
    let s = p % SPACES;
    if t.is_multiple_of(2) {
        (s, (p / SPACES) as u64)
    } else {
        ((s + 1 + p / SPACES) % SPACES, 4 + (p / SPACES) as u64)
    }
}
fn pattern(seq: u64, attempt: u64, k: usize) -> u8 {
    (seq.wrapping_mul(31) ^ attempt.wrapping_mul(7)).wrapping_add(k as u64) as u8
}
fn rand_time(r: &mut Rng) -> Time {
    match r.below(8) {
        0 => Time::ZERO,
        1 | 2 => Time::NEVER,
        _ => Time::period_micros(1 + r.below(5000)),
    }
}

extern "C" fn sender() -> ! {
    let t = index(utcb::my_global_id());
    let p = t / 2;
    let mut rng =
        Rng::new(SEED.load(Ordering::Relaxed) ^ (t as u64) << 32 ^ GEN[t].load(Ordering::Relaxed));
    let last = PER_PAIR.load(Ordering::Relaxed);
    loop {
        let seq = S_SEQ[p].load(Ordering::SeqCst);
        if seq > last || STOP.load(Ordering::Relaxed) {
            S_DONE[p].store(true, Ordering::SeqCst);
            util::park();
        }
        let attempt = S_ATTEMPT[p].load(Ordering::SeqCst) + 1;
        S_ATTEMPT[p].store(attempt, Ordering::SeqCst);
        let len = 1 + rng.below(BUF as u64) as usize;
        for k in 0..len {
            // SAFETY: this pair's send buffer belongs to this sender alone.
            unsafe { *sbuf(p).add(k) = pattern(seq, attempt, k) };
        }
        let s = simple_string(len as u64, sbuf(p) as u64);
        utcb::set_mrs(1, &[seq, attempt, len as u64, s[0], s[1]]);
        utcb::set_mr(0, MsgTag::new(LABEL, 3, 2).raw());
        utcb::set_br(0, 0);
        let to = id(2 * p + 1);
        S_INFLIGHT[p].store(attempt, Ordering::SeqCst);
        let r = syscall::ipc(
            to,
            to,
            Timeouts::new(rand_time(&mut rng), rand_time(&mut rng)),
        );
        let delivered = if !r.tag.error() {
            OK.fetch_add(1, Ordering::Relaxed);
            if utcb::mr(1) == seq && utcb::mr(2) == attempt {
                S_SEQ[p].store(seq + 1, Ordering::SeqCst);
            }
            true
        } else if utcb::error_code() & 1 == 1 {
            RECV_ERR.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            SEND_ERR.fetch_add(1, Ordering::Relaxed);
            false
        };
        if delivered {
            S_DELIVERED[p].fetch_add(1, Ordering::SeqCst);
        }
        S_INFLIGHT[p].store(0, Ordering::SeqCst);
    }
}

extern "C" fn receiver() -> ! {
    let t = index(utcb::my_global_id());
    let p = t / 2;
    let mut rng =
        Rng::new(SEED.load(Ordering::Relaxed) ^ (t as u64) << 32 ^ GEN[t].load(Ordering::Relaxed));
    let mut reply_to = ThreadId::NIL;
    loop {
        utcb::accept(Acceptor::STRING_ITEMS);
        let b = simple_string(BUF as u64, rbuf(p) as u64);
        utcb::set_br(1, b[0]);
        utcb::set_br(2, b[1]);
        let from = id(2 * p);
        let r = if reply_to.is_nil() {
            syscall::ipc(
                ThreadId::NIL,
                from,
                Timeouts::new(Time::ZERO, rand_time(&mut rng)),
            )
        } else {
            syscall::ipc(
                reply_to,
                from,
                Timeouts::new(Time::ZERO, rand_time(&mut rng)),
            )
        };
        reply_to = ThreadId::NIL;
        if r.tag.error() || r.tag.label() != LABEL {
            continue;
        }
        let (seq, attempt, len) = (utcb::mr(1), utcb::mr(2), utcb::mr(3) as usize);
        let (last_seq, last_att) = (
            R_SEQ[p].load(Ordering::SeqCst),
            R_ATTEMPT[p].load(Ordering::SeqCst),
        );
        if attempt <= last_att {
            DUPS.fetch_add(1, Ordering::SeqCst);
            println!("stress: pair {p}: DUPLICATE attempt {attempt} (last {last_att}) seq {seq}");
        } else if seq != last_seq && seq != last_seq + 1 {
            LOST.fetch_add(1, Ordering::SeqCst);
            println!("stress: pair {p}: LOST: seq {seq} after {last_seq}");
        }
        let ok = len <= BUF
            // SAFETY: this pair's receive buffer, written by the kernel's copy only.
            && (0..len).all(|k| unsafe { *rbuf(p).add(k) } == pattern(seq, attempt, k));
        if !ok {
            CORRUPT.fetch_add(1, Ordering::SeqCst);
            println!("stress: pair {p}: CORRUPT string, seq {seq} attempt {attempt} length {len}");
        }
        R_SEQ[p].store(seq, Ordering::SeqCst);
        R_ATTEMPT[p].store(attempt, Ordering::SeqCst);
        R_RECEIVED[p].fetch_add(1, Ordering::SeqCst);
        utcb::set_mrs(1, &[seq, attempt]);
        utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
        reply_to = r.from;
    }
}

struct Root {
    alive: [bool; THREADS],
}

fn create(t: usize, st: &mut Root, rng: &mut Rng) -> Result<(), (u64, u64)> {
    let (s, slot) = place(t);
    let me = id(t);
    let mate = (0..THREADS).find(|&j| j != t && st.alive[j] && place(j).0 == s);
    match mate {
        Some(j) => {
            let (r, e) = util::activate_in(me, id(j), slot);
            if r != 1 {
                return Err((3, e));
            }
        }
        None => {
            util::new_space(me)?;
            let (r, e) = util::activate_in(me, me, slot);
            if r != 1 {
                return Err((3, e));
            }
        }
    }
    st.alive[t] = true;
    util::set_prio(me, 50 + rng.below(151));
    let f = if t.is_multiple_of(2) {
        sender
    } else {
        receiver
    };
    match util::pager_start(me, util::entry(f), stack_top(t)) {
        Ok(0) => Ok(()),
        Ok(e) | Err(e) => Err((4, e)),
    }
}

/// Deletes `t` if it is in a state where the accounting stays exact, and re-creates it.
fn delete_and_recreate(t: usize, st: &mut Root, rng: &mut Rng) -> Result<bool, (u64, u64)> {
    let p = t / 2;
    let state = util::state_of(id(t));
    let waiting = state == ScheduleResult::Waiting as u64;
    let pending = state == ScheduleResult::PendingSend as u64;
    // Receivers only while blocked receiving; senders while blocked in either phase.
    if !(waiting || pending && t.is_multiple_of(2)) || S_DONE[p].load(Ordering::SeqCst) {
        return Ok(false);
    }
    if util::kill_r(id(t)) != 1 {
        return Err((5, utcb::error_code()));
    }
    st.alive[t] = false;
    if t.is_multiple_of(2) && waiting && S_INFLIGHT[p].load(Ordering::SeqCst) != 0 {
        // Blocked in the Call's receive phase: the message in flight was delivered.
        S_DELIVERED[p].fetch_add(1, Ordering::SeqCst);
    }
    if t.is_multiple_of(2) {
        S_INFLIGHT[p].store(0, Ordering::SeqCst);
    }
    GEN[t].fetch_add(1, Ordering::SeqCst);
    create(t, st, rng)?;
    Ok(true)
}

fn received() -> u64 {
    R_RECEIVED.iter().map(|r| r.load(Ordering::Relaxed)).sum()
}

fn fail(why: core::fmt::Arguments<'_>) -> ! {
    println!(
        "stress: FAILED (seed {:#x}): {why}",
        SEED.load(Ordering::Relaxed)
    );
    for p in 0..PAIRS {
        println!(
            "stress:   pair {p}: seq {} attempt {} delivered {} received {} done {} sender state {} receiver state {}",
            S_SEQ[p].load(Ordering::SeqCst),
            S_ATTEMPT[p].load(Ordering::SeqCst),
            S_DELIVERED[p].load(Ordering::SeqCst),
            R_RECEIVED[p].load(Ordering::SeqCst),
            S_DONE[p].load(Ordering::SeqCst),
            util::state_of(id(2 * p)),
            util::state_of(id(2 * p + 1)),
        );
    }
    kdb::enter("exit-failure");
    util::park()
}

pub fn run(args: &str) {
    let mut messages = 1_000_000u64;
    let mut seed = 1u64;
    for w in args.split_whitespace().skip(1) {
        match w.split_once('=') {
            Some(("messages", v)) => messages = v.parse().unwrap_or(messages),
            Some(("seed", v)) => seed = v.parse().unwrap_or(seed),
            _ => println!("stress: unknown option `{w}` ignored"),
        }
    }
    let per_pair = messages.div_ceil(PAIRS as u64);
    PER_PAIR.store(per_pair, Ordering::SeqCst);
    SEED.store(seed, Ordering::SeqCst);
    println!(
        "stress: {} messages ({} per pair), {} threads in {} spaces, seed {}",
        per_pair * PAIRS as u64,
        per_pair,
        THREADS,
        SPACES,
        seed
    );
    if !util::ensure_pager() {
        fail(format_args!("pager thread not created"));
    }
    let frames_before = kdb::kernel_frames_in_use();
    let mut rng = Rng::new(seed ^ 0x57E5);
    let mut st = Root {
        alive: [false; THREADS],
    };
    for t in 0..THREADS {
        if let Err(e) = create(t, &mut st, &mut rng) {
            fail(format_args!("thread {t} not created: {e:x?}"));
        }
    }
    let t0 = syscall::system_clock();
    let (mut last_beat, mut last_progress, mut last_count) = (t0, t0, 0u64);
    let (mut deletions, mut aborts, mut unmaps, mut reprios) = (0u64, 0u64, 0u64, 0u64);
    loop {
        util::sleep_us(500 + rng.below(2000));
        let now = syscall::system_clock();
        let t = rng.below(THREADS as u64) as usize;
        match rng.below(8) {
            0 => match delete_and_recreate(t, &mut st, &mut rng) {
                Ok(true) => deletions += 1,
                Ok(false) => {}
                Err(e) => fail(format_args!("thread {t} not re-created: {e:x?}")),
            },
            1 | 2 => {
                aborts += 1;
                let _ = syscall::exchange_registers(
                    id(t),
                    syscall::ExregsState {
                        control: (1 + rng.below(3)) << 1,
                        ..Default::default()
                    },
                );
            }
            3 | 4 => {
                unmaps += 1;
                let p = t / 2;
                let page = if rng.one_in(2) { rbuf(p) } else { sbuf(p) } as u64
                    + 4096 * rng.below((BUF / 4096) as u64);
                utcb::set_mr(
                    0,
                    abi::Fpage::new_log2(page, 12)
                        .with_rights(abi::Rights::FULL)
                        .raw(),
                );
                syscall::unmap(0);
            }
            5 => {
                reprios += 1;
                util::set_prio(id(t), 50 + rng.below(151));
            }
            _ => {}
        }
        let n = received();
        if n != last_count {
            last_count = n;
            last_progress = now;
        }
        if now - last_beat >= 1_000_000 {
            last_beat = now;
            let ms = (now - t0) / 1000;
            println!(
                "stress: {n} messages in {ms} ms ({} msg/s)",
                n * 1000 / ms.max(1)
            );
            if let Some(v) = kdb::check_kernel_invariants()
                && v != 0
            {
                fail(format_args!(
                    "{v} kernel invariant violations (listed above)"
                ));
            }
        }
        if S_DONE.iter().all(|d| d.load(Ordering::SeqCst)) {
            break;
        }
        if now - last_progress > 10_000_000 {
            fail(format_args!("no message for 10 s: threads stuck"));
        }
    }
    let t1 = syscall::system_clock();
    STOP.store(true, Ordering::SeqCst);
    // Accounting.
    let mut mismatches = 0;
    for p in 0..PAIRS {
        let (d, r) = (
            S_DELIVERED[p].load(Ordering::SeqCst),
            R_RECEIVED[p].load(Ordering::SeqCst),
        );
        if d != r || R_SEQ[p].load(Ordering::SeqCst) != per_pair {
            mismatches += 1;
            println!(
                "stress: pair {p}: sender delivered {d}, receiver got {r}, last seq {} of {per_pair}",
                R_SEQ[p].load(Ordering::SeqCst)
            );
        }
    }
    for t in 0..THREADS {
        if st.alive[t] && util::kill_r(id(t)) != 1 {
            fail(format_args!("thread {t} not deleted"));
        }
    }
    let frames_after = kdb::kernel_frames_in_use();
    let (dups, lost, corrupt) = (
        DUPS.load(Ordering::SeqCst),
        LOST.load(Ordering::SeqCst),
        CORRUPT.load(Ordering::SeqCst),
    );
    let total = received();
    let ms = ((t1 - t0) / 1000).max(1);
    println!(
        "stress: {} messages received ({} sequence numbers) in {} ms ({} msg/s); senders: {} ok, {} failed in send phase, {} in receive phase; {} deletions, {} aborts, {} unmaps, {} priority changes; duplicates {}, lost {}, corrupt {}, accounting mismatches {}, kernel memory {} -> {} frames",
        total,
        per_pair * PAIRS as u64,
        ms,
        total * 1000 / ms,
        OK.load(Ordering::SeqCst),
        SEND_ERR.load(Ordering::SeqCst),
        RECV_ERR.load(Ordering::SeqCst),
        deletions,
        aborts,
        unmaps,
        reprios,
        dups,
        lost,
        corrupt,
        mismatches,
        frames_before,
        frames_after
    );
    if dups + lost + corrupt + mismatches != 0 {
        fail(format_args!("messages lost, duplicated or corrupted"));
    }
    if frames_after != frames_before {
        fail(format_args!(
            "kernel memory {frames_before} -> {frames_after} frames"
        ));
    }
    println!("stress: done");
    kdb::enter("exit-success");
}
