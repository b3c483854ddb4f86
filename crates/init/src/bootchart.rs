//! `chart`: boot charting with the image's `/sbin/bootchartd` (mkinitfs'
//! `bootchart` feature, `bootchartd.in` in mkinitfs' source), driven as
//! `initramfs-init` drives it: `start-initfs` right after the options are
//! read, `stop-initfs /sysroot` before the hand-over, and the new root's
//! init started through `bootchartd start-rootfs INIT ARGS`.

use crate::layout::Layout;
use crate::log;
use crate::platform::{Platform, Stdin};
use alpinit_cmdline::Cmdline;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Where Alpine's image has the logger, and where `stop-initfs` puts it in
/// the new root.
pub const BOOTCHARTD: &str = "/sbin/bootchartd";

/// Whether charting runs (the logger started).
#[derive(Debug, Default)]
pub struct Chart {
    bootchartd: Option<PathBuf>,
}

impl Chart {
    /// `acct` is installed for the logger's process accounting.
    pub fn running(&self) -> bool {
        self.bootchartd.is_some()
    }
}

/// `chart`: starts the logger when the image has it; says once when it
/// does not.
pub fn start(p: &Platform<'_>, layout: &Layout, cmdline: &Cmdline) -> Chart {
    if !cmdline.is_yes("chart") {
        return Chart::default();
    }
    let prog = layout.path(BOOTCHARTD);
    let executable =
        std::fs::metadata(&prog).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if !executable {
        log::warn(&format!(
            "chart: no {BOOTCHARTD} in this initramfs (mkinitfs feature bootchart); boot charting not started"
        ));
        return Chart::default();
    }
    let progress = log::Progress::begin("Starting bootchart logging");
    let args = ["start-initfs".to_owned()];
    match p.spawn.run(&prog, &args, &[], Stdin::Null) {
        Ok(s) if !s.success() => log::warn(&format!("{BOOTCHARTD} start-initfs: {s}")),
        Ok(_) => {}
        Err(e) => log::warn(&format!("running {}: {e}", prog.display())),
    }
    // Alpine reports this step as done whatever the logger said.
    progress.ok();
    Chart {
        bootchartd: Some(prog),
    }
}

/// Before the hand-over: `bootchartd stop-initfs /sysroot` moves the log
/// (and the logger) into the new root. Returns the program and arguments
/// the new root's init is started behind (empty when charting is off).
pub fn stop(p: &Platform<'_>, layout: &Layout, chart: &Chart) -> Vec<String> {
    let Some(prog) = &chart.bootchartd else {
        return Vec::new();
    };
    let sysroot = crate::packages::unroot(layout, &layout.sysroot());
    let args = ["stop-initfs".to_owned(), sysroot];
    match p.spawn.run(prog, &args, &[], Stdin::Null) {
        Ok(s) if !s.success() => log::warn(&format!("{BOOTCHARTD} stop-initfs: {s}")),
        Ok(_) => {}
        Err(e) => log::warn(&format!("running {}: {e}", prog.display())),
    }
    vec![BOOTCHARTD.to_owned(), "start-rootfs".to_owned()]
}
