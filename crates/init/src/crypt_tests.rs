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
            offset: 512,
            size: Some(64)
        }
    );
    // Size 0 is "the whole rest", as cryptsetup's --keyfile-size=0.
    assert_eq!(KeySource::parse("/k:8:0").unwrap().size, None);
    // A path with colons that are not OFFSET:SIZE is a path.
    assert_eq!(KeySource::parse("/a:b").unwrap().path, Path::new("/a:b"));
    assert!(matches!(
        KeySource::parse("EXEC=/bin/getkey"),
        Err(CryptError::ExecKey(_))
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
    assert_eq!(o.header.as_deref(), Some(Path::new("/h.img")));
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
/// fixture tests).
pub(crate) fn container(dir: &Path) -> Option<(Vec<u8>, Vec<u8>)> {
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
    let run = |answers: Vec<Vec<u8>>, key: Option<&[u8]>| {
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

    let (r, asked, _) = run(vec![], Some(&right));
    assert!(r.is_ok());
    assert!(
        asked.is_empty(),
        "a key file that opens the volume asks nothing"
    );

    let (r, asked, _) = run(vec![right.clone()], Some(b"bad key"));
    assert!(r.is_ok());
    assert_eq!(
        asked.len(),
        1,
        "a key file that does not open it falls back to the prompt"
    );

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
