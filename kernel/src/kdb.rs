//! The kernel-debugger interface for user programs (spec 8): `int3` followed by an opcode
//! pattern. Print char / string and read char work on the serial console; KDB_Enter prints its
//! message — and a message of `exit-success` / `exit-failure` leaves QEMU with that status
//! (how test root servers end a run). Extension: `int3; cmpb $0x20,%al` returns the number
//! of kernel-memory frames in use in RAX; with the `invariants` feature,
//! `int3; cmpb $0x21,%al` runs the kernel's self-checks (`invariants.rs`) and returns the
//! number of violations in RAX.

use crate::arch::x86_64::trap::TrapFrame;
use crate::arch::x86_64::usercopy;
use crate::kprint;
use crate::platform::pc::{self, serial};

/// Handles an int3 from user mode; returns false if it is not a KDB call.
pub fn handle(f: &mut TrapFrame) -> bool {
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
                Some(8) => {
                    f.rax = serial::try_read_byte()
                        .map(|c| c as u64)
                        .unwrap_or(u64::MAX)
                }
                // l4rs extension: RAX = frames of kernel memory in use (tests of memory reclaim).
                Some(0x20) => f.rax = crate::mm::frame::in_use(),
                // l4rs extension, fuzz builds only: RAX = kernel invariant violations (0 = ok).
                #[cfg(feature = "invariants")]
                Some(0x21) => f.rax = crate::invariants::check(),
                Some(0x0D) => {
                    f.rax = loop {
                        if let Some(c) = serial::try_read_byte() {
                            break c as u64;
                        }
                        core::hint::spin_loop();
                    }
                }
                _ => {
                    crate::kprintln!("kdb: unknown operation {:?} at {:#x}", op, f.rip - 1);
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
                "exit-success" => pc::qemu_exit(pc::EXIT_SUCCESS),
                "exit-failure" => pc::qemu_exit(pc::EXIT_FAILURE),
                _ => crate::kprintln!(
                    "--- KD# \"{}\" --- (ip {:#x}, sp {:#x}); continuing",
                    text,
                    f.rip - 1,
                    f.rsp
                ),
            }
            true
        }
        _ => false,
    }
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
