use super::*;

/// A host whose packages appear when apt-get installs them (unless
/// `apt_is_broken`), and whose musl target appears with `rustup target add`.
#[derive(Default)]
struct FakeHost {
    missing: Vec<&'static str>,
    musl: bool,
    no_aarch64: bool,
    no_arm64_dpkg: bool,
    root: bool,
    no_apt_get: bool,
    apt_is_broken: bool,
    ran: Vec<String>,
    said: Vec<String>,
}

impl Host for FakeHost {
    fn missing_packages(&self) -> Vec<&'static str> {
        self.missing.clone()
    }
    fn has_musl_target(&self) -> bool {
        self.musl
    }
    fn has_aarch64_target(&self) -> bool {
        !self.no_aarch64
    }
    fn has_foreign_arch(&self) -> bool {
        !self.no_arm64_dpkg
    }
    fn is_root(&self) -> bool {
        self.root
    }
    fn has_apt_get(&self) -> bool {
        !self.no_apt_get
    }
    fn run(&mut self, cmd: &[String]) -> Result<()> {
        self.ran.push(cmd.join(" "));
        match cmd.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["apt-get", "install", ..] if !self.apt_is_broken => {
                self.missing.retain(|p| !cmd.iter().any(|a| a == p));
            }
            ["rustup", "target", "add", target] if target == MUSL_TARGET => self.musl = true,
            ["rustup", "target", "add", AARCH64_MUSL_TARGET] => self.no_aarch64 = false,
            ["dpkg", "--add-architecture", FOREIGN_ARCH] => self.no_arm64_dpkg = false,
            _ => {}
        }
        Ok(())
    }
    fn say(&mut self, line: &str) {
        self.said.push(line.to_string());
    }
}

const APT_INSTALL: &str = "apt-get install -y --no-install-recommends";

#[test]
fn qemu_is_installed_in_its_own_call() {
    let cmds = install_commands(&["qemu-system-x86", "cpio", "mtools"]);
    assert_eq!(cmds[0], ["apt-get", "update"]);
    assert_eq!(cmds[1].last().map(String::as_str), Some("qemu-system-x86"));
    assert!(cmds[2].ends_with(&["cpio".to_string(), "mtools".to_string()]));
    assert!(!cmds.iter().flatten().any(|a| a == "qemu-utils"));
    let only_rest = install_commands(&["cpio"]);
    assert_eq!(only_rest.len(), 2);
}

/// Regression: `cargo xtask test` on a fresh machine stopped with
/// "missing host packages: ... (run cargo xtask deps)" instead of
/// installing them as the README says.
#[test]
fn as_root_missing_packages_and_target_are_installed_not_reported() {
    let mut host = FakeHost {
        missing: vec!["qemu-system-x86", "busybox-static", "cpio"],
        root: true,
        ..FakeHost::default()
    };
    assert_eq!(ensure(&mut host).unwrap(), Ensured::Installed);
    assert_eq!(
        host.ran,
        [
            "apt-get update".to_string(),
            format!("{APT_INSTALL} qemu-system-x86"),
            format!("{APT_INSTALL} busybox-static cpio"),
            format!("rustup target add {MUSL_TARGET}"),
        ]
    );
    assert!(
        host.said.iter().all(|l| l.starts_with("+ ")),
        "{:?}",
        host.said
    );
}

#[test]
fn not_root_prints_the_exact_apt_commands_and_stops() {
    let mut host = FakeHost {
        missing: vec!["cpio", "mtools"],
        musl: true,
        ..FakeHost::default()
    };
    let err = ensure(&mut host).unwrap_err().to_string();
    assert!(err.contains("not root"), "{err}");
    assert!(host.ran.is_empty(), "ran {:?}", host.ran);
    assert_eq!(
        host.said[1..],
        [
            "sudo apt-get update".to_string(),
            format!("sudo {APT_INSTALL} cpio mtools"),
        ]
    );
    assert!(host.said[0].contains("cpio mtools"), "{:?}", host.said);
}

#[test]
fn not_root_still_adds_the_musl_target_itself() {
    let mut host = FakeHost::default();
    assert_eq!(ensure(&mut host).unwrap(), Ensured::Installed);
    assert_eq!(host.ran, [format!("rustup target add {MUSL_TARGET}")]);

    // With packages missing too, rustup runs and the apt part is printed.
    let mut host = FakeHost {
        missing: vec!["cpio"],
        ..FakeHost::default()
    };
    assert!(ensure(&mut host).is_err());
    assert_eq!(host.ran, [format!("rustup target add {MUSL_TARGET}")]);
    assert!(host.said.contains(&format!("sudo {APT_INSTALL} cpio")));
}

#[test]
fn nothing_missing_runs_and_prints_nothing() {
    for root in [false, true] {
        let mut host = FakeHost {
            musl: true,
            root,
            ..FakeHost::default()
        };
        assert_eq!(ensure(&mut host).unwrap(), Ensured::Present);
        assert!(host.ran.is_empty() && host.said.is_empty());
    }
}

#[test]
fn without_apt_get_the_missing_packages_are_named() {
    let mut host = FakeHost {
        missing: vec!["xorriso"],
        musl: true,
        root: true,
        no_apt_get: true,
        ..FakeHost::default()
    };
    let err = ensure(&mut host).unwrap_err().to_string();
    assert!(
        err.contains("xorriso") && err.contains("no apt-get"),
        "{err}"
    );
    assert!(host.ran.is_empty());
}

#[test]
fn a_package_still_missing_after_apt_get_fails_by_name() {
    let mut host = FakeHost {
        missing: vec!["pxelinux"],
        musl: true,
        root: true,
        apt_is_broken: true,
        ..FakeHost::default()
    };
    let err = ensure(&mut host).unwrap_err().to_string();
    assert!(
        err.contains("still missing") && err.contains("pxelinux"),
        "{err}"
    );
}

#[test]
fn the_man_page_tools_are_host_packages() {
    let names: Vec<&str> = PACKAGES.iter().map(|(p, _)| *p).collect();
    assert!(names.contains(&"man-db") && names.contains(&"groff-base"));
}

/// A fresh machine for the aarch64 scenarios: dpkg learns arm64 before the
/// `apt-get update` that fetches its package lists, and rustup adds the
/// aarch64 musl target.
#[test]
fn aarch64_needs_the_arm64_dpkg_arch_before_apt_update_and_its_rust_target() {
    let mut host = FakeHost {
        missing: vec!["qemu-system-arm", "gcc-aarch64-linux-gnu"],
        musl: true,
        no_aarch64: true,
        no_arm64_dpkg: true,
        root: true,
        ..FakeHost::default()
    };
    assert_eq!(ensure(&mut host).expect("ensure"), Ensured::Installed);
    assert_eq!(
        host.ran,
        [
            "dpkg --add-architecture arm64".to_string(),
            "apt-get update".to_string(),
            format!("{APT_INSTALL} qemu-system-arm"),
            format!("{APT_INSTALL} gcc-aarch64-linux-gnu"),
            "rustup target add aarch64-unknown-linux-musl".to_string(),
        ]
    );
    // Only the architecture missing: it still gets its apt-get update.
    let mut host = FakeHost {
        musl: true,
        no_arm64_dpkg: true,
        root: true,
        ..FakeHost::default()
    };
    ensure(&mut host).expect("ensure");
    assert_eq!(
        host.ran,
        ["dpkg --add-architecture arm64", "apt-get update"].map(String::from)
    );
    // Not root: both root commands are printed, nothing runs.
    let mut host = FakeHost {
        musl: true,
        no_arm64_dpkg: true,
        ..FakeHost::default()
    };
    assert!(ensure(&mut host).is_err());
    assert!(host.ran.is_empty());
    assert!(host
        .said
        .contains(&"sudo dpkg --add-architecture arm64".to_string()));
}

/// Regression: on a fresh machine the cross compiler came without its C
/// library headers (a recommendation, which `--no-install-recommends`
/// skips) and ring's C for aarch64 failed on `bits/libc-header-start.h`.
#[test]
fn the_cross_compiler_comes_with_its_c_library_headers() {
    let marker = PACKAGES
        .iter()
        .find(|(p, _)| *p == "libc6-dev-arm64-cross")
        .map(|(_, m)| *m);
    assert_eq!(marker, Some("/usr/aarch64-linux-gnu/include/stdint.h"));
    assert!(PACKAGES
        .iter()
        .any(|(p, _)| *p == crate::cross::CROSS_GCC_PACKAGE));
}
