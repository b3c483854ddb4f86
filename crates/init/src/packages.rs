//! Packages and services of the new root (Alpine §3.6 steps 8, 11-20):
//! default boot services, repositories, and `apk add` when the image has apk.

use crate::layout::Layout;
use crate::log;
use alpinit_sys::MountFlags;
use std::path::{Path, PathBuf};

/// `rc_add SVC LEVEL`: `/etc/runlevels/LEVEL/SVC -> /etc/init.d/SVC`.
pub fn rc_add(layout: &Layout, svc: &str, level: &str) -> std::io::Result<()> {
    let dir = layout.in_sysroot(&format!("/etc/runlevels/{level}"));
    std::fs::create_dir_all(&dir)?;
    let link = dir.join(svc);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("/etc/init.d/{svc}"), link)
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
/// `/etc/.default_boot_services`. Returns extra packages to install.
pub fn default_services(layout: &Layout, ssh_key: bool) -> std::io::Result<Vec<String>> {
    for (level, svcs) in DEFAULT_SERVICES {
        for s in *svcs {
            rc_add(layout, s, level)?;
        }
    }
    let mut pkgs = Vec::new();
    if ssh_key {
        pkgs.push("openssh".to_owned());
        rc_add(layout, "sshd", "default")?;
    }
    let _ = std::fs::remove_file(layout.in_sysroot("/etc/.default_boot_services"));
    Ok(pkgs)
}

/// Boot repositories: `alpine_repo=` if given, else every directory up to
/// three levels below `/media/*` that holds a `.boot_repository` file,
/// sorted.
pub fn find_repositories(layout: &Layout, alpine_repo: &[String]) -> Vec<String> {
    if !alpine_repo.is_empty() {
        return alpine_repo.to_vec();
    }
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(layout.media()) {
        for e in entries.flatten() {
            walk_repos(&e.path(), 0, &mut found);
        }
    }
    found.sort();
    found.into_iter().map(|p| unroot(layout, &p)).collect()
}

fn walk_repos(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    // `find /media/* -maxdepth 3 -name .boot_repository -type f`
    if depth > 2 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_file() && e.file_name() == ".boot_repository" {
            out.push(dir.to_owned());
        } else if ft.is_dir() {
            walk_repos(&e.path(), depth + 1, out);
        }
    }
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
    pub overlay_members: Option<&'a [String]>,
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

/// Runs apk with /sys, /proc and /dev bound into the new root. A failure is
/// a visible warning, not fatal (as in Alpine, but on the console too).
pub fn run_apk(p: &crate::platform::Platform<'_>, layout: &Layout, apk: &Path, run: &ApkRun<'_>) {
    let sys = p.fs;
    let binds: Vec<(PathBuf, PathBuf)> = ["/sys", "/proc", "/dev"]
        .iter()
        .map(|d| (layout.path(d), layout.in_sysroot(d)))
        .collect();
    let mut bound = Vec::new();
    for (src, dst) in &binds {
        let _ = std::fs::create_dir_all(dst);
        match sys.mount(&src.to_string_lossy(), dst, None, MountFlags::BIND, None) {
            Ok(()) => bound.push(dst.clone()),
            Err(e) => log::warn(&format!("binding {} into the new root: {e}", src.display())),
        }
    }
    let args = apk_args(run);
    log::info(&format!("running apk {}", args.join(" ")));
    let want_stdin = !run.keep_apk_new && run.overlay_members.is_some();
    let members = run.overlay_members.map(|m| {
        let mut text = m.join("\n");
        text.push('\n');
        text
    });
    let stdin = match &members {
        Some(text) if want_stdin => crate::platform::Stdin::Bytes(text.as_bytes()),
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
        let members = vec!["etc/".to_owned(), "etc/hostname".to_owned()];
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
        let extra = default_services(&layout, true).unwrap();
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
