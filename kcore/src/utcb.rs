//! Which UTCB slots are taken: a set of `(space, UTCB location)` pairs, so that ThreadControl
//! finds whether a location is in use without scanning the threads (issue 17).
//!
//! Open addressing with linear probing and backward-shift deletion (no tombstones) in a table
//! of `N` entries, `N` a power of two at least twice the number of pairs it must hold, so
//! probe sequences stay short. A space is named by a non-zero word (the kernel uses the
//! address of its space structure); 0 marks a free entry.

/// A set of up to `N / 2` pairs.
pub struct UtcbSet<const N: usize> {
    entries: [(u64, u64); N],
    len: usize,
}

/// Adding failed: the set holds its maximum (`N / 2`).
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

impl<const N: usize> UtcbSet<N> {
    /// Empty.
    pub const fn new() -> Self {
        assert!(N.is_power_of_two() && N >= 2);
        UtcbSet {
            entries: [(0, 0); N],
            len: 0,
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn home(space: u64, loc: u64) -> usize {
        let h = (space ^ loc.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 32) as usize & (N - 1)
    }

    fn find(&self, space: u64, loc: u64) -> Result<usize, usize> {
        let mut i = Self::home(space, loc);
        loop {
            match self.entries[i] {
                (0, _) => return Err(i),
                (s, l) if s == space && l == loc => return Ok(i),
                _ => i = (i + 1) & (N - 1),
            }
        }
    }

    /// Whether `(space, loc)` is taken. `space` must not be 0.
    pub fn contains(&self, space: u64, loc: u64) -> bool {
        debug_assert!(space != 0);
        self.find(space, loc).is_ok()
    }

    /// Takes `(space, loc)`; returns whether it was free.
    pub fn insert(&mut self, space: u64, loc: u64) -> Result<bool, Full> {
        debug_assert!(space != 0);
        match self.find(space, loc) {
            Ok(_) => Ok(false),
            Err(_) if self.len >= N / 2 => Err(Full),
            Err(i) => {
                self.entries[i] = (space, loc);
                self.len += 1;
                Ok(true)
            }
        }
    }

    /// Frees `(space, loc)`; returns whether it was taken.
    pub fn remove(&mut self, space: u64, loc: u64) -> bool {
        let Ok(mut hole) = self.find(space, loc) else {
            return false;
        };
        self.len -= 1;
        // Backward shift: move later members of the probe run into the hole when their home
        // position allows it.
        let mut i = hole;
        loop {
            i = (i + 1) & (N - 1);
            let (s, l) = self.entries[i];
            if s == 0 {
                break;
            }
            let home = Self::home(s, l);
            // Does the entry at `i` (home `home`) belong at or before `hole`? (cyclic distance)
            let dist_home = i.wrapping_sub(home) & (N - 1);
            let dist_hole = i.wrapping_sub(hole) & (N - 1);
            if dist_home >= dist_hole {
                self.entries[hole] = self.entries[i];
                hole = i;
            }
        }
        self.entries[hole] = (0, 0);
        true
    }
}

impl<const N: usize> Default for UtcbSet<N> {
    fn default() -> Self {
        Self::new()
    }
}
