//! Kernel command-line options (`key=value` words on the multiboot command line).
//!
//! * `kmem=<n>[K|M|G]`: size of the kernel memory pool (default 64 MiB).
//! * `selftest=pf|gp|ud|panic|smap|smep`: after boot, provoke that fault in the kernel (test
//!   builds of the harness use it to check the register dumps and that SMAP/SMEP are on).
//! * `exit=ready`: leave QEMU (success) as soon as the kernel is ready (boot-only tests).
//! * `kdb=privileged|all|strict`: who may use the kernel-debugger interface (`crate::kdb`).
//! * `iopl=none|privileged|all`: which user threads run with IOPL 3 (`arch::x86_64::trap`):
//!   none by default (IO-fpages: ports are mapped, `cli` faults); `privileged` (sigma0, the
//!   root server) and `all` are UNSAFE compatibility options for programs built for a kernel
//!   without IO-fpages.

pub fn value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_ascii_whitespace().find_map(|w| {
        let (k, v) = w.split_once('=')?;
        (k == key).then_some(v)
    })
}

pub fn size(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}
