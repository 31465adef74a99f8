//! Per-space limits on kernel memory (docs/decisions/006-kernel-memory-quota.md).
//!
//! X.2 has no quota interface, yet a space that receives mappings makes the kernel allocate
//! page-table frames (from the pool) and mapping-database nodes on its behalf. Each
//! non-privileged space may hold at most `table_frames` page-table frames and `mappings`
//! nodes; the operation that would exceed the limit fails for the space that would own the
//! memory (the receiver of a map or grant), and nobody else. Privileged spaces (sigma0 and
//! the root server) have no limit. The limits and the size of the mapping database come from
//! the kernel command line (`boot/options.rs`). The IO mapping database (`io_space.rs`) has
//! its own capacity (`ionodes`) and per-space limit (`ioquota`) under the same rules.
//!
//! Owns: the limits, fixed at boot. The counters live in each `Space`.

use crate::sync::KernelCell;

/// Share of the pool (page-table frames) and of the mapping database (nodes) one
/// non-privileged space may use by default: one eighth.
const DEFAULT_SHARE: u64 = 8;
/// Default size of the mapping database: this fraction of the pool size, in bytes.
const DEFAULT_NODES_FRACTION: u64 = 16;
/// Default size of the IO mapping database (aligned port blocks, sigma0's anchors included).
const DEFAULT_IO_NODES: u64 = 4096;

#[derive(Clone, Copy)]
pub struct Limits {
    /// Nodes of the mapping database (its whole capacity).
    pub nodes: u64,
    /// Page-table frames one non-privileged space may hold.
    pub table_frames: u64,
    /// Mappings (nodes) one non-privileged space may hold.
    pub mappings: u64,
    /// Nodes of the IO mapping database (its whole capacity).
    pub io_nodes: u64,
    /// IO mappings (port blocks) one non-privileged space may hold.
    pub io_mappings: u64,
}

static LIMITS: KernelCell<Limits> = KernelCell::new(Limits {
    nodes: 0,
    table_frames: 0,
    mappings: 0,
    io_nodes: 0,
    io_mappings: 0,
});

/// Sets the limits from the command line: `mapnodes=<n>` (database capacity, default pool
/// size / 16 in bytes of nodes), `ptquota=<size>` (page-table memory per space, default pool
/// size / 8), `mapquota=<n>` (mappings per space, default capacity / 8), `ionodes=<n>` (IO
/// database capacity, default 4096), `ioquota=<n>` (IO mappings per space, default
/// `ionodes` / 8).
pub fn init(cmdline: &str, pool_bytes: u64, node_size: u64) {
    use crate::boot::options::{size, value};
    let nodes = value(cmdline, "mapnodes")
        .and_then(size)
        .unwrap_or(pool_bytes / DEFAULT_NODES_FRACTION / node_size)
        .clamp(1, u32::MAX as u64 - 2);
    let table_frames = value(cmdline, "ptquota")
        .and_then(size)
        .map(|b| b / 4096)
        .unwrap_or(pool_bytes / 4096 / DEFAULT_SHARE);
    let mappings = value(cmdline, "mapquota")
        .and_then(size)
        .unwrap_or(nodes / DEFAULT_SHARE);
    let io_nodes = value(cmdline, "ionodes")
        .and_then(size)
        .unwrap_or(DEFAULT_IO_NODES)
        .clamp(1, u32::MAX as u64 - 2);
    let io_mappings = value(cmdline, "ioquota")
        .and_then(size)
        .unwrap_or(io_nodes / DEFAULT_SHARE);
    // SAFETY: the only borrow of LIMITS in use; it ends before any call that touches it.
    *(unsafe { LIMITS.get() }) = Limits {
        nodes,
        table_frames,
        mappings,
        io_nodes,
        io_mappings,
    };
}

pub fn limits() -> Limits {
    // SAFETY: the only borrow of LIMITS in use; it ends before any call that touches it.
    *(unsafe { LIMITS.get() })
}
