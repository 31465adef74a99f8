//! Global descriptor table and task state segment.
//!
//! Selector layout is dictated by `syscall`/`sysret` (STAR): kernel code 0x08, kernel data
//! 0x10, (user 32-bit code 0x1B), user data 0x23, user 64-bit code 0x2B (as in Pistachio, spec
//! 4.5). The TSS supplies the kernel stack for entries from user mode (RSP0, updated on every
//! thread switch) and separate stacks for double faults (IST1), NMIs (IST2) and machine
//! checks (IST3): those can arrive at any instruction, including the first ones of
//! `syscall_entry` that still run on the user's stack. The TSS is followed by the I/O
//! permission bitmap area (8 KiB + the terminating 0xFF byte), whose contents and whose use
//! (`iomap_base`) belong to `super::ioport` (IO-fpages, docs/decisions/005-io-fpages-tss-bitmap.md).
//!
//! Security: slot 0x18 (where `sysret` to 32-bit mode would find its code segment) is
//! deliberately empty. With a 32-bit user code segment, a far return to 0x1B put a user
//! thread into compatibility mode, where `syscall` enters through MSR CSTAR (issue 10,
//! docs/kernel-bugs.md). The only code segment user mode can name is 0x2B (64-bit); every
//! other selector a user loads into CS (far call, far jump, far return, `iretq`) raises #GP
//! in user mode, which becomes exception IPC. No LDT exists (LDTR is loaded null) and the GDT
//! holds no call gates. The kernel never executes `sysret`.

use core::arch::asm;
use core::mem::size_of;

use crate::sync::KernelCell;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
pub const USER_CS32: u16 = 0x18 | 3;
pub const USER_DS: u16 = 0x20 | 3;
pub const USER_CS: u16 = 0x28 | 3;
const TSS_SEL: u16 = 0x30;

#[repr(C, packed)]
pub struct Tss {
    _r0: u32,
    pub rsp0: u64,
    _rsp1: u64,
    _rsp2: u64,
    _r1: u64,
    pub ist: [u64; 7],
    _r2: u64,
    _r3: u16,
    pub(crate) iomap_base: u16,
}

/// Bytes of the I/O permission bitmap (one bit per port, 65,536 ports).
pub const IOMAP_BYTES: usize = 8192;

/// The TSS and, right after it (inside the TSS limit), the I/O permission bitmap. The byte
/// after the bitmap stays 0xFF: the CPU reads two bitmap bytes for every check.
#[repr(C, packed)]
pub struct TssArea {
    pub tss: Tss,
    pub iomap: [u8; IOMAP_BYTES],
    iomap_end: u8,
}

/// `iomap_base` value that lies beyond the TSS limit: every port is denied (IOPL 0).
pub const IOMAP_DENY_ALL: u16 = 0xFFFF;
/// `iomap_base` value that selects the bitmap in [`TssArea::iomap`].
pub const IOMAP_OFFSET: u16 = size_of::<Tss>() as u16;

pub(crate) static TSS: KernelCell<TssArea> = KernelCell::new(TssArea {
    tss: Tss {
        _r0: 0,
        rsp0: 0,
        _rsp1: 0,
        _rsp2: 0,
        _r1: 0,
        ist: [0; 7],
        _r2: 0,
        _r3: 0,
        iomap_base: IOMAP_DENY_ALL,
    },
    iomap: [0xFF; IOMAP_BYTES],
    iomap_end: 0xFF,
});

static GDT: KernelCell<[u64; 8]> = KernelCell::new([
    0,
    0x00AF_9A00_0000_FFFF, // 0x08 kernel code 64
    0x00CF_9200_0000_FFFF, // 0x10 kernel data
    0,                     // 0x18 no 32-bit user code segment (see the module comment)
    0x00CF_F200_0000_FFFF, // 0x20 user data
    0x00AF_FA00_0000_FFFF, // 0x28 user code 64
    0,                     // 0x30 TSS low
    0,                     // 0x38 TSS high
]);

#[repr(C, align(16))]
struct Stack([u8; 16384]);
static DOUBLE_FAULT_STACK: KernelCell<Stack> = KernelCell::new(Stack([0; 16384]));
static NMI_STACK: KernelCell<Stack> = KernelCell::new(Stack([0; 16384]));
static MACHINE_CHECK_STACK: KernelCell<Stack> = KernelCell::new(Stack([0; 16384]));

/// IST numbers (1-based, as in the IDT entry) of the vectors with their own stacks.
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

pub fn init() {
    // SAFETY: the only borrow of TSS in use; it ends before any call that touches it.
    let tss = &mut (unsafe { TSS.get() }).tss;
    let top = |s: &KernelCell<Stack>| s.as_ptr() as u64 + size_of::<Stack>() as u64;
    tss.ist[IST_DOUBLE_FAULT as usize - 1] = top(&DOUBLE_FAULT_STACK);
    tss.ist[IST_NMI as usize - 1] = top(&NMI_STACK);
    tss.ist[IST_MACHINE_CHECK as usize - 1] = top(&MACHINE_CHECK_STACK);
    let base = TSS.as_ptr() as u64;
    let limit = size_of::<TssArea>() as u64 - 1;
    // SAFETY: the only borrow of GDT in use; it ends before any call that touches it.
    let gdt = unsafe { GDT.get() };
    gdt[6] = (limit & 0xFFFF)
        | ((base & 0xFF_FFFF) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xF) << 48)
        | (((base >> 24) & 0xFF) << 56);
    gdt[7] = base >> 32;
    let ptr = DescriptorPointer {
        limit: (size_of::<[u64; 8]>() - 1) as u16,
        base: GDT.as_ptr() as u64,
    };
    // SAFETY: the GDT is static and keeps the boot selectors' meaning (0x08 code, 0x10 data);
    // the far return reloads CS from it.
    unsafe {
        asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "ltr {tss:x}",
            "lldt {null:x}",
            ptr = in(reg) &ptr,
            cs = in(reg) KERNEL_CS as u64,
            ds = in(reg) KERNEL_DS as u64,
            tss = in(reg) TSS_SEL as u64,
            null = in(reg) 0u64,
            tmp = out(reg) _,
        );
    }
}

/// Sets the stack the CPU switches to on an interrupt or exception from user mode.
pub fn set_kernel_stack(top: u64) {
    // SAFETY: the only borrow of TSS in use; it ends before any call that touches it.
    (unsafe { TSS.get() }).tss.rsp0 = top;
}

/// The I/O permission bitmap of the TSS (owned by `super::ioport`).
/// # Safety
/// No other reference to the TSS may be in use while the returned one is.
pub unsafe fn iomap() -> &'static mut [u8; IOMAP_BYTES] {
    // SAFETY: the only borrow of TSS in use; it ends before any call that touches it.
    &mut (unsafe { TSS.get() }).iomap
}

/// Selects the bitmap ([`IOMAP_OFFSET`]) or denies every port ([`IOMAP_DENY_ALL`]).
#[inline]
pub fn set_iomap_base(base: u16) {
    // SAFETY: the only borrow of TSS in use; it ends before any call that touches it.
    (unsafe { TSS.get() }).tss.iomap_base = base;
}
