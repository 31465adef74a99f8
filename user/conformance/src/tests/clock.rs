//! SystemClock (spec 5.4): microseconds since boot, advancing.

use l4::syscall;

use crate::conformance::{Check, Cx};

/// The check functions (nothing to allocate).
pub const CHECKS: &[Check] = &[
    Check {
        name: "clock.advances",
        run: advances,
    },
    Check {
        name: "clock.monotonic",
        run: monotonic,
    },
];

fn advances(s: &mut Cx) {
    let t0 = syscall::system_clock();
    let mut t1 = t0;
    let mut spins = 0u64;
    while t1 == t0 && spins < 50_000_000 {
        t1 = syscall::system_clock();
        spins += 1;
    }
    s.check(
        "clock.advances",
        t1 > t0,
        format_args!("t0 {t0}, t1 {t1} after {spins} reads"),
    );
}

fn monotonic(s: &mut Cx) {
    let mut prev = syscall::system_clock();
    let mut backwards = 0;
    for _ in 0..1000 {
        let t = syscall::system_clock();
        if t < prev {
            backwards += 1;
        }
        prev = t;
    }
    s.check(
        "clock.monotonic",
        backwards == 0,
        format_args!("{backwards} of 1000 reads went backwards"),
    );
}
