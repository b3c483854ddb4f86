//! The QEMU scenario harness for alpinit: media builders, a QEMU runner
//! that captures the serial console, the report `report-init` prints in the
//! new root, and the scenarios themselves.

pub mod alpine_repo;
pub mod console;
pub mod file_server;
pub mod fixtures;
pub mod ldd;
pub mod media;
pub mod netboot;
pub mod qemu;
pub mod report;
pub mod scenarios;
pub mod test_ca;
pub mod ustar;
