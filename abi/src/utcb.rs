//! The user thread control block (spec 4.2): word indices relative to the MR0 pointer that
//! libl4 reads from `%gs:0`, and the 1 KiB [`Utcb`] struct the kernel maps into the UTCB area.
//!
//! The pointer P (= MyLocalId) is UTCB start + 0x200. MRi is at P + 8i, the TCRs at
//! negative word indices −1..−15, BRi at P − 8·(16+i). In the struct the BRs are stored
//! reversed (BR32 at 0x080 … BR0 at 0x180), so use [`Utcb::br`] / [`Utcb::set_br`].

use core::mem::{offset_of, size_of};

/// UTCB size in bytes (spec 4.2).
pub const UTCB_SIZE: usize = 1024;
/// Offset of MR0 (the local id / `%gs:0` pointer) in the UTCB block (spec 4.2).
pub const MR0_OFFSET: usize = 0x200;
/// Number of message registers, MR0..MR63 (spec 4.2).
pub const NUM_MRS: usize = 64;
/// Number of buffer registers, BR0..BR32 (spec 4.2).
pub const NUM_BRS: usize = 33;

/// Word index of MRi relative to P (spec 4.2).
pub const fn mr(i: usize) -> isize {
    i as isize
}

/// Word index of BRi relative to P: −(16 + i) (spec 4.2).
pub const fn br(i: usize) -> isize {
    -16 - i as isize
}

/// Byte offset inside the 1 KiB UTCB block of the word at index `word` relative to P
/// (spec 4.2).
pub const fn block_offset(word: isize) -> isize {
    MR0_OFFSET as isize + 8 * word
}

/// TCR MyGlobalId (kernel-written) (spec 4.2).
pub const MY_GLOBAL_ID: isize = -15;
/// TCR ProcessorNo (spec 4.2).
pub const PROCESSOR_NO: isize = -14;
/// TCR UserDefinedHandle (spec 4.2).
pub const USER_DEFINED_HANDLE: isize = -13;
/// TCR Pager (spec 4.2).
pub const PAGER: isize = -12;
/// TCR ExceptionHandler (spec 4.2).
pub const EXCEPTION_HANDLER: isize = -11;
/// TCR flags word: byte 0 preemption flags, byte 1 coprocessor flags (spec 4.2).
pub const FLAGS: isize = -10;
/// TCR ErrorCode (spec 4.2).
pub const ERROR_CODE: isize = -9;
/// TCR XferTimeouts (spec 4.2).
pub const XFER_TIMEOUTS: isize = -8;
/// TCR IntendedReceiver (spec 4.2).
pub const INTENDED_RECEIVER: isize = -7;
/// TCR VirtualSender (user writes) (spec 4.2).
pub const VIRTUAL_SENDER: isize = -6;
/// TCR ActualSender (kernel writes; same word as VirtualSender) (spec 4.2).
pub const ACTUAL_SENDER: isize = VIRTUAL_SENDER;
/// TCR ThreadWord1 (user only) (spec 4.2).
pub const THREAD_WORD1: isize = -5;
/// TCR ThreadWord0 (user only) (spec 4.2).
pub const THREAD_WORD0: isize = -4;
/// TCR WordSizeMask (Pistachio amd64 extension) (spec 4.2).
pub const WORD_SIZE_MASK: isize = -1;

/// Preemption flag bits in the low byte of the [`FLAGS`] TCR (spec 4.2).
pub mod preempt_flags {
    /// s: signal a preemption-fault exception.
    pub const SIGNAL: u64 = 1 << 5;
    /// d: delayed preemption requested (`L4_EnablePreemption` sets it).
    pub const DELAYED: u64 = 1 << 6;
    /// p: preemption pending (set by the kernel).
    pub const PENDING: u64 = 1 << 7;
}

/// The 1 KiB, 1 KiB-aligned UTCB block (spec 4.2).
#[repr(C, align(1024))]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Utcb {
    /// 0x000: kernel-private (Pistachio: compatibility-mode flag).
    pub kernel_private: u64,
    /// 0x008–0x07F: unused.
    pub reserved0: [u64; 15],
    /// 0x080–0x187: BRs reversed: `br_reversed[32 - i]` = BRi.
    pub br_reversed: [u64; NUM_BRS],
    /// 0x188 MyGlobalId.
    pub my_global_id: u64,
    /// 0x190 ProcessorNo.
    pub processor_no: u64,
    /// 0x198 UserDefinedHandle.
    pub user_defined_handle: u64,
    /// 0x1A0 Pager.
    pub pager: u64,
    /// 0x1A8 ExceptionHandler.
    pub exception_handler: u64,
    /// 0x1B0 flags (preemption byte 0, coprocessor byte 1).
    pub flags: u64,
    /// 0x1B8 ErrorCode.
    pub error_code: u64,
    /// 0x1C0 XferTimeouts.
    pub xfer_timeouts: u64,
    /// 0x1C8 IntendedReceiver.
    pub intended_receiver: u64,
    /// 0x1D0 VirtualSender / ActualSender.
    pub virtual_sender: u64,
    /// 0x1D8 ThreadWord1.
    pub thread_word1: u64,
    /// 0x1E0 ThreadWord0.
    pub thread_word0: u64,
    /// 0x1E8–0x1F7 unused.
    pub reserved1: [u64; 2],
    /// 0x1F8 WordSizeMask.
    pub word_size_mask: u64,
    /// 0x200 MR0..MR63.
    pub mr: [u64; NUM_MRS],
}

const _: () = assert!(size_of::<Utcb>() == UTCB_SIZE);
const _: () = assert!(offset_of!(Utcb, kernel_private) == 0x000);
const _: () = assert!(offset_of!(Utcb, reserved0) == 0x008);
const _: () = assert!(offset_of!(Utcb, br_reversed) == 0x080);
const _: () = assert!(offset_of!(Utcb, my_global_id) == 0x188);
const _: () = assert!(offset_of!(Utcb, processor_no) == 0x190);
const _: () = assert!(offset_of!(Utcb, user_defined_handle) == 0x198);
const _: () = assert!(offset_of!(Utcb, pager) == 0x1A0);
const _: () = assert!(offset_of!(Utcb, exception_handler) == 0x1A8);
const _: () = assert!(offset_of!(Utcb, flags) == 0x1B0);
const _: () = assert!(offset_of!(Utcb, error_code) == 0x1B8);
const _: () = assert!(offset_of!(Utcb, xfer_timeouts) == 0x1C0);
const _: () = assert!(offset_of!(Utcb, intended_receiver) == 0x1C8);
const _: () = assert!(offset_of!(Utcb, virtual_sender) == 0x1D0);
const _: () = assert!(offset_of!(Utcb, thread_word1) == 0x1D8);
const _: () = assert!(offset_of!(Utcb, thread_word0) == 0x1E0);
const _: () = assert!(offset_of!(Utcb, reserved1) == 0x1E8);
const _: () = assert!(offset_of!(Utcb, word_size_mask) == 0x1F8);
const _: () = assert!(offset_of!(Utcb, mr) == MR0_OFFSET);
// The TCR indices agree with the struct.
const _: () = assert!(block_offset(MY_GLOBAL_ID) == offset_of!(Utcb, my_global_id) as isize);
const _: () = assert!(block_offset(PROCESSOR_NO) == offset_of!(Utcb, processor_no) as isize);
const _: () =
    assert!(block_offset(USER_DEFINED_HANDLE) == offset_of!(Utcb, user_defined_handle) as isize);
const _: () = assert!(block_offset(PAGER) == offset_of!(Utcb, pager) as isize);
const _: () =
    assert!(block_offset(EXCEPTION_HANDLER) == offset_of!(Utcb, exception_handler) as isize);
const _: () = assert!(block_offset(FLAGS) == offset_of!(Utcb, flags) as isize);
const _: () = assert!(block_offset(ERROR_CODE) == offset_of!(Utcb, error_code) as isize);
const _: () = assert!(block_offset(XFER_TIMEOUTS) == offset_of!(Utcb, xfer_timeouts) as isize);
const _: () =
    assert!(block_offset(INTENDED_RECEIVER) == offset_of!(Utcb, intended_receiver) as isize);
const _: () = assert!(block_offset(VIRTUAL_SENDER) == offset_of!(Utcb, virtual_sender) as isize);
const _: () = assert!(block_offset(THREAD_WORD1) == offset_of!(Utcb, thread_word1) as isize);
const _: () = assert!(block_offset(THREAD_WORD0) == offset_of!(Utcb, thread_word0) as isize);
const _: () = assert!(block_offset(WORD_SIZE_MASK) == offset_of!(Utcb, word_size_mask) as isize);
const _: () = assert!(block_offset(br(0)) == 0x180);
const _: () = assert!(block_offset(br(32)) == 0x080);

impl Utcb {
    /// An all-zero UTCB (the kernel hands out zeroed UTCB memory, spec 4.2).
    pub const ZERO: Self = Self {
        kernel_private: 0,
        reserved0: [0; 15],
        br_reversed: [0; NUM_BRS],
        my_global_id: 0,
        processor_no: 0,
        user_defined_handle: 0,
        pager: 0,
        exception_handler: 0,
        flags: 0,
        error_code: 0,
        xfer_timeouts: 0,
        intended_receiver: 0,
        virtual_sender: 0,
        thread_word1: 0,
        thread_word0: 0,
        reserved1: [0; 2],
        word_size_mask: 0,
        mr: [0; NUM_MRS],
    };

    /// BRi, or `None` for i > 32 (spec 4.2).
    pub const fn br(&self, i: usize) -> Option<u64> {
        if i < NUM_BRS {
            Some(self.br_reversed[NUM_BRS - 1 - i])
        } else {
            None
        }
    }

    /// Sets BRi; returns false (and does nothing) for i > 32 (spec 4.2).
    pub fn set_br(&mut self, i: usize, value: u64) -> bool {
        if i < NUM_BRS {
            self.br_reversed[NUM_BRS - 1 - i] = value;
            true
        } else {
            false
        }
    }
}

impl Default for Utcb {
    fn default() -> Self {
        Self::ZERO
    }
}
