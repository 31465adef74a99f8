//! The acceptor, BR0 (spec 2.6): what a receiver accepts besides untyped words.
//!
//! Bit 0 = s (accept string items, receive buffers in BR1..), bit 1 = c (ctrlxfer items;
//! never available on amd64), bits 4–63 = receive window fpage with its low 4 bits masked
//! (0 = no map/grant items accepted).

use crate::fpage::Fpage;

/// The acceptor word in BR0 (spec 2.6).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Acceptor(pub u64);

const STRINGS_BIT: u64 = 1;
const CTRLXFER_BIT: u64 = 2;

impl Acceptor {
    /// `L4_UntypedWordsAcceptor` = 0 (spec 2.6).
    pub const UNTYPED_WORDS: Self = Self(0);
    /// `L4_StringItemsAcceptor` = 1 (spec 2.6).
    pub const STRING_ITEMS: Self = Self(STRINGS_BIT);

    /// Accept map/grant items into `window` (`L4_MapGrantItems`, spec 2.6).
    pub const fn map_grant(window: Fpage) -> Self {
        Self(window.0 & !0xF)
    }

    /// Same acceptor also accepting string items (`L4_AddAcceptor(.., StringItems)`,
    /// spec 2.6).
    pub const fn with_strings(self) -> Self {
        Self(self.0 | STRINGS_BIT)
    }

    /// Wraps a raw word (spec 2.6).
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw word (spec 2.6).
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// s: string items accepted (spec 2.6).
    pub const fn strings(self) -> bool {
        self.0 & STRINGS_BIT != 0
    }

    /// c: ctrlxfer items accepted (spec 2.6; never honoured on amd64).
    pub const fn ctrlxfer(self) -> bool {
        self.0 & CTRLXFER_BIT != 0
    }

    /// The receive window (raw with bits 0–3 cleared; nil = no map/grant items) (spec 2.6).
    pub const fn window(self) -> Fpage {
        Fpage(self.0 & !0xF)
    }
}
