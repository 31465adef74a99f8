//! IO-fpages (spec 2.3, 6.6): x86 I/O ports as a mapped resource. Every space has an IO
//! address space of 65,536 ports; sigma0 holds all of them from boot, and every other space
//! holds exactly the ports mapped or granted to it by IO-fpage map and grant items, which
//! Unmap revokes transitively and which go with the space when it is deleted. Enforcement is
//! the TSS I/O permission bitmap with IOPL 0 (`arch::ioport`).
//!
//! Owns: the IO mapping database (a second `mapdb::MapDb` over a slab carved from the kernel
//! pool at boot, so the memory rules of map, grant, Unmap and deletion apply unchanged), each
//! space's I/O bitmap and IO-mapping count (`Space::io`, the bitmap two pool frames allocated
//! when the space gets its first port), and the IO page fault.
//! Touches: the TSS bitmap only through `ioport`, and the faulting thread through
//! `ipc::kernel_call`.
//!
//! * **Port numbers in the database.** The database's smallest page is 4 KiB, so port `p` is
//!   kept at "address" `p << 12`; an IO fpage of 2^k ports is a node of 2^(k+12) bytes, and
//!   every size 2^12..2^28 counts as a "hardware page" ([`PORT_SIZES`]), so any aligned port
//!   block is one node. Ports are not translated: port p maps to port p (node vaddr = paddr).
//! * **Rights.** A port is held or not: IO nodes always carry RWX, whatever rights bits the
//!   item has (libl4 sends 0), and Unmap with an IO fpage always removes (rights ignored;
//!   status reads 0).
//! * **Acceptance.** A receiver accepts IO fpages with any non-nil receive window: an IO-fpage
//!   window accepts the ports inside it, a memory window (the complete address space
//!   included, as in page-fault and exception replies) accepts every port.
//! * **IO page fault.** A user #GP (error code 0) whose instruction is a port access to ports
//!   the space does not hold becomes IPC to the pager: label `(-8<<4) | 6`, u = 2, MR1 = the
//!   smallest aligned IO fpage that covers the access (for an aligned access: port, log2
//!   width), MR2 = IP; after any reply the instruction is retried. Any other #GP (cli, sti,
//!   hlt, a port access to ports the space holds that faults anyway) stays exception IPC.
//!
//! Limits (`mm::quota`, decision 006): `ionodes` IO mappings (aligned port blocks) in the whole
//! system (default 4096), including the root nodes sigma0's maps create, and at most
//! `ioquota` of them (default an eighth) held by one non-privileged space, charged to the
//! receiver like memory mappings; exceeding either makes the map item fail like kernel memory
//! exhaustion (message overflow) before anything changes, so one space cannot use up the
//! database for the others. Each space that ever held a port costs 8 KiB of pool memory until
//! it is deleted.

use abi::error::SyscallError;
use abi::fpage::{Fpage, IoFpage};
use abi::msgtag::{MsgTag, labels};
use abi::thread_id::ThreadId;
use abi::utcb;
use mapdb::{MapDb, MapError, Node, PageTableOps, Rights, SpaceId};

use crate::arch::paging::phys_to_virt;
use crate::arch::trap::TrapFrame;
use crate::arch::{gdt, ioport, usercopy};
use crate::kernel_state::Kernel;
use crate::mm::frame;
use crate::space::Space;
use crate::sync::{KernelCell, KernelValue};
use crate::thread;

/// Ports are kept in the database at `port << PORT_SHIFT`.
const PORT_SHIFT: u8 = 12;
/// log2 of the number of ports.
const PORTS_LOG2: u8 = 16;
/// Every aligned block of 2^0 .. 2^16 ports is one node.
const PORT_SIZES: u64 = ((1u64 << (PORT_SHIFT + PORTS_LOG2 + 1)) - 1) & !((1u64 << PORT_SHIFT) - 1);

/// Label of the IO page fault: `(-8<<4) | 6` (spec 6.6).
pub const IO_FAULT_LABEL: u64 = labels::IO_PAGE_FAULT | 6;

static DB: KernelCell<Option<MapDb<'static>>> = KernelCell::new(None);
/// Next bitmap serial; serials are never reused (0 = no bitmap).
static NEXT_SERIAL: KernelValue<u64> = KernelValue::new(1);

/// A space's I/O state: its permission bitmap (0 = deny everything, in each bit), if any.
pub struct SpaceIo {
    /// Physical addresses of the bitmap's two 4 KiB halves (0: no bitmap).
    halves: [u64; 2],
    /// Unique id of this bitmap (0: none).
    pub(crate) serial: u64,
    /// Leading bytes of the bitmap that may hold a 0 (allowed) bit.
    span: u32,
    /// IO mappings (non-root nodes of the IO database) this space holds (quota).
    mappings: u64,
}

impl SpaceIo {
    /// Pool frames of the I/O bitmap (invariant checks only): 2 or 0.
    #[cfg(feature = "invariants")]
    pub fn frames_for_check(&self) -> u64 {
        if self.halves[0] != 0 { 2 } else { 0 }
    }

    /// No ports.
    pub const NONE: SpaceIo = SpaceIo {
        halves: [0, 0],
        serial: 0,
        span: 0,
        mappings: 0,
    };
}

fn id(s: *const Space) -> SpaceId {
    SpaceId(s as u64)
}

/// # Safety
/// No other reference to that space may be in use while the returned one is.
unsafe fn space(id: SpaceId) -> &'static mut Space {
    // SAFETY: ids are pointers of live spaces (a space leaves the database in `delete_space`
    // before it is freed).
    unsafe { &mut *(id.0 as *mut Space) }
}

/// # Safety
/// No other reference to the IO database may be in use while the returned one is.
unsafe fn db() -> &'static mut MapDb<'static> {
    // SAFETY: the only borrow of DB in use; it ends before any call that touches it.
    (unsafe { DB.get() })
        .as_mut()
        .expect("IO database initialised at boot")
}

/// # Safety
/// No other reference to that bitmap half may be in use while the returned one is.
unsafe fn half(phys: u64) -> &'static mut [u8; 4096] {
    // SAFETY: `phys` is a pool frame owned by a space's bitmap (allocated in `ensure_bitmap`,
    // freed only in `delete_space`); nobody else maps or uses it.
    unsafe { &mut *(phys_to_virt(phys) as *mut [u8; 4096]) }
}

/// Gives `s` a bitmap (every port denied) if it has none. `false`: out of kernel memory.
fn ensure_bitmap(s: &mut Space) -> bool {
    if s.io.serial != 0 {
        return true;
    }
    let Some(a) = frame::alloc() else {
        return false;
    };
    let Some(b) = frame::alloc() else {
        frame::free(a);
        return false;
    };
    // SAFETY: the only reference to this space's IO state in use.
    (unsafe { half(a) }).fill(0xFF);
    // SAFETY: the only reference to this space's IO state in use.
    (unsafe { half(b) }).fill(0xFF);
    let serial = NEXT_SERIAL.get();
    s.io = SpaceIo {
        halves: [a, b],
        serial,
        span: 0,
        mappings: s.io.mappings,
    };
    NEXT_SERIAL.set(serial + 1);
    true
}

/// Allows or denies ports `[first, first + count)` in `s`'s bitmap (which exists), and in the
/// TSS if it is loaded there.
fn set_ports(s: &mut Space, first: usize, count: usize, allow: bool) {
    if s.io.serial == 0 {
        return; // no bitmap: nothing is allowed (the database reserves before installing)
    }
    let halfp = gdt::IOMAP_BYTES * 8 / 2;
    let end = (first + count).min(1 << PORTS_LOG2);
    let mut p = first;
    while p < end {
        let h = p / halfp;
        let n = (end - p).min(halfp - p % halfp);
        // SAFETY: the only reference to this space's IO state in use.
        ioport::set_bits(unsafe { half(s.io.halves[h]) }, p % halfp, n, allow);
        p += n;
    }
    if allow {
        s.io.span = s.io.span.max(end.div_ceil(8) as u32);
    }
    ioport::update_loaded(s.io.serial, first, end.saturating_sub(first), allow);
}

/// Does `s` hold every port of `[first, last]`?
fn holds(s: &Space, first: u32, last: u32) -> bool {
    if s.io.serial == 0 || last >= 1 << PORTS_LOG2 {
        return false;
    }
    let halfp = (gdt::IOMAP_BYTES * 8 / 2) as u32;
    (first..=last).all(|p| {
        // SAFETY: the only reference to this space's IO state in use.
        let h = unsafe { half(s.io.halves[(p / halfp) as usize]) };
        let i = p % halfp;
        h[(i / 8) as usize] & (1 << (i % 8)) == 0
    })
}

struct PortOps {
    no_mem: bool,
}

impl PageTableOps for PortOps {
    fn page_sizes(&self) -> u64 {
        PORT_SIZES
    }
    fn reserve(&mut self, sp: SpaceId, _vaddr: u64, _size_log2: u8) -> bool {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let ok = ensure_bitmap(unsafe { space(sp) });
        self.no_mem |= !ok;
        ok
    }
    fn install(&mut self, sp: SpaceId, vaddr: u64, size_log2: u8, _paddr: u64, _r: Rights) {
        let first = (vaddr >> PORT_SHIFT) as usize;
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        set_ports(
            unsafe { space(sp) },
            first,
            1 << (size_log2 - PORT_SHIFT),
            true,
        );
    }
    fn protect(&mut self, _sp: SpaceId, _vaddr: u64, _size_log2: u8, _r: Rights) -> Rights {
        // A port is held or not; reduced rights keep it.
        Rights::NONE
    }
    fn remove(&mut self, sp: SpaceId, vaddr: u64, size_log2: u8) -> Rights {
        let first = (vaddr >> PORT_SHIFT) as usize;
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        set_ports(
            unsafe { space(sp) },
            first,
            1 << (size_log2 - PORT_SHIFT),
            false,
        );
        Rights::NONE
    }
    fn read_status(&mut self, _sp: SpaceId, _vaddr: u64, _size_log2: u8) -> Rights {
        Rights::NONE
    }
    fn may_add_mappings(&mut self, sp: SpaceId, more: usize) -> bool {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let s = unsafe { space(sp) };
        s.privileged || s.io.mappings + more as u64 <= crate::mm::quota::limits().io_mappings
    }
    fn mappings_changed(&mut self, sp: SpaceId, delta: isize) {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        let s = unsafe { space(sp) };
        s.io.mappings = s.io.mappings.wrapping_add_signed(delta as i64);
    }
}

/// Boot (after `mapping::init` fixed the limits): the IO database, its slab carved from the
/// kernel pool, with sigma0 holding every port (its bitmap allows all).
pub fn init(sigma0: *mut Space) -> Result<(), &'static str> {
    let nodes = crate::mm::quota::limits().io_nodes;
    let bytes = nodes * core::mem::size_of::<Node>() as u64;
    let Some(base) = frame::alloc_contiguous(bytes.div_ceil(frame::FRAME_SIZE)) else {
        return Err("kernel memory pool too small for the IO mapping database");
    };
    // SAFETY: `base` starts a run of pool frames that is ours for good (never freed), large
    // enough for `nodes` nodes and page aligned (nodes need less), reached through the direct
    // map; the raw bytes are written as free nodes before the slice is formed.
    let slab = unsafe {
        let p = phys_to_virt(base) as *mut Node;
        for i in 0..nodes as usize {
            p.add(i).write(Node::EMPTY);
        }
        core::slice::from_raw_parts_mut(p, nodes as usize)
    };
    crate::kprintln!(
        "kernel: IO mapping database {} nodes; per non-privileged space at most {} IO mappings",
        nodes,
        crate::mm::quota::limits().io_mappings
    );
    // SAFETY: the only borrow of DB in use; it ends before any call that touches it.
    *(unsafe { DB.get() }) = Some(MapDb::new(slab, id(sigma0)));
    // SAFETY: sigma0's space was just created by the loader and is live.
    let s = unsafe { &mut *sigma0 };
    if !ensure_bitmap(s) {
        return Err("out of kernel memory for sigma0's I/O bitmap");
    }
    set_ports(s, 0, 1 << PORTS_LOG2, true);
    Ok(())
}

/// The scheduler's hook, on every switch to a user thread of another space: makes the TSS
/// give `s` (the space that runs next) at most the ports it holds, without a call or a copy,
/// so the switch path stays as short as before: every port denied if the TSS does not
/// already hold `s`'s bitmap, else that bitmap switched on. A space whose bitmap is not in
/// the TSS gets it copied on its first port access, which faults into [`gp_fault`]
/// (decision 005: lazy copy).
#[inline(always)]
pub fn enter(s: &Space) {
    ioport::switch_to(s.io.serial);
}

/// Loads `s`'s bitmap into the TSS now, copying it if needed.
fn load_now(s: &Space) {
    if s.io.serial == 0 {
        ioport::deny_all();
    } else {
        let h = s.io.halves.map(|p| phys_to_virt(p) as *const u8);
        ioport::load(s.io.serial, h, s.io.span as usize);
    }
}

/// After a change of any space's ports: the running thread's space may have just got its
/// first bitmap, which the TSS must hold before it returns to user mode.
fn sync_current() {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let s = unsafe { thread::current().space() };
    if s.io.serial != ioport::loaded_serial() {
        load_now(s);
    }
}

/// `[first port, log2 ports]` of an IO fpage word (size above 2^16 is the whole IO space).
fn port_block(f: Fpage) -> (u64, u8) {
    let io = IoFpage(f.raw());
    let log2 = io.size_log2().min(PORTS_LOG2 as u64) as u8;
    (io.port() & !((1u64 << log2) - 1), log2)
}

/// A map or grant item whose fpage is an IO fpage (called by `space::map_item`), from the
/// space `from` to `to` with the receiver's receive window `window`. Ports the sender does
/// not hold, ports outside an IO-fpage window, and maps into sigma0 or onto the same ports
/// of the same space are skipped silently. `Err` only when kernel memory or IO nodes ran out.
pub fn map_item(
    from: &Space,
    to: &Space,
    window: Fpage,
    fpage: Fpage,
    grant: bool,
) -> Result<(), SyscallError> {
    if window.is_nil() || to.sigma0 {
        return Ok(());
    }
    let (mut base, mut log2) = port_block(fpage);
    if window.is_io() {
        let (wb, wl) = port_block(window);
        let inside = |b: u64, l: u8, ob: u64, ol: u8| l <= ol && (b >> ol) == (ob >> ol);
        if inside(wb, wl, base, log2) {
            (base, log2) = (wb, wl);
        } else if !inside(base, log2, wb, wl) {
            return Ok(());
        }
    }
    let (v, s) = (base << PORT_SHIFT, log2 + PORT_SHIFT);
    let mut ops = PortOps { no_mem: false };
    let (f, t) = (id(from), id(to));
    let r = if grant {
        // SAFETY: the only reference to this mapping database in use.
        (unsafe { db() }).grant(&mut ops, f, v, t, v, s, Rights::RWX)
    } else {
        // SAFETY: the only reference to this mapping database in use.
        (unsafe { db() }).map(&mut ops, f, v, t, v, s, Rights::RWX)
    };
    sync_current();
    match r {
        Err(MapError::NoMem) => Err(SyscallError::NoMem),
        _ if ops.no_mem => Err(SyscallError::NoMem),
        _ => Ok(()),
    }
}

/// Unmap of an IO fpage by `s` (called by `space::sys_unmap`): revokes the ports from every
/// space that got them from `s` (transitively), and with `flush` from `s` itself. Returns the
/// status bits (always 0: ports have no access status).
pub fn unmap(s: &Space, f: Fpage, flush: bool) -> u64 {
    let (base, log2) = port_block(f);
    let mut ops = PortOps { no_mem: false };
    // SAFETY: the only reference to this mapping database in use.
    let _ = (unsafe { db() }).unmap(
        &mut ops,
        id(s),
        base << PORT_SHIFT,
        log2 + PORT_SHIFT,
        Rights::RWX,
        flush,
    );
    sync_current();
    0
}

/// A space is being destroyed: its ports go, with everything derived from them, and its
/// bitmap returns to the pool (called by `space::destroy` before the space is freed).
pub fn delete_space(s: &mut Space) {
    let mut ops = PortOps { no_mem: false };
    // SAFETY: the only reference to this mapping database in use.
    (unsafe { db() }).delete_space(&mut ops, id(s));
    if s.io.serial != 0 {
        // The TSS may hold (or use) this bitmap's copy: deny all, forget the copy.
        ioport::forget(s.io.serial);
        frame::free(s.io.halves[0]);
        frame::free(s.io.halves[1]);
        s.io = SpaceIo::NONE;
    }
}

/// What a user #GP turned out to be.
pub enum GpOutcome {
    /// Not a port access to ports the space lacks: exception IPC as usual.
    NotIo,
    /// Handled (IO page fault answered, or the TSS was stale): retry the instruction.
    Retry,
    /// The IO page fault could not be delivered: halt the thread with this reason.
    Undeliverable(&'static str),
}

/// A #GP from user mode: if it is a port access the space does not hold, sends the IO page
/// fault to the pager (spec 6.6) and returns when the thread may retry.
pub fn gp_fault(k: &mut Kernel, frame: &mut TrapFrame) -> GpOutcome {
    if frame.error != 0 {
        return GpOutcome::NotIo;
    }
    let rip = frame.rip;
    let fetch = |i: u64| usercopy::read_u8(rip.checked_add(i)?);
    let Some(acc) = ioport::decode(fetch, frame.rdx) else {
        return GpOutcome::NotIo;
    };
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    let s = unsafe { cur.space() };
    if s.io.serial != ioport::loaded_serial() {
        // The TSS did not hold this space's bitmap yet (a switch from another space with
        // ports only denies): copy it in and retry.
        load_now(s);
        return GpOutcome::Retry;
    }
    let first = acc.port as u32;
    let last = first + acc.width as u32 - 1;
    if holds(s, first, last) {
        return GpOutcome::NotIo;
    }
    // The smallest aligned block of ports that covers the access.
    let mut log2 = 0u32;
    while (first >> log2) != (last >> log2) {
        log2 += 1;
    }
    let fpage = IoFpage::new_log2(first as u64, log2 as u64);
    let pager = ThreadId::from_raw(cur.utcb_word(utcb::PAGER));
    if pager.is_nil() {
        return GpOutcome::Undeliverable("IO page fault and no pager");
    }
    let r = crate::ipc::kernel_call(
        k,
        cur,
        pager,
        |t| {
            t.set_mr(0, MsgTag::new(IO_FAULT_LABEL, 2, 0).raw());
            t.set_mr(1, fpage.raw());
            t.set_mr(2, rip);
        },
        |_| {},
    );
    match r {
        Ok(()) => GpOutcome::Retry,
        Err(code) if crate::ipc::was_aborted(code) => GpOutcome::Retry,
        Err(_) => GpOutcome::Undeliverable("IO page fault IPC to the pager failed"),
    }
}
