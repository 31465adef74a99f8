//! Property tests: random sequences of map, grant, unmap/flush and space deletion.
//!
//! * `agrees_with_page_model`: 4 KiB pages only, against a reference model that knows nothing
//!   but pages: (space, page) → (frame, rights, parent page). After every step the database,
//!   the model and the page table must agree on every space, sigma0's root nodes must be
//!   exactly the pages something is derived from, and the database's own invariant check must
//!   pass (rights within the parent's, no dangling parent, children inside their parent).
//! * `superpages_keep_invariants`: 4 KiB and 2 MiB pages, no model: invariants, page-table
//!   agreement and transitive revocation after every step.
//!
//! Both end by deleting every space: the node count must return to zero.

mod common;

use common::*;
use mapdb::{MapDb, MapError, Mapping, Rights, SpaceId};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
enum Op {
    Map {
        from: u64,
        fp: u64,
        to: u64,
        tp: u64,
        size: u8,
        rights: u8,
    },
    Grant {
        from: u64,
        fp: u64,
        to: u64,
        tp: u64,
        size: u8,
        rights: u8,
    },
    Unmap {
        space: u64,
        page: u64,
        size: u8,
        rights: u8,
        flush: bool,
    },
    Delete {
        space: u64,
    },
}

const SPACES: u64 = 4; // 0 = sigma0

fn op_strategy(pages: u64, sizes: Vec<u8>) -> impl Strategy<Value = Op> {
    let size = proptest::sample::select(sizes);
    let sp = 0..SPACES;
    prop_oneof![
        // Half of the transfers go to the same address in the other space, as real pagers
        // often do: that makes chains that lead back onto their own ancestors likely.
        4 => (sp.clone(), 0..pages, sp.clone(), 0..pages, any::<bool>(), size.clone(), 0u8..8)
            .prop_map(|(from, fp, to, tp, same, size, rights)| {
                Op::Map { from, fp, to, tp: if same { fp } else { tp }, size, rights }
            }),
        2 => (sp.clone(), 0..pages, sp.clone(), 0..pages, any::<bool>(), size.clone(), 0u8..8)
            .prop_map(|(from, fp, to, tp, same, size, rights)| {
                Op::Grant { from, fp, to, tp: if same { fp } else { tp }, size, rights }
            }),
        2 => (sp.clone(), 0..pages, size, 0u8..8, any::<bool>())
            .prop_map(|(space, page, size, rights, flush)| Op::Unmap { space, page, size, rights, flush }),
        1 => sp.prop_map(|space| Op::Delete { space }),
    ]
}

/// Page number → aligned address of an fpage of `size`.
fn addr(page: u64, size: u8) -> u64 {
    (page << 12) & !((1u64 << size) - 1)
}

// ---- the page model ------------------------------------------------------------------------

type Key = (u64, u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    paddr: u64,
    rights: u8,
    parent: Key,
}

#[derive(Default, Clone, Debug)]
struct Model {
    pages: BTreeMap<Key, Entry>,
}

impl Model {
    fn children(&self, k: Key) -> Vec<Key> {
        self.pages
            .iter()
            .filter(|(_, e)| e.parent == k)
            .map(|(&c, _)| c)
            .collect()
    }
    fn remove_subtree(&mut self, k: Key) {
        for c in self.children(k) {
            self.remove_subtree(c);
        }
        self.pages.remove(&k);
    }
    fn revoke(&mut self, k: Key, r: u8) {
        let Some(e) = self.pages.get_mut(&k) else {
            return;
        };
        let new = e.rights & !r;
        if r == 7 || new == 0 {
            self.remove_subtree(k);
            return;
        }
        e.rights = new;
        for c in self.children(k) {
            self.revoke(c, r);
        }
    }
    fn is_ancestor_or_self(&self, a: Key, mut n: Key) -> bool {
        loop {
            if n == a {
                return true;
            }
            match self.pages.get(&n) {
                Some(e) => n = e.parent,
                None => return false,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn transfer(
        &mut self,
        from: u64,
        fs: u64,
        to: u64,
        ts: u64,
        size: u8,
        req: u8,
        grant: bool,
    ) -> Result<(), MapError> {
        let n = 1u64 << (size - 12);
        if to == 0 {
            return Err(MapError::RootTarget);
        }
        if from == to && fs == ts {
            return Err(MapError::Overlap);
        }
        let grant = grant && from != 0;
        for o in 0..n {
            let (src, dst) = (fs + (o << 12), ts + (o << 12));
            let (skey, dkey) = ((from, src), (to, dst));
            let (paddr, rights) = if from == 0 {
                (src, 7)
            } else if let Some(e) = self.pages.get(&skey) {
                (e.paddr, e.rights)
            } else {
                continue;
            };
            let eff = rights & req;
            if eff == 0 {
                continue;
            }
            if let Some(d) = self.pages.get_mut(&dkey)
                && !grant
                && d.parent == skey
                && d.paddr == paddr
            {
                d.rights |= eff;
                continue;
            }
            if self.pages.contains_key(&dkey) {
                if from != 0 && self.is_ancestor_or_self(dkey, skey) {
                    continue;
                }
                self.remove_subtree(dkey);
            }
            if grant {
                let e = self.pages.remove(&skey).unwrap();
                for c in self.children(skey) {
                    self.pages.get_mut(&c).unwrap().parent = dkey;
                }
                self.pages.insert(dkey, Entry { rights: eff, ..e });
                let lost = e.rights & !eff;
                if lost != 0 {
                    for c in self.children(dkey) {
                        self.revoke(c, lost);
                    }
                }
            } else {
                self.pages.insert(
                    dkey,
                    Entry {
                        paddr,
                        rights: eff,
                        parent: skey,
                    },
                );
            }
        }
        Ok(())
    }

    fn unmap(&mut self, space: u64, start: u64, last: u64, r: u8, flush: bool) {
        let targets: BTreeSet<Key> = if space == 0 {
            self.pages
                .values()
                .map(|e| e.parent)
                .filter(|p| p.0 == 0 && (start..=last).contains(&p.1))
                .collect()
        } else {
            self.pages
                .range((space, start)..=(space, last))
                .map(|(&k, _)| k)
                .collect()
        };
        for k in targets {
            if space != 0 && !self.pages.contains_key(&k) {
                continue;
            }
            if flush && space != 0 {
                self.revoke(k, r);
            } else {
                for c in self.children(k) {
                    self.revoke(c, r);
                }
            }
        }
    }
}

fn spaces() -> Vec<SpaceId> {
    (0..SPACES).map(SpaceId).collect()
}

fn assert_agrees(db: &MapDb<'_>, model: &Model) {
    for s in 1..SPACES {
        let got: BTreeMap<Key, Entry> = db
            .mappings(SpaceId(s))
            .map(|m| {
                assert_eq!(m.size_log2, 12);
                let (ps, pv) = m.parent.expect("derived mapping without parent");
                (
                    (s, m.vaddr),
                    Entry {
                        paddr: m.paddr,
                        rights: m.rights.bits(),
                        parent: (ps.0, pv),
                    },
                )
            })
            .collect();
        let want: BTreeMap<Key, Entry> = model
            .pages
            .range((s, 0)..(s + 1, 0))
            .map(|(&k, &e)| (k, e))
            .collect();
        assert_eq!(got, want, "space {s} differs from the model");
    }
    let roots: BTreeSet<u64> = db.mappings(SIGMA0).map(|m| m.vaddr).collect();
    let used: BTreeSet<u64> = model
        .pages
        .values()
        .filter(|e| e.parent.0 == 0)
        .map(|e| e.parent.1)
        .collect();
    assert_eq!(
        roots, used,
        "sigma0 root nodes are not exactly the pages in use"
    );
}

fn run(db: &mut MapDb<'_>, pt: &mut FakePt, op: &Op) -> Result<Rights, MapError> {
    match *op {
        Op::Map {
            from,
            fp,
            to,
            tp,
            size,
            rights,
        } => db
            .map(
                pt,
                SpaceId(from),
                addr(fp, size),
                SpaceId(to),
                addr(tp, size),
                size,
                Rights::from_bits(rights as u64),
            )
            .map(|_| Rights::NONE),
        Op::Grant {
            from,
            fp,
            to,
            tp,
            size,
            rights,
        } => db
            .grant(
                pt,
                SpaceId(from),
                addr(fp, size),
                SpaceId(to),
                addr(tp, size),
                size,
                Rights::from_bits(rights as u64),
            )
            .map(|_| Rights::NONE),
        Op::Unmap {
            space,
            page,
            size,
            rights,
            flush,
        } => db.unmap(
            pt,
            SpaceId(space),
            addr(page, size),
            size,
            Rights::from_bits(rights as u64),
            flush,
        ),
        Op::Delete { space } => {
            db.delete_space(pt, SpaceId(space));
            Ok(Rights::NONE)
        }
    }
}

/// Run `op`; if the database refuses with NoMem, check that nothing changed.
fn run_checked(db: &mut MapDb<'_>, pt: &mut FakePt, op: &Op) -> Result<Rights, MapError> {
    let (before, pt_before, len) = (snapshot(db, &spaces()), pt.ptes.clone(), db.len());
    let counts_before = pt.counts.clone();
    let r = run(db, pt, op);
    if r == Err(MapError::NoMem) {
        assert_eq!(
            snapshot(db, &spaces()),
            before,
            "NoMem changed the database"
        );
        assert_eq!(pt.ptes, pt_before, "NoMem changed the page tables");
        assert_eq!(db.len(), len);
        assert_eq!(pt.counts, counts_before, "NoMem changed the mapping counts");
    }
    db.check().unwrap();
    assert_pt_matches(db, pt, &spaces());
    assert_counts(db, pt, &spaces());
    r
}

fn delete_all(db: &mut MapDb<'_>, pt: &mut FakePt) {
    for s in (0..SPACES).rev() {
        db.delete_space(pt, SpaceId(s));
        db.check().unwrap();
    }
    assert_eq!(db.len(), 0, "nodes left after every space was deleted");
    assert!(pt.ptes.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_page_model(
        capacity in prop_oneof![Just(12usize), Just(40), Just(400)],
        ops in proptest::collection::vec(op_strategy(16, vec![12, 13, 14]), 1..80),
    ) {
        let mut slab = slab(capacity);
        let hints = hint_table(64);
        let mut db = MapDb::new(&mut slab, SIGMA0);
        db.set_hints(&hints);
        let mut pt = FakePt::with_mask(1 << 12);
        let mut model = Model::default();
        for op in &ops {
            let r = run_checked(&mut db, &mut pt, op);
            if r == Err(MapError::NoMem) {
                prop_assert!(capacity < 400, "NoMem with plenty of nodes");
                continue;
            }
            let m = match *op {
                Op::Map { from, fp, to, tp, size, rights } =>
                    model.transfer(from, addr(fp, size), to, addr(tp, size), size, rights, false),
                Op::Grant { from, fp, to, tp, size, rights } =>
                    model.transfer(from, addr(fp, size), to, addr(tp, size), size, rights, true),
                Op::Unmap { space, page, size, rights, flush } => {
                    let start = addr(page, size);
                    model.unmap(space, start, start + (1 << size) - 1, rights, flush);
                    Ok(())
                }
                Op::Delete { space } => {
                    model.unmap(space, 0, u64::MAX, 7, true);
                    Ok(())
                }
            };
            prop_assert_eq!(r.map(|_| ()), m);
            assert_agrees(&db, &model);
        }
        delete_all(&mut db, &mut pt);
    }

    #[test]
    fn superpages_keep_invariants(
        ops in proptest::collection::vec(op_strategy(2048, vec![12, 13, 16, 21, 22, 23]), 1..40),
    ) {
        let mut slab = slab(3000);
        let hints = hint_table(64);
        let mut db = MapDb::new(&mut slab, SIGMA0);
        db.set_hints(&hints);
        let mut pt = FakePt::with_mask((1 << 12) | (1 << 21));
        for op in &ops {
            let r = run_checked(&mut db, &mut pt, op);
            if let (Op::Unmap { space, page, size, rights, flush }, Ok(_)) = (op, r) {
                let start = addr(*page, *size);
                check_revoked(&db, SpaceId(*space), start, start + (1u64 << size) - 1, Rights::from_bits(*rights as u64), *flush);
            }
        }
        delete_all(&mut db, &mut pt);
    }

    /// The look-up hints (decision 011) never change an answer: after every step, `lookup`
    /// of every page of every space names exactly the mapping whose page-table entry covers
    /// it (an independent record: the fake page table), with few nodes so that nodes are
    /// freed and reused under stale hints.
    #[test]
    fn lookup_agrees_with_page_table(
        capacity in prop_oneof![Just(8usize), Just(30), Just(3000)],
        ops in proptest::collection::vec(op_strategy(1024, vec![12, 13, 16, 21]), 1..60),
    ) {
        let mut slab = slab(capacity);
        let hints = hint_table(64);
        let mut db = MapDb::new(&mut slab, SIGMA0);
        db.set_hints(&hints);
        let mut pt = FakePt::with_mask((1 << 12) | (1 << 21));
        for op in &ops {
            let _ = run_checked(&mut db, &mut pt, op);
            for s in 1..SPACES {
                for page in (0..1024u64).step_by(7).chain([1, 2, 511, 512, 513]) {
                    let a = page << 12 | (page & 0xFFF);
                    let want = pt
                        .ptes
                        .range(..=(s, a))
                        .next_back()
                        .filter(|(k, e)| k.0 == s && a <= k.1 + ((1u64 << e.size_log2) - 1))
                        .map(|(k, e)| (k.1, e.size_log2, e.paddr));
                    let got = db.lookup(SpaceId(s), a).map(|m| (m.vaddr, m.size_log2, m.paddr));
                    prop_assert_eq!(got, want, "space {} address {:#x}", s, a);
                }
            }
        }
        delete_all(&mut db, &mut pt);
    }

    /// A per-space quota on mappings (the kernel's defence against one space using up every
    /// node): no space ever holds more than its quota, the counts reported to the kernel match
    /// the database after every step, a refusal changes nothing, and deleting every space
    /// brings every count back to zero.
    #[test]
    fn quota_is_kept_and_counted(
        quota in prop_oneof![Just(1usize), Just(3), Just(8), Just(64)],
        ops in proptest::collection::vec(op_strategy(2048, vec![12, 13, 16, 21, 22]), 1..60),
    ) {
        let mut slab = slab(3000);
        let hints = hint_table(64);
        let mut db = MapDb::new(&mut slab, SIGMA0);
        db.set_hints(&hints);
        let mut pt = FakePt::with_mask((1 << 12) | (1 << 21));
        pt.quota = Some(quota);
        for op in &ops {
            let _ = run_checked(&mut db, &mut pt, op);
        }
        delete_all(&mut db, &mut pt);
        prop_assert!(pt.counts.values().all(|&c| c == 0), "counts left after deleting every space");
    }
}

/// After Unmap(space, [start, last], r, flush): nothing derived from the unmapped part (and
/// with flush, nothing in the fpage itself) still holds any of the rights `r`.
fn check_revoked(db: &MapDb<'_>, space: SpaceId, start: u64, last: u64, r: Rights, flush: bool) {
    if r.is_empty() {
        return;
    }
    let all: Vec<Mapping> = spaces()
        .iter()
        .flat_map(|&s| db.mappings(s).collect::<Vec<_>>())
        .collect();
    let key = |m: &Mapping| (m.space, m.vaddr);
    let parent_key = |m: &Mapping| {
        m.parent.map(|(ps, pv)| {
            let p = db.lookup(ps, pv).expect("dangling parent");
            (p.space, p.vaddr)
        })
    };
    let mut children: BTreeMap<(SpaceId, u64), Vec<Mapping>> = BTreeMap::new();
    for m in &all {
        if let Some(p) = parent_key(m) {
            children.entry(p).or_default().push(*m);
        }
    }
    let assert_subtree_lacks = |top: &Mapping| {
        let mut stack = vec![*top];
        while let Some(n) = stack.pop() {
            assert!(
                (n.rights & r).is_empty(),
                "{n:?} kept rights {r:?} after unmap"
            );
            stack.extend(children.get(&key(&n)).into_iter().flatten());
        }
    };
    for m in all.iter().filter(|m| {
        m.space == space
            && m.vaddr <= last
            && m.vaddr + ((1u128 << m.size_log2) - 1) as u64 >= start
    }) {
        if flush && m.parent.is_some() {
            assert_subtree_lacks(m);
            continue;
        }
        let plo = m.paddr + (start.max(m.vaddr) - m.vaddr);
        let phi = m.paddr + (last.min(m.vaddr + ((1u128 << m.size_log2) - 1) as u64) - m.vaddr);
        for c in children.get(&key(m)).into_iter().flatten() {
            if c.paddr <= phi && plo <= c.paddr + ((1u64 << c.size_log2) - 1) {
                assert_subtree_lacks(c);
            }
        }
    }
}
