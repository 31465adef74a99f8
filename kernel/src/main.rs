//! An L4 X.2 microkernel for x86-64, binary compatible with L4Ka::Pistachio's amd64 interface.
//!
//! Reading order: `kernel_main` below tells the boot story; `arch/x86_64` holds everything
//! specific to the CPU, `platform/pc` the PC devices, `boot` what the loader handed over, `mm`
//! the kernel memory pool. The generic kernel modules (one per L4 concept) sit at the top level.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::wildcard_imports)]

mod arch;
mod boot;
mod console;
mod exception;
mod exregs;
mod interrupt;
#[cfg(feature = "invariants")]
mod invariants;
mod io_space;
mod ipc;
mod kdb;
mod kip;
mod loader;
mod mapping;
mod mm;
mod platform;
mod profile;
mod schedule;
mod selftest;
mod space;
mod string;
mod sync;
mod syscall;
mod thread;
mod thread_control;

use arch::x86_64::{cpu, gdt, paging, trap};
use boot::multiboot::{self, BOOT};
use platform::pc::{self, pic, pit, serial};

pub const KERNEL_NAME: &str = "l4rs";
pub const KERNEL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Default size of the kernel memory pool.
const DEFAULT_KMEM: u64 = 64 << 20;
/// Timer interrupt rate.
pub const TICK_HZ: u64 = 1000;

unsafe extern "C" {
    static __image_phys_start: u8;
    static __bss_end_phys: u8;
}

/// Entered from the boot trampoline in 64-bit mode, on the boot stack, interrupts off.
#[unsafe(no_mangle)]
extern "C" fn kernel_main(magic: u32, mbi: u32) -> ! {
    serial::init();
    let t_first = cpu::rdtsc();
    kprintln!(
        "{} {}: L4 X.2 microkernel for x86-64 booting",
        KERNEL_NAME,
        KERNEL_VERSION
    );
    kprintln!("boot: first log line at tsc={}", t_first);

    cpu::init();
    gdt::init();
    trap::init();
    kprint!("cpu: features used:");
    cpu::features().describe(&mut |s| kprint!(" {}", s));
    kprintln!();
    let on = |b: bool| if b { "on" } else { "off (not in CPUID)" };
    kprintln!(
        "cpu: smep {}, smap {}",
        on(cpu::smep_on()),
        on(cpu::smap_on())
    );

    if let Err(e) = multiboot::parse(magic, mbi as u64) {
        match e {
            multiboot::Error::BadMagic(m) => {
                panic!("not started by a multiboot loader (magic {:#x})", m)
            }
            multiboot::Error::NoMemoryMap => panic!("the boot loader gave no memory map"),
        }
    }
    let boot = BOOT.get();
    kprintln!("boot: command line \"{}\"", boot.cmdline());
    let kdb_policy = kdb::init(boot.cmdline());
    kprintln!("kdb: policy {:?} (kdb=all|privileged|strict)", kdb_policy);
    let iopl_policy = trap::init_iopl_policy(boot.cmdline());
    kprintln!(
        "iopl: IOPL 3 for {:?} (iopl=none|privileged|all; other than none is UNSAFE)",
        iopl_policy
    );
    kprintln!("memory map:");
    let mut phys_top = 0;
    for r in boot.regions() {
        kprintln!(
            "  {:#014x}-{:#014x} {}",
            r.base,
            r.base + r.len - 1,
            multiboot::region_kind_name(r.kind)
        );
        if r.kind == 1 {
            phys_top = phys_top.max(r.base + r.len);
        }
    }
    kprintln!("modules: {}", boot.nmodules);
    for (i, m) in boot.modules().iter().enumerate() {
        kprintln!(
            "  [{}] {:#010x}-{:#010x} {}",
            i,
            m.start,
            m.end,
            m.cmdline()
        );
    }

    let kmem = boot::options::value(boot.cmdline(), "kmem")
        .and_then(boot::options::size)
        .unwrap_or(DEFAULT_KMEM);
    let mut targets = [(0u64, 0u64); 16];
    let ntargets = loader::load_targets(&mut targets);
    let (area_start, pool_end) = match choose_pool(kmem + BOOT_AREA, &targets[..ntargets]) {
        Some(p) => p,
        None => panic!(
            "no room for a kernel memory pool of {} KiB below 1 GiB",
            kmem >> 10
        ),
    };
    let boot_area = (area_start, area_start + BOOT_AREA);
    let pool_start = boot_area.1;
    mm::frame::init(pool_start, pool_end);
    // SAFETY: linker symbols; only addresses are used.
    let (img_start, img_end) = unsafe {
        (
            &__image_phys_start as *const u8 as u64,
            &__bss_end_phys as *const u8 as u64,
        )
    };
    kprintln!(
        "kernel: image {:#x}-{:#x}, memory pool {:#x}-{:#x} ({} KiB)",
        img_start,
        img_end - 1,
        pool_start,
        pool_end - 1,
        (pool_end - pool_start) >> 10
    );

    if !paging::init_kernel_tables(phys_top) {
        panic!("kernel memory pool too small for the kernel page tables");
    }
    kprintln!(
        "paging: kernel tables live, {} frames in use",
        mm::frame::in_use()
    );

    pic::init();
    let tsc_khz = pit::calibrate_tsc_khz();
    let tick_ns = pit::start_periodic(TICK_HZ);
    interrupt::init(tsc_khz, tick_ns);
    pic::unmask(0);
    kprintln!("timer: PIT tick {} ns, TSC {} kHz", tick_ns, tsc_khz);

    selftest::run_from_cmdline(boot.cmdline());

    kip::init(tsc_khz, tick_ns / 1000);
    arch::x86_64::syscall::init();
    if !thread::init() {
        panic!("kernel memory pool too small for the thread table");
    }
    let mut images = [loader::Image::default(); 2];
    let have_roots = boot.nmodules >= 2;
    if have_roots {
        let staging = (boot_area.0 + 4096, boot_area.1);
        if let Err(e) = loader::move_overlapping(&targets[..ntargets], staging) {
            panic!("boot modules: {}", e);
        }
        match loader::load_root_images() {
            Ok(i) => images = i,
            Err(e) => panic!("boot modules: {}", e),
        }
        kprintln!(
            "sigma0: {:#x}-{:#x} entry {:#x}",
            images[0].low,
            images[0].high,
            images[0].entry
        );
        kprintln!(
            "root server: {:#x}-{:#x} entry {:#x}",
            images[1].low,
            images[1].high,
            images[1].entry
        );
    }
    loader::describe_memory(
        (pool_start, pool_end),
        boot_area,
        if have_roots { &images } else { &[] },
    );
    if !loader::write_bootinfo(boot_area.0, if have_roots { &images } else { &[] }) {
        kprintln!("bootinfo: does not fit in one page; none written");
    }
    let boot_tcb = BOOT_TCB.as_ptr() as *mut thread::Tcb;
    if !schedule::init_idle(boot_tcb) {
        panic!("out of kernel memory creating the idle thread");
    }
    if have_roots {
        if let Err(e) = loader::start_root_servers() {
            panic!("root servers: {}", e);
        }
    } else {
        kprintln!("no boot modules: nothing to run (give sigma0 and a root server as modules)");
    }

    let t_ready = cpu::rdtsc();
    kprintln!(
        "kernel: ready at tsc={} ({} since first log line)",
        t_ready,
        t_ready - t_first
    );
    kprintln!(
        "kernel: {} frames of kernel memory in use",
        mm::frame::in_use()
    );
    if boot::options::value(boot.cmdline(), "exit") == Some("ready") {
        pc::qemu_exit(pc::EXIT_SUCCESS);
    }
    schedule::start(boot_tcb)
}

/// Room for the boot flow's TCB-shaped save area (only its stack pointer and FPU area are used).
#[repr(C, align(4096))]
struct BootTcb([u64; 4096 / 8]);
static BOOT_TCB: sync::KernelCell<BootTcb> = sync::KernelCell::new(BootTcb([0; 512]));
/// Bootinfo page and staging area for moved modules, just below the kernel pool.
const BOOT_AREA: u64 = 2 << 20;

/// Physical range of the kernel image (including bss).
pub fn kernel_image_range() -> (u64, u64) {
    // SAFETY: linker symbols; only addresses are used.
    unsafe {
        (
            &__image_phys_start as *const u8 as u64,
            &__bss_end_phys as *const u8 as u64,
        )
    }
}

/// Picks the kernel memory pool: `size` bytes, 2 MiB aligned, at the top of usable memory below
/// 1 GiB, clear of the kernel image and of every boot module.
fn choose_pool(size: u64, targets: &[(u64, u64)]) -> Option<(u64, u64)> {
    const ALIGN: u64 = 2 << 20;
    const LIMIT: u64 = 1 << 30;
    let boot = BOOT.get();
    // SAFETY: linker symbols; only addresses are used.
    let (img_start, img_end) = unsafe {
        (
            &__image_phys_start as *const u8 as u64,
            &__bss_end_phys as *const u8 as u64,
        )
    };
    let busy = |s: u64, e: u64| {
        (s < img_end && img_start < e)
            || boot.modules().iter().any(|m| s < m.end && m.start < e)
            || targets.iter().any(|&(ts, te)| s < te && ts < e)
    };
    let mut best: Option<(u64, u64)> = None;
    for r in boot.regions().iter().filter(|r| r.kind == 1) {
        let top = (r.base + r.len).min(LIMIT) & !(ALIGN - 1);
        let mut end = top;
        while end >= r.base + size && end >= size {
            let start = end - size;
            if start >= r.base && start >= (1 << 20) && !busy(start, end) {
                if best.is_none_or(|(b, _)| start > b) {
                    best = Some((start, end));
                }
                break;
            }
            end -= ALIGN;
        }
    }
    best
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Some(loc) = info.location() {
        kprintln!(
            "*** kernel panic at {}:{}: {}",
            loc.file(),
            loc.line(),
            info.message()
        );
    } else {
        kprintln!("*** kernel panic: {}", info.message());
    }
    pc::qemu_exit(pc::EXIT_FAILURE)
}
