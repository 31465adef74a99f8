//! IO mappings under the per-space quota (decision 006, issue 17): the IO mapping database is
//! carved from the kernel pool with a fixed capacity, and each non-privileged space may hold
//! only a share of it, so one space cannot use it up for the others.
//!
//! The root takes a block of 4,096 ports from sigma0 (0x1000..0x1FFF: no device there) and
//! maps it one port at a time (a node each) into a sink thread in a new, non-privileged space
//! until the kernel refuses. The refusal must be message overflow for the sender, and come
//! before the block is exhausted (the whole database holds 4,096 nodes by default, the quota
//! an eighth of that); a second sink then gets exactly as many, and after the first sink's
//! space is deleted a third gets as many again (its nodes came back).
//!
//! One check function (the three sinks are steps of one scenario); their ids and stacks come
//! from its [`Cx`].

use abi::items::MapItem;
use abi::{Acceptor, Fpage, IoFpage, MsgTag, ThreadId, Time, Timeouts};
use l4::{msg, syscall, utcb};

use super::util::{self, kill};
use crate::conformance::{Check, Cx};

/// The check functions.
pub const CHECKS: &[Check] = &[Check {
    name: "io_quota",
    run: quota,
}];

const PORTS: u64 = 0x1000;
const PORTS_LOG2: u64 = 12;

/// Receives map items from the root for ever (any window accepts IO fpages).
extern "C" fn sink() -> ! {
    let root = util::root();
    loop {
        msg::accept(Acceptor::map_grant(Fpage::COMPLETE));
        let _ = syscall::ipc(ThreadId::NIL, root, Timeouts::NEVER);
    }
}

/// Maps single ports of the block to `t` until a map fails; returns (ports mapped, ErrorCode
/// of the failed send, 0 if none failed).
fn fill(t: ThreadId) -> (u64, u64) {
    for i in 0..(1u64 << PORTS_LOG2) {
        let io = IoFpage::new_log2(PORTS + i, 0);
        let w = MapItem::new(io.fpage(), io.port()).to_words(false);
        utcb::set_mrs(1, &w);
        utcb::set_mr(0, MsgTag::new(0, 0, 2).raw());
        let r = syscall::ipc(
            t,
            ThreadId::NIL,
            Timeouts::new(Time::period_micros(2_000_000), Time::NEVER),
        );
        if r.tag.error() {
            return (i, utcb::error_code());
        }
    }
    (1 << PORTS_LOG2, 0)
}

fn spawn(t: ThreadId, sp: u64) -> bool {
    util::spawn_in_new_space_at(t, sink, sp).is_ok()
}

/// A's share refused at the quota; B gets as many; after A's deletion C gets as many again.
fn quota(s: &mut Cx) {
    let got = l4::sigma0::get_io(PORTS, PORTS_LOG2);
    if !s.check(
        "io_quota.setup",
        got.is_ok() && util::ensure_pager(),
        format_args!("ports from sigma0: {got:?}"),
    ) {
        return;
    }
    let (a, b, c) = (s.thread(), s.thread(), s.thread());
    let (sp_a, sp_b) = (s.stack(), s.stack());
    if !s.check("io_quota.setup", spawn(a, sp_a), format_args!("sink A")) {
        kill(a);
        return;
    }
    let (na, code) = fill(a);
    s.check(
        "io_quota.refused_at_the_receivers_quota",
        na > 0 && na < (1 << PORTS_LOG2) && code & 0xF == 8,
        format_args!(
            "mapped {na} of {} ports, error code {code:#x} (want 8 = overflow)",
            1 << PORTS_LOG2
        ),
    );
    if !s.check("io_quota.setup", spawn(b, sp_b), format_args!("sink B")) {
        kill(a);
        kill(b);
        return;
    }
    let (nb, code_b) = fill(b);
    s.check(
        "io_quota.other_space_gets_its_share",
        nb == na && code_b & 0xF == 8,
        format_args!("B mapped {nb} (A {na}), error code {code_b:#x}"),
    );
    kill(a);
    let ok = spawn(c, sp_a);
    let (nc, code_c) = if ok { fill(c) } else { (0, 0) };
    s.check(
        "io_quota.returns_after_deletion",
        ok && nc == na && code_c & 0xF == 8,
        format_args!("C (after A deleted) mapped {nc} (A {na}), error code {code_c:#x}"),
    );
    kill(b);
    kill(c);
}
