//! The current thread's UTCB: message registers, buffer registers and thread control
//! registers (spec 4.2).
//!
//! The UTCB pointer is read with `mov %gs:0, reg`; it is the address of MR0 and equals the
//! thread's local id. Everything else is at a fixed word index relative to it: MRi at +i,
//! the TCRs at −1..−15, BRi at −(16+i) (word indices in [`index`], from [`abi::utcb`]).
//!
//! All accesses are volatile: the kernel writes these words during system calls, and the
//! compiler must not keep them in registers across one. The UTCB belongs to the running
//! thread only, so plain (non-atomic) accesses are race-free.

use core::arch::asm;

use abi::{Acceptor, ThreadId, XferTimeouts};

/// Number of message registers (MR0..MR63).
pub const MR_COUNT: usize = abi::utcb::NUM_MRS;
/// Number of buffer registers (BR0..BR32).
pub const BR_COUNT: usize = abi::utcb::NUM_BRS;

/// Word indices relative to the MR0 pointer (spec 4.2, libl4 `vregs.h`), from [`abi::utcb`].
pub mod index {
    pub use abi::utcb::{
        ERROR_CODE, EXCEPTION_HANDLER, FLAGS, INTENDED_RECEIVER, MY_GLOBAL_ID, PAGER, PROCESSOR_NO,
        THREAD_WORD0, THREAD_WORD1, USER_DEFINED_HANDLE, VIRTUAL_SENDER, WORD_SIZE_MASK,
        XFER_TIMEOUTS, br, mr,
    };
}

/// Preemption flag bits in byte 0 of the Flags TCR (spec 4.2).
pub use abi::utcb::preempt_flags as preemption;

/// The UTCB pointer (address of MR0 = MyLocalId), from `%gs:0` (spec 4.2).
#[inline(always)]
pub fn utcb_pointer() -> *mut u64 {
    let p: *mut u64;
    // SAFETY: the kernel keeps GS based at a quadword holding the current thread's UTCB
    // pointer (spec 4.2); reading it has no side effects.
    unsafe {
        asm!("mov {}, qword ptr gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags, pure));
    }
    p
}

/// Reads the UTCB word at `index` relative to MR0.
#[inline(always)]
pub fn read(index: isize) -> u64 {
    assert!((-64..64).contains(&index), "UTCB index out of range");
    // SAFETY: the UTCB spans MR0 − 512 .. MR0 + 512 bytes and is mapped for the running
    // thread; `index` was checked to lie within −64..64 words.
    unsafe { utcb_pointer().offset(index).read_volatile() }
}

/// Writes the UTCB word at `index` relative to MR0.
#[inline(always)]
pub fn write(index: isize, value: u64) {
    assert!((-64..64).contains(&index), "UTCB index out of range");
    // SAFETY: as in `read`; the UTCB is private to the running thread.
    unsafe { utcb_pointer().offset(index).write_volatile(value) }
}

/// MRi (`L4_StoreMR`); `i` < 64.
#[inline]
pub fn mr(i: usize) -> u64 {
    assert!(i < MR_COUNT);
    read(index::mr(i))
}

/// Sets MRi (`L4_LoadMR`); `i` < 64.
#[inline]
pub fn set_mr(i: usize, value: u64) {
    assert!(i < MR_COUNT);
    write(index::mr(i), value)
}

/// Copies `words` into MR`first`.. (`L4_LoadMRs`).
pub fn set_mrs(first: usize, words: &[u64]) {
    assert!(first + words.len() <= MR_COUNT);
    for (k, w) in words.iter().enumerate() {
        write(index::mr(first + k), *w);
    }
}

/// Copies MR`first`.. into `out` (`L4_StoreMRs`).
pub fn mrs(first: usize, out: &mut [u64]) {
    assert!(first + out.len() <= MR_COUNT);
    for (k, w) in out.iter_mut().enumerate() {
        *w = read(index::mr(first + k));
    }
}

/// BRi (`L4_StoreBR`); `i` ≤ 32.
#[inline]
pub fn br(i: usize) -> u64 {
    assert!(i < BR_COUNT);
    read(index::br(i))
}

/// Sets BRi (`L4_LoadBR`); `i` ≤ 32.
#[inline]
pub fn set_br(i: usize, value: u64) {
    assert!(i < BR_COUNT);
    write(index::br(i), value)
}

/// Sets the acceptor BR0 (`L4_Accept`).
#[inline]
pub fn accept(acceptor: Acceptor) {
    set_br(0, acceptor.raw())
}

/// The acceptor currently in BR0 (`L4_Accepted`).
#[inline]
pub fn accepted() -> Acceptor {
    Acceptor::from_raw(br(0))
}

/// MyGlobalId TCR (`L4_Myself`).
#[inline]
pub fn my_global_id() -> ThreadId {
    ThreadId::from_raw(read(index::MY_GLOBAL_ID))
}

/// MyLocalId: the UTCB pointer itself (`L4_MyLocalId`).
#[inline]
pub fn my_local_id() -> ThreadId {
    ThreadId::from_raw(utcb_pointer() as u64)
}

/// ProcessorNo TCR (`L4_ProcessorNo`).
#[inline]
pub fn processor_no() -> u64 {
    read(index::PROCESSOR_NO)
}

/// UserDefinedHandle TCR.
#[inline]
pub fn user_defined_handle() -> u64 {
    read(index::USER_DEFINED_HANDLE)
}

/// Sets the UserDefinedHandle TCR.
#[inline]
pub fn set_user_defined_handle(value: u64) {
    write(index::USER_DEFINED_HANDLE, value)
}

/// Pager TCR (`L4_Pager`).
#[inline]
pub fn pager() -> ThreadId {
    ThreadId::from_raw(read(index::PAGER))
}

/// Sets the Pager TCR (`L4_Set_Pager`).
#[inline]
pub fn set_pager(pager: ThreadId) {
    write(index::PAGER, pager.raw())
}

/// ExceptionHandler TCR.
#[inline]
pub fn exception_handler() -> ThreadId {
    ThreadId::from_raw(read(index::EXCEPTION_HANDLER))
}

/// Sets the ExceptionHandler TCR.
#[inline]
pub fn set_exception_handler(handler: ThreadId) {
    write(index::EXCEPTION_HANDLER, handler.raw())
}

/// ErrorCode TCR: the error of the last failed system call (spec 2.9) or IPC (5.7.6).
#[inline]
pub fn error_code() -> u64 {
    read(index::ERROR_CODE)
}

/// XferTimeouts TCR.
#[inline]
pub fn xfer_timeouts() -> XferTimeouts {
    XferTimeouts(read(index::XFER_TIMEOUTS))
}

/// Sets the XferTimeouts TCR.
#[inline]
pub fn set_xfer_timeouts(timeouts: XferTimeouts) {
    write(index::XFER_TIMEOUTS, timeouts.0)
}

/// IntendedReceiver TCR.
#[inline]
pub fn intended_receiver() -> ThreadId {
    ThreadId::from_raw(read(index::INTENDED_RECEIVER))
}

/// ActualSender (the read view of the VirtualSender TCR) after a propagated receive.
#[inline]
pub fn actual_sender() -> ThreadId {
    ThreadId::from_raw(read(index::VIRTUAL_SENDER))
}

/// VirtualSender TCR as last written.
#[inline]
pub fn virtual_sender() -> ThreadId {
    ThreadId::from_raw(read(index::VIRTUAL_SENDER))
}

/// Sets the VirtualSender TCR (before a propagating send).
#[inline]
pub fn set_virtual_sender(sender: ThreadId) {
    write(index::VIRTUAL_SENDER, sender.raw())
}

/// ThreadWord0 / ThreadWord1 (`n` = 0 or 1), user-private.
#[inline]
pub fn thread_word(n: usize) -> u64 {
    read(if n == 0 {
        index::THREAD_WORD0
    } else {
        index::THREAD_WORD1
    })
}

/// Sets ThreadWord0 / ThreadWord1 (`n` = 0 or 1).
#[inline]
pub fn set_thread_word(n: usize, value: u64) {
    write(
        if n == 0 {
            index::THREAD_WORD0
        } else {
            index::THREAD_WORD1
        },
        value,
    )
}

/// WordSizeMask (Pistachio amd64 extension).
#[inline]
pub fn word_size_mask() -> u64 {
    read(index::WORD_SIZE_MASK)
}

/// Sets WordSizeMask to all ones (`L4_Reset_WordSizeMask`).
#[inline]
pub fn reset_word_size_mask() {
    write(index::WORD_SIZE_MASK, u64::MAX)
}

/// Byte 0 of the Flags TCR: the preemption flags (see [`preemption`]).
#[inline]
pub fn preemption_flags() -> u64 {
    read(index::FLAGS) & 0xFF
}

/// Replaces byte 0 of the Flags TCR.
#[inline]
pub fn set_preemption_flags(flags: u64) {
    write(index::FLAGS, (read(index::FLAGS) & !0xFF) | (flags & 0xFF))
}

/// Requests delayed preemption (`L4_EnablePreemption`: sets d).
pub fn enable_delayed_preemption() {
    set_preemption_flags(preemption_flags() | preemption::DELAYED)
}

/// Clears d (`L4_DisablePreemption`).
pub fn disable_delayed_preemption() {
    set_preemption_flags(preemption_flags() & !preemption::DELAYED)
}

/// Sets or clears s (`L4_EnablePreemptionFaultException` / `Disable...`).
pub fn set_preemption_fault_exception(on: bool) {
    let f = preemption_flags() & !preemption::SIGNAL;
    set_preemption_flags(if on { f | preemption::SIGNAL } else { f })
}

/// Tests and clears p (`L4_PreemptionPending`).
pub fn preemption_pending() -> bool {
    let f = preemption_flags();
    set_preemption_flags(f & !preemption::PENDING);
    f & preemption::PENDING != 0
}

/// Byte 1 of the Flags TCR: coprocessor-usage hints (`L4_Set_CopFlag`: bit 8+n).
#[inline]
pub fn coprocessor_flags() -> u64 {
    (read(index::FLAGS) >> 8) & 0xFF
}

/// Sets coprocessor hint `n` (0..8).
pub fn set_cop_flag(n: u32) {
    write(index::FLAGS, read(index::FLAGS) | (1 << (8 + (n & 7))))
}

/// Clears coprocessor hint `n` (0..8).
pub fn clr_cop_flag(n: u32) {
    write(index::FLAGS, read(index::FLAGS) & !(1 << (8 + (n & 7))))
}
