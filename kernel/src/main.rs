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
mod counters;
mod debug;
mod decode;
mod exception;
mod exregs;
mod fastpath;
mod interrupt;
#[cfg(feature = "invariants")]
mod invariants;
mod io_space;
mod ipc;
mod kdb;
mod kernel_state;
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

use arch::{cpu, gdt, paging, trap};
use boot::multiboot::{self, BOOT};
use platform::{pic, pit, serial};

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

    // Who loaded us (spec 7): a second-stage loader that patched the KIP (kickstart; its
    // values are the truth) or a multiboot loader (we do the loader's job ourselves).
    let by_loader = boot::kip_loader::patched();
    let plan = if by_loader {
        plan_from_kip()
    } else {
        plan_from_multiboot(magic, mbi)
    };
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let boot = unsafe { BOOT.get() };
    let (pool_start, pool_end) = plan.pool;
    mm::frame::init(pool_start, pool_end);
    let (img_start, img_end) = kernel_image_range();
    kprintln!(
        "kernel: image {:#x}-{:#x}, memory pool {:#x}-{:#x} ({} KiB)",
        img_start,
        img_end - 1,
        pool_start,
        pool_end - 1,
        (pool_end - pool_start) >> 10
    );

    if !paging::init_kernel_tables(plan.phys_top) {
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
    arch::syscall::init();
    if !thread::init() {
        panic!("kernel memory pool too small for the thread table");
    }
    let have_roots = if by_loader {
        roots_from_kip()
    } else {
        roots_from_multiboot(&plan)
    };
    // SAFETY: the only reference to the KIP in use.
    let k = &(unsafe { kip::kip() }).kip;
    if have_roots {
        kprintln!(
            "sigma0: {:#x}-{:#x} entry {:#x}",
            k.sigma0.low,
            k.sigma0.high,
            k.sigma0.ip
        );
        kprintln!(
            "root server: {:#x}-{:#x} entry {:#x}",
            k.root_server.low,
            k.root_server.high,
            k.root_server.ip
        );
    }
    // The kernel's own memory descriptors follow the loader's (spec 3.5, 7.3).
    loader::describe_kernel_memory();
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
        platform::qemu_exit(platform::EXIT_SUCCESS);
    }
    schedule::start(boot_tcb)
}

/// What the boot path decided before the kernel's own memory exists.
struct Plan {
    /// The kernel memory pool (physical).
    pool: (u64, u64),
    /// End of conventional physical memory (extent of the direct map).
    phys_top: u64,
    /// Multiboot only: bootinfo page and staging area for moved modules.
    boot_area: (u64, u64),
    /// Multiboot only: physical ranges the ELF images of sigma0 and the root server occupy.
    targets: [(u64, u64); 16],
    ntargets: usize,
}

/// Boot by a multiboot loader: parse its information; the pool is chosen by us.
fn plan_from_multiboot(magic: u32, mbi: u32) -> Plan {
    if let Err(e) = multiboot::parse(magic, mbi as u64) {
        match e {
            multiboot::Error::BadMagic(m) => panic!(
                "not started by a multiboot loader (magic {:#x}) nor by a loader that fills in \
                 the KIP",
                m
            ),
            multiboot::Error::NoMemoryMap => panic!("the boot loader gave no memory map"),
        }
    }
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let boot = unsafe { BOOT.get() };
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
    Plan {
        pool: (area_start + BOOT_AREA, pool_end),
        phys_top,
        boot_area: (area_start, area_start + BOOT_AREA),
        targets,
        ntargets,
    }
}

/// Boot by a KIP-patching loader (kickstart): memory descriptors, boot servers and BootInfo
/// are the loader's; kernel memory is what it reserved.
fn plan_from_kip() -> Plan {
    boot::kip_loader::read_cmdline();
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let boot = unsafe { BOOT.get() };
    // SAFETY: the only reference to the KIP in use.
    let k = unsafe { kip::kip() };
    kprintln!("boot: started by a loader that filled in the KIP; its values are used");
    kprintln!("boot: command line \"{}\"", boot.cmdline());
    let n = abi::kip::MemoryInfo(k.kip.memory_info).count() as usize;
    kprintln!("memory descriptors from the boot loader: {}", n);
    for d in &k.mem_desc[..n.min(kip::MAX_MEMDESC)] {
        kprintln!(
            "  {:#014x}-{:#014x} type {:#x}{}",
            d.low(),
            d.high(),
            d.l4_type(),
            if d.is_virtual() { " virtual" } else { "" }
        );
    }
    if boot::options::value(boot.cmdline(), "kmem").is_some() {
        kprintln!("boot: kmem= ignored: kernel memory is what the boot loader reserved");
    }
    let busy = [
        kernel_image_range(),
        (k.kip.sigma0.low, k.kip.sigma0.high),
        (k.kip.root_server.low, k.kip.root_server.high),
    ];
    let Some(pool) = boot::kip_loader::pool(&busy) else {
        panic!("the boot loader reserved no kernel memory below 1 GiB (type reserved)");
    };
    Plan {
        pool,
        phys_top: boot::kip_loader::phys_top(),
        boot_area: (0, 0),
        targets: [(0, 0); 16],
        ntargets: 0,
    }
}

/// Multiboot: loads sigma0 and the root server (moving module files out of the way first),
/// describes memory as the loader would, writes the bootinfo. False without boot modules.
fn roots_from_multiboot(plan: &Plan) -> bool {
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let boot = unsafe { BOOT.get() };
    let mut images = [loader::Image::default(); 2];
    let have_roots = boot.nmodules >= 2;
    if have_roots {
        let staging = (plan.boot_area.0 + 4096, plan.boot_area.1);
        if let Err(e) = loader::move_overlapping(&plan.targets[..plan.ntargets], staging) {
            panic!("boot modules: {}", e);
        }
        match loader::load_root_images() {
            Ok(i) => images = i,
            Err(e) => panic!("boot modules: {}", e),
        }
    }
    let images: &[loader::Image] = if have_roots { &images } else { &[] };
    loader::describe_memory(plan.pool, plan.boot_area, images);
    if !loader::write_bootinfo(plan.boot_area.0, images) {
        kprintln!("bootinfo: does not fit in one page; none written");
    }
    have_roots
}

/// KIP-patching loader: sigma0 and the root server are loaded already; check what it wrote.
fn roots_from_kip() -> bool {
    // SAFETY: the only reference to the KIP in use.
    let k = &(unsafe { kip::kip() }).kip;
    if k.sigma0.sp != 0 || k.root_server.sp != 0 {
        panic!("sigma0 or the root server is a 32-bit ELF (compatibility mode is not supported)");
    }
    let user = |a: u64| a < arch::paging::USER_END;
    for (what, s) in [("sigma0", &k.sigma0), ("root server", &k.root_server)] {
        if s.ip != 0 && !(user(s.ip) && user(s.low) && user(s.high)) {
            panic!("the boot loader placed the {} outside user space", what);
        }
    }
    let have = |ip: u64, low: u64, high: u64| ip != 0 && low < high;
    if !have(k.sigma0.ip, k.sigma0.low, k.sigma0.high) {
        return false;
    }
    if !have(k.root_server.ip, k.root_server.low, k.root_server.high) {
        panic!("the boot loader gave sigma0 but no root server");
    }
    true
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
    // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
    let boot = unsafe { BOOT.get() };
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
    debug::on_panic();
    platform::qemu_exit(platform::EXIT_FAILURE)
}
