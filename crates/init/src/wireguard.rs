//! `wireguard=IF;ADDR[,ADDR..][;CONF]`: a WireGuard tunnel, as Alpine's
//! `setup_wireguard` makes it (mkinitfs' `initramfs-init.in`; reference
//! §3.4 step 15): the `wireguard` module, `ip link add IF type
//! wireguard`, `wg setconf IF CONF` (CONF default
//! `/etc/wireguard/initrd.conf`, mkinitfs' `wireguard` feature ships it
//! with `/usr/bin/wg`), the link up, and each address added. Links and
//! addresses go over rtnetlink here, not through `ip`.
//!
//! Alpine configures the network first and then the tunnel, before its
//! device discovery; here both come after discovery, once coldplug has
//! loaded the NIC's driver ([`crate::boot`]).

use crate::failure::chain;
use crate::layout::Layout;
use crate::log;
use crate::platform::Platform;
use alpinit_cmdline::Wireguard;
use alpinit_kmod::Loader;

/// Where mkinitfs' `wireguard` feature puts the tool.
pub const WG: &str = "/usr/bin/wg";

/// Alpine's words when the tunnel could not be made.
pub const FAILED: &str = "Failed to setup wireguard tunnel.";

/// Makes the tunnel; on a failure that leaves none, says Alpine's line
/// and why. The boot goes on either way, as Alpine's does.
pub fn setup(p: &Platform<'_>, layout: &Layout, loader: &Loader, wg: &Wireguard) {
    match tunnel(p, layout, loader, wg) {
        Ok(()) => log::info(&format!(
            "wireguard: {} up ({})",
            wg.device,
            wg.addresses.join(", ")
        )),
        Err(why) => {
            log::error(&format!("wireguard: {why}"));
            log::console(&format!("{FAILED}\n{why}\n"));
        }
    }
}

fn tunnel(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &Loader,
    wg: &Wireguard,
) -> Result<(), String> {
    let dev = wg.device.as_str();
    if !alpinit_net::valid_interface_name(dev) {
        return Err(format!("{dev:?} cannot name an interface"));
    }
    loader
        .load_now("wireguard")
        .map_err(|e| format!("module wireguard: {}", chain(&e)))?;
    let links = p.net.links();
    links
        .add_link(dev, "wireguard")
        .map_err(|e| format!("creating {dev}: {e}"))?;
    set_config(p, layout, wg);
    links
        .set_up(dev, true)
        .map_err(|e| format!("setting {dev} up: {e}"))?;
    for text in &wg.addresses {
        match alpinit_net::parse_address(text) {
            Some((address, prefix)) => {
                if let Err(e) = links.add_address(dev, address, prefix) {
                    log::warn(&format!("wireguard: adding {text} to {dev}: {e}"));
                }
            }
            None => log::warn(&format!(
                "wireguard: {text:?} is not ADDRESS[/PREFIX]: not added to {dev}"
            )),
        }
    }
    Ok(())
}

/// `wg setconf DEV CONF`: keys and peers. Without the tool or the file the
/// link still comes up, with neither (Alpine's script goes on too). Run
/// as the assembly helpers are, bounded ([`crate::assemble::helper`]).
fn set_config(p: &Platform<'_>, layout: &Layout, wg: &Wireguard) {
    let dev = wg.device.as_str();
    if !crate::assemble::has_tool(layout, WG) {
        log::warn(&format!(
            "wireguard: no {WG} in this initramfs (mkinitfs feature wireguard): {dev} has no keys or peers"
        ));
        return;
    }
    if !layout.path(&wg.config).is_file() {
        log::warn(&format!(
            "wireguard: no {} in this initramfs: {dev} has no keys or peers",
            wg.config
        ));
        return;
    }
    if let Err(e) = crate::assemble::helper(p, layout, WG, &["setconf", dev, &wg.config]) {
        log::warn(&format!("wireguard: {}", chain(&e)));
    }
}
