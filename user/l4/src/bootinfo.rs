//! This program's command line, from the generic bootinfo (spec 7.4, conventions "Boot
//! modules").
//!
//! KIP word BootInfo holds the *physical* address of the generic bootinfo. We ask sigma0
//! for the page(s) holding it ([`crate::sigma0::get_page`]; sigma0 maps physical = virtual),
//! parse the records with [`abi::bootinfo`] and take the SimpleExec record of the root
//! server: the one whose entry point equals the KIP's root-server IP, else the second
//! SimpleExec record (module index 1; module 0 is sigma0). Only the root server can do
//! this (sigma0 serves it; other programs have no bootinfo of their own).

use abi::Fpage;
use abi::bootinfo::{BootInfo, HEADER_SIZE, Record};

use crate::{kip, sigma0};

/// Largest bootinfo we map (16 pages).
const MAX_BOOTINFO_BYTES: u64 = 16 * 4096;

/// Why the command line could not be found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// KIP BootInfo is 0.
    NoBootInfo,
    /// Sigma0 did not give us the page(s).
    NotMapped(sigma0::Sigma0Error),
    /// Bad magic/version or malformed records.
    Malformed,
    /// No SimpleExec record for the root server.
    NoRecord,
}

/// Maps `[addr, addr + len)` (page granular) through sigma0 at the same address.
fn map_range(addr: u64, len: u64) -> Result<(), BootInfoError> {
    let mut page = addr & !0xFFF;
    while page < addr + len {
        sigma0::get_page(Fpage::new_log2(page, 12)).map_err(BootInfoError::NotMapped)?;
        page += 4096;
    }
    Ok(())
}

/// The generic bootinfo as a byte slice (mapped through sigma0 on first use; repeated
/// calls ask sigma0 again, which hands the same pages back to their owner).
pub fn bootinfo_bytes() -> Result<&'static [u8], BootInfoError> {
    let addr = kip::kip().boot_info;
    if addr == 0 {
        return Err(BootInfoError::NoBootInfo);
    }
    map_range(addr, HEADER_SIZE as u64)?;
    // SAFETY: the header is mapped at virtual = physical `addr` by sigma0 and stays mapped
    // (nobody unmaps sigma0's pages from us); word 2 is the total size.
    let size = unsafe { ((addr + 16) as *const u64).read_volatile() };
    let size = size.clamp(HEADER_SIZE as u64, MAX_BOOTINFO_BYTES);
    map_range(addr, size)?;
    // SAFETY: `addr .. addr + size` is now mapped read/write for us and never unmapped; we
    // only read it.
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, size as usize) })
}

/// The root server's full command line (file name first), e.g. `root conformance`.
pub fn command_line() -> Result<&'static str, BootInfoError> {
    let bi = BootInfo::parse(bootinfo_bytes()?).map_err(|_| BootInfoError::Malformed)?;
    let root_ip = kip::kip().root_server.ip;
    let mut by_ip = None;
    let mut second = None;
    let mut execs = 0;
    for rec in bi.records() {
        let Ok(Record::SimpleExec { exec, cmdline }) = rec else {
            continue;
        };
        let line = cmdline.unwrap_or(&[]);
        if exec.initial_ip == root_ip && by_ip.is_none() {
            by_ip = Some(line);
        }
        if execs == 1 {
            second = Some(line);
        }
        execs += 1;
    }
    let line = by_ip.or(second).ok_or(BootInfoError::NoRecord)?;
    core::str::from_utf8(line).map_err(|_| BootInfoError::Malformed)
}

/// The arguments: the command line without its first word (the file name), trimmed.
/// `root conformance` → `conformance`; `root` → ``.
pub fn arguments() -> Result<&'static str, BootInfoError> {
    let line = command_line()?.trim();
    Ok(match line.split_once(char::is_whitespace) {
        Some((_, rest)) => rest.trim(),
        None => "",
    })
}
