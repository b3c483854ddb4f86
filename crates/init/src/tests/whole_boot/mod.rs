//! Whole boots without a VM: the real boot code from the first mount to the
//! final exec, on a [`machine::Machine`] (a temp tree and the recording
//! platform). Each test asserts what the boot did to the machine: mounts,
//! module loads, spawned programs, files in the new root, the exec.

pub(crate) mod machine;
mod record;

mod aoe;
mod assemble;
mod consoles;
mod critical;
mod crypt;
mod diskless;
mod failures;
mod findfs;
mod hostile;
mod named_modules;
mod nbd;
mod network;
mod rollback;
mod root_mode;
mod shell;
mod signed;
mod tail;
mod upstream;
mod wireguard;
