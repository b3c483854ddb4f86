//! Root mode: `root=` names an installed root file system; the init waits
//! for it, mounts it (read-only unless `rootflags=` says otherwise) and
//! switch_roots without scanning for boot media.

use std::path::Path;

use anyhow::{Context, Result};

use super::checks::*;
use super::*;

pub(super) const HOST_ROOT: &str = "alpinit-root";

/// An installed root labelled ROOT whose /sbin/init is the report init.
pub(super) fn root_disk(assets: &Assets, dir: &Path) -> Result<std::path::PathBuf> {
    let init = fs::read(&assets.report_init)
        .with_context(|| format!("reading {}", assets.report_init.display()))?;
    disk(
        dir,
        "root",
        Filesystem::Ext4,
        &[
            FileSpec::new("etc/hostname", 0o644, format!("{HOST_ROOT}\n")),
            FileSpec::new("sbin/init", 0o755, init),
            FileSpec::new("etc/alpinit-test/inspect", 0o644, "/sbin/init\n"),
            // An installed root has the API mount points (read-only root: the init cannot make them).
            FileSpec::new("proc/.keep", 0o644, ""),
            FileSpec::new("sys/.keep", 0o644, ""),
            FileSpec::new("dev/.keep", 0o644, ""),
            // An apkovl on the root must be ignored: root mode does not scan media.
            FileSpec::new("decoy.apkovl.tar.gz", 0o644, "not used"),
        ],
    )
}

pub(super) fn setup_root_label(assets: &Assets, dir: &Path) -> Result<Setup> {
    let img = root_disk(assets, dir)?;
    let mut vm = kernel_vm(assets, ImageKind::Standard, "root=LABEL=ROOT")?;
    vm.virtio_disk(&img);
    Ok(reported(assets, vm))
}

pub(super) fn check_root_label(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    root_booted(outcome, report, |failures, report| {
        if report.pid() != Some(1) {
            failures.push(format!(
                "report-init pid is {:?}, want 1",
                report.get("pid")
            ));
        }
        want_hostname(failures, report, HOST_ROOT);
        want_initramfs_freed(failures, report);
        match report.mount_at("/") {
            Some(m) if m.source == "/dev/vda1" && m.fstype == "ext4" && m.is_read_only() => {}
            other => failures.push(format!("/ is {other:?}, want /dev/vda1 ext4 read-only")),
        }
        if !outcome.log.contains("Mounting root: ") || !outcome.log.contains("Mounting root: ok.") {
            failures.push("no `Mounting root: ok.` in the kernel log".to_string());
        }
        if outcome.log.contains("decoy.apkovl.tar.gz") {
            failures.push("root mode scanned the root for apkovls".to_string());
        }
    })
}

pub(super) fn scenarios() -> [Scenario; 2] {
    [
        Scenario {
            name: "root-overlay-usr-resume",
            about: "root=LABEL=ROOT overlaytmpfs, /usr on its own partition from the root's fstab, resume= on a swap partition",
            image: ImageKind::Standard,
            setup: setup_overlay_usr_resume,
            check: check_overlay_usr_resume,
        },
        Scenario {
            name: "root-named-drivers",
            about: "root=LABEL=ROOT modules=virtio_pci,virtio_blk: the root they bring is mounted without a coldplug (no IDE driver loaded)",
            image: ImageKind::Standard,
            setup: setup_named_drivers,
            check: check_named_drivers,
        },
    ]
}

fn setup_named_drivers(assets: &Assets, dir: &Path) -> Result<Setup> {
    let img = root_disk(assets, dir)?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        "root=LABEL=ROOT modules=virtio_pci,virtio_blk",
    )?;
    vm.virtio_disk(&img);
    Ok(reported(assets, vm))
}

/// `root-label`'s checks, and no sweep: the machine's IDE controller
/// (which coldplug drives with ata_piix, announcing its SCSI host) is
/// left to the new root.
fn check_named_drivers(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    let mut failures = check_root_label(outcome, report);
    if outcome.log.contains("alpinit: coldplug: ") {
        failures.push("a coldplug ran although the named drivers brought the root".into());
    }
    if outcome.log.contains("scsi host0: ata_piix") {
        failures.push("ata_piix was loaded: the buses were swept".into());
    }
    failures
}

const HOST_OVERLAY: &str = "alpinit-overlay-root";
const USR_MARKER: &str = "/usr/share/alpinit-usr";
const RESUME_OFFSET: u64 = 16;
/// The second disk's layout, in 512-byte sectors: `/usr` (ext4, 16 MiB),
/// then swap (4 MiB).
const USR_START: u64 = 2048;
const USR_SECTORS: u64 = 16 * 2048;
const SWAP_START: u64 = USR_START + USR_SECTORS;
const SWAP_SECTORS: u64 = 4 * 2048;

fn run(cmd: &mut std::process::Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    // output() gives the child no stdin unless the caller set one.
    let out = cmd.output().with_context(|| format!("starting {shown}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{shown} failed: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// vdb: partition 1 the root's `/usr` (ext4 labelled USR), partition 2
/// swap labelled SWAP (no hibernation image in it).
fn usr_swap_disk(dir: &Path) -> Result<std::path::PathBuf> {
    use std::io::{Seek, SeekFrom};
    let tree = dir.join("usr.tree");
    fs::create_dir_all(&tree)?;
    media::write_tree(
        &tree,
        &[FileSpec::new("share/alpinit-usr", 0o644, "usr partition\n")],
    )?;
    let usr = dir.join("usr.part");
    let _ = fs::remove_file(&usr);
    run(std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "USR", "-d"])
        .arg(&tree)
        .arg(&usr)
        .arg(format!("{}k", USR_SECTORS / 2)))?;
    let swap = dir.join("swap.part");
    fs::File::create(&swap)?.set_len(SWAP_SECTORS * 512)?;
    run(std::process::Command::new("mkswap")
        .args(["-q", "-L", "SWAP"])
        .arg(&swap))?;
    let img = dir.join("usr-swap.img");
    fs::File::create(&img)?.set_len((SWAP_START + SWAP_SECTORS + 2048) * 512)?;
    let script = format!(
        "label: dos\nstart={USR_START}, size={USR_SECTORS}, type=83\nstart={SWAP_START}, size={SWAP_SECTORS}, type=82\n"
    );
    let script_path = dir.join("usr-swap.sfdisk");
    fs::write(&script_path, script)?;
    run(std::process::Command::new("sfdisk")
        .args(["--no-reread", "--no-tell-kernel", "-q"])
        .arg(&img)
        .stdin(fs::File::open(&script_path)?))?;
    let mut out = fs::OpenOptions::new().write(true).open(&img)?;
    for (part, start) in [(&usr, USR_START), (&swap, SWAP_START)] {
        out.seek(SeekFrom::Start(start * 512))?;
        std::io::copy(&mut fs::File::open(part)?, &mut out)
            .with_context(|| format!("copying {}", part.display()))?;
    }
    Ok(img)
}

fn setup_overlay_usr_resume(assets: &Assets, dir: &Path) -> Result<Setup> {
    let init = fs::read(&assets.report_init)
        .with_context(|| format!("reading {}", assets.report_init.display()))?;
    let inspect = [
        "/sbin/init",
        "/sys/power/resume",
        "/sys/power/resume_offset",
        USR_MARKER,
        // Made by the hand-over's mount moves: a write to `/` that
        // landed in the tmpfs upper layer.
        "/media/root-rw/root/media/root-ro",
    ]
    .join("\n");
    let root = disk(
        dir,
        "root",
        Filesystem::Ext4,
        &[
            FileSpec::new("etc/hostname", 0o644, format!("{HOST_OVERLAY}\n")),
            FileSpec::new("sbin/init", 0o755, init),
            FileSpec::new("etc/alpinit-test/inspect", 0o644, format!("{inspect}\n")),
            FileSpec::new(
                "etc/fstab",
                0o644,
                "LABEL=ROOT\t/\text4\tro\t0 1\nLABEL=USR\t/usr\text4\tdefaults,nodev\t0 2\n",
            ),
            FileSpec::new("usr/.keep", 0o644, ""),
        ],
    )?;
    let second = usr_swap_disk(dir)?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Standard,
        &format!(
            "root=LABEL=ROOT overlaytmpfs overlaytmpfsflags=size=32m resume=LABEL=SWAP resume_offset={RESUME_OFFSET}"
        ),
    )?;
    vm.virtio_disk(&root).virtio_disk(&second);
    Ok(reported(assets, vm))
}

fn check_overlay_usr_resume(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    root_booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_OVERLAY);
        // (a) overlaytmpfs.
        match report.mount_at("/") {
            Some(m) if m.fstype == "overlay" && !m.is_read_only() => {}
            other => failures.push(format!("/ is {other:?}, want a read-write overlay")),
        }
        match report.mount_at("/media/root-ro") {
            Some(m) if m.source == "/dev/vda1" && m.fstype == "ext4" && m.is_read_only() => {}
            other => failures.push(format!(
                "/media/root-ro is {other:?}, want /dev/vda1 ext4 read-only"
            )),
        }
        match report.mount_at("/media/root-rw") {
            Some(m)
                if m.fstype == "tmpfs"
                    && !m.is_read_only()
                    && m.options.iter().any(|o| o == "size=32768k") => {}
            other => failures.push(format!(
                "/media/root-rw is {other:?}, want a read-write tmpfs with size=32768k"
            )),
        }
        match report.inspect("/media/root-rw/root/media/root-ro") {
            Some(i) if i.kind == "dir" => {}
            other => failures.push(format!(
                "the upper layer has no media/root-ro ({other:?}): writes to / did not land in it"
            )),
        }
        // (b) /usr.
        match report.mount_at("/usr") {
            Some(m) if m.source == "/dev/vdb1" && m.fstype == "ext4" && m.is_read_only() => {}
            other => failures.push(format!("/usr is {other:?}, want /dev/vdb1 ext4 read-only")),
        }
        if report.content(USR_MARKER).map(str::trim) != Some("usr partition") {
            failures.push(format!("{USR_MARKER} is not the /usr partition's file"));
        }
        if !outcome.log.contains("Mounting /usr: ok.") {
            failures.push("no `Mounting /usr: ok.` on the console".to_string());
        }
        // (c) resume: the device number the init logged is the one the kernel has.
        let resume = report.content("/sys/power/resume").map(str::trim);
        match resume {
            Some(devno) if devno.ends_with(":18") => {
                let said = format!(
                    "resume: no hibernation image on /dev/vdb2 ({devno}, offset {RESUME_OFFSET})"
                );
                if !outcome.log.contains(&said) {
                    failures.push(format!("no `{said}` in the kernel log"));
                }
            }
            other => failures.push(format!(
                "/sys/power/resume is {other:?}, want vdb2's major:18"
            )),
        }
        if report.content("/sys/power/resume_offset").map(str::trim)
            != Some(RESUME_OFFSET.to_string().as_str())
        {
            failures.push(format!(
                "/sys/power/resume_offset is {:?}, want {RESUME_OFFSET}",
                report.content("/sys/power/resume_offset")
            ));
        }
        if !outcome.log.contains("Resume from disk") {
            failures.push("no `Resume from disk` on the console".to_string());
        }
        if !outcome.log.contains("Mounting root: ok.") {
            failures.push("no `Mounting root: ok.` in the kernel log".to_string());
        }
    })
}
