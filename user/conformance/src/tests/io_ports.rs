//! IO-fpages (spec 2.3, 6.6, 6.7): user threads run with IOPL 0 and reach only the ports
//! their space holds; an access to any other port is an IO page fault to the pager, `cli` is
//! a general-protection exception, and ports are mapped, granted and unmapped like memory.
//!
//! Set-up: two "puppet" threads A and B, each the only thread of a new space running the
//! root's image, with the root thread as pager and exception handler. A puppet Calls the root
//! with the result of its last command and executes the command in the reply (a port
//! instruction, `cli`, sending a map or grant item of an IO fpage, receiving one). The root
//! serves their memory faults (mapping its own image pages) and sees every IO page fault and
//! exception they raise. The root itself gets its ports from sigma0 (which gives ports to
//! the root thread only).
//!
//! Ports used: 0x80 (POST diagnostics, write-only and harmless), 0x2E8..0x2EB and
//! 0x3E8..0x3EF (COM4 and COM3, absent under QEMU: reads return 0xFF), and 0x21 (the master PIC's mask, which a puppet tries to
//! change and must not reach; the root reads it before and after).
//!
//! One check function (the port states of A and B carry from step to step); A's and B's ids
//! and stacks come from its [`Cx`].

use abi::items::{GrantItem, MapItem};
use abi::msgtag::labels;
use abi::{Acceptor, Fpage, IoFpage, MsgTag, Rights, ThreadId, Time, Timeouts};
use l4::{syscall, utcb};

use super::util::{self, REPORT, kill, new_space, root, tc};
use crate::conformance::{Check, Cx};

/// The check functions.
pub const CHECKS: &[Check] = &[Check {
    name: "io.ports",
    run: ports,
}];

const OP_OUT80: u64 = 1; // out 0x80, al (al = a)
const OP_OUTDX: u64 = 2; // out dx, al (dx = a, al = b)
const OP_IN32: u64 = 3; // in eax, dx (dx = a)
const OP_CLI_HANG: u64 = 4; // cli; jmp . (the handler resumes after it)
const OP_RECV: u64 = 5; // receive one message from thread a; window: b (0: complete), c = 1: none
const OP_SEND: u64 = 6; // send thread a a map (c = 0) or grant (c = 1) item of IO fpage b
const OP_IN16: u64 = 7; // in ax, dx (dx = a; 0x66 prefix)
const OP_OUTSB: u64 = 8; // rep outsb to port a, one byte
const OP_SIGMA0: u64 = 9; // ask sigma0 for IO fpage a (Call, receive timeout 1 s)
const OP_UNMAP: u64 = 10; // Unmap fpage a, with flush if b = 1

/// The IO page fault label `(-8<<4) | 6` (spec 6.6).
const IO_FAULT: u64 = labels::IO_PAGE_FAULT | 6;

fn secs(s: u64) -> Time {
    Time::period_micros(s * 1_000_000)
}

/// A puppet: report the last result to the root (Call), run the command in the reply.
extern "C" fn puppet() -> ! {
    utcb::set_exception_handler(root());
    let mut result = [0u64; 2];
    loop {
        utcb::set_mrs(1, &result);
        utcb::set_mr(0, MsgTag::new(REPORT, 2, 0).raw());
        let r = syscall::ipc(root(), root(), Timeouts::NEVER);
        if r.tag.error() {
            util::park();
        }
        let (op, a, b, c) = (utcb::mr(1), utcb::mr(2), utcb::mr(3), utcb::mr(4));
        result = match op {
            OP_OUT80 => {
                // SAFETY: port 0x80 (POST code), no memory touched; faults unless held.
                unsafe { core::arch::asm!("out 0x80, al", in("al") a as u8, options(nostack)) };
                [1, 0]
            }
            OP_OUTDX => {
                // SAFETY: a port the root chose; faults unless held. No memory touched.
                unsafe {
                    core::arch::asm!("out dx, al", in("dx") a as u16, in("al") b as u8, options(nostack))
                };
                [1, 0]
            }
            OP_IN32 => {
                let v: u32;
                // SAFETY: a read of an absent device's port; faults unless held.
                unsafe {
                    core::arch::asm!("in eax, dx", in("dx") a as u16, out("eax") v, options(nostack))
                };
                [1, v as u64]
            }
            OP_IN16 => {
                let v: u16;
                // SAFETY: a read of an absent device's port; faults unless held.
                unsafe {
                    core::arch::asm!("in ax, dx", in("dx") a as u16, out("ax") v, options(nostack))
                };
                [1, v as u64]
            }
            OP_OUTSB => {
                let byte = [0x5Au8];
                // SAFETY: one byte from our own stack to a port the root chose; faults
                // unless held.
                unsafe {
                    core::arch::asm!(
                        "rep outsb",
                        in("dx") a as u16,
                        inout("rsi") byte.as_ptr() => _,
                        inout("rcx") 1u64 => _,
                        options(nostack, readonly)
                    )
                };
                [1, 0]
            }
            OP_SIGMA0 => {
                utcb::accept(Acceptor::map_grant(Fpage::COMPLETE));
                utcb::set_mrs(1, &[a, 0]);
                utcb::set_mr(0, abi::sigma0::rpc_tag().raw());
                let s0 = l4::kip::sigma0_id();
                let r = syscall::ipc(s0, s0, Timeouts::new(secs(1), secs(1)));
                [!r.tag.error() as u64, utcb::error_code()]
            }
            OP_UNMAP => {
                utcb::set_mr(0, a);
                syscall::unmap(if b == 1 { 0x40 } else { 0 });
                [1, utcb::mr(0)]
            }
            OP_CLI_HANG => {
                // SAFETY: must fault (#GP, IOPL 0); the handler resumes after the 3 bytes.
                unsafe { core::arch::asm!("cli", "2:", "jmp 2b", options(nostack)) };
                [1, 0]
            }
            OP_RECV => {
                utcb::accept(match (b, c) {
                    (_, 1) => Acceptor::UNTYPED_WORDS,
                    (0, _) => Acceptor::map_grant(Fpage::COMPLETE),
                    (w, _) => Acceptor::map_grant(Fpage::from_raw(w)),
                });
                let r = syscall::ipc(
                    ThreadId::NIL,
                    ThreadId::from_raw(a),
                    Timeouts::new(Time::NEVER, secs(5)),
                );
                [!r.tag.error() as u64, r.tag.raw()]
            }
            OP_SEND => {
                let w = if c != 0 {
                    GrantItem::new(Fpage::from_raw(b), 0).to_words(false)
                } else {
                    MapItem::new(Fpage::from_raw(b), 0).to_words(false)
                };
                utcb::set_mrs(1, &w);
                utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
                let r = syscall::ipc(
                    ThreadId::from_raw(a),
                    ThreadId::NIL,
                    Timeouts::new(secs(5), Time::NEVER),
                );
                [!r.tag.error() as u64, utcb::error_code()]
            }
            _ => [0, op],
        };
    }
}

/// What arrived at the root from the puppets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Report(ThreadId, u64, u64),
    IoFault(ThreadId, u64, u64),
    /// Exception: thread, RIP (MR1), vector (MR19).
    Exception(ThreadId, u64, u64),
    Other(ThreadId, u64),
    Timeout,
}

/// Exception registers of the last exception message (MR1..MR18), for the reply.
static mut EXC_REGS: [u64; 18] = [0; 18];

/// The next message from a puppet; their memory faults are served on the way.
fn next_event() -> Ev {
    let (start, end) = util::image();
    loop {
        let r = syscall::ipc(
            ThreadId::NIL,
            ThreadId::ANY,
            Timeouts::new(Time::NEVER, secs(3)),
        );
        if r.tag.error() {
            return Ev::Timeout;
        }
        let (from, tag) = (r.from, r.tag);
        if tag.label() & !0xF == labels::PAGE_FAULT && tag.untyped() == 2 {
            let addr = utcb::mr(1) & !0xFFF;
            if addr >= start && addr < end {
                let w = MapItem::new(Fpage::new_log2(addr, 12).with_rights(Rights::FULL), addr)
                    .to_words(false);
                utcb::set_mrs(1, &w);
                utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
                let _ = syscall::ipc(from, ThreadId::NIL, Timeouts::new(Time::ZERO, Time::NEVER));
                continue;
            }
            return Ev::Other(from, tag.raw());
        }
        if tag.label() == IO_FAULT && tag.untyped() == 2 && tag.typed() == 0 {
            return Ev::IoFault(from, utcb::mr(1), utcb::mr(2));
        }
        if tag.label() == labels::EXCEPTION && tag.untyped() >= 19 {
            let mut regs = [0u64; 18];
            utcb::mrs(1, &mut regs);
            // SAFETY: only the root thread runs this module's root side.
            unsafe { EXC_REGS = regs };
            return Ev::Exception(from, utcb::mr(1), utcb::mr(19));
        }
        if tag.label() == REPORT && tag.untyped() == 2 {
            return Ev::Report(from, utcb::mr(1), utcb::mr(2));
        }
        return Ev::Other(from, tag.raw());
    }
}

fn send_now(to: ThreadId) -> bool {
    !syscall::ipc(to, ThreadId::NIL, Timeouts::new(secs(1), Time::NEVER))
        .tag
        .error()
}

/// Answers a puppet's report with a command.
fn command(t: ThreadId, op: u64, a: u64, b: u64, c: u64) -> bool {
    utcb::set_mrs(1, &[op, a, b, c]);
    utcb::set_mr(0, MsgTag::new(0, 4, 0).raw());
    send_now(t)
}

/// Answers an IO page fault with a map item of `io` from the root's space.
fn map_ports(t: ThreadId, io: IoFpage) -> bool {
    let w = MapItem::new(io.fpage(), io.port()).to_words(false);
    utcb::set_mrs(1, &w);
    utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
    send_now(t)
}

/// Answers an exception with the registers it reported, RIP advanced by `skip`.
fn resume_exception(t: ThreadId, skip: u64) -> bool {
    // SAFETY: written by `next_event` in this thread.
    let mut regs = unsafe { EXC_REGS };
    regs[0] += skip;
    utcb::set_mrs(1, &regs);
    utcb::set_mr(0, MsgTag::new(0, 18, 0).raw());
    send_now(t)
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: a read of a port the root holds (the PIC mask register: no side effect).
    unsafe { core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nostack)) };
    v
}

/// Creates puppet `t` in a new space (pager and exception handler: the root thread), starts
/// it with stack pointer `sp`, and waits for its first report.
fn spawn(t: ThreadId, sp: u64) -> bool {
    if new_space(t).is_err() {
        return false;
    }
    let (r, _) = tc(t, t, root(), root(), util::NEW_UTCB_AREA);
    if r != 1 {
        return false;
    }
    utcb::set_mrs(1, &[util::entry(puppet), sp]);
    utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
    send_now(t) && matches!(next_event(), Ev::Report(f, _, _) if f == t)
}

/// Waits for reports from both `x` and `y` (in any order).
fn two_reports(x: ThreadId, y: ThreadId) -> [Ev; 2] {
    let (mut ex, mut ey) = (Ev::Timeout, Ev::Timeout);
    for _ in 0..2 {
        match next_event() {
            e @ Ev::Report(f, _, _) if f == x => ex = e,
            e @ Ev::Report(f, _, _) if f == y => ey = e,
            e => return [e, e],
        }
    }
    [ex, ey]
}

/// IO page faults, IO-fpage map/grant/unmap between spaces, receive windows, deletion.
fn ports(s: &mut Cx) {
    if !util::ensure_pager() {
        s.check("io.setup", false, format_args!("pager thread"));
        return;
    }
    let (a, b) = (s.thread(), s.thread());
    let (sp_a, sp_b) = (s.stack(), s.stack());
    let p80 = IoFpage::new_log2(0x80, 0);
    let com4 = IoFpage::new_log2(0x2E8, 2);
    let pic = IoFpage::new_log2(0x21, 0);
    let com3 = IoFpage::new_log2(0x3E8, 3);
    let got = [p80, com4, pic, com3].map(|f| l4::sigma0::get_io(f.port(), f.size_log2()));
    s.check(
        "io.root_gets_ports_from_sigma0",
        got.iter().all(|r| r.is_ok()),
        format_args!("{got:?}"),
    );
    let (img_lo, img_hi) = util::image();
    let in_image = |ip: u64| ip >= img_lo && ip < img_hi;

    if !s.check("io.setup", spawn(a, sp_a), format_args!("puppet A")) {
        kill(a);
        return;
    }

    // `out imm8` to a port the space lacks: IO page fault (port, log2 width 0), IP.
    command(a, OP_OUT80, 0x55, 0, 0);
    let e = next_event();
    s.check(
        "io.out_imm8_is_io_page_fault",
        matches!(e, Ev::IoFault(f, fp, ip) if f == a && fp == p80.raw() && in_image(ip)),
        format_args!("{e:x?}, want IO fault {:#x}", p80.raw()),
    );
    map_ports(a, p80);
    let e = next_event();
    s.check(
        "io.mapped_port_proceeds",
        matches!(e, Ev::Report(f, 1, _) if f == a),
        format_args!("{e:x?}"),
    );

    // `in eax, dx`: the IO fpage covers the 4 ports of the access.
    command(a, OP_IN32, 0x2E8, 0, 0);
    let e = next_event();
    s.check(
        "io.in_dx_width4_is_io_page_fault",
        matches!(e, Ev::IoFault(f, fp, ip) if f == a && fp == com4.raw() && in_image(ip)),
        format_args!("{e:x?}, want IO fault {:#x}", com4.raw()),
    );
    map_ports(a, com4);
    let e = next_event();
    s.check(
        "io.in_after_map_reads_port",
        matches!(e, Ev::Report(f, 1, _) if f == a),
        format_args!("{e:x?}"),
    );
    // Operand-size prefix, unaligned: `in ax, dx` at 0x3E9 touches 0x3E9..0x3EA, reported as
    // the aligned block 0x3E8..0x3EB that covers it.
    command(a, OP_IN16, 0x3E9, 0, 0);
    let e = next_event();
    let block = IoFpage::new_log2(0x3E8, 2);
    s.check(
        "io.in16_unaligned_reports_covering_fpage",
        matches!(e, Ev::IoFault(f, fp, _) if f == a && fp == block.raw()),
        format_args!("{e:x?}, want IO fault {:#x}", block.raw()),
    );
    map_ports(a, block);
    let e = next_event();
    s.check(
        "io.in16_after_map_proceeds",
        matches!(e, Ev::Report(f, 1, _) if f == a),
        format_args!("{e:x?}"),
    );
    // String I/O: `rep outsb` to a port the space lacks.
    command(a, OP_OUTSB, 0x3EC, 0, 0);
    let e = next_event();
    let one = IoFpage::new_log2(0x3EC, 0);
    s.check(
        "io.rep_outsb_is_io_page_fault",
        matches!(e, Ev::IoFault(f, fp, _) if f == a && fp == one.raw()),
        format_args!("{e:x?}, want IO fault {:#x}", one.raw()),
    );
    map_ports(a, one);
    let e = next_event();
    s.check(
        "io.rep_outsb_after_map_proceeds",
        matches!(e, Ev::Report(f, 1, _) if f == a),
        format_args!("{e:x?}"),
    );
    command(a, OP_OUTDX, 0x80, 0x56, 0);
    let e = next_event();
    s.check(
        "io.held_port_no_fault",
        matches!(e, Ev::Report(f, 1, _) if f == a),
        format_args!("{e:x?}"),
    );

    // `cli; jmp .`: a general-protection exception, never a stopped machine.
    command(a, OP_CLI_HANG, 0, 0, 0);
    let e = next_event();
    let mut code = [0u8; 3];
    if let Ev::Exception(_, ip, _) = e
        && in_image(ip)
    {
        // SAFETY: `ip` lies in our own image (the puppet runs the root's image).
        code = unsafe { core::ptr::read_volatile(ip as *const [u8; 3]) };
    }
    s.check(
        "io.cli_is_gp_exception",
        matches!(e, Ev::Exception(f, _, 13) if f == a) && code == [0xFA, 0xEB, 0xFE],
        format_args!("{e:x?}, code {code:x?}"),
    );
    let t0 = syscall::system_clock();
    util::sleep_us(2000);
    let t1 = syscall::system_clock();
    s.check(
        "io.cli_machine_keeps_running",
        t1 >= t0 + 2000,
        format_args!("clock {t0} -> {t1}"),
    );
    resume_exception(a, 3);
    let e = next_event();
    s.check(
        "io.cli_handler_resumes",
        matches!(e, Ev::Report(f, 1, _) if f == a),
        format_args!("{e:x?}"),
    );

    // A -> B chain: B gets 0x80 from A; the root's Unmap revokes it from both.
    if !s.check("io.setup_b", spawn(b, sp_b), format_args!("puppet B")) {
        kill(a);
        kill(b);
        return;
    }
    command(b, OP_RECV, a.raw(), 0, 0);
    command(a, OP_SEND, b.raw(), p80.raw(), 0);
    let r = two_reports(a, b);
    s.check(
        "io.map_item_between_spaces",
        matches!(r, [Ev::Report(_, 1, _), Ev::Report(_, 1, _)]),
        format_args!("{r:x?}"),
    );
    command(b, OP_OUTDX, 0x80, 0x57, 0);
    let e = next_event();
    s.check(
        "io.mapped_on_port_usable",
        matches!(e, Ev::Report(f, 1, _) if f == b),
        format_args!("{e:x?}"),
    );
    utcb::set_mr(0, p80.raw());
    syscall::unmap(0);
    command(b, OP_OUTDX, 0x80, 0x58, 0);
    let e = next_event();
    s.check(
        "io.unmap_revokes_transitively",
        matches!(e, Ev::IoFault(f, fp, _) if f == b && fp == p80.raw()),
        format_args!("{e:x?}"),
    );
    map_ports(b, p80);
    let _ = next_event();
    command(a, OP_OUT80, 0x59, 0, 0);
    let e = next_event();
    s.check(
        "io.unmap_revokes_direct",
        matches!(e, Ev::IoFault(f, fp, _) if f == a && fp == p80.raw()),
        format_args!("{e:x?}"),
    );
    map_ports(a, p80);
    let _ = next_event();

    // Grant: A's COM4 ports move to B.
    command(b, OP_RECV, a.raw(), 0, 0);
    command(a, OP_SEND, b.raw(), com4.raw(), 1);
    let r = two_reports(a, b);
    s.check(
        "io.grant_item_between_spaces",
        matches!(r, [Ev::Report(_, 1, _), Ev::Report(_, 1, _)]),
        format_args!("{r:x?}"),
    );
    command(b, OP_IN32, 0x2E8, 0, 0);
    let e = next_event();
    s.check(
        "io.grant_receiver_holds",
        matches!(e, Ev::Report(f, 1, _) if f == b),
        format_args!("{e:x?}"),
    );
    command(a, OP_IN32, 0x2E8, 0, 0);
    let e = next_event();
    s.check(
        "io.grant_removes_from_granter",
        matches!(e, Ev::IoFault(f, fp, _) if f == a && fp == com4.raw()),
        format_args!("{e:x?}"),
    );
    map_ports(a, com4);
    let _ = next_event();

    // Receive windows: an IO-fpage window takes only the ports inside it; no window, none.
    // A holds 0x3E8..0x3EB and 0x3EC; it maps 0x3E8..0x3EF to B through the window
    // 0x3E8..0x3EB, then 0x3EC with no window at all.
    command(b, OP_RECV, a.raw(), block.raw(), 0);
    command(a, OP_SEND, b.raw(), com3.raw(), 0);
    let r = two_reports(a, b);
    command(b, OP_IN16, 0x3E9, 0, 0);
    let inside = next_event();
    command(b, OP_OUTSB, 0x3EC, 0, 0);
    let outside = next_event();
    s.check(
        "io.io_window_clips",
        matches!(r, [Ev::Report(_, 1, _), Ev::Report(_, 1, _)])
            && matches!(inside, Ev::Report(f, 1, _) if f == b)
            && matches!(outside, Ev::IoFault(f, fp, _) if f == b && fp == one.raw()),
        format_args!("{r:x?}; in 0x3E9: {inside:x?}; outsb 0x3EC: {outside:x?}"),
    );
    // B is blocked in that fault: answer it by mapping nothing (it faults again).
    utcb::set_mr(0, 0);
    send_now(b);
    let again = next_event();
    s.check(
        "io.empty_reply_faults_again",
        matches!(again, Ev::IoFault(f, fp, _) if f == b && fp == one.raw()),
        format_args!("{again:x?}"),
    );
    map_ports(b, one);
    let _ = next_event();
    utcb::set_mr(0, one.raw());
    syscall::unmap(0); // from B (and A) again
    // The root (which holds 0x3EC) sends B a map item while B accepts no map items.
    command(b, OP_RECV, root().raw(), 0, 1);
    let sent = map_ports(b, one);
    let r = next_event();
    command(b, OP_OUTSB, 0x3EC, 0, 0);
    let e = next_event();
    s.check(
        "io.no_window_accepts_no_ports",
        matches!(e, Ev::IoFault(f, fp, _) if f == b && fp == one.raw()),
        format_args!("sent {sent}, {r:x?}; outsb 0x3EC: {e:x?}"),
    );
    map_ports(b, one);
    let _ = next_event();

    // Unmap by the holder itself: without flush its own ports stay, with flush they go.
    command(a, OP_UNMAP, p80.raw(), 0, 0);
    let _ = next_event();
    command(a, OP_OUT80, 0x5A, 0, 0);
    let e = next_event();
    s.check(
        "io.unmap_without_flush_keeps_own",
        matches!(e, Ev::Report(f, 1, _) if f == a),
        format_args!("{e:x?}"),
    );
    command(a, OP_UNMAP, p80.raw(), 1, 0);
    let _ = next_event();
    command(a, OP_OUT80, 0x5B, 0, 0);
    let e = next_event();
    s.check(
        "io.unmap_flush_removes_own",
        matches!(e, Ev::IoFault(f, fp, _) if f == a && fp == p80.raw()),
        format_args!("{e:x?}"),
    );
    map_ports(a, p80);
    let _ = next_event();

    // Deleting a space takes the ports derived from its own with it: B's COM4 ports, mapped
    // from A, go when A's space is deleted.
    command(b, OP_RECV, a.raw(), 0, 0);
    command(a, OP_SEND, b.raw(), com4.raw(), 0);
    let r = two_reports(a, b);
    let ka = util::kill_r(a);
    command(b, OP_IN32, 0x2E8, 0, 0);
    let e = next_event();
    s.check(
        "io.space_deletion_revokes_derived",
        matches!(r, [Ev::Report(_, 1, _), Ev::Report(_, 1, _)])
            && ka == 1
            && matches!(e, Ev::IoFault(f, fp, _) if f == b && fp == com4.raw()),
        format_args!("{r:x?}; delete {ka}; in 0x2E8: {e:x?}"),
    );
    map_ports(b, com4);
    let _ = next_event();

    // sigma0 gives ports to the root thread only: a request from another space gets no reply
    // (its receive times out), and the port stays out of reach.
    let before = inb(0x21);
    command(b, OP_SIGMA0, pic.raw(), 0, 0);
    let r = next_event();
    s.check(
        "io.sigma0_refuses_ports_to_other_spaces",
        matches!(r, Ev::Report(f, 0, code) if f == b && code & 0xF == 3),
        format_args!("request {r:x?}"),
    );

    // No port, no device: the PIC mask stays as it was; the thread faults instead.
    command(b, OP_OUTDX, 0x21, (before ^ 0x80) as u64, 0);
    let e = next_event();
    let after = inb(0x21);
    s.check(
        "io.no_port_no_device",
        matches!(e, Ev::IoFault(f, fp, _) if f == b && fp == pic.raw()) && after == before,
        format_args!("{e:x?}; PIC mask {before:#x} -> {after:#x}"),
    );
    // B stays blocked in its IO page fault; deleting its space removes its ports.
    let kb = util::kill_r(b);
    s.check_eq("io.space_with_ports_deleted", kb, 1);
    // The root's own ports are untouched by all of this.
    let again = inb(0x21);
    s.check_eq("io.root_keeps_its_ports", again, before);
}
