//! The sigma0 protocol (spec 6.7): GetPage, GetAny, refusals.
//!
//! Placeholder: the checks are added by the lead.

use crate::conformance::Suite;

/// Runs this module's checks.
pub fn run(_s: &mut Suite) {}
