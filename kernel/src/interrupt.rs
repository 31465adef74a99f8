//! Hardware interrupts: the kernel's timer tick and device lines.

use crate::arch::x86_64::trap::TrapFrame;
use crate::platform::pc::pic;
use crate::sync::KernelCell;

pub struct Clock {
    pub tsc_khz: u64,
    pub tick_ns: u64,
    pub ticks: u64,
}

pub static CLOCK: KernelCell<Clock> = KernelCell::new(Clock { tsc_khz: 1, tick_ns: 1_000_000, ticks: 0 });

pub fn init(tsc_khz: u64, tick_ns: u64) {
    *CLOCK.get() = Clock { tsc_khz, tick_ns, ticks: 0 };
}

pub fn handle_irq(irq: usize, _frame: &mut TrapFrame) {
    if irq == 0 {
        CLOCK.get().ticks += 1;
        pic::eoi(0);
        return;
    }
    if (irq == 7 || irq == 15) && pic::is_spurious(irq) {
        if irq == 15 {
            pic::eoi(2);
        }
        return;
    }
    // No handler yet: keep the line quiet.
    pic::mask(irq);
    pic::eoi(irq);
}
