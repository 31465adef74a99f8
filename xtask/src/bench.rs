//! Benchmarks that print figures (never pass/fail on timing).
//!
//! Under `-icount shift=0` QEMU advances the guest TSC once per executed instruction, so the
//! kernel's rdtsc deltas are exact, repeatable instruction counts.
//!
//! 1. Boot: instructions from reset to the first kernel log line and to "ready".
//! 2. IPC (the root server's `bench` mode, `user/root/src/bench.rs`): per one-way IPC for 0..63
//!    untyped words, inter-AS, intra-AS and intra-AS with Lipc; a null system call
//!    (SystemClock); an exception round trip (ud2 → exception IPC → reply with RIP+2). Booted
//!    twice: under `-icount shift=0` (instructions) and under plain TCG (TSC cycles of the
//!    emulation, for reference only). Printed as a table and written to `target/bench.json`
//!    and `target/bench.csv`. IO-fpages: the 0-word inter-AS IPC with spaces holding ports
//!    (one side or both, with and without port accesses; `user/root/src/bench.rs`).

use std::process::ExitCode;
use std::time::Duration;

use crate::build::{self, Images};
use crate::qemu::{self, Module};

/// The IPC set-ups, as the root prints them, and their column titles.
const KINDS: [(&str, &str); 3] = [
    ("inter-as", "inter-AS"),
    ("intra-as", "intra-AS"),
    ("intra-as-lipc", "intra-AS Lipc"),
];

/// The figures of one boot of the root's `bench` mode.
struct IpcFigures {
    /// Run name (`icount` / `tcg`) and what the unit is.
    name: &'static str,
    unit: &'static str,
    /// Per kind (order of [`KINDS`]): 64 values, per one-way IPC.
    ipc: [[f64; 64]; 3],
    null_syscall: f64,
    exception: f64,
    /// IO-fpages: (set-up, 0-word inter-AS one-way IPC).
    io_switch: Vec<(String, f64)>,
}

/// The number (with an optional fraction) following `key` in `line`.
fn float_after(line: &str, key: &str) -> Option<f64> {
    let i = line.find(key)? + key.len();
    let s: String = line[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    s.parse().ok()
}

fn parse(name: &'static str, unit: &'static str, out: &str) -> Result<IpcFigures, String> {
    let mut f = IpcFigures {
        name,
        unit,
        ipc: [[f64::NAN; 64]; 3],
        null_syscall: f64::NAN,
        exception: f64::NAN,
        io_switch: Vec::new(),
    };
    for line in out.lines() {
        let Some(rest) = line.trim().strip_prefix("bench: ") else {
            continue;
        };
        if rest.starts_with("null-syscall ") {
            f.null_syscall = float_after(rest, "cycles=").unwrap_or(f64::NAN);
        } else if rest.starts_with("exception ") {
            f.exception = float_after(rest, "cycles=").unwrap_or(f64::NAN);
        } else if rest.starts_with("io-switch ") {
            let kind = rest
                .split_once("kind=")
                .map(|(_, k)| k.split_whitespace().next().unwrap_or("").to_string())
                .unwrap_or_default();
            f.io_switch
                .push((kind, float_after(rest, "cycles=").unwrap_or(f64::NAN)));
        } else if let Some((kind, more)) = rest.split_once(" words=") {
            let Some(k) = KINDS.iter().position(|(n, _)| *n == kind) else {
                continue;
            };
            let w = number_after(more, "").unwrap_or(64) as usize;
            if w < 64 {
                f.ipc[k][w] = float_after(more, "cycles=").unwrap_or(f64::NAN);
            }
        }
    }
    let missing = f.ipc.iter().flatten().any(|v| v.is_nan())
        || f.null_syscall.is_nan()
        || f.exception.is_nan();
    if missing || !out.contains("bench: done") {
        return Err(format!("incomplete figures in the output:\n{out}"));
    }
    Ok(f)
}

fn bench_boot(images: &Images, icount: bool) -> qemu::Boot {
    let mut b = qemu::Boot::new(images.kernel());
    b.modules = vec![
        Module {
            path: images.user("sigma0"),
            args: String::new(),
        },
        Module {
            path: images.user("root"),
            args: "bench".into(),
        },
    ];
    b.icount = icount;
    b
}

fn print_table(f: &IpcFigures) {
    println!("per one-way IPC, {}:", f.unit);
    println!(
        "{:>5}  {:>12}  {:>12}  {:>14}",
        "words", KINDS[0].1, KINDS[1].1, KINDS[2].1
    );
    for w in 0..64 {
        println!(
            "{:>5}  {:>12.2}  {:>12.2}  {:>14.2}",
            w, f.ipc[0][w], f.ipc[1][w], f.ipc[2][w]
        );
    }
    println!(
        "null system call (SystemClock):                 {:.2}",
        f.null_syscall
    );
    println!(
        "exception round trip (ud2, handler, RIP+2):     {:.2}",
        f.exception
    );
    for (kind, v) in &f.io_switch {
        let what = match kind.as_str() {
            "one" => "ping's space holds ports, pong's none",
            "one-access" => "ping's space holds ports and ping reads one per message",
            "both" => "both spaces hold ports, untouched",
            "both-access" => {
                "both hold ports and read one per message (fault + 128-byte copy per switch)"
            }
            "both-access-8k" => "the same, pong's ports at 0xFFF8 (fault + 8 KiB copy per switch)",
            _ => kind.as_str(),
        };
        println!("inter-AS, 0 words, IO-fpages, {what}: {v:.2}");
    }
}

fn write_files(boot: (u64, u64), runs: &[IpcFigures], scale: &ScaleFigures) -> Result<(), String> {
    let dir = build::workspace_root().join("target");
    let mut json = String::from("{\n");
    json.push_str(&format!(
        "  \"boot\": {{\"unit\": \"instructions\", \"first_log_line\": {}, \"ready\": {}}},\n",
        boot.0, boot.1
    ));
    json.push_str(&scale_json(scale));
    json.push_str("  \"runs\": [\n");
    let mut csv = String::from("run,unit,measure,words,value\n");
    csv.push_str(&format!("boot,instructions,first-log-line,,{}\n", boot.0));
    csv.push_str(&format!("boot,instructions,ready,,{}\n", boot.1));
    for (i, f) in runs.iter().enumerate() {
        json.push_str(&format!(
            "    {{\"run\": \"{}\", \"unit\": \"{}\", \"per\": \"one-way IPC\",\n",
            f.name, f.unit
        ));
        for (k, (kind, _)) in KINDS.iter().enumerate() {
            let vals: Vec<String> = f.ipc[k].iter().map(|v| format!("{v:.2}")).collect();
            json.push_str(&format!("     \"{kind}\": [{}],\n", vals.join(", ")));
            for (w, v) in f.ipc[k].iter().enumerate() {
                csv.push_str(&format!("{},{},{kind},{w},{v:.2}\n", f.name, f.unit));
            }
        }
        json.push_str(&format!(
            "     \"null_syscall\": {:.2}, \"exception\": {:.2}}}{}\n",
            f.null_syscall,
            f.exception,
            if i + 1 < runs.len() { "," } else { "" }
        ));
        csv.push_str(&format!(
            "{},{},null-syscall,,{:.2}\n",
            f.name, f.unit, f.null_syscall
        ));
        csv.push_str(&format!(
            "{},{},exception,,{:.2}\n",
            f.name, f.unit, f.exception
        ));
        for (kind, v) in &f.io_switch {
            csv.push_str(&format!(
                "{},{},io-switch-{kind},0,{v:.2}\n",
                f.name, f.unit
            ));
        }
    }
    for (op, n, x) in &scale.0 {
        csv.push_str(&format!("scale,instructions,{op},{n},{x:.2}\n"));
    }
    json.push_str("  ]\n}\n");
    std::fs::write(dir.join("bench.json"), json).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("bench.csv"), csv).map_err(|e| e.to_string())?;
    Ok(())
}

/// The number following `key` in `text`.
pub fn number_after(text: &str, key: &str) -> Option<u64> {
    let i = text.find(key)? + key.len();
    let digits: String = text[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The operations of the root's `scale` mode, in print order, and their titles.
const SCALE_OPS: [(&str, &str); 8] = [
    ("thread-create-activate", "ThreadControl create + activate"),
    ("thread-delete", "ThreadControl delete"),
    (
        "ipc-finite-timeout",
        "one-way IPC, finite receive timeout (N timers armed)",
    ),
    (
        "closed-receive-miss",
        "closed receive, partner not queued (N senders queued)",
    ),
    ("space-delete", "delete a space with N pages one per 2 MiB"),
    (
        "pagefault-roundtrip",
        "page-fault round trip (4 KiB, map item)",
    ),
    ("map-item", "map item of one 4 KiB page (N pages mapped)"),
    ("unmap", "Unmap of one leaf page (N pages mapped)"),
];

/// Figures of the `scale` mode: (operation, N, instructions per operation).
pub struct ScaleFigures(pub Vec<(String, u64, f64)>);

fn parse_scale(out: &str) -> Result<ScaleFigures, String> {
    let mut v = Vec::new();
    for line in out.lines() {
        let Some(rest) = line.trim().strip_prefix("scale: ") else {
            continue;
        };
        let Some((op, more)) = rest.split_once(" n=") else {
            continue;
        };
        let (Some(n), Some(x)) = (number_after(more, ""), float_after(more, "instr=")) else {
            continue;
        };
        v.push((op.to_string(), n, x));
    }
    if !out.contains("scale: done") || !out.contains("exit-success") && v.is_empty() {
        return Err(format!("incomplete scale figures in the output:\n{out}"));
    }
    Ok(ScaleFigures(v))
}

fn print_scale(f: &ScaleFigures) {
    println!("instructions per operation at N (under -icount shift=0):");
    for (op, title) in SCALE_OPS.iter() {
        let row: Vec<&(String, u64, f64)> = f.0.iter().filter(|(o, _, _)| o == op).collect();
        if row.is_empty() {
            continue;
        }
        println!("  {title}");
        let ns: Vec<String> = row.iter().map(|(_, n, _)| format!("{n:>10}")).collect();
        let xs: Vec<String> = row.iter().map(|(_, _, x)| format!("{x:>10.1}")).collect();
        println!("    N    {}", ns.join(" "));
        println!("    instr{}", xs.join(" "));
        if let (Some(first), Some(last)) = (row.first(), row.last())
            && first.2 > 0.0
        {
            println!(
                "    growth from N={} to N={}: {:+.1}%",
                first.1,
                last.1,
                (last.2 / first.2 - 1.0) * 100.0
            );
        }
    }
}

fn scale_json(f: &ScaleFigures) -> String {
    let rows: Vec<String> =
        f.0.iter()
            .map(|(op, n, x)| format!("{{\"op\": \"{op}\", \"n\": {n}, \"instructions\": {x:.2}}}"))
            .collect();
    format!("  \"scale\": [\n    {}\n  ],\n", rows.join(",\n    "))
}

/// Boots the root's `scale` mode under `-icount shift=0` (enough memory for 4,000 threads).
fn scale_run(images: &Images) -> Result<ScaleFigures, String> {
    let mut b = qemu::Boot::new(images.kernel());
    b.memory_mb = 1024;
    b.cmdline = "kmem=512M".into();
    b.modules = vec![
        Module {
            path: images.user("sigma0"),
            args: String::new(),
        },
        Module {
            path: images.user("root"),
            args: "scale".into(),
        },
    ];
    b.icount = true;
    let out = qemu::run(&b, Duration::from_secs(900), None, &[], false);
    parse_scale(&out.output)
}

pub fn run(args: &[String]) -> ExitCode {
    let images = match build::build_all() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("build failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let only_scale = args.first().is_some_and(|a| a == "scale");
    let scale = {
        println!("== scale: cost of one operation with N unrelated objects (-icount shift=0) ==");
        match scale_run(&images) {
            Ok(f) => {
                print_scale(&f);
                f
            }
            Err(e) => {
                eprintln!("scale benchmark: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    if only_scale {
        return ExitCode::SUCCESS;
    }
    println!();
    println!("== boot (kernel only, -icount shift=0: figures are instruction counts) ==");
    let mut boot = qemu::Boot::new(images.kernel());
    boot.cmdline = "exit=ready".into();
    boot.icount = true;
    let out = qemu::run(&boot, Duration::from_secs(60), None, &[], false);
    let first = number_after(&out.output, "first log line at tsc=");
    let ready = number_after(&out.output, "kernel: ready at tsc=");
    let boot_figures = match (first, ready) {
        (Some(f), Some(r)) => {
            println!("instructions from reset to the first kernel log line: {f}");
            println!("instructions from reset to \"ready\":                 {r}");
            println!(
                "instructions from the first log line to \"ready\":    {}",
                r - f
            );
            (f, r)
        }
        _ => {
            eprintln!(
                "boot benchmark: figures not found in the output:\n{}",
                out.output
            );
            return ExitCode::FAILURE;
        }
    };

    let mut runs = Vec::new();
    for (icount, name, unit, title) in [
        (
            true,
            "icount",
            "instructions",
            "-icount shift=0: figures are instructions",
        ),
        (
            false,
            "tcg",
            "TCG cycles, for reference",
            "plain TCG: TSC cycles of the emulation, for reference only",
        ),
    ] {
        println!();
        println!("== IPC, system call, exception ({title}) ==");
        let out = qemu::run(
            &bench_boot(&images, icount),
            Duration::from_secs(120),
            None,
            &[],
            false,
        );
        match parse(name, unit, &out.output) {
            Ok(f) => {
                print_table(&f);
                runs.push(f);
            }
            Err(e) => {
                eprintln!("IPC benchmark ({name}): {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = write_files(boot_figures, &runs, &scale) {
        eprintln!("cannot write target/bench.json / bench.csv: {e}");
        return ExitCode::FAILURE;
    }
    println!();
    println!("written: target/bench.json, target/bench.csv");
    ExitCode::SUCCESS
}
