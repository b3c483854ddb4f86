//! Tests that drive more than one module.

mod whole_boot;
