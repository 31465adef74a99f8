//! Security of the ring transitions and of the kernel-debugger interface (issue 10, classes 1
//! and 3; docs/security.md). Every attack runs in an **unprivileged** space (a child in a new
//! address space, `util::spawn_in_new_space`), written as a new user would write it: inline
//! assembly in the child.
//!
//! * Far transfers (far return, far jump, far call, `iretq`) to every selector a user can
//!   name, each followed by `syscall`, `sysenter` or `int 0x80`: the far return to 0x1B
//!   reached compatibility mode, where `syscall` entered ring 0 at CSTAR = 0. Now every such
//!   transfer but the one to the 64-bit user code segment 0x2B faults in user mode.
//! * `sysenter` in 64-bit mode, `int N` for every N, `int1` (icebp): each is an exception
//!   message to the thread's exception handler (vector 3 for `int 3`, #GP for the other
//!   gates, which are not user-callable), never a kernel fault.
//! * User-chosen IP, SP and RFLAGS on the way back to user mode: ExchangeRegisters on itself
//!   (non-canonical IP and SP, all-ones flags), an exception reply with a non-canonical IP
//!   or all-ones flags, and a start-up message with a non-canonical IP (from an unprivileged
//!   pager; this one made `iretq` fault in ring 0). A non-canonical IP becomes a #GP for the
//!   thread; only CF, PF, AF, ZF, SF, OF may change (spec 4.6).
//! * DF, AC and NT set by the user across system calls, timer interrupts and an exception;
//!   TF set across a system call (single-stepping into `syscall`).
//! * I/O privilege: the unprivileged space runs with IOPL 0, so `cli` (which would stop the
//!   uniprocessor for good) raises #GP, and `popf` cannot raise IOPL.
//! * KDB (decision 007): from the unprivileged space, KDB_Enter("exit-success") must not end
//!   the system, ReadChar_Blocked must not block (it reads "no character"); from a
//!   privileged thread, a blocked read must not stop the kernel.
//!
//! The exception handler is a thread of the root's space: it records each exception and
//! resumes the attacker at `RESUME_IP`/`RESUME_SP` (set by each attack just before it), or,
//! for #DB (single-step), lets it continue.
//!
//! Threads (attacker, handler, the second thread of the attacker's space, a privileged
//! blocking reader, a KDB child), root UTCB slots and stacks come from each check's `Cx`.

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use abi::msgtag::labels;
use abi::{MsgTag, ThreadId, Time, Timeouts};
use l4::syscall::{self, link};
use l4::{kdb, utcb};

use super::util::{self, kill_r, root};
use crate::conformance::{Check, Cx, start_local};

/// The check functions; threads, slots and stacks come from their [`Cx`].
pub const CHECKS: &[Check] = &[
    Check {
        name: "security.attacks",
        run: attacks,
    },
    Check {
        name: "security.kdb_unprivileged",
        run: kdb_unprivileged,
    },
    Check {
        name: "security.kdb_blocked_read",
        run: kdb_blocked_read,
    },
];

/// The attack's threads (raw ids) and the attacker's initial stack pointer, set by the root
/// before the attacker starts: the exception handler (root's space), the attacker's second
/// thread.
static HANDLER: AtomicU64 = AtomicU64::new(0);
static SECOND: AtomicU64 = AtomicU64::new(0);
static ATTACKER_SP: AtomicU64 = AtomicU64::new(0);

/// A non-canonical address just above the lower half, and one just below the upper half.
const BAD_IP: u64 = 0x0000_8000_0000_0000;
const BAD_IP2: u64 = 0xFFFF_7FFF_FFFF_F000;

/// RFLAGS bits a user may change through the kernel (spec 4.6): CF PF AF ZF SF OF.
const USER_FLAGS: u64 = 0x8D5;
const DF: u64 = 1 << 10;
const NT: u64 = 1 << 14;
const AC: u64 = 1 << 18;

// ---------------------------------------------------------------------------------------
// The exception handler (root's space).

static RESUME_IP: AtomicU64 = AtomicU64::new(0);
static RESUME_SP: AtomicU64 = AtomicU64::new(0);
/// Exceptions other than #DB seen, and the last one's vector and IP.
static EXC_COUNT: AtomicU64 = AtomicU64::new(0);
static LAST_VEC: AtomicU64 = AtomicU64::new(0);
static LAST_IP: AtomicU64 = AtomicU64::new(0);
/// #DB (single-step, icebp) seen.
static DB_COUNT: AtomicU64 = AtomicU64::new(0);
/// How to answer the next exception: 0 resume, 1 reply IP = BAD_IP, 2 resume with RFLAGS all
/// ones.
static REPLY_MODE: AtomicU64 = AtomicU64::new(0);

extern "C" fn handler() -> ! {
    let mut reply_to = ThreadId::NIL;
    loop {
        let r = if reply_to.is_nil() {
            syscall::ipc(
                ThreadId::NIL,
                ThreadId::ANY,
                Timeouts::new(Time::NEVER, Time::NEVER),
            )
        } else {
            syscall::ipc(
                reply_to,
                ThreadId::ANY,
                Timeouts::new(Time::ZERO, Time::NEVER),
            )
        };
        reply_to = ThreadId::NIL;
        if r.tag.error() || r.tag.label() != labels::EXCEPTION || r.tag.untyped() < 19 {
            continue;
        }
        let mut regs = [0u64; 19];
        utcb::mrs(1, &mut regs);
        if regs[18] == 1 {
            DB_COUNT.fetch_add(1, SeqCst);
        } else {
            LAST_VEC.store(regs[18], SeqCst);
            LAST_IP.store(regs[0], SeqCst);
            EXC_COUNT.fetch_add(1, SeqCst);
            match REPLY_MODE.swap(0, SeqCst) {
                1 => regs[0] = BAD_IP,
                2 => {
                    regs[0] = RESUME_IP.load(SeqCst);
                    regs[16] = RESUME_SP.load(SeqCst);
                    regs[17] = u64::MAX;
                }
                _ => {
                    regs[0] = RESUME_IP.load(SeqCst);
                    regs[16] = RESUME_SP.load(SeqCst);
                }
            }
        }
        utcb::set_mrs(1, &regs[..18]);
        utcb::set_mr(0, MsgTag::new(0, 18, 0).raw());
        reply_to = r.from;
    }
}

// ---------------------------------------------------------------------------------------
// Attack scaffolding: every attack saves where to resume, then runs; inputs come from ARG*,
// results go to OUT*. The handler's reply restores every register but RIP/RSP as they were
// at the fault, so the attacks clobber only what the macro declares.

static ARG0: AtomicU64 = AtomicU64::new(0);
static ARG1: AtomicU64 = AtomicU64::new(0);
static ARG2: AtomicU64 = AtomicU64::new(0);
static OUT0: AtomicU64 = AtomicU64::new(0);
static OUT1: AtomicU64 = AtomicU64::new(0);
/// A KIP system-call link (stub address).
static TARGET: AtomicU64 = AtomicU64::new(0);

macro_rules! attack {
    ($($body:literal),* $(,)?) => {
        // SAFETY: an attack on the kernel from our own thread: it changes only the registers
        // declared here (RBX, RBP saved on the stack), our stack below RSP, and the statics
        // named; every fault it provokes is answered by the handler thread, which resumes
        // us at label 2 with the saved stack pointer. DF is clear again at the end.
        unsafe {
            core::arch::asm!(
                "push rbx",
                "push rbp",
                "lea rax, [rip + 2f]",
                "mov qword ptr [rip + {resume_ip}], rax",
                "mov qword ptr [rip + {resume_sp}], rsp",
                $($body,)*
                "2:",
                "cld",
                "pop rbp",
                "pop rbx",
                "/* {a0} {a1} {a2} {o0} {o1} {target} */",
                resume_ip = sym RESUME_IP,
                resume_sp = sym RESUME_SP,
                a0 = sym ARG0,
                a1 = sym ARG1,
                a2 = sym ARG2,
                o0 = sym OUT0,
                o1 = sym OUT1,
                target = sym TARGET,
                out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _,
                out("r13") _, out("r14") _, out("r15") _,
            )
        }
    };
}

/// Runs `f` and returns (exceptions seen, last vector, last IP) for it.
fn observe(f: impl FnOnce()) -> (u64, u64, u64) {
    let n0 = EXC_COUNT.load(SeqCst);
    LAST_VEC.store(u64::MAX, SeqCst);
    f();
    (
        EXC_COUNT.load(SeqCst) - n0,
        LAST_VEC.load(SeqCst),
        LAST_IP.load(SeqCst),
    )
}

/// Selectors a user can name with RPL 3: every GDT slot and beyond, LDT ones, the null one.
const SELECTORS: [u64; 16] = [
    0x03, 0x0B, 0x13, 0x1B, 0x23, 0x2B, 0x33, 0x3B, 0x43, 0x4B, 0x07, 0x0F, 0x1F, 0x2F, 0xFFFB,
    0xFFFF,
];

/// Far transfer kinds (ARG1): 0 far return, 1 far jump m16:32, 2 far call m16:32, 3 iretq.
/// Landing code (ARG2): 0 `syscall` then `ud2`, 1 `sysenter`, 2 `int 0x80`.
fn far_transfer(sel: u64, kind: u64, landing: u64) -> (u64, u64, u64) {
    ARG0.store(sel, SeqCst);
    ARG1.store(kind, SeqCst);
    ARG2.store(landing, SeqCst);
    observe(|| {
        attack!(
            "mov rcx, qword ptr [rip + {a0}]",
            "mov rdx, qword ptr [rip + {a1}]",
            "mov rsi, qword ptr [rip + {a2}]",
            "lea rax, [rip + 3f]",
            "cmp rdx, 1",
            "je 41f",
            "cmp rdx, 2",
            "je 42f",
            "cmp rdx, 3",
            "je 43f",
            // far return: push CS, RIP; retfq
            "push rcx",
            "push rax",
            ".byte 0x48, 0xCB",
            "41:",
            // far jump through m16:32 at [rsp]
            "sub rsp, 16",
            "mov dword ptr [rsp], eax",
            "mov word ptr [rsp + 4], cx",
            ".byte 0xFF, 0x2C, 0x24",
            "42:",
            // far call through m16:32 at [rsp]
            "sub rsp, 16",
            "mov dword ptr [rsp], eax",
            "mov word ptr [rsp + 4], cx",
            ".byte 0xFF, 0x1C, 0x24",
            "43:",
            // iretq to CS:RIP with our own SS, RSP, RFLAGS
            "mov rdx, rsp",
            "push 0x23",
            "push rdx",
            "pushfq",
            "push rcx",
            "push rax",
            ".byte 0x48, 0xCF",
            "3:",
            "cmp rsi, 1",
            "je 31f",
            "cmp rsi, 2",
            "je 32f",
            "syscall",
            "ud2",
            "31:",
            ".byte 0x0F, 0x34", // sysenter
            "ud2",
            "32:",
            "int 0x80",
            "ud2",
        )
    })
}

core::arch::global_asm!(
    r#"
    .pushsection .text.security_int_table, "ax"
    .balign 16
    .global security_int_table
security_int_table:
    .set n, 0
    .rept 256
    .balign 8
    .byte 0xCD, n
    ud2
    .set n, n + 1
    .endr
    .popsection
    "#
);

unsafe extern "C" {
    static security_int_table: u8;
}

/// `int N` (two-byte form CD N), followed by `ud2`.
fn int_n(n: u64) -> (u64, u64, u64) {
    ARG0.store(&raw const security_int_table as u64 + 8 * n, SeqCst);
    observe(|| attack!("jmp qword ptr [rip + {a0}]"))
}

// ---------------------------------------------------------------------------------------
// The attacker (unprivileged space).

/// Results of the attacker, read by the root after its report.
struct Results {
    /// Far transfers whose outcome was not one user-mode exception of an expected vector.
    far_bad: AtomicU64,
    far_first_bad: AtomicU64,
    /// Far return to 0x1B then syscall: (count, vector).
    retf_1b: AtomicU64,
    sysenter_vec: AtomicU64,
    int_bad: AtomicU64,
    int_first_bad: AtomicU64,
    icebp_db: AtomicU64,
    exregs_flags: AtomicU64,
    exregs_flags_before: AtomicU64,
    exregs_bad_ip: [AtomicU64; 2],
    exregs_bad_sp: AtomicU64,
    reply_bad_ip: AtomicU64,
    reply_flags: AtomicU64,
    reply_flags_before: AtomicU64,
    dfacnt_flags: AtomicU64,
    dfacnt_ud: AtomicU64,
    tf_db: AtomicU64,
    tf_clock: AtomicU64,
    startup: [AtomicU64; 3],
    io: [AtomicU64; 2],
}

static R: Results = Results {
    far_bad: AtomicU64::new(u64::MAX),
    far_first_bad: AtomicU64::new(0),
    retf_1b: AtomicU64::new(0),
    sysenter_vec: AtomicU64::new(0),
    int_bad: AtomicU64::new(u64::MAX),
    int_first_bad: AtomicU64::new(0),
    icebp_db: AtomicU64::new(0),
    exregs_flags: AtomicU64::new(0),
    exregs_flags_before: AtomicU64::new(0),
    exregs_bad_ip: [AtomicU64::new(0), AtomicU64::new(0)],
    exregs_bad_sp: AtomicU64::new(0),
    reply_bad_ip: AtomicU64::new(0),
    reply_flags: AtomicU64::new(0),
    reply_flags_before: AtomicU64::new(0),
    dfacnt_flags: AtomicU64::new(0),
    dfacnt_ud: AtomicU64::new(0),
    tf_db: AtomicU64::new(0),
    tf_clock: AtomicU64::new(0),
    startup: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
    io: [AtomicU64::new(0), AtomicU64::new(0)],
};

fn pack(count: u64, vec: u64) -> u64 {
    (count << 32) | (vec & 0xFFFF_FFFF)
}

/// ExchangeRegisters on ourselves: control `ctl`, SP `sp` (0: our own), IP `ip` (0: the
/// instruction after the call), FLAGS `flags`. Returns our RFLAGS as found at that IP
/// (OUT0); a fault resumes at label 2 through the handler.
fn exregs_self(ctl: u64, sp: u64, ip: u64, flags: u64) {
    ARG0.store(utcb::my_global_id().raw(), SeqCst);
    ARG1.store(sp, SeqCst);
    ARG2.store(ip, SeqCst);
    OUT1.store(flags, SeqCst);
    TARGET.store(syscall::link_address(link::EXCHANGE_REGISTERS), SeqCst);
    OUT0.store(ctl, SeqCst);
    attack!(
        "mov rsi, qword ptr [rip + {o0}]",
        "mov rax, qword ptr [rip + {a0}]",
        "mov rdx, qword ptr [rip + {a1}]",
        "test rdx, rdx",
        "jnz 21f",
        "mov rdx, rsp",
        "21:",
        "mov r8, qword ptr [rip + {a2}]",
        "test r8, r8",
        "jnz 22f",
        "lea r8, [rip + 3f]",
        "22:",
        "mov r9, qword ptr [rip + {o1}]",
        "xor r10d, r10d",
        "xor edi, edi",
        "call qword ptr [rip + {target}]",
        "3:",
        "pushfq",
        "pop rax",
        "mov qword ptr [rip + {o0}], rax",
        // A pushfq with a non-canonical RSP faults here and resumes at 2.
        "push rax",
        "pop rax",
    );
}

extern "C" fn attacker() -> ! {
    utcb::set_exception_handler(ThreadId::from_raw(HANDLER.load(SeqCst)));

    // 1. Far return to the old 32-bit user code segment, then `syscall` (compat mode, CSTAR).
    let (n, v, _) = far_transfer(0x1B, 0, 0);
    R.retf_1b.store(pack(n, v), SeqCst);

    // 2. Every selector, every far transfer, every landing.
    let mut bad = 0;
    for (i, &sel) in SELECTORS.iter().enumerate() {
        for kind in 0..4 {
            for landing in 0..3 {
                let (n, v, _) = far_transfer(sel, kind, landing);
                // Vector 14 (with error U/S = 0): QEMU reads the far-return/`iretq` stack
                // with a supervisor access, which SMAP (-cpu max) refuses; still a fault in
                // user mode, which is the point.
                let expected = if sel == 0x2B {
                    // Landed in 64-bit mode: `syscall` outside the stub page is ignored (then
                    // ud2), `sysenter` is #UD or #GP, `int 0x80` #GP.
                    match landing {
                        0 => v == 6,
                        1 => v == 6 || v == 13,
                        _ => v == 13,
                    }
                } else {
                    v == 13 || v == 11
                };
                let ok = n == 1 && (v == 14 || expected);
                if !ok {
                    if bad == 0 {
                        R.far_first_bad.store(
                            ((i as u64) << 48) | (kind << 40) | (landing << 32) | v,
                            SeqCst,
                        );
                    }
                    bad += 1;
                }
            }
        }
    }
    R.far_bad.store(bad, SeqCst);

    // 3. sysenter in 64-bit mode.
    let (n, v, _) = observe(|| attack!(".byte 0x0F, 0x34", "ud2"));
    R.sysenter_vec.store(pack(n, v), SeqCst);

    // 4. int N for every N; int1 (icebp).
    let mut bad = 0;
    for n in 0..256u64 {
        let (c, v, _) = int_n(n);
        let want = if n == 3 { 3 } else { 13 };
        if c != 1 || v != want {
            if bad == 0 {
                R.int_first_bad
                    .store((n << 32) | (pack(c, v) & 0xFFFF_FFFF), SeqCst);
            }
            bad += 1;
        }
    }
    R.int_bad.store(bad, SeqCst);
    // icebp: #DB on hardware; QEMU raises it like `int 1` (#GP). One exception either way.
    let db0 = DB_COUNT.load(SeqCst);
    let (n, _, _) = observe(|| attack!(".byte 0xF1", "nop"));
    R.icebp_db.store(DB_COUNT.load(SeqCst) - db0 + n, SeqCst);

    // 5. ExchangeRegisters on ourselves: all-ones flags; non-canonical IP; non-canonical SP.
    let mut before: u64;
    // SAFETY: reads our RFLAGS.
    unsafe { core::arch::asm!("pushfq", "pop {}", out(reg) before) };
    R.exregs_flags_before.store(before, SeqCst);
    exregs_self((1 << 3) | (1 << 4) | (1 << 5), 0, 0, u64::MAX);
    R.exregs_flags.store(OUT0.load(SeqCst), SeqCst);
    for (k, ip) in [BAD_IP, BAD_IP2].into_iter().enumerate() {
        let (n, v, at) = observe(|| exregs_self((1 << 3) | (1 << 4), 0, ip, 0));
        R.exregs_bad_ip[k].store(pack(n, v) ^ if at == ip { 0 } else { 1 << 63 }, SeqCst);
    }
    let (n, v, _) = observe(|| exregs_self((1 << 3) | (1 << 4), BAD_IP, 0, 0));
    R.exregs_bad_sp.store(pack(n, v), SeqCst);

    // 6. Exception replies: a non-canonical IP, then all-ones RFLAGS.
    REPLY_MODE.store(1, SeqCst);
    let (n, v, at) = observe(|| attack!("ud2"));
    R.reply_bad_ip
        .store(pack(n, v) ^ if at == BAD_IP { 0 } else { 1 << 63 }, SeqCst);
    REPLY_MODE.store(2, SeqCst);
    // SAFETY: reads our RFLAGS.
    unsafe { core::arch::asm!("pushfq", "pop {}", out(reg) before) };
    R.reply_flags_before.store(before, SeqCst);
    attack!(
        "ud2",
        "2:",
        "pushfq",
        "pop rax",
        "mov qword ptr [rip + {o0}], rax"
    );
    // (label 2 inside the body is the resume point: the later "2:" is never reached first)
    R.reply_flags.store(OUT0.load(SeqCst), SeqCst);

    // 7. DF, AC, NT set across system calls (until the clock moved by 3 ms: timer
    //    interrupts hit in between) and an exception.
    TARGET.store(syscall::link_address(link::SYSTEM_CLOCK), SeqCst);
    let n0 = EXC_COUNT.load(SeqCst);
    attack!(
        "lea rax, [rip + 4f]",
        "mov qword ptr [rip + {resume_ip}], rax",
        "pushfq",
        "or qword ptr [rsp], 0x44400",
        "popfq",
        "call qword ptr [rip + {target}]",
        "add rax, 3000",
        "mov qword ptr [rip + {a0}], rax",
        "5:",
        "call qword ptr [rip + {target}]",
        "cmp rax, qword ptr [rip + {a0}]",
        "jb 5b",
        "ud2",
        "4:",
        "pushfq",
        "pop rax",
        "mov qword ptr [rip + {o0}], rax",
        "pushfq",
        "and qword ptr [rsp], ~0x44400",
        "popfq",
    );
    R.dfacnt_flags.store(OUT0.load(SeqCst), SeqCst);
    R.dfacnt_ud.store(EXC_COUNT.load(SeqCst) - n0, SeqCst);

    // 8. TF set, then a system call (single-stepping into `syscall`).
    let db0 = DB_COUNT.load(SeqCst);
    attack!(
        "pushfq",
        "or qword ptr [rsp], 0x100",
        "popfq",
        "nop",
        "call qword ptr [rip + {target}]",
        "mov qword ptr [rip + {o0}], rax",
        "pushfq",
        "and qword ptr [rsp], ~0x100",
        "popfq",
        "nop",
    );
    R.tf_clock.store(OUT0.load(SeqCst), SeqCst);
    R.tf_db.store(DB_COUNT.load(SeqCst) - db0, SeqCst);

    // 9. Start-up message with a non-canonical IP to our second thread (we are its pager).
    let second = ThreadId::from_raw(SECOND.load(SeqCst));
    utcb::set_mrs(1, &[BAD_IP, ATTACKER_SP.load(SeqCst) - 0x2000]);
    utcb::set_mr(0, MsgTag::new(0, 2, 0).raw());
    let sent = !syscall::ipc(
        second,
        ThreadId::NIL,
        Timeouts::new(Time::period_micros(1_000_000), Time::NEVER),
    )
    .tag
    .error();
    R.startup[0].store(sent as u64, SeqCst);
    // The second thread has no exception handler: the #GP halts it. Wait until it is.
    let halted = util::wait_until(|| util::query(second).1.control & 1 != 0);
    let (_, q) = util::query(second);
    R.startup[1].store(halted as u64, SeqCst);
    R.startup[2].store(q.ip, SeqCst);

    // 10. I/O privilege: `cli` and `popf` of IOPL 3. (Port access itself is the IO-fpage
    //     design's: #GP without IO-fpages, an IO page fault with them.)
    let (n, v, _) = observe(|| attack!("cli", "sti"));
    R.io[0].store(pack(n, v), SeqCst);
    attack!(
        "pushfq",
        "or qword ptr [rsp], 0x3000",
        "popfq",
        "pushfq",
        "pop rax",
        "mov qword ptr [rip + {o0}], rax",
    );
    R.io[1].store(OUT0.load(SeqCst), SeqCst);

    util::report(&[1]);
    util::park()
}

// ---------------------------------------------------------------------------------------
// KDB (class 3).

static KDB_RESULTS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
static READER_STARTED: AtomicU64 = AtomicU64::new(0);

/// ReadChar_Blocked, raw (all of RAX).
fn read_blocked_raw() -> u64 {
    let c: u64;
    // SAFETY: spec 8 ReadChar_Blocked: RAX out, everything else preserved.
    unsafe { core::arch::asm!("int3", "cmp al, 0xd", out("rax") c, options(nomem, nostack)) }
    c
}

/// ReadChar (non-blocking), raw.
fn read_raw() -> u64 {
    let c: u64;
    // SAFETY: spec 8 ReadChar: RAX out, everything else preserved.
    unsafe { core::arch::asm!("int3", "cmp al, 8", out("rax") c, options(nomem, nostack)) }
    c
}

/// The unprivileged KDB child: asks to end the system, reads the console (blocking and not).
extern "C" fn kdb_child() -> ! {
    kdb::enter("exit-success");
    KDB_RESULTS[0].store(1, SeqCst);
    KDB_RESULTS[1].store(read_blocked_raw(), SeqCst);
    KDB_RESULTS[2].store(read_raw(), SeqCst);
    util::report(&[1]);
    util::park()
}

/// A privileged thread blocked in ReadChar_Blocked (no input comes).
extern "C" fn reader() -> ! {
    READER_STARTED.store(1, SeqCst);
    loop {
        let c = read_blocked_raw();
        READER_STARTED.store(2 + c, SeqCst);
    }
}

// ---------------------------------------------------------------------------------------
// The checks (root).

fn spawn_attacker(a: ThreadId, second: ThreadId, sp: u64) -> Result<(), (u64, u64)> {
    SECOND.store(second.raw(), SeqCst);
    ATTACKER_SP.store(sp, SeqCst);
    util::new_space(a)?;
    let (r, e) = util::activate_in(a, a, 0);
    if r != 1 {
        return Err((3, e));
    }
    // The second thread: same space, the attacker as its pager; waits for its start-up.
    let (r, e) = util::tc(second, a, root(), a, util::NEW_UTCB_AREA + 0x400);
    if r != 1 {
        return Err((5, e));
    }
    match util::pager_start(a, util::entry(attacker), sp) {
        Ok(0) => Ok(()),
        Ok(e) | Err(e) => Err((4, e)),
    }
}

/// The attacker in an unprivileged space tries every way into the kernel; its exception
/// handler (a thread of the root's space) records what arrives.
fn attacks(s: &mut Cx) {
    if !util::ensure_pager() {
        s.check("security.pager_thread_up", false, format_args!(""));
        return;
    }
    let h = s.thread();
    HANDLER.store(h.raw(), SeqCst);
    let (hloc, hsp, asp) = (s.slot(), s.stack(), s.stack());
    if !start_local(h, hloc, hsp, Some(200), handler) {
        s.check(
            "security.handler_thread_up",
            false,
            format_args!("error {}", utcb::error_code()),
        );
        return;
    }
    let (a, second) = (s.thread(), s.thread());
    let st = spawn_attacker(a, second, asp);
    let rep = util::receive_report(a, 60_000);
    s.check(
        "security.attacker_survived_all_attacks",
        st.is_ok() && rep.is_ok(),
        format_args!(
            "start {st:?} report {rep:x?} (pager bad faults {} last {:#x})",
            util::PAGER_BAD_FAULTS.load(SeqCst),
            util::PAGER_BAD_ADDR.load(SeqCst)
        ),
    );
    let rv = R.retf_1b.load(SeqCst);
    s.check(
        "security.far_return_to_0x1b_then_syscall_is_gp",
        rv == pack(1, 13) || rv == pack(1, 14),
        format_args!("{rv:#x} (count << 32 | vector)"),
    );
    s.check(
        "security.far_transfers_to_every_selector_fault_in_user_mode",
        R.far_bad.load(SeqCst) == 0,
        format_args!(
            "{} bad, first (sel idx, kind, landing, vector) {:#x}",
            R.far_bad.load(SeqCst),
            R.far_first_bad.load(SeqCst)
        ),
    );
    let sv = R.sysenter_vec.load(SeqCst);
    s.check(
        "security.sysenter_64bit_is_exception",
        sv == pack(1, 6) || sv == pack(1, 13),
        format_args!("{sv:#x}"),
    );
    s.check(
        "security.int_n_every_vector_is_exception_ipc",
        R.int_bad.load(SeqCst) == 0,
        format_args!(
            "{} bad, first (n, count, vector) {:#x}",
            R.int_bad.load(SeqCst),
            R.int_first_bad.load(SeqCst)
        ),
    );
    s.check_eq(
        "security.icebp_is_one_exception",
        R.icebp_db.load(SeqCst),
        1,
    );
    let (b, f) = (
        R.exregs_flags_before.load(SeqCst),
        R.exregs_flags.load(SeqCst),
    );
    s.check(
        "security.exregs_hostile_flags_only_arithmetic_taken",
        (b ^ f) & !USER_FLAGS == 0 && f & USER_FLAGS == USER_FLAGS,
        format_args!("before {b:#x} after {f:#x}"),
    );
    s.check_eq(
        "security.exregs_noncanonical_ip_is_gp",
        [
            R.exregs_bad_ip[0].load(SeqCst),
            R.exregs_bad_ip[1].load(SeqCst),
        ],
        [pack(1, 13), pack(1, 13)],
    );
    let sp = R.exregs_bad_sp.load(SeqCst);
    s.check(
        "security.exregs_noncanonical_sp_faults_in_user_mode",
        sp == pack(1, 12) || sp == pack(1, 13) || sp == pack(1, 14),
        format_args!("{sp:#x}"),
    );
    s.check_eq(
        "security.exception_reply_noncanonical_ip_is_gp",
        R.reply_bad_ip.load(SeqCst),
        pack(2, 13),
    );
    let (b, f) = (
        R.reply_flags_before.load(SeqCst),
        R.reply_flags.load(SeqCst),
    );
    s.check(
        "security.exception_reply_hostile_flags_only_arithmetic_taken",
        (b ^ f) & !USER_FLAGS == 0 && f & USER_FLAGS == USER_FLAGS,
        format_args!("before {b:#x} after {f:#x}"),
    );
    let f = R.dfacnt_flags.load(SeqCst);
    s.check(
        "security.user_df_ac_nt_survive_syscalls_interrupts_exception",
        f & (DF | AC | NT) == DF | AC | NT && R.dfacnt_ud.load(SeqCst) == 1,
        format_args!("flags {f:#x} exceptions {}", R.dfacnt_ud.load(SeqCst)),
    );
    s.check(
        "security.tf_single_step_into_syscall",
        R.tf_db.load(SeqCst) >= 3 && R.tf_clock.load(SeqCst) != 0,
        format_args!(
            "#DB {} clock {}",
            R.tf_db.load(SeqCst),
            R.tf_clock.load(SeqCst)
        ),
    );
    s.check_eq(
        "security.startup_message_noncanonical_ip_halts_thread",
        [
            R.startup[0].load(SeqCst),
            R.startup[1].load(SeqCst),
            R.startup[2].load(SeqCst),
        ],
        [1, 1, BAD_IP],
    );
    let iopl = (R.io[1].load(SeqCst) >> 12) & 3;
    s.check_eq(
        "security.unprivileged_space_has_no_io_privilege",
        [R.io[0].load(SeqCst), iopl],
        [pack(1, 13), 0],
    );
    kill_r(second);
    kill_r(a);
    kill_r(h);
}

/// KDB from an unprivileged space: no exit, no console reads.
fn kdb_unprivileged(s: &mut Cx) {
    for r in KDB_RESULTS.iter() {
        r.store(0, SeqCst);
    }
    let k = s.thread();
    let sp = s.stack();
    let st = util::spawn_in_new_space_at(k, kdb_child, sp);
    let rep = util::receive_report(k, 10_000);
    s.check(
        "security.kdb_unprivileged_exit_request_ignored",
        st.is_ok() && rep.is_ok() && KDB_RESULTS[0].load(SeqCst) == 1,
        format_args!("start {st:?} report {rep:x?}"),
    );
    s.check_eq(
        "security.kdb_unprivileged_console_read_denied",
        [KDB_RESULTS[1].load(SeqCst), KDB_RESULTS[2].load(SeqCst)],
        [u64::MAX, u64::MAX],
    );
    kill_r(k);
}

/// A privileged thread blocked in ReadChar_Blocked does not stop the kernel.
fn kdb_blocked_read(s: &mut Cx) {
    READER_STARTED.store(0, SeqCst);
    let rd = s.thread();
    let (loc, sp) = (s.slot(), s.stack());
    let up = start_local(rd, loc, sp, Some(20), reader);
    let started = up && util::wait_until(|| READER_STARTED.load(SeqCst) != 0);
    let t0 = syscall::system_clock();
    util::sleep_us(20_000);
    let t1 = syscall::system_clock();
    s.check(
        "security.kdb_blocked_read_does_not_stop_kernel",
        started && t1 >= t0 + 20_000 && READER_STARTED.load(SeqCst) == 1,
        format_args!(
            "up {up} started {started} slept {} us, reader state {}",
            t1 - t0,
            READER_STARTED.load(SeqCst)
        ),
    );
    s.check_eq("security.kdb_blocked_reader_deletable", kill_r(rd), 1);
}
