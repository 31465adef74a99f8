//! Thread helpers built on ExchangeRegisters (spec 5.2), like libl4's `thread.h`.
//!
//! * ExchangeRegisters with control 0 changes nothing and converts ids: given a global id
//!   it returns the thread's local id, given a local id its global id.
//! * Control `1<<9` (d, "deliver") is a pure query of the old values (pager, handle, ...).
//! * [`start`] sets SP and IP and releases a thread from its start-up wait (6.1).

use abi::{ExregsControl, ThreadId};

use crate::syscall::{ExregsState, exchange_registers};
use crate::utcb;

/// This thread's global id (MyGlobalId TCR, `L4_Myself`).
pub fn my_global_id() -> ThreadId {
    utcb::my_global_id()
}

/// This thread's local id (the UTCB pointer, `L4_MyLocalId`).
pub fn my_local_id() -> ThreadId {
    utcb::my_local_id()
}

/// `L4_GlobalIdOf`: the global id of `t` (ExchangeRegisters control 0). A global `t` is
/// returned as is; nil if `t` is not a thread we may inspect.
pub fn global_id_of(t: ThreadId) -> ThreadId {
    if t.is_local() {
        exchange_registers(t, ExregsState::default()).0
    } else {
        t
    }
}

/// `L4_LocalIdOf`: the local id of `t` (ExchangeRegisters control 0); for a thread in
/// another space that is an address in *that* space. Nil on failure.
pub fn local_id_of(t: ThreadId) -> ThreadId {
    if t.is_global() {
        exchange_registers(t, ExregsState::default()).0
    } else {
        t
    }
}

/// `L4_PagerOf`: the Pager TCR of `t` (ExchangeRegisters control `1<<9`).
pub fn pager_of(t: ThreadId) -> ThreadId {
    exchange_registers(
        t,
        ExregsState {
            control: ExregsControl::QUERY.raw(),
            ..Default::default()
        },
    )
    .1
    .pager
}

/// `L4_UserDefinedHandleOf`: the UserDefinedHandle TCR of `t`.
pub fn user_defined_handle_of(t: ThreadId) -> u64 {
    exchange_registers(
        t,
        ExregsState {
            control: ExregsControl::QUERY.raw(),
            ..Default::default()
        },
    )
    .1
    .user_handle
}

/// `L4_Start_SpIp`: set SP and IP of `t`, abort any IPC (this releases a new thread from
/// its start-up wait) and resume it. Control `(3<<3)|(1<<8)|6`. Returns the result id
/// (nil on failure, ErrorCode set).
pub fn start(t: ThreadId, sp: u64, ip: u64) -> ThreadId {
    let control = ExregsControl::START.raw();
    debug_assert_eq!(control, (3 << 3) | (1 << 8) | 6);
    exchange_registers(
        t,
        ExregsState {
            control,
            sp,
            ip,
            ..Default::default()
        },
    )
    .0
}

/// `L4_Stop`: halt `t` (H|h). Returns the old state.
pub fn stop(t: ThreadId) -> (ThreadId, ExregsState) {
    exchange_registers(
        t,
        ExregsState {
            control: ExregsControl::HALT_THREAD.raw(),
            ..Default::default()
        },
    )
}

/// `L4_AbortIpc_and_stop`-style helper: abort send and receive and halt `t`.
pub fn abort_ipc_and_stop(t: ThreadId) -> (ThreadId, ExregsState) {
    let c =
        ExregsControl::HALT_THREAD.raw() | ExregsControl::ABORT_RECEIVE | ExregsControl::ABORT_SEND;
    exchange_registers(
        t,
        ExregsState {
            control: c,
            ..Default::default()
        },
    )
}
