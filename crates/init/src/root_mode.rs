//! Root mode (`root=`): wait for the root device and mount it, retrying
//! after the recovery shell until it works (or `panic=` gives up).

use crate::discovery::{self, DeviceSpec};
use crate::early::Early;
use crate::failure::{End, Failure, Policy};
use crate::layout::Layout;
use crate::log;
use crate::platform::Platform;
use crate::wait::WaitPolicy;
use alpinit_cmdline::Cmdline;
use alpinit_kmod::Loader;

pub fn mount(
    p: &Platform<'_>,
    layout: &Layout,
    cmdline: &Cmdline,
    loader: &Loader,
    root: &str,
    early: &Early,
    policy: &Policy,
) -> Result<(), End> {
    for opt in ["overlaytmpfs", "usrflags", "cryptroot"] {
        if cmdline.get(opt).is_some() {
            log::warn(&format!(
                "{opt}= is not supported in root mode by this version, ignored"
            ));
        }
    }
    let options = discovery::Options {
        uevent_buf_size: cmdline.uevent_buf_size().unwrap_or(4 << 20),
        dev_is_tmpfs: early.dev_is_tmpfs,
        policy: WaitPolicy::default(),
        wanted: Some(DeviceSpec::parse(root)),
        scan_media: false,
    };
    if let Some(dataset) = root.strip_prefix("ZFS=") {
        let force = crate::assemble::zfs::force_requested(layout);
        while let Err(source) = crate::assemble::zfs::mount_root(
            p,
            layout,
            loader,
            dataset,
            force,
            cmdline.rootfstype(),
            cmdline.get("rootflags"),
            options.clone(),
        ) {
            policy.handle(p, &Failure::Root { source })?;
        }
        return Ok(());
    }
    while let Err(source) = crate::rootfs::mount_root(
        p,
        layout,
        loader,
        root,
        cmdline.rootfstype(),
        cmdline.get("rootflags"),
        options.clone(),
    ) {
        policy.handle(p, &Failure::Root { source })?;
    }
    Ok(())
}
