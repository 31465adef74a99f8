//! The conformance checks, one module per system call or topic. To add a module: create
//! `tests/<topic>.rs` with `pub const CHECKS: &[Check]` (one [`Check`] per scenario, each a
//! `fn(&mut Cx)` that allocates its threads, slots, stacks and ranges from its
//! [`Cx`](crate::conformance::Cx): see `ipc.rs`), declare it here and append
//! `module!(<topic>)` to [`ALL`].
//!
//! Modules not yet split into check functions have `pub fn run(s: &mut Suite)` and appear as
//! `whole!(<topic>)`: one check function named like the module; they still use fixed thread
//! numbers and UTCB slots, partitioned in their header comments, below the ranges of `Cx`
//! (`conformance.rs`). No check relies on one before it: `reverse`, `shuffle=<seed>` and
//! `repeat=<n>` pass (the `conformance-*` integration tests).

use crate::conformance::{Check, Module};

/// A converted module: its `CHECKS`.
macro_rules! module {
    ($m:ident) => {
        Module {
            name: stringify!($m),
            checks: $m::CHECKS,
        }
    };
}

/// A module not yet split: its whole `run` as one check function.
macro_rules! whole {
    ($m:ident) => {
        Module {
            name: stringify!($m),
            checks: &[Check {
                name: stringify!($m),
                run: |cx| $m::run(cx.suite()),
            }],
        }
    };
}

mod chain;
mod churn;
mod clock;
mod compat;
mod cpu_state;
mod exregs;
mod fastasm;
mod fastpath;
mod found_by_fuzz;
mod fuzz;
mod io_ports;
mod io_quota;
mod ipc;
mod kernel_interface;
mod kip;
mod lifecycle;
mod lifetime;
mod memory;
mod prio_control;
mod privilege;
mod sched;
mod schedule;
mod security_entry;
mod security_memory;
mod sigma0;
mod space_control;
mod strings;
mod thread_control;
mod threads;
mod unmap;
mod utcb;
pub mod util;

/// Every test module in run order.
pub const ALL: &[Module] = &[
    module!(kip),
    module!(kernel_interface),
    module!(utcb),
    module!(clock),
    module!(exregs),
    module!(thread_control),
    module!(space_control),
    module!(ipc),
    module!(memory),
    module!(strings),
    module!(compat),
    module!(chain),
    module!(lifetime),
    module!(cpu_state),
    whole!(fastpath),
    whole!(fastasm),
    module!(threads),
    module!(sched),
    module!(lifecycle),
    module!(schedule),
    module!(prio_control),
    whole!(unmap),
    module!(io_ports),
    module!(io_quota),
    whole!(sigma0),
    module!(privilege),
    module!(churn),
    module!(security_memory),
    whole!(fuzz),
    module!(security_entry),
    whole!(found_by_fuzz),
];
