//! The boot splash (`splash`, on unless `splash=no`), as `initramfs-init`
//! shows it with busybox' `fbsplash`: each framebuffer `/dev/fbN` gets the
//! first `/media/*/fbsplashN.ppm`, then the first `/media/*/fbsplash.ppm`
//! is shown by an `fbsplash` left running, controlled through the FIFO
//! `/.splash.ctrl` of the new root (the new root's services write to it;
//! `exit` ends it).

use crate::in_root::NewRoot;
use crate::layout::Layout;
use crate::log;
use crate::platform::{Platform, Stdin};
use alpinit_cmdline::Cmdline;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The control FIFO, relative to the new root.
pub const FIFO: &str = ".splash.ctrl";
/// Alpine's default configuration: the image centred.
const DEFAULT_CFG: &str = "IMG_ALIGN=CM\n";
const PROGRAM_DIRS: &[&str] = &["/sbin", "/bin", "/usr/sbin", "/usr/bin"];

/// The running splash, if one was started.
#[derive(Debug, Default)]
pub struct Splash {
    running: bool,
    /// `splash=init`: ended just before the hand-over.
    until_init: bool,
}

/// The image's `fbsplash` (a busybox applet link or a program).
fn program(layout: &Layout) -> Option<PathBuf> {
    PROGRAM_DIRS
        .iter()
        .map(|d| layout.path(&format!("{d}/fbsplash")))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The first `/media/*/NAME` (media in name order), as the shell glob.
fn on_media(layout: &Layout, name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(layout.media())
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    alpinit_sort::sort(&mut dirs);
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.exists())
}

/// `IMG.cfg` beside the image, else Alpine's default.
fn config_for(img: &Path, default: &Path) -> PathBuf {
    let cfg = img.with_extension("cfg");
    if cfg.exists() {
        cfg
    } else {
        default.to_owned()
    }
}

/// Framebuffers `/dev/fb0`..`/dev/fb9` present, in order.
fn framebuffers(layout: &Layout) -> Vec<(u8, PathBuf)> {
    (0..=9u8)
        .map(|n| (n, layout.dev().join(format!("fb{n}"))))
        .filter(|(_, p)| p.exists())
        .collect()
}

/// Shows the splash when the media carry one; says once when they do but
/// the image has no `fbsplash`.
pub fn start(p: &Platform<'_>, layout: &Layout, cmdline: &Cmdline) -> Splash {
    let mode = cmdline.get("splash");
    if mode == Some("no") {
        return Splash::default();
    }
    let per_fb: Vec<(PathBuf, PathBuf)> = framebuffers(layout)
        .into_iter()
        .filter_map(|(n, fb)| on_media(layout, &format!("fbsplash{n}.ppm")).map(|img| (fb, img)))
        .collect();
    let main = on_media(layout, "fbsplash.ppm");
    let images = !per_fb.is_empty() || main.is_some();
    if !images && mode.is_none() {
        return Splash::default();
    }
    let Some(fbsplash) = program(layout) else {
        log::warn("splash: this initramfs has no fbsplash; no boot splash");
        return Splash::default();
    };
    if !images {
        return Splash::default();
    }
    let default_cfg = layout.path("/tmp/fbsplash.cfg");
    if let Err(e) = std::fs::write(&default_cfg, DEFAULT_CFG) {
        log::warn(&format!("splash: writing {}: {e}", default_cfg.display()));
    }
    let unroot = |p: &Path| crate::packages::unroot(layout, p);
    for (fb, img) in &per_fb {
        let args = [
            "-s".to_owned(),
            unroot(img),
            "-d".to_owned(),
            unroot(fb),
            "-i".to_owned(),
            unroot(&config_for(img, &default_cfg)),
        ];
        // Without -f fbsplash draws and exits.
        if let Err(e) = p.spawn.run(&fbsplash, &args, &[], Stdin::Null) {
            log::warn(&format!("splash: running {}: {e}", fbsplash.display()));
        }
    }
    let Some(img) = main else {
        return Splash::default();
    };
    let progress = log::Progress::begin("Starting bootsplash");
    let fifo = NewRoot::open(&layout.sysroot()).and_then(|r| r.mkfifo(FIFO, 0o600));
    if let Err(e) = fifo {
        log::warn(&format!("splash: {}", crate::failure::chain(&e)));
    }
    let args = [
        "-T".to_owned(),
        "16".to_owned(),
        "-s".to_owned(),
        unroot(&img),
        "-i".to_owned(),
        unroot(&config_for(&img, &default_cfg)),
        "-f".to_owned(),
        format!("{}/{FIFO}", unroot(&layout.sysroot())),
    ];
    let running = match p.spawn.start(&fbsplash, &args) {
        Ok(()) => true,
        Err(e) => {
            log::warn(&format!("splash: starting {}: {e}", fbsplash.display()));
            false
        }
    };
    // Alpine reports this step as done whatever fbsplash did.
    progress.ok();
    Splash {
        running,
        until_init: mode == Some("init"),
    }
}

/// Before the hand-over: the splash is told to exit when `splash=init`
/// asked for it, or when the new root has no init (the recovery shell
/// needs the console).
pub fn before_hand_over(layout: &Layout, cmdline: &Cmdline, splash: &Splash) {
    if !splash.running {
        return;
    }
    let init_missing = crate::handover::check_init(layout, cmdline.init()).is_err();
    if splash.until_init || init_missing {
        let told = NewRoot::open(&layout.sysroot()).and_then(|r| r.write_fifo(FIFO, b"exit\n"));
        if let Err(e) = told {
            log::warn(&format!(
                "splash: telling fbsplash to exit: {}",
                crate::failure::chain(&e)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn fifo_write_never_blocks_and_reaches_a_reader() {
        let tmp = tempfile::tempdir().unwrap();
        let root = NewRoot::open(tmp.path()).unwrap();
        root.mkfifo(FIFO, 0o600).unwrap();
        let path = tmp.path().join(FIFO);
        assert!(std::fs::metadata(&path).unwrap().file_type().is_fifo());
        // No reader: ENXIO at once, not a wait.
        let e = root.write_fifo(FIFO, b"exit\n").unwrap_err();
        assert!(e.to_string().contains(FIFO), "{e}");
        let reader = nix::fcntl::open(
            &path,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        root.write_fifo(FIFO, b"exit\n").unwrap();
        let mut buf = [0u8; 8];
        let n = nix::unistd::read(reader, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"exit\n");
        let _ = nix::unistd::close(reader);
    }

    #[test]
    fn fifo_write_refuses_a_regular_file_or_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(FIFO), "keep").unwrap();
        std::os::unix::fs::symlink("/dev/null", tmp.path().join("link")).unwrap();
        let root = NewRoot::open(tmp.path()).unwrap();
        assert!(root.write_fifo(FIFO, b"exit\n").is_err());
        assert!(root.write_fifo("link", b"exit\n").is_err());
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(FIFO)).unwrap(),
            "keep"
        );
    }
}
