//! The Kernel Interface Page: finding it ([`init`]) and reading it (spec 3).
//!
//! [`init`] runs `KernelInterface` once, remembers the KIP address and copies the eleven
//! system-call link addresses (KIP words 52..62) into [`crate::syscall::LINKS`], as libl4's
//! `__L4_Init` does. The KIP is mapped read-only in every address space for the whole life
//! of the space, so handing out `&'static` references into it is sound.
//!
//! The header is [`abi::kip::Kip`]; the variable parts (kernel descriptor, version and
//! feature strings, processor and memory descriptors) are located through offsets in the
//! header and exposed here as typed references and iterators, all bounds-checked against
//! the KIP area size.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::ThreadId;
use abi::kip::{
    KIP_MAGIC, KernelDesc, Kip, KipAreaInfo, MemDesc, MemoryInfo, PageInfo, ProcDesc,
    ProcessorInfo, ThreadInfo, UtcbInfo,
};

use crate::syscall::{self, LINKS, link};

static KIP_ADDRESS: AtomicU64 = AtomicU64::new(0);

/// Finds the KIP with `KernelInterface` and copies the system-call link addresses. Called
/// by the runtime before `main`; calling it again is harmless. Panics if the word at the
/// returned address is not the KIP magic.
pub fn init() {
    let ki = syscall::kernel_interface();
    assert!(
        ki.kip != 0 && ki.kip.is_multiple_of(4096),
        "KernelInterface returned a bad KIP address"
    );
    // SAFETY: KernelInterface returns the address of the KIP mapped read-only in our space
    // (spec 4.1); it is page aligned and at least 4 KiB long.
    let k = unsafe { &*(ki.kip as *const Kip) };
    assert!(
        k.magic & 0xFFFF_FFFF == KIP_MAGIC,
        "no KIP magic at the KernelInterface address"
    );
    for (slot, addr) in LINKS.iter().zip(k.syscall_links()) {
        slot.store(addr, Ordering::Relaxed);
    }
    KIP_ADDRESS.store(ki.kip, Ordering::Release);
}

/// Address of the KIP in our space (0 before [`init`]).
pub fn kip_address() -> u64 {
    KIP_ADDRESS.load(Ordering::Acquire)
}

/// The KIP header. Panics before [`init`].
pub fn kip() -> &'static Kip {
    let a = kip_address();
    assert!(a != 0, "l4::init() has not run");
    // SAFETY: set by `init` to the address of the KIP, which stays mapped read-only for
    // the life of the address space.
    unsafe { &*(a as *const Kip) }
}

/// Size of the KIP area in bytes (`KipAreaInfo`, at least 4 KiB).
pub fn area_size() -> u64 {
    1u64 << KipAreaInfo(kip().kip_area_info).size_log2().clamp(12, 20)
}

/// A `T` at byte `offset` in the KIP, if it lies inside the KIP area and is aligned.
fn at<T>(offset: u64) -> Option<&'static T> {
    let size = size_of::<T>() as u64;
    let end = offset.checked_add(size)?;
    if end > area_size() || !offset.is_multiple_of(align_of::<T>() as u64) {
        return None;
    }
    // SAFETY: the range lies inside the KIP area, mapped read-only for the life of the
    // space; the address is aligned and every bit pattern is valid for the plain-word types
    // used here.
    Some(unsafe { &*((kip_address() + offset) as *const T) })
}

/// The NUL-terminated string at byte `offset` in the KIP (cut at the area end); invalid
/// UTF-8 is replaced by `"?"`.
fn str_at(offset: u64) -> &'static str {
    let area = area_size();
    if offset >= area {
        return "";
    }
    // SAFETY: `offset..area` lies inside the KIP area (read-only, 'static).
    let bytes = unsafe {
        core::slice::from_raw_parts(
            (kip_address() + offset) as *const u8,
            (area - offset) as usize,
        )
    };
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..len]).unwrap_or("?")
}

/// The kernel descriptor (spec 3.2).
pub fn kernel_desc() -> Option<&'static KernelDesc> {
    at(kip().kernel_desc_ptr)
}

/// The kernel version string (`L4_KernelVersionString`).
pub fn version_string() -> &'static str {
    str_at(kip().kernel_desc_ptr + KernelDesc::VERSION_STRING_OFFSET as u64)
}

/// The feature strings after the version string (spec 3.6), in order.
pub fn features() -> impl Iterator<Item = &'static str> {
    let start = kip().kernel_desc_ptr + KernelDesc::VERSION_STRING_OFFSET as u64;
    let mut off = start + version_string().len() as u64 + 1;
    core::iter::from_fn(move || {
        let s = str_at(off);
        if s.is_empty() {
            return None;
        }
        off += s.len() as u64 + 1;
        Some(s)
    })
}

/// `ThreadInfo` (SystemBase, UserBase, thread-number bits).
pub fn thread_info() -> ThreadInfo {
    ThreadInfo(kip().thread_info)
}

/// `PageInfo` (supported page sizes and rights).
pub fn page_info() -> PageInfo {
    PageInfo(kip().page_info)
}

/// `UtcbAreaInfo`.
pub fn utcb_info() -> UtcbInfo {
    UtcbInfo(kip().utcb_info)
}

/// `ProcessorInfo`.
pub fn processor_info() -> ProcessorInfo {
    ProcessorInfo(kip().processor_info)
}

/// Number of processors (`L4_NumProcessors` = ProcessorInfo.processors + 1).
pub fn num_processors() -> u64 {
    processor_info().cpus()
}

/// Processor descriptor `i` (spec 3.3), if inside the KIP.
pub fn proc_desc(i: u64) -> Option<&'static ProcDesc> {
    let stride = 1u64 << processor_info().desc_size_log2().min(12);
    at(kip().proc_desc_ptr.checked_add(i.checked_mul(stride)?)?)
}

/// The memory descriptors (spec 3.5), in KIP order, cut to what fits in the KIP area.
pub fn memory_descriptors() -> &'static [MemDesc] {
    let info = MemoryInfo(kip().memory_info);
    let off = info.offset() as u64;
    let area = area_size();
    if off == 0 || off >= area || !off.is_multiple_of(8) {
        return &[];
    }
    let n = (info.count() as u64).min((area - off) / size_of::<MemDesc>() as u64);
    // SAFETY: `n` descriptors starting at `off` lie inside the KIP area (read-only,
    // 'static); MemDesc is two plain words.
    unsafe { core::slice::from_raw_parts((kip_address() + off) as *const MemDesc, n as usize) }
}

/// sigma0's thread id: (UserBase, 1) (spec 6.8).
pub fn sigma0_id() -> ThreadId {
    ThreadId::global(thread_info().user_base(), 1)
}

/// sigma1's thread id: (UserBase + 1, 1) (spec 6.8).
pub fn sigma1_id() -> ThreadId {
    ThreadId::global(thread_info().user_base() + 1, 1)
}

/// The root server's thread id: (UserBase + 2, 1) (spec 6.8).
pub fn root_server_id() -> ThreadId {
    ThreadId::global(thread_info().user_base() + 2, 1)
}

/// Whether `id` is a kernel thread: SystemBase ≤ number < UserBase (spec 6.8).
pub fn is_kernel_thread(id: ThreadId) -> bool {
    let ti = thread_info();
    id.is_global() && (ti.system_base()..ti.user_base()).contains(&id.number())
}

/// Whether `id` is an interrupt thread: number < SystemBase (spec 6.5).
pub fn is_interrupt_thread(id: ThreadId) -> bool {
    id.is_global() && id.number() < thread_info().system_base()
}

/// The system-call link address of `index` (see [`link`]); 0 before [`init`].
pub fn syscall_link(index: usize) -> u64 {
    syscall::link_address(index)
}

/// Name of system-call link `index` (for printing).
pub fn syscall_name(index: usize) -> &'static str {
    link::NAMES[index]
}
