//! Privilege (spec 5 table, 5.6, 5.10, 5.11; decisions 003): the root's space is privileged
//! (ProcessorControl on processor 0 → 1, other processors → ErrInvalidParam; MemoryControl
//! with attribute 0 → 1, other attributes → ErrInvalidParam), and so is every thread of it; a
//! thread in a new space is not: ThreadControl, SpaceControl, ProcessorControl, MemoryControl
//! → ErrNoPrivilege, Schedule only on threads it is the scheduler of and not above its own
//! priority, ExchangeRegisters only in its own space.
//!
//! Thread ids, root UTCB slots and stacks come from each check's [`Cx`]; the ids the helpers
//! need are passed in [`IDS`].

use core::sync::atomic::{AtomicU64, Ordering};

use abi::{Fpage, ThreadId};
use l4::syscall::{self, ExregsState};
use l4::utcb;

use super::util::{self, NEW_UTCB_AREA, kill, root, set_prio, state_of, tc};
use crate::conformance::{Check, Cx, start_local};

/// The check functions.
pub const CHECKS: &[Check] = &[
    Check {
        name: "privilege.root",
        run: privileged_root,
    },
    Check {
        name: "privilege.root_space_thread_privileged",
        run: root_space_thread,
    },
    Check {
        name: "privilege.unprivileged",
        run: unprivileged,
    },
];

/// Ids for the helpers of the running check: [0] the child's victim `z`, [1] a probe id that
/// never exists (child), [2] a probe id that never exists (worker).
static IDS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

fn id(i: usize) -> ThreadId {
    ThreadId::from_raw(IDS[i].load(Ordering::SeqCst))
}

fn pack(r: u64, e: u64) -> u64 {
    (r << 32) | (e & 0xFFFF_FFFF)
}

fn clear_error() {
    utcb::write(abi::utcb::ERROR_CODE, 0);
}

/// The unprivileged child (thread BASE, new space; scheduler of thread BASE + 1).
extern "C" fn child() -> ! {
    let me = utcb::my_global_id();
    let z = id(0);
    let probe = id(1);
    let mut w = [0u64; 12];
    clear_error();
    let r = syscall::thread_control(probe, probe, me, ThreadId::NIL, u64::MAX);
    w[0] = pack(r, utcb::error_code());
    clear_error();
    let r = syscall::thread_control(z, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX);
    w[1] = pack(r, utcb::error_code());
    clear_error();
    let (r, _) = syscall::space_control(
        me,
        0,
        util::kip_fpage(),
        util::new_utcb_fpage(),
        ThreadId::NIL,
    );
    w[2] = pack(r, utcb::error_code());
    clear_error();
    let r = syscall::processor_control(0, u64::MAX, u64::MAX, u64::MAX);
    w[3] = pack(r, utcb::error_code());
    clear_error();
    utcb::set_mr(0, Fpage::new_log2(NEW_UTCB_AREA - 0x1000, 12).raw());
    let r = syscall::memory_control(0, [0; 4]);
    w[4] = pack(r, utcb::error_code());
    clear_error();
    let (r, _) = syscall::schedule(root(), u64::MAX, u64::MAX, 10, u64::MAX);
    w[5] = pack(r, utcb::error_code());
    clear_error();
    let (r, _) = syscall::schedule(me, u64::MAX, u64::MAX, 50, u64::MAX);
    w[6] = pack(r, utcb::error_code());
    clear_error();
    let (r, _) = syscall::schedule(z, u64::MAX, u64::MAX, 50, u64::MAX);
    w[7] = pack(r, utcb::error_code());
    clear_error();
    let (r, _) = syscall::schedule(z, u64::MAX, u64::MAX, 150, u64::MAX);
    w[8] = pack(r, utcb::error_code());
    clear_error();
    let (r, _) = syscall::exchange_registers(
        root(),
        ExregsState {
            control: 1 << 9,
            ..Default::default()
        },
    );
    w[9] = pack(r.raw(), utcb::error_code());
    let (r, _) = syscall::exchange_registers(me, ExregsState::default());
    w[10] = r.raw();
    let t0 = syscall::system_clock();
    syscall::thread_switch(ThreadId::NIL);
    w[11] = (syscall::system_clock() >= t0) as u64;
    util::report(&w);
    util::park()
}

static W_PC: AtomicU64 = AtomicU64::new(0);
static W_TC: AtomicU64 = AtomicU64::new(0);

/// A second thread of the root's space: privileged as well.
extern "C" fn worker() -> ! {
    let r = syscall::processor_control(0, u64::MAX, u64::MAX, u64::MAX);
    W_PC.store(r + 1, Ordering::SeqCst);
    let probe = id(2);
    let me = utcb::my_global_id();
    let a = syscall::thread_control(probe, me, me, ThreadId::NIL, u64::MAX);
    let b = syscall::thread_control(probe, ThreadId::NIL, ThreadId::NIL, ThreadId::NIL, u64::MAX);
    W_TC.store((a << 1 | b) + 1, Ordering::SeqCst);
    util::park()
}

/// The privileged root: ProcessorControl and MemoryControl.
fn privileged_root(s: &mut Cx) {
    clear_error();
    s.check_eq(
        "privilege.processor_control_cpu0",
        syscall::processor_control(0, u64::MAX, u64::MAX, u64::MAX),
        1,
    );
    s.check_eq(
        "privilege.processor_control_cpu0_frequencies_ignored",
        syscall::processor_control(0, 1_000_000, 100_000, 1200),
        1,
    );
    clear_error();
    let r = syscall::processor_control(1, u64::MAX, u64::MAX, u64::MAX);
    s.check_eq(
        "privilege.processor_control_cpu1_invalid_param",
        (r, utcb::error_code()),
        (0, 5),
    );
    let page = util::image().0;
    utcb::set_mr(0, Fpage::new_log2(page, 12).raw());
    clear_error();
    let r = syscall::memory_control(0, [0; 4]);
    s.check_eq(
        "privilege.memory_control_attribute0",
        (r, utcb::error_code()),
        (1, 0),
    );
    utcb::set_mr(0, Fpage::new_log2(page, 12).raw());
    clear_error();
    let r = syscall::memory_control(0, [3, 0, 0, 0]);
    s.check_eq(
        "privilege.memory_control_other_attribute_invalid_param",
        (r, utcb::error_code()),
        (0, 5),
    );
}

/// A second thread of the root's space is privileged too.
fn root_space_thread(s: &mut Cx) {
    W_PC.store(0, Ordering::SeqCst);
    W_TC.store(0, Ordering::SeqCst);
    let probe = s.thread();
    IDS[2].store(probe.raw(), Ordering::SeqCst);
    let wk = s.thread();
    let (loc, sp) = (s.slot(), s.stack());
    let ok = start_local(wk, loc, sp, Some(100), worker);
    util::wait_until(|| W_PC.load(Ordering::SeqCst) == 2 && W_TC.load(Ordering::SeqCst) == 4);
    s.check(
        "privilege.root_space_thread_privileged",
        ok && W_PC.load(Ordering::SeqCst) == 2 && W_TC.load(Ordering::SeqCst) == 4,
        format_args!(
            "processor control {} thread control {}",
            W_PC.load(Ordering::SeqCst),
            W_TC.load(Ordering::SeqCst)
        ),
    );
    kill(wk);
}

/// An unprivileged thread in a new space: every privileged call refused.
fn unprivileged(s: &mut Cx) {
    let me = root();
    let c = s.thread();
    let z = s.thread();
    let probe = s.thread();
    let sp = s.stack();
    IDS[0].store(z.raw(), Ordering::SeqCst);
    IDS[1].store(probe.raw(), Ordering::SeqCst);
    if !util::ensure_pager() {
        s.check("privilege.pager_thread_up", false, format_args!(""));
        return;
    }
    let made = util::new_space(c).is_ok()
        && util::activate_in(c, c, 0) == (1, 0)
        && tc(z, me, c, ThreadId::NIL, u64::MAX) == (1, 0);
    set_prio(c, 100);
    let st = util::pager_start(c, util::entry(child), sp);
    let rep = util::receive_report(c, 3000);
    s.check(
        "privilege.unprivileged_child_reports",
        made && st == Ok(0) && rep.is_ok(),
        format_args!("made {made} start {st:?} {rep:x?}"),
    );
    let w = rep.map(|(w, _)| w).unwrap_or([u64::MAX; 12]);
    let no_priv = pack(0, 1);
    s.check_eq(
        "privilege.unprivileged_thread_control_create",
        w[0],
        no_priv,
    );
    s.check_eq(
        "privilege.unprivileged_thread_control_delete",
        w[1],
        no_priv,
    );
    s.check_eq("privilege.unprivileged_delete_left_target", state_of(z), 1);
    s.check_eq("privilege.unprivileged_space_control", w[2], no_priv);
    s.check_eq("privilege.unprivileged_processor_control", w[3], no_priv);
    s.check_eq("privilege.unprivileged_memory_control", w[4], no_priv);
    s.check_eq(
        "privilege.unprivileged_schedule_not_scheduler",
        w[5],
        no_priv,
    );
    s.check_eq(
        "privilege.unprivileged_schedule_self_not_scheduler",
        w[6],
        no_priv,
    );
    s.check_eq("privilege.scheduler_may_schedule", w[7] >> 32, 1);
    s.check_eq("privilege.scheduler_prio_above_own_refused", w[8], no_priv);
    s.check_eq(
        "privilege.unprivileged_exregs_other_space",
        w[9],
        pack(0, 2),
    );
    s.check_eq(
        "privilege.unprivileged_exregs_own_thread",
        w[10],
        NEW_UTCB_AREA + 0x200,
    );
    s.check_eq("privilege.unprivileged_clock_and_thread_switch", w[11], 1);
    kill(z);
    kill(c);
}
