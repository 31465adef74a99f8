//! Error codes in the ErrorCode TCR: non-IPC system-call errors (spec 2.9) and IPC errors
//! (spec 5.7.6).
//!
//! IPC error word: bit 0 = phase (0 send, 1 receive), bits 1–3 = code, bits 4–63 = byte
//! offset of string data transferred before the failure (codes 4–7).

/// Error of a non-IPC system call, stored in the ErrorCode TCR (spec 2.9).
#[repr(u64)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SyscallError {
    /// `ErrNoPrivilege`.
    NoPrivilege = 1,
    /// `ErrInvalidThread`.
    InvalidThread = 2,
    /// `ErrInvalidSpace`.
    InvalidSpace = 3,
    /// `ErrInvalidScheduler`.
    InvalidScheduler = 4,
    /// `ErrInvalidParam`.
    InvalidParam = 5,
    /// `ErrUtcbArea`.
    UtcbArea = 6,
    /// `ErrKipArea`.
    KipArea = 7,
    /// `ErrNoMem`.
    NoMem = 8,
}

impl SyscallError {
    /// Decodes an ErrorCode value; `None` for 0 (ok) and unknown values (spec 2.9).
    pub const fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => Self::NoPrivilege,
            2 => Self::InvalidThread,
            3 => Self::InvalidSpace,
            4 => Self::InvalidScheduler,
            5 => Self::InvalidParam,
            6 => Self::UtcbArea,
            7 => Self::KipArea,
            8 => Self::NoMem,
            _ => return None,
        })
    }

    /// The ErrorCode value (spec 2.9).
    pub const fn raw(self) -> u64 {
        self as u64
    }
}

/// Which phase of an IPC failed (spec 5.7.6).
#[repr(u64)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum IpcPhase {
    /// The send phase.
    Send = 0,
    /// The receive phase.
    Receive = 1,
}

/// IPC error code, bits 1–3 of the error word (spec 5.7.6).
#[repr(u64)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum IpcErrorCode {
    /// Send or receive timeout expired (or zero timeout and partner not ready).
    Timeout = 1,
    /// Partner (to / FromSpecifier) does not exist.
    NotExist = 2,
    /// Canceled by ExchangeRegisters before the transfer started.
    Canceled = 3,
    /// Message overflow.
    Overflow = 4,
    /// Transfer timeout: this party's xfer timeout expired.
    XferTimeoutCurrent = 5,
    /// Transfer timeout: the partner's xfer timeout expired.
    XferTimeoutPartner = 6,
    /// Transfer aborted by ExchangeRegisters.
    Aborted = 7,
}

impl IpcErrorCode {
    /// Decodes a 3-bit code; `None` for 0 and values above 7 (spec 5.7.6).
    pub const fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => Self::Timeout,
            2 => Self::NotExist,
            3 => Self::Canceled,
            4 => Self::Overflow,
            5 => Self::XferTimeoutCurrent,
            6 => Self::XferTimeoutPartner,
            7 => Self::Aborted,
            _ => return None,
        })
    }
}

/// A decoded IPC error word (spec 5.7.6).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IpcError {
    /// The phase that failed.
    pub phase: IpcPhase,
    /// What went wrong.
    pub code: IpcErrorCode,
    /// Bytes of string data transferred before the failure (60 bits).
    pub offset: u64,
}

/// Largest offset an IPC error word can carry (60 bits, spec 5.7.6).
pub const MAX_IPC_ERROR_OFFSET: u64 = u64::MAX >> 4;

impl IpcError {
    /// Error with offset 0 (spec 5.7.6).
    pub const fn new(phase: IpcPhase, code: IpcErrorCode) -> Self {
        Self {
            phase,
            code,
            offset: 0,
        }
    }

    /// Error with a byte offset (truncated to 60 bits on encoding) (spec 5.7.6).
    pub const fn with_offset(phase: IpcPhase, code: IpcErrorCode, offset: u64) -> Self {
        Self {
            phase,
            code,
            offset,
        }
    }

    /// The ErrorCode word: `offset << 4 | code << 1 | phase` (spec 5.7.6).
    pub const fn encode(self) -> u64 {
        ((self.offset & MAX_IPC_ERROR_OFFSET) << 4) | ((self.code as u64) << 1) | self.phase as u64
    }

    /// Decodes an ErrorCode word after a failed IPC; `None` if the code bits are 0
    /// (spec 5.7.6). Total.
    pub const fn decode(raw: u64) -> Option<Self> {
        let Some(code) = IpcErrorCode::from_raw((raw >> 1) & 7) else {
            return None;
        };
        let phase = if raw & 1 == 0 {
            IpcPhase::Send
        } else {
            IpcPhase::Receive
        };
        Some(Self {
            phase,
            code,
            offset: raw >> 4,
        })
    }
}
