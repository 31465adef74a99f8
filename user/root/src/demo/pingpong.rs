//! The ping-pong part of the demo: `ping` and `pong`, each in its own new address space paged
//! by a pager thread of the root, exchange [`ROUNDS`] call/reply round trips.

use abi::{MsgTag, ThreadId, Time};
use l4::{msg, println, utcb};

use super::spaces::{self, Stack};

/// Round trips ping makes.
pub const ROUNDS: u64 = 5;
/// Label of ping's "done" message to the root.
const DONE: u64 = 0xD0E;

fn ping_id() -> ThreadId {
    spaces::tid(0x11)
}
fn pong_id() -> ThreadId {
    spaces::tid(0x12)
}

static mut PING_STACK: Stack = Stack::new();
static mut PONG_STACK: Stack = Stack::new();

extern "C" fn ping() -> ! {
    let pong = pong_id();
    let mut ok = 0;
    for n in 1..=ROUNDS {
        println!("ping: sent {n}");
        utcb::set_mr(1, n);
        utcb::set_mr(0, MsgTag::new(0x1, 1, 0).raw());
        match msg::call_timeouts(
            pong,
            Time::period_micros(2_000_000),
            Time::period_micros(2_000_000),
        ) {
            Ok(_) => {
                println!("ping: reply {}", utcb::mr(1));
                if utcb::mr(1) == n * 10 {
                    ok += 1;
                }
            }
            Err(e) => println!("ping: call failed ({:?})", e.error()),
        }
    }
    utcb::set_mr(1, ok);
    utcb::set_mr(0, MsgTag::new(DONE, 1, 0).raw());
    let _ = msg::send_timeout(spaces::root(), Time::period_micros(2_000_000));
    loop {
        msg::sleep(Time::NEVER);
    }
}

extern "C" fn pong() -> ! {
    let mut r = msg::wait();
    loop {
        match r {
            Ok((from, _tag)) => {
                let n = utcb::mr(1);
                println!("pong: got {n}");
                utcb::set_mr(1, n * 10);
                utcb::set_mr(0, MsgTag::new(0x2, 1, 0).raw());
                r = msg::reply_wait(from);
            }
            Err(_) => r = msg::wait(),
        }
    }
}

/// Runs the exchange; `pager` is the running pager thread.
pub fn run(pager: ThreadId) -> bool {
    let (pi, po) = (ping_id(), pong_id());
    if !spaces::new_space(po, pager) || !spaces::new_space(pi, pager) {
        return false;
    }
    println!(
        "demo: created space of pong {:#x} and space of ping {:#x} (pager {:#x})",
        po.raw(),
        pi.raw(),
        pager.raw()
    );
    // SAFETY: the stacks are not in use; they are touched here so the root has them mapped.
    let (sp_ping, sp_pong) = unsafe {
        (
            spaces::prepare_stack(&raw mut PING_STACK),
            spaces::prepare_stack(&raw mut PONG_STACK),
        )
    };
    if !spaces::start_via_pager(pager, po, pong, sp_pong)
        || !spaces::start_via_pager(pager, pi, ping, sp_ping)
    {
        return false;
    }
    match msg::receive_timeout(pi, Time::period_micros(10_000_000)) {
        Ok(tag) if tag.label() == DONE => {
            let ok = utcb::mr(1);
            println!("demo: ping-pong done ({ok} of {ROUNDS} replies correct)");
            ok == ROUNDS
        }
        Ok(tag) => {
            println!("demo: unexpected message {:#x} from ping", tag.raw());
            false
        }
        Err(e) => {
            println!("demo: ping did not finish ({:?})", e.error());
            false
        }
    }
}
