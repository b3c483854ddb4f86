//! The packages phase (Alpine §3.6 steps 9-11): the package list (command
//! line, overlay world, default services), the new root's keys, arch and
//! clock service, and `apk add` into it when the image has `/sbin/apk`.

use crate::keys;
use crate::layout::Layout;
use crate::log;
use crate::network::Network;
use crate::overlay::{self, Applied};
use crate::packages;
use crate::platform::Platform;
use alpinit_cmdline::Cmdline;

/// `pkgs=`, the overlay's world, the default services' packages when the
/// overlay asks for them (or there is none), `alpine-base`, then `acct`
/// when boot charting runs and `openssl` when the image carries modloop
/// signing keys, in Alpine's order.
pub fn packages(layout: &Layout, cmdline: &Cmdline, applied: &Applied, chart: bool) -> Vec<String> {
    let mut pkgs = cmdline.pkgs();
    pkgs.extend(overlay::world(layout));
    let defaults = applied.members.is_none() || packages::wants_default_services(layout);
    if defaults {
        match packages::default_services(layout, cmdline) {
            Ok(extra) => pkgs.extend(extra),
            Err(e) => log::warn(&format!("default boot services: {e}")),
        }
    }
    pkgs.push("alpine-base".to_owned());
    if chart {
        pkgs.push("acct".to_owned());
    }
    if keys::has_modloop_keys(layout) {
        pkgs.push("openssl".to_owned());
    }
    pkgs
}

/// Installs `pkgs`; returns the repositories used (for the new root's
/// `/etc/apk/repositories`).
pub fn run(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &Cmdline,
    pkgs: &[String],
    net: &Network,
    applied: &Applied,
) -> Vec<String> {
    // Keys, arch, clock and modloop keys are set up whether or not the
    // image has apk, as Alpine does.
    keys::install_apk_keys(layout);
    let repos = packages::find_repositories(layout, &cmdline.alpine_repo());
    keys::fix_apk_arch(layout, keys::apk_arch());
    packages::add_clock_service(layout);
    keys::install_modloop_keys(layout);
    let apk = layout.path("/sbin/apk");
    if apk.is_file() {
        let progress = log::Progress::begin("Installing packages to root filesystem");
        packages::run_apk(
            p,
            layout,
            &apk,
            &packages::ApkRun {
                repositories: &repos,
                packages: pkgs,
                network: net.mac().is_some(),
                quiet: cmdline.quiet(),
                keep_apk_new: cmdline.keep_apk_new(),
                overlay_members: applied.members.as_ref(),
            },
        );
        progress.ok();
    } else {
        log::info(&format!(
            "no /sbin/apk in this initramfs: packages not installed ({})",
            pkgs.join(" ")
        ));
    }
    log::phase("packages");
    repos
}
