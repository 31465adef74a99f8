//! Helpers of the thread/space/scheduling test modules (`thread_control`, `space_control`,
//! `exregs`, `schedule`, `privilege`, `churn`, `fuzz`):
//!
//! * ids: thread numbers above UserBase ([`tid`]), root UTCB slots ([`slot`]);
//! * wrappers returning `(result, ErrorCode)` for ThreadControl / SpaceControl / Schedule;
//! * stacks: static, page-aligned, prefaulted by [`prepare`];
//! * the **pager thread** ([`pager`]): a thread of the root's space that serves page faults of
//!   threads in new address spaces by mapping the root's own page at the faulting address
//!   (the new space runs the root's image at the same addresses, like Pistachio's pingpong),
//!   and on request sends the start-up message (u = 2: MR1 = IP, MR2 = SP, spec 6.1);
//! * new spaces ([`new_space`], [`spawn_in_new_space`]) and a few child programs that report
//!   back to the root by IPC.
//!
//! Memory of a new space is the root's memory, physically shared page by page (map items),
//! so statics written by a child are visible to the root; the checks still report through
//! IPC where the brief asks for it.
//!
//! sigma0 owns memory per requesting thread id: only the root thread itself may fault in its
//! image. [`prepare`] therefore touches every page of the image (text, data, bss, all stacks)
//! from the root thread before any other thread of ours runs, and again at the start of every
//! module (an earlier module's fuzzing may have flushed pages).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::items::MapItem;
use abi::msgtag::labels;
use abi::{Fpage, MsgTag, Rights, ThreadId, Time, Timeouts};
use l4::syscall::{self, ExregsState};
use l4::{kip, msg, utcb};

// ---------------------------------------------------------------------------------------
// Ids, slots, syscall wrappers.

/// Thread number offsets (above UserBase) used by the modules; all well above the ones of the
/// other modules (< 0x100) and below the lifecycle module's 0x1000.
pub const PAGER_NO: u64 = 0x100;

/// Root UTCB slot of the pager thread; slots 0xE1..=0xFF are the modules' own.
pub const PAGER_SLOT: u64 = 0xE0;

/// UTCB area of every new space made here (same address as the root's, 16 KiB = 16 UTCBs).
pub const NEW_UTCB_AREA: u64 = 0xBF00_0000;
/// Its size (log2).
pub const NEW_UTCB_AREA_LOG2: u64 = 14;

/// Label of the reports children send to the root.
pub const REPORT: u64 = 0x5EED;
/// Label of the root's "start this thread" request to the pager thread.
const START_REQ: u64 = 0x57A7;

/// Global id (UserBase + `n`, version 1).
pub fn tid(n: u64) -> ThreadId {
    ThreadId::global(kip::thread_info().user_base() + n, 1)
}

/// The root server's global id.
pub fn root() -> ThreadId {
    ThreadId::global(kip::thread_info().user_base() + 2, 1)
}

/// UTCB location of root slot `k` (k KiB above the root's own UTCB, spec 6.8); the same as
/// [`utcb_slot`].
pub fn slot(k: u64) -> u64 {
    utcb_slot(k)
}

/// Address of the KIP (the same in every space made here).
pub fn kip_fpage() -> Fpage {
    Fpage::new_log2(kip::kip_address(), 12)
}

/// The UTCB area fpage of new spaces.
pub fn new_utcb_fpage() -> Fpage {
    Fpage::new_log2(NEW_UTCB_AREA, NEW_UTCB_AREA_LOG2)
}

/// ThreadControl returning `(result, ErrorCode)`; ErrorCode is cleared first, and reported
/// as read after the call also on success (so a check can see a spurious code).
pub fn tc(
    dest: ThreadId,
    space: ThreadId,
    sched: ThreadId,
    pager: ThreadId,
    loc: u64,
) -> (u64, u64) {
    utcb::write(abi::utcb::ERROR_CODE, 0);
    let r = syscall::thread_control(dest, space, sched, pager, loc);
    (r, if r == 1 { 0 } else { utcb::error_code() })
}

/// SpaceControl (control 0, redirector nil) returning `(result, ErrorCode)`.
pub fn sc(space: ThreadId, kip_area: Fpage, utcb_area: Fpage) -> (u64, u64) {
    utcb::write(abi::utcb::ERROR_CODE, 0);
    let (r, _) = syscall::space_control(space, 0, kip_area, utcb_area, ThreadId::NIL);
    (r, if r == 1 { 0 } else { utcb::error_code() })
}

/// Schedule returning `(result, old TimeControl, ErrorCode)`.
pub fn sched(dest: ThreadId, time: u64, cpu: u64, prio: u64, preempt: u64) -> (u64, u64, u64) {
    utcb::write(abi::utcb::ERROR_CODE, 0);
    let (r, old) = syscall::schedule(dest, time, cpu, prio, preempt);
    (r, old, if r == 0 { utcb::error_code() } else { 0 })
}

/// Schedule result word only (all controls "no change").
pub fn state_of(t: ThreadId) -> u64 {
    syscall::schedule(t, u64::MAX, u64::MAX, u64::MAX, u64::MAX).0
}

/// Sets `t`'s priority.
pub fn set_prio(t: ThreadId, prio: u64) -> u64 {
    syscall::schedule(t, u64::MAX, u64::MAX, prio, u64::MAX).0
}

/// Deletes `t` (result word).
pub fn kill_r(t: ThreadId) -> u64 {
    syscall::thread_control(t, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX)
}

/// Deletes a thread.
pub fn kill(id: ThreadId) {
    kill_r(id);
}

/// The UTCB location of UTCB slot `slot` (1 KiB each) in the root's UTCB area.
pub fn utcb_slot(slot: u64) -> u64 {
    (utcb::my_local_id().raw() & !0xFFF) + 0x400 * slot
}

/// ExchangeRegisters pure query (`1 << 9`).
pub fn query(t: ThreadId) -> (ThreadId, ExregsState) {
    syscall::exchange_registers(
        t,
        ExregsState {
            control: 1 << 9,
            ..Default::default()
        },
    )
}

/// Time period of `us` microseconds as a raw 16-bit value.
pub fn period(us: u64) -> u64 {
    Time::period_micros(us).raw() as u64
}

/// Sleeps `us` microseconds (a receive from oneself that times out).
pub fn sleep_us(us: u64) {
    msg::sleep(Time::period_micros(us));
}

/// Entry address of an entry function.
pub fn entry(f: extern "C" fn() -> !) -> u64 {
    f as usize as u64
}

// ---------------------------------------------------------------------------------------
// Stacks and the image.

/// Size of one stack.
pub const STACK: usize = 16 * 1024;
/// Number of stacks; index 0 is the pager thread's.
pub const STACKS_N: usize = 24;

#[repr(C, align(4096))]
struct Stacks([[u8; STACK]; STACKS_N]);
static mut STACKS: Stacks = Stacks([[0; STACK]; STACKS_N]);

/// Top of stack `i` (16-byte aligned minus 8, as after a `call`). Stack 0 is the pager's.
pub fn stack_top(i: usize) -> u64 {
    assert!(i > 0 && i < STACKS_N);
    // SAFETY: only the address is taken.
    unsafe { &raw const STACKS.0[i] as u64 + STACK as u64 - 8 }
}

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// The root's image `[start, end)` (text, rodata, data, bss; page aligned).
pub fn image() -> (u64, u64) {
    // Linker symbols; only their addresses are taken.
    (
        &raw const __image_start as u64,
        &raw const __image_end as u64,
    )
}

/// Touches every page of the image from the root thread, so that its pages are mapped in
/// the root's space (sigma0 serves only the root thread for them) before the pager thread
/// maps them on or other threads of the root's space run on them. Read-only segments are
/// read; the writable segment is written with an atomic `or 0` (no value changes, safe
/// against concurrently running threads).
pub fn prepare() {
    let (start, end) = image();
    let data = &raw const WRITABLE_MARK as u64 & !0xFFF;
    let mut p = start;
    while p < end {
        if p >= data {
            // SAFETY: p is a page of our own writable image segment (data/bss); a locked
            // `or 0` changes nothing but writes, so the page becomes present and writable.
            // (An atomic `fetch_or(0)` would be compiled into a plain load.)
            unsafe { core::arch::asm!("lock or byte ptr [{}], 0", in(reg) p, options(nostack)) };
        } else {
            // SAFETY: p is a page of our own image.
            unsafe { core::ptr::read_volatile(p as *const u8) };
        }
        p += 4096;
    }
}

/// The first static of the writable segment (`.data`): pages from here to the image end are
/// written by [`prepare`]. A non-zero initial value keeps it in `.data`, before `.bss`.
#[unsafe(no_mangle)]
static mut WRITABLE_MARK: u64 = 0x5EED_0001;

// ---------------------------------------------------------------------------------------
// The pager thread.

/// Page faults the pager thread served.
pub static PAGER_FAULTS: AtomicU64 = AtomicU64::new(0);
/// Faults outside the image (not served: the faulting thread stays blocked); last address.
pub static PAGER_BAD_FAULTS: AtomicU64 = AtomicU64::new(0);
/// Last address of such a fault.
pub static PAGER_BAD_ADDR: AtomicU64 = AtomicU64::new(0);
static PAGER_UP: AtomicBool = AtomicBool::new(false);

/// The pager thread's id.
pub fn pager() -> ThreadId {
    tid(PAGER_NO)
}

/// A server's next receive: open wait when there is nobody to answer, else ReplyWait to
/// `reply_to` (send timeout zero, so a client that went away cannot block the server).
pub fn reply_or_wait(reply_to: ThreadId) -> l4::syscall::IpcResult {
    if reply_to.is_nil() {
        syscall::ipc(ThreadId::NIL, ThreadId::ANY, Timeouts::NEVER)
    } else {
        syscall::ipc(
            reply_to,
            ThreadId::ANY,
            Timeouts::new(Time::ZERO, Time::NEVER),
        )
    }
}

extern "C" fn pager_main() -> ! {
    let (start, end) = image();
    let mut reply_to = ThreadId::NIL;
    loop {
        let r = reply_or_wait(reply_to);
        reply_to = ThreadId::NIL;
        if r.tag.error() {
            continue;
        }
        let (from, tag) = (r.from, r.tag);
        if tag.label() & !0xF == labels::PAGE_FAULT && tag.untyped() == 2 {
            let addr = utcb::mr(1) & !0xFFF;
            if addr >= start && addr < end {
                PAGER_FAULTS.fetch_add(1, Ordering::Relaxed);
                let w = MapItem::new(Fpage::new_log2(addr, 12).with_rights(Rights::FULL), addr)
                    .to_words(false);
                utcb::set_mr(1, w[0]);
                utcb::set_mr(2, w[1]);
                utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
                reply_to = from;
            } else {
                PAGER_BAD_FAULTS.fetch_add(1, Ordering::Relaxed);
                PAGER_BAD_ADDR.store(utcb::mr(1), Ordering::Relaxed);
            }
        } else if tag.label() == START_REQ && tag.untyped() == 3 {
            // Start-up message to MR1 = thread: u = 2, MR1 = IP, MR2 = SP (spec 6.1).
            let (t, ip, sp) = (ThreadId::from_raw(utcb::mr(1)), utcb::mr(2), utcb::mr(3));
            utcb::set_mr(1, ip);
            utcb::set_mr(2, sp);
            utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
            let ok = !syscall::ipc(
                t,
                ThreadId::NIL,
                Timeouts::new(Time::period_micros(500_000), Time::NEVER),
            )
            .tag
            .error();
            let code = if ok { 0 } else { utcb::error_code() };
            utcb::set_mr(1, ok as u64);
            utcb::set_mr(2, code);
            utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
            reply_to = from;
        }
    }
}

/// Prepares the image and makes sure the pager thread runs (created once, never deleted;
/// priority 254, just below the root). Returns false if it could not be created.
pub fn ensure_pager() -> bool {
    prepare();
    if PAGER_UP.load(Ordering::SeqCst) {
        return true;
    }
    let p = pager();
    let me = root();
    if syscall::thread_control(p, me, me, me, slot(PAGER_SLOT)) != 1 {
        l4::println!(
            "util: pager thread not created: error {}",
            utcb::error_code()
        );
        return false;
    }
    set_prio(p, 254);
    // SAFETY: stack 0 belongs to the pager thread alone; prefaulted by `prepare`.
    let top = unsafe { &raw const STACKS.0[0] as u64 + STACK as u64 - 8 };
    if l4::thread::start(p, top, entry(pager_main)).is_nil() {
        return false;
    }
    PAGER_UP.store(true, Ordering::SeqCst);
    true
}

/// Asks the pager thread to send `t` its start-up message (IP, SP). Returns the IPC error
/// code the pager saw (0 = delivered) or `Err` if the pager did not answer.
pub fn pager_start(t: ThreadId, ip: u64, sp: u64) -> Result<u64, u64> {
    utcb::set_mrs(1, &[t.raw(), ip, sp]);
    utcb::set_mr(0, MsgTag::new(START_REQ, 3, 0).raw());
    let p = pager();
    let r = syscall::ipc(
        p,
        p,
        Timeouts::new(
            Time::period_micros(1_000_000),
            Time::period_micros(2_000_000),
        ),
    );
    if r.tag.error() {
        return Err(utcb::error_code());
    }
    if utcb::mr(1) == 1 {
        Ok(0)
    } else {
        Ok(utcb::mr(2))
    }
}

// ---------------------------------------------------------------------------------------
// New spaces and children.

/// Creates `t` as the first thread of a new space and initialises the space (KIP at the
/// root's KIP address, UTCB area [`NEW_UTCB_AREA`]); `t` stays inactive. Err = (step, code).
pub fn new_space(t: ThreadId) -> Result<(), (u64, u64)> {
    let (r, e) = tc(t, t, root(), ThreadId::NIL, u64::MAX);
    if r != 1 {
        return Err((1, e));
    }
    let (r, e) = sc(t, kip_fpage(), new_utcb_fpage());
    if r != 1 {
        return Err((2, e));
    }
    Ok(())
}

/// Activates (or creates active) `t` in `space`'s space with the pager thread as pager and
/// UTCB slot `k` of the new-space UTCB area.
pub fn activate_in(t: ThreadId, space: ThreadId, k: u64) -> (u64, u64) {
    tc(t, space, root(), pager(), NEW_UTCB_AREA + 0x400 * k)
}

/// A new space running `f` on stack `stack` in thread `t`, started by the pager's start-up
/// message. Err = (step, code): 1/2 new_space, 3 activation, 4 start.
pub fn spawn_in_new_space(
    t: ThreadId,
    f: extern "C" fn() -> !,
    stack: usize,
) -> Result<(), (u64, u64)> {
    spawn_in_new_space_at(t, f, stack_top(stack))
}

/// [`spawn_in_new_space`] with the initial stack pointer `sp` (a stack of a check's `Cx`).
pub fn spawn_in_new_space_at(
    t: ThreadId,
    f: extern "C" fn() -> !,
    sp: u64,
) -> Result<(), (u64, u64)> {
    if !ensure_pager() {
        return Err((0, 0));
    }
    new_space(t)?;
    let (r, e) = activate_in(t, t, 0);
    if r != 1 {
        return Err((3, e));
    }
    match pager_start(t, entry(f), sp) {
        Ok(0) => Ok(()),
        Ok(e) | Err(e) => Err((4, e)),
    }
}

/// Creates `t` active in the root's space (pager = root, never serves: threads of the
/// root's space must not fault), priority `prio`, and starts it at `f` on stack `stack`.
pub fn spawn_worker(
    t: ThreadId,
    k_slot: u64,
    prio: u64,
    f: extern "C" fn() -> !,
    stack: usize,
) -> bool {
    prepare();
    let me = root();
    if syscall::thread_control(t, me, me, me, slot(k_slot)) != 1 {
        return false;
    }
    set_prio(t, prio);
    !l4::thread::start(t, stack_top(stack), entry(f)).is_nil()
}

/// Receives one report from `from` (label [`REPORT`]) within `ms` milliseconds: the words
/// MR1..MRu, or the IPC ErrorCode.
pub fn receive_report(from: ThreadId, ms: u64) -> Result<([u64; 12], ThreadId), u64> {
    let r = syscall::ipc(
        ThreadId::NIL,
        from,
        Timeouts::new(Time::NEVER, Time::period_micros(ms * 1000)),
    );
    if r.tag.error() {
        return Err(utcb::error_code());
    }
    if r.tag.label() != REPORT {
        return Err(0xBAD0_0000 | r.tag.label());
    }
    let mut w = [0u64; 12];
    let u = (r.tag.untyped() as usize).min(12);
    utcb::mrs(1, &mut w[..u]);
    Ok((w, r.from))
}

/// Sends a report (label [`REPORT`], the given words) to the root; waits at most 2 s.
pub fn report(words: &[u64]) {
    utcb::set_mrs(1, words);
    utcb::set_mr(0, MsgTag::new(REPORT, words.len() as u64, 0).raw());
    let _ = syscall::ipc(
        root(),
        ThreadId::NIL,
        Timeouts::new(Time::period_micros(2_000_000), Time::NEVER),
    );
}

/// Blocks for ever (a receive from nobody who ever sends).
pub fn park() -> ! {
    loop {
        msg::sleep(Time::NEVER);
    }
}

/// Child program: reports (its global id, its local id, its Pager TCR, KIP word 0, the
/// UserDefinedHandle TCR) and parks.
pub extern "C" fn child_hello() -> ! {
    // SAFETY: the KIP is mapped at the same address in every space made here.
    let kip0 = unsafe { core::ptr::read_volatile(kip::kip_address() as *const u64) };
    report(&[
        utcb::my_global_id().raw(),
        utcb::my_local_id().raw(),
        utcb::pager().raw(),
        kip0,
        utcb::user_defined_handle(),
    ]);
    park()
}

/// Touches every page of a stack (so its thread never faults on it) and returns the initial
/// stack pointer (top − 8, as after a call).
pub(crate) fn prefault_stack(stack: *mut u8, len: usize) -> u64 {
    for p in (0..len).step_by(4096) {
        // SAFETY: callers pass a static stack array that no running thread uses yet.
        unsafe { core::ptr::write_volatile(stack.add(p), 0) };
    }
    stack as u64 + len as u64 - 8
}

/// Creates `id` in the root's space with `pager`, its UTCB in `slot`, and starts it at `entry`
/// on the stack whose initial pointer is `sp`. False (ErrorCode set) if ThreadControl failed.
pub fn spawn_local(
    id: ThreadId,
    slot: u64,
    sp: u64,
    entry: extern "C" fn() -> !,
    pager: ThreadId,
) -> bool {
    let me = utcb::my_global_id();
    if syscall::thread_control(id, me, me, pager, utcb_slot(slot)) != 1 {
        return false;
    }
    l4::thread::start(id, sp, entry as usize as u64);
    true
}

/// Sleeps in 1 ms steps until `cond` holds (at most ~10 s of guest time). Under emulation the
/// guest clock follows the host's, so "made progress within N ms" checks must wait for the
/// progress instead of a fixed window; the bound is generous because a loaded host can keep
/// the emulator off the CPU for seconds.
pub fn wait_until(cond: impl Fn() -> bool) -> bool {
    for _ in 0..10_000 {
        if cond() {
            return true;
        }
        sleep_us(1000);
    }
    cond()
}
