//! Kernel uevents: the datagram parser, the netlink listener and a sysfs sweep.
//!
//! # Coldplug design
//!
//! Devices that existed before the listener started are found with a **passive sysfs sweep**
//! ([`sweep`], [`sweep_block`]): the `uevent` file of every device directory is read and turned
//! into a synthetic `add` event. nlplug-findfs instead writes `add` into every trigger file,
//! which makes the kernel replay the whole tree as a burst of real events. Reading is better
//! for PID 1:
//!
//! * no event storm, so the receive buffer is not flooded during boot;
//! * the order is deterministic (sorted paths, parents before children);
//! * the same routine recovers from `ENOBUFS` ([`RecvError::Overflow`]): after an overflow the
//!   caller sweeps again instead of giving up, as nlplug-findfs did.
//!
//! The caller must open the [`UeventSocket`] **before** sweeping, so a device that appears
//! during the sweep is still reported by the socket. A device may therefore be seen twice
//! (once from the sweep, once as an event); handlers de-duplicate by DEVPATH.
//!
//! # Trust
//!
//! Only datagrams from the kernel (netlink port 0, `SCM_CREDENTIALS` uid 0) are accepted, and
//! every event is validated before it is returned: a `DEVNAME` that would leave `/dev`, a
//! relative or `..`-containing DEVPATH, or non-numeric `MAJOR`/`MINOR` reject the event.

mod event;
mod socket;
mod sweep;

#[cfg(test)]
mod tests;

pub use event::{parse, Action, ParseError, Uevent, MAX_PAIRS, MAX_VALUE_LEN};
pub use socket::{RecvError, SocketError, UeventSocket};
pub use sweep::{sweep, sweep_block, sweep_buses, MAX_DEPTH};

/// Parses arbitrary bytes and reads the result; for fuzz targets, where any panic is a bug.
pub fn fuzz(data: &[u8]) {
    if let Ok(event) = parse(data) {
        let _ = (event.action.as_str(), event.get("MODALIAS"));
    }
}
