//! Our KIP compared field by field with the live KIP of the reference kernel
//! (`shared/spec/kip-reference.md`: L4Ka::Pistachio amd64 after kickstart, QEMU `-cpu qemu64
//! -m 256`). The root server's `kipdump` mode prints the raw words; [`compare`] judges each
//! field by its rule:
//!
//! * **same**: must equal the reference value;
//! * **layout**: depends on where images are loaded or on the machine; checked for
//!   plausibility only (the note says what it is);
//! * **differs**: a deliberate difference, justified in `docs/decisions/010-kip-reference.md`
//!   (the note names the item); equal values are fine too.
//!
//! Every difference from the reference is therefore either absent or listed with its reason.

/// The reference KIP header: (offset, name, value). Words not listed are zero.
const REFERENCE: &[(u64, &str, u64)] = &[
    (0x000, "magic", 0x4be6344c),
    (0x008, "ApiVersion", 0x84050000),
    (0x010, "ApiFlags", 0x4),
    (0x018, "KernelVerPtr", 0x260),
    (0x048, "sigma0.ip", 0xf00000),
    (0x050, "sigma0.low", 0xf00000),
    (0x058, "sigma0.high", 0xf062e0),
    (0x088, "RootServer.ip", 0x1000810),
    (0x090, "RootServer.low", 0x1000000),
    (0x098, "RootServer.high", 0x1010758),
    (0x0a8, "MemoryInfo", 0x000002e000000011),
    (0x0d0, "ReservedMem0.low", 0x600000),
    (0x0d8, "ReservedMem0.high", 0xd06000),
    (0x150, "UtcbAreaInfo", 0xc2801),
    (0x158, "KipAreaInfo", 0xc),
    (0x170, "BootInfo", 0),
    (0x178, "ProcDescPtr", 0x240),
    (0x180, "ClockInfo", 0),
    (0x188, "ThreadInfo", 0x3001012),
    (0x190, "PageInfo", 0x201007),
    (0x198, "ProcessorInfo", 0x5000000000000000),
    (0x1a0, "SpaceControl", 0xffffffffc0800700),
    (0x1a8, "ThreadControl", 0xffffffffc0800200),
    (0x1b0, "ProcessorControl", 0xffffffffc0800800),
    (0x1b8, "MemoryControl", 0xffffffffc0800900),
    (0x1c0, "Ipc", 0xffffffffc0800000),
    (0x1c8, "Lipc", 0xffffffffc0800000),
    (0x1d0, "Unmap", 0xffffffffc0800600),
    (0x1d8, "ExchangeRegisters", 0xffffffffc0800100),
    (0x1e0, "SystemClock", 0xffffffffc0800300),
    (0x1e8, "ThreadSwitch", 0xffffffffc0800400),
    (0x1f0, "Schedule", 0xffffffffc0800500),
];

/// The reference memory descriptors: (type, subtype, virtual, low, high inclusive).
const REFERENCE_MEM: &[(u64, u64, bool, u64, u64)] = &[
    (0x4, 0, false, 0x0, 0xffffffffffffffff),
    (0x1, 1, false, 0x0, 0x9fbff),
    (0xf, 2, false, 0x9fc00, 0x9ffff),
    (0xf, 2, false, 0xf0000, 0xfffff),
    (0x1, 1, false, 0x100000, 0xffdffff),
    (0xf, 2, false, 0xffe0000, 0xfffffff),
    (0xf, 2, false, 0xfffc0000, 0xffffffff),
    (0xf, 2, false, 0xfd00000000, 0xffffffffff),
    (0x4, 0, false, 0xa0000, 0xbffff),
    (0x4, 0, false, 0xc0000, 0xeffff),
    (0x2, 0, false, 0xe200000, 0xf1fffff),
    (0xe, 2, false, 0xf00000, 0xf063ff),
    (0xe, 2, false, 0x1000000, 0x10107ff),
    (0x2, 0, false, 0x600000, 0xc05fff),
    (0x2, 0, false, 0xc06000, 0xd05fff),
    (0x2, 0, false, 0x800000, 0x9fffff),
    (0x1, 0, true, 0x0, 0xfffffeffffffffff),
];

/// How a field may relate to the reference.
#[derive(Clone, Copy)]
enum Rule {
    Same,
    Layout(&'static str),
    Differs(&'static str),
}

fn rule(off: u64) -> Rule {
    match off {
        0x048 | 0x050 | 0x058 | 0x088 | 0x090 | 0x098 => {
            Rule::Layout("where the boot loader put our sigma0 / root server")
        }
        0x0d8 | 0x0d0 => Rule::Layout("our kernel image's physical range (legacy field)"),
        0x170 => Rule::Differs("D3 BootInfo: a generic bootinfo is written"),
        0x180 => Rule::Differs("D4 ClockInfo: real read/schedule precision"),
        0x1c8 => Rule::Differs("D6 system-call links: Lipc has its own stub"),
        0x1a0..=0x1f0 => Rule::Layout("D6 absolute stub address in the kernel half"),
        _ => Rule::Same,
    }
}

/// A parsed `kipdump` run.
#[derive(Default)]
pub struct Dump {
    words: Vec<(u64, u64)>,
    proc: Vec<(u64, u64)>,
    kdesc: Vec<(u64, u64)>,
    version: String,
    features: Vec<String>,
    mem: Vec<(u64, u64)>,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// Parses the `kip...` lines of the serial output.
pub fn parse(output: &str) -> Dump {
    let mut d = Dump::default();
    for line in output.lines() {
        let mut w = line.trim().splitn(3, ' ');
        let (Some(tag), Some(a)) = (w.next(), w.next()) else {
            continue;
        };
        let b = w.next().unwrap_or("");
        match tag {
            "kipword" | "kipproc" | "kipkdesc" => {
                if let (Some(o), Some(v)) = (hex(a), hex(b)) {
                    match tag {
                        "kipword" => d.words.push((o, v)),
                        "kipproc" => d.proc.push((o, v)),
                        _ => d.kdesc.push((o, v)),
                    }
                }
            }
            "kipversion" => d.version = format!("{a} {b}").trim().to_string(),
            "kipfeature" => d.features.push(a.to_string()),
            "kipmem" => {
                if let (Some(w0), Some(w1)) = (
                    b.split(' ').next().and_then(hex),
                    b.split(' ').nth(1).and_then(hex),
                ) {
                    d.mem.push((w0, w1));
                }
            }
            _ => {}
        }
    }
    d
}

/// One comparison result: field name, and `Ok(note)` or `Err(why)`.
pub type Verdict = (String, Result<String, String>);

fn mem_kind(w0: u64) -> (u64, u64, bool) {
    (w0 & 0xF, (w0 >> 4) & 0xF, w0 & (1 << 9) != 0)
}

/// Compares a dump with the reference, field by field.
pub fn compare(d: &Dump) -> Vec<Verdict> {
    let mut v: Vec<Verdict> = Vec::new();
    if d.words.len() != 0x240 / 8 {
        v.push((
            "kip.dump".into(),
            Err(format!("{} header words printed, want 72", d.words.len())),
        ));
        return v;
    }
    let ours = |off: u64| d.words.iter().find(|w| w.0 == off).map_or(0, |w| w.1);
    for off in (0..0x240u64).step_by(8) {
        let (name, reference) = REFERENCE
            .iter()
            .find(|r| r.0 == off)
            .map_or((format!("word_{off:03x}"), 0), |r| (r.1.to_string(), r.2));
        let got = ours(off);
        let res = if off == 0x0a8 {
            // MemoryInfo: the array offset must match; the count depends on the machine.
            if got >> 32 == reference >> 32 && got & 0xFFFF_FFFF != 0 {
                Ok(format!(
                    "offset {:#x} same, {} descriptors (layout)",
                    got >> 32,
                    got & 0xFFFF_FFFF
                ))
            } else {
                Err(format!("{got:#x}, reference {reference:#x}"))
            }
        } else {
            match rule(off) {
                Rule::Same if got == reference => Ok("same".into()),
                Rule::Same => Err(format!("{got:#x}, reference {reference:#x}")),
                Rule::Layout(_) if got == reference => Ok("same".into()),
                Rule::Layout(why) if got != 0 => {
                    Ok(format!("{got:#x}, reference {reference:#x}: {why}"))
                }
                Rule::Layout(why) => Err(format!("zero ({why})")),
                Rule::Differs(_) if got == reference => Ok("same".into()),
                Rule::Differs(why) => Ok(format!("{got:#x}, reference {reference:#x}: {why}")),
            }
        };
        v.push((format!("kip.{name}"), res));
    }
    // The stubs: all in one page of the kernel half.
    let stubs: Vec<u64> = (0x1a0..=0x1f0).step_by(8).map(ours).collect();
    let page = stubs[0] & !0xFFF;
    v.push((
        "kip.syscall_links_one_kernel_page".into(),
        if stubs.iter().all(|&a| a & !0xFFF == page) && page >= 0xFFFF_8000_0000_0000 {
            Ok(format!("page {page:#x}"))
        } else {
            Err(format!("{stubs:x?}"))
        },
    ));

    // Processor descriptor 0.
    let p = |o: u64| d.proc.iter().find(|w| w.0 == o).map_or(0, |w| w.1);
    v.push((
        "kip.proc0.ExternalFreq".into(),
        Ok(format!(
            "{} kHz, reference 0: D4 the timer's input clock (PIT)",
            p(0)
        )),
    ));
    v.push((
        "kip.proc0.InternalFreq".into(),
        if p(8) != 0 {
            Ok(format!("{} kHz (layout: this machine's TSC)", p(8)))
        } else {
            Err("zero: SystemClock of libl4 programs divides by it".into())
        },
    ));
    v.push((
        "kip.proc0.reserved".into(),
        if p(0x10) == 0 && p(0x18) == 0 {
            Ok("same".into())
        } else {
            Err(format!("{:#x} {:#x}", p(0x10), p(0x18)))
        },
    ));

    // Kernel descriptor.
    let k = |o: u64| d.kdesc.iter().find(|w| w.0 == o).map_or(0, |w| w.1);
    v.push((
        "kip.kdesc.KernelId".into(),
        if k(0) >> 24 == 4 {
            Ok(format!(
                "{:#x}, reference 0x4020000: D1 id 4 (L4Ka family), own subid",
                k(0)
            ))
        } else {
            Err(format!("{:#x}", k(0)))
        },
    ));
    v.push((
        "kip.kdesc.KernelGenDate".into(),
        Ok(format!("{:#x} (layout: build date)", k(8))),
    ));
    v.push((
        "kip.kdesc.KernelVer".into(),
        Ok(format!(
            "{:#x}, reference 0x40000: D1 our own version",
            k(0x10)
        )),
    ));
    v.push((
        "kip.kdesc.Supplier".into(),
        Ok(format!("{:#x}, reference \"UKa \": D1", k(0x18))),
    ));
    v.push((
        "kip.kdesc.version_string".into(),
        if d.version.is_empty() {
            Err("empty".into())
        } else {
            Ok(format!("\"{}\": D1", d.version))
        },
    ));
    v.push((
        "kip.features".into(),
        if d.features.is_empty() {
            Ok("none, reference advertises pagerexregs: D2 (libl4 L4_HasFeature bug)".into())
        } else {
            Err(format!(
                "{:?}: any feature string trips L4_HasFeature",
                d.features
            ))
        },
    ));

    // Memory descriptors.
    compare_mem(d, &mut v);
    v
}

fn compare_mem(d: &Dump, v: &mut Vec<Verdict>) {
    // The descriptors in kickstart's part (before the kernel's own), without the boot-loader
    // init tables (bootinfo page, MBI copy: D3), must have the reference's kinds in order.
    let kinds: Vec<(u64, u64, bool)> = d.mem.iter().map(|m| mem_kind(m.0)).collect();
    let loader_part: Vec<(u64, u64, bool)> = kinds
        .iter()
        .copied()
        .take(d.mem.len().saturating_sub(2))
        .filter(|k| !(k.0 == 0xe && k.1 == 1))
        .collect();
    let reference: Vec<(u64, u64, bool)> = REFERENCE_MEM[..13]
        .iter()
        .map(|r| (r.0, r.1, r.2))
        .collect();
    v.push((
        "kip.mem.loader_order_and_types".into(),
        if loader_part == reference {
            Ok("same 13 kinds in the same order".into())
        } else {
            Err(format!("{loader_part:x?}, reference {reference:x?}"))
        },
    ));
    // The machine's part (shared all, e820, VGA, ROM: 0..=9) must be identical.
    let exact = d.mem.iter().zip(REFERENCE_MEM).take(10).all(|(m, r)| {
        mem_kind(m.0) == (r.0, r.1, r.2) && m.0 & !0x3FF == r.3 && m.1 | 0x3FF == r.4
    });
    v.push((
        "kip.mem.machine_ranges".into(),
        if exact && d.mem.len() >= 10 {
            Ok("descriptors 0-9 identical".into())
        } else {
            Err("descriptors 0-9 differ from the reference machine's".into())
        },
    ));
    let init_tables = kinds.iter().filter(|k| k.0 == 0xe && k.1 == 1).count();
    v.push((
        "kip.mem.init_tables".into(),
        Ok(format!(
            "{init_tables} boot-loader init-table descriptor(s), reference 0: D3 bootinfo / MBI copy"
        )),
    ));
    // The kernel's own: reserved descriptors of its image, then the virtual user area.
    let n = d.mem.len();
    let user = d.mem.last().copied().unwrap_or((0, 0));
    v.push((
        "kip.mem.user_area".into(),
        if n >= 2 && mem_kind(user.0) == (1, 0, true) && user.0 & !0x3FF == 0 {
            Ok(format!(
                "0..{:#x}, reference 0..0xfffffeffffffffff: D5 the lower canonical half less a guard page",
                user.1 | 0x3FF
            ))
        } else {
            Err(format!("last descriptor {:#x} {:#x}", user.0, user.1))
        },
    ));
    let kernel_reserved = n >= 2 && mem_kind(d.mem[n - 2].0) == (2, 0, false);
    v.push((
        "kip.mem.kernel_reserved".into(),
        if kernel_reserved {
            Ok("kernel image reserved (one descriptor; reference three: D5 layout)".into())
        } else {
            Err("no reserved descriptor for the kernel image before the user area".into())
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference itself passes the comparison (except what only our dump carries).
    #[test]
    fn reference_words_compare_as_same() {
        let mut out = String::new();
        for off in (0..0x240u64).step_by(8) {
            let v = REFERENCE.iter().find(|r| r.0 == off).map_or(0, |r| r.2);
            out.push_str(&format!("kipword {off:#05x} {v:#018x}\n"));
        }
        let d = parse(&out);
        let res = compare(&d);
        // The 72 header words (the descriptors are not part of this dump).
        let header = |n: &str| {
            let f = n.trim_start_matches("kip.");
            f.starts_with("word_") || REFERENCE.iter().any(|r| r.1 == f)
        };
        let mut checked = 0;
        for (name, r) in res.iter().filter(|r| header(&r.0)) {
            assert!(r.is_ok(), "{name}: {r:?}");
            checked += 1;
        }
        assert_eq!(checked, 72);
    }

    #[test]
    fn a_changed_field_fails() {
        let mut out = String::new();
        for off in (0..0x240u64).step_by(8) {
            let v = REFERENCE.iter().find(|r| r.0 == off).map_or(0, |r| r.2);
            let v = if off == 0x190 { 0x1007 } else { v };
            out.push_str(&format!("kipword {off:#05x} {v:#018x}\n"));
        }
        let res = compare(&parse(&out));
        let page_info = res.iter().find(|r| r.0 == "kip.PageInfo").unwrap();
        assert!(page_info.1.is_err());
    }

    #[test]
    fn reference_memory_kinds_match_themselves() {
        let mut out = String::new();
        for (i, r) in REFERENCE_MEM.iter().enumerate() {
            let w0 = (r.3 & !0x3FF) | ((r.2 as u64) << 9) | (r.1 << 4) | r.0;
            out.push_str(&format!("kipmem {i} {w0:#018x} {:#018x}\n", r.4 & !0x3FF));
        }
        let d = parse(&out);
        let mut v = Vec::new();
        compare_mem(&d, &mut v);
        let order = v
            .iter()
            .find(|r| r.0 == "kip.mem.loader_order_and_types")
            .unwrap();
        assert!(
            order.1.is_err(),
            "the reference has 3 kernel descriptors, not 1"
        );
        let machine = v.iter().find(|r| r.0 == "kip.mem.machine_ranges").unwrap();
        assert!(machine.1.is_ok(), "{machine:?}");
    }
}
