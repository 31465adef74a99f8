//! Typed message items (spec 2.4, 2.5): map items, grant items and string items, with a
//! zero-allocation decoder for the typed words of a message and an encoder for simple and
//! compound strings that reproduces libl4 word for word.
//!
//! Every item's first word has C (more typed items follow) in bit 0 and the type in bits
//! 1–3: 4 = map, 5 = grant, `(type & 4) == 0` = string item (low 2 type bits = cache
//! hint); 6 and 7 (ctrlxfer items and unknown) are rejected on amd64 (spec 5.7.4).
//!
//! A *logical* string may be compound: a header whose c bit (bit 9) is set is followed, after
//! its substring addresses, by the header of the next part. [`decode_typed`] returns one
//! header with its addresses at a time; the caller chains parts by `compound()`.

use crate::fpage::Fpage;

/// Item type value (word 0 bits 1–3) of a map item (spec 2.4).
pub const TYPE_MAP: u64 = 4;
/// Item type value of a grant item (spec 2.4).
pub const TYPE_GRANT: u64 = 5;
/// C bit: another typed item follows (spec 2.4, 2.5).
pub const CONTINUATION: u64 = 1;
/// Largest number of substrings in one string header (j is 5 bits, spec 2.5).
pub const MAX_SUBSTRINGS: usize = 32;

const BASE_MASK: u64 = !0x3FF;

/// The type field (bits 1–3) of an item's first word (spec 2.4).
pub const fn item_type(word0: u64) -> u64 {
    (word0 >> 1) & 7
}

/// The C bit of an item's first word: more typed items follow (spec 2.4).
pub const fn item_continues(word0: u64) -> bool {
    word0 & CONTINUATION != 0
}

/// Errors of [`decode_typed`] and of the string encoder (spec 2.4, 2.5, 5.7.4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ItemError {
    /// The words end before the item does (message overflow for the kernel).
    Truncated,
    /// Type 6 or 7 (ctrlxfer items are not supported on amd64); carries the type.
    UnknownType(u64),
    /// More than [`MAX_SUBSTRINGS`] substrings in one header (encoder).
    TooManySubstrings,
    /// The output buffer is too small (encoder).
    BufferTooSmall,
}

const fn map_like_word0(ty: u64, snd_base: u64, cont: bool) -> u64 {
    (snd_base & BASE_MASK) | (ty << 1) | (cont as u64)
}

/// A map item: map `fpage` into the receive window at offset hint `snd_base` (spec 2.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MapItem {
    /// SndBase (1 KiB granularity; bits 0–9 are dropped on encoding).
    pub snd_base: u64,
    /// The send fpage with the rights to map.
    pub fpage: Fpage,
}

/// A grant item: like a map item, but the sender loses the mapping (spec 2.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct GrantItem {
    /// SndBase (1 KiB granularity; bits 0–9 are dropped on encoding).
    pub snd_base: u64,
    /// The send fpage with the rights to grant.
    pub fpage: Fpage,
}

impl MapItem {
    /// Map item of `fpage` with offset hint `snd_base` (libl4 `L4_MapItem`, spec 2.4).
    pub const fn new(fpage: Fpage, snd_base: u64) -> Self {
        Self {
            snd_base: snd_base & BASE_MASK,
            fpage,
        }
    }

    /// The nil map item (nil fpage): what sigma0 replies on failure (spec 6.7).
    pub const NIL: Self = Self {
        snd_base: 0,
        fpage: Fpage::NIL,
    };

    /// The two words; `cont` sets the C bit (spec 2.4).
    pub const fn to_words(self, cont: bool) -> [u64; 2] {
        [map_like_word0(TYPE_MAP, self.snd_base, cont), self.fpage.0]
    }

    /// Decodes two words if word 0 has type 4; the C bit is ignored (spec 2.4).
    pub const fn from_words(words: [u64; 2]) -> Option<Self> {
        if item_type(words[0]) != TYPE_MAP {
            return None;
        }
        Some(Self {
            snd_base: words[0] & BASE_MASK,
            fpage: Fpage(words[1]),
        })
    }
}

impl GrantItem {
    /// Grant item of `fpage` with offset hint `snd_base` (libl4 `L4_GrantItem`, spec 2.4).
    pub const fn new(fpage: Fpage, snd_base: u64) -> Self {
        Self {
            snd_base: snd_base & BASE_MASK,
            fpage,
        }
    }

    /// The two words; `cont` sets the C bit (spec 2.4).
    pub const fn to_words(self, cont: bool) -> [u64; 2] {
        [
            map_like_word0(TYPE_GRANT, self.snd_base, cont),
            self.fpage.0,
        ]
    }

    /// Decodes two words if word 0 has type 5; the C bit is ignored (spec 2.4).
    pub const fn from_words(words: [u64; 2]) -> Option<Self> {
        if item_type(words[0]) != TYPE_GRANT {
            return None;
        }
        Some(Self {
            snd_base: words[0] & BASE_MASK,
            fpage: Fpage(words[1]),
        })
    }
}

/// The header word of a string item (spec 2.5): C bit 0, type bits 1–3 with bit 3 clear
/// (low 2 bits = cache hint), j = substrings − 1 in bits 4–8, compound c in bit 9, length of
/// each substring in bits 10–63.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct StringHeader(pub u64);

const J_SHIFT: u32 = 4;
const J_MASK: u64 = 0x1F;
const COMPOUND_BIT: u64 = 1 << 9;
const LENGTH_SHIFT: u32 = 10;
/// Largest string length a header can carry (54 bits, spec 2.5).
pub const MAX_STRING_LENGTH: u64 = u64::MAX >> LENGTH_SHIFT;

impl StringHeader {
    /// Header for `substrings` substrings of `length` bytes each, no flags (spec 2.5).
    /// `substrings` should be 1..=32 (it is encoded as j = substrings − 1 modulo 32);
    /// `length` is truncated to 54 bits.
    pub const fn new(length: u64, substrings: u64) -> Self {
        let j = substrings.wrapping_sub(1) & J_MASK;
        Self(((length & MAX_STRING_LENGTH) << LENGTH_SHIFT) | (j << J_SHIFT))
    }

    /// Whether a first word is a string item: `(type & 4) == 0` (spec 2.5).
    pub const fn is_string_item(word0: u64) -> bool {
        item_type(word0) & 4 == 0
    }

    /// Length in bytes of each substring (spec 2.5).
    pub const fn length(self) -> u64 {
        self.0 >> LENGTH_SHIFT
    }

    /// Number of substring addresses following the header, j + 1 (1..=32) (spec 2.5).
    pub const fn substrings(self) -> usize {
        (((self.0 >> J_SHIFT) & J_MASK) + 1) as usize
    }

    /// Words occupied by this header and its addresses (spec 2.5).
    pub const fn words(self) -> usize {
        1 + self.substrings()
    }

    /// Bytes described by this header: length × substrings, saturating (spec 2.5).
    pub const fn total_length(self) -> u64 {
        self.length().saturating_mul(self.substrings() as u64)
    }

    /// c: the next word after the addresses is another part of the same string (spec 2.5).
    pub const fn compound(self) -> bool {
        self.0 & COMPOUND_BIT != 0
    }

    /// C: another string item follows (spec 2.5).
    pub const fn more(self) -> bool {
        self.0 & CONTINUATION != 0
    }

    /// Cache-allocation hint, the low 2 type bits (0 = default) (spec 2.5).
    pub const fn cache_hint(self) -> u64 {
        (self.0 >> 1) & 3
    }

    /// Sets or clears c (spec 2.5).
    pub const fn with_compound(self, c: bool) -> Self {
        Self((self.0 & !COMPOUND_BIT) | if c { COMPOUND_BIT } else { 0 })
    }

    /// Sets or clears C (spec 2.5).
    pub const fn with_more(self, more: bool) -> Self {
        Self((self.0 & !CONTINUATION) | more as u64)
    }

    /// Sets the cache hint (`hint & 3`) (spec 2.5).
    pub const fn with_cache_hint(self, hint: u64) -> Self {
        Self((self.0 & !0x6) | ((hint & 3) << 1))
    }
}

/// A simple string item, two words (libl4 `L4_StringItem(length, addr)`, spec 2.5).
pub const fn simple_string(length: u64, addr: u64) -> [u64; 2] {
    [StringHeader::new(length, 1).0, addr]
}

/// One decoded typed item (spec 2.4, 2.5).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TypedItem<'a> {
    /// A map item and its C bit.
    Map {
        /// The item.
        item: MapItem,
        /// C: more typed items follow.
        more: bool,
    },
    /// A grant item and its C bit.
    Grant {
        /// The item.
        item: GrantItem,
        /// C: more typed items follow.
        more: bool,
    },
    /// One string header with its substring addresses. If `header.compound()`, the next
    /// item is the next part of the same string.
    String {
        /// The header word.
        header: StringHeader,
        /// The j + 1 substring start addresses.
        substrings: &'a [u64],
    },
}

impl TypedItem<'_> {
    /// C bit of the item (spec 2.4, 2.5).
    pub const fn more(&self) -> bool {
        match self {
            TypedItem::Map { more, .. } | TypedItem::Grant { more, .. } => *more,
            TypedItem::String { header, .. } => header.more(),
        }
    }
}

/// Decodes the typed item starting at `words[0]`; returns it and the number of words it
/// occupies. Never panics; rejects truncated items and types 6/7 (spec 2.4, 2.5, 5.7.4).
pub fn decode_typed(words: &[u64]) -> Result<(TypedItem<'_>, usize), ItemError> {
    let Some(&w0) = words.first() else {
        return Err(ItemError::Truncated);
    };
    let ty = item_type(w0);
    if ty & 4 == 0 {
        let header = StringHeader(w0);
        let n = header.words();
        let Some(substrings) = words.get(1..n) else {
            return Err(ItemError::Truncated);
        };
        return Ok((TypedItem::String { header, substrings }, n));
    }
    let Some(&w1) = words.get(1) else {
        return Err(ItemError::Truncated);
    };
    let more = item_continues(w0);
    let snd_base = w0 & BASE_MASK;
    let fpage = Fpage(w1);
    match ty {
        TYPE_MAP => Ok((
            TypedItem::Map {
                item: MapItem { snd_base, fpage },
                more,
            },
            2,
        )),
        TYPE_GRANT => Ok((
            TypedItem::Grant {
                item: GrantItem { snd_base, fpage },
                more,
            },
            2,
        )),
        other => Err(ItemError::UnknownType(other)),
    }
}

/// Iterator over the typed items of a message's typed words (spec 5.7.4). Yields each
/// item or the first error, then stops.
#[derive(Clone, Debug)]
pub struct TypedItems<'a> {
    rest: &'a [u64],
    failed: bool,
}

impl<'a> TypedItems<'a> {
    /// Iterates the items in `typed_words` (MRu+1 .. MRu+t).
    pub const fn new(typed_words: &'a [u64]) -> Self {
        Self {
            rest: typed_words,
            failed: false,
        }
    }
}

impl<'a> Iterator for TypedItems<'a> {
    type Item = Result<TypedItem<'a>, ItemError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match decode_typed(self.rest) {
            Ok((item, n)) => {
                self.rest = self.rest.get(n..).unwrap_or(&[]);
                Some(Ok(item))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Builds a (possibly compound) string item into a word buffer, reproducing libl4's
/// `L4_StringItem`, `L4_AddSubstringAddressTo` and `L4_AddSubstringTo` (spec 2.5).
#[derive(Debug)]
pub struct StringItemWriter<'a> {
    buf: &'a mut [u64],
    len: usize,
    last_header: usize,
}

impl<'a> StringItemWriter<'a> {
    /// Starts with a simple string item of `length` bytes at `addr` (spec 2.5).
    pub fn new(buf: &'a mut [u64], length: u64, addr: u64) -> Result<Self, ItemError> {
        let [h, a] = simple_string(length, addr);
        match buf.get_mut(0..2) {
            Some(dst) => {
                dst[0] = h;
                dst[1] = a;
            }
            None => return Err(ItemError::BufferTooSmall),
        }
        Ok(Self {
            buf,
            len: 2,
            last_header: 0,
        })
    }

    fn push(&mut self, w: u64) -> Result<(), ItemError> {
        let slot = self
            .buf
            .get_mut(self.len)
            .ok_or(ItemError::BufferTooSmall)?;
        *slot = w;
        self.len += 1;
        Ok(())
    }

    /// Adds a substring address to the last part (libl4 `L4_AddSubstringAddressTo`,
    /// spec 2.5).
    pub fn add_substring_address(&mut self, addr: u64) -> Result<(), ItemError> {
        let header = StringHeader(self.buf[self.last_header]);
        if header.substrings() >= MAX_SUBSTRINGS {
            return Err(ItemError::TooManySubstrings);
        }
        self.push(addr)?;
        self.buf[self.last_header] = header.0 + (1 << J_SHIFT);
        Ok(())
    }

    /// Appends a new part of `length` bytes at `addr`, setting c on the previous part
    /// (libl4 `L4_AddSubstringTo` with a simple string, spec 2.5).
    pub fn add_substring(&mut self, length: u64, addr: u64) -> Result<(), ItemError> {
        if self.len + 2 > self.buf.len() {
            return Err(ItemError::BufferTooSmall);
        }
        let at = self.len;
        let [h, a] = simple_string(length, addr);
        self.push(h)?;
        self.push(a)?;
        self.buf[self.last_header] = StringHeader(self.buf[self.last_header])
            .with_compound(true)
            .0;
        self.last_header = at;
        Ok(())
    }

    /// Words written so far.
    pub const fn words(&self) -> usize {
        self.len
    }

    /// The words written so far.
    pub fn as_words(&self) -> &[u64] {
        &self.buf[..self.len]
    }

    /// Finishes; returns the number of words written.
    pub fn finish(self) -> usize {
        self.len
    }
}
