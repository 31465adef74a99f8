//! `syscall` entry and the user-visible system-call stubs.
//!
//! The stubs live in `.user_stubs`, one per 256-byte slot, mapped user-executable at the same
//! (kernel-half) address in every address space; the KIP's link words hold their absolute
//! addresses (spec 4.3). The kernel identifies a call by the slot its `syscall` instruction sits
//! in (RCX after `syscall` is the return address inside the stub), so no register is spent on
//! a call number and every register contract of spec 4.4 is kept.
//!
//! The Ipc and Lipc stubs are `syscall; ret`: MR0..MR7 travel in their registers (R9, RAX, RBX,
//! R10, R12..R15, spec table 4.4) through the kernel. The assembly fast path hands them from
//! the sender's registers to the receiver's; the general path stores them into the caller's
//! UTCB on entry and loads the UTCB's MR0..MR7 into them on the return to the stub
//! (`fastpath::mrs_in`/`mrs_out`), so the rest of the kernel reads and writes message
//! registers in UTCB memory only. The Unmap stub stores MR0..MR7 into the UTCB before entering
//! and reloads them afterwards. Entry builds a `TrapFrame` on the thread's kernel stack; return is `iretq`
//! through `trap_return`, so every register the call does not define keeps its value.
//!
//! Other ways into the kernel that look like system calls (issue 10, docs/security.md):
//! * `syscall` in compatibility mode enters through MSR CSTAR. User mode cannot reach
//!   compatibility mode (the GDT has no 32-bit user code segment, gdt.rs), but CSTAR still
//!   points at `compat_syscall_entry`, which turns the event into #UD exception IPC, so the
//!   MSR can never send the CPU to address 0 in ring 0.
//! * `sysenter`: IA32_SYSENTER_CS is 0, so the instruction raises #GP in user mode (Intel)
//!   or #UD (AMD, long mode); either becomes exception IPC.
//! * RFLAGS on entry: SFMASK clears IF, TF, DF, NT and AC, so the kernel never runs with a
//!   user's direction flag, single-step flag or SMAP override (no `cld`/`clac` needed here).

use core::arch::global_asm;

use super::cpu::{
    self, MSR_CSTAR, MSR_FMASK, MSR_LSTAR, MSR_STAR, MSR_SYSENTER_CS, MSR_SYSENTER_EIP,
    MSR_SYSENTER_ESP,
};
use super::gdt::{KERNEL_CS, USER_CS32};

// `TrapFrame::vector` of a system-call entry is 0x100 (pushed by `syscall_entry`).

/// System calls in stub-slot order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Syscall {
    Ipc = 0,
    Lipc = 1,
    ExchangeRegisters = 2,
    ThreadControl = 3,
    SystemClock = 4,
    ThreadSwitch = 5,
    Schedule = 6,
    Unmap = 7,
    SpaceControl = 8,
    ProcessorControl = 9,
    MemoryControl = 10,
}

pub const ALL_SYSCALLS: [Syscall; 11] = [
    Syscall::Ipc,
    Syscall::Lipc,
    Syscall::ExchangeRegisters,
    Syscall::ThreadControl,
    Syscall::SystemClock,
    Syscall::ThreadSwitch,
    Syscall::Schedule,
    Syscall::Unmap,
    Syscall::SpaceControl,
    Syscall::ProcessorControl,
    Syscall::MemoryControl,
];

global_asm!(
    r#"
    .macro STORE_MRS
        movq %r9, 0(%rdi)
        movq %rax, 8(%rdi)
        movq %rbx, 16(%rdi)
        movq %r10, 24(%rdi)
        movq %r12, 32(%rdi)
        movq %r13, 40(%rdi)
        movq %r14, 48(%rdi)
        movq %r15, 56(%rdi)
    .endm
    .macro LOAD_MRS
        movq 0(%rdi), %r9
        movq 8(%rdi), %rax
        movq 16(%rdi), %rbx
        movq 24(%rdi), %r10
        movq 32(%rdi), %r12
        movq 40(%rdi), %r13
        movq 48(%rdi), %r14
        movq 56(%rdi), %r15
    .endm

    .section .user_stubs, "ax"
    .balign 4096
    .global user_stubs_base
user_stubs_base:
    /* 0: Ipc. MR0..MR7 stay in their registers (the kernel moves them: fastpath.rs). */
    syscall
    .global ipc_stub_return
ipc_stub_return:
    ret
    .balign 256
    /* 1: Lipc */
    syscall
    .global lipc_stub_return
lipc_stub_return:
    ret
    .balign 256
    /* 2: ExchangeRegisters */
    syscall
    ret
    .balign 256
    /* 3: ThreadControl */
    syscall
    ret
    .balign 256
    /* 4: SystemClock */
    syscall
    ret
    .balign 256
    /* 5: ThreadSwitch */
    syscall
    ret
    .balign 256
    /* 6: Schedule */
    syscall
    ret
    .balign 256
    /* 7: Unmap */
    STORE_MRS
    syscall
    LOAD_MRS
    ret
    .balign 256
    /* 8: SpaceControl */
    syscall
    ret
    .balign 256
    /* 9: ProcessorControl */
    syscall
    ret
    .balign 256
    /* 10: MemoryControl: attribute0 (RCX) and attribute3 (R11) would be destroyed by syscall,
       so they travel in R9 and R10; the fpages are read from UTCB MR0.. */
    movq %rax, 8(%rdi)
    movq %rbx, 16(%rdi)
    movq %r10, 24(%rdi)
    movq %r12, 32(%rdi)
    movq %r13, 40(%rdi)
    movq %r14, 48(%rdi)
    movq %r15, 56(%rdi)
    movq %rcx, %r9
    movq %r11, %r10
    syscall
    movq 8(%rdi), %rax
    movq 0(%rdi), %rcx
    ret
    .balign 4096

    .text
    .global syscall_entry
syscall_entry:
    /* SystemClock (the `syscall` of stub slot 4, RCX = its return address) reads the clock
       and changes nothing: answered right here, on no stack at all, with `sysretq` (RCX is
       that stub address, canonical; R11 the user's RFLAGS as `syscall` saved them; RDX is
       kept; docs/security.md). Same clock as `interrupt::now_us`: high half of TSC × scale. */
    cmpq $user_stubs_base + 4 * 256 + 2, %rcx
    jne 1f
    cmpq $0, CLOCK_SCALE(%rip)
    je 1f
    movq %rdx, syscall_clock_rdx(%rip)
    rdtsc
    shlq $32, %rdx
    orq %rdx, %rax
    mulq CLOCK_SCALE(%rip)
    movq %rdx, %rax
    movq syscall_clock_rdx(%rip), %rdx
    sysretq
1:
    /* User RSP to a scratch slot, kernel stack from CURRENT_KSTACK_TOP. */
    movq %rsp, syscall_user_rsp(%rip)
    movq CURRENT_KSTACK_TOP(%rip), %rsp
    pushq $0x23                 /* ss: user data */
    pushq syscall_user_rsp(%rip)
    pushq %r11                  /* rflags */
    pushq $0x2b                 /* cs: user code 64 */
    pushq %rcx                  /* rip */
    pushq $0                    /* error */
    pushq $0x100                /* vector: SYSCALL_VECTOR */
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    /* The Ipc and Lipc stubs: the assembly fast path (kernel/src/fastpath.rs), unless the
       debugger's event trace has redirected the dispatch vector. */
    cmpq $ipc_stub_return, %rcx
    je 2f
    cmpq $lipc_stub_return, %rcx
    jne 3f
2:  leaq fastpath_dispatch(%rip), %rax
    cmpq %rax, syscall_dispatch_vector(%rip)
    je fastpath_ipc
3:  call *syscall_dispatch_vector(%rip)
    jmp trap_return

    /* `syscall` from compatibility mode (MSR CSTAR): unreachable from user mode (no 32-bit
       code segment), defined all the same: a #UD exception of the thread, which returns to
       64-bit mode at the instruction after the `syscall` (RCX = EIP). */
    .global compat_syscall_entry
compat_syscall_entry:
    movq %rsp, syscall_user_rsp(%rip)
    movq CURRENT_KSTACK_TOP(%rip), %rsp
    pushq $0x23                 /* ss: user data */
    pushq syscall_user_rsp(%rip)
    pushq %r11                  /* rflags */
    pushq $0x2b                 /* cs: user code 64 */
    movl %ecx, %ecx
    pushq %rcx                  /* rip */
    pushq $0                    /* error */
    pushq $6                    /* vector: #UD */
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    call compat_syscall
    jmp trap_return

    /* The fast path (kernel/src/fastpath.rs), which falls back to `syscall_dispatch`;
       redirected by the kernel debugger's event trace (kernel/src/debug/trace.rs). */
    .section .data.syscall_dispatch_vector, "aw"
    .balign 8
    .global syscall_dispatch_vector
syscall_dispatch_vector:
    .quad fastpath_dispatch

    .section .bss.syscall_user_rsp, "aw", @nobits
    .balign 8
syscall_user_rsp:
    .quad 0
syscall_clock_rdx:
    .quad 0
    .text
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static user_stubs_base: u8;
    fn syscall_entry();
    fn compat_syscall_entry();
}

/// A `syscall` from compatibility mode: not a system call; #UD for the thread.
#[unsafe(no_mangle)]
extern "C" fn compat_syscall(frame: &mut super::trap::TrapFrame) {
    crate::exception::handle(frame);
}

pub fn stubs_base() -> u64 {
    // SAFETY: only the address of the linker-placed stub page is taken.
    unsafe { &user_stubs_base as *const u8 as u64 }
}

/// Absolute address of a call's stub (the value of its KIP link word).
pub fn stub_address(call: Syscall) -> u64 {
    stubs_base() + 256 * call as u64
}

/// The call whose stub executed `syscall`, from the return address in RCX.
pub fn identify(rcx: u64) -> Option<Syscall> {
    let off = rcx.wrapping_sub(stubs_base());
    if off >= 4096 {
        return None;
    }
    ALL_SYSCALLS.get((off / 256) as usize).copied()
}

pub fn init() {
    // STAR: kernel CS in 47:32; user base selector in 63:48 (sysret CS = base+16, SS = base+8).
    let star = ((USER_CS32 as u64 & !3) << 48) | ((KERNEL_CS as u64) << 32);
    // SAFETY: standard syscall configuration; the entry point is `syscall_entry`.
    unsafe {
        cpu::wrmsr(MSR_STAR, star);
        cpu::wrmsr(
            MSR_LSTAR,
            syscall_entry as unsafe extern "C" fn() as usize as u64,
        );
        cpu::wrmsr(
            MSR_CSTAR,
            compat_syscall_entry as unsafe extern "C" fn() as usize as u64,
        );
        cpu::wrmsr(MSR_FMASK, SFMASK);
        if cpu::features().sep {
            // SYSENTER_CS = 0: `sysenter` faults in user mode (#GP), never enters the kernel.
            cpu::wrmsr(MSR_SYSENTER_CS, 0);
            cpu::wrmsr(MSR_SYSENTER_ESP, 0);
            cpu::wrmsr(MSR_SYSENTER_EIP, 0);
        }
    }
}

/// RFLAGS bits `syscall` clears on entry: TF (8), IF (9), DF (10), NT (14), AC (18).
pub const SFMASK: u64 = (1 << 8) | (1 << 9) | (1 << 10) | (1 << 14) | (1 << 18);
const _: () = assert!(SFMASK == 0x4_4700);
