//! sigma0: the root pager. It owns all physical memory at boot and hands it out, page by
//! page, through the sigma0 protocol (spec 6.7).
//!
//! Sigma0's own address space is the identity map of physical memory, built lazily by the
//! kernel, and map items it sends bypass its page table (spec 2.4, 6.2): it can map any
//! physical range without touching it first.
//!
//! # Start-up
//! The ownership table ([`pool`]) starts with the whole physical address space as free
//! non-conventional memory (Pistachio's sigma0 does the same), then applies the KIP memory
//! descriptors in order, later ones overriding earlier ones: conventional → free
//! conventional; reserved → kernel; dedicated, boot-loader and architecture-specific → free
//! non-conventional; shared → shared; undefined → unavailable; virtual descriptors are
//! ignored. Finally the kdebug, sigma0, sigma1 and root-server regions of the KIP (words
//! 6/7, 10/11, 14/15, 18/19) are assigned to the kernel, sigma0, sigma1 and the root server,
//! so that the root server can fault in its own image.
//!
//! # Requests (served with Wait / ReplyWait, acceptor = untyped words only)
//! * Shape: t = 0 and u = 2 or 3, else ignored (no reply).
//! * Page fault (`-2<<4`, MR1 = address): the 4 KiB page at physical = fault address if it
//!   is free conventional memory, shared, or already the requester's. Reply one map item
//!   (4 KiB, RWX, SndBase = address), or a nil map item.
//! * RPC (`-6<<4`, MR1 = fpage, MR2 = attributes): base all ones → the highest free
//!   conventional page of that size; otherwise exactly that range, which may be free
//!   conventional or non-conventional memory, shared, or the requester's already. Sizes
//!   below 4 KiB are rounded up. Non-zero attributes are applied with MemoryControl.
//!   Reply label 0, u = 0, t = 2: map item or nil map item.
//! * IO page fault (`(-8<<4) | 6`, MR1 = IO fpage of the port(s), MR2 = IP) and RPC with an
//!   IO fpage in MR1 (spec 6.6, 6.7): sigma0 holds all 65,536 ports from boot (the kernel's
//!   IO-fpages) and answers with a map item of that IO fpage (SndBase = port). Ports are a
//!   device resource, so they go only to the root server thread and kernel threads; the root
//!   server hands them on to its drivers. Anybody else gets no reply (and a console line):
//!   a nil reply would only make a faulting thread fault again at once.
//! * Extension (`-1001<<4`, from kernel threads or the root server only): MR1 = 1 sets
//!   the verbosity to MR2; MR1 = 2 prints the table and replies if MR2 ≠ 0.
//!
//! # Who is served
//! Sigma0 cannot learn a thread's address space from its id, so it does not try to limit
//! service to the root server's space. Like Pistachio's sigma0 it serves every thread with
//! a global id whose number is ≥ SystemBase (kernel threads and user threads); memory is
//! owned per requesting thread id, so no thread can obtain pages another thread owns.
//! Refused without reply: local ids (nobody shares sigma0's space), interrupt-thread ids
//! (number < SystemBase), sigma0 itself, and extension requests from anybody but kernel
//! threads and the root server.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod pool;

use abi::kip::MemType;
use abi::msgtag::labels;
use abi::sigma0::{io_reply_item, is_any_page, is_valid_request, reply_item, reply_tag};
use abi::{Acceptor, Fpage, IoFpage, MapItem, MsgTag, ThreadId, Time, Timeouts};
use l4::{kip, println, syscall, utcb};

use pool::{Owner, Pool};

l4::entry!(main);

/// Smallest page we hand out (KIP PageInfo on amd64: 4 KiB).
const MIN_PAGE_LOG2: u64 = 12;

/// The ownership table, in bss (a 12 KiB table does not belong on the 64 KiB stack).
static mut POOL: Pool = Pool::new(Owner::FreeOther);

struct Sigma0 {
    pool: &'static mut Pool,
    me: ThreadId,
    root: ThreadId,
    verbose: u64,
}

fn main() -> ! {
    // SAFETY: `main` runs once, in sigma0's only thread; this is the single reference to
    // POOL ever created.
    let pool = unsafe { &mut *core::ptr::addr_of_mut!(POOL) };
    let mut s0 = Sigma0 {
        pool,
        me: utcb::my_global_id(),
        root: kip::root_server_id(),
        verbose: 0,
    };
    s0.build_pools();
    println!(
        "sigma0: ready ({} KiB conventional memory free)",
        s0.pool.free_conventional_bytes() / 1024
    );
    s0.serve()
}

fn page_range(low: u64, end_exclusive: u64) -> Option<(u64, u64)> {
    let first = low & !0xFFF;
    let last = end_exclusive.checked_add(0xFFF)? & !0xFFF;
    (last > first).then(|| (first, last - 1))
}

impl Sigma0 {
    fn build_pools(&mut self) {
        if kip::page_info().min_page_log2() != Some(MIN_PAGE_LOG2 as u32) {
            println!("sigma0: warning: KIP minimum page size is not 4 KiB");
        }
        for d in kip::memory_descriptors() {
            if d.is_virtual() {
                continue;
            }
            let owner = match d.mem_type() {
                Some(MemType::Conventional) => Owner::FreeConventional,
                Some(MemType::Reserved) => Owner::Kernel,
                Some(MemType::Dedicated | MemType::BootLoader | MemType::Arch) => Owner::FreeOther,
                Some(MemType::Shared) => Owner::Shared,
                Some(MemType::Undefined) | None => Owner::Unavailable,
            };
            if self.pool.set(d.low(), d.high(), owner).is_err() {
                println!(
                    "sigma0: ownership table full; ignoring memory descriptor {:#x}..{:#x}",
                    d.low(),
                    d.high()
                );
            }
        }
        let k = kip::kip();
        let servers = [
            (k.kdebug_mem.low, k.kdebug_mem.high, Owner::Kernel),
            (k.sigma0.low, k.sigma0.high, Owner::Thread(self.me)),
            (k.sigma1.low, k.sigma1.high, Owner::Thread(kip::sigma1_id())),
            (
                k.root_server.low,
                k.root_server.high,
                Owner::Thread(self.root),
            ),
        ];
        for (low, high, owner) in servers {
            if let Some((first, last)) = page_range(low, high)
                && self.pool.set(first, last, owner).is_err()
            {
                println!("sigma0: ownership table full; cannot reserve {first:#x}..{last:#x}");
            }
        }
    }

    fn serve(&mut self) -> ! {
        utcb::accept(Acceptor::UNTYPED_WORDS);
        let mut reply_to = ThreadId::NIL;
        loop {
            let r = if reply_to.is_nil() {
                syscall::ipc(ThreadId::NIL, ThreadId::ANY, Timeouts::NEVER)
            } else {
                syscall::ipc(
                    reply_to,
                    ThreadId::ANY,
                    Timeouts::new(Time::ZERO, Time::NEVER),
                )
            };
            reply_to = ThreadId::NIL;
            if r.tag.error() {
                // A reply that could not be delivered (client gone or not accepting maps):
                // the page stays allocated; just wait again.
                if self.verbose > 0 {
                    println!("sigma0: IPC failed, error code {:#x}", utcb::error_code());
                }
                continue;
            }
            if self.handle(r.from, r.tag) {
                reply_to = r.from;
            }
        }
    }

    /// Handles one request; true if a reply has been loaded into the MRs.
    fn handle(&mut self, from: ThreadId, tag: MsgTag) -> bool {
        if !is_valid_request(tag)
            || !from.is_global()
            || from == self.me
            || kip::is_interrupt_thread(from)
        {
            if self.verbose > 0 {
                println!(
                    "sigma0: ignoring tag {:#x} from {:#x}",
                    tag.raw(),
                    from.raw()
                );
            }
            return false;
        }
        let (mr1, mr2) = (utcb::mr(1), utcb::mr(2));
        let io_request = tag.protocol() == labels::IO_PAGE_FAULT
            || (tag.protocol() == labels::SIGMA0 && Fpage::from_raw(mr1).is_io());
        if io_request {
            return self.io_ports(from, tag, mr1, mr2);
        }
        match tag.protocol() {
            labels::PAGE_FAULT => {
                let page = mr1 & !0xFFF;
                let item = self.allocate(from, page, MIN_PAGE_LOG2, false);
                if item.fpage.is_nil() {
                    println!(
                        "sigma0: refused page fault at {mr1:#x} (ip {mr2:#x}) from {:#x}",
                        from.raw()
                    );
                }
                load_reply(item);
                true
            }
            labels::SIGMA0 => {
                let fpage = Fpage::from_raw(mr1);
                let size_log2 = fpage.size_log2().max(MIN_PAGE_LOG2);
                let item = if is_any_page(fpage) {
                    self.allocate_any(from, size_log2)
                } else {
                    self.allocate(
                        from,
                        fpage.base() & !((1u64 << size_log2.min(63)) - 1),
                        size_log2,
                        true,
                    )
                };
                if !item.fpage.is_nil() && mr2 != 0 {
                    apply_attributes(item.fpage, mr2);
                }
                if self.verbose > 0 {
                    println!(
                        "sigma0: {:#x} asked for {:#x}: {:#x}",
                        from.raw(),
                        mr1,
                        item.fpage.raw()
                    );
                }
                load_reply(item);
                true
            }
            labels::SIGMA0_EXT if from == self.root || kip::is_kernel_thread(from) => match mr1 {
                abi::sigma0::EXT_SET_VERBOSITY => {
                    self.verbose = mr2;
                    false
                }
                abi::sigma0::EXT_DUMP => {
                    self.dump();
                    if mr2 != 0 {
                        utcb::set_mr(0, MsgTag::NIL.raw());
                    }
                    mr2 != 0
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// An IO page fault or IO-fpage request (MR1 = IO fpage): the ports for the root server
    /// and kernel threads, no reply for anybody else. True if a reply is loaded.
    fn io_ports(&mut self, from: ThreadId, tag: MsgTag, mr1: u64, mr2: u64) -> bool {
        let io = IoFpage(mr1);
        if !Fpage::from_raw(mr1).is_io() || (from != self.root && !kip::is_kernel_thread(from)) {
            println!(
                "sigma0: refused ports {:#x} (tag {:#x}, ip {mr2:#x}) to {:#x}: only the root server gets ports",
                mr1,
                tag.raw(),
                from.raw()
            );
            return false;
        }
        let io = IoFpage::new_log2(io.port(), io.size_log2().min(16));
        if self.verbose > 0 {
            println!(
                "sigma0: ports {:#x}+{} to {:#x}",
                io.port(),
                io.ports(),
                from.raw()
            );
        }
        load_reply(io_reply_item(io));
        true
    }

    /// The page(s) `base .. base + 2^size_log2` for `requester`, or a nil map item.
    fn allocate(&mut self, requester: ThreadId, base: u64, size_log2: u64, exact: bool) -> MapItem {
        if size_log2 >= 64 {
            return MapItem::NIL;
        }
        let Some(last) = base.checked_add((1u64 << size_log2) - 1) else {
            return MapItem::NIL;
        };
        if !self.pool.grantable(base, last, requester, exact)
            || self.pool.grant(base, last, requester).is_err()
        {
            return MapItem::NIL;
        }
        reply_item(base, size_log2)
    }

    /// Any free conventional page of 2^`size_log2` bytes for `requester`.
    fn allocate_any(&mut self, requester: ThreadId, size_log2: u64) -> MapItem {
        match self.pool.find_free_conventional(size_log2.min(64) as u32) {
            Some(base) => self.allocate(requester, base, size_log2, false),
            None => MapItem::NIL,
        }
    }

    fn dump(&self) {
        println!("sigma0: {} ranges", self.pool.regions().len());
        for r in self.pool.regions() {
            println!("  {:#018x}..{:#018x} {:?}", r.first, r.last, r.owner);
        }
    }
}

/// Loads the reply: label 0, u = 0, t = 2, the map item (spec 6.7).
fn load_reply(item: MapItem) {
    let [w0, w1] = item.to_words(false);
    utcb::set_mrs(0, &[reply_tag().raw(), w0, w1]);
}

/// Applies memory attributes to `fpage` with MemoryControl (attribute index 0).
fn apply_attributes(fpage: Fpage, attributes: u64) {
    utcb::set_mr(0, fpage.with_rights(abi::Rights::NONE).raw());
    if syscall::memory_control(0, [attributes, 0, 0, 0]) != 1 {
        println!(
            "sigma0: MemoryControl({attributes:#x}) on {:#x} failed",
            fpage.raw()
        );
    }
}
