//! The conformance framework: named checks, one console line each, and a summary.
//!
//! Output format (judged by the test harness, docs/conventions.md):
//! `check <name> ... ok`, `check <name> ... FAILED: <detail>`, and at the end
//! `conformance: done (<n> passed, <m> failed)`, followed by KDB_Enter `exit-success` (no
//! failures) or `exit-failure`.
//!
//! Checks live in [`crate::tests`], one module per system call or topic; each module has a
//! `pub fn run(s: &mut Suite)`, listed in [`crate::tests::ALL`].

use core::fmt;

use l4::println;

/// Counts of a run.
pub struct Suite {
    passed: u32,
    failed: u32,
}

impl Suite {
    /// Records one check: prints `check <name> ... ok` or `... FAILED: <detail>`.
    pub fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments<'_>) -> bool {
        if ok {
            self.passed += 1;
            println!("check {name} ... ok");
        } else {
            self.failed += 1;
            println!("check {name} ... FAILED: {detail}");
        }
        ok
    }

    /// `check` for an equality, with both values in the detail.
    pub fn check_eq<T: PartialEq + fmt::Debug>(&mut self, name: &str, got: T, want: T) -> bool {
        let ok = got == want;
        self.check(name, ok, format_args!("got {got:x?}, want {want:x?}"))
    }
}

/// Runs every test module (or, with further words on the command line, only the modules whose
/// name is one of them: `conformance lifetime`), prints the summary and leaves through
/// KDB_Enter.
pub fn run(args: &str) {
    let mut s = Suite {
        passed: 0,
        failed: 0,
    };
    let only = args.split_whitespace().skip(1);
    let selected = |name: &str| only.clone().next().is_none() || only.clone().any(|w| w == name);
    for (name, test) in crate::tests::ALL {
        if !selected(name) {
            continue;
        }
        println!("conformance: {name}");
        test(&mut s);
    }
    println!(
        "conformance: done ({} passed, {} failed)",
        s.passed, s.failed
    );
    l4::kdb::enter(if s.failed == 0 {
        "exit-success"
    } else {
        "exit-failure"
    });
}
