//! Tests that drive more than one module.
