//! Multiboot entry: from the loader's 32-bit protected mode to 64-bit Rust in the higher half.
//!
//! Owns the multiboot-1 header (a.out kludge, so that an ELF64 image is accepted by QEMU's
//! `-kernel` and by GRUB), the boot page tables and the boot stack. It touches nothing else:
//! once `kernel_main` runs, the real page tables are built by `arch::x86_64::paging` and these
//! boot tables are no longer used.
//!
//! Boot page tables map the first 1 GiB of physical memory twice with 2 MiB pages: identity
//! (so the trampoline keeps running after paging is switched on) and at `KERNEL_VMA`
//! (-2 GiB), where the kernel is linked.
//!
//! `_start32` is also the ELF entry, where a KIP-patching second-stage loader (kickstart) jumps
//! in 32-bit protected mode with paging off and no register contents defined; `kernel_main`
//! tells the two hand-overs apart by the KIP (`boot::kip_loader`), not by EAX.

use core::arch::global_asm;

/// Multiboot-1 magic the loader leaves in EAX.
pub const MULTIBOOT_LOADER_MAGIC: u32 = 0x2BAD_B002;

global_asm!(
    r#"
    .set MB_MAGIC, 0x1BADB002
    /* bit 0: page-align modules, bit 1: memory map, bit 16: addresses in header (a.out kludge) */
    .set MB_FLAGS, 0x00010003

    .section .multiboot, "a"
    .balign 4
multiboot_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long multiboot_header      /* header_addr */
    .long __image_phys_start    /* load_addr */
    .long __load_end_phys       /* load_end_addr */
    .long __bss_end_phys        /* bss_end_addr */
    .long _start32              /* entry_addr */

    .section .boot.text, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    movl $boot_stack_top, %esp
    movl %eax, %edi             /* multiboot magic */
    movl %ebx, %esi             /* multiboot info (physical) */

    /* Long mode available? (CPUID 0x80000001 EDX bit 29) */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    testl $(1 << 29), %edx
    jz no_long_mode

    /* Fill the boot PD: 512 x 2 MiB identity entries (present, writable, large). */
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, boot_pd(,%ecx,8)
    movl $0, boot_pd+4(,%ecx,8)
    incl %ecx
    cmpl $512, %ecx
    jne 1b

    movl $boot_pdpt_low, %eax
    orl $3, %eax
    movl %eax, boot_pml4
    movl $boot_pdpt_high, %eax
    orl $3, %eax
    movl %eax, boot_pml4 + 511 * 8
    movl $boot_pd, %eax
    orl $3, %eax
    movl %eax, boot_pdpt_low
    movl %eax, boot_pdpt_high + 510 * 8

    movl %cr4, %eax
    orl $(1 << 5), %eax         /* PAE */
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx      /* EFER */
    rdmsr
    orl $(1 << 8), %eax         /* LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax       /* PG, WP, PE */
    movl %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $start64_low

no_long_mode:
    /* Tell the person on the serial line, then stop. */
    movl $no_lm_msg, %esi
    movw $0x3F8, %dx
2:  lodsb
    testb %al, %al
    jz 3f
    outb %al, %dx
    jmp 2b
3:  hlt
    jmp 3b

    .code64
start64_low:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $boot_stack_high_top, %rsp
    xorl %ebp, %ebp
    /* edi = loader magic, esi = multiboot info (zero-extended by the 32-bit moves above) */
    movabsq $kernel_main, %rax
    call *%rax
4:  hlt
    jmp 4b

    .section .boot.data, "aw"
    .balign 4096
boot_pml4:      .fill 512, 8, 0
boot_pdpt_low:  .fill 512, 8, 0
boot_pdpt_high: .fill 512, 8, 0
boot_pd:        .fill 512, 8, 0
    .balign 16
boot_stack:     .fill 1024, 1, 0
boot_stack_top:
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF    /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF    /* 0x10: data */
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt
no_lm_msg:
    .asciz "kernel: this CPU has no long mode\r\n"

    .section .bss.boot_stack, "aw", @nobits
    .balign 16
boot_stack_high:
    .fill 65536, 1, 0
    .global boot_stack_high_top
boot_stack_high_top:
    .text
    "#,
    options(att_syntax)
);
