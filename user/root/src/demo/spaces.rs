//! Threads in new address spaces that run the root server's own image (like Pistachio's
//! pingpong): a pager thread in the root space maps each faulting page of the image at the same
//! address (4 KiB, RWX) from the root's space, so every space runs the same binary and shares
//! its physical pages (statics are therefore shared; each thread needs its own stack array).
//!
//! Used by the demo ([`crate::demo`]) and the benchmark ([`crate::bench`]).

use abi::items::MapItem;
use abi::msgtag::labels;
use abi::{Fpage, MsgTag, Rights, ThreadId, Time};
use l4::{kip, msg, println, syscall, utcb};

/// Where new spaces get their UTCB area (16 KiB = 16 UTCBs), as the root's.
pub const UTCB_AREA: u64 = 0xBF00_0000;
const UTCB_AREA_LOG2: u64 = 14;
/// Size of one UTCB slot.
pub const UTCB_SLOT: u64 = 0x400;

/// Label of the request "send the start-up message": MR1 = thread, MR2 = IP, MR3 = SP.
const START_REQUEST: u64 = 0x5354;

/// Thread number `user_base + k`, version 1.
pub fn tid(k: u64) -> ThreadId {
    ThreadId::global(kip::thread_info().user_base() + k, 1)
}

/// The root server's id.
pub fn root() -> ThreadId {
    kip::root_server_id()
}

/// UTCB location of slot `k` in the root's UTCB area.
pub fn root_utcb_slot(k: u64) -> u64 {
    (utcb::my_local_id().raw() & !0xFFF) + UTCB_SLOT * k
}

/// The root image as loaded (KIP `root_server.low..high`), page aligned.
fn image() -> (u64, u64) {
    let k = kip::kip();
    (
        k.root_server.low & !0xFFF,
        (k.root_server.high + 0xFFF) & !0xFFF,
    )
}

/// Reads one byte of every page of the root image, so that the root has each page mapped
/// (from sigma0) before the pager maps it on.
pub fn touch_image() {
    let (low, high) = image();
    let mut p = low;
    while p < high {
        // SAFETY: a read inside our own loaded image; a first access faults to sigma0.
        unsafe { core::ptr::read_volatile(p as *const u8) };
        p += 4096;
    }
}

/// A static, page-aligned stack for one thread.
#[repr(C, align(4096))]
pub struct Stack(pub [u8; 16 * 1024]);

impl Stack {
    /// An all-zero stack.
    pub const fn new() -> Self {
        Stack([0; 16 * 1024])
    }
}

/// Touches every page of `stack` and returns its initial SP (16-byte aligned top minus 8, as
/// after a `call`).
///
/// # Safety
/// `stack` must not be in use by a running thread.
pub unsafe fn prepare_stack(stack: *mut Stack) -> u64 {
    let base = stack as *mut u8;
    let size = core::mem::size_of::<Stack>();
    for off in (0..size).step_by(4096) {
        // SAFETY: inside the stack array, which nobody uses yet (caller's promise).
        unsafe { core::ptr::write_volatile(base.add(off), 0) };
    }
    base as u64 + size as u64 - 8
}

/// Creates thread `t` in the root's space at UTCB slot `slot`, paged by sigma0 (the root's
/// own pager), and starts it at `entry` with SP `sp`.
pub fn spawn_local(t: ThreadId, slot: u64, entry: extern "C" fn() -> !, sp: u64) -> bool {
    let me = root();
    if syscall::thread_control(t, me, me, kip::sigma0_id(), root_utcb_slot(slot)) != 1 {
        println!(
            "root: cannot create thread {:#x} (error {})",
            t.raw(),
            utcb::error_code()
        );
        return false;
    }
    !l4::thread::start(t, sp, entry as usize as u64).is_nil()
}

/// The pager thread: serves page faults of the image, and start requests from the root.
extern "C" fn pager_main() -> ! {
    let (low, high) = image();
    loop {
        let Ok((from, tag)) = msg::wait() else {
            continue;
        };
        if tag.label() & !0xF == labels::PAGE_FAULT {
            let (addr, ip) = (utcb::mr(1), utcb::mr(2));
            let page = addr & !0xFFF;
            if page < low || page >= high {
                println!(
                    "pager: thread {:#x} faulted at {addr:#x} (ip {ip:#x}) outside the image; not answered",
                    from.raw()
                );
                continue;
            }
            // SAFETY: a read of our own image (all touched by the root already).
            unsafe { core::ptr::read_volatile(page as *const u8) };
            let w = MapItem::new(Fpage::new_log2(page, 12).with_rights(Rights::FULL), page)
                .to_words(false);
            utcb::set_mr(1, w[0]);
            utcb::set_mr(2, w[1]);
            utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
            let _ = msg::send_timeout(from, Time::ZERO);
        } else if tag.label() == START_REQUEST && tag.untyped() == 3 {
            let (t, ip, sp) = (ThreadId::from_raw(utcb::mr(1)), utcb::mr(2), utcb::mr(3));
            utcb::set_mr(1, ip);
            utcb::set_mr(2, sp);
            utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
            let ok = msg::send_timeout(t, Time::period_micros(1_000_000)).is_ok();
            utcb::set_mr(1, ok as u64);
            utcb::set_mr(0, MsgTag::new(0, 1, 0).raw());
            let _ = msg::send_timeout(from, Time::ZERO);
        }
    }
}

static mut PAGER_STACK: Stack = Stack::new();

/// Touches the image and starts the pager thread `t` (UTCB slot `slot` of the root's area).
pub fn start_pager(t: ThreadId, slot: u64) -> bool {
    touch_image();
    // SAFETY: the pager's stack, not in use yet.
    let sp = unsafe { prepare_stack(&raw mut PAGER_STACK) };
    spawn_local(t, slot, pager_main, sp)
}

/// Creates thread `t` in a new address space (KIP at the root's KIP address, UTCB area
/// [`UTCB_AREA`], UTCB at `UTCB_AREA`), paged by `pager`; it waits for its start-up message.
pub fn new_space(t: ThreadId, pager: ThreadId) -> bool {
    new_space_with_utcb_area(t, pager, UTCB_AREA, UTCB_AREA_LOG2)
}

/// [`new_space`] with a UTCB area of `2^area_log2` bytes at `area` (the thread's UTCB at its
/// start).
pub fn new_space_with_utcb_area(t: ThreadId, pager: ThreadId, area: u64, area_log2: u64) -> bool {
    let me = root();
    let ok = syscall::thread_control(t, t, me, ThreadId::NIL, u64::MAX) == 1
        && syscall::space_control(
            t,
            0,
            Fpage::new_log2(kip::kip_address(), 12),
            Fpage::new_log2(area, area_log2),
            ThreadId::NIL,
        )
        .0 == 1
        && syscall::thread_control(t, t, me, pager, area) == 1;
    if !ok {
        println!(
            "root: cannot create a space for {:#x} (error {})",
            t.raw(),
            utcb::error_code()
        );
    }
    ok
}

/// Creates thread `t` in the space of `space` at UTCB slot `slot` of that space, paged by
/// `pager`; it waits for its start-up message.
pub fn new_thread_in(t: ThreadId, space: ThreadId, slot: u64, pager: ThreadId) -> bool {
    let ok = syscall::thread_control(t, space, root(), pager, UTCB_AREA + UTCB_SLOT * slot) == 1;
    if !ok {
        println!(
            "root: cannot create {:#x} in the space of {:#x} (error {})",
            t.raw(),
            space.raw(),
            utcb::error_code()
        );
    }
    ok
}

/// Asks the pager thread to start `t` at `entry` with SP `sp` (the start-up message, spec 6.1).
pub fn start_via_pager(pager: ThreadId, t: ThreadId, entry: extern "C" fn() -> !, sp: u64) -> bool {
    utcb::set_mrs(1, &[t.raw(), entry as usize as u64, sp]);
    utcb::set_mr(0, MsgTag::new(START_REQUEST, 3, 0).raw());
    match msg::call_timeouts(
        pager,
        Time::period_micros(2_000_000),
        Time::period_micros(2_000_000),
    ) {
        Ok(_) if utcb::mr(1) == 1 => true,
        _ => {
            println!("root: the pager could not start {:#x}", t.raw());
            false
        }
    }
}

/// Deletes thread `t` (its space goes with its last thread).
pub fn delete(t: ThreadId) {
    syscall::thread_control(t, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX);
}
