//! ThreadControl (spec 5.3): create, activate, modify, delete, interrupt association.
//!
//! Placeholder: the checks are added by the lead.

use crate::conformance::Suite;

/// Runs this module's checks.
pub fn run(_s: &mut Suite) {}
