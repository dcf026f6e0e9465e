//! Shared helpers of the integration tests.

pub mod cdp;
pub mod docker;
pub mod fake;
