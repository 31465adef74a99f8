//! Entry and exit of the loader, in assembly.
//!
//! * Entry: the multiboot-1 header (a.out kludge: the ELF64 file is taken as a flat image at
//!   1 MiB) and `_start32`, which builds page tables identity-mapping the first 4 GiB with
//!   2 MiB pages, switches to long mode and calls `stage2_main(magic, mbi)` on the loader's
//!   stack.
//! * Exit: [`enter_kernel32`] leaves long mode again (compatibility-mode code segment, paging
//!   off, EFER.LME off, PAE off) and jumps to the kernel entry in 32-bit protected mode with
//!   paging off, as kickstart does for amd64 (`jmp *entry`, spec 7.1): no register contents are
//!   promised (here EAX holds the entry address, the others are zero).

use core::arch::global_asm;

global_asm!(
    r#"
    .set MB_MAGIC, 0x1BADB002
    /* bit 0: page-align modules, bit 1: memory map, bit 16: addresses in header (a.out kludge) */
    .set MB_FLAGS, 0x00010003

    .section .multiboot, "a"
    .balign 4
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header             /* header_addr */
    .long __image_start         /* load_addr */
    .long __load_end            /* load_end_addr */
    .long __image_end           /* bss_end_addr */
    .long _start32              /* entry_addr */

    .section .text.entry, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    movl $s2_stack_top, %esp
    movl %eax, %edi             /* multiboot magic */
    movl %ebx, %esi             /* multiboot information (physical) */

    /* 2048 PD entries (4 PDs) of 2 MiB: identity map of 0 .. 4 GiB. */
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax             /* present, writable, 2 MiB */
    movl %eax, s2_pd(,%ecx,8)
    movl %ecx, %edx
    shrl $11, %edx              /* bits 32.. of (ecx << 21) */
    movl %edx, s2_pd+4(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jne 1b
    movl $s2_pd, %eax
    orl $3, %eax
    movl %eax, s2_pdpt
    addl $4096, %eax
    movl %eax, s2_pdpt+8
    addl $4096, %eax
    movl %eax, s2_pdpt+16
    addl $4096, %eax
    movl %eax, s2_pdpt+24
    movl $s2_pdpt, %eax
    orl $3, %eax
    movl %eax, s2_pml4

    movl %cr4, %eax
    orl $(1 << 5), %eax         /* PAE */
    movl %eax, %cr4
    movl $s2_pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx      /* EFER */
    rdmsr
    orl $(1 << 8), %eax         /* LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax       /* PG, PE */
    movl %eax, %cr0
    lgdt s2_gdt_ptr
    ljmp $0x08, $s2_long

    .code64
s2_long:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movl %edi, %edi             /* upper halves are undefined after the mode switch */
    movl %esi, %esi
    movq $s2_stack_top, %rsp
    xorl %ebp, %ebp
    call stage2_main
2:  hlt
    jmp 2b

    /* enter_kernel32(entry: u64 in RDI) -> ! */
    .global enter_kernel32
enter_kernel32:
    cli
    wbinvd
    movl %edi, %ebx
    pushq $0x18
    pushq $s2_compat
    lretq
    .code32
s2_compat:
    movw $0x20, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl %cr0, %eax
    andl $0x7FFFFFFF, %eax      /* paging off: leaves long mode */
    movl %eax, %cr0
    movl $0xC0000080, %ecx
    rdmsr
    andl $~(1 << 8), %eax       /* LME off */
    wrmsr
    movl %cr4, %eax
    andl $~(1 << 5), %eax       /* PAE off */
    movl %eax, %cr4
    xorl %eax, %eax
    movl %eax, %cr3
    xorl %ecx, %ecx
    xorl %edx, %edx
    xorl %esi, %esi
    xorl %edi, %edi
    xorl %ebp, %ebp
    movl %ebx, %eax
    xorl %ebx, %ebx
    jmp *%eax

    .section .data.s2_gdt, "aw"
    .balign 16
s2_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF    /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF    /* 0x10: data */
    .quad 0x00CF9A000000FFFF    /* 0x18: 32-bit code */
    .quad 0x00CF92000000FFFF    /* 0x20: 32-bit data */
s2_gdt_end:
s2_gdt_ptr:
    .word s2_gdt_end - s2_gdt - 1
    .long s2_gdt

    .section .bss.s2_tables, "aw", @nobits
    .balign 4096
s2_pml4:    .fill 4096, 1, 0
s2_pdpt:    .fill 4096, 1, 0
s2_pd:      .fill 4 * 4096, 1, 0
s2_stack:   .fill 32768, 1, 0
s2_stack_top:
    .text
    .code64
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    /// Leaves long mode and jumps to `entry` (32-bit physical address) with paging off.
    pub fn enter_kernel32(entry: u64) -> !;
}
