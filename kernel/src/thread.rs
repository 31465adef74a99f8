//! Threads: thread control blocks, the thread table, and kernel stacks.
//!
//! Owns every `Tcb`. A thread number indexes `THREADS` directly (2^18 entries, as many as
//! ThreadInfo.t = 18 allows), so finding a thread from a global id is one load and a version
//! compare. Each thread has a 24 KiB virtual slot in the kernel-stack region:
//! `[guard page][16 KiB kernel stack][TCB page]`, so a stack overflow hits the guard page
//! (a double fault with its own stack) instead of the TCB. The user state of a thread in the
//! kernel is the `TrapFrame` at the top of its stack, right below its TCB.
//!
//! Every TCB gets a fresh generation when it is created; a `Handle` (number + generation) names
//! a thread for as long as that TCB lives, and `get` refuses a handle to a deleted thread even
//! if its number (or its user-visible id) was given to a new one. Links between threads are
//! handles or numbers, never pointers.
//!
//! May touch: the scheduler (to queue and dequeue), spaces (membership, UTCB pages).

use abi::thread_id::ThreadId;

use crate::arch::paging::{self, ADDR_MASK, G, NX, P, RW, table};
use crate::arch::trap::{TRAP_FRAME_SIZE, TrapFrame};
use crate::arch::{cpu, gdt};
use crate::kernel_state::Kernel;
use crate::mm::frame;
use crate::space::Space;
use crate::sync::{KernelCell, KernelValue};

pub const THREAD_BITS: u32 = 18;
pub const MAX_THREADS: usize = 1 << THREAD_BITS;
/// Interrupt threads occupy numbers 0..SYSTEM_BASE.
pub const SYSTEM_BASE: u64 = crate::platform::pic::NUM_IRQS as u64;
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
/// Pool frames each thread owns while it exists: its kernel stack pages and its TCB page.
#[cfg(feature = "invariants")]
pub const FRAMES_PER_THREAD: u64 = STACK_PAGES as u64 + 1;
const TCB_OFFSET: u64 = STACK_OFFSET + STACK_SIZE;
/// Threads that can exist at once (each needs a slot).
pub const MAX_SLOTS: usize = 16384;

pub const DEFAULT_PRIORITY: u8 = 100;
pub const ROOT_PRIORITY: u8 = 255;
/// Default time slice (µs).
pub const DEFAULT_TIMESLICE_US: u64 = 10_000;

use kcore::queue::{Link, Queue};
/// A thread named by the kernel (number + TCB generation): the links between threads.
pub use kcore::state::Handle;
/// What a thread is doing: an enum carrying the data of each state (`kcore::state`, where
/// the reactions to timeouts, aborts and deletions are decided and host-tested).
pub use kcore::state::ThreadState as State;

/// How a blocked IPC ended, written by whoever woke the thread. `repr(u8)`: the tag is the
/// first byte (the assembly fast path writes it, `fastpath.rs`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum IpcWake {
    None,
    /// The message was transferred (for a receiver: from `ipc_from`).
    Done,
    /// The IPC failed (encoded into the ErrorCode TCR by `ipc::report_error` only).
    Error(crate::ipc::IpcErr),
    /// A transfer timeout expired while the copier waited for a tunnelled fault (`string.rs`).
    XferExpired,
    /// The partner's tunnelled fault IPC failed (`string.rs`).
    TunnelFailed,
    /// The partner needs a page fault of ours resolved during a string copy (`string.rs`).
    Tunnel,
}

/// Generation of the next TCB (never 0; wraps after 2^32 creations).
static NEXT_GENERATION: KernelValue<u32> = KernelValue::new(1);

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
    /// In its priority's ready queue (by thread number, `schedule.rs`), and its neighbours there.
    pub ready_queued: bool,
    pub ready_link: Link,
    // IPC (whom a blocked thread waits for is in `state`)
    /// Send queue, by thread number (0: none): the threads waiting to send to this one, in
    /// order, and how many of them send a propagated message (`ipc::queued_sender`). A queued
    /// thread links to its neighbours.
    pub sendq: Queue,
    pub sendq_propagated: u32,
    pub sendq_link: Link,
    /// Closed receivers waiting for a message from this thread (by number, 0: none), and on a
    /// closed receiver: whose list it is in and its neighbours [previous, next]
    /// (`ipc::enter_receive`).
    pub recvq: Queue,
    pub recvq_on: u32,
    /// The thread number (`id.number()`, which a version change keeps), for the links.
    pub no: u32,
    pub recvq_link: Link,
    pub wake: IpcWake,
    pub ipc_from: ThreadId,
    /// Page fault to tunnel for the partner's string copy (`string.rs`).
    pub tunnel_addr: u64,
    pub tunnel_receiver_side: bool,
    /// The transfer gave up waiting for this tunnelled fault: do not (or no longer) send it.
    pub tunnel_abandon: bool,
    /// During a string copy (set on both parties): the other party, whether this thread runs
    /// the copy, and whether this thread is the sender of the message. On the copier:
    /// whether the transfer was aborted (ExchangeRegisters, deletion of the partner; spec 5.2:
    /// code 7 for both).
    pub xfer_partner: Option<Handle>,
    pub xfer_copier: bool,
    pub xfer_sender: bool,
    pub xfer_abort: bool,
    /// The receive phase that follows the current send phase (nil: none), its timeout, and
    /// whether a partner already moved this thread into it (`ipc::finish_queued_send`).
    pub recv_after_send: ThreadId,
    pub recv_timeout: abi::time::Time,
    pub recv_phase_done: bool,
    /// While sending a propagated message: the virtual sender (spec 5.7.5).
    pub propagate_as: Option<Handle>,
    /// Absolute timeout in µs, `u64::MAX` = none.
    pub deadline: u64,
    /// True while the thread waits for its start-up message (spec 6.1).
    pub startup: bool,
    /// Nesting of kernel-generated IPCs (page faults, exceptions) in progress.
    pub kernel_ipc_depth: u32,
    pub slot: u32,
    /// Kernel-private generation of this TCB (see [`Handle`]).
    pub generation: u32,
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
pub static CURRENT: KernelValue<*mut Tcb> = KernelValue::new(core::ptr::null_mut());

struct SlotAllocator {
    next_fresh: u32,
    free: [u32; MAX_SLOTS],
    nfree: usize,
}

/// Page tables of the kernel-stack region, allocated once at boot so that creating and
/// deleting threads never changes them (kernel memory returns to its figure exactly).
pub fn init() -> bool {
    let pml4 = paging::kernel_pml4();
    // SAFETY: a kernel-owned page table; no other reference to it in use.
    let pdpt = (unsafe { table(pml4) })[511] & ADDR_MASK;
    let Some(pd) = frame::alloc() else {
        return false;
    };
    let region_bytes = MAX_SLOTS as u64 * SLOT_SIZE;
    let pts = region_bytes.div_ceil(2 << 20);
    for i in 0..pts as usize {
        let Some(pt) = frame::alloc() else {
            return false;
        };
        // SAFETY: a kernel-owned page table; no other reference to it in use.
        (unsafe { table(pd) })[i] = pt | P | RW;
    }
    // SAFETY: a kernel-owned page table; no other reference to it in use.
    (unsafe { table(pdpt) })[511] = pd | P | RW;
    true
}

/// # Safety
/// The caller must not keep the reference across another access to that PTE.
unsafe fn slot_pte(va: u64) -> &'static mut u64 {
    // Not `paging::walk`: the slot region's tables are fixed at boot (`init`), so three loads
    // at known indices find the entry (the general walker costs ~25 instructions more per page,
    // five pages per thread creation and deletion).
    // SAFETY: a kernel-owned page table; no other reference to it in use.
    let pdpt = (unsafe { table(paging::kernel_pml4()) })[511] & ADDR_MASK;
    // SAFETY: a kernel-owned page table; no other reference to it in use.
    let pd = (unsafe { table(pdpt) })[511] & ADDR_MASK;
    // SAFETY: a kernel-owned page table; no other reference to it in use.
    let pt = (unsafe { table(pd) })[paging::index(va, 2)] & ADDR_MASK;
    // SAFETY: a kernel-owned page table; no other reference to it in use.
    &mut (unsafe { table(pt) })[paging::index(va, 1)]
}

/// Allocates a slot with its stack and TCB pages mapped; returns (slot, tcb pointer).
fn alloc_slot() -> Option<(u32, *mut Tcb)> {
    // SAFETY: the only borrow of FREE_SLOTS in use; it ends before any call that touches it.
    let a = unsafe { FREE_SLOTS.get() };
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
                // SAFETY: the only borrow of FREE_SLOTS in use; it ends before any call that touches it.
                let a = unsafe { FREE_SLOTS.get() };
                a.free[a.nfree] = slot;
                a.nfree += 1;
                return None;
            }
        }
    }
    let g = if cpu::features().pge { G } else { 0 };
    let nx = if cpu::features().nx { NX } else { 0 };
    for (i, f) in frames.iter().enumerate() {
        // SAFETY: a kernel-owned page table; no other reference to it in use.
        *(unsafe { slot_pte(base + STACK_OFFSET + 4096 * i as u64) }) = *f | P | RW | g | nx;
    }
    Some((slot, (base + TCB_OFFSET) as *mut Tcb))
}

fn free_slot(slot: u32) {
    let base = SLOT_REGION + slot as u64 * SLOT_SIZE;
    for i in 0..=STACK_PAGES as u64 {
        let va = base + STACK_OFFSET + 4096 * i;
        // SAFETY: a kernel-owned page table; no other reference to it in use.
        let pte = unsafe { slot_pte(va) };
        let f = *pte & ADDR_MASK;
        *pte = 0;
        cpu::invlpg(va);
        frame::free(f);
    }
    // SAFETY: the only borrow of FREE_SLOTS in use; it ends before any call that touches it.
    let a = unsafe { FREE_SLOTS.get() };
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

    /// # Safety
    /// The caller must not use the returned reference while another reference to the same
    /// space is in use, nor after the space can have been deleted.
    pub unsafe fn space(&self) -> &'static mut Space {
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

    /// The MR array of the UTCB, borrowed with the TCB: the UTCB belongs to this thread alone
    /// (user code writes it only while the thread runs, never while the kernel holds its TCB).
    pub fn mrs(&mut self) -> &mut [u64; 64] {
        debug_assert!(self.utcb != 0);
        // SAFETY: as in `utcb_word`: MR0..MR63 occupy the upper 512 bytes of the UTCB; the
        // borrow of `self` is exclusive, so is this one.
        unsafe { &mut *((self.utcb + 0x200) as *mut [u64; 64]) }
    }

    /// The MR array of the UTCB, to read.
    pub fn mrs_ref(&self) -> &[u64; 64] {
        debug_assert!(self.utcb != 0);
        // SAFETY: as in `mrs`; shared with the shared borrow of `self`.
        unsafe { &*((self.utcb + 0x200) as *const [u64; 64]) }
    }

    /// The local id (MR0 address in its own space).
    pub fn local_id(&self) -> ThreadId {
        ThreadId::from_raw(self.utcb_location.wrapping_add(0x200))
    }

    pub fn same_space(&self, other: &Tcb) -> bool {
        self.space == other.space
    }

    /// This thread's name for links from other threads.
    pub fn handle(&self) -> Handle {
        Handle {
            no: self.no,
            generation: self.generation,
        }
    }
}

/// The thread in slot `slot`. Only for slots of live threads: the scheduler's timer heap names
/// threads by slot, and deleting a thread disarms its timer first.
/// # Safety
/// The caller must not use the returned reference while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
pub unsafe fn of_slot(slot: u32) -> Option<&'static mut Tcb> {
    if slot as usize >= MAX_SLOTS {
        return None;
    }
    let p = (SLOT_REGION + slot as u64 * SLOT_SIZE + TCB_OFFSET) as *mut Tcb;
    // SAFETY: a live thread's slot has its TCB page mapped (callers name only armed timers,
    // which belong to live threads); the TCB is the one the thread table points at.
    let t = unsafe { &mut *p };
    debug_assert!(t.slot == slot);
    Some(t)
}

/// Calls `f` for every thread, in thread-number order: a walk of the whole thread table, for
/// the kernel debugger only (the kernel itself never needs to look at every thread).
#[cfg(feature = "kdb")]
/// # Safety
/// The caller must not use the reference passed to `f` while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
pub unsafe fn for_each(mut f: impl FnMut(&'static mut Tcb)) {
    for no in 0..MAX_THREADS as u64 {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        if let Some(t) = unsafe { lookup_number(no) } {
            f(t);
        }
    }
}

/// The thread with number `no`, which a queue links to: it exists, because every thread is taken
/// out of the queues it is in before it is deleted (`ipc::unlink_deleted`, `schedule::dequeue`).
/// A broken link faults on the null entry (fail-stop), as a stale pointer would not; the
/// `checked` build asserts it.
#[inline(always)]
/// # Safety
/// The caller must not use the returned reference while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
pub unsafe fn linked(no: u32) -> &'static mut Tcb {
    // SAFETY: the only borrow of THREADS in use; it ends before any call that touches it.
    let p = (unsafe { THREADS.get() })[no as usize & (MAX_THREADS - 1)];
    debug_assert!(!p.is_null(), "thread {no} linked in a queue does not exist");
    // SAFETY: queue members are live threads (above); the table entry points at the TCB.
    unsafe { &mut *p }
}

/// The thread a handle names, if it still exists.
/// # Safety
/// The caller must not use the returned reference while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
pub unsafe fn get(h: Handle) -> Option<&'static mut Tcb> {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    (unsafe { lookup_number(h.no as u64) }).filter(|t| t.generation == h.generation)
}

/// # Safety
/// The caller must not use the returned reference while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
pub unsafe fn current() -> &'static mut Tcb {
    // SAFETY: CURRENT always points at a live TCB once threads exist.
    unsafe { &mut *CURRENT.get() }
}

pub fn current_ptr() -> *mut Tcb {
    CURRENT.get()
}

/// The thread with exactly this global id, if it exists.
/// # Safety
/// The caller must not use the returned reference while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
#[inline(always)]
pub unsafe fn lookup_global(id: ThreadId) -> Option<&'static mut Tcb> {
    if !id.is_global() {
        return None;
    }
    let no = id.number() as usize;
    if no >= MAX_THREADS {
        return None;
    }
    // SAFETY: the only borrow of THREADS in use; it ends before any call that touches it.
    let p = (unsafe { THREADS.get() })[no];
    if p.is_null() {
        return None;
    }
    // SAFETY: table entries point at live TCBs.
    let t = unsafe { &mut *p };
    (t.id == id).then_some(t)
}

/// The thread with this number, whatever its version.
/// # Safety
/// The caller must not use the returned reference while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
pub unsafe fn lookup_number(no: u64) -> Option<&'static mut Tcb> {
    if no as usize >= MAX_THREADS {
        return None;
    }
    // SAFETY: the only borrow of THREADS in use; it ends before any call that touches it.
    let p = (unsafe { THREADS.get() })[no as usize];
    // SAFETY: table entries point at live TCBs.
    (!p.is_null()).then(|| unsafe { &mut *p })
}

/// Resolves a thread id given by `by` (a local id names a thread in `by`'s space).
/// # Safety
/// The caller must not use the returned reference while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
#[inline(always)]
pub unsafe fn resolve(by: &Tcb, id: ThreadId) -> Option<&'static mut Tcb> {
    if id.is_local() && !id.is_any_local() {
        // SAFETY: the caller's contract, passed on.
        unsafe { resolve_local(by, id) }
    } else {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        unsafe { lookup_global(id) }
    }
}

/// # Safety
/// As [`resolve`].
#[inline(never)]
unsafe fn resolve_local(by: &Tcb, id: ThreadId) -> Option<&'static mut Tcb> {
    // The MyGlobalId TCR of the UTCB at that address in the caller's space; a user may
    // write anything there, so the thread found must really own that UTCB.
    let gid = crate::arch::usercopy::read_u64(id.raw().wrapping_sub(0x78))?;
    // SAFETY: the caller's contract, passed on.
    let t = unsafe { lookup_global(ThreadId::from_raw(gid)) }?;
    (t.same_space(by) && t.local_id() == id).then_some(t)
}

/// Creates an inactive thread with this id in `space`; `None` if out of memory or slots.
/// # Safety
/// The caller must not use the returned reference while another reference to the same TCB
/// is in use, nor after that thread can have been deleted (across a blocking string copy or
/// a call that may delete threads): hold a `Handle` across those and look the thread up again.
pub unsafe fn create(
    id: ThreadId,
    space: *mut Space,
    scheduler: ThreadId,
) -> Option<&'static mut Tcb> {
    let (slot, p) = alloc_slot()?;
    // SAFETY: the TCB page was just allocated (zeroed) for this thread.
    let t = unsafe { &mut *p };
    let generation = {
        let this = NEXT_GENERATION.get();
        NEXT_GENERATION.set(this.wrapping_add(1).max(1));
        this
    };
    *t = Tcb {
        ksp: 0,
        id,
        generation,
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
        ready_queued: false,
        ready_link: Link { prev: 0, next: 0 },
        sendq: Queue::EMPTY,
        sendq_propagated: 0,
        sendq_link: Link { prev: 0, next: 0 },
        recvq: Queue::EMPTY,
        recvq_on: 0,
        recvq_link: Link { prev: 0, next: 0 },
        no: id.number() as u32,
        wake: IpcWake::None,
        ipc_from: ThreadId::NIL,
        recv_after_send: ThreadId::NIL,
        recv_timeout: abi::time::Time::NEVER,
        recv_phase_done: false,
        propagate_as: None,
        tunnel_addr: 0,
        tunnel_receiver_side: false,
        tunnel_abandon: false,
        xfer_partner: None,
        xfer_copier: false,
        xfer_sender: false,
        xfer_abort: false,
        deadline: u64::MAX,
        startup: false,
        kernel_ipc_depth: 0,
        slot,
        fpu: FpuArea([0; 512]),
    };
    crate::arch::fpu::init_image(&mut t.fpu.0);
    *t.frame() = TrapFrame {
        cs: gdt::USER_CS as u64,
        ss: gdt::USER_DS as u64,
        rflags: USER_RFLAGS,
        ..TrapFrame::default()
    };
    // IOPL 3 only where the policy allows it (docs/security.md).
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    t.frame().rflags = crate::arch::trap::initial_user_rflags((unsafe { t.space() }).privileged);
    // SAFETY: the only borrow of THREADS in use; it ends before any call that touches it.
    (unsafe { THREADS.get() })[id.number() as usize] = p;
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    (unsafe { t.space() }).threads += 1;
    Some(t)
}

/// RFLAGS of a user thread: IF, IOPL 3 (spec 4.6, item 18 of section 1), bit 1; the IOPL a
/// new thread really gets is the policy's (`trap::initial_user_rflags`): 0 by default
/// (IO-fpages), 3 only with the UNSAFE `iopl=privileged|all` options.
pub const USER_RFLAGS: u64 = 0x3202;

/// Frees a thread that is no longer queued anywhere. Must not be the current thread.
pub fn destroy(k: &mut Kernel, t: &mut Tcb) {
    crate::thread_control::utcb_released(k, t);
    // Lazy FPU: its registers must not pass to a thread whose save area lands here.
    crate::arch::fpu::forget(t.fpu.0.as_mut_ptr());
    // SAFETY: the only borrow of THREADS in use; it ends before any call that touches it.
    (unsafe { THREADS.get() })[t.id.number() as usize] = core::ptr::null_mut();
    t.state = State::Dead;
    let space = t.space;
    let slot = t.slot;
    free_slot(slot);
    // SAFETY: the space pointer was valid for the thread; it is released with its last thread.
    crate::space::release(unsafe { &mut *space });
}
