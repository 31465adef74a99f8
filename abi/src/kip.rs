//! The Kernel Interface Page (spec 3): the 0x240-byte header struct with every field at its
//! libl4 offset (asserted at compile time), the encodings of its packed words, the kernel
//! descriptor, processor descriptors and memory descriptors.
//!
//! The KIP is one 4 KiB page; [`Kip`] is its first 0x240 bytes. The rest of the page holds
//! (Pistachio layout, reproduced by the constants `PISTACHIO_*`) the processor descriptors
//! at 0x240, the kernel descriptor + version string + feature strings, and the
//! memory-descriptor array up to the end of the page. The kernel embeds `Kip` at the start
//! of a page-aligned 4 KiB object of its own.

use core::mem::{offset_of, size_of};

/// Size of the KIP page (spec 3.7).
pub const KIP_SIZE: usize = 4096;
/// `magic` word: bytes 'L','4',0xE6,'K', upper dword 0 (spec 3.1).
pub const KIP_MAGIC: u64 = 0x4BE6_344C;
/// `ApiFlags` for a little-endian 64-bit kernel (ww = 1) (spec 3.1).
pub const API_FLAGS_64BIT: u64 = 4;
/// Size of the [`Kip`] header struct (spec 3.1).
pub const KIP_HEADER_SIZE: usize = 0x240;
/// Pistachio: processor descriptors right after the header (spec 3.1).
pub const PISTACHIO_PROC_DESC_OFFSET: u64 = 0x240;
/// Pistachio amd64: kernel descriptor offset (`KernelVerPtr`, kip-reference.md).
pub const PISTACHIO_KERNEL_DESC_OFFSET: u64 = 0x260;
/// Pistachio amd64: memory-descriptor array offset (kip-reference.md).
pub const PISTACHIO_MEM_DESC_OFFSET: u64 = 0x2E0;

/// A boot server's region in the KIP: sigma0, sigma1, root server (spec 3.1).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct BootServer {
    /// Initial stack pointer (0 for 64-bit ELF; `1 << 63` marks 32-bit).
    pub sp: u64,
    /// Entry point.
    pub ip: u64,
    /// Lowest loaded physical address.
    pub low: u64,
    /// End of the loaded image (first byte after).
    pub high: u64,
}

/// A legacy `{low, high}` memory region field (spec 3.1).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MemRegion {
    /// Low address.
    pub low: u64,
    /// High address.
    pub high: u64,
}

/// The KIP header, 0x240 bytes, field offsets as in spec 3.1 (libl4 names in docs).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Kip {
    /// 0x000 `magic` = [`KIP_MAGIC`].
    pub magic: u64,
    /// 0x008 `ApiVersion`, see [`ApiVersion`].
    pub api_version: u64,
    /// 0x010 `ApiFlags` = [`API_FLAGS_64BIT`].
    pub api_flags: u64,
    /// 0x018 `KernelVerPtr`: offset of the [`KernelDesc`] from the KIP base.
    pub kernel_desc_ptr: u64,
    /// 0x020 kdebug init (kernel-internal, 0).
    pub kdebug_init: u64,
    /// 0x028 kdebug entry (kernel-internal, 0).
    pub kdebug_entry: u64,
    /// 0x030 kdebug memory region (0, 0).
    pub kdebug_mem: MemRegion,
    /// 0x040 sigma0.
    pub sigma0: BootServer,
    /// 0x060 sigma1.
    pub sigma1: BootServer,
    /// 0x080 root server.
    pub root_server: BootServer,
    /// 0x0A0 reserved.
    pub reserved0: u64,
    /// 0x0A8 `MemoryInfo`, see [`MemoryInfo`].
    pub memory_info: u64,
    /// 0x0B0 kdebug config.
    pub kdebug_config: [u64; 2],
    /// 0x0C0 `MainMem` (legacy).
    pub main_mem: MemRegion,
    /// 0x0D0 `ReservedMem[2]` (legacy).
    pub reserved_mem: [MemRegion; 2],
    /// 0x0F0 `DedicatedMem[5]` (legacy).
    pub dedicated_mem: [MemRegion; 5],
    /// 0x140 reserved.
    pub reserved1: [u64; 2],
    /// 0x150 `UtcbAreaInfo`, see [`UtcbInfo`].
    pub utcb_info: u64,
    /// 0x158 `KipAreaInfo`, see [`KipAreaInfo`].
    pub kip_area_info: u64,
    /// 0x160 reserved.
    pub reserved2: [u64; 2],
    /// 0x170 `BootInfo`: physical address of the generic bootinfo.
    pub boot_info: u64,
    /// 0x178 `ProcDescPtr`: offset of the processor descriptors.
    pub proc_desc_ptr: u64,
    /// 0x180 `ClockInfo`, see [`ClockInfo`].
    pub clock_info: u64,
    /// 0x188 `ThreadInfo`, see [`ThreadInfo`].
    pub thread_info: u64,
    /// 0x190 `PageInfo`, see [`PageInfo`].
    pub page_info: u64,
    /// 0x198 `ProcessorInfo`, see [`ProcessorInfo`].
    pub processor_info: u64,
    /// 0x1A0 SpaceControl stub address (absolute, spec 4.3).
    pub space_control: u64,
    /// 0x1A8 ThreadControl stub address.
    pub thread_control: u64,
    /// 0x1B0 ProcessorControl stub address.
    pub processor_control: u64,
    /// 0x1B8 MemoryControl stub address.
    pub memory_control: u64,
    /// 0x1C0 Ipc stub address.
    pub ipc: u64,
    /// 0x1C8 Lipc stub address.
    pub lipc: u64,
    /// 0x1D0 Unmap stub address.
    pub unmap: u64,
    /// 0x1D8 ExchangeRegisters stub address.
    pub exchange_registers: u64,
    /// 0x1E0 SystemClock stub address.
    pub system_clock: u64,
    /// 0x1E8 ThreadSwitch stub address.
    pub thread_switch: u64,
    /// 0x1F0 Schedule stub address.
    pub schedule: u64,
    /// 0x1F8 reserved.
    pub reserved3: [u64; 5],
    /// 0x220 `ArchSyscall0..3` (0 on amd64).
    pub arch_syscall: [u64; 4],
}

impl Kip {
    /// An all-zero header, for `const` initialisation (spec 3.1).
    pub const ZERO: Self = Self {
        magic: 0,
        api_version: 0,
        api_flags: 0,
        kernel_desc_ptr: 0,
        kdebug_init: 0,
        kdebug_entry: 0,
        kdebug_mem: MemRegion { low: 0, high: 0 },
        sigma0: BootServer {
            sp: 0,
            ip: 0,
            low: 0,
            high: 0,
        },
        sigma1: BootServer {
            sp: 0,
            ip: 0,
            low: 0,
            high: 0,
        },
        root_server: BootServer {
            sp: 0,
            ip: 0,
            low: 0,
            high: 0,
        },
        reserved0: 0,
        memory_info: 0,
        kdebug_config: [0; 2],
        main_mem: MemRegion { low: 0, high: 0 },
        reserved_mem: [MemRegion { low: 0, high: 0 }; 2],
        dedicated_mem: [MemRegion { low: 0, high: 0 }; 5],
        reserved1: [0; 2],
        utcb_info: 0,
        kip_area_info: 0,
        reserved2: [0; 2],
        boot_info: 0,
        proc_desc_ptr: 0,
        clock_info: 0,
        thread_info: 0,
        page_info: 0,
        processor_info: 0,
        space_control: 0,
        thread_control: 0,
        processor_control: 0,
        memory_control: 0,
        ipc: 0,
        lipc: 0,
        unmap: 0,
        exchange_registers: 0,
        system_clock: 0,
        thread_switch: 0,
        schedule: 0,
        reserved3: [0; 5],
        arch_syscall: [0; 4],
    };

    /// The eleven syscall link words in KIP order (words 52–62, spec 3.1).
    pub const fn syscall_links(&self) -> [u64; 11] {
        [
            self.space_control,
            self.thread_control,
            self.processor_control,
            self.memory_control,
            self.ipc,
            self.lipc,
            self.unmap,
            self.exchange_registers,
            self.system_clock,
            self.thread_switch,
            self.schedule,
        ]
    }
}

const _: () = assert!(size_of::<Kip>() == KIP_HEADER_SIZE);
const _: () = assert!(size_of::<BootServer>() == 32);
const _: () = assert!(offset_of!(Kip, magic) == 0x000);
const _: () = assert!(offset_of!(Kip, api_version) == 0x008);
const _: () = assert!(offset_of!(Kip, api_flags) == 0x010);
const _: () = assert!(offset_of!(Kip, kernel_desc_ptr) == 0x018);
const _: () = assert!(offset_of!(Kip, kdebug_init) == 0x020);
const _: () = assert!(offset_of!(Kip, kdebug_entry) == 0x028);
const _: () = assert!(offset_of!(Kip, kdebug_mem) == 0x030);
const _: () = assert!(offset_of!(Kip, sigma0) == 0x040);
const _: () = assert!(offset_of!(Kip, sigma1) == 0x060);
const _: () = assert!(offset_of!(Kip, root_server) == 0x080);
const _: () = assert!(offset_of!(Kip, reserved0) == 0x0A0);
const _: () = assert!(offset_of!(Kip, memory_info) == 0x0A8);
const _: () = assert!(offset_of!(Kip, kdebug_config) == 0x0B0);
const _: () = assert!(offset_of!(Kip, main_mem) == 0x0C0);
const _: () = assert!(offset_of!(Kip, reserved_mem) == 0x0D0);
const _: () = assert!(offset_of!(Kip, dedicated_mem) == 0x0F0);
const _: () = assert!(offset_of!(Kip, reserved1) == 0x140);
const _: () = assert!(offset_of!(Kip, utcb_info) == 0x150);
const _: () = assert!(offset_of!(Kip, kip_area_info) == 0x158);
const _: () = assert!(offset_of!(Kip, reserved2) == 0x160);
const _: () = assert!(offset_of!(Kip, boot_info) == 0x170);
const _: () = assert!(offset_of!(Kip, proc_desc_ptr) == 0x178);
const _: () = assert!(offset_of!(Kip, clock_info) == 0x180);
const _: () = assert!(offset_of!(Kip, thread_info) == 0x188);
const _: () = assert!(offset_of!(Kip, page_info) == 0x190);
const _: () = assert!(offset_of!(Kip, processor_info) == 0x198);
const _: () = assert!(offset_of!(Kip, space_control) == 0x1A0);
const _: () = assert!(offset_of!(Kip, thread_control) == 0x1A8);
const _: () = assert!(offset_of!(Kip, processor_control) == 0x1B0);
const _: () = assert!(offset_of!(Kip, memory_control) == 0x1B8);
const _: () = assert!(offset_of!(Kip, ipc) == 0x1C0);
const _: () = assert!(offset_of!(Kip, lipc) == 0x1C8);
const _: () = assert!(offset_of!(Kip, unmap) == 0x1D0);
const _: () = assert!(offset_of!(Kip, exchange_registers) == 0x1D8);
const _: () = assert!(offset_of!(Kip, system_clock) == 0x1E0);
const _: () = assert!(offset_of!(Kip, thread_switch) == 0x1E8);
const _: () = assert!(offset_of!(Kip, schedule) == 0x1F0);
const _: () = assert!(offset_of!(Kip, reserved3) == 0x1F8);
const _: () = assert!(offset_of!(Kip, arch_syscall) == 0x220);

/// `ApiVersion`: version bits 24–31, subversion bits 16–23 (spec 3.1).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ApiVersion(pub u64);

impl ApiVersion {
    /// X.2 revision 5, as Pistachio reports (`0x84050000`) (spec 3.1).
    pub const X2: Self = Self::new(0x84, 0x05);

    /// From version and subversion (spec 3.1).
    pub const fn new(version: u8, subversion: u8) -> Self {
        Self(((version as u64) << 24) | ((subversion as u64) << 16))
    }

    /// Version, bits 24–31 (0x84 = X.2).
    pub const fn version(self) -> u8 {
        (self.0 >> 24) as u8
    }

    /// Subversion, bits 16–23.
    pub const fn subversion(self) -> u8 {
        (self.0 >> 16) as u8
    }
}

/// `UtcbAreaInfo`: m bits 0–9, a (log2 alignment) bits 10–15, s (log2 minimum area)
/// bits 16–21; UTCB size = m·2^a (spec 3.1, 3.4).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct UtcbInfo(pub u64);

impl UtcbInfo {
    /// Pistachio amd64: m = 1, a = 10, s = 12 (raw `0xC2801`) (spec 3.1).
    pub const PISTACHIO: Self = Self::new(1, 10, 12);

    /// From m, a, s (each truncated to its width) (spec 3.1).
    pub const fn new(m: u64, a: u64, s: u64) -> Self {
        Self((m & 0x3FF) | ((a & 0x3F) << 10) | ((s & 0x3F) << 16))
    }

    /// m: UTCB size multiplier (spec 3.1).
    pub const fn multiplier(self) -> u64 {
        self.0 & 0x3FF
    }

    /// a: log2 UTCB alignment (spec 3.1).
    pub const fn alignment_log2(self) -> u64 {
        (self.0 >> 10) & 0x3F
    }

    /// s: log2 minimum UTCB-area size (spec 3.1).
    pub const fn area_size_log2(self) -> u64 {
        (self.0 >> 16) & 0x3F
    }

    /// UTCB size m·2^a, saturating (`L4_UtcbSize`) (spec 3.1).
    pub const fn utcb_size(self) -> u64 {
        let a = self.alignment_log2();
        if a >= 64 {
            u64::MAX
        } else {
            self.multiplier().saturating_mul(1 << a)
        }
    }
}

/// `KipAreaInfo`: s (log2 KIP area size) bits 0–5 (spec 3.1).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct KipAreaInfo(pub u64);

impl KipAreaInfo {
    /// 4 KiB (raw `0xC`) (spec 3.1).
    pub const PISTACHIO: Self = Self::new(12);

    /// From s (spec 3.1).
    pub const fn new(size_log2: u64) -> Self {
        Self(size_log2 & 0x3F)
    }

    /// s (spec 3.1).
    pub const fn size_log2(self) -> u64 {
        self.0 & 0x3F
    }
}

/// `ThreadInfo`: t (significant thread-number bits) 0–7, SystemBase 8–19, UserBase 20–31
/// (spec 3.1, 6.8).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ThreadInfo(pub u64);

impl ThreadInfo {
    /// From t, SystemBase, UserBase (truncated to 8/12/12 bits) (spec 3.1).
    pub const fn new(thread_bits: u64, system_base: u64, user_base: u64) -> Self {
        Self((thread_bits & 0xFF) | ((system_base & 0xFFF) << 8) | ((user_base & 0xFFF) << 20))
    }

    /// t (spec 3.1).
    pub const fn thread_bits(self) -> u64 {
        self.0 & 0xFF
    }

    /// SystemBase: first kernel thread number = number of IRQ lines (spec 3.1).
    pub const fn system_base(self) -> u64 {
        (self.0 >> 8) & 0xFFF
    }

    /// UserBase: first user thread number; sigma0 = (UserBase, 1) (spec 3.1).
    pub const fn user_base(self) -> u64 {
        (self.0 >> 20) & 0xFFF
    }
}

/// `PageInfo`: rwx bits 0–2, page-size mask (bit n set = 2^n pages supported) from bit 10
/// (spec 3.1).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PageInfo(pub u64);

impl PageInfo {
    /// Pistachio amd64: 4 KiB and 2 MiB pages, rwx (raw `0x201007`) (spec 3.1).
    pub const PISTACHIO: Self = Self::new(7, (1 << 12) | (1 << 21));

    /// From the rights bits and the page-size mask (bits below 10 dropped) (spec 3.1).
    pub const fn new(rights: u64, size_mask: u64) -> Self {
        Self((rights & 7) | (size_mask & !0x3FF))
    }

    /// `L4_PageRights` (spec 3.1).
    pub const fn rights(self) -> u64 {
        self.0 & 7
    }

    /// `L4_PageSizeMask` (spec 3.1).
    pub const fn size_mask(self) -> u64 {
        self.0 & !0x3FF
    }

    /// log2 of the smallest page size, or `None` if the mask is empty (spec 3.1).
    pub const fn min_page_log2(self) -> Option<u32> {
        let m = self.size_mask();
        if m == 0 {
            None
        } else {
            Some(m.trailing_zeros())
        }
    }
}

/// `ProcessorInfo`: number of CPUs − 1 in bits 0–15, log2 processor-descriptor size in
/// bits 60–63 (spec 3.1).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ProcessorInfo(pub u64);

impl ProcessorInfo {
    /// From the CPU count (1..=65536) and log2 descriptor size (spec 3.1).
    pub const fn new(cpus: u64, desc_size_log2: u64) -> Self {
        Self((cpus.saturating_sub(1) & 0xFFFF) | ((desc_size_log2 & 0xF) << 60))
    }

    /// Number of CPUs, processors + 1 (`L4_NumProcessors`) (spec 3.1).
    pub const fn cpus(self) -> u64 {
        (self.0 & 0xFFFF) + 1
    }

    /// log2 of the processor-descriptor size (spec 3.1).
    pub const fn desc_size_log2(self) -> u64 {
        self.0 >> 60
    }
}

/// `ClockInfo`: read precision bits 0–15, schedule precision bits 16–31, µs (spec 3.1).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ClockInfo(pub u64);

impl ClockInfo {
    /// From both precisions (spec 3.1).
    pub const fn new(read_precision: u16, schedule_precision: u16) -> Self {
        Self(read_precision as u64 | ((schedule_precision as u64) << 16))
    }

    /// Read precision (spec 3.1).
    pub const fn read_precision(self) -> u16 {
        self.0 as u16
    }

    /// Schedule precision (spec 3.1).
    pub const fn schedule_precision(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// `MemoryInfo`: number of memory descriptors in bits 0–31, offset of the array from the
/// KIP base in bits 32–63 (spec 3.1).
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MemoryInfo(pub u64);

impl MemoryInfo {
    /// From count and offset (spec 3.1).
    pub const fn new(count: u32, offset: u32) -> Self {
        Self(count as u64 | ((offset as u64) << 32))
    }

    /// Number of descriptors (spec 3.1).
    pub const fn count(self) -> u32 {
        self.0 as u32
    }

    /// MemDescPtr: array offset from the KIP base (spec 3.1).
    pub const fn offset(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Same word with the count replaced (spec 3.1).
    pub const fn with_count(self, count: u32) -> Self {
        Self((self.0 & !0xFFFF_FFFF) | count as u64)
    }
}

/// The kernel descriptor at KIP + `KernelVerPtr` (spec 3.2); the NUL-terminated version
/// string follows at +0x20, then the feature strings and an empty string.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct KernelDesc {
    /// KernelId, see [`KernelDesc::kernel_id`].
    pub kernel_id: u64,
    /// KernelGenDate, see [`KernelDesc::gen_date`].
    pub gen_date: u64,
    /// KernelVer, see [`KernelDesc::kernel_ver`].
    pub kernel_ver: u64,
    /// Supplier: 4 ASCII chars in the low dword, see [`KernelDesc::supplier`].
    pub supplier: u64,
}

const _: () = assert!(size_of::<KernelDesc>() == 0x20);

impl KernelDesc {
    /// Offset of the version string from the descriptor (spec 3.2).
    pub const VERSION_STRING_OFFSET: usize = 0x20;

    /// KernelId: id bits 24–31, subid bits 16–23 (Pistachio: 4, 2) (spec 3.2).
    pub const fn kernel_id(id: u8, subid: u8) -> u64 {
        ((id as u64) << 24) | ((subid as u64) << 16)
    }

    /// KernelGenDate: day 0–4, month 5–8, year − 2000 in 9–15 (spec 3.2).
    pub const fn gen_date(year: u64, month: u64, day: u64) -> u64 {
        (day & 0x1F) | ((month & 0xF) << 5) | ((year.saturating_sub(2000) & 0x7F) << 9)
    }

    /// Decodes a KernelGenDate into (year, month, day) (spec 3.2).
    pub const fn decode_gen_date(raw: u64) -> (u64, u64, u64) {
        (((raw >> 9) & 0x7F) + 2000, (raw >> 5) & 0xF, raw & 0x1F)
    }

    /// KernelVer: ver 24–31, subver 16–23, subsubver 0–15 (spec 3.2).
    pub const fn kernel_ver(ver: u8, subver: u8, subsubver: u16) -> u64 {
        ((ver as u64) << 24) | ((subver as u64) << 16) | subsubver as u64
    }

    /// Supplier word from 4 ASCII bytes, first char in the lowest byte (spec 3.2).
    pub const fn supplier(name: [u8; 4]) -> u64 {
        u32::from_le_bytes(name) as u64
    }

    /// Id (bits 24–31) of `kernel_id` (spec 3.2).
    pub const fn id(&self) -> u8 {
        (self.kernel_id >> 24) as u8
    }

    /// Subid (bits 16–23) of `kernel_id` (spec 3.2).
    pub const fn subid(&self) -> u8 {
        (self.kernel_id >> 16) as u8
    }
}

/// A processor descriptor, 32 bytes (spec 3.3).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ProcDesc {
    /// External (bus) frequency, kHz.
    pub external_freq_khz: u64,
    /// Internal (core) frequency, kHz; SystemClock divides the TSC by it.
    pub internal_freq_khz: u64,
    /// Padding (freq_change).
    pub reserved0: u64,
    /// Padding (arch).
    pub reserved1: u64,
}

const _: () = assert!(size_of::<ProcDesc>() == 32);
/// log2 of `size_of::<ProcDesc>()` for [`ProcessorInfo`] (spec 3.3).
pub const PROC_DESC_SIZE_LOG2: u64 = 5;

/// Memory-descriptor type, word 0 bits 0–3 (spec 3.5).
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MemType {
    /// 0: undefined.
    Undefined = 0,
    /// 1: conventional memory.
    Conventional = 1,
    /// 2: reserved (kernel).
    Reserved = 2,
    /// 3: dedicated.
    Dedicated = 3,
    /// 4: shared.
    Shared = 4,
    /// 0xE: boot-loader specific (subtypes in [`bootloader_subtype`]).
    BootLoader = 0xE,
    /// 0xF: architecture specific (subtype = e820 type).
    Arch = 0xF,
}

impl MemType {
    /// Decodes a 4-bit type; `None` for 5..=0xD (spec 3.5).
    pub const fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw & 0xF {
            0 => Self::Undefined,
            1 => Self::Conventional,
            2 => Self::Reserved,
            3 => Self::Dedicated,
            4 => Self::Shared,
            0xE => Self::BootLoader,
            0xF => Self::Arch,
            _ => return None,
        })
    }
}

/// Subtypes of [`MemType::BootLoader`] descriptors written by the loader (spec 3.5, 7.3).
pub mod bootloader_subtype {
    /// Init table: bootinfo page, MBI copy.
    pub const INIT_TABLE: u8 = 1;
    /// Init server image: sigma0, root server.
    pub const INIT_SERVER: u8 = 2;
    /// Other boot module.
    pub const MODULE: u8 = 3;
}

/// A memory descriptor, 16 bytes (spec 3.5): word 0 = type 0–3, subtype 4–7, v bit 9,
/// low >> 10 in 10–63; word 1 = high >> 10 in 10–63 (last byte = `(high<<10) + 0x3FF`).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MemDesc {
    /// Word 0.
    pub word0: u64,
    /// Word 1.
    pub word1: u64,
}

const _: () = assert!(size_of::<MemDesc>() == 16);

impl MemDesc {
    const VIRTUAL_BIT: u64 = 1 << 9;

    /// Descriptor of `[low, high_inclusive]` (both taken at 1 KiB granularity: low rounded
    /// down, high to the end of its KiB) (spec 3.5).
    pub const fn new(ty: MemType, subtype: u8, virt: bool, low: u64, high_inclusive: u64) -> Self {
        Self::from_raw_type(ty as u8, subtype, virt, low, high_inclusive)
    }

    /// Like [`MemDesc::new`] with a raw 4-bit type (spec 3.5).
    pub const fn from_raw_type(
        ty: u8,
        subtype: u8,
        virt: bool,
        low: u64,
        high_inclusive: u64,
    ) -> Self {
        Self {
            word0: (low & !0x3FF)
                | if virt { Self::VIRTUAL_BIT } else { 0 }
                | (((subtype & 0xF) as u64) << 4)
                | (ty & 0xF) as u64,
            word1: high_inclusive & !0x3FF,
        }
    }

    /// Type, or `None` for an unknown type value (spec 3.5).
    pub const fn mem_type(self) -> Option<MemType> {
        MemType::from_raw(self.word0)
    }

    /// Raw type, bits 0–3 (spec 3.5).
    pub const fn raw_type(self) -> u8 {
        (self.word0 & 0xF) as u8
    }

    /// Subtype, bits 4–7 (spec 3.5).
    pub const fn subtype(self) -> u8 {
        ((self.word0 >> 4) & 0xF) as u8
    }

    /// libl4 `L4_MemoryDescType`: type + (subtype << 4) for types >= 0xE, else type
    /// (spec 3.5).
    pub const fn l4_type(self) -> u64 {
        let t = self.raw_type() as u64;
        if t >= 0xE {
            t + ((self.subtype() as u64) << 4)
        } else {
            t
        }
    }

    /// v: describes virtual addresses (spec 3.5).
    pub const fn is_virtual(self) -> bool {
        self.word0 & Self::VIRTUAL_BIT != 0
    }

    /// First byte (spec 3.5).
    pub const fn low(self) -> u64 {
        self.word0 & !0x3FF
    }

    /// Last byte, inclusive (spec 3.5).
    pub const fn high(self) -> u64 {
        self.word1 | 0x3FF
    }
}
