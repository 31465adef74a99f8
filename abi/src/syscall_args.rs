//! Control words passed to and returned by Schedule, SpaceControl, Unmap, MemoryControl
//! and ThreadControl (spec 5.3, 5.6, 5.8, 5.9, 5.11).
//!
//! Schedule's control words use all ones (`!0`) for "no change" (spec 5.6); we implement the
//! X.2 layout that libl4 builds, not Pistachio amd64's misplaced TimeControl fields.

use crate::fpage::Fpage;
use crate::time::Time;

/// All ones: "do not change" in Schedule control words (spec 5.6).
pub const NO_CHANGE: u64 = !0;
/// ThreadControl UtcbLocation meaning "do not change" (spec 5.3).
pub const UTCB_LOCATION_UNCHANGED: u64 = !0;

/// Schedule TimeControl: timeslice bits 16–31, total quantum bits 0–15 (spec 5.6).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimeControl(pub u64);

impl TimeControl {
    /// No change (spec 5.6).
    pub const NO_CHANGE: Self = Self(NO_CHANGE);

    /// From a timeslice and a total quantum (spec 5.6).
    pub const fn new(timeslice: Time, total_quantum: Time) -> Self {
        Self(((timeslice.0 as u64) << 16) | total_quantum.0 as u64)
    }

    /// All ones (spec 5.6).
    pub const fn is_no_change(self) -> bool {
        self.0 == NO_CHANGE
    }

    /// Timeslice length, bits 16–31 (spec 5.6).
    pub const fn timeslice(self) -> Time {
        Time((self.0 >> 16) as u16)
    }

    /// Total quantum, bits 0–15 (never = unlimited) (spec 5.6).
    pub const fn total_quantum(self) -> Time {
        Time(self.0 as u16)
    }
}

/// Schedule PrioControl: priority in bits 0–7 (spec 5.6).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PrioControl(pub u64);

impl PrioControl {
    /// No change (spec 5.6).
    pub const NO_CHANGE: Self = Self(NO_CHANGE);

    /// Set priority `prio` (spec 5.6).
    pub const fn new(prio: u8) -> Self {
        Self(prio as u64)
    }

    /// The requested priority: `None` for no change; like Pistachio, 9 bits are read and
    /// values above 255 are ignored (`None`) (spec 5.6).
    pub const fn priority(self) -> Option<u8> {
        if self.0 == NO_CHANGE {
            return None;
        }
        let p = self.0 & 0x1FF;
        if p > 255 { None } else { Some(p as u8) }
    }
}

/// Schedule ProcessorControl: target CPU in bits 0–15 (spec 5.6).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ProcessorControlWord(pub u64);

impl ProcessorControlWord {
    /// No change (spec 5.6).
    pub const NO_CHANGE: Self = Self(NO_CHANGE);

    /// Migrate to `cpu` (spec 5.6).
    pub const fn new(cpu: u16) -> Self {
        Self(cpu as u64)
    }

    /// Target CPU, or `None` for no change (spec 5.6).
    pub const fn processor(self) -> Option<u16> {
        if self.0 == NO_CHANGE {
            None
        } else {
            Some(self.0 as u16)
        }
    }
}

/// Schedule PreemptionControl: maximum delay (µs) bits 0–15, sensitive priority bits
/// 16–23 (spec 5.6). Bit 25 marks libl4's hierarchical-scheduling variant (spec 3.6).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PreemptionControl(pub u64);

impl PreemptionControl {
    /// No change (spec 5.6).
    pub const NO_CHANGE: Self = Self(NO_CHANGE);
    /// The bit libl4's `L4_HS_Schedule` sets (spec 3.6); a round-robin kernel rejects it.
    pub const HSCHEDULING_BIT: u64 = 1 << 25;

    /// From a maximum delay and a sensitive priority (spec 5.6).
    pub const fn new(max_delay_us: u16, sensitive_prio: u8) -> Self {
        Self(((sensitive_prio as u64) << 16) | max_delay_us as u64)
    }

    /// All ones (spec 5.6).
    pub const fn is_no_change(self) -> bool {
        self.0 == NO_CHANGE
    }

    /// Maximum delay in µs, bits 0–15 (spec 5.6).
    pub const fn max_delay(self) -> u16 {
        self.0 as u16
    }

    /// Sensitive priority, bits 16–23 (spec 5.6).
    pub const fn sensitive_prio(self) -> u8 {
        (self.0 >> 16) as u8
    }
}

/// Thread state reported in Schedule's result word, bits 0–2 (libl4
/// `L4_SCHEDRESULT_*`, spec 5.6). The kernel returns exactly this value in RAX.
#[repr(u64)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ScheduleResult {
    /// The call failed (see ErrorCode).
    Error = 0,
    /// Dead (also: created but not activated).
    Dead = 1,
    /// Inactive (halted).
    Inactive = 2,
    /// Running (ready).
    Running = 3,
    /// Blocked sending.
    PendingSend = 4,
    /// Sending (in transfer).
    Sending = 5,
    /// Blocked receiving.
    Waiting = 6,
    /// Receiving (in transfer).
    Receiving = 7,
}

impl ScheduleResult {
    /// The result word (spec 5.6).
    pub const fn encode(self) -> u64 {
        self as u64
    }

    /// Decodes bits 0–2 of a result word; total (spec 5.6).
    pub const fn decode(raw: u64) -> Self {
        match raw & 7 {
            0 => Self::Error,
            1 => Self::Dead,
            2 => Self::Inactive,
            3 => Self::Running,
            4 => Self::PendingSend,
            5 => Self::Sending,
            6 => Self::Waiting,
            _ => Self::Receiving,
        }
    }
}

/// SpaceControl control word (spec 5.9): bit 63 = 32-bit compatibility mode (amd64).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SpaceControlWord(pub u64);

impl SpaceControlWord {
    /// Bit 63: compatibility mode (spec 5.9).
    pub const COMPAT_MODE: u64 = 1 << 63;

    /// Whether compatibility mode is requested / active (spec 5.9).
    pub const fn compat_mode(self) -> bool {
        self.0 & Self::COMPAT_MODE != 0
    }
}

/// Unmap control word (spec 5.8): k in bits 0–5 (fpages in MR0..MRk), flush f in bit 6.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct UnmapControl(pub u64);

impl UnmapControl {
    /// Flush bit (`L4_Flush`, 0x40) (spec 5.8).
    pub const FLUSH: u64 = 0x40;

    /// Operate on MR0..MR`k` (k truncated to 6 bits), flushing the caller's own mappings
    /// too if `flush` (spec 5.8).
    pub const fn new(k: u64, flush: bool) -> Self {
        Self((k & 0x3F) | if flush { Self::FLUSH } else { 0 })
    }

    /// k, the index of the last MR holding an fpage (spec 5.8).
    pub const fn last_mr(self) -> usize {
        (self.0 & 0x3F) as usize
    }

    /// Number of fpages, k + 1 (spec 5.8).
    pub const fn count(self) -> usize {
        self.last_mr() + 1
    }

    /// f: flush (spec 5.8).
    pub const fn flush(self) -> bool {
        self.0 & Self::FLUSH != 0
    }
}

/// MemoryControl control word (spec 5.11): k in bits 0–5 (fpages in MR0..MRk).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MemoryControlWord(pub u64);

impl MemoryControlWord {
    /// Operate on MR0..MR`k` (spec 5.11).
    pub const fn new(k: u64) -> Self {
        Self(k & 0x3F)
    }

    /// k (spec 5.11).
    pub const fn last_mr(self) -> usize {
        (self.0 & 0x3F) as usize
    }

    /// Number of fpages, k + 1 (spec 5.11).
    pub const fn count(self) -> usize {
        self.last_mr() + 1
    }

    /// Which of attribute0..3 applies to `fpage`: its low 2 bits (spec 5.11).
    pub const fn attribute_index(fpage: Fpage) -> usize {
        (fpage.0 & 3) as usize
    }
}
