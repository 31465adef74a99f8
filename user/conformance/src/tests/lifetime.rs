//! Lifetimes of threads in IPC (issue 11): the cases where one party of a message is timed out,
//! aborted or deleted while the other still works on the message. Each scenario once crashed,
//! hung or corrupted the kernel:
//!
//! * **send timeout after the message was taken** — a receiver takes a queued sender's message
//!   and faults in its own receive buffer; its pager is that very sender, which never answers.
//!   The sender's send timeout must no longer fire (the transfer has started), and an
//!   ExchangeRegisters abort or a deletion of the sender must end the transfer cleanly
//!   (the kernel once followed a cleared partner pointer in each of the three cases);
//! * **double wake-up** — the sender waits for its own pager during a string copy while the
//!   receiver's receive timeout passes: the receiver must get the message once, not a timeout
//!   first and a false success in its next IPC later;
//! * **deletion during a tunnelled fault** — the receiver sends a fault of its buffer to its
//!   pager for the sender's copy, and one of the two is deleted meanwhile: the other returns
//!   with an error (the kernel once wrote the freed receiver or read the freed sender).
//!
//! All threads run in the root's space; each check function takes its threads, UTCB slots,
//! stacks and fault windows from its [`Cx`].

use core::sync::atomic::{AtomicU64, Ordering};

use abi::items::{MapItem, StringHeader, simple_string};
use abi::msgtag::labels;
use abi::syscall_args::ScheduleResult;
use abi::{Fpage, MsgTag, Rights, ThreadId, Time, Timeouts, XferTimeouts};
use l4::syscall::{self, ExregsState};
use l4::{msg, utcb};

use super::util::{self, kill, root, sleep_us, state_of, wait_until};
use crate::conformance::{Check, Cx, start_local};

const ROLES: usize = 4;

/// The check functions; each starts from [`setup`] (the pattern pages).
pub const CHECKS: &[Check] = &[
    Check {
        name: "lifetime.taken_sender_timeout",
        run: |cx| taken_sender(cx, 0),
    },
    Check {
        name: "lifetime.taken_sender_abort",
        run: |cx| taken_sender(cx, 1),
    },
    Check {
        name: "lifetime.taken_sender_delete",
        run: |cx| taken_sender(cx, 2),
    },
    Check {
        name: "lifetime.double_wakeup",
        run: double_wakeup,
    },
    Check {
        name: "lifetime.tunnel_receiver_deleted",
        run: |cx| deleted_in_tunnel(cx, true),
    },
    Check {
        name: "lifetime.tunnel_sender_deleted",
        run: |cx| deleted_in_tunnel(cx, false),
    },
    Check {
        name: "lifetime.timeouts_in_one_tick",
        run: timeouts_in_one_tick,
    },
    Check {
        name: "lifetime.closed_receivers_of_deleted_thread",
        run: closed_receivers_of_deleted_thread,
    },
    Check {
        name: "lifetime.timeouts_expire_in_deadline_order",
        run: timeouts_expire_in_order,
    },
];

#[repr(C, align(4096))]
struct Page([u8; 4096]);
/// Source of every string sent here (mapped, filled with a pattern).
static mut SRC: Page = Page([0; 4096]);
/// A mapped receive buffer.
static mut DST: Page = Page([0; 4096]);
/// The page the pagers map at a fault address (same pattern as `SRC`).
static mut POOL: Page = Page([0; 4096]);

/// Receive buffers in a fresh range of the check ([`Cx::range`]) fault; source strings there
/// fault and are served by the holding pager (which maps `POOL`).
const LEN: u64 = 64;

/// Results of a role: ErrorCode (0 = success) and how many IPCs returned.
struct Role {
    err: AtomicU64,
    done: AtomicU64,
    armed: AtomicU64,
    sum: AtomicU64,
    mark: AtomicU64,
}

impl Role {
    const fn new() -> Self {
        Role {
            err: AtomicU64::new(0),
            done: AtomicU64::new(0),
            armed: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            mark: AtomicU64::new(0),
        }
    }
    fn reset(&self) {
        for a in [&self.err, &self.done, &self.armed, &self.sum, &self.mark] {
            a.store(0, Ordering::SeqCst);
        }
    }
    fn record(&self, r: syscall::IpcResult) {
        self.err.store(
            if r.tag.error() { utcb::error_code() } else { 0 },
            Ordering::SeqCst,
        );
        self.done.fetch_add(1, Ordering::SeqCst);
    }
    fn err(&self) -> u64 {
        self.err.load(Ordering::SeqCst)
    }
    fn done(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }
}

static SENDER: Role = Role::new();
static RECEIVER: Role = Role::new();
/// Fault address the holding pager received (0: none yet).
static PAGER_FAULT: AtomicU64 = AtomicU64::new(0);
/// Outcome of the holding pager's last answer (1 = delivered, else ErrorCode << 8).
static PAGER_REPLY: AtomicU64 = AtomicU64::new(0);

fn pattern(i: u64) -> u8 {
    (i * 13 + 5) as u8
}

fn buffer_sum(addr: u64) -> u64 {
    (0..LEN).fold(0u64, |s, i| {
        // SAFETY: a mapped buffer of ours, just written by a string transfer.
        let b = unsafe { core::ptr::read_volatile((addr + i) as *const u8) };
        s.wrapping_add(b as u64 * (i + 1))
    })
}

/// Sender: waits for the root's order (MR1 = receiver, MR2 = send timeout in µs, 0 = never,
/// MR3 = source address), then sends one string of `LEN` bytes.
extern "C" fn sender() -> ! {
    loop {
        if msg::receive(root()).is_err() {
            continue;
        }
        let (to, us, src) = (ThreadId::from_raw(utcb::mr(1)), utcb::mr(2), utcb::mr(3));
        let timeout = if us == 0 {
            Time::NEVER
        } else {
            Time::period_micros(us)
        };
        utcb::set_mrs(1, &simple_string(LEN, src));
        utcb::set_mr(0, MsgTag::new(0x11, 0, 2).raw());
        SENDER.armed.store(1, Ordering::SeqCst);
        let r = syscall::ipc(to, ThreadId::NIL, Timeouts::new(timeout, Time::NEVER));
        SENDER.record(r);
    }
}

/// Receiver: waits for the root's order (MR1 = sender, MR2 = receive timeout in µs, 0 =
/// never, MR3 = buffer address, MR4 = XferTimeouts), receives one string from the sender
/// into the buffer, then serves the root: every later message from the root is counted and
/// its MR1 kept as `mark`.
extern "C" fn receiver() -> ! {
    while msg::receive(root()).is_err() {}
    let (from, us, buf, xfer) = (
        ThreadId::from_raw(utcb::mr(1)),
        utcb::mr(2),
        utcb::mr(3),
        utcb::mr(4),
    );
    let timeout = if us == 0 {
        Time::NEVER
    } else {
        Time::period_micros(us)
    };
    utcb::set_xfer_timeouts(XferTimeouts(xfer));
    utcb::set_br(0, 1);
    utcb::set_br(1, StringHeader::new(LEN, 1).0);
    utcb::set_br(2, buf);
    RECEIVER.armed.store(1, Ordering::SeqCst);
    let r = syscall::ipc(ThreadId::NIL, from, Timeouts::new(Time::NEVER, timeout));
    if !r.tag.error() {
        RECEIVER.sum.store(buffer_sum(buf), Ordering::SeqCst);
    }
    RECEIVER.record(r);
    utcb::set_br(0, 0);
    loop {
        let r = syscall::ipc(ThreadId::NIL, root(), Timeouts::NEVER);
        RECEIVER.mark.store(utcb::mr(1), Ordering::SeqCst);
        RECEIVER.record(r);
    }
}

/// A pager that holds each fault until the root releases it (any message from the root),
/// then maps `POOL` at the fault address and answers.
extern "C" fn holding_pager() -> ! {
    loop {
        let Ok((from, tag)) = msg::wait() else {
            continue;
        };
        if tag.label() & !0xF != labels::PAGE_FAULT {
            continue;
        }
        let addr = utcb::mr(1) & !0xFFF;
        PAGER_FAULT.store(utcb::mr(1) | 1, Ordering::SeqCst);
        while msg::receive(root()).is_err() {}
        let pool = &raw const POOL as u64;
        let w =
            MapItem::new(Fpage::new_log2(pool, 12).with_rights(Rights::FULL), addr).to_words(false);
        utcb::set_mrs(1, &w);
        utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
        let r = msg::send_timeout(from, Time::ZERO);
        PAGER_REPLY.store(
            if r.is_ok() {
                1
            } else {
                utcb::error_code() << 8
            },
            Ordering::SeqCst,
        );
    }
}

/// Lets the holding pager answer its fault (an empty message).
fn release(pager: ThreadId) -> Result<(), msg::IpcFailure> {
    utcb::set_mr(0, MsgTag::new(0, 0, 0).raw());
    msg::send_timeout(pager, Time::period_micros(1_000_000))
}

/// The threads of one scenario: sender, receiver, a holding pager, with their UTCB
/// locations and stacks (from the check's [`Cx`]).
struct Cast {
    sender: ThreadId,
    receiver: ThreadId,
    pager: ThreadId,
    locs: [u64; 3],
    sps: [u64; 3],
}

impl Cast {
    fn new(cx: &mut Cx) -> Self {
        Cast {
            sender: cx.thread(),
            receiver: cx.thread(),
            pager: cx.thread(),
            locs: [cx.slot(), cx.slot(), cx.slot()],
            sps: [cx.stack(), cx.stack(), cx.stack()],
        }
    }

    /// Creates the threads: `receiver_pager` / `sender_pager` choose each one's pager.
    fn spawn(&self, sender_pager: ThreadId, receiver_pager: ThreadId) -> bool {
        SENDER.reset();
        RECEIVER.reset();
        PAGER_FAULT.store(0, Ordering::SeqCst);
        util::prepare();
        let mut ok = true;
        for (i, (t, f, pager)) in [
            (self.pager, holding_pager as extern "C" fn() -> !, root()),
            (self.sender, sender, sender_pager),
            (self.receiver, receiver, receiver_pager),
        ]
        .into_iter()
        .enumerate()
        {
            ok &= spawn_local(t, self.locs[i], self.sps[i], f, pager);
        }
        ok
    }

    fn kill(&self) {
        for t in [self.receiver, self.sender, self.pager] {
            kill(t);
        }
    }

    /// Orders the receiver to receive from the sender; returns once it is in that receive
    /// (`state`: the state it is expected in then).
    fn start_receiver(&self, timeout_us: u64, buf: u64, xfer: u64, state: ScheduleResult) -> bool {
        utcb::set_mrs(1, &[self.sender.raw(), timeout_us, buf, xfer]);
        utcb::set_mr(0, MsgTag::new(0, 4, 0).raw());
        msg::send(self.receiver).is_ok()
            && wait_until(|| {
                RECEIVER.armed.load(Ordering::SeqCst) == 1
                    && state_of(self.receiver) & 7 == state as u64
            })
    }

    /// Orders the sender to send its string.
    fn start_sender(&self, timeout_us: u64, src: u64) -> bool {
        utcb::set_mrs(1, &[self.receiver.raw(), timeout_us, src]);
        utcb::set_mr(0, MsgTag::new(0, 3, 0).raw());
        msg::send(self.sender).is_ok() && wait_until(|| SENDER.armed.load(Ordering::SeqCst) == 1)
    }
}

/// Creates `id` in the root's space with `pager`, its UTCB at `loc`, and starts it at `f`.
fn spawn_local(id: ThreadId, loc: u64, sp: u64, f: extern "C" fn() -> !, pager: ThreadId) -> bool {
    let me = root();
    if syscall::thread_control(id, me, me, pager, loc) != 1 {
        return false;
    }
    l4::thread::start(id, sp, util::entry(f));
    true
}

/// Writes the pattern pages (every check starts with it; idempotent).
fn setup() {
    for i in 0..4096u64 {
        // SAFETY: our pages, written before any thread of the check runs.
        unsafe {
            (&raw mut SRC as *mut u8).add(i as usize).write(pattern(i));
            (&raw mut POOL as *mut u8).add(i as usize).write(pattern(i));
        }
    }
    // SAFETY: as above.
    unsafe { (&raw mut DST as *mut u8).write(0) };
}

/// Is `code` an IPC error of `phase` (0 send, 1 receive) with one of `codes`?
fn is_error(code: u64, phase: u64, codes: &[u64]) -> bool {
    code & 1 == phase && codes.contains(&((code >> 1) & 7))
}

/// The receiver's pager is the sender; the sender's message is taken from the queue and the
/// receiver faults. `how`: 0 = the sender's send timeout passes, 1 = ExchangeRegisters aborts
/// the sender, 2 = the sender is deleted.
fn taken_sender(s: &mut Cx, how: u64) {
    setup();
    let name = ["timeout", "abort", "delete"][how as usize];
    let cast = Cast::new(s);
    let hole = s.range(12);
    let src = &raw const SRC as u64;
    let ok = cast.spawn(root(), cast.sender);
    // The sender queues first (the receiver still waits for the root)...
    let (send_us, xfer) = if how == 0 {
        (30_000, Time::period_micros(200_000).raw() as u64)
    } else {
        (5_000_000, 0)
    };
    let queued = ok
        && cast.start_sender(send_us, src)
        && wait_until(|| state_of(cast.sender) & 7 == ScheduleResult::PendingSend as u64);
    // ...then the receiver takes its message and faults in its buffer: a fault IPC to its
    // pager, the sender.
    let faulting = queued && cast.start_receiver(0, hole, xfer, ScheduleResult::PendingSend);
    s.check(
        &alloc_name("lifetime.taken_sender_", name, ".setup"),
        faulting,
        format_args!(
            "spawned {ok} queued {queued} sender {} receiver {}",
            state_of(cast.sender),
            state_of(cast.receiver)
        ),
    );
    if !faulting {
        return cast.kill();
    }
    match how {
        0 => sleep_us(60_000), // the sender's send timeout (30 ms) passes
        1 => {
            syscall::exchange_registers(
                cast.sender,
                ExregsState {
                    control: 6,
                    ..Default::default()
                },
            );
        }
        _ => kill(cast.sender),
    }
    let finished = wait_until(|| RECEIVER.done() == 1 && (how == 2 || SENDER.done() == 1));
    let (se, re) = (SENDER.err(), RECEIVER.err());
    match how {
        0 => s.check(
            "lifetime.taken_sender_timeout.xfer_timeout_not_send_timeout",
            finished && se & 0xF == 0xC && re & 0xF == 0xB,
            format_args!("finished {finished} errors {se:#x}/{re:#x}"),
        ),
        1 => s.check(
            "lifetime.taken_sender_abort.both_aborted",
            finished && se & 0xF == 0xE && re & 0xF == 0xF,
            format_args!("finished {finished} errors {se:#x}/{re:#x}"),
        ),
        _ => s.check(
            "lifetime.taken_sender_delete.receiver_error",
            finished && is_error(re, 1, &[2, 7]),
            format_args!("finished {finished} error {re:#x}"),
        ),
    };
    cast.kill();
    s.check(
        &alloc_name("lifetime.taken_sender_", name, ".deleted"),
        state_of(cast.sender) == 0 && state_of(cast.receiver) == 0,
        format_args!(
            "states {}/{}",
            state_of(cast.sender),
            state_of(cast.receiver)
        ),
    );
}

/// A check name from three parts (the suite takes `&str`; names are short).
fn alloc_name(a: &str, b: &str, c: &str) -> NameBuf {
    let mut n = NameBuf([0; 64], 0);
    for part in [a, b, c] {
        for &byte in part.as_bytes() {
            if n.1 < n.0.len() {
                n.0[n.1] = byte;
                n.1 += 1;
            }
        }
    }
    n
}

struct NameBuf([u8; 64], usize);

impl core::ops::Deref for NameBuf {
    type Target = str;
    fn deref(&self) -> &str {
        core::str::from_utf8(&self.0[..self.1]).unwrap_or("lifetime.?")
    }
}

/// The sender faults on its own source and waits for its (holding) pager while the receiver's
/// receive timeout passes: the transfer has started, so the receiver gets the message, once.
fn double_wakeup(s: &mut Cx) {
    setup();
    let cast = Cast::new(s);
    let window = s.range(12);
    let dst = &raw const DST as u64;
    let ok = cast.spawn(cast.pager, root())
        && cast.start_receiver(50_000, dst, 0, ScheduleResult::Waiting)
        && cast.start_sender(0, window + 0x10)
        && wait_until(|| PAGER_FAULT.load(Ordering::SeqCst) != 0);
    s.check(
        "lifetime.double_wakeup.setup",
        ok,
        format_args!(
            "fault {:#x} receiver {} sender {}",
            PAGER_FAULT.load(Ordering::SeqCst),
            state_of(cast.receiver),
            state_of(cast.sender)
        ),
    );
    if !ok {
        return cast.kill();
    }
    sleep_us(100_000); // the receiver's receive timeout (50 ms) passes
    let released = release(cast.pager).is_ok();
    let finished = released && wait_until(|| SENDER.done() == 1 && RECEIVER.done() >= 1);
    let (se, re, sum) = (
        SENDER.err(),
        RECEIVER.err(),
        RECEIVER.sum.load(Ordering::SeqCst),
    );
    // The pool page carries the pattern from offset 0; the string starts at 0x10.
    let want = (0..LEN).fold(0u64, |acc, i| {
        acc.wrapping_add(pattern(i + 0x10) as u64 * (i + 1))
    });
    s.check(
        "lifetime.double_wakeup.message_arrives",
        finished && se == 0 && re == 0 && sum == want,
        format_args!(
            "finished {finished} errors {se:#x}/{re:#x} sum {sum} want {want} returns {}/{} states {}/{} pager {:#x}",
            SENDER.done(),
            RECEIVER.done(),
            state_of(cast.sender),
            state_of(cast.receiver),
            PAGER_REPLY.load(Ordering::SeqCst)
        ),
    );
    // The receiver now serves the root: one more message must count exactly once more.
    utcb::set_mr(1, 0x4D41_524B);
    utcb::set_mr(0, MsgTag::new(0, 1, 0).raw());
    let sent = msg::send_timeout(cast.receiver, Time::period_micros(1_000_000)).is_ok();
    let seen = sent && wait_until(|| RECEIVER.mark.load(Ordering::SeqCst) == 0x4D41_524B);
    s.check(
        "lifetime.double_wakeup.woken_once",
        seen && RECEIVER.done() == 2,
        format_args!("sent {sent} seen {seen} returns {}", RECEIVER.done()),
    );
    cast.kill();
}

/// The receiver's buffer faults during the sender's copy (tunnelled to the receiver's holding
/// pager); meanwhile one of the two is deleted. `receiver_deleted` chooses which.
fn deleted_in_tunnel(s: &mut Cx, receiver_deleted: bool) {
    setup();
    let cast = Cast::new(s);
    let src = &raw const SRC as u64;
    let buf = s.range(12);
    let ok = cast.spawn(root(), cast.pager)
        && cast.start_receiver(0, buf, 0, ScheduleResult::Waiting)
        && cast.start_sender(0, src)
        && wait_until(|| PAGER_FAULT.load(Ordering::SeqCst) != 0);
    let name = if receiver_deleted {
        "lifetime.tunnel_receiver_deleted"
    } else {
        "lifetime.tunnel_sender_deleted"
    };
    s.check(
        &alloc_name(name, ".setup", ""),
        ok,
        format_args!(
            "fault {:#x} receiver {} sender {}",
            PAGER_FAULT.load(Ordering::SeqCst),
            state_of(cast.receiver),
            state_of(cast.sender)
        ),
    );
    if !ok {
        return cast.kill();
    }
    if receiver_deleted {
        kill(cast.receiver);
        let finished = wait_until(|| SENDER.done() == 1);
        let se = SENDER.err();
        s.check(
            &alloc_name(name, ".sender_error", ""),
            finished && is_error(se, 0, &[2, 7]),
            format_args!(
                "finished {finished} error {se:#x} sender state {}",
                state_of(cast.sender)
            ),
        );
        let _ = release(cast.pager);
    } else {
        kill(cast.sender);
        let _ = release(cast.pager);
        let finished = wait_until(|| RECEIVER.done() == 1);
        let re = RECEIVER.err();
        s.check(
            &alloc_name(name, ".receiver_error", ""),
            finished && is_error(re, 1, &[2, 7]),
            format_args!("finished {finished} error {re:#x}"),
        );
    }
    cast.kill();
    s.check(
        &alloc_name(name, ".all_deleted", ""),
        [cast.sender, cast.receiver, cast.pager]
            .iter()
            .all(|t| state_of(*t) == 0),
        format_args!(
            "states {}/{}/{}",
            state_of(cast.sender),
            state_of(cast.receiver),
            state_of(cast.pager)
        ),
    );
}

static SLEEPERS_WOKEN: AtomicU64 = AtomicU64::new(0);
static SLEEP_UNTIL: AtomicU64 = AtomicU64::new(0);

/// Sleeps until the shared absolute clock value (µs) in `SLEEP_UNTIL`, counts, parks.
extern "C" fn sleeper() -> ! {
    let until = SLEEP_UNTIL.load(Ordering::SeqCst);
    let now = syscall::system_clock();
    msg::sleep(Time::period_micros(until.saturating_sub(now).max(1)));
    SLEEPERS_WOKEN.fetch_add(1, Ordering::SeqCst);
    util::park()
}

/// Several timeouts expire in one timer tick; each expiry wakes (and queues) a thread while the
/// tick walks the timers. Every one of them must wake (the tick once held a borrow of the run
/// queues across these wake-ups).
fn timeouts_in_one_tick(s: &mut Cx) {
    let ts: [ThreadId; ROLES] = core::array::from_fn(|_| s.thread());
    let places: [(u64, u64); ROLES] = core::array::from_fn(|_| (s.slot(), s.stack()));
    SLEEPERS_WOKEN.store(0, Ordering::SeqCst);
    SLEEP_UNTIL.store(syscall::system_clock() + 20_000, Ordering::SeqCst);
    let mut started = 0;
    for i in 0..ROLES {
        started += start_local(ts[i], places[i].0, places[i].1, None, sleeper) as usize;
    }
    let all = wait_until(|| SLEEPERS_WOKEN.load(Ordering::SeqCst) == ROLES as u64);
    s.check(
        "lifetime.timeouts_in_one_tick_all_wake",
        started == ROLES && all,
        format_args!(
            "started {started} woken {}",
            SLEEPERS_WOKEN.load(Ordering::SeqCst)
        ),
    );
}

static TARGET: AtomicU64 = AtomicU64::new(0);
static WAIT_TIMEOUT_US: [AtomicU64; ROLES] = [const { AtomicU64::new(0) }; ROLES];
static WAIT_ERR: [AtomicU64; ROLES] = [const { AtomicU64::new(u64::MAX) }; ROLES];
static WAKE_ORDER: [AtomicU64; ROLES] = [const { AtomicU64::new(0) }; ROLES];
static WAKE_SEQ: AtomicU64 = AtomicU64::new(0);
/// The helpers of the running check, so that each finds its index.
static HELPERS: [AtomicU64; ROLES] = [const { AtomicU64::new(0) }; ROLES];

/// Index of the calling helper in [`HELPERS`].
fn my_index() -> usize {
    let me = utcb::my_global_id().raw();
    (0..ROLES)
        .find(|&i| HELPERS[i].load(Ordering::SeqCst) == me)
        .unwrap_or(0)
}

/// `ROLES` fresh helper ids of the check, recorded in [`HELPERS`], with UTCB slots and stacks.
fn helpers(cx: &mut Cx) -> [(ThreadId, u64, u64); ROLES] {
    core::array::from_fn(|i| {
        let t = cx.thread();
        HELPERS[i].store(t.raw(), Ordering::SeqCst);
        (t, cx.slot(), cx.stack())
    })
}

/// A closed receive from `TARGET` with its own timeout (0: never); records the ErrorCode.
extern "C" fn closed_waiter() -> ! {
    let i = my_index();
    let us = WAIT_TIMEOUT_US[i].load(Ordering::SeqCst);
    let timeout = if us == 0 {
        Time::NEVER
    } else {
        Time::period_micros(us)
    };
    let r = syscall::ipc(
        ThreadId::NIL,
        ThreadId::from_raw(TARGET.load(Ordering::SeqCst)),
        Timeouts::new(Time::NEVER, timeout),
    );
    WAIT_ERR[i].store(
        if r.tag.error() { utcb::error_code() } else { 0 },
        Ordering::SeqCst,
    );
    util::park()
}

/// Several closed receivers wait for one thread (the kernel keeps them in that thread's list);
/// one of them times out first (it leaves the list); deleting the thread ends the others'
/// receives with "non-existing partner".
fn closed_receivers_of_deleted_thread(s: &mut Cx) {
    let hs = helpers(s);
    let x = hs[0].0;
    TARGET.store(x.raw(), Ordering::SeqCst);
    for (i, us) in [0u64, 0, 20_000, 0].iter().enumerate() {
        WAIT_TIMEOUT_US[i].store(*us, Ordering::SeqCst);
        WAIT_ERR[i].store(u64::MAX, Ordering::SeqCst);
    }
    let mut ok = true;
    for (i, &(t, loc, sp)) in hs.iter().enumerate() {
        let f: extern "C" fn() -> ! = if i == 0 { util_park } else { closed_waiter };
        ok &= start_local(t, loc, sp, None, f);
    }
    // Two wait for ever, one times out (and leaves the list), then the target goes.
    let waiting = ok
        && wait_until(|| {
            [1, 3]
                .iter()
                .all(|&i: &usize| state_of(hs[i].0) & 7 == ScheduleResult::Waiting as u64)
                && WAIT_ERR[2].load(Ordering::SeqCst) != u64::MAX
        });
    kill(x);
    let ended = waiting
        && wait_until(|| {
            [1, 3]
                .iter()
                .all(|&i| WAIT_ERR[i].load(Ordering::SeqCst) != u64::MAX)
        });
    let errs: [u64; 3] = [1, 2, 3].map(|i| WAIT_ERR[i].load(Ordering::SeqCst));
    s.check(
        "lifetime.closed_receivers_of_deleted_thread_woken",
        ended && errs[0] == 5 && errs[2] == 5 && errs[1] == 3,
        format_args!("spawned {ok} waiting {waiting} errors {errs:x?}"),
    );
}

extern "C" fn util_park() -> ! {
    util::park()
}

/// Sleeps until `SLEEP_UNTIL` + 10 ms × (a per-helper rank), then records its wake-up rank.
extern "C" fn ordered_sleeper() -> ! {
    let i = my_index();
    let rank = [3u64, 0, 2, 1][i];
    let until = SLEEP_UNTIL.load(Ordering::SeqCst) + 10_000 * rank;
    let now = syscall::system_clock();
    msg::sleep(Time::period_micros(until.saturating_sub(now).max(1)));
    WAKE_ORDER[i].store(
        WAKE_SEQ.fetch_add(1, Ordering::SeqCst) + 1,
        Ordering::SeqCst,
    );
    util::park()
}

/// Timeouts armed out of order expire in deadline order (the timer heap).
fn timeouts_expire_in_order(s: &mut Cx) {
    let hs = helpers(s);
    WAKE_SEQ.store(0, Ordering::SeqCst);
    for w in &WAKE_ORDER {
        w.store(0, Ordering::SeqCst);
    }
    SLEEP_UNTIL.store(syscall::system_clock() + 30_000, Ordering::SeqCst);
    let mut ok = true;
    for &(t, loc, sp) in hs.iter() {
        ok &= start_local(t, loc, sp, None, ordered_sleeper);
    }
    let all = ok && wait_until(|| WAKE_SEQ.load(Ordering::SeqCst) == ROLES as u64);
    let order: [u64; ROLES] = core::array::from_fn(|i| WAKE_ORDER[i].load(Ordering::SeqCst));
    // Ranks 3, 0, 2, 1: helper 1 wakes first, then 3, 2, 0.
    s.check(
        "lifetime.timeouts_expire_in_deadline_order",
        all && order == [4, 1, 3, 2],
        format_args!("spawned {ok} all {all} wake order {order:?}"),
    );
}
