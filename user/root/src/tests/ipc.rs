//! Ipc / Lipc (spec 5.7): send, receive, call, timeouts, error codes, map/grant/string items, propagation.
//!
//! Placeholder: the checks are added by the lead.

use crate::conformance::Suite;

/// Runs this module's checks.
pub fn run(_s: &mut Suite) {}
