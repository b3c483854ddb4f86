//! QEMU network devices and the pxelinux TFTP tree for the network-boot
//! scenarios.

use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::qemu::Vm;

/// Debian's pxelinux and syslinux-common files.
const PXELINUX: &[&str] = &["/usr/lib/PXELINUX/pxelinux.0"];
const LDLINUX: &[&str] = &["/usr/lib/syslinux/modules/bios/ldlinux.c32"];

/// A MAC in QEMU's locally administered range, `52:54:00:12:34:LAST`.
pub fn qemu_mac(last: u8) -> String {
    format!("52:54:00:12:34:{last:02x}")
}

impl Vm {
    /// A virtio NIC on QEMU's user network (built-in DHCP at 10.0.2.2, the
    /// host's loopback reachable as 10.0.2.2).
    pub fn user_nic(&mut self, id: &str, mac: &str) -> &mut Vm {
        self.args(["-netdev", &format!("user,id={id}")])
            .args(["-device", &format!("virtio-net-pci,netdev={id},mac={mac}")])
    }

    /// Like [`Vm::user_nic`], with QEMU's TFTP server on TFTP_DIR offering
    /// BOOTFILE, and firmware booting from the network.
    pub fn pxe_boot(&mut self, tftp_dir: &Path, bootfile: &str, mac: &str) -> &mut Vm {
        self.args(["-boot", "n", "-netdev"])
            .arg(format!(
                "user,id=n0,tftp={},bootfile={bootfile}",
                tftp_dir.display()
            ))
            .args(["-device", &format!("virtio-net-pci,netdev=n0,mac={mac}")])
    }

    /// A virtio NIC whose frames go to a UDP port nobody answers on: the
    /// link has carrier but no DHCP server exists.
    pub fn silent_nic(&mut self, id: &str, mac: &str, to_port: u16, from_port: u16) -> &mut Vm {
        self.args([
            "-netdev",
            &format!("socket,id={id},udp=127.0.0.1:{to_port},localaddr=127.0.0.1:{from_port}"),
        ])
        .args(["-device", &format!("virtio-net-pci,netdev={id},mac={mac}")])
    }

    /// The DMI system UUID (`/sys/class/dmi/id/product_uuid` in the guest).
    pub fn uuid(&mut self, uuid: &str) -> &mut Vm {
        self.args(["-uuid", uuid])
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> Result<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").context("binding a UDP probe socket")?;
    Ok(socket.local_addr().context("UDP probe address")?.port())
}

fn first_existing(candidates: &[&str]) -> Result<PathBuf> {
    match candidates.iter().map(Path::new).find(|p| p.is_file()) {
        Some(path) => Ok(path.to_path_buf()),
        None => bail!(
            "none of {} exists (install Debian's pxelinux and syslinux-common)",
            candidates.join(", ")
        ),
    }
}

/// The pxelinux configuration: serial console, `IPAPPEND 2` for `BOOTIF=`,
/// one entry booting KERNEL and INITRD (file names inside the TFTP root).
pub fn pxelinux_config(kernel: &str, initrd: &str, append: &str) -> String {
    format!(
        "SERIAL 0 115200\nPROMPT 0\nTIMEOUT 0\nDEFAULT alpinit\n\nLABEL alpinit\n  KERNEL {kernel}\n  INITRD {initrd}\n  IPAPPEND 2\n  APPEND {append}\n"
    )
}

/// Fills DIR with pxelinux.0, ldlinux.c32, the kernel as `vmlinuz`, the
/// image as `initramfs.gz` and `pxelinux.cfg/default`.
pub fn pxe_tree(dir: &Path, vmlinuz: &Path, initrd: &Path, append: &str) -> Result<()> {
    fs::create_dir_all(dir.join("pxelinux.cfg"))
        .with_context(|| format!("creating {}/pxelinux.cfg", dir.display()))?;
    let copies = [
        (first_existing(PXELINUX)?, "pxelinux.0"),
        (first_existing(LDLINUX)?, "ldlinux.c32"),
        (vmlinuz.to_path_buf(), "vmlinuz"),
        (initrd.to_path_buf(), "initramfs.gz"),
    ];
    for (src, name) in copies {
        fs::copy(&src, dir.join(name)).with_context(|| format!("copying {}", src.display()))?;
    }
    let config = dir.join("pxelinux.cfg").join("default");
    fs::write(&config, pxelinux_config("vmlinuz", "initramfs.gz", append))
        .with_context(|| format!("writing {}", config.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::Accel;

    #[test]
    fn nic_command_lines() {
        let mut vm = Vm::new(Accel::Tcg);
        vm.user_nic("n0", &qemu_mac(0x56))
            .user_nic("n1", &qemu_mac(0x57))
            .silent_nic("n2", &qemu_mac(0x58), 4000, 4001)
            .uuid("11111111-2222-3333-4444-555555555555");
        let line = vm.shell_line();
        for part in [
            "-netdev user,id=n0 -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
            "-netdev user,id=n1 -device virtio-net-pci,netdev=n1,mac=52:54:00:12:34:57",
            "-netdev socket,id=n2,udp=127.0.0.1:4000,localaddr=127.0.0.1:4001",
            "-uuid 11111111-2222-3333-4444-555555555555",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
        let mut pxe = Vm::new(Accel::Tcg);
        pxe.pxe_boot(Path::new("/t"), "pxelinux.0", &qemu_mac(0x56));
        assert!(pxe.shell_line().contains(
            "-boot n -netdev user,id=n0,tftp=/t,bootfile=pxelinux.0 -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"
        ));
    }

    #[test]
    fn pxelinux_config_appends_bootif_and_the_command_line() {
        let cfg = pxelinux_config("vmlinuz", "initramfs.gz", "console=ttyS0 ip=dhcp");
        let lines: Vec<&str> = cfg.lines().map(str::trim).collect();
        for want in [
            "SERIAL 0 115200",
            "KERNEL vmlinuz",
            "INITRD initramfs.gz",
            "IPAPPEND 2",
            "APPEND console=ttyS0 ip=dhcp",
            "DEFAULT alpinit",
        ] {
            assert!(lines.contains(&want), "{want} in {cfg}");
        }
    }
}
