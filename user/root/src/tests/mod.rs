//! The conformance checks, one module per system call or topic. To add a module: create
//! `tests/<topic>.rs` with `pub fn run(s: &mut Suite)`, declare it here and append it to
//! [`ALL`] (order = run order; later modules may rely on earlier ones having passed).

use crate::conformance::Suite;

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

/// A test module's entry point.
pub type TestFn = fn(&mut Suite);

/// Every test module in run order: (name, entry).
pub const ALL: &[(&str, TestFn)] = &[
    ("kip", kip::run),
    ("kernel_interface", kernel_interface::run),
    ("utcb", utcb::run),
    ("clock", clock::run),
    ("exregs", exregs::run),
    ("thread_control", thread_control::run),
    ("space_control", space_control::run),
    ("ipc", ipc::run),
    ("memory", memory::run),
    ("strings", strings::run),
    ("compat", compat::run),
    ("chain", chain::run),
    ("lifetime", lifetime::run),
    ("cpu_state", cpu_state::run),
    ("fastpath", fastpath::run),
    ("fastasm", fastasm::run),
    ("threads", threads::run),
    ("sched", sched::run),
    ("lifecycle", lifecycle::run),
    ("schedule", schedule::run),
    ("unmap", unmap::run),
    ("io_ports", io_ports::run),
    ("io_quota", io_quota::run),
    ("sigma0", sigma0::run),
    ("privilege", privilege::run),
    ("churn", churn::run),
    ("security_memory", security_memory::run),
    ("fuzz", fuzz::run),
    ("security_entry", security_entry::run),
    ("found_by_fuzz", found_by_fuzz::run),
];
