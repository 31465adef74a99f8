//! Host-side runner for the kernel: `cargo xtask <command>` (the Makefile wraps it).
//!
//! * `build`: the kernel and the user programs (bare-metal target, release).
//! * `run`: boot the demo with the serial console on this terminal (quit: Ctrl-A X).
//! * `test`: host unit tests, then every integration test (one QEMU boot each), one line per
//!   test, ending with `N passed, N failed`.
//! * `bench`: figures measured under `-icount shift=0` (instruction counts) and plain TCG.
//! * `iso`: a bootable GRUB ISO image of the demo, `target/l4rs.iso`.
//! * `fuzz`: the system-call fuzzer (root mode `fuzz` on the kernel with invariant checks),
//!   seed after seed for as long as asked; `stress`: the IPC stress (root mode `stress`).

mod bench;
mod build;
mod fuzz;
mod iso;
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
        "test" => tests::run_all(rest),
        "bench" => bench::run(rest),
        "iso" => iso::run(rest),
        "fuzz" => fuzz::run(rest),
        "stress" => fuzz::run_stress(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask build | run [--cpu MODEL] | test [FILTER] | bench | iso | fuzz [..] | stress [..]"
            );
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> ExitCode {
    let images = match build::build_all() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("build failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut boot = images.demo_boot();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--cpu" if i + 1 < args.len() => {
                boot.cpu = args[i + 1].clone();
                i += 1;
            }
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
