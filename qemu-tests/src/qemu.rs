//! Running QEMU with the serial console captured to a file, a per-boot
//! timeout, and an accelerator chosen by a real boot probe.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub const QEMU: &str = "qemu-system-x86_64";

mod arch;
mod monitor;
pub use arch::Arch;
pub(crate) use monitor::Monitor;
use monitor::MONITOR_POLL;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    fn args(self) -> [&'static str; 4] {
        match self {
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
            // -cpu host aborts on MSR 0x10a without this.
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host,-arch-capabilities"],
        }
    }

    /// Per-boot limit: TCG boots take 10-25 s, more on a loaded machine.
    pub fn boot_timeout(self) -> Duration {
        match self {
            Accel::Tcg => Duration::from_secs(150),
            Accel::Kvm => Duration::from_secs(60),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// KVM only counts when a kernel really prints its banner under it: on
/// nested hypervisors `/dev/kvm` can exist and still spin forever.
/// `ALPINIT_ACCEL=tcg|kvm` skips the probe.
pub fn probe_accel(kernel: &Path, log: &Path) -> Accel {
    match std::env::var("ALPINIT_ACCEL").as_deref() {
        Ok("tcg") => return Accel::Tcg,
        Ok("kvm") => return Accel::Kvm,
        _ => {}
    }
    if !Path::new("/dev/kvm").exists() {
        return Accel::Tcg;
    }
    let mut vm = Vm::new(Accel::Kvm);
    vm.args(["-kernel"])
        .arg(kernel)
        .args(["-append", "console=ttyS0 panic=-1"]);
    let banner = |log: &str| log.contains("Linux version");
    match run(&vm, log, Duration::from_secs(20), Some(&banner)) {
        Ok(outcome) if banner(&outcome.log) => Accel::Kvm,
        _ => Accel::Tcg,
    }
}

/// A QEMU command line under construction (the common prefix from the rig
/// notes: pc machine, no default devices, no reboot, no monitor).
#[derive(Debug, Clone)]
pub struct Vm {
    arch: Arch,
    args: Vec<OsString>,
    disks: usize,
    usb: usize,
    xhci: bool,
    /// Console input to type; see `console.rs`.
    pub(crate) console: Vec<crate::console::Step>,
    /// Monitor commands to send (hot-plug); see [`Monitor`].
    pub(crate) monitor: Vec<MonitorStep>,
}

/// Once `after` has been printed on the console (later than the previous
/// step's trigger), wait `delay`, then send `command` to QEMU's human
/// monitor (`device_add ...`, `device_del ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorStep {
    pub after: String,
    pub delay: Duration,
    pub command: String,
}

impl Vm {
    pub fn new(accel: Accel) -> Vm {
        Vm::for_arch(Arch::X86_64, accel)
    }

    /// The common prefix for ARCH: x86_64 as in the rig notes (`pc`, no
    /// default devices); aarch64 is the `virt` board with a Cortex-A57
    /// under TCG whatever ACCEL says (its PL011 UART and PCIe host are part
    /// of the board, so `-nodefaults` keeps them). `max` would add pointer
    /// authentication, which TCG emulates slowly.
    pub fn for_arch(arch: Arch, accel: Accel) -> Vm {
        let mut vm = Vm {
            arch,
            args: Vec::new(),
            disks: 0,
            usb: 0,
            xhci: false,
            console: Vec::new(),
            monitor: Vec::new(),
        };
        match arch {
            Arch::X86_64 => vm.args(accel.args()).args(["-M", "pc"]),
            Arch::Aarch64 => vm.args(["-accel", "tcg", "-cpu", "cortex-a57", "-M", "virt"]),
        };
        vm.args([
            "-nodefaults",
            "-m",
            "512",
            "-smp",
            "1",
            "-display",
            "none",
            "-no-reboot",
            "-monitor",
            "none",
        ]);
        vm
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Vm
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn arg(&mut self, arg: impl Into<OsString>) -> &mut Vm {
        self.args.push(arg.into());
        self
    }

    pub fn kernel_boot(&mut self, kernel: &Path, initrd: &Path, append: &str) -> &mut Vm {
        self.arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", append])
    }

    /// A virtio disk; images are never modified (`snapshot=on`).
    pub fn virtio_disk(&mut self, image: &Path) -> &mut Vm {
        let id = format!("d{}", self.disks);
        self.disks += 1;
        self.arg("-drive")
            .arg(drive(image, &id))
            .args(["-device", &format!("virtio-blk-pci,drive={id}")])
    }

    /// A removable USB stick on an xhci controller.
    pub fn usb_stick(&mut self, image: &Path) -> &mut Vm {
        self.xhci();
        let id = format!("stick{}", self.usb);
        self.usb += 1;
        self.arg("-drive").arg(drive(image, &id)).args([
            "-device",
            &format!("usb-storage,bus=hc.0,drive={id},removable=on"),
        ])
    }

    /// An SD card in a PCI SDHCI controller, as the `virt` board can have
    /// it (the Raspberry Pi's own controller is not on `virt`): the kernel's
    /// `sdhci-pci` and `mmc_block` give `mmcblk0`.
    pub fn sd_card(&mut self, image: &Path) -> &mut Vm {
        let id = format!("d{}", self.disks);
        self.disks += 1;
        self.args(["-device", "sdhci-pci"])
            .arg("-drive")
            .arg(drive(image, &id))
            .args(["-device", &format!("sd-card,drive={id}")])
    }

    /// An NVMe disk (its namespaces are scanned after the driver's probe
    /// returns, in a kernel work item).
    pub fn nvme_disk(&mut self, image: &Path) -> &mut Vm {
        let id = format!("d{}", self.disks);
        self.disks += 1;
        self.arg("-drive")
            .arg(drive(image, &id))
            .args(["-device", &format!("nvme,drive={id},serial=alpinit{id}")])
    }

    /// A data CD on the PIIX IDE controller (`-M pc`), secondary master.
    pub fn ide_cdrom(&mut self, iso: &Path) -> &mut Vm {
        let id = format!("d{}", self.disks);
        self.disks += 1;
        self.arg("-drive")
            .arg(cdrom_drive(iso, &id))
            .args(["-device", &format!("ide-cd,drive={id},bus=ide.1,unit=0")])
    }

    /// A data CD on an AHCI controller: switches the machine to q35,
    /// whose built-in ICH9 AHCI is the `ide.N` buses.
    pub fn ahci_cdrom(&mut self, iso: &Path) -> &mut Vm {
        self.machine("q35");
        let id = format!("d{}", self.disks);
        self.disks += 1;
        self.arg("-drive")
            .arg(cdrom_drive(iso, &id))
            .args(["-device", &format!("ide-cd,drive={id},bus=ide.2")])
    }

    /// Replaces the machine type given by `new` (`pc`).
    pub fn machine(&mut self, name: &str) -> &mut Vm {
        if let Some(i) = self.args.iter().position(|a| a == "-M") {
            if let Some(m) = self.args.get_mut(i + 1) {
                *m = name.into();
            }
        }
        self
    }

    /// Boot from an ISO on the PIIX IDE CD-ROM.
    pub fn cdrom_boot(&mut self, iso: &Path) -> &mut Vm {
        self.args(["-boot", "d", "-cdrom"]).arg(iso)
    }

    /// Adds a monitor step; a VM with steps gets a monitor socket.
    pub fn monitor_after(&mut self, after: &str, delay: Duration, command: &str) -> &mut Vm {
        self.monitor.push(MonitorStep {
            after: after.to_string(),
            delay,
            command: command.to_string(),
        });
        self
    }

    /// A drive that is defined but not attached: `device_add` plugs it.
    pub fn spare_drive(&mut self, image: &Path, id: &str) -> &mut Vm {
        self.arg("-drive").arg(drive(image, id))
    }

    /// The xhci controller hot-plugged sticks go on (`bus=hc.0`).
    pub fn xhci(&mut self) -> &mut Vm {
        if !self.xhci {
            self.args(["-device", "qemu-xhci,id=hc"]);
            self.xhci = true;
        }
        self
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(self.arch.qemu());
        cmd.args(&self.args);
        cmd
    }

    /// The command for a boot logging to LOG: with monitor steps, the
    /// monitor listens on `LOG.monitor.sock` instead of being off.
    pub(crate) fn command_for(&self, log: &Path) -> Command {
        let mut cmd = Command::new(self.arch.qemu());
        let mut args = self.args.iter();
        while let Some(arg) = args.next() {
            cmd.arg(arg);
            if arg == "-monitor" && !self.monitor.is_empty() {
                let _ = args.next();
                let mut spec = OsString::from("unix:");
                spec.push(Monitor::socket_path(log));
                spec.push(",server=on,wait=off");
                cmd.arg(spec);
            }
        }
        cmd
    }

    pub fn shell_line(&self) -> String {
        let mut line = String::from(self.arch.qemu());
        for arg in &self.args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    }
}

fn drive(image: &Path, id: &str) -> OsString {
    let mut spec = OsString::from("file=");
    spec.push(image);
    spec.push(format!(",if=none,id={id},format=raw,snapshot=on"));
    spec
}

fn cdrom_drive(iso: &Path, id: &str) -> OsString {
    let mut spec = OsString::from("file=");
    spec.push(iso);
    spec.push(format!(
        ",if=none,id={id},media=cdrom,format=raw,readonly=on"
    ));
    spec
}

#[derive(Debug)]
pub struct Outcome {
    pub log: String,
    pub log_path: PathBuf,
    /// QEMU's exit status when it ended by itself (power off, reboot).
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    /// The stop condition matched and QEMU was killed.
    pub stopped: bool,
    pub elapsed: Duration,
}

/// Boots VM with the serial console written to LOG. QEMU is killed when
/// TIMEOUT passes or when STOP matches the log so far.
pub fn run(
    vm: &Vm,
    log: &Path,
    timeout: Duration,
    stop: Option<&dyn Fn(&str) -> bool>,
) -> Result<Outcome> {
    if !vm.console.is_empty() {
        return crate::console::run(vm, log, timeout, stop);
    }
    if let Some(parent) = log.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(log, b"").with_context(|| format!("truncating {}", log.display()))?;
    let mut serial = OsString::from("file:");
    serial.push(log);
    let stderr_path = log.with_extension("qemu-stderr");
    let stderr = fs::File::create(&stderr_path)
        .with_context(|| format!("creating {}", stderr_path.display()))?;
    let started = Instant::now();
    let mut monitor = Monitor::new(vm, log)?;
    let mut child = vm
        .command_for(log)
        .arg("-serial")
        .arg(serial)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {}", vm.arch.qemu()))?;
    let mut outcome = Outcome {
        log: String::new(),
        log_path: log.to_path_buf(),
        status: None,
        timed_out: false,
        stopped: false,
        elapsed: Duration::ZERO,
    };
    loop {
        if let Some(status) = child.try_wait().context("waiting for qemu")? {
            outcome.status = Some(status);
            break;
        }
        let text = read_log(log);
        monitor.poll(&text, started)?;
        if stop.is_some_and(|stop| stop(&text)) {
            outcome.stopped = true;
        } else if started.elapsed() >= timeout {
            outcome.timed_out = true;
        }
        if outcome.stopped || outcome.timed_out {
            // The child is our own QEMU; kill it by handle, then reap it.
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(if monitor.waiting() {
            MONITOR_POLL
        } else {
            Duration::from_millis(200)
        });
    }
    outcome.elapsed = started.elapsed();
    outcome.log = collect_log(log, &stderr_path);
    Ok(outcome)
}

/// The serial log, followed by whatever QEMU itself wrote to stderr.
pub(crate) fn collect_log(log: &Path, stderr_path: &Path) -> String {
    let mut text = read_log(log);
    let qemu_errors = fs::read_to_string(stderr_path).unwrap_or_default();
    if !qemu_errors.trim().is_empty() {
        text.push_str("\n[qemu stderr]\n");
        text.push_str(&qemu_errors);
    }
    text
}

pub(crate) fn read_log(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Boots VM with the console on this terminal (Ctrl-A X quits).
pub fn run_interactive(vm: &Vm) -> Result<ExitStatus> {
    vm.command()
        .args(["-serial", "mon:stdio"])
        .status()
        .with_context(|| format!("starting {}", vm.arch.qemu()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_follow_the_rig_notes() {
        let mut vm = Vm::new(Accel::Tcg);
        vm.kernel_boot(
            Path::new("/k"),
            Path::new("/i.gz"),
            "console=ttyS0 panic=-1",
        )
        .virtio_disk(Path::new("/a.img"))
        .virtio_disk(Path::new("/b.img"))
        .usb_stick(Path::new("/u.img"));
        let line = vm.shell_line();
        assert!(line.starts_with("qemu-system-x86_64 -accel tcg -cpu max -M pc -nodefaults"));
        for part in [
            "-kernel /k -initrd /i.gz -append console=ttyS0 panic=-1",
            "-drive file=/a.img,if=none,id=d0,format=raw,snapshot=on -device virtio-blk-pci,drive=d0",
            "-drive file=/b.img,if=none,id=d1,format=raw,snapshot=on -device virtio-blk-pci,drive=d1",
            "-device qemu-xhci,id=hc -drive file=/u.img,if=none,id=stick0,format=raw,snapshot=on",
            "-device usb-storage,bus=hc.0,drive=stick0,removable=on",
            "-no-reboot",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
        let kvm = Vm::new(Accel::Kvm).shell_line();
        assert!(kvm.contains("-accel kvm -cpu host,-arch-capabilities"));
    }

    #[test]
    fn cdroms_sit_on_piix_ide_or_q35_ahci() {
        let mut vm = Vm::new(Accel::Tcg);
        vm.virtio_disk(Path::new("/a.img"))
            .ide_cdrom(Path::new("/c.iso"));
        let line = vm.shell_line();
        assert!(line.contains("-M pc "), "{line}");
        assert!(
            line.contains(
                "-drive file=/c.iso,if=none,id=d1,media=cdrom,format=raw,readonly=on \
             -device ide-cd,drive=d1,bus=ide.1,unit=0"
            ),
            "{line}"
        );
        let mut vm = Vm::new(Accel::Tcg);
        vm.ahci_cdrom(Path::new("/c.iso"));
        let line = vm.shell_line();
        assert!(line.contains("-M q35 "), "{line}");
        assert!(!line.contains("-M pc"), "{line}");
        assert!(line.contains("-device ide-cd,drive=d0,bus=ide.2"), "{line}");
    }

    #[test]
    fn monitor_steps_open_a_monitor_socket_beside_the_log() {
        let mut vm = Vm::new(Accel::Tcg);
        let log = Path::new("/t/serial.log");
        let plain: Vec<_> = vm
            .command_for(log)
            .get_args()
            .map(|a| a.to_owned())
            .collect();
        assert!(plain
            .windows(2)
            .any(|w| w[0] == "-monitor" && w[1] == "none"));
        vm.monitor_after("x", Duration::ZERO, "device_del ovl");
        let args: Vec<_> = vm
            .command_for(log)
            .get_args()
            .map(|a| a.to_owned())
            .collect();
        assert!(args.windows(2).any(
            |w| w[0] == "-monitor" && w[1] == "unix:/t/serial.monitor.sock,server=on,wait=off"
        ));
        assert!(!args
            .windows(2)
            .any(|w| w[0] == "-monitor" && w[1] == "none"));
        assert_eq!(args.len(), plain.len());
    }

    #[test]
    fn aarch64_boots_the_virt_board_under_tcg_with_its_own_qemu() {
        for accel in [Accel::Tcg, Accel::Kvm] {
            let mut vm = Vm::for_arch(Arch::Aarch64, accel);
            vm.sd_card(Path::new("/sd.img"))
                .usb_stick(Path::new("/u.img"));
            let line = vm.shell_line();
            assert!(
                line.starts_with(
                    "qemu-system-aarch64 -accel tcg -cpu cortex-a57 -M virt -nodefaults"
                ),
                "{line}"
            );
            assert!(!line.contains("-M pc"), "{line}");
            assert!(
                line.contains(
                    "-device sdhci-pci -drive file=/sd.img,if=none,id=d0,format=raw,snapshot=on \
                     -device sd-card,drive=d0"
                ),
                "{line}"
            );
            assert!(line.contains("-device qemu-xhci,id=hc"), "{line}");
            assert_eq!(vm.command().get_program(), "qemu-system-aarch64");
        }
        assert_eq!(Vm::new(Accel::Tcg).arch(), Arch::X86_64);
    }

    #[test]
    fn xhci_is_added_once() {
        let mut vm = Vm::new(Accel::Tcg);
        vm.usb_stick(Path::new("/u1")).usb_stick(Path::new("/u2"));
        assert_eq!(vm.shell_line().matches("qemu-xhci").count(), 1);
    }
}
