//! Resolves the real PCI modaliases of this machine against a real module index: the host's
//! own, or the one named by `ALPINIT_TEST_MODDIR` (e.g. an unpacked Debian kernel package
//! after `depmod -b`), when there is one.

use std::path::PathBuf;

use alpinit_kmod::{ModprobeConfig, ModuleIndex};

fn release() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    Some(text.trim().to_owned())
}

#[test]
fn host_pci_modaliases_resolve() {
    let moddir = match (std::env::var_os("ALPINIT_TEST_MODDIR"), release()) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(release)) => PathBuf::from("/lib/modules").join(release),
        (None, None) => {
            eprintln!("note: no /proc/sys/kernel/osrelease, skipping");
            return;
        }
    };
    if !moddir.join("modules.alias").exists() || !moddir.join("modules.dep").exists() {
        eprintln!("note: {} has no module index, skipping", moddir.display());
        return;
    }
    let index = ModuleIndex::load(&moddir).unwrap();
    let config = ModprobeConfig::default();
    let Ok(devices) = std::fs::read_dir("/sys/bus/pci/devices") else {
        eprintln!("note: no /sys/bus/pci/devices, skipping");
        return;
    };
    let mut resolved = 0;
    for device in devices.flatten() {
        let Ok(modalias) = std::fs::read_to_string(device.path().join("modalias")) else {
            continue;
        };
        let modalias = modalias.trim();
        for name in index.lookup(modalias, &config) {
            // Every match must be loadable or built in, and plannable with its file present.
            let plan = index.plan(&name, &config).unwrap();
            for step in &plan {
                assert!(
                    step.path.exists(),
                    "{modalias} -> {name}: {} missing",
                    step.path.display()
                );
            }
            resolved += 1;
        }
        // The driver bound to the device, when it is a module, must be among the matches.
        let driver = std::fs::read_link(device.path().join("driver/module"));
        if let Ok(driver) = driver {
            let name = driver.file_name().unwrap().to_string_lossy().into_owned();
            if index.contains(&name) {
                assert!(
                    index.lookup(modalias, &config).contains(&name),
                    "{modalias} should find {name}"
                );
            }
        }
    }
    eprintln!("note: {resolved} modalias matches resolved on the host");
}
