//! Time values and timeout words (spec 2.7).
//!
//! A time value is 16 bits. Period (bit 15 = 0): m in bits 0–9, e in bits 10–14, value
//! m·2^e µs; raw 0 is *never* and raw `0x0400` (m = 0, e = 1) is *zero*; any other m = 0
//! period is treated like Pistachio, as a 0 µs period. Point (bit 15 = 1): m in bits 0–9,
//! c (clock bit) in bit 14, e in bits 10–13.
//!
//! **Time points** (not implemented by Pistachio amd64; our rule, see
//! [`TimeSpec::deadline`]): a point names the clock value T whose bits e..e+9 equal m and
//! whose bit e+10 equals c, i.e. T is known modulo 2^(e+11). The deadline is the T closest to
//! the current clock, taken from the window `(now − 2^(e+10), now + 2^(e+10)]`; a deadline
//! `<= now` has already passed (the timeout expires at once). This matches how libl4's
//! (disabled) `L4_TimePoint` encodes a point: m = at >> e, c = bit e+10 of the time.
//!
//! Timeout words (Ipc R8, XferTimeouts TCR): send in bits 16–31, receive in bits 0–15.

/// A 16-bit time value (spec 2.7).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Time(pub u16);

const POINT_BIT: u16 = 1 << 15;

/// A decoded time value (spec 2.7).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TimeSpec {
    /// Infinite (raw 0).
    Never,
    /// Exactly `ZeroTime` (raw 0x0400): do not block.
    Zero,
    /// A relative period in µs (m·2^e; m = 0 encodings other than `Zero` give 0).
    Period(u64),
    /// An absolute time point, see the module header.
    Point {
        /// Exponent, 0..=15.
        e: u8,
        /// Clock bit.
        c: bool,
        /// Mantissa, 0..=1023.
        m: u16,
    },
}

impl Time {
    /// `L4_Never` (spec 2.7).
    pub const NEVER: Self = Self(0);
    /// `L4_ZeroTime`: period m = 0, e = 1 (spec 2.7).
    pub const ZERO: Self = Self(0x0400);
    /// Largest encodable period in µs: 1023·2^31 (spec 2.7).
    pub const MAX_PERIOD_MICROS: u64 = 1023 << 31;

    /// Exactly libl4 `L4_TimePeriod(us)` (spec 2.7): the smallest e with `us >> e < 1024`,
    /// m = `us >> e` (rounding down). Quirks kept from libl4: `us == 0` gives raw 0 =
    /// [`Time::NEVER`] (use [`Time::ZERO`] for a zero timeout), and `us >= 2^41` (e > 31)
    /// gives `NEVER`.
    pub const fn period_micros(us: u64) -> Self {
        let mut e = 0u16;
        let mut m = us;
        while m >= 1024 {
            m >>= 1;
            e += 1;
        }
        if e > 31 {
            return Self::NEVER;
        }
        Self((e << 10) | m as u16)
    }

    /// A period from explicit mantissa (truncated to 10 bits) and exponent (5 bits)
    /// (spec 2.7).
    pub const fn period(m: u16, e: u16) -> Self {
        Self(((e & 0x1F) << 10) | (m & 0x3FF))
    }

    /// A time point from mantissa (10 bits), exponent (4 bits) and clock bit (spec 2.7).
    pub const fn point(m: u16, e: u16, c: bool) -> Self {
        Self(POINT_BIT | ((c as u16) << 14) | ((e & 0xF) << 10) | (m & 0x3FF))
    }

    /// The time point for absolute clock value `at` (rounded down to 2^e µs) with the
    /// smallest exponent e such that `|at − now| < 2^(e+9)`, which keeps the point well inside
    /// the decoding window of the module header; `NEVER` if `at` is 2^24 µs or more away
    /// (spec 2.7).
    pub const fn point_at(at: u64, now: u64) -> Self {
        let dist = at.abs_diff(now);
        let mut e = 0u32;
        while e <= 15 {
            if dist < (1u64 << (e + 9)) {
                let m = ((at >> e) & 0x3FF) as u16;
                let c = (at >> (e + 10)) & 1 == 1;
                return Self::point(m, e as u16, c);
            }
            e += 1;
        }
        Self::NEVER
    }

    /// The raw 16 bits (spec 2.7).
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// Decodes the value; total (spec 2.7).
    pub const fn decode(self) -> TimeSpec {
        let raw = self.0;
        if raw == Self::NEVER.0 {
            TimeSpec::Never
        } else if raw == Self::ZERO.0 {
            TimeSpec::Zero
        } else if raw & POINT_BIT != 0 {
            TimeSpec::Point {
                e: ((raw >> 10) & 0xF) as u8,
                c: raw & (1 << 14) != 0,
                m: raw & 0x3FF,
            }
        } else {
            let m = (raw & 0x3FF) as u64;
            let e = (raw >> 10) & 0x1F;
            TimeSpec::Period(m << e)
        }
    }

    /// Whether the value is a period (including never and zero) (spec 2.7).
    pub const fn is_period(self) -> bool {
        self.0 & POINT_BIT == 0
    }
}

impl TimeSpec {
    /// Absolute deadline (µs clock) of this timeout started at clock `now`: `None` for
    /// `Never`; `now` for `Zero`; `now + period` (saturating) for a period; for a point the
    /// rule of the module header (the result may be `<= now`: already expired).
    pub const fn deadline(self, now: u64) -> Option<u64> {
        match self {
            TimeSpec::Never => None,
            TimeSpec::Zero => Some(now),
            TimeSpec::Period(us) => Some(now.saturating_add(us)),
            TimeSpec::Point { e, c, m } => Some(point_deadline(e, c, m, now)),
        }
    }
}

/// See the module header: the T ≡ ((c << 10) | m) << e (mod 2^(e+11)) nearest to `now`
/// within `(now − half, now + half]`, half = 2^(e+10).
const fn point_deadline(e: u8, c: bool, m: u16, now: u64) -> u64 {
    let e = (e & 0xF) as u32;
    let span = 1u64 << (e + 11);
    let half = span >> 1;
    let target = ((((c as u64) << 10) | (m as u64 & 0x3FF)) << e) & (span - 1);
    let cand = (now & !(span - 1)) | target;
    if cand > now {
        if cand - now > half {
            // The point lies in the past half window: previous period (may pass clock 0).
            cand.saturating_sub(span)
        } else {
            cand
        }
    } else if now - cand >= half {
        cand.saturating_add(span)
    } else {
        cand
    }
}

/// The Ipc timeouts word: send timeout bits 16–31, receive timeout bits 0–15 (spec 2.7).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Timeouts(pub u64);

impl Timeouts {
    /// Both never.
    pub const NEVER: Self = Self(0);

    /// `L4_Timeouts(snd, rcv)` = `(snd << 16) | rcv` (spec 2.7).
    pub const fn new(snd: Time, rcv: Time) -> Self {
        Self(((snd.0 as u64) << 16) | rcv.0 as u64)
    }

    /// Send timeout, bits 16–31 (spec 2.7).
    pub const fn send(self) -> Time {
        Time((self.0 >> 16) as u16)
    }

    /// Receive timeout, bits 0–15 (spec 2.7).
    pub const fn receive(self) -> Time {
        Time(self.0 as u16)
    }
}

/// The XferTimeouts TCR: send-side xfer timeout bits 16–31, receive-side bits 0–15
/// (spec 2.7, 5.7.6).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct XferTimeouts(pub u64);

impl XferTimeouts {
    /// Both never.
    pub const NEVER: Self = Self(0);

    /// `(snd << 16) | rcv` (spec 2.7).
    pub const fn new(snd: Time, rcv: Time) -> Self {
        Self(((snd.0 as u64) << 16) | rcv.0 as u64)
    }

    /// Timeout used when this thread sends strings, bits 16–31 (spec 2.7).
    pub const fn send(self) -> Time {
        Time((self.0 >> 16) as u16)
    }

    /// Timeout used when this thread receives strings, bits 0–15 (spec 2.7).
    pub const fn receive(self) -> Time {
        Time(self.0 as u16)
    }
}
