//! Tests that drive more than one module.

pub(crate) mod whole_boot;
