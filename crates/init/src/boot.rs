//! The diskless boot, phase by phase (Alpine §3.4 and §3.6).

use crate::discovery::{self, DeviceSpec};
use crate::emergency::recovery_shell;
use crate::layout::Layout;
use crate::log::{self, Progress};
use crate::wait::WaitPolicy;
use crate::{early, fstab, handover, modules, network, newroot, overlay, packages, sysroot};
use alpinit_cmdline::{ApkovlSpec, Cmdline};
use alpinit_sys::Sys;
use std::time::Duration;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Options this init reads but does not act on yet; said once at boot so
/// nothing is dropped silently.
const NOT_ACTED_ON: &[&str] = &[
    "aoe",
    "aoe_iflist",
    "aoe_mtu",
    "autodetect_serial",
    "chart",
    "cryptdiscards",
    "cryptdm",
    "cryptheader",
    "cryptkey",
    "cryptoffset",
    "cryptroot",
    "dasd",
    "ds",
    "memdisk",
    "nbd",
    "overlaytmpfs",
    "overlaytmpfsflags",
    "resume",
    "resume_offset",
    "s390x_net",
    "splash",
    "tinycloud",
    "usrflags",
    "wireguard",
    "zfcp",
];

pub fn run(sys: &dyn Sys, layout: &Layout, t_start: Duration) -> ! {
    let early = match early::mount_api_filesystems(sys, layout) {
        Ok(e) => e,
        Err(e) => {
            early::ensure_console_fds(layout);
            log::error(&e.to_string());
            recovery_shell(&e.to_string());
            early::Early::default()
        }
    };
    early::ensure_console_fds(layout);
    log::open_kmsg(&layout.dev().join("kmsg"));
    log::phase_at("start", t_start);
    log::phase("early-mounts");

    let text = std::fs::read_to_string(layout.proc().join("cmdline")).unwrap_or_default();
    let cmdline = Cmdline::parse_with_env(&text, std::env::vars());
    log::set_quiet(cmdline.quiet());
    log::set_debug(cmdline.debug_init());
    crate::emergency::configure(cmdline.panic_on_failure(), layout.root());
    log::info(&format!("Alpine Init alpinit {VERSION}"));
    if !cmdline.quiet() {
        log::console(&format!("Alpine Init alpinit {VERSION}\n"));
    }
    for (name, value) in cmdline.options() {
        if NOT_ACTED_ON.contains(&name) {
            log::warn(&format!(
                "{name}={value}: parsed but not supported by this version, ignored"
            ));
        }
    }

    let drivers = Progress::begin("Loading boot drivers");
    let loader = modules::setup(layout, &cmdline);
    drivers.ok();

    if let Some(root) = cmdline.root() {
        root_mode(sys, layout, &cmdline, &loader, root, early.dev_is_tmpfs);
    }

    let apkovl_spec = cmdline.apkovl();
    let wanted_spec = match &apkovl_spec {
        Some(ApkovlSpec::Device { device, .. }) => device.as_str(),
        _ => "",
    };
    let wanted = match &apkovl_spec {
        Some(ApkovlSpec::Device { device, .. }) => Some(DeviceSpec::parse(device)),
        _ => None,
    };
    let usbdelay = cmdline.usbdelay().unwrap_or_else(|e| {
        log::warn(&e.to_string());
        None
    });
    let buf = cmdline.uevent_buf_size().unwrap_or_else(|e| {
        log::warn(&e.to_string());
        alpinit_cmdline::DEFAULT_UEVENT_BUF_SIZE
    });
    let policy = WaitPolicy {
        settle_limit: usbdelay.unwrap_or(WaitPolicy::default().settle_limit),
        usbdelay,
        allow_not_found: cmdline.needs_network(),
        ..WaitPolicy::default()
    };
    let progress = Progress::begin("Mounting boot media");
    let mut findings = discovery::discover(
        sys,
        layout,
        &loader,
        &discovery::Options {
            uevent_buf_size: buf,
            dev_is_tmpfs: early.dev_is_tmpfs,
            policy,
            wanted,
            scan_media: true,
        },
    );
    if findings.found_anything() || cmdline.needs_network() {
        progress.ok();
    } else {
        let why = format!(
            "No boot media found: none of the {} block devices seen holds an apkovl (*.apkovl.tar.gz*) or a boot repository (.boot_repository).",
            findings.block_devices
        );
        progress.failed("");
        log::console(&format!("{why}\n"));
        recovery_shell(&why);
    }
    log::phase("media-found");
    modules::request_after_discovery(&loader);
    let net = if cmdline.needs_network() {
        network::configure(layout, &cmdline)
    } else {
        network::Network::default()
    };
    if cmdline.single() {
        log::console("Entering single mode. Type 'exit' to continue booting.\n");
        recovery_shell("");
    }

    if cmdline.root_size_deprecated() {
        log::console("WARNING: the boot option root_size is deprecated. Use rootflags instead\n");
    }
    if let Err(e) = sysroot::mount_tmpfs(sys, layout, &cmdline.tmpfs_options()) {
        log::error(&e.to_string());
        recovery_shell(&e.to_string());
    }
    if cmdline.bootstrap_usr_merged() {
        if let Err(e) = sysroot::usr_merge(layout) {
            log::warn(&e.to_string());
        }
    }

    let source = overlay::locate(
        sys,
        layout,
        apkovl_spec.as_ref(),
        &findings.media,
        crate::devices::unique_or_shell(&findings.wanted, "apkovl device", wanted_spec).as_deref(),
        &net,
        &loader,
    );
    log::phase("apkovl-chosen");
    let apk = layout.path("/sbin/apk");
    let have_apk = apk.is_file();
    let mut members: Option<alpinit_apkovl::MemberList> = None;
    let ovl_path = source.path.clone().filter(|p| p.is_file());
    if let Some(p) = &source.path {
        if ovl_path.is_none() {
            log::error(&format!(
                "apkovl {} does not exist or is not a file",
                p.display()
            ));
        }
    }
    if let Some(path) = &ovl_path {
        let shown = packages::unroot(layout, path);
        let p = Progress::begin(&format!("Loading user settings from {shown}"));
        if have_apk {
            run_quiet(&apk, &["add", "--root", "/sysroot", "--initdb", "--quiet"]);
        }
        match overlay::unpack(layout, path) {
            Ok(m) => {
                p.ok();
                members = Some(m);
            }
            Err(e) => {
                let msg = e.to_string();
                p.failed(&msg);
                recovery_shell(&format!("The overlay {shown} was rejected; nothing of it was applied. Type exit to boot without it."));
            }
        }
        newroot::restrict_root_home(layout);
    }
    log::phase("unpacked");

    let mut pkgs = cmdline.pkgs();
    pkgs.extend(overlay::world(layout));
    let defaults = members.is_none() || packages::wants_default_services(layout);
    if defaults {
        match packages::default_services(layout, cmdline.get("ssh_key").is_some()) {
            Ok(extra) => pkgs.extend(extra),
            Err(e) => log::warn(&format!("default boot services: {e}")),
        }
    }

    let sysroot_fstab = fstab::read_new_root(layout);
    let fstab_text = sysroot_fstab
        .clone()
        .or_else(|| std::fs::read_to_string(layout.path("/etc/fstab")).ok())
        .unwrap_or_default();
    let entries = fstab::parse(&fstab_text);
    if sysroot_fstab.is_some() {
        if let Some(opts) = fstab::root_tmpfs_options(&entries) {
            let (flags, data) = fstab::split_options(opts);
            let flags = flags | alpinit_sys::MountFlags::REMOUNT;
            if let Err(e) = sys.mount("", &layout.sysroot(), None, flags, Some(&data)) {
                log::warn(&format!("remounting the new root with {opts}: {e}"));
            }
        }
    }
    fstab::relocate(sys, layout, &entries, &mut findings.media);

    pkgs.push("alpine-base".to_owned());
    let repos = packages::find_repositories(layout, &cmdline.alpine_repo());
    if have_apk {
        let p = Progress::begin("Installing packages to root filesystem");
        packages::install_keys(layout);
        packages::add_clock_service(layout);
        packages::run_apk(
            sys,
            layout,
            &apk,
            &packages::ApkRun {
                repositories: &repos,
                packages: &pkgs,
                network: net.mac().is_some(),
                quiet: cmdline.quiet(),
                keep_apk_new: cmdline.keep_apk_new(),
                overlay_members: members.as_ref(),
            },
        );
        p.ok();
    } else {
        log::info(&format!(
            "no /sbin/apk in this initramfs: packages not installed ({})",
            pkgs.join(" ")
        ));
    }
    log::phase("packages");
    if let Some(m) = &source.unmount {
        let _ = sys.umount(m, false);
    }
    packages::write_repositories(layout, &repos);
    newroot::copy_resolv_conf(layout);

    hand_over(sys, layout, &cmdline, &loader)
}

/// `root=`: mount the installed root instead of building a tmpfs one.
fn root_mode(
    sys: &dyn Sys,
    layout: &Layout,
    cmdline: &Cmdline,
    loader: &alpinit_kmod::Loader,
    root: &str,
    dev_is_tmpfs: bool,
) -> ! {
    for opt in ["overlaytmpfs", "usrflags", "cryptroot"] {
        if cmdline.get(opt).is_some() {
            log::warn(&format!(
                "{opt}= is not supported in root mode by this version, ignored"
            ));
        }
    }
    let options = discovery::Options {
        uevent_buf_size: cmdline
            .uevent_buf_size()
            .unwrap_or(alpinit_cmdline::DEFAULT_UEVENT_BUF_SIZE),
        dev_is_tmpfs,
        policy: WaitPolicy::default(),
        wanted: Some(DeviceSpec::parse(root)),
        scan_media: false,
    };
    while let Err(msg) = crate::rootfs::mount_root(
        sys,
        layout,
        loader,
        root,
        cmdline.rootfstype(),
        cmdline.get("rootflags"),
        options.clone(),
    ) {
        recovery_shell(&format!("{msg}. Type exit to try again."));
    }
    if cmdline.single() {
        log::console("Entering single mode. Type 'exit' to continue booting.\n");
        recovery_shell("");
    }
    hand_over(sys, layout, cmdline, loader)
}

/// Checks `init=`, moves the mounts and switch_roots; never returns.
fn hand_over(
    sys: &dyn Sys,
    layout: &Layout,
    cmdline: &Cmdline,
    loader: &alpinit_kmod::Loader,
) -> ! {
    let init = cmdline.init().to_owned();
    if let Err(e) = handover::check_init(layout, &init) {
        log::error(&e.to_string());
        log::console(&format!("{e}\n"));
        recovery_shell("Type exit to continue boot.");
    }
    if !loader.wait_idle(std::time::Instant::now() + handover::MODULES_IDLE_LIMIT) {
        log::warn("modules still loading at switch_root");
    }
    handover::move_mounts(sys, layout);
    nix::unistd::sync();
    let err = handover::switch_root(
        sys,
        layout,
        &init,
        &cmdline.init_args(),
        cmdline.switch_root_console(),
    );
    loop {
        log::error(&format!("switch_root failed: {err}"));
        recovery_shell(&format!("switch_root failed: {err}"));
    }
}

fn run_quiet(prog: &std::path::Path, args: &[&str]) {
    match std::process::Command::new(prog).args(args).status() {
        Ok(s) if s.success() => {}
        Ok(s) => log::warn(&format!("{} {}: {s}", prog.display(), args.join(" "))),
        Err(e) => log::warn(&format!("{}: {e}", prog.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options this init acts on: the complement of `NOT_ACTED_ON`.
    const ACTED_ON: &[&str] = &[
        "BOOTIF",
        "alpine_repo",
        "apkovl",
        "blacklist",
        "bootstrap_usr_merged",
        "debug_init",
        "init",
        "init_args",
        "ip",
        "keep_apk_new",
        "modules",
        "panic",
        "pkgs",
        "quiet",
        "root",
        "root_size",
        "rootflags",
        "rootfstype",
        "ssh_key",
        "uevent_buf_size",
        "usbdelay",
    ];

    /// Regression: ip= and BOOTIF= were reported as ignored on network boots.
    #[test]
    fn every_alpine_option_is_either_acted_on_or_reported() {
        for opt in alpinit_cmdline::OPTIONS {
            let acted = ACTED_ON.contains(&opt);
            let reported = NOT_ACTED_ON.contains(&opt);
            assert!(
                acted != reported,
                "{opt}: acted on {acted}, reported as ignored {reported}"
            );
        }
        assert_eq!(
            ACTED_ON.len() + NOT_ACTED_ON.len(),
            alpinit_cmdline::OPTIONS.len()
        );
    }
}
