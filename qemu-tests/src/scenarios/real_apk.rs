//! Alpine's real `apk` fills the new root from a real signed boot
//! repository (`crate::alpine_repo`), then Alpine's busybox init runs a
//! report from the overlay's inittab. The overlay is shaped as `lbu
//! package` makes one; apk is called with Alpine's argv, so each scenario
//! is what Alpine's init would do with the same media
//! (`initramfs-init.in`: a failed apk prints
//! `WARNING: apkovl packages install completed with errors...` and the
//! boot goes on). `--initramfs-diskless-boot` makes apk force a broken
//! world: a package no repository has, or a repository skipped for its
//! signature, is a warning of apk's and apk still exits 0, so only a
//! package that fails to install brings the WARNING.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::*;
use crate::alpine_repo::{self, Built, Key};
use crate::qemu::Arch;

/// Lines the report script prints start with this.
const MARK: &str = "REALAPK ";
const END: &str = "REALAPK-END";
const WARNING: &str = "WARNING: apkovl packages install completed with errors...";
const NO_INIT: &str = "/sbin/init not found in new root";
const HOSTNAME: &str = "alpinit-realapk";
const INITTAB_FIRST: &str = "# alpinit real-apk inittab";

/// Run by busybox init as `::sysinit:`: markers on the console, then off.
const REPORT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc 2>/dev/null
echo "REALAPK-BEGIN"
echo "REALAPK pid1=$($B cat /proc/1/comm)"
echo "REALAPK root=$($B awk '$2=="/"{print $3}' /proc/mounts)"
for p in $($B sed -n 's/^P://p' /lib/apk/db/installed); do echo "REALAPK installed=$p"; done
for f in /bin/busybox /bin/sh /sbin/init /bin/ls /lib/ld-musl-x86_64.so.1 /lib/ld-musl-aarch64.so.1 /etc/passwd /lib/libz.so.1; do
  [ -e "$f" ] && echo "REALAPK file=$f"
done
echo "REALAPK hostname=$($B cat /etc/hostname)"
echo "REALAPK inittab=$($B head -n1 /etc/inittab)"
echo "REALAPK world=$($B tr '\n' ' ' </etc/apk/world)"
$B find / -xdev -name '*.apk-new' | while read f; do echo "REALAPK apk-new=$f"; done
$B awk '$2 ~ /^\/media\// {print "REALAPK media=" $2 " " $3}' /proc/mounts
echo "REALAPK-END"
$B poweroff -f
"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    /// The boot repository has the whole closure.
    Boot,
    /// `etc/apk/cache -> /media/usb/cache` holds zlib, in no repository.
    Cache,
    /// The world names a package no repository has.
    Missing,
    /// The index is signed by a key the image does not trust.
    Untrusted,
    /// One package's data stream is damaged.
    Damaged,
    /// A headless machine (`console=ttyS0`): no report, busybox init runs
    /// the getty line the init added for the serial console.
    Login,
}

/// What busybox getty prints once it owns the serial line.
const LOGIN_PROMPT: &str = " login: ";

const DAMAGED: &str = "alpine-baselayout-data";

pub(super) fn scenarios() -> [Scenario; 6] {
    [
        Scenario {
            name: "real-apk",
            about: "real apk installs a signed boot repository into the tmpfs root; busybox init runs from it",
            image: ImageKind::RealApk,
            setup: |a, d| setup(a, d, Case::Boot),
            check: |o, _| check(o, Arch::X86_64, Case::Boot),
        },
        Scenario {
            name: "real-apk-cache",
            about: "etc/apk/cache -> /media/usb/cache holds zlib, in no repository: installed from the cache",
            image: ImageKind::RealApk,
            setup: |a, d| setup(a, d, Case::Cache),
            check: |o, _| check(o, Arch::X86_64, Case::Cache),
        },
        Scenario {
            name: "real-apk-missing",
            about: "a world package in no repository: apk installs the rest and exits 0 (broken world forced), no WARNING, as Alpine",
            image: ImageKind::RealApk,
            setup: |a, d| setup(a, d, Case::Missing),
            check: |o, _| check(o, Arch::X86_64, Case::Missing),
        },
        Scenario {
            name: "real-apk-untrusted",
            about: "the index signed by an untrusted key: apk skips it, installs nothing, exits 0; no init in the new root, the shell, as Alpine",
            image: ImageKind::RealApk,
            setup: |a, d| setup(a, d, Case::Untrusted),
            check: |o, _| check(o, Arch::X86_64, Case::Untrusted),
        },
        Scenario {
            name: "real-apk-damaged",
            about: "a damaged package: apk installs the others, the WARNING, busybox init still runs",
            image: ImageKind::RealApk,
            setup: |a, d| setup(a, d, Case::Damaged),
            check: |o, _| check(o, Arch::X86_64, Case::Damaged),
        },
        Scenario {
            name: "real-apk-serial-login",
            about: "console=ttyS0, an lbu overlay whose inittab has no serial line: busybox init from the apk-filled root gives a login prompt on ttyS0",
            image: ImageKind::RealApk,
            setup: |a, d| setup(a, d, Case::Login),
            check: |o, _| check_login(o),
        },
    ]
}

/// The real-Alpine boot on aarch64 (`aarch64.rs` lists it): the aarch64
/// mini root's packages in an `apks/aarch64/` boot repository on a virtio
/// disk, the image carrying the aarch64 apk, and the same checks as
/// x86_64's `real-apk`, the aarch64 musl loader among the new root's files.
pub(super) fn aarch64_scenario() -> Scenario {
    Scenario {
        name: "real-apk",
        about: "real aarch64 apk installs a signed apks/aarch64 boot repository into the tmpfs root; aarch64 busybox init runs from it",
        image: ImageKind::RealApk,
        setup: |a, d| setup(a, d, Case::Boot),
        check: |o, _| check(o, Arch::Aarch64, Case::Boot),
    }
}

/// An apkovl as `lbu package` writes one: directories first, root-owned,
/// with symlinks kept as symlinks.
fn lbu_overlay(files: &[FileSpec], links: &[(&str, &str)]) -> Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    let mut dirs: Vec<String> = Vec::new();
    let paths = files
        .iter()
        .map(|f| f.path.as_str())
        .chain(links.iter().map(|l| l.0));
    for p in paths {
        let mut acc = String::new();
        for c in p
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |x| x.1)
        {
            acc = if acc.is_empty() {
                c.to_string()
            } else {
                format!("{acc}/{c}")
            };
            if !dirs.contains(&acc) {
                dirs.push(acc.clone());
            }
        }
    }
    dirs.sort();
    for d in &dirs {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, format!("{d}/"), &[][..])
            .with_context(|| format!("overlay dir {d}"))?;
    }
    for f in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(f.mode);
        h.set_size(f.data.len() as u64);
        b.append_data(&mut h, &f.path, f.data.as_slice())
            .with_context(|| format!("overlay file {}", f.path))?;
    }
    for (path, target) in links {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        b.append_link(&mut h, path, target)
            .with_context(|| format!("overlay link {path}"))?;
    }
    b.into_inner()
        .and_then(|gz| gz.finish())
        .context("finishing the overlay")
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}

fn setup(assets: &Assets, dir: &Path, case: Case) -> Result<Setup> {
    let arch = assets.arch;
    let images = assets.out_dir.join("images");
    let root = alpine_repo::miniroot(&images, arch)?;
    // The apk that runs here is the x86_64 root's (`alpine_repo::verify`).
    let host_root = alpine_repo::miniroot(&images, Arch::X86_64)?;
    let trusted = alpine_repo::cached_key(alpine_repo::TRUSTED_KEY)?;
    let built =
        alpine_repo::build_packages(&root, alpine_repo::BOOT_PACKAGES, &trusted, true, arch)?;
    let refs: Vec<&Built> = built.iter().collect();
    let tree = dir.join("media.tree");
    let repo = tree.join("apks");
    let index_key: Key = if case == Case::Untrusted {
        alpine_repo::key_in(&dir.join("untrusted-key"), "untrusted")?
    } else {
        trusted.clone()
    };
    let index = alpine_repo::write_repository(&repo, &refs, &index_key, arch)?;
    let packages: Vec<_> = refs
        .iter()
        .map(|b| repo.join(arch.name()).join(b.file_name()))
        .collect();
    // The real apk must accept what each key signed, before any boot.
    let mut verified = alpine_repo::verify(&host_root, &trusted, &packages)?;
    verified += &alpine_repo::verify(&host_root, &index_key, std::slice::from_ref(&index))?;
    if case == Case::Untrusted {
        // ... and refuse the index with only the image's key.
        if let Ok(out) = alpine_repo::verify(&host_root, &trusted, std::slice::from_ref(&index)) {
            anyhow::bail!("apk verify accepted the untrusted index: {out}");
        }
    }
    fs::write(dir.join("apk-verify.txt"), &verified).context("writing apk-verify.txt")?;
    if case == Case::Damaged {
        let f = repo.join(arch.name()).join(
            refs.iter()
                .find(|b| b.name == DAMAGED)
                .context("no package to damage")?
                .file_name(),
        );
        let mut bytes = fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        // Inside the data stream's deflate blocks, before its CRC trailer.
        let at = bytes.len() - 200;
        bytes[at] ^= 0xff;
        write(&f, &bytes)?;
    }
    let (media_dir, device) = if case == Case::Cache {
        ("/media/usb", "usb")
    } else {
        ("/media/vda1", "vda")
    };
    let mut world = "alpine-base\n".to_string();
    if case == Case::Cache {
        let zlib = alpine_repo::build_packages(&root, &["zlib"], &trusted, false, arch)?;
        let zlib = zlib.first().context("zlib was not built")?;
        write(&tree.join("cache").join(zlib.cache_name()), &zlib.bytes)?;
        write(&tree.join("cache/installed"), zlib.index_entry.as_bytes())?;
        world.push_str("zlib\n");
    }
    if case == Case::Missing {
        world.push_str("nosuchpkg\n");
    }
    let inittab = if case == Case::Login {
        format!("{INITTAB_FIRST}\n::ctrlaltdel:/sbin/reboot\n")
    } else {
        format!(
            "{INITTAB_FIRST}\n::sysinit:/bin/busybox sh /etc/alpinit-report.sh\n::ctrlaltdel:/sbin/reboot\n"
        )
    };
    let files = vec![
        FileSpec::new("etc/hostname", 0o644, format!("{HOSTNAME}\n")),
        FileSpec::new("etc/apk/world", 0o644, world),
        FileSpec::new("etc/apk/repositories", 0o644, format!("{media_dir}/apks\n")),
        FileSpec::new("etc/inittab", 0o644, inittab),
        FileSpec::new("etc/alpinit-report.sh", 0o755, REPORT),
    ];
    let links: &[(&str, &str)] = if case == Case::Cache {
        &[("etc/apk/cache", "/media/usb/cache")]
    } else {
        &[]
    };
    write(
        &tree.join(format!("{HOSTNAME}.apkovl.tar.gz")),
        &lbu_overlay(&files, links)?,
    )?;
    let fs_kind = if case == Case::Cache {
        Filesystem::Fat32
    } else {
        Filesystem::Ext4
    };
    let image = dir.join(format!("{device}.img"));
    let size = if case == Case::Cache { 64 } else { 32 };
    media::disk_image(&image, fs_kind, &device.to_uppercase(), size, &tree)?;
    // Without panic=, so the missing init gets the recovery shell (Alpine's
    // recovery_shell exits to a panic when panic= is set).
    let mut vm = if case == Case::Untrusted {
        kernel_vm_with(assets, ImageKind::RealApk, "console=ttyS0")?
    } else {
        kernel_vm(assets, ImageKind::RealApk, "")?
    };
    if case == Case::Cache {
        vm.usb_stick(&image);
    } else {
        vm.virtio_disk(&image);
    }
    Ok(Setup {
        vm,
        stop: Some(Box::new(|log: &str| {
            log.contains("Kernel panic") || log.contains(NO_INIT) || log.contains(LOGIN_PROMPT)
        })),
        timeout: assets.accel.boot_timeout(),
    })
}

/// The serial console ends at busybox getty's prompt, started by busybox
/// init from the getty line the init appended to the overlay's inittab.
fn check_login(outcome: &Outcome) -> Vec<String> {
    let log = &outcome.log;
    let mut failures = Vec::new();
    if log.contains("Kernel panic") {
        failures.push("kernel panic on the console".into());
    }
    if log.contains(WARNING) {
        failures.push(format!("`{WARNING}` on the console"));
    }
    if !log.contains(LOGIN_PROMPT) {
        failures.push(format!(
            "no getty prompt (`{}`) on ttyS0 (timed out: {}, {:.1}s)",
            LOGIN_PROMPT.trim(),
            outcome.timed_out,
            outcome.elapsed.as_secs_f64()
        ));
    }
    failures
}

/// The report's `key=value` markers.
fn markers(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|l| l.trim_end_matches('\r').split_once(MARK).map(|x| x.1))
        .filter_map(|m| m.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// ARCH is the machine's: its musl loader must be in the new root.
fn check(outcome: &Outcome, arch: Arch, case: Case) -> Vec<String> {
    let mut failures = Vec::new();
    let log = &outcome.log;
    if log.contains("Kernel panic") {
        failures.push("kernel panic on the console".into());
    }
    let warned = log.contains(WARNING);
    let m = markers(log);
    let values = |k: &str| -> Vec<&str> {
        m.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let installed = values("installed");
    match case {
        Case::Untrusted => {
            if warned {
                failures.push(format!("`{WARNING}` on the console: apk exits 0 here"));
            }
            if !log.contains(NO_INIT) {
                failures.push(format!("no `{NO_INIT}`: apk installed something"));
            }
            let apk_says = "WARNING: opening /media/vda1/apks: UNTRUSTED signature";
            if !log.contains(apk_says) {
                failures.push(format!("apk's `{apk_says}` is not on the console"));
            }
            return failures;
        }
        Case::Damaged => {
            if !warned {
                failures.push(format!("no `{WARNING}` on the console"));
            }
            if installed.contains(&DAMAGED) {
                failures.push(format!("the damaged {DAMAGED} was installed"));
            }
        }
        Case::Boot | Case::Cache | Case::Missing | Case::Login => {
            if warned {
                failures.push(format!("`{WARNING}` on the console"));
            }
        }
    }
    if !log.contains(END) {
        failures.push(format!(
            "no report from busybox init (timed out: {}, {:.1}s)",
            outcome.timed_out,
            outcome.elapsed.as_secs_f64()
        ));
        return failures;
    }
    let mut want: Vec<&str> = alpine_repo::BOOT_PACKAGES.to_vec();
    want.push("alpine-base");
    if case == Case::Cache {
        want.push("zlib");
    }
    if case == Case::Damaged {
        want.retain(|p| *p != DAMAGED);
    }
    for p in want {
        if !installed.contains(&p) {
            failures.push(format!("{p} is not installed: {installed:?}"));
        }
    }
    let files = values("file");
    let loader = format!("/lib/ld-musl-{}.so.1", arch.name());
    let mut want_files = vec!["/bin/busybox", "/bin/sh", "/sbin/init", "/bin/ls", &loader];
    if case == Case::Cache {
        want_files.push("/lib/libz.so.1");
    }
    if case != Case::Damaged {
        want_files.push("/etc/passwd");
    }
    for f in want_files {
        if !files.contains(&f) {
            failures.push(format!("{f} is missing from the new root: {files:?}"));
        }
    }
    if values("pid1") != ["init"] {
        failures.push(format!("PID 1 is {:?}, want busybox init", values("pid1")));
    }
    if values("root") != ["tmpfs"] {
        failures.push(format!("the root is {:?}, want tmpfs", values("root")));
    }
    if values("hostname") != [HOSTNAME] {
        failures.push(format!(
            "hostname {:?}: the overlay's was not kept",
            values("hostname")
        ));
    }
    if values("inittab") != [INITTAB_FIRST] {
        failures.push(format!(
            "inittab starts {:?}: the overlay's was not kept",
            values("inittab")
        ));
    }
    let world = values("world");
    if case == Case::Missing
        && !world
            .iter()
            .any(|w| w.split_whitespace().any(|p| p == "nosuchpkg"))
    {
        failures.push(format!("the world lost nosuchpkg: {world:?}"));
    }
    let new = values("apk-new");
    if !new.is_empty() {
        failures.push(format!(".apk-new files in the new root: {new:?}"));
    }
    let media = values("media");
    let want_media = if case == Case::Cache {
        "/media/usb"
    } else {
        "/media/vda1"
    };
    if !media
        .iter()
        .any(|l| l.split_whitespace().next() == Some(want_media))
    {
        failures.push(format!(
            "{want_media} is not mounted in the new root: {media:?}"
        ));
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_markers_are_read_from_console_lines() {
        let log = "junk\r\nREALAPK installed=musl\r\n[ 1.0] REALAPK file=/bin/sh\nREALAPK-END\n";
        assert_eq!(
            markers(log),
            [
                ("installed".to_string(), "musl".to_string()),
                ("file".to_string(), "/bin/sh".to_string())
            ]
        );
    }

    /// A report of a complete boot whose musl loader is LOADER.
    fn boot_report(loader: &str) -> Outcome {
        let mut log = String::from("REALAPK-BEGIN\nREALAPK pid1=init\nREALAPK root=tmpfs\n");
        for p in alpine_repo::BOOT_PACKAGES.iter().chain(&["alpine-base"]) {
            log.push_str(&format!("REALAPK installed={p}\n"));
        }
        for f in [
            "/bin/busybox",
            "/bin/sh",
            "/sbin/init",
            "/bin/ls",
            "/etc/passwd",
            loader,
        ] {
            log.push_str(&format!("REALAPK file={f}\n"));
        }
        log.push_str(&format!(
            "REALAPK hostname={HOSTNAME}\nREALAPK inittab={INITTAB_FIRST}\n\
             REALAPK media=/media/vda1 ext4\n{END}\n"
        ));
        Outcome {
            log,
            log_path: std::path::PathBuf::from("serial.log"),
            status: None,
            timed_out: false,
            stopped: false,
            elapsed: std::time::Duration::from_secs(1),
        }
    }

    #[test]
    fn aarch64_real_apk_wants_the_aarch64_musl_loader_in_the_new_root() {
        let arm = boot_report("/lib/ld-musl-aarch64.so.1");
        assert_eq!(check(&arm, Arch::Aarch64, Case::Boot), Vec::<String>::new());
        // An x86_64 root booted on the aarch64 machine is a failure.
        let x86 = boot_report("/lib/ld-musl-x86_64.so.1");
        let failures = check(&x86, Arch::Aarch64, Case::Boot);
        assert!(
            failures
                .iter()
                .any(|f| f.contains("/lib/ld-musl-aarch64.so.1")),
            "{failures:?}"
        );
        assert_eq!(check(&x86, Arch::X86_64, Case::Boot), Vec::<String>::new());
    }

    #[test]
    fn lbu_overlay_lists_parents_first_and_keeps_the_cache_symlink() {
        let gz = lbu_overlay(
            &[FileSpec::new("etc/apk/world", 0o644, "alpine-base\n")],
            &[("etc/apk/cache", "/media/usb/cache")],
        )
        .expect("overlay");
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
        let got: Vec<(String, Option<String>)> = a
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.path().expect("path").to_string_lossy().into_owned(),
                    e.link_name()
                        .expect("link")
                        .map(|l| l.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("etc/".to_string(), None),
                ("etc/apk/".to_string(), None),
                ("etc/apk/world".to_string(), None),
                (
                    "etc/apk/cache".to_string(),
                    Some("/media/usb/cache".to_string())
                ),
            ]
        );
    }
}
