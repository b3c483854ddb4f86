//! Where things live: the workspace root, its target dir and the caches under it.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate's manifest dir).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// The workspace's own target dir. Deliberately not `$CARGO_TARGET_DIR`: the
/// images, kernels and logs must be where users look for them even when the
/// developer builds the host tools elsewhere.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

pub fn kernel_cache() -> PathBuf {
    target_dir().join("alpinit-cache").join("kernels")
}

pub fn image_dir() -> PathBuf {
    target_dir().join("alpinit")
}

pub fn qemu_tests_dir() -> PathBuf {
    target_dir().join("qemu-tests")
}

pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// A release binary of this workspace built for ARCH's musl target.
pub fn musl_binary_for(name: &str, arch: crate::kernel::Arch) -> PathBuf {
    target_dir()
        .join(arch.musl_target())
        .join("release")
        .join(name)
}
