//! `l4`: the user-level library for our L4 X.2 kernel (the counterpart of Pistachio's libl4),
//! for programs written in Rust.
//!
//! A user program needs four things from the kernel: the Kernel Interface Page (where the
//! system calls are and what the machine looks like), the system calls themselves, its UTCB
//! (message, buffer and thread control registers), and a console. This crate wraps each of
//! them with the binary interface of Pistachio amd64 (`shared/spec/x2-amd64.md`), so that
//! a program never writes inline assembly or a raw UTCB offset.
//!
//! | module | what it owns |
//! |---|---|
//! | [`syscall`] | one wrapper per system call, register contract of spec table 4.4 |
//! | [`kip`](mod@kip) | the KIP: [`init`] finds it, typed views of its descriptors |
//! | [`utcb`] | MRs, BRs and every TCR of the current thread |
//! | [`msg`] | the [`msg::Msg`] builder and the IPC conveniences (`call`, `reply_wait`, ...) |
//! | [`thread`] | ExchangeRegisters helpers (`local_id_of`, `start`, `pager_of`, ...) |
//! | [`kdb`] | the kernel debugger: console output/input, `enter` (and [`print!`]/[`println!`]) |
//! | [`sigma0`] | the sigma0 client (`get_page`, `get_any`) |
//! | [`bootinfo`] | the program's command line from the generic bootinfo |
//! | [`rt`] | `_start`, stack and panic handler for binaries (feature `rt`, default on) |
//!
//! # Writing a program
//!
//! A binary links at a fixed low address with `user/l4/link/user.ld`; its `build.rs` is
//!
//! ```ignore
//! fn main() {
//!     let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
//!     println!("cargo:rustc-link-arg-bins=--defsym=L4_LINK_BASE=0x01000000");
//!     println!("cargo:rustc-link-arg-bins=-T{dir}/../l4/link/user.ld");
//!     println!("cargo:rerun-if-changed={dir}/../l4/link/user.ld");
//! }
//! ```
//!
//! and its `main.rs`:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//!
//! use l4::{println, msg::Msg};
//!
//! l4::entry!(main);
//!
//! fn main() -> ! {
//!     // `init()` has already run: the KIP and the system calls are available.
//!     println!("hello from {:?}", l4::utcb::my_global_id());
//!     let t0 = l4::syscall::system_clock();
//!     l4::msg::sleep(abi::Time::period_micros(1000));
//!     println!("slept {} us", l4::syscall::system_clock() - t0);
//!     // Ask sigma0 for any 4 KiB page and write to it.
//!     if let Ok(page) = l4::sigma0::get_any(12) {
//!         let p = page.base() as *mut u64;
//!         unsafe { p.write_volatile(42) };
//!     }
//!     // A message: label 0x1234, two untyped words, sent with a Call.
//!     let server = l4::utcb::my_global_id(); // (some server)
//!     let mut m = Msg::new(0x1234);
//!     m.append_word(1).append_word(2);
//!     m.load();
//!     let _ = l4::msg::call(server);
//!     l4::kdb::enter("exit-success");
//!     loop {}
//! }
//! ```
//!
//! The runtime ([`rt`]) enters at `_start` with RSP on a static 64 KiB stack (root servers
//! are started with SP 0), calls [`init`] and then the function named in [`entry!`]. A
//! panic prints `panic: <message>` and ends with `kdb::enter("exit-failure")`.
//!
//! Output goes to the kernel console through the kernel debugger's PrintString
//! (spec 8): use [`print!`] / [`println!`].
//!
//! # Threads
//!
//! Every call here works from any thread of a program. The only global state is the KIP
//! pointer and the eleven system-call addresses, written once by [`init`] before `main`.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod bootinfo;
pub mod kdb;
pub mod kip;
pub mod msg;
pub mod sigma0;
pub mod syscall;
pub mod thread;
pub mod utcb;

#[cfg(feature = "rt")]
pub mod rt;

pub use kip::{init, kip};
pub use msg::{IpcFailure, Msg, ipc_error};
pub use syscall::kernel_interface;
pub use thread::{global_id_of, local_id_of, my_global_id, my_local_id, pager_of, start};

/// Re-export of the ABI crate, so programs can name `l4::abi::...`.
pub use abi;
