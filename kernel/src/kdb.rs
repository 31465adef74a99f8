//! The kernel-debugger interface for user programs (spec 8): `int3` followed by an opcode
//! pattern. Print char / string and read char work on the serial console; KDB_Enter prints its
//! message — and a message of `exit-success` / `exit-failure` leaves QEMU with that status
//! (how test root servers end a run). Extension: `int3; cmpb $0x20,%al` returns the number
//! of kernel-memory frames in use in RAX; with the `invariants` feature (fuzzer builds only),
//! `int3; cmpb $0x21,%al` runs the kernel's self-checks (`invariants.rs`) and returns the
//! number of violations in RAX.
//!
//! Who may do what (decision 007, docs/decisions/007-kdb-privilege.md): printing (char,
//! string, KDB_Enter's message, unknown-operation notes) and the frame count are for everyone;
//! reading the console and the exit requests only for privileged spaces (the root server's
//! and sigma0's), unless the kernel command line says otherwise (`kdb=all|privileged|strict`,
//! see [`init`]). A call a thread may not make reads "no character" (RAX = ~0) or is printed
//! without its effect; under `kdb=strict` an unprivileged `int3` is a plain breakpoint
//! (exception IPC). A blocking read never spins in the kernel: without a character the
//! thread is put back on its `int3`, yields, and tries again when it next runs, so timer,
//! interrupts and every other thread keep running (and the thread can be deleted or
//! ExchangeRegisters'd meanwhile).

use crate::arch::trap::TrapFrame;
use crate::arch::usercopy;
use crate::kernel_state::Kernel;
use crate::kprint;
use crate::platform::{self, serial};
use crate::sync::KernelValue;

/// What unprivileged spaces may do with the interface (privileged spaces may do everything).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Policy {
    /// `kdb=all`: everything, for everyone (the behaviour before issue 10).
    All,
    /// `kdb=privileged` (default): printing and the frame count; no console input, no exit.
    Privileged,
    /// `kdb=strict`: nothing; an unprivileged `int3` is an ordinary breakpoint exception.
    Strict,
}

static POLICY: KernelValue<Policy> = KernelValue::new(Policy::Privileged);

/// Reads `kdb=` from the kernel command line; returns the policy in force.
pub fn init(cmdline: &str) -> Policy {
    let p = match crate::boot::options::value(cmdline, "kdb") {
        Some("all") => Policy::All,
        Some("strict") => Policy::Strict,
        Some("privileged") | None => Policy::Privileged,
        Some(other) => {
            crate::kprintln!("kdb: unknown kdb={} ignored (all|privileged|strict)", other);
            Policy::Privileged
        }
    };
    POLICY.set(p);
    p
}

/// May the current thread make the calls that read the console or end the system?
fn full_rights() -> bool {
    POLICY.get() == Policy::All || (unsafe { crate::thread::current().space() }).privileged
}

/// Handles an int3 from user mode; returns false if it is not a KDB call (or the caller may
/// not use the interface at all): then it is an ordinary breakpoint exception.
pub fn handle(k: &mut Kernel, f: &mut TrapFrame) -> bool {
    let full = full_rights();
    if !full && POLICY.get() == Policy::Strict {
        return false;
    }
    let ip = f.rip; // byte after the int3
    let b0 = usercopy::read_u8(ip);
    let (b0, ip) = if b0 == Some(0x90) {
        (usercopy::read_u8(ip + 1), ip + 1)
    } else {
        (b0, ip)
    };
    match b0 {
        Some(0x3C) => {
            let op = usercopy::read_u8(ip + 1);
            match op {
                Some(0) => serial::write_byte(f.rax as u8),
                Some(1) => print_user_string(f.rax),
                Some(8) if full => {
                    f.rax = serial::try_read_byte()
                        .map(|c| c as u64)
                        .unwrap_or(u64::MAX)
                }
                // l4rs extension: RAX = frames of kernel memory in use (tests of memory reclaim).
                Some(0x20) => f.rax = crate::mm::frame::in_use(),
                // l4rs extension, fuzz builds only: RAX = kernel invariant violations (0 = ok).
                #[cfg(feature = "invariants")]
                Some(0x21) => f.rax = crate::invariants::check(k),
                Some(0x0D) if full => match serial::try_read_byte() {
                    Some(c) => f.rax = c as u64,
                    None => wait_for_input(k, f),
                },
                // Console input is not for this space: "no character".
                Some(8) | Some(0x0D) => f.rax = u64::MAX,
                _ => {
                    crate::kprintln!(
                        "kdb: unknown operation {:?} at {:#x}",
                        op,
                        f.rip.wrapping_sub(1)
                    );
                }
            }
            true
        }
        Some(0xEB) => {
            // jmp over `mov $imm32, %rax` (48 C7 C0 imm32) or `mov $imm, %eax` (B8 imm32)
            let p = ip + 2;
            let addr = match (
                usercopy::read_u8(p),
                usercopy::read_u8(p + 1),
                usercopy::read_u8(p + 2),
            ) {
                (Some(0x48), Some(0xC7), Some(0xC0)) => {
                    read_imm32(p + 3).map(|v| v as i32 as i64 as u64)
                }
                (Some(0xB8), _, _) => read_imm32(p + 1).map(|v| v as u64),
                _ => None,
            };
            let mut msg = [0u8; 64];
            let n = addr.map(|a| read_cstr(a, &mut msg)).unwrap_or(0);
            let text = core::str::from_utf8(&msg[..n]).unwrap_or("?");
            match text {
                "exit-success" if full => platform::qemu_exit(platform::EXIT_SUCCESS),
                "exit-failure" if full => platform::qemu_exit(platform::EXIT_FAILURE),
                // Debug-only (kernel feature `counters`, `make bench`): the event counters.
                "counters" if crate::counters::report() => {}
                _ => crate::kprintln!(
                    "--- KD# \"{}\" --- (ip {:#x}, sp {:#x}); continuing{}",
                    text,
                    f.rip.wrapping_sub(1),
                    f.rsp,
                    if full {
                        ""
                    } else {
                        " (unprivileged: no debugger, no exit)"
                    }
                ),
            }
            true
        }
        _ => false,
    }
}

/// ReadChar_Blocked without a character: puts the thread back on its `int3` (one byte `CC`,
/// or `CD 03`) and lets every other ready thread run first; the call repeats when the thread
/// next runs. Interrupts stay enabled in between (the thread is in user mode).
fn wait_for_input(k: &mut Kernel, f: &mut TrapFrame) {
    let back = if usercopy::read_u8(f.rip.wrapping_sub(1)) == Some(0xCC) {
        1
    } else {
        2
    };
    f.rip = f.rip.wrapping_sub(back);
    let next = crate::schedule::sys_thread_switch(k, abi::thread_id::ThreadId::NIL);
    crate::schedule::finish(k, next);
}

fn read_imm32(a: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    usercopy::read_bytes(a, &mut b).then(|| u32::from_le_bytes(b))
}

fn read_cstr(a: u64, out: &mut [u8]) -> usize {
    for (i, slot) in out.iter_mut().enumerate() {
        match usercopy::read_u8(a + i as u64) {
            Some(0) | None => return i,
            Some(c) => *slot = c,
        }
    }
    out.len()
}

fn print_user_string(mut a: u64) {
    for _ in 0..4096 {
        match usercopy::read_u8(a) {
            Some(0) | None => return,
            Some(b'\n') => kprint!("\n"),
            Some(c) => serial::write_byte(c),
        }
        a += 1;
    }
}
