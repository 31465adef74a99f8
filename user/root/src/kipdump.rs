//! Mode `kipdump`: prints the Kernel Interface Page as raw words, for the host-side comparison
//! with the live KIP of the reference kernel (xtask `kip-reference` tests, decision 010):
//!
//! * `kipword <offset> <value>`: every word of the 0x240-byte KIP header;
//! * `kipproc <offset> <value>`: the words of processor descriptor 0;
//! * `kipkdesc <offset> <value>`: the four words of the kernel descriptor;
//! * `kipversion <string>`, `kipfeature <string>` (one per feature string);
//! * `kipmem <index> <word0> <word1>`: every memory descriptor;
//!
//! then `kipdump: done` and the end of the run (`exit-success`).

use l4::{kdb, kip, println};

/// Reads the word at byte `offset` of the KIP.
fn word(offset: u64) -> u64 {
    // SAFETY: offsets below the KIP area size (checked by the callers: the header and the
    // descriptors lie in the first page); the KIP stays mapped read-only.
    unsafe { core::ptr::read_volatile((kip::kip_address() + offset) as *const u64) }
}

pub fn run() {
    let k = kip::kip();
    for off in (0..0x240u64).step_by(8) {
        println!("kipword {off:#05x} {:#018x}", word(off));
    }
    if k.proc_desc_ptr + 32 <= 4096 {
        for i in 0..4u64 {
            let off = k.proc_desc_ptr + 8 * i;
            println!("kipproc {:#05x} {:#018x}", 8 * i, word(off));
        }
    }
    if k.kernel_desc_ptr + 32 <= 4096 {
        for i in 0..4u64 {
            let off = k.kernel_desc_ptr + 8 * i;
            println!("kipkdesc {:#05x} {:#018x}", 8 * i, word(off));
        }
    }
    println!("kipversion {}", kip::version_string());
    for f in kip::features() {
        println!("kipfeature {f}");
    }
    for (i, d) in kip::memory_descriptors().iter().enumerate() {
        println!("kipmem {i} {:#018x} {:#018x}", d.word0, d.word1);
    }
    println!("kipdump: done");
    kdb::enter("exit-success");
}
