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
//! The three sinks are steps of one scenario: each check function runs the steps up to the
//! one it observes ([`scenario`]), the sinks' ids and stacks from its [`Cx`].

use abi::items::MapItem;
use abi::{Acceptor, Fpage, IoFpage, MsgTag, ThreadId, Time, Timeouts};
use l4::{msg, syscall, utcb};

use super::util::{self, kill};
use crate::conformance::{Check, Cx};

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

/// The port block from sigma0 and the pager up; Err: a detail.
fn ports() -> Result<(), &'static str> {
    match l4::sigma0::get_io(PORTS, PORTS_LOG2) {
        Ok(_) if util::ensure_pager() => Ok(()),
        Ok(_) => Err("no pager"),
        Err(_) => Err("ports from sigma0 refused"),
    }
}

/// The scenario up to step `n` (1..=3), each step a sink in a new space (ids and stacks from
/// `cx`) filled until the kernel refuses: A; B while A holds its share; C after A's space is
/// deleted. Returns (ports mapped, ErrorCode) of each step; Err: the step that could not
/// start (a detail).
fn scenario(cx: &mut Cx, n: usize) -> Result<[(u64, u64); 3], &'static str> {
    ports()?;
    let mut got = [(0, 0); 3];
    let mut sinks = [ThreadId::NIL; 3];
    for (i, g) in got.iter_mut().enumerate().take(n) {
        if i == 2 {
            kill(sinks[0]);
        }
        let (t, sp) = (cx.thread(), cx.stack());
        if !spawn(t, sp) {
            return Err(["sink A", "sink B", "sink C"][i]);
        }
        sinks[i] = t;
        *g = fill(t);
    }
    Ok(got)
}

/// The check functions: the setup alone, then each fact with the steps before it
/// ([`scenario`]).
pub const CHECKS: &[Check] = &[
    Check {
        name: "io_quota.setup",
        run: setup,
    },
    Check {
        name: "io_quota.refused_at_the_receivers_quota",
        run: refused_at_quota,
    },
    Check {
        name: "io_quota.other_space_gets_its_share",
        run: other_space_gets_its_share,
    },
    Check {
        name: "io_quota.returns_after_deletion",
        run: returns_after_deletion,
    },
];

/// The ports, and two sinks in new spaces.
fn setup(s: &mut Cx) {
    let p = ports();
    if !s.check("io_quota.setup", p.is_ok(), format_args!("{p:?}")) {
        return;
    }
    for name in ["sink A", "sink B"] {
        let (t, sp) = (s.thread(), s.stack());
        s.check("io_quota.setup", spawn(t, sp), format_args!("{name}"));
    }
}

/// A gets some ports, but not the whole block: refused with message overflow.
fn refused_at_quota(s: &mut Cx) {
    const NAME: &str = "io_quota.refused_at_the_receivers_quota";
    match scenario(s, 1) {
        Err(e) => {
            s.check(NAME, false, format_args!("setup: {e}"));
        }
        Ok([(na, code), ..]) => {
            s.check(
                NAME,
                na > 0 && na < (1 << PORTS_LOG2) && code & 0xF == 8,
                format_args!(
                    "mapped {na} of {} ports, error code {code:#x} (want 8 = overflow)",
                    1 << PORTS_LOG2
                ),
            );
        }
    }
}

/// B, while A holds its share, gets as many.
fn other_space_gets_its_share(s: &mut Cx) {
    const NAME: &str = "io_quota.other_space_gets_its_share";
    match scenario(s, 2) {
        Err(e) => {
            s.check(NAME, false, format_args!("setup: {e}"));
        }
        Ok([(na, _), (nb, code_b), _]) => {
            s.check(
                NAME,
                nb == na && code_b & 0xF == 8,
                format_args!("B mapped {nb} (A {na}), error code {code_b:#x}"),
            );
        }
    }
}

/// After A's space is deleted, C (B still holding its share) gets as many again.
fn returns_after_deletion(s: &mut Cx) {
    const NAME: &str = "io_quota.returns_after_deletion";
    match scenario(s, 3) {
        Err(e) => {
            s.check(NAME, false, format_args!("setup: {e}"));
        }
        Ok([(na, _), _, (nc, code_c)]) => {
            s.check(
                NAME,
                nc == na && code_c & 0xF == 8,
                format_args!("C (after A deleted) mapped {nc} (A {na}), error code {code_c:#x}"),
            );
        }
    }
}
