//! Interrupt and exception entry: the IDT, the assembly stubs, and the saved user/kernel state.
//!
//! Every vector enters through a stub that pushes a uniform `TrapFrame` and calls
//! `trap_dispatch`, which hands the frame to the generic kernel (`crate::exception`,
//! `crate::interrupt`). The same frame layout is used by the system-call entry, so the user
//! state of a thread in the kernel is always one `TrapFrame` at the top of its kernel stack.

use core::arch::global_asm;
use core::mem::size_of;

use super::gdt::KERNEL_CS;
use crate::sync::KernelCell;

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
    movq %rsp, %rdi
    call *trap_dispatch_vector(%rip)
    .global trap_return
trap_return:
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

pub const VEC_BREAKPOINT: usize = 3;
pub const VEC_DOUBLE_FAULT: usize = 8;

pub fn init() {
    let idt = IDT.get();
    for v in 0..NUM_VECTORS {
        // SAFETY: the table is a static array of NUM_VECTORS code addresses emitted above.
        let addr = unsafe { trap_stub_table[v] };
        // Interrupt gates (IF cleared on entry); int3 callable from user mode (KDB interface).
        let dpl = if v == VEC_BREAKPOINT { 3 } else { 0 };
        idt[v] = IdtEntry {
            off_lo: addr as u16,
            sel: KERNEL_CS,
            ist: if v == VEC_DOUBLE_FAULT { 1 } else { 0 },
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
    let v = frame.vector as usize;
    if v < 32 {
        crate::exception::handle(frame);
    } else {
        crate::interrupt::handle_irq(v - 32, frame);
    }
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
