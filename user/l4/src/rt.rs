//! The runtime of a user binary (feature `rt`): entry point, stack and panic handler.
//!
//! Conventions (fixed here for every program in `user/`):
//! * **Entry symbol** `_start` (the linker script's `ENTRY`). The kernel starts root servers
//!   with SP = 0 (spec 6.8) and new threads with whatever SP their creator chose, so
//!   `_start` does not trust RSP: it loads the top of a static, 16-byte aligned 64 KiB stack
//!   (`.bss`, so the loader must zero-fill bss), clears RBP (end of the frame chain) and
//!   calls [`init`](crate::init), then the program's main.
//! * **Main** is named with [`entry!`](crate::entry): `l4::entry!(main);` with
//!   `fn main() -> !`. The macro defines the `#[no_mangle]` symbol `l4_main` the runtime calls.
//! * **Panics** print `panic: <location>: <message>` and the thread id on the kernel console,
//!   then `kdb::enter("exit-failure")` (which ends a test run); if the kernel resumes the
//!   thread it spins.
//! * **Output** goes through [`crate::kdb`] ([`print!`](crate::print) / [`println!`](crate::println)).
//!
//! Only the first thread runs `_start`; further threads are started by their creator at an
//! `extern "C" fn() -> !` with a stack the creator allocated (16-byte aligned top minus 8,
//! as after a `call`).
//!
//! # Linking a binary
//!
//! `user/l4/link/user.ld` lays out text, rodata, data and bss from the address given by the
//! symbol `L4_LINK_BASE`, with virtual = physical load address. A binary's `build.rs`:
//!
//! ```ignore
//! fn main() {
//!     let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
//!     println!("cargo:rustc-link-arg-bins=--defsym=L4_LINK_BASE=0x01000000");
//!     println!("cargo:rustc-link-arg-bins=-T{dir}/../l4/link/user.ld");
//!     println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
//!     println!("cargo:rustc-link-arg-bins=--no-pie");
//!     println!("cargo:rerun-if-changed={dir}/../l4/link/user.ld");
//! }
//! ```

use core::arch::global_asm;
use core::panic::PanicInfo;

/// Size of the initial thread's stack.
pub const STACK_SIZE: usize = 64 * 1024;

global_asm!(
    ".section .text._start,\"ax\",@progbits",
    ".global _start",
    ".type _start,@function",
    "_start:",
    "    lea rsp, [rip + __l4_stack_top]",
    "    xor ebp, ebp",
    "    call {rt_start}",
    "    ud2",
    ".size _start, . - _start",
    "",
    ".section .bss.l4_stack,\"aw\",@nobits",
    ".balign 16",
    ".global __l4_stack_bottom",
    "__l4_stack_bottom:",
    "    .skip {stack_size}",
    ".global __l4_stack_top",
    "__l4_stack_top:",
    rt_start = sym rt_start,
    stack_size = const STACK_SIZE,
);

unsafe extern "Rust" {
    /// The program's main, defined by [`entry!`](crate::entry).
    safe fn l4_main() -> !;
}

/// Called by `_start` on the static stack.
extern "C" fn rt_start() -> ! {
    crate::init();
    l4_main()
}

/// Names the program's main function for the runtime: `l4::entry!(main);` where
/// `fn main() -> !`. Defines the symbol `l4_main` that `_start` calls after `l4::init()`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        fn l4_main() -> ! {
            let main: fn() -> ! = $main;
            main()
        }
    };
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let me = crate::utcb::my_global_id();
    match info.location() {
        Some(l) => crate::println!(
            "panic in thread {:#x}: {}:{}: {}",
            me.raw(),
            l.file(),
            l.line(),
            info.message()
        ),
        None => crate::println!("panic in thread {:#x}: {}", me.raw(), info.message()),
    }
    crate::kdb::enter("exit-failure");
    loop {
        core::hint::spin_loop();
    }
}
