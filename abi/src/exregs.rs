//! ExchangeRegisters control words (spec 5.2) and the user-modifiable RFLAGS mask
//! (spec 4.6).
//!
//! Input bits: h 0, R 1, S 2, s 3, i 4, f 5, u 6, p 7, H 8, d 9. Bits 10–13 are
//! ctrlxfer extensions that do not exist on amd64 and are ignored. Output bits: 0 was
//! halted, 1 was receiving, 2 was sending.

/// An ExchangeRegisters control word, input or output (spec 5.2).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ExregsControl(pub u64);

impl ExregsControl {
    /// h: halt value, applied only with H (1 = halt, 0 = resume).
    pub const HALT: u64 = 1 << 0;
    /// R: abort an ongoing/pending receive.
    pub const ABORT_RECEIVE: u64 = 1 << 1;
    /// S: abort an ongoing/pending send.
    pub const ABORT_SEND: u64 = 1 << 2;
    /// s: set user SP.
    pub const SET_SP: u64 = 1 << 3;
    /// i: set user IP.
    pub const SET_IP: u64 = 1 << 4;
    /// f: set user FLAGS (through [`USER_FLAGS_MASK`]).
    pub const SET_FLAGS: u64 = 1 << 5;
    /// u: set the UserDefinedHandle TCR.
    pub const SET_HANDLE: u64 = 1 << 6;
    /// p: set the Pager TCR.
    pub const SET_PAGER: u64 = 1 << 7;
    /// H: apply h.
    pub const APPLY_HALT: u64 = 1 << 8;
    /// d: deliver current values. Pistachio always delivers; libl4 uses `1 << 9` alone as
    /// a pure query.
    pub const DELIVER: u64 = 1 << 9;
    /// All input bits meaningful on amd64 (0–9).
    pub const INPUT_MASK: u64 = 0x3FF;

    /// Output: the thread was halted.
    pub const OUT_HALTED: u64 = 1 << 0;
    /// Output: the thread was receiving (waiting or in transfer).
    pub const OUT_RECEIVING: u64 = 1 << 1;
    /// Output: the thread was sending (polling or in transfer).
    pub const OUT_SENDING: u64 = 1 << 2;

    /// libl4 `L4_Start` control: `(3 << 3) | (1 << 8) | 6` = set SP and IP, apply halt
    /// with h = 0 (resume), abort receive and send (spec 5.2, 6.1).
    pub const START: Self = Self(
        Self::SET_SP | Self::SET_IP | Self::APPLY_HALT | Self::ABORT_RECEIVE | Self::ABORT_SEND,
    );
    /// libl4 `L4_Stop`-style halt: H + h (spec 5.2).
    pub const HALT_THREAD: Self = Self(Self::APPLY_HALT | Self::HALT);
    /// Pure query (`1 << 9`), as libl4 `L4_PagerOf` uses it (spec 5.2).
    pub const QUERY: Self = Self(Self::DELIVER);

    /// Wraps a raw word.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw word.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Whether every bit of `bits` is set.
    pub const fn has(self, bits: u64) -> bool {
        self.0 & bits == bits
    }

    /// Halt requested: H and h (spec 5.2).
    pub const fn halt(self) -> bool {
        self.has(Self::APPLY_HALT | Self::HALT)
    }

    /// Resume requested: H and not h (spec 5.2).
    pub const fn resume(self) -> bool {
        self.has(Self::APPLY_HALT) && !self.has(Self::HALT)
    }

    /// Builds an output control word (spec 5.2).
    pub const fn output(halted: bool, receiving: bool, sending: bool) -> Self {
        Self(
            (halted as u64 * Self::OUT_HALTED)
                | (receiving as u64 * Self::OUT_RECEIVING)
                | (sending as u64 * Self::OUT_SENDING),
        )
    }

    /// Output: was halted (`L4_ThreadWasHalted`).
    pub const fn was_halted(self) -> bool {
        self.0 & Self::OUT_HALTED != 0
    }

    /// Output: was receiving (`L4_ThreadWasReceiving`).
    pub const fn was_receiving(self) -> bool {
        self.0 & Self::OUT_RECEIVING != 0
    }

    /// Output: was sending (`L4_ThreadWasSending`).
    pub const fn was_sending(self) -> bool {
        self.0 & Self::OUT_SENDING != 0
    }
}

/// RFLAGS bits a user may change through ExchangeRegisters or an exception reply:
/// CF | PF | AF | ZF | SF | OF (spec 4.6).
pub const USER_FLAGS_MASK: u64 = 0x8D5;

/// Initial RFLAGS of user threads: IF | bit 1, IOPL 0 (IO-fpages, spec 6.6; Pistachio's
/// default build without IO-fpages uses IOPL 3, 0x3202, which l4rs gives only with the
/// UNSAFE kernel option `iopl=3`).
pub const INITIAL_USER_FLAGS: u64 = 0x202;

/// Merges user-supplied `new` flags into `old` through [`USER_FLAGS_MASK`] (spec 4.6).
pub const fn merge_user_flags(old: u64, new: u64) -> u64 {
    (old & !USER_FLAGS_MASK) | (new & USER_FLAGS_MASK)
}
