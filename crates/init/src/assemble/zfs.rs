//! `root=ZFS=POOL/DATASET` (mkinitfs `initramfs-init.in`
//! `prepare_zfs_root`): wait for the disks, `zpool import -N -d /dev
//! [-f] POOL`, `zfs load-key` when the dataset is encrypted, then mount
//! the dataset with `-t zfs`.

use super::{helper, AssembleError};
use crate::discovery;
use crate::layout::Layout;
use crate::log::{self, Progress};
use crate::platform::{Platform, Stdin};
use crate::rootfs::{root_mount_options, RootError};
use alpinit_kmod::Loader;

pub const ZPOOL: &str = "/usr/sbin/zpool";
pub const ZFS: &str = "/usr/sbin/zfs";

/// The `zpool import` arguments for `dataset` (`pool/a/b` imports `pool`).
pub fn import_args(dataset: &str, force: bool) -> Vec<&str> {
    let pool = dataset.split('/').next().unwrap_or(dataset);
    let mut args = vec!["import", "-N", "-d", "/dev"];
    if force {
        args.push("-f");
    }
    args.push(pool);
    args
}

/// `zfs_force=1`: upstream reads `$KOPT_zfs_force`, which its option list
/// never fills from the command line (only the environment sets it); here
/// the command-line word works too.
pub fn force_requested(layout: &Layout) -> bool {
    let cmdline = std::fs::read_to_string(layout.proc().join("cmdline")).unwrap_or_default();
    cmdline.split_whitespace().any(|w| w == "zfs_force=1")
        || std::env::var("KOPT_zfs_force").is_ok_and(|v| v == "1")
}

fn zfs_error(dataset: &str, source: AssembleError) -> RootError {
    RootError::Zfs {
        dataset: dataset.to_owned(),
        source,
    }
}

/// Imports the pool, loads the key, mounts `dataset` on the sysroot.
#[allow(clippy::too_many_arguments)]
pub fn mount_root(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &Loader,
    dataset: &str,
    force: bool,
    rootfstype: Option<&str>,
    rootflags: Option<&str>,
    mut options: discovery::Options,
) -> Result<(), RootError> {
    let progress = Progress::begin("Mounting root");
    let result = import_and_mount(
        p,
        layout,
        loader,
        dataset,
        force,
        rootfstype,
        rootflags,
        &mut options,
    );
    match result {
        Ok(()) => {
            progress.ok();
            Ok(())
        }
        Err(e) => {
            progress.failed(&crate::failure::chain(&e));
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn import_and_mount(
    p: &Platform<'_>,
    layout: &Layout,
    loader: &Loader,
    dataset: &str,
    force: bool,
    rootfstype: Option<&str>,
    rootflags: Option<&str>,
    options: &mut discovery::Options,
) -> Result<(), RootError> {
    let pool = dataset.split('/').next().unwrap_or(dataset);
    for tool in [ZPOOL, ZFS] {
        if !super::has_tool(layout, tool) {
            return Err(zfs_error(
                dataset,
                AssembleError::MissingTool {
                    member: format!("pool {pool}"),
                    what: "a ZFS pool",
                    tool,
                    feature: "zfs",
                },
            ));
        }
    }
    // The pool's disks are not probed (no zfs_member prober): the wait
    // ends once the storage the kernel announced has settled.
    options.wanted = None;
    options.policy.allow_not_found = true;
    discovery::discover(p, layout, loader, options);
    log::phase("media-found");
    crate::modules::load_now_all(loader, &["zfs"]);
    // zpool reports /dev/zfs missing when it cannot read /etc/mtab.
    let mtab = layout.path("/etc/mtab");
    if std::fs::symlink_metadata(&mtab).is_err() {
        let _ = std::fs::create_dir_all(layout.path("/etc"));
        let _ = std::os::unix::fs::symlink("/proc/mounts", &mtab);
    }
    // As upstream: an import that fails (already imported after a retry
    // from the recovery shell) is reported, and the mount decides.
    if let Err(e) = helper(p, layout, ZPOOL, &import_args(dataset, force)) {
        log::warn(&crate::failure::chain(&e));
    }
    let feature = helper(
        p,
        layout,
        ZPOOL,
        &["list", "-H", "-o", "feature@encryption", pool],
    )
    .map_err(|e| zfs_error(dataset, e))?;
    if String::from_utf8_lossy(&feature).trim() == "active" {
        let root = helper(
            p,
            layout,
            ZFS,
            &["get", "-H", "-o", "value", "encryptionroot", dataset],
        )
        .map_err(|e| zfs_error(dataset, e))?;
        let root = String::from_utf8_lossy(&root).trim().to_owned();
        if !root.is_empty() && root != "-" {
            // A person types the passphrase: no time limit, as for LUKS.
            let args = ["load-key".to_owned(), root];
            let status = p
                .spawn
                .run(&layout.path(ZFS), &args, &[], Stdin::Inherit)
                .map_err(|source| {
                    zfs_error(
                        dataset,
                        AssembleError::Spawn {
                            tool: ZFS.to_owned(),
                            source,
                        },
                    )
                })?;
            if !status.success() {
                return Err(zfs_error(
                    dataset,
                    AssembleError::Failed {
                        tool: ZFS.to_owned(),
                        args: args.join(" "),
                        status,
                    },
                ));
            }
        }
    }
    let fstype = rootfstype.unwrap_or("zfs");
    let (flags, data) = root_mount_options(rootflags);
    let sysroot = layout.sysroot();
    let _ = std::fs::create_dir_all(&sysroot);
    let data = (!data.is_empty()).then_some(data.as_str());
    p.fs.mount(dataset, &sysroot, Some(fstype), flags, data)
        .map_err(|source| RootError::Mount {
            src: dataset.to_owned(),
            fstype: fstype.to_owned(),
            target: crate::packages::unroot(layout, &sysroot),
            source,
        })
}
