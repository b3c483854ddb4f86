use super::*;

use std::io::Read;

/// The packages built from the recipe for a fake init, signed with a
/// throwaway key in DIR.
fn built(dir: &Path) -> Built {
    let init = dir.join("init");
    fs::write(&init, b"\x7fELF fake init").expect("write init");
    let key = alpine_repo::key_in(&dir.join("keys"), "test").expect("key");
    build_with_key(&init, &dir.join("out"), key).expect("build packages")
}

/// The member names and contents of an apk v2 file's concatenated gzip
/// streams, read as one tar (as apk reads it).
fn members(apk: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = fs::read(apk).expect("read apk");
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut plain)
        .expect("gunzip");
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(&plain[..]);
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("data");
        out.insert(name, data);
    }
    out
}

fn pkginfo(apk: &Path) -> String {
    String::from_utf8(members(apk)[".PKGINFO"].clone()).expect("utf-8")
}

#[test]
fn the_recipe_gives_the_init_its_man_pages_and_the_mkinitfs_switch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = built(dir.path());
    let names: Vec<&str> = b.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["alpinit", "alpinit-doc", "alpinit-mkinitfs"]);
    for p in &b.packages {
        assert_eq!(p.version, "0.1.0-r0");
        assert!(p.path.ends_with(format!("{}-0.1.0-r0.apk", p.name)));
    }

    let main = members(&b.get("alpinit").unwrap().path);
    assert_eq!(main["usr/share/alpinit/init"], b"\x7fELF fake init");
    assert!(main.contains_key("usr/sbin/alpinit"), "{:?}", main.keys());
    assert!(
        !main.keys().any(|k| k.contains("man")),
        "man pages belong to -doc: {:?}",
        main.keys()
    );
    let info = pkginfo(&b.get("alpinit").unwrap().path);
    assert!(info.contains("pkgname = alpinit\n"), "{info}");
    assert!(info.contains("arch = x86_64\n"), "{info}");
    assert!(info.contains("license = MIT\n"), "{info}");

    // default_doc: the man pages, gzipped, installed with the docs.
    let doc = members(&b.get("alpinit-doc").unwrap().path);
    for page in [
        "usr/share/man/man8/alpinit.8.gz",
        "usr/share/man/man7/alpinit-bootparam.7.gz",
    ] {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&doc[page][..])
            .read_to_string(&mut text)
            .expect("man page gzip");
        assert!(text.contains(".Dt ALPINIT"), "{page}: {text:.80}");
    }
    let info = pkginfo(&b.get("alpinit-doc").unwrap().path);
    assert!(info.contains("install_if = docs\n"), "{info}");
    assert!(info.contains("install_if = alpinit=0.1.0-r0\n"), "{info}");

    // The switch: no files, the scripts, and the dependencies.
    let sw = members(&b.get("alpinit-mkinitfs").unwrap().path);
    assert!(
        !sw.keys()
            .any(|k| k.starts_with("usr/") || k.starts_with("etc/")),
        "{:?}",
        sw.keys()
    );
    for kind in ["post-install", "post-upgrade", "pre-deinstall"] {
        let want = fs::read(recipe_dir().join(format!("alpinit-mkinitfs.{kind}"))).unwrap();
        assert_eq!(sw[&format!(".{kind}")], want, "{kind}");
    }
    let info = pkginfo(&b.get("alpinit-mkinitfs").unwrap().path);
    assert!(info.contains("arch = noarch\n"), "{info}");
    assert!(info.contains("depend = alpinit=0.1.0-r0\n"), "{info}");
    assert!(info.contains("depend = mkinitfs\n"), "{info}");
}

/// The scripts edit a copy of mkinitfs.conf the way apk runs them (chrooted,
/// so the path is absolute): here the path is rewritten into a temp dir.
#[test]
fn the_switch_scripts_add_one_line_and_take_exactly_it_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("mkinitfs.conf");
    let original = "features=\"ata base ext4\"\n# the user's own line\n";
    fs::write(&conf, original).unwrap();
    let run = |kind: &str| {
        let text = fs::read_to_string(recipe_dir().join(format!("alpinit-mkinitfs.{kind}")))
            .unwrap()
            .replace("/etc/mkinitfs/mkinitfs.conf", &conf.display().to_string());
        let out = Command::new("sh").arg("-c").arg(text).output().unwrap();
        assert!(out.status.success(), "{kind}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run("post-install").contains("alpinit as /init"));
    // An upgrade runs the same script: still one line.
    run("post-upgrade");
    let edited = fs::read_to_string(&conf).unwrap();
    assert!(edited.starts_with(original), "{edited}");
    assert_eq!(
        edited.lines().count(),
        original.lines().count() + 1,
        "{edited}"
    );

    // What mkinitfs makes of it: the stock default is replaced, inside -b's
    // base; an explicit -i is kept.
    let init_after = |init: &str, basedir: &str| {
        let script = format!(
            "datadir=/usr/share/mkinitfs; init={init}; basedir={basedir}; . \"$1\"; printf %s \"$init\""
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&conf)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        init_after("/usr/share/mkinitfs/initramfs-init", "''"),
        "/usr/share/alpinit/init"
    );
    assert_eq!(
        init_after("/usr/share/mkinitfs/initramfs-init", "/tmp/base/"),
        "/tmp/base/usr/share/alpinit/init"
    );
    assert_eq!(init_after("/root/my-init", "''"), "/root/my-init");

    assert!(run("pre-deinstall").contains("its own init again"));
    assert_eq!(fs::read_to_string(&conf).unwrap(), original);
}

#[test]
fn walk_lists_parents_before_children() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(dir.path().join("usr/share/a")).unwrap();
    fs::create_dir_all(dir.path().join("usr/sbin")).unwrap();
    fs::write(dir.path().join("usr/share/a/f"), "x").unwrap();
    std::os::unix::fs::symlink("../share/a/f", dir.path().join("usr/sbin/l")).unwrap();
    let entries = walk(dir.path()).unwrap();
    let paths: Vec<&str> = entries.iter().map(entry_path).collect();
    assert_eq!(
        paths,
        [
            "usr",
            "usr/sbin",
            "usr/sbin/l",
            "usr/share",
            "usr/share/a",
            "usr/share/a/f"
        ]
    );
}
