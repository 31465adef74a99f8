//! Property tests: every encoder round-trips through its decoder, and every decoder accepts
//! arbitrary words, word slices and byte slices without panicking.

use abi::bootinfo::{BootInfo, BootInfoWriter, Record};
use abi::items::{StringItemWriter, TypedItems};
use abi::kip::*;
use abi::syscall_args::*;
use abi::utcb::Utcb;
use abi::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn thread_id_round_trip(n in 0u64..=u32::MAX as u64, v in 0u64..=u32::MAX as u64) {
        let t = ThreadId::global(n, v);
        prop_assert_eq!((t.number(), t.version()), (n, v));
        if v & 0x3F != 0 { prop_assert!(t.is_global()); }
    }

    #[test]
    fn thread_id_total(raw: u64) {
        let t = ThreadId(raw);
        let kinds = [t.is_nil(), t.is_any(), t.is_local(), t.is_global()];
        prop_assert_eq!(kinds.iter().filter(|&&k| k).count(), 1);
    }

    #[test]
    fn msgtag_round_trip(label in 0u64..(1 << 48), u in 0u64..64, t in 0u64..64, f in 0u64..16) {
        let tag = MsgTag::new(label, u, t).with_flags(f);
        prop_assert_eq!((tag.label(), tag.untyped(), tag.typed(), tag.flags()), (label, u, t, f));
        prop_assert_eq!(MsgTag::new(tag.label(), tag.untyped(), tag.typed()).with_flags(tag.flags()), tag);
    }

    #[test]
    fn msgtag_total(raw: u64) {
        let t = MsgTag(raw);
        prop_assert_eq!(MsgTag::new(t.label(), t.untyped(), t.typed()).with_flags(t.flags()), t);
        let _ = (t.words(), t.protocol(), t.error(), t.clear_receive_flags());
    }

    #[test]
    fn fpage_round_trip(base: u64, s in 10u64..64, r in 0u64..8) {
        let f = Fpage::new_log2(base, s).with_rights(Rights(r));
        prop_assert_eq!(f.size_log2(), s);
        prop_assert_eq!(f.rights().raw(), r);
        prop_assert!(f.contains(base));
        prop_assert_eq!(f.base() & (f.size() - 1), 0);
        prop_assert_eq!(Fpage::new_log2(f.base(), f.size_log2()).with_rights(f.rights()), f);
    }

    #[test]
    fn fpage_from_size_covers(base in 0u64..(1 << 40), size in 1u64..(1 << 40)) {
        let f = Fpage::from_base_size(base, size);
        prop_assert!(f.size() >= size && f.size() / 2 < size.max(1));
    }

    #[test]
    fn fpage_total(raw: u64, addr: u64) {
        let f = Fpage(raw);
        let _ = (f.base(), f.size(), f.end(), f.contains(addr), f.is_io(), f.is_complete());
        let io = IoFpage(raw);
        let _ = (io.port(), io.ports(), io.size_log2(), io.rights());
        prop_assert!(f.end() >= f.base());
    }

    #[test]
    fn io_fpage_round_trip(port in 0u64..0x10000, l in 0u64..17) {
        let io = IoFpage::new_log2(port, l);
        prop_assert!(IoFpage::is_io(io.raw()));
        prop_assert_eq!(io.size_log2(), l);
        prop_assert_eq!(io.port(), port & !((1 << l) - 1) & 0xFFFF);
    }

    #[test]
    fn map_grant_round_trip(snd in any::<u64>(), fp: u64, cont: bool, grant: bool) {
        let f = Fpage(fp);
        let words = if grant { GrantItem::new(f, snd).to_words(cont) } else { MapItem::new(f, snd).to_words(cont) };
        let (item, n) = decode_typed(&words).unwrap();
        prop_assert_eq!(n, 2);
        prop_assert_eq!(item.more(), cont);
        match item {
            TypedItem::Map { item, .. } => { prop_assert!(!grant); prop_assert_eq!(item, MapItem::new(f, snd)); }
            TypedItem::Grant { item, .. } => { prop_assert!(grant); prop_assert_eq!(item, GrantItem::new(f, snd)); }
            TypedItem::String { .. } => prop_assert!(false),
        }
    }

    #[test]
    fn typed_decoder_total(words in proptest::collection::vec(any::<u64>(), 0..70)) {
        let _ = decode_typed(&words);
        let mut consumed = 0;
        for r in TypedItems::new(&words) {
            match r {
                Ok(TypedItem::String { substrings, .. }) => consumed += 1 + substrings.len(),
                Ok(_) => consumed += 2,
                Err(_) => break,
            }
        }
        prop_assert!(consumed <= words.len());
    }

    #[test]
    fn compound_string_round_trip(parts in proptest::collection::vec((0u64..(1 << 54), proptest::collection::vec(any::<u64>(), 1..33)), 1..4)) {
        let mut buf = [0u64; 200];
        let (len0, addrs0) = &parts[0];
        let mut w = StringItemWriter::new(&mut buf, *len0, addrs0[0]).unwrap();
        for a in &addrs0[1..] { w.add_substring_address(*a).unwrap(); }
        for (len, addrs) in &parts[1..] {
            w.add_substring(*len, addrs[0]).unwrap();
            for a in &addrs[1..] { w.add_substring_address(*a).unwrap(); }
        }
        let n = w.finish();
        let mut it = TypedItems::new(&buf[..n]);
        for (i, (len, addrs)) in parts.iter().enumerate() {
            let Some(Ok(TypedItem::String { header, substrings })) = it.next() else { panic!("part {i}") };
            prop_assert_eq!(header.length(), *len);
            prop_assert_eq!(substrings, &addrs[..]);
            prop_assert_eq!(header.compound(), i + 1 < parts.len());
        }
        prop_assert!(it.next().is_none());
    }

    #[test]
    fn acceptor_round_trip(fp: u64, strings: bool) {
        let a = Acceptor::map_grant(Fpage(fp));
        let a = if strings { a.with_strings() } else { a };
        prop_assert_eq!(a.window().raw(), fp & !0xF);
        prop_assert_eq!(a.strings(), strings);
        prop_assert!(!a.ctrlxfer());
    }

    #[test]
    fn time_period_bounds(us in 1u64..(1 << 41)) {
        let t = Time::period_micros(us);
        let TimeSpec::Period(p) = t.decode() else { panic!("{us} -> {t:?}") };
        prop_assert!(p <= us);
        // rounding down loses less than one unit of 2^e
        let e = (t.raw() >> 10) & 0x1F;
        prop_assert!(us - p < (1 << e));
        prop_assert!(t.raw() & 0x3FF >= 512 || e == 0);
    }

    #[test]
    fn time_total(raw: u16, now: u64) {
        let d = Time(raw).decode();
        let _ = d.deadline(now);
        prop_assert_eq!(Time(raw).is_period(), !matches!(d, TimeSpec::Point { .. }));
    }

    #[test]
    fn point_round_trip(now in 0u64..(1 << 60), delta in -(1i64 << 23)..(1i64 << 23)) {
        let at = now.saturating_add_signed(delta);
        let p = Time::point_at(at, now);
        let TimeSpec::Point { e, .. } = p.decode() else { panic!() };
        let dl = p.decode().deadline(now).unwrap();
        prop_assert!(dl <= at && at - dl < (1 << e));
    }

    #[test]
    fn timeouts_round_trip(s: u16, r: u16) {
        let t = Timeouts::new(Time(s), Time(r));
        prop_assert_eq!((t.send(), t.receive()), (Time(s), Time(r)));
        let x = XferTimeouts::new(Time(s), Time(r));
        prop_assert_eq!((x.send(), x.receive()), (Time(s), Time(r)));
        prop_assert_eq!(Timeouts(t.0).send(), Time(s));
    }

    #[test]
    fn ipc_error_round_trip(receive: bool, code in 1u64..8, offset in 0u64..(1 << 60)) {
        let e = IpcError::with_offset(
            if receive { IpcPhase::Receive } else { IpcPhase::Send },
            IpcErrorCode::from_raw(code).unwrap(),
            offset,
        );
        prop_assert_eq!(IpcError::decode(e.encode()), Some(e));
    }

    #[test]
    fn error_decoders_total(raw: u64) {
        if let Some(e) = IpcError::decode(raw) { prop_assert_eq!(e.encode(), raw); }
        if let Some(e) = SyscallError::from_raw(raw) { prop_assert_eq!(e.raw(), raw); }
    }

    #[test]
    fn control_words_total(raw: u64) {
        let _ = (TimeControl(raw).timeslice(), PrioControl(raw).priority(), ProcessorControlWord(raw).processor());
        let _ = (PreemptionControl(raw).max_delay(), UnmapControl(raw).count(), MemoryControlWord(raw).count());
        prop_assert_eq!(ScheduleResult::decode(raw).encode(), raw & 7);
        let c = ExregsControl(raw);
        let _ = (c.halt(), c.resume(), c.was_halted(), c.was_receiving(), c.was_sending());
    }

    #[test]
    fn schedule_words_round_trip(ts: u16, tq: u16, d: u16, p: u8) {
        let t = TimeControl::new(Time(ts), Time(tq));
        prop_assert_eq!((t.timeslice(), t.total_quantum()), (Time(ts), Time(tq)));
        let pc = PreemptionControl::new(d, p);
        prop_assert_eq!((pc.max_delay(), pc.sensitive_prio()), (d, p));
        prop_assert_eq!(PrioControl::new(p).priority(), Some(p));
    }

    #[test]
    fn kip_words_round_trip(m in 0u64..1024, a in 0u64..64, s in 0u64..64, t in 0u64..256, sb in 0u64..4096, ub in 0u64..4096, n: u32, off: u32) {
        let u = UtcbInfo::new(m, a, s);
        prop_assert_eq!((u.multiplier(), u.alignment_log2(), u.area_size_log2()), (m, a, s));
        let ti = ThreadInfo::new(t, sb, ub);
        prop_assert_eq!((ti.thread_bits(), ti.system_base(), ti.user_base()), (t, sb, ub));
        let mi = MemoryInfo::new(n, off);
        prop_assert_eq!((mi.count(), mi.offset()), (n, off));
        prop_assert_eq!(KipAreaInfo::new(s).size_log2(), s);
    }

    #[test]
    fn kip_words_total(raw: u64) {
        let _ = (UtcbInfo(raw).utcb_size(), PageInfo(raw).min_page_log2(), ProcessorInfo(raw).cpus());
        let _ = (ClockInfo(raw).read_precision(), KernelDesc::decode_gen_date(raw), MemType::from_raw(raw));
    }

    #[test]
    fn memdesc_round_trip(ty in prop::sample::select(vec![MemType::Undefined, MemType::Conventional, MemType::Reserved, MemType::Dedicated, MemType::Shared, MemType::BootLoader, MemType::Arch]), sub in 0u8..16, virt: bool, low: u64, high: u64) {
        let d = MemDesc::new(ty, sub, virt, low, high);
        prop_assert_eq!((d.mem_type(), d.subtype(), d.is_virtual()), (Some(ty), sub, virt));
        prop_assert_eq!(d.low(), low & !0x3FF);
        prop_assert_eq!(d.high(), high | 0x3FF);
    }

    #[test]
    fn memdesc_total(w0: u64, w1: u64) {
        let d = MemDesc { word0: w0, word1: w1 };
        let _ = (d.mem_type(), d.l4_type(), d.low(), d.high(), d.subtype());
    }

    #[test]
    fn utcb_br_round_trip(i in 0usize..40, v: u64) {
        let mut u = Utcb::ZERO;
        prop_assert_eq!(u.set_br(i, v), i < 33);
        prop_assert_eq!(u.br(i), if i < 33 { Some(v) } else { None });
    }

    #[test]
    fn bootinfo_round_trip(mods in proptest::collection::vec((any::<u64>(), any::<u64>(), proptest::option::of(proptest::collection::vec(1u8..=255, 0..40))), 0..8), mb: Option<u64>) {
        let mut buf = vec![0u8; 4096];
        let mut w = BootInfoWriter::new(&mut buf).unwrap();
        for (s, z, c) in &mods { w.add_module(*s, *z, c.as_deref()).unwrap(); }
        if let Some(a) = mb { w.add_multiboot(a).unwrap(); }
        let size = w.finish();
        let bi = BootInfo::parse(&buf[..size]).unwrap();
        let recs: Vec<Record> = bi.records().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(recs.len(), mods.len() + mb.is_some() as usize);
        for ((s, z, c), r) in mods.iter().zip(&recs) {
            prop_assert_eq!(*r, Record::Module { start: *s, size: *z, cmdline: c.as_deref() });
        }
    }

    #[test]
    fn bootinfo_reader_total(mut bytes in proptest::collection::vec(any::<u8>(), 0..600), fix_header: bool, n in 0u64..1000) {
        if fix_header && bytes.len() >= 40 {
            bytes[0..8].copy_from_slice(&abi::bootinfo::BOOTINFO_MAGIC.to_le_bytes());
            bytes[8..16].copy_from_slice(&1u64.to_le_bytes());
            bytes[32..40].copy_from_slice(&n.to_le_bytes());
        }
        if let Ok(bi) = BootInfo::parse(&bytes) {
            let mut count = 0u64;
            for _ in bi.records() { count += 1; }
            prop_assert!(count <= bi.num_entries());
        }
    }

    #[test]
    fn bootinfo_writer_never_panics(len in 0usize..300, cmd in proptest::collection::vec(1u8..=255, 0..100)) {
        let mut buf = vec![0u8; len];
        if let Ok(mut w) = BootInfoWriter::new(&mut buf) {
            while w.add_module(1, 2, Some(&cmd)).is_ok() {}
            prop_assert!(w.size() <= len);
        }
    }
}
