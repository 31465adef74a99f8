//! The timer heap and the UTCB set against simple models, on random operation sequences.

use std::collections::{BTreeMap, HashSet};

use kcore::timer::TimerHeap;
use kcore::utcb::UtcbSet;
use proptest::prelude::*;

const KEYS: u32 = 64;

#[derive(Debug, Clone)]
enum TimerOp {
    Arm(u32, u64),
    Cancel(u32),
    Expire(u64),
}

fn timer_op() -> impl Strategy<Value = TimerOp> {
    prop_oneof![
        (0..KEYS, 0..1000u64).prop_map(|(k, d)| TimerOp::Arm(k, d)),
        (0..KEYS).prop_map(TimerOp::Cancel),
        (0..1000u64).prop_map(TimerOp::Expire),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn timer_heap_matches_model(ops in proptest::collection::vec(timer_op(), 1..200)) {
        let mut h = Box::new(TimerHeap::<{ KEYS as usize }>::new());
        let mut model: BTreeMap<u32, u64> = BTreeMap::new();
        for op in ops {
            match op {
                TimerOp::Arm(k, d) => {
                    h.arm(k, d);
                    model.insert(k, d);
                }
                TimerOp::Cancel(k) => {
                    prop_assert_eq!(h.cancel(k), model.remove(&k).is_some());
                }
                TimerOp::Expire(now) => {
                    let mut last = 0;
                    while let Some(k) = h.pop_due(now) {
                        let d = model.remove(&k);
                        prop_assert!(d.is_some(), "expired a key not armed");
                        let d = d.unwrap();
                        prop_assert!(d <= now && d >= last, "expiry order");
                        last = d;
                    }
                    prop_assert!(model.values().all(|&d| d > now), "a due timer stayed");
                }
            }
            h.check().map_err(TestCaseError::fail)?;
            prop_assert_eq!(h.len(), model.len());
            for k in 0..KEYS {
                prop_assert_eq!(h.deadline(k), model.get(&k).copied());
            }
            prop_assert_eq!(h.peek().map(|p| p.0), model.values().min().copied());
        }
    }

    #[test]
    fn utcb_set_matches_model(ops in proptest::collection::vec((any::<bool>(), 1..6u64, 0..40u64), 1..300)) {
        let mut s = Box::new(UtcbSet::<64>::new());
        let mut model: HashSet<(u64, u64)> = HashSet::new();
        for (add, space, slot) in ops {
            let loc = 0xBF00_0000 + slot * 0x400;
            if add {
                match s.insert(space, loc) {
                    Ok(fresh) => {
                        prop_assert_eq!(fresh, model.insert((space, loc)));
                    }
                    Err(_) => prop_assert!(model.len() >= 32 && !model.contains(&(space, loc))),
                }
            } else {
                prop_assert_eq!(s.remove(space, loc), model.remove(&(space, loc)));
            }
            prop_assert_eq!(s.len(), model.len());
            for sp in 1..6u64 {
                for sl in 0..40u64 {
                    let l = 0xBF00_0000 + sl * 0x400;
                    prop_assert_eq!(s.contains(sp, l), model.contains(&(sp, l)));
                }
            }
        }
    }
}

/// Arming and expiring in order of deadline, many keys, equal deadlines.
#[test]
fn timer_heap_expires_in_deadline_order() {
    let mut h = Box::new(TimerHeap::<1024>::new());
    for k in 0..1024u32 {
        h.arm(k, ((k * 7919) % 257) as u64);
    }
    let mut last = 0;
    let mut n = 0;
    while let Some(k) = h.pop_due(u64::MAX) {
        let d = ((k * 7919) % 257) as u64;
        assert!(d >= last);
        last = d;
        n += 1;
    }
    assert_eq!(n, 1024);
    assert!(h.is_empty());
}

mod queue_model {
    use std::collections::VecDeque;

    use kcore::queue::{Link, Links, Queue};
    use proptest::prelude::*;

    /// Members 1..=N; links in an array indexed by number.
    struct Table(Vec<Link>);

    impl Links for Table {
        fn link(&mut self, n: u32) -> &mut Link {
            &mut self.0[n as usize]
        }
    }

    fn walk(q: &Queue, t: &Table) -> Vec<u32> {
        let mut v = Vec::new();
        let mut n = q.head;
        while n != 0 {
            v.push(n);
            n = t.0[n as usize].next;
            assert!(v.len() <= 64, "cycle");
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn queue_matches_model(ops in proptest::collection::vec((0..3u8, 1..=16u32), 1..200)) {
            let mut t = Table(vec![Link::default(); 17]);
            let mut q = Queue::EMPTY;
            let mut model: VecDeque<u32> = VecDeque::new();
            for (op, n) in ops {
                let member = model.contains(&n);
                let mut link = t.0[n as usize];
                match op {
                    0 if !member => {
                        q.push_back(n, &mut link, &mut t);
                        model.push_back(n);
                    }
                    1 if !member => {
                        q.push_front(n, &mut link, &mut t);
                        model.push_front(n);
                    }
                    2 if member => {
                        q.remove(&link, &mut t);
                        model.retain(|&m| m != n);
                    }
                    _ => continue,
                }
                t.0[n as usize] = link;
                let order: Vec<u32> = model.iter().copied().collect();
                prop_assert_eq!(walk(&q, &t), order.clone());
                prop_assert_eq!(q.tail, order.last().copied().unwrap_or(0));
                // Backwards too.
                let mut back = Vec::new();
                let mut m = q.tail;
                while m != 0 {
                    back.push(m);
                    m = t.0[m as usize].prev;
                }
                back.reverse();
                prop_assert_eq!(back, order);
            }
        }
    }
}
