//! The pure logic of the kernel core, kept out of the kernel so that `cargo test` runs it on
//! the host (as `mapdb` does for the mapping database).
//!
//! * [`timer`]: the armed timeouts, a binary heap with a position index: arming, cancelling
//!   and expiring cost O(log n) in the number of armed timeouts (issue 17).
//! * [`state`]: what a blocked thread waits for, as one enum carrying the data of that state,
//!   and [`state::react`], the one function that says what each event (timeout, abort,
//!   deletion of the thread, deletion of its partner, delivery) does in each state.
//! * [`queue`]: send queues and lists of closed receivers, linked by thread number.
//! * [`utcb`]: which UTCB slots of which address space are taken, found without scanning the
//!   threads (issue 17).
//!
//! Nothing here is `unsafe`, allocates or knows about TCB memory: threads are named by small
//! integers (the kernel's thread slots) or by the kernel's generation-checked handles.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod queue;
pub mod state;
pub mod timer;
pub mod utcb;
