//! Modules missing for the present hardware: every device on a bus that
//! carries MODALIAS and has no driver bound, matched against a module
//! index (the running kernel's, or `--modules DIR`, such as an unpacked
//! image). A match means the module exists but is not loaded; no match for
//! a storage device names the module and feature the boot needs
//! (`crate::modules::DRIVERS`).

use crate::layout::Layout;
use alpinit_kmod::{ModprobeConfig, ModuleIndex};
use std::path::Path;

/// Buses whose devices carry a MODALIAS the boot loads modules for.
const BUSES: &[&str] = &[
    "pci", "usb", "virtio", "scsi", "mmc", "sdio", "platform", "acpi", "hid", "serio",
];

/// Devices listed one by one at most; the rest are counted.
const LIST_LIMIT: usize = 40;

struct Unbound {
    device: String,
    modalias: String,
}

fn unbound(sys: &Path) -> Vec<Unbound> {
    let mut out: Vec<Unbound> = crate::modules::unbound_devices(sys, BUSES)
        .into_iter()
        // CPU feature modules are the new root's business (see discovery).
        .filter(|u| !u.modalias.starts_with("cpu:"))
        .map(|u| Unbound {
            device: format!("{}/{}", u.bus, u.name),
            modalias: u.modalias,
        })
        .collect();
    alpinit_sort::sort_by(&mut out, |a, b| a.device.cmp(&b.device));
    out
}

pub fn report(layout: &Layout, modules: Option<&Path>, out: &mut String) {
    let dir = modules.map(Path::to_owned).or_else(|| {
        let release = std::fs::read_to_string(layout.proc().join("sys/kernel/osrelease")).ok()?;
        Some(layout.path("/lib/modules").join(release.trim()))
    });
    out.push_str("\nModules for the present hardware");
    let index = match &dir {
        Some(d) => {
            out.push_str(&format!(" (index {}):\n", d.display()));
            match ModuleIndex::load(d) {
                Ok(i) => Some(i),
                Err(e) => {
                    out.push_str(&format!(
                        "  no module index: {}; only storage drivers are named\n",
                        crate::failure::chain(&e)
                    ));
                    None
                }
            }
        }
        None => {
            out.push_str(":\n  no kernel release in /proc; only storage drivers are named\n");
            None
        }
    };
    let config = ModprobeConfig::default();
    let mut lines = Vec::new();
    let mut without_module = 0;
    for u in unbound(&layout.sys()) {
        let known = index
            .as_ref()
            .map(|i| i.lookup(&u.modalias, &config))
            .unwrap_or_default();
        let storage = crate::modules::driver_for(&u.modalias);
        if !known.is_empty() {
            lines.push(format!(
                "  {} ({}): no driver bound; the index has {}",
                u.device,
                u.modalias,
                known.join(", ")
            ));
        } else if let Some(module) = storage {
            let builtin = index.as_ref().is_some_and(|i| i.is_builtin(module));
            if !builtin {
                lines.push(format!(
                    "  {} ({}): no driver; {}",
                    u.device,
                    u.modalias,
                    crate::modules::not_in_image(module)
                ));
            }
        } else {
            without_module += 1;
        }
    }
    if lines.is_empty() {
        out.push_str("  no storage device lacks its driver\n");
    }
    let extra = lines.len().saturating_sub(LIST_LIMIT);
    for l in lines.iter().take(LIST_LIMIT) {
        out.push_str(l);
        out.push('\n');
    }
    if extra > 0 {
        out.push_str(&format!("  ... and {extra} more\n"));
    }
    if without_module > 0 && index.is_some() {
        out.push_str(&format!(
            "  {without_module} other device(s) without a driver match no module in the index\n"
        ));
    } else if without_module > 0 {
        out.push_str(&format!(
            "  {without_module} other device(s) without a driver (no index to check them against)\n"
        ));
    }
}
