//! The IPC fast path (issue 12, decision 004): a guard chain in front of the general system-
//! call dispatch for the Ipc and Lipc stubs.
//!
//! The guards and the state changes are `ipc::fast_send`, shared with the general path's own
//! shortcut `ipc::fast_call`: an untyped message without flags to a user thread that waits in a
//! receive accepting us (not halted), with a receive phase that has a non-zero timeout (from
//! that thread, or open while nobody is queued for us and no interrupt is pending), no
//! propagated message queued for us. At the first other condition (typed items, propagation,
//! a zero receive timeout, a partner not waiting or halted, a kernel or interrupt thread, a
//! thread not activated, the debugger's event trace on: it redirects the entry vector to its
//! own wrapper) the general path runs, having found nothing changed. A higher-priority ready
//! thread is no reason to fall back: the next thread is the scheduler's choice, as in the
//! general path.
//!
//! What the fast path saves is the general path's blocking inside Rust frames: the caller,
//! now `RecvBlocked` exactly as `fast_call` leaves it (queues, timer, closed-receiver list,
//! ready queue), gives up its kernel stack below the trap frame (`schedule::leave_current`)
//! and records as its saved stack pointer [`fast_resume_frame`], a constant frame whose return
//! address is [`fastpath_resume_entry`]. Whoever switches to it next (this fast path, the
//! scheduler after a timeout, an abort, a deletion of the partner, a tunnelled fault) lands
//! there: the thread finishes its receive on a fresh stack (`ipc::fast_finish`: tunnelled
//! faults, the outcome into ErrorCode, RSI = from) and leaves through `trap_return`. A partner
//! blocked that way therefore costs no unwinding of `fast_call` → `block_current` →
//! `schedule` → `switch_to` → `context::switch` frames.
//!
//! In front of all this, the assembly fast path (`fastpath_ipc`, below) takes the case where
//! the partner blocked here too and the ready-queue hand-over applies, without any Rust frame.
//!
//! May touch: the current thread's trap frame and saved stack pointer; everything else through
//! `ipc` and `schedule` — except the assembly path, which writes, exactly as those modules
//! would, the two TCBs' IPC and queue fields, the ready queues and bitmap
//! (`kernel_state::STATE.run`, `LAST_SPACE_USER`), `thread::CURRENT`, the TSS (RSP0, I/O-map base),
//! `ioport::LOADED` and `context::GS_LOADED`.

use abi::thread_id::ThreadId;
use abi::time::Timeouts;
use core::arch::global_asm;

use crate::arch::syscall::stubs_base;
use crate::arch::trap::TrapFrame;
use crate::counters::{self, Event};
use crate::kernel_state::{Kernel, continue_entry, with_kernel};
use crate::thread::IpcWake;
use crate::{ipc, schedule, thread};

global_asm!(
    r#"
    .text
    /* A thread that blocked in the fast path continues here on its next switch-in (reached
       by `switch_stacks`/`load_stack` popping `fast_resume_frame`; RSP points into that
       read-only frame, so nothing is pushed before the stack is reloaded): its own kernel
       stack right below its trap frame. */
    .global fastpath_resume_entry
fastpath_resume_entry:
    movq CURRENT_KSTACK_TOP(%rip), %rsp
    subq ${frame}, %rsp
    movq %rsp, %rdi
    call fastpath_resumed
    jmp trap_return

    .section .rodata.fast_resume_frame, "a"
    .balign 8
    .global fast_resume_frame
fast_resume_frame:
    .quad 0, 0, 0, 0, 0, 0      /* r15, r14, r13, r12, rbp, rbx */
    .quad fastpath_resume_entry
    .text
    "#,
    frame = const crate::arch::trap::TRAP_FRAME_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    static fast_resume_frame: [u64; 7];
}

/// The saved stack pointer of a thread blocked in the fast path.
fn resume_ksp() -> u64 {
    // SAFETY: only the address of the constant frame is taken.
    unsafe { fast_resume_frame.as_ptr() as u64 }
}

/// The system-call entry's dispatch vector (`syscall_dispatch_vector`) while the event trace
/// is off: the fast path for Ipc and Lipc, else (and on every fall-back) the general
/// dispatch.
#[unsafe(no_mangle)]
pub extern "C" fn fastpath_dispatch(f: &mut TrapFrame) {
    counters::count(Event::SyscallEntry);
    // The Ipc (0) and Lipc (1) stub slots. This borrow of the kernel state ends before the
    // general dispatch takes its own (one borrow at a time; and `syscall::dispatch` stays
    // inlined into its one caller).
    if f.rcx.wrapping_sub(stubs_base()) < 512 && with_kernel(|k| general_ipc(k, f)) {
        return;
    }
    crate::syscall::syscall_dispatch(f)
}

/// The IPC of an Ipc/Lipc stub: the fast path, else the general IPC. False, having done
/// nothing, if the thread is not activated (`syscall_dispatch` ignores the call).
#[inline(always)]
fn general_ipc(k: &mut Kernel, f: &mut TrapFrame) -> bool {
    if !k.current().is_activated() {
        return false;
    }
    mrs_in(k.current(), f);
    if !try_ipc(k, f) {
        return false;
    }
    // The fast path does not apply. `syscall_dispatch` would try `ipc::fast_call`, whose
    // guards are the ones that just failed on the same state: straight to the general IPC
    // instead (what `syscall_dispatch` does after its shortcut).
    let r = ipc::sys_ipc(
        k,
        ThreadId::from_raw(f.rsi),
        ThreadId::from_raw(f.rdx),
        Timeouts(f.r8 & 0xFFFF_FFFF),
    );
    f.rsi = r.from.raw();
    schedule::finish(k, schedule::Next::Stay);
    crate::profile::mark(crate::profile::Point::Resumed);
    mrs_out(k.current(), f);
    true
}

unsafe extern "C" {
    static ipc_stub_return: u8;
    static lipc_stub_return: u8;
}

/// Whether a user RIP is the return address of the Ipc or Lipc stub's `syscall`.
fn is_ipc_return(rip: u64) -> bool {
    // SAFETY: only the addresses of the stub labels are taken.
    let (ipc, lipc) = unsafe {
        (
            &ipc_stub_return as *const u8 as u64,
            &lipc_stub_return as *const u8 as u64,
        )
    };
    rip == ipc || rip == lipc
}

/// An Ipc or Lipc enters the general path: MR0..MR7, which the stubs leave in R9, RAX, RBX,
/// R10, R12..R15, into the caller's UTCB (what the stubs did before the `syscall` when they
/// still went through memory), for the rest of the kernel.
pub fn mrs_in(t: &Tcb, f: &TrapFrame) {
    if !t.is_activated() {
        return;
    }
    // SAFETY: the kernel view of an activated thread's UTCB; MR0..MR7 at 0x200; the thread
    // is in the kernel, nobody else uses these words now.
    let m = unsafe { &mut *((t.utcb + 0x200) as *mut [u64; 8]) };
    (m[0], m[1], m[2], m[3]) = (f.r9, f.rax, f.rbx, f.r10);
    (m[4], m[5], m[6], m[7]) = (f.r12, f.r13, f.r14, f.r15);
}

/// An Ipc or Lipc returns through the general path: MR0..MR7 from the UTCB into the
/// registers (what the stubs did after the `syscall`), if the thread returns to the stub at
/// all (an ExchangeRegisters may have sent it elsewhere: then its registers stay as they were,
/// as they did when the stub reloaded them).
pub fn mrs_out(t: &Tcb, f: &mut TrapFrame) {
    mrs_out_of(t.utcb, f)
}

/// [`mrs_out`] for the thread whose UTCB (kernel address, 0: not activated) is `utcb`.
fn mrs_out_of(utcb: u64, f: &mut TrapFrame) {
    if utcb == 0 || !is_ipc_return(f.rip) {
        return;
    }
    // SAFETY: the kernel view of an activated thread's UTCB; MR0..MR7 at 0x200; the thread is
    // not running, nobody else uses these words now.
    let m = unsafe { &*((utcb + 0x200) as *const [u64; 8]) };
    (f.r9, f.rax, f.rbx, f.r10) = (m[0], m[1], m[2], m[3]);
    (f.r12, f.r13, f.r14, f.r15) = (m[4], m[5], m[6], m[7]);
}

/// Returns only if the fast path does not apply (nothing changed): true if the general IPC
/// is to run, false if the thread is not activated (`syscall_dispatch` ignores the call).
#[inline(never)]
fn try_ipc(k: &mut Kernel, f: &mut TrapFrame) -> bool {
    #[cfg(feature = "invariants")]
    crate::invariants::running_unblocked(
        k.current(),
        "entered the IPC fast path",
        core::panic::Location::caller(),
    );
    if !k.current().is_activated() {
        return false;
    }
    let Some((deadline, dest)) = ipc::fast_send(
        k,
        ThreadId::from_raw(f.rsi),
        ThreadId::from_raw(f.rdx),
        Timeouts(f.r8 & 0xFFFF_FFFF),
    ) else {
        return true;
    };
    counters::count(Event::FastPath);
    schedule::block_prepare(k, deadline);
    // If the partner runs next and blocked here too, all that is left of its receive is
    // what `fastpath_resumed` would do with a plain delivery: RSI = from (no tunnelled
    // fault, no error; it is the highest-priority ready thread, so no preemption).
    schedule::leave_current(k, resume_ksp(), dest, |d| {
        if d.wake != IpcWake::Done {
            return false;
        }
        let (from, utcb) = (d.ipc_from.raw(), d.utcb);
        let f = d.frame();
        f.rsi = from;
        mrs_out_of(utcb, f);
        true
    })
}

/// A thread that blocked in the fast path runs again (on a fresh stack, below `f`).
#[unsafe(no_mangle)]
extern "C" fn fastpath_resumed(f: &mut TrapFrame) {
    // A fresh frame after a switch: the borrow of the thread that switched here goes on.
    continue_entry(|k| {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let r = ipc::fast_finish(k, unsafe { thread::current() });
        f.rsi = r.from.raw();
        schedule::finish(k, schedule::Next::Stay);
        mrs_out(k.current(), f);
    });
    crate::profile::mark(crate::profile::Point::Resumed);
}
// ---- the assembly fast path (issue 12, decision 004) ----
//
// `syscall_entry` jumps to `fastpath_ipc` for the `syscall` of the Ipc and Lipc stubs once the
// caller's complete `TrapFrame` is on its kernel stack (while the debugger's event trace is
// off). It takes the common case of `ipc::fast_send` whose outcome is a direct return to the
// partner, and does exactly what `try_ipc` below (`fast_send`, `wake_handing_over`,
// `block_prepare`, `leave_current`, `prepare_switch`, `load_cpu`) does for it, in far fewer
// instructions. Every guard falls back to `fastpath_dispatch` (the Rust path) having changed
// nothing but scratch registers (the user's values are in the frame):
// * the caller is activated; receive timeout never (finite and zero: Rust path); `to` a
//   global id (local ids: Rust path) of an existing user thread, exact version; FromSpecifier
//   = `to` (closed) or anythread (open);
// * the tag in MR0 has no typed words and no flags;
// * the partner is not halted, `RecvBlocked` accepting us (from anythread, our global id
//   with no propagation pending, or anylocalthread from our space);
// * open: nobody in our send queue and no interrupt pending; closed: we are on no list of
//   closed receivers; no propagated message queued for us;
// * the partner blocked in the fast path (its saved stack pointer is `fast_resume_frame`),
//   on no list of closed receivers but ours (the reply to its Call);
// * the ready-queue hand-over applies (same priority, we are the only ready thread of it)
//   and no higher priority is ready, so the scheduler's choice is the partner;
// * the FPU's TS bit stays as it is, and a change of space keeps the TSS I/O bitmap in effect.
// The switch then needs no decision the general path would make differently: CR3 only if the
// space changes, the GS base MSR only if it changes (`GS_LOADED`), RSP0 and
// `CURRENT_KSTACK_TOP`, and the partner leaves through `trap_return` (the canonical-RIP check
// for `sysretq` stays there).

use crate::arch::trap::TRAP_FRAME_SIZE;
use crate::thread::{State, Tcb};
use core::mem::offset_of;
use kcore::queue::{Link, Queue};
use kcore::state::Handle;

const fn first_u8<T>(v: &T) -> u8 {
    // SAFETY: const evaluation only; reading an uninitialised byte is a compile error.
    unsafe { *(v as *const T as *const u8) }
}
const fn first_u32<T>(v: &T) -> u32 {
    // SAFETY: as `first_u8`.
    unsafe { *(v as *const T as *const u32) }
}
const fn u64_at<T>(v: &T, i: usize) -> u64 {
    // SAFETY: as `first_u8`.
    unsafe { *(v as *const T as *const u64).add(i) }
}

const ST_READY: u8 = first_u8(&State::Ready);
const ST_RECV_BLOCKED: u8 = first_u8(&State::RecvBlocked {
    from: ThreadId::NIL,
});
/// Offset of `RecvBlocked::from` in `State` (repr(u8): the tag, then the fields).
const ST_FROM: usize = 8;
const _: () = {
    assert!(size_of::<State>() == 16);
    assert!(ST_READY != ST_RECV_BLOCKED);
    let probe = State::RecvBlocked {
        from: ThreadId(0x1234_5678_9ABC_DEF0),
    };
    assert!(u64_at(&probe, 1) == 0x1234_5678_9ABC_DEF0);
    assert!(first_u8(&probe) == ST_RECV_BLOCKED);
};
const WAKE_NONE: u8 = first_u8(&IpcWake::None);
const WAKE_DONE: u8 = first_u8(&IpcWake::Done);
const _: () = assert!(WAKE_NONE != WAKE_DONE);
/// `Option<Handle>::None` as its first 32-bit word (the discriminant: checked below).
const PROP_NONE: u32 = first_u32(&None::<Handle>);
const _: () = assert!(
    first_u32(&Some(Handle {
        no: PROP_NONE,
        generation: PROP_NONE,
    })) != PROP_NONE
);
const _: () = {
    assert!(size_of::<Queue>() == 8);
    assert!(size_of::<[Queue; 256]>() == 256 * 8);
    assert!(size_of::<crate::sync::KernelValue<u64>>() == 8);
    assert!(size_of::<crate::sync::KernelValue<*mut Tcb>>() == 8);
    assert!(size_of::<crate::sync::KernelValue<u32>>() == 4);
    assert!(size_of::<ThreadId>() == 8);
    assert!(size_of::<bool>() == 1);
    assert!(thread::MAX_THREADS.is_power_of_two());
};

/// (asm fast path) The receive deadline (µs) for the Timeouts word of a call whose receive
/// timeout is finite and not zero, as `ipc::fast_send` computes it. Reads the clock only.
#[unsafe(no_mangle)]
extern "C" fn fastpath_deadline(timeouts: u64) -> u64 {
    ipc::deadline(Timeouts(timeouts & 0xFFFF_FFFF).receive()).unwrap_or(u64::MAX)
}

/// (asm fast path) Arms the receive timeout of the current thread, which has just blocked
/// (as `schedule::block_prepare` does).
#[unsafe(no_mangle)]
extern "C" fn fastpath_arm(deadline: u64) {
    if deadline != u64::MAX {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        with_kernel(|k| {
            schedule::block_other(&mut k.timers, unsafe { thread::current() }, deadline)
        });
    }
}

#[cfg(feature = "counters")]
use crate::counters::COUNTS as FAST_COUNTS;
/// Never written: the counting instructions are assembled only in `counters` builds.
#[cfg(not(feature = "counters"))]
static FAST_COUNTS: u64 = 0;

global_asm!(
    r#"
    .macro FAST_COUNT ev
    .if {counting}
    incq {counts}+8*\ev(%rip)
    .endif
    .endm

    /* EAX = the highest ready priority (ZF set: none); clobbers RBX. */
    .macro HIGHEST
    movl $192, %ebx
    movq {queues}+{rq_bitmap}+24(%rip), %rax
    testq %rax, %rax
    jnz 1f
    movl $128, %ebx
    movq {queues}+{rq_bitmap}+16(%rip), %rax
    testq %rax, %rax
    jnz 1f
    movl $64, %ebx
    movq {queues}+{rq_bitmap}+8(%rip), %rax
    testq %rax, %rax
    jnz 1f
    xorl %ebx, %ebx
    movq {queues}+{rq_bitmap}(%rip), %rax
    testq %rax, %rax
    jz 2f
1:  bsrq %rax, %rax
    addl %ebx, %eax                     /* ZF clear: EAX + EBX > 0 or RAX had a bit */
    testq %rsp, %rsp
2:
    .endm

    /* One message register from our frame (RSP) into the partner's (R11); done after word
       u (R13D). */
    .macro MR_WORD slot, i
    movq \slot(%rsp), %rax
    movq %rax, \slot(%r11)
    cmpl $\i, %r13d
    je 40f
    .endm

    .text
    .global fastpath_ipc
fastpath_ipc:
    /* RSP = RDI = the caller's complete TrapFrame; interrupts off; every register scratch. */
    .if {off}
    jmp 90f
    .endif
    movq {current}(%rip), %r15
    movq {t_utcb}(%r15), %rbp
    testq %rbp, %rbp
    jz 90f
    cmpw ${time_zero}, %r8w             /* a zero receive timeout: general path */
    je 90f
    cmpq %rsi, %rdx                     /* FromSpecifier: to, anythread, anylocalthread */
    je 1f
    cmpq $-1, %rdx
    je 1f
    cmpq $-64, %rdx
    jne 90f
1:  movq %r9, %r13                      /* MR0 */
    testl $0xffc0, %r13d                /* typed words, flags */
    jnz 90f
    movq %rsi, %rax                     /* the global id of `to` */
    testb $0x3f, %sil
    jnz 22f
    /* A local id (not nil, not anylocalthread): the MyGlobalId TCR of the UTCB it names
       in our space, read as user memory (as `thread::resolve_local`); the thread found
       must be in our space and have that local id. */
    testq %rsi, %rsi
    jz 90f
    cmpq $-64, %rsi
    je 90f
    leaq -0x78(%rsi), %rdi
    movabsq ${user_end_8}, %rax
    cmpq %rax, %rdi
    ja 90f
    call user_load_u64
    testq %rdx, %rdx
    jnz 90f
    movq {frame_rdx}(%rsp), %rdx
    testb $0x3f, %al
    jz 90f
22: movq %rax, %rcx
    shrq $32, %rcx                      /* thread number */
    cmpq ${max_threads}, %rcx
    jae 90f
    cmpq ${user_base}, %rcx
    jb 90f
    movq {threads}(,%rcx,8), %r14       /* the partner */
    testq %r14, %r14
    jz 90f
    cmpq %rax, {t_id}(%r14)
    jne 90f
    leaq fast_resume_frame(%rip), %rdi  /* the partner resumes straight to user mode, */
    cmpq %rdi, {t_ksp}(%r14)
    jne 90f
    movq {frame_rip}(%r14), %rdi        /* in its Ipc or Lipc stub (so RIP is canonical) */
    cmpq $ipc_stub_return, %rdi
    je 24f
    cmpq $lipc_stub_return, %rdi
    jne 90f
24:
    cmpq %rax, %rsi
    je 23f
    movq {t_space}(%r15), %rbx          /* (local id) our space, that local id */
    cmpq %rbx, {t_space}(%r14)
    jne 90f
    movq {t_utcb_loc}(%r14), %rbx
    addq $0x200, %rbx
    cmpq %rbx, %rsi
    jne 90f
23: cmpb $0, {t_halted}(%r14)
    jne 90f
    cmpb ${st_recv_blocked}, {t_state}(%r14)
    jne 90f
    movq {t_state_from}(%r14), %rax     /* does it accept us? */
    cmpq $-1, %rax
    je 2f
    cmpl ${prop_none}, {t_prop}(%r15)
    jne 90f
    cmpq {t_id}(%r15), %rax
    je 2f
    cmpq $-64, %rax                     /* anylocalthread */
    jne 90f
    movq {t_space}(%r15), %rbx
    cmpq %rbx, {t_space}(%r14)
    jne 90f
2:  cmpq %rsi, %rdx
    je 3f
    cmpl $0, {t_sendq_head}(%r15)       /* open: nobody queued for us */
    jne 90f
    cmpl $0, {pending}(%rip)            /* no interrupt pending */
    jne 90f
    jmp 4f
3:  cmpl $0, {t_recvq_on}(%r15)         /* closed: on no list yet */
    jne 90f
4:  cmpl $0, {t_sendq_prop}(%r15)
    jne 90f
    movl {t_recvq_on}(%r14), %eax       /* on no list but ours */
    testl %eax, %eax
    jz 5f
    cmpl {t_no}(%r15), %eax
    jne 90f
5:  movzbl {t_prio}(%r15), %ecx         /* hand-over: we are alone in our ready queue, */
    cmpb $0, {t_readyq}(%r15)
    je 90f
    cmpb $0, {t_readyq}(%r14)
    jne 90f
    movl {t_no}(%r15), %eax
    cmpl %eax, {queues}+{q_head}(,%rcx,8)
    jne 90f
    cmpl %eax, {queues}+{q_tail}(,%rcx,8)
    jne 90f
    movzbl {t_prio}(%r14), %r10d        /* the partner's priority is ours and */
    cmpl %ecx, %r10d
    jne 31f
    HIGHEST                             /* nothing higher is ready; */
    jz 90f
    cmpl %ecx, %eax
    jne 90f
    jmp 32f
31: cmpl $0, {queues}+{q_head}(,%r10,8) /* or its queue is empty and */
    jne 90f
    btrq %rcx, {queues}+{rq_bitmap}(%rip)
    HIGHEST                             /* nothing but us is ready above it */
    jz 28f
    cmpl %r10d, %eax
    jbe 28f
    btsq %rcx, {queues}+{rq_bitmap}(%rip)
    jmp 90f
28: btsq %rcx, {queues}+{rq_bitmap}(%rip)
32:
    leaq {t_fpu}(%r14), %rax            /* TS stays as it is */
    cmpq %rax, {lazy}+{lazy_owner}(%rip)
    setne %al
    cmpb %al, {lazy}+{lazy_ts}(%rip)
    jne 90f
    movq {t_space}(%r14), %rbx
7:  movq $-1, %r12                      /* the receive deadline: none (never), */
    testw %r8w, %r8w
    jz 25f
    movq %r8, %rdi                      /* or finite (reads the clock only) */
    call fastpath_deadline
    movq %rax, %r12
    movq {f_rdx}(%rsp), %rdx
    movzbl {t_prio}(%r15), %ecx
    movzbl {t_prio}(%r14), %r10d
25:
    /* Taken. RBX = partner's space, RCX = priority, RDX = FromSpecifier, R13 = tag,
       RBP = our UTCB, R14 = partner, R15 = us. The message: MR0..MR7 go in registers (from
       our frame at the exit); MR8..MRu from our UTCB to the partner's. */
    movl %r13d, %eax
    andl $0x3f, %eax
    subl $7, %eax
    jbe 8f
    movq %rcx, %r11
    movl %eax, %ecx
    movq {t_utcb}(%r14), %rdi
    leaq 0x240(%rdi), %rdi
    leaq 0x240(%rbp), %rsi
    rep movsq
    movq %r11, %rcx
8:  movq {t_id}(%r15), %rax             /* from: our local id in the same space */
    cmpq %rbx, {t_space}(%r15)
    jne 9f
    movq {t_utcb_loc}(%r15), %rax
    addq $0x200, %rax
9:  movq %rax, {t_ipc_from}(%r14)
    movq %rax, {frame_rsi}(%r14)
    cmpl $0, {t_recvq_on}(%r14)         /* off our list of closed receivers */
    je 12f
    movl {t_recvq_prev}(%r14), %eax
    movl {t_recvq_next}(%r14), %r8d
    testl %eax, %eax
    jnz 10f
    movl %r8d, {t_recvq_head}(%r15)
    jmp 11f
10: movl %eax, %r9d
    andl ${mask}, %r9d
    movq {threads}(,%r9,8), %r9
    movl %r8d, {t_recvq_next}(%r9)
11: testl %r8d, %r8d
    jnz 13f
    movl %eax, {t_recvq_tail}(%r15)
    jmp 14f
13: andl ${mask}, %r8d
    movq {threads}(,%r8,8), %r8
    movl %eax, {t_recvq_prev}(%r8)
14: movl $0, {t_recvq_on}(%r14)
12: movq $-1, {t_deadline}(%r14)        /* wake: timer off, Done, Ready, our place */
    movb ${wake_done}, {t_wake}(%r14)
    movb ${st_ready}, {t_state}(%r14)
    movl {t_no}(%r14), %eax             /* the partner's queue: only it; ours: empty */
    movl %eax, {queues}+{q_head}(,%r10,8)
    movl %eax, {queues}+{q_tail}(,%r10,8)
    cmpl %ecx, %r10d
    je 30f
    movl $0, {queues}+{q_head}(,%rcx,8)
    movl $0, {queues}+{q_tail}(,%rcx,8)
    btrq %rcx, {queues}+{rq_bitmap}(%rip)
    btsq %r10, {queues}+{rq_bitmap}(%rip)
30: movl $0, {t_ready_prev}(%r14)
    movl $0, {t_ready_next}(%r14)
    movb $1, {t_readyq}(%r14)
    movb $0, {t_readyq}(%r15)
    movb $0, {t_recv_phase_done}(%r15)  /* our receive */
    movq $0, {t_recv_after_send}(%r15)
    movb ${st_recv_blocked}, {t_state}(%r15)
    cmpq {frame_rsi_own}(%rsp), %rdx    /* closed: FromSpecifier = to */
    je 15f
    movq %rdx, {t_state_from}(%r15)
    jmp 17f
15: movq {t_id}(%r14), %rax
    movq %rax, {t_state_from}(%r15)
    movl {t_no}(%r14), %eax             /* first on the partner's list */
    movl %eax, {t_recvq_on}(%r15)
    movl {t_recvq_head}(%r14), %r8d
    movl $0, {t_recvq_prev}(%r15)
    movl %r8d, {t_recvq_next}(%r15)
    movl {t_no}(%r15), %eax
    testl %r8d, %r8d
    jnz 16f
    movl %eax, {t_recvq_tail}(%r14)
    jmp 18f
16: andl ${mask}, %r8d
    movq {threads}(,%r8,8), %r8
    movl %eax, {t_recvq_prev}(%r8)
18: movl %eax, {t_recvq_head}(%r14)
17: movb ${wake_none}, {t_wake}(%r15)
    leaq fast_resume_frame(%rip), %rax
    movq %rax, {t_ksp}(%r15)
    cmpq $-1, %r12                      /* a finite receive timeout: arm it */
    je 26f
    movq %r12, %rdi
    call fastpath_arm
26:
    /* The switch. */
    movq %rbx, {last_space}(%rip)
    cmpq %rbx, {t_space}(%r15)
    je 19f
    movq {space_pml4}(%rbx), %rax
    movq %rax, %cr3
    FAST_COUNT {ev_cr3}
    /* The I/O bitmap follows the space (`ioport::switch_to`): in effect if the TSS holds
       its copy, else every port denied until the first access copies it. */
    movq {space_io_serial}(%rbx), %rax
    cmpq %rax, {ioloaded}+{loaded_serial}(%rip)
    je 19f
    testq %rax, %rax
    jz 33f
    cmpq %rax, {ioloaded}+{loaded_content}(%rip)
    jne 33f
    movq %rax, {ioloaded}+{loaded_serial}(%rip)
    movw ${iomap_offset}, {tss}+{tss_iomap_base}(%rip)
    jmp 19f
33: cmpq $0, {ioloaded}+{loaded_serial}(%rip)
    je 19f
    movq $0, {ioloaded}+{loaded_serial}(%rip)
    movw ${iomap_deny_all}, {tss}+{tss_iomap_base}(%rip)
19: movq %r14, {current}(%rip)
    movq %r14, CURRENT_KSTACK_TOP(%rip)
    movq %r14, {tss}+{tss_rsp0}(%rip)
    movq {t_utcb_loc}(%r14), %rax
    cmpq $-1, %rax
    jne 20f
    xorl %eax, %eax
20: cmpq %rax, {gs_loaded}(%rip)
    je 21f
    movq %rax, {gs_loaded}(%rip)
    movq %rax, %rdx
    shrq $32, %rdx
    movl $0xc0000101, %ecx
    wrmsr
    FAST_COUNT {ev_msr}
21: FAST_COUNT {ev_fast}               /* (no `SyscallEntry`: left by sysretq, not iretq) */
    /* Into the partner's stub with `sysretq`. MR0..MRu (u <= 7) from our frame into its
       frame (the MR registers beyond u keep its own values: nothing of ours it was not
       sent), then every register from its frame: RSI = from, RIP its stub (checked above),
       RFLAGS as it entered. */
    leaq -{frame_size}(%r14), %r11
    movq %r13, {f_r9}(%r11)
    andl $0x3f, %r13d
    jz 40f
    MR_WORD {f_rax}, 1
    MR_WORD {f_rbx}, 2
    MR_WORD {f_r10}, 3
    MR_WORD {f_r12}, 4
    MR_WORD {f_r13}, 5
    MR_WORD {f_r14}, 6
    movq {f_r15}(%rsp), %rax
    movq %rax, {f_r15}(%r11)
40: movq {f_r9}(%r11), %r9
    movq {f_rax}(%r11), %rax
    movq {f_rbx}(%r11), %rbx
    movq {f_r10}(%r11), %r10
    movq {f_r12}(%r11), %r12
    movq {f_r13}(%r11), %r13
    movq {f_r14}(%r11), %r14
    movq {f_r15}(%r11), %r15
    movq {f_rdi}(%r11), %rdi
    movq {f_rsi}(%r11), %rsi
    movq {f_rdx}(%r11), %rdx
    movq {f_r8}(%r11), %r8
    movq {f_rbp}(%r11), %rbp
    movq {f_rip}(%r11), %rcx
    movq {f_rsp}(%r11), %rsp
    movq {f_rflags}(%r11), %r11
    sysretq

90: movq %rsp, %rdi
    call fastpath_dispatch
    jmp trap_return
    "#,
    off = const cfg!(feature = "ipc-profile") as u8,
    time_zero = const abi::time::Time::ZERO.0,
    counting = const cfg!(feature = "counters") as u8,
    counts = sym FAST_COUNTS,
    ev_cr3 = const Event::Cr3Write as u8,
    ev_msr = const Event::MsrWrite as u8,
    ev_fast = const Event::FastPath as u8,
    current = sym thread::CURRENT,
    threads = sym thread::THREADS,
    queues = sym crate::kernel_state::STATE,
    last_space = sym crate::schedule::LAST_SPACE_USER,
    pending = sym crate::interrupt::PENDING,
    lazy = sym crate::arch::fpu::LAZY,
    ioloaded = sym crate::arch::ioport::LOADED,
    gs_loaded = sym crate::arch::context::GS_LOADED,
    tss = sym crate::arch::gdt::TSS,
    max_threads = const thread::MAX_THREADS,
    mask = const thread::MAX_THREADS - 1,
    user_base = const thread::USER_BASE,
    st_ready = const ST_READY,
    st_recv_blocked = const ST_RECV_BLOCKED,
    wake_none = const WAKE_NONE,
    wake_done = const WAKE_DONE,
    prop_none = const PROP_NONE,
    t_ksp = const offset_of!(Tcb, ksp),
    t_id = const offset_of!(Tcb, id),
    t_state = const offset_of!(Tcb, state),
    t_state_from = const offset_of!(Tcb, state) + ST_FROM,
    t_halted = const offset_of!(Tcb, halted),
    t_space = const offset_of!(Tcb, space),
    t_utcb_loc = const offset_of!(Tcb, utcb_location),
    t_utcb = const offset_of!(Tcb, utcb),
    t_prio = const offset_of!(Tcb, priority),
    t_readyq = const offset_of!(Tcb, ready_queued),
    t_ready_prev = const offset_of!(Tcb, ready_link) + offset_of!(Link, prev),
    t_ready_next = const offset_of!(Tcb, ready_link) + offset_of!(Link, next),
    t_sendq_head = const offset_of!(Tcb, sendq) + offset_of!(Queue, head),
    t_sendq_prop = const offset_of!(Tcb, sendq_propagated),
    t_recvq_head = const offset_of!(Tcb, recvq) + offset_of!(Queue, head),
    t_recvq_tail = const offset_of!(Tcb, recvq) + offset_of!(Queue, tail),
    t_recvq_on = const offset_of!(Tcb, recvq_on),
    t_no = const offset_of!(Tcb, no),
    t_recvq_prev = const offset_of!(Tcb, recvq_link) + offset_of!(Link, prev),
    t_recvq_next = const offset_of!(Tcb, recvq_link) + offset_of!(Link, next),
    t_wake = const offset_of!(Tcb, wake),
    t_ipc_from = const offset_of!(Tcb, ipc_from),
    t_recv_after_send = const offset_of!(Tcb, recv_after_send),
    t_recv_phase_done = const offset_of!(Tcb, recv_phase_done),
    t_prop = const offset_of!(Tcb, propagate_as),
    t_deadline = const offset_of!(Tcb, deadline),
    t_fpu = const offset_of!(Tcb, fpu),
    q_head = const offset_of!(crate::kernel_state::State, run)
        + offset_of!(crate::kernel_state::RunQueues, queues)
        + offset_of!(Queue, head),
    q_tail = const offset_of!(crate::kernel_state::State, run)
        + offset_of!(crate::kernel_state::RunQueues, queues)
        + offset_of!(Queue, tail),
    rq_bitmap = const offset_of!(crate::kernel_state::State, run)
        + offset_of!(crate::kernel_state::RunQueues, bitmap),
    space_pml4 = const offset_of!(crate::space::Space, pml4),
    space_io_serial = const offset_of!(crate::space::Space, io)
        + offset_of!(crate::io_space::SpaceIo, serial),
    loaded_serial = const offset_of!(crate::arch::ioport::Loaded, serial),
    loaded_content = const offset_of!(crate::arch::ioport::Loaded, content),
    tss_iomap_base = const offset_of!(crate::arch::gdt::TssArea, tss)
        + offset_of!(crate::arch::gdt::Tss, iomap_base),
    iomap_offset = const crate::arch::gdt::IOMAP_OFFSET,
    iomap_deny_all = const crate::arch::gdt::IOMAP_DENY_ALL,
    lazy_owner = const offset_of!(crate::arch::fpu::Lazy, owner),
    lazy_ts = const offset_of!(crate::arch::fpu::Lazy, ts),
    tss_rsp0 = const offset_of!(crate::arch::gdt::TssArea, tss)
        + offset_of!(crate::arch::gdt::Tss, rsp0),
    frame_rsi = const offset_of!(TrapFrame, rsi) as isize - TRAP_FRAME_SIZE as isize,
    frame_size = const TRAP_FRAME_SIZE,
    frame_rdx = const offset_of!(TrapFrame, rdx),
    frame_rip = const offset_of!(TrapFrame, rip) as isize - TRAP_FRAME_SIZE as isize,
    f_r9 = const offset_of!(TrapFrame, r9),
    f_rax = const offset_of!(TrapFrame, rax),
    f_rbx = const offset_of!(TrapFrame, rbx),
    f_r10 = const offset_of!(TrapFrame, r10),
    f_r12 = const offset_of!(TrapFrame, r12),
    f_r13 = const offset_of!(TrapFrame, r13),
    f_r14 = const offset_of!(TrapFrame, r14),
    f_r15 = const offset_of!(TrapFrame, r15),
    f_rdi = const offset_of!(TrapFrame, rdi),
    f_rsi = const offset_of!(TrapFrame, rsi),
    f_rdx = const offset_of!(TrapFrame, rdx),
    f_r8 = const offset_of!(TrapFrame, r8),
    f_rbp = const offset_of!(TrapFrame, rbp),
    f_rip = const offset_of!(TrapFrame, rip),
    f_rsp = const offset_of!(TrapFrame, rsp),
    f_rflags = const offset_of!(TrapFrame, rflags),
    frame_rsi_own = const offset_of!(TrapFrame, rsi),
    user_end_8 = const crate::arch::paging::USER_END - 8,
    options(att_syntax)
);
