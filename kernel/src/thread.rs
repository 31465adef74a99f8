//! Threads: thread control blocks, the thread table, and kernel stacks.
//!
//! Owns every `Tcb`. A thread number indexes `THREADS` directly (2^18 entries, as many as
//! ThreadInfo.t = 18 allows), so finding a thread from a global id is one load and a version
//! compare. Each thread has a 24 KiB virtual slot in the kernel-stack region:
//! `[guard page][16 KiB kernel stack][TCB page]`, so a stack overflow hits the guard page
//! (a double fault with its own stack) instead of the TCB. The user state of a thread in the
//! kernel is the `TrapFrame` at the top of its stack, right below its TCB.
//!
//! May touch: the scheduler (to queue and dequeue), spaces (membership, UTCB pages).

use abi::thread_id::ThreadId;

use crate::arch::x86_64::paging::{self, ADDR_MASK, G, NX, P, RW, table};
use crate::arch::x86_64::trap::{TRAP_FRAME_SIZE, TrapFrame};
use crate::arch::x86_64::{cpu, gdt};
use crate::mm::frame;
use crate::space::Space;
use crate::sync::KernelCell;

pub const THREAD_BITS: u32 = 18;
pub const MAX_THREADS: usize = 1 << THREAD_BITS;
/// Interrupt threads occupy numbers 0..SYSTEM_BASE.
pub const SYSTEM_BASE: u64 = crate::platform::pc::pic::NUM_IRQS as u64;
/// Kernel threads occupy SYSTEM_BASE..USER_BASE.
pub const USER_BASE: u64 = SYSTEM_BASE + 32;
pub const SIGMA0_NO: u64 = USER_BASE;
pub const ROOT_NO: u64 = USER_BASE + 2;

/// Kernel-stack region: PDPT entry 511 of PML4 slot 511.
const SLOT_REGION: u64 = 0xFFFF_FFFF_C000_0000;
const SLOT_SIZE: u64 = 24 << 10;
const STACK_OFFSET: u64 = 4 << 10;
/// Room for a system call whose string copy takes a nested page-fault IPC.
const STACK_SIZE: u64 = 16 << 10;
const STACK_PAGES: usize = (STACK_SIZE / 4096) as usize;
const TCB_OFFSET: u64 = STACK_OFFSET + STACK_SIZE;
/// Threads that can exist at once (each needs a slot).
pub const MAX_SLOTS: usize = 16384;

pub const DEFAULT_PRIORITY: u8 = 100;
pub const ROOT_PRIORITY: u8 = 255;
/// Default time slice (µs).
pub const DEFAULT_TIMESLICE_US: u64 = 10_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    /// Created, not yet activated (no UTCB / pager).
    Inactive,
    /// Runnable (in its ready queue) or running.
    Ready,
    /// Blocked sending to `partner`.
    SendBlocked,
    /// Blocked receiving from `from_spec`.
    RecvBlocked,
    /// Deleted; the slot is being reclaimed.
    Dead,
    /// In a string transfer run by the partner, waiting for it to finish (or to tunnel a fault).
    Transfer,
    /// Running a string transfer, waiting for the partner to resolve a page fault.
    XferWait,
}

/// How a blocked IPC ended, written by whoever woke the thread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IpcWake {
    None,
    /// The message was transferred (for a receiver: from `ipc_from`).
    Done,
    /// Error code for the ErrorCode TCR (phase and code already encoded).
    Error(u64),
    /// The partner needs a page fault of ours resolved during a string copy (`string.rs`).
    Tunnel,
}

#[repr(C, align(16))]
pub struct FpuArea(pub [u8; 512]);

#[repr(C)]
pub struct Tcb {
    /// Saved kernel stack pointer while switched out.
    pub ksp: u64,
    pub id: ThreadId,
    pub state: State,
    pub halted: bool,
    pub space: *mut Space,
    /// User address of the UTCB block (1 KiB), `u64::MAX` if not set.
    pub utcb_location: u64,
    /// Kernel address of the UTCB block (0 while not activated).
    pub utcb: u64,
    pub scheduler: ThreadId,
    pub priority: u8,
    pub timeslice_us: u64,
    pub total_quantum_us: u64,
    pub slice_left_us: u64,
    pub ready_next: *mut Tcb,
    pub ready_prev: *mut Tcb,
    // IPC
    pub partner: *mut Tcb,
    pub from_spec: ThreadId,
    pub sendq_head: *mut Tcb,
    pub sendq_next: *mut Tcb,
    pub sendq_prev: *mut Tcb,
    pub wake: IpcWake,
    pub ipc_from: ThreadId,
    /// Page fault to tunnel for the partner's string copy (`string.rs`).
    pub tunnel_addr: u64,
    pub tunnel_receiver_side: bool,
    /// The transfer gave up waiting for this tunnelled fault: do not (or no longer) send it.
    pub tunnel_abandon: bool,
    /// During a string copy: the thread running it (set on both parties), and on the copier
    /// whether ExchangeRegisters aborted the transfer (spec 5.2: code 7 for both).
    pub xfer_copier: *mut Tcb,
    pub xfer_abort: bool,
    /// The thread running the transfer this thread takes part in (while tunnelling).
    pub tunnel_for: *mut Tcb,
    /// The receive phase that follows the current send phase (nil: none), its timeout, and
    /// whether a partner already moved this thread into it (`ipc::finish_queued_send`).
    pub recv_after_send: ThreadId,
    pub recv_timeout: abi::time::Time,
    pub recv_phase_done: bool,
    /// While sending a propagated message: the virtual sender (spec 5.7.5), else null.
    pub propagate_as: *mut Tcb,
    /// Absolute timeout in µs, `u64::MAX` = none.
    pub deadline: u64,
    pub timer_next: *mut Tcb,
    /// True while the thread waits for its start-up message (spec 6.1).
    pub startup: bool,
    /// Nesting of kernel-generated IPCs (page faults, exceptions) in progress.
    pub kernel_ipc_depth: u32,
    /// Interrupt line this thread is the handler of... (see interrupt.rs), or associated IRQ.
    pub all_next: *mut Tcb,
    pub all_prev: *mut Tcb,
    pub slot: u32,
    pub fpu: FpuArea,
}

const _: () = assert!(core::mem::size_of::<Tcb>() <= 4096);

pub static THREADS: KernelCell<[*mut Tcb; MAX_THREADS]> =
    KernelCell::new([core::ptr::null_mut(); MAX_THREADS]);
static FREE_SLOTS: KernelCell<SlotAllocator> = KernelCell::new(SlotAllocator {
    next_fresh: 0,
    free: [0; MAX_SLOTS],
    nfree: 0,
});
/// Every thread (for scans on deletion).
pub static ALL_THREADS: KernelCell<*mut Tcb> = KernelCell::new(core::ptr::null_mut());
pub static CURRENT: KernelCell<*mut Tcb> = KernelCell::new(core::ptr::null_mut());

struct SlotAllocator {
    next_fresh: u32,
    free: [u32; MAX_SLOTS],
    nfree: usize,
}

/// Page tables of the kernel-stack region, allocated once at boot so that creating and
/// deleting threads never changes them (kernel memory returns to its figure exactly).
pub fn init() -> bool {
    let pml4 = paging::kernel_pml4();
    let pdpt = table(pml4)[511] & ADDR_MASK;
    let Some(pd) = frame::alloc() else {
        return false;
    };
    let region_bytes = MAX_SLOTS as u64 * SLOT_SIZE;
    let pts = region_bytes.div_ceil(2 << 20);
    for i in 0..pts as usize {
        let Some(pt) = frame::alloc() else {
            return false;
        };
        table(pd)[i] = pt | P | RW;
    }
    table(pdpt)[511] = pd | P | RW;
    true
}

fn slot_pte(va: u64) -> &'static mut u64 {
    let pdpt = table(paging::kernel_pml4())[511] & ADDR_MASK;
    let pd = table(pdpt)[511] & ADDR_MASK;
    let pt = table(pd)[((va >> 21) & 511) as usize] & ADDR_MASK;
    &mut table(pt)[((va >> 12) & 511) as usize]
}

/// Allocates a slot with its stack and TCB pages mapped; returns (slot, tcb pointer).
fn alloc_slot() -> Option<(u32, *mut Tcb)> {
    let a = FREE_SLOTS.get();
    let slot = if a.nfree > 0 {
        a.nfree -= 1;
        a.free[a.nfree]
    } else if (a.next_fresh as usize) < MAX_SLOTS {
        a.next_fresh += 1;
        a.next_fresh - 1
    } else {
        return None;
    };
    let base = SLOT_REGION + slot as u64 * SLOT_SIZE;
    let mut frames = [0u64; STACK_PAGES + 1];
    for f in frames.iter_mut() {
        match frame::alloc() {
            Some(p) => *f = p,
            None => {
                for p in frames.iter().filter(|p| **p != 0) {
                    frame::free(*p);
                }
                let a = FREE_SLOTS.get();
                a.free[a.nfree] = slot;
                a.nfree += 1;
                return None;
            }
        }
    }
    let g = if cpu::features().pge { G } else { 0 };
    let nx = if cpu::features().nx { NX } else { 0 };
    for (i, f) in frames.iter().enumerate() {
        *slot_pte(base + STACK_OFFSET + 4096 * i as u64) = *f | P | RW | g | nx;
    }
    Some((slot, (base + TCB_OFFSET) as *mut Tcb))
}

fn free_slot(slot: u32) {
    let base = SLOT_REGION + slot as u64 * SLOT_SIZE;
    for i in 0..=STACK_PAGES as u64 {
        let va = base + STACK_OFFSET + 4096 * i;
        let pte = slot_pte(va);
        let f = *pte & ADDR_MASK;
        *pte = 0;
        cpu::invlpg(va);
        frame::free(f);
    }
    let a = FREE_SLOTS.get();
    a.free[a.nfree] = slot;
    a.nfree += 1;
}

impl Tcb {
    pub fn kstack_top(&self) -> u64 {
        self as *const Tcb as u64
    }

    /// The saved user registers (valid whenever the thread is not running user code).
    pub fn frame(&mut self) -> &mut TrapFrame {
        // SAFETY: the frame area is the top of this thread's own kernel stack.
        unsafe { &mut *((self.kstack_top() - TRAP_FRAME_SIZE as u64) as *mut TrapFrame) }
    }

    pub fn space(&self) -> &'static mut Space {
        // SAFETY: a thread's space outlives it (spaces are freed after their last thread).
        unsafe { &mut *self.space }
    }

    pub fn is_activated(&self) -> bool {
        self.utcb != 0
    }

    /// The word at index `i` relative to the MR0 pointer of the UTCB (negative: TCRs and BRs).
    pub fn utcb_word(&self, i: isize) -> u64 {
        debug_assert!(self.utcb != 0);
        // SAFETY: `utcb` is the kernel view of this thread's 1 KiB UTCB; indices stay within it.
        unsafe { *((self.utcb + 0x200) as *const u64).offset(i) }
    }

    pub fn set_utcb_word(&self, i: isize, v: u64) {
        debug_assert!(self.utcb != 0);
        // SAFETY: as in `utcb_word`.
        unsafe { *((self.utcb + 0x200) as *mut u64).offset(i) = v }
    }

    pub fn mr(&self, i: usize) -> u64 {
        self.utcb_word(i as isize)
    }

    pub fn set_mr(&self, i: usize, v: u64) {
        self.set_utcb_word(i as isize, v)
    }

    /// The MR array of the UTCB.
    pub fn mrs(&self) -> &'static mut [u64; 64] {
        // SAFETY: as in `utcb_word`: MR0..MR63 occupy the upper 512 bytes of the UTCB.
        unsafe { &mut *((self.utcb + 0x200) as *mut [u64; 64]) }
    }

    /// The local id (MR0 address in its own space).
    pub fn local_id(&self) -> ThreadId {
        ThreadId::from_raw(self.utcb_location.wrapping_add(0x200))
    }

    pub fn same_space(&self, other: &Tcb) -> bool {
        self.space == other.space
    }
}

pub fn current() -> &'static mut Tcb {
    // SAFETY: CURRENT always points at a live TCB once threads exist.
    unsafe { &mut **CURRENT.get() }
}

pub fn current_ptr() -> *mut Tcb {
    *CURRENT.get()
}

/// The thread with exactly this global id, if it exists.
pub fn lookup_global(id: ThreadId) -> Option<&'static mut Tcb> {
    if !id.is_global() {
        return None;
    }
    let no = id.number() as usize;
    if no >= MAX_THREADS {
        return None;
    }
    let p = THREADS.get()[no];
    if p.is_null() {
        return None;
    }
    // SAFETY: table entries point at live TCBs.
    let t = unsafe { &mut *p };
    (t.id == id).then_some(t)
}

/// The thread with this number, whatever its version.
pub fn lookup_number(no: u64) -> Option<&'static mut Tcb> {
    if no as usize >= MAX_THREADS {
        return None;
    }
    let p = THREADS.get()[no as usize];
    // SAFETY: table entries point at live TCBs.
    (!p.is_null()).then(|| unsafe { &mut *p })
}

/// Resolves a thread id given by `by` (a local id names a thread in `by`'s space).
pub fn resolve(by: &Tcb, id: ThreadId) -> Option<&'static mut Tcb> {
    if id.is_local() && !id.is_any_local() {
        // The MyGlobalId TCR of the UTCB at that address in the caller's space; a user may
        // write anything there, so the thread found must really own that UTCB.
        let gid = crate::arch::x86_64::usercopy::read_u64(id.raw().wrapping_sub(0x78))?;
        let t = lookup_global(ThreadId::from_raw(gid))?;
        (t.same_space(by) && t.local_id() == id).then_some(t)
    } else {
        lookup_global(id)
    }
}

/// Creates an inactive thread with this id in `space`; `None` if out of memory or slots.
pub fn create(id: ThreadId, space: *mut Space, scheduler: ThreadId) -> Option<&'static mut Tcb> {
    let (slot, p) = alloc_slot()?;
    // SAFETY: the TCB page was just allocated (zeroed) for this thread.
    let t = unsafe { &mut *p };
    *t = Tcb {
        ksp: 0,
        id,
        state: State::Inactive,
        halted: false,
        space,
        utcb_location: u64::MAX,
        utcb: 0,
        scheduler,
        priority: DEFAULT_PRIORITY,
        timeslice_us: DEFAULT_TIMESLICE_US,
        total_quantum_us: 0,
        slice_left_us: DEFAULT_TIMESLICE_US,
        ready_next: core::ptr::null_mut(),
        ready_prev: core::ptr::null_mut(),
        partner: core::ptr::null_mut(),
        from_spec: ThreadId::NIL,
        sendq_head: core::ptr::null_mut(),
        sendq_next: core::ptr::null_mut(),
        sendq_prev: core::ptr::null_mut(),
        wake: IpcWake::None,
        ipc_from: ThreadId::NIL,
        recv_after_send: ThreadId::NIL,
        recv_timeout: abi::time::Time::NEVER,
        recv_phase_done: false,
        propagate_as: core::ptr::null_mut(),
        tunnel_addr: 0,
        tunnel_receiver_side: false,
        tunnel_abandon: false,
        xfer_copier: core::ptr::null_mut(),
        xfer_abort: false,
        tunnel_for: core::ptr::null_mut(),
        deadline: u64::MAX,
        timer_next: core::ptr::null_mut(),
        startup: false,
        kernel_ipc_depth: 0,
        all_next: core::ptr::null_mut(),
        all_prev: core::ptr::null_mut(),
        slot,
        fpu: FpuArea([0; 512]),
    };
    crate::arch::x86_64::context::init_fpu_image(t.fpu.0.as_mut_ptr());
    *t.frame() = TrapFrame {
        cs: gdt::USER_CS as u64,
        ss: gdt::USER_DS as u64,
        rflags: USER_RFLAGS,
        ..TrapFrame::default()
    };
    // IOPL 3 only where the policy allows it (docs/security.md).
    t.frame().rflags = crate::arch::x86_64::trap::initial_user_rflags(t.space().privileged);
    THREADS.get()[id.number() as usize] = p;
    let head = ALL_THREADS.get();
    t.all_next = *head;
    if !head.is_null() {
        // SAFETY: list members are live TCBs.
        unsafe { (**head).all_prev = p };
    }
    *head = p;
    t.space().threads += 1;
    Some(t)
}

/// RFLAGS of a user thread: IF, IOPL 3 (spec 4.6, item 18 of section 1), bit 1; the IOPL a
/// new thread really gets is the policy's (`trap::initial_user_rflags`): 0 by default
/// (IO-fpages), 3 only with the UNSAFE `iopl=privileged|all` options.
pub const USER_RFLAGS: u64 = 0x3202;

/// Frees a thread that is no longer queued anywhere. Must not be the current thread.
pub fn destroy(t: &mut Tcb) {
    unlist(t);
    release(t);
}

/// Threads deleted while a string transfer run by another thread still uses them: unlisted
/// (their number is free again) but not yet freed; the copier frees them with [`release`]
/// when its transfer ends (docs/kernel-bugs.md).
pub static ZOMBIES: KernelCell<u32> = KernelCell::new(0);

/// Deletes a thread whose TCB and space another thread's transfer still uses: it leaves the
/// thread table and the list of threads now and is freed by [`release_zombie`] later.
pub fn unlist_zombie(t: &mut Tcb) {
    unlist(t);
    *ZOMBIES.get() += 1;
}

/// Frees a thread left by [`unlist_zombie`] (called by the copier when its transfer ends).
pub fn release_zombie(t: &mut Tcb) {
    *ZOMBIES.get() -= 1;
    release(t);
}

/// Takes a thread out of the thread table and the list of all threads; it becomes Dead.
fn unlist(t: &mut Tcb) {
    let p = t as *mut Tcb;
    THREADS.get()[t.id.number() as usize] = core::ptr::null_mut();
    if t.all_prev.is_null() {
        *ALL_THREADS.get() = t.all_next;
    } else {
        // SAFETY: list members are live TCBs.
        unsafe { (*t.all_prev).all_next = t.all_next };
    }
    if !t.all_next.is_null() {
        // SAFETY: list members are live TCBs.
        unsafe { (*t.all_next).all_prev = t.all_prev };
    }
    let _ = p;
    t.state = State::Dead;
}

/// Frees an unlisted thread's slot and drops its space reference.
fn release(t: &mut Tcb) {
    let space = t.space;
    let slot = t.slot;
    free_slot(slot);
    // SAFETY: the space pointer was valid for the thread; it is released with its last thread.
    crate::space::release(unsafe { &mut *space });
}

/// Iterates over every thread.
pub fn for_each(mut f: impl FnMut(&'static mut Tcb)) {
    let mut p = *ALL_THREADS.get();
    while !p.is_null() {
        // SAFETY: list members are live TCBs; `next` is read before `f` may unlink.
        let t = unsafe { &mut *p };
        p = t.all_next;
        f(t);
    }
}
