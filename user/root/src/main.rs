//! The root server: the first user program the kernel starts besides sigma0 (spec 6.8).
//!
//! It reads its command line from the generic bootinfo ([`l4::bootinfo::arguments`]) and
//! runs one of its modes:
//! * `demo` (also the default for an empty or unknown line): a readable summary of the Kernel
//!   Interface Page, ping-pong between two new address spaces, then the keyboard and COM1
//!   drivers ([`demo`], [`drivers`]); it keeps running;
//! * `bench`: IPC, system-call and exception round-trip figures ([`bench`]), then
//!   `kdb::enter("exit-success")`;
//! * `kipdump` prints the KIP as raw words for the comparison with the reference kernel's
//!   ([`kipdump`]), then `kdb::enter("exit-success")`;
//! * `kdbtest`: a fixed system state for the kernel debugger's tests ([`kdbtest`]);
//! * `scale`: how single operations cost with growing unrelated state ([`scale`]), then
//!   `kdb::enter("exit-success")`;
//! * `conformance [filter...]` runs the conformance suite (the `conformance` crate,
//!   `user/conformance`) and ends
//!   the run with `kdb::enter("exit-success")` or `("exit-failure")`;
//! * `fuzz [seed=S] [ops=N] [secs=T] [check=N] [far] [trace]`: the system-call fuzzer
//!   ([`fuzz`]), ending the same way;
//! * `stress [messages=N] [seed=S]`: IPC stress with exact message accounting ([`stress`]).
//!
//! Its pager is sigma0, which maps its image pages on demand.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod bench;
mod demo;
mod drivers;
mod fuzz;
mod kdbtest;
mod kipdump;
mod scale;
mod stress;

/// The test helpers the fuzzer and the stress mode share with the conformance suite.
mod tests {
    pub use conformance::util;
}

use l4::println;

l4::entry!(main);

fn main() -> ! {
    let args = match l4::bootinfo::arguments() {
        Ok(a) => a,
        Err(e) => {
            println!("root: no command line ({e:?}); running the demo");
            ""
        }
    };
    let mode = args.split_whitespace().next().unwrap_or("demo");
    match mode {
        "conformance" => conformance::run(args),
        "demo" => demo::run(),
        "bench" => bench::run(args),
        "kipdump" => kipdump::run(),
        "kdbtest" => kdbtest::run(args),
        "fuzz" => fuzz::run(args),
        "stress" => stress::run(args),
        "scale" => scale::run(args),
        other => {
            println!("root: unknown mode `{other}`; running the demo");
            demo::run()
        }
    }
    loop {
        l4::msg::sleep(abi::Time::NEVER);
    }
}
