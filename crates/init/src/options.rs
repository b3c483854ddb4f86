//! The boot options: `/proc/cmdline` with Alpine's rules (and `KOPT_*`),
//! the log settings they imply, and the options not acted on yet, said once.

use crate::boot::VERSION;
use crate::layout::Layout;
use crate::log;
use alpinit_cmdline::Cmdline;

/// Options this init reads but does not act on yet; said once at boot so
/// nothing is dropped silently.
pub const NOT_ACTED_ON: &[&str] = &["dasd", "s390x_net", "zfcp"];

/// The command line and the log settings it implies, before anything is said.
pub fn parse(layout: &Layout) -> Cmdline {
    let text = std::fs::read_to_string(layout.proc().join("cmdline")).unwrap_or_default();
    let cmdline = Cmdline::parse_with_env(&text, std::env::vars());
    log::set_quiet(cmdline.quiet());
    log::set_debug(cmdline.debug_init());
    cmdline
}

/// The banner and the options not acted on.
pub fn announce(cmdline: &Cmdline) {
    log::info(&format!("Alpine Init alpinit {VERSION}"));
    if !cmdline.quiet() {
        log::console(&format!("Alpine Init alpinit {VERSION}\n"));
    }
    if let Some(aoe) = cmdline.aoe() {
        crate::aoe::announce(&aoe);
    }
    for (name, value) in cmdline.options() {
        if NOT_ACTED_ON.contains(&name) {
            log::warn(&format!(
                "{name}={value}: parsed but not supported by this version, ignored"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options this init acts on: the complement of `NOT_ACTED_ON`.
    const ACTED_ON: &[&str] = &[
        "BOOTIF",
        "alpine_repo",
        "aoe",
        "aoe_iflist",
        "aoe_mtu",
        "apkovl",
        "autodetect_serial",
        "blacklist",
        "bootstrap_usr_merged",
        "chart",
        "cryptdiscards",
        "cryptdm",
        "cryptheader",
        "cryptkey",
        "cryptoffset",
        "cryptroot",
        "debug_init",
        "ds",
        "init",
        "init_args",
        "ip",
        "keep_apk_new",
        "memdisk",
        "modules",
        "nbd",
        "overlaytmpfs",
        "overlaytmpfsflags",
        "panic",
        "pkgs",
        "quiet",
        "resume",
        "resume_offset",
        "root",
        "root_size",
        "rootflags",
        "rootfstype",
        "splash",
        "ssh_key",
        "tinycloud",
        "uevent_buf_size",
        "usbdelay",
        "usrflags",
        "wireguard",
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
