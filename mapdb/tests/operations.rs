//! Unit tests: each operation and its edge cases, on a fake page table.

mod common;

use common::*;
use mapdb::{MapDb, MapError, Mapping, Rights, SpaceId};

const A: SpaceId = SpaceId(1);
const B: SpaceId = SpaceId(2);
const C: SpaceId = SpaceId(3);
const D: SpaceId = SpaceId(4);
const ALL: [SpaceId; 5] = [SIGMA0, A, B, C, D];

fn get(db: &MapDb<'_>, s: SpaceId, v: u64) -> Mapping {
    db.lookup(s, v)
        .unwrap_or_else(|| panic!("nothing mapped at {s:?} {v:#x}"))
}

fn ok(db: &MapDb<'_>, pt: &FakePt) {
    db.check().unwrap();
    assert_pt_matches(db, pt, &ALL);
}

#[test]
fn sigma0_map_creates_root_and_child() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    db.map(&mut pt, SIGMA0, 0x5000, A, 0x40_0000, 12, Rights::RWX)
        .unwrap();
    let m = get(&db, A, 0x40_0000);
    assert_eq!(
        (m.paddr, m.size_log2, m.rights, m.parent),
        (0x5000, 12, Rights::RWX, Some((SIGMA0, 0x5000)))
    );
    let root = get(&db, SIGMA0, 0x5000);
    assert_eq!(
        (root.vaddr, root.paddr, root.parent),
        (0x5000, 0x5000, None)
    );
    assert_eq!(db.len(), 2);
    ok(&db, &pt);
    // A second page from the same root region reuses nothing but shares nothing either.
    db.map(&mut pt, SIGMA0, 0x6000, B, 0x6000, 12, Rights::R)
        .unwrap();
    assert_eq!(db.len(), 4);
    ok(&db, &pt);
}

#[test]
fn map_rights_are_intersection_of_request_and_sender() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    db.map(&mut pt, SIGMA0, 0x1000, A, 0x1000, 12, Rights::RX)
        .unwrap();
    db.map(&mut pt, A, 0x1000, B, 0x9000, 12, Rights::RW)
        .unwrap();
    assert_eq!(get(&db, B, 0x9000).rights, Rights::R);
    assert_eq!(get(&db, B, 0x9000).parent, Some((A, 0x1000)));
    // Nothing in common: nothing mapped.
    db.map(&mut pt, A, 0x1000, C, 0x1000, 12, Rights::W)
        .unwrap();
    assert!(db.lookup(C, 0x1000).is_none());
    // Mapping from an unmapped source maps nothing.
    db.map(&mut pt, A, 0x8000, C, 0x1000, 12, Rights::RWX)
        .unwrap();
    assert!(db.lookup(C, 0x1000).is_none());
    ok(&db, &pt);
}

/// sigma0 → A → B → C, one page.
fn chain(db: &mut MapDb<'_>, pt: &mut FakePt) {
    db.map(pt, SIGMA0, 0x1000, A, 0x1000, 12, Rights::RWX)
        .unwrap();
    db.map(pt, A, 0x1000, B, 0x2000, 12, Rights::RWX).unwrap();
    db.map(pt, B, 0x2000, C, 0x3000, 12, Rights::RW).unwrap();
}

#[test]
fn unmap_without_flush_revokes_transitively_and_keeps_own() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    chain(&mut db, &mut pt);
    db.unmap(&mut pt, A, 0x1000, 12, Rights::RWX, false)
        .unwrap();
    assert!(db.lookup(A, 0x1000).is_some());
    assert!(db.lookup(B, 0x2000).is_none());
    assert!(db.lookup(C, 0x3000).is_none());
    ok(&db, &pt);
}

#[test]
fn unmap_reduces_rights_transitively() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    chain(&mut db, &mut pt);
    db.unmap(&mut pt, A, 0x1000, 12, Rights::W, false).unwrap();
    assert_eq!(get(&db, A, 0x1000).rights, Rights::RWX);
    assert_eq!(get(&db, B, 0x2000).rights, Rights::RX);
    assert_eq!(get(&db, C, 0x3000).rights, Rights::R);
    ok(&db, &pt);
    // Revoking R leaves B with X, and C (R only) with nothing: C goes.
    db.unmap(&mut pt, A, 0x1000, 12, Rights::R, false).unwrap();
    assert_eq!(get(&db, B, 0x2000).rights, Rights::X);
    assert!(db.lookup(C, 0x3000).is_none());
    ok(&db, &pt);
}

#[test]
fn flush_also_affects_own_mapping_and_releases_root() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    chain(&mut db, &mut pt);
    db.unmap(&mut pt, B, 0x2000, 12, Rights::W, true).unwrap();
    assert_eq!(get(&db, B, 0x2000).rights, Rights::RX);
    assert_eq!(get(&db, C, 0x3000).rights, Rights::R);
    db.unmap(&mut pt, A, 0x1000, 12, Rights::RWX, true).unwrap();
    assert!(db.is_empty(), "the root node goes with its last child");
    assert!(pt.ptes.is_empty());
    ok(&db, &pt);
}

#[test]
fn sigma0_flush_never_removes_its_own_memory() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    chain(&mut db, &mut pt);
    db.unmap(&mut pt, SIGMA0, 0, 20, Rights::W, true).unwrap();
    assert_eq!(get(&db, A, 0x1000).rights, Rights::RX);
    assert_eq!(get(&db, SIGMA0, 0x1000).rights, Rights::RWX);
    db.unmap(&mut pt, SIGMA0, 0, 64, Rights::RWX, true).unwrap();
    assert!(db.is_empty());
    ok(&db, &pt);
    // sigma0 can still map the same page: its memory is implicit.
    db.map(&mut pt, SIGMA0, 0x1000, A, 0x1000, 12, Rights::RWX)
        .unwrap();
    ok(&db, &pt);
}

#[test]
fn unmap_affects_only_the_fpage() {
    let mut s = slab(32);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    db.map(&mut pt, SIGMA0, 0x10000, A, 0x10000, 14, Rights::RWX)
        .unwrap();
    db.map(&mut pt, A, 0x10000, B, 0x10000, 14, Rights::RWX)
        .unwrap();
    db.unmap(&mut pt, A, 0x12000, 13, Rights::RWX, false)
        .unwrap();
    let b: Vec<u64> = db.mappings(B).map(|m| m.vaddr).collect();
    assert_eq!(b, [0x10000, 0x11000]);
    ok(&db, &pt);
}

#[test]
fn grant_moves_the_node_with_its_children() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    chain(&mut db, &mut pt);
    db.grant(&mut pt, B, 0x2000, D, 0x7000, 12, Rights::RWX)
        .unwrap();
    assert!(db.lookup(B, 0x2000).is_none());
    let d = get(&db, D, 0x7000);
    assert_eq!(
        (d.paddr, d.rights, d.parent),
        (0x1000, Rights::RWX, Some((A, 0x1000)))
    );
    assert_eq!(get(&db, C, 0x3000).parent, Some((D, 0x7000)));
    assert_eq!(db.len(), 4);
    ok(&db, &pt);
    // Revocation now flows through the moved node.
    db.unmap(&mut pt, A, 0x1000, 12, Rights::RWX, false)
        .unwrap();
    assert!(db.lookup(D, 0x7000).is_none() && db.lookup(C, 0x3000).is_none());
    ok(&db, &pt);
}

#[test]
fn grant_with_fewer_rights_reduces_the_children() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    chain(&mut db, &mut pt);
    db.grant(&mut pt, B, 0x2000, D, 0x2000, 12, Rights::RX)
        .unwrap();
    assert_eq!(get(&db, D, 0x2000).rights, Rights::RX);
    assert_eq!(get(&db, C, 0x3000).rights, Rights::R);
    ok(&db, &pt);
    // A grant keeping only W removes C (which had only R left).
    db.grant(&mut pt, D, 0x2000, B, 0x2000, 12, Rights::X)
        .unwrap();
    assert!(db.lookup(C, 0x3000).is_none());
    ok(&db, &pt);
}

#[test]
fn grant_from_sigma0_is_map() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    db.grant(&mut pt, SIGMA0, 0x1000, A, 0x1000, 12, Rights::RWX)
        .unwrap();
    assert_eq!(get(&db, A, 0x1000).parent, Some((SIGMA0, 0x1000)));
    ok(&db, &pt);
}

#[test]
fn map_over_existing_mapping_replaces_it_and_its_subtree() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    chain(&mut db, &mut pt);
    db.map(&mut pt, SIGMA0, 0x9000, B, 0x2000, 12, Rights::R)
        .unwrap();
    let b = get(&db, B, 0x2000);
    assert_eq!(
        (b.paddr, b.rights, b.parent),
        (0x9000, Rights::R, Some((SIGMA0, 0x9000)))
    );
    assert!(
        db.lookup(C, 0x3000).is_none(),
        "the old mapping's subtree is revoked"
    );
    assert_eq!(get(&db, A, 0x1000).rights, Rights::RWX);
    ok(&db, &pt);
}

#[test]
fn map_over_partly_overlapped_superpage_removes_it_whole() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    db.map(&mut pt, SIGMA0, 0x20_0000, A, 0x20_0000, 21, Rights::RWX)
        .unwrap();
    db.map(&mut pt, SIGMA0, 0x1000, A, 0x20_3000, 12, Rights::R)
        .unwrap();
    let m: Vec<_> = db.mappings(A).map(|m| (m.vaddr, m.size_log2)).collect();
    assert_eq!(m, [(0x20_3000, 12)]);
    ok(&db, &pt);
}

#[test]
fn remapping_the_same_page_extends_rights_and_keeps_children() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    db.map(&mut pt, SIGMA0, 0x1000, A, 0x1000, 12, Rights::R)
        .unwrap();
    db.map(&mut pt, A, 0x1000, B, 0x1000, 12, Rights::R)
        .unwrap();
    db.map(&mut pt, SIGMA0, 0x1000, A, 0x1000, 12, Rights::W)
        .unwrap();
    assert_eq!(get(&db, A, 0x1000).rights, Rights::RW);
    assert!(db.lookup(B, 0x1000).is_some());
    assert_eq!(db.len(), 3);
    ok(&db, &pt);
}

#[test]
fn mapping_over_an_ancestor_of_the_source_is_skipped() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    chain(&mut db, &mut pt);
    db.map(&mut pt, C, 0x3000, A, 0x1000, 12, Rights::R)
        .unwrap();
    db.grant(&mut pt, C, 0x3000, A, 0x1000, 12, Rights::R)
        .unwrap();
    assert_eq!(get(&db, A, 0x1000).parent, Some((SIGMA0, 0x1000)));
    assert_eq!(get(&db, C, 0x3000).parent, Some((B, 0x2000)));
    ok(&db, &pt);
}

#[test]
fn superpages_are_single_nodes() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    db.map(&mut pt, SIGMA0, G1, A, 4 * G1, 30, Rights::RWX)
        .unwrap();
    db.map(&mut pt, SIGMA0, 2 * M2, A, 0x20_0000, 21, Rights::RW)
        .unwrap();
    db.map(&mut pt, A, 4 * G1, B, 8 * G1, 30, Rights::RX)
        .unwrap();
    assert_eq!(db.len(), 5);
    let b = get(&db, B, 8 * G1 + 0x1234);
    assert_eq!(
        (b.vaddr, b.size_log2, b.paddr, b.rights),
        (8 * G1, 30, G1, Rights::RX)
    );
    assert_eq!(pt.ptes[&(A.0, 0x20_0000)].size_log2, 21);
    ok(&db, &pt);
}

#[test]
fn large_fpage_over_small_source_pages_is_split() {
    let mut s = slab(1600);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    // A holds a 2 MiB region as 4 KiB pages (as after 512 sigma0 page faults).
    for i in 0..512 {
        db.map(
            &mut pt,
            SIGMA0,
            0x40_0000 + i * K4,
            A,
            0x40_0000 + i * K4,
            12,
            Rights::RWX,
        )
        .unwrap();
    }
    db.map(&mut pt, A, 0x40_0000, B, 0x80_0000, 21, Rights::RW)
        .unwrap();
    let b: Vec<_> = db.mappings(B).collect();
    assert_eq!(b.len(), 512);
    assert!(
        b.iter()
            .all(|m| m.size_log2 == 12 && m.rights == Rights::RW)
    );
    assert_eq!(b[7].parent, Some((A, 0x40_7000)));
    ok(&db, &pt);
}

#[test]
fn sigma0_request_larger_than_existing_root_is_split_around_it() {
    let mut s = slab(1100);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    db.map(&mut pt, SIGMA0, 0x20_1000, A, 0x20_1000, 12, Rights::RWX)
        .unwrap();
    db.map(&mut pt, SIGMA0, 0x20_0000, B, 0x20_0000, 21, Rights::RWX)
        .unwrap();
    let b: Vec<_> = db.mappings(B).map(|m| (m.vaddr, m.size_log2)).collect();
    // 4K, 4K (under the existing root), 4K, then 8K..2M in the largest aligned 4K pieces:
    // with only 4K/2M/1G hardware sizes that is all 4K.
    assert_eq!(b.len(), 512);
    assert_eq!(get(&db, B, 0x20_1000).parent, Some((SIGMA0, 0x20_1000)));
    ok(&db, &pt);
}

#[test]
fn small_fpage_out_of_a_superpage_is_a_partial_child() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    db.map(&mut pt, SIGMA0, 0x60_0000, A, 0x20_0000, 21, Rights::RWX)
        .unwrap();
    db.map(&mut pt, A, 0x20_5000, B, 0x1000, 12, Rights::RW)
        .unwrap();
    db.map(&mut pt, A, 0x20_8000, C, 0x8000, 15, Rights::R)
        .unwrap();
    let b = get(&db, B, 0x1000);
    assert_eq!(
        (b.paddr, b.size_log2, b.parent),
        (0x60_5000, 12, Some((A, 0x20_5000)))
    );
    assert_eq!(db.mappings(C).count(), 8);
    ok(&db, &pt);
    // Unmapping another part of the superpage leaves B alone...
    db.unmap(&mut pt, A, 0x20_0000, 14, Rights::RWX, false)
        .unwrap();
    assert!(db.lookup(B, 0x1000).is_some());
    assert_eq!(db.mappings(C).count(), 8);
    // ...unmapping the part B came from removes it, and only it.
    db.unmap(&mut pt, A, 0x20_4000, 14, Rights::RWX, false)
        .unwrap();
    assert!(db.lookup(B, 0x1000).is_none());
    assert_eq!(db.mappings(C).count(), 8);
    ok(&db, &pt);
    // A flush of one 4K page of the superpage takes the whole superpage.
    db.unmap(&mut pt, A, 0x20_f000, 12, Rights::RWX, true)
        .unwrap();
    assert!(db.is_empty());
    ok(&db, &pt);
}

#[test]
fn granting_part_of_a_superpage() {
    let mut s = slab(64);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    db.map(&mut pt, SIGMA0, 0x60_0000, A, 0x20_0000, 21, Rights::RWX)
        .unwrap();
    db.map(&mut pt, A, 0x20_5000, B, 0x1000, 12, Rights::RWX)
        .unwrap(); // inside the grant
    db.map(&mut pt, A, 0x30_0000, C, 0x1000, 12, Rights::RWX)
        .unwrap(); // outside
    db.grant(&mut pt, A, 0x20_0000, D, 0x10_0000, 16, Rights::RW)
        .unwrap();
    assert_eq!(
        db.mappings(A).count(),
        0,
        "the sender loses the whole superpage"
    );
    let d: Vec<_> = db.mappings(D).collect();
    assert_eq!(d.len(), 16);
    assert!(
        d.iter()
            .all(|m| m.parent.unwrap().0 == SIGMA0 && m.rights == Rights::RW)
    );
    let b = get(&db, B, 0x1000);
    assert_eq!((b.parent, b.rights), (Some((D, 0x10_5000)), Rights::RW));
    assert!(db.lookup(C, 0x1000).is_none());
    ok(&db, &pt);
}

#[test]
fn no_mem_leaves_everything_unchanged() {
    let mut s = slab(18);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    db.map(&mut pt, SIGMA0, 0x10000, A, 0x10000, 15, Rights::RWX)
        .unwrap(); // 8 pages, 8 roots
    // A new sigma0 page needs a root node as well: 2 nodes, 2 free, then 0 free.
    assert_eq!(
        db.map(&mut pt, SIGMA0, 0x10000, C, 0x10000, 13, Rights::RWX),
        Ok(())
    );
    db.delete_space(&mut pt, C);
    db.map(&mut pt, SIGMA0, 0x0, C, 0, 12, Rights::RWX).unwrap();
    assert_eq!(
        db.map(&mut pt, SIGMA0, 0x1000, C, 0x1000, 12, Rights::RWX),
        Err(MapError::NoMem)
    );
    db.delete_space(&mut pt, C);
    assert_eq!(db.free_nodes(), 2);
    db.map(&mut pt, A, 0x10000, B, 0, 13, Rights::RWX).unwrap();
    let (before, pt_before) = (snapshot(&db, &ALL), pt.clone());
    // Needs 8 nodes, 2 free; replacing B's 2 pages would free 2, still not enough.
    assert_eq!(
        db.map(&mut pt, A, 0x10000, B, 0, 15, Rights::RWX),
        Err(MapError::NoMem)
    );
    assert_eq!(
        db.grant(&mut pt, A, 0x10000, C, 0, 15, Rights::RWX),
        Err(MapError::NoMem)
    );
    assert_eq!(snapshot(&db, &ALL), before);
    assert_eq!(pt.ptes, pt_before.ptes);
    ok(&db, &pt);
    // A failing page-table reservation is NoMem too, also after some pieces reserved fine.
    db.unmap(&mut pt, B, 0, 13, Rights::RWX, true).unwrap();
    let (before, pt_before) = (snapshot(&db, &ALL), pt.clone());
    pt.reserve_limit = Some(pt.reserved + 1);
    assert_eq!(
        db.map(&mut pt, A, 0x10000, C, 0, 13, Rights::RWX),
        Err(MapError::NoMem)
    );
    assert_eq!(snapshot(&db, &ALL), before);
    assert_eq!(pt.ptes, pt_before.ptes);
    pt.reserve_limit = None;
    db.map(&mut pt, A, 0x10000, C, 0, 13, Rights::RWX).unwrap();
    ok(&db, &pt);
    // A huge sigma0 request fails fast rather than walking 2^52 pages.
    assert_eq!(
        db.map(&mut pt, SIGMA0, 0, D, 0, 64, Rights::RWX),
        Err(MapError::NoMem)
    );
}

#[test]
fn refused_requests() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    db.map(&mut pt, SIGMA0, 0x1000, A, 0x1000, 12, Rights::RWX)
        .unwrap();
    assert_eq!(
        db.map(&mut pt, A, 0x1000, B, 0x1800, 12, Rights::R),
        Err(MapError::BadFpage)
    );
    assert_eq!(
        db.map(&mut pt, A, 0x1000, B, 0x1000, 11, Rights::R),
        Err(MapError::BadFpage)
    );
    assert_eq!(
        db.unmap(&mut pt, A, 0x1000, 13, Rights::R, false),
        Err(MapError::BadFpage)
    );
    assert_eq!(
        db.map(&mut pt, A, 0x1000, SIGMA0, 0x1000, 12, Rights::R),
        Err(MapError::RootTarget)
    );
    assert_eq!(
        db.map(&mut pt, A, 0x0, A, 0x0, 13, Rights::R),
        Err(MapError::Overlap)
    );
    assert_eq!(
        db.grant(&mut pt, A, 0x1000, A, 0x1000, 12, Rights::R),
        Err(MapError::Overlap)
    );
    db.map(&mut pt, A, 0x1000, A, 0x2000, 12, Rights::R)
        .unwrap(); // same space, disjoint: fine
    assert_eq!(get(&db, A, 0x2000).parent, Some((A, 0x1000)));
    db.map(&mut pt, A, 0x1000, B, 0x1000, 12, Rights::NONE)
        .unwrap();
    assert!(db.lookup(B, 0x1000).is_none());
    ok(&db, &pt);
}

#[test]
fn unmap_reports_and_resets_the_access_status() {
    let mut s = slab(16);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    chain(&mut db, &mut pt);
    assert!(pt.touch(C, 0x3000, false));
    assert_eq!(
        db.unmap(&mut pt, A, 0x1000, 12, Rights::NONE, false),
        Ok(Rights::R)
    );
    assert_eq!(
        db.unmap(&mut pt, A, 0x1000, 12, Rights::NONE, false),
        Ok(Rights::NONE)
    );
    // Own accesses count too.
    pt.touch(A, 0x1000, true);
    assert_eq!(
        db.unmap(&mut pt, A, 0x1000, 12, Rights::NONE, false),
        Ok(Rights::RW)
    );
    ok(&db, &pt);
    // Status of a mapping removed outside a query is parked with its parent.
    pt.touch(C, 0x3000, true);
    db.unmap(&mut pt, C, 0x3000, 12, Rights::RWX, true).unwrap(); // C flushes its own page
    pt.touch(B, 0x2000, false);
    db.map(&mut pt, SIGMA0, 0x5000, B, 0x2000, 12, Rights::RWX)
        .unwrap(); // B's page replaced
    // C's own flush reported (and consumed) C's status; B's replacement parked B's with A.
    assert_eq!(
        db.unmap(&mut pt, A, 0x1000, 12, Rights::NONE, false),
        Ok(Rights::R)
    );
    // Removing reports the status of what it removes.
    db.map(&mut pt, A, 0x1000, D, 0x1000, 12, Rights::RWX)
        .unwrap();
    pt.touch(D, 0x1000, true);
    assert_eq!(
        db.unmap(&mut pt, A, 0x1000, 12, Rights::RWX, false),
        Ok(Rights::RW)
    );
    ok(&db, &pt);
}

#[test]
fn deleting_a_space_flushes_everything_in_it() {
    let mut s = slab(64);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    chain(&mut db, &mut pt);
    db.map(
        &mut pt,
        SIGMA0,
        0x20_0000,
        B,
        0x7fff_ffe0_0000,
        21,
        Rights::RWX,
    )
    .unwrap();
    db.map(&mut pt, B, 0x7fff_ffe0_0000, C, 0x20_0000, 21, Rights::RWX)
        .unwrap();
    db.delete_space(&mut pt, B);
    assert_eq!(db.mappings(B).count(), 0);
    assert_eq!(db.mappings(C).count(), 0);
    assert_eq!(db.mappings(A).count(), 1);
    ok(&db, &pt);
    db.delete_space(&mut pt, A);
    assert!(db.is_empty() && pt.ptes.is_empty());
    ok(&db, &pt);
}

#[test]
fn node_count_returns_to_zero_and_slab_is_reused() {
    let mut s = slab(40);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt::default();
    for round in 0..20u64 {
        for i in 0..8 {
            let p = (round * 8 + i) * K4;
            db.map(&mut pt, SIGMA0, p, A, p, 12, Rights::RWX).unwrap();
            db.map(&mut pt, A, p, B, p, 12, Rights::RW).unwrap();
        }
        db.check().unwrap();
        db.delete_space(&mut pt, SIGMA0);
        assert!(db.is_empty());
        assert_eq!(db.free_nodes(), db.capacity());
    }
}

#[test]
fn quota_refuses_only_the_receiver_and_follows_grants() {
    let mut s = slab(64);
    let mut db = MapDb::new(&mut s, SIGMA0);
    let mut pt = FakePt {
        quota: Some(4),
        ..FakePt::default()
    };
    // A gets 4 pages: its quota.
    db.map(&mut pt, SIGMA0, 0x10000, A, 0x10000, 14, Rights::RWX)
        .unwrap();
    assert_counts(&db, &pt, &ALL);
    // One more for A is refused, and nothing changes.
    let (before, pt_before) = (snapshot(&db, &ALL), pt.clone());
    assert_eq!(
        db.map(&mut pt, SIGMA0, 0x20000, A, 0x20000, 12, Rights::RWX),
        Err(MapError::NoMem)
    );
    assert_eq!(snapshot(&db, &ALL), before);
    assert_eq!(
        (pt.ptes.clone(), pt.counts.clone()),
        (pt_before.ptes, pt_before.counts)
    );
    // A, at its quota, can still map to B (B pays), and B to C.
    db.map(&mut pt, A, 0x10000, B, 0x10000, 13, Rights::RWX)
        .unwrap();
    db.map(&mut pt, B, 0x10000, C, 0x10000, 13, Rights::R)
        .unwrap();
    assert_counts(&db, &pt, &ALL);
    assert_eq!(pt.counts[&B.0], 2);
    // Mapping over pages it holds costs nothing: at its quota, A can still have its pages
    // re-mapped (a pager upgrading rights, or replacing a page by another).
    db.unmap(&mut pt, A, 0x10000, 14, Rights::W, false).unwrap();
    db.map(&mut pt, SIGMA0, 0x10000, A, 0x10000, 14, Rights::RWX)
        .unwrap();
    db.map(&mut pt, SIGMA0, 0x30000, A, 0x10000, 12, Rights::R)
        .unwrap();
    assert_counts(&db, &pt, &ALL);
    assert_eq!(pt.counts[&A.0], 4);
    // Replacing A's page at 0x10000 took what B and C derived from it: B holds one page.
    assert_eq!((pt.counts[&B.0], pt.counts[&C.0]), (1, 1));
    // A grant moves the charge: B's page goes to D.
    db.grant(&mut pt, B, 0x10000, D, 0x40000, 13, Rights::RWX)
        .unwrap();
    assert_counts(&db, &pt, &ALL);
    assert_eq!((pt.counts[&B.0], pt.counts[&D.0]), (0, 1));
    // Unmapping gives quota back: A flushes one page and can take another.
    db.unmap(&mut pt, A, 0x10000, 12, Rights::RWX, true)
        .unwrap();
    db.map(&mut pt, SIGMA0, 0x20000, A, 0x20000, 12, Rights::RWX)
        .unwrap();
    assert_counts(&db, &pt, &ALL);
    ok(&db, &pt);
    for sp in ALL.iter().rev() {
        db.delete_space(&mut pt, *sp);
    }
    assert!(pt.counts.values().all(|&c| c == 0));
    assert_eq!(db.len(), 0);
}
