//! Thread switching on per-thread kernel stacks.
//!
//! A thread that is not running is always stopped inside `switch_stacks` on its own kernel
//! stack (callee-saved registers pushed, stack pointer in its TCB), with its user state in the
//! `TrapFrame` at the top of that stack. A new thread's stack is prepared so that the first
//! switch to it "returns" into its start function.

use core::arch::global_asm;

use super::cpu::{self, MSR_GS_BASE};
use super::gdt;
use crate::sync::KernelValue;

global_asm!(
    r#"
    .text
    /* switch_stacks(save: *mut u64 (rdi), load: u64 (rsi)) */
    .global switch_stacks
switch_stacks:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret

    /* load_stack(load: u64 (rdi)): the second half of `switch_stacks`, for a thread that
       leaves its own stack for good (the fast path). */
    .global load_stack
load_stack:
    movq %rdi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret

    /* First code of a new thread: the start function is in r12, its argument in r13. */
    .global thread_bootstrap
thread_bootstrap:
    movq %r13, %rdi
    call *%r12
    ud2
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    fn switch_stacks(save: *mut u64, load: u64);
    fn load_stack(load: u64) -> !;
    fn trap_return_from(sp: u64) -> !;
    fn thread_bootstrap();
}

/// Kernel stack top used by `syscall` entry and (via the TSS) by interrupts from user mode.
#[unsafe(no_mangle)]
pub static CURRENT_KSTACK_TOP: KernelValue<u64> = KernelValue::new(0);

/// Prepares a fresh kernel stack (top `top`) so that switching to it calls `entry(arg)`.
/// Returns the stack pointer to store in the thread.
pub fn prepare_stack(top: u64, entry: extern "C" fn(u64) -> !, arg: u64) -> u64 {
    let frames = [
        0u64,                                                       // r15
        0,                                                          // r14
        arg,                                                        // r13
        entry as usize as u64,                                      // r12
        0,                                                          // rbp
        0,                                                          // rbx
        thread_bootstrap as unsafe extern "C" fn() as usize as u64, // return address
        0,                                                          // alignment
    ];
    let sp = top - (frames.len() as u64) * 8;
    for (i, w) in frames.iter().enumerate() {
        // SAFETY: the stack belongs to the new thread, which is not running; `top` is its top.
        unsafe { *((sp + 8 * i as u64) as *mut u64) = *w };
    }
    sp
}

/// Everything the CPU must know about the thread that runs next.
pub struct SwitchTo {
    pub kstack_top: u64,
    pub ksp: u64,
    /// Physical address of the page-table root, if the address space changes.
    pub cr3: Option<u64>,
    /// User GS base (its UTCB, whose first word holds the UTCB pointer read by `%gs:0`).
    pub gs_base: u64,
    /// The FPU save area of the thread (lazy switching, `fpu.rs`).
    pub fpu: *mut u8,
}

/// Switches from the running thread (whose stack pointer goes to `save_ksp`) to another.
/// Returns when the old thread is switched back to.
pub fn switch(save_ksp: *mut u64, to: &SwitchTo) {
    load_cpu(to);
    // SAFETY: `to.ksp` was produced by `switch_stacks` or `prepare_stack` for a thread that is
    // not running; `save_ksp` belongs to the running thread.
    unsafe { switch_stacks(save_ksp, to.ksp) };
}

/// As [`switch`], for a running thread that keeps nothing on its kernel stack below its trap
/// frame (it blocked at the bottom of a system call and resumes at a frame of its own,
/// `fastpath.rs`): never returns.
#[inline(always)]
pub fn switch_away(to: &SwitchTo) -> ! {
    load_cpu(to);
    // SAFETY: as in `switch`; the running thread's stack is abandoned.
    unsafe { load_stack(to.ksp) }
}

/// As [`switch_away`], to a thread whose trap frame is ready for the return to user mode:
/// straight to `trap_return` on its stack.
#[inline(always)]
pub fn switch_to_user(to: &SwitchTo) -> ! {
    load_cpu(to);
    // SAFETY: the next thread's trap frame is complete (it blocked at the bottom of a system
    // call and nothing is left to do for it but the return).
    unsafe { trap_return_from(to.kstack_top - super::trap::TRAP_FRAME_SIZE as u64) }
}

/// Continues the running thread at a saved stack pointer of its own (no switch).
pub fn resume_at(ksp: u64) -> ! {
    // SAFETY: `ksp` is a frame like `switch_stacks` leaves, for the running thread.
    unsafe { load_stack(ksp) }
}

/// The GS base loaded (the MSR is written only when it changes).
pub(crate) static GS_LOADED: KernelValue<u64> = KernelValue::new(0);

/// The CPU state of the thread that runs next: kernel stack, page tables, GS base, FPU.
#[inline(always)]
fn load_cpu(to: &SwitchTo) {
    CURRENT_KSTACK_TOP.set(to.kstack_top);
    gdt::set_kernel_stack(to.kstack_top);
    if let Some(cr3) = to.cr3 {
        crate::counters::count(crate::counters::Event::Cr3Write);
        // SAFETY: every address-space root maps the kernel (shared slot 511).
        unsafe { cpu::write_cr3(cr3) };
    }
    if GS_LOADED.get() != to.gs_base {
        GS_LOADED.set(to.gs_base);
        crate::counters::count(crate::counters::Event::MsrWrite);
        // SAFETY: GS is not used by the kernel; the base only matters in user mode.
        unsafe { cpu::wrmsr(MSR_GS_BASE, to.gs_base) };
    }
    super::fpu::switch_to(to.fpu);
}
