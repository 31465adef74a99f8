//! The interactive shell: entered from the entry points of `mod.rs`, it reads commands from the
//! serial console until `continue` (or `step`, or `reboot`). Every command has a one-line
//! `help` entry; state is read through `view.rs` only.

use abi::kip::MemoryInfo;
use abi::thread_id::ThreadId;

use super::console::{self, parse_num};
use super::{Reason, hw, trace, view};
use crate::arch::trap::TrapFrame;
use crate::sync::KernelCell;
use crate::{kprint, kprintln};

/// A thread id for printing: `0x<number>.<version>` for global ids.
pub struct Tid(pub ThreadId);

impl core::fmt::Display for Tid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let t = self.0;
        if t.is_nil() {
            f.pad("nil")
        } else if t.is_any() {
            f.pad("any")
        } else if t.is_any_local() {
            f.pad("anylocal")
        } else if t.is_local() {
            let mut b = Buf::new();
            let _ = core::fmt::write(&mut b, format_args!("local:{:#x}", t.raw()));
            f.pad(b.as_str())
        } else {
            let mut b = Buf::new();
            let _ = core::fmt::write(&mut b, format_args!("{:#x}.{}", t.number(), t.version()));
            f.pad(b.as_str())
        }
    }
}

/// A small formatting buffer (no allocator in the kernel).
struct Buf {
    b: [u8; 40],
    n: usize,
}

impl Buf {
    fn new() -> Self {
        Buf { b: [0; 40], n: 0 }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.b[..self.n]).unwrap_or("?")
    }
}

impl core::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let take = s.len().min(self.b.len() - self.n);
        self.b[self.n..self.n + take].copy_from_slice(&s.as_bytes()[..take]);
        self.n += take;
        Ok(())
    }
}

/// A thread number from `0x330`, `0x330.1`, `816` or a raw global id.
pub fn parse_thread_no(s: &str) -> Option<u64> {
    let n = parse_num(s.split('.').next()?)?;
    Some(if n >= 1 << 18 {
        ThreadId::from_raw(n).number()
    } else {
        n
    })
}

/// The name of an IPC error code (ErrorCode TCR, spec 5.7).
pub fn ipc_error_name(code: u64) -> &'static str {
    let phase = code & 1;
    match ((code >> 1) & 7, phase) {
        (1, 0) => "send timeout",
        (1, _) => "receive timeout",
        (2, 0) => "send: no partner",
        (2, _) => "receive: no partner",
        (3, 0) => "send canceled",
        (3, _) => "receive canceled",
        (4, _) => "message overflow",
        (5, _) => "transfer timeout (own space)",
        (6, _) => "transfer timeout (partner's space)",
        (7, _) => "aborted",
        _ => "?",
    }
}

struct Shell {
    active: bool,
    /// Thread being single-stepped.
    step: Option<u64>,
    /// Instruction breakpoint: (thread number, address).
    bp: Option<(u64, u64)>,
}

static SHELL: KernelCell<Shell> = KernelCell::new(Shell {
    active: false,
    step: None,
    bp: None,
});

type Command = fn(&mut Session, core::str::SplitAsciiWhitespace);

struct Session {
    frame: *mut TrapFrame,
    leave: bool,
}

const COMMANDS: &[(&str, &str, Command)] = &[
    ("help", "this list", cmd_help),
    (
        "threads",
        "every thread: state (partner, timeout), priority, space, pager, scheduler",
        cmd_threads,
    ),
    (
        "thread",
        "thread <no>: one thread's TCB, user registers and UTCB (MRs, BRs, TCRs)",
        cmd_thread,
    ),
    (
        "regs",
        "the registers the debugger was entered with",
        cmd_regs,
    ),
    (
        "spaces",
        "every address space: first thread, threads, KIP and UTCB areas",
        cmd_spaces,
    ),
    (
        "maps",
        "maps <thread no>: the mappings of its space (range, frame, rights, size, parent)",
        cmd_maps,
    ),
    (
        "frame",
        "frame <phys addr>: the mapping tree of that frame, from sigma0 down",
        cmd_frame,
    ),
    (
        "kip",
        "the kernel interface page and its memory descriptors",
        cmd_kip,
    ),
    ("ready", "ready queues by priority, then timers", cmd_ready),
    (
        "timers",
        "blocked threads with a timeout, soonest first",
        cmd_timers,
    ),
    ("mem", "kernel memory use by kind", cmd_mem),
    (
        "irqs",
        "interrupt lines, their handlers, pending and masked",
        cmd_irqs,
    ),
    (
        "trace",
        "trace [on|off|clear|status|show [n]|only <ipc,pf,exc,irq,tick,switch,thread>|thread <no>|all]",
        cmd_trace,
    ),
    (
        "step",
        "step [<no>]: let a user thread run one instruction, then come back here",
        cmd_step,
    ),
    (
        "bp",
        "bp <no> <addr> | bp clear: stop when that user thread reaches addr",
        cmd_bp,
    ),
    (
        "continue",
        "leave the debugger, the system runs on (also: c)",
        cmd_continue,
    ),
    ("reboot", "reset the machine", cmd_reboot),
];

fn reason_text(r: Reason) -> &'static str {
    match r {
        Reason::Key => "ESC on the serial line",
        Reason::Break => "BREAK on the serial line",
        Reason::UserEnter => "KDB_Enter from a privileged space",
        Reason::KernelFault => "exception in kernel mode",
        Reason::Panic => "kernel panic",
        Reason::UserFault(_) => "undeliverable user fault",
        Reason::Step => "single step",
        Reason::Breakpoint => "breakpoint",
    }
}

/// Runs the shell until a command leaves it.
pub fn enter(reason: Reason, frame: Option<&mut TrapFrame>) {
    // SAFETY: the only borrow of SHELL in use; it ends before any call that touches it.
    let sh = unsafe { SHELL.get() };
    if sh.active {
        kprintln!(
            "kdb: entered again while active ({}); ignored",
            reason_text(reason)
        );
        return;
    }
    sh.active = true;
    let frame = frame.map_or(core::ptr::null_mut(), |f| f as *mut TrapFrame);
    kprint!(
        "\n--- kdb: {} on thread {}",
        reason_text(reason),
        Tid(view::current_id())
    );
    if let Reason::UserFault(why) = reason {
        kprint!(" ({})", why);
    }
    if !frame.is_null() {
        // SAFETY: the entry frame stays valid while the shell runs on this stack.
        kprint!(" at rip {:#x}", unsafe { (*frame).rip });
    }
    kprintln!(" ---");
    kprintln!("kdb: type 'help' for the commands");
    let mut s = Session {
        frame,
        leave: false,
    };
    while !s.leave {
        let line = console::read_line("kdb> ");
        let text = line.as_str();
        let mut args = text.split_ascii_whitespace();
        let Some(word) = args.next() else { continue };
        let word = if word == "c" { "continue" } else { word };
        match COMMANDS.iter().find(|(n, _, _)| *n == word) {
            Some((_, _, f)) => f(&mut s, args),
            None => kprintln!("kdb: unknown command '{}' (try 'help')", word),
        }
    }
    // SAFETY: the only borrow of SHELL in use; it ends before any call that touches it.
    (unsafe { SHELL.get() }).active = false;
}

/// Is a single step or a breakpoint armed (so #DB must come here first)?
pub fn debug_trap_armed() -> bool {
    // SAFETY: the only borrow of SHELL in use; it ends before any call that touches it.
    let sh = unsafe { SHELL.get() };
    sh.step.is_some() || sh.bp.is_some()
}

/// #DB from user mode (reached through `trace::debug_trap` while armed): the debugger's single
/// step or breakpoint?
pub fn user_debug_trap(frame: &mut TrapFrame) -> bool {
    let dr6 = hw::read_dr6();
    hw::clear_dr6();
    let cur = view::current_id().number();
    // SAFETY: the only borrow of SHELL in use; it ends before any call that touches it.
    let sh = unsafe { SHELL.get() };
    if dr6 & 0x4000 != 0 && sh.step == Some(cur) {
        sh.step = None;
        trace::update_vectors();
        frame.rflags &= !0x100;
        enter(Reason::Step, Some(frame));
        return true;
    }
    if dr6 & 0xF != 0
        && let Some((no, _)) = sh.bp
    {
        if no == cur {
            enter(Reason::Breakpoint, Some(frame));
        }
        // Run on past the breakpoint (RF suppresses it for one instruction).
        view::set_resume_flag(frame);
        return true;
    }
    false
}

fn cmd_help(_: &mut Session, _: core::str::SplitAsciiWhitespace) {
    for (name, text, _) in COMMANDS {
        kprintln!("  {:<9} {}", name, text);
    }
}

/// Space keys and their names (first thread), collected once per command.
struct SpaceNames {
    keys: [(u64, ThreadId); 64],
    n: usize,
}

impl SpaceNames {
    fn collect() -> Self {
        let mut s = SpaceNames {
            keys: [(0, ThreadId::NIL); 64],
            n: 0,
        };
        view::spaces(|v| {
            if s.n < s.keys.len() {
                s.keys[s.n] = (v.key, v.first_thread);
                s.n += 1;
            }
        });
        s
    }
    fn name(&self, key: u64) -> ThreadId {
        self.keys[..self.n]
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, t)| *t)
            .unwrap_or(ThreadId::NIL)
    }
}

fn print_deadline(d: Option<u64>) -> impl core::fmt::Display {
    let mut b = Buf::new();
    match d {
        None => {
            let _ = core::fmt::write(&mut b, format_args!("-"));
        }
        Some(d) => {
            let now = view::now_us();
            let _ = core::fmt::write(&mut b, format_args!("{}us", d.saturating_sub(now)));
        }
    }
    BufDisplay(b)
}

struct BufDisplay(Buf);

impl core::fmt::Display for BufDisplay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.pad(self.0.as_str())
    }
}

fn cmd_threads(_: &mut Session, _: core::str::SplitAsciiWhitespace) {
    let names = SpaceNames::collect();
    let cur = view::current_id();
    let idle = view::idle_id();
    kprintln!(
        "  {:<10} {:<9} {:<10} {:<10} {:>4}  {:<10} {:<10} {:<10}",
        "thread",
        "state",
        "partner",
        "timeout",
        "prio",
        "space",
        "pager",
        "scheduler"
    );
    view::threads(|t| {
        let mark = if t.id == cur { '*' } else { ' ' };
        let state = if t.halted { "halted" } else { t.state };
        let partner = t.partner.map(Tid);
        let space: &dyn core::fmt::Display = if t.kernel_thread {
            &"kernel"
        } else {
            &Tid(names.name(t.space))
        };
        kprint!("{} {:<10} {:<9} ", mark, Tid(t.id), state);
        match partner {
            Some(p) => kprint!("{:<10} ", p),
            None => kprint!("{:<10} ", "-"),
        }
        kprint!(
            "{:<10} {:>4}  {:<10} {:<10} {:<10}",
            print_deadline(t.deadline_us),
            t.priority,
            space,
            Tid(t.pager),
            Tid(t.scheduler)
        );
        if t.id == idle {
            kprint!(" (idle)");
        }
        kprintln!();
    });
    kprintln!("  (* = current; timeout = time left)");
}

fn arg_thread(args: &mut core::str::SplitAsciiWhitespace, usage: &str) -> Option<u64> {
    let no = args.next().and_then(parse_thread_no);
    if no.is_none() {
        kprintln!("usage: {}", usage);
    }
    no
}

fn print_regs(f: &TrapFrame) {
    kprintln!(
        "  rip {:#018x}  rsp {:#018x}  rflags {:#x}  cs {:#x}  ss {:#x}",
        f.rip,
        f.rsp,
        f.rflags,
        f.cs,
        f.ss
    );
    kprintln!(
        "  rax {:#018x}  rbx {:#018x}  rcx {:#018x}  rdx {:#018x}",
        f.rax,
        f.rbx,
        f.rcx,
        f.rdx
    );
    kprintln!(
        "  rsi {:#018x}  rdi {:#018x}  rbp {:#018x}  r8  {:#018x}",
        f.rsi,
        f.rdi,
        f.rbp,
        f.r8
    );
    kprintln!(
        "  r9  {:#018x}  r10 {:#018x}  r11 {:#018x}  r12 {:#018x}",
        f.r9,
        f.r10,
        f.r11,
        f.r12
    );
    kprintln!(
        "  r13 {:#018x}  r14 {:#018x}  r15 {:#018x}",
        f.r13,
        f.r14,
        f.r15
    );
}

fn cmd_thread(_: &mut Session, mut args: core::str::SplitAsciiWhitespace) {
    let Some(no) = arg_thread(&mut args, "thread <no>") else {
        return;
    };
    let Some(t) = view::thread(no) else {
        kprintln!("kdb: no thread {:#x}", no);
        return;
    };
    let names = SpaceNames::collect();
    kprint!(
        "thread {}: {}",
        Tid(t.id),
        if t.halted { "halted" } else { t.state }
    );
    if let Some(p) = t.partner {
        kprint!(" (partner {})", Tid(p));
    }
    kprintln!(
        ", timeout {}, priority {}, timeslice {}us (left {}us)",
        print_deadline(t.deadline_us),
        t.priority,
        t.timeslice_us,
        t.slice_left_us
    );
    kprintln!(
        "  space {}, scheduler {}, pager {}, exception handler {}, {} queued sender(s)",
        Tid(names.name(t.space)),
        Tid(t.scheduler),
        Tid(t.pager),
        Tid(t.exc_handler),
        t.queued_senders
    );
    if !t.activated {
        kprintln!("  not activated (no UTCB)");
        return;
    }
    kprintln!("  UTCB at {:#x}", t.utcb_location);
    if let Some(r) = view::user_regs(no) {
        kprintln!("  user registers:");
        print_regs(&r);
    }
    let Some(u) = view::utcb_of(no) else { return };
    kprintln!("  TCRs:");
    for chunk in u.tcrs.chunks(3) {
        kprint!(" ");
        for (name, v) in chunk {
            kprint!(" {:>17} {:#018x}", name, v);
        }
        kprintln!();
    }
    // MRs: MR0 (the tag) and the words it names, at least 8.
    let tag = abi::msgtag::MsgTag::from_raw(u.mrs[0]);
    let n = ((tag.untyped() + tag.typed() + 1) as usize).clamp(8, 64);
    kprintln!(
        "  MRs (MR0 = tag, label {:#x}, u {}, t {}):",
        tag.label(),
        tag.untyped(),
        tag.typed()
    );
    for (row, chunk) in u.mrs[..n].chunks(4).enumerate() {
        kprint!("   ");
        for (i, v) in chunk.iter().enumerate() {
            kprint!(" MR{:<2} {:#018x}", row * 4 + i, v);
        }
        kprintln!();
    }
    kprintln!("  BRs (BR0 = acceptor):");
    for (row, chunk) in u.brs[..8].chunks(4).enumerate() {
        kprint!("   ");
        for (i, v) in chunk.iter().enumerate() {
            kprint!(" BR{:<2} {:#018x}", row * 4 + i, v);
        }
        kprintln!();
    }
}

fn cmd_regs(s: &mut Session, _: core::str::SplitAsciiWhitespace) {
    if s.frame.is_null() {
        kprintln!("kdb: no register frame (entered from a panic)");
        return;
    }
    // SAFETY: the entry frame stays valid while the shell runs on this stack.
    let f = unsafe { &*s.frame };
    kprintln!(
        "entry frame of thread {} (vector {:#x}, {} mode):",
        Tid(view::current_id()),
        f.vector,
        if f.is_from_user() { "user" } else { "kernel" }
    );
    print_regs(f);
}

fn print_fpage(f: abi::fpage::Fpage) -> impl core::fmt::Display {
    let mut b = Buf::new();
    if f.is_nil() {
        let _ = core::fmt::write(&mut b, format_args!("-"));
    } else {
        let _ = core::fmt::write(&mut b, format_args!("{:#x}+{}K", f.base(), f.size() >> 10));
    }
    BufDisplay(b)
}

fn cmd_spaces(_: &mut Session, _: core::str::SplitAsciiWhitespace) {
    kprintln!(
        "  {:<10} {:>7}  {:<16} {:<16} {:<12} flags",
        "space",
        "threads",
        "KIP area",
        "UTCB area",
        "page table"
    );
    view::spaces(|s| {
        kprint!(
            "  {:<10} {:>7}  {:<16} {:<16} {:<#12x}",
            Tid(s.first_thread),
            s.threads,
            print_fpage(s.kip_area),
            print_fpage(s.utcb_area),
            s.pml4
        );
        if s.sigma0 {
            kprint!(" sigma0");
        }
        if s.privileged {
            kprint!(" privileged");
        }
        kprintln!();
    });
    kprintln!("  (a space is named by its lowest-numbered thread)");
}

fn rights(r: u8) -> [u8; 3] {
    [
        if r & 4 != 0 { b'r' } else { b'-' },
        if r & 2 != 0 { b'w' } else { b'-' },
        if r & 1 != 0 { b'x' } else { b'-' },
    ]
}

fn size_text(log2: u8) -> BufDisplay {
    let mut b = Buf::new();
    let _ = match log2 {
        30.. => core::fmt::write(&mut b, format_args!("{}G", 1u64 << (log2 - 30))),
        20.. => core::fmt::write(&mut b, format_args!("{}M", 1u64 << (log2 - 20))),
        _ => core::fmt::write(&mut b, format_args!("{}K", 1u64 << log2.saturating_sub(10))),
    };
    BufDisplay(b)
}

fn print_mapping(m: &view::MapView, names: &SpaceNames, indent: usize) {
    let size = 1u64 << m.size_log2.min(63);
    let r = rights(m.rights);
    kprint!(
        "  {:indent$}{:#014x}-{:#014x} -> {:#012x} {} {:>5} ",
        "",
        m.vaddr,
        m.vaddr + (size - 1),
        m.paddr,
        core::str::from_utf8(&r).unwrap_or("?"),
        size_text(m.size_log2),
        indent = indent
    );
    kprint!("space {}", Tid(names.name(m.space)));
    match m.parent {
        Some((ps, pa)) => kprintln!(" parent {}@{:#x}", Tid(names.name(ps)), pa),
        None => kprintln!(" (sigma0 root)"),
    }
}

fn cmd_maps(_: &mut Session, mut args: core::str::SplitAsciiWhitespace) {
    let Some(no) = arg_thread(&mut args, "maps <thread no>") else {
        return;
    };
    let Some(s) = view::space_of(no) else {
        kprintln!("kdb: no user thread {:#x}", no);
        return;
    };
    let names = SpaceNames::collect();
    kprintln!(
        "mappings of the space of {} (virtual range -> frame, rights, size, parent):",
        Tid(s.first_thread)
    );
    let mut n = 0;
    view::mappings(s.key, |m| {
        if n < 200 {
            print_mapping(m, &names, 0);
        }
        n += 1;
    });
    kprintln!(
        "  {} mapping(s){}",
        n,
        if n > 200 { ", first 200 shown" } else { "" }
    );
    if s.sigma0 {
        kprintln!("  (sigma0's own memory is idempotent; only nodes mapped on are listed)");
    }
}

/// The mappings `frame` collects (static: the shell may run on an already deep stack).
static FRAME_SCRATCH: KernelCell<[Option<view::MapView>; 64]> = KernelCell::new([None; 64]);

fn cmd_frame(_: &mut Session, mut args: core::str::SplitAsciiWhitespace) {
    let Some(pa) = args.next().and_then(parse_num) else {
        kprintln!("usage: frame <physical address>");
        return;
    };
    let names = SpaceNames::collect();
    // SAFETY: the only borrow of FRAME_SCRATCH in use; it ends before any call that touches it.
    let all = unsafe { FRAME_SCRATCH.get() };
    let mut n = 0;
    view::mappings_of_frame(pa, |m| {
        if n < all.len() {
            all[n] = Some(*m);
            n += 1;
        }
    });
    kprintln!(
        "mapping tree of frame {:#x} ({} mapping(s)):",
        pa & !0xFFF,
        n
    );
    let maps = &all[..n];
    // Roots: mappings whose parent is not among them (sigma0's node, or one not covering pa).
    fn is_child(c: &view::MapView, p: &view::MapView) -> bool {
        match c.parent {
            Some((ps, pa)) => {
                ps == p.space && pa >= p.vaddr && pa - p.vaddr < (1u64 << p.size_log2.min(63))
            }
            None => false,
        }
    }
    fn walk(maps: &[Option<view::MapView>], i: usize, depth: usize, names: &SpaceNames) {
        let Some(m) = maps[i] else { return };
        print_mapping(&m, names, depth * 2);
        if depth > 16 {
            return;
        }
        for (j, c) in maps.iter().enumerate() {
            if let Some(c) = c
                && j != i
                && is_child(c, &m)
            {
                walk(maps, j, depth + 1, names);
            }
        }
    }
    for (i, m) in maps.iter().enumerate() {
        let Some(m) = m else { continue };
        let has_parent = maps.iter().flatten().any(|p| is_child(m, p));
        if !has_parent {
            walk(maps, i, 0, &names);
        }
    }
    if n == 0 {
        kprintln!("  (not mapped through the mapping database)");
    } else {
        kprintln!("  first word of the frame: {:#018x}", view::phys_word(pa));
    }
}

fn cmd_kip(_: &mut Session, _: core::str::SplitAsciiWhitespace) {
    // SAFETY: the only reference to the KIP in use.
    let k = unsafe { crate::kip::kip() };
    let v = k.version;
    let n = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    kprintln!(
        "KIP at phys {:#x}: magic {:#x}, API version {:#x}, flags {:#x}, kernel id {:#x}",
        crate::kip::kip_phys(),
        k.kip.magic,
        k.kip.api_version,
        k.kip.api_flags,
        k.kernel_desc.kernel_id
    );
    kprintln!(
        "  version \"{}\"",
        core::str::from_utf8(&v[..n]).unwrap_or("?")
    );
    kprintln!(
        "  ThreadInfo {:#x}, UtcbInfo {:#x}, KipAreaInfo {:#x}, PageInfo {:#x}, ClockInfo {:#x}",
        k.kip.thread_info,
        k.kip.utcb_info,
        k.kip.kip_area_info,
        k.kip.page_info,
        k.kip.clock_info
    );
    kprintln!(
        "  system calls: ipc {:#x}, lipc {:#x}, thread_control {:#x}, schedule {:#x}",
        k.kip.ipc,
        k.kip.lipc,
        k.kip.thread_control,
        k.kip.schedule
    );
    let count = MemoryInfo(k.kip.memory_info).count() as usize;
    kprintln!("  memory descriptors ({}):", count);
    for d in k.mem_desc.iter().take(count) {
        let ty = match d.raw_type() {
            1 => "conventional",
            2 => "reserved",
            3 => "dedicated",
            4 => "shared",
            0xE => "boot loader",
            0xF => "architecture",
            _ => "undefined",
        };
        kprintln!(
            "    {:#014x}-{:#014x} {:<12} subtype {} {}",
            d.low(),
            d.high(),
            ty,
            d.subtype(),
            if d.is_virtual() {
                "virtual"
            } else {
                "physical"
            }
        );
    }
}

fn cmd_ready(s: &mut Session, a: core::str::SplitAsciiWhitespace) {
    kprintln!("ready queues (highest priority first; the running thread is queued too):");
    let mut any = false;
    view::ready_queues(|prio, ids| {
        any = true;
        kprint!("  prio {:>3}:", prio);
        for id in ids {
            kprint!(" {}", Tid(*id));
        }
        kprintln!();
    });
    if !any {
        kprintln!("  (none: idle)");
    }
    cmd_timers(s, a);
}

fn cmd_timers(_: &mut Session, _: core::str::SplitAsciiWhitespace) {
    let now = view::now_us();
    kprintln!(
        "timers (now {}us since boot, {} ticks):",
        now,
        view::ticks()
    );
    let mut n = 0;
    view::timers(|id, d| {
        n += 1;
        kprintln!("  {:<10} wakes in {}us", Tid(id), d.saturating_sub(now));
    });
    if n == 0 {
        kprintln!("  (none)");
    }
}

fn cmd_mem(_: &mut Session, _: core::str::SplitAsciiWhitespace) {
    let m = view::memory();
    let total = (m.pool_end - m.pool_start) >> 12;
    kprintln!(
        "kernel memory pool {:#x}-{:#x}: {} of {} frames in use ({} KiB)",
        m.pool_start,
        m.pool_end - 1,
        m.in_use,
        total,
        m.in_use * 4
    );
    let other = m
        .in_use
        .saturating_sub(m.thread_frames + m.space_frames + m.page_tables + m.utcb_pages);
    kprintln!(
        "  threads      {:>7} frames ({} threads: kernel stack + TCB)",
        m.thread_frames,
        m.threads
    );
    kprintln!(
        "  spaces       {:>7} frames ({} spaces: descriptor + PML4)",
        m.space_frames,
        m.spaces
    );
    kprintln!("  page tables  {:>7} frames (user halves)", m.page_tables);
    kprintln!("  UTCB pages   {:>7} frames", m.utcb_pages);
    kprintln!(
        "  kernel       {:>7} frames (kernel page tables, stack-region tables)",
        other
    );
    kprintln!(
        "  mapping db   {} of {} nodes in use (static, {} KiB)",
        m.mapdb_used,
        m.mapdb_capacity,
        m.mapdb_bytes >> 10
    );
}

fn cmd_irqs(_: &mut Session, _: core::str::SplitAsciiWhitespace) {
    kprintln!("  irq  handler    pending  masked  prio");
    view::irqs(|l| {
        let handler: &dyn core::fmt::Display = match l.irq {
            0 => &"kernel (timer tick)",
            2 => &"kernel (PIC cascade)",
            _ if l.handler.is_nil() => &"-",
            _ => &Tid(l.handler),
        };
        kprintln!(
            "  {:>3}  {:<10} {:<8} {:<7} {}",
            l.irq,
            handler,
            if l.pending { "yes" } else { "no" },
            if l.masked { "yes" } else { "no" },
            l.priority
        );
    });
}

fn cmd_trace(_: &mut Session, args: core::str::SplitAsciiWhitespace) {
    trace::command(args);
}

fn cmd_step(s: &mut Session, mut args: core::str::SplitAsciiWhitespace) {
    // SAFETY: the only borrow of SHELL in use; it ends before any call that touches it.
    let sh = unsafe { SHELL.get() };
    let no = match args.next() {
        Some(a) => parse_thread_no(a),
        None => sh.step.or(Some(view::current_id().number())),
    };
    let Some(no) = no else {
        kprintln!("usage: step [<thread no>]");
        return;
    };
    if !view::set_single_step(no, true) {
        kprintln!("kdb: {:#x} is not a user thread", no);
        return;
    }
    sh.step = Some(no);
    trace::update_vectors();
    kprintln!(
        "kdb: thread {:#x} runs one instruction when it next runs",
        no
    );
    s.leave = true;
}

fn cmd_bp(_: &mut Session, mut args: core::str::SplitAsciiWhitespace) {
    // SAFETY: the only borrow of SHELL in use; it ends before any call that touches it.
    let sh = unsafe { SHELL.get() };
    match args.next() {
        None => match sh.bp {
            Some((no, a)) => kprintln!("breakpoint: thread {:#x} at {:#x}", no, a),
            None => kprintln!("no breakpoint"),
        },
        Some("clear") => {
            sh.bp = None;
            hw::set_breakpoint(None);
            trace::update_vectors();
            kprintln!("breakpoint cleared");
        }
        Some(t) => {
            let (Some(no), Some(addr)) = (parse_thread_no(t), args.next().and_then(parse_num))
            else {
                kprintln!("usage: bp <thread no> <address> | bp clear");
                return;
            };
            if view::thread(no).is_none_or(|t| t.kernel_thread)
                || addr >= crate::arch::paging::USER_END
            {
                kprintln!("kdb: breakpoints are for user threads at user addresses");
                return;
            }
            sh.bp = Some((no, addr));
            hw::set_breakpoint(Some(addr));
            trace::update_vectors();
            kprintln!("breakpoint: thread {:#x} at {:#x}", no, addr);
        }
    }
}

fn cmd_continue(s: &mut Session, _: core::str::SplitAsciiWhitespace) {
    kprintln!("kdb: continuing");
    s.leave = true;
}

fn cmd_reboot(_: &mut Session, _: core::str::SplitAsciiWhitespace) {
    kprintln!("kdb: rebooting");
    hw::reboot()
}
