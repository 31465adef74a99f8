//! Who owns which physical memory: a sorted table of non-overlapping ranges that covers the
//! whole 64-bit physical address space, each range with one [`Owner`].
//!
//! The table has a fixed capacity ([`MAX_REGIONS`]) and no heap. Adjacent ranges with the
//! same owner are merged after every change, so handing out consecutive pages to the same
//! thread (the common case: the root server faulting in its image and heap) does not grow
//! it. A change that would overflow the table is refused and leaves the table unchanged;
//! sigma0 then answers the request with a nil map item.
//!
//! Ranges are inclusive (`first..=last`) so that the top of the address space is
//! representable without overflow.

use abi::ThreadId;

/// Capacity of the ownership table.
pub const MAX_REGIONS: usize = 512;

/// The owner (or pool) of a physical range.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    /// Free conventional memory (RAM): page faults and "any page" requests draw from it.
    FreeConventional,
    /// Free non-conventional memory (devices, boot-loader data, ACPI, ...): only given out
    /// by an exact-address request.
    FreeOther,
    /// Shared: anybody may have it mapped, repeatedly (e.g. VGA memory).
    Shared,
    /// The kernel's (reserved descriptors, kdebug region): never given out.
    Kernel,
    /// Given to (or pre-assigned to) this thread; it may ask for it again.
    Thread(ThreadId),
    /// Undefined memory: not given out.
    Unavailable,
}

impl Owner {
    /// Whether `requester` may receive memory of this owner. `exact` requests may also take
    /// free non-conventional memory.
    pub fn grantable_to(self, requester: ThreadId, exact: bool) -> bool {
        match self {
            Owner::FreeConventional | Owner::Shared => true,
            Owner::FreeOther => exact,
            Owner::Thread(t) => t == requester,
            Owner::Kernel | Owner::Unavailable => false,
        }
    }
}

/// One table entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Region {
    /// First byte.
    pub first: u64,
    /// Last byte (inclusive).
    pub last: u64,
    /// Owner of the whole range.
    pub owner: Owner,
}

impl Region {
    /// Number of bytes, saturating at `u64::MAX` for the whole address space.
    pub fn size(&self) -> u64 {
        (self.last - self.first).saturating_add(1)
    }
}

/// The table is full; the change was not made.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TableFull;

/// The ownership table.
pub struct Pool {
    regions: [Region; MAX_REGIONS],
    len: usize,
}

const EMPTY: Region = Region {
    first: 0,
    last: 0,
    owner: Owner::Unavailable,
};

impl Pool {
    /// The whole physical address space owned by `initial`.
    pub const fn new(initial: Owner) -> Self {
        let mut regions = [EMPTY; MAX_REGIONS];
        regions[0] = Region {
            first: 0,
            last: u64::MAX,
            owner: initial,
        };
        Self { regions, len: 1 }
    }

    /// The entries, sorted by address, covering 0..=u64::MAX.
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.len]
    }

    /// Gives `first..=last` to `owner`, overriding what was there.
    pub fn set(&mut self, first: u64, last: u64, owner: Owner) -> Result<(), TableFull> {
        if first > last {
            return Ok(());
        }
        let mut out = [EMPTY; MAX_REGIONS];
        let mut n = 0;
        let mut push = |r: Region| -> Result<(), TableFull> {
            if n > 0 && out[n - 1].owner == r.owner && out[n - 1].last.wrapping_add(1) == r.first {
                out[n - 1].last = r.last;
                return Ok(());
            }
            if n == MAX_REGIONS {
                return Err(TableFull);
            }
            out[n] = r;
            n += 1;
            Ok(())
        };
        let mut inserted = false;
        for r in self.regions() {
            if r.last < first || r.first > last {
                if !inserted && r.first > last {
                    push(Region { first, last, owner })?;
                    inserted = true;
                }
                push(*r)?;
                continue;
            }
            if r.first < first {
                push(Region {
                    first: r.first,
                    last: first - 1,
                    owner: r.owner,
                })?;
            }
            if !inserted {
                push(Region { first, last, owner })?;
                inserted = true;
            }
            if r.last > last {
                push(Region {
                    first: last + 1,
                    last: r.last,
                    owner: r.owner,
                })?;
            }
        }
        if !inserted {
            push(Region { first, last, owner })?;
        }
        self.regions[..n].copy_from_slice(&out[..n]);
        self.len = n;
        Ok(())
    }

    /// Whether every byte of `first..=last` may be given to `requester`.
    pub fn grantable(&self, first: u64, last: u64, requester: ThreadId, exact: bool) -> bool {
        first <= last
            && self
                .regions()
                .iter()
                .filter(|r| r.last >= first && r.first <= last)
                .all(|r| r.owner.grantable_to(requester, exact))
    }

    /// Gives the free parts of `first..=last` to `requester` (shared parts stay shared,
    /// parts it already owns stay its own). Check [`Pool::grantable`] first.
    pub fn grant(&mut self, first: u64, last: u64, requester: ThreadId) -> Result<(), TableFull> {
        let mut at = first;
        loop {
            let Some(r) = self
                .regions()
                .iter()
                .find(|r| r.last >= at && r.first <= last)
                .copied()
            else {
                return Ok(());
            };
            let (a, b) = (r.first.max(at), r.last.min(last));
            if matches!(r.owner, Owner::FreeConventional | Owner::FreeOther) {
                self.set(a, b, Owner::Thread(requester))?;
            }
            if b >= last {
                return Ok(());
            }
            at = b + 1;
        }
    }

    /// The highest naturally aligned block of 2^`size_log2` bytes of free conventional
    /// memory, if any.
    pub fn find_free_conventional(&self, size_log2: u32) -> Option<u64> {
        if size_log2 >= 64 {
            return None;
        }
        let size = 1u64 << size_log2;
        self.regions()
            .iter()
            .rev()
            .filter(|r| r.owner == Owner::FreeConventional)
            .find_map(|r| {
                // Highest aligned base whose block ends at or before r.last: align_down(last + 1 - size).
                let base = r.last.checked_sub(size - 1)? & !(size - 1);
                (base >= r.first).then_some(base)
            })
    }

    /// Total bytes of free conventional memory.
    pub fn free_conventional_bytes(&self) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.owner == Owner::FreeConventional)
            .map(Region::size)
            .sum()
    }
}
