//! Interrupt and exception entry: the IDT, the assembly stubs, and the saved user/kernel state.
//!
//! Every vector enters through a stub that pushes a uniform `TrapFrame` and calls
//! `trap_dispatch`, which hands the frame to the generic kernel (`crate::exception`,
//! `crate::interrupt`). The same frame layout is used by the system-call entry, so the user
//! state of a thread in the kernel is always one `TrapFrame` at the top of its kernel stack.
//!
//! Security (issue 10, docs/security.md):
//! * Only vector 3 (`int3`, the kernel-debugger interface of spec 8) is a DPL-3 gate; `int N`
//!   for any other N raises #GP in user mode (exception IPC). Vectors above 47 are not
//!   present (also #GP for `int N`).
//! * Interrupt gates clear IF, TF and NT but not DF or AC: `trap_common` clears both (`cld`,
//!   and `clac` patched in when SMAP is on) before any Rust code runs.
//! * NMI, double fault and machine check run on their own stacks (IST) and never become
//!   IPC: they are not the interrupted thread's doing.
//! * `trap_return` is the only way to user mode. It refuses a non-canonical RIP (which would
//!   make `iretq` fault in ring 0), whoever wrote the frame: the thread gets a #GP exception
//!   instead (4 instructions on every return; the system-call path counts them).
//! * User-chosen RFLAGS reach a frame only through [`merge_user_rflags`] (CF..OF, spec 4.6);
//!   IOPL and IF are set per thread at creation ([`initial_user_rflags`]). The frame's CS and
//!   SS are only ever 0x2B and 0x23.

use core::arch::global_asm;
use core::mem::size_of;

use super::gdt::{self, KERNEL_CS};
use crate::sync::{KernelCell, KernelValue};

/// Registers saved on kernel entry, lowest address first.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Vector number (exceptions/IRQs) or `SYSCALL_VECTOR` for a `syscall` entry.
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

pub const TRAP_FRAME_SIZE: usize = size_of::<TrapFrame>();
const _: () = assert!(TRAP_FRAME_SIZE == 22 * 8);

impl TrapFrame {
    pub fn is_from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

pub const NUM_VECTORS: usize = 48;

global_asm!(
    r#"
    .macro TRAP_NOERR v
    trap_stub_\v:
        pushq $0
        pushq $\v
        jmp trap_common
    .endm
    .macro TRAP_ERR v
    trap_stub_\v:
        pushq $\v
        jmp trap_common
    .endm

    .text
    .irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    TRAP_NOERR \v
    .endr
    .irp v, 8,10,11,12,13,14,17,21,29,30
    TRAP_ERR \v
    .endr
    .irp v, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
    TRAP_NOERR \v
    .endr

    .global trap_common
trap_common:
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
    cld
661: .byte 0x0f, 0x1f, 0x00     /* clac when SMAP (cpu.rs patches it in) */
    .pushsection .smap_sites, "a"
    .quad 661b, 0
    .popsection
    movq %rsp, %rdi
    call *trap_dispatch_vector(%rip)
    .global trap_return
trap_return:
    /* Is the saved RIP canonical (bits 47..63 all equal)? Every register is about to be
       reloaded from the frame, so EAX is free: high dword + 0x8000 < 0x10000 iff canonical. */
    movl 140(%rsp), %eax
    addl $0x8000, %eax
    shrl $16, %eax
    jnz trap_return_check
trap_return_go:
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
trap_return_check:
    movq %rsp, %rdi
    call bad_user_return
    jmp trap_return

    /* The generic handler, through a vector the kernel debugger's event trace may redirect
       (kernel/src/debug/trace.rs): one indirect call, no cost while the trace is off. */
    .section .data.trap_dispatch_vector, "aw"
    .balign 8
    .global trap_dispatch_vector
trap_dispatch_vector:
    .quad trap_dispatch

    .section .rodata
    .balign 8
    .global trap_stub_table
trap_stub_table:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
    .quad trap_stub_\v
    .endr
    .text
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static trap_stub_table: [u64; NUM_VECTORS];
}

#[repr(C)]
#[derive(Clone, Copy)]
struct IdtEntry {
    off_lo: u16,
    sel: u16,
    ist: u8,
    attr: u8,
    off_mid: u16,
    off_hi: u32,
    _r: u32,
}

static IDT: KernelCell<[IdtEntry; 256]> = KernelCell::new(
    [IdtEntry {
        off_lo: 0,
        sel: 0,
        ist: 0,
        attr: 0,
        off_mid: 0,
        off_hi: 0,
        _r: 0,
    }; 256],
);

pub const VEC_NMI: usize = 2;
pub const VEC_BREAKPOINT: usize = 3;
pub const VEC_DOUBLE_FAULT: usize = 8;
pub const VEC_NM: usize = 7;
pub const VEC_GP: usize = 13;
pub const VEC_MACHINE_CHECK: usize = 18;

/// RFLAGS bits a user may choose through the kernel (ExchangeRegisters, exception replies;
/// spec 4.6): CF, PF, AF, ZF, SF, OF.
pub const USER_SETTABLE_RFLAGS: u64 = 0x8D5;

/// A thread's RFLAGS after a user-chosen value `user` was applied to `current`: only the
/// arithmetic flags change, so IOPL, IF, TF, NT, AC, VM, VIF, VIP and the reserved bits stay
/// what the thread was created with or set itself in user mode (where the CPU lets it
/// change none of IOPL, VM, VIF, VIP, nor IF at IOPL 0). Every kernel path that writes a
/// user-chosen RFLAGS goes through here.
pub fn merge_user_rflags(current: u64, user: u64) -> u64 {
    (current & !USER_SETTABLE_RFLAGS) | (user & USER_SETTABLE_RFLAGS)
}

/// Who runs with IOPL 3 (port I/O, `cli`/`sti`, `popf` of IF); docs/security.md, CAVEATS.md.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IoplPolicy {
    /// `iopl=none` (default): every user thread runs with IOPL 0. Ports are IO-fpages
    /// (`crate::io_space`): an access to a port the space does not hold is an IO page fault,
    /// `cli`/`sti` raise #GP (exception IPC).
    None,
    /// `iopl=all` (UNSAFE): every user thread (Pistachio's default build, spec 6.6).
    All,
    /// `iopl=privileged` (UNSAFE): threads of privileged spaces (sigma0, the root server);
    /// every other thread runs with IOPL 0.
    Privileged,
}

static IOPL_POLICY: KernelValue<IoplPolicy> = KernelValue::new(IoplPolicy::None);

/// Reads `iopl=` from the kernel command line; returns the policy in force.
pub fn init_iopl_policy(cmdline: &str) -> IoplPolicy {
    let p = match crate::boot::options::value(cmdline, "iopl") {
        Some("all") => IoplPolicy::All,
        Some("privileged") => IoplPolicy::Privileged,
        Some("none") | None => IoplPolicy::None,
        Some(other) => {
            crate::kprintln!("iopl: unknown iopl={} ignored (none|privileged|all)", other);
            IoplPolicy::None
        }
    };
    IOPL_POLICY.set(p);
    p
}

/// RFLAGS a new user thread starts with: IF, bit 1, and IOPL 3 or 0 by the policy. Nothing
/// later raises IOPL: ExchangeRegisters and exception replies change only CF..OF, and
/// `popf`/`iretq` in user mode cannot change IOPL (nor IF at IOPL 0).
pub fn initial_user_rflags(privileged_space: bool) -> u64 {
    let policy = IOPL_POLICY.get();
    if policy == IoplPolicy::All || (privileged_space && policy == IoplPolicy::Privileged) {
        0x3202
    } else {
        0x0202
    }
}

pub fn init() {
    // SAFETY: the only borrow of IDT in use; it ends before any call that touches it.
    let idt = unsafe { IDT.get() };
    for v in 0..NUM_VECTORS {
        // SAFETY: the table is a static array of NUM_VECTORS code addresses emitted above.
        let addr = unsafe { trap_stub_table[v] };
        // Interrupt gates (IF cleared on entry); int3 callable from user mode (KDB interface).
        let dpl = if v == VEC_BREAKPOINT { 3 } else { 0 };
        let ist = match v {
            VEC_DOUBLE_FAULT => gdt::IST_DOUBLE_FAULT,
            VEC_NMI => gdt::IST_NMI,
            VEC_MACHINE_CHECK => gdt::IST_MACHINE_CHECK,
            _ => 0,
        };
        idt[v] = IdtEntry {
            off_lo: addr as u16,
            sel: KERNEL_CS,
            ist,
            attr: 0x8E | (dpl << 5),
            off_mid: (addr >> 16) as u16,
            off_hi: (addr >> 32) as u32,
            _r: 0,
        };
    }
    #[repr(C, packed)]
    struct Ptr {
        limit: u16,
        base: u64,
    }
    let p = Ptr {
        limit: (size_of::<[IdtEntry; 256]>() - 1) as u16,
        base: IDT.as_ptr() as u64,
    };
    // SAFETY: the IDT is static and every present entry points at a stub above.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &p, options(nostack)) };
}

#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    crate::counters::count(crate::counters::Event::TrapEntry);
    let v = frame.vector as usize;
    if v == VEC_NMI {
        // Not caused by the interrupted code (watchdog, or the QEMU monitor's `nmi`): report
        // and resume, in whichever mode it hit.
        crate::kprintln!("nmi: at {:#x} (ignored)", frame.rip);
        return;
    }
    if v == VEC_DOUBLE_FAULT || v == VEC_MACHINE_CHECK {
        // Aborts: the saved state may not be restartable, whatever mode it names.
        dump(frame);
        panic!("{} (abort)", EXCEPTION_NAMES[v]);
    }
    if v == VEC_NM && frame.is_from_user() {
        // Lazy FPU switching: the running thread takes the registers (fpu.rs).
        // SAFETY: the only reference in use to this TCB; not held across a deletion.
        let t = unsafe { crate::thread::current() };
        super::fpu::device_not_available(t.fpu.0.as_mut_ptr());
        return;
    }
    if v < 32 {
        crate::exception::handle(frame);
    } else {
        crate::kernel_state::with_kernel(|k| crate::interrupt::handle_irq(k, v - 32, frame));
    }
}

/// `trap_return` found a user frame with a non-canonical RIP (a start-up message, an
/// exception reply or ExchangeRegisters named one; `iretq` would fault in ring 0). The
/// thread takes a #GP (error 0) as if its jump there had faulted; its exception handler may
/// give it a new RIP. `trap_return` checks again afterwards.
#[unsafe(no_mangle)]
extern "C" fn bad_user_return(frame: &mut TrapFrame) {
    if !frame.is_from_user() {
        dump(frame);
        panic!("return to kernel mode at a non-canonical address");
    }
    frame.vector = VEC_GP as u64;
    frame.error = 0;
    crate::exception::handle(frame);
}

pub const EXCEPTION_NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved 15",
    "#MF x87 error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD error",
    "#VE virtualisation",
    "#CP control protection",
    "reserved 22",
    "reserved 23",
    "reserved 24",
    "reserved 25",
    "reserved 26",
    "reserved 27",
    "reserved 28",
    "reserved 29",
    "#SX security",
    "reserved 31",
];

/// Prints every saved register, and CR2 for a page fault.
pub fn dump(frame: &TrapFrame) {
    let v = frame.vector as usize;
    let name = EXCEPTION_NAMES.get(v).copied().unwrap_or("interrupt");
    crate::kprintln!(
        "*** exception {} ({}) error={:#x} in {} mode",
        v,
        name,
        frame.error,
        if frame.is_from_user() {
            "user"
        } else {
            "kernel"
        }
    );
    if v == 14 {
        crate::kprintln!("    CR2={:#018x} (fault address)", super::cpu::read_cr2());
    }
    let f = frame;
    crate::kprintln!(
        "    RIP={:#018x} CS={:#x} RFLAGS={:#x} RSP={:#018x} SS={:#x}",
        f.rip,
        f.cs,
        f.rflags,
        f.rsp,
        f.ss
    );
    crate::kprintln!(
        "    RAX={:#018x} RBX={:#018x} RCX={:#018x} RDX={:#018x}",
        f.rax,
        f.rbx,
        f.rcx,
        f.rdx
    );
    crate::kprintln!(
        "    RSI={:#018x} RDI={:#018x} RBP={:#018x} R8 ={:#018x}",
        f.rsi,
        f.rdi,
        f.rbp,
        f.r8
    );
    crate::kprintln!(
        "    R9 ={:#018x} R10={:#018x} R11={:#018x} R12={:#018x}",
        f.r9,
        f.r10,
        f.r11,
        f.r12
    );
    crate::kprintln!(
        "    R13={:#018x} R14={:#018x} R15={:#018x} CR3={:#018x}",
        f.r13,
        f.r14,
        f.r15,
        super::cpu::read_cr3()
    );
}
