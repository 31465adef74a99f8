//! System-call registers decoded once, with the `abi` types (register contracts of spec 4.4),
//! and the results of the non-IPC calls encoded once.
//!
//! Owns nothing; touches only the caller's `TrapFrame` (and, for an error, the caller's
//! ErrorCode TCR). Every non-IPC handler has the signature `fn(Args) -> Result<Out,
//! SyscallError>`: its `Args` are decoded here at the boundary (`decode`), and `finish` writes
//! its `Out` into the registers, or the error into ErrorCode and 0 into the result register.
//! IPC has its own typed error (`IpcErr`) encoded in one place in `ipc`.

use abi::error::SyscallError;
use abi::fpage::Fpage;
use abi::syscall_args::{
    MemoryControlWord, PreemptionControl, PrioControl, ProcessorControlWord, SpaceControlWord,
    TimeControl, UnmapControl,
};
use abi::thread_id::ThreadId;
use abi::utcb;

use crate::arch::trap::TrapFrame;
use crate::thread;

/// ThreadControl (spec 5.3): RDI dest, RSI pager, RDX scheduler, R8 space, R9 UTCB location.
pub struct ThreadControlArgs {
    pub dest: ThreadId,
    pub space: ThreadId,
    pub scheduler: ThreadId,
    pub pager: ThreadId,
    pub utcb_location: u64,
}

/// Schedule (spec 5.6): RDI dest, RDX time control, R8 processor control, RSI priority
/// control, R9 preemption control.
pub struct ScheduleArgs {
    pub dest: ThreadId,
    pub time: TimeControl,
    pub processor: ProcessorControlWord,
    pub prio: PrioControl,
    pub preemption: PreemptionControl,
}

/// SpaceControl (spec 5.9): RDI space specifier, RSI control, RDX KIP area, R8 UTCB area, R9
/// redirector.
pub struct SpaceControlArgs {
    pub space: ThreadId,
    pub control: SpaceControlWord,
    pub kip_area: Fpage,
    pub utcb_area: Fpage,
    pub redirector: ThreadId,
}

/// Unmap (spec 5.8): RDX control (the fpages are in MR0..MRk).
pub struct UnmapArgs {
    pub control: UnmapControl,
}

/// ProcessorControl (spec 5.10): RDI processor number.
pub struct ProcessorControlArgs {
    pub processor: u64,
}

/// MemoryControl (spec 5.11): RDX control (fpages in MR0..MRk), attribute0..3 in R9, RSI, R8,
/// R10.
pub struct MemoryControlArgs {
    pub control: MemoryControlWord,
    pub attributes: [u64; 4],
}

impl ThreadControlArgs {
    pub fn decode(f: &TrapFrame) -> Self {
        Self {
            dest: ThreadId::from_raw(f.rdi),
            space: ThreadId::from_raw(f.r8),
            scheduler: ThreadId::from_raw(f.rdx),
            pager: ThreadId::from_raw(f.rsi),
            utcb_location: f.r9,
        }
    }
}

impl ScheduleArgs {
    pub fn decode(f: &TrapFrame) -> Self {
        Self {
            dest: ThreadId::from_raw(f.rdi),
            time: TimeControl(f.rdx),
            processor: ProcessorControlWord(f.r8),
            prio: PrioControl(f.rsi),
            preemption: PreemptionControl(f.r9),
        }
    }
}

impl SpaceControlArgs {
    pub fn decode(f: &TrapFrame) -> Self {
        Self {
            space: ThreadId::from_raw(f.rdi),
            control: SpaceControlWord(f.rsi),
            kip_area: Fpage::from_raw(f.rdx),
            utcb_area: Fpage::from_raw(f.r8),
            redirector: ThreadId::from_raw(f.r9),
        }
    }
}

impl UnmapArgs {
    pub fn decode(f: &TrapFrame) -> Self {
        Self {
            control: UnmapControl(f.rdx),
        }
    }
}

impl ProcessorControlArgs {
    pub fn decode(f: &TrapFrame) -> Self {
        Self { processor: f.rdi }
    }
}

impl MemoryControlArgs {
    pub fn decode(f: &TrapFrame) -> Self {
        Self {
            control: MemoryControlWord(f.rdx),
            attributes: [f.r9, f.rsi, f.r8, f.r10],
        }
    }
}

/// What a non-IPC call returns in registers.
pub enum Out {
    /// Nothing (Unmap: results are in the MRs).
    Nothing,
    /// RAX.
    Rax(u64),
    /// RAX and RDX.
    RaxRdx(u64, u64),
    /// RDX (MemoryControl).
    Rdx(u64),
}

/// Which register carries 0 ("failed") when a call returns an error.
#[derive(Clone, Copy)]
pub enum ResultReg {
    Rax,
    Rdx,
}

/// Encodes a non-IPC call's result: registers on success; ErrorCode and 0 in `result` on error.
#[inline(always)]
pub fn finish(f: &mut TrapFrame, r: Result<Out, SyscallError>, result: ResultReg) {
    match r {
        Ok(Out::Nothing) => {}
        Ok(Out::Rax(a)) => f.rax = a,
        Ok(Out::RaxRdx(a, d)) => {
            f.rax = a;
            f.rdx = d;
        }
        Ok(Out::Rdx(d)) => f.rdx = d,
        Err(e) => {
            set_error(e);
            match result {
                ResultReg::Rax => f.rax = 0,
                ResultReg::Rdx => f.rdx = 0,
            }
        }
    }
}

fn set_error(e: SyscallError) {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let t = unsafe { thread::current() };
    if t.is_activated() {
        t.set_utcb_word(utcb::ERROR_CODE, e as u64);
    }
}
