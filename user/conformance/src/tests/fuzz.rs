//! Robustness: every system call entered through its KIP link address with random register
//! values (xorshift64, fixed seeds), a few thousand from an unprivileged thread in a new space
//! and several hundred from the privileged root; and a `syscall` executed outside the stub
//! page (decision 003: not a system call, registers unchanged). The kernel must not fail:
//! the checks pass if the callers come back and the suite continues.
//!
//! Every general register but RSP is random (RBX and RBP too), except: RDI is the UTCB pointer
//! for the four stubs that store MRs through it (Ipc, Lipc, Unmap, MemoryControl: their stub
//! contract, table 4.4); Ipc/Lipc timeouts are zero (so nothing blocks); ids that could name
//! one of the suite's own threads are replaced: the root's destinations are a pool of thread
//! numbers ≥ 0x30000 (deleted afterwards) or random values, and the root never flushes its
//! own pages with Unmap (sigma0 serves its image only to the root thread itself).
//!
//! Threads: the fuzzing child's id and stack from the check's [`Cx`]; the root's pool
//! 0x30000..0x30007 (above the `Cx` ranges), deleted by the check that made it.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::{ThreadId, Time};
use l4::syscall::link;
use l4::{kdb, syscall, utcb};

use super::util::{self, kill_r, root};
use crate::conformance::{Check, Cx};

static TARGET: AtomicU64 = AtomicU64::new(0);
static RBX_VAL: AtomicU64 = AtomicU64::new(0);
static RBP_VAL: AtomicU64 = AtomicU64::new(0);

const CHILD_CALLS: u64 = 3000;
const ROOT_CALLS: u64 = 600;
const POOL: u64 = 0x30000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Registers of one call: rax rcx rdx rsi rdi r8 r9 r10 r11 r12 r13 r14 r15, then rbx, rbp.
type Regs = [u64; 15];

/// Enters stub `l` with `r`.
fn raw_call(l: usize, r: &Regs) {
    TARGET.store(syscall::link_address(l), Ordering::SeqCst);
    RBX_VAL.store(r[13], Ordering::SeqCst);
    RBP_VAL.store(r[14], Ordering::SeqCst);
    // SAFETY: a system call with arbitrary register values through a kernel stub. RSP stays
    // ours; RBX and RBP are loaded from statics and restored from the stack; every other
    // register is declared clobbered. The stubs that store MRs get RDI = our UTCB pointer
    // (the caller guarantees it), so the stub only writes our own UTCB; the kernel itself
    // only writes our UTCB and registers.
    unsafe {
        core::arch::asm!(
            "push rbp",
            "push rbx",
            "mov rbx, qword ptr [rip + {rbx}]",
            "mov rbp, qword ptr [rip + {rbp}]",
            "call qword ptr [rip + {target}]",
            "pop rbx",
            "pop rbp",
            rbx = sym RBX_VAL,
            rbp = sym RBP_VAL,
            target = sym TARGET,
            inout("rax") r[0] => _,
            inout("rcx") r[1] => _,
            inout("rdx") r[2] => _,
            inout("rsi") r[3] => _,
            inout("rdi") r[4] => _,
            inout("r8") r[5] => _,
            inout("r9") r[6] => _,
            inout("r10") r[7] => _,
            inout("r11") r[8] => _,
            inout("r12") r[9] => _,
            inout("r13") r[10] => _,
            inout("r14") r[11] => _,
            inout("r15") r[12] => _,
        );
    }
}

/// Random registers for stub `l`, made safe for the caller; `dest` picks a destination id.
fn regs_for(
    l: usize,
    rng: &mut Rng,
    dest: &mut dyn FnMut(&mut Rng) -> u64,
    root_caller: bool,
) -> Regs {
    let mut r: Regs = core::array::from_fn(|_| rng.next());
    match l {
        link::IPC | link::LIPC => {
            r[4] = utcb::utcb_pointer() as u64;
            r[5] = (Time::ZERO.raw() as u64) << 16 | Time::ZERO.raw() as u64;
            if rng.next() & 3 == 0 {
                r[3] = dest(rng); // to
            }
        }
        link::UNMAP => {
            r[4] = utcb::utcb_pointer() as u64;
            if root_caller {
                r[2] &= !(1 << 6);
            }
        }
        link::MEMORY_CONTROL => r[4] = utcb::utcb_pointer() as u64,
        link::EXCHANGE_REGISTERS => r[0] = dest(rng),
        link::THREAD_CONTROL => {
            r[4] = dest(rng);
            if root_caller {
                // Only pool threads may be created (so that all can be deleted afterwards):
                // for a pool dest the SpaceSpecifier is the dest itself (a new space), another
                // pool thread or random; for any other dest it is random (never existing).
                // Scheduler: us or random; pager: nil, us or random.
                let in_pool = r[4] >> 32 >= POOL && r[4] >> 32 < POOL + 8;
                r[5] = match rng.next() % 3 {
                    0 if in_pool => r[4],
                    1 if in_pool => ThreadId::global(POOL + rng.next() % 8, 1).raw(),
                    _ => r[5] | 0xFFFF_0000_0000_0000,
                };
                if rng.next() & 1 == 0 {
                    r[2] = root().raw();
                }
                r[3] = match rng.next() % 4 {
                    0 | 1 => 0,
                    2 => root().raw(),
                    _ => r[3],
                };
                if rng.next() & 1 == 0 {
                    r[6] &= 0x0000_7FFF_FFFF_FC00;
                }
            }
        }
        link::SPACE_CONTROL => {
            r[4] = dest(rng);
            if rng.next() & 1 == 0 {
                r[2] &= 0x0000_7FFF_FFFF_FFFF; // KIP area inside the user area
                r[5] &= 0x0000_7FFF_FFFF_FFFF; // UTCB area inside the user area
            }
        }
        link::SCHEDULE | link::THREAD_SWITCH => r[4] = dest(rng),
        _ => {}
    }
    r
}

/// A destination for the unprivileged child: random ids in unused ranges, or garbage.
fn child_dest(rng: &mut Rng) -> u64 {
    let x = rng.next();
    match x % 3 {
        0 => util::tid(0x1_0000 + (x >> 48)).raw() | ((x >> 8) & 0xFFFF_0000),
        1 => x | 0xFFFF_0000_0000_0000,
        _ => x,
    }
}

/// A destination for the root: the pool (numbers ≥ 0x30000), random numbers ≥ 0x30000, or
/// values whose number is beyond any thread.
fn root_dest(rng: &mut Rng) -> u64 {
    let x = rng.next();
    match x % 4 {
        0 | 1 => ThreadId::global(POOL + (x >> 8) % 8, 1).raw(),
        2 => ThreadId::global(POOL + 0x100 + (x >> 20) % 0xFF00, (x & 0xFFFF_FFC0) | 1).raw(),
        _ => x | 0xFFFF_0000_0000_0000,
    }
}

/// The unprivileged fuzzing child: CHILD_CALLS random calls, then reports how many returned.
extern "C" fn child() -> ! {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut n = 0;
    for _ in 0..CHILD_CALLS {
        let l = (rng.next() % link::COUNT as u64) as usize;
        let r = regs_for(l, &mut rng, &mut child_dest, false);
        raw_call(l, &r);
        n += 1;
    }
    util::report(&[n, rng.0]);
    util::park()
}

/// The check functions. `kernel_works_after_fuzzing` runs both fuzzers itself first.
pub const CHECKS: &[Check] = &[
    Check {
        name: "fuzz.syscall_outside_stub_page_ignored",
        run: syscall_outside_stub_page,
    },
    Check {
        name: "fuzz.unprivileged_random_syscalls_survived",
        run: unprivileged,
    },
    Check {
        name: "fuzz.root",
        run: root_fuzz,
    },
    Check {
        name: "fuzz.kernel_works_after_fuzzing",
        run: kernel_works_after_fuzzing,
    },
];

/// `syscall` outside the stub page: not a system call, registers unchanged.
fn syscall_outside_stub_page(cx: &mut Cx) {
    let v: [u64; 11] = core::array::from_fn(|i| 0x0123_4567_89AB_0000 + i as u64 * 0x1111);
    let mut o = v;
    // SAFETY: executes `syscall` in our own text; the kernel must return without effect.
    // RCX and R11 are overwritten by the instruction itself.
    unsafe {
        core::arch::asm!(
            "syscall",
            inout("rax") o[0], inout("rdx") o[1], inout("rsi") o[2], inout("rdi") o[3],
            inout("r8") o[4], inout("r9") o[5], inout("r10") o[6], inout("r12") o[7],
            inout("r13") o[8], inout("r14") o[9], inout("r15") o[10],
            out("rcx") _, out("r11") _,
        );
    }
    cx.check_eq("fuzz.syscall_outside_stub_page_ignored", o, v);
}

/// The child's start (Err: step, code) and report (Err: IPC ErrorCode).
type ChildRun = (Result<(), (u64, u64)>, Result<([u64; 12], ThreadId), u64>);

/// Runs the unprivileged child (id and stack from `cx`) in a new space to its report and
/// deletes it: whether it started, and its report (the number of calls that returned).
fn fuzz_child(cx: &mut Cx) -> ChildRun {
    let c = cx.thread();
    let sp = cx.stack();
    let st = util::spawn_in_new_space_at(c, child, sp);
    let rep = util::receive_report(c, 60_000);
    kill_r(c);
    (st, rep)
}

/// The unprivileged child's CHILD_CALLS random calls all return.
fn unprivileged(cx: &mut Cx) {
    let t0 = syscall::system_clock();
    let (st, rep) = fuzz_child(cx);
    let ms = (syscall::system_clock() - t0) / 1000;
    l4::println!(
        "fuzz: {} random calls from an unprivileged space took {} ms",
        CHILD_CALLS,
        ms
    );
    cx.check(
        "fuzz.unprivileged_random_syscalls_survived",
        st.is_ok() && matches!(rep, Ok((w, _)) if w[0] == CHILD_CALLS),
        format_args!(
            "start {st:?} report {rep:x?} (pager bad faults {} last {:#x})",
            util::PAGER_BAD_FAULTS.load(Ordering::SeqCst),
            util::PAGER_BAD_ADDR.load(Ordering::SeqCst)
        ),
    );
}

/// What the root's fuzzing left: calls that returned, whether every pool thread could be
/// deleted (ErrorCode of the first failure), kernel frames in use before and after.
struct RootFuzz {
    returned: u64,
    pool_deleted: Result<(), u64>,
    frames: (u64, u64),
}

/// The root's ROOT_CALLS random calls, then its pager and priority restored and the pool
/// deleted.
fn fuzz_root() -> RootFuzz {
    util::prepare();
    let before = kdb::kernel_frames_in_use();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let pager = utcb::pager();
    let mut n = 0;
    for _ in 0..ROOT_CALLS {
        let l = (rng.next() % link::COUNT as u64) as usize;
        let r = regs_for(l, &mut rng, &mut root_dest, true);
        raw_call(l, &r);
        n += 1;
    }
    utcb::set_pager(pager);
    util::set_prio(root(), 255);
    let mut pool_deleted = Ok(());
    for k in 0..8 {
        if kill_r(ThreadId::global(POOL + k, 1)) != 1 && pool_deleted.is_ok() {
            pool_deleted = Err(utcb::error_code());
        }
    }
    util::prepare();
    let after = kdb::kernel_frames_in_use();
    RootFuzz {
        returned: n,
        pool_deleted,
        frames: (before, after),
    }
}

/// The root's random calls return, its pool threads are deleted and the kernel memory they
/// took returns.
fn root_fuzz(cx: &mut Cx) {
    let r = fuzz_root();
    cx.check_eq("fuzz.root_random_syscalls_survived", r.returned, ROOT_CALLS);
    cx.check(
        "fuzz.root_pool_deleted",
        r.pool_deleted.is_ok(),
        format_args!("error {:?}", r.pool_deleted),
    );
    cx.check_eq(
        "fuzz.root_fuzz_kernel_memory_returns",
        r.frames.1,
        r.frames.0,
    );
}

/// After both fuzzers ran (here, whatever ran before), the kernel still creates and deletes a
/// thread, and the pager still serves a new space.
fn kernel_works_after_fuzzing(cx: &mut Cx) {
    const NAME: &str = "fuzz.kernel_works_after_fuzzing";
    let (st, rep) = fuzz_child(cx);
    let r = fuzz_root();
    if st.is_err() || rep.is_err() || r.returned != ROOT_CALLS {
        cx.check(
            NAME,
            false,
            format_args!(
                "fuzzing: child start {st:?} report {rep:x?}, root {}",
                r.returned
            ),
        );
        return;
    }
    let t = cx.thread();
    let sp = cx.stack();
    let ok = util::spawn_in_new_space_at(t, util::child_hello, sp).is_ok()
        && util::receive_report(t, 2000).is_ok();
    cx.check(
        NAME,
        ok && kill_r(t) == 1,
        format_args!("error {}", utcb::error_code()),
    );
}
