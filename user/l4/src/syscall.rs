//! The system calls, one wrapper each, honouring the register contract of spec table 4.4.
//!
//! # How a system call is made
//!
//! `KernelInterface` is the instruction pair `lock; nop`, which the kernel emulates. Every
//! other call goes through a kernel-provided stub whose absolute address is in KIP words
//! 52..62 (spec 4.3). [`crate::init`] copies the eleven addresses into [`LINKS`]; each
//! wrapper then does `push rbp; call *LINKS[i]; pop rbp`, exactly like libl4, with the
//! arguments in the registers of table 4.4.
//!
//! # Why the asm blocks look the way they do
//!
//! * Rust inline asm cannot name RBX (reserved by LLVM) or RBP (frame pointer, we build with
//!   `force-frame-pointers`) as operands. RBP is saved around the call as libl4 does; RBX,
//!   which carries MR2 in Ipc/Unmap/MemoryControl and is clobbered by ExchangeRegisters and
//!   the other calls, is pushed before and popped after the call, and MR2 is moved between
//!   RBX and the UTCB inside the asm block.
//! * Ipc, Lipc and Unmap load MR0..MR7 from the UTCB into their registers inside the asm
//!   block and store them back afterwards (libl4 does the same through operands). RDI holds
//!   the UTCB pointer and is *preserved* by the stub (table 4.4), so the stores after the
//!   call go through RDI.
//! * The stub address is read with a RIP-relative memory operand (`call [rip + LINKS+off]`)
//!   so that no register is needed for it: MemoryControl uses every general register.
//! * Every register the table lists as "may clobber" is declared as a discarded output, and
//!   no register it lists as "must preserve" is; the kernel's conformance suite checks the
//!   preserved ones separately.
//! * No `nostack`: the `call` pushes a return address, and stubs may use the user stack
//!   below RSP (the target has no red zone).
//!
//! All wrappers are `unsafe`-free to call once [`crate::init`] has run (before that, the link
//! addresses are 0 and any call faults at address 0). A few calls can change the caller's
//! own memory layout (Unmap with flush, ThreadControl/SpaceControl on its own space); that
//! is the caller's business, as with any L4 program.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::{Fpage, MsgTag, ThreadId, Timeouts};

/// Index into [`LINKS`] of each system call: KIP word − 52 (spec 3.1).
pub mod link {
    /// SpaceControl (KIP word 52).
    pub const SPACE_CONTROL: usize = 0;
    /// ThreadControl (word 53).
    pub const THREAD_CONTROL: usize = 1;
    /// ProcessorControl (word 54).
    pub const PROCESSOR_CONTROL: usize = 2;
    /// MemoryControl (word 55).
    pub const MEMORY_CONTROL: usize = 3;
    /// Ipc (word 56).
    pub const IPC: usize = 4;
    /// Lipc (word 57).
    pub const LIPC: usize = 5;
    /// Unmap (word 58).
    pub const UNMAP: usize = 6;
    /// ExchangeRegisters (word 59).
    pub const EXCHANGE_REGISTERS: usize = 7;
    /// SystemClock (word 60).
    pub const SYSTEM_CLOCK: usize = 8;
    /// ThreadSwitch (word 61).
    pub const THREAD_SWITCH: usize = 9;
    /// Schedule (word 62).
    pub const SCHEDULE: usize = 10;
    /// Number of link words.
    pub const COUNT: usize = 11;
    /// KIP word index of the first link (SpaceControl).
    pub const FIRST_KIP_WORD: usize = 52;
    /// Names in link order, for printing.
    pub const NAMES: [&str; COUNT] = [
        "SpaceControl",
        "ThreadControl",
        "ProcessorControl",
        "MemoryControl",
        "Ipc",
        "Lipc",
        "Unmap",
        "ExchangeRegisters",
        "SystemClock",
        "ThreadSwitch",
        "Schedule",
    ];
}

/// The stub addresses copied from KIP words 52..62 by [`crate::init`] (libl4's `__L4_Ipc`,
/// `__L4_Unmap`, ...). Read by the asm blocks below through the symbol.
pub static LINKS: [AtomicU64; link::COUNT] = [const { AtomicU64::new(0) }; link::COUNT];

/// The stub address of system call `index` (see [`link`]); 0 before [`crate::init`].
pub fn link_address(index: usize) -> u64 {
    LINKS[index].load(Ordering::Relaxed)
}

/// Result of `KernelInterface` (spec 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelInterfaceResult {
    /// RAX: address of the KIP in the caller's address space.
    pub kip: u64,
    /// RCX: the ApiVersion word.
    pub api_version: u64,
    /// RDX: the ApiFlags word.
    pub api_flags: u64,
    /// RSI: the KernelId word.
    pub kernel_id: u64,
}

/// `KernelInterface`: the emulated `lock; nop` (bytes F0 90, spec 4.1). Returns RAX = KIP,
/// RCX = API version, RDX = API flags, RSI = kernel id; every other register is preserved.
/// Works before [`crate::init`].
#[inline(always)]
pub fn kernel_interface() -> KernelInterfaceResult {
    let (kip, api_version, api_flags, kernel_id);
    // SAFETY: the kernel emulates the faulting `lock; nop` and writes only the four
    // declared output registers; no memory is touched.
    unsafe {
        asm!(
            ".byte 0xf0, 0x90",
            out("rax") kip,
            out("rcx") api_version,
            out("rdx") api_flags,
            out("rsi") kernel_id,
            options(nomem, nostack),
        );
    }
    KernelInterfaceResult {
        kip,
        api_version,
        api_flags,
        kernel_id,
    }
}

/// Result of an `Ipc`/`Lipc` (spec 5.7): the received (or own, or error) tag from R9 and
/// the sender id from RSI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcResult {
    /// MR0 after the call: the received tag, the caller's own tag after a send-only IPC, or
    /// a tag with the e flag set after a failure (details in the ErrorCode TCR).
    pub tag: MsgTag,
    /// The sender (local id if it is in the caller's address space); nil if the call had
    /// no receive phase (FromSpecifier = nil).
    pub from: ThreadId,
}

/// `Ipc(to, FromSpecifier, Timeouts)` (KIP word 56): the message is taken from MR0..MR63
/// in the UTCB (write them first, e.g. with [`crate::msg::Msg::load`]); after the call the
/// received MR0..MR7 are back in the UTCB. See spec 5.7 and table 4.4.
#[inline]
pub fn ipc(to: ThreadId, from_specifier: ThreadId, timeouts: Timeouts) -> IpcResult {
    ipc_via::<{ link::IPC * 8 }>(to, from_specifier, timeouts)
}

/// `Lipc` (KIP word 57): like [`ipc`], for partners in the same address space (spec 5.7.7).
#[inline]
pub fn lipc(to: ThreadId, from_specifier: ThreadId, timeouts: Timeouts) -> IpcResult {
    ipc_via::<{ link::LIPC * 8 }>(to, from_specifier, timeouts)
}

#[inline(always)]
fn ipc_via<const OFFSET: usize>(
    to: ThreadId,
    from_specifier: ThreadId,
    timeouts: Timeouts,
) -> IpcResult {
    let utcb = crate::utcb::utcb_pointer();
    let tag: u64;
    let from: u64;
    // SAFETY: register contract of table 4.4 (Ipc/Lipc): in RSI/RDX/R8, MR0..MR7 in
    // R9/RAX/RBX/R10/R12..R15, RDI = UTCB pointer (preserved by the stub); out RSI and the
    // MR registers; RCX/RDX/R8/R11 clobbered. RBX and RBP are saved on the stack around the
    // call. RDI points at our own UTCB's MR0, whose first 8 words are valid memory.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "mov r9,  qword ptr [rdi]",
            "mov rax, qword ptr [rdi + 8]",
            "mov rbx, qword ptr [rdi + 16]",
            "mov r10, qword ptr [rdi + 24]",
            "mov r12, qword ptr [rdi + 32]",
            "mov r13, qword ptr [rdi + 40]",
            "mov r14, qword ptr [rdi + 48]",
            "mov r15, qword ptr [rdi + 56]",
            "call qword ptr [rip + {links} + {offset}]",
            "mov qword ptr [rdi],      r9",
            "mov qword ptr [rdi + 8],  rax",
            "mov qword ptr [rdi + 16], rbx",
            "mov qword ptr [rdi + 24], r10",
            "mov qword ptr [rdi + 32], r12",
            "mov qword ptr [rdi + 40], r13",
            "mov qword ptr [rdi + 48], r14",
            "mov qword ptr [rdi + 56], r15",
            "pop rbp",
            "pop rbx",
            links = sym LINKS,
            offset = const OFFSET,
            in("rdi") utcb,
            inout("rsi") to.raw() => from,
            inout("rdx") from_specifier.raw() => _,
            inout("r8") timeouts.0 => _,
            out("r9") tag,
            out("rax") _,
            out("rcx") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
        );
    }
    let from = if from_specifier.is_nil() {
        ThreadId::NIL
    } else {
        ThreadId::from_raw(from)
    };
    IpcResult {
        tag: MsgTag::from_raw(tag),
        from,
    }
}

/// Inputs and outputs of `ExchangeRegisters` (spec 5.2). As input: the values to set (only
/// those selected by the control bits matter). As output: the values before the call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExregsState {
    /// Control word (input bits of spec 5.2, or the output h/r/s bits).
    pub control: u64,
    /// User stack pointer.
    pub sp: u64,
    /// User instruction pointer.
    pub ip: u64,
    /// User RFLAGS.
    pub flags: u64,
    /// The UserDefinedHandle TCR.
    pub user_handle: u64,
    /// The Pager TCR.
    pub pager: ThreadId,
}

/// `ExchangeRegisters(dest, control, sp, ip, flags, UserDefinedHandle, pager)` (KIP word
/// 59, spec 5.2). Returns the result id (the other form of `dest`, nil on failure with
/// ErrorCode set) and the old state.
#[inline]
pub fn exchange_registers(dest: ThreadId, input: ExregsState) -> (ThreadId, ExregsState) {
    let (result, control, sp, ip, flags, handle, pager): (u64, u64, u64, u64, u64, u64, u64);
    // SAFETY: table 4.4 (ExchangeRegisters): in RAX/RSI/RDX/R8/R9/R10/RDI, the same
    // registers out; RBX, RCX, R11..R15 clobbered (RBX saved on the stack), RBP saved.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "call qword ptr [rip + {links} + {offset}]",
            "pop rbp",
            "pop rbx",
            links = sym LINKS,
            offset = const link::EXCHANGE_REGISTERS * 8,
            inout("rax") dest.raw() => result,
            inout("rsi") input.control => control,
            inout("rdx") input.sp => sp,
            inout("r8") input.ip => ip,
            inout("r9") input.flags => flags,
            inout("r10") input.user_handle => handle,
            inout("rdi") input.pager.raw() => pager,
            out("rcx") _,
            out("r11") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
        );
    }
    let old = ExregsState {
        control,
        sp,
        ip,
        flags,
        user_handle: handle,
        pager: ThreadId::from_raw(pager),
    };
    (ThreadId::from_raw(result), old)
}

/// `ThreadControl(dest, SpaceSpecifier, Scheduler, Pager, UtcbLocation)` (KIP word 53,
/// spec 5.3). Returns the result word (1 = success; 0 = failure, see
/// [`crate::utcb::error_code`]). Pass [`abi::syscall_args::UTCB_LOCATION_UNCHANGED`] to
/// leave the UTCB location alone.
#[inline]
pub fn thread_control(
    dest: ThreadId,
    space_specifier: ThreadId,
    scheduler: ThreadId,
    pager: ThreadId,
    utcb_location: u64,
) -> u64 {
    let result;
    // SAFETY: table 4.4 (ThreadControl): in RDI/RSI/RDX/R8/R9, out RAX, everything else but
    // RSP clobbered (RBX and RBP saved on the stack).
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "call qword ptr [rip + {links} + {offset}]",
            "pop rbp",
            "pop rbx",
            links = sym LINKS,
            offset = const link::THREAD_CONTROL * 8,
            inout("rdi") dest.raw() => _,
            inout("rsi") pager.raw() => _,
            inout("rdx") scheduler.raw() => _,
            inout("r8") space_specifier.raw() => _,
            inout("r9") utcb_location => _,
            out("rax") result,
            out("rcx") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
        );
    }
    result
}

/// `SpaceControl(SpaceSpecifier, control, KipArea, UtcbArea, Redirector)` (KIP word 52,
/// spec 5.9). Returns (result: 1 = success, old control).
#[inline]
pub fn space_control(
    space_specifier: ThreadId,
    control: u64,
    kip_area: Fpage,
    utcb_area: Fpage,
    redirector: ThreadId,
) -> (u64, u64) {
    let (result, old_control);
    // SAFETY: table 4.4 (SpaceControl): in RDI/RSI/RDX/R8/R9, out RAX and RDX, everything
    // else but RSP clobbered (RBX and RBP saved on the stack).
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "call qword ptr [rip + {links} + {offset}]",
            "pop rbp",
            "pop rbx",
            links = sym LINKS,
            offset = const link::SPACE_CONTROL * 8,
            inout("rdi") space_specifier.raw() => _,
            inout("rsi") control => _,
            inout("rdx") kip_area.raw() => old_control,
            inout("r8") utcb_area.raw() => _,
            inout("r9") redirector.raw() => _,
            out("rax") result,
            out("rcx") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
        );
    }
    (result, old_control)
}

/// `Schedule(dest, TimeControl, ProcessorControl, PrioControl, PreemptionControl)` (KIP
/// word 62, spec 5.6). Each control word all ones = no change. Returns (result: 0 error,
/// 1 dead, 2 inactive, 3 running, 4 pending send, 5 sending, 6 waiting, 7 receiving; old
/// TimeControl). See [`abi::syscall_args`].
#[inline]
pub fn schedule(
    dest: ThreadId,
    time_control: u64,
    processor_control: u64,
    prio_control: u64,
    preemption_control: u64,
) -> (u64, u64) {
    let (result, old_time);
    // SAFETY: table 4.4 (Schedule): in RDI = dest, RSI = prio, RDX = time, R8 = processor,
    // R9 = preemption; out RAX and RDX; everything else but RSP clobbered (RBX, RBP saved).
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "call qword ptr [rip + {links} + {offset}]",
            "pop rbp",
            "pop rbx",
            links = sym LINKS,
            offset = const link::SCHEDULE * 8,
            inout("rdi") dest.raw() => _,
            inout("rsi") prio_control => _,
            inout("rdx") time_control => old_time,
            inout("r8") processor_control => _,
            inout("r9") preemption_control => _,
            out("rax") result,
            out("rcx") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
        );
    }
    (result, old_time)
}

/// `ThreadSwitch(dest)` (KIP word 61, spec 5.5): nil = yield, otherwise donate the rest of
/// the timeslice to `dest`.
#[inline]
pub fn thread_switch(dest: ThreadId) {
    // SAFETY: table 4.4 (ThreadSwitch): in RDI; every register but RSP clobbered (RBX and
    // RBP saved on the stack).
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "call qword ptr [rip + {links} + {offset}]",
            "pop rbp",
            "pop rbx",
            links = sym LINKS,
            offset = const link::THREAD_SWITCH * 8,
            inout("rdi") dest.raw() => _,
            out("rax") _,
            out("rcx") _,
            out("rdx") _,
            out("rsi") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
        );
    }
}

/// `SystemClock()` (KIP word 60, spec 5.4): microseconds since boot.
#[inline]
pub fn system_clock() -> u64 {
    let clock;
    // SAFETY: table 4.4 (SystemClock): out RAX; every register but RSP clobbered (RBX and
    // RBP saved on the stack).
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "call qword ptr [rip + {links} + {offset}]",
            "pop rbp",
            "pop rbx",
            links = sym LINKS,
            offset = const link::SYSTEM_CLOCK * 8,
            out("rax") clock,
            out("rcx") _,
            out("rdx") _,
            out("rsi") _,
            out("rdi") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
        );
    }
    clock
}

/// `Unmap(control)` (KIP word 58, spec 5.8): operates on the fpages in MR0..MRk (k = control
/// bits 0–5; bit 6 = flush). Afterwards MR0..MRk hold the fpages with their access status
/// in the rights bits. Write the fpages with [`crate::utcb::set_mr`] first.
#[inline]
pub fn unmap(control: u64) {
    let utcb = crate::utcb::utcb_pointer();
    // SAFETY: table 4.4 (Unmap): in RDX = control, MR0..MR7 in R9/RAX/RBX/R10/R12..R15,
    // RDI = UTCB pointer (preserved); MR0..MR7 out in the same registers, stored back like
    // libl4; RCX/RDX/RSI/R8/R11 clobbered. RBX and RBP saved on the stack.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "mov r9,  qword ptr [rdi]",
            "mov rax, qword ptr [rdi + 8]",
            "mov rbx, qword ptr [rdi + 16]",
            "mov r10, qword ptr [rdi + 24]",
            "mov r12, qword ptr [rdi + 32]",
            "mov r13, qword ptr [rdi + 40]",
            "mov r14, qword ptr [rdi + 48]",
            "mov r15, qword ptr [rdi + 56]",
            "call qword ptr [rip + {links} + {offset}]",
            "mov qword ptr [rdi],      r9",
            "mov qword ptr [rdi + 8],  rax",
            "mov qword ptr [rdi + 16], rbx",
            "mov qword ptr [rdi + 24], r10",
            "mov qword ptr [rdi + 32], r12",
            "mov qword ptr [rdi + 40], r13",
            "mov qword ptr [rdi + 48], r14",
            "mov qword ptr [rdi + 56], r15",
            "pop rbp",
            "pop rbx",
            links = sym LINKS,
            offset = const link::UNMAP * 8,
            in("rdi") utcb,
            inout("rdx") control => _,
            out("rsi") _,
            out("r8") _,
            out("r9") _,
            out("rax") _,
            out("rcx") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
        );
    }
}

/// `ProcessorControl(ProcessorNo, InternalFrequency, ExternalFrequency, voltage)` (KIP word
/// 54, spec 5.10). Returns the result word (1 = success).
#[inline]
pub fn processor_control(
    processor: u64,
    internal_freq: u64,
    external_freq: u64,
    voltage: u64,
) -> u64 {
    let result;
    // SAFETY: table 4.4 (ProcessorControl): in RDI/RSI/RDX/R8, out RAX; everything else but
    // RSP clobbered (RBX and RBP saved on the stack).
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "call qword ptr [rip + {links} + {offset}]",
            "pop rbp",
            "pop rbx",
            links = sym LINKS,
            offset = const link::PROCESSOR_CONTROL * 8,
            inout("rdi") processor => _,
            inout("rsi") internal_freq => _,
            inout("rdx") external_freq => _,
            inout("r8") voltage => _,
            out("rax") result,
            out("rcx") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
        );
    }
    result
}

/// `MemoryControl(control, attribute0..3)` (KIP word 55, spec 5.11): applies attributes to
/// the fpages in MR0..MRk (write them first). Returns the result word (RDX, 1 = success).
///
/// Unlike libl4 (spec 4.4 notes) this wrapper passes the real MR0 in R9 and does **not**
/// write RAX/RCX back into MR1/MR0 afterwards, so the UTCB is left as the kernel left it.
#[inline]
pub fn memory_control(control: u64, attributes: [u64; 4]) -> u64 {
    let utcb = crate::utcb::utcb_pointer();
    let result;
    // SAFETY: table 4.4 (MemoryControl): in RDX = control, RCX/RSI/R8/R11 = attributes,
    // MR0..MR7 in R9/RAX/RBX/R10/R12..R15 (loaded from the UTCB at RDI), RDI = UTCB pointer;
    // out RDX; RSI and RDI preserved; RAX, RCX, RBX, R8..R15 clobbered (RBX, RBP saved).
    // Every GPR carries an input, so the stub address is a RIP-relative memory operand.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "mov r9,  qword ptr [rdi]",
            "mov rax, qword ptr [rdi + 8]",
            "mov rbx, qword ptr [rdi + 16]",
            "mov r10, qword ptr [rdi + 24]",
            "mov r12, qword ptr [rdi + 32]",
            "mov r13, qword ptr [rdi + 40]",
            "mov r14, qword ptr [rdi + 48]",
            "mov r15, qword ptr [rdi + 56]",
            "call qword ptr [rip + {links} + {offset}]",
            "pop rbp",
            "pop rbx",
            links = sym LINKS,
            offset = const link::MEMORY_CONTROL * 8,
            in("rdi") utcb,
            inout("rdx") control => result,
            inout("rcx") attributes[0] => _,
            in("rsi") attributes[1],
            inout("r8") attributes[2] => _,
            inout("r11") attributes[3] => _,
            out("r9") _,
            out("rax") _,
            out("r10") _,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
        );
    }
    result
}
