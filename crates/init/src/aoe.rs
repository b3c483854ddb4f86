//! ATA over Ethernet (`aoe=`, `aoe_iflist=`, `aoe_mtu=`), as Alpine's
//! init sets it up (`initramfs-init.in`, the `KOPT_aoe` block; reference
//! §3.4 step 17): the listed interfaces up with their MTU, the `aoe`
//! module with `aoe_iflist=`, and for each `aoe=SHELF.SLOT` target a
//! `discover` written to `/dev/etherd/discover` until
//! `/dev/etherd/eSHELF.SLOT` exists.
//!
//! Alpine does this before its device discovery, so the interfaces must
//! already exist (their drivers built in or in `modules=`) and it waits for
//! a target without a bound. Here it runs inside discovery
//! ([`crate::discovery`]): an interface is raised when it appears (its
//! driver loaded by coldplug like any other), a `discover` follows each
//! raised interface and then one a second while a target is missing, and
//! a missing target keeps the wait going only within discovery's bounds
//! ([`crate::pending::Pending::AoeTargetMissing`]).

use crate::failure::chain;
use crate::layout::Layout;
use crate::log;
use crate::platform::Platform;
use alpinit_cmdline::Aoe;
use alpinit_kmod::Loader;
use alpinit_uevent::{Action, Uevent};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Alpine's loop writes a `discover` and sleeps a second.
const REDISCOVER: Duration = Duration::from_secs(1);

/// The module option the `aoe` module gets (Alpine's `modprobe aoe
/// aoe_iflist=...`): the interfaces it may use.
pub fn module_options(aoe: &Aoe) -> Option<String> {
    (!aoe.interfaces.is_empty()).then(|| format!("aoe_iflist={}", aoe.interfaces.join(",")))
}

/// Says once per boot what of the options cannot be used.
pub fn announce(aoe: &Aoe) {
    for t in &aoe.bad_targets {
        log::warn(&format!(
            "aoe: target {t:?} is not SHELF.SLOT (such as 0.1): not waited for"
        ));
    }
    if let Some(mtu) = &aoe.bad_mtu {
        log::warn(&format!("aoe_mtu={mtu}: not a number, MTU left as it is"));
    }
}

/// One discovery's AoE state.
#[derive(Debug)]
pub struct Setup {
    aoe: Aoe,
    /// Interfaces this discovery raised (or found up with their MTU).
    ready: Vec<String>,
    /// A `discover` is owed: an interface was raised since the last one.
    discover_due: bool,
    last_discover: Option<Instant>,
}

impl Setup {
    pub fn new(aoe: Aoe) -> Self {
        Setup {
            aoe,
            ready: Vec::new(),
            discover_due: false,
            last_discover: None,
        }
    }

    /// At discovery's start: the module, and the interfaces already there.
    pub fn start(&mut self, p: &Platform<'_>, layout: &Layout, loader: &Loader) {
        loader.request("aoe");
        for iface in self.aoe.interfaces.clone() {
            if layout.sys().join("class/net").join(&iface).exists() {
                self.interface_added(p, layout, &iface);
            }
        }
    }

    /// A uevent: a network interface that appeared is raised when it is
    /// one of `aoe_iflist=`.
    pub fn event(&mut self, p: &Platform<'_>, layout: &Layout, ev: &Uevent) {
        if ev.subsystem.as_deref() != Some("net") || ev.action != Action::Add {
            return;
        }
        if let Some(iface) = ev.get("INTERFACE") {
            self.interface_added(p, layout, iface);
        }
    }

    /// A network interface appeared: raised (with the MTU) when it is one
    /// of `aoe_iflist=`. Without a list, Alpine leaves links alone.
    fn interface_added(&mut self, p: &Platform<'_>, layout: &Layout, iface: &str) {
        if !self.aoe.interfaces.iter().any(|i| i == iface) || self.ready.iter().any(|i| i == iface)
        {
            return;
        }
        self.ready.push(iface.to_owned());
        let sys = layout.sys();
        let links = p.net.links();
        if !alpinit_net::link_is_up(&sys, iface) {
            match links.set_up(iface, true) {
                Ok(()) => log::info(&format!("aoe: {iface} up")),
                Err(e) => log::warn(&format!("aoe: setting {iface} up: {e}")),
            }
        }
        if let Some(mtu) = self.aoe.mtu {
            if alpinit_net::link_mtu(&sys, iface) != Some(mtu) {
                match links.set_mtu(iface, mtu) {
                    Ok(()) => log::info(&format!("aoe: {iface} mtu {mtu}")),
                    Err(e) => log::warn(&format!("aoe: setting the MTU of {iface} to {mtu}: {e}")),
                }
            }
        }
        self.discover_due = true;
    }

    /// Each turn of discovery's loop: a `discover` after an interface came
    /// up, and once a second while a target is missing, as soon as the
    /// module's control file exists.
    pub fn tick(&mut self, p: &Platform<'_>, layout: &Layout) {
        let now = p.clock.now();
        // The stat of each target only once a second is up.
        let second_passed = self
            .last_discover
            .is_none_or(|t| now.saturating_duration_since(t) >= REDISCOVER);
        if !(self.discover_due || second_passed && self.missing_target(layout).is_some()) {
            return;
        }
        let control = layout.dev().join("etherd/discover");
        if !control.exists() {
            return;
        }
        self.discover_due = false;
        self.last_discover = Some(now);
        if let Err(e) = p.sysfs.write_attr(&control, "discover") {
            log::warn(&format!(
                "aoe: writing {}: {}",
                control.display(),
                chain(&e)
            ));
        }
    }

    /// The first `aoe=` target without its device node yet.
    pub fn missing_target(&self, layout: &Layout) -> Option<PathBuf> {
        self.aoe
            .targets
            .iter()
            .map(|t| layout.dev().join(format!("etherd/e{t}")))
            .find(|node| !node.exists())
    }
}
