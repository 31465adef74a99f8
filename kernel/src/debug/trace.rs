//! The event trace: a ring buffer of kernel events, timestamped by the TSC (instruction counts
//! under QEMU `-icount`), switched on and off from the debugger, filtered by thread and kind.
//!
//! Zero cost while off: the entry code calls the generic kernel through two vectors
//! (`syscall_dispatch_vector`, `trap_dispatch_vector`, one indirect call each, there anyway).
//! Switching the trace on points them at [`traced_syscall`] and [`traced_trap`], which record
//! around the real dispatch: IPC (destination, receive specifier and tag on entry; partner,
//! tag and error code on return), ThreadControl (thread and space creation and deletion), page
//! faults, exceptions, interrupts, and a switch whenever the kernel is entered or left on a
//! different thread than last time. Off puts the original targets back.

use abi::msgtag::MsgTag;
use abi::thread_id::ThreadId;

use super::view;
use crate::arch::syscall::{Syscall, identify};
use crate::arch::trap::TrapFrame;
use crate::kprintln;
use crate::sync::KernelCell;

unsafe extern "C" {
    static mut syscall_dispatch_vector: usize;
    static mut trap_dispatch_vector: usize;
    fn syscall_dispatch(f: &mut TrapFrame);
    fn trap_dispatch(f: &mut TrapFrame);
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    /// a = destination (nil: none), b = receive specifier (nil: none), c = tag sent.
    IpcEntry,
    /// a = from (nil: none), b = tag received, c = error code (0: none).
    IpcDone,
    /// a = address, b = instruction pointer, c = error code.
    PageFault,
    /// a = vector, b = instruction pointer, c = error code.
    Exception,
    /// a = line.
    Irq,
    /// a = previous thread (the event's thread is the next one).
    Switch,
    /// a = new thread, b = its space specifier.
    ThreadCreate,
    /// a = deleted thread.
    ThreadDelete,
    /// a = thread.
    ThreadModify,
    /// a = the thread the new space was created with.
    SpaceCreate,
    /// a = the deleted thread whose space went with it.
    SpaceDelete,
}

/// Filter classes (bit masks).
const C_IPC: u8 = 1;
const C_PF: u8 = 2;
const C_EXC: u8 = 4;
const C_IRQ: u8 = 8;
const C_TICK: u8 = 16;
const C_SWITCH: u8 = 32;
const C_THREAD: u8 = 64;
const CLASSES: [(&str, u8); 7] = [
    ("ipc", C_IPC),
    ("pf", C_PF),
    ("exc", C_EXC),
    ("irq", C_IRQ),
    ("tick", C_TICK),
    ("switch", C_SWITCH),
    ("thread", C_THREAD),
];

fn class(k: Kind, a: u64) -> u8 {
    match k {
        Kind::IpcEntry | Kind::IpcDone => C_IPC,
        Kind::PageFault => C_PF,
        Kind::Exception => C_EXC,
        Kind::Irq if a == 0 => C_TICK,
        Kind::Irq => C_IRQ,
        Kind::Switch => C_SWITCH,
        _ => C_THREAD,
    }
}

#[derive(Clone, Copy)]
struct Event {
    tsc: u64,
    kind: Kind,
    thread: u64,
    a: u64,
    b: u64,
    c: u64,
}

const RING: usize = 4096;

struct Trace {
    on: bool,
    /// Events ever written (the ring holds the last `RING`).
    written: u64,
    classes: u8,
    /// Only events of this thread (or naming it as partner); 0 = all.
    thread_filter: u64,
    last_running: u64,
    ring: [Event; RING],
}

static TRACE: KernelCell<Trace> = KernelCell::new(Trace {
    on: false,
    written: 0,
    classes: !C_TICK,
    thread_filter: 0,
    last_running: 0,
    ring: [Event {
        tsc: 0,
        kind: Kind::Irq,
        thread: 0,
        a: 0,
        b: 0,
        c: 0,
    }; RING],
});

fn record(kind: Kind, thread: ThreadId, a: u64, b: u64, c: u64) {
    // SAFETY: the only borrow of TRACE in use; it ends before any call that touches it.
    let t = unsafe { TRACE.get() };
    if class(kind, a) & t.classes == 0 {
        return;
    }
    if t.thread_filter != 0 {
        let no = |raw: u64| ThreadId::from_raw(raw).number();
        let f = t.thread_filter;
        let partner = matches!(
            kind,
            Kind::IpcEntry | Kind::IpcDone | Kind::Switch | Kind::ThreadCreate | Kind::ThreadDelete
        ) && (no(a) == f || (kind == Kind::IpcEntry && no(b) == f));
        if thread.number() != f && !partner {
            return;
        }
    }
    let i = (t.written % RING as u64) as usize;
    t.ring[i] = Event {
        tsc: crate::arch::cpu::rdtsc(),
        kind,
        thread: thread.raw(),
        a,
        b,
        c,
    };
    t.written += 1;
}

fn note_running() {
    let cur = view::current_id();
    // SAFETY: the only borrow of TRACE in use; it ends before any call that touches it.
    let t = unsafe { TRACE.get() };
    if t.last_running != cur.raw() {
        let prev = t.last_running;
        t.last_running = cur.raw();
        record(Kind::Switch, cur, prev, 0, 0);
    }
}

extern "C" fn traced_syscall(f: &mut TrapFrame) {
    note_running();
    let me = view::current_id();
    let call = identify(f.rcx);
    let ipc = matches!(call, Some(Syscall::Ipc | Syscall::Lipc));
    let tc = matches!(call, Some(Syscall::ThreadControl));
    // ThreadControl: RDI = dest, R8 = space specifier (see `syscall_dispatch`).
    let (dest, space_spec) = (ThreadId::from_raw(f.rdi), ThreadId::from_raw(f.r8));
    let (existed, last_in_space) = if tc {
        (view::thread_exists(dest), view::last_in_its_space(dest))
    } else {
        (false, false)
    };
    if ipc {
        let tag = view::mr0_and_error(me).0;
        record(Kind::IpcEntry, me, f.rsi, f.rdx, tag);
    }
    // SAFETY: the real dispatcher, with the frame the entry code gave us.
    unsafe { syscall_dispatch(f) };
    note_running();
    if ipc {
        let (tag, code) = view::mr0_and_error(me);
        let err = if MsgTag::from_raw(tag).error() {
            code
        } else {
            0
        };
        record(Kind::IpcDone, me, f.rsi, tag, err);
    } else if tc && f.rax == 1 {
        if space_spec.is_nil() {
            if existed {
                record(Kind::ThreadDelete, me, dest.raw(), 0, 0);
                if last_in_space {
                    record(Kind::SpaceDelete, me, dest.raw(), 0, 0);
                }
            }
        } else if !existed {
            record(Kind::ThreadCreate, me, dest.raw(), space_spec.raw(), 0);
            if space_spec == dest {
                record(Kind::SpaceCreate, me, dest.raw(), 0, 0);
            }
        } else {
            record(Kind::ThreadModify, me, dest.raw(), 0, 0);
        }
    }
}

extern "C" fn traced_trap(f: &mut TrapFrame) {
    note_running();
    let me = view::current_id();
    let v = f.vector;
    if v >= 32 {
        record(Kind::Irq, me, v - 32, 0, 0);
    } else if f.is_from_user() {
        if v == 14 {
            let cr2 = crate::arch::cpu::read_cr2();
            record(Kind::PageFault, me, cr2, f.rip, f.error);
        } else if v != 3 {
            // (int3 is the KDB interface: printing would flood the trace.)
            record(Kind::Exception, me, v, f.rip, f.error);
        }
    }
    // SAFETY: the real dispatcher, with the frame the entry code gave us.
    unsafe { trap_dispatch(f) };
    note_running();
}

/// #DB from user mode goes to the shell's single-step and breakpoint handling first while
/// either is armed; everything else on to the (traced or plain) dispatcher.
extern "C" fn debug_trap(f: &mut TrapFrame) {
    if f.vector == 1 && f.is_from_user() && super::shell::user_debug_trap(f) {
        return;
    }
    // SAFETY: the only borrow of TRACE in use; it ends before any call that touches it.
    if (unsafe { TRACE.get() }).on {
        traced_trap(f)
    } else {
        // SAFETY: the real dispatcher, with the frame the entry code gave us.
        unsafe { trap_dispatch(f) }
    }
}

/// Points the entry code's vectors at what is in use: the trace wrappers while the trace is
/// on, the #DB filter while a single step or breakpoint is armed, else the plain dispatchers.
pub fn update_vectors() {
    // SAFETY: the only borrow of TRACE in use; it ends before any call that touches it.
    let on = (unsafe { TRACE.get() }).on;
    let s = if on {
        traced_syscall as extern "C" fn(&mut TrapFrame) as usize
    } else {
        // Trace off: the fast path again (it falls back to `syscall_dispatch`).
        crate::fastpath::fastpath_dispatch as extern "C" fn(&mut TrapFrame) as usize
    };
    let t = if super::shell::debug_trap_armed() {
        debug_trap as extern "C" fn(&mut TrapFrame) as usize
    } else if on {
        traced_trap as extern "C" fn(&mut TrapFrame) as usize
    } else {
        trap_dispatch as unsafe extern "C" fn(&mut TrapFrame) as usize
    };
    // SAFETY: the vectors are read only by the entry code, which cannot run now (interrupts
    // are off in the debugger); both targets take the frame exactly as the originals.
    unsafe {
        core::ptr::addr_of_mut!(syscall_dispatch_vector).write_volatile(s);
        core::ptr::addr_of_mut!(trap_dispatch_vector).write_volatile(t);
    }
}

fn set_on(on: bool) {
    // SAFETY: the only borrow of TRACE in use; it ends before any call that touches it.
    let t = unsafe { TRACE.get() };
    t.on = on;
    t.last_running = view::current_id().raw();
    update_vectors();
}

fn tid(raw: u64) -> impl core::fmt::Display {
    super::shell::Tid(ThreadId::from_raw(raw))
}

fn print_event(e: &Event, prev_tsc: u64) {
    let delta = e.tsc.wrapping_sub(prev_tsc);
    let th = tid(e.thread);
    crate::kprint!("{:>16} +{:<9} {} ", e.tsc, delta, th);
    match e.kind {
        Kind::IpcEntry => {
            let tag = MsgTag::from_raw(e.c);
            let to = ThreadId::from_raw(e.a);
            if !to.is_nil() {
                crate::kprint!(
                    "ipc send to {} tag {:#x} (label {:#x}, u {}, t {})",
                    tid(e.a),
                    e.c,
                    tag.label(),
                    tag.untyped(),
                    tag.typed()
                );
            } else {
                crate::kprint!("ipc");
            }
            if !ThreadId::from_raw(e.b).is_nil() {
                crate::kprint!(", then receive from {}", tid(e.b));
            }
            kprintln!();
        }
        Kind::IpcDone => {
            let tag = MsgTag::from_raw(e.b);
            if e.c != 0 {
                kprintln!(
                    "ipc error {:#x} ({})",
                    e.c,
                    super::shell::ipc_error_name(e.c)
                );
            } else if ThreadId::from_raw(e.a).is_nil() {
                kprintln!("ipc sent");
            } else {
                kprintln!(
                    "ipc received from {} tag {:#x} (label {:#x}, u {}, t {})",
                    tid(e.a),
                    e.b,
                    tag.label(),
                    tag.untyped(),
                    tag.typed()
                );
            }
        }
        Kind::PageFault => kprintln!("page fault at {:#x}, ip {:#x}, error {:#x}", e.a, e.b, e.c),
        Kind::Exception => kprintln!(
            "exception {} ({}), ip {:#x}, error {:#x}",
            e.a,
            crate::arch::trap::EXCEPTION_NAMES
                .get(e.a as usize)
                .copied()
                .unwrap_or("?"),
            e.b,
            e.c
        ),
        Kind::Irq => kprintln!("interrupt {}", e.a),
        Kind::Switch => kprintln!("switch from {}", tid(e.a)),
        Kind::ThreadCreate => kprintln!("created thread {} in space of {}", tid(e.a), tid(e.b)),
        Kind::ThreadDelete => kprintln!("deleted thread {}", tid(e.a)),
        Kind::ThreadModify => kprintln!("modified thread {}", tid(e.a)),
        Kind::SpaceCreate => kprintln!("created a space with thread {}", tid(e.a)),
        Kind::SpaceDelete => kprintln!("deleted the space of thread {}", tid(e.a)),
    }
}

fn show(n: u64) {
    // SAFETY: the only borrow of TRACE in use; it ends before any call that touches it.
    let t = unsafe { TRACE.get() };
    let held = t.written.min(RING as u64);
    let n = n.min(held);
    kprintln!(
        "trace: {} events recorded, showing the last {} (tsc, +delta, thread, event)",
        t.written,
        n
    );
    let mut prev = 0;
    for k in (t.written - n)..t.written {
        let e = t.ring[(k % RING as u64) as usize];
        print_event(&e, if prev == 0 { e.tsc } else { prev });
        prev = e.tsc;
    }
    kprintln!("trace: end");
}

fn status() {
    // SAFETY: the only borrow of TRACE in use; it ends before any call that touches it.
    let t = unsafe { TRACE.get() };
    crate::kprint!(
        "trace: {}, {} events, classes:",
        if t.on { "on" } else { "off" },
        t.written
    );
    for (name, bit) in CLASSES {
        if t.classes & bit != 0 {
            crate::kprint!(" {}", name);
        }
    }
    if t.thread_filter != 0 {
        kprintln!(", thread {:#x} only", t.thread_filter);
    } else {
        kprintln!(", all threads");
    }
}

/// The `trace` command: `trace [on|off|clear|show [n]|only <classes>|thread <no>|all]`.
pub fn command(mut args: core::str::SplitAsciiWhitespace) {
    match args.next() {
        None => show(40),
        Some("on") => {
            set_on(true);
            status();
        }
        Some("off") => {
            set_on(false);
            status();
        }
        Some("clear") => {
            // SAFETY: the only borrow of TRACE in use; it ends before any call that touches it.
            (unsafe { TRACE.get() }).written = 0;
            status();
        }
        Some("status") => status(),
        Some("show") => show(
            args.next()
                .and_then(super::console::parse_num)
                .unwrap_or(40),
        ),
        Some("only") => {
            let mut mask = 0;
            for w in args {
                for part in w.split(',') {
                    match CLASSES.iter().find(|(n, _)| *n == part) {
                        Some((_, b)) => mask |= b,
                        None => kprintln!("trace: unknown class {}", part),
                    }
                }
            }
            // SAFETY: the only borrow of TRACE in use; it ends before any call that touches it.
            (unsafe { TRACE.get() }).classes = if mask == 0 { !C_TICK } else { mask };
            status();
        }
        Some("thread") => match args.next().and_then(super::shell::parse_thread_no) {
            Some(no) => {
                // SAFETY: the only borrow of TRACE in use; it ends before any call that touches it.
                (unsafe { TRACE.get() }).thread_filter = no;
                status();
            }
            None => kprintln!("usage: trace thread <number>"),
        },
        Some("all") => {
            // SAFETY: the only borrow of TRACE in use; it ends before any call that touches it.
            let t = unsafe { TRACE.get() };
            t.thread_filter = 0;
            t.classes = !C_TICK;
            status();
        }
        Some(other) => kprintln!("trace: unknown argument {}", other),
    }
}
