//! The boot loader's job, done by the kernel itself when a multiboot loader started it (spec
//! preface and 7.2 to 7.4): load the ELF64 images of sigma0 and the root server at their
//! physical addresses, describe memory in the KIP, write the generic bootinfo. In both boot
//! ways (multiboot, or a KIP-patching loader such as kickstart): the kernel's own memory
//! descriptors, and creating and starting the two root threads from the KIP (6.8).

use abi::bootinfo::{BootInfoWriter, SimpleExec};
use abi::fpage::Fpage;
use abi::kip::{MemDesc, MemType};
use abi::thread_id::ThreadId;

use crate::arch::paging::{USER_END, phys_to_virt};
use crate::boot::multiboot::BOOT;
use crate::kip;
use crate::schedule;
use crate::thread::{self, State};

pub const ROOT_KIP_AREA: u64 = 0xBFF0_0000;
pub const ROOT_UTCB_AREA: u64 = 0xBF00_0000;
pub const ROOT_UTCB_AREA_LOG2: u64 = 18;

#[derive(Clone, Copy, Default)]
pub struct Image {
    pub entry: u64,
    pub low: u64,
    pub high: u64,
    pub exec: SimpleExec,
}

fn rd<const N: usize>(base: u64, off: u64) -> [u8; N] {
    let mut b = [0u8; N];
    // SAFETY: reads inside a boot module (physical memory through the direct map); callers
    // bound `off + N` by the module size.
    unsafe {
        core::ptr::copy_nonoverlapping(phys_to_virt(base + off) as *const u8, b.as_mut_ptr(), N)
    };
    b
}
fn u16_at(base: u64, off: u64) -> u64 {
    u16::from_le_bytes(rd::<2>(base, off)) as u64
}
fn u32_at(base: u64, off: u64) -> u64 {
    u32::from_le_bytes(rd::<4>(base, off)) as u64
}
fn u64_at(base: u64, off: u64) -> u64 {
    u64::from_le_bytes(rd::<8>(base, off))
}

/// The PT_LOAD segments of an ELF64 file: (file offset, filesz, paddr, vaddr, memsz, flags).
fn segments(
    start: u64,
    size: u64,
    mut f: impl FnMut(u64, u64, u64, u64, u64, u64),
) -> Result<u64, &'static str> {
    if size < 64 || rd::<4>(start, 0) != *b"\x7fELF" {
        return Err("not an ELF file");
    }
    if rd::<1>(start, 4)[0] != 2 || u16_at(start, 18) != 62 {
        return Err("not an x86-64 ELF64 file");
    }
    let phoff = u64_at(start, 32);
    let phentsize = u16_at(start, 54);
    let phnum = u16_at(start, 56);
    if phentsize < 56
        || phoff
            .checked_add(phentsize * phnum)
            .is_none_or(|e| e > size)
    {
        return Err("bad program headers");
    }
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(start, ph) != 1 {
            continue;
        }
        let flags = u32_at(start, ph + 4);
        let off = u64_at(start, ph + 8);
        let vaddr = u64_at(start, ph + 16);
        let paddr = u64_at(start, ph + 24);
        let filesz = u64_at(start, ph + 32);
        let memsz = u64_at(start, ph + 40);
        if off.checked_add(filesz).is_none_or(|e| e > size)
            || filesz > memsz
            || paddr.checked_add(memsz).is_none_or(|e| e > USER_END)
        {
            return Err("segment out of bounds");
        }
        f(off, filesz, paddr, vaddr, memsz, flags);
    }
    Ok(u64_at(start, 24))
}

/// Physical ranges the ELF images of modules 0 and 1 will occupy.
pub fn load_targets(out: &mut [(u64, u64); 16]) -> usize {
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let boot = unsafe { BOOT.get() };
    let mut n = 0;
    for m in boot.modules().iter().take(2) {
        let _ = segments(m.start, m.end - m.start, |_, _, paddr, _, memsz, _| {
            if n < out.len() && memsz > 0 {
                out[n] = (paddr, paddr + memsz);
                n += 1;
            }
        });
    }
    n
}

/// Loads module `idx` (moving it first if it overlaps a target is the caller's job).
fn load(idx: usize) -> Result<Image, &'static str> {
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let m = (unsafe { BOOT.get() }).modules()[idx];
    let mut img = Image {
        low: u64::MAX,
        ..Image::default()
    };
    let entry = segments(
        m.start,
        m.end - m.start,
        |off, filesz, paddr, vaddr, memsz, flags| {
            // SAFETY: target ranges were checked not to overlap the kernel, its pool or other
            // modules; copying within physical memory through the direct map.
            unsafe {
                core::ptr::copy(
                    phys_to_virt(m.start + off) as *const u8,
                    phys_to_virt(paddr) as *mut u8,
                    filesz as usize,
                );
                core::ptr::write_bytes(
                    phys_to_virt(paddr + filesz) as *mut u8,
                    0,
                    (memsz - filesz) as usize,
                );
            }
            img.low = img.low.min(paddr);
            img.high = img.high.max(paddr + memsz);
            if flags & 1 != 0 {
                img.exec.text_pstart = paddr;
                img.exec.text_vstart = vaddr;
                img.exec.text_size = memsz;
            } else {
                img.exec.data_pstart = paddr;
                img.exec.data_vstart = vaddr;
                img.exec.data_size = filesz;
                img.exec.bss_pstart = paddr + filesz;
                img.exec.bss_vstart = vaddr + filesz;
                img.exec.bss_size = memsz - filesz;
            }
        },
    )?;
    if img.low == u64::MAX {
        return Err("no loadable segment");
    }
    img.entry = entry;
    img.exec.initial_ip = entry;
    img.exec.flags = 2;
    Ok(img)
}

/// Moves module files that overlap a load target into `staging` (physical, free).
pub fn move_overlapping(targets: &[(u64, u64)], staging: (u64, u64)) -> Result<(), &'static str> {
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let boot = unsafe { BOOT.get() };
    let mut next = staging.0;
    for i in 0..boot.nmodules {
        let m = boot.modules[i];
        let overlaps = targets.iter().any(|&(s, e)| m.start < e && s < m.end);
        if !overlaps {
            continue;
        }
        let len = m.end - m.start;
        if next + len > staging.1 {
            return Err("no room to move an overlapping module");
        }
        // SAFETY: the staging area is free physical memory reserved for this at boot.
        unsafe {
            core::ptr::copy(
                phys_to_virt(m.start) as *const u8,
                phys_to_virt(next) as *mut u8,
                len as usize,
            )
        };
        boot.modules[i].start = next;
        boot.modules[i].end = next + len;
        next = (next + len + 0xFFF) & !0xFFF;
    }
    Ok(())
}

/// Memory descriptors in kickstart's order (spec 3.5, 7.3), for a multiboot boot; the kernel's
/// own follow (`describe_kernel_memory`).
pub fn describe_memory(pool: (u64, u64), boot_area: (u64, u64), images: &[Image]) {
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let boot = unsafe { BOOT.get() };
    let add = |ty, sub, v, lo, hi| {
        if !kip::add_memdesc(MemDesc::new(ty, sub, v, lo, hi)) {
            crate::kprintln!("kip: memory descriptor table full");
        }
    };
    add(MemType::Shared, 0, false, 0, u64::MAX);
    for r in boot.regions() {
        if r.len == 0 {
            continue;
        }
        if r.kind == 1 {
            // Subtype = e820 type (1), as kickstart writes it (spec 7.3, reference KIP).
            add(MemType::Conventional, 1, false, r.base, r.base + r.len - 1);
        } else {
            add(
                MemType::Arch,
                r.kind as u8,
                false,
                r.base,
                r.base + r.len - 1,
            );
        }
    }
    add(MemType::Shared, 0, false, 0xA0000, 0xBFFFF);
    add(MemType::Shared, 0, false, 0xC0000, 0xEFFFF);
    add(MemType::Reserved, 0, false, pool.0, pool.1 - 1);
    for img in images {
        add(
            MemType::BootLoader,
            abi::kip::bootloader_subtype::INIT_SERVER,
            false,
            img.low & !0x3FF,
            ((img.high + 0x3FF) & !0x3FF) - 1,
        );
    }
    for m in boot.modules().iter().skip(2) {
        add(
            MemType::BootLoader,
            abi::kip::bootloader_subtype::MODULE,
            false,
            m.start & !0x3FF,
            ((m.end + 0x3FF) & !0x3FF) - 1,
        );
    }
    add(
        MemType::BootLoader,
        abi::kip::bootloader_subtype::INIT_TABLE,
        false,
        boot_area.0,
        boot_area.1 - 1,
    );
}

/// The kernel's own descriptors, after the loader's (ours or kickstart's): our image reserved
/// (kickstart does not describe it), then the user area as virtual conventional memory.
pub fn describe_kernel_memory() {
    let (ilo, ihi) = crate::kernel_image_range();
    for d in [
        MemDesc::new(MemType::Reserved, 0, false, ilo, ihi - 1),
        MemDesc::new(MemType::Conventional, 0, true, 0, USER_END - 1),
    ] {
        if !kip::add_memdesc(d) {
            crate::kprintln!("kip: memory descriptor table full");
        }
    }
}

/// Writes the generic bootinfo at `at` (physical, one page): SimpleExec for sigma0 and the root
/// server, Module for the rest, then the Multiboot record.
pub fn write_bootinfo(at: u64, images: &[Image]) -> bool {
    // SAFETY: the boot area page is reserved for the bootinfo.
    let buf = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(at) as *mut u8, 4096) };
    let Ok(mut w) = BootInfoWriter::new(buf) else {
        return false;
    };
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let boot = unsafe { BOOT.get() };
    for (i, m) in boot.modules().iter().enumerate() {
        let cmd = m.cmdline().as_bytes();
        let ok = if i < images.len() {
            w.add_simple_exec(&images[i].exec, Some(cmd)).is_ok()
        } else {
            w.add_module(m.start, m.end - m.start, Some(cmd)).is_ok()
        };
        if !ok {
            return false;
        }
    }
    if w.add_multiboot(boot.mbi_phys).is_err() {
        return false;
    }
    w.finish();
    // SAFETY: the only reference to the KIP in use.
    (unsafe { kip::kip() }).kip.boot_info = at;
    true
}

/// Loads sigma0 and the root server; returns their images.
pub fn load_root_images() -> Result<[Image; 2], &'static str> {
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let boot = unsafe { BOOT.get() };
    if boot.nmodules < 2 {
        return Err("need two boot modules: sigma0, then the root server");
    }
    let s0 = load(0)?;
    let root = load(1)?;
    // SAFETY: the only reference to the KIP in use.
    let k = &mut (unsafe { kip::kip() }).kip;
    k.sigma0.ip = s0.entry;
    k.sigma0.low = s0.low;
    k.sigma0.high = s0.high;
    k.root_server.ip = root.entry;
    k.root_server.low = root.low;
    k.root_server.high = root.high;
    Ok([s0, root])
}

/// Creates sigma0 and the root server (spec 6.8) and makes them ready.
pub fn start_root_servers() -> Result<(), &'static str> {
    // SAFETY: the only reference to the KIP in use.
    let k = &(unsafe { kip::kip() }).kip;
    let sigma0_id = ThreadId::global(thread::SIGMA0_NO, 1);
    let root_id = ThreadId::global(thread::ROOT_NO, 1);
    for (id, ip, sp, pager, scheduler, is_sigma0) in [
        (
            sigma0_id,
            k.sigma0.ip,
            k.sigma0.sp,
            ThreadId::NIL,
            root_id,
            true,
        ),
        (
            root_id,
            k.root_server.ip,
            k.root_server.sp,
            sigma0_id,
            root_id,
            false,
        ),
    ] {
        let space = crate::space::create().ok_or("out of kernel memory")?;
        // SAFETY: a fresh space.
        let s = unsafe { &mut *space };
        s.privileged = true;
        s.sigma0 = is_sigma0;
        if is_sigma0 {
            if !crate::mapping::init(space) {
                return Err("kernel memory pool too small for the mapping database");
            }
            crate::io_space::init(space)?;
        }
        crate::space::map_kip(s, Fpage::new_log2(ROOT_KIP_AREA, 12))
            .map_err(|_| "out of kernel memory")?;
        s.utcb_area = Fpage::new_log2(ROOT_UTCB_AREA, ROOT_UTCB_AREA_LOG2);
        s.initialised = true;
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let t = (unsafe { thread::create(id, space, scheduler) }).ok_or("out of kernel memory")?;
        t.priority = thread::ROOT_PRIORITY;
        crate::kernel_state::with_kernel(|k| {
            crate::thread_control::activate(k, t, ROOT_UTCB_AREA, pager)
        })
        .map_err(|_| "out of kernel memory")?;
        let f = t.frame();
        f.rip = ip;
        f.rsp = sp;
        t.startup = false;
        t.ksp = crate::arch::context::prepare_stack(
            t.kstack_top() - crate::arch::trap::TRAP_FRAME_SIZE as u64,
            crate::syscall::enter_user,
            0,
        );
        t.state = State::Ready;
        crate::kernel_state::with_kernel(|k| schedule::enqueue(k, t));
    }
    Ok(())
}
