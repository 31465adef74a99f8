//! The Kernel Interface Page (spec 3): one 4 KiB page inside the kernel image, statically
//! initialised where a boot loader would read it (magic, MemoryInfo offset, PageInfo, area
//! rules), completed at boot (memory descriptors, boot servers, processor and clock data,
//! system-call links), and mapped read-only into every address space at its KIP area.
//!
//! Layout as in Pistachio: the 0x240-byte KIP, one processor descriptor at 0x240, the kernel
//! descriptor and version string at 0x260, memory descriptors from 0x2E0 to the page end.

use abi::kip::{
    API_FLAGS_64BIT, ApiVersion, ClockInfo, KIP_MAGIC, KernelDesc, Kip, KipAreaInfo, MemDesc,
    MemoryInfo, PISTACHIO_KERNEL_DESC_OFFSET, PISTACHIO_MEM_DESC_OFFSET,
    PISTACHIO_PROC_DESC_OFFSET, PROC_DESC_SIZE_LOG2, PageInfo, ProcDesc, ProcessorInfo, ThreadInfo,
    UtcbInfo,
};

use crate::arch::paging::KERNEL_VMA;
use crate::arch::syscall::{Syscall, stub_address};
use crate::sync::KernelCell;

pub const MAX_MEMDESC: usize = (4096 - PISTACHIO_MEM_DESC_OFFSET as usize) / 16;
const VERSION_STRING_LEN: usize = 0x60;

#[repr(C, align(4096))]
pub struct KipPage {
    pub kip: Kip,
    pub proc_desc: ProcDesc,
    pub kernel_desc: KernelDesc,
    pub version: [u8; VERSION_STRING_LEN],
    pub mem_desc: [MemDesc; MAX_MEMDESC],
}

const _: () =
    assert!(core::mem::offset_of!(KipPage, proc_desc) == PISTACHIO_PROC_DESC_OFFSET as usize);
const _: () =
    assert!(core::mem::offset_of!(KipPage, kernel_desc) == PISTACHIO_KERNEL_DESC_OFFSET as usize);
const _: () =
    assert!(core::mem::offset_of!(KipPage, mem_desc) == PISTACHIO_MEM_DESC_OFFSET as usize);
const _: () = assert!(core::mem::size_of::<KipPage>() == 4096);

const fn version_string() -> [u8; VERSION_STRING_LEN] {
    let s = b"l4rs 0.1.0 - an L4 X.2 microkernel in Rust for x86-64";
    let mut out = [0u8; VERSION_STRING_LEN];
    let mut i = 0;
    while i < s.len() {
        out[i] = s[i];
        i += 1;
    }
    out
}

/// Kernel id: 4 = the L4Ka family (whose amd64 interface we implement), subid 0x80 = l4rs.
pub const KERNEL_ID: (u8, u8) = (4, 0x80);

#[unsafe(link_section = ".kip")]
static KIP_PAGE: KernelCell<KipPage> = KernelCell::new(KipPage {
    kip: Kip {
        magic: KIP_MAGIC,
        api_version: ApiVersion::X2.0,
        api_flags: API_FLAGS_64BIT,
        kernel_desc_ptr: PISTACHIO_KERNEL_DESC_OFFSET,
        memory_info: MemoryInfo::new(0, PISTACHIO_MEM_DESC_OFFSET as u32).0,
        utcb_info: UtcbInfo::PISTACHIO.0,
        kip_area_info: KipAreaInfo::PISTACHIO.0,
        proc_desc_ptr: PISTACHIO_PROC_DESC_OFFSET,
        page_info: PageInfo::PISTACHIO.0,
        thread_info: ThreadInfo::new(18, crate::thread::SYSTEM_BASE, crate::thread::USER_BASE).0,
        processor_info: ProcessorInfo::new(1, PROC_DESC_SIZE_LOG2).0,
        ..Kip::ZERO
    },
    proc_desc: ProcDesc {
        external_freq_khz: 0,
        internal_freq_khz: 0,
        reserved0: 0,
        reserved1: 0,
    },
    kernel_desc: KernelDesc {
        kernel_id: KernelDesc::kernel_id(KERNEL_ID.0, KERNEL_ID.1),
        gen_date: KernelDesc::gen_date(2026, 11, 24),
        kernel_ver: KernelDesc::kernel_ver(0, 1, 0),
        supplier: KernelDesc::supplier(*b"l4rs"),
    },
    version: version_string(),
    mem_desc: [MemDesc { word0: 0, word1: 0 }; MAX_MEMDESC],
});

/// # Safety
/// No other reference to the KIP may be in use while the returned one is.
pub unsafe fn kip() -> &'static mut KipPage {
    // SAFETY: the only borrow of KIP_PAGE in use; it ends before any call that touches it.
    unsafe { KIP_PAGE.get() }
}

pub fn kip_phys() -> u64 {
    KIP_PAGE.as_ptr() as u64 - KERNEL_VMA
}

/// Appends a memory descriptor; false if the table is full.
pub fn add_memdesc(d: MemDesc) -> bool {
    // SAFETY: the only reference to the KIP in use.
    let k = unsafe { kip() };
    let n = MemoryInfo(k.kip.memory_info).count() as usize;
    if n >= MAX_MEMDESC {
        return false;
    }
    k.mem_desc[n] = d;
    k.kip.memory_info = MemoryInfo(k.kip.memory_info).with_count(n as u32 + 1).0;
    true
}

/// Completes the run-time fields: processor and clock data, system-call links.
pub fn init(tsc_khz: u64, tick_us: u64) {
    // SAFETY: the only reference to the KIP in use.
    let k = &mut (unsafe { kip() }).kip;
    k.clock_info = ClockInfo::new(1, tick_us.min(0xFFFF) as u16).0;
    k.space_control = stub_address(Syscall::SpaceControl);
    k.thread_control = stub_address(Syscall::ThreadControl);
    k.processor_control = stub_address(Syscall::ProcessorControl);
    k.memory_control = stub_address(Syscall::MemoryControl);
    k.ipc = stub_address(Syscall::Ipc);
    k.lipc = stub_address(Syscall::Lipc);
    k.unmap = stub_address(Syscall::Unmap);
    k.exchange_registers = stub_address(Syscall::ExchangeRegisters);
    k.system_clock = stub_address(Syscall::SystemClock);
    k.thread_switch = stub_address(Syscall::ThreadSwitch);
    k.schedule = stub_address(Syscall::Schedule);
    // ReservedMem0 (legacy, spec 3.1): the kernel's physical image, as the reference kernel
    // puts its own range there.
    let (ilo, ihi) = crate::kernel_image_range();
    k.reserved_mem[0] = abi::kip::MemRegion {
        low: ilo,
        high: ihi,
    };
    // SAFETY: the only reference to the KIP in use.
    let p = &mut (unsafe { kip() }).proc_desc;
    p.internal_freq_khz = tsc_khz;
    p.external_freq_khz = crate::platform::pit::PIT_HZ / 1000;
}
