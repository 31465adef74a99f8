//! User-level device drivers of the demo: threads in the root space that receive their device's
//! interrupt as IPC from the interrupt thread (spec 6.5) and use `in`/`out` directly on ports
//! the root's space holds (IO-fpages, spec 6.6): the root thread asks sigma0 for them
//! ([`claim_ports`]) before it starts the drivers, since sigma0 gives ports to the root
//! thread only.
//!
//! * [`kbd`]: PS/2 keyboard on IRQ 1, scan-code set 1.
//! * [`com1`]: COM1 receive interrupt on IRQ 4, echoes what is typed on the serial line.
//!
//! A driver's loop: `Receive(irq)` → service the device → acknowledge by sending to the
//! interrupt thread (which unmasks the line) and wait again, in one Ipc.

pub mod com1;
pub mod kbd;

use abi::{MsgTag, ThreadId, Time, Timeouts};
use l4::{msg, println, syscall, utcb};

/// The drivers' ports: COM1 0x3F8..0x3FF, PS/2 data 0x60 and status/command 0x64.
pub const PORTS: [(u64, u64); 3] = [(0x3F8, 3), (0x60, 0), (0x64, 0)];

/// Asks sigma0 for the drivers' [`PORTS`] (from the root thread). False if one was refused.
pub fn claim_ports() -> bool {
    let mut ok = true;
    for (port, log2) in PORTS {
        if let Err(e) = l4::sigma0::get_io(port, log2) {
            println!("drivers: sigma0 refused ports {port:#x} (2^{log2}): {e:?}");
            ok = false;
        }
    }
    ok
}

/// `inb`.
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: port input on a port the root's space holds (an IO page fault otherwise). No
    // memory is touched.
    unsafe { core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack)) };
    v
}

/// `outb`.
pub fn outb(port: u16, v: u8) {
    // SAFETY: port output to a device this driver owns (its port mapped to the root's
    // space). No memory is touched.
    unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) };
}

/// Associates IRQ `irq` with `handler` (`ThreadControl(irq, irq, nil, handler, -1)`).
pub fn associate(irq: u64, handler: ThreadId) -> bool {
    let it = ThreadId::interrupt(irq);
    let ok = syscall::thread_control(it, it, ThreadId::NIL, handler, u64::MAX) == 1;
    if !ok {
        println!(
            "drivers: cannot associate IRQ {irq} with {:#x} (error {})",
            handler.raw(),
            utcb::error_code()
        );
    }
    ok
}

/// Label of a driver's "initialised" message to the root.
pub const READY: u64 = 0x5244;

/// Tells the root that this driver is initialised.
pub fn report_ready() {
    utcb::set_mr(0, MsgTag::new(READY, 0, 0).raw());
    let _ = msg::send_timeout(crate::demo::spaces::root(), Time::period_micros(2_000_000));
}

/// The driver loop: waits for interrupt `irq`, calls `service`, acknowledges, forever.
pub fn serve(irq: u64, mut service: impl FnMut()) -> ! {
    let it = ThreadId::interrupt(irq);
    let mut r = msg::receive(it);
    loop {
        match r {
            Ok(_) => {
                service();
                // Acknowledge (send phase, zero timeout: the interrupt thread waits for it)
                // and wait for the next interrupt.
                utcb::set_mr(0, 0);
                r = msg::ipc(it, it, Timeouts::new(Time::ZERO, Time::NEVER)).map(|r| r.tag);
            }
            Err(e) => {
                println!("drivers: IRQ {irq}: IPC failed ({:?}); retrying", e.error());
                msg::sleep(Time::period_micros(100_000));
                r = msg::receive(it);
            }
        }
    }
}
