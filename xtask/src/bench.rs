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
//! 3. Counters (issue 12): one more `-icount` boot of a kernel built with the `counters`
//!    feature (`kernel/src/counters.rs`), the root in `bench counters` mode: per one-way IPC
//!    (0, 8, 63 words, each set-up) and per exception round trip, the events that `-icount`
//!    weighs as one instruction but hardware does not (CR3, MSR and CR0 writes, FPU saves and
//!    restores, `iretq`; `swapgs` never runs), from the kernel's counters around the rounds.

use std::collections::BTreeMap;
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
    /// ThreadSwitch to a ready thread (per switch).
    thread_switch: f64,
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
        thread_switch: f64::NAN,
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
        } else if rest.starts_with("thread-switch ") {
            f.thread_switch = float_after(rest, "cycles=").unwrap_or(f64::NAN);
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
        || f.exception.is_nan()
        || f.thread_switch.is_nan();
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
    println!(
        "ThreadSwitch to a ready thread (per switch):    {:.2}",
        f.thread_switch
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
            "     \"null_syscall\": {:.2}, \"exception\": {:.2}, \"thread_switch\": {:.2}}}{}\n",
            f.null_syscall,
            f.exception,
            f.thread_switch,
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
        csv.push_str(&format!(
            "{},{},thread-switch,,{:.2}\n",
            f.name, f.unit, f.thread_switch
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
const SCALE_OPS: [(&str, &str); 11] = [
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
        "space-delete-empty",
        "delete an empty space (thread never ran; ThreadControl delete included)",
    ),
    (
        "pagefault-roundtrip",
        "page-fault round trip (4 KiB, map item)",
    ),
    ("map-item", "map item of one 4 KiB page (N pages mapped)"),
    ("unmap", "Unmap of one leaf page (N pages mapped)"),
    (
        "unmap-in-superpage",
        "Unmap of 4 KiB inside a 2 MiB mapping with N 4 KiB children",
    ),
    (
        "unmap-chain",
        "Unmap of a page mapped on through a chain of N spaces (depth N)",
    ),
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
    if args.first().is_some_and(|a| a == "--update-baseline") {
        return match measure_gated(&images).and_then(|m| write_baseline(&m).map(|_| m.len())) {
            Ok(n) => {
                println!("{BASELINE}: {n} figures written");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot update the baseline: {e}");
                ExitCode::FAILURE
            }
        };
    }
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
    println!();
    println!("== events -icount weighs as one instruction (kernel feature `counters`) ==");
    match counters_run(&images) {
        Ok(rows) => print_counters(&rows),
        Err(e) => {
            eprintln!("counters: {e}");
            return ExitCode::FAILURE;
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

/// Where the committed baseline of the instruction-count figures lives.
const BASELINE: &str = "bench/baseline.json";
/// A figure may rise by this fraction before the gate fails.
const TOLERANCE: f64 = 0.01;
/// Figures whose count depends on where pool frames and mapping nodes land (space deletion,
/// page faults, map and Unmap through the mapping database's treaps) move by a few percent
/// with unrelated changes and between runs; they are gated more loosely.
const LOOSE_TOLERANCE: f64 = 0.05;

fn tolerance(figure: &str) -> f64 {
    const LOOSE: [&str; 6] = [
        "scale.space-delete",
        "scale.pagefault-roundtrip",
        "scale.map-item",
        "scale.unmap",
        "scale.unmap-chain",
        "scale.unmap-in-superpage",
    ];
    if LOOSE.iter().any(|p| figure.starts_with(p)) {
        LOOSE_TOLERANCE
    } else {
        TOLERANCE
    }
}

/// Every gated figure by name: per-word IPC of each set-up, null system call, exception,
/// and every scale figure.
fn gated_figures(ipc: &IpcFigures, scale: &ScaleFigures) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for (k, (kind, _)) in KINDS.iter().enumerate() {
        for (w, v) in ipc.ipc[k].iter().enumerate() {
            m.insert(format!("ipc.{kind}.words{w:02}"), *v);
        }
    }
    m.insert("null-syscall".into(), ipc.null_syscall);
    m.insert("exception".into(), ipc.exception);
    m.insert("thread-switch".into(), ipc.thread_switch);
    for (kind, v) in &ipc.io_switch {
        m.insert(format!("io-switch.{kind}"), *v);
    }
    for (op, n, x) in &scale.0 {
        m.insert(format!("scale.{op}.n{n}"), *x);
    }
    m
}

/// The icount figures the gate compares (one IPC boot, one scale boot).
fn measure_gated(images: &Images) -> Result<BTreeMap<String, f64>, String> {
    let out = qemu::run(
        &bench_boot(images, true),
        Duration::from_secs(300),
        None,
        &[],
        false,
    );
    let ipc = parse("icount", "instructions", &out.output)?;
    let scale = scale_run(images)?;
    let mut m = gated_figures(&ipc, &scale);
    // The events icount weighs as 1 but hardware does not (CR3/MSR/CR0 writes, FPU state
    // transfers, kernel entries): a rise from 0 is a regression too.
    const NAMES: [&str; 8] = [
        "cr3", "msr", "fxsave", "fxrstor", "syscall", "trap", "fast", "cr0",
    ];
    for (label, d) in counters_run(images)? {
        let label = label.replace(' ', "-");
        for (i, name) in NAMES.iter().enumerate() {
            m.insert(format!("counters.{label}.{name}"), d[i]);
        }
    }
    Ok(m)
}

fn write_baseline(m: &BTreeMap<String, f64>) -> Result<(), String> {
    let path = build::workspace_root().join(BASELINE);
    let obj: serde_json::Map<String, serde_json::Value> = m
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!((v * 100.0).round() / 100.0)))
        .collect();
    let text =
        serde_json::to_string_pretty(&serde_json::Value::Object(obj)).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| e.to_string())
}

fn read_baseline() -> Result<BTreeMap<String, f64>, String> {
    let path = build::workspace_root().join(BASELINE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let obj = v.as_object().ok_or("the baseline is not a JSON object")?;
    obj.iter()
        .map(|(k, v)| {
            v.as_f64()
                .map(|x| (k.clone(), x))
                .ok_or_else(|| format!("{k}: not a number"))
        })
        .collect()
}

/// The performance gate of `make test`: measures every gated figure once under `-icount` and
/// compares it with the committed baseline. One test per figure that rose by more than
/// [`TOLERANCE`] (or vanished), else one passing test. Returns (passed, failed).
pub fn gate(images: &Images) -> (usize, usize) {
    println!("== benchmark gate (-icount shift=0, against {BASELINE}) ==");
    let base = match read_baseline() {
        Ok(b) => b,
        Err(e) => {
            println!(
                "test bench-gate ... FAILED: no baseline ({e}); run `cargo xtask bench --update-baseline`"
            );
            return (0, 1);
        }
    };
    let now = match measure_gated(images) {
        Ok(m) => m,
        Err(e) => {
            println!("test bench-gate ... FAILED: {e}");
            return (0, 1);
        }
    };
    let mut failed = 0;
    let mut improved = 0;
    for (k, before) in &base {
        match now.get(k) {
            None => {
                failed += 1;
                println!("test bench-gate/{k} ... FAILED: figure missing (before {before:.2})");
            }
            Some(after) if *after > before * (1.0 + tolerance(k)) + 0.005 => {
                failed += 1;
                println!(
                    "test bench-gate/{k} ... FAILED: {before:.2} -> {after:.2} instructions ({:+.2}%, more than {:.0}%); \
                     if intended, commit a new baseline (cargo xtask bench --update-baseline)",
                    (after / before - 1.0) * 100.0,
                    tolerance(k) * 100.0
                );
            }
            Some(after) if *after < before * (1.0 - tolerance(k)) => improved += 1,
            Some(_) => {}
        }
    }
    if failed == 0 {
        println!(
            "test bench-gate ... ok ({} figures within {:.0}% of the baseline ({:.0}% for the placement-dependent scale rows); {improved} improved by more: consider updating the baseline)",
            base.len(),
            TOLERANCE * 100.0,
            LOOSE_TOLERANCE * 100.0
        );
        (1, 0)
    } else {
        (0, failed)
    }
}

/// Counter names as the kernel prints them (`counters: cr3=.. msr=.. ...`).
const COUNTER_KEYS: [&str; 8] = [
    "cr3=", "msr=", "fxsave=", "fxrstor=", "syscall=", "trap=", "fast=", "cr0=",
];

/// Per case (set-up and words): the counter deltas per one-way IPC (per round trip for the
/// exception).
type CounterRows = Vec<(String, [f64; 8])>;

fn counters_run(images: &Images) -> Result<CounterRows, String> {
    let kernel = build::build_kernel_with_features("counters")?;
    let mut b = bench_boot(images, true);
    b.kernel = kernel;
    b.modules[1].args = "bench counters".into();
    let out = qemu::run(&b, Duration::from_secs(120), None, &[], false);
    let mut rows = Vec::new();
    let mut label: Option<String> = None;
    let mut first: Option<[u64; 8]> = None;
    for line in out.output.lines() {
        if let Some(rest) = line.split("bench: counters ").nth(1) {
            label = Some(rest.trim().to_string());
            first = None;
        } else if line.contains("counters: cr3=") {
            let mut v = [0u64; 8];
            for (i, k) in COUNTER_KEYS.iter().enumerate() {
                v[i] = number_after(line, k).ok_or_else(|| format!("bad line: {line}"))?;
            }
            match (first, &label) {
                (None, Some(_)) => first = Some(v),
                (Some(a), Some(l)) => {
                    // Per one-way IPC: 2 x 1000 round trips; per exception: 1000. The second
                    // snapshot's own int3 is one trap entry.
                    let per = if l.starts_with("exception") {
                        1000.0
                    } else {
                        2000.0
                    };
                    let mut d = [0f64; 8];
                    for i in 0..8 {
                        let mut x = v[i] - a[i];
                        if i == 5 {
                            x = x.saturating_sub(1);
                        }
                        d[i] = x as f64 / per;
                    }
                    rows.push((l.clone(), d));
                    label = None;
                    first = None;
                }
                _ => {}
            }
        }
    }
    if rows.is_empty() || !out.output.contains("bench: done") {
        return Err(format!("no counter figures in the output:\n{}", out.output));
    }
    Ok(rows)
}

fn print_counters(rows: &CounterRows) {
    println!(
        "{:<26} {:>6} {:>6} {:>6} {:>7} {:>8} {:>7} {:>7} {:>7}",
        "per one-way IPC", "CR3", "MSR", "CR0", "fxsave", "fxrstor", "swapgs", "iretq", "fast"
    );
    for (l, d) in rows {
        println!(
            "{:<26} {:>6.2} {:>6.2} {:>6.2} {:>7.2} {:>8.2} {:>7} {:>7.2} {:>7.2}",
            l,
            d[0],
            d[1],
            d[7],
            d[2],
            d[3],
            0,
            d[4] + d[5],
            d[6]
        );
    }
    println!(
        "(exception: per round trip; iretq = kernel entries left by iretq; the assembly IPC \
         fast path (`fast`) and the null system call (SystemClock) leave with sysretq, which is \
         not counted (not serialising); serialising per IPC = CR3 + MSR + CR0 + iretq)"
    );
}
