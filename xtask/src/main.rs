//! Host-side runner for the kernel: `cargo xtask <command>` (the Makefile wraps it).
//!
//! * `build`: the kernel and the user programs (bare-metal target, release).
//! * `run`: boot the demo with the serial console on this terminal (quit: Ctrl-A X);
//!   `--stage2` boots it through the second-stage loader (the reference boot chain).
//! * `test`: host unit tests, then every integration test (one QEMU boot each), one line per
//!   test, ending with `N passed, N failed`.
//! * `conformance [--cpu MODEL] [--stage2] [WORD...]`: one boot of the conformance suite,
//!   only the checks the words name (`ipc.cancel`, `ipc`), or `reverse`, `shuffle=<seed>`,
//!   `list`; serial output on this terminal.
//! * `bench`: figures measured under `-icount shift=0` (instruction counts) and plain TCG.
//! * `iso`: a bootable GRUB ISO image of the demo, `target/l4rs.iso`.
//! * `debug`: like `run`, but QEMU starts halted with its GDB stub on :1234 (`-s -S`); attach
//!   with `gdb -x scripts/gdb/l4rs.gdb -ex 'target remote :1234'`.
//! * `fuzz`: the system-call fuzzer (root mode `fuzz` on the kernel with invariant checks),
//!   seed after seed for as long as asked; `stress`: the IPC stress (root mode `stress`).

mod bench;
mod borrows;
mod build;
mod fuzz;
mod iso;
mod kdb_tests;
mod kipref;
mod qemu;
mod tests;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("help");
    let rest = &args[args.len().min(1)..];
    match cmd {
        "build" => match build::build_all() {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("build failed: {e}");
                ExitCode::FAILURE
            }
        },
        "run" => run(rest),
        "debug" => debug(rest),
        "test" => tests::run_all(rest),
        "conformance" => tests::run_conformance(rest),
        "bench" => bench::run(rest),
        "iso" => iso::run(rest),
        "borrow-facts" => borrows::run(rest),
        "fuzz" => fuzz::run(rest),
        "stress" => fuzz::run_stress(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask build | run [--cpu MODEL] [--append ARGS] [--stage2] | debug [...] | test [FILTER] | conformance [--cpu MODEL] [--stage2] [WORD...] | bench | iso | borrow-facts [DIR] | fuzz [..] | stress [..]"
            );
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> ExitCode {
    run_with(args, false)
}

/// `make debug`: the demo, halted at the first instruction until GDB connects and continues.
fn debug(args: &[String]) -> ExitCode {
    run_with(args, true)
}

fn run_with(args: &[String], halted: bool) -> ExitCode {
    let images = match build::build_all() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("build failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut boot = images.demo_boot();
    let mut stage2 = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--cpu" if i + 1 < args.len() => {
                boot.cpu = args[i + 1].clone();
                i += 1;
            }
            "--stage2" => stage2 = true,
            "--append" if i + 1 < args.len() => {
                boot.cmdline = format!("{} {}", boot.cmdline, args[i + 1]);
                i += 1;
            }
            other => {
                eprintln!("unknown option {other}");
                return ExitCode::FAILURE;
            }
        }
        i += 1;
    }
    // At the terminal, every debugger entry is wanted (faults and panics stop in the shell
    // instead of ending the run); `--append debugger=...` chooses otherwise.
    if !boot.cmdline.contains("debugger=") {
        boot.cmdline = format!("{} debugger=all", boot.cmdline).trim().to_string();
    }
    if stage2 {
        // The reference boot chain: QEMU -> stage2 -> kernel (with the kernel command line
        // built above on its module line), sigma0, root server.
        let cpu = boot.cpu.clone();
        boot = tests::via_stage2(&images, "", &boot.cmdline, "demo");
        boot.cpu = cpu;
    }
    if halted {
        boot.extra.extend(["-s".to_string(), "-S".to_string()]);
        eprintln!(
            "QEMU waits for GDB on localhost:1234. In another terminal, from {}:",
            build::workspace_root().display()
        );
        eprintln!("    gdb -x scripts/gdb/l4rs.gdb -ex 'target remote :1234'");
        eprintln!(
            "then e.g. `break syscall_dispatch`, `continue`, `bt`, `l4-current`, `l4-threads`."
        );
    }
    eprintln!("Booting in QEMU (serial console on this terminal; quit with Ctrl-A then X).");
    let status = std::process::Command::new("qemu-system-x86_64")
        .args(boot.args())
        .args(["-serial", "mon:stdio"])
        .status();
    match status {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot start qemu-system-x86_64: {e}");
            ExitCode::FAILURE
        }
    }
}
