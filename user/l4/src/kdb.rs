//! The kernel-debugger interface (spec 8): console output and input for user programs, and
//! `KDB_Enter`, which test runs use to leave QEMU (`exit-success` / `exit-failure`).
//!
//! Every operation is `int3` followed by a byte pattern the kernel decodes:
//! `cmp al, 0` PrintChar(AL), `cmp al, 1` PrintString(RAX = NUL-terminated string),
//! `cmp al, 8` ReadChar (non-blocking, RAX out), `cmp al, 0xd` ReadChar_Blocked, and
//! `jmp 1f; mov rax, imm32; 1:` KDB_Enter with the message at the sign-extended imm32.
//! Only RAX is an operand; the kernel preserves everything else.
//!
//! Output is line-agnostic: [`print!`](crate::print) / [`println!`](crate::println) format
//! with `core::fmt` and hand the text to PrintString in NUL-terminated chunks.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

/// PrintChar: prints one byte on the kernel console.
#[inline]
pub fn print_char(c: u8) {
    // SAFETY: spec 8 PrintChar: AL in, all registers preserved, no memory written.
    unsafe { asm!("int3", "cmp al, 0", in("rax") c as u64, options(nomem, nostack)) }
}

/// Size of the on-stack chunk buffer of [`print_str`].
const CHUNK: usize = 128;

/// PrintString: prints `s` (any length; NUL bytes in it are skipped). The text is copied
/// into a NUL-terminated stack buffer in chunks, because the kernel reads a C string.
pub fn print_str(s: &str) {
    let mut buf = [0u8; CHUNK];
    let mut n = 0;
    for &b in s.as_bytes() {
        if b == 0 {
            continue;
        }
        buf[n] = b;
        n += 1;
        if n == CHUNK - 1 {
            buf[n] = 0;
            print_nul_terminated(&buf);
            n = 0;
        }
    }
    if n > 0 {
        buf[n] = 0;
        print_nul_terminated(&buf);
    }
}

/// PrintString on a buffer that contains a NUL byte.
fn print_nul_terminated(buf: &[u8; CHUNK]) {
    debug_assert!(buf.contains(&0));
    // SAFETY: spec 8 PrintString: RAX = address of a NUL-terminated string in our space
    // (the callers put a NUL inside `buf`); the kernel only reads it and preserves all
    // registers.
    unsafe { asm!("int3", "cmp al, 1", in("rax") buf.as_ptr(), options(readonly, nostack)) }
}

/// ReadChar (non-blocking): the next console character, or `None` if none is waiting.
/// The kernel reports "none" as 0 or a value above 0xFF (e.g. all ones).
pub fn read_char() -> Option<u8> {
    let c: u64;
    // SAFETY: spec 8 ReadChar: RAX out, everything else preserved.
    unsafe { asm!("int3", "cmp al, 8", out("rax") c, options(nomem, nostack)) }
    if c == 0 || c > 0xFF {
        None
    } else {
        Some(c as u8)
    }
}

/// ReadChar_Blocked: waits for the next console character.
pub fn read_char_blocked() -> u8 {
    let c: u64;
    // SAFETY: spec 8 ReadChar_Blocked: RAX out, everything else preserved.
    unsafe { asm!("int3", "cmp al, 0xd", out("rax") c, options(nomem, nostack)) }
    c as u8
}

/// Our kernel's extension `int3; cmp al, 0x20`: the number of kernel-memory frames in use
/// (for tests of memory reclaim). Not part of Pistachio's interface.
pub fn kernel_frames_in_use() -> u64 {
    let n: u64;
    // SAFETY: extension of spec 8 (kernel/src/kdb.rs): RAX out, everything else preserved.
    unsafe { asm!("int3", "cmp al, 0x20", out("rax") n, options(nomem, nostack)) }
    n
}

/// Our kernel's extension `int3; cmp al, 0x21`, present only in kernels built with the
/// `invariants` feature (the fuzzer's): the kernel checks its own data structures, prints
/// every violation on its console and returns their number. `None`: this kernel has no
/// checks (the call left RAX as it was).
pub fn check_kernel_invariants() -> Option<u64> {
    let mut n: u64 = u64::MAX;
    // SAFETY: extension of spec 8 (kernel/src/kdb.rs): RAX in/out, everything else
    // preserved; a kernel without the feature ignores the call.
    unsafe { asm!("int3", "cmp al, 0x21", inout("rax") n, options(nomem, nostack)) }
    (n != u64::MAX).then_some(n)
}

/// Capacity of the message buffer of [`enter`] (longer messages are cut).
pub const ENTER_MESSAGE_MAX: usize = 127;

/// The message of a runtime [`enter`]: KDB_Enter carries the text's address as a 32-bit
/// immediate, so the text must sit at a link-time address (< 2 GiB; user programs are
/// linked low). One static buffer, guarded by [`ENTER_LOCK`].
struct EnterBuffer(UnsafeCell<[u8; ENTER_MESSAGE_MAX + 1]>);

// SAFETY: access is serialised by ENTER_LOCK.
unsafe impl Sync for EnterBuffer {}

static ENTER_BUFFER: EnterBuffer = EnterBuffer(UnsafeCell::new([0; ENTER_MESSAGE_MAX + 1]));
static ENTER_LOCK: AtomicBool = AtomicBool::new(false);

/// KDB_Enter(msg): the kernel prints `msg` and enters its debugger, or — for the messages
/// `exit-success` / `exit-failure` in test runs — ends the QEMU run. If the kernel resumes
/// the thread, this returns.
pub fn enter(msg: &str) {
    while ENTER_LOCK.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let bytes = msg.as_bytes();
    let len = bytes.len().min(ENTER_MESSAGE_MAX);
    // SAFETY: we hold ENTER_LOCK, so nobody else touches the buffer; the copy stays within
    // its ENTER_MESSAGE_MAX + 1 bytes and leaves a NUL terminator.
    unsafe {
        let buf = &mut *ENTER_BUFFER.0.get();
        buf[..len].copy_from_slice(&bytes[..len]);
        buf[len] = 0;
    }
    // SAFETY: spec 8 KDB_Enter: `int3; jmp 1f; mov rax, imm32; 1:` with imm32 = address of
    // the NUL-terminated buffer (a static below 2 GiB: code-model=kernel gives a
    // sign-extended 32-bit relocation). The `mov` is skipped, so no register changes.
    unsafe {
        asm!(
            "int3",
            "jmp 2f",
            "movq ${buf}, %rax",
            "2:",
            buf = sym ENTER_BUFFER,
            options(att_syntax, nostack),
        );
    }
    ENTER_LOCK.store(false, Ordering::Release);
}

/// A `core::fmt::Write` sink that prints through [`print_str`].
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        print_str(s);
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let _ = fmt::Write::write_fmt(&mut Console, args);
}

/// Prints to the kernel console (through KDB PrintString), like `std::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::kdb::_print(format_args!($($arg)*)) };
}

/// Prints a line to the kernel console (through KDB PrintString), like `std::println!`.
#[macro_export]
macro_rules! println {
    () => { $crate::kdb::print_str("\n") };
    ($($arg:tt)*) => { $crate::kdb::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
