//! Integration tests of the kernel debugger (`kernel/src/debug/`): each boots the `kdbtest`
//! root (a known set of threads and spaces, `user/root/src/kdbtest.rs`) or the kernel alone,
//! drives the debugger over the serial line (every input waits for the text before it), checks
//! the output, and checks that the system runs on after `continue`. The GDB test attaches
//! `gdb` in batch mode to a QEMU started halted.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::build::{self, Images};
use crate::qemu::{EXIT_SUCCESS, SerialInput};
use crate::tests::{Test, Verdict};

const PANIC: &str = "*** kernel panic";
const PROMPT: &str = "kdb> ";

/// ESC once `after` appeared, then each command after a fresh prompt.
fn session(after: &str, commands: &[&str]) -> Vec<SerialInput> {
    let mut v = vec![SerialInput::new(after, b"\x1b")];
    v.extend(
        commands
            .iter()
            .map(|c| SerialInput::new(PROMPT, format!("{c}\r").as_bytes())),
    );
    v
}

/// Commands after a prompt, without ESC (the debugger enters by itself).
fn commands(cmds: &[&str]) -> Vec<SerialInput> {
    cmds.iter()
        .map(|c| SerialInput::new(PROMPT, format!("{c}\r").as_bytes()))
        .collect()
}

fn with_root(i: &Images, cmdline: &str, args: &str) -> crate::qemu::Boot {
    let mut b = crate::qemu::Boot::new(i.kernel());
    b.cmdline = cmdline.into();
    b.modules = vec![
        crate::qemu::Module {
            path: i.user("sigma0"),
            args: String::new(),
        },
        crate::qemu::Module {
            path: i.user("root"),
            args: args.into(),
        },
    ];
    b
}

fn kernel_only(i: &Images, cmdline: &str) -> crate::qemu::Boot {
    let mut b = crate::qemu::Boot::new(i.kernel());
    b.cmdline = cmdline.into();
    b
}

/// The address the kdbtest root printed for the client's round function, as `bp` input.
fn bp_command(out: &str) -> Vec<u8> {
    let addr = out
        .split("client round at ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("0x0");
    format!("bp 0x52 {addr}\r").into_bytes()
}

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            name: "kdb-commands",
            boot: |i| with_root(i, "", "kdbtest"),
            expect: &[
                "kdbtest: ready",
                "--- kdb: ESC on the serial line on thread",
                "kdb> help",
                "threads   every thread",
                "maps      maps <thread no>",
                "continue  leave the debugger",
                "reboot    reset the machine",
                "kdb> threads",
                "thread     state     partner    timeout    prio  space      pager      scheduler",
                "0x10.1 ",
                "(idle)",
                "0x30.1 ",
                "0x32.1 ",
                "0x50.1 ",
                // (states vary with where the tick caught the client and server)
                "0x51.1 ",
                "  100  0x32.1     0x30.1     0x32.1",
                "0x52.1 ",
                "0x52.1     0x50.1     0x32.1",
                "kdb> thread 0x52",
                "thread 0x52.1: ",
                "space 0x52.1, scheduler 0x32.1, pager 0x50.1, exception handler nil",
                "UTCB at 0xbf000000",
                "user registers:",
                "rip 0x",
                "TCRs:",
                "MyGlobalId 0x0000005200000001",
                "Pager 0x0000005000000001",
                "MRs (MR0 = tag",
                "BRs (BR0 = acceptor)",
                "kdb> regs",
                "entry frame of thread",
                "kdb> spaces",
                "0x30.1           1  0xbff00000+4K    0xbf000000+256K",
                "sigma0 privileged",
                "0x32.1           3  0xbff00000+4K    0xbf000000+256K",
                "0x52.1           1  0xbff00000+4K    0xbf000000+16K",
                "kdb> maps 0x52",
                "mappings of the space of 0x52.1",
                "rwx    4K space 0x52.1 parent 0x32.1@0x",
                "mapping(s)",
                "kdb> frame 0x1000000",
                "mapping tree of frame 0x1000000",
                "0x000001000000-0x000001000fff -> 0x0001000000 rwx    4K space 0x30.1 (sigma0 root)",
                "  0x000001000000-0x000001000fff -> 0x0001000000 rwx    4K space 0x32.1 parent 0x30.1@0x1000000",
                "kdb> kip",
                "API version 0x84050000",
                "memory descriptors (",
                "conventional",
                "reserved",
                "kdb> ready",
                "ready queues (highest priority first",
                "timers (now",
                "kdb> timers",
                "timers (now",
                "wakes in",
                "kdb> mem",
                "kernel memory pool",
                "threads: kernel stack + TCB)",
                "spaces: descriptor + PML4)",
                "page tables",
                "UTCB pages",
                "mapping db",
                "kdb> irqs",
                "0  kernel (timer tick)",
                "2  kernel (PIC cascade)",
                "kdb> trace status",
                "trace: off",
                "kdb> bogus",
                "kdb: unknown command 'bogus'",
                "kdb> c",
                "kdb: continuing",
                "kdbtest: round",
            ],
            forbid: &[PANIC, "*** exception", "halted"],
            exit: None,
            stop_at: Some("kdbtest: round"),
            input: || {
                session(
                    "kdbtest: ready",
                    &[
                        "help",
                        "threads",
                        "thread 0x52",
                        "regs",
                        "spaces",
                        "maps 0x52",
                        "frame 0x1000000",
                        "kip",
                        "ready",
                        "timers",
                        "mem",
                        "irqs",
                        "trace status",
                        "bogus",
                        "c",
                    ],
                )
            },
            timeout_s: 120,
        },
        Test {
            name: "kdb-trace",
            boot: |i| with_root(i, "", "kdbtest"),
            expect: &[
                "kdbtest: ready",
                "kdb> trace only ipc,switch,thread,pf,exc",
                "kdb> trace on",
                "trace: on",
                "kdb: continuing",
                "kdb> trace off",
                "kdb> trace show 300",
                // One round of the client: three calls, each answered by the server.
                "0x52.1 ipc send to 0x51.1 tag 0x1010001 (label 0x101, u 1, t 0), then receive from 0x51.1",
                "0x51.1 switch from 0x52.1",
                "0x51.1 ipc received from 0x52.1 tag 0x1010001 (label 0x101, u 1, t 0)",
                "0x51.1 ipc send to 0x52.1 tag 0x1110001 (label 0x111, u 1, t 0), then receive from any",
                "0x52.1 switch from 0x51.1",
                "0x52.1 ipc received from 0x51.1 tag 0x1110001 (label 0x111, u 1, t 0)",
                "0x52.1 ipc send to 0x51.1 tag 0x1020001 (label 0x102, u 1, t 0)",
                "0x51.1 ipc received from 0x52.1 tag 0x1020001 (label 0x102",
                "0x51.1 ipc send to 0x52.1 tag 0x1120001 (label 0x112",
                "0x52.1 ipc received from 0x51.1 tag 0x1120001 (label 0x112",
                "0x52.1 ipc send to 0x51.1 tag 0x1030001 (label 0x103",
                "0x51.1 ipc received from 0x52.1 tag 0x1030001 (label 0x103",
                "0x51.1 ipc send to 0x52.1 tag 0x1130001 (label 0x113",
                "0x52.1 ipc received from 0x51.1 tag 0x1130001 (label 0x113",
                // Then its sleep: a receive from itself that times out.
                "0x52.1 ipc, then receive from 0x52.1",
                "0x52.1 ipc error 0x3 (receive timeout)",
                // The root renews the scratch thread in a new space; it faults in its pages.
                "created thread 0x54.1 in space of 0x54.1",
                "created a space with thread 0x54.1",
                "0x54.1 page fault at 0x",
                "0x50.1 ipc received from 0x54.1 tag 0xffffffffffe",
                "0x54.1 exception 6 (#UD invalid opcode)",
                "0x50.1 ipc received from 0x54.1 tag 0xffffffffffb",
                "deleted thread 0x54.1",
                "deleted the space of thread 0x54.1",
                "trace: end",
                "kdb> trace thread 0x51",
                "thread 0x51 only",
                "kdb> c",
                "kdb> trace show 6",
                "0x51.1 ",
                "0x51.1 ",
                "0x51.1 ",
                "trace: end",
                "kdb> trace all",
                "kdb> c",
                "kdbtest: round",
            ],
            forbid: &[PANIC, "*** exception", "halted"],
            exit: None,
            stop_at: Some("kdbtest: round"),
            input: || {
                let mut v = session(
                    "kdbtest: ready",
                    &["trace only ipc,switch,thread,pf,exc", "trace on", "c"],
                );
                // Three more rounds complete with the trace on (the first may be partly
                // untraced), then back into the debugger.
                v.push(SerialInput::new("kdbtest: round", b""));
                v.push(SerialInput::new("kdbtest: round", b""));
                v.push(SerialInput::new("kdbtest: round", b""));
                v.push(SerialInput::new("kdbtest: round", b"\x1b"));
                v.extend(commands(&[
                    "trace off",
                    "trace show 300",
                    "trace clear",
                    "trace thread 0x51",
                    "trace on",
                    "c",
                ]));
                // Filtered by the server: a round later, every event names it.
                v.push(SerialInput::new("kdbtest: round", b""));
                v.push(SerialInput::new("kdbtest: round", b"\x1b"));
                v.extend(commands(&["trace show 6", "trace all", "trace off", "c"]));
                v
            },
            timeout_s: 120,
        },
        Test {
            name: "kdb-step-breakpoint",
            boot: |i| with_root(i, "", "kdbtest"),
            expect: &[
                "client round at 0x",
                "kdbtest: ready",
                "kdb> bp 0x52 0x",
                "breakpoint: thread 0x52 at 0x",
                "kdb: continuing",
                "--- kdb: breakpoint on thread 0x52.1 at rip 0x",
                "kdb> regs",
                "entry frame of thread 0x52.1 (vector 0x1, user mode)",
                "kdb> bp clear",
                "breakpoint cleared",
                "kdb> step",
                "--- kdb: single step on thread 0x52.1 at rip 0x",
                "kdb> step 0x52",
                "--- kdb: single step on thread 0x52.1 at rip 0x",
                "kdb> c",
                "kdbtest: round",
            ],
            forbid: &[PANIC, "*** exception", "halted"],
            exit: None,
            stop_at: Some("kdbtest: round"),
            input: || {
                let mut v = vec![
                    SerialInput::new("kdbtest: ready", b"\x1b"),
                    SerialInput {
                        after: PROMPT.into(),
                        bytes: Vec::new(),
                        compute: Some(bp_command),
                    },
                ];
                v.extend(commands(&[
                    "c",
                    "regs",
                    "bp clear",
                    "step",
                    "step 0x52",
                    "c",
                ]));
                v
            },
            timeout_s: 120,
        },
        Test {
            name: "kdb-break",
            boot: |i| {
                let mut b = with_root(i, "", "kdbtest");
                b.serial_break = true;
                b
            },
            expect: &[
                "kdbtest: ready",
                "--- kdb: BREAK on the serial line on thread",
                "kdb> threads",
                "0x52.1 ",
                "kdb> c",
                "kdb: continuing",
                "kdbtest: round",
            ],
            forbid: &[PANIC, "*** exception", "halted"],
            exit: None,
            stop_at: Some("kdbtest: round"),
            input: || {
                // Ctrl-A b: the multiplexed chardev sends a BREAK.
                let mut v = vec![SerialInput::new("kdbtest: ready", b"\x01b")];
                v.extend(commands(&["threads", "c"]));
                v
            },
            timeout_s: 120,
        },
        Test {
            // A PC without COM1 (the port reads 0xFF): the break-in poll must not take that for
            // a BREAK and stop the system. The root's bench mode ends the run by itself.
            name: "kdb-no-uart",
            boot: |i| {
                let mut b = with_root(i, "", "bench");
                // COM1 absent; the harness's console becomes COM2, which nobody writes.
                b.extra = vec!["-serial".into(), "none".into()];
                b
            },
            expect: &[],
            forbid: &[],
            exit: Some(EXIT_SUCCESS),
            stop_at: None,
            input: Vec::new,
            timeout_s: 240,
        },
        Test {
            name: "kdb-kernel-fault",
            boot: |i| kernel_only(i, "debugger=fault selftest=pf"),
            expect: &[
                "exception 14 (#PF page fault)",
                "--- kdb: exception in kernel mode on thread nil at rip 0x",
                "kdb> regs",
                "(vector 0xe, kernel mode)",
                "kdb> threads",
                "kdb> mem",
                "kernel memory pool",
                "kdb> c",
                "kdb: continuing",
                "reported as expected",
            ],
            forbid: &[PANIC],
            exit: Some(EXIT_SUCCESS),
            stop_at: None,
            input: || commands(&["regs", "threads", "mem", "c"]),
            timeout_s: 60,
        },
        Test {
            name: "kdb-panic-reboot",
            boot: |i| kernel_only(i, "debugger=fault selftest=panic"),
            expect: &[
                "*** kernel panic at kernel/src/selftest.rs",
                "--- kdb: kernel panic on thread nil ---",
                "kdb> regs",
                "no register frame",
                "kdb> reboot",
                "kdb: rebooting",
            ],
            forbid: &[],
            // QEMU runs with -no-reboot: a reset ends it with status 0.
            exit: Some(0),
            stop_at: None,
            input: || commands(&["regs", "reboot"]),
            timeout_s: 60,
        },
        Test {
            name: "kdb-user-fault",
            boot: |i| with_root(i, "debugger=ufault", "kdbtest fault"),
            expect: &[
                "thread 0x5300000001: exception with no exception handler; halted",
                "--- kdb: undeliverable user fault on thread 0x53.1 (exception with no exception handler) at rip 0x",
                "kdb> thread 0x53",
                "thread 0x53.1: halted",
                "kdb> c",
                "kdbtest: round",
            ],
            forbid: &[PANIC],
            exit: None,
            stop_at: Some("kdbtest: round"),
            input: || commands(&["thread 0x53", "c"]),
            timeout_s: 120,
        },
        Test {
            name: "kdb-enter",
            boot: |i| with_root(i, "debugger=enter", "kdbtest enter"),
            expect: &[
                "--- KD# \"kdbtest-enter\" ---",
                "--- kdb: KDB_Enter from a privileged space on thread 0x32.1 at rip 0x",
                "kdb> threads",
                "kdb> c",
                "kdbtest: back from KDB_Enter",
                "kdbtest: round",
            ],
            forbid: &[PANIC, "*** exception"],
            exit: None,
            stop_at: Some("kdbtest: round"),
            input: || commands(&["threads", "c"]),
            timeout_s: 120,
        },
    ]
}

/// A free TCP port on the loopback interface (for QEMU's GDB stub).
fn free_port() -> Option<u16> {
    TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

/// `kdb-gdb`: QEMU starts halted with its GDB stub; `gdb -batch` loads the symbols through
/// `scripts/gdb/l4rs.gdb`, breaks in `syscall_dispatch`, prints a backtrace and the current
/// thread (`l4-current`) and the thread list (`l4-threads`) with the Python helpers.
pub fn gdb_test(images: &Images) -> (&'static str, Verdict, String) {
    const NAME: &str = "kdb-gdb";
    let fail = |reason: String, log: String| (NAME, Verdict { ok: false, reason }, log);
    let Some(port) = free_port() else {
        return fail("no free TCP port".into(), String::new());
    };
    let root = build::workspace_root();
    let serial_log = root.join("target").join("kdb-gdb-serial.log");
    let mut boot = with_root(images, "", "kdbtest");
    boot.extra = vec![
        "-S".into(),
        "-gdb".into(),
        format!("tcp:127.0.0.1:{port}"),
        "-serial".into(),
        format!("file:{}", serial_log.display()),
        "-monitor".into(),
        "none".into(),
    ];
    let mut qemu = match Command::new("qemu-system-x86_64")
        .args(boot.args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start qemu: {e}"), String::new()),
    };
    let gdb = Command::new("gdb")
        .current_dir(&root)
        .args([
            "-batch",
            "-nx",
            "-x",
            "scripts/gdb/l4rs.gdb",
            "-ex",
            &format!("target remote 127.0.0.1:{port}"),
            "-ex",
            "break syscall_dispatch",
            "-ex",
            "continue",
            "-ex",
            "bt",
            "-ex",
            "l4-current",
            "-ex",
            "l4-threads",
            "-ex",
            "kill",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut gdb = match gdb {
        Ok(g) => g,
        Err(e) => {
            let _ = qemu.kill();
            let _ = qemu.wait();
            return fail(format!("cannot start gdb: {e}"), String::new());
        }
    };
    // Bounded wait for gdb (generous: the guest boots to its first system call first).
    let start = Instant::now();
    let mut timed_out = false;
    loop {
        match gdb.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > Duration::from_secs(120) => {
                timed_out = true;
                let _ = gdb.kill();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => break,
        }
    }
    let mut log = String::new();
    if let Some(mut o) = gdb.stdout.take() {
        let _ = o.read_to_string(&mut log);
    }
    if let Some(mut e) = gdb.stderr.take() {
        let mut s = String::new();
        let _ = e.read_to_string(&mut s);
        log.push_str(&s);
    }
    let _ = gdb.wait();
    let _ = qemu.kill();
    let _ = qemu.wait();
    if timed_out {
        return fail("gdb did not finish within 120 s".into(), log);
    }
    let expect = [
        "Breakpoint 1 at",
        "Breakpoint 1, ",
        // The break may land in a function inlined into `syscall_dispatch` (its `with_kernel`
        // closure): the backtrace names it.
        "#0  ",
        "syscall_dispatch",
        "current thread 0x",
        "threads:",
        "0x30.1",
        "0x32.1",
    ];
    let mut pos = 0;
    for e in expect {
        match log[pos..].find(e) {
            Some(i) => pos += i + e.len(),
            None => return fail(format!("missing \"{e}\" in the gdb output"), log),
        }
    }
    (
        NAME,
        Verdict {
            ok: true,
            reason: String::new(),
        },
        log,
    )
}
