//! Packages and services of the new root (Alpine §3.6 steps 8, 11-20):
//! default boot services, repositories, and `apk add` when the image has apk.

use crate::in_root::{NewRoot, NewRootError};
use crate::layout::Layout;
use crate::log;
use alpinit_cmdline::Cmdline;
use alpinit_sys::{MountFlags, Sys};
use std::path::{Path, PathBuf};

/// `rc_add SVC LEVEL`: `/etc/runlevels/LEVEL/SVC -> /etc/init.d/SVC`,
/// inside the new root whatever symlinks the overlay planted.
pub fn rc_add(layout: &Layout, svc: &str, level: &str) -> Result<(), NewRootError> {
    let root = NewRoot::open(&layout.sysroot())?;
    rc_add_in(&root, svc, level)
}

fn rc_add_in(root: &NewRoot, svc: &str, level: &str) -> Result<(), NewRootError> {
    let dir = format!("etc/runlevels/{level}");
    root.create_dir_all(&dir)?;
    root.symlink(&format!("/etc/init.d/{svc}"), &format!("{dir}/{svc}"))
}

/// Whether the machine has an RTC: `/dev/rtc` or `/dev/rtc[0-9]*`, as
/// Alpine's `rtc_exists`.
fn rtc_exists(dev: &Path) -> bool {
    dev.join("rtc").exists()
        || std::fs::read_dir(dev).ok().is_some_and(|d| {
            d.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.strip_prefix("rtc")
                    .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
            })
        })
}

/// `hwclock` in the boot runlevel when the machine has an RTC (or is
/// s390x), else `swclock`. Alpine does this whether or not the image has
/// apk.
pub fn add_clock_service(layout: &Layout) {
    let hw = rtc_exists(&layout.dev()) || cfg!(target_arch = "s390x");
    let svc = if hw { "hwclock" } else { "swclock" };
    if let Err(e) = rc_add(layout, svc, "boot") {
        log::warn(&format!("adding {svc} to the boot runlevel: {e}"));
    }
}

/// The new root's `/etc/apk/repositories`, only when the overlay has none.
pub fn write_repositories(layout: &Layout, repos: &[String]) {
    if repos.is_empty() {
        return;
    }
    let written = NewRoot::open(&layout.sysroot()).and_then(|root| {
        if root.present("etc/apk/repositories") {
            return Ok(());
        }
        root.create_dir_all("etc/apk")?;
        root.write_file(
            "etc/apk/repositories",
            format!("{}\n", repos.join("\n")).as_bytes(),
            0o644,
        )
    });
    if let Err(e) = written {
        log::warn(&format!("writing the new root's repositories: {e}"));
    }
}

/// Whether the overlay asks for the default services
/// (`/etc/.default_boot_services`, looked up inside the new root).
pub fn wants_default_services(layout: &Layout) -> bool {
    NewRoot::open(&layout.sysroot()).is_ok_and(|r| r.exists("etc/.default_boot_services"))
}

pub const DEFAULT_SERVICES: &[(&str, &[&str])] = &[
    (
        "sysinit",
        &["devfs", "dmesg", "mdev", "hwdrivers", "modloop"],
    ),
    (
        "boot",
        &["modules", "sysctl", "hostname", "bootmisc", "syslog"],
    ),
    ("shutdown", &["mount-ro", "killprocs", "savecache"]),
    ("default", &["firstboot"]),
];

/// Default services when there is no apkovl or it asks for them with
/// `/etc/.default_boot_services`, with sshd for `ssh_key=` and tiny-cloud
/// when the machine looks like a cloud instance ([`crate::cloud`]).
/// Returns extra packages to install.
pub fn default_services(layout: &Layout, cmdline: &Cmdline) -> Result<Vec<String>, NewRootError> {
    let root = NewRoot::open(&layout.sysroot())?;
    for (level, svcs) in DEFAULT_SERVICES {
        for s in *svcs {
            rc_add_in(&root, s, level)?;
        }
    }
    let mut pkgs = Vec::new();
    if cmdline.get("ssh_key").is_some() {
        pkgs.push("openssh".to_owned());
        rc_add_in(&root, "sshd", "default")?;
    }
    pkgs.extend(crate::cloud::enable(layout, &root, cmdline, rc_add_in)?);
    root.remove("etc/.default_boot_services")?;
    Ok(pkgs)
}

/// Boot repositories: `alpine_repo=` if given, else every
/// [`crate::media::boot_repositories`] of every `/media/*`, sorted.
pub fn find_repositories(layout: &Layout, alpine_repo: &[String]) -> Vec<String> {
    if !alpine_repo.is_empty() {
        return alpine_repo.to_vec();
    }
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(layout.media()) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                found.extend(crate::media::boot_repositories(&e.path()));
            }
        }
    }
    alpinit_sort::sort(&mut found);
    found.into_iter().map(|p| unroot(layout, &p)).collect()
}

/// A path of the initramfs as the running system names it.
pub fn unroot(layout: &Layout, p: &Path) -> String {
    match p.strip_prefix(layout.root()) {
        Ok(rest) => format!("/{}", rest.display()),
        Err(_) => p.display().to_string(),
    }
}

pub struct ApkRun<'a> {
    pub repositories: &'a [String],
    pub packages: &'a [String],
    pub network: bool,
    pub quiet: bool,
    pub keep_apk_new: bool,
    /// Overlay members, fed on stdin with `--overlay-from-stdin`.
    pub overlay_members: Option<&'a alpinit_apkovl::MemberList>,
}

/// The argv Alpine passes (after `apk`), in Alpine's order.
pub fn apk_args(run: &ApkRun<'_>) -> Vec<String> {
    let mut a: Vec<String> = vec!["add".into(), "--root".into(), "/sysroot".into()];
    for r in run.repositories {
        a.push("--repository".into());
        a.push(r.clone());
    }
    a.push("--initramfs-diskless-boot".into());
    a.push("--progress".into());
    a.push(
        if run.network {
            "--update-cache"
        } else {
            "--no-network"
        }
        .into(),
    );
    if run.quiet {
        a.push("--quiet".into());
    }
    if !run.keep_apk_new {
        a.push("--clean-protected".into());
        if run.overlay_members.is_some() {
            a.push("--overlay-from-stdin".into());
        }
    }
    a.extend(run.packages.iter().cloned());
    a
}

/// Binds /sys, /proc and /dev onto their directories in the new root
/// (resolved inside it); returns the mount points bound.
pub fn bind_api_filesystems(sys: &dyn Sys, layout: &Layout) -> Vec<PathBuf> {
    let root = match NewRoot::open(&layout.sysroot()) {
        Ok(r) => r,
        Err(e) => {
            log::warn(&e.to_string());
            return Vec::new();
        }
    };
    let mut bound = Vec::new();
    for d in ["/sys", "/proc", "/dev"] {
        let src = layout.path(d);
        let dst = match root.mount_target(d) {
            Ok(p) => p,
            Err(e) => {
                log::warn(&format!("binding {d} into the new root: {e}"));
                continue;
            }
        };
        match sys.mount(&src.to_string_lossy(), &dst, None, MountFlags::BIND, None) {
            Ok(()) => bound.push(dst),
            Err(e) => log::warn(&format!("binding {} into the new root: {e}", src.display())),
        }
    }
    bound
}

/// Runs apk with /sys, /proc and /dev bound into the new root. A failure is
/// a visible warning, not fatal (as in Alpine, but on the console too).
pub fn run_apk(p: &crate::platform::Platform<'_>, layout: &Layout, apk: &Path, run: &ApkRun<'_>) {
    let sys = p.fs;
    let bound = bind_api_filesystems(sys, layout);
    let args = apk_args(run);
    log::info(&format!("running apk {}", args.join(" ")));
    let want_stdin = !run.keep_apk_new && run.overlay_members.is_some();
    let stdin = match run.overlay_members {
        Some(members) if want_stdin => crate::platform::Stdin::Bytes(members.as_bytes()),
        _ => crate::platform::Stdin::Null,
    };
    let status = p.spawn.run(apk, &args, &[], stdin);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            log::warn(&format!(
                "WARNING: apkovl packages install completed with errors ({s})"
            ));
            log::console("WARNING: apkovl packages install completed with errors...\n");
        }
        Err(e) => {
            log::warn(&format!("WARNING: running {}: {e}", apk.display()));
            log::console(&format!("WARNING: could not run {}: {e}\n", apk.display()));
        }
    }
    for dst in bound.iter().rev() {
        let _ = sys.umount(dst, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apk_argv_matches_alpine() {
        let members: alpinit_apkovl::MemberList =
            [&b"etc/"[..], b"etc/hostname"].into_iter().collect();
        let run = ApkRun {
            repositories: &["/media/cdrom/apks".to_owned()],
            packages: &["alpine-base".to_owned()],
            network: false,
            quiet: false,
            keep_apk_new: false,
            overlay_members: Some(&members),
        };
        assert_eq!(
            apk_args(&run).join(" "),
            "add --root /sysroot --repository /media/cdrom/apks --initramfs-diskless-boot --progress --no-network --clean-protected --overlay-from-stdin alpine-base"
        );
        let keep = ApkRun {
            keep_apk_new: true,
            network: true,
            quiet: true,
            ..run
        };
        assert_eq!(
            apk_args(&keep).join(" "),
            "add --root /sysroot --repository /media/cdrom/apks --initramfs-diskless-boot --progress --update-cache --quiet alpine-base"
        );
    }

    #[test]
    fn default_services_match_alpines_runlevels() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        std::fs::create_dir_all(layout.in_sysroot("etc")).unwrap();
        std::fs::write(layout.in_sysroot("etc/.default_boot_services"), "").unwrap();
        let cmdline = Cmdline::parse("ssh_key=https://example.com/key");
        let extra = default_services(&layout, &cmdline).unwrap();
        assert_eq!(extra, ["openssh"]);
        let link = layout.in_sysroot("etc/runlevels/sysinit/modloop");
        assert_eq!(
            std::fs::read_link(link).unwrap(),
            Path::new("/etc/init.d/modloop")
        );
        assert!(layout.in_sysroot("etc/runlevels/default/sshd").is_symlink());
        assert!(!layout.in_sysroot("etc/.default_boot_services").exists());
    }

    #[test]
    fn repositories_found_up_to_depth_three_sorted() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        for d in ["media/sr0/apks", "media/sda1/a/b", "media/sda1/a/b/c/d"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
            std::fs::write(tmp.path().join(d).join(".boot_repository"), "").unwrap();
        }
        assert_eq!(
            find_repositories(&layout, &[]),
            ["/media/sda1/a/b", "/media/sr0/apks"]
        );
        let explicit = vec!["http://x/y".to_owned()];
        assert_eq!(find_repositories(&layout, &explicit), explicit);
    }
}
