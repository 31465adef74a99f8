//! `demo`: the root server's demonstration, in three parts:
//!
//! 1. a readable summary of the Kernel Interface Page (spec 3);
//! 2. ping-pong ([`pingpong`]): a pager thread of the root pages two new address spaces that
//!    run the root's own image; `ping` and `pong` exchange a few call/reply round trips;
//! 3. user-level drivers ([`crate::drivers`]): the PS/2 keyboard (IRQ 1) and COM1 input
//!    (IRQ 4), each a thread of the root that receives its interrupt as IPC.
//!
//! Console lines: `demo: created space ...`, `ping: sent N`, `pong: got N`,
//! `demo: ping-pong done (...)`, `demo: drivers ready`, then `kbd: '<char>'` and
//! `com1: '<char>'` for each key / byte. The system keeps running afterwards.

pub mod pingpong;
pub mod spaces;

use abi::kip::{ApiVersion, ClockInfo, KernelDesc, KipAreaInfo, MemDesc, MemType};
use l4::{kip, msg, println, syscall};

use crate::drivers;

fn kernel_name(id: u8, subid: u8) -> &'static str {
    match (id, subid) {
        (0, 1) => "L4/486",
        (0, 2) => "L4/Pentium",
        (0, 3) => "L4/x86",
        (1, 1) => "L4/MIPS",
        (2, 1) => "L4/Alpha",
        (3, 1) => "Fiasco",
        (4, 1) => "Hazelnut",
        (4, 2) => "Pistachio",
        (4, 3) => "Strawberry",
        (5, 1) => "NICTA Pistachio",
        (4, 0x80) => "l4rs",
        _ => "unknown kernel",
    }
}

fn api_name(version: u8) -> &'static str {
    match version {
        0x02 => "V2",
        0x04 => "V4",
        0x83 => "X.0/X.1",
        0x84 => "X.2",
        0x85 => "L4sec",
        0x86 => "N1",
        0xA0 => "OKL",
        _ => "unknown",
    }
}

fn mem_type_name(d: &MemDesc) -> &'static str {
    match (d.mem_type(), d.subtype()) {
        (Some(MemType::Undefined), _) => "undefined",
        (Some(MemType::Conventional), _) => "conventional",
        (Some(MemType::Reserved), _) => "reserved",
        (Some(MemType::Dedicated), _) => "dedicated",
        (Some(MemType::Shared), _) => "shared",
        (Some(MemType::BootLoader), 1) => "boot loader: init table",
        (Some(MemType::BootLoader), 2) => "boot loader: init server",
        (Some(MemType::BootLoader), 3) => "boot loader: module",
        (Some(MemType::BootLoader), _) => "boot loader specific",
        (Some(MemType::Arch), 2) => "arch: BIOS reserved",
        (Some(MemType::Arch), 3) => "arch: ACPI reclaimable",
        (Some(MemType::Arch), 4) => "arch: ACPI NVS",
        (Some(MemType::Arch), _) => "architecture specific",
        (None, _) => "invalid type",
    }
}

/// Thread numbers (above UserBase) and root UTCB slots of the demo's threads.
const PAGER: u64 = 0x10;
const KBD: u64 = 0x13;
const COM1: u64 = 0x14;

static mut KBD_STACK: spaces::Stack = spaces::Stack::new();
static mut COM1_STACK: spaces::Stack = spaces::Stack::new();

/// The whole demo; returns once the drivers run (the caller then sleeps forever).
pub fn run() {
    kip_summary();
    let pager = spaces::tid(PAGER);
    if !spaces::start_pager(pager, PAGER) {
        println!("demo: cannot start the pager thread");
    } else if !pingpong::run(pager) {
        println!("demo: ping-pong FAILED");
    }
    start_drivers();
}

fn start_drivers() {
    let (kbd, com1) = (spaces::tid(KBD), spaces::tid(COM1));
    // SAFETY: the stacks are not in use yet.
    let (sp_kbd, sp_com1) = unsafe {
        (
            spaces::prepare_stack(&raw mut KBD_STACK),
            spaces::prepare_stack(&raw mut COM1_STACK),
        )
    };
    let mut ready = 0;
    // IO-fpages: the drivers' ports come from sigma0, which gives them to the root thread.
    drivers::claim_ports();
    for (t, slot, irq, entry, sp) in [
        (
            kbd,
            KBD,
            drivers::kbd::IRQ,
            drivers::kbd::main as extern "C" fn() -> !,
            sp_kbd,
        ),
        (com1, COM1, drivers::com1::IRQ, drivers::com1::main, sp_com1),
    ] {
        // Create the thread inactive first: the IRQ is associated with an existing thread.
        let me = spaces::root();
        if syscall::thread_control(t, me, me, kip::sigma0_id(), spaces::root_utcb_slot(slot)) != 1 {
            println!("demo: cannot create driver thread {:#x}", t.raw());
            continue;
        }
        if !drivers::associate(irq, t) {
            continue;
        }
        if l4::thread::start(t, sp, entry as usize as u64).is_nil() {
            println!("demo: cannot start driver thread {:#x}", t.raw());
            continue;
        }
        match msg::receive_timeout(t, abi::Time::period_micros(5_000_000)) {
            Ok(tag) if tag.label() == drivers::READY => ready += 1,
            _ => println!("demo: driver {:#x} did not report", t.raw()),
        }
    }
    if ready == 2 {
        println!(
            "demo: drivers ready (type here: echoed by COM1; PS/2 keys: QEMU window or monitor sendkey)"
        );
    } else {
        println!("demo: drivers FAILED ({ready} of 2 ready)");
    }
}

/// Prints the KIP summary.
pub fn kip_summary() {
    let k = kip::kip();
    println!(
        "root: KIP at {:#x} (area {} KiB)",
        kip::kip_address(),
        kip::area_size() / 1024
    );
    if let Some(d) = kip::kernel_desc() {
        let (y, m, day) = KernelDesc::decode_gen_date(d.gen_date);
        let supplier = (d.supplier as u32).to_le_bytes();
        println!(
            "  kernel: {} (id {}.{}), version {}.{}.{}, built {y}-{m:02}-{day:02}, supplier \"{}\"",
            kernel_name(d.id(), d.subid()),
            d.id(),
            d.subid(),
            d.kernel_ver >> 24,
            (d.kernel_ver >> 16) & 0xFF,
            d.kernel_ver & 0xFFFF,
            core::str::from_utf8(&supplier).unwrap_or("????"),
        );
    }
    println!("  version string: {}", kip::version_string());
    for f in kip::features() {
        println!("  feature: {f}");
    }
    let api = ApiVersion(k.api_version);
    println!(
        "  API version {:#x} ({} subversion {:#x}), flags {:#x} ({}-bit, {} endian)",
        api.version(),
        api_name(api.version()),
        api.subversion(),
        k.api_flags,
        if (k.api_flags >> 2) & 3 == 1 { 64 } else { 32 },
        if k.api_flags & 3 == 0 {
            "little"
        } else {
            "big"
        },
    );

    let descs = kip::memory_descriptors();
    println!("  memory descriptors: {}", descs.len());
    for (i, d) in descs.iter().enumerate() {
        println!(
            "    [{i:2}] {:#018x}..{:#018x} {}{} (type {:#x})",
            d.low(),
            d.high(),
            mem_type_name(d),
            if d.is_virtual() { ", virtual" } else { "" },
            d.l4_type(),
        );
    }

    let ti = kip::thread_info();
    println!(
        "  threads: {} id bits, SystemBase {}, UserBase {}; sigma0 {:#x}, root {:#x}",
        ti.thread_bits(),
        ti.system_base(),
        ti.user_base(),
        kip::sigma0_id().raw(),
        kip::root_server_id().raw(),
    );
    let ui = kip::utcb_info();
    println!(
        "  UTCB: size {} bytes, alignment 2^{}, minimum area 2^{}; KIP area 2^{} bytes",
        ui.utcb_size(),
        ui.alignment_log2(),
        ui.area_size_log2(),
        KipAreaInfo(k.kip_area_info).size_log2(),
    );
    let pi = kip::page_info();
    print_page_sizes(pi.size_mask(), pi.rights());
    println!("  processors: {}", kip::num_processors());
    for i in 0..kip::num_processors() {
        if let Some(p) = kip::proc_desc(i) {
            println!(
                "    cpu {i}: internal {} kHz, external {} kHz",
                p.internal_freq_khz, p.external_freq_khz
            );
        }
    }
    let ci = ClockInfo(k.clock_info);
    println!(
        "  clock: read precision {} us, schedule precision {} us; now {} us",
        ci.read_precision(),
        ci.schedule_precision(),
        syscall::system_clock(),
    );
    println!(
        "  boot: sigma0 {:#x}..{:#x} ip {:#x}; root {:#x}..{:#x} ip {:#x}; bootinfo {:#x}",
        k.sigma0.low,
        k.sigma0.high,
        k.sigma0.ip,
        k.root_server.low,
        k.root_server.high,
        k.root_server.ip,
        k.boot_info,
    );
    println!("  system calls:");
    for i in 0..syscall::link::COUNT {
        println!(
            "    {:<18} {:#x}",
            kip::syscall_name(i),
            kip::syscall_link(i)
        );
    }
    println!("root: KIP summary done");
}

fn print_page_sizes(mask: u64, rights: u64) {
    l4::print!("  page sizes:");
    for bit in 10..64 {
        if mask & (1u64 << bit) != 0 {
            match bit {
                b if b >= 30 => l4::print!(" {}G", 1u64 << (b - 30)),
                b if b >= 20 => l4::print!(" {}M", 1u64 << (b - 20)),
                b => l4::print!(" {}K", 1u64 << (b - 10)),
            }
        }
    }
    println!(
        "; rights {}{}{}",
        if rights & 4 != 0 { "r" } else { "-" },
        if rights & 2 != 0 { "w" } else { "-" },
        if rights & 1 != 0 { "x" } else { "-" },
    );
}
