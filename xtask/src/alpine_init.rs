//! Alpine's real init for the side-by-side benchmark (`cargo xtask bench
//! vs-alpine`): the shell `initramfs-init` and the C helper `nlplug-findfs`
//! of mkinitfs 3.13.0 (the pinned fixture, `qemu-tests/src/fixtures.rs`),
//! in an image that is otherwise ours, so both boot the same modules.
//!
//! Built into `target/alpinit-cache/alpine-init/`, never committed:
//!
//! - `nlplug-findfs` and `initramfs-init` come from the source's own
//!   Makefile (`make nlplug-findfs/nlplug-findfs initramfs-init`: its
//!   `@VERSION@`/`@sysconfdir@`/`@datadir@` substitution, its `-D_GNU_SOURCE
//!   -DDEBUG` and pkg-config flags), compiled with the host's C compiler
//!   against Debian's libblkid, libkmod and libcryptsetup. Debian ships no
//!   static libkmod or libcryptsetup, so the helper is dynamic and its
//!   libraries (as `ldd` lists them, with the loader) are copied into the
//!   image at their host paths. Where glibc and musl differ in a way the
//!   helper depends on, [`MUSL_COMPAT_H`] (force-included) does as musl.
//! - Everything else is our default image (`cargo xtask initramfs`,
//!   all features): the same modules; depmod is rerun on them for the
//!   binary indexes libkmod reads (our image carries only the text ones,
//!   which are regenerated identically), Debian's static busybox with a
//!   link for every applet, mkinitfs' `fstab`, `passwd` and `group`.
//! - `/etc/mdev.conf` ([`MDEV_CONF`]) makes the two links the script's
//!   fstab relocation needs: `/dev/cdrom` for `sr*` and `/dev/usbdisk` for
//!   the first partition (or whole disk) on USB ([`USBDISK_LINK`]).
//!   Nothing else of Alpine's mdev configuration matters before the
//!   hand-over. `ip=dhcp` needs udhcpc's hook ([`UDHCPC_SCRIPT`]).
//!
//! The image has no `apk`: Alpine's init then reports the failed package
//! install on the kernel log and hands over, as ours does without apk.
//!
//! [`Helper::Ours`] makes the variant the `shell-init-*` QEMU scenarios
//! boot (`qemu-tests/src/scenarios/shell_init.rs`): the same script, but
//! `/sbin/nlplug-findfs` is our init binary (a copy of our image's `/init`,
//! which answers to that name), so no C helper and no shared library.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use alpinit_qemu_tests::fixtures;
use anyhow::{bail, Context, Result};

use crate::cpio::Archive;
use crate::initramfs;
use crate::paths;
use crate::process::run;

const VERSION: &str = "3.13.0";

/// Force-included into `nlplug-findfs.c`: what musl, the C library it is
/// written for, does where glibc 2.36 differs.
///
/// - `strlcpy` (glibc has it only from 2.38), with the BSD semantics.
/// - `pthread_cond_destroy` returns at once, as musl's does for a
///   process-private condition variable. glibc's waits for the threads
///   blocked on it, and nlplug-findfs destroys the trigger thread's
///   condition variable while that thread still waits on it, just before
///   exiting: with glibc's the helper never exits.
pub const MUSL_COMPAT_H: &str = "\
#include <string.h>
#include <pthread.h>
static inline size_t strlcpy(char *d, const char *s, size_t n)
{
\tsize_t l = strlen(s);
\tif (n) {
\t\tsize_t c = l >= n ? n - 1 : l;
\t\tmemcpy(d, s, c);
\t\td[c] = 0;
\t}
\treturn l;
}
static inline int musl_cond_destroy(pthread_cond_t *c)
{
\t(void)c;
\treturn 0;
}
#define pthread_cond_destroy musl_cond_destroy
";

/// The C flags the helper is built with (Alpine builds with `-Os`).
const CFLAGS: &str = "-Os -Wall";

/// busybox mdev rules: `/dev/cdrom` and `/dev/usbdisk`, numeric owners so
/// no group database is needed.
pub const MDEV_CONF: &str = "\
# The links initramfs-init's fstab relocation looks for.
sr[0-9]*\t0:0 0660 @ln -sf $MDEV cdrom
sd[a-z].*\t0:0 0660 */lib/mdev/usbdisk_link
";

/// Run by mdev in `/dev` for every `sd*` event: the first partition on a
/// USB disk (or a USB disk without partitions) becomes `/dev/usbdisk`,
/// which the image's fstab mounts at `/media/usb`; its removal drops the
/// link.
pub const USBDISK_LINK: &str = r#"#!/bin/sh
current=$(readlink usbdisk)
if [ "$ACTION" = remove ]; then
	[ "$current" = "$MDEV" ] && rm -f usbdisk
	exit 0
fi
[ -n "$current" ] && exit 0
if [ -e /sys/block/$MDEV ]; then
	# A partitioned disk: the link goes to its partition.
	for part in /sys/block/$MDEV/$MDEV*; do
		[ -e "$part" ] && exit 0
	done
	sysdev=$(readlink -f /sys/block/$MDEV/device)
else
	parent=$(dirname /sys/block/*/$MDEV)
	sysdev=$(readlink -f $parent/device)
fi
case "$sysdev" in
*/usb[0-9]*) ln -sf $MDEV usbdisk ;;
esac
exit 0
"#;

/// busybox udhcpc's hook (`/usr/share/udhcpc/default.script`, which the
/// script requires for `ip=dhcp`; mkinitfs' `dhcp` feature copies
/// Alpine's; Debian's busybox runs `/etc/udhcpc/default.script`, linked to
/// it): the lease's address, default route and name servers.
pub const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
deconfig)
	ip link set dev "$interface" up
	ip addr flush dev "$interface"
	;;
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for r in $router; do
		ip route add default via "$r" dev "$interface"
		break
	done
	: > /etc/resolv.conf
	for s in $dns; do
		echo "nameserver $s" >> /etc/resolv.conf
	done
	;;
esac
exit 0
"#;

/// Which `/sbin/nlplug-findfs` the image gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Helper {
    /// mkinitfs' C helper, built against Debian's libraries.
    C,
    /// Our init binary, taken from our image's `/init`.
    Ours,
}

pub struct Built {
    pub path: PathBuf,
    pub size: u64,
}

fn work_dir() -> PathBuf {
    paths::target_dir()
        .join("alpinit-cache")
        .join("alpine-init")
}

/// Alpine's init in an image made from OURS (our default image, whose
/// kernel release is RELEASE), written to OUTPUT; reused while the inputs
/// are unchanged.
pub fn build(ours: &Path, release: &str, output: &Path) -> Result<Built> {
    build_with(ours, release, output, Helper::C)
}

/// [`build`] with HELPER as `/sbin/nlplug-findfs`.
pub fn build_with(ours: &Path, release: &str, output: &Path, helper: Helper) -> Result<Built> {
    let ours_bytes = fs::read(ours).with_context(|| format!("reading {}", ours.display()))?;
    let key = cache_key(&ours_bytes, release, helper);
    let stamp = output.with_extension("key");
    if output.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str()) {
        return built(output);
    }
    let work = work_dir();
    let src = work.join(format!("mkinitfs-{VERSION}"));
    if src.exists() {
        fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    }
    fixtures::unpack(&fixtures::MKINITFS, &work)?;
    let compat = work.join("musl-compat.h");
    fs::write(&compat, MUSL_COMPAT_H).with_context(|| format!("writing {}", compat.display()))?;
    let targets: &[&str] = match helper {
        Helper::C => &["nlplug-findfs/nlplug-findfs", "initramfs-init"],
        Helper::Ours => &["initramfs-init"],
    };
    run(Command::new("make")
        .current_dir(&src)
        .args(targets)
        .env("CFLAGS", format!("{CFLAGS} -include {}", compat.display())))
    .with_context(|| format!("building {} with mkinitfs' Makefile", targets.join(" and ")))?;
    let script = src.join("initramfs-init");
    check_script(&fs::read_to_string(&script).context("reading the built initramfs-init")?)?;

    let tree = work.join(match helper {
        Helper::C => "tree",
        Helper::Ours => "tree-ours",
    });
    if tree.exists() {
        fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))?;
    }
    fs::create_dir_all(&tree).with_context(|| format!("creating {}", tree.display()))?;
    run(Command::new("sh")
        .arg("-c")
        .arg("gzip -dc \"$1\" | cpio -idm --quiet --no-absolute-filenames")
        .arg("sh")
        .arg(ours)
        .current_dir(&tree))
    .context("unpacking our image")?;
    match helper {
        Helper::C => {
            let c_helper = src.join("nlplug-findfs/nlplug-findfs");
            install(&script, &tree.join("init"), 0o755)?;
            install(&c_helper, &tree.join("sbin/nlplug-findfs"), 0o755)?;
            for lib in shared_libraries(&c_helper)? {
                let rel = lib.strip_prefix("/").unwrap_or(&lib);
                // Copied with the file's content: a host symlink would dangle.
                install(&lib, &tree.join(rel), 0o755)?;
            }
        }
        Helper::Ours => {
            crate::elf::check_file(&tree.join("init"), crate::kernel::Arch::X86_64)
                .context("our image's /init")?;
            our_helper_then_script(&tree, &script)?;
        }
    }
    link_applets(&tree)?;
    for name in ["fstab", "passwd", "group"] {
        install(&src.join(name), &tree.join("etc").join(name), 0o644)?;
    }
    write(&tree.join("etc/mdev.conf"), MDEV_CONF, 0o644)?;
    write(&tree.join("lib/mdev/usbdisk_link"), USBDISK_LINK, 0o755)?;
    write(
        &tree.join("usr/share/udhcpc/default.script"),
        UDHCPC_SCRIPT,
        0o755,
    )?;
    // Where Debian's busybox udhcpc looks for it (Alpine's looks in /usr/share).
    let etc_udhcpc = tree.join("etc/udhcpc");
    fs::create_dir_all(&etc_udhcpc)
        .with_context(|| format!("creating {}", etc_udhcpc.display()))?;
    let _ = fs::remove_file(etc_udhcpc.join("default.script"));
    std::os::unix::fs::symlink(
        "/usr/share/udhcpc/default.script",
        etc_udhcpc.join("default.script"),
    )
    .context("linking /etc/udhcpc/default.script")?;
    binary_indexes(&tree, release)?;

    let mut archive = Archive::new();
    add_tree(&mut archive, &tree, "")?;
    archive.add_dir("tmp", 0o1777);
    let gz = initramfs::compress(&archive, 0)?;
    if let Some(parent) = output.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(output, gz).with_context(|| format!("writing {}", output.display()))?;
    fs::write(&stamp, &key).with_context(|| format!("writing {}", stamp.display()))?;
    built(output)
}

/// The `shell-init-*` scenarios' image (`ImageKind::ShellInit`) under
/// IMAGES: our default image (with INIT when given), then
/// [`Helper::Ours`]'s variant of it.
pub fn shell_init_image(init: Option<PathBuf>, images: &Path) -> Result<Built> {
    let ours = initramfs::build(&initramfs::Options {
        init,
        output: Some(images.join("initramfs-standard.gz")),
        ..initramfs::Options::default()
    })?;
    build_with(
        &ours.path,
        &ours.kernel.release,
        &images.join("initramfs-shell-init.gz"),
        Helper::Ours,
    )
}

fn built(path: &Path) -> Result<Built> {
    let size = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    Ok(Built {
        path: path.to_path_buf(),
        size,
    })
}

/// Our image's `/init` copied to `sbin/nlplug-findfs` in TREE, then
/// SCRIPT installed as `init`. Our image links `sbin/nlplug-findfs` to
/// `../init`: left as it is, the link would name the shell script once
/// it is `/init`, and the script would run itself instead of the helper.
fn our_helper_then_script(tree: &Path, script: &Path) -> Result<()> {
    let init = tree.join("init");
    let binary = fs::read(&init).with_context(|| format!("reading {}", init.display()))?;
    write(&tree.join("sbin/nlplug-findfs"), binary, 0o755)?;
    install(script, &init, 0o755)
}

fn cache_key(ours: &[u8], release: &str, helper: Helper) -> String {
    let mut h = DefaultHasher::new();
    ours.hash(&mut h);
    release.hash(&mut h);
    helper.hash(&mut h);
    fixtures::MKINITFS.sha512.hash(&mut h);
    (
        MUSL_COMPAT_H,
        CFLAGS,
        MDEV_CONF,
        USBDISK_LINK,
        UDHCPC_SCRIPT,
    )
        .hash(&mut h);
    // The host's busybox and libraries go in too, and this builder's code
    // decides the layout.
    let xtask = std::env::current_exe().ok();
    let files = ["/bin/busybox", "/lib/x86_64-linux-gnu/libkmod.so.2"]
        .map(PathBuf::from)
        .into_iter()
        .chain(xtask);
    for file in files {
        fs::metadata(&file)
            .ok()
            .and_then(|m| m.modified().ok())
            .hash(&mut h);
    }
    format!("{:016x}\n", h.finish())
}

/// The Makefile filled in every placeholder the script has.
fn check_script(text: &str) -> Result<()> {
    if !text.starts_with("#!/bin/sh") || !text.contains(&format!("VERSION={VERSION}\n")) {
        bail!("initramfs-init is not mkinitfs {VERSION}'s script with its version filled in");
    }
    if let Some(line) = text.lines().find(|l| l.contains("@VERSION@")) {
        bail!("initramfs-init still has a placeholder: {line}");
    }
    Ok(())
}

/// The loader and the libraries `ldd` resolves for ELF.
fn shared_libraries(elf: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(elf)
        .output()
        .context("running ldd")?;
    if !out.status.success() {
        bail!("ldd {} failed", elf.display());
    }
    let libs = parse_ldd(&String::from_utf8_lossy(&out.stdout));
    if libs.is_empty() {
        bail!("ldd lists no library for {}", elf.display());
    }
    Ok(libs)
}

/// Absolute paths from `ldd` output (`alpinit_qemu_tests::ldd`).
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    alpinit_qemu_tests::ldd::parse(text)
        .into_iter()
        .map(PathBuf::from)
        .collect()
}

/// A symlink to `/bin/busybox` for every applet at the path busybox names
/// for it (`busybox --list-full`), where the image has nothing yet.
fn link_applets(tree: &Path) -> Result<()> {
    let busybox = tree.join("bin/busybox");
    if !busybox.is_file() {
        bail!("our image has no /bin/busybox (is busybox-static installed?)");
    }
    let out = Command::new(&busybox)
        .arg("--list-full")
        .output()
        .context("running busybox --list-full")?;
    let list = String::from_utf8_lossy(&out.stdout);
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let link = tree.join(applet);
        if fs::symlink_metadata(&link).is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::os::unix::fs::symlink("/bin/busybox", &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    if !tree.join("sbin/mdev").exists() || !tree.join("sbin/switch_root").exists() {
        bail!("busybox has no mdev or switch_root applet");
    }
    Ok(())
}

/// depmod over the image's own modules: the same text indexes plus the
/// `.bin` ones libkmod needs.
fn binary_indexes(tree: &Path, release: &str) -> Result<()> {
    let config = tree.join("depmod.d.tmp");
    fs::create_dir_all(&config).with_context(|| format!("creating {}", config.display()))?;
    let result = run(Command::new("depmod")
        .arg("-b")
        .arg(tree)
        .arg("-C")
        .arg(&config)
        .arg(release));
    fs::remove_dir_all(&config).with_context(|| format!("removing {}", config.display()))?;
    result?;
    let alias = tree.join(format!("lib/modules/{release}/modules.alias.bin"));
    if !alias.is_file() {
        bail!("depmod wrote no {}", alias.display());
    }
    Ok(())
}

fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let data = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write(to, data, mode)
}

fn write(to: &Path, data: impl AsRef<[u8]>, mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let _ = fs::remove_file(to);
    fs::write(to, data).with_context(|| format!("writing {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", to.display()))
}

/// DIR's contents under PREFIX in ARCHIVE, in name order.
fn add_tree(archive: &mut Archive, dir: &Path, prefix: &str) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let dest = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta =
            fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if meta.file_type().is_symlink() {
            let target =
                fs::read_link(&path).with_context(|| format!("reading {}", path.display()))?;
            archive.add_symlink(&dest, &target.to_string_lossy());
        } else if meta.is_dir() {
            archive.add_dir(&dest, meta.permissions().mode());
            add_tree(archive, &path, &dest)?;
        } else {
            let data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            archive.add_file(&dest, meta.permissions().mode(), data);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_loader_and_resolved_libraries() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibkmod.so.2 => /lib/x86_64-linux-gnu/libkmod.so.2 (0x00007f48)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f43)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f48)\n\
                    \tlibgone.so.1 => not found\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libkmod.so.2"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    /// Our image's `sbin/nlplug-findfs -> ../init` link must not survive:
    /// once the script is `/init` it would run the script as the helper.
    #[test]
    fn our_nlplug_findfs_is_a_copy_of_our_init_not_the_link_to_init() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("sbin")).expect("sbin");
        fs::write(tree.join("init"), b"\x7fELF our init").expect("init");
        std::os::unix::fs::symlink("../init", tree.join("sbin/nlplug-findfs")).expect("link");
        let script = dir.path().join("initramfs-init");
        fs::write(&script, "#!/bin/sh\nVERSION=3.13.0\n").expect("script");

        our_helper_then_script(&tree, &script).expect("placed");

        let helper = tree.join("sbin/nlplug-findfs");
        let meta = fs::symlink_metadata(&helper).expect("helper");
        assert!(meta.file_type().is_file(), "{:?}", meta.file_type());
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert_eq!(fs::read(&helper).expect("read"), b"\x7fELF our init");
        assert_eq!(
            fs::read_to_string(tree.join("init")).expect("init"),
            "#!/bin/sh\nVERSION=3.13.0\n"
        );
    }

    #[test]
    fn the_two_helpers_never_share_a_cached_image() {
        assert_ne!(
            cache_key(b"image", "6.1", Helper::C),
            cache_key(b"image", "6.1", Helper::Ours)
        );
    }

    #[test]
    fn a_script_with_a_placeholder_left_is_refused() {
        assert!(check_script("#!/bin/sh\nVERSION=3.13.0\n").is_ok());
        assert!(check_script("#!/bin/sh\nVERSION=@VERSION@\n").is_err());
        assert!(check_script("#!/bin/sh\nVERSION=3.13.0\nx=@VERSION@\n").is_err());
        assert!(check_script("VERSION=3.13.0\n").is_err());
    }

    /// The compat header gives musl's strlcpy (truncates, terminates,
    /// returns the source length) and musl's pthread_cond_destroy, which
    /// returns while a thread still waits (glibc's blocks: the program
    /// below would never exit, as nlplug-findfs did not).
    #[test]
    fn musl_compat_header_gives_strlcpy_and_a_cond_destroy_that_returns() {
        if Command::new("cc").arg("--version").output().is_err() {
            eprintln!("note: no C compiler, skipping");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let header = dir.path().join("musl-compat.h");
        fs::write(&header, MUSL_COMPAT_H).expect("header");
        let c = dir.path().join("t.c");
        fs::write(
            &c,
            r#"#include <stdio.h>
#include <unistd.h>
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static void *waiter(void *arg) {
	pthread_mutex_lock(&m);
	for (;;) pthread_cond_wait(&cv, &m);
	return arg;
}
int main(void) {
	char b[4];
	size_t n = strlcpy(b, "abcdef", sizeof b);
	printf("%s %zu ", b, n);
	n = strlcpy(b, "x", sizeof b);
	printf("%s %zu", b, n);
	pthread_t t;
	pthread_create(&t, NULL, waiter, NULL);
	usleep(100000);
	pthread_cond_destroy(&cv);
	return 0;
}
"#,
        )
        .expect("source");
        let bin = dir.path().join("t");
        let status = Command::new("cc")
            .arg("-include")
            .arg(&header)
            .arg("-pthread")
            .arg("-o")
            .arg(&bin)
            .arg(&c)
            .status()
            .expect("cc");
        assert!(status.success());
        let out = Command::new("timeout")
            .arg("10")
            .arg(&bin)
            .output()
            .expect("run");
        assert!(out.status.success(), "{:?}", out.status);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "abc 6 x 1");
    }
}
