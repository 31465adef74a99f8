//! Table-driven tests taken from the bit diagrams and examples of `shared/spec/x2-amd64.md`
//! and the live Pistachio KIP in `shared/spec/kip-reference.md`.

use abi::bootinfo::{self, BootInfo, BootInfoWriter, Record, SimpleExec};
use abi::exception;
use abi::exregs::{self, ExregsControl};
use abi::items::{self, StringItemWriter, TypedItems};
use abi::kip::*;
use abi::msgtag::{self, labels};
use abi::sigma0;
use abi::syscall_args::*;
use abi::utcb::{self, Utcb};
use abi::*;

#[test]
fn thread_ids() {
    assert!(ThreadId::NIL.is_nil() && !ThreadId::NIL.is_local() && !ThreadId::NIL.is_global());
    assert!(ThreadId::ANY.is_any() && !ThreadId::ANY.is_global() && !ThreadId::ANY.is_local());
    assert!(ThreadId::ANY_LOCAL.is_any_local() && ThreadId::ANY_LOCAL.is_local());
    let g = ThreadId::global(48, 1);
    assert!(g.is_global() && !g.is_local());
    assert_eq!(ThreadId::interrupt(5), ThreadId::global(5, 1));
    let l = ThreadId::local_from_utcb_location(0xBF00_0000);
    assert_eq!(l.raw(), 0xBF00_0200);
    assert!(l.is_local() && !l.is_global());
    assert_eq!(
        ThreadId::local_from_utcb_mr0(0xBF00_023F).raw(),
        0xBF00_0200
    );
}

#[test]
fn msgtag_fields_and_labels() {
    let t = MsgTag(0xFFFF_FFFF_FFE4_0002); // spec 6.2 read fault
    assert_eq!((t.untyped(), t.typed(), t.flags()), (2, 0, 0));
    assert_eq!(t.label(), labels::PAGE_FAULT | 4);
    assert_eq!(t.protocol(), labels::PAGE_FAULT);
    assert_eq!(exception::pagefault_tag(4), t);
    assert_eq!(exception::pagefault_access(t), Some(4));
    let table: &[(u64, u64)] = &[
        (labels::INTERRUPT, 0xFFFF_FFFF_FFF0),
        (labels::PAGE_FAULT, 0xFFFF_FFFF_FFE0),
        (labels::PREEMPTION, 0xFFFF_FFFF_FFD0),
        (labels::ARCH_EXCEPTION, 0xFFFF_FFFF_FFC0),
        (labels::EXCEPTION, 0xFFFF_FFFF_FFB0),
        (labels::SIGMA0, 0xFFFF_FFFF_FFA0),
        (labels::IO_PAGE_FAULT, 0xFFFF_FFFF_FF80),
        (labels::SIGMA0_EXT, 0xFFFF_FFFF_C170),
    ];
    for &(l, want) in table {
        assert_eq!(l, want);
    }
    let f = MsgTag::new(1, 2, 3).with_flags(0xF);
    assert!(f.propagated() && f.redirected() && f.xcpu() && f.error());
    assert_eq!(f.clear_receive_flags().flags(), msgtag::flags::PROPAGATED);
    assert_eq!(f.with_error(false).flags(), 7);
    assert_eq!(MsgTag::ERROR_ONLY.raw(), 0x8000);
    assert_eq!(MsgTag::new(0, 40, 23).words(), 63);
    assert_eq!(exception::interrupt_tag().raw(), 0xFFFF_FFFF_FFF0_0000);
    assert_eq!(exception::preemption_tag().raw(), 0xFFFF_FFFF_FFD0_0002);
    assert_eq!(exception::exception_tag().raw(), 0xFFFF_FFFF_FFB0_0013);
    assert_eq!(exception::start_tag().raw(), 2);
}

#[test]
fn fpages() {
    assert!(Fpage::NIL.is_nil() && !Fpage::NIL.contains(0));
    assert!(Fpage::COMPLETE.is_complete() && Fpage::COMPLETE.contains(u64::MAX));
    assert!(Fpage::COMPLETE.with_rights(Rights::FULL).is_complete());
    let f = Fpage::new_log2(0x4012_3000, 22);
    assert_eq!(
        (f.base(), f.size(), f.end()),
        (0x4000_0000, 0x40_0000, 0x403F_FFFF)
    );
    assert!(f.contains(0x4000_0000) && f.contains(0x403F_FFFF) && !f.contains(0x4040_0000));
    assert_eq!(Fpage::from_base_size(0x1000, 0x1001).size_log2(), 13);
    assert_eq!(Fpage::from_base_size(0x1000, 0).raw(), 0);
    // s is 6 bits: at most 2^63 bytes.
    assert_eq!(Fpage(0xFFFF_FFFF_FFFF_FFF0).size(), 1 << 63);
    assert_eq!(Fpage(0xFFFF_FFFF_FFFF_FFF0).base(), 1 << 63);
    assert_eq!(Fpage(0xFFFF_FFFF_FFFF_FFF0).end(), u64::MAX);
    assert_eq!(Fpage::from_base_size(0, u64::MAX).size_log2(), 63); // clamped
    assert_eq!(Fpage(0x10c7).rights(), Rights::FULL);
    assert_eq!(Fpage(0x10c7).with_rights(Rights::R).raw(), 0x10c4);
    assert_eq!(Rights::R | Rights::W, Rights::RW);
    assert_eq!(!Rights::W, Rights::RX);
    let io = IoFpage::new_log2(0x3F8, 3);
    assert!(IoFpage::is_io(io.raw()) && Fpage(io.raw()).is_io());
    assert_eq!((io.port(), io.size_log2(), io.ports()), (0x3F8, 3, 8));
    assert_eq!(io.raw(), (0x3F8 << 16) | (3 << 10) | 0x20);
    assert_eq!(IoFpage::from_port_count(0x60, 5).size_log2(), 3);
    assert_eq!(IoFpage::COMPLETE.ports(), 0x10000);
    // IO-fpage helpers: the word as an Fpage, port ranges, sigma0's reply item.
    assert_eq!(io.fpage(), Fpage(io.raw()));
    assert!(io.contains_port(0x3F8) && io.contains_port(0x3FF));
    assert!(!io.contains_port(0x3F7) && !io.contains_port(0x400));
    assert_eq!(IoFpage::new_log2(0x3F9, 1).port(), 0x3F8); // aligned down
    let item = abi::sigma0::io_reply_item(io);
    // SndBase keeps bits 10-63 only (spec 2.4); the kernel ignores it for IO fpages.
    assert_eq!((item.fpage, item.snd_base), (io.fpage(), 0x3F8 & !0x3FF));
    // The IO page fault label (-8<<4) | 6 (spec 6.6).
    assert_eq!(abi::msgtag::labels::IO_PAGE_FAULT | 6, 0xFFFF_FFFF_FF86);
}

#[test]
fn map_grant_items() {
    // spec 2.4 example
    let m = MapItem::new(Fpage::new_log2(0x1234_5000, 12), 0x1234_5000);
    assert_eq!(m.to_words(false), [0x1234_5008, 0x1234_50c0]);
    assert_eq!(m.to_words(true), [0x1234_5009, 0x1234_50c0]);
    let g = GrantItem::new(Fpage::new_log2(0x1234_5000, 12), 0x1234_5000);
    assert_eq!(g.to_words(false)[0], 0x1234_500a);
    assert_eq!(MapItem::from_words(m.to_words(true)), Some(m));
    assert_eq!(GrantItem::from_words(m.to_words(true)), None);
    let gw = g.to_words(true);
    let (it, n) = decode_typed(&gw).unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        it,
        TypedItem::Grant {
            item: g,
            more: true
        }
    );
    assert_eq!(decode_typed(&[0x8]), Err(ItemError::Truncated));
    assert_eq!(decode_typed(&[]), Err(ItemError::Truncated));
    assert_eq!(decode_typed(&[0xC, 0]), Err(ItemError::UnknownType(6)));
    assert_eq!(decode_typed(&[0xE, 0]), Err(ItemError::UnknownType(7)));
}

#[test]
fn string_items() {
    let h = StringHeader(0x0001_0020);
    assert!(StringHeader::is_string_item(h.0));
    assert_eq!(
        (h.length(), h.substrings(), h.compound(), h.more()),
        (64, 3, false, false)
    );
    let words = [0x8201u64, 0x1000, 0x10000, 0x5000, 0x8, 0x1000c7];
    let mut it = TypedItems::new(&words);
    match it.next().unwrap().unwrap() {
        TypedItem::String { header, substrings } => {
            assert!(header.compound() && header.more());
            assert_eq!((header.length(), substrings), (32, &[0x1000u64][..]));
        }
        other => panic!("{other:?}"),
    }
    match it.next().unwrap().unwrap() {
        TypedItem::String { header, substrings } => {
            assert!(!header.compound());
            assert_eq!((header.length(), substrings), (64, &[0x5000u64][..]));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(it.next(), Some(Ok(TypedItem::Map { .. }))));
    assert!(it.next().is_none());
    // j = 31 -> 32 addresses needed
    assert_eq!(decode_typed(&[0x1F0, 1, 2]), Err(ItemError::Truncated));
    let mut buf = [0u64; 40];
    let mut w = StringItemWriter::new(&mut buf, 8, 0).unwrap();
    for i in 1..32 {
        w.add_substring_address(i).unwrap();
    }
    assert_eq!(
        w.add_substring_address(99),
        Err(ItemError::TooManySubstrings)
    );
    assert_eq!(StringHeader(w.as_words()[0]).substrings(), 32);
    let mut small = [0u64; 3];
    let mut w = StringItemWriter::new(&mut small, 8, 0).unwrap();
    assert_eq!(w.add_substring(8, 8), Err(ItemError::BufferTooSmall));
    let mut one = [0u64; 1];
    assert!(StringItemWriter::new(&mut one, 1, 1).is_err());
    assert_eq!(StringHeader::new(5, 1).with_cache_hint(3).cache_hint(), 3);
}

#[test]
fn acceptor() {
    let a = Acceptor(0x0100_0181);
    assert!(a.strings() && !a.ctrlxfer());
    assert_eq!(a.window(), Fpage::new_log2(0x100_0000, 24));
    assert_eq!(
        Acceptor::map_grant(Fpage::COMPLETE.with_rights(Rights::FULL)).raw(),
        0x10
    );
}

#[test]
fn time_periods() {
    let table: &[(u64, u16)] = &[
        (1, 0x0001),
        (2, 0x0002),
        (1000, 0x03e8),
        (1023, 0x03ff),
        (1024, 0x0600),
        (1025, 0x0600),
        (4096, 0x0e00),
        (65535, 0x1bff),
        (1_000_000, 0x2bd0),
        (5_000_000, 0x3662),
        (123_456_789, 0x47ad),
        (4_294_967_295, 0x5bff),
        (0, 0x0000),          // libl4 quirk: TimePeriod(0) == Never
        (1023 << 31, 0x7fff), // largest period
        (1 << 41, 0x0000),    // e > 31: Never
    ];
    for &(us, raw) in table {
        assert_eq!(Time::period_micros(us).raw(), raw, "TimePeriod({us})");
    }
    assert_eq!(Time(0x2bd0).decode(), TimeSpec::Period(976 << 10));
    assert_eq!(Time::NEVER.decode(), TimeSpec::Never);
    assert_eq!(Time::ZERO.decode(), TimeSpec::Zero);
    assert_eq!(Time(0x0800).decode(), TimeSpec::Period(0));
    assert_eq!(
        Time(0xC123).decode(),
        TimeSpec::Point {
            e: 0,
            c: true,
            m: 0x123
        }
    );
    assert_eq!(Time::ZERO.decode().deadline(100), Some(100));
    assert_eq!(Time::NEVER.decode().deadline(100), None);
    assert_eq!(Time(0x03e8).decode().deadline(100), Some(1100));
    let t = Timeouts(0x03e8_2bd0);
    assert_eq!((t.send(), t.receive()), (Time(0x03e8), Time(0x2bd0)));
    let x = XferTimeouts::new(Time::ZERO, Time::NEVER);
    assert_eq!(
        (x.0, x.send(), x.receive()),
        (0x0400_0000, Time::ZERO, Time::NEVER)
    );
}

#[test]
fn time_points() {
    let now = 1_000_000u64;
    for at in [
        now,
        now + 1,
        now + 500,
        now + 100_000,
        now + 3_000_000,
        now - 7,
        now - 1000,
    ] {
        let p = Time::point_at(at, now);
        let TimeSpec::Point { e, .. } = p.decode() else {
            panic!("{at}: {p:?}")
        };
        let d = p.decode().deadline(now).unwrap();
        assert!(
            d <= at && at - d < (1 << e),
            "at {at} -> deadline {d} (e {e})"
        );
    }
    assert_eq!(Time::point_at(now + (1 << 25), now), Time::NEVER);
}

#[test]
fn errors() {
    use IpcErrorCode::*;
    use IpcPhase::*;
    let table: &[(IpcError, u64)] = &[
        (IpcError::new(Receive, Timeout), 3),
        (IpcError::new(Send, NotExist), 4),
        (IpcError::new(Receive, Canceled), 7),
        (
            IpcError::with_offset(Receive, Overflow, 252),
            (252 << 4) | (4 << 1) | 1,
        ),
        (IpcError::with_offset(Send, XferTimeoutCurrent, 8), 0x8A),
        (IpcError::new(Send, XferTimeoutPartner), 0xC),
        (IpcError::new(Receive, Aborted), 0xF),
    ];
    for &(e, raw) in table {
        assert_eq!(e.encode(), raw);
        assert_eq!(IpcError::decode(raw), Some(e));
    }
    assert_eq!(IpcError::decode(0), None);
    assert_eq!(IpcError::decode(0x11), None);
    for (raw, e) in [
        (1, SyscallError::NoPrivilege),
        (5, SyscallError::InvalidParam),
        (8, SyscallError::NoMem),
    ] {
        assert_eq!(SyscallError::from_raw(raw), Some(e));
        assert_eq!(e.raw(), raw);
    }
    assert_eq!(SyscallError::from_raw(0), None);
    assert_eq!(SyscallError::from_raw(9), None);
}

#[test]
fn exregs() {
    assert_eq!(ExregsControl::START.raw(), (3 << 3) | (1 << 8) | 6);
    assert!(ExregsControl::START.resume() && !ExregsControl::START.halt());
    assert!(ExregsControl::HALT_THREAD.halt());
    assert_eq!(ExregsControl::QUERY.raw(), 1 << 9);
    let o = ExregsControl::output(true, false, true);
    assert_eq!(o.raw(), 5);
    assert!(o.was_halted() && !o.was_receiving() && o.was_sending());
    assert_eq!(
        exregs::USER_FLAGS_MASK,
        0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x800
    );
    assert_eq!(exregs::merge_user_flags(0x3202, !0), 0x3202 | 0x8D5);
}

#[test]
fn syscall_words() {
    let tc = TimeControl::new(Time::period_micros(10_000), Time::NEVER);
    assert_eq!(
        (tc.timeslice(), tc.total_quantum()),
        (Time::period_micros(10_000), Time::NEVER)
    );
    assert!(TimeControl::NO_CHANGE.is_no_change());
    assert_eq!(PrioControl(100).priority(), Some(100));
    assert_eq!(PrioControl(0x100).priority(), None);
    assert_eq!(PrioControl::NO_CHANGE.priority(), None);
    assert_eq!(ProcessorControlWord(3).processor(), Some(3));
    let p = PreemptionControl::new(500, 200);
    assert_eq!(
        (p.0, p.max_delay(), p.sensitive_prio()),
        (0x00C8_01F4, 500, 200)
    );
    for s in 0..8 {
        assert_eq!(ScheduleResult::decode(s).encode(), s);
    }
    assert_eq!(ScheduleResult::decode(3), ScheduleResult::Running);
    assert!(SpaceControlWord(1 << 63).compat_mode());
    let u = UnmapControl::new(5, true);
    assert_eq!((u.0, u.count(), u.flush()), (0x45, 6, true));
    assert_eq!(MemoryControlWord::new(2).count(), 3);
    assert_eq!(MemoryControlWord::attribute_index(Fpage(0x10c7)), 3);
    assert_eq!(UTCB_LOCATION_UNCHANGED, u64::MAX);
}

#[test]
fn kip_encodings() {
    assert_eq!(UtcbInfo::PISTACHIO.0, 0xC2801);
    let u = UtcbInfo(0xC2801);
    assert_eq!(
        (
            u.multiplier(),
            u.alignment_log2(),
            u.area_size_log2(),
            u.utcb_size()
        ),
        (1, 10, 12, 1024)
    );
    assert_eq!(KipAreaInfo::PISTACHIO.0, 0xC);
    assert_eq!(PageInfo::PISTACHIO.0, 0x201007);
    assert_eq!(PageInfo(0x201007).min_page_log2(), Some(12));
    let t = ThreadInfo(0x3001012);
    assert_eq!(
        (t.thread_bits(), t.system_base(), t.user_base()),
        (18, 16, 48)
    );
    assert_eq!(ThreadInfo::new(18, 16, 48).0, 0x3001012);
    assert_eq!(
        ProcessorInfo::new(1, PROC_DESC_SIZE_LOG2).0,
        0x5000_0000_0000_0000
    );
    assert_eq!(ProcessorInfo(0x5000_0000_0000_0000).cpus(), 1);
    let m = MemoryInfo(0x0000_02e0_0000_0011);
    assert_eq!((m.count(), m.offset()), (17, 0x2e0));
    assert_eq!(MemoryInfo::new(17, 0x2e0).0, 0x0000_02e0_0000_0011);
    assert_eq!(m.with_count(3).0, 0x0000_02e0_0000_0003);
    assert_eq!(ApiVersion::X2.0, 0x8405_0000);
    assert_eq!(
        (ApiVersion::X2.version(), ApiVersion::X2.subversion()),
        (0x84, 5)
    );
    assert_eq!(API_FLAGS_64BIT, 4);
    assert_eq!(ClockInfo::new(1, 1953).schedule_precision(), 1953);
    assert_eq!(KernelDesc::kernel_id(4, 2), 0x0402_0000);
    assert_eq!(KernelDesc::kernel_ver(0, 4, 0), 0x0004_0000);
    assert_eq!(KernelDesc::supplier(*b"UKa "), 0x2061_4B55);
    let d = KernelDesc::gen_date(2024, 11, 24);
    assert_eq!(d, 24 | (11 << 5) | (24 << 9));
    assert_eq!(KernelDesc::decode_gen_date(d), (2024, 11, 24));
    assert_eq!(core::mem::size_of::<Kip>(), 0x240);
    assert_eq!(Kip::ZERO, Kip::default());
}

#[test]
fn memory_descriptors_of_reference_kip() {
    use MemType::*;
    let table: &[(MemType, u8, bool, u64, u64)] = &[
        (Shared, 0, false, 0x0, 0xffff_ffff_ffff_ffff),
        (Conventional, 1, false, 0x0, 0x9fbff),
        (Arch, 2, false, 0x9fc00, 0x9ffff),
        (Arch, 2, false, 0xf0000, 0xfffff),
        (Conventional, 1, false, 0x100000, 0xffdffff),
        (Arch, 2, false, 0xffe0000, 0xfffffff),
        (Arch, 2, false, 0xfffc0000, 0xffffffff),
        (Arch, 2, false, 0xfd00000000, 0xffffffffff),
        (Shared, 0, false, 0xa0000, 0xbffff),
        (Shared, 0, false, 0xc0000, 0xeffff),
        (Reserved, 0, false, 0xe200000, 0xf1fffff),
        (BootLoader, 2, false, 0xf00000, 0xf063ff),
        (BootLoader, 2, false, 0x1000000, 0x10107ff),
        (Reserved, 0, false, 0x600000, 0xc05fff),
        (Reserved, 0, false, 0xc06000, 0xd05fff),
        (Reserved, 0, false, 0x800000, 0x9fffff),
        (Conventional, 0, true, 0x0, 0xfffffeffffffffff),
    ];
    for &(ty, sub, virt, low, high) in table {
        let d = MemDesc::new(ty, sub, virt, low, high);
        assert_eq!(
            (d.mem_type(), d.subtype(), d.is_virtual(), d.low(), d.high()),
            (Some(ty), sub, virt, low, high)
        );
        assert_eq!(
            d.word0 & 0x3FF,
            ty as u64 | ((sub as u64) << 4) | ((virt as u64) << 9)
        );
    }
    let d = MemDesc::new(
        BootLoader,
        bootloader_subtype::INIT_TABLE,
        false,
        0x1000,
        0x1fff,
    );
    assert_eq!(d.l4_type(), 0x1E);
    assert_eq!(MemType::from_raw(7), None);
}

#[test]
fn utcb_layout() {
    assert_eq!(core::mem::size_of::<Utcb>(), 1024);
    assert_eq!(core::mem::align_of::<Utcb>(), 1024);
    let mut u = Utcb::ZERO;
    assert!(u.set_br(0, 0x10) && u.set_br(32, 7) && !u.set_br(33, 1));
    assert_eq!(u.br_reversed[32], 0x10);
    assert_eq!(u.br_reversed[0], 7);
    assert_eq!((u.br(0), u.br(32), u.br(33)), (Some(0x10), Some(7), None));
    assert_eq!(utcb::block_offset(utcb::br(1)), 0x178);
    assert_eq!(utcb::block_offset(utcb::mr(63)), 0x3F8);
    assert_eq!(utcb::ACTUAL_SENDER, utcb::VIRTUAL_SENDER);
    assert_eq!(
        (
            utcb::preempt_flags::SIGNAL,
            utcb::preempt_flags::DELAYED,
            utcb::preempt_flags::PENDING
        ),
        (0x20, 0x40, 0x80)
    );
}

#[test]
fn exception_registers() {
    let order = [
        exception::MR_RIP,
        exception::MR_RBX,
        exception::MR_R10,
        exception::MR_R12,
        exception::MR_R13,
        exception::MR_R14,
        exception::MR_R15,
        exception::MR_RAX,
        exception::MR_RCX,
        exception::MR_RDX,
        exception::MR_RSI,
        exception::MR_RDI,
        exception::MR_RBP,
        exception::MR_R8,
        exception::MR_R9,
        exception::MR_R11,
        exception::MR_RSP,
        exception::MR_RFLAGS,
        exception::MR_VECTOR,
        exception::MR_ERROR_CODE,
    ];
    for (i, mr) in order.iter().enumerate() {
        assert_eq!(*mr, i + 1);
    }
    assert_eq!(exception::EXCEPTION_MSG_UNTYPED, 19);
    assert!(exception::is_start_message(MsgTag::new(0, 2, 0)));
    assert!(!exception::is_start_message(MsgTag::new(0, 3, 0)));
}

#[test]
fn sigma0_protocol() {
    let any = sigma0::any_page(12);
    assert!(sigma0::is_any_page(any));
    assert!(!sigma0::is_any_page(Fpage::new_log2(0x1000, 12)));
    assert_eq!(any.size_log2(), 12);
    assert_eq!(sigma0::rpc_tag().raw(), 0xFFFF_FFFF_FFA0_0002);
    assert_eq!(sigma0::reply_tag().raw(), 0x80);
    assert!(sigma0::is_valid_request(sigma0::rpc_tag()));
    assert!(!sigma0::is_valid_request(MsgTag::new(0, 1, 0)));
    assert_eq!(
        sigma0::reply_item(0x10_0000, 12).to_words(false),
        [0x10_0008, 0x10_00c7]
    );
}

#[test]
fn bootinfo_round_trip() {
    let mut buf = [0u8; 4096];
    let mut w = BootInfoWriter::new(&mut buf).unwrap();
    let exec = SimpleExec {
        text_pstart: 0xf00000,
        initial_ip: 0xf00000,
        flags: 2,
        ..Default::default()
    };
    w.add_simple_exec(&exec, Some(b"sigma0")).unwrap();
    w.add_module(0x200_0000, 0x1234, Some(b"data.bin arg"))
        .unwrap();
    w.add_module(0x300_0000, 1, None).unwrap();
    w.add_multiboot(0x9000).unwrap();
    let size = w.finish();
    assert_eq!(size % 8, 0);
    assert_eq!(&buf[0..8], &bootinfo::BOOTINFO_MAGIC.to_le_bytes());
    assert_eq!(u64::from_le_bytes(buf[24..32].try_into().unwrap()), 64);
    let bi = BootInfo::parse(&buf).unwrap();
    assert_eq!(bi.num_entries(), 4);
    let recs: Vec<_> = bi.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        recs,
        vec![
            Record::SimpleExec {
                exec,
                cmdline: Some(&b"sigma0"[..])
            },
            Record::Module {
                start: 0x200_0000,
                size: 0x1234,
                cmdline: Some(&b"data.bin arg"[..])
            },
            Record::Module {
                start: 0x300_0000,
                size: 1,
                cmdline: None
            },
            Record::Multiboot { address: 0x9000 },
        ]
    );
    // first record: 16 words + "sigma0\0" padded to 8
    assert_eq!(
        u64::from_le_bytes(buf[64 + 16..64 + 24].try_into().unwrap()),
        128 + 8
    );
    let mut tiny = [0u8; 120];
    let mut w = BootInfoWriter::new(&mut tiny).unwrap();
    assert_eq!(w.add_module(0, 0, None), Ok(()));
    assert_eq!(
        w.add_module(0, 0, None),
        Err(bootinfo::BootInfoError::BufferTooSmall)
    );
    let mut short = [0u8; 63];
    assert!(BootInfoWriter::new(&mut short).is_err());
    assert_eq!(
        BootInfo::parse(&[0u8; 64]).err(),
        Some(bootinfo::BootInfoError::BadHeader)
    );
}

#[test]
fn simple_string_words() {
    assert_eq!(items::simple_string(1, 2), [1 << 10, 2]);
}
