//! The kernel debugger: an interactive shell on the serial console, an event trace, and user
//! single-step and breakpoints (cargo feature `kdb`, on by default).
//!
//! Owns: the debugger's options (`debugger=` on the kernel command line), its entry points, and
//! everything in this directory. It reads kernel state only through `view.rs` (the one file to
//! port when the core's data structures change) and changes nothing but a thread's single-step
//! flag (`view.rs`), the debug registers (`hw.rs`) and the entry code's dispatch vectors
//! (`trace.rs`).
//!
//! Entry points, each a single call from the kernel (no-ops when the feature is off):
//! * [`on_irq`] (timer tick, COM1 interrupt): polls COM1 for ESC (while no user driver owns
//!   IRQ 4) or a serial BREAK (always; seen before the driver's handler runs), and enters the
//!   shell;
//! * [`after_kdb_call`] (user `int3` KDB call): KDB_Enter from a privileged space enters the
//!   shell when `debugger=enter`;
//! * [`on_kernel_fault`], [`on_panic`]: enter the shell when `debugger=fault`;
//! * [`on_user_fault`]: an undeliverable user fault enters the shell when `debugger=ufault`.
//!
//! The event trace (`trace.rs`) and the user single-step and breakpoints cost nothing while
//! off: they work by swapping the two dispatch vectors of the entry code
//! (`syscall_dispatch_vector`, `trap_dispatch_vector`) for wrappers, so no instruction is added
//! to any path until one of them is in use.

use crate::arch::trap::TrapFrame;

#[cfg(feature = "kdb")]
mod console;
#[cfg(feature = "kdb")]
mod hw;
#[cfg(feature = "kdb")]
mod shell;
#[cfg(feature = "kdb")]
mod trace;
#[cfg(feature = "kdb")]
mod view;

#[cfg(feature = "kdb")]
use crate::sync::KernelCell;

/// Which events enter the shell (`debugger=esc,enter,fault,ufault`, `debugger=all`, `debugger=off`).
#[cfg(feature = "kdb")]
#[derive(Clone, Copy)]
struct Options {
    parsed: bool,
    esc: bool,
    enter: bool,
    fault: bool,
    ufault: bool,
}

#[cfg(feature = "kdb")]
static OPTIONS: KernelCell<Options> = KernelCell::new(Options {
    parsed: false,
    esc: true,
    enter: false,
    fault: false,
    ufault: false,
});

#[cfg(feature = "kdb")]
fn options() -> Options {
    // SAFETY: the only borrow of OPTIONS in use; it ends before any call that touches it.
    let o = unsafe { OPTIONS.get() };
    if !o.parsed {
        o.parsed = true;
        // SAFETY: the only borrow of BOOT in use; it ends before any call that touches it.
        let cmdline = (unsafe { crate::boot::multiboot::BOOT.get() }).cmdline();
        if let Some(v) = crate::boot::options::value(cmdline, "debugger") {
            *o = Options {
                parsed: true,
                esc: false,
                enter: false,
                fault: false,
                ufault: false,
            };
            for w in v.split(',') {
                match w {
                    "esc" => o.esc = true,
                    "enter" => o.enter = true,
                    "fault" => o.fault = true,
                    "ufault" => o.ufault = true,
                    "all" => {
                        o.esc = true;
                        o.enter = true;
                        o.fault = true;
                        o.ufault = true;
                    }
                    _ => {}
                }
            }
        }
    }
    *o
}

/// Why the shell was entered.
#[cfg(feature = "kdb")]
#[derive(Clone, Copy)]
pub enum Reason<'a> {
    Key,
    Break,
    UserEnter,
    KernelFault,
    Panic,
    UserFault(&'a str),
    Step,
    Breakpoint,
}

/// A hardware interrupt, before the kernel handles it: on the timer tick (IRQ 0) and on COM1's
/// line (IRQ 4, when a user driver enabled it), break-in by ESC or BREAK on the serial line.
#[inline]
pub fn on_irq(irq: usize, frame: &mut TrapFrame) {
    #[cfg(feature = "kdb")]
    if irq == 0 || irq == COM1_IRQ {
        poll_serial(irq, frame);
    }
    #[cfg(not(feature = "kdb"))]
    let _ = (irq, frame);
}

#[cfg(feature = "kdb")]
const COM1_IRQ: usize = 4;

/// The break-in poll, out of line so that the interrupt path stays as the compiler had it.
#[cfg(feature = "kdb")]
#[inline(never)]
fn poll_serial(irq: usize, frame: &mut TrapFrame) {
    if !options().esc {
        return;
    }
    let lsr = crate::platform::serial::line_status();
    if lsr == 0xFF {
        return; // no UART: nothing to poll
    }
    if lsr & 0x10 != 0 {
        // A BREAK also delivers a 0 byte: it belongs to the break, not to a driver.
        let _ = crate::platform::serial::read_raw();
        return shell::enter(Reason::Break, Some(frame));
    }
    if irq == 0 && lsr & 1 != 0 && !view::irq_has_handler(COM1_IRQ) {
        match crate::platform::serial::read_raw() {
            Some(0x1B) => shell::enter(Reason::Key, Some(frame)),
            Some(b) => crate::platform::serial::push_back(b),
            None => {}
        }
    }
}

/// After a user `int3` KDB call was handled: KDB_Enter (`int3; jmp`) from a privileged space
/// enters the shell when `debugger=enter`.
#[cfg_attr(feature = "kdb", cold, inline(never))]
pub fn after_kdb_call(frame: &mut TrapFrame) {
    #[cfg(feature = "kdb")]
    {
        if !options().enter || !view::current_privileged() {
            return;
        }
        let rd = crate::arch::usercopy::read_u8;
        let is_enter = match rd(frame.rip) {
            Some(0xEB) => true,
            Some(0x90) => rd(frame.rip + 1) == Some(0xEB),
            _ => false,
        };
        if is_enter {
            shell::enter(Reason::UserEnter, Some(frame));
        }
    }
    #[cfg(not(feature = "kdb"))]
    let _ = frame;
}

/// An unexpected exception in kernel mode (after its register dump).
#[cfg_attr(feature = "kdb", cold, inline(never))]
pub fn on_kernel_fault(frame: &mut TrapFrame) {
    #[cfg(feature = "kdb")]
    if options().fault {
        shell::enter(Reason::KernelFault, Some(frame));
    }
    #[cfg(not(feature = "kdb"))]
    let _ = frame;
}

/// A kernel panic (after its message).
#[cfg_attr(feature = "kdb", cold, inline(never))]
pub fn on_panic() {
    #[cfg(feature = "kdb")]
    if options().fault {
        shell::enter(Reason::Panic, None);
    }
}

/// A user fault that could not be delivered (the thread is about to be halted).
#[cfg_attr(feature = "kdb", cold, inline(never))]
pub fn on_user_fault(frame: &mut TrapFrame, why: &str) {
    #[cfg(feature = "kdb")]
    if options().ufault {
        shell::enter(Reason::UserFault(why), Some(frame));
    }
    #[cfg(not(feature = "kdb"))]
    let _ = (frame, why);
}
