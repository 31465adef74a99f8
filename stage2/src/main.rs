//! stage2: a minimal second-stage boot loader that does what the reference kickstart does for
//! amd64 (spec 7.2/7.3), so that the tests can boot the kernel the way the reference boot chain
//! does: GRUB / QEMU `-kernel` → stage2 → kernel, sigma0, root server as modules.
//!
//! 1. takes the multiboot information of the first-stage loader (modules: kernel, sigma0, root
//!    server, further modules; a BIOS memory map is required);
//! 2. ELF-loads the kernel, sigma0 and the root server: every PT_LOAD segment at its p_paddr,
//!    BSS zeroed; a segment that overlaps the loader, a module file or another loaded image
//!    stops the boot ("choose a different link base"), as kickstart does;
//! 3. finds the KIP in the loaded kernel (first 4-byte aligned dword equal to the magic, from
//!    the start of the loaded image), checks that it is a 64-bit KIP with a memory-descriptor
//!    offset;
//! 4. writes memory descriptors from index 0 in kickstart's order (spec 7.3), the sigma0 and
//!    root-server fields (ip, low, high), a generic bootinfo page (SimpleExec for sigma0 and the
//!    root server, Module for the rest, Multiboot) and a copy of the multiboot information,
//!    then MemoryInfo.n and BootInfo;
//! 5. enters the kernel's ELF entry in 32-bit protected mode with paging off (`entry.rs`).
//!
//! Options on its own command line: `kmem=<n>[K|M|G]` (kernel memory reserved for the kernel,
//! default 16 MiB as kickstart), `bootinfo=no`, `mbi=no`. Written for this project from the
//! specification digest; it is test tooling, not part of the kernel.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod entry;
mod phys;

use core::fmt::Write;

use abi::bootinfo::{BootInfoWriter, SimpleExec};
use abi::kip::{KIP_MAGIC, Kip, MemDesc, MemType, MemoryInfo, bootloader_subtype};

use phys::{Console, rd32, rd64};

const MULTIBOOT_LOADER_MAGIC: u32 = 0x2BAD_B002;
const MAX_MODULES: usize = 16;
const MAX_REGIONS: usize = 32;
const CMDLINE: usize = 200;
/// Loaded images (kernel, sigma0, root server) and allocations are kept below this.
const LIMIT: u64 = 1 << 30;
/// kickstart places the kernel memory below 240 MiB.
const KMEM_LIMIT: u64 = 240 << 20;

macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(Console, $($arg)*);
    }};
}

fn fail(why: core::fmt::Arguments<'_>) -> ! {
    say!("stage2: {}", why);
    say!("stage2: cannot boot");
    loop {
        // SAFETY: halting with interrupts off stops the machine; nothing else to do.
        unsafe { core::arch::asm!("cli; hlt") };
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fail(format_args!("panic: {}", info.message()))
}

#[derive(Clone, Copy)]
struct Module {
    start: u64,
    end: u64,
    cmdline: [u8; CMDLINE],
    /// Loaded ELF image: [low, high), entry (modules 0..3 only).
    low: u64,
    high: u64,
    entry: u64,
    exec: SimpleExec,
}

impl Module {
    fn cmdline(&self) -> &[u8] {
        let n = self.cmdline.iter().position(|&c| c == 0).unwrap_or(CMDLINE);
        &self.cmdline[..n]
    }
}

#[derive(Clone, Copy, Default)]
struct Region {
    base: u64,
    len: u64,
    kind: u32,
}

/// Ranges `[start, end)` that allocations and loaded segments must not overlap.
struct Busy {
    r: [(u64, u64); 48],
    n: usize,
}

impl Busy {
    fn add(&mut self, s: u64, e: u64) {
        if self.n < self.r.len() && e > s {
            self.r[self.n] = (s, e);
            self.n += 1;
        }
    }
    fn hits(&self, s: u64, e: u64) -> Option<(u64, u64)> {
        self.r[..self.n]
            .iter()
            .copied()
            .find(|&(bs, be)| s < be && bs < e)
    }
}

fn copy_cstr(p: u64, out: &mut [u8; CMDLINE]) {
    if p == 0 {
        return;
    }
    for (i, slot) in out.iter_mut().enumerate().take(CMDLINE - 1) {
        let c = phys::bytes(p + i as u64, 1)[0];
        if c == 0 {
            break;
        }
        *slot = c;
    }
}

fn option<'a>(cmdline: &'a [u8], key: &str) -> Option<&'a [u8]> {
    cmdline.split(|&c| c == b' ').find_map(|w| {
        let eq = w.iter().position(|&c| c == b'=')?;
        (&w[..eq] == key.as_bytes()).then_some(&w[eq + 1..])
    })
}

fn size(s: &[u8]) -> Option<u64> {
    let (digits, mult) = match s.last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let mut v = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    v.checked_mul(mult)
}

/// Loads the PT_LOAD segments of the ELF64 file of `m` at their physical addresses.
fn load(idx: usize, m: &mut Module, busy: &Busy) {
    let (start, size) = (m.start, m.end - m.start);
    if size < 64 || phys::bytes(start, 4) != b"\x7fELF" {
        fail(format_args!("module {idx} is not an ELF file"));
    }
    if phys::bytes(start + 4, 1)[0] != 2 {
        fail(format_args!(
            "module {idx} is not an ELF64 file (32-bit images are not supported)"
        ));
    }
    let phoff = rd64(start + 32);
    let phentsize = (rd32(start + 54) & 0xFFFF) as u64;
    let phnum = (rd32(start + 56) & 0xFFFF) as u64;
    if phentsize < 56 || phoff.saturating_add(phentsize * phnum) > size {
        fail(format_args!("module {idx}: bad program headers"));
    }
    m.low = u64::MAX;
    for i in 0..phnum {
        let ph = start + phoff + i * phentsize;
        if rd32(ph) != 1 {
            continue;
        }
        let flags = rd32(ph + 4);
        let (off, vaddr, paddr) = (rd64(ph + 8), rd64(ph + 16), rd64(ph + 24));
        let (filesz, memsz) = (rd64(ph + 32), rd64(ph + 40));
        if memsz == 0 {
            continue;
        }
        let end = paddr.saturating_add(memsz);
        if off.saturating_add(filesz) > size || filesz > memsz || end > LIMIT {
            fail(format_args!("module {idx}: segment out of bounds"));
        }
        if let Some((bs, be)) = busy.hits(paddr, end) {
            fail(format_args!(
                "module {idx}: segment {paddr:#x}-{end:#x} overlaps {bs:#x}-{be:#x}; \
                 choose a different link base"
            ));
        }
        phys::bytes_mut(paddr, filesz).copy_from_slice(phys::bytes(start + off, filesz));
        phys::bytes_mut(paddr + filesz, memsz - filesz).fill(0);
        m.low = m.low.min(paddr);
        m.high = m.high.max(end);
        if flags & 1 != 0 {
            m.exec.text_pstart = paddr;
            m.exec.text_vstart = vaddr;
            m.exec.text_size = memsz;
        } else if m.exec.data_size == 0 {
            m.exec.data_pstart = paddr;
            m.exec.data_vstart = vaddr;
            m.exec.data_size = filesz;
            m.exec.bss_pstart = paddr + filesz;
            m.exec.bss_vstart = vaddr + filesz;
            m.exec.bss_size = memsz - filesz;
        }
    }
    if m.low == u64::MAX {
        fail(format_args!("module {idx}: no loadable segment"));
    }
    m.entry = rd64(start + 24);
    m.exec.initial_ip = m.entry;
    m.exec.flags = 2;
}

/// The KIP inside the loaded kernel image (spec 3.7): the first 4-byte aligned dword equal to
/// the magic, scanning from the page of the image start.
fn find_kip(low: u64, high: u64) -> Option<u64> {
    let mut p = low & !0xFFF;
    while p + 8 <= high {
        if rd32(p) as u64 == KIP_MAGIC & 0xFFFF_FFFF {
            return Some(p);
        }
        p += 4;
    }
    None
}

/// First free page-aligned range of `len` bytes (scanning upwards from page 1) inside usable
/// memory below 1 GiB, clear of everything in `busy`.
fn allocate(len: u64, regions: &[Region], busy: &Busy) -> Option<u64> {
    let len = (len + 0xFFF) & !0xFFF;
    for r in regions.iter().filter(|r| r.kind == 1) {
        let mut a = ((r.base + 0xFFF) & !0xFFF).max(0x1000);
        while a + len <= (r.base + r.len).min(LIMIT) {
            match busy.hits(a, a + len) {
                None => return Some(a),
                Some((_, be)) => a = (be + 0xFFF) & !0xFFF,
            }
        }
    }
    None
}

/// The kernel memory pool (kickstart's `kmem`): 2 MiB aligned, at the top of the first usable
/// region below 240 MiB that has room for it clear of `busy`.
fn place_kmem(kmem: u64, regions: &[Region], busy: &Busy) -> Option<(u64, u64)> {
    const ALIGN: u64 = 2 << 20;
    for r in regions.iter().filter(|r| r.kind == 1) {
        let mut end = (r.base + r.len).min(KMEM_LIMIT) & !(ALIGN - 1);
        while end >= kmem && end - kmem >= r.base {
            let start = end - kmem;
            if busy.hits(start, end).is_none() {
                return Some((start, end));
            }
            end -= ALIGN;
        }
    }
    None
}

/// Writes the copy of the multiboot information at `at` (spec 7.2 step 1 and 6): the MBI's
/// command line is the root server's, module and memory-map tables follow. Returns its size.
fn write_mbi_copy(at: u64, mbi: u64, mods: &[Module], regions: &[Region], emit: bool) -> u64 {
    let n = mods.len() as u64;
    let mods_at = at + 88;
    let mmap_at = mods_at + 16 * n;
    let mut strings = mmap_at + 24 * regions.len() as u64;
    let mut put_str = |s: &[u8], emit: bool| -> u64 {
        let p = strings;
        if emit {
            phys::bytes_mut(p, s.len() as u64).copy_from_slice(s);
            phys::bytes_mut(p + s.len() as u64, 1)[0] = 0;
        }
        strings += s.len() as u64 + 1;
        p
    };
    let root_line = put_str(mods.get(2).map_or(&[][..], |m| m.cmdline()), emit);
    let mut lines = [0u64; MAX_MODULES];
    for (i, m) in mods.iter().enumerate() {
        lines[i] = put_str(m.cmdline(), emit);
    }
    if emit {
        let hdr = phys::bytes_mut(at, 88);
        hdr.copy_from_slice(phys::bytes(mbi, 88));
        // Keep what is copied: memory sizes, boot device, command line, modules, memory map.
        let flags = rd32(mbi) & 0b100_1111;
        phys::wr32(at, flags);
        phys::wr32(at + 16, root_line as u32);
        phys::wr32(at + 20, n as u32);
        phys::wr32(at + 24, mods_at as u32);
        phys::wr32(at + 44, 24 * regions.len() as u32);
        phys::wr32(at + 48, mmap_at as u32);
        for (i, m) in mods.iter().enumerate() {
            let e = mods_at + 16 * i as u64;
            phys::wr32(e, m.start as u32);
            phys::wr32(e + 4, m.end as u32);
            phys::wr32(e + 8, lines[i] as u32);
            phys::wr32(e + 12, m.entry as u32);
        }
        for (i, r) in regions.iter().enumerate() {
            let e = mmap_at + 24 * i as u64;
            phys::wr32(e, 20);
            phys::wr64(e + 4, r.base);
            phys::wr64(e + 12, r.len);
            phys::wr32(e + 20, r.kind);
        }
    }
    strings - at
}

#[unsafe(no_mangle)]
extern "C" fn stage2_main(magic: u32, mbi: u64) -> ! {
    say!("stage2: second-stage loader (kickstart's job, spec 7.2)");
    if magic != MULTIBOOT_LOADER_MAGIC {
        fail(format_args!(
            "not started by a multiboot loader (magic {magic:#x})"
        ));
    }
    // 1. What the first-stage loader gave, copied before anything is overwritten.
    let flags = rd32(mbi);
    let mut own = [0u8; CMDLINE];
    if flags & (1 << 2) != 0 {
        copy_cstr(rd32(mbi + 16) as u64, &mut own);
    }
    let own_len = own.iter().position(|&c| c == 0).unwrap_or(CMDLINE);
    let own = &own[..own_len];
    if flags & (1 << 6) == 0 {
        fail(format_args!("No BIOS memory map"));
    }
    let mut regions = [Region::default(); MAX_REGIONS];
    let mut nregions = 0;
    let (mlen, maddr) = (rd32(mbi + 44) as u64, rd32(mbi + 48) as u64);
    let mut off = 0;
    while off + 24 <= mlen && nregions < MAX_REGIONS {
        let e = maddr + off;
        regions[nregions] = Region {
            base: rd64(e + 4),
            len: rd64(e + 12),
            kind: rd32(e + 20),
        };
        nregions += 1;
        off += rd32(e) as u64 + 4;
    }
    let regions = &regions[..nregions];
    let nmods = if flags & (1 << 3) != 0 {
        (rd32(mbi + 20) as usize).min(MAX_MODULES)
    } else {
        0
    };
    if nmods < 3 {
        fail(format_args!(
            "need the kernel, sigma0 and the root server as modules ({nmods} given)"
        ));
    }
    let mut mods = [Module {
        start: 0,
        end: 0,
        cmdline: [0; CMDLINE],
        low: 0,
        high: 0,
        entry: 0,
        exec: SimpleExec::default(),
    }; MAX_MODULES];
    let mods_addr = rd32(mbi + 24) as u64;
    for (i, m) in mods[..nmods].iter_mut().enumerate() {
        let e = mods_addr + 16 * i as u64;
        m.start = rd32(e) as u64;
        m.end = rd32(e + 4) as u64;
        copy_cstr(rd32(e + 8) as u64, &mut m.cmdline);
    }
    let mods = &mut mods[..nmods];
    let kmem = option(own, "kmem").and_then(size).unwrap_or(16 << 20);
    let want_bootinfo = option(own, "bootinfo") != Some(b"no");
    let want_mbi = option(own, "mbi") != Some(b"no");

    // 2. ELF-load the kernel, sigma0 and the root server.
    let mut busy = Busy {
        r: [(0, 0); 48],
        n: 0,
    };
    let (img_start, img_end) = phys::own_image();
    busy.add(img_start, img_end);
    for m in mods.iter() {
        busy.add(m.start, m.end);
    }
    for (i, m) in mods.iter_mut().enumerate().take(3) {
        load(i, m, &busy);
        busy.add(m.low, m.high);
        say!(
            "stage2: module {i} loaded at {:#x}-{:#x}, entry {:#x}",
            m.low,
            m.high,
            m.entry
        );
    }

    // 3. The KIP in the loaded kernel.
    let Some(kip) = find_kip(mods[0].low, mods[0].high) else {
        fail(format_args!("no KIP found in the kernel image"));
    };
    if rd32(kip + 4) != 0 {
        fail(format_args!("the KIP at {kip:#x} is not a 64-bit KIP"));
    }
    let field = |f: usize| kip + f as u64;
    let mem_off = MemoryInfo(rd64(field(core::mem::offset_of!(Kip, memory_info)))).offset() as u64;
    if mem_off == 0 || mem_off >= 4096 {
        fail(format_args!("the KIP has no memory-descriptor offset"));
    }
    let capacity = ((4096 - mem_off) / 16) as usize;
    say!("stage2: KIP at {kip:#x}, memory descriptors at +{mem_off:#x}");

    // 4. Memory descriptors, boot servers, bootinfo, MBI copy.
    let Some(pool) = place_kmem(kmem, regions, &busy) else {
        fail(format_args!(
            "no room for {} KiB of kernel memory below 240 MiB",
            kmem >> 10
        ));
    };
    busy.add(pool.0, pool.1);
    let bootinfo = if want_bootinfo {
        let a = allocate(4096, regions, &busy);
        if let Some(a) = a {
            busy.add(a, a + 4096);
        }
        a
    } else {
        None
    };
    let mbi_copy = if want_mbi {
        let len = write_mbi_copy(0, mbi, mods, regions, false);
        let a = allocate(len, regions, &busy);
        if let Some(a) = a {
            write_mbi_copy(a, mbi, mods, regions, true);
            busy.add(a, (a + len + 0xFFF) & !0xFFF);
        }
        a.map(|a| (a, (a + len + 0xFFF) & !0xFFF))
    } else {
        None
    };

    let mut n = 0usize;
    let mut add = |d: MemDesc| {
        if n >= capacity {
            fail(format_args!("KIP memory-descriptor array full"));
        }
        let at = kip + mem_off + 16 * n as u64;
        phys::wr64(at, d.word0);
        phys::wr64(at + 8, d.word1);
        n += 1;
    };
    add(MemDesc::new(MemType::Shared, 0, false, 0, u64::MAX));
    for r in regions.iter().filter(|r| r.len != 0) {
        let ty = if r.kind == 1 {
            MemType::Conventional
        } else {
            MemType::Arch
        };
        add(MemDesc::new(
            ty,
            r.kind as u8,
            false,
            r.base,
            r.base + r.len - 1,
        ));
    }
    add(MemDesc::new(MemType::Shared, 0, false, 0xA0000, 0xBFFFF));
    add(MemDesc::new(MemType::Shared, 0, false, 0xC0000, 0xEFFFF));
    add(MemDesc::new(
        MemType::Reserved,
        0,
        false,
        pool.0,
        pool.1 - 1,
    ));
    for m in &mods[1..3] {
        add(MemDesc::new(
            MemType::BootLoader,
            bootloader_subtype::INIT_SERVER,
            false,
            m.low,
            m.high - 1,
        ));
    }
    for m in &mods[3..] {
        add(MemDesc::new(
            MemType::BootLoader,
            bootloader_subtype::MODULE,
            false,
            m.start,
            m.end - 1,
        ));
    }
    if let Some(b) = bootinfo {
        add(MemDesc::new(
            MemType::BootLoader,
            bootloader_subtype::INIT_TABLE,
            false,
            b,
            b + 4095,
        ));
    }
    if let Some((s, e)) = mbi_copy {
        add(MemDesc::new(
            MemType::BootLoader,
            bootloader_subtype::INIT_TABLE,
            false,
            s,
            e - 1,
        ));
    }

    for (server, m) in [
        (core::mem::offset_of!(Kip, sigma0), &mods[1]),
        (core::mem::offset_of!(Kip, root_server), &mods[2]),
    ] {
        // BootServer {sp, ip, low, high}; sp stays 0 for an ELF64 image.
        phys::wr64(field(server) + 8, m.entry);
        phys::wr64(field(server) + 16, m.low);
        phys::wr64(field(server) + 24, m.high);
    }

    if let Some(b) = bootinfo {
        let page = phys::bytes_mut(b, 4096);
        let Ok(mut w) = BootInfoWriter::new(page) else {
            fail(format_args!("bootinfo"));
        };
        for (i, m) in mods.iter().enumerate().skip(1) {
            let ok = if i < 3 {
                w.add_simple_exec(&m.exec, Some(m.cmdline())).is_ok()
            } else {
                w.add_module(m.start, m.end - m.start, Some(m.cmdline()))
                    .is_ok()
            };
            if !ok {
                fail(format_args!("bootinfo does not fit in one page"));
            }
        }
        if let Some((s, _)) = mbi_copy
            && w.add_multiboot(s).is_err()
        {
            fail(format_args!("bootinfo does not fit in one page"));
        }
        w.finish();
    }
    let info = field(core::mem::offset_of!(Kip, memory_info));
    phys::wr64(info, MemoryInfo(rd64(info)).with_count(n as u32).0);
    let boot_info = bootinfo.or(mbi_copy.map(|m| m.0)).unwrap_or(0);
    phys::wr64(field(core::mem::offset_of!(Kip, boot_info)), boot_info);
    say!(
        "stage2: {n} memory descriptors, kernel memory {:#x}-{:#x}, BootInfo {boot_info:#x}",
        pool.0,
        pool.1 - 1
    );

    // 5. Into the kernel, as kickstart: 32-bit protected mode, paging off.
    say!("stage2: launching kernel at {:#x}", mods[0].entry);
    if mods[0].entry >= 1 << 32 {
        fail(format_args!("kernel entry above 4 GiB"));
    }
    // SAFETY: the kernel image is loaded and its KIP filled in; nothing of ours is used again.
    unsafe { entry::enter_kernel32(mods[0].entry) }
}
