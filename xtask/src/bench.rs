//! Benchmarks that print figures (never pass/fail on timing).
//!
//! Under `-icount shift=0` QEMU advances the guest TSC once per executed instruction, so the
//! kernel's rdtsc deltas are exact, repeatable instruction counts.

use std::process::ExitCode;
use std::time::Duration;

use crate::build;
use crate::qemu;

/// The number following `key` in `text`.
pub fn number_after(text: &str, key: &str) -> Option<u64> {
    let i = text.find(key)? + key.len();
    let digits: String = text[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

pub fn run(_args: &[String]) -> ExitCode {
    let images = match build::build_all() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("build failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("== boot (kernel only, -icount shift=0: figures are instruction counts) ==");
    let mut boot = qemu::Boot::new(images.kernel());
    boot.cmdline = "exit=ready".into();
    boot.icount = true;
    let out = qemu::run(&boot, Duration::from_secs(60), None, &[], false);
    let first = number_after(&out.output, "first log line at tsc=");
    let ready = number_after(&out.output, "kernel: ready at tsc=");
    match (first, ready) {
        (Some(f), Some(r)) => {
            println!("instructions from reset to the first kernel log line: {f}");
            println!("instructions from reset to \"ready\":                 {r}");
            println!(
                "instructions from the first log line to \"ready\":    {}",
                r - f
            );
        }
        _ => {
            eprintln!(
                "boot benchmark: figures not found in the output:\n{}",
                out.output
            );
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
