//! Booting the kernel in QEMU: one bounded run with the serial console captured.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// QEMU's exit status after the kernel wrote `code` to isa-debug-exit.
pub const fn debug_exit_status(code: i32) -> i32 {
    (code << 1) | 1
}
/// The kernel's orderly shutdown (platform::pc::EXIT_SUCCESS = 0x10).
pub const EXIT_SUCCESS: i32 = debug_exit_status(0x10);
/// The kernel's panic / unexpected fault exit (EXIT_FAILURE = 0x11).
pub const EXIT_FAILURE: i32 = debug_exit_status(0x11);

#[derive(Clone, Debug)]
pub struct Module {
    pub path: PathBuf,
    pub args: String,
}

#[derive(Clone, Debug)]
pub struct Boot {
    pub kernel: PathBuf,
    pub cmdline: String,
    pub modules: Vec<Module>,
    pub cpu: String,
    pub memory_mb: u32,
    /// `-icount shift=0`: the guest's rdtsc counts executed instructions.
    pub icount: bool,
    /// Boot this ISO image instead of `-kernel`.
    pub iso: Option<PathBuf>,
    /// Extra QEMU arguments.
    pub extra: Vec<String>,
}

impl Boot {
    pub fn new(kernel: PathBuf) -> Self {
        Boot {
            kernel,
            cmdline: String::new(),
            modules: Vec::new(),
            cpu: "qemu64".into(),
            memory_mb: 256,
            icount: false,
            iso: None,
            extra: Vec::new(),
        }
    }

    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-machine".into(),
            "pc,accel=tcg".into(),
            "-cpu".into(),
            self.cpu.clone(),
            "-m".into(),
            self.memory_mb.to_string(),
            "-display".into(),
            "none".into(),
            "-no-reboot".into(),
            "-device".into(),
            "isa-debug-exit,iobase=0xf4,iosize=4".into(),
        ];
        if let Some(iso) = &self.iso {
            a.push("-cdrom".into());
            a.push(iso.display().to_string());
        } else {
            a.push("-kernel".into());
            a.push(self.kernel.display().to_string());
            a.push("-append".into());
            a.push(self.cmdline.clone());
            if !self.modules.is_empty() {
                let mods: Vec<String> = self
                    .modules
                    .iter()
                    .map(|m| {
                        let p = m.path.display().to_string();
                        // QEMU separates modules with ',' (escaped as ',,' inside a module line).
                        let line = if m.args.is_empty() {
                            p
                        } else {
                            format!("{} {}", p, m.args)
                        };
                        line.replace(',', ",,")
                    })
                    .collect();
                a.push("-initrd".into());
                a.push(mods.join(","));
            }
        }
        if self.icount {
            a.push("-icount".into());
            a.push("shift=0".into());
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

pub struct Outcome {
    pub output: String,
    /// QEMU's exit status, if it exited by itself.
    pub status: Option<i32>,
    pub timed_out: bool,
    /// The run was ended by the harness because `stop_at` appeared.
    pub stopped: bool,
    pub elapsed: Duration,
}

/// Input to feed to the guest's serial port once a given text has appeared on the console.
#[derive(Clone, Debug)]
pub struct SerialInput {
    pub after: String,
    pub bytes: Vec<u8>,
}

/// Boots, captures the serial console (stdio) and returns when QEMU exits, when `stop_at` has
/// been printed, or after `timeout`.
pub fn run(
    boot: &Boot,
    timeout: Duration,
    stop_at: Option<&str>,
    input: &[SerialInput],
    echo: bool,
) -> Outcome {
    let start = Instant::now();
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(boot.args())
        .args(["-serial", "stdio", "-monitor", "none"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                output: format!("cannot start qemu-system-x86_64: {e}"),
                status: None,
                timed_out: false,
                stopped: false,
                elapsed: start.elapsed(),
            };
        }
    };
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    break;
                }
                Ok(_) => {
                    let s = String::from_utf8_lossy(&buf).replace('\r', "");
                    if tx.send(Some(s)).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut output = String::new();
    let mut pending_input: Vec<SerialInput> = input.to_vec();
    let mut timed_out = false;
    let mut stopped = false;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(Some(line)) => {
                if echo {
                    print!("{line}");
                    let _ = std::io::stdout().flush();
                }
                output.push_str(&line);
                if let Some(s) = stop_at {
                    if output.contains(s) {
                        stopped = true;
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        while let Some(next) = pending_input.first() {
            if !output.contains(&next.after) {
                break;
            }
            if let Some(w) = stdin.as_mut() {
                let _ = w.write_all(&next.bytes);
                let _ = w.flush();
            }
            pending_input.remove(0);
        }
    }
    let status = if timed_out || stopped {
        let _ = child.kill();
        let _ = child.wait();
        None
    } else {
        // Drain what is left and collect the exit status.
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(Some(line)) =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            output.push_str(&line);
        }
        match child.wait() {
            Ok(s) => s.code(),
            Err(_) => None,
        }
    };
    drop(stdin.take());
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err);
    if !err.trim().is_empty() {
        output.push_str("[qemu stderr] ");
        output.push_str(&err);
    }
    Outcome {
        output,
        status,
        timed_out,
        stopped,
        elapsed: start.elapsed(),
    }
}
