//! Multiboot-1 information (as left by QEMU `-kernel` or GRUB): parsed once, copied into
//! `BOOT`.

use crate::arch::paging::phys_to_virt;
use crate::sync::KernelCell;

pub const MAX_REGIONS: usize = 64;
pub const MAX_MODULES: usize = 16;
pub const CMDLINE_LEN: usize = 256;

#[derive(Clone, Copy)]
pub struct Region {
    pub base: u64,
    pub len: u64,
    /// e820 type: 1 usable, 2 reserved, 3 ACPI reclaimable, 4 ACPI NVS, 5 bad.
    pub kind: u32,
}

#[derive(Clone, Copy)]
pub struct Module {
    pub start: u64,
    pub end: u64,
    pub cmdline: [u8; CMDLINE_LEN],
}

impl Module {
    pub fn cmdline(&self) -> &str {
        cstr(&self.cmdline)
    }
}

pub struct BootInfo {
    pub mbi_phys: u64,
    pub cmdline: [u8; CMDLINE_LEN],
    pub regions: [Region; MAX_REGIONS],
    pub nregions: usize,
    pub modules: [Module; MAX_MODULES],
    pub nmodules: usize,
}

impl BootInfo {
    pub fn cmdline(&self) -> &str {
        cstr(&self.cmdline)
    }
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.nregions]
    }
    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.nmodules]
    }
}

pub static BOOT: KernelCell<BootInfo> = KernelCell::new(BootInfo {
    mbi_phys: 0,
    cmdline: [0; CMDLINE_LEN],
    regions: [Region {
        base: 0,
        len: 0,
        kind: 0,
    }; MAX_REGIONS],
    nregions: 0,
    modules: [Module {
        start: 0,
        end: 0,
        cmdline: [0; CMDLINE_LEN],
    }; MAX_MODULES],
    nmodules: 0,
});

fn cstr(b: &[u8]) -> &str {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    core::str::from_utf8(&b[..n]).unwrap_or("?")
}

fn rd32(p: u64) -> u32 {
    // SAFETY: reads of the loader's structures through the physical window; the loader put
    // them in RAM below 1 GiB (mapped by the boot tables).
    unsafe { core::ptr::read_unaligned(phys_to_virt(p) as *const u32) }
}

fn rd64(p: u64) -> u64 {
    // SAFETY: as for `rd32`.
    unsafe { core::ptr::read_unaligned(phys_to_virt(p) as *const u64) }
}

fn copy_cstr(p: u64, out: &mut [u8]) {
    if p == 0 {
        return;
    }
    for (i, slot) in out.iter_mut().enumerate().take(CMDLINE_LEN - 1) {
        // SAFETY: as for `rd32`; strings are NUL-terminated and bounded by `out`.
        let c = unsafe { *(phys_to_virt(p + i as u64) as *const u8) };
        if c == 0 {
            break;
        }
        *slot = c;
    }
}

pub enum Error {
    BadMagic(u32),
    NoMemoryMap,
}

pub fn parse(magic: u32, mbi: u64) -> Result<(), Error> {
    if magic != crate::arch::boot::MULTIBOOT_LOADER_MAGIC {
        return Err(Error::BadMagic(magic));
    }
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let b = unsafe { BOOT.get() };
    b.mbi_phys = mbi;
    let flags = rd32(mbi);
    if flags & (1 << 2) != 0 {
        copy_cstr(rd32(mbi + 16) as u64, &mut b.cmdline);
    }
    if flags & (1 << 3) != 0 {
        let count = rd32(mbi + 20) as usize;
        let addr = rd32(mbi + 24) as u64;
        for i in 0..count.min(MAX_MODULES) {
            let e = addr + 16 * i as u64;
            let m = &mut b.modules[i];
            m.start = rd32(e) as u64;
            m.end = rd32(e + 4) as u64;
            copy_cstr(rd32(e + 8) as u64, &mut m.cmdline);
        }
        b.nmodules = count.min(MAX_MODULES);
    }
    if flags & (1 << 6) == 0 {
        return Err(Error::NoMemoryMap);
    }
    let len = rd32(mbi + 44) as u64;
    let addr = rd32(mbi + 48) as u64;
    let mut off = 0;
    while off + 24 <= len && b.nregions < MAX_REGIONS {
        let e = addr + off;
        let size = rd32(e) as u64;
        b.regions[b.nregions] = Region {
            base: rd64(e + 4),
            len: rd64(e + 12),
            kind: rd32(e + 20),
        };
        b.nregions += 1;
        off += size + 4;
    }
    Ok(())
}

pub fn region_kind_name(kind: u32) -> &'static str {
    match kind {
        1 => "usable",
        2 => "reserved",
        3 => "ACPI reclaimable",
        4 => "ACPI NVS",
        5 => "bad",
        _ => "other",
    }
}

/// Kernel command line from the multiboot information a KIP-patching loader copied for the
/// root server (spec 7.2): the line of module 0, the kernel itself. Nothing else of it is used.
pub fn read_kernel_cmdline(mbi: u64) {
    // Only what the boot tables' 1 GiB window reaches is read.
    const WINDOW: u64 = 1 << 30;
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let b = unsafe { BOOT.get() };
    if mbi + 32 > WINDOW {
        return;
    }
    b.mbi_phys = mbi;
    let flags = rd32(mbi);
    if flags & (1 << 3) == 0 || rd32(mbi + 20) == 0 {
        return;
    }
    let entry = rd32(mbi + 24) as u64;
    if entry + 16 > WINDOW {
        return;
    }
    let line = rd32(entry + 8) as u64;
    if line + CMDLINE_LEN as u64 <= WINDOW {
        copy_cstr(line, &mut b.cmdline);
    }
}
