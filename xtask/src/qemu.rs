//! Booting the kernel in QEMU: one bounded run with the serial console captured.

use std::io::{Read, Write};
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
    /// Keys to inject into the emulated PS/2 keyboard (through a QMP socket that [`run`]
    /// adds when this is not empty).
    pub keys: Vec<KeyInput>,
    /// Serial console through a multiplexed chardev, so that input `Ctrl-A b` sends a BREAK.
    pub serial_break: bool,
    /// Set when the boot cannot be made (e.g. the ISO could not be built): [`run`] then fails
    /// at once with this text as the output.
    pub unavailable: Option<String>,
}

/// Keys to press (QMP `send-key`, one key at a time, QEMU qcodes such as `"h"`, `"shift"`,
/// `"ret"`, `"spc"`) once a given text has appeared on the console.
#[derive(Clone, Debug)]
pub struct KeyInput {
    pub after: String,
    pub qcodes: Vec<String>,
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
            keys: Vec::new(),
            serial_break: false,
            unavailable: None,
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
            // sleep=off: idle time does not follow the host clock, so figures that include idle
            // periods (timer ticks) repeat whatever the host load.
            a.push("shift=0,sleep=off".into());
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
/// Inputs go in order: each waits for its `after` text in the output that came after the
/// previous input was sent (so a prompt is matched afresh for every command).
#[derive(Clone, Debug)]
pub struct SerialInput {
    pub after: String,
    pub bytes: Vec<u8>,
    /// Computes the bytes from the output so far instead (e.g. an address the guest printed).
    pub compute: Option<fn(&str) -> Vec<u8>>,
}

impl SerialInput {
    pub fn new(after: &str, bytes: &[u8]) -> Self {
        SerialInput {
            after: after.into(),
            bytes: bytes.to_vec(),
            compute: None,
        }
    }
}

/// Boots, captures the serial console (stdio) and returns when QEMU exits, when `stop_at` has
/// been printed (after the last serial input, once all are sent), or after `timeout`.
pub fn run(
    boot: &Boot,
    timeout: Duration,
    stop_at: Option<&str>,
    input: &[SerialInput],
    echo: bool,
) -> Outcome {
    let start = Instant::now();
    if let Some(why) = &boot.unavailable {
        return Outcome {
            output: format!("boot not possible: {why}\n"),
            status: None,
            timed_out: false,
            stopped: false,
            elapsed: start.elapsed(),
        };
    }
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(boot.args());
    if boot.serial_break {
        cmd.args([
            "-chardev",
            "stdio,id=con0,mux=on,signal=off",
            "-serial",
            "chardev:con0",
        ]);
    } else {
        cmd.args(["-serial", "stdio"]);
    }
    cmd.args(["-monitor", "none"]);
    let qmp_path = (!boot.keys.is_empty()).then(qmp::socket_path);
    if let Some(p) = &qmp_path {
        let _ = std::fs::remove_file(p);
        cmd.arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", p.display()));
    }
    let mut pending_keys: Vec<KeyInput> = boot.keys.clone();
    let mut qmp_client: Option<qmp::Client> = None;
    let mut qmp_log = String::new();
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
    // Chunks as they arrive (not whole lines: a prompt has no newline).
    std::thread::spawn(move || {
        let mut r = stdout;
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    break;
                }
                Ok(n) => {
                    let s = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
                    if tx.send(Some(s)).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut output = String::new();
    let mut pending_input: Vec<SerialInput> = input.to_vec();
    // Output position when the last input was sent: the next one's `after` is looked for
    // from here on.
    let mut input_cursor = 0;
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
            }
            Ok(None) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        while let Some(next) = pending_input.first() {
            let Some(at) = output[input_cursor..].find(&next.after) else {
                break;
            };
            let bytes = match next.compute {
                Some(f) => f(&output),
                None => next.bytes.clone(),
            };
            if let Some(w) = stdin.as_mut() {
                let _ = w.write_all(&bytes);
                let _ = w.flush();
            }
            input_cursor += at + next.after.len();
            pending_input.remove(0);
        }
        // The end marker counts once every serial input is sent, and only in what came after
        // the last one.
        if let Some(s) = stop_at
            && pending_input.is_empty()
            && output[input_cursor..].contains(s)
        {
            stopped = true;
            break;
        }
        while let (Some(next), Some(path)) = (pending_keys.first(), qmp_path.as_ref()) {
            if !output.contains(&next.after) {
                break;
            }
            if qmp_client.is_none() {
                match qmp::Client::connect(path) {
                    Ok(c) => qmp_client = Some(c),
                    Err(e) => {
                        qmp_log.push_str(&format!("[qmp] cannot connect: {e}\n"));
                        pending_keys.clear();
                        break;
                    }
                }
            }
            let c = qmp_client.as_mut().unwrap();
            for k in &next.qcodes {
                if let Err(e) = c.send_key(k) {
                    qmp_log.push_str(&format!("[qmp] send-key {k}: {e}\n"));
                }
            }
            pending_keys.remove(0);
        }
    }
    drop(qmp_client);
    if let Some(p) = &qmp_path {
        let _ = std::fs::remove_file(p);
    }
    output.push_str(&qmp_log);
    let status = if timed_out || stopped {
        let _ = child.kill();
        let _ = child.wait();
        None
    } else {
        // Drain what is left and collect the exit status.
        let deadline = Instant::now() + Duration::from_secs(30);
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

/// A minimal QMP client (QEMU Machine Protocol, JSON lines over a Unix socket), std only.
mod qmp {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    /// A fresh socket path in the temporary directory.
    pub fn socket_path() -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        std::env::temp_dir().join(format!(
            "l4rs-qmp-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ))
    }

    pub struct Client {
        reader: BufReader<UnixStream>,
        writer: UnixStream,
    }

    impl Client {
        /// Connects (retrying for up to 60 s while QEMU creates the socket), reads the
        /// greeting and enters command mode (`qmp_capabilities`).
        pub fn connect(path: &Path) -> Result<Client, String> {
            let start = Instant::now();
            let stream = loop {
                match UnixStream::connect(path) {
                    Ok(s) => break s,
                    // Generous: QEMU creates the socket at start-up, which a loaded host delays.
                    Err(e) if start.elapsed() > Duration::from_secs(60) => {
                        return Err(format!("{}: {e}", path.display()));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .map_err(|e| e.to_string())?;
            let writer = stream.try_clone().map_err(|e| e.to_string())?;
            let mut c = Client {
                reader: BufReader::new(stream),
                writer,
            };
            let greeting = c.read_line()?;
            if !greeting.contains("\"QMP\"") {
                return Err(format!("unexpected greeting {greeting}"));
            }
            c.execute(r#"{"execute":"qmp_capabilities"}"#)?;
            Ok(c)
        }

        fn read_line(&mut self) -> Result<String, String> {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => Err("connection closed".into()),
                Ok(_) => Ok(line),
                Err(e) => Err(e.to_string()),
            }
        }

        /// Sends one command and waits for its `return` (events in between are skipped).
        pub fn execute(&mut self, command: &str) -> Result<String, String> {
            self.writer
                .write_all(format!("{command}\n").as_bytes())
                .map_err(|e| e.to_string())?;
            loop {
                let line = self.read_line()?;
                if line.contains("\"return\"") {
                    return Ok(line);
                }
                if line.contains("\"error\"") {
                    return Err(line.trim().to_string());
                }
            }
        }

        /// Presses and releases one key (QEMU qcode, e.g. `h`, `ret`, `spc`). The pseudo key
        /// `!nmi` injects a non-maskable interrupt instead (QMP `inject-nmi`).
        pub fn send_key(&mut self, qcode: &str) -> Result<(), String> {
            if qcode == "!nmi" {
                self.execute(r#"{"execute":"inject-nmi"}"#)?;
                std::thread::sleep(Duration::from_millis(50));
                return Ok(());
            }
            let keys: Vec<String> = qcode
                .split('+')
                .map(|k| format!(r#"{{"type":"qcode","data":"{k}"}}"#))
                .collect();
            self.execute(&format!(
                r#"{{"execute":"send-key","arguments":{{"keys":[{}]}}}}"#,
                keys.join(",")
            ))?;
            // send-key holds the keys for 100 ms by default; let the release happen first.
            std::thread::sleep(Duration::from_millis(150));
            Ok(())
        }
    }
}
