//! Unit tests of `crypt.rs`.

use super::*;

#[test]
fn cryptkey_forms() {
    assert_eq!(
        KeySource::parse("yes").unwrap().path,
        Path::new(DEFAULT_KEY_FILE)
    );
    assert_eq!(
        KeySource::parse("/etc/k.bin:512:64").unwrap(),
        KeySource {
            path: "/etc/k.bin".into(),
            exec: false,
            offset: 512,
            size: Some(64)
        }
    );
    // Size 0 is "the whole rest", as cryptsetup's --keyfile-size=0.
    assert_eq!(KeySource::parse("/k:8:0").unwrap().size, None);
    // A path with colons that are not OFFSET:SIZE is a path.
    assert_eq!(KeySource::parse("/a:b").unwrap().path, Path::new("/a:b"));
    assert_eq!(
        KeySource::parse("EXEC=/bin/getkey:4:32").unwrap(),
        KeySource {
            path: "/bin/getkey".into(),
            exec: true,
            offset: 4,
            size: Some(32)
        }
    );
    let k = KeySource::parse("EXEC=/bin/getkey").unwrap();
    assert!(k.exec && k.size.is_none());
    assert_eq!(k.describe(), "EXEC=/bin/getkey");
    assert!(matches!(
        KeySource::parse("EXEC="),
        Err(CryptError::KeyField {
            what: "the program",
            ..
        })
    ));
    assert!(matches!(
        KeySource::parse("/k:99999999999999999999:1"),
        Err(CryptError::KeyField {
            what: "the offset",
            ..
        })
    ));
}

#[test]
fn key_file_offset_and_size() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k"), b"0123456789").unwrap();
    let k = KeySource::parse("/k:2:3").unwrap();
    assert_eq!(&k.read(dir.path()).unwrap()[..], b"234");
    let k = KeySource::parse("/k").unwrap();
    assert_eq!(&k.read(dir.path()).unwrap()[..], b"0123456789");
    let k = KeySource::parse("/k:8:5").unwrap();
    assert!(k
        .read(dir.path())
        .unwrap_err()
        .to_string()
        .contains("shorter than the size given"));
    let k = KeySource::parse("/missing").unwrap();
    assert!(matches!(
        k.read(dir.path()),
        Err(CryptError::KeyFile { .. })
    ));
}

#[test]
fn options_from_the_command_line() {
    let c = Cmdline::parse("cryptroot=UUID=abc cryptkey cryptdiscards");
    let o = CryptOptions::from_cmdline(&c).unwrap().unwrap();
    assert_eq!(o.device, "UUID=abc");
    assert_eq!(o.name, "root");
    assert_eq!(o.key.unwrap().path, Path::new(DEFAULT_KEY_FILE));
    assert!(o.discards);
    let c = Cmdline::parse("cryptroot=/dev/vda2 cryptdm=crypt cryptheader=/h.img cryptoffset=4096");
    let o = CryptOptions::from_cmdline(&c).unwrap().unwrap();
    assert_eq!(
        (o.name.as_str(), o.offset, o.key, o.discards),
        ("crypt", Some(4096), None, false)
    );
    assert_eq!(o.header.as_deref(), Some("/h.img"));
    let c = Cmdline::parse("cryptroot=/dev/vda2 cryptheader=UUID=1234 cryptkey=EXEC=/bin/k");
    let o = CryptOptions::from_cmdline(&c).unwrap().unwrap();
    assert_eq!(o.header.as_deref(), Some("UUID=1234"));
    assert!(o.key.unwrap().exec);
    assert!(
        CryptOptions::from_cmdline(&Cmdline::parse("root=/dev/vda1"))
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        CryptOptions::from_cmdline(&Cmdline::parse("cryptroot=/dev/sda2 cryptoffset=x")),
        Err(CryptError::Offset(_))
    ));
}

/// A LUKS2 container from cryptsetup, when it is installed (as the luks crate's
/// fixture tests), with cryptsetup's default cipher (aes-xts-plain64).
pub(crate) fn container(dir: &Path) -> Option<(Vec<u8>, Vec<u8>)> {
    container_with(dir, &[])
}

/// [`container`] with more `luksFormat` arguments (`--cipher`, `--key-size`).
pub(crate) fn container_with(dir: &Path, args: &[&str]) -> Option<(Vec<u8>, Vec<u8>)> {
    if std::process::Command::new("cryptsetup")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("note: `cryptsetup` not found, test skipped");
        return None;
    }
    std::fs::create_dir_all(dir).unwrap();
    let img = dir.join("c.img");
    std::fs::write(dir.join("pass"), "right").unwrap();
    let f = File::create(&img).unwrap();
    f.set_len(4 << 20).unwrap();
    let out = std::process::Command::new("cryptsetup")
        .args([
            "luksFormat",
            "--batch-mode",
            "--type",
            "luks2",
            "--key-file",
        ])
        .arg(dir.join("pass"))
        .args([
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--luks2-metadata-size",
            "16k",
        ])
        .args(["--luks2-keyslots-size", "1m", "--offset", "4096"])
        .args(args)
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((std::fs::read(&img).unwrap(), b"right".to_vec()))
}

/// Alpine's texts and tries: wrong passphrases are asked again up to 5 times.
#[test]
fn passphrase_prompt_texts_and_tries() {
    let dir = tempfile::tempdir().unwrap();
    let Some((img, right)) = container(dir.path()) else {
        return;
    };
    let header = Header::read(&mut io::Cursor::new(&img)).unwrap();
    let limits = Limits::for_mem_available(256 << 20);
    let file_key = KeySource::parse("/k").unwrap();
    let exec_key = KeySource::parse("EXEC=/bin/k").unwrap();
    let run = |answers: Vec<Vec<u8>>, key: Option<(&[u8], &KeySource)>| {
        let mut asked = Vec::new();
        let mut said = String::new();
        let mut answers = answers.into_iter();
        let r = unlock(
            &header,
            &mut io::Cursor::new(&img),
            "/dev/vda2",
            key,
            &limits,
            |prompt| {
                asked.push(prompt.to_string());
                answers.next()
            },
            |s| said.push_str(s),
        );
        (r, asked, said)
    };
    let (r, asked, said) = run(vec![b"wrong".to_vec(), right.clone()], None);
    assert_eq!(r.unwrap().keyslot, "0");
    assert_eq!(asked, ["Enter passphrase for /dev/vda2: "; 2]);
    assert_eq!(said, "No key available with this passphrase.\n");

    let (r, asked, said) = run(vec![b"wrong".to_vec(); 6], None);
    assert_eq!(
        r.unwrap_err().to_string(),
        "Mounting /dev/vda2 failed, amount of tries exhausted."
    );
    assert_eq!(asked.len(), TRIES);
    assert_eq!(said.matches("No key available").count(), TRIES);

    let (r, asked, _) = run(vec![], Some((&right, &file_key)));
    assert!(r.is_ok());
    assert!(
        asked.is_empty(),
        "a key file that opens the volume asks nothing"
    );

    let (r, asked, _) = run(vec![right.clone()], Some((b"bad key", &file_key)));
    assert!(r.is_ok());
    assert_eq!(
        asked.len(),
        1,
        "a key file that does not open it falls back to the prompt"
    );

    let (r, asked, _) = run(vec![], Some((&right, &exec_key)));
    assert!(r.is_ok() && asked.is_empty());
    let (r, asked, _) = run(vec![right.clone()], Some((b"bad key", &exec_key)));
    assert_eq!(
        r.unwrap_err().to_string(),
        "the key EXEC=/bin/k does not open /dev/vda2 (no passphrase is asked after an EXEC= key)"
    );
    assert!(asked.is_empty(), "an EXEC= key has no passphrase fallback");

    let (r, _, _) = run(vec![], None);
    assert!(matches!(r, Err(CryptError::NoPassphrase(_))));
}

#[test]
fn device_numbers_from_sysfs() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let d = dir.path().join("sys/class/block/vda2");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("dev"), "253:2\n").unwrap();
    std::fs::write(d.join("size"), "8192\n").unwrap();
    assert_eq!(
        device_numbers(&layout, "vda2").unwrap(),
        (253, 2, 8192 * 512)
    );
    std::fs::write(d.join("dev"), "garbage\n").unwrap();
    assert!(matches!(
        device_numbers(&layout, "vda2"),
        Err(CryptError::SysfsFormat { .. })
    ));
}

/// A program of the image at `root` that runs `script` under /bin/sh.
fn program(root: &Path, name: &str, script: &str) -> KeySource {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    KeySource::parse(&format!("EXEC=/{name}")).unwrap()
}

/// `cryptkey=EXEC=prog[:offset:size]` with the kernel's bounded spawn: the key is the
/// program's output (a slice of it with offset and size); a program that hangs is
/// killed at the limit, one that fails or prints too little or too much is named.
#[test]
fn exec_key_is_the_programs_bounded_output() {
    use crate::platform::{KernelSpawn, BOUNDED_OUTPUT};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let limit = Duration::from_secs(5);
    let k = program(root, "key", "printf 'abcdefgh'");
    assert_eq!(&k.run(&KernelSpawn, root, limit).unwrap()[..], b"abcdefgh");
    let mut sliced = k.clone();
    (sliced.offset, sliced.size) = (2, Some(3));
    assert_eq!(&sliced.run(&KernelSpawn, root, limit).unwrap()[..], b"cde");
    sliced.size = Some(7);
    let e = sliced
        .run(&KernelSpawn, root, limit)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("printed 8 bytes, fewer than offset 2 and size 7"),
        "{e}"
    );

    let hang = program(root, "hang", "printf x; exec sleep 30");
    let started = Instant::now();
    let e = hang
        .run(&KernelSpawn, root, Duration::from_millis(300))
        .unwrap_err()
        .to_string();
    assert!(e.contains("still running after 0.3s, killed"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let e = program(root, "fails", "printf key; exit 3")
        .run(&KernelSpawn, root, limit)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cryptkey=EXEC=") && e.contains("exited with"),
        "{e}"
    );

    let flood = program(root, "flood", "head -c 200000 /dev/zero");
    let e = flood
        .run(&KernelSpawn, root, limit)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("more than the {BOUNDED_OUTPUT} bytes kept")),
        "{e}"
    );
    // A slice inside what was kept is still a key.
    let mut head = flood.clone();
    head.size = Some(64);
    assert_eq!(head.run(&KernelSpawn, root, limit).unwrap().len(), 64);

    let missing = KeySource::parse("EXEC=/nope").unwrap();
    assert!(matches!(
        missing.run(&KernelSpawn, root, limit),
        Err(CryptError::ExecKey { .. })
    ));
}

/// Which modules each supported cipher adds to the mapping's common ones.
#[test]
fn cipher_modules_by_segment_cipher() {
    for (cipher, want) in [
        ("aes-xts-plain64", &[][..]),
        ("aes-xts-plain", &[][..]),
        (
            "aes-cbc-essiv:sha256",
            &["cbc", "essiv", "sha512_generic"][..],
        ),
        ("aes-cbc-plain64", &["cbc"][..]),
        ("aes-cbc-plain", &["cbc"][..]),
    ] {
        assert_eq!(super::cipher_modules(cipher), want, "{cipher}");
    }
}
