//! Platform devices.

pub mod pc;
