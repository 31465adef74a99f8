//! `cargo xtask fuzz`: boots the root server's `fuzz` mode (and `stress`) on the kernel built
//! with the `invariants` feature, one boot per seed, for as long as asked, and prints per seed
//! operations, operations per second and the verdict, then totals of panics, hangs and
//! invariant violations.
//!
//! Options: `--seed S` (first seed; default: from the clock), `--seeds N` (number of seeds;
//! default: as many as fit in `--time`), `--ops N` (operations per seed, default 1,000,000),
//! `--time T` (seconds in all, default 300), `--far` (far transfers and the other system-call
//! instructions), `--icount` (deterministic: `-icount shift=0`), `--trace` (print every
//! operation), `--check N` (invariant check interval), `--stress` (also run the IPC stress
//! once with `--messages N`, default 1,000,000), `--echo` (show the whole console).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::build::{self, Images};
use crate::qemu::{self, Boot, EXIT_SUCCESS, Module};

/// The boot of one fuzz run.
pub fn fuzz_boot(images: &Images, root_args: &str, icount: bool) -> Boot {
    let mut b = Boot::new(images.kernel_checked());
    b.modules = vec![
        Module {
            path: images.user("sigma0"),
            args: String::new(),
        },
        Module {
            path: images.user("root"),
            args: root_args.into(),
        },
    ];
    if icount {
        // Deterministic: the guest clock counts instructions, also while the guest idles.
        b.extra
            .extend(["-icount".into(), "shift=0,sleep=off".into()]);
    }
    b
}

/// Verdict of one fuzz or stress boot: (ok, reason).
pub fn verdict(out: &qemu::Outcome, done_marker: &str) -> (bool, String) {
    if out.output.contains("*** kernel panic") {
        return (false, "kernel panic".into());
    }
    if out.output.contains("in kernel mode") {
        return (false, "kernel exception".into());
    }
    if out.output.contains("invariant violated") {
        return (false, "kernel invariant violated".into());
    }
    if out.output.contains("FAILED") {
        return (false, "run reported a failure".into());
    }
    if out.timed_out {
        return (false, "hang (no end within the time limit)".into());
    }
    if !out.output.contains(done_marker) || out.status != Some(EXIT_SUCCESS) {
        return (
            false,
            format!("ended without `{done_marker}` ({:?})", out.status),
        );
    }
    (true, String::new())
}

fn line_with<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .rev()
        .find(|l| l.contains(prefix))
        .unwrap_or("")
        .trim()
}

struct Opts {
    seed: u64,
    seeds: Option<u64>,
    ops: u64,
    time: u64,
    far: bool,
    icount: bool,
    trace: bool,
    check: Option<u64>,
    stress: bool,
    messages: u64,
    echo: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1);
    let mut o = Opts {
        seed: now & 0xFFFF_FFFF,
        seeds: None,
        ops: 1_000_000,
        time: 300,
        far: false,
        icount: false,
        trace: false,
        check: None,
        stress: false,
        messages: 1_000_000,
        echo: false,
    };
    let num = |s: &str| -> Result<u64, String> {
        let r = if let Some(h) = s.strip_prefix("0x") {
            u64::from_str_radix(h, 16)
        } else {
            s.parse()
        };
        r.map_err(|e| format!("bad number {s}: {e}"))
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let val = || args.get(i + 1).ok_or(format!("{a} needs a value"));
        match a {
            "--seed" => o.seed = num(val()?)?,
            "--seeds" => o.seeds = Some(num(val()?)?),
            "--ops" => o.ops = num(val()?)?,
            "--time" => o.time = num(val()?)?,
            "--check" => o.check = Some(num(val()?)?),
            "--messages" => o.messages = num(val()?)?,
            "--far" => {
                o.far = true;
                i -= 1;
            }
            "--icount" => {
                o.icount = true;
                i -= 1;
            }
            "--trace" => {
                o.trace = true;
                i -= 1;
            }
            "--stress" => {
                o.stress = true;
                i -= 1;
            }
            "--echo" => {
                o.echo = true;
                i -= 1;
            }
            other => return Err(format!("unknown option {other}")),
        }
        i += 2;
    }
    Ok(o)
}

/// Root arguments of a fuzz boot.
pub fn fuzz_args(seed: u64, ops: u64, secs: u64, far: bool, check: Option<u64>) -> String {
    let mut s = format!("fuzz seed={seed:#x} ops={ops} secs={secs}");
    if far {
        s.push_str(" far");
    }
    if let Some(c) = check {
        s.push_str(&format!(" check={c}"));
    }
    s
}

pub fn run(args: &[String]) -> ExitCode {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "usage: cargo xtask fuzz [--seed S] [--seeds N] [--ops N] [--time T] [--far] \
                 [--icount] [--trace] [--check N] [--stress] [--messages N] [--echo]"
            );
            return ExitCode::FAILURE;
        }
    };
    let images = match build::build_all() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("build failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let (mut runs, mut ok_runs, mut panics, mut hangs, mut violations, mut other) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut total_ops = 0u64;
    let mut failed_seeds = Vec::new();
    let mut seed = o.seed;
    println!(
        "fuzz: kernel with invariant checks, first seed {:#x}, {} ops per seed, {} s in all{}{}",
        o.seed,
        o.ops,
        o.time,
        if o.far { ", far ops" } else { "" },
        if o.icount { ", -icount shift=0" } else { "" }
    );
    loop {
        if let Some(n) = o.seeds {
            if runs >= n {
                break;
            }
        } else if runs > 0 && start.elapsed().as_secs() >= o.time {
            break;
        }
        let left = o.time.saturating_sub(start.elapsed().as_secs()).max(10);
        let mut root_args = fuzz_args(seed, o.ops, left, o.far, o.check);
        if o.trace {
            root_args.push_str(" trace");
        }
        let boot = fuzz_boot(&images, &root_args, o.icount);
        // A hang (no `fuzz: done`) ends the boot: after the time left, or after what the
        // operations take at 500 per second (the rate is ~15,000 on an idle host).
        let bound = (120 + o.ops / 500).min(left * 3 + 120);
        let out = qemu::run(&boot, Duration::from_secs(bound), None, &[], o.echo);
        runs += 1;
        let (ok, why) = verdict(&out, "fuzz: done");
        let done = line_with(&out.output, "fuzz: done");
        if let Some(n) = done
            .split(" ops in ")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|s| s.parse::<u64>().ok())
        {
            total_ops += n;
        }
        if ok {
            ok_runs += 1;
            println!("seed {seed:#x}: ok: {done}");
        } else {
            match why.as_str() {
                "kernel panic" | "kernel exception" => panics += 1,
                "kernel invariant violated" => violations += 1,
                w if w.starts_with("hang") => hangs += 1,
                _ => other += 1,
            }
            failed_seeds.push(seed);
            let log = build::workspace_root()
                .join("target")
                .join(format!("fuzz-{seed:#x}.log"));
            let _ = std::fs::write(&log, &out.output);
            println!(
                "seed {seed:#x}: FAILED: {why} (console in {})",
                log.display()
            );
            println!("---- console of seed {seed:#x} (last 80 lines) ----");
            let lines: Vec<&str> = out.output.lines().collect();
            for l in &lines[lines.len().saturating_sub(80)..] {
                println!("  | {l}");
            }
            println!(
                "---- replay: cargo xtask fuzz --seed {seed:#x} --seeds 1 --ops {}{}{} ----",
                o.ops,
                if o.icount { " --icount" } else { "" },
                if o.icount {
                    " (exact)"
                } else {
                    " (same operation streams, interleaving as the host gives it; add                      --icount for a run that repeats exactly)"
                }
            );
        }
        seed = seed.wrapping_add(0x9E37_79B9) & 0xFFFF_FFFF_FFFF;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz: {runs} seeds, {ok_runs} ok, {total_ops} operations in {secs:.0} s of wall time \
         ({:.0} ops/s); panics {panics}, hangs {hangs}, invariant violations {violations}, \
         other failures {other}{}",
        total_ops as f64 / secs.max(0.001),
        if failed_seeds.is_empty() {
            String::new()
        } else {
            format!("; failed seeds {failed_seeds:#x?}")
        }
    );
    let mut good = ok_runs == runs;
    if o.stress {
        good &= stress(&images, o.messages, o.echo);
    }
    if good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One boot of the IPC stress with `messages` messages; prints its figures.
pub fn stress(images: &Images, messages: u64, echo: bool) -> bool {
    let boot = fuzz_boot(images, &format!("stress messages={messages}"), false);
    println!("stress: {messages} messages, 64 threads in 8 spaces");
    let out = qemu::run(
        &boot,
        Duration::from_secs(120 + messages / 500),
        None,
        &[],
        echo,
    );
    let (ok, why) = verdict(&out, "stress: done");
    for l in out.output.lines().filter(|l| l.contains("stress:")) {
        println!("  {}", l.trim());
    }
    if !ok {
        println!("stress: FAILED: {why}");
        let lines: Vec<&str> = out.output.lines().collect();
        for l in &lines[lines.len().saturating_sub(60)..] {
            println!("  | {l}");
        }
    }
    ok
}

/// `cargo xtask stress [--messages N] [--echo]`.
pub fn run_stress(args: &[String]) -> ExitCode {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let images = match build::build_all() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("build failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    if stress(&images, o.messages, o.echo) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
