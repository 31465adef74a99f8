//! The conformance suite of l4rs: the test programs that the root server runs in its
//! `conformance` mode (`conformance::run`), one module per system call or topic in [`tests`],
//! with the framework (the counts, the `check <name> ... ok` lines) in [`conformance`].
//!
//! It is a library of the root server and runs inside the root server's address space: the
//! test programs' threads run the root's image (this crate is linked into it).

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod conformance;
pub mod tests;

pub use conformance::run;
pub use tests::util;
