//! Physical memory and the serial console. While the loader runs, the first 4 GiB are
//! identity-mapped (`entry.rs`), so a physical address is a pointer; the loader owns the whole
//! machine and nothing else runs, which is the invariant every access below relies on.

/// COM1, written by polling (no interrupts); QEMU and PCs have it at 0x3F8.
pub struct Console;

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                put(b'\r');
            }
            put(b);
        }
        Ok(())
    }
}

fn put(b: u8) {
    for _ in 0..100_000 {
        let lsr: u8;
        // SAFETY: reading the UART line-status register has no side effect on memory.
        unsafe { core::arch::asm!("in al, dx", in("dx") 0x3FDu16, out("al") lsr) };
        if lsr & 0x20 != 0 {
            break;
        }
    }
    // SAFETY: writing the UART transmit register.
    unsafe { core::arch::asm!("out dx, al", in("dx") 0x3F8u16, in("al") b) };
}

/// `len` bytes of physical memory at `addr`.
pub fn bytes(addr: u64, len: u64) -> &'static [u8] {
    // SAFETY: identity map of 0..4 GiB (callers stay below 1 GiB or inside module files the
    // first-stage loader placed in RAM); the loader is the only code running.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) }
}

/// `len` bytes of physical memory at `addr`, writable. Callers check the range against
/// everything in use (the loader's image, module files, loaded images) first.
pub fn bytes_mut(addr: u64, len: u64) -> &'static mut [u8] {
    // SAFETY: as for `bytes`; the ranges written were checked to be free by the caller.
    unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len as usize) }
}

pub fn rd32(addr: u64) -> u32 {
    u32::from_le_bytes(bytes(addr, 4).try_into().unwrap_or([0; 4]))
}

pub fn rd64(addr: u64) -> u64 {
    u64::from_le_bytes(bytes(addr, 8).try_into().unwrap_or([0; 8]))
}

pub fn wr32(addr: u64, v: u32) {
    bytes_mut(addr, 4).copy_from_slice(&v.to_le_bytes());
}

pub fn wr64(addr: u64, v: u64) {
    bytes_mut(addr, 8).copy_from_slice(&v.to_le_bytes());
}

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// The loader's own image including BSS, stack and page tables: `[start, end)`.
pub fn own_image() -> (u64, u64) {
    (
        &raw const __image_start as u64,
        &raw const __image_end as u64,
    )
}
