//! A fake page table for the tests: one entry per installed page, with A/D-style status bits,
//! and checks that the database only ever installs where nothing is and removes what is there.

#![allow(dead_code)]

use mapdb::{MapDb, Mapping, PageTableOps, Rights, SpaceId, X86_64_PAGE_SIZES};
use std::collections::BTreeMap;

pub const SIGMA0: SpaceId = SpaceId(0);
pub const K4: u64 = 1 << 12;
pub const M2: u64 = 1 << 21;
pub const G1: u64 = 1 << 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pte {
    pub size_log2: u8,
    pub paddr: u64,
    pub rights: Rights,
    pub status: Rights,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakePt {
    pub ptes: BTreeMap<(u64, u64), Pte>,
    pub mask: u64,
    /// `reserve` fails once this many reservations were made (None = never).
    pub reserve_limit: Option<usize>,
    pub reserved: usize,
    /// Mappings per space as reported by `mappings_changed`.
    pub counts: BTreeMap<u64, isize>,
    /// Per-space quota on mappings for every space but sigma0 (None = unlimited).
    pub quota: Option<usize>,
}

impl Default for FakePt {
    fn default() -> Self {
        FakePt {
            ptes: BTreeMap::new(),
            mask: X86_64_PAGE_SIZES,
            reserve_limit: None,
            reserved: 0,
            counts: BTreeMap::new(),
            quota: None,
        }
    }
}

impl FakePt {
    pub fn with_mask(mask: u64) -> Self {
        FakePt {
            mask,
            ..Default::default()
        }
    }

    fn covering(&self, space: SpaceId, vaddr: u64) -> Option<(u64, Pte)> {
        let (&(s, v), pte) = self.ptes.range(..=(space.0, vaddr)).next_back()?;
        let last = v + ((1u128 << pte.size_log2) - 1) as u64;
        (s == space.0 && vaddr <= last).then_some((v, *pte))
    }

    /// The CPU touched `vaddr`: set referenced (and written) like the A and D bits.
    pub fn touch(&mut self, space: SpaceId, vaddr: u64, write: bool) -> bool {
        let Some((v, _)) = self.covering(space, vaddr) else {
            return false;
        };
        let pte = self.ptes.get_mut(&(space.0, v)).unwrap();
        pte.status |= if write { Rights::RW } else { Rights::R };
        true
    }

    fn entry(&mut self, space: SpaceId, vaddr: u64, size_log2: u8) -> &mut Pte {
        let pte = self
            .ptes
            .get_mut(&(space.0, vaddr))
            .unwrap_or_else(|| panic!("no PTE at {space:?} {vaddr:#x}"));
        assert_eq!(pte.size_log2, size_log2, "PTE size mismatch at {vaddr:#x}");
        pte
    }
}

impl PageTableOps for FakePt {
    fn page_sizes(&self) -> u64 {
        self.mask
    }
    fn reserve(&mut self, _space: SpaceId, _vaddr: u64, _size_log2: u8) -> bool {
        self.reserved += 1;
        self.reserve_limit.is_none_or(|l| self.reserved <= l)
    }
    fn install(&mut self, space: SpaceId, vaddr: u64, size_log2: u8, paddr: u64, rights: Rights) {
        assert!(
            self.mask & (1 << size_log2) != 0,
            "install of a size the hardware lacks"
        );
        assert_eq!(vaddr % (1 << size_log2), 0);
        assert_eq!(paddr % (1 << size_log2), 0);
        assert!(!rights.is_empty());
        let last = vaddr + ((1u64 << size_log2) - 1);
        let clash = self.ptes.range((space.0, 0)..=(space.0, last)).next_back();
        if let Some((&(_, v), pte)) = clash {
            assert!(
                v + ((1u64 << pte.size_log2) - 1) < vaddr,
                "install over an existing PTE at {vaddr:#x}"
            );
        }
        self.ptes.insert(
            (space.0, vaddr),
            Pte {
                size_log2,
                paddr,
                rights,
                status: Rights::NONE,
            },
        );
    }
    fn protect(&mut self, space: SpaceId, vaddr: u64, size_log2: u8, rights: Rights) -> Rights {
        let pte = self.entry(space, vaddr, size_log2);
        pte.rights = rights;
        core::mem::take(&mut pte.status)
    }
    fn remove(&mut self, space: SpaceId, vaddr: u64, size_log2: u8) -> Rights {
        let status = self.entry(space, vaddr, size_log2).status;
        self.ptes.remove(&(space.0, vaddr));
        status
    }
    fn read_status(&mut self, space: SpaceId, vaddr: u64, size_log2: u8) -> Rights {
        core::mem::take(&mut self.entry(space, vaddr, size_log2).status)
    }
    fn maps_nothing(&mut self, space: SpaceId, vaddr: u64, size_log2: u8) -> bool {
        let last = vaddr + ((1u64 << size_log2) - 1);
        let before = self.ptes.range((space.0, 0)..(space.0, vaddr)).next_back();
        let covers = before.is_some_and(|(&(_, v), p)| v + ((1u64 << p.size_log2) - 1) >= vaddr);
        !covers
            && self
                .ptes
                .range((space.0, vaddr)..=(space.0, last))
                .next()
                .is_none()
    }
    fn may_add_mappings(&mut self, space: SpaceId, more: usize) -> bool {
        let have = self.counts.get(&space.0).copied().unwrap_or(0);
        self.quota
            .is_none_or(|q| have as usize + more <= q || space == SIGMA0)
    }
    fn mappings_changed(&mut self, space: SpaceId, delta: isize) {
        assert_ne!(space, SIGMA0, "sigma0's root nodes are not counted");
        let c = self.counts.entry(space.0).or_insert(0);
        *c += delta;
        assert!(*c >= 0, "mapping count of {space:?} below zero");
    }
}

/// The counts reported through `mappings_changed` are exactly the mappings of each space,
/// and none exceeds the quota.
pub fn assert_counts(db: &MapDb<'_>, pt: &FakePt, spaces: &[SpaceId]) {
    for &s in spaces {
        let n = if s == SIGMA0 {
            0
        } else {
            db.mappings(s).count()
        };
        let c = pt.counts.get(&s.0).copied().unwrap_or(0);
        assert_eq!(c as usize, n, "mapping count of {s:?} is wrong");
        if s != SIGMA0
            && let Some(q) = pt.quota
        {
            assert!(n <= q, "{s:?} holds {n} mappings, quota {q}");
        }
    }
}

/// Everything the database reports, per space (sigma0's root nodes included).
pub fn snapshot(db: &MapDb<'_>, spaces: &[SpaceId]) -> Vec<Mapping> {
    spaces
        .iter()
        .flat_map(|&s| db.mappings(s).collect::<Vec<_>>())
        .collect()
}

/// The page table holds exactly one entry per non-root mapping, with its size, frame and rights.
pub fn assert_pt_matches(db: &MapDb<'_>, pt: &FakePt, spaces: &[SpaceId]) {
    let mut expect = BTreeMap::new();
    for m in snapshot(db, spaces) {
        if m.parent.is_some() {
            expect.insert((m.space.0, m.vaddr), (m.size_log2, m.paddr, m.rights));
        }
    }
    let got: BTreeMap<_, _> = pt
        .ptes
        .iter()
        .map(|(&k, p)| (k, (p.size_log2, p.paddr, p.rights)))
        .collect();
    assert_eq!(got, expect, "page tables and database disagree");
}

pub fn slab(n: usize) -> Vec<mapdb::Node> {
    vec![mapdb::Node::EMPTY; n]
}

/// A look-up hint table of `n` slots (small in tests, so that slots collide and go stale).
pub fn hint_table(n: usize) -> Vec<std::sync::atomic::AtomicU32> {
    (0..n)
        .map(|_| std::sync::atomic::AtomicU32::new(0))
        .collect()
}
