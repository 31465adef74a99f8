//! Reading and writing user memory from the kernel without trusting it.
//!
//! Each access is one instruction at a known address; if it faults, the page-fault handler
//! (`fixup`) resumes at the matching recovery label and the access reports failure. Callers
//! check that the range is below `USER_END` first, so a user pointer can never reach kernel
//! memory.
//!
//! These accessors are the only code that touches user pages through user virtual addresses
//! (everything else goes through the kernel's own mappings: UTCBs and string copies through
//! the direct map). With SMAP on (cpu.rs), each access is bracketed by `stac`/`clac`: the
//! sites are 3-byte no-ops listed in `.smap_sites` and patched into the real instructions at
//! boot when the CPU has SMAP (without it they stay no-ops); no CPUID check at run time.
//! The fixup path clears AC too (the faulting access left it set).

use core::arch::global_asm;

use super::paging::USER_END;

global_asm!(
    r#"
    .text
    /* user_load_u8(addr: rdi) -> rax = byte, rdx = 0 ok / 1 fault */
    .global user_load_u8
user_load_u8:
    xorl %edx, %edx
661: .byte 0x0f, 0x1f, 0x00     /* stac when SMAP */
    .pushsection .smap_sites, "a"
    .quad 661b, 1
    .popsection
    .global user_load_u8_insn
user_load_u8_insn:
    movzbq (%rdi), %rax
662: .byte 0x0f, 0x1f, 0x00     /* clac when SMAP */
    .pushsection .smap_sites, "a"
    .quad 662b, 0
    .popsection
    ret
    /* user_load_u64(addr: rdi, 8-aligned) -> rax = word, rdx = 0 ok / 1 fault */
    .global user_load_u64
user_load_u64:
    xorl %edx, %edx
663: .byte 0x0f, 0x1f, 0x00     /* stac when SMAP */
    .pushsection .smap_sites, "a"
    .quad 663b, 1
    .popsection
    .global user_load_u64_insn
user_load_u64_insn:
    movq (%rdi), %rax
664: .byte 0x0f, 0x1f, 0x00     /* clac when SMAP */
    .pushsection .smap_sites, "a"
    .quad 664b, 0
    .popsection
    ret
    .global user_access_fixup
user_access_fixup:
665: .byte 0x0f, 0x1f, 0x00     /* clac when SMAP */
    .pushsection .smap_sites, "a"
    .quad 665b, 0
    .popsection
    movl $1, %edx
    xorl %eax, %eax
    ret
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    fn user_load_u8_insn();
    fn user_load_u64_insn();
    fn user_access_fixup();
}

#[repr(C)]
struct Ret {
    value: u64,
    fault: u64,
}

unsafe extern "sysv64" {
    fn user_load_u8(addr: u64) -> Ret;
    fn user_load_u64(addr: u64) -> Ret;
}

/// If `rip` is one of the guarded user accesses, returns where to resume.
pub fn fixup(rip: u64) -> Option<u64> {
    let r = rip as usize;
    if r == user_load_u8_insn as unsafe extern "C" fn() as usize
        || r == user_load_u64_insn as unsafe extern "C" fn() as usize
    {
        Some(user_access_fixup as unsafe extern "C" fn() as usize as u64)
    } else {
        None
    }
}

fn user_range_ok(addr: u64, len: u64) -> bool {
    addr.checked_add(len).is_some_and(|end| end <= USER_END)
}

/// One byte of the current address space's user memory, if mapped and readable.
pub fn read_u8(addr: u64) -> Option<u8> {
    if !user_range_ok(addr, 1) {
        return None;
    }
    // SAFETY: a guarded access: a fault resumes at the fixup and reports failure.
    let r = unsafe { user_load_u8(addr) };
    (r.fault == 0).then_some(r.value as u8)
}

/// An 8-byte aligned word of the current address space's user memory, if mapped and readable.
pub fn read_u64(addr: u64) -> Option<u64> {
    if addr & 7 != 0 || !user_range_ok(addr, 8) {
        return None;
    }
    // SAFETY: a guarded access, as in `read_u8`; aligned, so it cannot cross a page.
    let r = unsafe { user_load_u64(addr) };
    (r.fault == 0).then_some(r.value)
}

pub fn read_bytes(addr: u64, out: &mut [u8]) -> bool {
    for (i, b) in out.iter_mut().enumerate() {
        match read_u8(addr + i as u64) {
            Some(v) => *b = v,
            None => return false,
        }
    }
    true
}
