//! KernelInterface (spec 4.1, 5.1): `lock; nop` returns the KIP address, API version, API
//! flags and kernel id, and changes no other register.

use core::arch::asm;
use core::hint::black_box;
use core::sync::atomic::AtomicU64;

use l4::{kip, syscall};

use crate::conformance::{Check, Cx};

/// The check functions (nothing to allocate).
pub const CHECKS: &[Check] = &[
    Check {
        name: "kernel_interface.results",
        run: results,
    },
    Check {
        name: "kernel_interface.stable_1000",
        run: stable,
    },
    Check {
        name: "kernel_interface.preserves_registers",
        run: preserves_registers,
    },
];

/// What KernelInterface must return: KIP address, API version, API flags, kernel id.
fn want() -> [u64; 4] {
    let k = kip::kip();
    [
        kip::kip_address(),
        k.api_version,
        k.api_flags,
        kip::kernel_desc().map_or(0, |d| d.kernel_id),
    ]
}

/// Register patterns loaded before `lock; nop`, in the order of the mismatch mask bits:
/// RBX, RBP, RDI, R8, R9, R10, R11, R12, R13, R14, R15 (bit 11 = RSP).
const PATTERNS: [u64; 11] = [
    0x0B0B_0B0B_1111_0001,
    0x0B0B_0B0B_2222_0002,
    0x0D1D_0D1D_3333_0003,
    0x0808_0808_4444_0008,
    0x0909_0909_5555_0009,
    0x1010_1010_6666_0010,
    0x1111_1111_7777_0011,
    0x1212_1212_8888_0012,
    0x1313_1313_9999_0013,
    0x1414_1414_AAAA_0014,
    0x1515_1515_BBBB_0015,
];
const NAMES: [&str; 12] = [
    "rbx", "rbp", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rsp",
];

/// RSP before the instruction, for the comparison after it.
static SAVED_RSP: AtomicU64 = AtomicU64::new(0);

/// Executes `lock; nop` with every register except RAX/RCX/RDX/RSI holding a pattern;
/// returns the four results and a mask of registers that changed (bit i = NAMES[i]).
fn kernel_interface_preserving() -> ([u64; 4], u32) {
    let (rax, rcx, rdx, rsi): (u64, u64, u64, u64);
    let mask: u64;
    // SAFETY: the block saves RBX and RBP on the stack and restores them; every other
    // register it writes is declared as an output or clobber. SAVED_RSP is an AtomicU64
    // (interior mutability), written only here. `lock; nop` is the KernelInterface call.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "mov qword ptr [rip + {saved}], rsp",
            "movabs rbx, {p0}",
            "movabs rbp, {p1}",
            "movabs rdi, {p2}",
            "movabs r8,  {p3}",
            "movabs r9,  {p4}",
            "movabs r10, {p5}",
            "movabs r11, {p6}",
            "movabs r12, {p7}",
            "movabs r13, {p8}",
            "movabs r14, {p9}",
            "movabs r15, {p10}",
            ".byte 0xf0, 0x90",
            // Results out of the way: RAX/RCX/RDX/RSI to the stack (below the saved pair).
            "push rax",
            "push rcx",
            "push rdx",
            "push rsi",
            "xor eax, eax",
            "movabs rcx, {p0}",  "cmp rbx, rcx", "je 2f", "or eax, 0x001", "2:",
            "movabs rcx, {p1}",  "cmp rbp, rcx", "je 2f", "or eax, 0x002", "2:",
            "movabs rcx, {p2}",  "cmp rdi, rcx", "je 2f", "or eax, 0x004", "2:",
            "movabs rcx, {p3}",  "cmp r8,  rcx", "je 2f", "or eax, 0x008", "2:",
            "movabs rcx, {p4}",  "cmp r9,  rcx", "je 2f", "or eax, 0x010", "2:",
            "movabs rcx, {p5}",  "cmp r10, rcx", "je 2f", "or eax, 0x020", "2:",
            "movabs rcx, {p6}",  "cmp r11, rcx", "je 2f", "or eax, 0x040", "2:",
            "movabs rcx, {p7}",  "cmp r12, rcx", "je 2f", "or eax, 0x080", "2:",
            "movabs rcx, {p8}",  "cmp r13, rcx", "je 2f", "or eax, 0x100", "2:",
            "movabs rcx, {p9}",  "cmp r14, rcx", "je 2f", "or eax, 0x200", "2:",
            "movabs rcx, {p10}", "cmp r15, rcx", "je 2f", "or eax, 0x400", "2:",
            "lea rcx, [rsp + 32]",
            "cmp rcx, qword ptr [rip + {saved}]", "je 2f", "or eax, 0x800", "2:",
            "mov rdi, rax",
            "pop rsi",
            "pop rdx",
            "pop rcx",
            "pop rax",
            "pop rbp",
            "pop rbx",
            saved = sym SAVED_RSP,
            p0 = const PATTERNS[0],
            p1 = const PATTERNS[1],
            p2 = const PATTERNS[2],
            p3 = const PATTERNS[3],
            p4 = const PATTERNS[4],
            p5 = const PATTERNS[5],
            p6 = const PATTERNS[6],
            p7 = const PATTERNS[7],
            p8 = const PATTERNS[8],
            p9 = const PATTERNS[9],
            p10 = const PATTERNS[10],
            out("rax") rax,
            out("rcx") rcx,
            out("rdx") rdx,
            out("rsi") rsi,
            out("rdi") mask,
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
    ([rax, rcx, rdx, rsi], mask as u32)
}

/// Runs `kernel_interface_preserving` with about `depth` KiB of extra stack in use.
#[inline(never)]
fn at_depth(depth: u32) -> ([u64; 4], u32) {
    if depth == 0 {
        return kernel_interface_preserving();
    }
    let pad = black_box([depth as u8; 1024]);
    let r = at_depth(depth - 1);
    black_box(&pad);
    r
}

fn names(mask: u32) -> impl core::fmt::Display {
    struct Names(u32);
    impl core::fmt::Display for Names {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            for (i, n) in NAMES.iter().enumerate() {
                if self.0 & (1 << i) != 0 {
                    write!(f, "{n} ")?;
                }
            }
            Ok(())
        }
    }
    Names(mask)
}

/// The four results of one call.
fn results(s: &mut Cx) {
    let want = want();
    let first = syscall::kernel_interface();
    s.check_eq(
        "kernel_interface.results",
        [
            first.kip,
            first.api_version,
            first.api_flags,
            first.kernel_id,
        ],
        want,
    );
}

/// The same results in 1000 calls.
fn stable(s: &mut Cx) {
    let want = want();
    let mut differing = 0;
    for _ in 0..1000 {
        let r = syscall::kernel_interface();
        if [r.kip, r.api_version, r.api_flags, r.kernel_id] != want {
            differing += 1;
        }
    }
    s.check(
        "kernel_interface.stable_1000",
        differing == 0,
        format_args!("{differing} of 1000 calls differed"),
    );
}

/// No register but the four results changes, at several stack depths.
fn preserves_registers(s: &mut Cx) {
    let want = want();
    for depth in [0u32, 1, 3, 8, 17] {
        let mut changed = 0u32;
        let mut bad_results = 0;
        for _ in 0..200 {
            let (r, mask) = at_depth(depth);
            changed |= mask;
            if r != want {
                bad_results += 1;
            }
        }
        let name = match depth {
            0 => "kernel_interface.preserves_registers_depth0",
            1 => "kernel_interface.preserves_registers_depth1k",
            3 => "kernel_interface.preserves_registers_depth3k",
            8 => "kernel_interface.preserves_registers_depth8k",
            _ => "kernel_interface.preserves_registers_depth17k",
        };
        s.check(
            name,
            changed == 0 && bad_results == 0,
            format_args!("changed: {}; {bad_results} wrong results", names(changed)),
        );
    }
}
