//! The fuzz threads' operations: random and boundary arguments for every system call.
//!
//! Arguments come from a few generators: thread ids of every kind ([`rand_tid`]: nil, any,
//! anylocal, own/sibling/other-space ids global and local, right and wrong versions,
//! interrupt and kernel threads, sigma0, the root and the pager, numbers beyond the table,
//! garbage), addresses ([`rand_addr`]: null, user, KIP, UTCB area, kernel image, kernel
//! stacks, direct map, non-canonical, the end of the user area, garbage), fpages of every
//! size ([`rand_fpage`]), timeouts ([`rand_time`]). Receive buffers and acceptor windows are
//! kept out of the root's image, and receive buffers out of the map windows (where senders
//! may have mapped image pages): a write there would corrupt the fuzzer's own code and data,
//! which every fuzz space shares. Everything else is unrestricted.

use core::sync::atomic::Ordering;

use abi::utcb as u;
use abi::{MsgTag, ThreadId, Time, Timeouts};
use l4::syscall::{self, ExregsState, link};
use l4::{kip, println, utcb};

use super::{
    DIGEST, FAR, GEN, LOG, N, OPS, PER_SPACE, RING, Rng, SEED, STOP, TRACE, index_of, pager_id,
    stack_top, thread_id,
};
use crate::tests::util;

/// Where receivers open their map/grant windows (2^40 bytes): what senders map lands here
/// only, possibly pages of the shared image. Receive buffers never point here.
const WINDOW_REGION: u64 = 0x0000_4000_0000_0000;
/// Where receive buffers and random stacks point: only the pager's scratch pages get mapped.
const SCRATCH_REGION: u64 = 0x0000_5000_0000_0000;

/// Operation codes (for the log).
const OP_IPC: u64 = 1;
const OP_LIPC: u64 = 2;
const OP_EXREGS: u64 = 3;
const OP_SWITCH: u64 = 4;
const OP_SCHEDULE: u64 = 5;
const OP_UNMAP: u64 = 6;
const OP_PRIV: u64 = 7;
const OP_CLOCK: u64 = 8;
const OP_RAW: u64 = 9;
const OP_FAR: u64 = 10;
const OP_TCR: u64 = 11;

pub fn op_name(op: u64) -> &'static str {
    match op {
        OP_IPC => "ipc(to, from, timeouts|tag<<32)",
        OP_LIPC => "lipc(to, from, timeouts|tag<<32)",
        OP_EXREGS => "exregs(dest, control, ip)",
        OP_SWITCH => "thread_switch(dest)",
        OP_SCHEDULE => "schedule(dest, prio, time)",
        OP_UNMAP => "unmap(control, mr0, mr1)",
        OP_PRIV => "privileged call(which, a, b)",
        OP_CLOCK => "system_clock/kernel_interface",
        OP_RAW => "raw stub call(link, rax, rsi)",
        OP_FAR => "far/sysenter/int(kind, selector, n)",
        OP_TCR => "tcr write(index, value)",
        _ => "?",
    }
}

/// A fuzz thread's view of the world.
struct Me {
    i: usize,
    rng: Rng,
    seq: u64,
    image: (u64, u64),
    user_base: u64,
}

/// Entry point of every fuzz thread (also after a restart by exception or ExchangeRegisters).
pub extern "C" fn worker_main() -> ! {
    let me_id = utcb::my_global_id();
    let Some(i) = index_of(me_id) else {
        util::park()
    };
    utcb::set_exception_handler(pager_id());
    let gen_ = GEN[i].load(Ordering::Relaxed);
    let seed = SEED.load(Ordering::Relaxed);
    let restarts = OPS[i].load(Ordering::Relaxed);
    let mut me = Me {
        i,
        rng: Rng::new(seed ^ (i as u64) << 40 ^ gen_ << 20 ^ restarts),
        seq: restarts,
        image: util::image(),
        user_base: kip::thread_info().user_base(),
    };
    loop {
        if STOP.load(Ordering::Relaxed) {
            util::park();
        }
        // Counted when issued: an operation that faults restarts the thread at its entry
        // point (the pager's exception reply), whose stream is seeded with this count. Counted
        // after the operation, a faulting one was drawn again and again from the same seed
        // (seven exceptions per counted operation on average).
        OPS[i].fetch_add(1, Ordering::Relaxed);
        one_op(&mut me);
    }
}

fn log(me: &mut Me, op: u64, a: u64, b: u64, c: u64) {
    me.seq += 1;
    let slot = &RING[me.i][(me.seq % LOG as u64) as usize];
    let gen_ = GEN[me.i].load(Ordering::Relaxed) & 0xFF_FFFF;
    slot[0].store(op | gen_ << 8 | me.seq << 32, Ordering::Relaxed);
    slot[1].store(a, Ordering::Relaxed);
    slot[2].store(b, Ordering::Relaxed);
    slot[3].store(c, Ordering::Relaxed);
    let h = (op ^ a.rotate_left(13) ^ b.rotate_left(29) ^ c.rotate_left(41))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    DIGEST[me.i].fetch_add(h, Ordering::Relaxed);
    if TRACE.load(Ordering::Relaxed) {
        println!(
            "fuzz-op t{} #{} {} {:#x} {:#x} {:#x}",
            me.i,
            me.seq,
            op_name(op),
            a,
            b,
            c
        );
    }
}

/// Thread ids of every kind.
fn rand_tid(me: &mut Me) -> ThreadId {
    let r = &mut me.rng;
    let base_no = me.user_base + super::BASE_NO;
    let space = me.i / PER_SPACE;
    match r.below(24) {
        0 => ThreadId::NIL,
        1 => ThreadId::ANY,
        2 => ThreadId::ANY_LOCAL,
        3 => utcb::my_global_id(),
        4 => utcb::my_local_id(),
        5..=8 => {
            // A sibling in the same space, global id with the current generation.
            let j = space * PER_SPACE + r.below(PER_SPACE as u64) as usize;
            thread_id(j, GEN[j].load(Ordering::Relaxed))
        }
        9 | 10 => {
            // A sibling's local id (its UTCB's MR0 address).
            let k = r.below(PER_SPACE as u64 + 1);
            ThreadId::from_raw(util::NEW_UTCB_AREA + 0x400 * k + 0x200)
        }
        11..=13 => {
            let j = r.below(N as u64) as usize;
            thread_id(j, GEN[j].load(Ordering::Relaxed))
        }
        14 => {
            // Wrong version of a fuzz thread.
            let j = r.below(N as u64) as usize;
            ThreadId::global(base_no + j as u64, r.next() & 0x3FFF_FFFF)
        }
        15 => ThreadId::interrupt(r.below(20)),
        16 => ThreadId::global(r.below(me.user_base + 3), r.below(3)),
        17 => util::root(),
        18 => pager_id(),
        19 => ThreadId::global((1 << 18) - 1 - r.below(2), 1),
        20 => ThreadId::global(r.next() & 0xFFFF_FFFF, r.next() & 0x3FFF_FFFF),
        21 => ThreadId::from_raw(r.next() & !0x3F), // a random local id
        22 => ThreadId::from_raw(rand_addr(me, false) & !0x3F),
        _ => ThreadId::from_raw(r.next()),
    }
}

/// Does this id possibly name a thread that must never be kept blocked (root, pager,
/// sigma0, kernel or interrupt threads)?
fn special(me: &Me, t: ThreadId) -> bool {
    if !t.is_global() || t.is_nil() || t.is_any() {
        return false;
    }
    let n = t.number();
    n < me.user_base + super::BASE_NO || n >= me.user_base + super::BASE_NO + N as u64
}

/// Addresses of every interesting kind; `write`: the kernel may write there (kept out of
/// the image except the thread's own stack).
fn rand_addr(me: &mut Me, write: bool) -> u64 {
    let (is, ie) = me.image;
    let r = &mut me.rng;
    let small = r.below(0x3000);
    let a = match r.below(16) {
        0 => small,
        1 => WINDOW_REGION + (r.next() & 0xFF_FFFF_FFFF),
        2 => SCRATCH_REGION + (r.next() & 0xF_FFFF),
        3 => kip::kip_address() + small,
        4 => util::NEW_UTCB_AREA + (r.next() & 0x7FFF),
        5 => 0xFFFF_FFFF_8000_0000 + (r.next() & 0x3F_FFFF), // kernel image
        6 => 0xFFFF_FFFF_C000_0000 + (r.next() & 0xFF_FFFF), // kernel stacks / TCBs
        7 => 0xFFFF_8000_0000_0000 + (r.next() & 0x3FFF_FFFF), // direct map
        8 => 0x0000_8000_0000_0000 + (r.next() & 0xFFFF_FFFF), // non-canonical
        9 => 0x0000_7FFF_FFFF_F000 - small + 0x800,          // end of user area
        10 => stack_top(me.i) - (r.next() & 0x1FFF),         // own stack
        11 => is + (r.next() % (ie - is).max(1)),            // image
        12 => r.next() & 0x0000_7FFF_FFFF_FFFF,
        13 => u64::MAX - small,
        _ => r.next(),
    };
    if write && (a >= is && a < ie || (WINDOW_REGION..WINDOW_REGION + (1 << 40)).contains(&a)) {
        SCRATCH_REGION + (a & 0xFFFF_FFFF)
    } else {
        a
    }
}

/// Fpages of every size (including nil, complete and beyond the hardware sizes).
fn rand_fpage(me: &mut Me) -> u64 {
    let s = match me.rng.below(8) {
        0 => 0,
        1 => 1, // "complete" is size 1 with base 0
        2 => 12,
        3 => 21,
        4 => 30,
        5 => 47,
        _ => me.rng.below(64),
    };
    let base = if me.rng.one_in(4) {
        0
    } else {
        rand_addr(me, false)
    };
    (base & !0x3FF) | s << 4 | me.rng.below(8)
}

/// Time values: zero, never, short periods, any 16 bits (points included).
fn rand_time(me: &mut Me) -> Time {
    match me.rng.below(10) {
        0..=3 => Time::ZERO,
        4 => Time::NEVER,
        5..=8 => Time::period_micros(1 + me.rng.below(3000)),
        _ => Time(me.rng.next() as u16),
    }
}

/// A typed item (2 or more words) into MRs starting at `mr`; returns words used.
fn typed_item(me: &mut Me, mr: usize, room: usize) -> usize {
    if room < 2 {
        if room == 1 {
            utcb::set_mr(mr, me.rng.next());
        }
        return room;
    }
    match me.rng.below(6) {
        0 | 1 => {
            // map (8) or grant (10) item: snd base, fpage
            let kind = if me.rng.one_in(3) { 0xA } else { 0x8 };
            let base = rand_addr(me, false) & !0x3FF;
            utcb::set_mr(mr, base | kind | me.rng.below(2));
            utcb::set_mr(mr + 1, rand_fpage(me));
            2
        }
        2..=4 => {
            // string item: length, (compound) substrings
            let len = match me.rng.below(6) {
                0 => 0,
                1 => 1 + me.rng.below(64),
                2 => 4096,
                3 => 1 + me.rng.below(20_000),
                4 => me.rng.next() >> 10,
                _ => 0x3F_FFFF,
            };
            let subs = if me.rng.one_in(4) {
                1 + me.rng.below(((room - 1) as u64).min(33))
            } else {
                1
            };
            let words = (1 + subs as usize).min(room);
            let c = me.rng.below(2);
            let head = len << 10 | (subs - 1) << 4 | me.rng.below(4) << 1 | c;
            utcb::set_mr(mr, head);
            for w in 1..words {
                utcb::set_mr(mr + w, rand_addr(me, false));
            }
            words
        }
        _ => {
            utcb::set_mr(mr, me.rng.next());
            utcb::set_mr(mr + 1, me.rng.next());
            2
        }
    }
}

/// Buffer registers: acceptor and string receive buffers.
fn set_brs(me: &mut Me) {
    let window = match me.rng.below(4) {
        0 => 0,
        // A window in the arena only (a complete window would let senders map over our
        // image, killing the fuzz thread rather than testing the kernel).
        _ => {
            let s = 12 + me.rng.below(28);
            let b = WINDOW_REGION + (me.rng.next() & 0xFF_FFFF_FFFF);
            (b & !((1u64 << s) - 1)) | s << 4
        }
    };
    utcb::set_br(0, window | me.rng.below(2));
    let nbr = me.rng.below(33) as usize;
    let mut b = 1;
    while b < nbr {
        let len = match me.rng.below(4) {
            0 => 0,
            1 => 1 + me.rng.below(8192),
            2 => 4096,
            _ => me.rng.next() >> 20,
        };
        let more = b + 2 < nbr;
        utcb::set_br(b, len << 10 | (more as u64) | me.rng.below(2) << 3);
        utcb::set_br(b + 1, rand_addr(me, true));
        b += 2;
    }
}

fn ipc_op(me: &mut Me, local: bool) {
    let mut to = ThreadId::NIL;
    let mut from = ThreadId::NIL;
    match me.rng.below(5) {
        0 => to = rand_tid(me),
        1 => from = rand_tid(me),
        2 => {
            to = rand_tid(me);
            from = to;
        }
        3 => {
            to = rand_tid(me);
            from = if me.rng.one_in(2) {
                ThreadId::ANY
            } else {
                ThreadId::ANY_LOCAL
            };
        }
        _ => {
            to = rand_tid(me);
            from = rand_tid(me);
        }
    }
    let (mut snd, mut rcv) = (rand_time(me), rand_time(me));
    if special(me, to) {
        snd = Time::ZERO;
    }
    if special(me, from) || from.is_any() && me.rng.one_in(2) {
        rcv = if me.rng.one_in(2) {
            Time::ZERO
        } else {
            Time::period_micros(1 + me.rng.below(500))
        };
    }
    // Message: untyped words, typed items.
    let umax = if me.rng.one_in(8) { 64 } else { 8 };
    let u = me.rng.below(umax) as usize;
    let tmax = if me.rng.one_in(8) { 64 } else { 12 };
    let t = me.rng.below(tmax) as usize;
    for m in 1..=u.min(63) {
        utcb::set_mr(m, me.rng.next());
    }
    let mut m = u + 1;
    while m <= (u + t).min(63) {
        m += typed_item(me, m, (u + t + 1).min(64) - m);
    }
    let label = me.rng.next() & 0xFFFF_FFFF_FFFF;
    let flags = if me.rng.one_in(8) {
        me.rng.below(16)
    } else {
        0
    };
    let tag = MsgTag::new(label, u as u64, t as u64).raw() | flags << 12;
    utcb::set_mr(0, tag);
    if me.rng.one_in(3) {
        set_brs(me);
    }
    if me.rng.one_in(4) {
        utcb::write(u::XFER_TIMEOUTS, me.rng.next() & 0xFFFF_FFFF);
    }
    if flags & 1 != 0 {
        let v = rand_tid(me);
        utcb::write(u::VIRTUAL_SENDER, v.raw());
    }
    let timeouts = Timeouts::new(snd, rcv);
    log(
        me,
        if local { OP_LIPC } else { OP_IPC },
        to.raw(),
        from.raw(),
        timeouts.0 | tag << 32,
    );
    if local {
        syscall::lipc(to, from, timeouts);
    } else {
        syscall::ipc(to, from, timeouts);
    }
}

fn exregs_op(me: &mut Me) {
    let dest = rand_tid(me);
    let mut control = me.rng.below(1 << 10);
    let space = me.i / PER_SPACE;
    // The fuzz thread `dest` names in our space (global or local id), if any.
    let target = if dest.is_local() && !dest.is_any_local() {
        let off = dest.raw().wrapping_sub(util::NEW_UTCB_AREA + 0x200);
        (off.is_multiple_of(0x400) && off / 0x400 < PER_SPACE as u64)
            .then(|| space * PER_SPACE + (off / 0x400) as usize)
    } else {
        index_of(dest).filter(|&j| j / PER_SPACE == space)
    };
    if control & (3 << 3) != 0 {
        // SP and IP change together: a thread left running its old code on a reset stack
        // (or the reverse) would scribble over the fuzzer's shared memory.
        control |= 3 << 3;
    }
    let (ip, sp) = match (me.rng.below(8), target) {
        (0, _) => (me.rng.next(), SCRATCH_REGION + (me.rng.next() & 0xFF_FFF8)),
        (_, Some(j)) => (util::entry(worker_main), stack_top(j)),
        _ => {
            // Unknown target: never hand it a stack that a fuzz thread runs on.
            control &= !((1 << 3) | (1 << 4));
            (0, 0)
        }
    };
    let pager = if me.rng.one_in(16) {
        rand_tid(me)
    } else {
        pager_id()
    };
    log(me, OP_EXREGS, dest.raw(), control, ip);
    syscall::exchange_registers(
        dest,
        ExregsState {
            control,
            sp,
            ip,
            flags: me.rng.next(),
            user_handle: me.rng.next(),
            pager,
        },
    );
}

fn schedule_op(me: &mut Me) {
    let dest = rand_tid(me);
    let pick = |r: &mut Rng| {
        if r.one_in(2) {
            u64::MAX
        } else {
            r.next() >> r.below(64)
        }
    };
    let (tc, pc, prio, pre) = (
        pick(&mut me.rng),
        pick(&mut me.rng),
        pick(&mut me.rng),
        pick(&mut me.rng),
    );
    log(me, OP_SCHEDULE, dest.raw(), prio, tc);
    syscall::schedule(dest, tc, pc, prio, pre);
}

fn unmap_op(me: &mut Me) {
    let kmax = if me.rng.one_in(4) { 64 } else { 4 };
    let k = me.rng.below(kmax);
    for m in 0..=k as usize {
        let f = rand_fpage(me);
        utcb::set_mr(m, f);
    }
    let control = k | me.rng.below(2) << 6 | if me.rng.one_in(16) { me.rng.next() } else { 0 };
    log(me, OP_UNMAP, control, utcb::mr(0), utcb::mr(1));
    syscall::unmap(control);
}

fn privileged_op(me: &mut Me) {
    let which = me.rng.below(4);
    let a = rand_tid(me);
    let b = rand_tid(me);
    log(me, OP_PRIV, which, a.raw(), b.raw());
    match which {
        0 => {
            let loc = rand_addr(me, false);
            syscall::thread_control(a, b, rand_tid(me), rand_tid(me), loc);
        }
        1 => {
            let (k, f) = (rand_fpage(me), rand_fpage(me));
            syscall::space_control(
                a,
                me.rng.next(),
                abi::Fpage::from_raw(k),
                abi::Fpage::from_raw(f),
                b,
            );
        }
        2 => {
            syscall::processor_control(
                me.rng.below(4),
                me.rng.next(),
                me.rng.next(),
                me.rng.next(),
            );
        }
        _ => {
            for m in 0..4 {
                utcb::set_mr(m, me.rng.next());
            }
            syscall::memory_control(me.rng.next(), [me.rng.next(), 0, me.rng.next(), 0]);
        }
    }
}

/// Thread control registers a user may write (and a kernel must not trust).
fn tcr_op(me: &mut Me) {
    let idx = match me.rng.below(5) {
        0 => u::XFER_TIMEOUTS,
        1 => u::VIRTUAL_SENDER,
        2 => u::INTENDED_RECEIVER,
        3 => u::FLAGS,
        _ => u::WORD_SIZE_MASK,
    };
    let v = me.rng.next();
    log(me, OP_TCR, idx as u64, v, 0);
    utcb::write(idx, v);
}

// ---- raw system calls through the stubs, with random registers ----------------------

static RAW_TARGET: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn raw_op(me: &mut Me) {
    let l = me.rng.below(link::COUNT as u64) as usize;
    let mut r: [u64; 13] = core::array::from_fn(|_| me.rng.next());
    match l {
        link::IPC | link::LIPC => {
            r[4] = utcb::utcb_pointer() as u64;
            r[5] = (Time::ZERO.raw() as u64) << 16 | Time::ZERO.raw() as u64;
        }
        link::UNMAP | link::MEMORY_CONTROL => r[4] = utcb::utcb_pointer() as u64,
        link::EXCHANGE_REGISTERS => {
            // Never redirect a sibling's IP/SP to garbage through this path.
            r[3] &= !((1 << 3) | (1 << 4) | 1);
        }
        _ => {}
    }
    log(me, OP_RAW, l as u64, r[0], r[3]);
    RAW_TARGET.store(syscall::link_address(l), Ordering::SeqCst);
    // SAFETY: a system call with arbitrary register values through a kernel stub. RSP stays
    // ours, RBX/RBP are saved around it, every other register is declared clobbered. The
    // stubs that store MRs get RDI = our UTCB pointer, so they write only our UTCB.
    unsafe {
        core::arch::asm!(
            "push rbp",
            "push rbx",
            "call qword ptr [rip + {target}]",
            "pop rbx",
            "pop rbp",
            target = sym RAW_TARGET,
            inout("rax") r[0] => _,
            inout("rcx") r[1] => _,
            inout("rdx") r[2] => _,
            inout("rsi") r[3] => _,
            inout("rdi") r[4] => _,
            inout("r8") r[5] => _,
            inout("r9") r[6] => _,
            inout("r10") r[7] => _,
            inout("r11") r[8] => _,
            inout("r12") r[9] => _,
            inout("r13") r[10] => _,
            inout("r14") r[11] => _,
            inout("r15") r[12] => _,
        );
    }
}

// ---- far transfers and the other system-call instructions (option `far`) -------------

core::arch::global_asm!(
    ".section .text.fuzz_int, \"ax\"",
    ".balign 4",
    ".global fuzz_int_table",
    "fuzz_int_table:",
    ".set n, 0",
    ".rept 256",
    "int n",
    "ret",
    ".balign 4",
    ".set n, n + 1",
    ".endr",
    // Target of far transfers: executed in 64-bit or compat mode. `syscall; ud2` in both.
    ".global fuzz_far_target",
    "fuzz_far_target:",
    "syscall",
    "ud2",
    ".text",
);

unsafe extern "C" {
    static fuzz_int_table: u8;
    static fuzz_far_target: u8;
}

fn far_op(me: &mut Me) {
    let kind = me.rng.below(6);
    let sel = match me.rng.below(6) {
        0 => 0x08, // kernel code
        1 => 0x1B, // user code, 32-bit
        2 => 0x2B, // user code, 64-bit
        3 => 0x18, // user code 32 with RPL 0
        4 => 0x33, // TSS
        _ => me.rng.below(0x10000),
    };
    let n = me.rng.below(256);
    log(me, OP_FAR, kind, sel, n);
    let target = &raw const fuzz_far_target as u64;
    // SAFETY (all arms): the instruction either faults (an exception IPC to the fuzz pager,
    // whose reply restarts this thread at its entry point: nothing after it runs) or, for
    // `int n` that the kernel serves (int3 = KDB), returns with registers preserved. No
    // memory of ours is written except the stack slots pushed here.
    unsafe {
        match kind {
            0 => {
                let entry = &raw const fuzz_int_table as u64 + n * 4;
                core::arch::asm!("call {}", in(reg) entry, clobber_abi("C"));
            }
            1 => core::arch::asm!("sysenter", out("rcx") _, out("r11") _),
            2 => {
                // far jump through an m16:64 operand: 8-byte offset, then the selector.
                let desc: [u64; 2] = [target, sel];
                core::arch::asm!("ljmpq *({})", in(reg) &desc, options(att_syntax));
            }
            3 => {
                let desc: [u64; 2] = [target, sel];
                core::arch::asm!("lcallq *({})", in(reg) &desc, options(att_syntax));
            }
            4 => core::arch::asm!(
                "push {sel}",
                "push {t}",
                "retfq",
                sel = in(reg) sel,
                t = in(reg) target,
            ),
            _ => core::arch::asm!(
                "mov rax, rsp",
                "push 0x23",
                "push rax",
                "pushfq",
                "push {sel}",
                "push {t}",
                "iretq",
                sel = in(reg) sel,
                t = in(reg) target,
                out("rax") _,
            ),
        }
    }
}

fn one_op(me: &mut Me) {
    let far = FAR.load(Ordering::Relaxed);
    match me.rng.below(if far { 101 } else { 100 }) {
        0..=37 => ipc_op(me, false),
        38..=42 => ipc_op(me, true),
        43..=52 => exregs_op(me),
        53..=56 => {
            let d = rand_tid(me);
            log(me, OP_SWITCH, d.raw(), 0, 0);
            syscall::thread_switch(d);
        }
        57..=61 => schedule_op(me),
        62..=69 => unmap_op(me),
        70..=75 => privileged_op(me),
        76..=77 => {
            log(me, OP_CLOCK, 0, 0, 0);
            syscall::system_clock();
            syscall::kernel_interface();
        }
        78..=81 => tcr_op(me),
        82..=99 => raw_op(me),
        _ => far_op(me),
    }
}
