//! CPU primitives: port I/O, control registers, MSRs, CPUID feature discovery.
//!
//! Every instruction the rest of the kernel needs that Rust cannot express lives here, each in
//! a small wrapper; callers stay free of inline assembly.

use core::arch::asm;

use crate::sync::KernelCell;

pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O has no memory effects visible to Rust; ports used are the PC's.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc reads a counter; no memory effects.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    ((hi as u64) << 32) | lo as u64
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: callers pass architectural MSRs that exist on every x86-64 CPU or were checked.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    ((hi as u64) << 32) | lo as u64
}

/// # Safety
/// Writing an MSR can change the CPU's operating mode; callers own the MSR they write.
pub unsafe fn wrmsr(msr: u32, v: u64) {
    // SAFETY: see the function contract.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack, preserves_flags))
    }
}

pub fn read_cr0() -> u64 {
    let v;
    // SAFETY: reading a control register has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// # Safety
/// The caller keeps the CPU in a mode the kernel supports (paging and protection on).
pub unsafe fn write_cr0(v: u64) {
    // SAFETY: see the function contract.
    unsafe { asm!("mov cr0, {}", in(reg) v, options(nostack, preserves_flags)) }
}

pub fn read_cr2() -> u64 {
    let v;
    // SAFETY: reading a control register has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

pub fn read_cr3() -> u64 {
    let v;
    // SAFETY: reading a control register has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// # Safety
/// `v` must be the physical address of a valid PML4 that maps the running kernel.
pub unsafe fn write_cr3(v: u64) {
    // SAFETY: see the function contract.
    unsafe { asm!("mov cr3, {}", in(reg) v, options(nostack, preserves_flags)) }
}

pub fn read_cr4() -> u64 {
    let v;
    // SAFETY: reading a control register has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// # Safety
/// Only bits for features CPUID reported may be set.
pub unsafe fn write_cr4(v: u64) {
    // SAFETY: see the function contract.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) }
}

pub fn invlpg(addr: u64) {
    // SAFETY: invalidating a TLB entry is always safe.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) }
}

pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stopping the CPU with interrupts off.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) }
    }
}

pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

pub fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// CPU features the kernel uses when present (and only then).
#[derive(Clone, Copy, Default, Debug)]
pub struct Features {
    pub nx: bool,
    pub pge: bool,
    pub pdpe1gb: bool,
    pub fxsr: bool,
    pub sse: bool,
    pub pcid: bool,
    pub smep: bool,
    pub smap: bool,
    pub umip: bool,
    pub sep: bool,
    pub fsgsbase: bool,
    pub invariant_tsc: bool,
    pub apic: bool,
}

pub static FEATURES: KernelCell<Features> = KernelCell::new(Features {
    nx: false,
    pge: false,
    pdpe1gb: false,
    fxsr: false,
    sse: false,
    pcid: false,
    smep: false,
    smap: false,
    umip: false,
    sep: false,
    fsgsbase: false,
    invariant_tsc: false,
    apic: false,
});

pub fn features() -> Features {
    *FEATURES.get()
}

pub const MSR_EFER: u32 = 0xC000_0080;
pub const MSR_STAR: u32 = 0xC000_0081;
pub const MSR_LSTAR: u32 = 0xC000_0082;
pub const MSR_FMASK: u32 = 0xC000_0084;
pub const MSR_CSTAR: u32 = 0xC000_0083;
pub const MSR_GS_BASE: u32 = 0xC000_0101;
pub const MSR_SYSENTER_CS: u32 = 0x174;
pub const MSR_SYSENTER_ESP: u32 = 0x175;
pub const MSR_SYSENTER_EIP: u32 = 0x176;

const CR4_TSD: u64 = 1 << 2;
const CR4_PCE: u64 = 1 << 8;
const CR4_UMIP: u64 = 1 << 11;
const CR4_FSGSBASE: u64 = 1 << 16;
const CR4_SMEP: u64 = 1 << 20;
const CR4_SMAP: u64 = 1 << 21;

/// Discovers features and switches on the ones the kernel relies on: NX, global pages, SSE
/// (for user threads), syscall; and the protections that keep user mode out of ring 0:
/// SMEP (the kernel never executes user pages), SMAP (the kernel touches user pages only
/// inside the guarded accessors of `usercopy`, between `stac` and `clac`), UMIP (no
/// `sgdt`/`sidt`/`str`/`sldt`/`smsw` in user mode). User-mode access to the FS/GS base
/// instructions, `rdpmc` stays off; `rdtsc` stays allowed (Pistachio's user library reads it).
pub fn init() {
    let l1 = cpuid(1, 0);
    let max_ext = cpuid(0x8000_0000, 0).eax;
    let e1 = if max_ext >= 0x8000_0001 {
        cpuid(0x8000_0001, 0)
    } else {
        cpuid(0, 0)
    };
    let l7 = if cpuid(0, 0).eax >= 7 {
        cpuid(7, 0)
    } else {
        CpuidResult {
            eax: 0,
            ebx: 0,
            ecx: 0,
            edx: 0,
        }
    };
    let inv = max_ext >= 0x8000_0007 && cpuid(0x8000_0007, 0).edx & (1 << 8) != 0;
    let f = Features {
        nx: max_ext >= 0x8000_0001 && e1.edx & (1 << 20) != 0,
        pge: l1.edx & (1 << 13) != 0,
        pdpe1gb: max_ext >= 0x8000_0001 && e1.edx & (1 << 26) != 0,
        fxsr: l1.edx & (1 << 24) != 0,
        sse: l1.edx & (1 << 25) != 0,
        pcid: l1.ecx & (1 << 17) != 0,
        smep: l7.ebx & (1 << 7) != 0,
        smap: l7.ebx & (1 << 20) != 0,
        umip: l7.ecx & (1 << 2) != 0,
        sep: l1.edx & (1 << 11) != 0,
        fsgsbase: l7.ebx & 1 != 0,
        invariant_tsc: inv,
        apic: l1.edx & (1 << 9) != 0,
    };
    *FEATURES.get() = f;

    let mut efer = rdmsr(MSR_EFER);
    efer |= 1; // SCE: syscall/sysret
    if f.nx {
        efer |= 1 << 11;
    }
    // SAFETY: enabling syscall and (if present) NX does not change how the kernel runs.
    unsafe { wrmsr(MSR_EFER, efer) };

    // `stac`/`clac` sites are patched in before SMAP goes on (they are no-ops until then).
    if f.smap {
        patch_smap_sites();
    }
    let mut cr4 = read_cr4() & !(CR4_TSD | CR4_PCE | CR4_FSGSBASE);
    if f.smep {
        cr4 |= CR4_SMEP;
    }
    if f.smap {
        cr4 |= CR4_SMAP;
    }
    if f.umip {
        cr4 |= CR4_UMIP;
    }
    if f.pge {
        cr4 |= 1 << 7;
    }
    if f.fxsr {
        cr4 |= (1 << 9) | (1 << 10); // OSFXSR, OSXMMEXCPT
    }
    // SAFETY: only features CPUID reported.
    unsafe { write_cr4(cr4) };
    // CR0: MP on, EM off, NE on (native FPU errors), TS off.
    let cr0 = (read_cr0() | (1 << 1) | (1 << 5)) & !((1 << 2) | (1 << 3));
    // SAFETY: standard FPU configuration.
    unsafe { write_cr0(cr0) };
}

impl Features {
    pub fn describe(&self, out: &mut dyn FnMut(&'static str)) {
        let all = [
            ("nx", self.nx),
            ("pge", self.pge),
            ("pdpe1gb", self.pdpe1gb),
            ("fxsr", self.fxsr),
            ("sse", self.sse),
            ("pcid", self.pcid),
            ("smep", self.smep),
            ("smap", self.smap),
            ("umip", self.umip),
            ("fsgsbase", self.fsgsbase),
            ("invariant-tsc", self.invariant_tsc),
            ("apic", self.apic),
        ];
        for (name, on) in all {
            if on {
                out(name);
            }
        }
    }
}

/// Is SMEP on (CR4)? For the boot log and tests.
pub fn smep_on() -> bool {
    read_cr4() & CR4_SMEP != 0
}

/// Is SMAP on (CR4)?
pub fn smap_on() -> bool {
    read_cr4() & CR4_SMAP != 0
}

unsafe extern "C" {
    static __smap_sites_start: [u64; 0];
    static __smap_sites_end: [u64; 0];
}

/// Turns every `SMAP_STAC`/`SMAP_CLAC` site (a 3-byte no-op; list in `.smap_sites`, pairs of
/// address and kind) into the real instruction. Runs once, before SMAP is switched on, while
/// the boot page tables still map the image writable; no other code runs concurrently.
fn patch_smap_sites() {
    // SAFETY: linker symbols bracketing the `.smap_sites` table (pairs of u64).
    let (start, end) = unsafe {
        (
            __smap_sites_start.as_ptr() as usize,
            __smap_sites_end.as_ptr() as usize,
        )
    };
    let mut p = start;
    while p + 16 <= end {
        // SAFETY: `p` is within the table; each entry is (site address, 0 = clac / 1 = stac).
        let (site, kind) = unsafe { (*(p as *const u64), *((p + 8) as *const u64)) };
        let insn: [u8; 3] = if kind == 1 {
            [0x0F, 0x01, 0xCB]
        } else {
            [0x0F, 0x01, 0xCA]
        };
        for (i, b) in insn.iter().enumerate() {
            // SAFETY: the site is a 3-byte no-op in the kernel text, written through the boot
            // tables' writable mapping of the image before any of it can run concurrently.
            unsafe { core::ptr::write_volatile((site + i as u64) as *mut u8, *b) };
        }
        p += 16;
    }
}
