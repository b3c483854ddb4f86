use super::*;
use std::os::unix::fs::PermissionsExt;

const BANNER: &str = "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1)";

/// A stand-in busybox: a script that prints LISTING for `--list-full` and
/// carries BANNER in its bytes as a binary does.
fn fake_busybox(dir: &Path, name: &str, banner: &str, listing: &str) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\n# {banner} multi-call binary.\n[ \"$1\" = --list-full ] || exit 1\n\
         cat <<'EOF'\n{listing}EOF\n"
    );
    fs::write(&path, &script).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    (path, script.into_bytes())
}

const LISTING: &str = "usr/bin/[\nbin/ash\nbin/busybox\nsbin/init\nsbin/mdev\nsbin/modprobe\n\
                       sbin/nlplug-findfs\nbin/sh\nlinuxrc\nusr/bin/vi\nusr/sbin/chroot\n";

/// The links for an x86_64 image on an x86_64 host: its own busybox lists
/// itself.
fn add_native(archive: &mut Archive, path: &Path, bytes: &[u8]) -> Outcome {
    add_with(archive, path, bytes, Arch::X86_64, Some(Arch::X86_64), &[])
}

/// What `assemble` has staged before the links: the init and its
/// nlplug-findfs link, busybox and `bin/sh`, and two `--extra` files at
/// applet paths.
fn staged(busybox: &[u8]) -> Archive {
    let mut archive = Archive::new();
    archive.add_file("init", 0o755, b"the init".to_vec());
    archive.add_symlink("sbin/nlplug-findfs", "../init");
    archive.add_file("bin/busybox", 0o755, busybox.to_vec());
    archive.add_symlink("bin/sh", "busybox");
    archive.add_file("sbin/mdev", 0o755, b"extra mdev".to_vec());
    archive.add_file("usr/bin/vi", 0o755, b"extra vi".to_vec());
    archive
}

fn entries(archive: &Archive) -> Vec<(String, u32, u32, Vec<u8>)> {
    let mut raw = Vec::new();
    archive.write(&mut raw, 0).expect("write");
    crate::cpio::tests::parse(&raw)
}

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

#[test]
fn built_archive_has_applet_links_the_marker_and_keeps_existing_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes) = fake_busybox(dir.path(), "busybox", BANNER, LISTING);
    let mut archive = staged(&bytes);
    let outcome = add_native(&mut archive, &path, &bytes);
    assert!(matches!(outcome, Outcome::Made(5)), "{outcome:?}");
    let entries = entries(&archive);
    let get = |name: &str| {
        entries
            .iter()
            .find(|e| e.0 == name)
            .unwrap_or_else(|| panic!("{name} is in the archive"))
    };
    for link in [
        "usr/bin/[",
        "bin/ash",
        "sbin/init",
        "linuxrc",
        "usr/sbin/chroot",
    ] {
        let e = get(link);
        assert_eq!(e.1 & S_IFMT, S_IFLNK, "{link}");
        assert_eq!(e.3, b"/bin/busybox", "{link}");
    }
    // The kernel runs /sbin/modprobe by itself: not in the image.
    assert!(entries.iter().all(|e| e.0 != "sbin/modprobe"));
    // What was there before is byte for byte what it was.
    assert_eq!(get("init").3, b"the init");
    assert_eq!(get("sbin/nlplug-findfs").3, b"../init");
    assert_eq!(get("bin/sh").3, b"busybox");
    assert_eq!(get("bin/busybox").1 & S_IFMT, S_IFREG);
    assert_eq!(get("bin/busybox").3, bytes);
    assert_eq!(get("sbin/mdev").3, b"extra mdev");
    assert_eq!(get("usr/bin/vi").3, b"extra vi");
    let marker = get("lib/alpinit/applets");
    assert_eq!(marker.1, S_IFREG | 0o644);
    assert_eq!(
        String::from_utf8(marker.3.clone()).expect("text"),
        format!(
            "busybox /bin/busybox {} {BANNER}\nboot /sbin/modprobe\n/usr/bin/[\n/bin/ash\n\
             /sbin/init\n/linuxrc\n/usr/sbin/chroot\n",
            bytes.len()
        )
    );
}

#[test]
fn extra_busybox_replacing_the_image_one_leaves_the_install_to_boot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes) = fake_busybox(dir.path(), "busybox", BANNER, LISTING);
    let mut archive = staged(b"another busybox from --extra");
    let before = entries(&archive);
    let outcome = add_native(&mut archive, &path, &bytes);
    let Outcome::AtBoot(reason) = outcome else {
        panic!("links made for a busybox the image does not have");
    };
    assert!(reason.to_string().contains("/bin/busybox"), "{reason}");
    assert_eq!(entries(&archive), before);
}

#[test]
fn an_image_with_a_marker_already_keeps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes) = fake_busybox(dir.path(), "busybox", BANNER, LISTING);
    let mut archive = staged(&bytes);
    archive.add_file(MARKER, 0o644, b"from --extra\n".to_vec());
    let before = entries(&archive);
    let outcome = add_with(&mut archive, &path, &bytes, Arch::X86_64, None, &[]);
    assert!(matches!(outcome, Outcome::AtBoot(_)), "{outcome:?}");
    assert_eq!(entries(&archive), before);
}

#[test]
fn no_links_under_a_parent_that_is_not_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes) = fake_busybox(dir.path(), "busybox", BANNER, "usr/bin/[\nsbin/init\n");
    let mut archive = Archive::new();
    archive.add_file("bin/busybox", 0o755, bytes.clone());
    archive.add_symlink("sbin", "usr/sbin");
    let outcome = add_native(&mut archive, &path, &bytes);
    assert!(matches!(outcome, Outcome::Made(1)), "{outcome:?}");
    assert_eq!(
        archive.get("usr/bin/["),
        Some(&Node::Symlink {
            target: TARGET.into()
        })
    );
    assert_eq!(archive.get("sbin/init"), None);
}

#[test]
fn foreign_busybox_is_listed_by_the_hosts_of_the_same_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = format!("\x7fELF arm64 code {BANNER} multi-call binary.\0more").into_bytes();
    let image_path = dir.path().join("busybox-arm64");
    fs::write(&image_path, &image).expect("write");
    let (same, _) = fake_busybox(dir.path(), "same", BANNER, LISTING);
    let missing = dir.path().join("missing");
    let chosen = lister(
        &image_path,
        &image,
        Arch::Aarch64,
        Some(Arch::X86_64),
        &[missing.clone(), same.clone()],
    )
    .expect("the host's busybox of the same version");
    assert_eq!(chosen, same);

    let mut archive = Archive::new();
    archive.add_file("bin/busybox", 0o755, image.clone());
    let outcome = add_with(
        &mut archive,
        &image_path,
        &image,
        Arch::Aarch64,
        Some(Arch::X86_64),
        &[same],
    );
    assert!(matches!(outcome, Outcome::Made(9)), "{outcome:?}");
    assert_eq!(
        archive.get("sbin/mdev"),
        Some(&Node::Symlink {
            target: TARGET.into()
        })
    );
}

#[test]
fn foreign_busybox_without_a_host_busybox_of_its_version_is_installed_at_boot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = format!("\x7fELF arm64 code {BANNER}\0").into_bytes();
    let image_path = dir.path().join("busybox-arm64");
    let (other, _) = fake_busybox(
        dir.path(),
        "other",
        "BusyBox v1.36.1 (Debian 1:1.36.1-9)",
        LISTING,
    );
    let err = lister(
        &image_path,
        &image,
        Arch::Aarch64,
        Some(Arch::X86_64),
        std::slice::from_ref(&other),
    )
    .expect_err("versions differ");
    let text = err.to_string();
    assert!(text.contains("1.36.1") && text.contains("1.35.0"), "{text}");
    let err = lister(&image_path, &image, Arch::Aarch64, Some(Arch::X86_64), &[])
        .expect_err("no host busybox");
    assert!(err.to_string().contains("no busybox-static"), "{err}");

    let mut archive = Archive::new();
    archive.add_file("bin/busybox", 0o755, image.clone());
    let outcome = add_with(
        &mut archive,
        &image_path,
        &image,
        Arch::Aarch64,
        Some(Arch::X86_64),
        &[other],
    );
    assert!(matches!(outcome, Outcome::AtBoot(_)), "{outcome:?}");
    assert_eq!(archive.get(MARKER), None);
    assert_eq!(archive.get("sbin/mdev"), None);
}

#[test]
fn banner_is_read_from_the_binary() {
    assert_eq!(
        banner(format!("\0\0{BANNER} multi-call binary.\0").as_bytes()).as_deref(),
        Some(BANNER)
    );
    assert_eq!(banner(b"\x7fELF no version here"), None);
    assert_eq!(banner(b"BusyBox v1.35.0 (unterminated\0"), None);
}

#[test]
fn list_full_lines_outside_busyboxs_install_dirs_are_refused() {
    assert_eq!(
        parse_list("usr/bin/[\nlinuxrc\n\nsbin/mdev\n").expect("list"),
        ["usr/bin/[", "linuxrc", "sbin/mdev"]
    );
    for bad in [
        "../etc/passwd\n",
        "etc/passwd\n",
        "/bin/ls\n",
        "usr/bin/\n",
        "bin/..\n",
        "bin/a\u{1}b\n",
        "\n",
    ] {
        assert!(parse_list(bad).is_err(), "{bad:?}");
    }
    let too_many = "bin/x\n".repeat(MAX_APPLETS + 1);
    assert!(parse_list(&too_many).is_err());
}

/// The host's busybox-static, when installed, as the image gets it on
/// x86_64: its real listing gives the links the recovery shell and the
/// helpers use by name.
#[test]
fn hosts_busybox_static_gives_the_links_the_shell_needs() {
    let Some(path) = super::super::BUSYBOX_CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
    else {
        eprintln!("note: no busybox-static on this host, skipping");
        return;
    };
    let bytes = fs::read(path).expect("read busybox");
    let mut archive = staged(&bytes);
    let host = Arch::parse(std::env::consts::ARCH).expect("a known host");
    let Outcome::Made(n) = add_with(&mut archive, path, &bytes, host, Some(host), &[]) else {
        panic!("no links from {}", path.display());
    };
    assert!(n > 100, "{n} links");
    assert_eq!(archive.get("sbin/modprobe"), None);
    for applet in ["bin/ls", "bin/mount", "sbin/switch_root"] {
        assert_eq!(
            archive.get(applet),
            Some(&Node::Symlink {
                target: TARGET.into()
            }),
            "{applet}"
        );
    }
    let Some(Node::File { data, .. }) = archive.get(MARKER) else {
        panic!("no marker");
    };
    let marker = String::from_utf8_lossy(data);
    assert_eq!(marker.lines().nth(1), Some("boot /sbin/modprobe"));
    assert_eq!(marker.lines().count(), n + 2);
}
