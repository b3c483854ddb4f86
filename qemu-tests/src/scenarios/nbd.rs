//! `nbd=` on the real kernel: the host's `qemu-nbd` serves a disk (the
//! installed root of `root-label`, read-only) on 127.0.0.1, which QEMU's
//! user network shows the guest as 10.0.2.2; the init configures the
//! network, loads `nbd` with `max_part=8`, attaches the export as
//! `/dev/nbd0` itself (no nbd-client in the image) and mounts its first
//! partition as the root (`nbd-root`), or finds the overlay on it as a
//! boot medium (`nbd-diskless`).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use super::checks::*;
use super::*;

pub(super) fn scenarios() -> [Scenario; 2] {
    [
        Scenario {
            name: "nbd-root",
            about: "ip=dhcp nbd=10.0.2.2:PORT root=/dev/nbd0p1: the host's qemu-nbd export attached in process, its partition mounted as the root",
            image: ImageKind::Assemble,
            setup: setup_nbd_root,
            check: check_nbd_root,
        },
        Scenario {
            name: "nbd-diskless",
            about: "ip=dhcp nbd=10.0.2.2:PORT, no root=: the export's partition is a boot medium, its apkovl applied",
            image: ImageKind::Assemble,
            setup: setup_nbd_diskless,
            check: check_nbd_diskless,
        },
    ]
}

const HOST_NBD_DISKLESS: &str = "alpinit-nbd-diskless";

fn setup_nbd_diskless(assets: &Assets, dir: &Path) -> Result<Setup> {
    let ovl = overlay(assets, HOST_NBD_DISKLESS, &[], Vec::new())?;
    exported(assets, dir, &[super::boot_media::top_apkovl(ovl)], "", 0x32)
}

/// Boots with `nbd=` naming qemu-nbd serving a disk of FILES (and EXTRA on
/// the command line) over the user NIC of MAC's last byte.
fn exported(
    assets: &Assets,
    dir: &Path,
    files: &[FileSpec],
    extra: &str,
    mac: u8,
) -> Result<Setup> {
    let img = disk(dir, "export", Filesystem::Ext4, files)?;
    let port = free_port()?;
    let server = serve(&img, port, &dir.join("qemu-nbd.log"))?;
    let mut vm = kernel_vm(
        assets,
        ImageKind::Assemble,
        &format!("ip=dhcp nbd=10.0.2.2:{port} {extra}"),
    )?;
    vm.user_nic("n0", &crate::netboot::qemu_mac(mac));
    Ok(with_server(vm, server, assets.accel.boot_timeout()))
}

fn check_nbd_diskless(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    super::boot_media::booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_NBD_DISKLESS);
        want_media(failures, report, "/dev/nbd0p1", &["/media/nbd0p1"], "ext4");
        if !outcome.log.contains("alpinit: nbd0: 10.0.2.2:") {
            failures.push("no `nbd0: 10.0.2.2:PORT` line in the kernel log".to_string());
        }
    })
}

const HOST_NBD: &str = "alpinit-nbd-root";
const RO: &str = "/sys/block/nbd0/ro";
const SIZE: &str = "/sys/block/nbd0/size";
/// The export: `disk()`'s 32 MiB image, in 512-byte sectors.
const SECTORS: u64 = 32 * 2048;

/// `qemu-nbd` serving one image until dropped.
struct QemuNbd(Child);

impl Drop for QemuNbd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on now (the kernel's pick for a bind to 0).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn serve(image: &Path, port: u16, log: &Path) -> Result<QemuNbd> {
    let log = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new("qemu-nbd")
        .args([
            "--read-only",
            "--persistent",
            "--format=raw",
            "--bind=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .arg(image)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting qemu-nbd (Debian's qemu-utils; `cargo xtask deps` installs it)")?;
    let server = QemuNbd(child);
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > until {
            bail!("qemu-nbd did not listen on 127.0.0.1:{port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

fn setup_nbd_root(assets: &Assets, dir: &Path) -> Result<Setup> {
    let init = fs::read(&assets.report_init)
        .with_context(|| format!("reading {}", assets.report_init.display()))?;
    let files = [
        FileSpec::new("etc/hostname", 0o644, format!("{HOST_NBD}\n")),
        FileSpec::new("sbin/init", 0o755, init),
        FileSpec::new("etc/alpinit-test/inspect", 0o644, format!("{RO}\n{SIZE}\n")),
        FileSpec::new("proc/.keep", 0o644, ""),
        FileSpec::new("sys/.keep", 0o644, ""),
        FileSpec::new("dev/.keep", 0o644, ""),
    ];
    exported(assets, dir, &files, "root=/dev/nbd0p1", 0x31)
}

fn check_nbd_root(outcome: &Outcome, report: Option<&Report>) -> Vec<String> {
    root_booted(outcome, report, |failures, report| {
        want_hostname(failures, report, HOST_NBD);
        match report.mount_at("/") {
            Some(m) if m.source == "/dev/nbd0p1" && m.fstype == "ext4" && m.is_read_only() => {}
            other => failures.push(format!("/ is {other:?}, want /dev/nbd0p1 ext4 read-only")),
        }
        let content = |path| report.content(path).unwrap_or_default();
        if content(RO).trim() != "1" {
            failures.push(format!(
                "{RO}: {:?}, want 1 (the server's read-only flag passed on)",
                content(RO)
            ));
        }
        if content(SIZE).trim() != SECTORS.to_string() {
            failures.push(format!("{SIZE}: {:?}, want {SECTORS}", content(SIZE)));
        }
        if !outcome.log.contains("alpinit: nbd0: 10.0.2.2:") {
            failures.push("no `nbd0: 10.0.2.2:PORT` line in the kernel log".to_string());
        }
        // Alpine's message when no device could be set up.
        if outcome.log.contains("Failed to setup nbd device.") {
            failures.push("the init printed Alpine's nbd failure message".to_string());
        }
    })
}
