//! Golden vectors from the reference libl4 (`shared/spec/abi-vectors.json`), transcribed
//! into a table and checked against our encoders. A second test re-reads the JSON file (when
//! present) and requires every (kind, expr, raw) in it to appear in the table, so the file and
//! the tests cannot drift apart.

use abi::items::{self, StringItemWriter};
use abi::kip::{KIP_MAGIC, Kip};
use abi::msgtag::{self, labels};
use abi::utcb;
use abi::{Acceptor, Fpage, GrantItem, MapItem, MsgTag, Rights, ThreadId, Time, Timeouts};
use core::mem::offset_of;

struct V {
    kind: &'static str,
    expr: &'static str,
    raw: &'static str,
    ours: fn() -> String,
}

fn hex(v: u64) -> String {
    format!("0x{v:016x}")
}

/// `StringItem(64, 0x1000) += 0x2040 += 0x3080`.
fn compound_a() -> [u64; 4] {
    let mut buf = [0u64; 4];
    let mut w = StringItemWriter::new(&mut buf, 64, 0x1000).unwrap();
    w.add_substring_address(0x2040).unwrap();
    w.add_substring_address(0x3080).unwrap();
    assert_eq!(w.finish(), 4);
    buf
}

/// `StringItem(32, 0x1000)` then `AddSubstringTo(StringItem(64, 0x5000))`.
fn compound_b() -> [u64; 4] {
    let mut buf = [0u64; 4];
    let mut w = StringItemWriter::new(&mut buf, 32, 0x1000).unwrap();
    w.add_substring(64, 0x5000).unwrap();
    assert_eq!(w.finish(), 4);
    buf
}

/// MR i at word index i, BR i at -(16+i).
fn utcb_rule() -> String {
    let ok = (0..64).all(|i| utcb::mr(i) == i as isize)
        && (0..33).all(|i| utcb::br(i) == -(16 + i as isize));
    if ok {
        "rule".to_string()
    } else {
        "broken".to_string()
    }
}

#[rustfmt::skip]
const VECTORS: &[V] = &[
    V { kind: "thread_id", expr: "L4_GlobalId(0, 0).raw", raw: "0x0000000000000000", ours: || hex(ThreadId::global(0, 0).raw()) },
    V { kind: "thread_id", expr: "L4_GlobalId(1, 1).raw", raw: "0x0000000100000001", ours: || hex(ThreadId::global(1, 1).raw()) },
    V { kind: "thread_id", expr: "L4_GlobalId(48, 1).raw", raw: "0x0000003000000001", ours: || hex(ThreadId::global(48, 1).raw()) },
    V { kind: "thread_id", expr: "L4_GlobalId(0x3ffff, 0x3fff).raw", raw: "0x0003ffff00003fff", ours: || hex(ThreadId::global(0x3ffff, 0x3fff).raw()) },
    V { kind: "thread_id", expr: "L4_GlobalId(100, 1).raw", raw: "0x0000006400000001", ours: || hex(ThreadId::global(100, 1).raw()) },
    V { kind: "thread_id", expr: "L4_nilthread.raw", raw: "0x0000000000000000", ours: || hex(ThreadId::NIL.raw()) },
    V { kind: "thread_id", expr: "L4_anythread.raw", raw: "0xffffffffffffffff", ours: || hex(ThreadId::ANY.raw()) },
    V { kind: "thread_id", expr: "L4_anylocalthread.raw", raw: "0xffffffffffffffc0", ours: || hex(ThreadId::ANY_LOCAL.raw()) },
    V { kind: "thread_id", expr: "L4_ThreadNo(L4_GlobalId(0x1234, 7))", raw: "0x0000000000001234", ours: || hex(ThreadId::global(0x1234, 7).number()) },
    V { kind: "thread_id", expr: "L4_Version(L4_GlobalId(0x1234, 7))", raw: "0x0000000000000007", ours: || hex(ThreadId::global(0x1234, 7).version()) },
    V { kind: "fpage", expr: "L4_Nilpage.raw", raw: "0x0000000000000000", ours: || hex(Fpage::NIL.raw()) },
    V { kind: "fpage", expr: "L4_CompleteAddressSpace.raw", raw: "0x0000000000000010", ours: || hex(Fpage::COMPLETE.raw()) },
    V { kind: "fpage", expr: "L4_Fpage(0x1000, 0x1000).raw", raw: "0x00000000000010c0", ours: || hex(Fpage::from_base_size(0x1000, 0x1000).raw()) },
    V { kind: "fpage", expr: "L4_Fpage(0x200000, 0x200000).raw", raw: "0x0000000000200150", ours: || hex(Fpage::from_base_size(0x200000, 0x200000).raw()) },
    V { kind: "fpage", expr: "L4_FpageLog2(0x40000000, 30).raw", raw: "0x00000000400001e0", ours: || hex(Fpage::new_log2(0x4000_0000, 30).raw()) },
    V { kind: "fpage", expr: "L4_FpageLog2(0xbff00000, 12).raw", raw: "0x00000000bff000c0", ours: || hex(Fpage::new_log2(0xbff0_0000, 12).raw()) },
    V { kind: "fpage", expr: "L4_FpageLog2(0x80000000, 13).raw", raw: "0x00000000800000d0", ours: || hex(Fpage::new_log2(0x8000_0000, 13).raw()) },
    V { kind: "fpage", expr: "L4_FpageAddRights(L4_Fpage(0x1000, 0x1000), L4_FullyAccessible).raw", raw: "0x00000000000010c7", ours: || hex(Fpage::from_base_size(0x1000, 0x1000).add_rights(Rights::FULL).raw()) },
    V { kind: "fpage", expr: "L4_FpageAddRights(L4_Fpage(0x1000, 0x1000), L4_Readable).raw", raw: "0x00000000000010c4", ours: || hex(Fpage::from_base_size(0x1000, 0x1000).add_rights(Rights::R).raw()) },
    V { kind: "fpage", expr: "L4_FpageAddRights(L4_FpageLog2(0x12345000, 12), L4_ReadeXecOnly).raw", raw: "0x00000000123450c5", ours: || hex(Fpage::new_log2(0x1234_5000, 12).add_rights(Rights::RX).raw()) },
    V { kind: "fpage", expr: "L4_Size(L4_FpageLog2(0x40000000, 22))", raw: "0x0000000000400000", ours: || hex(Fpage::new_log2(0x4000_0000, 22).size()) },
    V { kind: "fpage", expr: "L4_Address(L4_FpageLog2(0x40123000, 22))", raw: "0x0000000040000000", ours: || hex(Fpage::new_log2(0x4012_3000, 22).base()) },
    V { kind: "fpage", expr: "L4_SizeLog2(L4_CompleteAddressSpace)", raw: "0x0000000000000001", ours: || hex(Fpage::COMPLETE.size_log2()) },
    V { kind: "fpage", expr: "L4_Readable", raw: "0x0000000000000004", ours: || hex(Rights::R.raw()) },
    V { kind: "fpage", expr: "L4_Writable", raw: "0x0000000000000002", ours: || hex(Rights::W.raw()) },
    V { kind: "fpage", expr: "L4_eXecutable", raw: "0x0000000000000001", ours: || hex(Rights::X.raw()) },
    V { kind: "msgtag", expr: "L4_Niltag.raw", raw: "0x0000000000000000", ours: || hex(MsgTag::NIL.raw()) },
    V { kind: "msgtag", expr: "L4_MsgTagAddLabel(L4_Niltag, 0xf00f).raw", raw: "0x00000000f00f0000", ours: || hex(MsgTag::NIL.with_label(0xf00f).raw()) },
    V { kind: "msgtag", expr: "tag(label=0xf00d, u=63, t=0, flags=0)", raw: "0x00000000f00d003f", ours: || hex(MsgTag::new(0xf00d, 63, 0).raw()) },
    V { kind: "msgtag", expr: "tag(label=(-2<<4)|6, u=2, t=0)", raw: "0xffffffffffe60002", ours: || hex(MsgTag::new(labels::PAGE_FAULT | 6, 2, 0).raw()) },
    V { kind: "msgtag", expr: "tag(label=0, u=0, t=2)", raw: "0x0000000000000080", ours: || hex(MsgTag::new(0, 0, 2).raw()) },
    V { kind: "msgtag", expr: "tag(label=-6<<4, u=2, t=0)", raw: "0xffffffffffa00002", ours: || hex(MsgTag::new(labels::SIGMA0, 2, 0).raw()) },
    V { kind: "msgtag", expr: "tag(label=-1001<<4, u=2, t=0)", raw: "0xffffffffc1700002", ours: || hex(MsgTag::new(labels::SIGMA0_EXT, 2, 0).raw()) },
    V { kind: "msgtag", expr: "tag(flags=0x8 [E])", raw: "0x0000000000008000", ours: || hex(MsgTag::NIL.with_error(true).raw()) },
    V { kind: "msgtag", expr: "tag(flags=0x1 [p])", raw: "0x0000000000001000", ours: || hex(MsgTag::NIL.with_flags(msgtag::flags::PROPAGATED).raw()) },
    V { kind: "time", expr: "L4_Never.raw", raw: "0x0000000000000000", ours: || hex(Time::NEVER.raw() as u64) },
    V { kind: "time", expr: "L4_ZeroTime.raw", raw: "0x0000000000000400", ours: || hex(Time::ZERO.raw() as u64) },
    V { kind: "time", expr: "L4_TimePeriod(1).raw", raw: "0x0000000000000001", ours: || hex(Time::period_micros(1).raw() as u64) },
    V { kind: "time", expr: "L4_TimePeriod(2).raw", raw: "0x0000000000000002", ours: || hex(Time::period_micros(2).raw() as u64) },
    V { kind: "time", expr: "L4_TimePeriod(1000).raw", raw: "0x00000000000003e8", ours: || hex(Time::period_micros(1000).raw() as u64) },
    V { kind: "time", expr: "L4_TimePeriod(1023).raw", raw: "0x00000000000003ff", ours: || hex(Time::period_micros(1023).raw() as u64) },
    V { kind: "time", expr: "L4_TimePeriod(1024).raw", raw: "0x0000000000000600", ours: || hex(Time::period_micros(1024).raw() as u64) },
    V { kind: "time", expr: "L4_TimePeriod(1025).raw", raw: "0x0000000000000600", ours: || hex(Time::period_micros(1025).raw() as u64) },
    V { kind: "time", expr: "L4_TimePeriod(4096).raw", raw: "0x0000000000000e00", ours: || hex(Time::period_micros(4096).raw() as u64) },
    V { kind: "time", expr: "L4_TimePeriod(65535).raw", raw: "0x0000000000001bff", ours: || hex(Time::period_micros(65535).raw() as u64) },
    V { kind: "time", expr: "L4_TimePeriod(1000000).raw", raw: "0x0000000000002bd0", ours: || hex(Time::period_micros(1000000).raw() as u64) },
    V { kind: "time", expr: "L4_TimePeriod(5000000).raw", raw: "0x0000000000003662", ours: || hex(Time::period_micros(5000000).raw() as u64) },
    V { kind: "time", expr: "L4_TimePeriod(123456789).raw", raw: "0x00000000000047ad", ours: || hex(Time::period_micros(123456789).raw() as u64) },
    V { kind: "time", expr: "L4_TimePeriod(4294967295).raw", raw: "0x0000000000005bff", ours: || hex(Time::period_micros(4294967295).raw() as u64) },
    V { kind: "timeouts", expr: "L4_Timeouts(L4_Never, L4_Never)", raw: "0x0000000000000000", ours: || hex(Timeouts::new(Time::NEVER, Time::NEVER).0) },
    V { kind: "timeouts", expr: "L4_Timeouts(L4_ZeroTime, L4_Never)", raw: "0x0000000004000000", ours: || hex(Timeouts::new(Time::ZERO, Time::NEVER).0) },
    V { kind: "timeouts", expr: "L4_Timeouts(L4_TimePeriod(1000), L4_TimePeriod(1000000))", raw: "0x0000000003e82bd0", ours: || hex(Timeouts::new(Time::period_micros(1000), Time::period_micros(1_000_000)).0) },
    V { kind: "map_item", expr: "L4_MapItem(L4_FpageAddRights(L4_FpageLog2(0x100000,12), RWX), SndBase=0x100000) word 0", raw: "0x0000000000100008", ours: || hex(MapItem::new(Fpage::new_log2(0x10_0000, 12).add_rights(Rights::FULL), 0x10_0000).to_words(false)[0]) },
    V { kind: "map_item", expr: "L4_MapItem(L4_FpageAddRights(L4_FpageLog2(0x100000,12), RWX), SndBase=0x100000) word 1", raw: "0x00000000001000c7", ours: || hex(MapItem::new(Fpage::new_log2(0x10_0000, 12).add_rights(Rights::FULL), 0x10_0000).to_words(false)[1]) },
    V { kind: "grant_item", expr: "L4_GrantItem(L4_FpageAddRights(L4_FpageLog2(0x200000,21), R), SndBase=0) word 0", raw: "0x000000000000000a", ours: || hex(GrantItem::new(Fpage::new_log2(0x20_0000, 21).add_rights(Rights::R), 0).to_words(false)[0]) },
    V { kind: "grant_item", expr: "L4_GrantItem(L4_FpageAddRights(L4_FpageLog2(0x200000,21), R), SndBase=0) word 1", raw: "0x0000000000200154", ours: || hex(GrantItem::new(Fpage::new_log2(0x20_0000, 21).add_rights(Rights::R), 0).to_words(false)[1]) },
    V { kind: "string_item", expr: "L4_StringItem(256, 0x1000) word 0", raw: "0x0000000000040000", ours: || hex(items::simple_string(256, 0x1000)[0]) },
    V { kind: "string_item", expr: "L4_StringItem(256, 0x1000) word 1", raw: "0x0000000000001000", ours: || hex(items::simple_string(256, 0x1000)[1]) },
    V { kind: "acceptor", expr: "L4_MapGrantItems(L4_CompleteAddressSpace).raw", raw: "0x0000000000000010", ours: || hex(Acceptor::map_grant(Fpage::COMPLETE).raw()) },
    V { kind: "acceptor", expr: "L4_UntypedWordsAcceptor.raw", raw: "0x0000000000000000", ours: || hex(Acceptor::UNTYPED_WORDS.raw()) },
    V { kind: "acceptor", expr: "L4_StringItemsAcceptor.raw", raw: "0x0000000000000001", ours: || hex(Acceptor::STRING_ITEMS.raw()) },
    V { kind: "acceptor", expr: "L4_AddAcceptor(L4_MapGrantItems(L4_FpageLog2(0x1000000, 24)), L4_StringItemsAcceptor).raw", raw: "0x0000000001000181", ours: || hex(Acceptor::map_grant(Fpage::new_log2(0x100_0000, 24)).with_strings().raw()) },
    V { kind: "string_item", expr: "compound: StringItem(64,0x1000) += 0x2040 += 0x3080: word 0", raw: "0x0000000000010020", ours: || hex(compound_a()[0]) },
    V { kind: "string_item", expr: "compound: StringItem(64,0x1000) += 0x2040 += 0x3080: word 1", raw: "0x0000000000001000", ours: || hex(compound_a()[1]) },
    V { kind: "string_item", expr: "compound: StringItem(64,0x1000) += 0x2040 += 0x3080: word 2", raw: "0x0000000000002040", ours: || hex(compound_a()[2]) },
    V { kind: "string_item", expr: "compound: StringItem(64,0x1000) += 0x2040 += 0x3080: word 3", raw: "0x0000000000003080", ours: || hex(compound_a()[3]) },
    V { kind: "string_item", expr: "compound: StringItem(32,0x1000) then AddSubstringTo StringItem(64,0x5000): word 0", raw: "0x0000000000008200", ours: || hex(compound_b()[0]) },
    V { kind: "string_item", expr: "compound: StringItem(32,0x1000) then AddSubstringTo StringItem(64,0x5000): word 1", raw: "0x0000000000001000", ours: || hex(compound_b()[1]) },
    V { kind: "string_item", expr: "compound: StringItem(32,0x1000) then AddSubstringTo StringItem(64,0x5000): word 2", raw: "0x0000000000010000", ours: || hex(compound_b()[2]) },
    V { kind: "string_item", expr: "compound: StringItem(32,0x1000) then AddSubstringTo StringItem(64,0x5000): word 3", raw: "0x0000000000005000", ours: || hex(compound_b()[3]) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, magic)", raw: "0x0000000000000000", ours: || hex(offset_of!(Kip, magic) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, ApiVersion)", raw: "0x0000000000000008", ours: || hex(offset_of!(Kip, api_version) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, ApiFlags)", raw: "0x0000000000000010", ours: || hex(offset_of!(Kip, api_flags) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, KernelVerPtr)", raw: "0x0000000000000018", ours: || hex(offset_of!(Kip, kernel_desc_ptr) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, MemoryInfo)", raw: "0x00000000000000a8", ours: || hex(offset_of!(Kip, memory_info) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, MainMem)", raw: "0x00000000000000c0", ours: || hex(offset_of!(Kip, main_mem) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, ReservedMem)", raw: "0x00000000000000d0", ours: || hex(offset_of!(Kip, reserved_mem) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, DedicatedMem)", raw: "0x00000000000000f0", ours: || hex(offset_of!(Kip, dedicated_mem) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, ArchSyscall0)", raw: "0x0000000000000220", ours: || hex(offset_of!(Kip, arch_syscall) as u64) },
    V { kind: "kip", expr: "L4_MAGIC", raw: "0x000000004be6344c", ours: || hex(KIP_MAGIC) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, UtcbAreaInfo)", raw: "0x0000000000000150", ours: || hex(offset_of!(Kip, utcb_info) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, KipAreaInfo)", raw: "0x0000000000000158", ours: || hex(offset_of!(Kip, kip_area_info) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, BootInfo)", raw: "0x0000000000000170", ours: || hex(offset_of!(Kip, boot_info) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, ProcDescPtr)", raw: "0x0000000000000178", ours: || hex(offset_of!(Kip, proc_desc_ptr) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, ClockInfo)", raw: "0x0000000000000180", ours: || hex(offset_of!(Kip, clock_info) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, ThreadInfo)", raw: "0x0000000000000188", ours: || hex(offset_of!(Kip, thread_info) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, PageInfo)", raw: "0x0000000000000190", ours: || hex(offset_of!(Kip, page_info) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, ProcessorInfo)", raw: "0x0000000000000198", ours: || hex(offset_of!(Kip, processor_info) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, SpaceControl)", raw: "0x00000000000001a0", ours: || hex(offset_of!(Kip, space_control) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, ThreadControl)", raw: "0x00000000000001a8", ours: || hex(offset_of!(Kip, thread_control) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, ProcessorControl)", raw: "0x00000000000001b0", ours: || hex(offset_of!(Kip, processor_control) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, MemoryControl)", raw: "0x00000000000001b8", ours: || hex(offset_of!(Kip, memory_control) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, Ipc)", raw: "0x00000000000001c0", ours: || hex(offset_of!(Kip, ipc) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, Lipc)", raw: "0x00000000000001c8", ours: || hex(offset_of!(Kip, lipc) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, Unmap)", raw: "0x00000000000001d0", ours: || hex(offset_of!(Kip, unmap) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, ExchangeRegisters)", raw: "0x00000000000001d8", ours: || hex(offset_of!(Kip, exchange_registers) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, SystemClock)", raw: "0x00000000000001e0", ours: || hex(offset_of!(Kip, system_clock) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, ThreadSwitch)", raw: "0x00000000000001e8", ours: || hex(offset_of!(Kip, thread_switch) as u64) },
    V { kind: "kip", expr: "offsetof(L4_KernelInterfacePage_t, Schedule)", raw: "0x00000000000001f0", ours: || hex(offset_of!(Kip, schedule) as u64) },
    V { kind: "utcb_tcr", expr: "WordSizeMask: word index relative to the UTCB pointer (%gs:0)", raw: "-1", ours: || utcb::WORD_SIZE_MASK.to_string() },
    V { kind: "utcb_tcr", expr: "ThreadWord0: word index relative to the UTCB pointer (%gs:0)", raw: "-4", ours: || utcb::THREAD_WORD0.to_string() },
    V { kind: "utcb_tcr", expr: "ThreadWord1: word index relative to the UTCB pointer (%gs:0)", raw: "-5", ours: || utcb::THREAD_WORD1.to_string() },
    V { kind: "utcb_tcr", expr: "VirtualSender/ActualSender: word index relative to the UTCB pointer (%gs:0)", raw: "-6", ours: || utcb::VIRTUAL_SENDER.to_string() },
    V { kind: "utcb_tcr", expr: "IntendedReceiver: word index relative to the UTCB pointer (%gs:0)", raw: "-7", ours: || utcb::INTENDED_RECEIVER.to_string() },
    V { kind: "utcb_tcr", expr: "XferTimeouts: word index relative to the UTCB pointer (%gs:0)", raw: "-8", ours: || utcb::XFER_TIMEOUTS.to_string() },
    V { kind: "utcb_tcr", expr: "ErrorCode: word index relative to the UTCB pointer (%gs:0)", raw: "-9", ours: || utcb::ERROR_CODE.to_string() },
    V { kind: "utcb_tcr", expr: "PreemptFlags/CopFlags: word index relative to the UTCB pointer (%gs:0)", raw: "-10", ours: || utcb::FLAGS.to_string() },
    V { kind: "utcb_tcr", expr: "ExceptionHandler: word index relative to the UTCB pointer (%gs:0)", raw: "-11", ours: || utcb::EXCEPTION_HANDLER.to_string() },
    V { kind: "utcb_tcr", expr: "Pager: word index relative to the UTCB pointer (%gs:0)", raw: "-12", ours: || utcb::PAGER.to_string() },
    V { kind: "utcb_tcr", expr: "UserDefinedHandle: word index relative to the UTCB pointer (%gs:0)", raw: "-13", ours: || utcb::USER_DEFINED_HANDLE.to_string() },
    V { kind: "utcb_tcr", expr: "ProcessorNo: word index relative to the UTCB pointer (%gs:0)", raw: "-14", ours: || utcb::PROCESSOR_NO.to_string() },
    V { kind: "utcb_tcr", expr: "MyGlobalId: word index relative to the UTCB pointer (%gs:0)", raw: "-15", ours: || utcb::MY_GLOBAL_ID.to_string() },
    V { kind: "utcb", expr: "MR i: word index i relative to the UTCB pointer; BR i: word index -(16+i)", raw: "rule", ours: || utcb_rule() },
];

#[test]
fn every_vector_matches() {
    let mut failures = Vec::new();
    for v in VECTORS {
        let ours = (v.ours)();
        if ours != v.raw {
            failures.push(format!(
                "[{}] {}: expected {}, ours {}",
                v.kind, v.expr, v.raw, ours
            ));
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    assert_eq!(VECTORS.len(), 113);
}

#[test]
fn table_matches_json_file() {
    // The vectors are carried in the repository, so this check never skips.
    let text = include_str!("data/abi-vectors.json");
    let json: serde_json::Value = serde_json::from_str(text).expect("abi-vectors.json parses");
    let file = json["vectors"].as_array().expect("vectors array");
    for e in file {
        let (kind, expr, raw) = (
            e["kind"].as_str().unwrap(),
            e["expr"].as_str().unwrap(),
            e["raw"].as_str().unwrap(),
        );
        let row = VECTORS.iter().find(|v| v.kind == kind && v.expr == expr);
        let row = row.unwrap_or_else(|| panic!("vector missing from the table: [{kind}] {expr}"));
        assert_eq!(row.raw, raw, "[{kind}] {expr}: table and file disagree");
    }
    assert_eq!(
        file.len(),
        VECTORS.len(),
        "table has rows the file does not"
    );
}

/// The repository's copy of the vectors is the reference library's file, byte for byte,
/// whenever `../shared` is beside the checkout (CI has it).
#[test]
fn carried_vectors_equal_shared_file() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/spec/abi-vectors.json"
    );
    if let Ok(shared) = std::fs::read_to_string(path) {
        assert_eq!(
            shared,
            include_str!("data/abi-vectors.json"),
            "abi/tests/data/abi-vectors.json differs from {path}: copy the new file in"
        );
    }
}
