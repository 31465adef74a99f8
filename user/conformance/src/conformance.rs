//! The conformance framework: named checks, one console line each, a registry of check
//! functions runnable alone and by name, the resources a check allocates, and a summary.
//!
//! Output format (judged by the test harness, docs/conventions.md):
//! `check <name> ... ok`, `check <name> ... FAILED: <detail>`, and at the end
//! `conformance: done (<n> passed, <m> failed)`, followed by KDB_Enter `exit-success` (no
//! failures) or `exit-failure`.
//!
//! **Registry.** [`crate::tests::ALL`] lists the modules (one per system call or topic, in
//! `tests/`); each module is a list of [`Check`]s: a name and a `fn(&mut Cx)`. A check
//! function observes one scenario and prints one `check` line per fact it verifies (the
//! exception message's tag, vector and RAX are three lines of one function); its name is
//! the common prefix of its lines (`ipc.cancel` prints `ipc.cancel_receive`, ...). Modules
//! not yet split have a single check function named like the module that runs all of them.
//!
//! **Resources.** A check gets a [`Cx`]: it reports through [`Cx::check`] / [`Cx::check_eq`]
//! and allocates thread ids ([`Cx::thread`], [`Cx::thread_once`], [`Cx::thread_block`]),
//! root UTCB slots ([`Cx::slot`]), stacks ([`Cx::stack`]) and free virtual ranges of the
//! root's space ([`Cx::range`]) there instead of by convention. When the function returns,
//! the runner deletes every thread it allocated (in reverse order; deleting the first thread
//! of a space deletes the space) and unmaps its ranges, so the next check starts from a clean
//! system whatever ran before.
//!
//! **Selection** (the root server's command line: `conformance [word...]`): without words,
//! every check in registry order. A word that is an option: `reverse` (the whole list
//! backwards), `shuffle=<seed>` (a seeded permutation), `repeat=<n>` (the selected list n
//! times: a check leaves nothing behind that would change its next run), `list` (print the
//! names, run nothing). Any other word selects the checks whose name starts with it, every
//! check of a module of that name, and the check whose lines it names (`ipc.cancel_send` runs
//! `ipc.cancel`; for a module not yet split, its whole function). No match: `exit-failure`.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::{Fpage, Rights, ThreadId};
use l4::syscall;
use l4::{kip, println, utcb};

use crate::tests::util;

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

/// One check function of the registry.
pub struct Check {
    /// `<module>.<scenario>`: the common prefix of the `check` lines it prints.
    pub name: &'static str,
    /// The function; it reports through its [`Cx`].
    pub run: fn(&mut Cx),
}

/// A test module of the registry: its name and its check functions in run order.
pub struct Module {
    /// The module's name (`ipc`), also a selection word.
    pub name: &'static str,
    /// Its check functions.
    pub checks: &'static [Check],
}

// ---------------------------------------------------------------------------------------
// Resources.

/// First thread number (above UserBase) handed out by [`Cx::thread`]; the range up to
/// [`THREADS_END`] belongs to the allocator alone (`found_by_fuzz`, not yet converted, uses
/// fixed numbers below 0x8000, and the fuzzers' victims numbers from 0x1_0000 up).
pub const THREADS_BASE: u64 = 0x8000;
/// End of the allocator's thread numbers.
pub const THREADS_END: u64 = 0x1_0000;
/// Blocks of consecutive thread numbers handed out by [`Cx::thread_block`]:
/// `BLOCKS_BASE..BLOCKS_END` (above UserBase; clear of the fuzzers' 0x1_0000..0x1_FFFF and
/// 0x3_0000.., below the kernel's limit of 2^18).
pub const BLOCKS_BASE: u64 = 0x2_0000;
/// End of the block numbers.
pub const BLOCKS_END: u64 = 0x3_0000;
/// Root UTCB slots handed out by [`Cx::slot`]: `SLOTS_BASE..SLOTS_BASE + SLOTS_N` (the
/// module not yet converted uses fixed slots from 0x40 up, the root thread slot 0).
pub const SLOTS_BASE: u64 = 0x10;
/// Number of allocatable slots.
pub const SLOTS_N: u64 = 0x30;
/// Virtual window of the root's space handed out by [`Cx::range`] (free of the image, the
/// fixed windows of the other modules, the UTCB areas and the KIP).
pub const RANGES_BASE: u64 = 0x4000_0000;
/// End of that window.
pub const RANGES_END: u64 = 0x5000_0000;

/// Size of one allocatable stack.
pub const STACK: usize = 16 * 1024;
/// Number of allocatable stacks.
pub const STACKS_N: usize = 16;

#[repr(C, align(4096))]
struct Stacks([[u8; STACK]; STACKS_N]);
/// The stacks of [`Cx::stack`]; in the image, so the test pager can map them into new
/// spaces, and prefaulted by `util::prepare`.
static mut STACKS: Stacks = Stacks([[0; STACK]; STACKS_N]);

/// Next thread number of [`Cx::thread`]; never reused in a run (a fresh id is never stale).
static NEXT_THREAD: AtomicU64 = AtomicU64::new(THREADS_BASE);

/// Most threads / ranges one check may allocate.
const MAX_THREADS: usize = 32;
const MAX_RANGES: usize = 8;

/// What a check function gets: the counts and its resources, released when it returns.
pub struct Cx<'a> {
    suite: &'a mut Suite,
    name: &'static str,
    threads: [ThreadId; MAX_THREADS],
    nthreads: usize,
    slots_used: u64,
    stacks_used: usize,
    block_next: u64,
    ranges: [Fpage; MAX_RANGES],
    nranges: usize,
    range_next: u64,
}

impl<'a> Cx<'a> {
    /// A context with nothing allocated for the check function `name`.
    pub fn new(suite: &'a mut Suite, name: &'static str) -> Self {
        Cx {
            suite,
            name,
            threads: [ThreadId::NIL; MAX_THREADS],
            nthreads: 0,
            slots_used: 0,
            stacks_used: 0,
            block_next: BLOCKS_BASE,
            ranges: [Fpage::NIL; MAX_RANGES],
            nranges: 0,
            range_next: RANGES_BASE,
        }
    }

    /// The name of the running check function.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Records one check line (see [`Suite::check`]).
    pub fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments<'_>) -> bool {
        self.suite.check(name, ok, detail)
    }

    /// `check` for an equality.
    pub fn check_eq<T: PartialEq + fmt::Debug>(&mut self, name: &str, got: T, want: T) -> bool {
        self.suite.check_eq(name, got, want)
    }

    /// The counts, for the modules that still take a [`Suite`].
    pub fn suite(&mut self) -> &mut Suite {
        self.suite
    }

    /// A fresh global thread id (version 1) that no other check uses; deleted when the
    /// check returns (whatever the check made of it: a thread, the first thread of a space).
    pub fn thread(&mut self) -> ThreadId {
        assert!(self.nthreads < MAX_THREADS, "conformance: too many threads");
        let n = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
        assert!(n < THREADS_END, "conformance: thread numbers exhausted");
        let t = ThreadId::global(kip::thread_info().user_base() + n, 1);
        self.threads[self.nthreads] = t;
        self.nthreads += 1;
        t
    }

    /// Like [`Cx::thread`], but the same id on every run of the check that passes the same
    /// `cell` (fresh on the first): for a partner whose identity a server remembers across
    /// runs, such as sigma0, which gives a page only to the thread that first got it.
    pub fn thread_once(&mut self, cell: &'static AtomicU64) -> ThreadId {
        let raw = cell.load(Ordering::Relaxed);
        if raw == 0 {
            let t = self.thread();
            cell.store(t.raw(), Ordering::Relaxed);
            return t;
        }
        assert!(self.nthreads < MAX_THREADS, "conformance: too many threads");
        let t = ThreadId::from_raw(raw);
        self.threads[self.nthreads] = t;
        self.nthreads += 1;
        t
    }

    /// The first of `n` consecutive thread numbers (above UserBase) no other check uses now,
    /// for checks that make thousands of threads. Unlike [`Cx::thread`] these are not deleted
    /// for the check: it must delete what it made (the numbers are handed out again to the
    /// next check).
    pub fn thread_block(&mut self, n: u64) -> u64 {
        let first = self.block_next;
        assert!(
            first + n <= BLOCKS_END,
            "conformance: thread blocks exhausted"
        );
        self.block_next = first + n;
        first
    }

    /// A free UTCB location in the root's UTCB area (for a thread of the root's space),
    /// free again when the check returns (its threads are deleted then).
    pub fn slot(&mut self) -> u64 {
        let i = (!self.slots_used).trailing_zeros() as u64;
        assert!(i < SLOTS_N, "conformance: UTCB slots exhausted");
        self.slots_used |= 1 << i;
        util::utcb_slot(SLOTS_BASE + i)
    }

    /// The initial stack pointer (top − 8, as after a call) of a stack no other thread uses,
    /// every page touched by the root thread.
    pub fn stack(&mut self) -> u64 {
        assert!(self.stacks_used < STACKS_N, "conformance: stacks exhausted");
        let i = self.stacks_used;
        self.stacks_used += 1;
        // SAFETY: stack `i` is handed out once per check and its threads are deleted before
        // the next check; only its address is taken here, its pages touched by `prefault`.
        let base = unsafe { &raw mut STACKS.0[i] } as *mut u8;
        util::prefault_stack(base, STACK)
    }

    /// The address of a free, size-aligned virtual range of `2^log2` bytes (12..=22) in the
    /// root's space, nothing mapped there; whatever the check maps there (in any space that
    /// got it from the root) is unmapped when the check returns.
    pub fn range(&mut self, log2: u32) -> u64 {
        assert!((12..=22).contains(&log2) && self.nranges < MAX_RANGES);
        let size = 1u64 << log2;
        let a = (self.range_next + size - 1) & !(size - 1);
        assert!(
            a + size <= RANGES_END,
            "conformance: address ranges exhausted"
        );
        self.range_next = a + size;
        self.ranges[self.nranges] = Fpage::new_log2(a, log2 as u64);
        self.nranges += 1;
        a
    }

    /// A new thread of the root's space (pager: the root, which never serves: it must not
    /// fault) with a fresh id, UTCB slot and stack, started at `f`; priority `prio` (None:
    /// the default). NIL if ThreadControl failed (ErrorCode set).
    pub fn spawn_local(&mut self, prio: Option<u64>, f: extern "C" fn() -> !) -> ThreadId {
        let t = self.thread();
        let (loc, sp) = (self.slot(), self.stack());
        if start_local(t, loc, sp, prio, f) {
            t
        } else {
            ThreadId::NIL
        }
    }

    /// Deletes every thread the check allocated (newest first) and unmaps its ranges.
    fn release(&mut self) {
        for t in self.threads[..self.nthreads].iter().rev() {
            util::kill(*t);
        }
        for f in self.ranges[..self.nranges].iter() {
            // All rights revoked (flush: in the root's space too, and in every space that
            // got a page of the range from there).
            utcb::set_mr(0, f.with_rights(Rights::FULL).raw());
            syscall::unmap(0x40);
        }
        self.nthreads = 0;
        self.nranges = 0;
        self.slots_used = 0;
        self.stacks_used = 0;
        self.block_next = BLOCKS_BASE;
        self.range_next = RANGES_BASE;
    }
}

/// Creates `t` in the root's space (pager: the root) with its UTCB at `loc`, sets its
/// priority (unless None) and starts it at `f` with stack pointer `sp`. False (ErrorCode set)
/// if ThreadControl failed. For a check that re-creates one of its threads under the same id.
pub fn start_local(
    t: ThreadId,
    loc: u64,
    sp: u64,
    prio: Option<u64>,
    f: extern "C" fn() -> !,
) -> bool {
    let me = util::root();
    if syscall::thread_control(t, me, me, me, loc) != 1 {
        return false;
    }
    if let Some(p) = prio {
        util::set_prio(t, p);
    }
    l4::thread::start(t, sp, util::entry(f));
    true
}

// ---------------------------------------------------------------------------------------
// The runner.

/// Whether word `w` selects check `c` of module `m`.
fn selects(w: &str, m: &Module, c: &Check) -> bool {
    w == m.name || c.name.starts_with(w) || w.starts_with(c.name)
}

/// xorshift64 for `shuffle=<seed>`.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Most check functions in the registry.
const MAX_CHECKS: usize = 1024;

/// Runs the selected checks (see the module documentation for the words), prints the
/// summary and leaves through KDB_Enter.
pub fn run(args: &str) {
    let mut s = Suite {
        passed: 0,
        failed: 0,
    };
    let words = args.split_whitespace().skip(1);
    let is_option = |w: &str| {
        w == "reverse" || w == "list" || w.starts_with("shuffle=") || w.starts_with("repeat=")
    };
    let filters = words.clone().filter(|w| !is_option(w));
    let reverse = words.clone().any(|w| w == "reverse");
    let list = words.clone().any(|w| w == "list");
    let repeat = words
        .clone()
        .find_map(|w| w.strip_prefix("repeat="))
        .map_or(1, |v| v.parse::<u32>().unwrap_or(1).max(1));
    let shuffle = words
        .clone()
        .find_map(|w| w.strip_prefix("shuffle="))
        .map(|v| v.parse::<u64>().unwrap_or(1).max(1));

    // The selected (module, check) pairs in registry order.
    let mut order = [(0u16, 0u16); MAX_CHECKS];
    let mut n = 0;
    for (mi, m) in crate::tests::ALL.iter().enumerate() {
        for (ci, c) in m.checks.iter().enumerate() {
            let wanted =
                filters.clone().next().is_none() || filters.clone().any(|w| selects(w, m, c));
            if wanted {
                assert!(n < MAX_CHECKS, "conformance: too many checks");
                order[n] = (mi as u16, ci as u16);
                n += 1;
            }
        }
    }
    let order = &mut order[..n];
    if reverse {
        order.reverse();
    }
    if let Some(mut seed) = shuffle {
        println!("conformance: shuffled with seed {seed}");
        for i in (1..order.len()).rev() {
            let j = (next(&mut seed) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    let none = n == 0 && !list;
    if none {
        println!("conformance: no check matches");
    }
    let mut last_module = usize::MAX;
    for &(mi, ci) in order.iter().cycle().take(order.len() * repeat as usize) {
        let (m, c) = (
            &crate::tests::ALL[mi as usize],
            &crate::tests::ALL[mi as usize].checks[ci as usize],
        );
        if list {
            println!("conformance: check function {}", c.name);
            continue;
        }
        if mi as usize != last_module {
            println!("conformance: {}", m.name);
            last_module = mi as usize;
        }
        // The image present in the root's space before any thread of a check runs on it.
        util::prepare();
        let mut cx = Cx::new(&mut s, c.name);
        (c.run)(&mut cx);
        cx.release();
    }
    println!(
        "conformance: done ({} passed, {} failed)",
        s.passed, s.failed
    );
    l4::kdb::enter(if s.failed == 0 && !none {
        "exit-success"
    } else {
        "exit-failure"
    });
}
