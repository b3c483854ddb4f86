//! Root mode (`root=`): wait for the root device and mount it, retrying
//! after the recovery shell until it works (or `panic=` gives up). With
//! `cryptroot=` the LUKS volume is unlocked and mapped first (`crate::crypt`).

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
    for opt in ["overlaytmpfs", "usrflags"] {
        if cmdline.get(opt).is_some() {
            log::warn(&format!(
                "{opt}= is not supported in root mode by this version, ignored"
            ));
        }
    }
    let mut options = discovery::Options {
        uevent_buf_size: cmdline.uevent_buf_size().unwrap_or(4 << 20),
        dev_is_tmpfs: early.dev_is_tmpfs,
        policy: WaitPolicy::default(),
        wanted: Some(DeviceSpec::parse(root)),
        scan_media: false,
    };
    // cryptroot=: unlock and map first; root=/dev/mapper/NAME is then the mapping.
    let mut root = root.to_owned();
    let crypt = crate::crypt::CryptOptions::from_cmdline(cmdline)
        .or_else(|source| policy.handle(p, &Failure::Crypt { source }).map(|()| None))?;
    if let Some(crypt) = crypt {
        loop {
            match crate::crypt::find_and_open(p, layout, loader, &crypt, &options) {
                Ok(dm) => {
                    if root == format!("/dev/mapper/{}", crypt.name) {
                        root = format!("/dev/{dm}");
                        options.wanted = Some(DeviceSpec::parse(&root));
                    }
                    break;
                }
                Err(source) => policy.handle(p, &Failure::Crypt { source })?,
            }
        }
    }
    while let Err(source) = crate::rootfs::mount_root(
        p,
        layout,
        loader,
        &root,
        cmdline.rootfstype(),
        cmdline.get("rootflags"),
        options.clone(),
    ) {
        policy.handle(p, &Failure::Root { source })?;
    }
    Ok(())
}
