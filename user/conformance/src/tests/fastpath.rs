//! The IPC fast path (issue 12, kernel/src/fastpath.rs) and lazy FPU switching: the common
//! case (untyped Call / ReplyWait to a waiting partner, Ipc and Lipc, 0..63 words) and every
//! guard that must send an IPC to the general path, each with the outcome the general path
//! gives: a finite and a zero receive timeout, a string item, a map item, a propagated
//! message, a higher-priority thread ready, a halted partner, a partner that is not waiting,
//! another ready thread of the caller's priority (the ready-queue hand-over does not apply).
//! FPU/SSE registers survive IPC between threads that use them, and a thread created in the
//! slot of a deleted FPU owner starts with clean registers. Each check function starts its own
//! echo server and parked thread ([`setup`]: ids, UTCB slots and stacks from its [`Cx`]).

use core::sync::atomic::{AtomicU64, Ordering};

use abi::items::{MapItem, simple_string};
use abi::{Fpage, MsgTag, Rights, ThreadId, Time, Timeouts};
use l4::{msg, syscall, thread, utcb};

use super::util::{self, set_prio};
use crate::conformance::{Check, Cx, start_local};

/// Echo server's behaviour (see [`echo`]).
static MODE: AtomicU64 = AtomicU64::new(ECHO);
const ECHO: u64 = 0;
const SILENT: u64 = 1;
/// After the next message: a closed receive from the parked thread for 20 ms, then echo.
const BUSY: u64 = 2;

/// What the echo server saw last: tag, from, ActualSender, ErrorCode (0: none), MR1, count.
static LAST: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
/// Order of events in the priority check: each thread shifts in its letter.
static ORDER: AtomicU64 = AtomicU64::new(0);
/// The echo server's xmm0 after the previous round (FPU check).
static ECHO_XMM: AtomicU64 = AtomicU64::new(0);
/// xmm0 of a thread created in the slot of a deleted FPU owner.
static FRESH_XMM: AtomicU64 = AtomicU64::new(u64::MAX);

const ECHO_LABEL: u64 = 0xEC;
const FPU_LABEL: u64 = 0xF9;

/// The running check's echo server and parked thread (raw ids, set by [`setup`]).
static ECHO_ID: AtomicU64 = AtomicU64::new(0);
static PARKED_ID: AtomicU64 = AtomicU64::new(0);

fn ids() -> (ThreadId, ThreadId) {
    (
        ThreadId::from_raw(ECHO_ID.load(Ordering::SeqCst)),
        ThreadId::from_raw(PARKED_ID.load(Ordering::SeqCst)),
    )
}

fn push_order(c: u8) {
    let o = ORDER.load(Ordering::SeqCst);
    ORDER.store((o << 8) | c as u64, Ordering::SeqCst);
}

fn xmm0_set(v: u64) {
    // SAFETY: only this thread's xmm0 is written.
    unsafe { core::arch::asm!("movq xmm0, {}", in(reg) v, out("xmm0") _) };
}

fn xmm0_get() -> u64 {
    let v;
    // SAFETY: only this thread's xmm0 is read.
    unsafe { core::arch::asm!("movq {}, xmm0", out(reg) v) };
    v
}

/// Echo server: answers every message with label [`ECHO_LABEL`], the same untyped count and
/// each word + 1 (ReplyWait: the common case of the fast path); records what it got. With
/// label [`FPU_LABEL`] it also loads its own pattern into xmm0 and records what xmm0 held.
extern "C" fn echo() -> ! {
    let mut r = msg::wait();
    loop {
        let (from, tag) = match r {
            Ok(x) => x,
            Err(_) => {
                LAST[3].store(utcb::error_code(), Ordering::SeqCst);
                LAST[5].fetch_add(1, Ordering::SeqCst);
                r = msg::wait();
                continue;
            }
        };
        push_order(b'E');
        LAST[0].store(tag.raw(), Ordering::SeqCst);
        LAST[1].store(from.raw(), Ordering::SeqCst);
        LAST[2].store(utcb::actual_sender().raw(), Ordering::SeqCst);
        LAST[3].store(0, Ordering::SeqCst);
        LAST[4].store(utcb::mr(1), Ordering::SeqCst);
        LAST[5].fetch_add(1, Ordering::SeqCst);
        if tag.label() == FPU_LABEL {
            ECHO_XMM.store(xmm0_get(), Ordering::SeqCst);
            xmm0_set(0xEC40_0000_0000_0000 | utcb::mr(1));
        }
        match MODE.load(Ordering::SeqCst) {
            SILENT => {
                r = msg::wait();
                continue;
            }
            BUSY => {
                MODE.store(ECHO, Ordering::SeqCst);
                let _ = msg::receive_timeout(ids().1, Time::period_micros(20_000));
                r = msg::wait();
                continue;
            }
            _ => {}
        }
        let u = tag.untyped() as usize;
        let mut w = [0u64; 64];
        utcb::mrs(1, &mut w[..u]);
        for x in w[..u].iter_mut() {
            *x = x.wrapping_add(1);
        }
        utcb::set_mrs(1, &w[..u]);
        utcb::set_mr(0, MsgTag::new(ECHO_LABEL, u as u64, 0).raw());
        r = msg::reply_wait(from);
    }
}

/// Runs first when made ready with a higher priority than the echo server: notes it, parks.
extern "C" fn high() -> ! {
    push_order(b'H');
    util::park()
}

/// Parked: a thread of our space for closed receives and virtual senders.
extern "C" fn parked() -> ! {
    util::park()
}

/// Hand-over check, the caller: Calls the echo server (waiting, same priority) while
/// [`sibling`] is ready at that priority too; notes 'X' before and 'x' after.
extern "C" fn caller_x() -> ! {
    push_order(b'X');
    let (e, _) = ids();
    utcb::set_mr(0, MsgTag::new(0x28, 0, 0).raw());
    let _ = syscall::ipc(e, e, Timeouts::NEVER);
    push_order(b'x');
    util::park()
}

/// Hand-over check: a ready thread of the caller's priority; notes 'Y' and parks.
extern "C" fn sibling() -> ! {
    push_order(b'Y');
    util::park()
}

/// Loads a pattern into xmm0 (taking the FPU registers) and parks.
extern "C" fn fpu_owner() -> ! {
    xmm0_set(0xDEAD_BEEF_0000_0001);
    push_order(b'F');
    util::park()
}

/// Reports what xmm0 holds when it starts.
extern "C" fn fpu_fresh() -> ! {
    FRESH_XMM.store(xmm0_get(), Ordering::SeqCst);
    util::park()
}

/// A Call of `u` words (MR i = base + i) to `to` by `lipc` or Ipc; true if the reply echoes.
fn echo_call(to: ThreadId, u: usize, lipc: bool) -> Result<(), u64> {
    let base = 0x1000 * u as u64;
    let w: [u64; 63] = core::array::from_fn(|i| base + i as u64 + 1);
    utcb::set_mrs(1, &w[..u]);
    utcb::set_mr(0, MsgTag::new(0x11, u as u64, 0).raw());
    let r = if lipc {
        syscall::lipc(to, to, Timeouts::NEVER)
    } else {
        syscall::ipc(to, to, Timeouts::NEVER)
    };
    if r.tag.error() {
        return Err(utcb::error_code());
    }
    let mut got = [0u64; 63];
    utcb::mrs(1, &mut got[..u]);
    let ok = r.tag.label() == ECHO_LABEL
        && r.tag.untyped() as usize == u
        && got[..u].iter().zip(&w[..u]).all(|(g, s)| *g == s + 1);
    if ok { Ok(()) } else { Err(0xBAD) }
}

fn count() -> u64 {
    LAST[5].load(Ordering::SeqCst)
}

/// Label of the last message the echo took without error.
fn label() -> u64 {
    MsgTag::from_raw(LAST[0].load(Ordering::SeqCst)).label()
}

/// Starts the echo server and the parked thread (ids, UTCB slots and stacks from `cx`,
/// priority 100) with us at 255 and the shared state cleared, and lets the echo reach its
/// first (general path) receive. With `warm`, one Call answered first, so that the echo waits
/// in its ReplyWait, where the fast path finds it (each guard below must send the IPC from
/// there to the general path). A failure is reported as check `name`.
fn setup(cx: &mut Cx, name: &str, warm: bool) -> Option<(ThreadId, ThreadId)> {
    set_prio(utcb::my_global_id(), 255);
    MODE.store(ECHO, Ordering::SeqCst);
    for w in LAST.iter() {
        w.store(0, Ordering::SeqCst);
    }
    ORDER.store(0, Ordering::SeqCst);
    ECHO_XMM.store(0, Ordering::SeqCst);
    let e = cx.spawn_local(Some(100), echo);
    let h = if e.is_nil() {
        ThreadId::NIL
    } else {
        cx.spawn_local(Some(100), parked)
    };
    if h.is_nil() {
        cx.check(
            name,
            false,
            format_args!("helpers: error {}", utcb::error_code()),
        );
        return None;
    }
    ECHO_ID.store(e.raw(), Ordering::SeqCst);
    PARKED_ID.store(h.raw(), Ordering::SeqCst);
    msg::sleep(Time::period_micros(2000));
    if warm && let Err(code) = echo_call(e, 1, false) {
        cx.check(name, false, format_args!("warm-up call: error {code:#x}"));
        return None;
    }
    Some((e, h))
}

/// The check functions (each with its own echo server from [`setup`]).
pub const CHECKS: &[Check] = &[
    Check {
        name: "fastpath.helpers",
        run: helpers,
    },
    Check {
        name: "fastpath.call_reply_wait_0_to_63_words_ipc_and_lipc",
        run: call_reply_wait,
    },
    Check {
        name: "fastpath.fpu_registers_survive_ipc",
        run: fpu_registers_survive_ipc,
    },
    Check {
        name: "fastpath.finite_receive_timeout_expires",
        run: finite_receive_timeout,
    },
    Check {
        name: "fastpath.zero_receive_timeout_falls_back",
        run: zero_receive_timeout,
    },
    Check {
        name: "fastpath.string_item_falls_back",
        run: string_item,
    },
    Check {
        name: "fastpath.map_item_falls_back",
        run: map_item,
    },
    Check {
        name: "fastpath.propagation_falls_back",
        run: propagation,
    },
    Check {
        name: "fastpath.higher_priority_ready_runs_first",
        run: higher_priority_ready,
    },
    Check {
        name: "fastpath.halted_partner_falls_back",
        run: halted_partner,
    },
    Check {
        name: "fastpath.partner_not_waiting_queues",
        run: partner_not_waiting,
    },
    Check {
        name: "fastpath.handover_same_priority_ready_keeps_round_robin",
        run: handover_keeps_round_robin,
    },
    Check {
        name: "fastpath.fpu_owner_deleted_new_thread_starts_clean",
        run: fpu_owner_deleted,
    },
];

/// The echo server and the parked thread start.
fn helpers(cx: &mut Cx) {
    if setup(cx, "fastpath.helpers", false).is_some() {
        cx.check("fastpath.helpers", true, format_args!(""));
    }
}

/// The common case, every word count, by global id (Ipc) and local id (Lipc); the first
/// Call finds the echo in its first receive (general path), the others in its ReplyWait.
fn call_reply_wait(cx: &mut Cx) {
    const NAME: &str = "fastpath.call_reply_wait_0_to_63_words_ipc_and_lipc";
    let Some((e, _)) = setup(cx, NAME, false) else {
        return;
    };
    let le = thread::local_id_of(e);
    let mut bad = None;
    for u in [0usize, 1, 7, 8, 9, 63] {
        for lipc in [false, true] {
            if let Err(code) = echo_call(if lipc { le } else { e }, u, lipc) {
                bad.get_or_insert((u, lipc, code));
            }
        }
    }
    cx.check(
        NAME,
        bad.is_none(),
        format_args!("first failure (words, lipc, error): {bad:?}"),
    );
}

/// FPU/SSE registers survive IPC between two threads that both use them (lazy switching).
fn fpu_registers_survive_ipc(cx: &mut Cx) {
    const NAME: &str = "fastpath.fpu_registers_survive_ipc";
    let Some((e, _)) = setup(cx, NAME, true) else {
        return;
    };
    for i in 1..=20u64 {
        let mine = 0x5A5A_0000_0000_0000 | i;
        xmm0_set(mine);
        utcb::set_mr(1, i);
        utcb::set_mr(0, MsgTag::new(FPU_LABEL, 1, 0).raw());
        let r = syscall::ipc(e, e, Timeouts::NEVER);
        let after = xmm0_get();
        let theirs = ECHO_XMM.load(Ordering::SeqCst);
        let want_theirs = if i == 1 {
            theirs
        } else {
            0xEC40_0000_0000_0000 | (i - 1)
        };
        if r.tag.error() || after != mine || theirs != want_theirs {
            cx.check(
                NAME,
                false,
                format_args!("round {i}: ours {after:#x} (want {mine:#x}), echo's {theirs:#x}"),
            );
            return;
        }
    }
    cx.check(NAME, true, format_args!(""));
}

/// Guard: finite receive timeout. The partner takes the message and does not answer: the
/// caller, blocked by the fast path with a timer, wakes with a receive timeout (3).
fn finite_receive_timeout(cx: &mut Cx) {
    const NAME: &str = "fastpath.finite_receive_timeout_expires";
    let Some((e, _)) = setup(cx, NAME, true) else {
        return;
    };
    MODE.store(SILENT, Ordering::SeqCst);
    let c0 = count();
    utcb::set_mr(0, MsgTag::new(0x21, 0, 0).raw());
    let r = syscall::ipc(e, e, Timeouts::new(Time::NEVER, Time::period_micros(5000)));
    let ec = utcb::error_code();
    // The echo has the message, but on a loaded host our timeout may fire before it ran to
    // count it (seen once in ten loaded runs): wait for the count (bounded), not for a window.
    util::wait_until(|| count() > c0);
    cx.check(
        NAME,
        // The partner took the message; it counts it when it next runs, which a loaded host
        // may delay past the 5 ms timeout: wait for the count itself.
        r.tag.error() && ec & 0xF == 3 && util::wait_until(|| count() == c0 + 1),
        format_args!(
            "error {} code {ec:#x}, delivered {}",
            r.tag.error(),
            count() - c0
        ),
    );
    MODE.store(ECHO, Ordering::SeqCst);
}

/// Guard: zero receive timeout (general path): the message is delivered, the receive phase
/// fails at once with a timeout; the echo's reply then finds nobody waiting.
fn zero_receive_timeout(cx: &mut Cx) {
    const NAME: &str = "fastpath.zero_receive_timeout_falls_back";
    let Some((e, _)) = setup(cx, NAME, true) else {
        return;
    };
    let c0 = count();
    utcb::set_mr(0, MsgTag::new(0x22, 0, 0).raw());
    let r = syscall::ipc(e, e, Timeouts::new(Time::NEVER, Time::ZERO));
    let ec = utcb::error_code();
    util::wait_until(|| count() > c0 && label() == 0x22);
    cx.check(
        NAME,
        r.tag.error()
            && ec & 0xF == 3
            && MsgTag::from_raw(LAST[0].load(Ordering::SeqCst)).label() == 0x22,
        format_args!("error {} code {ec:#x}", r.tag.error()),
    );
}

static SRC: [u8; 64] = [7; 64];

/// Guard: a string item to a receiver without string buffers: message overflow (4) in the
/// send phase for us, in the receive phase for it.
fn string_item(cx: &mut Cx) {
    const NAME: &str = "fastpath.string_item_falls_back";
    let Some((e, _)) = setup(cx, NAME, true) else {
        return;
    };
    let c0 = count();
    let words = simple_string(64, SRC.as_ptr() as u64);
    utcb::set_br(0, 0);
    utcb::set_mrs(1, &words);
    utcb::set_mr(0, MsgTag::new(0x23, 0, words.len() as u64).raw());
    let r = syscall::ipc(
        e,
        e,
        Timeouts::new(Time::NEVER, Time::period_micros(50_000)),
    );
    let ec = utcb::error_code();
    util::wait_until(|| count() > c0);
    let theirs = LAST[3].load(Ordering::SeqCst);
    cx.check(
        NAME,
        r.tag.error() && ec & 0xF == 4 << 1 && theirs & 0xF == (4 << 1) | 1,
        format_args!("ours {ec:#x}, echo's {theirs:#x}"),
    );
}

/// Guard: a map item (general path). The echo accepts no mappings (nil receive window):
/// message overflow (4) for both parties (spec 2.4, issue 14), as for the string item.
fn map_item(cx: &mut Cx) {
    const NAME: &str = "fastpath.map_item_falls_back";
    let Some((e, _)) = setup(cx, NAME, true) else {
        return;
    };
    let c0 = count();
    let page = &raw const SRC as u64 & !0xFFF;
    let m = MapItem::new(Fpage::new_log2(page, 12).with_rights(Rights::R), 0).to_words(false);
    utcb::set_mr(1, 0x4D41_5050);
    utcb::set_mr(2, m[0]);
    utcb::set_mr(3, m[1]);
    utcb::set_mr(0, MsgTag::new(0x24, 1, 2).raw());
    let r = syscall::ipc(
        e,
        e,
        Timeouts::new(Time::NEVER, Time::period_micros(500_000)),
    );
    let ec = utcb::error_code();
    util::wait_until(|| count() > c0);
    let theirs = LAST[3].load(Ordering::SeqCst);
    cx.check(
        NAME,
        r.tag.error() && ec & 0xF == 4 << 1 && theirs & 0xF == (4 << 1) | 1,
        format_args!("ours {ec:#x}, echo's {theirs:#x}"),
    );
}

/// Guard: propagation. Sent on behalf of the parked thread (our space): the echo sees it as
/// the sender and us as ActualSender (its answer to the parked thread fails).
fn propagation(cx: &mut Cx) {
    const NAME: &str = "fastpath.propagation_falls_back";
    let Some((e, h)) = setup(cx, NAME, true) else {
        return;
    };
    let me = utcb::my_global_id();
    let c0 = count();
    utcb::set_virtual_sender(h);
    utcb::set_mr(0, MsgTag::new(0x25, 0, 0).with_propagated(true).raw());
    let r = syscall::ipc(e, ThreadId::NIL, Timeouts::NEVER);
    util::wait_until(|| count() > c0 && label() == 0x25);
    let from = ThreadId::from_raw(LAST[1].load(Ordering::SeqCst));
    let actual = ThreadId::from_raw(LAST[2].load(Ordering::SeqCst));
    cx.check(
        NAME,
        !r.tag.error()
            && (from == h || from == thread::local_id_of(h))
            && (actual == me || actual == utcb::my_local_id()),
        format_args!("from {:#x}, actual sender {:#x}", from.raw(), actual.raw()),
    );
}

/// Guard: a higher-priority thread ready. Ours (255) > it (150) > echo (100): when we block
/// in the Call, it runs before the echo.
fn higher_priority_ready(cx: &mut Cx) {
    const NAME: &str = "fastpath.higher_priority_ready_runs_first";
    let Some((e, _)) = setup(cx, NAME, true) else {
        return;
    };
    ORDER.store(0, Ordering::SeqCst);
    let hi = cx.spawn_local(Some(150), high);
    let ok = !hi.is_nil();
    let r = echo_call(e, 2, false);
    let order = ORDER.load(Ordering::SeqCst);
    cx.check(
        NAME,
        ok && r.is_ok() && order == ((b'H' as u64) << 8 | b'E' as u64),
        format_args!("spawned {ok}, call {r:?}, order {order:#x} (want H then E)"),
    );
}

/// Guard: a halted partner. The message is delivered (general path) but the echo runs only
/// once resumed (its answer then finds nobody waiting: counted too).
fn halted_partner(cx: &mut Cx) {
    const NAME: &str = "fastpath.halted_partner_falls_back";
    let Some((e, _)) = setup(cx, NAME, true) else {
        return;
    };
    let c0 = count();
    ORDER.store(0, Ordering::SeqCst);
    let halt = syscall::ExregsState {
        control: (1 << 8) | 1,
        ..Default::default()
    };
    syscall::exchange_registers(e, halt);
    utcb::set_mr(0, MsgTag::new(0x26, 0, 0).raw());
    let r = syscall::ipc(e, ThreadId::NIL, Timeouts::NEVER);
    msg::sleep(Time::period_micros(5000));
    let before = count();
    let resume = syscall::ExregsState {
        control: 1 << 8,
        ..Default::default()
    };
    syscall::exchange_registers(e, resume);
    util::wait_until(|| count() > c0 && label() == 0x26);
    cx.check(
        NAME,
        !r.tag.error()
            && before == c0
            && count() > c0
            && MsgTag::from_raw(LAST[0].load(Ordering::SeqCst)).label() == 0x26,
        format_args!(
            "error {}, ran while halted {}, after resume {}",
            r.tag.error(),
            before - c0,
            count() - c0
        ),
    );
}

/// Guard: the partner is not waiting for us (in a closed receive from another thread): the
/// Call queues; the partner takes it when it receives again and answers.
fn partner_not_waiting(cx: &mut Cx) {
    const NAME: &str = "fastpath.partner_not_waiting_queues";
    let Some((e, _)) = setup(cx, NAME, true) else {
        return;
    };
    MODE.store(BUSY, Ordering::SeqCst);
    utcb::set_mr(0, MsgTag::new(0x27, 0, 0).raw());
    let _ = syscall::ipc(e, ThreadId::NIL, Timeouts::NEVER);
    let st = util::state_of(e);
    let r = echo_call(e, 3, false);
    cx.check(
        NAME,
        r.is_ok(),
        format_args!("call {r:?}, echo state before {st:#x}"),
    );
}

/// Guard of the ready-queue hand-over (`schedule::wake_handing_over`): the caller is not the
/// only ready thread of its priority, so the partner is queued behind the other one (round
/// robin), as the general path does: X calls, Y runs, then the echo, then X again.
fn handover_keeps_round_robin(cx: &mut Cx) {
    const NAME: &str = "fastpath.handover_same_priority_ready_keeps_round_robin";
    if setup(cx, NAME, true).is_none() {
        return;
    }
    ORDER.store(0, Ordering::SeqCst);
    let ok = !cx.spawn_local(Some(100), caller_x).is_nil()
        && !cx.spawn_local(Some(100), sibling).is_nil();
    util::wait_until(|| ORDER.load(Ordering::SeqCst) & 0xFF == b'x' as u64);
    let o = ORDER.load(Ordering::SeqCst);
    let want = u64::from_be_bytes([0, 0, 0, 0, b'X', b'Y', b'E', b'x']);
    cx.check(
        NAME,
        ok && o == want,
        format_args!("spawned {ok}, order {o:#x} (want {want:#x})"),
    );
}

/// Lazy FPU and deletion: a thread created in the UTCB slot of the deleted FPU owner starts
/// with clean registers, not the owner's.
fn fpu_owner_deleted(cx: &mut Cx) {
    const NAME: &str = "fastpath.fpu_owner_deleted_new_thread_starts_clean";
    set_prio(utcb::my_global_id(), 255);
    let (f1, f2, loc) = (cx.thread(), cx.thread(), cx.slot());
    let (sp1, sp2) = (cx.stack(), cx.stack());
    ORDER.store(0, Ordering::SeqCst);
    let ok1 = start_local(f1, loc, sp1, Some(100), fpu_owner);
    util::wait_until(|| ORDER.load(Ordering::SeqCst) == b'F' as u64);
    util::kill(f1);
    FRESH_XMM.store(u64::MAX, Ordering::SeqCst);
    let ok2 = start_local(f2, loc, sp2, Some(100), fpu_fresh);
    util::wait_until(|| FRESH_XMM.load(Ordering::SeqCst) != u64::MAX);
    let x = FRESH_XMM.load(Ordering::SeqCst);
    cx.check(
        NAME,
        ok1 && ok2 && x == 0,
        format_args!("spawned {ok1}/{ok2}, xmm0 of the new thread {x:#x}"),
    );
}
